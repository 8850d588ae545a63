"""The kernel of an IFU cube build: detector pixels drizzled into a sky-aligned
(wavelength, y, x) cube, the 3-D drizzle (``cube_build`` with ``weighting='drizzle'``,
Law et al. 2023), as pure functions over numpy arrays.

Each detector pixel is a convex quadrilateral on the sky (its four corners, in order
around it) times a wavelength interval. Its weight in a voxel is the volume they share
in units of the voxel's volume: the area of the footprint's intersection with the
spaxel square, on the cube's tangent plane, over the spaxel's area, times the length
of the wavelength intervals' overlap over the bin width. Areas are exact (the
quadrilateral clipped by Sutherland-Hodgman against the square, then the shoelace
formula), computed for all (pixel, spaxel) candidate pairs at once in bounded chunks.
A voxel is the weighted mean of the surface brightness of the pixels overlapping it,
``sum(w f) / sum(w)``, its variance ``sum(w^2 var) / sum(w)^2``. A voxel no pixel
overlaps (by more than 1e-9 of a spaxel's area: less is the projection's rounding) is
NaN and flagged DO_NOT_USE | NON_SCIENCE. Neighbouring voxels share pixels, so their
noise is correlated (the variance above ignores it).

Conventions: the cube's spatial axes are a gnomonic (TAN) projection about its
reference point; spaxel coordinates are 0-based with centres on integers (spaxel ``i``
spans ``i - 0.5 .. i + 0.5``); ``x`` increases toward the West (RA decreases, FITS
``CDELT1 < 0``) and ``y`` toward the North. Arrays are ``(nw, ny, nx)``; surface
brightness (MJy/sr) in and out. Angles in degrees, spaxel sizes in arcsec, wavelengths
in micron.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from shared.datamodels.dqflags import PIXEL

__all__ = [
    "EMPTY_VOXEL",
    "CubeGrid",
    "CubeResult",
    "build_cube",
    "cube_grid",
]

EMPTY_VOXEL = np.uint32(PIXEL["DO_NOT_USE"] | PIXEL["NON_SCIENCE"])  # DQ of a voxel no pixel overlaps
_ARCSEC = 3600.0
# overlaps below this (in spaxel areas) are rounding, not geometry: a footprint whose edge
# lies on a spaxel's, carried to the sky and back, must not leak into the next spaxel
_MIN_AREA = 1e-9
_PAIRS_PER_CHUNK = 32_768  # (pixel, spaxel) pairs clipped at once: tens of MB of working arrays


@dataclass(frozen=True)
class CubeGrid:
    """A sky-aligned cube grid.

    The spatial axes are the gnomonic (TAN) projection about ``(ra0, dec0)``: standard
    coordinates ``xi`` (toward the East) and ``eta`` (toward the North), in arcsec, give
    ``x = x0 - xi / spaxel`` and ``y = y0 + eta / spaxel``, so ``x`` increases toward
    the West (RA decreases: FITS ``CDELT1 = -spaxel / 3600``) and ``y`` toward the
    North. Spaxels are squares of ``spaxel`` arcsec on the tangent plane.

    Attributes
    ----------
    ra0, dec0 : float
        Tangent point, degrees.
    spaxel : float
        Spaxel side, arcsec.
    nx, ny : int
        Number of spaxels along x and y.
    x0, y0 : float
        0-based spaxel coordinates of the tangent point (FITS ``CRPIX - 1``).
    wl_edges : ndarray (nw + 1,)
        Wavelength bin edges, micron, strictly increasing.
    """

    ra0: float
    dec0: float
    spaxel: float
    nx: int
    ny: int
    x0: float
    y0: float
    wl_edges: np.ndarray

    def __post_init__(self):
        edges = np.array(self.wl_edges, dtype=np.float64)
        if edges.ndim != 1 or edges.size < 2 or not np.all(np.diff(edges) > 0):
            raise ValueError("wl_edges must be a strictly increasing 1-D array of at least two edges")
        if self.nx < 1 or self.ny < 1 or not self.spaxel > 0:
            raise ValueError(f"bad cube grid: nx={self.nx}, ny={self.ny}, spaxel={self.spaxel}")
        edges.flags.writeable = False
        object.__setattr__(self, "wl_edges", edges)

    @property
    def nw(self) -> int:
        """Number of wavelength bins."""
        return self.wl_edges.size - 1

    @property
    def shape(self) -> tuple[int, int, int]:
        """The cube's array shape ``(nw, ny, nx)``."""
        return (self.nw, self.ny, self.nx)

    @property
    def wavelengths(self) -> np.ndarray:
        """Bin centres (nw,), micron."""
        return 0.5 * (self.wl_edges[:-1] + self.wl_edges[1:])

    def sky_to_cube(self, ra, dec) -> tuple[np.ndarray, np.ndarray]:
        """0-based spaxel coordinates ``(x, y)`` of sky positions ``ra, dec`` (degrees,
        any broadcastable shapes). NaN for positions 90 degrees or more from the tangent
        point, where the projection is undefined."""
        xi, eta = _gnomonic(ra, dec, self.ra0, self.dec0)
        return self.x0 - xi / self.spaxel, self.y0 + eta / self.spaxel

    def cube_to_sky(self, x, y) -> tuple[np.ndarray, np.ndarray]:
        """Sky positions ``(ra, dec)`` (degrees, RA in [0, 360)) of 0-based spaxel
        coordinates ``x, y``: the inverse of :meth:`sky_to_cube`."""
        xi = (self.x0 - np.asarray(x, np.float64)) * self.spaxel
        eta = (np.asarray(y, np.float64) - self.y0) * self.spaxel
        return _gnomonic_inverse(xi, eta, self.ra0, self.dec0)

    def fits_cards(self) -> dict:
        """The cube's FITS WCS keywords (axes 1, 2, 3 = x, y, wavelength; CRPIX 1-based).

        Only uniform wavelength bins are described (``CTYPE3 = 'WAVE'`` with a constant
        ``CDELT3``, ``CRVAL3`` the centre of the first bin); a grid with non-uniform
        edges (which would need ``WAVE-TAB``) raises ValueError.
        """
        widths = np.diff(self.wl_edges)
        step = (self.wl_edges[-1] - self.wl_edges[0]) / self.nw
        if not np.allclose(widths, step, rtol=1e-9, atol=0.0):
            raise ValueError("fits_cards describes uniform wavelength bins only (no WAVE-TAB)")
        cards = {
            "WCSAXES": 3,
            "CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CTYPE3": "WAVE",
            "CUNIT1": "deg", "CUNIT2": "deg", "CUNIT3": "um",
            "CRPIX1": self.x0 + 1.0, "CRPIX2": self.y0 + 1.0, "CRPIX3": 1.0,
            "CRVAL1": float(self.ra0), "CRVAL2": float(self.dec0), "CRVAL3": float(self.wavelengths[0]),
            "CDELT1": -self.spaxel / _ARCSEC, "CDELT2": self.spaxel / _ARCSEC, "CDELT3": float(step),
            "RADESYS": "ICRS",
        }
        for i in range(1, 4):
            for j in range(1, 4):
                cards[f"PC{i}_{j}"] = 1.0 if i == j else 0.0
        return cards


