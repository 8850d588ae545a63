"""The notifier: classification, matching (once per subscription and event), signed
CloudEvents webhooks against a real HTTP server with retries, backoff and dead letters,
e-mail digests against a real SMTP server, release announcements, the CLI, and an end to
end run from simulated telemetry to a subscriber's webhook."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from sqlalchemy import func, select

from services.notifier.classify import FileFacts, Notice, notification_types, primary_type
from services.notifier.delivery import delivery_batch_id, retry_delay
from services.notifier.payload import attachment_name, cloud_event, fileset_of, mast_row
from services.notifier.scheduler import announce_releases, flush_due, public_event_id
from services.notifier.task import HANDLERS, handle_event, match_event
from shared.catalog import (
    Artifact,
    ArtifactKind,
    Delivery,
    DeliveryAttempt,
    EventRecord,
    Observation,
    Product,
    Program,
    Subscription,
)
from shared.catalog.queries import add_event, add_months, event_from_record
from shared.config import Settings
from shared.messages import (
    DeliveredReference,
    Event,
    EventType,
    ProductArchived,
    ProductRef,
    ReferenceDelivered,
    Reprocessed,
    new_event,
)
from shared.runtime import ServiceContext, run_handler
from shared.subscriptions import SubscriptionFilters, SubscriptionSpec, create_subscription
from shared.webhooks import WebhookPolicy

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


# ---------------------------------------------------------------- fixtures and helpers


def make_ctx(tmp_path, catalog_url=None, **overrides) -> ServiceContext:
    settings = Settings(var_dir=tmp_path / "var", catalog_url=catalog_url, notify_retry_base=10.0,
                        notify_max_attempts=3, webhook_timeout=5.0, webhook_allow="127.0.0.0/8",
                        _env_file=None, **overrides)
    ctx = ServiceContext.from_settings(settings)
    ctx.catalog.upgrade()
    return ctx


@pytest.fixture(params=["sqlite", "postgresql"])
def ctx(request, tmp_path):
    url = request.getfixturevalue("pg_url") if request.param == "postgresql" else None
    context = make_ctx(tmp_path, url)
    yield context
    context.catalog.dispose()


@pytest.fixture
def sqlite_ctx(tmp_path):
    context = make_ctx(tmp_path)
    yield context
    context.catalog.dispose()


def with_settings(ctx: ServiceContext, **update) -> ServiceContext:
    ctx.settings = ctx.settings.model_copy(update=update)
    return ctx


def archive(ctx, filename, *, program="01234", revision=1, archived_at=T0, eap_months=12, level=1,
            suffix=None, instrument="NIRCAM", inputs=(), data_release=None, reprocessing=None) -> Event:
    """Register a product (program, observation, product, artifact) the way a stage does,
    with its dms.product.archived event in the outbox; returns the event."""
    suffix = suffix or filename.rsplit("_", 1)[1].split(".")[0]
    sha = hashlib.sha256(f"{filename}:{revision}".encode()).hexdigest()
    with ctx.catalog.session() as s:
        if s.get(Program, program) is None:
            s.add(Program(id=program, title="t", category="GO", eap_months=eap_months, created_at=T0))
            s.flush()
        obs = s.scalar(select(Observation).where(Observation.program_id == program))
        if obs is None:
            obs = Observation(program_id=program, number=1, instrument=instrument)
            s.add(obs)
            s.flush()
        for old in s.scalars(select(Product).where(Product.filename == filename, Product.is_current)):
            old.is_current, old.superseded_at = False, archived_at
        release = data_release or add_months(archived_at, eap_months)
        product = Product(filename=filename, suffix=suffix, level=level, revision=revision, is_current=True,
                          program_id=program, observation_id=obs.id, archived_at=archived_at,
                          meta_release=archived_at, data_release=release, inputs=list(inputs))
        product.artifacts.append(Artifact(kind=ArtifactKind.DATA, uri=f"file:///archive/{program}/r{revision}/{filename}",
                                          sha256=sha, size=10, content_type="application/fits"))
        s.add(product)
        s.flush()
        ref = ProductRef(uri=product.artifacts[0].uri, filename=filename, suffix=suffix, sha256=sha, size=10,
                         revision=revision, program=program, observation=1)
        event = new_event(ProductArchived(product=ref, level=level, data_release=release, reprocessing=reprocessing),
                          "/test/stage", subject=filename, time=archived_at)
        add_event(s, event)
    return event


def subscribe(ctx, channel="webhook", target="http://127.0.0.1:9/hook", frequency="immediate",
              created_at=T0, secret="s3cret-s3cret-s3cret", **filters) -> int:
    spec = SubscriptionSpec(channel=channel, target=target, frequency=frequency,
                            secret=secret if channel == "webhook" else None,
                            filters=SubscriptionFilters(**filters))
    with ctx.catalog.session() as s:
        # the tests' addresses are their own SMTP sink: confirmed (tests/test_api_hardening.py
        # covers the confirmation link)
        row = create_subscription(s, "sci@example.org", spec, policy=WebhookPolicy.from_settings(ctx.settings),
                                  confirmed=True)
        row.created_at = created_at
        return row.id


def deliveries(ctx, subscription_id=None) -> list[Delivery]:
    with ctx.catalog.session() as s:
        q = select(Delivery).order_by(Delivery.id)
        if subscription_id is not None:
            q = q.where(Delivery.subscription_id == subscription_id)
        return list(s.scalars(q))


def attempts(ctx) -> list[DeliveryAttempt]:
    with ctx.catalog.session() as s:
        return list(s.scalars(select(DeliveryAttempt).order_by(DeliveryAttempt.id)))


def aware(when):
    return when if when is None or when.tzinfo else when.replace(tzinfo=UTC)


class WebhookServer:
    """A real HTTP server on loopback that answers 500 to the first ``fail`` requests."""

    def __init__(self):
        self.requests: list[tuple[object, bytes]] = []
        self.fail = 0
        received, outer = self.requests, self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append((self.headers, body))
                code = 500 if len(received) <= outer.fail else 204
                payload = b"try later" if code == 500 else b""
                self.send_response(code)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def events(self) -> list[dict]:
        return [json.loads(body) for _, body in self.requests]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook():
    server = WebhookServer()
    yield server
    server.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]



def verify(secret: str, body: bytes, header: str) -> bool:
    """What a subscriber does (docs/notifications.md)."""
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header)


# ---------------------------------------------------------------- classification and payload


LATER = T0 + timedelta(days=365)


@pytest.mark.parametrize("event_type, facts, expected", [
    (EventType.PRODUCT_ARCHIVED, dict(revision=1, data_release=LATER), ("new",)),
    (EventType.PRODUCT_ARCHIVED, dict(revision=1, data_release=LATER, first_of_program=True), ("new", "first")),
    (EventType.PRODUCT_ARCHIVED, dict(revision=1, data_release=T0, first_of_program=True), ("new", "first", "public")),
    (EventType.PRODUCT_ARCHIVED, dict(revision=1, data_release=T0 - timedelta(days=1)), ("new", "public")),
    (EventType.PRODUCT_ARCHIVED, dict(revision=2, data_release=LATER, first_of_program=True), ("reprocessed",)),
    (EventType.PRODUCT_ARCHIVED, dict(revision=3, data_release=T0), ("reprocessed", "public")),
    (EventType.PRODUCT_ARCHIVED, dict(revision=3, data_release=T0, previously_public=True), ("reprocessed",)),
    (EventType.PRODUCT_ARCHIVED, dict(revision=1, data_release=None), ("new",)),
    (EventType.DATA_PUBLIC, dict(revision=1, data_release=T0), ("public",)),
    (EventType.DATA_PUBLIC, dict(revision=4, data_release=T0), ("public",)),
    (EventType.REFERENCE_DELIVERED, dict(program=None), ("reference",)),
    (EventType.PRODUCT_CREATED, dict(), ()),
    (EventType.TELEMETRY_ARRIVED, dict(), ()),
])
def test_classification_table(event_type, facts, expected):
    f = FileFacts(filename="jw01234001001_01101_00001_nrca1_uncal.fits", suffix="uncal", archived_at=T0,
                  **{"program": "01234", **facts})
    assert notification_types(event_type, f) == expected


@pytest.mark.parametrize("event_type", [EventType.PRODUCT_ARCHIVED, EventType.DATA_PUBLIC])
@pytest.mark.parametrize("revision", [1, 2])
def test_the_association_report_is_never_announced(event_type, revision):
    f = FileFacts(filename="jw01234_asn-report.html", suffix="asn-report", program="01234", revision=revision,
                  archived_at=T0, data_release=T0, first_of_program=True)
    assert notification_types(event_type, f) == ()


def test_primary_type_and_retry_schedule():
    f = FileFacts(filename="x_uncal.fits")
    assert primary_type([Notice(f, "public"), Notice(f, "first"), Notice(f, "new")]) == "new"
    assert primary_type([Notice(f, "public")]) == "public"
    assert [retry_delay(n, 30.0) for n in (1, 2, 3, 4)] == [30.0, 60.0, 120.0, 240.0]
    assert 30.0 <= retry_delay(1, 30.0, 0.999) < 33.0  # at most 10% jitter


def test_mast_rows_and_cloud_event():
    f = FileFacts(filename="jw01234001001_01101_00001-seg001_nrca1_uncal.fits", suffix="uncal", program="01234",
                  instrument="NIRCAM", revision=1, level=1, archived_at=datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC),
                  data_release=datetime(2027, 3, 1, 12, tzinfo=UTC))
    row = mast_row(Notice(f, "new"), "e-1")
    assert row == {
        "event_id": "e-1", "mission": "JWST", "fileset": "jw01234001001_01101_00001",
        "filename": "jw01234001001_01101_00001-seg001_nrca1_uncal.fits", "program": 1234, "event_type": "New",
        "archived_date": "2026-03-01T12:00:00.123", "public_release_date": "2027-03-01T12:00:00.000",
        "dataURI": "mast:JWST/product/jw01234001001_01101_00001-seg001_nrca1_uncal.fits", "suffix": "uncal",
        "revision": 1, "level": 1, "instrument": "NIRCAM",
    }
    ce = cloud_event("b-1", [row], "new", T0)
    assert ce == {"specversion": "1.0", "id": "b-1", "source": "/archive/jwst/program/01234",
                  "type": "org.jwstdms.archive.product.new", "time": "2026-03-01T12:00:00Z",
                  "datacontenttype": "application/json", "subject": row["filename"], "data": [row]}
    two = [row, {**row, "filename": "other_uncal.fits"}]
    assert cloud_event("b-2", two, "new", T0)["subject"] == "01234"
    assert attachment_name(two, "daily", T0) == "event_metadata_jwst-program-1234_daily_20260301_120000.json"
    assert attachment_name([row, {**row, "program": 2}], "weekly", T0).startswith("event_metadata_jwst-program-all_weekly_")
    assert fileset_of("jw01234-o001_t001_nircam_clear-f200w_i2d.fits") == "jw01234-o001_t001_nircam_clear-f200w"
    assert fileset_of("jw05893001001_02201_00001_mirimage_o001_crf.fits") == "jw05893001001_02201_00001"
    assert fileset_of("jwst_nircam_dark_0042.fits") == "jwst_nircam_dark_0042"


# ---------------------------------------------------------------- matching


def test_matching_creates_one_delivery_per_subscription_and_event(ctx):
    everything = subscribe(ctx, "email", "a@example.org", "daily")
    other_program = subscribe(ctx, "email", "b@example.org", "daily", programs=["2222"])
    first_only = subscribe(ctx, "email", "c@example.org", "daily", event_types=["first"])
    miri = subscribe(ctx, "email", "d@example.org", "daily", instruments=["miri"])
    uncal_1234 = subscribe(ctx, "email", "e@example.org", "weekly", programs=["1234"], suffixes=["UNCAL"])
    public_only = subscribe(ctx, "email", "f@example.org", "daily", event_types=["public"])
    gone = subscribe(ctx, "email", "g@example.org", "daily")
    with ctx.catalog.session() as s:
        s.get(Subscription, gone).active = False
    first = archive(ctx, "jw01234001001_01101_00001_nrca1_uncal.fits")
    second = archive(ctx, "jw01234001001_01101_00002_nrca1_uncal.fits", archived_at=T0 + timedelta(minutes=5))

    created, sent = match_event(ctx, first, T0)
    assert len(created) == 3 and sent == []  # digests: nothing is sent now
    # the same message again, twice, and through the handler wrapper: nothing new
    assert match_event(ctx, first, T0) == ([], [])
    assert run_handler("notifier.match", handle_event, first.to_json_dict(), ctx).status == "ok"
    assert len(match_event(ctx, second, T0)[0]) == 2

    got = {(d.subscription_id, d.event_id): d.notification_type for d in deliveries(ctx)}
    assert got == {
        (everything, first.id): "new", (first_only, first.id): "first", (uncal_1234, first.id): "new",
        (everything, second.id): "new", (uncal_1234, second.id): "new",
    }
    assert not {other_program, miri, public_only, gone} & {s for s, _ in got}
    assert all(d.status == "pending" and d.next_attempt_at is None and d.attempts == 0 for d in deliveries(ctx))
    assert HANDLERS == {"notifier.match": handle_event}


def test_first_is_stable_under_reprocessing_and_redelivery(sqlite_ctx):
    ctx = sqlite_ctx
    a1 = archive(ctx, "jw01234001001_01101_00001_nrca1_uncal.fits")
    b1 = archive(ctx, "jw01234001001_01101_00002_nrca1_uncal.fits", archived_at=T0 + timedelta(minutes=1))
    a2 = archive(ctx, "jw01234001001_01101_00001_nrca1_uncal.fits", revision=2, archived_at=T0 + timedelta(days=1))
    sub = subscribe(ctx, "email", "a@example.org", "daily")
    for event in (b1, a2, a1, b1):  # any order, repeated: a1 is the program's first
        match_event(ctx, event, T0 + timedelta(days=2))
    types = {d.event_id: d.notification_type for d in deliveries(ctx, sub)}
    assert types == {a1.id: "new", b1.id: "new", a2.id: "reprocessed"}
    first_only = subscribe(ctx, "email", "b@example.org", "daily", event_types=["first"])
    for event in (b1, a2, a1):
        match_event(ctx, event, T0 + timedelta(days=2))
    assert [d.event_id for d in deliveries(ctx, first_only)] == [a1.id]


# ---------------------------------------------------------------- webhook


def test_webhook_signed_cloudevent_with_retries_and_backoff(sqlite_ctx, webhook):
    ctx = sqlite_ctx
    webhook.fail = 2
    sub = subscribe(ctx, target=webhook.url, secret="k3y-k3y-k3y-k3y-k3y", programs=["01234"])
    event = archive(ctx, "jw01234001001_01101_00001_nrca1_uncal.fits")

    created, sent = match_event(ctx, event, T0)  # immediate: first attempt now -> 500
    assert len(created) == 1 and [s.result.status_code for s in sent] == [500]
    [d] = deliveries(ctx)
    assert (d.status, d.attempts, d.last_error) == ("pending", 1, "HTTP 500: try later")
    wait = aware(d.next_attempt_at) - T0
    assert timedelta(seconds=10) <= wait <= timedelta(seconds=11)  # base 10 s, +<=10% jitter

    assert flush_due(ctx, T0 + timedelta(seconds=9)).sent == []  # not due yet
    report = flush_due(ctx, aware(d.next_attempt_at))
    assert [s.result.status_code for s in report.retries] == [500] and report.failed == 1
    [d2] = deliveries(ctx)
    wait = aware(d2.next_attempt_at) - aware(d.next_attempt_at)
    assert (d2.attempts, timedelta(seconds=20) <= wait <= timedelta(seconds=22)) == (2, True)

    report = flush_due(ctx, aware(d2.next_attempt_at))
    assert report.delivered == 1 and report.failed == 0
    [done] = deliveries(ctx)
    assert (done.status, done.attempts, done.last_error, done.next_attempt_at) == ("delivered", 3, None, None)
    assert done.batch_id == delivery_batch_id(sub, event.id)
    assert [(a.ok, a.status_code, a.event_ids) for a in attempts(ctx)] == [
        (False, 500, [event.id]), (False, 500, [event.id]), (True, 204, [event.id])]
    assert all(a.duration_seconds > 0 and a.batch_id == done.batch_id for a in attempts(ctx))

    # three POSTs of the same signed CloudEvent (same id: a subscriber can drop repeats)
    assert len(webhook.requests) == 3
    for headers, body in webhook.requests:
        assert verify("k3y-k3y-k3y-k3y-k3y", body, headers["X-DMS-Signature"])
        assert not verify("wrong", body, headers["X-DMS-Signature"])
        assert headers["Content-Type"].startswith("application/cloudevents+json")
        assert headers["X-DMS-Delivery"] == done.batch_id
    ce = webhook.events()[-1]
    assert ce["specversion"] == "1.0" and ce["id"] == done.batch_id
    assert ce["type"] == "org.jwstdms.archive.product.new" and ce["source"] == "/archive/jwst/program/01234"
    assert ce["subject"] == "jw01234001001_01101_00001_nrca1_uncal.fits"
    assert ce["datacontenttype"] == "application/json" and ce["time"] == "2026-03-01T12:00:00Z"
    assert [(r["event_type"], r["event_id"], r["program"]) for r in ce["data"]] == [
        ("New", event.id, 1234), ("First", event.id, 1234)]
    assert ce["data"][0]["public_release_date"] == "2027-03-01T12:00:00.000"

    # nothing is sent twice: later passes and a redelivered message find it delivered
    assert flush_due(ctx, T0 + timedelta(days=1)).sent == []
    assert match_event(ctx, event, T0 + timedelta(days=1)) == ([], [])
    assert len(webhook.requests) == 3


def test_webhook_dead_letter_after_last_attempt(sqlite_ctx, webhook):
    ctx = sqlite_ctx
    webhook.fail = 100
    refused = f"http://127.0.0.1:{free_port()}/nobody-listens"
    subscribe(ctx, target=webhook.url)
    subscribe(ctx, target=refused)
    event = archive(ctx, "jw01234001001_01101_00001_nrca1_uncal.fits")
    match_event(ctx, event, T0)
    now = T0
    for _ in range(5):  # more passes than attempts: dead deliveries are left alone
        now += timedelta(hours=1)
        flush_due(ctx, now)
    a, b = deliveries(ctx)
    assert (a.status, a.attempts, a.last_error, a.next_attempt_at) == ("dead", 3, "HTTP 500: try later", None)
    assert (b.status, b.attempts) == ("dead", 3) and b.last_error.startswith("ConnectError")
    assert len(webhook.requests) == 3
    rows = attempts(ctx)
    assert len(rows) == 6 and not any(r.ok for r in rows)
    assert {r.status_code for r in rows if r.subscription_id == b.subscription_id} == {None}


def test_internal_error_is_a_failed_attempt_not_a_crash(sqlite_ctx, monkeypatch):
    import services.notifier.delivery as delivery

    def broken(*args, **kwargs):
        raise KeyError("bug")

    monkeypatch.setattr(delivery, "post_webhook", broken)
    ctx = sqlite_ctx
    subscribe(ctx)
    event = archive(ctx, "jw01234001001_01101_00001_nrca1_uncal.fits")
    assert run_handler("notifier.match", handle_event, event.to_json_dict(), ctx).status == "ok"
    [d] = deliveries(ctx)
    assert (d.status, d.attempts, d.last_error) == ("pending", 1, "internal error: KeyError: 'bug'")
    [a] = attempts(ctx)
    assert not a.ok and a.status_code is None


def test_claimed_delivery_is_not_sent_twice(sqlite_ctx, webhook):
    from services.notifier.delivery import deliver_one

    ctx = sqlite_ctx
    subscribe(ctx, "email", "a@example.org", "daily")  # irrelevant to the webhook
    subscribe(ctx, target=webhook.url)
    event = archive(ctx, "jw01234001001_01101_00001_nrca1_uncal.fits")
    with ctx.catalog.session() as s:  # a handler that recorded the delivery, then died
        from services.notifier.delivery import create_delivery

        sub = s.scalar(select(Subscription).where(Subscription.channel == "webhook"))
        delivery_id = create_delivery(s, sub, event.id, "new", T0)
    assert deliver_one(ctx, delivery_id, T0) is not None
    assert deliver_one(ctx, delivery_id, T0) is None  # delivered: nothing to do
    assert flush_due(ctx, T0 + timedelta(hours=1)).retries == []
    assert len(webhook.requests) == 1


def test_a_retried_message_sends_the_delivery_its_first_try_recorded(sqlite_ctx, webhook):
    """The first try recorded the immediate delivery, then lost the catalog before sending
    it: the message's retry sends it (once), without waiting for the scheduler."""
    ctx = sqlite_ctx
    subscribe(ctx, target=webhook.url)
    event = archive(ctx, "jw01234001001_01101_00001_nrca1_uncal.fits")
    with ctx.catalog.session() as s:
        from services.notifier.delivery import create_delivery

        sub = s.scalar(select(Subscription).where(Subscription.channel == "webhook"))
        create_delivery(s, sub, event.id, "new", T0)
    created, sent = match_event(ctx, event, T0)
    assert created == [] and [r.ok for r in sent] == [True]
    assert match_event(ctx, event, T0) == ([], [])  # sent: a third try does nothing
    assert len(webhook.requests) == 1


