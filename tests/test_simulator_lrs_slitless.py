"""MIRI LRS slitless time-series spectroscopy (MIR_LRS-SLITLESS) in the simulator: the
description's checks, the slitless spectrograph (reference point, no slit loss, the
dispersed sky), the transit with a depth per wavelength, its truth files and reference
files, and detector-1 end to end on the example ``examples/miri_lrs_tso.yaml``.

Tolerances (stated beside each check):
- the source summed over a row of the rendered window equals the truth spectrum's
  ``observed_jy * electrons_per_jy`` to 1e-6 (the same rendering, no slit loss);
- noiseless telemetry through ingest and detector-1: per row of the 5-12 um band the
  in-transit / out-of-transit ratio of a 17-column box is ``1 - observed_depth`` within
  1e-3 (the uint16 rounding of a noiseless ramp is the same in every integration, so it
  does not average away: 9e-4 on the faint 12 um rows; the 7.4 um feature stands 1.5e-3
  above the 1 % base), the median over the rows within 1.5e-4 (measured 7e-5);
- the noisy example through ingest and detector-1 (``_rateints``): the box-sum white-light
  depth over 5-12 um, after a per-row background from the columns 12-25 px either side of
  the trace, is the truth's electron-weighted white-light depth within 3 % (the noise of
  26 + 26 integrations is 0.8 %).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import yaml
from astropy.table import Table
from stdatamodels.jwst import datamodels as dm

from services.detector1.pipeline import calibrate
from services.ingest.pipeline import ingest_telemetry
from services.simulator import DescriptionError, build_plan, load_description, simulate
from services.simulator.exposure import simulate_exposure
from services.simulator.runner import host_star, target_spectrum
from services.simulator.spectrograph import LRS, LRS_SLITLESS, SlitSource, render_slit
from services.simulator.telemetry_writer import write_telemetry
from services.simulator.transit import WHITE_LIGHT_BAND_UM
from shared.datamodels.fits_io import write_product
from shared.instruments import subarray
from shared.refdata import LocalReferences
from shared.refdata.files import reference_files
from shared.refdata.selection import select_from_files

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
BOX = 8  # half width (columns) of the extraction box: 4.5 sigma of the 14 um PSF
BACKGROUND = ((-25, -12), (12, 25))  # columns from the trace for the per-row background


def example() -> dict:
    return yaml.safe_load((EXAMPLES / "miri_lrs_tso.yaml").read_text())


def changed(obs: dict | None = None, target: dict | None = None, transit: dict | None = None) -> dict:
    desc = example()
    desc["observations"][0].update(obs or {})
    desc["targets"][0].update(target or {})
    if transit is not None:
        desc["observations"][0]["transit"] = transit
    return desc


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return simulate(example(), tmp_path_factory.mktemp("lrs_tso"))


def _truth(run, kind: str) -> Table:
    [telemetry] = run.telemetry_paths
    return Table.read(run.truth_dir / f"{telemetry.stem}_truth_{kind}.ecsv")


def _ingest(path: Path, plan, segment_bytes: int = 2_000_000_000):
    return ingest_telemetry(path.read_bytes(), lambda program: plan, created=datetime(2026, 1, 1, tzinfo=UTC),
                            software_version="test", segment_bytes=segment_bytes)


def _rateints(uncal, refs_dir: Path) -> np.ndarray:
    out = calibrate(uncal, LocalReferences(refs_dir=refs_dir), software_version="test", created="2026-01-01T00:00:00")
    return out.rateints.images["SCI"].astype(np.float64)


# --- the description ---------------------------------------------------------------------

def test_the_example_plans_a_slitless_time_series():
    desc = load_description(example())
    (obs,) = build_plan(desc).observations
    assert (obs.exp_type, obs.filter, obs.subarray, obs.detectors, obs.tsovisit) == (
        "MIR_LRS-SLITLESS", "P750L", "SLITLESSPRISM", ["MIRIMAGE"], True)
    assert obs.aperture.name == "MIRIM_SLITLESSPRISM" and obs.nints == 60
    sub = subarray("MIRI", "SLITLESSPRISM")
    assert (sub.xstart, sub.xsize, sub.ystart, sub.ysize) == (1, 72, 529, 416)
    host = host_star(desc, 1)
    assert host.flux is None and host.transit.chromatic
    assert target_spectrum(desc, 1).flux_jy == 0.15
    np.testing.assert_allclose(host.transit.depth_at(np.array([5.0, 7.1, 7.4, 9.0, 20.0])),
                               [0.01, 0.01125, 0.0125, 0.01, 0.01])


@pytest.mark.parametrize(
    ("desc", "words"),
    [
        (changed(obs={"subarray": "FULL"}), ["observations[0]", "SLITLESSPRISM", "not FULL"]),
        (changed(obs={"tsovisit": False, "transit": None}), ["observations[0]", "tsovisit: true"]),
        (changed(obs={"host_flux": 1.0e6}), ["host_flux", "targets[].spectrum", "imaging time series"]),
        (changed(obs={"dither": {"pattern": "ALONG-SLIT-NOD"}}), ["dither", "pattern NONE"]),
        (changed(obs={"filter": "F770W"}), ["observations[0]", "P750L", "not F770W"]),
        (changed(obs={"detectors": ["MIRIFULONG"]}), ["observations[0]", "MIRIMAGE alone"]),
        (changed(transit={"depth": 0.01, "depth_spectrum": [[5.0, 0.01], [10.0, 0.02]], "duration_s": 60.0}),
         ["observations[0].transit", "not both"]),
        (changed(transit={"duration_s": 60.0}), ["observations[0].transit", "one of them"]),
        (changed(transit={"depth_spectrum": [[8.0, 0.01], [6.0, 0.02]], "duration_s": 60.0}),
         ["depth_spectrum", "increasing"]),
        (changed(transit={"depth_spectrum": [[5.0, 0.01], [8.0, 1.2]], "duration_s": 60.0}),
         ["depth_spectrum", "[1.2]"]),
        (changed(transit={"depth_spectrum": [[5.0, 0.01]], "duration_s": 60.0}),
         ["observations[0].transit.depth_spectrum"]),
        (changed(obs={"exp_type": "MIR_LRS-FIXEDSLIT", "tsovisit": False, "transit": None}),
         ["observations[0]", "SLITLESSPRISM is slitless spectroscopy", "MIR_LRS-SLITLESS"]),
    ],
)
def test_bad_slitless_descriptions_name_the_field_and_the_reason(desc, words):
    with pytest.raises(DescriptionError) as info:
        load_description(desc)
    for word in words:
        assert word in str(info.value)


def test_an_imaging_time_series_keeps_host_flux_and_a_grey_depth():
    desc = yaml.safe_load((EXAMPLES / "nircam_imaging.yaml").read_text())
    desc["observations"] = [o for o in desc["observations"] if o.get("tsovisit")]
    tso = desc["observations"][0]
    tso["transit"] = {**tso["transit"], "depth": None, "depth_spectrum": [[1.0, 0.01], [3.0, 0.02]]}
    with pytest.raises(DescriptionError, match=r"depth_spectrum: a depth per wavelength needs a spectroscopic"):
        load_description(desc)
    tso["transit"] = {k: v for k, v in tso["transit"].items() if k != "depth_spectrum"} | {"depth": 0.01}
    del tso["host_flux"]
    with pytest.raises(DescriptionError, match=r"transit: needs host_flux.*MIR_LRS-SLITLESS"):
        load_description(desc)


# --- the spectrograph --------------------------------------------------------------------

def test_the_slitless_model_is_the_slit_model_about_the_slitless_reference_point():
    m = LRS_SLITLESS
    assert (m.imx, m.imy, m.aperture, m.subarrays, m.slitless) == (38.5, 829.0, "MIRIM_SLITLESSPRISM",
                                                                  ("SLITLESSPRISM",), True)
    # the same law, trace, throughput about the reference point: row offsets map alike
    d = np.arange(-180.0, 110.0, 10.0)
    np.testing.assert_allclose(m.wavelength(m.s_ref + d), LRS.wavelength(LRS.s_ref + d), rtol=1e-12)
    np.testing.assert_allclose(m.trace(m.s_ref + d) - m.t_ref, LRS.trace(LRS.s_ref + d) - LRS.t_ref, atol=1e-12)
    np.testing.assert_allclose(m.electrons_per_jy(m.s_ref + d), LRS.electrons_per_jy(LRS.s_ref + d), rtol=1e-12)
    # the spectrum lies in the window, rows 112-411 of its 416, 14.8 to 5.0 um
    sub = subarray("MIRI", "SLITLESSPRISM")
    assert (m.span[0] - (sub.ystart - 1), m.span[1] - (sub.ystart - 1)) == (112, 411)
    assert m.band == pytest.approx((5.01, 14.80), abs=0.01)
    # no slit: nothing is lost wherever the source sits
    assert np.all(m.slit_transmission(np.array([5.0, 10.0, 14.0]), 0.4) == 1.0)
    assert LRS.slit_transmission(np.array([10.0]), 0.4)[0] < 0.5


def test_the_slitless_sky_is_the_whole_band_on_every_pixel():
    """Every pixel sees the sky of every wavelength of the spectrum (a one-pixel patch
    each); rows whose long wavelengths come from sky below the field see less."""
    m = LRS_SLITLESS
    band = m.pixels()
    per_patch = m.sky(m.wavelength(band)) * 1.0e6 / 206264.80624709636**2 * m.pixel_scale**2 * m.electrons_per_jy(band)
    top = m.slitless_sky_electrons(np.array([600.0]), m.sky)[0]
    assert top == pytest.approx(per_patch.sum(), rel=1e-12)  # the whole band from the field
    rows = np.arange(528.0, 944.0)
    level = m.slitless_sky_electrons(rows, m.sky)
    assert np.all(np.diff(level) <= 1e-9) and level[-1] < 0.6 * level[0]
    # uniform along x in the rendered window
    scene = render_slit(m, [], (0, 528, 72, 416), sky_mjy_sr=m.sky)
    np.testing.assert_allclose(scene.sky, np.repeat(level[:, None], 72, axis=1), rtol=1e-12)


# --- the truth ----------------------------------------------------------------------------

def test_the_truth_spectrum_is_what_the_window_holds(run):
    """The rendered source summed over each row is observed_jy x electrons_per_jy (no slit
    loss: transmission 1), the truth rate's STARS image times gain / flat is that source
    with its pixel area, and the sky column is the slitless sky."""
    spectrum = _truth(run, "spectrum")
    assert spectrum.meta["slit"]["aperture"] == "MIRIM_SLITLESSPRISM"
    assert np.all(spectrum["transmission"] == 1.0)
    inner = (spectrum["row"] >= LRS_SLITLESS.span[0] + 5) & (spectrum["row"] <= LRS_SLITLESS.span[1] - 5)
    expected = (spectrum["observed_jy"] * spectrum["electrons_per_jy"])[inner]
    np.testing.assert_allclose(spectrum["source_e_per_s"][inner], expected, rtol=1e-6)
    np.testing.assert_allclose(spectrum["sky_e_per_s"],
                               LRS_SLITLESS.slitless_sky_electrons(np.asarray(spectrum["row"], float),
                                                                   LRS_SLITLESS.sky), rtol=1e-12)
    # what the noiseless renderer puts on the window at the true place, summed per row
    meta = spectrum.meta
    image = render_slit(LRS_SLITLESS, [SlitSource(target_spectrum(load_description(example()), 1),
                                                  along=meta["along_arcsec"], across=meta["across_arcsec"])],
                        (0, 528, 72, 416)).image
    rows = np.asarray(spectrum["row"], int) - 528
    np.testing.assert_allclose(image.sum(axis=1)[rows][inner], spectrum["source_e_per_s"][inner], rtol=1e-9)


def test_the_light_curve_and_transmission_truth(run):
    curve, transmission = _truth(run, "lightcurve"), _truth(run, "transmission")
    index = json.loads((run.truth_dir / "truth.json").read_text())
    [entry] = index["exposures"]
    assert entry["truth_transmission"].endswith("_truth_transmission.ecsv")
    depth = transmission.meta["white_light_depth"]
    assert entry["transit"]["depth"] == curve.meta["transit"]["depth"] == depth
    assert entry["transit"]["depth_spectrum"][2] == [7.4, 0.0125]
    assert curve.meta["white_light_band_um"] == list(WHITE_LIGHT_BAND_UM) == [5.0, 12.0]
    # the white-light depth: the band's blocked light over its light, weighted by electrons or f_nu
    band = (transmission["source_wavelength"] >= 5.0) & (transmission["source_wavelength"] <= 12.0)
    blocked, source = transmission["blocked_e_per_s"][band], transmission["source_e_per_s"][band]
    assert depth == pytest.approx(blocked.sum() / source.sum(), rel=1e-12)
    assert 0.0101 < depth < 0.0104  # the 7.4 um feature raises the 1 % base
    spectrum = _truth(run, "spectrum")
    per_jy = np.asarray(spectrum["electrons_per_jy"])[band]
    assert transmission.meta["white_light_depth_fnu"] == pytest.approx(
        (blocked / per_jy).sum() / (source / per_jy).sum(), rel=1e-9)
    # per row: the depth through the LSF follows the intrinsic one, smoothed over the feature
    observed, intrinsic = np.asarray(transmission["observed_depth"]), np.asarray(transmission["depth"])
    flat = (np.abs(transmission["source_wavelength"] - 7.4) > 1.5) & np.isfinite(observed)
    np.testing.assert_allclose(observed[flat], 0.01, rtol=1e-6)
    np.testing.assert_allclose(intrinsic[flat], 0.01, rtol=1e-12)
    assert intrinsic.max() <= 0.0125 and np.nanmax(observed) < intrinsic.max()  # the LSF smooths the peak
    peak = np.nanargmax(observed)
    assert abs(transmission["source_wavelength"][peak] - 7.4) < 0.05 and 0.0113 < observed[peak] < 0.0125
    # the light curve: 1 - depth x the trapezoid's shape; 60 integrations, full depth in the middle
    rel = np.asarray(curve["relative_flux"])
    assert len(curve) == 60 and rel.max() == 1.0 and rel.min() == pytest.approx(1.0 - depth, abs=1e-12)
    assert np.sum(np.isclose(rel, 1.0 - depth)) == 26 and np.sum(rel == 1.0) == 26
    assert list(curve.colnames[:4]) == ["integration", "mid_mjd_utc", "mid_bjd_tdb", "relative_flux"]
    np.testing.assert_allclose(curve["host_flux"], entry["host_star"]["flux_e_per_s"] * rel)


# --- the reference files ------------------------------------------------------------------

def test_references_open_as_the_public_models_and_are_selected(run):
    refs_dir = run.reference_paths[0].parent
    paths = {p.name: p for p in run.reference_paths}
    with dm.open(paths["jwst_miri_specwcs_lrs-slitless_sim.fits"]) as specwcs:
        assert type(specwcs).__name__ == "MiriLRSSpecwcsModel"
        assert (specwcs.meta.x_ref_slitless, specwcs.meta.y_ref_slitless) == (38.5, 829.0)
        assert (specwcs.meta.x_ref, specwcs.meta.y_ref) == (LRS.imx, LRS.imy)
        assert specwcs.meta.exposure.type == "MIR_LRS-SLITLESS"
    with dm.open(paths["jwst_miri_photom_lrs-slitless_sim.fits"]) as photom:
        assert type(photom).__name__ == "MirLrsPhotomModel"
        [row] = photom.phot_table
        assert (row["filter"].strip(), row["subarray"].strip()) == ("P750L", "SLITLESSPRISM")
    with dm.open(paths["jwst_miri_distortion_mirimage_sim.asdf"]) as distortion:
        assert "MIR_LRS-SLITLESS" in distortion.meta.exposure.p_exptype.split("|")
    assert "jwst_miri_pathloss_lrs-fixedslit_sim.fits" not in paths  # no slit, no path loss
    # what the pipeline selects for this exposure, by its _uncal's keywords
    [telemetry] = run.telemetry_paths
    header = dict(_ingest(telemetry, run.plan).files[0].product.keywords)
    chosen = select_from_files(reference_files(refs_dir), header, ["specwcs", "photom", "flat", "dark", "distortion"])
    names = {t: s.filename for t, s in chosen.items()}
    assert names["specwcs"] == "jwst_miri_specwcs_lrs-slitless_sim.fits"
    assert names["photom"] == "jwst_miri_photom_lrs-slitless_sim.fits"
    assert names["flat"] == "jwst_miri_flat_mirimage_p750l_sim.fits"
    assert names["dark"] == "jwst_miri_dark_mirimage_slitlessprism_fastr1_sim.fits"
    assert names["distortion"] == "jwst_miri_distortion_mirimage_sim.asdf"


def test_jwst_assign_wcs_reads_the_slitless_specwcs(run):
    """The public pipeline's LRS transform (jwst.assign_wcs.miri.lrs_xytoabl) built from
    our SPECWCS and DISTORTION for a SLITLESSPRISM exposure gives the simulator's
    wavelength on the trace (1e-6 um)."""
    miri = pytest.importorskip("jwst.assign_wcs.miri")
    refs = {p.name: str(p) for p in run.reference_paths}
    model = dm.CubeModel((1, 416, 72))
    model.meta.exposure.type = "MIR_LRS-SLITLESS"
    model.meta.instrument.name, model.meta.instrument.detector, model.meta.instrument.filter = (
        "MIRI", "MIRIMAGE", "P750L")
    sub = model.meta.subarray
    sub.name, sub.xstart, sub.ystart, sub.xsize, sub.ysize = "SLITLESSPRISM", 1, 529, 72, 416
    transform = miri.lrs_xytoabl(model, {"distortion": refs["jwst_miri_distortion_mirimage_sim.asdf"],
                                         "specwcs": refs["jwst_miri_specwcs_lrs-slitless_sim.fits"]})
    m = LRS_SLITLESS
    rows = np.arange(m.span[0] + 5, m.span[1] - 5, 7.0)
    _, _, wavelength = transform(m.trace(rows), rows - 528.0)
    np.testing.assert_allclose(wavelength, m.wavelength(rows), atol=1e-6)


# --- detector-1 end to end ----------------------------------------------------------------

def _box(rates: np.ndarray, x0: int, rows: np.ndarray) -> np.ndarray:
    """Per integration and row: the box sum about column ``x0`` less the row's background."""
    left, right = BACKGROUND
    background = np.nanmedian(np.concatenate([rates[:, :, x0 + left[0]:x0 + left[1]],
                                              rates[:, :, x0 + right[0]:x0 + right[1]]], axis=2), axis=2)
    return (rates[:, rows, x0 - BOX:x0 + BOX + 1] - background[:, rows, None]).sum(axis=2)


