"""A worker that cannot reach the object store when its first message arrives keeps the
message until it can: a real ``dms worker notifier`` on the test Redis and PostgreSQL,
configured with an S3 endpoint where nothing listens yet; the S3 server starts after the
message was retried more times than Celery's default retry limit (3, which bounded even
``retry(max_retries=None)`` and lost the message) and the message is then handled, once,
with nothing dead-lettered.

Without the retry in ``shared.celery_app`` the task raised out of Celery, which with late
acknowledgement acks a failed task: the message was gone and nothing recorded it (the
scale-out test found this with a worker host whose link went down)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from sqlalchemy import select

from shared.catalog import Catalog, TaskFailure, TaskStat
from shared.celery_app import CeleryTransport, create_app
from shared.config import Settings
from shared.messages import ReferenceDelivered, new_event
from tests.s3server import _free_port, stop_process

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]


def _wait(predicate, timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}; worker log:\n{log.read_text(errors='replace')[-3000:]}")


def test_message_waits_for_the_object_store(tmp_path, pg_url, redis_url, broker_prefix):
    port = _free_port()
    dms = {
        "DMS_VAR_DIR": str(tmp_path / "var"), "DMS_CATALOG_URL": pg_url, "DMS_BROKER_URL": redis_url,
        "DMS_BROKER_KEY_PREFIX": broker_prefix, "DMS_STORE": "s3", "DMS_S3_ENDPOINT": f"127.0.0.1:{port}",
        "DMS_S3_ACCESS_KEY": "testing", "DMS_S3_SECRET_KEY": "testing", "DMS_TASK_RETRY_BACKOFF_MAX": "1",
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("DMS_")} | dms | {"PYTHONPATH": str(REPO)}
    log = tmp_path / "worker.log"
    with open(log, "ab") as out:
        worker = subprocess.Popen([sys.executable, "-m", "services.cli", "worker", "notifier", "--loglevel", "INFO"],
                                  cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    s3 = None
    catalog = Catalog(pg_url)
    try:
        _wait(lambda: " ready." in log.read_text(errors="replace"), 60, "the worker to be ready", log)
        settings = Settings(**{k.removeprefix("DMS_").lower(): v for k, v in dms.items()})
        event = new_event(ReferenceDelivered(context="dms_0001.ctx", parent=None, note="outage test",
                                             files=(), replaced=()), "/dms/test")
        CeleryTransport(create_app(settings)).send("notifier.match", event)

        # the store is down: the message is retried, not failed, however many times
        def met() -> bool:
            text = log.read_text(errors="replace")
            return text.count("cannot build the worker context") >= 5 or "raised unexpected" in text

        _wait(met, 90, "the worker to meet the unreachable store five times", log)
        text = log.read_text(errors="replace")
        assert "raised unexpected" not in text, f"the message failed (and was acknowledged):\n{text[-3000:]}"

        # the store comes up on that port: the message is handled once
        s3 = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                              env=dict(os.environ, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing"))

        def handled() -> bool:
            with catalog.session() as s:
                stat = s.scalar(select(TaskStat).where(TaskStat.task == "notifier.match"))
                return stat is not None and stat.runs >= 1

        _wait(handled, 90, "notifier.match to run once the store is up", log)
        # a second run would come from a message still in the broker: let every one finish
        # (kombu's Redis transport holds a delivered message in ``unacked`` until the late ack)
        broker = redis.Redis.from_url(redis_url)
        _wait(lambda: broker.llen(f"{broker_prefix}notifier") == 0 and broker.hlen(f"{broker_prefix}unacked") == 0,
              30, "every notifier message to be acknowledged", log)
        broker.close()
        with catalog.session() as s:
            stat = s.scalar(select(TaskStat).where(TaskStat.task == "notifier.match"))
            assert (stat.runs, stat.failures) == (1, 0)
            assert s.scalars(select(TaskFailure)).all() == []
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
            try:
                worker.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait(timeout=10)
        if s3 is not None:
            stop_process(s3)
        catalog.dispose()