# ---------------------------------------------------------------- e-mail


def test_daily_email_digest_with_mast_json_attachment(sqlite_ctx, smtp):
    ctx = with_settings(sqlite_ctx, smtp_port=smtp.port, mail_from="dms@archive.test")
    sub = subscribe(ctx, "email", "sci@example.org", "daily", programs=["1234"])
    e1 = archive(ctx, "jw01234001001_01101_00001_nrca1_uncal.fits", archived_at=T0 + timedelta(hours=1))
    e2 = archive(ctx, "jw01234001001_01101_00002_nrca1_uncal.fits", archived_at=T0 + timedelta(hours=2),
                 eap_months=0)
    match_event(ctx, e1, T0 + timedelta(hours=1))
    match_event(ctx, e2, T0 + timedelta(hours=2))
    assert flush_due(ctx, T0 + timedelta(hours=23)).sent == [] and smtp.messages == []

    when = T0 + timedelta(hours=25, minutes=3)
    report = flush_due(ctx, when)
    assert len(report.digests) == 1 and report.delivered == 2
    [msg] = smtp.messages
    assert msg["To"] == "sci@example.org" and msg["From"] == "dms@archive.test"
    assert "daily digest" in msg["Subject"] and "program 01234" in msg["Subject"]
    text = msg.get_body(("plain",)).get_content()
    assert "jw01234001001_01101_00001_nrca1_uncal.fits" in text and "Public (1)" in text
    [part] = list(msg.iter_attachments())
    assert part.get_filename() == "event_metadata_jwst-program-1234_daily_20260302_130300.json"
    rows = json.loads(part.get_content())
    assert sorted((r["filename"][-22:], r["event_type"]) for r in rows) == [
        ("00001_nrca1_uncal.fits", "First"), ("00001_nrca1_uncal.fits", "New"),
        ("00002_nrca1_uncal.fits", "New"), ("00002_nrca1_uncal.fits", "Public")]
    assert all(set(r) >= {"event_id", "mission", "fileset", "filename", "program", "event_type",
                          "archived_date", "public_release_date"} for r in rows)
    batch = {d.batch_id for d in deliveries(ctx)}
    assert len(batch) == 1 and msg["X-DMS-Delivery"] == batch.pop()
    assert all(d.status == "delivered" for d in deliveries(ctx))
    with ctx.catalog.session() as s:
        assert aware(s.get(Subscription, sub).last_digest_at) == T0 + timedelta(days=1)

    # nothing more until the next period closes; then the next day's files
    e3 = archive(ctx, "jw01234001001_01101_00003_nrca1_uncal.fits", archived_at=T0 + timedelta(hours=30))
    match_event(ctx, e3, T0 + timedelta(hours=30))
    assert flush_due(ctx, T0 + timedelta(hours=47)).sent == []
    assert flush_due(ctx, T0 + timedelta(hours=48)).delivered == 1
    assert len(smtp.messages) == 2
    assert len(attempts(ctx)) == 2


