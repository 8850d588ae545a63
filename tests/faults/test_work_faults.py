"""Faults the work ledger recovers from, with real Celery worker subprocesses on a Redis
server of the test's own (its own port and directory, killed by the test), real
PostgreSQL and an S3 server on loopback:

- the broker is killed and restarted empty mid-run: the messages it held are gone, the
  system stalls, and once the reconciler runs (`dms reconcile --loop`, as deployed)
  every expected product exists exactly once as current;
- a worker hangs past its lease (SIGSTOP mid-task): the reconciler gives the task to
  another worker, which completes it; the hung one, resumed, adds nothing.

Both scenes are small (NIRCam SUB160 exposures, one detector).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
import redis
import yaml
from sqlalchemy import func, select

from services.ingest.receive import receive_files
from services.registry import handlers_for
from services.simulator import simulate
from shared.catalog import EventRecord, Product, TaskFailure, WorkItem, WorkState
from shared.catalog.queries import event_from_record
from shared.config import Settings
from shared.messages import EventType
from shared.refdata import deliver as deliver_references
from shared.routing import QUEUES
from shared.runtime import ServiceContext, dispatch_events, reconcile
from shared.storage import Bucket

try:  # where the fault-test harness keeps them
    from tests.system import REPO, Process, free_port
except ImportError:  # before it
    from tests.test_end_to_end import REPO, Process, free_port

pytestmark = [pytest.mark.integration, pytest.mark.faults]

EXAMPLE = REPO / "examples" / "nircam_imaging.yaml"
PROGRAM = "01234"
LEASE = 4.0  # seconds: short, so that the test sees leases expire
START_TIMEOUT = 6.0  # seconds before a task sent and not started is sent again
SCIENCE = ("uncal", "rate", "cal", "crf", "i2d", "cat", "segm", "trapsfilled")


class RedisServer:
    """A redis-server of the test's own: no persistence, so a restart comes back empty."""

    def __init__(self, directory: Path):
        self.port, self.dir = free_port(), directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        exe = shutil.which("redis-server")
        assert exe, "redis-server is not installed (.ci/run installs it)"
        log = open(self.dir / "redis.log", "ab")
        self.proc = subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.dir)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise AssertionError(f"redis-server on port {self.port} did not start")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def depths(self) -> dict[str, int]:
        client = redis.Redis.from_url(self.url, socket_timeout=2)
        try:
            return {q: int(client.llen(q)) for q in QUEUES}
        finally:
            client.close()


def small_scene(detectors: list[str], dithers: int) -> dict:
    """The demo's imaging observation only: a few SUB160 exposures."""
    desc = yaml.safe_load(EXAMPLE.read_text())
    imaging = desc["observations"][0]
    imaging["detectors"] = detectors
    imaging["dither"] = {"pattern": "N-POINT-LINE", "npoints": dithers, "size": 2.0}
    desc["observations"] = [imaging]
    return desc


