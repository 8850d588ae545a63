"""source_catalog: detect, deblend and measure the sources of a resampled image.

1. Units: SCI and ERR (MJy/sr) times ``1e6 * PIXAR_SR`` (the output pixel's solid angle)
   give Jy per pixel, so every flux column is in Jy.
2. Background: a photutils Background2D mesh of ``bkg_boxsize`` boxes, or one sigma-
   clipped level when a box covers the image (or too few boxes hold data); subtracted
   before measuring. Its rms sets the threshold.
3. Detection: the image filtered with a Gaussian of ``kernel_fwhm``; sources are at least
   ``npixels`` connected pixels above ``snr_threshold`` x rms, deblended (``nlevels``,
   ``contrast``) when ``deblend``. With ``adapt_npixels`` the minimum area is lowered to
   ``pi (0.4 FWHM_f)²`` (at least 4), FWHM_f the FWHM of the PSF seen through the filter,
   so point sources of a ~2-pixel PSF are found down to S/N ~ 10 (the public default of
   25 pixels suits wider PSFs and galaxies), and deblended children need half that area.
   Deblending runs on the image filtered with ``deblend_kernel_fwhm`` (narrower than the
   detection filter, which merges stars a few pixels apart; None: the public behaviour).
4. Centroids: a pixel-integrated Gaussian fitted at every source, ignoring the pixels of
   other segments (falling back to the isophotal barycentre when the fit fails or moves
   by more than 1.5 pixels).
5. Apertures: as the public step, from the APCORR reference when the caller gives them
   (``apertures``, see ``catalog_refs``: the EE 30/50/70 radii, their corrections to the
   total flux, the background annulus); otherwise measured on the image (see ``_psf``:
   the curve of growth of bright isolated stars, or a Gaussian of the measured FWHM) with
   the correction 1/EE, and a note says so.
6. Photometry: circular apertures at those radii minus the local background (sigma-
   clipped median in the annulus, ``aper_bkg_flux`` per pixel); ``aper_total_flux`` is the
   largest aperture's flux times its correction. AB magnitudes are
   ``-2.5 log10(F / 3631 Jy)``; Vega magnitudes are AB minus ``abvega_offset`` (from the
   ABVEGAOFFSET reference; without it 0, so they equal AB, and a note says so).
7. Shapes from the segments (isophotal flux and area, second moments), DAOFIND
   sharpness/roundness, nearest neighbours, and sky coordinates through the WCS.

Columns and their order follow the public ``_cat`` (see docs/stage3.md).
"""

from __future__ import annotations

import inspect
import math
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import astropy.units as u
import numpy as np
from astropy.stats import SigmaClip, sigma_clipped_stats
from astropy.table import QTable
from astropy.wcs import WCS
from photutils.aperture import ApertureStats, CircularAnnulus, CircularAperture, aperture_photometry
from pydantic import BaseModel, ConfigDict, Field
from scipy import ndimage
from scipy.spatial import cKDTree

from services.stage3.steps._centroid import fit_gaussians
from services.stage3.steps._psf import PsfModel, measure_psf
from services.stage3.steps._shape import position_angle, sharpness_roundness
from services.stage3.steps.catalog_refs import ApertureParams

__all__ = ["CatalogResult", "SourceCatalogParams", "make_catalog"]


