"""Catalog queries behind the search routes: observations (MAST's CAOM rows) and products
(MAST's product rows), with paging, the cone search and the Minimum Recommended Products.

Rules implemented here (and documented in docs/archive-api.md):

* **Cone search** — an observation matches when any of its exposures' reference pointing
  (RA_REF/DEC_REF of each detector, as archived) lies within ``radius`` degrees of
  (ra, dec); an observation with no archived exposure matches on its target position.
* **calib_level** of an observation — the highest level among its current products (an
  MSA metadata file, planning input, does not count); -1 when it has none yet (planned),
  and such observations are listed only on request.
* **Minimum Recommended Products** of an observation — its current SCIENCE products at the
  highest calibration level any of them reaches, plus its current association files
  (suffix ``asn``) at that same level (an ASN carries the level of the products it makes),
  and its current MSA metadata file (suffix ``msa``), which re-running a NIRSpec MOS
  observation needs. Previews, guide-star and other auxiliary files (the intermediates
  ``_crf`` and ``_segm`` among them), pre-images and superseded revisions never are.
* **Pre-images** — the products of an observation are listed with the current science
  products (Level 3 when it has them: the highest level reached) of each observation whose
  plan names it in ``pre_image_for``, as ``prerequisite`` (protected like any data).
* **Sort** of the observation search — :data:`OBSERVATION_SORT_COLUMNS`: each key in the
  order given, NULLs last whichever the direction, then ``Observation.id`` (so pages never
  overlap or skip); text in code-point order on either database (``instrument_name`` and
  ``filters`` ranked by their labels as the rows show them).
* **Linkages** — services/archive/linkages.py.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import (
    ColumnElement,
    Row,
    Select,
    and_,
    case,
    false,
    func,
    literal,
    or_,
    select,
)
from sqlalchemy.orm import Session

from services.archive import mast
from services.archive.contributing import contributing_references, reference_context_link
from services.archive.linkages import Walk, basename, derived, observation_linkage
from services.archive.mast import CriterionError, Range
from services.archive.schemas import (
    DeliveryAttemptOut,
    DeliveryOut,
    Linkages,
    ObservationRow,
    ProductDetail,
    ProductRow,
    Provenance,
    ProvenanceInput,
    RevisionOut,
)
from shared.access import data_is_public, published_revision, revision_state
from shared.catalog import (
    Artifact,
    ArtifactKind,
    Delivery,
    DeliveryAttempt,
    EventRecord,
    Exposure,
    Observation,
    Product,
    Program,
    sky,
)
from shared.changes import summary
from shared.instruments import UnknownInstrumentError, exposure_timing, subarray

__all__ = [
    "OBSERVATION_SORT_COLUMNS",
    "ObservationCriteria",
    "ProductCriteria",
    "SortKey",
    "basename",
    "calib_levels",
    "counted_page",
    "data_rights_condition",
    "parse_observation_sort",
    "product_detail",
    "product_linkages",
    "product_row",
    "product_select",
    "program_ids",
    "search_observations",
    "search_products",
    "subscription_deliveries",
]

# Longest exposure the t_max search allows for (JWST exposures last hours, never days).
_MAX_EXPOSURE_DURATION = timedelta(days=3)
_KIND_ORDER = {ArtifactKind.DATA: 0, ArtifactKind.PREVIEW: 1, ArtifactKind.THUMBNAIL: 2}


def counted_page(session: Session, query: Select, count: Select, page: int, pagesize: int) -> tuple[int, Sequence[Row]]:
    """Page ``page`` of ``query``'s rows (``pagesize`` a page) and how many rows it has in
    all: the page first, then ``count`` only when the page cannot tell (a full page, or an
    empty one after the first). Most searches fit in one page and run one statement; a
    deep field's cone or an archive-wide filter counts what it matched."""
    rows = session.execute(query.offset((page - 1) * pagesize).limit(pagesize)).all()
    if len(rows) < pagesize and (rows or page == 1):
        return (page - 1) * pagesize + len(rows), rows
    return session.scalar(count) or 0, rows


def calib_levels(values: Sequence[str], column: ColumnElement,
                 param: str = "calib_level") -> ColumnElement[bool] | None:
    """SQL condition: ``column`` matches one of the levels or ranges (``2``, ``2..3``, ``>=2``)."""
    if not values:
        return None
    return or_(*(mast.parse_range(v, mast.parse_int, param).condition(column) for v in values))


