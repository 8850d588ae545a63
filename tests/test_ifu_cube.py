"""The IFU cube kernel (shared.spectra.cube): exact 3-D drizzle weights, flux and
variance, the cube's sky grid and its FITS WCS. Footprints are laid out on the cube's
tangent plane (in spaxels) and carried to the sky with the grid itself, so that their
overlaps with the spaxels are known exactly."""

from __future__ import annotations

import math

import numpy as np
import pytest
from astropy.wcs import WCS

from shared.datamodels.dqflags import PIXEL
from shared.spectra.cube import (
    EMPTY_VOXEL,
    CubeGrid,
    _clip,
    _clip_general,
    _square_overlap,
    build_cube,
    cube_grid,
)

EDGES = np.linspace(1.0, 1.5, 6)  # 5 bins of 0.1 um


def make_grid(nx=8, ny=6, edges=EDGES, ra0=83.8, dec0=-5.4, spaxel=0.2) -> CubeGrid:
    return CubeGrid(ra0=ra0, dec0=dec0, spaxel=spaxel, nx=nx, ny=ny, x0=(nx - 1) / 2, y0=(ny - 1) / 2,
                    wl_edges=edges)


def to_sky(grid: CubeGrid, x, y):
    return grid.cube_to_sky(np.asarray(x, float), np.asarray(y, float))


def square(cx, cy, half=0.5):
    return (np.array([[cx - half, cx + half, cx + half, cx - half]]),
            np.array([[cy - half, cy - half, cy + half, cy + half]]))


def tiling(centre, radius, a, b, angle_deg):
    """Rectangles a x b (spaxels) tiling the plane, rotated by ``angle_deg``, those whose
    centre lies within ``radius`` of ``centre``: corners (n, 4) x and y, and centres."""
    th = math.radians(angle_deg)
    c, s = math.cos(th), math.sin(th)
    n = int(radius / min(a, b)) + 2
    i, j = np.meshgrid(np.arange(-n, n + 1), np.arange(-n, n + 1))
    u, v = (i.ravel() + 0.25) * a, (j.ravel() + 0.1) * b  # the lattice off the spaxel grid
    keep = np.hypot(u, v) <= radius
    u, v = u[keep], v[keep]
    du = np.array([-0.5, 0.5, 0.5, -0.5]) * a
    dv = np.array([-0.5, -0.5, 0.5, 0.5]) * b
    cu, cv = u[:, None] + du, v[:, None] + dv
    x = centre[0] + c * cu - s * cv
    y = centre[1] + s * cu + c * cv
    return x, y, centre[0] + c * u - s * v, centre[1] + s * u + c * v


def slices(lo, hi, width):
    """Wavelength intervals of ``width`` tiling [lo, hi)."""
    starts = np.arange(lo, hi, width)
    return starts, starts + width


def expand(x, y, wl_lo, wl_hi):
    """Every footprint times every wavelength interval."""
    n, m = x.shape[0], wl_lo.size
    return (np.repeat(x, m, axis=0), np.repeat(y, m, axis=0), np.tile(wl_lo, n), np.tile(wl_hi, n))


def test_one_pixel_fills_exactly_its_voxel():
    grid = make_grid()
    x, y = square(3.0, 2.0)
    ra, dec = to_sky(grid, x, y)
    r = build_cube(ra, dec, [EDGES[1]], [EDGES[2]], [7.5], [0.3], grid)
    assert r.sci.shape == r.var.shape == r.weight.shape == r.dq.shape == (5, 6, 8)
    assert r.sci.dtype == r.var.dtype == r.weight.dtype == np.float32 and r.dq.dtype == np.uint32
    assert r.weight[1, 2, 3] == pytest.approx(1.0, abs=1e-6)
    assert r.sci[1, 2, 3] == pytest.approx(7.5, rel=1e-6)
    assert r.var[1, 2, 3] == pytest.approx(0.3, rel=1e-6)
    assert r.dq[1, 2, 3] == 0
    others = np.ones(r.sci.shape, bool)
    others[1, 2, 3] = False
    assert np.all(r.weight[others] == 0)
    assert np.all(np.isnan(r.sci[others])) and np.all(np.isnan(r.var[others]))
    assert np.all(r.dq[others] == EMPTY_VOXEL)
    assert EMPTY_VOXEL == PIXEL["DO_NOT_USE"] | PIXEL["NON_SCIENCE"]


