"""Helpers shared by the Detector-1 kernels: DQ mapping, shape checks, fast order statistics.

Private to :mod:`services.detector1.steps`. Everything here is a pure function over numpy
arrays.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping
from functools import lru_cache

import numpy as np

from shared.datamodels import dqflags as _dqflags

__all__ = [
    "BLOCK_PIXELS",
    "check_image",
    "check_out",
    "check_ramp",
    "clipped_mean",
    "flags",
    "iter_blocks",
    "median_of_sorted",
    "running_median",
    "sort_columns",
    "sorted_rows",
]

#: Pixels per block when a kernel walks a frame block by block. Chosen so that a block of
#: ~10 float32 groups stays inside the L2 cache of a typical server core.
BLOCK_PIXELS = 32768

# Above this many rows a sorting network has too many comparators; fall back to np.sort.
_MAX_NETWORK_ROWS = 32


def flags(dqflags: Mapping[str, int] | None) -> Mapping[str, int]:
    """The DQ mapping to use: the caller's, or the local default table."""
    return _dqflags.PIXEL if dqflags is None else dqflags


def check_ramp(data: np.ndarray, groupdq: np.ndarray | None = None) -> tuple[int, int, int, int]:
    """Validate a 4-D ramp (and its GROUPDQ) and return (nints, ngroups, ny, nx)."""
    if data.ndim != 4:
        raise ValueError(f"ramp data must be 4-D (nints, ngroups, ny, nx), got shape {data.shape}")
    if groupdq is not None and groupdq.shape != data.shape:
        raise ValueError(f"groupdq shape {groupdq.shape} differs from data shape {data.shape}")
    nints, ngroups, ny, nx = data.shape
    return nints, ngroups, ny, nx


