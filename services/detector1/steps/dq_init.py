"""dq_init: seed the pixel and group DQ from the MASK reference.

The MASK DQ is ORed into PIXELDQ, and its DO_NOT_USE bit is copied into every group of
GROUPDQ so that later steps skip those pixels (jwst-conventions.md §4, "Other steps").
Flags already present (e.g. DROPOUT set by ingest) are kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ._common import check_image, check_out, check_ramp, flags

__all__ = ["DQInitResult", "initialize_dq"]



@dataclass(frozen=True)
class DQInitResult:
    pixeldq: np.ndarray  # uint32 (ny, nx)
    groupdq: np.ndarray  # uint8 (nints, ngroups, ny, nx)


def initialize_dq(
    pixeldq: np.ndarray,
    groupdq: np.ndarray,
    mask_dq: np.ndarray,
    *,
    dqflags: Mapping[str, int] | None = None,
    groupdq_out: np.ndarray | None = None,
) -> DQInitResult:
    """OR the MASK DQ into PIXELDQ and copy its DO_NOT_USE bit into GROUPDQ.

    Parameters
    ----------
    pixeldq : ndarray, uint32, shape (ny, nx)
        Existing pixel DQ (zeros for a fresh ramp).
    groupdq : ndarray, uint8, shape (nints, ngroups, ny, nx)
        Existing group DQ.
    mask_dq : ndarray, integer, shape (ny, nx)
        DQ array of the MASK reference, cut to the science window.
    dqflags : mapping, optional
        DQ bit values; defaults to the local table.
    groupdq_out : ndarray, uint8, same shape as ``groupdq``, optional
        Where to write the new GROUPDQ (may be ``groupdq`` itself, to work in place); by
        default a new array.
    """
    f = flags(dqflags)
    _, _, ny, nx = check_ramp(groupdq)
    pixeldq = check_image("pixeldq", pixeldq, (ny, nx))
    mask = check_image("mask_dq", mask_dq, (ny, nx)).astype(np.uint32)
    new_pixeldq = (pixeldq.astype(np.uint32) | mask).astype(np.uint32)
    dnu = np.uint8(f["DO_NOT_USE"])
    group_bits = np.where((mask & np.uint32(f["DO_NOT_USE"])) != 0, dnu, np.uint8(0))
    if groupdq_out is None:
        new_groupdq = (groupdq | group_bits[np.newaxis, np.newaxis]).astype(np.uint8, copy=False)
    else:
        new_groupdq = np.bitwise_or(groupdq, group_bits[np.newaxis, np.newaxis],
                                    out=check_out(groupdq_out, groupdq, dtype=np.uint8, name="groupdq_out"))
    return DQInitResult(pixeldq=new_pixeldq, groupdq=new_groupdq)
