"""calwebb_image3 and calwebb_tso3 (imaging): compose the stage-3 steps over the members
of a Level-3 association.

No I/O: member products in, products and tables out. Each step records COMPLETE or
SKIPPED (with the reason, logged) in its S_* keyword of every product it touches.

image3: tweakreg -> skymatch -> outlier_detection (-> ``_crf`` per member) -> resample
(-> ``_i2d``) -> source_catalog (-> ``_cat`` table and ``_segm``).
tso3 (imaging): outlier_detection (-> ``_crfints`` per member) -> tso_photometry
(-> ``_phot`` table, all members' integrations in time order).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from astropy.table import QTable, vstack
from astropy.wcs import WCS
from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.stage3.level3 import i2d_product, level3_keywords, segm_product
from services.stage3.products import card_value, member_wcs, replace_wcs, set_keywords
from services.stage3.steps.outlier_detection import (
    OutlierParams,
    apply_outliers,
    flag_outliers_imaging,
    flag_outliers_tso,
)
from services.stage3.steps.skymatch import SkyMatchParams, skymatch
from services.stage3.steps.source_catalog import SourceCatalogParams, make_catalog
from services.stage3.steps.tso_photometry import TsoPhotometryParams, phot_table, tso_photometry
from services.stage3.steps.tweakreg import Alignment, TweakregInput, TweakregParams, tweakreg
from shared.datamodels import FitsProduct
from shared.resample import ResampleInput, output_grid, resample

__all__ = [
    "IMAGE3_STEPS",
    "STATUS_KEYWORDS",
    "TSO3_STEPS",
    "Image3Output",
    "Image3Params",
    "ResampleParams",
    "Tso3Output",
    "Tso3Params",
    "run_image3",
    "run_tso3",
]

log = logging.getLogger(__name__)

IMAGE3_STEPS = ("tweakreg", "skymatch", "outlier_detection", "resample", "source_catalog")
TSO3_STEPS = ("outlier_detection", "tso_photometry")
STATUS_KEYWORDS = {"tweakreg": "S_TWKREG", "skymatch": "S_SKYMAT", "outlier_detection": "S_OUTLIR",
                   "resample": "S_RESAMP", "source_catalog": "S_SRCCAT", "tso_photometry": "S_TSPHOT"}
TSO_IMAGING_EXP_TYPES = frozenset({"NRC_TSIMAGE", "MIR_IMAGE", "NIS_IMAGE", "NRC_IMAGE"})
_VARIANCES = ("VAR_RNOISE", "VAR_POISSON", "VAR_FLAT")


class ResampleParams(BaseModel):
    """Parameters of the Level-3 resampling (public defaults)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    pixfrac: float = Field(1.0, gt=0, le=1, description="Drizzle pixel shrink factor.")
    kernel: str = Field("square", description="Drizzle kernel.")
    weight_type: str = Field("ivm", description='Input weights: "ivm" (1/VAR_RNOISE) or "exptime" (TMEASURE).')
    pixel_scale_ratio: float = Field(1.0, gt=0, description="Output over input pixel size.")
    pixel_scale: float | None = Field(None, gt=0, description="Output pixel scale, arcsec (overrides the ratio).")
    rotation: float | None = Field(0.0, description="Position angle of output +y, deg E of N; None: first member's ROLL_REF.")


