"""Reprocessing on the deployed system: real Celery workers (the operational ones and one
per reprocessing queue), Redis, PostgreSQL, an S3 server and the reconciler, with the
small program archived first by the whole chain.

1. A stage-2 request for the observation, with the stage-3 reprocessing worker killed
   while it runs: new revisions of exactly the products below stage 1, each unit switched
   at once (a reader polling the catalog never sees old and new revisions of one unit
   current together), the old ones superseded, one ``reprocessed`` notification per new
   revision, nothing dead-lettered.
2. Priority: with a backlog of requests on the reprocessing queues, a new downlink (a
   second program) reaches ``_rate`` while the backlog is still being worked off; then
   every request ends and each product has exactly one current revision.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest
from sqlalchemy import func, select

from services.ingest.receive import receive_files
from services.simulator import simulate
from shared.catalog import Product, ReprocessingRequest, TaskFailure, WorkItem
from shared.reprocessing import Scope, submit
from shared.routing import REPROCESSING_QUEUES
from shared.runtime import dispatch_events
from shared.subscriptions import SubscriptionSpec, create_subscription
from shared.webhooks import WebhookPolicy
from tests.faults.harness import Harness, simulate_small, small_program
from tests.faults.invariants import chain_complete
from tests.system import WORKERS, WebhookReceiver

pytestmark = [pytest.mark.integration, pytest.mark.faults]

PROGRAM = "01234"
E1, E2 = "jw01234001001_01101_00001_nrca1", "jw01234001001_01101_00002_nrca1"
LEVEL3 = "jw01234-o001_t001_nircam_clear-f200w-sub160"
UNITS = {
    E1: (f"{E1}_cal.fits", f"{E1}_i2d.fits"),
    E2: (f"{E2}_cal.fits", f"{E2}_i2d.fits"),
    "o001": (f"{E1}_o001_crf.fits", f"{E2}_o001_crf.fits", f"{LEVEL3}_i2d.fits", f"{LEVEL3}_cat.ecsv",
             f"{LEVEL3}_segm.fits"),
}


@pytest.fixture
def harness(request, tmp_path, pg_url):
    sim = simulate_small(tmp_path / "sim")
    h = Harness(tmp_path, pg_url, sim, workers=(*WORKERS, *REPROCESSING_QUEUES))
    failed_before = request.session.testsfailed
    try:
        h.start()
        yield h
    finally:
        h.stop()
        if request.session.testsfailed > failed_before:
            print(h.system.logs())


def current(ctx, program: str = PROGRAM) -> dict[str, int]:
    with ctx.catalog.session() as s:
        return dict(s.execute(select(Product.filename, Product.revision).where(
            Product.program_id == program, Product.is_current)).all())


def request_states(ctx) -> Counter:
    with ctx.catalog.session() as s:
        return Counter(s.scalars(select(ReprocessingRequest.state)))


class UnitReader(threading.Thread):
    """Polls the current revisions of every unit's products; records a mixed set."""

    def __init__(self, ctx):
        super().__init__(daemon=True)
        self.ctx, self.stop, self.samples, self.mixed = ctx, threading.Event(), 0, []

    def run(self) -> None:
        while not self.stop.is_set():
            revisions = current(self.ctx)  # one statement: one snapshot
            for unit, names in UNITS.items():
                seen = {revisions.get(n) for n in names}
                if len(seen) > 1:
                    self.mixed.append((unit, {n: revisions.get(n) for n in names}))
            self.samples += 1
            time.sleep(0.02)


