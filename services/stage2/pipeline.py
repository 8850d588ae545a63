"""calwebb_image2, declared over the kernels of ``steps/``.

No I/O: the science product, its background exposures and loaded reference files in,
products out. Steps in order (:data:`IMAGE2`): bkg_subtract, assign_wcs, flat_field,
photom, then resample of the calibrated exposure into ``_i2d`` (not for integrations, as
in the public pipeline). The runner (:mod:`shared.pipeline`) records COMPLETE or SKIPPED
in each S_* keyword (a missing reference skips a step with a warning), and every
reference used is named in its R_* keyword.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import numpy as np
from astropy.modeling import Model
from astropy.wcs import WCS
from pydantic import BaseModel, ConfigDict, Field

from services.stage2.resampling import I2dImages, ResampleParams, resample_exposure
from services.stage2.steps.assign_wcs import (
    exposure_wcs,
    filter_offset,
    footprint,
    pointing_wcs,
    s_region,
    wcs_cards,
)
from services.stage2.steps.bkg_subtract import (
    BkgSubtractParams,
    average_background,
    subtract_background,
)
from services.stage2.steps.flat_field import apply_flat
from services.stage2.steps.invalid import mark_invalid
from services.stage2.steps.photom import apply_photom, photom_keywords, select_photom_row
from shared.datamodels import FitsProduct, set_cards
from shared.errors import InputError
from shared.imaging_wcs import TelescopePointing, fits_gwcs, window_reference
from shared.instruments import keyword_pixel_scale
from shared.naming import output_name
from shared.pipeline import (
    Output,
    Pipeline,
    PipelineParams,
    Recorded,
    RunRecord,
    Skip,
    SkipKind,
    Step,
    StepArgs,
    provenance_cards,
)
from shared.refdata import Reference, ReferenceFileError, ReferenceProvider, load_references

__all__ = ["IMAGE2", "CalState", "Image2Options", "Image2Output", "calibrate", "run_image2"]

log = logging.getLogger(__name__)


class Image2Options(BaseModel):
    """Options of calwebb_image2 as a whole."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    save_bsub: bool = Field(False, description="Also write the background-subtracted rate (_bsub/_bsubints).")


@dataclass
class CalState:
    """The exposure as the steps pass it along: images (ny, nx) or cubes (nints, ny, nx),
    the keywords (by FITS name) the products will carry, and what the steps made.

    At first the arrays are the science product's own (not copies): a step replaces them
    with its kernel's new arrays and never writes into those it was given."""

    sci: np.ndarray
    err: np.ndarray
    dq: np.ndarray
    var_poisson: np.ndarray
    var_rnoise: np.ndarray
    keywords: dict
    backgrounds: Sequence[FitsProduct] = ()
    var_flat: np.ndarray | None = None
    area: np.ndarray | None = None
    wcs: WCS | None = None  # the FITS (TAN-SIP) approximation of gwcs: what the steps use
    gwcs: Any = None  # gwcs.WCS, meta.wcs of the products
    bunit: str = "DN/s"
    bsub: CalState | None = None  # the state right after bkg_subtract (save_bsub)
    i2d: I2dImages | None = None

    @property
    def name(self) -> str:
        return str(self.keywords.get("FILENAME", "exposure"))


def _state_from(product: FitsProduct, backgrounds: Sequence[FitsProduct]) -> CalState:
    missing = [n for n in ("SCI", "DQ", "VAR_POISSON", "VAR_RNOISE") if n not in product.images]
    name = product.keywords.get("FILENAME", "the science exposure")
    if missing:
        raise InputError(f"{name} lacks the {', '.join(missing)} array(s) a count-rate product has")
    sci = np.asarray(product.images["SCI"], np.float32)
    if sci.ndim not in (2, 3):
        raise InputError(f"{name}: SCI of shape {sci.shape} is neither an image nor a cube of integrations")
    images = {k: np.asarray(v) for k, v in product.images.items()}
    for extname in ("ERR", "DQ", "VAR_POISSON", "VAR_RNOISE"):
        if extname in images and images[extname].shape != sci.shape:
            raise InputError(f"{name}: {extname} shape {images[extname].shape} differs from SCI {sci.shape}")
    err = images.get("ERR")
    return CalState(
        sci=sci, err=np.asarray(err if err is not None else np.sqrt(images["VAR_POISSON"] + images["VAR_RNOISE"]),
                                np.float32),
        dq=np.asarray(images["DQ"], np.uint32), var_poisson=np.asarray(images["VAR_POISSON"], np.float32),
        var_rnoise=np.asarray(images["VAR_RNOISE"], np.float32), keywords=dict(product.keywords),
        backgrounds=tuple(backgrounds),
    )


