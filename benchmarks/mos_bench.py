"""calwebb_spec2 on a full-frame NIRSpec MOS exposure (NRS1 2048 x 2048, PRISM/CLEAR) and
calwebb_spec3 on the three nods, one core.

No targets: figures only. The input is a MOS observation of a star field (``DESCRIPTION``:
40 sources planned, those of quadrants 1 and 3 on NRS1, 20 groups of NRSRAPID, the three
points of the 3-SHUTTER-SLITLET nod), each exposure taken through ingest and
``run_detector1`` to its ``_rate``; cached in ``bench-results/mos-input/`` (reused while the
description and seed are unchanged).

Measured in a child process pinned to one CPU with OMP/OpenBLAS/MKL threads set to 1
(benchmarks._child): ``run_spec2`` on the first nod with the other two as its background
and the MSA metadata file, with the simulator's references (SPECWCS, MSAOPER, DISTORTION,
FLAT, PATHLOSS, PHOTOM), every step (bkg_subtract, assign_wcs, msa_flagging, flat_field,
extract_2d, srctype, pathloss, photom, resample_spec, extract_1d). Per-step wall time is
the best of 3 runs, per-step memory the traced peak of one run above what the step
started with (benchmarks._steps); max RSS after the first run. Then as a pipeline is run:
``calibrate`` (choosing and reading the references) on the three files and the MSA
metadata read from disk, its three products written, in a fresh child.

spec3: the three nods' ``_cal`` as our spec2 makes them (each with the other two as
background; made once per run, not timed), ``run_spec3`` per step (outlier_detection,
resample_spec, extract_1d, combine_1d: each step runs once per source) as for spec2, then
as a pipeline is run: the three ``_cal`` read, SPECWCS chosen and read, spec3 run and its
products (three ``_crf``, an ``_s2d`` and ``_x1d`` per source) written, in a fresh child.

Not beside it: the public pipeline (its NIRSpec MOS WCS needs the instrument's optical
model, which is not simulated: docs/compatibility.md).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from benchmarks._child import pin_to_one_core, run_in_child
from benchmarks._rates import CREATED, rates, simulated_rates
from benchmarks._spec3 import measure_spec3, measure_spec3_whole
from benchmarks._steps import StepProbe, best, measure_runs, print_steps

INPUT_DIR = Path("bench-results") / "mos-input"
REPEAT = 3
SEED = 5
DESCRIPTION = {
    "program": 1357, "title": "MOS of a star field (benchmark)", "pi": "Ada Lovelace",
    "targets": [{"name": "FIELD", "ra": 53.16, "dec": -27.79}],
    "observations": [{"number": 1, "target": "FIELD", "instrument": "NIRSPEC", "exp_type": "NRS_MSASPEC",
                      "detectors": ["NRS1"], "filter": "CLEAR", "pupil": "PRISM", "readpatt": "NRSRAPID",
                      "ngroups": 20, "nints": 1, "msa_sources": 40, "dither": {"pattern": "3-SHUTTER-SLITLET"}}],
    "simulation": {"seed": SEED, "stars_per_window": 1500, "bright_stars_per_window": 1},
}



def _msa_file(directory: Path) -> Path:
    return next(directory.glob("*_msa.fits"))


def _prepare_input(directory: Path) -> Path:
    return simulated_rates(directory, DESCRIPTION, SEED, "nrs1", 3,
                           "a NIRSpec MOS observation (three nods, NRS1 full frame, 20 groups)")


def run() -> dict:
    directory = _prepare_input(INPUT_DIR).resolve()
    print("measuring MOS spec2 in a child process pinned to one core...", flush=True)
    result = {"threads": "1 core (affinity), OMP/OPENBLAS/MKL threads 1", "repeat": REPEAT,
              "spec2": run_in_child("benchmarks.mos_bench", "spec2", str(directory)),
              "spec2_whole": run_in_child("benchmarks.mos_bench", "whole", str(directory)),
              "jwst": "not run: the public NIRSpec MOS WCS needs the optical model, which is not simulated"}
    _make_cals(directory)
    print("measuring MOS spec3 in a child process pinned to one core...", flush=True)
    result["spec3"] = run_in_child("benchmarks.mos_bench", "spec3", str(directory))
    result["spec3_whole"] = run_in_child("benchmarks.mos_bench", "spec3-whole", str(directory))
    _print(result)
    return result


def _print(r: dict) -> None:
    s, w = r["spec2"], r["spec2_whole"]
    print(f"\nMOS benchmark: NIRSpec NRS1 full frame {s['shape'][1]}x{s['shape'][0]}, {r['threads']}, "
          f"best of {r['repeat']} timing runs, one traced run")
    print_steps(f"spec2 on one nod with the other two as background ({s['slitlets']} slitlets, "
                f"{s['x1d_elements']} spectral elements)", s)
    print(f"\nspec2 as a pipeline is run (a fresh process: the three _rate and the MSA metadata read, references "
          f"chosen and read, the run, the products written): {w['seconds']:.2f} s")
    s3, w3 = r["spec3"], r["spec3_whole"]
    print_steps(f"spec3 on the three nods' _cal ({s3['sources']} sources, {s3['x1d_elements']} spectral elements "
                "in their _x1d)", s3)
    print(f"\nspec3 as a pipeline is run (a fresh process: the three _cal read, SPECWCS chosen and read, the run, "
          f"{len(w3['products'])} products written): {w3['seconds']:.2f} s")
    print(f"  jwst beside them: {r['jwst']}")


def _inputs(directory: Path):
    from shared.datamodels import read_product
    from shared.datamodels.msa import read_msa_metadata

    first, *others = rates(directory)
    return read_product(first), [read_product(o) for o in others], read_msa_metadata(_msa_file(directory))


def _measure_spec2(directory: Path) -> dict:
    from services.stage2.spec2 import SPEC2, run_spec2
    from shared.refdata import LocalReferences, load_references

    io: dict[str, float] = {}
    io["read the three _rate and the MSA metadata"], (science, backgrounds, msa) = best(
        lambda: _inputs(directory), REPEAT)
    kw = science.keywords
    io["load references"], refs = best(lambda: load_references(
        LocalReferences(refs_dir=directory / "sim" / "refs"), kw, SPEC2.reftypes(kw)).found, 1)
    probe = StepProbe()
    r = measure_runs(lambda: run_spec2(science, refs, backgrounds=backgrounds, msa=msa, context="bench",
                                       software_version="bench", created=CREATED, step_hook=probe), probe, REPEAT)
    out = r.pop("output")
    r["seconds"]["io"] = io
    r["statuses"] = dict(out.record.statuses)
    r["shape"] = list(science.images["SCI"].shape)
    r["slitlets"] = len(out.cal.slits)
    r["x1d_elements"] = sum(len(s.table) for s in out.x1d.spectra)
    return r


def _measure_whole(directory: Path) -> dict:
    """``calibrate`` on the three files and the MSA metadata read from disk, its products
    written: one cold run."""
    import tempfile

    from services.stage2.spec2 import calibrate
    from shared.datamodels import write_output
    from shared.refdata import LocalReferences

    first = rates(directory)[0]
    t0 = time.perf_counter()
    science, backgrounds, msa = _inputs(directory)
    out = calibrate(science, LocalReferences(refs_dir=directory / "sim" / "refs"), backgrounds=backgrounds,
                    msa=msa, software_version="bench", created=CREATED)
    with tempfile.TemporaryDirectory(prefix="dms-bench-mos-") as tmp:
        for o in out.outputs(first.name):
            write_output(Path(tmp) / o.filename, o.content)
        seconds = time.perf_counter() - t0
    return {"seconds": seconds, "products": [o.suffix for o in out.outputs(first.name)]}


def _cals(directory: Path) -> list[Path]:
    return sorted((directory / "cal").glob("*_cal.fits"))


def _make_cals(directory: Path) -> None:
    """The three nods' ``_cal`` as our spec2 makes them (each with the other two as
    background)."""
    from services.stage2.spec2 import calibrate
    from shared.datamodels import read_product, write_output
    from shared.datamodels.msa import read_msa_metadata
    from shared.refdata import LocalReferences

    out_dir = directory / "cal"
    out_dir.mkdir(exist_ok=True)
    for stale in _cals(directory):
        stale.unlink()
    msa = read_msa_metadata(_msa_file(directory))
    nods = rates(directory)
    for science in nods:
        out = calibrate(read_product(science), LocalReferences(refs_dir=directory / "sim" / "refs"),
                        backgrounds=[read_product(n) for n in nods if n != science], msa=msa,
                        software_version="bench", created=CREATED)
        write_output(out_dir / science.name.replace("_rate", "_cal"), out.cal)


def _spec3_asn(directory: Path) -> dict:
    return {"asn_type": "spec3", "asn_id": "o001", "asn_pool": "bench", "asn_rule": "candidate_Asn_Lv3SpectralSource",
            "program": "01357", "products": [{"name": "jw01357-o001_{source_id}_nirspec_clear-prism", "members": [
                {"expname": c.name, "exptype": "science"} for c in _cals(directory)]}]}


def _measure_spec3(directory: Path) -> dict:
    r, out = measure_spec3(_cals(directory), directory / "sim" / "refs", REPEAT)
    r["sources"] = len(out.spectra)
    r["x1d_elements"] = sum(len(s.x1d.spectra[0].table) for s in out.spectra if s.x1d is not None)
    return r


def _measure_spec3_whole(directory: Path) -> dict:
    """The three ``_cal`` read, SPECWCS chosen and read, spec3 run, its products written:
    one cold run."""
    return measure_spec3_whole(_cals(directory), directory / "sim" / "refs", _spec3_asn(directory))


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
