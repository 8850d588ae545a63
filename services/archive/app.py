"""The archive API application: ``create_app(settings)`` builds it; nothing is read or
opened at import time. The catalog engine and the object store are opened once, when the
application starts (lifespan), and closed when it stops.

Run it with ``dms serve archive`` or ``uvicorn --factory services.archive.app:create_app``.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

from fastapi import Depends, FastAPI, Request, status
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.archive.dependencies import check_request, get_settings
from services.archive.mast import CriterionError
from services.archive.routers import (
    access,
    caom,
    datalink,
    download,
    events,
    mast_api,
    observations,
    ops,
    portal,
    products,
    programs,
    references,
    reprocessing,
    resolve,
    scs,
    sia,
    subscriptions,
    tap,
    wavefront,
)
from services.archive.vo.tap import warm_translation
from shared.catalog import Catalog
from shared.config import Settings
from shared.storage import open_store
from shared.webhooks import WebhookPolicy

__all__ = ["DOCS_STATIC_URL", "create_app"]

log = logging.getLogger(__name__)

DOCS_STATIC_URL = "/docs/static"  # where the Swagger UI and ReDoc assets are served

DESCRIPTION = """\
Search, browse and download the products of the jwst-dms archive, MAST-style.

* **Metadata is public**; data (files, previews) of programs under exclusive access are
  served only to their PI and authorized users until their release date.
* Authenticate with an API token: `Authorization: Bearer <token>` (or `Authorization: token
  <token>`, or the cookie `mast_token`). Tokens are issued with `dms token create`.
* Searches page with `page` (1-based) and `pagesize` (default 100, max 5000) and always
  report the `total` number of matches (also in `X-Total-Count`, with a `Link` header to the
  other pages); `format=csv|ecsv|votable` (or the `Accept` header) exports a page.
* `GET /resolve?name=` resolves a target name or alias against the programs' own targets.
* A token that is unknown, expired or revoked is refused with 401 on every route; no token
  means anonymous. A bad parameter is a 400 naming it; the API never answers 5xx for input.
