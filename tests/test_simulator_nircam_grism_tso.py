"""NIRCam's grism time series in the long-wave channel (NRC_TSGRISM: GRISMR behind F444W
on NRCALONG, SUBGRISM64) in the simulator: the mode's geometry (the trace's row, the band's
columns and wavelengths), the SUBGRISM64 window and its frame time, the rendered window
against the truth, the description's checks, the truth files, the reference files
(SPECWCS in the public NIRCAMGrismModel, PHOTOM in the public NrcWfssPhotomModel, FLAT,
DARK, DISTORTION) and their selection, and short series through ingest and detector 1 in
this process (the window's one output through refpix); and the short-wave channel read
at the same time (NRC_TSIMAGE on NRCA1, the plan's ``simultaneous`` channel): its
exposure's identifiers, its window (SUBGRISM64 at SUBSTRT2 85), the host star in it, its
light curve, its header and references, the ``short_wave`` checks, and that it changes
nothing of the long-wave exposure. The example ``examples/nircam_grism_tso.yaml``
(NRCALONG and NRCA1) is simulated once for the module (about 9 s).

Tolerances (stated beside each check):
- the SPECWCS models reproduce the simulator's wavelengths and trace rows to 1e-6 um and
  1e-6 px for sources at and away from the reference point (measured 1e-15 and 1e-14),
  and their inverses give back t to 1e-9 (measured 1e-15);
- a column rendered alone sums to the truth spectrum's ``source_e_per_s`` to 1e-9 (the
  same rendering) and to ``observed_jy * electrons_per_jy`` to 1e-6 (the truth's own
  account of it, no slit loss; measured 2e-15); the truth rate's STARS image, back in
  electrons, sums per column to ``source_e_per_s`` less the mean transit's blocked light
  to 1e-6 (float32; measured 6e-8); the cross-dispersion profile's centroid is the
  SPECWCS's trace row within 2e-4 px (measured 2e-5) and its second moment the PSF's
  integrated over pixels within 1e-4 (measured 1.3e-5);
- PHOTOM: a noiseless rendered column, as rate over the FLAT reference, summed over its
  rows, times PHOTMJSR x RELRESPONSE / dispersion x PIXAR_SR x 1e6, is the truth's ``observed_jy``
  within 0.5 % (measured 6e-7: the float32 reference);
- noiseless telemetry through ingest and detector 1: per column the full-depth over
  out-of-transit ratio of a box of +-6 rows (6 sigma of the PSF) about the trace is
  ``1 - observed_depth`` within 1e-3 (the uint16 rounding of a noiseless ramp of 3 groups,
  the same in every integration, does not average away; measured 6.6e-4), the median over
  the columns within 1.5e-4 (measured 9.5e-5);
- the output's drifts through refpix (noise, no cosmic rays, 8 integrations): per
  512-column block and integration the median of rate - truth over the rows away from the
  trace within 0.5 DN/s (measured 0.23; the noise of one pixel's rate is 4.5 DN/s at
  1.339 s frames and 3 groups, so the median of a block's ~15000 pixels is good to
  0.05 DN/s), against more than 3 DN/s with refpix skipped (measured 5.7);
- the short-wave channel: the host's out-of-transit e-/s is ``f_nu(pivot) /
  jy_per_electron`` to 1e-9 (the same arithmetic), its depth the transit's at the pivot to
  1e-12; the host is within 1 px of full-frame (1886, 116), 0-based, where the grism's
  reference point images on NRCA1 (measured (1886.19, 116.13): the acquisition's pointing
  error, the same draw as the grism's, to 1e-12); its brightest pixel at 55-63 % of a full
  well above bias (measured 59 %); through ingest and detector 1 the host's 41 x 41 px box
  holds the truth rate to 5e-4 (measured 8.7e-5) and its full-depth over out-of-transit
  ratio is ``1 - 0.01`` within 1e-3 (3 sigma: 6e-4 per integration over 4 and 26
  integrations; measured 1.1e-4);
- the long-wave exposure's telemetry and truth files are byte for byte the same with and
  without the short-wave channel.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import yaml
from astropy.io import fits
from astropy.table import Table
from stdatamodels.jwst import datamodels as dm

from services.detector1.pipeline import DETECTOR1, calibrate
from services.ingest.pipeline import ingest_telemetry
from services.simulator import (
    DescriptionError,
    build_plan,
    load_description,
    simulate,
    simulate_exposure,
)
from services.simulator.detector_model import make_detector_model
from services.simulator.distortion import window_v2v3
from services.simulator.optical_refs import flat_filename, mean_gain
from services.simulator.optics import (
    COLLECTING_AREA_M2,
    PLANCK_J_S,
    jy_per_electron,
    pivot_wavelength,
)
from services.simulator.pointing import pointing_error, slit_v2v3, window_center_v2v3
from services.simulator.ramps import FrameSchedule
from services.simulator.runner import host_star, target_spectrum
from services.simulator.slit_refs import grism_dispersion_models, nircam_grism_filename
from services.simulator.spectrograph import (
    GRISM_TSO_SHORT_WAVE_DETECTOR,
    GRISM_TSO_SHORT_WAVE_EXP_TYPE,
    GRISM_TSO_SHORT_WAVE_PUPILS,
    LRS_SLITLESS,
    NIRCAM_GRISM_TSO,
    NIRSPEC_BOTS,
    SPECTRAL_ORDERS,
    SPECTRAL_TSO_EXP_TYPES,
    GratingDispersion,
    SlitSource,
    render_slit,
    slit_spectrograph,
    spectral_orders,
)
from services.simulator.telemetry_writer import write_telemetry
from shared.instruments import DETECTOR_SUBARRAYS, detector, exposure_timing, subarray
from shared.refdata import LocalReferences
from shared.refdata.files import reference_files
from shared.refdata.selection import select_from_files
from tests.slit_examples import edited

pytestmark = pytest.mark.filterwarnings("ignore::astropy.wcs.FITSFixedWarning")

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "nircam_grism_tso.yaml"
STEM = "jw04610001001_01101_00001_nrcalong"
SW_STEM = "jw04610001001_01101_00001_nrca1"
GRISM = NIRCAM_GRISM_TSO
SUB = subarray("NIRCAM", "SUBGRISM64")
SW_SUB = subarray("NIRCAM", "SUBGRISM64", GRISM_TSO_SHORT_WAVE_DETECTOR)  # the window on NRCA1
WINDOW = (SUB.xstart - 1, SUB.ystart - 1, SUB.xsize, SUB.ysize)
BOX = 6  # rows either side of the trace summed: 6 sigma of the widest PSF (1.06 px)


def example() -> dict:
    return edited(EXAMPLE)


def changed(obs: dict | None = None, target: dict | None = None, simulation: dict | None = None) -> dict:
    """The example with fields of its observation, target or simulation replaced (None
    values remove a field)."""
    return edited(EXAMPLE, obs, target, simulation)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return simulate(example(), tmp_path_factory.mktemp("grism"))


def _truth(run, kind: str, stem: str = STEM) -> Table:
    return Table.read(run.truth_dir / f"{stem}_truth_{kind}.ecsv")


def _entry(run, name: str) -> dict:
    """truth.json's entry of the example's exposure on detector ``name``."""
    index = json.loads((run.truth_dir / "truth.json").read_text())
    [entry] = [e for e in index["exposures"] if e["detector"] == name]
    return entry


def _exposure(plan, name: str = "NRCALONG"):
    """The plan's (only) observation and its exposure on detector ``name``."""
    (obs,) = plan.observations
    [exp] = [e for e in obs.exposures if e.detector == name]
    return obs, exp


def _ingested(sim, plan, tmp_path: Path):
    """``sim``'s telemetry through ingest: its ``_uncal`` product."""
    return ingest_telemetry(write_telemetry(sim, tmp_path).read_bytes(), lambda program: plan,
                            created=datetime(2026, 1, 1, tzinfo=UTC), software_version="test",
                            segment_bytes=2_000_000_000).files[0].product


def _reference(run, name: str) -> Path:
    return next(Path(p) for p in run.reference_paths if Path(p).name == name)


def _placed_source(run) -> SlitSource:
    """The example's star where the exposure's true pointing put it."""
    meta = _truth(run, "spectrum").meta
    return SlitSource(target_spectrum(load_description(example()), 1), along=meta["along_arcsec"],
                      across=meta["across_arcsec"])


