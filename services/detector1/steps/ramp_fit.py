"""ramp_fit: count rates from up-the-ramp samples, OLS with optimal weighting (Fixsen et al. 2000).

Algorithm (jwst-conventions.md §4, "Ramp fit, OLS"; stcal ``ramp_fitting``):

Segments
    Per integration and pixel, a group is usable unless it carries any GROUPDQ flag other
    than JUMP_DET (SATURATED, DO_NOT_USE, ...) or is not finite. Segments are runs of usable
    groups; a group flagged JUMP_DET starts a new segment (it is the first sample after the
    jump). If any segment has two or more groups, one-group segments are ignored; if the
    longest has one group, only the first is used ("one-group integration").

Per segment of n >= 2 groups
    ``S = d*g / sqrt(rn^2 + d*g)`` with ``d`` = last - first group (DN), negative S -> 0;
    exponent P = 0, 0.4, 1, 3, 6, 10 for S < 5, < 10, < 20, < 50, < 100, >= 100; weights
    ``w_i = |(i - m)/m|^P / rn^2`` with ``m = (n-1)/2`` (so 0^0 = 1: equal weights at P = 0,
    while for P > 0 the midpoint of an odd-length segment gets weight 0); the slope is the
    weighted least-squares slope divided by TGROUP. Here ``rn = RN_CDS * g / sqrt(2 NFRAMES)``
    is the read noise of one group in electrons and ``g`` the gain (e-/DN).

    - ``var_R = 12 rn^2 / ((n^3 - n) TGROUP^2 g^2)``
    - ``var_P = (median_rate + dark) / (TGROUP g (n - 1))``; ``median_rate`` (DN/s) is the median of
      the clean first differences (both groups usable, the later one not a jump) divided by
      TGROUP, averaged over integrations; when it is <= 0 only the dark term is used.

    A one-group segment (n = 1) has slope = value / TGROUP and the variances with n treated as 2
    (``var_R = 12 rn^2 / (6 TGROUP^2 g^2)``, ``var_P = (median_rate + dark) / (TGROUP g)``).
    NGROUPS = 1 gives value / TGROUP and NGROUPS = 2 the difference / TGROUP as special cases
    of these rules. With ``suppress_one_group`` (default) a one-group integration of a ramp
    with NGROUPS > 1 gets no slope.

Combination (segments -> integration -> exposure)
    Variances combine as inverse-variance sums, separately for read noise and Poisson
    (segments with ``var_P = 0`` add nothing to the Poisson sum). Slopes are weighted by the
    read-noise variance only: ``slope = var_R,tot * sum(slope_s / var_R,s)``.
    ``ERR = sqrt(var_P + var_R)``.

DQ
    Each output DQ is PIXELDQ, plus NO_GAIN_VALUE | DO_NOT_USE where the gain is not positive,
    plus JUMP_DET / SATURATED where any group of the integration (exposure) has them, leaving
    out the leading and trailing groups flagged in every pixel (MIRI's last frame: a pixel
    that saturates only there is not SATURATED), which stcal drops before fitting.
    DO_NOT_USE marks an integration with no usable segment (slope NaN, variances and ERR 0);
    the exposure-level DQ has DO_NOT_USE only where every integration is unusable.

Performance: the frame is processed in blocks of pixels; within a block the loop runs over
integrations and segment numbers only. The least-squares coefficients depend only on (n, P),
so they come from a precomputed table instead of per-pixel powers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ._common import (
    BLOCK_PIXELS,
    check_image,
    check_ramp,
    flags,
    iter_blocks,
    median_of_sorted,
    sort_columns,
    sorted_rows,
)

__all__ = [
    "P_EDGES",
    "P_VALUES",
    "RampFitParams",
    "RampFitResult",
    "fit_ramps",
    "segment_coefficients",
]

#: S/N boundaries and the weighting exponents between them (Fixsen et al. 2000 table).
P_EDGES = (5.0, 10.0, 20.0, 50.0, 100.0)
P_VALUES = (0.0, 0.4, 1.0, 3.0, 6.0, 10.0)
_NP = len(P_VALUES)


class RampFitParams(BaseModel):
    """Parameters of the ramp_fit step (OLS with optimal weighting)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    suppress_one_group: bool = Field(
        True, description="Give no slope to an integration whose fit would rest on a single group."
    )


_DEFAULTS = RampFitParams()


