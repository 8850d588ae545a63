"""Scoring a Level-3 mosaic's source catalog against the simulator's truth stars, for the
imaging accuracy tests and the public-pipeline comparison (the definitions are in
tests/test_imaging_accuracy.py's docstring): which truth stars are clean (unsaturated,
away from the coverage edge, unblended), their S/N from the mosaic's own ERR, and the
matched catalog source's position offset and flux ratio."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.table import QTable, Table
from astropy.wcs import WCS, FITSFixedWarning
from photutils.aperture import CircularAperture, aperture_photometry
from scipy import ndimage
from scipy.spatial import cKDTree

__all__ = ["Field", "score_catalog", "truth_stars"]

EDGE_PX = 3.0
BLEND_RADIUS_PX = 4.0
BLEND_FLUX_RATIO = 0.1
MATCH_RADIUS_PX = 1.0


@dataclass(frozen=True)
class Field:
    """Truth stars on a Level-3 mosaic, with what the criteria need (arrays per star)."""

    stars: Table
    snr: np.ndarray
    clean: np.ndarray  # unsaturated, >= EDGE_PX from any pixel without data, unblended
    literal: np.ndarray  # the brighter-neighbour-within-3-px exclusion instead of blends
    well_covered: np.ndarray  # clean and inside every exposure
    matched: np.ndarray
    offset_px: np.ndarray  # (n, 2) catalog - truth, output pixels (east, north)
    flux_ratio: np.ndarray  # aper_total_flux / flux_jy of the matched source

    def position_rms(self, min_snr: float, base: np.ndarray | None = None) -> tuple[float, int]:
        """rms of the 2-D offset (output pixels) of matched stars above ``min_snr``."""
        sel = (self.clean if base is None else base) & self.matched & (self.snr > min_snr)
        return float(np.sqrt(np.mean(np.sum(self.offset_px[sel] ** 2, axis=1)))), int(sel.sum())

    def flux_error(self, min_snr: float) -> tuple[float, float, int]:
        """(median |flux ratio - 1|, median bias) of clean matched stars above ``min_snr``."""
        sel = self.clean & self.matched & (self.snr > min_snr)
        return float(np.median(np.abs(self.flux_ratio[sel] - 1))), float(np.median(self.flux_ratio[sel] - 1)), \
            int(sel.sum())

    def completeness(self, min_snr: float, base: np.ndarray | None = None) -> tuple[float, int]:
        sel = (self.well_covered if base is None else base) & (self.snr > min_snr)
        return float(self.matched[sel].mean()), int(sel.sum())


def truth_stars(paths: list[Path]) -> Table:
    """The stars of several exposures' ``truth_stars.ecsv``, one row per star: ``id``,
    ``ra``, ``dec``, ``flux`` (e-/s), ``flux_jy`` and ``saturated`` (in any exposure)."""
    from astropy.table import vstack

    tables = [Table.read(p, format="ascii.ecsv") for p in paths]
    stars = vstack([t["id", "ra", "dec", "flux", "flux_jy", "saturated"] for t in tables], metadata_conflicts="silent")
    ids, first = np.unique(np.asarray(stars["id"]), return_index=True)
    out = stars[first]
    saturated = dict.fromkeys(ids, False)
    for i, sat in zip(np.asarray(stars["id"]), np.asarray(stars["saturated"], bool), strict=True):
        saturated[i] |= bool(sat)
    out["saturated"] = [saturated[i] for i in np.asarray(out["id"])]
    return out


def _neighbours(x: np.ndarray, y: np.ndarray, flux: np.ndarray, radius: float, ratio: float,
                brighter_only: bool) -> np.ndarray:
    """True where another star within ``radius`` has >= ``ratio`` x the flux (only
    brighter ones with ``brighter_only``)."""
    out = np.zeros(len(x), bool)
    for i, j in cKDTree(np.transpose([x, y])).query_pairs(radius):
        for a, b in ((i, j), (j, i)):
            if flux[b] >= ratio * flux[a] and (not brighter_only or flux[b] > flux[a]):
                out[a] = True
    return out


def _contributors(con: np.ndarray, yi: np.ndarray, xi: np.ndarray) -> np.ndarray:
    """Number of inputs set in the CON bit planes at (yi, xi)."""
    bits = con[:, yi, xi].astype(np.uint32)  # (planes, n)
    return sum(((bits >> k) & 1).sum(axis=0) for k in range(32))


def _wcs(header: fits.Header) -> WCS:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        return WCS(header)


def score_catalog(i2d: Path, cat: Path, stars: Table) -> Field:
    """Score the catalog ``cat`` of the mosaic ``i2d`` against ``stars`` (truth: ra, dec,
    flux_jy, saturated; one row per star)."""
    with fits.open(i2d) as hdul:
        sci, err, wht, con = (hdul[e].data for e in ("SCI", "ERR", "WHT", "CON"))
        header, ndriz = hdul["SCI"].header, int(hdul[0].header["NDRIZ"])
    if con.ndim == 2:
        con = con[None]
    wcs, pixar_sr = _wcs(header), float(header["PIXAR_SR"])
    scale = float(np.sqrt(header["PIXAR_A2"]))  # arcsec per output pixel
    catalog = QTable.read(cat, format="ascii.ecsv")
    aperture = catalog.meta["aperture_params"]
    r70, apcorr = aperture["aperture_radii"][-1], aperture["aperture_corrections"][-1]

    flux = np.asarray(stars["flux_jy"], float)
    x, y = wcs.world_to_pixel_values(np.asarray(stars["ra"]), np.asarray(stars["dec"]))
    ny, nx = sci.shape
    inside = (x > -0.5) & (x < nx - 0.5) & (y > -0.5) & (y < ny - 0.5)
    xi, yi = np.clip(np.round(x).astype(int), 0, nx - 1), np.clip(np.round(y).astype(int), 0, ny - 1)
    data = np.isfinite(sci) & (wht > 0)
    edge = ndimage.distance_transform_edt(np.pad(data, 1))[1:-1, 1:-1]  # off the image counts as no data
    far_from_edge = inside & (edge[yi, xi] >= EDGE_PX)

    to_jy = 1e6 * pixar_sr
    var_jy = np.where(data, (err * to_jy) ** 2, 0.0)
    noise = np.sqrt(np.asarray(aperture_photometry(var_jy, CircularAperture(np.transpose([x, y]), r70),
                                                   method="exact")["aperture_sum"], float)) * apcorr
    with np.errstate(divide="ignore"):
        snr = np.where(inside & (noise > 0), flux / noise, 0.0)

    saturated = np.asarray(stars["saturated"], bool)
    blended = _neighbours(x, y, flux, BLEND_RADIUS_PX, BLEND_FLUX_RATIO, brighter_only=False)
    brighter = _neighbours(x, y, flux, 3.0, 1.0, brighter_only=True)
    clean = far_from_edge & ~saturated & ~blended
    literal = far_from_edge & ~saturated & ~brighter
    well_covered = clean & (_contributors(con, yi, xi) == ndriz)

    truth = SkyCoord(np.asarray(stars["ra"]), np.asarray(stars["dec"]), unit="deg")
    found = catalog["sky_centroid"]
    idx, sep, _ = truth.match_to_catalog_sky(found)
    matched = sep.arcsec / scale < MATCH_RADIUS_PX
    east, north = truth.spherical_offsets_to(found[idx])
    offset = np.transpose([east.arcsec, north.arcsec]) / scale
    ratio = np.asarray(catalog["aper_total_flux"].to_value("Jy"), float)[idx] / flux
    return Field(stars, snr, clean, literal, well_covered, matched, offset, ratio)