class _Params(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    skip: frozenset[str] = Field(frozenset(), description="Steps to skip by name.")


class Image3Params(_Params):
    """Parameters of calwebb_image3."""

    tweakreg: TweakregParams = TweakregParams()
    skymatch: SkyMatchParams = SkyMatchParams()
    outlier_detection: OutlierParams = OutlierParams()
    resample: ResampleParams = ResampleParams()
    source_catalog: SourceCatalogParams = SourceCatalogParams()

    @field_validator("skip")
    @classmethod
    def _known(cls, skip: frozenset[str]) -> frozenset[str]:
        unknown = sorted(skip - set(IMAGE3_STEPS))
        if unknown:
            raise ValueError(f"unknown step(s) {', '.join(unknown)}; image3 steps: {', '.join(IMAGE3_STEPS)}")
        return skip


class Tso3Params(_Params):
    """Parameters of calwebb_tso3 (imaging)."""

    outlier_detection: OutlierParams = OutlierParams()
    tso_photometry: TsoPhotometryParams = TsoPhotometryParams()

    @field_validator("skip")
    @classmethod
    def _known(cls, skip: frozenset[str]) -> frozenset[str]:
        unknown = sorted(skip - set(TSO3_STEPS))
        if unknown:
            raise ValueError(f"unknown step(s) {', '.join(unknown)}; tso3 steps: {', '.join(TSO3_STEPS)}")
        return skip


@dataclass(frozen=True)
class Image3Output:
    """``crf`` one product per member (input order); ``i2d``; ``cat`` (None when no
    source was found or the step was skipped) and ``segm``; step statuses, the tweakreg
    alignment of each member, and notes."""

    crf: list[FitsProduct]
    i2d: FitsProduct | None
    cat: QTable | None
    segm: FitsProduct | None
    statuses: dict[str, str]
    alignments: list[Alignment] = field(default_factory=list)
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Tso3Output:
    """``crfints`` one product per member; ``phot`` (None when skipped); statuses, notes."""

    crfints: list[FitsProduct]
    phot: QTable | None
    statuses: dict[str, str]
    notes: tuple[str, ...] = ()


@dataclass
class _Member:
    """A member's arrays as the steps pass them along (copies: inputs stay untouched)."""

    product: FitsProduct
    sci: np.ndarray
    err: np.ndarray
    dq: np.ndarray
    variances: dict[str, np.ndarray]
    wcs: WCS | None
    cards: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.product.keywords.get("FILENAME", "member"))

    def resample_input(self) -> ResampleInput:
        exptime = float(card_value(self.product, "TMEASURE") or card_value(self.product, "EFFEXPTM") or 1.0)
        return ResampleInput(self.sci, self.wcs, self.dq, self.variances.get("VAR_RNOISE"),
                             self.variances.get("VAR_POISSON"), self.variances.get("VAR_FLAT"), exptime)


def _member(product: FitsProduct, ndim: int, need_wcs: bool) -> _Member:
    name = product.keywords.get("FILENAME", "member")
    missing = [e for e in ("SCI", "ERR", "DQ") if e not in product.images]
    if missing:
        raise ValueError(f"{name}: no {', '.join(missing)} extension; stage 3 needs calibrated products")
    sci = np.array(product.images["SCI"], np.float32)
    if sci.ndim != ndim:
        raise ValueError(f"{name}: SCI is {sci.ndim}-D, expected {ndim}-D "
                         f"({'a _cal image' if ndim == 2 else 'a _calints cube'})")
    variances = {v: np.array(product.images[v], np.float32) for v in _VARIANCES if v in product.images}
    wcs = member_wcs(product) if need_wcs else None
    return _Member(product, sci, np.array(product.images["ERR"], np.float32),
                   np.array(product.images["DQ"], np.uint32), variances, wcs)


def _record(statuses: dict, notes: list, name: str, reason: str | None) -> None:
    statuses[name] = "COMPLETE" if reason is None else "SKIPPED"
    if reason is not None:
        log.log(logging.WARNING if "reference" in reason or "failed" in reason else logging.INFO,
                "%s skipped: %s", name, reason)
        notes.append(f"{name} skipped: {reason}")


def _provenance(software_version: str, created: str | None, context: str | None, asn_table: str | None,
                asn_pool: str | None) -> dict:
    cards = {"CAL_VER": software_version, "CAL_VCS": "RELEASE", "CRDS_VER": software_version}
    if context:
        cards["CRDS_CTX"] = context
    if created:
        cards["DATE"] = created
    if asn_table:
        cards["ASNTABLE"] = asn_table
    if asn_pool:
        cards["ASNPOOL"] = asn_pool
    return cards


