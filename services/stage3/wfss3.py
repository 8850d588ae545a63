"""calwebb_spec3 for wide-field slitless spectroscopy (NIRISS ``NIS_WFSS``, NIRCam
``NRC_WFSS``): every source's spectra on the dispersed exposures of an observation, each
extracted again from its exposure's ``_cal`` and combined, as the public pipeline does for
these modes, into the Level-3 ``_x1d`` (a WFSSMultiSpecModel: each exposure's spectra of
all the sources) and ``_c1d`` (a WFSSMultiCombinedSpecModel: one combined spectrum per
source and order).

A member is spec2's WFSS ``_cal``: a MultiSlitModel with a slit per catalog source and
spectral order (SOURCEID, SPORDER), the cutout of the exposure its spectrum falls on
(SLTSTRT1/2, SLTSIZE1/2: its first full-frame pixel, 1-based, and size), the source's
undispersed pixel on the readout window (SRCXPOS, SRCYPOS: 0-based, the window starting
at SUBSTRT1/2), its WAVELENGTH, and the pixels another source's spectrum covers flagged
OTHER_BAD_PIXEL. The members' slits are gathered by source and order, in order of
SOURCEID then SPORDER; a source the dither puts off one exposure's window is combined
from those it is on. The members must be of one grism and blocking filter.

No I/O: the members and the loaded SPECWCS (the grism's dispersion model) in, products
out. Steps (:data:`WFSS3`):

- extract_1d (SPECWCS): each slit's trace on its cutout, from the grism model at the
  slit's source and cutout origin (:func:`shared.spectra.grism.grism_trace`, as spec2's
  assign_wcs traced it on the window), checked against the slit's WAVELENGTH; its
  spectrum summed in spec2's WFSS aperture, ``2 h + 1`` pixels across centred on the
  trace (:meth:`shared.spectra.ExtractParams.for_mode`, the same boxcar,
  :func:`shared.spectra.boxcar_extract`), where ``h``, the source's extraction
  half-height, is what the cutout's extent across the trace says spec2 gave it: spec2
  cuts the pixels within ``h + 1`` of the trace's centre on each line
  (:meth:`shared.spectra.wfss.GrismSource.box`), so a side the window did not clip gives
  ``h`` back (:func:`half_height_of_cutout`);
- combine_1d: each source's spectra in an order put on one grid and averaged per element
  with inverse-variance weights (:mod:`services.stage3.steps.combine_1d`); DQ the OR of
  the exposures used, so an element another source's spectrum covers in any of them
  keeps OTHER_BAD_PIXEL.

The public pipeline also runs pixel_replace on the slits before extracting: not here
(flagged pixels are left out of the sums, as in spec2).
"""

from __future__ import annotations

import math
import warnings
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from services.stage3.level3 import level3_keywords
from services.stage3.steps.combine_1d import combine_spectra, n_inputs, on_grid, output_wavelengths
from shared.datamodels import FitsProduct, card_value
from shared.datamodels.spectra import exposure_group_id, wfss_c1d_product, wfss_level3_x1d_product
from shared.errors import InputError
from shared.pipeline import (
    Output,
    Pipeline,
    PipelineParams,
    Recorded,
    RunRecord,
    Skip,
    Step,
    StepArgs,
    provenance_cards,
)
from shared.refdata import Reference, ReferenceFileError
from shared.spectra import WFSS_EXP_TYPES, ExtractParams, SlitTrace, boxcar_extract, in_frame
from shared.spectra.grism import grism_dispaxis, grism_trace
from shared.spectra.wfss import wfss_filter

__all__ = ["WFSS3", "WFSS3_EXP_TYPES", "GrismSlit", "SourceOrder", "Wfss3Output", "half_height_of_cutout",
           "is_wfss", "run_wfss3"]

WFSS3_EXP_TYPES = WFSS_EXP_TYPES
_VARIANCES = ("VAR_POISSON", "VAR_RNOISE", "VAR_FLAT")
_SLIT_CARDS = ("SOURCEID", "SPORDER", "SRCXPOS", "SRCYPOS", "SLTSTRT1", "SLTSTRT2", "SLTSIZE1", "SLTSIZE2")
#: How far (um) a trace's wavelength may lie from the slit's WAVELENGTH: a hundredth of a
#: pixel of the finest WFSS grism.
_WAVELENGTH_TOLERANCE = 1e-5


