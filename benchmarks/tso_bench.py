"""Time-series spectroscopy: calwebb_spec2 on one segment and calwebb_tso3 over a series of
segments (MIRI LRS slitless, SLITLESSPRISM 72 x 416), one core.

No targets yet: figures only (the issue asks for time and memory, and that tso3 not hold
every integration of every segment at once; it does today, see docs/performance.md). The
input is ``examples/miri_lrs_tso.yaml`` stretched to ``NINTS`` integrations of 5 groups
(the transit scaled with it), cut into segments of ``PER_SEGMENT`` integrations by ingest
and taken through ``run_detector1`` to their ``_rateints``; cached in
``bench-results/tso-input/`` (reused while the description, seed and segment size are
unchanged). Every segment's ``_calints`` is made once by our spec2 (not timed).

Measured in child processes pinned to one CPU with OMP/OpenBLAS/MKL threads set to 1
(benchmarks._child): ``run_spec2`` on the first segment per step (best of 3, one traced
run, benchmarks._steps); ``run_tso3`` on all the segments' ``_calints`` per step (best
of 2, one traced run); then tso3 as a pipeline is run in a fresh child: the ``_calints``
read, SPECWCS chosen and read, the run (as stage 3's task does it: the members' metadata
first, each member read whole when tso3 takes it, each ``_crfints`` written as soon as it
is made), its products written, with the
process's peak resident memory (VmHWM) beside the size of the ``_calints`` it read.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import yaml

from benchmarks._child import max_rss_mb, pin_to_one_core, run_in_child
from benchmarks._rates import CREATED, rates, simulated_rates
from benchmarks._steps import StepProbe, best, measure_runs, print_steps

INPUT_DIR = Path("bench-results") / "tso-input"
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "miri_lrs_tso.yaml"
NINTS = 1000
NGROUPS = 5
PER_SEGMENT = 250
SEED = 21
REPEAT = 3


def description() -> dict:
    """The example with ``NINTS`` integrations of ``NGROUPS`` groups, its transit in the
    middle third of the series."""
    desc = yaml.safe_load(EXAMPLE.read_text())
    obs = desc["observations"][0]
    obs["nints"], obs["ngroups"] = NINTS, NGROUPS
    seconds = NINTS * NGROUPS * 0.15904  # SLITLESSPRISM's frame time, FASTR1
    obs["transit"]["duration_s"] = seconds / 3
    obs["transit"]["ingress_s"] = seconds / 30
    desc["simulation"]["seed"] = SEED
    return desc


def _segment_bytes() -> int:
    # an integration of the _uncal: its int16 groups and MIRI's reference output (a quarter as many rows)
    return PER_SEGMENT * NGROUPS * (416 + 416 // 4) * 72 * 2


def _prepare_input(directory: Path) -> Path:
    count = -(-NINTS // PER_SEGMENT)
    return simulated_rates(directory, description(), SEED, "mirimage", count,
                           f"a MIRI LRS slitless time series ({NINTS} integrations of {NGROUPS} groups, "
                           f"{count} segments)", segment_bytes=_segment_bytes(), suffix="rateints")


def _calints(directory: Path) -> list[Path]:
    return sorted((directory / "calints").glob("*_calints.fits"))


def _make_calints(directory: Path) -> None:
    from services.stage2.spec2 import calibrate
    from shared.datamodels import read_product, write_output
    from shared.refdata import LocalReferences

    out_dir = directory / "calints"
    out_dir.mkdir(exist_ok=True)
    segments = {s.name.replace("_rateints", "_calints"): s for s in rates(directory, "rateints")}
    for made in _calints(directory):  # of inputs made again, or gone
        if made.name not in segments or made.stat().st_mtime < segments[made.name].stat().st_mtime:
            made.unlink()
    for name, segment in segments.items():
        if (out_dir / name).exists():
            continue
        out = calibrate(read_product(segment), LocalReferences(refs_dir=directory / "sim" / "refs"),
                        software_version="bench", created=CREATED)
        write_output(out_dir / name, out.cal)


def _asn(directory: Path) -> dict:
    return {"asn_type": "tso3", "asn_id": "o001", "asn_pool": "bench", "asn_rule": "candidate_Asn_Lv3TSO",
            "program": "04520", "products": [{"name": "jw04520-o001_t001_miri_p750l-slitlessprism", "members": [
                {"expname": c.name, "exptype": "science"} for c in _calints(directory)]}]}


def run() -> dict:
    directory = _prepare_input(INPUT_DIR).resolve()
    _make_calints(directory)
    print("measuring spec2 and tso3 in child processes pinned to one core...", flush=True)
    result = {"threads": "1 core (affinity), OMP/OPENBLAS/MKL threads 1", "nints": NINTS, "ngroups": NGROUPS,
              "segments": len(_calints(directory)),
              "spec2": run_in_child("benchmarks.tso_bench", "spec2", str(directory)),
              "tso3": run_in_child("benchmarks.tso_bench", "tso3", str(directory)),
              "tso3_whole": run_in_child("benchmarks.tso_bench", "tso3-whole", str(directory))}
    _print(result)
    return result


def _print(r: dict) -> None:
    s = r["spec2"]
    print(f"\nTSO benchmark: MIRI LRS slitless, SLITLESSPRISM {s['shape'][2]}x{s['shape'][1]}, {r['nints']} "
          f"integrations of {r['ngroups']} groups in {r['segments']} segments, {r['threads']}")
    print_steps(f"spec2 on one segment ({s['shape'][0]} integrations)", s)
    t = r["tso3"]
    print_steps(f"tso3 on the {r['segments']} segments' _calints ({t['integrations']} integrations, "
                f"{t['elements']} spectral elements each)", t)
    w = r["tso3_whole"]
    print(f"\ntso3 as a pipeline is run (a fresh process: the _calints read, SPECWCS chosen and read, the run, "
          f"{len(w['products'])} products written): {w['seconds']:.2f} s; peak resident {w['peak_mib']:.0f} MiB "
          f"for {w['input_mib']:.0f} MiB of _calints")


def _measure_spec2(directory: Path) -> dict:
    from services.stage2.spec2 import SPEC2, run_spec2
    from shared.datamodels import read_product
    from shared.refdata import LocalReferences, load_references

    first = rates(directory, "rateints")[0]
    io: dict[str, float] = {}
    io["read one segment's _rateints"], science = best(lambda: read_product(first), REPEAT)
    kw = science.keywords
    io["load references"], refs = best(lambda: load_references(
        LocalReferences(refs_dir=directory / "sim" / "refs"), kw, SPEC2.reftypes(kw)).found, 1)
    probe = StepProbe()
    r = measure_runs(lambda: run_spec2(science, refs, context="bench", software_version="bench", created=CREATED,
                                       step_hook=probe), probe, REPEAT)
    out = r.pop("output")
    r["seconds"]["io"] = io
    r["statuses"] = dict(out.record.statuses)
    r["shape"] = list(science.images["SCI"].shape)
    return r


def _members(directory: Path) -> list:
    from shared.datamodels import read_product

    return [read_product(p) for p in _calints(directory)]


def _measure_tso3(directory: Path) -> dict:
    from services.stage3.pipeline import TSO3, run_tso3
    from shared.refdata import LocalReferences, load_references

    io: dict[str, float] = {}
    io["read the _calints"], members = best(lambda: _members(directory), 1)
    kw = members[0].keywords
    io["load references"], refs = best(lambda: load_references(
        LocalReferences(refs_dir=directory / "sim" / "refs"), kw, TSO3.reftypes(kw)).found, 1)
    probe = StepProbe()
    r = measure_runs(lambda: run_tso3(members, _asn(directory), refs=refs, software_version="bench", created=CREATED,
                                      step_hook=probe), probe, 2)
    out = r.pop("output")
    r["seconds"]["io"] = io
    r["statuses"] = dict(out.record.statuses)
    table = out.x1dints.spectra[0].table
    r["integrations"], r["elements"] = len(table), int(table["N_ALONGDISP"][0])
    return r


def _measure_tso3_whole(directory: Path) -> dict:
    """The ``_calints`` read, SPECWCS chosen and read, tso3 run, its products written: one
    cold run, with the process's peak resident memory."""
    import tempfile

    from services.stage3.asn import parse_level3_asn
    from services.stage3.pipeline import calibrate
    from shared.datamodels import read_product, write_output
    from shared.refdata import LocalReferences

    document = _asn(directory)
    asn = parse_level3_asn(json.dumps(document).encode(), "jw04520-o001_bench_tso3_00001_asn.json")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="dms-bench-tso-") as tmp:
        written: list[str] = []

        def write(outputs) -> None:  # as stage 3's task archives each _crfints when it is made
            for o in outputs:
                write_output(Path(tmp) / o.filename, o.content)
                written.append(o.suffix)

        paths = _calints(directory)  # each member's metadata first, then each whole when taken, as the task does
        members = [read_product(path, arrays=False) for path in paths]
        out = calibrate(asn, members, software_version="bench", created=CREATED, on_outputs=write,
                        release_inputs=True, load=lambda i: read_product(paths[i]),
                        provider=LocalReferences(refs_dir=directory / "sim" / "refs"))
        write(out.outputs(asn))
        seconds = time.perf_counter() - t0
    return {"seconds": seconds, "products": written, "peak_mib": max_rss_mb(),
            "input_mib": sum(p.stat().st_size for p in _calints(directory)) / 2**20}


def _measure(part: str, directory: Path, result_path: Path) -> None:
    pin_to_one_core()
    import logging

    for name in ("services", "shared.pipeline", "shared.refdata"):
        logging.getLogger(name).setLevel(logging.ERROR)
    measure = {"spec2": _measure_spec2, "tso3": _measure_tso3, "tso3-whole": _measure_tso3_whole}[part]
    result_path.write_text(json.dumps(measure(directory), indent=2))


if __name__ == "__main__":
    _measure(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]))
