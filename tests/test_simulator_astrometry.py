"""Simulator astrometry: detector distortion, pointing errors, the truth WCS and the
astrometric reference catalog. Tolerances are stated beside each check."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table, vstack
from astropy.wcs import WCS

from services.simulator import build_plan, load_description, simulate, simulate_exposure
from services.simulator.distortion import detector_distortion, relative_area_window
from services.simulator.optics import ab_magnitude, jy_per_electron
from services.simulator.pointing import sky_axes, tangent_project
from shared.instruments import DETECTORS, detector

pytestmark = pytest.mark.filterwarnings("ignore::astropy.wcs.FITSFixedWarning")


def description(**simulation) -> dict:
    return {
        "program": 4331, "title": "Astrometry test", "pi": "Test Person",
        "targets": [{"name": "FIELD", "ra": 53.16, "dec": -27.79}],
        "observations": [{
            "target": "FIELD", "instrument": "NIRCAM", "detectors": ["NRCA1", "NRCA2"], "filter": "F200W",
            "readpatt": "RAPID", "ngroups": 3, "subarray": "SUB160", "roll": 20.0,
            "dither": {"pattern": "CUSTOM", "offsets": [[0.0, 0.0], [1.0, 0.5], [-0.5, 1.0]]},
            "start_time": "2025-06-01T00:00:00",
        }],
        "simulation": {"seed": 11, "write_references": False, "cosmic_ray_rate": 0.0, "stars_per_window": 60,
                       **simulation},
    }


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    return simulate(description(), tmp_path_factory.mktemp("astrometry"))


def truth_header(result, exposure_id: str) -> fits.Header:
    return fits.getheader(result.truth_dir / f"{exposure_id}_truth_rate.fits")


def exposure_ids(result) -> list[str]:
    return [p.stem for p in result.telemetry_paths]


def test_distortion_is_a_few_pixels_and_differs_by_detector():
    """Order-3 SIP about the frame centre: corners displaced 0.5-10 px, relative pixel area
    within 2 % of 1 over the frame, one polynomial per detector, the same on every call."""
    seen = []
    for name in ("NRCA1", "NRCA2", "NRCALONG", "NIS", "MIRIMAGE"):
        det = DETECTORS[name]
        sip = detector_distortion(det)
        assert sip.order == 3 and sip.crpix == ((det.nx + 1) / 2.0, (det.ny + 1) / 2.0)
        assert sip == detector_distortion(det)
        corners = np.array([-(det.nx - 1) / 2.0, (det.nx - 1) / 2.0])
        du, dv = sip.correction(corners[:, None], corners[None, :])
        assert 0.5 < np.max(np.hypot(du, dv)) < 10.0
        area = relative_area_window(sip, 1, 1, det.nx, det.ny)
        assert np.max(np.abs(area - 1.0)) < 0.02 and np.std(area) > 1e-4
        seen.append(tuple(sorted(sip.a.items())))
    assert len(set(seen)) == len(seen)


def test_truth_wcs_places_stars_and_records_the_true_pointing(sim):
    """The truth_rate WCS (TAN-SIP at the true pointing) puts every truth star at its truth
    pixel (1e-3 px); the planned window centre lands where the recorded shift says
    (0.02 px: the local scale differs from nominal by < 1 %); the shift is shared by the
    detectors of one exposure and differs between exposures."""
    plan = sim.plan
    shifts = {}
    for exposure_id in exposure_ids(sim):
        header = truth_header(sim, exposure_id)
        assert header["CTYPE1"] == "RA---TAN-SIP" and header["A_ORDER"] == 3
        wcs = WCS(header)
        stars = Table.read(sim.truth_dir / f"{exposure_id}_truth_stars.ecsv")
        x, y = wcs.all_world2pix(stars["ra"], stars["dec"], 0)
        assert np.max(np.hypot(x - stars["x"], y - stars["y"])) < 1e-3
        exp = next(e for o in plan.observations for e in o.exposures
                   if exposure_id.endswith(f"_{e.exposure:05d}_{e.detector.lower()}"))
        centre = (header["SUBSIZE1"] - 1) / 2.0
        ra, dec = wcs.all_pix2world([centre], [centre], 0)
        assert (header["TRUE_RA"], header["TRUE_DEC"]) == pytest.approx((float(ra[0]), float(dec[0])), abs=1e-9)
        assert header["TRUE_ROL"] == pytest.approx(exp.pointing.roll, abs=1e-9)  # no roll error by default
        px, py = wcs.all_world2pix([exp.pointing.ra], [exp.pointing.dec], 0)
        scale = detector(exp.detector).pixel_scale
        assert float(px[0]) - centre == pytest.approx(-header["PNT_DX"] / scale, abs=0.02)
        assert float(py[0]) - centre == pytest.approx(-header["PNT_DY"] / scale, abs=0.02)
        shifts.setdefault(exp.exposure, set()).add((header["PNT_DX"], header["PNT_DY"]))
    assert all(len(s) == 1 for s in shifts.values())  # NRCA1 and NRCA2 share the telescope's error
    values = [next(iter(s)) for s in shifts.values()]
    assert len(set(values)) == len(values)
    assert all(0.0 < math.hypot(*v) < 5 * 0.05 * math.sqrt(2) for v in values)  # 0.05 arcsec rms per axis
    index = json.loads((sim.truth_dir / "truth.json").read_text())
    entry = index["exposures"][0]
    header = truth_header(sim, entry["exposure_id"])
    assert entry["pointing_offset_arcsec"] == pytest.approx([header["PNT_DX"], header["PNT_DY"]], rel=1e-14)
    assert entry["true_pointing"] == pytest.approx(
        {"ra": header["TRUE_RA"], "dec": header["TRUE_DEC"], "roll": header["TRUE_ROL"]}, rel=1e-14)


def test_no_pointing_error_keeps_the_plan():
    desc = description(pointing_error_arcsec=0.0)
    plan = build_plan(load_description(desc))
    obs = plan.observations[0]
    exp = obs.exposures[1]
    truth = simulate_exposure(plan, obs, exp, load_description(desc).simulation, noiseless=True).truth
    assert truth.pointing == exp.pointing and truth.pointing_offset == (0.0, 0.0)


def test_roll_error_turns_the_focal_plane_about_the_reference_point():
    """With a roll error alone, both detectors turn by the same angle, and each window
    centre moves by |offset from the aperture reference point| x angle (1 %), in opposite
    directions for NRCA1 and NRCA2 (they sit on either side of it)."""
    desc = description(pointing_error_arcsec=0.0, roll_error_deg=0.05)
    knobs = load_description(desc).simulation
    plan = build_plan(load_description(desc))
    obs = plan.observations[0]
    a1, a2 = (simulate_exposure(plan, obs, e, knobs, noiseless=True).truth for e in obs.exposures[:2])
    droll = a1.roll_error
    assert droll != 0.0 and a2.roll_error == droll
    assert (a1.pointing.roll - obs.exposures[0].pointing.roll) == pytest.approx(droll, abs=1e-9)
    p1, p2 = obs.exposures[0].pointing, obs.exposures[1].pointing
    xi, eta = tangent_project(p1.ra, p1.dec, p2.ra, p2.dec)
    half = math.hypot(float(xi), float(eta)) / 2.0  # each centre is half the separation from the reference point
    for truth in (a1, a2):
        assert math.hypot(*truth.pointing_offset) == pytest.approx(half * math.radians(abs(droll)), rel=0.01)
    assert np.dot(a1.pointing_offset, a2.pointing_offset) < 0
    # the true pointing is the planned one moved by the recorded shift along detector x/y
    ex, ey = sky_axes(p1.roll)
    dxi, deta = tangent_project(p1.ra, p1.dec, a1.pointing.ra, a1.pointing.dec)
    assert float(dxi) == pytest.approx(a1.pointing_offset[0] * ex[0] + a1.pointing_offset[1] * ey[0], abs=1e-6)
    assert float(deta) == pytest.approx(a1.pointing_offset[0] * ex[1] + a1.pointing_offset[1] * ey[1], abs=1e-6)


def test_sky_has_uniform_surface_brightness():
    """Without stars FLUX = sky x relative pixel area (1e-6), and AREA is the detector
    distortion's Jacobian over the window."""
    desc = description(stars_per_window=0, bright_stars_per_window=0, sky_level=10.0)
    desc["observations"][0]["subarray"] = "SUB640"
    plan = build_plan(load_description(desc))
    obs = plan.observations[0]
    truth = simulate_exposure(plan, obs, obs.exposures[0], load_description(desc).simulation, noiseless=True).truth
    expected = relative_area_window(detector_distortion(DETECTORS["NRCA1"]), 1, 1, 640, 640)
    np.testing.assert_allclose(truth.area, expected, rtol=1e-6)
    np.testing.assert_allclose(truth.flux, 10.0 * expected, rtol=1e-6)
    assert np.ptp(truth.area) > 1e-3  # the area does vary across the window


