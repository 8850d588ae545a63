"""group_scale: rescale groups averaged by the on-board divisor rather than by NFRAMES.

When the flight software sums NFRAMES frames per group but divides by FRMDIVSR (a power
of two) instead of NFRAMES, every group value is off by FRMDIVSR/NFRAMES. The step
multiplies the ramp by that factor; when the two agree (the usual case) nothing is done and
the step is recorded as SKIPPED (jwst-conventions.md §4, "Other steps").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._common import check_out, check_ramp

__all__ = ["GroupScaleResult", "scale_groups"]



@dataclass(frozen=True)
class GroupScaleResult:
    """Output of :func:`scale_groups`.

    ``data`` is the input array itself when ``applied`` is False (nothing was changed).
    """

    data: np.ndarray
    applied: bool
    factor: float


def scale_groups(
    data: np.ndarray, *, nframes: int, frame_divisor: int | None, out: np.ndarray | None = None
) -> GroupScaleResult:
    """Multiply a ramp by FRMDIVSR/NFRAMES when the two differ.

    Parameters
    ----------
    data : ndarray, float32, shape (nints, ngroups, ny, nx)
        Ramp in DN.
    nframes : int
        NFRAMES, frames averaged into each group.
    frame_divisor : int or None
        FRMDIVSR, the divisor the flight software used; None means "same as NFRAMES".
    out : ndarray, float32, same shape as ``data``, optional
        Where to write the scaled ramp when scaling applies (may be ``data`` itself, to work
        in place); by default a new array. Untouched when nothing is applied.
    """
    check_ramp(data)
    if nframes < 1:
        raise ValueError(f"nframes must be >= 1, got {nframes}")
    if frame_divisor is None or frame_divisor == nframes:
        return GroupScaleResult(data=data, applied=False, factor=1.0)
    if frame_divisor < 1:
        raise ValueError(f"frame_divisor must be >= 1, got {frame_divisor}")
    factor = frame_divisor / nframes
    if out is None:
        scaled = (data * np.float32(factor)).astype(np.float32, copy=False)
    else:
        scaled = np.multiply(data, np.float32(factor), out=check_out(out, data))
    return GroupScaleResult(data=scaled, applied=True, factor=factor)
