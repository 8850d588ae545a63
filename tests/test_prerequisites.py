"""Pre-observation products on the demo program's imaging observation cut down (two dither
points, now read out by NRCA1 and NRCA2) planned as the pre-image of a NIRSpec MOS
observation, run through every service and read back through the archive API:

* the MOS observation is planned, not simulated: its MSA metadata file
  (``jw01234002001_01_msa.fits``, the public layout) is delivered with the plan, checked by
  ingest against the plan and archived as an AUXILIARY ``prerequisite`` of it — its MRP, and
  read by the public pipeline's MSA reader;
* the pre-image's Level-3 science products are listed with the MOS observation's products
  as ``prerequisite`` (not MRP), and are protected like any data under exclusive access;
* every linkage kind of the program shows through the API;
* the wavefront-sensing OPD files of the time (a program-independent collection, public)
  are archived, searchable by date and downloadable, and each exposure's products link the
  OPD nearest in time as ``contributing``.
"""

from __future__ import annotations

import hashlib
import shutil
from datetime import UTC, datetime

import pytest
from astropy.io import fits
from fastapi.testclient import TestClient
from sqlalchemy import select

from services.archive.app import create_app
from services.ingest.auxiliary import msa_problem
from services.ingest.receive import receive_files
from services.simulator import simulate
from services.simulator.description import DescriptionError
from shared.catalog import Exposure, IngestRejection
from shared.runtime import dispatch_events
from shared.tokens import create_token
from tests.faults.harness import small_program
from tests.imaging_chain import run_chain

MSA = "jw01234002001_01_msa.fits"
PI = "ada@example.org"


def mos_program() -> dict:
    desc = small_program()
    imaging = desc["observations"][0]
    imaging["detectors"] = ["NRCA1", "NRCA2"]
    imaging["pre_image_for"] = [2]
    desc["observations"].append({
        "number": 2, "target": imaging["target"], "instrument": "NIRSPEC", "exp_type": "NRS_MSASPEC",
        "template": "NIRSpec MultiObject Spectroscopy", "detectors": ["NRS1", "NRS2"], "filter": "F170LP",
        "pupil": "G235M", "readpatt": "NRSIRS2RAPID", "ngroups": 10, "msa_sources": 6,
        "dither": {"pattern": "N-POINT-LINE", "npoints": 3, "size": 0.5},
    })
    desc["simulation"]["wavefront_cadence_hours"] = 48.0
    return desc


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    run = run_chain(mos_program(), tmp_path_factory.mktemp("prerequisites"))
    with run.ctx.catalog.session() as s:
        token = create_token(s, PI, 1, "tests")
    with TestClient(create_app(run.ctx.settings)) as client:
        yield run, client, {"Authorization": f"Bearer {token}"}


def _listing(api, observation: str, **params) -> dict[str, dict]:
    rows = api.get(f"/observations/{observation}/products", params={"pagesize": 1000, **params}).json()["rows"]
    return {r["productFilename"]: r for r in rows if r["productType"] != "PREVIEW"}


def test_mos_observation_is_planned_with_its_msa_file_not_simulated(chain):
    run, _, _ = chain
    assert [p.name for p in run.sim.msa_paths] == [MSA]
    assert run.sim.plan.observation(2).msa_metadata == MSA
    assert all("jw01234002" not in p.name for p in run.sim.telemetry_paths)
    assert len(run.sim.telemetry_paths) == 4  # two dithers x two detectors of the pre-image