def _box(image: np.ndarray, columns: np.ndarray, along: float = 0.0) -> np.ndarray:
    """Per column (full frame): the sum of ``image`` (ny, nx of the window, or (n, ny, nx))
    over the rows within :data:`BOX` of the trace (moved by ``along`` arcsec)."""
    rows = np.rint(GRISM.trace(columns.astype(float)) + along / GRISM.pixel_scale).astype(int) - WINDOW[1]
    image = image if image.ndim == 3 else image[None]
    out = np.zeros((image.shape[0], columns.size))
    for k, (x, y) in enumerate(zip(columns - WINDOW[0], rows, strict=True)):
        out[:, k] = image[:, y - BOX:y + BOX + 1, x].sum(axis=1)
    return out


# --- the mode ------------------------------------------------------------------------------

def test_the_mode_is_grismr_behind_f444w_on_nrcalong():
    assert slit_spectrograph("NRC_TSGRISM") is GRISM and slit_spectrograph("nrc_tsgrism") is GRISM
    assert (GRISM.exp_type, GRISM.detector, GRISM.filter, GRISM.grating, GRISM.aperture, GRISM.subarrays,
            GRISM.dispaxis, GRISM.slit) == ("NRC_TSGRISM", "NRCALONG", "F444W", "GRISMR", "NRCA5_GRISM64_F444W",
                                            ("SUBGRISM64",), 1, None)
    assert GRISM.slitless and GRISM.time_series and GRISM.order == 1
    assert GRISM.pixel_scale == detector("NRCALONG").pixel_scale == 0.063 and GRISM.detector_sigma == 1.0
    assert GRISM.spatial_sigma is None and GRISM.render_block is None  # the PSF across the dispersion
    wl = np.array([3.9, 4.4, 4.98])
    np.testing.assert_array_equal(GRISM.profile_sigma(wl), GRISM.psf_sigma(wl))
    np.testing.assert_array_equal(GRISM.slit_transmission(wl, 0.2), 1.0)
    assert "NRC_TSGRISM" in SPECTRAL_TSO_EXP_TYPES
    # one spectral order, named in the truth (order 1); the other modes keep theirs
    assert spectral_orders(GRISM) == (GRISM,) and SPECTRAL_ORDERS["NRC_TSGRISM"] == (GRISM,)
    for other in (NIRSPEC_BOTS, LRS_SLITLESS):
        assert spectral_orders(other) == (other,) and other.exp_type not in SPECTRAL_ORDERS
    assert GRISM.white_light_band == (3.88, 4.98)


def test_subgrism64_is_the_bottom_64_rows_read_by_one_output():
    assert (SUB.name, SUB.xstart, SUB.ystart, SUB.xsize, SUB.ysize, SUB.noutputs) == ("SUBGRISM64", 1, 1, 2048, 64,
                                                                                       1)
    timing = exposure_timing("NIRCAM", SUB, "RAPID", 4, 30)
    # the frame time of SUBGRISM64 with one output: the public documents give 1.3596 s,
    # a row of overhead more than this system's near-IR formula (1.339 s; with four
    # outputs both give 0.3406 s)
    assert timing.tframe == pytest.approx(1.339, abs=1e-6)
    assert exposure_timing("NIRCAM", dataclasses.replace(SUB, noutputs=4), "RAPID", 4, 30).tframe == pytest.approx(
        0.34061, abs=2e-5)
    assert timing.tgroup == timing.tframe and timing.duration == pytest.approx(30 * 5 * timing.tframe)
    # the window holds the detector's bottom reference rows, and reference columns at both ends
    win = make_detector_model(detector("NRCALONG"), 2022).window(SUB)
    assert np.all(win.refpix[:4]) and not np.any(win.refpix[4:, 4:-4])
    assert np.all(win.refpix[:, :4]) and np.all(win.refpix[:, -4:])


def test_the_band_falls_on_columns_780_to_1875_with_4_um_at_imx():
    law = GRISM.law
    assert isinstance(law, GratingDispersion)
    assert (law.reference, law.linear, law.quadratic) == (4.0, 0.0010035, 0.0)
    assert (GRISM.imx, GRISM.imy) == (900.0, 34.0)
    assert GRISM.wavelength(899.0) == 4.0  # the reference wavelength at IMX (0-based column 899)
    assert GRISM.span == (780, 1875)
    assert GRISM.wavelength(779.0) < 3.88 <= GRISM.wavelength(780.0) < 3.8806
    assert GRISM.wavelength(1876.0) > 4.98 >= GRISM.wavelength(1875.0) > 4.9794
    assert GRISM.band == pytest.approx((3.8805835, 4.979416), abs=1e-9)
    border = detector("NRCALONG").refpix_border
    assert border <= GRISM.span[0] - 700 and GRISM.span[1] + 150 <= 2047 - border  # well inside 4..2043
    s = GRISM.pixels()
    assert np.all(np.diff(GRISM.wavelength(s)) > 0)  # wavelength increases with the column
    np.testing.assert_allclose(GRISM.dispersion(s), 0.0010035, rtol=1e-12)
    np.testing.assert_allclose(GRISM.pixel(GRISM.wavelength(s)), s, atol=1e-9)  # the linear law's exact inverse


def test_the_trace_lies_near_row_34():
    columns = np.array([780.0, 899.0, 1875.0])
    rows = GRISM.trace(columns) - WINDOW[1]  # 0-based window rows (= full-frame rows)
    np.testing.assert_allclose(rows, [32.776161, 33.0, 35.904576], atol=1e-9)
    assert rows[1] + 1 == 34.0  # row 34, 1-based, at the reference point
    # 25 sigma of the widest PSF from the reference rows (0-3) and from the top row (63)
    trace = GRISM.trace(GRISM.pixels()) - WINDOW[1]
    sigma = float(GRISM.psf_sigma(4.98))
    assert (trace.min() - 3.5) / sigma > 25 and (SUB.ysize - 0.5 - trace.max()) / sigma > 25


def test_resolving_power_and_electrons_per_jy():
    waves = np.array([3.9, 4.0, 4.4, 4.9])
    np.testing.assert_allclose(GRISM.resolving_power(np.array([3.9, 4.4, 4.98])), [1268.0, 1357.0, 1443.0], rtol=2e-3)
    s = GRISM.pixel(waves)
    np.testing.assert_allclose(GRISM.electrons_per_jy(s), [1.79e4, 2.10e4, 2.62e4, 1.43e4], rtol=5e-3)
    expected = 1e-26 / PLANCK_J_S * COLLECTING_AREA_M2 * GRISM.throughput(waves) * 0.0010035 / waves
    np.testing.assert_allclose(GRISM.electrons_per_jy(s), expected, rtol=1e-12)
    assert GRISM.throughput(np.array([4.4]))[0] == 0.30


# --- the rendered window --------------------------------------------------------------------

def test_a_column_holds_the_electrons_the_truth_gives(run):
    """A column of the star rendered alone (the exposure's place of it) sums to the truth's
    source_e_per_s, and that to observed_jy x electrons_per_jy; the truth rate's STARS
    image, back in electrons, is that less the mean blocked light of the transit."""
    spectrum, transmission = _truth(run, "spectrum"), _truth(run, "transmission")
    assert spectrum.colnames[:2] == transmission.colnames[:2] == ["order", "column"]
    np.testing.assert_array_equal(spectrum["order"], 1)
    columns = np.asarray(spectrum["column"], int)
    np.testing.assert_array_equal(columns, GRISM.pixels().astype(int))
    image = render_slit(GRISM, [_placed_source(run)], WINDOW).image
    np.testing.assert_allclose(image.sum(axis=0)[columns], spectrum["source_e_per_s"], rtol=1e-9)
    inner = (columns >= GRISM.span[0] + 10) & (columns <= GRISM.span[1] - 10)
    np.testing.assert_allclose(spectrum["source_e_per_s"][inner],
                               (spectrum["observed_jy"] * spectrum["electrons_per_jy"])[inner], rtol=1e-6)
    # nothing beyond the span but the LSF's wings (10 sigma of the samples past each end)
    assert not np.any(image[:, :GRISM.span[0] - 25]) and not np.any(image[:, GRISM.span[1] + 26:])
    # the exposure's STARS (DN/s, the mean over the integrations) in electrons per column
    curve = _truth(run, "lightcurve")
    mean_shape = float(np.mean((1.0 - curve["relative_flux"]) / curve.meta["transit"]["depth"]))
    with fits.open(run.truth_dir / f"{STEM}_truth_rate.fits") as hdul:
        stars, flat, gain, area = (hdul[k].data.astype(np.float64) for k in ("STARS", "FLAT", "GAIN", "AREA"))
    light = slice(4, SUB.ysize)  # above the reference rows, where the star's light is (none reaches them)
    with np.errstate(divide="ignore", invalid="ignore"):
        electrons = (stars * gain / (flat * area))[light]
    good = np.all(flat[light][:, columns] > 0, axis=0)
    assert good.mean() > 0.95
    expected = np.asarray(transmission["source_e_per_s"]) - mean_shape * np.asarray(transmission["blocked_e_per_s"])
    np.testing.assert_allclose(electrons[:, columns][:, good].sum(axis=0), expected[good], rtol=1e-6)


