"""refpix: remove amplifier drifts using the reference pixels (jwst-conventions.md §4, "Refpix").

The simulator's drifts (docs/simulator.md, "Ramp") are one offset per integration, group,
amplifier and parity, the same in every pixel of that amplifier, reference pixels included.
The rules below follow jwst's ``refpix`` step (``jwst/refpix/reference_pixels.py``, 3.0)
where it corrects, and correct MIRI subarrays where jwst does not; each choice says why.
Reference pixels are found by their place on the detector; pixels flagged DO_NOT_USE in
PIXELDQ never enter a mean or median. A "clipped mean" is scipy's ``sigmaclip`` rule at 3
sigma (jwst's ``siglimit``). Our ``_uncal`` files are in the detector frame (FASTAXIS 1,
SLOWAXIS 2), so jwst's detector-frame columns are the array's columns here.

NIR (HgCdTe 2048 x 2048; reference pixels in a 4-pixel border)
    *Full frame, or a window read through four outputs* (NOUTPUTS = 4; amplifiers read
    columns 0-511, 512-1023, 1024-1535 and 1536-2047): per integration, group and amplifier
    (odd and even detector columns separately when ``odd_even_columns``), the clipped means
    of the bottom (rows 0-3) and of the top (rows 2044-2047) reference rows are averaged
    (one alone when the window holds one) and subtracted from that amplifier's columns.
    Then, when ``use_side_ref_pixels``, each side's signal in each row is the median of the
    reference pixels of that side (columns 0-3 or 2044-2047) in a box of
    ``side_smoothing_length`` rows centred on it (the box is reflected at the detector's
    first and last rows, cut at a window edge inside the detector); the two sides are
    averaged (one alone when the other is missing, 0 where neither has a value),
    multiplied by ``side_gain`` and subtracted row by row. As jwst (its "median" side
    algorithm): same box, same reflection, same combination.

    *A window read through one output* (NOUTPUTS = 1, every NIR subarray here): every
    reference pixel the window holds (rows and columns alike) enters one clipped mean per
    detector-column parity (one in all when ``odd_even_columns`` is off), subtracted from
    the columns of that parity; no side correction. As jwst: the window is one amplifier,
    so all its reference pixels measure the same drift, and a running median of a few
    side pixels would add noise (about 1.6 DN per row and group on a NIRCam window) for
    drifts the simulator, like jwst here, takes as constant across the window.

    A window with no reference pixel is left alone and the result says so.

MIRI (1032 x 1024; reference columns 0-3 and 1028-1031)
    Column c belongs to amplifier c % 4, so each amplifier has one reference column on each
    side. Per integration the first group is subtracted; then for each later group,
    amplifier and (when ``odd_even_rows``) detector-row parity, the clipped means of the
    left and of the right reference column are averaged (one alone when the window holds
    one) and subtracted from the amplifier's columns; the first group is added back. This
    is jwst's full-frame rule. jwst skips every MIRI subarray; here a subarray that holds
    reference columns is corrected the same way (``miri_subarrays``, on by default), and
    one without is left alone. Better against the truth: MIRI's imaging subarrays start at
    column 1 (SUB128, SUB64 hold columns 0-3), and on the simulator's SUB128 example the
    drifts left in by skipping (8.8 DN rms per group; a common slope error of several DN/s
    per amplifier at a 0.12 s group time) shift the rates by 1.5 sigma on average and
    make the jump test flag 388 clean group samples; corrected (1.0 DN rms left), 0.04
    sigma and 1.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ._common import check_image, check_out, check_ramp, clipped_mean, flags

__all__ = [
    "RefpixParams",
    "RefpixResult",
    "correct_miri_refpix",
    "correct_nir_refpix",
]

NIR_SIZE = 2048
NIR_BORDER = 4
NIR_AMP_WIDTH = 512
MIRI_NX = 1032
MIRI_NY = 1024
MIRI_LEFT = 0  # first left reference column
MIRI_RIGHT = 1028  # first right reference column
MIRI_NAMPS = 4


class RefpixParams(BaseModel):
    """Parameters of the refpix step."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    odd_even_columns: bool = Field(True, description="NIR: separate means for odd and even columns.")
    use_side_ref_pixels: bool = Field(
        True, description="NIR full frame / 4 outputs: apply the side (left/right) column correction."
    )
    side_smoothing_length: int = Field(
        11, ge=1, description="NIR: height (rows) of the running-median box of the side reference signal."
    )
    side_gain: float = Field(1.0, description="NIR: multiplier applied to the side reference signal.")
    odd_even_rows: bool = Field(True, description="MIRI: separate means for odd and even rows.")
    miri_subarrays: bool = Field(
        True, description="MIRI: also correct subarrays holding reference columns (jwst skips MIRI subarrays)."
    )


