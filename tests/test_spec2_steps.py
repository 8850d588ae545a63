"""Slit-spectroscopy kernels of stage 2 on small synthetic arrays: the trace and
wavelengths from a SPECWCS table, the point-source path loss, the spectral photometric
conversion, the rectified slit (``_s2d``) and the boxcar extraction (``_x1d``)."""

from __future__ import annotations

import numpy as np
import pytest

from services.stage2.steps.pathloss import PathlossGrid, apply_pathloss, pathloss_vector
from services.stage2.steps.photom import apply_photom, spectral_conversion
from services.stage2.steps.srctype import source_type
from shared.datamodels.dqflags import PIXEL
from shared.imaging_wcs import TelescopePointing
from shared.spectra import (
    ExtractParams,
    boxcar_extract,
    in_frame,
    rectify_slit,
    slit_length,
    slit_trace,
    slit_width,
    wavelength_image,
)
from shared.spectra.wcs import rectified_gwcs, slit_gwcs

DNU = PIXEL["DO_NOT_USE"]


def _wavetable(n=50, x_shift=0.01):
    """One element per row: wavelength 10 - 0.1 d, x drifting by ``x_shift`` per row."""
    d = np.arange(-n // 2, n // 2, dtype=np.float64)
    table = np.zeros(d.size, dtype=[(c, "<f8") for c in ("x_center", "y_center", "wavelength")])
    table["x_center"], table["y_center"], table["wavelength"] = x_shift * d, d, 10.0 - 0.1 * d
    return table[::-1]  # as the public files list them: wavelength increasing


def test_slit_trace_in_a_readout_window():
    table = _wavetable()
    # reference point at full-frame (1-based) (101, 201); window starting at (91, 181)
    trace = slit_trace(table, 101.0, 201.0, xstart=91, ystart=181, ny=60)
    # full-frame 0-based row of the reference: 200; window row: 200 - 180 = 20
    assert trace.ref == (10.0, 20.0)
    assert trace.wavelength[20] == pytest.approx(10.0)
    assert trace.wavelength[21] == pytest.approx(9.9)
    assert trace.x[30] == pytest.approx(10.0 + 0.01 * 10)
    assert trace.rows[0] == 0 and trace.rows[-1] == 20 + 24  # the table reaches beyond the window's first row
    assert np.isnan(trace.wavelength[:trace.rows[0]]).all() and np.isnan(trace.wavelength[trace.rows[-1] + 1:]).all()
    assert trace.row_of(9.55) == pytest.approx(24.5)
    image = wavelength_image(trace, nx=30, half_length=3.0)
    row = image[20]
    assert np.isfinite(row[7:14]).all() and np.isnan(row[:7]).all() and np.isnan(row[14:]).all()


def _transposed(table):
    """The same slit dispersed along detector x (NIRSpec's DISPAXIS 1): x and y swapped."""
    out = table.copy()
    out["x_center"], out["y_center"] = table["y_center"], table["x_center"]
    return out


def test_the_slits_length_and_width_are_the_long_and_short_sides_of_its_corners_on_the_sky():
    # a 0.2" x 3.3" slit turned 30 degrees on the V2/V3 plane, corners counter-clockwise
    turn = np.radians(30.0)
    corners = np.array([[-0.1, -1.65], [0.1, -1.65], [0.1, 1.65], [-0.1, 1.65]])
    v2 = 300.0 + corners[:, 0] * np.cos(turn) - corners[:, 1] * np.sin(turn)
    v3 = -500.0 + corners[:, 0] * np.sin(turn) + corners[:, 1] * np.cos(turn)
    header = {f"V2VERT{i + 1}": v2[i] for i in range(4)} | {f"V3VERT{i + 1}": v3[i] for i in range(4)}
    assert slit_length(header) == pytest.approx(3.3) and slit_width(header) == pytest.approx(0.2)
    with pytest.raises(ValueError, match="no slit corners"):
        slit_width({k: v for k, v in header.items() if k != "V3VERT2"})
    with pytest.raises(ValueError, match="no slit corners"):
        slit_length({**header, "V2VERT1": "left"})


def test_a_slit_dispersed_along_x_is_the_transposed_slit():
    table = _wavetable()
    rows = slit_trace(table, 101.0, 201.0, xstart=91, ystart=181, ny=60)
    columns = slit_trace(_transposed(table), 201.0, 101.0, xstart=181, ystart=91, ny=60, dispaxis=1)
    assert columns.dispaxis == 1 and columns.ref == rows.ref
    np.testing.assert_array_equal(columns.rows, rows.rows)
    np.testing.assert_allclose(columns.wavelength, rows.wavelength, equal_nan=True)
    np.testing.assert_allclose(columns.x, rows.x, equal_nan=True)
    window = np.arange(60 * 30, dtype=np.float32).reshape(30, 60)  # (ny, nx) of the NIRSpec-like window
    frame = in_frame(window, 1)
    assert frame.shape == (60, 30) and frame[7, 3] == window[3, 7]
    assert np.shares_memory(frame, window)  # a view: a step writing the frame writes the window
    np.testing.assert_array_equal(in_frame(in_frame(window, 1), 1), window)
    assert in_frame(window, 2) is window
    with pytest.raises(ValueError, match="DISPAXIS must be 1 or 2"):
        slit_trace(table, 101.0, 201.0, ny=60, dispaxis=3)


def test_the_gwcs_of_a_slit_dispersed_along_x():
    """Dispersed along x, the slit's gwcs at window pixel (x, y) is the gwcs of the same
    slit dispersed along y at (y, x), with the distortion's inputs swapped likewise; the
    inverse lands on the pixel; the rectified grid (transposed too) maps back likewise."""
    from astropy.modeling import models as m

    distortion = (m.Shift(-100.0) & m.Shift(-200.0)) | (m.Scale(0.11) & m.Scale(0.11)) | (m.Shift(-400.0) & m.Shift(-380.0))
    distortion.inverse = (m.Shift(400.0) & m.Shift(380.0)) | (m.Scale(1 / 0.11) & m.Scale(1 / 0.11)) | (
        m.Shift(100.0) & m.Shift(200.0))
    swapped = m.Mapping((1, 0)) | distortion
    swapped.inverse = distortion.inverse | m.Mapping((1, 0))
    pointing = TelescopePointing(ra_ref=80.0, dec_ref=-69.5, roll_ref=30.0, v2_ref=-400.0, v3_ref=-380.0)
    table = _wavetable()
    rows = slit_trace(table, 101.0, 201.0, xstart=91, ystart=181, ny=60)
    columns = slit_trace(_transposed(table), 201.0, 101.0, xstart=181, ystart=91, ny=60, dispaxis=1)
    along_y = slit_gwcs(distortion, pointing, rows, 3.0, xstart=91, ystart=181, xsize=30, ysize=60)
    along_x = slit_gwcs(swapped, pointing, columns, 3.0, xstart=181, ystart=91, xsize=60, ysize=30)
    ra, dec, wl = along_x(25.0, 11.0)
    assert np.isfinite([ra, dec, wl]).all()
    np.testing.assert_allclose((ra, dec, wl), along_y(11.0, 25.0), rtol=0, atol=1e-10)
    np.testing.assert_allclose(along_x.invert(ra, dec, wl), (25.0, 11.0), atol=1e-6)
    assert np.isnan(along_x(25.0, 2.0)[2])  # off the slit's image: outside the bounding box
    grid = rectified_gwcs(along_x, columns, np.arange(5, 40), np.arange(-3.0, 4.0))
    # the transposed grid's pixel (x = row index, y = offset index) is the frame's (y, x)
    np.testing.assert_allclose(grid(20.0, 3.0), along_x(25.0, columns.x[25]), atol=1e-9)
    np.testing.assert_allclose(grid.invert(*grid(20.0, 3.0)), (20.0, 3.0), atol=1e-6)


@pytest.mark.parametrize("broken, message", [
    (lambda t: t[["x_center", "wavelength"]], "no y_center"),
    (lambda t: t[:1], "fewer than two"),
    (lambda t: np.concatenate([t, t[:3]]), "not monotonic"),
])
def test_slit_trace_refuses_a_broken_table(broken, message):
    with pytest.raises(ValueError, match=message):
        slit_trace(broken(_wavetable()), 101.0, 201.0, ny=60)


def test_pathloss_at_the_source_and_outside_the_grid():
    grid = PathlossGrid.from_wcs({"CRPIX1": 1, "CRVAL1": -2.0, "CDELT1": 4.0,
                                  "CRPIX2": 1, "CRVAL2": -2.0, "CDELT2": 1.0})
    across = np.arange(-2.0, 2.01, 1.0)
    waves = np.array([5.0, 10.0])
    # correction = 1 + 0.1 |across| + 0.01 wavelength, the same along the slit
    corr = 1 + 0.1 * np.abs(across)[None, :, None] + 0.01 * waves[:, None, None] + np.zeros((2, 5, 2))
    vec, centred = pathloss_vector(corr, grid, along=1.0, across=0.5)
    assert not centred
    np.testing.assert_allclose(vec, 1 + 0.05 + 0.01 * waves)
    vec, centred = pathloss_vector(corr, grid, along=0.0, across=7.0)
    assert centred
    np.testing.assert_allclose(vec, 1 + 0.01 * waves)
    sci = np.ones((2, 3), np.float32)
    wl = np.array([[5.0, 7.5, np.nan], [10.0, 12.0, 6.0]])
    r = apply_pathloss(sci, sci, {"VAR_POISSON": sci}, wl, waves, np.array([2.0, 4.0]))
    np.testing.assert_allclose(r.sci[0], [2.0, 3.0, 1.0])  # NaN wavelength: no correction
    np.testing.assert_allclose(r.sci[1], [4.0, 1.0, 2.4], rtol=1e-6)  # beyond the table: none either
    assert r.variances["VAR_POISSON"][0, 1] == pytest.approx(9.0)
    with pytest.raises(ValueError, match="grid is unknown"):
        PathlossGrid.from_wcs({})


def test_spectral_conversion_follows_the_relative_response():
    wl = np.array([[5.0, 6.0, np.nan], [7.0, 8.0, 20.0]])
    conv = spectral_conversion(wl, 2.0, np.array([8.0, 5.0]), np.array([4.0, 1.0]))
    assert conv[0, 0] == pytest.approx(2.0) and conv[1, 1] == pytest.approx(8.0)
    assert conv[0, 1] == pytest.approx(4.0) and np.isnan(conv[0, 2]) and np.isnan(conv[1, 2])
    r = apply_photom(np.ones((2, 3)), np.ones((2, 3)), {"VAR_RNOISE": np.ones((2, 3))}, conv)
    assert r.sci[1, 1] == pytest.approx(8.0) and r.variances["VAR_RNOISE"][1, 1] == pytest.approx(64.0)
    assert np.isnan(r.sci[0, 2])
    with pytest.raises(ValueError, match="shape"):
        apply_photom(np.ones((2, 3)), np.ones((2, 3)), {}, np.ones((3, 3)))
    with pytest.raises(ValueError, match="positive"):
        spectral_conversion(wl, 0.0, np.array([5.0, 8.0]), np.array([1.0, 1.0]))


def test_rectified_slit_keeps_each_rows_light_and_weights_variances():
    rng = np.random.default_rng(3)
    ny, nx = 6, 40
    sci = rng.uniform(1, 2, (ny, nx))
    var = rng.uniform(0.1, 0.2, (ny, nx))
    dq = np.zeros((ny, nx), np.uint32)
    trace = 20.0 + np.array([0.0, 0.25, 0.5, 0.75, 1.0, 1.3])
    r = rectify_slit(sci, dq, {"VAR_POISSON": var}, trace, np.arange(ny), np.linspace(5, 6, ny), half_length=8.0)
    assert r.sci.shape == (ny, 17) and list(r.offsets) == list(np.arange(-8.0, 9.0))
    x = np.arange(nx, dtype=np.float64)
    for y in range(ny):
        # each input pixel is shared among the outputs by overlaps that sum to the part of
        # it the grid [-8.5, 8.5] (around the trace) covers: the row's light is kept
        s = x - trace[y]
        covered = np.clip(np.minimum(s + 0.5, 8.5) - np.maximum(s - 0.5, -8.5), 0, 1)
        assert r.sci[y].sum() == pytest.approx((sci[y] * covered).sum(), rel=1e-6)
    # a whole-pixel shift copies pixels, a half-pixel shift averages two
    assert r.sci[0, 8] == pytest.approx(sci[0, 20])
    assert r.sci[2, 8] == pytest.approx(0.5 * (sci[2, 20] + sci[2, 21]))
    assert r.variances["VAR_POISSON"][2, 8] == pytest.approx(0.25 * (var[2, 20] + var[2, 21]))
    np.testing.assert_allclose(r.wavelength[3], np.linspace(5, 6, ny)[3], rtol=1e-6)
    # a pixel flagged DO_NOT_USE does not contribute; an output with no input is DO_NOT_USE
    dq[0, 20] = DNU
    r = rectify_slit(sci, dq, {"VAR_POISSON": var}, trace, np.arange(ny), np.linspace(5, 6, ny), half_length=8.0)
    assert np.isnan(r.sci[0, 8]) and r.dq[0, 8] & DNU


def test_boxcar_extraction_of_a_point_source_with_background():
    ny, nx, pixar = 5, 41, 2.0e-13
    x = np.arange(nx, dtype=np.float64)
    centre = np.full(ny, 20.3)
    profile = np.exp(-0.5 * ((x - 20.3) / 1.5) ** 2)
    profile /= profile.sum()
    flux_sb = np.array([100.0, 200.0, 300.0, 400.0, 500.0])  # MJy/sr summed over the profile
    sky = 7.0
    sci = flux_sb[:, None] * profile[None, :] + sky
    var = np.full((ny, nx), 0.04)
    dq = np.zeros((ny, nx), np.uint32)
    wl = np.array([9.0, 8.0, 7.0, 6.0, 5.0])
    params = ExtractParams(width=13.0, background=((-18.0, -10.0), (10.0, 18.0)))
    t = boxcar_extract(sci, dq, {"POISSON": var}, centre, np.arange(ny), wl, pixar, params)
    assert list(t["WAVELENGTH"]) == [5.0, 6.0, 7.0, 8.0, 9.0]  # increasing
    np.testing.assert_allclose(t["BACKGROUND"], sky, rtol=1e-6)
    np.testing.assert_allclose(t["FLUX"], flux_sb[::-1] * pixar * 1e6, rtol=1e-4)
    np.testing.assert_allclose(t["NPIXELS"], 13.0)
    # the aperture [13.8, 26.8] holds 0.7 of pixel 14, 15-26 whole and 0.3 of pixel 27
    # (sum of w^2 12.58); each background region 0.2 + 7 + 0.8 pixels (sum 8, of w^2 7.68),
    # whose mean's variance scales with the aperture's 13 pixels
    expected = (12.58 * 0.04 + 13**2 * (2 * 7.68 * 0.04) / 16**2) * (pixar * 1e6) ** 2
    np.testing.assert_allclose(t["FLUX_VAR_POISSON"], expected, rtol=1e-9)
    np.testing.assert_allclose(t["FLUX_ERROR"], np.sqrt(expected), rtol=1e-9)
    # an unusable pixel leaves the sums and flags the element; no usable pixel: NaN
    dq[2, 20] = DNU
    sci[4, :] = np.nan
    t = boxcar_extract(sci, dq, {"POISSON": var}, centre, np.arange(ny), wl, pixar, ExtractParams(width=13.0))
    by_wl = dict(zip(t["WAVELENGTH"], t, strict=True))
    assert by_wl[7.0]["DQ"] & DNU and by_wl[7.0]["NPIXELS"] == pytest.approx(12.0)
    assert np.isnan(by_wl[5.0]["FLUX"]) and by_wl[5.0]["DQ"] & DNU
    with pytest.raises(ValueError, match="PIXAR_SR"):
        boxcar_extract(sci, dq, {}, centre, np.arange(ny), wl, 0.0)


@pytest.mark.parametrize("keywords, expected", [
    ({"EXP_TYPE": "MIR_LRS-FIXEDSLIT"}, "POINT"),
    ({"EXP_TYPE": "MIR_LRS-FIXEDSLIT", "SRCTYAPT": "EXTENDED"}, "EXTENDED"),
    ({"EXP_TYPE": "MIR_LRS-FIXEDSLIT", "BKGDTARG": True}, "EXTENDED"),
    ({"EXP_TYPE": "NRS_IFU"}, "EXTENDED"),
])
def test_source_type(keywords, expected):
    assert source_type(keywords)[0] == expected