def test_noiseless_ramps_carry_the_transmission_spectrum(run, tmp_path):
    """A noiseless exposure (no sky) through ingest and detector-1: the in/out-of-transit
    ratio of each row is 1 - the truth's observed depth."""
    desc = load_description(example())
    desc = desc.model_copy(update={"simulation": desc.simulation.model_copy(update={"sky_level": 0.0})})
    plan = build_plan(desc)
    obs = plan.observations[0]
    sim = simulate_exposure(plan, obs, obs.exposures[0], desc.simulation, noiseless=True, host=host_star(desc, 1),
                            spectrum=target_spectrum(desc, 1))
    slit, curve = sim.truth.slit, sim.truth.host.curve
    # the example's references: the same detector seed, the same detector
    rates = _rateints(_ingest(write_telemetry(sim, tmp_path), plan).files[0].product, run.reference_paths[0].parent)
    rows = np.arange(LRS_SLITLESS.span[0], LRS_SLITLESS.span[1] + 1) - 528
    box = rates[:, rows, int(round(slit.x)) - BOX:int(round(slit.x)) + BOX + 1].sum(axis=2)
    full, out = np.isclose(curve.shape, 1.0), curve.shape == 0.0
    ratio = box[full].mean(axis=0) / box[out].mean(axis=0)
    observed = slit.transit.blocked_electrons[rows] / slit.pixel_electrons[rows]
    wavelength = LRS_SLITLESS.wavelength(rows + 528.0)
    band = (wavelength >= 5.0) & (wavelength <= 12.0)
    error = np.abs(1.0 - ratio - observed)[band]
    assert np.max(error) < 1e-3 and np.median(error) < 1.5e-4, (np.max(error), np.median(error))