class Stack:
    """The test's Redis, the catalog and store settings, an in-process context with the
    Celery transport, and `dms` subprocesses (workers, reconciler)."""

    def __init__(self, tmp_path: Path, pg_url: str, s3_server, **extra: str):
        self.tmp_path = tmp_path
        self.redis = RedisServer(tmp_path / "redis")
        self.redis.start()
        self.env_settings = {
            **s3_server.env(),
            "DMS_VAR_DIR": str(tmp_path / "var"),
            "DMS_CATALOG_URL": pg_url,
            "DMS_BROKER_URL": self.redis.url,
            # the broker's own redelivery would hide what the ledger does: not within a test
            "DMS_BROKER_VISIBILITY_TIMEOUT": "3600",
            "DMS_TASK_MAX_RETRIES": "3",
            "DMS_WORK_LEASE_SECONDS": str(LEASE),
            "DMS_WORK_START_TIMEOUT_SECONDS": str(START_TIMEOUT),
            "DMS_WORK_MAX_ATTEMPTS": "4",
            "DMS_RECONCILE_AFTER_SECONDS": "3",
            "DMS_ASTROMETRIC_CATALOG_DIR": str(tmp_path / "sim" / "catalogs"),
            **extra,
        }
        self.settings = Settings(**{k.removeprefix("DMS_").lower(): v for k, v in self.env_settings.items()})
        from shared.celery_app import CeleryTransport, create_app

        self.ctx = ServiceContext.from_settings(self.settings, transport=CeleryTransport(create_app(self.settings)))
        self.ctx.catalog.upgrade()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("DMS_")} | self.env_settings
        self.env["PYTHONPATH"] = str(REPO)
        self.processes: list[Process] = []

    def run(self, name: str, *argv: str) -> Process:
        p = Process(name, list(argv), self.env, self.tmp_path / f"{name}.log").start()
        self.processes.append(p)
        return p

    def worker(self, service: str, n: int = 1) -> Process:
        return self.run(f"{service}-{n}", "worker", service, "--loglevel", "INFO")

    def stop(self) -> None:
        for p in self.processes:
            if p.alive():
                os.killpg(p.proc.pid, signal.SIGCONT)  # a stopped process cannot act on SIGTERM
            p.stop()
        self.redis.kill()
        self.ctx.catalog.dispose()

    def logs(self) -> str:
        return "\n".join(f"----- {p.name} -----\n{p.tail()}" for p in self.processes)

    # ---------------------------------------------------------------- reading the catalog

    def products(self) -> list[tuple[str, str, int, bool]]:
        with self.ctx.catalog.session() as s:
            return [tuple(r) for r in s.execute(
                select(Product.filename, Product.suffix, Product.revision, Product.is_current)
                .where(Product.program_id == PROGRAM))]

    def work(self) -> Counter:
        with self.ctx.catalog.session() as s:
            return Counter(dict(s.execute(select(WorkItem.state, func.count()).group_by(WorkItem.state)).all()))

    def wait_until(self, predicate, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            dead = [p.name for p in self.processes if p.proc is not None and not p.alive()]
            assert not dead, f"{dead} exited"
            time.sleep(0.2)
        with self.ctx.catalog.session() as s:
            failed = s.execute(select(WorkItem.task, WorkItem.last_error).where(
                WorkItem.state == WorkState.FAILED)).all()
        raise AssertionError(f"timed out after {timeout} s waiting for {what}; products: {sorted(self.products())}; "
                             f"work: {self.work()}; failed: {failed}")

    def quiet(self, seconds: float, timeout: float) -> None:
        """Wait until neither products nor work states change for ``seconds``."""
        def snapshot():
            return len(self.products()), sorted(self.work().items())

        last, since, deadline = snapshot(), time.monotonic(), time.monotonic() + timeout
        while time.monotonic() < deadline:
            time.sleep(0.5)
            now = snapshot()
            if now != last:
                last, since = now, time.monotonic()
            elif time.monotonic() - since >= seconds:
                return
        raise AssertionError(f"still busy after {timeout} s: {last}")


@pytest.fixture
def stack(request, tmp_path, pg_url, s3_server):
    s3_server.reset()
    made = []

    def make(**extra) -> Stack:
        made.append(Stack(tmp_path, pg_url, s3_server, **extra))
        return made[0]

    failed_before = request.session.testsfailed
    yield make
    for st in made:
        st.stop()
        if request.session.testsfailed > failed_before:
            print(st.logs())


def prepare(st: Stack, desc: dict):
    """Simulate the scene, deliver its references, and receive plan and telemetry (the
    arrival events are recorded, not yet dispatched)."""
    sim = simulate(desc, st.tmp_path / "sim")
    assert deliver_references(st.ctx, sim.reference_paths, note="fault test").created
    received = receive_files(st.ctx, [sim.plan_path, *sim.telemetry_paths])
    return sim, [r.event_id for r in received if r.event_id]


def complete(sim):
    stems = [p.stem for p in sim.telemetry_paths]

    def done(products) -> bool:
        current = {name for name, _, _, cur in products if cur}
        level3 = {suffix for name, suffix, _, cur in products if cur and name.startswith(f"jw{PROGRAM}-")}
        return all(f"{stem}_cal.fits" in current for stem in stems) and {"i2d", "cat", "segm"} <= level3

    return done


def assert_exactly_once(st: Stack, sim) -> None:
    """The invariant after any fault: every expected product is current exactly once, no
    science product was made twice (one revision), every revision was announced once and
    stored once, all work is done and nothing was dead-lettered."""
    products = st.products()
    current = Counter(name for name, _, _, cur in products if cur)
    assert all(n == 1 for n in current.values()), current
    # a newer pool (and an ASN re-made under it) has a new name and replaces the old one
    names = {name for name, suffix, _, _ in products if suffix not in ("pool", "asn")}
    assert names <= set(current), f"products without a current revision: {names - set(current)}"
    assert sum(1 for name, suffix, _, cur in products if cur and suffix == "pool") == 1
    for stem in (p.stem for p in sim.telemetry_paths):
        for suffix in ("uncal", "rate", "cal", "crf"):
            assert any(n.startswith(stem) and n.endswith(f"_{suffix}.fits") for n in current), (stem, suffix)
    level3 = Counter(suffix for name, suffix, _, _ in products if name.startswith(f"jw{PROGRAM}-"))
    assert level3["i2d"] == level3["cat"] == level3["segm"] == 1, level3
    revisions = Counter(name for name, suffix, _, _ in products if suffix in SCIENCE)
    assert all(n == 1 for n in revisions.values()), f"made twice: {[n for n, k in revisions.items() if k > 1]}"
    with st.ctx.catalog.session() as s:
        announced = Counter(s.scalars(select(EventRecord.subject)
                                      .where(EventRecord.type == EventType.PRODUCT_ARCHIVED)).all())
        failures = s.scalars(select(TaskFailure.reason)).all()
    assert announced == Counter(name for name, _, _, _ in products), "each revision must be announced once"
    stored = list(st.ctx.store.list_keys(Bucket.ARCHIVE))
    assert len(stored) == len(products) == len(set(stored))
    assert failures == []
    assert set(st.work()) == {WorkState.DONE}, st.work()


def test_broker_killed_and_restarted_empty_mid_run(stack, tmp_path):
    st = stack()
    # stage2's worker starts only after the broker comes back, so its messages are surely
    # in the broker when it dies (a fast machine would otherwise have consumed everything)
    for service in ("ingest", "detector1", "associations", "stage3", "preview", "notifier"):
        st.worker(service)
    sim, arrivals = prepare(st, small_scene(["NRCA1"], 2))
    assert dispatch_events(st.ctx.catalog, st.ctx.transport, event_ids=arrivals) == len(sim.telemetry_paths) == 2

    # Mid-run: a _rate exists and messages are waiting in the broker. Kill it; it comes
    # back empty (no persistence): whatever it held is gone.
    def mid_run():
        return any(suffix == "rate" for _, suffix, _, _ in st.products()) and st.redis.depths()["stage2"] > 0

    st.wait_until(mid_run, 120, "a _rate archived while stage-2 messages wait in the broker")
    lost = st.redis.depths()
    st.redis.kill()
    time.sleep(1.0)
    st.redis.start()
    # what it held is gone: the stage-2 messages (no stage-2 worker runs yet). The other
    # queues are not checked: a worker that was mid-task sends its events to the new broker.
    assert st.redis.depths()["stage2"] == 0, f"the restarted broker kept stage-2 messages (held {lost})"
    st.worker("stage2")

    # Without the reconciler the run stalls short of the end, with work the broker forgot.
    st.quiet(seconds=LEASE + 4, timeout=120)
    assert not complete(sim)(st.products()), f"nothing was lost (queues held {lost})"
    stalled = st.work()
    assert stalled[WorkState.PENDING] + stalled[WorkState.RUNNING] > 0, stalled
    assert sum(st.redis.depths().values()) == 0

    # The reconciler, as deployed, finds it in the catalog and sends it again.
    st.run("reconciler", "reconcile", "--loop", "--interval", "1")
    st.wait_until(lambda: complete(sim)(st.products()), 240, "the chain to finish after the reconciler ran")
    st.wait_until(lambda: set(st.work()) == {WorkState.DONE}, 120, "all work done")
    st.quiet(seconds=3, timeout=60)
    assert_exactly_once(st, sim)
    print(f"broker restart: queues held {lost} when killed; stalled with {dict(stalled)}; "
          f"recovered to {len(st.products())} product revisions")

    # Duplicate deliveries change nothing: the ledger acknowledges them ...
    before = sorted(st.products())
    with st.ctx.catalog.session() as s:
        items = [(w.task, event_from_record(s.get(EventRecord, w.event_id))) for w in s.scalars(select(WorkItem))]
    for task, event in items:
        st.ctx.transport.send(task, event)
    st.wait_until(lambda: sum(st.redis.depths().values()) == 0, 60, "the duplicates to be consumed")
    st.quiet(seconds=3, timeout=60)
    assert sorted(st.products()) == before
    # ... and the tasks themselves are idempotent: each one run again, outside the ledger,
    # makes no product and announces nothing
    rerun = {}
    for task, event in items:
        if task.split(".")[0] in ("ingest", "detector1", "associations", "stage2", "stage3") and task not in rerun:
            rerun[task] = handlers_for(task.split(".")[0])[task](event, st.ctx)
    assert set(rerun) == {"ingest.telemetry", "detector1.run", "associations.update", "stage2.run", "stage3.run"}
    with st.ctx.catalog.session() as s:
        made = [(r.type, r.subject) for r in s.scalars(select(EventRecord).where(
            EventRecord.id.in_([i for ids in rerun.values() for i in ids])))]
    assert all(ids == [] for ids in rerun.values()), made
    assert sorted(st.products()) == before
    assert_exactly_once(st, sim)


def test_worker_hung_past_its_lease(stack, tmp_path):
    st = stack()
    st.worker("ingest")
    first, second = st.worker("detector1", 1), st.worker("detector1", 2)
    sim, arrivals = prepare(st, small_scene(["NRCA1"], 1))
    dispatch_events(st.ctx.catalog, st.ctx.transport, event_ids=arrivals)

    def running_detector1():
        with st.ctx.catalog.session() as s:
            return s.scalar(select(WorkItem).where(WorkItem.task == "detector1.run",
                                                   WorkItem.state == WorkState.RUNNING))

    st.wait_until(lambda: running_detector1() is not None, 120, "detector1 to start")
    item = running_detector1()
    pid = int(item.worker.rsplit(":", 1)[1])
    hung = next(p for p in (first, second) if os.getpgid(pid) == p.proc.pid)
    os.killpg(hung.proc.pid, signal.SIGSTOP)  # the whole worker hangs: no heartbeat, no acknowledgement
    assert not any(suffix == "rate" for _, suffix, _, _ in st.products()), "detector1 finished before the hang"

    # The lease expires; the reconciler gives the task to the other worker, which does it.
    time.sleep(LEASE + 0.5)
    # (no preview or notifier worker runs here: leave their items alone, start timeout 1 h)
    done = reconcile(st.ctx.catalog, st.ctx.transport, 3600, start_timeout_seconds=3600, max_attempts=4)
    assert (done.expired, done.resent, done.failed) == (1, 1, 0), done
    def item_now():
        with st.ctx.catalog.session() as s:
            return s.get(WorkItem, item.id)

    st.wait_until(lambda: item_now().state == WorkState.DONE, 120, "the other worker to finish the task")
    row = item_now()
    assert row.attempts == 2 and row.worker != item.worker
    assert any(suffix == "rate" for _, suffix, _, _ in st.products())

    # The hung worker resumes and finishes its copy: same bytes, nothing new.
    os.killpg(hung.proc.pid, signal.SIGCONT)
    st.wait_until(lambda: "succeeded in" in hung.tail(20000), 60, "the resumed worker's task to end")
    assert "the task was given to another worker" in hung.tail(20000)  # its heartbeat found the claim gone
    made = Counter(suffix for _, suffix, _, _ in st.products())
    assert made["rate"] == 1 and made["uncal"] == 1, made
    with st.ctx.catalog.session() as s:
        rates = s.scalar(select(func.count()).select_from(EventRecord).where(
            EventRecord.type == EventType.PRODUCT_ARCHIVED, EventRecord.subject.like("%_rate.fits")))
        row = s.get(WorkItem, item.id)
        assert s.scalar(select(func.count()).select_from(TaskFailure)) == 0
    assert rates == 1 and row.state == WorkState.DONE and row.attempts == 2
    assert len(list(st.ctx.store.list_keys(Bucket.ARCHIVE))) == len(st.products())
