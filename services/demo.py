"""``dms demo``: simulate the demo program and run it through the whole system.

It subscribes a webhook and an e-mail digest in this process, processes everything
(in-process when embedded), prints what was archived down to the Level-3 mosaic, its
source catalog and the TSO light curve, shows what the subscribers received, runs a MIRI
LRS slit program (two nods) down to its spectra and scores them against the truth, runs a
MIRI LRS slitless transit down to its white-light curve and scores its depth against the
truth, delivers an improved flat field under the ``reprocess`` policy and shows the exposures it
affects and the reprocessing it triggered, and serves the archive API.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import sys
import time
from dataclasses import replace
from urllib.parse import quote

import numpy as np
from astropy.io import fits
from astropy.table import Table
from sqlalchemy import select

from services.console import context_for, ingest_paths, print_impact, print_progress
from shared.catalog import Artifact, ArtifactKind, Product
from shared.config import get_settings
from shared.refdata import deliver as deliver_references
from shared.refdata import list_impact
from shared.runtime import ServiceContext

__all__ = ["cmd_demo", "fitted_depth"]

log = logging.getLogger("dms.demo")


def product_table(ctx: ServiceContext, suffix: str) -> list[tuple[int, str, int, str]]:
    with ctx.catalog.session() as s:
        rows = s.execute(
            select(Product.id, Product.filename, Artifact.size, Artifact.sha256)
            .join(Artifact, Artifact.product_id == Product.id)
            .where(Product.suffix == suffix, Product.is_current, Artifact.kind == ArtifactKind.DATA)
            .order_by(Product.filename)
        ).all()
    return [tuple(r) for r in rows]


def _print_products(ctx: ServiceContext, suffix: str) -> None:
    rows = product_table(ctx, suffix)
    print(f"  {'id':>4}  {'name':<52} {'size':>10}  sha256")
    for pid, name, size, sha in rows:
        print(f"  {pid:>4}  {name:<52} {size:>10}  {sha}")


DEMO_OWNER = "demo@jwst-dms.local"  # owner of the demo's own subscriptions
DEMO_MAILBOX = "demo@example.org"    # where its digest goes: only the demo's own SMTP server hears it


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
    from shared.webhooks import WebhookPolicy

    # The demo's webhook is its own, on loopback, which its settings allow (see demo()).
    policy = WebhookPolicy.from_settings(ctx.settings)
    with ctx.catalog.session() as s:
        for old in list_subscriptions(s, DEMO_OWNER):
            delete_subscription(s, old.id)
        ids = {"webhook": create_subscription(s, DEMO_OWNER, SubscriptionSpec(
            name="make demo: webhook", channel="webhook", target=hook.url, secret=hook.secret), policy=policy).id}
        if mailbox is not None:  # the demo's own mailbox: no confirmation link needed
            ids["email"] = create_subscription(s, DEMO_OWNER, SubscriptionSpec(
                name="make demo: daily digest", channel="email", target=DEMO_MAILBOX, frequency="daily"),
                policy=policy, confirmed=True).id
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
    # no public base URL: the URLs it answers (rows, curl scripts) follow the port it listens on
    app = create_app(ctx.settings.model_copy(update={"archive_base_url": None}))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="demo-archive-api")
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    if not server.started:
        print("7. the archive API did not start (see above); `dms serve archive` serves this catalog")
        server.should_exit = True
        sock.close()
        return
    program = plan.program
    with httpx.Client(base_url=url, timeout=10) as client:
        page = client.get("/products", params={"program": program, "pagesize": 1000}).json()
    rows = page.get("rows", [])
    science = next((r["productFilename"] for r in rows if r.get("productSubGroupDescription") == "RATE"),
                   next((r["productFilename"] for r in rows if r.get("productType") == "SCIENCE"), None))
    links = [(f"/portal#/search?program={int(program)}", "the portal: search, observations, basket (in a browser)"),
             ("/docs", "interactive documentation (Swagger UI)"),
             (f"/products?program={program}", f"{page.get('total', 0)} rows: products, previews, thumbnails"),
             (f"/products?program={program}&format=csv", "the same rows as CSV (also format=ecsv, votable)"),
             (f"/observations?program={program}", "the observations, MAST-style"),
             (f"/events?program={program}", "the archive's event log (CloudEvents)")]
    if science:
        links += [(f"/products/{science}", "one product: provenance, linkages, revisions"),
                  (f"/previews/{science}", "its preview (PNG; exclusive access, so it needs a token)")]
    mosaic = next((r["productFilename"] for r in rows
                   if r.get("calib_level") == 3 and r.get("productSubGroupDescription") == "I2D"), None)
    if mosaic:
        links.append((f"/products/{mosaic}/linkages", "the Level-3 mosaic's linkages, down to the _uncal files"))
    guide = next((r["productFilename"] for r in rows if r.get("productSubGroupDescription") == "GS-FG"), None)
    if guide:
        links.append((f"/products/{guide}/linkages", "a fine-guide product and the exposure it guided"))
    links.append((f"/programs/{program}/associations/report", "the association report (HTML)"))
    alias = next((a for t in plan.targets for a in t.aliases), None)
    if alias:
        links.append((f"/resolve?name={quote(alias)}", "a target resolved by its alias, offline"))
    width = max(len(path) for path, _ in links)
    print(f"8. the archive API is serving at {url}")
    for path, what in links:
        print(f"  {url}{path:<{width}}  {what}")
    if science:
        if plan.pi_user:
            with ctx.catalog.session() as s:
                token = create_token(s, plan.pi_user, 1, "make demo")
            print(f"  program {program} is under exclusive access: data and previews need a token, e.g. "
                  f"the PI's ({plan.pi_user}, valid 1 day):")
            print(f"    curl -fOJ -H 'Authorization: Bearer {token}' {url}/download/{science}")
            print("  (the portal takes the same token: Sign in, then paste it)")
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


# What the demo lists, in flow order: (suffix, what it is).
_SUMMARY = (
    ("uncal", "raw exposures (ingest)"), ("rate", "count rates (detector1)"),
    ("rateints", "per-integration rates (detector1)"), ("pool", "association pool"),
    ("asn", "associations"), ("cal", "calibrated exposures (image2)"),
    ("calints", "calibrated integrations (image2, TSO)"), ("i2d", "resampled images (image2, image3)"),
    ("crf", "outlier-flagged exposures (image3)"), ("crfints", "outlier-flagged integrations (tso3)"),
    ("cat", "source catalog (image3)"), ("segm", "segmentation map (image3)"),
    ("phot", "light curve (tso3)"),
)


# The improved reference: the imaging observation's flat field, 0.5 % brighter in every pixel.
IMPROVED_FLAT_FACTOR = 1.005
IMPROVED_POLICY = "FLAT:NIRCAM=reprocess,*=notify"


def _demo_improved_flat(ctx: ServiceContext, inline, result, out) -> None:
    """Deliver an improved flat field of the imaging observation (NRCA1, F200W/CLEAR) under
    the ``reprocess`` policy for flats; print the exposures it affects, the request it
    opened and, when it ran here, what changed."""
    from services.simulator.reffiles import revise_reference
    from shared.reprocessing import report, request_view

    flat = next((p for p in result.reference_paths if "_flat_nrca1_f200w_clear" in p.name), None)
    if flat is None:
        return
    improved = revise_reference(flat, out / "improved", factor=IMPROVED_FLAT_FACTOR,
                                name=flat.name.replace("_sim.fits", "_improved.fits"),
                                description="Demo flat of NRCA1 F200W/CLEAR, improved: 0.5 % brighter")
    policy_ctx = replace(ctx, settings=ctx.settings.model_copy(update={"reprocess_policy": IMPROVED_POLICY}))
    delivery = deliver_references(policy_ctx, [improved], note="improved NRCA1 F200W flat (demo)")
    print(f"7. an improved flat field, {improved.name} (x{IMPROVED_FLAT_FACTOR}), delivered under "
          f"DMS_REPROCESS_POLICY={IMPROVED_POLICY}")
    if not delivery.created:
        print(f"  already in {delivery.context_name} (an earlier demo delivered it); nothing new to reprocess")
        return
    if inline is not None:
        inline.run_until_idle()
    with ctx.catalog.session() as s:
        print("  " + "\n  ".join(_captured(print_impact, list_impact(s, delivery.context_name),
                                           delivery.context_name)))
        for request_id in delivery.requests:
            view = request_view(s, request_id)
            units = ", ".join(f"{u['name']} {u['state']}" for u in view["units"])
            print(f"  reprocessing request {request_id}: {view['state']}, from {view['from_stage']}, "
                  f"{view['progress']['done']}/{view['progress']['units']} unit(s) done: {units}")
            for p in report(s, request_id)["products"]:
                replaces = f"replaces r{p['replaces']}" if p["replaces"] else "new"
                print(f"    {p['filename']:<58} r{p['revision']} {p['state']:<9} {replaces}"
                      + (f": {p['summary']}" if p["summary"] else ""))


def _captured(func, *args) -> list[str]:
    """The lines ``func`` prints."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        func(*args)
    return buffer.getvalue().rstrip("\n").splitlines()


