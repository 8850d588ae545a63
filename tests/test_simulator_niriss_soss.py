"""NIRISS single-object slitless spectroscopy (NIS_SOSS: GR700XD behind CLEAR on NIS,
SUBSTRIP256) in the simulator: the two spectral orders (laws, spans, traces, their
separation, resolving power, electrons per Jy), the rendered window (light in both orders
where the model puts it, none beyond an order's span, the cross-dispersion profile's
width), the photometry and the transit per order, the description's checks, the truth
files, the reference files (SPECTRACE, PHOTOM, FLAT, DARK) and their selection, and a
small noiseless exposure through ingest and detector 1 in this process; the example
``examples/niriss_soss.yaml`` is simulated once for the module (about 10 s).

Tolerances (stated beside each check):
- a column of one order rendered alone sums to the truth spectrum's ``source_e_per_s`` to
  1e-9 (the same rendering) and to ``observed_jy * electrons_per_jy`` to 1e-6 (the
  truth's own account of it, no slit loss); rendering in blocks (``render_block``) gives
  the one-matrix image to 1e-12 of its peak;
- the cross-dispersion profile of a column: second moment ``sqrt(5.0^2 + 1/12)`` px (the
  Gaussian integrated over pixels) within 1e-3 (measured 5e-5), its centroid the trace
  within 0.001 px (measured 1.5e-4);
- noiseless telemetry through ingest and detector 1: per column where an order puts 2000
  e-/s or more (about half of each order's columns), the full-depth over out-of-transit
  ratio of a box of +-20 rows about the trace is ``1 - observed_depth`` within 1e-3 (the
  uint16 rounding of a noiseless ramp is the same in every integration and does not
  average away; measured 8e-4), the median over those columns within 1e-4 (measured
  4.5e-5); the water bands (1.25 %) stand out of the 1 % base in the bright columns (1.4
  and 1.9 um in order 1; order 2 is faint at 1.4 um, its band is checked in the truth);
- PHOTOM: a noiseless rendered column of each order, as rate over the FLAT reference,
  summed over the 61 rows about its trace and times PHOTMJ x RELRESPONSE, is the truth's
  ``observed_jy`` within 0.5 % (measured 6e-7: the float32 reference).
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from scipy.special import erf
from stdatamodels.jwst import datamodels as dm

from services.detector1.pipeline import calibrate
from services.ingest.pipeline import ingest_telemetry
from services.simulator import (
    DescriptionError,
    build_plan,
    load_description,
    simulate,
    simulate_exposure,
)
from services.simulator.detector_model import make_detector_model
from services.simulator.optical_refs import flat_filename, mean_gain
from services.simulator.optics import COLLECTING_AREA_M2, PLANCK_J_S
from services.simulator.ramps import FrameSchedule
from services.simulator.runner import host_star, target_spectrum
from services.simulator.slit_refs import niriss_soss_filename, soss_trace_table
from services.simulator.spectrograph import (
    NIRISS_SOSS,
    NIRISS_SOSS_ORDERS,
    NIRSPEC_BOTS,
    SPECTRAL_TSO_EXP_TYPES,
    GratingDispersion,
    ModulatedSpectrum,
    SlitSource,
    observed_spectrum,
    render_slit,
    slit_spectrograph,
    spectral_orders,
)
from services.simulator.telemetry_writer import write_telemetry
from shared.instruments import detector, subarray
from shared.refdata import LocalReferences
from shared.refdata.files import reference_files
from shared.refdata.loading import load_reference
from shared.refdata.selection import select_from_files
from shared.refdata.window import Window
from tests.slit_examples import edited

pytestmark = pytest.mark.filterwarnings("ignore::astropy.wcs.FITSFixedWarning")

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "niriss_soss.yaml"
STEM = "jw04523001001_01101_00001_nis"
ORDER1, ORDER2 = NIRISS_SOSS_ORDERS
SUB = subarray("NIRISS", "SUBSTRIP256")
WINDOW = (SUB.xstart - 1, SUB.ystart - 1, SUB.xsize, SUB.ysize)
ROW0 = SUB.ystart - 1  # full-frame row of window row 0
BOX = 20  # rows either side of a trace summed: 4 sigma of the 5 px profile


def example() -> dict:
    return edited(EXAMPLE)


def changed(obs: dict | None = None, target: dict | None = None, simulation: dict | None = None) -> dict:
    """The example with fields of its observation, target or simulation replaced (None
    values remove a field)."""
    return edited(EXAMPLE, obs, target, simulation)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return simulate(example(), tmp_path_factory.mktemp("soss"))


@pytest.fixture(scope="module")
def rendered() -> dict[int, np.ndarray]:
    """Each order's image of the example's star at the reference point (e-/s, no sky)."""
    return {m.order: render_slit(m, [_source()], WINDOW).image for m in (ORDER1, ORDER2)}


def _truth(run, kind: str) -> Table:
    return Table.read(run.truth_dir / f"{STEM}_truth_{kind}.ecsv")


def _reference(run, name: str) -> Path:
    return next(Path(p) for p in run.reference_paths if Path(p).name == name)


def _source() -> SlitSource:
    """The example's star at the reference point."""
    return SlitSource(target_spectrum(load_description(example()), 1))


