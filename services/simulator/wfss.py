"""Wide-field slitless spectroscopy (WFSS): the dispersed scene of a field of sources.

A WFSS exposure (``NIS_WFSS``, ``NRC_WFSS``) sees the same sky as its observation's
direct images (the target's stars, :mod:`.sky`), each star dispersed by the grism
(:data:`.spectrograph.WFSS_GRISMS`, :func:`.spectrograph.at_source`): its order-1
spectrum lies along a trace that starts a fixed offset from its undispersed image (its
wavelengths move with it) and follows a curve of the detector's, so spectra overlap
where sources line up along the dispersion (contamination). Every star whose spectrum can
reach the window is rendered, including stars off the window (the direct image does not
see them; their light on the window is uncatalogued contamination, as on the sky).

Spectra (:func:`wfss_source_spectrum`): a star's catalog flux is the simulator's flux
unit, photo-electrons per second of the imagers for a flat-spectrum (f_nu) source; read
as the direct image's filter's, it is the continuum ``f_nu`` at that filter's pivot
wavelength (``flux x jy_per_electron``), with a power-law slope uniform in [-2, 0] and an
emission line inside the grism's band (peak 1-4 x the continuum, FWHM 0.002 um for
NIRISS, 0.005 um for NIRCam: unresolved), and, half the time, an absorption line (20-50 %
deep, FWHM twice the emission's), drawn from (seed, SKY, star id, :data:`_SPECTRUM_KEY`).
The same star has the same spectrum in every exposure and grism. The grism passes its
blocking filter's band alone (:class:`BandLimited`: the filter's edges taken as sharp), so
a spectrum ends there, its light spread past the ends by the line-spread function only.

The sky: a uniform surface brightness (the grism's default sky spectrum times the
description's scale, as for the other slit modes) seen without a slit: each patch of sky
in the field puts its dispersed spectrum on the detector
(:meth:`.spectrograph.SlitSpectrograph.slitless_sky_electrons`), so the level varies
along the dispersion near the detector's edges, times the pixel area; the WFSSBKG
reference (:mod:`.wfss_refs`) holds the same pattern, normalised.

Truth (:class:`WfssTruth`): the rendered stars (id, RA/Dec, undispersed window pixel,
continuum at the pivot, slope, lines), the sky image and its scale; the spectrum a
perfect extraction of a star recovers is :func:`.spectrograph.observed_spectrum` of
``at_source(grism, x, y)`` (full-frame pixel) and its spectrum through the blocking
filter (:func:`through_blocking_filter`).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

import numpy as np

from shared.instruments import Subarray

from .optics import jy_per_electron, pivot_wavelength
from .seeding import Stream, generator
from .sky import StarList
from .spectrograph import (
    SlitSource,
    SlitSpectrograph,
    SourceSpectrum,
    SpectralLine,
    at_source,
    render_slit,
)

__all__ = ["BandLimited", "WfssTruth", "region_margin", "spectrum_reach", "through_blocking_filter", "wfss_scene",
           "wfss_source_spectrum"]

_SPECTRUM_KEY = 9377  # ("WFSS"): the field's spectra
#: Pixels beyond a spectrum's ends and either side of its trace that its light can reach:
#: 10 sigma of the widest LSF and PSF here (about 1.2 px) and the trace's curve over the span.
_MARGIN = 15.0


def wfss_source_spectrum(flux_e_per_s: float, star_id: int, seed: int, grism: SlitSpectrograph,
                         direct: tuple[str, str, str]) -> SourceSpectrum:
    """The spectrum of a star of the field (module docstring); ``direct`` the direct
    image's (instrument, filter, pupil), whose flat-spectrum photometry reads its flux."""
    if not flux_e_per_s > 0:
        raise ValueError(f"a WFSS source needs a positive catalog flux, got {flux_e_per_s} e-/s (star {star_id})")
    rng = generator(seed, Stream.SKY, int(star_id), _SPECTRUM_KEY)
    low, high = grism.white_light_band
    fwhm = 0.002 if high < 2.5 else 0.005
    slope = float(rng.uniform(-2.0, 0.0))
    inset = 0.1 * (high - low)  # lines away from the band's edges
    lines = [SpectralLine(wavelength=round(float(rng.uniform(low + inset, high - inset)), 4), fwhm=fwhm,
                          strength=round(float(rng.uniform(1.0, 4.0)), 3))]
    if rng.uniform() < 0.5:
        lines.append(SpectralLine(wavelength=round(float(rng.uniform(low + inset, high - inset)), 4), fwhm=2.0 * fwhm,
                                  strength=-round(float(rng.uniform(0.2, 0.5)), 3)))
    instrument, filter_, pupil = direct
    return SourceSpectrum(flux_jy=float(flux_e_per_s) * jy_per_electron(instrument, filter_, pupil), slope=slope,
                          lines=tuple(lines), reference=pivot_wavelength(instrument, filter_, pupil))


