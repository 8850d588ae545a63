"""Stage-2 imaging kernels on tiny synthetic arrays: flat field, photom, background
subtraction and the assign_wcs WCS (the gwcs through a DISTORTION model, its FITS
approximation and the header round trip)."""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from services.stage2.steps.assign_wcs import (
    exposure_wcs,
    filter_offset,
    footprint,
    pointing_wcs,
    s_region,
    wcs_cards,
)
from services.stage2.steps.bkg_subtract import (
    BkgSubtractParams,
    average_background,
    subtract_background,
)
from services.stage2.steps.flat_field import apply_flat
from services.stage2.steps.invalid import mark_invalid
from services.stage2.steps.photom import apply_photom, photom_keywords, select_photom_row
from shared.datamodels.dqflags import PIXEL
from shared.imaging_wcs import (
    TelescopePointing,
    distortion_model,
    max_separation_mas,
    window_reference,
)
from shared.wcs import SipDistortion, window_wcs

DNU = PIXEL["DO_NOT_USE"]
NO_FLAT = PIXEL["NO_FLAT_FIELD"]


# ---------------------------------------------------------------- flat_field

def test_flat_divides_and_propagates_variances():
    sci = np.array([[10.0, 4.0], [2.0, -1.0]], np.float32)
    vp = np.array([[1.0, 0.5], [0.2, 0.1]], np.float32)
    vr = np.array([[0.3, 0.3], [0.3, 0.3]], np.float32)
    flat = np.array([[2.0, 0.5], [1.0, 4.0]], np.float32)
    flat_err = np.array([[0.1, 0.01], [0.0, 0.2]], np.float32)
    r = apply_flat(sci, np.zeros((2, 2), np.uint32), vp, vr, flat, None, flat_err)
    np.testing.assert_allclose(r.sci, sci / flat, rtol=1e-6)
    np.testing.assert_allclose(r.var_poisson, vp / flat**2, rtol=1e-6)
    np.testing.assert_allclose(r.var_rnoise, vr / flat**2, rtol=1e-6)
    # jwst: the flat-fielded SCI squared, times the flat's relative variance
    np.testing.assert_allclose(r.var_flat, (sci / flat) ** 2 * flat_err**2 / flat**2, rtol=1e-6)
    np.testing.assert_allclose(r.err, np.sqrt(r.var_poisson + r.var_rnoise + r.var_flat), rtol=1e-6)
    assert r.n_no_flat == 0 and not r.dq.any()


def test_bad_flat_values_flag_no_flat_field_and_leave_the_pixel_alone():
    sci = np.full((2, 3), 6.0, np.float32)
    flat = np.array([[np.nan, 0.0, 2.0], [3.0, 2.0, 2.0]], np.float32)
    flat_dq = np.array([[0, 0, NO_FLAT], [0, PIXEL["HOT"], 0]], np.uint32)
    dq_in = np.array([[0, PIXEL["JUMP_DET"], 0], [0, 0, 0]], np.uint32)
    r = apply_flat(sci, dq_in, np.ones_like(sci), np.ones_like(sci), flat, flat_dq, np.full_like(sci, np.nan))
    bad = np.array([[True, True, True], [False, False, False]])
    assert r.n_no_flat == 3
    np.testing.assert_array_equal((r.dq & (NO_FLAT | DNU)) == (NO_FLAT | DNU), bad)
    np.testing.assert_allclose(r.sci[bad], 6.0)  # flat taken as 1
    np.testing.assert_allclose(r.sci[~bad], [2.0, 3.0, 3.0])
    assert r.dq[0, 1] & PIXEL["JUMP_DET"] and r.dq[1, 1] & PIXEL["HOT"]  # input and flat DQ kept
    assert np.all(r.var_flat == 0.0)  # NaN flat errors count as 0


def test_flat_applies_to_every_integration_of_a_cube():
    cube = np.stack([np.full((3, 4), v, np.float32) for v in (1.0, 2.0, 3.0)])
    flat = np.linspace(0.5, 1.5, 12, dtype=np.float32).reshape(3, 4)
    r = apply_flat(cube, np.zeros(cube.shape, np.uint32), np.ones_like(cube), np.ones_like(cube), flat)
    assert r.sci.shape == cube.shape
    np.testing.assert_allclose(r.sci[2], 3.0 / flat, rtol=1e-6)
    with pytest.raises(ValueError, match="cut to the window"):
        apply_flat(cube, np.zeros(cube.shape, np.uint32), cube, cube, np.ones((4, 3), np.float32))


