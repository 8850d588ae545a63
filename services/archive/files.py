"""Finding the stored file behind a name and handing it to the client.

A name is either a product's file name (its data, or the preview/thumbnail of that
product) or the name of a preview/thumbnail file itself, as listed in product rows. The
local store serves the file directly; an S3 store either redirects to a presigned URL
(``redirect=true``) or streams through the API (after a checked copy to a temporary file,
since the store's reads are whole-object downloads verified against the sha256).
"""

from __future__ import annotations

import base64
import logging
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from fastapi import HTTPException, status
from fastapi.responses import FileResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.background import BackgroundTask

from services.archive import mast
from services.archive.search import basename
from shared.access import published_revision
from shared.catalog import Artifact, ArtifactKind, Observation, Product, Program
from shared.storage import ObjectNotFoundError, ObjectStore, StorageError

__all__ = ["Served", "StoredFile", "artifact_headers", "checksum_headers", "exclusive_detail", "open_artifact",
           "resolve", "serve", "serve_file"]

PRESIGN_SECONDS = 3600

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Served:
    """A file the API may hand out, with what the access rule needs."""

    product: Product
    program: Program
    artifact: Artifact
    name: str
    obs_number: int | None


def exclusive_detail(served: Served) -> str:
    """Why the file is not public now: its program's embargo, or its exclusive access and
    until when (what a refused download, or a DataLink row, says)."""
    if served.program.embargoed:
        return f"{served.name} belongs to program {served.program.id}, which is under embargo (operators only)"
    release = mast.aware(served.product.data_release)
    return (f"{served.name} is under exclusive access for program {served.program.id} "
            f"until {release:%Y-%m-%d %H:%M:%S} UTC")


def _kind_rank(kinds: Sequence[str]) -> dict[str, int]:
    return {k: i for i, k in enumerate(kinds)}


def resolve(session: Session, filename: str, kinds: Sequence[str], revision: int | None = None, *,
            unpublished: bool = False) -> Served | None:
    """The artifact called ``filename`` (current revision unless ``revision``), preferring
    ``kinds`` in order when the name is a product's. A revision never published (staged or
    abandoned by a reprocessing request) only with ``unpublished`` (operators)."""
    which = Product.revision == revision if revision is not None else Product.is_current
    if not unpublished:
        which = which & published_revision()
    rank = _kind_rank(kinds)
    product = session.scalar(select(Product).where(Product.filename == filename, which))
    if product is not None:
        arts = sorted((a for a in product.artifacts if a.kind in rank), key=lambda a: (rank[a.kind], a.id))
        return _served(session, product, arts[0]) if arts else None
    derived = [k for k in kinds if k != ArtifactKind.DATA]
    if not derived:
        return None
    escaped = filename.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    candidates = session.scalars(
        select(Artifact).join(Product, Product.id == Artifact.product_id)
        .where(which, Artifact.kind.in_(derived), Artifact.uri.like(f"%/{escaped}", escape="\\"))
        .order_by(Artifact.id)
    ).all()
    for art in candidates:
        if basename(art.uri) == filename:
            return _served(session, art.product, art)
    return None


def _served(session: Session, product: Product, artifact: Artifact) -> Served:
    program = session.get(Program, product.program_id)
    number = session.scalar(select(Observation.number).where(Observation.id == product.observation_id)) \
        if product.observation_id is not None else None
    name = product.filename if artifact.kind == ArtifactKind.DATA else basename(artifact.uri)
    return Served(product, program, artifact, name, number)


def artifact_headers(artifact: Artifact, revision: int | None) -> dict[str, str]:
    """Checksum headers: RFC 3230 ``Digest``, RFC 9530 ``Repr-Digest``, plain hex and ETag
    (and ``X-DMS-Revision`` for a product revision)."""
    return checksum_headers(artifact.sha256, revision)


def checksum_headers(sha256: str, revision: int | None = None) -> dict[str, str]:
    """The headers :func:`artifact_headers` gives, from a sha256 (hex)."""
    b64 = base64.b64encode(bytes.fromhex(sha256)).decode("ascii")
    headers = {
        "Digest": f"sha-256={b64}",
        "Repr-Digest": f"sha-256=:{b64}:",
        "X-Checksum-SHA256": sha256,
        "ETag": f'"{sha256}"',
    }
    if revision is not None:
        headers["X-DMS-Revision"] = str(revision)
    return headers


