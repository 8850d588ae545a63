"""Reference files as contributing products: the delivered calibration reference files
listed and served by the archive (public, like CRDS), and the exact files and context a
product was calibrated with, read from its provenance (``crds://<file>`` in
``Product.inputs``, ``Product.reference_context``).

* ``GET /references`` lists reference files: name, reftype, instrument, detector,
  USEAFTER, the contexts that hold it, sha256 and size; filtered by name, reftype,
  instrument, detector (files that apply to it), context and USEAFTER, paged.
* ``GET /references/{file}`` downloads one.
* A product's linkages list each reference it used as kind ``contributing``, and, for a
  product of an exposure, the wavefront-sensing OPD nearest in time to its start.
* ``GET /wavefront`` lists the wavefront-sensing OPD files (program-independent, public) by
  sensing time; ``date`` orders them by nearness to a time, ``t_min``/``t_max`` bound it;
  ``GET /wavefront/{file}`` downloads one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.archive import mast
from services.archive.mast import CriterionError
from services.archive.schemas import ContextLink, ContributingReference, ReferenceRow, WavefrontRow
from shared.catalog import (
    Exposure,
    Product,
    ReferenceContext,
    ReferenceContextFile,
    ReferenceFile,
    WavefrontOpd,
)
from shared.refdata import UnknownContextError, contexts_holding, used_references
from shared.refdata.contexts import resolve_context
from shared.refdata.rules import as_utc

__all__ = ["ReferenceCriteria", "WavefrontCriteria", "applies_to_detector", "contributing_references", "nearest_opd",
           "opd_file", "search_wavefront", "wavefront_uri", "reference_context_link", "reference_file",
           "reference_media_type", "reference_uri", "reference_url", "search_references"]

_ANY_DETECTOR = frozenset({"ANY", "GENERIC", "N/A", ""})


def reference_uri(filename: str) -> str:
    """``dms:JWST/reference/<filename>``, as :func:`mast.data_uri` for products."""
    return f"dms:{mast.MISSION}/reference/{filename}"


def reference_url(base_url: str, filename: str) -> str:
    return f"{base_url.rstrip('/')}/references/{filename}"


def reference_media_type(filename: str) -> str:
    """Reference files are FITS, ASDF or JSON (delivery checks the content; the name agrees)."""
    lower = filename.lower()
    if lower.endswith(".json"):
        return "application/json"
    return "application/asdf" if lower.endswith(".asdf") else "application/fits"


@dataclass(frozen=True)
class ReferenceCriteria:
    filename: list[str] = field(default_factory=list)
    reftype: list[str] = field(default_factory=list)
    instrument: list[str] = field(default_factory=list)
    detector: list[str] = field(default_factory=list)
    context: str | None = None  # a context name, or "current"
    useafter: str | None = None  # a time range, e.g. "2022-01-01..2023-01-01"


def _context_id(session: Session, name: str) -> int | None:
    """The id of the context named (``current``: the newest; None when none exists yet)."""
    try:
        row = resolve_context(session, None if name.strip().lower() == "current" else name)
    except UnknownContextError as exc:
        raise CriterionError(f"context: {exc}") from None
    return row.id if row is not None else None


def applies_to_detector(selectors: dict, patterns: Sequence[str]) -> bool:
    """Whether a file with these selectors applies to a detector matching ``patterns``: its
    DETECTOR selector (one alternative of ``A|B``) matches, or it applies to any detector
    (no DETECTOR selector, ANY, GENERIC or N/A)."""
    value = str(selectors.get("DETECTOR") or "").strip().upper()
    if value in _ANY_DETECTOR:
        return True
    alternatives = [a.strip() for a in value.split("|") if a.strip()]
    return any(mast.wildcard_match(a, [p.upper() for p in patterns]) for a in alternatives)


def search_references(session: Session, c: ReferenceCriteria, page: int, pagesize: int,
                      base_url: str) -> tuple[int, list[ReferenceRow]]:
    """One page of the reference files matching ``c``, by instrument, reftype, USEAFTER and
    name; the total over all pages."""
    query = select(ReferenceFile)
    conds = [
        mast.like_any(ReferenceFile.filename, c.filename),
        mast.like_any(ReferenceFile.reftype, [v.upper() for v in c.reftype]),
        mast.like_any(ReferenceFile.instrument, [v.upper() for v in c.instrument]),
    ]
    if c.useafter:
        wanted = mast.parse_range(c.useafter, mast.parse_time, "useafter")
        conds.append(wanted.condition(ReferenceFile.useafter))
    if c.context is not None:
        context_id = _context_id(session, c.context)
        if context_id is None:
            return 0, []
        query = query.join(ReferenceContextFile, ReferenceContextFile.reference_file_id == ReferenceFile.id) \
            .where(ReferenceContextFile.context_id == context_id)
    query = query.where(*(x for x in conds if x is not None)).order_by(
        ReferenceFile.instrument, ReferenceFile.reftype, ReferenceFile.useafter, ReferenceFile.filename)
    files = list(session.scalars(query))
    if c.detector:
        files = [f for f in files if applies_to_detector(dict(f.selectors or {}), c.detector)]
    shown = files[(page - 1) * pagesize:page * pagesize]
    contexts = contexts_holding(session, [f.id for f in shown])
    return len(files), [_row(f, contexts.get(f.id, []), base_url) for f in shown]


def _row(f: ReferenceFile, contexts: list[str], base_url: str) -> ReferenceRow:
    selectors = {k: str(v) for k, v in (f.selectors or {}).items()}
    return ReferenceRow(
        filename=f.filename, dataURI=reference_uri(f.filename), dataURL=reference_url(base_url, f.filename),
        reftype=f.reftype, instrument=f.instrument, detector=selectors.get("DETECTOR"), selectors=selectors,
        useafter=as_utc(f.useafter), pedigree=f.pedigree, description=f.description, contexts=contexts,
        sha256=f.sha256, size=f.size, content_type=reference_media_type(f.filename),
        delivered_date=as_utc(f.delivered_at) if f.delivered_at else None,
    )


def reference_file(session: Session, filename: str) -> ReferenceFile | None:
    """The delivered reference file of that name (names are unique and files immutable)."""
    return session.scalar(select(ReferenceFile).where(ReferenceFile.filename == filename))


def reference_context_link(session: Session, product: Product, base_url: str) -> ContextLink | None:
    """The context ``product`` was calibrated with, with the URL listing its files."""
    name = product.reference_context
    if not name:
        return None
    known = session.scalar(select(ReferenceContext.id).where(ReferenceContext.name == name)) is not None
    return ContextLink(name=name, filesURL=f"{base_url.rstrip('/')}/references?context={name}", known=known)


def contributing_references(session: Session, product: Product, base_url: str) -> list[ContributingReference]:
    """The reference files ``product`` was calibrated with, in the order its provenance
    names them, each with its download URL and whether its context holds it; then, for a
    product of an exposure, the wavefront-sensing OPD nearest in time to the exposure."""
    names = used_references(product.inputs)
    files = {f.filename: f for f in session.scalars(select(ReferenceFile).where(ReferenceFile.filename.in_(names)))} \
        if names else {}
    in_context: set[int] = set()
    if product.reference_context and files:
        in_context = set(session.scalars(
            select(ReferenceContextFile.reference_file_id)
            .join(ReferenceContext, ReferenceContext.id == ReferenceContextFile.context_id)
            .where(ReferenceContext.name == product.reference_context,
                   ReferenceContextFile.reference_file_id.in_([f.id for f in files.values()]))))
    out = []
    for name in names:
        f = files.get(name)
        out.append(ContributingReference(
            productFilename=name, reftype=f.reftype if f else None, dataURI=reference_uri(name),
            dataURL=reference_url(base_url, name) if f else None, sha256=f.sha256 if f else None,
            size=f.size if f else None, in_context=f is not None and f.id in in_context,
        ))
    opd = _exposure_opd(session, product, base_url)
    if opd is not None:
        out.append(opd)
    return out


# ------------------------------------------------------------------ wavefront collection


def wavefront_uri(filename: str) -> str:
    return f"dms:{mast.MISSION}/wavefront/{filename}"


@dataclass(frozen=True)
class WavefrontCriteria:
    date: str | None = None  # an instant: rows nearest first, with delta_days
    t_min: str | None = None  # a range of sensing times
    t_max: str | None = None
    apername: list[str] = field(default_factory=list)


def nearest_opd(session: Session, when: datetime) -> WavefrontOpd | None:
    """The OPD sensed nearest in time to ``when`` (the earlier one on a tie)."""
    before = session.scalar(select(WavefrontOpd).where(WavefrontOpd.date_obs <= when)
                            .order_by(WavefrontOpd.date_obs.desc()).limit(1))
    after = session.scalar(select(WavefrontOpd).where(WavefrontOpd.date_obs > when)
                           .order_by(WavefrontOpd.date_obs).limit(1))
    found = [o for o in (before, after) if o is not None]
    return min(found, key=lambda o: abs((as_utc(o.date_obs) - when).total_seconds())) if found else None


def _exposure_opd(session: Session, product: Product, base_url: str) -> ContributingReference | None:
    """The OPD nearest the start of the product's exposure (products of one exposure only)."""
    if product.exposure_id is None:
        return None
    start = session.scalar(select(Exposure.start_time).where(Exposure.id == product.exposure_id))
    if start is None:
        return None
    start = as_utc(start)
    opd = nearest_opd(session, start)
    if opd is None:
        return None
    return ContributingReference(
        productFilename=opd.filename, productType="WAVEFRONT", reftype="OPD", dataURI=wavefront_uri(opd.filename),
        dataURL=f"{base_url.rstrip('/')}/wavefront/{opd.filename}", sha256=opd.sha256, size=opd.size,
        in_context=False, delta_days=round((as_utc(opd.date_obs) - start).total_seconds() / 86400.0, 6),
    )