# ---------------------------------------------------------------------------- image3

def _tweakreg(ms: list[_Member], p: Image3Params, abs_refcat, notes: list) -> tuple[str | None, list[Alignment]]:
    if "tweakreg" in p.skip:
        return "skipped by parameter", []
    if len(ms) < 2 and abs_refcat is None:
        return "one exposure and no absolute catalog: nothing to align", []
    result = tweakreg([TweakregInput(m.sci, m.err, m.dq, m.wcs) for m in ms], p.tweakreg, abs_refcat)
    if result.absolute_note:
        notes.append(f"tweakreg: {result.absolute_note}")
    kind = "absolute" if result.absolute is not None else "relative"
    moved = 0
    for m, a, new in zip(ms, result.alignments, result.wcss, strict=True):
        if not a.aligned:
            notes.append(f"tweakreg: {m.name} not aligned: {a.note}")
            continue
        ny, nx = m.sci.shape
        cx, cy = (nx - 1) / 2.0, (ny - 1) / 2.0
        ox, oy = m.wcs.world_to_pixel_values(*new.pixel_to_world_values(cx, cy))
        scale = float(np.sqrt(abs(np.linalg.det(m.wcs.pixel_scale_matrix)))) * 3600.0
        m.cards.update(TWKREF=kind, TWKDX=round(float(ox - cx), 5), TWKDY=round(float(oy - cy), 5),
                       TWKROT=round(float(np.degrees(a.transform.theta)), 7),
                       TWKRMS=round(float(a.rms / scale), 5), TWKNMAT=int(a.nmatch))
        m.wcs = new
        moved += a.note != "reference exposure" or result.absolute is not None
    if moved == 0:
        return "no exposure could be aligned", result.alignments
    return None, result.alignments


def _skymatch(ms: list[_Member], p: Image3Params) -> str | None:
    if "skymatch" in p.skip:
        return "skipped by parameter"
    result = skymatch([m.sci for m in ms], [m.dq for m in ms], p.skymatch)
    for m, level, data in zip(ms, result.subtracted, result.data, strict=True):
        m.sci = data
        m.cards.update(BKGMETH=p.skymatch.skymethod, BKGLEVEL=float(level), BKGSUB=bool(p.skymatch.subtract))
    return None


def _grid(ms: list[_Member], rp: ResampleParams) -> tuple[WCS, tuple[int, int]]:
    rotation = rp.rotation
    if rotation is None:
        rotation = float(card_value(ms[0].product, "ROLL_REF", 0.0) or 0.0)
    return output_grid([m.wcs for m in ms], [m.sci.shape for m in ms], pixel_scale=rp.pixel_scale,
                       pixel_scale_ratio=rp.pixel_scale_ratio, rotation=rotation)


def _weight_type(ms: list[_Member], wanted: str) -> str:
    # Inverse-variance weights need VAR_RNOISE; without it every input is weighted alike.
    return wanted if wanted != "ivm" or all("VAR_RNOISE" in m.variances for m in ms) else "exptime"


def _outliers_imaging(ms: list[_Member], p: Image3Params, grid) -> str | None:
    if "outlier_detection" in p.skip:
        return "skipped by parameter"
    if len(ms) < 2:
        return "one exposure: nothing to compare with"
    op = p.outlier_detection.model_copy(update={"weight_type": _weight_type(ms, p.outlier_detection.weight_type)})
    found = flag_outliers_imaging([m.resample_input() for m in ms], [m.err for m in ms], *grid, op)
    for m, mask in zip(ms, found.masks, strict=True):
        names = list(m.variances)
        m.dq, arrays = apply_outliers(mask, m.dq, m.sci, m.err, *(m.variances[v] for v in names))
        m.sci, m.err = arrays[0], arrays[1]
        m.variances = dict(zip(names, arrays[2:], strict=True))
        log.info("%s: %d outliers", m.name, int(mask.sum()))
    return None


