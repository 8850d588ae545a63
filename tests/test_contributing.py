"""Reference files as contributing products, on the small imaging program run through
every service: GET /references lists the delivered files with their contexts, filters and
pages them; GET /references/{file} serves one (public, with its checksum); a product's
linkages name the exact reference files and the context it was calibrated with, as kind
``contributing``, each downloadable."""

from __future__ import annotations

import hashlib
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from services.archive.app import create_app
from shared.catalog import ReferenceFile
from tests.imaging_chain import copy_run


@pytest.fixture(scope="module")
def chain(tmp_path_factory, small_program_run):
    run = copy_run(small_program_run, tmp_path_factory.mktemp("contributing"))
    with TestClient(create_app(run.ctx.settings)) as client:
        yield run, client
    run.ctx.catalog.dispose()


def _local(url: str) -> str:
    """The path and query of an absolute URL the API gave (built from DMS_ARCHIVE_BASE_URL)."""
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _names(rows: list[dict]) -> list[str]:
    return [r["filename"] for r in rows]


def test_references_are_listed_with_their_contexts(chain):
    run, api = chain
    with run.ctx.catalog.session() as s:
        delivered = {f.filename: f.sha256 for f in s.scalars(select(ReferenceFile))}
    r = api.get("/references", params={"pagesize": 1000})
    assert r.status_code == 200
    body = r.json()
    assert body["total"] == len(delivered) == int(r.headers["X-Total-Count"]) > 10
    assert {row["filename"]: row["sha256"] for row in body["rows"]} == delivered
    flat = next(row for row in body["rows"] if row["filename"] == "jwst_nircam_flat_nrca1_f200w_clear_sim.fits")
    assert (flat["reftype"], flat["instrument"], flat["detector"]) == ("FLAT", "NIRCAM", "NRCA1")
    assert flat["selectors"]["FILTER"] == "F200W" and flat["useafter"].startswith("2022-01-01")
    assert flat["contexts"] == ["dms_0001.ctx"] and flat["dataRights"] == "PUBLIC"
    assert flat["dataURI"] == "dms:JWST/reference/jwst_nircam_flat_nrca1_f200w_clear_sim.fits"
    assert flat["dataURL"].endswith("/references/jwst_nircam_flat_nrca1_f200w_clear_sim.fits")
    assert not any("file://" in str(v) or "s3://" in str(v) for row in body["rows"] for v in row.values())


def test_reference_filters_and_paging(chain):
    _, api = chain
    darks = api.get("/references", params={"reftype": "dark", "instrument": "NIRCAM"}).json()
    assert darks["total"] >= 1 and {r["reftype"] for r in darks["rows"]} == {"DARK"}
    nrca1 = api.get("/references", params={"detector": "NRCA1", "pagesize": 1000}).json()["rows"]
    assert all(r["detector"] in (None, "NRCA1", "ANY", "GENERIC", "N/A") or "NRCA1" in r["detector"].split("|")
               for r in nrca1)
    assert any(r["detector"] == "NRCA1" for r in nrca1)
    none = api.get("/references", params={"detector": "NRCB4", "reftype": "FLAT"}).json()
    assert all(r["detector"] != "NRCA1" for r in none["rows"])
    everything = api.get("/references", params={"pagesize": 1000}).json()
    assert api.get("/references", params={"context": "current", "pagesize": 1000}).json() == everything
    assert api.get("/references", params={"context": "1", "pagesize": 1000}).json() == everything
    assert api.get("/references", params={"useafter": ">=2030-01-01"}).json()["total"] == 0
    first = api.get("/references", params={"pagesize": 3, "page": 1}).json()
    second = api.get("/references", params={"pagesize": 3, "page": 2}).json()
    assert _names(first["rows"]) + _names(second["rows"]) == _names(everything["rows"])[:6]
    flats = api.get("/references", params={"filename": "*_flat_*"}).json()
    assert flats["total"] >= 1 and all("_flat_" in n for n in _names(flats["rows"]))


@pytest.mark.parametrize("params, words", [
    ({"context": "dms_0099.ctx"}, "no reference context"),
    ({"context": "nonsense"}, "not a reference context"),
    ({"useafter": "not-a-date"}, "useafter"),
    ({"pagesize": 0}, "pagesize"),
])
def test_bad_reference_criteria_are_400_with_a_reason(chain, params, words):
    _, api = chain
    r = api.get("/references", params=params)
    assert r.status_code == 400, r.text
    assert words in r.json()["detail"]


def test_reference_download_is_public_and_checked(chain):
    run, api = chain
    name = "jwst_nircam_flat_nrca1_f200w_clear_sim.fits"
    with run.ctx.catalog.session() as s:
        ref = s.scalar(select(ReferenceFile).where(ReferenceFile.filename == name))
        sha, size = ref.sha256, ref.size
    r = api.get(f"/references/{name}")  # no token
    assert r.status_code == 200
    assert hashlib.sha256(r.content).hexdigest() == sha == r.headers["X-Checksum-SHA256"]
    assert len(r.content) == size and r.headers["content-type"] == "application/fits"
    assert name in r.headers["content-disposition"]
    assert api.head(f"/references/{name}").status_code == 200
    asdf = api.get("/references/jwst_nircam_distortion_nrca1_sim.asdf")
    assert asdf.status_code == 200 and asdf.headers["content-type"] == "application/asdf"
    assert asdf.content.startswith(b"#ASDF")
    missing = api.get("/references/jwst_nircam_flat_nope.fits")
    assert missing.status_code == 404 and "no reference file" in missing.json()["detail"]


def test_products_link_the_exact_references_and_context_they_used(chain):
    run, api = chain
    rate = run.filenames("rate")[0]
    linkages = api.get(f"/products/{rate}/linkages").json()
    assert linkages["reference_context"]["name"] == "dms_0001.ctx" and linkages["reference_context"]["known"]
    listed = api.get(_local(linkages["reference_context"]["filesURL"])).json()
    assert listed["total"] >= len(linkages["contributing"])
    used = {n["productFilename"]: n for n in linkages["contributing"]}
    assert {n["kind"] for n in used.values()} == {"contributing"}
    assert {n["reftype"] for n in used.values()} >= {"DARK", "SUPERBIAS", "LINEARITY", "SATURATION", "GAIN",
                                                      "READNOISE", "MASK"}
    assert all(n["in_context"] and n["productType"] == "REFERENCE" for n in used.values())
    # the exact files: as the product's provenance and its R_* keywords name them
    inputs = api.get(f"/products/{rate}").json()["provenance"]["inputs"]
    assert set(used) == {i["name"] for i in inputs if i["name"].startswith("jwst_")}
    dark = next(n for n in used.values() if n["reftype"] == "DARK")
    got = api.get(_local(dark["dataURL"]))
    assert got.status_code == 200 and hashlib.sha256(got.content).hexdigest() == dark["sha256"]
    # the detail carries the same linkages; a Level-3 product its stage-3 references
    assert api.get(f"/products/{rate}").json()["linkages"] == linkages
    i2d = run.filenames("i2d", level=3)[0]
    level3 = api.get(f"/products/{i2d}/linkages").json()["contributing"]
    assert {n["reftype"] for n in level3} == {"APCORR", "ABVEGAOFFSET"}
    # an _uncal was calibrated with nothing
    uncal = api.get(f"/products/{run.filenames('uncal')[0]}/linkages").json()
    assert uncal["contributing"] == [] and uncal["reference_context"] is None
