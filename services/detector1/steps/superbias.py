"""superbias: subtract the 2-D bias frame from every group (NIR only).

NaN bias values are treated as 0; the bias reference DQ is ORed into PIXELDQ
(jwst-conventions.md §4, "Superbias"). MIRI does not run this step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._common import check_image, check_out, check_ramp

__all__ = ["SuperbiasResult", "subtract_superbias"]



@dataclass(frozen=True)
class SuperbiasResult:
    data: np.ndarray  # float32 (nints, ngroups, ny, nx)
    pixeldq: np.ndarray  # uint32 (ny, nx)


def subtract_superbias(
    data: np.ndarray,
    pixeldq: np.ndarray,
    bias: np.ndarray,
    bias_dq: np.ndarray | None = None,
    *,
    out: np.ndarray | None = None,
) -> SuperbiasResult:
    """Subtract ``bias`` (DN, shape (ny, nx)) from every group of every integration.

    Parameters
    ----------
    data : ndarray, float32, shape (nints, ngroups, ny, nx)
    pixeldq : ndarray, uint32, shape (ny, nx)
    bias : ndarray, shape (ny, nx)
        SUPERBIAS SCI, cut to the science window; NaN means "no bias known" and subtracts 0.
    bias_dq : ndarray, shape (ny, nx), optional
        SUPERBIAS DQ, ORed into PIXELDQ.
    out : ndarray, float32, same shape as ``data``, optional
        Where to write the corrected ramp (may be ``data`` itself, to work in place);
        by default a new array.
    """
    _, _, ny, nx = check_ramp(data)
    bias = check_image("bias", bias, (ny, nx))
    pixeldq = check_image("pixeldq", pixeldq, (ny, nx))
    clean = np.where(np.isfinite(bias), bias, 0.0).astype(np.float32)
    if out is None:
        out = (data - clean).astype(np.float32, copy=False)
    else:
        np.subtract(data, clean, out=check_out(out, data))
    new_pixeldq = pixeldq.astype(np.uint32)
    if bias_dq is not None:
        new_pixeldq = new_pixeldq | check_image("bias_dq", bias_dq, (ny, nx)).astype(np.uint32)
    return SuperbiasResult(data=out, pixeldq=new_pixeldq)
