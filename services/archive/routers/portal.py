"""/portal: the archive's page for people — search, observations, a download basket,
subscriptions and reprocessing — in one HTML page and its script and style, served from
this package (``services/archive/portal/``) with no CDN and no build step.

The page is a client of this same API and nothing else: every search, download and
request it makes is one a script could make. ``/portal/config`` tells it the limits it
shows (the bundle cap); the token a user signs in with stays in the browser's session
storage and goes out only as the ``Authorization`` header of the page's own requests.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from services.archive.dependencies import SettingsDep
from services.archive.schemas import MAX_BUNDLE_FILES

__all__ = ["ASSETS", "STATIC_URL", "router", "static_files"]

ASSETS = Path(__file__).resolve().parent.parent / "portal"
STATIC_URL = "/portal/static"

router = APIRouter(tags=["portal"])

# The page names its script and style by content-free URLs; a browser revalidates them. It
# runs only its own script and style, talks only to this server, and shows images from it
# (as blobs when fetched with a token); no other site may frame it.
_HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
                               "connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
                               "frame-ancestors 'none'",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
}


class PortalConfig(BaseModel):
    """What the page needs to know of this archive's limits."""

    bundle_max_bytes: int = Field(description="Largest zip/tar bundle, bytes (DMS_BUNDLE_MAX_BYTES).")
    bundle_max_files: int = Field(description="Most files in one bundle request.")


@router.get("/portal", summary="The archive portal (HTML)", response_class=FileResponse,
            responses={200: {"content": {"text/html": {}}}})
def portal() -> FileResponse:
    """Search, observation pages with previews and linkages, a download basket, and for a
    signed-in user subscriptions and reprocessing requests (docs/portal.md)."""
    return FileResponse(ASSETS / "index.html", media_type="text/html; charset=utf-8", headers=_HEADERS)


@router.get("/portal/config", response_model=PortalConfig, summary="The limits the portal shows")
def config(settings: SettingsDep) -> PortalConfig:
    return PortalConfig(bundle_max_bytes=settings.bundle_max_bytes, bundle_max_files=MAX_BUNDLE_FILES)


def static_files() -> StaticFiles:
    """The page's script, style and icons (mounted at :data:`STATIC_URL`)."""
    return StaticFiles(directory=ASSETS)
