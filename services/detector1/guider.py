"""calwebb_guider: a guide-star ``_uncal`` (GuiderRawModel) in, its ``_cal`` (GuiderCalModel) out.

Declared in :data:`GUIDER` over pure kernels, run by the one runner of :mod:`shared.pipeline`
like calwebb_detector1 beside it; no I/O. The steps, as the public pipeline's:

- **dq_init** (MASK): the mask's flags ORed into DQ (kernel ``steps.dq_init``);
- **guider_cds** (GAIN, READNOISE): the count rate of each integration by correlated
  double sampling, per guiding mode (``steps.guider_cds``: ID gives one plane, the minimum
  of its integrations' differences; ACQ1/ACQ2/TRACK/FINEGUIDE one plane per integration);
- **flat_field** (FLAT): the rate divided by the flat, its variance carried
  (:func:`shared.flatfield.apply_flat`; the public step keeps only the flat's variance in
  ERR for guider data, this one keeps the CDS variances too).

The ``_cal`` carries the raw product's keywords and tables (planned and flight reference
stars, pointing, centroids), BUNIT DN/s, the S_* keyword of every step, the R_* keyword of
every reference type and CAL_VER/CRDS_CTX. Without a count rate (guider_cds SKIPPED: no
GAIN or READNOISE) there is no ``_cal``: the run says why.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from services.detector1.steps.dq_init import initialize_dq
from services.detector1.steps.guider_cds import RATE_MODES, GuiderRate, guider_count_rate
from shared.datamodels import FitsProduct
from shared.errors import InputError
from shared.flatfield import apply_flat
from shared.naming import BadNameError, output_name, parse_guidestar
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
from shared.refdata import Reference, ReferenceProvider, load_references

__all__ = ["GUIDER", "GuiderOutput", "GuiderState", "calibrate_guider", "check_guider_raw", "run_guider"]

FGS = frozenset({"FGS"})
_TABLES = ("Planned Reference Stars", "Flight Reference Stars", "Pointing", "FGS Centroid Packet",
           "Track subarray table")


@dataclass
class GuiderState:
    """What the steps pass along: the raw reads, the pixel DQ, the keywords, and once
    guider_cds ran the count rate (its planes, variances and ERR, DN/s)."""

    data: np.ndarray  # float32 (nints, ngroups, ny, nx), DN
    dq: np.ndarray  # uint32 (ny, nx)
    keywords: dict
    rate: np.ndarray | None = None  # float32 (nplanes, ny, nx)
    var_poisson: np.ndarray | None = None
    var_rnoise: np.ndarray | None = None
    err: np.ndarray | None = None


def _dq_init(s: GuiderState, a: StepArgs) -> Skip | None:
    ny, nx = s.dq.shape
    r = initialize_dq(s.dq, np.zeros((1, 1, ny, nx), np.uint8), a.refs["mask"].get("DQ").astype(np.uint32))
    s.dq = r.pixeldq
    return None


def _guider_cds(s: GuiderState, a: StepArgs) -> Skip | None:
    r: GuiderRate = guider_count_rate(s.data, str(s.keywords["EXP_TYPE"]), float(s.keywords["TGROUP"]),
                                      a.refs["gain"].get("SCI"), a.refs["readnoise"].get("SCI"))
    s.rate, s.var_poisson, s.var_rnoise, s.err = r.rate, r.var_poisson, r.var_rnoise, r.err
    a.note(f"guider_cds: {r.rate.shape[0]} rate plane(s) over {r.interval:.6g} s")
    return None


def _flat_field(s: GuiderState, a: StepArgs) -> Skip | None:
    if s.rate is None:
        return Skip("no count rate: guider_cds did not run")
    ref = a.refs["flat"]
    r = apply_flat(s.rate, s.dq, s.var_poisson, s.var_rnoise, ref.get("SCI").astype(np.float32), ref.get("DQ"),
                   ref.get("ERR"))
    s.rate, s.dq, s.var_poisson, s.var_rnoise, s.err = r.sci, r.dq, r.var_poisson, r.var_rnoise, r.err
    if r.n_no_flat:
        a.note(f"flat_field: {r.n_no_flat} pixel(s) without a flat (NO_FLAT_FIELD)")
    return None


GUIDER: Pipeline[GuiderState] = Pipeline(
    name="guider",
    title="calwebb_guider (FGS guide-star products)",
    steps=(
        Step("dq_init", "S_DQINIT", _dq_init, reftypes=("mask",), instruments=FGS, exp_types=RATE_MODES),
        Step("guider_cds", "S_GUICDS", _guider_cds, reftypes=("gain", "readnoise"), instruments=FGS,
             exp_types=RATE_MODES),
        Step("flat_field", "S_FLAT", _flat_field, reftypes=("flat",), instruments=FGS, exp_types=RATE_MODES),
    ),
)


@dataclass(frozen=True)
class GuiderOutput(Recorded):
    """What calwebb_guider made: ``cal`` (None when guider_cds did not run), and the run's record."""

    cal: FitsProduct | None
    record: RunRecord
    context: str

    def outputs(self, input_name: str) -> list[Output]:
        """The ``_cal``, named after the raw product (``..._gs-acq1_<time>_uncal.fits`` ->
        ``..._gs-acq1_<time>_cal.fits``), AUXILIARY as every guide-star product."""
        if self.cal is None:
            return []
        filename = output_name(input_name, "cal")
        try:
            suffix = parse_guidestar(filename).kind
        except BadNameError:  # a local file not named by the convention
            suffix = "cal"
        return [Output(filename, suffix, self.cal, "AUXILIARY")]