def _box(image: np.ndarray, model, columns: np.ndarray, along: float = 0.0) -> np.ndarray:
    """Per column (full frame): the sum of ``image`` (ny, nx of the window, or (n, ny, nx))
    over the rows within :data:`BOX` of ``model``'s trace."""
    rows = np.rint(model.trace(columns.astype(float)) + along / model.pixel_scale).astype(int) - ROW0
    image = image if image.ndim == 3 else image[None]
    out = np.zeros((image.shape[0], columns.size))
    for k, (x, y) in enumerate(zip(columns - WINDOW[0], rows, strict=True)):
        out[:, k] = image[:, y - BOX:y + BOX + 1, x].sum(axis=1)
    return out


# --- the orders ------------------------------------------------------------------------------

def test_the_mode_has_two_orders_of_gr700xd_in_substrip256():
    assert slit_spectrograph("NIS_SOSS") is NIRISS_SOSS is ORDER1 and slit_spectrograph("nis_soss") is ORDER1
    assert spectral_orders(NIRISS_SOSS) == spectral_orders(ORDER2) == (ORDER1, ORDER2)
    assert spectral_orders(NIRSPEC_BOTS) == (NIRSPEC_BOTS,)
    assert [m.order for m in (ORDER1, ORDER2)] == [1, 2] and NIRSPEC_BOTS.order == 1
    for m in (ORDER1, ORDER2):
        assert (m.exp_type, m.detector, m.filter, m.grating, m.aperture, m.subarrays, m.dispaxis) == (
            "NIS_SOSS", "NIS", "CLEAR", "GR700XD", "NIS_SUBSTRIP256", ("SUBSTRIP256",), 1)
        assert m.slitless and m.time_series and m.pixel_scale == 0.0656 and m.detector_sigma == 1.0
        assert m.imx == 1025.0 and m.spatial_sigma == 5.0 and m.sky_levels == ((1.0, 0.30), (3.0, 0.20))
        np.testing.assert_array_equal(m.profile_sigma(np.array([0.7, 1.5, 2.5])), 5.0)
        np.testing.assert_array_equal(m.slit_transmission(np.array([0.7, 1.5, 2.5]), 0.3), 1.0)
    assert (ORDER1.imy, ORDER2.imy) == (1862.0, 1952.0)
    assert (ORDER1.imy - 1 - ROW0, ORDER2.imy - 1 - ROW0) == (69.0, 159.0)  # window rows of the reference points
    assert "NIS_SOSS" in SPECTRAL_TSO_EXP_TYPES
    # the white light: order 1's whole band
    assert ORDER1.white_light_band == ORDER1.band
    # the other modes keep the PSF across the dispersion
    wl = np.array([3.0, 4.0, 5.0])
    np.testing.assert_array_equal(NIRSPEC_BOTS.profile_sigma(wl), NIRSPEC_BOTS.psf_sigma(wl))
    assert NIRSPEC_BOTS.spatial_sigma is None and NIRSPEC_BOTS.render_block is None
    assert (SUB.name, SUB.xstart, SUB.ystart, SUB.xsize, SUB.ysize, SUB.noutputs) == ("SUBSTRIP256", 1, 1793, 2048,
                                                                                       256, 1)


def test_the_laws_decrease_with_the_column_over_the_stated_spans():
    assert isinstance(ORDER1.law, GratingDispersion) and isinstance(ORDER2.law, GratingDispersion)
    assert (ORDER1.law.reference, ORDER1.law.linear, ORDER1.law.quadratic) == (1.85, -9.75e-4, 1.0e-8)
    assert (ORDER2.law.reference, ORDER2.law.linear, ORDER2.law.quadratic) == (0.95, -4.9e-4, 0.0)
    for m in (ORDER1, ORDER2):
        s = m.pixels()
        assert np.all(np.diff(m.wavelength(s)) < 0)
        np.testing.assert_allclose(m.pixel(m.wavelength(s)), s, atol=1e-9)  # GratingDispersion.offset, slope < 0
    # order 1: columns 4-2043, inside the reference columns: 2.855 um to 0.867 um
    border = detector("NIS").refpix_border
    assert ORDER1.span == (border, 2047 - border) == (4, 2043)
    np.testing.assert_allclose(ORDER1.wavelength(np.array([4.0, 1024.0, 2043.0])), [2.854904, 1.85, 0.86685861],
                               rtol=1e-7)
    np.testing.assert_allclose(ORDER1.dispersion(np.array([4.0, 2043.0])), [9.954e-4, 9.5462e-4], rtol=1e-4)
    # order 2: the columns whose wavelength is 0.60-1.40 um
    assert ORDER2.span == (106, 1738)
    assert ORDER2.wavelength(105.0) > 1.40 >= ORDER2.wavelength(106.0) > 1.3997
    assert ORDER2.wavelength(1739.0) < 0.60 <= ORDER2.wavelength(1738.0) < 0.6002
    assert ORDER2.band == pytest.approx((0.60014, 1.39982), abs=1e-6)


