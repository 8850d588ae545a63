"""Per-step time and memory of a pipeline run, for the benchmarks that measure one.

The pipelines' runner enters a *step hook* around every declared step: :class:`StepProbe`
is one, summing each step's wall time, or, while ``tracing``, the peak of traced
allocations during the step above what was allocated when it started.
:func:`measure_runs` times the best of a few runs and then traces one; "other" is the run
minus its steps (array copies, headers, products).
"""

from __future__ import annotations

import time
from contextlib import contextmanager

from benchmarks._child import max_rss_mb, rss_mb

__all__ = ["StepProbe", "best", "measure_runs", "print_steps"]


def best(fn, repeat: int):
    """(the fastest of ``repeat`` calls of ``fn``, seconds; the last call's value)."""
    fastest, value = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        value = fn()
        fastest = min(fastest, time.perf_counter() - t0)
    return fastest, value


class StepProbe:
    """Wall time (summed over calls) or traced-memory peak of each named step, depending
    on ``tracing``; the pipelines' runner enters it around every step (their step hook)."""

    def __init__(self) -> None:
        self.tracing = False
        self.seconds: dict[str, float] = {}
        self.peaks: dict[str, float] = {}
        self.absolute: list[int] = []

    @contextmanager
    def __call__(self, name: str):
        import tracemalloc

        if not self.tracing:
            t0 = time.perf_counter()
            try:
                yield
            finally:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0
            return
        start = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        try:
            yield
        finally:
            peak = tracemalloc.get_traced_memory()[1]
            self.absolute.append(peak)
            self.peaks[name] = max(self.peaks.get(name, 0.0), (peak - start) / 2**20)


def measure_runs(run, probe: StepProbe, repeat: int) -> dict:
    """Best-of-``repeat`` timing of ``run()`` with its steps, then one traced run."""
    import tracemalloc

    rss_before = rss_mb()
    best_total, best_steps, rss_first, out = float("inf"), {}, None, None
    for _ in range(repeat):
        probe.seconds = {}
        t0 = time.perf_counter()
        out = run()
        total = time.perf_counter() - t0
        if total < best_total:
            best_total, best_steps = total, dict(probe.seconds)
        if rss_first is None:  # one run in a fresh process
            rss_first = max_rss_mb()
    max_rss = max_rss_mb()
    del out
    probe.tracing, probe.peaks, probe.absolute = True, {}, []
    tracemalloc.start()
    run_start = tracemalloc.get_traced_memory()[0]
    out = run()
    probe.absolute.append(tracemalloc.get_traced_memory()[1])
    tracemalloc.stop()
    probe.tracing = False
    return {
        "output": out,
        "seconds": {"steps": best_steps, "other": best_total - sum(best_steps.values()), "total": best_total},
        "memory_mb": {"steps": dict(probe.peaks), "run_peak_traced": (max(probe.absolute) - run_start) / 2**20,
                      "max_rss_first_run": rss_first, "max_rss_after_timing_runs": max_rss,
                      "rss_before_run": rss_before},
    }


def print_steps(title: str, r: dict) -> None:
    t, m = r["seconds"], r["memory_mb"]
    print(f"\n{title}")
    print(f"  {'step':<18} {'seconds':>8} {'peak MB':>9}   status")
    for name, seconds in t["steps"].items():
        print(f"  {name:<18} {seconds:>8.3f} {m['steps'].get(name, float('nan')):>9.0f}   "
              f"{r['statuses'].get(name, '')}")
    print(f"  {'other':<18} {t['other']:>8.3f}")
    print(f"  {'total':<18} {t['total']:>8.3f} {m['run_peak_traced']:>9.0f}")
    print(f"  max RSS after one run {m['max_rss_first_run']:.0f} MB (resident before it "
          f"{m['rss_before_run']:.0f} MB: interpreter, inputs and references)")
    print("  I/O (not in the total): " + ", ".join(f"{k} {v:.3f} s" for k, v in t["io"].items()))
