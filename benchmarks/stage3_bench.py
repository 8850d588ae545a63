"""Stage 3 of one large association with one stage-3 worker and with two on two hosts.

The association: the image3 association of the end-to-end program (``program_bench``:
8 full-frame NIRCam exposures, two detectors at four dither points), simulated once and
kept in ``bench-results/program-input/``. The cluster is the scale-out test's
(``tests/scale/cluster.py``): Redis, PostgreSQL and moto's S3 server on a "services"
network namespace, workers on two "worker" namespaces, every process reaching the
services by address over the namespaces' bridge.

The program is taken to the point where stage 3 is due once: every worker but stage 3's
runs (on both hosts) until every ``_cal`` is current and the image3 association's
``stage3.run`` work item waits; then they stop. That catalog is the template of every
measured run: each run gets a copy of it (``CREATE DATABASE ... TEMPLATE``) and an emptied
broker, starts its stage-3 workers (concurrency 1), and is timed from the moment the
reconciler sends the waiting ``stage3.run`` (its work item's dispatch) until the last
Level-3 product is archived, both read from the catalog; the wall clock around it (which
adds the start of the ``dms reconcile`` process that sends the message) is reported too.
The runs, in this order so that a drift of the machine's load weighs on both alike:
one worker (split), two workers on two hosts (split), two, one; and one worker with the
association not split (``DMS_STAGE3_SPLIT_MEMBERS=0``), first and last. Products are the
same bytes in every run, so the object store is shared.

Reported: each run's seconds, tasks and CPU seconds of the stage-3 workers; the ratio of
the one-worker to the two-worker time (target, issue 20: at least 1.6); the split run's
cost on one worker beside the unsplit one. Needs root (network namespaces); otherwise it
says so and measures nothing.
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import func, select

from benchmarks import program_bench
from benchmarks._child import cpu_seconds
from shared.catalog import Catalog, EventRecord, Product, WorkItem, WorkState
from tests.scale.cluster import PG_PORT, PG_USER, Cluster, namespace_support, wait_for
from tests.scale.program import Expected

__all__ = ["run"]

TARGET_RATIO = 1.6
UPSTREAM = ("ingest", "detector1", "associations", "stage2")
TIMEOUT_S = 1200.0
# (stage-3 workers, split?) in the order run
RUNS = ((1, False), (1, True), (2, True), (2, True), (1, True), (1, False))


def _psql(cluster: Cluster, sql: str) -> None:
    import psycopg

    with psycopg.connect(host=str(cluster.pg_dir), port=PG_PORT, user=PG_USER, dbname="postgres",
                         autocommit=True) as conn:
        conn.execute(sql)


def _stage3_waits(catalog: Catalog, expected: Expected) -> bool:
    cals = {f"{e}_cal.fits" for e in expected.exposures}
    with catalog.session() as s:
        current = s.scalar(select(func.count()).select_from(Product).where(Product.filename.in_(cals),
                                                                            Product.is_current))
        waiting = s.scalar(select(func.count()).select_from(WorkItem).where(WorkItem.task == "stage3.run",
                                                                             WorkItem.state == WorkState.PENDING))
    return current == len(cals) and waiting >= 1


def _template(cluster: Cluster, sim, expected: Expected, tmp: Path) -> str:
    """The catalog with stage 3 due (module docstring); its database name."""
    database = "dms_bench_stage3_base"
    cluster.create_database(database)
    catalog = Catalog(cluster.local_catalog_url(database))

    def env(host):
        return cluster.env(database, "base:", tmp / f"var-base-{host.name}",
                           astrometric_catalog_dir=str(sim.catalog_paths[0].parent))

    workers = [cluster.start_worker(host, service, env(host), tag="-base")
               for host in cluster.worker_hosts for service in UPSTREAM]
    try:
        cluster.wait_ready(workers)
        cluster.dms(cluster.svc, ["refs", "deliver", *map(str, sim.reference_paths)], env(cluster.svc))
        t0 = time.monotonic()
        cluster.dms(cluster.svc, ["ingest", str(sim.plan_path), *map(str, sim.telemetry_paths)], env(cluster.svc))
        wait_for(lambda: cluster.check_alive(workers) or _stage3_waits(catalog, expected), TIMEOUT_S,
                 "every _cal and the image3 association", lambda: expected.progress(catalog), interval=1.0)
        print(f"stage3: the program is at stage 3 after {time.monotonic() - t0:.0f} s", flush=True)
    finally:
        for w in workers:
            w.stop()
        catalog.dispose()
    return database


def _cpu(workers) -> float:
    """CPU seconds of the workers' process groups (pool children included)."""
    return sum(cpu_seconds(pid) for w in workers for pid in program_bench.process_group(w.proc.pid))


