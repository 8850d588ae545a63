"""``python -m benchmarks._startup_probe OUT.json DMS-ARGS...``: run ``dms DMS-ARGS`` in this
process and write which modules it had imported to OUT.json.

For ``dms worker SERVICE`` the report is written when Celery's ``worker_ready`` signal
fires (the worker is consuming; the parent then stops it); for any other command, when
the command returns or exits (``dms --help`` exits from argparse). Used by the startup
benchmark; the timed runs execute the real ``dms`` script, not this probe.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

# Libraries worth naming when a command loads them without needing them.
HEAVY = ("numpy", "astropy", "scipy", "scipy.signal", "matplotlib", "photutils", "sqlalchemy", "celery",
         "fastapi", "pydantic", "minio", "stdatamodels", "asdf", "drizzle")


def service_packages() -> set[str]:
    """Names of the service packages (``services/<name>/__init__.py``)."""
    root = Path(__file__).resolve().parents[1] / "services"
    return {p.parent.name for p in root.glob("*/__init__.py")}


def report(out: Path) -> None:
    services = service_packages()
    loaded = set(sys.modules)
    out.write_text(json.dumps({
        "services": sorted({m.split(".")[1] for m in loaded if m.startswith("services.")} & services),
        "heavy": [m for m in HEAVY if m in loaded],
        "modules": len(loaded),
    }))


def main(argv: list[str]) -> int:
    out, dms_args = Path(argv[0]), argv[1:]
    if dms_args[:1] == ["worker"]:
        from celery.signals import worker_ready

        worker_ready.connect(lambda **_: report(out), weak=False)
    from services.cli import main as dms

    try:
        return dms(dms_args)
    finally:
        if not out.exists():
            report(out)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
