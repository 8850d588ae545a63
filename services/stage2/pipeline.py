"""calwebb_image2: compose the steps over one ``_rate`` (or ``_rateints``).

No I/O: the science product, its background exposures and loaded reference files in,
products out. Steps in order: bkg_subtract, assign_wcs, flat_field, photom, then resample
of the calibrated exposure into ``_i2d`` (not for integrations, as in the public
pipeline). Each step records COMPLETE or SKIPPED (with the reason) in its S_* keyword; a
missing reference means SKIPPED and a warning, never a crash; every reference used is
named in its R_* keyword.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from astropy.wcs import WCS
from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.stage2.references import REFTYPE_KEYWORDS, Image2References
from services.stage2.resampling import ResampleParams, resample_exposure
from services.stage2.steps.assign_wcs import exposure_wcs, footprint, s_region, wcs_cards
from services.stage2.steps.bkg_subtract import (
    BkgSubtractParams,
    average_background,
    subtract_background,
)
from services.stage2.steps.flat_field import apply_flat
from services.stage2.steps.photom import apply_photom, photom_keywords, select_photom_row
from shared.datamodels import FitsProduct, set_cards
from shared.errors import NonRetriableError
from shared.instruments import UnknownInstrumentError, detector

__all__ = ["IMAGE2_STEPS", "STATUS_KEYWORDS", "CalState", "Image2Output", "Image2Params", "run_image2"]

log = logging.getLogger(__name__)

IMAGE2_STEPS = ("bkg_subtract", "assign_wcs", "flat_field", "photom")
STATUS_KEYWORDS = {"bkg_subtract": "S_BKDSUB", "assign_wcs": "S_WCS", "flat_field": "S_FLAT",
                   "photom": "S_PHOTOM", "resample": "S_RESAMP"}


class Image2Params(BaseModel):
    """Parameters of calwebb_image2; each step's defaults follow the public pipeline."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    skip: frozenset[str] = Field(frozenset(), description="Steps to skip by name (resample included).")
    bkg_subtract: BkgSubtractParams = BkgSubtractParams()
    resample: ResampleParams = ResampleParams()
    save_bsub: bool = Field(False, description="Also return the background-subtracted rate (_bsub/_bsubints).")

    @field_validator("skip")
    @classmethod
    def _known_steps(cls, skip: frozenset[str]) -> frozenset[str]:
        unknown = sorted(skip - set(STATUS_KEYWORDS))
        if unknown:
            raise ValueError(f"unknown step(s) {', '.join(unknown)}; image2 steps: {', '.join(STATUS_KEYWORDS)}")
        return skip


_DEFAULT_PARAMS = Image2Params()


@dataclass
class CalState:
    """The exposure as the steps pass it along: images (ny, nx) or cubes (nints, ny, nx),
    and the keywords (by FITS name) the products will carry."""

    sci: np.ndarray
    err: np.ndarray
    dq: np.ndarray
    var_poisson: np.ndarray
    var_rnoise: np.ndarray
    keywords: dict
    var_flat: np.ndarray | None = None
    area: np.ndarray | None = None
    wcs: WCS | None = None
    bunit: str = "DN/s"
    used: dict[str, str] = field(default_factory=dict)  # reference type -> file, of steps that used one
    notes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return str(self.keywords.get("FILENAME", "exposure"))


@dataclass(frozen=True)
class Image2Output:
    """What the pipeline made: ``cal`` (``_cal``, or ``_calints`` when ``is_cube``),
    ``bsub`` on request, ``i2d`` when resample ran."""

    cal: FitsProduct
    is_cube: bool
    bsub: FitsProduct | None
    i2d: FitsProduct | None
    statuses: dict[str, str]
    references: dict[str, str]
    notes: tuple[str, ...]

    def products(self) -> list[tuple[str, FitsProduct]]:
        """(suffix, product) of everything made, in order."""
        ints = "ints" if self.is_cube else ""
        out = [(f"bsub{ints}", self.bsub), (f"cal{ints}", self.cal), ("i2d", self.i2d)]
        return [(s, p) for s, p in out if p is not None]


