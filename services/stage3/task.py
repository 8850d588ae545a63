"""The stage-3 handler: a Level-3 association (image3, tso3) archived -> its products
archived.

Fetch the ASN and every science member it names (the current revision of each, checked
against its sha256), run the pipeline, and archive: one ``_crf``/``_crfints`` per member
(2c, with the member's exposure) and the Level-3 products (``_i2d``, ``_cat``, ``_segm``
or ``_phot``), each with its provenance (members and the ASN) and the data release of
its most recent contributing exposure. Idempotent: DATE is the ASN's archive time, so
the outputs are a pure function of the inputs and a retry stores nothing new.

An ASN revision that is no longer current has been superseded by one with more (or
newer) members: nothing to do. A member that is not archived is bad input.

Absolute astrometry: when the setting ``astrometric_catalog_dir`` names a directory,
the ``ra``/``dec`` columns of its ECSV files are the catalog tweakreg aligns to.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
from astropy.table import Table, vstack

from services.stage3.asn import AsnError, Level3Association, crf_name, parse_level3_asn
from services.stage3.pipeline import Image3Output, Tso3Output, run_image3, run_tso3
from services.stage3.products import card_value
from shared.access import combined_release
from shared.archiving import archive_product, event_product, fetch_verified
from shared.catalog import Exposure
from shared.catalog.queries import current_product
from shared.datamodels import FitsProduct, MalformedProductError, read_product, write_product
from shared.errors import NonRetriableError
from shared.messages import Event
from shared.runtime import ServiceContext

__all__ = ["HANDLERS", "OutputFile", "handle_association", "load_astrometric_catalog", "output_files", "write_output"]

log = logging.getLogger(__name__)

LEVEL = 3


@dataclass(frozen=True)
class _Member:
    filename: str
    uri: str
    sha256: str
    exposure: Exposure | None
    observation: int | None
    data_release: datetime


@dataclass(frozen=True)
class OutputFile:
    """One file to write and archive: ``member`` is the member filename of a 2c product
    (None for Level 3)."""

    filename: str
    suffix: str
    content: FitsProduct | Table
    member: str | None


def load_astrometric_catalog(directory: Path | None) -> tuple[np.ndarray, np.ndarray] | None:
    """(ra, dec) degrees of every ECSV catalog in ``directory``; None when there is no
    directory or no usable catalog (a file without ra/dec columns is skipped, logged)."""
    if directory is None or not Path(directory).is_dir():
        return None
    tables = []
    for path in sorted(Path(directory).glob("*.ecsv")):
        try:
            t = Table.read(path, format="ascii.ecsv")
        except Exception as exc:  # noqa: BLE001 - any unreadable file is reported and skipped
            log.warning("astrometric catalog %s is unreadable (%s); skipped", path.name, exc)
            continue
        if "ra" not in t.colnames or "dec" not in t.colnames:
            log.warning("astrometric catalog %s has no ra/dec columns; skipped", path.name)
            continue
        tables.append(Table({"ra": np.asarray(t["ra"], float), "dec": np.asarray(t["dec"], float)}))
    if not tables:
        return None
    t = vstack(tables)
    return np.asarray(t["ra"]), np.asarray(t["dec"])


def output_files(asn: Level3Association, result: Image3Output | Tso3Output) -> list[OutputFile]:
    """Everything worth archiving, with its file name, in order (2c first)."""
    out: list[OutputFile] = []
    if isinstance(result, Image3Output):
        for member, product in zip(asn.science, result.crf, strict=True):
            out.append(OutputFile(crf_name(member, asn.asn_id, "crf").format(), "crf", product, member))
        for suffix, content in (("i2d", result.i2d), ("segm", result.segm)):
            if content is not None:
                out.append(OutputFile(asn.product(suffix).format(), suffix, content, None))
        if result.cat is not None:
            out.append(OutputFile(asn.product("cat", "ecsv").format(), "cat", result.cat, None))
    else:
        for member, product in zip(asn.science, result.crfints, strict=True):
            out.append(OutputFile(crf_name(member, asn.asn_id, "crfints").format(), "crfints", product, member))
        if result.phot is not None:
            out.append(OutputFile(asn.product("phot", "ecsv").format(), "phot", result.phot, None))
    return out


def write_output(path: Path, content: FitsProduct | Table) -> Path:
    """Write a FITS product or an ECSV table to ``path``."""
    if isinstance(content, FitsProduct):
        return write_product(path, content)
    content.write(path, format="ascii.ecsv", overwrite=True)
    return path


def _resolve(ctx: ServiceContext, asn: Level3Association) -> dict[str, _Member]:
    members = {}
    with ctx.catalog.session() as s:
        for name in asn.science:
            product = current_product(s, name)
            data = next((a for a in product.artifacts if a.kind == "data"), None) if product else None
            if data is None:
                raise NonRetriableError(f"{asn.filename}: member {name} is not archived; archive it (or fix the "
                                        "association) and send the association again")
            observation = product.exposure.observation.number if product.exposure is not None else None
            members[name] = _Member(name, data.uri, data.sha256, product.exposure, observation, product.data_release)
    return members


def _run(asn: Level3Association, members: list[FitsProduct], ctx: ServiceContext, created: str):
    context = next((str(v) for m in members if (v := card_value(m, "CRDS_CTX")) not in (None, "N/A")), None)
    common = dict(software_version=ctx.settings.cal_ver, created=created, context=context, asn_table=asn.filename)
    try:
        if asn.asn_type == "image3":
            refcat = load_astrometric_catalog(ctx.settings.astrometric_catalog_dir)
            result = run_image3(members, asn.document, abs_refcat=refcat, **common)
        else:
            result = run_tso3(members, asn.document, **common)
    except ValueError as exc:
        raise NonRetriableError(f"{asn.filename}: {exc}") from exc
    for note in result.notes:
        log.info("%s: %s", asn.filename, note)
    return result, context


def handle_association(event: Event, ctx: ServiceContext) -> list[str]:
    announced = event_product(ctx, event)
    if announced is None:
        return []
    ref, current = announced
    created = current.archived_at.isoformat(timespec="seconds")
    with tempfile.TemporaryDirectory(prefix="dms-stage3-") as tmp:
        tmp = Path(tmp)
        raw = fetch_verified(ctx, ref.uri, ref.sha256, tmp / ref.filename).read_bytes()
        try:
            asn = parse_level3_asn(raw, ref.filename)
        except AsnError as exc:
            raise NonRetriableError(str(exc)) from exc
        resolved = _resolve(ctx, asn)
        members = []
        for name in asn.science:
            m = resolved[name]
            try:
                members.append(read_product(fetch_verified(ctx, m.uri, m.sha256, tmp / name)))
            except MalformedProductError as exc:
                raise NonRetriableError(str(exc)) from exc
        result, context = _run(asn, members, ctx, created)
        try:
            outputs = output_files(asn, result)
        except AsnError as exc:
            raise NonRetriableError(str(exc)) from exc
        release = combined_release(m.data_release for m in resolved.values())
        observations = [m.observation for m in resolved.values() if m.observation is not None]
        lowest = min(observations) if observations else int(ref.observation or 0)
        program = ref.program or asn.document.get("program") or asn.product_name[2:7]
        out_dir = tmp / "out"
        out_dir.mkdir()
        event_ids = []
        for out in outputs:
            path = write_output(out_dir / out.filename, out.content)
            member = resolved[out.member] if out.member else None
            archived = archive_product(
                ctx, path, suffix=out.suffix, level=LEVEL, program=str(program),
                observation=(member.observation if member and member.observation is not None else lowest),
                exposure=member.exposure if member else None,
                inputs=[out.member, ref.filename] if member else [*asn.science, ref.filename],
                source=f"{ctx.settings.source}/stage3", reference_context=context, product_type="SCIENCE",
                content_type="application/fits" if out.filename.endswith(".fits") else "text/plain",
                asn_id=asn.asn_id,
                data_release=member.data_release if member else release,
            )
            if archived.event_id:
                event_ids.append(archived.event_id)
    return event_ids


HANDLERS = {"stage3.run": handle_association}