# Adapters: (state, args) -> None when COMPLETE, else why the step did nothing.
def _bkg_subtract(s: CalState, a: StepArgs) -> Skip | None:
    if not s.backgrounds:
        return Skip("the association has no background exposures")
    shape = s.sci.shape[-2:]
    for b in s.backgrounds:
        bname = b.keywords.get("FILENAME", "a background exposure")
        for extname in ("SCI", "DQ", "VAR_POISSON", "VAR_RNOISE"):
            if extname not in b.images:
                raise InputError(f"background {bname} has no {extname} array")
        if b.images["SCI"].shape != shape:
            raise InputError(f"background {bname} has shape {b.images['SCI'].shape}; the science window "
                             f"of {s.name} is {shape}: they must be the same readout window, one image each")
    bs = s.backgrounds
    bkg = average_background([b.images["SCI"] for b in bs], [b.images["DQ"] for b in bs],
                             [b.images["VAR_POISSON"] for b in bs], [b.images["VAR_RNOISE"] for b in bs], a.params)
    r = subtract_background(s.sci, s.dq, s.var_poisson, s.var_rnoise, bkg)
    s.sci, s.err, s.dq, s.var_poisson, s.var_rnoise = r.sci, r.err, r.dq, r.var_poisson, r.var_rnoise
    a.note(f"bkg_subtract: {len(bs)} background exposure(s), median {float(np.nanmedian(bkg.sci)):.4g} DN/s subtracted")
    if a.options.save_bsub:
        s.bsub = dataclasses.replace(s, keywords=dict(s.keywords))
    return None


def _pixel_scale(kw: dict) -> float:
    """The pointing WCS's scale (arcsec/pixel): CDELT1 as ingest wrote it, else the detector's."""
    try:
        return keyword_pixel_scale(kw)
    except KeyError as exc:
        raise InputError(f"{kw.get('FILENAME')}: no CDELT1 and no known DETECTOR for the pixel scale") from exc


def _distortion_model(ref: Reference) -> Model:
    """The DISTORTION reference's transform (full-frame pixels to V2/V3 arcsec)."""
    model = ref.tree.get("model")
    if not isinstance(model, Model) or (model.n_inputs, model.n_outputs) != (2, 2):
        raise ReferenceFileError(f"DISTORTION reference {ref.filename}: its model is not a 2-D transform")
    return model


def _assign_wcs(s: CalState, a: StepArgs) -> Skip | None:
    kw = s.keywords
    pointing = [kw.get(k) for k in ("RA_REF", "DEC_REF", "ROLL_REF")]
    if any(v is None for v in pointing):
        return Skip("the exposure has no pointing (RA_REF, DEC_REF, ROLL_REF)")
    ny, nx = s.sci.shape[-2:]
    ref = a.refs.get("distortion")
    if ref is None:
        a.note("assign_wcs: no DISTORTION reference, the pointing WCS (no distortion) is kept")
        log.warning("%s: assign_wcs: no DISTORTION reference; the pointing WCS is kept without distortion", s.name)
        s.gwcs, s.wcs = pointing_wcs(*map(float, pointing), _pixel_scale(kw), nx, ny)
    else:
        model = _distortion_model(ref)
        window = dict(xstart=int(kw.get("SUBSTRT1", 1)), ystart=int(kw.get("SUBSTRT2", 1)), xsize=nx, ysize=ny)
        v2v3 = None
        if kw.get("V2_REF") is None or kw.get("V3_REF") is None:
            v2v3 = window_reference(model, **window)
            a.note("assign_wcs: no V2_REF/V3_REF; the window centre's (V2, V3) from the DISTORTION reference used")
        offset = None
        if "filteroffset" in a.refs:
            offset = filter_offset(a.refs["filteroffset"].tree.get("filters") or [], kw.get("FILTER"), kw.get("PUPIL"))
        s.gwcs, s.wcs = exposure_wcs(model, TelescopePointing.from_keywords(kw, v2v3=v2v3), offset=offset, **window)
    s.keywords.update(wcs_cards(s.wcs))
    s.keywords["S_REGION"] = s_region(footprint(s.wcs, (ny, nx)))
    return None