def test_the_traces_their_separation_and_the_window():
    columns = np.array([4.0, 106.0, 500.0, 1024.0, 1124.0, 1738.0, 2043.0])
    rows1, rows2 = ORDER1.trace(columns) - ROW0, ORDER2.trace(columns) - ROW0
    np.testing.assert_allclose(rows1[[0, 3, 4, 6]], [93.888, 69.0, 68.8, 85.69122], atol=1e-9)
    np.testing.assert_allclose(rows2[[1, 3, 5]], [129.95448, 159.0, 204.89592], atol=1e-9)
    np.testing.assert_allclose((rows2 - rows1)[[1, 2, 3, 5]], [40.428, 61.704, 90.0, 128.556], atol=1e-9)
    # about 40 px at order 2's left end, more everywhere else
    s2 = ORDER2.pixels()
    separation = ORDER2.trace(s2) - ORDER1.trace(s2)
    assert np.argmin(separation) == 0 and np.all(np.diff(separation) > 0)
    # order 2 stays 9 sigma below the top reference rows (252-255); order 1 14 sigma above the bottom edge
    top = (ORDER2.trace(s2) - ROW0).max()
    assert (SUB.ysize - 4 - 0.5 - top) / ORDER2.spatial_sigma > 9.0
    assert ((ORDER1.trace(ORDER1.pixels()) - ROW0).min() + 0.5) / ORDER1.spatial_sigma > 13.0


def test_resolving_power_and_electrons_per_jy():
    np.testing.assert_allclose(ORDER1.resolving_power(np.array([0.9, 1.4, 2.0, 2.5, 2.8])),
                               [393.0, 592.0, 803.0, 956.0, 1037.0], rtol=2e-3)
    np.testing.assert_allclose(ORDER2.resolving_power(np.array([0.6, 0.85, 1.0, 1.2])), [516.0, 726.0, 849.0, 1010.0],
                               rtol=2e-3)
    for m, waves, per_jy in ((ORDER1, [0.9, 1.4, 2.0, 2.5, 2.8], [1.34e5, 1.06e5, 5.66e4, 2.36e4, 1.18e4]),
                             (ORDER2, [0.6, 0.85, 1.0, 1.2], [3.80e4, 4.42e4, 3.14e4, 1.17e4])):
        s = m.pixel(np.array(waves))
        np.testing.assert_allclose(m.electrons_per_jy(s), per_jy, rtol=5e-3)
        expected = (1e-26 / PLANCK_J_S * COLLECTING_AREA_M2 * m.throughput(np.array(waves)) * m.dispersion(s)
                    / np.array(waves))
        np.testing.assert_allclose(m.electrons_per_jy(s), expected, rtol=1e-12)
    assert ORDER1.throughput(np.array([1.4]))[0] == 0.40 and ORDER2.throughput(np.array([0.85]))[0] == 0.20


# --- the rendered window ----------------------------------------------------------------------

def test_rendering_in_blocks_is_the_one_matrix_rendering():
    """Over 300 columns of each order (the one-matrix rendering of the whole span is
    slow: that is why SOSS renders in blocks)."""
    source = _source()
    for m in (ORDER1, ORDER2):
        part = dataclasses.replace(m, span=(m.span[0] + 200, m.span[0] + 499))
        whole = dataclasses.replace(part, render_block=None)
        blocked = render_slit(part, [source], WINDOW).image
        assert blocked.max() > 0
        np.testing.assert_allclose(blocked, render_slit(whole, [source], WINDOW).image, rtol=0,
                                   atol=1e-12 * blocked.max())
        pixels = part.pixels()
        np.testing.assert_allclose(observed_spectrum(part, source.spectrum, pixels),
                                   observed_spectrum(whole, source.spectrum, pixels), rtol=1e-12)


def test_both_orders_light_their_spans_and_nothing_beyond(rendered):
    image1, image2 = rendered[1], rendered[2]
    # each order's light along its trace, every column of its span: the pixel on the trace holds the
    # profile's central part of the column's light
    for m, image in ((ORDER1, image1), (ORDER2, image2)):
        columns = m.pixels().astype(int)
        trace = m.trace(columns.astype(float))
        rows = np.rint(trace).astype(int)
        on_trace = image[rows - ROW0, columns]
        z = np.sqrt(2.0) * m.spatial_sigma
        central = 0.5 * (erf((rows + 0.5 - trace) / z) - erf((rows - 0.5 - trace) / z))
        assert np.all(on_trace > 0)
        inner = (columns > m.span[0] + 10) & (columns < m.span[1] - 10)
        np.testing.assert_allclose((on_trace / image.sum(axis=0)[columns])[inner], central[inner], rtol=2e-3)
    # order 2: nothing beyond its span (10 columns of samples, 10 sigma of the LSF)
    lo, hi = ORDER2.span
    assert not np.any(image2[:, :lo - 25]) and not np.any(image2[:, hi + 26:])
    assert image2[:, lo - 5:lo].sum() > 0 and image2[:, hi + 1:hi + 6].sum() > 0
    # none of order 1 reaches order 2's trace at its left end, 40 px (8 sigma) away
    both = image1 + image2
    column = 106
    row2 = int(round(float(ORDER2.trace(float(column))))) - ROW0
    assert image1[row2, column] < 1e-9 * image2[row2, column]
    assert both.max() == pytest.approx(max(image1.max(), image2.max()), rel=1e-12)  # the orders' peaks apart


def test_the_cross_dispersion_profile_is_five_pixels_wide(rendered):
    rows = np.arange(SUB.ysize) + ROW0
    for m, column in ((ORDER1, 1500), (ORDER1, 300), (ORDER2, 1000), (ORDER2, 400)):
        profile = rendered[m.order][:, column]
        centre = float(m.trace(float(column)))
        near = np.abs(rows - centre) <= 30
        weight = profile[near] / profile[near].sum()
        mean = float(np.sum(weight * rows[near]))
        sigma = float(np.sqrt(np.sum(weight * (rows[near] - mean) ** 2)))
        assert mean == pytest.approx(centre, abs=0.001), (m.order, column, mean, centre)
        assert sigma == pytest.approx(np.sqrt(5.0**2 + 1.0 / 12.0), rel=1e-3), (m.order, column, sigma)
        # the PSF of the other modes would be a pixel wide: this is the grism's defocus
        assert sigma > 5.0 * float(m.psf_sigma(m.wavelength(float(column))))


