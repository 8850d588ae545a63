"""Invalid pixels marked the same way in every array, as the public pipeline leaves a
``_cal``: a pixel that is NaN in SCI, ERR or any variance, or flagged DO_NOT_USE, becomes
NaN in all of them and DO_NOT_USE in DQ.

The public pipeline does this at the end of flat_field and of photom (jwst
``lib/pipe_utils.match_nans_and_flags``, called from ``flatfield/flat_field.py`` and
``photom/photom.py``), over data, err, var_poisson, var_rnoise and var_flat; other
arrays (AREA) are left alone, and only NaN (not infinity) counts as invalid.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from shared.datamodels import dqflags as _dqflags

__all__ = ["InvalidResult", "mark_invalid"]


@dataclass(frozen=True)
class InvalidResult:
    """``dq`` with DO_NOT_USE wherever a pixel is invalid; ``arrays`` the inputs (same
    keys) with NaN there; ``n_invalid`` counts invalid pixels (all planes of a cube)."""

    dq: np.ndarray
    arrays: dict[str, np.ndarray]
    n_invalid: int


def mark_invalid(dq: np.ndarray, arrays: Mapping[str, np.ndarray | None], *,
                 dqflags: Mapping[str, int] = _dqflags.PIXEL) -> InvalidResult:
    """Make NaN and DO_NOT_USE agree over ``dq`` and ``arrays``.

    Parameters
    ----------
    dq : ndarray of uint32, shape (ny, nx) or (nints, ny, nx)
    arrays : mapping of str to ndarray or None
        SCI, ERR and variances, each the shape of ``dq`` (None entries are passed through).
    dqflags : mapping
        DQ bit values by name.

    Returns
    -------
    InvalidResult
        New arrays; the inputs are not modified.
    """
    dq = np.asarray(dq, np.uint32)
    present = {k: np.asarray(v) for k, v in arrays.items() if v is not None}
    for name, a in present.items():
        if a.shape != dq.shape:
            raise ValueError(f"{name} has shape {a.shape}, DQ {dq.shape}")
    do_not_use = np.uint32(dqflags["DO_NOT_USE"])
    invalid = (dq & do_not_use) != 0
    for a in present.values():
        invalid |= np.isnan(a)
    out = {k: (np.where(invalid, np.nan, a).astype(a.dtype) if invalid.any() else a.copy())
           for k, a in present.items()}
    out.update({k: None for k, v in arrays.items() if v is None})
    return InvalidResult(np.where(invalid, dq | do_not_use, dq).astype(np.uint32), out, int(invalid.sum()))
