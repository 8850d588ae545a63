"""The detector model: per-pixel properties of one full-frame detector.

One model per detector, drawn from the detector seed (not the run seed), so that every
simulation sees the same detector and the reference files written from it calibrate any
simulated exposure. Readout windows (subarrays) are cut from the full frame.

Per pixel (full frame, float32 unless stated):

- ``bias``        DN, raw level of an empty pixel: ~12000 + amplifier offsets + a row
                  gradient + an odd/even column pattern + pixel-to-pixel scatter.
- ``gain``        e-/DN, ~2-3 % scatter around the instrument value.
- ``read_noise``  DN, correlated double sampling (CDS) noise; one read has
                  ``read_noise / sqrt(2)``.
- ``dark``        e-/s, log-normal around the instrument value, plus warm and hot pixels.
- ``flat``        relative QE (mean 1, ~1 %), 0 on dead and reference pixels, 0.2-0.5 on
                  low-QE pixels.
- ``full_well``   DN, raw level (bias included) at which the output clips (55000-60000).
- ``saturation``  DN, the SATURATION reference threshold: ``full_well - 100``.
- ``nonlin``      1/DN, coefficient ``a`` of the non-linearity ``S_meas = S - a S**2``
                  (S in DN above bias), 1.0e-6 to 1.6e-6: 5-8 % compression near full well.
- ``dq``          uint32 MASK flags (DEAD|DO_NOT_USE, HOT, WARM, LOW_QE, REFERENCE_PIXEL).
- ``refpix``      bool, reference pixels (4-pixel border for near-IR; MIRI columns 0-3 and
                  1028-1031): no light, no dark current.
- ``refout_bias`` MIRI only, DN per (row, 4-column block): level of the reference output.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shared.datamodels.dqflags import PIXEL
from shared.instruments import DetectorInfo, Subarray

from .seeding import Stream, generator

__all__ = [
    "DetectorModel",
    "DetectorParameters",
    "PARAMETERS",
    "apply_nonlinearity",
    "linearity_coefficients",
    "make_detector_model",
    "readout_channels",
    "reference_pixel_mask",
    "refout_row_parity",
]

LINEARITY_NCOEFFS = 6  # c0..c5; the inverse series truncated at the 5th power


@dataclass(frozen=True)
class DetectorParameters:
    """Instrument-level values the per-pixel model scatters around."""

    gain: float  # e-/DN
    gain_scatter: float  # fractional sigma
    read_noise: float  # CDS DN
    read_noise_scatter: float  # fractional sigma
    bias: float  # DN
    dark: float  # e-/s
    warm_range: tuple[float, float]  # e-/s
    hot_range: tuple[float, float]  # e-/s
    warm_fraction: float = 1.0e-3
    hot_fraction: float = 5.0e-4
    dead_fraction: float = 2.0e-4
    low_qe_fraction: float = 5.0e-4
    flat_sigma: float = 0.01
    full_well: tuple[float, float] = (55000.0, 60000.0)  # raw DN, bias included
    nonlin: tuple[float, float] = (1.0e-6, 1.6e-6)  # 1/DN
    saturation_margin: float = 100.0  # DN below full well
    drift_common: float = 5.0  # DN per group, shared by all amplifiers
    drift_amplifier: float = 3.0  # DN per group and amplifier
    drift_parity: float = 2.0  # DN per group, amplifier and column (row, MIRI) parity
    rscd_scale: float = 0.0  # reset-switch charge decay (MIRI): fraction of the previous integration's signal
    rscd_tau: float = 1.0  # its e-folding length, groups
    rscd_level_max: float = 15000.0  # cap on the previous integration's signal, DN


PARAMETERS: dict[str, DetectorParameters] = {
    "NIRCAM": DetectorParameters(
        gain=2.05, gain_scatter=0.03, read_noise=12.0, read_noise_scatter=0.08, bias=12000.0,
        dark=0.005, warm_range=(0.1, 0.5), hot_range=(0.5, 50.0),
    ),
    "NIRISS": DetectorParameters(
        gain=1.61, gain_scatter=0.03, read_noise=13.5, read_noise_scatter=0.08, bias=12000.0,
        dark=0.01, warm_range=(0.1, 0.5), hot_range=(0.5, 50.0),
    ),
    # NIRSpec's SIDECAR-read H2RGs (NRS1, NRS2): gain about 1 e-/DN, CDS read noise ~15 DN,
    # dark current below 0.01 e-/s.
    "NIRSPEC": DetectorParameters(
        gain=1.0, gain_scatter=0.03, read_noise=15.0, read_noise_scatter=0.08, bias=12000.0,
        dark=0.007, warm_range=(0.1, 0.5), hot_range=(0.5, 50.0),
    ),
    # The guiders: the gain, CDS read noise and bias their guide-star images are read with.
    "FGS": DetectorParameters(
        gain=2.0, gain_scatter=0.03, read_noise=8.0, read_noise_scatter=0.08, bias=4000.0,
        dark=0.01, warm_range=(0.1, 0.5), hot_range=(0.5, 50.0),
    ),
    "MIRI": DetectorParameters(
        gain=4.0, gain_scatter=0.02, read_noise=8.0, read_noise_scatter=0.08, bias=12000.0,
        dark=0.3, warm_range=(3.0, 10.0), hot_range=(10.0, 300.0), rscd_scale=0.02,
    ),
}


def reference_pixel_mask(det: DetectorInfo) -> np.ndarray:
    """Full-frame boolean mask of the reference pixels, shape (ny, nx)."""
    mask = np.zeros((det.ny, det.nx), bool)
    b = det.refpix_border
    mask[:, :b] = True
    mask[:, det.nx - b :] = True
    if det.instrument != "MIRI":  # MIRI has reference columns only
        mask[:b, :] = True
        mask[det.ny - b :, :] = True
    return mask


def readout_channels(det: DetectorInfo, sub: Subarray) -> tuple[np.ndarray, int]:
    """Drift channel of every pixel of a window: ``amplifier * 2 + parity``.

    Near-IR: amplifiers are 512-column stripes of the full frame when 4 outputs are used,
    one amplifier for 1-output subarrays; parity is that of the full-frame column.
    MIRI: the 4 amplifiers read interleaved columns (column mod 4); parity is that of
    the full-frame row.

    Returns
    -------
    channels : ndarray of int16, shape (ysize, xsize)
    nchannels : int
        ``2 * number of amplifiers``.
    """
    x = np.arange(sub.xstart - 1, sub.xstart - 1 + sub.xsize)
    y = np.arange(sub.ystart - 1, sub.ystart - 1 + sub.ysize)
    if det.instrument == "MIRI":
        namps = 4
        amp = np.broadcast_to(x % 4, (sub.ysize, sub.xsize))
        parity = np.broadcast_to((y % 2)[:, None], (sub.ysize, sub.xsize))
    else:
        namps = sub.noutputs
        amp = np.broadcast_to((x // (det.nx // namps)) if namps > 1 else np.zeros_like(x), (sub.ysize, sub.xsize))
        parity = np.broadcast_to(x % 2, (sub.ysize, sub.xsize))
    return (amp * 2 + parity).astype(np.int16), 2 * namps


def refout_row_parity(sub: Subarray) -> np.ndarray:
    """Full-frame row parity of the science row read with each MIRI reference-output pixel.

    The reference output delivers one value per readout cycle of the 4 amplifiers, i.e.
    per (row, 4-column block); the (ysize, xsize/4) samples in time order are stored as an
    array of shape (ysize/4, xsize). Returns int8 of that shape.
    """
    ny4, nx = sub.ysize // 4, sub.xsize
    k = np.arange(ny4 * nx)
    row = k // (nx // 4) + sub.ystart - 1
    return (row % 2).astype(np.int8).reshape(ny4, nx)


def apply_nonlinearity(signal: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Measured signal of a linear one: ``S - a S**2``, S held at its turnover ``1/(2a)``.

    Parameters
    ----------
    signal : ndarray
        Linear signal above bias, DN.
    a : ndarray
        Non-linearity coefficient, 1/DN (same shape or broadcastable).
    """
    with np.errstate(divide="ignore"):
        turnover = np.where(a > 0, 0.5 / np.maximum(a, 1e-30), np.inf)
    s = np.minimum(signal, turnover)
    return s - a * s * s