def test_digest_failure_backs_off_then_carries_everything(sqlite_ctx, smtp):
    ctx = with_settings(sqlite_ctx, smtp_port=free_port())  # nobody listens there yet
    subscribe(ctx, "email", "sci@example.org", "hourly")
    e1 = archive(ctx, "jw01234001001_01101_00001_nrca1_uncal.fits")
    match_event(ctx, e1, T0)
    report = flush_due(ctx, T0 + timedelta(hours=1))
    assert report.failed == 1 and "ConnectionRefusedError" in report.digests[0].result.error
    [d] = deliveries(ctx)
    assert aware(d.next_attempt_at) >= T0 + timedelta(hours=1, seconds=10)
    e2 = archive(ctx, "jw01234001001_01101_00002_nrca1_uncal.fits")
    match_event(ctx, e2, T0 + timedelta(hours=1, seconds=1))
    with_settings(ctx, smtp_port=smtp.port)
    assert flush_due(ctx, T0 + timedelta(hours=1, seconds=5)).sent == []  # still backing off
    report = flush_due(ctx, T0 + timedelta(hours=1, minutes=1))
    assert report.delivered == 2 and len(smtp.messages) == 1
    assert [(a.ok, len(a.event_ids)) for a in attempts(ctx)] == [(False, 1), (True, 2)]


