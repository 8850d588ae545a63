"""The demo observation through the whole system, as deployed: real Celery worker
subprocesses (`dms worker ingest|detector1|preview|notifier`) on real Redis, PostgreSQL and
an S3 server, and the archive API as `dms serve archive` on a loopback port.

A subscriber made through the API receives one signed `new` CloudEvent per archived
product, each exactly once; a daily e-mail digest reaches a local SMTP server (`dms notify`);
the API lists the products with their previews; an anonymous download of an
exclusive-access product is refused and the PI's succeeds with the catalog's sha256.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import yaml
from sqlalchemy import select, update

from services.ingest.receive import receive_files
from services.simulator import simulate
from shared.catalog import Artifact, Product, Subscription
from shared.config import Settings
from shared.refdata import deliver as deliver_references
from shared.runtime import ServiceContext, dispatch_events
from shared.tokens import create_token

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "nircam_imaging.yaml"
PROGRAM = "01234"
PI = "ada@example.org"  # pi_user of the demo program
SUBSCRIBER = "sci@example.org"  # anyone may subscribe: metadata and notices are public
OUTSIDER = "mallory@example.org"
WORKERS = ("ingest", "detector1", "preview", "notifier")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def signature_ok(secret: str, body: bytes, header: str | None) -> bool:
    """What a subscriber does (docs/notifications.md)."""
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return header is not None and hmac.compare_digest(expected, header)


class Process:
    """A `python -m services.cli ...` subprocess in its own process group, logging to a file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path):
        self.name, self.argv, self.env, self.log = name, argv, env, log
        self.proc: subprocess.Popen | None = None

    def start(self) -> Process:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "services.cli", *self.argv], cwd=REPO, env=self.env,
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self, chars: int = 4000) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return text[-chars:]

    def stop(self) -> None:
        if not self.alive():
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


