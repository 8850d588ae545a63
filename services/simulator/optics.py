"""What the simulator needs to know about filters, PSFs, backgrounds and readout modes.

Pivot wavelengths are the public JWST filter values (micrometres). The PSF is a circular
Gaussian with the diffraction-limited width of a 6.5 m aperture,
``FWHM = 0.0317 arcsec * lambda / 1 um`` (about 1.0 lambda/D), widened in quadrature by
the defocus of a weak lens in the pupil wheel (NIRCam WLP8, used for bright time-series
targets). Default sky levels are round numbers of the right order for the zodiacal
(near-IR) and thermal (MIRI) backgrounds; a description can set its own.

Vega magnitudes (:func:`vega_ab_offset`): the AB magnitude of Vega in a filter, i.e. the
AB - Vega offset of the ABVEGAOFFSET reference, from Vega's flux density at the filter's
pivot wavelength, interpolated log-log in published zero points (:data:`VEGA_ZERO_POINTS_JY`),
as for the simulator's flat-spectrum sources.

Photometric calibration (:func:`jy_per_electron`): a source of flat spectrum f_nu (Jy)
gives ``f_nu * 1e-26 / h * AREA * throughput * (dlambda / lambda)`` photo-electrons per
second (the photon rate per unit ln(nu) of a flat f_nu is ``f_nu / h``), with the nominal
collecting area ``COLLECTING_AREA_M2`` = 25.4 m^2, the fractional bandwidth of the filter
class (wide W 0.25, extra-wide W2 0.5, medium M 0.1, narrow N 0.01) and a round total
throughput per instrument (telescope + instrument + detector QE: NIRCam 0.3, NIRISS 0.25,
MIRI 0.2).
"""

from __future__ import annotations

import math

import numpy as np

# The filters' facts are the instruments' (shared.instruments), used here and by the archive.
from shared.instruments import (
    FILTERS,
    READOUT_PATTERNS_BY_INSTRUMENT,
    bandpass_element,
    fractional_bandwidth,
)

__all__ = [
    "AB_ZERO_POINT_JY",
    "COLLECTING_AREA_M2",
    "FILTERS",
    "NIRCAM_PUPIL_PARTNERS",
    "NIRCAM_SW_MAX_UM",
    "READOUT_PATTERNS_BY_INSTRUMENT",
    "SIMULATED_INSTRUMENTS",
    "TEMPLATES",
    "IMAGING_EXP_TYPES",
    "VEGA_ZERO_POINTS_JY",
    "WEAK_LENS_FWHM_ARCSEC",
    "ab_magnitude",
    "bandpass_element",
    "default_sky_level",
    "fractional_bandwidth",
    "jy_per_electron",
    "pivot_wavelength",
    "psf_fwhm_arcsec",
    "vega_ab_offset",
    "vega_flux_jy",
]

SIMULATED_INSTRUMENTS: tuple[str, ...] = ("NIRCAM", "NIRISS", "MIRI")

# NIRCam short-wavelength detectors (NRCA1-4, NRCB1-4) see 0.6-2.3 um, the long-wavelength
# ones (NRCALONG, NRCBLONG) 2.4-5.0 um.
NIRCAM_SW_MAX_UM = 2.4

# Open positions of the pupil/filter wheels (the other wheel then holds the filter).
CLEAR_POSITIONS = {"NIRCAM": ("CLEAR",), "NIRISS": ("CLEAR", "CLEARP"), "MIRI": ()}

# NIRCam narrow/medium filters that sit in the pupil wheel, with the filter-wheel element
# they are used behind.
NIRCAM_PUPIL_PARTNERS = {"F162M": "F150W2", "F164N": "F150W2", "F323N": "F322W2",
                         "F405N": "F444W", "F466N": "F444W", "F470N": "F444W"}

# Weak lenses of the NIRCam short-wavelength pupil wheel: extra PSF width (FWHM, arcsec,
# added in quadrature), a Gaussian stand-in for the defocused image that spreads a bright
# time-series target over many pixels.
WEAK_LENS_FWHM_ARCSEC = {"WLP8": 0.34}

IMAGING_EXP_TYPES: dict[str, tuple[str, ...]] = {
    "NIRCAM": ("NRC_IMAGE", "NRC_TSIMAGE"),
    "NIRISS": ("NIS_IMAGE",),
    "MIRI": ("MIR_IMAGE",),
}

TEMPLATES = {"NIRCAM": "NIRCam Imaging", "NIRISS": "NIRISS Imaging", "MIRI": "MIRI Imaging"}

# FWHM of a diffraction-limited PSF per micrometre of wavelength, arcsec.
FWHM_ARCSEC_PER_UM = 0.0317

