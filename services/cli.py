"""``dms``: the command line of jwst-dms.

    dms simulate DESCRIPTION --out DIR      write plan, telemetry, truth and reference files
    dms ingest PATH...                       deliver plans and telemetry; process them
    dms refs deliver|list|contexts|best      reference files, contexts and selection
    dms run detector1 FILE...                calibrate local files without services
    dms preview FILE...                      render previews of local files
    dms subscribe | subscriptions | unsubscribe | notify     notifications
    dms serve archive | token ...            the HTTP API and its tokens
    dms worker SERVICE                       run a Celery worker for one service
    dms status                               backlog per queue, products per level, rejections
    dms demo                                 simulate the demo observation and run it to the end
    dms reconcile [--loop]                   re-dispatch outbox events left pending
    dms db upgrade                           bring the catalog schema up to date
    dms storage init                         create the buckets

With no DMS_BROKER_URL every task runs in this process (the embedded default).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from sqlalchemy import func, select

from services.archive.commands import register_commands as register_archive_commands
from services.detector1.commands import register_run_command as register_detector1_run
from services.ingest.receive import BadPlanError, receive_files
from services.notifier.commands import register_commands as register_notifier_commands
from services.preview.commands import register_commands as register_preview_commands
from services.registry import SERVICES, embedded_context, handlers_for
from services.simulator import DescriptionError
from shared.catalog import Artifact, EventRecord, IngestRejection, Product, TaskFailure
from shared.catalog.queries import product_counts_by_level
from shared.config import Settings, get_settings
from shared.errors import ConfigurationError
from shared.refdata import (
    RefDataError,
    explain,
    exposure_header,
    list_contexts,
    list_references,
)
from shared.refdata import deliver as deliver_references
from shared.refdata.rules import format_time
from shared.routing import QUEUES
from shared.runtime import InlineTransport, Outcome, ServiceContext, dispatch_events, reconcile

__all__ = ["main"]

log = logging.getLogger("dms")

# Errors in what the user gave us: reported as one message, exit status 2, no traceback.
USER_ERRORS = (BadPlanError, DescriptionError, ConfigurationError, FileNotFoundError, RefDataError)

LEVEL_NAMES = {0: "raw", 1: "uncal", 2: "calibrated", 3: "combined"}


def _context(settings: Settings) -> tuple[ServiceContext, InlineTransport | None]:
    """Context for commands that produce work: in-process transport when embedded."""
    if settings.embedded:
        return embedded_context(settings)
    from shared.celery_app import CeleryTransport, create_app

    ctx = ServiceContext.from_settings(settings, transport=CeleryTransport(create_app(settings)))
    ctx.catalog.upgrade()
    return ctx, None


def _print_progress(stage: str, done: int, total: int) -> None:
    width = 30
    filled = int(width * done / max(total, 1))
    end = "\n" if done >= total else ""
    print(f"\r  {stage:<28} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}", end=end, flush=True)


def _task_progress(task: str, outcome: Outcome) -> None:
    mark = {"ok": "ok", "failed": "FAILED", "retry": "retry"}[outcome.status]
    extra = f": {outcome.error}" if outcome.error else ""
    print(f"  {task:<22} {mark}{extra}", flush=True)


# ---------------------------------------------------------------- simulate / ingest


def cmd_simulate(args: argparse.Namespace) -> int:
    from services.simulator import simulate

    t0 = time.perf_counter()
    result = simulate(args.description, Path(args.out), seed=args.seed, progress=_print_progress)
    print(f"plan:      {result.plan_path}")
    print(f"telemetry: {len(result.telemetry_paths)} files in {result.telemetry_paths[0].parent if result.telemetry_paths else '-'}")
    print(f"truth:     {result.truth_dir}")
    print(f"refs:      {len(result.reference_paths)} reference files")
    print(f"done in {time.perf_counter() - t0:.1f} s")
    return 0


def _expand(paths: list[str]) -> list[Path]:
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted(q for q in p.rglob("*") if q.is_file() and (q.suffix == ".ccsds" or q.name.endswith("_plan.json"))))
        elif p.is_file():
            out.append(p)
        else:
            raise FileNotFoundError(f"{p}: no such file or directory")
    return out


def ingest_paths(ctx: ServiceContext, inline: InlineTransport | None, paths: list[Path], *, requeue: bool = False) -> None:
    received = receive_files(ctx, paths, requeue=requeue)
    plans = sum(1 for r in received if r.kind == "plan")
    announced = [r.event_id for r in received if r.event_id]
    print(f"delivered {plans} plan(s) and {len(received) - plans} telemetry file(s) to dms-raw; "
          f"{len(announced)} new arrival event(s)")
    sent = dispatch_events(ctx.catalog, ctx.transport, event_ids=announced)
    if inline is not None:
        inline.run_until_idle(progress=_task_progress)
    else:
        print(f"queued {sent} event(s) for the workers; follow with `dms status`")


def cmd_ingest(args: argparse.Namespace) -> int:
    settings = get_settings()
    ctx, inline = _context(settings)
    ingest_paths(ctx, inline, _expand(args.paths), requeue=args.requeue)
    return 0


# ---------------------------------------------------------------- worker / reconcile / db


def cmd_worker(args: argparse.Namespace) -> int:
    from shared.celery_app import create_app, register_handlers

    settings = get_settings()
    handlers = handlers_for(args.service)
    app = create_app(settings)
    register_handlers(app, settings, handlers)
    argv = ["worker", "-Q", args.service, "-n", f"{args.service}@%h", "--concurrency", str(args.concurrency),
            "--loglevel", args.loglevel, "--without-gossip", "--without-mingle"]
    app.worker_main(argv)
    return 0


def cmd_reconcile(args: argparse.Namespace) -> int:
    settings = get_settings()
    ctx, inline = _context(settings)
    while True:
        n = reconcile(ctx.catalog, ctx.transport, 0 if args.now else settings.reconcile_after_seconds)
        if n:
            print(f"re-dispatched {n} pending event(s)", flush=True)
        if inline is not None:
            inline.run_until_idle(progress=_task_progress)
        if not args.loop:
            return 0
        time.sleep(args.interval)


def cmd_db(args: argparse.Namespace) -> int:
    settings = get_settings()
    from shared.catalog import upgrade

    upgrade(settings.resolved_catalog_url)
    print(f"catalog at {settings.resolved_catalog_url.split('@')[-1]} is up to date")
    return 0


def cmd_storage(args: argparse.Namespace) -> int:
    from shared.storage import BUCKETS, open_store

    open_store(get_settings()).ensure_buckets()
    print(f"buckets ready: {', '.join(BUCKETS)}")
    return 0


# ---------------------------------------------------------------- reference data


def cmd_refs(args: argparse.Namespace) -> int:
    ctx, inline = _context(get_settings())
    if args.action == "deliver":
        d = deliver_references(ctx, args.files, note=args.note)
        if inline is not None:
            inline.run_until_idle(progress=_task_progress)
        if d.created:
            print(f"{d.context_name}: {len(d.added)} new file(s), {len(d.replaced)} replaced"
                  f" (parent {d.parent or 'none'})")
            for name in d.replaced:
                print(f"  replaced {name}")
        else:
            print(f"nothing new: all {len(d.files)} file(s) are already in {d.context_name}")
        return 0
    with ctx.catalog.session() as s:
        if args.action == "list":
            rows = list_references(s, args.context, args.reftype, args.instrument)
            for r in rows:
                print(f"{r.instrument:<8} {r.reftype:<11} {format_time(r.useafter)}  "
                      f"{r.describe_selectors():<52} {r.filename}")
            print(f"{len(rows)} file(s)")
        elif args.action == "contexts":
            for c in list_contexts(s):
                print(f"{c.name}  {c.created_at:%Y-%m-%d %H:%M:%S}  {c.files:>4} files  "
                      f"+{len(c.added)} -{len(c.removed)}  {c.note}")
        else:
            print(explain(s, exposure_header(s, args.source), args.context))
    return 0


def add_refs_parser(sub) -> None:
    s = sub.add_parser("refs", help="calibration reference files and contexts")
    refs = s.add_subparsers(dest="action", required=True)
    r = refs.add_parser("deliver", help="validate and store reference files; make the next context")
    r.add_argument("files", nargs="+", help="FITS reference files or directories of them")
    r.add_argument("--note", default="", help="why (kept with the new context)")
    r = refs.add_parser("list", help="reference files of a context (default: the current one)")
    r.add_argument("--context", default=None, help="e.g. dms_0003.ctx or 3")
    r.add_argument("--reftype", default=None)
    r.add_argument("--instrument", default=None)
    refs.add_parser("contexts", help="every context with what it added and removed")
    r = refs.add_parser("best", help="which reference each detector1 step would use, and why")
    r.add_argument("source", help="an _uncal FITS file, or a stored product filename or exposure name")
    r.add_argument("--context", default=None)
    s.set_defaults(func=cmd_refs)


# ---------------------------------------------------------------- status


def queue_depths(settings: Settings) -> dict[str, int] | None:
    """Messages waiting per service queue (Redis broker only)."""
    if not settings.broker_url or not settings.broker_url.startswith("redis"):
        return None
    import redis

    client = redis.Redis.from_url(settings.broker_url)
    return {q: int(client.llen(settings.broker_key_prefix + q)) for q in QUEUES}


def cmd_status(args: argparse.Namespace) -> int:
    settings = get_settings()
    ctx = ServiceContext.from_settings(settings)
    ctx.catalog.upgrade()
    depths = queue_depths(settings)
    print("backlog")
    if depths is None:
        print("  embedded mode: no broker queues")
    else:
        for q, n in depths.items():
            print(f"  {q:<14} {n:>6} waiting")
    with ctx.catalog.session() as s:
        pending = s.scalar(select(func.count()).select_from(EventRecord).where(EventRecord.dispatched_at.is_(None)))
        print(f"  {'outbox':<14} {pending:>6} undispatched event(s)")
        print("products (current revisions)")
        counts = product_counts_by_level(s)
        for level in sorted(counts) or []:
            print(f"  level {level} ({LEVEL_NAMES.get(level, '?')}): {counts[level]}")
        if not counts:
            print("  none")
        rejections = s.scalars(select(IngestRejection).order_by(IngestRejection.created_at.desc()).limit(args.limit)).all()
        total = s.scalar(select(func.count()).select_from(IngestRejection))
        print(f"rejections: {total}")
        for r in rejections:
            print(f"  {r.created_at:%Y-%m-%d %H:%M:%S}  {r.raw_filename}  {r.reason}: {r.detail}")
        failures = s.scalar(select(func.count()).select_from(TaskFailure))
        print(f"dead-lettered tasks: {failures}")
        for f in s.scalars(select(TaskFailure).order_by(TaskFailure.created_at.desc()).limit(args.limit)):
            print(f"  {f.created_at:%Y-%m-%d %H:%M:%S}  {f.task}  {f.reason}")
    return 0


# ---------------------------------------------------------------- demo


def product_table(ctx: ServiceContext, suffix: str) -> list[tuple[int, str, int, str]]:
    with ctx.catalog.session() as s:
        rows = s.execute(
            select(Product.id, Product.filename, Artifact.size, Artifact.sha256)
            .join(Artifact, Artifact.product_id == Product.id)
            .where(Product.suffix == suffix, Product.is_current, Artifact.kind == "data")
            .order_by(Product.filename)
        ).all()
    return [tuple(r) for r in rows]


def _print_products(ctx: ServiceContext, suffix: str) -> None:
    rows = product_table(ctx, suffix)
    print(f"  {'id':>4}  {'name':<52} {'size':>10}  sha256")
    for pid, name, size, sha in rows:
        print(f"  {pid:>4}  {name:<52} {size:>10}  {sha}")


DEMO_OWNER = "demo@jwst-dms.local"  # owner of the demo's own subscriptions


class _DemoWebhook:
    """The demo's subscriber: a loopback HTTP server that checks the ``X-DMS-Signature``
    of every POST (docs/notifications.md) and keeps the CloudEvents it receives."""

    def __init__(self) -> None:
        import secrets
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.secret = secrets.token_hex(16)
        self.received: list[tuple[dict, bool]] = []  # (CloudEvent, signature verified)
        self._lock = threading.Lock()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                hook._record(body, self.headers.get("X-DMS-Signature"))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/demo-hook"
        threading.Thread(target=self._server.serve_forever, args=(0.1,), daemon=True, name="demo-webhook").start()

    def _record(self, body: bytes, signature: str | None) -> None:
        import hashlib
        import hmac
        import json

        expected = "sha256=" + hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
        verified = signature is not None and hmac.compare_digest(expected, signature)
        try:
            event = json.loads(body)
        except ValueError:
            event = {}
        with self._lock:
            self.received.append((event if isinstance(event, dict) else {}, verified))

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class _DemoMailbox:
    """A local SMTP server for the demo's e-mail digest, when aiosmtpd (a test extra) is
    installed; :meth:`start` gives None otherwise, and the demo goes on without e-mail."""

    def __init__(self, controller, messages: list) -> None:
        self._controller, self.messages, self.port = controller, messages, controller.port

    @classmethod
    def start(cls) -> _DemoMailbox | None:
        try:
            import email
            import email.policy
            import socket

            from aiosmtpd.controller import Controller
        except ImportError:
            return None
        messages: list = []

        class Sink:
            async def handle_DATA(self, server, session, envelope):
                messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
                return "250 OK"

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        controller = Controller(Sink(), hostname="127.0.0.1", port=port)
        try:
            controller.start()
        except Exception as exc:  # no e-mail then; the demo does not need it
            log.info("no local SMTP server for the demo: %s", exc)
            return None
        return cls(controller, messages)

    def stop(self) -> None:
        self._controller.stop()


def _demo_subscribe(ctx: ServiceContext, hook: _DemoWebhook, mailbox: _DemoMailbox | None) -> dict[str, int]:
    """The demo's subscriptions (leftovers of an interrupted demo are switched off first):
    every notification by webhook, and a daily e-mail digest when there is a mailbox."""
    from shared.subscriptions import (
        SubscriptionSpec,
        create_subscription,
        delete_subscription,
        list_subscriptions,
    )

    with ctx.catalog.session() as s:
        for old in list_subscriptions(s, DEMO_OWNER):
            delete_subscription(s, old.id)
        ids = {"webhook": create_subscription(s, DEMO_OWNER, SubscriptionSpec(
            name="make demo: webhook", channel="webhook", target=hook.url, secret=hook.secret)).id}
        if mailbox is not None:
            ids["email"] = create_subscription(s, DEMO_OWNER, SubscriptionSpec(
                name="make demo: daily digest", channel="email", target=DEMO_OWNER, frequency="daily")).id
    return ids


def _demo_unsubscribe(ctx: ServiceContext, ids: dict[str, int]) -> None:
    """Switch the demo's subscriptions off: their receivers end with the demo."""
    from shared.subscriptions import delete_subscription

    with ctx.catalog.session() as s:
        for sub_id in ids.values():
            delete_subscription(s, sub_id)