def test_a_column_holds_the_electrons_the_model_gives(run):
    """Per order, a column of the order rendered alone (the exposure's place of the star)
    sums to the truth's source_e_per_s, and that to observed_jy x electrons_per_jy."""
    spectrum = _truth(run, "spectrum")
    meta = spectrum.meta
    source = SlitSource(target_spectrum(load_description(example()), 1), along=meta["along_arcsec"],
                        across=meta["across_arcsec"])
    for m in (ORDER1, ORDER2):
        rows = spectrum[spectrum["order"] == m.order]
        columns = np.asarray(rows["column"], int)
        image = render_slit(m, [source], WINDOW).image
        np.testing.assert_allclose(image.sum(axis=0)[columns], rows["source_e_per_s"], rtol=1e-9)
        inner = (columns >= m.span[0] + 10) & (columns <= m.span[1] - 10)
        np.testing.assert_allclose(rows["source_e_per_s"][inner],
                                   (rows["observed_jy"] * rows["electrons_per_jy"])[inner], rtol=1e-6)


# --- the description -------------------------------------------------------------------------

def test_the_example_plans_a_soss_time_series():
    desc = load_description(example())
    (obs,) = build_plan(desc).observations
    assert (obs.instrument, obs.exp_type, obs.filter, obs.pupil, obs.subarray, obs.detectors, obs.tsovisit,
            obs.readpatt, obs.ngroups, obs.nints) == ("NIRISS", "NIS_SOSS", "CLEAR", "GR700XD", "SUBSTRIP256", ["NIS"],
                                                      True, "NISRAPID", 3, 30)
    assert (obs.template, obs.aperture.name, obs.fixed_slit, obs.dither.pattern_type) == (
        "NIRISS SOSS", "NIS_SUBSTRIP256", None, "NONE")
    spec = desc.observations[0]
    assert spec.spectroscopic_tso and spec.slitless and spec.spectrograph is ORDER1
    host = host_star(desc, 1)
    assert host.flux is None and host.transit.chromatic
    np.testing.assert_allclose(host.transit.depth_at(np.array([0.7, 1.35, 1.4, 1.45, 1.9, 2.5])),
                               [0.01, 0.01125, 0.0125, 0.01125, 0.0125, 0.01])
    # a grey transit, NIS readout, a line only order 2 sees: all accepted
    load_description(changed(obs={"transit": {"depth": 0.01, "duration_s": 60.0}, "readpatt": "NIS"}))
    load_description(changed(target={"spectrum": {"flux_jy": 0.1, "reference_wavelength": 1.25,
                                                  "lines": [{"wavelength": 0.7, "fwhm": 0.01, "strength": -0.3}]}}))


@pytest.mark.parametrize(
    ("obs", "target", "words"),
    [
        ({"subarray": "FULL"}, None, ["observations[0]", "subarray", "SUBSTRIP256", "not FULL"]),
        ({"subarray": "SUB256"}, None, ["observations[0]", "subarray", "SUBSTRIP256", "not SUB256"]),
        ({"subarray": "SUBSTRIP96"}, None, ["observations[0].subarray", "unknown subarray", "SUBSTRIP256"]),
        ({"filter": "F277W"}, None, ["observations[0]", "filter", "filter CLEAR", "not F277W"]),
        ({"pupil": "CLEAR"}, None, ["observations[0]", "pupil", "pupil GR700XD", "not CLEAR"]),
        ({"pupil": None}, None, ["observations[0]", "pupil", "pupil GR700XD", "not none"]),
        ({"readpatt": "NRSRAPID"}, None, ["observations[0].readpatt", "NISRAPID, NIS"]),
        ({"tsovisit": False, "transit": None}, None, ["observations[0]", "NIS_SOSS", "tsovisit: true"]),
        ({"dither": {"pattern": "4-POINT-BOX"}}, None, ["observations[0]", "dither", "pattern NONE", "4-POINT-BOX"]),
        ({"dither": {"offsets": [[0.0, 0.0], [1.0, 0.0]]}}, None, ["dither", "pattern NONE", "explicit offsets"]),
        ({"host_flux": 1.0e6}, None, ["host_flux", "targets[].spectrum", "imaging time series"]),
        ({"is_psf": True}, None, ["observations[0]", "time series of its target", "is_psf"]),
        ({"detectors": ["NRCA1"]}, None, ["observations[0].detectors", "NRCA1 belongs to NIRCAM"]),
        ({"fixed_slit": "S1600A1"}, None, ["fixed_slit", "NIRSpec fixed-slit", "not NIS_SOSS"]),
        ({"exp_type": "NIS_IMAGE", "tsovisit": False, "transit": None}, None,
         ["observations[0]", "pupil", "GR700XD is the SOSS grism", "exp_type NIS_SOSS"]),
        (None, {"spectrum": {"flux_jy": 0.1, "reference_wavelength": 1.25,
                             "lines": [{"wavelength": 3.5, "fwhm": 0.01, "strength": -0.5}]}},
         ["targets[0].spectrum.lines[0].wavelength", "3.5 um is outside", "order 1", "order 2", "0.87-2.85 um",
          "0.60-1.40 um"]),
    ],
)
def test_bad_soss_descriptions_name_the_field_and_the_reason(obs, target, words):
    with pytest.raises(DescriptionError) as info:
        load_description(changed(obs=obs, target=target))
    for word in words:
        assert word in str(info.value), (word, str(info.value))


