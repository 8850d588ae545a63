"""calwebb_detector1 and calwebb_dark: compose the steps over one ``_uncal``.

No I/O: an ``_uncal`` product and loaded reference files in, products out. Each step runs
its kernel from ``steps/`` and records COMPLETE or SKIPPED (with the reason) in its S_*
keyword; a missing reference means SKIPPED and a warning, never a crash; every reference
used is named in its R_* keyword.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from services.detector1.references import REFTYPE_KEYWORDS, LoadedReference
from services.detector1.steps.dark_current import subtract_dark
from services.detector1.steps.dq_init import initialize_dq
from services.detector1.steps.group_scale import scale_groups
from services.detector1.steps.jump import JumpParams, detect_jumps
from services.detector1.steps.linearity import correct_linearity
from services.detector1.steps.miri_frames import (
    FirstFrameParams,
    LastFrameParams,
    flag_first_frame,
    flag_last_frame,
)
from services.detector1.steps.persistence import PersistenceParams, correct_persistence
from services.detector1.steps.ramp_fit import RampFitParams, fit_ramps
from services.detector1.steps.refpix import RefpixParams, correct_miri_refpix, correct_nir_refpix
from services.detector1.steps.rscd import RscdParams, correct_rscd
from services.detector1.steps.saturation import SaturationParams, flag_saturation
from services.detector1.steps.superbias import subtract_superbias
from shared.datamodels import FitsProduct

__all__ = [
    "DARK_EXP_TYPES",
    "Detector1Output",
    "Detector1Params",
    "RampState",
    "run_detector1",
    "step_sequence",
]

log = logging.getLogger(__name__)

DARK_EXP_TYPES = frozenset({"NRC_DARK", "NIS_DARK", "MIR_DARKIMG", "MIR_DARKMRS", "NRS_DARK", "FGS_DARK"})

NIR_STEPS = ("group_scale", "dq_init", "saturation", "superbias", "refpix", "linearity", "persistence",
             "dark_current", "jump", "ramp_fit")
MIR_STEPS = ("group_scale", "dq_init", "saturation", "firstframe", "lastframe", "linearity", "rscd",
             "dark_current", "refpix", "jump", "ramp_fit")

STATUS_KEYWORDS = {
    "group_scale": "S_GRPSCL", "dq_init": "S_DQINIT", "saturation": "S_SATURA", "superbias": "S_SUPERB",
    "refpix": "S_REFPIX", "linearity": "S_LINEAR", "persistence": "S_PERSIS", "dark_current": "S_DARK",
    "jump": "S_JUMP", "ramp_fit": "S_RAMP", "firstframe": "S_FRSTFR", "lastframe": "S_LASTFR", "rscd": "S_RSCD",
}


class Detector1Params(BaseModel):
    """Parameters of the whole pipeline; each step's defaults follow the public pipeline."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    skip: frozenset[str] = Field(frozenset(), description="Steps to skip by name.")
    saturation: SaturationParams = SaturationParams()
    refpix: RefpixParams = RefpixParams()
    persistence: PersistenceParams = PersistenceParams()
    firstframe: FirstFrameParams = FirstFrameParams()
    lastframe: LastFrameParams = LastFrameParams()
    rscd: RscdParams = RscdParams()
    jump: JumpParams = JumpParams()
    ramp_fit: RampFitParams = RampFitParams()
    save_ramp: bool = Field(False, description="Also return the fitted-ready ramp (_ramp).")
    save_trapsfilled: bool = Field(False, description="Also return the persistence trap state (_trapsfilled).")


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
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Detector1Output:
    """What the pipeline made. ``rate`` is None when ramp fitting could not run (then
    ``ramp`` holds the calibrated ramp); ``rateints`` only when NINTS > 1."""

    rate: FitsProduct | None
    rateints: FitsProduct | None
    ramp: FitsProduct | None
    trapsfilled: FitsProduct | None
    statuses: dict[str, str]
    references: dict[str, str]
    notes: tuple[str, ...]


