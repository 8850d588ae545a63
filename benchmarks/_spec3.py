"""calwebb_spec3 measured on a benchmark's ``_cal`` files, per step and as a pipeline is
run: what the spectroscopy benchmarks (MIRI LRS, NIRSpec MOS) share."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from benchmarks._rates import CREATED
from benchmarks._steps import StepProbe, best, measure_runs

__all__ = ["measure_spec3", "measure_spec3_whole"]


def measure_spec3(cals: list[Path], refs_dir: Path, repeat: int) -> tuple[dict, object]:
    """``run_spec3`` on the ``cals`` (read once, timed apart) with the references of
    ``refs_dir``: per step, best of ``repeat`` runs, one traced (:func:`measure_runs`).
    Returns the figures and the last run's output."""
    from services.stage3.spec3 import SPEC3, run_spec3
    from shared.datamodels import read_product
    from shared.refdata import LocalReferences, load_references

    io: dict[str, float] = {}
    io[f"read the {len(cals)} _cal"], members = best(lambda: [read_product(c) for c in cals], repeat)
    kw = members[0].keywords
    io["load references"], refs = best(lambda: load_references(
        LocalReferences(refs_dir=refs_dir), kw, SPEC3.reftypes(kw)).found, 1)
    probe = StepProbe()
    r = measure_runs(lambda: run_spec3(members, refs=refs, software_version="bench", created=CREATED,
                                       step_hook=probe), probe, repeat)
    out = r.pop("output")
    r["seconds"]["io"] = io
    r["statuses"] = dict(out.record.statuses)
    return r, out


def measure_spec3_whole(cals: list[Path], refs_dir: Path, asn_document: dict) -> dict:
    """The ``cals`` read, SPECWCS chosen and read, spec3 run on the association
    ``asn_document`` and its products written: one cold run."""
    from services.stage3.asn import parse_level3_asn
    from services.stage3.spec3 import SPEC3, run_spec3
    from shared.datamodels import read_product, write_output
    from shared.refdata import LocalReferences, load_references

    asn = parse_level3_asn(json.dumps(asn_document).encode(), "bench_spec3_asn.json")
    with tempfile.TemporaryDirectory(prefix="dms-bench-spec3-") as tmp:
        t0 = time.perf_counter()
        members = [read_product(c) for c in cals]
        kw = members[0].keywords
        refs = load_references(LocalReferences(refs_dir=refs_dir), kw, SPEC3.reftypes(kw))
        out = run_spec3(members, asn.document, refs=refs.found, software_version="bench", created=CREATED,
                        context=refs.context)
        for o in out.outputs(asn):
            write_output(Path(tmp) / o.filename, o.content)
        seconds = time.perf_counter() - t0
    return {"seconds": seconds, "products": [o.suffix for o in out.outputs(asn)]}
