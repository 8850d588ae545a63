"""A full-frame imaging program from its telemetry to its Level-3 notification, on workers.

The program: one NIRCam imaging observation of two detectors (NRCA1, NRCA2) at the four
points of a box dither, FULL (2048 x 2048), RAPID, 8 groups, 800 faint stars per detector
(the scale-out program of ``tests/scale/program.py`` at full frame): 8 exposures. It is
simulated once and kept in ``bench-results/program-input/`` (reused while its description
and seed are unchanged).

The system is the deployed one of the fault tests (``tests/faults/harness.py``): one
``dms worker SERVICE`` process (concurrency 1) of each of the seven services (stage 3:
``DMS_BENCH_STAGE3_WORKERS``, default 1; with ``DMS_STAGE3_SPLIT_MEMBERS=4`` in the
environment the image3 association is split across them, docs/stage3.md) and the
outbox reconciler, a Redis and moto's S3 server of the run's own, a fresh PostgreSQL
database on the local server. Nothing is killed, so the broker's visibility timeout is
set longer than any task. Once every worker is ready, the references are delivered and a
webhook subscriber subscribes to the program (not timed); the clock starts when the
downlink arrives (what ``dms ingest`` does: plan and telemetry into the raw store, each
arrival sent to the ingest workers as it is recorded) and stops when the last Level-3
product's notification reaches the subscriber.

Reported, in seconds from the arrival: when each ``_rate`` and each ``_cal`` became current
(from the catalog's archive times), the last Level-3 product and its notification (from
the subscriber's clock); per service: tasks run and the seconds they took (the workers'
own "succeeded in" lines), the CPU seconds its processes used during the run (every
process of the worker's process group, pool children included, from
``/proc/<pid>/stat``, until the system is idle after the last notification) and its peak
resident memory (the largest ``VmHWM`` of any of its processes, sampled every half
second); per task, the hops of its work items (its event recorded -> the message
published -> a worker claims it -> done, from the catalog's work records). The image3
association and its ``_cal`` members are then downloaded to
``bench-results/program-input/stage3/``, so stage 3 can be run and profiled alone.
Last, a small program (four SUB160 exposures) goes through the idle system, and each
task's time is set beside the time of its pipeline's steps (the runner logs it): the
difference is the framework's overhead per task (target 50 ms).

Target (issue 20, on a 2-core machine): at most 120 s from the arrival to the last
Level-3 notification.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import statistics
import tempfile
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from sqlalchemy import select

from benchmarks._child import cpu_seconds, peak_rss_mib
from shared.catalog import Product, ReferenceFile
from tests.conftest import PG_ADMIN_URL
from tests.scale.program import Expected, description

__all__ = ["process_group", "run", "simulation"]

INPUT_DIR = Path("bench-results") / "program-input"
# stage-3 worker processes; with DMS_STAGE3_SPLIT_MEMBERS set, the image3 association is
# split across them (docs/stage3.md)
STAGE3_WORKERS = int(os.environ.get("DMS_BENCH_STAGE3_WORKERS", "1"))
STAGE3_SPLIT_MEMBERS = os.environ.get("DMS_STAGE3_SPLIT_MEMBERS", "0")
TARGET_S = 120.0
TIMEOUT_S = 1800.0
DESCRIPTION = description(observations=1, dithers=4, subarray="FULL", ngroups=8, stars_per_window=800.0)


def simulation():
    """The program, simulated once and kept in ``bench-results/program-input/``."""
    return _simulation(INPUT_DIR)


def _simulation(directory: Path):
    """The program simulated (kept in ``directory`` while the description is the same)."""
    from services.simulator import simulate

    directory = directory.resolve()
    stamp, kept = directory / "input.json", directory / "result.pickle"
    if stamp.exists() and kept.exists() and json.loads(stamp.read_text()) == DESCRIPTION:
        sim = pickle.loads(kept.read_bytes())
        if all(p.exists() for p in [sim.plan_path, *sim.telemetry_paths, *sim.reference_paths]):
            print(f"reusing the simulated program in {directory}", flush=True)
            return sim
    shutil.rmtree(directory, ignore_errors=True)
    t0 = time.monotonic()
    sim = simulate(DESCRIPTION, directory)
    kept.write_bytes(pickle.dumps(sim))
    stamp.write_text(json.dumps(DESCRIPTION))
    print(f"simulated {len(sim.telemetry_paths)} exposures in {time.monotonic() - t0:.0f} s", flush=True)
    return sim


def process_group(pgid: int) -> list[int]:
    """Every process of process group ``pgid`` (a worker and its pool children)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # pgrp
            pids.append(int(entry.name))
    return pids