def is_wfss(members: Sequence[FitsProduct]) -> bool:
    """Whether a spec3 association's members are wide-field slitless exposures (any of
    them: :func:`run_wfss3` refuses a mixture)."""
    return any(str(card_value(m, "EXP_TYPE", "") or "").upper() in WFSS3_EXP_TYPES for m in members)


@dataclass
class GrismSlit:
    """One member's spectrum of a source in one order: its cutout's arrays in the
    dispersion frame (:func:`shared.spectra.in_frame`), its WAVELENGTH there (None when
    the slit has none), its keywords (the slit's over its member's), unit and which
    member it is of."""

    name: str
    member: int
    sci: np.ndarray
    dq: np.ndarray
    variances: dict[str, np.ndarray]
    wavelength: np.ndarray | None
    keywords: dict
    unit: str
    dispaxis: int


@dataclass
class SourceOrder:
    """A source's spectra in one order: its slits on the members, each one's extracted
    spectrum (None where it could not be), and their combination with how many
    exposures each element takes."""

    source_id: int
    order: int
    slits: list[GrismSlit]
    spectra: list[np.ndarray | None] = field(default_factory=list)
    combined: np.ndarray | None = None
    n_input: np.ndarray | None = None


@dataclass
class Wfss3State:
    """The members' sources, by source and order, as the steps pass them along."""

    sources: list[SourceOrder]


def half_height_of_cutout(centre: np.ndarray, n_across: int, clipped: tuple[bool, bool]) -> int:
    """The extraction half-height ``h`` (whole pixels) spec2 cut a WFSS slit with, from its
    cutout: ``centre`` the trace's centre across the dispersion on the cutout's lines
    (cutout pixels), ``n_across`` the cutout's width across them, ``clipped`` whether the
    readout window cut it short on the low and high sides. spec2 keeps the pixels within
    ``h + 1`` of the centre (:meth:`shared.spectra.wfss.GrismSource.box`): an unclipped low
    side starts at ``floor(min c) - h``, an unclipped high side ends at ``ceil(max c) + h +
    1``. Where both sides say (they agree but for a centre on a whole pixel, to rounding),
    the smaller; where the window clipped both, the least ``h`` that fills the cutout.

    Raises
    ------
    ValueError
        No centre, or a cutout too narrow for any aperture about it."""
    c = np.asarray(centre, np.float64)
    c = c[np.isfinite(c)]
    if c.size == 0:
        raise ValueError("the trace crosses none of the cutout's lines")
    low, high = math.floor(float(c.min())), n_across - math.ceil(float(c.max())) - 1
    said = [h for h, cut in ((low, clipped[0]), (high, clipped[1])) if not cut]
    h = min(said) if said else max(low, high)
    if h < 1:
        raise ValueError(f"a cutout {n_across} pixels across leaves no aperture about its trace "
                         f"(from {c.min():.2f} to {c.max():.2f})")
    return int(h)


def _int(kw: Mapping, name: str, default: int | None = None) -> int | None:
    value = kw.get(name)
    return default if value is None else int(value)


def _slits(product: FitsProduct, index: int) -> list[GrismSlit]:
    """A member's slits as the steps see them; InputError for a member spec2's
    extract_2d did not cut, or a slit without what spec3 reads."""
    name = str(product.keywords.get("FILENAME") or f"member {index + 1}")
    if not product.slits:
        raise InputError(f"{name} holds no slits: a WFSS _cal has one per source and order (spec2's extract_2d "
                         "did not run)")
    out = []
    for slit in product.slits:
        kw = {**product.keywords, **slit.keywords}
        label = f"{name} slit {kw.get('SLTNAME', '?')}"
        missing = [k for k in _SLIT_CARDS if kw.get(k) is None]
        missing += [k for k in ("SCI", "DQ") if k not in slit.images]
        if missing:
            raise InputError(f"{label} lacks {', '.join(missing)}: not a WFSS _cal slit as spec2 writes it")
        unit = str(kw.get("BUNIT") or "")
        if unit not in ("MJy/sr", "MJy") or kw.get("PIXAR_SR") is None:
            raise InputError(f"{label} is not flux-calibrated (BUNIT MJy/sr or MJy, and PIXAR_SR): spec2's photom "
                             "did not run")
        dispaxis = int(kw.get("DISPAXIS") or 0)
        if dispaxis not in (1, 2):
            raise InputError(f"{label}: DISPAXIS {kw.get('DISPAXIS')} is neither 1 nor 2")
        sci = np.asarray(slit.images["SCI"], np.float64)
        if sci.shape != (int(kw["SLTSIZE2"]), int(kw["SLTSIZE1"])):
            raise InputError(f"{label}: SCI of shape {sci.shape} is not the cutout SLTSIZE2 x SLTSIZE1 "
                             f"({kw['SLTSIZE2']} x {kw['SLTSIZE1']})")
        wavelength = slit.images.get("WAVELENGTH")
        out.append(GrismSlit(
            name=label, member=index, sci=in_frame(sci, dispaxis),
            dq=in_frame(np.asarray(slit.images["DQ"], np.uint32), dispaxis),
            variances={k.removeprefix("VAR_"): in_frame(np.asarray(slit.images[k], np.float64), dispaxis)
                       for k in _VARIANCES if k in slit.images},
            wavelength=None if wavelength is None else in_frame(np.asarray(wavelength, np.float64), dispaxis),
            keywords=kw, unit=unit, dispaxis=dispaxis))
    return out