def _state_from(product: FitsProduct) -> CalState:
    missing = [n for n in ("SCI", "DQ", "VAR_POISSON", "VAR_RNOISE") if n not in product.images]
    name = product.keywords.get("FILENAME", "the science exposure")
    if missing:
        raise NonRetriableError(f"{name} lacks the {', '.join(missing)} array(s) a count-rate product has")
    sci = np.asarray(product.images["SCI"], np.float32)
    if sci.ndim not in (2, 3):
        raise NonRetriableError(f"{name}: SCI of shape {sci.shape} is neither an image nor a cube of integrations")
    images = {k: np.asarray(v) for k, v in product.images.items()}
    err = images.get("ERR")
    state = CalState(
        sci=sci, err=np.asarray(err if err is not None else np.sqrt(images["VAR_POISSON"] + images["VAR_RNOISE"]),
                                np.float32),
        dq=images["DQ"].astype(np.uint32), var_poisson=images["VAR_POISSON"].astype(np.float32),
        var_rnoise=images["VAR_RNOISE"].astype(np.float32), keywords=dict(product.keywords),
    )
    for extname in ("ERR", "DQ", "VAR_POISSON", "VAR_RNOISE"):
        if extname in images and images[extname].shape != sci.shape:
            raise NonRetriableError(f"{name}: {extname} shape {images[extname].shape} differs from SCI {sci.shape}")
    return state


Step = Callable[[CalState, Image2References, Sequence[FitsProduct], Image2Params], str | None]


# Each step: (state, refs, backgrounds, params) -> None when COMPLETE, else why it was skipped.
def _bkg_subtract(s: CalState, refs: Image2References, backgrounds: Sequence[FitsProduct],
                  p: Image2Params) -> str | None:
    if not backgrounds:
        return "the association has no background exposures"
    shape = s.sci.shape[-2:]
    for b in backgrounds:
        bname = b.keywords.get("FILENAME", "a background exposure")
        for extname in ("SCI", "DQ", "VAR_POISSON", "VAR_RNOISE"):
            if extname not in b.images:
                raise NonRetriableError(f"background {bname} has no {extname} array")
        if b.images["SCI"].shape != shape:
            raise NonRetriableError(f"background {bname} has shape {b.images['SCI'].shape}; the science window "
                                    f"of {s.name} is {shape}: they must be the same readout window, one image each")
    bkg = average_background([b.images["SCI"] for b in backgrounds], [b.images["DQ"] for b in backgrounds],
                             [b.images["VAR_POISSON"] for b in backgrounds],
                             [b.images["VAR_RNOISE"] for b in backgrounds], p.bkg_subtract)
    r = subtract_background(s.sci, s.dq, s.var_poisson, s.var_rnoise, bkg)
    s.sci, s.err, s.dq, s.var_poisson, s.var_rnoise = r.sci, r.err, r.dq, r.var_poisson, r.var_rnoise
    s.notes.append(f"bkg_subtract: {len(backgrounds)} background exposure(s), median "
                   f"{float(np.nanmedian(bkg.sci)):.4g} DN/s subtracted")
    return None


def _pixel_scale(kw: dict) -> float:
    """The pointing WCS's scale (arcsec/pixel): CDELT1 as ingest wrote it, else the detector's."""
    if kw.get("CDELT1"):
        return abs(float(kw["CDELT1"])) * 3600.0
    try:
        return detector(str(kw["DETECTOR"])).pixel_scale
    except (KeyError, UnknownInstrumentError) as exc:
        raise NonRetriableError(f"{kw.get('FILENAME')}: no CDELT1 and no known DETECTOR for the pixel scale") from exc


def _assign_wcs(s: CalState, refs: Image2References, backgrounds: Sequence[FitsProduct],
                p: Image2Params) -> str | None:
    kw = s.keywords
    pointing = [kw.get(k) for k in ("RA_REF", "DEC_REF", "ROLL_REF")]
    if any(v is None for v in pointing):
        return "the exposure has no pointing (RA_REF, DEC_REF, ROLL_REF)"
    ny, nx = s.sci.shape[-2:]
    dist = refs.distortion
    if dist is None:
        s.notes.append("assign_wcs: no DISTORTION reference, the pointing WCS (no distortion) is kept")
        log.warning("%s: assign_wcs: no DISTORTION reference; the pointing WCS is kept without distortion", s.name)
    scale = dist.pixel_scale if dist is not None else _pixel_scale(kw)
    s.wcs = exposure_wcs(*map(float, pointing), scale, nx, ny, xstart=int(kw.get("SUBSTRT1", 1)),
                         ystart=int(kw.get("SUBSTRT2", 1)), distortion=dist.distortion if dist else None)
    s.keywords.update(wcs_cards(s.wcs))
    s.keywords["S_REGION"] = s_region(footprint(s.wcs, (ny, nx)))
    if dist is not None:
        s.used["distortion"] = dist.filename
    return None


