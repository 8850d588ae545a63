"""outlier_detection: flag pixels that disagree with the other exposures (cosmic rays
missed by jump detection, hot pixels, ...).

Imaging (:func:`flag_outliers_imaging`), as the public step does it:

1. every exposure is resampled alone onto the common grid;
2. pixels whose weight is below ``maskpt`` times the (3-sigma clipped) mean weight of
   that exposure are ignored, and the median of the exposures is taken per pixel;
3. the median is blotted back onto each exposure's pixels;
4. with ``diff = |data - blot - backg|`` and ``deriv`` the largest absolute difference of
   the blot with its 4 neighbours, a pixel is an outlier when
   ``diff > scale[1] * deriv + snr[1] * err`` and it, or one of its 8 neighbours, has
   ``diff > scale[0] * deriv + snr[0] * err`` (defaults snr 5.0/4.0, scale 1.2/0.7).

Slits (:func:`flag_outliers_slit`), as the public step does for slit spectra: the same,
with each exposure rectified alone onto the grid of slit coordinate centred on its source
(:func:`shared.spectra.rectify_slit`, spec3's resample_spec), the median taken per pixel
of that grid and put back onto each exposure's pixels along its rows
(:func:`shared.spectra.blot_slit`). With two exposures the median is their mean: a
cosmic ray stands out from it by half its height in its own exposure; the other exposure
sees that half in the mean too, where the allowance for the blotted median's steepness
(``scale * deriv``) usually keeps it from being flagged.

When the exposures' sources lie whole pixels apart along the slit (NIRSpec's 1" nods on
0.1" pixels), :func:`flag_outliers_shifted` takes the median of the exposures shifted
onto each other by those whole pixels instead, with no resampling. NIRSpec's point
source is undersampled (a fraction of a pixel wide along the slit below 1 um): on the
example's three nods (examples/nirspec_fs.yaml) the rectified comparison flagged 50-67
pixels of each nod's own trace at 0.6-1 um, the shifted one none.

Time series (:func:`flag_outliers_tso`): per pixel, a rolling median over
``rolling_window_width`` integrations (plain median when there are not more integrations
than that), bad pixels ignored; ``|data - median| > snr[0] * err`` is an outlier.

Integral-field units (:func:`flag_outliers_ifu`), as the public step's ``ifu`` mode: per
detector, each exposure's difference of every pixel with its neighbours across the
dispersion (left and right for the MRS, dispersed along y), the smaller of the two; the
smallest of those over the exposures (a pixel bad in every dithered exposure, which the
dithers' moving sky cannot explain), divided by its local median (``kernel_size``,
floored at a third of the overall median, so that bright sources do not stand out); the
pixels above the ``threshold_percent`` percentile of that ratio (taken 4 pixels inside
the detector's edges) are outliers in every exposure of the detector. By construction
the percentile flags a fixed share of the pixels (0.2 % at the default 99.8).

Outliers get DO_NOT_USE|OUTLIER and NaN in SCI, ERR and variances (:func:`apply_outliers`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import numpy as np
from astropy.stats import sigma_clip
from astropy.wcs import WCS
from pydantic import BaseModel, ConfigDict, Field, field_validator
from scipy import ndimage

from shared.datamodels.dqflags import PIXEL
from shared.resample import ResampleInput, blot, combine, contribution, derivative
from shared.spectra import blot_slit

__all__ = [
    "ImagingOutliers",
    "OutlierParams",
    "apply_outliers",
    "flag_outliers_ifu",
    "flag_outliers_imaging",
    "flag_outliers_shifted",
    "flag_outliers_slit",
    "flag_outliers_tso",
    "median_image",
    "nan_median_filter",
    "nanmedian_stack",
    "outlier_mask",
    "replace_flagged",
    "rolling_median",
    "single_image",
    "weight_threshold",
]

OUTLIER_FLAGS = PIXEL["DO_NOT_USE"] | PIXEL["OUTLIER"]


class OutlierParams(BaseModel):
    """Parameters of outlier_detection (public defaults)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    weight_type: str = Field("ivm", description='Resampling weights: "ivm" (1/VAR_RNOISE) or "exptime".')
    pixfrac: float = Field(1.0, gt=0, le=1, description="Drizzle pixfrac of the single-exposure resampling.")
    kernel: str = Field("square", description="Drizzle kernel of the single-exposure resampling.")
    maskpt: float = Field(0.7, ge=0, le=1, description="Ignore resampled pixels below this fraction of the mean weight.")
    snr: tuple[float, float] = Field((5.0, 4.0), description="S/N thresholds of the first and second pass.")
    scale: tuple[float, float] = Field((1.2, 0.7), description="Derivative scales of the first and second pass.")
    backg: float = Field(0.0, description="Background added to the blotted median, data units.")
    rolling_window_width: int = Field(25, ge=1, description="Integrations in the rolling median (time series).")
    kernel_size: tuple[int, int] = Field((7, 7), description="Rows and columns of the local median (IFU); odd.")
    threshold_percent: float = Field(99.8, gt=0, lt=100,
                                     description="Percentile of the normalised neighbour difference above which "
                                                 "a pixel is an outlier (IFU).")

    @field_validator("kernel_size")
    @classmethod
    def _odd(cls, value: tuple[int, int]) -> tuple[int, int]:
        if any(k < 1 or k % 2 == 0 for k in value):
            raise ValueError(f"kernel_size must be two odd positive numbers, not {value}")
        return value


