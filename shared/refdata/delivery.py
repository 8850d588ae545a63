"""Delivering reference files: validate, store unchanged in ``dms-refs``, record them and
make the next context, announcing it with ``dms.reference.delivered``.

A delivery is all or nothing: every file is checked before any is stored, and the rows,
the new context, its impact on archived exposures (:mod:`shared.refdata.impact`) and the
outbox event are written in one transaction. The reprocessing requests the policy asks
for are opened right after it commits.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shared.catalog.models import ReferenceContext, ReferenceContextFile, ReferenceFile
from shared.catalog.queries import add_event
from shared.messages import ImpactSummary, ReferenceDelivered, new_event
from shared.naming import object_key
from shared.refdata.contexts import ReferenceInfo, context_members, context_name, resolve_context
from shared.refdata.errors import DeliveryError, ReferenceFileError
from shared.refdata.files import is_asdf, is_json, media_type, reference_files, reference_header
from shared.refdata.impact import open_requests, record_impact
from shared.refdata.policy import Action, ReprocessPolicy
from shared.refdata.rules import (
    REFTYPES,
    as_utc,
    format_time,
    normalize_header,
    parse_time,
    reference_selectors,
)
from shared.runtime import ServiceContext, dispatch_events
from shared.storage import Bucket, ImmutableObjectError, ObjectStore, sha256_file

__all__ = ["Delivery", "deliver", "reference_key"]

log = logging.getLogger(__name__)

_FITS_BLOCK = 2880
_EVENT_NAMESPACE = uuid.UUID("6f1c2a6e-3b7e-4c36-9a57-2f6d0d3c8e11")


@dataclass(frozen=True)
class Delivery:
    """What a delivery did.

    ``context_name`` is the new context, or the current one when every file was already in
    it (``created`` False: nothing changed). ``files`` are the delivered files, ``added``
    the ones new to the context, ``replaced`` the members they took the place of.
    ``impact`` summarizes the archived exposures the new context would calibrate with other
    files (:mod:`shared.refdata.impact`), ``requests`` the reprocessing requests the
    policy opened for them.
    """

    context_name: str
    files: tuple[ReferenceInfo, ...]
    created: bool = True
    parent: str | None = None
    added: tuple[str, ...] = ()
    replaced: tuple[str, ...] = ()
    event_id: str | None = None
    impact: ImpactSummary | None = None
    requests: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Candidate:
    path: Path
    filename: str
    reftype: str
    instrument: str
    selectors: dict[str, str]
    useafter: datetime
    pedigree: str
    description: str
    sha256: str
    size: int

    @property
    def key(self) -> str:
        return reference_key(self.instrument, self.filename)


def reference_key(instrument: str, filename: str) -> str:
    """Object key of a reference file in ``dms-refs``: ``<instrument>/000/r1/<filename>``
    (a reference file never gets a second revision: new content needs a new name)."""
    return object_key(instrument.lower(), 0, 1, filename)


def _slot(reftype: str, instrument: str, selectors: dict, useafter: datetime) -> tuple:
    """Files with the same slot replace one another in the next context."""
    return (instrument, reftype, json.dumps(selectors, sort_keys=True), as_utc(useafter))


def _inspect(path: Path) -> tuple[_Candidate | None, list[str]]:
    """Read and check one file; (candidate, []) or (None, problems)."""
    name = path.name
    if not path.is_file():
        return None, [f"{name}: no such file ({path})"]
    size = path.stat().st_size
    asdf_file = size > 0 and is_asdf(path)
    json_file = is_json(path)
    if not asdf_file and not json_file and (size == 0 or size % _FITS_BLOCK):
        return None, [f"{name}: not a FITS file (its {size} bytes are not whole 2880-byte FITS blocks) "
                      f"nor an ASDF file"]
    kind = "JSON" if json_file else "ASDF" if asdf_file else "FITS"
    try:
        header = reference_header(path)
    except ReferenceFileError as exc:  # readable, but its keywords are not where they belong
        return None, [f"{name}: {exc}"]
    except Exception as exc:  # astropy, asdf and json raise OSError, ValueError, ... on bad input
        return None, [f"{name}: {'not a FITS file' if kind == 'FITS' else f'not a readable {kind} file'} ({exc})"]
    where = {"JSON": "JSON entries", "ASDF": "ASDF meta", "FITS": "primary header"}[kind]
    hdr = normalize_header(header)
    problems = [f"{name}: {k} is missing from the {where}" for k in ("REFTYPE", "INSTRUME", "USEAFTER")
                if k not in hdr]
    reftype, instrument = hdr.get("REFTYPE"), hdr.get("INSTRUME")
    if reftype is not None and reftype not in REFTYPES:
        problems.append(f"{name}: REFTYPE {reftype} has no selection rules (known: {', '.join(REFTYPES)})")
    useafter = None
    if "USEAFTER" in hdr:
        try:
            useafter = parse_time(header["USEAFTER"])
        except ValueError as exc:
            problems.append(f"{name}: USEAFTER {exc}")
    if problems:
        return None, problems
    return _Candidate(
        path=path, filename=name, reftype=reftype, instrument=instrument,
        selectors=reference_selectors(reftype, instrument, header), useafter=useafter,
        pedigree=str(header.get("PEDIGREE", "") or "").strip(),
        description=str(header.get("DESCRIP", "") or "").strip(),
        sha256=sha256_file(path), size=size,
    ), []


def _check_together(candidates: list[_Candidate]) -> tuple[list[_Candidate], list[str]]:
    """Drop repeated files; report two contents under one name or two files in one slot."""
    by_name: dict[str, _Candidate] = {}
    by_slot: dict[tuple, str] = {}
    problems = []
    for c in candidates:
        seen = by_name.get(c.filename)
        if seen is not None:
            if seen.sha256 != c.sha256:
                problems.append(f"{c.filename}: given twice with different content ({seen.path} and {c.path})")
            continue
        by_name[c.filename] = c
        slot = _slot(c.reftype, c.instrument, c.selectors, c.useafter)
        if slot in by_slot:
            problems.append(
                f"{c.filename}: same {c.instrument} {c.reftype} selectors and USEAFTER "
                f"{format_time(c.useafter)} as {by_slot[slot]}; deliver one of them"
            )
        by_slot[slot] = c.filename
    return list(by_name.values()), problems


def _check_existing(session: Session, store: ObjectStore, candidates: list[_Candidate]) -> list[str]:
    """Reference files are immutable: a known name must come with the same bytes."""
    problems = []
    for c in candidates:
        row = session.scalar(select(ReferenceFile).where(ReferenceFile.filename == c.filename))
        stored = store.stat(Bucket.REFS, c.key)
        old = row.sha256 if row is not None else stored.sha256 if stored is not None else None
        if old is not None and old != c.sha256:
            problems.append(
                f"{c.filename}: already delivered with different content (sha256 {old[:12]}..., "
                f"this file {c.sha256[:12]}...); reference files are immutable, give new content a new name"
            )
    return problems


def deliver(ctx: ServiceContext, paths: Iterable[str | Path], note: str = "") -> Delivery:
    """Deliver reference files and make the next context.

    Parameters
    ----------
    ctx : ServiceContext
        Object store (files go to ``dms-refs``), catalog, and the transport that dispatches
        the ``dms.reference.delivered`` event (when there is one).
    paths : iterable of path
        Reference files, FITS or ASDF (a directory stands for its ``*.fits`` and
        ``*.asdf``); each needs REFTYPE, INSTRUME and USEAFTER (in the primary header, or
        the ASDF ``meta``: :func:`shared.refdata.files.reference_header`).
    note : str
        Why the context was made (kept with it).

    Returns
    -------
    Delivery

    Raises
    ------
    DeliveryError
        When any file is refused (every problem listed, one line each); nothing is stored.
    """
    files, problems = [], []
    for path in map(Path, paths):
        if path.is_dir():
            found = reference_files(path)
            files += found
            if not found:
                problems.append(f"{path.name}: a directory without .fits, .asdf or .json files ({path})")
        else:
            files.append(path)
    if not files and not problems:
        raise DeliveryError("nothing to deliver: give one or more reference files")
    candidates = []
    for path in files:
        candidate, found = _inspect(path)
        problems += found
        if candidate is not None:
            candidates.append(candidate)
    candidates, found = _check_together(candidates)
    problems += found
    with ctx.catalog.session() as s:
        problems += _check_existing(s, ctx.store, candidates)
    if problems:
        raise DeliveryError("delivery refused, nothing was stored:\n  " + "\n  ".join(problems))

    uris = {}
    for c in candidates:
        try:
            uris[c.filename] = ctx.store.put_file(Bucket.REFS, c.key, c.path, media_type(c.path), sha256=c.sha256).uri
        except ImmutableObjectError as exc:  # lost a race with another delivery of other bytes
            raise DeliveryError(f"{c.filename}: {exc}") from exc

    for attempt in range(1, 4):
        try:
            with ctx.catalog.session() as s:
                result = _record(s, candidates, uris, note, ctx.settings.source, ctx.settings.policy)
            break
        except IntegrityError:  # a concurrent delivery took the context number; re-read
            if attempt == 3:
                raise
            log.info("reference delivery raced another one; retrying (attempt %d)", attempt + 1)
    if result.event_id is not None and ctx.transport is not None:
        dispatch_events(ctx.catalog, ctx.transport, event_ids=[result.event_id])
    if result.impact is not None and any(c.policy == Action.REPROCESS for c in result.impact.counts):
        result = replace(result, requests=tuple(open_requests(ctx, result.context_name)))
    return result


def _record(session: Session, candidates: list[_Candidate], uris: dict[str, str], note: str,
            source: str, policy: ReprocessPolicy) -> Delivery:
    current = resolve_context(session, None)
    members = context_members(session, current) if current is not None else []
    now = datetime.now(UTC)
    rows = []
    for c in candidates:
        row = session.scalar(select(ReferenceFile).where(ReferenceFile.filename == c.filename))
        if row is None:
            row = ReferenceFile(
                filename=c.filename, reftype=c.reftype, instrument=c.instrument, selectors=c.selectors,
                useafter=c.useafter, uri=uris[c.filename], sha256=c.sha256, size=c.size,
                pedigree=c.pedigree, description=c.description, delivered_at=now,
            )
            session.add(row)
        elif row.sha256 != c.sha256:
            raise DeliveryError(f"{c.filename}: delivered meanwhile with different content; nothing recorded")
        rows.append(row)
    session.flush()
    files = tuple(ReferenceInfo.from_row(r) for r in rows)
    member_ids = {m.id for m in members}
    new = [r for r in rows if r.id not in member_ids]
    if not new:
        parent = context_name(current.parent_id) if current.parent_id else None
        return Delivery(current.name, files, created=False, parent=parent)

    slots = {_slot(r.reftype, r.instrument, r.selectors, r.useafter) for r in new}
    kept = [m for m in members if _slot(m.reftype, m.instrument, m.selectors, m.useafter) not in slots]
    replaced = tuple(m.filename for m in members if m not in kept)
    number = current.id + 1 if current is not None else 1
    name = context_name(number)
    context = ReferenceContext(id=number, name=name, parent_id=current.id if current else None, created_at=now,
                               note=note)
    session.add(context)
    session.flush()
    session.add_all(ReferenceContextFile(context_id=number, reference_file_id=r.id) for r in kept + new)
    session.flush()
    impact = record_impact(session, context, new, policy, now)
    added = tuple(r.filename for r in new)
    event = new_event(
        ReferenceDelivered(context=name, parent=current.name if current else None, note=note,
                           files=tuple(ReferenceInfo.from_row(r).delivered() for r in new), replaced=replaced,
                           impact=impact),
        source, subject=name, event_id=str(uuid.uuid5(_EVENT_NAMESPACE, name)), time=now,
    )
    add_event(session, event)
    return Delivery(name, files, created=True, parent=current.name if current else None, added=added,
                    replaced=replaced, event_id=event.id, impact=impact)