def _mark_invalid(s: CalState) -> int:
    """NaN in SCI, ERR and the variances wherever one of them is NaN or DQ says
    DO_NOT_USE, and DO_NOT_USE wherever one is NaN (how flat_field and photom end in the
    public pipeline); returns the number of such pixels. Called right after flat_field's
    and photom's kernels, whose new SCI, ERR and variances the state alone holds: they are
    marked in place (a time series's cubes are not copied again)."""
    r = mark_invalid(s.dq, {"sci": s.sci, "err": s.err, "var_poisson": s.var_poisson,
                            "var_rnoise": s.var_rnoise, "var_flat": s.var_flat}, in_place=True)
    s.dq = r.dq
    s.sci, s.err, s.var_poisson = r.arrays["sci"], r.arrays["err"], r.arrays["var_poisson"]
    s.var_rnoise, s.var_flat = r.arrays["var_rnoise"], r.arrays["var_flat"]
    return r.n_invalid


def _flat_field(s: CalState, a: StepArgs) -> Skip | None:
    flat = a.refs["flat"]
    dq, err = flat.get("DQ"), flat.get("ERR")
    r = apply_flat(s.sci, s.dq, s.var_poisson, s.var_rnoise, flat.get("SCI").astype(np.float32),
                   None if dq is None else dq.astype(np.uint32), None if err is None else err.astype(np.float32))
    s.sci, s.err, s.dq = r.sci, r.err, r.dq
    s.var_poisson, s.var_rnoise, s.var_flat = r.var_poisson, r.var_rnoise, r.var_flat
    if r.n_no_flat:
        a.note(f"flat_field: {r.n_no_flat} pixel(s) without a flat value (NO_FLAT_FIELD)")
    n_invalid = _mark_invalid(s)
    if n_invalid:
        a.note(f"flat_field: {n_invalid} DO_NOT_USE pixel(s) set to NaN in SCI, ERR and the variances")
    return None


def _photom(s: CalState, a: StepArgs) -> Skip | None:
    ph, kw = a.refs["photom"], s.keywords
    row = select_photom_row(ph.tables["PHOTOM"], filter=str(kw.get("FILTER") or ""), pupil=kw.get("PUPIL"),
                            subarray=kw.get("SUBARRAY"))
    if row is None:
        return Skip(f"PHOTOM reference {ph.filename} has no row for FILTER={kw.get('FILTER')} "
                    f"PUPIL={kw.get('PUPIL')} SUBARRAY={kw.get('SUBARRAY')}; the data stay in DN/s",
                    SkipKind.NO_REFERENCE)
    variances = {"VAR_POISSON": s.var_poisson, "VAR_RNOISE": s.var_rnoise}
    if s.var_flat is not None:
        variances["VAR_FLAT"] = s.var_flat
    r = apply_photom(s.sci, s.err, variances, row.photmjsr)
    s.sci, s.err = r.sci, r.err
    s.var_poisson, s.var_rnoise = r.variances["VAR_POISSON"], r.variances["VAR_RNOISE"]
    s.var_flat = r.variances.get("VAR_FLAT")
    sr, a2 = ph.header.get("PIXAR_SR"), ph.header.get("PIXAR_A2")
    s.keywords.update(photom_keywords(row.photmjsr, None if sr is None else float(sr),
                                      None if a2 is None else float(a2)))
    if "area" in a.refs:
        s.area = a.refs["area"].get("SCI").astype(np.float32)
    s.bunit = "MJy/sr"
    _mark_invalid(s)
    return None


