"""MAST's protocol, as ``astroquery.mast`` speaks it: ``POST /api/v0/invoke`` (the
``request`` form field), the column configuration astroquery reads before a query
(``/portal/Mashup/Mashup.asmx/columnsconfig``), one file by its dataURI
(``/api/v0.1/Download/file?uri=mast:JWST/product/<file>``) and many at once
(``/api/v0.1/Download/bundle.sh|.zip|.tar|.tar.gz``), and name resolution as MAST's resolver
answers it (``/Santa-war/query``).

Thin drivers: the request is read by :mod:`services.archive.mast_protocol`, answered by the
queries of ``/caom/observations`` and by the download routes (the same access rule, the
same files). Errors: a body that is no MAST request (no ``request`` field, not JSON, an
unknown service) is a 400 with MAST's error reply; a request MAST would run but that this
archive cannot answer (a bad filter, a bad position) gets MAST's error reply with status
200, as MAST gives it, so that astroquery raises ``RemoteServiceError`` with the reason.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import parse_qsl

import orjson
from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError

from services.archive import mast
from services.archive import mast_protocol as mp
from services.archive.caom import ProductListCriteria, caom_products, find_row, search_caom
from services.archive.dependencies import (
    BaseUrl,
    CurrentUser,
    DbSession,
    Operator,
    SettingsDep,
    StoreDep,
)
from services.archive.mast import CriterionError
from services.archive.routers import download
from services.archive.schemas import MAX_BUNDLE_FILES, BundleRequest, ErrorOut
from services.archive.vo.votable import VOTABLE
from shared.catalog import sky

__all__ = ["router"]

router = APIRouter(tags=["mast"])

MAX_FORM_BYTES = 1024 * 1024
_URI_PREFIX = f"mast:{mast.MISSION}/product/"
_BUNDLE_FORMATS = {".sh": "curl", ".zip": "zip", ".tar": "tar", ".tar.gz": "tar.gz"}


async def form_fields(request: Request) -> list[tuple[str, str]]:
    """The fields of a form body (application/x-www-form-urlencoded, as astroquery posts)
    followed by those of the query string; a body that is not such a form is a 400."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise HTTPException(status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, detail=f"the form is larger than {MAX_FORM_BYTES} bytes")
    try:
        fields = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False) if body else []
    except (UnicodeDecodeError, ValueError) as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST,
                            detail=f"the body must be a URL-encoded form (application/x-www-form-urlencoded): {exc}") from None
    return fields + list(request.query_params.multi_items())


FormFields = Annotated[list[tuple[str, str]], Depends(form_fields)]


def _form(fields: dict[str, dict], required: list[str]) -> dict:
    """The OpenAPI description of a form body (the routes read it themselves)."""
    return {"requestBody": {"required": False, "content": {"application/x-www-form-urlencoded": {"schema": {
        "type": "object", "properties": fields, "required": required}}}}}


_INVOKE_FORM = _form({"request": {"type": "string", "description": (
    'A JSON object: {"service": "Mast.Caom.Filtered", "params": {...}, "format": "json", "pagesize": n, '
    '"page": n}.')}}, ["request"])
_CONFIG_FORM = _form({"colConfigId": {"type": "string", "description": "Mast.Caom.Cone or Mast.Caom.Products."}},
                     ["colConfigId"])
_BUNDLE_FORM = _form({"uri": {"type": "array", "items": {"type": "string"},
                              "description": "dataURI values, mast:JWST/product/<productFilename>."}}, ["uri"])


def _first(fields: list[tuple[str, str]], name: str) -> str | None:
    return next((v for k, v in fields if k == name), None)


def _observations(session, req: mp.MastRequest, base: str) -> mp.Answer:
    criteria, possible = mp.observation_criteria(req)
    if not possible:
        return mp.Answer(mp.OBSERVATION_COLUMNS if criteria.ra is None else mp.POSITION_COLUMNS)
    now = datetime.now(UTC)
    total, rows = search_caom(session, criteria, req.page, req.pagesize, now, base, linkage=False)
    if criteria.ra is None:
        return mp.Answer(mp.OBSERVATION_COLUMNS, [mp.observation_values(r) for r in rows], total)
    arcsec = (sky.separations(criteria.ra, criteria.dec, [r["s_ra"] for r in rows], [r["s_dec"] for r in rows])
              * 3600.0).round(3).tolist()
    return mp.Answer(mp.POSITION_COLUMNS, [mp.observation_values(r, None if math.isnan(d) else d)
                                           for r, d in zip(rows, arcsec, strict=True)], total)