@dataclass(frozen=True)
class RampFitResult:
    """Exposure-level (``rate``) and per-integration (``rateints``) results, DN/s.

    With one integration the exposure-level arrays are views of the per-integration ones.
    """

    rate: np.ndarray  # float32 (ny, nx)
    err: np.ndarray  # float32 (ny, nx)
    dq: np.ndarray  # uint32 (ny, nx)
    var_poisson: np.ndarray  # float32 (ny, nx)
    var_rnoise: np.ndarray  # float32 (ny, nx)
    rate_ints: np.ndarray  # float32 (nints, ny, nx)
    err_ints: np.ndarray  # float32 (nints, ny, nx)
    dq_ints: np.ndarray  # uint32 (nints, ny, nx)
    var_poisson_ints: np.ndarray  # float32 (nints, ny, nx)
    var_rnoise_ints: np.ndarray  # float32 (nints, ny, nx)


# --------------------------------------------------------------------------- coefficients


def segment_coefficients(n: int, power: float) -> np.ndarray:
    """Coefficients c_i with slope (DN per group) = sum_i c_i y_i for an n-group segment.

    Weighted least squares with w_i = |(i - m)/m|^power, m = (n - 1)/2 (the 1/rn^2 factor is
    common to all samples of a pixel and cancels). sum_i c_i = 0 and sum_i c_i i = 1.
    """
    if n < 2:
        raise ValueError("a slope needs at least two groups")
    i = np.arange(n, dtype=np.float64)
    mid = (n - 1) / 2.0
    w = np.abs((i - mid) / mid) ** power  # numpy: 0.0 ** 0.0 == 1.0
    xbar = np.sum(w * i) / np.sum(w)
    dx = i - xbar
    return w * dx / np.sum(w * dx * dx)


@lru_cache(maxsize=16)
def _coefficient_table(ngroups: int) -> np.ndarray:
    """Flat float32 table: entry ((n * _NP + p) * ngroups + i) is c_i for length n, exponent p.

    Rows with n < 2 are zero, so index 0 is a safe "no contribution" entry.
    """
    table = np.zeros((ngroups + 1, _NP, ngroups), np.float64)
    for n in range(2, ngroups + 1):
        for p, power in enumerate(P_VALUES):
            table[n, p, :n] = segment_coefficients(n, power)
    flat = table.astype(np.float32).ravel()
    flat.setflags(write=False)
    return flat


@lru_cache(maxsize=16)
def _full_length_coefficients(ngroups: int) -> np.ndarray:
    """(ngroups - 1, len(P_VALUES)) float32 coefficients c_1.. of a segment spanning all groups."""
    table = np.stack([segment_coefficients(ngroups, p) for p in P_VALUES], axis=1)
    out = np.ascontiguousarray(table[1:], dtype=np.float32)
    out.setflags(write=False)
    return out


_P_EDGES_SQ = tuple(np.float32(e * e) for e in P_EDGES)