def _resample(s: CalState, a: StepArgs) -> Skip | None:
    if s.wcs is None:
        return Skip("the exposure has no WCS (assign_wcs did not run)", SkipKind.NO_INPUT)
    kw = s.keywords
    exptime = float(kw.get("TMEASURE") or kw.get("XPOSURE") or kw.get("EFFEXPTM") or 1.0)
    roll = float(kw["ROLL_REF"]) if kw.get("ROLL_REF") is not None else None
    s.i2d = resample_exposure(s.sci, s.dq, s.wcs, var_rnoise=s.var_rnoise, var_poisson=s.var_poisson,
                              var_flat=s.var_flat, exptime=exptime, roll=roll, params=a.params)
    return None


IMAGE2: Pipeline[CalState] = Pipeline(
    name="image2",
    title="calwebb_image2",
    options=Image2Options,
    steps=(
        Step("bkg_subtract", "S_BKDSUB", _bkg_subtract, params=BkgSubtractParams),
        Step("assign_wcs", "S_WCS", _assign_wcs, optional_reftypes=("distortion", "filteroffset")),
        Step("flat_field", "S_FLAT", _flat_field, reftypes=("flat",)),
        Step("photom", "S_PHOTOM", _photom, reftypes=("photom",), optional_reftypes=("area",)),
        # Integrations (_rateints, TSO) are not resampled, as in the public pipeline.
        Step("resample", "S_RESAMP", _resample, params=ResampleParams, when=lambda s: s.sci.ndim == 2),
    ),
)


@dataclass(frozen=True)
class Image2Output(Recorded):
    """What the pipeline made: ``cal`` (``_cal``, or ``_calints`` when ``is_cube``),
    ``bsub`` on request, ``i2d`` when resample ran; ``record`` what the runner recorded."""

    cal: FitsProduct
    is_cube: bool
    bsub: FitsProduct | None
    i2d: FitsProduct | None
    record: RunRecord
    context: str




    def products(self) -> list[tuple[str, FitsProduct]]:
        """(suffix, product) of everything made, in order."""
        ints = "ints" if self.is_cube else ""
        out = [(f"bsub{ints}", self.bsub), (f"cal{ints}", self.cal), ("i2d", self.i2d)]
        return [(s, p) for s, p in out if p is not None]

    def outputs(self, science_name: str) -> list[Output]:
        """The products named after the science member, in order (``_bsub`` is auxiliary)."""
        return [Output(output_name(science_name, suffix), suffix, product,
                       "AUXILIARY" if suffix.startswith("bsub") else "SCIENCE")
                for suffix, product in self.products()]


def _product(s: CalState, cards: dict, tables: dict) -> FitsProduct:
    """A product of the state's arrays in the ImageModel/CubeModel layout (its gwcs, when
    assign_wcs made one, as ``meta.wcs``)."""
    images = {"SCI": s.sci, "ERR": s.err, "DQ": s.dq, "VAR_POISSON": s.var_poisson, "VAR_RNOISE": s.var_rnoise}
    if s.var_flat is not None:
        images["VAR_FLAT"] = s.var_flat
    if s.area is not None:
        images["AREA"] = s.area.astype(np.float32)
    product = FitsProduct(model_type="CubeModel" if s.sci.ndim == 3 else "ImageModel", images=images,
                          tables=dict(tables), hdu_keywords={"ERR": {"BUNIT": s.bunit}},
                          extra_meta={} if s.gwcs is None else {"meta.wcs": s.gwcs})
    set_cards(product, {**cards, "BUNIT": s.bunit})
    return product


