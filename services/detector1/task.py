"""The detector1 handler: ``_uncal`` archived -> ``_rate`` (+ ``_rateints``) archived.

Fetch the ``_uncal`` and the references the current context selects, run the pipeline,
archive what it made with its provenance (the ``_uncal`` and every reference used).
Idempotent like every task: the outputs are a pure function of the inputs (DATE is the
input's archive time), keys are deterministic and registration is keyed by content.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from services.detector1.pipeline import (
    DARK_EXP_TYPES,
    Detector1Output,
    run_detector1,
    step_sequence,
)
from services.detector1.references import LoadedReference, Window, load_reference, needed_reftypes
from shared.archiving import archive_product
from shared.catalog.queries import current_product
from shared.datamodels import FitsProduct, MalformedProductError, read_product, write_product
from shared.errors import NonRetriableError
from shared.instruments import detector
from shared.messages import Event, ProductRef
from shared.naming import parse_exposure
from shared.refdata import best_references, fetch
from shared.runtime import ServiceContext
from shared.storage import sha256_file

__all__ = ["HANDLERS", "handle_uncal", "output_products"]

log = logging.getLogger(__name__)

CALIBRATED_LEVEL = 2


def output_products(result: Detector1Output, exp_type: str) -> list[tuple[str, FitsProduct, str]]:
    """(suffix, product, productType) of everything worth archiving, in order."""
    ramp_suffix = "dark" if exp_type.upper() in DARK_EXP_TYPES else "ramp"
    out = [
        ("rate", result.rate, "SCIENCE"),
        ("rateints", result.rateints, "SCIENCE"),
        (ramp_suffix, result.ramp, "SCIENCE" if result.rate is None else "AUXILIARY"),
        ("trapsfilled", result.trapsfilled, "AUXILIARY"),
    ]
    return [(s, p, t) for s, p, t in out if p is not None]


def select_references(ctx: ServiceContext, keywords: dict, reftypes: list[str], cache: Path,
                      ) -> tuple[dict[str, LoadedReference | None], str | None]:
    """Load the references the current context selects for these science keywords."""
    with ctx.catalog.session() as s:
        selections = best_references(s, keywords, reftypes)
    det = detector(keywords["DETECTOR"])
    window = Window.from_keywords(keywords)
    refs: dict[str, LoadedReference | None] = {}
    context = None
    for reftype, sel in selections.items():
        context = context or sel.context
        if sel.filename is None:
            log.warning("%s: no %s reference: %s", keywords.get("FILENAME"), reftype, sel.reason)
            refs[reftype] = None
            continue
        refs[reftype] = load_reference(reftype, fetch(ctx.store, sel, cache), window, (det.ny, det.nx))
    return refs, context


def handle_uncal(event: Event, ctx: ServiceContext) -> list[str]:
    ref: ProductRef | None = event.product
    if ref is None:
        raise NonRetriableError(f"event {event.id} names no product")
    with ctx.catalog.session() as s:
        product = current_product(s, ref.filename)
        if product is None or product.revision != ref.revision:
            log.info("%s r%d is no longer current; nothing to do", ref.filename, ref.revision)
            return []
        exposure = product.exposure
        created = product.archived_at.isoformat(timespec="seconds")
    name = parse_exposure(ref.filename)
    with tempfile.TemporaryDirectory(prefix="dms-detector1-") as tmp:
        tmp = Path(tmp)
        path = ctx.store.download_uri(ref.uri, tmp / ref.filename)
        if sha256_file(path) != ref.sha256:
            raise NonRetriableError(f"{ref.uri} does not have the sha256 its event announced")
        try:
            uncal = read_product(path)
        except MalformedProductError as exc:
            raise NonRetriableError(str(exc)) from exc
        kw = uncal.keywords
        steps = list(step_sequence(kw["INSTRUME"], kw["EXP_TYPE"]))
        refs, context = select_references(ctx, kw, needed_reftypes(steps), ctx.settings.var_dir / "refcache")
        result = run_detector1(uncal, refs, context=context, software_version=ctx.settings.cal_ver, created=created)
        for note in result.notes:
            log.info("%s: %s", ref.filename, note)
        inputs = [ref.filename, *(f"crds://{f}" for f in result.references.values())]
        event_ids = []
        for suffix, out, product_type in output_products(result, kw["EXP_TYPE"]):
            out_path = write_product(tmp / name.with_suffix(suffix).format(), out)
            archived = archive_product(
                ctx, out_path, suffix=suffix, level=CALIBRATED_LEVEL, program=name.program,
                observation=name.observation, exposure=exposure, inputs=inputs, source=f"{ctx.settings.source}/detector1",
                reference_context=context, segment=name.segment, product_type=product_type,
            )
            if archived.event_id:
                event_ids.append(archived.event_id)
    return event_ids


HANDLERS = {"detector1.run": handle_uncal}
