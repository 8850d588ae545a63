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

``page=all`` asks for every matching row in one CSV, ECSV or VOTable file (JSON is one page:
refused with a 400). The search runs :data:`CHUNK_ROWS` rows at a time, each chunk written
as it comes (a streaming response: memory holds one chunk, whatever the total), in one
snapshot of the catalog on PostgreSQL (a repeatable-read transaction of its own, so rows
archived meanwhile shift no chunk). A search matching more than ``DMS_EXPORT_MAX_ROWS`` rows
(``Settings.export_max_rows``, 100,000 by default) is refused with a 400 naming the cap and
the total, before anything is sent.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import types
import typing
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

import numpy as np
from fastapi import Depends, HTTPException, Query, Request, Response, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from sqlalchemy.orm import Session

from services.archive.dependencies import BaseUrl, SettingsDep, get_catalog
from services.archive.schemas import MAX_PAGE, MAX_PAGESIZE, Page

__all__ = ["ALL_PAGES", "CHUNK_ROWS", "EXPORT_RESPONSES", "FORMATS", "Column", "Export", "ExportDep", "Fetch",
           "FormatParam", "PagesParam", "columns", "csv_text", "negotiate", "page_number", "to_csv", "to_ecsv",
           "to_votable"]

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

ALL_PAGES = "all"
"""The ``page`` value that asks for every matching row in one file."""

CHUNK_ROWS = 2000
"""Rows an export of every page reads from the catalog, and writes, at a time."""

PagesParam = Annotated[str, Query(
    max_length=16,
    description=f"Page number, 1-based (at most {MAX_PAGE}); or 'all': every matching row in one CSV, ECSV "
                "or VOTable file (not JSON), streamed, up to DMS_EXPORT_MAX_ROWS rows (100000 by default).")]

Fetch = Callable[[Session, int, int], tuple[int, Sequence[Any]]]
"""A search run as ``fetch(session, page, pagesize) -> (total, rows)``."""

_NUMBER = re.compile(r"[0-9]{1,16}")

Kind = Literal["int", "float", "bool", "str", "time", "list", "json"]


def page_number(value: str | int) -> int | None:
    """The page a ``page`` parameter asks for, or None for every page (``all``); a 400
    naming what is valid for anything else."""
    text = str(value).strip().lower()
    if text == ALL_PAGES:
        return None
    if _NUMBER.fullmatch(text) and 1 <= int(text) <= MAX_PAGE:
        return int(text)
    raise HTTPException(status.HTTP_400_BAD_REQUEST,
                        detail=f"query parameter page: {str(value)!r} is no page; give a number from 1 to "
                               f"{MAX_PAGE}, or '{ALL_PAGES}' (every matching row in one csv, ecsv or votable "
                               "file)")


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