def _i2d_product(s: CalState, header: dict) -> FitsProduct:
    """The ``_i2d``: the exposure's keywords without its distortion terms, then the grid's
    WCS (and its gwcs as ``meta.wcs``)."""
    cards = {k: v for k, v in header.items() if not k.startswith(("A_", "B_", "AP_", "BP_"))}
    cards.update(s.i2d.keywords)
    if "PHOTMJSR" not in cards:  # no photometric calibration: the grid's area is not claimed either
        cards.pop("PIXAR_SR", None)
        cards.pop("PIXAR_A2", None)
    product = FitsProduct(model_type="ImageModel", images=s.i2d.images, hdu_keywords={"ERR": {"BUNIT": s.bunit}},
                          extra_meta={"meta.wcs": fits_gwcs(s.i2d.wcs, s.i2d.images["SCI"].shape)})
    set_cards(product, {**cards, "BUNIT": s.bunit})
    return product


def run_image2(
    science: FitsProduct,
    refs: Mapping[str, Reference | None],
    *,
    backgrounds: Sequence[FitsProduct] = (),
    params: PipelineParams | None = None,
    context: str | None = None,
    software_version: str = "",
    created: str | None = None,
    asn_table: str | None = None,
    asn_pool: str | None = None,
    step_hook: Callable[[str], AbstractContextManager] | None = None,
) -> Image2Output:
    """Run calwebb_image2 on one exposure with loaded references.

    Parameters
    ----------
    science : FitsProduct
        ``_rate`` (ImageModel, SCI (ny, nx)) or ``_rateints`` (CubeModel, SCI (nints, ny, nx)),
        DN/s, with DQ, VAR_POISSON and VAR_RNOISE.
    refs : mapping
        Reference type -> loaded reference (cut to the window), or None; a missing type
        makes its step SKIPPED.
    backgrounds : sequence of FitsProduct
        ``_rate`` products of dedicated background exposures (same window), may be empty.
    params : PipelineParams, optional
        ``IMAGE2.params(...)``; defaults when None.
    context : str, optional
        Reference context used (CRDS_CTX).
    software_version : str
        CAL_VER.
    created : str, optional
        DATE of the products (ISO time); the caller passes a fixed time so a rerun writes
        the same bytes.
    asn_table, asn_pool : str, optional
        ASNTABLE and ASNPOOL of the association that asked for this run.
    step_hook : callable, optional
        ``step_hook(step_name)`` returns a context manager entered around each step.

    Raises
    ------
    InputError
        Input that cannot be calibrated (missing arrays, background of another window).
    """
    state = _state_from(science, backgrounds)
    record = IMAGE2.run(state, science.keywords, {t: r for t, r in refs.items() if r is not None}, params,
                        step_hook=step_hook)
    prov = provenance_cards(software_version=software_version, context=context, created=created,
                            asn_table=asn_table, asn_pool=asn_pool)
    tables = {k: v for k, v in science.tables.items() if k == "INT_TIMES"}

    def header(s: CalState, through: str | None) -> dict:
        return {**s.keywords, **prov, **record.status_cards(through), **record.reference_cards(through)}

    cal = _product(state, header(state, "photom"), tables)
    bsub = _product(state.bsub, header(state.bsub, "bkg_subtract"), tables) if state.bsub is not None else None
    i2d = _i2d_product(state, header(state, None)) if state.i2d is not None else None
    return Image2Output(cal, state.sci.ndim == 3, bsub, i2d, record, context or "N/A")


def calibrate(
    science: FitsProduct,
    provider: ReferenceProvider,
    *,
    backgrounds: Sequence[FitsProduct] = (),
    params: PipelineParams | None = None,
    software_version: str,
    created: str | None = None,
    asn_table: str | None = None,
    asn_pool: str | None = None,
) -> Image2Output:
    """Choose and read the references of this exposure's steps from ``provider`` (the
    catalog for a worker, local files for ``dms run``) and run :func:`run_image2`."""
    refs = load_references(provider, science.keywords, IMAGE2.reftypes(science.keywords))
    return run_image2(science, refs.found, backgrounds=backgrounds, params=params, context=refs.context,
                      software_version=software_version, created=created, asn_table=asn_table, asn_pool=asn_pool)
