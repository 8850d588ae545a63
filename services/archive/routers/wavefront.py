"""/wavefront: the observatory's wavefront-sensing OPD files, a program-independent
collection (public), searchable by sensing time (:mod:`services.archive.contributing`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response, status

from services.archive import mast
from services.archive.contributing import WavefrontCriteria, opd_file, search_wavefront
from services.archive.dependencies import DbSession, StoreDep
from services.archive.exports import EXPORT_RESPONSES, ExportDep, PagesParam
from services.archive.files import StoredFile, serve_file
from services.archive.routers.common import ListParam, PageSizeParam
from services.archive.schemas import DEFAULT_PAGESIZE, ErrorOut, Page, WavefrontRow

__all__ = ["router"]

router = APIRouter(prefix="/wavefront", tags=["wavefront"])

_TIME = "MJD or ISO 8601 (UTC)"


@router.get("", response_model=Page[WavefrontRow], responses=EXPORT_RESPONSES,
            summary="Search wavefront-sensing OPD files")
def search(
    session: DbSession,
    export: ExportDep,
    date: Annotated[str | None, Query(max_length=64, description=(
        f"A time ({_TIME}): the OPD files nearest to it first, each with delta_days."))] = None,
    t_min: Annotated[str | None, Query(max_length=100, description=(
        f"Sensing time range ({_TIME}): '60734..60736', '>=2025-03-01'."))] = None,
    t_max: Annotated[str | None, Query(max_length=100, description="Another bound, as t_min.")] = None,
    apername: ListParam = None,
    page: PagesParam = "1",
    pagesize: PageSizeParam = DEFAULT_PAGESIZE,
) -> Page[WavefrontRow]:
    """The wavefront maps (OPD, metres, in the public OPD file layout), by sensing time;
    with ``date``, nearest to it first. Public: no token needed."""
    criteria = WavefrontCriteria(date=date, t_min=t_min, t_max=t_max,
                                 apername=mast.parse_list(apername, "apername"))
    base = export.base_url
    return export.answer(WavefrontRow, session, lambda s, p, n: search_wavefront(s, criteria, p, n, base), page,
                         pagesize)


@router.head("/{filename}", include_in_schema=False)
@router.get("/{filename}", summary="Download a wavefront-sensing OPD file", response_class=Response,
            responses={200: {"content": {"application/fits": {}}},
                       307: {"description": "Redirect to a presigned URL (S3 store, redirect=true)."},
                       404: {"model": ErrorOut, "description": "No OPD file of that name."}})
def download(
    filename: str, request: Request, session: DbSession, store: StoreDep,
    redirect: Annotated[bool, Query(description="With an S3 store: 307 to a presigned URL instead of streaming.")] = False,
) -> Response:
    """An OPD file by name (public), with the checksum headers of ``/download``."""
    opd = opd_file(session, filename)
    if opd is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no wavefront OPD file {filename}")
    return serve_file(store, StoredFile(opd.filename, opd.uri, opd.sha256, opd.size, "application/fits"),
                      redirect=redirect, head=request.method == "HEAD")
