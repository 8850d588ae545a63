"""An MRS channel's cube and its spectrum: the cube built from the pixels of one or more
exposures (:func:`channel_cube`, the 3-D drizzle of :mod:`.cube` on the footprints of
:mod:`.ifu`), its spaxel size, wavelength step and range from the CUBEPAR reference
(:func:`cubepar_row`) unless the parameters say otherwise, and the spectrum extracted from
it (:func:`cube_spectrum`), as calwebb_spec2 does for one exposure and calwebb_spec3 for
the dithers of an observation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from shared.datamodels.dqflags import PIXEL
from shared.spectra.cube import CubeGrid, CubeResult, build_cube, cube_grid
from shared.spectra.extract import SPECTABLE_DTYPE
from shared.spectra.ifu import SkyFootprints

__all__ = ["DIFFRACTION_FWHM_PER_UM", "CubeBuildParams", "ExposurePixels", "IfuCube", "channel_cube",
           "cube_spectrum", "cubepar_row"]

_DO_NOT_USE = np.uint32(PIXEL["DO_NOT_USE"])
_ARCSEC_PER_RAD = 206264.80624709636
# the telescope's diffraction: FWHM of a 6.5 m aperture's PSF, 1.025 lambda / D, arcsec per um
DIFFRACTION_FWHM_PER_UM = 1.025e-6 / 6.5 * _ARCSEC_PER_RAD


class CubeBuildParams(BaseModel):
    """Parameters of cube_build."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    scalexy: float = Field(0.0, ge=0.0, description="Spaxel size, arcsec; 0 for the CUBEPAR's of the channel and band.")
    scalew: float = Field(0.0, ge=0.0, description="Wavelength step, um; 0 for the CUBEPAR's of the channel and band.")


@dataclass(frozen=True)
class IfuCube:
    """One channel's cube: its channel, band, grid and arrays."""

    channel: int
    band: str
    grid: CubeGrid
    result: CubeResult


@dataclass(frozen=True)
class ExposurePixels:
    """One exposure's pixels of a channel: their footprints on the sky and their surface
    brightness (MJy/sr), variance and whether they may be used (not DO_NOT_USE)."""

    footprints: SkyFootprints
    flux: np.ndarray
    var: np.ndarray
    valid: np.ndarray

    @classmethod
    def of(cls, footprints: SkyFootprints, sci: np.ndarray, err: np.ndarray, dq: np.ndarray) -> ExposurePixels:
        """The exposure's (``sci``, ``err``, ``dq`` full-frame arrays) at the footprints' pixels."""
        y, x = footprints.pixels.y, footprints.pixels.x
        return cls(footprints, sci[y, x].astype(np.float64), err[y, x].astype(np.float64) ** 2,
                   (dq[y, x] & _DO_NOT_USE) == 0)


def channel_cube(exposures: Sequence[ExposurePixels], channel: int, band: str, row: dict[str, float],
                 params: CubeBuildParams) -> IfuCube:
    """The cube of ``channel`` and ``band`` from the pixels of ``exposures``: sky-aligned,
    spanning their footprints, the spaxel size and wavelength step of the parameters or,
    when they are 0, of the CUBEPAR ``row``, over its wavelength range."""
    ra = np.concatenate([e.footprints.ra for e in exposures])
    dec = np.concatenate([e.footprints.dec for e in exposures])
    lo = np.concatenate([e.footprints.pixels.wl_lo for e in exposures])
    hi = np.concatenate([e.footprints.pixels.wl_hi for e in exposures])
    flux = np.concatenate([e.flux for e in exposures])
    var = np.concatenate([e.var for e in exposures])
    valid = np.concatenate([e.valid for e in exposures])
    grid = cube_grid(ra, dec, row["WAVEMIN"], row["WAVEMAX"], params.scalexy or row["SPAXELSIZE"],
                     params.scalew or row["SPECTRALSTEP"])
    return IfuCube(channel, band, grid, build_cube(ra, dec, lo, hi, flux, var, grid, valid=valid))


def cubepar_row(table: np.ndarray, channel: int, band: str) -> dict[str, float] | None:
    """The CUBEPAR row of ``channel`` and ``band`` (SPAXELSIZE, SPECTRALSTEP, WAVEMIN, WAVEMAX),
    or None."""
    names = {n.upper(): n for n in table.dtype.names or ()}
    for row in table:
        def text(key: str, row=row) -> str:
            value = row[names[key]]
            return (value.decode() if isinstance(value, bytes) else str(value)).strip().upper()

        if text("CHANNEL") == str(channel) and text("BAND") == band.upper():
            return {k: float(row[names[k]]) for k in ("SPAXELSIZE", "SPECTRALSTEP", "WAVEMIN", "WAVEMAX")}
    return None