def step_sequence(instrument: str, exp_type: str) -> tuple[str, ...]:
    """Steps in order: calwebb_detector1 for science, calwebb_dark (up to, not including,
    dark_current) for darks."""
    steps = MIR_STEPS if instrument.upper() == "MIRI" else NIR_STEPS
    if exp_type.upper() in DARK_EXP_TYPES:
        steps = steps[: steps.index("dark_current")]
    return steps


Refs = Mapping[str, LoadedReference | None]


def _need(refs: Refs, *types: str) -> list[LoadedReference] | str:
    missing = [t for t in types if refs.get(t) is None]
    if missing:
        return f"no {' or '.join(missing)} reference"
    return [refs[t] for t in types]


# Each step: (state, refs, params) -> None when COMPLETE, else the reason it was skipped.
def _group_scale(s: RampState, refs: Refs, p: Detector1Params) -> str | None:
    r = scale_groups(s.data, nframes=int(s.keywords["NFRAMES"]), frame_divisor=s.keywords.get("FRMDIVSR"),
                     out=s.data)
    s.data = r.data
    return None if r.applied else "FRMDIVSR equals NFRAMES"


def _dq_init(s: RampState, refs: Refs, p: Detector1Params) -> str | None:
    got = _need(refs, "mask")
    if isinstance(got, str):
        return got
    r = initialize_dq(s.pixeldq, s.groupdq, got[0].get("DQ").astype(np.uint32), groupdq_out=s.groupdq)
    s.pixeldq, s.groupdq = r.pixeldq, r.groupdq
    return None


def _saturation(s: RampState, refs: Refs, p: Detector1Params) -> str | None:
    got = _need(refs, "saturation")
    if isinstance(got, str):
        return got
    ref = got[0]
    r = flag_saturation(s.data, s.groupdq, s.pixeldq, ref.get("SCI"), ref.get("DQ"),
                        n_pix_grow_sat=p.saturation.n_pix_grow_sat, groupdq_out=s.groupdq)
    s.groupdq, s.pixeldq = r.groupdq, r.pixeldq
    return None


def _superbias(s: RampState, refs: Refs, p: Detector1Params) -> str | None:
    got = _need(refs, "superbias")
    if isinstance(got, str):
        return got
    r = subtract_superbias(s.data, s.pixeldq, got[0].get("SCI"), got[0].get("DQ"), out=s.data)
    s.data, s.pixeldq = r.data, r.pixeldq
    return None


def _refpix(s: RampState, refs: Refs, p: Detector1Params) -> str | None:
    kw = s.keywords
    common = dict(xstart=int(kw["SUBSTRT1"]), ystart=int(kw["SUBSTRT2"]))
    if kw["INSTRUME"] == "MIRI":
        r = correct_miri_refpix(s.data, s.pixeldq, odd_even_rows=p.refpix.odd_even_rows, out=s.data, **common)
    else:
        r = correct_nir_refpix(
            s.data, s.pixeldq, noutputs=int(kw.get("NOUTPUTS") or 4),
            odd_even_columns=p.refpix.odd_even_columns, use_side_ref_pixels=p.refpix.use_side_ref_pixels,
            side_smoothing_length=p.refpix.side_smoothing_length, side_gain=p.refpix.side_gain, out=s.data,
            **common,
        )
    s.data = r.data
    if not (r.top_bottom_applied or r.side_applied):
        return r.note or "the readout window holds no reference pixels"
    if r.note:
        s.notes.append(f"refpix: {r.note}")
    return None


def _linearity(s: RampState, refs: Refs, p: Detector1Params) -> str | None:
    got = _need(refs, "linearity")
    if isinstance(got, str):
        return got
    r = correct_linearity(s.data, s.groupdq, s.pixeldq, got[0].get("COEFFS"), got[0].get("DQ"), out=s.data)
    s.data, s.pixeldq = r.data, r.pixeldq
    return None


