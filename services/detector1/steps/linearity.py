"""linearity: correct the non-linear detector response with a per-pixel polynomial.

Fc = sum_k c_k F^k, k = 0..n, with COEFFS of shape (ncoeffs, ny, nx) in increasing power
(jwst-conventions.md §4, "Linearity"). Saturated groups are left as they are. Where any
coefficient is NaN, or the reference DQ says NO_LIN_CORR, the pixel is not corrected and
NO_LIN_CORR is flagged in PIXELDQ; the reference DQ is ORed into PIXELDQ. The polynomial is
evaluated in float32 (Horner), exact to ~1e-7 relative, far below the read noise.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ._common import check_image, check_out, check_ramp, flags, iter_blocks

__all__ = ["LinearityResult", "correct_linearity"]



@dataclass(frozen=True)
class LinearityResult:
    data: np.ndarray  # float32 (nints, ngroups, ny, nx)
    pixeldq: np.ndarray  # uint32 (ny, nx)


def correct_linearity(
    data: np.ndarray,
    groupdq: np.ndarray,
    pixeldq: np.ndarray,
    coeffs: np.ndarray,
    lin_dq: np.ndarray | None = None,
    *,
    dqflags: Mapping[str, int] | None = None,
    out: np.ndarray | None = None,
) -> LinearityResult:
    """Apply the linearity polynomial to every unsaturated group.

    Parameters
    ----------
    data : ndarray, float32, shape (nints, ngroups, ny, nx)
        Ramp in DN (bias subtracted).
    groupdq : ndarray, uint8, same shape
    pixeldq : ndarray, uint32, shape (ny, nx)
    coeffs : ndarray, shape (ncoeffs, ny, nx)
        LINEARITY COEFFS, increasing power.
    lin_dq : ndarray, shape (ny, nx), optional
        LINEARITY DQ.
    dqflags : mapping, optional
    out : ndarray, float32, same shape as ``data``, optional
        Where to write the corrected ramp (may be ``data`` itself, to work in place);
        by default a new array.
    """
    f = flags(dqflags)
    nints, ngroups, ny, nx = check_ramp(data, groupdq)
    coeffs = np.asarray(coeffs)
    if coeffs.ndim != 3 or coeffs.shape[1:] != (ny, nx) or coeffs.shape[0] < 1:
        raise ValueError(f"coeffs must have shape (ncoeffs, {ny}, {nx}), got {coeffs.shape}")
    pixeldq = check_image("pixeldq", pixeldq, (ny, nx))
    ref_dq = (
        np.zeros((ny, nx), np.uint32)
        if lin_dq is None
        else check_image("lin_dq", lin_dq, (ny, nx)).astype(np.uint32)
    )
    no_lin = np.uint32(f["NO_LIN_CORR"])
    skip = ~np.all(np.isfinite(coeffs), axis=0) | ((ref_dq & no_lin) != 0)
    new_pixeldq = pixeldq.astype(np.uint32) | ref_dq | np.where(skip, no_lin, np.uint32(0))

    npix = ny * nx
    coeff_flat = coeffs.reshape(coeffs.shape[0], npix)
    skip_flat = skip.reshape(npix)
    sat = np.uint8(f["SATURATED"])
    out = np.empty(data.shape, np.float32) if out is None else check_out(out, data)
    data_flat = data.reshape(nints, ngroups, npix)
    gdq_flat = groupdq.reshape(nints, ngroups, npix)
    out_flat = out.reshape(nints, ngroups, npix)
    for blk in iter_blocks(npix):  # cache-sized blocks, all groups at once
        c = coeff_flat[:, blk].astype(np.float32)
        if c.shape[0] < 2:
            c = np.concatenate([c, np.zeros((2 - c.shape[0], c.shape[1]), np.float32)])
        skip_b = skip_flat[blk]
        if skip_b.any():  # the identity polynomial F -> F
            c[:, skip_b] = 0.0
            c[1, skip_b] = 1.0
        for i in range(nints):
            raw = data_flat[i, :, blk].astype(np.float32, copy=False)
            acc = np.empty(raw.shape, np.float32)
            acc[...] = c[-1]
            for k in range(c.shape[0] - 2, -1, -1):  # Horner
                acc *= raw
                acc += c[k]
            np.copyto(acc, raw, where=(gdq_flat[i, :, blk] & sat) != 0)
            out_flat[i, :, blk] = acc
    return LinearityResult(data=out, pixeldq=new_pixeldq)
