"""MAST's observation rows of JWST (CAOM presentation), kept in the catalog.

MAST presents JWST as one observation row per **Level-3 product** (``obs_id`` the product
name, e.g. ``jw01234-o001_t001_nircam_clear-f200w``, calib_level 3) and one per
**exposure and detector** (``obs_id`` e.g. ``jw01234001001_02101_00001_nrca1``,
calib_level the highest level of that exposure's own products: 1 or 2; its 2c products
and guide-star files do not count). Each row (:class:`~shared.catalog.models.CaomObservation`)
holds the fields a MAST search returns; the rows are the one presentation the archive's
CAOM routes, a MAST protocol endpoint and an ObsCore table read.

What belongs to a row (``caom_product``, by file name, every revision):

* an exposure row: every product of its exposure (``_uncal`` and its segments, ``_rate``,
  ``_cal``, the 2c ``_crf``, the fine-guide ``gs-fg``...), the Level-2 association that
  calibrated it, and the visit-level guide-star products of its visit (``gs-id``,
  ``gs-acq1``...: listed under every exposure of the visit, as MAST lists them);
* a Level-3 row: its Level-3 products (``_i2d``, ``_cat``, ``_segm``, ``_x1d``...) and the
  Level-3 association that made them (``association_id``).

A Level-3 row's **members** (``caom_member``) are the exposure rows of the exposures it
combines (named by its products' provenance and by its association); MAST's product list of
a Level-3 row is its own files and its members' files. Every row names each program
observation it belongs to (``caom_observation_link``): a mosaic of several observations (a
``c1NNN`` candidate) is one row linked to each.

Fields: ``t_obs_release`` is the latest data release of the row's own current products (a
Level-3 product is released with its latest member, :func:`shared.access.combined_release`;
associations, guide-star files of the visit and 2c products are listed with a row but dated
by their own rules, so they do not count);
``s_region`` the footprint of its highest-level product that has one (the S_REGION of the
file, :mod:`shared.footprints`), else a circle about the exposure's pointing (exposure
rows) or one enclosing the members' footprints (Level-3 rows); ``s_ra``/``s_dec`` the
centre of ``s_region``; ``t_min``/``t_max``/``t_exptime`` from the exposures' start and
timing (detectors read out together count once in ``t_exptime``); ``em_min``/``em_max``
(nm) the bandpass of the filter in the beam (:func:`shared.instruments.filter_band`: pivot
wavelength -/+ half its class's width), spanning a mosaic's members; ``top_filename`` the
highest-level current science product (a FITS file first): dataURL, and jpegURL when it
has a preview.

:func:`refresh_for` is called in the transaction that registers, supersedes or switches in
products (shared.catalog.queries, shared.reprocessing) and :func:`refresh_program` in the
one that moves a program's release dates (shared.access); :func:`backfill` builds the rows of
a catalog made before them (shared.catalog.db.upgrade).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from shared.catalog import sky
from shared.catalog.models import (
    Association,
    CaomMember,
    CaomObservation,
    CaomObservationLink,
    CaomProduct,
    Exposure,
    Observation,
    Product,
)
from shared.footprints import circle_region, parse_region, region_centre
from shared.instruments import (
    UnknownInstrumentError,
    detector,
    exposure_timing,
    filter_band,
    subarray,
)
from shared.naming import BadNameError, is_2c, parse_guidestar, parse_level3

__all__ = [
    "EXPOSURE",
    "LEVEL3",
    "backfill",
    "caom_rows_of",
    "dataproduct_type",
    "filters_label",
    "instrument_name",
    "refresh_for",
    "refresh_program",
]

EXPOSURE, LEVEL3 = "exposure", "level3"

# Observing mode shown after the instrument in ``instrument_name`` (MAST's JWST names).
_MODES = {
    "NRC_IMAGE": "IMAGE", "NRC_TSIMAGE": "IMAGE", "NRC_WFSS": "GRISM", "NRC_TSGRISM": "GRISM",
    "NRC_CORON": "CORON", "NRC_GRISM": "GRISM",
    "NIS_IMAGE": "IMAGE", "NIS_WFSS": "WFSS", "NIS_SOSS": "SOSS", "NIS_AMI": "AMI",
    "NRS_MSASPEC": "MSA", "NRS_FIXEDSLIT": "SLIT", "NRS_BRIGHTOBJ": "SLIT", "NRS_IFU": "IFU",
    "MIR_IMAGE": "IMAGE", "MIR_MRS": "IFU", "MIR_LRS-FIXEDSLIT": "SLIT", "MIR_LRS-SLITLESS": "SLITLESS",
    "MIR_LYOT": "CORON", "MIR_4QPM": "CORON", "MIR_CORONCAL": "CORON",
    "FGS_IMAGE": "IMAGE", "FGS_FOCUS": "IMAGE",
}
_PRODUCT_TYPES = {
    "IMAGE": "image", "CORON": "image", "AMI": "image",
    "GRISM": "spectrum", "WFSS": "spectrum", "SOSS": "timeseries", "MSA": "spectrum",
    "SLIT": "spectrum", "SLITLESS": "spectrum", "IFU": "cube",
}
_NO_ELEMENT = {"CLEAR", "CLEARP", "NONE", "N/A", "OPAQUE", ""}


def instrument_name(instrument: str, exp_type: str | None) -> str:
    """``INSTRUMENT/MODE`` as MAST names JWST modes, e.g. ``NIRCAM/IMAGE``, ``NIRISS/SOSS``."""
    exp_type = (exp_type or "").upper()
    mode = _MODES.get(exp_type) or (exp_type.split("_", 1)[1] if "_" in exp_type else exp_type)
    return f"{instrument.upper()}/{mode}" if mode else instrument.upper()


def dataproduct_type(exp_type: str | None) -> str | None:
    """image, spectrum, cube or timeseries (None when the mode is unknown)."""
    exp_type = (exp_type or "").upper()
    if exp_type.split("_", 1)[-1].startswith("TS"):
        return "timeseries"
    return _PRODUCT_TYPES.get(_MODES.get(exp_type, ""))


def filters_label(filter_: str | None, pupil: str | None) -> str:
    """The optical elements in the beam, ``;``-joined (filter, then pupil); CLEAR when none."""
    elements = [e.upper() for e in (filter_, pupil) if e and e.upper() not in _NO_ELEMENT]
    return ";".join(elements) or "CLEAR"


# ------------------------------------------------------------------ which rows a product touches


def _basename(name: str) -> str:
    return name.rstrip("/").rsplit("/", 1)[-1]


def _level3_name(filename: str) -> str | None:
    """The Level-3 product name of a Level-3 file (None for any other file)."""
    try:
        return parse_level3(filename).product_name
    except BadNameError:
        return None


def _visit(filename: str) -> int | None:
    try:
        return parse_guidestar(filename).visit
    except BadNameError:
        return None


_Key = tuple  # ("exposure", exposure_id) or ("level3", program_id, product_name)


def _keys(session: Session, product: Product) -> set[_Key]:
    """The rows ``product`` belongs to (see the module docstring)."""
    if product.exposure_id is not None:
        return {(EXPOSURE, product.exposure_id)}
    if product.suffix == "asn":
        keys: set[_Key] = set()
        for level, name in session.execute(select(Association.level, Association.product_name).where(
                Association.program_id == product.program_id, Association.filename == product.filename)):
            if level == 3:
                keys.add((LEVEL3, product.program_id, name))
            else:
                exposure_id = session.scalar(select(Exposure.id).where(Exposure.name == name))
                if exposure_id is not None:
                    keys.add((EXPOSURE, exposure_id))
        return keys
    if product.suffix.startswith("gs-"):
        visit = _visit(product.filename)
        if visit is None or product.observation_id is None:
            return set()
        return {(EXPOSURE, i) for i in session.scalars(select(Exposure.id).where(
            Exposure.observation_id == product.observation_id, Exposure.visit == visit))}
    name = _level3_name(product.filename)
    return {(LEVEL3, product.program_id, name)} if name is not None else set()


def refresh_for(session: Session, products: Iterable[Product]) -> None:
    """Bring the rows the ``products`` belong to up to date with the catalog (a row
    appears with its first current product and goes when it has none)."""
    keys: set[_Key] = set()
    for p in products:
        keys |= _keys(session, p)
    _refresh(session, keys)


def _refresh(session: Session, keys: Iterable[_Key]) -> None:
    session.flush()
    ordered = sorted(keys, key=lambda k: (k[0] != EXPOSURE, k[1:]))  # members before the mosaics
    for key in ordered:
        if key[0] == EXPOSURE:
            _refresh_exposure(session, key[1])
        else:
            _refresh_level3(session, key[1], key[2])
    session.flush()


def _program_keys(session: Session, program_id: str) -> set[_Key]:
    keys: set[_Key] = {(EXPOSURE, i) for i in session.scalars(select(Product.exposure_id).where(
        Product.program_id == program_id, Product.exposure_id.is_not(None)).distinct())}
    for name in session.scalars(select(Product.filename).where(
            Product.program_id == program_id, Product.exposure_id.is_(None), Product.level == 3,
            Product.suffix != "asn").distinct()):
        if (product_name := _level3_name(name)) is not None:
            keys.add((LEVEL3, program_id, product_name))
    for kind, exposure_id, obs_id in session.execute(select(
            CaomObservation.kind, CaomObservation.exposure_id, CaomObservation.obs_id).where(
            CaomObservation.program_id == program_id)):
        keys.add((EXPOSURE, exposure_id) if kind == EXPOSURE else (LEVEL3, program_id, obs_id))
    return keys


def refresh_program(session: Session, program_id: str) -> None:
    """Bring every row of a program up to date (its release dates moved)."""
    _refresh(session, _program_keys(session, program_id))


def backfill(session: Session) -> int:
    """Build the rows of every program that has products; the number of rows after."""
    for program_id in session.scalars(select(Product.program_id).distinct()):
        refresh_program(session, program_id)
    return session.scalar(select(func.count()).select_from(CaomObservation)) or 0


# ------------------------------------------------------------------ one row


def _aware(when: datetime | None) -> datetime | None:
    return None if when is None else (when if when.tzinfo else when.replace(tzinfo=UTC))


def _sync(session: Session, model, caom_id: int, column: str, wanted: set) -> None:
    """Make the ``column`` values of ``model`` rows of ``caom_id`` exactly ``wanted``."""
    col = getattr(model, column)
    have = set(session.scalars(select(col).where(model.caom_id == caom_id)))
    if have - wanted:
        session.execute(delete(model).where(model.caom_id == caom_id, col.in_(sorted(have - wanted))))
    for value in sorted(wanted - have):
        session.add(model(caom_id=caom_id, **{column: value}))


def _drop(session: Session, row: CaomObservation | None) -> None:
    if row is None:
        return
    for model in (CaomProduct, CaomMember, CaomObservationLink):
        session.execute(delete(model).where(model.caom_id == row.id))
    session.execute(delete(CaomMember).where(CaomMember.member_id == row.id))
    session.delete(row)


def _top(products: Iterable[Product]) -> Product | None:
    """The highest-level current science product (a FITS file first), as dataURL/jpegURL."""
    science = [p for p in products if p.product_type.upper() == "SCIENCE" and p.suffix != "asn"]
    if not science:
        return None
    return min(science, key=lambda p: (-p.level, not p.filename.endswith(".fits"), p.filename))


def _best_region(products: Iterable[Product], top: Product | None) -> str | None:
    if top is not None and top.s_region:
        return top.s_region
    ranked = sorted((p for p in products if p.s_region and p.suffix != "asn"),
                    key=lambda p: (-p.level, p.product_type.upper() != "SCIENCE", p.filename))
    return ranked[0].s_region if ranked else None


@dataclass(frozen=True)
class _Timing:
    start: datetime | None
    end: datetime | None
    effexptm: float | None


def _timing(exposure: Exposure, instrument: str) -> _Timing:
    start = _aware(exposure.start_time)
    try:
        t = exposure_timing(instrument, subarray(instrument, exposure.subarray), exposure.readpatt,
                            exposure.ngroups, exposure.nints)
    except UnknownInstrumentError:
        return _Timing(start, start, None)
    return _Timing(start, start + timedelta(seconds=t.duration) if start else None, t.effexptm)


def _pointing_circle(exposure: Exposure, instrument: str) -> str | None:
    """A circle about the exposure's pointing of its window's half diagonal."""
    if exposure.ra is None or exposure.dec is None:
        return None
    try:
        sub = subarray(instrument, exposure.subarray)
        scale = detector(exposure.detector).pixel_scale
    except UnknownInstrumentError:
        return None
    return circle_region(exposure.ra, exposure.dec, math.hypot(sub.xsize, sub.ysize) / 2 * scale / 3600.0)


def _enclosing_circle(regions: list[str]) -> str | None:
    """A circle holding every region (about the mean of their centres)."""
    if not regions:
        return None
    centres = [region_centre(r) for r in regions]
    x = sum(math.cos(math.radians(r)) for r, _ in centres)
    y = sum(math.sin(math.radians(r)) for r, _ in centres)
    ra0, dec0 = math.degrees(math.atan2(y, x)) % 360.0, sum(d for _, d in centres) / len(centres)
    radius = 0.0
    for region in regions:
        shape, n = parse_region(region)
        if shape == "CIRCLE":
            radius = max(radius, sky.separation(ra0, dec0, n[0], n[1]) + n[2])
        else:
            radius = max([radius] + [sky.separation(ra0, dec0, r, d) for r, d in zip(n[0::2], n[1::2], strict=True)])
    return circle_region(ra0, dec0, radius)


def _band(bands: list[tuple[float, float] | None]) -> tuple[float | None, float | None]:
    """(em_min, em_max) in nm spanning the bands (micrometres); None when one is unknown."""
    if not bands or any(b is None for b in bands):
        return None, None
    return round(min(b[0] for b in bands) * 1000.0, 3), round(max(b[1] for b in bands) * 1000.0, 3)


def _fill(row: CaomObservation, files: list[Product], own: list[Product], region: str | None) -> None:
    """The fields every row derives from its current files the same way."""
    top = _top(own)
    row.top_filename = top.filename if top is not None else None
    row.t_obs_release = max(_aware(p.data_release) for p in own)
    row.n_products = len(files)
    row.s_region = region
    row.s_ra, row.s_dec = region_centre(region) if region else (None, None)
    row.hpx = sky.pixel(row.s_ra, row.s_dec)
    row.updated_at = datetime.now(UTC)


def _current(session: Session, names: set[str]) -> list[Product]:
    if not names:
        return []
    return list(session.scalars(select(Product).where(Product.filename.in_(sorted(names)), Product.is_current)))


def _refresh_exposure(session: Session, exposure_id: int) -> None:
    # Two workers archiving products of one exposure refresh its row one after the other:
    # the second reads the catalog once the first has committed (PostgreSQL; SQLite has one writer).
    # FOR NO KEY UPDATE: each holds a key-share lock on the exposure already (the product it
    # inserted), which FOR UPDATE would wait for: a deadlock (shared.catalog.summary).
    exposure = session.scalar(select(Exposure).where(Exposure.id == exposure_id).with_for_update(key_share=True))
    row = session.scalar(select(CaomObservation).where(CaomObservation.exposure_id == exposure_id))
    if exposure is None:
        _drop(session, row)
        return
    obs = exposure.observation
    names = set(session.scalars(select(Product.filename).where(Product.exposure_id == exposure_id).distinct()))
    names |= set(session.scalars(select(Association.filename).where(
        Association.program_id == obs.program_id, Association.level == 2, Association.product_name == exposure.name,
        Association.filename.is_not(None))))
    names |= {n for n in session.scalars(select(Product.filename).where(
        Product.observation_id == obs.id, Product.exposure_id.is_(None), Product.suffix.like("gs-%")).distinct())
        if _visit(n) == exposure.visit}
    files = _current(session, names)
    own = [p for p in files if p.exposure_id == exposure_id]
    if not own:
        _drop(session, row)
        return
    if row is None:
        row = CaomObservation(obs_id=exposure.name, kind=EXPOSURE, program_id=obs.program_id, exposure_id=exposure_id,
                              updated_at=datetime.now(UTC))
        session.add(row)
    row.observation_id = obs.id
    row.association_id = None
    levels = [p.level for p in own if not is_2c(p.filename) and not p.suffix.startswith("gs-")]
    row.calib_level = max(levels or [p.level for p in own])
    row.instrument_name = instrument_name(obs.instrument, exposure.exp_type)
    row.filters = filters_label(exposure.filter, exposure.pupil)
    row.target_name = obs.target_name
    row.dataproduct_type = dataproduct_type(exposure.exp_type)
    timing = _timing(exposure, obs.instrument)
    row.t_min, row.t_max, row.t_exptime = timing.start, timing.end, timing.effexptm
    row.em_min, row.em_max = _band([filter_band(obs.instrument, exposure.filter, exposure.pupil)])
    main = [p for p in own if not is_2c(p.filename)] or own
    _fill(row, files, main, _best_region(main, _top(main)) or _pointing_circle(exposure, obs.instrument))
    session.flush()
    _sync(session, CaomProduct, row.id, "filename", names)
    _sync(session, CaomObservationLink, row.id, "observation_id", {obs.id})
    _sync(session, CaomMember, row.id, "member_id", set())


def _refresh_level3(session: Session, program_id: str, product_name: str) -> None:
    asn = session.scalar(select(Association).where(  # locked: one refresh of a mosaic's row at a time
        Association.program_id == program_id, Association.level == 3, Association.product_name == product_name)
        .order_by(Association.id).limit(1).with_for_update(key_share=True))
    row = session.scalar(select(CaomObservation).where(CaomObservation.obs_id == product_name))
    escaped = product_name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    candidates = session.scalars(select(Product).where(
        Product.program_id == program_id, Product.exposure_id.is_(None),
        Product.filename.like(escaped + "\\_%", escape="\\")))
    mine = [p for p in candidates if _level3_name(p.filename) == product_name]
    own = [p for p in mine if p.is_current and p.suffix != "asn"]
    if not own:
        _drop(session, row)
        return
    names = {p.filename for p in mine}
    inputs = {_basename(i) for p in own for i in p.inputs or ()}
    names |= {n for n in inputs if n.endswith("_asn.json")}
    if asn is not None and asn.filename:
        names.add(asn.filename)
    member_files = inputs | {m[0] for m in (asn.members if asn is not None else []) or () if m}
    exposure_ids = set(session.scalars(select(Product.exposure_id).where(
        Product.filename.in_(sorted(member_files)), Product.exposure_id.is_not(None)).distinct())) \
        if member_files else set()
    members = list(session.scalars(select(CaomObservation).where(
        CaomObservation.exposure_id.in_(sorted(exposure_ids))).order_by(CaomObservation.obs_id))) \
        if exposure_ids else []
    exposures = {e.id: e for e in session.scalars(select(Exposure).where(Exposure.id.in_(sorted(exposure_ids))))} \
        if exposure_ids else {}
    files = _current(session, names)
    top = _top(own)
    observations = {p.observation_id for p in own if p.observation_id is not None} | {
        m.observation_id for m in members if m.observation_id is not None}
    primary_id = top.observation_id if top is not None and top.observation_id is not None else (
        min(observations) if observations else None)
    obs = session.get(Observation, primary_id) if primary_id is not None else None
    if row is None:
        row = CaomObservation(obs_id=product_name, kind=LEVEL3, program_id=program_id, updated_at=datetime.now(UTC))
        session.add(row)
    row.observation_id = primary_id
    row.exposure_id = None
    row.association_id = asn.id if asn is not None else None
    row.calib_level = max(p.level for p in own)
    first = exposures[members[0].exposure_id] if members else None
    instrument = obs.instrument if obs is not None else parse_level3(own[0].filename).instrument.upper()
    exp_type = first.exp_type if first is not None else (obs.exp_type if obs is not None else None)
    row.instrument_name = instrument_name(instrument, exp_type)
    row.filters = (filters_label(first.filter, first.pupil) if first is not None
                   else filters_label(obs.filter if obs else None, obs.pupil if obs else None))
    row.target_name = obs.target_name if obs is not None else ""
    row.dataproduct_type = dataproduct_type(exp_type)
    starts = [_aware(m.t_min) for m in members if m.t_min is not None]
    ends = [_aware(m.t_max) for m in members if m.t_max is not None]
    row.t_min, row.t_max = (min(starts) if starts else None), (max(ends) if ends else None)
    exptime: dict[tuple, float] = {}
    for m in members:  # detectors read out together are one exposure
        e = exposures[m.exposure_id]
        key = (e.observation_id, e.visit, e.visit_group, e.sequence, e.activity, e.exposure)
        if m.t_exptime is not None:
            exptime[key] = max(exptime.get(key, 0.0), m.t_exptime)
    row.t_exptime = round(sum(exptime.values()), 6) if exptime and all(
        m.t_exptime is not None for m in members) else None
    row.em_min, row.em_max = _band([filter_band(instrument, e.filter, e.pupil) for e in exposures.values()] or [
        filter_band(instrument, obs.filter, obs.pupil) if obs is not None else None])
    region = _best_region(own, top) or _enclosing_circle([m.s_region for m in members if m.s_region])
    _fill(row, files, own, region)
    session.flush()
    _sync(session, CaomProduct, row.id, "filename", names)
    _sync(session, CaomObservationLink, row.id, "observation_id", observations)
    _sync(session, CaomMember, row.id, "member_id", {m.id for m in members})


def caom_rows_of(session: Session, observation_id: int) -> int:
    """How many CAOM rows a program observation has."""
    return session.scalar(select(func.count()).select_from(CaomObservationLink).where(
        CaomObservationLink.observation_id == observation_id)) or 0

