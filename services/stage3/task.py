"""The stage-3 handler: a Level-3 association (image3, tso3) archived -> its products
archived.

Fetch the ASN and every science member it names (the current revision of each, checked
against its sha256), run the pipeline, and archive: one ``_crf``/``_crfints`` per member
(2c, with the member's exposure) and the Level-3 products (``_i2d``, ``_cat``, ``_segm``
or ``_phot``, in the observation of their lowest member), each with its provenance
(members and the ASN) and the data release of the association's most recent member. Idempotent: DATE is the ASN's archive time, so
the outputs are a pure function of the inputs and a retry stores nothing new.

An ASN revision that is no longer current has been superseded by one with more (or
newer) members: nothing to do. A member that is not archived is bad input.

Absolute astrometry: when the setting ``astrometric_catalog_dir`` names a directory,
the ``ra``/``dec`` columns of its ECSV files are the catalog tweakreg aligns to.

References (image3's catalog: APCORR, ABVEGAOFFSET) come from the catalog, in the
context the members were calibrated with (the current one when the catalog does not have
it). Notes of the run are logged (a failed absolute alignment is also a warning of the
pipeline).

A large image3 association is split across tasks (:mod:`services.stage3.parts`): this
task then records the first part of each member and ends; ``stage3.part`` runs the
parts, as map and reduce over the stage-3 workers.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path

from services.stage3.asn import Level3Association
from services.stage3.parts import handle_part, read_association, split, splits
from services.stage3.pipeline import calibrate, members_context
from services.stage3.placement import catalog_context, placement
from services.stage3.refcat import load_astrometric_catalog
from shared.archiving import (
    ArchiveAhead,
    archive_outputs,
    current_inputs,
    event_product,
    fetch_product,
    fetch_verified,
)
from shared.catalog import Product
from shared.datamodels import FitsProduct, read_product
from shared.messages import Event, ProductRef
from shared.refdata import CatalogReferences
from shared.reprocessing import request_scope, step_done, step_input
from shared.runtime import ServiceContext

__all__ = ["HANDLERS", "combine_association", "handle_association", "reprocess_association"]

log = logging.getLogger(__name__)

LEVEL = 3


def handle_association(event: Event, ctx: ServiceContext) -> list[str]:
    announced = event_product(ctx, event)
    if announced is None:
        return []
    ref, current = announced
    asn = read_association(ctx, ref)
    if splits(ctx, asn):
        return split(ctx, ref, asn, None)
    return combine_association(ctx, ref, current, asn)


def reprocess_association(event: Event, ctx: ServiceContext) -> list[str]:
    """A reprocessing request's stage-3 step: the association run for the request (staged
    outputs, the request's inputs and context), then the step is done; a split run ends
    the step when it has combined its parts."""
    scoped = request_scope(ctx, event)
    if scoped is None:
        return []
    step, scoped_ctx = scoped
    ref, current = step_input(scoped_ctx, step)
    asn = read_association(scoped_ctx, ref)
    if splits(scoped_ctx, asn):
        return split(scoped_ctx, ref, asn, step)
    combine_association(scoped_ctx, ref, current, asn)
    return step_done(scoped_ctx, step)


def _fetch_members(ctx: ServiceContext, asn: Level3Association, resolved: dict, tmp: Path
                   ) -> tuple[list[FitsProduct], Callable[[int], FitsProduct] | None]:
    """The members, fetched and checked: read whole for image3 and spec3, which take them
    all at once; for tso3, which takes one after another, their metadata and how to read
    member i whole when it is taken."""
    if asn.asn_type != "tso3":
        return [fetch_product(ctx, m.uri, m.sha256, tmp / name) for name, m in resolved.items()], None
    paths = [fetch_verified(ctx, m.uri, m.sha256, tmp / name) for name, m in resolved.items()]
    return [read_product(path, arrays=False) for path in paths], lambda i: read_product(paths[i])


def combine_association(ctx: ServiceContext, ref: ProductRef, current: Product, asn: Level3Association) -> list[str]:
    """Run one archived Level-3 association in this task and archive what it made (staged,
    for a reprocessing request).

    The ``_crf`` are archived by a thread of the task as soon as outlier detection has
    made them, while the pipeline goes on to the mosaic and the catalog: their events
    leave then, and their upload overlaps the resampling. The Level-3 products follow
    once every ``_crf`` is archived, the last of them completing the work item. The
    members' arrays are handed over to the pipeline, which lets go of each as a step
    replaces it."""
    with tempfile.TemporaryDirectory(prefix="dms-stage3-") as tmp:
        tmp = Path(tmp)
        resolved = current_inputs(ctx, asn.science, needed_by=asn.filename)
        members, load = _fetch_members(ctx, asn, resolved, tmp)
        refcat = load_astrometric_catalog(ctx.settings.astrometric_catalog_dir) if asn.asn_type == "image3" else None
        program = str(ref.program or asn.document.get("program") or asn.product_name[2:7])
        archive = partial(archive_outputs, ctx, workdir=tmp / "out", level=LEVEL, service="stage3",
                          reference_context=members_context(members), asn_id=asn.asn_id)
        # The _crf leave as soon as outlier detection has made them (a _crf names no reference).
        ahead_placement = placement(asn, resolved, program, ref, [])
        with ArchiveAhead(partial(archive, placement=ahead_placement, final=False)) as ahead:
            result = calibrate(asn, members, abs_refcat=refcat, software_version=ctx.settings.cal_ver,
                               created=current.archived_at.isoformat(timespec="seconds"),
                               provider=CatalogReferences.of(ctx, catalog_context(ctx, members_context(members))),
                               on_outputs=ahead.submit, release_inputs=True, load=load)
            event_ids = ahead.event_ids()
        for note in result.notes:
            log.info("%s: %s", asn.filename, note)
        where = placement(asn, resolved, program, ref, result.record.reference_uris())
        return event_ids + archive([out for out in result.outputs(asn) if out.filename not in ahead.sent],
                                   placement=where)


HANDLERS = {"stage3.run": handle_association, "stage3.reprocess": reprocess_association, "stage3.part": handle_part,
            "stage3.reprocess-part": handle_part}
