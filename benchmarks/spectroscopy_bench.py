"""calwebb_spec2 on a full-frame MIRI LRS slit exposure (MIRIMAGE 1032 x 1024) and calwebb_spec3
on the two nods, one core.

No targets: figures only. The input is ``examples/miri_lrs.yaml`` with 10 groups (two nods
2" apart along the slit), each exposure taken through ingest and ``run_detector1`` to its
``_rate``; cached in ``bench-results/spectroscopy-input/`` (reused while the description
and seed are unchanged).

Measured in a child process pinned to one CPU with OMP/OpenBLAS/MKL threads set to 1
(benchmarks._child): ``run_spec2`` on the first nod with the second as its background,
with the simulator's references (SPECWCS, DISTORTION, FLAT, PATHLOSS, PHOTOM), every step
(bkg_subtract, assign_wcs, srctype, flat_field, pathloss, photom, resample_spec,
extract_1d). Per-step wall time is the best of 3 runs, per-step memory the traced peak of
one run above what the step started with (benchmarks._steps); max RSS after the first run.

Side by side, on the same two ``_rate`` and references, the public pipeline: jwst's
``calwebb_spec2`` on a spec2 association of the two nods, offline (benchmarks._jwst, as
tests/test_public_pipeline_lrs.py runs it, with an EXTRACT1D holding our aperture), in a
child pinned to the same core. Its time is what its log stamps between the pipeline's
"running" and "done" (reading the inputs and references, every step, writing its
products; not the interpreter and jwst's import); its steps likewise. Ours is measured the
same way: ``calibrate`` (choosing and reading the references) on the two files read from
disk, then its three products written, in a fresh child; the ratio is jwst / ours.

calwebb_spec3 likewise, on the two nods' ``_cal`` as our spec2 makes them (each with the
other as background; made once per run, not timed): ``run_spec3`` per step (outlier_detection,
resample_spec, extract_1d, combine_1d; best of 3, one traced run), then as a pipeline is run
(the two ``_cal`` read, SPECWCS chosen and read, the run, the ``_crf``, ``_s2d`` and ``_x1d``
written) beside jwst's ``calwebb_spec3`` on a spec3 association of the same two files
(``benchmarks._jwst.LRS_SPEC3_SKIP``), timed as above.
"""

from __future__ import annotations

import copy
import json
import sys
import tempfile
import time
from pathlib import Path

import yaml

from benchmarks._child import pin_to_one_core, run_in_child
from benchmarks._rates import CREATED, rates, simulated_rates
from benchmarks._spec3 import measure_spec3, measure_spec3_whole
from benchmarks._steps import StepProbe, best, measure_runs, print_steps

INPUT_DIR = Path("bench-results") / "spectroscopy-input"
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "miri_lrs.yaml"
REPEAT = 3
SEED = 21
NGROUPS = 10


def description() -> dict:
    desc = copy.deepcopy(yaml.safe_load(EXAMPLE.read_text()))
    desc["observations"][0]["ngroups"] = NGROUPS
    return desc


def _prepare_input(directory: Path) -> Path:
    return simulated_rates(directory, description(), SEED, "mirimage", 2,
                           f"the MIRI LRS example (two nods, full frame, {NGROUPS} groups)")