def _measure(cluster: Cluster, template: str, sim, expected: Expected, i: int, n: int, split: bool,
             tmp: Path) -> dict:
    database, prefix = f"dms_bench_stage3_{i}", f"stage3-{i}:"
    _psql(cluster, f'CREATE DATABASE "{database}" TEMPLATE "{template}"')
    cluster.redis_client().flushall()
    catalog = Catalog(cluster.local_catalog_url(database))
    # the reconciler sends the waiting stage3.run at once (its broker was emptied)
    settings = {"astrometric_catalog_dir": str(sim.catalog_paths[0].parent),
                "stage3_split_members": 4 if split else 0, "work_start_timeout_seconds": 0}

    def env(host):
        return cluster.env(database, prefix, tmp / f"var-{i}-{host.name}", **settings)

    hosts = cluster.worker_hosts
    workers = [cluster.start_worker(hosts[k % len(hosts)], "stage3", env(hosts[k % len(hosts)]), tag=f"-{i}-{k}")
               for k in range(n)]
    try:
        cluster.wait_ready(workers)
        cpu0 = _cpu(workers)
        t0 = time.monotonic()
        cluster.dms(cluster.svc, ["reconcile", "--now"], env(cluster.svc))  # sends the waiting stage3.run
        wait_for(lambda: cluster.check_alive(workers) or expected.done(catalog), TIMEOUT_S,
                 f"the Level-3 products with {n} stage-3 worker(s)", lambda: expected.progress(catalog),
                 interval=0.25)
        wall = time.monotonic() - t0
        cpu = _cpu(workers) - cpu0
        time.sleep(1.0)  # the last task's "succeeded" line follows its last product
        phases = _phases(catalog)
        elapsed = _sent_to_current(catalog, expected)
    finally:
        for w in workers:
            w.stop()
        catalog.dispose()
        _psql(cluster, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    tasks = [len(re.findall(r"Task stage3\.[\w-]+\[[^\]]+\] succeeded", w.text())) for w in workers]
    result = {"run": i, "workers": n, "split": split, "elapsed_s": round(elapsed, 2), "wall_s": round(wall, 1),
              "tasks_per_worker": tasks, "cpu_s": round(cpu, 1), "phases": phases}
    print(f"  {n} stage-3 worker(s), {'split' if split else 'one task'}: {elapsed:.2f} s (wall {wall:.1f} s); "
          "tasks per worker "
          f"{tasks}; {cpu:.0f} CPU s; " + ", ".join(f"{name} {p['tasks']} x {p['mean_s']} s" for name, p in phases.items()),
          flush=True)
    return result


def _sent_to_current(catalog: Catalog, expected: Expected) -> float:
    """Seconds from the moment the waiting ``stage3.run`` was sent (its work item's
    dispatch) to the moment the last Level-3 product was archived, both from the catalog.
    The wall clock around the run adds the start of the ``dms reconcile`` process that
    sends it (about a second of Python imports, the same in every run)."""
    with catalog.session() as s:
        sent = s.scalar(select(func.max(WorkItem.dispatched_at)).where(WorkItem.task == "stage3.run"))
        done = s.scalar(select(func.max(Product.archived_at)).where(Product.filename.in_(expected.level3),
                                                                     Product.is_current))
    return (done - sent).total_seconds()


def _phases(catalog: Catalog) -> dict[str, dict]:
    """Per phase of the run (``run`` for the association's own task): its tasks, their mean
    seconds (claim to done, from the work items), the wall time from its first start to
    its last end, and when it started and ended (seconds from the run's first claim): the
    gap between one phase's end and the next one's start is the hop from the task that
    completed a phase to the first task of the next (commit, publish, a worker's claim)."""
    with catalog.session() as s:
        rows = s.execute(select(WorkItem.task, EventRecord.data, WorkItem.started_at, WorkItem.finished_at)
                         .join(EventRecord, EventRecord.id == WorkItem.event_id)
                         .where(WorkItem.task.like("stage3.%"), WorkItem.state == WorkState.DONE)).all()
    spans: dict[str, list] = {}
    for task, data, start, end in rows:
        name = data.get("phase", "run") if task == "stage3.part" else "run"
        spans.setdefault(name, []).append((start, end))
    order = ("run", "survey", "single", "median", "member", "mosaic")
    t0 = min(b for phase in spans.values() for b, _ in phase)
    return {name: {"tasks": len(spans[name]),
                   "mean_s": round(statistics.mean((e - b).total_seconds() for b, e in spans[name]), 2),
                   "wall_s": round((max(e for _, e in spans[name]) - min(b for b, _ in spans[name])).total_seconds(), 1),
                   "start_s": round((min(b for b, _ in spans[name]) - t0).total_seconds(), 2),
                   "end_s": round((max(e for _, e in spans[name]) - t0).total_seconds(), 2)}
            for name in order if name in spans}


def run() -> dict:
    reason = namespace_support()
    if reason is not None:
        print(f"stage3: not measured: {reason}")
        return {"command": "python -m benchmarks stage3", "skipped": reason}
    sim = program_bench.simulation()
    expected = Expected.from_plan(sim.plan)
    tmp = Path(tempfile.mkdtemp(prefix=f"dms-bench-stage3-{uuid.uuid4().hex[:6]}-"))
    cluster = Cluster(tmp / "cluster", workers=2)
    try:
        cluster.start()
        print(f"stage3: {len(expected.exposures)} full-frame members; services on one namespace, workers on "
              f"two; {os.cpu_count()} CPUs", flush=True)
        template = _template(cluster, sim, expected, tmp)
        runs = [_measure(cluster, template, sim, expected, i, n, split, tmp) for i, (n, split) in enumerate(RUNS)]
    finally:
        cluster.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    def mean(n: int, split: bool) -> float:
        return round(statistics.mean(r["elapsed_s"] for r in runs if r["workers"] == n and r["split"] == split), 2)

    one, two, unsplit = mean(1, True), mean(2, True), mean(1, False)
    result = {"command": "python -m benchmarks stage3", "members": len(expected.exposures), "cpus": os.cpu_count(),
              "one_worker_s": one, "two_workers_s": two, "ratio": round(one / two, 2), "target_ratio": TARGET_RATIO,
              "unsplit_one_worker_s": unsplit, "split_cost_on_one_worker": round(one / unsplit, 2), "runs": runs}
    print(f"\nstage 3 of {len(expected.exposures)} full frames: one worker {one} s, two workers on two hosts {two} s: "
          f"{result['ratio']:.2f}x (target {TARGET_RATIO}x); not split, one worker: {unsplit} s "
          f"(the split costs {result['split_cost_on_one_worker']:.2f}x on one worker)")
    return result
