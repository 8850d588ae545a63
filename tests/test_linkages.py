"""Linkages and Minimum Recommended Products of a real archived program: the small imaging
program (two dither points of one detector) run through every service, then read back
through the archive API. The Level-3 mosaic's linkage tree goes down to the ``_uncal``
files with the association of each step; the Level-3 products belong to their
observation (its MRP, its preview); the 2c ``_crf`` and the ``_segm`` map are AUXILIARY
intermediates, the ``_crf`` released with the association's latest member."""

from __future__ import annotations

import pytest
import yaml
from fastapi.testclient import TestClient

from services.archive.app import create_app
from tests.faults.harness import REPO, small_program
from tests.imaging_chain import copy_run, run_chain


@pytest.fixture(scope="module")
def api(tmp_path_factory, small_program_run):
    run = copy_run(small_program_run, tmp_path_factory.mktemp("linkages"))
    with TestClient(create_app(run.ctx.settings)) as client:
        yield client
    run.ctx.catalog.dispose()


def _rows(api, **params) -> dict[str, dict]:
    rows = api.get("/products", params={"pagesize": 1000, **params}).json()["rows"]
    return {r["productFilename"]: r for r in rows if r["productType"] != "PREVIEW"}


def _one(rows: dict[str, dict], ending: str, level: int | None = None) -> str:
    names = [n for n, r in rows.items() if n.endswith(ending) and (level is None or r["calib_level"] == level)]
    assert len(names) == 1, names
    return names[0]


def _pairs(nodes: list[dict]) -> set[tuple[str, str]]:
    return {(n["kind"], n["productFilename"]) for n in nodes}


def test_level3_tree_down_to_uncal_with_each_steps_association(api):
    rows = _rows(api)
    i2d = _one(rows, "_i2d.fits", level=3)
    image3 = _one(rows, "_image3_00001_asn.json")
    crfs = sorted(n for n in rows if n.endswith("_crf.fits"))
    uncals = sorted(n for n in rows if n.endswith("_uncal.fits") and "_gs-" not in n)  # not guide-star data
    assert len(crfs) == len(uncals) == 2

    linkages = api.get(f"/products/{i2d}/linkages").json()
    assert (linkages["observation"], linkages["linkage"]) == ("jw01234001", "composition")
    top = linkages["antecedents"]
    # L3 <- 2c (composition), with the Level-3 ASN that made the step; no member _cal directly
    assert _pairs(top) == {("composition", c) for c in crfs} | {("prerequisite", image3)}
    for crf in (n for n in top if n["kind"] == "composition"):
        exposure = crf["productFilename"].split("_o001_")[0]
        assert crf["productType"] == "AUXILIARY"
        cal, = (n for n in crf["links"] if n["kind"] == "antecedent")
        assert cal["productFilename"] == f"{exposure}_cal.fits"
        assert ("prerequisite", image3) in _pairs(crf["links"])
        # L2b <- L2a, with the image2 ASN of that exposure
        image2 = [n for n in cal["links"] if n["kind"] == "prerequisite"]
        assert len(image2) == 1 and "_image2_" in image2[0]["productFilename"]
        assert image2[0]["productSubGroupDescription"] == "ASN" and image2[0]["links"] == []
        rate, = (n for n in cal["links"] if n["kind"] == "antecedent")
        assert rate["productFilename"] == f"{exposure}_rate.fits"
        # L2a <- L1b
        assert _pairs(rate["links"]) == {("antecedent", f"{exposure}_uncal.fits")}
        uncal, = rate["links"]
        assert (uncal["calib_level"], uncal["links"]) == (1, [])

    # the product detail carries the same linkages
    assert api.get(f"/products/{i2d}").json()["linkages"] == linkages


