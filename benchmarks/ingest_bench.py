"""Ingest throughput on a full-frame NIRCam exposure (2048 x 2048, 10 groups, 1 integration).

Stages timed side by side in one run, on the same telemetry file:
- decode: CCSDS packets -> checked packets (CRC, headers)
- pipeline: decode + assembly + keywords (what the SDP computes)
- write: the ``_uncal`` FITS file
- service: the whole handler in-process (local object store, SQLite catalog):
  fetch, pipeline, write, sha256, store, register, announce
Throughput is telemetry megabytes (1e6 bytes) per second of wall time; peak memory is the
process's resident high-water mark.
"""

from __future__ import annotations

import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from benchmarks._child import max_rss_mb
from services.ingest.pipeline import ingest_telemetry
from services.ingest.receive import receive_files
from services.registry import embedded_context
from services.simulator import simulate
from shared.config import Settings
from shared.datamodels import write_product
from shared.runtime import dispatch_events
from shared.telemetry import decode_stream

DESCRIPTION = {
    "program": "09999",
    "title": "Ingest benchmark",
    "pi": "Bench, M.",
    "targets": [{"name": "BENCH-FIELD", "ra": 150.1, "dec": 2.2}],
    "observations": [{
        "target": "BENCH-FIELD", "instrument": "NIRCAM", "detectors": ["NRCA1"], "subarray": "FULL",
        "readpatt": "RAPID", "filter": "F200W", "ngroups": 10, "nints": 1,
    }],
}


def _timed(fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def run() -> dict:
    with tempfile.TemporaryDirectory(prefix="dms-bench-") as tmp:
        tmp = Path(tmp)
        print("simulating one full-frame NIRCam exposure (2048x2048, 10 groups)...", flush=True)
        t0 = time.perf_counter()
        sim = simulate(DESCRIPTION, tmp / "sim", seed=7)
        t_sim = time.perf_counter() - t0
        [tlm] = sim.telemetry_paths
        data = tlm.read_bytes()
        mb = len(data) / 1e6
        created = datetime.now(UTC)

        def pipeline():
            return ingest_telemetry(data, lambda program: sim.plan, created=created, software_version="bench",
                                    segment_bytes=2_000_000_000)

        out = pipeline()
        t_decode = _timed(lambda: sum(1 for _ in decode_stream(data)))
        t_pipeline = _timed(pipeline)
        t_write = _timed(lambda: write_product(tmp / out.files[0].name.format(), out.files[0].product))

        settings = Settings(var_dir=tmp / "var")
        ctx, inline = embedded_context(settings, services=["ingest"])
        received = receive_files(ctx, [sim.plan_path, tlm])
        dispatch_events(ctx.catalog, inline, event_ids=[r.event_id for r in received if r.event_id])
        t0 = time.perf_counter()
        done = inline.run_until_idle()
        t_service = time.perf_counter() - t0
        assert [o.status for _, o in done] == ["ok"], done

    rows = [
        ("decode", t_decode),
        ("pipeline (decode+assemble+keywords)", t_pipeline),
        ("write _uncal FITS", t_write),
        ("service handler end to end", t_service),
    ]
    print(f"\ningest benchmark: {mb:.1f} MB of telemetry, {len(out.files)} _uncal "
          f"(simulation took {t_sim:.1f} s)")
    print(f"  {'stage':<38} {'seconds':>8} {'MB/s':>8}")
    for name, t in rows:
        print(f"  {name:<38} {t:>8.3f} {mb / t:>8.1f}")
    print(f"  peak resident memory {max_rss_mb():.0f} MB")
    return {
        "telemetry_mb": mb,
        "seconds": dict(rows),
        "mb_per_s": {name: mb / t for name, t in rows},
        "peak_rss_mb": max_rss_mb(),
    }