def _persistence(s: RampState, refs: Refs, p: Detector1Params) -> str | None:
    pp = p.persistence
    r = correct_persistence(s.data, s.groupdq, s.pixeldq, s.trapsfilled_in, group_time=float(s.keywords["TGROUP"]),
                            time_since_previous=s.time_since_previous, tau=pp.tau, fill_fraction=pp.fill_fraction, trap_capacity=pp.trap_capacity,
                            flag_pers_cutoff=pp.flag_pers_cutoff, out=s.data)
    s.data, s.pixeldq, s.trapsfilled = r.data, r.pixeldq, r.trapsfilled
    return None if r.applied else "no trap state from a previous exposure; trap state recorded for the next"


def _dark_current(s: RampState, refs: Refs, p: Detector1Params) -> str | None:
    got = _need(refs, "dark")
    if isinstance(got, str):
        return got
    ref = got[0]
    r = subtract_dark(s.data, s.pixeldq, ref.get("SCI"), ref.get("DQ"), nframes=int(s.keywords["NFRAMES"]),
                      groupgap=int(s.keywords["GROUPGAP"]), out=s.data)
    s.data, s.pixeldq = r.data, r.pixeldq
    if r.n_frames_extrapolated:
        s.notes.append(f"dark_current: {r.n_frames_extrapolated} frames extrapolated past the dark reference")
    return None


def _firstframe(s: RampState, refs: Refs, p: Detector1Params) -> str | None:
    if p.firstframe.skip:
        return "skipped by default (deprecated step)"
    r = flag_first_frame(s.groupdq)
    s.groupdq = r.groupdq
    return None if r.applied else "NGROUPS <= 3"


def _lastframe(s: RampState, refs: Refs, p: Detector1Params) -> str | None:
    if p.lastframe.skip:
        return "skipped by parameter"
    r = flag_last_frame(s.groupdq)
    s.groupdq = r.groupdq
    return None if r.applied else "NGROUPS <= 2"


def _rscd(s: RampState, refs: Refs, p: Detector1Params) -> str | None:
    r = correct_rscd(s.data, s.groupdq, scale=p.rscd.scale, tau_groups=p.rscd.tau_groups)
    s.data = r.data
    return None if r.applied else "no correction for this exposure (first integration only, or scale 0)"


def _jump(s: RampState, refs: Refs, p: Detector1Params) -> str | None:
    got = _need(refs, "gain", "readnoise")
    if isinstance(got, str):
        return got
    gain, rn = got[0].get("SCI"), got[1].get("SCI")
    r = detect_jumps(s.data, s.groupdq, s.pixeldq, gain, rn, nframes=int(s.keywords["NFRAMES"]),
                     groupdq_out=s.groupdq, **p.jump.model_dump())
    s.groupdq, s.pixeldq = r.groupdq, r.pixeldq
    if r.skipped:
        return r.note or "too few groups"
    s.notes.append(f"jump: {r.n_jumps} jumps, {r.n_neighbor_flags} neighbour flags")
    return None


STEPS: dict[str, Callable[[RampState, Refs, Detector1Params], str | None]] = {
    "group_scale": _group_scale, "dq_init": _dq_init, "saturation": _saturation, "superbias": _superbias,
    "refpix": _refpix, "linearity": _linearity, "persistence": _persistence, "dark_current": _dark_current,
    "firstframe": _firstframe, "lastframe": _lastframe, "rscd": _rscd, "jump": _jump,
}


