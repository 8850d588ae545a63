"""Plans, catalog snapshots and archived exposure products for the association tests."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from services.associations.planned import planned_name
from services.associations.state import ExposureRecord, ProductRecord, ProgramState
from shared.archiving import ArchivedProduct, archive_product
from shared.catalog.models import EventRecord
from shared.catalog.queries import event_from_record, upsert_exposure, upsert_program
from shared.messages import Event
from shared.plan import (
    DitherPattern,
    Observation,
    Plan,
    PlannedCandidate,
    PlannedExposure,
    Pointing,
    Target,
    plan_filename,
)
from shared.storage import Bucket

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
PROGRAM = "01234"


def observation(number: int, *, filter: str = "F200W", detectors=("NRCA1", "NRCA2"), npoints: int = 2,
                target: int = 1, is_background: bool = False, tsovisit: bool = False, nints: int = 1,
                subarray: str = "SUB64P", instrument: str = "NIRCAM") -> Observation:
    """An imaging observation (NIRCam, MIRI), or NIRSpec's fixed slit S200A1 with the prism."""
    exp_type = {"NIRCAM": "NRC_TSIMAGE" if tsovisit else "NRC_IMAGE", "MIRI": "MIR_IMAGE",
                "NIRSPEC": "NRS_FIXEDSLIT"}[instrument]
    return Observation(
        number=number, target_id=target, template=f"{instrument.title()} Imaging", instrument=instrument,
        exp_type=exp_type, detectors=list(detectors), filter=filter,
        pupil={"NIRCAM": "CLEAR", "NIRSPEC": "PRISM"}.get(instrument, "N/A"),
        readpatt={"NIRCAM": "RAPID", "MIRI": "FAST", "NIRSPEC": "NRSRAPID"}[instrument],
        fixed_slit="S200A1" if instrument == "NIRSPEC" else None,
        ngroups=3, nints=nints,
        subarray=subarray, tsovisit=tsovisit, is_background=is_background,
        dither=DitherPattern(pattern_type="4-POINT" if npoints > 1 else "NONE",
                             offsets=[(0.5 * k, 0.25 * k) for k in range(npoints)]),
        exposures=[
            PlannedExposure(visit=1, exposure=p, detector=d, dither_point=p,
                            start_time=T0 + timedelta(hours=number, minutes=10 * p),
                            pointing=Pointing(ra=53.16, dec=-27.78))
            for p in range(1, npoints + 1) for d in detectors
        ],
    )


def make_plan(observations: list[Observation], candidates: list[tuple[str, list[int]]] = ()) -> Plan:
    """A plan of program 01234; ``candidates`` are (type, observations), numbered c1000, ..."""
    return Plan(
        program=PROGRAM, title="Association tests", pi_name="Tester, A.", category="GO", eap_months=12,
        targets=[Target(id=1, name="NGC 1234", ra=53.16, dec=-27.78), Target(id=2, name="BKG FIELD", ra=53.3, dec=-27.6)],
        observations=observations,
        candidates=[PlannedCandidate(id=f"c{1000 + k}", type=t, observations=obs)
                    for k, (t, obs) in enumerate(candidates)],
    )


def exposure_ids(plan: Plan, number: int) -> list[str]:
    obs = plan.observation(number)
    return [planned_name(plan.program, obs, e).exposure_id for e in obs.exposures]


def _planned(plan: Plan, exposure_id: str):
    for obs in plan.observations:
        for e in obs.exposures:
            if planned_name(plan.program, obs, e).exposure_id == exposure_id:
                return obs, e
    raise KeyError(exposure_id)


def snapshot(plan: Plan, present: dict[str, list[str]], *, revision: int = 1, segments: dict[str, int] | None = None
             ) -> ProgramState:
    """A catalog snapshot where ``present[suffix]`` lists the exposure ids having that
    product; exposure k (in plan order) was archived k seconds after T0."""
    segments = segments or {}
    records = {}
    order = [i for o in plan.observations for i in exposure_ids(plan, o.number)]
    for k, eid in enumerate(order, start=1):
        obs, e = _planned(plan, eid)
        obs = obs.for_exposure(e)  # as ingest records it: a simultaneous channel's, a direct image's own mode
        name = planned_name(plan.program, obs, e)
        products = {}
        for suffix, ids in present.items():
            if eid in ids:
                n = segments.get(eid)
                segs = [None] if not n else list(range(1, n + 1))
                products[suffix] = tuple(
                    ProductRecord(replace(name, suffix=suffix, segment=s).format(), suffix, revision, s,
                                  T0 + timedelta(seconds=k), "sdp-1")
                    for s in segs)
        records[eid] = ExposureRecord(
            name=eid, program=plan.program, observation=obs.number, visit=e.visit, visit_group=e.visit_group,
            sequence=e.sequence, activity=f"{e.activity:02d}", exposure=e.exposure, detector=e.detector,
            instrument=obs.instrument, exp_type=obs.exp_type, filter=obs.filter, pupil=obs.pupil,
            subarray=obs.subarray, readpatt=obs.readpatt, ngroups=obs.ngroups, nints=obs.nints,
            target_name=plan.target(obs.target_id).name, products=products,
        )
    return ProgramState(plan.program, records)


def store_plan(ctx, plan: Plan, revision: int = 1) -> None:
    """Deliver the plan where ingest puts it (dms-raw) and register the program."""
    key = f"{plan.program}/000/r{revision}/{plan_filename(plan.program)}"
    ctx.store.put_bytes(Bucket.RAW, key, plan.model_dump_json().encode(), "application/json")
    with ctx.catalog.session() as s:
        upsert_program(s, plan)


def archive_exposure(ctx, plan: Plan, exposure_id: str, suffix: str, tmp: Path, *, content: str = "",
                     segment: int | None = None, level: int = 2) -> ArchivedProduct:
    """Archive a stand-in file for one exposure product the way a stage does (the
    associations service reads only the catalog, never these bytes)."""
    obs, e = _planned(plan, exposure_id)
    obs = obs.for_exposure(e)  # as ingest records it: a direct image's own mode
    name = planned_name(plan.program, obs, e)
    with ctx.catalog.session() as s:
        exposure = upsert_exposure(
            s, plan.program, obs.number, exposure_id, visit=e.visit, visit_group=e.visit_group,
            sequence=e.sequence, activity=f"{e.activity:02d}", exposure=e.exposure, detector=e.detector,
            exp_type=obs.exp_type, filter=obs.filter, pupil=obs.pupil, readpatt=obs.readpatt,
            subarray=obs.subarray, ngroups=obs.ngroups, nints=obs.nints, start_time=e.start_time,
        )
    filename = replace(name, suffix=suffix, segment=segment).format()
    path = tmp / filename
    path.write_text(f"{filename}:{content}")
    return archive_product(ctx, path, suffix=suffix, level=level, program=plan.program, observation=obs.number,
                           exposure=exposure, inputs=[], source="/test/stage", segment=segment)


def outbox_event(ctx, event_id: str) -> Event:
    with ctx.catalog.session() as s:
        return event_from_record(s.get(EventRecord, event_id))


def deliver(ctx, plan: Plan, tmp: Path, ids, suffix: str, **kw) -> list[str]:
    """Archive products and run the associations handler on each event; returns the new
    event ids."""
    from services.associations.task import handle_product

    out = []
    for eid in ids:
        archived = archive_exposure(ctx, plan, eid, suffix, tmp, **kw)
        if archived.event_id:
            out += handle_product(outbox_event(ctx, archived.event_id), ctx)
    return out