def _by_source(slits: Sequence[GrismSlit]) -> list[SourceOrder]:
    """The slits gathered by source and order (SOURCEID, then SPORDER), each source's in
    member order."""
    groups: dict[tuple[int, int], list[GrismSlit]] = defaultdict(list)
    for m in slits:
        groups[(int(m.keywords["SOURCEID"]), int(m.keywords["SPORDER"]))].append(m)
    return [SourceOrder(sid, order, group) for (sid, order), group in sorted(groups.items())]


def _cutout_trace(m: GrismSlit, tree: Mapping[str, Any]) -> SlitTrace:
    """The slit's trace on its cutout (dispersion frame): the grism model's at the source's
    undispersed pixel, from the cutout's origin."""
    kw = m.keywords
    x0 = float(kw["SRCXPOS"]) - (int(kw["SLTSTRT1"]) - _int(kw, "SUBSTRT1", 1))
    y0 = float(kw["SRCYPOS"]) - (int(kw["SLTSTRT2"]) - _int(kw, "SUBSTRT2", 1))
    return grism_trace(tree, x0, y0, xstart=int(kw["SLTSTRT1"]), ystart=int(kw["SLTSTRT2"]), nx=int(kw["SLTSIZE1"]),
                       ny=int(kw["SLTSIZE2"]), order=int(kw["SPORDER"]), dispaxis=m.dispaxis)


def _lines(m: GrismSlit, trace: SlitTrace, specwcs: str) -> np.ndarray:
    """The cutout's lines to extract: the trace's, where the slit has a WAVELENGTH; the
    trace's wavelengths checked against it (ReferenceFileError when the grism model is
    not the one spec2 traced the exposure with)."""
    rows = trace.rows
    if m.wavelength is None:
        return rows
    with warnings.catch_warnings():  # a line without any wavelength: NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        known = np.nanmedian(m.wavelength, axis=1)
    rows = rows[np.isfinite(known[rows])]
    if rows.size:
        off = float(np.max(np.abs(trace.wavelength[rows] - known[rows])))
        if off > _WAVELENGTH_TOLERANCE:
            raise ReferenceFileError(f"SPECWCS reference {specwcs}: its trace of {m.name} (order "
                                     f"{m.keywords['SPORDER']}) misses the slit's wavelengths by up to {off:.2e} um: "
                                     "not the grism model spec2 calibrated the exposure with")
    return rows


def _extract(m: GrismSlit, tree: Mapping[str, Any], params: ExtractParams, specwcs: str) -> np.ndarray | None:
    """One slit's spectrum in spec2's WFSS aperture (the module docstring); None when its
    trace has fewer than two lines on the cutout."""
    kw = m.keywords
    try:
        trace = _cutout_trace(m, tree)
    except ValueError as exc:
        raise ReferenceFileError(f"SPECWCS reference {specwcs}: {m.name}: {exc}") from exc
    rows = _lines(m, trace, specwcs)
    if rows.size < 2:
        return None
    across = 2 if m.dispaxis == 1 else 1  # the detector axis across the dispersion
    start, size = int(kw[f"SLTSTRT{across}"]), int(kw[f"SLTSIZE{across}"])
    window_start, window_size = _int(kw, f"SUBSTRT{across}", 1), _int(kw, f"SUBSIZE{across}")
    clipped = (start <= window_start, window_size is not None and start + size >= window_start + window_size)
    try:
        half = half_height_of_cutout(trace.x[rows], size, clipped)
        p = params.for_mode(str(kw.get("EXP_TYPE") or ""), width=2.0 * half + 1.0)
        return boxcar_extract(m.sci, m.dq, m.variances, trace.x, rows, trace.wavelength, float(kw["PIXAR_SR"]), p,
                              unit=m.unit)
    except ValueError as exc:
        raise InputError(f"{m.name}: extract_1d: {exc}") from None


