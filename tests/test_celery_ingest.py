"""Ingest with a real Celery worker subprocess on real Redis, real PostgreSQL and an S3
server on loopback; a SIGKILL in the middle of a file loses and duplicates nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from services.ingest.receive import receive_files
from shared.catalog import EventRecord, IngestRejection, Product
from shared.config import Settings
from shared.messages import EventType
from shared.runtime import ServiceContext, dispatch_events
from tests.telemetry_factory import tiny_exposure, tiny_plan

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]


class Worker:
    """``dms worker ingest`` in its own process group, logging to a file."""

    def __init__(self, env: dict[str, str], log: Path):
        self.env, self.log = env, log
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        out = open(self.log, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "worker", "ingest", "--loglevel", "INFO"],
            cwd=REPO, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for_log(self, text: str, timeout: float, after: int = 0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log_text()[after:]:
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited ({self.proc.returncode}):\n{self.log_text()[-3000:]}")
            time.sleep(0.05)
        raise AssertionError(f"{text!r} not in worker log after {timeout} s:\n{self.log_text()[-3000:]}")

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def stack(tmp_path, pg_url, redis_url, broker_prefix, s3_server):
    s3_server.reset()
    env_settings = {
        **s3_server.env(),
        "DMS_VAR_DIR": str(tmp_path / "var"),
        "DMS_CATALOG_URL": pg_url,
        "DMS_BROKER_URL": redis_url,
        "DMS_BROKER_VISIBILITY_TIMEOUT": "4",
        "DMS_BROKER_RESTORE_INTERVAL": "1",
        "DMS_BROKER_KEY_PREFIX": broker_prefix,
        "DMS_TASK_MAX_RETRIES": "3",
    }
    settings = Settings(**{k.removeprefix("DMS_").lower(): v for k, v in env_settings.items()})
    from shared.celery_app import CeleryTransport, create_app

    ctx = ServiceContext.from_settings(settings, transport=CeleryTransport(create_app(settings)))
    ctx.catalog.upgrade()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DMS_")} | env_settings
    env["PYTHONPATH"] = str(REPO)
    worker = Worker(env, tmp_path / "worker.log")
    yield ctx, worker
    worker.stop()
    ctx.catalog.dispose()


def deliver(ctx, paths):
    received = receive_files(ctx, paths)
    dispatch_events(ctx.catalog, ctx.transport, event_ids=[r.event_id for r in received if r.event_id])
    return received


def wait_until(predicate, timeout: float, what: str, worker: Worker):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}; worker log tail:\n{worker.log_text()[-3000:]}")


def broker_holds_nothing(ctx) -> bool:
    """No message of the ingest queue waits in Redis or is held by a worker: kombu's Redis
    transport keeps a delivered message in its ``unacked`` hash until the (late)
    acknowledgement, and puts back on the queue one whose consumer died, after the
    visibility timeout."""
    import redis

    prefix = ctx.settings.broker_key_prefix or ""
    client = redis.Redis.from_url(ctx.settings.broker_url)
    try:
        return client.llen(f"{prefix}ingest") == 0 and client.hlen(f"{prefix}unacked") == 0
    finally:
        client.close()


def catalog_count(ctx, model, *where) -> int:
    with ctx.catalog.session() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where))


def write_files(tmp_path, plan, exposures):
    plan_path = tmp_path / f"jw{plan.program}_plan.json"
    plan_path.write_text(plan.model_dump_json())
    paths = [plan_path]
    for n in range(1, exposures + 1):
        tiny = tiny_exposure(plan, exposure=n, rows_per_packet=8)
        p = tmp_path / f"jw{plan.program}001001_01101_{n:05d}_nrca1.ccsds"
        p.write_bytes(b"".join(tiny.packets))
        paths.append(p)
    return paths


def test_worker_ingests_and_rejects(stack, tmp_path):
    ctx, worker = stack
    worker.start()
    plan = tiny_plan(exposures=2)
    paths = write_files(tmp_path, plan, 2)
    garbage = tmp_path / "garbled.ccsds"
    garbage.write_bytes(b"\x00\x01garbage" * 100)
    deliver(ctx, [*paths, garbage])
    wait_until(lambda: catalog_count(ctx, Product) == 2 and catalog_count(ctx, IngestRejection) == 1, 90,
               "2 products and 1 rejection", worker)
    with ctx.catalog.session() as s:
        uris = s.scalars(select(Product.filename)).all()
        assert sorted(uris) == [f"jw01234001001_01101_0000{n}_nrca1_uncal.fits" for n in (1, 2)]
        rej = s.scalar(select(IngestRejection))
        assert rej.reason == "no_science_packets" and rej.raw_uri.startswith("s3://dms-raw/unsorted/")
    assert ctx.store.get_uri(rej.raw_uri) == garbage.read_bytes()
    keys = list(ctx.store.list_keys("dms-archive"))
    assert len(keys) == 2 and all(k.startswith("01234/001/r1/") for k in keys)


def test_sigkill_mid_file_yields_each_product_exactly_once(stack, tmp_path):
    """Full-frame exposures keep the worker busy long enough to kill it mid-file; with
    late acknowledgement the message comes back after the visibility timeout and the
    restarted worker finishes the job without duplicating anything."""
    ctx, worker = stack
    plan = tiny_plan(subarray_name="FULL", ngroups=4, nints=1, exposures=3)
    paths = write_files(tmp_path, plan, 3)
    worker.start()
    worker.wait_for_log("ready.", 60)
    deliver(ctx, paths)
    # The first task has been received: let it get into the work, then kill everything.
    worker.wait_for_log("Task ingest.telemetry[", 60)
    time.sleep(0.8)
    worker.kill()
    done_before = catalog_count(ctx, Product)
    assert done_before < 3, "the worker finished everything before it was killed; make the files bigger"
    mark = len(worker.log_text())
    worker.start()
    wait_until(lambda: catalog_count(ctx, Product) == 3, 180, "3 products after the restart", worker)
    # a duplicate would come from a message still in the broker: let every one run to completion
    wait_until(lambda: broker_holds_nothing(ctx), 60, "every ingest message to be acknowledged", worker)
    with ctx.catalog.session() as s:
        names = s.scalars(select(Product.filename)).all()
        assert len(names) == len(set(names)) == 3
        assert s.scalar(select(func.count()).select_from(EventRecord)
                        .where(EventRecord.type == EventType.PRODUCT_ARCHIVED)) == 3
    keys = list(ctx.store.list_keys("dms-archive"))
    assert len(keys) == 3 and all("/r1/" in k for k in keys)
    assert "Task ingest.telemetry[" in worker.log_text()[mark:]