def _flat_field(s: CalState, refs: Image2References, backgrounds: Sequence[FitsProduct],
                p: Image2Params) -> str | None:
    flat = refs.flat
    if flat is None:
        return "no FLAT reference"
    r = apply_flat(s.sci, s.dq, s.var_poisson, s.var_rnoise, flat.data, flat.dq, flat.err)
    s.sci, s.err, s.dq = r.sci, r.err, r.dq
    s.var_poisson, s.var_rnoise, s.var_flat = r.var_poisson, r.var_rnoise, r.var_flat
    s.used["flat"] = flat.filename
    if r.n_no_flat:
        s.notes.append(f"flat_field: {r.n_no_flat} pixel(s) without a flat value (NO_FLAT_FIELD)")
    return None


def _photom(s: CalState, refs: Image2References, backgrounds: Sequence[FitsProduct],
            p: Image2Params) -> str | None:
    if refs.area is not None:
        s.area = refs.area.data
        s.used["area"] = refs.area.filename
    ph = refs.photom
    if ph is None:
        return "no PHOTOM reference"
    kw = s.keywords
    row = select_photom_row(ph.table, filter=str(kw.get("FILTER") or ""), pupil=kw.get("PUPIL"),
                            subarray=kw.get("SUBARRAY"))
    if row is None:
        return (f"PHOTOM reference {ph.filename} has no row for FILTER={kw.get('FILTER')} "
                f"PUPIL={kw.get('PUPIL')} SUBARRAY={kw.get('SUBARRAY')}; the data stay in DN/s")
    variances = {"VAR_POISSON": s.var_poisson, "VAR_RNOISE": s.var_rnoise}
    if s.var_flat is not None:
        variances["VAR_FLAT"] = s.var_flat
    r = apply_photom(s.sci, s.err, variances, row.photmjsr)
    s.sci, s.err = r.sci, r.err
    s.var_poisson, s.var_rnoise = r.variances["VAR_POISSON"], r.variances["VAR_RNOISE"]
    s.var_flat = r.variances.get("VAR_FLAT")
    s.keywords.update(photom_keywords(row.photmjsr, ph.pixar_sr, ph.pixar_a2))
    s.used["photom"] = ph.filename
    s.bunit = "MJy/sr"
    return None


STEPS: dict[str, Step] = {"bkg_subtract": _bkg_subtract, "assign_wcs": _assign_wcs, "flat_field": _flat_field,
                          "photom": _photom}


def _product(s: CalState, cards: dict, model_type: str, tables: dict) -> FitsProduct:
    """A product of the state's arrays in the ImageModel/CubeModel layout."""
    images = {"SCI": s.sci, "ERR": s.err, "DQ": s.dq, "VAR_POISSON": s.var_poisson, "VAR_RNOISE": s.var_rnoise}
    if s.var_flat is not None:
        images["VAR_FLAT"] = s.var_flat
    if s.area is not None:
        images["AREA"] = s.area.astype(np.float32)
    product = FitsProduct(model_type=model_type, images=images, tables=dict(tables),
                          hdu_keywords={"ERR": {"BUNIT": s.bunit}})
    set_cards(product, {**cards, "BUNIT": s.bunit})
    return product