def test_uniform_field_tiled_by_rotated_pixels():
    """Rectangles 0.7 x 0.45 spaxels at 30 degrees and 0.037 um slices cover every voxel
    exactly once: weight 1 and the uniform value everywhere."""
    grid = make_grid()
    x, y, _, _ = tiling(((grid.nx - 1) / 2, (grid.ny - 1) / 2), 8.0, 0.7, 0.45, 30.0)
    x, y, lo, hi = expand(x, y, *slices(0.95, 1.56, 0.037))
    ra, dec = to_sky(grid, x, y)
    r = build_cube(ra, dec, lo, hi, np.full(lo.size, 3.25), np.full(lo.size, 1.0), grid)
    np.testing.assert_allclose(r.weight, 1.0, atol=1e-6)
    np.testing.assert_allclose(r.sci, 3.25, rtol=1e-6)
    assert np.all(r.dq == 0)


def test_weight_and_flux_conserved():
    """A patch of rotated pixels inside the cube with random values: the cube holds the
    patch's volume (sum of weights times the voxel volume) and its flux (sum of value
    times weight times the voxel volume), to rounding."""
    grid = make_grid(nx=10, ny=9)
    a, b = 0.62, 0.41
    x, y, _, _ = tiling((4.3, 3.9), 2.6, a, b, 30.0)
    rng = np.random.default_rng(3)
    lo = rng.uniform(1.0, 1.45, x.shape[0])
    hi = lo + rng.uniform(0.01, 0.05, lo.size)
    flux = rng.uniform(0.5, 4.0, lo.size)
    ra, dec = to_sky(grid, x, y)
    r = build_cube(ra, dec, lo, hi, flux, np.ones(lo.size), grid)
    bin_width = 0.1
    pixel_volume = a * b * (hi - lo) / bin_width  # in voxel volumes
    filled = r.weight > 0
    assert np.sum(r.weight, dtype=np.float64) == pytest.approx(pixel_volume.sum(), rel=1e-6)
    assert np.sum(r.sci[filled].astype(np.float64) * r.weight[filled]) == pytest.approx(
        np.sum(flux * pixel_volume), rel=1e-6)


def test_linear_gradient():
    """f = 2 + 0.3 x - 0.2 y + 5 (wl - 1.25) (x, y in spaxels, wl in um); each pixel holds
    the mean of f over itself, i.e. f at its centre. In a voxel covered exactly (weight 1)
    the voxel's mean of f is f at its centre, and each pixel's centre is within half its
    extent along each axis of every point it shares with the voxel: the cube can miss f at
    the voxel centre by at most 0.3 hx + 0.2 hy + 5 hw, hx, hy, hw the pixels' half extents."""
    grid = make_grid(nx=9, ny=7)
    a, b, angle, dw = 0.3, 0.2, 30.0, 0.01
    x, y, cx, cy = tiling((4.0, 3.0), 7.0, a, b, angle)
    lo, hi = slices(0.95, 1.56, dw)
    n_wl = lo.size
    x, y, lo, hi = expand(x, y, lo, hi)
    cx, cy = np.repeat(cx, n_wl), np.repeat(cy, n_wl)

    def f(xx, yy, wl):
        return 2.0 + 0.3 * xx - 0.2 * yy + 5.0 * (wl - 1.25)

    ra, dec = to_sky(grid, x, y)
    r = build_cube(ra, dec, lo, hi, f(cx, cy, 0.5 * (lo + hi)), np.ones(lo.size), grid)
    np.testing.assert_allclose(r.weight, 1.0, atol=1e-6)
    th = math.radians(angle)
    hx = 0.5 * (a * math.cos(th) + b * math.sin(th))
    hy = 0.5 * (a * math.sin(th) + b * math.cos(th))
    bound = 0.3 * hx + 0.2 * hy + 5.0 * dw / 2
    w, yy, xx = np.meshgrid(grid.wavelengths, np.arange(grid.ny), np.arange(grid.nx), indexing="ij")
    error = np.abs(r.sci - f(xx, yy, w))
    assert error.max() <= bound + 1e-5, (error.max(), bound)
    assert np.median(error) < 0.002  # observed 1e-4 (max 3e-4): the pixels' offsets mostly cancel


def test_overlap_of_a_diamond_on_a_spaxel_corner():
    """A square rotated 45 degrees, half-diagonal r = 1.2 spaxels, centred on the corner
    shared by spaxels (2,2), (3,2), (2,3), (3,3): each of those gets r^2/2 - (r-1)^2 =
    0.68, each of their 8 neighbours along the diagonals' axes (r-1)^2/2 = 0.02."""
    grid = make_grid()
    r_half = 1.2
    x = 2.5 + np.array([[r_half, 0.0, -r_half, 0.0]])
    y = 2.5 + np.array([[0.0, r_half, 0.0, -r_half]])
    ra, dec = to_sky(grid, x, y)
    res = build_cube(ra, dec, [EDGES[0]], [EDGES[1]], [1.0], [1.0], grid)
    expected = np.zeros((grid.ny, grid.nx))
    expected[2:4, 2:4] = r_half**2 / 2 - (r_half - 1) ** 2
    for iy, ix in [(2, 1), (3, 1), (2, 4), (3, 4), (1, 2), (1, 3), (4, 2), (4, 3)]:
        expected[iy, ix] = (r_half - 1) ** 2 / 2
    np.testing.assert_allclose(res.weight[0], expected, atol=1e-6)
    assert res.weight[0].sum() == pytest.approx(2 * r_half**2, rel=1e-6)
    assert np.all(res.weight[1:] == 0)


