"""Whole process: ``dms run detector1`` beside the public pipeline's ``strun calwebb_detector1``.

Target (issue 9, part 4): on the full-frame benchmark exposure (``detector1_bench``: NIRCam
NRCA1, FULL 2048 x 2048, RAPID, 10 groups, 1 integration) with its 7 detector-1 references
(MASK, SATURATION, SUPERBIAS, LINEARITY, DARK, GAIN, READNOISE), ``dms run detector1`` is
at least 4x faster, whole process, than ``strun calwebb_detector1`` on the same file and
references, and peaks at <= 1 GB (1024 MiB) resident.

The two commands (each run in a fresh, empty output directory)::

    dms run detector1 uncal.fits --ref mask=... (the 7 types, all by --ref) --output-dir OUT

    strun --disable-crds-steppars calwebb_detector1 uncal.fits --output_dir=OUT
        --steps.<step>.override_<reftype>=<the same file>   (every reftype of every step that runs)
        --steps.refpix.override_refpix=N/A --steps.refpix.override_sirskernel=N/A
        --steps.<step>.skip=true                            (the steps listed below)
        --steps.jump.maximum_cores=1 --steps.ramp_fit.maximum_cores=1

Steps, like for like:

- ours: group_scale (SKIPPED: FRMDIVSR == NFRAMES), dq_init, saturation, superbias, refpix,
  linearity, persistence (SKIPPED: no trap state from a previous exposure), dark_current,
  jump, ramp_fit.
- jwst: group_scale (SKIPPED for the same reason), dq_init, saturation (it also reads the
  superbias), superbias, refpix (no IRS2 ``refpix`` reference, median side-pixel algorithm,
  so no ``sirskernel``: both are given as ``N/A``), linearity, dark_current, jump, ramp_fit,
  gain_scale (runs, reads the GAIN file and is SKIPPED: no GAINFACT; it cannot be turned off
  without changing the pipeline's result model, and costs little).
  Skipped by option: ipc (no IPC reference; we have no such step), persistence (upstream
  default; needs TRAPDENSITY/TRAPPARS/PERSAT), charge_migration, picture_frame,
  clean_flicker_noise (upstream defaults, no references), and the MIRI-only emicorr, rscd,
  firstframe, lastframe and reset (never run on a NIR exposure; skipped so that their
  references are not pre-fetched). The code checks jwst's step list against this: a step or
  reference type it does not know stops the benchmark instead of reaching CRDS.
- outputs: ours writes ``_rate``; jwst writes ``_rate`` and ``_rateints`` (it always saves
  the per-integration product; here one integration, 84 MB more to write).
  The S_* keywords of both ``_rate`` files are reported, so the lists above are checked
  on every run.

Offline: no reference is chosen by CRDS (every reftype of every step that runs is an
override; ``Prefetching reference files ... reftypes = []`` in jwst's log), step parameters
are not looked up (``--disable-crds-steppars``; ``STPIPE_DISABLE_CRDS_STEPPARS`` takes
``true``, not ``1``), and what CRDS still does -- naming the context it "used" in the
output (``get_context_used``) -- is served by a fresh ``CRDS_PATH`` holding only a minimal
``config/jwst/server_config`` written here, with ``CRDS_MODE=local``,
``CRDS_READONLY_CACHE=1``, ``CRDS_CONTEXT=jwst_0000.pmap`` (a placeholder: no rules are
read) and ``CRDS_SERVER_URL=https://jwst-serverless-mode.stsci.edu`` (CRDS's serverless
mode: its JSON-RPC client refuses every call instead of opening a connection). Without
that config file CRDS stops with "CRDS server connection and cache load FAILED". When
``unshare --net --map-root-user`` works, both commands also run in an empty network
namespace, so a network access would fail rather than happen; the JSON says which.

Measured, per run: wall time from exec to exit, user + system CPU time, and peak resident
set size (ru_maxrss) of the command. A small helper process (this module run with
``--spawn``, importing only the standard library) starts the command and reaps it with
``os.wait4``, which returns that child's own resource usage; the helper, not this parent
(which has simulated and read the exposure), is the command's parent because Linux carries
the pre-exec memory high-water mark of a forked child into its ru_maxrss. The "floor" in
the JSON is the same measurement of ``true``: the helper's own high-water mark, which a
command inherits through ``exec``; ru_maxrss being a maximum, it only shows for a command
that stays below it.
Both commands run with OMP/OpenBLAS/MKL threads set to 1 (SINGLE_THREAD_ENV; jwst's jump
and ramp_fit with ``maximum_cores=1``), not pinned to one core, alternately
(ours, jwst, ours, ...) ``REPEAT`` times each after the inputs have been read once into the
page cache; best and mean wall time, and the largest peak RSS. The ratio is jwst / ours.
Whole-process figures include the start-up (imports) of each command.

Agreement: median |rate_ours - rate_jwst| / ERR_ours over the pixels with DQ == 0 in both
``_rate`` files, and the fraction of such pixels (as ``detector1_bench`` does against
stcal's kernels); also the median ERR_jwst / ERR_ours. jwst's WARNING/ERROR log lines are
kept in the JSON (an incompatibility with our files would show there).

The last run's logs are kept in ``bench-results/whole/``; the input is the cached exposure
of ``detector1_bench`` (``bench-results/detector1-input/``, simulated on first use).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks._child import ROOT, SINGLE_THREAD_ENV
from benchmarks._jwst import crds_env, network_isolation, step_overrides, strun_arguments

REPEAT = 3
TARGET_RATIO = 4.0
TARGET_MB = 1024.0  # 1 GB, in MiB like ru_maxrss
REFTYPES = ("mask", "saturation", "superbias", "linearity", "dark", "gain", "readnoise")
LOG_DIR = Path("bench-results") / "whole"

# jwst's Detector1Pipeline steps skipped here, and why.
JWST_SKIP = {
    "ipc": "no IPC reference; not a step of ours",
    "persistence": "upstream default; needs TRAPDENSITY/TRAPPARS/PERSAT (ours: SKIPPED, first exposure)",
    "charge_migration": "upstream default",
    "picture_frame": "upstream default; needs PICTUREFRAME",
    "clean_flicker_noise": "upstream default; needs FLAT",
    "emicorr": "MIRI only",
    "rscd": "MIRI only",
    "firstframe": "MIRI only",
    "lastframe": "MIRI only",
    "reset": "MIRI only",
}
# Reference types of steps that run, which do not apply to this exposure.
JWST_NOT_APPLICABLE = {
    ("refpix", "refpix"): "IRS2 readout only",
    ("refpix", "sirskernel"): "refpix_algorithm 'sirs' only (default 'median')",
}
JWST_PARAMS = {"jump": {"maximum_cores": "1"}, "ramp_fit": {"maximum_cores": "1"}}


# --------------------------------------------------------------------------- measuring one command


def _spawn(spec: dict) -> dict:
    """Run ``spec["argv"]`` once; wall, CPU and peak RSS of that process (in the helper)."""
    with open(spec["log"], "wb") as log:
        t0 = time.perf_counter()
        proc = subprocess.Popen(spec["argv"], env=spec["env"], cwd=spec["cwd"], stdout=log,
                                stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    scale = 1.0 if sys.platform.startswith("linux") else 1 / 1024  # KiB on Linux, bytes on macOS
    return {"returncode": proc.returncode, "wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime,
            "max_rss_mb": usage.ru_maxrss * scale / 1024}


def _measure(argv: list[str], env: dict[str, str], log: Path) -> dict:
    """One run of ``argv`` through a fresh helper process."""
    spec = {"argv": argv, "env": env, "cwd": str(ROOT), "log": str(log)}
    helper = subprocess.run([sys.executable, "-m", "benchmarks.whole_process_bench", "--spawn", json.dumps(spec)],
                            cwd=ROOT, capture_output=True, text=True, check=True)
    result = json.loads(helper.stdout)
    if result["returncode"] != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
        raise RuntimeError(f"{argv[0]} exited with {result['returncode']}; end of its log {log}:\n{tail}")
    return result


def _script(name: str) -> str:
    path = Path(sys.executable).with_name(name)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no {name!r} entry point beside this interpreter (make install)")
    return str(path)


# --------------------------------------------------------------------------- the two commands


def _our_command(uncal: Path, refs: dict[str, Path], out: Path) -> list[str]:
    return [_script("dms"), "run", "detector1", str(uncal),
            *(a for t in REFTYPES for a in ("--ref", f"{t}={refs[t]}")), "--output-dir", str(out)]


def _jwst_arguments(refs: dict[str, Path]) -> tuple[list[str], dict[str, list[str]]]:
    """strun's step options, derived from jwst's own step list and checked against it; and
    which steps run or are skipped."""
    steps, ran = step_overrides("calwebb_detector1", refs, JWST_SKIP, JWST_NOT_APPLICABLE, JWST_PARAMS)
    return strun_arguments(steps), {"ran": ran, "skipped": [f"{s} ({why})" for s, why in JWST_SKIP.items()]}


def _jwst_command(uncal: Path, step_args: list[str], out: Path) -> list[str]:
    return [_script("strun"), "--disable-crds-steppars", "calwebb_detector1", str(uncal),
            f"--output_dir={out}", *step_args]


# --------------------------------------------------------------------------- scoring the outputs


def _agreement(ours: Path, theirs: Path) -> dict:
    import numpy as np
    from astropy.io import fits

    with fits.open(ours) as a, fits.open(theirs) as b:
        rate_o, err_o, dq_o = (a[x].data.astype(np.float64) for x in ("SCI", "ERR", "DQ"))
        rate_t, err_t, dq_t = (b[x].data.astype(np.float64) for x in ("SCI", "ERR", "DQ"))
        keys = sorted({k for h in (a[0].header, b[0].header) for k in h if k.startswith("S_")})
        statuses = {k: [a[0].header.get(k, "-"), b[0].header.get(k, "-")] for k in keys}
    clean = (dq_o == 0) & (dq_t == 0) & (err_o > 0)
    diff = np.abs(rate_o - rate_t)[clean] / err_o[clean]
    return {
        "clean_pixels": int(clean.sum()),
        "clean_fraction": float(clean.mean()),
        "median_abs_diff_over_err": float(np.median(diff)),
        "p90_abs_diff_over_err": float(np.percentile(diff, 90)),
        "pixels_differing_over_0.1_err": int((diff > 0.1).sum()),
        "median_err_jwst_over_ours": float(np.median(err_t[clean] / err_o[clean])),
        "dq_nonzero": {"ours": int((dq_o != 0).sum()), "jwst": int((dq_t != 0).sum())},
        "statuses_ours_jwst": statuses,
    }


def _log_lines(log: Path, levels=(" - WARNING - ", " - ERROR - ")) -> list[str]:
    seen: dict[str, None] = {}
    for line in log.read_text(errors="replace").splitlines():
        if any(level in line for level in levels):
            seen.setdefault(line.split(" - ", 1)[-1], None)  # drop the time stamp
    return list(seen)


# --------------------------------------------------------------------------- the benchmark


def _summary(runs: list[dict]) -> dict:
    walls = [r["wall_s"] for r in runs]
    return {"runs": runs, "wall_best_s": min(walls), "wall_mean_s": sum(walls) / len(walls),
            "cpu_best_s": min(r["cpu_s"] for r in runs), "max_rss_mb": max(r["max_rss_mb"] for r in runs)}


def run() -> dict:
    import shutil
    import tempfile
    from importlib.metadata import version

    from benchmarks.detector1_bench import INPUT_DIR, _prepare_input
    from services.detector1.pipeline import DETECTOR1
    from shared.datamodels import read_product
    from shared.refdata import LocalReferences

    directory = _prepare_input(INPUT_DIR).resolve()
    uncal = directory / "uncal.fits"
    product = read_product(uncal)
    keywords, shape = product.keywords, [int(n) for n in product.images["SCI"].shape]
    del product
    wanted = DETECTOR1.reftypes(keywords)
    if set(wanted) != set(REFTYPES):
        raise RuntimeError(f"detector1 wants {sorted(wanted)} for this exposure, the benchmark gives {REFTYPES}")
    chosen, _ = LocalReferences(refs_dir=directory / "sim" / "refs").choose(keywords, REFTYPES)
    missing = [t for t in REFTYPES if chosen[t].path is None]
    if missing:
        raise RuntimeError(f"no {missing} reference in {directory / 'sim' / 'refs'}")
    refs = {t: chosen[t].path.resolve() for t in REFTYPES}
    step_args, jwst_steps = _jwst_arguments(refs)

    for path in (uncal, *refs.values()):  # into the page cache, for both sides alike
        with open(path, "rb") as f:
            while f.read(1 << 24):
                pass

    isolate = network_isolation()
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("CRDS_", "STPIPE_"))}
    base_env.update(SINGLE_THREAD_ENV)
    logs = (ROOT / LOG_DIR).resolve()
    logs.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="dms-bench-whole-") as tmp:
        tmp_path = Path(tmp)
        crds = crds_env(tmp_path / "crds")
        sides = {
            "ours": (_our_command(uncal, refs, tmp_path / "out-ours"), base_env),
            "jwst": (_jwst_command(uncal, step_args, tmp_path / "out-jwst"), {**base_env, **crds}),
        }
        floor = json.loads(subprocess.run(
            [sys.executable, "-m", "benchmarks.whole_process_bench", "--spawn",
             json.dumps({"argv": ["true"], "env": base_env, "cwd": str(ROOT), "log": os.devnull})],
            cwd=ROOT, capture_output=True, text=True, check=True).stdout)["max_rss_mb"]
        load_before = os.getloadavg()
        print(f"load average before: {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}; "
              f"{REPEAT} runs each, alternating, network {'isolated' if isolate else 'NOT isolated'}", flush=True)
        runs: dict[str, list[dict]] = {"ours": [], "jwst": []}
        for i in range(REPEAT):
            for side, (argv, env) in sides.items():
                out = tmp_path / f"out-{side}"
                shutil.rmtree(out, ignore_errors=True)
                out.mkdir()
                r = _measure([*isolate, *argv], env, logs / f"{side}.log")
                r["load_1min_before"] = os.getloadavg()[0]
                runs[side].append(r)
                print(f"  {side:<5} run {i + 1}: {r['wall_s']:6.2f} s wall, {r['cpu_s']:6.2f} s CPU, "
                      f"{r['max_rss_mb']:6.0f} MiB peak", flush=True)
        load_after = os.getloadavg()
        [ours_rate] = (tmp_path / "out-ours").glob("*_rate.fits")
        [jwst_rate] = (tmp_path / "out-jwst").glob("*_rate.fits")
        agreement = _agreement(ours_rate, jwst_rate)

    ours, jwst = _summary(runs["ours"]), _summary(runs["jwst"])
    ours["command"] = sides["ours"][0]
    ours["env"] = dict(SINGLE_THREAD_ENV)
    jwst["command"] = sides["jwst"][0]
    jwst["env"] = {**SINGLE_THREAD_ENV, **{k: v for k, v in crds.items() if k != "CRDS_PATH"},
                   "CRDS_PATH": "<fresh temporary directory holding only config/jwst/server_config>"}
    jwst["steps"] = jwst_steps
    jwst["log_warnings"] = _log_lines(logs / "jwst.log")
    jwst["versions"] = {p: version(p) for p in ("jwst", "stcal", "stpipe", "stdatamodels", "crds")}
    ratio = {"wall_best": jwst["wall_best_s"] / ours["wall_best_s"],
             "wall_mean": jwst["wall_mean_s"] / ours["wall_mean_s"],
             "cpu_best": jwst["cpu_best_s"] / ours["cpu_best_s"]}
    result = {
        "input": {"uncal": str(uncal), "shape": shape,
                  "references": {t: p.name for t, p in refs.items()}},
        "repeat": REPEAT,
        "network": " ".join(isolate) + " (empty network namespace)" if isolate else
                   "not isolated (unshare unavailable): CRDS serverless mode only",
        "load_average": {"before": list(load_before), "after": list(load_after)},
        "helper_floor_rss_mb": floor,
        "ours": ours,
        "jwst": jwst,
        "ratio_jwst_over_ours": ratio,
        "agreement": agreement,
        "targets": {"ratio": TARGET_RATIO, "memory_mb": TARGET_MB},
        "met": {"ratio": ratio["wall_best"] >= TARGET_RATIO, "memory": ours["max_rss_mb"] <= TARGET_MB},
    }
    _print(result)
    return result


def _print(r: dict) -> None:
    o, j, ratio, a = r["ours"], r["jwst"], r["ratio_jwst_over_ours"], r["agreement"]
    lb, la = r["load_average"]["before"], r["load_average"]["after"]
    print(f"\nwhole process, {r['input']['shape']} (nints, ngroups, ny, nx), 7 references, {r['repeat']} runs each "
          f"(load {lb[0]:.2f} before, {la[0]:.2f} after; network: {r['network']})")
    print(f"  {'':<38} {'best s':>7} {'mean s':>7} {'CPU s':>7} {'peak MiB':>9}")
    for name, s in (("dms run detector1", o), (f"strun calwebb_detector1 (jwst {j['versions']['jwst']})", j)):
        print(f"  {name:<38} {s['wall_best_s']:>7.2f} {s['wall_mean_s']:>7.2f} {s['cpu_best_s']:>7.2f} "
              f"{s['max_rss_mb']:>9.0f}")
    print(f"  ratio jwst/ours: wall best {ratio['wall_best']:.2f}, mean {ratio['wall_mean']:.2f}, "
          f"CPU {ratio['cpu_best']:.2f}; target >= {TARGET_RATIO:.0f}: {'met' if r['met']['ratio'] else 'MISSED'}")
    print(f"  ours peak {o['max_rss_mb']:.0f} MiB, target <= {TARGET_MB:.0f} MiB: "
          f"{'met' if r['met']['memory'] else 'MISSED'} (helper floor {r['helper_floor_rss_mb']:.0f} MiB)")
    print(f"  rates: median |ours - jwst| / ERR_ours = {a['median_abs_diff_over_err']:.3g} "
          f"(90th percentile {a['p90_abs_diff_over_err']:.3g}) over {a['clean_pixels']} pixels with DQ == 0 in both "
          f"({a['clean_fraction']:.1%}); median ERR jwst/ours {a['median_err_jwst_over_ours']:.4f}")
    print("  steps (S_* ours / jwst): " + ", ".join(f"{k} {v[0]}/{v[1]}" for k, v in a["statuses_ours_jwst"].items()))
    for line in j["log_warnings"]:
        print(f"  jwst log: {line}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--spawn":
        print(json.dumps(_spawn(json.loads(sys.argv[2]))))
    else:
        sys.exit("usage: python -m benchmarks whole")
