"""Archive one product file: store it, register it and announce it, exactly once.

Every service that makes products ends the same way: pick the revision (the current one
when the bytes are identical: a retried task), put the file at its deterministic key,
register product + artifact and record ``dms.product.archived`` in one transaction.
"""

from __future__ import annotations

import contextvars
import logging
import tempfile
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.catalog.models import (
    Artifact,
    ArtifactKind,
    Association,
    Exposure,
    Observation,
    Product,
    Program,
)
from shared.catalog.queries import (
    add_event,
    current_product,
    next_revision,
    register_product,
    staged_product,
    supersede_products,
)
from shared.catalog.work import complete as complete_work
from shared.datamodels import FitsProduct, content_type, read_product, set_cards, write_output
from shared.errors import InputError, NonRetriableError
from shared.footprints import file_region
from shared.messages import (
    Event,
    IngestSummary,
    ProductArchived,
    ProductRef,
    ProductSuperseded,
    new_event,
)
from shared.naming import object_key
from shared.runtime import ServiceContext
from shared.storage import Bucket, ContentMismatchError, ImmutableObjectError, sha256_file

__all__ = ["ArchiveAhead", "ArchivedProduct", "CurrentInput", "Placement", "archive_outputs", "archive_product",
           "current_inputs", "event_id_for", "event_product", "fetch_product", "fetch_verified", "product_ref"]

if TYPE_CHECKING:
    from shared.pipeline import Output

log = logging.getLogger(__name__)