@dataclass(frozen=True)
class CubeResult:
    """A drizzled cube, all arrays ``(nw, ny, nx)``.

    ``sci`` float32 surface brightness (NaN where no pixel landed); ``var`` float32 its
    variance (NaN there too); ``weight`` float32 the summed weights (the WMAP, in voxel
    volumes: 1 where detector pixels exactly cover a voxel once); ``dq`` uint32,
    :data:`EMPTY_VOXEL` where the weight is 0.
    """

    sci: np.ndarray
    var: np.ndarray
    weight: np.ndarray
    dq: np.ndarray


def cube_grid(ra_corners, dec_corners, wl_min: float, wl_max: float, spaxel: float, wl_step: float, *,
              ra0: float | None = None, dec0: float | None = None) -> CubeGrid:
    """The smallest grid covering a set of footprints.

    Parameters
    ----------
    ra_corners, dec_corners : array_like, degrees
        Footprint corners (any shape, e.g. (n, 4)); non-finite values are ignored.
    wl_min, wl_max : float
        Wavelength range to cover, micron.
    spaxel : float
        Spaxel side, arcsec.
    wl_step : float
        Bin width, micron: the edges run from ``wl_min`` in steps of ``wl_step`` to the
        first edge at or beyond ``wl_max`` (within 1e-6 of a step).
    ra0, dec0 : float, optional
        Tangent point, degrees; by default the mean direction of the corners.

    Returns
    -------
    CubeGrid
        Covering every corner with at least half a spaxel to spare on each side, the
        spare room shared equally between the two sides of each axis.
    """
    ra = np.asarray(ra_corners, np.float64).ravel()
    dec = np.asarray(dec_corners, np.float64).ravel()
    ok = np.isfinite(ra) & np.isfinite(dec)
    if not ok.any():
        raise ValueError("no finite footprint corner")
    if not (spaxel > 0 and wl_step > 0 and wl_max > wl_min):
        raise ValueError(f"bad grid parameters: spaxel={spaxel}, wl_step={wl_step}, range {wl_min}..{wl_max}")
    ra, dec = ra[ok], dec[ok]
    if ra0 is None or dec0 is None:
        r, d = np.radians(ra), np.radians(dec)
        v = np.array([np.cos(d) * np.cos(r), np.cos(d) * np.sin(r), np.sin(d)]).sum(axis=1)
        mean_ra = math.degrees(math.atan2(v[1], v[0])) % 360.0
        mean_dec = math.degrees(math.atan2(v[2], math.hypot(v[0], v[1])))
        ra0 = mean_ra if ra0 is None else ra0
        dec0 = mean_dec if dec0 is None else dec0
    xi, eta = _gnomonic(ra, dec, ra0, dec0)
    if not (np.isfinite(xi).all() and np.isfinite(eta).all()):
        raise ValueError("footprint corners 90 degrees or more from the tangent point")
    nx, x0 = _axis(-xi / spaxel)
    ny, y0 = _axis(eta / spaxel)
    ratio = (wl_max - wl_min) / wl_step
    nw = round(ratio) if abs(ratio - round(ratio)) < 1e-6 else math.ceil(ratio)
    edges = wl_min + wl_step * np.arange(max(nw, 1) + 1)
    return CubeGrid(ra0=float(ra0), dec0=float(dec0), spaxel=float(spaxel), nx=nx, ny=ny, x0=x0, y0=y0,
                    wl_edges=edges)


