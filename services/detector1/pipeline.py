"""calwebb_detector1 and calwebb_dark, declared over the kernels of ``steps/``.

No I/O: an ``_uncal`` product and loaded reference files in, products out. The steps are
declared once in :data:`DETECTOR1` (:mod:`shared.pipeline`); the runner records
COMPLETE or SKIPPED in each S_* keyword (a missing reference skips a step with a
warning), and every reference used is named in its R_* keyword.

Near-infrared detectors run group_scale, dq_init, saturation, superbias, refpix,
linearity, persistence, dark_current, jump, ramp_fit; MIRI runs group_scale, dq_init,
saturation, firstframe (deprecated, skipped by default), lastframe, linearity, rscd,
dark_current, refpix, jump, ramp_fit. Darks stop before dark_current (calwebb_dark).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from services.detector1.steps.dark_current import subtract_dark
from services.detector1.steps.dq_init import initialize_dq
from services.detector1.steps.group_scale import scale_groups
from services.detector1.steps.jump import JumpParams, detect_jumps
from services.detector1.steps.linearity import correct_linearity
from services.detector1.steps.miri_frames import flag_first_frame, flag_last_frame
from services.detector1.steps.persistence import PersistenceParams, correct_persistence
from services.detector1.steps.ramp_fit import RampFitParams, RampFitResult, fit_ramps
from services.detector1.steps.refpix import RefpixParams, correct_miri_refpix, correct_nir_refpix
from services.detector1.steps.rscd import (
    RscdParams,
    correct_rscd,
    decay_parameters,
    flag_rscd_groups,
    group_skip_counts,
)
from services.detector1.steps.saturation import SaturationParams, flag_saturation
from services.detector1.steps.superbias import subtract_superbias
from shared.datamodels import FitsProduct
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
from shared.refdata import Reference, ReferenceProvider, load_references

__all__ = [
    "DARK_EXP_TYPES",
    "DETECTOR1",
    "Detector1Options",
    "Detector1Output",
    "RampState",
    "calibrate",
    "run_detector1",
]

DARK_EXP_TYPES = frozenset({"NRC_DARK", "NIS_DARK", "MIR_DARKIMG", "MIR_DARKMRS", "NRS_DARK", "FGS_DARK"})
NIR = frozenset({"NIRCAM", "NIRISS", "NIRSPEC", "FGS"})
MIRI = frozenset({"MIRI"})


class Detector1Options(BaseModel):
    """Options of the pipeline as a whole."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    save_ramp: bool = Field(False, description="Also write the calibrated ramp (_ramp).")
    save_trapsfilled: bool = Field(False, description="Also write the persistence trap state (_trapsfilled).")


@dataclass
class RampState:
    """The ramp as the steps pass it along.

    ``data`` and ``groupdq`` are private to the run (made from the ``_uncal`` arrays), so the
    steps work on them in place (their kernels' ``out=`` / ``groupdq_out=``) instead of
    allocating a new full-size ramp per step.
    """

    data: np.ndarray  # float32 (nints, ngroups, ny, nx), DN
    groupdq: np.ndarray  # uint8, same shape
    pixeldq: np.ndarray  # uint32 (ny, nx)
    keywords: dict
    trapsfilled_in: np.ndarray | None = None
    time_since_previous: float = 0.0
    trapsfilled: np.ndarray | None = None
    fit: RampFitResult | None = None


# Adapters: (state, args) -> None when COMPLETE, else why the step did nothing.
def _group_scale(s: RampState, a: StepArgs) -> Skip | None:
    r = scale_groups(s.data, nframes=int(s.keywords["NFRAMES"]), frame_divisor=s.keywords.get("FRMDIVSR"),
                     out=s.data)
    s.data = r.data
    return None if r.applied else Skip("FRMDIVSR equals NFRAMES")


def _dq_init(s: RampState, a: StepArgs) -> Skip | None:
    r = initialize_dq(s.pixeldq, s.groupdq, a.refs["mask"].get("DQ").astype(np.uint32), groupdq_out=s.groupdq)
    s.pixeldq, s.groupdq = r.pixeldq, r.groupdq
    return None