AB_ZERO_POINT_JY = 3631.0
COLLECTING_AREA_M2 = 25.4
PLANCK_J_S = 6.62607015e-34
THROUGHPUT = {"NIRCAM": 0.3, "NIRISS": 0.25, "MIRI": 0.2}


def pivot_wavelength(instrument: str, filter_: str, pupil: str | None = None) -> float:
    """Pivot wavelength in micrometres of the filter that sets the bandpass.

    When the pupil wheel holds a filter (NIRCam narrow bands, NIRISS short-wavelength
    filters), that filter wins; otherwise the filter-wheel element is used.

    Raises
    ------
    KeyError
        Neither element is a known filter of the instrument.
    """
    return FILTERS[instrument.upper()][bandpass_element(instrument, filter_, pupil)]


def psf_fwhm_arcsec(wavelength_um, pupil: str | None = None):
    """Full width at half maximum of the Gaussian PSF, arcsec (a weak lens in the pupil
    wheel widens it in quadrature); of a wavelength (um) or an array of them."""
    fwhm = FWHM_ARCSEC_PER_UM * np.asarray(wavelength_um, np.float64)
    defocus = WEAK_LENS_FWHM_ARCSEC.get((pupil or "").upper(), 0.0)
    return np.hypot(fwhm, defocus)


def jy_per_electron(instrument: str, filter_: str, pupil: str | None = None) -> float:
    """Flux density (Jy) of a flat-spectrum source that gives 1 photo-electron per second.

    ``1 / (1e-26 / h * COLLECTING_AREA_M2 * throughput * dlambda/lambda)``; see the module
    docstring. About 3.5e-8 Jy (AB 27.55) for NIRCam F200W.
    """
    element = bandpass_element(instrument, filter_, pupil)
    electrons_per_jy = (1.0e-26 / PLANCK_J_S * COLLECTING_AREA_M2 * THROUGHPUT[instrument.upper()]
                        * fractional_bandwidth(element))
    return 1.0 / electrons_per_jy


def ab_magnitude(flux_jy):
    """AB magnitude of a flux density in Jy (``-2.5 log10(f / 3631 Jy)``)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return -2.5 * np.log10(np.asarray(flux_jy, float) / AB_ZERO_POINT_JY)


# Vega's flux density (Jy) at effective wavelengths (um): Johnson-Cousins V, R, I (Bessell,
# Castelli & Plez 1998), 2MASS J, H, Ks (Cohen, Wheaton & Megeath 2003), Spitzer IRAC
# (Reach et al. 2005), WISE W3, W4 (Jarrett et al. 2011) and MIPS 24 um (Engelbracht et
# al. 2007).
VEGA_ZERO_POINTS_JY: tuple[tuple[float, float], ...] = (
    (0.545, 3636.0), (0.641, 3064.0), (0.798, 2416.0), (1.235, 1594.0), (1.662, 1024.0), (2.159, 666.7),
    (3.550, 280.9), (4.493, 179.7), (5.731, 115.0), (7.872, 64.13), (11.56, 31.67), (22.08, 8.363),
    (23.68, 7.17),
)


def vega_flux_jy(wavelength_um: float) -> float:
    """Vega's flux density (Jy) at ``wavelength_um``: log-log interpolation in
    :data:`VEGA_ZERO_POINTS_JY`, extended past either end along the end segment."""
    lam = np.log([w for w, _ in VEGA_ZERO_POINTS_JY])
    flux = np.log([f for _, f in VEGA_ZERO_POINTS_JY])
    x = math.log(wavelength_um)
    i = int(np.clip(np.searchsorted(lam, x) - 1, 0, len(lam) - 2))
    slope = (flux[i + 1] - flux[i]) / (lam[i + 1] - lam[i])
    return float(math.exp(flux[i] + slope * (x - lam[i])))


def vega_ab_offset(instrument: str, filter_: str, pupil: str | None = None) -> float:
    """AB - Vega magnitude of the filter: the AB magnitude of Vega's flux density at the
    pivot wavelength (about 1.7 at NIRCam F200W, 4.3 at MIRI F770W)."""
    return float(ab_magnitude(vega_flux_jy(pivot_wavelength(instrument, filter_, pupil))))


def default_sky_level(instrument: str, wavelength_um: float) -> float:
    """Default flat background, photo-electrons per second per pixel (before the flat).

    Near-IR: 0.2 e-/s below 2.4 um, 1.0 e-/s above (zodiacal light, NIRCam-like pixels).
    MIRI: ``20 * (lambda / 5.6 um)**3`` e-/s (thermal background rising with wavelength:
    about 50 e-/s at F770W and 1000 e-/s at F2100W).
    """
    if instrument.upper() == "MIRI":
        return 20.0 * (wavelength_um / 5.6) ** 3
    return 0.2 if wavelength_um < NIRCAM_SW_MAX_UM else 1.0