# --- an exposure --------------------------------------------------------------------------------

def test_the_example_collects_half_a_full_well():
    """The example's exposure: 30 integrations of 3 groups in the 2048 x 256 window; the
    brightest pixel's charge at the last group of an out-of-transit integration is about
    half its full well (order 1 near 0.9 um); the blocked light is the host's spectrum
    times the depth through both orders; the sky is both orders'."""
    desc = load_description(example())
    plan = build_plan(desc)
    (obs,) = plan.observations
    model = make_detector_model(detector("NIS"), desc.simulation.detector_seed)
    sim = simulate_exposure(plan, obs, obs.exposures[0], desc.simulation, model=model, noiseless=True,
                            host=host_star(desc, 1), spectrum=target_spectrum(desc, 1))
    win = model.window(SUB)
    assert sim.sci.shape == (30, 3, 256, 2048)
    assert np.all(sim.sci[:, -1].astype(np.float64) < win.saturation - 10000.0)
    schedule = FrameSchedule.for_exposure("NIRISS", SUB, "NISRAPID", obs.ngroups, obs.nints)
    out_of_transit = sim.truth.flux + sim.truth.slit.transit.blocked * float(np.mean(sim.truth.host.curve.shape))
    charge = (out_of_transit * win.flat + win.dark) * schedule.last_frame_time  # electrons
    fraction = charge / ((win.full_well - win.bias) * win.gain)
    assert 0.45 < fraction.max() < 0.55, fraction.max()
    y, x = np.unravel_index(np.argmax(fraction), fraction.shape)
    assert abs(y + ROW0 - float(ORDER1.trace(float(x)))) < 1.0 and ORDER1.wavelength(float(x)) < 0.9
    # the sky of both orders on every pixel, the orders' sum at the reference column
    truth = sim.truth
    assert truth.sky_level == pytest.approx(5.28, abs=0.01)
    sky = truth.slit.sky / truth.area
    np.testing.assert_allclose(sky[:, 1024], truth.sky_level, rtol=1e-6)
    np.testing.assert_allclose(sky[:, 4], 1.24, atol=0.01)
    assert [o.model for o in truth.slit.orders] == [ORDER1, ORDER2]
    assert truth.slit.pixel_electrons is truth.slit.orders[0].pixel_electrons
    place = truth.slit.source
    blocking = SlitSource(ModulatedSpectrum(place.spectrum, host_star(desc, 1).transit.depth_at), along=place.along,
                          across=place.across)
    blocked = sum(render_slit(m, [blocking], WINDOW).image for m in (ORDER1, ORDER2))
    np.testing.assert_allclose(truth.slit.transit.blocked, blocked * truth.area, rtol=1e-6, atol=0.0)
    for order in truth.slit.orders:  # each order's blocked light per column
        m = order.model
        np.testing.assert_allclose(order.blocked_electrons,
                                   render_slit(m, [blocking], WINDOW).image.sum(axis=0), rtol=1e-12)


