"""The ingest service end to end in-process: receive -> outbox -> handler -> store ->
catalog -> event, on SQLite and on real PostgreSQL; idempotency and crash recovery."""

from __future__ import annotations

from datetime import UTC

import pytest
from sqlalchemy import func, select

from services.ingest.receive import receive_files
from services.ingest.task import handle_telemetry
from services.registry import embedded_context
from shared.catalog import EventRecord, Exposure, IngestRejection, Product, TaskFailure
from shared.catalog.queries import add_months, event_from_record
from shared.config import Settings
from shared.messages import EventType, IngestRejected, ProductArchived
from shared.runtime import dispatch_events, run_handler
from shared.storage import Bucket
from tests.telemetry_factory import tiny_exposure, tiny_plan


@pytest.fixture(params=["sqlite", "postgresql"])
def ctx(request, tmp_path):
    if request.param == "sqlite":
        settings = Settings(var_dir=tmp_path / "var")
    else:
        settings = Settings(var_dir=tmp_path / "var", catalog_url=request.getfixturevalue("pg_url"))
    context, inline = embedded_context(settings, services=["ingest"])
    yield context, inline
    context.catalog.dispose()


def write_delivery(tmp_path, plan, packets, name="jw01234001001_01101_00001_nrca1.ccsds"):
    plan_path = tmp_path / f"jw{plan.program}_plan.json"
    plan_path.write_text(plan.model_dump_json(indent=2))
    tlm = tmp_path / name
    tlm.write_bytes(b"".join(packets))
    return plan_path, tlm


def deliver(ctx, inline, paths, requeue=False):
    received = receive_files(ctx, paths, requeue=requeue)
    dispatch_events(ctx.catalog, ctx.transport, event_ids=[r.event_id for r in received if r.event_id])
    return received, inline.run_until_idle()


def count(ctx, model, *where):
    with ctx.catalog.session() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where))


@pytest.mark.integration
def test_ingest_archives_registers_and_announces(ctx, tmp_path):
    context, inline = ctx
    tiny = tiny_exposure()
    received, done = deliver(context, inline, list(write_delivery(tmp_path, tiny.plan, tiny.packets)))
    assert [o.status for _, o in done] == ["ok"]
    with context.catalog.session() as s:
        product = s.scalar(select(Product))
        assert product.filename == "jw01234001001_01101_00001_nrca1_uncal.fits"
        assert (product.level, product.revision, product.is_current, product.suffix) == (1, 1, True, "uncal")
        assert product.data_release == add_months(product.archived_at, 12)  # plan EAP: 12 months
        art = product.artifacts[0]
        assert art.uri.endswith("/dms-archive/01234/001/r1/jw01234001001_01101_00001_nrca1_uncal.fits")
        assert product.inputs == [received[1].stored.uri]
        exposure = s.scalar(select(Exposure))
        assert (exposure.name, exposure.detector, exposure.ngroups) == ("jw01234001001_01101_00001_nrca1", "NRCA1", 3)
        [archived] = s.scalars(select(EventRecord).where(EventRecord.type == EventType.PRODUCT_ARCHIVED)).all()
        assert archived.data["product"]["sha256"] == art.sha256 and archived.dispatched_at is not None
        payload = event_from_record(archived).payload_as(ProductArchived)
        assert payload.level == 1 and payload.data_release == product.data_release.replace(tzinfo=UTC)
        assert payload.ingest.packets == len(tiny.packets) and payload.ingest.missing_rows == 0
    bucket, key = context.store.parse_uri(art.uri)
    assert context.store.stat(bucket, key).sha256 == art.sha256
    # raw telemetry is kept, untouched
    assert context.store.get_uri(received[1].stored.uri) == b"".join(tiny.packets)


@pytest.mark.integration
def test_redelivery_is_idempotent(ctx, tmp_path):
    context, inline = ctx
    tiny = tiny_exposure()
    paths = list(write_delivery(tmp_path, tiny.plan, tiny.packets))
    deliver(context, inline, paths)
    # the same files again: same raw keys, no new arrival event, nothing new
    received, done = deliver(context, inline, paths)
    assert done == [] and all(r.event_id is None for r in received)
    # an operator re-queues them: the handler runs again and finds everything in place
    _, done = deliver(context, inline, paths, requeue=True)
    assert [o.status for _, o in done] == ["ok"] and done[0][1].event_ids == ()
    assert count(context, Product) == 1
    assert count(context, EventRecord, EventRecord.type == EventType.PRODUCT_ARCHIVED) == 1
    assert len(list(context.store.list_keys(Bucket.ARCHIVE))) == 1


