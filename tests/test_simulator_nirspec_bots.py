"""NIRSpec bright-object time series (NRS_BRIGHTOBJ: G395M behind F290LP through S1600A1 on
NRS1, SUB2048) in the simulator: the grating law and its inverse, the band on the detector
and in the window, the resolving power, the slit, the description's checks, the truth
(spectrum, transit, light curve), the reference files and their selection, and
``examples/nirspec_bots.yaml`` through ingest (in segments) and detector 1 in this process
(one module-scoped run, about 15 s).

Tolerances (stated beside each check):
- the source summed over a column of the rendered window equals the truth spectrum's
  ``source_e_per_s`` to 1e-9 (the same rendering) and ``observed_jy * electrons_per_jy *
  transmission`` to 1e-6 (the truth's own account of it);
- a noiseless exposure (no sky) through ingest and detector 1: per column whose pixels
  about the trace are all good, the out-of-transit rate back in electrons (gain, flat,
  pixel area) summed over the column is the truth spectrum's electrons within 1 %
  (measured: 4.4e-4 at most, 4e-5 the median: the uint16 rounding of the groups); the in-transit
  over out-of-transit ratio of a column is ``1 - observed_depth`` within 1e-3, the median
  over the columns within 1e-4 (the uint16 rounding of a noiseless ramp is the same in
  every integration, so it does not average away: measured 4.5e-4 and 4e-5; the 4.3 um
  band stands 2e-3 above the 1 % base);
- the noisy example through ingest and detector 1 (``_rateints`` of its four segments):
  the box-sum white-light depth over 2.87-5.10 um, after a background per column and
  integration from the window's rows beyond the slit, is the truth's electron-weighted one
  within 3 % (the white light's scatter, 2.7e-4 per integration, over 24 out-of-transit
  and 20 full-depth integrations is 0.8 % of the depth; measured 0.2 %);
- PHOTOM: the truth's source (DN/s) over the FLAT reference, summed over a column, times
  PHOTMJ x RELRESPONSE is the column's ``observed_jy x transmission`` within 1 % (the
  float32 reference: measured 5e-7).
"""

from __future__ import annotations

import json
import shutil
import warnings
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from stdatamodels.jwst import datamodels as dm

from services.detector1.pipeline import calibrate
from services.ingest.pipeline import ingest_telemetry
from services.simulator import DescriptionError, build_plan, load_description, simulate_exposure
from services.simulator.detector_model import make_detector_model
from services.simulator.optical_refs import flat_filename, write_optical_references
from services.simulator.optics import COLLECTING_AREA_M2, PLANCK_J_S
from services.simulator.ramps import FrameSchedule
from services.simulator.runner import host_star, target_spectrum
from services.simulator.slit_refs import (
    nirspec_bots_filename,
    nirspec_fs_filename,
    slit_trace_table,
    write_nirspec_fs_references,
)
from services.simulator.spectrograph import (
    LRS_SLITLESS,
    NIRSPEC_BOTS,
    NIRSPEC_FS,
    GratingDispersion,
    ModulatedSpectrum,
    SlitSource,
    render_slit,
    slit_spectrograph,
)
from services.simulator.telemetry_writer import write_telemetry
from services.simulator.transit import WHITE_LIGHT_BAND_UM
from services.simulator.truth import write_spectrum_truth
from services.simulator.wavelengthrange_ref import WAVELENGTH_RANGES
from shared.datamodels.fits_io import read_product
from shared.instruments import detector, subarray
from shared.refdata import LocalReferences
from shared.refdata.files import reference_files
from shared.refdata.selection import select_from_files
from tests.slit_examples import edited, run_in_process

pytestmark = pytest.mark.filterwarnings("ignore::astropy.wcs.FITSFixedWarning")

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "nirspec_bots.yaml"
STEM = "jw04522001001_01101_00001"
BOTS = NIRSPEC_BOTS
SUB = subarray("NIRSPEC", "SUB2048")
WINDOW = (SUB.xstart - 1, SUB.ystart - 1, SUB.xsize, SUB.ysize)
ROWS = 7  # rows either side of the trace summed: 10 sigma of the 5.1 um PSF
BACKGROUND_ROWS = np.r_[0:3, 29:32]  # window rows 4 px and more beyond the slit's image


def example() -> dict:
    return edited(EXAMPLE)


def changed(obs: dict | None = None, target: dict | None = None, simulation: dict | None = None) -> dict:
    """The example with fields of its observation, target or simulation replaced (None
    values remove a field)."""
    return edited(EXAMPLE, obs, target, simulation)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    # 12 MB segments: four of the 50 integrations' 39 MB _uncal
    return run_in_process(example(), tmp_path_factory.mktemp("bots"), ("ingest", "detector1"),
                          segment_bytes=12_000_000)


def _truth(run: dict, kind: str) -> Table:
    return Table.read(run["truth_dir"] / f"{STEM}_nrs1_truth_{kind}.ecsv")


def _refs_dir(run: dict) -> Path:
    return Path(run["sim"].reference_paths[0]).parent


