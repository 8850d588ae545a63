"""`python -m benchmarks [ingest] [detector1] [imaging] [spectroscopy] [mos] [tso] [mrs] [startup] [whole] [scale] [reprocess] [catalog] [program] [stage3]`: run the benchmarks and print their figures."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from benchmarks import (
    catalog_bench,
    detector1_bench,
    imaging_bench,
    ingest_bench,
    mos_bench,
    mrs_bench,
    program_bench,
    reprocess_bench,
    scale_bench,
    spectroscopy_bench,
    stage3_bench,
    startup_bench,
    tso_bench,
    whole_process_bench,
)

BENCHES = {"ingest": ingest_bench.run, "detector1": detector1_bench.run, "imaging": imaging_bench.run,
           "startup": startup_bench.run, "whole": whole_process_bench.run, "scale": scale_bench.run,
           "reprocess": reprocess_bench.run, "catalog": catalog_bench.run,
           "program": program_bench.run, "stage3": stage3_bench.run, "spectroscopy": spectroscopy_bench.run, "mos": mos_bench.run, "mrs": mrs_bench.run,
           "tso": tso_bench.run}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks")
    p.add_argument("names", nargs="*", default=sorted(BENCHES), help=f"which: {', '.join(sorted(BENCHES))}")
    p.add_argument("--out", default="bench-results", help="directory for the JSON results")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in args.names:
        if name not in BENCHES:
            p.error(f"unknown benchmark {name!r}")
        result = BENCHES[name]()
        (out / f"{name}.json").write_text(json.dumps(result, indent=2))
        print(f"results written to {out / (name + '.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