def _saturation(s: RampState, a: StepArgs) -> Skip | None:
    ref = a.refs["saturation"]
    r = flag_saturation(s.data, s.groupdq, s.pixeldq, ref.get("SCI"), ref.get("DQ"),
                        n_pix_grow_sat=a.params.n_pix_grow_sat, groupdq_out=s.groupdq)
    s.groupdq, s.pixeldq = r.groupdq, r.pixeldq
    return None


def _superbias(s: RampState, a: StepArgs) -> Skip | None:
    ref = a.refs["superbias"]
    r = subtract_superbias(s.data, s.pixeldq, ref.get("SCI"), ref.get("DQ"), out=s.data)
    s.data, s.pixeldq = r.data, r.pixeldq
    return None


def _refpix(s: RampState, a: StepArgs) -> Skip | None:
    kw, p = s.keywords, a.params
    common = dict(xstart=int(kw["SUBSTRT1"]), ystart=int(kw["SUBSTRT2"]))
    if kw["INSTRUME"] == "MIRI":
        r = correct_miri_refpix(s.data, s.pixeldq, odd_even_rows=p.odd_even_rows, miri_subarrays=p.miri_subarrays,
                                out=s.data, **common)
    else:
        r = correct_nir_refpix(
            s.data, s.pixeldq, noutputs=int(kw.get("NOUTPUTS") or 4), odd_even_columns=p.odd_even_columns,
            use_side_ref_pixels=p.use_side_ref_pixels, side_smoothing_length=p.side_smoothing_length,
            side_gain=p.side_gain, out=s.data, **common,
        )
    s.data = r.data
    if not (r.top_bottom_applied or r.side_applied):
        return Skip(r.note or "the readout window holds no reference pixels")
    if r.note:
        a.note(f"refpix: {r.note}")
    return None


def _linearity(s: RampState, a: StepArgs) -> Skip | None:
    ref = a.refs["linearity"]
    r = correct_linearity(s.data, s.groupdq, s.pixeldq, ref.get("COEFFS"), ref.get("DQ"), out=s.data)
    s.data, s.pixeldq = r.data, r.pixeldq
    return None


def _persistence(s: RampState, a: StepArgs) -> Skip | None:
    p = a.params
    r = correct_persistence(s.data, s.groupdq, s.pixeldq, s.trapsfilled_in, group_time=float(s.keywords["TGROUP"]),
                            time_since_previous=s.time_since_previous, tau=p.tau, fill_fraction=p.fill_fraction,
                            trap_capacity=p.trap_capacity, flag_pers_cutoff=p.flag_pers_cutoff, out=s.data)
    s.data, s.pixeldq, s.trapsfilled = r.data, r.pixeldq, r.trapsfilled
    return None if r.applied else Skip("no trap state from a previous exposure; trap state recorded for the next")


def _dark_current(s: RampState, a: StepArgs) -> Skip | None:
    ref = a.refs["dark"]
    r = subtract_dark(s.data, s.pixeldq, ref.get("SCI"), ref.get("DQ"), nframes=int(s.keywords["NFRAMES"]),
                      groupgap=int(s.keywords["GROUPGAP"]), out=s.data)
    s.data, s.pixeldq = r.data, r.pixeldq
    if r.n_frames_extrapolated:
        a.note(f"dark_current: {r.n_frames_extrapolated} frames extrapolated past the dark reference")
    return None


def _firstframe(s: RampState, a: StepArgs) -> Skip | None:
    r = flag_first_frame(s.groupdq)
    s.groupdq = r.groupdq
    return None if r.applied else Skip("NGROUPS <= 3")


def _lastframe(s: RampState, a: StepArgs) -> Skip | None:
    r = flag_last_frame(s.groupdq)
    s.groupdq = r.groupdq
    return None if r.applied else Skip("NGROUPS <= 2")