def _time_range(value: str | None, param: str) -> Range | None:
    return mast.parse_range(value, mast.parse_time, param) if value else None


def program_ids(values: Sequence[str]) -> list[str]:
    """The catalog's program ids (``01234``) of program numbers as a user writes them (``1234``)."""
    return [mast.normalize_program(v, "program") for v in values]


def _obs_ids(values: Sequence[str]) -> ColumnElement[bool] | None:
    if not values:
        return None
    pairs = []
    for v in values:
        parsed = mast.parse_obs_id(v)
        if parsed is None:
            raise CriterionError(f"obs_id: {v!r} is not jw<ppppp><ooo>, e.g. jw01234001")
        pairs.append(and_(Observation.program_id == parsed[0], Observation.number == parsed[1]))
    return or_(*pairs)


def data_rights_condition(value: str | None, release: ColumnElement, now: datetime) -> ColumnElement[bool] | None:
    """SQL condition of a ``dataRights`` criterion (PUBLIC or EXCLUSIVE_ACCESS) on the
    ``release`` date column, at ``now``."""
    if not value:
        return None
    v = value.strip().upper()
    if v == "PUBLIC":
        return release <= now
    if v in ("EXCLUSIVE_ACCESS", "EXCLUSIVE"):
        return release > now
    raise CriterionError(f"dataRights: {value!r} is neither PUBLIC nor EXCLUSIVE_ACCESS")


# ------------------------------------------------------------------ observations


@dataclass(frozen=True)
class SortKey:
    """One key of a sort: a column name, ascending unless ``descending``."""

    column: str
    descending: bool = False


OBSERVATION_SORT_COLUMNS = (
    "obsid", "obs_id", "proposal_id", "target_name", "s_ra", "s_dec", "instrument_name", "filters",
    "exp_type", "template", "proposal_pi", "obs_title", "calib_level", "t_min", "t_obs_release",
    "dataRights", "n_products",
)
"""The ObservationRow columns the observation search sorts on (in the catalog). ``t_max``
and ``t_exptime`` are not among them: they are computed from each exposure's readout
timing after the query, not held in the catalog."""

_NULLABLE_SORT_COLUMNS = frozenset({"s_ra", "s_dec", "t_min", "t_obs_release"})  # the others are never NULL


def parse_observation_sort(values: Sequence[str] | str | None) -> tuple[SortKey, ...]:
    """The ``sort`` parameter: column names (:data:`OBSERVATION_SORT_COLUMNS`), comma-separated
    or repeated, each ascending or, with a ``-`` prefix, descending."""
    keys: list[SortKey] = []
    for value in mast.parse_list(values, "sort"):
        descending = value.startswith("-")
        name = value[1:].strip() if descending else value
        if name not in OBSERVATION_SORT_COLUMNS:
            raise CriterionError(f"sort: {value!r} is not a column to sort on; use {', '.join(OBSERVATION_SORT_COLUMNS)} "
                                 "(a '-' prefix sorts descending)")
        if any(k.column == name for k in keys):
            raise CriterionError(f"sort: {name} is named more than once")
        keys.append(SortKey(name, descending))
    return tuple(keys)


@dataclass(frozen=True)
class ObservationCriteria:
    obsid: list[int] = field(default_factory=list)
    obs_id: list[str] = field(default_factory=list)
    program: list[str] = field(default_factory=list)
    instrument_name: list[str] = field(default_factory=list)
    filters: list[str] = field(default_factory=list)
    target_name: list[str] = field(default_factory=list)
    ra: float | None = None
    dec: float | None = None
    radius: float = 0.2
    calib_level: list[str] = field(default_factory=list)
    t_min: str | None = None
    t_max: str | None = None
    t_obs_release: str | None = None
    data_rights: str | None = None
    include_planned: bool = False
    sort: tuple[SortKey, ...] = ()  # parse_observation_sort; empty: by catalog id


def in_cone(ra: float, dec: float, radius: float) -> ColumnElement[bool]:
    """Observations with an exposure pointing (or, lacking pointed exposures, the target) in the cone."""
    pointed = select(Exposure.observation_id).where(Exposure.observation_id == Observation.id, Exposure.ra.is_not(None))
    return or_(
        Observation.id.in_(select(Exposure.observation_id).where(
            sky.in_cone(Exposure.hpx, Exposure.ra, Exposure.dec, ra, dec, radius))),
        and_(sky.in_cone(Observation.target_hpx, Observation.target_ra, Observation.target_dec, ra, dec, radius),
             ~pointed.exists()))