def _reference(run: dict, name: str) -> Path:
    return next(Path(p) for p in run["sim"].reference_paths if Path(p).name == name)


def _segments(run: dict, suffix: str) -> list[Path]:
    return [run["out"] / n for n in run["names"] if n.startswith(STEM) and n.endswith(f"_nrs1_{suffix}.fits")]


def _box(rates: np.ndarray, columns: np.ndarray, trace: np.ndarray) -> np.ndarray:
    """Per integration and column: the sum over the rows within :data:`ROWS` of the trace."""
    rows = np.rint(trace).astype(int) - (SUB.ystart - 1)
    out = np.zeros((rates.shape[0], columns.size))
    for k, (x, y) in enumerate(zip(columns, rows, strict=True)):
        out[:, k] = rates[:, y - ROWS:y + ROWS + 1, x].sum(axis=1)
    return out


# --- the grating and the mode --------------------------------------------------------------

def test_the_grating_law_and_its_inverse():
    law = BOTS.law
    assert isinstance(law, GratingDispersion) and (law.reference, law.linear, law.quadratic) == (4.2, 0.00179, 2.0e-8)
    d = np.linspace(-800.0, 600.0, 57)
    np.testing.assert_allclose(law.offset(law.wavelength(d)), d, atol=1e-9)
    np.testing.assert_allclose(law.derivative(d), law.wavelength(d + 0.5) - law.wavelength(d - 0.5), rtol=1e-9)
    # wavelength increases with the column (DISPAXIS 1), about 0.00179 um per pixel
    s = BOTS.pixels()
    assert BOTS.dispaxis == 1 and np.all(np.diff(BOTS.wavelength(s)) > 0)
    assert 0.00175 < BOTS.dispersion(s).min() < BOTS.dispersion(s).max() < 0.00182
    np.testing.assert_allclose(BOTS.pixel(BOTS.wavelength(s)), s, atol=1e-9)
    # the root stays exact without curvature, and on the spectrum's branch for a negative dispersion
    straight = GratingDispersion(4.2, 0.00179, 0.0)
    np.testing.assert_allclose(straight.offset(np.array([3.0, 5.0])), (np.array([3.0, 5.0]) - 4.2) / 0.00179,
                               rtol=1e-12)
    reverse = GratingDispersion(4.2, -0.00179, 2.0e-8)
    np.testing.assert_allclose(reverse.offset(reverse.wavelength(d)), d, atol=1e-9)


def test_the_mode_is_g395m_through_s1600a1_in_sub2048():
    assert (BOTS.exp_type, BOTS.detector, BOTS.filter, BOTS.grating, BOTS.slit, BOTS.aperture, BOTS.subarrays) == (
        "NRS_BRIGHTOBJ", "NRS1", "F290LP", "G395M", "S1600A1", "NRS_S1600A1_SLIT", ("SUB2048",))
    assert BOTS.time_series and not BOTS.slitless and LRS_SLITLESS.time_series and LRS_SLITLESS.slitless
    assert slit_spectrograph("NRS_BRIGHTOBJ") is BOTS and slit_spectrograph("nrs_brightobj", "S1600A1") is BOTS
    with pytest.raises(ValueError, match="simulated through S1600A1, not S200A1"):
        slit_spectrograph("NRS_BRIGHTOBJ", "S200A1")
    # the prism's slit: the same place, size, trace, PSF, blur and sky; the prism models unchanged
    prism = NIRSPEC_FS["S1600A1"]
    same = ("imx", "imy", "slit_width", "slit_length", "pixel_scale", "trace_coeffs", "detector_sigma", "sky_levels")
    assert [getattr(BOTS, k) for k in same] == [getattr(prism, k) for k in same]
    assert (prism.grating, prism.filter, prism.exp_type, prism.time_series) == ("PRISM", "CLEAR", "NRS_FIXEDSLIT",
                                                                                False)
    assert prism.band == pytest.approx((0.6, 5.3), abs=0.01)
    # the white light: BOTS its whole band, the LRS slitless 5-12 um as before
    assert BOTS.white_light_band == (2.87, 5.10)
    assert LRS_SLITLESS.white_light_band == WHITE_LIGHT_BAND_UM == (5.0, 12.0)


def test_the_band_falls_on_nrs1_between_the_reference_pixels_and_in_sub2048():
    border = detector("NRS1").refpix_border
    assert BOTS.span == (391, 1639) and border <= BOTS.span[0] and BOTS.span[1] <= 2047 - border
    low, high = BOTS.band
    assert 2.87 <= low < 2.87 + 0.0018 and 5.10 - 0.0019 < high <= 5.10  # within a pixel of the band's ends
    selector = {name: (lo, hi) for name, _, lo, hi in WAVELENGTH_RANGES}["F290LP_G395M"]
    assert selector[0] <= low and high <= selector[1]  # WAVELENGTHRANGE keeps every simulated column
    assert (SUB.xstart, SUB.ystart, SUB.xsize, SUB.ysize, SUB.noutputs) == (1, 1025, 2048, 32, 1)
    trace = BOTS.trace(BOTS.pixels())
    half = 0.5 * BOTS.slit_length_px
    assert SUB.ystart - 1 + 3 < trace.min() - half and trace.max() + half < SUB.ystart - 1 + SUB.ysize - 3