def test_the_profile_is_the_psf_centred_on_the_specwcs_trace(run):
    """Across the dispersion a column of an offset source is the PSF integrated over
    pixels, centred where the SPECWCS's dispy puts the trace for the source's undispersed
    pixel."""
    models = grism_dispersion_models(GRISM)
    invdispx, dispy = models["invdispx"][0], models["dispy"][0]
    source = SlitSource(_placed_source(run).spectrum, along=0.4, across=-0.3)  # arcsec: +6.3 rows, -4.8 columns
    x0 = GRISM.s_ref + source.across / GRISM.pixel_scale
    y0 = GRISM.t_ref + source.along / GRISM.pixel_scale
    image = render_slit(GRISM, [source], WINDOW).image
    rows = np.arange(SUB.ysize, dtype=np.float64)
    for column in (800, 1100, 1500, 1850):
        profile = image[:, column]
        weight = profile / profile.sum()
        centre = float(np.sum(weight * rows))
        sigma = float(np.sqrt(np.sum(weight * (rows - centre) ** 2)))
        t = invdispx(x0, y0, column - x0)
        assert centre == pytest.approx(y0 + float(dispy(x0, y0, t)), abs=2e-4), column
        psf = float(GRISM.psf_sigma(GRISM.wavelength(column - source.across / GRISM.pixel_scale)))
        assert sigma == pytest.approx(np.sqrt(psf**2 + 1.0 / 12.0), rel=1e-4), column


# --- the description -------------------------------------------------------------------------

def test_the_example_plans_a_grism_time_series():
    desc = load_description(example())
    (obs,) = build_plan(desc).observations
    assert (obs.instrument, obs.exp_type, obs.filter, obs.pupil, obs.subarray, obs.detectors, obs.tsovisit,
            obs.readpatt, obs.ngroups, obs.nints) == ("NIRCAM", "NRC_TSGRISM", "F444W", "GRISMR", "SUBGRISM64",
                                                      ["NRCALONG", "NRCA1"], True, "RAPID", 3, 30)
    assert (obs.template, obs.aperture.name, obs.fixed_slit, obs.dither.pattern_type) == (
        "NIRCam Grism Time Series", "NRCA5_GRISM64_F444W", None, "NONE")
    # NRCA1 is the simultaneous short-wave channel, imaging the target (NRC_TSIMAGE)
    assert obs.simultaneous is not None
    assert (obs.simultaneous.detectors, obs.simultaneous.exp_type, obs.simultaneous.filter,
            obs.simultaneous.pupil) == (["NRCA1"], "NRC_TSIMAGE", "F212N", "WLP8")
    # the target sits on the grism's reference point
    assert (obs.aperture.v2_ref, obs.aperture.v3_ref) == slit_v2v3(GRISM)
    spec = desc.observations[0]
    assert spec.spectroscopic_tso and spec.slitless and spec.spectrograph is GRISM
    assert (spec.short_wave.filter, spec.short_wave.pupil) == ("F212N", "WLP8")
    host = host_star(desc, 1)
    assert host.flux is None and host.transit.chromatic
    np.testing.assert_allclose(host.transit.depth_at(np.array([3.9, 4.25, 4.3, 4.35, 4.6])),
                               [0.010, 0.0115, 0.013, 0.0115, 0.010])
    # a grey transit, another readout pattern, a line in the band: all accepted
    load_description(changed(obs={"transit": {"depth": 0.01, "duration_s": 20.0}, "readpatt": "BRIGHT2"}))
    load_description(changed(target={"spectrum": {"flux_jy": 2.0, "reference_wavelength": 4.4,
                                                  "lines": [{"wavelength": 4.6, "fwhm": 0.01, "strength": -0.3}]}}))
    # the long-wave channel alone (no NRCA1, no short_wave): no simultaneous channel
    (alone,) = build_plan(load_description(changed(obs={"detectors": ["NRCALONG"], "short_wave": None}))).observations
    assert alone.detectors == ["NRCALONG"] and alone.simultaneous is None
    # the short-wave imaging behind CLEAR (names upper-cased), WLP8 by default
    (clear,) = build_plan(load_description(changed(obs={"short_wave": {"filter": "f210m", "pupil": "clear"}}))
                          ).observations
    assert (clear.simultaneous.filter, clear.simultaneous.pupil) == ("F210M", "CLEAR")
    default = load_description(changed(obs={"short_wave": {"filter": "F150W2"}}))
    assert default.observations[0].short_wave.pupil == "WLP8"


@pytest.mark.parametrize(
    ("obs", "target", "words"),
    [
        ({"subarray": "FULL"}, None, ["observations[0]", "subarray", "SUBGRISM64", "not FULL"]),
        ({"subarray": "SUB64P"}, None, ["observations[0]", "subarray", "SUBGRISM64", "not SUB64P"]),
        ({"subarray": "SUBGRISM128"}, None, ["observations[0].subarray", "unknown subarray", "SUBGRISM64"]),
        ({"filter": "F322W2"}, None, ["observations[0]", "filter", "filter F444W", "not F322W2"]),
        ({"pupil": "CLEAR"}, None, ["observations[0]", "pupil", "pupil GRISMR", "not CLEAR"]),
        ({"pupil": None}, None, ["observations[0]", "pupil", "pupil GRISMR", "not none"]),
        ({"readpatt": "NISRAPID"}, None, ["observations[0].readpatt", "RAPID", "BRIGHT1"]),
        ({"tsovisit": False, "transit": None}, None, ["observations[0]", "NRC_TSGRISM", "tsovisit: true"]),
        ({"dither": {"pattern": "4-POINT-BOX"}}, None, ["observations[0]", "dither", "pattern NONE", "4-POINT-BOX"]),
        ({"dither": {"offsets": [[0.0, 0.0], [1.0, 0.0]]}}, None, ["dither", "pattern NONE", "explicit offsets"]),
        ({"host_flux": 1.0e6}, None, ["host_flux", "targets[].spectrum", "imaging time series"]),
        ({"is_psf": True}, None, ["observations[0]", "time series of its target", "is_psf"]),
        ({"detectors": ["NRCBLONG"]}, None, ["observations[0]", "detectors", "disperses on NRCALONG",
                                             "['NRCBLONG'] does not include"]),
        ({"detectors": ["NRCA1"]}, None, ["observations[0]", "detectors", "disperses on NRCALONG"]),
        ({"detectors": ["NRCALONG", "NRCA3"]}, None, ["observations[0]", "detectors", "simulated on NRCALONG",
                                                      "short-wave imaging, NRCA1", "not also on NRCA3"]),
        ({"detectors": ["NRCALONG", "NRCA1", "NRCB1"]}, None, ["observations[0]", "detectors",
                                                               "not also on NRCB1"]),
        ({"detectors": ["NIS"]}, None, ["observations[0].detectors", "NIS belongs to NIRISS"]),
        ({"instrument": "NIRISS", "detectors": ["NIS"], "readpatt": "NISRAPID"}, None,
         ["observations[0].exp_type", "'NRC_TSGRISM' is not simulated for NIRISS"]),
        ({"fixed_slit": "S1600A1"}, None, ["fixed_slit", "NIRSpec fixed-slit", "not NRC_TSGRISM"]),
        ({"exp_type": "NRC_TSIMAGE", "detectors": ["NRCALONG"], "short_wave": None,
          "transit": {"depth": 0.01, "duration_s": 20.0}, "host_flux": 1.0e5}, None,
         ["observations[0]", "pupil", "GRISMR is the NIRCam grism", "exp_type NRC_TSGRISM"]),
        (None, {"spectrum": {"flux_jy": 2.0, "reference_wavelength": 4.4,
                             "lines": [{"wavelength": 3.5, "fwhm": 0.01, "strength": -0.5}]}},
         ["targets[0].spectrum.lines[0].wavelength", "3.5 um is outside", "NIRCam grism GRISMR/F444W",
          "3.88-4.98 um"]),
    ],
)
def test_bad_grism_descriptions_name_the_field_and_the_reason(obs, target, words):
    with pytest.raises(DescriptionError) as info:
        load_description(changed(obs=obs, target=target))
    for word in words:
        assert word in str(info.value), (word, str(info.value))


