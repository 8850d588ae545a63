"""Issue 11, part 4: the archive API and the notifier say only what they should.

One test (or parameter) per reported defect: webhook targets on internal addresses (at
subscribe time, and at send time when DNS changes under us), a subscription limit per
owner, e-mail confirmation before anything is sent (through a real SMTP server), CR/LF and
oversized secrets, secrets shown once, out-of-range parameters answered 4xx (never 5xx),
wildcard floods, unknown tokens 401 on every route, and no storage URI in /events."""

from __future__ import annotations

import hashlib
import re
import socket
import threading
import uuid
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from services.archive.app import create_app
from services.notifier.delivery import deliver_one
from services.notifier.scheduler import notify_once
from services.notifier.task import match_event
from shared.catalog import (
    Artifact,
    ArtifactKind,
    Delivery,
    DeliveryAttempt,
    Observation,
    Product,
    Program,
    Subscription,
)
from shared.catalog.queries import add_event
from shared.config import Settings
from shared.messages import IngestRejected, ProductArchived, ProductRef, RawFile, new_event
from shared.runtime import ServiceContext
from shared.subscriptions import SubscriptionSpec, create_subscription
from shared.tokens import create_token
from shared.webhooks import TargetRefused, WebhookPolicy, address_refusal, parse_webhook_url
from tests.conftest import PG_ADMIN_URL

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
USER, OTHER = "ada@example.org", "eve@example.org"
PUBLIC_HOOK = "https://192.0.2.10/hook"  # documentation address, allowed by the test settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Hook:
    """A real HTTP server on loopback that records POSTs."""

    def __init__(self):
        self.requests: list[tuple[str, object, bytes]] = []
        received = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append((self.path, self.headers, body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook():
    server = Hook()
    yield server
    server.close()



@pytest.fixture(params=["sqlite", "postgresql"])
def site(request, tmp_path):
    """Settings, a notifier context and the archive API on one catalog; tokens of two users."""
    url = request.getfixturevalue("pg_url") if request.param == "postgresql" else None
    settings = Settings(var_dir=tmp_path / "var", catalog_url=url, webhook_allow="192.0.2.0/24",
                        subscription_limit=3, archive_base_url="http://archive.test", notify_max_attempts=3,
                        webhook_timeout=5.0, _env_file=None)
    ctx = ServiceContext.from_settings(settings)
    ctx.catalog.upgrade()
    ctx.store.ensure_buckets()
    with ctx.catalog.session() as s:
        tokens = {u: create_token(s, u, 1, "test") for u in (USER, OTHER)}
    with TestClient(create_app(settings)) as client:
        yield ctx, client, {u: {"Authorization": f"Bearer {t}"} for u, t in tokens.items()}
    ctx.catalog.dispose()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def readonly_site(request, tmp_path_factory):
    """The archive API on an empty catalog (a database of its own), for tests that only read."""
    tmp = tmp_path_factory.mktemp("readonly")
    url = None
    if request.param == "postgresql":
        name = f"dms_ro_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        url = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1) + f"/{name}"
    settings = Settings(var_dir=tmp / "var", catalog_url=url, _env_file=None)
    ctx = ServiceContext.from_settings(settings)
    ctx.catalog.upgrade()
    ctx.store.ensure_buckets()
    with ctx.catalog.session() as s:
        token = create_token(s, USER, 1, "test")
    try:
        with TestClient(create_app(settings)) as client:
            yield client, {"Authorization": f"Bearer {token}"}
    finally:
        ctx.catalog.dispose()
        if url is not None:
            with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _archive(ctx, filename="jw01234001001_01101_00001_nrca1_uncal.fits", program="01234"):
    """A public product with its dms.product.archived event (storage URI in its payload)."""
    sha = hashlib.sha256(filename.encode()).hexdigest()
    uri = f"file://{ctx.settings.resolved_store_root}/dms-archive/{program}/001/r1/{filename}"
    with ctx.catalog.session() as s:
        if s.get(Program, program) is None:
            s.add(Program(id=program, title="t", category="GO", eap_months=0, created_at=T0))
            s.flush()
            s.add(Observation(program_id=program, number=1, instrument="NIRCAM"))
            s.flush()
        obs = s.scalar(select(Observation).where(Observation.program_id == program))
        product = Product(filename=filename, suffix="uncal", level=1, revision=1, is_current=True,
                          program_id=program, observation_id=obs.id, archived_at=T0, meta_release=T0,
                          data_release=T0, inputs=[])
        product.artifacts.append(Artifact(kind=ArtifactKind.DATA, uri=uri, sha256=sha, size=10,
                                          content_type="application/fits"))
        s.add(product)
        ref = ProductRef(uri=uri, filename=filename, suffix="uncal", sha256=sha, size=10, program=program,
                         observation=1)
        event = new_event(ProductArchived(product=ref, level=1, data_release=T0), "/test", subject=filename, time=T0)
        add_event(s, event)
    return event


# ---------------------------------------------------------------- webhook target policy


INTERNAL_TARGETS = [
    "http://169.254.169.254/latest/meta-data/", "http://127.0.0.1:6379", "http://localhost:5432/",
    "http://10.0.0.1/hook", "http://[::1]/hook", "http://2130706433/", "http://0x7f.0.0.1/",
    "http://0177.0.0.1/", "http://127.1/", "http://[::ffff:127.0.0.1]/", "http://100.64.0.1/",
    "http://0.0.0.0/", "http://224.0.0.1/", "http://[fe80::1]/", "http://[fd00:ec2::254]/",
]


@pytest.mark.parametrize("target", INTERNAL_TARGETS)
def test_internal_webhook_targets_are_refused_with_a_reason(site, target):
    _, client, auth = site
    r = client.post("/subscriptions", headers=auth[USER], json={"channel": "webhook", "target": target})
    assert r.status_code == 422, r.text
    assert "webhooks go to public addresses only" in r.json()["detail"]
    assert client.get("/subscriptions", headers=auth[USER]).json() == []


@pytest.mark.parametrize("target, words", [
    ("http://user:pass@127.0.0.1/", "user name or password"),
    ("http://user:pass@192.0.2.10/", "user name or password"),
    ("http://192.0.2.10/\r\nX-Injected: 1", "control characters"),
    ("http://192.0.2.10/a b", "whitespace"),
    ("ftp://192.0.2.10/", "http:// or https://"),
    ("file:///etc/passwd", "http:// or https://"),
    ("http://192.0.2.10/" + "a" * 3000, "2048"),
    ("http://192.0.2.10:99999/", "port"),
    ("http://192.0.2.10/#frag", "fragment"),
])
def test_malformed_webhook_urls_are_refused(site, target, words):
    _, client, auth = site
    r = client.post("/subscriptions", headers=auth[USER], json={"channel": "webhook", "target": target})
    assert r.status_code == 400, r.text
    assert words in r.json()["detail"], r.json()["detail"]


def test_policy_resolves_every_address_and_honours_the_allow_list():
    # a name that resolves to one public and one loopback address is refused as a whole
    both = WebhookPolicy(resolver=lambda host, port, **kw: [(2, 1, 6, "", ("192.0.2.80", port)),
                                                            (2, 1, 6, "", ("93.184.215.14", port)),
                                                            (2, 1, 6, "", ("127.0.0.1", port))])
    with pytest.raises(TargetRefused, match=r"hooks.example.org \(192.0.2.80\) is a private address"):
        both.check("https://hooks.example.org/x")
    allowed = WebhookPolicy.from_text("192.0.2.0/24, 127.0.0.0/8")
    assert allowed.check("http://127.0.0.1:8080/x").address == "127.0.0.1"
    assert WebhookPolicy.from_text("localhost").check("http://localhost/").address in ("127.0.0.1", "::1")
    assert address_refusal(__import__("ipaddress").ip_address("8.8.8.8")) is None
    with pytest.raises(ValueError, match="neither a network"):
        WebhookPolicy.from_text("not a host!")
    assert parse_webhook_url("https://Hooks.Example.org:8443/p?q=1").host_header == "hooks.example.org:8443"


def test_send_time_check_refuses_a_target_whose_dns_changed(site, hook, monkeypatch):
    """DNS rebinding: the name was public at subscribe time and points inside at send time.
    The delivery is dead at once with the reason; nothing reaches the internal server."""
    ctx, _, _ = site
    answers = {"rebind.example.org": "192.0.2.10"}  # allowed when subscribing

    def resolver(host, port, type=0, **kw):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answers.get(host, host), port))]

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    with ctx.catalog.session() as s:
        sub = create_subscription(s, USER, SubscriptionSpec(channel="webhook",
                                                            target=f"http://rebind.example.org:{hook.port}/h"),
                                  policy=WebhookPolicy.from_settings(ctx.settings), now=T0)
        sub_id = sub.id
    answers["rebind.example.org"] = "127.0.0.1"  # the attacker's DNS now answers loopback
    event = _archive(ctx)
    created, sent = match_event(ctx, event, T0)
    assert len(created) == 1 and len(sent) == 1 and not sent[0].ok
    assert hook.requests == []
    with ctx.catalog.session() as s:
        [d] = s.scalars(select(Delivery).where(Delivery.subscription_id == sub_id)).all()
        assert d.status == "dead" and d.attempts == 1
        assert "refused" in d.last_error and "loopback" in d.last_error
        [attempt] = s.scalars(select(DeliveryAttempt)).all()
        assert not attempt.ok and attempt.error == d.last_error


