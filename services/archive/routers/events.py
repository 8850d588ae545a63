"""/events: the archive's recent events (CloudEvents records from the outbox), newest first.

Event payloads carry where things are stored (``uri``: ``s3://...`` or ``file:///...``)
for the services; the public never sees that (:func:`public_data`): a product's ``uri``
becomes its ``dataURI`` (``mast:JWST/product/<filename>``, as MAST), a reference file's
``dms:JWST/reference/<filename>``, a raw telemetry file's is dropped (raw files are not
served), and any storage URI left in a text is cut to its file name.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy import func, or_, select

from services.archive import mast
from services.archive.dependencies import DbSession
from services.archive.exports import EXPORT_RESPONSES, ExportDep, PagesParam
from services.archive.routers.common import ListParam, PageSizeParam
from services.archive.schemas import DEFAULT_PAGESIZE, EventOut, Page
from shared.catalog import EventRecord

__all__ = ["router"]

router = APIRouter(prefix="/events", tags=["events"])


_STORAGE_URI = re.compile(r"\b(?:s3|file|minio|gs|az)://[^\s'\"<>]*", re.IGNORECASE)
_RAW_KEYS = ("raw", "telemetry")  # payload keys whose files the archive does not serve


def _public_uri(holder: str | None, node: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in node.items() if k != "uri"}
    name = node.get("filename")
    if holder in _RAW_KEYS or not isinstance(name, str):
        return out
    out["dataURI"] = f"dms:{mast.MISSION}/reference/{name}" if holder == "files" else mast.data_uri(name)
    return out


def public_data(value: Any, holder: str | None = None) -> Any:
    """An event's ``data`` without storage locations (see the module docstring)."""
    if isinstance(value, dict):
        if "uri" in value:
            value = _public_uri(holder, value)
        return {k: public_data(v, k if not isinstance(v, str) else holder) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [public_data(v, holder) for v in value]
    if isinstance(value, str):
        return _STORAGE_URI.sub(lambda m: m.group(0).rstrip("/").rsplit("/", 1)[-1], value)
    return value


def _type_name(value: str) -> str:
    value = value.strip()
    return value if value.startswith("dms.") or "*" in value else f"dms.{value}"


@router.get("", response_model=Page[EventOut], responses=EXPORT_RESPONSES, summary="Recent events")
def recent(
    session: DbSession,
    export: ExportDep,
    type_: Annotated[list[str] | None, Query(
        alias="type", description="Event types, e.g. dms.product.archived or product.archived; '*' wildcards.")] = None,
    program: ListParam = None,
    subject: ListParam = None,
    since: Annotated[str | None, Query(description="Events at or after this time (MJD or ISO 8601).")] = None,
    until: Annotated[str | None, Query(description="Events before this time (MJD or ISO 8601).")] = None,
    page: PagesParam = "1",
    pagesize: PageSizeParam = DEFAULT_PAGESIZE,
) -> Page[EventOut]:
    """``program`` matches events whose subject (a file name) belongs to the program."""
    conds = []
    types = [_type_name(t) for t in mast.parse_list(type_, "type")]
    if (c := mast.like_any(EventRecord.type, types)) is not None:
        conds.append(c)
    if (c := mast.like_any(EventRecord.subject, mast.parse_list(subject, "subject"))) is not None:
        conds.append(c)
    programs = [mast.normalize_program(p) for p in mast.parse_list(program, "program")]
    if programs:
        conds.append(or_(*(EventRecord.subject.like(f"jw{p}%") for p in programs)))
    if since:
        conds.append(EventRecord.time >= mast.parse_instant(since, "since"))
    if until:
        conds.append(EventRecord.time < mast.parse_instant(until, "until"))
    query = select(EventRecord).where(*conds)

    def fetch(s, number: int, size: int) -> tuple[int, list[EventOut]]:
        total = s.scalar(select(func.count()).select_from(query.subquery()))
        rows = s.scalars(
            query.order_by(EventRecord.time.desc(), EventRecord.created_at.desc(), EventRecord.id)
            .offset((number - 1) * size).limit(size)
        ).all()
        return total, [EventOut(id=r.id, source=r.source, type=r.type, subject=public_data(r.subject),
                                time=mast.aware(r.time), data=public_data(r.data)) for r in rows]

    return export.answer(EventOut, session, fetch, page, pagesize)