def _products(session, req: mp.MastRequest, operator: bool) -> mp.Answer:
    now = datetime.now(UTC)
    rows: list[dict[str, Any]] = []
    seen: set[tuple[str, int]] = set()
    for obsid in mp.product_obsids(req):
        parent = find_row(session, str(obsid))
        if parent is None:
            continue  # MAST lists no products for an obsid it does not have
        _, found = caom_products(session, parent, ProductListCriteria(unpublished=operator), 1, mast.MAX_INT, now)
        kind = parent.dataproduct_type
        for r in found:
            if (r.productFilename, parent.id) not in seen:
                seen.add((r.productFilename, parent.id))
                rows.append(mp.product_values(r, kind))
    return mp.Answer(mp.PRODUCT_COLUMNS, mp.page_of(rows, req), len(rows))


def _json(body: dict[str, Any]) -> Response:
    """A reply serialized by orjson: a page of 5000 rows is 4 MB of JSON (45 ms with the
    standard library, 5 with orjson)."""
    return Response(orjson.dumps(body), media_type="application/json")


def _mast_error(message: str, code: int = status.HTTP_200_OK) -> JSONResponse:
    return JSONResponse(mp.error_reply(message), status_code=code)


@router.post("/api/v0/invoke", summary="MAST's service request (astroquery.mast)",
             responses={200: {"description": "MAST's reply: status, msg, fields, data, paging (status ERROR and "
                                             "the reason in msg when the request cannot be answered)."},
                        400: {"description": "No MAST request: status ERROR, the reason in msg."}},
             openapi_extra=_INVOKE_FORM)
def invoke(fields: FormFields, session: DbSession, base: BaseUrl, operator: Operator) -> Response:
    """The form field ``request``: ``{"service": ..., "params": {...}, "format": "json",
    "pagesize": n, "page": n}`` (format json, csv or votable: the rows of the page as a CSV
    file or a VOTable; errors are MAST's JSON error reply whatever the format). Services: ``Mast.Caom.Filtered`` (params.filters: a list of
    ``{"paramName", "values": [...] | [{"min", "max"}], "freeText"}``), ``Mast.Caom.Filtered.Position``
    (and params.position ``"ra, dec, radius"``), ``Mast.Caom.Cone`` (params.ra, dec, radius),
    ``Mast.Caom.Products`` (params.obsid, comma-separated) and ``Mast.Name.Lookup``
    (params.input)."""
    try:
        req = mp.parse_request(_first(fields, "request"))
    except mp.MastError as exc:
        return _mast_error(str(exc), status.HTTP_400_BAD_REQUEST)
    try:
        req = mp.with_columns(req)
        if req.service == mp.PRODUCTS:
            answer = _products(session, req, operator)
        elif req.service == mp.NAME_LOOKUP:
            return JSONResponse(mp.name_lookup_reply(req, *mp.name_lookup(session, mp.lookup_input(req))))
        else:
            answer = _observations(session, req, base)
    except (mp.MastError, CriterionError) as exc:
        return _mast_error(str(exc))
    if req.format == "csv":
        return Response(mp.reply_csv(req, answer), media_type="text/csv")
    if req.format == "votable":
        return Response(mp.reply_votable(req, answer), media_type=VOTABLE)
    return _json(mp.reply(req, answer))


@router.get("/Santa-war/query", summary="Name resolution as MAST's resolver answers it (astroquery's query_object)")
def santa_query(
    session: DbSession,
    name: Annotated[list[str], Query(min_length=1, max_length=30, description=(
        "Target names or aliases (repeat for several); case, spaces and punctuation do not count."))],
    outputFormat: Annotated[str, Query(description="json (the only format served).")] = "json",
    resolveAll: Annotated[bool, Query(description="Accepted; there is one resolver, the archive's own targets.")] = False,
    resolver: Annotated[str | None, Query(description=(
        "Accepted; every answer comes from the resolver 'jwst-dms' (the programs' targets and aliases), "
        "so asking astroquery for SIMBAD or NED finds nothing."))] = None,
) -> JSONResponse:
    """The answer of MAST's name resolver (SANTA), which ``astroquery.mast`` asks for
    ``query_object`` and for ``objectname=`` criteria: ``resolvedCoordinate`` rows with the
    lower-cased ``searchString``, ``canonicalName``, ``ra``, ``decl`` and ``resolver``, from
    the archive's own targets and their aliases (``GET /resolve``). A name no target has gets
    no row (astroquery then says it could not resolve it) and its closest names in
    ``notFound``. astroquery 0.4.11 asks a fixed host for this; see docs/archive-api.md."""
    if outputFormat.lower() != "json":
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail=f"outputFormat {outputFormat!r}: only json is served")
    found, not_found = [], []
    for one in name:
        if not one.strip() or len(one) > mast.MAX_VALUE_LENGTH:
            raise HTTPException(status.HTTP_400_BAD_REQUEST,
                                detail=f"name {one[:40]!r}: give a target name of 1 to {mast.MAX_VALUE_LENGTH} characters")
        rows, unknown = mp.name_lookup(session, one)
        found += [{**r, "searchString": one.lower()} for r in rows]
        if unknown:
            not_found.append({"searchString": one.lower(), **unknown})
    return JSONResponse({"resolvedCoordinate": found, "notFound": not_found, "status": ""})