def test_star_table_has_flux_density_and_ab_magnitude(sim):
    stars = Table.read(sim.truth_dir / f"{exposure_ids(sim)[0]}_truth_stars.ecsv")
    jy = jy_per_electron("NIRCAM", "F200W", "CLEAR")
    np.testing.assert_allclose(stars["flux_jy"], stars["flux"] * jy, rtol=1e-12)
    np.testing.assert_allclose(stars["abmag"], -2.5 * np.log10(stars["flux_jy"] / 3631.0), rtol=1e-12)
    assert str(stars["flux_jy"].unit) == "Jy"
    assert ab_magnitude(3631.0) == pytest.approx(0.0)


def test_astrometric_catalog_lists_the_bright_stars_of_the_windows(sim):
    """Every truth star of >= 300 e-/s whose centre is in a window is in the catalog; each
    catalog position is within 5 sigma (1 mas) of the truth, the scatter near 0.2 mas
    (0.1-0.3 for > 30 stars); nothing fainter than the limit is listed."""
    [path] = sim.catalog_paths
    assert path.name == "04331_field_astrometric.ecsv" and path.parent.name == "catalogs"
    catalog = Table.read(path)
    assert catalog.colnames == ["source_id", "ra", "dec", "ra_error", "dec_error", "flux"]
    assert {c: str(catalog[c].unit) for c in ("ra", "dec", "ra_error", "flux")} == {
        "ra": "deg", "dec": "deg", "ra_error": "mas", "flux": "electron / s"}
    assert np.all(catalog["flux"] >= 300.0) and np.all(catalog["ra_error"] == 0.2)
    truth = vstack([Table.read(sim.truth_dir / f"{e}_truth_stars.ecsv") for e in exposure_ids(sim)],
                   metadata_conflicts="silent")
    inside = truth[(truth["x"] >= 0) & (truth["x"] <= 159) & (truth["y"] >= 0) & (truth["y"] <= 159)
                   & (truth["flux"] >= 300.0)]
    by_id = {int(r["source_id"]): r for r in catalog}
    assert set(map(int, inside["id"])) <= set(by_id)
    unique = {int(r["id"]): r for r in inside}
    assert len(unique) > 30
    d_ra, d_dec = [], []
    for sid, star in unique.items():
        entry = by_id[sid]
        xi, eta = tangent_project(star["ra"], star["dec"], entry["ra"], entry["dec"])
        d_ra.append(float(xi) * 1000.0)
        d_dec.append(float(eta) * 1000.0)
    errors = np.hypot(d_ra, d_dec)
    assert np.max(errors) < 1.0 and np.all(errors > 0)
    assert 0.1 < np.std(np.concatenate([d_ra, d_dec])) < 0.3
    index = json.loads((sim.truth_dir / "truth.json").read_text())
    assert index["catalogs"] == [{"target": "FIELD", "target_id": 1, "path": "catalogs/04331_field_astrometric.ecsv",
                                  "n_stars": len(catalog), "flux_min_e_per_s": 300.0, "position_error_mas": 0.2}]


def test_catalog_and_truth_are_deterministic(sim, tmp_path):
    again = simulate(description(), tmp_path / "again")
    assert again.catalog_paths[0].read_bytes() == sim.catalog_paths[0].read_bytes()
    assert (again.truth_dir / "truth.json").read_bytes() == (sim.truth_dir / "truth.json").read_bytes()
    for a, b in zip(again.telemetry_paths, sim.telemetry_paths, strict=True):
        assert a.read_bytes() == b.read_bytes()
    name = f"{exposure_ids(sim)[0]}_truth_rate.fits"
    assert (again.truth_dir / name).read_bytes() == (sim.truth_dir / name).read_bytes()