def _instrument_pairs(session: Session, patterns: Sequence[str]) -> ColumnElement[bool]:
    """Observations whose INSTRUMENT/MODE matches; a value without '/' names the instrument."""
    pairs = session.execute(select(Observation.instrument, Observation.exp_type).distinct()).all()

    def matches(instrument: str, exp_type: str, pattern: str) -> bool:
        name = mast.instrument_name(instrument, exp_type)
        target = name if "/" in pattern else name.split("/", 1)[0]
        return mast.wildcard_match(target, [pattern])

    keep = []
    positives = [p for p in patterns if not p.startswith("!")]
    negatives = [p[1:] for p in patterns if p.startswith("!")]
    for instrument, exp_type in pairs:
        ok = not positives or any(matches(instrument, exp_type, p) for p in positives)
        if ok and not any(matches(instrument, exp_type, p) for p in negatives):
            keep.append(and_(Observation.instrument == instrument, Observation.exp_type == exp_type))
    return or_(*keep) if keep else false()


@dataclass(frozen=True)
class _ExposureTimes:
    t_min: datetime | None
    t_max: datetime | None
    t_exptime: float | None


def _exposure_times(session: Session, ids: Sequence[int]) -> dict[int, _ExposureTimes]:
    """Start, end and summed effective exposure time of each observation's exposures.
    Detectors read out together count once (one exposure, several files)."""
    if not ids:
        return {}
    rows = session.execute(  # the columns used, not whole rows: a page may hold thousands of exposures
        select(Exposure.observation_id, Exposure.start_time, Exposure.subarray, Exposure.readpatt, Exposure.ngroups,
               Exposure.nints, Exposure.visit, Exposure.visit_group, Exposure.sequence, Exposure.activity,
               Exposure.exposure, Observation.instrument)
        .join(Observation, Observation.id == Exposure.observation_id)
        .where(Exposure.observation_id.in_(list(ids)))
    ).all()
    starts: dict[int, list[datetime]] = defaultdict(list)
    ends: dict[int, list[datetime]] = defaultdict(list)
    exptime: dict[int, dict[tuple, float]] = defaultdict(dict)
    unknown: set[int] = set()
    timings: dict[tuple, object] = {}  # the exposures of an observation mostly share one readout
    for e in rows:
        oid, instrument = e.observation_id, e.instrument
        start = mast.aware(e.start_time)
        readout = (instrument, e.subarray, e.readpatt, e.ngroups, e.nints)
        if readout not in timings:
            try:
                timings[readout] = exposure_timing(instrument, subarray(instrument, e.subarray), e.readpatt,
                                                   e.ngroups, e.nints)
            except UnknownInstrumentError:
                timings[readout] = None
        timing = timings[readout]
        if timing is None:
            unknown.add(oid)
        if start is not None:
            starts[oid].append(start)
            ends[oid].append(start + timedelta(seconds=timing.duration if timing else 0.0))
        if timing is not None:
            key = (e.visit, e.visit_group, e.sequence, e.activity, e.exposure)
            exptime[oid][key] = max(exptime[oid].get(key, 0.0), timing.effexptm)
    out = {}
    for oid in ids:
        t = exptime.get(oid)
        out[oid] = _ExposureTimes(
            min(starts[oid]) if starts.get(oid) else None,
            max(ends[oid]) if ends.get(oid) else None,
            round(sum(t.values()), 6) if t and oid not in unknown else None,
        )
    return out


def _started_within(lo: datetime | None, hi: datetime | None):
    """Observations with an exposure starting within [lo, hi] (None: open), through the
    index of exposure start times."""
    query = select(Exposure.observation_id).distinct()
    if lo is not None:
        query = query.where(Exposure.start_time >= lo)
    if hi is not None:
        query = query.where(Exposure.start_time <= hi)
    return query


def _t_max_ids(session: Session, wanted: Range) -> set[int]:
    """Observations whose last exposure ends within ``wanted`` (exact, computed from timing).
    Only an observation with an exposure starting in [lo - longest exposure, hi] can."""
    last = func.max(Exposure.start_time)
    lo = wanted.lo - _MAX_EXPOSURE_DURATION if wanted.lo is not None else None
    query = (select(Exposure.observation_id).where(Exposure.observation_id.in_(_started_within(lo, wanted.hi)))
             .group_by(Exposure.observation_id))
    if lo is not None:
        query = query.having(last >= lo)
    if wanted.hi is not None:
        query = query.having(last <= wanted.hi)
    candidates = list(session.scalars(query))
    times = _exposure_times(session, candidates)
    return {oid for oid, t in times.items() if wanted.contains(t.t_max)}