class _Sampler:
    """CPU seconds and peak memory of each worker's process group, sampled."""

    def __init__(self, workers: dict):
        self.workers = workers
        self.peak: dict[str, float] = defaultdict(float)
        self._start: dict[str, float] = {}
        self._now: dict[str, float] = {}

    def _groups(self) -> dict[str, list[int]]:
        return {name: process_group(p.proc.pid) for name, p in self.workers.items() if p.proc is not None}

    def start(self) -> None:
        self._start = {name: sum(cpu_seconds(pid) for pid in pids) for name, pids in self._groups().items()}
        self._now = dict(self._start)

    def sample(self) -> None:
        for name, pids in self._groups().items():
            for pid in pids:
                self.peak[name] = max(self.peak[name], peak_rss_mib(pid))
            self._now[name] = sum(cpu_seconds(pid) for pid in pids)

    def cpu_used(self) -> dict[str, float]:
        """CPU seconds of each worker between :meth:`start` and the last sample (a pool
        child that ended was reaped by its worker, which then counts it in cutime)."""
        return {name: round(self._now[name] - self._start[name], 1) for name in self._start}


def _task_times(log: Path) -> dict[str, dict]:
    out: dict[str, dict] = {}
    text = log.read_text(errors="replace") if log.exists() else ""
    for task, seconds in ((m["task"], m["seconds"]) for m in _TASK_LINE.finditer(text) if m["task"]):
        t = out.setdefault(task, {"tasks": 0, "seconds": 0.0, "longest": 0.0})
        t["tasks"] += 1
        t["seconds"] = round(t["seconds"] + float(seconds), 2)
        t["longest"] = round(max(t["longest"], float(seconds)), 2)
    return out


def _archived(ctx, names) -> dict[str, float]:
    """Archive time (epoch seconds) of each current product of ``names``."""
    with ctx.catalog.session() as s:
        rows = s.execute(select(Product.filename, Product.archived_at)
                         .where(Product.filename.in_(set(names)), Product.is_current)).all()
    return {name: at.replace(tzinfo=at.tzinfo or UTC).timestamp() for name, at in rows}


def _hops(ctx, since: datetime | None = None) -> dict[str, dict]:
    """Per task, over its work items (those recorded ``since``, when given): how many, and
    the median and longest seconds from the commit that recorded its event to the
    message's publication, from publication to a worker claiming it (the queue's wait),
    and from the claim to its end."""
    from shared.catalog import WorkItem

    query = select(WorkItem.task, WorkItem.created_at, WorkItem.dispatched_at, WorkItem.started_at,
                   WorkItem.finished_at)
    if since is not None:
        query = query.where(WorkItem.created_at >= since)
    with ctx.catalog.session() as s:
        rows = s.execute(query).all()
    spans: dict[str, dict[str, list[float]]] = {}
    for task, created, dispatched, started, finished in rows:
        if None in (created, dispatched, started, finished):
            continue
        t = spans.setdefault(task, {"commit_to_publish": [], "publish_to_start": [], "run": []})
        t["commit_to_publish"].append((dispatched - created).total_seconds())
        t["publish_to_start"].append((started - dispatched).total_seconds())
        t["run"].append((finished - started).total_seconds())
    return {task: {"items": len(v["run"]),
                   **{k: {"median_s": round(statistics.median(xs), 3), "max_s": round(max(xs), 3)}
                      for k, xs in v.items()}}
            for task, v in sorted(spans.items())}


# a pipeline run's science time, or a task that succeeded (in the worker's log)
_TASK_LINE = re.compile(r"steps took (?P<steps>[0-9.]+) s|Task (?P<task>[\w.]+)\[[0-9a-f-]+\] succeeded in "
                        r"(?P<seconds>[0-9.]+)s")


def task_overheads(log_text: str) -> list[tuple[float, float]]:
    """(task seconds, science seconds) of each task a worker's log says succeeded, the
    science being the pipeline runs ("steps took") it logged since the previous task
    ended; tasks that ran no pipeline are left out."""
    out, science = [], []
    for m in _TASK_LINE.finditer(log_text):
        if m["steps"]:
            science.append(float(m["steps"]))
        else:
            if science:
                out.append((float(m["seconds"]), sum(science)))
            science = []
    return out


