"""The fault-test harness: the whole system on services a test may break.

:class:`Harness` runs a Celery worker of every service kind and the outbox reconciler
(:class:`tests.system.System`) on
- a broker Redis of its own (``redis-server`` on a free port, no persistence), which a
  test may kill and start again (empty);
- an S3 server of its own (moto) behind a TCP forwarder: stopping the forwarder is an
  object-store outage (connections refused, open ones cut), starting it again on the same
  port ends it -- the data survive, as they do when a MinIO goes down and comes back;
- its own PostgreSQL database (the ``pg_url`` fixture), whose connections a test may
  terminate.

It runs a small program (:func:`small_program`: one imaging observation, two dithers of
one SUB160 detector) down to Level 3, with a webhook subscriber to count notifications.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import redis
import yaml

from services.ingest.receive import receive_files
from services.simulator import simulate
from services.simulator.runner import SimulationResult
from shared.config import Settings
from shared.refdata import deliver as deliver_references
from shared.runtime import ServiceContext, dispatch_events
from shared.subscriptions import SubscriptionSpec, create_subscription
from shared.webhooks import WebhookPolicy
from tests.s3server import S3Server, start_moto, stop_process
from tests.system import REPO, WORKERS, System, WebhookReceiver, free_port

__all__ = ["Broker", "Harness", "ObjectStoreServer", "small_program", "terminate_backends"]

EXAMPLE = REPO / "examples" / "nircam_imaging.yaml"


def small_program() -> dict:
    """The demo's imaging observation cut down: two dither points of NRCA1 in SUB160."""
    desc = yaml.safe_load(EXAMPLE.read_text())
    imaging = desc["observations"][0]
    imaging["detectors"] = ["NRCA1"]
    imaging["dither"] = {"pattern": "N-POINT-LINE", "npoints": 2, "size": 2.0}
    desc["observations"] = [imaging]
    desc["targets"] = [t for t in desc["targets"] if t["name"] == imaging["target"]]
    desc["simulation"].pop("target_stars", None)
    return desc


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not happen within {timeout} s")


class Broker:
    """A Redis of the test's own, on a free port, keeping nothing on disk."""

    def __init__(self, workdir: Path):
        self.workdir, self.port = workdir, free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _ping(self) -> bool:
        try:
            return bool(redis.Redis(port=self.port, socket_connect_timeout=0.5).ping())
        except redis.ConnectionError:
            return False

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.workdir / "redis.log", "ab") as log:
            self.proc = subprocess.Popen(
                ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", str(self.workdir)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        _wait(self._ping, 20, f"redis-server on port {self.port} answering")

    def kill(self) -> None:
        """SIGKILL: the broker and every message it held are gone."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)


class ObjectStoreServer:
    """moto on a port of its own, reached through a forwarder on another port."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.port = free_port()  # the forwarder's: the endpoint the system uses
        self._moto_port: int | None = None
        self.moto: subprocess.Popen | None = None
        self.proxy: subprocess.Popen | None = None
        self.server: S3Server | None = None

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.moto, moto_port = start_moto(self.workdir / "moto.log")
        self._moto_port = moto_port
        self.up()
        self.server = S3Server(endpoint=f"127.0.0.1:{self.port}", access_key="testing", secret_key="testing")

    def up(self) -> None:
        """Start the forwarder (again) on the same port: the store answers."""
        with open(self.workdir / "proxy.log", "ab") as log:
            self.proxy = subprocess.Popen(
                [sys.executable, "-m", "tests.faults.tcp_proxy", str(self.port), str(self._moto_port)],
                cwd=REPO, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        _wait(lambda: self._answers(), 20, f"the object store answering on port {self.port}")

    def down(self) -> None:
        """Kill the forwarder: connections to the store are refused, open ones cut."""
        if self.proxy is not None and self.proxy.poll() is None:
            self.proxy.kill()
            self.proxy.wait(10)

    def _answers(self) -> bool:
        import urllib.request

        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/moto-api/", timeout=1):
                return True
        except OSError as exc:
            return getattr(exc, "code", None) is not None  # an HTTP error is an answer

    def stop(self) -> None:
        self.down()
        if self.moto is not None:
            stop_process(self.moto)


_RECEIVED = re.compile(r"Task ([\w.]+)\[([0-9a-f-]+)\] received")
_ENDED = re.compile(r"Task [\w.]+\[([0-9a-f-]+)\] (?:succeeded|failed|retry|raised)")


def terminate_backends(admin_url: str, database: str) -> int:
    """Terminate every connection to ``database`` but this one; how many were."""
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,)).fetchall()
    return sum(1 for (ok,) in rows if ok)


