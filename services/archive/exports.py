"""Search results a person can take away: one page of any search as JSON (the default),
CSV, ECSV or VOTable, chosen by the ``format`` query parameter or, without it, by the
``Accept`` header.

Columns are the fields of the row schema (``ObservationRow``, ``ProductRow``, ...), in
order, with their descriptions, and the units and UCDs the schema declares
(``json_schema_extra={"unit": ..., "ucd": ...}``). A value that is a list of plain values
is written ';'-joined (as MAST joins ``filters``); a mapping or a list of objects is written
as JSON text. A null is an empty CSV cell and a masked ECSV/VOTable value.

Every search page, whatever its format, carries ``X-Total-Count`` (every match) and a
``Link`` header (RFC 8288: ``first``, ``prev``, ``next``, ``last``) whose URLs start with the
address the request reached (:func:`services.archive.dependencies.public_base_url`); ECSV
and VOTable also carry the total in their metadata (VOTable ``INFO`` elements, with
``QUERY_STATUS`` ``OVERFLOW`` when more pages follow).
"""

from __future__ import annotations

import csv
import io
import json
import math
import types
import typing
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

import numpy as np
from fastapi import Depends, HTTPException, Query, Request, Response, status
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from services.archive.dependencies import BaseUrl
from services.archive.schemas import MAX_PAGE, Page

__all__ = ["EXPORT_RESPONSES", "FORMATS", "Column", "Export", "ExportDep", "FormatParam", "columns", "negotiate", "to_csv", "to_ecsv", "to_votable"]

FORMATS: dict[str, str] = {
    "json": "application/json",
    "csv": "text/csv",
    "ecsv": "text/x-ecsv",
    "votable": "application/x-votable+xml",
}
"""Each format and the media type it is served as."""

_ACCEPTED: dict[str, str] = {
    **{media: name for name, media in FORMATS.items()},
    "application/csv": "csv",
    "application/x-ecsv": "ecsv",
    "text/xml": "votable",
    "application/xml": "votable",
}
_ALIASES = {"vot": "votable", "xml": "votable"}

_SUFFIX = {"csv": "csv", "ecsv": "ecsv", "votable": "xml"}

FormatParam = Annotated[str | None, Query(
    alias="format", max_length=32,
    description="json (default), csv, ecsv or votable (also chosen by the Accept header: text/csv, "
                "text/x-ecsv, application/x-votable+xml).")]

Kind = Literal["int", "float", "bool", "str", "time", "list", "json"]


def negotiate(requested: str | None, accept: str | None) -> str:
    """The format to answer in: ``requested`` (the ``format`` parameter) when given, 400
    naming the valid ones when it is none of them; else the most preferred media type of
    ``accept`` that the API serves; else JSON (an Accept naming nothing the API serves is
    answered in JSON, as before, rather than refused)."""
    if requested is not None and requested.strip():
        name = requested.strip().lower()
        name = _ALIASES.get(name, name)
        if name not in FORMATS:
            raise HTTPException(status.HTTP_400_BAD_REQUEST,
                                detail=f"query parameter format: {requested!r} is no format; use one of "
                                       f"{', '.join(FORMATS)}")
        return name
    best, best_q = "json", 0.0
    for part in (accept or "").split(","):
        media, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for p in params:
            key, _, value = p.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        name = _ACCEPTED.get(media.lower())
        if name is not None and q > best_q:
            best, best_q = name, q
    return best


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind
    description: str | None
    unit: str | None
    ucd: str | None


def _kind(annotation: Any) -> Kind:
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return _kind(args[0]) if len(args) == 1 else "json"
    if origin is Literal:
        values = typing.get_args(annotation)
        return "str" if all(isinstance(v, str) for v in values) else "json"
    if origin is Annotated:
        return _kind(typing.get_args(annotation)[0])
    if origin in (list, tuple, set, frozenset):
        item = args[0] if args else Any
        return "list" if _kind(item) in ("int", "float", "str", "bool") else "json"
    if annotation is bool:
        return "bool"
    if annotation is int:
        return "int"
    if annotation is float:
        return "float"
    if annotation is str:
        return "str"
    if annotation is datetime:
        return "time"
    return "json"


def _extra(info: FieldInfo, key: str) -> str | None:
    extra = info.json_schema_extra
    return extra.get(key) if isinstance(extra, dict) else None


def columns(model: type[BaseModel]) -> list[Column]:
    """The columns of a row schema, in field order."""
    return [Column(name, _kind(info.annotation), info.description, _extra(info, "unit"), _extra(info, "ucd"))
            for name, info in model.model_fields.items()]


def _cell(col: Column, value: Any) -> Any:
    """A JSON-mode value as a scalar cell (None stays None)."""
    if value is None:
        return None
    if col.kind == "list":
        return ";".join(str(v) for v in value)
    if col.kind == "json":
        return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), sort_keys=True)
    return value


def _records(model: type[BaseModel], rows: list[BaseModel]) -> tuple[list[Column], list[list[Any]]]:
    cols = columns(model)
    dumped = [r.model_dump(mode="json") if isinstance(r, BaseModel) else r for r in rows]
    return cols, [[_cell(c, d.get(c.name)) for c in cols] for d in dumped]


def to_csv(model: type[BaseModel], rows: list[BaseModel]) -> str:
    """RFC 4180 CSV: a header line of the field names, then one line per row."""
    cols, records = _records(model, rows)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([c.name for c in cols])
    for record in records:
        writer.writerow(["" if v is None else ("true" if v is True else "false" if v is False else v)
                         for v in record])
    return out.getvalue()


