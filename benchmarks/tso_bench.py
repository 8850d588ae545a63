"""Time-series spectroscopy: calwebb_spec2 on one segment and calwebb_tso3 over a series of
segments, one core, for each time series the system calibrates (:data:`SERIES`): the MIRI
LRS slitless (SLITLESSPRISM, 72 x 416), NIRSpec's bright objects (S1600A1, G395M/F290LP,
SUB2048, 2048 x 32), NIRISS SOSS (GR700XD/CLEAR, SUBSTRIP256, 2048 x 256, two orders) and
NIRCam's grism (GRISMR/F444W, SUBGRISM64, 2048 x 64; its grism alone, without the
short-wave imaging read beside it).

No targets yet: figures only (the issue asks for time and memory, and that tso3 not hold
every integration of every segment at once; see docs/performance.md). Each series's input
is its example (``examples/miri_lrs_tso.yaml``, ``examples/nirspec_bots.yaml``) stretched
to ``nints`` integrations of ``ngroups`` groups (the transit scaled with it, in the middle
third), cut into segments of ``per_segment`` integrations by ingest and taken through
``run_detector1`` to their ``_rateints``; cached in ``bench-results/`` (reused while the
description, seed and segment size are unchanged). Both are 1000 integrations of 5 groups
in four segments of 250, so that the two compare by their window (SUB2048's 65,536 pixels
are 2.2 times SLITLESSPRISM's 29,952): a BOTS segment's ``_calints`` is about 375 MiB and
the series's 1.5 GiB, enough that a tso3 holding every segment at once would show plainly
in its peak, while the series simulates (with its ``_calints``) in a minute and a half on
two cores. SOSS's window is 8 times SUB2048's, so its series is 400 integrations of 3
groups in four segments of 100 (its telemetry 1.7 GB; a segment's ``_calints`` about as
large as a BOTS segment's times 3.2); NIRCam's grism window is twice SUB2048's, so its
series is 1000 integrations of 3 groups in four segments of 250. Every segment's ``_calints`` is made once by our spec2 (not timed).

Measured in child processes pinned to one CPU with OMP/OpenBLAS/MKL threads set to 1
(benchmarks._child): ``run_spec2`` on the first segment per step (best of 3, one traced
run, benchmarks._steps); ``run_tso3`` on all the segments' ``_calints`` per step (best
of 2, one traced run); then tso3 as a pipeline is run in a fresh child: the ``_calints``
read, SPECWCS chosen and read, the run (as stage 3's task does it: the members' metadata
first, each member read whole when tso3 takes it, each ``_crfints`` written as soon as it
is made), its products written, with the process's peak resident memory (VmHWM) beside
what it held before reading any (interpreter and libraries) and the size of the
``_calints`` it read, all of them and the largest; and the same on the first segment
alone, the first two, ..., so that a peak which grew with the number of segments would
show. ``DMS_BENCH_TSO=soss`` (names of :data:`SERIES`, comma-separated) measures only those.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from benchmarks._child import max_rss_mb, pin_to_one_core, rss_mb, run_in_child
from benchmarks._rates import CREATED, rates, simulated_rates
from benchmarks._steps import StepProbe, best, measure_runs, print_steps

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
REPEAT = 3


@dataclass(frozen=True)
class Series:
    """A time series to measure: ``example`` stretched to ``nints`` integrations of
    ``ngroups`` groups, cut by ingest into segments of ``per_segment`` integrations of
    ``detector``; ``level3`` names the tso3 association's product."""

    name: str
    title: str
    example: str
    detector: str
    seed: int
    level3: str
    input_dir: Path
    nints: int = 1000
    ngroups: int = 5
    per_segment: int = 250

    @property
    def segments(self) -> int:
        return -(-self.nints // self.per_segment)


SERIES = {s.name: s for s in (
    Series("lrs", "MIRI LRS slitless, SLITLESSPRISM", "miri_lrs_tso.yaml", "mirimage", 21,
           "jw04520-o001_t001_miri_p750l-slitlessprism", Path("bench-results") / "tso-input"),
    Series("bots", "NIRSpec bright objects, S1600A1 G395M/F290LP SUB2048", "nirspec_bots.yaml", "nrs1", 22,
           "jw04522-o001_t001_nirspec_f290lp-g395m-s1600a1-sub2048", Path("bench-results") / "tso-bots-input"),
    Series("soss", "NIRISS SOSS, GR700XD/CLEAR SUBSTRIP256 (two orders)", "niriss_soss.yaml", "nis", 23,
           "jw04523-o001_t001_niriss_clear-gr700xd-substrip256", Path("bench-results") / "tso-soss-input",
           nints=400, ngroups=3, per_segment=100),
    Series("grism", "NIRCam grism, GRISMR/F444W SUBGRISM64", "nircam_grism_tso.yaml", "nrcalong", 29,
           "jw04610-o001_t001_nircam_f444w-grismr-subgrism64", Path("bench-results") / "tso-grism-input", ngroups=3),
)}


def _window(obs: dict):
    from shared.instruments import subarray

    return subarray(obs["instrument"], obs["subarray"])


def description(series: Series) -> dict:
    """The series's example with ``nints`` integrations of ``ngroups`` groups, its transit
    in the middle third of the series."""
    from shared.instruments import frame_time

    desc = yaml.safe_load((EXAMPLES / series.example).read_text())
    obs = desc["observations"][0]
    obs["nints"], obs["ngroups"] = series.nints, series.ngroups
    obs["detectors"] = [series.detector.upper()]  # the spectra's detector alone (not NIRCam's short wave)
    obs.pop("short_wave", None)
    seconds = series.nints * series.ngroups * frame_time(obs["instrument"], _window(obs), obs["readpatt"])
    obs["transit"]["duration_s"] = seconds / 3
    obs["transit"]["ingress_s"] = seconds / 30
    desc["simulation"]["seed"] = series.seed
    return desc


def _segment_bytes(series: Series) -> int:
    """What ingest cuts at: ``per_segment`` integrations of the ``_uncal`` (its groups, and
    the ZEROFRAME of a near-IR detector or MIRI's reference output)."""
    from shared.instruments import detector, exposure_bytes

    obs = description(series)["observations"][0]
    return exposure_bytes(detector(series.detector), _window(obs), series.ngroups, series.per_segment)


def _prepare_input(series: Series) -> Path:
    return simulated_rates(series.input_dir, description(series), series.seed, series.detector, series.segments,
                           f"a {series.title} time series ({series.nints} integrations of {series.ngroups} groups, "
                           f"{series.segments} segments)", segment_bytes=_segment_bytes(series), suffix="rateints")


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


def _asn(series: Series, calints: list[Path]) -> dict:
    program = f"{int(description(series)['program']):05d}"
    return {"asn_type": "tso3", "asn_id": "o001", "asn_pool": "bench", "asn_rule": "candidate_Asn_Lv3TSO",
            "program": program, "products": [{"name": series.level3, "members": [
                {"expname": c.name, "exptype": "science"} for c in calints]}]}


def _chosen() -> list[Series]:
    """The series to measure: all, or those DMS_BENCH_TSO names (comma-separated)."""
    names = [n.strip() for n in os.environ.get("DMS_BENCH_TSO", "").split(",") if n.strip()]
    unknown = [n for n in names if n not in SERIES]
    if unknown:
        raise SystemExit(f"DMS_BENCH_TSO: no series {', '.join(unknown)} (there are {', '.join(SERIES)})")
    return [SERIES[n] for n in names] or list(SERIES.values())


def run() -> dict:
    result: dict = {"threads": "1 core (affinity), OMP/OPENBLAS/MKL threads 1"}
    chosen = _chosen()
    for series in chosen:
        directory = _prepare_input(series).resolve()
        _make_calints(directory)
        print(f"measuring spec2 and tso3 of the {series.title} series in child processes pinned to one core...",
              flush=True)
        count = len(_calints(directory))
        r = result[series.name] = {"title": series.title, "nints": series.nints, "ngroups": series.ngroups,
                                   "segments": count}
        for part in ("spec2", "tso3", "tso3-whole"):
            r[part.replace("-", "_")] = run_in_child("benchmarks.tso_bench", part, series.name, str(directory))
        # the same on the first 1, 2, ... segments: a peak that grew with the series would show
        r["tso3_fewer"] = [run_in_child("benchmarks.tso_bench", "tso3-whole", series.name, str(directory), str(n))
                           for n in range(1, count)]
    for series in chosen:
        _print(result[series.name], result["threads"])
    return result


def _print(r: dict, threads: str) -> None:
    s = r["spec2"]
    print(f"\nTSO benchmark: {r['title']} ({s['shape'][2]} x {s['shape'][1]}), {r['nints']} integrations of "
          f"{r['ngroups']} groups in {r['segments']} segments, {threads}")
    print_steps(f"spec2 on one segment ({s['shape'][0]} integrations)", s)
    t = r["tso3"]
    print_steps(f"tso3 on the {r['segments']} segments' _calints ({t['integrations']} integrations, "
                f"{t['elements']} spectral elements each)", t)
    w = r["tso3_whole"]
    print(f"\ntso3 as a pipeline is run (a fresh process: the _calints read, SPECWCS chosen and read, the run, "
          f"{len(w['products'])} products written): {w['seconds']:.2f} s; peak resident {w['peak_mib']:.0f} MiB "
          f"({w['rss_before_mib']:.0f} MiB before reading: interpreter and libraries) for {w['input_mib']:.0f} MiB "
          f"of _calints (the largest segment's {w['largest_mib']:.0f} MiB)")
    print("  peak resident by the segments read: " + ", ".join(
        f"{x['segments']} ({x['input_mib']:.0f} MiB) {x['peak_mib']:.0f} MiB in {x['seconds']:.1f} s"
        for x in [*r["tso3_fewer"], w]))


def _measure_spec2(series: Series, directory: Path) -> dict:
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


def _measure_tso3(series: Series, directory: Path) -> dict:
    from services.stage3.pipeline import TSO3, run_tso3
    from shared.refdata import LocalReferences, load_references

    io: dict[str, float] = {}
    io["read the _calints"], members = best(lambda: _members(directory), 1)
    kw = members[0].keywords
    io["load references"], refs = best(lambda: load_references(
        LocalReferences(refs_dir=directory / "sim" / "refs"), kw, TSO3.reftypes(kw)).found, 1)
    probe = StepProbe()
    r = measure_runs(lambda: run_tso3(members, _asn(series, _calints(directory)), refs=refs, software_version="bench",
                                      created=CREATED, step_hook=probe), probe, 2)
    out = r.pop("output")
    r["seconds"]["io"] = io
    r["statuses"] = dict(out.record.statuses)
    table = out.x1dints.spectra[0].table
    r["integrations"], r["elements"] = len(table), int(table["N_ALONGDISP"][0])
    return r


def _measure_tso3_whole(series: Series, directory: Path, count: str | None = None) -> dict:
    """The ``_calints`` (the first ``count`` segments', all without) read, SPECWCS chosen
    and read, tso3 run, its products written: one cold run, with the process's peak
    resident memory and what it held before."""
    import tempfile

    from services.stage3.asn import parse_level3_asn
    from services.stage3.pipeline import calibrate
    from shared.datamodels import read_product, write_output
    from shared.refdata import LocalReferences

    paths = _calints(directory)[:None if count is None else int(count)]
    document = _asn(series, paths)
    asn = parse_level3_asn(json.dumps(document).encode(), f"jw{document['program']}-o001_bench_tso3_00001_asn.json")
    before = rss_mb()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="dms-bench-tso-") as tmp:
        written: list[str] = []

        def write(outputs) -> None:  # as stage 3's task archives each _crfints when it is made
            for o in outputs:
                write_output(Path(tmp) / o.filename, o.content)
                written.append(o.suffix)

        # each member's metadata first, then each whole when taken, as the task does
        members = [read_product(path, arrays=False) for path in paths]
        out = calibrate(asn, members, software_version="bench", created=CREATED, on_outputs=write,
                        release_inputs=True, load=lambda i: read_product(paths[i]),
                        provider=LocalReferences(refs_dir=directory / "sim" / "refs"))
        write(out.outputs(asn))
        seconds = time.perf_counter() - t0
    sizes = [p.stat().st_size / 2**20 for p in paths]
    return {"seconds": seconds, "products": written, "peak_mib": max_rss_mb(), "rss_before_mib": before,
            "segments": len(paths), "input_mib": sum(sizes), "largest_mib": max(sizes)}


def _measure(part: str, series: Series, directory: Path, result_path: Path, *args: str) -> None:
    pin_to_one_core()
    import logging

    for name in ("services", "shared.pipeline", "shared.refdata"):
        logging.getLogger(name).setLevel(logging.ERROR)
    measure = {"spec2": _measure_spec2, "tso3": _measure_tso3, "tso3-whole": _measure_tso3_whole}[part]
    result_path.write_text(json.dumps(measure(series, directory, *args), indent=2))


if __name__ == "__main__":
    part, name, directory, *args, result = sys.argv[1:]  # args: tso3-whole's number of segments
    _measure(part, SERIES[name], Path(directory), Path(result), *args)