def _overhead(h, workdir: Path) -> dict[str, dict]:
    """A small program (four SUB160 exposures of one detector) delivered to the idle
    system and taken to its end; per service that ran a pipeline for it, each task's
    time (the worker's "succeeded in") minus its pipeline's steps (the runner's "steps
    took" line: the science) is the framework's overhead (fetching and checking inputs,
    choosing and reading references, writing and archiving products, the catalog): its
    median and smallest. The first task of a service also fills the worker's reference
    cache; the median is the steady state."""
    from services.console import ingest_paths
    from services.simulator import simulate
    from shared.refdata import deliver as deliver_references
    from tests.faults.harness import small_program

    desc = small_program()
    desc["program"] = 1236
    desc["observations"][0]["dither"] = {"pattern": "N-POINT-LINE", "npoints": 4, "size": 2.0}
    sim = simulate(desc, workdir / "small")
    with h.ctx.catalog.session() as s:  # the program's own references serve where they are named alike
        have = set(s.scalars(select(ReferenceFile.filename)))
    if new := [p for p in sim.reference_paths if p.name not in have]:
        deliver_references(h.ctx, new, note="simulator references for the overhead run")
    h.system.wait_idle(quiet=2, timeout=120)
    marks = {name: len(p.log.read_text(errors="replace")) for name, p in h.system.workers.items()}
    since = datetime.now(UTC)
    ingest_paths(h.ctx, None, [sim.plan_path, *sim.telemetry_paths])
    h.system.wait_idle(quiet=3, timeout=300)
    out = {}
    hops = _hops(h.ctx, since)
    for name, proc in h.system.workers.items():
        pairs = task_overheads(proc.log.read_text(errors="replace")[marks[name]:])
        if not pairs:
            continue
        ms = [1000 * (task - science) for task, science in pairs]
        out[name] = {"tasks": len(pairs), "median_task_s": round(statistics.median(t for t, _ in pairs), 3),
                     "median_science_s": round(statistics.median(sc for _, sc in pairs), 3),
                     "median_overhead_ms": round(statistics.median(ms), 1), "least_overhead_ms": round(min(ms), 1)}
        task = next((t for t in hops if t.startswith(f"{name}.")), None)
        if task is not None:  # the way to the task: its event's commit -> publication -> a worker's claim
            out[name]["hops_ms"] = {k: round(1000 * hops[task][k]["median_s"], 1)
                                    for k in ("commit_to_publish", "publish_to_start")}
    return out


def _keep_stage3_inputs(ctx, directory: Path) -> Path | None:
    """The image3 association and its ``_cal`` members, downloaded to ``directory`` so that
    stage 3 can be run and profiled alone (``dms run image3 <directory>/<asn>``); the
    association's path."""
    from shared.catalog import Artifact

    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    asn = None
    with ctx.catalog.session() as s:
        rows = s.execute(select(Product.filename, Product.suffix, Artifact.uri).join(Artifact)
                         .where(Product.is_current, Product.suffix.in_(("cal", "asn")),
                                Artifact.kind == "data")).all()
    for name, suffix, uri in rows:
        if suffix == "asn" and "image3" not in name:
            continue
        ctx.store.download_uri(uri, directory / name)
        if suffix == "asn":
            asn = directory / name
    return asn


