"""calwebb_image3 and calwebb_tso3, declared over the stage-3 kernels.

No I/O: member products in, products and tables out. The steps are declared in
:data:`IMAGE3` and :data:`TSO3` (:mod:`shared.pipeline`); the runner records COMPLETE or
SKIPPED (with the reason, logged) in each S_* keyword of every product.

image3: tweakreg -> skymatch -> outlier_detection (-> ``_crf`` per member) -> resample
(-> ``_i2d``) -> source_catalog (-> ``_cat`` table and ``_segm``).
tso3: outlier_detection (-> ``_crfints`` per member) -> tso_photometry (imaging: ->
``_phot`` table, all members' integrations in time order); for a slitless spectroscopic
time series (MIRI LRS slitless; NIRSpec's bright objects through S1600A1) -> pixel_replace
(each flagged pixel of the members' cubes filled with its median over the nearby
integrations, DQ FLUX_ESTIMATED) -> extract_1d (each integration's spectrum along the
trace of the SPECWCS reference, at the source spec2 placed (SRCXPOS/SRCYPOS); -> one
``_x1dints`` of all members' integrations, the segments of a long series in order) ->
white_light (-> the ``_whtlt`` light curve).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from astropy.table import QTable, vstack
from astropy.wcs import WCS
from pydantic import BaseModel, ConfigDict, Field

from services.stage3.asn import Level3Association
from services.stage3.level3 import i2d_product, level3_keywords, pixel_area_cards, segm_product
from services.stage3.products import (
    INTERMEDIATE,
    card_value,
    crf_outputs,
    member_wcs,
    replace_wcs,
    set_keywords,
)
from services.stage3.spec3 import SPEC3, Spec3Output, run_spec3
from services.stage3.steps.catalog_refs import (
    ApertureParams,
    ReferenceRowError,
    abvega_offset,
    apcorr_apertures,
)
from services.stage3.steps.outlier_detection import (
    OutlierParams,
    apply_outliers,
    flag_outliers_imaging,
    flag_outliers_tso,
    median_image,
    outlier_mask,
    replace_flagged,
    single_image,
)
from services.stage3.steps.skymatch import SkyMatchParams, measure_sky, skymatch, subtract_level
from services.stage3.steps.source_catalog import SourceCatalogParams, make_catalog
from services.stage3.steps.tso_photometry import TsoPhotometryParams, phot_table, tso_photometry
from services.stage3.steps.tweakreg import (
    Alignment,
    SourceList,
    TweakregInput,
    TweakregParams,
    input_sources,
    tweakreg,
)
from services.stage3.steps.white_light import WhiteLightParams, white_light, whtlt_table
from services.stage3.wfss3 import WFSS3, Wfss3Output, is_wfss, run_wfss3
from shared.arrays import read_only
from shared.datamodels import FitsProduct
from shared.datamodels.dqflags import PIXEL
from shared.datamodels.spectra import IntegrationTimes, integration_times, x1dints_product
from shared.errors import InputError
from shared.imaging_wcs import fits_gwcs, rotate_gwcs, sky_rotation
from shared.instruments import keyword_pixel_scale
from shared.naming import member_output_name
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
from shared.resample import (
    Contribution,
    ResampleInput,
    ResampleResult,
    combine,
    contribution,
    output_grid,
    pixel_scale_arcsec,
    resample,
)
from shared.spectra import (
    SLITLESS_EXP_TYPES,
    TSO_SPEC_EXP_TYPES,
    ExtractParams,
    SlitTrace,
    boxcar_extract,
    in_frame,
    recorded_source_along,
    reference_point,
    slit_table,
    slit_trace,
)
from shared.spectra.grism import GRISM_TSO_EXP_TYPES, grism_trace
from shared.spectra.soss import (
    SOSS_EXP_TYPES,
    calibrate_orders,
    order_params,
    order_traces,
)
from shared.spectra.wavelengthrange import bound_trace, exposure_range

__all__ = [
    "IMAGE3",
    "TSO3",
    "Image3Output",
    "MemberMeta",
    "MemberSurvey",
    "SplitInputs",
    "SplitRun",
    "ResampleParams",
    "Tso3Output",
    "calibrate",
    "crf_outputs",
    "image3_median",
    "image3_member",
    "image3_mosaic",
    "image3_single",
    "member_meta",
    "members_context",
    "outliers_run",
    "run_image3",
    "run_tso3",
    "survey_member",
]

log = logging.getLogger(__name__)

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


@dataclass
class _Member:
    """A member's arrays as the steps pass them along: read-only views of the input's
    (a step makes new arrays, never changes these: inputs stay untouched, and eight full
    frames are not held twice)."""

    product: FitsProduct
    sci: np.ndarray
    err: np.ndarray
    dq: np.ndarray
    variances: dict[str, np.ndarray]
    wcs: WCS | None
    cards: dict = field(default_factory=dict)
    gwcs: Any = None  # gwcs.WCS of the member (its meta.wcs), corrected as wcs is
    # only the member's metadata is here (a task of a split run where another task holds
    # its arrays): the arrays are placeholders of its shape, never read
    remote: bool = False

    def aligned(self, new: WCS) -> str | None:
        """Take tweakreg's corrected WCS, and turn the gwcs by the same rotation of the sky;
        a gwcs that cannot be turned so is rebuilt from ``new`` (the note says so)."""
        old, self.wcs = self.wcs, new
        if self.gwcs is None:
            return None
        try:
            self.gwcs = rotate_gwcs(self.gwcs, sky_rotation(old, new))
            return None
        except ValueError as exc:
            self.gwcs = fits_gwcs(new, self.sci.shape)
            return f"{self.name}: meta.wcs rebuilt from the aligned FITS WCS ({exc})"

    @property
    def name(self) -> str:
        return str(self.product.keywords.get("FILENAME", "member"))

    def resample_input(self) -> ResampleInput:
        exptime = float(card_value(self.product, "TMEASURE") or card_value(self.product, "EFFEXPTM") or 1.0)
        return ResampleInput(self.sci, self.wcs, self.dq, self.variances.get("VAR_RNOISE"),
                             self.variances.get("VAR_POISSON"), self.variances.get("VAR_FLAT"), exptime)

    def flag(self, mask: np.ndarray) -> None:
        """Set the outliers of ``mask`` unusable (DQ) and NaN in SCI, ERR and variances."""
        names = list(self.variances)
        self.dq, arrays = apply_outliers(mask, self.dq, self.sci, self.err, *(self.variances[v] for v in names))
        self.sci, self.err = arrays[0], arrays[1]
        self.variances = dict(zip(names, arrays[2:], strict=True))
        log.info("%s: %d outliers", self.name, int(mask.sum()))


def _member(product: FitsProduct, ndim: int, need_wcs: bool) -> _Member:
    """The member of ``product``: its arrays as read-only views, and the product's
    metadata (and extensions the steps do not use, e.g. AREA) without them."""
    name = product.keywords.get("FILENAME", "member")
    missing = [e for e in ("SCI", "ERR", "DQ") if e not in product.images]
    if missing:
        raise InputError(f"{name}: no {', '.join(missing)} extension; stage 3 needs calibrated products")
    sci = read_only(product.images["SCI"], np.float32)
    if sci.ndim != ndim:
        raise InputError(f"{name}: SCI is {sci.ndim}-D, expected {ndim}-D "
                         f"({'a _cal image' if ndim == 2 else 'a _calints cube'})")
    variances = {v: read_only(product.images[v], np.float32) for v in _VARIANCES if v in product.images}
    wcs = member_wcs(product) if need_wcs else None
    return _Member(_without_step_arrays(product), sci, read_only(product.images["ERR"], np.float32),
                   read_only(product.images["DQ"], np.uint32), variances, wcs,
                   gwcs=product.extra_meta.get("meta.wcs"))


def _without_step_arrays(product: FitsProduct) -> FitsProduct:
    """``product`` with its metadata and other extensions, without SCI, ERR, DQ and the
    variances (the member holds those, as the steps change them)."""
    own = product.detached()
    own.images = {k: v for k, v in own.images.items() if k not in ("SCI", "ERR", "DQ", *_VARIANCES)}
    return own


def _release(members: list[FitsProduct]) -> None:
    """Replace each input of the caller's list by its metadata (:func:`_without_step_arrays`):
    the input arrays are then let go as the steps replace them."""
    for i, product in enumerate(members):
        members[i] = _without_step_arrays(product)


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
        product.extra_meta["meta.wcs"] = m.gwcs if m.gwcs is not None else fits_gwcs(m.wcs, m.sci.shape[-2:])
    return product


def _weight_type(ms: list[_Member], wanted: str) -> str:
    # Inverse-variance weights need VAR_RNOISE; without it every input is weighted alike.
    return wanted if wanted != "ivm" or all("VAR_RNOISE" in m.variances for m in ms) else "exptime"


def _outlier_params(ms: list[_Member], params: OutlierParams) -> OutlierParams:
    return params.model_copy(update={"weight_type": _weight_type(ms, params.weight_type)})


# ---------------------------------------------------------------------------- image3

@dataclass(frozen=True)
class MemberSurvey:
    """What image3 measures on one member alone before its steps need all of them: the
    sources tweakreg fits (None: tweakreg is skipped) and the sky skymatch levels
    ((median, pixels), None: skymatch is skipped). A task of its own makes it for each
    member of a split run (:func:`survey_member`, :class:`SplitRun`)."""

    sources: SourceList | None
    sky: tuple[float, int] | None


def survey_member(product: FitsProduct, params: PipelineParams | None = None) -> MemberSurvey:
    """The :class:`MemberSurvey` of one ``_cal`` member, with the parameters image3 runs
    with: the same values its tweakreg and skymatch find on that member (both read the
    member's data as calibrated, before any step changes it)."""
    p = params or IMAGE3.params()
    m = _member(product, 2, need_wcs=False)
    sources = sky = None
    if "tweakreg" not in p.skip:
        sources = input_sources(TweakregInput(m.sci, m.err, m.dq, None), p.step("tweakreg"))
    if "skymatch" not in p.skip:
        sp = p.step("skymatch")
        sky = measure_sky(m.sci, m.dq, source_snr=sp.source_snr, source_grow=sp.source_grow)
    return MemberSurvey(sources, sky)


@dataclass(frozen=True)
class MemberMeta:
    """A member as the tasks of a split run know it without its arrays: its metadata
    (keywords and cards; no arrays, tables or ASDF tree), the shape of its images and the
    variance arrays it has."""

    product: FitsProduct
    shape: tuple[int, int]
    variances: tuple[str, ...]


def member_meta(product: FitsProduct) -> MemberMeta:
    """The :class:`MemberMeta` of a ``_cal`` member (InputError as image3 gives)."""
    m = _member(product, 2, need_wcs=True)
    meta = FitsProduct(model_type=product.model_type, keywords=dict(product.keywords),
                       hdu_keywords={k: dict(v) for k, v in product.hdu_keywords.items()})
    return MemberMeta(meta, (int(m.sci.shape[0]), int(m.sci.shape[1])), tuple(m.variances))


def _remote(meta: MemberMeta) -> _Member:
    blank = np.broadcast_to(np.float32(np.nan), meta.shape)
    return _Member(meta.product, blank, blank, np.broadcast_to(np.uint32(0), meta.shape),
                   dict.fromkeys(meta.variances, blank), member_wcs(meta.product), remote=True)


@dataclass
class SplitInputs:
    """What the earlier tasks of a split run made, as this task's steps need it: the
    median of the resampled members (outlier detection flags the members held here
    against it) and every member's contribution to the mosaic, in member order."""

    median: Callable[[], np.ndarray] = lambda: _missing("the outlier median")
    contributions: Callable[[], Iterable[Contribution]] = lambda: _missing("the members' contributions")


def _missing(what: str):
    raise RuntimeError(f"{what} was not made by an earlier task of this split run")


@dataclass
class Image3State:
    """The members and what the image3 steps made of them."""

    members: list[_Member]
    grid_params: ResampleParams
    abs_refcat: tuple[np.ndarray, np.ndarray] | None = None
    label: str = "image3"  # names the run in warnings (the association)
    surveys: list[MemberSurvey | None] | None = None  # made by tasks of their own, per member (None: not made)
    split: SplitInputs | None = None  # what earlier tasks of a split run made
    alignments: list[Alignment] = field(default_factory=list)
    resampled: ResampleResult | None = None
    weight_type: str | None = None
    catalog: QTable | None = None
    segm: np.ndarray | None = None
    _grid: tuple[WCS, tuple[int, int]] | None = None

    @property
    def bunit(self) -> str:
        return str(card_value(self.members[0].product, "BUNIT", "MJy/sr"))

    def grid(self) -> tuple[WCS, tuple[int, int]]:
        """The output grid over the members as aligned (made once, when first needed)."""
        if self._grid is None:
            rp, ms = self.grid_params, self.members
            rotation = rp.rotation
            if rotation is None:
                rotation = float(card_value(ms[0].product, "ROLL_REF", 0.0) or 0.0)
            self._grid = output_grid([m.wcs for m in ms], [m.sci.shape for m in ms], pixel_scale=rp.pixel_scale,
                                     pixel_scale_ratio=rp.pixel_scale_ratio, rotation=rotation)
        return self._grid


def _record_absolute(s: Image3State, a: StepArgs, aligned: bool, note: str) -> None:
    """TWKABS (and TWKANOTE, why it failed) on every member; a failure is also a warning
    in the log and the notes (``dms run`` prints them), never silent."""
    if aligned:
        for m in s.members:
            m.cards.update(TWKABS="ALIGNED", TWKANOTE=None)
        return
    why = note.removeprefix("absolute alignment failed: ") or "no fit"
    for m in s.members:
        m.cards.update(TWKABS="FAILED", TWKANOTE=why[:68])
    names = ", ".join(m.name for m in s.members)
    log.warning("%s: tweakreg: absolute alignment failed: %s; %s keep their relative alignment (TWKABS=FAILED)",
                s.label, why, names)
    a.note(f"tweakreg: WARNING absolute alignment failed: {why}; the exposures keep their relative alignment "
           "(TWKABS=FAILED in every product)")


def _tweakreg(s: Image3State, a: StepArgs) -> Skip | None:
    ms = s.members
    exposures = [_exposure_of(m) for m in ms]  # its detectors are aligned together
    if len(set(exposures)) < 2 and s.abs_refcat is None:
        return Skip("one exposure and no absolute catalog: nothing to align")
    result = tweakreg([TweakregInput(m.sci, m.err, m.dq, m.wcs) for m in ms], a.params, s.abs_refcat,
                      groups=exposures, sources=[v and v.sources for v in s.surveys] if s.surveys else None)
    s.alignments = result.alignments
    if s.abs_refcat is not None:
        _record_absolute(s, a, result.absolute is not None, result.absolute_note)
    elif result.absolute_note:
        a.note(f"tweakreg: {result.absolute_note}")
    kind = "absolute" if result.absolute is not None else "relative"
    moved = 0
    for m, al, new in zip(ms, result.alignments, result.wcss, strict=True):
        if not al.aligned:
            a.note(f"tweakreg: {m.name} not aligned: {al.note}")
            continue
        ny, nx = m.sci.shape
        cx, cy = (nx - 1) / 2.0, (ny - 1) / 2.0
        ox, oy = m.wcs.world_to_pixel_values(*new.pixel_to_world_values(cx, cy))
        scale = float(np.sqrt(abs(np.linalg.det(m.wcs.pixel_scale_matrix)))) * 3600.0
        m.cards.update(TWKREF=kind, TWKDX=round(float(ox - cx), 5), TWKDY=round(float(oy - cy), 5),
                       TWKROT=round(float(np.degrees(al.transform.theta)), 7),
                       TWKRMS=round(float(al.rms / scale), 5), TWKNMAT=int(al.nmatch))
        if (why := m.aligned(new)) is not None:
            a.note(f"tweakreg: {why}")
        moved += al.note != "reference exposure" or result.absolute is not None
    return None if moved else Skip("no exposure could be aligned")


# The keywords that name an exposure (jwst's group_id: its detectors are fitted together).
_EXPOSURE_KEYS = ("PROGRAM", "OBSERVTN", "VISIT", "VISITGRP", "SEQ_ID", "ACT_ID", "EXPOSURE")


def _exposure_of(m: _Member) -> tuple:
    """The member's exposure (``_EXPOSURE_KEYS``); its file name when one is missing."""
    values = tuple(card_value(m.product, k) for k in _EXPOSURE_KEYS)
    return values if all(v is not None for v in values) else (m.name,)


def _skymatch(s: Image3State, a: StepArgs) -> Skip | None:
    p = a.params
    result = skymatch([m.sci for m in s.members], [m.dq for m in s.members], p.model_copy(update={"subtract": False}),
                      groups=[_exposure_of(m) for m in s.members],
                      measured=[v and v.sky for v in s.surveys] if s.surveys else None)
    for m, level in zip(s.members, result.subtracted, strict=True):
        if p.subtract and not m.remote:
            m.sci = subtract_level(m.sci, level)
        m.cards.update(BKGMETH=p.skymethod, BKGLEVEL=float(level), BKGSUB=bool(p.subtract))
    n_groups = len(set(result.groups))
    per = "exposure" if p.grouping == "exposure" else "detector image"
    a.note(f"skymatch: {p.skymethod}, one level per {per} ({n_groups} for {len(s.members)} images): "
           + ", ".join(f"{level:.4g}" for level in dict(zip(result.groups, result.subtracted, strict=True)).values()))
    return None


def _outliers_imaging(s: Image3State, a: StepArgs) -> Skip | None:
    ms = s.members
    if len(ms) < 2:
        return Skip("one exposure: nothing to compare with")
    op = _outlier_params(ms, a.params)
    if s.split is not None:  # the median was made by a task of its own: flag the members held here
        own = [m for m in ms if not m.remote]
        median = s.split.median() if own else None
        for m in own:
            m.flag(outlier_mask(m.resample_input(), m.err, median, s.grid()[0], op))
        return None
    found = flag_outliers_imaging([m.resample_input() for m in ms], [m.err for m in ms], *s.grid(), op)
    for m, mask in zip(ms, found.masks, strict=True):
        m.flag(mask)
    return None


def _resample(s: Image3State, a: StepArgs) -> Skip | None:
    rp, ms = a.params, s.members
    s.weight_type = _weight_type(ms, rp.weight_type)
    if s.split is not None:  # each member's contribution was made by a task of its own
        s.resampled = combine(s.split.contributions(), s.grid()[1], n_inputs=len(ms))
        return None
    s.resampled = resample([m.resample_input() for m in ms], *s.grid(), pixfrac=rp.pixfrac, kernel=rp.kernel,
                           weight_type=s.weight_type)
    return None


def _contribution(s: Image3State, m: _Member, rp: ResampleParams) -> Contribution:
    """What ``m`` adds to the mosaic (the resample step's part of one member)."""
    return contribution(m.resample_input(), *s.grid(), pixfrac=rp.pixfrac, kernel=rp.kernel,
                        weight_type=_weight_type(s.members, rp.weight_type))


def _catalog_references(s: Image3State, a: StepArgs) -> tuple[ApertureParams | None, float | None]:
    """The apertures (APCORR) and AB - Vega offset (ABVEGAOFFSET) for the catalog, from the
    first member's FILTER, PUPIL, SUBARRAY and DETECTOR; None (with a note) for what no
    reference gives, so the catalog measures its apertures on the image or leaves Vega = AB."""
    first = s.members[0]
    kw = {k: card_value(first.product, k) for k in ("INSTRUME", "FILTER", "PUPIL", "SUBARRAY", "DETECTOR")}
    instrument = str(kw["INSTRUME"] or "")
    apertures = offset = None
    ref = a.refs.get("apcorr")
    if ref is None:
        a.note("source_catalog: no APCORR reference: aperture radii and correction measured on the image")
    else:
        out_wcs = s.grid()[0]
        ratio = pixel_scale_arcsec(out_wcs) / pixel_scale_arcsec(first.wcs, first.sci.shape)
        try:
            apertures = apcorr_apertures(ref.tables["APCORR"], instrument=instrument, filter=kw["FILTER"],
                                         pupil=kw["PUPIL"], subarray=kw["SUBARRAY"], aperture_ee=a.params.aperture_ee,
                                         pixel_scale_ratio=ratio, source=ref.filename)
        except ReferenceRowError as exc:
            a.note(f"source_catalog: {exc}: aperture radii and correction measured on the image")
    ref = a.refs.get("abvegaoffset")
    if ref is None:
        a.note("source_catalog: no ABVEGAOFFSET reference: Vega magnitudes equal AB")
    else:
        try:
            offset = abvega_offset(ref.tables["abvega_offset"], instrument=instrument, filter=kw["FILTER"],
                                   pupil=kw["PUPIL"], detector=kw["DETECTOR"], source=ref.filename)
        except ReferenceRowError as exc:
            a.note(f"source_catalog: {exc}: Vega magnitudes equal AB")
    return apertures, offset


def _source_catalog(s: Image3State, a: StepArgs) -> Skip | None:
    if s.resampled is None:
        return Skip("no resampled image", SkipKind.NO_INPUT)
    if s.bunit != "MJy/sr":
        return Skip(f"the resampled image is in {s.bunit}, not MJy/sr (photom did not run)", SkipKind.NO_INPUT)
    wcs = s.grid()[0]
    r = s.resampled
    apertures, offset = _catalog_references(s, a)
    result = make_catalog(r.data, r.err, r.wht, pixar_sr=pixel_area_cards(wcs)["PIXAR_SR"], wcs=wcs,
                          params=a.params, apertures=apertures, abvega_offset=offset)
    for n in result.notes:
        a.note(f"source_catalog: {n}")
    s.segm = result.segm
    if len(result.catalog) == 0:
        return Skip("no source detected")
    s.catalog = result.catalog
    return None


IMAGE3: Pipeline[Image3State] = Pipeline(
    name="image3",
    title="calwebb_image3",
    steps=(
        Step("tweakreg", "S_TWKREG", _tweakreg, params=TweakregParams),
        Step("skymatch", "S_SKYMAT", _skymatch, params=SkyMatchParams),
        Step("outlier_detection", "S_OUTLIR", _outliers_imaging, params=OutlierParams),
        Step("resample", "S_RESAMP", _resample, params=ResampleParams),
        Step("source_catalog", "S_SRCCAT", _source_catalog, params=SourceCatalogParams,
             optional_reftypes=("apcorr", "abvegaoffset")),
    ),
)


@dataclass(frozen=True)
class Image3Output(Recorded):
    """``crf`` one product per member (input order; empty from a split run's mosaic task,
    see :func:`image3_mosaic`); ``i2d``; ``cat`` (None when no
    source was found or the step was skipped) and ``segm``; what the runner recorded, and
    the tweakreg alignment of each member."""

    crf: list[FitsProduct]
    i2d: FitsProduct | None
    cat: QTable | None
    segm: FitsProduct | None
    record: RunRecord
    alignments: list[Alignment] = field(default_factory=list)

    def outputs(self, asn: Level3Association) -> list[Output]:
        """Everything worth archiving, named for the association, in order (2c first)."""
        out = crf_outputs(asn, self.crf) if self.crf else []
        if self.i2d is not None:
            out.append(Output(asn.product("i2d"), "i2d", self.i2d))
        if self.segm is not None:
            out.append(Output(asn.product("segm"), "segm", self.segm, INTERMEDIATE))
        if self.cat is not None:
            out.append(Output(asn.product("cat", "ecsv"), "cat", self.cat))
        return out


def run_image3(
    members: Sequence[FitsProduct], asn: dict | None = None, params: PipelineParams | None = None, *,
    abs_refcat: tuple[np.ndarray, np.ndarray] | None = None, software_version: str, created: str | None = None,
    context: str | None = None, asn_table: str | None = None, refs: Mapping[str, Reference | None] | None = None,
    step_hook: Callable[[str], AbstractContextManager] | None = None,
    on_crf: Callable[[list[FitsProduct]], None] | None = None,
    release_inputs: bool = False,
) -> Image3Output:
    """calwebb_image3 over the science members of a Level-3 association.

    Parameters
    ----------
    members : sequence of FitsProduct
        ``_cal`` images (SCI/ERR/DQ, variances, a celestial WCS in the SCI header; SCI in
        MJy/sr for the catalog), e.g. from :func:`shared.datamodels.read_product`.
    asn : dict, optional
        The association (``asn_pool`` becomes ASNPOOL).
    params : PipelineParams, optional
        ``IMAGE3.params(...)``; defaults when None.
    abs_refcat : (ra, dec), optional
        Absolute astrometric catalog (degrees) tweakreg aligns the group to.
    created : str
        DATE of the outputs (ISO); passed in so the same input gives the same bytes.
    context : str, optional
        The reference context the members were calibrated with (CRDS_CTX).
    asn_table : str, optional
        The association's file name (ASNTABLE).
    refs : mapping, optional
        Reference type -> loaded reference (``apcorr``, ``abvegaoffset`` for the catalog),
        or None; without them the catalog measures its apertures and Vega = AB.
    step_hook : callable, optional
        ``step_hook(step_name)`` returns a context manager entered around each step.
    on_crf : callable, optional
        Called with the ``_crf`` products as soon as they are final (outlier detection has
        run; nothing after it changes the members), while the run goes on to resample
        and the catalog: the caller can archive them meanwhile. The same products are
        in the result.
    release_inputs : bool
        ``members`` is a list the caller hands over: each item is replaced by its
        metadata once read, so the input arrays are let go as the steps replace them
        (eight full frames are not held twice). Default: inputs untouched.

    Raises
    ------
    InputError
        A member is not a calibrated 2-D image with a WCS (the message names it).
    """
    p = params or IMAGE3.params()
    if not members:
        raise InputError("image3 needs at least one member")
    state = Image3State([_member(m, 2, need_wcs=True) for m in members], p.step("resample"), abs_refcat,
                        label=asn_table or "image3")
    if release_inputs:
        _release(members)
    found = {t: r for t, r in (refs or {}).items() if r is not None}
    prov = provenance_cards(software_version=software_version, created=created, context=context,
                            asn_table=asn_table, asn_pool=(asn or {}).get("asn_pool"))
    crf: list[FitsProduct] = []

    def crf_products(record: RunRecord) -> list[FitsProduct]:
        if not crf:
            crf.extend(_member_product(m, "ImageModel", {**prov, **record.status_cards("outlier_detection")})
                       for m in state.members)
        return crf

    def after_step(name: str, record: RunRecord) -> None:
        if name == "outlier_detection" and on_crf is not None:
            on_crf(crf_products(record))

    record = IMAGE3.run(state, state.members[0].product.keywords, found, p, label=asn_table or "image3",
                        step_hook=step_hook, after_step=after_step)
    crf_products(record)
    i2d, segm = _level3_products(state, record, p, prov, crf)
    return Image3Output(crf, i2d, state.catalog, segm, record, state.alignments)


def _level3_products(state: Image3State, record: RunRecord, p: PipelineParams, prov: dict,
                     crf: list[FitsProduct]) -> tuple[FitsProduct | None, FitsProduct | None]:
    """The ``_i2d`` and ``_segm`` of a run (None when not made), their keywords from the
    ``_crf``."""
    common = {**prov, **record.status_cards(), **record.reference_cards()}
    header, other = level3_keywords(crf)
    i2d = segm = None
    if state.resampled is not None:
        r, wcs = state.resampled, state.grid()[0]
        images = {"SCI": r.data, "ERR": r.err, "CON": r.con, "WHT": r.wht}
        images.update({name.upper(): v for name in ("var_poisson", "var_rnoise", "var_flat")
                       if (v := getattr(r, name)) is not None})
        cards = {"NDRIZ": r.n_inputs, "RESWHT": state.weight_type, "PIXFRAC": p.step("resample").pixfrac,
                 "PXSCLRT": p.step("resample").pixel_scale_ratio, **common}
        i2d = i2d_product(header, other, images, wcs, cards, state.bunit)
        if state.segm is not None:
            segm = segm_product({**header, **common}, other, state.segm, wcs)
    return i2d, segm


# ------------------------------------------------------------------- image3, split across tasks
#
# A task of its own per member and step where the work is per member, the steps that need
# every member in tasks of their own after them (services/stage3/parts.py runs them):
#   survey_member (each) -> image3_single (each) -> image3_median -> image3_member (each)
#   -> image3_mosaic.
# Every task replays tweakreg and skymatch from the members' surveys and metadata (cheap:
# no pixel is read) to know the aligned WCSs, sky levels and grid; it holds the arrays of
# at most one member. The products are those of run_image3, to the bit.

@dataclass(frozen=True)
class SplitRun:
    """What every task of a split run starts from: each member's metadata and survey (in
    member order), the parameters, the absolute catalog and the run's label."""

    metas: Sequence[MemberMeta]
    surveys: Sequence[MemberSurvey]
    params: PipelineParams
    abs_refcat: tuple[np.ndarray, np.ndarray] | None = None
    label: str = "image3"

    def state(self, own: tuple[int, FitsProduct] | None = None, split: SplitInputs | None = None) -> Image3State:
        """The run's state: the members' metadata, and the arrays of ``own`` (index, product)."""
        if len(self.surveys) != len(self.metas):
            raise ValueError(f"{len(self.surveys)} member surveys for {len(self.metas)} members")
        members = [_member(own[1], 2, need_wcs=True) if own is not None and i == own[0] else _remote(meta)
                   for i, meta in enumerate(self.metas)]
        return Image3State(members, self.params.step("resample"), self.abs_refcat, label=self.label,
                           surveys=list(self.surveys), split=split or SplitInputs())

    def replay(self, state: Image3State, until: str | None, refs: Mapping[str, Reference] | None = None) -> RunRecord:
        return IMAGE3.run(state, state.members[0].product.keywords, refs or {}, self.params, label=self.label,
                          until=until)

    @property
    def runs_outliers(self) -> bool:
        """Whether outlier detection runs (it needs a median of the members)."""
        return outliers_run(self.params, len(self.metas))

    @property
    def resamples(self) -> bool:
        return "resample" not in self.params.skip


def outliers_run(params: PipelineParams, members: int) -> bool:
    """Whether image3's outlier detection runs on ``members`` members with ``params``."""
    return "outlier_detection" not in params.skip and members > 1


def image3_single(run: SplitRun, k: int, product: FitsProduct) -> tuple[tuple[slice, slice] | None, np.ndarray | None]:
    """Member ``k``'s layer of the outlier median (``product`` is its ``_cal``): its
    landing box on the grid and its values there, (None, None) when it lands nowhere."""
    state = run.state(own=(k, product))
    run.replay(state, "skymatch")
    op = _outlier_params(state.members, run.params.step("outlier_detection"))
    return single_image(state.members[k].resample_input(), *state.grid(), op)


def image3_median(run: SplitRun, layers: Iterable[tuple[tuple[slice, slice] | None, np.ndarray | None]]) -> np.ndarray:
    """The outlier median of the members' :func:`image3_single` layers, in member order."""
    state = run.state()
    run.replay(state, "skymatch")
    return median_image(layers, len(run.metas), state.grid()[1])


def image3_member(run: SplitRun, k: int, product: FitsProduct, *, median: Callable[[], np.ndarray] | None,
                  prov: dict, on_crf: Callable[[FitsProduct], None] | None = None,
                  ) -> tuple[FitsProduct, Contribution | None]:
    """Member ``k``'s ``_crf`` (flagged against ``median``, when outlier detection runs)
    and its contribution to the mosaic (None when resample is skipped); ``prov`` are
    :func:`shared.pipeline.provenance_cards`. ``on_crf`` gets the ``_crf`` as soon as it
    is made, before the contribution is (the caller can archive it meanwhile)."""
    state = run.state(own=(k, product), split=SplitInputs(median=median) if median is not None else None)
    record = run.replay(state, "outlier_detection")
    m = state.members[k]
    crf = _member_product(m, "ImageModel", {**prov, **record.status_cards("outlier_detection")})
    if on_crf is not None:
        on_crf(crf)
    return crf, _contribution(state, m, run.params.step("resample")) if run.resamples else None


def image3_mosaic(run: SplitRun, contributions: Callable[[], Iterable[Contribution]], *, prov: dict,
                  refs: Mapping[str, Reference | None] | None = None) -> Image3Output:
    """The Level-3 products from the members' contributions (in member order): the
    ``_i2d``, catalog and ``_segm`` with the whole run's record; ``crf`` is empty (the
    member tasks made them)."""
    state = run.state(split=SplitInputs(contributions=contributions))
    record = run.replay(state, None, {t: r for t, r in (refs or {}).items() if r is not None})
    crf = [_member_product(m, "ImageModel", {**prov, **record.status_cards("outlier_detection")})
           for m in state.members]  # their keywords, as the member tasks made them
    i2d, segm = _level3_products(state, record, run.params, prov, crf)
    return Image3Output([], i2d, state.catalog, segm, record, state.alignments)


# ---------------------------------------------------------------------------- tso3

@dataclass
class Tso3State:
    """The time-series members and what is made of them: the photometry (imaging); each
    integration's spectrum (spectroscopy: ``spectra`` per spectral order, each in order of
    ``ints``, their ``segments``, and the cards of the first member's source; in Jy, or in
    DN/s until photom calibrates a SOSS series: ``counts``) and the white-light curve."""

    members: list[_Member]
    phot: QTable | None = None
    # by spectral order (None: a mode of one spectrum), each integration's spectrum
    spectra: dict[int | None, list[np.ndarray]] | None = None
    ints: IntegrationTimes | None = None
    segments: np.ndarray | None = None
    spectrum_cards: dict = field(default_factory=dict)
    counts: bool = False
    whtlt: QTable | None = None


def _int_times(product: FitsProduct, nints: int) -> tuple[np.ndarray, np.ndarray, str | None]:
    """Mid-integration MJD (UTC) and BJD_TDB of the member's integrations
    (:func:`shared.datamodels.spectra.integration_times`)."""
    found = integration_times(product, nints)
    return found.times["MJD-AVG"], found.times["TDB-MID"], found.note


def _photometry(m: _Member, p: TsoPhotometryParams, a: StepArgs) -> QTable:
    kw = m.product
    ra, dec = card_value(kw, "TARG_RA"), card_value(kw, "TARG_DEC")
    if ra is None or dec is None:
        raise InputError(f"{m.name}: no TARG_RA/TARG_DEC to place the aperture")
    x0, y0 = (float(v) for v in m.wcs.world_to_pixel_values(float(ra), float(dec)))
    bunit = str(card_value(kw, "BUNIT", ""))
    scale, unit = 1.0, bunit or "DN/s"
    if bunit == "MJy/sr" and card_value(kw, "PIXAR_SR") is not None:
        scale, unit = 1e6 * float(card_value(kw, "PIXAR_SR")), "Jy"
    elif bunit != "MJy/sr":
        a.note(f"tso_photometry: {m.name} is in {bunit or 'unknown units'}; photometry left in those units")
    # The public rule: behind the WLP8 weak lens the star fills SUB64P; sum it all.
    whole = str(card_value(kw, "PUPIL", "")).upper() == "WLP8" and str(card_value(kw, "SUBARRAY", "")).upper() == "SUB64P"
    p = p.for_pupil(card_value(kw, "PUPIL"))
    result = tso_photometry(m.sci * scale, m.err * scale, x0, y0, p, whole_array=whole)
    if result.n_filled:
        a.note(f"tso_photometry: {m.name}: {result.n_filled} flagged pixels filled with their median over time")
    mjd, bjd, why = _int_times(kw, m.sci.shape[0])
    if why:
        a.note(f"tso_photometry: {m.name}: {why}")
    a_ra, a_dec = m.wcs.pixel_to_world_values(result.aperture_x, result.aperture_y)
    meta = {k.lower(): card_value(kw, k) for k in ("INSTRUME", "DETECTOR", "SUBARRAY", "FILTER", "PUPIL", "TARGNAME")}
    meta["apertures"] = (
        "sum of all pixels of the subarray; no background subtraction" if whole else
        f"circular aperture r={p.radius} px; background: mean in an annulus "
        f"r={p.radius_inner}-{p.radius_outer} px")
    return phot_table(result, mjd=mjd, bjd=bjd, ra=a_ra, dec=a_dec, unit=unit, meta=meta)


def _outliers_tso(s: Tso3State, a: StepArgs) -> Skip | None:
    for m in s.members:
        m.flag(flag_outliers_tso(m.sci, m.err, m.dq, a.params))
    return None


def _tso_photometry(s: Tso3State, a: StepArgs) -> Skip | None:
    exp_types = {str(card_value(m.product, "EXP_TYPE", "")) for m in s.members}
    if not exp_types <= TSO_IMAGING_EXP_TYPES:
        return Skip(f"not an imaging time series ({', '.join(sorted(exp_types))})")
    for m in s.members:
        m.wcs = member_wcs(m.product)
    phot = vstack([_photometry(m, a.params, a) for m in s.members], metadata_conflicts="silent")
    s.phot = phot[np.argsort(np.asarray(phot["MJD"]), kind="stable")]
    return None


class PixelReplaceParams(BaseModel):
    """Parameters of tso3's pixel_replace."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    window: int = Field(25, ge=1, description="Integrations in the median a flagged pixel is replaced by.")


def _pixel_replace(s: Tso3State, a: StepArgs) -> Skip | None:
    estimated = np.uint32(PIXEL["FLUX_ESTIMATED"])
    dnu = np.uint32(PIXEL["DO_NOT_USE"])
    total = 0
    for m in s.members:
        unusable = ~np.isfinite(m.sci) | ((m.dq & dnu) != 0)
        m.sci, replaced = replace_flagged(m.sci, unusable, a.params.window)
        if not replaced.any():
            continue
        m.variances = {k: replace_flagged(v, unusable, a.params.window)[0] for k, v in m.variances.items()}
        m.err = np.where(replaced, np.sqrt(sum(m.variances.values())), m.err).astype(np.float32)
        m.dq = np.where(replaced, (m.dq & ~dnu) | estimated, m.dq).astype(m.dq.dtype)
        total += int(replaced.sum())
    a.note(f"pixel_replace: {total} flagged pixel(s) replaced by their median over {a.params.window} integrations "
           "(DQ FLUX_ESTIMATED)")
    return None


def _member_trace(m: _Member, refs: Mapping[str, Reference]) -> tuple[SlitTrace, float]:
    """The member's trace from the SPECWCS table (about the slitless reference point without
    a slit; the slit's own table, FXD_SLIT, through one), cut to its filter and grating's
    range as spec2 cut it (NIRSpec, with WAVELENGTHRANGE), and its source's place along the
    frame's rows from it (SRCXPOS/SRCYPOS as spec2 recorded them)."""
    kw = m.product.keywords
    srcpos = card_value(m.product, "SRCXPOS"), card_value(m.product, "SRCYPOS")
    if srcpos[0] is None or srcpos[1] is None:
        raise InputError(f"{m.name} does not say where its source is (SRCXPOS, SRCYPOS): spec2's assign_wcs "
                         "writes them")
    try:
        scale = keyword_pixel_scale(kw)
    except KeyError:
        raise InputError(f"{m.name}: no CDELT1 and no known DETECTOR for the pixel scale") from None
    slitless = str(kw.get("EXP_TYPE") or "").upper() in SLITLESS_EXP_TYPES
    ref = refs["specwcs"]
    if str(kw.get("EXP_TYPE") or "").upper() in GRISM_TSO_EXP_TYPES:
        # NIRCam's grism: the dispersion model about the source's undispersed image, the
        # window pixel spec2 recorded (SRCXPOS, SRCYPOS); the trace runs through it
        try:
            trace = grism_trace(ref.tree, float(srcpos[0]), float(srcpos[1]), xstart=int(kw.get("SUBSTRT1", 1)),
                                ystart=int(kw.get("SUBSTRT2", 1)), nx=m.sci.shape[2], ny=m.sci.shape[1])
        except (TypeError, ValueError) as exc:
            raise ReferenceFileError(f"SPECWCS reference {ref.filename}: {exc}") from exc
        if trace.rows.size == 0:
            raise InputError(f"{m.name}: the spectrum does not fall on this readout window")
        return trace, 0.0
    try:
        table, cards = slit_table(ref.tables, ref.table_headers, ref.header, None if slitless else kw.get("FXD_SLIT"))
        dispaxis = int(cards.get("DISPAXIS", 2))
        trace = slit_trace(table, *reference_point(cards, slitless=slitless), xstart=int(kw.get("SUBSTRT1", 1)),
                           ystart=int(kw.get("SUBSTRT2", 1)), ny=m.sci.shape[1 if dispaxis == 2 else 2],
                           dispaxis=dispaxis)
        along = recorded_source_along(trace, (float(srcpos[0]), float(srcpos[1])), cards, scale)
    except (KeyError, TypeError, ValueError) as exc:
        raise ReferenceFileError(f"SPECWCS reference {ref.filename}: {exc}") from exc
    found = exposure_range(refs.get("wavelengthrange"), kw, m.name)
    if found is not None:
        trace = bound_trace(trace, found[1], found[2])
    if trace.rows.size == 0:
        raise InputError(f"{m.name}: the spectrum does not fall on this readout window")
    return trace, along


def _member_orders(m: _Member, refs: Mapping[str, Reference]) -> dict[int, SlitTrace]:
    """A SOSS member's spectral orders on its window, from the SPECTRACE reference."""
    kw, ref = m.product.keywords, refs["spectrace"]
    try:
        orders = order_traces(ref.arrays.get("ORDER", []), ref.header, xstart=int(kw.get("SUBSTRT1", 1)),
                              ystart=int(kw.get("SUBSTRT2", 1)), nx=m.sci.shape[2], ny=m.sci.shape[1])
    except (TypeError, ValueError) as exc:
        raise ReferenceFileError(f"SPECTRACE reference {ref.filename}: {exc}") from exc
    if not orders:
        raise InputError(f"{m.name}: no spectral order falls on this readout window")
    return orders


def _extract_1d_tso(s: Tso3State, a: StepArgs) -> Skip | None:
    spectra: dict[int | None, list[np.ndarray]] = {}
    numbers, segments, times = [], [], []
    exp_type = str(card_value(s.members[0].product, "EXP_TYPE", "")).upper()
    soss = exp_type in SOSS_EXP_TYPES
    described = []
    for m in s.members:
        bunit, pixar = str(card_value(m.product, "BUNIT", "")), card_value(m.product, "PIXAR_SR")
        if soss and bunit != "DN/s":
            raise InputError(f"{m.name} is in {bunit or 'unknown units'}: SOSS spectra are extracted from _calints "
                             "in DN/s and flux-calibrated after")
        if not soss and (bunit not in ("MJy/sr", "MJy") or pixar is None):
            raise InputError(f"{m.name} is not flux-calibrated (BUNIT {bunit or 'none'}, PIXAR_SR "
                             f"{pixar}): tso3 extracts spectra from calibrated _calints")
        if soss:
            traces = {n: (t, 0.0, order_params(a.params, n)) for n, t in _member_orders(m, a.refs).items()}
        else:
            trace, along = _member_trace(m, a.refs)
            traces = {None: (trace, along, a.params.for_mode(exp_type))}
        for order, (trace, along, params) in traces.items():
            d = trace.dispaxis  # the kernels see the spectrum dispersed along rows
            sci, dq = in_frame(m.sci, d), in_frame(m.dq, d)
            variances = {k.removeprefix("VAR_"): in_frame(v, d) for k, v in m.variances.items()}
            spectra.setdefault(order, []).extend(
                boxcar_extract(sci[i], dq[i], {k: v[i] for k, v in variances.items()}, trace.x + along, trace.rows,
                               trace.wavelength, float("nan") if soss else float(pixar), params, unit=bunit)
                for i in range(m.sci.shape[0]))
            if m is s.members[0]:
                described.append(("" if order is None else f"order {order}: ") + f"aperture {params.width:g} px" + (
                    f", background {', '.join(f'{lo:+g}..{hi:+g}' for lo, hi in params.background)} px"
                    if params.background else ""))
        ints = integration_times(m.product, m.sci.shape[0])
        if ints.note:
            a.note(f"extract_1d: {m.name}: {ints.note}")
        numbers.append(ints.numbers)
        times.append(ints.times)
        segments.append(np.full(m.sci.shape[0], int(card_value(m.product, "EXSEGNUM", 0) or 0)))
    if {len(v) for v in spectra.values()} != {sum(n.size for n in numbers)}:
        raise InputError("the members do not all hold the same spectral orders")
    number = np.concatenate(numbers)
    order = np.argsort(number, kind="stable")
    s.spectra = {n: [v[i] for i in order] for n, v in spectra.items()}
    s.counts = soss
    s.ints = IntegrationTimes(number[order], {c: np.concatenate([t[c] for t in times])[order] for c in times[0]})
    s.segments = np.concatenate(segments)[order]
    first = s.members[0].product
    s.spectrum_cards = {"SLTNAME": str(card_value(first, "SLTNAME") or card_value(first, "EXP_TYPE", "")),
                        "SRCTYPE": card_value(first, "SRCTYPE"),
                        "SRCXPOS": card_value(first, "SRCXPOS"), "SRCYPOS": card_value(first, "SRCYPOS")}
    lengths = ", ".join(str(len(v[0])) for v in s.spectra.values())
    a.note(f"extract_1d: {len(number)} integrations of {lengths} spectral elements"
           + (f" (orders {', '.join(str(n) for n in s.spectra)}, in DN/s)" if soss else "")
           + f" from {len(s.members)} member(s), {'; '.join(described)}")
    return None


def _photom_tso(s: Tso3State, a: StepArgs) -> Skip | None:
    if not s.spectra:
        return Skip("no spectra were extracted", SkipKind.NO_INPUT)
    ph = a.refs["photom"]
    try:
        calibrated, note = calibrate_orders(s.spectra, ph.tables.get("PHOTOM"), ph.header, s.members[0].product.keywords)
    except ValueError as exc:
        raise ReferenceFileError(f"PHOTOM reference {ph.filename}: {exc}") from exc
    if calibrated is None:
        return Skip(f"PHOTOM reference {ph.filename} {note}", SkipKind.NO_REFERENCE)
    s.spectra, s.counts = calibrated, False
    a.note(f"photom: {note}")
    return None


def _white_light(s: Tso3State, a: StepArgs) -> Skip | None:
    if not s.spectra:
        return Skip("no spectra were extracted", SkipKind.NO_INPUT)
    if s.counts:
        return Skip("the spectra are not flux-calibrated (photom did not run)", SkipKind.NO_INPUT)
    fluxes, ranges = {}, []
    for order, series in s.spectra.items():  # the public step's columns: one per order when there are several
        wavelength = np.stack([t["WAVELENGTH"] for t in series])
        name = "whitelight_flux" if len(s.spectra) == 1 else f"whitelight_flux_order_{order}"
        fluxes[name] = white_light(wavelength, np.stack([t["FLUX"] for t in series]), a.params)
        ranges.append(("" if len(s.spectra) == 1 else f"order {order} ")
                      + f"{a.params.min_wavelength or float(np.nanmin(wavelength)):.3f}-"
                      + f"{a.params.max_wavelength or float(np.nanmax(wavelength)):.3f} um")
    first = s.members[0].product
    meta = {k: card_value(first, c) for k, c in (("instrument", "INSTRUME"), ("exp_type", "EXP_TYPE"),
                                                  ("subarray", "SUBARRAY"), ("filter", "FILTER"), ("pupil", "PUPIL"),
                                                  ("grating", "GRATING"), ("target_name", "TARGNAME"))}
    s.whtlt = whtlt_table(fluxes, s.ints.times["MJD-AVG"], s.ints.times["TDB-MID"], meta=meta)
    flux = next(iter(fluxes.values()))
    a.note(f"white_light: {int(np.isfinite(flux).sum())} of {flux.size} integrations summed over "
           + ", ".join(ranges))
    return None


TSO3: Pipeline[Tso3State] = Pipeline(
    name="tso3",
    title="calwebb_tso3",
    steps=(
        Step("outlier_detection", "S_OUTLIR", _outliers_tso, params=OutlierParams),
        Step("tso_photometry", "S_TSPHOT", _tso_photometry, params=TsoPhotometryParams),
        Step("pixel_replace", "S_PXREPL", _pixel_replace, params=PixelReplaceParams, exp_types=TSO_SPEC_EXP_TYPES),
        Step("extract_1d", "S_EXTR1D", _extract_1d_tso, reftypes=("specwcs",), optional_reftypes=("wavelengthrange",),
             params=ExtractParams, exp_types=TSO_SPEC_EXP_TYPES - SOSS_EXP_TYPES),
        # SOSS: each order's spectra extracted in DN/s, then flux-calibrated (the public order)
        Step("extract_1d", "S_EXTR1D", _extract_1d_tso, reftypes=("spectrace",), params=ExtractParams,
             exp_types=SOSS_EXP_TYPES),
        Step("photom", "S_PHOTOM", _photom_tso, reftypes=("photom",), exp_types=SOSS_EXP_TYPES),
        Step("white_light", "S_WHTLIT", _white_light, params=WhiteLightParams, exp_types=TSO_SPEC_EXP_TYPES),
    ),
)


@dataclass(frozen=True)
class Tso3Output(Recorded):
    """``crfints`` one product per member (none when each was handed on as it was made);
    ``phot`` (imaging), ``x1dints`` and ``whtlt`` (spectroscopy), each None when its step
    did not run; the record."""

    crfints: list[FitsProduct]
    phot: QTable | None
    record: RunRecord
    x1dints: FitsProduct | None = None
    whtlt: QTable | None = None

    def outputs(self, asn: Level3Association) -> list[Output]:
        """Everything worth archiving, named for the association, in order (2c first)."""
        out = [crfints_output(asn, i, product) for i, product in enumerate(self.crfints)]
        if self.phot is not None:
            out.append(Output(asn.product("phot", "ecsv"), "phot", self.phot))
        if self.x1dints is not None:
            out.append(Output(asn.product("x1dints"), "x1dints", self.x1dints))
        if self.whtlt is not None:
            out.append(Output(asn.product("whtlt", "ecsv"), "whtlt", self.whtlt))
        return out


def crfints_output(asn: Level3Association, i: int, product: FitsProduct) -> Output:
    """The ``_crfints`` of science member ``i``, named for the association."""
    member = asn.science[i]
    return Output(member_output_name(member, asn.asn_id, "crfints"), "crfints", product, INTERMEDIATE, member=member)


def _series_record(records: list[RunRecord]) -> RunRecord:
    """One record of the members' runs: the first's steps and references (the members of
    one series take the same steps; a difference is noted), every run's notes, the steps'
    seconds summed."""
    first = records[0]
    notes = [note for r in records for note in r.notes]
    differing = [i for i, r in enumerate(records) if r.statuses != first.statuses]
    if differing:
        notes.append(f"tso3: members {differing} ended their steps otherwise than the first "
                     f"({[records[i].statuses for i in differing]} against {first.statuses})")
    seconds: dict[str, float] = {}
    for r in records:
        for step, t in r.seconds.items():
            seconds[step] = seconds.get(step, 0.0) + t
    return RunRecord(first.pipeline, dict(first.results), first.reftypes, notes, seconds)


def _series(parts: list[Tso3State]) -> Tso3State:
    """The members' products as one series: the photometry, spectra and white light of
    every member in time (integration) order.

    Raises
    ------
    InputError
        Two members hold the same integration, or spectra of different lengths."""
    out = Tso3State([])
    phot = [s.phot for s in parts if s.phot is not None]
    if phot:
        table = vstack(phot, metadata_conflicts="silent")
        out.phot = table[np.argsort(np.asarray(table["MJD"]), kind="stable")]
    spectral = [s for s in parts if s.spectra]
    if spectral:
        number = np.concatenate([s.ints.numbers for s in spectral])
        if np.unique(number).size != number.size:
            raise InputError("two members hold the same integration: the association lists a segment twice, or "
                             "exposures of different series")
        orders = list(spectral[0].spectra)
        if any(list(s.spectra) != orders for s in spectral):
            raise InputError("the members' spectra are of different spectral orders: they are not one time series")
        if any(len({len(t) for s in spectral for t in s.spectra[n]}) > 1 for n in orders):
            raise InputError("the members' spectra have different lengths: they are not one time series "
                             "(different readout windows?)")
        order = np.argsort(number, kind="stable")
        out.spectra = {}
        for n in orders:
            spectra = [t for s in spectral for t in s.spectra[n]]
            out.spectra[n] = [spectra[i] for i in order]
        out.ints = IntegrationTimes(number[order], {c: np.concatenate([s.ints.times[c] for s in spectral])[order]
                                                    for c in spectral[0].ints.times})
        out.segments = np.concatenate([s.segments for s in spectral])[order]
        out.spectrum_cards = spectral[0].spectrum_cards
        out.counts = spectral[0].counts
    light = [s.whtlt for s in parts if s.whtlt is not None]
    if light:
        table = vstack(light, metadata_conflicts="silent")
        out.whtlt = table[np.argsort(np.asarray(table["MJD_UTC"]), kind="stable")]
    return out


def run_tso3(
    members: list[FitsProduct], asn: dict | None = None, params: PipelineParams | None = None, *,
    software_version: str, created: str | None = None, context: str | None = None, asn_table: str | None = None,
    refs: Mapping[str, Reference | None] | None = None,
    step_hook: Callable[[str], AbstractContextManager] | None = None,
    on_crfints: Callable[[int, FitsProduct], None] | None = None,
    release_inputs: bool = False,
    load: Callable[[int], FitsProduct] | None = None,
) -> Tso3Output:
    """calwebb_tso3: ``_calints`` members (SCI/ERR/DQ cubes, INT_TIMES) in, their
    ``_crfints`` out; of an imaging time series (with a WCS and TARG_RA/TARG_DEC) the
    ``_phot`` table, of a slitless spectroscopic one (with the SPECWCS reference in
    ``refs``) the ``_x1dints`` of every integration and the ``_whtlt`` light curve.

    Every step of tso3 works on one member at a time (outlier detection over its own
    integrations, photometry and spectra per integration, white light per integration), so
    the members go through the steps one after the other and only what they make is
    combined, in time order (:func:`_series`): one member's arrays and their copies are held
    at a time. With ``release_inputs`` the caller hands its list ``members`` over, and each
    input is let go once taken; with ``load``, ``members`` are the members' metadata
    (``read_product(..., arrays=False)``) and ``load(i)`` gives member i whole when it is
    taken, so no more than one member's arrays are ever held; ``on_crfints(i, product)``
    gets member i's ``_crfints`` as soon as it is made (the result then holds none).

    InputError for unusable members (the message names them)."""
    p = params or TSO3.params()
    if not members:
        raise InputError("tso3 needs at least one member")
    keywords, _ = level3_keywords(members)
    found = {t: r for t, r in (refs or {}).items() if r is not None}
    prov = provenance_cards(software_version=software_version, created=created, context=context,
                            asn_table=asn_table, asn_pool=(asn or {}).get("asn_pool"))
    records, crfints, parts = [], [], []
    for i in range(len(members)):
        state = Tso3State([_member(members[i] if load is None else load(i), 3, need_wcs=False)])
        if release_inputs and load is None:
            members[i] = _without_step_arrays(members[i])
        member = state.members[0]
        records.append(TSO3.run(state, member.product.keywords, found, p, label=f"{asn_table or 'tso3'} {member.name}",
                                step_hook=step_hook))
        # as spec2 wrote the member: a CubeModel, or a SlitModel through a slit (NIRSpec's bright objects)
        crf = _member_product(member, "SlitModel" if member.product.model_type == "SlitModel" else "CubeModel",
                              {**prov, **records[-1].status_cards()})
        if on_crfints is None:
            crfints.append(crf)
        else:
            on_crfints(i, crf)
        state.members = []  # its arrays go now; what it made stays
        parts.append(state)
        del member, crf  # nor do these names keep them while the next member is read
    record = _series_record(records)
    series = _series(parts)
    x1dints = None
    if series.spectra:
        header = {**keywords, **prov, **record.status_cards(), **record.reference_cards()}
        spectra = series.spectra[None] if list(series.spectra) == [None] else series.spectra
        x1dints = x1dints_product(spectra, series.ints, series.spectrum_cards, header, segment=series.segments,
                                  counts=series.counts)
    return Tso3Output(crfints, series.phot, record, x1dints, series.whtlt)


def calibrate(asn: Level3Association, members: Sequence[FitsProduct], *, params: PipelineParams | None = None,
              abs_refcat: tuple[np.ndarray, np.ndarray] | None = None, software_version: str,
              created: str | None, provider: ReferenceProvider | None = None,
              on_outputs: Callable[[list[Output]], None] | None = None,
              release_inputs: bool = False,
              load: Callable[[int], FitsProduct] | None = None
              ) -> Image3Output | Tso3Output | Spec3Output | Wfss3Output:
    """Run the association's pipeline (image3, tso3 or spec3: WFSS members' own,
    :mod:`services.stage3.wfss3`) on its science members, in order;
    ``abs_refcat`` (ra, dec degrees) is what image3 aligns to absolutely. The references of
    its steps (image3's catalog: APCORR, ABVEGAOFFSET) are chosen by ``provider`` for the
    first member, as the public pipeline asks CRDS with its first science member; None:
    no references. ``on_outputs`` gets image3's ``_crf`` outputs as soon as they are final,
    before the mosaic is made (they are also among the result's outputs), and tso3's
    ``_crfints`` one by one as the members are taken (those are not: they are let go); with
    ``release_inputs`` image3 and tso3 let go of the members' arrays as they go (``members``
    is a list the caller hands over, see :func:`run_image3` and :func:`run_tso3`); tso3
    takes ``members`` as their metadata and each whole from ``load`` when it needs it, when
    that is given."""
    common = dict(software_version=software_version, created=created, context=members_context(members),
                  asn_table=asn.filename)
    if asn.asn_type == "spec3" and is_wfss(members):  # wide-field slitless: every source of the field
        refs = {}
        if provider is not None and members:
            refs = load_references(provider, members[0].keywords, WFSS3.reftypes(members[0].keywords)).found
        return run_wfss3(members, asn.document, params, refs=refs, **common)
    if asn.asn_type == "spec3":
        refs = {}
        if provider is not None and members:
            refs = load_references(provider, members[0].keywords, SPEC3.reftypes(members[0].keywords)).found
        return run_spec3(members, asn.document, params, refs=refs, **common)
    if asn.asn_type == "image3":
        refs = {}
        if provider is not None and members:
            refs = load_references(provider, members[0].keywords, IMAGE3.reftypes(members[0].keywords)).found
        on_crf = None if on_outputs is None else (lambda crf: on_outputs(crf_outputs(asn, crf)))
        return run_image3(members, asn.document, params, abs_refcat=abs_refcat, refs=refs, on_crf=on_crf,
                          release_inputs=release_inputs, **common)
    refs = {}
    if provider is not None and members:
        refs = load_references(provider, members[0].keywords, TSO3.reftypes(members[0].keywords)).found
    on_crfints = None if on_outputs is None else (lambda i, crf: on_outputs([crfints_output(asn, i, crf)]))
    return run_tso3(members, asn.document, params, refs=refs, on_crfints=on_crfints, release_inputs=release_inputs,
                    load=load, **common)


def members_context(members: Sequence[FitsProduct]) -> str | None:
    """The reference context the members were calibrated with (the first one named)."""
    return next((str(v) for m in members if (v := card_value(m, "CRDS_CTX")) not in (None, "N/A")), None)