def test_detector1_rateints_recover_the_white_light_depth(run, tmp_path):
    """The example's telemetry, ingested (in segments of a few integrations, -segNNN with
    EXSEGNUM/INTSTART/INTEND, opening as the public Level1bModel; and as one) and through
    detector-1: the box-sum white-light depth over 5-12 um is the truth's within 3 %."""
    [telemetry] = run.telemetry_paths
    segmented = _ingest(telemetry, run.plan, segment_bytes=3_000_000).files
    assert len(segmented) > 1 and [f.name.segment for f in segmented] == list(range(1, len(segmented) + 1))
    keys = [(f.product.keywords["EXSEGNUM"], f.product.keywords["EXSEGTOT"], f.product.keywords["INTSTART"],
             f.product.keywords["INTEND"]) for f in segmented]
    assert keys[0][:3] == (1, len(segmented), 1) and keys[-1][3] == 60
    assert all(b[2] == a[3] + 1 for a, b in zip(keys, keys[1:], strict=False))
    path = write_product(tmp_path / segmented[0].name.format(), segmented[0].product)
    assert path.name.endswith("-seg001_mirimage_uncal.fits")
    with dm.open(path) as uncal:
        assert type(uncal).__name__ == "Level1bModel"
        assert (uncal.meta.exposure.type, uncal.meta.subarray.name, uncal.meta.aperture.name) == (
            "MIR_LRS-SLITLESS", "SLITLESSPRISM", "MIRIM_SLITLESSPRISM")
        assert uncal.meta.visit.tsovisit and uncal.data.shape[1:] == (10, 416, 72)

    rates = _rateints(_ingest(telemetry, run.plan).files[0].product, run.reference_paths[0].parent)
    assert rates.shape == (60, 416, 72)
    transmission, curve = _truth(run, "transmission"), _truth(run, "lightcurve")
    depth = transmission.meta["white_light_depth"]
    rel = np.asarray(curve["relative_flux"])
    band = (transmission["source_wavelength"] >= 5.0) & (transmission["source_wavelength"] <= 12.0)
    rows = np.asarray(transmission["row"], int)[band] - 528
    white = _box(rates, int(round(curve["x"][0])), rows).sum(axis=1)
    measured = 1.0 - white[np.isclose(rel, 1.0 - depth)].mean() / white[rel == 1.0].mean()
    assert abs(measured / depth - 1.0) < 0.03, (measured, depth)