def _member_product(m: _Member, model_type: str, common: dict) -> FitsProduct:
    product = FitsProduct(model_type=model_type, images={}, tables=dict(m.product.tables),
                          hdu_keywords={k: dict(v) for k, v in m.product.hdu_keywords.items()},
                          keywords=dict(m.product.keywords), extra_meta=dict(m.product.extra_meta))
    product.images = {"SCI": m.sci, "ERR": m.err, "DQ": m.dq, **m.variances}
    for extname, array in m.product.images.items():
        product.images.setdefault(extname, array)  # e.g. AREA travels unchanged
    set_keywords(product, {**common, **m.cards})
    if m.wcs is not None:
        replace_wcs(product, m.wcs)
    return product


def run_image3(
    members: Sequence[FitsProduct], asn: dict | None = None, params: Image3Params | None = None, *,
    abs_refcat: tuple[np.ndarray, np.ndarray] | None = None, software_version: str, created: str | None = None,
    context: str | None = None, asn_table: str | None = None,
) -> Image3Output:
    """calwebb_image3 over the science members of a Level-3 association.

    Parameters
    ----------
    members : sequence of FitsProduct
        ``_cal`` images (SCI/ERR/DQ, variances, a celestial WCS in the SCI header; SCI in
        MJy/sr for the catalog), e.g. from :func:`shared.datamodels.read_product`.
    asn : dict, optional
        The association (``asn_pool`` becomes ASNPOOL).
    abs_refcat : (ra, dec), optional
        Absolute astrometric catalog (degrees) tweakreg aligns the group to.
    created : str
        DATE of the outputs (ISO); passed in so the same input gives the same bytes.
    asn_table : str, optional
        The association's file name (ASNTABLE).

    Raises
    ------
    ValueError
        A member is not a calibrated 2-D image with a WCS (the message names it).
    """
    p = params or Image3Params()
    if not members:
        raise ValueError("image3 needs at least one member")
    ms = [_member(m, 2, need_wcs=True) for m in members]
    statuses: dict[str, str] = {}
    notes: list[str] = []
    reason, alignments = _tweakreg(ms, p, abs_refcat, notes)
    _record(statuses, notes, "tweakreg", reason)
    _record(statuses, notes, "skymatch", _skymatch(ms, p))
    grid = _grid(ms, p.resample)
    _record(statuses, notes, "outlier_detection", _outliers_imaging(ms, p, grid))
    common = {**_provenance(software_version, created, context, asn_table, (asn or {}).get("asn_pool")),
              **{STATUS_KEYWORDS[s]: v for s, v in statuses.items()}}
    crf = [_member_product(m, "ImageModel", common) for m in ms]

    header, other = level3_keywords(crf)
    i2d = cat = segm = None
    if "resample" in p.skip:
        _record(statuses, notes, "resample", "skipped by parameter")
        _record(statuses, notes, "source_catalog", "no resampled image")
    else:
        rp = p.resample
        weight_type = _weight_type(ms, rp.weight_type)
        r = resample([m.resample_input() for m in ms], *grid, pixfrac=rp.pixfrac, kernel=rp.kernel,
                     weight_type=weight_type)
        _record(statuses, notes, "resample", None)
        images = {"SCI": r.data, "ERR": r.err, "CON": r.con, "WHT": r.wht}
        images.update({name.upper(): v for name in ("var_poisson", "var_rnoise", "var_flat")
                       if (v := getattr(r, name)) is not None})
        bunit = str(card_value(ms[0].product, "BUNIT", "MJy/sr"))
        cards = {"NDRIZ": r.n_inputs, "RESWHT": weight_type, "PIXFRAC": rp.pixfrac,
                 "PXSCLRT": rp.pixel_scale_ratio, **common}
        i2d = i2d_product(header, other, images, grid[0], cards, bunit)
        cat, segm_labels, reason = _source_catalog(i2d, grid[0], bunit, p, notes)
        _record(statuses, notes, "source_catalog", reason)
        set_keywords(i2d, {STATUS_KEYWORDS[s]: v for s, v in statuses.items()})
        if segm_labels is not None:
            segm = segm_product({**header, **common, **{STATUS_KEYWORDS[s]: v for s, v in statuses.items()}},
                                other, segm_labels, grid[0])
    return Image3Output(crf, i2d, cat, segm, statuses, alignments, tuple(notes))