def test_noiseless_telemetry_through_detector1_carries_the_transit_of_both_orders(run, tmp_path):
    """A short noiseless series (8 integrations of the example's 3 groups, no sky, a
    two-minute transit) through ingest and detector 1 with the example's references: the
    keywords of the mode, and per column of each order the full-depth over out-of-transit
    ratio of a box about its trace is ``1 - observed_depth``."""
    desc = load_description(changed(obs={"nints": 8,
                                         "transit": {**example()["observations"][0]["transit"], "duration_s": 110.0,
                                                     "ingress_s": 10.0}},
                                    simulation={"sky_level": 0.0}))
    plan = build_plan(desc)
    (obs,) = plan.observations
    sim = simulate_exposure(plan, obs, obs.exposures[0], desc.simulation, noiseless=True, host=host_star(desc, 1),
                            spectrum=target_spectrum(desc, 1))
    curve, slit = sim.truth.host.curve, sim.truth.slit
    outside, full = curve.shape == 0.0, np.isclose(curve.shape, 1.0)
    assert outside.sum() >= 3 and full.sum() >= 3
    uncal = ingest_telemetry(write_telemetry(sim, tmp_path).read_bytes(), lambda program: plan,
                             created=datetime(2026, 1, 1, tzinfo=UTC), software_version="test",
                             segment_bytes=2_000_000_000).files[0].product
    kw = uncal.keywords
    assert {k: kw[k] for k in ("INSTRUME", "DETECTOR", "EXP_TYPE", "FILTER", "PUPIL", "SUBARRAY", "SUBSTRT1",
                               "SUBSTRT2", "SUBSIZE1", "SUBSIZE2", "APERNAME", "TSOVISIT", "TEMPLATE", "READPATT",
                               "NOUTPUTS", "NINTS", "NGROUPS", "PATTTYPE")} == {
        "INSTRUME": "NIRISS", "DETECTOR": "NIS", "EXP_TYPE": "NIS_SOSS", "FILTER": "CLEAR", "PUPIL": "GR700XD",
        "SUBARRAY": "SUBSTRIP256", "SUBSTRT1": 1, "SUBSTRT2": 1793, "SUBSIZE1": 2048, "SUBSIZE2": 256,
        "APERNAME": "NIS_SUBSTRIP256", "TSOVISIT": True, "TEMPLATE": "NIRISS SOSS", "READPATT": "NISRAPID",
        "NOUTPUTS": 1, "NINTS": 8, "NGROUPS": 3, "PATTTYPE": "NONE"}
    assert "GRATING" not in kw or kw["GRATING"] is None
    out = calibrate(uncal, LocalReferences(refs_dir=Path(run.reference_paths[0]).parent), software_version="test",
                    created="2026-01-01T00:00:00")
    assert {k: out.rateints.keywords[k] for k in ("S_SATURA", "S_SUPERB", "S_REFPIX", "S_LINEAR", "S_DARK",
                                                   "S_RAMP")} == dict.fromkeys(
        ("S_SATURA", "S_SUPERB", "S_REFPIX", "S_LINEAR", "S_DARK", "S_RAMP"), "COMPLETE")
    assert out.rateints.keywords["R_DARK"].endswith("jwst_niriss_dark_nis_substrip256_sim.fits")
    rates = out.rateints.images["SCI"].astype(np.float64)
    dq = out.rateints.images["DQ"]
    along = slit.source.along
    for order in slit.orders:
        m = order.model
        columns = m.pixels().astype(int)
        rows = np.rint(m.trace(columns.astype(float))).astype(int) - ROW0
        near = np.abs(np.arange(SUB.ysize)[:, None] - rows[None, :]) <= BOX
        good = np.all(np.where(near, (sim.truth.flat[:, columns] > 0) & np.all(dq[:, :, columns] == 0, axis=0), True),
                      axis=0)
        assert good.mean() > 0.9
        ratio = (_box(rates[full].mean(axis=0), m, columns, along)[0]
                 / _box(rates[outside].mean(axis=0), m, columns, along)[0])
        window = columns - WINDOW[0]
        observed = order.blocked_electrons[window] / order.pixel_electrons[window]
        # the columns where the order puts 2000 e-/s or more (the uint16 rounding of the faint ends' ramps,
        # the same in every integration, reaches 5e-3 there)
        bright = good & (order.pixel_electrons[window] >= 2000.0)
        assert bright.sum() > 0.5 * columns.size
        error = np.abs(1.0 - ratio - observed)[bright]
        assert error.max() < 1e-3 and np.median(error) < 1e-4, (m.order, error.max(), np.median(error))
        # the water bands stand out of the 1 % base in the measured depths
        depth = (1.0 - ratio)[bright]
        wavelength = m.wavelength(columns.astype(float))[bright]
        for band in (1.4, 1.9):
            near_band = np.abs(wavelength - band) < 0.005
            if near_band.sum() >= 5:
                assert np.median(depth[near_band]) == pytest.approx(0.0125, abs=2e-4), (m.order, band)
        assert np.median(depth[np.abs(wavelength - 1.0) < 0.02]) == pytest.approx(0.0100, abs=1e-4)


# --- the truth of the example -------------------------------------------------------------------

def test_the_truth_files_hold_both_orders(run):
    spectrum, transmission, curve = _truth(run, "spectrum"), _truth(run, "transmission"), _truth(run, "lightcurve")
    index = json.loads((run.truth_dir / "truth.json").read_text())
    [entry] = index["exposures"]
    for table in (spectrum, transmission):
        assert table.colnames[:2] == ["order", "column"]
        assert [m["order"] for m in table.meta["orders"]] == [1, 2]
        for m in (ORDER1, ORDER2):
            rows = table[table["order"] == m.order]
            np.testing.assert_array_equal(rows["column"], m.pixels().astype(int))
            np.testing.assert_allclose(rows["wavelength"], m.wavelength(m.pixels()), rtol=1e-12)
        assert "order" in table.meta["description"]
    assert spectrum.meta["orders"][1] == {"order": 2, "imx": 1025.0, "imy": 1952.0, "span": [106, 1738],
                                          "band_um": list(ORDER2.band)}
    assert spectrum.meta["slit"]["exp_type"] == "NIS_SOSS" and spectrum.meta["slit"]["imy"] == 1862.0
    np.testing.assert_array_equal(spectrum["transmission"], 1.0)
    assert entry["slit_source"]["aperture"] == "NIS_SUBSTRIP256" and entry["slit_source"]["fixed_slit"] is None
    # the sky: each order's share, the sum of both at the reference column the SKYLEVEL
    at_1024 = spectrum[spectrum["column"] == 1024]
    assert float(np.sum(at_1024["sky_e_per_s"])) == pytest.approx(entry["sky_level_e_per_s"], rel=1e-9)
    # the white light: order 1's band and columns; the light curve is its
    band = list(ORDER1.band)
    assert transmission.meta["white_light_band_um"] == curve.meta["white_light_band_um"] == band
    assert entry["host_star"]["flux_band_um"] == band
    first = transmission[transmission["order"] == 1]
    inside = (first["source_wavelength"] >= band[0]) & (first["source_wavelength"] <= band[1])
    depth = transmission.meta["white_light_depth"]
    assert depth == pytest.approx(first["blocked_e_per_s"][inside].sum() / first["source_e_per_s"][inside].sum(),
                                  rel=1e-12)
    assert entry["transit"]["depth"] == curve.meta["transit"]["depth"] == depth
    assert 0.0101 < depth < 0.0104  # the water bands raise the 1 % base
    assert "order 1" in curve.meta["description"]["relative_flux"]
    assert entry["host_star"]["flux_e_per_s"] == pytest.approx(float(first["source_e_per_s"][inside].sum()),
                                                               rel=1e-9)
    # per order: the depth through the LSF is the intrinsic one off the bands, the bands' peaks barely smoothed
    for m in (ORDER1, ORDER2):
        rows = transmission[transmission["order"] == m.order]
        observed, intrinsic = np.asarray(rows["observed_depth"]), np.asarray(rows["depth"])
        wavelength = np.asarray(rows["source_wavelength"])
        flat = (np.abs(wavelength - 1.4) > 0.15) & (np.abs(wavelength - 1.9) > 0.15)
        np.testing.assert_allclose(observed[flat], 0.01, rtol=1e-6)
        band = np.abs(wavelength - 1.4) < 0.002
        if band.any():
            np.testing.assert_allclose(observed[band], intrinsic[band], atol=2e-5)
    # 30 integrations, out-of-transit baseline on both sides of the full depth
    rel = np.asarray(curve["relative_flux"])
    assert len(curve) == 30 and rel.min() == pytest.approx(1.0 - depth, abs=1e-12)
    out = np.flatnonzero(rel == 1.0)
    assert np.sum(out < 15) >= 6 and np.sum(out > 15) >= 6 and np.sum(np.isclose(rel, 1.0 - depth)) >= 8


