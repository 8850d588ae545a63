"""The downlink receiver: put delivered files into dms-raw, untouched, and announce them.

Plans (``jw<ppppp>_plan.json``) are validated and stored as program-level objects; a plan
that does not validate is kept at ``<program>/rejected/r<revision>/`` (where no reader
takes it for the program's plan) and refused with ``invalid_plan``, and the other files of
the delivery go on. The observatory's ephemeris delivered for a program
(``jw<ppppp>_ephem.json``, :mod:`shared.ephemeris`) is stored and refused the same way
(``invalid_ephemeris``). An MSA metadata file (``jw<ppppp><ooo><vvv>_<cc>_msa.fits``, planned with
a NIRSpec MOS observation) is stored under the program and observation its name gives and
announced like telemetry (``dms.telemetry.arrived``, suffix ``msa``): ingest checks it
against the plan and archives it. A wavefront-sensing OPD file (``R<YYYYMMDD><NN>-<aperture>-<c>.fits``)
belongs to no program: it is stored under ``wavefront/opd/`` and announced the same way
(suffix ``opd``). Every other file is telemetry, stored under the program and
observation its first readable packet names (``unsorted/000`` when none is readable, so
even garbage is kept) and announced with ``dms.telemetry.arrived``. A file delivered again
with the same bytes changes nothing; with different bytes it becomes a new revision.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ValidationError

from services.ingest.quarantine import quarantine
from shared.catalog.queries import add_event, upsert_program
from shared.ephemeris import Ephemeris
from shared.messages import ProductRef, TelemetryArrived, new_event
from shared.naming import BadNameError, object_key, parse_msa_metadata, parse_opd
from shared.plan import Plan, plan_filename, validation_summary
from shared.runtime import ServiceContext
from shared.storage import Bucket, ImmutableObjectError, ObjectStore, StoredObject, sha256_file
from shared.telemetry import Packet, decode_stream

__all__ = ["BadPlanError", "Received", "receive_files", "store_new_revision"]

_PLAN_NAME = re.compile(r"^jw\d{5}_plan\.json$")
_EPHEMERIS_NAME = re.compile(r"^jw(\d{5})_ephem\.json$")


class BadPlanError(ValueError):
    """A delivered plan that does not validate."""


@dataclass(frozen=True)
class Received:
    path: Path
    stored: StoredObject
    kind: str  # "plan", "ephemeris", "msa", "opd" or "telemetry"
    event_id: str | None
    rejection: str | None = None  # "reason: detail" when the file was refused (kept in dms-raw)


def store_new_revision(store: ObjectStore, bucket: str, program: str, observation: int | str,
                       path: Path, content_type: str) -> StoredObject:
    """Store a delivered file at the first revision whose key is free or holds these bytes."""
    revision, sha = 1, sha256_file(path)
    while True:
        try:
            return store.put_file(bucket, object_key(program, observation, revision, path.name), path, content_type,
                                  sha256=sha)
        except ImmutableObjectError:
            revision += 1


def _first_packet_ids(path: Path) -> tuple[str, int] | None:
    """(program, observation) of the first good packet in the file's first MiB."""
    with open(path, "rb") as f:
        head = f.read(1 << 20)
    for item in decode_stream(head):
        if isinstance(item, Packet):
            return f"{item.header.program:05d}", item.header.observation
    return None


def _validate_plan(path: Path, data: bytes) -> Plan:
    try:
        plan = Plan.model_validate_json(data)
    except ValidationError as exc:
        raise BadPlanError(f"{path.name}: invalid plan: {validation_summary(exc)}") from None
    if path.name != plan_filename(plan.program):
        raise BadPlanError(f"{path.name}: a plan of program {plan.program} must be named {plan_filename(plan.program)}")
    return plan


def _claimed_program(data: bytes) -> str | None:
    """The five-digit program a plan that does not validate says it is for, if any."""
    try:
        program = json.loads(data).get("program")
    except (ValueError, AttributeError):
        return None
    return program if isinstance(program, str) and re.fullmatch(r"\d{5}", program) else None


