"""The simulator's NIRSpec MOS (NRS_MSASPEC, PRISM/CLEAR on NRS1 and NRS2): the MSA
geometry on each detector, the planning in the quadrants the observation's detectors
see, the three-shutter slitlet nod in the MSA metadata file, the rendered
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
    msa_detector,
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
    (0, (5, 6, 7), "quadrants are 1-4"), (4, (0, 1), "off the quadrant"), (1, (5, 7, 8), "not consecutive"),
    (1, (7, 6, 5), "not consecutive"), (1, (), "at least one"),
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
    ({"detectors": ["NRS2", "NRS2"]}, "listed twice"),
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
    assert len(failed) == 12 and sum(q in (1, 3) for q, _, _ in failed) == 6  # six per detector
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


# --- failed-closed shutters and the two-shutter slitlet nod ----------------------------------------


def _plan_and_star_at(shutters, **obs):
    """The plan of the description (with ``obs``) and a catalog of one star at the centre
    of each (quadrant, row, column) of ``shutters``, the first the brightest."""
    from services.simulator.msa import QUADRANT_SHAPE, SHUTTER_PITCH
    from services.simulator.plan_builder import build_plan

    plan = build_plan(load_description(description(**obs)))
    target = plan.targets[0]
    nrows, ncols = QUADRANT_SHAPE
    rows = []
    for k, (q, r, c) in enumerate(shutters):
        u = (q - 1) % 2 * nrows + r - 0.5  # shutter units across the 2 x 2 quadrants
        v = (q - 1) // 2 * ncols + c - 0.5
        dx, dy = (u - nrows) * SHUTTER_PITCH[0], (v - ncols) * SHUTTER_PITCH[1]
        rows.append((1000 + k, target.ra + dx / 3600.0 / np.cos(np.radians(target.dec)), target.dec + dy / 3600.0,
                     5000.0 - k))
    return plan, plan.observations[0], Table(rows=rows, names=("source_id", "ra", "dec", "flux"))


def test_the_two_shutter_nod_steps_one_pitch_and_is_planned_as_a_2_point_nod():
    obs = load_description(description(dither={"pattern": "2-SHUTTER-SLITLET"})).observations[0]
    assert obs.offsets() == [(0.0, 0.0), (0.0, -0.53)]
    _, planned, _ = _plan_and_star_at([], dither={"pattern": "2-SHUTTER-SLITLET"})
    assert planned.dither.pattern_type == "2-POINT-NOD" and len(planned.exposures) == 2
    for change, reason in (({"pattern": "2-SHUTTER-SLITLET", "npoints": 3}, "has 2 points"),
                           ({"pattern": "2-SHUTTER-SLITLET", "size": 1.0}, "one shutter pitch")):
        with pytest.raises(DescriptionError, match=reason):
            load_description(description(dither=change))


def test_the_two_shutter_nod_opens_the_same_two_shutters_the_source_in_the_lower_then_the_upper(tmp_path):
    from jwst.assign_wcs.nirspec import get_open_msa_slits

    from services.simulator.msa import write_msa_metadata

    plan, obs, catalog = _plan_and_star_at([(1, 100, 50), (3, 200, 80)], dither={"pattern": "2-SHUTTER-SLITLET"})
    path = write_msa_metadata(plan, obs, catalog, tmp_path, 10)
    info = Table(fits.getdata(path, "SHUTTER_INFO"))
    assert set(info["shutter_state"]) == {"OPEN"}
    for point, primary in ((1, 0), (2, 1)):
        rows = info[info["dither_point_index"] == point]
        assert sorted(set(rows["slitlet_id"])) == [1, 2]
        for sid, (q, r, c) in ((1, (1, 100, 50)), (2, (3, 200, 80))):
            mine = rows[rows["slitlet_id"] == sid]
            assert sorted(mine["shutter_column"]) == [c, c + 1] and set(mine["shutter_row"]) == {r}
            assert set(mine["shutter_quadrant"]) == {q}
            (held,) = mine[mine["primary_source"] == "Y"]
            assert (held["shutter_column"], held["background"]) == (c + primary, "N")
    states = [{s.shutter_state for s in get_open_msa_slits("01357", str(path), 1, k)} for k in (1, 2)]
    assert states == [{"x1"}, {"1x"}]
    msa = read_msa_metadata(path)
    assert [(s.columns, s.primary) for s in open_slitlets(msa.shutter_info, msa.source_info, 1, 2)] == [
        ((50, 51), 51), ((80, 81), 81)]


@pytest.mark.parametrize(("pattern", "closed", "kept"), [
    ("3-SHUTTER-SLITLET", (1, 100, 51), False), ("2-SHUTTER-SLITLET", (1, 100, 51), False),
    ("3-SHUTTER-SLITLET", (1, 100, 49), False), ("2-SHUTTER-SLITLET", (1, 100, 49), True),
    ("3-SHUTTER-SLITLET", (1, 101, 50), True),
])
def test_the_planner_never_opens_a_failed_closed_shutter_for_a_source(pattern, closed, kept):
    from services.simulator.msa import msa_sources

    plan, obs, catalog = _plan_and_star_at([(1, 100, 50), (3, 200, 80)], dither={"pattern": pattern})
    assert [s["catalog_id"] for s in msa_sources(plan, obs, catalog, 10)] == ["1000", "1001"]
    chosen = [s["catalog_id"] for s in msa_sources(plan, obs, catalog, 10, closed=(closed,))]
    assert chosen == (["1000", "1001"] if kept else ["1001"])


def test_failed_closed_shutters_are_drawn_apart_from_the_failed_open_ones(run):
    from jwst.msaflagopen.msaflag_open import get_failed_open_shutters

    from services.simulator.msa import FAILED_CLOSED_COUNT, failed_closed_shutters

    seed = load_description(description()).simulation.detector_seed
    closed = failed_closed_shutters(seed)
    assert len(closed) == len(set(closed)) == FAILED_CLOSED_COUNT and list(closed) == sorted(closed)
    assert {q for q, _, _ in closed} == {1, 2, 3, 4} and not set(closed) & set(failed_open_shutters(seed))
    assert all(1 <= r <= 365 and 1 <= c <= 171 for _, r, c in closed)
    assert failed_closed_shutters(seed) == closed and failed_closed_shutters(seed + 1) != closed
    # the MSAOPER reference lists them "closed" in every state; the public step flags only the failed-open ones
    result, _, out = run
    path = out / "refs" / MSAOPER_FILENAME
    doc = json.loads(path.read_text())["msaoper"]
    assert [(s["Q"], s["x"], s["y"]) for s in doc if s["state"] == "closed"] == list(closed)
    assert all(s["TA state"] == s["Internal state"] == "closed" for s in doc if s["state"] == "closed")
    assert [(s["Q"], s["x"], s["y"]) for s in get_failed_open_shutters(str(path))] == list(failed_open_shutters(seed))
    # and no slitlet of the planned MSA metadata file holds one
    info = read_msa_metadata(result.msa_paths[0]).shutter_info
    opened = {(int(r["shutter_quadrant"]), int(r["shutter_row"]), int(r["shutter_column"])) for r in info}
    assert opened and not opened & set(closed)


def test_no_light_passes_a_closed_shutter_of_a_slitlet():
    """A slitlet an MSA plan gives with a shutter CLOSED (columns 59-61 of quadrant 1's row
    40, 61 closed, the source in 60): the rendered scene (sources and sky) at the closed
    shutter's trace is below 1e-3 of the open shutters' sky, which is the slit's sky (2 %);
    with every shutter open, the third shutter shows that sky too."""
    from services.simulator.exposure import _mos_scene, lit_shutter_runs
    from services.simulator.msa import MsaExposure, mos_source_spectrum
    from shared.instruments import subarray
    from shared.spectra.msa import Slitlet

    full = subarray("NIRSPEC", "FULL")
    area = np.ones((full.ysize, full.xsize))

    def scene(closed):
        slitlet = Slitlet(1, 1, 40, (59, 60, 61), 60, 7, "1357_7", closed=closed)
        msa = MsaExposure(dither_point=1, slitlets=(slitlet,), spectra={7: mos_source_spectrum(2000.0, 11, 3)},
                          star_ids={7: 11}, failed_open=())
        image, truth = _mos_scene(msa, "NRS1", full, (0.0, 0.0), 1.0, area)
        return image + truth.sky, truth

    def at_centre(total, column):
        model = msa_slitlet(1, 40, (column,))
        pixels = model.pixels()
        band = (model.wavelength(pixels) > 1.0) & (model.wavelength(pixels) < 5.0)
        rows = np.round(model.trace(pixels[band])).astype(int)
        expected = model.sky_electrons(pixels[band], model.sky(model.wavelength(pixels[band])))
        return total[rows, pixels[band].astype(int)], expected

    assert lit_shutter_runs(Slitlet(1, 1, 40, (59, 60, 61), 60, 7, "s", closed=(61,))) == ((59, 60),)
    assert lit_shutter_runs(Slitlet(1, 1, 40, (59, 60, 61), None, 1, "s", closed=(60,))) == ((59,), (61,))
    total, truth = scene((61,))
    assert truth.slitlets[0].model.slit_length == pytest.approx(2 * MSA_SHUTTER_PITCH[1])  # shutters 59 and 60
    sky59, expected = at_centre(truth.sky, 59)
    np.testing.assert_allclose(sky59, expected, rtol=0.02)
    closed61, _ = at_centre(total, 61)
    assert np.max(closed61 / expected) < 1e-3
    open61, _ = at_centre(scene(())[0], 61)
    np.testing.assert_allclose(open61, expected, rtol=0.02)


# --- NRS2: MSA quadrants 2 and 4 -------------------------------------------------------------


def test_nrs2_images_quadrants_2_and_4_at_its_own_reference_points():
    """Quadrants 2 and 4 image on NRS2 (MSAX0 620, Q2Y0 110, Q4Y0 1040) with NRS1's prism
    law and trace; every slitlet's 0.6-5.3 um spectrum stays on the detector inside the
    reference pixels, and the two quadrants' slitlets never share a detector row."""
    assert msa_detector(1) == msa_detector(3) == "NRS1" and msa_detector(2) == msa_detector(4) == "NRS2"
    assert shutter_reference_point(2, 1, 1) == (620.0, 110.0)
    assert shutter_reference_point(4, 1, 1) == (620.0, 1040.0)
    assert shutter_reference_point(4, 365, 171) == pytest.approx((620.0 + 2.7 * 364, 1040.0 + 5.3 * 170))
    nrs1 = msa_slitlet(1, 40, (20, 21, 22))
    for q in (2, 4):
        model = msa_slitlet(q, 40, (20, 21, 22))
        assert (model.detector, model.exp_type, model.aperture, model.shutters) == (
            "NRS2", "NRS_MSASPEC", "NRS_FULL_MSA", (q, 40, (20, 21, 22)))
        assert (model.imx - nrs1.imx, model.law, model.trace_coeffs) == (pytest.approx(320.0), nrs1.law,
                                                                         nrs1.trace_coeffs)
        assert model.wavelength(model.s_ref) == pytest.approx(2.0)
        first, last = msa_slitlet(q, 1, (1, 2, 3)), msa_slitlet(q, 365, (169, 170, 171))
        assert first.span[0] + 1 == 537 and last.span[1] + 1 == 1978  # 1-based columns, within 5-2044
        assert first.band == pytest.approx((0.6, 5.3), abs=0.01) and last.band == pytest.approx((0.6, 5.3), abs=0.01)

    def rows(model) -> tuple[float, float]:
        trace = model.trace(model.pixels())
        return trace.min() - 0.5 * model.slit_length_px, trace.max() + 0.5 * model.slit_length_px

    assert rows(msa_slitlet(2, 1, (1, 2, 3)))[0] > 4 and rows(msa_slitlet(4, 365, (169, 170, 171)))[1] < 2043
    assert rows(msa_slitlet(4, 1, (1, 2, 3)))[0] - rows(msa_slitlet(2, 365, (169, 170, 171)))[1] > 10