def test_resolving_power_and_electrons_per_jy():
    np.testing.assert_allclose(BOTS.resolving_power(np.array([3.0, 4.0, 5.0])), [768.0, 945.5, 1083.3], rtol=1e-3)
    r = BOTS.resolving_power(np.linspace(2.9, 5.1, 23))
    assert np.all(np.diff(r) > 0) and 740 < r.min() and r.max() < 1100  # near 1000
    # R = lambda / (FWHM of the LSF x the dispersion)
    s = BOTS.pixel(4.0)
    assert BOTS.resolving_power(4.0) == pytest.approx(4.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)) * BOTS.lsf_sigma(4.0)
                                                            * BOTS.dispersion(s)), rel=1e-12)
    expected = 1e-26 / PLANCK_J_S * COLLECTING_AREA_M2 * 0.45 * BOTS.dispersion(s) / 4.0
    assert BOTS.electrons_per_jy(s) == pytest.approx(expected, rel=1e-12)
    assert BOTS.electrons_per_jy(s) == pytest.approx(7.70e4, rel=1e-3)
    assert BOTS.throughput(np.array([4.0]))[0] == 0.45 and BOTS.throughput(np.array([2.87, 5.1])).max() < 0.18


def test_the_slit_cuts_the_star_and_holds_the_sky():
    # a centred star loses nothing measurable in 1.6"; near a jaw it does
    assert np.all(BOTS.slit_transmission(np.array([2.87, 4.0, 5.1])) > 1.0 - 1e-9)
    assert BOTS.slit_transmission(np.array([5.0]), 0.75)[0] < 0.9
    # the sky fills the slit's 16 rows, nothing outside them
    scene = render_slit(BOTS, [], WINDOW, sky_mjy_sr=BOTS.sky)
    x = int(round(float(BOTS.pixel(4.0))))
    column = scene.sky[:, x]
    centre = float(BOTS.trace(x)) - (SUB.ystart - 1)
    rows = np.arange(SUB.ysize)
    inside, outside = np.abs(rows - centre) < 4.0, np.abs(rows - centre) > 12.0
    level = BOTS.sky_electrons(np.array([float(x)]), BOTS.sky(BOTS.wavelength(np.array([float(x)]))))[0]
    np.testing.assert_allclose(column[inside], level, rtol=1e-6)
    assert np.all(column[outside] < 1e-6 * level) and 0.02 < level < 0.1  # e-/s per pixel


# --- the description -----------------------------------------------------------------------

def test_the_example_plans_a_bright_object_time_series():
    desc = load_description(example())
    (obs,) = build_plan(desc).observations
    assert (obs.exp_type, obs.filter, obs.pupil, obs.subarray, obs.detectors, obs.tsovisit, obs.readpatt) == (
        "NRS_BRIGHTOBJ", "F290LP", "G395M", "SUB2048", ["NRS1"], True, "NRSRAPID")
    assert (obs.template, obs.aperture.name, obs.fixed_slit, obs.nints, obs.ngroups) == (
        "NIRSpec Bright Object Time Series", "NRS_S1600A1_SLIT", "S1600A1", 50, 6)
    spec = desc.observations[0]
    assert spec.spectroscopic_tso and not spec.slitless
    host = host_star(desc, 1)
    assert host.flux is None and host.transit.chromatic
    assert target_spectrum(desc, 1).flux_jy == 0.1
    np.testing.assert_allclose(host.transit.depth_at(np.array([3.0, 4.2, 4.3, 4.4, 5.0])),
                               [0.01, 0.011, 0.012, 0.011, 0.01])
    # the slit defaults to S1600A1
    (default,) = build_plan(load_description(changed(obs={"fixed_slit": None}))).observations
    assert default.fixed_slit == "S1600A1" and default.aperture == obs.aperture
    # a grey transit is a transit too
    load_description(changed(obs={"transit": {"depth": 0.01, "duration_s": 60.0}}))