# --- the references -----------------------------------------------------------------------------

def test_the_spectrace_opens_as_the_public_model_with_both_orders(run):
    path = _reference(run, niriss_soss_filename("spectrace"))
    assert path.name == "jwst_niriss_spectrace_soss_sim.fits"
    with fits.open(path) as hdul:
        h = hdul[0].header
        assert {k: h[k] for k in ("REFTYPE", "INSTRUME", "DETECTOR", "EXP_TYPE", "FILTER", "PUPIL", "SUBARRAY",
                                  "SUBSTRT1", "SUBSTRT2", "SUBSIZE1", "SUBSIZE2", "USEAFTER", "PEDIGREE",
                                  "DATAMODL")} == {
            "REFTYPE": "SPECTRACE", "INSTRUME": "NIRISS", "DETECTOR": "NIS", "EXP_TYPE": "NIS_SOSS",
            "FILTER": "CLEAR", "PUPIL": "GR700XD", "SUBARRAY": "SUBSTRIP256", "SUBSTRT1": 1, "SUBSTRT2": 1793,
            "SUBSIZE1": 2048, "SUBSIZE2": 256, "USEAFTER": "2022-01-01T00:00:00", "PEDIGREE": "SIMULATION",
            "DATAMODL": "SpecTraceModel"}
        tables = [hdu for hdu in hdul[1:] if hdu.name == "ORDER"]
        assert [(t.header["EXTVER"], t.header["ORDER"]) for t in tables] == [(1, 1), (2, 2)]
        for t in tables:
            assert t.columns.names == ["WAVELENGTH", "X", "Y", "THROUGHPUT", "TILT"]
            assert all(fmt == "D" for fmt in t.columns.formats)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with dm.open(path) as model:
            assert type(model).__name__ == "SpecTraceModel"
            assert [t.order for t in model.trace] == [1, 2]
            for trace, m in zip(model.trace, (ORDER1, ORDER2), strict=True):
                data = trace.data
                s = m.pixels()
                np.testing.assert_array_equal(data["X"], s - WINDOW[0])  # window columns, increasing
                np.testing.assert_allclose(data["Y"], m.trace(s) - ROW0, atol=1e-9)
                np.testing.assert_allclose(data["WAVELENGTH"], m.wavelength(s), rtol=1e-12)
                np.testing.assert_allclose(data["THROUGHPUT"], m.throughput(m.wavelength(s)), rtol=1e-12)
                np.testing.assert_array_equal(data["TILT"], 0.0)
                np.testing.assert_array_equal(data, soss_trace_table(m))
    # the project's reference reader sees both orders (reference type spectrace)
    ref = load_reference("spectrace", path, Window(SUB.xstart, SUB.ystart, SUB.xsize, SUB.ysize), (2048, 2048))
    assert [(cards["ORDER"], array.size) for cards, array in ref.arrays["ORDER"]] == [(1, 2040), (2, 1633)]