def test_a_mos_observation_may_use_nrs1_nrs2_or_both():
    from services.simulator.plan_builder import build_plan

    for detectors in (["NRS2"], ["NRS1", "NRS2"], ["NRS2", "NRS1"]):
        desc = load_description(description(detectors=detectors, dither={"pattern": "NONE"}))
        assert not desc.observations[0].planned_only
        (obs,) = build_plan(desc).observations
        assert sorted(e.detector for e in obs.exposures) == sorted(detectors)  # one exposure per detector


def test_the_planner_plans_in_the_quadrants_the_observations_detectors_see():
    """A star at the centre of a shutter of each quadrant: NRS1 gets the slitlets of
    quadrants 1 and 3, NRS2 of 2 and 4, both detectors all four."""
    from services.simulator.msa import msa_sources, observed_quadrants

    shutters = [(1, 100, 50), (2, 120, 60), (3, 200, 80), (4, 300, 90)]
    for detectors, quadrants in ((["NRS1"], (1, 3)), (["NRS2"], (2, 4)), (["NRS1", "NRS2"], (1, 2, 3, 4))):
        plan, obs, catalog = _plan_and_star_at(shutters, detectors=detectors)
        assert observed_quadrants(obs) == quadrants
        chosen = msa_sources(plan, obs, catalog, 10)
        assert [(s["quadrant"], s["row"], s["column"]) for s in chosen] == [s for s in shutters if s[0] in quadrants]