def _axis(u: np.ndarray) -> tuple[int, float]:
    """Spaxel count and 0-based reference pixel of an axis covering offsets ``u``
    (spaxels from the tangent point) with half a spaxel margin on both sides."""
    lo, hi = float(u.min()) - 0.5, float(u.max()) + 0.5
    width = hi - lo
    n = max(math.ceil(width - 1e-9), 1)
    # spaxel 0 starts at -0.5: put `lo` there, less half the slack
    return n, -0.5 - lo + 0.5 * (n - width)


def build_cube(ra_corners, dec_corners, wl_lo, wl_hi, flux, var, grid: CubeGrid, *, valid=None) -> CubeResult:
    """Drizzle detector pixels into ``grid`` (see the module docstring).

    Parameters
    ----------
    ra_corners, dec_corners : array_like (n, 4), degrees
        Sky corners of each pixel's footprint, a convex quadrilateral, in order around it
        (either sense).
    wl_lo, wl_hi : array_like (n,), micron
        Wavelength range of each pixel; a pixel with ``wl_hi <= wl_lo`` gets no weight.
    flux : array_like (n,)
        Surface brightness (e.g. MJy/sr).
    var : array_like (n,)
        Its variance (flux units squared).
    grid : CubeGrid
    valid : array_like (n,) of bool, optional
        Pixels to use; pixels with a non-finite corner, wavelength, flux or variance are
        never used (by default that is the only test).

    Returns
    -------
    CubeResult
        ``sci = sum(w f) / sum(w)``, ``var = sum(w^2 var) / sum(w)^2``, ``weight = sum(w)``
        with ``w`` the overlap volume in voxel volumes; NaN and :data:`EMPTY_VOXEL` where
        ``sum(w) == 0``.
    """
    ra = np.asarray(ra_corners, np.float64)
    dec = np.asarray(dec_corners, np.float64)
    if ra.ndim != 2 or ra.shape[1] != 4 or dec.shape != ra.shape:
        raise ValueError(f"corners must be (n, 4), got {ra.shape} and {dec.shape}")
    n = ra.shape[0]
    wl_lo, wl_hi, flux, var = (np.broadcast_to(np.asarray(a, np.float64), (n,)) for a in (wl_lo, wl_hi, flux, var))
    x, y = grid.sky_to_cube(ra, dec)
    x_t, y_t = np.ascontiguousarray(x.T), np.ascontiguousarray(y.T)  # (4, n), see _square_overlap
    use = (np.isfinite(x).all(axis=1) & np.isfinite(y).all(axis=1) & np.isfinite(wl_lo) & np.isfinite(wl_hi)
           & np.isfinite(flux) & np.isfinite(var) & (wl_hi > wl_lo))
    if valid is not None:
        use &= np.broadcast_to(np.asarray(valid, bool), (n,))
    # candidate spaxels: those the footprint's bounding box overlaps (i - 0.5 < xmax, i + 0.5 > xmin)
    ix0 = np.zeros(n, np.int64)
    ix1 = np.full(n, -1, np.int64)
    iy0, iy1 = ix0.copy(), ix1.copy()
    with np.errstate(invalid="ignore"):
        ix0[use] = np.maximum(np.floor(x[use].min(axis=1) + 0.5), 0)
        ix1[use] = np.minimum(np.ceil(x[use].max(axis=1) + 0.5) - 1, grid.nx - 1)
        iy0[use] = np.maximum(np.floor(y[use].min(axis=1) + 0.5), 0)
        iy1[use] = np.minimum(np.ceil(y[use].max(axis=1) + 0.5) - 1, grid.ny - 1)
    # and the wavelength bins the pixel's range overlaps (e_k < wl_hi, e_k+1 > wl_lo)
    edges = grid.wl_edges
    k0 = np.maximum(np.searchsorted(edges, wl_lo, side="right") - 1, 0)
    k1 = np.minimum(np.searchsorted(edges, wl_hi, side="left") - 1, grid.nw - 1)
    nbx = np.maximum(ix1 - ix0 + 1, 0)
    nby = np.maximum(iy1 - iy0 + 1, 0)
    nbk = np.maximum(k1 - k0 + 1, 0)
    n_pairs = np.where(use, nbx * nby * (nbk > 0), 0)

    n_vox = grid.nw * grid.ny * grid.nx
    sum_w = np.zeros(n_vox)
    sum_wf = np.zeros(n_vox)
    sum_w2v = np.zeros(n_vox)
    # in wavelength order, so that each chunk's voxels are a short run of the cube
    pixels = np.flatnonzero(n_pairs)
    pixels = pixels[np.argsort(k0[pixels], kind="stable")]
    ends = np.cumsum(n_pairs[pixels])
    start = 0
    while start < pixels.size:
        done = ends[start - 1] if start else 0
        stop = max(int(np.searchsorted(ends, done + _PAIRS_PER_CHUNK, side="right")), start + 1)
        p = pixels[start:stop]
        start = stop
        # every (pixel, candidate spaxel) pair of the chunk
        counts = n_pairs[p]
        rep = np.repeat(np.arange(p.size), counts)
        offset = np.arange(rep.size) - np.repeat(np.cumsum(counts) - counts, counts)
        pp = p[rep]
        sx = ix0[pp] + offset % nbx[pp]
        sy = iy0[pp] + offset // nbx[pp]
        area = _square_overlap(x_t[:, pp] - sx, y_t[:, pp] - sy)
        hit = area > _MIN_AREA
        pp, area, spaxel_index = pp[hit], area[hit], (sy * grid.nx + sx)[hit]
        # times every wavelength bin of the pixel
        counts = nbk[pp]
        rep = np.repeat(np.arange(pp.size), counts)
        k = k0[pp][rep] + np.arange(rep.size) - np.repeat(np.cumsum(counts) - counts, counts)
        pk = pp[rep]
        overlap = np.minimum(wl_hi[pk], edges[k + 1]) - np.maximum(wl_lo[pk], edges[k])
        w = area[rep] * np.clip(overlap, 0.0, None) / (edges[k + 1] - edges[k])
        if not w.size:
            continue
        voxel = k * (grid.ny * grid.nx) + spaxel_index[rep]
        first, last = int(voxel.min()), int(voxel.max()) + 1
        voxel -= first
        run = slice(first, last)
        sum_w[run] += np.bincount(voxel, weights=w, minlength=last - first)
        sum_wf[run] += np.bincount(voxel, weights=w * flux[pk], minlength=last - first)
        sum_w2v[run] += np.bincount(voxel, weights=w * w * var[pk], minlength=last - first)

    empty = sum_w <= 0
    safe = np.where(empty, 1.0, sum_w)
    sci = np.where(empty, np.nan, sum_wf / safe)
    out_var = np.where(empty, np.nan, sum_w2v / safe**2)
    dq = np.where(empty, EMPTY_VOXEL, np.uint32(0)).astype(np.uint32)
    shape = grid.shape
    return CubeResult(sci=sci.reshape(shape).astype(np.float32), var=out_var.reshape(shape).astype(np.float32),
                      weight=sum_w.reshape(shape).astype(np.float32), dq=dq.reshape(shape))


