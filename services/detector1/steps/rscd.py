"""rscd: MIRI reset-switch-charge-decay correction (this project's model, parameters from
the RSCD reference file).

After the reset that starts integration n >= 2 a MIRI pixel does not return exactly to its
baseline: an offset proportional to the signal the pixel collected in the previous
integration decays over the first groups, which bends the start of the ramp. The model
(the one the simulator applies, in linear DN, so the step runs after linearity as in jwst):

    offset[n, g] = scale * A[n-1] * exp(-g / tau)         n >= 1, g = 0..NGROUPS-1 (0-based)
    A[n-1] = clip(D[n-1, NGROUPS-1] - D[n-1, 0], 0, level_max)

``D`` is the ramp as this step sees it (DN, linearized; integration n-1 already corrected),
so ``A`` is the signal collected between the first and the last group of the previous
integration, capped at ``level_max``. ``tau`` is in groups (MIRI's readout patterns read
one frame per group). The offset is subtracted from every group of integrations 2..NINTS
that is not SATURATED; the first integration is never changed (between exposures the
detector is reset continually). The cap makes a pixel that saturated in the previous
integration (whose last group is a clipped raw value) get the same amplitude as in the
simulation, as long as it kept two unsaturated groups there: ``level_max`` is then below
what any such pixel collects.

The parameters come from the RSCD reference file (``shared.refdata`` type ``rscd``), the
row of its ``RSCD_DECAY`` table whose SUBARRAY and READPATT are the exposure's:

=========  =====  ==========================================================
column     unit   meaning
=========  =====  ==========================================================
SUBARRAY   -      subarray name (as SUBARRAY), READPATT readout pattern
SCALE      -      ``scale``: fraction of A left as an offset at group 0
TAU        group  ``tau``: e-folding length of the decay
LEVEL_MAX  DN     ``level_max``: the cap on A
=========  =====  ==========================================================

The file is an ``stdatamodels`` ``RSCDModel``: its public table ``RSCD_GROUP_SKIP``
(SUBARRAY, READPATT, GROUP_SKIP1, GROUP_SKIP) is what jwst 3.0's rscd step reads (it flags
that many leading groups DO_NOT_USE instead of correcting them); the public schema has no
column for a decay model, so SCALE, TAU and LEVEL_MAX travel in the ``RSCD_DECAY``
extension, which ``stdatamodels`` keeps (``extra_fits``) and jwst ignores. The simulator
fills GROUP_SKIP1 with 0 (no RSCD in integration 1) and GROUP_SKIP with the groups the
largest offset (``scale * level_max``) takes to decay below one group's read noise.
A file without a row for the exposure's mode, or without ``RSCD_DECAY`` (a public jwst
file), leaves the step SKIPPED with a warning.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ._common import check_out, check_ramp, flags

__all__ = ["RscdParameters", "RscdResult", "correct_rscd", "decay_parameters", "rscd_offsets"]


@dataclass(frozen=True)
class RscdParameters:
    """One row of the RSCD_DECAY table."""

    scale: float
    tau: float  # groups
    level_max: float  # DN


@dataclass(frozen=True)
class RscdResult:
    data: np.ndarray  # float32 (nints, ngroups, ny, nx); the input itself when nothing was applied
    applied: bool  # False when there is a single integration


def _text(value) -> str:
    return (value.decode() if isinstance(value, bytes) else str(value)).strip().upper()


def decay_parameters(table: np.ndarray | None, subarray: str, readpatt: str) -> RscdParameters | None:
    """The RSCD_DECAY row of an exposure's SUBARRAY and READPATT (None: no table or no row)."""
    if table is None:
        return None
    names = {n.upper(): n for n in table.dtype.names or ()}
    if not {"SUBARRAY", "READPATT", "SCALE", "TAU", "LEVEL_MAX"} <= set(names):
        return None
    for row in table:
        if _text(row[names["SUBARRAY"]]) == subarray.upper() and _text(row[names["READPATT"]]) == readpatt.upper():
            return RscdParameters(float(row[names["SCALE"]]), float(row[names["TAU"]]), float(row[names["LEVEL_MAX"]]))
    return None


def rscd_offsets(previous: np.ndarray, ngroups: int, p: RscdParameters) -> np.ndarray:
    """The model offset (ngroups, ny, nx), DN, after an integration ``previous`` (ngroups, ny, nx)."""
    collected = np.nan_to_num(previous[-1].astype(np.float32) - previous[0], nan=0.0, posinf=0.0, neginf=0.0)
    amplitude = np.clip(collected, 0.0, np.float32(p.level_max))
    decay = np.exp(-np.arange(ngroups, dtype=np.float32) / np.float32(p.tau))
    return (np.float32(p.scale) * decay[:, np.newaxis, np.newaxis] * amplitude).astype(np.float32)


def correct_rscd(
    data: np.ndarray,
    groupdq: np.ndarray,
    parameters: RscdParameters,
    *,
    dqflags: Mapping[str, int] | None = None,
    out: np.ndarray | None = None,
) -> RscdResult:
    """Subtract the RSCD offset from integrations 2..NINTS.

    Parameters
    ----------
    data : ndarray, float32, shape (nints, ngroups, ny, nx)
        Ramp in DN, after linearity.
    groupdq : ndarray, uint8, same shape
    parameters : RscdParameters
        From :func:`decay_parameters` (see the module docstring).
    out : ndarray, float32, same shape as ``data``, optional
        Where to write the corrected ramp (may be ``data`` itself); by default a new array.
        Untouched when nothing is applied.
    """
    nints, ngroups, _, _ = check_ramp(data, groupdq)
    if not parameters.tau > 0 or not parameters.level_max >= 0 or not np.isfinite(parameters.scale):
        raise ValueError(f"invalid RSCD parameters {parameters}")
    if nints < 2:
        return RscdResult(data=data, applied=False)
    if out is None:
        out = data.astype(np.float32, copy=True)
    elif check_out(out, data) is not data:
        np.copyto(out, data)
    sat = np.uint8(flags(dqflags)["SATURATED"])
    for n in range(1, nints):  # out[n - 1] is already corrected
        offset = rscd_offsets(out[n - 1], ngroups, parameters)
        np.subtract(out[n], offset, out=out[n], where=(groupdq[n] & sat) == 0)
    return RscdResult(data=out, applied=True)
