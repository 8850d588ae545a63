"""shared.resample: grids, drizzle resampling, weights, variance propagation and blot.

Tolerances: total flux through resample within 0.5 % (drizzle conserves surface
brightness x solid angle; the residual is the output grid's pixel-area variation and
the stars' wings at the edges); a resample + blot round trip through a rotated, shifted
grid reproduces a smooth image to 1 % inside the footprint.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from shared.datamodels.dqflags import PIXEL
from shared.resample import (
    ResampleInput,
    blot,
    derivative,
    output_grid,
    pixel_area_arcsec2,
    pixel_scale_arcsec,
    pixmap,
    resample,
    weight_map,
)
from tests.stage3_scenes import SR_PER_ARCSEC2, make_exposures, make_sky, window_wcs_pair

SHAPE = (120, 120)


def _wcs(dra: float = 0.0, ddec: float = 0.0, roll: float = 30.0):
    return window_wcs_pair(53.1 + dra / 3600.0, -27.8 + ddec / 3600.0, roll, SHAPE)[1]


def test_output_grid_covers_every_input_at_their_scale():
    wcss = [_wcs(), _wcs(1.0, 0.5, 31.0), _wcs(-0.8, 1.2, 29.0)]
    grid, shape = output_grid(wcss, [SHAPE] * 3)
    assert grid.pixel_shape == (shape[1], shape[0])
    assert pixel_scale_arcsec(grid) == pytest.approx(np.median([pixel_scale_arcsec(w, SHAPE) for w in wcss]), rel=1e-6)
    # North up: +y towards increasing Dec, +x towards decreasing RA.
    ra0, dec0 = grid.pixel_to_world_values(10.0, 10.0)
    ra1, dec1 = grid.pixel_to_world_values(10.0, 11.0)
    ra2, _ = grid.pixel_to_world_values(11.0, 10.0)
    assert dec1 > dec0 and abs(ra1 - ra0) < 1e-9 and ra2 < ra0
    for w in wcss:
        edge = np.array([-0.5, SHAPE[1] - 0.5])
        xx, yy = np.meshgrid(edge, edge)
        x, y = grid.world_to_pixel_values(*w.pixel_to_world_values(xx.ravel(), yy.ravel()))
        assert x.min() >= -0.5 - 1e-6 and x.max() <= shape[1] - 0.5 + 1e-6
        assert y.min() >= -0.5 - 1e-6 and y.max() <= shape[0] - 0.5 + 1e-6
    _, half = output_grid(wcss, [SHAPE] * 3, pixel_scale_ratio=0.5)
    assert half[0] == pytest.approx(2 * shape[0], abs=2)
    rotated, _ = output_grid(wcss, [SHAPE] * 3, rotation=30.0)
    assert rotated.wcs.get_pc()[1, 1] == pytest.approx(math.cos(math.radians(30.0)))


def test_flux_of_point_sources_is_conserved():
    sky = make_sky(60, radius_arcsec=1.2, seed=11, flux_range=(1e-7, 1e-6))
    exps = make_exposures(sky, shape=SHAPE, n_cr=0, noise_jy=1e-14, gain_jy=1e-22)
    inputs = [ResampleInput(e.data, e.true_wcs, e.dq, e.var_rnoise, e.var_poisson) for e in exps]
    for ratio in (1.0, 0.6):
        grid, shape = output_grid([e.true_wcs for e in exps], [SHAPE] * len(exps), pixel_scale_ratio=ratio)
        r = resample(inputs, grid, shape)
        area = pixel_area_arcsec2(grid, shape[1] / 2, shape[0] / 2) * SR_PER_ARCSEC2
        total_out = np.nansum(r.data) * area * 1e6
        # Every star lies well inside every exposure, so each input holds the whole sky.
        assert total_out == pytest.approx(sky.flux.sum(), rel=0.005)
        assert r.n_inputs == 4 and r.con.shape == (1, *shape)


def test_shift_and_rotation_round_trip():
    yy, xx = np.mgrid[0:SHAPE[0], 0:SHAPE[1]]
    smooth = (1.0 + 0.3 * np.sin(xx / 9.0) * np.cos(yy / 13.0)).astype(np.float32)
    w_in = _wcs()
    grid, shape = output_grid([w_in], [SHAPE], rotation=37.0, pixel_scale_ratio=0.9)
    r = resample([ResampleInput(smooth, w_in, var_rnoise=np.ones(SHAPE, np.float32))], grid, shape)
    back = blot(r.data, grid, w_in, SHAPE)
    inner = np.s_[6:-6, 6:-6]
    assert np.isfinite(back[inner]).all()
    assert np.max(np.abs(back[inner] / smooth[inner] - 1)) < 0.01


def test_do_not_use_pixels_get_no_weight_and_variances_combine():
    data = np.full(SHAPE, 2.0, np.float32)
    dq = np.zeros(SHAPE, np.uint32)
    dq[50:60, 50:60] = PIXEL["DO_NOT_USE"]
    data[50:60, 50:60] = 1e6  # must not leak into the output
    data[10, 10] = np.nan
    var_r = np.full(SHAPE, 4.0, np.float32)
    inp = ResampleInput(data, _wcs(), dq, var_r, np.full(SHAPE, 1.0, np.float32))
    w = weight_map(inp, "ivm")
    assert np.all(w[50:60, 50:60] == 0) and w[10, 10] == 0 and w[0, 0] == pytest.approx(0.25)
    assert weight_map(inp, "exptime")[0, 0] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="VAR_RNOISE"):
        weight_map(ResampleInput(data, _wcs()), "ivm")

    grid, shape = output_grid([_wcs()], [SHAPE])
    single = resample([inp], grid, shape)
    assert np.nanmax(single.data) == pytest.approx(2.0, rel=1e-5)
    # Two identical inputs: read-noise variance halves (1 / sum(1/v)), the mean is unchanged.
    double = resample([inp, inp], grid, shape)
    interior = double.wht > 0.9 * np.nanmax(double.wht)
    assert np.nanmedian(double.var_rnoise[interior]) == pytest.approx(2.0, rel=1e-3)
    assert np.nanmedian(double.var_poisson[interior]) == pytest.approx(0.5, rel=1e-3)
    assert np.nanmedian(double.err[interior]) == pytest.approx(math.sqrt(2.5), rel=1e-3)
    assert double.var_flat is None
    assert set(np.unique(double.con)) <= {0, 1, 2, 3} and (double.con == 3).sum() > 0
    assert np.isnan(double.data[~(double.wht > 0)]).all()


@pytest.mark.parametrize(("kernel", "ratio"), [("square", 1.0), ("square", 0.5), ("lanczos3", 1.0), ("gaussian", 0.7)])
def test_an_input_drizzled_on_its_part_of_a_large_grid_is_the_whole_grid_drizzle(kernel, ratio):
    """resample drizzles each input onto the part of the grid it reaches: SCI, WHT and the
    variances are those of drizzling onto the whole grid (the drizzle library, directly),
    and nothing lands outside that part."""
    from drizzle.resample import Drizzle

    rng = np.random.default_rng(5)
    data = rng.normal(3.0, 0.5, SHAPE).astype(np.float32)
    var = rng.uniform(0.5, 2.0, SHAPE).astype(np.float32)
    near, far = _wcs(), _wcs(40.0, 35.0, 30.0)  # the grid spans both: `near` fills one corner
    grid, shape = output_grid([near, far], [SHAPE] * 2, pixel_scale_ratio=ratio)
    inp = ResampleInput(data, near, var_rnoise=var, var_poisson=var * 2)
    r = resample([inp], grid, shape, kernel=kernel, fillval=0.0)

    pmap = pixmap(near, grid, SHAPE)  # the map resample uses
    w = weight_map(inp, "ivm")
    whole = Drizzle(kernel=kernel, fillval=0.0, out_shape=shape)
    whole.add_image(data, exptime=1.0, pixmap=pmap, weight_map=w, in_units="cps")
    variance = Drizzle(kernel=kernel, fillval=0.0, out_shape=shape)
    variance.add_image(var * 2, exptime=1.0, pixmap=pmap, weight_map=w, in_units="cps")
    assert r.wht.sum() == pytest.approx(float(whole.out_wht.sum()), rel=1e-6)
    np.testing.assert_allclose(r.wht, whole.out_wht, rtol=1e-5, atol=1e-6 * float(whole.out_wht.max()))
    covered = whole.out_wht > 0
    assert (r.wht > 0).sum() == covered.sum() and covered.sum() < 0.6 * covered.size
    np.testing.assert_allclose(r.data[covered], whole.out_img[covered], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(r.var_poisson[covered], variance.out_img[covered], rtol=1e-5)


def test_derivative_is_largest_neighbour_difference():
    img = np.zeros((5, 5), np.float32)
    img[2, 2] = 4.0
    img[0, 0] = np.nan
    d = derivative(img)
    assert d[2, 2] == 4.0 and d[1, 2] == 4.0 and d[2, 3] == 4.0 and d[1, 1] == 0.0
    assert np.isnan(d[0, 0]) and d[0, 1] == 0.0


def test_interpolated_pixmap_matches_the_exact_one():
    """The pixmap is exact on every 8th pixel and interpolated in between; with a distortion
    of a few pixels over the frame the interpolation stays within 1e-4 pixel."""
    from drizzle.utils import calc_pixmap

    from services.simulator.distortion import detector_distortion_model
    from shared.instruments import detector
    from shared.resample import pixmap

    window = (640, 640)  # SUB640 in the frame's corner, where the distortion is largest
    w = window_wcs_pair(53.16, -27.79, 30.0, window, model=detector_distortion_model(detector("NRCA1")),
                        start=(1, 1))[1]
    out_wcs, out_shape = output_grid([w], [window])
    for source, target, shape in ((w, out_wcs, window), (out_wcs, w, out_shape)):  # resample and blot
        exact = calc_pixmap(source, target, shape)
        assert np.nanmax(np.abs(pixmap(source, target, shape) - exact)) < 1e-4
        assert np.array_equal(pixmap(source, target, shape, step=1), exact)


def test_pixmap_interpolation_is_the_bilinear_one():
    """The separable interpolation between the exact nodes gives what a 2-D bilinear
    interpolation of the nodes (scipy's, order 1) gives, to rounding, on a frame whose size
    is no multiple of the node spacing (the last row and column are nodes of their own)."""
    from scipy import ndimage

    from shared.resample import PIXMAP_STEP, pixmap

    shape = (203, 157)
    w = window_wcs_pair(53.16, -27.79, 30.0, shape, start=(1, 1))[1]
    out_wcs, _ = output_grid([w], [shape], rotation=12.0)
    ny, nx = shape
    ys = np.unique(np.r_[np.arange(0, ny, PIXMAP_STEP), ny - 1])
    xs = np.unique(np.r_[np.arange(0, nx, PIXMAP_STEP), nx - 1])
    exact = pixmap(w, out_wcs, shape, step=1)
    rows = np.interp(np.arange(ny), ys, np.arange(len(ys)))
    cols = np.interp(np.arange(nx), xs, np.arange(len(xs)))
    grid_rows, grid_cols = np.meshgrid(rows, cols, indexing="ij")
    got = pixmap(w, out_wcs, shape)
    for k in (0, 1):
        nodes = exact[np.ix_(ys, xs)][..., k]
        bilinear = ndimage.map_coordinates(nodes, [grid_rows, grid_cols], order=1, mode="nearest")
        assert np.max(np.abs(got[..., k] - bilinear)) < 1e-9
    assert np.array_equal(got[np.ix_(ys, xs)], exact[np.ix_(ys, xs)])  # exact on the nodes
