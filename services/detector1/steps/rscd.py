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
detector is reset continually). A segment of a long exposure that does not start at
integration 1 (INTSTART > 1) has no first integration: its first one follows the previous
segment's last, which it does not hold, so its offset is taken from the signal it
collected itself (a time series's light is nearly the same from one integration to the
next; the amplitude is measured on the integration corrected by the estimate before, twice). The cap makes a pixel that saturated in the previous
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

The step's parameter ``method`` chooses between this correction (``decay``, the default)
and what jwst 3.0 does (``flag``, :func:`flag_rscd_groups`): the leading groups of each
integration, GROUP_SKIP1 in the first and GROUP_SKIP in the others, become DO_NOT_USE, so
ramp fitting starts after them. The public rules around it: nothing with fewer than 3
groups; one group each with 5 groups or fewer; a count leaves at least 3 groups; a pixel
whose ramp saturates within the counted groups (or the group after them) keeps all but
the group before its first saturated group (at least group 1 is kept usable), and gets
FLUX_ESTIMATED in PIXELDQ; a negative GROUP_SKIP1 (an old file) counts as 1.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ._common import check_out, check_ramp, flags

__all__ = [
    "RscdFlagResult",
    "RscdParameters",
    "RscdParams",
    "RscdResult",
    "correct_rscd",
    "decay_parameters",
    "flag_rscd_groups",
    "group_skip_counts",
    "rscd_offsets",
]


class RscdParams(BaseModel):
    """Parameters of the rscd step."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    method: Literal["decay", "flag"] = Field(
        "decay", description="decay: subtract the modelled decay (RSCD_DECAY); flag: set the leading groups "
        "DO_NOT_USE as jwst 3.0 does (RSCD_GROUP_SKIP).")


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


def group_skip_counts(table: np.ndarray | None, subarray: str, readpatt: str) -> tuple[int, int] | None:
    """(GROUP_SKIP1, GROUP_SKIP) of the RSCD_GROUP_SKIP row of an exposure's SUBARRAY and
    READPATT (None: no table or no row). SUBPRISM is looked up as SLITLESSPRISM, as jwst does."""
    if table is None:
        return None
    names = {n.upper(): n for n in table.dtype.names or ()}
    if not {"SUBARRAY", "READPATT", "GROUP_SKIP"} <= set(names):
        return None
    subarray = "SLITLESSPRISM" if subarray.upper() == "SUBPRISM" else subarray.upper()
    for row in table:
        if _text(row[names["SUBARRAY"]]) == subarray and _text(row[names["READPATT"]]) == readpatt.upper():
            first = int(row[names["GROUP_SKIP1"]]) if "GROUP_SKIP1" in names else -1
            return first, int(row[names["GROUP_SKIP"]])
    return None


@dataclass(frozen=True)
class RscdFlagResult:
    groupdq: np.ndarray  # uint8 (nints, ngroups, ny, nx); the input itself when nothing was applied
    pixeldq: np.ndarray  # uint32 (ny, nx)
    applied: bool
    skip_first: int  # groups flagged in the first integration (0 when it is not in this segment)
    skip_later: int  # groups flagged in integrations 2..NINTS
    backed_off: int  # pixels given fewer flagged groups because they saturate early


def _per_pixel_skip(groupdq: np.ndarray, skip: int, sat: int) -> np.ndarray:
    """How many leading groups to flag per integration and pixel (n, ny, nx): ``skip``, or
    for a pixel whose first saturated group ``s`` is within 1..skip+1 (group 0 unsaturated),
    ``max(s - 2, 0)``."""
    n, ngroups = groupdq.shape[:2]
    counts = np.full((n,) + groupdq.shape[2:], skip, dtype=np.int32)
    if skip == 0:
        return counts
    saturated = (groupdq[:, : min(skip + 2, ngroups)] & sat) != 0
    first_sat = np.where(saturated.any(axis=1), saturated.argmax(axis=1), ngroups)
    early = (first_sat >= 1) & (first_sat <= skip + 1)
    counts[early] = np.maximum(first_sat[early] - 2, 0)
    return counts


def flag_rscd_groups(
    groupdq: np.ndarray,
    pixeldq: np.ndarray,
    skip_first: int,
    skip_later: int,
    *,
    integration_start: int = 1,
    dqflags: Mapping[str, int] | None = None,
) -> RscdFlagResult:
    """Flag the RSCD-affected leading groups DO_NOT_USE (the ``flag`` method; rules in the
    module docstring). ``integration_start`` is INTSTART of a segment (1 when unsegmented):
    only a segment that starts at integration 1 has a first integration."""
    nints, ngroups, _, _ = check_ramp(groupdq)
    if ngroups < 3:
        return RscdFlagResult(groupdq, pixeldq, False, 0, 0, 0)
    f = flags(dqflags)
    skip_first = 1 if skip_first < 0 else skip_first
    if ngroups <= 5:
        skip_first = skip_later = 1
    skip_first, skip_later = (min(s, max(0, ngroups - 3)) for s in (skip_first, skip_later))
    first = 1 if integration_start == 1 else 0
    ranges = [(0, first, skip_first)] if first else []
    if nints > first:
        ranges.append((first, nints, skip_later))
    out_gdq, out_pdq = groupdq.copy(), pixeldq.copy()
    backed = np.zeros(pixeldq.shape, bool)
    group_index = np.arange(ngroups)[np.newaxis, :, np.newaxis, np.newaxis]
    for start, stop, skip in ranges:
        counts = _per_pixel_skip(groupdq[start:stop], skip, f["SATURATED"])
        backed |= (counts < skip).any(axis=0)
        flagged = group_index < counts[:, np.newaxis]
        out_gdq[start:stop][flagged] |= np.uint8(f["DO_NOT_USE"])
    out_pdq[backed] |= np.uint32(f["FLUX_ESTIMATED"])
    return RscdFlagResult(out_gdq, out_pdq, True, skip_first if first else 0,
                          skip_later if nints > first else 0, int(backed.sum()))


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
    integration_start: int = 1,
) -> RscdResult:
    """Subtract the RSCD offset from integrations 2..NINTS (and from the first one of a
    segment that starts later, ``integration_start`` > 1: see the module docstring).

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
    integration_start : int
        INTSTART of a segment (1 when unsegmented).
    """
    nints, ngroups, _, _ = check_ramp(data, groupdq)
    if not parameters.tau > 0 or not parameters.level_max >= 0 or not np.isfinite(parameters.scale):
        raise ValueError(f"invalid RSCD parameters {parameters}")
    later_segment = integration_start > 1
    if nints < 2 and not later_segment:
        return RscdResult(data=data, applied=False)
    if out is None:
        out = data.astype(np.float32, copy=True)
    elif check_out(out, data) is not data:
        np.copyto(out, data)
    sat = np.uint8(flags(dqflags)["SATURATED"])
    if later_segment:  # its first integration follows one of the segment before
        unsaturated = (groupdq[0] & sat) == 0
        estimate = out[0].copy()
        for _ in range(2):
            offset = rscd_offsets(estimate, ngroups, parameters)
            estimate = np.where(unsaturated, out[0] - offset, out[0])
        out[0] = estimate
    for n in range(1, nints):  # out[n - 1] is already corrected
        offset = rscd_offsets(out[n - 1], ngroups, parameters)
        np.subtract(out[n], offset, out=out[n], where=(groupdq[n] & sat) == 0)
    return RscdResult(data=out, applied=True)
