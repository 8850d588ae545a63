"""A reprocessing request over the demo program on workers, and the delay it causes to a
new downlink.

The deployed system of the fault tests (``tests/faults/harness.py``: a Celery worker per
operational queue and one per reprocessing queue, each of concurrency 1; Redis, moto's S3
server and the reconciler of its own; a fresh PostgreSQL database) archives the demo
program (``examples/nircam_imaging.yaml``: 9 exposures, 8 of them in a dithered imaging
observation) down to Level 3. Then:

1. baseline: a new downlink (a second program, two SUB160 exposures) arrives on the idle
   system; seconds from its arrival to both of its ``_rate`` products current;
2. a request from detector1 over the whole demo program (the newest context) is
   submitted; 2 s later a third program's downlink arrives; seconds from its arrival to
   its ``_rate`` products (the delay the request causes is this minus the baseline);
3. the request's time from submission to its end, its units and new revisions, and its
   throughput (exposures per minute).

Every process shares the machine's cores (2 here); the figures are those of one run.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from pathlib import Path

import psycopg
import yaml
from sqlalchemy import func, select

from services.ingest.receive import receive_files
from services.simulator import simulate
from shared.catalog import Product, ReprocessingRequest, ReprocessingUnit
from shared.reprocessing import Scope, submit
from shared.routing import REPROCESSING_QUEUES
from shared.runtime import dispatch_events
from tests.conftest import PG_ADMIN_URL
from tests.faults.harness import Harness, small_program
from tests.faults.invariants import chain_complete
from tests.system import REPO, WORKERS

DEMO = REPO / "examples" / "nircam_imaging.yaml"


def _rates(ctx, program: str) -> int:
    with ctx.catalog.session() as s:
        return s.scalar(select(func.count()).select_from(Product).where(
            Product.program_id == program, Product.suffix == "rate", Product.is_current))


def _downlink(h: Harness, workdir: Path, program: int) -> float:
    desc = small_program()
    desc["program"] = program
    sim = simulate(desc, workdir / f"sim-{program}")
    pid = f"{program:05d}"
    t0 = time.monotonic()
    received = receive_files(h.ctx, [sim.plan_path, *sim.telemetry_paths])
    dispatch_events(h.ctx.catalog, h.ctx.transport, event_ids=[r.event_id for r in received if r.event_id])
    h.system.wait_until(lambda: _rates(h.ctx, pid) == 2, 300, f"program {pid}'s _rate", poll=0.1)
    return time.monotonic() - t0


def run() -> dict:
    database = f"dms_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    url = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1) + f"/{database}"
    with tempfile.TemporaryDirectory(prefix="dms-reprocess-bench-") as tmp:
        work = Path(tmp)
        sim = simulate(yaml.safe_load(DEMO.read_text()), work / "demo")
        h = Harness(work, url, sim, workers=(*WORKERS, *REPROCESSING_QUEUES))
        try:
            h.start()
            t0 = time.monotonic()
            h.submit()
            h.system.wait_until(lambda: chain_complete(h), 900, "the demo program down to Level 3", poll=1.0)
            chain = time.monotonic() - t0
            h.system.wait_idle(quiet=5, timeout=300)
            baseline = _downlink(h, work, 1235)
            h.system.wait_idle(quiet=5, timeout=300)
            exposures = len({p.filename.rsplit("_", 1)[0] for p in _current(h, "uncal")})
            t1 = time.monotonic()
            view, _, ids = submit(h.ctx, program=sim.plan.program, scope=Scope(), from_stage="detector1",
                                  reason="benchmark: the whole program again")
            dispatch_events(h.ctx.catalog, h.ctx.transport, event_ids=ids)
            time.sleep(2)
            during = _downlink(h, work, 1236)
            h.system.wait_until(lambda: _state(h, view["id"]) in ("done", "failed"), 1800, "the request to end",
                                poll=1.0)
            took = time.monotonic() - t1
            with h.ctx.catalog.session() as s:
                units = s.scalar(select(func.count()).select_from(ReprocessingUnit).where(
                    ReprocessingUnit.request_id == view["id"]))
                made = s.scalar(select(func.count()).select_from(Product).where(Product.request_id == view["id"]))
            result = {
                "program": sim.plan.program, "exposures": exposures, "chain_seconds": round(chain, 1),
                "request": {"state": _state(h, view["id"]), "seconds": round(took, 1), "units": units,
                            "new_revisions": made, "exposures_per_minute": round(exposures / took * 60, 2)},
                "new_downlink_to_rate_seconds": {"idle": round(baseline, 1), "during_request": round(during, 1),
                                                 "delay": round(during - baseline, 1)},
            }
        finally:
            h.stop()
            with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    print(f"reprocessing: demo program ({result['exposures']} exposures) from detector1 in "
          f"{result['request']['seconds']} s ({result['request']['exposures_per_minute']} exposures/min, "
          f"{result['request']['new_revisions']} new revisions, {result['request']['state']}); a new downlink "
          f"reached _rate in {result['new_downlink_to_rate_seconds']['during_request']} s during it, "
          f"{result['new_downlink_to_rate_seconds']['idle']} s on the idle system")
    return result


def _current(h: Harness, suffix: str) -> list[Product]:
    with h.ctx.catalog.session() as s:
        return list(s.scalars(select(Product).where(Product.suffix == suffix, Product.is_current,
                                                    Product.program_id == h.sim.plan.program)))


def _state(h: Harness, request_id: str) -> str:
    with h.ctx.catalog.session() as s:
        return s.get(ReprocessingRequest, request_id).state