def _print_notifications(ctx: ServiceContext, hook: _DemoWebhook, mailbox: _DemoMailbox | None,
                         ids: dict[str, int]) -> None:
    from collections import Counter
    from datetime import UTC, datetime, timedelta

    received = list(hook.received)
    verified = sum(ok for _, ok in received)
    print(f"4. notifications received by the demo's webhook subscription ({hook.url})")
    print(f"  {len(received)} CloudEvent(s), {verified} with a verified signature (X-DMS-Signature)")
    if not received:
        print("  nothing new was archived in this run (its products were already in the catalog; "
              f"remove {ctx.settings.var_dir} for a fresh run)")
    rows = [(event.get("type", "?"), r) for event, _ in received for r in event.get("data") or []
            if isinstance(r, dict)]
    for ce_type, count in sorted(Counter(event.get("type", "?") for event, _ in received).items()):
        kinds = Counter(r.get("event_type") for t, r in rows if t == ce_type)
        detail = ", ".join(f"{n} {kind}" for kind, n in kinds.most_common())
        print(f"  {count:>4}  {ce_type:<40} rows: {detail}")
    files = list(dict.fromkeys(r.get("filename") for _, r in rows if r.get("event_type") == "New"))
    if files:
        more = f" (+{len(files) - 3} more)" if len(files) > 3 else ""
        print(f"  new files: {', '.join(files[:3])}{more}")
    if mailbox is None or "email" not in ids:
        return
    from services.notifier.delivery import deliver_digest

    # The digest is due once a day (`dms notify` sends it); the demo sends it as it would tomorrow.
    sent = deliver_digest(ctx, ids["email"], datetime.now(UTC) + timedelta(days=1, minutes=1))
    if sent is None or not mailbox.messages:
        error = f": {sent.result.error}" if sent is not None and sent.result.error else ""
        print(f"  e-mail: no daily digest sent{error}")
        return
    message = mailbox.messages[-1]
    attachments = [part.get_filename() for part in message.iter_attachments()]
    print(f"  e-mail: daily digest (sent now as `dms notify` would tomorrow) to {message['To']} via "
          f"127.0.0.1:{mailbox.port}: \"{message['Subject']}\", {len(sent.event_ids)} event(s), "
          f"attached {', '.join(attachments) or 'nothing'}")


