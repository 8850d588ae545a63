"""Outbox dispatch, reconciliation, routing and the Celery policy settings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from shared.catalog import Catalog, EventRecord
from shared.catalog.queries import add_event
from shared.config import Settings
from shared.errors import RetriableError
from shared.messages import EventType, ProductRef, new_event
from shared.routing import ROUTES, Route, queue_for, routes_for
from shared.runtime import InlineTransport, ServiceContext, dispatch_events, reconcile


class Recorder:
    def __init__(self, fail: bool = False):
        self.sent, self.fail = [], fail

    def send(self, task, event):
        if self.fail:
            raise ConnectionError("broker unreachable")
        self.sent.append((task, event.id))


@pytest.fixture
def catalog(tmp_path):
    cat = Catalog(f"sqlite:///{tmp_path / 'c.db'}")
    cat.upgrade()
    yield cat
    cat.dispose()


def arrival(n=0):
    return new_event(EventType.TELEMETRY_ARRIVED, "/test", subject=f"f{n}", data={"telemetry": {}})


def test_dispatch_marks_sent_and_keeps_failures_pending(catalog):
    with catalog.session() as s:
        add_event(s, arrival(1))
        add_event(s, arrival(2))
    failing = Recorder(fail=True)
    assert dispatch_events(catalog, failing) == 0
    with catalog.session() as s:
        rows = s.scalars(select(EventRecord)).all()
        assert all(r.dispatched_at is None and r.attempts == 1 and "unreachable" in r.last_error for r in rows)
    ok = Recorder()
    assert dispatch_events(catalog, ok) == 2
    assert [t for t, _ in ok.sent] == ["ingest.telemetry", "ingest.telemetry"]
    assert dispatch_events(catalog, ok) == 0  # nothing twice


def test_reconcile_only_takes_stale_events(catalog):
    with catalog.session() as s:
        old = add_event(s, arrival(1))
        old.created_at = datetime.now(UTC) - timedelta(minutes=5)
        add_event(s, arrival(2))
    rec = Recorder()
    assert reconcile(catalog, rec, older_than_seconds=60) == 1
    assert reconcile(catalog, rec, older_than_seconds=0) == 1


def test_add_event_is_idempotent(catalog):
    ev = arrival()
    with catalog.session() as s:
        add_event(s, ev)
        add_event(s, ev)
    with catalog.session() as s:
        assert len(s.scalars(select(EventRecord)).all()) == 1


def test_routes_filter_on_suffix():
    ref = ProductRef(uri="file:///x", filename="x_uncal.fits", suffix="uncal", sha256="0" * 64, size=1)
    ev = new_event(EventType.PRODUCT_ARCHIVED, "/t", data={"product": ref.model_dump()})
    table = (Route(EventType.PRODUCT_ARCHIVED, "detector1.run", suffixes=frozenset({"uncal"})),
             Route(EventType.PRODUCT_ARCHIVED, "preview.make", suffixes=frozenset({"rate"})))
    assert [r.task for r in routes_for(ev, table)] == ["detector1.run"]
    assert [r.task for r in routes_for(arrival(), ROUTES)] == ["ingest.telemetry"]
    assert queue_for("ingest.telemetry") == "ingest"
    with pytest.raises(ValueError):
        queue_for("nowhere.task")
    with pytest.raises(ValueError):
        new_event("dms.bogus", "/t")


def test_inline_transport_retries_transient_faults_then_dead_letters(tmp_path):
    calls = []

    def flaky(event, ctx):
        calls.append(event.id)
        if len(calls) < 3:
            raise RetriableError("storage hiccup")
        return []

    def broken(event, ctx):
        raise RetriableError("always down")

    settings = Settings(var_dir=tmp_path / "var")
    inline = InlineTransport({"ingest.telemetry": flaky, "ingest.other": broken}, max_attempts=3)
    ctx = ServiceContext.from_settings(settings, transport=inline)
    ctx.catalog.upgrade()
    inline.ctx = ctx
    inline.send("ingest.telemetry", arrival())
    inline.send("ingest.other", arrival())
    done = inline.run_until_idle()
    assert [o.status for _, o in done] == ["ok", "failed"]
    assert len(calls) == 3


def test_celery_policy():
    from shared.celery_app import create_app, retry_delay

    app = create_app(Settings(broker_url="redis://127.0.0.1:6379/11"))
    c = app.conf
    assert c.task_acks_late and c.task_reject_on_worker_lost and c.worker_prefetch_multiplier == 1
    assert c.accept_content == ["json"] and c.task_serializer == "json"
    assert {q.name for q in c.task_queues} >= {"ingest", "detector1", "notifier"}
    delays = [retry_delay(n, 600) for n in range(12)]
    assert all(1.0 <= d <= 601.0 for d in delays)
    with pytest.raises(ValueError, match="DMS_BROKER_URL"):
        create_app(Settings())