def csv_text(names: Sequence[str] | None, records: Iterable[Sequence[Any]]) -> str:
    """RFC 4180 CSV: a header line of ``names`` (none when None), then one line per record
    (a null is an empty cell, a boolean ``true``/``false``)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    if names is not None:
        writer.writerow(names)
    for record in records:
        writer.writerow(["" if v is None else ("true" if v is True else "false" if v is False else v)
                         for v in record])
    return out.getvalue()


def to_csv(model: type[BaseModel], rows: list[BaseModel], header: bool = True) -> str:
    """RFC 4180 CSV (:func:`csv_text`): a header line of the field names (unless not
    ``header``), then one line per row."""
    cols, records = _records(model, rows)
    return csv_text([c.name for c in cols] if header else None, records)


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


def _ecsv_data(text: str) -> str:
    """The data lines of an ECSV document: what follows its ``#`` header and the line of
    column names (values holding a line break are quoted, so lines are not cut here)."""
    at = 0
    while text.startswith("#", at):
        at = text.index("\n", at) + 1
    return text[text.index("\n", at) + 1:]


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


def _in_one_snapshot(session: Session) -> None:
    """Make the session's transaction read one snapshot of the catalog (PostgreSQL's
    repeatable read; SQLite has none to offer a reader that runs query after query)."""
    if session.get_bind().dialect.name == "postgresql":
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})


def _chunks(request: Request, fetch: Fetch, total: int, chunk: int) -> Iterator[list]:
    """The rows of every page of a search, ``chunk`` at a time, at most ``total`` (the count
    announced in the headers), read in a catalog session of their own (the route's one is
    closed once it returns, before the body is sent)."""
    with get_catalog(request).session() as session:
        _in_one_snapshot(session)
        page, sent = 1, 0
        while sent < total:
            _, found = fetch(session, page, chunk)
            rows = list(found)[:total - sent]
            if not rows:
                return
            yield rows
            sent += len(rows)
            if len(found) < chunk:
                return
            page += 1
            session.expunge_all()  # what the chunk loaded is not kept for the next one


def _csv_stream(model: type[BaseModel], chunks: Iterator[list]) -> Iterator[str]:
    yield to_csv(model, [])
    for rows in chunks:
        yield to_csv(model, rows, header=False)


def _ecsv_stream(model: type[BaseModel], chunks: Iterator[list], meta: dict[str, Any]) -> Iterator[str]:
    # every chunk is written by astropy with the same header (the columns' types come from
    # the row schema, not the values); the first chunk's is kept, the others' cut off
    first = True
    for rows in chunks:
        text = to_ecsv(model, rows, meta)
        yield text if first else _ecsv_data(text)
        first = False
    if first:
        yield to_ecsv(model, [], meta)


_TABLEDATA, _END_TABLEDATA = b"<TABLEDATA>", b"</TABLEDATA>"


def _votable_stream(model: type[BaseModel], chunks: Iterator[list], info: dict[str, Any]) -> Iterator[bytes]:
    # every chunk is a document of its own; the first gives everything before its rows'
    # end, the others their rows (TABLEDATA), and the first's end closes the file (the
    # FIELDs do not depend on the values; no value can hold the escaped closing tag)
    tail = None
    for rows in chunks:
        document = to_votable(model, rows, info, False)
        end = document.rindex(_END_TABLEDATA)
        if tail is None:
            tail = document[end:]
            yield document[:end]
        else:
            yield document[document.index(_TABLEDATA) + len(_TABLEDATA):end]
    yield tail if tail is not None else to_votable(model, [], info, False)


@dataclass
class Export:
    """What a search route needs to answer a page, or every page, in the format asked for."""

    request: Request
    response: Response
    format: str
    base_url: str
    max_rows: int = 100_000

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

    def _disposition(self, which: str) -> str:
        what = _route_path(self.request).strip("/").replace("/", "_") or "rows"
        stamp = f"{datetime.now(UTC):%Y%m%dT%H%M%S}"
        return f'attachment; filename="jwst-dms_{what}_{stamp}_{which}.{_SUFFIX[self.format]}"'

    def _query_url(self) -> str:
        return f"{self.base_url}{_route_path(self.request)}?{self.request.url.query}".rstrip("?")

    def answer(self, model: type[BaseModel], session: Session, fetch: Fetch, page: str | int,
               pagesize: int) -> Any:
        """The ``page`` asked for (a number, or ``all``: :meth:`all_pages`) of the search
        ``fetch`` runs."""
        number = page_number(page)
        if number is None:
            return self.all_pages(model, session, fetch)
        total, rows = fetch(session, number, pagesize)
        return self.page(model, total, number, pagesize, list(rows))

    def all_pages(self, model: type[BaseModel], session: Session, fetch: Fetch) -> Response:
        """Every row of the search in one CSV, ECSV or VOTable file, streamed
        :data:`CHUNK_ROWS` rows at a time; a 400 for JSON, and for a search matching more
        than :attr:`max_rows` rows (before anything is sent)."""
        if self.format == "json":
            raise HTTPException(status.HTTP_400_BAD_REQUEST, detail=(
                f"page={ALL_PAGES} gives every row in one csv, ecsv or votable file (format=csv, format=ecsv "
                "or format=votable, or an Accept header naming one); JSON comes one page at a time: "
                f"page=1, 2, ... with pagesize up to {MAX_PAGESIZE}"))
        total, _ = fetch(session, 1, 1)
        if total > self.max_rows:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, detail=(
                f"the search matches {total} rows, more than the {self.max_rows} one export of all pages "
                f"may hold (DMS_EXPORT_MAX_ROWS); narrow the search, or fetch it page by page (pagesize up "
                f"to {MAX_PAGESIZE})"))
        headers = {"X-Total-Count": str(total), "Vary": "Accept", "Content-Disposition": self._disposition("all")}
        meta = {"total": total, "page": ALL_PAGES, "query": self._query_url()}
        chunks = _chunks(self.request, fetch, total, CHUNK_ROWS)
        if self.format == "csv":
            body: Iterator[str] | Iterator[bytes] = _csv_stream(model, chunks)
        elif self.format == "ecsv":
            body = _ecsv_stream(model, chunks, meta)
        else:
            body = _votable_stream(model, chunks, meta)
        media = FORMATS[self.format] + ("; charset=utf-8" if self.format != "votable" else "")
        return StreamingResponse(body, media_type=media, headers=headers)

    def page(self, model: type[BaseModel], total: int, page: int, pagesize: int, rows: list) -> Any:
        """The page as ``Page[model]`` (JSON) or as a CSV, ECSV or VOTable response, with the
        paging headers on either."""
        headers = self._headers(total, page, pagesize)
        if self.format == "json":
            self.response.headers.update(headers)
            return Page[model](total=total, page=page, pagesize=pagesize, rows=rows)
        headers["Content-Disposition"] = self._disposition(f"p{page}")
        overflow = page * pagesize < total
        meta = {"total": total, "page": page, "pagesize": pagesize, "query": self._query_url()}
        if self.format == "csv":
            body: str | bytes = to_csv(model, rows)
        elif self.format == "ecsv":
            body = to_ecsv(model, rows, meta)
        else:
            body = to_votable(model, rows, meta, overflow)
        media = FORMATS[self.format] + ("; charset=utf-8" if self.format != "votable" else "")
        return Response(body, media_type=media, headers=headers)


def _export(request: Request, response: Response, base_url: BaseUrl, settings: SettingsDep,
            requested: FormatParam = None) -> Export:
    return Export(request, response, negotiate(requested, request.headers.get("accept")), base_url,
                  settings.export_max_rows)


ExportDep = Annotated[Export, Depends(_export)]
"""Inject into a search route (with ``page: PagesParam``); end it with
``return export.answer(Model, session, fetch, page, pagesize)``."""

EXPORT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "One page of rows; also as CSV, ECSV or VOTable (format=, or Accept), and with "
                         "page=all every row in one CSV, ECSV or VOTable file. Headers: X-Total-Count (every "
                         "match) and, for one page, Link (first, prev, next, last pages).",
          "content": {media: {} for name, media in FORMATS.items() if name != "json"}},
}
"""``responses=`` of a search route: the other media types its 200 may have."""
