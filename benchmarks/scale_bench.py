"""Exposures per minute with 1, 2 and 4 worker processes per stage, in one run.

The cluster of the scale-out test (``tests/scale/cluster.py``): Redis, a PostgreSQL
cluster of the run and moto's S3 server on a "services" network namespace, workers on two
"worker" namespaces, every process reaching the services by address over the namespaces'
bridge. The program of that test (two NIRCam imaging observations, two detectors, four
dither points: 16 exposures, SUB160, 5 groups) is simulated once. For each worker count N,
N ``dms worker SERVICE`` processes (concurrency 1) of every service are started, spread
over the two worker hosts, on a fresh catalog database, an emptied S3 server and an
emptied Redis; once every worker is ready, the references are delivered (not timed), and
the clock runs from the start of ``dms ingest`` (the downlink: plan and telemetry into
``dms-raw``) on the services host until the last Level-3 product of the plan is current.

Exposures per minute = exposures / elapsed; each figure is also given as a ratio to the
1-process figure. The counts run in the order 1, 2, 4, 4, 2, 1 (:data:`ROUNDS` = 2), so a
change of the machine's other load during the run weighs on every count alike; the figure
of a count is the mean of its runs. Beside each run: when the last ``_rate``, the last
``_cal`` and the last Level-3 product appeared; how busy the machine's CPUs were (from
``/proc/stat``) and how much of that was the cluster's own processes (every process in its
namespaces, from ``/proc/<pid>/stat``); and how many task retries the workers logged.
Needs root (network namespaces); otherwise it says so and measures nothing.
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import func, select

from benchmarks._child import cpu_seconds
from services.registry import SERVICES
from services.simulator import simulate
from shared.catalog import Catalog, Product
from tests.scale.cluster import Cluster, namespace_support, wait_for
from tests.scale.program import Expected, description

__all__ = ["run"]

COUNTS = (1, 2, 4)
ROUNDS = int(os.environ.get("DMS_BENCH_SCALE_ROUNDS", "2"))
WORKER_HOSTS = 2
TIMEOUT_S = 900.0
TICK = os.sysconf("SC_CLK_TCK")


def _machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the machine since boot, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / TICK, sum(fields[:8]) / TICK


def _cluster_cpu(cluster: Cluster) -> float:
    """CPU seconds used so far by the processes in the cluster's namespaces (their own and
    their reaped children's)."""
    total = 0.0
    for netns in cluster.network.created:
        pids = subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True).stdout.split()
        total += sum(cpu_seconds(pid) for pid in pids)
    return total


def _all_current(catalog: Catalog, names: set[str]) -> bool:
    with catalog.session() as s:
        return s.scalar(select(func.count()).select_from(Product).where(
            Product.filename.in_(names), Product.is_current)) == len(names)