@dataclass(frozen=True)
class ImagingOutliers:
    """``masks`` (one bool (ny, nx) per input, True = outlier) and the ``median`` image
    on the common grid."""

    masks: list[np.ndarray]
    median: np.ndarray


def weight_threshold(wht: np.ndarray, maskpt: float) -> float:
    """``maskpt`` times the mean of the 3-sigma clipped, finite, non-zero weights."""
    values = wht[np.isfinite(wht) & (wht != 0)]
    if values.size == 0:
        return 0.0
    clipped = sigma_clip(values, sigma=3.0, maxiters=5, masked=False)
    return float(np.mean(clipped, dtype=np.float64)) * maskpt


_MEDIAN_BLOCK = 1 << 22  # elements of a stack's block of rows (nanmedian_stack)


def nanmedian_stack(stack: np.ndarray) -> np.ndarray:
    """Median along axis 0 ignoring NaN, float32: ``np.nanmedian(stack, axis=0)`` to the
    bit (the mean of the two middle values for an even count), NaN where every value is
    NaN — without its per-slice work and warnings, which dominate on a mosaic with many
    empty pixels. One sort along the short axis puts the NaN last; the middle of each
    pixel's finite values is then picked by index.

    A large stack (a mosaic's) is taken in blocks of rows by two threads (numpy sorts
    without the GIL): the same values in about half the time on two cores, with a sorted
    copy of one block at a time instead of the whole stack."""
    if stack.shape[0] == 0:
        raise ValueError("the median of an empty stack")
    if stack.ndim < 3 or stack.size <= _MEDIAN_BLOCK:
        return _nanmedian(stack)
    rows = max(1, _MEDIAN_BLOCK // (stack.size // stack.shape[1]))
    out = np.empty(stack.shape[1:], np.float32)

    def block(r: int) -> None:
        out[r:r + rows] = _nanmedian(stack[:, r:r + rows])

    with ThreadPoolExecutor(2, thread_name_prefix="median") as pool:
        list(pool.map(block, range(0, stack.shape[1], rows)))
    return out


def _nanmedian(stack: np.ndarray) -> np.ndarray:
    ordered = np.sort(stack, axis=0)
    count = np.count_nonzero(~np.isnan(stack), axis=0)
    low = np.take_along_axis(ordered, np.maximum((count - 1) // 2, 0)[None], axis=0)[0]
    high = np.take_along_axis(ordered, (count // 2).clip(max=stack.shape[0] - 1)[None], axis=0)[0]
    median = ((low.astype(np.float64) + high) / 2.0).astype(np.float32)
    median[count == 0] = np.nan
    return median


def single_image(inp: ResampleInput, out_wcs: WCS, out_shape: tuple[int, int],
                 p: OutlierParams) -> tuple[tuple[slice, slice] | None, np.ndarray | None]:
    """One exposure resampled alone onto the common grid (step 1), with the pixels of too
    little weight (step 2) NaN: (its landing box on the grid, its values there), or
    (None, None) when it lands nowhere. The median's layer of this exposure; a task of
    its own can make it."""
    c = contribution(inp, out_wcs, out_shape, pixfrac=p.pixfrac, kernel=p.kernel, weight_type=p.weight_type,
                     variances=False)  # the median needs values and weights only
    if c.box is None:
        return None, None
    rows, cols = c.box
    whole = (slice(0, rows.stop - rows.start), slice(0, cols.stop - cols.start))
    r = combine([replace(c, box=whole)], c.mean.shape, n_inputs=1)
    low = r.wht < weight_threshold(r.wht, p.maskpt)
    return c.box, np.where(low | (r.wht <= 0), np.nan, r.data)


def median_image(layers: Iterable[tuple[tuple[slice, slice] | None, np.ndarray | None]], n: int,
                 out_shape: tuple[int, int]) -> np.ndarray:
    """The median (step 2) of ``n`` exposures' :func:`single_image` layers."""
    stack = np.full((n, *out_shape), np.nan, np.float32)
    count = 0
    for i, (box, values) in enumerate(layers):
        count += 1
        if box is not None:
            stack[i][box] = values
    if count != n:
        raise ValueError(f"{count} resampled exposures for {n}")
    return nanmedian_stack(stack)


def outlier_mask(inp: ResampleInput, err: np.ndarray, median: np.ndarray, out_wcs: WCS,
                 p: OutlierParams) -> np.ndarray:
    """The outliers of one exposure (steps 3-4): the median blotted back onto its pixels
    and compared with them."""
    blotted = blot(median, out_wcs, inp.wcs, inp.data.shape)
    mask = _two_pass(inp.data, err, blotted, p) & np.isfinite(blotted) & np.isfinite(inp.data)
    if inp.dq is not None:
        mask &= (inp.dq & PIXEL["DO_NOT_USE"]) == 0
    return mask


def _two_pass(data: np.ndarray, err: np.ndarray, blotted: np.ndarray, p: OutlierParams) -> np.ndarray:
    err0 = np.nan_to_num(err)
    deriv = derivative(blotted)
    diff = np.abs(data - blotted - p.backg)
    with np.errstate(invalid="ignore"):
        first = diff > p.scale[0] * deriv + p.snr[0] * err0
        second = diff > p.scale[1] * deriv + p.snr[1] * err0
    near_first = ndimage.binary_dilation(first, structure=np.ones((3, 3), bool))
    return near_first & second


def flag_outliers_imaging(
    inputs: Sequence[ResampleInput], errs: Sequence[np.ndarray], out_wcs: WCS, out_shape: tuple[int, int],
    params: OutlierParams | None = None,
) -> ImagingOutliers:
    """Outlier masks of dithered images (see the module docstring).

    Parameters
    ----------
    inputs : sequence of ResampleInput
        The exposures (data surface brightness (ny, nx), aligned WCS, DQ, VAR_RNOISE).
    errs : sequence of ndarray
        Their ERR arrays (ny, nx), data units.
    out_wcs, out_shape : WCS, (ny, nx)
        The common grid (:func:`shared.resample.output_grid`).
    """
    p = params or OutlierParams()
    median = median_image((single_image(inp, out_wcs, out_shape, p) for inp in inputs), len(inputs), out_shape)
    masks = [outlier_mask(inp, err, median, out_wcs, p) for inp, err in zip(inputs, errs, strict=True)]
    return ImagingOutliers(masks, median)


def flag_outliers_slit(data: Sequence[np.ndarray], errs: Sequence[np.ndarray], dqs: Sequence[np.ndarray],
                       singles: Sequence[np.ndarray], rows: np.ndarray, offsets: np.ndarray,
                       centres: Sequence[np.ndarray], params: OutlierParams | None = None) -> list[np.ndarray]:
    """Outlier masks (True = outlier) of a slit's exposures (see the module docstring).

    Parameters
    ----------
    data, errs, dqs : sequences of ndarray (ny, nx)
        Each exposure's SCI, ERR and DQ.
    singles : sequence of ndarray (n_rows, n_cols)
        Each exposure rectified alone onto the common grid (NaN where it has no usable pixel).
    rows, offsets : ndarray
        The grid's detector rows and slit coordinates (pixels from the source).
    centres : sequence of ndarray (ny,)
        Each exposure's window column of its source, per row (its trace plus the source's
        place along the slit).
    """
    p = params or OutlierParams()
    median = nanmedian_stack(np.stack([np.asarray(s, np.float32) for s in singles]))
    masks = []
    for sci, err, dq, centre in zip(data, errs, dqs, centres, strict=True):
        blotted = blot_slit(median, rows, offsets, centre, sci.shape)
        mask = _two_pass(sci, err, blotted, p) & np.isfinite(blotted) & np.isfinite(sci)
        masks.append(mask & ((dq & PIXEL["DO_NOT_USE"]) == 0))
    return masks


def _shifted(image: np.ndarray, shift: int) -> np.ndarray:
    """``image`` moved by ``shift`` whole columns (content at column x goes to x + shift),
    NaN where nothing comes in."""
    out = np.full(image.shape, np.nan, np.float32)
    nx = image.shape[1]
    if abs(shift) < nx:
        if shift >= 0:
            out[:, shift:] = image[:, :nx - shift]
        else:
            out[:, :nx + shift] = image[:, -shift:]
    return out


def flag_outliers_shifted(data: Sequence[np.ndarray], errs: Sequence[np.ndarray], dqs: Sequence[np.ndarray],
                          shifts: Sequence[int], params: OutlierParams | None = None) -> list[np.ndarray]:
    """Outlier masks of a slit's exposures whose sources lie ``shifts`` whole columns apart
    along the slit (exposure i's source at column x + shifts[i] where the first's is at x;
    images (ny, nx) with the slit along x): the median of the exposures so aligned, moved
    back onto each one, is the blotted median of the module docstring."""
    p = params or OutlierParams()
    usable = [np.where((np.asarray(dq) & PIXEL["DO_NOT_USE"]) == 0, np.asarray(d, np.float32), np.nan)
              for d, dq in zip(data, dqs, strict=True)]
    median = nanmedian_stack(np.stack([_shifted(u, -k) for u, k in zip(usable, shifts, strict=True)]))
    masks = []
    for sci, err, dq, k in zip(data, errs, dqs, shifts, strict=True):
        reference = _shifted(median, k)
        mask = _two_pass(sci, err, reference, p) & np.isfinite(reference) & np.isfinite(sci)
        masks.append(mask & ((dq & PIXEL["DO_NOT_USE"]) == 0))
    return masks


def rolling_median(cube: np.ndarray, width: int) -> np.ndarray:
    """Median over a window of ``width`` integrations centred on each integration
    (NaN ignored); the first and last half-windows take the nearest full window's value.
    Shape of ``cube`` (nints, ny, nx); a plain median when ``width`` >= nints."""
    n = cube.shape[0]
    if width <= 1 or width >= n:
        return np.broadcast_to(nanmedian_stack(cube), cube.shape).astype(np.float32)
    out = np.empty(cube.shape, np.float32)
    half = width // 2
    for start in range(n - width + 1):
        out[start + half] = nanmedian_stack(cube[start:start + width])
    out[:half] = out[half]
    last = n - width + half
    out[last + 1:] = out[last]
    return out


def replace_flagged(cube: np.ndarray, unusable: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """``cube`` (nints, ny, nx) with its ``unusable`` pixels replaced by their median over
    the ``width`` integrations about each (:func:`rolling_median` of the usable values:
    local in time, so a transit in progress is not filled with out-of-transit light), and
    the mask of the pixels replaced (those with a usable value in their window)."""
    kept = np.where(unusable, np.nan, cube)
    # only pixels unusable in some integrations and usable in others can be replaced: the
    # median is taken of those alone (a slitless window's rows without a wavelength are
    # unusable in every integration, and most pixels in none)
    mixed = np.flatnonzero(unusable.any(axis=0) & ~unusable.all(axis=0))
    replaced = np.zeros(cube.shape, bool)
    if mixed.size == 0:
        return kept, replaced
    flat = kept.reshape(kept.shape[0], -1)
    series = flat[:, mixed]
    median = rolling_median(series[:, :, None], width)[:, :, 0]
    fill = np.isnan(series) & np.isfinite(median)
    series[fill] = median[fill]
    flat[:, mixed] = series
    replaced.reshape(kept.shape[0], -1)[:, mixed] = fill
    return kept, replaced


def flag_outliers_tso(data: np.ndarray, err: np.ndarray, dq: np.ndarray | None,
                      params: OutlierParams | None = None) -> np.ndarray:
    """Outlier mask (nints, ny, nx) of a time series of images (see the module docstring)."""
    p = params or OutlierParams()
    good = np.isfinite(data)
    if dq is not None:
        good &= (dq & PIXEL["DO_NOT_USE"]) == 0
    median = rolling_median(np.where(good, data, np.nan), p.rolling_window_width)
    with np.errstate(invalid="ignore"):
        mask = np.abs(data - median) > p.snr[0] * np.nan_to_num(err)
    return mask & good & np.isfinite(median)


def apply_outliers(mask: np.ndarray, dq: np.ndarray, *arrays: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """New DQ with DO_NOT_USE|OUTLIER where ``mask``, and copies of ``arrays`` (SCI, ERR,
    variances) with NaN there."""
    new_dq = dq | np.where(mask, np.uint32(OUTLIER_FLAGS), np.uint32(0)).astype(dq.dtype)
    out = []
    for a in arrays:
        b = np.array(a, copy=True)
        b[mask] = np.nan
        out.append(b)
    return new_dq, out


def nan_median_filter(image: np.ndarray, size: tuple[int, int], *, rows: int = 128) -> np.ndarray:
    """The median of each pixel's ``size`` (rows, columns) neighbourhood, NaN and what lies
    beyond the image left out (NaN where nothing is left), in blocks of ``rows`` rows."""
    ky, kx = size
    padded = np.pad(np.asarray(image, np.float64), ((ky // 2, ky // 2), (kx // 2, kx // 2)), constant_values=np.nan)
    out = np.full(image.shape, np.nan)
    for r in range(0, image.shape[0], rows):
        n = min(rows, image.shape[0] - r)
        windows = np.lib.stride_tricks.sliding_window_view(padded[r:r + n + ky - 1], (ky, kx))
        ordered = np.sort(windows.reshape(n, image.shape[1], ky * kx), axis=-1)  # NaN last
        count = np.isfinite(ordered).sum(axis=-1)
        lo = np.take_along_axis(ordered, np.maximum((count - 1) // 2, 0)[..., None], -1)[..., 0]
        hi = np.take_along_axis(ordered, np.maximum(count // 2, 0)[..., None], -1)[..., 0]
        out[r:r + n] = np.where(count > 0, 0.5 * (lo + hi), np.nan)
    return out


def _neighbour_difference(data: np.ndarray, axis: int) -> np.ndarray:
    """Each pixel's smaller absolute difference with its two neighbours along ``axis``
    (the one there is at an edge or beside a NaN; NaN when neither)."""
    before = np.full(data.shape, np.nan)
    after = np.full(data.shape, np.nan)
    inner = [slice(None)] * 2
    inner[axis] = slice(1, None)
    outer = [slice(None)] * 2
    outer[axis] = slice(None, -1)
    step = np.abs(np.diff(data, axis=axis))
    before[tuple(inner)] = step
    after[tuple(outer)] = step
    return np.fmin(before, after)


def flag_outliers_ifu(data: Sequence[np.ndarray], dqs: Sequence[np.ndarray], *, dispaxis: int,
                      kernel_size: tuple[int, int] = (7, 7), threshold_percent: float = 99.8,
                      edge: int = 4) -> np.ndarray:
    """The outliers (bool, the image's shape) of one detector's IFU exposures (the
    module docstring): pixels flagged in every one of them. ``dispaxis`` 2 (dispersed
    along y: neighbours left and right) or 1."""
    axis = 1 if dispaxis == 2 else 0
    smallest = None
    for sci, dq in zip(data, dqs, strict=True):
        usable = np.where((np.asarray(dq) & PIXEL["DO_NOT_USE"]) == 0, np.asarray(sci, np.float64), np.nan)
        diff = _neighbour_difference(usable, axis)
        smallest = diff if smallest is None else np.fmin(smallest, diff)
    finite = np.isfinite(smallest)
    if not finite.any():
        return np.zeros(smallest.shape, bool)
    local = nan_median_filter(smallest, kernel_size)
    floor = float(np.median(smallest[finite])) / 3.0
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = smallest / np.where(np.isfinite(local) & (local > floor), local, floor)
    inner = ratio[edge:ratio.shape[0] - edge, edge:ratio.shape[1] - edge]
    if not np.isfinite(inner).any() or floor <= 0:
        return np.zeros(smallest.shape, bool)
    threshold = float(np.nanpercentile(inner, threshold_percent))
    return np.isfinite(ratio) & (ratio > threshold)