def test_mark_invalid_makes_nan_and_do_not_use_agree():
    dq = np.array([[DNU, 0, 0], [0, PIXEL["JUMP_DET"], 0]], np.uint32)
    sci = np.array([[1.0, np.nan, 3.0], [4.0, 5.0, 6.0]], np.float32)
    err = np.ones((2, 3), np.float32)
    var = np.array([[1.0, 1.0, 1.0], [1.0, 1.0, np.nan]], np.float32)
    r = mark_invalid(dq, {"sci": sci, "err": err, "var_flat": var, "var_poisson": None})
    bad = np.array([[True, True, False], [False, False, True]])
    assert r.n_invalid == 3 and r.arrays["var_poisson"] is None
    for name in ("sci", "err", "var_flat"):
        np.testing.assert_array_equal(np.isnan(r.arrays[name]), bad)
        assert r.arrays[name].dtype == np.float32
    np.testing.assert_array_equal((r.dq & DNU) != 0, bad)
    assert r.dq[1, 1] == PIXEL["JUMP_DET"]  # other flags kept
    assert not np.isnan(sci[0, 0]) and dq[0, 1] == 0  # inputs untouched
    cube = mark_invalid(np.zeros((2, 2, 3), np.uint32) | dq, {"sci": np.ones((2, 2, 3), np.float32)})
    assert cube.n_invalid == 2 and np.isnan(cube.arrays["sci"][:, 0, 0]).all()


# ---------------------------------------------------------------- photom

NIR_TABLE = np.array(
    [("F200W", "CLEAR", 0.40, 0.004), ("F200W", "F187N", 2.5, 0.02), ("F150W", "CLEAR", 0.60, 0.006)],
    dtype=[("filter", "S12"), ("pupil", "S12"), ("photmjsr", "f4"), ("uncertainty", "f4")],
)
MIRI_TABLE = np.array(
    [("F770W", "GENERIC", 0.3, 0.01), ("F770W", "SUB128", 0.31, 0.01), ("F560W", "FULL", 0.5, 0.01)],
    dtype=[("filter", "S12"), ("subarray", "S17"), ("photmjsr", "f4"), ("uncertainty", "f4")],
)


def test_photom_row_matches_filter_and_pupil_or_subarray():
    assert select_photom_row(NIR_TABLE, filter="F200W", pupil="CLEAR").photmjsr == pytest.approx(0.40)
    assert select_photom_row(NIR_TABLE, filter="f200w", pupil="f187n").photmjsr == pytest.approx(2.5)
    assert select_photom_row(NIR_TABLE, filter="F090W", pupil="CLEAR") is None
    assert select_photom_row(MIRI_TABLE, filter="F770W", subarray="SUB128").photmjsr == pytest.approx(0.31)
    assert select_photom_row(MIRI_TABLE, filter="F770W", subarray="FULL").photmjsr == pytest.approx(0.3)  # GENERIC
    assert select_photom_row(MIRI_TABLE, filter="F560W", subarray="SUB64") is None


def test_photom_scales_data_errors_and_variances():
    sci = np.array([[1.0, 2.0], [3.0, np.nan]], np.float32)
    err = np.full_like(sci, 0.5)
    var = {"VAR_POISSON": np.full_like(sci, 0.2), "VAR_RNOISE": np.full_like(sci, 0.05)}
    r = apply_photom(sci, err, var, 0.4)
    np.testing.assert_allclose(r.sci, sci * 0.4, rtol=1e-6)
    np.testing.assert_allclose(r.err, 0.2, rtol=1e-6)
    np.testing.assert_allclose(r.variances["VAR_POISSON"], 0.2 * 0.16, rtol=1e-6)
    np.testing.assert_allclose(r.variances["VAR_RNOISE"], 0.05 * 0.16, rtol=1e-6)
    with pytest.raises(ValueError):
        apply_photom(sci, err, var, float("nan"))


def test_photom_keywords_use_the_astropy_unit_conversion():
    kw = photom_keywords(0.4, 2.26e-14, 9.61e-4)
    expected = (0.4 * u.MJy / u.sr).to_value(u.uJy / u.arcsec**2)
    assert kw["PHOTMJSR"] == 0.4 and kw["PHOTUJA2"] == pytest.approx(expected, rel=1e-9)
    assert kw["PIXAR_SR"] == 2.26e-14 and kw["PIXAR_A2"] == 9.61e-4
    assert set(photom_keywords(0.4, None, None)) == {"PHOTMJSR", "PHOTUJA2"}


# ---------------------------------------------------------------- bkg_subtract