@router.post("/portal/Mashup/Mashup.asmx/columnsconfig", summary="MAST's column configuration of a service",
             openapi_extra=_CONFIG_FORM)
@router.get("/portal/Mashup/Mashup.asmx/columnsconfig", include_in_schema=False)
def columns_config(fields: FormFields) -> JSONResponse:
    """``colConfigId`` (form field or query parameter): the columns of a service, keyed by
    name, with their label, type (``type`` and ``vot.datatype``), unit and description, as
    astroquery's ``get_metadata`` and its filter builder read them. A service without
    columns answers ``{}``, as MAST does."""
    config_id = _first(fields, "colConfigId")
    if not config_id:
        raise HTTPException(status.HTTP_400_BAD_REQUEST,
                            detail="send colConfigId, e.g. colConfigId=Mast.Caom.Cone (observations) or "
                                   "Mast.Caom.Products (products)")
    return JSONResponse(mp.column_config(config_id))


def _filename(uri: str) -> str:
    uri = uri.strip()
    if not uri.startswith(_URI_PREFIX) or "/" in uri[len(_URI_PREFIX):] or len(uri) == len(_URI_PREFIX):
        raise HTTPException(status.HTTP_400_BAD_REQUEST,
                            detail=f"uri {uri!r} is not a product URI of this archive: give the dataURI of a "
                                   f"product row, {_URI_PREFIX}<productFilename>")
    return uri[len(_URI_PREFIX):]


@router.head("/api/v0.1/Download/file", include_in_schema=False)
@router.get("/api/v0.1/Download/file", summary="A file by its dataURI (MAST's download)", response_class=Response,
            responses={200: {"content": {"application/octet-stream": {}}},
                       400: {"model": ErrorOut, "description": "The uri is no product URI of this archive."},
                       401: {"model": ErrorOut, "description": "Exclusive access: a token is needed."},
                       403: {"model": ErrorOut, "description": "Exclusive access: this user is not authorized."}})
def download_file(
    request: Request, session: DbSession, store: StoreDep, user: CurrentUser, operator: Operator,
    settings: SettingsDep,
    uri: Annotated[str, Query(min_length=1, max_length=400,
                              description="dataURI of a product row: mast:JWST/product/<productFilename>.")],
) -> Response:
    """The same file, headers and access rule as ``GET /download/<productFilename>``."""
    return download.download(_filename(uri), request, session, store, user, operator, settings)


@router.post("/api/v0.1/Download/bundle{ext}", summary="Many files by their dataURIs: curl script, zip or tar",
             response_class=Response,
             responses={200: {"content": {"text/x-shellscript": {}, "application/zip": {}, "application/x-tar": {}}},
                        400: {"model": ErrorOut, "description": "A uri is no product URI of this archive."}},
             openapi_extra=_BUNDLE_FORM)
def download_bundle(ext: str, fields: FormFields, session: DbSession, store: StoreDep, user: CurrentUser,
                    settings: SettingsDep, base: BaseUrl) -> Response:
    """Form fields ``uri`` (repeated), as astroquery's ``download_products(curl_flag=True)``
    posts them to ``bundle.sh``; ``bundle.zip`` and ``bundle.tar`` stream the files. The
    same bundle, checks and access rule as ``POST /bundles``."""
    fmt = _BUNDLE_FORMATS.get(ext)
    if fmt is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND,
                            detail=f"no bundle{ext}: ask for bundle.sh (curl script), bundle.zip, bundle.tar or bundle.tar.gz")
    uris = [v for k, v in fields if k == "uri"]
    if not uris:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail="send one or more form fields uri=<dataURI>")
    if len(uris) > MAX_BUNDLE_FILES:
        raise HTTPException(status.HTTP_400_BAD_REQUEST,
                            detail=f"{len(uris)} files; a bundle holds at most {MAX_BUNDLE_FILES}")
    try:
        body = BundleRequest(filenames=[_filename(u) for u in uris], format=fmt)
    except ValidationError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail=f"bad uri: {exc.errors()[0]['msg']}") from None
    return download.bundle(body, session, store, user, settings, base)