@pytest.mark.parametrize(
    ("obs", "target", "words"),
    [
        ({"subarray": "FULL"}, None, ["observations[0]", "subarray", "SUB2048", "not FULL"]),
        ({"subarray": "SUBS200A1"}, None, ["observations[0]", "SUB2048", "not SUBS200A1"]),
        ({"tsovisit": False, "transit": None}, None, ["observations[0]", "NRS_BRIGHTOBJ", "tsovisit: true"]),
        ({"host_flux": 1.0e6}, None, ["host_flux", "targets[].spectrum", "imaging time series"]),
        ({"dither": {"pattern": "2-POINT-NOD"}}, None, ["observations[0]", "dither", "pattern NONE"]),
        ({"is_background": True}, None, ["observations[0]", "time series of its target", "is_background"]),
        ({"filter": "CLEAR", "pupil": "PRISM"}, None, ["filter/pupil", "G395M behind F290LP", "not CLEAR/PRISM"]),
        ({"pupil": "G395H"}, None, ["filter/pupil", "not F290LP/G395H"]),
        ({"fixed_slit": "S200A1"}, None, ["observations[0]", "fixed_slit", "through S1600A1", "not S200A1"]),
        ({"detectors": ["NRS2"]}, None, ["observations[0]", "images on NRS1 alone"]),
        ({"readpatt": "NRSIRS2"}, None, ["observations[0]", "readpatt", "NRSRAPID or NRS", "IRS2"]),
        ({"exp_type": "NRS_FIXEDSLIT", "tsovisit": False, "transit": None}, None,
         ["filter/pupil", "prism behind CLEAR", "bright-object time series, exp_type NRS_BRIGHTOBJ"]),
        (None, {"spectrum": {"flux_jy": 0.1, "reference_wavelength": 4.0,
                             "lines": [{"wavelength": 2.0, "fwhm": 0.01, "strength": -0.5}]}},
         ["targets[0].spectrum.lines[0].wavelength", "NIRSpec S1600A1 G395M/F290LP", "2.87-5.10 um"]),
    ],
)
def test_bad_bright_object_descriptions_name_the_field_and_the_reason(obs, target, words):
    with pytest.raises(DescriptionError) as info:
        load_description(changed(obs=obs, target=target))
    for word in words:
        assert word in str(info.value)


def test_an_imaging_transit_names_both_spectroscopic_time_series():
    desc = edited(EXAMPLE.parent / "nircam_imaging.yaml")
    desc["observations"] = [o for o in desc["observations"] if o.get("tsovisit")]
    del desc["observations"][0]["host_flux"]
    with pytest.raises(DescriptionError, match=r"transit: needs host_flux.*MIR_LRS-SLITLESS or NRS_BRIGHTOBJ"):
        load_description(desc)


# --- a noiseless exposure --------------------------------------------------------------------

def test_a_noiseless_exposure_sums_to_the_truth_spectrum_and_carries_the_transit(run, tmp_path):
    """No sky, no noise: the truth spectrum is what the renderer put in each column, and
    what detector 1 makes of the noiseless telemetry sums back to it; the light the planet
    blocks is the host's spectrum times the depth through the same slit; each column's
    in/out-of-transit ratio is 1 - its observed depth."""
    desc = load_description(changed(simulation={"sky_level": 0.0}))
    plan = build_plan(desc)
    (obs,) = plan.observations
    sim = simulate_exposure(plan, obs, obs.exposures[0], desc.simulation, noiseless=True, host=host_star(desc, 1),
                            spectrum=target_spectrum(desc, 1))
    slit, curve, truth = sim.truth.slit, sim.truth.host.curve, sim.truth
    spectrum = Table.read(write_spectrum_truth(sim, tmp_path))
    columns = np.asarray(spectrum["column"], int)
    inner = (columns >= BOTS.span[0] + 10) & (columns <= BOTS.span[1] - 10)
    np.testing.assert_allclose(spectrum["source_e_per_s"][inner],
                               (spectrum["observed_jy"] * spectrum["electrons_per_jy"] * spectrum["transmission"])[inner],
                               rtol=1e-6)
    meta = spectrum.meta
    assert (meta["slit"]["exp_type"], meta["slit"]["grating"], meta["slit"]["filter"]) == ("NRS_BRIGHTOBJ", "G395M",
                                                                                          "F290LP")
    assert abs(meta["along_arcsec"]) < 0.05 and abs(meta["across_arcsec"]) < 0.05  # acquisition: 0.01" rms
    source = SlitSource(target_spectrum(desc, 1), along=meta["along_arcsec"], across=meta["across_arcsec"])
    image = render_slit(BOTS, [source], WINDOW).image
    np.testing.assert_allclose(image.sum(axis=0)[columns], spectrum["source_e_per_s"], rtol=1e-9)
    # the blocked light: the host's spectrum times the depth, through the same slit, pixel area included
    place = slit.source  # the true place (the truth file's meta rounds it)
    blocked = render_slit(BOTS, [SlitSource(ModulatedSpectrum(source.spectrum, host_star(desc, 1).transit.depth_at),
                                            along=place.along, across=place.across)], WINDOW).image
    np.testing.assert_allclose(slit.transit.blocked, blocked * truth.area, rtol=1e-6, atol=0.0)  # area: float32

    # through ingest and detector 1 (the example's references: the same detector seed)
    uncal = ingest_telemetry(write_telemetry(sim, tmp_path).read_bytes(), lambda program: plan,
                             created=datetime(2026, 1, 1, tzinfo=UTC), software_version="test",
                             segment_bytes=2_000_000_000).files[0].product
    out = calibrate(uncal, LocalReferences(refs_dir=_refs_dir(run)), software_version="test",
                    created="2026-01-01T00:00:00")
    rates = out.rateints.images["SCI"].astype(np.float64)
    dq = out.rateints.images["DQ"]
    trace = BOTS.trace(columns.astype(float))
    near = np.abs(np.arange(SUB.ysize)[:, None] - (trace[None, :] - (SUB.ystart - 1))) <= ROWS
    good = np.all(np.where(near, (truth.flat[:, columns] > 0) & np.all(dq[:, :, columns] == 0, axis=0), True),
                  axis=0)
    assert good.mean() > 0.95
    outside, full = curve.shape == 0.0, np.isclose(curve.shape, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):  # dead pixels (flat 0) are not among the good columns
        electrons = rates[outside].mean(axis=0) * truth.gain / (truth.flat * truth.area)
    summed = _box(electrons[None], columns, trace)[0]
    error = np.abs(summed / np.asarray(spectrum["source_e_per_s"]) - 1.0)[good]
    assert error.max() < 0.01, error.max()
    ratio = _box(rates[full].mean(axis=0)[None], columns, trace)[0] / _box(rates[outside].mean(axis=0)[None],
                                                                          columns, trace)[0]
    observed = slit.transit.blocked_electrons[columns] / slit.pixel_electrons[columns]
    depth_error = np.abs(1.0 - ratio - observed)[good]
    assert depth_error.max() < 1e-3 and np.median(depth_error) < 1e-4, (depth_error.max(), np.median(depth_error))