def test_immediate_email_one_message_per_event(sqlite_ctx, smtp):
    ctx = with_settings(sqlite_ctx, smtp_port=smtp.port)
    subscribe(ctx, "email", "sci@example.org", "immediate")
    event = archive(ctx, "jw01234001001_01101_00001_nrca1_uncal.fits", program="00042")
    _, sent = match_event(ctx, event, T0)
    assert [s.ok for s in sent] == [True]
    [msg] = smtp.messages
    assert list(msg.iter_attachments())[0].get_filename() == \
        "event_metadata_jwst-program-42_immediate_20260301_120000.json"


# ---------------------------------------------------------------- releases


def test_announce_releases_once_then_public_notifications(ctx, webhook):
    public_sub = subscribe(ctx, target=webhook.url, event_types=["public"])
    exclusive = archive(ctx, "jw01234001001_01101_00001_nrca1_cal.fits", level=2)
    waived = archive(ctx, "jw01234001001_01101_00002_nrca1_cal.fits", level=2, eap_months=0,
                     archived_at=T0 + timedelta(minutes=1))
    late_input = archive(ctx, "jw01234001001_01101_00003_nrca1_cal.fits", level=2,
                         archived_at=T0 + timedelta(days=40))
    # a combined product whose own date is early but whose latest input is released later
    combined = archive(ctx, "jw01234-o001_t001_nircam_clear-f200w_i2d.fits", level=3,
                       archived_at=T0 + timedelta(days=41), data_release=T0 + timedelta(days=100),
                       inputs=["jw01234001001_01101_00001_nrca1_cal.fits", "jw01234001001_01101_00003_nrca1_cal.fits"])
    for e in (exclusive, waived, late_input, combined):
        match_event(ctx, e, T0 + timedelta(days=41))
    # the waived one made "new" and "public" at once; the webhook only wants public
    assert [(c["subject"], [r["event_type"] for r in c["data"]]) for c in webhook.events()] == [
        ("jw01234001001_01101_00002_nrca1_cal.fits", ["Public"])]

    assert announce_releases(ctx, T0 + timedelta(days=200)) == []  # nobody's EAP is over
    first_year = add_months(T0, 12) + timedelta(seconds=1)
    ids = announce_releases(ctx, first_year)
    assert ids == [public_event_id("jw01234001001_01101_00001_nrca1_cal.fits", 1)]
    assert announce_releases(ctx, first_year) == []  # once per product
    later = add_months(T0 + timedelta(days=40), 12) + timedelta(seconds=1)
    ids += announce_releases(ctx, later)
    assert len(ids) == 3 and announce_releases(ctx, later + timedelta(days=30)) == []
    with ctx.catalog.session() as s:
        records = [s.get(EventRecord, i) for i in ids]
        assert [r.subject for r in records] == [
            "jw01234001001_01101_00001_nrca1_cal.fits", "jw01234001001_01101_00003_nrca1_cal.fits",
            "jw01234-o001_t001_nircam_clear-f200w_i2d.fits"]
        assert all(r.type == EventType.DATA_PUBLIC for r in records)
        announced = {p.filename: aware(p.public_announced_at) for p in s.scalars(select(Product))}
        assert announced["jw01234001001_01101_00002_nrca1_cal.fits"] == T0 + timedelta(minutes=1)
        combined_release = records[2].data["data_release"]
        assert combined_release == add_months(T0 + timedelta(days=40), 12).isoformat()  # its latest input's
        events = [event_from_record(r) for r in records]
    for e in events + events:  # redelivered: each still reaches the subscriber once
        assert run_handler("notifier.match", handle_event, e.to_json_dict(), ctx).status == "ok"
    got = webhook.events()[1:]
    assert [c["type"] for c in got] == ["org.jwstdms.archive.product.public"] * 3
    assert [c["data"][0]["event_type"] for c in got] == ["Public"] * 3
    assert got[2]["data"][0]["public_release_date"] == "2027-04-10T12:00:00.000"
    assert len(deliveries(ctx, public_sub)) == 4


