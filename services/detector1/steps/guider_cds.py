"""guider_cds: the count rate of a guide-star product by correlated double sampling.

Every guider integration is a short ramp of a few reads (the simulated and real modes read
2); the count rate is a difference of reads divided by the time between them, per guiding
mode as the public step (jwst ``guider_cds``) defines it:

- **ID** (FGS_ID-IMAGE, FGS_ID-STACK): the last-minus-first difference of each integration;
  the rate is the *minimum* of those differences over the integrations (a cosmic ray hits
  at most one of them), divided by the read-to-read time: one plane, shape (1, ny, nx);
- **ACQ1, ACQ2, TRACK**: last minus first read of each integration over the time between
  them: one plane per integration;
- **FINEGUIDE**: the mean of the last ``k`` reads minus the mean of the first ``k``,
  ``k = min(4, ngroups // 2)``, over the time between the two means, ``(ngroups - k) *
  TGROUP``. The public step takes ``k = 4`` always and divides by TGROUP: with the 2-read
  fine-guide images both means are the mean of the same two reads and its rate is 0; with
  8 or more reads the two definitions differ only in the time divided by. Here the 2-read
  images give the last-minus-first difference over TGROUP, like ACQ and TRACK.

Variances, in (DN/s)^2, from the GAIN (e-/DN) and the READNOISE reference (the **CDS**
noise of one read pair, DN, as every READNOISE of this system): read noise
``rn^2 / (k T^2)`` for means of ``k`` reads ``T`` seconds apart (``rn^2 / T^2`` for one
pair; the public step writes ``2 rn^2 / T^2``, taking the reference as one read's noise),
and Poisson ``max(rate, 0) / (gain T)`` (the public step divides by the gain and TGROUP once
only, a DN/s^2 slip that matters for bright stars). ERR is the root of their sum.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ID_MODES", "RATE_MODES", "GuiderRate", "guider_count_rate"]

ID_MODES = frozenset({"FGS_ID-IMAGE", "FGS_ID-STACK"})
RATE_MODES = frozenset({"FGS_ACQ1", "FGS_ACQ2", "FGS_TRACK", "FGS_FINEGUIDE"}) | ID_MODES
"""EXP_TYPEs of the guide-star products the step calibrates."""


@dataclass(frozen=True)
class GuiderRate:
    """Count rate (nplanes, ny, nx) in DN/s and its variances, float32; ``interval`` is
    the time (s) the rate was measured over."""

    rate: np.ndarray
    var_poisson: np.ndarray
    var_rnoise: np.ndarray
    err: np.ndarray
    interval: float


def guider_count_rate(
    data: np.ndarray,
    exp_type: str,
    group_time: float,
    gain: np.ndarray,
    read_noise: np.ndarray,
) -> GuiderRate:
    """The count rate of a guide-star product (see the module docstring).

    Parameters
    ----------
    data : ndarray, shape (nints, ngroups, ny, nx)
        Raw reads, DN (any numeric type; computed in float64).
    exp_type : str
        EXP_TYPE: one of :data:`RATE_MODES`.
    group_time : float
        Seconds between consecutive reads (TGROUP).
    gain : ndarray, shape (ny, nx)
        e-/DN, cut to the window.
    read_noise : ndarray, shape (ny, nx)
        CDS read noise, DN, cut to the window.

    Raises
    ------
    ValueError
        A shape, mode or time the step cannot use (the message says which).
    """
    data = np.asarray(data)
    if data.ndim != 4:
        raise ValueError(f"guide-star SCI must be 4-D (nints, ngroups, ny, nx), got shape {data.shape}")
    nints, ngroups, ny, nx = data.shape
    if nints < 1 or ngroups < 2:
        raise ValueError(f"a count rate needs at least 2 reads per integration, got NGROUPS={ngroups}")
    mode = exp_type.upper()
    if mode not in RATE_MODES:
        raise ValueError(f"EXP_TYPE {exp_type!r} is not a guide-star mode ({', '.join(sorted(RATE_MODES))})")
    if not (np.isfinite(group_time) and group_time > 0):
        raise ValueError(f"TGROUP {group_time!r} is not a positive time")
    for name, ref in (("gain", gain), ("read_noise", read_noise)):
        if np.shape(ref) != (ny, nx):
            raise ValueError(f"{name} has shape {np.shape(ref)}, expected {(ny, nx)} (cut to the window)")
    k = min(4, ngroups // 2) if mode == "FGS_FINEGUIDE" else 1
    interval = (ngroups - k) * float(group_time)
    reads = data.astype(np.float64)
    diff = reads[:, ngroups - k:].mean(axis=1) - reads[:, :k].mean(axis=1)  # (nints, ny, nx)
    if mode in ID_MODES:
        diff = diff.min(axis=0, keepdims=True)
    rate = diff / interval
    g = np.asarray(gain, np.float64)
    usable_gain = np.isfinite(g) & (g > 0)
    var_p = np.where(usable_gain, np.maximum(rate, 0.0) / np.where(usable_gain, g, 1.0) / interval, 0.0)
    rn = np.asarray(read_noise, np.float64)
    var_r = np.broadcast_to(np.where(np.isfinite(rn), rn, 0.0) ** 2 / (k * interval**2), rate.shape)
    err = np.sqrt(var_p + var_r)
    f32 = np.float32
    return GuiderRate(rate.astype(f32), var_p.astype(f32), np.array(var_r, dtype=f32), err.astype(f32), interval)
