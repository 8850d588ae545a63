"""The preview handler: fetch product -> render -> store PNG + JPEG -> register artifacts.

Runs on ``dms.product.archived`` for science products (:data:`SCIENCE_SUFFIXES`) and the
fine-guide products (:data:`GUIDING_SUFFIXES`, a plot of the pointing jitter); any other
product is skipped with a log line. Idempotent: the rendering is a pure function of the
product bytes, object keys are deterministic, and artifact rows are added only when their
URI is not registered yet, so a redelivered message stores and registers nothing twice.
Previews live in ``dms-previews`` under the product's program, observation and revision and
hang off the product row as artifacts of kind ``preview`` and ``thumbnail``: the archive API
serves them under the same exclusive-access rule as the data.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from sqlalchemy import select

from services.preview.load import UnreadableProductError, load_source
from services.preview.pipeline import make_preview
from shared.catalog import Artifact, ArtifactKind, Observation, Product
from shared.errors import InputError, NonRetriableError
from shared.messages import Event, ProductRef
from shared.naming import object_key
from shared.runtime import ServiceContext
from shared.storage import Bucket, ContentMismatchError, StoredObject, sha256_file

__all__ = ["GUIDING_SUFFIXES", "HANDLERS", "SCIENCE_SUFFIXES", "handle_product", "preview_names"]

log = logging.getLogger(__name__)

#: Products that get a preview; the route to ``preview.make`` lists the same suffixes.
SCIENCE_SUFFIXES = frozenset({
    "uncal", "ramp", "rate", "rateints", "cal", "calints", "bsub", "bsubints",
    "crf", "crfints", "i2d", "s2d", "s3d", "x1d", "x1dints", "c1d",
    "phot", "whtlt", "segm", "psfstack", "psfsub",
})

#: Auxiliary products that get a preview too: the pointing jitter of a fine-guide product
#: (raw, and its calwebb_guider _cal, which carries the same centroids).
GUIDING_SUFFIXES = frozenset({"gs-fg", "gs-fg-cal"})

PNG = "image/png"
JPEG = "image/jpeg"


def preview_names(filename: str) -> tuple[str, str]:
    """(``<stem>_preview.png``, ``<stem>_thumb.jpg``) of a product file name."""
    stem = filename.rsplit(".", 1)[0]
    return f"{stem}_preview.png", f"{stem}_thumb.jpg"


def handle_product(event: Event, ctx: ServiceContext) -> list[str]:
    ref = event.product  # a malformed payload raises PayloadError (non-retriable)
    if ref is None:
        raise NonRetriableError(f"event {event.id} ({event.type}) names no product")
    if ref.suffix not in SCIENCE_SUFFIXES | GUIDING_SUFFIXES:
        log.info("no preview for %s: suffix %r is not a science product", ref.filename, ref.suffix)
        return []
    with ctx.catalog.session() as s:
        product = _product(s, ref)
        program = product.program_id
        observation = ref.observation
        if observation is None:  # e.g. a Level-3 product: the catalog's observation, else "000"
            obs = s.get(Observation, product.observation_id) if product.observation_id is not None else None
            observation = obs.number if obs is not None else 0
        registered = {a.uri for a in product.artifacts}
    png_name, jpg_name = preview_names(ref.filename)
    keys = {kind: object_key(program, observation, ref.revision, name)
            for kind, name in ((ArtifactKind.PREVIEW, png_name), (ArtifactKind.THUMBNAIL, jpg_name))}
    if all(ctx.store.uri(Bucket.PREVIEWS, key) in registered for key in keys.values()):
        log.info("%s r%d already has its preview and thumbnail", ref.filename, ref.revision)
        return []

    with tempfile.TemporaryDirectory(prefix="dms-preview-") as tmp:
        path = _fetch(ctx, ref, Path(tmp))
        try:
            preview = make_preview(load_source(path, ref.suffix), title=ref.filename)
        except (UnreadableProductError, ValueError) as exc:
            raise InputError(f"cannot make a preview of {ref.filename} r{ref.revision}: {exc}") from exc

    stored = {
        ArtifactKind.PREVIEW: _put(ctx, keys[ArtifactKind.PREVIEW], preview.png, PNG),
        ArtifactKind.THUMBNAIL: _put(ctx, keys[ArtifactKind.THUMBNAIL], preview.jpeg, JPEG),
    }
    with ctx.catalog.session() as s:
        product = _product(s, ref)
        have = {a.uri for a in product.artifacts}
        for kind, obj in stored.items():
            if obj.uri not in have:
                product.artifacts.append(Artifact(kind=kind, uri=obj.uri, sha256=obj.sha256, size=obj.size,
                                                  content_type=obj.content_type))
    log.info("preview of %s r%d (%s): %s", ref.filename, ref.revision, preview.kind, preview.note)
    return []


def _product(session, ref: ProductRef) -> Product:
    product = session.scalar(select(Product).where(Product.filename == ref.filename, Product.revision == ref.revision))
    if product is None:
        raise NonRetriableError(f"{ref.filename} r{ref.revision} is not in the catalog")
    return product


def _fetch(ctx: ServiceContext, ref: ProductRef, tmp: Path) -> Path:
    """The product file, checked against the announced sha256."""
    try:
        bucket, key = ctx.store.parse_uri(ref.uri)
    except ValueError as exc:
        raise InputError(f"product URI {ref.uri!r} is not in this object store: {exc}") from exc
    local = getattr(ctx.store, "local_path", None)  # local store: read in place, no copy
    if local is None:  # downloaded, hashed as it arrives
        try:
            return ctx.store.download(bucket, key, tmp / ref.filename, sha256=ref.sha256)
        except ContentMismatchError as exc:
            raise NonRetriableError(f"{ref.filename}: the stored object differs from the announced sha256 "
                                    f"({exc})") from exc
    path = local(bucket, key)
    if not path.is_file():
        raise NonRetriableError(f"product {ref.uri} is not in the object store")
    sha = sha256_file(path)
    if sha != ref.sha256:
        raise NonRetriableError(
            f"{ref.filename}: stored sha256 {sha[:12]}... differs from the announced {ref.sha256[:12]}..."
        )
    return path


def _put(ctx: ServiceContext, key: str, data: bytes, content_type: str) -> StoredObject:
    # An object already under this key is a preview of the same product bytes (an earlier
    # delivery that stopped before registering). Keep it rather than fail on bytes that a
    # newer matplotlib or Pillow might encode differently.
    existing = ctx.store.stat(Bucket.PREVIEWS, key)
    return existing or ctx.store.put_bytes(Bucket.PREVIEWS, key, data, content_type)


HANDLERS = {"preview.make": handle_product}
