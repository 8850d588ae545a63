"""The house as drawn (DESIGN.md §2): the import-linter contracts in pyproject.toml
([tool.importlinter]) hold, so `make test` and CI fail when a layer is crossed."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_layer_contracts_are_kept():
    lint_imports = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    assert lint_imports, "import-linter is not installed (it is a test extra: make install)"
    proc = subprocess.run([lint_imports, "--no-cache", "--no-logo"], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, f"a layer contract is broken:\n{proc.stdout}\n{proc.stderr}"
    assert "0 broken" in proc.stdout


def _imported(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_steps_do_not_read_or_write_fits():
    # import-linter can forbid only whole external packages, not astropy.io.fits.
    offenders = [
        str(path.relative_to(REPO))
        for path in sorted([*REPO.glob("services/*/steps/*.py"), *REPO.glob("shared/spectra/*.py")])
        if any(name == "astropy.io.fits" or name.startswith("astropy.io.fits.")
               for name in _imported(ast.parse(path.read_text(), str(path))))
    ]
    assert not offenders, f"science steps import astropy.io.fits (I/O belongs to the pipeline): {offenders}"