def _print_summary(ctx: ServiceContext) -> None:
    print("archived products (current revisions)")
    for suffix, what in _SUMMARY:
        rows = product_table(ctx, suffix)
        if rows:
            print(f"  {len(rows):>3} _{suffix:<9} {what}")
    for suffix in ("i2d", "cat", "segm", "phot"):
        for _, name, size, _ in product_table(ctx, suffix):
            if name.startswith("jw") and "-" in name.split("_")[0]:  # Level 3: jwPPPPP-<acid>_...
                print(f"      {name} ({size} bytes)")


def _print_level3(ctx: ServiceContext, result) -> None:
    """The Level-3 mosaic and its catalog, and the TSO transit depth against the truth."""
    def load(suffix: str):
        with ctx.catalog.session() as s:
            uri = s.scalar(select(Artifact.uri).join(Product, Artifact.product_id == Product.id)
                           .where(Product.suffix == suffix, Product.level == 3, Product.is_current,
                                  Artifact.kind == ArtifactKind.DATA).order_by(Product.filename).limit(1))
        return None if uri is None else ctx.store.get_uri(uri)

    mosaic, catalog, phot = load("i2d"), load("cat"), load("phot")
    if mosaic is not None:
        with fits.open(io.BytesIO(mosaic)) as hdul:
            sci = hdul["SCI"].data
            ndriz = hdul[0].header.get("NDRIZ")
        print(f"Level-3 mosaic: {sci.shape[1]} x {sci.shape[0]} pixels from {ndriz} exposures, "
              f"{np.isfinite(sci).mean():.0%} of the grid covered")
    if catalog is not None:
        cat = Table.read(io.BytesIO(catalog).read().decode(), format="ascii.ecsv")
        print(f"Level-3 catalog: {len(cat)} sources")
    if phot is not None:
        measured = Table.read(io.BytesIO(phot).read().decode(), format="ascii.ecsv")
        truth = json.loads(result.truth_index.read_text())
        entry = next((e for e in truth["exposures"] if e.get("transit")), None)
        if entry is not None:
            curve = Table.read(result.truth_dir.parent / entry["truth_lightcurve"], format="ascii.ecsv")
            depth = fitted_depth(np.asarray(measured["net_aperture_sum"], float),
                                 np.asarray(curve["relative_flux"], float))
            print(f"TSO light curve: {len(measured)} integrations, transit depth {depth:.3%} "
                  f"(injected {entry['transit']['depth']:.3%})")