def test_the_example_does_not_saturate():
    """The brightest pixel's charge at the last group of an out-of-transit integration
    stays well below its full well (the raw noiseless ramp against the SATURATION
    threshold; the linear charge against the full well above the bias)."""
    desc = load_description(example())
    plan = build_plan(desc)
    (obs,) = plan.observations
    model = make_detector_model(detector("NRS1"), desc.simulation.detector_seed)
    sim = simulate_exposure(plan, obs, obs.exposures[0], desc.simulation, model=model, noiseless=True,
                            host=host_star(desc, 1), spectrum=target_spectrum(desc, 1))
    win = model.window(SUB)
    assert np.all(sim.sci[:, -1].astype(np.float64) < win.saturation - 10000.0)
    schedule = FrameSchedule.for_exposure("NIRSPEC", SUB, "NRSRAPID", obs.ngroups, obs.nints)
    out_of_transit = (sim.truth.flux + sim.truth.slit.transit.blocked * float(np.mean(sim.truth.host.curve.shape)))
    charge = (out_of_transit * win.flat + win.dark) * schedule.last_frame_time  # electrons
    fraction = charge / ((win.full_well - win.bias) * win.gain)
    assert 0.45 < fraction.max() < 0.55, fraction.max()  # half the full well


# --- the truth of the example ------------------------------------------------------------------

def test_the_transmission_and_light_curve_truth(run):
    transmission, curve, spectrum = _truth(run, "transmission"), _truth(run, "lightcurve"), _truth(run, "spectrum")
    index = json.loads((run["truth_dir"] / "truth.json").read_text())
    [entry] = index["exposures"]
    depth = transmission.meta["white_light_depth"]
    assert transmission.meta["white_light_band_um"] == curve.meta["white_light_band_um"] == [2.87, 5.10]
    assert entry["host_star"]["flux_band_um"] == [2.87, 5.10]
    assert entry["transit"]["depth"] == curve.meta["transit"]["depth"] == depth
    assert entry["transit"]["white_light_depth_fnu"] == transmission.meta["white_light_depth_fnu"]
    assert entry["slit_source"]["aperture"] == "NRS_S1600A1_SLIT" and entry["slit_source"]["fixed_slit"] == "S1600A1"
    assert transmission.colnames[0] == "column"
    # the white light: every column of the spectrum, weighted by electrons or by f_nu
    band = (transmission["source_wavelength"] >= 2.87) & (transmission["source_wavelength"] <= 5.10)
    assert band.sum() >= len(transmission) - 1  # the acquisition error may move one end column out
    blocked, source = transmission["blocked_e_per_s"][band], transmission["source_e_per_s"][band]
    assert depth == pytest.approx(blocked.sum() / source.sum(), rel=1e-12)
    per_jy = np.asarray(spectrum["electrons_per_jy"])[band]
    assert transmission.meta["white_light_depth_fnu"] == pytest.approx((blocked / per_jy).sum()
                                                                       / (source / per_jy).sum(), rel=1e-9)
    assert 0.0101 < depth < 0.0103  # the 4.3 um band raises the 1 % base
    # per column: the depth through the LSF is the intrinsic one away from the band, a little smoothed over it
    observed, intrinsic = np.asarray(transmission["observed_depth"]), np.asarray(transmission["depth"])
    flat = np.abs(transmission["source_wavelength"] - 4.3) > 0.25
    np.testing.assert_allclose(observed[flat], 0.01, rtol=1e-6)
    np.testing.assert_allclose(intrinsic[flat], 0.01, rtol=1e-12)
    peak = int(np.argmax(observed))
    assert abs(transmission["source_wavelength"][peak] - 4.3) < 0.005
    assert 0.01199 < intrinsic.max() <= 0.012 and 0.0119 < observed[peak] < intrinsic.max()  # R ~ 1000: barely
    # the light curve: 50 integrations, out-of-transit baseline on both sides of the full depth
    rel = np.asarray(curve["relative_flux"])
    assert len(curve) == 50 and rel.min() == pytest.approx(1.0 - depth, abs=1e-12)
    out = np.flatnonzero(rel == 1.0)
    assert np.sum(out < 25) >= 10 and np.sum(out > 25) >= 10 and np.sum(np.isclose(rel, 1.0 - depth)) >= 15
    np.testing.assert_allclose(curve["host_flux"], entry["host_star"]["flux_e_per_s"] * rel)


