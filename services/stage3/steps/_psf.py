"""The PSF as the source catalog needs it: FWHM, the radii enclosing 30/50/70 % of a
point source's flux, and the aperture correction to infinity.

Measured on the image itself, when no APCORR reference gives the apertures: the curve
of growth of bright, isolated, compact stars, each background-subtracted with a local
annulus and normalised at ``r_max = max(2 FWHM, 4 px)``; the median curve, freed of a
residual background term (see :func:`_remove_background_term`) and normalised to its
asymptote, gives the encircled energy EE(r). With fewer than :data:`MIN_STARS` such stars the PSF is taken as
a Gaussian of the measured (or given) FWHM, blurred by the pixel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from astropy.stats import sigma_clipped_stats
from photutils.aperture import CircularAnnulus, CircularAperture, aperture_photometry
from scipy.interpolate import PchipInterpolator
from scipy.optimize import least_squares

__all__ = ["MIN_STARS", "PsfModel", "gaussian_psf", "measure_psf"]

MIN_STARS = 3
_FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))


@dataclass(frozen=True)
class PsfModel:
    """``fwhm`` pixels; ``ee`` fractions (e.g. 0.3, 0.5, 0.7) and their ``radii``
    (pixels); ``aperture_correction`` = 1 / EE(largest radius); background annulus
    ``bkg_inner``/``bkg_outer`` (pixels); ``method`` says how it was obtained."""

    fwhm: float
    ee: tuple[float, ...]
    radii: tuple[float, ...]
    aperture_correction: float
    bkg_inner: float
    bkg_outer: float
    method: str


def _annulus(fwhm: float, r_largest: float) -> tuple[float, float]:
    inner = max(3.0 * fwhm, r_largest + 2.0)
    return inner, inner + max(3.0, 1.5 * fwhm)


def gaussian_psf(fwhm: float, ee: tuple[float, ...], note: str) -> PsfModel:
    """A Gaussian PSF of ``fwhm`` (pixels) as sampled by square pixels
    (sigma² + 1/12 per axis): EE(r) = 1 - exp(-r² / 2 sigma²)."""
    sigma = math.sqrt((fwhm / _FWHM_PER_SIGMA) ** 2 + 1.0 / 12.0)
    radii = tuple(sigma * math.sqrt(-2.0 * math.log(1.0 - e)) for e in ee)
    inner, outer = _annulus(fwhm, radii[-1])
    return PsfModel(fwhm, ee, radii, 1.0 / ee[-1], inner, outer, f"Gaussian of FWHM {fwhm:.2f} px ({note})")


def _local_background(data: np.ndarray, mask: np.ndarray, x, y, r_in: float, r_out: float) -> np.ndarray:
    annuli = CircularAnnulus(np.transpose([x, y]), r_in, r_out)
    out = []
    for m in annuli.to_mask(method="center"):
        values = m.get_values(data, mask=mask)
        values = values[np.isfinite(values)]
        out.append(sigma_clipped_stats(values, sigma=3.0, maxiters=5)[1] if values.size >= 5 else 0.0)
    return np.asarray(out)


def _remove_background_term(radii: np.ndarray, curve: np.ndarray, fwhm: float) -> np.ndarray:
    """Encircled energy from a curve of growth normalised at its last radius.

    Light the annuli miss (undetected neighbours, a skewed sky) grows as r², a point
    source saturates: the curve is fitted as ``a * G(r) + c * r²`` with ``G`` the EE of a
    pixel-blurred Gaussian (free width), and ``(curve - c r²) / a`` is returned, so the
    normalisation is the asymptotic (total) flux. The Gaussian only separates the two
    terms; the EE keeps the measured shape.
    """
    def residual(q):
        a, sigma, c = q
        return a * (1.0 - np.exp(-(radii**2) / (2.0 * sigma**2))) + c * radii**2 - curve

    sigma0 = math.sqrt((fwhm / _FWHM_PER_SIGMA) ** 2 + 1.0 / 12.0)
    fit = least_squares(residual, x0=[1.0, sigma0, 0.0], bounds=([0.1, 0.1, -1.0], [10.0, 10.0 * sigma0, 1.0]))
    a, _, c = fit.x
    return np.maximum.accumulate((curve - c * radii**2) / a)


def measure_psf(
    data: np.ndarray, mask: np.ndarray, x: np.ndarray, y: np.ndarray, snr: np.ndarray, nn_dist: np.ndarray,
    fit_fwhm: np.ndarray, fit_ok: np.ndarray, *, ee: tuple[float, ...], fallback_fwhm: float,
    min_snr: float = 50.0,
) -> PsfModel:
    """The PSF of a background-subtracted image (see the module docstring).

    ``x``, ``y`` source centroids (0-based pixels); ``snr`` their detection S/N;
    ``nn_dist`` distance to the nearest other source (pixels); ``fit_fwhm``/``fit_ok``
    from the Gaussian centroid fits; ``mask`` True where the image has no data.
    """
    ee = tuple(float(e) for e in ee)
    good_fit = fit_ok & np.isfinite(fit_fwhm)
    bright = good_fit & (snr > 20)
    if bright.sum() >= MIN_STARS:
        fwhm = float(np.median(fit_fwhm[bright]))
    elif good_fit.sum() >= MIN_STARS:
        fwhm = float(np.median(fit_fwhm[good_fit]))
    else:
        return gaussian_psf(fallback_fwhm, ee, "no star to measure; the kernel FWHM")
    r_max = max(2.0 * fwhm, 4.0)
    r_in, r_out = r_max + 1.0, r_max + 1.0 + max(3.0, 1.5 * fwhm)
    ny, nx = data.shape
    compact = good_fit & (np.abs(fit_fwhm / fwhm - 1.0) < 0.2)
    inside = (x > r_out) & (x < nx - 1 - r_out) & (y > r_out) & (y < ny - 1 - r_out)
    cand = compact & inside & (snr > min_snr) & (nn_dist > r_out + fwhm)
    if cand.sum() < MIN_STARS:
        return gaussian_psf(fwhm, ee, f"{int(cand.sum())} isolated stars with S/N > {min_snr:g}; measured FWHM")
    idx = np.nonzero(cand)[0]
    radii = np.append(np.arange(0.25, r_max, 0.1), r_max)
    pos = np.transpose([x[idx], y[idx]])
    table = aperture_photometry(data, [CircularAperture(pos, r) for r in radii], mask=mask, method="exact")
    sums = np.array([np.asarray(table[f"aperture_sum_{k}"], float) for k in range(len(radii))]).T
    bkg = _local_background(data, mask, x[idx], y[idx], r_in, r_out)
    sums -= bkg[:, None] * (math.pi * radii**2)[None, :]
    # Stars with a masked pixel inside r_max (e.g. a saturated core) bias the curve.
    masked_pixels = mask.astype(np.float32)  # once: get_values cuts each star's window out of it
    masked = np.array([np.any(m.get_values(masked_pixels) > 0)
                       for m in CircularAperture(pos, r_max).to_mask(method="center")])
    usable = (~masked) & (sums[:, -1] > 0)
    if usable.sum() < MIN_STARS:
        return gaussian_psf(fwhm, ee, "stars with masked pixels; measured FWHM")
    curve = np.median(sums[usable] / sums[usable, -1:], axis=0)
    encircled = _remove_background_term(radii, curve, fwhm)
    if encircled[0] >= ee[0] or encircled[-1] <= ee[-1]:
        return gaussian_psf(fwhm, ee, "curve of growth does not span the requested EE; measured FWHM")
    # The curve is concave: interpolate it smoothly (a chord would overestimate radii).
    fine_r = np.linspace(radii[0], radii[-1], 4000)
    fine_ee = np.maximum.accumulate(PchipInterpolator(radii, encircled)(fine_r))
    r_ee = tuple(float(np.interp(e, fine_ee, fine_r)) for e in ee)
    inner, outer = _annulus(fwhm, r_ee[-1])
    return PsfModel(fwhm, ee, r_ee, 1.0 / ee[-1], inner, outer,
                    f"curve of growth of {int(usable.sum())} stars (FWHM {fwhm:.2f} px)")
