"""The whole imaging chain run once, in process, for accuracy tests.

:func:`run_chain` simulates a program description, delivers the simulator's reference
files, receives the plan and telemetry and lets every service (ingest, detector1,
associations, stage2, stage3, preview, notifier) run in this process until nothing is
left to do, with the simulator's astrometric catalogs as the absolute reference of
tweakreg. :class:`ChainRun` then finds the current products and the truth files.

A run on the embedded SQLite catalog can be copied (:func:`copy_run`): a test module that
needs the archive of a program the session has run already (tests/conftest.py's
``small_program_run``) takes a copy of its own, which it may change, for the cost of a
file copy instead of another run of the chain.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
from collections.abc import Mapping
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from astropy.io import fits
from astropy.table import Table
from sqlalchemy import select

from services.ingest.receive import receive_files
from services.registry import embedded_context
from services.simulator import SimulationResult, simulate
from shared.catalog import Artifact, Product
from shared.config import Settings
from shared.refdata import deliver
from shared.runtime import ServiceContext, dispatch_events
from tests.catalog_scoring import truth_stars

__all__ = ["ChainRun", "copy_run", "run_chain"]


@dataclass
class ChainRun:
    """A finished run: the simulation, the embedded context and what every task did."""

    sim: SimulationResult
    ctx: ServiceContext
    outcomes: list[tuple[str, str]]  # (task, status) in the order they ran
    seconds: dict[str, float]  # wall time of "simulate" and "process"
    inline: Any = None  # the in-process dispatcher, to run more work after the chain

    # ------------------------------------------------------------------ products

    def filenames(self, suffix: str, level: int | None = None) -> list[str]:
        """Current products with ``suffix`` (and ``level``), sorted by name."""
        query = select(Product.filename).where(Product.suffix == suffix, Product.is_current)
        if level is not None:
            query = query.where(Product.level == level)
        with self.ctx.catalog.session() as s:
            return sorted(s.scalars(query).all())

    def path(self, filename: str) -> Path:
        """Local path of the current revision of ``filename`` in the object store."""
        with self.ctx.catalog.session() as s:
            uri = s.scalar(select(Artifact.uri).join(Product, Artifact.product_id == Product.id).where(
                Product.filename == filename, Product.is_current, Artifact.kind == "data"))
        if uri is None:
            raise LookupError(f"{filename} is not archived")
        return self.ctx.store.local_path(*self.ctx.store.parse_uri(uri))

    def one(self, suffix: str, level: int | None = None, contains: str = "") -> Path:
        """The only current product with ``suffix`` (``level``) whose name holds ``contains``."""
        names = [n for n in self.filenames(suffix, level) if contains in n]
        if len(names) != 1:
            raise LookupError(f"expected one _{suffix} (level {level}, {contains!r}), found {names}")
        return self.path(names[0])

    # ------------------------------------------------------------------ truth

    @property
    def truth_index(self) -> dict:
        return json.loads(self.sim.truth_index.read_text())

    def truth_exposures(self, observation: int) -> list[dict]:
        """truth.json entries of an observation's exposures, in exposure order."""
        rows = [e for e in self.truth_index["exposures"] if e["observation"] == observation]
        return sorted(rows, key=lambda e: (e["exposure"], e["detector"]))

    def truth_path(self, entry: Mapping, kind: str) -> Path:
        """``kind`` (truth_rate, truth_stars, truth_jumps, truth_lightcurve) of an entry."""
        return self.sim.truth_dir.parent / entry[kind]

    def truth_stars(self, observation: int) -> Table:
        """The stars of every exposure of an observation, one row per star: ``id``, ``ra``,
        ``dec``, ``flux`` (e-/s), ``flux_jy`` and ``saturated`` (in any exposure)."""
        return truth_stars([self.truth_path(e, "truth_stars") for e in self.truth_exposures(observation)])

    def truth_header(self, entry: Mapping) -> fits.Header:
        return fits.getheader(self.truth_path(entry, "truth_rate"))


