"""refpix: remove amplifier drifts using the reference pixels (jwst-conventions.md §4, "Refpix").

NIR (HgCdTe 2048 x 2048; reference pixels in a 4-pixel border)
    Full-frame rows 0-3 (bottom) and 2044-2047 (top), columns 0-3 (left) and 2044-2047
    (right) are reference pixels. With NOUTPUTS = 4 the amplifiers read columns 0-511,
    512-1023, 1024-1535 and 1536-2047; with NOUTPUTS = 1 the whole window is one amplifier.
    Per integration, group and amplifier (odd and even detector columns separately when
    ``odd_even_columns``), the 3-sigma clipped means of the bottom and of the top reference
    rows are averaged and subtracted from that amplifier's columns. Then, when
    ``use_side_ref_pixels``, the mean of the left and of the right reference columns in each
    row is smoothed with a running median over ``side_smoothing_length`` rows, the two sides
    are averaged, multiplied by ``side_gain`` and subtracted row by row. Pixels flagged
    DO_NOT_USE in PIXELDQ never enter a mean.

    Subarrays: the caller passes the window origin (SUBSTRT1/SUBSTRT2, 1-based) so the kernel
    knows which reference rows/columns the window contains. Only what exists is used (one of
    top/bottom, one side); a part with no reference pixels is omitted and the result says so.

MIRI (1032 x 1024; reference columns 0-3 and 1028-1031)
    Column c belongs to amplifier c % 4, so each amplifier has one reference column on each
    side. Per integration the first group is subtracted, then for each later group, amplifier
    and (when ``odd_even_rows``) row parity, the clipped means of the left and right reference
    columns are averaged and subtracted from the amplifier's columns; the first group is
    added back. Subarrays are skipped, as upstream.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ._common import check_image, check_out, check_ramp, clipped_mean, flags, running_median

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
    use_side_ref_pixels: bool = Field(True, description="NIR: apply the side (left/right) column correction.")
    side_smoothing_length: int = Field(
        11, ge=1, description="NIR: running-median height (rows) for the side reference signal."
    )
    side_gain: float = Field(1.0, description="NIR: multiplier applied to the side reference signal.")
    odd_even_rows: bool = Field(True, description="MIRI: separate means for odd and even rows.")


_DEFAULTS = RefpixParams()


@dataclass(frozen=True)
class RefpixResult:
    """Output of the refpix kernels.

    ``data`` is the input array itself when nothing was applied.
    """

    data: np.ndarray  # float32 (nints, ngroups, ny, nx)
    top_bottom_applied: bool  # NIR: reference-row correction made; MIRI: reference-column correction
    side_applied: bool  # NIR: side-column correction made (always False for MIRI)
    n_ref_rows: int  # reference rows found in the window
    n_ref_cols: int  # reference columns found in the window
    note: str  # human-readable summary for the log / step status


def _nanmean(stack: np.ndarray, axis: int) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices are expected
        return np.nanmean(stack, axis=axis)


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
    bottom = np.flatnonzero(rows < NIR_BORDER)
    top = np.flatnonzero(rows >= NIR_SIZE - NIR_BORDER)
    left = np.flatnonzero(cols < NIR_BORDER)
    right = np.flatnonzero(cols >= NIR_SIZE - NIR_BORDER)
    row_sets = [r for r in (bottom, top) if r.size]
    side_sets = [c for c in (left, right) if c.size] if use_side_ref_pixels else []
    n_ref_rows = bottom.size + top.size
    n_ref_cols = left.size + right.size
    if not row_sets and not side_sets:
        return RefpixResult(data, False, False, n_ref_rows, n_ref_cols, "no reference pixels in the window")

    amp = cols // NIR_AMP_WIDTH if noutputs == 4 else np.zeros(nx, dtype=np.int64)
    parity = cols % 2 if odd_even_columns else np.zeros(nx, dtype=np.int64)
    col_class = amp * 2 + parity
    classes = np.unique(col_class)
    class_index = np.searchsorted(classes, col_class)
    bad = (pixeldq & np.uint32(flags(dqflags)["DO_NOT_USE"])) != 0

    if out is None:
        out = data.astype(np.float32, copy=True)
    elif check_out(out, data) is not data:
        np.copyto(out, data)
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
            signals = []
            for ref_cols in side_sets:
                vals = ramp[:, :, ref_cols].astype(np.float64)
                vals[:, bad[:, ref_cols]] = np.nan
                signals.append(running_median(_nanmean(vals, axis=2), side_smoothing_length))
            side = np.nan_to_num(_nanmean(np.stack(signals), axis=0), nan=0.0)  # (ngroups, ny)
            ramp -= (side_gain * side)[:, :, np.newaxis].astype(np.float32)

    parts = []
    parts.append(f"{len(row_sets)} reference-row block(s)" if row_sets else "no reference rows")
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
    dqflags: Mapping[str, int] | None = None,
    out: np.ndarray | None = None,
) -> RefpixResult:
    """Reference-column correction for a MIRI full-frame ramp (subarrays are skipped).

    Parameters
    ----------
    data : ndarray, float32, shape (nints, ngroups, 1024, 1032)
    pixeldq : ndarray, uint32, shape (ny, nx)
    xstart, ystart : int
        1-based window origin; anything but the full frame skips the step.
    odd_even_rows : bool
        Separate means for odd and even rows.
    out : ndarray, float32, same shape as ``data``, optional
        As for :func:`correct_nir_refpix`.
    """
    nints, ngroups, ny, nx = check_ramp(data)
    pixeldq = check_image("pixeldq", pixeldq, (ny, nx))
    if (xstart, ystart, nx, ny) != (1, 1, MIRI_NX, MIRI_NY):
        return RefpixResult(data, False, False, 0, 0, "MIRI subarray: refpix skipped")

    bad = (pixeldq & np.uint32(flags(dqflags)["DO_NOT_USE"])) != 0
    row_class = np.arange(ny) % 2 if odd_even_rows else np.zeros(ny, dtype=np.int64)
    nclass = 2 if odd_even_rows else 1
    col_amp = np.arange(nx) % MIRI_NAMPS
    out = np.empty_like(data, dtype=np.float32) if out is None else check_out(out, data)
    ref_cols = np.concatenate([MIRI_LEFT + np.arange(MIRI_NAMPS), MIRI_RIGHT + np.arange(MIRI_NAMPS)])
    for i in range(nints):
        # reference columns relative to group 0 (so group 0 gets no correction)
        relative = (data[i][:, :, ref_cols] - data[i, 0][:, ref_cols]).astype(np.float64)
        relative[:, bad[:, ref_cols]] = np.nan
        offsets = np.zeros((ngroups, nclass, MIRI_NAMPS), np.float64)
        for a in range(MIRI_NAMPS):
            for p in range(nclass):
                class_rows = np.flatnonzero(row_class == p)
                left = clipped_mean(relative[:, class_rows, a])
                right = clipped_mean(relative[:, class_rows, MIRI_NAMPS + a])
                offsets[:, p, a] = np.nan_to_num(_nanmean(np.stack([left, right]), axis=0), nan=0.0)
        for g in range(ngroups):
            correction = offsets[g][row_class][:, col_amp].astype(np.float32)  # (ny, nx)
            np.subtract(data[i, g], correction, out=out[i, g])
    return RefpixResult(out, True, False, 0, 2 * MIRI_NAMPS, "MIRI reference columns used")