def test_eap0_program_yields_new_and_public_once(ctx, webhook):
    subscribe(ctx, target=webhook.url, programs=["04321"])
    event = archive(ctx, "jw04321001001_01101_00001_nrs1_uncal.fits", program="04321", eap_months=0,
                    instrument="NIRSPEC")
    match_event(ctx, event, T0)
    [ce] = webhook.events()
    assert ce["type"] == "org.jwstdms.archive.product.new"
    assert [(r["event_type"], r["instrument"]) for r in ce["data"]] == [
        ("New", "NIRSPEC"), ("First", "NIRSPEC"), ("Public", "NIRSPEC")]
    assert ce["data"][0]["public_release_date"] == ce["data"][0]["archived_date"]
    # the release pass knows it was announced on arrival: no second "public"
    assert announce_releases(ctx, T0 + timedelta(days=1)) == []
    assert len(webhook.requests) == 1


def test_reference_delivery_and_reprocessed(sqlite_ctx, webhook):
    ctx = sqlite_ctx
    everything = subscribe(ctx, target=webhook.url)
    subscribe(ctx, "email", "p@example.org", "daily", programs=["1234"])  # not about references
    files = [DeliveredReference(filename=name, reftype=reftype, instrument=instrument, selectors=selectors,
                                useafter=datetime(2026, 1, 1, tzinfo=UTC), uri=f"file:///refs/{name}",
                                sha256="0" * 64, size=10)
             for name, reftype, instrument, selectors in (
                 ("jwst_nircam_dark_0042.fits", "DARK", "nircam", {"detector": "NRCA1"}),
                 ("jwst_miri_flat_0007.fits", "FLAT", "MIRI", {}))]
    ref_event = new_event(ReferenceDelivered(context="jwst_0002.pmap", parent="jwst_0001.pmap", note="new darks",
                                             files=files, replaced=()), "/test/refdata", time=T0)
    with ctx.catalog.session() as s:
        add_event(s, ref_event)
    match_event(ctx, ref_event, T0)
    [ce] = webhook.events()
    assert ce["type"] == "org.jwstdms.archive.reference" and ce["source"] == "/archive/jwst/references"
    assert [(r["filename"], r["program"], r["event_type"], r["reftype"], r["context"], r["instrument"])
            for r in ce["data"]] == [
        ("jwst_nircam_dark_0042.fits", None, "Reference", "dark", "jwst_0002.pmap", "NIRCAM"),
        ("jwst_miri_flat_0007.fits", None, "Reference", "flat", "jwst_0002.pmap", "MIRI")]
    assert ce["data"][0]["useafter"] == "2026-01-01T00:00:00"
    assert ce["data"][0]["dataURI"] == "dms:JWST/reference/jwst_nircam_dark_0042.fits"
    assert "subject" not in ce  # two files, no program
    assert [d.subscription_id for d in deliveries(ctx)] == [everything]

    archive(ctx, "jw01234001001_01101_00001_nrca1_cal.fits", eap_months=0)
    again = archive(ctx, "jw01234001001_01101_00001_nrca1_cal.fits", revision=2, eap_months=0,
                    archived_at=T0 + timedelta(days=90))
    match_event(ctx, again, T0 + timedelta(days=90))
    assert [r["event_type"] for r in webhook.events()[-1]["data"]] == ["Reprocessed"]  # was public already