def _t_min_condition(wanted: Range) -> ColumnElement[bool]:
    """The first exposure of the observation starts within ``wanted``: among the
    observations with an exposure starting there, those with none before."""
    first = func.min(Exposure.start_time)
    starts = (select(Exposure.observation_id).where(Exposure.observation_id.in_(_started_within(wanted.lo, wanted.hi)))
              .group_by(Exposure.observation_id).having(wanted.condition(first)))
    return Observation.id.in_(starts)


def search_observations(
    session: Session, c: ObservationCriteria, page: int, pagesize: int, now: datetime, base_url: str
) -> tuple[int, list[ObservationRow]]:
    # an observation's summary of its current products (shared.catalog.summary): the MSA
    # metadata file is planning input, an observation with nothing else is still planned
    level = func.coalesce(Observation.current_level, -1)
    release = Observation.current_release
    conds: list[ColumnElement[bool] | None] = []
    if c.obsid:
        conds.append(Observation.id.in_(c.obsid))
    conds.append(_obs_ids(c.obs_id))
    if c.program:
        conds.append(Observation.program_id.in_(program_ids(c.program)))
    if c.instrument_name:
        conds.append(_instrument_pairs(session, c.instrument_name))
    conds.append(mast.like_any([Observation.filter, Observation.pupil], c.filters))
    conds.append(mast.like_any(Observation.target_name, c.target_name))
    if (c.ra is None) != (c.dec is None):
        raise CriterionError("a cone search needs both ra and dec (degrees), and optionally radius")
    if c.ra is not None:
        conds.append(in_cone(c.ra, c.dec, c.radius))
    conds.append(calib_levels(c.calib_level, level))
    if (r := _time_range(c.t_min, "t_min")) is not None:
        conds.append(_t_min_condition(r))
    if (r := _time_range(c.t_max, "t_max")) is not None:
        conds.append(mast.id_filter(Observation.id, _t_max_ids(session, r)))
    if (r := _time_range(c.t_obs_release, "t_obs_release")) is not None:
        conds.append(r.condition(release))
    conds.append(data_rights_condition(c.data_rights, release, now))
    if not c.include_planned and not c.calib_level:  # a calib_level criterion decides for itself
        conds.append(Observation.current_level.is_not(None))
    where = [x for x in conds if x is not None]

    base = (
        select(Observation, Program, level.label("calib_level"), release, Observation.current_products)
        .join(Program, Program.id == Observation.program_id)
        .where(*where)
    )
    order = _observation_order(session, c.sort, level, release, now)
    total, rows = counted_page(session, base.order_by(*order), base.with_only_columns(
        func.count(Observation.id)), page, pagesize)
    ids = [obs.id for obs, *_ in rows]
    times = _exposure_times(session, ids)
    links = _top_links(session, ids, base_url)
    out = []
    for obs, program, calib_level, release, n in rows:
        t = times.get(obs.id, _ExposureTimes(None, None, None))
        release = mast.aware(release)
        public = release <= now if release is not None else program.eap_months == 0
        jpeg, data = links.get(obs.id, (None, None))
        out.append(ObservationRow(
            obsid=obs.id, obs_id=mast.obs_id(obs.program_id, obs.number),
            instrument_name=mast.instrument_name(obs.instrument, obs.exp_type),
            filters=mast.filters_label(obs.filter, obs.pupil), exp_type=obs.exp_type, template=obs.template,
            target_name=obs.target_name, s_ra=obs.target_ra, s_dec=obs.target_dec,
            proposal_id=mast.proposal_id(obs.program_id), proposal_pi=program.pi_name, obs_title=program.title,
            calib_level=calib_level, t_min=mast.mjd(t.t_min), t_max=mast.mjd(t.t_max), t_exptime=t.t_exptime,
            dataproduct_type=mast.dataproduct_type(obs.exp_type, obs.tsovisit),
            dataRights=mast.data_rights(public),
            t_obs_release=mast.mjd(release), jpegURL=jpeg, dataURL=data, n_products=n or 0,
        ))
    return total, out


