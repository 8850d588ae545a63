"""VOTable documents of the VO routes (astropy.io.votable): results and errors as DALI says.

A result is one ``RESOURCE type="results"`` whose ``INFO name="QUERY_STATUS"`` is ``OK``,
or ``OVERFLOW`` when MAXREC cut the answer short; an error is the same
resource with ``QUERY_STATUS`` ``ERROR`` and the reason as the INFO's text, which pyvo raises
as a ``DALQueryError``. Columns are described by :class:`VOField` (an ObsCore column is one:
:func:`obscore_fields`).
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from xml.sax.saxutils import escape

import numpy as np
from fastapi.responses import Response

from shared.catalog.obscore import COLUMNS, ObsCoreColumn

__all__ = ["VOTABLE", "VOField", "VOTableResponse", "error_votable", "obscore_fields", "result_votable",
           "scs_error_votable"]

VOTABLE = "application/x-votable+xml"


class VOTableResponse(Response):
    media_type = VOTABLE


@dataclass(frozen=True)
class VOField:
    """One FIELD: name, VOTable datatype (char, unicodeChar, short, int, long, float, double,
    boolean) and its description."""

    name: str
    datatype: str
    unit: str | None = None
    ucd: str | None = None
    utype: str | None = None
    description: str | None = None
    xtype: str | None = None

    @property
    def arraysize(self) -> str | None:
        return "*" if self.datatype in ("char", "unicodeChar") else None


def obscore_fields(columns: Sequence[ObsCoreColumn] = COLUMNS) -> list[VOField]:
    """The FIELDs of ObsCore columns."""
    return [VOField(c.name, "unicodeChar" if c.datatype == "char" else c.datatype, c.unit, c.ucd, c.utype,
                    c.description, c.xtype) for c in columns]


def _text(value: Any) -> str:
    if isinstance(value, datetime):
        when = value.astimezone(UTC) if value.tzinfo else value
        return when.replace(tzinfo=None).isoformat(timespec="milliseconds")
    return str(value)


_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")  # characters XML 1.0 cannot carry


def _chars(value: Any) -> str:
    return escape(_NOT_XML.sub("", _text(value)))


def _real(value: Any, as_float32: bool = False) -> str:
    v = float(value)
    if as_float32 and math.isfinite(v) and abs(v) > _FLOAT32_MAX:
        v = math.copysign(math.inf, v)  # beyond a float's range
    if math.isfinite(v):
        return str(np.float32(v)) if as_float32 else repr(v)
    return "NaN" if v != v else ("+InF" if v > 0 else "-InF")


_FLOAT32_MAX = float(np.finfo(np.float32).max)
_CELL: dict[str, Callable[[Any], str]] = {
    "double": _real, "float": lambda v: _real(v, as_float32=True), "short": lambda v: str(int(v)),
    "int": lambda v: str(int(v)), "long": lambda v: str(int(v)), "boolean": lambda v: "T" if v else "F",
}


def _data(fields: Sequence[VOField], rows: Iterable[Sequence[Any]]) -> str:
    """The DATA element of the rows (TABLEDATA; a null is an empty cell, ``<TD/>``)."""
    cells = [_CELL.get(f.datatype, _chars) for f in fields]
    out = ["<DATA>\n<TABLEDATA>\n"]
    for row in rows:
        out.append("<TR>" + "".join("<TD/>" if v is None else f"<TD>{cell(v)}</TD>"
                                    for cell, v in zip(cells, row, strict=True)) + "</TR>\n")
    out.append("</TABLEDATA>\n</DATA>\n")
    return "".join(out)


def _document(status: str, message: str | None, infos: dict[str, Any]):
    from astropy.io.votable.tree import Info, Resource, VOTableFile

    vot = VOTableFile()
    resource = Resource(type="results")
    vot.resources.append(resource)
    status_info = Info(name="QUERY_STATUS", value=status)
    if message:
        status_info.content = message
    resource.infos.append(status_info)
    for key, value in infos.items():
        resource.infos.append(Info(name=key, value=str(value)))
    return vot, resource


def _bytes(vot) -> bytes:
    out = io.BytesIO()
    vot.to_xml(out)
    return out.getvalue()


_END_TABLE = b"</TABLE>"


def result_votable(fields: Sequence[VOField], rows: Iterable[Sequence[Any]], *, overflow: bool = False,
                   infos: dict[str, Any] | None = None, name: str = "results") -> bytes:
    """A result document: the rows (tuples in field order) as one TABLE; ``overflow`` makes
    ``QUERY_STATUS`` OVERFLOW, which tells a client MAXREC cut the answer short (astropy
    writes a resource's INFOs before its table, where pyvo reads them).

    astropy writes the document's elements (INFOs, FIELDs); the rows are written here
    (:func:`_data`): astropy's Python TABLEDATA writer spent about 200 ms on a deep field's
    1-degree cone (a numpy reduction per cell), and its C writer overran a buffer on the archive's tables
    (heap corruption, a crashed API process; seen with TAP's answers under load)."""
    from astropy.io.votable.tree import Field, TableElement

    vot, resource = _document("OVERFLOW" if overflow else "OK", None, infos or {})
    table = TableElement(vot, name=name)
    resource.tables.append(table)
    for f in fields:
        field = Field(vot, name=f.name, datatype=f.datatype, arraysize=f.arraysize, unit=f.unit, ucd=f.ucd,
                      utype=f.utype, xtype=f.xtype)
        if f.description:
            field.description = f.description
        table.fields.append(field)
    table.create_arrays(0)
    document = _bytes(vot)
    at = document.rindex(_END_TABLE)
    line = document.rfind(b"\n", 0, at) + 1  # the closing tag's line, indentation and all
    return document[:line] + _data(fields, rows).encode() + document[line:]


def error_votable(message: str) -> bytes:
    """An error document: ``QUERY_STATUS`` ERROR with ``message`` (pyvo raises it as a DALQueryError)."""
    vot, _ = _document("ERROR", message, {})
    return _bytes(vot)


def scs_error_votable(message: str) -> bytes:
    """A Simple Cone Search 1.03 error document: ``INFO name="Error"`` with the reason as its
    value, a child of VOTABLE (where SCS wants it, and pyvo's SCS client looks first), and the
    DALI ``QUERY_STATUS`` ERROR in the resource for clients that read that instead."""
    from astropy.io.votable.tree import Info

    vot, _ = _document("ERROR", message, {})
    vot.infos.append(Info(ID="Error", name="Error", value=message))
    return _bytes(vot)
