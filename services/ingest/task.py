"""The ingest handler: fetch telemetry -> SDP pipeline -> store -> register -> announce.

Idempotent: the output bytes are a pure function of the telemetry, the plan and the time
the raw file was first stored, object keys are deterministic, catalog writes are
keyed by (filename, revision) and event ids by content. A redelivered message therefore
finds its products already stored and registered and announces nothing twice.
"""

from __future__ import annotations

import logging
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pydantic import ValidationError
from sqlalchemy import select

from services.ingest.assembly import StreamReport
from services.ingest.auxiliary import msa_problem, opd_facts
from services.ingest.guidestar import GuideStarFile
from services.ingest.pipeline import IngestOutput, Rejection, UncalFile, ingest_telemetry
from services.ingest.quarantine import quarantine
from services.ingest.receive import WAVEFRONT
from shared.archiving import archive_product
from shared.catalog import Exposure, WavefrontOpd
from shared.catalog.queries import latest_rejection, upsert_exposure, upsert_program
from shared.datamodels import write_product
from shared.ephemeris import Ephemeris, load_latest_ephemeris
from shared.errors import NonRetriableError
from shared.messages import Event, IngestSummary, TelemetryArrived
from shared.naming import object_key, parse_msa_metadata, parse_opd
from shared.plan import Plan, load_latest_plan, validation_summary
from shared.runtime import ServiceContext
from shared.storage import Bucket, ImmutableObjectError, StoredObject

__all__ = ["HANDLERS", "handle_telemetry", "ingest_summary"]

log = logging.getLogger(__name__)

UNCAL_LEVEL = 1  # CAOM calibration level of _uncal


def handle_telemetry(event: Event, ctx: ServiceContext) -> list[str]:
    ref = event.payload_as(TelemetryArrived).telemetry
    bucket, key = ctx.store.parse_uri(ref.uri)
    raw = ctx.store.stat(bucket, key)
    if raw is None:
        raise NonRetriableError(f"telemetry {ref.uri} named by event {event.id} is not in the object store")
    data = ctx.store.get_bytes(bucket, key)
    if ref.suffix == "msa":
        return _ingest_msa(ctx, raw, data, event)
    if ref.suffix == "opd":
        return _ingest_opd(ctx, raw, data, event)
    plans: dict[str, Plan | None] = {}
    plan_errors: dict[str, str] = {}

    def plan_for(program: str) -> Plan | None:
        if program not in plans:
            try:
                plans[program] = load_latest_plan(ctx.store, program)
            except ValidationError as exc:
                plans[program] = None
                plan_errors[program] = (f"the newest stored plan of program {program} is invalid: "
                                        f"{validation_summary(exc)}; deliver a corrected plan and re-queue this file")
        return plans[program]

    def ephemeris_for(program: str) -> Ephemeris | None:
        # Delivery refuses an ephemeris that does not validate, so a stored one does;
        # should it not, the exposure falls back to the geocentre and says so.
        try:
            return load_latest_ephemeris(ctx.store, program)
        except ValidationError as exc:
            log.error("the newest stored ephemeris of program %s is invalid: %s", program, validation_summary(exc))
            return None

    if raw.sha256 != ref.sha256:
        output = IngestOutput(rejections=[Rejection(
            "checksum_mismatch",
            f"stored telemetry sha256 {raw.sha256[:12]}... differs from the announced {ref.sha256[:12]}...",
        )])
    else:
        # DATE is when the raw file was first stored, so every run over these bytes
        # (redelivery, re-queue) writes identical products.
        output = ingest_telemetry(
            data, plan_for, ephemeris_for=ephemeris_for, created=raw.created or event.time, software_version=ctx.settings.cal_ver,
            segment_bytes=ctx.settings.segment_bytes, max_inflated_bytes=ctx.settings.ingest_max_inflated_bytes,
            time_tolerance=timedelta(seconds=ctx.settings.ingest_time_tolerance_s),
        )
    event_ids = [_reject(ctx, raw, r, plan_errors, event) for r in output.rejections]
    if output.files or output.guide_files:
        summary = ingest_summary(output.report)
        with tempfile.TemporaryDirectory(prefix="dms-ingest-") as tmp:
            for f in output.files:
                plan = plans[f.name.program]
                event_ids += _archive(ctx, f, plan, Path(tmp), raw, summary)
            # After the science: a fine-guide product belongs to the exposure it guided.
            for g in output.guide_files:
                event_ids += _archive_guiding(ctx, g, plans[g.name.program], Path(tmp), raw)
    if output.report.data_problem:
        log.warning("ingest of %s: data problems %s", raw.filename, output.report.summary())
    return [e for e in event_ids if e]


def ingest_summary(report: StreamReport) -> IngestSummary:
    """The counts of a decoding report as the ``ingest`` field of ``dms.product.archived``."""
    return IngestSummary(**report.summary())


def _reject(ctx: ServiceContext, raw: StoredObject, rejection: Rejection, plan_errors: dict, event: Event) -> str | None:
    reason, detail = rejection.reason, rejection.detail
    if reason == "missing_plan" and rejection.program in plan_errors:
        reason, detail = "invalid_plan", plan_errors[rejection.program]
    elif reason == "missing_plan":
        with ctx.catalog.session() as s:
            refused = latest_rejection(s, rejection.program, "invalid_plan")
            if refused is not None:
                detail = (f"no valid observation plan of program {rejection.program} has been stored: "
                          f"{refused.raw_filename} delivered {refused.created_at:%Y-%m-%d %H:%M} was refused "
                          f"({refused.detail}); deliver a corrected plan and re-queue this file")
    return quarantine(ctx, raw, reason, detail, rejection.program, event.time)