def test_msa_file_is_an_auxiliary_prerequisite_and_mrp_of_its_observation(chain):
    _, api, _ = chain
    rows = _listing(api, "jw01234002")
    msa = rows[MSA]
    assert (msa["productType"], msa["productSubGroupDescription"], msa["linkage"]) == ("AUXILIARY", "MSA",
                                                                                      "prerequisite")
    assert msa["obs_id"] == "jw01234002" and msa["dataRights"] == "EXCLUSIVE_ACCESS"
    mrp = _listing(api, "jw01234002", mrp_only="true")
    assert list(mrp) == [MSA] and mrp[MSA]["productGroupDescription"] == "Minimum Recommended Products"
    linkages = api.get(f"/products/{MSA}/linkages").json()
    assert (linkages["observation"], linkages["linkage"]) == ("jw01234002", "prerequisite")
    # the observation itself is still planned: its MSA file is planning input, not data
    assert [o["obs_id"] for o in api.get("/observations").json()["rows"]] == ["jw01234001"]
    mos = api.get("/observations/jw01234002").json()
    assert (mos["calib_level"], mos["n_products"], mos["instrument_name"]) == (-1, 1, "NIRSPEC/MSA")


def test_msa_file_is_protected_and_read_by_the_public_pipeline(chain, tmp_path):
    _, api, auth = chain
    assert api.get(f"/download/{MSA}").status_code == 401  # exclusive access, like the science
    r = api.get(f"/download/{MSA}", headers=auth)
    assert r.status_code == 200
    path = tmp_path / MSA
    path.write_bytes(r.content)
    from jwst.assign_wcs.nirspec import get_open_msa_slits

    for point in (1, 2, 3):
        slits = get_open_msa_slits("01234", str(path), 1, point)
        assert len(slits) == 6 and {s.shutter_state for s in slits} == {"1x1"}
    with fits.open(path) as hdul:
        assert (hdul[0].header["PROGRAM"], hdul[0].header["OBSERVTN"], hdul[0].header["FILENAME"]) == (
            "01234", "002", MSA)
        assert set(hdul["SOURCE_INFO"].data["preimage_id"]) == {"01234001_000"}  # the pre-image observation
        assert len(hdul["SHUTTER_INFO"].data) == 6 * 3 * 3  # slitlets of 3 shutters at 3 dither points


def test_pre_image_products_are_prerequisites_of_the_mos_observation(chain):
    _, api, auth = chain
    mos = _listing(api, "jw01234002")
    pre = {n: r for n, r in mos.items() if n != MSA}
    assert sorted(n.rsplit("_", 1)[1] for n in pre) == ["cat.ecsv", "i2d.fits"]
    assert {(r["obs_id"], r["linkage"], r["calib_level"], r["productGroupDescription"]) for r in pre.values()} == {
        ("jw01234001", "prerequisite", 3, None)}
    i2d = next(n for n in pre if n.endswith("_i2d.fits"))
    # in its own observation it is still the composed MRP product
    own = _listing(api, "jw01234001")[i2d]
    assert (own["linkage"], own["productGroupDescription"]) == ("composition", "Minimum Recommended Products")
    assert api.get(f"/products/{i2d}/linkages").json()["prerequisite_of"] == ["jw01234002"]
    assert api.get("/products", params={"obsid": own["obsID"], "filename": MSA}).json()["total"] == 0
    # pre-images are protected like science data
    assert api.get(f"/download/{i2d}").status_code == 401
    assert api.get(f"/download/{i2d}", headers=auth).status_code == 200


def test_every_linkage_kind_through_the_api(chain):
    run, api, _ = chain
    kinds: dict[str, str] = {}

    def walk(nodes):
        for n in nodes:
            kinds.setdefault(n["kind"], n["productFilename"])
            walk(n["links"])

    for obs in ("jw01234001", "jw01234002"):
        for name, row in _listing(api, obs).items():
            kinds.setdefault(row["linkage"], name)
    for suffix, level in (("i2d", 3), ("uncal", None), ("rate", None)):
        name = run.filenames(suffix, level)[0]
        linkages = api.get(f"/products/{name}/linkages").json()
        walk(linkages["antecedents"])
        walk(linkages["children"])
        walk(linkages["multiplicity"])
        for ref in linkages["contributing"]:
            kinds.setdefault(ref["kind"], ref["productFilename"])
    assert {"aggregation", "composition", "prerequisite", "antecedent", "multiplicity", "contributing"} <= set(kinds)
    assert kinds["multiplicity"].endswith(("_nrca1_uncal.fits", "_nrca2_uncal.fits"))