def check_guider_raw(raw: FitsProduct, label: str) -> None:
    """Refuse, with a reason a person can act on, a product calwebb_guider cannot read:
    not FGS, not a guide-star mode, SCI not 4-D with at least 2 reads, a DQ of another
    window, no usable TGROUP."""
    kw = raw.keywords
    problems = []
    if str(kw.get("INSTRUME", "")).upper() != "FGS":
        problems.append(f"INSTRUME is {kw.get('INSTRUME')!r}, not FGS")
    if str(kw.get("EXP_TYPE", "")).upper() not in RATE_MODES:
        problems.append(f"EXP_TYPE {kw.get('EXP_TYPE')!r} is not a guide-star mode ({', '.join(sorted(RATE_MODES))})")
    sci = raw.images.get("SCI")
    if sci is None:
        problems.append("no SCI array")
    elif sci.ndim != 4 or sci.shape[1] < 2:
        problems.append(f"SCI has shape {sci.shape}; a guide-star product has (nints, ngroups >= 2, ny, nx)")
    else:
        dq = raw.images.get("DQ")
        if dq is not None and dq.shape != sci.shape[-2:]:
            problems.append(f"DQ has shape {dq.shape}, SCI a {sci.shape[-1]}x{sci.shape[-2]} window")
    try:
        tgroup = float(kw.get("TGROUP"))
        if not (np.isfinite(tgroup) and tgroup > 0):
            raise ValueError
    except (TypeError, ValueError):
        problems.append(f"TGROUP {kw.get('TGROUP')!r} is not a positive read-to-read time")
    if problems:
        raise InputError(f"{label}: cannot run calwebb_guider: " + "; ".join(problems))


def run_guider(
    raw: FitsProduct,
    refs: Mapping[str, Reference | None],
    *,
    params: PipelineParams | None = None,
    context: str | None = None,
    software_version: str,
    created: str,
    label: str | None = None,
) -> GuiderOutput:
    """Calibrate one guide-star product with loaded references (cut to its window).

    Raises
    ------
    InputError
        The product is not a guide-star product calwebb_guider can read (see
        :func:`check_guider_raw`).
    """
    kw = dict(raw.keywords)
    label = label or str(kw.get("FILENAME") or "input")
    check_guider_raw(raw, label)
    sci = raw.images["SCI"]
    dq = raw.images.get("DQ")
    state = GuiderState(data=np.asarray(sci, np.float32), keywords=kw,
                        dq=np.zeros(sci.shape[-2:], np.uint32) if dq is None else dq.astype(np.uint32))
    record = GUIDER.run(state, kw, {t: r for t, r in refs.items() if r is not None}, params, label=label)
    if state.rate is None:
        return GuiderOutput(None, record, context or "N/A")
    header = {**kw, **provenance_cards(software_version=software_version, context=context, created=created),
              **record.status_cards(), **record.reference_cards(), "BUNIT": "DN/s"}
    # The raw product's tables carried over, as the public step does (EXTNAMEs read back
    # upper-case: matched without case, written with the public names).
    tables = {name.upper(): name for name in _TABLES}
    cal = FitsProduct(model_type="GuiderCalModel", keywords=header,
                      images={"SCI": state.rate, "ERR": state.err, "DQ": state.dq.astype(np.uint32)})
    for extname, table in raw.tables.items():
        name = tables.get(extname.upper())
        if name is not None and len(table):
            cal.tables[name] = table
            if raw.hdu_keywords.get(extname):
                cal.hdu_keywords[name] = dict(raw.hdu_keywords[extname])
    return GuiderOutput(cal, record, context or "N/A")


def calibrate_guider(
    raw: FitsProduct,
    provider: ReferenceProvider,
    *,
    params: PipelineParams | None = None,
    software_version: str,
    created: str,
    label: str | None = None,
) -> GuiderOutput:
    """Choose and read the references of this product's steps from ``provider`` (the
    catalog for a worker, local files for ``dms run``) and run :func:`run_guider`."""
    check_guider_raw(raw, label or str(raw.keywords.get("FILENAME") or "input"))
    refs = load_references(provider, raw.keywords, GUIDER.reftypes(raw.keywords))
    return run_guider(raw, refs.found, params=params, context=refs.context, software_version=software_version,
                      created=created, label=label)