def _square_overlap(px: np.ndarray, py: np.ndarray) -> np.ndarray:
    """Area of the intersection of convex polygons with the unit square centred on the origin.

    ``px, py`` (k, m): column ``j`` holds polygon ``j``'s k vertices in order (either
    sense; repeated vertices allowed); vertex-major, so that every step works on long
    contiguous rows. Sutherland-Hodgman clipping by the square's four sides, then the
    shoelace formula. Returns (m,) areas, in units of the square's.
    """
    px, py = _clip(px, py, +1.0, along_x=True)
    px, py = _clip(px, py, -1.0, along_x=True)
    px, py = _clip(px, py, +1.0, along_x=False)
    px, py = _clip(px, py, -1.0, along_x=False)
    return np.abs(_shoelace(px, py))


def _clip(px: np.ndarray, py: np.ndarray, sign: float, *, along_x: bool) -> tuple[np.ndarray, np.ndarray]:
    """One Sutherland-Hodgman pass: polygons ``px, py`` (k, m) cut by the half-plane
    ``sign * coordinate <= 0.5`` (coordinate ``x`` when ``along_x``, else ``y``).

    Going round a polygon, each edge (v_i, v_i+1) contributes v_i if it is inside and its
    crossing of the line if it has one. Returns (k + 1, m) arrays (taller only if some
    polygon crosses the line more than twice, which a convex one does not), each polygon
    padded with copies of its last vertex (which add no area); one with nothing left is
    all zero.
    """
    u, v = (px, py) if along_x else (py, px)  # u: the clipped coordinate
    k, m = u.shape
    inside = sign * u <= 0.5
    if inside.all():
        return px, py
    edge = sign * 0.5
    enter = np.roll(inside, -1, axis=0) & ~inside  # edge i goes from outside to inside
    n_in = np.add.reduce(inside, axis=0, dtype=np.intp)
    n_enter = np.add.reduce(enter, axis=0, dtype=np.intp)
    # a convex polygon crossing the line enters it once, by edge e, leaves it by edge
    # e + n_in, and its inside vertices are the run between:
    # [entry, v_e+1, ..., v_e+n_in, exit, exit, ...]
    e = enter.argmax(axis=0)
    columns = np.arange(m)
    u_flat, v_flat = u.ravel(), v.ravel()

    def crossing(i: np.ndarray) -> np.ndarray:  # the other coordinate where edge i meets the line
        a, b = i * m + columns, (i + 1) % k * m + columns
        with np.errstate(invalid="ignore", divide="ignore"):
            return v_flat[a] + (edge - u_flat[a]) / (u_flat[b] - u_flat[a]) * (v_flat[b] - v_flat[a])

    slot = np.arange(k + 1)[:, None]
    index = (e[None, :] + slot) % k * m + columns
    # no crossing: all inside (e = 0, so the polygon as it was, closed) or none (all zero)
    none_left = n_in == 0
    all_in = n_in == k
    after = slot > n_in[None, :]
    new_u = np.where(after, np.where(none_left, 0.0, edge), u_flat[index])
    new_v = np.where(after, np.where(none_left, 0.0, crossing((e + n_in) % k)), v_flat[index])
    new_u[0] = np.where(all_in, u[0], np.where(none_left, 0.0, edge))
    new_v[0] = np.where(all_in, v[0], np.where(none_left, 0.0, crossing(e)))
    # entering more than once (a polygon made slightly non-convex by rounding): the general pass
    odd = n_enter > 1
    if odd.any():
        odd_u, odd_v = _clip_general(u[:, odd], v[:, odd], edge, inside[:, odd])
        height = max(k + 1, odd_u.shape[0])
        new_u, new_v, odd_u, odd_v = (_pad(a, height) for a in (new_u, new_v, odd_u, odd_v))
        new_u[:, odd], new_v[:, odd] = odd_u, odd_v
    return (new_u, new_v) if along_x else (new_v, new_u)