def test_failed_open_shutters_of_both_detectors_nrs1s_draw_unchanged():
    seed = load_description(description()).simulation.detector_seed
    failed = failed_open_shutters(seed)
    # NRS1's six: the draw made before NRS2 was simulated, the same shutters
    assert [s for s in failed if s[0] in (1, 3)] == [(1, 201, 30), (1, 312, 159), (1, 362, 54), (3, 102, 129),
                                                     (3, 345, 9), (3, 358, 31)]
    nrs2 = [s for s in failed if s[0] in (2, 4)]
    assert len(nrs2) == 6 and list(failed) == sorted(failed)
    assert all(1 <= r <= 365 and 1 <= c <= 171 for _, r, c in nrs2)
    assert [s for s in failed_open_shutters(seed + 1) if s[0] in (2, 4)] != nrs2


def test_an_nrs2_exposure_renders_quadrants_2_and_4_alone():
    """The MSA scene of NRS2 holds its quadrants' slitlets and failed-open shutters (their
    sky at the slit's level, 2 %), none of NRS1's; the source's light is on its trace."""
    from services.simulator.exposure import _mos_scene
    from services.simulator.msa import MsaExposure, mos_source_spectrum
    from shared.instruments import subarray
    from shared.spectra.msa import Slitlet

    full = subarray("NIRSPEC", "FULL")
    area = np.ones((full.ysize, full.xsize))
    slitlets = (Slitlet(1, 2, 40, (59, 60, 61), 60, 7, "1357_7"), Slitlet(2, 1, 40, (139, 140, 141), 140, 8, "1357_8"))
    msa = MsaExposure(dither_point=1, slitlets=slitlets, star_ids={7: 11, 8: 12},
                      spectra={7: mos_source_spectrum(2000.0, 11, 3), 8: mos_source_spectrum(2000.0, 12, 3)},
                      failed_open=((1, 300, 100), (4, 300, 100)))
    image, truth = _mos_scene(msa, "NRS2", full, (0.0, 0.0), 1.0, area)
    assert [s.slitlet.slitlet_id for s in truth.slitlets] == [1]
    assert [m.shutters for m in truth.failed_open] == [(4, 300, (100,))]
    model = truth.slitlets[0].model
    assert model.detector == "NRS2" and model.imy == pytest.approx(110.0 + 5.3 * 59)
    pixels = model.pixels()
    band = (model.wavelength(pixels) > 1.0) & (model.wavelength(pixels) < 5.0)
    columns, rows = pixels[band].astype(int), np.round(model.trace(pixels[band])).astype(int)
    np.testing.assert_array_less(np.abs(np.argmax(image[:, columns], axis=0) - rows), 2)  # the source on its trace
    stuck = msa_slitlet(4, 300, (100,))
    s = stuck.pixels()[(stuck.wavelength(stuck.pixels()) > 1.0) & (stuck.wavelength(stuck.pixels()) < 5.0)]
    np.testing.assert_allclose(truth.sky[np.round(stuck.trace(s)).astype(int), s.astype(int)],
                               stuck.sky_electrons(s, stuck.sky(stuck.wavelength(s))), rtol=0.02)
    nrs1 = msa_slitlet(1, 40, (139, 140, 141))  # where quadrant 1's slitlet would be on NRS1: dark here
    assert not np.any(image[int(nrs1.imy) - 8:int(nrs1.imy) + 9, nrs1.span[0]:nrs1.span[1] + 1])