@dataclass(frozen=True)
class StoredFile:
    """A stored object the API hands out: its name, where it is and what it holds."""

    name: str
    uri: str
    sha256: str
    size: int
    content_type: str
    revision: int | None = None  # a product's revision; None for a reference file

    @property
    def label(self) -> str:
        return f"{self.name} (revision {self.revision})" if self.revision is not None else self.name


def _missing(stored: StoredFile) -> HTTPException:
    log.error("catalogued object missing from the store: %s (%s)", stored.uri, stored.name)
    return HTTPException(
        status.HTTP_500_INTERNAL_SERVER_ERROR,
        detail=f"{stored.label} is catalogued but its file is "
               "missing from the object store; please report this to the archive operators",
    )


def _unavailable(stored: StoredFile, exc: StorageError) -> HTTPException:
    # the error names buckets, keys and endpoints: the log has it, the caller does not
    log.error("object store cannot deliver %s (%s): %s", stored.name, stored.uri, exc)
    return HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE,
                         detail=f"the object store cannot deliver {stored.name} now ({type(exc).__name__}); "
                                "try again shortly")


def serve(store: ObjectStore, served: Served, *, inline: bool = False, redirect: bool = False,
          head: bool = False) -> Response:
    """The response that delivers a product's file (:func:`serve_file`)."""
    a = served.artifact
    return serve_file(store, StoredFile(served.name, a.uri, a.sha256, a.size, a.content_type, served.product.revision),
                      inline=inline, redirect=redirect, head=head)


def serve_file(store: ObjectStore, stored: StoredFile, *, inline: bool = False, redirect: bool = False,
               head: bool = False) -> Response:
    """The response that delivers a stored file: the local file, a redirect, or a checked
    copy (``head``: only the headers, without reading a remote object)."""
    headers = checksum_headers(stored.sha256, stored.revision)
    disposition = "inline" if inline else "attachment"
    bucket, key = store.parse_uri(stored.uri)
    local_path = getattr(store, "local_path", None)
    if local_path is not None:
        path = Path(local_path(bucket, key))
        if not path.is_file():
            raise _missing(stored)
        return FileResponse(path, media_type=stored.content_type, filename=stored.name,
                            headers=headers, content_disposition_type=disposition)
    if head:
        headers["Content-Length"] = str(stored.size)
        headers["Content-Disposition"] = f'{disposition}; filename="{stored.name}"'
        return Response(headers=headers, media_type=stored.content_type)
    presign = getattr(store, "presigned_get_url", None)
    if redirect and presign is not None:
        try:
            url = presign(bucket, key, PRESIGN_SECONDS)
        except StorageError as exc:
            raise _unavailable(stored, exc) from exc
        return RedirectResponse(url, status_code=status.HTTP_307_TEMPORARY_REDIRECT, headers=headers)
    tmpdir = Path(tempfile.mkdtemp(prefix="dms-archive-"))
    try:
        path = store.download(bucket, key, tmpdir / stored.name)
    except ObjectNotFoundError as exc:
        shutil.rmtree(tmpdir, ignore_errors=True)
        raise _missing(stored) from exc
    except StorageError as exc:
        shutil.rmtree(tmpdir, ignore_errors=True)
        raise _unavailable(stored, exc) from exc
    return FileResponse(path, media_type=stored.content_type, filename=stored.name, headers=headers,
                        content_disposition_type=disposition,
                        background=BackgroundTask(shutil.rmtree, tmpdir, ignore_errors=True))


@contextmanager
def open_artifact(store: ObjectStore, uri: str) -> Iterator[BinaryIO]:
    """A readable binary file of a stored object (the object itself when local)."""
    bucket, key = store.parse_uri(uri)
    local_path = getattr(store, "local_path", None)
    if local_path is not None:
        with open(local_path(bucket, key), "rb") as f:
            yield f
        return
    with tempfile.TemporaryDirectory(prefix="dms-bundle-") as tmp:
        path = store.download(bucket, key, Path(tmp) / basename(key))
        with open(path, "rb") as f:
            yield f