def _extract_1d(s: Wfss3State, a: StepArgs) -> Skip | None:
    ref = a.refs["specwcs"]
    tree, n, lost = ref.tree, 0, []
    for src in s.sources:
        src.spectra = [_extract(m, tree, a.params, ref.filename) for m in src.slits]
        n += sum(t is not None for t in src.spectra)
        lost += [m.name for m, t in zip(src.slits, src.spectra, strict=True) if t is None]
    if n == 0:
        return Skip("no slit's trace crosses two lines of its cutout")
    a.note(f"extract_1d: {n} spectra of {len({src.source_id for src in s.sources})} source(s) on their traces "
           f"(SPECWCS {ref.filename}), each in its source's aperture"
           + (f"; {len(lost)} slit(s) without two lines of trace: {', '.join(lost[:5])}" if lost else ""))
    return None


def _combine_1d(s: Wfss3State, a: StepArgs) -> Skip | None:
    done, counts = 0, defaultdict(int)
    for src in s.sources:
        spectra = [t for t in src.spectra if t is not None and len(t)]
        if not spectra:
            continue
        try:
            grid = output_wavelengths([t["WAVELENGTH"] for t in spectra])
        except ValueError:
            continue
        aligned = [on_grid(t, grid) for t in spectra]
        src.combined, src.n_input = combine_spectra(aligned), n_inputs(aligned)
        done += 1
        counts[len(spectra)] += 1
    if not done:
        return Skip("no spectra were extracted (extract_1d did not run)")
    a.note(f"combine_1d: {done} source spectra (by source and order), "
           + ", ".join(f"{k} from {n} exposure(s)" for n, k in sorted(counts.items()))
           + "; inverse-variance weights")
    return None


WFSS3: Pipeline[Wfss3State] = Pipeline(
    name="spec3",
    title="calwebb_spec3",
    steps=(
        Step("extract_1d", "S_EXTR1D", _extract_1d, reftypes=("specwcs",), params=ExtractParams,
             exp_types=WFSS3_EXP_TYPES),
        Step("combine_1d", "S_COMB1D", _combine_1d, exp_types=WFSS3_EXP_TYPES),
    ),
)


@dataclass(frozen=True)
class Wfss3Output(Recorded):
    """The Level-3 ``_x1d`` (each exposure's spectra of every source) and ``_c1d`` (each
    source's combined spectra); None when their step did not run."""

    x1d: FitsProduct | None
    c1d: FitsProduct | None
    record: RunRecord

    def outputs(self, asn) -> list[Output]:
        """The association's ``<product>_x1d.fits`` and ``<product>_c1d.fits``."""
        return [Output(asn.product(suffix), suffix, product)
                for suffix, product in (("x1d", self.x1d), ("c1d", self.c1d)) if product is not None]


def _check_members(members: Sequence[FitsProduct], refs: Mapping[str, Reference]) -> None:
    """InputError for an association spec3 cannot combine as WFSS: members of other
    modes, of different grisms or blocking filters, or no SPECWCS to trace them with."""
    def name(i: int) -> str:
        return str(members[i].keywords.get("FILENAME") or f"member {i + 1}")

    exp_types = {str(card_value(m, "EXP_TYPE", "") or "").upper() for m in members}
    if not exp_types <= WFSS3_EXP_TYPES or len(exp_types) > 1:
        raise InputError(f"a WFSS spec3 combines the exposures of one of {', '.join(sorted(WFSS3_EXP_TYPES))}; "
                         f"the members are {', '.join(sorted(exp_types))}")
    setups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for i, m in enumerate(members):
        kw = m.keywords
        try:
            grism_dispaxis(kw.get("INSTRUME"), kw.get("FILTER"), kw.get("PUPIL"))
        except ValueError as exc:
            raise InputError(f"{name(i)}: {exc}") from None
        grism = str(kw.get("FILTER" if str(kw.get("INSTRUME")).upper() == "NIRISS" else "PUPIL")).upper()
        setups[(grism, wfss_filter(kw))].append(name(i))
    if len(setups) > 1:
        raise InputError("the members are of different grisms or blocking filters: "
                         + "; ".join(f"{g}/{f}: {', '.join(names)}" for (g, f), names in sorted(setups.items()))
                         + " (a WFSS spec3 association combines the exposures of one)")
    if refs.get("specwcs") is None:
        first = members[0].keywords
        raise InputError(f"no SPECWCS reference for {first.get('INSTRUME')} {first.get('FILTER')}/"
                         f"{first.get('PUPIL')} ({first.get('EXP_TYPE')}): the traces of the sources' spectra come "
                         "from the grism's dispersion model, which the reference context must hold")