def test_the_photom_calibrates_a_rendered_column_of_each_order(run):
    path = _reference(run, niriss_soss_filename("photom"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with dm.open(path) as photom:
            assert type(photom).__name__ == "NisSossPhotomModel"
            table = photom.phot_table.copy()
            assert (photom.meta.exposure.type, photom.meta.exposure.p_exptype) == ("NIS_SOSS", "NIS_SOSS|")
            assert photom.meta.photometry.pixelarea_steradians == pytest.approx(ORDER1.pixel_area_sr)
    assert [(r["filter"], r["pupil"], int(r["order"])) for r in table] == [("CLEAR", "GR700XD", 1),
                                                                           ("CLEAR", "GR700XD", 2)]
    assert table.dtype["order"] == np.int16 and table.dtype["photmj"] == np.float32
    desc = load_description(example())
    g0 = mean_gain(make_detector_model(detector("NIS"), desc.simulation.detector_seed))
    spectrum = _truth(run, "spectrum")
    meta = spectrum.meta
    source = SlitSource(target_spectrum(desc, 1), along=meta["along_arcsec"], across=meta["across_arcsec"])
    with fits.open(run.truth_dir / f"{STEM}_truth_rate.fits") as hdul:
        flat, gain, area = (hdul[k].data.astype(np.float64) for k in ("FLAT", "GAIN", "AREA"))
    with fits.open(_reference(run, flat_filename("NIRISS", "NIS", "CLEAR", "GR700XD"))) as ref_flat:
        reference_flat = ref_flat["SCI"].data[ROW0:ROW0 + SUB.ysize].astype(np.float64)
        assert (ref_flat[0].header["FILTER"], ref_flat[0].header["PUPIL"]) == ("CLEAR", "GR700XD")
    for row, m in zip(table, (ORDER1, ORDER2), strict=True):
        n = int(row["nelem"])
        waves, rel = np.asarray(row["wavelength"][:n], float), np.asarray(row["relresponse"][:n], float)
        # the order's columns and one more at each end, so the span is covered to its last column
        assert n == m.span[1] - m.span[0] + 3 and np.all(np.diff(waves) > 0)
        assert waves[0] < m.band[0] and waves[-1] > m.band[1]
        assert not np.any(row["wavelength"][n:]) and not np.any(row["relresponse"][n:])
        assert np.interp(m.throughput_centre, waves, rel) == pytest.approx(1.0, abs=1e-6)
        # photmj x relresponse = 1e-6 g0 / electrons_per_jy of the order's column
        s = np.arange(m.span[0] - 1, m.span[1] + 2, dtype=np.float64)[::-1]  # wavelength increasing
        np.testing.assert_allclose(float(row["photmj"]) * rel, 1e-6 * g0 / m.electrons_per_jy(s), rtol=1e-6)
        # a noiseless rendered column of this order (pixel area, flat and gain as the exposure applies them),
        # over the FLAT reference, summed over its rows, calibrated
        rate = render_slit(m, [source], WINDOW).image * area * flat / gain  # DN/s
        with np.errstate(divide="ignore", invalid="ignore"):
            flat_fielded = rate / reference_flat
        rows = spectrum[spectrum["order"] == m.order]
        columns = np.asarray(rows["column"], int)
        # the rows within 30 (6 sigma) of the source's trace: the whole profile, clear of the reference rows
        trace = np.asarray(rows["source_y"]) - ROW0
        near = np.abs(np.arange(SUB.ysize)[:, None] - trace[None, :]) <= 30.0
        summed = np.sum(np.where(near, flat_fielded[:, columns], 0.0), axis=0)
        mjy = summed * float(row["photmj"]) * np.interp(rows["wavelength"], waves, rel)
        good = np.isfinite(mjy)  # a column with a dead pixel in it is NaN
        assert good.mean() > 0.8
        error = np.abs(mjy[good] * 1e6 / np.asarray(rows["observed_jy"])[good] - 1.0)
        assert error.max() < 5e-3, (m.order, error.max())


def test_the_soss_exposure_gets_its_references(run):
    """By EXP_TYPE, SUBARRAY, FILTER and PUPIL: the SOSS exposure gets SPECTRACE, its
    PHOTOM, the CLEAR/GR700XD FLAT and the SUBSTRIP256 dark; an imaging exposure of NIS
    the imaging PHOTOM and no SPECTRACE."""
    refs = Path(run.reference_paths[0]).parent
    with fits.open(_reference(run, "jwst_niriss_dark_nis_substrip256_sim.fits")) as dark:
        assert (dark[0].header["SUBARRAY"], dark["SCI"].data.shape) == ("SUBSTRIP256", (3, 256, 2048))
    with dm.open(_reference(run, "jwst_niriss_distortion_nis_sim.asdf")) as distortion:
        assert "NIS_SOSS" in distortion.meta.exposure.p_exptype.split("|")
    header = {"INSTRUME": "NIRISS", "DETECTOR": "NIS", "EXP_TYPE": "NIS_SOSS", "FILTER": "CLEAR", "PUPIL": "GR700XD",
              "SUBARRAY": "SUBSTRIP256", "READPATT": "NISRAPID", "DATE-OBS": "2025-01-01", "TIME-OBS": "00:00:00"}
    wanted = ["spectrace", "photom", "flat", "dark", "distortion", "superbias", "linearity", "saturation", "mask",
              "gain", "readnoise"]
    chosen = {t: s.filename for t, s in select_from_files(reference_files(refs), header, wanted).items()}
    assert chosen == {
        "spectrace": niriss_soss_filename("spectrace"), "photom": niriss_soss_filename("photom"),
        "flat": flat_filename("NIRISS", "NIS", "CLEAR", "GR700XD"), "dark": "jwst_niriss_dark_nis_substrip256_sim.fits",
        "distortion": "jwst_niriss_distortion_nis_sim.asdf",
        **{t: f"jwst_niriss_{t}_nis_sim.fits" for t in ("superbias", "linearity", "saturation", "mask", "gain",
                                                         "readnoise")}}
    imaging = header | {"EXP_TYPE": "NIS_IMAGE", "FILTER": "CLEAR", "PUPIL": "F150W", "SUBARRAY": "FULL"}
    chosen = {t: s.filename for t, s in select_from_files(reference_files(refs), imaging, ["spectrace", "photom"]).items()
              if s.filename is not None}
    assert chosen == {"photom": "jwst_niriss_photom_nis_sim.fits"}
