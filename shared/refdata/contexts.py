"""Numbered, immutable reference contexts and what they hold (catalog reads).

A context is named ``dms_NNNN.ctx`` (number zero-padded to four digits, more digits after
9999); its number is the primary key of ``reference_context``. Context N+1 is made from
context N by one delivery and never changes afterwards.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.catalog.models import ReferenceContext, ReferenceContextFile, ReferenceFile
from shared.messages import DeliveredReference
from shared.refdata.errors import UnknownContextError
from shared.refdata.rules import as_utc

__all__ = [
    "ContextInfo",
    "ReferenceInfo",
    "context_members",
    "context_name",
    "context_number",
    "contexts_holding",
    "used_references",
    "list_contexts",
    "list_references",
    "resolve_context",
]

REFERENCE_SCHEME = "crds://"  # how a product's provenance (Product.inputs) names a reference file
MAX_CONTEXT = 2**31 - 1  # context numbers are the catalog's 32-bit keys
_NAME = re.compile(r"^(?:dms_)?(\d+)(?:\.ctx)?$", re.IGNORECASE)


def context_name(number: int) -> str:
    """``dms_0003.ctx`` for 3."""
    if number < 1:
        raise ValueError(f"context numbers start at 1, got {number}")
    return f"dms_{number:04d}.ctx"


def context_number(name: str | int) -> int:
    """The number of a context given as ``dms_0003.ctx``, ``dms_0003``, ``3`` or 3."""
    if isinstance(name, int):
        number = name
    else:
        m = _NAME.match(str(name).strip())
        if m is None:
            raise UnknownContextError(f"{name!r} is not a reference context name (e.g. dms_0003.ctx or 3)")
        number = int(m.group(1))
    if number < 1:
        raise UnknownContextError(f"{name!r} is not a reference context: numbers start at 1")
    if number > MAX_CONTEXT:
        raise UnknownContextError(f"{name!r} is not a reference context: numbers end at {MAX_CONTEXT}")
    return number


@dataclass(frozen=True)
class ReferenceInfo:
    """One delivered reference file as the catalog records it."""

    filename: str
    reftype: str
    instrument: str
    selectors: Mapping[str, str]
    useafter: datetime
    uri: str
    sha256: str
    size: int
    pedigree: str = ""
    description: str = ""
    delivered_at: datetime | None = None

    @classmethod
    def from_row(cls, row: ReferenceFile) -> ReferenceInfo:
        return cls(
            filename=row.filename, reftype=row.reftype, instrument=row.instrument,
            selectors=dict(row.selectors), useafter=as_utc(row.useafter), uri=row.uri, sha256=row.sha256,
            size=row.size, pedigree=row.pedigree, description=row.description,
            delivered_at=as_utc(row.delivered_at) if row.delivered_at else None,
        )

    def delivered(self) -> DeliveredReference:
        """This file as a ``dms.reference.delivered`` event lists it."""
        return DeliveredReference(
            filename=self.filename, reftype=self.reftype, instrument=self.instrument,
            selectors=dict(self.selectors), useafter=self.useafter, uri=self.uri, sha256=self.sha256,
            size=self.size, pedigree=self.pedigree,
        )

    def describe_selectors(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.selectors.items())


@dataclass(frozen=True)
class ContextInfo:
    """A context, its parent and how it differs from it."""

    number: int
    name: str
    parent: str | None
    created_at: datetime
    note: str
    files: int
    added: tuple[str, ...] = field(default=())
    removed: tuple[str, ...] = field(default=())


def resolve_context(session: Session, context: str | int | None = None) -> ReferenceContext | None:
    """The context named (None: the current, highest-numbered one; None when there is
    none yet). UnknownContextError for a name that does not exist."""
    if context is None:
        return session.scalar(select(ReferenceContext).order_by(ReferenceContext.id.desc()).limit(1))
    row = session.get(ReferenceContext, context_number(context))
    if row is None:
        newest = session.scalar(select(ReferenceContext.name).order_by(ReferenceContext.id.desc()).limit(1))
        hint = f"the newest is {newest}" if newest else "no reference files have been delivered yet"
        raise UnknownContextError(f"no reference context {context}; {hint}")
    return row


def context_members(
    session: Session, context: ReferenceContext, *, reftypes: list[str] | None = None,
    instrument: str | None = None,
) -> list[ReferenceFile]:
    """The reference files of a context, optionally of some types and one instrument."""
    query = (
        select(ReferenceFile)
        .join(ReferenceContextFile, ReferenceContextFile.reference_file_id == ReferenceFile.id)
        .where(ReferenceContextFile.context_id == context.id)
    )
    if reftypes is not None:
        query = query.where(ReferenceFile.reftype.in_([r.upper() for r in reftypes]))
    if instrument is not None:
        query = query.where(ReferenceFile.instrument == instrument.upper())
    return list(session.scalars(query.order_by(ReferenceFile.id)))


def _sort_key(info: ReferenceInfo) -> tuple:
    return (info.instrument, info.reftype, json.dumps(dict(info.selectors), sort_keys=True), info.useafter,
            info.filename)


def list_references(
    session: Session, context: str | int | None = None, reftype: str | None = None,
    instrument: str | None = None,
) -> list[ReferenceInfo]:
    """The files of a context (default: the current one), by instrument, type, selectors
    and USEAFTER; empty when nothing has been delivered."""
    row = resolve_context(session, context)
    if row is None:
        return []
    members = context_members(session, row, reftypes=[reftype] if reftype else None, instrument=instrument)
    return sorted((ReferenceInfo.from_row(m) for m in members), key=_sort_key)


def list_contexts(session: Session) -> list[ContextInfo]:
    """Every context, oldest first, with the files each added and removed."""
    contexts = list(session.scalars(select(ReferenceContext).order_by(ReferenceContext.id)))
    members: dict[int, set[str]] = defaultdict(set)
    rows = session.execute(
        select(ReferenceContextFile.context_id, ReferenceFile.filename)
        .join(ReferenceFile, ReferenceContextFile.reference_file_id == ReferenceFile.id)
    )
    for context_id, filename in rows:
        members[context_id].add(filename)
    names = {c.id: c.name for c in contexts}
    out = []
    for c in contexts:
        mine, parent = members[c.id], members[c.parent_id] if c.parent_id else set()
        out.append(ContextInfo(
            number=c.id, name=c.name, parent=names.get(c.parent_id) if c.parent_id else None,
            created_at=as_utc(c.created_at), note=c.note, files=len(mine),
            added=tuple(sorted(mine - parent)), removed=tuple(sorted(parent - mine)),
        ))
    return out


def used_references(inputs: list[str] | None) -> list[str]:
    """The reference files a product's provenance names (``crds://<file>``), in order."""
    names = [i[len(REFERENCE_SCHEME):] for i in inputs or () if i.startswith(REFERENCE_SCHEME)]
    return list(dict.fromkeys(n for n in names if n))


def contexts_holding(session: Session, file_ids: list[int]) -> dict[int, list[str]]:
    """Reference file id -> the names of the contexts that hold it, oldest first."""
    out: dict[int, list[str]] = defaultdict(list)
    if not file_ids:
        return out
    rows = session.execute(
        select(ReferenceContextFile.reference_file_id, ReferenceContext.name)
        .join(ReferenceContext, ReferenceContext.id == ReferenceContextFile.context_id)
        .where(ReferenceContextFile.reference_file_id.in_(file_ids))
        .order_by(ReferenceContext.id)
    )
    for file_id, name in rows:
        out[file_id].append(name)
    return out