@pytest.mark.integration
def test_crash_after_store_before_catalog_recovers_exactly_once(ctx, tmp_path, monkeypatch):
    context, inline = ctx
    tiny = tiny_exposure()
    received = receive_files(context, list(write_delivery(tmp_path, tiny.plan, tiny.packets)))
    arrival = received[1].event_id
    with context.catalog.session() as s:
        row = s.get(EventRecord, arrival)
        event = event_from_record(row)

    import shared.archiving

    def crash(*args, **kwargs):
        raise ConnectionError("catalog went away")

    monkeypatch.setattr(shared.archiving, "register_product", crash)
    outcome = run_handler("ingest.telemetry", handle_telemetry, event.to_json_dict(), context, max_attempts=1)
    assert outcome.status == "failed"  # retriable, but out of attempts: dead-lettered
    assert count(context, TaskFailure) == 1
    assert len(list(context.store.list_keys(Bucket.ARCHIVE))) == 1 and count(context, Product) == 0
    monkeypatch.undo()
    outcome = run_handler("ingest.telemetry", handle_telemetry, event.to_json_dict(), context)
    assert outcome.status == "ok" and len(outcome.event_ids) == 1
    assert count(context, Product) == 1
    assert len(list(context.store.list_keys(Bucket.ARCHIVE))) == 1


@pytest.mark.integration
def test_rejection_keeps_raw_and_records_reason(ctx, tmp_path):
    context, inline = ctx
    tiny = tiny_exposure()
    tlm = tmp_path / "jw01234001001_01101_00001_nrca1.ccsds"
    tlm.write_bytes(b"".join(tiny.packets))
    received, done = deliver(context, inline, [tlm])  # no plan delivered
    assert [o.status for _, o in done] == ["ok"]
    with context.catalog.session() as s:
        [rej] = s.scalars(select(IngestRejection)).all()
        assert rej.reason == "missing_plan" and "deliver it and re-queue" in rej.detail
        assert rej.raw_uri == received[0].stored.uri
        [rejected] = s.scalars(select(EventRecord).where(EventRecord.type == EventType.INGEST_REJECTED)).all()
        payload = event_from_record(rejected).payload_as(IngestRejected)
        assert (payload.reason, payload.program, payload.raw.uri) == ("missing_plan", "01234", rej.raw_uri)
    assert context.store.get_uri(rej.raw_uri) == tlm.read_bytes()
    # deliver the plan, re-queue the telemetry: now it is archived
    plan_path = tmp_path / "jw01234_plan.json"
    plan_path.write_text(tiny.plan.model_dump_json())
    deliver(context, inline, [plan_path, tlm], requeue=True)
    assert count(context, Product) == 1


@pytest.mark.integration
def test_changed_redelivery_becomes_new_revision(ctx, tmp_path):
    context, inline = ctx
    tiny = tiny_exposure()
    paths = list(write_delivery(tmp_path, tiny.plan, tiny.packets))
    deliver(context, inline, paths)
    # the downlink is replayed with the missing-packet gap filled differently: new bytes
    other = tiny_exposure(seed=2)
    paths[1].write_bytes(b"".join(other.packets))
    received, _ = deliver(context, inline, paths)
    assert "/r2/" in received[1].stored.uri
    with context.catalog.session() as s:
        rows = s.scalars(select(Product).order_by(Product.revision)).all()
        assert [(p.revision, p.is_current) for p in rows] == [(1, False), (2, True)]
        assert rows[0].superseded_at is not None


def test_bad_plan_is_refused_with_the_field(embedded_settings, tmp_path):
    context, _ = embedded_context(embedded_settings, services=["ingest"])
    path = tmp_path / "jw01234_plan.json"
    data = tiny_plan().model_dump(mode="json")
    data["observations"][0]["ngroups"] = 0
    import json

    path.write_text(json.dumps(data))
    [received] = receive_files(context, [path])
    assert received.rejection.startswith("invalid_plan: ") and "observations.0.ngroups" in received.rejection
    with context.catalog.session() as s:
        [rej] = s.scalars(select(IngestRejection)).all()
        assert (rej.reason, rej.program_id, rej.raw_uri) == ("invalid_plan", "01234", received.stored.uri)
    assert "/01234/rejected/r1/" in received.stored.uri
    assert context.store.get_uri(received.stored.uri) == path.read_bytes()


def test_malformed_message_is_dead_lettered_not_crashing(embedded_settings):
    context, _ = embedded_context(embedded_settings, services=["ingest"])
    outcome = run_handler("ingest.telemetry", handle_telemetry, {"nonsense": True}, context)
    assert outcome.status == "failed" and "malformed message" in outcome.error
    with context.catalog.session() as s:
        [failure] = s.scalars(select(TaskFailure)).all()
        assert failure.payload == {"nonsense": True} and not failure.retriable