@pytest.mark.parametrize(
    ("obs", "target", "words"),
    [
        # NRCA1 among the detectors exactly when short_wave is given
        ({"detectors": ["NRCALONG"]}, None, ["observations[0]", "short_wave:", "with NRCA1 among the detectors",
                                             "neither without the other"]),
        ({"short_wave": None}, None, ["observations[0]", "short_wave:", "with NRCA1 among the detectors"]),
        # a short-wave filter of the filter wheel
        ({"short_wave": {"filter": "F444W"}}, None, ["observations[0]", "short_wave.filter", "'F444W' is not a "
                                                     "short-wave NIRCam filter", "F212N"]),
        ({"short_wave": {"filter": "F999W"}}, None, ["short_wave.filter", "'F999W' is not"]),
        ({"short_wave": {"filter": "F164N", "pupil": "CLEAR"}}, None, ["short_wave.filter", "'F164N' is not"]),
        ({"short_wave": {"pupil": "WLP8"}}, None, ["observations[0].short_wave.filter", "required"]),
        # the weak lens or CLEAR
        ({"short_wave": {"filter": "F212N", "pupil": "GRISMR"}}, None, ["observations[0]", "short_wave.pupil",
                                                                        "WLP8 or CLEAR", "not GRISMR"]),
        ({"short_wave": {"filter": "F212N", "pupil": "WLM8"}}, None, ["short_wave.pupil", "not WLM8"]),
        ({"short_wave": {"filter": "F212N", "grating": "GRISMR"}}, None, ["observations[0].short_wave.grating",
                                                                          "unknown field"]),
        # only beside the grism
        ({"exp_type": "NRC_TSIMAGE", "detectors": ["NRCA1"], "filter": "F212N", "pupil": "CLEAR",
          "host_flux": 1.0e5, "transit": {"depth": 0.01, "duration_s": 20.0}}, {"spectrum": None},
         ["observations[0]", "short_wave:", "only a NRC_TSGRISM observation"]),
    ],
)
def test_bad_short_wave_descriptions_name_the_field(obs, target, words):
    with pytest.raises(DescriptionError) as info:
        load_description(changed(obs=obs, target=target))
    for word in words:
        assert word in str(info.value), (word, str(info.value))


# --- an exposure --------------------------------------------------------------------------------

def test_the_example_collects_a_quarter_of_a_full_well():
    """The example's long-wave exposure: 30 integrations of 3 RAPID groups in the 2048 x 64
    window; the brightest pixel's charge at the last group of an out-of-transit integration
    is about a quarter of its full well above bias (23 %, at 4.0-4.5 um, where the
    Rayleigh-Jeans star and the throughput give the most electrons, the pixel's flat
    choosing among them); the sky is the slitless band's."""
    desc = load_description(example())
    plan = build_plan(desc)
    obs, exp = _exposure(plan)
    model = make_detector_model(detector("NRCALONG"), desc.simulation.detector_seed)
    sim = simulate_exposure(plan, obs, exp, desc.simulation, model=model, noiseless=True,
                            host=host_star(desc, 1), spectrum=target_spectrum(desc, 1))
    win = model.window(SUB)
    assert sim.sci.shape == (30, 3, 64, 2048) and sim.zeroframe.shape == (30, 64, 2048)
    assert np.all(sim.sci[:, -1].astype(np.float64) < win.saturation - 10000.0)
    schedule = FrameSchedule.for_exposure("NIRCAM", SUB, "RAPID", obs.ngroups, obs.nints)
    out_of_transit = sim.truth.flux + sim.truth.slit.transit.blocked * float(np.mean(sim.truth.host.curve.shape))
    charge = (out_of_transit * win.flat + win.dark) * schedule.last_frame_time  # electrons
    fraction = charge / ((win.full_well - win.bias) * win.gain)
    assert 0.20 < fraction.max() < 0.26, fraction.max()
    y, x = np.unravel_index(np.argmax(fraction), fraction.shape)
    assert abs(y - float(GRISM.trace(float(x)))) < 1.0 and 4.0 < GRISM.wavelength(float(x)) < 4.5
    # the slitless sky: the whole band on every pixel, uniform along the rows
    truth = sim.truth
    sky = truth.slit.sky / truth.area
    assert truth.sky_level == pytest.approx(float(GRISM.slitless_sky_electrons(np.array([899.0]), GRISM.sky)[0]))
    np.testing.assert_allclose(sky[:, 899], truth.sky_level, rtol=1e-6)
    np.testing.assert_allclose(sky[:, 1300], 0.587, atol=1e-3)


def test_noiseless_telemetry_through_detector1_carries_the_transit(run, tmp_path):
    """A short noiseless series (12 integrations of the example's 3 groups, 5.4 s apart, no
    sky, a 24-second transit of the example's depths) of NRCALONG through ingest and detector 1 with the
    example's references: the keywords of the mode, and per column the full-depth over
    out-of-transit ratio of a box about the trace is ``1 - observed_depth``; the CO2 band
    stands out of the 1 % base."""
    transit = {**yaml.safe_load(EXAMPLE.read_text())["observations"][0]["transit"], "duration_s": 24.0,
               "ingress_s": 3.0}
    desc = load_description(changed(obs={"nints": 12, "transit": transit}, simulation={"sky_level": 0.0}))
    plan = build_plan(desc)
    obs, exp = _exposure(plan)
    sim = simulate_exposure(plan, obs, exp, desc.simulation, noiseless=True, host=host_star(desc, 1),
                            spectrum=target_spectrum(desc, 1))
    curve, slit = sim.truth.host.curve, sim.truth.slit
    outside, full = curve.shape == 0.0, np.isclose(curve.shape, 1.0)
    assert outside.sum() >= 4 and full.sum() >= 3
    uncal = _ingested(sim, plan, tmp_path)
    kw = uncal.keywords
    assert {k: kw[k] for k in ("INSTRUME", "DETECTOR", "MODULE", "CHANNEL", "EXP_TYPE", "FILTER", "PUPIL",
                               "SUBARRAY", "SUBSTRT1", "SUBSTRT2", "SUBSIZE1", "SUBSIZE2", "NOUTPUTS", "APERNAME",
                               "TSOVISIT", "TEMPLATE", "READPATT", "NINTS", "NGROUPS", "PATTTYPE")} == {
        "INSTRUME": "NIRCAM", "DETECTOR": "NRCALONG", "MODULE": "A", "CHANNEL": "LONG", "EXP_TYPE": "NRC_TSGRISM",
        "FILTER": "F444W", "PUPIL": "GRISMR", "SUBARRAY": "SUBGRISM64", "SUBSTRT1": 1, "SUBSTRT2": 1,
        "SUBSIZE1": 2048, "SUBSIZE2": 64, "NOUTPUTS": 1, "APERNAME": "NRCA5_GRISM64_F444W", "TSOVISIT": True,
        "TEMPLATE": "NIRCam Grism Time Series", "READPATT": "RAPID", "NINTS": 12, "NGROUPS": 3, "PATTTYPE": "NONE"}
    assert kw["TFRAME"] == pytest.approx(1.339, abs=1e-6)
    out = calibrate(uncal, LocalReferences(refs_dir=Path(run.reference_paths[0]).parent), software_version="test",
                    created="2026-01-01T00:00:00")
    steps = ("S_SATURA", "S_SUPERB", "S_REFPIX", "S_LINEAR", "S_DARK", "S_RAMP")
    assert {k: out.rateints.keywords[k] for k in steps} == dict.fromkeys(steps, "COMPLETE")
    assert out.rateints.keywords["R_DARK"].endswith("jwst_nircam_dark_nrcalong_subgrism64_sim.fits")
    rates = out.rateints.images["SCI"].astype(np.float64)
    dq = out.rateints.images["DQ"]
    columns = GRISM.pixels().astype(int)
    rows = np.rint(GRISM.trace(columns.astype(float)) + slit.source.along / GRISM.pixel_scale).astype(int)
    near = np.abs(np.arange(SUB.ysize)[:, None] - rows[None, :]) <= BOX
    good = np.all(np.where(near, (sim.truth.flat[:, columns] > 0) & np.all(dq[:, :, columns] == 0, axis=0), True),
                  axis=0)
    assert good.mean() > 0.95
    ratio = (_box(rates[full].mean(axis=0), columns, slit.source.along)[0]
             / _box(rates[outside].mean(axis=0), columns, slit.source.along)[0])
    observed = slit.transit.blocked_electrons[columns] / slit.pixel_electrons[columns]
    error = np.abs(1.0 - ratio - observed)[good]
    assert error.max() < 1e-3 and np.median(error) < 1.5e-4, (error.max(), np.median(error))
    depth, wavelength = (1.0 - ratio)[good], GRISM.wavelength(columns.astype(float))[good]
    assert np.median(depth[np.abs(wavelength - 4.3) < 0.004]) == pytest.approx(0.0130, abs=2e-4)  # the CO2 band
    assert np.median(depth[np.abs(wavelength - 4.7) < 0.05]) == pytest.approx(0.0100, abs=1e-4)