def test_reprocessed_rows_carry_the_request_reason_and_changes(sqlite_ctx, webhook, smtp):
    from shared.changes import summary

    ctx = with_settings(sqlite_ctx, smtp_port=smtp.port)
    subscribe(ctx, target=webhook.url)
    subscribe(ctx, "email", "pi@example.org", "immediate", event_types=["reprocessed"])
    name = "jw01234001001_01101_00001_nrca1_cal.fits"
    archive(ctx, name)
    changes = {"kind": "image", "sci": {"pixels": 25600, "max_abs": 0.4, "median_rel": 0.012, "p99_rel": 0.05},
               "dq_changed_fraction": 0.0}
    why = Reprocessed(request_id="0b7f2a8e-1111-4c3b-9d7e-5a0e6f1c2d3e", reason="new flats for NRCA1",
                      old_context="dms_0001.ctx", new_context="dms_0002.ctx", changes=changes)
    again = archive(ctx, name, revision=2, archived_at=T0 + timedelta(days=3), reprocessing=why)
    match_event(ctx, again, T0 + timedelta(days=3))
    [ce] = webhook.events()
    [row] = ce["data"]
    assert row["event_type"] == "Reprocessed" and row["revision"] == 2
    assert row["reprocessing_request"] == why.request_id
    assert row["reprocessing_reason"] == "new flats for NRCA1"
    assert row["changes"] == summary(changes) and row["changes"]
    [message] = smtp.messages
    body = message.get_body(("plain",)).get_content()
    assert f"reprocessed by request {why.request_id}: new flats for NRCA1" in body
    assert f"changes: {summary(changes)}" in body
    # an ordinary new revision (no request) has none of these fields
    plain = archive(ctx, "jw01234001001_01101_00002_nrca1_cal.fits")
    match_event(ctx, plain, T0)
    [new_row] = webhook.events()[-1]["data"]
    assert new_row["event_type"] == "New" and "reprocessing_request" not in new_row


