"""File delivery: /download, /previews, /thumbnails and /bundles.

Data and previews of a product follow one rule (shared.access.read_grant): public
from its release date, before that only for the program's PI and authorized users; an
embargoed program's for operators only. Operators (``DMS_OPERATORS``) read everything, and
each of their reads of data nobody else could read then is recorded
(``GET /access/reads``). Anonymous callers are refused with 401 (send a token),
authenticated ones who lack the right with 403; both details say until when the data are
exclusive, or that the program is under embargo.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.responses import PlainTextResponse, Response, StreamingResponse

from services.archive import mast
from services.archive.bundles import (
    BundleEntry,
    curl_script,
    human_size,
    tar_stream,
    targz_stream,
    zip_stream,
)
from services.archive.dependencies import (
    BaseUrl,
    CurrentUser,
    DbSession,
    Operator,
    SettingsDep,
    StoreDep,
    unauthorized,
)
from services.archive.files import Served, exclusive_detail, resolve, serve
from services.archive.routers.common import RevisionParam
from services.archive.schemas import BundleRequest, ErrorOut
from shared.access import ReadGrant, may_read_data, read_grant, record_exclusive_read
from shared.catalog import ArtifactKind

__all__ = ["router"]

router = APIRouter(tags=["download"])

_LISTED = 20  # names quoted in an error about many files
_EXCLUSIVE = {401: {"model": ErrorOut, "description": "Exclusive access: a token is needed (or a bad token)."},
              403: {"model": ErrorOut, "description": "Exclusive access: this user is not authorized."}}
_REDIRECT = {"description": "Redirect to a presigned URL (S3 store, redirect=true)."}
_ANY_KIND = (ArtifactKind.DATA, ArtifactKind.PREVIEW, ArtifactKind.THUMBNAIL)  # by a name: the product's file first



def authorize(session, served: Served, user: str | None, now: datetime, operators: frozenset[str]) -> None:
    """Raise 401/403 unless ``user`` may read the file's data now; record an operator's
    read of data nobody else could read."""
    grant = read_grant(served.product, served.program, user, now, operators)
    if grant in ReadGrant.AUDITED:
        record_exclusive_read(session, served.product, user, served.name, grant, now)
        return
    if grant is not None:
        return
    if served.program.embargoed:
        if user is None:
            raise unauthorized(f"{exclusive_detail(served)}; send an operator's token")
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=f"{exclusive_detail(served)}; {user} is no operator")
    if user is None:
        raise unauthorized(f"{exclusive_detail(served)}; send a token of the PI or an authorized user "
                           "(Authorization: Bearer <token>)")
    raise HTTPException(status.HTTP_403_FORBIDDEN,
                        detail=f"{exclusive_detail(served)}; {user} is neither its PI nor an authorized user")


def _deliver(request: Request, session, store, settings, user, operator: bool, filename: str,
             kinds: tuple[str, ...], revision: int | None, *, inline: bool, redirect: bool, what: str) -> Response:
    served = resolve(session, filename, kinds, revision, unpublished=operator)
    if served is None:
        which = f"revision {revision} of " if revision is not None else ""
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no {what} {which}{filename}")
    authorize(session, served, user, datetime.now(UTC), frozenset(settings.operator_users))
    return serve(store, served, inline=inline, redirect=redirect, head=request.method == "HEAD")


@router.head("/download/{filename}", include_in_schema=False)
@router.get("/download/{filename}", summary="Download a file", response_class=Response,
            responses={200: {"content": {"application/octet-stream": {}}},
                       307: {"description": "Redirect to a presigned URL (S3 store, redirect=true)."},
                       **_EXCLUSIVE})
def download(
    filename: str, request: Request, session: DbSession, store: StoreDep, user: CurrentUser, operator: Operator,
    settings: SettingsDep, revision: RevisionParam = None,
    redirect: Annotated[bool, Query(description="With an S3 store: 307 to a presigned URL instead of streaming.")] = False,
) -> Response:
    """A product file (or a preview listed in product rows) by its productFilename.

    Headers: ``Content-Length``, ``Content-Disposition``, ``Digest``/``Repr-Digest`` and
    ``X-Checksum-SHA256`` (the catalogued sha256), ``ETag``, ``X-DMS-Revision``.
    """
    return _deliver(request, session, store, settings, user, operator, filename, _ANY_KIND, revision,
                    inline=False, redirect=redirect, what="file")


@router.head("/previews/{filename}", include_in_schema=False)
@router.get("/previews/{filename}", summary="Preview image", response_class=Response,
            responses={200: {"content": {"image/png": {}}}, 307: _REDIRECT, **_EXCLUSIVE})
def preview(filename: str, request: Request, session: DbSession, store: StoreDep, user: CurrentUser,
            operator: Operator, settings: SettingsDep, revision: RevisionParam = None,
            redirect: bool = False) -> Response:
    """The preview of a product (by the product's name or the preview's own name)."""
    return _deliver(request, session, store, settings, user, operator, filename, (ArtifactKind.PREVIEW,), revision,
                    inline=True, redirect=redirect, what="preview for")


@router.head("/thumbnails/{filename}", include_in_schema=False)
@router.get("/thumbnails/{filename}", summary="Thumbnail image", response_class=Response,
            responses={200: {"content": {"image/jpeg": {}}}, 307: _REDIRECT, **_EXCLUSIVE})
def thumbnail(filename: str, request: Request, session: DbSession, store: StoreDep, user: CurrentUser,
              operator: Operator, settings: SettingsDep, revision: RevisionParam = None,
            redirect: bool = False) -> Response:
    """The thumbnail of a product (by the product's name or the thumbnail's own name)."""
    return _deliver(request, session, store, settings, user, operator, filename, (ArtifactKind.THUMBNAIL,), revision,
                    inline=True, redirect=redirect, what="thumbnail for")


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:_LISTED])
    return shown + (f" and {len(names) - _LISTED} more" if len(names) > _LISTED else "")


_STREAMS = {"zip": (zip_stream, "application/zip", "zip"), "tar": (tar_stream, "application/x-tar", "tar"),
            "tar.gz": (targz_stream, "application/gzip", "tar.gz")}


@router.post("/bundles", summary="Many files at once: zip, tar, tar.gz or a curl script",
             response_class=Response,
             responses={200: {"content": {"application/zip": {}, "application/x-tar": {}, "application/gzip": {},
                                          "text/x-shellscript": {}}},
                        404: {"model": ErrorOut, "description": "Some names are no file of the archive (listed)."},
                        413: {"model": ErrorOut, "description": "The files of a zip or tar bundle total more than "
                                                                "the cap (DMS_BUNDLE_MAX_BYTES, 5.12 GB), or the "
                                                                "body is too large."},
                        **_EXCLUSIVE})
def bundle(request: BundleRequest, session: DbSession, store: StoreDep, user: CurrentUser,
           settings: SettingsDep, base: BaseUrl) -> Response:
    """The files named (duplicates removed), laid out as ``JWST/<obs_id>/<filename>`` with a
    ``SHA256SUMS`` file.

    ``zip``, ``tar`` and ``tar.gz`` stream the files and are refused as a whole (401/403,
    listing the files) when any of them is under exclusive access the caller may not read,
    and (413, before anything is sent) when the files total more than the bundle cap
    (``DMS_BUNDLE_MAX_BYTES``, by default MAST's 5.12 GB). ``curl`` returns a script that
    downloads each file with the token in ``$DMS_TOKEN`` and checks its sha256; it is given
    to anyone, since every download is checked again, and has no cap.
    """
    now = datetime.now(UTC)
    names = list(dict.fromkeys(n.strip() for n in request.filenames if n.strip()))
    served: list[Served] = []
    missing: list[str] = []
    for name in names:
        s = resolve(session, name, _ANY_KIND)
        if s is None:
            missing.append(name)
        else:
            served.append(s)
    if missing:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no such file(s): {_listing(missing)}")
    entries = [
        BundleEntry(name=s.name, arcname=f"JWST/{mast.obs_id(s.program.id, s.obs_number)}/{s.name}",
                    uri=s.artifact.uri, size=s.artifact.size, sha256=s.artifact.sha256,
                    mtime=mast.aware(s.product.archived_at),
                    needs_token=not may_read_data(s.product, s.program, None, now))
        for s in served
    ]
    stamp = f"{now:%Y%m%dT%H%M%S}"
    if request.format == "curl":
        return PlainTextResponse(
            curl_script(entries, base, now), media_type="text/x-shellscript",
            headers={"Content-Disposition": f'attachment; filename="jwst-dms_{stamp}.sh"'},
        )
    total = sum(e.size for e in entries)
    if total > settings.bundle_max_bytes:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, detail=(
            f"the {len(entries)} file(s) total {human_size(total)} ({total} bytes), more than the "
            f"{request.format} bundle cap of {human_size(settings.bundle_max_bytes)} "
            f"({settings.bundle_max_bytes} bytes); ask for fewer files per bundle, or for format "
            "'curl' (a script that fetches each file; no cap)"))
    operators = frozenset(settings.operator_users)
    grants = [read_grant(s.product, s.program, user, now, operators) for s in served]
    refused = [s for s, grant in zip(served, grants, strict=True) if grant is None]
    if refused:
        detail = (f"{len(refused)} of the files are under exclusive access: "
                  + "; ".join(exclusive_detail(s) for s in refused[:_LISTED]))
        if user is None:
            raise unauthorized(detail + "; send a token of the PI or an authorized user")
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=f"{detail}; {user} may not read them")
    for s, grant in zip(served, grants, strict=True):
        if grant in ReadGrant.AUDITED:
            record_exclusive_read(session, s.product, user, s.name, grant, now)
    stream, media, ext = _STREAMS[request.format]
    return StreamingResponse(
        stream(store, entries), media_type=media,
        headers={"Content-Disposition": f'attachment; filename="jwst-dms_{stamp}.{ext}"'},
    )
