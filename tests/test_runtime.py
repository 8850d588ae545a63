"""Outbox dispatch, reconciliation, routing, typed event payloads and the Celery policy settings."""

from __future__ import annotations

import ctypes
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from shared.catalog import Catalog, EventRecord, TaskFailure, WorkItem, WorkState
from shared.catalog.queries import add_event, event_from_record
from shared.config import Settings
from shared.errors import NonRetriableError, RetriableError, is_retriable, is_unavailable
from shared.messages import (
    PAYLOADS,
    Event,
    EventType,
    IngestSummary,
    PayloadError,
    ProductArchived,
    ProductRef,
    ReferenceDelivered,
    TelemetryArrived,
    new_event,
)
from shared.routing import ROUTES, Route, queue_for, routes_for
from shared.runtime import (
    DISPATCH_TASK,
    InlineTransport,
    ServiceContext,
    dispatch_events,
    reconcile,
    run_handler,
)
from shared.storage import StorageError
from shared.telemetry import FaultKind

SHA = "0" * 64


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
    ref = ProductRef(uri=f"file:///raw/f{n}", filename=f"f{n}", suffix="telemetry", sha256=SHA, size=1)
    return new_event(TelemetryArrived(telemetry=ref), "/test", subject=f"f{n}")


def archived(suffix="uncal", **fields):
    ref = ProductRef(uri=f"file:///x_{suffix}", filename=f"x_{suffix}.fits", suffix=suffix, sha256=SHA, size=1,
                     asn_id=fields.get("asn_id"))
    return new_event(ProductArchived(product=ref, level=1, data_release=datetime(2027, 1, 1, tzinfo=UTC),
                                     **fields), "/t")


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
    assert reconcile(catalog, rec, older_than_seconds=60).events == 1
    assert reconcile(catalog, rec, older_than_seconds=0).events == 1


def test_add_event_is_idempotent(catalog):
    ev = arrival()
    with catalog.session() as s:
        add_event(s, ev)
        add_event(s, ev)
    with catalog.session() as s:
        assert len(s.scalars(select(EventRecord)).all()) == 1


def test_routes_filter_on_suffix_and_asn_type():
    ev = archived()
    table = (Route(EventType.PRODUCT_ARCHIVED, "detector1.run", suffixes=frozenset({"uncal"})),
             Route(EventType.PRODUCT_ARCHIVED, "preview.make", suffixes=frozenset({"rate"})))
    assert [r.task for r in routes_for(ev, table)] == ["detector1.run"]
    assert [r.task for r in routes_for(arrival(), ROUTES)] == ["ingest.telemetry"]
    image3 = archived("asn", asn_type="image3", asn_id="o001", asn_rule="Asn_Lv3Image", products=("jw01234-o001",))
    assert [r.task for r in routes_for(image3, ROUTES)] == ["stage3.run", "notifier.match"]
    assert queue_for("ingest.telemetry") == "ingest"
    with pytest.raises(ValueError):
        queue_for("nowhere.task")


# ---------------------------------------------------------------- typed payloads


def test_every_event_type_has_a_frozen_strict_payload():
    assert set(PAYLOADS) == set(EventType)
    for event_type, model in PAYLOADS.items():
        assert model.event_type == event_type
        assert model.model_config["frozen"] and model.model_config["extra"] == "forbid"
    # the ingest counts name every fault kind the decoder knows
    assert {f"fault_{k.value}" for k in FaultKind} <= set(IngestSummary.model_fields)


def test_payload_is_validated_where_built_and_read():
    ev = archived(ingest=IngestSummary(packets=12, missing_rows=3))
    assert ev.type == EventType.PRODUCT_ARCHIVED == "dms.product.archived"
    # on the wire: a CloudEvents envelope whose data is a plain JSON object, optional fields left out
    wire = ev.to_json_dict()
    assert set(wire["data"]) == {"product", "level", "data_release", "ingest"}
    assert wire["data"]["data_release"] == "2027-01-01T00:00:00+00:00"
    back = Event.model_validate(wire)
    payload = back.payload_as(ProductArchived)
    assert payload == ev.payload and payload.ingest.missing_rows == 3 and back.product == payload.product
    with pytest.raises(Exception, match="frozen"):
        payload.level = 2
    with pytest.raises(PayloadError, match="is dms.product.archived, not dms.telemetry.arrived"):
        back.payload_as(TelemetryArrived)
    # built: the model refuses what the router could not use, and new_event takes only payloads
    with pytest.raises(ValueError, match="needs asn_type"):
        archived("asn", asn_id="o001")
    with pytest.raises(ValueError, match="association files only"):
        archived("rate", asn_type="image2")
    with pytest.raises(ValueError, match="extra"):
        ProductArchived(product=ev.product, level=1, data_release=datetime.now(UTC), color="red")
    with pytest.raises(TypeError, match="not an event payload"):
        new_event(ev.product, "/t")
    # read: naive times (SQLite) are UTC; an unknown type or a bad payload is a non-retriable PayloadError
    naive = Event.model_validate({**wire, "data": {**wire["data"], "data_release": "2027-01-01T00:00:00"}})
    assert naive.payload.data_release == datetime(2027, 1, 1, tzinfo=UTC)
    bad = Event.model_validate({**wire, "data": {**wire["data"], "level": "high"}})
    with pytest.raises(PayloadError, match=r"dms.product.archived\) has a malformed payload: 1 error\(s\), first at level"):
        _ = bad.product
    assert issubclass(PayloadError, NonRetriableError)
    with pytest.raises(PayloadError, match="unknown type 'dms.bogus'"):
        _ = Event.model_validate({**wire, "type": "dms.bogus"}).payload


