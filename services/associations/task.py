"""The associations handler: an exposure product archived -> pool and ASNs re-derived.

Every event is only a trigger: the pool and the associations are rebuilt from the catalog
and the program's latest plan, so a repeated or reordered event gives the same result.
The pool is archived when it changed (identical bytes are a no-op) and replaces the
program's earlier pools; an ASN is archived when it is complete and its member set
(filenames and revisions) differs from the one last emitted for the same candidate, type
and product, and replaces that one (superseded, no longer current) when its name differs. Its ``dms.product.archived``
event carries ``asn_type``, ``asn_id``, ``asn_rule`` and ``products`` for the router.
Last, the program's association report (:mod:`services.associations.report`) is archived
when its content changed.
"""

from __future__ import annotations

import logging
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ValidationError
from sqlalchemy import select

from services.associations.builder import AssociationParams, Evaluation, evaluate, spec_key, to_emit
from services.associations.pool import pool_bytes
from services.associations.records import (
    Emitted,
    exposure_starts,
    last_emitted,
    made_from_associations,
    program_lock,
    save_evaluation,
)
from services.associations.report import render_report, report_input
from services.associations.state import load_state
from shared.archiving import archive_product
from shared.catalog.models import Product
from shared.errors import InputError, NonRetriableError
from shared.messages import Event
from shared.naming import BadNameError, ReportName, parse_exposure
from shared.plan import Plan, load_latest_plan
from shared.runtime import ServiceContext

__all__ = ["HANDLERS", "POOL_LEVEL", "REPORT_SUFFIX", "handle_product", "update_program"]

log = logging.getLogger(__name__)

POOL_LEVEL = 2  # the pool lists stage-1 exposures; the Level-3 ASNs made from it are level 3
REPORT_SUFFIX = ReportName.SUFFIX


def _program_of(event: Event) -> str:
    ref = event.product
    if ref is None:
        raise NonRetriableError(f"event {event.id} names no product; associations.update needs one")
    if ref.program:
        return ref.program
    try:
        return parse_exposure(ref.filename).program
    except BadNameError as exc:
        raise InputError(f"event {event.id}: cannot tell the program of {ref.filename}: {exc}") from exc


def _plan(ctx: ServiceContext, program: str) -> Plan:
    try:
        plan = load_latest_plan(ctx.store, program)
    except ValidationError as exc:
        raise InputError(f"the stored plan of program {program} is invalid: {exc.errors()[0]['msg']}; "
                                "deliver a corrected plan and send the event again") from exc
    if plan is None:
        raise NonRetriableError(f"program {program} has no delivered plan; deliver it, then send the event again")
    return plan


def _archive_pool(ctx: ServiceContext, evaluation: Evaluation, tmp: Path) -> list[str]:
    """Archive the pool; it replaces the program's earlier pools (their names carry an
    older time stamp), which stop being current."""
    pool = evaluation.pool
    path = tmp / pool.filename
    path.write_bytes(pool_bytes(pool))
    with ctx.catalog.session() as s:
        earlier = s.scalars(select(Product.filename).where(
            Product.program_id == evaluation.program, Product.suffix == "pool", Product.is_current)).all()
    archived = archive_product(
        ctx, path, suffix="pool", level=POOL_LEVEL, program=evaluation.program, observation=0, exposure=None,
        inputs=list(pool.inputs), source=f"{ctx.settings.source}/associations", product_type="AUXILIARY",
        content_type="text/csv", replaces=earlier, sole_writer=True,
    )
    return archived.event_ids


def update_program(ctx: ServiceContext, plan: Plan, params: AssociationParams) -> list[str]:
    """Re-derive the pool and associations of ``plan``'s program; archive what changed.
    Returns the ids of the events recorded."""
    program = plan.program
    event_ids: list[str] = []
    with program_lock(ctx.catalog, program):
        with ctx.catalog.session() as s:
            state = load_state(s, program)
            last = last_emitted(s, program)
        evaluation = evaluate(plan, state, params)
        emitted: list[Emitted] = []
        with tempfile.TemporaryDirectory(prefix="dms-associations-") as tmp:
            tmp = Path(tmp)
            if evaluation.pool is not None:
                event_ids += _archive_pool(ctx, evaluation, tmp)
            for item in to_emit(evaluation, last):
                spec = item.spec
                before = last.get(spec_key(spec))
                path = tmp / item.filename
                path.write_bytes(item.content(evaluation.pool, ctx.settings.cal_ver))
                archived = archive_product(
                    ctx, path, suffix="asn", level=spec.level, program=program,
                    observation=_observation_of(spec.acid), exposure=None,
                    inputs=[evaluation.pool.filename, *(m.expname for m in spec.members)],
                    source=f"{ctx.settings.source}/associations", product_type="AUXILIARY",
                    content_type="application/json", asn_id=spec.acid, asn_type=spec.asn_type,
                    asn_rule=spec.asn_rule, asn_products=[p.name for p in spec.products],
                    replaces=[before.filename] if before is not None and before.filename else [],
                    sole_writer=True,
                )
                log.info("%s: %s (%d members)", program, item.filename, len(spec.members))
                emitted.append(Emitted(item, archived.product_id))
                event_ids += archived.event_ids
        with ctx.catalog.session() as s:
            save_evaluation(s, evaluation, emitted, datetime.now(UTC))
        if evaluation.pool is not None:
            event_ids += _archive_report(ctx, plan, evaluation)
    return event_ids


def _archive_report(ctx: ServiceContext, plan: Plan, evaluation: Evaluation) -> list[str]:
    """Archive the program's association report when its content changed (a new revision
    of ``jw<ppppp>_asn-report.html``; identical bytes are a no-op). It holds metadata
    only, so its data are public from the start (``data_release``: now). It names no
    input: it is read from the catalog and the plan, and a product made from inputs is
    released with them (the pool, under exclusive access), which it need not be."""
    program = evaluation.program
    with ctx.catalog.session() as s:
        emitted = {key: (e.filename, e.signature) for key, e in last_emitted(s, program).items()}
        made = made_from_associations(s, program)
        starts = exposure_starts(s, program)
    html = render_report(report_input(plan, evaluation, emitted, made, starts))
    name = ReportName(program).format()
    with tempfile.TemporaryDirectory(prefix="dms-asn-report-") as tmp:
        path = Path(tmp) / name
        path.write_text(html, encoding="utf-8")
        archived = archive_product(
            ctx, path, suffix=REPORT_SUFFIX, level=POOL_LEVEL, program=program, observation=0, exposure=None,
            inputs=[], source=f"{ctx.settings.source}/associations", product_type="INFO",
            content_type="text/html", data_release=datetime.now(UTC), sole_writer=True,
        )
    if archived.event_id:
        log.info("%s: association report %s r%d", program, name, archived.ref.revision)
    return archived.event_ids


def _observation_of(acid: str) -> int:
    """Observation number for the object key: an observation candidate's, else 0 (program level)."""
    return int(acid[1:]) if acid.startswith("o") else 0


def service_params(ctx: ServiceContext) -> AssociationParams:
    return AssociationParams(discover=ctx.settings.discover_associations)


def handle_product(event: Event, ctx: ServiceContext) -> list[str]:
    program = _program_of(event)
    return update_program(ctx, _plan(ctx, program), service_params(ctx))


HANDLERS = {"associations.update": handle_product}
