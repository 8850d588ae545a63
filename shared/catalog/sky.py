"""The catalog's spatial index: HEALPix (nested scheme) pixel numbers of pointings, and the
pixel ranges that cover a cone, so a cone search reads an index range instead of every row.

Each exposure pointing (``exposure.hpx``) and each observation's target
(``observation.target_hpx``) carries the number of the order-:data:`ORDER` pixel that holds
it (about 0.86 arcmin across). In the nested scheme the order-:data:`ORDER` pixels inside
one pixel of a coarser order ``k`` are the contiguous range ``[p * 4**(ORDER-k),
(p + 1) * 4**(ORDER-k))``, so a cone is covered by the coarse pixels that overlap it
(astropy-healpix finds them), turned into ranges of stored numbers. The ranges hold every
pointing in the cone and some outside it: the exact angular test follows, in the database
(:func:`in_cone`: both in one condition, so a search pages and counts in SQL) or in Python
(:func:`separation`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

__all__ = ["ORDER", "cone_ranges", "in_cone", "in_cone_pixels", "pixel", "pixels", "separation", "separations"]

ORDER = 12  # nside 4096: 201,326,592 pixels of 0.86 arcmin


def _healpix(order: int):
    # imported when used: workers that store no pointing never load it
    from astropy_healpix import HEALPix

    return HEALPix(nside=2**order, order="nested")


def pixels(ra, dec):
    """Order-:data:`ORDER` nested pixel numbers of positions (degrees; arrays of the same shape)."""
    import astropy.units as u
    import numpy as np

    lon = np.asarray(ra, dtype=float) % 360.0
    lat = np.clip(np.asarray(dec, dtype=float), -90.0, 90.0)
    return _healpix(ORDER).lonlat_to_healpix(lon * u.deg, lat * u.deg).astype(np.int64)


def pixel(ra: float | None, dec: float | None) -> int | None:
    """The pixel number of one position (degrees), or None when it has no position."""
    if ra is None or dec is None or not (math.isfinite(ra) and math.isfinite(dec)):
        return None
    return int(pixels([ra], [dec])[0])


def _coarse_order(radius: float) -> int:
    """The order whose pixels are about half the radius across (a cone covers a few tens of them)."""
    size = 58.6  # degrees across a pixel of order 0, about
    return max(0, min(ORDER, int(math.floor(math.log2(size / max(radius, 1e-6)))) + 1))


def cone_ranges(ra: float, dec: float, radius: float) -> list[tuple[int, int]]:
    """Half-open ranges ``[lo, hi)`` of pixel numbers covering the cone (degrees), merged."""
    import astropy.units as u
    import numpy as np

    if radius >= 180.0:
        return [(0, 12 * 4**ORDER)]
    order = _coarse_order(radius)
    found = _healpix(order).cone_search_lonlat((ra % 360.0) * u.deg, max(-90.0, min(90.0, dec)) * u.deg,
                                               radius=radius * u.deg)
    shift = 2 * (ORDER - order)
    ranges: list[tuple[int, int]] = []
    for p in np.unique(np.asarray(found, dtype=np.int64)).tolist():
        lo, hi = p << shift, (p + 1) << shift
        if ranges and ranges[-1][1] == lo:
            ranges[-1] = (ranges[-1][0], hi)
        else:
            ranges.append((lo, hi))
    return ranges


def in_cone_pixels(column, ra: float, dec: float, radius: float):
    """SQL condition: ``column`` (pixel numbers) lies in one of the ranges that cover the cone,
    an index-range prefilter (the exact test: :func:`in_cone`, or :func:`separation` in Python)."""
    from sqlalchemy import and_, or_

    return or_(*(and_(column >= lo, column < hi) for lo, hi in cone_ranges(ra, dec, radius)))


def separation(ra1: float, dec1: float, ra2: float, dec2: float) -> float:
    """Angle between two directions, degrees (haversine: accurate at small angles)."""
    p1, p2 = math.radians(dec1), math.radians(dec2)
    dp, dl = p2 - p1, math.radians(ra2 - ra1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return math.degrees(2 * math.asin(min(1.0, math.sqrt(h))))


def separations(ra: float, dec: float, ras: Sequence[float | None], decs: Sequence[float | None]) -> np.ndarray:
    """:func:`separation` from (ra, dec) to each of the directions (``ras``, ``decs``),
    degrees, at once (NaN where a coordinate is None)."""
    import numpy as np

    lon = np.radians(np.array(ras, dtype=float))
    lat = np.radians(np.array(decs, dtype=float))
    p1 = math.radians(dec)
    h = np.sin((lat - p1) / 2) ** 2 + math.cos(p1) * np.cos(lat) * np.sin((lon - math.radians(ra)) / 2) ** 2
    return np.degrees(2 * np.arcsin(np.sqrt(np.minimum(1.0, h))))


def in_cone(pixel_column, ra_column, dec_column, ra: float, dec: float, radius: float):
    """SQL condition: the position (``ra_column``, ``dec_column``, degrees) lies within
    ``radius`` degrees of (ra, dec): the pixel ranges of the cone (an index range scan), then
    the haversine test of :func:`separation` on what they hold, in the database
    (hav(d) <= hav(radius), with hav(x) = sin(x/2)**2; no inverse function needed)."""
    from sqlalchemy import and_, func

    dec0 = math.radians(dec)
    half_ddec = func.sin((func.radians(dec_column) - dec0) / 2.0)
    half_dra = func.sin((func.radians(ra_column) - math.radians(ra)) / 2.0)
    hav = half_ddec * half_ddec + math.cos(dec0) * func.cos(func.radians(dec_column)) * half_dra * half_dra
    limit = math.sin(math.radians(min(radius, 180.0)) / 2.0) ** 2
    return and_(ra_column.is_not(None), dec_column.is_not(None), in_cone_pixels(pixel_column, ra, dec, radius),
                hav <= limit)