def test_reference_delivered_reads_events_stored_before_typing():
    """An outbox row as shared.refdata wrote it before payloads were typed still reads."""
    stored = {"context": "dms_0002.ctx", "parent": "dms_0001.ctx", "note": "", "replaced": [],
              "files": [{"filename": "dark.fits", "reftype": "DARK", "instrument": "NIRCAM",
                         "selectors": {"DETECTOR": "NRCA1"}, "useafter": "2025-01-01T00:00:00",
                         "uri": "file:///r/dark.fits", "sha256": SHA, "size": 10, "pedigree": "GROUND"}]}
    ev = Event(id="e", source="/t", type=EventType.REFERENCE_DELIVERED, time=datetime.now(UTC), data=stored)
    [ref] = ev.payload_as(ReferenceDelivered).files
    assert ref.useafter == datetime(2025, 1, 1, tzinfo=UTC) and ev.product is None


def test_malformed_payload_is_dead_lettered_with_a_reason(tmp_path):
    settings = Settings(var_dir=tmp_path / "var", _env_file=None)
    ctx = ServiceContext.from_settings(settings)
    ctx.catalog.upgrade()
    calls = []
    wire = archived().to_json_dict()
    wire["data"]["product"] = {**wire["data"]["product"], "sha256": "not-a-checksum"}
    outcome = run_handler("detector1.run", lambda event, c: calls.append(event), wire, ctx)
    assert outcome.status == "failed" and not calls  # the handler never saw it
    assert "malformed message for detector1.run" in outcome.error and "first at product.sha256" in outcome.error
    # a handler that reads a payload of the wrong type fails the same way, without crashing the worker
    outcome = run_handler("ingest.telemetry", lambda event, c: [event.payload_as(TelemetryArrived)],
                          archived().to_json_dict(), ctx)
    assert outcome.status == "failed" and outcome.error.startswith("PayloadError: ")
    with ctx.catalog.session() as s:
        failures = s.scalars(select(TaskFailure).order_by(TaskFailure.id)).all()
        assert [(f.task, f.retriable) for f in failures] == [("detector1.run", False), ("ingest.telemetry", False)]
        assert "sha256" in failures[0].reason and failures[0].payload == wire  # the message kept whole
    ctx.catalog.dispose()


def test_dispatcher_dead_letters_an_outbox_event_it_cannot_route(catalog):
    good = archived()
    with catalog.session() as s:
        add_event(s, good)
        row = add_event(s, archived("rate"))
        row.data = {"product": {"uri": "file:///x_rate"}}  # a row no producer could have written
    rec = Recorder()
    assert dispatch_events(catalog, rec) == 1  # the routes filter on the suffix: they must read it
    assert rec.sent == [("detector1.run", good.id), ("preview.make", good.id), ("notifier.match", good.id)]
    with catalog.session() as s:
        row = s.get(EventRecord, row.id)
        assert row.dispatched_at is not None and "malformed payload" in row.last_error
        [failure] = s.scalars(select(TaskFailure)).all()
        assert failure.task == DISPATCH_TASK and failure.event_id == row.id and not failure.retriable
        assert event_from_record(row).data == row.data
    assert dispatch_events(catalog, rec) == 0  # not retried for ever


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


def test_an_outage_spends_no_attempt_and_is_never_dead_lettered(tmp_path):
    """The object store out of reach on the last attempt: a retry marked ``unavailable``
    (the Celery task does not count it), the work item pending again; any other transient
    fault on the last attempt is dead-lettered."""
    settings = Settings(var_dir=tmp_path / "var", _env_file=None)
    ctx = ServiceContext.from_settings(settings)
    ctx.catalog.upgrade()
    down, hiccup = StorageError("cannot talk to the S3 service"), StorageError("InternalError")
    down.unavailable = True
    assert is_unavailable(down) and not is_unavailable(hiccup) and is_retriable(hiccup)
    first, second = arrival(1), arrival(2)
    with ctx.catalog.session() as s:
        add_event(s, first)
        add_event(s, second)

    def raises(exc):
        def handler(event, c):
            raise exc
        return handler

    outcome = run_handler("ingest.telemetry", raises(down), first.to_json_dict(), ctx, attempt=3, max_attempts=3)
    assert (outcome.status, outcome.unavailable) == ("retry", True)
    outcome = run_handler("ingest.telemetry", raises(hiccup), second.to_json_dict(), ctx, attempt=3, max_attempts=3)
    assert (outcome.status, outcome.unavailable) == ("failed", False)
    with ctx.catalog.session() as s:
        states = dict(s.execute(select(WorkItem.event_id, WorkItem.state)).all())
        assert states == {first.id: WorkState.PENDING, second.id: WorkState.FAILED}
        assert [f.event_id for f in s.scalars(select(TaskFailure))] == [second.id]
    ctx.catalog.dispose()


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


