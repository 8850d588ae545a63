"""saturation: flag groups at or above the per-pixel saturation level.

Rules (jwst-conventions.md §4, "Saturation"; stcal ``saturation.flag_saturated_pixels``):

- a group whose value is >= the threshold is SATURATED, and so is every later group of that
  integration (a saturated pixel stays saturated until reset);
- with ``n_pix_grow_sat = k`` the flag also covers the (2k+1) x (2k+1) box around each
  saturated pixel (charge spilling into neighbours), in the same and all later groups;
- a group value <= 0 gets AD_FLOOR | DO_NOT_USE (that group only);
- a NaN threshold, or NO_SAT_CHECK in the reference DQ, sets the threshold to 65536 (never
  reached by 16-bit data) and flags NO_SAT_CHECK in PIXELDQ; the reference DQ is ORed into
  PIXELDQ.

Runs on bias-included DN, i.e. before superbias. Not implemented: the ``use_readpatt``
group-2 check, which needs frame-level readout information the kernel does not receive.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ._common import check_image, check_out, check_ramp, flags

__all__ = ["SaturationParams", "SaturationResult", "flag_saturation", "NO_CHECK_THRESHOLD"]

#: Threshold used where the reference gives none (NaN) or says NO_SAT_CHECK.
NO_CHECK_THRESHOLD = 65536.0


class SaturationParams(BaseModel):
    """Parameters of the saturation step."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    n_pix_grow_sat: int = Field(
        1, ge=0, description="Also flag this many pixels around each saturated pixel (1 = 3x3 box)."
    )


_DEFAULTS = SaturationParams()


@dataclass(frozen=True)
class SaturationResult:
    groupdq: np.ndarray  # uint8 (nints, ngroups, ny, nx)
    pixeldq: np.ndarray  # uint32 (ny, nx)


def _grow(first: np.ndarray, n: int) -> np.ndarray:
    """Minimum filter of a 2-D "first saturated group" map over a (2n+1)^2 box (separable)."""
    out = first
    for axis in (1, 0):
        for _ in range(n):
            grown = out.copy()
            lo = [slice(None), slice(None)]
            hi = [slice(None), slice(None)]
            lo[axis], hi[axis] = slice(1, None), slice(None, -1)
            np.minimum(grown[tuple(lo)], out[tuple(hi)], out=grown[tuple(lo)])
            np.minimum(grown[tuple(hi)], out[tuple(lo)], out=grown[tuple(hi)])
            out = grown
    return out


def flag_saturation(
    data: np.ndarray,
    groupdq: np.ndarray,
    pixeldq: np.ndarray,
    sat_thresh: np.ndarray,
    sat_dq: np.ndarray | None = None,
    *,
    n_pix_grow_sat: int = _DEFAULTS.n_pix_grow_sat,
    dqflags: Mapping[str, int] | None = None,
    groupdq_out: np.ndarray | None = None,
) -> SaturationResult:
    """Flag saturated and A/D-floor groups.

    Parameters
    ----------
    data : ndarray, float32, shape (nints, ngroups, ny, nx)
        Ramp in DN, bias included.
    groupdq : ndarray, uint8, same shape as ``data``
    pixeldq : ndarray, uint32, shape (ny, nx)
    sat_thresh : ndarray, shape (ny, nx)
        SATURATION reference SCI (DN), cut to the window.
    sat_dq : ndarray, shape (ny, nx), optional
        SATURATION reference DQ.
    n_pix_grow_sat : int
        Growth radius in pixels.
    dqflags : mapping, optional
        DQ bit values; defaults to the local table.
    groupdq_out : ndarray, uint8, same shape as ``groupdq``, optional
        Where to write the new GROUPDQ (may be ``groupdq`` itself, to work in place); by
        default a copy of ``groupdq``.
    """
    f = flags(dqflags)
    nints, ngroups, ny, nx = check_ramp(data, groupdq)
    thresh = check_image("sat_thresh", sat_thresh, (ny, nx)).astype(np.float64)
    pixeldq = check_image("pixeldq", pixeldq, (ny, nx))
    no_sat_check = np.uint32(f["NO_SAT_CHECK"])
    ref_dq = (
        np.zeros((ny, nx), np.uint32)
        if sat_dq is None
        else check_image("sat_dq", sat_dq, (ny, nx)).astype(np.uint32)
    )
    no_check = ~np.isfinite(thresh) | ((ref_dq & no_sat_check) != 0)
    thresh = np.where(no_check, NO_CHECK_THRESHOLD, thresh).astype(np.float32)
    new_pixeldq = pixeldq.astype(np.uint32) | ref_dq | np.where(no_check, no_sat_check, np.uint32(0))

    sat_bit = np.uint8(f["SATURATED"])
    floor_bits = np.uint8(f["AD_FLOOR"] | f["DO_NOT_USE"])
    if groupdq_out is None:
        new_groupdq = groupdq.copy()
    else:
        new_groupdq = check_out(groupdq_out, groupdq, dtype=np.uint8, name="groupdq_out")
        if new_groupdq is not groupdq:
            np.copyto(new_groupdq, groupdq)
    for i in range(nints):
        # index of the first group at or above threshold (ngroups = never); every later group
        # is saturated too, and growing the flag is a minimum filter of this 2-D map
        first = np.full((ny, nx), ngroups, np.int32)
        for g in range(ngroups - 1, -1, -1):
            np.copyto(first, g, where=data[i, g] >= thresh)
        if n_pix_grow_sat and (first < ngroups).any():
            first = _grow(first, n_pix_grow_sat)
        for g in range(ngroups):
            gdq = new_groupdq[i, g]
            np.bitwise_or(gdq, sat_bit, out=gdq, where=first <= g)
            np.bitwise_or(gdq, floor_bits, out=gdq, where=data[i, g] <= 0)
    return SaturationResult(groupdq=new_groupdq, pixeldq=new_pixeldq)
