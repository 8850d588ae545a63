"""Reprocessing requests: make products again, and make each unit's new revisions current
together (DESIGN §7, docs/reprocessing.md).

A request names a program and a scope (observations, exposures, products or an
association), the stage to start from (detector1, stage2, stage3) and a reference context
(the newest by default). :func:`submit` resolves the scope into *units* -- an exposure's
chain (its ``_rate``/``_rateints`` and ``_cal``/``_calints``, and ``_trapsfilled``) and a
Level-3 association's products (its ``_crf`` and Level-3 products) -- and records the
first steps as ``dms.reprocessing.step`` events in the same transaction. Each step runs
as the stage's ``reprocess`` task on that service's low-priority queue
(:mod:`shared.routing`); what it makes is *staged*: archived as a new revision under the
request, not current (:func:`shared.archiving.archive_product`). When a step ends,
:func:`step_done` records the unit's next step or, the unit being complete, switches it in
one transaction (:func:`complete_unit`): its staged revisions become current, the ones they
replace (and, for an association, the 2c products of members that left it) are
superseded, and each new revision is announced (``dms.product.archived`` with the
request's reason and what changed; only previews and notifications follow it). An
association unit starts when the exposure units of its members are complete. A step that
is dead-lettered fails its unit (:func:`fail_step`): its staged revisions are abandoned and
the old ones stay current. A request is idempotent: the same program, scope, stage and
context is the same request.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shared.access import revision_state
from shared.archiving import event_id_for, product_ref
from shared.catalog import (
    Association,
    Exposure,
    Observation,
    Product,
    Program,
    ReprocessingRequest,
    ReprocessingUnit,
    RequestState,
)
from shared.catalog import work as ledger
from shared.catalog.caom import refresh_program
from shared.catalog.queries import add_event, current_product
from shared.errors import InputError
from shared.messages import (
    Event,
    ProductArchived,
    ProductRef,
    ProductSuperseded,
    Reprocessed,
    ReprocessingCompleted,
    ReprocessingRequested,
    ReprocessingStep,
    new_event,
)
from shared.naming import BadNameError, made_by, parse_exposure
from shared.refdata import RefDataError
from shared.refdata.contexts import resolve_context
from shared.runtime import Handler, RequestScope, ServiceContext

__all__ = [
    "STAGES",
    "RequestError",
    "RequestsSummary",
    "Scope",
    "cancel",
    "complete_unit",
    "fail_step",
    "list_requests",
    "report",
    "reprocess_handler",
    "request_scope",
    "request_view",
    "step_done",
    "step_scope",
    "step_input",
    "submit",
    "summary",
]

log = logging.getLogger(__name__)

STAGES = ("detector1", "stage2", "stage3")
EXPOSURE, ASSOCIATION = "exposure", "association"
FINISHED = (RequestState.DONE, RequestState.FAILED, RequestState.CANCELLED)
SOURCE = "reprocessing"


class RequestError(InputError):
    """A request that cannot be made as asked (unknown program, product or context; an
    empty scope): the message says what to change."""


class UnknownRequestError(RequestError):
    """No request has this id."""


@dataclass(frozen=True)
class Scope:
    """What to remake: observations (numbers), exposures (names such as
    ``jw01234001001_01101_00001_nrca1``), products (file names) or one association (its
    ASN file name). All empty: the whole program."""

    observations: tuple[int, ...] = ()
    exposures: tuple[str, ...] = ()
    products: tuple[str, ...] = ()
    association: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"observations": sorted(set(self.observations)), "exposures": sorted(set(self.exposures)),
                "products": sorted(set(self.products)), "association": self.association}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Scope:
        return cls(tuple(data.get("observations") or ()), tuple(data.get("exposures") or ()),
                   tuple(data.get("products") or ()), data.get("association"))


# ----------------------------------------------------------------------------- helpers


def _now() -> datetime:
    return datetime.now(UTC)


def _exposure_of(filename: str) -> str | None:
    try:
        return parse_exposure(filename).exposure_id
    except BadNameError:
        return None


def _level2_asns(session: Session, program: str, exposure: str) -> list[Product]:
    """The current Level-2 ASN files whose product is ``exposure``."""
    names = session.scalars(select(Association.filename).where(
        Association.program_id == program, Association.level == 2, Association.product_name == exposure,
        Association.filename.is_not(None))).all()
    return [p for p in (current_product(session, n) for n in names) if p is not None]


def _uncals(session: Session, exposure: str) -> list[Product]:
    return list(session.scalars(select(Product).join(Exposure, Product.exposure_id == Exposure.id).where(
        Exposure.name == exposure, Product.suffix == "uncal", Product.is_current).order_by(Product.filename)))


def _level3(session: Session, program: str) -> list[Association]:
    return list(session.scalars(select(Association).where(
        Association.program_id == program, Association.level == 3, Association.filename.is_not(None))
        .order_by(Association.filename)))


def _members(asn: Association) -> set[str]:
    """The exposures of an association's members."""
    names = [m[0] for m in (asn.members or [])] or list(asn.expected or [])
    return {e for e in (_exposure_of(n) for n in names) if e is not None}