def test_events_are_sent_as_their_transaction_commits_while_the_handler_runs(tmp_path):
    """A handler's first product goes on while the handler still works on the next (a
    ``_crf`` before its association's mosaic); an event the handler does not return (a
    superseded revision) is sent too; a transaction that rolls back sends nothing."""
    rec = Recorder()
    settings = Settings(var_dir=tmp_path / "var", _env_file=None)
    ctx = ServiceContext.from_settings(settings, transport=rec)
    ctx.catalog.upgrade()
    first, second, lost = archived("cal"), arrival(7), arrival(8)
    seen_while_running = []

    def handler(event, c):
        with c.catalog.session() as s:
            add_event(s, first)
        seen_while_running.append(list(rec.sent))
        with pytest.raises(RuntimeError), c.catalog.session() as s:
            add_event(s, lost)
            raise RuntimeError("this transaction rolls back")
        with c.catalog.session() as s:
            add_event(s, second)
        return [first.id]  # the second is not returned: it still goes at its commit

    outcome = run_handler("ingest.telemetry", handler, arrival(1).to_json_dict(), ctx)
    assert outcome.status == "ok"
    assert [eid for _, eid in seen_while_running[0]] == [first.id] * 3  # before the handler returned
    assert {eid for _, eid in rec.sent} == {first.id, second.id}
    assert len(rec.sent) == 4  # each route once: the dispatch at the end sends nothing again
    with ctx.catalog.session() as s:
        assert s.get(EventRecord, lost.id) is None
        assert all(r.dispatched_at is not None for r in s.scalars(select(EventRecord)))
    # outside a handler, a transaction records its events and leaves them for an explicit dispatch
    with ctx.catalog.session() as s:
        add_event(s, arrival(9))
    assert len(rec.sent) == 4
    ctx.catalog.dispose()


def test_a_broker_down_at_commit_fails_nothing_and_leaves_the_event_pending(tmp_path):
    settings = Settings(var_dir=tmp_path / "var", _env_file=None)
    ctx = ServiceContext.from_settings(settings, transport=Recorder(fail=True))
    ctx.catalog.upgrade()
    made = arrival(3)

    def handler(event, c):
        with c.catalog.session() as s:
            add_event(s, made)
        return [made.id]

    assert run_handler("ingest.telemetry", handler, arrival(1).to_json_dict(), ctx).status == "ok"
    with ctx.catalog.session() as s:
        row = s.get(EventRecord, made.id)
        assert row.dispatched_at is None and "unreachable" in row.last_error  # the reconciler sends it
    ctx.catalog.dispose()


_ARENAS = textwrap.dedent("""
    import ctypes, sys, tempfile, threading
    import numpy as np
    from shared.celery_app import limit_malloc_arenas
    print(limit_malloc_arenas(int(sys.argv[1])))
    def work():
        for _ in range(50):
            kept = [np.ones(1000 + i) for i in range(100)]
            del kept
    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    libc = ctypes.CDLL(None)
    libc.fopen.restype = ctypes.c_void_p
    path = tempfile.mktemp()
    f = libc.fopen(path.encode(), b"w")
    libc.malloc_info(0, ctypes.c_void_p(f))
    libc.fclose(ctypes.c_void_p(f))
    print(open(path).read().count("<heap nr="))
""")


@pytest.mark.skipif(not hasattr(ctypes.CDLL(None), "malloc_info"), reason="not glibc")
def test_a_worker_process_keeps_to_its_memory_arenas():
    # A task's threads each get an arena of their own unless the worker limits them (the
    # program benchmark's stage 3: 2.9 GiB peak with the default, 2.1 GiB with 2).
    def arenas(limit: int) -> tuple[str, int]:
        done = subprocess.run([sys.executable, "-c", _ARENAS, str(limit)], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).resolve().parents[1])
        applied, count = done.stdout.split()
        return applied, int(count)

    assert arenas(2) == ("True", 2)
    applied, count = arenas(0)
    assert applied == "False" and count > 2
    assert Settings(_env_file=None).worker_malloc_arenas == 2
