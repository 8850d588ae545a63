"""Sky footprints (S_REGION, as STC-S strings in degrees) of product files and exposures.

* A product file's footprint (:func:`file_region`): the ``S_REGION`` keyword its WCS step
  wrote (SCI header, else primary); before calibration (``_uncal``, ``_rate``) the polygon
  of the readout window about its pointing (RA_REF, DEC_REF, ROLL_REF of the SCI header;
  SUBSIZE1/2 and DETECTOR of the primary), as :mod:`shared.wcs` places it (no distortion).
* Where only a position is known (a catalog older than the footprints): a circle about it
  (:func:`circle_region`), of the window's half diagonal.
* :func:`region_centre` and :func:`region_contains` read these strings back (the centre, a
  catalog row's position, is a polygon's vertices' mean, RA averaged on the circle: not the
  tangent point below); :func:`regions_overlap` tells whether two regions share any point.

Polygon edges are great-circle arcs. Containment and overlap are decided on a gnomonic projection,
which maps every great circle through the front hemisphere to a straight line, so a polygon
stays a polygon and the plane's answer is exact. Which tangent point is right:

* **About the polygon's centre** (its vertices' mean direction, :func:`polygon_centre`) for
  containment (:func:`polygon_contains`, which :func:`region_contains` and the SIA ``POS``
  polygons use): right for a tested point anywhere on the sky, as long as the polygon fits
  in the hemisphere about its centre (every vertex less than 90 degrees from it); a point 90
  degrees or more from the centre is outside.
* **About the tested point** is right only while every vertex lies less than 90 degrees from
  that point. Farther, a vertex is behind the tangent plane and projects through the sphere's
  centre onto its antipode's place: a point near the antipode of a footprint would be found
  inside it. So containment does not project there.
* **About the first region's centre** for :func:`regions_overlap`: both regions must lie
  within 90 degrees of it (a circle of radius r becomes one of radius tan r there: exact for
  polygons, for circles to the projection's precision).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

__all__ = ["circle_region", "file_region", "parse_region", "polygon_centre", "polygon_contains", "polygon_radius",
           "polygon_region", "region_centre", "region_contains", "regions_overlap", "s_region_keyword", "separation",
           "window_region"]


def polygon_region(corners: Sequence[tuple[float, float]]) -> str:
    """``POLYGON ICRS ra1 dec1 ra2 dec2 ...`` (degrees) through ``corners``."""
    return "POLYGON ICRS " + " ".join(f"{ra % 360.0:.9f} {dec:.9f}" for ra, dec in corners)


def s_region_keyword(corners: Sequence[tuple[float, float]]) -> str:
    """The S_REGION keyword of a product through ``corners`` (degrees), as the public
    pipeline writes it: ``POLYGON ICRS  ra1 dec1 ...``, two spaces after the frame (jwst's
    MIRI LRS resample_spec reads the corners by splitting on single spaces and counts on
    them). :func:`parse_region` reads either form."""
    return "POLYGON ICRS  " + " ".join(f"{ra % 360.0:.9f} {dec:.9f}" for ra, dec in corners)


def circle_region(ra: float, dec: float, radius: float) -> str:
    """``CIRCLE ICRS ra dec radius`` (degrees)."""
    return f"CIRCLE ICRS {ra % 360.0:.9f} {dec:.9f} {radius:.9f}"


def window_region(ra: float, dec: float, roll: float, pixel_scale: float, xsize: int, ysize: int) -> str:
    """Polygon through the outer pixel corners of a readout window of ``xsize`` x ``ysize``
    pixels centred on (``ra``, ``dec``), +y at position angle ``roll`` (degrees);
    ``pixel_scale`` arcsec/pixel."""
    from shared.wcs import window_wcs

    wcs = window_wcs(ra, dec, roll, pixel_scale, int(xsize), int(ysize))
    x = [-0.5, xsize - 0.5, xsize - 0.5, -0.5]
    y = [-0.5, -0.5, ysize - 0.5, ysize - 0.5]
    ras, decs = wcs.all_pix2world(x, y, 0)
    return polygon_region([(float(r), float(d)) for r, d in zip(ras, decs, strict=True)])


def file_region(path: Path) -> str | None:
    """The footprint of a FITS product file (see the module docstring); None for another
    file, or a FITS file that says nothing of where it looked."""
    if path.suffix.lower() != ".fits":
        return None
    from astropy.io import fits

    from shared.instruments import UnknownInstrumentError, detector

    try:
        with fits.open(path, memmap=False, lazy_load_hdus=True) as hdus:
            primary = hdus[0].header
            sci = hdus["SCI"].header if "SCI" in hdus else primary
    except (OSError, ValueError, IndexError):
        return None  # not a FITS file this can read: the footprint is unknown, the product no less archived
    for header in (sci, primary):
        value = header.get("S_REGION")
        if isinstance(value, str) and value.strip():
            return value.strip()
    try:
        ra, dec, roll = (float(sci[k]) for k in ("RA_REF", "DEC_REF", "ROLL_REF"))
        xsize, ysize = int(primary["SUBSIZE1"]), int(primary["SUBSIZE2"])
        scale = detector(str(primary["DETECTOR"])).pixel_scale
    except (KeyError, TypeError, ValueError, UnknownInstrumentError):
        return None
    if not (math.isfinite(ra) and math.isfinite(dec) and math.isfinite(roll)) or xsize < 1 or ysize < 1:
        return None
    return window_region(ra, dec, roll, scale, xsize, ysize)


def parse_region(region: str) -> tuple[str, list[float]]:
    """(shape, numbers) of ``POLYGON ICRS ...`` or ``CIRCLE ICRS ...`` (the frame is optional).

    Raises ValueError for another shape or a malformed list."""
    words = region.split()
    if not words:
        raise ValueError("empty region")
    shape = words[0].upper()
    rest = words[1:]
    if rest and not _is_number(rest[0]):
        rest = rest[1:]  # the frame
    numbers = [float(w) for w in rest]
    if shape == "POLYGON" and len(numbers) >= 6 and len(numbers) % 2 == 0:
        return shape, numbers
    if shape == "CIRCLE" and len(numbers) == 3:
        return shape, numbers
    raise ValueError(f"not a POLYGON or CIRCLE region: {region!r}")


def _is_number(word: str) -> bool:
    try:
        float(word)
    except ValueError:
        return False
    return True


def region_centre(region: str) -> tuple[float, float]:
    """(ra, dec) of a circle's centre or the mean of a polygon's vertices, degrees."""
    shape, n = parse_region(region)
    if shape == "CIRCLE":
        return n[0] % 360.0, n[1]
    ras, decs = n[0::2], n[1::2]
    x = sum(math.cos(math.radians(r)) for r in ras)
    y = sum(math.sin(math.radians(r)) for r in ras)
    return math.degrees(math.atan2(y, x)) % 360.0, sum(decs) / len(decs)


def _offsets(ra0: float, dec0: float, ra: float, dec: float) -> tuple[float, float]:
    """Gnomonic (east, north) of (ra, dec) about (ra0, dec0), radians."""
    a0, d0, a, d = map(math.radians, (ra0, dec0, ra, dec))
    cos_c = math.sin(d0) * math.sin(d) + math.cos(d0) * math.cos(d) * math.cos(a - a0)
    x = math.cos(d) * math.sin(a - a0) / cos_c
    y = (math.cos(d0) * math.sin(d) - math.sin(d0) * math.cos(d) * math.cos(a - a0)) / cos_c
    return x, y


def separation(ra1: float, dec1: float, ra2: float, dec2: float) -> float:
    """Angle between two directions, degrees (haversine: accurate at small angles)."""
    p1, p2 = math.radians(dec1), math.radians(dec2)
    h = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(math.radians(ra2 - ra1) / 2) ** 2
    return math.degrees(2 * math.asin(min(1.0, math.sqrt(h))))


def _unit(ra: float, dec: float) -> tuple[float, float, float]:
    a, d = math.radians(ra), math.radians(dec)
    return (math.cos(d) * math.cos(a), math.cos(d) * math.sin(a), math.sin(d))


def _dot(u, v) -> float:
    return u[0] * v[0] + u[1] * v[1] + u[2] * v[2]


def _vector_product(u, v) -> tuple[float, float, float]:
    return (u[1] * v[2] - u[2] * v[1], u[2] * v[0] - u[0] * v[2], u[0] * v[1] - u[1] * v[0])


def _normalized(u) -> tuple[float, float, float]:
    n = math.sqrt(_dot(u, u))
    if n < 1e-12:
        raise ValueError("the directions cancel out: they have no mean direction")
    return (u[0] / n, u[1] / n, u[2] / n)


def polygon_centre(vertices: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """(ra, dec) of the mean direction of ``vertices`` (degrees): the tangent point of
    :func:`polygon_contains`. Raises ValueError when the vertices cancel out (they span the
    sky, e.g. three points 120 degrees apart on the equator)."""
    mean = [sum(c) for c in zip(*(_unit(r, d) for r, d in vertices), strict=True)]
    x, y, z = _normalized(mean)
    return math.degrees(math.atan2(y, x)) % 360.0, math.degrees(math.asin(max(-1.0, min(1.0, z))))


def polygon_radius(vertices: Sequence[tuple[float, float]]) -> float:
    """Largest angle from :func:`polygon_centre` to a vertex, degrees: the polygon lies in the
    cone of that radius about its centre; :func:`polygon_contains` needs it below 90."""
    ra, dec = polygon_centre(vertices)
    return max(separation(ra, dec, r, d) for r, d in vertices)


def polygon_contains(vertices: Sequence[tuple[float, float]], ra: float, dec: float) -> bool:
    """Whether (``ra``, ``dec``) lies inside the spherical polygon through ``vertices``
    (degrees, in order, joined by great-circle arcs).

    Tested on the gnomonic projection about the polygon's centre (:func:`polygon_centre`;
    the module docstring says why there): exact for any point of the sky; a point 90
    degrees or more from the centre is outside. A point on an edge may fall either side.

    Raises ValueError for vertices that cancel out or a polygon that does not fit in the
    hemisphere about its centre (:func:`polygon_radius` 90 degrees or more)."""
    c = _unit(*polygon_centre(vertices))
    axis = (0.0, 0.0, 1.0) if abs(c[2]) < 0.9 else (1.0, 0.0, 0.0)  # any direction not along c
    e1 = _normalized(_vector_product(axis, c))
    e2 = _vector_product(c, e1)

    def project(r: float, d: float) -> tuple[float, float] | None:
        p = _unit(r, d)
        w = _dot(p, c)
        return None if w <= 1e-12 else (_dot(p, e1) / w, _dot(p, e2) / w)

    corners = [project(r, d) for r, d in vertices]
    if any(corner is None for corner in corners):
        raise ValueError("the polygon does not fit in a hemisphere: a vertex is 90 degrees or more from "
                         "the vertices' mean direction")
    point = project(ra, dec)
    return point is not None and _inside(point, corners)


def region_contains(region: str, ra: float, dec: float) -> bool:
    """Whether (ra, dec) lies inside the region: within a circle's radius (its edge counts as
    inside), or inside a polygon (:func:`polygon_contains`).

    Raises ValueError for a malformed region or a polygon larger than a hemisphere."""
    shape, n = parse_region(region)
    if shape == "CIRCLE":
        return separation(n[0], n[1], ra, dec) <= n[2] + 1e-12
    return polygon_contains(list(zip(n[0::2], n[1::2], strict=True)), ra, dec)


def _segment_distance(p: tuple[float, float], a: tuple[float, float], b: tuple[float, float]) -> float:
    """Distance on the plane from ``p`` to the segment ``a``–``b``."""
    dx, dy = b[0] - a[0], b[1] - a[1]
    length2 = dx * dx + dy * dy
    t = 0.0 if length2 == 0 else max(0.0, min(1.0, ((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / length2))
    return math.hypot(p[0] - (a[0] + t * dx), p[1] - (a[1] + t * dy))


def _inside(p: tuple[float, float], polygon: list[tuple[float, float]]) -> bool:
    inside = False
    for (x1, y1), (x2, y2) in zip(polygon, polygon[1:] + polygon[:1], strict=True):
        if (y1 > p[1]) != (y2 > p[1]) and p[0] < x1 + (p[1] - y1) * (x2 - x1) / (y2 - y1):
            inside = not inside
    return inside


def _cross(o, a, b) -> float:
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def _segments_cross(a1, a2, b1, b2) -> bool:
    d1, d2 = _cross(b1, b2, a1), _cross(b1, b2, a2)
    d3, d4 = _cross(a1, a2, b1), _cross(a1, a2, b2)
    return ((d1 > 0) != (d2 > 0)) and ((d3 > 0) != (d4 > 0))


def _edges(polygon: list[tuple[float, float]]):
    return zip(polygon, polygon[1:] + polygon[:1], strict=True)


def regions_overlap(a: str, b: str) -> bool:
    """Whether the regions ``a`` and ``b`` (``POLYGON``/``CIRCLE`` strings, degrees) share a
    point; touching counts. Both must lie within 90 degrees of ``a``'s centre.

    Raises ValueError for a malformed region."""
    ra0, dec0 = region_centre(a)
    shapes = []
    for region in (a, b):
        shape, n = parse_region(region)
        if shape == "CIRCLE":
            centre = _offsets(ra0, dec0, n[0], n[1])
            shapes.append(("CIRCLE", centre, math.tan(math.radians(min(n[2], 89.0)))))
        else:
            shapes.append(("POLYGON", [_offsets(ra0, dec0, r, d) for r, d in zip(n[0::2], n[1::2], strict=True)], 0.0))
    (kind_a, geo_a, r_a), (kind_b, geo_b, r_b) = shapes
    if kind_a == "CIRCLE" and kind_b == "CIRCLE":
        return math.dist(geo_a, geo_b) <= r_a + r_b + 1e-12
    if kind_a == "CIRCLE" or kind_b == "CIRCLE":
        (centre, radius), polygon = ((geo_a, r_a), geo_b) if kind_a == "CIRCLE" else ((geo_b, r_b), geo_a)
        return _inside(centre, polygon) or any(_segment_distance(centre, p, q) <= radius + 1e-12
                                               for p, q in _edges(polygon))
    return (_inside(geo_a[0], geo_b) or _inside(geo_b[0], geo_a)
            or any(_segments_cross(p, q, u, v) for p, q in _edges(geo_a) for u, v in _edges(geo_b)))
