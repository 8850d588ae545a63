"""Measuring in a child process: one CPU, single-threaded numeric libraries, results as JSON.

The parent prepares inputs and calls :func:`run_in_child`; the child (the benchmark
module run with ``python -m``) calls :func:`pin_to_one_core` first and writes its result
to the path it was given.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

__all__ = ["SINGLE_THREAD_ENV", "cpu_seconds", "max_rss_mb", "peak_rss_mib", "pin_to_one_core", "rss_mb",
           "run_in_child"]

# Set before numpy is imported in the child, so BLAS and friends stay on one thread.
SINGLE_THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "VECLIB_MAXIMUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
}
ROOT = Path(__file__).resolve().parents[1]


def run_in_child(module: str, *args: str) -> dict:
    """Run ``python -m module *args <result.json>`` with :data:`SINGLE_THREAD_ENV`; its result."""
    with tempfile.TemporaryDirectory(prefix="dms-bench-") as tmp:
        result_path = Path(tmp) / "result.json"
        subprocess.run([sys.executable, "-m", module, *args, str(result_path)],
                       env={**os.environ, **SINGLE_THREAD_ENV}, cwd=ROOT, check=True)
        return json.loads(result_path.read_text())


def pin_to_one_core() -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


def rss_mb() -> float:
    """Current resident set size, MiB (Linux /proc; NaN elsewhere)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return float("nan")
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def cpu_seconds(pid: int | str) -> float:
    """CPU seconds a process has used, its own and its reaped children's (utime, stime,
    cutime, cstime of ``/proc/<pid>/stat``); 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def peak_rss_mib(pid: int | str = "self") -> float:
    """A process's resident high-water mark (``VmHWM``), MiB; 0 when it is gone (Linux)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except (OSError, IndexError, ValueError):
        pass
    return 0.0


def max_rss_mb() -> float:
    """This process's resident high-water mark, MiB: ``VmHWM`` of its own address space
    (Linux /proc), else ru_maxrss.

    Not ru_maxrss where /proc has it: Linux carries the parent's high-water mark into a
    child's ru_maxrss through fork and exec, so a child started by a parent that had just
    simulated a full-frame exposure reported the parent's 1.7 GB as its own peak."""
    return peak_rss_mib("self") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