def run() -> dict:
    directory = _prepare_input(INPUT_DIR).resolve()
    print("measuring spec2 in a child process pinned to one core...", flush=True)
    result = {"threads": "1 core (affinity), OMP/OPENBLAS/MKL threads 1", "repeat": REPEAT,
              "spec2": run_in_child("benchmarks.spectroscopy_bench", "spec2", str(directory)),
              "spec2_whole": run_in_child("benchmarks.spectroscopy_bench", "whole", str(directory))}
    try:
        result["jwst"] = _jwst_spec2(directory)
        result["ratio_jwst_over_ours"] = result["jwst"]["Spec2Pipeline"] / result["spec2_whole"]["seconds"]
    except Exception as exc:  # jwst is a bench extra; say why it is missing
        result["jwst"] = {"error": f"{type(exc).__name__}: {exc}"}
    _make_cals(directory)
    print("measuring spec3 in a child process pinned to one core...", flush=True)
    result["spec3"] = run_in_child("benchmarks.spectroscopy_bench", "spec3", str(directory))
    result["spec3_whole"] = run_in_child("benchmarks.spectroscopy_bench", "spec3-whole", str(directory))
    try:
        result["jwst_spec3"] = _jwst_spec3(directory)
        result["spec3_ratio_jwst_over_ours"] = (result["jwst_spec3"]["Spec3Pipeline"]
                                                / result["spec3_whole"]["seconds"])
    except Exception as exc:  # as above
        result["jwst_spec3"] = {"error": f"{type(exc).__name__}: {exc}"}
    _print(result)
    return result


def _cals(directory: Path) -> list[Path]:
    return sorted((directory / "cal").glob("*_cal.fits"))


def _make_cals(directory: Path) -> None:
    """The two nods' ``_cal`` as our spec2 makes them (each with the other as background)."""
    from services.stage2.spec2 import calibrate
    from shared.datamodels import read_product, write_output
    from shared.refdata import LocalReferences

    out_dir = directory / "cal"
    out_dir.mkdir(exist_ok=True)
    for stale in _cals(directory):
        stale.unlink()
    first, second = rates(directory)
    for science, background in ((first, second), (second, first)):
        out = calibrate(read_product(science), LocalReferences(refs_dir=directory / "sim" / "refs"),
                        backgrounds=[read_product(background)], software_version="bench", created=CREATED)
        write_output(out_dir / science.name.replace("_rate", "_cal"), out.cal)


def _spec3_asn(directory: Path, path: Path) -> Path:
    cals = _cals(directory)
    path.write_text(json.dumps({
        "asn_type": "spec3", "asn_id": "o001", "asn_pool": "bench", "asn_rule": "candidate_Asn_Lv3SpectralTarget",
        "program": "03457", "products": [{"name": "jw03457-o001_t001_miri_p750l", "members": [
            {"expname": c.name, "exptype": "science"} for c in cals]}]}))
    return path


def _jwst_pinned(pipeline: str, asn: Path, steps: dict, tmp: Path) -> dict[str, float]:
    """jwst's ``pipeline`` on ``asn``, offline, in a child pinned to one core: the seconds
    its log gives the pipeline and each step that ran."""
    import os

    from benchmarks._child import SINGLE_THREAD_ENV
    from benchmarks._jwst import run_pipeline, step_logged_seconds

    print(f"running jwst's {pipeline} on the same files, pinned to one core...", flush=True)
    before = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    try:
        if before is not None:  # the child inherits it
            os.sched_setaffinity(0, {min(before)})
        log = tmp / "jwst.log"
        run_pipeline(pipeline, [asn], steps, tmp / "out", tmp / "crds", log, env={**os.environ, **SINGLE_THREAD_ENV})
    finally:
        if before is not None:
            os.sched_setaffinity(0, before)
    return step_logged_seconds(log.read_text(errors="replace"))


def _jwst_spec3(directory: Path) -> dict[str, float]:
    """jwst's calwebb_spec3 on a spec3 association of our two ``_cal``."""
    import tempfile

    from benchmarks._jwst import (
        LRS_SPEC3_NOT_APPLICABLE,
        LRS_SPEC3_SKIP,
        lrs_extract1d_reference,
        step_overrides,
    )
    from shared.spectra.extract import DEFAULT_WIDTH

    with tempfile.TemporaryDirectory(prefix="dms-bench-jwst-") as tmp:
        tmp = Path(tmp)
        for cal in _cals(directory):
            (tmp / cal.name).symlink_to(cal)
        refs = {"extract1d": lrs_extract1d_reference(tmp / "extract1d.json", DEFAULT_WIDTH["MIR_LRS-FIXEDSLIT"])}
        steps, _ = step_overrides("calwebb_spec3", refs, LRS_SPEC3_SKIP, LRS_SPEC3_NOT_APPLICABLE)
        return _jwst_pinned("calwebb_spec3", _spec3_asn(directory, tmp / "bench_spec3_asn.json"), steps, tmp)