@dataclass(frozen=True)
class BandLimited:
    """A spectrum through a filter of band [``low``, ``high``] um with sharp edges: the
    base's f_nu inside, nothing outside; averaged over an interval exactly (the part of it
    inside the band, times that part's share of the interval)."""

    base: SourceSpectrum
    low: float
    high: float

    @property
    def lines(self) -> tuple[SpectralLine, ...]:
        return self.base.lines

    def __call__(self, wavelength: np.ndarray) -> np.ndarray:
        wl = np.asarray(wavelength, np.float64)
        return np.where((wl >= self.low) & (wl <= self.high), self.base(wl), 0.0)

    def average(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        lo, hi = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
        a, b = np.minimum(lo, hi), np.maximum(lo, hi)
        inner_lo, inner_hi = np.clip(a, self.low, self.high), np.clip(b, self.low, self.high)
        share = np.divide(inner_hi - inner_lo, b - a, out=np.zeros_like(a), where=b > a)
        inside = inner_hi > inner_lo
        mean = self.base.average(np.where(inside, inner_lo, a), np.where(inside, inner_hi, b))
        return np.where(inside, mean * share, 0.0)


def through_blocking_filter(spectrum: SourceSpectrum, grism: SlitSpectrograph) -> BandLimited:
    """The part of ``spectrum`` the grism's blocking filter passes (its band)."""
    low, high = grism.white_light_band
    return BandLimited(spectrum, low, high)


def spectrum_reach(grism: SlitSpectrograph) -> tuple[float, float]:
    """(first, last) offset, pixels along the dispersion from a source's undispersed
    image, that its spectrum's light reaches (the span's ends and :data:`_MARGIN`)."""
    return grism.span[0] - grism.s_ref - _MARGIN, grism.span[1] - grism.s_ref + _MARGIN


@dataclass(frozen=True)
class WfssTruth:
    """What a WFSS exposure shows: its grism, the stars rendered (their ids, RA/Dec,
    undispersed 0-based window pixels, spectra), the sky's image (e-/s per pixel, pixel
    area included) and its scale on the grism's default sky."""

    grism: SlitSpectrograph
    stars: StarList
    x: np.ndarray
    y: np.ndarray
    spectra: tuple[SourceSpectrum, ...]
    sky: np.ndarray
    sky_scale: float

    def spectra_json(self) -> list[str]:
        """Each star's spectrum as JSON text (continuum Jy at the reference um, slope, lines)."""
        return [json.dumps({"flux_jy": s.flux_jy, "reference": s.reference, "slope": s.slope,
                            "lines": [[ln.wavelength, ln.fwhm, ln.strength] for ln in s.lines]}) for s in self.spectra]


def wfss_scene(grism: SlitSpectrograph, stars: StarList, sx: np.ndarray, sy: np.ndarray, sub: Subarray,
               sky_scale: float, area: np.ndarray, seed: int, direct: tuple[str, str, str]
               ) -> tuple[np.ndarray, WfssTruth]:
    """The dispersed field on a window: the stars' photo-electrons per second per pixel
    (pixel area included) and the truth (module docstring). ``sx``, ``sy`` the stars'
    undispersed 0-based window pixels; stars whose spectrum cannot reach the window are
    left out."""
    ny, nx = sub.ysize, sub.xsize
    first, last = spectrum_reach(grism)
    s, t = (sx, sy) if grism.dispaxis == 1 else (sy, sx)
    ns, nt = (nx, ny) if grism.dispaxis == 1 else (ny, nx)
    reach = (s + last >= 0) & (s + first <= ns - 1) & (t >= -_MARGIN) & (t <= nt - 1 + _MARGIN)
    keep = np.flatnonzero(reach & (stars.flux > 0))
    window = (sub.xstart - 1, sub.ystart - 1, nx, ny)
    image = np.zeros((ny, nx), np.float64)
    spectra = []
    start = (sub.xstart if grism.dispaxis == 1 else sub.ystart) - 1  # the window's first spectral pixel
    for k in keep:
        spectrum = wfss_source_spectrum(float(stars.flux[k]), int(stars.id[k]), seed, grism, direct)
        spectra.append(spectrum)
        model = at_source(grism, float(sx[k]) + sub.xstart - 1.0, float(sy[k]) + sub.ystart - 1.0)
        # only the part of the spectrum whose light reaches the window is rendered
        span = (max(model.span[0], start - int(_MARGIN)), min(model.span[1], start + ns - 1 + int(_MARGIN)))
        if span[0] > span[1]:
            continue
        image += render_slit(dataclasses.replace(model, span=span),
                             [SlitSource(through_blocking_filter(spectrum, grism))], window).image
    along = np.arange(ns, dtype=np.float64) + ((sub.xstart if grism.dispaxis == 1 else sub.ystart) - 1.0)
    level = grism.slitless_sky_electrons(along, lambda wl: sky_scale * grism.sky(wl)) if sky_scale > 0 else \
        np.zeros(ns)
    sky = np.broadcast_to(level[None, :] if grism.dispaxis == 1 else level[:, None], (ny, nx)) * area
    chosen = StarList(id=stars.id[keep], ra=stars.ra[keep], dec=stars.dec[keep], flux=stars.flux[keep])
    truth = WfssTruth(grism=grism, stars=chosen, x=np.asarray(sx[keep], np.float64), y=np.asarray(sy[keep], np.float64),
                      spectra=tuple(spectra), sky=np.asarray(sky, np.float64), sky_scale=float(sky_scale))
    return image * area, truth


def region_margin(grism: SlitSpectrograph) -> tuple[float, float, float, float]:
    """(left, right, bottom, top) pixels to grow a window by to find every star whose
    spectrum can reach it (undispersed images up to a spectrum's reach beyond its edges
    along the dispersion, :data:`_MARGIN` across it)."""
    first, last = spectrum_reach(grism)
    low, high = max(last, _MARGIN), max(-first, _MARGIN)  # beyond the start, beyond the end
    if grism.dispaxis == 1:
        return low, high, _MARGIN, _MARGIN
    return _MARGIN, _MARGIN, low, high

