"""dark_current: subtract the dark ramp, matched frame by frame to the science readout.

The DARK reference is taken with NFRAMES=1 and GROUPGAP=0, so each of its groups is one
frame. Science group g of a readout with NFRAMES frames per group and GROUPGAP dropped
frames between groups averaged frames ``f0 + g*(NFRAMES+GROUPGAP) ... + NFRAMES-1`` (``f0``
= DRPFRMS1, frames dropped at the start of the integration, usually 0), so the matching dark
value is the mean of those dark frames (jwst-conventions.md §4, "Dark").

- The same dark ramp is subtracted from every integration; a 4-D (per-integration) dark, as
  MIRI uses, is matched integration by integration (the last dark integration is reused for
  later science integrations).
- When the science readout needs frames past the end of the dark, each missing frame is
  extrapolated linearly in frame index from the last two dark frames (a single-frame dark is
  held constant).
- NaN dark values are treated as 0; the dark DQ (any shape whose last two axes are the
  window) is ORed into PIXELDQ.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._common import check_image, check_out, check_ramp

__all__ = ["DarkResult", "dark_frames_for_groups", "subtract_dark"]



@dataclass(frozen=True)
class DarkResult:
    data: np.ndarray  # float32 (nints, ngroups, ny, nx)
    pixeldq: np.ndarray  # uint32 (ny, nx)
    n_frames_extrapolated: int  # frames the science readout runs past the end of the dark (0 = none)


def dark_frames_for_groups(
    ngroups: int, *, nframes: int, groupgap: int, drop_frames1: int = 0
) -> list[np.ndarray]:
    """Dark frame indices averaged into each science group (a list of ``ngroups`` arrays)."""
    if nframes < 1 or groupgap < 0 or drop_frames1 < 0:
        raise ValueError("nframes must be >= 1, groupgap and drop_frames1 >= 0")
    stride = nframes + groupgap
    return [drop_frames1 + g * stride + np.arange(nframes) for g in range(ngroups)]


def _clean_frame(frame: np.ndarray) -> np.ndarray:
    frame = np.asarray(frame, np.float32)
    return np.where(np.isfinite(frame), frame, np.float32(0.0))


def _matched_group(dark_ramp: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """Mean of dark frames ``frames`` of one dark integration (nframes_dark, ny, nx), float32.

    Frames past the end are extrapolated linearly from the last two frames.
    """
    ndark = dark_ramp.shape[0]
    inside = frames[frames < ndark]
    beyond = frames[frames >= ndark]
    if beyond.size == 0 and frames.size == 1:
        return _clean_frame(dark_ramp[frames[0]])
    acc = np.zeros(dark_ramp.shape[1:], np.float32)
    for f in inside:
        acc += _clean_frame(dark_ramp[f])
    if beyond.size:
        last = _clean_frame(dark_ramp[-1])
        step = last - _clean_frame(dark_ramp[-2]) if ndark >= 2 else np.zeros_like(last)
        # sum over missing frames f of: last + (f - (ndark - 1)) * step
        acc += np.float32(beyond.size) * last + np.float32(np.sum(beyond - (ndark - 1))) * step
    acc /= np.float32(frames.size)
    return acc


def subtract_dark(
    data: np.ndarray,
    pixeldq: np.ndarray,
    dark: np.ndarray,
    dark_dq: np.ndarray | None = None,
    *,
    nframes: int,
    groupgap: int,
    drop_frames1: int = 0,
    out: np.ndarray | None = None,
) -> DarkResult:
    """Subtract the frame-matched dark from every integration.

    Parameters
    ----------
    data : ndarray, float32, shape (nints, ngroups, ny, nx)
    pixeldq : ndarray, uint32, shape (ny, nx)
    dark : ndarray, shape (ndark_frames, ny, nx) or (ndark_ints, ndark_frames, ny, nx)
        DARK reference SCI (DN), one frame per dark group.
    dark_dq : ndarray, optional
        DARK DQ: (ny, nx), or with leading axes that are ORed together.
    nframes, groupgap, drop_frames1 : int
        Science readout pattern (NFRAMES, GROUPGAP, DRPFRMS1).
    out : ndarray, float32, same shape as ``data``, optional
        Where to write the corrected ramp (may be ``data`` itself, to work in place);
        by default a new array.
    """
    nints, ngroups, ny, nx = check_ramp(data)
    pixeldq = check_image("pixeldq", pixeldq, (ny, nx))
    dark = np.asarray(dark)
    if dark.ndim == 3:
        dark = dark[np.newaxis]
    if dark.ndim != 4 or dark.shape[2:] != (ny, nx) or dark.shape[1] < 1:
        raise ValueError(f"dark must be (nframes, {ny}, {nx}) or (nints, nframes, {ny}, {nx}), got {dark.shape}")
    frame_lists = dark_frames_for_groups(
        ngroups, nframes=nframes, groupgap=groupgap, drop_frames1=drop_frames1
    )
    new_pixeldq = pixeldq.astype(np.uint32)
    if dark_dq is not None:
        ddq = np.asarray(dark_dq).astype(np.uint32)
        if ddq.shape[-2:] != (ny, nx):
            raise ValueError(f"dark_dq shape {ddq.shape} does not end in ({ny}, {nx})")
        new_pixeldq = new_pixeldq | np.bitwise_or.reduce(ddq.reshape(-1, ny, nx), axis=0)

    out = np.empty_like(data, dtype=np.float32) if out is None else check_out(out, data)
    per_integration = dark.shape[0] > 1
    for g, frames in enumerate(frame_lists):
        if not per_integration:
            np.subtract(data[:, g], _matched_group(dark[0], frames), out=out[:, g])
            continue
        for i in range(nints):
            matched = _matched_group(dark[min(i, dark.shape[0] - 1)], frames)
            np.subtract(data[i, g], matched, out=out[i, g])
    frames_needed = int(frame_lists[-1].max()) + 1 if frame_lists else 0
    n_extrap = max(0, frames_needed - dark.shape[1])
    return DarkResult(data=out, pixeldq=new_pixeldq, n_frames_extrapolated=n_extrap)
