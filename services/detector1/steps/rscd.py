"""rscd: a simple MIRI reset-switch-charge-decay correction (this project's model).

After the reset that starts integration n >= 2, MIRI pixels do not return exactly to their
baseline: a fraction of the charge they held at the end of the previous integration decays
away over the first groups, which bends the start of the ramp. This module uses a deliberately
simple, documented model (not the upstream jwst "enhanced" RSCD algorithm):

    offset[n, g] = scale * L[n-1] * exp(-g / tau_groups)      for n >= 1 (0-based), g = 0..ngroups-1

where ``L[n-1]`` is the value (DN) of the last group of the previous integration (NaN → 0).
The offset is subtracted from every group that is not SATURATED. The first integration is
never changed. ``scale`` and ``tau_groups`` are inputs: their defaults here are placeholders
(``scale = 0`` leaves the data unchanged) until a calibrated RSCD reference supplies values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ._common import check_ramp, flags

__all__ = ["RscdParams", "RscdResult", "correct_rscd", "rscd_offsets"]


class RscdParams(BaseModel):
    """Parameters of the simple RSCD model."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    scale: float = Field(
        0.0, ge=0.0, description="Fraction of the previous integration's last-group signal left after reset."
    )
    tau_groups: float = Field(
        3.0, gt=0.0, description="e-folding length of the decay, in groups."
    )


_DEFAULTS = RscdParams()


@dataclass(frozen=True)
class RscdResult:
    data: np.ndarray  # float32 (nints, ngroups, ny, nx)
    applied: bool  # False when there is a single integration or scale == 0


def rscd_offsets(last_group: np.ndarray, ngroups: int, *, scale: float, tau_groups: float) -> np.ndarray:
    """The model offset (ngroups, ny, nx) for an integration following one that ended at ``last_group``."""
    level = np.nan_to_num(np.asarray(last_group, np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    decay = np.exp(-np.arange(ngroups, dtype=np.float32) / np.float32(tau_groups))
    return (np.float32(scale) * decay[:, np.newaxis, np.newaxis] * level).astype(np.float32)


def correct_rscd(
    data: np.ndarray,
    groupdq: np.ndarray,
    *,
    scale: float = _DEFAULTS.scale,
    tau_groups: float = _DEFAULTS.tau_groups,
    dqflags: Mapping[str, int] | None = None,
) -> RscdResult:
    """Subtract the simple RSCD offset from integrations 2..NINTS.

    Parameters
    ----------
    data : ndarray, float32, shape (nints, ngroups, ny, nx)
    groupdq : ndarray, uint8, same shape
    scale, tau_groups : float
        Model parameters (see module docstring).
    """
    nints, ngroups, _, _ = check_ramp(data, groupdq)
    if tau_groups <= 0:
        raise ValueError("tau_groups must be > 0")
    if nints < 2 or scale == 0:
        return RscdResult(data=data, applied=False)
    sat = np.uint8(flags(dqflags)["SATURATED"])
    out = data.astype(np.float32, copy=True)
    for n in range(1, nints):
        offset = rscd_offsets(data[n - 1, -1], ngroups, scale=scale, tau_groups=tau_groups)
        np.subtract(out[n], offset, out=out[n], where=(groupdq[n] & sat) == 0)
    return RscdResult(data=out, applied=True)
