"""calwebb_spec3 for a slit nodded along its length (MIRI LRS fixed slit,
``MIR_LRS-FIXEDSLIT``; NIRSpec fixed slits, ``NRS_FIXEDSLIT``): the nods' ``_cal`` (each
already nod-subtracted by spec2) flagged against each other (their ``_crf``) and combined
into the Level-3 ``_s2d`` and ``_x1d`` of the source.

The steps see each member in its dispersion frame (:mod:`shared.spectra.trace`): a NIRSpec
member, dispersed along x and written as a MultiSlitModel of its one slit, is read from
that slit and transposed; its ``_crf`` and the ``_s2d`` are written the NIRSpec way again
(a MultiSlitModel, wavelength along x). Where the source is along the slit comes from
SRCXPOS/SRCYPOS as spec2 wrote them for the mode: the LRS's undispersed source pixel,
NIRSpec's place in the slit in units of its length.

No I/O: the members and loaded references in, products out. Steps (:data:`SPEC3`):

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
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

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
from shared.naming import filled_product_name
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
from shared.refdata import Reference, ReferenceFileError
from shared.spectra import (
    SLIT_EXP_TYPES,
    ExtractParams,
    Rectified,
    SlitTrace,
    boxcar_extract,
    in_frame,
    rectify_slit,
    slit_length,
    slit_table,
    slit_trace,
)
from shared.spectra.wcs import rectified_gwcs

__all__ = ["SPEC3", "Spec3Output", "run_spec3"]

# The slit modes spec3 combines: not yet the NIRSpec MOS (one product set per source).
SPEC3_EXP_TYPES = SLIT_EXP_TYPES - {"NRS_MSASPEC"}

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


@dataclass
class Spec3State:
    members: list[SlitExposure]
    half_length: float = 0.0  # half the slit's length, pixels
    s2d: Rectified | None = None
    spectra: list[np.ndarray] = field(default_factory=list)
    x1d: np.ndarray | None = None


def _pixel_scale(kw: Mapping) -> float:
    try:
        return keyword_pixel_scale(kw)
    except KeyError as exc:
        raise InputError(f"{kw.get('FILENAME')}: no CDELT1 and no known DETECTOR for the pixel scale") from exc


def _slit_of(product: FitsProduct) -> tuple[dict[str, np.ndarray], dict, dict]:
    """(arrays, keywords, tree paths) of a member: its own, or those of the one slit of a
    MultiSlitModel (NIRSpec's), its keywords over the product's."""
    if not product.slits:
        return product.images, dict(product.keywords), product.extra_meta
    if len(product.slits) != 1:
        raise InputError(f"{product.keywords.get('FILENAME') or 'a member'} holds {len(product.slits)} slits; "
                         "spec3 combines the nods of one fixed slit")
    slit = product.slits[0]
    return slit.images, {**product.keywords, **slit.keywords}, slit.extra_meta


def _exposure(product: FitsProduct) -> SlitExposure:
    images, kw, meta = _slit_of(product)
    name = str(kw.get("FILENAME") or "a member")
    missing = [n for n in ("SCI", "DQ", "VAR_POISSON", "VAR_RNOISE") if n not in images]
    if missing:
        raise InputError(f"{name} lacks the {', '.join(missing)} array(s) of a calibrated slit exposure")
    unit = str(card_value(product, "BUNIT") or "")
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
                        gwcs=meta.get("meta.wcs"))


def _traces(s: Spec3State, ref: Reference) -> None:
    """The slit's trace on every member (once) and its half length in pixels."""
    if all(m.trace is not None for m in s.members):
        return
    try:
        table, cards = slit_table(ref.tables, ref.table_headers, ref.header, s.members[0].keywords.get("FXD_SLIT"))
        x_ref, y_ref = float(cards["IMX"]), float(cards["IMY"])
        length = slit_length(cards)
        for m in s.members:
            kw = m.keywords
            m.trace = slit_trace(table, x_ref, y_ref, xstart=int(kw.get("SUBSTRT1", 1)),
                                 ystart=int(kw.get("SUBSTRT2", 1)), ny=m.sci.shape[0], dispaxis=m.dispaxis)
            if m.dispaxis == 1:  # NIRSpec: SRCYPOS is the place along the slit, in its lengths
                m.along = m.source_pixel[1] * length / _pixel_scale(kw)
            else:  # the LRS: from the undispersed source pixel and the trace at its row
                x_src, y_src = m.source_pixel
                m.along = x_src - float(np.interp(y_src, m.trace.rows, m.trace.x[m.trace.rows]))
    except (KeyError, TypeError, ValueError) as exc:
        raise ReferenceFileError(f"SPECWCS reference {ref.filename}: {exc}") from exc
    rows = {tuple(m.trace.rows) for m in s.members}
    if len(rows) > 1:
        raise InputError("the members' spectra fall on different rows: they are not nods of one slit exposure "
                         "(different readout windows?)")
    s.half_length = 0.5 * length / _pixel_scale(s.members[0].keywords)


def _singles(s: Spec3State) -> list[Rectified]:
    """Each member rectified alone onto the grid centred on its source, wide enough for
    every member's slit."""
    reach = s.half_length + max(abs(m.along) for m in s.members)
    return [rectify_slit(m.sci, m.dq, m.variances, m.trace.x + m.along, m.trace.rows, m.trace.wavelength, reach)
            for m in s.members]


def _outlier_detection(s: Spec3State, a: StepArgs) -> Skip | None:
    if len(s.members) < 2:
        return Skip("one exposure: nothing to compare it with", SkipKind.NOT_APPLICABLE)
    _traces(s, a.refs["specwcs"])
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


def _resample_spec(s: Spec3State, a: StepArgs) -> Skip | None:
    _traces(s, a.refs["specwcs"])
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


def _extract_1d(s: Spec3State, a: StepArgs) -> Skip | None:
    _traces(s, a.refs["specwcs"])
    s.spectra = []
    params = a.params.for_mode(str(s.members[0].keywords.get("EXP_TYPE") or ""))
    for m in s.members:
        variances = {k.removeprefix("VAR_"): v for k, v in m.variances.items()}
        s.spectra.append(boxcar_extract(m.sci, m.dq, variances, m.trace.x + m.along, m.trace.rows,
                                        m.trace.wavelength, float(m.keywords["PIXAR_SR"]), params, unit=m.unit))
    a.note(f"extract_1d: {len(s.spectra)} exposures, aperture {params.width:g} px at each one's source")
    return None


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
        Step("outlier_detection", "S_OUTLIR", _outlier_detection, reftypes=("specwcs",), params=OutlierParams,
             exp_types=SPEC3_EXP_TYPES),
        Step("resample_spec", "S_RESAMP", _resample_spec, reftypes=("specwcs",), exp_types=SPEC3_EXP_TYPES),
        Step("extract_1d", "S_EXTR1D", _extract_1d, reftypes=("specwcs",), params=ExtractParams,
             exp_types=SPEC3_EXP_TYPES),
        Step("combine_1d", "S_COMB1D", _combine_1d, exp_types=SPEC3_EXP_TYPES),
    ),
)