def linearity_coefficients(a: np.ndarray, offset: np.ndarray | None = None) -> np.ndarray:
    """LINEARITY reference coefficients inverting :func:`apply_nonlinearity`.

    The inverse of ``y = S - a S**2`` is ``S = sum_k C(k-1) a**(k-1) y**k`` with the
    Catalan numbers C = 1, 1, 2, 5, 14, ...; truncated at ``y**5`` it is exact to better than
    1e-4 relative for ``a y < 0.08`` (up to full well).

    Parameters
    ----------
    a : ndarray, shape (ny, nx)
        Non-linearity coefficient, 1/DN.
    offset : ndarray, shape (ny, nx), optional
        When given (MIRI, which has no superbias step: linearity sees raw DN), the
        polynomial is re-expanded in raw DN ``F = offset + y`` and maps it to
        ``offset + S``, so the bias passes through unchanged.

    Returns
    -------
    ndarray of float32, shape (6, ny, nx)
        Coefficients c0..c5 in increasing power (COEFFS of the LINEARITY reference).
    """
    a = np.asarray(a, np.float64)
    catalan = [1.0, 1.0, 2.0, 5.0, 14.0]
    c = np.zeros((LINEARITY_NCOEFFS,) + a.shape)
    for k in range(1, LINEARITY_NCOEFFS):
        c[k] = catalan[k - 1] * a ** (k - 1)
    if offset is not None:
        b = np.asarray(offset, np.float64)
        shifted = np.zeros_like(c)
        shifted[0] = b
        binom = np.array([[1, 0, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0], [1, 2, 1, 0, 0, 0],
                          [1, 3, 3, 1, 0, 0], [1, 4, 6, 4, 1, 0], [1, 5, 10, 10, 5, 1]], float)
        for k in range(1, LINEARITY_NCOEFFS):
            for j in range(k + 1):
                shifted[j] += c[k] * binom[k, j] * (-b) ** (k - j)
        c = shifted
    return c.astype(np.float32)