def _source_catalog(i2d: FitsProduct, wcs: WCS, bunit: str, p: Image3Params, notes: list):
    if "source_catalog" in p.skip:
        return None, None, "skipped by parameter"
    if bunit != "MJy/sr":
        return None, None, f"the resampled image is in {bunit}, not MJy/sr (photom did not run)"
    pixar_sr = float(card_value(i2d, "PIXAR_SR"))
    result = make_catalog(i2d.images["SCI"], i2d.images["ERR"], i2d.images["WHT"], pixar_sr=pixar_sr, wcs=wcs,
                          params=p.source_catalog)
    notes.extend(f"source_catalog: {n}" for n in result.notes)
    if len(result.catalog) == 0:
        return None, result.segm, "no source detected"
    return result.catalog, result.segm, None


# ---------------------------------------------------------------------------- tso3

def _int_times(product: FitsProduct, nints: int) -> tuple[np.ndarray, np.ndarray, str | None]:
    """Mid-integration MJD (UTC) and BJD_TDB of the member's integrations; from EXPSTART
    and EFFINTTM (BJD unknown) when there is no INT_TIMES table."""
    table = product.tables.get("INT_TIMES")
    start = int(card_value(product, "INTSTART", 1) or 1)
    if table is not None and len(table):
        numbers = np.asarray(table["integration_number"], int)
        idx = np.searchsorted(numbers, np.arange(start, start + nints))
        if np.all(idx < len(numbers)) and np.all(numbers[np.minimum(idx, len(numbers) - 1)] == np.arange(start, start + nints)):
            return (np.asarray(table["int_mid_MJD_UTC"], float)[idx], np.asarray(table["int_mid_BJD_TDB"], float)[idx],
                    None)
    t0, dt = card_value(product, "EXPSTART"), card_value(product, "EFFINTTM")
    if t0 is None or dt is None:
        return np.full(nints, np.nan), np.full(nints, np.nan), "no INT_TIMES table, EXPSTART or EFFINTTM: times unknown"
    mjd = float(t0) + (np.arange(nints) + start - 0.5) * float(dt) / 86400.0
    return mjd, np.full(nints, np.nan), "no INT_TIMES table: MJD from EXPSTART and EFFINTTM, BJD_TDB unknown"


