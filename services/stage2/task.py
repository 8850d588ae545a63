"""The stage2 handler: a Level-2 imaging association archived -> ``_cal``/``_calints``
(+ ``_i2d``, and ``_bsub`` on request) archived.

Fetch the association, resolve its members through the catalog, select references with
the current context, run calwebb_image2 per product, and archive what it made with its
provenance (members, association, every reference used). Idempotent like every task: the
outputs are a pure function of the inputs (DATE is the science member's archive time),
keys are deterministic and registration is keyed by content.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

from services.stage2.asn import Level2Association, Level2Product, parse_level2_asn
from services.stage2.pipeline import Image2Output, Image2Params, run_image2
from services.stage2.references import IMAGE2_REFTYPES, Image2References, Window, load_references
from shared.archiving import archive_product, event_product, fetch_verified
from shared.catalog import Exposure
from shared.catalog.queries import current_product
from shared.datamodels import FitsProduct, MalformedProductError, read_product, write_product
from shared.errors import NonRetriableError
from shared.instruments import UnknownInstrumentError, detector
from shared.messages import Event
from shared.naming import BadNameError, ExposureName, parse_exposure
from shared.refdata import HeaderError, best_references, fetch
from shared.runtime import ServiceContext

__all__ = ["HANDLERS", "handle_association", "output_name", "select_references"]

log = logging.getLogger(__name__)

CALIBRATED_LEVEL = 2
SERVICE_PARAMS = Image2Params()
AUXILIARY_SUFFIXES = frozenset({"bsub", "bsubints"})


@dataclass(frozen=True)
class Member:
    """A resolved association member: its current product's file, checksum and exposure."""

    filename: str
    uri: str
    sha256: str
    exposure: Exposure | None
    archived_at: str


def output_name(science: str, suffix: str) -> ExposureName:
    """The name of a product made from the science member ``science`` (a ``_rate`` or
    ``_rateints`` file name), e.g. suffix ``cal``."""
    try:
        return parse_exposure(science).with_suffix(suffix)
    except BadNameError as exc:
        raise NonRetriableError(f"science member {science}: {exc}") from exc


def select_references(ctx: ServiceContext, keywords: dict, cache: Path) -> tuple[Image2References, str | None]:
    """Load the image2 references the current context selects for these science keywords."""
    try:
        with ctx.catalog.session() as s:
            selections = best_references(s, keywords, [t.upper() for t in IMAGE2_REFTYPES])
        det = detector(str(keywords["DETECTOR"]))
    except (HeaderError, KeyError, UnknownInstrumentError) as exc:
        raise NonRetriableError(f"{keywords.get('FILENAME')}: cannot select references: {exc}") from exc
    context = next((sel.context for sel in selections.values() if sel.context), None)
    paths: dict[str, Path | None] = {}
    for reftype, sel in selections.items():
        if sel.filename is None:
            log.warning("%s: no %s reference: %s", keywords.get("FILENAME"), reftype, sel.reason)
            paths[reftype.lower()] = None
        else:
            paths[reftype.lower()] = fetch(ctx.store, sel, cache)
    return load_references(paths, Window.from_keywords(keywords), (det.ny, det.nx)), context


def _resolve(ctx: ServiceContext, asn: Level2Association, names: list[str]) -> dict[str, Member]:
    members = {}
    with ctx.catalog.session() as s:
        for name in names:
            product = current_product(s, name)
            data = next((a for a in product.artifacts if a.kind == "data"), None) if product else None
            if data is None:
                raise NonRetriableError(f"association {asn.filename}: member {name} is not in the archive")
            members[name] = Member(name, data.uri, data.sha256, product.exposure,
                                   product.archived_at.isoformat(timespec="seconds"))
    return members


def _read_member(ctx: ServiceContext, member: Member, tmp: Path) -> FitsProduct:
    path = fetch_verified(ctx, member.uri, member.sha256, tmp / member.filename)
    try:
        return read_product(path)
    except MalformedProductError as exc:
        raise NonRetriableError(str(exc)) from exc


def _run_product(ctx: ServiceContext, asn: Level2Association, product: Level2Product, tmp: Path) -> list[str]:
    members = _resolve(ctx, asn, [product.science, *product.backgrounds])
    for ignored in product.ignored:
        log.info("%s: member %s is not used by imaging", asn.filename, ignored)
    science_member = members[product.science]
    science = _read_member(ctx, science_member, tmp)
    backgrounds = [_read_member(ctx, members[b], tmp) for b in product.backgrounds]
    refs, context = select_references(ctx, science.keywords, ctx.settings.var_dir / "refcache")
    result: Image2Output = run_image2(
        science, refs, backgrounds=backgrounds, params=SERVICE_PARAMS, context=context,
        software_version=ctx.settings.cal_ver, created=science_member.archived_at,
        asn_table=asn.filename, asn_pool=asn.asn_pool,
    )
    for note in result.notes:
        log.info("%s: %s", product.science, note)
    inputs = [product.science, *product.backgrounds, asn.filename,
              *(f"crds://{f}" for f in result.references.values())]
    event_ids = []
    for suffix, out in result.products():
        name = output_name(product.science, suffix)
        path = write_product(tmp / "out" / name.format(), out)
        archived = archive_product(
            ctx, path, suffix=suffix, level=CALIBRATED_LEVEL, program=name.program, observation=name.observation,
            exposure=science_member.exposure, inputs=inputs, source=f"{ctx.settings.source}/stage2",
            reference_context=context, segment=name.segment, asn_id=asn.asn_id,
            product_type="AUXILIARY" if suffix in AUXILIARY_SUFFIXES else "SCIENCE",
        )
        if archived.event_id:
            event_ids.append(archived.event_id)
    return event_ids


def handle_association(event: Event, ctx: ServiceContext) -> list[str]:
    announced = event_product(ctx, event)
    if announced is None:
        return []
    ref, _ = announced
    raw = ctx.store.get_uri(ref.uri)
    if hashlib.sha256(raw).hexdigest() != ref.sha256:
        raise NonRetriableError(f"{ref.uri} does not have the sha256 its event announced")
    asn = parse_level2_asn(raw, ref.filename)
    event_ids: list[str] = []
    with tempfile.TemporaryDirectory(prefix="dms-stage2-") as tmp:
        for product in asn.products:
            event_ids += _run_product(ctx, asn, product, Path(tmp))
    return event_ids


HANDLERS = {"stage2.run": handle_association}
