"""Resample images onto a common sky grid (drizzle), and back (blot).

Pure functions over numpy arrays and astropy WCSs (TAN, or TAN-SIP as stage 2 writes it:
:func:`shared.imaging_wcs.fits_approximation`): no files, no data models. Stage 2 uses :func:`resample` for
the single-exposure ``_i2d``; stage 3 for the Level-3 ``_i2d`` and, with :func:`blot` and
:func:`derivative`, for outlier detection.

Conventions: pixel coordinates are 0-based with pixel centres on integers (pixel ``i``
spans ``i - 0.5 .. i + 0.5``); arrays are ``(ny, nx)``; images are surface brightness
(e.g. MJy/sr), so resampling preserves values, and flux is value times pixel solid angle.

Resampling uses the ``drizzle`` package (``Drizzle`` and ``calc_pixmap`` only). Each input
is drizzled on its own and the results are combined here, so that every input's weight
and variance can be propagated (see :func:`resample` for the variance approximation).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from astropy.wcs import WCS
from drizzle.resample import Drizzle
from drizzle.utils import calc_pixmap

from shared.datamodels.dqflags import PIXEL
from shared.wcs import pc_matrix

__all__ = [
    "WEIGHT_TYPES",
    "Contribution",
    "ResampleInput",
    "ResampleResult",
    "blot",
    "combine",
    "contribution",
    "derivative",
    "output_grid",
    "pixel_area_arcsec2",
    "pixel_scale_arcsec",
    "PIXMAP_STEP",
    "pixmap",
    "resample",
    "weight_map",
]

WEIGHT_TYPES = ("ivm", "exptime")
KERNELS = ("square", "point", "turbo", "gaussian", "lanczos2", "lanczos3")
_VARIANCES = ("var_rnoise", "var_poisson", "var_flat")


@dataclass(frozen=True)
class ResampleInput:
    """One image to resample.

    ``data`` (ny, nx) surface brightness; ``wcs`` maps its 0-based pixels to the sky;
    ``dq`` uint32 pixel flags (DO_NOT_USE pixels get no weight); variances (ny, nx) in
    data units squared, any of them may be None; ``exptime`` in seconds (the weight of
    ``weight_type="exptime"``, e.g. TMEASURE).
    """

    data: np.ndarray
    wcs: WCS
    dq: np.ndarray | None = None
    var_rnoise: np.ndarray | None = None
    var_poisson: np.ndarray | None = None
    var_flat: np.ndarray | None = None
    exptime: float = 1.0


@dataclass(frozen=True)
class ResampleResult:
    """The resampled image on the output grid, all arrays (ny, nx) but ``con``.

    ``data`` weighted mean of the inputs (``fillval`` where nothing landed); ``wht`` total
    weight; ``con`` int32 (ceil(n_inputs / 32), ny, nx) context: bit ``i % 32`` of plane
    ``i // 32`` set where input ``i`` contributed; variances resampled (NaN where nothing
    landed, or None when no input had them); ``err`` sqrt of their sum (NaN when none).
    """

    data: np.ndarray
    wht: np.ndarray
    con: np.ndarray
    var_rnoise: np.ndarray | None
    var_poisson: np.ndarray | None
    var_flat: np.ndarray | None
    err: np.ndarray
    n_inputs: int


# ---------------------------------------------------------------------------- geometry

def _sky_unit_vectors(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    ra, dec = np.radians(ra), np.radians(dec)
    return np.stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)], axis=-1)


def pixel_area_arcsec2(wcs: WCS, x: float, y: float) -> float:
    """Solid angle of the pixel at 0-based (x, y), arcsec², from the WCS Jacobian
    (distortion included)."""
    px = np.array([x - 0.5, x + 0.5, x, x])
    py = np.array([y, y, y - 0.5, y + 0.5])
    ra, dec = wcs.pixel_to_world_values(px, py)
    v = _sky_unit_vectors(np.asarray(ra), np.asarray(dec))
    dx, dy = v[1] - v[0], v[3] - v[2]
    return float(np.linalg.norm(np.cross(dx, dy))) * (180.0 / math.pi * 3600.0) ** 2


def pixel_scale_arcsec(wcs: WCS, shape: tuple[int, int] | None = None) -> float:
    """Linear pixel scale (sqrt of the pixel area), arcsec, at the centre of an image of
    ``shape`` (ny, nx); at the reference pixel when ``shape`` is None."""
    if shape is None:
        x, y = (float(c) - 1.0 for c in wcs.wcs.crpix)
    else:
        x, y = (shape[1] - 1) / 2.0, (shape[0] - 1) / 2.0
    return math.sqrt(pixel_area_arcsec2(wcs, x, y))


def _footprint(wcs: WCS, shape: tuple[int, int], step: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """RA, Dec of points along the outer pixel edges of an image (edges sampled every
    ``step`` pixels, so distortion is followed)."""
    ny, nx = shape
    xs = np.append(np.arange(-0.5, nx - 0.5, step), nx - 0.5)
    ys = np.append(np.arange(-0.5, ny - 0.5, step), ny - 0.5)
    x = np.concatenate([xs, xs, np.full(ys.size, -0.5), np.full(ys.size, nx - 0.5)])
    y = np.concatenate([np.full(xs.size, -0.5), np.full(xs.size, ny - 0.5), ys, ys])
    ra, dec = wcs.pixel_to_world_values(x, y)
    return np.asarray(ra, float), np.asarray(dec, float)


def output_grid(
    wcss: Sequence[WCS],
    shapes: Sequence[tuple[int, int]],
    *,
    pixel_scale: float | None = None,
    pixel_scale_ratio: float = 1.0,
    rotation: float | None = None,
) -> tuple[WCS, tuple[int, int]]:
    """A TAN grid covering every input.

    Parameters
    ----------
    wcss, shapes : sequences
        The inputs' WCSs and array shapes (ny, nx).
    pixel_scale : float, optional
        Output pixel scale, arcsec; default the median of the inputs' scales (at their
        centres) times ``pixel_scale_ratio``.
    pixel_scale_ratio : float
        Output over input pixel size, used when ``pixel_scale`` is None.
    rotation : float, optional
        Position angle of the output +y axis, degrees East of North; default 0 (North up,
        East left).

    Returns
    -------
    wcs, shape : WCS, (ny, nx)
        CRVAL is the centre of the inputs' footprint; the grid spans it with edges on
        output pixel edges. ``wcs.pixel_shape`` is set.
    """
    if not wcss or len(wcss) != len(shapes):
        raise ValueError("output_grid needs at least one input and one shape per WCS")
    if pixel_scale is None:
        if pixel_scale_ratio <= 0:
            raise ValueError(f"pixel_scale_ratio must be positive, got {pixel_scale_ratio}")
        pixel_scale = float(np.median([pixel_scale_arcsec(w, s) for w, s in zip(wcss, shapes, strict=True)])) * pixel_scale_ratio
    if pixel_scale <= 0:
        raise ValueError(f"pixel_scale must be positive, got {pixel_scale}")
    points = [_footprint(w, s) for w, s in zip(wcss, shapes, strict=True)]
    ra = np.concatenate([p[0] for p in points])
    dec = np.concatenate([p[1] for p in points])
    mean = _sky_unit_vectors(ra, dec).mean(axis=0)
    ra0 = math.degrees(math.atan2(mean[1], mean[0])) % 360.0
    dec0 = math.degrees(math.atan2(mean[2], math.hypot(mean[0], mean[1])))

    out = WCS(naxis=2)
    out.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    out.wcs.cunit = ["deg", "deg"]
    out.wcs.crval = [ra0, dec0]
    out.wcs.crpix = [1.0, 1.0]
    out.wcs.cdelt = [pixel_scale / 3600.0] * 2
    pc11, pc12, pc21, pc22 = pc_matrix(0.0 if rotation is None else rotation)
    out.wcs.pc = [[pc11, pc12], [pc21, pc22]]
    out.wcs.radesys = "ICRS"
    out.wcs.set()
    x, y = out.world_to_pixel_values(ra, dec)
    # Small margin against round-off so the outermost input edges stay inside.
    xmin, xmax = float(np.min(x)) - 1e-6, float(np.max(x)) + 1e-6
    ymin, ymax = float(np.min(y)) - 1e-6, float(np.max(y)) + 1e-6
    nx, ny = max(1, math.ceil(xmax - xmin)), max(1, math.ceil(ymax - ymin))
    # Put the footprint's low edges on the -0.5 edge of pixel 0 (CRPIX is 1-based).
    out.wcs.crpix = [1.0 - (xmin + 0.5), 1.0 - (ymin + 0.5)]
    out.wcs.set()
    out.pixel_shape = (nx, ny)
    return out, (ny, nx)


PIXMAP_STEP = 8


def pixmap(wcs_from: WCS, wcs_to: WCS, shape: tuple[int, int], step: int = PIXMAP_STEP) -> np.ndarray:
    """(ny, nx, 2) positions (x, y) in ``wcs_to`` pixels of every pixel of an image of
    ``shape`` described by ``wcs_from``.

    Both transforms are smooth (TAN with a low-order SIP distortion), so the positions are
    computed exactly on every ``step``-th row and column (and the last ones) and bilinearly
    interpolated in between: within 1e-4 pixel of the exact map for a full frame with the
    simulator's distortion (tested), for a fraction of the cost. ``step=1`` is exact.
    """
    ny, nx = shape
    if step <= 1 or min(ny, nx) <= 2 * step:
        return calc_pixmap(wcs_from, wcs_to, shape)
    ys = np.unique(np.r_[np.arange(0, ny, step), ny - 1])
    xs = np.unique(np.r_[np.arange(0, nx, step), nx - 1])
    gx, gy = np.meshgrid(xs.astype(float), ys.astype(float))
    ra, dec = wcs_from.all_pix2world(gx, gy, 0)
    cx, cy = wcs_to.all_world2pix(ra, dec, 0)
    # bilinear interpolation is separable: along each row of nodes to every column, then
    # between those rows to every row (the same values as a 2-D bilinear interpolation;
    # 0.08 s a full frame, against 0.25 to 0.57 s with scipy's general one)
    x0, fx = _between(xs, nx)
    y0, fy = _between(ys, ny)
    fy = fy[:, None]
    out = np.empty((ny, nx, 2))
    for k, grid in enumerate((cx, cy)):
        along = grid[:, x0] * (1.0 - fx) + grid[:, x0 + 1] * fx  # (node rows, nx)
        below, above = along[y0], along[y0 + 1]
        above -= below
        above *= fy
        below += above
        out[..., k] = below
    return out


def _between(nodes: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """For each of the positions 0..n-1, the index of the node at or before it (never the
    last node) and its fraction of the way to the next node."""
    at = np.arange(n)
    lo = np.clip(np.searchsorted(nodes, at, side="right") - 1, 0, len(nodes) - 2)
    return lo, (at - nodes[lo]) / (nodes[lo + 1] - nodes[lo])


# ---------------------------------------------------------------------------- resample

def _good(inp: ResampleInput) -> np.ndarray:
    good = np.isfinite(inp.data)
    if inp.dq is not None:
        good &= (inp.dq & PIXEL["DO_NOT_USE"]) == 0
    return good


def weight_map(inp: ResampleInput, weight_type: str = "ivm") -> np.ndarray:
    """Drizzle weight of each input pixel, float32 (ny, nx); 0 for DO_NOT_USE or
    non-finite pixels.

    ``"ivm"``: 1 / VAR_RNOISE (0 where the variance is not finite and positive);
    ``"exptime"``: the exposure time.
    """
    good = _good(inp)
    if weight_type == "ivm":
        if inp.var_rnoise is None:
            raise ValueError('weight_type "ivm" needs VAR_RNOISE; use weight_type "exptime" for inputs without it')
        var = inp.var_rnoise
        ok = good & np.isfinite(var) & (var > 0)
        w = np.zeros(inp.data.shape, np.float32)
        w[ok] = 1.0 / var[ok]
        return w
    if weight_type == "exptime":
        return np.where(good, np.float32(inp.exptime), np.float32(0.0)).astype(np.float32)
    raise ValueError(f"unknown weight_type {weight_type!r}; use one of {', '.join(WEIGHT_TYPES)}")


def _drizzle_one(values: np.ndarray, weights: np.ndarray, pmap: np.ndarray, out_shape, *, pixfrac: float,
                 kernel: str, exptime: float) -> tuple[np.ndarray, np.ndarray]:
    """Weighted mean of ``values`` on the output grid (0 where nothing landed) and the
    summed weight, float32."""
    driz = Drizzle(kernel=kernel, fillval=0.0, out_shape=out_shape)
    filled = np.where(weights > 0, values, np.float32(0.0)).astype(np.float32, copy=False)
    driz.add_image(filled, exptime=exptime, pixmap=pmap, weight_map=weights, pixfrac=pixfrac, in_units="cps")
    return driz.out_img, driz.out_wht


def _output_pixels_per_input_pixel(pmap: np.ndarray) -> float:
    """The larger step of a pixel map, in output pixels, between neighbouring input pixels
    at the input's centre (1 when it cannot be told)."""
    ny, nx = pmap.shape[:2]
    cy, cx = min(ny // 2, ny - 2), min(nx // 2, nx - 2)
    steps = [float(np.hypot(*(pmap[cy, cx + 1] - pmap[cy, cx]))) if nx > 1 else 1.0,
             float(np.hypot(*(pmap[cy + 1, cx] - pmap[cy, cx]))) if ny > 1 else 1.0]
    return max(steps) if all(math.isfinite(v) for v in steps) else 1.0


def _landing_box(pmap: np.ndarray, out_shape: tuple[int, int]) -> tuple[slice, slice] | None:
    """The part of the output grid an input can reach (its pixel map's extent, widened by
    the largest kernel's reach: 4 input pixels at the output scale), as (rows, columns);
    None when it lands nowhere on the grid. Drizzling into this box instead of the whole
    grid gives the same values there and zeros elsewhere, for a fraction of the
    allocation and arithmetic on a mosaic much larger than one input."""
    x, y = pmap[..., 0], pmap[..., 1]
    with np.errstate(invalid="ignore"):
        finite = np.isfinite(x) & np.isfinite(y)
    if not finite.any():
        return None
    xs, ys = x[finite], y[finite]
    margin = int(math.ceil(4.0 * max(_output_pixels_per_input_pixel(pmap), 1.0))) + 2
    ny, nx = out_shape
    x0, x1 = max(0, int(math.floor(xs.min())) - margin), min(nx, int(math.ceil(xs.max())) + margin + 1)
    y0, y1 = max(0, int(math.floor(ys.min())) - margin), min(ny, int(math.ceil(ys.max())) + margin + 1)
    if x0 >= x1 or y0 >= y1:
        return None
    return slice(y0, y1), slice(x0, x1)


@dataclass(frozen=True)
class Contribution:
    """What one input adds to a resampled image: its landing ``box`` on the grid (rows,
    columns; None when it lands nowhere), its weighted mean ``mean`` and weight ``wht``
    there, and the weighted mean of each of its variance arrays (float32, box-shaped).
    :func:`combine` adds contributions up; :func:`resample` is the two together, and a
    task of its own can make each input's (stage 3 split across tasks)."""

    box: tuple[slice, slice] | None
    mean: np.ndarray | None = None
    wht: np.ndarray | None = None
    variances: dict[str, np.ndarray] = field(default_factory=dict)


def _check_kernel(kernel: str, pixfrac: float) -> None:
    if kernel not in KERNELS:
        raise ValueError(f"unknown kernel {kernel!r}; use one of {', '.join(KERNELS)}")
    if not 0.0 < pixfrac <= 1.0:
        raise ValueError(f"pixfrac must be in (0, 1], got {pixfrac}")


def contribution(
    inp: ResampleInput,
    out_wcs: WCS,
    out_shape: tuple[int, int],
    *,
    pixfrac: float = 1.0,
    kernel: str = "square",
    weight_type: str = "ivm",
    variances: bool = True,
) -> Contribution:
    """Drizzle one input onto the part of the grid it can reach (:func:`resample` says how)."""
    _check_kernel(kernel, pixfrac)
    if inp.data.ndim != 2:
        raise ValueError(f"data must be 2-D (ny, nx), got shape {inp.data.shape}")
    w = weight_map(inp, weight_type)
    pmap = pixmap(inp.wcs, out_wcs, inp.data.shape)
    box = _landing_box(pmap, out_shape)
    if box is None:
        return Contribution(None)
    rows, cols = box
    pmap[..., 0] -= cols.start
    pmap[..., 1] -= rows.start
    box_shape = (rows.stop - rows.start, cols.stop - cols.start)
    exptime = float(inp.exptime) if inp.exptime and inp.exptime > 0 else 1.0
    mean, wht = _drizzle_one(inp.data, w, pmap, box_shape, pixfrac=pixfrac, kernel=kernel, exptime=exptime)
    drizzled = {}
    for name in _VARIANCES if variances else ():
        var = getattr(inp, name)
        if var is None:
            continue
        ok = np.isfinite(var)
        drizzled[name], _ = _drizzle_one(np.where(ok, var, np.float32(0.0)), np.where(ok, w, np.float32(0.0)), pmap,
                                         box_shape, pixfrac=pixfrac, kernel=kernel, exptime=exptime)
    return Contribution(box, mean, wht, drizzled)


def combine(contributions: Iterable[Contribution], out_shape: tuple[int, int], *, n_inputs: int,
            fillval: float = np.nan) -> ResampleResult:
    """The resampled image of ``n_inputs`` inputs from their contributions, in input order
    (each is let go once added: a generator keeps one in memory at a time)."""
    ny, nx = out_shape
    num = np.zeros(out_shape)
    wht = np.zeros(out_shape)
    var_num: dict[str, np.ndarray] = {}
    con = np.zeros(((n_inputs + 31) // 32, ny, nx), np.int32)
    count = 0
    for i, c in enumerate(contributions):
        count += 1
        if c.box is None:
            continue
        box, wht_i = c.box, c.wht
        num[box] += c.mean * wht_i.astype(np.float64)
        wht[box] += wht_i
        con[i // 32][box][wht_i > 0] |= np.array(1 << (i % 32), np.uint32).view(np.int32)
        for name in _VARIANCES:
            if name not in c.variances:
                continue
            if name not in var_num:
                var_num[name] = np.zeros(out_shape)
            var_num[name][box] += np.square(wht_i, dtype=np.float64) * c.variances[name]
    if count != n_inputs:
        raise ValueError(f"{count} contributions for {n_inputs} inputs")
    # The mosaic-sized float64 sums are let go one by one as their results are made: on a
    # large mosaic they, not the inputs, set the step's peak memory.
    covered = wht > 0
    data = np.full(out_shape, fillval, np.float32)
    data[covered] = (num[covered] / wht[covered]).astype(np.float32)
    del num
    variances: dict[str, np.ndarray | None] = dict.fromkeys(_VARIANCES)
    for name in list(var_num):
        total = var_num.pop(name)
        v = np.full(out_shape, np.nan, np.float32)
        v[covered] = (total[covered] / wht[covered] ** 2).astype(np.float32)
        del total
        variances[name] = v
    err = np.full(out_shape, np.nan, np.float32)
    present = [v for v in variances.values() if v is not None]
    if present:  # sqrt of their sum, added in place in the same order as a stacked sum
        err = present[0].copy()
        for v in present[1:]:
            err += v
        np.sqrt(err, out=err)
    return ResampleResult(data=data, wht=wht.astype(np.float32), con=con, err=err, n_inputs=n_inputs,
                          **variances)


def resample(
    inputs: Sequence[ResampleInput],
    out_wcs: WCS,
    out_shape: tuple[int, int],
    *,
    pixfrac: float = 1.0,
    kernel: str = "square",
    fillval: float = np.nan,
    weight_type: str = "ivm",
    variances: bool = True,
) -> ResampleResult:
    """Drizzle ``inputs`` onto the grid ``out_wcs`` of ``out_shape`` (ny, nx).

    Defaults follow the public resample step: pixfrac 1.0, kernel "square", fillval NaN,
    weight_type "ivm" (see :func:`weight_map`). Values are surface brightness, so no
    intensity scaling is applied (flux = value x pixel solid angle is conserved).

    Data: every input is drizzled with its weight map, giving its mean ``d_i`` and total
    weight ``W_i`` per output pixel; the result is ``sum(W_i d_i) / sum(W_i)`` (what one
    drizzle of all inputs gives).

    Variances (an approximation): each variance array is drizzled with the same weights,
    giving per input ``v_i`` = the weighted *mean* input variance under the output pixel,
    and the inputs combine as independent measurements,
    ``var = sum(W_i**2 v_i) / sum(W_i)**2``. Within one input this ignores that an output
    pixel averages several input pixels (which lowers its per-pixel variance but
    correlates neighbours), so the per-pixel variance stays that of one input pixel,
    which is what aperture sums over correlated pixels need; across inputs it is exact,
    and with "ivm" weights on same-scale grids it reduces to ``1 / sum(1 / v_i)``.
    ``variances=False`` skips them (one drizzle per input instead of up to four); the
    result's variances and ERR are then None and NaN.

    Each input is drizzled onto the part of the grid it can reach (its pixel map's
    extent), not the whole grid: on a mosaic of many exposures that is what keeps the
    cost near the drizzle kernel's own. Each input's part is a :func:`contribution`, and
    :func:`combine` adds them up.
    """
    if not inputs:
        raise ValueError("resample needs at least one input")
    _check_kernel(kernel, pixfrac)
    for i, inp in enumerate(inputs):
        if inp.data.ndim != 2:
            raise ValueError(f"input {i}: data must be 2-D (ny, nx), got shape {inp.data.shape}")
    parts = (contribution(inp, out_wcs, out_shape, pixfrac=pixfrac, kernel=kernel, weight_type=weight_type,
                          variances=variances) for inp in inputs)
    return combine(parts, out_shape, n_inputs=len(inputs), fillval=fillval)


# ---------------------------------------------------------------------------- blot

def blot(image: np.ndarray, image_wcs: WCS, target_wcs: WCS, target_shape: tuple[int, int]) -> np.ndarray:
    """Interpolate ``image`` (e.g. the median of resampled exposures) back onto the
    pixels of a target image: float32 ``target_shape`` (ny, nx).

    Bilinear interpolation at each target pixel centre (as the public outlier detection
    blots); NaN where the position falls off ``image`` or next to one of its NaN pixels.
    """
    pmap = pixmap(target_wcs, image_wcs, target_shape)
    x, y = pmap[..., 0], pmap[..., 1]
    ny, nx = image.shape
    inside = np.isfinite(x) & np.isfinite(y) & (x >= 0) & (x <= nx - 1) & (y >= 0) & (y <= ny - 1)
    out = np.full(target_shape, np.nan, np.float32)
    xi, yi = x[inside], y[inside]
    x0 = np.minimum(np.floor(xi).astype(np.intp), max(nx - 2, 0))
    y0 = np.minimum(np.floor(yi).astype(np.intp), max(ny - 2, 0))
    fx, fy = xi - x0, yi - y0
    x1, y1 = np.minimum(x0 + 1, nx - 1), np.minimum(y0 + 1, ny - 1)
    out[inside] = (
        image[y0, x0] * (1 - fx) * (1 - fy) + image[y0, x1] * fx * (1 - fy)
        + image[y1, x0] * (1 - fx) * fy + image[y1, x1] * fx * fy
    )
    return out


def derivative(image: np.ndarray) -> np.ndarray:
    """Largest absolute difference between each pixel and its 4 neighbours, float32
    (ny, nx); NaN where the pixel is NaN. The outlier threshold's allowance for
    interpolation errors on steep gradients."""
    img = np.asarray(image, np.float32)
    out = np.zeros(img.shape, np.float32)
    dy = np.abs(np.diff(img, axis=0))
    dx = np.abs(np.diff(img, axis=1))
    for view, diff in ((out[1:], dy), (out[:-1], dy), (out[:, 1:], dx), (out[:, :-1], dx)):
        np.fmax(view, np.where(np.isfinite(diff), diff, 0.0), out=view)
    out[~np.isfinite(img)] = np.nan
    return out
