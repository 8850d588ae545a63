"""VOTable documents of the VO routes (astropy.io.votable): results and errors as DALI says.

A result is one ``RESOURCE type="results"`` whose ``INFO name="QUERY_STATUS"`` is ``OK``,
or ``OVERFLOW`` when MAXREC cut the answer short; an error is the same
resource with ``QUERY_STATUS`` ``ERROR`` and the reason as the INFO's text, which pyvo raises
as a ``DALQueryError``. Columns are described by :class:`VOField` (an ObsCore column is one:
:func:`obscore_fields`).
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

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


_NUMPY = {"short": np.int16, "int": np.int32, "long": np.int64, "float": np.float32, "double": np.float64,
          "boolean": bool}


def _text(value: Any) -> str:
    if isinstance(value, datetime):
        when = value.astimezone(UTC) if value.tzinfo else value
        return when.replace(tzinfo=None).isoformat(timespec="milliseconds")
    return str(value)


def _column(field: VOField, values: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    mask = np.array([v is None for v in values], dtype=bool)
    kind = _NUMPY.get(field.datatype)
    if kind is None:
        return np.array(["" if v is None else _text(v) for v in values], dtype=object), mask
    if kind is bool:
        return np.array([bool(v) for v in values], dtype=bool), mask
    fill = np.nan if np.issubdtype(kind, np.floating) else 0
    return np.array([fill if v is None else v for v in values], dtype=kind), mask


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
    """The document, its TABLEDATA written by astropy's Python writer: its C writer overran a
    buffer on the archive's tables (heap corruption, a crashed API process; seen with TAP's
    answers under load)."""
    out = io.BytesIO()
    vot.to_xml(out, _debug_python_based_parser=True)
    return out.getvalue()


def result_votable(fields: Sequence[VOField], rows: Iterable[Sequence[Any]], *, overflow: bool = False,
                   infos: dict[str, Any] | None = None, name: str = "results") -> bytes:
    """A result document: the rows (tuples in field order) as one TABLE; ``overflow`` makes
    ``QUERY_STATUS`` OVERFLOW, which tells a client MAXREC cut the answer short (astropy
    writes a resource's INFOs before its table, where pyvo reads them)."""
    from astropy.io.votable.tree import Field, TableElement

    rows = list(rows)
    vot, resource = _document("OVERFLOW" if overflow else "OK", None, infos or {})
    table = TableElement(vot, name=name)
    resource.tables.append(table)
    for f in fields:
        field = Field(vot, name=f.name, datatype=f.datatype, arraysize=f.arraysize, unit=f.unit, ucd=f.ucd,
                      utype=f.utype, xtype=f.xtype)
        if f.description:
            field.description = f.description
        table.fields.append(field)
    table.create_arrays(len(rows))
    for i, f in enumerate(fields):
        data, mask = _column(f, [r[i] for r in rows])
        table.array[f.name] = data
        table.array.mask[f.name] = mask
    return _bytes(vot)


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
