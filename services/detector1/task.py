"""The detector1 handler: ``_uncal`` archived -> ``_rate`` (+ ``_rateints``) archived.

Fetch the ``_uncal`` and the references the current context selects, run the pipeline,
archive what it made with its provenance (the ``_uncal`` and every reference used).
Idempotent like every task: the outputs are a pure function of the inputs (DATE is the
input's archive time), keys are deterministic and registration is keyed by content.

Persistence uses the trap state archived with the latest earlier exposure of the same
detector (``_trapsfilled``); when exposures are calibrated out of order, an exposure may
run before its predecessor's state exists and is then not corrected (S_PERSIS SKIPPED).
"""

from __future__ import annotations

import io
import logging
import tempfile
from pathlib import Path

import numpy as np
from astropy.io import fits
from sqlalchemy import select

from services.detector1.pipeline import (
    DARK_EXP_TYPES,
    Detector1Output,
    Detector1Params,
    run_detector1,
    step_sequence,
)
from services.detector1.references import LoadedReference, Window, load_reference, needed_reftypes
from shared.archiving import archive_product, event_product, fetch_verified
from shared.catalog import Artifact, Exposure, Product
from shared.datamodels import FitsProduct, MalformedProductError, read_product, write_product
from shared.errors import NonRetriableError
from shared.instruments import detector
from shared.messages import Event
from shared.naming import parse_exposure
from shared.refdata import best_references, fetch
from shared.runtime import ServiceContext

__all__ = ["HANDLERS", "handle_uncal", "output_products"]

log = logging.getLogger(__name__)

CALIBRATED_LEVEL = 2
# The trap state is archived so that the next exposure of the detector can be corrected.
SERVICE_PARAMS = Detector1Params(save_trapsfilled=True)


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


def previous_trap_state(ctx: ServiceContext, exposure: Exposure, keywords: dict) -> tuple[np.ndarray | None, float]:
    """Trap state left by the latest earlier exposure of this detector (its ``_trapsfilled``)
    and the seconds from its end to this exposure's start; (None, 0) when there is none
    or it covers another readout window."""
    with ctx.catalog.session() as s:
        uri = s.scalar(
            select(Artifact.uri).join(Product, Artifact.product_id == Product.id)
            .join(Exposure, Product.exposure_id == Exposure.id)
            .where(Product.suffix == "trapsfilled", Product.is_current, Artifact.kind == "data",
                   Exposure.detector == exposure.detector, Exposure.start_time < exposure.start_time)
            .order_by(Exposure.start_time.desc()).limit(1)
        )
    if uri is None:
        return None, 0.0
    with fits.open(io.BytesIO(ctx.store.get_uri(uri))) as hdul:
        traps = np.array(hdul["SCI"].data[0], dtype=np.float32)
        ended = float(hdul[0].header["EXPEND"])
    if traps.shape != (int(keywords["SUBSIZE2"]), int(keywords["SUBSIZE1"])):
        return None, 0.0
    return traps, max(0.0, (float(keywords["EXPSTART"]) - ended) * 86400.0)


def handle_uncal(event: Event, ctx: ServiceContext) -> list[str]:
    announced = event_product(ctx, event)
    if announced is None:
        return []
    ref, product = announced
    exposure = product.exposure
    created = product.archived_at.isoformat(timespec="seconds")
    name = parse_exposure(ref.filename)
    with tempfile.TemporaryDirectory(prefix="dms-detector1-") as tmp:
        tmp = Path(tmp)
        path = fetch_verified(ctx, ref.uri, ref.sha256, tmp / ref.filename)
        try:
            uncal = read_product(path)
        except MalformedProductError as exc:
            raise NonRetriableError(str(exc)) from exc
        kw = uncal.keywords
        steps = list(step_sequence(kw["INSTRUME"], kw["EXP_TYPE"]))
        refs, context = select_references(ctx, kw, needed_reftypes(steps), ctx.settings.var_dir / "refcache")
        traps, since = previous_trap_state(ctx, exposure, kw)
        result = run_detector1(uncal, refs, params=SERVICE_PARAMS, context=context,
                               software_version=ctx.settings.cal_ver, created=created, trapsfilled=traps,
                               time_since_previous=since)
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