def event_id_for(kind: str, *parts: object) -> str:
    """Deterministic event id: the same announcement made twice has one id."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "jwst-dms:" + kind + ":" + ":".join(map(str, parts))))


@dataclass(frozen=True)
class ArchivedProduct:
    ref: ProductRef
    product_id: int
    event_id: str | None  # None when an identical product was already archived
    superseded_ids: tuple[str, ...] = ()  # the dms.product.superseded events recorded with it

    @property
    def event_ids(self) -> list[str]:
        """Every event recorded with the product, to dispatch."""
        return ([self.event_id] if self.event_id else []) + list(self.superseded_ids)


def _reclaim(ctx: ServiceContext, key: str) -> bool:
    """Remove the object at ``key`` of the archive when no artifact refers to it: what an
    earlier attempt of this writer stored before its registration failed (a dropped
    connection), whose bytes the new attempt no longer has. True when removed."""
    uri = ctx.store.uri(Bucket.ARCHIVE, key)
    with ctx.catalog.session() as s:
        if s.scalar(select(Artifact.id).where(Artifact.uri == uri).limit(1)) is not None:
            return False
    log.warning("%s: removing an unregistered object of an earlier attempt, whose bytes differ", uri)
    ctx.store.remove(Bucket.ARCHIVE, key)
    return True


def archive_product(
    ctx: ServiceContext,
    path: Path,
    *,
    suffix: str,
    level: int,
    program: str,
    observation: int,
    exposure: Exposure | None,
    inputs: list[str],
    source: str,
    reference_context: str | None = None,
    segment: int | None = None,
    product_type: str = "SCIENCE",
    content_type: str = "application/fits",
    asn_id: str | None = None,
    data_release: datetime | None = None,
    asn_type: str | None = None,
    asn_rule: str | None = None,
    asn_products: Sequence[str] | None = None,
    ingest: IngestSummary | None = None,
    completes_work: bool = False,
    replaces: Sequence[str] = (),
    sole_writer: bool = False,
) -> ArchivedProduct:
    """Store ``path`` (named as the product) and register it; see the module docstring.

    ``exposure`` is the catalog row the product belongs to (None for combined products and
    associations, which belong to ``observation``, the number of an observation of
    ``program``, when the catalog has it; 0: to the program);
    ``asn_id`` names the association the product was made for (an association file: its
    own id); ``data_release`` overrides the release date (combined products:
    :func:`shared.access.combined_release` of their inputs). An association file (suffix
    ``asn``) also gives its ``asn_type``, ``asn_rule`` and ``asn_products`` (the names of the
    products it makes), and ingest's ``_uncal`` its ``ingest`` counts: they go into the
    :class:`~shared.messages.ProductArchived` payload. A new revision that replaces a
    current one also records ``dms.product.superseded``; so does each current product
    named in ``replaces`` (products of other names this one replaces: an older pool, an
    association re-made under a newer pool), which stops being current in the same
    transaction. With ``completes_work`` (the last output of a task) the work item the
    context holds is marked done in the same transaction (:func:`shared.catalog.work.complete`).
    ``sole_writer``: the caller holds a lock under which nothing else writes this product
    (the association builder's program lock); an object at the revision's key that no
    artifact refers to is then its own earlier attempt's, stored before the registration
    failed, and when its bytes differ (the file depends on the catalog, which moved since)
    it is removed and written anew, rather than failing every retry.

    Raises
    ------
    pydantic.ValidationError
        The announcement would not be a valid payload (e.g. an association file without
        ``asn_type``); nothing is registered (the stored object is harmless: same key and
        bytes next time).
    """
    filename = path.name
    sha = sha256_file(path)
    region = file_region(path)
    request = ctx.request
    with ctx.catalog.session() as s:
        rev = next_revision(s, filename, sha, request.request_id if request is not None else None)
        eap_months = s.get(Program, program).eap_months
    ref_fields = dict(
        filename=filename, suffix=suffix, program=program, observation=observation,
        visit=exposure.visit if exposure else None, exposure=exposure.exposure if exposure else None,
        detector=exposure.detector if exposure else None, exp_type=exposure.exp_type if exposure else None,
        asn_id=asn_id,
    )
    if rev.existing is not None:
        art = next(a for a in rev.existing.artifacts if a.kind == ArtifactKind.DATA)
        log.info("%s r%d is already archived with identical content", filename, rev.revision)
        ref = ProductRef(uri=art.uri, sha256=art.sha256, size=art.size, revision=rev.revision, **ref_fields)
        return ArchivedProduct(ref, rev.existing.id, None)

    def announcement(ref: ProductRef, release: datetime) -> ProductArchived:
        return ProductArchived(
            product=ref, level=level, data_release=release, ingest=ingest,
            asn_type=asn_type, asn_id=asn_id if asn_type is not None else None, asn_rule=asn_rule,
            products=tuple(asn_products) if asn_products is not None else None,
        )

    key = object_key(program, observation, rev.revision, filename)
    try:
        stored = ctx.store.put_file(Bucket.ARCHIVE, key, path, content_type, sha256=sha)
    except ImmutableObjectError:
        if not sole_writer or not _reclaim(ctx, key):
            raise
        stored = ctx.store.put_file(Bucket.ARCHIVE, key, path, content_type, sha256=sha)
    ref = ProductRef(uri=stored.uri, sha256=stored.sha256, size=stored.size, revision=rev.revision, **ref_fields)
    archived_at = datetime.now(UTC)
    if request is not None:
        return _stage_product(ctx, path, ref, stored, suffix=suffix, level=level, exposure=exposure, inputs=inputs,
                              reference_context=reference_context, segment=segment, product_type=product_type,
                              data_release=data_release, eap_months=eap_months, archived_at=archived_at,
                              s_region=region)
    with ctx.catalog.session() as s:
        exposure_id, observation_id = _catalog_place(s, program, observation, exposure)
        previous = current_product(s, filename)
        previous_revision = previous.revision if previous is not None else None
        product, created = register_product(
            s, stored=stored, filename=filename, suffix=suffix, level=level, revision=rev.revision,
            program_id=program, observation_id=observation_id, exposure_id=exposure_id, archived_at=archived_at,
            eap_months=eap_months, software_version=ctx.settings.cal_ver, inputs=inputs, segment=segment,
            reference_context=reference_context, product_type=product_type, data_release=data_release,
            s_region=region,
        )
        if not created:
            return ArchivedProduct(ref, product.id, None)
        ev = new_event(
            announcement(ref, product.data_release), source, subject=filename,
            event_id=event_id_for("archived", filename, rev.revision, stored.sha256),
        )
        add_event(s, ev)
        superseded = []
        if previous_revision is not None:
            superseded.append(add_event(s, new_event(
                ProductSuperseded(filename=filename, program=program, revision=previous_revision,
                                  superseded_by=rev.revision),
                source, subject=filename, event_id=event_id_for("superseded", filename, previous_revision),
            )).id)
        for old in supersede_products(s, (n for n in replaces if n != filename), archived_at):
            superseded.append(add_event(s, new_event(
                ProductSuperseded(filename=old.filename, program=program, revision=old.revision,
                                  superseded_by=rev.revision, replaced_by=filename),
                source, subject=old.filename, event_id=event_id_for("superseded", old.filename, old.revision),
            )).id)
            log.info("%s r%d replaced by %s", old.filename, old.revision, filename)
        if completes_work and ctx.work is not None:
            complete_work(s, ctx.work)
        product_id = product.id
    log.info("archived %s r%d (%d bytes)", filename, rev.revision, stored.size)
    return ArchivedProduct(ref, product_id, ev.id, tuple(superseded))


def _catalog_place(s: Session, program: str, observation: int | None,
                   exposure: Exposure | None) -> tuple[int | None, int | None]:
    """Catalog ids (exposure, observation) a product belongs to: its exposure's; a product
    of no exposure (a Level-3 product, an observation's association) belongs to the
    observation it is placed in, when the catalog has it (0: the program itself)."""
    if exposure is not None:
        row = s.scalar(select(Exposure).where(Exposure.name == exposure.name))
        return row.id, row.observation_id
    if not observation:
        return None, None
    return None, s.scalar(select(Observation.id).where(Observation.program_id == program,
                                                       Observation.number == observation))


def _stage_product(ctx: ServiceContext, path: Path, ref: ProductRef, stored, *, suffix: str, level: int,
                   exposure: Exposure | None, inputs: list[str], reference_context: str | None, segment: int | None,
                   product_type: str, data_release: datetime | None, eap_months: int,
                   archived_at: datetime, s_region: str | None = None) -> ArchivedProduct:
    """Register a revision a reprocessing request made: not current, no announcement (the
    request makes its unit current at once when the unit is complete,
    :func:`shared.reprocessing.complete_unit`), with why it was made and how it differs
    from the current revision (:func:`shared.changes.compare_files`). The work item stays
    open: the step's end (:func:`shared.reprocessing.step_done`) closes it in the
    transaction that advances the request, so a crash in between runs the step again."""
    from shared.changes import compare_files

    request = ctx.request
    with ctx.catalog.session() as s:
        previous = current_product(s, ref.filename)
        old = (next((a for a in previous.artifacts if a.kind == ArtifactKind.DATA), None), previous.reference_context,
               list(previous.inputs or [])) if previous is not None else None
    changes = None
    if old is not None and old[0] is not None:
        with tempfile.TemporaryDirectory(prefix="dms-compare-") as tmp:
            before = fetch_verified(ctx, old[0].uri, old[0].sha256, Path(tmp) / ref.filename)
            changes = compare_files(before, path)
    reason = {
        "request_id": request.request_id, "reason": request.reason,
        "old_context": old[1] if old is not None else None, "new_context": reference_context,
        "references": sorted(set(inputs) - set(old[2])) if old is not None else [],
    }
    with ctx.catalog.session() as s:
        exposure_id, observation_id = _catalog_place(s, ref.program, ref.observation, exposure)
        product, created = register_product(
            s, stored=stored, filename=ref.filename, suffix=suffix, level=level, revision=ref.revision,
            program_id=ref.program, observation_id=observation_id, exposure_id=exposure_id, archived_at=archived_at,
            eap_months=eap_months, software_version=ctx.settings.cal_ver, inputs=inputs, segment=segment,
            reference_context=reference_context, product_type=product_type, data_release=data_release, staged=True,
            s_region=s_region,
        )
        if created:
            product.request_id, product.request_unit = request.request_id, request.unit
            product.reason, product.changes = reason, changes
        product_id = product.id
    log.info("staged %s r%d for reprocessing request %s (%d bytes)", ref.filename, ref.revision,
             request.request_id, stored.size)
    return ArchivedProduct(ref, product_id, None)


def product_ref(session: Session, product: Product) -> ProductRef:
    """The reference to an archived product revision (its data file), from its catalog row;
    an association file's ``asn_id`` is its candidate id."""
    data = next(a for a in product.artifacts if a.kind == ArtifactKind.DATA)
    exposure = product.exposure
    observation = (session.scalar(select(Observation.number).where(Observation.id == product.observation_id))
                   if product.observation_id is not None else None)
    asn_id = None
    if product.suffix == "asn":
        asn_id = session.scalar(select(Association.acid).where(Association.filename == product.filename).limit(1))
    return ProductRef(
        uri=data.uri, filename=product.filename, suffix=product.suffix, sha256=data.sha256, size=data.size,
        revision=product.revision, program=product.program_id, observation=observation,
        visit=exposure.visit if exposure else None, exposure=exposure.exposure if exposure else None,
        detector=exposure.detector if exposure else None, exp_type=exposure.exp_type if exposure else None,
        asn_id=asn_id,
    )


def event_product(ctx: ServiceContext, event: Event) -> tuple[ProductRef, Product] | None:
    """The product an event announces and its catalog row, or None (logged) when a newer
    revision replaced it meanwhile: a task then has nothing to do."""
    ref = event.product
    if ref is None:
        raise NonRetriableError(f"event {event.id} names no product")
    with ctx.catalog.session() as s:
        product = current_product(s, ref.filename)
        if product is None or product.revision != ref.revision:
            log.info("%s r%d is no longer current; nothing to do", ref.filename, ref.revision)
            return None
        _ = product.exposure  # loaded now: callers use it after the session
    return ref, product


def fetch_verified(ctx: ServiceContext, uri: str, sha256: str, path: Path) -> Path:
    """Download ``uri`` to ``path``, checked against the recorded sha256 as it arrives."""
    try:
        return ctx.store.download_uri(uri, path, sha256=sha256)
    except ContentMismatchError as exc:
        raise NonRetriableError(f"{uri} does not have the sha256 the catalog records ({exc})") from exc


@dataclass(frozen=True)
class CurrentInput:
    """The current revision of an input product: where it is, its checksum, the exposure
    and observation it belongs to, and its archive and data-release times."""

    filename: str
    uri: str
    sha256: str
    exposure: Exposure | None
    observation: int | None
    archived_at: datetime
    data_release: datetime


def current_inputs(ctx: ServiceContext, names: Iterable[str], *, needed_by: str) -> dict[str, CurrentInput]:
    """The current revision of each named product, by name (for a reprocessing request:
    the revision it staged, when it made one).

    Raises InputError naming ``needed_by`` (e.g. the association) when one is not archived.
    """
    found = {}
    request = ctx.request
    with ctx.catalog.session() as s:
        for name in names:
            product = (staged_product(s, name, request.request_id) if request is not None else None) \
                or current_product(s, name)
            data = next((a for a in product.artifacts if a.kind == ArtifactKind.DATA), None) if product else None
            if data is None:
                raise InputError(f"{needed_by}: member {name} is not archived; archive it (or fix the "
                                 "association) and send the association again")
            exposure = product.exposure
            found[name] = CurrentInput(name, data.uri, data.sha256, exposure,
                                       exposure.observation.number if exposure is not None else None,
                                       product.archived_at, product.data_release)
    return found


def fetch_product(ctx: ServiceContext, uri: str, sha256: str, path: Path) -> FitsProduct:
    """Download a product to ``path``, check its sha256 and read it."""
    return read_product(fetch_verified(ctx, uri, sha256, path))


@dataclass(frozen=True)
class Placement:
    """Where an output belongs in the catalog and what it was made from."""

    program: str
    observation: int
    exposure: Exposure | None
    inputs: Sequence[str]
    segment: int | None = None
    data_release: datetime | None = None


def _mark_reprocessed(ctx: ServiceContext, filename: str, content) -> None:
    """Record in the product itself which request made it, why, and the context of the
    revision it replaces (a FITS product: the primary header's DMSREQID, DMSREASN and
    DMSPRCTX; a table: its metadata)."""
    request = ctx.request
    with ctx.catalog.session() as s:
        previous = current_product(s, filename)
        replaced_context = previous.reference_context if previous is not None else None
    if isinstance(content, FitsProduct):
        set_cards(content, {"DMSREQID": request.request_id, "DMSREASN": request.reason[:60] or None,
                            "DMSPRCTX": replaced_context},
                  default_hdu="PRIMARY", comments={"DMSREQID": "reprocessing request that made this revision",
                                                   "DMSREASN": "why it was requested",
                                                   "DMSPRCTX": "reference context of the revision replaced"})
    else:
        content.meta["reprocessing"] = {"request_id": request.request_id, "reason": request.reason,
                                        "replaced_context": replaced_context}


def archive_outputs(
    ctx: ServiceContext,
    outputs: Iterable[Output],
    workdir: Path,
    placement: Placement | Callable[[Output], Placement],
    *,
    level: int,
    service: str,
    reference_context: str | None,
    asn_id: str | None = None,
    final: bool = True,
) -> list[str]:
    """Write each output under ``workdir`` and archive it (:func:`archive_product`) with its
    placement (one for all, or chosen per output); the ids of the events recorded.

    When ``final`` (these are the task's last outputs; False for a task that archives
    more after), the task's work item is marked done in the transaction that registers
    the last one."""
    event_ids = []
    outputs = list(outputs)
    for i, out in enumerate(outputs):
        where = placement(out) if callable(placement) else placement
        if ctx.request is not None:
            _mark_reprocessed(ctx, out.filename, out.content)
        path = write_output(workdir / out.filename, out.content)
        archived = archive_product(
            ctx, path, suffix=out.suffix, level=level, program=where.program, observation=where.observation,
            exposure=where.exposure, inputs=list(where.inputs), source=f"{ctx.settings.source}/{service}",
            reference_context=None if reference_context in (None, "N/A") else reference_context,
            segment=where.segment, product_type=out.product_type, content_type=content_type(out.filename),
            asn_id=asn_id, data_release=where.data_release, completes_work=final and i == len(outputs) - 1,
        )
        event_ids += archived.event_ids
    return event_ids


class ArchiveAhead:
    """Outputs archived by a thread of the task while its pipeline goes on: a product that
    is final before the run ends (image3's ``_crf`` once outlier detection has run) is
    stored and registered, and its events leave, while the rest is still being made.

    ``archive(outputs)`` archives a list (e.g. :func:`archive_outputs` with the task's
    placement and ``final=False``) and returns the ids of the events it recorded. One
    thread, so the outputs are archived one at a time, in the order handed over; each
    with metadata of its own (:meth:`FitsProduct.detached`: marking it for a reprocessing
    request leaves what the pipeline reads alone), in a copy of the task's context (its
    events are dispatched at commit). Leaving the block waits for what is under way.
    """

    def __init__(self, archive: Callable[[list[Output]], list[str]]):
        self._archive = archive
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="archive-ahead")
        self._pending: list[Future[list[str]]] = []
        self.sent: set[str] = set()  # file names handed over

    def __enter__(self) -> ArchiveAhead:
        return self

    def __exit__(self, *exc) -> None:
        self._pool.shutdown(wait=True)

    def submit(self, outputs: Sequence[Output]) -> None:
        """Archive ``outputs`` in the thread (returns at once)."""
        own = [replace(out, content=_detached(out.content)) for out in outputs]
        self.sent.update(out.filename for out in own)
        self._pending.append(self._pool.submit(contextvars.copy_context().run, self._archive, own))

    def event_ids(self) -> list[str]:
        """Wait for every submitted list; the ids of the events they recorded, in order.
        Raises the error of the first that failed."""
        return [event_id for pending in self._pending for event_id in pending.result()]


def _detached(content):
    """``content`` with metadata of its own (a product's dicts, a table's meta)."""
    if isinstance(content, FitsProduct):
        return content.detached()
    return content.copy(copy_data=False)
