"""The archive API over a real catalog: two tiny programs simulated and ingested in-process
(NIRCam, exclusive for 12 months, with a PI user; NIRISS, public), plus later-stage
products registered on top (rate, cal, a Level-3 association, i2d in two revisions, cat,
previews). Every request goes through the FastAPI application; one test also serves it
with uvicorn on a loopback port."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import socket
import subprocess
import sys
import tarfile
import threading
import time
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import select

from services.archive.app import create_app
from services.ingest.receive import receive_files
from services.ingest.task import handle_telemetry
from services.registry import embedded_context
from services.simulator import simulate
from shared.catalog import Artifact, Delivery, DeliveryAttempt, EventRecord, Observation, Product
from shared.catalog.queries import next_revision, register_product
from shared.config import Settings
from shared.instruments import exposure_timing, subarray
from shared.naming import object_key
from shared.runtime import ServiceContext, dispatch_events, run_handler
from shared.tokens import create_token, issue_token, list_tokens, revoke_token, verify_token
from tests.conftest import empty_catalog

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

A, B = "01234", "02345"  # exclusive NIRCam program, public NIRISS program
PI, ADA, MALLORY = "pi@example.org", "ada@example.org", "mallory@example.org"
TARGET_A = (53.1625, -27.7914)
ASN = "jw01234-o001_20250301t130000_image3_00001_asn.json"
I2D = "jw01234-o001_t001_nircam_clear-f200w_i2d.fits"
CAT = "jw01234-o001_t001_nircam_clear-f200w_cat.ecsv"
PNG = "jw01234-o001_t001_nircam_clear-f200w_i2d.png"
JPG = "jw01234-o001_t001_nircam_clear-f200w_i2d_thumb.jpg"


@dataclass
class Archive:
    settings: Settings
    client: TestClient
    ctx: object
    tokens: dict[str, str] = field(default_factory=dict)
    uncal_a: list[str] = field(default_factory=list)
    uncal_b: str = ""
    cal_a: list[str] = field(default_factory=list)
    guide_a: list[str] = field(default_factory=list)  # the fine-guide products of program A's exposures
    guide_b: list[str] = field(default_factory=list)

    def auth(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user]}"}

    def sha256(self, filename: str, revision: int | None = None) -> str:
        with self.ctx.catalog.session() as s:
            q = select(Artifact.sha256).join(Product).where(Product.filename == filename, Artifact.kind == "data")
            q = q.where(Product.revision == revision) if revision else q.where(Product.is_current)
            return s.scalar(q)


def _description(example: str, **changes) -> dict:
    desc = yaml.safe_load((EXAMPLES / example).read_text())
    desc["simulation"]["write_references"] = False
    desc["observations"] = desc["observations"][:1]  # the imaging observation (the demo adds a TSO one)
    for obs in desc["observations"]:
        obs.update(changes.pop("observation", {}))
    desc.update(changes)
    return desc


def _add_product(ctx, program: str, obs_number: int, filename: str, suffix: str, level: int,
                 inputs: list[str], product_type: str = "SCIENCE", content: bytes | None = None,
                 content_type: str = "application/fits") -> Product:
    data = content or f"{filename} made from {inputs}".encode()
    sha = hashlib.sha256(data).hexdigest()
    with ctx.catalog.session() as s:
        rev = next_revision(s, filename, sha).revision
    stored = ctx.store.put_bytes("dms-archive", object_key(program, obs_number, rev, filename), data, content_type)
    with ctx.catalog.session() as s:
        obs = s.scalar(select(Observation).where(Observation.program_id == program, Observation.number == obs_number))
        product, _ = register_product(
            s, stored=stored, filename=filename, suffix=suffix, level=level, revision=rev, program_id=program,
            observation_id=obs.id, exposure_id=None, archived_at=datetime.now(UTC),
            eap_months=obs.program.eap_months, software_version="0.2.0", inputs=inputs,
            reference_context="jwst_0001.pmap", product_type=product_type,
        )
        return product


def _add_preview(ctx, filename: str, kind: str, name: str, data: bytes, content_type: str) -> None:
    stored = ctx.store.put_bytes("dms-previews", object_key(A, 1, 2, name), data, content_type)
    with ctx.catalog.session() as s:
        product = s.scalar(select(Product).where(Product.filename == filename, Product.is_current))
        s.add(Artifact(product_id=product.id, kind=kind, uri=stored.uri, sha256=stored.sha256,
                       size=stored.size, content_type=content_type))


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def archive(request, tmp_path_factory) -> Archive:
    tmp = tmp_path_factory.mktemp("archive")
    catalog_url = None
    if request.param == "postgresql":
        catalog_url = empty_catalog(request.getfixturevalue("pg_server_url"))
    settings = Settings(var_dir=tmp / "var", catalog_url=catalog_url, webhook_allow="192.0.2.0/24",
                        archive_base_url="https://archive.example.org/api", _env_file=None)
    ctx, inline = embedded_context(settings, services=["ingest"])  # later stages registered below

    sim_a = simulate(_description("nircam_imaging.yaml",
                                  observation={"dither": {"pattern": "N-POINT-LINE", "npoints": 2, "size": 2.0}}),
                     tmp / "sim_a")
    plan = json.loads(sim_a.plan_path.read_text())
    plan["pi_user"] = PI
    plan["authorized_users"] = [ADA]
    planned = dict(plan["observations"][0], number=2)  # an observation with no data yet
    plan["observations"].append(planned)
    sim_a.plan_path.write_text(json.dumps(plan))
    sim_b = simulate(_description("niriss_imaging.yaml", eap_months=0, eap_waiver="public at once", observation={"dither": {"pattern": "NONE"}}),
                     tmp / "sim_b")
    junk = tmp / "noise.ccsds"
    junk.write_bytes(b"\xff" * 300)
    paths = [sim_a.plan_path, *sim_a.telemetry_paths, sim_b.plan_path, *sim_b.telemetry_paths, junk]
    received = receive_files(ctx, paths)
    dispatch_events(ctx.catalog, inline, event_ids=[r.event_id for r in received if r.event_id])
    assert all(o.status == "ok" for _, o in inline.run_until_idle())
    run_handler("ingest.telemetry", handle_telemetry, {"nonsense": True}, ctx)  # one dead letter

    with ctx.catalog.session() as s:
        # the _uncal files (each exposure's telemetry also made its fine-guide gs-fg product)
        uncal_a = sorted(s.scalars(select(Product.filename).where(Product.program_id == A, Product.suffix == "uncal")))
        [uncal_b] = s.scalars(select(Product.filename).where(Product.program_id == B, Product.suffix == "uncal")).all()
        guide_a, guide_b = (sorted(s.scalars(select(Product.filename).where(Product.program_id == p,
                                                                             Product.suffix == "gs-fg")))
                            for p in (A, B))
    assert len(guide_a) == 2 and len(guide_b) == 1  # one per exposure, whatever its detectors
    assert len(uncal_a) == 4
    cals = []
    for uncal in uncal_a:
        rate = uncal.replace("_uncal", "_rate")
        cal = uncal.replace("_uncal", "_cal")
        _add_product(ctx, A, 1, rate, "rate", 2, [uncal])
        _add_product(ctx, A, 1, cal, "cal", 2, [rate])
        cals.append(cal)
    _add_product(ctx, A, 1, ASN, "asn", 3, cals, product_type="AUXILIARY", content_type="application/json")
    _add_product(ctx, A, 1, I2D, "i2d", 3, [ASN, *cals], content=b"i2d revision 1")
    _add_product(ctx, A, 1, I2D, "i2d", 3, [ASN, *cals], content=b"i2d revision 2, new reference files")
    _add_product(ctx, A, 1, CAT, "cat", 3, [I2D], content_type="text/plain")
    _add_preview(ctx, I2D, "preview", PNG, b"\x89PNG\r\n\x1a\nnot really", "image/png")
    _add_preview(ctx, I2D, "thumbnail", JPG, b"\xff\xd8\xffjpeg-ish", "image/jpeg")

    arch = Archive(settings=settings, client=None, ctx=ctx, uncal_a=uncal_a, uncal_b=uncal_b, cal_a=cals,
                   guide_a=guide_a, guide_b=guide_b)
    with ctx.catalog.session() as s:
        for user in (PI, ADA, MALLORY, "bob@example.org", "sub1@example.org", "sub2@example.org"):
            arch.tokens[user] = create_token(s, user, 30, "tests")
    with TestClient(create_app(settings)) as client:
        arch.client = client
        yield arch
    ctx.catalog.dispose()


def get(arch: Archive, url: str, user: str | None = None, **params) -> httpx.Response:
    return arch.client.get(url, params=params, headers=arch.auth(user) if user else None)


# ------------------------------------------------------------------ observations


def test_observation_rows_carry_mast_fields(archive):
    r = get(archive, "/observations", program="1234")
    assert r.status_code == 200 and r.headers["X-Total-Count"] == "1"
    [row] = r.json()["rows"]
    assert row["obs_id"] == "jw01234001" and row["obs_collection"] == "JWST" and row["proposal_id"] == "1234"
    assert row["instrument_name"] == "NIRCAM/IMAGE" and row["filters"] == "F200W"
    assert row["target_name"] == "DEMO-FIELD-1" and (row["s_ra"], row["s_dec"]) == TARGET_A
    assert row["proposal_pi"] == "Ada Lovelace" and row["dataproduct_type"] == "image"
    assert row["calib_level"] == 3 and row["dataRights"] == "EXCLUSIVE_ACCESS"
    assert row["n_products"] == 17  # 4 uncal, 2 gs-fg, 4 rate, 4 cal, asn, i2d, cat (current only)
    # t_min is the first exposure's start (2025-03-01T12:00Z = MJD 60735.5); two detectors
    # read out together count once in t_exptime; t_max adds the last exposure's duration
    demo = yaml.safe_load((EXAMPLES / "nircam_imaging.yaml").read_text())["observations"][0]
    timing = exposure_timing("NIRCAM", subarray("NIRCAM", "SUB160"), "RAPID", demo["ngroups"], 1)
    assert row["t_min"] == pytest.approx(60735.5, abs=1e-8)
    assert row["t_exptime"] == pytest.approx(2 * timing.effexptm, rel=1e-6)
    # the second dither point starts 30 s (the dither overhead) after the first one ends
    assert row["t_max"] == pytest.approx(60735.5 + (2 * timing.duration + 30.0) / 86400, abs=1e-8)
    assert row["t_obs_release"] > 60735.5 + 300
    assert row["jpegURL"] == f"https://archive.example.org/api/previews/{I2D}"
    assert row["dataURL"] == f"https://archive.example.org/api/download/{I2D}"
    niriss = get(archive, "/observations", program="02345").json()["rows"][0]
    assert niriss["instrument_name"] == "NIRISS/IMAGE" and niriss["filters"] == "F150W"
    assert niriss["dataRights"] == "PUBLIC" and niriss["calib_level"] == 1 and niriss["jpegURL"] is None
    assert get(archive, f"/observations/{row['obsid']}").json() == row
    assert get(archive, "/observations/jw01234001").json() == row
    assert get(archive, "/observations/jw09999001").status_code == 404


def _ids(arch, **params) -> list[str]:
    r = get(arch, "/observations", **params)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["total"] == len(body["rows"])
    return [row["obs_id"] for row in body["rows"]]


def test_observation_search_filters(archive):
    both = ["jw01234001", "jw02345001"]
    assert _ids(archive) == both  # the planned observation jw01234002 is not listed by default
    assert _ids(archive, include_planned="true") == ["jw01234001", "jw01234002", "jw02345001"]
    assert _ids(archive, calib_level="-1") == ["jw01234002"]
    assert _ids(archive, program="2345") == ["jw02345001"]
    assert _ids(archive, program=["1234", "2345"]) == both
    assert _ids(archive, proposal_id="01234,02345") == both
    assert _ids(archive, obs_id="jw02345001") == ["jw02345001"]
    assert _ids(archive, instrument_name="NIRISS") == ["jw02345001"]
    assert _ids(archive, instrument_name="NIRCAM/IMAGE") == ["jw01234001"]
    assert _ids(archive, instrument_name="nircam*") == ["jw01234001"]
    assert _ids(archive, instrument_name="!NIRCAM") == ["jw02345001"]
    assert _ids(archive, instrument_name="MIRI/IMAGE") == []
    assert _ids(archive, filters="F150W") == ["jw02345001"]  # NIRISS carries it in the pupil wheel
    assert _ids(archive, filters="f200w") == ["jw01234001"]
    assert _ids(archive, target_name="DEMO-FIELD-2") == ["jw02345001"]
    assert _ids(archive, target_name="demo-field-*") == both
    assert _ids(archive, target_name="*-1,*-2") == both
    assert _ids(archive, filters="!F200W") == ["jw02345001"]  # NIRISS has no filter called so (pupil F150W)
    assert _ids(archive, calib_level="3") == ["jw01234001"]
    assert _ids(archive, calib_level="1,2") == ["jw02345001"]
    assert _ids(archive, calib_level=">=1") == both
    assert _ids(archive, dataRights="PUBLIC") == ["jw02345001"]
    assert _ids(archive, dataRights="EXCLUSIVE_ACCESS") == ["jw01234001"]
    assert _ids(archive, t_min="2025-03-01") == ["jw01234001"]  # the NIRCam plan starts that day
    assert _ids(archive, t_min="60735.49..60735.51") == ["jw01234001"]
    assert _ids(archive, t_min="<60700") == ["jw02345001"]  # the NIRISS plan starts 2025-01-01
    t_max = get(archive, "/observations/jw01234001").json()["t_max"]
    assert _ids(archive, t_max=f"{t_max - 1e-6}..{t_max + 1e-6}") == ["jw01234001"]
    assert _ids(archive, t_max=f">{t_max + 1e-6}", program="1234") == []
    soon = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert _ids(archive, t_obs_release=f"..{soon}") == ["jw02345001"]
    assert _ids(archive, program="1234", instrument_name="NIRISS") == []  # criteria are ANDed


def test_observation_paging_reports_totals(archive):
    seen = []
    for page in (1, 2, 3):
        body = get(archive, "/observations", include_planned="true", pagesize=2, page=page).json()
        assert (body["total"], body["page"], body["pagesize"]) == (3, page, 2)
        seen += [r["obs_id"] for r in body["rows"]]
    assert seen == ["jw01234001", "jw01234002", "jw02345001"]  # page 3 is empty, nothing repeated


def _sorted_ids(arch, sort: str, pagesize: int) -> list[str]:
    """obs_id of every observation (planned ones too) in ``sort`` order, page by page."""
    seen, page = [], 1
    while True:
        body = get(arch, "/observations", include_planned="true", sort=sort, pagesize=pagesize, page=page).json()
        assert body["total"] == 3
        if not body["rows"]:
            return seen
        seen += [r["obs_id"] for r in body["rows"]]
        page += 1


@pytest.mark.parametrize("sort, expected", [
    # jw01234001: NIRCam, level 3, exclusive, first exposure 2025-03-01; jw01234002: the same
    # plan's observation with nothing archived (level -1, no exposure, no release date);
    # jw02345001: NIRISS, level 1, public, first exposure 2025-01-01
    ("t_min", ["jw02345001", "jw01234001", "jw01234002"]),
    ("-t_min", ["jw01234001", "jw02345001", "jw01234002"]),  # NULLs last in both directions
    ("t_obs_release", ["jw02345001", "jw01234001", "jw01234002"]),
    ("-t_obs_release", ["jw01234001", "jw02345001", "jw01234002"]),
    ("calib_level", ["jw01234002", "jw02345001", "jw01234001"]),
    ("-calib_level,obs_id", ["jw01234001", "jw02345001", "jw01234002"]),
    ("target_name,-obs_id", ["jw01234002", "jw01234001", "jw02345001"]),  # one target, then by obs_id
    ("-instrument_name", ["jw02345001", "jw01234001", "jw01234002"]),  # ties go by obsid, ascending
    ("dataRights", ["jw01234001", "jw01234002", "jw02345001"]),  # EXCLUSIVE_ACCESS before PUBLIC
    ("-proposal_id, filters", ["jw02345001", "jw01234001", "jw01234002"]),
    ("-obsid", ["jw02345001", "jw01234002", "jw01234001"]),
])
def test_observation_sort_is_consistent_across_pages(archive, sort, expected):
    assert _sorted_ids(archive, sort, 100) == expected
    assert _sorted_ids(archive, sort, 1) == expected  # page by page: every row once, in the same order
    assert _sorted_ids(archive, sort, 2) == expected


def test_observation_sort_in_exports(archive):
    for page in ("1", "all"):
        r = get(archive, "/observations", include_planned="true", sort="-t_min", format="csv", page=page)
        assert r.status_code == 200, r.text
        assert [row["obs_id"] for row in csv.DictReader(io.StringIO(r.text))] == [
            "jw01234001", "jw02345001", "jw01234002"]
    assert _ids(archive) == ["jw01234001", "jw02345001"]  # no sort: by obsid, as before


@pytest.mark.parametrize("sort, words", [
    ("t_max", ["sort", "'t_max'", "obs_id", "t_min", "dataRights"]),  # computed after the query: not sortable
    ("-nonsense", ["sort", "'-nonsense'", "target_name"]),
    ("t_min,-t_min", ["sort", "t_min", "more than once"]),
])
def test_bad_sort_is_400_naming_the_columns(archive, sort, words):
    for fmt in ("json", "csv"):
        r = get(archive, "/observations", sort=sort, format=fmt, page="all" if fmt == "csv" else "1")
        assert r.status_code == 400, r.text
        assert all(w in r.json()["detail"] for w in words), r.json()["detail"]


@pytest.mark.parametrize("params, words", [
    ({"pagesize": 6000}, ["pagesize", "5000"]),
    ({"page": 0}, ["page"]),
    ({"calib_level": "three"}, ["calib_level", "three"]),
    ({"obs_id": "jw1234"}, ["obs_id", "jw01234001"]),
    ({"program": "abc"}, ["program", "abc"]),
    ({"ra": 10.0}, ["ra and dec"]),
    ({"dec": 100}, ["dec"]),
    ({"t_min": "yesterday"}, ["t_min", "yesterday"]),
    ({"t_min": "60800..60700"}, ["t_min", "empty"]),
    ({"dataRights": "SECRET"}, ["dataRights"]),
])
def test_bad_criteria_are_400_with_a_clear_detail(archive, params, words):
    r = get(archive, "/observations", **params)
    assert r.status_code == 400, r.text
    assert all(w in r.json()["detail"] for w in words), r.json()["detail"]


def test_cone_search_matches_exposure_pointings(archive):
    ra, dec = TARGET_A
    assert _ids(archive, ra=ra, dec=dec) == ["jw01234001"]  # default radius 0.2 degrees
    assert _ids(archive, ra=ra + 1.0, dec=dec) == []
    assert _ids(archive, ra=150.1191, dec=2.2058, radius=0.01) == ["jw02345001"]
    # the NIRCam detectors point about 0.01 degree from the target: a smaller cone around
    # the target misses every exposure (and only the planned observation matches, on its target)
    with archive.ctx.catalog.session() as s:
        from shared.catalog import Exposure
        pointings = s.execute(select(Exposure.ra, Exposure.dec).join(Observation)
                              .where(Observation.program_id == A)).all()
    from shared.catalog import sky
    nearest = min(sky.separation(ra, dec, r, d) for r, d in pointings)
    assert _ids(archive, ra=ra, dec=dec, radius=nearest * 0.9) == []
    assert _ids(archive, ra=ra, dec=dec, radius=nearest * 0.9, include_planned="true") == ["jw01234002"]
    assert _ids(archive, ra=ra, dec=dec, radius=nearest * 1.1) == ["jw01234001"]
    # a cone across RA 0/360 and one reaching the pole are handled
    assert _ids(archive, ra=359.99, dec=-27.7914, radius=0.5) == []
    assert _ids(archive, ra=0.0, dec=-89.9, radius=62.5) == ["jw01234001"]


# ------------------------------------------------------------------ products


def _products(arch, url="/products", **params) -> dict:
    r = get(arch, url, **params)
    assert r.status_code == 200, r.text
    return r.json()


def test_product_rows_and_filters(archive):
    obsid = get(archive, "/observations/jw01234001").json()["obsid"]
    url = f"/observations/{obsid}/products"
    body = _products(archive, url)
    assert body["total"] == 19 == len(body["rows"])  # 15 files, 2 gs-fg, preview + thumbnail
    rows = {r["productFilename"]: r for r in body["rows"]}
    uncal = rows[archive.uncal_a[0]]
    assert uncal["dataURI"] == f"mast:JWST/product/{archive.uncal_a[0]}"
    assert (uncal["productType"], uncal["productSubGroupDescription"], uncal["calib_level"]) == ("SCIENCE", "UNCAL", 1)
    assert uncal["sha256"] == archive.sha256(archive.uncal_a[0]) and uncal["size"] > 0
    assert (uncal["obsID"], uncal["obs_id"], uncal["revision"], uncal["is_current"]) == (obsid, "jw01234001", 1, True)
    assert uncal["dataRights"] == "EXCLUSIVE_ACCESS" and uncal["productGroupDescription"] is None
    assert rows[I2D]["revision"] == 2 and rows[I2D]["crds_context"] == "jwst_0001.pmap"
    assert rows[PNG]["productType"] == "PREVIEW" and rows[JPG]["productType"] == "PREVIEW"
    assert rows[ASN]["productType"] == "AUXILIARY"

    def names(**params):
        return sorted(r["productFilename"] for r in _products(archive, url, **params)["rows"])

    assert names(productType="PREVIEW") == sorted([PNG, JPG])
    assert len(names(productType="SCIENCE")) == 14
    assert names(productType="AUXILIARY,INFO") == sorted([ASN, *archive.guide_a])
    assert names(suffix="cal") == sorted(archive.cal_a) == names(productSubGroupDescription="CAL")
    assert names(calib_level="3", productType="!PREVIEW") == sorted([ASN, CAT, I2D])
    assert names(filename="*_cat.ecsv") == [CAT]
    assert len(names(calib_level="2")) == 8
    # Minimum Recommended Products: the highest-level science products and their ASN
    mrp = _products(archive, url, mrp_only="true")["rows"]
    assert sorted(r["productFilename"] for r in mrp) == sorted([ASN, CAT, I2D])
    assert {r["productGroupDescription"] for r in mrp} == {"Minimum Recommended Products"}
    # superseded revisions only on request
    assert [r["revision"] for r in _products(archive, "/products", filename=I2D)["rows"]
            if r["productType"] != "PREVIEW"] == [2]
    both = _products(archive, "/products", filename=I2D, include_superseded="true", productType="SCIENCE")["rows"]
    assert [(r["revision"], r["is_current"]) for r in both] == [(2, True), (1, False)]
    assert both[1]["superseded_date"] is not None and both[1]["productGroupDescription"] is None
    assert both[1]["sha256"] == archive.sha256(I2D, revision=1)
    assert _products(archive, url, include_superseded="true")["total"] == 20


def test_products_across_observations_and_paging(archive):
    public = _products(archive, "/products", program="2345")
    assert [r["productFilename"] for r in public["rows"]] == sorted([archive.uncal_b, *archive.guide_b])
    rows = {r["productFilename"]: r for r in public["rows"]}
    assert {r["dataRights"] for r in rows.values()} == {"PUBLIC"}
    assert rows[archive.uncal_b]["productGroupDescription"] == "Minimum Recommended Products"  # its top level is 1
    assert rows[archive.guide_b[0]]["productGroupDescription"] is None  # guide-star data: AUXILIARY, never MRP
    assert _products(archive, "/products", dataRights="PUBLIC")["total"] == 2
    total = _products(archive, "/products")["total"]
    assert total == 21  # 19 files of jw01234001 + 2 of jw02345001
    seen = []
    for page in range(1, 7):
        body = _products(archive, "/products", pagesize=4, page=page)
        assert body["total"] == total
        seen += [(r["productFilename"], r["revision"]) for r in body["rows"]]
    assert len(seen) == total == len(set(seen))
    assert get(archive, "/observations/999999/products").status_code == 404


def test_product_detail_provenance_and_linkages(archive):
    cal = archive.cal_a[0]
    rate = cal.replace("_cal", "_rate")
    detail = get(archive, f"/products/{cal}").json()
    assert detail["product"]["productFilename"] == cal and detail["product"]["calib_level"] == 2
    assert detail["provenance"]["inputs"] == [{"name": rate, "dataURI": f"mast:JWST/product/{rate}", "is_product": True}]
    assert detail["provenance"]["software_version"] == "0.2.0"
    assert [r["productFilename"] for r in detail["linkages"]["associations"]] == [ASN]
    assert [r["productFilename"] for r in detail["linkages"]["outputs"]] == [I2D]
    assert [r["revision"] for r in detail["revisions"]] == [1]

    i2d = get(archive, f"/products/{I2D}").json()
    assert i2d["product"]["revision"] == 2 and {p["productFilename"] for p in i2d["previews"]} == {PNG, JPG}
    assert [x["name"] for x in i2d["provenance"]["inputs"]] == [ASN, *archive.cal_a]
    assert [r["productFilename"] for r in i2d["linkages"]["outputs"]] == [CAT]
    assert [(r["revision"], r["is_current"]) for r in i2d["revisions"]] == [(2, True), (1, False)]
    old = get(archive, f"/products/{I2D}", revision=1).json()
    assert old["product"]["is_current"] is False and old["product"]["sha256"] == archive.sha256(I2D, 1)

    asn = get(archive, f"/products/{ASN}").json()
    assert [r["productFilename"] for r in asn["linkages"]["outputs"]] == [I2D]
    uncal = get(archive, f"/products/{archive.uncal_a[0]}").json()
    [raw] = uncal["provenance"]["inputs"]  # the telemetry file it was assembled from
    assert raw["name"].endswith(".ccsds") and raw["is_product"] is False and raw["dataURI"] is None
    assert get(archive, "/products/jw09999001001_01101_00001_nrca1_cal.fits").status_code == 404
    assert get(archive, f"/products/{I2D}", revision=7).status_code == 404


# ------------------------------------------------------------------ exclusive access


def test_anonymous_download_refused_but_metadata_public(archive):
    name = archive.uncal_a[0]
    r = get(archive, f"/download/{name}")
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")
    release = get(archive, f"/products/{name}").json()["product"]["public_release_date"]
    assert release[:10] in r.json()["detail"] and "exclusive access" in r.json()["detail"]
    assert get(archive, f"/products/{name}").status_code == 200
    # public data need no token
    r = get(archive, f"/download/{archive.uncal_b}")
    assert r.status_code == 200
    sha = archive.sha256(archive.uncal_b)
    assert hashlib.sha256(r.content).hexdigest() == sha == r.headers["X-Checksum-SHA256"]
    assert r.headers["Content-Length"] == str(len(r.content))
    assert f'filename="{archive.uncal_b}"' in r.headers["Content-Disposition"]
    assert r.headers["Digest"].startswith("sha-256=") and r.headers["ETag"] == f'"{sha}"'
    head = archive.client.head(f"/download/{archive.uncal_b}")
    assert head.status_code == 200 and head.headers["Content-Length"] == str(len(r.content)) and not head.content
    assert get(archive, "/download/nothing_uncal.fits").status_code == 404


def test_tokens_decide_who_reads_exclusive_data(archive):
    name = archive.uncal_a[1]
    r = get(archive, f"/download/{name}", MALLORY)
    assert r.status_code == 403 and MALLORY in r.json()["detail"] and "until 20" in r.json()["detail"]
    r = get(archive, f"/download/{name}", ADA)  # listed in the plan's authorized_users
    assert r.status_code == 200 and hashlib.sha256(r.content).hexdigest() == archive.sha256(name)
    r = get(archive, f"/download/{name}", PI)
    assert r.status_code == 200
    # MAST's other ways of sending a token
    ok = archive.client.get(f"/download/{name}", headers={"Authorization": f"token {archive.tokens[ADA]}"})
    assert ok.status_code == 200
    archive.client.cookies.set("mast_token", archive.tokens[ADA])
    try:
        assert archive.client.get(f"/download/{name}").status_code == 200
        assert archive.client.get("/whoami").json() == {
            "anon": False, "user": ADA, "ezid": ADA, "attrib": {"display_name": ADA, "ezid": ADA},
            "scopes": ["mast:exclusive_access"]}
    finally:
        archive.client.cookies.clear()
    assert get(archive, "/whoami").json() == {"anon": True, "user": None, "ezid": "anonymous",
                                              "attrib": {"display_name": None, "ezid": None}, "scopes": []}
    # bad, expired and revoked tokens are refused, never treated as anonymous
    for header in ("Bearer nonsense", "Basic YWRhOnB3", "Bearer"):
        r = archive.client.get(f"/download/{archive.uncal_b}", headers={"Authorization": header})
        assert r.status_code == 401 and "WWW-Authenticate" in r.headers, header
    with archive.ctx.catalog.session() as s:
        old = issue_token(s, ADA, 1, now=datetime.now(UTC) - timedelta(days=2)).plaintext
        revoked = issue_token(s, ADA, 30)
        revoke_token(s, revoked.id)
    for token in (old, revoked.plaintext):
        r = archive.client.get(f"/download/{name}", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401 and "expired or revoked" in r.json()["detail"]


def test_pi_grants_and_withdraws_access(archive):
    name, bob = archive.uncal_a[2], "bob@example.org"
    assert get(archive, f"/download/{name}", bob).status_code == 403
    grant = {"user": bob}
    assert archive.client.post(f"/programs/{A}/authorizations", json=grant).status_code == 401
    r = archive.client.post(f"/programs/{A}/authorizations", json=grant, headers=archive.auth(ADA))
    assert r.status_code == 403 and "only the PI" in r.json()["detail"]
    r = archive.client.post("/programs/1234/authorizations", json=grant, headers=archive.auth(PI))
    assert r.status_code == 200 and bob in r.json()["authorized_users"]
    r = get(archive, f"/download/{name}", bob)
    assert r.status_code == 200 and hashlib.sha256(r.content).hexdigest() == archive.sha256(name)
    program = get(archive, f"/programs/{A}", bob).json()
    assert program["you_may_read_exclusive_data"] and program["authorized_users"] is None  # PI's eyes only
    assert program["observations"] == ["jw01234001", "jw01234002"]
    assert get(archive, f"/programs/{A}").json()["you_may_read_exclusive_data"] is False
    r = archive.client.delete(f"/programs/{A}/authorizations/{bob}", headers=archive.auth(PI))
    assert r.status_code == 200 and bob not in r.json()["authorized_users"]
    assert get(archive, f"/download/{name}", bob).status_code == 403
    r = archive.client.request("DELETE", f"/programs/{A}/authorizations", json=grant, headers=archive.auth(PI))
    assert r.status_code == 404
    assert get(archive, "/programs/77777").status_code == 404
    r = archive.client.post(f"/programs/{B}/authorizations", json=grant, headers=archive.auth(PI))
    assert r.status_code == 403  # NIRISS program names no PI user


def test_programs_every_one_or_yours(archive):
    every = get(archive, "/programs").json()
    assert [p["program"] for p in every] == sorted(p["program"] for p in every) and A in [p["program"] for p in every]
    assert not any(p["you_may_read_exclusive_data"] for p in every)
    assert get(archive, "/programs", mine="true").status_code == 401
    assert [p["program"] for p in get(archive, "/programs", PI, mine="true").json()] == [A]
    assert [p["program"] for p in get(archive, "/programs", ADA, mine="true").json()] == [A]  # authorized by the plan
    assert get(archive, "/programs", MALLORY, mine="true").json() == []
    mine = get(archive, "/programs", PI, mine="true").json()[0]
    assert mine == get(archive, f"/programs/{A}", PI).json()


def test_previews_follow_the_data_rule(archive):
    assert get(archive, f"/previews/{I2D}").status_code == 401
    assert get(archive, f"/previews/{I2D}", MALLORY).status_code == 403
    r = get(archive, f"/previews/{I2D}", ADA)
    assert r.status_code == 200 and r.content.startswith(b"\x89PNG") and r.headers["content-type"] == "image/png"
    assert r.headers["Content-Disposition"].startswith("inline")
    r = get(archive, f"/thumbnails/{I2D}", ADA)
    assert r.status_code == 200 and r.content.startswith(b"\xff\xd8")
    assert get(archive, f"/previews/{PNG}", ADA).content == get(archive, f"/download/{PNG}", ADA).content
    assert get(archive, f"/previews/{archive.uncal_b}").status_code == 404  # no preview made


def test_superseded_revision_on_request(archive):
    current = get(archive, f"/download/{I2D}", ADA)
    assert current.content == b"i2d revision 2, new reference files" and current.headers["X-DMS-Revision"] == "2"
    old = get(archive, f"/download/{I2D}", ADA, revision=1)
    assert old.content == b"i2d revision 1" and old.headers["X-Checksum-SHA256"] == archive.sha256(I2D, 1)
    assert get(archive, f"/download/{I2D}", ADA, revision=3).status_code == 404


# ------------------------------------------------------------------ bundles


def test_bundles_zip_tar_and_curl(archive):
    names = [archive.uncal_a[0], archive.cal_a[0], archive.uncal_a[0], archive.uncal_b]
    r = archive.client.post("/bundles", json={"filenames": names, "format": "zip"}, headers=archive.auth(ADA))
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
        assert zf.testzip() is None
        listed = zf.namelist()
        assert listed == [f"JWST/jw01234001/{archive.uncal_a[0]}", f"JWST/jw01234001/{archive.cal_a[0]}",
                          f"JWST/jw02345001/{archive.uncal_b}", "SHA256SUMS"]
        for path in listed[:-1]:
            assert hashlib.sha256(zf.read(path)).hexdigest() == archive.sha256(path.rsplit("/", 1)[-1])
        sums = zf.read("SHA256SUMS").decode()
        assert f"{archive.sha256(archive.uncal_b)}  JWST/jw02345001/{archive.uncal_b}" in sums
    r = archive.client.post("/bundles", json={"filenames": names, "format": "tar"}, headers=archive.auth(ADA))
    assert r.status_code == 200 and len(r.content) % tarfile.RECORDSIZE == 0
    with tarfile.open(fileobj=io.BytesIO(r.content)) as tf:
        members = tf.getnames()
        assert members[-1] == "SHA256SUMS" and len(members) == 4
        data = tf.extractfile(f"JWST/jw01234001/{archive.cal_a[0]}").read()
        assert hashlib.sha256(data).hexdigest() == archive.sha256(archive.cal_a[0])

    r = archive.client.post("/bundles", json={"filenames": names, "format": "zip"})
    assert r.status_code == 401 and archive.uncal_a[0] in r.json()["detail"]
    r = archive.client.post("/bundles", json={"filenames": names}, headers=archive.auth(MALLORY))
    assert r.status_code == 403
    r = archive.client.post("/bundles", json={"filenames": [archive.uncal_b, "ghost_cal.fits"]})
    assert r.status_code == 404 and "ghost_cal.fits" in r.json()["detail"]
    assert archive.client.post("/bundles", json={"filenames": [], "format": "zip"}).status_code == 400
    assert archive.client.post("/bundles", json={"filenames": ["x"], "format": "rar"}).status_code == 400

    r = archive.client.post("/bundles", json={"filenames": names, "format": "curl"})  # a script for anyone
    assert r.status_code == 200 and r.text.startswith("#!/bin/sh")
    for name in dict.fromkeys(names):
        assert f"https://archive.example.org/api/download/{name}" in r.text
        assert archive.sha256(name) in r.text
    assert "DMS_TOKEN" in r.text and "2 of them are under exclusive access" in r.text


# ------------------------------------------------------------------ subscriptions and events


def test_subscriptions_are_scoped_to_the_owner(archive):
    one, two = archive.auth("sub1@example.org"), archive.auth("sub2@example.org")
    spec = {"name": "my program", "channel": "webhook", "target": "https://192.0.2.10/hook",
            "filters": {"programs": ["1234"], "event_types": ["new", "public"]}}
    assert archive.client.get("/subscriptions").status_code == 401
    r = archive.client.post("/subscriptions", json=spec, headers=one)
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["owner"] == "sub1@example.org" and made["filters"]["programs"] == ["01234"]
    assert len(made["secret"]) == 64  # generated HMAC key, shown once
    sid = made["id"]
    [listed] = archive.client.get("/subscriptions", headers=one).json()
    assert listed["id"] == sid and listed["secret"] is None
    assert archive.client.get("/subscriptions", headers=two).json() == []
    assert archive.client.get(f"/subscriptions/{sid}", headers=two).status_code == 404
    assert archive.client.delete(f"/subscriptions/{sid}", headers=two).status_code == 404
    email = {"channel": "email", "target": "sub1@example.org", "frequency": "daily"}
    r = archive.client.put(f"/subscriptions/{sid}", json=email, headers=one)
    assert r.status_code == 200 and r.json()["channel"] == "email" and r.json()["frequency"] == "daily"
    assert archive.client.get(f"/subscriptions/{sid}", headers=one).json()["target"] == "sub1@example.org"
    bad = archive.client.post("/subscriptions", json={"channel": "email", "target": "not an address"}, headers=one)
    assert bad.status_code == 400 and "e-mail" in bad.json()["detail"]
    bad = archive.client.post("/subscriptions", json={**spec, "filters": {"event_types": ["sometimes"]}}, headers=one)
    assert bad.status_code == 400 and "sometimes" in bad.json()["detail"]
    assert archive.client.delete(f"/subscriptions/{sid}", headers=one).status_code == 204
    assert archive.client.delete(f"/subscriptions/{sid}", headers=one).status_code == 404
    assert archive.client.get("/subscriptions", headers=one).json() == []
    [gone] = archive.client.get("/subscriptions", params={"include_inactive": "true"}, headers=one).json()
    assert gone["active"] is False


def test_subscription_deliveries_newest_first_to_the_owner_only(archive):
    owner, stranger = "deliveries@example.org", "stranger@example.org"
    with archive.ctx.catalog.session() as s:
        for user in (owner, stranger):
            archive.tokens[user] = create_token(s, user, 30, "tests")
    spec = {"channel": "webhook", "target": "https://192.0.2.20/hook", "filters": {"programs": ["1234"]}}
    sid = archive.client.post("/subscriptions", json=spec, headers=archive.auth(owner)).json()["id"]
    other = archive.client.post("/subscriptions", json=spec, headers=archive.auth(stranger)).json()["id"]
    t0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
    with archive.ctx.catalog.session() as s:
        event = s.scalars(select(EventRecord).where(EventRecord.subject == archive.uncal_a[0])).first()
        s.add(Delivery(subscription_id=sid, event_id=event.id, notification_type="new", status="delivered",
                       attempts=2, created_at=t0, delivered_at=t0 + timedelta(minutes=2), batch_id="batch-1"))
        s.add(Delivery(subscription_id=sid, event_id="gone-from-the-outbox", notification_type="public",
                       status="dead", attempts=1, created_at=t0 + timedelta(hours=1), last_error="HTTP 500"))
        s.add(Delivery(subscription_id=sid, event_id="later", notification_type="new", status="pending",
                       attempts=0, created_at=t0 + timedelta(hours=2)))
        s.add(Delivery(subscription_id=other, event_id=event.id, notification_type="new", status="pending",
                       attempts=0, created_at=t0))
        s.add(DeliveryAttempt(subscription_id=sid, batch_id="batch-1", event_ids=[event.id], attempted_at=t0,
                              ok=False, status_code=503, error="HTTP 503", duration_seconds=0.5))
        s.add(DeliveryAttempt(subscription_id=sid, batch_id="batch-1", event_ids=[event.id],
                              attempted_at=t0 + timedelta(minutes=2), ok=True, status_code=200, duration_seconds=0.1))
    url = f"/subscriptions/{sid}/deliveries"
    r = archive.client.get(url, headers=archive.auth(owner))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["total"] == 3 and r.headers["X-Total-Count"] == "3"
    assert [d["event_id"] for d in body["rows"]] == ["later", "gone-from-the-outbox", event.id]  # newest first
    later, dead, done = body["rows"]
    assert later["status"] == "pending" and later["attempt_log"] == [] and later["delivered_at"] is None
    assert dead["status"] == "dead" and dead["last_error"] == "HTTP 500" and dead["event_type"] is None
    assert done["event_type"] == "dms.product.archived" and done["event_subject"] == archive.uncal_a[0]
    assert done["status"] == "delivered" and done["attempts"] == 2 and done["notification_type"] == "new"
    assert [(a["ok"], a["status_code"]) for a in done["attempt_log"]] == [(False, 503), (True, 200)]
    paged = [archive.client.get(url, params={"pagesize": 2, "page": p}, headers=archive.auth(owner)).json()
             for p in (1, 2)]
    assert [d["id"] for p in paged for d in p["rows"]] == [d["id"] for d in body["rows"]]
    # a stranger is answered as for any subscription not theirs; nobody without a token
    theirs = archive.client.get(f"/subscriptions/{sid}", headers=archive.auth(stranger))
    r = archive.client.get(url, headers=archive.auth(stranger))
    assert r.status_code == theirs.status_code == 404 and str(sid) in r.json()["detail"]
    assert archive.client.get(url).status_code == archive.client.get(f"/subscriptions/{sid}").status_code == 401
    assert archive.client.get("/subscriptions/999999/deliveries", headers=archive.auth(owner)).status_code == 404
    [mine] = archive.client.get(f"/subscriptions/{other}/deliveries", headers=archive.auth(stranger)).json()["rows"]
    assert mine["event_id"] == event.id
    # a deleted subscription keeps its history
    assert archive.client.delete(f"/subscriptions/{sid}", headers=archive.auth(owner)).status_code == 204
    assert archive.client.get(url, headers=archive.auth(owner)).json()["total"] == 3


def test_events_filters(archive):
    body = _products(archive, "/events", type="product.archived", program="1234")
    assert body["total"] == 6 and {e["subject"] for e in body["rows"]} == {*archive.uncal_a, *archive.guide_a}
    assert all(e["type"] == "dms.product.archived" and e["specversion"] == "1.0" for e in body["rows"])
    rejected = _products(archive, "/events", type="dms.ingest.rejected")
    assert rejected["total"] == 1 and rejected["rows"][0]["subject"] == "noise.ccsds"
    assert rejected["rows"][0]["data"]["reason"] == "no_science_packets"
    nir = _products(archive, "/events", program="2345")["rows"]
    assert {e["type"] for e in nir} == {"dms.telemetry.arrived", "dms.product.archived"}
    everything = _products(archive, "/events")
    times = [e["time"] for e in everything["rows"]]
    assert times == sorted(times, reverse=True)  # newest first
    paged = _products(archive, "/events", pagesize=3, page=2)
    assert paged["total"] == everything["total"] and len(paged["rows"]) == 3
    assert _products(archive, "/events", subject=archive.uncal_b)["total"] == 1
    assert _products(archive, "/events", since=(datetime.now(UTC) + timedelta(hours=1)).isoformat())["total"] == 0
    assert _products(archive, "/events", until="2000-01-01")["total"] == 0
    assert get(archive, "/events", since="soon").status_code == 400


# ------------------------------------------------------------------ operations


def _metrics(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def test_health_and_metrics(archive, tmp_path):
    r = get(archive, "/health")
    tap = "warming-or-ready" if archive.settings.resolved_catalog_url.startswith("postgresql") else None
    body = r.json()
    if tap is not None:
        assert body.pop("tap") in ("warming", "ready")
        body["tap"] = tap
    assert r.status_code == 200 and body == {"status": "ok", "catalog": "ok", "store": "ok", "broker": None, "tap": tap}
    r = get(archive, "/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain; version=0.0.4")
    m = _metrics(r.text)
    assert m['dms_products{level="1"}'] == 8 and m['dms_products{level="2"}'] == 8  # 5 uncal, 3 gs-fg
    assert m['dms_products{level="3"}'] == 3  # asn, i2d r2, cat
    assert m["dms_outbox_pending"] == 0 and m["dms_ingest_rejections_total"] == 1
    assert m["dms_task_failures_total"] == 1
    assert m['dms_task_runs_total{task="ingest.telemetry"}'] == 7  # 5 exposures, the junk, the malformed
    assert m['dms_task_failures{task="ingest.telemetry"}'] == 1
    assert m['dms_task_seconds_sum{task="ingest.telemetry"}'] > 0
    assert m['dms_task_seconds_count{task="ingest.telemetry"}'] == 7
    assert 0 < m['dms_task_seconds_max{task="ingest.telemetry"}'] <= m['dms_task_seconds_sum{task="ingest.telemetry"}']
    for name in ("dms_queue_depth", "dms_outbox_pending", "dms_products", "dms_ingest_rejections_total",
                 "dms_task_failures_total", "dms_task_runs_total", "dms_task_failures", "dms_task_seconds",
                 "dms_task_seconds_max"):
        assert f"# TYPE {name} " in r.text

    broken = archive.settings.model_copy(update={"store_root": tmp_path / "no-store-here"})
    with TestClient(create_app(broken)) as client:
        r = client.get("/health")
        assert r.status_code == 503 and r.json()["store"].startswith("unreachable")


@pytest.fixture
def queue_redis():
    """A Redis database of its own (not the shared test db, which other suites flush), with
    the queue lists emptied before and after."""
    import redis

    from shared.routing import QUEUES
    from tests.conftest import REDIS_URL

    url = REDIS_URL.rsplit("/", 1)[0] + "/14"
    client = redis.Redis.from_url(url)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        pytest.fail(f"Redis is not reachable at {url}: {exc} (start it; .ci/run does)")
    client.delete(*QUEUES)
    yield url, client
    client.delete(*QUEUES)
    client.close()


@pytest.mark.integration
def test_metrics_read_queue_depth_from_redis(archive, queue_redis):
    redis_url, client = queue_redis
    client.rpush("ingest", b"m1", b"m2")
    client.rpush("preview", b"m3")
    settings = archive.settings.model_copy(update={"broker_url": redis_url})
    with TestClient(create_app(settings)) as api:
        m = _metrics(api.get("/metrics").text)
        assert api.get("/health").json()["broker"] == "ok"
    assert m['dms_queue_depth{queue="ingest"}'] == 2 and m['dms_queue_depth{queue="preview"}'] == 1
    assert m['dms_queue_depth{queue="stage3"}'] == 0 and m["dms_broker_up"] == 1
    dead = archive.settings.model_copy(update={"broker_url": "redis://127.0.0.1:1/0"})
    with TestClient(create_app(dead)) as api:
        r = api.get("/metrics")
        assert r.status_code == 200 and _metrics(r.text)["dms_broker_up"] == 0


def test_openapi_documents_every_route(archive):
    spec = get(archive, "/openapi.json").json()
    for path in ("/observations", "/observations/{observation}/products", "/products", "/products/{filename}",
                 "/download/{filename}", "/previews/{filename}", "/thumbnails/{filename}", "/bundles",
                 "/programs/{program}", "/programs/{program}/authorizations", "/subscriptions",
                 "/subscriptions/{subscription_id}", "/subscriptions/{subscription_id}/deliveries", "/events",
                 "/health", "/metrics", "/whoami"):
        assert path in spec["paths"], path
    assert "dataURI" in spec["components"]["schemas"]["ProductRow"]["properties"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serves_over_http_with_uvicorn(archive, tmp_path):
    import uvicorn

    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    settings = archive.settings.model_copy(update={"archive_base_url": base})
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
            time.sleep(0.05)
        with httpx.Client(base_url=base, timeout=10) as http:
            assert http.get("/health").json()["status"] == "ok"
            spec = http.get("/openapi.json").json()
            assert spec["info"]["title"] == "jwst-dms archive API" and "/observations" in spec["paths"]
            names = [archive.uncal_b, archive.uncal_a[3]]
            script = http.post("/bundles", json={"filenames": names, "format": "curl"}).text
        # the curl script, run for real against the server, with the token from $DMS_TOKEN
        (tmp_path / "get.sh").write_text(script)
        env = {"PATH": "/usr/bin:/bin", "DMS_TOKEN": archive.tokens[ADA]}
        proc = subprocess.run(["sh", "get.sh"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "all 2 file(s) downloaded and verified" in proc.stdout
        got = tmp_path / "JWST" / "jw01234001" / archive.uncal_a[3]
        assert hashlib.sha256(got.read_bytes()).hexdigest() == archive.sha256(archive.uncal_a[3])
        # without the token the exclusive file fails and the script says so
        (tmp_path / "anon").mkdir()
        proc = subprocess.run(["sh", "../get.sh"], cwd=tmp_path / "anon", env={"PATH": "/usr/bin:/bin"},
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 1 and "1 file(s) failed" in proc.stderr
    finally:
        server.should_exit = True
        thread.join(timeout=10)


# ------------------------------------------------------------------ S3 store


@pytest.mark.integration
def test_downloads_from_an_s3_store(s3_server, tmp_path):
    from shared.catalog.queries import upsert_program
    from tests.telemetry_factory import tiny_plan

    s3 = {"store": "s3", "s3_endpoint": s3_server.endpoint, "s3_access_key": s3_server.access_key,
          "s3_secret_key": s3_server.secret_key, "s3_region": s3_server.region}
    settings = Settings(var_dir=tmp_path / "var", _env_file=None, **s3)
    s3_server.reset()
    ctx = ServiceContext.from_settings(settings)
    ctx.catalog.upgrade()
    with ctx.catalog.session() as s:
        upsert_program(s, tiny_plan().model_copy(update={"eap_months": 0}))
    name = "jw01234001001_01101_00001_nrca1_cal.fits"
    data = bytes(range(256)) * 4096  # 1 MiB
    _add_product(ctx, "01234", 1, name, "cal", 2, [], content=data)
    with TestClient(create_app(settings), follow_redirects=False) as client:
        r = client.get(f"/download/{name}")
        assert r.status_code == 200 and r.content == data
        assert r.headers["X-Checksum-SHA256"] == hashlib.sha256(data).hexdigest()
        head = client.head(f"/download/{name}")
        assert head.status_code == 200 and head.headers["Content-Length"] == str(len(data)) and not head.content
        r = client.get(f"/download/{name}", params={"redirect": "true"})
        assert r.status_code == 307 and r.headers["location"].startswith(f"http://{s3_server.endpoint}/")
        assert httpx.get(r.headers["location"], timeout=30).content == data
        r = client.post("/bundles", json={"filenames": [name], "format": "zip"})
        with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
            assert zf.read(f"JWST/jw01234001/{name}") == data
        assert client.get("/health").json()["store"] == "ok"
    ctx.catalog.dispose()


# ------------------------------------------------------------------ tokens and CLI


def test_token_lifecycle(embedded_settings):
    ctx, _ = embedded_context(embedded_settings)
    now = datetime.now(UTC)
    with ctx.catalog.session() as s:
        token = create_token(s, "ada@example.org", 10, "laptop")
        assert token.startswith("dms_") and len(token) > 40
        [row] = list_tokens(s)
        assert row.token_sha256 == hashlib.sha256(token.encode()).hexdigest() and token not in repr(row.__dict__)
        assert verify_token(s, token, now) == "ada@example.org" and row.last_used_at == now
        assert verify_token(s, token, now + timedelta(days=11)) is None  # expired
        assert verify_token(s, token + "x", now) is None and verify_token(s, "", now) is None
        assert revoke_token(s, row.id, owner="someone-else") is False
        assert revoke_token(s, row.id) is True and verify_token(s, token, now) is None
        assert revoke_token(s, 999) is False
        assert list_tokens(s, include_revoked=False) == []
        for owner, days in (("", 1), ("two words", 1), ("x@y", 0)):
            with pytest.raises(ValueError):
                create_token(s, owner, days)
    ctx.catalog.dispose()


def test_cli_token_commands(tmp_path, monkeypatch, capsys):
    import argparse

    from services.archive.commands import register_commands
    from shared.config import get_settings

    parser = argparse.ArgumentParser(prog="dms")
    register_commands(parser.add_subparsers(dest="command", required=True))
    monkeypatch.setenv("DMS_VAR_DIR", str(tmp_path / "var"))
    get_settings.cache_clear()
    try:
        def run(*argv) -> tuple[int, str, str]:
            args = parser.parse_args(list(argv))
            code = args.func(args)
            out = capsys.readouterr()
            return code, out.out, out.err

        code, out, _ = run("token", "create", "--owner", "ada@example.org", "--days", "5", "--description", "laptop")
        token = out.strip().splitlines()[-1]
        assert code == 0 and "token 1 for ada@example.org" in out and token.startswith("dms_")
        code, out, _ = run("token", "list", "--owner", "ada@example.org")
        assert code == 0 and "ada@example.org" in out and "active" in out and "laptop" in out and token not in out
        assert run("token", "revoke", "1")[0] == 0
        assert "revoked" in run("token", "list")[1]
        code, _, err = run("token", "revoke", "42")
        assert code == 2 and "no token 42" in err
        code, _, err = run("token", "create", "--owner", "two words")
        assert code == 2 and "owner" in err
        with pytest.raises(SystemExit):
            parser.parse_args(["token", "create", "--owner", "x", "--days", "0"])
        args = parser.parse_args(["serve", "archive", "--port", "8123"])
        assert (args.port, args.host) == (8123, None) and args.func.__name__ == "cmd_serve_archive"
    finally:
        get_settings.cache_clear()


def test_nothing_read_at_import_time():
    # importing the app module and building the app open no database: an unreachable
    # catalog URL only matters once the application starts
    code = ("import os; os.environ['DMS_CATALOG_URL'] = 'postgresql+psycopg://nowhere:1/none'; "
            "from services.archive.app import create_app; create_app(); print('ok')")
    proc = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1],
                          capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "ok", proc.stderr
