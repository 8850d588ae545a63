"""What `dms` imports before it does anything: building the parser loads no service and no
heavy library, and a worker loads its own service only. (How long start-up takes is
measured by `make bench` (benchmarks/startup_bench.py), not asserted here.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from services.registry import SERVICES

REPO = Path(__file__).resolve().parents[1]
SERVICE_PACKAGES = sorted(p.parent.name for p in (REPO / "services").glob("*/__init__.py"))
HEAVY = ["numpy", "astropy", "scipy", "matplotlib", "photutils", "sqlalchemy", "celery", "pydantic"]


def loaded_after(code: str) -> dict:
    """Service packages and heavy libraries in sys.modules after running ``code`` in a
    fresh interpreter."""
    probe = f"""
import json, sys
{code}
print(json.dumps({{
    "services": sorted({{m.split(".")[1] for m in sys.modules if m.startswith("services.")}} & {set(SERVICE_PACKAGES)!r}),
    "heavy": [m for m in {HEAVY!r} if m in sys.modules],
}}))
"""
    proc = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=300,
                          check=True)
    return json.loads(proc.stdout.splitlines()[-1])


def test_building_the_parser_imports_no_service_and_no_heavy_library():
    loaded = loaded_after("from services.cli import build_parser\nbuild_parser().format_help()")
    assert loaded == {"services": [], "heavy": []}


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_a_service_is_imported_only_when_asked_for(service):
    loaded = loaded_after(f"from services.registry import handlers_for\nassert handlers_for({service!r})")
    assert loaded["services"] == [service]