def _array(col: Column, values: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    mask = np.array([v is None for v in values], dtype=bool)
    if col.kind == "int":
        return np.array([0 if v is None else v for v in values], dtype=np.int64), mask
    if col.kind == "float":
        return np.array([np.nan if v is None else v for v in values], dtype=np.float64), mask
    if col.kind == "bool":
        return np.array([bool(v) for v in values], dtype=bool), mask
    return np.array(["" if v is None else str(v) for v in values] or [""], dtype=str)[:len(values)], mask


def _table(model: type[BaseModel], rows: list[BaseModel], meta: dict[str, Any]):
    from astropy.table import Column, MaskedColumn, Table

    cols, records = _records(model, rows)
    table = Table(meta=dict(meta))
    for i, col in enumerate(cols):
        data, mask = _array(col, [r[i] for r in records])
        # a column with no null is a plain one: the ECSV writer reads masked items one by one, slowly
        table[col.name] = (MaskedColumn(data, mask=mask, name=col.name, unit=col.unit, description=col.description)
                           if mask.any() else Column(data, name=col.name, unit=col.unit, description=col.description))
    return cols, table


def to_ecsv(model: type[BaseModel], rows: list[BaseModel], meta: dict[str, Any]) -> str:
    """ECSV 1.0 (astropy.table), with the columns' units and descriptions and ``meta``."""
    _, table = _table(model, rows, meta)
    out = io.StringIO()
    table.write(out, format="ascii.ecsv")
    return out.getvalue()


_VOTABLE_TYPE = {"int": "long", "float": "double", "bool": "boolean"}


def to_votable(model: type[BaseModel], rows: list[BaseModel], info: dict[str, Any], overflow: bool) -> bytes:
    """A VOTable 1.4 (:func:`services.archive.vo.votable.result_votable`) with one RESOURCE of
    type results holding the table; its INFO elements carry ``QUERY_STATUS`` (OK, or
    OVERFLOW when more pages follow) and ``info``."""
    from services.archive.vo.votable import VOField, result_votable

    cols, records = _records(model, rows)
    fields = [VOField(c.name, _VOTABLE_TYPE.get(c.kind, "unicodeChar"), c.unit, c.ucd, None, c.description,
                      "timestamp" if c.kind == "time" else None) for c in cols]
    return result_votable(fields, records, overflow=overflow, infos=info, name=model.__name__)


def _route_path(request: Request) -> str:
    path, root = request.url.path, request.scope.get("root_path", "")
    return path[len(root):] if root and path.startswith(root) else path


@dataclass
class Export:
    """What a search route needs to answer a page in the format asked for."""

    request: Request
    response: Response
    format: str
    base_url: str

    def _url(self, page: int) -> str:
        params = [(k, v) for k, v in self.request.query_params.multi_items() if k != "page"] + [("page", str(page))]
        return f"{self.base_url}{_route_path(self.request)}?{urlencode(params)}"

    def _headers(self, total: int, page: int, pagesize: int) -> dict[str, str]:
        last = min(max(1, math.ceil(total / pagesize)), MAX_PAGE)
        links = [(1, "first")]
        if page > 1:
            links.append((min(page - 1, last), "prev"))
        if page < last:
            links.append((page + 1, "next"))
        links.append((last, "last"))
        return {"X-Total-Count": str(total), "Vary": "Accept",
                "Link": ", ".join(f'<{self._url(p)}>; rel="{rel}"' for p, rel in links)}

    def page(self, model: type[BaseModel], total: int, page: int, pagesize: int, rows: list) -> Any:
        """The page as ``Page[model]`` (JSON) or as a CSV, ECSV or VOTable response, with the
        paging headers on either."""
        headers = self._headers(total, page, pagesize)
        if self.format == "json":
            self.response.headers.update(headers)
            return Page[model](total=total, page=page, pagesize=pagesize, rows=rows)
        what = _route_path(self.request).strip("/").replace("/", "_") or "rows"
        stamp = f"{datetime.now(UTC):%Y%m%dT%H%M%S}"
        headers["Content-Disposition"] = (f'attachment; filename="jwst-dms_{what}_{stamp}_p{page}.'
                                          f'{_SUFFIX[self.format]}"')
        overflow = page * pagesize < total
        meta = {"total": total, "page": page, "pagesize": pagesize,
                "query": f"{self.base_url}{_route_path(self.request)}?{self.request.url.query}".rstrip("?")}
        if self.format == "csv":
            body: str | bytes = to_csv(model, rows)
        elif self.format == "ecsv":
            body = to_ecsv(model, rows, meta)
        else:
            body = to_votable(model, rows, meta, overflow)
        media = FORMATS[self.format] + ("; charset=utf-8" if self.format != "votable" else "")
        return Response(body, media_type=media, headers=headers)


def _export(request: Request, response: Response, base_url: BaseUrl, requested: FormatParam = None) -> Export:
    return Export(request, response, negotiate(requested, request.headers.get("accept")), base_url)


ExportDep = Annotated[Export, Depends(_export)]
"""Inject into a search route; end it with ``return export.page(Model, total, page, pagesize, rows)``."""

EXPORT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "One page of rows; also as CSV, ECSV or VOTable (format=, or Accept). Headers: "
                         "X-Total-Count (every match) and Link (first, prev, next, last pages).",
          "content": {media: {} for name, media in FORMATS.items() if name != "json"}},
}
"""``responses=`` of a search route: the other media types its 200 may have."""