def _source_cards(m: GrismSlit) -> dict[str, Any]:
    kw = m.keywords
    return {"SPORDER": int(kw["SPORDER"]), "SOURCE_ID": int(kw["SOURCEID"]), "SOURCE_TYPE": kw.get("SRCTYPE"),
            "SOURCE_RA": kw.get("SRCRA"), "SOURCE_DEC": kw.get("SRCDEC")}


def _x1d(state: Wfss3State, members: Sequence[FitsProduct], header: Mapping[str, Any], dispaxis: int
         ) -> FitsProduct | None:
    """The Level-3 ``_x1d``: each member's spectra (in member order), a table per order."""
    by_member: dict[int, list[tuple[np.ndarray, dict]]] = defaultdict(list)
    for src in state.sources:
        for m, table in zip(src.slits, src.spectra, strict=True):
            if table is None:
                continue
            kw = m.keywords
            by_member[m.member].append((table, {
                **_source_cards(m), "SOURCE_XPOS": kw["SRCXPOS"], "SOURCE_YPOS": kw["SRCYPOS"],
                "EXTRACT2D_XSTART": kw["SLTSTRT1"], "EXTRACT2D_YSTART": kw["SLTSTRT2"],
                "EXTRACT2D_XSTOP": int(kw["SLTSTRT1"]) + int(kw["SLTSIZE1"]),
                "EXTRACT2D_YSTOP": int(kw["SLTSTRT2"]) + int(kw["SLTSIZE2"])}))
    if not by_member:
        return None
    exposures = []
    for i, member in enumerate(members):
        kw = member.keywords
        try:
            group = exposure_group_id(kw)
        except ValueError:  # an exposure without its observation's numbers: named by its file
            group = str(kw.get("FILENAME") or f"member{i + 1}").removesuffix(".fits")
        cards = {k: card_value(member, k) for k in ("FILENAME", "EFFEXPTM", "EFFINTTM")}
        exposures.append((by_member.get(i, []), cards, group))
    return wfss_level3_x1d_product(exposures, header, dispaxis=dispaxis)


def _c1d(state: Wfss3State, header: Mapping[str, Any], dispaxis: int) -> FitsProduct | None:
    """The ``_c1d``: each source's combined spectrum per order."""
    combined = [(src.combined, src.n_input, _source_cards(src.slits[0])) for src in state.sources
                if src.combined is not None]
    return wfss_c1d_product(combined, header, dispaxis=dispaxis) if combined else None


def run_wfss3(members: Sequence[FitsProduct], asn: dict | None = None, params: PipelineParams | None = None, *,
              refs: Mapping[str, Reference] | None = None, software_version: str, created: str | None = None,
              context: str | None = None, asn_table: str | None = None,
              step_hook: Callable[[str], AbstractContextManager] | None = None) -> Wfss3Output:
    """calwebb_spec3 on a WFSS association's ``_cal`` members (spec2's: a slit per source
    and order) with the loaded SPECWCS: the Level-3 ``_x1d`` and ``_c1d``.

    Raises
    ------
    InputError
        Members of other modes, of mixed grisms or blocking filters, or not as spec2 writes
        them; no SPECWCS reference (the message names what).
    ReferenceFileError
        A SPECWCS that cannot trace the slits, or traces them at other wavelengths than
        spec2 did."""
    if not members:
        raise InputError("spec3 needs at least one member")
    found = {t: r for t, r in (refs or {}).items() if r is not None}
    _check_members(members, found)
    state = Wfss3State(_by_source([m for i, product in enumerate(members) for m in _slits(product, i)]))
    record = WFSS3.run(state, members[0].keywords, found, params or WFSS3.params(), label=asn_table or "spec3",
                       step_hook=step_hook)
    keywords, _ = level3_keywords(members)
    prov = provenance_cards(software_version=software_version, created=created, context=context,
                            asn_table=asn_table, asn_pool=(asn or {}).get("asn_pool"))
    header = {**keywords, **prov, **record.status_cards(), **record.reference_cards()}
    dispaxis = state.sources[0].slits[0].dispaxis if state.sources else 1
    return Wfss3Output(_x1d(state, members, header, dispaxis), _c1d(state, header, dispaxis), record)