"""

_ERROR = {"$ref": "#/components/schemas/ErrorOut"}
# Answers any route may give, declared on every operation so the OpenAPI document is complete.
_COMMON_RESPONSES = {
    "400": "A parameter or the body is malformed or out of range (the detail names it).",
    "401": "The token sent is unknown, expired or revoked, or the Authorization header is malformed.",
    "503": "The catalog is unavailable.",
}


def _settings_of(app: FastAPI) -> Settings:
    return app.dependency_overrides.get(get_settings, get_settings)()


_settled = threading.Event()


def _settle() -> None:
    """Take what the process has built to serve (modules, the application, the ADQL
    grammars) out of the garbage collector's view. A full collection otherwise walks those
    few hundred thousand objects, about 100 ms, inside whichever request triggers it: seen
    as the p99 of a deep field's MAST page, whose 5,000 rows' dicts trigger one every few
    requests. Once per process (a process that starts the application again, as tests do,
    keeps collecting what it made since)."""
    if _settled.is_set():
        return
    _settled.set()
    gc.collect()
    gc.freeze()


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings = _settings_of(app)
    WebhookPolicy.from_settings(settings)  # a bad DMS_WEBHOOK_ALLOW stops the start, with the reason
    catalog = Catalog(settings.resolved_catalog_url)
    app.state.catalog = catalog
    app.state.store = open_store(settings)
    log.info("archive API: catalog %s, %s store", settings.resolved_catalog_url.split("@")[-1], settings.store)
    if catalog.engine.dialect.name == "postgresql":  # TAP serves: ready its ADQL parser
        threading.Thread(target=warm_translation, args=(_settle,), name="adql-warm-up", daemon=True).start()
    else:
        _settle()
    try:
        yield
    finally:
        catalog.dispose()


def _location(loc: tuple) -> str:
    where = {"query": "query parameter", "path": "path parameter", "body": "body field",
             "header": "header", "cookie": "cookie"}.get(str(loc[0]), str(loc[0])) if loc else "request"
    rest = ".".join(str(p) for p in loc[1:])
    return f"{where} {rest}".strip()


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
              for e in exc.errors()]
    detail = "; ".join(f"{_location(tuple(e['loc']))}: {e['msg']}" for e in errors)
    return JSONResponse({"detail": detail, "errors": errors}, status_code=status.HTTP_400_BAD_REQUEST)


async def _criterion_error(request: Request, exc: CriterionError) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=status.HTTP_400_BAD_REQUEST)


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    """FastAPI's answer, except a refused token on ``/whoami``: MAST's clients read ``anon``
    there (astroquery's login then says the token is invalid), so the 401 carries it too."""
    if exc.status_code == status.HTTP_401_UNAUTHORIZED and request.url.path == "/whoami":
        return JSONResponse({"detail": exc.detail, "anon": True}, status_code=exc.status_code, headers=exc.headers)
    return await http_exception_handler(request, exc)


async def _catalog_down(request: Request, exc: OperationalError) -> JSONResponse:
    log.error("catalog error on %s %s: %s", request.method, request.url.path, exc)
    return JSONResponse({"detail": "the catalog is unavailable (down, or its schema is not up to date: "
                                   "`dms db upgrade`); try again shortly"},
                        status_code=status.HTTP_503_SERVICE_UNAVAILABLE)


MAX_BODY = 2 * 1024 * 1024  # bytes of a request body: 5000 bundle names fit, 10 MB secrets do not


class _BodyLimit:
    """Refuse a request whose declared body is larger than :data:`MAX_BODY` (413) before
    anything reads it; a body sent without Content-Length is cut at the same size (413)."""

    def __init__(self, app, limit: int = MAX_BODY):
        self.app, self.limit = app, limit

    async def _refuse(self, send, detail: str, status_code: int = 413) -> None:
        await JSONResponse({"detail": detail}, status_code=status_code)({"type": "http"}, None, send)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            return await self._refuse(send, f"the request body is larger than {self.limit} bytes")
        seen = 0

        async def limited():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    return {"type": "http.disconnect"}  # the app stops reading; nothing is processed
            return message

        return await self.app(scope, limited if length is None else receive, send)


class _AbsoluteForm:
    """Accept a request target in absolute form (``GET http://host/path?q HTTP/1.1``), as an
    HTTP/1.1 server must (RFC 9112 §3.2.2): route it by its path. Clients send that form
    when the archive stands in for a host they are configured to reach through a proxy
    (astroquery's name resolver, see docs/archive-api.md)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path.startswith(("http://", "https://")):
            parts = urlsplit(path)
            scope = {**scope, "path": parts.path or "/", "raw_path": (parts.path or "/").encode("latin-1")}
        return await self.app(scope, receive, send)


def _complete_openapi(app: FastAPI) -> dict:
    """The OpenAPI document with the errors every route may answer (ErrorOut, 400 rather
    than FastAPI's default 422 for validation), so a client, or a conformance check, knows
    every status the API gives."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description,
                         routes=app.routes, tags=app.openapi_tags)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    from services.archive.schemas import ErrorOut

    components["ErrorOut"] = ErrorOut.model_json_schema(ref_template="#/components/schemas/{model}")
    for path, operations in schema.get("paths", {}).items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            generated = responses.get("422", {}).get("content", {}).get("application/json", {}).get("schema", {})
            if generated.get("$ref", "").endswith("/HTTPValidationError"):
                del responses["422"]
            if "{" in path:
                responses.setdefault("404", {"description": "No such thing (the detail names it).",
                                             "content": {"application/json": {"schema": _ERROR}}})
            if "requestBody" in operation:
                responses.setdefault("413", {"description": f"The body is larger than {MAX_BODY} bytes.",
                                             "content": {"application/json": {"schema": _ERROR}}})
            for code, description in _COMMON_RESPONSES.items():
                responses.setdefault(code, {"description": description,
                                            "content": {"application/json": {"schema": _ERROR}}})
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
    app.openapi_schema = schema
    return schema


def create_app(settings: Settings | None = None) -> FastAPI:
    """The archive API. ``settings`` replaces :func:`shared.config.get_settings` for this
    application (tests pass their own); without it the environment is read at startup.

    ``/docs`` (Swagger UI) and ``/redoc`` load their scripts and styles from this server,
    under ``/docs/static`` (the ``fastapi-offline`` package), not from a CDN: they work
    with no internet."""
    app = FastAPIOffline(
        static_url=DOCS_STATIC_URL,
        title="jwst-dms archive API", version="1", description=DESCRIPTION, lifespan=_lifespan,
        dependencies=[Depends(check_request)],
        openapi_tags=[
            {"name": "observations", "description": "Observation search (CAOM/MAST fields)."},
            {"name": "products", "description": "Product rows, provenance and linkages."},
            {"name": "download", "description": "Files, previews and bundles (exclusive access enforced)."},
            {"name": "programs", "description": "Programs and the PI's grants of data access."},
            {"name": "subscriptions", "description": "Your notification subscriptions (token needed)."},
            {"name": "reprocessing", "description": "Reprocessing requests of your programs (token needed)."},
            {"name": "wavefront", "description": "Wavefront-sensing OPD files (program-independent, public)."},
            {"name": "caom", "description": "Observation rows as MAST presents JWST: one per Level-3 product, "
                                            "one per exposure and detector, with their product lists."},
            {"name": "mast", "description": "MAST's own protocol, as astroquery.mast speaks it: /api/v0/invoke, the "
                                            "column configuration, downloads by dataURI."},
            {"name": "vo", "description": "The Virtual Observatory: SIA 2.0 (/vo/sia2) and Simple Cone Search "
                                          "(/vo/scs) over the ObsCore rows, answered as VOTables, DataLink "
                                          "(/vo/datalink): the links of ObsCore rows and files, and TAP "
                                          "(/vo/tap): ADQL over ivoa.obscore and tap_schema, sync and async."},
            {"name": "events", "description": "Recent archive events."},
            {"name": "operations", "description": "Health, metrics, identity."},
            {"name": "portal", "description": "The archive's page for people (/portal), a client of this API."},
        ],
    )
    if settings is not None:
        app.dependency_overrides[get_settings] = lambda: settings
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(CriterionError, _criterion_error)
    app.add_exception_handler(OperationalError, _catalog_down)
    for module in (observations, caom, mast_api, resolve, products, download, programs, access, references,
                   wavefront, subscriptions, reprocessing, events, ops, sia, scs, datalink, tap, portal):
        app.include_router(module.router)
    app.mount(portal.STATIC_URL, portal.static_files(), name="portal-static")
    app.openapi = lambda: _complete_openapi(app)
    app.add_middleware(_BodyLimit)
    app.add_middleware(_AbsoluteForm)
    return app