def random_convex_quads(rng, m):
    """Convex quadrilaterals (4, m) near the unit square at the origin, either sense."""
    angles = np.sort(rng.uniform(0, 2 * np.pi, (m, 4)), axis=1)
    radius = rng.uniform(0.2, 1.2, (m, 1))
    centre = rng.uniform(-1.0, 1.0, (m, 2))
    x = centre[:, :1] + radius * np.cos(angles) * rng.uniform(0.5, 1.5, (m, 1))
    y = centre[:, 1:] + radius * np.sin(angles)
    flip = rng.random(m) < 0.5
    x[flip], y[flip] = x[flip, ::-1], y[flip, ::-1]
    return x.T.copy(), y.T.copy()


def test_overlap_matches_shapely():
    shapely = pytest.importorskip("shapely")
    rng = np.random.default_rng(7)
    px, py = random_convex_quads(rng, 400)
    ours = _square_overlap(px, py)
    box = shapely.box(-0.5, -0.5, 0.5, 0.5)
    theirs = [shapely.Polygon(np.c_[px[:, j], py[:, j]]).intersection(box).area for j in range(px.shape[1])]
    np.testing.assert_allclose(ours, theirs, atol=1e-12)
    assert np.count_nonzero(ours) > 100 and np.count_nonzero(ours == 0) > 10


def test_general_clipping_pass_agrees():
    """The fallback pass (for polygons rounding made non-convex) clips as the fast one,
    and takes over the polygons that cross a side more than twice."""
    rng = np.random.default_rng(11)
    px, py = random_convex_quads(rng, 300)
    for sign in (1.0, -1.0):
        fast_u, fast_v = _clip(px, py, sign, along_x=True)
        slow_u, slow_v = _clip_general(px, py, sign * 0.5, sign * px <= 0.5)
        np.testing.assert_allclose(np.abs(_square_overlap(fast_u, fast_v)),
                                   np.abs(_square_overlap(slow_u, slow_v)), atol=1e-12)
        assert np.all(sign * fast_u <= 0.5 + 1e-12)
    # a zigzag crossing x = 0.5 four times, beside quadrilaterals padded to 5 vertices:
    # left of the line it is the 0.3 x 0.4 rectangle less the notch's part (0.2 wide, 0.16 high)
    zx = np.array([0.2, 0.8, 0.3, 0.8, 0.2])
    zy = np.array([-0.2, -0.2, 0.0, 0.2, 0.2])
    qx, qy = px[:, :3], py[:, :3]
    allx = np.column_stack([np.vstack([qx, qx[-1:]]), zx])
    ally = np.column_stack([np.vstack([qy, qy[-1:]]), zy])
    left_u, left_v = _clip(allx, ally, 1.0, along_x=True)
    area = np.abs(_square_overlap(left_u, left_v))
    assert area[-1] == pytest.approx(0.3 * 0.4 - 0.5 * 0.2 * 0.16, abs=1e-12)
    np.testing.assert_allclose(area[:3], np.abs(_square_overlap(qx, qy)), atol=1e-12)


def test_variance_of_equal_weights_is_var_over_n():
    grid = make_grid()
    n = 4
    x, y = square(5.0, 1.0)
    ra, dec = to_sky(grid, np.repeat(x, n, axis=0), np.repeat(y, n, axis=0))
    flux = np.array([1.0, 2.0, 3.0, 6.0])
    r = build_cube(ra, dec, np.full(n, EDGES[3]), np.full(n, EDGES[4]), flux, np.full(n, 0.8), grid)
    assert r.sci[3, 1, 5] == pytest.approx(3.0, rel=1e-6)
    assert r.var[3, 1, 5] == pytest.approx(0.8 / n, rel=1e-6)
    assert r.weight[3, 1, 5] == pytest.approx(n, rel=1e-6)


