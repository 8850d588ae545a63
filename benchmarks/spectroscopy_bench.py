"""calwebb_spec2 on a full-frame MIRI LRS slit exposure (MIRIMAGE 1032 x 1024), one core.

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
"""

from __future__ import annotations

import copy
import json
import sys
import time
from pathlib import Path

import yaml

from benchmarks._child import pin_to_one_core, run_in_child
from benchmarks._steps import StepProbe, best, measure_runs, print_steps

INPUT_DIR = Path("bench-results") / "spectroscopy-input"
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "miri_lrs.yaml"
REPEAT = 3
SEED = 21
NGROUPS = 10
CREATED = "2026-01-01T00:00:00"


def description() -> dict:
    desc = copy.deepcopy(yaml.safe_load(EXAMPLE.read_text()))
    desc["observations"][0]["ngroups"] = NGROUPS
    return desc


def _rates(directory: Path) -> list[Path]:
    return sorted(directory.glob("*_rate.fits"))


def _prepare_input(directory: Path) -> Path:
    """Simulate, ingest and detector1 once; the directory holding the two ``_rate`` and
    ``sim/refs``."""
    stamp = directory / "input.json"
    wanted = {"description": description(), "seed": SEED}
    if stamp.exists() and json.loads(stamp.read_text()) == wanted and len(_rates(directory)) == 2:
        print(f"reusing the simulated exposures in {directory}", flush=True)
        return directory

    import shutil
    from datetime import UTC, datetime

    from services.detector1.pipeline import DETECTOR1, run_detector1
    from services.ingest.pipeline import ingest_telemetry
    from services.simulator import simulate
    from shared.datamodels import write_product
    from shared.refdata import LocalReferences, load_references

    stamp.unlink(missing_ok=True)
    for stale in _rates(directory):
        stale.unlink()
    print(f"simulating the MIRI LRS example (two nods, full frame, {NGROUPS} groups) with references...", flush=True)
    t0 = time.perf_counter()
    sim = simulate(description(), directory / "sim", seed=SEED)
    refs_dir = directory / "sim" / "refs"
    for telemetry in sim.telemetry_paths:
        out = ingest_telemetry(telemetry.read_bytes(), lambda program: sim.plan,
                               created=datetime(2026, 1, 1, tzinfo=UTC), software_version="bench",
                               segment_bytes=2_000_000_000)
        for uncal in out.files:
            if not uncal.name.suffix == "uncal" or "mirimage" not in uncal.name.format():
                continue
            kw = uncal.product.keywords
            refs = load_references(LocalReferences(refs_dir=refs_dir), kw, DETECTOR1.reftypes(kw)).found
            rate = run_detector1(uncal.product, refs, context="bench", software_version="bench",
                                 created=CREATED).rate
            write_product(directory / uncal.name.with_suffix("rate").format(), rate)
    for bulky in ("telemetry",):
        shutil.rmtree(directory / "sim" / bulky, ignore_errors=True)
    stamp.write_text(json.dumps(wanted))
    print(f"  inputs ready in {time.perf_counter() - t0:.1f} s", flush=True)
    return directory


def run() -> dict:
    directory = _prepare_input(INPUT_DIR).resolve()
    print("measuring spec2 in a child process pinned to one core...", flush=True)
    result = {"threads": "1 core (affinity), OMP/OPENBLAS/MKL threads 1", "repeat": REPEAT,
              "spec2": run_in_child("benchmarks.spectroscopy_bench", "spec2", str(directory))}
    _print(result)
    return result


def _print(r: dict) -> None:
    s = r["spec2"]
    print(f"\nspectroscopy benchmark: MIRI LRS slit, full frame {s['shape'][1]}x{s['shape'][0]}, {r['threads']}, "
          f"best of {r['repeat']} timing runs, one traced run")
    print_steps(f"spec2 on one nod with the other as background ({s['x1d_elements']} spectral elements, "
                f"s2d {s['s2d_shape']})", s)


def _measure_spec2(directory: Path) -> dict:
    from services.stage2.spec2 import SPEC2, run_spec2
    from shared.datamodels import read_product
    from shared.refdata import LocalReferences, load_references

    io: dict[str, float] = {}
    first, second = _rates(directory)
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
    r["x1d_elements"] = len(out.x1d.tables["EXTRACT1D"])
    return r


def _measure(part: str, directory: Path, result_path: Path) -> None:
    pin_to_one_core()
    import logging

    for name in ("services", "shared.pipeline", "shared.refdata"):
        logging.getLogger(name).setLevel(logging.ERROR)
    measure = {"spec2": _measure_spec2}[part]
    result_path.write_text(json.dumps(measure(directory), indent=2))


if __name__ == "__main__":
    _measure(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]))