def test_the_outputs_drifts_come_out_through_refpix(run, tmp_path):
    """The window is read by one output: the simulator drifts its offset from group to
    group (reference pixels included) and detector 1's refpix removes it with all the
    window's reference pixels (its bottom rows and side columns); with refpix skipped the
    drifts bias the rates. The rates are compared per 512-column block (each a quarter of
    the columns the one output reads)."""
    desc = load_description(changed(obs={"nints": 8}, simulation={"cosmic_ray_rate": 0.0}))
    plan = build_plan(desc)
    obs, exp = _exposure(plan)
    sim = simulate_exposure(plan, obs, exp, desc.simulation, host=host_star(desc, 1),
                            spectrum=target_spectrum(desc, 1))
    assert sim.truth.drifts.shape == (8, 3, 1, 2)  # one output (both column parities)
    assert np.ptp(sim.truth.drifts) > 20.0  # DN: drifts there are
    uncal = _ingested(sim, plan, tmp_path)
    refs = LocalReferences(refs_dir=Path(run.reference_paths[0]).parent)
    away = np.zeros((SUB.ysize, SUB.xsize), bool)  # rows away from the trace and the reference rows
    away[10:25] = away[45:60] = True
    away &= sim.truth.flat > 0
    worst = {}
    for skip in (set(), {"refpix"}):
        out = calibrate(uncal, refs, params=DETECTOR1.params(skip=skip), software_version="test",
                        created="2026-01-01T00:00:00")
        assert out.rateints.keywords["S_REFPIX"] == ("SKIPPED" if skip else "COMPLETE")
        residual = out.rateints.images["SCI"].astype(np.float64) - sim.truth.rate[None]
        medians = [np.median(residual[:, :, a * 512:(a + 1) * 512][:, away[:, a * 512:(a + 1) * 512]], axis=1)
                   for a in range(4)]
        worst[bool(skip)] = float(np.max(np.abs(medians)))
    assert worst[False] < 0.5 and worst[True] > 3.0, worst


# --- the short-wave channel ---------------------------------------------------------------------

def test_the_short_wave_channel_is_nrca1_in_the_same_exposure():
    """The plan's simultaneous channel: NRCA1's exposure carries the numbers of NRCALONG's
    (one exposure read on two detectors); NRCA1's view of the observation is the channel's
    mode (NRC_TSIMAGE, F212N, WLP8, no aperture of the grism), NRCALONG's the grism's."""
    plan = build_plan(load_description(example()))
    obs, lw = _exposure(plan)
    _, sw = _exposure(plan, "NRCA1")
    same = ("visit", "visit_group", "sequence", "activity", "exposure", "dither_point", "start_time")
    assert [getattr(sw, k) for k in same] == [getattr(lw, k) for k in same]
    assert sw.detector == GRISM_TSO_SHORT_WAVE_DETECTOR == "NRCA1"
    assert GRISM_TSO_SHORT_WAVE_EXP_TYPE == "NRC_TSIMAGE" and GRISM_TSO_SHORT_WAVE_PUPILS == ("WLP8", "CLEAR")
    view = obs.for_detector("nrca1")
    assert (view.exp_type, view.filter, view.pupil, view.aperture, view.detectors, view.simultaneous,
            view.exposures) == ("NRC_TSIMAGE", "F212N", "WLP8", None, ["NRCA1"], None, [sw])
    own = obs.for_detector("NRCALONG")
    assert (own.exp_type, own.filter, own.pupil, own.aperture, own.detectors, own.simultaneous, own.exposures) == (
        "NRC_TSGRISM", "F444W", "GRISMR", obs.aperture, ["NRCALONG"], None, [lw])
    for part in (view, own):  # the rest is the observation's: one timing, one window name
        assert (part.number, part.target_id, part.template, part.subarray, part.readpatt, part.ngroups, part.nints,
                part.tsovisit, part.guide_stars) == (obs.number, obs.target_id, obs.template, obs.subarray,
                                                     obs.readpatt, obs.ngroups, obs.nints, obs.tsovisit,
                                                     obs.guide_stars)
    assert obs.channels() == [own, view]
    # without the channel an observation is its own view
    (alone,) = build_plan(load_description(changed(obs={"detectors": ["NRCALONG"], "short_wave": None}))).observations
    assert alone.for_detector("NRCALONG") is alone and alone.channels() == [alone]


def test_the_short_wave_window_is_subgrism64_where_the_target_images_on_nrca1():
    """SUBGRISM64 on NRCA1 starts at row 85 (1-based), where the grism's reference point
    images there; one output, the long-wave window's size and so its timing."""
    assert DETECTOR_SUBARRAYS[("NRCA1", "SUBGRISM64")] == SW_SUB
    assert (SW_SUB.name, SW_SUB.xstart, SW_SUB.ystart, SW_SUB.xsize, SW_SUB.ysize, SW_SUB.noutputs) == (
        "SUBGRISM64", 1, 85, 2048, 64, 1)
    assert subarray("nircam", "subgrism64", "nrca1") == SW_SUB
    # elsewhere the instrument's window
    assert subarray("NIRCAM", "SUBGRISM64", "NRCALONG") == SUB and subarray("NIRCAM", "SUB64P", "NRCA1") == subarray(
        "NIRCAM", "SUB64P")
    for readpatt, ngroups in (("RAPID", 3), ("BRIGHT2", 5)):
        assert exposure_timing("NIRCAM", SW_SUB, readpatt, ngroups, 30) == exposure_timing("NIRCAM", SUB, readpatt,
                                                                                           ngroups, 30)
    # the window's centre, through NRCA1's distortion, is that of the window placed there
    nrca1 = detector("NRCA1")
    assert window_center_v2v3(nrca1, SUB) == window_v2v3(nrca1, SW_SUB) != window_v2v3(nrca1, SUB)
    # rows 84-147 of the detector (0-based): no reference row, the reference columns at both ends
    win = make_detector_model(nrca1, 2022).window(SW_SUB)
    assert win.refpix.shape == (64, 2048)
    assert not np.any(win.refpix[:, 4:-4]) and np.all(win.refpix[:, :4]) and np.all(win.refpix[:, -4:])


