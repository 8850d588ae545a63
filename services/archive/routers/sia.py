"""Simple Image Access 2.0: ``/vo/sia2/query`` (GET or POST) over the ObsCore rows, with
its VOSI capabilities and availability (services/archive/vo/sia.py has the rules)."""

from __future__ import annotations

import logging
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request, status
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from services.archive.dependencies import BaseUrl, DbSession
from services.archive.vo.sia import ParameterError, grouped, sia_search
from services.archive.vo.vosi import (
    XML,
    Capability,
    availability_xml,
    capabilities_xml,
    service_capabilities,
)
from services.archive.vo.votable import (
    VOTableResponse,
    error_votable,
    obscore_fields,
    result_votable,
)
from shared.health import check_catalog

__all__ = ["SIA2_STANDARD_ID", "request_params", "router"]

log = logging.getLogger(__name__)

router = APIRouter(prefix="/vo/sia2", tags=["vo"])

SIA2_STANDARD_ID = "ivo://ivoa.net/std/SIA#query-2.0"
_FORM = "application/x-www-form-urlencoded"
_VOTABLE_RESPONSE = {200: {"content": {"application/x-votable+xml": {}},
                           "description": "The rows as a VOTable (QUERY_STATUS OK, or OVERFLOW when MAXREC cut them)."},
                     400: {"content": {"application/x-votable+xml": {}},
                           "description": "A parameter cannot be used: a VOTable whose QUERY_STATUS is ERROR names it."}}


async def request_params(request: Request) -> dict[str, list[str]]:
    """The parameters of a DALI request, by upper-cased name: the query string and, for a
    POST, its form-encoded body."""
    items = list(request.query_params.multi_items())
    if request.method == "POST":
        body = await request.body()
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if body and content_type != _FORM:
            raise ParameterError("request body", f"send the parameters as {_FORM}, not {content_type or 'untyped'}")
        try:
            items += parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError:
            raise ParameterError("request body", "is not UTF-8") from None
    return grouped(items)


def _error(exc: ParameterError) -> VOTableResponse:
    return VOTableResponse(error_votable(str(exc)), status_code=status.HTTP_400_BAD_REQUEST)


@router.api_route("/query", methods=["GET", "POST"], response_class=VOTableResponse, responses=_VOTABLE_RESPONSE,
                  summary="SIA 2.0 query: images and cubes as ObsCore rows")
async def query(request: Request, session: DbSession, base_url: BaseUrl) -> VOTableResponse:
    """Parameters as IVOA SIA 2.0 names them (case-insensitive names; repeated values OR-ed,
    different parameters AND-ed): POS (CIRCLE ra dec r, RANGE ra1 ra2 dec1 dec2, POLYGON ...;
    degrees), BAND (metres, 'lo hi'), TIME (MJD, 'lo hi'), POL, FOV, SPATRES, EXPTIME, TIMERES,
    SPECRP, ID, COLLECTION, FACILITY, INSTRUMENT, DPTYPE (image or cube; both by default),
    CALIB, TARGET, FORMAT, MAXREC. Metadata is public: rows of programs under exclusive access
    are listed; their data (behind access_url, a DataLink document) are not served here."""
    try:
        params = await request_params(request)
        rows, overflow = await run_in_threadpool(sia_search, session, params, base_url)
    except ParameterError as exc:
        return _error(exc)
    return VOTableResponse(result_votable(obscore_fields(), rows, overflow=overflow))


@router.get("/capabilities", summary="VOSI capabilities of the SIA 2.0 service",
            responses={200: {"content": {XML: {}}}})
def capabilities(base_url: BaseUrl) -> Response:
    base = f"{base_url}{router.prefix}"
    sia = Capability(SIA2_STANDARD_ID, f"{base}/query", use="base", version="2.0", std=True)
    return Response(capabilities_xml(service_capabilities(base, sia)), media_type=XML)


@router.get("/availability", summary="VOSI availability of the SIA 2.0 service",
            responses={200: {"content": {XML: {}}}})
def availability(request: Request) -> Response:
    state = check_catalog(request.app.state.catalog)
    note = "the service is accepting queries" if state == "ok" else f"the catalog is {state}"
    return Response(availability_xml(state == "ok", note), media_type=XML)