def test_nrs2_references_carry_its_geometry(tmp_path):
    """NRS2's MOS SPECWCS (MSAX0, Q2Y0, Q4Y0; no Q1Y0, Q3Y0) reproduces its slitlets'
    wavelengths and traces from the cards (1e-9); its PHOTOM is calibrated with NRS2's
    gain, its PATHLOSS and DISTORTION name NRS2 and NRS_MSASPEC; the MSAOPER, one for the
    MSA, lists the failed-open shutters of all four quadrants."""
    from services.simulator.optical_refs import write_optical_references
    from services.simulator.slit_refs import write_nirspec_mos_references

    seed = load_description(description()).simulation.detector_seed
    nrs2 = make_detector_model(detector("NRS2"), seed)
    failed = failed_open_shutters(seed)
    written = {ref.reftype: ref for ref in write_nirspec_mos_references(nrs2, tmp_path, failed)}
    assert written["SPECWCS"].path.name == "jwst_nirspec_specwcs_nrs2_msaspec_sim.fits"
    assert (written["SPECWCS"].detector, written["MSAOPER"].detector) == ("NRS2", "ANY")
    with fits.open(written["SPECWCS"].path) as hdul:
        h, table = hdul[0].header, hdul["SHUTTER"].data
        assert (h["DETECTOR"], h["MSAX0"], h["ROWPITCH"], h["COLPITCH"], h["Q2Y0"], h["Q4Y0"]) == (
            "NRS2", 620.0, 2.7, 5.3, 110.0, 1040.0)
        assert "Q1Y0" not in h and "Q3Y0" not in h
        for q, r, cols in ((2, 120, (40, 41, 42)), (4, 300, (100, 101, 102)), (4, 7, (5,))):
            imx = h["MSAX0"] + h["ROWPITCH"] * (r - 1)
            imy = np.mean([h[f"Q{q}Y0"] + h["COLPITCH"] * (c - 1) for c in cols])
            model = msa_slitlet(q, r, cols)
            assert (imx, imy) == pytest.approx((model.imx, model.imy), abs=1e-9)
            x = imx - 1.0 + table["x_center"]
            np.testing.assert_allclose(table["wavelength"], model.wavelength(x), atol=1e-9)
            np.testing.assert_allclose(imy - 1.0 + table["y_center"], model.trace(x), atol=1e-9)
    with dm.NrsMosPhotomModel(str(written["PHOTOM"].path)) as photom:
        assert photom.meta.instrument.detector == "NRS2"
        row = photom.phot_table[0]
        waves, mjy = shutter_trace_model("NRS2").response(mean_gain(nrs2))
        np.testing.assert_allclose(row["photmj"] * row["relresponse"][:int(row["nelem"])], mjy, rtol=1e-5)
    with dm.PathlossModel(str(written["PATHLOSS"].path)) as pathloss:
        assert (pathloss.meta.instrument.detector, pathloss.meta.exposure.type) == ("NRS2", "NRS_MSASPEC")
    doc = json.loads(written["MSAOPER"].path.read_text())
    assert sorted((s["Q"], s["x"], s["y"]) for s in doc["msaoper"] if s["state"] == "open") == list(failed)
    optics = {ref.reftype: ref for ref in write_optical_references(nrs2, tmp_path, [("CLEAR", "PRISM")])}
    with dm.DistortionModel(str(optics["DISTORTION"].path)) as distortion:
        assert distortion.meta.instrument.detector == "NRS2"
        assert "NRS_MSASPEC|" in distortion.meta.exposure.p_exptype
    assert optics["FLAT"].path.name == "jwst_nirspec_flat_nrs2_clear_prism_sim.fits"