def test_the_host_star_lands_in_the_short_wave_window(run):
    """NRCA1 images the host star near full-frame (1886, 116), 0-based (window row 32),
    where the grism's reference point images, with the grism's pointing error (one
    telescope pointing, one acquisition): out of transit f_nu at F212N's pivot over
    jy_per_electron e-/s, its light curve the transit's at the pivot, on the long-wave
    curve's integrations. It holds 59 % of a full well above bias at the last group."""
    desc = load_description(example())
    entry, lw_entry = _entry(run, "NRCA1"), _entry(run, "NRCALONG")
    assert entry["subarray"] == "SUBGRISM64" and entry["telemetry"] == f"telemetry/{SW_STEM}.ccsds"
    # where it lands
    curve = _truth(run, "lightcurve", SW_STEM)
    x, y = entry["host_star"]["x"], entry["host_star"]["y"]
    assert abs(x - 1886.0) < 1.0 and abs(y + SW_SUB.ystart - 1 - 116.0) < 1.0, (x, y)
    np.testing.assert_array_equal(curve["x"], x)
    np.testing.assert_array_equal(curve["y"], y)
    # the grism's pointing error (the acquisition's), not an imaging one
    assert entry["pointing_offset_arcsec"] == lw_entry["pointing_offset_arcsec"]
    ids = (4610, 1, 1, 1, 1, 1, 1)
    error = pointing_error(desc.simulation.seed, ids, desc.simulation.acquisition_error_arcsec,
                           desc.simulation.roll_error_deg)
    assert entry["pointing_offset_arcsec"] == pytest.approx([error.dx, error.dy], rel=1e-12)
    # its flux: f_nu at the pivot over jy_per_electron
    pivot = pivot_wavelength("NIRCAM", "F212N", "WLP8")
    assert pivot == pytest.approx(2.12, abs=0.01)
    expected = float(target_spectrum(desc, 1)(np.array([pivot]))[0]) / jy_per_electron("NIRCAM", "F212N", "WLP8")
    assert curve.meta["host_flux_out_of_transit"] == pytest.approx(expected, rel=1e-9)
    assert entry["host_star"]["flux_e_per_s"] == pytest.approx(expected, rel=1e-9)
    stars = _truth(run, "stars", SW_STEM)
    [host] = stars[stars["id"] == 10**15]
    assert (host["x"], host["y"]) == (x, y) and not host["saturated"]
    # its depth: the transit's at the pivot (the depth spectrum's first point, held blueward: 1 %)
    depth = float(host_star(desc, 1).transit.depth_at(np.array([pivot]))[0])
    assert depth == 0.01 and curve.meta["transit"]["depth"] == pytest.approx(depth, rel=1e-12)
    rel = np.asarray(curve["relative_flux"])
    assert rel.min() == pytest.approx(1.0 - depth, abs=1e-12) and rel.max() == 1.0
    np.testing.assert_allclose(curve["host_flux"], expected * rel, rtol=1e-12)
    # the long-wave curve's integrations and the same trapezoid, scaled to its white-light depth
    lw_curve = _truth(run, "lightcurve")
    np.testing.assert_array_equal(curve["mid_mjd_utc"], lw_curve["mid_mjd_utc"])
    np.testing.assert_allclose((1.0 - rel) / depth,
                               (1.0 - np.asarray(lw_curve["relative_flux"])) / lw_curve.meta["transit"]["depth"],
                               rtol=0, atol=1e-9)
    # about 59 % of its full well above bias at the last group, out of transit
    model = make_detector_model(detector("NRCA1"), desc.simulation.detector_seed)
    win = model.window(SW_SUB)
    with fits.open(run.truth_dir / f"{SW_STEM}_truth_rate.fits") as hdul:
        host_dn = hdul["STARS"].data.astype(np.float64) / float(np.mean(rel))  # DN/s out of transit
    near = (slice(int(y) - 20, int(y) + 21), slice(int(x) - 20, int(x) + 21))
    last = FrameSchedule.for_exposure("NIRCAM", SW_SUB, "RAPID", 3, 30).last_frame_time
    fraction = (host_dn + win.dark / win.gain)[near] * last / (win.full_well - win.bias)[near]
    assert 0.55 < fraction.max() < 0.63, fraction.max()


def test_the_short_wave_depth_is_the_transit_s_at_the_pivot():
    """A depth spectrum that changes across F212N's pivot: the short-wave host's light curve
    takes its depth there (2.4 %), the long-wave one its white light."""
    transit = {**example()["observations"][0]["transit"],
               "depth_spectrum": [[2.0, 0.02], [2.3, 0.03], [3.88, 0.01], [4.98, 0.01]]}
    desc = load_description(changed(obs={"transit": transit}))
    plan = build_plan(desc)
    obs, exp = _exposure(plan, "NRCA1")
    sim = simulate_exposure(plan, obs, exp, desc.simulation, noiseless=True, host=host_star(desc, 1),
                            spectrum=target_spectrum(desc, 1))
    curve = sim.truth.host.curve
    pivot = pivot_wavelength("NIRCAM", "F212N", "WLP8")
    assert curve.depth == pytest.approx(0.02 + 0.01 * (pivot - 2.0) / 0.3, rel=1e-12)
    assert curve.relative.min() == pytest.approx(1.0 - curve.depth, abs=1e-12)
    np.testing.assert_allclose(curve.relative, 1.0 - curve.depth * curve.shape, rtol=0, atol=1e-12)


def test_the_short_wave_exposure_is_ingested_as_nrc_tsimage(run, tmp_path):
    """NRCA1's telemetry through ingest: EXP_TYPE NRC_TSIMAGE behind F212N/WLP8 in SUBGRISM64
    at SUBSTRT2 85, one output, the grism's timing and numbers, its own window centre (no
    aperture of the grism); through detector 1 with its own references (the dark of its
    window) the host's light and its transit come out."""
    plan = run.plan
    path = next(p for p in run.telemetry_paths if p.name == f"{SW_STEM}.ccsds")
    uncal = ingest_telemetry(path.read_bytes(), lambda program: plan, created=datetime(2026, 1, 1, tzinfo=UTC),
                             software_version="test", segment_bytes=2_000_000_000).files[0].product
    kw = uncal.keywords
    assert {k: kw[k] for k in ("INSTRUME", "DETECTOR", "MODULE", "CHANNEL", "EXP_TYPE", "FILTER", "PUPIL",
                               "SUBARRAY", "SUBSTRT1", "SUBSTRT2", "SUBSIZE1", "SUBSIZE2", "NOUTPUTS", "TSOVISIT",
                               "TEMPLATE", "READPATT", "NINTS", "NGROUPS", "PATTTYPE", "EXPOSURE", "VISIT_ID")} == {
        "INSTRUME": "NIRCAM", "DETECTOR": "NRCA1", "MODULE": "A", "CHANNEL": "SHORT", "EXP_TYPE": "NRC_TSIMAGE",
        "FILTER": "F212N", "PUPIL": "WLP8", "SUBARRAY": "SUBGRISM64", "SUBSTRT1": 1, "SUBSTRT2": 85,
        "SUBSIZE1": 2048, "SUBSIZE2": 64, "NOUTPUTS": 1, "TSOVISIT": True, "TEMPLATE": "NIRCam Grism Time Series",
        "READPATT": "RAPID", "NINTS": 30, "NGROUPS": 3, "PATTTYPE": "NONE", "EXPOSURE": "00001",
        "VISIT_ID": "04610001001"}
    assert kw["APERNAME"] != GRISM.aperture and kw["APERNAME"].startswith("NRCA1_"), kw["APERNAME"]
    assert kw["TFRAME"] == pytest.approx(1.339, abs=1e-6)
    assert (kw["V2_REF"], kw["V3_REF"]) == pytest.approx(window_v2v3(detector("NRCA1"), SW_SUB), abs=1e-9)
    assert uncal.images["SCI"].shape == (30, 3, 64, 2048)
    out = calibrate(uncal, LocalReferences(refs_dir=Path(run.reference_paths[0]).parent), software_version="test",
                    created="2026-01-01T00:00:00")
    assert out.rateints.keywords["S_REFPIX"] == "COMPLETE"
    assert out.rateints.keywords["R_DARK"].endswith("jwst_nircam_dark_nrca1_subgrism64_sim.fits")
    entry = _entry(run, "NRCA1")
    x, y = round(entry["host_star"]["x"]), round(entry["host_star"]["y"])
    near = (slice(None), slice(y - 20, y + 21), slice(x - 20, x + 21))  # 3.6 FWHM of the weak lens' image
    rates = out.rateints.images["SCI"].astype(np.float64)[near]
    good = np.all(np.isfinite(rates), axis=0)
    with fits.open(run.truth_dir / f"{SW_STEM}_truth_rate.fits") as hdul:
        truth = hdul["SCI"].data.astype(np.float64)[near[1:]]
    flux = np.where(good, rates, 0.0).sum(axis=(1, 2))  # DN/s per integration
    assert flux.mean() == pytest.approx(truth[good].sum(), rel=5e-4)
    rel = np.asarray(_truth(run, "lightcurve", SW_STEM)["relative_flux"])
    full, outside = rel < 1.0 - 0.0099, rel == 1.0
    assert full.sum() >= 3 and outside.sum() >= 10
    assert 1.0 - flux[full].mean() / flux[outside].mean() == pytest.approx(0.01, abs=1e-3)