def _demo_serve(ctx: ServiceContext, plan, keep_serving: bool) -> None:
    """Run the archive API on a free loopback port in a thread, print where and what to
    ask it, and keep serving until Ctrl-C when ``keep_serving`` (a terminal is attached)."""
    import socket
    import threading

    import httpx
    import uvicorn

    from services.archive.app import create_app
    from shared.tokens import create_token

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    app = create_app(ctx.settings.model_copy(update={"archive_base_url": url}))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="demo-archive-api")
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    if not server.started:
        print("5. the archive API did not start (see above); `dms serve archive` serves this catalog")
        server.should_exit = True
        sock.close()
        return
    program = plan.program
    with httpx.Client(base_url=url, timeout=10) as client:
        page = client.get("/products", params={"program": program, "pagesize": 1000}).json()
    rows = page.get("rows", [])
    science = next((r["productFilename"] for r in rows if r.get("productSubGroupDescription") == "RATE"),
                   next((r["productFilename"] for r in rows if r.get("productType") == "SCIENCE"), None))
    links = [("/docs", "interactive documentation (Swagger UI)"),
             (f"/products?program={program}", f"{page.get('total', 0)} rows: products, previews, thumbnails"),
             (f"/observations?program={program}", "the observations, MAST-style"),
             (f"/events?program={program}", "the archive's event log (CloudEvents)")]
    if science:
        links += [(f"/products/{science}", "one product: provenance, linkages, revisions"),
                  (f"/previews/{science}", "its preview (PNG; exclusive access, so it needs a token)")]
    width = max(len(path) for path, _ in links)
    print(f"5. the archive API is serving at {url}")
    for path, what in links:
        print(f"  {url}{path:<{width}}  {what}")
    if science:
        if plan.pi_user:
            with ctx.catalog.session() as s:
                token = create_token(s, plan.pi_user, 1, "make demo")
            print(f"  program {program} is under exclusive access: data and previews need a token, e.g. "
                  f"the PI's ({plan.pi_user}, valid 1 day):")
            print(f"    curl -fOJ -H 'Authorization: Bearer {token}' {url}/download/{science}")
    if keep_serving:
        print("serving until Ctrl-C", flush=True)
        try:
            while thread.is_alive():
                thread.join(0.5)
        except KeyboardInterrupt:
            print()
    else:
        print("not attached to a terminal, so the API stops here; `dms serve archive` serves this catalog again")
    server.should_exit = True
    thread.join(10)


