"""/references: the delivered reference files (contributing products, public) and what a
reference context changes for archived exposures (public metadata).

``GET /references`` lists reference files and ``GET /references/{file}`` downloads one
(:mod:`services.archive.contributing`). ``GET /references/{context}/impact`` lists the
exposures the context would calibrate with other reference files than their current
products used, as recorded when it was delivered (:mod:`shared.refdata.impact`);
``current`` stands for the newest context.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response, status

from services.archive import mast
from services.archive.contributing import (
    ReferenceCriteria,
    reference_file,
    reference_media_type,
    search_references,
)
from services.archive.dependencies import DbSession, StoreDep
from services.archive.exports import EXPORT_RESPONSES, ExportDep, PagesParam
from services.archive.files import StoredFile, serve_file
from services.archive.routers.common import ListParam, PageSizeParam
from services.archive.schemas import DEFAULT_PAGESIZE, ErrorOut, ImpactOut, Page, ReferenceRow
from shared.refdata import UnknownContextError, list_impact

__all__ = ["router"]

router = APIRouter(prefix="/references", tags=["references"])

_UNKNOWN = {404: {"model": ErrorOut, "description": "No such reference context."}}


@router.get("", response_model=Page[ReferenceRow], responses=EXPORT_RESPONSES,
            summary="Search reference files (contributing products)")
def search(
    session: DbSession,
    export: ExportDep,
    filename: ListParam = None,
    reftype: ListParam = None,
    instrument: ListParam = None,
    detector: Annotated[list[str] | None, Query(description=(
        "Detectors (e.g. NRCA1): files whose DETECTOR selector names one, and files that apply to any "
        "detector (no DETECTOR selector, ANY, GENERIC, N/A)."))] = None,
    context: Annotated[str | None, Query(max_length=64, description=(
        "Only the files of this context (dms_0002.ctx, dms_0002, 2 or current).")),
    ] = None,
    useafter: Annotated[str | None, Query(max_length=100, description=(
        "USEAFTER range: '2022-01-01..2023-01-01', '>=2022-06-01'.")),
    ] = None,
    page: PagesParam = "1",
    pagesize: PageSizeParam = DEFAULT_PAGESIZE,
) -> Page[ReferenceRow]:
    """Every delivered reference file (by default of any context), with the contexts that
    hold it and its download URL. Reference files are public."""
    criteria = ReferenceCriteria(
        filename=mast.parse_list(filename, "filename"), reftype=mast.parse_list(reftype, "reftype"),
        instrument=mast.parse_list(instrument, "instrument"), detector=mast.parse_list(detector, "detector"),
        context=context, useafter=useafter,
    )
    base = export.base_url
    return export.answer(ReferenceRow, session, lambda s, p, n: search_references(s, criteria, p, n, base), page,
                         pagesize)


@router.head("/{filename}", include_in_schema=False)
@router.get("/{filename}", summary="Download a reference file", response_class=Response,
            responses={200: {"content": {"application/fits": {}, "application/asdf": {}}},
                       307: {"description": "Redirect to a presigned URL (S3 store, redirect=true)."},
                       404: {"model": ErrorOut, "description": "No reference file of that name."}})
def download(
    filename: str, request: Request, session: DbSession, store: StoreDep,
    redirect: Annotated[bool, Query(description="With an S3 store: 307 to a presigned URL instead of streaming.")] = False,
) -> Response:
    """A delivered reference file, by name (public; no token needed). Headers as
    ``/download``: ``Digest``/``Repr-Digest``, ``X-Checksum-SHA256``, ``ETag``."""
    ref = reference_file(session, filename)
    if ref is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no reference file {filename}")
    stored = StoredFile(ref.filename, ref.uri, ref.sha256, ref.size, reference_media_type(ref.filename))
    return serve_file(store, stored, redirect=redirect, head=request.method == "HEAD")


@router.get("/{context}/impact", response_model=Page[ImpactOut], responses={**_UNKNOWN, **EXPORT_RESPONSES},
            summary="Exposures a reference context would calibrate differently")
def impact(
    context: str,
    session: DbSession,
    export: ExportDep,
    program: Annotated[list[str] | None, Query(
        description="Program numbers (repeat the parameter or separate with commas).")] = None,
    page: PagesParam = "1",
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

    def fetch(_session, number: int, size: int) -> tuple[int, list[ImpactOut]]:
        # the impact is worked out whole, above; a page is a slice of it
        return len(rows), [
            ImpactOut(context=r.context, parent=r.parent, program=r.program, exposure=r.exposure,
                      first_stage=r.first_stage, references=list(r.references), request_id=r.request_id,
                      created_at=r.created_at)
            for r in rows[(number - 1) * size:number * size]
        ]

    return export.answer(ImpactOut, session, fetch, page, pagesize)