def _ranked(pairs: Sequence[tuple], columns: Sequence[ColumnElement], label) -> ColumnElement[int]:
    """The rank, in the code-point order of ``label(*pair)``, of each row's value pair of
    ``columns`` (``pairs``: the distinct pairs in the catalog)."""
    ranks = {label_: i for i, label_ in enumerate(sorted({label(*p) for p in pairs}))}
    whens = [(and_(*(col.is_(None) if v is None else col == v for col, v in zip(columns, p, strict=True))),
              ranks[label(*p)]) for p in pairs]
    return case(*whens, else_=len(ranks)) if whens else literal(0)


def _observation_order(session: Session, keys: Sequence[SortKey], level: ColumnElement,
                       release: ColumnElement, now: datetime) -> list[ColumnElement]:
    """ORDER BY of the observation search: each key (NULLs last either way), then the catalog id."""
    if not keys:
        return [Observation.id]
    binary = "C" if session.get_bind().dialect.name == "postgresql" else "BINARY"

    def codepoints(column: ColumnElement) -> ColumnElement:
        return column.collate(binary)  # code points, as on SQLite, whatever the database's collation

    def expressions(name: str) -> list[ColumnElement]:
        if name == "obs_id":
            return [Observation.program_id, Observation.number]
        if name == "instrument_name":
            pairs = session.execute(select(Observation.instrument, Observation.exp_type).distinct()).all()
            return [_ranked(pairs, [Observation.instrument, Observation.exp_type], mast.instrument_name)]
        if name == "filters":
            pairs = session.execute(select(Observation.filter, Observation.pupil).distinct()).all()
            return [_ranked(pairs, [Observation.filter, Observation.pupil], mast.filters_label)]
        if name == "t_min":
            return [select(func.min(Exposure.start_time)).where(Exposure.observation_id == Observation.id)
                    .scalar_subquery()]
        if name == "dataRights":  # EXCLUSIVE_ACCESS before PUBLIC, as the words sort
            public = case((release.is_not(None), case((release <= now, 1), else_=0)),
                          (Program.eap_months == 0, 1), else_=0)
            return [public]
        simple = {
            "obsid": Observation.id, "proposal_id": Observation.program_id,  # zero-padded: numeric order
            "target_name": codepoints(Observation.target_name), "s_ra": Observation.target_ra,
            "s_dec": Observation.target_dec, "exp_type": codepoints(Observation.exp_type),
            "template": codepoints(Observation.template), "proposal_pi": codepoints(Program.pi_name),
            "obs_title": codepoints(Program.title), "calib_level": level, "t_obs_release": release,
            "n_products": Observation.current_products,
        }
        return [simple[name]]

    order: list[ColumnElement] = []
    for key in keys:
        for expr in expressions(key.column):
            if key.column in _NULLABLE_SORT_COLUMNS:
                order.append(case((expr.is_(None), 1), else_=0))  # NULLs last, in both directions
            order.append(expr.desc() if key.descending else expr.asc())
    order.append(Observation.id)
    return order


def _top_links(session: Session, ids: Sequence[int], base_url: str) -> dict[int, tuple[str | None, str | None]]:
    """(jpegURL, dataURL) of each observation: its highest-level current science product
    (a FITS file first: the image or spectrum rather than its catalog)."""
    if not ids:
        return {}
    has_preview = select(Artifact.id).where(Artifact.product_id == Product.id,
                                            Artifact.kind == ArtifactKind.PREVIEW).exists()
    products = session.execute(  # names and a flag, not whole rows: a page may hold hundreds
        select(Product.observation_id, Product.filename, has_preview)
        .join(Observation, Observation.id == Product.observation_id)
        .where(Product.observation_id.in_(list(ids)), Product.is_current, Product.level == Observation.mrp_level,
               _is_science(), Product.suffix != "asn")
    ).all()
    base = base_url.rstrip("/")
    out: dict[int, tuple[str | None, str | None]] = {}
    for oid, filename, preview in sorted(products, key=lambda p: (p[0], not p[1].endswith(".fits"), p[1])):
        jpeg, data = out.get(oid, (None, None))
        if data is None:
            data = f"{base}/download/{filename}"
        if jpeg is None and preview:
            jpeg = f"{base}/previews/{filename}"
        out[oid] = (jpeg, data)
    return out


# ------------------------------------------------------------------ products


def _is_science() -> ColumnElement[bool]:
    return func.upper(Product.product_type) == "SCIENCE"