def test_reprocessing_on_workers(harness, tmp_path):
    h, ctx = harness, harness.ctx
    h.submit()
    h.system.wait_until(lambda: chain_complete(h), 180, "the chain down to Level 3 and previews", poll=1.0)
    h.system.wait_idle(quiet=5)
    reprocessed = WebhookReceiver()
    try:
        with ctx.catalog.session() as s:
            create_subscription(s, "pi@example.org", SubscriptionSpec(
                name="reprocessed products", channel="webhook", target=reprocessed.url,
                filters={"programs": ["1234"], "event_types": ["reprocessed"]}),
                policy=WebhookPolicy.from_settings(ctx.settings))
        before = current(ctx)

        # 1. a stage-2 request, the stage-3 reprocessing worker killed mid-task
        reader = UnitReader(ctx)
        reader.start()
        view, _, ids = submit(ctx, program=PROGRAM, scope=Scope(observations=(1,)), from_stage="stage2",
                              reason="improved flat-field algorithm")
        dispatch_events(ctx.catalog, ctx.transport, event_ids=ids)
        killed = h.kill_mid_task("stage3-reprocess")
        assert killed == "stage3.reprocess"
        h.system.wait_until(lambda: request_states(ctx)["done"] == 1, 180, "the request to end",
                            state=lambda: request_states(ctx))
        reader.stop.set()
        reader.join()
        after = current(ctx)
        remade = {n for n in after if after[n] != before.get(n)}
        assert remade == {n for names in UNITS.values() for n in names}, remade
        assert all(after[n] == before[n] + 1 for n in remade)
        assert reader.samples > 50 and not reader.mixed, reader.mixed[:3]
        with ctx.catalog.session() as s:
            superseded = s.scalar(select(func.count()).select_from(Product).where(
                Product.filename.in_(remade), Product.revision == 1, Product.is_current.is_(False),
                Product.superseded_at.is_not(None)))
            assert superseded == len(remade)
            assert s.scalars(select(TaskFailure)).all() == []
        deadline = time.monotonic() + 60
        while set(reprocessed.subjects()) < remade and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(2)
        assert reprocessed.subjects() == Counter(remade), reprocessed.subjects()

        # 2. a backlog of requests, then a new downlink of another program
        scopes = [Scope(exposures=(E1,)), Scope(exposures=(E2,)), Scope(exposures=(E1, E2)),
                  Scope(observations=(1,)), Scope(products=(f"{E1}_rate.fits",)), Scope()]
        for i, scope in enumerate(scopes):
            _, new, ids = submit(ctx, program=PROGRAM, scope=scope, from_stage="detector1",
                                 reason=f"backlog {i}")
            assert new
            dispatch_events(ctx.catalog, ctx.transport, event_ids=ids)
        second = small_program()
        second["program"] = 1235
        sim2 = simulate(second, tmp_path / "sim2")
        t0 = time.monotonic()
        received = receive_files(ctx, [sim2.plan_path, *sim2.telemetry_paths])
        dispatch_events(ctx.catalog, ctx.transport, event_ids=[r.event_id for r in received if r.event_id])
        rates = {"jw01235001001_01101_00001_nrca1_rate.fits", "jw01235001001_01101_00002_nrca1_rate.fits"}
        h.system.wait_until(lambda: rates <= set(current(ctx, "01235")), 120, "the new downlink's _rate")
        waited = time.monotonic() - t0
        with ctx.catalog.session() as s:
            left = s.scalar(select(func.count()).select_from(WorkItem).where(
                WorkItem.task.like("%.reprocess"), WorkItem.state != "done"))
        states = request_states(ctx)
        print(f"new downlink: both _rate in {waited:.1f} s; reprocessing work left then: {left} item(s), "
              f"requests {dict(states)}")
        assert left > 0 and states["running"] > 0, "the backlog was worked off before the new downlink"
        h.system.wait_until(lambda: request_states(ctx)["done"] == 1 + len(scopes), 400, "the backlog to end",
                            state=lambda: request_states(ctx), poll=1.0)
        h.system.wait_idle(quiet=5)
        with ctx.catalog.session() as s:
            twice = s.execute(select(Product.filename).where(Product.is_current).group_by(Product.filename)
                              .having(func.count() > 1)).all()
            staged = s.scalar(select(func.count()).select_from(Product).where(
                Product.request_id.is_not(None), Product.is_current.is_(False), Product.superseded_at.is_(None),
                Product.abandoned_at.is_(None)))
            assert s.scalars(select(TaskFailure)).all() == []
        assert twice == [] and staged == 0
    finally:
        reprocessed.close()