@dataclass
class Harness:
    tmp_path: Path
    pg_url: str
    sim: SimulationResult
    workers: tuple[str, ...] = WORKERS  # the queues served, one worker each
    broker: Broker = field(init=False)
    s3: ObjectStoreServer = field(init=False)
    system: System = field(init=False)
    ctx: ServiceContext = field(init=False)
    webhook: WebhookReceiver = field(init=False)
    subscription_id: int = field(init=False)

    def start(self, **settings_overrides: str) -> None:
        self.broker = Broker(self.tmp_path / "redis")
        self.broker.start()
        self.s3 = ObjectStoreServer(self.tmp_path / "s3")
        self.s3.start()
        self.webhook = WebhookReceiver()
        env_settings = {
            **self.s3.server.env(),
            "DMS_VAR_DIR": str(self.tmp_path / "var"),
            "DMS_CATALOG_URL": self.pg_url,
            "DMS_BROKER_URL": self.broker.url,
            # a task whose worker died comes back after this long (and a slow one runs twice)
            "DMS_BROKER_VISIBILITY_TIMEOUT": "15",
            "DMS_BROKER_RESTORE_INTERVAL": "2",
            "DMS_RECONCILE_AFTER_SECONDS": "5",
            "DMS_TASK_MAX_RETRIES": "6",
            "DMS_TASK_RETRY_BACKOFF_MAX": "8",
            "DMS_WEBHOOK_TIMEOUT": "5",
            "DMS_WEBHOOK_ALLOW": "127.0.0.0/8",  # the subscriber's webhook listens on loopback
            "DMS_ASTROMETRIC_CATALOG_DIR": str(self.sim.catalog_paths[0].parent),
            **settings_overrides,
        }
        settings = Settings(**{k.removeprefix("DMS_").lower(): v for k, v in env_settings.items()})
        from shared.celery_app import CeleryTransport, create_app

        self.ctx = ServiceContext.from_settings(settings, transport=CeleryTransport(create_app(settings)))
        self.ctx.catalog.upgrade()
        env = {k: v for k, v in os.environ.items() if not k.startswith("DMS_")} | env_settings
        env["PYTHONPATH"] = str(REPO)
        self.system = System(self.tmp_path, env, self.ctx, self.workers, reconciler=True)
        self.system.start()

    def submit(self, *, dispatch: bool = True) -> list[str]:
        """The calibration team delivers the references, a scientist subscribes (webhook,
        every notification type), the downlink arrives; the telemetry.arrived event ids."""
        deliver_references(self.ctx, self.sim.reference_paths, note="simulator references for a fault test")
        with self.ctx.catalog.session() as s:
            self.subscription_id = create_subscription(s, "sci@example.org", SubscriptionSpec(
                name="everything of the program", channel="webhook", target=self.webhook.url,
                filters={"programs": [str(int(self.sim.plan.program))], "event_types": ["new"]}),
                policy=WebhookPolicy.from_settings(self.ctx.settings)).id
        received = receive_files(self.ctx, [self.sim.plan_path, *self.sim.telemetry_paths])
        ids = [r.event_id for r in received if r.event_id]
        if dispatch:
            dispatch_events(self.ctx.catalog, self.ctx.transport, event_ids=ids)
        return ids

    def kill_mid_task(self, service: str, timeout: float = 120) -> str:
        """SIGKILL the worker of ``service`` while it runs a task (its log says the task
        was received and not yet that it ended), start a new one; the task's name."""
        worker = self.system.workers[service]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            log = worker.log.read_text(errors="replace") if worker.log.exists() else ""
            ended = set(_ENDED.findall(log))
            running = [(name, tid) for name, tid in _RECEIVED.findall(log) if tid not in ended]
            if running:
                worker.kill()
                fresh = type(worker)(worker.name, worker.argv, worker.env, worker.log).start()
                self.system.processes[self.system.processes.index(worker)] = fresh
                self.system.workers[service] = fresh
                return running[0][0]
            self.system.check_alive()
            time.sleep(0.02)
        raise AssertionError(f"the {service} worker ran no task within {timeout} s")

    def stop(self) -> None:
        for step in (self.system.stop, self.webhook.close, self.s3.stop, self.broker.stop, self.ctx.catalog.dispose):
            try:
                step()
            except Exception as exc:  # tear everything down whatever failed
                print(f"teardown: {exc}")


def simulate_small(workdir: Path) -> SimulationResult:
    return simulate(small_program(), workdir)
