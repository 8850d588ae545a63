"""The ingest handler: fetch telemetry -> SDP pipeline -> store -> register -> announce.

Idempotent: the output bytes are a pure function of the telemetry, the plan and the
arrival time carried in the message, object keys are deterministic, catalog writes are
keyed by (filename, revision) and event ids by content. A redelivered message therefore
finds its products already stored and registered and announces nothing twice.
"""

from __future__ import annotations

import logging
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ValidationError

from services.ingest.pipeline import IngestOutput, Rejection, UncalFile, ingest_telemetry
from shared.catalog.queries import (
    add_event,
    next_revision,
    record_rejection,
    register_product,
    upsert_exposure,
    upsert_program,
)
from shared.datamodels import write_product
from shared.errors import NonRetriableError
from shared.messages import Event, EventType, ProductRef, new_event
from shared.naming import object_key
from shared.plan import Plan, load_latest_plan
from shared.runtime import ServiceContext
from shared.storage import StoredObject, sha256_file

__all__ = ["HANDLERS", "handle_telemetry"]

log = logging.getLogger(__name__)

ARCHIVE = "dms-archive"
UNCAL_LEVEL = 1  # CAOM calibration level of _uncal


def _event_id(kind: str, *parts: object) -> str:
    """Deterministic event id: the same announcement made twice has one id."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "jwst-dms:" + kind + ":" + ":".join(map(str, parts))))


def handle_telemetry(event: Event, ctx: ServiceContext) -> list[str]:
    ref = ProductRef.model_validate(event.data.get("telemetry") or {})
    bucket, key = ctx.store.parse_uri(ref.uri)
    raw = ctx.store.stat(bucket, key)
    if raw is None:
        raise NonRetriableError(f"telemetry {ref.uri} named by event {event.id} is not in the object store")
    data = ctx.store.get_bytes(bucket, key)
    plans: dict[str, Plan | None] = {}
    plan_errors: dict[str, str] = {}

    def plan_for(program: str) -> Plan | None:
        if program not in plans:
            try:
                plans[program] = load_latest_plan(ctx.store, program)
            except ValidationError as exc:
                plans[program] = None
                plan_errors[program] = f"the stored plan of program {program} is invalid: {exc.errors()[0]['msg']}"
        return plans[program]

    if raw.sha256 != ref.sha256:
        output = IngestOutput(rejections=[Rejection(
            "checksum_mismatch",
            f"stored telemetry sha256 {raw.sha256[:12]}... differs from the announced {ref.sha256[:12]}...",
        )])
    else:
        # DATE is when the raw file was first stored, so every run over these bytes
        # (redelivery, re-queue) writes identical products.
        output = ingest_telemetry(
            data, plan_for, created=raw.created or event.time, software_version=ctx.settings.cal_ver,
            segment_bytes=ctx.settings.segment_bytes,
        )
    event_ids = [_reject(ctx, raw, r, plan_errors, event) for r in output.rejections]
    if output.files:
        summary = output.report.summary()
        with tempfile.TemporaryDirectory(prefix="dms-ingest-") as tmp:
            for f in output.files:
                plan = plans[f.name.program]
                event_ids.append(_archive(ctx, f, plan, Path(tmp), raw, summary))
    if output.report.data_problem:
        log.warning("ingest of %s: data problems %s", raw.filename, output.report.summary())
    return [e for e in event_ids if e]


def _reject(ctx: ServiceContext, raw: StoredObject, rejection: Rejection, plan_errors: dict, event: Event) -> str | None:
    detail = rejection.detail
    if rejection.reason == "missing_plan" and rejection.program in plan_errors:
        detail = plan_errors[rejection.program]
    ev = new_event(
        EventType.INGEST_REJECTED, f"{ctx.settings.source}/ingest", subject=raw.filename,
        event_id=_event_id("rejected", raw.sha256, rejection.reason, rejection.program),
        time=event.time,
        data={"raw": {"uri": raw.uri, "filename": raw.filename, "sha256": raw.sha256, "size": raw.size},
              "reason": rejection.reason, "detail": detail, "program": rejection.program},
    )
    with ctx.catalog.session() as s:
        _, created = record_rejection(s, raw=raw, reason=rejection.reason, detail=detail,
                                      program_id=rejection.program, event_id=ev.id)
        if not created:
            return None
        add_event(s, ev)
    log.warning("rejected %s: %s: %s (raw kept at %s)", raw.filename, rejection.reason, detail, raw.uri)
    return ev.id


def _archive(ctx: ServiceContext, f: UncalFile, plan: Plan, tmp: Path, raw: StoredObject, summary: dict) -> str | None:
    filename = f.name.format()
    path = write_product(tmp / filename, f.product)
    sha = sha256_file(path)
    with ctx.catalog.session() as s:
        rev = next_revision(s, filename, sha)
    if rev.existing is not None:
        log.info("%s r%d is already archived with identical content", filename, rev.revision)
        return None
    stored = ctx.store.put_file(ARCHIVE, object_key(plan.program, f.observation, rev.revision, filename),
                                path, "application/fits")
    archived_at = datetime.now(UTC)
    with ctx.catalog.session() as s:
        upsert_program(s, plan)
        exposure = upsert_exposure(s, plan.program, f.observation, f.name.exposure_id, **f.exposure_fields)
        product, created = register_product(
            s, stored=stored, filename=filename, suffix="uncal", level=UNCAL_LEVEL,
            revision=rev.revision, program_id=plan.program, observation_id=exposure.observation_id,
            exposure_id=exposure.id, archived_at=archived_at, eap_months=plan.eap_months,
            software_version=ctx.settings.cal_ver, inputs=[raw.uri], segment=f.name.segment,
        )
        if not created:
            return None
        ref = ProductRef(
            uri=stored.uri, filename=filename, suffix="uncal", sha256=stored.sha256, size=stored.size,
            revision=rev.revision, program=plan.program, observation=f.observation,
            visit=f.name.visit, exposure=f.name.exposure, detector=f.name.detector.upper(),
            exp_type=f.exposure_fields["exp_type"],
        )
        ev = new_event(
            EventType.PRODUCT_ARCHIVED, f"{ctx.settings.source}/ingest", subject=filename,
            event_id=_event_id("archived", filename, rev.revision, stored.sha256),
            data={"product": ref.model_dump(mode="json"), "level": UNCAL_LEVEL,
                  "data_release": product.data_release.isoformat(), "ingest": summary},
        )
        add_event(s, ev)
    log.info("archived %s r%d (%d bytes)", filename, rev.revision, stored.size)
    return ev.id


HANDLERS = {"ingest.telemetry": handle_telemetry}