def _rscd(s: RampState, a: StepArgs) -> Skip | None:
    kw, ref = s.keywords, a.refs["rscd"]
    subarray, readpatt = str(kw.get("SUBARRAY", "")), str(kw.get("READPATT", ""))
    if a.params.method == "flag":
        counts = group_skip_counts(ref.tables.get("RSCD_GROUP_SKIP"), subarray, readpatt)
        if counts is None:
            return Skip(f"RSCD reference {ref.filename} has no RSCD_GROUP_SKIP row for SUBARRAY={subarray} "
                        f"READPATT={readpatt}", SkipKind.NO_REFERENCE)
        f = flag_rscd_groups(s.groupdq, s.pixeldq, *counts, integration_start=int(kw.get("INTSTART") or 1))
        if not f.applied:
            return Skip("NGROUPS < 3: too few groups to flag")
        s.groupdq, s.pixeldq = f.groupdq, f.pixeldq
        a.note(f"rscd: flagged {f.skip_first} leading group(s) of integration 1, {f.skip_later} of the others; "
               f"{f.backed_off} pixel(s) kept more for saturation")
        return None
    parameters = decay_parameters(ref.tables.get("RSCD_DECAY"), subarray, readpatt)
    if parameters is None:
        return Skip(f"RSCD reference {ref.filename} has no RSCD_DECAY row for SUBARRAY={subarray} "
                    f"READPATT={readpatt}", SkipKind.NO_REFERENCE)
    start = int(kw.get("INTSTART") or 1)
    r = correct_rscd(s.data, s.groupdq, parameters, out=s.data, integration_start=start)
    s.data = r.data
    if not r.applied:
        return Skip("one integration: no reset between integrations to correct")
    if start > 1:
        a.note(f"rscd: the segment starts at integration {start}: its first integration's offset estimated from "
               "its own signal")
    a.note(f"rscd: scale {parameters.scale:g}, tau {parameters.tau:g} groups, level_max {parameters.level_max:g} DN")
    return None


def _jump(s: RampState, a: StepArgs) -> Skip | None:
    r = detect_jumps(s.data, s.groupdq, s.pixeldq, a.refs["gain"].get("SCI"), a.refs["readnoise"].get("SCI"),
                     nframes=int(s.keywords["NFRAMES"]), groupdq_out=s.groupdq, **a.params.model_dump())
    s.groupdq, s.pixeldq = r.groupdq, r.pixeldq
    if r.skipped:
        return Skip(r.note or "too few groups")
    a.note(f"jump: {r.n_jumps} jumps, {r.n_neighbor_flags} neighbour flags")
    return None


def _ramp_fit(s: RampState, a: StepArgs) -> Skip | None:
    kw, dark = s.keywords, a.refs.get("dark")
    s.fit = fit_ramps(s.data, s.groupdq, s.pixeldq, a.refs["gain"].get("SCI"), a.refs["readnoise"].get("SCI"),
                      group_time=float(kw["TGROUP"]), nframes=int(kw["NFRAMES"]),
                      average_dark_current=dark.get("AVDRKCUR") if dark is not None else None,
                      suppress_one_group=a.params.suppress_one_group)
    return None