def _key(program: str, scope: Scope, from_stage: str, context: str) -> str:
    text = json.dumps({"program": program, "scope": scope.as_dict(), "from": from_stage, "context": context},
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


# ------------------------------------------------------------------------- submitting


def _resolve(session: Session, program: str, scope: Scope) -> tuple[list[str], list[Association]]:
    """The exposures and Level-3 associations a scope covers."""
    rows = session.scalars(select(Exposure.name).join(Observation, Exposure.observation_id == Observation.id)
                           .where(Observation.program_id == program)).all()
    known = set(rows)
    associations = _level3(session, program)
    wanted: set[str] = set()
    chosen_asns: list[Association] | None = None
    if scope.observations:
        numbers = set(scope.observations)
        present = set(session.scalars(select(Observation.number).where(
            Observation.program_id == program, Observation.number.in_(numbers))))
        if numbers - present:
            raise RequestError(f"program {program} has no observation {', '.join(map(str, sorted(numbers - present)))}")
        wanted |= set(session.scalars(select(Exposure.name).join(Observation).where(
            Observation.program_id == program, Observation.number.in_(numbers))))
    if scope.exposures:
        unknown = sorted(set(scope.exposures) - known)
        if unknown:
            raise RequestError(f"program {program} has no exposure {', '.join(unknown[:5])}")
        wanted |= set(scope.exposures)
    if scope.products:
        chosen_asns = []
        for name in scope.products:
            product = current_product(session, name)
            if product is None or product.program_id != program:
                raise RequestError(f"{name} is not a current product of program {program}")
            exposure = _exposure_of(name)
            if exposure is not None and exposure in known:
                wanted.add(exposure)
                continue
            makers = [a for a in associations if made_by(a.product_name, name)]
            if not makers:
                raise RequestError(f"{name} is neither an exposure's product nor made by a Level-3 association")
            chosen_asns += makers
            wanted |= set().union(*(_members(a) for a in makers))
    if scope.association:
        asn = session.scalar(select(Association).where(Association.program_id == program,
                                                         Association.filename == scope.association))
        if asn is None:
            raise RequestError(f"{scope.association} is not a current association of program {program}")
        wanted |= _members(asn)
        chosen_asns = (chosen_asns or []) + ([asn] if asn.level == 3 else [])
    if not (scope.observations or scope.exposures or scope.products or scope.association):
        wanted = known
    if not wanted:
        raise RequestError(f"the scope covers no exposure of program {program}")
    if chosen_asns is None or scope.observations or scope.exposures:
        chosen_asns = [a for a in associations if _members(a) & wanted]
    unique = {a.filename: a for a in chosen_asns}
    return sorted(wanted), [unique[n] for n in sorted(unique)]


def submit(
    ctx: ServiceContext,
    *,
    program: str,
    scope: Scope,
    from_stage: str,
    reference_context: str | None = None,
    reason: str = "",
    software_reason: str | None = None,
    requested_by: str | None = None,
    origin: str = "user",
) -> tuple[dict[str, Any], bool, list[str]]:
    """Record a request and its first steps; returns (its view, whether it is new, the ids
    of the events to dispatch). The same program, scope, stage and context returns the
    request made before (not new, nothing to dispatch).

    Raises RequestError for an unknown program, observation, exposure, product,
    association or context, a stage not in :data:`STAGES`, or a scope with nothing to do.
    """
    if from_stage not in STAGES:
        raise RequestError(f"unknown stage {from_stage!r}; one of {', '.join(STAGES)}")
    with ctx.catalog.session() as s:
        if s.get(Program, program) is None:
            raise RequestError(f"no program {program}")
        try:
            context_row = resolve_context(s, reference_context)
        except RefDataError as exc:
            raise RequestError(str(exc)) from None
        if context_row is None:
            raise RequestError("no reference context exists yet; deliver reference files first")
        context = context_row.name
        key = _key(program, scope, from_stage, context)
        existing = s.scalar(select(ReprocessingRequest).where(ReprocessingRequest.key == key))
        if existing is not None:
            return _view(s, existing), False, []
        exposures, associations = _resolve(s, program, scope)
        now = _now()
        request = ReprocessingRequest(
            id=str(uuid.uuid4()), key=key, program_id=program, scope=scope.as_dict(), from_stage=from_stage,
            reference_context=context, reason=reason, software_reason=software_reason, requested_by=requested_by,
            origin=origin, state=RequestState.RUNNING, created_at=now, started_at=now,
        )
        s.add(request)
        s.flush()
        events: list[Event] = []
        if from_stage != "stage3":
            for name in exposures:
                inputs = _uncals(s, name) if from_stage == "detector1" else _level2_asns(s, program, name)
                if not inputs:  # nothing archived to start from (not ingested, no Level-2 ASN yet)
                    log.info("reprocessing request %s: %s has no current %s; not in the request", request.id,
                             name, "_uncal" if from_stage == "detector1" else "Level-2 ASN")
                    continue
                unit = ReprocessingUnit(request_id=request.id, kind=EXPOSURE, name=name, stage=from_stage,
                                        state=RequestState.RUNNING, pending=[p.filename for p in inputs],
                                        started_at=now)
                s.add(unit)
                events += [_step(s, request, unit, p) for p in inputs]
        for asn in associations:
            product = current_product(s, asn.filename)
            if product is None:
                continue
            unit = ReprocessingUnit(request_id=request.id, kind=ASSOCIATION, name=asn.filename, stage="stage3",
                                    state=RequestState.QUEUED, pending=[asn.filename])
            s.add(unit)
            if from_stage == "stage3":
                unit.state, unit.started_at = RequestState.RUNNING, now
                events.append(_step(s, request, unit, product))
        s.flush()
        if not request.units:
            raise RequestError(f"nothing archived to reprocess from {from_stage} in that scope of program {program}")
        requested = new_event(ReprocessingRequested(
            request_id=request.id, program=program, scope=scope.as_dict(), from_stage=from_stage,
            reference_context=context, reason=reason, requested_by=requested_by,
            units=tuple(u.name for u in request.units)), SOURCE, subject=request.id,
            event_id=event_id_for("reprocessing-requested", request.id))
        ids = [add_event(s, e).id for e in (requested, *events)]
        view = _view(s, request)
    log.info("reprocessing request %s: program %s from %s with %s, %d unit(s)", view["id"], program, from_stage,
             context, len(view["units"]))
    return view, True, ids


def _step(session: Session, request: ReprocessingRequest, unit: ReprocessingUnit, product: Product) -> Event:
    ref = product_ref(session, product)
    return new_event(
        ReprocessingStep(request_id=request.id, stage=unit.stage, unit=unit.name, product=ref,
                         reference_context=request.reference_context),
        SOURCE, subject=product.filename,
        event_id=event_id_for("reprocessing-step", request.id, unit.stage, unit.name, product.filename),
    )


# ---------------------------------------------------------------------------- running


def request_scope(ctx: ServiceContext, event: Event) -> tuple[ReprocessingStep, ServiceContext] | None:
    """For a reprocessing task: its step and a context that works for the request, or
    None (logged) when the request was cancelled or has ended: nothing to do."""
    step = event.payload_as(ReprocessingStep)
    scoped = step_scope(ctx, step)
    return None if scoped is None else (step, scoped)


def step_scope(ctx: ServiceContext, step: ReprocessingStep) -> ServiceContext | None:
    """A context that works for the request of ``step`` (a task that carries on a step
    split across tasks), or None (logged) when the request was cancelled or has ended."""
    with ctx.catalog.session() as s:
        request = s.get(ReprocessingRequest, step.request_id)
        if request is None:
            raise RequestError(f"no reprocessing request {step.request_id}")
        unit = s.scalar(select(ReprocessingUnit).where(ReprocessingUnit.request_id == request.id,
                                                       ReprocessingUnit.name == step.unit))
        if request.state in FINISHED or unit is None or unit.state in FINISHED:
            log.info("reprocessing request %s is %s (unit %s: %s); step %s of %s not run", request.id,
                     request.state, step.unit, unit.state if unit else "unknown", step.stage, step.product.filename)
            return None
        scope = RequestScope(request.id, step.unit, request.reference_context, request.reason)
    return _with_request(ctx, scope)


def _with_request(ctx: ServiceContext, scope: RequestScope) -> ServiceContext:
    return replace(ctx, request=scope)


def step_input(ctx: ServiceContext, step: ReprocessingStep) -> tuple[ProductRef, Product]:
    """The current revision of the step's input (a newer one may have arrived since the
    request was made) and its catalog row."""
    with ctx.catalog.session() as s:
        product = current_product(s, step.product.filename)
        if product is None:
            raise RequestError(f"{step.product.filename} is no longer archived; the step cannot run")
        _ = product.exposure
        return product_ref(s, product), product


def reprocess_handler(make: Callable[[ServiceContext, ProductRef, Product], object]) -> Handler:
    """The ``<service>.reprocess`` handler of a stage: ``make(ctx, ref, product)`` is the
    stage's own work on one input (the same function its operational handler calls),
    run for the request (staged outputs, the request's inputs and context), then
    :func:`step_done`."""

    def handle(event: Event, ctx: ServiceContext) -> list[str]:
        scoped = request_scope(ctx, event)
        if scoped is None:
            return []
        step, scoped_ctx = scoped
        ref, product = step_input(scoped_ctx, step)
        make(scoped_ctx, ref, product)
        return step_done(scoped_ctx, step)

    return handle


def step_done(ctx: ServiceContext, step: ReprocessingStep) -> list[str]:
    """After a step archived (staged) its outputs: record the unit's next step or complete
    the unit, start the association units it was the last member of, end the request when
    every unit has ended; the work item is done in the same transaction. Returns the ids
    of the events recorded."""
    ids: list[str] = []
    with ctx.catalog.session() as s:
        request = s.scalar(select(ReprocessingRequest).where(ReprocessingRequest.id == step.request_id)
                           .with_for_update())
        unit = s.scalar(select(ReprocessingUnit).where(ReprocessingUnit.request_id == request.id,
                                                       ReprocessingUnit.name == step.unit).with_for_update())
        if request.state in FINISHED or unit.state in FINISHED:
            _abandon(s, request.id, unit.name, _now())
        else:
            pending = [n for n in unit.pending if n != step.product.filename]
            unit.pending = pending
            if not pending:
                ids += _advance(s, request, unit)
        if ctx.work is not None:
            ledger.complete(s, ctx.work)
    return ids


def _advance(session: Session, request: ReprocessingRequest, unit: ReprocessingUnit) -> list[str]:
    ids: list[str] = []
    if unit.kind == EXPOSURE and unit.stage == "detector1":
        asns = _level2_asns(session, request.program_id, unit.name)
        if asns:
            unit.stage, unit.pending = "stage2", [p.filename for p in asns]
            return [add_event(session, _step(session, request, unit, p)).id for p in asns]
    ids += complete_unit(session, request, unit)
    if unit.kind == EXPOSURE:
        ids += _start_ready_associations(session, request)
    ids += _finish_if_ended(session, request)
    return ids


def _start_ready_associations(session: Session, request: ReprocessingRequest) -> list[str]:
    units = list(session.scalars(select(ReprocessingUnit).where(ReprocessingUnit.request_id == request.id)))
    exposures = {u.name: u for u in units if u.kind == EXPOSURE}
    ids = []
    for unit in units:
        if unit.kind != ASSOCIATION or unit.state != RequestState.QUEUED:
            continue
        asn = session.scalar(select(Association).where(Association.filename == unit.name))
        mine = [exposures[e] for e in _members(asn) if e in exposures] if asn is not None else []
        if any(u.state == RequestState.FAILED for u in mine):
            _fail_unit(session, unit, "a member's exposure could not be reprocessed", _now())
        elif all(u.state == RequestState.DONE for u in mine):
            product = current_product(session, unit.name)
            if product is None:
                _fail_unit(session, unit, f"{unit.name} is no longer current", _now())
                continue
            unit.state, unit.started_at = RequestState.RUNNING, _now()
            ids.append(add_event(session, _step(session, request, unit, product)).id)
    return ids


def complete_unit(session: Session, request: ReprocessingRequest, unit: ReprocessingUnit) -> list[str]:
    """Make the unit's staged revisions current and supersede what they replace, in the
    caller's transaction; returns the ids of the events recorded (one
    ``dms.product.archived`` per new revision, one ``dms.product.superseded`` per
    revision replaced)."""
    now = _now()
    staged = list(session.scalars(select(Product).where(
        Product.request_id == request.id, Product.request_unit == unit.name, Product.is_current.is_(False),
        Product.abandoned_at.is_(None), Product.superseded_at.is_(None)).order_by(Product.filename)))
    ids: list[str] = []
    source = f"{SOURCE}/{request.id}"
    for product in staged:
        previous = current_product(session, product.filename)
        if previous is not None:
            previous.is_current, previous.superseded_at = False, now
        session.flush()
        product.is_current = True
        ref = product_ref(session, product)
        reason = product.reason or {}
        payload = ProductArchived(
            product=ref, level=product.level, data_release=product.data_release,
            reprocessing=Reprocessed(request_id=request.id, reason=request.reason,
                                     old_context=reason.get("old_context"), new_context=product.reference_context,
                                     references=tuple(reason.get("references") or ()), changes=product.changes),
        )
        ids.append(add_event(session, new_event(payload, source, subject=product.filename, event_id=event_id_for(
            "archived", product.filename, product.revision, ref.sha256))).id)
        if previous is not None:
            ids.append(add_event(session, new_event(
                ProductSuperseded(filename=product.filename, program=product.program_id, revision=previous.revision,
                                  superseded_by=product.revision), source, subject=product.filename,
                event_id=event_id_for("superseded", product.filename, previous.revision))).id)
    _follow_members(session, request.program_id, {p.filename: p.revision for p in staged})
    if unit.kind == ASSOCIATION:
        ids += _supersede_departed(session, request, unit, {p.filename for p in staged}, now)
    refresh_program(session, request.program_id)  # its CAOM rows follow what became current
    unit.state, unit.finished_at = RequestState.DONE, now
    log.info("reprocessing request %s: unit %s complete, %d new revision(s) current", request.id, unit.name,
             len(staged))
    return ids


def _follow_members(session: Session, program: str, revisions: dict[str, int]) -> None:
    """The association rows record the member revisions of the ASN each emitted last; a
    member the request made anew is that member still (its ASN names it, not a revision),
    so the rows follow it, and the next association update of the program does not take
    the new revision for a changed member set and remake what the request just made."""
    if not revisions:
        return
    for asn in session.scalars(select(Association).where(Association.program_id == program)):
        members = [list(m) for m in (asn.members or [])]
        changed = False
        for m in members:
            if m[0] in revisions and m[1] != revisions[m[0]]:
                m[1], changed = revisions[m[0]], True
        if changed:
            asn.members = members


def _supersede_departed(session: Session, request: ReprocessingRequest, unit: ReprocessingUnit,
                        made: set[str], now: datetime) -> list[str]:
    """The 2c products an earlier run of this association made for members it no longer
    has: superseded with the unit (a reader never sees a stale ``_crf`` as current)."""
    asn = session.scalar(select(Association).where(Association.filename == unit.name))
    if asn is None:
        return []
    members = _members(asn)
    ids = []
    for suffix in ("crf", "crfints"):
        rows = session.scalars(select(Product).where(
            Product.program_id == request.program_id, Product.is_current, Product.suffix == suffix,
            Product.filename.like(f"%\\_{asn.acid}\\_{suffix}.fits", escape="\\")))
        for row in rows:
            if row.filename in made or _exposure_of(row.filename) in members:
                continue
            row.is_current, row.superseded_at = False, now
            ids.append(add_event(session, new_event(
                ProductSuperseded(filename=row.filename, program=row.program_id, revision=row.revision,
                                  superseded_by=row.revision, replaced_by=unit.name),
                f"{SOURCE}/{request.id}", subject=row.filename,
                event_id=event_id_for("superseded", row.filename, row.revision))).id)
            log.info("%s r%d: its member left %s; superseded", row.filename, row.revision, unit.name)
    return ids


def _abandon(session: Session, request_id: str, unit: str | None, now: datetime) -> int:
    """Mark the staged (never current) revisions of a unit (or of the whole request)
    abandoned; returns how many."""
    query = select(Product).where(Product.request_id == request_id, Product.is_current.is_(False),
                                  Product.abandoned_at.is_(None), Product.superseded_at.is_(None))
    if unit is not None:
        query = query.where(Product.request_unit == unit)
    rows = list(session.scalars(query))
    for row in rows:
        row.abandoned_at = now
    return len(rows)


def _fail_unit(session: Session, unit: ReprocessingUnit, reason: str, now: datetime) -> None:
    unit.state, unit.error, unit.finished_at = RequestState.FAILED, reason[:2000], now
    abandoned = _abandon(session, unit.request_id, unit.name, now)
    log.warning("reprocessing request %s: unit %s failed (%s); %d staged revision(s) abandoned, the old ones "
                "stay current", unit.request_id, unit.name, reason, abandoned)


def _finish_if_ended(session: Session, request: ReprocessingRequest) -> list[str]:
    session.flush()
    units = list(session.scalars(select(ReprocessingUnit).where(ReprocessingUnit.request_id == request.id)))
    if any(u.state not in FINISHED for u in units):
        return []
    failed = [u for u in units if u.state == RequestState.FAILED]
    request.state = RequestState.FAILED if failed else RequestState.DONE
    request.finished_at = _now()
    if failed:
        request.error = f"{len(failed)} of {len(units)} unit(s) failed; first: {failed[0].name}: {failed[0].error}"
    return [_completed_event(session, request)]


def _completed_event(session: Session, request: ReprocessingRequest) -> str:
    made = list(session.scalars(select(Product).where(Product.request_id == request.id, Product.is_current)
                                .order_by(Product.filename)))
    payload = ReprocessingCompleted(request_id=request.id, program=request.program_id, state=request.state,
                                    products=tuple(product_ref(session, p) for p in made))
    log.info("reprocessing request %s %s: %d new revision(s) current", request.id, request.state, len(made))
    return add_event(session, new_event(payload, SOURCE, subject=request.id,
                                        event_id=event_id_for("reprocessing-completed", request.id))).id


def fail_step(session: Session, payload: dict[str, Any], reason: str) -> list[str]:
    """A reprocessing step was dead-lettered (or a part of it: a split stage-3 run's
    ``Stage3Part`` carries its step): its unit fails (staged revisions abandoned, the old
    ones stay current), association units waiting for it fail too, and the request ends
    when nothing else runs. In the caller's transaction; returns the ids of the events
    recorded. A payload that is neither is ignored."""
    try:
        step = Event.model_validate(payload).payload
    except Exception:
        return []
    step = getattr(step, "step", step)
    if not isinstance(step, ReprocessingStep):
        return []
    request = session.scalar(select(ReprocessingRequest).where(ReprocessingRequest.id == step.request_id)
                             .with_for_update())
    if request is None or request.state in FINISHED:
        return []
    unit = session.scalar(select(ReprocessingUnit).where(ReprocessingUnit.request_id == request.id,
                                                         ReprocessingUnit.name == step.unit))
    if unit is None or unit.state in FINISHED:
        return []
    _fail_unit(session, unit, f"{step.stage} on {step.product.filename}: {reason}", _now())
    ids = _start_ready_associations(session, request)
    return ids + _finish_if_ended(session, request)


def cancel(ctx: ServiceContext, request_id: str) -> tuple[dict[str, Any], list[str]]:
    """Cancel a request: units not complete stop (steps already sent do nothing), their
    staged revisions are abandoned; units already complete stay current. Returns the
    view and the ids of the events to dispatch. Cancelling an ended request changes
    nothing."""
    with ctx.catalog.session() as s:
        request = s.scalar(select(ReprocessingRequest).where(ReprocessingRequest.id == request_id).with_for_update())
        if request is None:
            raise UnknownRequestError(f"no reprocessing request {request_id}")
        ids: list[str] = []
        if request.state not in FINISHED:
            now = _now()
            for unit in request.units:
                if unit.state not in FINISHED:
                    unit.state, unit.finished_at = RequestState.CANCELLED, now
            _abandon(s, request.id, None, now)
            request.state, request.finished_at = RequestState.CANCELLED, now
            ids.append(_completed_event(s, request))
        return _view(s, request), ids


# ------------------------------------------------------------------------------ views


@dataclass(frozen=True)
class UnitView:
    kind: str
    name: str
    stage: str
    state: str
    started_at: str | None
    finished_at: str | None
    error: str | None
    products: list[str] = field(default_factory=list)


def _iso(when: datetime | None) -> str | None:
    if when is None:
        return None
    return (when.replace(tzinfo=UTC) if when.tzinfo is None else when).isoformat()


def _view(session: Session, request: ReprocessingRequest) -> dict[str, Any]:
    units = list(session.scalars(select(ReprocessingUnit).where(ReprocessingUnit.request_id == request.id)
                                 .order_by(ReprocessingUnit.id)))
    products = session.execute(select(Product.request_unit, Product.filename, Product.revision).where(
        Product.request_id == request.id).order_by(Product.filename)).all()
    by_unit: dict[str, list[str]] = {}
    for unit_name, filename, revision in products:
        by_unit.setdefault(unit_name, []).append(f"{filename} r{revision}")
    done = sum(u.state == RequestState.DONE for u in units)
    ended = sum(u.state in FINISHED for u in units)
    eta = None
    if request.state not in FINISHED and done and request.started_at is not None:
        started = request.started_at.replace(tzinfo=UTC) if request.started_at.tzinfo is None else request.started_at
        elapsed = (_now() - started).total_seconds()
        eta = round(elapsed / ended * (len(units) - ended), 1) if ended else None
    return {
        "id": request.id, "program": request.program_id, "scope": request.scope, "from_stage": request.from_stage,
        "reference_context": request.reference_context, "reason": request.reason,
        "software_reason": request.software_reason, "requested_by": request.requested_by, "origin": request.origin,
        "state": request.state, "created_at": _iso(request.created_at), "started_at": _iso(request.started_at),
        "finished_at": _iso(request.finished_at), "error": request.error,
        "progress": {"units": len(units), "done": done, "failed": sum(u.state == RequestState.FAILED for u in units),
                     "ended": ended, "eta_seconds": eta},
        "units": [asdict(UnitView(u.kind, u.name, u.stage, u.state, _iso(u.started_at), _iso(u.finished_at), u.error,
                                  by_unit.get(u.name, []))) for u in units],
    }


def request_view(session: Session, request_id: str) -> dict[str, Any]:
    """A request as the API and ``dms reprocess status`` show it: its fields, progress
    (units done, failed, ended; an ETA from the pace so far) and each unit."""
    request = session.get(ReprocessingRequest, request_id)
    if request is None:
        raise UnknownRequestError(f"no reprocessing request {request_id}")
    return _view(session, request)


def list_requests(session: Session, *, program: str | None = None, programs: Sequence[str] | None = None,
                  state: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """Requests, newest first (of one program, of the programs given, in one state)."""
    query = select(ReprocessingRequest).order_by(ReprocessingRequest.created_at.desc()).limit(limit)
    if program is not None:
        query = query.where(ReprocessingRequest.program_id == program)
    if programs is not None:
        query = query.where(ReprocessingRequest.program_id.in_(list(programs)))
    if state is not None:
        query = query.where(ReprocessingRequest.state == state)
    return [_view(session, r) for r in session.scalars(query)]


@dataclass(frozen=True)
class RequestsSummary:
    """Requests per state (every :class:`RequestState`, zeros included) and the view of
    the running request that started first (None when none runs), for ``dms status``."""

    by_state: dict[str, int]
    oldest_running: dict[str, Any] | None


def summary(session: Session) -> RequestsSummary:
    """How many requests are in each state, and the oldest running one with its progress."""
    counts = dict(session.execute(select(ReprocessingRequest.state, func.count())
                                  .group_by(ReprocessingRequest.state)).all())
    oldest = session.scalar(
        select(ReprocessingRequest).where(ReprocessingRequest.state == RequestState.RUNNING)
        .order_by(func.coalesce(ReprocessingRequest.started_at, ReprocessingRequest.created_at),
                  ReprocessingRequest.id).limit(1))
    return RequestsSummary({state.value: counts.get(state.value, 0) for state in RequestState},
                           None if oldest is None else _view(session, oldest))


def report(session: Session, request_id: str) -> dict[str, Any]:
    """What a request made and what changed: per product revision it made, whether it is
    current, staged or abandoned, the revision it replaced, why it was made and how it
    differs (:mod:`shared.changes`)."""
    from shared.changes import summary

    view = request_view(session, request_id)
    rows = session.scalars(select(Product).where(Product.request_id == request_id).order_by(Product.filename))
    products = []
    for p in rows:
        replaced = session.scalar(select(Product.revision).where(
            Product.filename == p.filename, Product.revision < p.revision, Product.request_id.is_distinct_from(
                request_id)).order_by(Product.revision.desc()).limit(1))
        state = revision_state(p)
        products.append({
            "filename": p.filename, "suffix": p.suffix, "revision": p.revision, "replaces": replaced,
            "state": state, "unit": p.request_unit, "reference_context": p.reference_context,
            "reason": p.reason, "changes": p.changes, "summary": summary(p.changes) if p.changes else None,
        })
    return {**view, "products": products}

