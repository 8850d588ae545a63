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
wavelength -/+ half its class's width), spanning a mosaic's members; ``dataproduct_type``
from the exposure type (a Level-3 row: its first member's) and the observation's TSOVISIT
(:func:`dataproduct_type`: a time series is ``timeseries`` whatever its mode);
``top_filename`` the highest-level current science product (a FITS file first): dataURL,
and jpegURL when it has a preview.

:func:`refresh_for` is called in the transaction that registers, supersedes or switches in
products (shared.catalog.queries, shared.reprocessing) and :func:`refresh_program` in the
one that moves a program's release dates (shared.access) or records a plan that changes an
observation's TSOVISIT (shared.catalog.queries.upsert_program); :func:`backfill` builds the
rows of a catalog made before them (shared.catalog.db.upgrade).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from sqlalchemy import delete, func, insert, select
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
    "TIME_SERIES_EXP_TYPES",
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
# Exposure types MAST types ``timeseries`` whatever TSOVISIT says: the public pipeline's
# TSO_EXP_TYPES and NIRISS SOSS.
TIME_SERIES_EXP_TYPES = frozenset({"NRC_TSIMAGE", "NRC_TSGRISM", "NRS_BRIGHTOBJ", "NIS_SOSS"})


def instrument_name(instrument: str, exp_type: str | None) -> str:
    """``INSTRUMENT/MODE`` as MAST names JWST modes, e.g. ``NIRCAM/IMAGE``, ``NIRISS/SOSS``."""
    exp_type = (exp_type or "").upper()
    mode = _MODES.get(exp_type) or (exp_type.split("_", 1)[1] if "_" in exp_type else exp_type)
    return f"{instrument.upper()}/{mode}" if mode else instrument.upper()


def dataproduct_type(exp_type: str | None, tsovisit: bool | None = None) -> str | None:
    """image, spectrum, cube or timeseries (None when the mode is unknown), as MAST types JWST
    observations: ``timeseries`` for a time-series visit (TSOVISIT true) of any mode and for
    the modes that are time series by themselves (:data:`TIME_SERIES_EXP_TYPES`), else the
    type of the mode. ``tsovisit`` None: not known (the mode decides alone)."""
    exp_type = (exp_type or "").upper()
    if tsovisit or exp_type in TIME_SERIES_EXP_TYPES:
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
    """Build the rows of every program that has products (a catalog archived before them);
    the number of rows after. A program without rows is built from a few queries of its
    products, exposures and associations (the fields of :func:`refresh_program`, written in
    bulk); one that has rows already is refreshed."""
    having = set(session.scalars(select(CaomObservation.program_id).distinct()))
    for program_id in session.scalars(select(Product.program_id).distinct()).all():
        if program_id in having:
            refresh_program(session, program_id)
        else:
            _build_program(session, program_id)
    return session.scalar(select(func.count()).select_from(CaomObservation)) or 0


# What the rows read of a product (attribute access, as of the ORM objects the refresh reads).
_PRODUCT_COLUMNS = (Product.filename, Product.suffix, Product.level, Product.product_type, Product.is_current,
                    Product.exposure_id, Product.observation_id, Product.data_release, Product.s_region,
                    Product.inputs)


def _build_program(session: Session, program_id: str) -> None:
    """The rows of a program that has none, as :func:`refresh_program` would make them."""
    products = session.execute(select(*_PRODUCT_COLUMNS).where(Product.program_id == program_id)).all()
    observations = {o.id: o for o in session.scalars(select(Observation).where(Observation.program_id == program_id))}
    exposures = {e.id: e for e in session.scalars(select(Exposure).join(Observation).where(
        Observation.program_id == program_id))}
    associations = list(session.scalars(select(Association).where(Association.program_id == program_id)
                                         .order_by(Association.id)))
    current: dict[str, list] = defaultdict(list)
    of_exposure: dict[int, set[str]] = defaultdict(set)
    exposure_of: dict[str, int] = {}
    guide: dict[tuple[int, int], set[str]] = defaultdict(set)
    level3: dict[str, list] = defaultdict(list)
    level3_keys: set[str] = set()
    for p in products:
        if p.is_current:
            current[p.filename].append(p)
        if p.exposure_id is not None:
            of_exposure[p.exposure_id].add(p.filename)
            exposure_of[p.filename] = p.exposure_id
            continue
        if p.suffix.startswith("gs-") and p.observation_id is not None and (visit := _visit(p.filename)) is not None:
            guide[(p.observation_id, visit)].add(p.filename)
        if (name := _level3_name(p.filename)) is not None:
            level3[name].append(p)
            if p.level == 3 and p.suffix != "asn":
                level3_keys.add(name)
    level2_asn: dict[str, set[str]] = defaultdict(set)
    level3_asn: dict[str, Association] = {}
    for a in associations:
        if a.level == 2 and a.filename is not None:
            level2_asn[a.product_name].add(a.filename)
        elif a.level == 3:
            level3_asn.setdefault(a.product_name, a)

    def files_of(names: set[str]) -> list:
        return [p for n in sorted(names) for p in current.get(n, ())]

    built = []
    for exposure_id in sorted(of_exposure):
        exposure = exposures.get(exposure_id)
        if exposure is None:
            continue
        names = of_exposure[exposure_id] | level2_asn.get(exposure.name, set()) | guide.get(
            (exposure.observation_id, exposure.visit), set())
        files = files_of(names)
        own = [p for p in files if p.exposure_id == exposure_id]
        if own:
            obs = observations[exposure.observation_id]
            built.append((_exposure_row(exposure, obs, files, own), names, {obs.id}, set()))
    members_of = {m.exposure_id: m for m in _insert(session, built)}

    built = []
    for name in sorted(level3_keys):
        asn = level3_asn.get(name)
        own, names, member_files = _level3_files(level3[name], asn)
        if not own:
            continue
        exposure_ids = sorted({exposure_of[f] for f in member_files if f in exposure_of})
        members = sorted((members_of[i] for i in exposure_ids if i in members_of), key=lambda m: m.obs_id)
        fields, linked = _level3_row(program_id, name, own, files_of(names), asn, members,
                                     {i: exposures[i] for i in exposure_ids}, observations.get)
        built.append((fields, names, linked, {m.id for m in members}))
    _insert(session, built)
    for loaded in (*observations.values(), *exposures.values(), *associations):
        session.expunge(loaded)


def _insert(session: Session, built: list[tuple[dict, set[str], set[int], set[int]]]) -> list[SimpleNamespace]:
    """Insert rows (fields, file names, observation ids, member row ids) in bulk; the rows
    written, with their ids."""
    if not built:
        return []
    ids = dict(session.execute(insert(CaomObservation).returning(CaomObservation.obs_id, CaomObservation.id),
                               [fields for fields, *_ in built]).all())
    products, links, members = [], [], []
    for fields, names, observations, member_ids in built:
        caom_id = ids[fields["obs_id"]]
        products += [{"caom_id": caom_id, "filename": n} for n in sorted(names)]
        links += [{"caom_id": caom_id, "observation_id": o} for o in sorted(observations)]
        members += [{"caom_id": caom_id, "member_id": m} for m in sorted(member_ids)]
    for model, values in ((CaomProduct, products), (CaomObservationLink, links), (CaomMember, members)):
        if values:
            session.execute(insert(model), values)
    return [SimpleNamespace(id=ids[fields["obs_id"]], **fields) for fields, *_ in built]


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


def _derived(files: list, own: list, region: str | None) -> dict:
    """The fields every row derives from its current files the same way (``own``: the row's
    own current products; ``files``: every current file listed with it)."""
    top = _top(own)
    s_ra, s_dec = region_centre(region) if region else (None, None)
    return {"top_filename": top.filename if top is not None else None,
            "t_obs_release": max(_aware(p.data_release) for p in own), "n_products": len(files),
            "s_region": region, "s_ra": s_ra, "s_dec": s_dec, "hpx": sky.pixel(s_ra, s_dec),
            "updated_at": datetime.now(UTC)}


def _exposure_row(exposure: Exposure, obs: Observation, files: list, own: list) -> dict:
    """The fields of an exposure's row from its current files (``own``: the exposure's own)."""
    levels = [p.level for p in own if not is_2c(p.filename) and not p.suffix.startswith("gs-")]
    timing = _timing(exposure, obs.instrument)
    em_min, em_max = _band([filter_band(obs.instrument, exposure.filter, exposure.pupil)])
    main = [p for p in own if not is_2c(p.filename)] or own
    region = _best_region(main, _top(main)) or _pointing_circle(exposure, obs.instrument)
    return {"obs_id": exposure.name, "kind": EXPOSURE, "program_id": obs.program_id, "exposure_id": exposure.id,
            "observation_id": obs.id, "association_id": None, "calib_level": max(levels or [p.level for p in own]),
            "instrument_name": instrument_name(obs.instrument, exposure.exp_type),
            "filters": filters_label(exposure.filter, exposure.pupil), "target_name": obs.target_name,
            "dataproduct_type": dataproduct_type(exposure.exp_type, obs.tsovisit), "t_min": timing.start,
            "t_max": timing.end, "t_exptime": timing.effexptm, "em_min": em_min, "em_max": em_max, **_derived(files, main, region)}


def _level3_files(mine: list, asn: Association | None) -> tuple[list, set[str], set[str]]:
    """Of a Level-3 product's files (``mine``: every revision, its ASN files too) and its
    association: its own current products, the file names its row lists, and the file
    names of its members (provenance and association)."""
    own = [p for p in mine if p.is_current and p.suffix != "asn"]
    names = {p.filename for p in mine}
    inputs = {_basename(i) for p in own for i in p.inputs or ()}
    names |= {n for n in inputs if n.endswith("_asn.json")}
    if asn is not None and asn.filename:
        names.add(asn.filename)
    members = inputs | {m[0] for m in (asn.members if asn is not None else []) or () if m}
    return own, names, members


def _level3_row(program_id: str, product_name: str, own: list, files: list, asn: Association | None,
                members: list, exposures: dict[int, Exposure],
                observation: Callable[[int], Observation | None]) -> tuple[dict, set[int]]:
    """The fields of a Level-3 product's row and the program observations it belongs to.
    ``members``: the rows of its member exposures (ordered by obs_id), ``exposures`` theirs."""
    top = _top(own)
    observations = {p.observation_id for p in own if p.observation_id is not None} | {
        m.observation_id for m in members if m.observation_id is not None}
    primary_id = top.observation_id if top is not None and top.observation_id is not None else (
        min(observations) if observations else None)
    obs = observation(primary_id) if primary_id is not None else None
    first = exposures[members[0].exposure_id] if members else None
    instrument = obs.instrument if obs is not None else parse_level3(own[0].filename).instrument.upper()
    exp_type = first.exp_type if first is not None else (obs.exp_type if obs is not None else None)
    starts = [_aware(m.t_min) for m in members if m.t_min is not None]
    ends = [_aware(m.t_max) for m in members if m.t_max is not None]
    exptime: dict[tuple, float] = {}
    for m in members:  # detectors read out together are one exposure
        e = exposures[m.exposure_id]
        key = (e.observation_id, e.visit, e.visit_group, e.sequence, e.activity, e.exposure)
        if m.t_exptime is not None:
            exptime[key] = max(exptime.get(key, 0.0), m.t_exptime)
    em_min, em_max = _band([filter_band(instrument, e.filter, e.pupil) for e in exposures.values()] or [
        filter_band(instrument, obs.filter, obs.pupil) if obs is not None else None])
    region = _best_region(own, top) or _enclosing_circle([m.s_region for m in members if m.s_region])
    fields = {
        "obs_id": product_name, "kind": LEVEL3, "program_id": program_id, "observation_id": primary_id,
        "exposure_id": None, "association_id": asn.id if asn is not None else None,
        "calib_level": max(p.level for p in own), "instrument_name": instrument_name(instrument, exp_type),
        "filters": (filters_label(first.filter, first.pupil) if first is not None
                    else filters_label(obs.filter if obs else None, obs.pupil if obs else None)),
        "target_name": obs.target_name if obs is not None else "",
        "dataproduct_type": dataproduct_type(exp_type, obs.tsovisit if obs is not None else None),
        "t_min": min(starts) if starts else None, "t_max": max(ends) if ends else None,
        "t_exptime": round(sum(exptime.values()), 6) if exptime and all(
            m.t_exptime is not None for m in members) else None,
        "em_min": em_min, "em_max": em_max, **_derived(files, own, region)}
    return fields, observations


def _current(session: Session, names: set[str]) -> list[Product]:
    if not names:
        return []
    return list(session.scalars(select(Product).where(Product.filename.in_(sorted(names)), Product.is_current)))


def _store(session: Session, row: CaomObservation | None, fields: dict, names: set[str], observations: set[int],
           members: set[int]) -> None:
    """Write a row's fields and its files, observations and members (a new row when ``row`` is None)."""
    if row is None:
        row = CaomObservation(**fields)
        session.add(row)
    else:
        for column, value in fields.items():
            setattr(row, column, value)
    session.flush()
    _sync(session, CaomProduct, row.id, "filename", names)
    _sync(session, CaomObservationLink, row.id, "observation_id", observations)
    _sync(session, CaomMember, row.id, "member_id", members)


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
    _store(session, row, _exposure_row(exposure, obs, files, own), names, {obs.id}, set())


def _refresh_level3(session: Session, program_id: str, product_name: str) -> None:
    asn = session.scalar(select(Association).where(  # locked: one refresh of a mosaic's row at a time
        Association.program_id == program_id, Association.level == 3, Association.product_name == product_name)
        .order_by(Association.id).limit(1).with_for_update(key_share=True))
    row = session.scalar(select(CaomObservation).where(CaomObservation.obs_id == product_name))
    escaped = product_name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    candidates = session.scalars(select(Product).where(
        Product.program_id == program_id, Product.exposure_id.is_(None),
        Product.filename.like(escaped + "\\_%", escape="\\")))
    own, names, member_files = _level3_files([p for p in candidates if _level3_name(p.filename) == product_name], asn)
    if not own:
        _drop(session, row)
        return
    exposure_ids = sorted(set(session.scalars(select(Product.exposure_id).where(
        Product.filename.in_(sorted(member_files)), Product.exposure_id.is_not(None)).distinct()))) \
        if member_files else []
    members = list(session.scalars(select(CaomObservation).where(
        CaomObservation.exposure_id.in_(exposure_ids)).order_by(CaomObservation.obs_id))) if exposure_ids else []
    exposures = {e.id: e for e in session.scalars(select(Exposure).where(Exposure.id.in_(exposure_ids)))} \
        if exposure_ids else {}
    files = _current(session, names)
    fields, observations = _level3_row(program_id, product_name, own, files, asn, members, exposures,
                                       lambda i: session.get(Observation, i))
    _store(session, row, fields, names, observations, {m.id for m in members})


def caom_rows_of(session: Session, observation_id: int) -> int:
    """How many CAOM rows a program observation has."""
    return session.scalar(select(func.count()).select_from(CaomObservationLink).where(
        CaomObservationLink.observation_id == observation_id)) or 0