@dataclass(frozen=True)
class Spec3Output(Recorded):
    """The members' ``crf`` (empty when outlier detection did not run) and the combined
    ``s2d`` and ``x1d`` (None when their steps did not run)."""

    crf: list[FitsProduct]
    s2d: FitsProduct | None
    x1d: FitsProduct | None
    record: RunRecord
    source: tuple[int, str] | None = None  # NIRSpec: the source id and the slit, for the names

    def outputs(self, asn) -> list[Output]:
        """The members' ``_crf`` and the Level-3 products, named for the association (a
        NIRSpec product's name with its source and slit filled in)."""
        def named(suffix: str) -> str:
            name = asn.product(suffix)
            if self.source is None:
                return name
            return filled_product_name(name, source_id=self.source[0], slit_name=self.source[1])

        return crf_outputs(asn, self.crf) + [
            Output(named(suffix), suffix, product) for suffix, product in (("s2d", self.s2d), ("x1d", self.x1d))
            if product is not None]


def _crf_product(product: FitsProduct, m: SlitExposure, cards: Mapping[str, Any]) -> FitsProduct:
    """A member as outlier detection left it (its ``_cal`` with the outliers flagged), laid
    out as its ``_cal`` is (a NIRSpec member's arrays in its slit, turned back)."""
    flagged = {"SCI": m.sci.astype(np.float32), "ERR": m.err.astype(np.float32), "DQ": m.dq,
               **{k: v.astype(np.float32) for k, v in m.variances.items()}}
    flagged = {k: in_frame(v, m.dispaxis) for k, v in flagged.items()}
    crf = product.detached()
    if crf.slits:
        crf.slits[0].images = {**crf.slits[0].images, **flagged}
    else:
        crf.images = {**crf.images, **flagged}
    set_cards(crf, cards)
    return crf