@dataclass(frozen=True)
class ProductCriteria:
    obsid: list[int] = field(default_factory=list)
    obs_id: list[str] = field(default_factory=list)
    program: list[str] = field(default_factory=list)
    product_type: list[str] = field(default_factory=list)
    suffix: list[str] = field(default_factory=list)
    calib_level: list[str] = field(default_factory=list)
    filename: list[str] = field(default_factory=list)
    data_rights: str | None = None
    mrp_only: bool = False
    include_superseded: bool = False
    unpublished: bool = False  # with include_superseded: also staged and abandoned revisions (operators)


def product_select(extra: Sequence[ColumnElement[bool]] = ()):
    """The product search's statement (each product revision with its artifacts, the
    observation number, whether it is an MRP and whether its program is embargoed; rows for
    :func:`product_row`), the MRP condition and the productType expression."""
    # the MRP level of each observation: the highest level of its current science products
    # (Observation.mrp_level, kept by shared.catalog.summary)
    is_mrp = and_(
        Artifact.kind == ArtifactKind.DATA, Product.is_current,
        or_(and_(Product.level == Observation.mrp_level, or_(and_(_is_science(), Product.suffix != "asn"),
                                                 Product.suffix == "asn")),
            and_(Product.suffix == "msa", Product.observation_id.is_not(None))),
    )
    ptype = case((Artifact.kind == ArtifactKind.DATA, func.upper(Product.product_type)), else_=literal("PREVIEW"))
    kind_order = case(*((Artifact.kind == k, v) for k, v in _KIND_ORDER.items()), else_=9)
    query = (
        select(Product, Artifact, Observation.number, is_mrp.label("mrp"), Program.embargoed)
        .join(Artifact, Artifact.product_id == Product.id)
        .outerjoin(Observation, Observation.id == Product.observation_id)
        .outerjoin(Program, Program.id == Product.program_id)
        .where(*extra)
        .order_by(Product.filename, Product.revision.desc(), kind_order, Artifact.id)
    )
    return query, is_mrp, ptype


def product_row(product: Product, artifact: Artifact, number: int | None, mrp: bool | None,
                now: datetime, embargoed: bool = False, prerequisite: bool = False) -> ProductRow:
    """The product row of one artifact of a product revision."""
    data = artifact.kind == ArtifactKind.DATA
    return ProductRow(
        obsID=product.observation_id, obs_id=mast.obs_id(product.program_id, number),
        proposal_id=mast.proposal_id(product.program_id),
        productFilename=product.filename if data else basename(artifact.uri),
        dataURI=mast.data_uri(product.filename if data else basename(artifact.uri)),
        productType=product.product_type.upper() if data else "PREVIEW",
        productSubGroupDescription=product.suffix.upper(),
        productGroupDescription=mast.MRP_LABEL if mrp and not prerequisite else None,
        linkage="prerequisite" if prerequisite else observation_linkage(product),
        calib_level=product.level, size=artifact.size, sha256=artifact.sha256,
        content_type=artifact.content_type, revision=product.revision, is_current=product.is_current,
        superseded_date=mast.aware(product.superseded_at),
        dataRights=mast.data_rights(data_is_public(product, now) and not embargoed), prvversion=product.software_version,
        crds_context=product.reference_context, archived_date=mast.aware(product.archived_at),
        public_release_date=mast.aware(product.data_release),
    )


def _product_rows(found: Sequence[Row], now: datetime, prerequisites: set[int] = frozenset()) -> list[ProductRow]:
    """Product rows of what :func:`product_select` found; the products in
    ``prerequisites`` (pre-images of the observations asked for) are linked as
    ``prerequisite`` and never MRP."""
    return [product_row(p, a, n, bool(m), now, bool(embargoed), p.id in prerequisites)
            for p, a, n, m, embargoed in found]


def _rows(session: Session, query, now: datetime) -> list[ProductRow]:
    return _product_rows(session.execute(query).all(), now)


def pre_image_observations(session: Session, observation_ids: Sequence[int]) -> set[int]:
    """Ids of the observations whose plan names one of ``observation_ids`` in ``pre_image_for``."""
    if not observation_ids:
        return set()
    wanted = session.execute(select(Observation.program_id, Observation.number)
                             .where(Observation.id.in_(list(observation_ids)))).all()
    numbers: dict[str, set[int]] = defaultdict(set)
    for program, number in wanted:
        numbers[program].add(number)
    found = set()
    for oid, program, pre_image_for in session.execute(
            select(Observation.id, Observation.program_id, Observation.pre_image_for)
            .where(Observation.program_id.in_(list(numbers)))):
        if set(pre_image_for or ()) & numbers[program]:
            found.add(oid)
    return found