def run_chain(description: Mapping, work_dir: Path, catalog_url: str | None = None, *,
              sim: SimulationResult | None = None) -> ChainRun:
    """Simulate ``description`` into ``work_dir/sim`` and run every service on it with a
    local store and SQLite catalog under ``work_dir/var`` (or the catalog at
    ``catalog_url``). Raises AssertionError naming the tasks that did not end ``ok``.

    ``sim`` is the simulation of ``description`` made already (the simulator is
    deterministic: runs of one description can share it); its files are only read."""
    t0 = time.perf_counter()
    if sim is None:
        sim = simulate(dict(description), work_dir / "sim")
    elif int(sim.plan.program) != int(description["program"]):
        raise ValueError(f"the simulation is of program {sim.plan.program}, not {description['program']}")
    t1 = time.perf_counter()
    catalogs = sim.catalog_paths[0].parent if sim.catalog_paths else None
    settings = Settings(var_dir=work_dir / "var", astrometric_catalog_dir=catalogs, catalog_url=catalog_url,
                        _env_file=None)
    ctx, inline = embedded_context(settings)
    deliver(ctx, sim.reference_paths, note="simulator references")
    done = inline.run_until_idle()
    received = receive_files(ctx, sim.delivery)
    dispatch_events(ctx.catalog, inline, event_ids=[r.event_id for r in received if r.event_id])
    done += inline.run_until_idle()
    outcomes = [(task, outcome.status) for task, outcome in done]
    failed = [(task, outcome) for task, outcome in done if outcome.status != "ok"]
    assert not failed, f"tasks that did not succeed: {failed}"
    return ChainRun(sim, ctx, outcomes, {"simulate": t1 - t0, "process": time.perf_counter() - t1}, inline)


def copy_run(run: ChainRun, work_dir: Path, **settings: Any) -> ChainRun:
    """A copy of a finished ``run`` of its own under ``work_dir/var``, with an embedded
    context on it (``settings`` added to the run's): the run's catalog and object store
    copied (not its reference cache, which the copy fills again from its own store as
    its pipelines need references), and every path and ``file://`` URI of the old
    directory in the catalog's text columns (artifacts, reference files, event payloads,
    product inputs) made the copy's. What a test does to the copy (new tokens, revisions,
    contexts) leaves ``run`` as it was. The simulation is shared: read it, never write it.

    ``run`` must be on the embedded SQLite catalog and the local store."""
    base = run.ctx.settings
    if base.catalog_url or base.store != "local":
        raise ValueError("only a run on the embedded SQLite catalog and the local store can be copied")
    source, var = Path(base.var_dir).resolve(), (work_dir / "var").resolve()

    def left_out(folder: str, names: list[str]) -> set[str]:  # uploads in progress; the reference cache
        return {n for n in names if n == ".tmp" or (n == "refcache" and Path(folder) == source)}

    shutil.copytree(source, var, ignore=left_out)
    _move_catalog_paths(var / "catalog.db", source, var)
    settings = {"astrometric_catalog_dir": base.astrometric_catalog_dir, **settings}
    ctx, inline = embedded_context(Settings(var_dir=var, _env_file=None, **settings))
    return ChainRun(run.sim, ctx, list(run.outcomes), dict(run.seconds), inline)


def _move_catalog_paths(db: Path, old: Path, new: Path) -> None:
    """Rewrite ``old/...`` (as a path and as a ``file://`` URI) to ``new/...`` in every text
    column of the SQLite catalog ``db``; AssertionError if ``old`` is still named anywhere."""
    pairs = [(old.as_uri() + "/", new.as_uri() + "/"), (f"{old}/", f"{new}/")]
    with closing(sqlite3.connect(db)) as conn, conn:
        tables = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        columns = [(table, row[1], row[2].upper()) for table in tables
                   for row in conn.execute(f'PRAGMA table_info("{table}")')]
        for table, column, kind in columns:
            if any(word in kind for word in ("CHAR", "TEXT", "CLOB", "JSON")):
                for a, b in pairs:
                    conn.execute(f'UPDATE "{table}" SET "{column}" = replace("{column}", ?, ?) '
                                 f'WHERE instr("{column}", ?) > 0', (a, b, a))
        left = [(table, column) for table, column, _ in columns
                if conn.execute(f'SELECT 1 FROM "{table}" WHERE instr(CAST("{column}" AS TEXT), ?) > 0 LIMIT 1',
                                (str(old),)).fetchone()]
    assert not left, f"the copy's catalog still names {old} in {left}"