def _run_example(ctx: ServiceContext, inline, title: str, description: str, out, seed: int | None):
    """Simulate an example program, deliver its references and its telemetry; the
    simulation once processed in this process (None when workers do the work later)."""
    from services.simulator import simulate

    print(title)
    result = simulate(description, out, seed=seed, progress=print_progress)
    if result.reference_paths:
        delivery = deliver_references(ctx, result.reference_paths, note=f"simulator references for {description}")
        print(f"   reference files: {len(delivery.files)} delivered, context {delivery.context_name}")
        if inline is not None:
            inline.run_until_idle()
    ingest_paths(ctx, inline, result.delivery)
    return result if inline is not None else None


def _demo_spectra(ctx: ServiceContext, inline, description: str, out, seed: int | None) -> None:
    """A slit spectroscopy program through the same services; each ``_x1d`` against the
    truth (the source's spectrum through the line-spread function)."""
    result = _run_example(ctx, inline, f"5. spectroscopy: simulating {description}", description, out, seed)
    if result is None:  # workers do the work later
        return
    program = f"{int(result.plan.program):05d}"
    with ctx.catalog.session() as s:
        rows = s.execute(select(Product.filename, Artifact.uri).join(Artifact, Artifact.product_id == Product.id)
                         .where(Product.program_id == program, Product.suffix == "x1d", Product.is_current,
                                Artifact.kind == ArtifactKind.DATA).order_by(Product.filename)).all()
    truths = {path.name.removesuffix("_truth_spectrum.ecsv"): Table.read(path, format="ascii.ecsv")
              for path in sorted(result.truth_dir.glob("*_truth_spectrum.ecsv"))}
    for name, uri in rows:
        with fits.open(io.BytesIO(ctx.store.get_uri(uri))) as hdul:
            x = hdul["EXTRACT1D"].data
        stem = name.removesuffix("_x1d.fits")
        # a nod's own truth; the target's Level-3 spectrum: the mean of its nods'
        of = [truths[stem]] if stem in truths else list(truths.values())
        expected = np.mean([np.interp(x["WAVELENGTH"], *_increasing(t["wavelength"], t["observed_jy"])) for t in of],
                           axis=0)
        good = np.isfinite(x["FLUX"]) & (x["DQ"] == 0)
        ratio = float(np.median(x["FLUX"][good] / expected[good]))
        print(f"   {name}: {int(good.sum())} elements, {np.nanmin(x['WAVELENGTH']):.2f}-"
              f"{np.nanmax(x['WAVELENGTH']):.2f} um, median flux {np.median(x['FLUX'][good]) * 1e3:.2f} mJy, "
              f"{ratio:.3f} of the truth")