def check_image(name: str, array: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Return ``array`` as an ndarray after checking it has the 2-D image ``shape``."""
    array = np.asarray(array)
    if array.shape != shape:
        raise ValueError(f"{name} has shape {array.shape}, expected {shape}")
    return array


def check_out(out: np.ndarray, like: np.ndarray, *, dtype=np.float32, name: str = "out") -> np.ndarray:
    """Validate an output array (``out=`` ramp, float32; ``groupdq_out=``, uint8): the
    dtype, C-contiguous, the shape of ``like``, writeable. It may be ``like`` itself (the
    kernel then works in place)."""
    dtype = np.dtype(dtype)
    if not isinstance(out, np.ndarray) or out.dtype != dtype or out.shape != like.shape:
        raise ValueError(f"{name} must be a {dtype} array of shape {like.shape}")
    if not out.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous")
    if not out.flags.writeable:
        raise ValueError(f"{name} is read-only")
    return out


def iter_blocks(npix: int, block: int = BLOCK_PIXELS) -> Iterator[slice]:
    """Consecutive slices of at most ``block`` pixels covering ``range(npix)``."""
    for start in range(0, npix, block):
        yield slice(start, min(start + block, npix))


# --------------------------------------------------------------------------- sorting


def _merge(lo: int, n: int, r: int) -> Iterator[tuple[int, int]]:
    # Batcher's odd-even merge of the two sorted halves of [lo, lo + n) taken with stride r.
    step = 2 * r
    if step < n:
        yield from _merge(lo, n, step)
        yield from _merge(lo + r, n, step)
        for i in range(lo + r, lo + n - r, step):
            yield (i, i + r)
    else:
        yield (lo, lo + r)


def _sort(lo: int, n: int) -> Iterator[tuple[int, int]]:
    if n > 1:
        half = n // 2
        yield from _sort(lo, half)
        yield from _sort(lo + half, half)
        yield from _merge(lo, n, 1)


@lru_cache(maxsize=64)
def _network(n: int) -> tuple[tuple[int, int], ...]:
    """Comparators (i < j) of a sorting network for ``n`` rows.

    Built for the next power of two; comparators touching a row >= n are dropped, which is
    exact because padding rows would hold +inf and a comparator only ever moves the larger
    value to the higher index.
    """
    size = 1
    while size < n:
        size *= 2
    return tuple((i, j) for i, j in _sort(0, size) if j < n)


def sorted_rows(values: np.ndarray) -> list[np.ndarray]:
    """Sort a 2-D array (nrows, ncols) along axis 0 and return its rows in ascending order.

    NaNs must already be replaced by +inf. ``values`` is used as scratch space and must not
    be used afterwards. Small row counts (the group axis of a ramp) use a sorting network of
    vectorised minimum/maximum operations (two passes per comparator, results swapped by
    reference), several times faster than ``np.sort`` along a strided axis.
    """
    nrows = values.shape[0]
    if nrows > _MAX_NETWORK_ROWS:
        values.sort(axis=0)
        return list(values)
    rows = list(values)
    spare = np.empty(values.shape[1:], dtype=values.dtype)
    for i, j in _network(nrows):
        np.minimum(rows[i], rows[j], out=spare)
        np.maximum(rows[i], rows[j], out=rows[j])
        rows[i], spare = spare, rows[i]
    return rows


def sort_columns(values: np.ndarray) -> np.ndarray:
    """Return ``values`` (nrows, ncols, NaN replaced by +inf) sorted along axis 0.

    ``values`` is consumed as scratch space; see :func:`sorted_rows`.
    """
    if values.shape[0] == 0:
        return values
    return np.stack(sorted_rows(values))


def median_of_sorted(sorted_values: np.ndarray, count: np.ndarray, offset: np.ndarray | int = 0) -> np.ndarray:
    """Median of ``sorted_values[offset : offset + count]`` along axis 0, per column.

    ``sorted_values`` is sorted along axis 0; ``count`` (per column) is how many values take
    part and ``offset`` where they start. Columns with ``count == 0`` give NaN.
    """
    count = np.asarray(count)
    offset = np.broadcast_to(np.asarray(offset), count.shape)
    nrows = sorted_values.shape[0]
    safe = np.maximum(count, 1)
    lo = np.clip(offset + (safe - 1) // 2, 0, nrows - 1)
    hi = np.clip(offset + safe // 2, 0, nrows - 1)
    a = np.take_along_axis(sorted_values, lo[np.newaxis], axis=0)[0]
    b = np.take_along_axis(sorted_values, hi[np.newaxis], axis=0)[0]
    med = 0.5 * (a + b)
    return np.where(count > 0, med, np.nan).astype(sorted_values.dtype, copy=False)


# --------------------------------------------------------------------------- robust statistics


def clipped_mean(values: np.ndarray, nsigma: float = 3.0, maxiter: int = 50) -> np.ndarray:
    """Iterative ``nsigma`` clipped mean along the last axis; NaN entries are ignored.

    Same rule as ``scipy.stats.sigmaclip(low=nsigma, high=nsigma)``: keep values within
    ``mean ± nsigma * std`` (population std) of the kept set, repeat until nothing changes.
    Returns NaN where no value is usable.
    """
    vals = np.asarray(values, dtype=np.float64)
    keep = np.isfinite(vals)
    filled = np.where(keep, vals, 0.0)
    mean = np.full(vals.shape[:-1], np.nan)
    for _ in range(maxiter):
        n = keep.sum(axis=-1)
        safe_n = np.maximum(n, 1)
        mean = np.where(keep, filled, 0.0).sum(axis=-1) / safe_n
        dev = np.where(keep, filled - mean[..., np.newaxis], 0.0)
        std = np.sqrt((dev * dev).sum(axis=-1) / safe_n)
        limit = nsigma * std
        new_keep = keep & (np.abs(filled - mean[..., np.newaxis]) <= limit[..., np.newaxis])
        if np.array_equal(new_keep, keep):
            break
        keep = new_keep
    n = keep.sum(axis=-1)
    return np.where(n > 0, mean, np.nan)


def running_median(values: np.ndarray, width: int) -> np.ndarray:
    """Running median along the last axis with an odd window ``width``, NaN-aware.

    At the ends the window is truncated to the samples that exist (no padding values enter
    the median).
    """
    if width < 1:
        raise ValueError("running median width must be >= 1")
    half = width // 2
    vals = np.asarray(values, dtype=np.float64)
    pad = [(0, 0)] * (vals.ndim - 1) + [(half, half)]
    padded = np.pad(vals, pad, constant_values=np.nan)
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1, axis=-1)
    with warnings.catch_warnings():
        # an all-NaN window (no usable reference pixel nearby) is a legitimate NaN result
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(windows, axis=-1)