def pre_image_products(session: Session, observation_ids: Sequence[int]) -> set[int]:
    """Ids of the pre-image products of ``observation_ids``: the current science products
    (no associations) of their pre-image observations at the highest level each reaches."""
    pre = pre_image_observations(session, observation_ids)
    if not pre:
        return set()
    return set(session.scalars(
        select(Product.id).join(Observation, Observation.id == Product.observation_id)
        .where(Product.observation_id.in_(sorted(pre)), Product.is_current, Product.level == Observation.mrp_level,
               _is_science(), Product.suffix != "asn")))


def search_products(
    session: Session, c: ProductCriteria, page: int, pagesize: int, now: datetime
) -> tuple[int, list[ProductRow]]:
    query, is_mrp, ptype = product_select()
    conds: list[ColumnElement[bool] | None] = []
    prerequisites: set[int] = set()
    if c.obsid or c.obs_id:
        # the observations asked for, and (unless only MRP are wanted) their pre-images' products
        chosen = select(Observation.id).where(*(x for x in (
            Observation.id.in_(c.obsid) if c.obsid else None, _obs_ids(c.obs_id)) if x is not None))
        observation_ids = list(session.scalars(chosen))
        if not c.mrp_only:
            prerequisites = pre_image_products(session, observation_ids)
        conds.append(or_(Product.observation_id.in_(observation_ids), Product.id.in_(sorted(prerequisites)))
                     if prerequisites else Product.observation_id.in_(observation_ids))
    if c.program:
        conds.append(Product.program_id.in_(program_ids(c.program)))
    conds.append(mast.like_any(ptype, [v.upper() for v in c.product_type]))
    conds.append(mast.like_any(Product.suffix, [v.lower() for v in c.suffix]))
    conds.append(calib_levels(c.calib_level, Product.level))
    conds.append(mast.like_any(Product.filename, c.filename))
    conds.append(data_rights_condition(c.data_rights, Product.data_release, now))
    if not c.include_superseded:
        conds.append(Product.is_current)
    elif not c.unpublished:
        conds.append(published_revision())
    if c.mrp_only:
        conds.append(is_mrp)
    query = query.where(*(x for x in conds if x is not None))
    total, found = counted_page(session, query, select(func.count()).select_from(
        query.with_only_columns(Artifact.id).order_by(None).subquery()), page, pagesize)
    return total, _product_rows(found, now, prerequisites)


# ------------------------------------------------------------------ one product


def product_detail(session: Session, filename: str, revision: int | None, now: datetime, *,
                   unpublished: bool = False, base_url: str = "") -> ProductDetail | None:
    """One product (its current revision, or ``revision``) with its previews, provenance,
    linkages and revisions. Revisions never published (staged or abandoned by a
    reprocessing request) are found and listed only with ``unpublished`` (operators).
    ``base_url`` starts the download URLs of the reference files it used."""
    where = [Product.filename == filename]
    where.append(Product.revision == revision if revision is not None else Product.is_current)
    shown = [] if unpublished else [published_revision()]
    where += shown
    product = session.scalar(select(Product).where(*where))
    if product is None:
        return None
    query, _, _ = product_select([Product.id == product.id])
    rows = _rows(session, query, now)
    main = next((r for r in rows if r.productType != "PREVIEW"), None)
    if main is None:
        return None
    previews = [r for r in rows if r.productType == "PREVIEW"]

    names = [basename(i) for i in product.inputs or ()]
    known = set(session.scalars(select(Product.filename).where(Product.filename.in_(names)).distinct())) if names else set()
    inputs = [ProvenanceInput(name=n, dataURI=mast.data_uri(n) if n in known else None, is_product=n in known)
              for n in names]

    asn_ids, output_ids = derived(session, product)

    def data_rows(ids: list[int]) -> list[ProductRow]:
        if not ids:
            return []
        q, _, _ = product_select([Product.id.in_(ids), Artifact.kind == ArtifactKind.DATA])
        return _rows(session, q, now)

    revisions = [
        RevisionOut(revision=p.revision, is_current=p.is_current, state=revision_state(p),
                    archived_date=mast.aware(p.archived_at), superseded_date=mast.aware(p.superseded_at),
                    sha256=a.sha256, size=a.size, prvversion=p.software_version, crds_context=p.reference_context,
                    reason=(p.reason or {}).get("reason"), changes=summary(p.changes) if p.changes else None)
        for p, a in session.execute(
            select(Product, Artifact).join(Artifact, Artifact.product_id == Product.id)
            .where(Product.filename == filename, Artifact.kind == ArtifactKind.DATA, *shown)
            .order_by(Product.revision.desc())
        ).all()
    ]
    return ProductDetail(
        product=main, previews=previews,
        provenance=Provenance(software_version=product.software_version,
                              reference_context=product.reference_context, inputs=inputs),
        linkages=_linkages(session, product, main, data_rows(asn_ids), data_rows(output_ids), base_url),
        revisions=revisions,
    )