def test_the_short_wave_exposure_gets_its_references(run):
    """NRCA1's references: the dark of its window (SUBSTRT2 85, EXP_TYPE NRC_TSIMAGE) and
    the F212N/WLP8 FLAT, selected for its header with NRCA1's imaging PHOTOM."""
    refs = Path(run.reference_paths[0]).parent
    with fits.open(_reference(run, "jwst_nircam_dark_nrca1_subgrism64_sim.fits")) as dark:
        h = dark[0].header
        assert (h["DETECTOR"], h["SUBARRAY"], h["SUBSTRT1"], h["SUBSTRT2"], h["SUBSIZE2"], h["NOUTPUTS"],
                h["EXP_TYPE"]) == ("NRCA1", "SUBGRISM64", 1, 85, 64, 1, "NRC_TSIMAGE")
        assert dark["SCI"].data.shape == (3, 64, 2048)
    header = {"INSTRUME": "NIRCAM", "DETECTOR": "NRCA1", "MODULE": "A", "CHANNEL": "SHORT",
              "EXP_TYPE": "NRC_TSIMAGE", "FILTER": "F212N", "PUPIL": "WLP8", "SUBARRAY": "SUBGRISM64",
              "NOUTPUTS": 1, "READPATT": "RAPID", "DATE-OBS": "2025-01-01", "TIME-OBS": "00:00:00"}
    chosen = {t: s.filename for t, s in select_from_files(reference_files(refs), header,
                                                          ["specwcs", "photom", "flat", "dark"]).items()}
    assert chosen == {"specwcs": None, "photom": "jwst_nircam_photom_nrca1_sim.fits",
                      "flat": flat_filename("NIRCAM", "NRCA1", "F212N", "WLP8"),
                      "dark": "jwst_nircam_dark_nrca1_subgrism64_sim.fits"}
    photometry = json.loads((run.truth_dir / "truth.json").read_text())["photometry"]
    assert photometry["NIRCAM/F212N/WLP8"] == pytest.approx(jy_per_electron("NIRCAM", "F212N", "WLP8"), rel=1e-12)


def test_the_short_wave_channel_changes_nothing_of_the_long_wave_exposure(run, tmp_path):
    """The example without NRCA1 and short_wave: NRCALONG's telemetry and truth files are
    byte for byte the example's, and its truth.json entry the same."""
    alone = simulate(changed(obs={"detectors": ["NRCALONG"], "short_wave": None},
                             simulation={"write_references": False}), tmp_path)
    out = run.truth_dir.parent
    names = [f"telemetry/{STEM}.ccsds", *(f"truth/{STEM}_truth_{kind}" for kind in (
        "rate.fits", "spectrum.ecsv", "transmission.ecsv", "lightcurve.ecsv", "stars.ecsv", "jumps.ecsv"))]
    for name in names:
        assert (tmp_path / name).read_bytes() == (out / name).read_bytes(), name
    assert _entry(alone, "NRCALONG") == _entry(run, "NRCALONG")
    assert [p.name for p in alone.telemetry_paths] == [f"{STEM}.ccsds"]
    assert (out / f"telemetry/{SW_STEM}.ccsds").exists()


# --- the truth of the example -------------------------------------------------------------------

def test_the_truth_files_hold_order_1_and_the_white_light(run):
    spectrum, transmission, curve = _truth(run, "spectrum"), _truth(run, "transmission"), _truth(run, "lightcurve")
    entry = _entry(run, "NRCALONG")
    for table in (spectrum, transmission):
        assert table.colnames[:2] == ["order", "column"]
        np.testing.assert_array_equal(table["order"], 1)
        np.testing.assert_array_equal(table["column"], GRISM.pixels().astype(int))
        np.testing.assert_allclose(table["wavelength"], GRISM.wavelength(GRISM.pixels()), rtol=1e-12)
        assert table.meta["orders"] == [{"order": 1, "imx": 900.0, "imy": 34.0, "span": [780, 1875],
                                         "band_um": list(GRISM.band)}]
        assert "only one" in table.meta["description"]["order"]
    assert spectrum.meta["slit"]["exp_type"] == "NRC_TSGRISM" and spectrum.meta["slit"]["imy"] == 34.0
    np.testing.assert_array_equal(spectrum["transmission"], 1.0)
    assert entry["slit_source"]["aperture"] == "NRCA5_GRISM64_F444W" and entry["slit_source"]["fixed_slit"] is None
    assert spectrum[spectrum["column"] == 899]["sky_e_per_s"][0] == pytest.approx(entry["sky_level_e_per_s"],
                                                                                  rel=1e-9)
    # the white light: the whole band; the light curve is its
    band = [3.88, 4.98]
    assert transmission.meta["white_light_band_um"] == curve.meta["white_light_band_um"] == band
    assert entry["host_star"]["flux_band_um"] == band
    depth = transmission.meta["white_light_depth"]
    inside = (transmission["source_wavelength"] >= band[0]) & (transmission["source_wavelength"] <= band[1])
    assert depth == pytest.approx(transmission["blocked_e_per_s"][inside].sum()
                                  / transmission["source_e_per_s"][inside].sum(), rel=1e-12)
    assert entry["transit"]["depth"] == curve.meta["transit"]["depth"] == depth
    assert 0.0102 < depth < 0.0105  # the CO2 band raises the 1 % base
    # the depth through the LSF is the intrinsic one off the band, the band's peak barely smoothed
    observed, intrinsic = np.asarray(transmission["observed_depth"]), np.asarray(transmission["depth"])
    wavelength = np.asarray(transmission["source_wavelength"])
    np.testing.assert_allclose(observed[np.abs(wavelength - 4.3) > 0.12], 0.01, rtol=1e-6)
    peak = np.abs(wavelength - 4.3) < 0.002
    assert peak.any()
    np.testing.assert_allclose(observed[peak], intrinsic[peak], atol=5e-5)
    # 30 integrations 5.36 s apart, out-of-transit baseline on both sides of the full depth (4 integrations
    # of the 24-second transit)
    rel = np.asarray(curve["relative_flux"])
    assert len(curve) == 30 and rel.min() == pytest.approx(1.0 - depth, abs=1e-12)
    out = np.flatnonzero(rel == 1.0)
    assert np.sum(out < 15) >= 6 and np.sum(out > 15) >= 6 and np.sum(np.isclose(rel, 1.0 - depth)) >= 4


# --- the references -----------------------------------------------------------------------------

def test_the_specwcs_opens_as_the_public_model_and_reproduces_the_simulator(run):
    path = _reference(run, nircam_grism_filename("specwcs"))
    assert path.name == "jwst_nircam_specwcs_nrcalong_tsgrism_sim.asdf"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with dm.NIRCAMGrismModel(str(path)) as ref:
            meta = ref.meta
            assert (meta.reftype, meta.instrument.name, meta.instrument.detector, meta.instrument.module,
                    meta.instrument.filter, meta.instrument.pupil, meta.exposure.type, meta.exposure.p_exptype,
                    meta.useafter, meta.pedigree) == (
                "specwcs", "NIRCAM", "NRCALONG", "A", "F444W", "GRISMR", "NRC_TSGRISM", "NRC_TSGRISM|",
                "2022-01-01T00:00:00", "SIMULATION")
            assert str(meta.input_units) == str(meta.output_units) == "um"
            assert list(ref.orders.instance) == [1]
            models = {k: getattr(ref, k).instance for k in ("displ", "dispx", "dispy", "invdispl", "invdispx",
                                                            "invdispy")}
    assert all(len(m) == 1 for m in models.values())
    displ, dispx, dispy, invdispl, invdispx, invdispy = (models[k][0] for k in (
        "displ", "dispx", "dispy", "invdispl", "invdispx", "invdispy"))
    # t runs over the span: 0 at its first column, 1 at its last, for a source at the reference point
    assert displ(0.0) == pytest.approx(GRISM.band[0], abs=1e-12) and displ(1.0) == pytest.approx(GRISM.band[1],
                                                                                                abs=1e-12)
    s = GRISM.pixels()
    for along, across in ((0.0, 0.0), (0.25, 0.4), (-0.7, -3.1)):  # arcsec: the source's place
        x0 = GRISM.s_ref + across / GRISM.pixel_scale  # its undispersed 0-based full-frame pixel
        y0 = GRISM.t_ref + along / GRISM.pixel_scale
        source = SlitSource(_placed_source(run).spectrum, along=along, across=across)
        dx = s - x0
        t = invdispx(x0, y0, dx)
        np.testing.assert_allclose(dispx(x0, y0, t), dx, rtol=0, atol=1e-9)
        # the wavelength of the source's light at each column, and its trace's row
        np.testing.assert_allclose(displ(t), GRISM.wavelength(s - source.across / GRISM.pixel_scale), rtol=0,
                                   atol=1e-6)
        np.testing.assert_allclose(y0 + dispy(x0, y0, t), GRISM.trace(s) + source.along / GRISM.pixel_scale,
                                   rtol=0, atol=1e-6)
        np.testing.assert_allclose(invdispy(x0, y0, dispy(x0, y0, t)), t, rtol=0, atol=1e-9)
        np.testing.assert_allclose(invdispl(displ(t)), t, rtol=0, atol=1e-9)
    # the file's models are the writer's
    for key, [model] in grism_dispersion_models(GRISM).items():
        probe = (np.array([0.1, 0.5, 0.9]),) if model.n_inputs == 1 else (899.0, 33.0, np.array([0.1, 0.5, 0.9]))
        np.testing.assert_array_equal(models[key][0](*probe), model(*probe))