def _clip_general(u: np.ndarray, v: np.ndarray, edge: float, inside: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The pass of :func:`_clip` for any polygons (k, m): every edge's kept points, compacted."""
    u, v, inside = u.T, v.T, inside.T
    m, k = u.shape
    u_next, v_next = np.roll(u, -1, axis=1), np.roll(v, -1, axis=1)
    cross = inside != np.roll(inside, -1, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.where(cross, (edge - u) / (u_next - u), 0.0)
    out_u, out_v = np.empty((m, 2 * k)), np.empty((m, 2 * k))
    keep = np.empty((m, 2 * k), bool)
    out_u[:, 0::2], out_v[:, 0::2], keep[:, 0::2] = u, v, inside
    out_u[:, 1::2], out_v[:, 1::2], keep[:, 1::2] = edge, v + t * (v_next - v), cross
    position = np.cumsum(keep, axis=1) - 1
    n_kept = position[:, -1] + 1
    width = max(int(n_kept.max()), 1)
    rows = np.broadcast_to(np.arange(m)[:, None], keep.shape)
    new_u, new_v = np.zeros((m, width)), np.zeros((m, width))
    new_u[rows[keep], position[keep]] = out_u[keep]
    new_v[rows[keep], position[keep]] = out_v[keep]
    last = np.maximum(n_kept - 1, 0)
    pad = np.arange(width)[None, :] > last[:, None]
    new_u = np.where(pad, new_u[np.arange(m), last][:, None], new_u)
    new_v = np.where(pad, new_v[np.arange(m), last][:, None], new_v)
    return new_u.T, new_v.T


def _pad(a: np.ndarray, height: int) -> np.ndarray:
    """Polygons ``a`` (k, m) padded to ``height`` vertices with copies of their last one."""
    extra = height - a.shape[0]
    return np.concatenate([a, np.repeat(a[-1:], extra, axis=0)]) if extra > 0 else a


def _shoelace(px: np.ndarray, py: np.ndarray) -> np.ndarray:
    """Signed areas (m,) of polygons ``px, py`` (k, m), positive counter-clockwise."""
    return 0.5 * np.sum(px * np.roll(py, -1, axis=0) - np.roll(px, -1, axis=0) * py, axis=0)


def _gnomonic(ra, dec, ra0: float, dec0: float) -> tuple[np.ndarray, np.ndarray]:
    """Standard coordinates ``(xi, eta)``, arcsec, of ``ra, dec`` (degrees) on the tangent
    plane at ``(ra0, dec0)``: ``xi`` toward the East, ``eta`` toward the North. NaN at or
    beyond 90 degrees from the tangent point."""
    a = np.radians(np.asarray(ra, np.float64) - ra0)
    d = np.radians(np.asarray(dec, np.float64))
    d0 = math.radians(dec0)
    cos_d = np.cos(d)
    denominator = np.sin(d) * math.sin(d0) + cos_d * math.cos(d0) * np.cos(a)
    denominator = np.where(denominator > 0, denominator, np.nan)
    xi = cos_d * np.sin(a) / denominator
    eta = (np.sin(d) * math.cos(d0) - cos_d * math.sin(d0) * np.cos(a)) / denominator
    scale = math.degrees(1.0) * _ARCSEC
    return xi * scale, eta * scale


def _gnomonic_inverse(xi, eta, ra0: float, dec0: float) -> tuple[np.ndarray, np.ndarray]:
    """``(ra, dec)`` degrees of standard coordinates ``xi, eta`` (arcsec) about ``(ra0, dec0)``."""
    scale = math.radians(1.0 / _ARCSEC)
    xi = np.asarray(xi, np.float64) * scale
    eta = np.asarray(eta, np.float64) * scale
    d0 = math.radians(dec0)
    across = math.cos(d0) - eta * math.sin(d0)
    ra = (ra0 + np.degrees(np.arctan2(xi, across))) % 360.0
    dec = np.degrees(np.arctan2(math.sin(d0) + eta * math.cos(d0), np.hypot(xi, across)))
    return ra, dec