def _demo_time_series(ctx: ServiceContext, inline, description: str, out, seed: int | None) -> None:
    """A spectroscopic time series through the same services; the transit depth of its
    white-light curve (``_whtlt``) against the truth's."""
    result = _run_example(ctx, inline, f"6. time-series spectroscopy: simulating {description}", description, out,
                          seed)
    if result is None:  # workers do the work later
        return
    program = f"{int(result.plan.program):05d}"
    with ctx.catalog.session() as s:
        rows = s.execute(select(Product.filename, Artifact.uri).join(Artifact, Artifact.product_id == Product.id)
                         .where(Product.program_id == program, Product.suffix.in_(("x1dints", "whtlt")),
                                Product.level == 3, Product.is_current, Artifact.kind == ArtifactKind.DATA)
                         .order_by(Product.filename)).all()
    truths = sorted(result.truth_dir.glob("*_truth_lightcurve.ecsv"))
    for name, uri in rows:
        if not name.endswith("_whtlt.ecsv") or not truths:
            print(f"   {name}")
            continue
        curve = Table.read(io.BytesIO(ctx.store.get_uri(uri)), format="ascii.ecsv")
        truth = Table.read(truths[0], format="ascii.ecsv")
        transmission = Table.read(str(truths[0]).replace("_lightcurve.ecsv", "_transmission.ecsv"), format="ascii.ecsv")
        depth = fitted_depth(np.asarray(curve["whitelight_flux"].value, float), np.asarray(truth["relative_flux"], float))
        low, high = transmission.meta["white_light_band_um"]
        print(f"   {name}: {len(curve)} integrations, white-light transit depth {depth:.3%} "
              f"(truth {transmission.meta['white_light_depth_fnu']:.3%} over {low:g}-{high:g} um)")