def test_unplanned_msa_file_is_refused_with_a_reason(chain, tmp_path):
    run, _, _ = chain
    stray = tmp_path / "jw01234003001_01_msa.fits"
    shutil.copy(run.sim.msa_paths[0], stray)
    received = receive_files(run.ctx, [stray])
    assert received[0].kind == "msa"
    inline = run.inline
    dispatch_events(run.ctx.catalog, inline, event_ids=[r.event_id for r in received if r.event_id])
    inline.run_until_idle()
    with run.ctx.catalog.session() as s:
        rejection = s.scalar(select(IngestRejection).where(IngestRejection.raw_filename == stray.name))
    assert rejection.reason == "unplanned_msa" and "names no observation" in rejection.detail


def test_msa_content_is_checked(tmp_path, chain):
    run, _, _ = chain
    assert msa_problem(run.sim.msa_paths[0], "01234") is None
    assert "PROGRAM" in msa_problem(run.sim.msa_paths[0], "04321")
    bad = tmp_path / MSA
    with fits.open(run.sim.msa_paths[0]) as hdul:
        fits.HDUList([hdul[0].copy(), hdul["SHUTTER_INFO"].copy()]).writeto(bad)
    assert msa_problem(bad, "01234") == "it has no SOURCE_INFO table"
    (tmp_path / "junk_msa.fits").write_bytes(b"not fits")
    assert "not a readable FITS file" in msa_problem(tmp_path / "junk_msa.fits", "01234")


@pytest.mark.parametrize("change, words", [
    (lambda d: d["observations"][0].update(pre_image_for=[7]), "7 is not an observation"),
    (lambda d: d["observations"][0].update(pre_image_for=[1]), "its own pre-image"),
    (lambda d: d["observations"][1].update(exp_type="NRS_IMAGE"), "exp_type"),
    (lambda d: d["observations"][1].update(pupil="G999"), "grating"),
])
def test_bad_prerequisites_are_refused_with_a_reason(tmp_path, change, words):
    desc = mos_program()
    change(desc)
    with pytest.raises(DescriptionError, match=words):
        simulate(desc, tmp_path / "sim")


# ------------------------------------------------------------------ wavefront collection


def test_opd_files_have_the_public_layout(chain):
    run, _, _ = chain
    names = [p.name for p in run.sim.opd_paths]
    assert names == ["R2025022801-NRCA3_FP1-1.fits", "R2025030201-NRCA3_FP1-1.fits"]  # before and after
    with fits.open(run.sim.opd_paths[0]) as hdul:
        header, opd = hdul[0].header, hdul[0].data
        assert opd.shape == (256, 256) and header["BUNIT"] == "m" and header["APERNAME"] == "NRCA3_FP1"
        assert header["PUPLSCAL"] == pytest.approx(header["PUPLDIAM"] / 256)
        pupil = opd != 0
        rms_nm = (opd[pupil] ** 2).mean() ** 0.5 * 1e9
        assert 20 < rms_nm < 200 and header["WFE_RMS"] == pytest.approx(rms_nm, abs=1e-3)
        assert abs(opd).max() < 1e-6  # metres: a fraction of a micrometre
        assert hdul["RESULT_PHASE"].data == pytest.approx(opd * 1e6, rel=1e-5, abs=1e-6)  # micrometres