DETECTOR1: Pipeline[RampState] = Pipeline(
    name="detector1",
    title="calwebb_detector1 (calwebb_dark for darks)",
    options=Detector1Options,
    steps=(
        Step("group_scale", "S_GRPSCL", _group_scale),
        Step("dq_init", "S_DQINIT", _dq_init, reftypes=("mask",)),
        Step("saturation", "S_SATURA", _saturation, reftypes=("saturation",), params=SaturationParams),
        Step("superbias", "S_SUPERB", _superbias, reftypes=("superbias",), instruments=NIR),
        Step("refpix", "S_REFPIX", _refpix, params=RefpixParams, instruments=NIR),
        Step("firstframe", "S_FRSTFR", _firstframe, instruments=MIRI, skip_by_default=True),  # deprecated upstream
        Step("lastframe", "S_LASTFR", _lastframe, instruments=MIRI),
        Step("linearity", "S_LINEAR", _linearity, reftypes=("linearity",)),
        Step("persistence", "S_PERSIS", _persistence, params=PersistenceParams, instruments=NIR),
        Step("rscd", "S_RSCD", _rscd, reftypes=("rscd",), params=RscdParams, instruments=MIRI),
        Step("dark_current", "S_DARK", _dark_current, reftypes=("dark",), except_exp_types=DARK_EXP_TYPES),
        # MIRI corrects reference pixels after the dark (its reference columns carry the dark too).
        Step("refpix", "S_REFPIX", _refpix, params=RefpixParams, instruments=MIRI, except_exp_types=DARK_EXP_TYPES),
        Step("jump", "S_JUMP", _jump, reftypes=("gain", "readnoise"), params=JumpParams,
             except_exp_types=DARK_EXP_TYPES),
        Step("ramp_fit", "S_RAMP", _ramp_fit, reftypes=("gain", "readnoise"), optional_reftypes=("dark",),
             params=RampFitParams, except_exp_types=DARK_EXP_TYPES),
    ),
)


@dataclass(frozen=True)
class Detector1Output(Recorded):
    """What the pipeline made. ``rate`` is None when ramp fitting did not run (then
    ``ramp`` holds the calibrated ramp: a ``_dark`` for calwebb_dark); ``rateints`` only
    when NINTS > 1; ``record`` is what the runner recorded."""

    rate: FitsProduct | None
    rateints: FitsProduct | None
    ramp: FitsProduct | None
    trapsfilled: FitsProduct | None
    record: RunRecord
    context: str
    is_dark: bool

    def outputs(self, input_name: str) -> list[Output]:
        """Everything worth keeping, named after the input file, in order."""
        ramp_suffix = "dark" if self.is_dark else "ramp"
        made = [
            ("rate", self.rate, "SCIENCE"),
            ("rateints", self.rateints, "SCIENCE"),
            (ramp_suffix, self.ramp, "SCIENCE" if self.rate is None else "AUXILIARY"),
            ("trapsfilled", self.trapsfilled, "AUXILIARY"),
        ]
        return [Output(output_name(input_name, suffix), suffix, product, kind)
                for suffix, product, kind in made if product is not None]


Refs = Mapping[str, Reference | None]


