"""Fault tests: the small program through the whole system while something breaks, each
ending with the invariant check (tests/faults/invariants.py, docs/operations.md)."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from services.ingest.receive import receive_files
from shared.catalog import EventRecord, Product
from shared.catalog.queries import event_from_record
from tests.conftest import PG_ADMIN_URL
from tests.faults.harness import Harness, terminate_backends
from tests.faults.invariants import chain_complete, chain_state, check_invariants

pytestmark = [pytest.mark.integration, pytest.mark.faults]

CHAIN_TIMEOUT = 150


def run_to_the_end(harness: Harness, timeout: float = CHAIN_TIMEOUT) -> None:
    harness.system.wait_until(lambda: chain_complete(harness), timeout, "the chain down to Level 3 and previews",
                              state=lambda: chain_state(harness), poll=1.0)
    harness.system.wait_idle(quiet=6)
    check_invariants(harness)


def test_no_fault(harness):
    t0 = time.monotonic()
    harness.submit()
    run_to_the_end(harness)
    print(f"no fault: the small program in {time.monotonic() - t0:.1f} s")


@pytest.mark.parametrize("service", ["ingest", "detector1", "stage2", "associations", "stage3", "preview", "notifier"])
def test_sigkill_of_a_worker_mid_task(harness, service):
    """The worker dies (SIGKILL, no clean-up) while it runs a task; a new one starts.
    The message, never acknowledged, comes back when its visibility timeout ends."""
    harness.submit()
    task = harness.kill_mid_task(service)
    print(f"killed the {service} worker during {task}")
    run_to_the_end(harness, timeout=CHAIN_TIMEOUT + 60)


def _some_current(harness: Harness, suffix: str) -> bool:
    """A current product with ``suffix`` exists (False when the test's own connection was
    just terminated: asked again next time)."""
    try:
        with harness.ctx.catalog.session() as s:
            return s.scalar(select(func.count()).select_from(Product).where(
                Product.suffix == suffix, Product.is_current)) > 0
    except OperationalError:
        return False


def test_object_store_unavailable_for_a_while(harness):
    """The S3 endpoint refuses connections for 30 s while detector1 and later stages run
    (a MinIO restart: its data survive), longer than a task's retries with backoff last
    (DMS_TASK_MAX_RETRIES=6, at most 8 s apart): an outage spends no retry, so tasks wait
    it out, none is dead-lettered or lost, nothing is made twice."""
    harness.submit()
    harness.system.wait_until(lambda: _some_current(harness, "uncal"), 90, "a first _uncal", poll=0.2)
    harness.s3.down()
    time.sleep(30)
    harness.s3.up()
    run_to_the_end(harness)


def test_database_connections_dropped_mid_transaction(harness):
    """Every connection of the workers to the catalog is terminated every 2 s while the
    program runs (until its Level-3 products exist): transactions in flight roll back,
    tasks retry, pooled connections are replaced."""
    database = harness.pg_url.rsplit("/", 1)[1]
    stop, terminated = threading.Event(), []

    def terminator() -> None:
        while not stop.wait(2.0):
            terminated.append(terminate_backends(PG_ADMIN_URL, database))

    harness.submit()
    thread = threading.Thread(target=terminator, daemon=True)
    thread.start()
    try:
        harness.system.wait_until(lambda: _some_current(harness, "i2d") and _some_current(harness, "segm"),
                                  CHAIN_TIMEOUT + 60, "the Level-3 products", poll=1.0)
    finally:
        stop.set()
        thread.join()
    print(f"terminated {sum(terminated)} connections in {len(terminated)} rounds")
    assert sum(terminated) > 0
    run_to_the_end(harness)


def test_the_same_telemetry_delivered_twice(harness):
    """Every telemetry file is delivered twice, and each telemetry.arrived event is
    redelivered twice by the broker (at once, and again after the chain ran): one
    ``_uncal`` per exposure, one revision of everything, one notification each."""
    ids = harness.submit()
    again = receive_files(harness.ctx, [harness.sim.plan_path, *harness.sim.telemetry_paths])
    assert [r.event_id for r in again if r.kind == "telemetry"] == [None] * len(ids)  # one event per file
    with harness.ctx.catalog.session() as s:
        events = [event_from_record(s.get(EventRecord, i)) for i in ids]
    for event in events:
        harness.ctx.transport.send("ingest.telemetry", event)
    harness.system.wait_until(lambda: chain_complete(harness), CHAIN_TIMEOUT, "the chain",
                              state=lambda: chain_state(harness), poll=1.0)
    for event in events:
        harness.ctx.transport.send("ingest.telemetry", event)
    run_to_the_end(harness)
