"""/products: product rows across observations, and one product with its provenance and
linkages."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status

from services.archive import mast
from services.archive.dependencies import BaseUrl, DbSession, Operator
from services.archive.exports import EXPORT_RESPONSES, ExportDep, PagesParam
from services.archive.routers.common import (
    IdsParam,
    IncludeSupersededParam,
    ListParam,
    PageSizeParam,
    RevisionParam,
)
from services.archive.schemas import DEFAULT_PAGESIZE, Linkages, Page, ProductDetail, ProductRow
from services.archive.search import (
    ProductCriteria,
    product_detail,
    product_linkages,
    search_products,
)

__all__ = ["router"]

router = APIRouter(prefix="/products", tags=["products"])


@router.get("", response_model=Page[ProductRow], responses=EXPORT_RESPONSES, summary="Search products")
def search(
    session: DbSession,
    export: ExportDep,
    operator: Operator,
    obsid: IdsParam = None,
    obs_id: ListParam = None,
    program: ListParam = None,
    proposal_id: ListParam = None,
    productType: ListParam = None,
    suffix: ListParam = None,
    productSubGroupDescription: ListParam = None,
    calib_level: Annotated[list[str] | None, Query(description="Levels: '3', '2,3', '>=2'.")] = None,
    filename: ListParam = None,
    dataRights: Annotated[str | None, Query(description="PUBLIC or EXCLUSIVE_ACCESS.")] = None,
    mrp_only: Annotated[bool, Query(description="Only the Minimum Recommended Products.")] = False,
    include_superseded: IncludeSupersededParam = False,
    page: PagesParam = "1",
    pagesize: PageSizeParam = DEFAULT_PAGESIZE,
) -> Page[ProductRow]:
    """One row per file: each product's data file, and its previews as productType PREVIEW.

    Current revisions only unless ``include_superseded=true`` (earlier revisions too; those
    a reprocessing request staged or abandoned, for operators only). ``suffix`` and
    ``productSubGroupDescription`` are the same criterion (case-insensitive).
    """
    criteria = ProductCriteria(
        obsid=obsid or [], obs_id=mast.parse_list(obs_id, "obs_id"),
        program=mast.parse_list(program, "program") + mast.parse_list(proposal_id, "proposal_id"),
        product_type=mast.parse_list(productType, "productType"),
        suffix=mast.parse_list(suffix, "suffix") + mast.parse_list(productSubGroupDescription, "productSubGroupDescription"),
        calib_level=mast.parse_list(calib_level, "calib_level"), filename=mast.parse_list(filename, "filename"),
        data_rights=dataRights, mrp_only=mrp_only, include_superseded=include_superseded, unpublished=operator,
    )
    now = datetime.now(UTC)
    return export.answer(ProductRow, session, lambda s, p, n: search_products(s, criteria, p, n, now), page,
                         pagesize)


@router.get("/{filename}", response_model=ProductDetail, summary="One product: metadata, provenance, linkages")
def get_product(
    filename: str,
    session: DbSession,
    operator: Operator,
    base: BaseUrl,
    revision: RevisionParam = None,
) -> ProductDetail:
    """Metadata (public, even under exclusive access), the inputs it was made from, the
    associations that list it, the products made from it, and every revision of the name
    (revisions a reprocessing request staged or abandoned: operators only)."""
    detail = product_detail(session, filename, revision, datetime.now(UTC), unpublished=operator,
                            base_url=base)
    if detail is None:
        which = f"revision {revision} of " if revision is not None else ""
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no product {which}{filename}")
    return detail


@router.get("/{filename}/linkages", response_model=Linkages, summary="One product's linkages")
def get_linkages(
    filename: str,
    session: DbSession,
    operator: Operator,
    base: BaseUrl,
    revision: RevisionParam = None,
) -> Linkages:
    """How the product belongs to its observation, the associations that list it, and the
    trees of what it was made from (antecedents, down to the ``_uncal``, with the
    association that made each step) and of what was made from it (children), and the
    reference files and context it was calibrated with (contributing)."""
    linkages = product_linkages(session, filename, revision, datetime.now(UTC), unpublished=operator,
                                base_url=base)
    if linkages is None:
        which = f"revision {revision} of " if revision is not None else ""
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no product {which}{filename}")
    return linkages