def run_spec3(members: Sequence[FitsProduct], asn: dict | None = None, params: PipelineParams | None = None, *,
              refs: Mapping[str, Reference] | None = None, software_version: str, created: str | None = None,
              context: str | None = None, asn_table: str | None = None,
              step_hook: Callable[[str], AbstractContextManager] | None = None) -> Spec3Output:
    """calwebb_spec3 on a nodded slit's ``_cal`` members (spec2's: MJy/sr, SRCXPOS/SRCYPOS) with
    loaded references (SPECWCS). InputError for unusable members (the message names them)."""
    if not members:
        raise InputError("spec3 needs at least one member")
    exp_types = {str(m.keywords.get("EXP_TYPE") or "").upper() for m in members}
    if not exp_types <= SPEC3_EXP_TYPES:
        raise InputError(f"spec3 combines {', '.join(sorted(SPEC3_EXP_TYPES))} exposures, not "
                         f"{', '.join(sorted(exp_types - SPEC3_EXP_TYPES))}")
    state = Spec3State([_exposure(m) for m in members])
    if len({(m.unit, m.dispaxis) for m in state.members}) > 1:
        raise InputError("the members differ in BUNIT or DISPAXIS: "
                         + ", ".join(f"{m.name} {m.unit} {m.dispaxis}" for m in state.members))
    record = SPEC3.run(state, members[0].keywords, dict(refs or {}), params or SPEC3.params(),
                       label=asn_table or "spec3", step_hook=step_hook)
    keywords, other = level3_keywords(members)
    header = {**keywords, **provenance_cards(software_version=software_version, created=created, context=context,
                                             asn_table=asn_table, asn_pool=(asn or {}).get("asn_pool")),
              **record.status_cards(), **record.reference_cards()}
    first = state.members[0]
    for own in ("SRCXPOS", "SRCYPOS"):  # the members' own, on their grids
        header.pop(own, None)
    if first.dispaxis == 1:  # NIRSpec: the slit, its source and the source's place in it, the first member's
        header |= {k: first.keywords.get(k) for k in ("SLTNAME", "SOURCEID", "SRCTYPE", "SRCXPOS", "SRCYPOS")}
    elif state.s2d is not None:  # the source on the combined grid: its middle column, the first member's row
        header |= {"SRCXPOS": -float(state.s2d.offsets[0]),
                   "SRCYPOS": first.source_pixel[1] - float(state.s2d.rows[0])}
    crf = []
    if record.statuses.get("outlier_detection") == "COMPLETE":  # the flagged members
        cards = {**provenance_cards(software_version=software_version, created=created, context=context,
                                    asn_table=asn_table, asn_pool=(asn or {}).get("asn_pool")),
                 **record.status_cards("outlier_detection")}
        crf = [_crf_product(p, m, cards) for p, m in zip(members, state.members, strict=True)]
    s2d = x1d = None
    if state.s2d is not None:
        r = state.s2d
        # the grid is centred on the source: its sky is the first member's there
        wcs = ({} if first.gwcs is None
               else {"meta.wcs": rectified_gwcs(first.gwcs, first.trace, r.rows, r.offsets, first.along)})
        images = {"SCI": r.sci, "DQ": r.dq, "ERR": r.err, "WAVELENGTH": r.wavelength, **r.variances}
        s2d = FitsProduct(model_type="SlitModel", images={k: in_frame(v, first.dispaxis) for k, v in images.items()},
                          hdu_keywords={**other, "ERR": {"BUNIT": first.unit}}, extra_meta=wcs)
        set_cards(s2d, {**header, "BUNIT": first.unit})
        if first.dispaxis == 1:  # NIRSpec: a product of slits
            s2d = single_slit(s2d)
    if state.x1d is not None:
        x1d = x1d_product([(state.x1d, {k: header.get(k) for k in ("SLTNAME", "SRCTYPE", "SRCXPOS", "SRCYPOS")})], header)
    source = None
    if first.dispaxis == 1:  # NIRSpec: the primary slit's source (SOURCEID, 1) and its name
        source = (int(first.keywords.get("SOURCEID") or 1), str(first.keywords.get("SLTNAME") or "slit"))
    return Spec3Output(crf, s2d, x1d, record, source)

