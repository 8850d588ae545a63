"""The detector1 handlers: ``_uncal`` archived -> ``_rate`` (+ ``_rateints``) archived;
a guide-star ``_uncal`` (catalog suffix ``gs-<mode>``) -> its ``_cal`` by calwebb_guider
(:mod:`services.detector1.guider`), AUXILIARY, placed like the raw product (its
observation, and for fine guiding the exposure it guided); and the same for a reprocessing
request's step (``detector1.reprocess``, shared.reprocessing).

Fetch the ``_uncal``, calibrate it with the references the current context selects, and
archive what it made with its provenance (the ``_uncal`` and every reference used).
Idempotent like every task: the outputs are a pure function of the inputs (DATE is the
input's archive time), keys are deterministic and registration is keyed by content.

Persistence uses the trap state archived with the latest earlier exposure of the same
detector (``_trapsfilled``); when exposures are calibrated out of order, an exposure may
run before its predecessor's state exists and is then not corrected (S_PERSIS SKIPPED).
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import numpy as np
from astropy.io import fits
from sqlalchemy import select

from services.detector1.guider import calibrate_guider
from services.detector1.pipeline import DETECTOR1, calibrate
from shared.archiving import Placement, archive_outputs, event_product, fetch_product
from shared.catalog import Artifact, ArtifactKind, Exposure, Product
from shared.messages import Event, ProductRef
from shared.naming import parse_exposure, parse_guidestar
from shared.refdata import CatalogReferences
from shared.reprocessing import reprocess_handler
from shared.runtime import ServiceContext

__all__ = ["HANDLERS", "calibrate_guide_star", "calibrate_uncal", "handle_uncal", "previous_trap_state"]

CALIBRATED_LEVEL = 2
# The trap state is archived so that the next exposure of the detector can be corrected.
SERVICE_PARAMS = DETECTOR1.params(save_trapsfilled=True)


def previous_trap_state(ctx: ServiceContext, exposure: Exposure, keywords: dict) -> tuple[np.ndarray | None, float]:
    """Trap state left by the latest earlier exposure of this detector (its ``_trapsfilled``)
    and the seconds from its end to this exposure's start; (None, 0) when there is none
    or it covers another readout window."""
    with ctx.catalog.session() as s:
        uri = s.scalar(
            select(Artifact.uri).join(Product, Artifact.product_id == Product.id)
            .join(Exposure, Product.exposure_id == Exposure.id)
            .where(Product.suffix == "trapsfilled", Product.is_current, Artifact.kind == ArtifactKind.DATA,
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
    return calibrate_uncal(ctx, *announced)


def calibrate_uncal(ctx: ServiceContext, ref: ProductRef, product: Product) -> list[str]:
    """Calibrate one archived ``_uncal`` and archive what it made (staged, for a
    reprocessing request)."""
    if product.suffix.startswith("gs-"):
        return calibrate_guide_star(ctx, ref, product)
    exposure = product.exposure
    with tempfile.TemporaryDirectory(prefix="dms-detector1-") as tmp:
        tmp = Path(tmp)
        uncal = fetch_product(ctx, ref.uri, ref.sha256, tmp / ref.filename)
        traps, since = previous_trap_state(ctx, exposure, uncal.keywords)
        result = calibrate(uncal, CatalogReferences.of(ctx), params=SERVICE_PARAMS,
                           software_version=ctx.settings.cal_ver,
                           created=product.archived_at.isoformat(timespec="seconds"),
                           trapsfilled=traps, time_since_previous=since)
        name = parse_exposure(ref.filename)
        placement = Placement(name.program, name.observation, exposure,
                              [ref.filename, *result.record.reference_uris()], segment=name.segment)
        return archive_outputs(ctx, result.outputs(ref.filename), tmp / "out", placement, level=CALIBRATED_LEVEL,
                               service="detector1", reference_context=result.context)


def calibrate_guide_star(ctx: ServiceContext, ref: ProductRef, product: Product) -> list[str]:
    """Run calwebb_guider on one archived guide-star ``_uncal`` and archive its ``_cal``
    beside it: AUXILIARY, of the same observation and (fine guiding) exposure, so the
    archive links it as it links the raw product."""
    name = parse_guidestar(ref.filename)
    with tempfile.TemporaryDirectory(prefix="dms-guider-") as tmp:
        tmp = Path(tmp)
        raw = fetch_product(ctx, ref.uri, ref.sha256, tmp / ref.filename)
        result = calibrate_guider(raw, CatalogReferences.of(ctx), software_version=ctx.settings.cal_ver,
                                  created=product.archived_at.isoformat(timespec="seconds"), label=ref.filename)
        placement = Placement(name.program, name.observation, product.exposure,
                              [ref.filename, *result.record.reference_uris()])
        return archive_outputs(ctx, result.outputs(ref.filename), tmp / "out", placement, level=CALIBRATED_LEVEL,
                               service="detector1", reference_context=result.context)


HANDLERS = {"detector1.run": handle_uncal, "detector1.reprocess": reprocess_handler(calibrate_uncal)}