def search_wavefront(session: Session, c: WavefrontCriteria, page: int, pagesize: int,
                     base_url: str) -> tuple[int, list[WavefrontRow]]:
    """One page of the OPD files matching ``c`` (by sensing time, or nearest ``date`` first)."""
    conds = [mast.like_any(WavefrontOpd.aperture, [a.upper() for a in c.apername])]
    for value, param in ((c.t_min, "t_min"), (c.t_max, "t_max")):
        if value:
            conds.append(mast.parse_range(value, mast.parse_time, param).condition(WavefrontOpd.date_obs))
    rows = list(session.scalars(select(WavefrontOpd).where(*(x for x in conds if x is not None))
                                .order_by(WavefrontOpd.date_obs, WavefrontOpd.filename)))
    when = mast.aware(mast.parse_instant(c.date, "date")) if c.date else None
    if when is not None:
        rows.sort(key=lambda o: abs((as_utc(o.date_obs) - when).total_seconds()))
    shown = rows[(page - 1) * pagesize:page * pagesize]
    base = base_url.rstrip("/")
    return len(rows), [WavefrontRow(
        filename=o.filename, dataURI=wavefront_uri(o.filename), dataURL=f"{base}/wavefront/{o.filename}",
        date_obs=as_utc(o.date_obs), date_obs_mjd=mast.mjd(as_utc(o.date_obs)), apername=o.aperture,
        rms_nm=o.rms_nm, sha256=o.sha256, size=o.size,
        delta_days=round((as_utc(o.date_obs) - when).total_seconds() / 86400.0, 6) if when else None,
    ) for o in shown]


def opd_file(session: Session, filename: str) -> WavefrontOpd | None:
    return session.scalar(select(WavefrontOpd).where(WavefrontOpd.filename == filename))
