"""/caom/observations: the observation rows as MAST presents JWST (one per Level-3 product,
one per exposure and detector), one row, and its product list."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Response, status

from services.archive import mast
from services.archive.caom import (
    CaomCriteria,
    ProductListCriteria,
    caom_products,
    find_row,
    search_caom,
)
from services.archive.dependencies import BaseUrl, DbSession, Operator
from services.archive.routers.common import (
    IdsParam,
    IncludeSupersededParam,
    ListParam,
    PageParam,
    PageSizeParam,
    set_total,
)
from services.archive.schemas import DEFAULT_PAGESIZE, CaomObservationRow, CaomProductRow, Page

__all__ = ["router"]

router = APIRouter(prefix="/caom/observations", tags=["caom"])

_RANGE_HELP = "A number or 'lo..hi', 'lo..', '..hi', '>=x', '<x'."
_TIME_HELP = "MJD or ISO 8601 (UTC): 'lo..hi', 'lo..', '..hi', '>=x', '<x', or one date for that whole day."


@router.get("", response_model=Page[CaomObservationRow], summary="Search MAST's observation rows")
def search(
    session: DbSession,
    base: BaseUrl,
    response: Response,
    obs_id: Annotated[list[str] | None, Query(description=(
        "Row ids of either kind: a Level-3 product name (jw01234-o001_t001_nircam_clear-f200w) or an exposure "
        "on a detector (jw01234001001_02101_00001_nrca1); '*' wildcards; a '!' prefix excludes."))] = None,
    obsid: IdsParam = None,
    observation: Annotated[list[str] | None, Query(description=(
        "Rows of these program observations (jw01234001, or the obsid of /observations)."))] = None,
    program: ListParam = None,
    proposal_id: ListParam = None,
    instrument_name: ListParam = None,
    filters: ListParam = None,
    target_name: ListParam = None,
    dataproduct_type: ListParam = None,
    ra: Annotated[float | None, Query(ge=0.0, lt=360.0, description="Cone centre RA, degrees (ICRS).")] = None,
    dec: Annotated[float | None, Query(ge=-90.0, le=90.0, description="Cone centre Dec, degrees.")] = None,
    radius: Annotated[float, Query(gt=0.0, le=180.0, description="Cone radius, degrees.")] = 0.2,
    calib_level: Annotated[list[str] | None, Query(description="Levels: '3', '1,2', '>=2', '1..2'.")] = None,
    t_min: Annotated[str | None, Query(description=f"Start of the row's first exposure. {_TIME_HELP}")] = None,
    t_max: Annotated[str | None, Query(description=f"End of the row's last exposure. {_TIME_HELP}")] = None,
    t_obs_release: Annotated[str | None, Query(description=f"When its data are public. {_TIME_HELP}")] = None,
    dataRights: Annotated[str | None, Query(description="PUBLIC or EXCLUSIVE_ACCESS.")] = None,
    s_ra: Annotated[str | None, Query(description=f"Centre RA, degrees. {_RANGE_HELP}")] = None,
    s_dec: Annotated[str | None, Query(description=f"Centre Dec, degrees. {_RANGE_HELP}")] = None,
    t_exptime: Annotated[str | None, Query(description=f"Exposure time, s. {_RANGE_HELP}")] = None,
    em_min: Annotated[str | None, Query(description=f"Shortest wavelength, nm. {_RANGE_HELP}")] = None,
    em_max: Annotated[str | None, Query(description=f"Longest wavelength, nm. {_RANGE_HELP}")] = None,
    proposal_pi: Annotated[list[str] | None, Query(description="The program's PI; '*' wildcards.")] = None,
    obs_title: Annotated[list[str] | None, Query(description="The program's title; '*' wildcards.")] = None,
    page: PageParam = 1,
    pagesize: PageSizeParam = DEFAULT_PAGESIZE,
) -> Page[CaomObservationRow]:
    """Rows matching every criterion given (criteria are ANDed); a cone matches a row whose
    centre (s_ra, s_dec) lies within ``radius`` degrees of (``ra``, ``dec``)."""
    criteria = CaomCriteria(
        obsid=obsid or [], obs_id=mast.parse_list(obs_id, "obs_id"),
        observation=mast.parse_list(observation, "observation"),
        program=mast.parse_list(program, "program") + mast.parse_list(proposal_id, "proposal_id"),
        instrument_name=mast.parse_list(instrument_name, "instrument_name"), filters=mast.parse_list(filters, "filters"),
        target_name=mast.parse_list(target_name, "target_name"),
        dataproduct_type=mast.parse_list(dataproduct_type, "dataproduct_type"), ra=ra, dec=dec, radius=radius,
        calib_level=mast.parse_list(calib_level, "calib_level"), t_min=t_min, t_max=t_max,
        t_obs_release=t_obs_release, data_rights=dataRights, s_ra=s_ra, s_dec=s_dec, t_exptime=t_exptime,
        em_min=em_min, em_max=em_max, proposal_pi=mast.parse_list(proposal_pi, "proposal_pi"),
        obs_title=mast.parse_list(obs_title, "obs_title"),
    )
    total, rows = search_caom(session, criteria, page, pagesize, datetime.now(UTC), base)
    set_total(response, total)
    return Page[CaomObservationRow](total=total, page=page, pagesize=pagesize, rows=rows)


def _row(session, ident: str):
    row = find_row(session, ident)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=(
            f"no CAOM row {ident!r}: give its obsid (a number) or its obs_id, a Level-3 product name "
            "(jw01234-o001_t001_nircam_clear-f200w) or an exposure on a detector (jw01234001001_02101_00001_nrca1)"))
    return row


@router.get("/{row}", response_model=CaomObservationRow, summary="One of MAST's observation rows")
def get_row(row: str, session: DbSession, base: BaseUrl) -> CaomObservationRow:
    """By ``obsid`` or ``obs_id`` (either kind)."""
    found = _row(session, row)
    _, rows = search_caom(session, CaomCriteria(obsid=[found.id]), 1, 1, datetime.now(UTC), base)
    return CaomObservationRow(**rows[0])


@router.get("/{row}/products", response_model=Page[CaomProductRow], summary="A row's product list (MAST's)")
def row_products(
    row: str,
    session: DbSession,
    response: Response,
    operator: Operator,
    productType: ListParam = None,
    suffix: ListParam = None,
    productSubGroupDescription: ListParam = None,
    calib_level: Annotated[list[str] | None, Query(description="Levels: '3', '2,3', '>=2'.")] = None,
    filename: ListParam = None,
    dataRights: Annotated[str | None, Query(description="PUBLIC or EXCLUSIVE_ACCESS.")] = None,
    mrp_only: Annotated[bool, Query(description="Only the row's Minimum Recommended Products.")] = False,
    include_superseded: IncludeSupersededParam = False,
    page: PageParam = 1,
    pagesize: PageSizeParam = DEFAULT_PAGESIZE,
) -> Page[CaomProductRow]:
    """Its own files and, for a Level-3 row, those of the exposures it combines, each once,
    with the ``obsID``/``obs_id`` of the row each belongs to and ``parent_obsid`` this row's."""
    parent = _row(session, row)
    criteria = ProductListCriteria(
        product_type=mast.parse_list(productType, "productType"),
        suffix=mast.parse_list(suffix, "suffix") + mast.parse_list(productSubGroupDescription, "productSubGroupDescription"),
        calib_level=mast.parse_list(calib_level, "calib_level"), filename=mast.parse_list(filename, "filename"),
        data_rights=dataRights, mrp_only=mrp_only, include_superseded=include_superseded, unpublished=operator,
    )
    total, rows = caom_products(session, parent, criteria, page, pagesize, datetime.now(UTC))
    set_total(response, total)
    return Page[CaomProductRow](total=total, page=page, pagesize=pagesize, rows=rows)
