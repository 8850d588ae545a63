"""/references: what a reference context changes for archived exposures (public metadata).

``GET /references/{context}/impact`` lists the exposures the context would calibrate with
other reference files than their current products used, as recorded when it was
delivered (:mod:`shared.refdata.impact`); ``current`` stands for the newest context.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Response, status

from services.archive import mast
from services.archive.dependencies import DbSession
from services.archive.routers.common import PageParam, PageSizeParam, set_total
from services.archive.schemas import DEFAULT_PAGESIZE, ErrorOut, ImpactOut, Page
from shared.refdata import UnknownContextError, list_impact

__all__ = ["router"]

router = APIRouter(prefix="/references", tags=["references"])

_UNKNOWN = {404: {"model": ErrorOut, "description": "No such reference context."}}


@router.get("/{context}/impact", response_model=Page[ImpactOut], responses=_UNKNOWN,
            summary="Exposures a reference context would calibrate differently")
def impact(
    context: str,
    session: DbSession,
    response: Response,
    program: Annotated[list[str] | None, Query(
        description="Program numbers (repeat the parameter or separate with commas).")] = None,
    page: PageParam = 1,
    pagesize: PageSizeParam = DEFAULT_PAGESIZE,
) -> Page[ImpactOut]:
    """``context`` is ``dms_0002.ctx``, ``dms_0002``, ``2`` or ``current``. Rows are by
    program and exposure; ``program`` keeps those of the programs given."""
    try:
        rows = list_impact(session, None if context.strip().lower() == "current" else context)
    except UnknownContextError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(exc)) from None
    programs = {mast.normalize_program(p) for p in mast.parse_list(program, "program")}
    if programs:
        rows = [r for r in rows if r.program in programs]
    set_total(response, len(rows))
    shown = rows[(page - 1) * pagesize:page * pagesize]
    return Page[ImpactOut](total=len(rows), page=page, pagesize=pagesize, rows=[
        ImpactOut(context=r.context, parent=r.parent, program=r.program, exposure=r.exposure,
                  first_stage=r.first_stage, references=list(r.references), request_id=r.request_id,
                  created_at=r.created_at)
        for r in shown
    ])
