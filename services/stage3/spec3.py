"""calwebb_spec3 for a slit nodded along its length (MIRI LRS fixed slit,
``MIR_LRS-FIXEDSLIT``; NIRSpec fixed slits, ``NRS_FIXEDSLIT``; NIRSpec MOS slitlets,
``NRS_MSASPEC``): the nods' ``_cal`` (each already nod-subtracted by spec2) flagged
against each other (their ``_crf``) and combined into the Level-3 ``_s2d`` and ``_x1d`` of
the source.

A MOS exposure holds a slit per slitlet: as the public pipeline does, the members' slits
are gathered by source (SOURCEID) and each source's are combined on their own, the steps
running once per source (:func:`_each_source`) into one ``_s2d`` and ``_x1d`` per source,
named with the source's token (``s#########``; ``b`` a background slitlet, ``v`` a
virtual one: :func:`shared.naming.source_token`); each member's ``_crf`` holds all its
slits. A slitlet's trace is the SPECWCS's SHUTTER table at the slitlet's place on the MSA,
which its keywords give (:meth:`shared.spectra.msa.Slitlet.from_keywords`), and its
source's place along it is its shutter and SRCYPOS there: in the 3-shutter nod the source
moves a shutter between nods and the slitlet stays.

The steps see each member in its dispersion frame (:mod:`shared.spectra.trace`): a NIRSpec
member, dispersed along x and written as a MultiSlitModel of its one slit, is read from
that slit and transposed; its ``_crf`` and the ``_s2d`` are written the NIRSpec way again
(a MultiSlitModel, wavelength along x). Where the source is along the slit comes from
SRCXPOS/SRCYPOS as spec2 wrote them for the mode: the LRS's undispersed source pixel,
NIRSpec's place in the slit in units of its length.

No I/O: the members and loaded references in, products out. The steps find each
member's trace from SPECWCS and, for NIRSpec, cut it to the range of the filter and
grating in WAVELENGTHRANGE when the context has one, as spec2's assign_wcs did. Steps
(:data:`SPEC3`):

- outlier_detection (SPECWCS): each member rectified alone onto resample_spec's grid, the
  median per pixel put back onto each member's pixels along its rows and compared with
  them, as the public step does for slits
  (:func:`services.stage3.steps.outlier_detection.flag_outliers_slit`); members whose
  sources lie whole pixels apart along the slit (NIRSpec's 1" nods) are instead shifted
  onto each other by those pixels, unresampled (``flag_outliers_shifted``): outliers become
  DO_NOT_USE|OUTLIER and NaN; the members so flagged are the ``_crf``. With two nods the
  median is their mean; the other nod's negative trace lies beyond this member's slit on
  the grid, so the median there is the member's own and nothing is flagged for it.
- resample_spec (SPECWCS): each member's slit rectified onto whole pixels of slit
  coordinate centred on *its source* (where SRCXPOS/SRCYPOS, which spec2's assign_wcs
  found from the pointing, put it along the slit), so the nods line up on the source; the
  members averaged per pixel with inverse read-noise-variance weights (the public
  pipeline's ``ivm``), variances ``sum(w^2 var) / (sum w)^2``, DQ the OR of the members
  used; a pixel no member covers is NaN and DO_NOT_USE. The nod-subtracted members hold
  the other nod as a negative trace, which the combination keeps 2 x the nod throw either
  side of the source.
  The ``_s2d``'s gwcs (``meta.wcs``) is the first member's on that grid
  (:func:`shared.spectra.wcs.rectified_gwcs`): its columns are sky offsets from the source.
- extract_1d: each member's spectrum extracted from its ``_cal`` at its source (the
  stage-2 kernel, :func:`shared.spectra.boxcar_extract`: independent pixels, honest errors);
- combine_1d: those spectra averaged per element with inverse-variance weights
  (:mod:`services.stage3.steps.combine_1d`): the ``_x1d``.

Flagged pixels (outliers and any DO_NOT_USE) are left out of what follows.

The MIRI MRS (``MIR_MRS``) has steps of its own, declared here beside these
(:mod:`services.stage3.ifu3`): its dithers' ``_cal`` combined into a cube and a spectrum
per channel and band.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from services.stage3 import ifu3
from services.stage3.level3 import level3_keywords
from services.stage3.products import crf_outputs
from services.stage3.steps.combine_1d import combine_spectra
from services.stage3.steps.outlier_detection import (
    OutlierParams,
    apply_outliers,
    flag_outliers_shifted,
    flag_outliers_slit,
)
from shared.datamodels import FitsProduct, card_value, set_cards, single_slit
from shared.datamodels.dqflags import PIXEL
from shared.datamodels.spectra import x1d_product
from shared.errors import InputError
from shared.instruments import keyword_pixel_scale
from shared.naming import filled_product_name, source_token
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
    for_each_part,
    provenance_cards,
)
from shared.refdata import Reference, ReferenceFileError
from shared.spectra import (
    SLIT_EXP_TYPES,
    ExtractParams,
    Rectified,
    SlitTrace,
    boxcar_extract,
    in_frame,
    recorded_source_along,
    rectify_slit,
    reference_point,
    slit_length,
    slit_table,
    slit_trace,
)
from shared.spectra.ifu_cube import CubeBuildParams
from shared.spectra.msa import Slitlet, mos_specwcs
from shared.spectra.wavelengthrange import bound_trace, exposure_range
from shared.spectra.wcs import rectified_gwcs

__all__ = ["SPEC3", "SourceSpectra", "Spec3Output", "run_spec3"]

_IFU = ifu3.IFU3_EXP_TYPES
SPEC3_EXP_TYPES = SLIT_EXP_TYPES | _IFU
MOS_EXP_TYPE = "NRS_MSASPEC"
# the slit keywords a per-source product carries over from its first member (NIRSpec's)
_SOURCE_CARDS = ("SLTNAME", "SOURCEID", "SRCTYPE", "SRCXPOS", "SRCYPOS")
_MOS_SOURCE_CARDS = (*_SOURCE_CARDS, "SLITID", "SRCNAME", "SRCRA", "SRCDEC", "STLARITY", "SHUTSTA", "MSAQUAD",
                     "SHUTTRID")

_DO_NOT_USE = np.uint32(PIXEL["DO_NOT_USE"])
_VARIANCES = ("VAR_POISSON", "VAR_RNOISE", "VAR_FLAT")
_WHOLE = 0.05  # pixels: sources this close to whole pixels apart are aligned without resampling


@dataclass
class SlitExposure:
    """One member: its calibrated arrays (MJy/sr, or MJy per pixel for a NIRSpec point
    source: ``unit``) in its dispersion frame, keywords (a NIRSpec member's slit's own
    over its product's), and, once known, the slit's trace on it and the source's place
    along the slit (pixels from the trace)."""

    name: str
    sci: np.ndarray
    err: np.ndarray
    dq: np.ndarray
    variances: dict[str, np.ndarray]
    keywords: dict
    source_pixel: tuple[float, float]  # SRCXPOS, SRCYPOS (their meaning is the mode's: see the module)
    dispaxis: int = 2
    unit: str = "MJy/sr"
    along: float = 0.0
    trace: SlitTrace | None = None
    gwcs: Any = None  # its spectral gwcs (meta.wcs), when spec2 made one
    origin: tuple[int, int | None] = (0, None)  # the member it is of and its slit there (None: the member itself)


@dataclass
class Spec3State:
    """The members of one source as the steps pass them along, and what the steps make;
    for a MOS association, a state per source (``sources``, each named by its ``source``
    token) which the steps run on in turn."""

    members: list[SlitExposure]
    half_length: float = 0.0  # half the slit's length, pixels
    s2d: Rectified | None = None
    spectra: list[np.ndarray] = field(default_factory=list)
    x1d: np.ndarray | None = None
    source: str = ""
    sources: list[Spec3State] = field(default_factory=list)
    ifu: ifu3.Ifu3State | None = None  # the MIRI MRS's members and products (:mod:`.ifu3`)


_each_source = for_each_part(lambda s: s.sources, lambda s: f"source {s.source}")


def _pixel_scale(kw: Mapping) -> float:
    try:
        return keyword_pixel_scale(kw)
    except KeyError as exc:
        raise InputError(f"{kw.get('FILENAME')}: no CDELT1 and no known DETECTOR for the pixel scale") from exc


def _slits_of(product: FitsProduct) -> list[tuple[dict[str, np.ndarray], dict, dict, int | None]]:
    """(arrays, keywords, tree paths, slit index) of each slit of a member: its own (index
    None), or those of each slit of a MultiSlitModel (NIRSpec's: a fixed slit's one, a MOS
    exposure's slitlets), their keywords over the product's."""
    if not product.slits:
        return [(product.images, dict(product.keywords), product.extra_meta, None)]
    mos = str(product.keywords.get("EXP_TYPE") or "").upper() == MOS_EXP_TYPE
    if len(product.slits) != 1 and not mos:
        raise InputError(f"{product.keywords.get('FILENAME') or 'a member'} holds {len(product.slits)} slits; "
                         "spec3 combines the nods of one fixed slit")
    return [(slit.images, {**product.keywords, **slit.keywords}, slit.extra_meta, j)
            for j, slit in enumerate(product.slits)]


def _exposures(product: FitsProduct, index: int) -> list[SlitExposure]:
    """The member's slits (one but for a MOS exposure) as the steps see them."""
    return [_exposure(product, images, kw, meta, (index, j)) for images, kw, meta, j in _slits_of(product)]


def _exposure(product: FitsProduct, images: Mapping[str, np.ndarray], kw: dict, meta: Mapping,
              origin: tuple[int, int | None]) -> SlitExposure:
    name = str(kw.get("FILENAME") or "a member")
    if origin[1] is not None and kw.get("SLTNAME") is not None:
        name = f"{name} slit {kw['SLTNAME']}"
    missing = [n for n in ("SCI", "DQ", "VAR_POISSON", "VAR_RNOISE") if n not in images]
    if missing:
        raise InputError(f"{name} lacks the {', '.join(missing)} array(s) of a calibrated slit exposure")
    unit = str(kw.get("BUNIT") or card_value(product, "BUNIT") or "")
    if unit not in ("MJy/sr", "MJy") or kw.get("PIXAR_SR") is None:
        raise InputError(f"{name} is not flux-calibrated (BUNIT MJy/sr or MJy, and PIXAR_SR): spec2's photom did "
                         "not run")
    if kw.get("SRCXPOS") is None or kw.get("SRCYPOS") is None:
        raise InputError(f"{name} does not say where its source is in the slit (SRCXPOS, SRCYPOS): spec2's "
                         "assign_wcs did not run")
    dispaxis = int(kw.get("DISPAXIS") or 2)
    if dispaxis not in (1, 2):
        raise InputError(f"{name}: DISPAXIS {dispaxis} is neither 1 nor 2")
    sci = np.asarray(images["SCI"], np.float64)
    if sci.ndim != 2:
        raise InputError(f"{name}: SCI of shape {sci.shape} is not one image")
    variances = {k: in_frame(np.asarray(images[k], np.float64), dispaxis) for k in _VARIANCES if k in images}
    err = (in_frame(np.asarray(images["ERR"], np.float64), dispaxis) if "ERR" in images
           else np.sqrt(sum(variances.values())))
    return SlitExposure(name, in_frame(sci, dispaxis), err, in_frame(np.asarray(images["DQ"], np.uint32), dispaxis),
                        variances, kw, (float(kw["SRCXPOS"]), float(kw["SRCYPOS"])), dispaxis, unit,
                        gwcs=meta.get("meta.wcs"), origin=origin)


def _mos_traces(s: Spec3State, ref: Reference) -> None:
    """A MOS source's slitlet on every member: its trace from the SPECWCS SHUTTER table at
    the slitlet's reference point, the source's place along it from its shutter."""
    try:
        geometry, table = mos_specwcs(ref.header, ref.tables)
    except ValueError as exc:
        raise ReferenceFileError(f"SPECWCS reference {ref.filename}: {exc}") from exc
    shutters = set()
    for m in s.members:
        kw = m.keywords
        try:
            slitlet = Slitlet.from_keywords(kw)
            m.trace = geometry.slitlet_trace(table, slitlet, xstart=int(kw.get("SLTSTRT1") or 1),
                                             ystart=int(kw.get("SLTSTRT2") or 1), ncolumns=m.sci.shape[0])
        except ValueError as exc:
            raise InputError(f"{m.name}: {exc}") from exc
        m.along = geometry.source_offset(slitlet)[0]
        shutters.add(len(slitlet.columns))
    if len(shutters) > 1:
        raise InputError(f"source {s.source}: its slitlets differ in length ({sorted(shutters)} shutters) between "
                         "the members: they are not nods of one MSA configuration")
    s.half_length = geometry.cutout_half_length(shutters.pop())


def _traces(s: Spec3State, a: StepArgs) -> None:
    """The slit's trace on every member (once), cut to the wavelength range of the
    members' filter and grating as spec2 cut it (NIRSpec, with WAVELENGTHRANGE), and its
    half length in pixels."""
    if all(m.trace is not None for m in s.members):
        return
    ref = a.refs["specwcs"]
    if str(s.members[0].keywords.get("EXP_TYPE") or "").upper() == MOS_EXP_TYPE:
        _mos_traces(s, ref)
    else:
        _slit_traces(s, ref)
    first = s.members[0]
    found = exposure_range(a.refs.get("wavelengthrange"), first.keywords, first.name)
    if found is not None:
        for m in s.members:
            m.trace = bound_trace(m.trace, found[1], found[2])
    _same_rows(s)


def _slit_traces(s: Spec3State, ref: Reference) -> None:
    """A fixed slit's trace on every member from its SPECWCS table, the source's place
    along it from SRCXPOS/SRCYPOS."""
    try:
        table, cards = slit_table(ref.tables, ref.table_headers, ref.header, s.members[0].keywords.get("FXD_SLIT"))
        x_ref, y_ref = reference_point(cards)
        length = slit_length(cards)
        for m in s.members:
            kw = m.keywords
            m.trace = slit_trace(table, x_ref, y_ref, xstart=int(kw.get("SUBSTRT1", 1)),
                                 ystart=int(kw.get("SUBSTRT2", 1)), ny=m.sci.shape[0], dispaxis=m.dispaxis)
            m.along = recorded_source_along(m.trace, m.source_pixel, cards, _pixel_scale(kw))
    except (KeyError, TypeError, ValueError) as exc:
        raise ReferenceFileError(f"SPECWCS reference {ref.filename}: {exc}") from exc
    s.half_length = 0.5 * length / _pixel_scale(s.members[0].keywords)


def _same_rows(s: Spec3State) -> None:
    if len({tuple(m.trace.rows) for m in s.members}) > 1:
        raise InputError("the members' spectra fall on different rows: they are not nods of one slit exposure "
                         "(different readout windows or cutouts?)")


def _singles(s: Spec3State) -> list[Rectified]:
    """Each member rectified alone onto the grid centred on its source, wide enough for
    every member's slit."""
    reach = s.half_length + max(abs(m.along) for m in s.members)
    return [rectify_slit(m.sci, m.dq, m.variances, m.trace.x + m.along, m.trace.rows, m.trace.wavelength, reach)
            for m in s.members]


@_each_source
def _outlier_detection(s: Spec3State, a: StepArgs) -> Skip | None:
    if len(s.members) < 2:
        return Skip("one exposure: nothing to compare it with", SkipKind.NOT_APPLICABLE)
    _traces(s, a)
    apart = np.array([m.along - s.members[0].along for m in s.members])
    if np.all(np.abs(apart - np.round(apart)) < _WHOLE):  # sources whole pixels apart: no resampling
        masks = flag_outliers_shifted([m.sci for m in s.members], [m.err for m in s.members],
                                      [m.dq for m in s.members], [int(k) for k in np.round(apart)], a.params)
        how = "aligned by whole pixels"
    else:
        singles = _singles(s)
        masks = flag_outliers_slit([m.sci for m in s.members], [m.err for m in s.members], [m.dq for m in s.members],
                                   [r.sci for r in singles], singles[0].rows, singles[0].offsets,
                                   [m.trace.x + m.along for m in s.members], a.params)
        how = "each rectified on its source"
    for m, mask in zip(s.members, masks, strict=True):
        m.dq, (m.sci, m.err, *variances) = apply_outliers(mask, m.dq, m.sci, m.err, *m.variances.values())
        m.variances = dict(zip(m.variances, variances, strict=True))
    a.note(f"outlier_detection: {', '.join(str(int(mask.sum())) for mask in masks)} pixel(s) flagged in the "
           f"{len(masks)} exposures ({how})")
    return None


@_each_source
def _resample_spec(s: Spec3State, a: StepArgs) -> Skip | None:
    _traces(s, a)
    rectified = _singles(s)
    s.s2d = _combine_rectified(rectified)
    covered = np.isfinite(s.s2d.sci)
    a.note(f"resample_spec: {len(rectified)} exposures on the source, {s.s2d.sci.shape[0]} x {s.s2d.sci.shape[1]} "
           f"pixels, {covered.mean():.0%} covered")
    return None


def _combine_rectified(parts: Sequence[Rectified]) -> Rectified:
    """Members' rectified slits (one grid) averaged with inverse VAR_RNOISE weights."""
    sci = np.stack([np.asarray(p.sci, np.float64) for p in parts])
    rn = np.stack([np.asarray(p.variances["VAR_RNOISE"], np.float64) for p in parts])
    use = np.isfinite(sci) & np.isfinite(rn) & (rn > 0) & ((np.stack([p.dq for p in parts]) & _DO_NOT_USE) == 0)
    w = np.where(use, 1.0 / np.where(use, rn, 1.0), 0.0)
    wsum = w.sum(axis=0)
    some = wsum > 0
    denom = np.where(some, wsum, 1.0)
    out_sci = np.where(some, (w * np.where(use, sci, 0.0)).sum(axis=0) / denom, np.nan)
    variances = {}
    for k in parts[0].variances:
        v = np.stack([np.asarray(p.variances[k], np.float64) for p in parts])
        variances[k] = np.where(some, (w**2 * np.where(use, v, 0.0)).sum(axis=0) / denom**2, np.nan).astype(np.float32)
    dq = np.zeros(out_sci.shape, np.uint32)
    for i, p in enumerate(parts):
        dq |= np.where(use[i], p.dq, 0).astype(np.uint32)
    dq[~some] |= _DO_NOT_USE
    err = np.sqrt(sum(v.astype(np.float64) for v in variances.values()))
    return Rectified(sci=out_sci.astype(np.float32), err=err.astype(np.float32), dq=dq, variances=variances,
                     wavelength=parts[0].wavelength, rows=parts[0].rows, offsets=parts[0].offsets)


@_each_source
def _extract_1d(s: Spec3State, a: StepArgs) -> Skip | None:
    _traces(s, a)
    s.spectra = []
    params = a.params.for_mode(str(s.members[0].keywords.get("EXP_TYPE") or ""))
    for m in s.members:
        variances = {k.removeprefix("VAR_"): v for k, v in m.variances.items()}
        s.spectra.append(boxcar_extract(m.sci, m.dq, variances, m.trace.x + m.along, m.trace.rows,
                                        m.trace.wavelength, float(m.keywords["PIXAR_SR"]), params, unit=m.unit))
    a.note(f"extract_1d: {len(s.spectra)} exposures, aperture {params.width:g} px at each one's source")
    return None


@_each_source
def _combine_1d(s: Spec3State, a: StepArgs) -> Skip | None:
    if not s.spectra:
        return Skip("no spectra were extracted (extract_1d did not run)")
    s.x1d = combine_spectra(s.spectra)
    a.note(f"combine_1d: {len(s.spectra)} spectra, {int(np.isfinite(s.x1d['FLUX']).sum())} elements")
    return None


SPEC3: Pipeline[Spec3State] = Pipeline(
    name="spec3",
    title="calwebb_spec3",
    steps=(
        Step("outlier_detection", "S_OUTLIR", _outlier_detection, reftypes=("specwcs",),
             optional_reftypes=("wavelengthrange",), params=OutlierParams,
             exp_types=SLIT_EXP_TYPES),
        Step("outlier_detection", "S_OUTLIR", ifu3.outlier_detection, params=OutlierParams, exp_types=_IFU),
        Step("resample_spec", "S_RESAMP", _resample_spec, reftypes=("specwcs",),
             optional_reftypes=("wavelengthrange",), exp_types=SLIT_EXP_TYPES),
        Step("cube_build", "S_IFUCUB", ifu3.cube_build, reftypes=("cubepar",), params=CubeBuildParams,
             exp_types=_IFU),
        Step("extract_1d", "S_EXTR1D", _extract_1d, reftypes=("specwcs",),
             optional_reftypes=("wavelengthrange",), params=ExtractParams,
             exp_types=SLIT_EXP_TYPES),
        Step("extract_1d", "S_EXTR1D", ifu3.extract_1d, params=ExtractParams, exp_types=_IFU),
        Step("combine_1d", "S_COMB1D", _combine_1d, exp_types=SLIT_EXP_TYPES),
    ),
)


@dataclass(frozen=True)
class SourceSpectra:
    """The combined ``s2d`` and ``x1d`` of one source (None when their steps did not run)
    and what fills the association's product name for it: the source's token and the
    slit's name (empty for a product named after its target)."""

    s2d: FitsProduct | None
    x1d: FitsProduct | None
    source: str = ""
    slit_name: str = ""


@dataclass(frozen=True)
class Spec3Output(Recorded):
    """The members' ``crf`` (empty when outlier detection did not run) and the Level-3
    spectra: of the one source, or of each source of a MOS association (in source order);
    an IFU's cubes and their spectra, per channel and band."""

    crf: list[FitsProduct]
    spectra: list[SourceSpectra]
    record: RunRecord
    cubes: list[ifu3.ChannelProducts] = field(default_factory=list)

    def outputs(self, asn) -> list[Output]:
        """The members' ``_crf`` and the Level-3 products, named for the association (a
        NIRSpec product's name with its source, and slit, filled in)."""
        out = crf_outputs(asn, self.crf) if self.crf else []  # no _crf when outlier detection did not run
        for one in self.spectra:
            for suffix, product in (("s2d", one.s2d), ("x1d", one.x1d)):
                if product is not None:
                    name = filled_product_name(asn.product(suffix), source=one.source, slit_name=one.slit_name)
                    out.append(Output(name, suffix, product))
        for one in self.cubes:  # <product>_ch1-short_s3d, as the public pipeline names a band's cube
            for suffix, product in (("s3d", one.s3d), ("x1d", one.x1d)):
                if product is not None:
                    out.append(Output(asn.product(f"{one.name}_{suffix}"), suffix, product))
        return out


def _flagged(m: SlitExposure) -> dict[str, np.ndarray]:
    """A member's slit as outlier detection left it, laid out as in its ``_cal``."""
    flagged = {"SCI": m.sci.astype(np.float32), "ERR": m.err.astype(np.float32), "DQ": m.dq,
               **{k: v.astype(np.float32) for k, v in m.variances.items()}}
    return {k: in_frame(v, m.dispaxis) for k, v in flagged.items()}


def _crf_product(product: FitsProduct, slits: Sequence[SlitExposure], cards: Mapping[str, Any]) -> FitsProduct:
    """A member as outlier detection left it (its ``_cal`` with the outliers of each of its
    ``slits`` flagged), laid out as its ``_cal`` is (a NIRSpec member's arrays in its
    slits, turned back)."""
    crf = product.detached()
    for m in slits:
        _, j = m.origin
        if j is None:
            crf.images = {**crf.images, **_flagged(m)}
        else:
            crf.slits[j].images = {**crf.slits[j].images, **_flagged(m)}
    set_cards(crf, cards)
    return crf


def _by_source(exposures: Sequence[SlitExposure]) -> list[Spec3State]:
    """The members' MOS slits gathered by source (SOURCEID), in source order, each named
    by its token."""
    groups: dict[int, list[SlitExposure]] = defaultdict(list)
    for m in exposures:
        if m.keywords.get("SOURCEID") is None:
            raise InputError(f"{m.name} does not say whose spectrum it holds (no SOURCEID): spec2's extract_2d did "
                             "not run")
        groups[int(m.keywords["SOURCEID"])].append(m)
    return [Spec3State(group, source=source_token(sid, str(group[0].keywords.get("SRCNAME") or "")))
            for sid, group in sorted(groups.items())]


def _source_spectra(s: Spec3State, header: Mapping[str, Any], other: Mapping, mos: bool) -> SourceSpectra:
    """One source's Level-3 ``_s2d`` and ``_x1d`` with the association's ``header``."""
    first = s.members[0]
    header = dict(header)
    for own in ("SRCXPOS", "SRCYPOS"):  # the members' own, on their grids
        header.pop(own, None)
    if first.dispaxis == 1:  # NIRSpec: the slit, its source and the source's place in it, the first member's
        header |= {k: first.keywords.get(k) for k in (_MOS_SOURCE_CARDS if mos else _SOURCE_CARDS)}
    elif s.s2d is not None:  # the source on the combined grid: its middle column, the first member's row
        header |= {"SRCXPOS": -float(s.s2d.offsets[0]), "SRCYPOS": first.source_pixel[1] - float(s.s2d.rows[0])}
    s2d = x1d = None
    if s.s2d is not None:
        r = s.s2d
        # the grid is centred on the source: its sky is the first member's there
        wcs = ({} if first.gwcs is None
               else {"meta.wcs": rectified_gwcs(first.gwcs, first.trace, r.rows, r.offsets, first.along)})
        images = {"SCI": r.sci, "DQ": r.dq, "ERR": r.err, "WAVELENGTH": r.wavelength, **r.variances}
        s2d = FitsProduct(model_type="SlitModel", images={k: in_frame(v, first.dispaxis) for k, v in images.items()},
                          hdu_keywords={**other, "ERR": {"BUNIT": first.unit}}, extra_meta=wcs)
        set_cards(s2d, {**header, "BUNIT": first.unit})
        if first.dispaxis == 1:  # NIRSpec: a product of slits
            s2d = single_slit(s2d)
    if s.x1d is not None:
        own = _MOS_SOURCE_CARDS if mos else ("SLTNAME", "SRCTYPE", "SRCXPOS", "SRCYPOS")
        x1d = x1d_product([(s.x1d, {k: header.get(k) for k in own})], header)
    if first.dispaxis != 1:  # the LRS: named after its target
        return SourceSpectra(s2d, x1d)
    if mos:
        return SourceSpectra(s2d, x1d, s.source)
    # a NIRSpec fixed slit: the primary slit's source (SOURCEID, 1) and its name
    return SourceSpectra(s2d, x1d, source_token(int(first.keywords.get("SOURCEID") or 1)),
                         str(first.keywords.get("SLTNAME") or "slit"))


def run_spec3(members: Sequence[FitsProduct], asn: dict | None = None, params: PipelineParams | None = None, *,
              refs: Mapping[str, Reference] | None = None, software_version: str, created: str | None = None,
              context: str | None = None, asn_table: str | None = None,
              step_hook: Callable[[str], AbstractContextManager] | None = None) -> Spec3Output:
    """calwebb_spec3 on a nodded slit's ``_cal`` members (spec2's: MJy/sr, SRCXPOS/SRCYPOS)
    with loaded references (SPECWCS); a MOS association's per source; an MRS's dithers
    (CUBEPAR, :mod:`.ifu3`). InputError for unusable members (the message names them)."""
    if not members:
        raise InputError("spec3 needs at least one member")
    exp_types = {str(m.keywords.get("EXP_TYPE") or "").upper() for m in members}
    if not exp_types <= SPEC3_EXP_TYPES:
        raise InputError(f"spec3 combines {', '.join(sorted(SPEC3_EXP_TYPES))} exposures, not "
                         f"{', '.join(sorted(exp_types - SPEC3_EXP_TYPES))}")
    if len(exp_types) > 1:
        raise InputError(f"the members are of different modes ({', '.join(sorted(exp_types))}): spec3 combines "
                         "the nods of one")
    if exp_types <= _IFU:
        return _run_ifu3(members, asn, params, refs=refs, software_version=software_version, created=created,
                         context=context, asn_table=asn_table, step_hook=step_hook)
    mos = exp_types == {MOS_EXP_TYPE}
    exposures = [e for i, product in enumerate(members) for e in _exposures(product, i)]
    state = Spec3State(exposures)
    if mos:
        state.sources = _by_source(exposures)
    for one in state.sources or [state]:
        if len({(m.unit, m.dispaxis) for m in one.members}) > 1:
            raise InputError("the members differ in BUNIT or DISPAXIS: "
                             + ", ".join(f"{m.name} {m.unit} {m.dispaxis}" for m in one.members))
    record = SPEC3.run(state, members[0].keywords, dict(refs or {}), params or SPEC3.params(),
                       label=asn_table or "spec3", step_hook=step_hook)
    keywords, other = level3_keywords(members)
    prov = provenance_cards(software_version=software_version, created=created, context=context,
                            asn_table=asn_table, asn_pool=(asn or {}).get("asn_pool"))
    header = {**keywords, **prov, **record.status_cards(), **record.reference_cards()}
    crf = []
    if record.statuses.get("outlier_detection") == "COMPLETE":  # the flagged members
        cards = {**prov, **record.status_cards("outlier_detection")}
        crf = [_crf_product(p, [m for m in exposures if m.origin[0] == i], cards) for i, p in enumerate(members)]
    spectra = [_source_spectra(one, header, other, mos) for one in state.sources or [state]]
    return Spec3Output(crf, spectra, record)


def _run_ifu3(members: Sequence[FitsProduct], asn: dict | None, params: PipelineParams | None, *,
              refs: Mapping[str, Reference] | None, software_version: str, created: str | None, context: str | None,
              asn_table: str | None, step_hook: Callable[[str], AbstractContextManager] | None) -> Spec3Output:
    """calwebb_spec3 on an IFU's ``_cal`` (:mod:`.ifu3`)."""
    state = Spec3State([], ifu=ifu3.Ifu3State(ifu3.ifu_members(members)))
    record = SPEC3.run(state, members[0].keywords, dict(refs or {}), params or SPEC3.params(),
                       label=asn_table or "spec3", step_hook=step_hook)
    prov = provenance_cards(software_version=software_version, created=created, context=context,
                            asn_table=asn_table, asn_pool=(asn or {}).get("asn_pool"))
    cards = {**prov, **record.status_cards(), **record.reference_cards()}
    flagged = record.statuses.get("outlier_detection") == "COMPLETE"
    crf, cubes = ifu3.ifu_products(state.ifu, members, cards, flagged,
                                   {**prov, **record.status_cards("outlier_detection")})
    return Spec3Output(crf, [], record, cubes)
