"""Which archived exposures a new reference context would calibrate with other files.

When a delivery makes context N (:func:`shared.refdata.delivery.deliver`), every current
``_rate``/``_rateints`` (detector1), ``_cal``/``_calints`` (stage2) and Level-3 product
(stage3) that used a reference of a type and instrument the delivery touched is checked:
the file context N selects for the exposure's header, by the pipelines' own rules
(:func:`shared.refdata.selection.best_filenames`), is compared with the file the product
recorded in its provenance (``crds://<file>`` in ``Product.inputs``). An exposure with a
difference gets one :class:`~shared.catalog.models.ReferenceImpact` row: the references
that differ (type, stage, old, new, policy) and its *first stage*, the earliest stage
whose products used one of them (a Level-3 product's difference counts for each of its
member exposures).

The rows and the summary carried by ``dms.reference.delivered`` are written in the
delivery's transaction (:func:`record_impact`), so a context never exists without its
impact. The policy (``DMS_REPROCESS_POLICY``, :mod:`shared.refdata.policy`) decides per
type and instrument: ``off`` types are not compared, ``notify`` ones are recorded and
announced, and for ``reprocess`` ones :func:`open_requests` opens one reprocessing request
per program right after the delivery commits (a request needs the committed context).

Only references whose choice the delivery changed (context N selects another file than
its parent for the exposure) are compared: what an earlier context changed is that
context's impact, listed with it. The work is a handful of queries whatever the number of exposures
(products, exposures and reference names are read once) and the matching of reference
files is shared by exposures with the same selector values.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from shared.catalog.models import (
    Exposure,
    Observation,
    Product,
    ReferenceContext,
    ReferenceFile,
    ReferenceImpact,
)
from shared.messages import ImpactCount, ImpactSummary
from shared.naming import BadNameError, parse_exposure
from shared.refdata.contexts import context_members, resolve_context
from shared.refdata.policy import Action, ReprocessPolicy
from shared.refdata.rules import as_utc
from shared.refdata.selection import best_filenames, catalog_header

__all__ = ["STAGES", "ImpactInfo", "list_impact", "open_requests", "record_impact"]

log = logging.getLogger(__name__)

STAGES = ("detector1", "stage2", "stage3")
_EXPOSURE_STAGES = {"rate": "detector1", "rateints": "detector1", "cal": "stage2", "calints": "stage2"}
_CRDS = "crds://"
_NAMED_LIMIT = 500


@dataclass(frozen=True)
class ImpactInfo:
    """One affected exposure (a ``reference_impact`` row) as ``dms refs impact`` and the API
    show it; ``references`` are ``{reftype, stage, old, new, policy}``."""

    context: str
    parent: str | None
    program: str
    exposure: str
    first_stage: str
    references: tuple[dict[str, Any], ...]
    request_id: str | None
    created_at: datetime

    @classmethod
    def from_row(cls, row: ReferenceImpact) -> ImpactInfo:
        return cls(row.context, row.parent, row.program_id, row.exposure_name, row.first_stage,
                   tuple(row.references or ()), row.request_id, as_utc(row.created_at))


def _exposure_of(filename: str) -> str | None:
    try:
        return parse_exposure(filename).exposure_id
    except BadNameError:
        return None


def _used_references(session: Session, instruments: set[str], reftypes: dict[str, str]):
    """{exposure name: {stage: {reftype: {files}}}} and {exposure name: {stage: context}}
    of the current products that used a reference named in ``reftypes`` (file -> type)."""
    rows = session.execute(
        select(Product.suffix, Product.inputs, Product.reference_context, Exposure.name)
        .join(Observation, Product.observation_id == Observation.id)
        .outerjoin(Exposure, Product.exposure_id == Exposure.id)
        .where(Product.is_current, Product.reference_context.is_not(None),
               Observation.instrument.in_(sorted(instruments)),
               or_(Product.suffix.in_(sorted(_EXPOSURE_STAGES)),
                   and_(Product.level == 3, Product.exposure_id.is_(None))))
    )
    used: dict[str, dict[str, dict[str, set[str]]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(set)))
    contexts: dict[str, dict[str, str]] = defaultdict(dict)
    for suffix, inputs, context, exposure in rows:
        names = [str(i) for i in inputs or ()]
        refs = {reftypes[n[len(_CRDS):]]: n[len(_CRDS):] for n in names
                if n.startswith(_CRDS) and n[len(_CRDS):] in reftypes}
        if not refs:
            continue
        if suffix in _EXPOSURE_STAGES and exposure is not None:
            stage, exposures = _EXPOSURE_STAGES[suffix], [exposure]
        else:  # a Level-3 product: its member exposures (the _cal inputs)
            stage = "stage3"
            exposures = sorted({e for e in map(_exposure_of, names) if e is not None})
        for name in exposures:
            for reftype, ref in refs.items():
                used[name][stage][reftype].add(ref)
            contexts[name].setdefault(stage, context)
    return used, contexts


def _differences(used: dict[str, dict[str, set[str]]], chosen: dict[str, str | None], instrument: str,
                 policy: ReprocessPolicy) -> list[dict[str, Any]]:
    out = []
    for stage in STAGES:
        for reftype in sorted(used.get(stage, {})):
            action = policy.action(reftype, instrument)
            if action is Action.OFF:
                continue
            new = chosen.get(reftype)
            for old in sorted(used[stage][reftype]):
                if old != new:
                    out.append({"reftype": reftype, "stage": stage, "old": old, "new": new, "policy": action.value})
    return out


def record_impact(session: Session, context: ReferenceContext, delivered: Iterable[ReferenceFile],
                  policy: ReprocessPolicy, now: datetime | None = None) -> ImpactSummary:
    """Record the impact of ``context`` (just made from ``delivered`` files, flushed) in
    the caller's transaction; returns the summary its ``dms.reference.delivered`` carries."""
    now = now or datetime.now(UTC)
    touched = {(r.instrument, r.reftype) for r in delivered
               if policy.action(r.reftype, r.instrument) is not Action.OFF}
    if not touched:
        return ImpactSummary(exposures=0)
    instruments = {i for i, _ in touched}
    reftypes = dict(session.execute(
        select(ReferenceFile.filename, ReferenceFile.reftype).where(ReferenceFile.instrument.in_(sorted(instruments)))
    ).all())
    reftypes = {name: t for name, t in reftypes.items()
                if any((i, t) in touched for i in instruments)}
    used, contexts = _used_references(session, instruments, reftypes)
    if not used:
        return ImpactSummary(exposures=0)
    # Named when few, else every exposure of the instruments (no IN list of thousands).
    where = (Exposure.name.in_(sorted(used)) if len(used) <= _NAMED_LIMIT
             else Observation.instrument.in_(sorted(instruments)))
    exposures = session.execute(
        select(Exposure, Observation.instrument, Observation.program_id)
        .join(Observation, Exposure.observation_id == Observation.id).where(where)
    ).all()
    headers, owners = {}, {}
    for exposure, instrument, program in exposures:
        if exposure.name in used and exposure.start_time is not None:
            headers[exposure.name] = catalog_header(exposure, instrument)
            owners[exposure.name] = (instrument.upper(), program)
    types = sorted({t for _, t in touched})

    def choices(ctx_row: ReferenceContext | None) -> dict:
        if ctx_row is None:
            return {name: {} for name in headers}
        members = [m for m in context_members(session, ctx_row, reftypes=types) if (m.instrument, m.reftype) in touched]
        return best_filenames(members, headers, types)

    chosen = choices(context)
    before = choices(session.get(ReferenceContext, context.parent_id) if context.parent_id else None)
    counts: Counter[tuple[str, str, str]] = Counter()
    for name in sorted(headers):
        instrument, program = owners[name]
        # Types whose choice this delivery changed for the exposure (an earlier context's
        # change is that context's impact).
        changed = {t for _, t in touched if (instrument, t) in touched
                   and chosen[name].get(t) != before[name].get(t)}
        relevant = {stage: {t: files for t, files in by_type.items() if t in changed}
                    for stage, by_type in used[name].items()}
        diffs = _differences(relevant, chosen[name], instrument, policy)
        if not diffs:
            continue
        first = min((d["stage"] for d in diffs), key=STAGES.index)
        session.add(ReferenceImpact(context=context.name, parent=contexts[name].get(first), program_id=program,
                                    exposure_name=name, first_stage=first, references=diffs, created_at=now))
        action = "reprocess" if any(d["policy"] == Action.REPROCESS for d in diffs) else "notify"
        counts[(program, first, action)] += 1
    session.flush()
    summary = ImpactSummary(exposures=sum(counts.values()), counts=tuple(
        ImpactCount(program=p, first_stage=stage, exposures=n, policy=action)
        for (p, stage, action), n in sorted(counts.items(), key=lambda kv: (kv[0][0], STAGES.index(kv[0][1]),
                                                                            kv[0][2]))))
    log.info("%s would calibrate %d archived exposure(s) with other reference files", context.name,
             summary.exposures)
    return summary