def _power_index(signal: np.ndarray, rn2: np.ndarray) -> np.ndarray:
    """Index into P_VALUES from the segment S/N, ``S = signal / sqrt(rn2 + signal)`` (electrons).

    Compares S^2 with the squared edges (no square root); S <= 0 gives index 0.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        s2 = np.where(signal > 0, signal * signal / (rn2 + signal), np.float32(0.0))
    index = np.zeros(signal.shape, np.int8)
    for edge in _P_EDGES_SQ:
        index += s2 >= edge
    return index


# --------------------------------------------------------------------------- per-pixel terms


@dataclass(frozen=True)
class _PixelTerms:
    """Per-pixel constants of a block, so that each segment needs only a multiply.

    ``var_R = 12 rdn2 / ((n^3 - n) TGROUP^2)`` with ``rdn2 = RN_CDS^2 / (2 NFRAMES)`` (DN^2, the
    read variance of one group) and ``var_P = (median_rate + dark) / (TGROUP g (n - 1))``.
    """

    gain: np.ndarray  # float32, e-/DN (1 where the gain is bad)
    rn2: np.ndarray  # float32, read variance of one group in e-^2 (for the S/N)
    inv_rdn2: np.ndarray  # float64, 1 / rdn2
    gain_over_rate: np.ndarray  # float64, g / (median_rate+ + dark), 0 where that is <= 0

    def take(self, cols: np.ndarray | slice) -> _PixelTerms:
        return _PixelTerms(self.gain[cols], self.rn2[cols], self.inv_rdn2[cols], self.gain_over_rate[cols])

    def inverse_variances(self, n: np.ndarray | int, tgroup: float) -> tuple[np.ndarray, np.ndarray]:
        """(1/var_R, 1/var_P) of n-group segments; n = 1 is treated as 2 (both formulas)."""
        n = np.maximum(np.asarray(n, np.float64), 2.0)
        inv_r = (n**3 - n) * (tgroup * tgroup / 12.0) * self.inv_rdn2
        inv_p = (n - 1.0) * tgroup * self.gain_over_rate
        return inv_r, inv_p


# --------------------------------------------------------------------------- median rate


def _usable_groups(gdq: np.ndarray, values: np.ndarray, jump_bit: int) -> tuple[np.ndarray, np.ndarray]:
    """(usable, jump) boolean masks (ngroups, npix) for one integration."""
    other_bits = np.uint8(0xFF & ~jump_bit)
    usable = ((gdq & other_bits) == 0) & np.isfinite(values)
    jump = (gdq & np.uint8(jump_bit)) != 0
    return usable, jump


def _median_rate_simple(values: np.ndarray, tgroup: float) -> np.ndarray:
    """Median first difference / TGROUP (DN/s) for pixels with every group usable, no jumps."""
    ndiff = values.shape[0] - 1
    rows = sorted_rows(values[1:] - values[:-1])
    return (0.5 / tgroup) * (rows[(ndiff - 1) // 2].astype(np.float64) + rows[ndiff // 2])


def _median_rate(
    values: np.ndarray, usable: np.ndarray, jump: np.ndarray, tgroup: float, *, starts_at_group0: bool = True
) -> np.ndarray:
    """Median of the clean first differences / TGROUP (DN/s) for one integration, any flags.

    Without a clean difference the value of group 0 / TGROUP is used when group 0 is usable
    (as stcal does), else 0. ``starts_at_group0`` is False when ``values`` begins later.
    """
    fallback = np.where(usable[0] & starts_at_group0, values[0] / tgroup, 0.0)
    if values.shape[0] == 1:
        return fallback
    clean = usable[1:] & usable[:-1] & ~jump[1:]
    count = clean.sum(axis=0)
    diffs = sort_columns(np.where(clean, values[1:] - values[:-1], np.inf).astype(np.float32))
    median = median_of_sorted(diffs, count).astype(np.float64) / tgroup
    return np.where(count > 0, median, fallback)


def _common_usable_span(gdq: np.ndarray, jump_bit: int) -> slice:
    """Groups [lo, hi) of one integration outside which every pixel is unusable.

    Leading and trailing groups flagged (other than JUMP_DET) in every pixel, such as MIRI's
    first/last frame DO_NOT_USE, cannot take part in any segment; dropping them up front keeps
    those pixels on the fast one-segment path. No trimming if fewer than two groups would stay.
    """
    other = np.uint8(0xFF & ~jump_bit)
    ngroups = gdq.shape[0]
    lo, hi = 0, ngroups
    while lo < ngroups and np.all(gdq[lo] & other):
        lo += 1
    while hi > lo and np.all(gdq[hi - 1] & other):
        hi -= 1
    return slice(lo, hi) if hi - lo >= 2 else slice(0, ngroups)


def _finite_or_zero(x: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(x), x, 0.0)


# --------------------------------------------------------------------------- fitting


def _fit_simple(values: np.ndarray, terms: _PixelTerms, tgroup: float) -> tuple[np.ndarray, ...]:
    """Pixels whose integration is one clean segment over all (kept) groups, at least two.

    Returns (slope DN/s, 1/var_R, 1/var_P).
    """
    ngroups = values.shape[0]
    rel = values[1:] - values[0]  # (ngroups-1, npix); sum(c) == 0 so y0 drops out
    power = _power_index(rel[-1] * terms.gain, terms.rn2)
    # all six candidate slopes at once, then pick by exponent (einsum, not BLAS: a threaded
    # BLAS call on such small matrices only adds thread start-up and contention)
    candidates = np.einsum("gk,gp->kp", _full_length_coefficients(ngroups), rel)  # (len(P_VALUES), npix)
    npix = values.shape[1]
    per_group = candidates.ravel()[power.astype(np.intp) * npix + np.arange(npix)]
    inv_r, inv_p = terms.inverse_variances(ngroups, tgroup)
    return per_group.astype(np.float64) / tgroup, inv_r, inv_p


def _fit_general(
    values: np.ndarray,
    usable: np.ndarray,
    jump: np.ndarray,
    terms: _PixelTerms,
    *,
    tgroup: float,
    allow_one_group: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fit one integration of any pixels (flags, jumps, several segments).

    Returns (slope DN/s or NaN, sum of 1/var_R, sum of 1/var_P) over the segments used.
    """
    ngroups, npix = values.shape
    clean = np.where(usable, values, np.float32(0.0)).astype(np.float32, copy=False)

    previous = np.zeros_like(usable)
    previous[1:] = usable[:-1]
    starts = usable & (jump | ~previous)
    seg_id = np.cumsum(starts, axis=0, dtype=np.int16)
    seg_id[~usable] = 0
    nseg = seg_id.max(axis=0)

    # membership and length of segment s (s >= 2 only for the pixels that have one)
    segments: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]] = []
    longest = np.zeros(npix, np.int16)
    for s in range(1, int(nseg.max(initial=0)) + 1):
        cols = np.arange(npix) if s == 1 else np.flatnonzero(nseg >= s)
        member = seg_id[:, cols] == s
        length = member.sum(axis=0, dtype=np.int16)
        longest[cols] = np.maximum(longest[cols], length)
        segments.append((s, cols, member, length))

    table = _coefficient_table(ngroups)
    group_index = np.arange(ngroups, dtype=np.int32)[:, np.newaxis]
    inv_r_sum = np.zeros(npix)
    inv_p_sum = np.zeros(npix)
    weighted = np.zeros(npix)
    for s, cols, member, length in segments:
        use = length >= 2
        if s == 1 and allow_one_group:
            use |= (length == 1) & (longest[cols] == 1)
        if not use.any():
            continue
        cols, member, length = cols[use], member[:, use], length[use]
        y = clean[:, cols]
        sub = terms.take(cols)
        n = length.astype(np.int32)
        first = np.argmax(member, axis=0).astype(np.int32)
        local = np.arange(cols.size)
        y_first = y[first, local]
        y_last = y[first + n - 1, local]
        power = _power_index((y_last - y_first) * sub.gain, sub.rn2)
        tidx = np.where(member, (n * _NP + power) * ngroups - first + group_index, 0)
        per_group = np.einsum("gp,gp->p", table.take(tidx), y - y_first)
        # one-group segments: value / TGROUP
        slope = np.where(n >= 2, per_group, y_first).astype(np.float64) / tgroup
        inv_r, inv_p = sub.inverse_variances(n, tgroup)
        inv_r_sum[cols] += inv_r
        inv_p_sum[cols] += inv_p
        weighted[cols] += slope * inv_r
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = np.where(inv_r_sum > 0, weighted / inv_r_sum, np.nan)
    return slope, inv_r_sum, inv_p_sum


