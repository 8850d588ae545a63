"""Time-series imaging with a transiting host star: description checks, the trapezoid
light curve, its truth, and the depth measured on detector-1 ``_rateints`` of the demo's
TSO observation (tolerances stated beside each check)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import yaml
from astropy.io import fits
from astropy.table import Table

from services.detector1.pipeline import calibrate
from services.ingest.pipeline import ingest_telemetry
from services.simulator import DescriptionError, build_plan, load_description
from services.simulator.exposure import host_star_id
from services.simulator.transit import trapezoid
from shared.instruments import exposure_timing, subarray
from shared.refdata import LocalReferences

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
DEPTH_TOLERANCE = 0.05  # relative: the demo is designed for ~1.5 % (1 sigma)
HOST_TARGET = 2  # DEMO-HOST-1 is the demo's second target
APERTURE_PIX = 18.0  # radius: 3.8 sigma of the 11-pixel FWHM weak-lens PSF, 99.9 % of the flux


def demo_tso() -> dict:
    """The TSO observation of the demo program alone."""
    desc = yaml.safe_load((EXAMPLES / "nircam_imaging.yaml").read_text())
    desc["observations"] = [o for o in desc["observations"] if o.get("tsovisit")]
    return desc


@pytest.fixture(scope="module")
def tso(demo_tso_sim):
    return demo_tso_sim  # simulated once for the session (tests/conftest.py)


def test_trapezoid():
    t = np.array([-10.0, -3.5, -3.0, -2.6, -2.2, 0.0, 2.2, 3.0, 10.0])
    expected = [1.0, 1.0, 1 - 0.01 * 0.5 / 0.8, 0.99, 0.99, 0.99, 0.99, 1 - 0.01 * 0.5 / 0.8, 1.0]
    np.testing.assert_allclose(trapezoid(t, 0.0, 7.0, 0.8, 0.01), expected, atol=1e-12)
    box = trapezoid(np.array([-1.0, -0.49, 0.49, 1.0]), 0.0, 1.0, 0.0, 0.2)
    np.testing.assert_allclose(box, [1.0, 0.8, 0.8, 1.0])


def _with(**changes) -> dict:
    desc = demo_tso()
    desc["observations"][0].update(changes)
    return desc


@pytest.mark.parametrize(
    ("desc", "words"),
    [
        (_with(tsovisit=False), ["observations[0]", "transit", "tsovisit: true"]),
        (_with(tsovisit=False, transit=None), ["observations[0]", "host_flux", "tsovisit: true"]),
        (_with(host_flux=None), ["observations[0]", "transit: needs host_flux"]),
        (_with(transit={"depth": 0.01, "duration_s": 4.0, "ingress_s": 2.5}), ["ingress_s", "half of duration_s"]),
        (_with(transit={"depth": 1.5, "duration_s": 4.0}), ["observations[0].transit.depth"]),
        (_with(detectors=["NRCALONG"], filter="F444W"), ["pupil", "WLP8", "short-wavelength"]),
        (_with(filter="F200W", pupil="F405N"), ["pupil", "F405N", "F444W"]),
    ],
)
def test_bad_tso_descriptions_name_the_field(desc, words):
    with pytest.raises(DescriptionError) as info:
        load_description(desc)
    for word in words:
        assert word in str(info.value)


def test_tso_observation_defaults_to_time_series_imaging():
    desc = _with(exp_type=None)
    del desc["observations"][0]["exp_type"]
    obs = build_plan(load_description(desc)).observations[0]
    assert obs.exp_type == "NRC_TSIMAGE" and obs.tsovisit and obs.pupil == "WLP8"


def test_light_curve_truth(tso):
    """60 integrations, mid-transit in the middle of the observation, full depth 1 % between
    second and third contact; the mid times are those ingest writes in INT_TIMES (1 ms);
    the host star is in the star table at its mean flux and is not saturated."""
    [telemetry] = tso.telemetry_paths
    stem = telemetry.stem
    curve = Table.read(tso.truth_dir / f"{stem}_truth_lightcurve.ecsv")
    assert curve.colnames == ["integration", "mid_mjd_utc", "mid_bjd_tdb", "relative_flux", "host_flux", "x", "y"]
    assert len(curve) == 60 and list(curve["integration"]) == list(range(1, 61))
    rel = np.asarray(curve["relative_flux"])
    assert rel.min() == pytest.approx(0.99, abs=1e-12) and rel.max() == 1.0
    assert np.sum(rel == 1.0) > 20 and np.sum(np.isclose(rel, 0.99)) > 15
    np.testing.assert_allclose(curve["host_flux"], 4.0e7 * rel)
    index = json.loads((tso.truth_dir / "truth.json").read_text())
    [entry] = index["exposures"]
    obs = tso.plan.observations[0]
    sub = subarray("NIRCAM", obs.subarray)
    duration = exposure_timing("NIRCAM", sub, obs.readpatt, obs.ngroups, obs.nints).duration
    transit = entry["transit"]
    assert transit["mid_time_s_after_observation_start"] == pytest.approx(duration / 2.0, rel=1e-12)
    assert (transit["depth"], transit["duration_s"], transit["ingress_s"]) == (0.01, 7.0, 0.8)
    assert entry["host_star"]["id"] == host_star_id(HOST_TARGET)
    assert entry["truth_lightcurve"] == f"truth/{stem}_truth_lightcurve.ecsv"
    ingested = ingest_telemetry(telemetry.read_bytes(), lambda program: tso.plan,
                                created=datetime(2026, 1, 1, tzinfo=UTC), software_version="test",
                                segment_bytes=2_000_000_000)
    int_times = ingested.files[0].product.tables["INT_TIMES"]
    np.testing.assert_allclose(curve["mid_mjd_utc"], int_times["int_mid_MJD_UTC"], rtol=0, atol=1e-3 / 86400)
    stars = Table.read(tso.truth_dir / f"{stem}_truth_stars.ecsv")
    [host] = stars[stars["id"] == host_star_id(HOST_TARGET)]
    assert host["flux"] == pytest.approx(4.0e7 * rel.mean(), rel=1e-12)
    assert (host["x"], host["y"]) == pytest.approx((curve["x"][0], curve["y"][0]))
    assert not host["saturated"] and 10000 < host["peak_dn"] < 40000


def _calibrate(tso):
    [telemetry] = tso.telemetry_paths
    ingested = ingest_telemetry(telemetry.read_bytes(), lambda program: tso.plan,
                                created=datetime(2026, 1, 1, tzinfo=UTC), software_version="test",
                                segment_bytes=2_000_000_000)
    uncal = ingested.files[0].product
    out = calibrate(uncal, LocalReferences(refs_dir=tso.reference_paths[0].parent), software_version="test",
                    created="2026-01-01T00:00:00")
    return out.rateints.images["SCI"].astype(np.float64)


def test_transit_depth_is_recovered_from_the_rateints(tso):
    """Aperture sums of the detector-1 _rateints: 1 - <full transit> / <out of transit>
    equals the injected 1 % (diluted by the little field light in the aperture, computed
    from the truth) within 5 %."""
    [telemetry] = tso.telemetry_paths
    stem = telemetry.stem
    rateints = _calibrate(tso)
    assert rateints.shape == (60, 64, 64)
    curve = Table.read(tso.truth_dir / f"{stem}_truth_lightcurve.ecsv")
    rel = np.asarray(curve["relative_flux"])
    yy, xx = np.indices(rateints.shape[1:])
    aperture = np.hypot(xx - curve["x"][0], yy - curve["y"][0]) <= APERTURE_PIX
    sums = np.nansum(rateints[:, aperture], axis=1)
    measured = 1.0 - sums[np.isclose(rel, 0.99)].mean() / sums[rel == 1.0].mean()
    truth_rate = fits.getdata(tso.truth_dir / f"{stem}_truth_rate.fits", "SCI").astype(np.float64)
    stars = Table.read(tso.truth_dir / f"{stem}_truth_stars.ecsv")
    [host] = stars[stars["id"] == host_star_id(HOST_TARGET)]
    host_out = host["rate"] / rel.mean()  # DN/s of the host out of transit (all inside the aperture)
    field = truth_rate[aperture].sum() - host["rate"]  # sky and field stars, DN/s
    expected = 0.01 * host_out / (host_out + field)
    assert expected > 0.0099
    assert abs(measured / expected - 1.0) < DEPTH_TOLERANCE, (measured, expected)