def run_image2(
    science: FitsProduct,
    refs: Image2References,
    *,
    backgrounds: Sequence[FitsProduct] = (),
    params: Image2Params = _DEFAULT_PARAMS,
    context: str | None = None,
    software_version: str = "",
    created: str | None = None,
    asn_table: str | None = None,
    asn_pool: str | None = None,
) -> Image2Output:
    """Run calwebb_image2 on one exposure.

    Parameters
    ----------
    science : FitsProduct
        ``_rate`` (ImageModel, SCI (ny, nx)) or ``_rateints`` (CubeModel, SCI (nints, ny, nx)),
        DN/s, with DQ, VAR_POISSON and VAR_RNOISE.
    refs : Image2References
        Loaded references cut to the window; missing ones make their step SKIPPED.
    backgrounds : sequence of FitsProduct
        ``_rate`` products of dedicated background exposures (same window), may be empty.
    params : Image2Params
    context : str, optional
        Reference context used (CRDS_CTX).
    software_version : str
        CAL_VER.
    created : str, optional
        DATE of the products (ISO time); the caller passes a fixed time so a rerun writes
        the same bytes.
    asn_table, asn_pool : str, optional
        ASNTABLE and ASNPOOL of the association that asked for this run.

    Returns
    -------
    Image2Output

    Raises
    ------
    NonRetriableError
        Input that cannot be calibrated (missing arrays, background of another window).
    """
    state = _state_from(science)
    is_cube = state.sci.ndim == 3
    bsub = None
    statuses: dict[str, str] = {}
    for name in IMAGE2_STEPS:
        reason = "skipped by parameter" if name in params.skip else STEPS[name](state, refs, backgrounds, params)
        statuses[name] = "COMPLETE" if reason is None else "SKIPPED"
        if reason is not None:
            # A missing reference deserves attention; a step with nothing to do does not.
            level = logging.WARNING if "reference" in reason else logging.INFO
            log.log(level, "%s: %s skipped: %s", state.name, name, reason)
            state.notes.append(f"{name} skipped: {reason}")
        if name == "bkg_subtract" and params.save_bsub and reason is None:
            bsub = _product(state, _header(state, statuses, context, software_version, created, asn_table,
                                           asn_pool), "CubeModel" if is_cube else "ImageModel", _tables(science))

    header = _header(state, statuses, context, software_version, created, asn_table, asn_pool)
    cal = _product(state, header, "CubeModel" if is_cube else "ImageModel", _tables(science))
    i2d = None
    if not is_cube:
        i2d, reason = _resample(state, header, params)
        statuses["resample"] = "COMPLETE" if i2d is not None else "SKIPPED"
        if reason is not None:
            log.info("%s: resample skipped: %s", state.name, reason)
            state.notes.append(f"resample skipped: {reason}")
    return Image2Output(cal, is_cube, bsub, i2d, statuses, dict(state.used), tuple(state.notes))


def _tables(science: FitsProduct) -> dict:
    return {k: v for k, v in science.tables.items() if k == "INT_TIMES"}


def _header(s: CalState, statuses: dict[str, str], context: str | None,
            software_version: str, created: str | None, asn_table: str | None, asn_pool: str | None) -> dict:
    """Keywords of a product: the science keywords as the steps left them, provenance,
    the status of each step run so far and the references used."""
    header = dict(s.keywords)
    header.update(CAL_VER=software_version, CAL_VCS="RELEASE", CRDS_CTX=context or "N/A", CRDS_VER=software_version)
    if created is not None:
        header["DATE"] = created
    if asn_table:
        header["ASNTABLE"] = asn_table
    if asn_pool:
        header["ASNPOOL"] = asn_pool
    header.update({STATUS_KEYWORDS[name]: status for name, status in statuses.items()})
    for reftype, keyword in REFTYPE_KEYWORDS.items():
        header[keyword] = f"crds://{s.used[reftype]}" if reftype in s.used else "N/A"
    return header


def _resample(s: CalState, header: dict, p: Image2Params) -> tuple[FitsProduct | None, str | None]:
    if "resample" in p.skip:
        return None, "skipped by parameter"
    if s.wcs is None:
        return None, "the exposure has no WCS (assign_wcs did not run)"
    kw = s.keywords
    exptime = float(kw.get("TMEASURE") or kw.get("XPOSURE") or kw.get("EFFEXPTM") or 1.0)
    roll = float(kw["ROLL_REF"]) if kw.get("ROLL_REF") is not None else None
    result = resample_exposure(s.sci, s.dq, s.wcs, var_rnoise=s.var_rnoise, var_poisson=s.var_poisson,
                               var_flat=s.var_flat, exptime=exptime, roll=roll, params=p.resample)
    # The exposure's keywords without its distortion terms, then the grid's WCS.
    cards = {k: v for k, v in header.items() if not k.startswith(("A_", "B_", "AP_", "BP_"))}
    cards.update(result.keywords)
    cards["S_RESAMP"] = "COMPLETE"
    if "PHOTMJSR" not in cards:  # no photometric calibration: the grid's area is not claimed either
        cards.pop("PIXAR_SR", None)
        cards.pop("PIXAR_A2", None)
    product = FitsProduct(model_type="ImageModel", images=result.images, hdu_keywords={"ERR": {"BUNIT": s.bunit}})
    set_cards(product, {**cards, "BUNIT": s.bunit})
    return product, None