def test_variance_of_unequal_weights():
    """Weights 1 and 0.5 (a pixel covering half the spaxel): var = (v1 + v2/4) / 1.5^2."""
    grid = make_grid()
    x1, y1 = square(5.0, 1.0)
    x2 = np.array([[4.5, 5.0, 5.0, 4.5]])
    ra, dec = to_sky(grid, np.vstack([x1, x2]), np.vstack([y1, y1]))
    r = build_cube(ra, dec, [EDGES[0]] * 2, [EDGES[1]] * 2, [2.0, 5.0], [0.4, 1.2], grid)
    assert r.weight[0, 1, 5] == pytest.approx(1.5, rel=1e-6)
    assert r.sci[0, 1, 5] == pytest.approx((2.0 + 0.5 * 5.0) / 1.5, rel=1e-6)
    assert r.var[0, 1, 5] == pytest.approx((0.4 + 0.25 * 1.2) / 1.5**2, rel=1e-6)


def test_unusable_pixels_are_left_out():
    grid = make_grid()
    x, y = square(3.0, 2.0)
    ra, dec = to_sky(grid, np.repeat(x, 3, axis=0), np.repeat(y, 3, axis=0))
    lo, hi = [EDGES[0]] * 3, [EDGES[1]] * 3
    r = build_cube(ra, dec, lo, hi, [1.0, np.nan, 3.0], [1.0, 1.0, 1.0], grid)
    assert r.sci[0, 2, 3] == pytest.approx(2.0) and r.weight[0, 2, 3] == pytest.approx(2.0)
    r = build_cube(ra, dec, lo, hi, [1.0, 2.0, 3.0], [1.0, 1.0, 1.0], grid, valid=[True, True, False])
    assert r.sci[0, 2, 3] == pytest.approx(1.5) and r.weight[0, 2, 3] == pytest.approx(2.0)


@pytest.mark.parametrize("ra0, dec0", [(83.8, -5.4), (359.99, 62.0)])
def test_fits_cards_agree_with_astropy(ra0, dec0):
    grid = CubeGrid(ra0=ra0, dec0=dec0, spaxel=0.5, nx=41, ny=33, x0=12.3, y0=20.7, wl_edges=EDGES)
    cards = grid.fits_cards()
    assert cards["CDELT1"] == -0.5 / 3600 and cards["CDELT2"] == 0.5 / 3600
    assert cards["CRPIX1"] == 13.3 and cards["CRPIX2"] == 21.7
    w = WCS(cards)
    x = np.array([0.0, 40.0, 12.3, 3.0, 40.0, 0.0])
    y = np.array([0.0, 32.0, 20.7, 17.0, 0.0, 32.0])
    k = np.array([0.0, 4.0, 2.0, 1.0, 3.0, 0.0])
    ra_w, dec_w, wl_w = w.all_pix2world(x, y, k, 0)
    ra, dec = grid.cube_to_sky(x, y)
    assert np.all(np.abs((ra_w - ra + 180) % 360 - 180) < 1e-9)
    np.testing.assert_allclose(dec_w, dec, atol=1e-9, rtol=0)
    np.testing.assert_allclose(wl_w, grid.wavelengths[k.astype(int)] * 1e-6, rtol=1e-12)  # astropy works in m
    # x increases toward the West (RA decreases), y toward the North
    assert (ra[3] - ra[2] + 180) % 360 - 180 > 0 and dec[0] < dec[5]
    xb, yb = grid.sky_to_cube(ra, dec)
    np.testing.assert_allclose(xb, x, atol=1e-8)
    np.testing.assert_allclose(yb, y, atol=1e-8)


def test_fits_cards_need_uniform_bins():
    grid = make_grid(edges=np.array([1.0, 1.1, 1.3]))
    with pytest.raises(ValueError, match="uniform"):
        grid.fits_cards()


def test_cube_grid_covers_the_footprints():
    rng = np.random.default_rng(5)
    ra = 150.0 + rng.uniform(-1, 1, (50, 4)) / 3600
    dec = 2.0 + rng.uniform(-0.6, 0.8, (50, 4)) / 3600
    grid = cube_grid(ra, dec, 4.9, 5.3, 0.13, 0.002)
    x, y = grid.sky_to_cube(ra, dec)
    assert x.min() >= 0.0 - 1e-9 and x.max() <= grid.nx - 1 + 1e-9  # half a spaxel inside the edges
    assert y.min() >= 0.0 - 1e-9 and y.max() <= grid.ny - 1 + 1e-9
    # the smallest: one spaxel fewer could not hold the extent plus the margins
    assert grid.nx - 1 < x.max() - x.min() + 1 and grid.ny - 1 < y.max() - y.min() + 1
    assert grid.nw == 200 and grid.wl_edges[0] == 4.9
    assert grid.wl_edges[-1] == pytest.approx(5.3) and grid.fits_cards()["CDELT3"] == pytest.approx(0.002)
    # slack shared equally: the corners' extent is centred in the grid
    assert (x.min() + x.max()) / 2 == pytest.approx((grid.nx - 1) / 2)
    assert (y.min() + y.max()) / 2 == pytest.approx((grid.ny - 1) / 2)