@dataclass(frozen=True)
class DetectorModel:
    """Per-pixel properties of a detector or of a window of it (see module docstring).

    ``subarray`` is None for the full frame.
    """

    detector: DetectorInfo
    params: DetectorParameters
    bias: np.ndarray
    gain: np.ndarray
    read_noise: np.ndarray
    dark: np.ndarray
    flat: np.ndarray
    full_well: np.ndarray
    saturation: np.ndarray
    nonlin: np.ndarray
    dq: np.ndarray
    refpix: np.ndarray
    refout_bias: np.ndarray | None = None  # (ny, nx // 4)
    subarray: Subarray | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return self.bias.shape

    def window(self, sub: Subarray) -> DetectorModel:
        """The model of a readout window (views of the full-frame arrays)."""
        if self.subarray is not None:
            raise ValueError("window() applies to a full-frame model")
        y0, x0 = sub.ystart - 1, sub.xstart - 1
        if y0 < 0 or x0 < 0 or y0 + sub.ysize > self.shape[0] or x0 + sub.xsize > self.shape[1]:
            raise ValueError(f"subarray {sub.name} does not fit {self.detector.name}")
        cut = (slice(y0, y0 + sub.ysize), slice(x0, x0 + sub.xsize))
        refout = None
        if self.refout_bias is not None:
            refout = self.refout_bias[cut[0], x0 // 4 : (x0 + sub.xsize) // 4]
        return DetectorModel(
            detector=self.detector, params=self.params,
            bias=self.bias[cut], gain=self.gain[cut], read_noise=self.read_noise[cut],
            dark=self.dark[cut], flat=self.flat[cut], full_well=self.full_well[cut],
            saturation=self.saturation[cut], nonlin=self.nonlin[cut], dq=self.dq[cut],
            refpix=self.refpix[cut], refout_bias=refout, subarray=sub,
        )

    def refout_level(self) -> np.ndarray | None:
        """Reference-output bias in its telemetry layout, (ysize/4, xsize), or None."""
        if self.refout_bias is None:
            return None
        ny, nx4 = self.refout_bias.shape
        return np.ascontiguousarray(self.refout_bias).reshape(ny // 4, nx4 * 4)


def _log_uniform(rng: np.random.Generator, low: float, high: float, n: int) -> np.ndarray:
    return np.exp(rng.uniform(np.log(low), np.log(high), n))


def make_detector_model(det: DetectorInfo, detector_seed: int) -> DetectorModel:
    """Draw the full-frame model of a detector (deterministic for a seed).

    Parameters
    ----------
    det : DetectorInfo
        The detector.
    detector_seed : int
        Seed of the detector models (``SimulationSpec.detector_seed``).
    """
    p = PARAMETERS[det.instrument]
    rng = generator(detector_seed, Stream.DETECTOR, det.code)
    ny, nx = det.ny, det.nx
    f32 = np.float32
    refpix = reference_pixel_mask(det)
    yy = np.arange(ny, dtype=f32)[:, None] / ny
    xx = np.arange(nx)

    # Bias: amplifier offsets, a gentle row gradient, even/odd columns, pixel scatter.
    amp = (xx % 4) if det.instrument == "MIRI" else xx // (nx // 4)
    amp_offset = rng.normal(0.0, 150.0, 4)[amp].astype(f32)
    parity_offset = np.where(xx % 2 == 0, 0.0, rng.normal(0.0, 15.0)).astype(f32)
    bias = (p.bias + amp_offset[None, :] + parity_offset[None, :] + 60.0 * yy).astype(f32)
    bias += rng.normal(0.0, 25.0, (ny, nx)).astype(f32)

    gain = (p.gain * (1.0 + p.gain_scatter * rng.standard_normal((ny, nx), dtype=f32))).astype(f32)
    read_noise = (p.read_noise * (1.0 + p.read_noise_scatter * rng.standard_normal((ny, nx), dtype=f32))).astype(f32)
    np.maximum(read_noise, 0.3 * p.read_noise, out=read_noise)

    dq = np.zeros((ny, nx), np.uint32)
    dark = (p.dark * np.exp(0.3 * rng.standard_normal((ny, nx), dtype=f32) - 0.045)).astype(f32)
    flat = (1.0 + p.flat_sigma * rng.standard_normal((ny, nx), dtype=f32)).astype(f32)
    sensitive = np.flatnonzero(~refpix.ravel())
    picks = rng.permutation(sensitive)
    n_warm, n_hot, n_dead, n_low = (int(round(f * len(sensitive))) for f in (
        p.warm_fraction, p.hot_fraction, p.dead_fraction, p.low_qe_fraction))
    warm, picks = picks[:n_warm], picks[n_warm:]
    hot, picks = picks[:n_hot], picks[n_hot:]
    dead, picks = picks[:n_dead], picks[n_dead:]
    low = picks[:n_low]
    dark.ravel()[warm] = _log_uniform(rng, *p.warm_range, n_warm)
    dark.ravel()[hot] = _log_uniform(rng, *p.hot_range, n_hot)
    flat.ravel()[low] = rng.uniform(0.2, 0.5, n_low)
    flat.ravel()[dead] = 0.0
    dq.ravel()[warm] |= PIXEL["WARM"]
    dq.ravel()[hot] |= PIXEL["HOT"]
    dq.ravel()[low] |= PIXEL["LOW_QE"]
    dq.ravel()[dead] |= PIXEL["DEAD"] | PIXEL["DO_NOT_USE"]
    dq[refpix] |= np.uint32(PIXEL["REFERENCE_PIXEL"])
    dark[refpix] = 0.0
    flat[refpix] = 0.0

    full_well = rng.uniform(*p.full_well, (ny, nx)).astype(f32)
    saturation = (full_well - p.saturation_margin).astype(f32)
    nonlin = rng.uniform(*p.nonlin, (ny, nx)).astype(f32)
    nonlin[refpix] = 0.0

    refout_bias = None
    if det.has_refout:
        refout_bias = (p.bias + 40.0 * yy + rng.normal(0.0, 10.0, (ny, nx // 4))).astype(f32)

    return DetectorModel(
        detector=det, params=p, bias=bias, gain=gain, read_noise=read_noise, dark=dark,
        flat=flat, full_well=full_well, saturation=saturation, nonlin=nonlin, dq=dq,
        refpix=refpix, refout_bias=refout_bias,
    )