# --- ingest and detector 1 on the example -------------------------------------------------------

def test_uncal_segments_carry_the_bright_object_keywords(run):
    """Four -segNNN _uncal (EXSEGNUM/EXSEGTOT, INTSTART/INTEND, INT_TIMES), the public
    keywords of the mode, the pointing about the slit's reference point; stdatamodels
    opens them as Level1bModel; the ramps are the simulated ones."""
    plan = run["sim"].plan
    (obs,) = plan.observations
    uncal = _segments(run, "uncal")
    assert [p.name for p in uncal] == [f"{STEM}-seg00{k}_nrs1_uncal.fits" for k in (1, 2, 3, 4)]
    keys, ints = [], []
    for path in uncal:
        with fits.open(path) as hdul:
            h, sci = hdul[0].header, hdul["SCI"].header
            assert {k: h[k] for k in ("INSTRUME", "DETECTOR", "EXP_TYPE", "FILTER", "GRATING", "FXD_SLIT", "APERNAME",
                                      "SUBARRAY", "SUBSTRT1", "SUBSTRT2", "SUBSIZE1", "SUBSIZE2", "TSOVISIT",
                                      "TEMPLATE", "READPATT", "NOUTPUTS", "NINTS", "NGROUPS", "PATTTYPE")} == {
                "INSTRUME": "NIRSPEC", "DETECTOR": "NRS1", "EXP_TYPE": "NRS_BRIGHTOBJ", "FILTER": "F290LP",
                "GRATING": "G395M", "FXD_SLIT": "S1600A1", "APERNAME": "NRS_S1600A1_SLIT", "SUBARRAY": "SUB2048",
                "SUBSTRT1": 1, "SUBSTRT2": 1025, "SUBSIZE1": 2048, "SUBSIZE2": 32, "TSOVISIT": True,
                "TEMPLATE": "NIRSpec Bright Object Time Series", "READPATT": "NRSRAPID", "NOUTPUTS": 1, "NINTS": 50,
                "NGROUPS": 6, "PATTTYPE": "NONE"}
            assert "PUPIL" not in h
            assert (sci["V2_REF"], sci["V3_REF"]) == (obs.aperture.v2_ref, obs.aperture.v3_ref)
            assert abs(h["XOFFSET"]) < 1e-3 and abs(h["YOFFSET"]) < 1e-3  # the target at the slit's reference point
            keys.append((h["EXSEGNUM"], h["EXSEGTOT"], h["INTSTART"], h["INTEND"]))
            ints.append(np.asarray(hdul["INT_TIMES"].data["integration_number"]))
            assert hdul["SCI"].data.shape == (h["INTEND"] - h["INTSTART"] + 1, 6, 32, 2048)
    assert [k[:2] for k in keys] == [(n, 4) for n in (1, 2, 3, 4)] and keys[0][2] == 1 and keys[-1][3] == 50
    assert all(b[2] == a[3] + 1 for a, b in zip(keys, keys[1:], strict=False))
    assert all(np.array_equal(i, np.arange(1, 51)) for i in ints)  # every segment holds the exposure's INT_TIMES
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with dm.open(uncal[0]) as model:
            assert type(model).__name__ == "Level1bModel"
            assert (model.meta.exposure.type, model.meta.instrument.grating, model.meta.instrument.fixed_slit,
                    model.meta.aperture.name, model.meta.visit.tsovisit) == (
                "NRS_BRIGHTOBJ", "G395M", "S1600A1", "NRS_S1600A1_SLIT", True)
    # the first segment's ramps are the simulated exposure's first integrations
    desc = load_description(example())
    expected = simulate_exposure(plan, obs, obs.exposures[0], desc.simulation, host=host_star(desc, 1),
                                 spectrum=target_spectrum(desc, 1))
    with fits.open(uncal[0]) as hdul:
        np.testing.assert_array_equal(hdul["SCI"].data, expected.sci[:keys[0][3]])


