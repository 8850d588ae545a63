"""Queries behind /caom: the observation rows as MAST presents JWST (one per Level-3
product, one per exposure and detector; kept in the catalog by shared.catalog.caom) and the
product list of one row.

Rules (documented in docs/archive-api.md):

* **Criteria** are those of ``/observations`` where they apply, read from the rows' own
  columns: a cone matches a row whose s_ra/s_dec lies within ``radius``; ``obs_id`` names
  rows of either kind (wildcards allowed); ``observation`` selects the rows of a program
  observation (jw01234001), a mosaic of several observations being a row of each.
* **Product list** of a row: its own files and, for a Level-3 row, its members' files,
  each file once, with the ``obsID``/``obs_id`` of the row it belongs to and
  ``parent_obsid`` the row asked for (as MAST's get_product_list answers).
* **Minimum Recommended Products** of a row: the files of its own list at its calib_level
  that are current science products or associations (a Level-3 row: its Level-3 science
  products and the association that made them; an exposure row: its highest-level science
  files and its Level-2 association). Members' files, previews, guide-star and other
  auxiliary files never are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, String, cast, func, or_, select
from sqlalchemy.orm import Session

from services.archive import mast
from services.archive.mast import CriterionError
from services.archive.schemas import CaomProductRow
from services.archive.search import (
    calib_levels,
    counted_page,
    data_rights_condition,
    product_row,
    product_select,
    program_ids,
)
from shared.access import published_revision
from shared.catalog import (
    Artifact,
    ArtifactKind,
    CaomMember,
    CaomObservation,
    CaomObservationLink,
    CaomProduct,
    Observation,
    Product,
    Program,
    sky,
)

__all__ = ["CaomCriteria", "ProductListCriteria", "caom_counts", "caom_products", "find_row", "in_cone", "search_caom"]


@dataclass(frozen=True)
class CaomCriteria:
    obsid: list[int] = field(default_factory=list)
    obs_id: list[str] = field(default_factory=list)
    observation: list[str] = field(default_factory=list)
    program: list[str] = field(default_factory=list)
    instrument_name: list[str] = field(default_factory=list)
    filters: list[str] = field(default_factory=list)
    target_name: list[str] = field(default_factory=list)
    dataproduct_type: list[str] = field(default_factory=list)
    ra: float | None = None
    dec: float | None = None
    radius: float = 0.2
    calib_level: list[str] = field(default_factory=list)
    t_min: str | None = None
    t_max: str | None = None
    t_obs_release: str | None = None
    data_rights: str | None = None
    # numeric ranges ('lo..hi', '>=x'...) in the rows' units: degrees, seconds, nm
    s_ra: str | None = None
    s_dec: str | None = None
    t_exptime: str | None = None
    em_min: str | None = None
    em_max: str | None = None
    proposal_pi: list[str] = field(default_factory=list)
    obs_title: list[str] = field(default_factory=list)


def _instrument_patterns(values: Sequence[str]) -> list[str]:
    """A value without '/' names the instrument, in any mode (NIRCAM matches NIRCAM/IMAGE)."""
    out = []
    for v in values:
        out.append(v)
        if "/" not in v:
            out.append(v + "/*")
    return out


def _filter_patterns(values: Sequence[str]) -> list[str]:
    """A value matches one of the ';'-joined optical elements."""
    out = []
    for v in values:
        neg, bare = ("!", v[1:]) if v.startswith("!") else ("", v)
        out += [v, f"{neg}{bare};*", f"{neg}*;{bare}"]
    return out


def _observations(values: Sequence[str]) -> ColumnElement[bool]:
    """Rows linked to the program observations named (jw01234001, or an obsid number)."""
    conds = []
    for v in values:
        if v.isdigit():
            conds.append(CaomObservationLink.observation_id == mast.parse_int(v))
            continue
        parsed = mast.parse_obs_id(v)
        if parsed is None:
            raise CriterionError(f"observation: {v!r} is neither a program observation's obs_id (jw01234001) "
                                 "nor its obsid")
        conds.append(CaomObservationLink.observation_id.in_(select(Observation.id).where(
            Observation.program_id == parsed[0], Observation.number == parsed[1])))
    return CaomObservation.id.in_(select(CaomObservationLink.caom_id).where(or_(*conds)))


def in_cone(ra: float, dec: float, radius: float) -> ColumnElement[bool]:
    """The CAOM rows whose centre (s_ra, s_dec) lies within ``radius`` degrees of (ra, dec)."""
    row = CaomObservation
    return sky.in_cone(row.hpx, row.s_ra, row.s_dec, ra, dec, radius)


def _time(value: str | None, param: str, column) -> ColumnElement[bool] | None:
    return mast.parse_range(value, mast.parse_time, param).condition(column) if value else None


def _number(value: str | None, param: str, column) -> ColumnElement[bool] | None:
    return mast.parse_range(value, mast.parse_float, param).condition(column) if value else None


def search_caom(session: Session, c: CaomCriteria, page: int, pagesize: int, now: datetime, base_url: str, *,
                linkage: bool = True) -> tuple[int, list[dict[str, Any]]]:
    """One page of the rows matching every criterion, by obsid: each row's
    :class:`~services.archive.schemas.CaomObservationRow` fields (``n_members`` and
    ``observations`` only with ``linkage``: MAST's columns do not hold them)."""
    row = CaomObservation
    conds: list[ColumnElement[bool] | None] = []
    if c.obsid:
        conds.append(row.id.in_(c.obsid))
    conds.append(mast.like_any(row.obs_id, c.obs_id))
    if c.observation:
        conds.append(_observations(c.observation))
    if c.program:
        conds.append(row.program_id.in_(program_ids(c.program)))
    conds.append(mast.like_any(row.instrument_name, _instrument_patterns(c.instrument_name)))
    conds.append(mast.like_any(row.filters, _filter_patterns(c.filters)))
    conds.append(mast.like_any(row.target_name, c.target_name))
    conds.append(mast.like_any(row.dataproduct_type, c.dataproduct_type))
    if (c.ra is None) != (c.dec is None):
        raise CriterionError("a cone search needs both ra and dec (degrees), and optionally radius")
    if c.ra is not None:
        conds.append(in_cone(c.ra, c.dec, c.radius))
    conds.append(calib_levels(c.calib_level, row.calib_level))
    conds.append(_time(c.t_min, "t_min", row.t_min))
    conds.append(_time(c.t_max, "t_max", row.t_max))
    conds.append(_time(c.t_obs_release, "t_obs_release", row.t_obs_release))
    conds.append(data_rights_condition(c.data_rights, row.t_obs_release, now))
    for name in ("s_ra", "s_dec", "t_exptime", "em_min", "em_max"):
        conds.append(_number(getattr(c, name), name, getattr(row, name)))
    conds.append(mast.like_any(Program.pi_name, c.proposal_pi))
    conds.append(mast.like_any(Program.title, c.obs_title))
    base = select(*_ROW_COLUMNS, *(_LINKAGE if linkage else ())).join(Program, Program.id == row.program_id).where(
        *(x for x in conds if x is not None))
    total, found = counted_page(session, base.order_by(row.id), select(func.count()).select_from(
        base.with_only_columns(row.id).subquery()), page, pagesize)
    base_url = base_url.rstrip("/")
    # read by name from plain dicts: a SQLAlchemy row's attributes cost a third of a
    # microsecond each, a deep field's page of 5,000 rows 45 ms
    names = found[0]._fields if found else ()
    return total, [_values(dict(zip(names, r, strict=True)), now, base_url, linkage) for r in found]


# What a search row reads: the row's columns it shows, its program's, and per row (index lookups, no
# list of the page's ids): whether its top file has a preview; with linkage, its members and
# its observations.
_ROW_COLUMNS = (
    *(CaomObservation.__table__.c[name] for name in (
        "id", "obs_id", "program_id", "calib_level", "instrument_name", "filters", "target_name", "dataproduct_type",
        "s_ra", "s_dec", "s_region", "t_min", "t_max", "t_exptime", "em_min", "em_max", "t_obs_release",
        "top_filename", "n_products")),
    Program.pi_name, Program.title,
    select(Product.id).join(Artifact, Artifact.product_id == Product.id).where(
        Product.filename == CaomObservation.top_filename, Product.is_current,
        Artifact.kind == ArtifactKind.PREVIEW).exists().label("previewed"),
)
_LINKAGE = (
    select(func.count()).where(CaomMember.caom_id == CaomObservation.id).scalar_subquery().label("members"),
    select(func.aggregate_strings(Observation.program_id + ":" + cast(Observation.number, String), ","))
    .join(CaomObservationLink, CaomObservationLink.observation_id == Observation.id)
    .where(CaomObservationLink.caom_id == CaomObservation.id).scalar_subquery().label("linked"),
)


def _linked(text: str | None) -> list[str]:
    """The obs_ids of the program observations in ``program:number,...``, in order."""
    pairs = sorted((p, int(n)) for p, n in (item.split(":") for item in text.split(","))) if text else []
    return [mast.obs_id(p, n) for p, n in pairs]


def _values(r: dict[str, Any], now: datetime, base: str, linkage: bool) -> dict[str, Any]:
    release = mast.aware(r["t_obs_release"])
    top = r["top_filename"]
    values = {
        "obsid": r["id"], "obs_id": r["obs_id"], "obs_collection": mast.MISSION, "intentType": "science",
        "dataproduct_type": r["dataproduct_type"], "calib_level": r["calib_level"],
        "instrument_name": r["instrument_name"], "filters": r["filters"], "target_name": r["target_name"],
        "s_ra": r["s_ra"], "s_dec": r["s_dec"], "s_region": r["s_region"], "t_min": mast.mjd(r["t_min"]),
        "t_max": mast.mjd(r["t_max"]), "t_exptime": r["t_exptime"], "em_min": r["em_min"], "em_max": r["em_max"],
        "proposal_id": mast.proposal_id(r["program_id"]), "proposal_pi": r["pi_name"], "obs_title": r["title"],
        "dataRights": mast.data_rights(release is not None and release <= now), "t_obs_release": mast.mjd(release),
        "jpegURL": f"{base}/previews/{top}" if r["previewed"] else None,
        "dataURL": f"{base}/download/{top}" if top else None, "n_products": r["n_products"]}
    if linkage:
        values.update(n_members=r["members"], observations=_linked(r["linked"]))
    return values


def find_row(session: Session, ident: str) -> CaomObservation | None:
    """A row by obsid (a number) or obs_id (either kind)."""
    ident = ident.strip()
    if ident.isdigit():
        return session.get(CaomObservation, int(ident)) if 1 <= int(ident) <= mast.MAX_INT else None
    return session.scalar(select(CaomObservation).where(func.lower(CaomObservation.obs_id) == ident.lower()))


def caom_counts(session: Session, observation_ids: Sequence[int]) -> dict[int, int]:
    """How many CAOM rows each program observation has."""
    if not observation_ids:
        return {}
    return dict(session.execute(
        select(CaomObservationLink.observation_id, func.count())
        .where(CaomObservationLink.observation_id.in_(list(observation_ids)))
        .group_by(CaomObservationLink.observation_id)).all())


@dataclass(frozen=True)
class ProductListCriteria:
    product_type: list[str] = field(default_factory=list)
    suffix: list[str] = field(default_factory=list)
    calib_level: list[str] = field(default_factory=list)
    filename: list[str] = field(default_factory=list)
    data_rights: str | None = None
    mrp_only: bool = False
    include_superseded: bool = False
    unpublished: bool = False  # with include_superseded: also staged and abandoned revisions (operators)


def caom_products(session: Session, parent: CaomObservation, c: ProductListCriteria, page: int, pagesize: int,
                  now: datetime) -> tuple[int, list[CaomProductRow]]:
    """The product list of ``parent`` (see the module docstring), one page."""
    homes: dict[str, tuple[int, str]] = {}
    rows = [(parent.id, parent.obs_id)] + list(session.execute(
        select(CaomObservation.id, CaomObservation.obs_id).join(CaomMember, CaomMember.member_id == CaomObservation.id)
        .where(CaomMember.caom_id == parent.id).order_by(CaomObservation.obs_id)).all())
    for caom_id, obs_id in rows:
        for name in session.scalars(select(CaomProduct.filename).where(CaomProduct.caom_id == caom_id)
                                    .order_by(CaomProduct.filename)):
            homes.setdefault(name, (caom_id, obs_id))
    if not homes:
        return 0, []
    query, _, ptype = product_select()
    conds: list[ColumnElement[bool] | None] = [Product.filename.in_(sorted(homes))]
    conds.append(mast.like_any(ptype, [v.upper() for v in c.product_type]))
    conds.append(mast.like_any(Product.suffix, [v.lower() for v in c.suffix]))
    conds.append(calib_levels(c.calib_level, Product.level))
    conds.append(mast.like_any(Product.filename, c.filename))
    conds.append(data_rights_condition(c.data_rights, Product.data_release, now))
    if not c.include_superseded:
        conds.append(Product.is_current)
    elif not c.unpublished:
        conds.append(published_revision())
    found = session.execute(query.where(*(x for x in conds if x is not None))).all()
    out = []
    for product, artifact, number, _, embargoed in found:
        caom_id, obs_id = homes[product.filename]
        science = product.product_type.upper() == "SCIENCE" and product.suffix != "asn"
        mrp = (caom_id == parent.id and artifact.kind == ArtifactKind.DATA and product.is_current
               and product.level == parent.calib_level and (science or product.suffix == "asn"))
        if c.mrp_only and not mrp:
            continue
        base = product_row(product, artifact, number, mrp, now, bool(embargoed))
        out.append(CaomProductRow(**{**base.model_dump(), "obsID": caom_id, "obs_id": obs_id,
                                     "parent_obsid": parent.id}))
    return len(out), out[(page - 1) * pagesize: page * pagesize]