def _backgrounds(values: list[float], shape=(2, 2)):
    sci = [np.full(shape, v, np.float32) for v in values]
    dq = [np.zeros(shape, np.uint32) for _ in values]
    vp = [np.full(shape, 0.04, np.float32) for _ in values]
    vr = [np.full(shape, 0.01, np.float32) for _ in values]
    return sci, dq, vp, vr


def test_background_average_clips_an_outlier_and_skips_unusable_values():
    # 3-sigma clipping needs enough exposures to single out one outlier (with n values
    # no deviation exceeds (n-1)/sqrt(n) standard deviations), so use twelve.
    values = [1.0, 1.1, 0.9, 1.0, 1.05, 0.95] * 2
    sci, dq, vp, vr = _backgrounds(values)
    sci[4][0, 0] = 50.0  # a cosmic ray in one background exposure
    sci[2][1, 1] = np.nan
    dq[3][0, 1] = DNU
    bkg = average_background(sci, dq, vp, vr)
    without = [v for i, v in enumerate(values) if i != 4]
    assert bkg.n_used[0, 0] == 11 and bkg.sci[0, 0] == pytest.approx(np.mean(without), rel=1e-6)
    assert bkg.n_used[1, 1] == 11 and bkg.sci[1, 1] == pytest.approx(np.mean(values[:2] + values[3:]), rel=1e-6)
    assert bkg.n_used[0, 1] == 11 and bkg.sci[0, 1] == pytest.approx(np.mean(values[:3] + values[4:]), rel=1e-6)
    assert bkg.n_used[1, 0] == 12 and bkg.sci[1, 0] == pytest.approx(np.mean(values), rel=1e-6)
    assert bkg.var_poisson[1, 0] == pytest.approx(12 * 0.04 / 144) and bkg.var_rnoise[0, 0] == pytest.approx(0.01 / 11)
    assert bkg.dq[0, 1] == DNU and bkg.dq[1, 0] == 0  # the OR of the members' DQ
    plain = average_background(sci, dq, vp, vr, BkgSubtractParams(average="mean"))
    assert plain.n_used[0, 0] == 12 and plain.sci[0, 0] == pytest.approx((sum(values) - 1.05 + 50.0) / 12, rel=1e-6)


def test_background_subtraction_of_an_image_and_of_a_cube():
    sci, dq, vp, vr = _backgrounds([2.0, 2.0])
    dq[0][0, 0] = dq[1][0, 0] = DNU  # nothing usable at (0, 0)
    bkg = average_background(sci, dq, vp, vr)
    image = np.full((2, 2), 5.0, np.float32)
    r = subtract_background(image, np.zeros((2, 2), np.uint32), np.full((2, 2), 0.1, np.float32),
                            np.full((2, 2), 0.02, np.float32), bkg)
    assert r.sci[1, 1] == pytest.approx(3.0) and r.sci[0, 0] == pytest.approx(5.0)
    assert r.dq[0, 0] & DNU and not r.dq[1, 1]
    assert r.var_poisson[1, 1] == pytest.approx(0.1 + 0.04 / 2) and r.var_rnoise[1, 1] == pytest.approx(0.02 + 0.01 / 2)
    np.testing.assert_allclose(r.err, np.sqrt(r.var_poisson + r.var_rnoise), rtol=1e-6)
    cube = np.stack([image, image + 1.0])
    rc = subtract_background(cube, np.zeros(cube.shape, np.uint32), np.zeros_like(cube), np.zeros_like(cube), bkg)
    np.testing.assert_allclose(rc.sci[:, 1, 1], [3.0, 4.0])


# ---------------------------------------------------------------- assign_wcs

DISTORTION = SipDistortion(3, (1024.5, 1024.5), {(2, 0): 2e-6, (1, 1): -1.5e-6, (3, 0): 1e-10},
                           {(0, 2): 2.5e-6, (1, 1): 1e-6, (1, 2): -1e-10})
MODEL = distortion_model(DISTORTION, 0.031, 120.6, -527.5, (2048, 2048))


def _window(xstart: int, ystart: int, n: int, offset=None):
    pointing = TelescopePointing(53.16, -27.78, 30.0, *window_reference(MODEL, xstart, ystart, n, n))
    return exposure_wcs(MODEL, pointing, xstart=xstart, ystart=ystart, xsize=n, ysize=n, offset=offset)