def _increasing(wavelength, values) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(wavelength)
    return np.asarray(wavelength)[order], np.asarray(values)[order]


def fitted_depth(flux: np.ndarray, truth_relative: np.ndarray) -> float:
    """Transit depth from a measured light curve, given the truth's shape: least squares of
    ``flux = a * (1 - depth * shape)`` where ``shape`` is the injected profile scaled to 1."""
    shape = (1.0 - truth_relative) / max(1.0 - float(np.min(truth_relative)), 1e-12)
    good = np.isfinite(flux)
    design = np.column_stack([np.ones(good.sum()), shape[good]])
    (a, b), *_ = np.linalg.lstsq(design, flux[good], rcond=None)
    return float(-b / a)


def cmd_demo(args: argparse.Namespace) -> int:
    from services.simulator import simulate

    settings = get_settings()
    t0 = time.perf_counter()
    out = settings.var_dir / "demo"
    print(f"1. simulating {args.description} into {out}")
    result = simulate(args.description, out, seed=args.seed, progress=print_progress)
    t1 = time.perf_counter()
    hook = mailbox = None
    if settings.embedded:  # a subscriber listens in this process; with a broker, workers do the work later
        hook, mailbox = _DemoWebhook(), _DemoMailbox.start()
        # the demo's webhook listens on loopback, which webhooks may not reach by default
        allow = ",".join(a for a in (settings.webhook_allow, "127.0.0.1/32") if a)
        settings = settings.model_copy(update={"webhook_allow": allow})
        if mailbox is not None:
            settings = settings.model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": mailbox.port,
                                                   "smtp_user": None, "smtp_starttls": False})
    if settings.astrometric_catalog_dir is None and result.catalog_paths:
        # The simulator's star catalog stands in for Gaia: stage 3 aligns the mosaic to it.
        settings = settings.model_copy(update={"astrometric_catalog_dir": result.catalog_paths[0].parent})
    ctx, inline = context_for(settings)
    ids = _demo_subscribe(ctx, hook, mailbox) if hook is not None else {}
    try:
        if result.reference_paths:
            delivery = deliver_references(ctx, result.reference_paths, note="simulator references for the demo")
            print(f"2. reference files: {len(delivery.files)} delivered, context {delivery.context_name}")
            if inline is not None:
                inline.run_until_idle()
        print(f"3. delivering and processing ({'in-process' if settings.embedded else settings.broker_url})")
        ingest_paths(ctx, inline, result.delivery)
        t2 = time.perf_counter()
        _print_summary(ctx)
        if settings.embedded:
            _print_level3(ctx, result)
        if hook is not None:
            _print_notifications(ctx, hook, mailbox, ids)
        ts = time.perf_counter()
        if args.spectra:
            _demo_spectra(ctx, inline, args.spectra, out / "spectra", args.seed)
        if args.time_series:
            _demo_time_series(ctx, inline, args.time_series, out / "time-series", args.seed)
        t3 = time.perf_counter()
        _demo_improved_flat(ctx, inline, result, out)
        t4 = time.perf_counter()
    finally:
        if ids:
            _demo_unsubscribe(ctx, ids)
        if hook is not None:
            hook.close()
        if mailbox is not None:
            mailbox.stop()
    print(f"simulate {t1 - t0:.1f} s, process {t2 - t1:.1f} s, spectra {t3 - ts:.1f} s, reprocess {t4 - t3:.1f} s, "
          f"total {time.perf_counter() - t0:.1f} s")
    print(f"catalog: {settings.resolved_catalog_url}\nobjects: {settings.resolved_store_root}")
    if args.no_serve:
        print("`dms serve archive` serves this catalog (search, previews, downloads) on "
              f"http://{settings.archive_host}:{settings.archive_port}")
    else:
        _demo_serve(ctx, result.plan, keep_serving=sys.stdin is not None and sys.stdin.isatty())
    return 0
