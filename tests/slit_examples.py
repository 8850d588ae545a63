"""What the slit-spectroscopy tests share: an example program edited field by field, the
whole system run on one in this process, and the line profile fitted to a spectrum."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import yaml
from sqlalchemy import select

from services.console import ingest_paths
from services.registry import embedded_context
from services.simulator import simulate
from shared.catalog import Artifact, ArtifactKind, Product
from shared.config import Settings
from shared.refdata import deliver


def edited(example: Path, obs: dict | None = None, target: dict | None = None,
           simulation: dict | None = None) -> dict:
    """The example program with fields of its (first) observation, target or simulation
    replaced (None values remove a field)."""
    desc = copy.deepcopy(yaml.safe_load(example.read_text()))
    for part, changes in ((desc["observations"][0], obs), (desc["targets"][0], target),
                          (desc.setdefault("simulation", {}), simulation)):
        for key, value in (changes or {}).items():
            if value is None:
                part.pop(key, None)
            else:
                part[key] = value
    return desc


def run_in_process(desc: dict, tmp: Path) -> dict:
    """``desc`` simulated and run through the whole system in this process (embedded
    catalog and store: ingest, detector1, associations, stage 2, stage 3, previews); every
    current data product downloaded to ``tmp/products``. Returns the simulation (``sim``),
    ``out``, the context (``ctx``), ``truth_dir`` and the product ``names``."""
    sim = simulate(desc, tmp / "sim")
    ctx, inline = embedded_context(Settings(var_dir=tmp / "var", _env_file=None))
    deliver(ctx, sim.reference_paths, note="simulator references")
    inline.run_until_idle()
    ingest_paths(ctx, inline, [sim.plan_path, *sim.msa_paths, *sim.telemetry_paths])
    failed = [(task, o.error) for task, o in inline.completed if o.status != "ok"]
    assert not failed, failed
    out = tmp / "products"
    out.mkdir()
    with ctx.catalog.session() as s:
        rows = s.execute(select(Product.filename, Artifact.uri).join(Artifact)
                         .where(Product.is_current, Artifact.kind == ArtifactKind.DATA)).all()
    for name, uri in rows:
        ctx.store.download_uri(uri, out / name)
    return {"sim": sim, "out": out, "ctx": ctx, "truth_dir": tmp / "sim" / "truth",
            "names": sorted(n for n, _ in rows)}


def gaussian_line(wl, centre, sigma, peak, c0, c1):
    """A Gaussian line on a straight continuum, to fit a line's centroid."""
    return c0 + c1 * (wl - centre) + peak * np.exp(-0.5 * ((wl - centre) / sigma) ** 2)
