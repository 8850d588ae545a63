"""calwebb_spec3 for a slit nodded along its length (MIRI LRS fixed slit,
``MIR_LRS-FIXEDSLIT``): the nods' ``_cal`` (each already nod-subtracted by spec2) flagged
against each other (their ``_crf``) and combined into the Level-3 ``_s2d`` and ``_x1d`` of the
source.

No I/O: the members and loaded references in, products out. Steps (:data:`SPEC3`):

- outlier_detection (SPECWCS): each member rectified alone onto resample_spec's grid, the
  median per pixel put back onto each member's pixels along its rows and compared with
  them, as the public step does for slits
  (:func:`services.stage3.steps.outlier_detection.flag_outliers_slit`): outliers become
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
    flag_outliers_slit,
)
from shared.datamodels import FitsProduct, card_value, set_cards
from shared.datamodels.dqflags import PIXEL
from shared.datamodels.spectra import x1d_product
from shared.errors import InputError
from shared.instruments import keyword_pixel_scale
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
    ExtractParams,
    Rectified,
    SlitTrace,
    boxcar_extract,
    rectify_slit,
    slit_length,
    slit_trace,
)
from shared.spectra.wcs import rectified_gwcs

__all__ = ["SPEC3", "SPEC3_EXP_TYPES", "Spec3Output", "run_spec3"]

SPEC3_EXP_TYPES = frozenset({"MIR_LRS-FIXEDSLIT"})
_DO_NOT_USE = np.uint32(PIXEL["DO_NOT_USE"])
_VARIANCES = ("VAR_POISSON", "VAR_RNOISE", "VAR_FLAT")


@dataclass
class SlitExposure:
    """One member: its calibrated arrays (MJy/sr), keywords, and, once known, the slit's
    trace on it and the source's place along the slit (pixels from the trace)."""

    name: str
    sci: np.ndarray
    err: np.ndarray
    dq: np.ndarray
    variances: dict[str, np.ndarray]
    keywords: dict
    source_pixel: tuple[float, float]  # SRCXPOS, SRCYPOS: where the source images undispersed
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


def _exposure(product: FitsProduct) -> SlitExposure:
    kw = dict(product.keywords)
    name = str(kw.get("FILENAME") or "a member")
    missing = [n for n in ("SCI", "DQ", "VAR_POISSON", "VAR_RNOISE") if n not in product.images]
    if missing:
        raise InputError(f"{name} lacks the {', '.join(missing)} array(s) of a calibrated slit exposure")
    if str(card_value(product, "BUNIT") or "") != "MJy/sr" or kw.get("PIXAR_SR") is None:
        raise InputError(f"{name} is not flux-calibrated (BUNIT MJy/sr and PIXAR_SR): spec2's photom did not run")
    if kw.get("SRCXPOS") is None or kw.get("SRCYPOS") is None:
        raise InputError(f"{name} does not say where its source is in the slit (SRCXPOS, SRCYPOS): spec2's "
                         "assign_wcs did not run")
    sci = np.asarray(product.images["SCI"], np.float64)
    if sci.ndim != 2:
        raise InputError(f"{name}: SCI of shape {sci.shape} is not one image")
    variances = {k: np.asarray(product.images[k], np.float64) for k in _VARIANCES if k in product.images}
    err = (np.asarray(product.images["ERR"], np.float64) if "ERR" in product.images
           else np.sqrt(sum(variances.values())))
    return SlitExposure(name, sci, err, np.asarray(product.images["DQ"], np.uint32), variances, kw,
                        (float(kw["SRCXPOS"]), float(kw["SRCYPOS"])), gwcs=product.extra_meta.get("meta.wcs"))


