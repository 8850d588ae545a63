"""Best references for an exposure, with the reason a person can read.

Within one context, a candidate is a file of the exposure's instrument and the wanted type
whose every selector matches and whose USEAFTER is not after the exposure start. The
best candidate has the most exact matches, then the most pattern (``A|B``, glob) matches,
then the newest USEAFTER; a remaining tie goes to the file delivered last.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from astropy.io import fits
from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.catalog.models import Exposure, Product, ReferenceFile
from shared.instruments import subarray
from shared.refdata.contexts import context_members, resolve_context
from shared.refdata.errors import HeaderError
from shared.refdata.files import reference_header
from shared.refdata.rules import (
    REFTYPES,
    MatchKind,
    as_utc,
    exposure_start,
    format_time,
    match_value,
    normalize_header,
    parse_time,
    reference_selectors,
    selector_spec,
)

__all__ = [
    "Selection",
    "best_references",
    "best_filenames",
    "catalog_header",
    "explain",
    "exposure_header",
    "select_from_files",
]

_MAX_LISTED = 6

@dataclass(frozen=True)
class Selection:
    """The reference file chosen for one type (``filename`` None: none applies, and the
    step that needs it is skipped), with the reason and the context it came from."""

    reftype: str
    filename: str | None
    uri: str | None
    sha256: str | None
    useafter: datetime | None
    reason: str
    context: str | None

    @property
    def found(self) -> bool:
        return self.filename is not None


@dataclass(frozen=True)
class _Candidate:
    row: ReferenceFile
    matches: tuple[tuple[str, MatchKind, str], ...]  # (keyword, how, text for the reason)
    useafter: datetime

    def texts(self, kind: MatchKind) -> list[str]:
        return [text for _, how, text in self.matches if how is kind]

    def keywords(self, kind: MatchKind) -> set[str]:
        return {keyword for keyword, how, _ in self.matches if how is kind}

    @property
    def rank(self) -> tuple:
        return (len(self.keywords(MatchKind.EXACT)), len(self.keywords(MatchKind.PATTERN)), self.useafter,
                self.row.id)


def _assess(row: ReferenceFile, hdr: Mapping[str, str], start: datetime) -> _Candidate | str:
    """A candidate, or why the file does not apply."""
    matches = []
    for keyword, pat in row.selectors.items():
        value = hdr.get(keyword)
        kind = match_value(keyword, pat, value)
        if kind is None:
            if value is None:
                return f"{keyword} {pat} needs a value and the exposure has no {keyword}"
            return f"{keyword} {pat} does not match {value}"
        text = {MatchKind.EXACT: f"{keyword}={value}", MatchKind.PATTERN: f"{keyword}={value} via {pat}",
                MatchKind.WILDCARD: f"{keyword} via {pat}"}[kind]
        matches.append((keyword, kind, text))
    useafter = as_utc(row.useafter)
    if useafter > start:
        return f"USEAFTER {format_time(useafter)} is after the exposure start"
    return _Candidate(row, tuple(matches), useafter)


def _why_lost(loser: _Candidate, best: _Candidate) -> str:
    (n_exact, n_pattern), (best_exact, best_pattern) = loser.rank[:2], best.rank[:2]
    if n_exact < best_exact or n_pattern < best_pattern:
        looser = sorted((best.keywords(MatchKind.EXACT) | best.keywords(MatchKind.PATTERN))
                        - loser.keywords(MatchKind.EXACT) - loser.keywords(MatchKind.PATTERN))
        loose = [text for keyword, _, text in loser.matches if keyword in looser]
        return "less specific: " + ", ".join(loose or [f"{n_exact} exact matches against {best_exact}"])
    if loser.useafter < best.useafter:
        return f"older USEAFTER {format_time(loser.useafter)}"
    return "equally good, delivered earlier"


def _listing(items: list[str]) -> str:
    shown = items[:_MAX_LISTED]
    more = len(items) - len(shown)
    return "; ".join(shown) + (f"; and {more} more" if more else "")


def _select(reftype: str, rows: list[ReferenceFile], hdr: Mapping[str, str], start: datetime,
            context: str, instrument: str) -> Selection:
    rejected: list[str] = []
    candidates: list[_Candidate] = []
    for row in rows:
        assessed = _assess(row, hdr, start)
        if isinstance(assessed, str):
            rejected.append(f"{row.filename} ({assessed})")
        else:
            candidates.append(assessed)
    if not candidates:
        if not rows:
            reason = f"{context} has no {instrument} {reftype} reference file"
        else:
            reason = (f"no {instrument} {reftype} reference file in {context} applies to this exposure "
                      f"(start {format_time(start)}): {_listing(rejected)}")
        return Selection(reftype, None, None, None, None, reason, context)
    best = max(candidates, key=lambda c: c.rank)
    exact = best.texts(MatchKind.EXACT)
    matched = ([", ".join(exact) + " exactly"] if exact else []) + best.texts(MatchKind.PATTERN) \
        + best.texts(MatchKind.WILDCARD)
    reason = (f"{best.row.filename} matches {instrument} "
              + (", ".join(matched) if matched else "(no other selectors)")
              + f", and its USEAFTER {format_time(best.useafter)} is the newest not after the exposure start "
              f"{format_time(start)}")
    others = [f"{c.row.filename} ({_why_lost(c, best)})" for c in sorted(candidates, key=lambda c: c.rank,
                                                                            reverse=True) if c is not best]
    if others or rejected:
        reason += f"; not chosen: {_listing(others + rejected)}"
    r = best.row
    return Selection(reftype, r.filename, r.uri, r.sha256, best.useafter, reason, context)


def best_references(
    session: Session,
    header: Mapping[str, Any],
    reftypes: Iterable[str],
    context: str | int | None = None,
) -> dict[str, Selection]:
    """The best reference file of each type for an exposure.

    Parameters
    ----------
    session : Session
        Catalog session.
    header : mapping
        The exposure's keywords (a FITS header works): INSTRUME and DATE-OBS (+ TIME-OBS)
        are required; DETECTOR, READPATT, SUBARRAY, FILTER, PUPIL, EXP_TYPE, NOUTPUTS,
        BAND are used when a rule needs them.
    reftypes : iterable of str
        Reference types, any case (``mask``, ``DARK``); the result is keyed as given.
    context : str or int, optional
        ``dms_0003.ctx`` (or 3); None for the current context.

    Returns
    -------
    dict of str to Selection
        A Selection per type; ``filename`` None (with the reason) when nothing applies.

    Raises
    ------
    HeaderError
        When the header has no INSTRUME or no usable DATE-OBS.
    UnknownContextError
        When ``context`` does not exist.
    """
    hdr = normalize_header(header)
    instrument = hdr.get("INSTRUME")
    if instrument is None:
        raise HeaderError("the exposure header has no INSTRUME, so no reference can be selected")
    start = exposure_start(hdr)
    wanted = list(reftypes)
    ctx = resolve_context(session, context)
    if ctx is None:
        reason = "no reference context exists yet (no reference files have been delivered)"
        return {rt: Selection(rt.upper(), None, None, None, None, reason, None) for rt in wanted}
    rows = context_members(session, ctx, reftypes=wanted, instrument=instrument)
    return {
        rt: _select(rt.upper(), [r for r in rows if r.reftype == rt.upper()], hdr, start, ctx.name, instrument)
        for rt in wanted
    }


def best_filenames(
    rows: Iterable[ReferenceFile], headers: Mapping[Hashable, Mapping[str, Any]], reftypes: Iterable[str],
) -> dict[Hashable, dict[str, str | None]]:
    """The file :func:`best_references` would choose, by the same rules, for many
    exposures at once: {key: {reftype: file name, or None when nothing applies}}.

    ``rows`` are the files of one context (of every instrument and type wanted);
    ``headers`` the exposures' keywords by any key. Exposures with the same instrument
    and selector values share the matching work; only USEAFTER is compared per exposure.
    """
    wanted = [rt.upper() for rt in reftypes]
    by_type: dict[tuple[str, str], list[ReferenceFile]] = {}
    for row in rows:
        by_type.setdefault((row.instrument, row.reftype), []).append(row)
    never = datetime.max.replace(tzinfo=UTC)
    groups: dict[tuple, list[_Candidate]] = {}
    out: dict[Hashable, dict[str, str | None]] = {}
    for key, header in headers.items():
        hdr = normalize_header(header)
        instrument = hdr.get("INSTRUME")
        if instrument is None:
            raise HeaderError(f"{key}: the exposure header has no INSTRUME, so no reference can be selected")
        start = exposure_start(hdr)
        chosen: dict[str, str | None] = {}
        for reftype in wanted:
            spec = selector_spec(reftype, instrument)
            group = (instrument, reftype, tuple(hdr.get(k) for k in spec.all))
            if group not in groups:  # which files match, whatever the start
                assessed = (_assess(r, hdr, never) for r in by_type.get((instrument, reftype), ()))
                groups[group] = [c for c in assessed if not isinstance(c, str)]
            applicable = [c for c in groups[group] if c.useafter <= start]
            chosen[reftype] = max(applicable, key=lambda c: c.rank).row.filename if applicable else None
        out[key] = chosen
    return out


def exposure_header(session: Session, source: str | Path) -> dict[str, Any]:
    """The selection keywords of an exposure: from a FITS file's primary header when
    ``source`` is an existing file, otherwise from the catalog, where ``source`` is a
    product filename (e.g. ``..._uncal.fits``) or an exposure name."""
    path = Path(source)
    if path.is_file():
        header = fits.getheader(path, 0)
        return {k: v for k, v in header.items() if k and k not in ("COMMENT", "HISTORY")}
    name = str(source)
    exposure = session.scalar(select(Exposure).where(Exposure.name == name))
    if exposure is None:
        product = session.scalar(select(Product).where(Product.filename == name, Product.is_current))
        exposure = product.exposure if product is not None else None
    if exposure is None:
        raise HeaderError(f"{name} is neither a file nor a product or exposure in the catalog")
    if exposure.start_time is None:
        raise HeaderError(f"exposure {exposure.name} has no start time in the catalog")
    return catalog_header(exposure, exposure.observation.instrument)


def catalog_header(exposure: Exposure, instrument: str) -> dict[str, Any]:
    """The selection keywords of a catalog exposure (with a start time) of ``instrument``,
    as its ``_uncal`` header gives them (:func:`exposure_header` for one exposure;
    :mod:`shared.refdata.impact` for many, without a query each)."""
    # The file's DATE-OBS/TIME-OBS are the start rounded to the millisecond: round alike.
    start = as_utc(exposure.start_time) + timedelta(microseconds=500)
    header: dict[str, Any] = {
        "INSTRUME": instrument, "DETECTOR": exposure.detector, "EXP_TYPE": exposure.exp_type,
        "FILTER": exposure.filter, "PUPIL": exposure.pupil, "READPATT": exposure.readpatt,
        "SUBARRAY": exposure.subarray, "DATE-OBS": start.strftime("%Y-%m-%d"),
        "TIME-OBS": start.strftime("%H:%M:%S.%f")[:-3],
    }
    try:
        header["NOUTPUTS"] = subarray(instrument, exposure.subarray).noutputs
    except ValueError:
        pass  # an unknown subarray: rules that need NOUTPUTS will say so
    return header


def explain(session: Session, header: Mapping[str, Any], steps: Sequence[tuple[str, str, Sequence[str]]],
            context: str | int | None = None) -> str:
    """Which reference each step would use for this exposure, and why (printable text).

    ``steps`` are (pipeline, step, reference types) in run order, as the pipelines'
    declarations give them for this exposure.
    """
    hdr = normalize_header(header)
    instrument = hdr.get("INSTRUME")
    if instrument is None:
        raise HeaderError("the exposure header has no INSTRUME, so no reference can be selected")
    reftypes = list(dict.fromkeys(rt.upper() for _, _, types in steps for rt in types))
    selections = best_references(session, hdr, reftypes, context)
    shown = " ".join(f"{k}={hdr[k]}" for k in ("DETECTOR", "EXP_TYPE", "READPATT", "SUBARRAY", "NOUTPUTS",
                                               "FILTER", "PUPIL", "BAND") if k in hdr)
    any_sel = next(iter(selections.values()), None)
    lines = [
        f"exposure: {instrument} {shown} start {format_time(exposure_start(hdr))} UTC",
        f"context:  {any_sel.context if any_sel and any_sel.context else '(none)'}",
    ]
    first_step: dict[str, str] = {}
    pipeline = None
    for name, step, types in steps:
        if name != pipeline:
            lines.append(f"{name}:")
            pipeline = name
        for rt in (t.upper() for t in types):
            sel = selections[rt]
            lines.append(f"  {step:<18} {rt:<11} {sel.filename or 'N/A (step skipped)'}")
            lines.append(f"{'':<21}" + (f"as for {first_step[rt]}" if rt in first_step else sel.reason))
            first_step.setdefault(rt, f"{name} {step}")
    return "\n".join(lines)


def select_from_files(
    paths: Iterable[str | Path], header: Mapping[str, Any], reftypes: Iterable[str]
) -> dict[str, Selection]:
    """Choose among local reference files with the same rules as :func:`best_references`
    (for running a pipeline on one's own machine, with no catalog). Files that are not
    reference files (FITS or ASDF with REFTYPE, INSTRUME and USEAFTER) are ignored."""
    hdr = normalize_header(header)
    instrument = hdr.get("INSTRUME")
    if instrument is None:
        raise HeaderError("the exposure header has no INSTRUME, so no reference can be selected")
    start = exposure_start(hdr)
    rows: list[ReferenceFile] = []
    for number, path in enumerate(sorted(Path(p) for p in paths)):
        try:
            ref = normalize_header(reference_header(path))
            useafter = parse_time(ref["USEAFTER"])
            reftype = ref["REFTYPE"]
        except Exception:  # unreadable (astropy, asdf and yaml raise their own), or not a reference file
            continue
        if ref.get("INSTRUME") != instrument or reftype not in REFTYPES:
            continue
        rows.append(ReferenceFile(
            id=number, filename=path.name, reftype=reftype, instrument=instrument, useafter=useafter,
            selectors=reference_selectors(reftype, instrument, ref), uri=path.resolve().as_uri(),
            sha256=None, size=path.stat().st_size,
        ))
    return {
        rt: _select(rt.upper(), [r for r in rows if r.reftype == rt.upper()], hdr, start, "local files", instrument)
        for rt in reftypes
    }
