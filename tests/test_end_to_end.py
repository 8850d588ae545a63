"""The demo observation (and the MIRI LRS example) through the whole system, as deployed: real Celery worker
subprocesses (`dms worker <service>` for ingest, detector1, associations, stage2, stage3,
preview and notifier) on real Redis, PostgreSQL and an S3 server, and the archive API as
`dms serve archive` on a loopback port.

The telemetry goes down the whole imaging chain: `_uncal`, `_rate`, the association
pool and ASNs, `_cal`, the Level-3 mosaic, catalog and segmentation map of the dithered
observation, and the light curve of the time series. A subscriber made through the API
receives one signed `new` CloudEvent per archived product revision, each exactly once; a daily e-mail digest reaches a local SMTP server (`dms notify`);
the API lists the products with their previews; an anonymous download of an
exclusive-access product is refused and the PI's succeeds with the catalog's sha256.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml
from sqlalchemy import select, update

from services.ingest.receive import receive_files
from services.simulator import simulate
from shared.catalog import Artifact, Association, Product, Subscription
from shared.config import Settings
from shared.refdata import deliver as deliver_references
from shared.routing import ROUTES
from shared.runtime import ServiceContext, dispatch_events
from shared.tokens import create_token
from tests.system import WORKERS, System, WebhookReceiver, free_port
from tests.tso_scoring import fit_transit, transit_shape

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "nircam_imaging.yaml"
PROGRAM = "01234"
PI = "ada@example.org"  # pi_user of the demo program
SUBSCRIBER = "sci@example.org"  # anyone may subscribe: metadata and notices are public
OUTSIDER = "mallory@example.org"


def signature_ok(secret: str, body: bytes, header: str | None) -> bool:
    """What a subscriber does (docs/notifications.md)."""
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return header is not None and hmac.compare_digest(expected, header)



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
        "DMS_WEBHOOK_ALLOW": "127.0.0.0/8",  # the subscriber's webhook listens on loopback
        "DMS_ARCHIVE_BASE_URL": f"http://127.0.0.1:{api_port}",
        # where the test's simulation writes its star catalog; stage 3 aligns mosaics to it
        "DMS_ASTROMETRIC_CATALOG_DIR": str(tmp_path / "sim" / "catalogs"),
    }
    settings = Settings(**{k.removeprefix("DMS_").lower(): v for k, v in env_settings.items()})
    from shared.celery_app import CeleryTransport, create_app

    ctx = ServiceContext.from_settings(settings, transport=CeleryTransport(create_app(settings)))
    ctx.catalog.upgrade()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DMS_")} | env_settings
    env["PYTHONPATH"] = str(REPO)
    sut = System(tmp_path, env, ctx, WORKERS, api_port=api_port)
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



def demo_description() -> dict:
    """examples/nircam_imaging.yaml with 2 dither points instead of 4 for the imaging
    observation and 20 integrations for the time series (and its references)."""
    desc = yaml.safe_load(EXAMPLE.read_text())
    imaging, tso = desc["observations"]
    imaging["dither"] = {"pattern": "N-POINT-LINE", "npoints": 2, "size": 2.0}
    tso["nints"] = 20
    return desc


def current_products(ctx: ServiceContext, program: str = PROGRAM) -> dict[str, dict]:
    """Current products of the program: filename -> suffix, level, sha256 and URI of the
    data, artifact kinds, reference context, inputs and data release."""
    out: dict[str, dict] = {}
    with ctx.catalog.session() as s:
        rows = s.execute(
            select(Product, Artifact.kind, Artifact.sha256, Artifact.uri)
            .join(Artifact, Artifact.product_id == Product.id)
            .where(Product.program_id == program, Product.is_current)
        ).all()
        for product, kind, sha, uri in rows:
            entry = out.setdefault(product.filename, {
                "kinds": set(), "context": product.reference_context, "sha256": None, "uri": None,
                "suffix": product.suffix, "level": product.level, "inputs": list(product.inputs),
                "release": product.data_release})
            entry["kinds"].add(kind)
            if kind == "data":
                entry["sha256"], entry["uri"] = sha, uri
    return out


def archived_revisions(ctx: ServiceContext) -> Counter:
    """How many revisions of each file name were archived (each one is announced once)."""
    with ctx.catalog.session() as s:
        return Counter(s.scalars(select(Product.filename).where(Product.program_id == PROGRAM)).all())


PREVIEWED = next(r.suffixes for r in ROUTES if r.task == "preview.make")


def chain_done(sim) -> Callable[[dict[str, dict]], bool]:
    """True once every exposure went through stage 2 and both Level-3 products exist,
    with previews of everything that gets one."""
    stems = [p.stem for p in sim.telemetry_paths]

    def done(products: dict[str, dict]) -> bool:
        calibrated = {f"{stem}_{suffix}.fits" for stem in stems for suffix in ("cal", "calints")}
        if sum(name in products for name in calibrated) < len(stems):
            return False
        level3 = {p["suffix"] for p in products.values() if p["level"] == 3}
        if not {"i2d", "cat", "segm", "phot"} <= level3:
            return False
        return all({"data", "preview", "thumbnail"} <= p["kinds"] for p in products.values()
                   if p["suffix"] in PREVIEWED)

    return done


def test_demo_observation_end_to_end(system, webhook, smtp, tmp_path):
    ctx = system.ctx
    t0 = time.monotonic()

    # the observatory: the demo program (two dither points, a time series), its references
    sim = simulate(demo_description(), tmp_path / "sim")
    assert sim.reference_paths, "the simulator wrote no reference files; detector1 could not calibrate"
    assert sim.catalog_paths and sim.catalog_paths[0].parent == system.catalog_dir
    assert len(sim.telemetry_paths) == 5  # 2 dithers x 2 detectors, and the time series

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
        assert r.json()["confirmed"] is False  # nothing goes to the address before it confirms

        # `dms notify` mails the confirmation link; the subscriber follows it
        notify_env = system.env | {"DMS_SMTP_HOST": "127.0.0.1", "DMS_SMTP_PORT": str(smtp.port),
                                   "DMS_MAIL_FROM": "dms@archive.test"}
        done = subprocess.run([sys.executable, "-m", "services.cli", "notify"], cwd=REPO, env=notify_env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0 and len(smtp.messages) == 1, done.stdout + done.stderr
        [confirmation] = smtp.messages
        assert confirmation["To"] == SUBSCRIBER and "Confirm" in confirmation["Subject"]
        link = re.search(r"(http://\S+/subscriptions/\d+/confirm\?token=\S+)", confirmation.get_content())[1]
        r = api.get(link)
        assert r.status_code == 200 and r.json()["confirmed"] is True, r.text
        smtp.messages.clear()

        # the downlink: plan and telemetry into dms-raw, arrival events to the ingest queue
        received = receive_files(ctx, [sim.plan_path, sim.ephemeris_path, *sim.telemetry_paths])
        assert dispatch_events(ctx.catalog, ctx.transport,
                               event_ids=[r.event_id for r in received if r.event_id]) == len(sim.telemetry_paths)

        # through every stage: detector1, associations, image2, image3 and tso3, previews
        system.wait_until(lambda: chain_done(sim)(current_products(ctx)), 420,
                          "the chain down to the Level-3 mosaic, catalog and light curve",
                          lambda: sorted((n, sorted(p["kinds"])) for n, p in current_products(ctx).items()))
        system.wait_idle()
        products = current_products(ctx)
        by_suffix = Counter(p["suffix"] for p in products.values())
        for stem in (p.stem for p in sim.telemetry_paths):
            assert f"{stem}_uncal.fits" in products and f"{stem}_rate.fits" in products
        assert by_suffix["cal"] == 4 and by_suffix["calints"] == 1 and by_suffix["crf"] == 4, by_suffix
        assert by_suffix["crfints"] == 1 and by_suffix["pool"] >= 1, by_suffix
        assert {p["context"] for p in products.values()
                if p["level"] == 2 and p["suffix"] not in ("asn", "pool", "asn-report")} \
            == {refs.context_name}

        # associations: one image2 per exposure, one tso-image2, the image3 and the tso3
        with ctx.catalog.session() as s:
            emitted = Counter(s.scalars(select(Association.asn_type).where(Association.program_id == PROGRAM,
                                                                         Association.emitted_count > 0)).all())
        assert emitted == Counter({"image2": 4, "tso-image2": 1, "image3": 1, "tso3": 1}), emitted

        # Level 3: made from every member, released when the latest member is
        level3 = {name: p for name, p in products.items() if p["level"] == 3 and p["suffix"] != "asn"}
        mosaic = next(name for name, p in level3.items() if p["suffix"] == "i2d")
        assert mosaic.startswith("jw01234-o001_t001_nircam_"), mosaic
        members = [f"{p.stem}_cal.fits" for p in sim.telemetry_paths if f"{p.stem}_cal.fits" in products]
        assert set(members) <= set(level3[mosaic]["inputs"]), level3[mosaic]["inputs"]
        assert level3[mosaic]["release"] == max(products[m]["release"] for m in members)
        assert any(name.endswith("_cat.ecsv") for name in level3) and any(name.endswith("_phot.ecsv") for name in level3)

        # one signed `new` CloudEvent per archived product revision; a duplicate would come from
        # a task (webhooks are sent by notifier.match), so once no task is left none can come
        # (the association report is a page about the program, not data: never announced)
        revisions = archived_revisions(ctx)
        report = f"jw{PROGRAM}_asn-report.html"
        assert revisions.pop(report) >= 1
        system.wait_until(lambda: set(webhook.subjects()) >= set(revisions), 90,
                          "a webhook delivery for every product", webhook.subjects)
        system.wait_idle()
        assert webhook.subjects() == revisions, "each archived product must reach the webhook exactly once"
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
        done = subprocess.run([sys.executable, "-m", "services.cli", "notify"], cwd=REPO, env=notify_env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        assert len(smtp.messages) == 1, done.stdout + done.stderr
        [message] = smtp.messages
        assert message["To"] == SUBSCRIBER and message["From"] == "dms@archive.test"
        assert "daily digest" in message["Subject"] and "program 01234" in message["Subject"]
        [attachment] = list(message.iter_attachments())
        assert attachment.get_filename().startswith("event_metadata_jwst-program-1234_daily_")
        rows = json.loads(attachment.get_content())
        assert Counter(r["filename"] for r in rows if r["event_type"] == "New") == revisions
        assert len([r for r in rows if r["event_type"] == "First"]) == 1
        # 12 months of exclusive access: nothing public yet (the association report, public at
        # once, is never announced)
        assert [r["filename"] for r in rows if r["event_type"] == "Public"] == []
        assert report not in {r["filename"] for r in rows}

        # the archive API lists the products with their previews
        r = api.get("/products", params={"program": "1234", "pagesize": 1000})
        assert r.status_code == 200, r.text
        listed = r.json()["rows"]
        data_rows = {row["productFilename"]: row for row in listed if row["productType"] != "PREVIEW"}
        assert sorted(data_rows) == sorted(products)
        assert {"UNCAL", "RATE", "CAL", "I2D", "CAT", "PHOT"} <= {
            row["productSubGroupDescription"] for row in data_rows.values()}
        assert all(row["dataRights"] == "EXCLUSIVE_ACCESS" for name, row in data_rows.items() if name != report)
        assert data_rows[report]["dataRights"] == "PUBLIC" and data_rows[report]["productType"] == "INFO"
        assert all(row["sha256"] == products[name]["sha256"] for name, row in data_rows.items())
        previews = {row["productFilename"] for row in listed if row["productType"] == "PREVIEW"}
        assert f"{mosaic.removesuffix('.fits')}_preview.png" in previews

        # exclusive access: anonymous refused, an outsider forbidden, the PI served the bytes
        for name in (f"{sim.telemetry_paths[0].stem}_uncal.fits", mosaic):
            r = api.get(f"/download/{name}")
            assert r.status_code == 401, r.text
            assert "exclusive access" in r.json()["detail"]
            assert api.get(f"/download/{name}", headers=auth[OUTSIDER]).status_code == 403
            r = api.get(f"/download/{name}", headers=auth[PI])
            assert r.status_code == 200, r.text[:300]
            assert hashlib.sha256(r.content).hexdigest() == products[name]["sha256"] == r.headers["X-Checksum-SHA256"]
        r = api.get(f"/previews/{mosaic}", headers=auth[PI])
        assert r.status_code == 200 and r.content.startswith(b"\x89PNG")
        # the association report, anonymously: every association complete, no data in it
        r = api.get("/programs/1234/associations/report")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        assert r.text.count('<section class="association complete"') == sum(emitted.values())

    system.check_alive()
    print(f"end-to-end: {len(products)} products ({sum(revisions.values())} revisions), "
          f"{len(webhook.received())} webhook deliveries, 1 digest in {time.monotonic() - t0:.1f} s")


def _subscribe_to_new(system: System, api: httpx.Client, webhook: WebhookReceiver, program: str, note: str) -> None:
    """Once the archive API answers, a subscriber's webhook subscription to the new
    products of ``program``."""
    system.wait_until(lambda: _answers(api, "/health"), 60, "the archive API to answer /health")
    with system.ctx.catalog.session() as s:
        token = create_token(s, SUBSCRIBER, 1, note)
    r = api.post("/subscriptions", headers={"Authorization": f"Bearer {token}"}, json={
        "name": f"new products of {program}", "channel": "webhook", "target": webhook.url,
        "filters": {"programs": [program], "event_types": ["new"]}})
    assert r.status_code == 201, r.text


def _answers(api: httpx.Client, path: str) -> bool:
    try:
        return api.get(path, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


SLIT_CASES = {
    # example, program, nods, Level-3 product, CAOM instrument, band (um) scored, detector1's
    # products beside the _rate (a near-infrared detector's persistence: _trapsfilled)
    "miri-lrs": ("miri_lrs.yaml", "03457", 2, "jw03457-o001_t001_miri_p750l", "MIRI/SLIT", (5.2, 14.5), ()),
    "nirspec-fs": ("nirspec_fs.yaml", "04521", 3, "jw04521-o001_t001-s000000001_nirspec_clear-prism-s200a1-subs200a1",
                   "NIRSPEC/SLIT", (0.7, 5.1), ("trapsfilled",)),
}


def test_slit_spectra_end_to_end(system, webhook, tmp_path):
    """The slit examples (the MIRI LRS's two nods; NIRSpec's fixed slit S200A1, three nods)
    through the same workers at once: ingest, detector1, the spec2 associations (each nod
    the others' background), stage 2's calwebb_spec2 to ``_cal``, ``_s2d`` and ``_x1d``,
    the spec3 association and stage 3's calwebb_spec3 to the nods' ``_crf`` and the
    target's Level-3 ``_s2d`` and ``_x1d``, previews of the spectra, a subscriber told of
    each, and the archive classifying each observation as a spectrum. The spectra are
    scored against the truth as in tests/test_spec2_lrs.py and tests/test_spec2_nirspec_fs.py
    (median flux within 3 %)."""
    from astropy.io import fits
    from astropy.table import Table

    ctx = system.ctx
    pi = "ada@example.org"
    cases = {}
    for case in sorted(SLIT_CASES):
        example, program, nods, level3, *_ = SLIT_CASES[case]
        desc = yaml.safe_load((REPO / "examples" / example).read_text())
        desc["pi_user"] = pi
        sim = simulate(desc, tmp_path / case / "sim")
        deliver_references(ctx, sim.reference_paths, note=f"simulator references for the {case} end-to-end test")
        stems = [p.stem for p in sim.telemetry_paths]
        assert len(stems) == nods
        cases[case] = (sim, stems)

    def products(program: str) -> dict[str, dict]:
        with ctx.catalog.session() as s:
            rows = s.execute(select(Product.filename, Product.suffix, Artifact.kind, Artifact.sha256)
                             .join(Artifact).where(Product.program_id == program, Product.is_current)).all()
        out: dict[str, dict] = {}
        for name, suffix, kind, sha in rows:
            entry = out.setdefault(name, {"suffix": suffix, "kinds": set(), "sha256": None})
            entry["kinds"].add(kind)
            if kind == "data":
                entry["sha256"] = sha
        return out

    def spectra_of(case: str) -> set[str]:
        level3, stems = SLIT_CASES[case][3], cases[case][1]
        return {f"{stem}_{suffix}.fits" for stem in [*stems, level3] for suffix in ("s2d", "x1d")}

    def spectra_done(case: str) -> bool:
        have = products(SLIT_CASES[case][1])
        return all(name in have and {"data", "preview", "thumbnail"} <= have[name]["kinds"] for name in spectra_of(case))

    with httpx.Client(base_url=system.api, timeout=30) as api:
        system.wait_until(lambda: _answers(api, "/health"), 60, "the archive API to answer /health")
        with ctx.catalog.session() as s:
            token = create_token(s, SUBSCRIBER, 1, "slit end-to-end test")
            pi_token = create_token(s, pi, 1, "slit end-to-end test")
        for case in cases:
            short = str(int(SLIT_CASES[case][1]))
            r = api.post("/subscriptions", headers={"Authorization": f"Bearer {token}"}, json={
                "name": f"new spectra of {short}", "channel": "webhook", "target": webhook.url,
                "filters": {"programs": [short], "event_types": ["new"]}})
            assert r.status_code == 201, r.text
        for sim, _ in cases.values():
            received = receive_files(ctx, [sim.plan_path, *sim.telemetry_paths])
            dispatch_events(ctx.catalog, ctx.transport, event_ids=[r.event_id for r in received if r.event_id])
        system.wait_until(lambda: all(spectra_done(case) for case in cases), 420,
                          "the spectra of every nod and of each target, with their previews",
                          lambda: {c: sorted((n, sorted(p["kinds"])) for n, p in products(SLIT_CASES[c][1]).items())
                                   for c in cases})
        system.wait_idle()
        # the subscriber hears of every spectrum
        every = set().union(*(spectra_of(case) for case in cases))
        system.wait_until(lambda: every <= set(webhook.subjects()), 90, "webhook deliveries of the spectra",
                          webhook.subjects)
        for case, (_, stems) in cases.items():
            _, program, nods, level3, instrument_name, band, detector1_extras = SLIT_CASES[case]
            short = str(int(program))
            have = products(program)
            # (the fine-guiding products of each exposure too, as for imaging)
            assert Counter(p["suffix"] for p in have.values() if p["suffix"] not in ("asn", "pool", "asn-report")) == \
                Counter({"uncal": nods, "rate": nods, "cal": nods, "crf": nods, "s2d": nods + 1, "x1d": nods + 1,
                         "gs-fg": nods, "gs-fg-cal": nods, **dict.fromkeys(detector1_extras, nods)}), case
            with ctx.catalog.session() as s:
                emitted = Counter(s.scalars(select(Association.asn_type).where(Association.program_id == program,
                                                                             Association.emitted_count > 0)).all())
            assert emitted == Counter({"spec2": nods, "spec3": 1}), (case, emitted)
            # the archive: a spectrum observation, the spectra listed with their previews, served to the PI
            r = api.get("/observations", params={"program": short})
            assert r.status_code == 200, r.text
            [row] = r.json()["rows"]
            assert row["instrument_name"] == instrument_name and row["dataproduct_type"] == "spectrum", row
            r = api.get("/products", params={"program": short, "pagesize": 1000})
            listed = r.json()["rows"]
            assert {"X1D", "S2D"} <= {row["productSubGroupDescription"] for row in listed}
            # the Minimum Recommended Products of the observation: the target's Level-3 spectra
            obsid = api.get(f"/observations/jw{program}001").json()["obsid"]
            r = api.get(f"/observations/{obsid}/products", params={"mrp_only": "true"})
            assert r.status_code == 200, r.text
            mrp = {row["productFilename"] for row in r.json()["rows"]}
            assert {f"{level3}_s2d.fits", f"{level3}_x1d.fits"} <= mrp, mrp
            previews = {row["productFilename"] for row in listed if row["productType"] == "PREVIEW"}
            assert {f"{stem}_x1d_preview.png" for stem in [*stems, level3]} <= previews
            for stem in stems:
                name = f"{stem}_x1d.fits"
                r = api.get(f"/download/{name}", headers={"Authorization": f"Bearer {pi_token}"})
                assert r.status_code == 200 and hashlib.sha256(r.content).hexdigest() == have[name]["sha256"]
                path = tmp_path / case / name
                path.write_bytes(r.content)
                x = fits.getdata(path, "EXTRACT1D")
                truth = Table.read(tmp_path / case / "sim" / "truth" / f"{stem}_truth_spectrum.ecsv")
                order = np.argsort(truth["wavelength"])
                expected = np.interp(x["WAVELENGTH"], np.asarray(truth["wavelength"])[order],
                                     np.asarray(truth["observed_jy"])[order])
                keep = ((x["DQ"] & 1) == 0) & np.isfinite(x["FLUX"]) & (x["WAVELENGTH"] > band[0]) & \
                    (x["WAVELENGTH"] < band[1])
                ratio = float(np.median(x["FLUX"][keep] / expected[keep]))
                assert abs(ratio - 1) < 0.03, (name, ratio)
    system.check_alive()


def test_mrs_end_to_end(system, webhook, tmp_path):
    """``examples/miri_mrs.yaml`` on MIRIFUSHORT (channels 1 and 2, band SHORT, the 4-POINT
    dither optimized for a point source; the target at 30 mJy) through the workers: ingest,
    detector1, the spec2 associations (Asn_Lv2Spec, one per exposure), stage 2's
    calwebb_spec2 to each exposure's ``_cal``, ``_s3d`` and ``_x1d``, the spec3 association
    (Asn_Lv3MIRMRS) and stage 3's calwebb_spec3 to each exposure's ``_crf`` and a cube and
    spectrum per channel (``_ch1-short_s3d``, ``_ch2-short_s3d``), previews of the cubes
    and the spectra, a subscriber told of each, the archive classifying the observation as
    a cube (MIRI/IFU) and serving the spectra, scored against the truth (median flux within
    3 %)."""
    from astropy.io import fits
    from astropy.table import Table

    ctx = system.ctx
    pi = "ada@example.org"
    desc = yaml.safe_load((REPO / "examples" / "miri_mrs.yaml").read_text())
    desc["pi_user"] = pi
    desc["observations"][0]["detectors"] = ["MIRIFUSHORT"]
    spectrum = desc["targets"][0]["spectrum"]
    spectrum["flux_jy"] = 0.03
    spectrum["lines"] = [line for line in spectrum["lines"] if line["wavelength"] < 9.0]  # channels 1 and 2's
    program = f"{desc['program']:05d}"
    sim = simulate(desc, tmp_path / "sim")
    deliver_references(ctx, sim.reference_paths, note="simulator references for the MRS end-to-end test")
    stems = [p.stem for p in sim.telemetry_paths]
    assert len(stems) == 4
    level3 = f"jw{program}-o001_t001_miri"
    wanted = {f"{stem}_{suffix}.fits" for stem in stems for suffix in ("cal", "s3d", "x1d")}
    wanted |= {f"{level3}_ch{c}-short_{suffix}.fits" for c in (1, 2) for suffix in ("s3d", "x1d")}

    def done() -> bool:
        have = current_products(ctx, program)
        return all(name in have and {"data", "preview", "thumbnail"} <= have[name]["kinds"] for name in wanted)

    with httpx.Client(base_url=system.api, timeout=30) as api:
        system.wait_until(lambda: _answers(api, "/health"), 60, "the archive API to answer /health")
        with ctx.catalog.session() as s:
            token = create_token(s, SUBSCRIBER, 1, "MRS end-to-end test")
            pi_token = create_token(s, pi, 1, "MRS end-to-end test")
        r = api.post("/subscriptions", headers={"Authorization": f"Bearer {token}"}, json={
            "name": "new MRS products", "channel": "webhook", "target": webhook.url,
            "filters": {"programs": [str(int(program))], "event_types": ["new"]}})
        assert r.status_code == 201, r.text
        received = receive_files(ctx, [sim.plan_path, *sim.telemetry_paths])
        dispatch_events(ctx.catalog, ctx.transport, event_ids=[r.event_id for r in received if r.event_id])
        system.wait_until(done, 600, "every exposure's _cal, _s3d and _x1d and the channels' with their previews",
                          lambda: sorted((n, sorted(p["kinds"])) for n, p in current_products(ctx, program).items()))
        system.wait_idle()
        system.wait_until(lambda: {n for n in wanted if not n.endswith("_cal.fits")} <= set(webhook.subjects()), 90,
                          "webhook deliveries of the cubes and spectra", webhook.subjects)
        have = current_products(ctx, program)
        assert Counter(p["suffix"] for p in have.values() if p["suffix"] not in ("asn", "pool", "asn-report")) == \
            Counter({"uncal": 4, "rate": 4, "cal": 4, "crf": 4, "s3d": 6, "x1d": 6, "gs-fg": 4, "gs-fg-cal": 4})
        with ctx.catalog.session() as s:
            emitted = Counter(s.scalars(select(Association.asn_type).where(Association.program_id == program,
                                                                         Association.emitted_count > 0)).all())
        assert emitted == Counter({"spec2": 4, "spec3": 1}), emitted
        r = api.get("/observations", params={"program": str(int(program))})
        assert r.status_code == 200, r.text
        [row] = r.json()["rows"]
        assert row["instrument_name"] == "MIRI/IFU" and row["dataproduct_type"] == "cube", row
        listed = api.get("/products", params={"program": str(int(program)), "pagesize": 1000}).json()["rows"]
        previews = {row["productFilename"] for row in listed if row["productType"] == "PREVIEW"}
        assert {f"{stem}_{suffix}_preview.png" for stem in stems for suffix in ("s3d", "x1d")} <= previews
        assert {f"{level3}_ch{c}-short_{suffix}_preview.png" for c in (1, 2) for suffix in ("s3d", "x1d")} <= previews
        for stem, name in [(stem, f"{stem}_x1d.fits") for stem in stems] + [(stems[0], f"{level3}_ch1-short_x1d.fits")]:
            r = api.get(f"/download/{name}", headers={"Authorization": f"Bearer {pi_token}"})
            assert r.status_code == 200 and hashlib.sha256(r.content).hexdigest() == have[name]["sha256"]
            path = tmp_path / name
            path.write_bytes(r.content)
            x = fits.getdata(path, "EXTRACT1D")
            truth = Table.read(tmp_path / "sim" / "truth" / f"{stem}_truth_spectrum.ecsv")
            t = truth[truth["channel"] == 1]
            order = np.argsort(t["wavelength"])
            wl_t = np.asarray(t["wavelength"])[order]
            expected = np.interp(x["WAVELENGTH"], wl_t, np.asarray(t["observed_jy"])[order])
            keep = (((x["DQ"] & 1) == 0) & np.isfinite(x["FLUX"]) & (x["WAVELENGTH"] > wl_t[0] + 0.02)
                    & (x["WAVELENGTH"] < wl_t[-1] - 0.02))
            ratio = float(np.median(x["FLUX"][keep] / expected[keep]))
            assert abs(ratio - 1) < 0.03, (name, ratio)
    system.check_alive()


def test_nirspec_mos_end_to_end(system, webhook, tmp_path):
    """``examples/nirspec_mos.yaml`` (NIRSpec MOS, the prism, three nods of three-shutter
    slitlets, here five; its MSA metadata file delivered with the plan) through the
    same workers: ingest, detector1, the spec2 associations (Asn_Lv2NRSMSA), stage 2's
    calwebb_spec2 to a ``_cal``, ``_s2d`` and ``_x1d`` with a slit or spectrum per slitlet,
    the spec3 association (Asn_Lv3SpectralSource) and stage 3's calwebb_spec3 to each nod's
    ``_crf`` and a Level-3 ``_s2d`` and ``_x1d`` per source, previews of them, a subscriber
    told of each Level-3 spectrum, and the archive listing them as the observation's
    Minimum Recommended Products. Each source's Level-3 spectrum is scored against its
    truth: median flux within 3 % for every source brighter than 50 uJy."""
    from astropy.io import fits
    from astropy.table import Table

    from shared.datamodels.msa import read_msa_metadata
    from shared.spectra.msa import open_slitlets

    ctx = system.ctx
    desc = yaml.safe_load((REPO / "examples" / "nirspec_mos.yaml").read_text())
    desc["observations"][0]["msa_sources"] = 5  # (the example's eight make the same chain, slower)
    sim = simulate(desc, tmp_path / "sim")
    deliver_references(ctx, sim.reference_paths, note="simulator references for the MOS end-to-end test")
    stems = [p.stem for p in sim.telemetry_paths]
    assert len(stems) == 3 and len(sim.msa_paths) == 1
    msa = read_msa_metadata(sim.msa_paths[0])
    sources = sorted({s.source_id for s in open_slitlets(msa.shutter_info, msa.source_info, 1, 1)
                      if s.quadrant in (1, 3)})  # those NRS1 sees
    assert len(sources) >= 4
    level3 = [f"jw01358-o001_s{sid:09d}_nirspec_clear-prism" for sid in sources]
    with httpx.Client(base_url=system.api, timeout=30) as api:
        _subscribe_to_new(system, api, webhook, "1358", "MOS end-to-end test")

        received = receive_files(ctx, [sim.plan_path, *sim.msa_paths, *sim.telemetry_paths])
        dispatch_events(ctx.catalog, ctx.transport, event_ids=[r.event_id for r in received if r.event_id])
        wanted = [f"{stem}_{suffix}.fits" for stem in [*stems, *level3] for suffix in ("s2d", "x1d")]

        def spectra_done() -> bool:
            have = current_products(ctx, "01358")
            return all(name in have and {"data", "preview", "thumbnail"} <= have[name]["kinds"] for name in wanted)

        system.wait_until(spectra_done, 420, "the spectra of every nod and of every source, with their previews",
                          lambda: sorted((n, sorted(p["kinds"])) for n, p in current_products(ctx, "01358").items()))
        system.wait_idle()
        have = current_products(ctx, "01358")
        counts = Counter(p["suffix"] for p in have.values() if p["suffix"] not in ("asn", "pool", "asn-report"))
        assert counts["cal"] == counts["crf"] == 3, counts
        assert counts["s2d"] == counts["x1d"] == 3 + len(sources), counts
        with ctx.catalog.session() as s:
            emitted = Counter(s.scalars(select(Association.asn_type).where(Association.program_id == "01358",
                                                                         Association.emitted_count > 0)).all())
        assert emitted == Counter({"spec2": 3, "spec3": 1}), emitted
        level3_spectra = {f"{stem}_{suffix}.fits" for stem in level3 for suffix in ("s2d", "x1d")}
        system.wait_until(lambda: level3_spectra <= set(webhook.subjects()), 90,
                          "webhook deliveries of the Level-3 spectra", webhook.subjects)
        r = api.get("/observations", params={"program": "1358"})
        [row] = r.json()["rows"]
        assert row["instrument_name"] == "NIRSPEC/MSA" and row["dataproduct_type"] == "spectrum", row
        obsid = api.get("/observations/jw01358001").json()["obsid"]
        r = api.get(f"/observations/{obsid}/products", params={"mrp_only": "true"})
        assert r.status_code == 200, r.text
        mrp = {row["productFilename"] for row in r.json()["rows"]}
        assert level3_spectra <= mrp, sorted(level3_spectra - mrp)
        scored = []
        for sid, stem in zip(sources, level3, strict=True):
            path = tmp_path / f"{stem}_x1d.fits"
            ctx.store.download_uri(have[path.name]["uri"], path)
            x = fits.getdata(path, "EXTRACT1D")
            truth = Table.read(tmp_path / "sim" / "truth" / f"{stems[0]}_truth_spectrum_s{sid:05d}.ecsv")
            order = np.argsort(truth["wavelength"])
            expected = np.interp(x["WAVELENGTH"], np.asarray(truth["wavelength"])[order],
                                 np.asarray(truth["observed_jy"])[order])
            keep = ((x["DQ"] & 1) == 0) & np.isfinite(x["FLUX"]) & (x["WAVELENGTH"] > 0.7) & (x["WAVELENGTH"] < 5.1)
            if np.median(expected[keep]) < 5.0e-5:
                continue
            ratio = float(np.median(x["FLUX"][keep] / expected[keep]))
            scored.append((sid, round(ratio, 4)))
            assert abs(ratio - 1) < 0.03, (path.name, ratio)
        print(f"MOS end-to-end: Level-3 median flux / truth per source {scored}")
        assert len(scored) >= 2
    system.check_alive()


def test_wfss_end_to_end(system, webhook, tmp_path):
    """``examples/niriss_wfss.yaml``'s first observation (NIRISS wide-field slitless
    spectroscopy of a star field: GR150R behind F150W, a direct image and two dithered
    dispersed exposures; the example's GR150C observation makes the same chain) through the
    same workers: ingest, detector1, the direct images' image2 and
    image3 (to the source catalog), the spec2 associations (Asn_Lv2WFSSNIS, waiting for
    the catalog they name), stage 2's calwebb_spec2 to each dispersed exposure's ``_cal``
    and ``_x1d`` (a spectrum per catalog source), the spec3 associations
    (Asn_Lv3WFSSNIS) and stage 3 to each observation's Level-3 ``_x1d`` and ``_c1d``;
    previews of the spectra, a subscriber told of each Level-3 product, the observations
    listed by the archive as a NIRISS/WFSS spectrum with the Level-3 spectra among its
    Minimum Recommended Products. The bright sources' combined spectra are scored against
    the truth: median flux within 5 % (tests/test_wfss_accuracy.py scores them closely)."""
    from astropy.io import fits

    from tests.wfss_scoring import exposure_scores

    ctx = system.ctx
    desc = yaml.safe_load((REPO / "examples" / "niriss_wfss.yaml").read_text())
    desc["observations"] = desc["observations"][:1]
    sim = simulate(desc, tmp_path / "sim")
    deliver_references(ctx, sim.reference_paths, note="simulator references for the WFSS end-to-end test")
    dispersed = [p.stem for p in sim.telemetry_paths if "_01102_" in p.stem]
    assert len(dispersed) == 2 and len(sim.telemetry_paths) == 3
    level3 = ["jw02727-o001_t001_niriss_f150w-gr150r"]
    with httpx.Client(base_url=system.api, timeout=30) as api:
        _subscribe_to_new(system, api, webhook, "2727", "WFSS end-to-end test")
        received = receive_files(ctx, [sim.plan_path, *sim.telemetry_paths])
        dispatch_events(ctx.catalog, ctx.transport, event_ids=[r.event_id for r in received if r.event_id])
        wanted = [*(f"{stem}_x1d.fits" for stem in dispersed),
                  *(f"{product}_{suffix}.fits" for product in level3 for suffix in ("x1d", "c1d"))]

        def spectra_done() -> bool:
            have = current_products(ctx, "02727")
            return all(name in have and {"data", "preview", "thumbnail"} <= have[name]["kinds"] for name in wanted)

        system.wait_until(spectra_done, 420, "every dispersed exposure's and observation's spectra, with previews",
                          lambda: sorted((n, sorted(p["kinds"])) for n, p in current_products(ctx, "02727").items()))
        system.wait_idle()
        have = current_products(ctx, "02727")
        counts = Counter(p["suffix"] for p in have.values())
        assert counts["cat"] == counts["segm"] == 1 and counts["c1d"] == 1, counts
        assert counts["x1d"] == 2 + 1 and counts["cal"] == 3, counts
        with ctx.catalog.session() as s:
            emitted = Counter(s.scalars(select(Association.asn_type).where(Association.program_id == "02727",
                                                                         Association.emitted_count > 0)).all())
        assert emitted == Counter({"image2": 1, "image3": 1, "spec2": 2, "spec3": 1}), emitted
        notified = {f"{product}_{suffix}.fits" for product in level3 for suffix in ("x1d", "c1d")}
        system.wait_until(lambda: notified <= set(webhook.subjects()), 90,
                          "webhook deliveries of the Level-3 spectra", webhook.subjects)
        rows = api.get("/observations", params={"program": "2727"}).json()["rows"]
        assert [(r["instrument_name"], r["dataproduct_type"]) for r in rows] == [("NIRISS/WFSS", "spectrum")], rows
        obsid = api.get("/observations/jw02727001").json()["obsid"]
        r = api.get(f"/observations/{obsid}/products", params={"mrp_only": "true"})
        assert r.status_code == 200, r.text
        mrp = {row["productFilename"] for row in r.json()["rows"]}
        assert {f"{level3[0]}_x1d.fits", f"{level3[0]}_c1d.fits"} <= mrp, sorted(mrp)

        out = tmp_path / "products"
        out.mkdir()
        names = [n for n in have if n.endswith(("_x1d.fits", "_c1d.fits"))]
        for name in names:
            ctx.store.download_uri(have[name]["uri"], out / name)
        scores = exposure_scores(out, names, tmp_path / "sim" / "truth")
        bright = {(stem[:13], s.source_id): s for stem, sources in scores.items() for s in sources if s.scored}
        checked = []
        for product in level3:
            table = fits.getdata(out / f"{product}_c1d.fits", "COMBINE1D")
            obs = f"jw02727{product[9:12]}001"
            for row in table:
                s = bright.get((obs, int(row["SOURCE_ID"])))
                if s is None:
                    continue
                n = int(row["N_ALONGDISP"])
                wl, flux = np.asarray(row["WAVELENGTH"][:n]), np.asarray(row["FLUX"][:n])
                truth = np.interp(wl, s.wavelength[s.clean], s.truth[s.clean], left=np.nan, right=np.nan)
                ok = np.isfinite(truth) & np.isfinite(flux)
                checked.append((product, int(row["SOURCE_ID"]), round(float(np.median(flux[ok] / truth[ok])), 4)))
        print(f"WFSS end-to-end: Level-3 combined flux / truth of the bright sources {checked}")
        assert len(checked) >= 2 and all(abs(ratio - 1) < 0.05 for *_, ratio in checked), checked
    system.check_alive()


#: The spectroscopic time series run end to end: (example, its Level-3 product, the
#: associations it makes, the detector of its spectra). The MIRI LRS slitless takes the
#: LRS's own Level-2 rule (Asn_MIRLRSTAConfirm, a spec2), NIRSpec's bright objects, NIRISS
#: SOSS and NIRCam's grism tso-spec2 (Asn_Lv2SpecTSO); NIRCam's short-wave imaging beside
#: its grism a tso-image2 and a tso3 of its own (its ``_phot``, :data:`TSO_PHOT`).
TSO_SPECTRA = {
    "miri_lrs_tso": ("jw04520-o001_t001_miri_p750l-slitlessprism", {"spec2": 1, "tso3": 1}, "mirimage"),
    "nirspec_bots": ("jw04522-o001_t001_nirspec_f290lp-g395m-s1600a1-sub2048", {"tso-spec2": 1, "tso3": 1}, "nrs1"),
    "niriss_soss": ("jw04523-o001_t001_niriss_clear-gr700xd-substrip256", {"tso-spec2": 1, "tso3": 1}, "nis"),
    "nircam_grism_tso": ("jw04610-o001_t001_nircam_f444w-grismr-subgrism64",
                         {"tso-spec2": 1, "tso-image2": 1, "tso3": 2}, "nrcalong"),
}
TSO_PHOT = {"nircam_grism_tso": ("jw04610-o001_t001_nircam_f212n-wlp8-subgrism64_phot.ecsv", "nrca1")}


def test_time_series_spectroscopy_end_to_end(system, webhook, tmp_path):
    """``examples/miri_lrs_tso.yaml`` (MIRI LRS slitless, a transit across 60 integrations),
    ``examples/nirspec_bots.yaml`` (NIRSpec's S1600A1 with G395M, 50 integrations),
    ``examples/niriss_soss.yaml`` (NIRISS SOSS, two orders, 30 integrations) and
    ``examples/nircam_grism_tso.yaml`` (NIRCam's grism, 30 integrations, with its short-wave
    imaging's ``_phot``) through the
    same workers at once: ingest, detector1 (``_rateints``), the Level-2 association,
    stage 2's calwebb_spec2 to the ``_calints`` and ``_x1dints``, the tso3 association and
    stage 3's calwebb_tso3 to the ``_crfints``, the Level-3 ``_x1dints`` and the ``_whtlt``
    light curve; for each, previews (a waterfall of the spectra, the light curve), a
    subscriber told of each product, the observation a ``timeseries`` in the archive, and
    the light curve's transit depth (SOSS: order 1's; NIRCam's short wave too) within 3 %
    of the truth (tests/test_tso_spectra.py, tests/test_tso_spectra_bots.py,
    tests/test_tso_spectra_soss.py and tests/test_tso_spectra_grism.py score them closely,
    with the exposures in segments)."""
    from astropy.table import Table

    ctx = system.ctx
    series = {}
    for example in sorted(TSO_SPECTRA):
        desc = yaml.safe_load((REPO / "examples" / f"{example}.yaml").read_text())
        sim = simulate(desc, tmp_path / example / "sim")
        deliver_references(ctx, sim.reference_paths, note=f"simulator references for the TSO end-to-end test ({example})")
        level3, _, det = TSO_SPECTRA[example]
        (stem,) = [p.stem for p in sim.telemetry_paths if p.stem.endswith(f"_{det}")]
        phot = [TSO_PHOT[example][0]] if example in TSO_PHOT else []
        series[example] = (desc, f"{desc['program']:05d}", sim, stem,
                           [f"{stem}_x1dints.fits", f"{level3}_x1dints.fits", f"{level3}_whtlt.ecsv", *phot])

    def products(program: str) -> dict[str, set]:
        with ctx.catalog.session() as s:
            rows = s.execute(select(Product.filename, Artifact.kind).join(Artifact)
                             .where(Product.program_id == program, Product.is_current)).all()
        out: dict[str, set] = {}
        for name, kind in rows:
            out.setdefault(name, set()).add(kind)
        return out

    def done(program: str, wanted: list[str]) -> bool:
        have = products(program)
        return all({"data", "preview", "thumbnail"} <= have.get(n, set()) for n in wanted)

    with httpx.Client(base_url=system.api, timeout=30) as api:
        for desc, *_ in series.values():
            _subscribe_to_new(system, api, webhook, str(desc["program"]), "TSO end-to-end test")
        for _, _, sim, _, _ in series.values():
            received = receive_files(ctx, [sim.plan_path, sim.ephemeris_path, *sim.telemetry_paths])
            dispatch_events(ctx.catalog, ctx.transport, event_ids=[r.event_id for r in received if r.event_id])
        system.wait_until(lambda: all(done(program, wanted) for _, program, _, _, wanted in series.values()), 420,
                          "each time series' spectra and light curve, with their previews",
                          lambda: {e: sorted((n, sorted(k)) for n, k in products(p).items())
                                   for e, (_, p, _, _, _) in series.items()})
        system.wait_idle()
        everything = [n for *_, wanted in series.values() for n in wanted]
        system.wait_until(lambda: set(everything) <= set(webhook.subjects()), 90, "webhook deliveries of the spectra",
                          webhook.subjects)
        for example, (desc, program, _sim, stem, _wanted) in series.items():
            level3, asn_types, _ = TSO_SPECTRA[example]
            have = set(products(program))
            made = {f"{stem}_{s}.fits" for s in ("uncal", "rateints", "calints", "x1dints")} | \
                {f"{stem}_o001_crfints.fits", f"{level3}_x1dints.fits", f"{level3}_whtlt.ecsv"}
            assert made <= have, (example, sorted(have))
            with ctx.catalog.session() as s:
                emitted = Counter(s.scalars(select(Association.asn_type).where(Association.program_id == program,
                                                                             Association.emitted_count > 0)).all())
            assert emitted == Counter(asn_types), (example, emitted)
            r = api.get("/products", params={"program": str(desc["program"]), "pagesize": 1000})
            previews = {row["productFilename"] for row in r.json()["rows"] if row["productType"] == "PREVIEW"}
            assert {f"{level3}_x1dints_preview.png", f"{level3}_whtlt_preview.png"} <= previews, (example, previews)
            if example in TSO_PHOT:
                assert TSO_PHOT[example][0].replace(".ecsv", "_preview.png") in previews, (example, previews)
            # the archive types the observation as MAST does a time series
            r = api.get("/observations", params={"program": str(desc["program"])})
            assert {row["dataproduct_type"] for row in r.json()["rows"]} == {"timeseries"}, (example, r.json())
            [whtlt_uri] = [u for n, u in _data_uris(ctx, program).items() if n == f"{level3}_whtlt.ecsv"]
            ctx.store.download_uri(whtlt_uri, tmp_path / example / "whtlt.ecsv")
            whtlt = Table.read(tmp_path / example / "whtlt.ecsv")
            # the white light, or with several orders the first order's (whitelight_flux_order_1)
            flux = np.asarray(whtlt[[c for c in whtlt.colnames if c.startswith("whitelight_flux")][0]].value)
            truth_dir = tmp_path / example / "sim" / "truth"
            truth = Table.read(truth_dir / f"{stem}_truth_lightcurve.ecsv")
            shape = (1.0 - np.asarray(truth["relative_flux"])) / truth.meta["transit"]["depth"]
            out, full = shape < 1e-6, shape > 0.999  # out of transit, at full depth
            depth = 1.0 - float(np.mean(flux[full]) / np.mean(flux[out]))
            expected = Table.read(truth_dir / f"{stem}_truth_transmission.ecsv").meta["white_light_depth_fnu"]
            print(f"{example}: light-curve depth {depth:.5f}, truth {expected:.5f}")
            assert abs(depth / expected - 1) < 0.03, (example, depth, expected)
            if example in TSO_PHOT:  # the imaging beside the spectra: its own light curve
                name, det = TSO_PHOT[example]
                [phot_uri] = [u for n, u in _data_uris(ctx, program).items() if n == name]
                ctx.store.download_uri(phot_uri, tmp_path / example / name)
                phot = Table.read(tmp_path / example / name)
                truth = Table.read(truth_dir / f"{stem.rsplit('_', 1)[0]}_{det}_truth_lightcurve.ecsv")
                depth, error, _ = fit_transit(np.asarray(phot["net_aperture_sum"].value),
                                              np.asarray(phot["net_aperture_sum_err"].value), transit_shape(truth))
                expected = truth.meta["transit"]["depth"]
                print(f"{example}: short-wave light-curve depth {depth:.5f} +- {error:.5f}, truth {expected:.5f}")
                assert abs(depth - expected) < 3 * error, (example, depth, error, expected)
    system.check_alive()


def _data_uris(ctx: ServiceContext, program: str) -> dict[str, str]:
    with ctx.catalog.session() as s:
        return dict(s.execute(select(Product.filename, Artifact.uri).join(Artifact).where(
            Product.program_id == program, Product.is_current, Artifact.kind == "data")).all())
