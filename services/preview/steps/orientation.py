"""orientation: where North and East point on the image, the pixel scale, a scale bar.

Computed from a celestial WCS (astropy) at the image centre: the pixel displacement of a
small step towards North (+Dec) and towards East (+RA), normalised. Pixel axes are the
array's (x = column, y = row, 0-based), as drawn with ``origin="lower"``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from astropy.wcs import WCS
from astropy.wcs.utils import proj_plane_pixel_scales

__all__ = ["Orientation", "ScaleBar", "scale_bar", "sky_orientation"]

_NICE_ARCSEC = (0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600)


@dataclass(frozen=True)
class Orientation:
    """Unit vectors (dx, dy) in pixel space towards North and East at the image centre,
    and the pixel scale in arcsec (geometric mean of the two axes)."""

    north: tuple[float, float]
    east: tuple[float, float]
    arcsec_per_pixel: float


@dataclass(frozen=True)
class ScaleBar:
    """A bar ``pixels`` long that spans ``arcsec``; ``label`` such as ``5"`` or ``2'``."""

    arcsec: float
    pixels: float
    label: str


def sky_orientation(wcs: WCS | None, shape: tuple[int, int]) -> Orientation | None:
    """North/East directions and pixel scale of ``wcs`` at the centre of an image of
    ``shape`` (ny, nx); None when the WCS is missing, not celestial or degenerate."""
    if wcs is None or not wcs.has_celestial:
        return None
    try:
        cel = wcs.celestial
        ny, nx = shape
        x0, y0 = (nx - 1) / 2.0, (ny - 1) / 2.0
        ra, dec = (float(v) for v in cel.all_pix2world([[x0, y0]], 0)[0])
        scale = proj_plane_pixel_scales(cel)  # deg / pixel per axis
        step = float(np.mean(scale)) * 5.0  # a few pixels, in degrees
        if not (math.isfinite(step) and step > 0 and abs(dec) < 89.9):
            return None
        north_px = cel.all_world2pix([[ra, dec + step]], 0)[0]
        east_px = cel.all_world2pix([[ra + step / math.cos(math.radians(dec)), dec]], 0)[0]
    except Exception:  # any WCS that cannot be evaluated simply gets no compass
        return None
    north = _unit(north_px[0] - x0, north_px[1] - y0)
    east = _unit(east_px[0] - x0, east_px[1] - y0)
    if north is None or east is None:
        return None
    return Orientation(north=north, east=east, arcsec_per_pixel=float(np.sqrt(np.prod(scale))) * 3600.0)


def _unit(dx: float, dy: float) -> tuple[float, float] | None:
    n = math.hypot(dx, dy)
    if not math.isfinite(n) or n == 0:
        return None
    return (float(dx / n), float(dy / n))


def scale_bar(arcsec_per_pixel: float, width_pixels: int, fraction: float = 0.2) -> ScaleBar | None:
    """The longest "nice" length (1, 2, 5, 10, ... arcsec) not longer than ``fraction`` of
    an image ``width_pixels`` wide; None when even the shortest does not fit."""
    if not (arcsec_per_pixel > 0 and width_pixels > 0):
        return None
    limit = fraction * width_pixels * arcsec_per_pixel
    fitting = [a for a in _NICE_ARCSEC if a <= limit]
    if not fitting:
        return None
    arcsec = fitting[-1]
    if arcsec >= 60:
        label = f"{arcsec / 60:g}\u2032"  # prime: arcminutes
    else:
        label = f"{arcsec:g}\u2033"  # double prime: arcseconds
    return ScaleBar(arcsec=float(arcsec), pixels=arcsec / arcsec_per_pixel, label=label)
