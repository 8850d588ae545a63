"""Simple Cone Search 1.03: ``/vo/scs`` over the ObsCore rows (services/archive/vo/scs.py
has the rules), with its VOSI capabilities and availability."""

from __future__ import annotations

from fastapi import APIRouter, Request, status
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from services.archive.dependencies import BaseUrl, DbSession
from services.archive.routers.sia import request_params
from services.archive.vo.scs import MAX_SR, scs_search
from services.archive.vo.sia import MAX_MAXREC, ParameterError
from services.archive.vo.vosi import (
    XML,
    Capability,
    availability_xml,
    capabilities_xml,
    service_capabilities,
)
from services.archive.vo.votable import VOTableResponse, result_votable, scs_error_votable
from shared.health import check_catalog

__all__ = ["SCS_STANDARD_ID", "router"]

router = APIRouter(prefix="/vo/scs", tags=["vo"])

SCS_STANDARD_ID = "ivo://ivoa.net/std/ConeSearch"
_CS = "http://www.ivoa.net/xml/ConeSearch/v1.0"


@router.get("", response_class=VOTableResponse, summary="Simple Cone Search 1.03 over the ObsCore rows",
            responses={200: {"content": {"application/x-votable+xml": {}},
                             "description": "The rows in the cone as a VOTable"},
                       400: {"content": {"application/x-votable+xml": {}},
                             "description": "A parameter cannot be used: a VOTable with INFO name=\"Error\" "
                                            "naming it."}})
async def cone(request: Request, session: DbSession, base_url: BaseUrl) -> Response:
    """RA, DEC (ICRS, degrees) and SR (degrees, at most 10): every ObsCore row whose centre
    lies in the cone. VERB 1 (id and position), 2 (principal columns, default) or 3 (every
    column); MAXREC cuts the answer (OVERFLOW); SR=0 or MAXREC=0 gives the columns only.
    Metadata is public: rows of programs under exclusive access are listed."""
    try:
        params = await request_params(request)
        fields, rows, overflow = await run_in_threadpool(scs_search, session, params, base_url)
    except ParameterError as exc:
        return VOTableResponse(scs_error_votable(str(exc)), status_code=status.HTTP_400_BAD_REQUEST)
    return VOTableResponse(result_votable(fields, rows, overflow=overflow))


@router.get("/capabilities", summary="VOSI capabilities of the cone search", responses={200: {"content": {XML: {}}}})
def capabilities(base_url: BaseUrl) -> Response:
    base = f"{base_url}{router.prefix}"
    scs = Capability(SCS_STANDARD_ID, base, use="base", std=True, xsi_type="cs:ConeSearch",
                     namespaces={"cs": _CS},
                     extra=(("maxSR", f"{MAX_SR:g}"), ("maxRecords", str(MAX_MAXREC)), ("verbosity", "true")))
    return Response(capabilities_xml(service_capabilities(base, scs)), media_type=XML)


@router.get("/availability", summary="VOSI availability of the cone search", responses={200: {"content": {XML: {}}}})
def availability(request: Request) -> Response:
    state = check_catalog(request.app.state.catalog)
    note = "the service is accepting queries" if state == "ok" else f"the catalog is {state}"
    return Response(availability_xml(state == "ok", note), media_type=XML)
