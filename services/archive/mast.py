"""MAST conventions of the archive API in one place: identifiers, field values, times and
the query syntax of astroquery's criteria (lists ORed, ``!`` negates, ``*``/``%`` wildcards,
``lo..hi`` / ``>=x`` ranges).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, false, func, not_, or_, true

# MAST's names of JWST modes and optical elements: the catalog's CAOM rows use them too.
from shared.catalog.caom import dataproduct_type, filters_label, instrument_name

__all__ = [
    "MAX_INT",
    "MAX_PATTERNS",
    "MAX_VALUES",
    "MAX_VALUE_LENGTH",
    "MISSION",
    "MRP_LABEL",
    "CriterionError",
    "Range",
    "aware",
    "data_rights",
    "data_uri",
    "dataproduct_type",
    "filters_label",
    "from_mjd",
    "id_filter",
    "instrument_name",
    "like_any",
    "mjd",
    "normalize_program",
    "obs_id",
    "parse_instant",
    "parse_int",
    "parse_list",
    "parse_obs_id",
    "parse_range",
    "parse_time",
    "proposal_id",
    "wildcard_match",
]

MISSION = "JWST"
MRP_LABEL = "Minimum Recommended Products"
_MJD_UNIX_EPOCH = 40587.0


class CriterionError(ValueError):
    """A query value the API cannot use; the message names the parameter."""


# Bounds of what one request may ask (a 400 names the bound, never a 5xx or a slow query).
MAX_VALUES = 100        # values of one discrete criterion (repeated and comma-separated)
MAX_VALUE_LENGTH = 200  # characters of one value
MAX_PATTERNS = 20       # wildcarded values of one criterion
MAX_INT = 2**31 - 1     # catalog ids, revisions and levels are 32-bit integers
# Times a criterion may name: MJD 0 (1858-11-17) to MJD 200000 (2406), as MAST's MJD values.
_MJD_LIMIT = 200000.0


def aware(when: datetime | None) -> datetime | None:
    """UTC-aware datetime (SQLite returns naive ones; every catalog time is UTC)."""
    if when is None:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def mjd(when: datetime | None) -> float | None:
    """Modified Julian Date (UTC) of a datetime, as MAST gives t_min/t_max/t_obs_release."""
    when = aware(when)
    if when is None:
        return None
    return round(when.timestamp() / 86400.0 + _MJD_UNIX_EPOCH, 8)


def from_mjd(value: float) -> datetime:
    return datetime.fromtimestamp((value - _MJD_UNIX_EPOCH) * 86400.0, UTC)


def obs_id(program_id: str, number: int | None) -> str:
    """The mission's observation id: ``jw<ppppp><ooo>`` (program-level: ``jw<ppppp>``)."""
    return f"jw{program_id}" if number is None else f"jw{program_id}{number:03d}"


_OBS_ID_RE = re.compile(r"^jw(\d{5})(\d{3})$", re.IGNORECASE)


def parse_obs_id(value: str) -> tuple[str, int] | None:
    m = _OBS_ID_RE.match(value.strip())
    return (m[1], int(m[2])) if m else None


def proposal_id(program_id: str) -> str:
    """MAST's proposal_id for JWST: the program number without leading zeros."""
    return str(int(program_id))


def normalize_program(value: str, param: str = "program") -> str:
    value = value.strip()
    if not value.isdigit() or len(value) > 5 or int(value) == 0:
        raise CriterionError(f"{param}: {value!r} is not a program number (1 to 99999)")
    return f"{int(value):05d}"


def data_uri(filename: str) -> str:
    """``mast:JWST/product/<filename>``, a product's URI as MAST gives it (and as
    ``GET /api/v0.1/Download/file?uri=`` takes it)."""
    return f"mast:{MISSION}/product/{filename}"


def data_rights(public: bool) -> str:
    return "PUBLIC" if public else "EXCLUSIVE_ACCESS"


# ------------------------------------------------------------------ criteria syntax