# --------------------------------------------------------------------------- kernel

#: Pixels handled together: the general (segmented) fit of the few flagged pixels is batched
#: over this many, while the fast path walks cache-sized sub-blocks of BLOCK_PIXELS.
_SUPER_BLOCK = 4 * BLOCK_PIXELS


def fit_ramps(
    data: np.ndarray,
    groupdq: np.ndarray,
    pixeldq: np.ndarray,
    gain: np.ndarray,
    readnoise: np.ndarray,
    *,
    group_time: float,
    nframes: int,
    average_dark_current: np.ndarray | float | None = None,
    suppress_one_group: bool = _DEFAULTS.suppress_one_group,
    dqflags: Mapping[str, int] | None = None,
) -> RampFitResult:
    """Fit every ramp and combine into per-integration and exposure count rates.

    Parameters
    ----------
    data : ndarray, float32, shape (nints, ngroups, ny, nx)
        Ramp in DN (fully corrected, jumps flagged).
    groupdq : ndarray, uint8, same shape
    pixeldq : ndarray, uint32, shape (ny, nx)
    gain : ndarray, shape (ny, nx)
        GAIN reference, e-/DN.
    readnoise : ndarray, shape (ny, nx)
        READNOISE reference: CDS read noise, DN.
    group_time : float
        TGROUP, seconds.
    nframes : int
        NFRAMES.
    average_dark_current : ndarray (ny, nx) or float, optional
        Dark current (DN/s) added to the Poisson term; 0 when not given.
    suppress_one_group : bool
        See :class:`RampFitParams`.
    """
    f = flags(dqflags)
    nints, ngroups, ny, nx = check_ramp(data, groupdq)
    pixeldq = check_image("pixeldq", pixeldq, (ny, nx))
    gain = check_image("gain", gain, (ny, nx))
    readnoise = check_image("readnoise", readnoise, (ny, nx))
    if group_time <= 0 or nframes < 1:
        raise ValueError("group_time must be > 0 and nframes >= 1")
    npix = ny * nx
    dark = np.broadcast_to(np.asarray(0.0 if average_dark_current is None else average_dark_current), (ny, nx))

    pixel = {
        "pixeldq": pixeldq.reshape(npix),
        "gain": gain.reshape(npix),
        "readnoise": readnoise.reshape(npix),
        "dark": dark.reshape(npix),
    }
    data_flat = data.reshape(nints, ngroups, npix)
    gdq_flat = groupdq.reshape(nints, ngroups, npix)
    out = {
        "rate": np.empty(npix, np.float32),
        "err": np.empty(npix, np.float32),
        "dq": np.empty(npix, np.uint32),
        "var_poisson": np.empty(npix, np.float32),
        "var_rnoise": np.empty(npix, np.float32),
        "rate_ints": np.empty((nints, npix), np.float32),
        "err_ints": np.empty((nints, npix), np.float32),
        "dq_ints": np.empty((nints, npix), np.uint32),
        "var_poisson_ints": np.empty((nints, npix), np.float32),
        "var_rnoise_ints": np.empty((nints, npix), np.float32),
    }
    if nints == 1:  # the exposure is the integration: share the memory rather than copy
        for name in ("rate", "err", "dq", "var_poisson", "var_rnoise"):
            out[name] = out[name + "_ints"][0]
    for blk in iter_blocks(npix, _SUPER_BLOCK):
        _fit_block(
            data_flat[:, :, blk],
            gdq_flat[:, :, blk],
            {name: arr[blk] for name, arr in pixel.items()},
            {name: (arr[blk] if arr.ndim == 1 else arr[:, blk]) for name, arr in out.items()},
            group_time=group_time,
            nframes=nframes,
            suppress_one_group=suppress_one_group,
            dqflags=f,
        )
    shapes = {1: (ny, nx), 2: (nints, ny, nx)}
    return RampFitResult(**{name: arr.reshape(shapes[arr.ndim]) for name, arr in out.items()})