def _traces(s: Spec3State, ref: Reference) -> None:
    """The slit's trace on every member (once) and its half length in pixels."""
    if all(m.trace is not None for m in s.members):
        return
    try:
        x_ref, y_ref = float(ref.header["IMX"]), float(ref.header["IMY"])
        length = slit_length(ref.header)
        for m in s.members:
            kw = m.keywords
            m.trace = slit_trace(ref.tables.get("WAVETABLE"), x_ref, y_ref, xstart=int(kw.get("SUBSTRT1", 1)),
                                 ystart=int(kw.get("SUBSTRT2", 1)), ny=m.sci.shape[0])
            x_src, y_src = m.source_pixel  # its place along the slit: from the trace at its row
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
    singles = _singles(s)
    masks = flag_outliers_slit([m.sci for m in s.members], [m.err for m in s.members], [m.dq for m in s.members],
                               [r.sci for r in singles], singles[0].rows, singles[0].offsets,
                               [m.trace.x + m.along for m in s.members], a.params)
    for m, mask in zip(s.members, masks, strict=True):
        m.dq, (m.sci, m.err, *variances) = apply_outliers(mask, m.dq, m.sci, m.err, *m.variances.values())
        m.variances = dict(zip(m.variances, variances, strict=True))
    a.note(f"outlier_detection: {', '.join(str(int(mask.sum())) for mask in masks)} pixel(s) flagged in the "
           f"{len(masks)} exposures")
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
    for m in s.members:
        variances = {k.removeprefix("VAR_"): v for k, v in m.variances.items()}
        s.spectra.append(boxcar_extract(m.sci, m.dq, variances, m.trace.x + m.along, m.trace.rows,
                                        m.trace.wavelength, float(m.keywords["PIXAR_SR"]), a.params))
    a.note(f"extract_1d: {len(s.spectra)} exposures, aperture {a.params.width:g} px at each one's source")
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

    def outputs(self, asn) -> list[Output]:
        """The members' ``_crf`` and the Level-3 products, named for the association."""
        return crf_outputs(asn, self.crf) + [
            Output(asn.product(suffix), suffix, product) for suffix, product in (("s2d", self.s2d), ("x1d", self.x1d))
            if product is not None]


def _crf_product(product: FitsProduct, m: SlitExposure, cards: Mapping[str, Any]) -> FitsProduct:
    """A member as outlier detection left it (its ``_cal`` with the outliers flagged)."""
    crf = FitsProduct(model_type=product.model_type, keywords=dict(product.keywords), tables=dict(product.tables),
                      images={**product.images, "SCI": m.sci.astype(np.float32), "ERR": m.err.astype(np.float32),
                              "DQ": m.dq, **{k: v.astype(np.float32) for k, v in m.variances.items()}},
                      hdu_keywords={k: dict(v) for k, v in product.hdu_keywords.items()},
                      extra_meta=dict(product.extra_meta))
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
    record = SPEC3.run(state, members[0].keywords, dict(refs or {}), params or SPEC3.params(),
                       label=asn_table or "spec3", step_hook=step_hook)
    keywords, other = level3_keywords(members)
    header = {**keywords, **provenance_cards(software_version=software_version, created=created, context=context,
                                             asn_table=asn_table, asn_pool=(asn or {}).get("asn_pool")),
              **record.status_cards(), **record.reference_cards()}
    for own in ("SRCXPOS", "SRCYPOS"):  # the members' own, on their grids
        header.pop(own, None)
    if state.s2d is not None:  # the source on the combined grid: its middle column, the first member's row
        header |= {"SRCXPOS": -float(state.s2d.offsets[0]),
                   "SRCYPOS": state.members[0].source_pixel[1] - float(state.s2d.rows[0])}
    crf = []
    if record.statuses.get("outlier_detection") == "COMPLETE":  # the flagged members
        cards = {**provenance_cards(software_version=software_version, created=created, context=context,
                                    asn_table=asn_table, asn_pool=(asn or {}).get("asn_pool")),
                 **record.status_cards("outlier_detection")}
        crf = [_crf_product(p, m, cards) for p, m in zip(members, state.members, strict=True)]
    s2d = x1d = None
    if state.s2d is not None:
        r = state.s2d
        first = state.members[0]  # the grid is centred on the source: its sky is the first member's there
        wcs = ({} if first.gwcs is None
               else {"meta.wcs": rectified_gwcs(first.gwcs, first.trace, r.rows, r.offsets, first.along)})
        s2d = FitsProduct(model_type="SlitModel",
                          images={"SCI": r.sci, "DQ": r.dq, "ERR": r.err, "WAVELENGTH": r.wavelength, **r.variances},
                          hdu_keywords={**other, "ERR": {"BUNIT": "MJy/sr"}}, extra_meta=wcs)
        set_cards(s2d, {**header, "BUNIT": "MJy/sr"})
    if state.x1d is not None:
        x1d = x1d_product(state.x1d, header, {k: header.get(k) for k in ("SLTNAME", "SRCTYPE", "SRCXPOS", "SRCYPOS")})
    return Spec3Output(crf, s2d, x1d, record)