_DEFAULTS = RefpixParams()


@dataclass(frozen=True)
class RefpixResult:
    """Output of the refpix kernels.

    ``data`` is the input array itself when nothing was applied.
    """

    data: np.ndarray  # float32 (nints, ngroups, ny, nx)
    top_bottom_applied: bool  # NIR: reference-row (or, one output, all-reference) correction; MIRI: columns
    side_applied: bool  # NIR: side-column running-median correction made (always False for MIRI)
    n_ref_rows: int  # reference rows found in the window
    n_ref_cols: int  # reference columns found in the window
    note: str  # human-readable summary for the log / step status


def _nanmean(stack: np.ndarray, axis: int) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices are expected
        return np.nanmean(stack, axis=axis)


def _prepare_out(data: np.ndarray, out: np.ndarray | None) -> np.ndarray:
    if out is None:
        return data.astype(np.float32, copy=True)
    if check_out(out, data) is not data:
        np.copyto(out, data)
    return out


def _box_median(side: np.ndarray, bad: np.ndarray, length: int, reflect_low: bool, reflect_high: bool) -> np.ndarray:
    """Running median over boxes of ``length`` rows of a side's reference columns.

    ``side`` (ngroups, ny, ncols) float64, ``bad`` (ny, ncols) pixels to leave out. The box
    is reflected (edge row not repeated) at an end marked ``reflect_*`` and cut elsewhere.
    Returns (ngroups, ny), NaN where a box holds no usable pixel.
    """
    length += 1 - length % 2  # odd, as jwst makes it
    half = length // 2
    ny = side.shape[1]
    values = np.where(bad[np.newaxis], np.nan, side)
    pad_low = min(half, ny - 1) if reflect_low else 0
    pad_high = min(half, ny - 1) if reflect_high else 0
    parts = [values]
    if pad_low:
        parts.insert(0, values[:, pad_low:0:-1])
    if pad_high:
        parts.append(values[:, ny - 2 : ny - 2 - pad_high : -1])
    values = np.concatenate(parts, axis=1)
    # whatever is still missing at the ends (a cut window edge) is NaN: it never enters a median
    values = np.pad(values, ((0, 0), (half - pad_low, half - pad_high), (0, 0)), constant_values=np.nan)
    windows = np.lib.stride_tricks.sliding_window_view(values, length, axis=1)  # (ngroups, ny, ncols, length)
    windows = windows.reshape(*windows.shape[:2], -1)
    if not np.isnan(windows).any():
        return np.median(windows, axis=-1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN boxes are a legitimate NaN
        return np.nanmedian(windows, axis=-1)


def correct_nir_refpix(
    data: np.ndarray,
    pixeldq: np.ndarray,
    *,
    xstart: int = 1,
    ystart: int = 1,
    noutputs: int = 4,
    odd_even_columns: bool = _DEFAULTS.odd_even_columns,
    use_side_ref_pixels: bool = _DEFAULTS.use_side_ref_pixels,
    side_smoothing_length: int = _DEFAULTS.side_smoothing_length,
    side_gain: float = _DEFAULTS.side_gain,
    dqflags: Mapping[str, int] | None = None,
    out: np.ndarray | None = None,
) -> RefpixResult:
    """Reference-pixel correction for a NIR (2048 x 2048 HgCdTe) ramp or subarray.

    Parameters
    ----------
    data : ndarray, float32, shape (nints, ngroups, ny, nx)
        Ramp in DN, superbias subtracted.
    pixeldq : ndarray, uint32, shape (ny, nx)
    xstart, ystart : int
        1-based full-frame column and row of the window's first pixel (SUBSTRT1, SUBSTRT2).
    noutputs : int
        NOUTPUTS: 4 (amplifiers by 512-column stripe) or 1 (the window is one amplifier).
        A full-frame window is read by four outputs whatever this says.
    odd_even_columns, use_side_ref_pixels, side_smoothing_length, side_gain
        See :class:`RefpixParams`.
    out : ndarray, float32, same shape as ``data``, optional
        Where to write the corrected ramp when a correction is made (may be ``data`` itself,
        to work in place); by default a new array. Untouched when nothing is applied.
    """
    nints, ngroups, ny, nx = check_ramp(data)
    pixeldq = check_image("pixeldq", pixeldq, (ny, nx))
    if noutputs not in (1, 4):
        raise ValueError(f"noutputs must be 1 or 4, got {noutputs}")
    x0, y0 = xstart - 1, ystart - 1
    if x0 < 0 or y0 < 0 or x0 + nx > NIR_SIZE or y0 + ny > NIR_SIZE:
        raise ValueError(f"window ({xstart}, {ystart}, {nx}, {ny}) is outside the {NIR_SIZE}^2 detector")

    rows = y0 + np.arange(ny)
    cols = x0 + np.arange(nx)
    ref_row = (rows < NIR_BORDER) | (rows >= NIR_SIZE - NIR_BORDER)
    ref_col = (cols < NIR_BORDER) | (cols >= NIR_SIZE - NIR_BORDER)
    n_ref_rows, n_ref_cols = int(ref_row.sum()), int(ref_col.sum())
    bad = (pixeldq & np.uint32(flags(dqflags)["DO_NOT_USE"])) != 0
    parity = cols % 2 if odd_even_columns else np.zeros(nx, dtype=np.int64)
    full_frame = (nx, ny) == (NIR_SIZE, NIR_SIZE)

    if noutputs == 1 and not full_frame:
        usable = (ref_row[:, None] | ref_col[None, :]) & ~bad
        if not usable.any():
            return RefpixResult(data, False, False, n_ref_rows, n_ref_cols, "no reference pixels in the window")
        out = _prepare_out(data, out)
        classes = np.unique(parity)
        for i in range(nints):
            ramp = out[i]
            offsets = np.zeros((ngroups, nx), np.float32)
            for p in classes:
                members = usable & (parity == p)[None, :]
                if members.any():
                    means = clipped_mean(ramp[:, members].astype(np.float64))
                    offsets[:, parity == p] = np.nan_to_num(means, nan=0.0)[:, None]
            ramp -= offsets[:, np.newaxis, :]
        note = f"one output: {int(usable.sum())} reference pixels, {classes.size} column class(es)"
        return RefpixResult(out, True, False, n_ref_rows, n_ref_cols, note)

    bottom = np.flatnonzero(rows < NIR_BORDER)
    top = np.flatnonzero(rows >= NIR_SIZE - NIR_BORDER)
    left = np.flatnonzero(cols < NIR_BORDER)
    right = np.flatnonzero(cols >= NIR_SIZE - NIR_BORDER)
    row_sets = [r for r in (bottom, top) if r.size]
    side_sets = [c for c in (left, right) if c.size] if use_side_ref_pixels else []
    if not row_sets and not side_sets:
        return RefpixResult(data, False, False, n_ref_rows, n_ref_cols, "no reference pixels in the window")

    col_class = (cols // NIR_AMP_WIDTH) * 2 + parity
    classes = np.unique(col_class)
    class_index = np.searchsorted(classes, col_class)
    reflect_low, reflect_high = y0 == 0, y0 + ny == NIR_SIZE
    out = _prepare_out(data, out)
    for i in range(nints):
        ramp = out[i]  # (ngroups, ny, nx), corrected in place
        if row_sets:
            offsets = np.zeros((ngroups, classes.size), np.float64)
            for k, cls in enumerate(classes):
                class_cols = np.flatnonzero(col_class == cls)
                means = []
                for ref_rows in row_sets:
                    vals = ramp[:, ref_rows][:, :, class_cols].astype(np.float64)
                    vals[:, bad[np.ix_(ref_rows, class_cols)]] = np.nan
                    means.append(clipped_mean(vals.reshape(ngroups, -1)))
                offsets[:, k] = np.nan_to_num(_nanmean(np.stack(means), axis=0), nan=0.0)
            ramp -= offsets[:, class_index][:, np.newaxis, :].astype(np.float32)
        if side_sets:
            signals = [
                _box_median(ramp[:, :, c].astype(np.float64), bad[:, c], side_smoothing_length, reflect_low,
                            reflect_high)
                for c in side_sets
            ]
            side = np.nan_to_num(_nanmean(np.stack(signals), axis=0), nan=0.0)  # (ngroups, ny)
            ramp -= (side_gain * side)[:, :, np.newaxis].astype(np.float32)

    parts = [f"{len(row_sets)} reference-row block(s)" if row_sets else "no reference rows"]
    if use_side_ref_pixels:
        parts.append(f"{len(side_sets)} side block(s)" if side_sets else "no side columns")
    return RefpixResult(out, bool(row_sets), bool(side_sets), n_ref_rows, n_ref_cols, "; ".join(parts))


def correct_miri_refpix(
    data: np.ndarray,
    pixeldq: np.ndarray,
    *,
    xstart: int = 1,
    ystart: int = 1,
    odd_even_rows: bool = _DEFAULTS.odd_even_rows,
    miri_subarrays: bool = _DEFAULTS.miri_subarrays,
    dqflags: Mapping[str, int] | None = None,
    out: np.ndarray | None = None,
) -> RefpixResult:
    """Reference-column correction for a MIRI ramp (full frame, or a subarray holding
    reference columns).

    Parameters
    ----------
    data : ndarray, float32, shape (nints, ngroups, ny, nx)
    pixeldq : ndarray, uint32, shape (ny, nx)
    xstart, ystart : int
        1-based full-frame column and row of the window's first pixel (SUBSTRT1, SUBSTRT2).
    odd_even_rows : bool
        Separate means for odd and even detector rows.
    miri_subarrays : bool
        Correct subarrays too (see the module docstring); False skips them, as jwst.
    out : ndarray, float32, same shape as ``data``, optional
        As for :func:`correct_nir_refpix`.
    """
    nints, ngroups, ny, nx = check_ramp(data)
    pixeldq = check_image("pixeldq", pixeldq, (ny, nx))
    x0, y0 = xstart - 1, ystart - 1
    if x0 < 0 or y0 < 0 or x0 + nx > MIRI_NX or y0 + ny > MIRI_NY:
        raise ValueError(f"window ({xstart}, {ystart}, {nx}, {ny}) is outside the MIRI {MIRI_NX} x {MIRI_NY} detector")
    full_frame = (nx, ny) == (MIRI_NX, MIRI_NY)
    if not full_frame and not miri_subarrays:
        return RefpixResult(data, False, False, 0, 0, "MIRI subarray: refpix skipped (miri_subarrays off)")
    cols = x0 + np.arange(nx)
    left = np.flatnonzero(cols < MIRI_LEFT + MIRI_NAMPS)
    right = np.flatnonzero((cols >= MIRI_RIGHT) & (cols < MIRI_RIGHT + MIRI_NAMPS))
    n_ref_cols = left.size + right.size
    if n_ref_cols == 0:
        return RefpixResult(data, False, False, 0, 0, "MIRI subarray without reference columns: refpix skipped")

    bad = (pixeldq & np.uint32(flags(dqflags)["DO_NOT_USE"])) != 0
    row_class = (y0 + np.arange(ny)) % 2 if odd_even_rows else np.zeros(ny, dtype=np.int64)
    classes = np.unique(row_class)
    col_amp = cols % MIRI_NAMPS
    out = np.empty_like(data, dtype=np.float32) if out is None else check_out(out, data)
    sides = [s for s in (left, right) if s.size]
    for i in range(nints):
        # reference columns relative to group 0 (so group 0 gets no correction)
        means = np.full((len(sides), ngroups, 2, MIRI_NAMPS), np.nan)  # (side, group, row class, amplifier)
        for s, ref_cols in enumerate(sides):
            relative = (data[i][:, :, ref_cols] - data[i, 0][:, ref_cols]).astype(np.float64)
            relative[:, bad[:, ref_cols]] = np.nan
            for k, c in enumerate(ref_cols):
                for p in classes:
                    means[s, :, p, col_amp[c]] = clipped_mean(relative[:, row_class == p, k])
        offsets = np.nan_to_num(_nanmean(means, axis=0), nan=0.0)
        for g in range(ngroups):
            correction = offsets[g][row_class][:, col_amp].astype(np.float32)  # (ny, nx)
            np.subtract(data[i, g], correction, out=out[i, g])
    where = "full frame" if full_frame else "subarray"
    return RefpixResult(out, True, False, 0, n_ref_cols, f"MIRI {where}: {n_ref_cols} reference columns used")