class WebhookReceiver:
    """A subscriber's HTTP endpoint on loopback: records every POST (headers, raw body)."""

    def __init__(self):
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with outer.lock:
                    outer.requests.append((dict(self.headers), body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/jwst-hook"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def received(self) -> list[tuple[dict[str, str], bytes]]:
        with self.lock:
            return list(self.requests)

    def subjects(self) -> Counter:
        return Counter(json.loads(body).get("subject") for _, body in self.received())

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class SmtpSink:
    """aiosmtpd handler keeping every message."""

    def __init__(self):
        self.messages: list[email.message.EmailMessage] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        return "250 OK"


class System:
    """Everything the test runs: in-process context (Celery transport), workers, API."""

    def __init__(self, tmp_path: Path, env: dict[str, str], ctx: ServiceContext, api_port: int):
        self.tmp_path, self.env, self.ctx = tmp_path, env, ctx
        self.api = f"http://127.0.0.1:{api_port}"
        self.processes: list[Process] = []
        for service in WORKERS:
            self.processes.append(Process(
                f"worker {service}", ["worker", service, "--loglevel", "INFO"], env, tmp_path / f"{service}.log"))
        self.processes.append(Process(
            "archive API", ["serve", "archive", "--port", str(api_port), "--log-level", "warning"], env,
            tmp_path / "archive.log"))

    def start(self) -> None:
        for p in self.processes:
            p.start()

    def stop(self) -> None:
        for p in self.processes:
            p.stop()

    def logs(self) -> str:
        return "\n".join(f"----- {p.name} ({p.log}) -----\n{p.tail()}" for p in self.processes)

    def check_alive(self) -> None:
        dead = [p for p in self.processes if p.proc is not None and not p.alive()]
        if dead:
            raise AssertionError(f"{', '.join(p.name for p in dead)} exited "
                                 f"({', '.join(str(p.proc.returncode) for p in dead)})")

    def wait_until(self, predicate: Callable[[], bool], timeout: float, what: str,
                   state: Callable[[], object] | None = None) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            self.check_alive()
            time.sleep(0.25)
        now = f"; state: {state()}" if state is not None else ""
        raise AssertionError(f"timed out after {timeout} s waiting for {what}{now}")


@pytest.fixture
def system(request, tmp_path, pg_url, redis_url, broker_prefix, s3_server):
    s3_server.reset()
    api_port = free_port()
    env_settings = {
        **s3_server.env(),
        "DMS_VAR_DIR": str(tmp_path / "var"),
        "DMS_CATALOG_URL": pg_url,
        "DMS_BROKER_URL": redis_url,
        "DMS_BROKER_KEY_PREFIX": broker_prefix,
        "DMS_BROKER_VISIBILITY_TIMEOUT": "120",  # nobody is killed here; no early redelivery
        "DMS_BROKER_RESTORE_INTERVAL": "5",
        "DMS_TASK_MAX_RETRIES": "3",
        "DMS_WEBHOOK_TIMEOUT": "5",
        "DMS_ARCHIVE_BASE_URL": f"http://127.0.0.1:{api_port}",
    }
    settings = Settings(**{k.removeprefix("DMS_").lower(): v for k, v in env_settings.items()})
    from shared.celery_app import CeleryTransport, create_app

    ctx = ServiceContext.from_settings(settings, transport=CeleryTransport(create_app(settings)))
    ctx.catalog.upgrade()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DMS_")} | env_settings
    env["PYTHONPATH"] = str(REPO)
    sut = System(tmp_path, env, ctx, api_port)
    failed_before = request.session.testsfailed
    try:
        sut.start()
        yield sut
    finally:
        sut.stop()
        if request.session.testsfailed > failed_before:
            print(sut.logs())
        ctx.catalog.dispose()


@pytest.fixture
def webhook():
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()


@pytest.fixture
def smtp():
    from aiosmtpd.controller import Controller

    sink = SmtpSink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    sink.port = controller.port
    yield sink
    controller.stop()


def demo_description() -> dict:
    """examples/nircam_imaging.yaml with 2 dither points instead of 4 (and its references)."""
    desc = yaml.safe_load(EXAMPLE.read_text())
    for obs in desc["observations"]:
        obs["dither"] = {"pattern": "N-POINT-LINE", "npoints": 2, "size": 2.0}
    return desc


def current_products(ctx: ServiceContext) -> dict[str, dict]:
    """Current products of the program: filename -> sha256 of the data, artifact kinds,
    reference context."""
    out: dict[str, dict] = {}
    with ctx.catalog.session() as s:
        rows = s.execute(
            select(Product.filename, Product.reference_context, Artifact.kind, Artifact.sha256)
            .join(Artifact, Artifact.product_id == Product.id)
            .where(Product.program_id == PROGRAM, Product.is_current)
        ).all()
    for filename, context, kind, sha in rows:
        entry = out.setdefault(filename, {"kinds": set(), "context": context, "sha256": None})
        entry["kinds"].add(kind)
        if kind == "data":
            entry["sha256"] = sha
    return out


def test_demo_observation_end_to_end(system, webhook, smtp, tmp_path):
    ctx = system.ctx
    t0 = time.monotonic()

    # the observatory: the demo program, two dither points, with its reference files
    sim = simulate(demo_description(), tmp_path / "sim")
    assert sim.reference_paths, "the simulator wrote no reference files; detector1 could not calibrate"
    # per exposure and detector: _uncal (ingest), _rate and the persistence step's
    # _trapsfilled (detector1); previews for the science products (_uncal, _rate)
    science = sorted(f"{p.stem}_{suffix}.fits" for p in sim.telemetry_paths for suffix in ("uncal", "rate"))
    expected = sorted([*science, *(f"{p.stem}_trapsfilled.fits" for p in sim.telemetry_paths)])
    assert len(science) == 8 and len(expected) == 12

    # the calibration team delivers the references (the event goes to the notifier queue)
    refs = deliver_references(ctx, sim.reference_paths, note="simulator references for the end-to-end test")
    assert refs.created

    # the archive API is up; a scientist subscribes through it (webhook now, e-mail daily)
    with httpx.Client(base_url=system.api, timeout=30) as api:
        system.wait_until(lambda: _answers(api, "/health"), 60, "the archive API to answer /health")
        with ctx.catalog.session() as s:
            tokens = {user: create_token(s, user, 1, "end-to-end test") for user in (SUBSCRIBER, PI, OUTSIDER)}
        auth = {user: {"Authorization": f"Bearer {token}"} for user, token in tokens.items()}
        r = api.post("/subscriptions", headers=auth[SUBSCRIBER], json={
            "name": "new data of 1234", "channel": "webhook", "target": webhook.url,
            "filters": {"programs": ["1234"], "event_types": ["new"]}})
        assert r.status_code == 201, r.text
        secret = r.json()["secret"]
        assert secret
        r = api.post("/subscriptions", headers=auth[SUBSCRIBER], json={
            "name": "daily digest", "channel": "email", "target": SUBSCRIBER, "frequency": "daily",
            "filters": {"programs": ["1234"]}})
        assert r.status_code == 201, r.text
        digest_id = r.json()["id"]

        # the downlink: plan and telemetry into dms-raw, arrival events to the ingest queue
        received = receive_files(ctx, [sim.plan_path, *sim.telemetry_paths])
        assert dispatch_events(ctx.catalog, ctx.transport,
                               event_ids=[r.event_id for r in received if r.event_id]) == len(sim.telemetry_paths)

        # every product archived, calibrated with the delivered context and previewed
        def products_done() -> bool:
            products = current_products(ctx)
            return sorted(products) == expected and all(
                {"data", "preview", "thumbnail"} <= products[name]["kinds"] for name in science)

        system.wait_until(products_done, 150, f"{len(expected)} products, previews of {len(science)}",
                          lambda: {name: sorted(p["kinds"]) for name, p in current_products(ctx).items()})
        products = current_products(ctx)
        assert {products[name]["context"] for name in expected if "_uncal" not in name} == {refs.context_name}

        # one signed `new` CloudEvent per product at the webhook; wait a little for duplicates
        system.wait_until(lambda: set(webhook.subjects()) >= set(expected), 60,
                          "a webhook delivery for every product", webhook.subjects)
        time.sleep(4)
        assert webhook.subjects() == Counter(expected), "each product must reach the webhook exactly once"
        firsts = []
        for headers, body in webhook.received():
            assert signature_ok(secret, body, headers.get("X-DMS-Signature")), headers
            event = json.loads(body)
            assert headers.get("X-DMS-Delivery") == event["id"]
            assert headers["Content-Type"].startswith("application/cloudevents+json")
            assert event["specversion"] == "1.0"
            assert event["type"] == "org.jwstdms.archive.product.new"
            assert event["source"] == f"/archive/jwst/program/{PROGRAM}"
            assert [r["event_type"] for r in event["data"]] == ["New"]  # the filter asked for new only
            row = event["data"][0]
            assert row["filename"] == event["subject"] and row["program"] == 1234 and row["mission"] == "JWST"
            firsts += [r for r in event["data"] if r["event_type"] == "First"]
        assert firsts == []

        # a day later `dms notify` sends the digest: pretend the subscription is a day old
        with ctx.catalog.session() as s:
            s.execute(update(Subscription).where(Subscription.id == digest_id)
                      .values(created_at=datetime.now(UTC) - timedelta(days=1, minutes=5)))
        notify_env = system.env | {"DMS_SMTP_HOST": "127.0.0.1", "DMS_SMTP_PORT": str(smtp.port),
                                   "DMS_MAIL_FROM": "dms@archive.test"}
        done = subprocess.run([sys.executable, "-m", "services.cli", "notify"], cwd=REPO, env=notify_env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        assert len(smtp.messages) == 1, done.stdout + done.stderr
        [message] = smtp.messages
        assert message["To"] == SUBSCRIBER and message["From"] == "dms@archive.test"
        assert "daily digest" in message["Subject"] and "program 01234" in message["Subject"]
        text = message.get_body(("plain",)).get_content()
        assert all(name in text for name in expected), text
        [attachment] = list(message.iter_attachments())
        assert attachment.get_filename().startswith("event_metadata_jwst-program-1234_daily_")
        rows = json.loads(attachment.get_content())
        assert sorted(r["filename"] for r in rows if r["event_type"] == "New") == expected
        assert len([r for r in rows if r["event_type"] == "First"]) == 1
        assert not [r for r in rows if r["event_type"] == "Public"]  # 12 months of exclusive access

        # the archive API lists the products with their previews
        r = api.get("/products", params={"program": "1234", "pagesize": 500})
        assert r.status_code == 200, r.text
        listed = r.json()["rows"]
        data_rows = {row["productFilename"]: row for row in listed if row["productType"] != "PREVIEW"}
        assert sorted(data_rows) == expected
        assert {row["productSubGroupDescription"] for row in data_rows.values()} == {"UNCAL", "RATE", "TRAPSFILLED"}
        assert all(row["dataRights"] == "EXCLUSIVE_ACCESS" for row in data_rows.values())
        assert all(row["sha256"] == products[name]["sha256"] for name, row in data_rows.items())
        previews = sorted(row["productFilename"] for row in listed if row["productType"] == "PREVIEW")
        assert previews == sorted(f"{name.removesuffix('.fits')}{end}" for name in science
                                  for end in ("_preview.png", "_thumb.jpg"))

        # exclusive access: anonymous refused, an outsider forbidden, the PI served the bytes
        uncal = expected[0]
        r = api.get(f"/download/{uncal}")
        assert r.status_code == 401, r.text
        assert "exclusive access" in r.json()["detail"]
        assert api.get(f"/download/{uncal}", headers=auth[OUTSIDER]).status_code == 403
        r = api.get(f"/download/{uncal}", headers=auth[PI])
        assert r.status_code == 200, r.text[:300]
        assert hashlib.sha256(r.content).hexdigest() == products[uncal]["sha256"] == r.headers["X-Checksum-SHA256"]
        r = api.get(f"/previews/{uncal}", headers=auth[PI])
        assert r.status_code == 200 and r.content.startswith(b"\x89PNG")

    system.check_alive()
    print(f"end-to-end: {len(expected)} products, {len(webhook.received())} webhook deliveries, "
          f"1 digest in {time.monotonic() - t0:.1f} s")


def _answers(api: httpx.Client, path: str) -> bool:
    try:
        return api.get(path, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
