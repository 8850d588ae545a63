"""The stage2 handler: a Level-2 association archived -> its products archived: imaging
(``image2``, ``tso-image2``) ``_cal``/``_calints`` (+ ``_i2d``, and ``_bsub`` on request),
slit spectroscopy (``spec2``, :mod:`services.stage2.spec2`) ``_cal``, ``_s2d`` and
``_x1d`` (a wide-field slitless exposure with the source catalog of its direct images,
:func:`wfss_catalog`); and the same for a reprocessing request's step (``stage2.reprocess``,
shared.reprocessing).

Fetch the association and the current revision of every member it names (checked against
its sha256), calibrate each product with the references the current context selects, and
archive what it made with its provenance (members, association, every reference used).
Idempotent like every task: the outputs are a pure function of the inputs (DATE is the
science member's archive time), keys are deterministic and registration is keyed by content.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from astropy.table import Table

from services.stage2 import pipeline as image2
from services.stage2 import spec2
from services.stage2.asn import SPEC2_ASN_TYPES, Level2Association, Level2Product, parse_level2_asn
from shared.archiving import (
    Placement,
    archive_outputs,
    current_inputs,
    event_product,
    fetch_product,
    fetch_verified,
)
from shared.datamodels import FitsProduct
from shared.datamodels.msa import read_msa_metadata
from shared.errors import InputError
from shared.messages import Event, ProductRef
from shared.naming import parse_exposure
from shared.refdata import CatalogReferences
from shared.reprocessing import reprocess_handler
from shared.runtime import ServiceContext
from shared.spectra.msa import MsaMetadata

__all__ = ["HANDLERS", "calibrate_association", "handle_association", "wfss_catalog"]

log = logging.getLogger(__name__)

CALIBRATED_LEVEL = 2
SERVICE_PARAMS = image2.IMAGE2.params()
SPEC2_PARAMS = spec2.SPEC2.params()


def _run_product(ctx: ServiceContext, asn: Level2Association, product: Level2Product, tmp: Path, *,
                 last: bool) -> list[str]:
    members = current_inputs(ctx, [product.science, *product.backgrounds], needed_by=f"association {asn.filename}")
    for ignored in product.ignored:
        log.info("%s: member %s is not used by stage 2", asn.filename, ignored)
    science_member = members[product.science]
    science, *backgrounds = (fetch_product(ctx, members[n].uri, members[n].sha256, tmp / n)
                             for n in (product.science, *product.backgrounds))
    common = {"backgrounds": backgrounds, "software_version": ctx.settings.cal_ver,
              "created": science_member.archived_at.isoformat(timespec="seconds"), "asn_table": asn.filename,
              "asn_pool": asn.asn_pool}
    plan_files = []
    if asn.asn_type in SPEC2_ASN_TYPES:
        needed_by = f"association {asn.filename}"
        msa = _msa_metadata(ctx, science, tmp, needed_by=needed_by)
        catalog = wfss_catalog(ctx, science, product, tmp, needed_by=needed_by)
        plan_files = [msa.filename] if msa is not None else []
        if catalog is not None:  # the direct images' products the spectra were found with
            plan_files += [n for n in (product.sourcecat, product.direct_image) if n]
        result = spec2.calibrate(science, CatalogReferences.of(ctx), params=SPEC2_PARAMS, msa=msa, catalog=catalog,
                                 **common)
    else:
        result = image2.calibrate(science, CatalogReferences.of(ctx), params=SERVICE_PARAMS, **common)
    name = parse_exposure(product.science)
    placement = Placement(name.program, name.observation, science_member.exposure,
                          [product.science, *product.backgrounds, *plan_files, asn.filename,
                           *result.record.reference_uris()],
                          segment=name.segment)
    return archive_outputs(ctx, result.outputs(product.science), tmp / "out", placement, level=CALIBRATED_LEVEL,
                           service="stage2", reference_context=result.context, asn_id=asn.asn_id, final=last)


def _msa_metadata(ctx: ServiceContext, science: FitsProduct, tmp: Path, *, needed_by: str) -> MsaMetadata | None:
    """The archived MSA metadata file a NIRSpec MOS exposure names (MSAMETFL); None for
    any other exposure.

    Raises InputError when it names none, or one that is not archived or unreadable."""
    if str(science.keywords.get("EXP_TYPE") or "").upper() != spec2.MOS_EXP_TYPE:
        return None
    filename = str(science.keywords.get("MSAMETFL") or "").strip()
    if not filename:
        raise InputError(f"{needed_by}: the MOS exposure {science.keywords.get('FILENAME')} names no MSA metadata "
                         "file (MSAMETFL)")
    found = current_inputs(ctx, [filename], needed_by=needed_by)[filename]
    try:
        return read_msa_metadata(fetch_verified(ctx, found.uri, found.sha256, tmp / filename))
    except ValueError as exc:
        raise InputError(f"{needed_by}: {exc}") from exc


def wfss_catalog(ctx: ServiceContext, science: FitsProduct, product: Level2Product, tmp: Path, *,
                 needed_by: str) -> Table | None:
    """The source catalog of a wide-field slitless exposure (EXP_TYPE in
    :data:`services.stage2.spec2.WFSS_EXP_TYPES`): the current revision of its association product's
    ``sourcecat`` member (the direct images' ``_cat.ecsv``), checked against its sha256
    and read as an ECSV table. None for any other exposure.

    Raises InputError when the association names no source catalog, or one that is not
    archived or cannot be read as an ECSV table."""
    exp_type = str(science.keywords.get("EXP_TYPE") or "").upper()
    if exp_type not in spec2.WFSS_EXP_TYPES:
        return None
    filename = product.sourcecat
    if not filename:
        raise InputError(f"{needed_by}: the wide-field slitless exposure {product.science} ({exp_type}) has no "
                         "sourcecat member; its spectra are found from the source catalog of its direct images "
                         "(their image3 _cat.ecsv), which the association must name")
    found = current_inputs(ctx, [filename], needed_by=needed_by)[filename]
    path = fetch_verified(ctx, found.uri, found.sha256, tmp / filename)
    try:
        return Table.read(path, format="ascii.ecsv")
    except (ValueError, KeyError, UnicodeDecodeError) as exc:
        raise InputError(f"{needed_by}: the source catalog {filename} cannot be read as an ECSV table "
                         f"({type(exc).__name__}: {exc}); archive a readable catalog and send the association "
                         "again") from exc


def handle_association(event: Event, ctx: ServiceContext) -> list[str]:
    announced = event_product(ctx, event)
    if announced is None:
        return []
    return calibrate_association(ctx, *announced)


def calibrate_association(ctx: ServiceContext, ref: ProductRef, _product=None) -> list[str]:
    """Calibrate every product of one archived Level-2 association and archive what it
    made (staged, for a reprocessing request)."""
    event_ids: list[str] = []
    with tempfile.TemporaryDirectory(prefix="dms-stage2-") as tmp:
        tmp = Path(tmp)
        asn = parse_level2_asn(fetch_verified(ctx, ref.uri, ref.sha256, tmp / ref.filename).read_bytes(),
                               ref.filename)
        for i, product in enumerate(asn.products):
            event_ids += _run_product(ctx, asn, product, tmp, last=i == len(asn.products) - 1)
    return event_ids


HANDLERS = {"stage2.run": handle_association, "stage2.reprocess": reprocess_handler(calibrate_association)}