def _measure(cluster: Cluster, sim, expected: Expected, n: int, run: int, tmp: Path) -> dict:
    database, prefix = f"dms_bench_{run}_{n}", f"bench{run}-{n}:"
    cluster.create_database(database)
    cluster.reset_s3()
    cluster.redis_client().flushall()
    catalog = Catalog(cluster.local_catalog_url(database))

    def env(host):
        return cluster.env(database, prefix, tmp / f"var-{run}-{n}-{host.name}",
                           astrometric_catalog_dir=str(sim.catalog_paths[0].parent))

    workers = []
    for i in range(n):
        host = cluster.worker_hosts[i % len(cluster.worker_hosts)]
        workers += [cluster.start_worker(host, service, env(host), tag=f"-r{run}-n{n}-{i}") for service in SERVICES]
    reconciler = cluster.start_reconciler(cluster.worker_hosts[0], env(cluster.worker_hosts[0]))
    try:
        cluster.wait_ready(workers)
        cluster.dms(cluster.svc, ["refs", "deliver", *map(str, sim.reference_paths)], env(cluster.svc))
        load = os.getloadavg()[0]
        milestones = {f"{s}_s": {f"{e}_{s}.fits" for e in expected.exposures} for s in ("rate", "cal")}
        milestones["level3_s"] = set(expected.level3)
        reached: dict[str, float] = {}
        busy0, total0 = _machine_cpu()
        own0 = _cluster_cpu(cluster)
        t0 = time.monotonic()
        cluster.dms(cluster.svc, ["ingest", str(sim.plan_path), *map(str, sim.telemetry_paths)], env(cluster.svc))

        def done() -> bool:
            cluster.check_alive(workers)
            for key, names in milestones.items():
                if key not in reached and _all_current(catalog, names):
                    reached[key] = round(time.monotonic() - t0, 1)
            return "level3_s" in reached

        wait_for(done, TIMEOUT_S, f"Level 3 with {n} process(es) per stage", lambda: expected.progress(catalog),
                 interval=0.5)
        elapsed = time.monotonic() - t0
        busy1, total1 = _machine_cpu()
        own = _cluster_cpu(cluster) - own0
        retries = sum(len(re.findall(r"will retry|retried later", d.text())) for d in workers)
    finally:
        for daemon in [*workers, reconciler]:
            daemon.stop()
        catalog.dispose()
    rate = len(expected.exposures) / elapsed * 60
    capacity = total1 - total0  # CPU seconds the machine had in the window (all CPUs)
    result = {"processes_per_stage": n, "round": run, "elapsed_s": round(elapsed, 1),
              "exposures_per_min": round(rate, 2), **reached,
              "machine_cpu_busy": round((busy1 - busy0) / capacity, 2),
              "cluster_cpu_share": round(own / capacity, 2), "cluster_cpu_s": round(own, 1),
              "task_retries": retries, "load_average_1min_at_start": round(load, 2)}
    print(f"  {n} process(es) per stage: {elapsed:.1f} s, {rate:.1f} exposures/min; last rate/cal/Level 3 at "
          f"{reached.get('rate_s')}/{reached.get('cal_s')}/{reached.get('level3_s')} s; CPUs busy "
          f"{result['machine_cpu_busy']:.0%}, cluster {result['cluster_cpu_share']:.0%} ({own:.0f} CPU s); "
          f"{retries} retries; load average {load:.2f} at the start", flush=True)
    return result


def run() -> dict:
    reason = namespace_support()
    if reason is not None:
        print(f"scale: not measured: {reason}")
        return {"command": "python -m benchmarks scale", "skipped": reason}
    tmp = Path(tempfile.mkdtemp(prefix=f"dms-bench-scale-{uuid.uuid4().hex[:6]}-"))
    cluster = Cluster(tmp / "cluster", workers=WORKER_HOSTS)
    try:
        print("scale: simulating the program...", flush=True)
        sim = simulate(description(observations=2, dithers=4), tmp / "sim")
        expected = Expected.from_plan(sim.plan)
        cluster.start()
        print(f"scale: {len(expected.exposures)} exposures to Level 3, services on one namespace, "
              f"workers on {WORKER_HOSTS}; {os.cpu_count()} CPUs", flush=True)
        order = [n for r in range(ROUNDS) for n in (COUNTS if r % 2 == 0 else COUNTS[::-1])]
        runs = [_measure(cluster, sim, expected, n, i, tmp) for i, n in enumerate(order)]
    finally:
        cluster.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    figures = {}
    for n in COUNTS:
        mine = [r for r in runs if r["processes_per_stage"] == n]
        figures[n] = {"exposures_per_min": round(statistics.mean(r["exposures_per_min"] for r in mine), 2),
                      "runs": [r["exposures_per_min"] for r in mine]}
    base = figures[COUNTS[0]]["exposures_per_min"]
    for fig in figures.values():
        fig["ratio_to_1"] = round(fig["exposures_per_min"] / base, 2)
    result = {"command": "python -m benchmarks scale", "exposures": len(expected.exposures), "rounds": ROUNDS,
              "worker_hosts": WORKER_HOSTS, "cpus": os.cpu_count(), "figures": figures, "runs": runs}
    print(f"\nexposures per minute, plan to Level 3, mean of {ROUNDS} run(s) each (ratio to 1 process per stage)")
    for n, fig in figures.items():
        print(f"  {n} per stage: {fig['exposures_per_min']:>6.1f}  ({fig['ratio_to_1']:.2f}x)  runs: {fig['runs']}")
    return result