def cmd_demo(args: argparse.Namespace) -> int:
    from services.simulator import simulate

    settings = get_settings()
    t0 = time.perf_counter()
    out = settings.var_dir / "demo"
    print(f"1. simulating {args.description} into {out}")
    result = simulate(args.description, out, seed=args.seed, progress=_print_progress)
    t1 = time.perf_counter()
    hook = mailbox = None
    if settings.embedded:  # a subscriber listens in this process; with a broker, workers do the work later
        hook, mailbox = _DemoWebhook(), _DemoMailbox.start()
        if mailbox is not None:
            settings = settings.model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": mailbox.port,
                                                   "smtp_user": None, "smtp_starttls": False})
    ctx, inline = _context(settings)
    ids = _demo_subscribe(ctx, hook, mailbox) if hook is not None else {}
    try:
        if result.reference_paths:
            delivery = deliver_references(ctx, result.reference_paths, note="simulator references for the demo")
            print(f"2. reference files: {len(delivery.files)} delivered, context {delivery.context_name}")
            if inline is not None:
                inline.run_until_idle()
        print(f"3. delivering and processing ({'in-process' if settings.embedded else settings.broker_url})")
        ingest_paths(ctx, inline, [result.plan_path, *result.telemetry_paths])
        t2 = time.perf_counter()
        for suffix in ("uncal", "rate", "rateints"):
            if product_table(ctx, suffix):
                print(f"archived _{suffix} products")
                _print_products(ctx, suffix)
        if hook is not None:
            _print_notifications(ctx, hook, mailbox, ids)
    finally:
        if ids:
            _demo_unsubscribe(ctx, ids)
        if hook is not None:
            hook.close()
        if mailbox is not None:
            mailbox.stop()
    print(f"simulate {t1 - t0:.1f} s, process {t2 - t1:.1f} s, total {time.perf_counter() - t0:.1f} s")
    print(f"catalog: {settings.resolved_catalog_url}\nobjects: {settings.resolved_store_root}")
    if args.no_serve:
        print("`dms serve archive` serves this catalog (search, previews, downloads) on "
              f"http://{settings.archive_host}:{settings.archive_port}")
    else:
        _demo_serve(ctx, result.plan, keep_serving=sys.stdin is not None and sys.stdin.isatty())
    return 0


