"""Up-the-ramp readout: from an electron rate to the uint16 groups the detector sends.

Time model of one integration (shared with ingest's group time stamps): the integration
starts right after a reset; frame k (1-based) is read k * TFRAME later, having
accumulated charge for k * TFRAME; a group averages NFRAMES consecutive frames and is
followed by GROUPGAP unread frames; integrations are ``NGROUPS * TGROUP + TFRAME`` apart
(one reset frame). Group g's packets are stamped ``g * TGROUP`` after the integration start.

Per frame and pixel (all vectorised over rows; the physics is in :func:`simulate_ramp`):

1. charge += Poisson(electron_rate * TFRAME)       (photo-electrons * flat + dark, e-)
   a cosmic ray of amplitude A DN adds A * gain electrons just before the first frame
   of its group, so it is in that group and every later one of the integration;
2. linear signal S = charge / gain (DN); measured signal S - a S^2;
3. raw = bias + drift(amplifier, parity, group) + measured + Normal(0, read_noise/sqrt(2));
4. raw = min(raw, full_well)  (hard clip);
then group value = round(mean of its NFRAMES raw frames), clipped to [0, 65535].

MIRI reset-switch charge decay (:class:`ResetDecay`, integrations 2..NINTS): before the
non-linearity of step 2, group g (0-based) of integration n adds
``scale * A * exp(-g / tau)`` DN to the linear signal, where ``A`` is the linear signal
(charge / gain, group means) the pixel collected between the first and the last group of
integration n-1, capped at ``level_max``. It is the model of detector-1's rscd step,
whose parameters the simulator's RSCD reference file carries.

Rows are simulated in blocks of :data:`BLOCK_ROWS`, each with its own random stream, on a
thread pool: results do not depend on the number of threads.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from shared.instruments import Subarray, exposure_timing, readout_pattern

from .detector_model import DetectorParameters, apply_nonlinearity
from .seeding import seed_sequence

__all__ = [
    "BLOCK_ROWS",
    "CosmicRays",
    "FrameSchedule",
    "PixelModel",
    "RampResult",
    "ResetDecay",
    "draw_cosmic_rays",
    "draw_drifts",
    "quantize",
    "simulate_ramp",
    "simulate_refout",
]

BLOCK_ROWS = 128


@dataclass(frozen=True)
class FrameSchedule:
    """Frame timing of an exposure; times in seconds."""

    tframe: float
    nframes: int
    groupgap: int
    ngroups: int
    nints: int

    @classmethod
    def for_exposure(cls, instrument: str, sub: Subarray, readpatt: str, ngroups: int, nints: int) -> FrameSchedule:
        patt = readout_pattern(readpatt)
        timing = exposure_timing(instrument, sub, readpatt, ngroups, nints)
        return cls(timing.tframe, patt.nframes, patt.groupgap, ngroups, nints)

    @property
    def tgroup(self) -> float:
        return (self.nframes + self.groupgap) * self.tframe

    @property
    def integration_period(self) -> float:
        """Start-to-start time of consecutive integrations (reset frame included)."""
        return self.ngroups * self.tgroup + self.tframe

    @property
    def frames_per_integration(self) -> int:
        """Frames up to the last read one (the dark reference needs this many)."""
        return (self.ngroups - 1) * (self.nframes + self.groupgap) + self.nframes

    def first_frame(self, group: int) -> int:
        """1-based index of the first frame of a 1-based group."""
        return (group - 1) * (self.nframes + self.groupgap) + 1

    def group_time(self, group: int) -> float:
        """Mean accumulation time of a 1-based group, s."""
        return self.tframe * (self.first_frame(group) + (self.nframes - 1) / 2.0)

    @property
    def last_frame_time(self) -> float:
        """Accumulation time of the last read frame, s."""
        return self.frames_per_integration * self.tframe


@dataclass(frozen=True)
class CosmicRays:
    """Cosmic-ray hits: 1-based ``integration`` and ``group`` (the first group that contains
    the charge), 0-based ``y``/``x`` in the window, ``amplitude_dn`` (linear DN = electrons
    deposited / gain). All shape (n,)."""

    integration: np.ndarray
    group: np.ndarray
    y: np.ndarray
    x: np.ndarray
    amplitude_dn: np.ndarray

    def __len__(self) -> int:
        return len(self.integration)

    @classmethod
    def none(cls) -> CosmicRays:
        empty = np.zeros(0, np.int64)
        return cls(empty, empty, empty, empty, np.zeros(0))


def draw_cosmic_rays(
    rng: np.random.Generator,
    schedule: FrameSchedule,
    sensitive: np.ndarray,
    rate: float,
    amplitude_range: tuple[float, float],
) -> CosmicRays:
    """Cosmic rays hitting light-sensitive pixels.

    Arrival times are uniform over [0, t_first(last group)] of each integration (hits later
    than the last group's first frame would only be partly in it, and are not drawn);
    a hit at time t belongs to the first group whose first frame is read at or after t.

    Parameters
    ----------
    rng : Generator
    schedule : FrameSchedule
    sensitive : ndarray of bool, shape (ny, nx)
        Pixels that can be hit (not reference, not dead).
    rate : float
        Hits per pixel per second.
    amplitude_range : (float, float)
        Log-uniform range of the deposit, DN.
    """
    candidates = np.flatnonzero(sensitive.ravel())
    first_times = np.array([schedule.first_frame(g) * schedule.tframe for g in range(1, schedule.ngroups + 1)])
    span = first_times[-1]
    parts = []
    for i in range(schedule.nints):
        n = int(rng.poisson(rate * len(candidates) * span)) if len(candidates) else 0
        t = rng.uniform(0.0, span, n)
        group = np.searchsorted(first_times, t, side="left") + 1
        where = candidates[rng.integers(0, len(candidates), n)] if n else np.zeros(0, np.int64)
        amp = np.exp(rng.uniform(np.log(amplitude_range[0]), np.log(amplitude_range[1]), n))
        parts.append((np.full(n, i + 1), group, where, amp))
    integ = np.concatenate([p[0] for p in parts]).astype(np.int64)
    group = np.concatenate([p[1] for p in parts]).astype(np.int64)
    flat_index = np.concatenate([p[2] for p in parts]).astype(np.int64)
    amp = np.concatenate([p[3] for p in parts])
    y, x = np.divmod(flat_index, sensitive.shape[1])
    order = np.lexsort((x, y, group, integ))
    return CosmicRays(integ[order], group[order], y[order], x[order], amp[order])


def draw_drifts(
    rng: np.random.Generator, nints: int, ngroups: int, namps: int,
    sigma_common: float, sigma_amplifier: float, sigma_parity: float,
) -> np.ndarray:
    """Reference-pixel drifts: an offset per (integration, group, amplifier, parity), DN.

    A term common to all amplifiers, one per amplifier, and one per amplifier and parity,
    each Gaussian and independent from group to group. Shape (nints, ngroups, namps, 2).
    """
    common = rng.normal(0.0, sigma_common, (nints, ngroups, 1, 1))
    amp = rng.normal(0.0, sigma_amplifier, (nints, ngroups, namps, 1))
    parity = rng.normal(0.0, sigma_parity, (nints, ngroups, namps, 2))
    return common + amp + parity


@dataclass(frozen=True)
class PixelModel:
    """Per-pixel detector properties of a window, shape (ny, nx) each.

    ``gain`` e-/DN; ``bias``, ``full_well`` raw DN; ``read_noise`` CDS DN; ``nonlin`` 1/DN;
    ``channels`` drift channel index (amplifier * 2 + parity).
    """

    gain: np.ndarray
    bias: np.ndarray
    read_noise: np.ndarray
    nonlin: np.ndarray
    full_well: np.ndarray
    channels: np.ndarray


@dataclass(frozen=True)
class ResetDecay:
    """MIRI reset-switch charge decay (see the module docstring): ``scale`` (fraction),
    ``tau`` (groups), ``level_max`` (DN)."""

    scale: float
    tau: float
    level_max: float

    @classmethod
    def of(cls, params: DetectorParameters) -> ResetDecay | None:
        """The decay of a detector's parameters (None where its scale is 0: near-IR)."""
        if params.rscd_scale <= 0:
            return None
        return cls(params.rscd_scale, params.rscd_tau, params.rscd_level_max)

    def offsets(self, collected: np.ndarray, ngroups: int) -> np.ndarray:
        """Offsets (ngroups, ...) DN after an integration that collected ``collected`` DN."""
        amplitude = np.clip(collected, 0.0, self.level_max)
        decay = np.exp(-np.arange(ngroups) / self.tau).reshape((ngroups,) + (1,) * amplitude.ndim)
        return self.scale * decay * amplitude


@dataclass(frozen=True)
class RampResult:
    """``sci`` uint16 (nints, ngroups, ny, nx); ``zeroframe`` uint16 (nints, ny, nx) or None."""

    sci: np.ndarray
    zeroframe: np.ndarray | None


def quantize(values: np.ndarray) -> np.ndarray:
    """Round to the nearest integer DN and clip to the uint16 range."""
    return np.clip(np.rint(values), 0, 65535).astype(np.uint16)


def simulate_ramp(
    electron_rate: np.ndarray,
    pixels: PixelModel,
    schedule: FrameSchedule,
    drifts: np.ndarray,
    cosmic_rays: CosmicRays,
    entropy: tuple[int, ...],
    *,
    zeroframe: bool = False,
    noiseless: bool = False,
    reset_decay: ResetDecay | None = None,
    workers: int | None = None,
) -> RampResult:
    """Simulate the groups of every integration of one exposure of one window.

    Parameters
    ----------
    electron_rate : ndarray, shape (ny, nx) or (nints, ny, nx)
        Charge accumulation rate, e-/s (photo-electrons times flat, plus dark current),
        constant over the exposure or one per integration (a variable source).
    pixels : PixelModel
        Detector properties of the window.
    schedule : FrameSchedule
        Frame timing.
    drifts : ndarray, shape (nints, ngroups, namps, 2)
        Drift offsets, DN, indexed by ``pixels.channels``.
    cosmic_rays : CosmicRays
        Hits to inject.
    entropy : tuple of int
        Seed keys of this exposure; row block b draws from ``seed_sequence(*entropy,
        spawn_key=(b,))``.
    zeroframe : bool
        Also return the first frame of each integration.
    noiseless : bool
        Replace Poisson draws by their mean and read noise by zero (drifts and cosmic rays
        are whatever is passed).
    reset_decay : ResetDecay, optional
        MIRI reset-switch charge decay of integrations 2..NINTS; None: none.
    workers : int, optional
        Threads; default the CPU count.

    Returns
    -------
    RampResult
    """
    ny, nx = electron_rate.shape[-2:]
    nints, ngroups = schedule.nints, schedule.ngroups
    per_integration = electron_rate.ndim == 3
    if per_integration and electron_rate.shape[0] != nints:
        raise ValueError(f"electron_rate has {electron_rate.shape[0]} integrations, the schedule {nints}")
    sci = np.empty((nints, ngroups, ny, nx), np.uint16)
    zero = np.empty((nints, ny, nx), np.uint16) if zeroframe else None
    drift_table = drifts.reshape(nints, ngroups, -1)
    nblocks = (ny + BLOCK_ROWS - 1) // BLOCK_ROWS

    def run_block(b: int) -> None:
        r0, r1 = b * BLOCK_ROWS, min(ny, (b + 1) * BLOCK_ROWS)
        rng = np.random.default_rng(seed_sequence(*entropy, spawn_key=(b,)))
        rates = electron_rate[..., r0:r1, :].astype(np.float64) * schedule.tframe
        gain = pixels.gain[r0:r1].astype(np.float64)
        bias = pixels.bias[r0:r1].astype(np.float64)
        a = pixels.nonlin[r0:r1].astype(np.float64)
        full_well = pixels.full_well[r0:r1].astype(np.float64)
        sigma_read = 0.0 if noiseless else pixels.read_noise[r0:r1].astype(np.float64) / np.sqrt(2.0)
        channels = pixels.channels[r0:r1]
        in_block = (cosmic_rays.y >= r0) & (cosmic_rays.y < r1)
        cr_i, cr_g = cosmic_rays.integration[in_block], cosmic_rays.group[in_block]
        cr_y, cr_x = cosmic_rays.y[in_block] - r0, cosmic_rays.x[in_block]
        cr_e = cosmic_rays.amplitude_dn[in_block] * gain[cr_y, cr_x] if len(cr_y) else np.zeros(0)

        def accumulate(mean: np.ndarray) -> np.ndarray:
            return mean if noiseless else rng.poisson(mean)

        rscd = None  # (ngroups, rows, nx) offsets of the current integration, DN
        for i in range(nints):
            lam = rates[i] if per_integration else rates
            charge = np.zeros_like(lam)
            first_signal = last_signal = None
            for g in range(ngroups):
                if g > 0 and schedule.groupgap:
                    charge += accumulate(lam * schedule.groupgap)
                hits = (cr_i == i + 1) & (cr_g == g + 1)
                if hits.any():
                    np.add.at(charge, (cr_y[hits], cr_x[hits]), cr_e[hits])
                offset = drift_table[i, g][channels]
                total = np.zeros_like(lam)
                signal = np.zeros_like(lam)
                for f in range(schedule.nframes):
                    charge += accumulate(lam)
                    linear = charge / gain
                    signal += linear
                    if rscd is not None:
                        linear = linear + rscd[g]
                    raw = bias + offset + apply_nonlinearity(linear, a)
                    if not noiseless:
                        raw += sigma_read * rng.standard_normal(raw.shape)
                    np.minimum(raw, full_well, out=raw)
                    if zero is not None and g == 0 and f == 0:
                        zero[i, r0:r1] = quantize(raw)
                    total += raw
                sci[i, g, r0:r1] = quantize(total / schedule.nframes)
                if g == 0:
                    first_signal = signal / schedule.nframes
                if g == ngroups - 1:
                    last_signal = signal / schedule.nframes
            if reset_decay is not None:
                rscd = reset_decay.offsets(last_signal - first_signal, ngroups)

    workers = workers or os.cpu_count() or 1
    if workers == 1 or nblocks == 1:
        for b in range(nblocks):
            run_block(b)
    else:
        with ThreadPoolExecutor(max_workers=min(workers, nblocks)) as pool:
            list(pool.map(run_block, range(nblocks)))
    return RampResult(sci=sci, zeroframe=zero)


def simulate_refout(
    level: np.ndarray,
    read_noise: float,
    row_parity: np.ndarray,
    drifts: np.ndarray,
    schedule: FrameSchedule,
    rng: np.random.Generator,
    *,
    noiseless: bool = False,
) -> np.ndarray:
    """MIRI reference output: bias-like level plus the drifts plus read noise.

    The reference output sees the drift common to the amplifiers (their mean, for the
    parity of the science row read at the same time) and no signal.

    Parameters
    ----------
    level : ndarray, shape (ny/4, nx)
        Reference-output bias, DN, in its telemetry layout.
    read_noise : float
        CDS read noise, DN (one group of NFRAMES frames has ``read_noise/sqrt(2 NFRAMES)``).
    row_parity : ndarray of int, shape (ny/4, nx)
        From :func:`detector_model.refout_row_parity`.
    drifts : ndarray, shape (nints, ngroups, namps, 2)
    schedule : FrameSchedule
    rng : Generator

    Returns
    -------
    ndarray of uint16, shape (nints, ngroups, ny/4, nx)
    """
    common = drifts.mean(axis=2)  # (nints, ngroups, 2)
    values = level[None, None] + common[:, :, row_parity]
    if not noiseless:
        values = values + rng.normal(0.0, read_noise / np.sqrt(2.0 * schedule.nframes), values.shape)
    return quantize(values)
