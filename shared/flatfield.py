"""The flat-field kernel: divide by the flat and carry its uncertainty into VAR_FLAT.

One kernel for every pipeline that flat-fields: calwebb_image2/spec2 (stage2's flat_field
step) and calwebb_guider (detector1's guide-star pipeline). Pure: arrays in, arrays out.

Rules (jwst-conventions.md §5, "Flat field"; the public pipeline's imaging flat):

- SCI / flat; VAR_POISSON and VAR_RNOISE / flat²;
- VAR_FLAT = SCI² · flatERR² / flat², with SCI the flat-fielded (already divided) value:
  the variance of SCI_in / flat from the flat's relative error (flatERR / flat)², as the
  public pipeline computes it (jwst ``flatfield/flat_field.py`` ``apply_flat_field``
  divides the data first, then squares it);
- ERR = sqrt(VAR_POISSON + VAR_RNOISE + VAR_FLAT);
- a flat value that is NaN or 0, or whose reference DQ says NO_FLAT_FIELD, flags
  NO_FLAT_FIELD | DO_NOT_USE and the pixel is left uncorrected (flat taken as 1);
- the flat's DQ is ORed into the science DQ; a non-finite flat ERR counts as 0.

Making NaN and DO_NOT_USE agree afterwards (as the public step ends) is
stage2's ``mark_invalid``, called by its pipeline.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from shared.arrays import check_image_stack, check_reference, float32_op, total_error
from shared.datamodels import dqflags as _dqflags

__all__ = ["FlatFieldResult", "apply_flat"]


@dataclass(frozen=True)
class FlatFieldResult:
    """Flat-fielded arrays, float32 (uint32 for ``dq``), the shape of the input ``sci``;
    ``n_no_flat`` counts window pixels left uncorrected (NO_FLAT_FIELD)."""

    sci: np.ndarray
    err: np.ndarray
    dq: np.ndarray
    var_poisson: np.ndarray
    var_rnoise: np.ndarray
    var_flat: np.ndarray
    n_no_flat: int


def apply_flat(
    sci: np.ndarray,
    dq: np.ndarray,
    var_poisson: np.ndarray,
    var_rnoise: np.ndarray,
    flat: np.ndarray,
    flat_dq: np.ndarray | None = None,
    flat_err: np.ndarray | None = None,
    *,
    dqflags: Mapping[str, int] = _dqflags.PIXEL,
) -> FlatFieldResult:
    """Flat-field an image or a cube of integrations.

    Parameters
    ----------
    sci : ndarray, shape (ny, nx) or (nints, ny, nx)
        Count rate, DN/s.
    dq : ndarray of uint32, same shape as ``sci``
    var_poisson, var_rnoise : ndarray, same shape as ``sci``
        Variances, (DN/s)².
    flat : ndarray, shape (ny, nx)
        FLAT SCI cut to the window (dimensionless; the rate is divided by it).
    flat_dq : ndarray of uint32, shape (ny, nx), optional
        FLAT DQ, ORed into ``dq``.
    flat_err : ndarray, shape (ny, nx), optional
        FLAT ERR (1-sigma, same units as ``flat``); None means a perfect flat (VAR_FLAT 0).
    dqflags : mapping
        DQ bit values by name.

    Returns
    -------
    FlatFieldResult
    """
    sci = check_image_stack("sci", sci)
    flat = check_reference("flat", flat, sci.shape).astype(np.float64)
    ref_dq = check_reference("flat_dq", flat_dq, sci.shape)
    ref_dq = np.zeros(flat.shape, np.uint32) if ref_dq is None else ref_dq.astype(np.uint32)
    no_flat = np.uint32(dqflags["NO_FLAT_FIELD"])
    bad = ~np.isfinite(flat) | (flat == 0.0) | ((ref_dq & no_flat) != 0)
    ref_dq = ref_dq | np.where(bad, no_flat | np.uint32(dqflags["DO_NOT_USE"]), np.uint32(0))
    flat = np.where(bad, 1.0, flat)
    err = check_reference("flat_err", flat_err, sci.shape)
    err = np.zeros(flat.shape) if err is None else np.where(np.isfinite(err), err, 0.0).astype(np.float64)

    # float64 arithmetic, float32 results, one float64 temporary the size of sci (the
    # flat-fielded SCI, from which VAR_FLAT is computed in place): a cube of integrations
    # costs its results and that one
    flat2 = flat * flat
    var_p = float32_op(np.divide, var_poisson, flat2)
    var_r = float32_op(np.divide, var_rnoise, flat2)
    out = np.divide(sci, flat, dtype=np.float64)
    sci_out = out.astype(np.float32)
    out *= out
    out *= err
    out *= err
    out /= flat2
    var_f = out.astype(np.float32)
    del out
    return FlatFieldResult(
        sci=sci_out,
        err=total_error(var_p, var_r, var_f),
        dq=np.asarray(dq, np.uint32) | ref_dq,
        var_poisson=var_p,
        var_rnoise=var_r,
        var_flat=var_f,
        n_no_flat=int(bad.sum()),
    )