def cube_spectrum(cube: IfuCube, source_type: str, target: tuple[float, float] | None, rscale: float,
                  annulus: tuple[float, float] | None = (1.5, 2.5)) -> tuple[np.ndarray, dict[str, Any]]:
    """The spectrum of a cube (a ``spectable`` row per wavelength) and where it was taken.

    POINT with a ``target`` (RA, Dec degrees): the spaxels whose centre lies within
    ``rscale`` diffraction FWHMs of it at each wavelength, less the background: the
    sigma-clipped (3 sigma) mean surface brightness of the spaxels between ``annulus``
    times that radius (BACKGROUND; a plane with fewer than 5 such spaxels is not
    background-subtracted and is flagged DO_NOT_USE); otherwise every spaxel with data, no
    background. FLUX (Jy) is the sum of surface brightness times the spaxel's solid angle;
    SURF_BRIGHT the mean (MJy/sr); FLUX_ERROR and SB_ERROR from the cube's ERR, the
    background's error included (the variance columns by kind are not carried through the
    cube and are NaN)."""
    from astropy.stats import sigma_clip

    grid, r = cube.grid, cube.result
    sr = (grid.spaxel / _ARCSEC_PER_RAD) ** 2
    wl = grid.wavelengths
    good = np.isfinite(r.sci) & (r.weight > 0)
    point = source_type == "POINT" and target is not None
    if point:
        x0, y0 = (float(np.asarray(v).ravel()[0]) for v in grid.sky_to_cube(target[0], target[1]))
        yy, xx = np.mgrid[:grid.ny, :grid.nx]
        dist = np.hypot(xx - x0, yy - y0) * grid.spaxel  # arcsec
        radius = rscale * DIFFRACTION_FWHM_PER_UM * wl  # arcsec per plane
        use = good & (dist[None] <= radius[:, None, None])
    else:
        x0 = y0 = math.nan
        use = good
    n = use.sum(axis=(1, 2))
    sci = np.where(use, r.sci, 0.0)
    var = np.where(use, r.var, 0.0)
    total = sci.sum(axis=(1, 2), dtype=np.float64)
    total_var = var.sum(axis=(1, 2), dtype=np.float64)
    bkg = np.zeros(wl.size)
    bkg_var = np.zeros(wl.size)
    no_bkg = np.zeros(wl.size, bool)
    if point and annulus is not None:
        inner, outer = annulus
        ring = good & (dist[None] >= inner * radius[:, None, None]) & (dist[None] <= outer * radius[:, None, None])
        values = np.ma.masked_array(r.sci.reshape(wl.size, -1), mask=~ring.reshape(wl.size, -1))
        clipped = sigma_clip(values, sigma=3.0, axis=1, masked=True)
        kept = (~np.ma.getmaskarray(clipped)).sum(axis=1)
        no_bkg = kept < 5
        bkg = np.where(no_bkg, 0.0, np.ma.filled(clipped.mean(axis=1), 0.0))
        ring_var = np.where(~np.ma.getmaskarray(clipped), r.var.reshape(wl.size, -1), 0.0).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            bkg_var = np.where(no_bkg, 0.0, ring_var / np.maximum(kept, 1) ** 2)
        total = total - n * bkg
        total_var = total_var + n**2 * bkg_var
    table = np.zeros(wl.size, SPECTABLE_DTYPE)
    table["WAVELENGTH"] = wl
    with np.errstate(invalid="ignore", divide="ignore"):
        table["FLUX"] = np.where(n > 0, total * sr * 1e6, np.nan)
        table["FLUX_ERROR"] = np.where(n > 0, np.sqrt(total_var) * sr * 1e6, np.nan)
        table["SURF_BRIGHT"] = np.where(n > 0, total / n, np.nan)
        table["SB_ERROR"] = np.where(n > 0, np.sqrt(total_var) / n, np.nan)
    for name in ("FLUX_VAR_POISSON", "FLUX_VAR_RNOISE", "FLUX_VAR_FLAT", "SB_VAR_POISSON", "SB_VAR_RNOISE",
                 "SB_VAR_FLAT", "BKGD_VAR_POISSON", "BKGD_VAR_RNOISE", "BKGD_VAR_FLAT"):
        table[name] = np.nan
    table["BACKGROUND"] = bkg
    table["BKGD_ERROR"] = np.sqrt(bkg_var)
    table["DQ"] = np.where((n > 0) & ~no_bkg, 0, _DO_NOT_USE)
    table["NPIXELS"] = n
    where = {"SRCTYPE": source_type, "SRCXPOS": None if math.isnan(x0) else x0,
             "SRCYPOS": None if math.isnan(y0) else y0}
    return table, where