def run() -> dict:
    from services.console import ingest_paths
    from shared.refdata import deliver as deliver_references
    from shared.subscriptions import SubscriptionSpec, create_subscription
    from shared.webhooks import WebhookPolicy
    from tests.faults.harness import Harness
    from tests.system import WORKERS

    sim = simulation()
    expected = Expected.from_plan(sim.plan)
    telemetry_mb = sum(p.stat().st_size for p in sim.telemetry_paths) / 1e6
    database = f"dms_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    url = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1) + f"/{database}"
    with tempfile.TemporaryDirectory(prefix="dms-program-bench-") as tmp:
        h = Harness(Path(tmp), url, sim, workers=(*WORKERS, *["stage3"] * (STAGE3_WORKERS - 1)))
        try:
            h.start(DMS_BROKER_VISIBILITY_TIMEOUT=str(int(TIMEOUT_S)), DMS_RECONCILE_AFTER_SECONDS="30",
                    DMS_STAGE3_SPLIT_MEMBERS=STAGE3_SPLIT_MEMBERS)
            for p in h.system.workers.values():
                h.system.wait_until(lambda p=p: "ready." in p.tail(20000), 120, f"{p.name} ready")
            deliver_references(h.ctx, sim.reference_paths, note="simulator references for the program benchmark")
            program = str(int(sim.plan.program))
            with h.ctx.catalog.session() as s:
                create_subscription(s, "sci@example.org", SubscriptionSpec(
                    name="the program's new data", channel="webhook", target=h.webhook.url,
                    filters={"programs": [program], "event_types": ["new"]}),
                    policy=WebhookPolicy.from_settings(h.ctx.settings))
            h.system.wait_idle(quiet=3, timeout=120)
            sampler = _Sampler(h.system.workers)
            sampler.start()
            load = os.getloadavg()[0]
            t0 = time.time()
            ingest_paths(h.ctx, None, [sim.plan_path, *sim.telemetry_paths])
            level3 = set(expected.level3)

            def notified() -> dict[str, float]:
                seen: dict[str, float] = {}
                for at, body in h.webhook.received_at():
                    for row in body.get("data") or []:
                        if row.get("filename") in level3:
                            seen.setdefault(row["filename"], at)
                return seen

            def done() -> bool:
                sampler.sample()
                return len(notified()) == len(level3)

            h.system.wait_until(done, TIMEOUT_S, "the Level-3 notifications",
                                lambda: expected.progress(h.ctx.catalog), poll=0.5)
            h.system.wait_idle(quiet=3, timeout=300)  # the tasks end (their logs say how long they took)
            sampler.sample()
            kept = _keep_stage3_inputs(h.ctx, INPUT_DIR.resolve() / "stage3")
            rates = _archived(h.ctx, [f"{e}_rate.fits" for e in expected.exposures])
            cals = _archived(h.ctx, [f"{e}_cal.fits" for e in expected.exposures])
            l3 = _archived(h.ctx, level3)
            notes = notified()
            result = {
                "program": DESCRIPTION["observations"][0] | {"exposures": len(expected.exposures),
                                                             "telemetry_mb": round(telemetry_mb, 1)},
                "load_average_at_start": round(load, 2),
                "stage3_workers": STAGE3_WORKERS, "stage3_split_members": int(STAGE3_SPLIT_MEMBERS),
                "started": datetime.fromtimestamp(t0, UTC).isoformat(timespec="seconds"),
                "rate_s": {n: round(at - t0, 1) for n, at in sorted(rates.items(), key=lambda kv: kv[1])},
                "cal_s": {n: round(at - t0, 1) for n, at in sorted(cals.items(), key=lambda kv: kv[1])},
                "level3_s": {n: round(at - t0, 1) for n, at in sorted(l3.items(), key=lambda kv: kv[1])},
                "level3_notified_s": {n: round(at - t0, 1) for n, at in sorted(notes.items(), key=lambda kv: kv[1])},
                "services": {
                    name: {"tasks": _task_times(p.log), "cpu_s": sampler.cpu_used().get(name),
                           "peak_rss_mib": round(sampler.peak[name])}
                    for name, p in h.system.workers.items()},
            }
            result["last_level3_notified_s"] = max(result["level3_notified_s"].values())
            result["target_s"] = TARGET_S
            result["target_met"] = result["last_level3_notified_s"] <= TARGET_S
            result["stage3_inputs"] = str(kept) if kept else None
            result["hops"] = _hops(h.ctx)
            result["small_program_overhead"] = _overhead(h, Path(tmp))
        finally:
            h.stop()
            with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    _print(result)
    return result


def _print(r: dict) -> None:
    rates, l3 = list(r["rate_s"].values()), list(r["level3_s"].values())
    print(f"program: {r['program']['exposures']} full-frame exposures, {r['program']['telemetry_mb']} MB of "
          f"telemetry, load average {r['load_average_at_start']} at the start")
    print(f"  arrival -> _rate: first {min(rates)} s, last {max(rates)} s; -> last _cal "
          f"{max(r['cal_s'].values())} s; -> last Level-3 product {max(l3)} s; -> its notification "
          f"{r['last_level3_notified_s']} s (target {r['target_s']:.0f} s: "
          f"{'met' if r['target_met'] else 'missed'})")
    print(f"  {'service':<13} {'tasks':>5} {'task s':>8} {'longest':>8} {'CPU s':>7} {'peak MiB':>9}")
    for name, s in r["services"].items():
        n = sum(t["tasks"] for t in s["tasks"].values())
        secs = sum(t["seconds"] for t in s["tasks"].values())
        longest = max((t["longest"] for t in s["tasks"].values()), default=0.0)
        print(f"  {name:<13} {n:>5} {secs:>8.1f} {longest:>8.1f} {s['cpu_s']:>7.1f} {s['peak_rss_mib']:>9}")
    print(f"  {'task':<20} {'items':>5} {'commit->publish':>16} {'publish->start':>15} {'run':>13}  "
          "(median / longest, s)")
    for task, h in r["hops"].items():
        cells = [f"{h[k]['median_s']:.3f} / {h[k]['max_s']:.1f}" for k in ("commit_to_publish", "publish_to_start", "run")]
        print(f"  {task:<20} {h['items']:>5} {cells[0]:>16} {cells[1]:>15} {cells[2]:>13}")
    print("  a small program on the idle system (4 SUB160 exposures): framework overhead per task")
    for name, o in r["small_program_overhead"].items():
        hops = o.get("hops_ms")
        print(f"    {name:<13} {o['tasks']} tasks: median task {o['median_task_s']:.3f} s, science "
              f"{o['median_science_s']:.3f} s; overhead median {o['median_overhead_ms']:.0f} ms, least "
              f"{o['least_overhead_ms']:.0f} ms (target 50)"
              + (f"; before it, commit -> publish {hops['commit_to_publish']:.0f} ms, publish -> start "
                 f"{hops['publish_to_start']:.0f} ms (medians)" if hops else ""))