def _linkages(session: Session, product: Product, row: ProductRow, associations: list[ProductRow],
              outputs: list[ProductRow], base_url: str) -> Linkages:
    walk = Walk(session)
    return Linkages(observation=row.obs_id, linkage=row.linkage, associations=associations, outputs=outputs,
                    antecedents=walk.tree(product, "antecedents"), children=walk.tree(product, "children"),
                    multiplicity=[walk.node("multiplicity", p) for p in walk.multiplicity(product)],
                    guiding=[walk.node("linked", p) for p in walk.guiding(product)],
                    prerequisite_of=_prerequisite_of(session, product),
                    reference_context=reference_context_link(session, product, base_url),
                    contributing=contributing_references(session, product, base_url))


def _prerequisite_of(session: Session, product: Product) -> list[str]:
    """obs_id of the observations whose products list ``product`` as a pre-image."""
    obs = session.get(Observation, product.observation_id) if product.observation_id is not None else None
    if obs is None or not obs.pre_image_for or product.id not in pre_image_products(session, _numbered(
            session, obs.program_id, obs.pre_image_for)):
        return []
    return [mast.obs_id(obs.program_id, n) for n in sorted(obs.pre_image_for)]


def _numbered(session: Session, program: str, numbers: Sequence[int]) -> list[int]:
    return list(session.scalars(select(Observation.id).where(Observation.program_id == program,
                                                             Observation.number.in_(list(numbers)))))


def product_linkages(session: Session, filename: str, revision: int | None, now: datetime, *,
                     unpublished: bool = False, base_url: str = "") -> Linkages | None:
    """The linkages of one product (as :func:`product_detail` gives them), or None."""
    detail = product_detail(session, filename, revision, now, unpublished=unpublished, base_url=base_url)
    return detail.linkages if detail is not None else None


# ------------------------------------------------------------------ a subscription's deliveries


def subscription_deliveries(session: Session, subscription_id: int, page: int,
                            pagesize: int) -> tuple[int, list[DeliveryOut]]:
    """Page ``page`` of a subscription's deliveries, newest first, each with its event's type
    and subject (when the event is still in the catalog) and the tries of the message that
    last carried it (its batch)."""
    query = (
        select(Delivery, EventRecord.type, EventRecord.subject)
        .outerjoin(EventRecord, EventRecord.id == Delivery.event_id)
        .where(Delivery.subscription_id == subscription_id)
        .order_by(Delivery.created_at.desc(), Delivery.id.desc())
    )
    count = select(func.count(Delivery.id)).where(Delivery.subscription_id == subscription_id)
    total, rows = counted_page(session, query, count, page, pagesize)
    batches = sorted({d.batch_id for d, *_ in rows if d.batch_id})
    tries: dict[str, list[DeliveryAttempt]] = defaultdict(list)
    if batches:
        for a in session.scalars(select(DeliveryAttempt).where(
                DeliveryAttempt.subscription_id == subscription_id, DeliveryAttempt.batch_id.in_(batches))
                .order_by(DeliveryAttempt.attempted_at, DeliveryAttempt.id)):
            tries[a.batch_id].append(a)
    out = []
    for d, event_type, subject in rows:
        log = [DeliveryAttemptOut(attempted_at=mast.aware(a.attempted_at), ok=a.ok, status_code=a.status_code,
                                  error=a.error, duration_seconds=a.duration_seconds)
               for a in tries.get(d.batch_id or "", ()) if d.event_id in (a.event_ids or ())]
        out.append(DeliveryOut(
            id=d.id, event_id=d.event_id, event_type=event_type, event_subject=subject,
            notification_type=d.notification_type, status=d.status, attempts=d.attempts,
            created_at=mast.aware(d.created_at), delivered_at=mast.aware(d.delivered_at), last_error=d.last_error,
            attempt_log=log,
        ))
    return total, out