def test_detector1_rateints_give_the_white_light_depth(run):
    """The example's segments through detector 1: the box sum over the band's columns of
    each integration's rates, less a background per column, gives the truth's white-light
    depth within 3 %."""
    rateints = _segments(run, "rateints")
    assert len(rateints) == 4
    rates = np.concatenate([read_product(p).images["SCI"].astype(np.float64) for p in rateints])
    assert rates.shape == (50, 32, 2048)
    transmission, curve = _truth(run, "transmission"), _truth(run, "lightcurve")
    depth = transmission.meta["white_light_depth"]
    columns = np.asarray(transmission["column"], int)
    trace = np.asarray(_truth(run, "spectrum")["source_y"], float)  # the host's trace, full-frame rows
    # each column's background in each integration from the window's rows beyond the slit's
    # image (the drifts' residue after refpix: a few tenths of a DN/s per pixel)
    background = np.median(rates[:, BACKGROUND_ROWS, :], axis=1)
    white = np.nansum(_box(rates - background[:, None, :], columns, trace), axis=1)
    rel = np.asarray(curve["relative_flux"])
    measured = 1.0 - white[np.isclose(rel, 1.0 - depth)].mean() / white[rel == 1.0].mean()
    assert abs(measured / depth - 1.0) < 0.03, (measured, depth)


# --- the references -------------------------------------------------------------------------