class SourceCatalogParams(BaseModel):
    """Parameters of source_catalog (public defaults unless noted)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    snr_threshold: float = Field(3.0, gt=0, description="Detection threshold, in units of the background rms.")
    npixels: int = Field(25, ge=1, description="Fewest connected pixels of a source.")
    adapt_npixels: bool = Field(True, description="Lower npixels to the core area of a point source (small PSFs).")
    kernel_fwhm: float = Field(2.0, gt=0, description="FWHM of the detection filter, pixels.")
    deblend: bool = Field(True, description="Deblend overlapping sources.")
    deblend_kernel_fwhm: float | None = Field(
        1.65, gt=0, description="FWHM of the filter the deblending sees, pixels; None: the detection filter (public).")
    nlevels: int = Field(32, ge=1, description="Multi-thresholding levels of the deblending.")
    contrast: float = Field(0.001, ge=0, le=1, description="Flux fraction a deblended source must have.")
    connectivity: int = Field(8, description="Pixel connectivity of a segment (4 or 8).")
    bkg_boxsize: int = Field(1000, ge=1, description="Background mesh box size, pixels.")
    aperture_ee: tuple[int, int, int] = Field((30, 50, 70), description="Encircled energies (%) of the apertures.")
    ci_star_thresholds: tuple[float, float] = Field((2.0, 1.8), description="CI_50_30 and CI_70_50 limits of a star.")


@dataclass(frozen=True)
class CatalogResult:
    """The ``catalog`` (QTable, possibly empty), the ``segm`` image (int32 labels, 0 =
    background), the ``apertures`` used, the ``psf`` measured on the image when they came
    from it (None when APCORR gave them), and ``notes``."""

    catalog: QTable
    segm: np.ndarray
    apertures: ApertureParams | None
    psf: PsfModel | None
    notes: tuple[str, ...]


def _attr(obj, *names):
    """The first attribute that exists (photutils renamed several between versions)."""
    for name in names:
        if hasattr(obj, name):
            return getattr(obj, name)
    raise AttributeError(f"none of {names} on {type(obj).__name__}")


def _deblend(convolved: np.ndarray, segm, npixels: int, p: SourceCatalogParams):
    """photutils deblending; its level keyword was renamed (nlevels -> n_levels)."""
    from photutils.segmentation import deblend_sources

    levels = "n_levels" if "n_levels" in inspect.signature(deblend_sources).parameters else "nlevels"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "the deblending threshold ... " chatter on faint blends
        return deblend_sources(convolved, segm, npixels, contrast=p.contrast, connectivity=p.connectivity,
                               progress_bar=False, **{levels: p.nlevels})


def _background(data: np.ndarray, mask: np.ndarray, boxsize: int) -> tuple[np.ndarray | float, np.ndarray | float]:
    ny, nx = data.shape
    if boxsize < min(ny, nx):
        try:
            from photutils.background import Background2D

            bkg = Background2D(data, boxsize, mask=mask, filter_size=(3, 3), sigma_clip=SigmaClip(sigma=3.0))
            _ = bkg.background_mesh, bkg.background_rms_mesh  # the boxes' statistics, once, before the threads
            # Each mesh's spline to the full image (scipy's zoom, most of the step's
            # background time on a mosaic) runs without the GIL: the two run at once.
            with ThreadPoolExecutor(2, thread_name_prefix="background") as pool:
                level, rms = pool.submit(lambda: bkg.background), pool.submit(lambda: bkg.background_rms)
                return level.result(), rms.result()
        except ValueError:
            pass  # too few boxes with data (a sparse mosaic): one level for the image
    _, median, std = sigma_clipped_stats(data[~mask], sigma=3.0, maxiters=10)
    return float(median), float(std)


def _abmag(flux: np.ndarray, flux_err: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with np.errstate(divide="ignore", invalid="ignore"):
        mag = -2.5 * np.log10(flux) + 8.9
        err = 2.5 * np.log10(1.0 + flux_err / flux)
    bad = ~(flux > 0)
    return np.where(bad, np.nan, mag), np.where(bad, np.nan, err)


def _aperture_photometry(data, error, mask, x, y, ap: ApertureParams):
    """(flux, flux_err) per aperture radius (Jy), and the local background per pixel
    with its error, all background-subtracted."""
    pos = np.transpose([x, y])
    annulus = CircularAnnulus(pos, ap.bkg_inner, ap.bkg_outer)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stats = ApertureStats(data, annulus, mask=mask, sigma_clip=SigmaClip(sigma=3.0), sum_method="center")
        n = np.asarray(stats.sum_aper_area.value, float)
        bkg = np.nan_to_num(np.asarray(stats.median, float))
        bkg_err = np.sqrt(np.pi / (2.0 * np.maximum(n, 1))) * np.nan_to_num(np.asarray(stats.std, float))
    table = aperture_photometry(data, [CircularAperture(pos, r) for r in ap.radii], error=error, mask=mask,
                                method="exact")
    fluxes = []
    for k, r in enumerate(ap.radii):
        flux = np.asarray(table[f"aperture_sum_{k}"], float) - bkg * math.pi * r * r
        fluxes.append((flux, np.asarray(table[f"aperture_sum_err_{k}"], float)))
    return fluxes, bkg, bkg_err


def _psf_fwhm_guess(data: np.ndarray, error: np.ndarray, mask: np.ndarray, rms: float, fallback: float) -> float:
    """FWHM of the brightest compact peaks (Gaussian fits), before detection."""
    smooth = ndimage.gaussian_filter(np.where(mask, 0.0, data), 1.0)
    peaks = (smooth == ndimage.maximum_filter(smooth, size=5)) & (smooth > 20 * rms / (2 * math.sqrt(math.pi)))
    ys, xs = np.nonzero(peaks & ~mask)
    order = np.argsort(-smooth[ys, xs])[:100]
    if order.size < 3:
        return fallback
    fit = fit_gaussians(data, xs[order].astype(float), ys[order].astype(float), fwhm=fallback, error=error, mask=mask)
    return float(np.median(fit.fwhm[fit.ok])) if fit.ok.sum() >= 3 else fallback


def make_catalog(sci: np.ndarray, err: np.ndarray, wht: np.ndarray | None, *, pixar_sr: float, wcs: WCS,
                 params: SourceCatalogParams | None = None, apertures: ApertureParams | None = None,
                 abvega_offset: float | None = None) -> CatalogResult:
    """The source catalog of a resampled image (see the module docstring).

    Parameters
    ----------
    sci, err : ndarray (ny, nx)
        Surface brightness and its error, MJy/sr.
    wht : ndarray (ny, nx), optional
        Drizzle weight; pixels with zero weight (or non-finite SCI/ERR) have no data.
    pixar_sr : float
        Solid angle of one pixel of this image, sr.
    wcs : WCS
        The image's WCS (0-based pixels), for the sky columns.
    params : SourceCatalogParams, optional
    apertures : ApertureParams, optional
        From the APCORR reference (radii in this image's pixels), for ``params.aperture_ee``;
        None: measured on the image.
    abvega_offset : float, optional
        m_AB - m_Vega from the ABVEGAOFFSET reference; None: 0 (Vega = AB), with a note.
    """
    # photutils.segmentation (and scipy.signal with it) is imported here, not with the
    # module: a stage-3 worker starts ~0.5 s sooner, and only image3 catalogs need it.
    from photutils.segmentation import SourceCatalog, detect_sources, make_2dgaussian_kernel
    from photutils.utils.exceptions import NoDetectionsWarning

    p = params or SourceCatalogParams()
    notes: list[str] = []
    if apertures is not None and tuple(apertures.ee) != tuple(p.aperture_ee):
        raise ValueError(f"apertures for EE {apertures.ee} given, the catalog asks for {p.aperture_ee}")
    if abvega_offset is None:
        notes.append("no AB - Vega offset: Vega magnitudes equal AB")
    to_jy = 1e6 * pixar_sr
    mask = ~np.isfinite(sci) | ~np.isfinite(err)
    if wht is not None:
        mask |= ~(wht > 0)
    data = np.where(mask, 0.0, sci * to_jy)
    error = np.where(mask, 0.0, err * to_jy)
    bkg, rms = _background(data, mask, p.bkg_boxsize)
    data = np.where(mask, 0.0, data - bkg)
    rms_scalar = float(np.median(rms)) if np.ndim(rms) else float(rms)

    fwhm_guess = _psf_fwhm_guess(data, np.where(mask, np.inf, error), mask, rms_scalar, p.kernel_fwhm)
    npixels = p.npixels
    if p.adapt_npixels:
        fwhm_filtered = math.hypot(fwhm_guess, p.kernel_fwhm)
        npixels = min(p.npixels, max(4, int(math.pi * (0.4 * fwhm_filtered) ** 2)))
        if npixels != p.npixels:
            notes.append(f"npixels lowered to {npixels} for a PSF FWHM of {fwhm_guess:.2f} px")
    size = 2 * int(max(2.0, 1.5 * p.kernel_fwhm)) + 1
    kernel = make_2dgaussian_kernel(p.kernel_fwhm, size=size)
    convolved = ndimage.convolve(data, np.asarray(kernel.array), mode="constant", cval=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NoDetectionsWarning)  # reported in the notes instead
        segm = detect_sources(convolved, p.snr_threshold * rms, npixels, connectivity=p.connectivity, mask=mask)
    if segm is None:
        return CatalogResult(QTable(), np.zeros(sci.shape, np.int32), apertures, None, (*notes, "no source detected"))
    if p.deblend:
        deblend_data = convolved
        if p.deblend_kernel_fwhm is not None:
            deblend_data = ndimage.gaussian_filter(data, p.deblend_kernel_fwhm / 2.3548, mode="constant")
        segm = _deblend(deblend_data, segm, max(2, npixels // 2) if p.adapt_npixels else npixels, p)
    cat = SourceCatalog(data, segm, convolved_data=convolved, error=error, mask=mask, wcs=wcs)
    table, apertures, psf = _measure(cat, data, error, mask, wcs, p, fwhm_guess, notes, np.asarray(segm.data),
                                     apertures, abvega_offset or 0.0)
    return CatalogResult(table, np.asarray(segm.data, np.int32), apertures, psf, tuple(notes))


def _measured_apertures(psf: PsfModel, ee: tuple[int, ...]) -> ApertureParams:
    """Apertures from the PSF measured on the image: the EE radii and corrections 1/EE."""
    return ApertureParams(tuple(ee), tuple(psf.radii), tuple(100.0 / e for e in ee), psf.bkg_inner, psf.bkg_outer,
                          f"measured on the image: {psf.method}")


def _measure(cat, data, error, mask, wcs, p: SourceCatalogParams, fwhm_guess: float, notes: list[str],
             segm_data: np.ndarray, apertures: ApertureParams | None, abvega: float):
    label = np.asarray(cat.label)
    bx = np.asarray(_attr(cat, "x_centroid", "xcentroid"), float)
    by = np.asarray(_attr(cat, "y_centroid", "ycentroid"), float)
    iso_flux = np.asarray(cat.segment_flux, float)
    iso_err = np.asarray(cat.segment_flux_err, float)
    fit = fit_gaussians(data, np.nan_to_num(bx), np.nan_to_num(by), fwhm=fwhm_guess,
                        error=np.where(mask, np.inf, error), mask=mask, segmentation=segm_data, labels=label)
    use_fit = fit.ok & (np.hypot(fit.x - bx, fit.y - by) < 1.5)
    x = np.where(use_fit, fit.x, bx)
    y = np.where(use_fit, fit.y, by)
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = np.where(iso_err > 0, iso_flux / iso_err, 0.0)
    n = len(label)
    if n > 1:
        dist, idx = cKDTree(np.transpose([x, y])).query(np.transpose([x, y]), k=2)
        nn_dist, nn_label = dist[:, 1], label[idx[:, 1]]
    else:
        nn_dist, nn_label = np.full(n, np.nan), np.full(n, -1)
    psf = None
    if apertures is None:
        ee = tuple(e / 100.0 for e in p.aperture_ee)
        psf = measure_psf(data, mask, x, y, snr, nn_dist, fit.fwhm, use_fit, ee=ee, fallback_fwhm=fwhm_guess)
        apertures = _measured_apertures(psf, tuple(p.aperture_ee))
    notes.append(f"apertures ({apertures.source}): EE radii {', '.join(f'{r:.2f}' for r in apertures.radii)} px, "
                 f"correction {apertures.corrections[-1]:.4g}")
    fluxes, bkg, bkg_err = _aperture_photometry(data, error, mask, x, y, apertures)
    correction = apertures.corrections[-1]
    total, total_err = fluxes[-1][0] * correction, fluxes[-1][1] * correction

    t = QTable()
    t["label"] = label.astype(np.int32)
    t["xcentroid"] = x
    t["ycentroid"] = y
    t["sky_centroid"] = wcs.pixel_to_world(x, y)
    t["aper_bkg_flux"] = bkg * u.Jy
    t["aper_bkg_flux_err"] = bkg_err * u.Jy
    names = [f"aper{e}" for e in p.aperture_ee] + ["aper_total"]
    values = [*fluxes, (total, total_err)]
    for name, (f, e) in zip(names, values, strict=True):
        t[f"{name}_flux"] = f * u.Jy
        t[f"{name}_flux_err"] = e * u.Jy
    mags = [_abmag(f, e) for f, e in values]
    for name, (m, me) in zip(names, mags, strict=True):
        t[f"{name}_abmag"], t[f"{name}_abmag_err"] = m, me
    for name, (m, me) in zip(names, mags, strict=True):
        t[f"{name}_vegamag"], t[f"{name}_vegamag_err"] = m - abvega, me
    e1, e2, e3 = p.aperture_ee
    with np.errstate(divide="ignore", invalid="ignore"):
        ci = {f"CI_{e2}_{e1}": fluxes[1][0] / fluxes[0][0], f"CI_{e3}_{e2}": fluxes[2][0] / fluxes[1][0],
              f"CI_{e3}_{e1}": fluxes[2][0] / fluxes[0][0]}
    for name, value in ci.items():
        t[name] = value
    t["is_extended"] = (ci[f"CI_{e2}_{e1}"] > p.ci_star_thresholds[0]) & (ci[f"CI_{e3}_{e2}"] > p.ci_star_thresholds[1])
    sharp, round_ = sharpness_roundness(data, x, y, p.kernel_fwhm)
    t["sharpness"], t["roundness"] = sharp, round_
    t["nn_label"] = np.asarray(nn_label, np.int32)
    t["nn_dist"] = nn_dist * u.pix
    iso_mag, iso_mag_err = _abmag(iso_flux, iso_err)
    t["isophotal_flux"], t["isophotal_flux_err"] = iso_flux * u.Jy, iso_err * u.Jy
    t["isophotal_abmag"], t["isophotal_abmag_err"] = iso_mag, iso_mag_err
    t["isophotal_vegamag"], t["isophotal_vegamag_err"] = iso_mag - abvega, iso_mag_err
    t["isophotal_area"] = u.Quantity(cat.area).value * u.pix**2
    t["semimajor_sigma"] = u.Quantity(_attr(cat, "semimajor_axis", "semimajor_sigma")).value * u.pix
    t["semiminor_sigma"] = u.Quantity(_attr(cat, "semiminor_axis", "semiminor_sigma")).value * u.pix
    t["ellipticity"] = u.Quantity(cat.ellipticity).value
    orientation = u.Quantity(cat.orientation).to_value(u.deg)
    t["orientation"] = orientation * u.deg
    t["sky_orientation"] = position_angle(wcs, x, y, orientation) * u.deg
    for corner in ("ll", "ul", "lr", "ur"):
        t[f"sky_bbox_{corner}"] = getattr(cat, f"sky_bbox_{corner}")
    t.meta.update({  # aperture_params and abvega_offset as the public catalog records them
        "aperture_params": {"aperture_ee": list(apertures.ee), "aperture_radii": [float(r) for r in apertures.radii],
                            "aperture_corrections": [float(c) for c in apertures.corrections],
                            "bkg_aperture_inner_radius": float(apertures.bkg_inner),
                            "bkg_aperture_outer_radius": float(apertures.bkg_outer)},
        "abvega_offset": float(abvega), "aperture_source": apertures.source,
        "psf_fwhm_pix": float(psf.fwhm if psf is not None else fwhm_guess),
    })
    return t, apertures, psf