def list_impact(session: Session, context: str | int | None = None) -> list[ImpactInfo]:
    """The exposures a context would calibrate differently (default: the current one), by
    program and exposure. UnknownContextError for a context that does not exist."""
    row = resolve_context(session, context)
    if row is None:
        return []
    rows = session.scalars(select(ReferenceImpact).where(ReferenceImpact.context == row.name)
                           .order_by(ReferenceImpact.program_id, ReferenceImpact.exposure_name))
    return [ImpactInfo.from_row(r) for r in rows]


def open_requests(ctx, context: str) -> list[str]:
    """Open one reprocessing request per program for the exposures of ``context`` with a
    difference whose policy is ``reprocess`` (and no request yet), from the earliest stage
    such a difference is in, with the new context; record each request's id on its rows
    and dispatch its events (the reconciler does when there is no transport). Returns the
    request ids. A program whose request cannot be made is logged and skipped: the
    delivery it follows has committed."""
    # Imported here: shared.reprocessing imports shared.refdata, which imports this module.
    from shared.errors import InputError
    from shared.reprocessing import Scope, submit
    from shared.runtime import dispatch_events

    wanted: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(dict)
    with ctx.catalog.session() as s:
        for row in s.scalars(select(ReferenceImpact).where(ReferenceImpact.context == context,
                                                            ReferenceImpact.request_id.is_(None))):
            diffs = [d for d in row.references or () if d.get("policy") == Action.REPROCESS]
            if diffs:
                wanted[row.program_id][row.exposure_name] = diffs
    made = []
    for program in sorted(wanted):
        exposures = wanted[program]
        diffs = [d for ds in exposures.values() for d in ds]
        from_stage = min((d["stage"] for d in diffs), key=STAGES.index)
        types = sorted({d["reftype"] for d in diffs})
        try:
            view, _, ids = submit(ctx, program=program, scope=Scope(exposures=tuple(sorted(exposures))),
                                  from_stage=from_stage, reference_context=context,
                                  reason=f"reference context {context}: {', '.join(types)} changed",
                                  origin="reference")
        except InputError as exc:
            log.warning("%s: no reprocessing request for program %s: %s", context, program, exc)
            continue
        with ctx.catalog.session() as s:
            for row in s.scalars(select(ReferenceImpact).where(
                    ReferenceImpact.context == context, ReferenceImpact.program_id == program,
                    ReferenceImpact.exposure_name.in_(sorted(exposures)))):
                row.request_id = view["id"]
        if ids and ctx.transport is not None:
            dispatch_events(ctx.catalog, ctx.transport, event_ids=ids)
        log.info("%s: reprocessing request %s for %d exposure(s) of program %s from %s", context, view["id"],
                 len(exposures), program, from_stage)
        made.append(view["id"])
    return made