# ---------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dms", description="jwst-dms: telemetry to archived JWST products")
    p.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("simulate", help="write a plan, telemetry, truth and reference files")
    s.add_argument("description", help="program description (YAML or JSON), e.g. examples/nircam_imaging.yaml")
    s.add_argument("--out", required=True, help="output directory")
    s.add_argument("--seed", type=int, default=None, help="random seed (default: the description's)")
    s.set_defaults(func=cmd_simulate)

    s = sub.add_parser("ingest", help="deliver plans and telemetry files (or directories) and process them")
    s.add_argument("paths", nargs="+")
    s.add_argument("--requeue", action="store_true",
                   help="announce files again even if already delivered (e.g. after delivering a missing plan)")
    s.set_defaults(func=cmd_ingest)

    s = sub.add_parser("worker", help="run a Celery worker for one service (needs DMS_BROKER_URL)")
    s.add_argument("service", choices=sorted(SERVICES))
    s.add_argument("--concurrency", type=int, default=1)
    s.add_argument("--loglevel", default="INFO")
    s.set_defaults(func=cmd_worker)

    s = sub.add_parser("status", help="backlog per queue, products per level, rejections, dead letters")
    s.add_argument("--limit", type=int, default=10, help="how many recent rejections and failures to list")
    s.set_defaults(func=cmd_status)

    s = sub.add_parser("demo", help="simulate the demo observation and run it through the system")
    s.add_argument("--description", default="examples/nircam_imaging.yaml")
    s.add_argument("--seed", type=int, default=None)
    s.add_argument("--no-serve", action="store_true",
                   help="do not start the archive API at the end (by default it serves until Ctrl-C on a terminal)")
    s.set_defaults(func=cmd_demo)

    s = sub.add_parser("reconcile", help="re-dispatch outbox events that were not dispatched")
    s.add_argument("--loop", action="store_true", help="keep running")
    s.add_argument("--interval", type=float, default=10.0, help="seconds between passes with --loop")
    s.add_argument("--now", action="store_true", help="include events younger than DMS_RECONCILE_AFTER_SECONDS")
    s.set_defaults(func=cmd_reconcile)

    add_refs_parser(sub)
    run = sub.add_parser("run", help="run a pipeline on local files, without services")
    register_detector1_run(run.add_subparsers(dest="pipeline", required=True))
    register_preview_commands(sub)
    register_notifier_commands(sub, context_factory=_context)
    register_archive_commands(sub)

    s = sub.add_parser("db", help="catalog schema")
    s.add_argument("action", choices=["upgrade"])
    s.set_defaults(func=cmd_db)

    s = sub.add_parser("storage", help="object store")
    s.add_argument("action", choices=["init"])
    s.set_defaults(func=cmd_storage)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except USER_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
