"""Simple Image Access 2.0 over the ObsCore rows (:func:`shared.catalog.obscore.obscore_select`).

The parameters are those of IVOA SIA 2.0 (§2.1 of the standard); names are case-insensitive,
values are not. A parameter given several times matches rows that satisfy any of its values;
different parameters must all hold:

* ``POS`` — ``CIRCLE ra dec radius``, ``RANGE ra1 ra2 dec1 dec2`` (bounds may be ``-Inf`` /
  ``+Inf``; ``ra1 > ra2`` wraps through 0) or ``POLYGON ra1 dec1 ra2 dec2 ra3 dec3 ...``
  (degrees, ICRS; a polygon must fit in a hemisphere). A row matches when its footprint
  (``s_region``) overlaps a circle or polygon (its centre, for a row without one), and when
  its centre (``s_ra``, ``s_dec``) lies in a range.
* ``BAND`` (metres) and ``TIME`` (MJD) — an interval ``lo hi`` (or one value) that must
  overlap the row's ``em_min..em_max`` / ``t_min..t_max``.
* ``FOV`` (deg), ``SPATRES`` (arcsec), ``EXPTIME`` (s), ``TIMERES`` (s), ``SPECRP`` — an
  interval that must hold the row's ``s_fov``, ``s_resolution``, ``t_exptime``,
  ``t_resolution``, ``em_res_power`` (a row without the value never matches).
* ``POL`` — a polarization state among ``pol_states``.
* ``ID`` (``obs_publisher_did``, exact), ``COLLECTION``, ``FACILITY``, ``INSTRUMENT`` (the
  instrument, ``NIRCAM``, or instrument and mode, ``NIRCAM/IMAGE``), ``DPTYPE`` (``image``
  or ``cube``; both when absent: SIA serves images), ``CALIB`` (0–4), ``TARGET``,
  ``FORMAT`` (``access_format``) — equal, ignoring case except for ``ID``.
* ``MAXREC`` — at most this many rows (default :data:`DEFAULT_MAXREC`, at most
  :data:`MAX_MAXREC`); a cut answer says ``OVERFLOW``; 0 asks for the columns only.
  ``RESPONSEFORMAT`` may only name VOTable.

Unknown parameters are ignored, as DALI asks. A value that cannot be used raises
:class:`ParameterError`, whose message starts with the parameter's name.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, Select, and_, func, or_, select
from sqlalchemy.orm import Session

from shared.catalog import CaomObservation, sky
from shared.catalog.obscore import COLUMNS, absolute_url, obscore_select
from shared.footprints import (
    circle_region,
    polygon_centre,
    polygon_contains,
    polygon_radius,
    polygon_region,
    regions_overlap,
)

__all__ = [
    "DEFAULT_MAXREC",
    "MAX_MAXREC",
    "Circle",
    "ParameterError",
    "Polygon",
    "RaDecRange",
    "SiaQuery",
    "grouped",
    "parse_interval",
    "parse_maxrec",
    "parse_pos",
    "parse_sia",
    "parse_response_format",
    "id_chunks",
    "run_queries",
    "sia_queries",
    "sia_search",
]

DEFAULT_MAXREC = 1000   # rows of an answer when the caller sets no MAXREC
MAX_MAXREC = 10000      # the most rows one answer holds, whatever MAXREC asks
MAX_VALUES = 100        # values of one parameter
POLARIZATION_STATES = ("I", "Q", "U", "V", "RR", "LL", "RL", "LR", "XX", "YY", "XY", "YX", "POLI", "POLA")
SIA_DPTYPES = ("image", "cube")
VOTABLE_FORMATS = ("votable", "application/x-votable+xml", "text/xml")


class ParameterError(ValueError):
    """A parameter value the service cannot use; the message names the parameter."""

    def __init__(self, param: str, message: str):
        super().__init__(f"{param}: {message}")
        self.param = param


def grouped(items: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    """Request parameters by upper-cased name (DALI: names are case-insensitive), in order."""
    out: dict[str, list[str]] = {}
    for key, value in items:
        out.setdefault(key.strip().upper(), []).append(value)
    return out


def _number(text: str, param: str, *, infinite: bool = False) -> float:
    word = text.strip()
    try:
        value = float(word)
    except ValueError:
        raise ParameterError(param, f"{word!r} is not a number") from None
    if math.isnan(value) or (math.isinf(value) and not infinite):
        raise ParameterError(param, f"{word!r} is not a finite number")
    return value


# ------------------------------------------------------------------ POS


def _check_ra(value: float, param: str) -> float:
    if math.isfinite(value) and not 0.0 <= value <= 360.0:
        raise ParameterError(param, f"right ascension {value:g} is outside 0..360 degrees")
    return value


def _check_dec(value: float, param: str) -> float:
    if math.isfinite(value) and not -90.0 <= value <= 90.0:
        raise ParameterError(param, f"declination {value:g} is outside -90..90 degrees")
    return value


@dataclass(frozen=True)
class Circle:
    ra: float
    dec: float
    radius: float

    @property
    def region(self) -> str:
        return circle_region(self.ra, self.dec, self.radius)

    def contains(self, ra: float, dec: float) -> bool:
        return sky.separation(self.ra, self.dec, ra, dec) <= self.radius

    def condition(self) -> ColumnElement[bool]:
        """The rows whose centre lies in the circle: their footprints overlap it (a footprint
        holds its centre), decided in the database."""
        c = CaomObservation
        return sky.in_cone(c.hpx, c.s_ra, c.s_dec, self.ra, self.dec, self.radius)

    def matching_ids(self, session: Session) -> set[int]:
        """The rows whose centre lies outside the circle but whose footprint reaches into it."""
        return _overlapping(session, self, self.ra, self.dec, self.radius, besides=self.condition())


@dataclass(frozen=True)
class RaDecRange:
    """``RANGE``: bounds in degrees, None where open (±Inf); ``ra_lo > ra_hi`` wraps through 0."""

    ra_lo: float | None
    ra_hi: float | None
    dec_lo: float | None
    dec_hi: float | None

    def condition(self) -> ColumnElement[bool]:
        c = CaomObservation
        parts = [c.s_ra.is_not(None), c.s_dec.is_not(None)]
        if self.dec_lo is not None:
            parts.append(c.s_dec >= self.dec_lo)
        if self.dec_hi is not None:
            parts.append(c.s_dec <= self.dec_hi)
        if self.ra_lo is not None and self.ra_hi is not None and self.ra_lo > self.ra_hi:
            parts.append(or_(c.s_ra >= self.ra_lo, c.s_ra <= self.ra_hi))
        else:
            if self.ra_lo is not None:
                parts.append(c.s_ra >= self.ra_lo)
            if self.ra_hi is not None:
                parts.append(c.s_ra <= self.ra_hi)
        return and_(*parts)


@dataclass(frozen=True)
class Polygon:
    """A spherical polygon (vertices in degrees, joined by great circles) smaller than a
    hemisphere; containment is :func:`shared.footprints.polygon_contains` (exact: on the
    tangent plane at the vertices' mean direction)."""

    vertices: tuple[tuple[float, float], ...]

    @property
    def centre(self) -> tuple[float, float]:
        return polygon_centre(self.vertices)

    @property
    def radius(self) -> float:
        """Largest distance from the centre to a vertex: the polygon lies in that cone."""
        return polygon_radius(self.vertices)

    def contains(self, ra: float, dec: float) -> bool:
        return polygon_contains(self.vertices, ra, dec)

    @property
    def region(self) -> str:
        return polygon_region(self.vertices)

    def matching_ids(self, session: Session) -> set[int]:
        ra, dec = self.centre
        return _overlapping(session, self, ra, dec, self.radius)


Shape = Circle | RaDecRange | Polygon

FOOTPRINT_REACH = 1.0
"""Degrees: how far beyond a circle or polygon a row's centre may lie for its footprint to be
tested against it (JWST footprints, mosaics included, are well within it)."""


def _overlapping(session: Session, shape: Circle | Polygon, ra: float, dec: float, radius: float,
                 besides: ColumnElement[bool] | None = None) -> set[int]:
    """Ids of the rows whose footprint (``s_region``) overlaps ``shape``, bounded by the cone
    (``ra``, ``dec``, ``radius``); a row without a usable footprint matches by its centre.
    Rows meeting ``besides`` (matched by the caller in SQL) are not read."""
    c = CaomObservation
    reach = min(radius + FOOTPRINT_REACH, 180.0)
    rows = session.execute(select(c.id, c.s_ra, c.s_dec, c.s_region).where(
        c.hpx.is_not(None), sky.in_cone_pixels(c.hpx, ra, dec, reach),
        *(() if besides is None else (~besides,))))
    region = shape.region
    found = set()
    for row_id, row_ra, row_dec, footprint in rows:
        if footprint:
            try:
                if regions_overlap(region, footprint):
                    found.add(row_id)
                continue
            except (ValueError, ZeroDivisionError):
                pass  # not a region we read: its centre decides
        if shape.contains(row_ra, row_dec):
            found.add(row_id)
    return found


def parse_pos(text: str, param: str = "POS") -> Shape:
    """One ``POS`` value: ``CIRCLE``, ``RANGE`` or ``POLYGON`` (SIA 2.0 §2.1.1)."""
    words = text.split()
    if not words:
        raise ParameterError(param, "empty value; expected CIRCLE ra dec radius, RANGE ra1 ra2 dec1 dec2 "
                                    "or POLYGON ra1 dec1 ra2 dec2 ra3 dec3 ...")
    kind, numbers = words[0].upper(), words[1:]
    if kind == "CIRCLE":
        if len(numbers) != 3:
            raise ParameterError(param, f"CIRCLE takes ra dec radius (3 numbers), not {len(numbers)}")
        ra, dec, radius = (_number(n, param) for n in numbers)
        if not 0.0 <= radius <= 180.0:
            raise ParameterError(param, f"radius {radius:g} is outside 0..180 degrees")
        return Circle(_check_ra(ra, param), _check_dec(dec, param), radius)
    if kind == "RANGE":
        if len(numbers) != 4:
            raise ParameterError(param, f"RANGE takes ra1 ra2 dec1 dec2 (4 numbers), not {len(numbers)}")
        ra1, ra2, dec1, dec2 = (_number(n, param, infinite=True) for n in numbers)
        for v in (ra1, ra2):
            _check_ra(v, param)
        for v in (dec1, dec2):
            _check_dec(v, param)
        if dec1 > dec2:
            raise ParameterError(param, f"the declination range {dec1:g} {dec2:g} is empty")
        if (ra1 == math.inf) or (ra2 == -math.inf) or (dec1 == math.inf) or (dec2 == -math.inf):
            raise ParameterError(param, "a lower bound cannot be +Inf nor an upper bound -Inf")

        def bound(v: float) -> float | None:
            return v if math.isfinite(v) else None

        return RaDecRange(bound(ra1), bound(ra2), bound(dec1), bound(dec2))
    if kind == "POLYGON":
        if len(numbers) < 6 or len(numbers) % 2:
            raise ParameterError(param, "POLYGON takes at least 3 vertices as ra dec pairs "
                                        f"(an even count of 6 or more numbers), not {len(numbers)} numbers")
        values = [_number(n, param) for n in numbers]
        vertices = tuple((_check_ra(r, param), _check_dec(d, param)) for r, d in zip(values[0::2], values[1::2],
                                                                                      strict=True))
        try:
            polygon = Polygon(vertices)
            radius = polygon.radius
        except (ZeroDivisionError, ValueError):
            raise ParameterError(param, "the polygon's vertices cancel out (it spans the sky)") from None
        if radius >= 90.0:
            raise ParameterError(param, "the polygon must fit in a hemisphere (every vertex less than 90 degrees "
                                        "from their mean direction)")
        return polygon
    raise ParameterError(param, f"{words[0]!r} is not CIRCLE, RANGE or POLYGON")


# ------------------------------------------------------------------ intervals and values


def parse_interval(text: str, param: str) -> tuple[float | None, float | None]:
    """``lo hi`` (±Inf for an open side) or one value (``lo = hi``); None for an open side."""
    words = text.split()
    if len(words) not in (1, 2):
        raise ParameterError(param, f"{text.strip()!r} is not an interval 'lo hi' (two numbers, -Inf/+Inf for "
                                    "an open side) nor one number")
    lo, hi = (_number(w, param, infinite=True) for w in (words * 2)[:2])
    if lo > hi:
        raise ParameterError(param, f"the interval {lo:g} {hi:g} is empty (lower bound above upper)")
    if lo == math.inf or hi == -math.inf:
        raise ParameterError(param, "a lower bound cannot be +Inf nor an upper bound -Inf")
    return (lo if math.isfinite(lo) else None, hi if math.isfinite(hi) else None)


def parse_maxrec(values: Sequence[str], default: int = DEFAULT_MAXREC, limit: int = MAX_MAXREC) -> int:
    """The rows an answer may hold: MAXREC (its last value), at most ``limit``."""
    if not values:
        return default
    text = values[-1].strip()
    if not text.isdigit():
        raise ParameterError("MAXREC", f"{text!r} is not a non-negative integer")
    return min(int(text), limit)


def parse_response_format(values: Sequence[str]) -> None:
    """Only VOTable is served (DALI RESPONSEFORMAT)."""
    for value in values:
        if value.split(";")[0].strip().lower() not in VOTABLE_FORMATS:
            raise ParameterError("RESPONSEFORMAT", f"{value!r} is not served; ask for votable "
                                                   "(application/x-votable+xml)")


@dataclass(frozen=True)
class SiaQuery:
    """The constraints of one SIA 2.0 request (:func:`parse_sia`)."""

    pos: tuple[Shape, ...] = ()
    intervals: dict[str, tuple[tuple[float | None, float | None], ...]] = field(default_factory=dict)
    pol: tuple[str, ...] = ()
    ids: tuple[str, ...] = ()
    text: dict[str, tuple[str, ...]] = field(default_factory=dict)  # COLLECTION, FACILITY, ...: values
    dptype: tuple[str, ...] = SIA_DPTYPES
    calib: tuple[int, ...] = ()
    maxrec: int = DEFAULT_MAXREC


# interval parameters: which ObsCore columns, and whether the interval overlaps a range of
# the row (BAND, TIME) or holds its value (the others)
_OVERLAPS = {"BAND": ("em_min", "em_max"), "TIME": ("t_min", "t_max")}
_HOLDS = {"FOV": "s_fov", "SPATRES": "s_resolution", "EXPTIME": "t_exptime", "TIMERES": "t_resolution",
          "SPECRP": "em_res_power"}
_TEXT = {"COLLECTION": "obs_collection", "FACILITY": "facility_name", "INSTRUMENT": "instrument_name",
         "TARGET": "target_name", "FORMAT": "access_format"}


def _values(params: Mapping[str, Sequence[str]], name: str) -> list[str]:
    values = list(params.get(name, ()))
    if len(values) > MAX_VALUES:
        raise ParameterError(name, f"{len(values)} values; at most {MAX_VALUES}")
    return values


def _word(value: str, name: str) -> str:
    word = value.strip()
    if not word:
        raise ParameterError(name, "empty value")
    return word


def parse_sia(params: Mapping[str, Sequence[str]]) -> SiaQuery:
    """The constraints of a request's parameters (grouped by upper-cased name, :func:`grouped`)."""
    parse_response_format(params.get("RESPONSEFORMAT", ()))
    intervals = {name: tuple(parse_interval(v, name) for v in _values(params, name))
                 for name in (*_OVERLAPS, *_HOLDS) if name in params}
    pol = []
    for v in _values(params, "POL"):
        word = _word(v, "POL").upper()
        if word not in POLARIZATION_STATES:
            raise ParameterError("POL", f"{v.strip()!r} is not a polarization state ({' '.join(POLARIZATION_STATES)})")
        pol.append(word)
    dptype = []
    for v in _values(params, "DPTYPE"):
        word = _word(v, "DPTYPE").lower()
        if word not in SIA_DPTYPES:
            raise ParameterError("DPTYPE", f"{v.strip()!r} is neither image nor cube (SIA serves images and cubes; "
                                           "other data products are found with TAP)")
        dptype.append(word)
    calib = []
    for v in _values(params, "CALIB"):
        word = _word(v, "CALIB")
        if word not in ("0", "1", "2", "3", "4"):
            raise ParameterError("CALIB", f"{word!r} is not a calibration level (0, 1, 2, 3 or 4)")
        calib.append(int(word))
    return SiaQuery(
        pos=tuple(parse_pos(v) for v in _values(params, "POS")),
        intervals=intervals,
        pol=tuple(pol),
        ids=tuple(_word(v, "ID") for v in _values(params, "ID")),
        text={name: tuple(_word(v, name) for v in _values(params, name)) for name in _TEXT if name in params},
        dptype=tuple(dptype) or SIA_DPTYPES,
        calib=tuple(calib),
        maxrec=parse_maxrec(params.get("MAXREC", ())),
    )


# ------------------------------------------------------------------ the query


def _text_condition(name: str, column: ColumnElement, values: Sequence[str]) -> ColumnElement[bool]:
    upper = func.upper(column)
    conds = []
    for v in values:
        conds.append(upper == v.upper())
        if name == "INSTRUMENT" and "/" not in v:  # NIRCAM matches NIRCAM/IMAGE, NIRCAM/GRISM, ...
            conds.append(upper.startswith(v.upper() + "/", autoescape=True))
    return or_(*conds)


def _interval_condition(name: str, columns, lo: float | None, hi: float | None) -> ColumnElement[bool]:
    if name in _OVERLAPS:
        low, high = (columns[c] for c in _OVERLAPS[name])
        parts = [low.is_not(None), high.is_not(None)]
        if hi is not None:
            parts.append(low <= hi)
        if lo is not None:
            parts.append(high >= lo)
        return and_(*parts)
    value = columns[_HOLDS[name]]
    parts = [value.is_not(None)]
    if lo is not None:
        parts.append(value >= lo)
    if hi is not None:
        parts.append(value <= hi)
    return and_(*parts)


ID_CHUNK = 5000  # row ids in one IN list (bound parameters: PostgreSQL allows 65535, SQLite 32766)


def _position_alternatives(session: Session, shapes: Sequence[Shape]) -> list[ColumnElement[bool]]:
    """Conditions of which a row must meet one: each RANGE and each CIRCLE's centres (SQL),
    and the ids of the other rows whose footprints reach into a circle or a polygon, cut in
    lists of :data:`ID_CHUNK` (a wide region may hold more rows than one statement may bind)."""
    alternatives = [shape.condition() for shape in shapes if isinstance(shape, (RaDecRange, Circle))]
    ids: set[int] = set()
    for shape in shapes:
        if not isinstance(shape, RaDecRange):
            ids |= shape.matching_ids(session)
    return alternatives + id_chunks(ids)


def id_chunks(ids: set[int]) -> list[ColumnElement[bool]]:
    """``id IN (...)`` conditions, one per :data:`ID_CHUNK` ids, which together cover ``ids``."""
    ordered = sorted(ids)
    return [CaomObservation.id.in_(ordered[i:i + ID_CHUNK]) for i in range(0, len(ordered), ID_CHUNK)]


def sia_queries(session: Session, q: SiaQuery) -> list[Select]:
    """ObsCore SELECTs (no limit) whose rows together are those ``q`` asks for: one, or one
    per position alternative (:func:`_position_alternatives`)."""
    query = obscore_select()
    columns = query.selected_columns
    conds: list[ColumnElement[bool]] = [columns["dataproduct_type"].in_(q.dptype)]
    for name, intervals in q.intervals.items():
        conds.append(or_(*(_interval_condition(name, columns, lo, hi) for lo, hi in intervals)))
    if q.pol:
        conds.append(or_(*(columns["pol_states"].contains(f"/{p}/", autoescape=True) for p in q.pol)))
    if q.ids:
        conds.append(columns["obs_publisher_did"].in_(q.ids))
    for name, values in q.text.items():
        conds.append(_text_condition(name, columns[_TEXT[name]], values))
    if q.calib:
        conds.append(CaomObservation.calib_level.in_(q.calib))
    query = query.where(*conds)
    if not q.pos:
        return [query]
    return [query.where(alternative) for alternative in _position_alternatives(session, q.pos)]


_ACCESS_URL = [c.name for c in COLUMNS].index("access_url")


def run_queries(session: Session, queries: Sequence[Select], maxrec: int,
                base_url: str) -> tuple[list[tuple], bool]:
    """At most ``maxrec`` rows of the union of ObsCore SELECTs, in catalog order (the rows'
    ids), with absolute access URLs, and whether more matched (OVERFLOW). ``maxrec`` 0
    reads no row."""
    if maxrec == 0:
        return [], False
    found: dict[int, tuple] = {}
    for query in queries:
        keyed = query.add_columns(CaomObservation.id).order_by(CaomObservation.id).limit(maxrec + 1)
        for row in session.execute(keyed):
            found.setdefault(row[-1], tuple(row[:-1]))
    rows = [found[key] for key in sorted(found)]
    return [_absolute(r, base_url) for r in rows[:maxrec]], len(rows) > maxrec


def _absolute(row: tuple, base_url: str) -> tuple:
    i = _ACCESS_URL
    return row[:i] + (absolute_url(row[i], base_url),) + row[i + 1:]


def sia_search(session: Session, params: Mapping[str, Sequence[str]], base_url: str) -> tuple[list[tuple], bool]:
    """The ObsCore rows (tuples in :data:`~shared.catalog.obscore.COLUMNS` order) an SIA 2.0
    request asks for, and whether MAXREC cut them short."""
    q = parse_sia(params)
    return run_queries(session, sia_queries(session, q), q.maxrec, base_url)
