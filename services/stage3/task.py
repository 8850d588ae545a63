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
"""

from __future__ import annotations

import logging
import tempfile
from functools import partial
from pathlib import Path

from services.stage3.asn import Level3Association, parse_level3_asn
from services.stage3.pipeline import calibrate, members_context
from services.stage3.refcat import load_astrometric_catalog
from shared.access import combined_release
from shared.archiving import (
    ArchiveAhead,
    CurrentInput,
    Placement,
    archive_outputs,
    current_inputs,
    event_product,
    fetch_product,
    fetch_verified,
)
from shared.catalog import Product
from shared.messages import Event, ProductRef
from shared.pipeline import Output
from shared.refdata import CatalogReferences, RefDataError
from shared.refdata.contexts import resolve_context
from shared.reprocessing import reprocess_handler
from shared.runtime import ServiceContext

__all__ = ["HANDLERS", "combine_association", "handle_association"]

log = logging.getLogger(__name__)

LEVEL = 3


def handle_association(event: Event, ctx: ServiceContext) -> list[str]:
    announced = event_product(ctx, event)
    if announced is None:
        return []
    return combine_association(ctx, *announced)


def combine_association(ctx: ServiceContext, ref: ProductRef, current: Product) -> list[str]:
    """Run one archived Level-3 association and archive what it made (staged, for a
    reprocessing request).

    The ``_crf`` are archived by a thread of the task as soon as outlier detection has
    made them, while the pipeline goes on to the mosaic and the catalog: their events
    leave then, and their upload overlaps the resampling. The Level-3 products follow
    once every ``_crf`` is archived, the last of them completing the work item. The
    members' arrays are handed over to the pipeline, which lets go of each as a step
    replaces it."""
    with tempfile.TemporaryDirectory(prefix="dms-stage3-") as tmp:
        tmp = Path(tmp)
        asn = parse_level3_asn(fetch_verified(ctx, ref.uri, ref.sha256, tmp / ref.filename).read_bytes(),
                               ref.filename)
        resolved = current_inputs(ctx, asn.science, needed_by=asn.filename)
        members = [fetch_product(ctx, m.uri, m.sha256, tmp / name) for name, m in resolved.items()]
        refcat = load_astrometric_catalog(ctx.settings.astrometric_catalog_dir) if asn.asn_type == "image3" else None
        program = str(ref.program or asn.document.get("program") or asn.product_name[2:7])
        archive = partial(archive_outputs, ctx, workdir=tmp / "out", level=LEVEL, service="stage3",
                          reference_context=members_context(members), asn_id=asn.asn_id)
        # The _crf leave as soon as outlier detection has made them (a _crf names no reference).
        ahead_placement = _placement(asn, resolved, program, ref, [])
        with ArchiveAhead(partial(archive, placement=ahead_placement, final=False)) as ahead:
            result = calibrate(asn, members, abs_refcat=refcat, software_version=ctx.settings.cal_ver,
                               created=current.archived_at.isoformat(timespec="seconds"),
                               provider=CatalogReferences.of(ctx, _members_context(ctx, members)),
                               on_outputs=ahead.submit, release_inputs=True)
            event_ids = ahead.event_ids()
        for note in result.notes:
            log.info("%s: %s", asn.filename, note)
        where = _placement(asn, resolved, program, ref, result.record.reference_uris())
        return event_ids + archive([out for out in result.outputs(asn) if out.filename not in ahead.sent],
                                   placement=where)


def _members_context(ctx: ServiceContext, members) -> str | None:
    """The reference context the members were calibrated with, when the catalog has it
    (stage 3 then reads its references from the same context, and a retry gives the same
    products); else None, the current one."""
    name = members_context(members)
    if name is None:
        return None
    with ctx.catalog.session() as s:
        try:
            resolve_context(s, name)
        except RefDataError:
            return None
    return name


def _placement(asn: Level3Association, resolved: dict[str, CurrentInput], program: str, ref,
               references: list[str]):
    """Where each output goes: a 2c product with its member's exposure, a Level-3 product
    with the lowest observation of its members and the references the run used in its
    provenance (``crds://<file>``); every one released with the association's latest
    member (a 2c product is made from them all: outlier detection compares each member
    with the others)."""
    observations = [m.observation for m in resolved.values() if m.observation is not None]
    lowest = min(observations) if observations else int(ref.observation or 0)
    combined = Placement(program, lowest, None, [*asn.science, asn.filename, *references],
                         data_release=combined_release(m.data_release for m in resolved.values()))

    def where(out: Output) -> Placement:
        if out.member is None:
            return combined
        m = resolved[out.member]
        return Placement(program, m.observation if m.observation is not None else lowest, m.exposure,
                         [out.member, asn.filename], data_release=combined.data_release)

    return where


HANDLERS = {"stage3.run": handle_association, "stage3.reprocess": reprocess_handler(combine_association)}
