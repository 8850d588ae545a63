"""DataLink 1.1: ``GET|POST /vo/datalink?ID=...`` (the links of ObsCore rows and product
files, services/archive/vo/datalink.py).

Parameters as DALI says: names are case-insensitive, ``ID`` may be repeated, a POST sends them
form-encoded, unknown parameters are ignored. ``RESPONSEFORMAT`` may only ask for a VOTable.
A request without an ID, or with an unusable one, is a 400 with a VOTable error
(``UsageFault``); an identifier the archive does not know is a row of the answer with
``NotFoundFault``, not an HTTP error.

VOSI: ``/vo/datalink/capabilities`` (with the security methods pyvo's ``AuthSession`` reads
to send the token cookie) and ``/vo/datalink/availability``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, Request, status
from fastapi.responses import Response

from services.archive.dependencies import BaseUrl, CurrentUser, DbSession, SettingsDep
from services.archive.vo.datalink import (
    FIELDS,
    LINKS_STANDARD,
    MAX_IDS,
    capabilities,
    links_of,
)
from services.archive.vo.vosi import XML, availability_xml, capabilities_xml
from services.archive.vo.votable import VOTABLE, VOTableResponse, error_votable, result_votable
from shared.catalog.obscore import ACCESS_FORMAT, DATALINK_PATH
from shared.health import check_catalog

__all__ = ["router"]

router = APIRouter(tags=["vo"])

_FORMATS = {"votable", "application/x-votable+xml", "text/xml", ACCESS_FORMAT.replace(" ", ""),
            "application/x-votable+xml;content=datalink;version=1.1"}
_MAX_ID_LENGTH = 1000


class UsageFault(Exception):
    """A request the service cannot answer; the message says why."""


def _usage_fault(message: str) -> VOTableResponse:
    return VOTableResponse(error_votable(f"UsageFault: {message}"), status_code=status.HTTP_400_BAD_REQUEST)


def _unusable(text: str) -> bool:
    """Control characters, or characters no XML document may hold (so no VOTable either)."""
    return any(ord(c) < 0x20 or ord(c) == 0x7F or 0xD800 <= ord(c) <= 0xDFFF or ord(c) in (0xFFFE, 0xFFFF)
               for c in text)


async def _parameters(request: Request) -> list[tuple[str, str]] | UsageFault:
    """The query's parameters, and a POST's form-encoded body's (names in upper case)."""
    items = list(request.query_params.multi_items())
    if request.method == "POST":
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media not in ("", "application/x-www-form-urlencoded"):
            return UsageFault(f"a POST sends its parameters as application/x-www-form-urlencoded, not {media}")
        body = await request.body()
        try:
            items += parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
        except (UnicodeDecodeError, ValueError) as exc:
            return UsageFault(f"the body is no form-encoded UTF-8 text ({exc})")
    return [(k.upper(), v) for k, v in items]


Parameters = Annotated[list[tuple[str, str]] | UsageFault, Depends(_parameters)]


def _ids(params: list[tuple[str, str]]) -> list[str]:
    formats = [v for k, v in params if k == "RESPONSEFORMAT"]
    for value in formats:
        if value.replace(" ", "").lower() not in _FORMATS:
            raise UsageFault(f"RESPONSEFORMAT {value!r} is not offered: only {VOTABLE} (votable)")
    ids = [v for k, v in params if k == "ID" and v.strip()]  # echoed as sent: clients match links by ID
    if not ids:
        raise UsageFault("ID is required: an obs_publisher_did (the ObsCore column) or a product URI "
                         "(mast:JWST/product/<filename>); it may be repeated")
    for ident in ids:
        if _unusable(ident):
            raise UsageFault("an ID contains control characters (or others no VOTable may hold)")
        if len(ident) > _MAX_ID_LENGTH:
            raise UsageFault(f"an ID is longer than {_MAX_ID_LENGTH} characters")
    return ids


_ROUTE = dict(
    summary="DataLink links of ObsCore rows and files", response_class=VOTableResponse,
    responses={200: {"content": {ACCESS_FORMAT: {}}},
               400: {"content": {VOTABLE: {}}, "description": "UsageFault: no ID, or an unusable one."}},
    openapi_extra={"parameters": [
        {"name": "ID", "in": "query", "required": False, "style": "form", "explode": True,
         "schema": {"type": "array", "items": {"type": "string"}},
         "description": "obs_publisher_did (ivo://jwst-dms/jwst?<obs_id>) or product URI "
                        "(mast:JWST/product/<filename>); repeatable (a POST sends them form-encoded)"},
        {"name": "RESPONSEFORMAT", "in": "query", "required": False, "schema": {"type": "string"},
         "description": "votable (the default): the only format offered"}]},
)


@router.get(DATALINK_PATH, operation_id="datalink_links_get", **_ROUTE)
@router.post(DATALINK_PATH, operation_id="datalink_links_post", **_ROUTE)
def datalink_links(params: Parameters, session: DbSession, user: CurrentUser, settings: SettingsDep,
                   base: BaseUrl) -> VOTableResponse:
    """The DataLink ``links`` document of each ``ID`` (repeatable; at most 100 per request,
    more make the answer OVERFLOW): an ObsCore ``obs_publisher_did`` gives the row's files
    (``#this``, ``#auxiliary``...), previews and thumbnails, its members (``#progenitor``) or
    its Level-3 products (``#derivation``); ``mast:JWST/product/<filename>`` gives that file
    and its previews. Files the caller may not read yet (exclusive access) carry an
    ``error_message`` instead of an ``access_url``."""
    try:
        if isinstance(params, UsageFault):
            raise params
        ids = _ids(params)
    except UsageFault as fault:
        return _usage_fault(str(fault))
    links, overflow = links_of(session, ids, user, datetime.now(UTC), settings.operator_users, base)
    infos = {"standardID": LINKS_STANDARD}
    if overflow:
        infos["MAX_IDS"] = MAX_IDS
    body = result_votable(FIELDS, [link.row() for link in links], overflow=overflow, name="links", infos=infos)
    return VOTableResponse(body, media_type=ACCESS_FORMAT)


@router.get(DATALINK_PATH + "/capabilities", summary="VOSI capabilities of the DataLink service",
            response_class=Response, responses={200: {"content": {XML: {}}}})
def datalink_capabilities(base: BaseUrl) -> Response:
    """The endpoints of the DataLink service and where its links lead, each with its security
    methods (anonymous, or the token cookie ``mast_token``: what pyvo's ``AuthSession``
    sends once given the cookie)."""
    return Response(capabilities_xml(capabilities(base)), media_type=XML)


@router.get(DATALINK_PATH + "/availability", summary="VOSI availability of the DataLink service",
            response_class=Response, responses={200: {"content": {XML: {}}}})
def datalink_availability(request: Request) -> Response:
    """Whether the service can answer: the catalog it reads is reachable."""
    state = check_catalog(request.app.state.catalog)
    note = "the service is accepting requests" if state == "ok" else f"the catalog is {state}"
    return Response(availability_xml(state == "ok", note), media_type=XML)
