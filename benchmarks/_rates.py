"""Simulated ``_rate`` inputs of the spectroscopy benchmarks, made once and kept: a
description simulated with its references, each exposure of one detector taken through
ingest and ``run_detector1``; reused while the description and seed are unchanged."""

from __future__ import annotations

import json
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

__all__ = ["rates", "simulated_rates"]

CREATED = "2026-01-01T00:00:00"


def rates(directory: Path, suffix: str = "rate") -> list[Path]:
    """The ``_rate`` (or ``_rateints``: ``suffix``) files of ``directory``, sorted by name."""
    return sorted(directory.glob(f"*_{suffix}.fits"))


def simulated_rates(directory: Path, description: dict, seed: int, detector: str, count: int, what: str, *,
                    segment_bytes: int = 2_000_000_000, suffix: str = "rate") -> Path:
    """``directory`` holding the ``count`` ``_rate`` (or, ``suffix`` "rateints", a time
    series's ``_rateints``: one per segment of ``segment_bytes``) of ``detector`` (e.g.
    ``mirimage``), ``sim/refs`` and the simulation's MSA metadata files: made now (``what``
    says what is simulated) unless the directory already holds them for this description,
    seed and segment size."""
    stamp = directory / "input.json"
    wanted = {"description": description, "seed": seed, "segment_bytes": segment_bytes, "suffix": suffix}
    if stamp.exists() and json.loads(stamp.read_text()) == wanted and len(rates(directory, suffix)) == count:
        print(f"reusing the simulated exposures in {directory}", flush=True)
        return directory

    from services.detector1.pipeline import DETECTOR1, run_detector1
    from services.ingest.pipeline import ingest_telemetry
    from services.simulator import simulate
    from shared.datamodels import write_product
    from shared.refdata import LocalReferences, load_references

    stamp.unlink(missing_ok=True)
    for stale in rates(directory, suffix):
        stale.unlink()
    print(f"simulating {what} with references...", flush=True)
    t0 = time.perf_counter()
    sim = simulate(description, directory / "sim", seed=seed)
    refs_dir = directory / "sim" / "refs"
    for msa in sim.msa_paths:
        shutil.copy(msa, directory / msa.name)
    for telemetry in sim.telemetry_paths:
        out = ingest_telemetry(telemetry.read_bytes(), lambda program: sim.plan,
                               created=datetime(2026, 1, 1, tzinfo=UTC), software_version="bench",
                               segment_bytes=segment_bytes)
        for uncal in out.files:
            if uncal.name.suffix != "uncal" or detector not in uncal.name.format():
                continue
            kw = uncal.product.keywords
            refs = load_references(LocalReferences(refs_dir=refs_dir), kw, DETECTOR1.reftypes(kw)).found
            out = run_detector1(uncal.product, refs, context="bench", software_version="bench", created=CREATED)
            write_product(directory / uncal.name.with_suffix(suffix).format(), getattr(out, suffix))
    shutil.rmtree(directory / "sim" / "telemetry", ignore_errors=True)
    stamp.write_text(json.dumps(wanted))
    print(f"  inputs ready in {time.perf_counter() - t0:.1f} s", flush=True)
    return directory
