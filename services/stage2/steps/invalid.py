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
                 dqflags: Mapping[str, int] = _dqflags.PIXEL, in_place: bool = False) -> InvalidResult:
    """Make NaN and DO_NOT_USE agree over ``dq`` and ``arrays``.

    Parameters
    ----------
    dq : ndarray of uint32, shape (ny, nx) or (nints, ny, nx)
    arrays : mapping of str to ndarray or None
        SCI, ERR and variances, each the shape of ``dq`` (None entries are passed through).
    dqflags : mapping
        DQ bit values by name.
    in_place : bool
        Write the NaN into ``arrays`` themselves, which the result then holds (for arrays
        the caller has just made and owns: a cube of integrations is not copied again);
        else into copies. ``dq`` is never written: the result's is new.

    Returns
    -------
    InvalidResult
        New arrays (``arrays`` themselves when ``in_place``); ``dq`` is not modified.
    """
    dq = np.asarray(dq, np.uint32)
    present = {k: np.asarray(v) for k, v in arrays.items() if v is not None}
    for name, a in present.items():
        if a.shape != dq.shape:
            raise ValueError(f"{name} has shape {a.shape}, DQ {dq.shape}")
    do_not_use = np.uint32(dqflags["DO_NOT_USE"])
    invalid = (dq & do_not_use) != 0
    nan = np.empty(dq.shape, bool)
    for a in present.values():
        invalid |= np.isnan(a, out=nan)
    del nan
    out = {k: a if in_place else a.copy() for k, a in present.items()}
    for a in out.values():
        np.copyto(a, np.nan, where=invalid)
    out.update({k: None for k, v in arrays.items() if v is None})
    flagged = dq.copy()
    np.bitwise_or(flagged, do_not_use, out=flagged, where=invalid)
    return InvalidResult(flagged, out, int(invalid.sum()))