def test_the_dispersion_models_take_only_what_they_can_write_exactly():
    """A linear law and a trace that moves one way over the span (its inverse is one
    function): a curved law, a turning trace or a spectrum along y is refused."""
    curved = dataclasses.replace(GRISM, law=GratingDispersion(reference=4.0, linear=0.0010035, quadratic=1e-8))
    turning = dataclasses.replace(GRISM, trace_coeffs=(0.0, 0.0, 1.0e-6))  # its lowest point at IMX
    for model, words in ((curved, "not linear"), (turning, "turns over"), (LRS_SLITLESS, "along y")):
        with pytest.raises(ValueError, match=words):
            grism_dispersion_models(model)
    # a trace falling with the column takes the other root
    falling = dataclasses.replace(GRISM, trace_coeffs=(0.3, -0.002, -1.0e-6))
    models = {k: v[0] for k, v in grism_dispersion_models(falling).items()}
    t = np.linspace(0.0, 1.0, 11)
    for x0, y0 in ((899.0, 33.0), (880.5, 40.2)):
        np.testing.assert_allclose(models["invdispy"](x0, y0, models["dispy"](x0, y0, t)), t, rtol=0, atol=1e-9)


def test_the_photom_calibrates_a_rendered_column(run):
    path = _reference(run, nircam_grism_filename("photom"))
    assert path.name == "jwst_nircam_photom_nrcalong_tsgrism_sim.fits"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with dm.open(path) as photom:
            assert type(photom).__name__ == "NrcWfssPhotomModel"
            table = photom.phot_table.copy()
            assert (photom.meta.exposure.type, photom.meta.exposure.p_exptype) == ("NRC_TSGRISM",
                                                                                  "NRC_TSGRISM|")
            pixar_sr = photom.meta.photometry.pixelarea_steradians
    assert pixar_sr == pytest.approx(GRISM.pixel_area_sr, rel=1e-12)
    [row] = table
    assert (row["filter"], row["pupil"], int(row["order"])) == ("F444W", "GRISMR", 1)
    assert table.dtype["order"] == np.int16 and table.dtype["photmjsr"] == np.float32
    n = int(row["nelem"])
    waves, rel = np.asarray(row["wavelength"][:n], float), np.asarray(row["relresponse"][:n], float)
    # the spectrum's columns and one more at each end, wavelength increasing, 1 at the throughput's peak
    assert n == GRISM.span[1] - GRISM.span[0] + 3 and np.all(np.diff(waves) > 0)
    assert waves[0] < GRISM.band[0] and waves[-1] > GRISM.band[1]
    assert np.interp(GRISM.throughput_centre, waves, rel) == pytest.approx(1.0, abs=1e-6)
    desc = load_description(example())
    g0 = mean_gain(make_detector_model(detector("NRCALONG"), desc.simulation.detector_seed))
    # photmjsr x relresponse x PIXAR_SR / dispersion = 1e-6 g0 / electrons_per_jy of the column (MJy per
    # DN/s; PHOTMJSR per um of spectrum, the public grisms' unit)
    s = np.arange(GRISM.span[0] - 1, GRISM.span[1] + 2, dtype=np.float64)
    np.testing.assert_allclose(float(row["photmjsr"]) * rel * GRISM.pixel_area_sr / GRISM.dispersion(s),
                               1e-6 * g0 / GRISM.electrons_per_jy(s), rtol=1e-6)
    # a noiseless rendered column (pixel area, flat and gain as the exposure applies them), over the FLAT
    # reference, summed over its rows, calibrated
    with fits.open(run.truth_dir / f"{STEM}_truth_rate.fits") as hdul:
        flat, gain, area = (hdul[k].data.astype(np.float64) for k in ("FLAT", "GAIN", "AREA"))
    with fits.open(_reference(run, flat_filename("NIRCAM", "NRCALONG", "F444W", "GRISMR"))) as ref_flat:
        assert (ref_flat[0].header["FILTER"], ref_flat[0].header["PUPIL"]) == ("F444W", "GRISMR")
        reference_flat = ref_flat["SCI"].data[:SUB.ysize].astype(np.float64)
    rate = render_slit(GRISM, [_placed_source(run)], WINDOW).image * area * flat / gain  # DN/s
    with np.errstate(divide="ignore", invalid="ignore"):
        flat_fielded = rate / reference_flat
    spectrum = _truth(run, "spectrum")
    columns = np.asarray(spectrum["column"], int)
    trace = np.asarray(spectrum["source_y"])
    near = np.abs(np.arange(SUB.ysize)[:, None] - trace[None, :]) <= 12.0  # 12 sigma of the PSF
    summed = np.sum(np.where(near, flat_fielded[:, columns], 0.0), axis=0)
    mjy_sr = summed * float(row["photmjsr"]) * np.interp(spectrum["wavelength"], waves, rel) / GRISM.dispersion(
        columns.astype(np.float64))
    jy = mjy_sr * pixar_sr * 1e6
    good = np.isfinite(jy)  # a column with a dead pixel in it is NaN
    assert good.mean() > 0.9
    error = np.abs(jy[good] / np.asarray(spectrum["observed_jy"])[good] - 1.0)
    assert error.max() < 5e-3, error.max()


def test_the_grism_exposure_gets_its_references(run):
    """By EXP_TYPE, FILTER, PUPIL, SUBARRAY and NOUTPUTS: the grism exposure gets its
    SPECWCS and PHOTOM, the F444W/GRISMR FLAT, the SUBGRISM64 dark and NRCALONG's
    DISTORTION; another filter gets no SPECWCS, an imaging exposure the imaging PHOTOM."""
    refs = Path(run.reference_paths[0]).parent
    with fits.open(_reference(run, "jwst_nircam_dark_nrcalong_subgrism64_sim.fits")) as dark:
        h = dark[0].header
        assert (h["SUBARRAY"], h["SUBSTRT1"], h["SUBSTRT2"], h["NOUTPUTS"], h["EXP_TYPE"]) == (
            "SUBGRISM64", 1, 1, 1, "NRC_TSGRISM")
        assert dark["SCI"].data.shape == (3, 64, 2048)  # the frames of an integration of 3 RAPID groups
    with dm.open(_reference(run, "jwst_nircam_distortion_nrcalong_sim.asdf")) as distortion:
        assert "NRC_TSGRISM" in distortion.meta.exposure.p_exptype.split("|")
    header = {"INSTRUME": "NIRCAM", "DETECTOR": "NRCALONG", "MODULE": "A", "CHANNEL": "LONG",
              "EXP_TYPE": "NRC_TSGRISM", "FILTER": "F444W", "PUPIL": "GRISMR", "SUBARRAY": "SUBGRISM64",
              "NOUTPUTS": 1, "READPATT": "RAPID", "DATE-OBS": "2025-01-01", "TIME-OBS": "00:00:00"}
    wanted = ["specwcs", "photom", "flat", "dark", "distortion", "superbias", "linearity", "saturation", "mask",
              "gain", "readnoise"]
    chosen = {t: s.filename for t, s in select_from_files(reference_files(refs), header, wanted).items()}
    assert chosen == {
        "specwcs": nircam_grism_filename("specwcs"), "photom": nircam_grism_filename("photom"),
        "flat": flat_filename("NIRCAM", "NRCALONG", "F444W", "GRISMR"),
        "dark": "jwst_nircam_dark_nrcalong_subgrism64_sim.fits", "distortion": "jwst_nircam_distortion_nrcalong_sim.asdf",
        **{t: f"jwst_nircam_{t}_nrcalong_sim.fits" for t in ("superbias", "linearity", "saturation", "mask", "gain",
                                                             "readnoise")}}
    other_filter = {t: s.filename for t, s in select_from_files(reference_files(refs), header | {"FILTER": "F322W2"},
                                                                ["specwcs", "flat"]).items()}
    assert other_filter == {"specwcs": None, "flat": None}
    imaging = header | {"EXP_TYPE": "NRC_IMAGE", "PUPIL": "CLEAR", "SUBARRAY": "FULL"}
    chosen = {t: s.filename for t, s in select_from_files(reference_files(refs), imaging, ["specwcs", "photom"]).items()
              if s.filename is not None}
    assert chosen == {"photom": "jwst_nircam_photom_nrcalong_sim.fits"}