def test_delivery_connects_to_the_checked_address_and_keeps_the_host(site, hook, monkeypatch):
    """The POST goes to the address that was checked, with the URL's host in Host; a
    second resolution (that would say otherwise) is never made."""
    ctx, _, _ = site
    ctx.settings = ctx.settings.model_copy(update={"webhook_allow": "127.0.0.0/8"})
    calls = []
    real = socket.getaddrinfo

    def resolver(host, port, *args, **kw):
        calls.append(host)
        if host == "hooks.lab.test":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]
        return real(host, port, *args, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    with ctx.catalog.session() as s:
        create_subscription(s, USER, SubscriptionSpec(channel="webhook", target=f"http://hooks.lab.test:{hook.port}/in"),
                            policy=WebhookPolicy.from_settings(ctx.settings), now=T0)
    _, sent = match_event(ctx, _archive(ctx), T0)
    assert [s.ok for s in sent] == [True]
    [(path, headers, _)] = hook.requests
    assert path == "/in" and headers["Host"] == f"hooks.lab.test:{hook.port}"
    assert calls.count("hooks.lab.test") == 2  # subscribe time and send time, one look-up each


def test_redirects_are_not_followed(site, monkeypatch):
    ctx, _, _ = site
    ctx.settings = ctx.settings.model_copy(update={"webhook_allow": "127.0.0.0/8"})
    followed = []

    class Redirect(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            if self.path == "/next":
                followed.append(self.path)
            self.send_response(307)
            self.send_header("Location", "/next")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        with ctx.catalog.session() as s:
            create_subscription(s, USER, SubscriptionSpec(
                channel="webhook", target=f"http://127.0.0.1:{server.server_address[1]}/first"),
                policy=WebhookPolicy.from_settings(ctx.settings), now=T0)
        _, [sent] = match_event(ctx, _archive(ctx), T0)
    finally:
        server.shutdown()
        server.server_close()
    assert not sent.ok and sent.result.status_code == 307 and "not followed" in sent.result.error
    assert followed == []


# ---------------------------------------------------------------- limits and secrets


def test_subscription_limit_per_owner(site):
    _, client, auth = site
    spec = {"channel": "webhook", "target": PUBLIC_HOOK}
    for _ in range(3):
        assert client.post("/subscriptions", headers=auth[USER], json=spec).status_code == 201
    r = client.post("/subscriptions", headers=auth[USER], json=spec)
    assert r.status_code == 409 and "limit" in r.json()["detail"] and "3" in r.json()["detail"]
    assert client.post("/subscriptions", headers=auth[OTHER], json=spec).status_code == 201  # per owner
    first = client.get("/subscriptions", headers=auth[USER]).json()[0]["id"]
    assert client.delete(f"/subscriptions/{first}", headers=auth[USER]).status_code == 204
    assert client.post("/subscriptions", headers=auth[USER], json=spec).status_code == 201


@pytest.mark.parametrize("secret, status", [("x" * 10_000_000, 413), ("x" * 1_000_000, 400), ("x" * 129, 400), ("short", 400),
                                            ("has space in it ok?", 400), ("line\r\nbreak-secret-x", 400),
                                            ("a" * 16, 201), ("b" * 128, 201)])
def test_secret_size_and_characters(site, secret, status):
    _, client, auth = site
    r = client.post("/subscriptions", headers=auth[USER],
                    json={"channel": "webhook", "target": PUBLIC_HOOK, "secret": secret})
    assert r.status_code == status, r.text[:300]


def test_secret_is_shown_once(site):
    _, client, auth = site
    made = client.post("/subscriptions", headers=auth[USER], json={"channel": "webhook", "target": PUBLIC_HOOK})
    assert made.status_code == 201 and len(made.json()["secret"]) == 64
    sid = made.json()["id"]
    assert client.get(f"/subscriptions/{sid}", headers=auth[USER]).json()["secret"] is None
    assert [s["secret"] for s in client.get("/subscriptions", headers=auth[USER]).json()] == [None]
    r = client.put(f"/subscriptions/{sid}", headers=auth[USER],
                   json={"channel": "webhook", "target": PUBLIC_HOOK, "name": "renamed"})
    assert r.status_code == 200 and r.json()["secret"] is None and r.json()["name"] == "renamed"
    r = client.put(f"/subscriptions/{sid}", headers=auth[USER],
                   json={"channel": "webhook", "target": "http://127.0.0.1:6379/"})
    assert r.status_code == 422  # PUT goes through the same policy


def test_names_and_filters_are_bounded(site):
    _, client, auth = site
    for body in ({"channel": "webhook", "target": PUBLIC_HOOK, "name": "a\r\nb"},
                 {"channel": "webhook", "target": PUBLIC_HOOK, "name": "n" * 201},
                 {"channel": "webhook", "target": PUBLIC_HOOK, "filters": {"suffixes": ["cal"] * 51}},
                 {"channel": "webhook", "target": PUBLIC_HOOK, "filters": {"instruments": ["x" * 33]}},
                 {"channel": "email", "target": "a@example.org, b@example.org"},
                 {"channel": "email", "target": "a@example.org\r\nBcc: b@example.org"},
                 {"channel": "email", "target": "Ada <a@example.org>"},
                 {"channel": "email", "target": "ada@example.org", "secret": "s" * 20}):
        r = client.post("/subscriptions", headers=auth[USER], json=body)
        assert r.status_code == 400, (body, r.text)


# ---------------------------------------------------------------- e-mail confirmation


def test_email_subscription_is_confirmed_before_anything_is_sent(site, smtp):
    """Through the API, a real SMTP server and the notifier's pass: an unconfirmed address
    receives only the confirmation link; after following it, notifications arrive."""
    ctx, client, auth = site
    ctx.settings = ctx.settings.model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": smtp.port})
    r = client.post("/subscriptions", headers=auth[USER],
                    json={"channel": "email", "target": "victim@example.org", "filters": {"programs": ["1234"]}})
    assert r.status_code == 201 and r.json()["confirmed"] is False and r.json()["secret"] is None
    sid = r.json()["id"]

    created, sent = match_event(ctx, _archive(ctx), T0)  # an event before confirmation
    assert created == [] and sent == []

    now = datetime.now(UTC)  # the link is valid for days from now
    report = notify_once(ctx, now)
    assert [c.ok for c in (x.result for x in report.confirmations)] == [True]
    [mail] = smtp.messages
    assert mail["To"] == "victim@example.org" and "Confirm" in mail["Subject"]
    link = re.search(r"http://archive\.test(/subscriptions/\d+/confirm\?token=\S+)", mail.get_content())[1]
    assert notify_once(ctx, now).confirmations == []  # one link out at a time
    assert len(smtp.messages) == 1

    bad = client.get(f"/subscriptions/{sid}/confirm", params={"token": "guessed"})
    assert bad.status_code == 404
    assert client.get(urlsplit(link).path + "?" + urlsplit(link).query).status_code == 200
    assert client.get(f"/subscriptions/{sid}", headers=auth[USER]).json()["confirmed"] is True

    _, sent = match_event(ctx, _archive(ctx, "jw01234001001_01101_00002_nrca1_uncal.fits"), T0)
    assert [s.ok for s in sent] == [True]
    assert len(smtp.messages) == 2
    assert "jw01234001001_01101_00002" in smtp.messages[1].get_body(("plain",)).get_content()

    # a new address must be confirmed again
    r = client.put(f"/subscriptions/{sid}", headers=auth[USER], json={"channel": "email", "target": "new@example.org"})
    assert r.status_code == 200 and r.json()["confirmed"] is False


def test_expired_confirmation_link_is_replaced(site, smtp):
    ctx, client, auth = site
    ctx.settings = ctx.settings.model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": smtp.port})
    sid = client.post("/subscriptions", headers=auth[USER], json={"channel": "email", "target": "a@example.org"}).json()["id"]
    notify_once(ctx, datetime.now(UTC) - timedelta(days=8))
    old = re.search(r"token=(\S+)", smtp.messages[0].get_content())[1]
    r = client.get(f"/subscriptions/{sid}/confirm", params={"token": old})
    assert r.status_code == 410 and "expired" in r.json()["detail"]
    notify_once(ctx, datetime.now(UTC))
    assert len(smtp.messages) == 2
    new = re.search(r"token=(\S+)", smtp.messages[1].get_content())[1]
    assert client.get(f"/subscriptions/{sid}/confirm", params={"token": new}).status_code == 200


def test_unconfirmed_subscription_never_gets_retries_or_digests(site):
    ctx, _, _ = site
    with ctx.catalog.session() as s:
        sub = create_subscription(s, USER, SubscriptionSpec(channel="email", target="x@example.org"),
                                  policy=WebhookPolicy(), now=T0)
        s.flush()
        s.add(Delivery(subscription_id=sub.id, event_id="e1", notification_type="new", status="pending",
                       attempts=0, created_at=T0, next_attempt_at=T0))
    with ctx.catalog.session() as s:
        d_id = s.scalar(select(Delivery.id))
    assert deliver_one(ctx, d_id, T0) is None
    with ctx.catalog.session() as s:
        assert s.scalar(select(DeliveryAttempt.id)) is None


# ---------------------------------------------------------------- parameters, tokens, URIs


OUT_OF_RANGE = [
    "/products?page=1e19", "/products?page=10000000000000000000", "/products?pagesize=0",
    "/observations?t_min=9999-12-31", "/observations?t_max=0001-01-01", "/observations?t_obs_release=9999-12-31..",
    "/observations?t_min=1e400", "/events?since=9999-12-31T23:59:59", "/events?until=0001-01-01T00:00:00%2B05:00",
    "/observations?calib_level=99999999999999999999999", "/products?calib_level=-99999999999",
    "/observations?obsid=99999999999999999999", "/products?obsid=-1", "/products/x.fits?revision=99999999999999999999",
    "/download/x.fits?revision=99999999999999999999", "/previews/x.fits?revision=0",
    "/observations?ra=1e999", "/observations?radius=-1", "/events?page=99999999999",
    "/observations?obs_id=jw%00", "/products?filename=a%00b", "/products/a%00b.fits",
]


@pytest.mark.parametrize("url", OUT_OF_RANGE)
def test_out_of_range_parameters_are_4xx(readonly_site, url):
    client, _ = readonly_site
    r = client.get(url)
    assert 400 <= r.status_code < 500, (url, r.status_code, r.text[:200])
    assert r.json()["detail"]


def test_big_observation_and_subscription_ids_are_404_not_5xx(readonly_site):
    client, auth = readonly_site
    assert client.get("/observations/99999999999999999999").status_code == 404
    assert client.get("/subscriptions/99999999999999999999", headers=auth).status_code == 400


def test_many_wildcards_or_filenames_are_a_4xx(readonly_site):
    client, _ = readonly_site
    r = client.get("/products", params={"filename": [f"*{i}*" for i in range(1000)]})
    assert r.status_code == 400 and "at most 100" in r.json()["detail"]
    r = client.get("/products", params={"filename": ",".join(f"*{i}*" for i in range(50))})
    assert r.status_code == 400 and "wildcarded" in r.json()["detail"]
    r = client.get("/observations", params={"instrument_name": "*" * 150 + "X"})
    assert r.status_code == 200  # one long pattern: answered (linear-time match), no error
    r = client.post("/bundles", json={"filenames": [f"f{i}.fits" for i in range(5001)]})
    assert r.status_code == 400
    r = client.post("/bundles", json={"filenames": ["x" * 201]})
    assert r.status_code == 400


ROUTES = ["/observations", "/observations/1", "/products", "/products/x.fits", "/programs/1234", "/events",
          "/health", "/metrics", "/whoami", "/download/x.fits", "/previews/x.fits", "/thumbnails/x.fits",
          "/subscriptions/1/confirm?token=abc"]


@pytest.mark.parametrize("route", ROUTES)
def test_unknown_token_is_401_on_every_route(readonly_site, route):
    client, _ = readonly_site
    for headers in ({"Authorization": "Bearer dms_not-a-token"}, {"Cookie": "mast_token=nope"},
                    {"Authorization": "Basic dXNlcjpwYXNz"}):
        r = client.get(route, headers=headers)
        assert r.status_code == 401, (route, headers, r.status_code)
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.get(route).status_code != 401  # no token at all: anonymous


def test_events_show_no_storage_uri(site):
    ctx, client, _ = site
    _archive(ctx)
    raw = RawFile(uri=f"file://{ctx.settings.resolved_store_root}/dms-raw/noise.ccsds", filename="noise.ccsds",
                  sha256="0" * 64, size=3)
    with ctx.catalog.session() as s:
        add_event(s, new_event(IngestRejected(raw=raw, reason="no_science_packets", program=None,
                                              detail=f"nothing readable in {raw.uri}"), "/test",
                               subject="noise.ccsds", time=T0))
    r = client.get("/events")
    assert r.status_code == 200 and r.json()["total"] == 2
    body = r.text
    assert "file://" not in body and "s3://" not in body and str(ctx.settings.resolved_store_root) not in body
    archived = next(e for e in r.json()["rows"] if e["type"] == "dms.product.archived")
    assert archived["data"]["product"]["dataURI"] == ("mast:JWST/product/"
                                                      "jw01234001001_01101_00001_nrca1_uncal.fits")
    rejected = next(e for e in r.json()["rows"] if e["type"] == "dms.ingest.rejected")
    assert rejected["data"]["raw"] == {"filename": "noise.ccsds", "sha256": "0" * 64, "size": 3}
    assert rejected["data"]["detail"] == "nothing readable in noise.ccsds"


def test_subscriptions_table_records_confirmation(site):
    ctx, client, auth = site
    r = client.post("/subscriptions", headers=auth[USER], json={"channel": "webhook", "target": PUBLIC_HOOK})
    with ctx.catalog.session() as s:
        row = s.get(Subscription, r.json()["id"])
        assert row.confirmed_at is not None and row.confirm_token_sha256 is None


def test_the_api_freezes_its_start_up_objects_once_per_process(tmp_path):
    """A full garbage collection would walk every object the process built to serve (about
    100 ms inside a request); the API takes them out of the collector once it is ready, in
    the first start of the application only (a process starting it again is not frozen
    again)."""
    import subprocess
    import sys
    from pathlib import Path

    script = f"""
import gc
from fastapi.testclient import TestClient
from services.archive.app import create_app
from shared.config import Settings
settings = Settings(var_dir={str(tmp_path / "var")!r}, _env_file=None)
before = gc.get_freeze_count()
with TestClient(create_app(settings)):
    pass
first = gc.get_freeze_count()
junk = [[i] for i in range(10000)]
with TestClient(create_app(settings)):
    pass
print(before, first, gc.get_freeze_count())
"""
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True,
                         cwd=root)
    before, first, second = map(int, out.stdout.split()[-3:])
    assert before == 0 and first > 10000, (before, first)
    assert second == first  # the second start froze nothing more