def _jwst_spec2(directory: Path) -> dict[str, float]:
    """jwst's calwebb_spec2 on a spec2 association of the two nods, offline, pinned to one
    core: the seconds its log gives the pipeline and each step that ran."""
    import tempfile

    from benchmarks._jwst import (
        LRS_SPEC2_NOT_APPLICABLE,
        LRS_SPEC2_SKIP,
        lrs_extract1d_reference,
        step_overrides,
    )
    from services.stage2.spec2 import SPEC2
    from shared.datamodels import read_product
    from shared.refdata import LocalReferences
    from shared.spectra.extract import DEFAULT_WIDTH

    first, second = rates(directory)
    with tempfile.TemporaryDirectory(prefix="dms-bench-jwst-") as tmp:
        tmp = Path(tmp)
        kw = dict(read_product(first).keywords)
        chosen, _ = LocalReferences(refs_dir=directory / "sim" / "refs").choose(kw, list(SPEC2.all_reftypes))
        refs = {t: c.path for t, c in chosen.items() if c.path is not None}
        refs["extract1d"] = lrs_extract1d_reference(tmp / "extract1d.json", DEFAULT_WIDTH["MIR_LRS-FIXEDSLIT"])
        for rate in (first, second):
            (tmp / rate.name).symlink_to(rate)
        asn = tmp / "bench_spec2_asn.json"
        asn.write_text(json.dumps({
            "asn_type": "spec2", "asn_id": "o001", "asn_pool": "bench", "asn_rule": "candidate_Asn_Lv2MIRLRSFixedSlitNod",
            "products": [{"name": first.name.removesuffix("_rate.fits"), "members": [
                {"expname": first.name, "exptype": "science"}, {"expname": second.name, "exptype": "background"}]}]}))
        steps, _ = step_overrides("calwebb_spec2", refs, LRS_SPEC2_SKIP, LRS_SPEC2_NOT_APPLICABLE)
        return _jwst_pinned("calwebb_spec2", asn, steps, tmp)


def _print(r: dict) -> None:
    s = r["spec2"]
    print(f"\nspectroscopy benchmark: MIRI LRS slit, full frame {s['shape'][1]}x{s['shape'][0]}, {r['threads']}, "
          f"best of {r['repeat']} timing runs, one traced run")
    print_steps(f"spec2 on one nod with the other as background ({s['x1d_elements']} spectral elements, "
                f"s2d {s['s2d_shape']})", s)
    w, j = r["spec2_whole"], r["jwst"]
    print(f"\nspec2 as a pipeline is run (a fresh process: references chosen and read, the run, the products "
          f"written): ours {w['seconds']:.2f} s")
    _print_beside("calwebb_spec2", "Spec2Pipeline", s, j, r.get("ratio_jwst_over_ours"))
    s3, w3, j3 = r["spec3"], r["spec3_whole"], r["jwst_spec3"]
    print()
    print_steps(f"spec3 on the two nods' _cal ({s3['x1d_elements']} spectral elements, s2d {s3['s2d_shape']})", s3)
    print(f"\nspec3 as a pipeline is run (a fresh process: the two _cal read, references chosen and read, the run, "
          f"the products written): ours {w3['seconds']:.2f} s")
    _print_beside("calwebb_spec3", "Spec3Pipeline", s3, j3, r.get("spec3_ratio_jwst_over_ours"))


