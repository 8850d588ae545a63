"""Wide-field slitless spectroscopy in the simulator (NIS_WFSS: GR150R/GR150C behind F150W
on NIS; NRC_WFSS: GRISMR/GRISMC behind F444W on NRCALONG): the plan (a direct image in
activity 1, the dispersed exposures in activity 2, each exposure's view of the mode), the
description's checks, the grisms' geometry, the reference files (SPECWCS in the public
NIRISSGrismModel and NIRCAMGrismModel forms, read through the public dispersion
transforms; PHOTOM; WFSSBKG; WAVELENGTHRANGE), the dispersed field against its truth, and
the example ``examples/niriss_wfss.yaml`` simulated once for the module (about 15 s).

Tolerances (stated beside each check):
- the SPECWCS models, evaluated by the public transforms (stdatamodels'
  NIRISSBackwardGrismDispersion and NIRCAMBackwardGrismDispersion), put a wavelength of a
  source at the simulator's pixel to 1e-6 px, for sources at and away from the reference
  point (the models are exact: measured 1e-12); read by the pipeline's assign_wcs
  (``grism_trace``) they give each line's wavelength to 1e-6 um and the trace to 1e-4 px
  (NIRISS's inverse interpolated over t: measured 1e-9 um, 1e-12 px);
- one star rendered alone sums, per spectral pixel of the window, to its perfect
  extraction times the electrons per Jy (``observed_spectrum``) to 1e-3 relative at its
  unresolved line, sampled more finely by the truth (measured 3e-4), and to 1e-9
  elsewhere (measured 1e-15);
- PHOTOM x PIXAR_SR x 1e6 over the dispersion (PHOTMJSR per um of spectrum, the public
  grisms' unit) is the detector gain over the electrons per Jy of the spectral pixel to
  0.1 % (float32: measured 1e-7);
- the sky: the truth's SKY image is the WFSSBKG pattern times one scale times the pixel
  area to 1e-5 relative (float32).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from stdatamodels.jwst import datamodels as dm
from stdatamodels.jwst.transforms.models import (
    NIRCAMBackwardGrismDispersion,
    NIRISSBackwardGrismDispersion,
)

from services.simulator import DescriptionError, build_plan, load_description, simulate
from services.simulator.detector_model import make_detector_model
from services.simulator.distortion import detector_distortion, relative_area_window
from services.simulator.optical_refs import mean_gain
from services.simulator.spectrograph import (
    WFSS_GRISMS,
    SlitSource,
    SourceSpectrum,
    SpectralLine,
    at_source,
    observed_spectrum,
    render_slit,
    wfss_grism,
)
from services.simulator.wfss import wfss_source_spectrum
from services.simulator.wfss_refs import (
    wfss_filename,
    wfss_keywords,
    wfss_photom_table,
    write_wfss_references,
)
from shared.instruments import detector, subarray
from shared.spectra.grism import grism_trace
from tests.slit_examples import edited

pytestmark = pytest.mark.filterwarnings("ignore::astropy.wcs.FITSFixedWarning")

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "niriss_wfss.yaml"
NIRCAM_EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "nircam_wfss.yaml"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("wfss")
    result = simulate(EXAMPLE, out)
    return out, result


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    out = tmp_path_factory.mktemp("wfss_refs")
    written = {}
    for det, exp_type in (("NIS", "NIS_WFSS"), ("NRCALONG", "NRC_WFSS")):
        model = make_detector_model(detector(det), 1)
        grisms = [g for (e, _), g in WFSS_GRISMS.items() if e == exp_type]
        written[det] = (model, write_wfss_references(grisms, model, out))
    return out, written


# -- the plan ---------------------------------------------------------------------------

def test_plan_takes_a_direct_image_then_the_dispersed_exposures():
    plan = build_plan(load_description(EXAMPLE))
    for obs, grism in zip(plan.observations, ("GR150R", "GR150C"), strict=True):
        assert (obs.exp_type, obs.filter, obs.pupil) == ("NIS_WFSS", grism, "F150W")
        assert obs.template == "NIRISS Wide Field Slitless Spectroscopy"
        direct = obs.direct_image
        assert (direct.exp_type, direct.filter, direct.pupil, direct.activities) == ("NIS_IMAGE", "CLEAR", "F150W", [1])
        assert [(e.activity, e.exposure, e.dither_point) for e in obs.exposures] == [(1, 1, 1), (2, 1, 1), (2, 2, 2)]
        starts = [e.start_time for e in obs.exposures]
        assert starts == sorted(starts) and len(set(starts)) == 3
        views = [obs.for_exposure(e) for e in obs.exposures]
        assert [(v.exp_type, v.filter, v.pupil) for v in views] == [
            ("NIS_IMAGE", "CLEAR", "F150W"), ("NIS_WFSS", grism, "F150W"), ("NIS_WFSS", grism, "F150W")]
        dispersed, imaging = obs.channels()
        assert [e.activity for e in dispersed.exposures] == [2, 2] and dispersed.direct_image is None
        assert [e.activity for e in imaging.exposures] == [1] and imaging.exp_type == "NIS_IMAGE"
    nircam = build_plan(load_description(NIRCAM_EXAMPLE)).observations[0]
    assert (nircam.direct_image.exp_type, nircam.direct_image.filter, nircam.direct_image.pupil) == (
        "NRC_IMAGE", "F444W", "CLEAR")


def test_plan_checks_its_direct_images():
    obs = build_plan(load_description(EXAMPLE)).observations[0]
    with pytest.raises(ValueError, match="name no planned exposure"):
        obs.model_validate({**obs.model_dump(), "direct_image": {**obs.direct_image.model_dump(), "activities": [7]}})
    with pytest.raises(ValueError, match="needs dispersed exposures"):
        obs.model_validate({**obs.model_dump(), "direct_image": {**obs.direct_image.model_dump(),
                                                                 "activities": [1, 2]}})
    with pytest.raises(ValueError, match="not a NIRISS type"):
        obs.model_validate({**obs.model_dump(), "direct_image": {**obs.direct_image.model_dump(),
                                                                 "exp_type": "NRC_IMAGE"}})


@pytest.mark.parametrize(("change", "message"), [
    ({"filter": "GR700XD"}, "grism GR700XD is not simulated"),
    ({"pupil": "F200W"}, "simulated behind F150W, not F200W"),
    ({"detectors": ["NRCA1"]}, "detectors"),
    ({"nints": 2}, "one integration"),
    ({"tsovisit": True}, "no tsovisit"),
])
def test_description_rejects_what_is_not_simulated(change, message):
    with pytest.raises(DescriptionError, match=message):
        load_description(edited(EXAMPLE, obs=change))


# -- the grisms and their references ------------------------------------------------------

def test_grisms_disperse_along_their_axes_about_the_source():
    for (exp_type, _), model in WFSS_GRISMS.items():
        assert wfss_grism(exp_type, *wfss_keywords(model)) is model
        a = at_source(model, 300.0, 1500.0)
        s = (300.0 if model.dispaxis == 1 else 1500.0) + np.array([model.span[0], model.span[1]]) - model.s_ref
        assert np.allclose(a.wavelength(s), model.wavelength(np.array(model.span, float)))  # the law moves with it
        u = s - model.s_ref  # the trace: the detector's curve, moved across by the source's offset
        t0, t1, t2 = model.trace_coeffs
        across = 1500.0 if model.dispaxis == 1 else 300.0
        assert np.allclose(a.trace(s), across + t0 + t1 * u + t2 * u * u, atol=1e-9)
    assert WFSS_GRISMS[("NIS_WFSS", "GR150R")].dispaxis == 2 and WFSS_GRISMS[("NIS_WFSS", "GR150C")].dispaxis == 1
    assert WFSS_GRISMS[("NRC_WFSS", "GRISMR")].dispaxis == 1 and WFSS_GRISMS[("NRC_WFSS", "GRISMC")].dispaxis == 2


def test_specwcs_through_the_public_dispersion_transforms(references):
    out, _ = references
    for (exp_type, grism), model in WFSS_GRISMS.items():
        with dm.open(out / wfss_filename(model, "specwcs")) as ref:
            assert (ref.meta.instrument.filter, ref.meta.instrument.pupil) == wfss_keywords(model)
            assert ref.meta.exposure.type == exp_type and list(ref.orders) == [1]
            if exp_type == "NIS_WFSS":
                backward = NIRISSBackwardGrismDispersion(list(ref.orders), lmodels=ref.invdispl, xmodels=ref.dispx,
                                                         ymodels=ref.dispy, theta=0.0)
            else:
                backward = NIRCAMBackwardGrismDispersion(list(ref.orders), lmodels=ref.displ, xmodels=ref.dispx,
                                                         ymodels=ref.dispy, inv_lmodels=ref.invdispl)
        for x0, y0 in ((model.imx - 1.0, model.imy - 1.0), (150.3, 1830.6), (1900.0, 60.2)):
            source = at_source(model, x0, y0)
            s = np.linspace(source.span[0], source.span[1], 9)
            wavelength = source.wavelength(s)
            x, y, *_ = backward(np.full(9, x0), np.full(9, y0), wavelength, np.ones(9, int))
            want_x, want_y = source.to_detector(s, source.trace(s))
            assert np.max(np.abs(x - want_x)) < 1e-6 and np.max(np.abs(y - want_y)) < 1e-6, (grism, x0, y0)


def test_specwcs_read_by_the_pipeline_gives_the_rendered_trace(references):
    # the pipeline's evaluation of the public forms (shared.spectra.grism), NIRISS's without inverses
    out, _ = references
    sub = subarray("NIRISS", "SUB256")
    for (_, grism), model in WFSS_GRISMS.items():
        with dm.open(out / wfss_filename(model, "specwcs")) as ref:
            tree = {k: getattr(ref, k, None) for k in ("orders", "displ", "dispx", "dispy", "invdispx", "invdispy")}
        x0, y0 = 120.4, 30.8  # window pixels of a SUB256-sized window at full-frame (801, 1201)
        trace = grism_trace(tree, x0, y0, xstart=801, ystart=1201, nx=sub.xsize, ny=sub.ysize,
                            dispaxis=model.dispaxis)
        source = at_source(model, x0 + 800.0, y0 + 1200.0)
        lines = trace.rows + (800 if model.dispaxis == 1 else 1200)
        assert trace.rows.size > 20, grism
        assert np.max(np.abs(trace.wavelength[trace.rows] - source.wavelength(lines))) < 1e-6
        across = source.trace(lines) - (1200 if model.dispaxis == 1 else 800)
        assert np.max(np.abs(trace.x[trace.rows] - across)) < 1e-4, grism


def test_photom_wfssbkg_and_wavelengthrange(references):
    out, written = references
    for det, (model, refs) in written.items():
        assert {r.reftype for r in refs} == {"SPECWCS", "WFSSBKG", "PHOTOM", "WAVELENGTHRANGE"}
        grisms = [g for g in WFSS_GRISMS.values() if g.detector == det]
        table = wfss_photom_table(grisms, model)
        g0 = mean_gain(model)
        for row, grism in zip(table, grisms, strict=True):
            assert (row["filter"].decode(), row["pupil"].decode()) == wfss_keywords(grism) and row["order"] == 1
            n = int(row["nelem"])
            s = np.arange(grism.span[0], grism.span[1] + 1, dtype=float)
            conversion = row["photmjsr"] * np.interp(grism.wavelength(s), row["wavelength"][:n],
                                                     row["relresponse"][:n]) * grism.pixel_area_sr * 1e6
            conversion /= grism.dispersion(s)  # PHOTMJSR per um of spectrum, the public grisms' unit
            assert np.allclose(conversion, g0 / grism.electrons_per_jy(s), rtol=1e-3)
            with dm.open(out / wfss_filename(grism, "wfssbkg")) as bkg:
                assert (bkg.meta.instrument.filter, bkg.meta.instrument.pupil) == wfss_keywords(grism)
                inside = bkg.data[4:-4, 4:-4]
                assert abs(float(np.median(inside)) - 1.0) < 1e-6
                along = bkg.data[1000] if grism.dispaxis == 1 else bkg.data[:, 1000]
                # the sky falls off toward the detector's edge the spectra are dispersed away from (at
                # its first pixel NIRISS's band comes from patches beyond it, NIRCam's but for 12 %)
                assert along[0] < 0.1 * along.max() and along[1024] == pytest.approx(float(along.max()), rel=1e-6)
        with dm.open(out / wfss_filename(grisms[0], "wavelengthrange")) as wr:
            band = grisms[0].white_light_band
            assert [list(r) for r in wr.wavelengthrange] == [[1, grisms[0].filter, round(band[0], 6),
                                                              round(band[1], 6)]]
            assert [[f, list(o)] for f, o in wr.extract_orders] == [[grisms[0].filter, [1]]]


# -- the dispersed field ------------------------------------------------------------------

def test_a_star_rendered_alone_is_its_perfect_extraction():
    spectrum = SourceSpectrum(flux_jy=1e-4, slope=-1.0, lines=(SpectralLine(1.5, 0.002, 3.0),), reference=1.5)
    sub = subarray("NIRISS", "SUB256")
    for grism_name in ("GR150R", "GR150C"):
        model = at_source(WFSS_GRISMS[("NIS_WFSS", grism_name)], 60.4, 40.7)
        image = render_slit(model, [SlitSource(spectrum)], (0, 0, sub.xsize, sub.ysize)).image
        per_pixel = image.sum(axis=0) if model.dispaxis == 1 else image.sum(axis=1)
        s = np.arange(model.span[0], model.span[1] + 1, dtype=float)
        want = observed_spectrum(model, spectrum, s) * model.electrons_per_jy(s)
        got = per_pixel[model.span[0]:model.span[1] + 1]
        line = np.abs(model.wavelength(s) - 1.5) < 0.04  # the pixels the line reaches (its LSF: 8 sigma)
        assert np.max(np.abs(got / want - 1.0)[line]) < 1e-3 and np.max(np.abs(got / want - 1.0)[~line]) < 1e-9


def test_source_spectra_are_drawn_from_the_seed_in_the_grism_band():
    grism = WFSS_GRISMS[("NIS_WFSS", "GR150R")]
    a = wfss_source_spectrum(500.0, 42, 11, grism, ("NIRISS", "CLEAR", "F150W"))
    assert a == wfss_source_spectrum(500.0, 42, 11, WFSS_GRISMS[("NIS_WFSS", "GR150C")], ("NIRISS", "CLEAR", "F150W"))
    assert a != wfss_source_spectrum(500.0, 43, 11, grism, ("NIRISS", "CLEAR", "F150W"))
    low, high = grism.white_light_band
    assert all(low < line.wavelength < high for line in a.lines) and a.lines[0].strength > 0
    with pytest.raises(ValueError, match="positive catalog flux"):
        wfss_source_spectrum(0.0, 42, 11, grism, ("NIRISS", "CLEAR", "F150W"))


def test_example_truth_holds_the_dispersed_field(run):
    out, result = run
    index = json.loads((out / "truth" / "truth.json").read_text())
    entries = {e["exposure_id"]: e for e in index["exposures"]}
    assert len(entries) == 6 and len(result.telemetry_paths) == 6
    direct = Table.read(out / "truth" / "jw02727001001_01101_00001_nis_truth_stars.ecsv")
    assert "spectrum" not in direct.colnames
    sub = subarray("NIRISS", "SUB256")
    area = relative_area_window(detector_distortion(detector("NIS")), sub.xstart, sub.ystart, sub.xsize, sub.ysize)
    for stem, grism_name in (("jw02727001001_01102_00001_nis", "GR150R"), ("jw02727002001_01102_00002_nis", "GR150C")):
        stars = Table.read(out / "truth" / f"{stem}_truth_stars.ecsv")
        grism = WFSS_GRISMS[("NIS_WFSS", grism_name)]
        assert stars.meta["grism"] == grism.label and len(stars) > 20
        # stars off the window whose spectra reach it are rendered too
        off = (stars["x"] < 0) | (stars["x"] > 255) | (stars["y"] < 0) | (stars["y"] > 255)
        assert off.any() and (~off).any()
        spectrum = json.loads(stars["spectrum"][0])
        assert spectrum["flux_jy"] == pytest.approx(float(stars["flux_jy"][0]), rel=1e-12)
        with fits.open(out / "truth" / f"{stem}_truth_rate.fits") as hdul:
            sky = hdul["SKY"].data
        with dm.open(next((out / "refs").glob(wfss_filename(grism, "wfssbkg")))) as bkg:
            pattern = bkg.data[:sub.ysize, :sub.xsize] * area
        scale = float(np.median(sky[pattern > 0.5] / pattern[pattern > 0.5]))
        assert np.allclose(sky, scale * pattern, rtol=1e-5, atol=1e-6 * scale)