def _archive(ctx: ServiceContext, f: UncalFile, plan: Plan, tmp: Path, raw: StoredObject,
             summary: IngestSummary) -> list[str]:
    path = write_product(tmp / f.name.format(), f.product)
    with ctx.catalog.session() as s:
        upsert_program(s, plan)
        exposure = upsert_exposure(s, plan.program, f.observation, f.name.exposure_id, **f.exposure_fields)
    archived = archive_product(
        ctx, path, suffix="uncal", level=UNCAL_LEVEL, program=plan.program, observation=f.observation,
        exposure=exposure, inputs=[raw.uri], source=f"{ctx.settings.source}/ingest", segment=f.name.segment,
        ingest=summary,
    )
    return archived.event_ids  # with the dms.product.superseded of a revision it replaces


def _archive_guiding(ctx: ServiceContext, g: GuideStarFile, plan: Plan, tmp: Path, raw: StoredObject) -> list[str]:
    """Archive a guide-star product: AUXILIARY, of its observation; a fine-guide product
    belongs to the exposure it guided (the catalog row of the exposure's first detector,
    when that exposure has been ingested)."""
    path = write_product(tmp / g.name.format(), g.product)
    exposure = None
    with ctx.catalog.session() as s:
        upsert_program(s, plan)
        if g.guided is not None:
            obs = plan.observation(g.observation)
            vg, seq, act, num = g.guided
            name = (f"{g.name.visit_id}_{vg:02d}{seq}{act:02d}_{num:05d}_{obs.detectors[0].lower()}")
            exposure = s.scalar(select(Exposure).where(Exposure.name == name))
    archived = archive_product(
        ctx, path, suffix=g.name.kind, level=UNCAL_LEVEL, program=plan.program, observation=g.observation,
        exposure=exposure, inputs=[raw.uri], source=f"{ctx.settings.source}/ingest", product_type="AUXILIARY",
    )
    return archived.event_ids


MSA_LEVEL = 1  # an MSA metadata file is planning input, archived beside the _uncal
def _ingest_msa(ctx: ServiceContext, raw: StoredObject, data: bytes, event: Event) -> list[str]:
    """Archive an MSA metadata file as an AUXILIARY prerequisite of the MOS observation
    whose plan names it; refuse it with a reason otherwise."""
    name = parse_msa_metadata(raw.filename)
    try:
        plan = load_latest_plan(ctx.store, name.program)
    except ValidationError as exc:
        plan, invalid = None, validation_summary(exc)
    else:
        invalid = None
    if plan is None:
        detail = (f"the newest stored plan of program {name.program} is invalid: {invalid}" if invalid
                  else f"no plan of program {name.program} has been stored")
        return [e for e in [quarantine(ctx, raw, "missing_plan", detail + "; deliver the plan and re-queue this file",
                                       name.program, event.time)] if e]
    obs = plan.msa_observation(raw.filename)
    if obs is None:
        detail = (f"the plan of program {name.program} names no observation with MSA metadata file "
                  f"{raw.filename}")
        return [e for e in [quarantine(ctx, raw, "unplanned_msa", detail, name.program, event.time)] if e]
    with tempfile.TemporaryDirectory(prefix="dms-ingest-") as tmp:
        path = Path(tmp) / raw.filename
        path.write_bytes(data)
        problem = msa_problem(path, plan.program)
        if problem:
            return [e for e in [quarantine(ctx, raw, "invalid_msa", f"{raw.filename}: {problem}", plan.program,
                                           event.time)] if e]
        with ctx.catalog.session() as s:
            upsert_program(s, plan)
        archived = archive_product(
            ctx, path, suffix="msa", level=MSA_LEVEL, program=plan.program, observation=obs.number, exposure=None,
            inputs=[raw.uri], source=f"{ctx.settings.source}/ingest", product_type="AUXILIARY",
        )
    return archived.event_ids


def _ingest_opd(ctx: ServiceContext, raw: StoredObject, data: bytes, event: Event) -> list[str]:
    """Archive a wavefront-sensing OPD file in the program-independent wavefront
    collection (``wavefront_opd``, public); refuse it with a reason when it is not one."""
    name = parse_opd(raw.filename)
    with tempfile.TemporaryDirectory(prefix="dms-ingest-") as tmp:
        path = Path(tmp) / raw.filename
        path.write_bytes(data)
        try:
            when, rms = opd_facts(path)
        except ValueError as exc:
            return [e for e in [quarantine(ctx, raw, "invalid_opd", f"{raw.filename}: {exc}", None, event.time)] if e]
        try:
            stored = ctx.store.put_file(Bucket.ARCHIVE, object_key(*WAVEFRONT, 1, raw.filename), path,
                                        "application/fits")
        except ImmutableObjectError:
            detail = f"{raw.filename}: another OPD file of this name, with other content, is archived"
            return [e for e in [quarantine(ctx, raw, "opd_conflict", detail, None, event.time)] if e]
    with ctx.catalog.session() as s:
        if s.scalar(select(WavefrontOpd.id).where(WavefrontOpd.filename == raw.filename)) is None:
            s.add(WavefrontOpd(filename=raw.filename, date_obs=when, aperture=name.aperture, rms_nm=rms,
                               uri=stored.uri, sha256=stored.sha256, size=stored.size, archived_at=datetime.now(UTC)))
    log.info("archived wavefront OPD %s (sensed %s, %.1f nm rms)", raw.filename, when, rms)
    return []


HANDLERS = {"ingest.telemetry": handle_telemetry}