def parse_list(values: Sequence[str] | str | None, param: str = "criterion") -> list[str]:
    """A discrete criterion: repeated parameters and/or comma-separated values; at most
    :data:`MAX_VALUES` values of :data:`MAX_VALUE_LENGTH` characters, of which at most
    :data:`MAX_PATTERNS` carry wildcards."""
    if values is None:
        return []
    if isinstance(values, str):
        values = [values]
    out = []
    for v in values:
        out.extend(p.strip() for p in v.split(",") if p.strip())
    if len(out) > MAX_VALUES:
        raise CriterionError(f"{param}: {len(out)} values; a criterion takes at most {MAX_VALUES}")
    if any(len(v) > MAX_VALUE_LENGTH for v in out):
        raise CriterionError(f"{param}: a value is longer than {MAX_VALUE_LENGTH} characters")
    patterns = sum(1 for v in out if "*" in v or "%" in v)
    if patterns > MAX_PATTERNS:
        raise CriterionError(f"{param}: {patterns} wildcarded values; at most {MAX_PATTERNS} in one criterion")
    return out


def _like_pattern(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("_", "\\_")
    return escaped.replace("*", "%")


def _text(column: ColumnElement) -> ColumnElement:
    """A column as text to compare: NULL as empty, unless the column is NOT NULL (then the
    comparison stays one an index of ``lower(column)`` serves)."""
    nullable = getattr(getattr(column, "expression", column), "nullable", True)
    return column if nullable is False else func.coalesce(column, "")


def like_any(columns: ColumnElement | Sequence[ColumnElement], values: Sequence[str]) -> ColumnElement[bool] | None:
    """SQL condition for a discrete criterion on one or more columns (case-insensitive:
    ``lower(column)`` is compared, which the catalog indexes where it matters).

    Values are ORed; a ``!`` prefix excludes; ``*`` and ``%`` are wildcards (unlike
    MAST, several wildcarded values may be given). A NULL column counts as empty, so an
    exclusion keeps rows that lack the value. None when there are no values.
    """
    if not values:
        return None
    if not isinstance(columns, Sequence):
        columns = [columns]
    columns = [func.lower(_text(c)) for c in columns]

    def cond(value: str) -> ColumnElement[bool]:
        if "*" in value or "%" in value:
            return or_(*(c.like(_like_pattern(value.lower()), escape="\\") for c in columns))
        return or_(*(c == value.lower() for c in columns))

    positives = [v for v in values if not v.startswith("!")]
    negatives = [v[1:] for v in values if v.startswith("!") and len(v) > 1]
    parts = []
    if positives:
        parts.append(or_(*(cond(v) for v in positives)))
    parts.extend(not_(cond(v)) for v in negatives)
    return and_(*parts)


def _glob(value: str, pattern: str) -> bool:
    """Whether ``value`` matches ``pattern`` ('*' or '%' for any run of characters),
    case-insensitively, in O(len(value) * len(pattern)) at worst (no regex backtracking)."""
    value, pattern = value.casefold(), pattern.casefold()
    v = p = 0
    star = mark = -1
    while v < len(value):
        if p < len(pattern) and pattern[p] not in "*%" and pattern[p] == value[v]:
            v, p = v + 1, p + 1
        elif p < len(pattern) and pattern[p] in "*%":
            star, mark, p = p, v, p + 1
        elif star >= 0:
            mark += 1
            v, p = mark, star + 1
        else:
            return False
    return all(c in "*%" for c in pattern[p:])


def wildcard_match(value: str, patterns: Sequence[str]) -> bool:
    """Python twin of :func:`like_any` for values computed outside SQL."""
    def one(p: str) -> bool:
        return _glob(value, p)

    positives = [p for p in patterns if not p.startswith("!")]
    negatives = [p[1:] for p in patterns if p.startswith("!")]
    return (not positives or any(one(p) for p in positives)) and not any(one(p) for p in negatives)


@dataclass(frozen=True)
class Range:
    """A continuous criterion: bounds (None = open) and whether each is inclusive."""

    lo: Any = None
    hi: Any = None
    lo_inclusive: bool = True
    hi_inclusive: bool = True

    def condition(self, column: ColumnElement) -> ColumnElement[bool]:
        parts = []
        if self.lo is not None:
            parts.append(column >= self.lo if self.lo_inclusive else column > self.lo)
        if self.hi is not None:
            parts.append(column <= self.hi if self.hi_inclusive else column < self.hi)
        return and_(true(), *parts)

    def contains(self, value: Any) -> bool:
        if value is None:
            return False
        if self.lo is not None and (value < self.lo if self.lo_inclusive else value <= self.lo):
            return False
        return not (self.hi is not None and (value > self.hi if self.hi_inclusive else value >= self.hi))


def parse_range(text: str, convert: Callable[[str], Any], param: str) -> Range:
    """``lo..hi``, ``lo..``, ``..hi``, ``>=x``, ``>x``, ``<=x``, ``<x`` or a single value
    (an exact match for numbers; the whole day for a date)."""
    text = text.strip()

    def conv(part: str) -> Any:
        try:
            return convert(part.strip())
        except (ValueError, OverflowError) as exc:
            raise CriterionError(f"{param}: cannot read {part.strip()!r}: {exc}") from None

    if ".." in text:
        lo, _, hi = text.partition("..")
        r = Range(conv(lo) if lo.strip() else None, conv(hi) if hi.strip() else None)
        if r.lo is not None and r.hi is not None and r.lo > r.hi:
            raise CriterionError(f"{param}: the range {text!r} is empty (lower bound above upper)")
        return r
    for op, make in ((">=", lambda v: Range(lo=v)), ("<=", lambda v: Range(hi=v)),
                     (">", lambda v: Range(lo=v, lo_inclusive=False)),
                     ("<", lambda v: Range(hi=v, hi_inclusive=False))):
        if text.startswith(op):
            return make(conv(text[len(op):]))
    if not text:
        raise CriterionError(f"{param}: empty value")
    value = conv(text)
    if isinstance(value, datetime) and _is_date_only(text):
        return Range(value, value + timedelta(days=1), True, False)
    return Range(value, value)


def parse_int(text: str) -> int:
    """An integer that fits the catalog's 32-bit columns."""
    value = int(text)
    if abs(value) > MAX_INT:
        raise ValueError(f"out of range (at most {MAX_INT} in magnitude)")
    return value


def parse_float(text: str) -> float:
    """A finite number."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("not a finite number")
    return value


def _is_date_only(text: str) -> bool:
    return re.fullmatch(r"\d{4}-\d{2}-\d{2}", text) is not None


def parse_time(text: str) -> datetime:
    """A time given as MJD (a number, as MAST's t_min/t_max) or ISO 8601 (UTC if no zone)."""
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(value) or not 0 < value < _MJD_LIMIT:
            raise ValueError("an MJD must be a number between 0 and 200000")
        return from_mjd(value)
    when = datetime.fromisoformat(text)
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    try:
        utc = when.astimezone(UTC)
    except OverflowError:
        raise ValueError("out of range") from None
    if not from_mjd(0.0) <= utc <= from_mjd(_MJD_LIMIT - 1):
        raise ValueError(f"out of range: times run from {from_mjd(0.0):%Y-%m-%d} to {from_mjd(_MJD_LIMIT - 1):%Y-%m-%d}")
    return when


def parse_instant(text: str, param: str) -> datetime:
    """One time (MJD or ISO 8601); CriterionError names ``param`` when unreadable."""
    try:
        return parse_time(text.strip())
    except (ValueError, OverflowError) as exc:
        raise CriterionError(f"{param}: cannot read {text.strip()!r} as MJD or ISO 8601: {exc}") from None


def id_filter(column: ColumnElement, ids: set[int] | None) -> ColumnElement[bool]:
    """``column IN ids``; an empty set matches nothing, None matches everything."""
    if ids is None:
        return true()
    if not ids:
        return false()
    return column.in_(sorted(ids))
