"""persistence: a simple single-trap-family persistence model (this project's model).

Bright illumination fills charge traps; after the detector is reset the traps release their
charge slowly, adding a decaying signal ("persistence") to the next exposures. The upstream
jwst step uses several trap families per pixel from the TRAPDENSITY/TRAPPARS/PERSAT
references; this module is a deliberately simple stand-in with one family and scalar
parameters:

State
    ``trapsfilled`` (ny, nx), DN of charge held in traps at the *end* of the previous
    exposure. ``None`` means "unknown / clean detector": no correction is made, but the new
    state is still returned so the next exposure can be corrected.

Release
    Traps empty exponentially with time constant ``tau`` (s). With ``dt0`` the time from the
    end of the previous exposure to the start of this one, integration n (0-based) starting at
    ``t0[n] = n * ngroups * tgroup`` and group g read at ``t[n, g] = t0[n] + (g + 1) * tgroup``,
    the persistence charge collected in group g of integration n is

        P[n, g] = T * (exp(-(dt0 + t0[n]) / tau) - exp(-(dt0 + t[n, g]) / tau))

    (reset overheads are ignored). P is subtracted from every group that is not SATURATED, and
    PERSISTENCE is flagged in PIXELDQ where the largest P exceeds ``flag_pers_cutoff`` DN.

Filling
    At the end of the exposure the traps hold what is left of T, or what this exposure's peak
    signal filled, whichever is larger: ``T' = min(capacity, max(T * exp(-(dt0 + T_exp)/tau),
    fill_fraction * peak))`` with ``T_exp = nints * ngroups * tgroup`` and ``peak`` the largest
    group value (DN, bias subtracted) of the exposure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ._common import check_image, check_out, check_ramp, flags, iter_blocks

__all__ = ["PersistenceParams", "PersistenceResult", "correct_persistence"]


class PersistenceParams(BaseModel):
    """Parameters of the simple trap model."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tau: float = Field(1000.0, gt=0.0, description="Trap release e-folding time, seconds.")
    fill_fraction: float = Field(
        1.0e-3, ge=0.0, description="Fraction of the peak signal (DN) captured by traps."
    )
    trap_capacity: float = Field(200.0, ge=0.0, description="Most charge the traps of a pixel can hold, DN.")
    flag_pers_cutoff: float = Field(
        40.0, ge=0.0, description="Flag PERSISTENCE where the correction exceeds this many DN."
    )


_DEFAULTS = PersistenceParams()


@dataclass(frozen=True)
class PersistenceResult:
    data: np.ndarray  # float32 (nints, ngroups, ny, nx); the input itself when nothing was subtracted
    pixeldq: np.ndarray  # uint32 (ny, nx)
    trapsfilled: np.ndarray  # float32 (ny, nx), DN held in traps at the end of this exposure
    persistence: np.ndarray  # float32 (ny, nx), largest correction subtracted, DN
    applied: bool  # False when no previous trap state was given


def _peak_signal(data: np.ndarray) -> np.ndarray:
    """Largest finite, non-negative group value of each pixel (DN), float64 (ny, nx)."""
    nints, ngroups, ny, nx = data.shape
    npix = ny * nx
    flat = data.reshape(nints * ngroups, npix)
    peak = np.zeros(npix, np.float32)
    for blk in iter_blocks(npix):
        block = np.fmax.reduce(flat[:, blk], axis=0)  # NaN only where every group is NaN
        np.fmax(peak[blk], np.where(np.isfinite(block), block, 0.0), out=peak[blk])
    return peak.reshape(ny, nx).astype(np.float64)