def run_detector1(
    uncal: FitsProduct,
    refs: Refs,
    *,
    params: Detector1Params | None = None,
    context: str | None = None,
    software_version: str,
    created: str,
    trapsfilled: np.ndarray | None = None,
    time_since_previous: float = 0.0,
    step_hook: Callable[[str], AbstractContextManager] | None = None,
) -> Detector1Output:
    """Calibrate one ``_uncal`` (or one segment of it).

    Parameters
    ----------
    uncal : FitsProduct
        As read by :func:`shared.datamodels.read_product`; SCI uint16 (nints, ngroups, ny, nx),
        and GROUPDQ when ingest flagged missing rows.
    refs : mapping
        Reference type -> loaded reference (cut to the window) or None when none applies.
    context : str
        Name of the reference context the references came from (CRDS_CTX).
    created : str
        DATE of the outputs (ISO); passed in so the same input gives the same bytes.
    trapsfilled : ndarray, optional
        Trap state left by the previous exposure of this detector (persistence).
    time_since_previous : float
        Seconds from the end of that exposure to the start of this one.
    step_hook : callable, optional
        ``step_hook(step_name)`` returns a context manager entered around each step (the
        benchmark measures time and memory per step with it).
    """
    hook = step_hook or (lambda name: nullcontext())
    p = params or Detector1Params()
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
    steps = step_sequence(kw["INSTRUME"], kw["EXP_TYPE"])
    statuses: dict[str, str] = {}
    for name in steps:
        if name == "ramp_fit":
            continue
        with hook(name):
            reason = "skipped by parameter" if name in p.skip else STEPS[name](state, refs, p)
        statuses[name] = "COMPLETE" if reason is None else "SKIPPED"
        if reason is not None:
            # A missing reference deserves attention; a step with nothing to do does not.
            level = logging.WARNING if "reference" in reason else logging.INFO
            log.log(level, "%s: %s skipped: %s", kw.get("FILENAME"), name, reason)
            state.notes.append(f"{name} skipped: {reason}")

    fit = None
    if "ramp_fit" in steps:
        with hook("ramp_fit"):
            fit, reason = _ramp_fit(state, refs, p)
        statuses["ramp_fit"] = "COMPLETE" if fit is not None else "SKIPPED"
        if fit is None:
            log.warning("%s: ramp_fit skipped: %s", kw.get("FILENAME"), reason)
            state.notes.append(f"ramp_fit skipped: {reason}")

    used = {t: r.filename for t, r in refs.items() if r is not None}
    header = dict(kw)
    header.update(DATE=created, CAL_VER=software_version, CAL_VCS="RELEASE", CRDS_CTX=context or "N/A",
                  CRDS_VER=software_version)
    header.update({STATUS_KEYWORDS[name]: status for name, status in statuses.items()})
    for reftype, keyword in REFTYPE_KEYWORDS.items():
        header[keyword] = f"crds://{used[reftype]}" if reftype in used else "N/A"

    rate = rateints = ramp = traps = None
    if fit is not None:
        rate = _image_product(header, fit.rate, fit.err, fit.dq, fit.var_poisson, fit.var_rnoise)
        if int(kw["NINTS"]) > 1:
            rateints = _cube_product(header, fit, uncal.tables.get("INT_TIMES"))
    if p.save_ramp or fit is None:
        ramp = FitsProduct(
            model_type="RampModel", keywords={**header, "BUNIT": "DN"},
            images={"SCI": state.data, "PIXELDQ": state.pixeldq, "GROUPDQ": state.groupdq},
            tables={k: v for k, v in uncal.tables.items() if k in ("GROUP", "INT_TIMES")},
        )
    if p.save_trapsfilled and state.trapsfilled is not None:
        traps = FitsProduct(model_type="TrapsFilledModel", keywords=dict(header),
                            images={"SCI": state.trapsfilled[None].astype(np.float32)})
    return Detector1Output(rate, rateints, ramp, traps, statuses, used, tuple(state.notes))


def _ramp_fit(state: RampState, refs: Refs, p: Detector1Params):
    """(fit result, None) or (None, why it could not run)."""
    if "ramp_fit" in p.skip:
        return None, "skipped by parameter"
    got = _need(refs, "gain", "readnoise")
    if isinstance(got, str):
        return None, got
    dark = refs.get("dark")
    kw = state.keywords
    fit = fit_ramps(state.data, state.groupdq, state.pixeldq, got[0].get("SCI"), got[1].get("SCI"),
                    group_time=float(kw["TGROUP"]), nframes=int(kw["NFRAMES"]),
                    average_dark_current=dark.get("AVDRKCUR") if dark is not None else None,
                    suppress_one_group=p.ramp_fit.suppress_one_group)
    return fit, None


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


def _cube_product(header: dict, fit, int_times) -> FitsProduct:
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

