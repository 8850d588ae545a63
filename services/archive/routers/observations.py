"""/observations: search (one row per program observation, MAST field names), one observation, and its products."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status

from services.archive import mast, resolver
from services.archive.caom import caom_counts
from services.archive.dependencies import BaseUrl, DbSession, Operator
from services.archive.exports import EXPORT_RESPONSES, ExportDep, PagesParam
from services.archive.routers.common import (
    IdsParam,
    IncludeSupersededParam,
    ListParam,
    PageSizeParam,
)
from services.archive.schemas import DEFAULT_PAGESIZE, ObservationRow, Page, ProductRow
from services.archive.search import (
    OBSERVATION_SORT_COLUMNS,
    ObservationCriteria,
    ProductCriteria,
    parse_observation_sort,
    search_observations,
    search_products,
)

__all__ = ["router"]

router = APIRouter(prefix="/observations", tags=["observations"])

_TIME_HELP = "MJD or ISO 8601 (UTC): 'lo..hi', 'lo..', '..hi', '>=x', '<x', or one date for that whole day."


@router.get("", response_model=Page[ObservationRow], responses=EXPORT_RESPONSES, summary="Search observations")
def search(
    session: DbSession,
    export: ExportDep,
    program: ListParam = None,
    proposal_id: ListParam = None,
    obs_id: ListParam = None,
    obsid: IdsParam = None,
    instrument_name: ListParam = None,
    filters: ListParam = None,
    target_name: Annotated[list[str] | None, Query(description=(
        "Target names or aliases (the plans' aliases; a plain value also matches whatever the name "
        "resolves to, case, spaces and punctuation ignored); ORed; '*' wildcards; a '!' prefix excludes."))] = None,
    ra: Annotated[float | None, Query(ge=0.0, lt=360.0, description="Cone centre RA, degrees (ICRS).")] = None,
    dec: Annotated[float | None, Query(ge=-90.0, le=90.0, description="Cone centre Dec, degrees.")] = None,
    radius: Annotated[float, Query(gt=0.0, le=180.0, description="Cone radius, degrees.")] = 0.2,
    calib_level: Annotated[list[str] | None, Query(description="Levels: '3', '2,3', '>=2', '1..2'.")] = None,
    t_min: Annotated[str | None, Query(description=f"Start of the observation. {_TIME_HELP}")] = None,
    t_max: Annotated[str | None, Query(description=f"End of the observation. {_TIME_HELP}")] = None,
    t_obs_release: Annotated[str | None, Query(description=f"When its data are public. {_TIME_HELP}")] = None,
    dataRights: Annotated[str | None, Query(description="PUBLIC or EXCLUSIVE_ACCESS.")] = None,
    include_planned: Annotated[bool, Query(description="Also list observations with no product yet (calib_level -1).")] = False,
    sort: Annotated[list[str] | None, Query(description=(
        "Columns to sort on, in order, comma-separated; a '-' prefix sorts descending, e.g. '-t_min,obs_id'. "
        f"One of: {', '.join(OBSERVATION_SORT_COLUMNS)}. NULLs come last either way; ties (and no sort) "
        "go by obsid."))] = None,
    page: PagesParam = "1",
    pagesize: PageSizeParam = DEFAULT_PAGESIZE,
) -> Page[ObservationRow]:
    """Observations matching every criterion given (criteria are ANDed).

    Cone search: an observation matches when an exposure's pointing, or (with no exposure
    archived yet) its target, lies within ``radius`` degrees of (``ra``, ``dec``).
    """
    criteria = ObservationCriteria(
        obsid=obsid or [], obs_id=mast.parse_list(obs_id, "obs_id"),
        program=mast.parse_list(program, "program") + mast.parse_list(proposal_id, "proposal_id"),
        instrument_name=mast.parse_list(instrument_name, "instrument_name"), filters=mast.parse_list(filters, "filters"),
        target_name=resolver.expand_target_names(session, mast.parse_list(target_name, "target_name")), ra=ra, dec=dec, radius=radius,
        calib_level=mast.parse_list(calib_level, "calib_level"), t_min=t_min, t_max=t_max, t_obs_release=t_obs_release,
        data_rights=dataRights, include_planned=include_planned, sort=parse_observation_sort(sort),
    )
    now, base = datetime.now(UTC), export.base_url

    def fetch(s, number: int, size: int) -> tuple[int, list[ObservationRow]]:
        total, rows = search_observations(s, criteria, number, size, now, base)
        _name_caom_rows(s, rows, base)
        return total, rows

    return export.answer(ObservationRow, session, fetch, page, pagesize)


def observation_criteria(ident: str) -> ObservationCriteria:
    """Criteria selecting one observation by catalog id (``obsid``) or ``obs_id``."""
    ident = ident.strip()
    if ident.isdigit():
        if not 1 <= int(ident) <= mast.MAX_INT:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no observation {ident}")
        return ObservationCriteria(obsid=[int(ident)], include_planned=True)
    if mast.parse_obs_id(ident) is None:
        raise HTTPException(status.HTTP_400_BAD_REQUEST,
                            detail=f"{ident!r} is neither an obsid (number) nor an obs_id like jw01234001")
    return ObservationCriteria(obs_id=[ident], include_planned=True)


def _name_caom_rows(session, rows: list[ObservationRow], base_url: str) -> None:
    """Each observation names its CAOM rows (/caom/observations): how many, and where."""
    counts = caom_counts(session, [r.obsid for r in rows])
    for r in rows:
        r.n_caom_rows = counts.get(r.obsid, 0)
        r.caomURL = f"{base_url.rstrip('/')}/caom/observations?observation={r.obs_id}"


def _one(session, ident: str, base_url: str) -> ObservationRow:
    _, rows = search_observations(session, observation_criteria(ident), 1, 1, datetime.now(UTC), base_url)
    if not rows:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no observation {ident}")
    _name_caom_rows(session, rows, base_url)
    return rows[0]


@router.get("/{observation}", response_model=ObservationRow, summary="One observation")
def get_observation(observation: str, session: DbSession, base: BaseUrl) -> ObservationRow:
    """By ``obsid`` (catalog id) or ``obs_id`` (jw01234001)."""
    return _one(session, observation, base)


@router.get("/{observation}/products", response_model=Page[ProductRow], responses=EXPORT_RESPONSES,
            summary="Products of an observation")
def observation_products(
    observation: str,
    session: DbSession,
    export: ExportDep,
    operator: Operator,
    productType: ListParam = None,
    suffix: ListParam = None,
    productSubGroupDescription: ListParam = None,
    calib_level: Annotated[list[str] | None, Query(description="Levels: '3', '2,3', '>=2'.")] = None,
    filename: ListParam = None,
    mrp_only: Annotated[bool, Query(description="Only the Minimum Recommended Products.")] = False,
    include_superseded: IncludeSupersededParam = False,
    page: PagesParam = "1",
    pagesize: PageSizeParam = DEFAULT_PAGESIZE,
) -> Page[ProductRow]:
    """Same filters as ``GET /products``, for one observation (``obsid`` or ``obs_id``)."""
    obs = _one(session, observation, export.base_url)
    criteria = ProductCriteria(
        obsid=[obs.obsid], product_type=mast.parse_list(productType, "productType"),
        suffix=mast.parse_list(suffix, "suffix") + mast.parse_list(productSubGroupDescription, "productSubGroupDescription"),
        calib_level=mast.parse_list(calib_level, "calib_level"), filename=mast.parse_list(filename, "filename"),
        mrp_only=mrp_only, include_superseded=include_superseded, unpublished=operator,
    )
    now = datetime.now(UTC)
    return export.answer(ProductRow, session, lambda s, p, n: search_products(s, criteria, p, n, now), page,
                         pagesize)