def test_children_walk_up_from_uncal_to_level3(api):
    rows = _rows(api)
    uncal = sorted(n for n in rows if n.endswith("_uncal.fits") and "_gs-" not in n)[0]
    exposure = uncal.removesuffix("_uncal.fits")
    children = api.get(f"/products/{uncal}/linkages").json()["children"]
    rate = next(n for n in children if n["productFilename"] == f"{exposure}_rate.fits")
    assert rate["kind"] == "antecedent"
    assert any(n["kind"] == "prerequisite" and n["productSubGroupDescription"] == "POOL" for n in children)
    cal = next(n for n in rate["links"] if n["productFilename"] == f"{exposure}_cal.fits")
    crf = next(n for n in cal["links"] if n["productFilename"] == f"{exposure}_o001_crf.fits")
    # the Level-3 products hang under the 2c product they were composed of, not under the _cal
    assert {n["productFilename"] for n in cal["links"] if n["calib_level"] == 3 and n["kind"] != "prerequisite"} \
        == {crf["productFilename"]}
    assert _pairs(crf["links"]) == {("composition", _one(rows, s, level=3))
                                    for s in ("_i2d.fits", "_cat.ecsv", "_segm.fits")}


def test_mrp_of_the_observation_is_level3_science_and_its_asn(api):
    obs, = api.get("/observations").json()["rows"]
    rows = api.get(f"/observations/{obs['obsid']}/products", params={"mrp_only": "true"}).json()["rows"]
    names = sorted(r["productFilename"] for r in rows)
    assert [n.rsplit("_", 1)[1] for n in names] == ["asn.json", "cat.ecsv", "i2d.fits"], names
    assert all(r["calib_level"] == 3 for r in rows)
    every = _rows(api)
    assert every[_one(every, "_segm.fits")]["productType"] == "AUXILIARY"
    assert {every[n]["productType"] for n in every if n.endswith("_crf.fits")} == {"AUXILIARY"}
    assert not any(every[n]["productGroupDescription"] for n in every if n.endswith(("_segm.fits", "_crf.fits")))


def test_level3_products_belong_to_their_observation(api):
    obs, = api.get("/observations").json()["rows"]
    assert obs["calib_level"] == 3
    listed = {r["productFilename"]: r for r in
              api.get(f"/observations/{obs['obsid']}/products", params={"pagesize": 1000}).json()["rows"]}
    level3 = [n for n, r in listed.items() if r["calib_level"] == 3 and r["productType"] != "PREVIEW"
              and not n.endswith(("_crf.fits", "_asn.json"))]
    assert sorted(n.rsplit("_", 1)[1] for n in level3) == ["cat.ecsv", "i2d.fits", "segm.fits"]
    assert {listed[n]["obsID"] for n in level3} == {obs["obsid"]}
    assert {listed[n]["linkage"] for n in level3} == {"composition"}
    i2d = _one(listed, "_i2d.fits", level=3)
    assert obs["jpegURL"].endswith(f"/previews/{i2d}")
    assert obs["dataURL"].endswith(f"/download/{i2d}")
    assert any(r["productType"] == "PREVIEW" and n.startswith(i2d.removesuffix(".fits")) for n, r in listed.items())
    assert api.get(f"/previews/{i2d}").status_code == 401  # exclusive access: the PI's, like the data
    kinds = {r["linkage"] for n, r in listed.items() if r["productType"] != "PREVIEW"}
    assert kinds == {"aggregation", "composition", "prerequisite"}


def test_crf_is_released_with_the_latest_member(api):
    rows = _rows(api)
    cals = sorted(n for n in rows if n.endswith("_cal.fits"))
    latest = max(rows[c]["public_release_date"] for c in cals)
    assert min(rows[c]["public_release_date"] for c in cals) < latest  # the members differ
    for crf in (n for n in rows if n.endswith("_crf.fits")):
        assert rows[crf]["public_release_date"] == latest
    assert rows[_one(rows, "_i2d.fits", level=3)]["public_release_date"] == latest


def test_unknown_product_linkages_is_404(api):
    answer = api.get("/products/jw09999001001_01101_00001_nrca1_cal.fits/linkages")
    assert answer.status_code == 404
    assert "jw09999001001_01101_00001_nrca1_cal.fits" in answer.json()["detail"]
    assert api.get("/products/jw01234-o001_t001_nircam_clear-f200w_i2d.fits/linkages",
                   params={"revision": "x"}).status_code == 400