def test_distortion_model_and_its_inverse():
    x, y = np.meshgrid(np.linspace(-200, 2247, 13), np.linspace(-200, 2247, 13))
    v2, v3 = MODEL(x, y)
    xb, yb = MODEL.inverse(v2, v3)
    assert np.max(np.hypot(xb - x, yb - y)) < 1e-6
    # The reference pixel (1-based 1024.5) is at (v2_ref, v3_ref); +x goes to -V2, +y to +V3.
    np.testing.assert_allclose(MODEL(1023.5, 1023.5), (120.6, -527.5), rtol=0, atol=1e-12)
    assert MODEL(1024.5, 1023.5)[0] < 120.6 and MODEL(1023.5, 1024.5)[1] > -527.5


@pytest.mark.parametrize("window", [(1201, 301, 160), (1, 1, 2048)])
def test_exposure_wcs_is_a_gwcs_with_its_fits_approximation_in_the_header(window):
    xstart, ystart, n = window
    gw, w = _window(xstart, ystart, n)
    assert gw.available_frames == ["detector", "v2v3", "v2v3vacorr", "world"]
    assert gw.bounding_box.bounding_box(order="F") == ((-0.5, n - 0.5), (-0.5, n - 0.5))
    reread = WCS(fits.Header(wcs_cards(w)))
    assert reread.wcs.ctype[0] == "RA---TAN-SIP" and reread.wcs.crpix[0] == (n + 1) / 2
    assert max_separation_mas(gw, reread, (n, n), step=n / 16) < 1e-3
    # The window centre lands on the pointing, in both.
    for ra, dec in (gw((n - 1) / 2, (n - 1) / 2), reread.all_pix2world([(n - 1) / 2], [(n - 1) / 2], 0)):
        assert abs(float(np.squeeze(ra)) - 53.16) * np.cos(np.radians(27.78)) < 1e-10
        assert abs(float(np.squeeze(dec)) + 27.78) < 1e-10
    x, y = np.meshgrid(np.linspace(-0.5, n - 0.5, 9), np.linspace(-0.5, n - 0.5, 9))
    xb, yb = gw.invert(*gw(x, y), with_bounding_box=False)
    assert np.max(np.hypot(xb - x, yb - y)) < 1e-6


def test_filter_offset_shifts_the_pixels_before_the_distortion():
    rows = [{"filter": "F200W", "pupil": "CLEAR", "column_offset": 0.5, "row_offset": -0.25},
            {"filter": "F560W", "column_offset": 1.0, "row_offset": 2.0}]
    assert filter_offset(rows, "F200W", "CLEAR") == (0.5, -0.25)
    assert filter_offset(rows, "F200W", "WLP8") is None and filter_offset(rows, "F150W", "CLEAR") is None
    assert filter_offset(rows, "F560W", None) == (1.0, 2.0)
    plain, _ = _window(1201, 301, 160)
    shifted, w = _window(1201, 301, 160, offset=(0.5, -0.25))
    x, y = np.array([0.0, 80.0, 159.0]), np.array([0.0, 30.0, 159.0])
    np.testing.assert_allclose(np.array(shifted(x, y)), np.array(plain(x + 0.5, y - 0.25)), rtol=0, atol=1e-12)
    assert max_separation_mas(shifted, w, (160, 160), step=10) < 1e-3


def test_pointing_wcs_without_distortion_is_the_ingest_wcs():
    gw, w = pointing_wcs(53.16, -27.78, 30.0, 0.031, 64, 48)
    assert gw.available_frames == ["detector", "world"] and "SIP" not in w.wcs.ctype[0]
    ingest = window_wcs(53.16, -27.78, 30.0, 0.031, 64, 48)
    assert max_separation_mas(gw, ingest, (48, 64), step=4) < 1e-4


def test_distortion_moves_corner_pixels_and_s_region_lists_the_corners():
    _, plain = pointing_wcs(53.16, -27.78, 30.0, 0.031, 2048, 2048)
    _, distorted = _window(1, 1, 2048)
    ra, dec = distorted.all_pix2world([0.0], [0.0], 0)
    x, y = plain.all_world2pix(ra, dec, 0)
    assert np.hypot(x[0], y[0]) > 1.0  # pixels of displacement at a full-frame corner
    corners = footprint(plain, (2048, 2048))
    text = s_region(corners)
    assert text.startswith("POLYGON ICRS ")
    values = np.array(text.split()[2:], float).reshape(4, 2)
    np.testing.assert_allclose(values, corners, atol=1e-9)
    # Corners sit half a pixel beyond the outer pixel centres, one window apart (2048 x 31 mas).
    side = np.hypot((values[1, 0] - values[0, 0]) * np.cos(np.radians(-27.78)), values[1, 1] - values[0, 1])
    assert side * 3600 == pytest.approx(2048 * 0.031, rel=1e-4)