def correct_persistence(
    data: np.ndarray,
    groupdq: np.ndarray,
    pixeldq: np.ndarray,
    trapsfilled: np.ndarray | None,
    *,
    group_time: float,
    time_since_previous: float = 0.0,
    tau: float = _DEFAULTS.tau,
    fill_fraction: float = _DEFAULTS.fill_fraction,
    trap_capacity: float = _DEFAULTS.trap_capacity,
    flag_pers_cutoff: float = _DEFAULTS.flag_pers_cutoff,
    dqflags: Mapping[str, int] | None = None,
    out: np.ndarray | None = None,
) -> PersistenceResult:
    """Subtract the modelled persistence signal and return the updated trap state.

    Parameters
    ----------
    data : ndarray, float32, shape (nints, ngroups, ny, nx)
        Ramp in DN (bias subtracted, linearized).
    groupdq : ndarray, uint8, same shape
    pixeldq : ndarray, uint32, shape (ny, nx)
    trapsfilled : ndarray (ny, nx) or None
        Trap state (DN) at the end of the previous exposure of this detector.
    group_time : float
        TGROUP, seconds.
    time_since_previous : float
        Seconds from the end of the previous exposure to the start of this one.
    tau, fill_fraction, trap_capacity, flag_pers_cutoff : float
        Model parameters (see module docstring).
    out : ndarray, float32, same shape as ``data``, optional
        Where to write the corrected ramp when something is subtracted (may be ``data``
        itself, to work in place); by default a new array. Untouched otherwise.
    """
    f = flags(dqflags)
    nints, ngroups, ny, nx = check_ramp(data, groupdq)
    pixeldq = check_image("pixeldq", pixeldq, (ny, nx))
    if group_time <= 0 or tau <= 0 or time_since_previous < 0:
        raise ValueError("group_time and tau must be > 0, time_since_previous >= 0")

    exposure_time = nints * ngroups * group_time
    captured = fill_fraction * _peak_signal(data)

    if trapsfilled is None:
        new_traps = np.minimum(trap_capacity, captured).astype(np.float32)
        return PersistenceResult(
            data=data,
            pixeldq=pixeldq.astype(np.uint32),
            trapsfilled=new_traps,
            persistence=np.zeros((ny, nx), np.float32),
            applied=False,
        )

    traps = np.nan_to_num(check_image("trapsfilled", trapsfilled, (ny, nx)).astype(np.float64), nan=0.0)
    traps = np.maximum(traps, 0.0)
    sat = np.uint8(f["SATURATED"])
    # released charge in group g of integration n = T * factor[n, g] (see module docstring)
    factors = np.empty((nints, ngroups))
    for n in range(nints):
        t0 = time_since_previous + n * ngroups * group_time
        read_times = t0 + (np.arange(ngroups) + 1) * group_time
        factors[n] = np.exp(-t0 / tau) - np.exp(-read_times / tau)
    largest = traps * factors.max()
    if not traps.any():
        out = data  # nothing trapped: nothing to subtract
    else:
        npix = ny * nx
        traps_flat = traps.astype(np.float32).reshape(npix)
        out = np.empty(data.shape, np.float32) if out is None else check_out(out, data)
        data_flat = data.reshape(nints, ngroups, npix)
        gdq_flat = groupdq.reshape(nints, ngroups, npix)
        out_flat = out.reshape(nints, ngroups, npix)
        for blk in iter_blocks(npix):
            for n in range(nints):
                released = factors[n].astype(np.float32)[:, np.newaxis] * traps_flat[blk]
                keep = (gdq_flat[n, :, blk] & sat) != 0
                np.subtract(data_flat[n, :, blk], np.where(keep, np.float32(0.0), released), out=out_flat[n, :, blk])

    remaining = traps * np.exp(-(time_since_previous + exposure_time) / tau)
    new_traps = np.minimum(trap_capacity, np.maximum(remaining, captured)).astype(np.float32)
    flagged = largest > flag_pers_cutoff
    new_pixeldq = pixeldq.astype(np.uint32) | np.where(flagged, np.uint32(f["PERSISTENCE"]), np.uint32(0))
    return PersistenceResult(
        data=out,
        pixeldq=new_pixeldq,
        trapsfilled=new_traps,
        persistence=largest.astype(np.float32),
        applied=True,
    )