def test_wavefront_collection_is_searchable_by_date(chain):
    _, api, _ = chain
    every = api.get("/wavefront").json()
    assert every["total"] == 2
    first, second = every["rows"]
    assert first["date_obs"].startswith("2025-02-28") and second["date_obs"].startswith("2025-03-02")
    assert first["dataRights"] == "PUBLIC" and first["apername"] == "NRCA3_FP1" and first["rms_nm"] > 0
    near = api.get("/wavefront", params={"date": "2025-03-01T20:00:00"}).json()["rows"]
    assert [r["filename"] for r in near] == [second["filename"], first["filename"]]
    assert near[0]["delta_days"] == pytest.approx(4 / 24, abs=1e-6) and near[1]["delta_days"] == pytest.approx(-44 / 24, abs=1e-6)
    assert api.get("/wavefront", params={"date": str(first["date_obs_mjd"])}).json()["rows"][0]["delta_days"] == 0
    within = api.get("/wavefront", params={"t_min": "2025-03-01..2025-03-03"}).json()
    assert [r["filename"] for r in within["rows"]] == [second["filename"]]
    bad = api.get("/wavefront", params={"date": "yesterday-ish"})
    assert bad.status_code == 400 and "date" in bad.json()["detail"]
    got = api.get(f"/wavefront/{first['filename']}")  # public: no token
    assert got.status_code == 200 and hashlib.sha256(got.content).hexdigest() == first["sha256"]
    assert api.get("/wavefront/R2099010101-NRCA3_FP1-1.fits").status_code == 404


def test_exposure_products_link_the_nearest_opd(chain):
    run, api, _ = chain
    rate = run.filenames("rate")[0]
    with run.ctx.catalog.session() as s:
        start = s.scalar(select(Exposure.start_time).where(Exposure.name == rate.removesuffix("_rate.fits")))
    start = start.replace(tzinfo=UTC) if start.tzinfo is None else start
    rows = api.get("/wavefront").json()["rows"]
    nearest = min(rows, key=lambda r: abs((datetime.fromisoformat(r["date_obs"]) - start).total_seconds()))
    opd, = (n for n in api.get(f"/products/{rate}/linkages").json()["contributing"] if n["productType"] == "WAVEFRONT")
    assert (opd["kind"], opd["productFilename"], opd["reftype"]) == ("contributing", nearest["filename"], "OPD")
    assert opd["dataURL"].endswith(f"/wavefront/{nearest['filename']}") and not opd["in_context"]
    assert opd["delta_days"] == pytest.approx(
        (datetime.fromisoformat(nearest["date_obs"]) - start).total_seconds() / 86400, abs=1e-5)
    i2d = run.filenames("i2d", 3)[0]  # a combined product: its exposures' OPDs are theirs
    assert all(n["productType"] == "REFERENCE" for n in api.get(f"/products/{i2d}/linkages").json()["contributing"])


def test_bad_opd_file_is_refused_with_a_reason(chain, tmp_path):
    run, _, _ = chain
    bad = tmp_path / "R2025030102-NRCA3_FP1-1.fits"
    with fits.open(run.sim.opd_paths[0]) as hdul:
        hdul[0].header["BUNIT"] = "um"
        hdul.writeto(bad)
    received = receive_files(run.ctx, [bad])
    assert received[0].kind == "opd"
    dispatch_events(run.ctx.catalog, run.inline, event_ids=[r.event_id for r in received if r.event_id])
    run.inline.run_until_idle()
    with run.ctx.catalog.session() as s:
        rejection = s.scalar(select(IngestRejection).where(IngestRejection.raw_filename == bad.name))
    assert rejection.reason == "invalid_opd" and "BUNIT" in rejection.detail


def test_example_plans_a_pre_image_a_mos_observation_and_wavefront_sensing():
    from services.simulator.description import load_description
    from services.simulator.plan_builder import build_plan
    from services.simulator.wavefront import sensing_times
    from tests.system import REPO

    desc = load_description(REPO / "examples" / "nirspec_mos_preimaging.yaml")
    plan = build_plan(desc)
    assert plan.observation(1).pre_image_for == [2]
    assert plan.observation(2).msa_metadata == "jw02468002001_01_msa.fits"
    assert len(sensing_times(plan, desc.simulation.wavefront_cadence_hours)) == 2