def _receive_plan(ctx: ServiceContext, path: Path) -> Received:
    data = path.read_bytes()
    try:
        plan = _validate_plan(path, data)
    except BadPlanError as exc:
        program = _claimed_program(data)
        stored = store_new_revision(ctx.store, Bucket.RAW, program or "unsorted", "rejected", path, "application/json")
        detail = f"{exc}; the plan in force is unchanged: deliver a corrected plan"
        event_id = quarantine(ctx, stored, "invalid_plan", detail, program, datetime.now(UTC))
        return Received(path, stored, "plan", event_id, rejection=f"invalid_plan: {detail}")
    stored = store_new_revision(ctx.store, Bucket.RAW, plan.program, 0, path, "application/json")
    with ctx.catalog.session() as s:
        upsert_program(s, plan)
    return Received(path, stored, "plan", None)


def _receive_ephemeris(ctx: ServiceContext, path: Path) -> Received:
    data = path.read_bytes()
    named = _EPHEMERIS_NAME.match(path.name).group(1)
    try:
        eph = Ephemeris.model_validate_json(data)
        if eph.program is not None and eph.program != named:
            raise ValueError(f"it says it is for program {eph.program}")
    except (ValidationError, ValueError) as exc:
        why = validation_summary(exc) if isinstance(exc, ValidationError) else str(exc)
        stored = store_new_revision(ctx.store, Bucket.RAW, named, "rejected", path, "application/json")
        detail = (f"{path.name}: invalid ephemeris: {why}; the ephemeris in force is unchanged: "
                  "deliver a corrected one and re-queue the program's telemetry")
        event_id = quarantine(ctx, stored, "invalid_ephemeris", detail, named, datetime.now(UTC))
        return Received(path, stored, "ephemeris", event_id, rejection=f"invalid_ephemeris: {detail}")
    stored = store_new_revision(ctx.store, Bucket.RAW, named, 0, path, "application/json")
    return Received(path, stored, "ephemeris", None)


def _named(parse, path: Path) -> bool:
    try:
        parse(path.name)
    except BadNameError:
        return False
    return True


WAVEFRONT = ("wavefront", "opd")  # where OPD files are kept: program-independent


def _receive_telemetry(ctx: ServiceContext, path: Path, requeue: bool) -> Received:
    if _named(parse_msa_metadata, path):
        name = parse_msa_metadata(path.name)
        ids, kind, media = (name.program, name.observation), "msa", "application/fits"
        program, observation = ids
    elif _named(parse_opd, path):
        ids, kind, media = None, "opd", "application/fits"
        program, observation = WAVEFRONT
    else:
        ids, kind, media = _first_packet_ids(path), "telemetry", "application/octet-stream"
        program, observation = ids if ids else ("unsorted", 0)
    stored = store_new_revision(ctx.store, Bucket.RAW, program, observation, path, media)
    ref = ProductRef(uri=stored.uri, filename=stored.filename, suffix=kind, sha256=stored.sha256,
                     size=stored.size, program=program if ids else None, observation=observation if ids else None)
    # The same bytes announced twice are one event, unless an operator re-queues them.
    event_id = str(uuid.uuid4()) if requeue else str(uuid.uuid5(uuid.NAMESPACE_URL, f"jwst-dms:arrived:{stored.uri}:{stored.sha256}"))
    ev = new_event(TelemetryArrived(telemetry=ref), f"{ctx.settings.source}/receiver", subject=stored.filename,
                   event_id=event_id, time=datetime.now(UTC))
    with ctx.catalog.session() as s:
        row = add_event(s, ev)
    return Received(path, stored, kind, row.id if row.dispatched_at is None else None)


def receive_files(ctx: ServiceContext, paths: list[Path], *, requeue: bool = False) -> list[Received]:
    """Store plans and ephemerides first, then telemetry; return what was stored and
    announced. A plan or ephemeris that does not validate is kept and refused
    (``Received.rejection``); the other files still go."""
    files = sorted({p.resolve() for p in paths})
    plans = [p for p in files if _PLAN_NAME.match(p.name)]
    ephemerides = [p for p in files if _EPHEMERIS_NAME.match(p.name)]
    others = [p for p in files if not _PLAN_NAME.match(p.name) and not _EPHEMERIS_NAME.match(p.name)]
    out = [_receive_plan(ctx, p) for p in plans]
    out.extend(_receive_ephemeris(ctx, p) for p in ephemerides)
    out.extend(_receive_telemetry(ctx, p, requeue) for p in others)
    return out
