"""tso_photometry: aperture photometry of the target in every integration of an imaging
time series.

The aperture is placed at the target (the pipeline gives its pixel position from
TARG_RA/TARG_DEC through the WCS). With ``centroid_source`` the source is centroided in
every integration: the median of the pixels beyond ``radius_inner`` in a
``search_box_width`` box is subtracted, a centre of mass in that box gives a first
position, a centre of mass in a ``fit_box_width`` box around it the final one; the median
of the integrations' centroids (or each integration's own, with ``moving_centroid``) is
the aperture centre. Photometry: the sum in a circle of ``radius`` and, for the local
background, the mean in an annulus ``radius_inner``..``radius_outer`` (pixels; exact pixel
overlap), as the public step; by default 3, 4 and 5 pixels, and behind the WLP8 weak lens,
whose defocused star (FWHM 0.34", 11 short-wave pixels) they would cut to its core, 16, 20
and 28 (the star's light to 0.3 %, within a 64-row window: :meth:`TsoPhotometryParams.for_pupil`).
Pixels flagged by outlier detection (NaN) are, with
``fill_flagged``, replaced by that pixel's rolling median over ``fill_window``
integrations, so a cosmic ray does not dig a hole in the light curve (the public step
leaves them out of the sums). For the SUB64P subarray behind the WLP8 weak lens the whole
subarray is summed with no background subtraction, as in the public step.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import astropy.units as u
import numpy as np
from astropy.table import QTable
from photutils.aperture import ApertureStats, CircularAnnulus, CircularAperture
from pydantic import BaseModel, ConfigDict, Field

from services.stage3.steps.outlier_detection import replace_flagged

__all__ = ["TsoPhotometry", "TsoPhotometryParams", "phot_table", "tso_centroids", "tso_photometry"]


class TsoPhotometryParams(BaseModel):
    """Parameters of tso_photometry (public defaults, plus ``fill_flagged``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    radius: float | None = Field(None, gt=0, description="Aperture radius, pixels (default 3; behind WLP8 16).")
    radius_inner: float | None = Field(None, gt=0, description=(
        "Inner radius of the background annulus, pixels (default 4; behind WLP8 20)."))
    radius_outer: float | None = Field(None, gt=0, description=(
        "Outer radius of the background annulus, pixels (default 5; behind WLP8 28)."))
    centroid_source: bool = Field(True, description="Centroid the source before the photometry.")
    search_box_width: int = Field(41, ge=3, description="Box for the first centroid, pixels (odd).")
    fit_box_width: int = Field(11, ge=3, description="Box for the final centroid, pixels (odd).")
    moving_centroid: bool = Field(False, description="Use each integration's centroid instead of their median.")
    fill_flagged: bool = Field(True, description="Replace flagged pixels by their rolling median over time.")
    fill_window: int = Field(25, ge=1, description="Integrations in that rolling median.")


    def for_pupil(self, pupil: str | None) -> TsoPhotometryParams:
        """These parameters with the radii not given filled in for the pupil element: the
        public 3, 4, 5 pixels, or behind the WLP8 weak lens :data:`WEAK_LENS_RADII`."""
        radii = WEAK_LENS_RADII.get(str(pupil or "").upper(), DEFAULT_RADII)
        given = (self.radius, self.radius_inner, self.radius_outer)
        return self.model_copy(update=dict(zip(("radius", "radius_inner", "radius_outer"),
                                               (g if g is not None else d for g, d in zip(given, radii, strict=True)),
                                               strict=True)))


#: Aperture radius and background annulus (pixels) by default, and behind a weak lens.
DEFAULT_RADII = (3.0, 4.0, 5.0)
WEAK_LENS_RADII = {"WLP8": (16.0, 20.0, 28.0)}


@dataclass(frozen=True)
class TsoPhotometry:
    """Per integration, shape (nints,), in the data unit: the aperture and annulus sums
    and errors, the annulus mean, the background in the aperture and the net sum; the
    aperture centre (0-based pixels); centroids (or None when not centroided); and how
    many flagged pixels were filled."""

    aperture_sum: np.ndarray
    aperture_sum_err: np.ndarray
    annulus_sum: np.ndarray
    annulus_sum_err: np.ndarray
    annulus_mean: np.ndarray
    annulus_mean_err: np.ndarray
    aperture_bkg: np.ndarray
    aperture_bkg_err: np.ndarray
    net_aperture_sum: np.ndarray
    net_aperture_sum_err: np.ndarray
    aperture_x: np.ndarray
    aperture_y: np.ndarray
    centroid_x: np.ndarray | None
    centroid_y: np.ndarray | None
    n_filled: int


def _odd(n: int) -> int:
    return n if n % 2 else n - 1


def _com(image: np.ndarray, x: float, y: float, box: int) -> tuple[float, float]:
    """Centre of mass of the positive pixels in a ``box`` around (x, y); NaN when empty."""
    half = box // 2
    ny, nx = image.shape
    xc, yc = int(round(x)), int(round(y))
    x0, x1, y0, y1 = max(xc - half, 0), min(xc + half + 1, nx), max(yc - half, 0), min(yc + half + 1, ny)
    if x0 >= x1 or y0 >= y1:
        return float("nan"), float("nan")
    cut = np.nan_to_num(image[y0:y1, x0:x1])
    cut = np.where(cut > 0, cut, 0.0)
    total = cut.sum()
    if total <= 0:
        return float("nan"), float("nan")
    yy, xx = np.mgrid[y0:y1, x0:x1]
    return float((cut * xx).sum() / total), float((cut * yy).sum() / total)


def tso_centroids(cube: np.ndarray, x0: float, y0: float, *, search_box_width: int = 41, fit_box_width: int = 11,
                  source_radius: float = 4.0) -> tuple[np.ndarray, np.ndarray]:
    """Centroid (0-based pixels) of the source near (x0, y0) in every integration of
    ``cube`` (nints, ny, nx); NaN where it fails or falls off the image."""
    nints, ny, nx = cube.shape
    yy, xx = np.mgrid[0:ny, 0:nx]
    outside = np.hypot(xx - x0, yy - y0) > source_radius
    cx, cy = np.full(nints, np.nan), np.full(nints, np.nan)
    search, fit = _odd(search_box_width), _odd(fit_box_width)
    for i in range(nints):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            bkg = np.nanmedian(cube[i][outside])
        image = cube[i] - (bkg if np.isfinite(bkg) else 0.0)
        x1, y1 = _com(image, x0, y0, search)
        if np.isfinite(x1):
            x1, y1 = _com(image, x1, y1, fit)
        if np.isfinite(x1) and 0 <= x1 < nx and 0 <= y1 < ny:
            cx[i], cy[i] = x1, y1
    return cx, cy


def _fill_flagged(cube: np.ndarray, width: int) -> tuple[np.ndarray, int]:
    bad = ~np.isfinite(cube)
    if not bad.any():
        return cube, 0
    filled, replaced = replace_flagged(cube, bad, width)
    return filled, int(replaced.sum())


def tso_photometry(cube: np.ndarray, err: np.ndarray, x0: float, y0: float,
                   params: TsoPhotometryParams | None = None, *, whole_array: bool = False) -> TsoPhotometry:
    """Photometry of the source near (x0, y0) (0-based pixels) in every integration.

    Parameters
    ----------
    cube, err : ndarray (nints, ny, nx)
        Integrations and their 1-sigma errors, one unit (e.g. Jy per pixel).
    whole_array : bool
        Sum the whole array with no background subtraction (the annulus columns are NaN):
        the public step's rule for the SUB64P subarray behind the WLP8 weak lens, whose
        defocused star fills the subarray.
    """
    p = (params or TsoPhotometryParams()).for_pupil(None)  # radii not given: the defaults
    if cube.ndim != 3 or err.shape != cube.shape:
        raise ValueError(f"tso_photometry needs (nints, ny, nx) data and error, got {cube.shape} and {err.shape}")
    nints = cube.shape[0]
    n_filled = 0
    data = cube.astype(float)
    if p.fill_flagged:
        data, n_filled = _fill_flagged(data, p.fill_window)
    cx = cy = None
    xc, yc = np.full(nints, float(x0)), np.full(nints, float(y0))
    if p.centroid_source:
        cx, cy = tso_centroids(data, x0, y0, search_box_width=p.search_box_width, fit_box_width=p.fit_box_width,
                               source_radius=p.radius_inner)
        if np.isfinite(cx).any():
            if p.moving_centroid:
                xc, yc = np.where(np.isfinite(cx), cx, x0), np.where(np.isfinite(cy), cy, y0)
            else:
                xc, yc = np.full(nints, np.nanmedian(cx)), np.full(nints, np.nanmedian(cy))
    error = np.where(np.isfinite(err), err, 0.0)
    cols = {k: np.full(nints, np.nan) for k in ("ap", "ap_err", "ap_area", "an", "an_err", "an_area")}
    if whole_array:
        total, total_err = np.nansum(data, axis=(1, 2)), np.sqrt(np.sum(error**2, axis=(1, 2)))
        nan = np.full(nints, np.nan)
        return TsoPhotometry(total, total_err, nan, nan, nan, nan, nan, nan, total, total_err, xc, yc, cx, cy,
                             n_filled)
    for i in range(nints):
        aperture = CircularAperture((xc[i], yc[i]), r=p.radius)
        annulus = CircularAnnulus((xc[i], yc[i]), r_in=p.radius_inner, r_out=p.radius_outer)
        mask = ~np.isfinite(data[i])
        a = ApertureStats(data[i], aperture, error=error[i], mask=mask)
        b = ApertureStats(data[i], annulus, error=error[i], mask=mask)
        cols["ap"][i], cols["ap_err"][i], cols["ap_area"][i] = a.sum, a.sum_err, a.sum_aper_area.value
        cols["an"][i], cols["an_err"][i], cols["an_area"][i] = b.sum, b.sum_err, b.sum_aper_area.value
    with np.errstate(invalid="ignore", divide="ignore"):
        mean, mean_err = cols["an"] / cols["an_area"], cols["an_err"] / cols["an_area"]
    bkg, bkg_err = mean * cols["ap_area"], mean_err * cols["ap_area"]
    return TsoPhotometry(
        cols["ap"], cols["ap_err"], cols["an"], cols["an_err"], mean, mean_err, bkg, bkg_err,
        cols["ap"] - bkg, np.hypot(cols["ap_err"], bkg_err), xc, yc, cx, cy, n_filled,
    )


def phot_table(result: TsoPhotometry, *, mjd: np.ndarray, bjd: np.ndarray, ra: np.ndarray, dec: np.ndarray,
               unit: str, meta: dict | None = None) -> QTable:
    """The ``_phot`` table of the public step: MJD, BJD_TDB (integration mid-times), the
    sums in ``unit``, aperture centre (pix) and its ICRS position (deg), centroids."""
    q = u.Unit(unit)
    t = QTable(meta=dict(meta or {}))
    t["MJD"] = np.asarray(mjd, float)
    t["BJD_TDB"] = np.asarray(bjd, float)
    for name in ("aperture_sum", "aperture_sum_err", "annulus_sum", "annulus_sum_err", "annulus_mean",
                 "annulus_mean_err", "aperture_bkg", "aperture_bkg_err", "net_aperture_sum", "net_aperture_sum_err"):
        t[name] = getattr(result, name) * q
    t["aperture_x"] = result.aperture_x * u.pix
    t["aperture_y"] = result.aperture_y * u.pix
    t["aperture_ra_icrs"] = np.asarray(ra, float) * u.deg
    t["aperture_dec_icrs"] = np.asarray(dec, float) * u.deg
    if result.centroid_x is not None:
        t["centroid_x"] = result.centroid_x * u.pix
        t["centroid_y"] = result.centroid_y * u.pix
    return t
