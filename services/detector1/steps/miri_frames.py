"""MIRI firstframe and lastframe: mark the first / last group of each integration unusable.

MIRI's first group carries reset transients and its last group a last-frame effect. Both
steps only set DO_NOT_USE in GROUPDQ (jwst-conventions.md §4, "Other steps"):

- firstframe (deprecated upstream, skipped by default): group 1 when NGROUPS > 3;
- lastframe: the last group when NGROUPS > 2.

With fewer groups there would not be enough left to fit, so nothing is flagged and the
result says ``applied=False``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ._common import check_ramp, flags

__all__ = [
    "FrameFlagResult",
    "flag_first_frame",
    "flag_last_frame",
]


@dataclass(frozen=True)
class FrameFlagResult:
    """``groupdq`` is the input array itself when ``applied`` is False."""

    groupdq: np.ndarray  # uint8 (nints, ngroups, ny, nx)
    applied: bool


def _flag_group(groupdq: np.ndarray, group: int, dqflags: Mapping[str, int] | None) -> np.ndarray:
    out = groupdq.copy()
    out[:, group] |= np.uint8(flags(dqflags)["DO_NOT_USE"])
    return out


def flag_first_frame(groupdq: np.ndarray, *, dqflags: Mapping[str, int] | None = None) -> FrameFlagResult:
    """Set DO_NOT_USE on group 1 (index 0) of every integration when NGROUPS > 3."""
    _, ngroups, _, _ = check_ramp(groupdq)
    if ngroups <= 3:
        return FrameFlagResult(groupdq=groupdq, applied=False)
    return FrameFlagResult(groupdq=_flag_group(groupdq, 0, dqflags), applied=True)


def flag_last_frame(groupdq: np.ndarray, *, dqflags: Mapping[str, int] | None = None) -> FrameFlagResult:
    """Set DO_NOT_USE on the last group of every integration when NGROUPS > 2."""
    _, ngroups, _, _ = check_ramp(groupdq)
    if ngroups <= 2:
        return FrameFlagResult(groupdq=groupdq, applied=False)
    return FrameFlagResult(groupdq=_flag_group(groupdq, ngroups - 1, dqflags), applied=True)
