"""The simulator's NIRSpec MOS (NRS_MSASPEC, PRISM/CLEAR on NRS1): the MSA geometry on
the detector, the three-shutter slitlet nod in the MSA metadata file, the rendered
slitlets (flux, trace, lines, sky in open and failed-open shutters, nothing elsewhere),
the reference files through the public models, and the description's refusals. One
module-scoped run: one MOS observation, FULL frame, 3 groups, 1 integration, the three
nod points (about 10 s). Tolerances are stated beside each check.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from stdatamodels.jwst import datamodels as dm

from services.simulator import DescriptionError, load_description, simulate
from services.simulator.detector_model import make_detector_model
from services.simulator.msa import failed_open_shutters
from services.simulator.optical_refs import mean_gain
from services.simulator.slit_refs import (
    MSAOPER_FILENAME,
    nirspec_mos_filename,
    shutter_trace_model,
    slit_trace_table,
)
from services.simulator.spectrograph import (
    MSA_SHUTTER_PITCH,
    msa_slitlet,
    shutter_reference_point,
)
from shared.datamodels.msa import read_msa_metadata
from shared.instruments import detector
from shared.spectra.msa import open_slitlets

pytestmark = pytest.mark.filterwarnings("ignore::astropy.wcs.FITSFixedWarning")

MOS = {"number": 1, "target": "FIELD", "instrument": "NIRSPEC", "exp_type": "NRS_MSASPEC",
       "detectors": ["NRS1"], "filter": "CLEAR", "pupil": "PRISM", "readpatt": "NRSRAPID", "ngroups": 3,
       "nints": 1, "msa_sources": 10, "dither": {"pattern": "3-SHUTTER-SLITLET"}}


def description(**obs) -> dict:
    return {
        "program": 1357, "title": "MOS of a star field", "pi": "Ada Lovelace",
        "targets": [{"name": "FIELD", "ra": 53.16, "dec": -27.79}],
        "observations": [{**MOS, **obs}],
        "simulation": {"seed": 3, "stars_per_window": 400, "bright_stars_per_window": 1, "cosmic_ray_rate": 0.0},
    }


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("mos")
    result = simulate(description(), out)
    index = json.loads(result.truth_index.read_text())
    return result, index, out


# --- geometry ----------------------------------------------------------------------------


def test_shutter_reference_points_follow_the_msa_geometry():
    assert shutter_reference_point(1, 1, 1) == (300.0, 100.0)
    assert shutter_reference_point(3, 1, 1) == (300.0, 1030.0)
    imx, imy = shutter_reference_point(3, 365, 171)
    assert imx == pytest.approx(300.0 + 2.7 * 364) and imy == pytest.approx(1030.0 + 5.3 * 170)
    assert shutter_reference_point(1, 11, 21) == pytest.approx((327.0, 206.0))
    # the prism spectrum of rows 1..365 stays on the detector (1-based columns 217-1658)
    first, last = msa_slitlet(1, 1, (1,)).span, msa_slitlet(1, 365, (1,)).span
    assert first[0] + 1 == 217 and last[1] + 1 == 1658


def test_a_slitlet_is_a_slit_spectrograph_at_its_shutters_mean():
    model = msa_slitlet(3, 40, (20, 21, 22))
    assert (model.exp_type, model.detector, model.filter, model.grating) == ("NRS_MSASPEC", "NRS1", "CLEAR", "PRISM")
    assert (model.aperture, model.subarrays, model.dispaxis) == ("NRS_FULL_MSA", ("FULL",), 1)
    assert model.imx == pytest.approx(300.0 + 2.7 * 39)
    assert model.imy == pytest.approx(1030.0 + 5.3 * 20)  # the middle shutter's
    assert model.slit_width == 0.20 and model.slit_length == pytest.approx(3 * 0.53)
    assert model.band == pytest.approx((0.6, 5.3), abs=0.01)
    two = msa_slitlet(1, 5, (7, 8))
    assert two.imy == pytest.approx(100.0 + 5.3 * 6.5) and two.slit_length == pytest.approx(1.06)


@pytest.mark.parametrize(("quadrant", "columns", "reason"), [
    (2, (5, 6, 7), "NRS2, which is not simulated"), (4, (5, 6, 7), "NRS2, which is not simulated"),
    (1, (5, 7, 8), "not consecutive"), (1, (7, 6, 5), "not consecutive"), (1, (), "at least one"),
    (1, (170, 171, 172), "off the quadrant"), (5, (1,), "quadrants are 1-4"),
])
def test_impossible_slitlets_are_refused_with_a_reason(quadrant, columns, reason):
    with pytest.raises(ValueError, match=reason):
        msa_slitlet(quadrant, 10, columns)


# --- the description ------------------------------------------------------------------------


def test_the_nod_steps_one_shutter_pitch_along_the_slitlets():
    obs = load_description(description()).observations[0]
    assert obs.offsets() == [(0.0, 0.0), (0.0, -0.53), (0.0, 0.53)]
    assert not obs.planned_only
    grating = load_description(description(filter="F170LP", pupil="G235M", detectors=["NRS1", "NRS2"],
                                           readpatt="NRSIRS2RAPID", dither={"pattern": "N-POINT-LINE",
                                                                            "npoints": 3, "size": 0.5}))
    assert grating.observations[0].planned_only  # a grating MOS observation is still planned only


@pytest.mark.parametrize(("change", "reason"), [
    ({"dither": {"pattern": "N-POINT-LINE", "npoints": 3, "size": 0.5}}, "3-SHUTTER-SLITLET"),
    ({"dither": {"pattern": "3-POINT-NOD"}}, "3-SHUTTER-SLITLET"),
    ({"dither": {"pattern": "3-SHUTTER-SLITLET", "size": 1.0}}, "one shutter pitch"),
    ({"detectors": ["NRS1", "NRS2"]}, "NRS2, which sees quadrants 2 and 4, is not simulated"),
    ({"subarray": "SUBS200A1"}, "FULL"),
    ({"readpatt": "NRSIRS2RAPID"}, "IRS2"),
])
def test_mos_observations_the_simulator_cannot_render_are_refused(change, reason):
    with pytest.raises(DescriptionError, match=reason):
        load_description(description(**change))


# --- the MSA metadata file: the nod -----------------------------------------------------------


def test_the_msa_file_nods_the_source_through_its_slitlet(run):
    result, _, _ = run
    path = result.msa_paths[0]
    with fits.open(path) as hdul:
        info = Table(hdul["SHUTTER_INFO"].data)
    for point, step in ((1, 0), (2, 1), (3, -1)):
        rows = info[info["dither_point_index"] == point]
        for sid in set(rows["slitlet_id"]):
            mine = rows[rows["slitlet_id"] == sid]
            middle = int(np.median(mine["shutter_column"]))
            primary = mine[mine["background"] == "N"]
            assert len(mine) == 3 and len(primary) == 1
            assert int(primary["shutter_column"][0]) == middle + step
            assert primary["primary_source"][0] == "Y" and np.isfinite(primary["estimated_source_in_shutter_x"][0])
            others = mine[mine["background"] == "Y"]
            assert set(others["primary_source"]) == {"N"} and np.all(np.isnan(others["estimated_source_in_shutter_y"]))
    # the same three shutters stay open at every point
    per_point = [{tuple(r) for r in info[info["dither_point_index"] == k][["slitlet_id", "shutter_column"]]}
                 for k in (1, 2, 3)]
    assert per_point[0] == per_point[1] == per_point[2]
    # the public reader sees the source in the middle, upper and lower shutter
    from jwst.assign_wcs.nirspec import get_open_msa_slits

    states = [{s.shutter_state for s in get_open_msa_slits("01357", str(path), 1, k)} for k in (1, 2, 3)]
    assert states == [{"1x1"}, {"11x"}, {"x11"}]


# --- the rendered exposures -------------------------------------------------------------------


def _truth_images(out, entry):
    with fits.open(out / entry["truth_rate"]) as hdul:
        return {name: hdul[name].data.astype(np.float64) for name in ("FLUX", "SKY", "AREA", "STARS")}


def test_each_exposure_renders_its_dither_points_slitlets_on_nrs1(run):
    result, index, out = run
    exposures = index["exposures"]
    assert len(exposures) == 3 and all(e["detector"] == "NRS1" and e["subarray"] == "FULL" for e in exposures)
    for k, entry in enumerate(exposures, start=1):
        msa = read_msa_metadata(result.msa_paths[0])
        slitlets = [s for s in open_slitlets(msa.shutter_info, msa.source_info, 1, k) if s.quadrant in (1, 3)]
        assert len(slitlets) >= 2  # the scene: at least two sources on NRS1
        assert [(s["slitlet_id"], s["primary_column"]) for s in entry["truth_spectra"]] == [
            (s.slitlet_id, s.primary) for s in slitlets]
        assert entry["n_stars"] == 0


def test_each_source_lands_on_its_slitlets_trace_with_the_predicted_flux(run):
    """Per column of each slitlet, the source's electrons summed over the slitlet's rows
    (its length + 6 px either side) equal ``observed_jy x electrons_per_jy x
    transmission`` of its truth table (1.5 % per column where that changes by less than
    10 % from one column to the next, 0.5 % in total, 20 columns away from the spectrum's
    ends: at the blue end, rising by a fifth per column, the per-column transmission of a
    source near a shutter's edge describes the light less well): the light is on the slitlet's trace, none lost or misplaced; the
    truth's ``source_e_per_s`` is that sum (1e-4). The brightest pixel of each column
    is within 1 row of the source's trace."""
    _, index, out = run
    for entry in index["exposures"]:
        images = _truth_images(out, entry)
        source = (images["FLUX"] - images["SKY"]) / images["AREA"]
        for item in entry["truth_spectra"]:
            table = Table.read(out / item["truth_spectrum"], format="ascii.ecsv")
            model = msa_slitlet(item["quadrant"], item["row"], item["columns"])
            columns = np.asarray(table["column"])
            half = 0.5 * model.slit_length_px + 6.0
            trace = model.trace(columns)
            lo, hi = int(np.floor(trace.min() - half)), int(np.ceil(trace.max() + half))
            measured = source[lo:hi + 1, columns].sum(axis=0)
            expected = np.asarray(table["observed_jy"] * table["electrons_per_jy"] * table["transmission"])
            inner = slice(20, -20)
            smooth = np.abs(np.gradient(np.log(expected))) < 0.1
            np.testing.assert_allclose(measured[inner][smooth[inner]], expected[inner][smooth[inner]], rtol=0.015)
            assert np.count_nonzero(smooth[inner]) > 0.9 * expected[inner].size
            assert measured[inner].sum() == pytest.approx(expected[inner].sum(), rel=0.005)
            np.testing.assert_allclose(np.asarray(table["source_e_per_s"]), measured, rtol=1e-4)
            bright = columns[inner][expected[inner] > 0.2 * expected[inner].max()]
            peak_rows = np.argmax(source[lo:hi + 1, bright], axis=0) + lo
            source_y = np.interp(bright, columns, np.asarray(table["source_y"]))
            assert np.max(np.abs(peak_rows - source_y)) <= 1.0
            # the source's place: the file's estimate in its primary shutter
            pitch_x, pitch_y = MSA_SHUTTER_PITCH
            est_along = (item["primary_column"] - np.mean(item["columns"])
                         + item["estimated_source_in_shutter_y"] - 0.5) * pitch_y
            shift = entry["mos_pointing_shift_arcsec"]
            assert table.meta["along_arcsec"] == pytest.approx(est_along - shift[1], abs=1e-9)
            assert table.meta["across_arcsec"] == pytest.approx(
                (item["estimated_source_in_shutter_x"] - 0.5) * pitch_x - shift[0], abs=1e-9)


def test_lines_land_at_the_predicted_columns(run):
    """Each source's emission line (2-6 x the continuum, unresolved) peaks within 1
    column of the column its truth predicts, at least 1.3 x the continuum 8-12 columns
    away."""
    _, index, out = run
    entry = index["exposures"][0]
    checked = 0
    for item in entry["truth_spectra"]:
        table = Table.read(out / item["truth_spectrum"], format="ascii.ecsv")
        columns = np.asarray(table["column"])
        per_column = np.asarray(table["source_e_per_s"])
        for line in table.meta["lines"]:
            if line["strength"] <= 0:
                continue
            predicted = line["column"]
            near = np.abs(columns - predicted) <= 4
            peak = columns[near][np.argmax(per_column[near])]
            assert abs(peak - predicted) <= 1.0
            side = (np.abs(columns - predicted) >= 8) & (np.abs(columns - predicted) <= 12)
            assert per_column[near].max() > 1.3 * per_column[side].mean()
            checked += 1
    assert checked >= 2


def test_sky_fills_open_and_failed_open_shutters_and_nothing_else_is_lit(run):
    """The SKY image at each open shutter's centre row equals the slit's sky (truth
    ``sky_e_per_s`` x pixel area, 2 %, 1.0-5.0 um); each failed-open shutter not in a
    slitlet shows the one-shutter sky (2 %); FLUX is exactly 0 outside the slitlets' and
    failed-open shutters' reach (spectral span +-15 columns, length +-8 rows)."""
    result, index, out = run
    knobs = load_description(description()).simulation
    failed = failed_open_shutters(knobs.detector_seed)
    for entry in index["exposures"]:
        images = _truth_images(out, entry)
        sky_scale = None
        allowed = np.zeros(images["FLUX"].shape, bool)
        shapes = [((s["quadrant"], s["row"], tuple(s["columns"])), s["truth_spectrum"]) for s in entry["truth_spectra"]]
        lit = [((f["quadrant"], f["row"], (f["column"],)), None) for f in entry["failed_open_shutters"]]
        assert {(q, r, c[0]) for (q, r, c), _ in lit} <= set(failed)
        assert len(lit) >= 4  # most of the six are where no slitlet is
        for (q, r, cols), truth_path in shapes + lit:
            model = msa_slitlet(q, r, cols)
            columns = model.pixels()
            trace = model.trace(columns)
            half = 0.5 * model.slit_length_px
            allowed[int(np.floor(trace.min() - half)) - 8:int(np.ceil(trace.max() + half)) + 9,
                    model.span[0] - 15:model.span[1] + 16] = True
            if truth_path is not None:
                table = Table.read(out / truth_path, format="ascii.ecsv")
                sky_scale = table.meta["sky_scale"]
                expected = np.asarray(table["sky_e_per_s"])
            else:
                expected = model.sky_electrons(columns, sky_scale * model.sky(model.wavelength(columns)))
            rows = np.round(trace).astype(int)
            cols_int = columns.astype(int)
            measured = images["SKY"][rows, cols_int] / images["AREA"][rows, cols_int]
            band = (model.wavelength(columns) > 1.0) & (model.wavelength(columns) < 5.0)
            np.testing.assert_allclose(measured[band], expected[band], rtol=0.02)
        assert sky_scale is not None and sky_scale > 0
        assert np.count_nonzero(images["FLUX"][~allowed]) == 0


# --- the reference files -------------------------------------------------------------------


def test_specwcs_cards_and_table_reproduce_the_models_trace(run):
    """A slitlet's reference point from the cards (as the pipeline computes it) and the
    SHUTTER table shifted there reproduce the model's wavelength and trace (1e-9)."""
    result, _, out = run
    path = out / "refs" / nirspec_mos_filename("specwcs")
    with fits.open(path) as hdul:
        h = hdul[0].header
        assert (h["EXP_TYPE"], h["P_EXP_TY"], h["FILTER"], h["GRATING"], h["REFTYPE"], h["DISPAXIS"]) == (
            "NRS_MSASPEC", "NRS_MSASPEC|", "CLEAR", "PRISM", "SPECWCS", 1)
        assert (h["INSTRUME"], h["DETECTOR"], h["TELESCOP"]) == ("NIRSPEC", "NRS1", "JWST")
        assert (h["MSAX0"], h["ROWPITCH"], h["COLPITCH"], h["Q1Y0"], h["Q3Y0"]) == (300.0, 2.7, 5.3, 100.0, 1030.0)
        assert "Q2Y0" not in h and "Q4Y0" not in h
        assert (h["SHUTWID"], h["SHUTPTCH"], h["PIXSCALE"]) == (0.2, 0.53, 0.1)
        table = hdul["SHUTTER"].data
        assert table.columns.names == list(slit_trace_table(shutter_trace_model()).dtype.names)
        assert np.all(np.diff(table["wavelength"]) > 0)
        np.testing.assert_allclose(table["y0"] - table["y3"], 5.3)  # one shutter pitch along y
        for q, r, cols in ((1, 120, (40, 41, 42)), (3, 300, (100, 101, 102)), (3, 7, (5,))):
            imx = h["MSAX0"] + h["ROWPITCH"] * (r - 1)
            imy = np.mean([h[f"Q{q}Y0"] + h["COLPITCH"] * (c - 1) for c in cols])
            model = msa_slitlet(q, r, cols)
            assert (imx, imy) == pytest.approx((model.imx, model.imy), abs=1e-9)
            x = imx - 1.0 + table["x_center"]
            np.testing.assert_allclose(table["wavelength"], model.wavelength(x), atol=1e-9)
            np.testing.assert_allclose(imy - 1.0 + table["y_center"], model.trace(x), atol=1e-9)


def test_msaoper_lists_the_failed_open_shutters_as_the_public_step_reads_them(run):
    from jwst.msaflagopen.msaflag_open import create_slitlets, get_failed_open_shutters

    _, index, out = run
    path = out / "refs" / MSAOPER_FILENAME
    doc = json.loads(path.read_text())
    assert (doc["reftype"], doc["instrument"], doc["telescope"]) == ("MSAOPER", "NIRSPEC", "JWST")
    failed = failed_open_shutters(load_description(description()).simulation.detector_seed)
    assert len(failed) == 6 and {q for q, _, _ in failed} <= {1, 3}
    assert [(s["Q"], s["x"], s["y"]) for s in get_failed_open_shutters(str(path))] == list(failed)
    slits = create_slitlets(str(path))
    assert [(s.quadrant, s.xcen, s.ycen) for s in slits] == list(failed)  # x the row, y the column
    assert str(path.relative_to(out)) in {r["path"] for r in index["references"]}


def test_photom_and_pathloss_open_as_the_public_models(run):
    from jwst.pathloss.pathloss import get_aperture_from_model

    _, _, out = run
    model = shutter_trace_model()
    nrs1 = make_detector_model(detector("NRS1"), load_description(description()).simulation.detector_seed)
    with dm.NrsMosPhotomModel(str(out / "refs" / nirspec_mos_filename("photom"))) as photom:
        row = photom.phot_table[0]
        assert len(photom.phot_table) == 1 and (row["filter"], row["grating"]) == ("CLEAR", "PRISM")
        n = int(row["nelem"])
        waves, mjy = model.response(mean_gain(nrs1))
        np.testing.assert_allclose(row["wavelength"][:n], waves, rtol=1e-6)
        np.testing.assert_allclose(row["photmj"] * row["relresponse"][:n], mjy, rtol=1e-5)
    with dm.PathlossModel(str(out / "refs" / nirspec_mos_filename("pathloss"))) as pathloss:
        assert pathloss.meta.exposure.type == "NRS_MSASPEC"
        assert [(a.name, a.shutters) for a in pathloss.apertures] == [("MOS1X1", 1), ("MOS1X3", 3)]
        assert get_aperture_from_model(pathloss, "1x1").name == "MOS1X3"
        assert get_aperture_from_model(pathloss, "11x").name == "MOS1X3"
        assert get_aperture_from_model(pathloss, "x").name == "MOS1X1"
        ap = pathloss.apertures[1]
        w = ap.pointsource_wcs
        wl = (w.crval3 + w.cdelt3 * np.arange(ap.pointsource_data.shape[0])) * 1e6
        assert (w.crval2, w.crval1) == (-1.5, -0.5)
        x = w.crval1 + w.cdelt1 * np.arange(ap.pointsource_data.shape[2])
        for k in (10, 20):  # the centre line and the bar (0.135" off it)
            np.testing.assert_allclose(ap.pointsource_data[:, 1, k],
                                       model.slit_transmission(wl, x[k] * MSA_SHUTTER_PITCH[0]), rtol=1e-6)
        assert np.all(ap.uniform_data == 1.0)