def run_detector1(
    uncal: FitsProduct,
    refs: Refs,
    *,
    params: PipelineParams | None = None,
    context: str | None = None,
    software_version: str,
    created: str,
    trapsfilled: np.ndarray | None = None,
    time_since_previous: float = 0.0,
    step_hook: Callable[[str], AbstractContextManager] | None = None,
) -> Detector1Output:
    """Calibrate one ``_uncal`` (or one segment of it) with loaded references.

    Parameters
    ----------
    uncal : FitsProduct
        As read by :func:`shared.datamodels.read_product`; SCI uint16 (nints, ngroups, ny, nx),
        and GROUPDQ when ingest flagged missing rows.
    refs : mapping
        Reference type -> loaded reference (cut to the window), or None when none applies.
    params : PipelineParams, optional
        ``DETECTOR1.params(...)``; defaults when None.
    context : str
        Name of the reference context the references came from (CRDS_CTX).
    created : str
        DATE of the outputs (ISO); passed in so the same input gives the same bytes.
    trapsfilled : ndarray, optional
        Trap state left by the previous exposure of this detector (persistence).
    time_since_previous : float
        Seconds from the end of that exposure to the start of this one.
    step_hook : callable, optional
        ``step_hook(step_name)`` returns a context manager entered around each step.
    """
    p = params or DETECTOR1.params()
    kw = dict(uncal.keywords)
    sci = uncal.images["SCI"]
    gdq = uncal.images.get("GROUPDQ")
    state = RampState(
        data=sci.astype(np.float32),
        groupdq=gdq.astype(np.uint8) if gdq is not None else np.zeros(sci.shape, np.uint8),
        pixeldq=np.zeros(sci.shape[-2:], np.uint32),
        keywords=kw,
        trapsfilled_in=trapsfilled,
        time_since_previous=time_since_previous,
    )
    record = DETECTOR1.run(state, kw, {t: r for t, r in refs.items() if r is not None}, p, step_hook=step_hook)
    header = {**kw, **provenance_cards(software_version=software_version, context=context, created=created),
              **record.status_cards(), **record.reference_cards()}

    options: Detector1Options = p.options
    fit = state.fit
    rate = rateints = ramp = traps = None
    if fit is not None:
        rate = _image_product(header, fit.rate, fit.err, fit.dq, fit.var_poisson, fit.var_rnoise)
        if int(kw["NINTS"]) > 1:
            rateints = _cube_product(header, fit, uncal.tables.get("INT_TIMES"))
    if options.save_ramp or fit is None:
        ramp = FitsProduct(
            model_type="RampModel", keywords={**header, "BUNIT": "DN"},
            images={"SCI": state.data, "PIXELDQ": state.pixeldq, "GROUPDQ": state.groupdq},
            tables={k: v for k, v in uncal.tables.items() if k in ("GROUP", "INT_TIMES")},
        )
    if options.save_trapsfilled and state.trapsfilled is not None:
        traps = FitsProduct(model_type="TrapsFilledModel", keywords=dict(header),
                            images={"SCI": state.trapsfilled[None].astype(np.float32)})
    return Detector1Output(rate, rateints, ramp, traps, record, context or "N/A",
                           str(kw.get("EXP_TYPE", "")).upper() in DARK_EXP_TYPES)


def calibrate(
    uncal: FitsProduct,
    provider: ReferenceProvider,
    *,
    params: PipelineParams | None = None,
    software_version: str,
    created: str,
    trapsfilled: np.ndarray | None = None,
    time_since_previous: float = 0.0,
    step_hook: Callable[[str], AbstractContextManager] | None = None,
) -> Detector1Output:
    """Choose and read the references of this exposure's steps from ``provider`` (the
    catalog for a worker, local files for ``dms run``) and run :func:`run_detector1`."""
    refs = load_references(provider, uncal.keywords, DETECTOR1.reftypes(uncal.keywords))
    return run_detector1(uncal, refs.found, params=params, context=refs.context, software_version=software_version,
                         created=created, trapsfilled=trapsfilled, time_since_previous=time_since_previous,
                         step_hook=step_hook)


# The products take the fit's arrays without copying (the fit is private to the run).
def _image_product(header: dict, rate, err, dq, var_p, var_r) -> FitsProduct:
    return FitsProduct(
        model_type="ImageModel",
        keywords={**header, "BUNIT": "DN/s"},
        images={"SCI": rate.astype(np.float32, copy=False), "ERR": err.astype(np.float32, copy=False),
                "DQ": dq.astype(np.uint32, copy=False), "VAR_POISSON": var_p.astype(np.float32, copy=False),
                "VAR_RNOISE": var_r.astype(np.float32, copy=False)},
        hdu_keywords={"ERR": {"BUNIT": "DN/s"}},
    )


def _cube_product(header: dict, fit: RampFitResult, int_times) -> FitsProduct:
    product = FitsProduct(
        model_type="CubeModel",
        keywords={**header, "BUNIT": "DN/s"},
        images={"SCI": fit.rate_ints.astype(np.float32, copy=False), "ERR": fit.err_ints.astype(np.float32, copy=False),
                "DQ": fit.dq_ints.astype(np.uint32, copy=False),
                "VAR_POISSON": fit.var_poisson_ints.astype(np.float32, copy=False),
                "VAR_RNOISE": fit.var_rnoise_ints.astype(np.float32, copy=False)},
        hdu_keywords={"ERR": {"BUNIT": "DN/s"}},
    )
    if int_times is not None:
        product.tables["INT_TIMES"] = int_times
    return product