# ---------------------------------------------------------------- CLI


def test_cli_subscribe_list_unsubscribe_notify(tmp_path, monkeypatch, capsys, webhook):
    import argparse

    import shared.runtime
    from services.notifier.commands import register_commands
    from shared.config import get_settings
    from shared.routing import ROUTES, Route

    monkeypatch.setenv("DMS_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("DMS_WEBHOOK_ALLOW", "127.0.0.0/8")
    get_settings.cache_clear()
    parser = argparse.ArgumentParser(prog="dms")
    register_commands(parser.add_subparsers(dest="command", required=True))

    def run(*argv):
        args = parser.parse_args(list(argv))
        return args.func(args)

    try:
        assert run("subscribe", "--owner", "sci@example.org", "--program", "1234", "--event", "public",
                   "--webhook", webhook.url) == 0
        out = capsys.readouterr().out
        assert out.startswith("subscription 1: webhook") and "secret: " in out
        secret = out.split("secret: ")[1].split()[0]
        assert run("subscribe", "--owner", "sci@example.org", "--email", "sci@example.org",
                   "--frequency", "weekly", "--instrument", "nircam") == 0
        assert run("subscribe", "--owner", "x", "--program", "123456", "--email", "a@b.c") == 2
        assert "program '123456'" in capsys.readouterr().err
        assert run("subscribe", "--owner", "x", "--webhook", "http://h/", "--frequency", "daily") == 2
        assert run("subscribe", "--owner", "x", "--webhook", "http://169.254.169.254/") == 2
        assert "cloud metadata" in capsys.readouterr().err
        assert run("subscriptions", "--owner", "sci@example.org") == 0
        out = capsys.readouterr().out
        assert "program=01234 event=public" in out and "instrument=NIRCAM" in out and "weekly" in out
        assert run("unsubscribe", "2") == 0 and run("unsubscribe", "2") == 2

        # a product whose EAP is over: `dms notify` announces it and the webhook hears of it
        ctx = make_ctx(tmp_path)
        archive(ctx, "jw01234001001_01101_00001_nrca1_cal.fits", archived_at=datetime.now(UTC) - timedelta(days=400))
        ctx.catalog.dispose()
        routes = (*ROUTES, Route(EventType.DATA_PUBLIC, "notifier.match"))
        monkeypatch.setattr(shared.runtime, "routes_for", lambda event: [r for r in routes if r.matches(event)])
        assert run("notify") == 0
        assert "announced public: 1" in capsys.readouterr().out
        [(headers, body)] = webhook.requests
        assert verify(secret, body, headers["X-DMS-Signature"])
        assert json.loads(body)["data"][0]["event_type"] == "Public"
        assert run("notify") == 0 and len(webhook.requests) == 1
    finally:
        get_settings.cache_clear()


# ---------------------------------------------------------------- end to end


@pytest.mark.integration
def test_end_to_end_simulated_program_reaches_webhook_once(tmp_path, webhook):
    from services.ingest.receive import receive_files
    from services.registry import embedded_context
    from services.simulator import simulate
    from shared.runtime import dispatch_events

    desc = yaml.safe_load((EXAMPLES / "nircam_imaging.yaml").read_text())
    desc["observations"] = desc["observations"][:1]  # the imaging observation (the demo adds a TSO one)
    for obs in desc["observations"]:
        obs["detectors"] = obs["detectors"][:1]
        obs["dither"] = {"pattern": "NONE"}
    desc["simulation"]["write_references"] = False
    sim = simulate(desc, tmp_path / "sim")

    ctx, inline = embedded_context(Settings(var_dir=tmp_path / "var", webhook_allow="127.0.0.0/8", _env_file=None))
    try:
        subscribe(ctx, target=webhook.url, secret="e2e-e2e-e2e-e2e-e2e", programs=[sim.plan.program])
        subscribe(ctx, target=webhook.url, secret="e2e-e2e-e2e-e2e-e2e", programs=["99999"])  # someone else's
        received = receive_files(ctx, [sim.plan_path, *sim.telemetry_paths])
        dispatch_events(ctx.catalog, ctx.transport, event_ids=[r.event_id for r in received if r.event_id])
        done = inline.run_until_idle()  # ingest, and whatever later stages are routed today
        assert [o.status for t, o in done if t == "ingest.telemetry"] == ["ok"] * len(sim.telemetry_paths)
        with ctx.catalog.session() as s:
            products = sorted(s.scalars(select(Product.filename)))
            first_archived = s.scalar(select(Product.filename).order_by(Product.archived_at, Product.id).limit(1))
            records = list(s.scalars(select(EventRecord).where(EventRecord.type == EventType.PRODUCT_ARCHIVED)))
            archived = [event_from_record(r).to_json_dict() for r in records]
        uncal = [p for p in products if p.endswith("_uncal.fits") and "_gs-" not in p]  # not guide-star data
        assert len(uncal) == len(sim.telemetry_paths) and len(archived) == len(products)
        for payload in archived + archived:  # at-least-once transport: every message twice
            assert run_handler("notifier.match", handle_event, payload, ctx).status == "ok"

        events = webhook.events()
        assert len(events) == len(products)  # one CloudEvent per product, each once
        for (headers, body), ce in zip(webhook.requests, events, strict=True):
            assert verify("e2e-e2e-e2e-e2e-e2e", body, headers["X-DMS-Signature"])
            assert ce["type"] == "org.jwstdms.archive.product.new"
            assert ce["source"] == f"/archive/jwst/program/{sim.plan.program}"
        rows = [r for ce in events for r in ce["data"]]
        assert sorted(r["filename"] for r in rows if r["event_type"] == "New") == products
        assert [r["filename"] for r in rows if r["event_type"] == "First"] == [first_archived] == uncal[:1]
        assert not [r for r in rows if r["event_type"] == "Public"]  # the plan's EAP is 12 months
        with ctx.catalog.session() as s:
            assert s.scalar(select(func.count()).select_from(Delivery)) == len(products)
            assert s.scalar(select(func.count()).select_from(DeliveryAttempt).where(DeliveryAttempt.ok)) == len(products)
    finally:
        ctx.catalog.dispose()