def _print_beside(pipeline: str, logged: str, ours: dict, jwst: dict, ratio: float | None) -> None:
    if "error" in jwst:
        print(f"  jwst's {pipeline} not measured: {jwst['error']}")
        return
    print(f"  jwst's {pipeline} on the same files {jwst[logged]:.2f} s: jwst / ours {ratio:.1f}")
    print(f"  {'step':<18} {'ours s':>8} {'jwst s':>8}")
    for name, seconds in ours["seconds"]["steps"].items():
        print(f"  {name:<18} {seconds:>8.3f} {jwst.get(name, float('nan')):>8.3f}")


def _measure_spec2(directory: Path) -> dict:
    from services.stage2.spec2 import SPEC2, run_spec2
    from shared.datamodels import read_product
    from shared.refdata import LocalReferences, load_references

    io: dict[str, float] = {}
    first, second = rates(directory)
    io["read the two _rate"], (science, background) = best(lambda: (read_product(first), read_product(second)),
                                                           REPEAT)
    kw = science.keywords
    io["load references"], refs = best(lambda: load_references(
        LocalReferences(refs_dir=directory / "sim" / "refs"), kw, SPEC2.reftypes(kw)).found, 1)
    probe = StepProbe()
    r = measure_runs(lambda: run_spec2(science, refs, backgrounds=[background], context="bench",
                                       software_version="bench", created=CREATED, step_hook=probe), probe, REPEAT)
    out = r.pop("output")
    r["seconds"]["io"] = io
    r["statuses"] = dict(out.record.statuses)
    r["shape"] = list(science.images["SCI"].shape)
    r["s2d_shape"] = list(out.s2d.images["SCI"].shape)
    r["x1d_elements"] = len(out.x1d.spectra[0].table)
    return r


def _measure_whole(directory: Path) -> dict:
    """``calibrate`` on the two files read from disk, its products written: one cold run."""
    import tempfile

    from services.stage2.spec2 import calibrate
    from shared.datamodels import read_product, write_output
    from shared.refdata import LocalReferences

    first, second = rates(directory)
    t0 = time.perf_counter()
    out = calibrate(read_product(first), LocalReferences(refs_dir=directory / "sim" / "refs"),
                    backgrounds=[read_product(second)], software_version="bench", created=CREATED)
    with tempfile.TemporaryDirectory(prefix="dms-bench-spec2-") as tmp:
        for o in out.outputs(first.name):
            write_output(Path(tmp) / o.filename, o.content)
        seconds = time.perf_counter() - t0
    return {"seconds": seconds, "products": [o.suffix for o in out.outputs(first.name)]}


def _measure_spec3(directory: Path) -> dict:
    r, out = measure_spec3(_cals(directory), directory / "sim" / "refs", REPEAT)
    r["s2d_shape"] = list(out.spectra[0].s2d.images["SCI"].shape)
    r["x1d_elements"] = len(out.spectra[0].x1d.spectra[0].table)
    return r


def _measure_spec3_whole(directory: Path) -> dict:
    """The two ``_cal`` read, SPECWCS chosen and read, spec3 run, its products written: one
    cold run."""
    with tempfile.TemporaryDirectory(prefix="dms-bench-spec3-") as tmp:
        asn = json.loads(_spec3_asn(directory, Path(tmp) / "bench_spec3_asn.json").read_text())
    return measure_spec3_whole(_cals(directory), directory / "sim" / "refs", asn)


def _measure(part: str, directory: Path, result_path: Path) -> None:
    pin_to_one_core()
    import logging

    for name in ("services", "shared.pipeline", "shared.refdata"):
        logging.getLogger(name).setLevel(logging.ERROR)
    measure = {"spec2": _measure_spec2, "whole": _measure_whole, "spec3": _measure_spec3,
               "spec3-whole": _measure_spec3_whole}[part]
    result_path.write_text(json.dumps(measure(directory), indent=2))


if __name__ == "__main__":
    _measure(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]))