def test_references_open_as_their_models_and_calibrate_the_truth(run):
    with fits.open(_reference(run, nirspec_bots_filename("specwcs"))) as specwcs:
        h = specwcs[0].header
        assert {k: h[k] for k in ("INSTRUME", "DETECTOR", "EXP_TYPE", "P_EXP_TY", "FILTER", "GRATING", "REFTYPE",
                                  "DISPAXIS")} == {
            "INSTRUME": "NIRSPEC", "DETECTOR": "NRS1", "EXP_TYPE": "NRS_BRIGHTOBJ", "P_EXP_TY": "NRS_BRIGHTOBJ|",
            "FILTER": "F290LP", "GRATING": "G395M", "REFTYPE": "SPECWCS", "DISPAXIS": 1}
        assert [hdu.name for hdu in specwcs[1:]] == ["S1600A1"]
        e = specwcs["S1600A1"].header
        assert (e["IMX"], e["IMY"], e["SLITWID"], e["SLITLEN"], e["APERNAME"]) == (1140.90, 1040.20, 1.6, 1.6,
                                                                                  "NRS_S1600A1_SLIT")
        assert "4.2 um" in e.comments["IMX"] and all(f"V{a}VERT{i}" in e for a in (2, 3) for i in range(1, 5))
        tab = specwcs["S1600A1"].data
        x = tab["x_center"] + BOTS.imx - 1.0
        np.testing.assert_allclose(x, BOTS.pixels(), atol=1e-9)
        np.testing.assert_allclose(tab["y_center"] + BOTS.imy - 1.0, BOTS.trace(x), atol=1e-9)
        np.testing.assert_allclose(tab["wavelength"], BOTS.wavelength(x), rtol=1e-12)
        assert tab.dtype.names == slit_trace_table(BOTS).dtype.names
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        photom = dm.open(_reference(run, nirspec_bots_filename("photom")))
        pathloss = dm.open(_reference(run, nirspec_bots_filename("pathloss")))
        flat = dm.open(_reference(run, flat_filename("NIRSPEC", "NRS1", "F290LP", "G395M")))
        wavelengthrange = dm.open(_reference(run, "jwst_nirspec_wavelengthrange_sim.asdf"))
        distortion = dm.open(_reference(run, "jwst_nirspec_distortion_nrs1_sim.asdf"))
        dark = dm.open(_reference(run, "jwst_nirspec_dark_nrs1_sub2048_sim.fits"))
    assert [type(m).__name__ for m in (photom, pathloss, flat, wavelengthrange, distortion, dark)] == [
        "NrsFsPhotomModel", "PathlossModel", "FlatModel", "WavelengthrangeModel", "DistortionModel", "DarkModel"]
    [row] = photom.phot_table
    assert (row["filter"].strip(), row["grating"].strip(), row["slit"].strip()) == ("F290LP", "G395M", "S1600A1")
    assert photom.meta.exposure.type == "NRS_BRIGHTOBJ"
    n = int(row["nelem"])
    waves, relresponse = np.asarray(row["wavelength"][:n], float), np.asarray(row["relresponse"][:n], float)
    assert n == BOTS.span[1] - BOTS.span[0] + 1 and np.interp(4.0, waves, relresponse) == pytest.approx(1.0, abs=1e-6)
    [aperture] = pathloss.apertures
    assert aperture.name == "S1600A1" and pathloss.meta.exposure.type == "NRS_BRIGHTOBJ"
    data, wcs = aperture.pointsource_data, aperture.pointsource_wcs
    wl = (wcs.crval3 + wcs.cdelt3 * np.arange(data.shape[0])) * 1e6
    assert wl[0] < BOTS.band[0] and BOTS.band[1] < wl[-1]
    np.testing.assert_allclose(data[:, data.shape[1] // 2, data.shape[2] // 2], BOTS.slit_transmission(wl), rtol=1e-6)
    assert flat.meta.instrument.filter == "F290LP"
    assert fits.getheader(_reference(run, flat_filename("NIRSPEC", "NRS1", "F290LP", "G395M")))["GRATING"] == "G395M"
    for ref in (wavelengthrange, distortion):
        assert "NRS_BRIGHTOBJ" in ref.meta.exposure.p_exptype.split("|")
    assert {"NRS_FIXEDSLIT", "NRS_MSASPEC"} <= set(wavelengthrange.meta.exposure.p_exptype.split("|"))
    assert (dark.meta.subarray.name, dark.data.shape[1:]) == ("SUB2048", (32, 2048)) and dark.data.shape[0] >= 6
    for model in (photom, pathloss, flat, wavelengthrange, distortion, dark):
        model.close()

    # PHOTOM calibrates the truth as the prism's rows do: per column, the source's DN/s
    # over the FLAT reference, summed over the slit's rows, times PHOTMJ x RELRESPONSE is f_nu
    spectrum = _truth(run, "spectrum")
    with fits.open(run["truth_dir"] / f"{STEM}_nrs1_truth_rate.fits") as hdul:
        stars = hdul["STARS"].data.astype(np.float64)
    with fits.open(_reference(run, flat_filename("NIRSPEC", "NRS1", "F290LP", "G395M"))) as ref_flat:
        reference_flat = ref_flat["SCI"].data[SUB.ystart - 1:SUB.ystart - 1 + SUB.ysize].astype(np.float64)
    columns = np.asarray(spectrum["column"], int)
    trace = np.asarray(spectrum["source_y"], float)
    per_pixel = _box((stars / reference_flat)[None], columns, trace)[0]
    mjy = per_pixel * float(row["photmj"]) * np.interp(spectrum["wavelength"], waves, relresponse)
    whole = np.isfinite(per_pixel)
    assert whole.mean() > 0.95
    # the truth rate holds the mean over the integrations: the host less its mean transit
    transmission, curve = _truth(run, "transmission"), _truth(run, "lightcurve")
    mean_shape = float(np.mean(1.0 - np.asarray(curve["relative_flux"]))) / curve.meta["transit"]["depth"]
    expected = spectrum["observed_jy"] * spectrum["transmission"] * (1.0 - mean_shape * transmission["observed_depth"])
    error = np.abs(mjy * 1e6 / expected - 1.0)[whole]
    assert error.max() < 0.01, error.max()


def test_the_bright_object_exposure_gets_its_references_and_the_prism_its_own(run, tmp_path):
    """Beside the prism fixed slits' references (as a plan with both modes writes them),
    selection by EXP_TYPE, FILTER and SUBARRAY gives the bright-object exposure its
    SPECWCS, PHOTOM, PATHLOSS, FLAT and dark, and a prism fixed-slit exposure the prism's."""
    refs = tmp_path / "refs"
    refs.mkdir()
    for path in reference_files(_refs_dir(run)):  # the files written again below are copied, the rest linked
        if path.suffix == ".asdf":
            shutil.copy(path, refs / path.name)
        else:
            (refs / path.name).symlink_to(path)
    nrs1 = make_detector_model(detector("NRS1"), load_description(example()).simulation.detector_seed)
    write_nirspec_fs_references(nrs1, refs)
    write_optical_references(nrs1, refs, [("CLEAR", "PRISM")])
    header = dict(read_product(_segments(run, "uncal")[0], arrays=False).keywords)
    wanted = ["specwcs", "photom", "pathloss", "flat", "dark", "distortion", "wavelengthrange", "superbias",
              "linearity", "saturation", "mask", "gain", "readnoise"]
    chosen = {t: s.filename for t, s in select_from_files(reference_files(refs), header, wanted).items()}
    assert chosen == {
        "specwcs": nirspec_bots_filename("specwcs"), "photom": nirspec_bots_filename("photom"),
        "pathloss": nirspec_bots_filename("pathloss"), "flat": flat_filename("NIRSPEC", "NRS1", "F290LP", "G395M"),
        "dark": "jwst_nirspec_dark_nrs1_sub2048_sim.fits", "distortion": "jwst_nirspec_distortion_nrs1_sim.asdf",
        "wavelengthrange": "jwst_nirspec_wavelengthrange_sim.asdf",
        **{t: f"jwst_nirspec_{t}_nrs1_sim.fits" for t in ("superbias", "linearity", "saturation", "mask", "gain",
                                                          "readnoise")}}
    prism = header | {"EXP_TYPE": "NRS_FIXEDSLIT", "FILTER": "CLEAR", "GRATING": "PRISM", "TSOVISIT": False}
    chosen = {t: s.filename for t, s in select_from_files(reference_files(refs), prism, wanted[:5]).items()}
    assert chosen == {"specwcs": nirspec_fs_filename("specwcs"), "photom": nirspec_fs_filename("photom"),
                      "pathloss": nirspec_fs_filename("pathloss"),
                      "flat": flat_filename("NIRSPEC", "NRS1", "CLEAR", "PRISM"),
                      "dark": "jwst_nirspec_dark_nrs1_sub2048_sim.fits"}