def _fit_block(
    data: np.ndarray,
    groupdq: np.ndarray,
    pixel: dict[str, np.ndarray],
    out: dict[str, np.ndarray],
    *,
    group_time: float,
    nframes: int,
    suppress_one_group: bool,
    dqflags: Mapping[str, int],
) -> None:
    """Fit a block of pixels: ``data``/``groupdq`` (nints, ngroups, npix); writes into ``out`` views."""
    nints, ngroups, npix = data.shape
    dnu, sat, jump = dqflags["DO_NOT_USE"], dqflags["SATURATED"], dqflags["JUMP_DET"]
    gain = pixel["gain"].astype(np.float64)
    bad_gain = ~np.isfinite(gain) | (gain <= 0)
    gain[bad_gain] = 1.0
    base_dq = pixel["pixeldq"].astype(np.uint32) | np.where(
        bad_gain, np.uint32(dqflags["NO_GAIN_VALUE"] | dnu), np.uint32(0)
    )
    readnoise = pixel["readnoise"].astype(np.float64)
    dead = ((base_dq & np.uint32(dnu)) != 0) | ~np.isfinite(readnoise)
    rdn2 = readnoise**2 / (2.0 * nframes)  # read variance of one group, DN^2
    rdn2 = np.where(np.isfinite(rdn2) & (rdn2 > 0), rdn2, np.finfo(np.float32).tiny)

    # pass 1: group-flag summary per integration, the pixels that are not one clean segment
    # ("complex"), and the median rate averaged over integrations
    group_bits, complex_cols, spans = [], [], []
    median_rate = np.zeros(npix)
    for i in range(nints):
        span = _common_usable_span(groupdq[i], jump)
        values, gdq = data[i, span], groupdq[i, span]
        nkept = values.shape[0]
        bits = np.empty(npix, np.uint8)
        general = np.ones(npix, bool)
        rate_i = np.zeros(npix)
        for sb in iter_blocks(npix):  # cache-sized pieces for the fast path
            bits[sb] = np.bitwise_or.reduce(gdq[:, sb], axis=0)
            if nkept >= 2:
                kept_bits = np.bitwise_or.reduce(gdq[:, sb], axis=0)
                general[sb] = (kept_bits != 0) | ~np.isfinite(values[:, sb]).all(axis=0)
                rate_i[sb] = _median_rate_simple(values[:, sb], group_time)
        cols = np.flatnonzero(general)
        group_bits.append(bits)
        complex_cols.append(cols)
        spans.append(span)
        if cols.size:
            sub = values[:, cols]
            usable, jumps = _usable_groups(gdq[:, cols], sub, jump)
            rate_i[cols] = _median_rate(sub, usable, jumps, group_time, starts_at_group0=span.start == 0)
        median_rate += _finite_or_zero(rate_i)
    median_rate /= nints
    rate_term = np.maximum(median_rate, 0.0) + _finite_or_zero(pixel["dark"].astype(np.float64))
    with np.errstate(divide="ignore", invalid="ignore"):
        gain_over_rate = np.where(rate_term > 0, gain / rate_term, 0.0)
    terms = _PixelTerms(
        gain=gain.astype(np.float32),
        rn2=(rdn2 * gain * gain).astype(np.float32),
        inv_rdn2=1.0 / rdn2,
        gain_over_rate=gain_over_rate,
    )

    # pass 2: fit every integration, then combine
    inv_r_tot = np.zeros(npix)
    inv_p_tot = np.zeros(npix)
    weighted_tot = np.zeros(npix)
    bits_any = np.zeros(npix, np.uint32)
    allow_one_group = not (suppress_one_group and ngroups > 1)
    for i in range(nints):
        values, gdq, cols = data[i, spans[i]], groupdq[i, spans[i]], complex_cols[i]
        slope, inv_r, inv_p = np.full(npix, np.nan), np.zeros(npix), np.zeros(npix)
        if values.shape[0] >= 2:
            for sb in iter_blocks(npix):
                slope[sb], inv_r[sb], inv_p[sb] = _fit_simple(values[:, sb], terms.take(sb), group_time)
        if cols.size:
            sub = values[:, cols]
            usable, jumps = _usable_groups(gdq[:, cols], sub, jump)
            fit = _fit_general(
                sub, usable, jumps, terms.take(cols), tgroup=group_time, allow_one_group=allow_one_group
            )
            slope[cols], inv_r[cols], inv_p[cols] = fit
        ok = (inv_r > 0) & ~dead
        inv_r = np.where(ok, inv_r, 0.0)
        inv_p = np.where(ok, inv_p, 0.0)
        bits = group_bits[i].astype(np.uint32) & np.uint32(jump | sat)
        bits_any |= bits
        _store(out, i, ok, slope, inv_r, inv_p, base_dq | bits, dnu)
        if nints > 1:
            inv_r_tot += inv_r
            inv_p_tot += inv_p
            weighted_tot += np.where(ok, slope, 0.0) * inv_r
    if nints == 1:  # the exposure is the integration (fit_ramps makes those arrays views of it)
        for name in ("rate", "err", "dq", "var_poisson", "var_rnoise"):
            if not np.shares_memory(out[name], out[name + "_ints"]):
                out[name][...] = out[name + "_ints"][0]
        return
    ok = inv_r_tot > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = weighted_tot / inv_r_tot
    _store(out, None, ok, slope, inv_r_tot, inv_p_tot, base_dq | bits_any, dnu)


def _store(
    out: dict[str, np.ndarray],
    integration: int | None,
    ok: np.ndarray,
    slope: np.ndarray,
    inv_r: np.ndarray,
    inv_p: np.ndarray,
    dq: np.ndarray,
    dnu: int,
) -> None:
    """Write slope, variances, ERR and DQ (exposure level when ``integration`` is None)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        var_r = np.where(ok, 1.0 / inv_r, 0.0)
        var_p = np.where(ok & (inv_p > 0), 1.0 / inv_p, 0.0)
    suffix, index = ("", slice(None)) if integration is None else ("_ints", integration)
    out["rate" + suffix][index] = np.where(ok, slope, np.nan)
    out["var_rnoise" + suffix][index] = var_r
    out["var_poisson" + suffix][index] = var_p
    out["err" + suffix][index] = np.sqrt(var_r + var_p)
    out["dq" + suffix][index] = dq | np.where(ok, np.uint32(0), np.uint32(dnu))