def test_multiplicity_links_segments_and_detectors_of_one_exposure(tmp_path, monkeypatch):
    """One exposure read out by two detectors, each ``_uncal`` split in two segments: every
    file of it names the others holding the same product (its other segment, the other
    detector's segments) as ``multiplicity``; a ``_rate`` names the other detector's."""
    desc = small_program()
    imaging = desc["observations"][0]
    imaging["detectors"] = ["NRCA1", "NRCA2"]
    imaging["dither"] = {"pattern": "NONE"}
    imaging["nints"] = 2
    monkeypatch.setenv("DMS_SEGMENT_BYTES", "60000")  # one integration of SUB160 per segment
    run = run_chain(desc, tmp_path)
    with TestClient(create_app(run.ctx.settings)) as client:
        rows = _rows(client)
        uncals = sorted(n for n in rows if n.endswith("_uncal.fits") and "_gs-" not in n)  # not guide-star data
        assert len(uncals) == 4 and all("-seg00" in n for n in uncals), uncals
        for name in uncals:
            linkages = client.get(f"/products/{name}/linkages").json()
            assert _pairs(linkages["multiplicity"]) == {("multiplicity", n) for n in uncals if n != name}
            assert all(n["links"] == [] for n in linkages["multiplicity"])
        rates = sorted(n for n in rows if n.endswith("_rate.fits") or n.endswith("_rateints.fits"))
        assert rates, sorted(rows)
        for name in rates:
            suffix = name.rsplit("_", 1)[1]
            same = {n for n in rates if n != name and n.endswith("_" + suffix)}
            assert {n["productFilename"] for n in client.get(f"/products/{name}/linkages").json()["multiplicity"]} == same
        # A combined product has no exposure, so no multiplicity
        i2d = next((n for n, r in rows.items() if n.endswith("_i2d.fits") and r["calib_level"] == 3), None)
        if i2d is not None:
            assert client.get(f"/products/{i2d}/linkages").json()["multiplicity"] == []


def test_background_exposure_is_a_contemporaneous_calibration_of_the_science(tmp_path):
    """The dedicated-background example (observation 3 is the background of observation 1):
    each science ``_cal`` of observation 1 has the background ``_rate`` among its antecedents
    as ``contemporaneous calibration`` (beside its own ``_rate`` and the c1001 image2 ASN),
    and that ``_rate`` has the science ``_cal`` among its children with the same kind;
    observation 2, outside the BACKGROUND candidate, has none."""
    desc = yaml.safe_load((REPO / "examples" / "nircam_mosaic_background.yaml").read_text())
    desc["observations"][0]["dither"] = {"pattern": "N-POINT-LINE", "npoints": 2, "size": 1.0}
    run = run_chain(desc, tmp_path)
    with TestClient(create_app(run.ctx.settings)) as client:
        rows = _rows(client)
        background = _one(rows, "jw01236003001_01101_00001_nrca1_rate.fits")
        science = sorted(n for n in rows if n.startswith("jw01236001") and n.endswith("_cal.fits") and "_gs-" not in n)
        assert len(science) == 2
        for cal in science:
            top = client.get(f"/products/{cal}/linkages").json()["antecedents"]
            own = cal.replace("_cal.fits", "_rate.fits")
            assert ("antecedent", own) in _pairs(top)
            assert ("contemporaneous calibration", background) in _pairs(top)
            asn, = (n["productFilename"] for n in top if n["kind"] == "prerequisite")
            assert "-c1001_" in asn and "_image2_" in asn
        children = client.get(f"/products/{background}/linkages").json()["children"]
        assert {c for c in science} <= {n for k, n in _pairs(children) if k == "contemporaneous calibration"}
        for cal in (n for n in rows if n.startswith("jw01236002") and n.endswith("_cal.fits")):
            kinds = {k for k, _ in _pairs(client.get(f"/products/{cal}/linkages").json()["antecedents"])}
            assert "contemporaneous calibration" not in kinds
