"""Simple Cone Search 1.03 over the ObsCore rows: every row whose centre (``s_ra``,
``s_dec``) lies within ``SR`` degrees of (``RA``, ``DEC``), ICRS, whatever its data
product type, in catalog order.

``VERB`` chooses the columns: 1 the identifier and position only (``obs_id``, ``s_ra``,
``s_dec``), 2 (the default) the principal ObsCore columns, 3 every ObsCore column. The
identifier and position columns carry the UCDs SCS 1.03 requires (``ID_MAIN``,
``POS_EQ_RA_MAIN``, ``POS_EQ_DEC_MAIN``, by which clients find them). ``SR`` is at most
:data:`MAX_SR` degrees; ``SR=0`` or ``MAXREC=0`` asks for the columns only (no rows).
``MAXREC`` (DALI) cuts the answer (``QUERY_STATUS`` OVERFLOW), :data:`MAX_MAXREC` at most.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session

from services.archive.caom import in_cone
from services.archive.vo.sia import (
    DEFAULT_MAXREC,
    ParameterError,
    parse_maxrec,
    parse_response_format,
    run_queries,
)
from services.archive.vo.votable import VOField, obscore_fields
from shared.catalog.obscore import COLUMNS, obscore_select

__all__ = ["MAX_SR", "ConeQuery", "parse_scs", "scs_fields", "scs_search"]

MAX_SR = 10.0  # degrees: the largest cone served

# SCS 1.03 UCDs (UCD1) of the columns a client must find
_SCS_UCDS = {"obs_id": "ID_MAIN", "s_ra": "POS_EQ_RA_MAIN", "s_dec": "POS_EQ_DEC_MAIN"}


@dataclass(frozen=True)
class ConeQuery:
    ra: float
    dec: float
    sr: float
    verb: int = 2
    maxrec: int = DEFAULT_MAXREC


def _one(params: Mapping[str, Sequence[str]], name: str, required: bool = True) -> str | None:
    values = params.get(name, ())
    if not values:
        if required:
            raise ParameterError(name, "missing; a cone search needs RA, DEC and SR (degrees)")
        return None
    if len(values) > 1:
        raise ParameterError(name, f"given {len(values)} times; give it once")
    return values[0].strip()


def _degrees(params: Mapping[str, Sequence[str]], name: str, lo: float, hi: float) -> float:
    text = _one(params, name)
    try:
        value = float(text)
    except ValueError:
        raise ParameterError(name, f"{text!r} is not a number (degrees)") from None
    if not math.isfinite(value):
        raise ParameterError(name, f"{text!r} is not a finite number")
    if not lo <= value <= hi:
        raise ParameterError(name, f"{value:g} is outside {lo:g}..{hi:g} degrees")
    return value


def parse_scs(params: Mapping[str, Sequence[str]]) -> ConeQuery:
    """The cone of a request's parameters (grouped by upper-cased name)."""
    parse_response_format(params.get("RESPONSEFORMAT", ()))
    ra = _degrees(params, "RA", 0.0, 360.0)
    dec = _degrees(params, "DEC", -90.0, 90.0)
    text = _one(params, "SR")
    try:
        sr = float(text)
    except ValueError:
        raise ParameterError("SR", f"{text!r} is not a number (degrees)") from None
    if not (math.isfinite(sr) and sr >= 0.0):
        raise ParameterError("SR", f"{text!r} is not a radius (0 or more degrees)")
    if sr > MAX_SR:
        raise ParameterError("SR", f"{sr:g} degrees is larger than the largest cone served, {MAX_SR:g} degrees")
    verb = _one(params, "VERB", required=False)
    if verb is not None and verb not in ("1", "2", "3"):
        raise ParameterError("VERB", f"{verb!r} is not 1, 2 or 3")
    return ConeQuery(ra, dec, sr, int(verb or 2), parse_maxrec(params.get("MAXREC", ())))


def _columns(verb: int) -> list[int]:
    if verb == 1:
        return [i for i, c in enumerate(COLUMNS) if c.name in _SCS_UCDS]
    if verb == 2:
        return [i for i, c in enumerate(COLUMNS) if c.principal]
    return list(range(len(COLUMNS)))


def scs_fields(verb: int) -> list[VOField]:
    """The FIELDs of a cone search answer at verbosity ``verb``."""
    fields = obscore_fields()
    return [dataclasses.replace(fields[i], ucd=_SCS_UCDS.get(fields[i].name, fields[i].ucd))
            for i in _columns(verb)]


def scs_search(session: Session, params: Mapping[str, Sequence[str]],
               base_url: str) -> tuple[list[VOField], list[tuple], bool]:
    """The FIELDs, the rows (tuples in field order) and whether MAXREC cut them short."""
    q = parse_scs(params)
    fields = scs_fields(q.verb)
    if q.sr == 0.0:
        return fields, [], False
    queries = [obscore_select().where(in_cone(q.ra, q.dec, q.sr))]
    rows, overflow = run_queries(session, queries, q.maxrec, base_url)
    keep = _columns(q.verb)
    return fields, [tuple(r[i] for i in keep) for r in rows], overflow