def _photometry(m: _Member, p: Tso3Params, notes: list) -> QTable:
    kw = m.product
    ra, dec = card_value(kw, "TARG_RA"), card_value(kw, "TARG_DEC")
    if ra is None or dec is None:
        raise ValueError(f"{m.name}: no TARG_RA/TARG_DEC to place the aperture")
    x0, y0 = (float(v) for v in m.wcs.world_to_pixel_values(float(ra), float(dec)))
    bunit = str(card_value(kw, "BUNIT", ""))
    scale, unit = 1.0, bunit or "DN/s"
    if bunit == "MJy/sr" and card_value(kw, "PIXAR_SR") is not None:
        scale, unit = 1e6 * float(card_value(kw, "PIXAR_SR")), "Jy"
    elif bunit != "MJy/sr":
        notes.append(f"tso_photometry: {m.name} is in {bunit or 'unknown units'}; photometry left in those units")
    # The public rule: behind the WLP8 weak lens the star fills SUB64P; sum it all.
    whole = str(card_value(kw, "PUPIL", "")).upper() == "WLP8" and str(card_value(kw, "SUBARRAY", "")).upper() == "SUB64P"
    result = tso_photometry(m.sci * scale, m.err * scale, x0, y0, p.tso_photometry, whole_array=whole)
    if result.n_filled:
        notes.append(f"tso_photometry: {m.name}: {result.n_filled} flagged pixels filled with their median over time")
    mjd, bjd, why = _int_times(kw, m.sci.shape[0])
    if why:
        notes.append(f"tso_photometry: {m.name}: {why}")
    a_ra, a_dec = m.wcs.pixel_to_world_values(result.aperture_x, result.aperture_y)
    meta = {k.lower(): card_value(kw, k) for k in ("INSTRUME", "DETECTOR", "SUBARRAY", "FILTER", "PUPIL", "TARGNAME")}
    meta["apertures"] = (
        "sum of all pixels of the subarray; no background subtraction" if whole else
        f"circular aperture r={p.tso_photometry.radius} px; background: mean in an annulus "
        f"r={p.tso_photometry.radius_inner}-{p.tso_photometry.radius_outer} px")
    return phot_table(result, mjd=mjd, bjd=bjd, ra=a_ra, dec=a_dec, unit=unit, meta=meta)


def run_tso3(
    members: Sequence[FitsProduct], asn: dict | None = None, params: Tso3Params | None = None, *,
    software_version: str, created: str | None = None, context: str | None = None, asn_table: str | None = None,
) -> Tso3Output:
    """calwebb_tso3 for imaging time series: ``_calints`` members (SCI/ERR/DQ cubes,
    INT_TIMES, a WCS, TARG_RA/TARG_DEC) in, ``_crfints`` and the ``_phot`` table out.
    Photometry is SKIPPED for spectroscopic exposure types. ValueError for unusable
    members (the message names them)."""
    p = params or Tso3Params()
    if not members:
        raise ValueError("tso3 needs at least one member")
    ms = [_member(m, 3, need_wcs=False) for m in members]
    statuses: dict[str, str] = {}
    notes: list[str] = []
    if "outlier_detection" in p.skip:
        _record(statuses, notes, "outlier_detection", "skipped by parameter")
    else:
        for m in ms:
            mask = flag_outliers_tso(m.sci, m.err, m.dq, p.outlier_detection)
            names = list(m.variances)
            m.dq, arrays = apply_outliers(mask, m.dq, m.sci, m.err, *(m.variances[v] for v in names))
            m.sci, m.err, m.variances = arrays[0], arrays[1], dict(zip(names, arrays[2:], strict=True))
            log.info("%s: %d outliers", m.name, int(mask.sum()))
        _record(statuses, notes, "outlier_detection", None)

    exp_types = {str(card_value(m.product, "EXP_TYPE", "")) for m in ms}
    phot = None
    if "tso_photometry" in p.skip:
        _record(statuses, notes, "tso_photometry", "skipped by parameter")
    elif not exp_types <= TSO_IMAGING_EXP_TYPES:
        _record(statuses, notes, "tso_photometry", f"not an imaging time series ({', '.join(sorted(exp_types))})")
    else:
        for m in ms:
            m.wcs = member_wcs(m.product)
        tables = [_photometry(m, p, notes) for m in ms]
        phot = vstack(tables, metadata_conflicts="silent")
        phot = phot[np.argsort(np.asarray(phot["MJD"]), kind="stable")]
        _record(statuses, notes, "tso_photometry", None)
    common = {**_provenance(software_version, created, context, asn_table, (asn or {}).get("asn_pool")),
              **{STATUS_KEYWORDS[s]: v for s, v in statuses.items()}}
    crfints = [_member_product(m, "CubeModel", common) for m in ms]
    return Tso3Output(crfints, phot, statuses, tuple(notes))
