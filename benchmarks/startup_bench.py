"""How long ``dms`` takes to start, whole process, from exec:

- ``dms --help``: until the process exits;
- ``dms worker SERVICE`` for every service: until the worker logs Celery's ``ready.`` line
  (it is consuming from its queue on the local Redis, under a key prefix of this run);
  the worker is then stopped and its keys deleted.

Best of :data:`REPEAT` runs, with the mean. Then one run of each under
``benchmarks._startup_probe`` reports which ``services.<name>`` packages and which heavy
libraries the process had imported (for a worker: when ``worker_ready`` fired), since a
worker should load its own service only. Targets (issue 9): ``dms --help`` <= 0.5 s,
a worker ready <= 2 s, importing only its own service. Run it on an idle machine; the
load average at the start is recorded.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from benchmarks._child import ROOT
from services.registry import SERVICES

__all__ = ["run"]

REPEAT = 5
HELP_TARGET_S = 0.5
WORKER_TARGET_S = 2.0
READY_TIMEOUT_S = 120.0
REDIS_URL = os.environ.get("DMS_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


def _dms() -> list[str]:
    script = Path(sys.executable).with_name("dms")
    return [str(script)] if script.exists() else [sys.executable, "-m", "services.cli"]


def _env(var_dir: Path, prefix: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DMS_")}
    return env | {"DMS_VAR_DIR": str(var_dir), "DMS_BROKER_URL": REDIS_URL, "DMS_BROKER_KEY_PREFIX": prefix}


def _stop(proc: subprocess.Popen) -> None:
    """Warm shutdown of the worker's process group (the prefork children too)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def time_help(env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run([*_dms(), "--help"], env=env, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def time_worker(service: str, env: dict[str, str]) -> float:
    """Seconds from exec to the worker's ``ready.`` log line."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([*_dms(), "worker", service, "--loglevel", "INFO"], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        seen = []
        for raw in proc.stdout:  # ends when the worker exits
            line = raw.decode(errors="replace")
            seen.append(line)
            if line.rstrip().endswith(" ready.") and "celery.apps.worker" in line:
                return time.perf_counter() - t0
            if time.perf_counter() - t0 > READY_TIMEOUT_S:
                break
        raise RuntimeError(f"dms worker {service} not ready (exit {proc.poll()}):\n{''.join(seen[-30:])}")
    finally:
        _stop(proc)
        proc.stdout.close()


def probe(args: list[str], env: dict[str, str]) -> dict:
    """Which service packages and heavy libraries ``dms ARGS`` had imported."""
    import json

    with tempfile.TemporaryDirectory(prefix="dms-bench-probe-") as tmp:
        out = Path(tmp) / "modules.json"
        proc = subprocess.Popen([sys.executable, "-m", "benchmarks._startup_probe", str(out), *args], env=env,
                                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        try:
            deadline = time.monotonic() + READY_TIMEOUT_S
            while not out.exists() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(0.1)  # let the report finish writing
            if not out.exists():
                raise RuntimeError(f"the probe of dms {' '.join(args)} reported nothing (exit {proc.poll()})")
            return json.loads(out.read_text())
        finally:
            _stop(proc)


def _figures(times: list[float], target: float) -> dict:
    best = min(times)
    return {"best_s": round(best, 3), "mean_s": round(statistics.fmean(times), 3),
            "runs_s": [round(t, 3) for t in times], "target_s": target, "met": best <= target}


def _delete_keys(prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(f"{prefix}*"):
        client.delete(key)


def run() -> dict:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    prefix = f"dms-bench-startup-{uuid.uuid4().hex[:8]}:"
    print(f"start-up of dms, whole process, best of {REPEAT} (load average {load:.2f} at the start)...", flush=True)
    with tempfile.TemporaryDirectory(prefix="dms-bench-") as tmp:
        env = _env(Path(tmp) / "var", prefix)
        try:
            help_fig = _figures([time_help(env) for _ in range(REPEAT)], HELP_TARGET_S)
            help_fig["imported"] = probe(["--help"], env)
            workers = {}
            for service in sorted(SERVICES):
                fig = _figures([time_worker(service, env) for _ in range(REPEAT)], WORKER_TARGET_S)
                imported = probe(["worker", service, "--loglevel", "INFO"], env)
                fig["imported"] = imported
                fig["only_own_service"] = imported["services"] == [service]
                workers[service] = fig
                print(f"  worker {service}: best {fig['best_s']:.2f} s", flush=True)
        finally:
            _delete_keys(prefix)
    result = {"command": "python -m benchmarks startup", "repeat": REPEAT, "load_average_1min": round(load, 2),
              "help": help_fig, "workers": workers}
    _print(result)
    return result


def _mark(ok: bool) -> str:
    return "met" if ok else "MISSED"


def _print(r: dict) -> None:
    print(f"\nstart-up, whole process (best of {r['repeat']}; load average {r['load_average_1min']} at the start)")
    print(f"  {'command':<26} {'best s':>7} {'mean s':>7} {'target':>7}  {'':<6}  services imported; heavy libraries")
    h = r["help"]
    print(f"  {'dms --help':<26} {h['best_s']:>7.2f} {h['mean_s']:>7.2f} {h['target_s']:>7.1f}  "
          f"{_mark(h['met']):<6}  {', '.join(h['imported']['services']) or '-'}; "
          f"{', '.join(h['imported']['heavy']) or '-'}")
    for service, w in r["workers"].items():
        own = "" if w["only_own_service"] else " (MISSED: not only its own)"
        print(f"  {'dms worker ' + service:<26} {w['best_s']:>7.2f} {w['mean_s']:>7.2f} {w['target_s']:>7.1f}  "
              f"{_mark(w['met']):<6}  {', '.join(w['imported']['services'])}{own}; "
              f"{', '.join(w['imported']['heavy'])}")


if __name__ == "__main__":
    run()
