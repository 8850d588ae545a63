"""Engine, sessions and schema upgrades for the catalog."""

from __future__ import annotations

import logging
import math
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from shared.catalog.summary import install as maintain_derived_columns

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = ["Catalog", "alembic_config", "dispatch_on_commit", "note_new_event", "upgrade"]

log = logging.getLogger(__name__)

_HERE = Path(__file__).resolve().parent

# Called with the ids of the outbox events a transaction recorded, once it has committed
# (set while a handler runs: shared.runtime dispatches them at once).
_on_commit: ContextVar[Callable[[Sequence[str]], None] | None] = ContextVar("dms_on_commit", default=None)
_NEW_EVENTS = "dms_new_events"


def note_new_event(session: Session, event_id: str) -> None:
    """Remember that ``session``'s transaction records outbox event ``event_id``."""
    session.info.setdefault(_NEW_EVENTS, []).append(event_id)


@contextmanager
def dispatch_on_commit(callback: Callable[[Sequence[str]], None]) -> Iterator[None]:
    """While the block runs (in this thread or task context), every catalog transaction
    that records outbox events calls ``callback`` with their ids once it has committed.
    A callback that fails is logged, never raised: the events are committed and the
    reconciler sends what was not sent."""
    token = _on_commit.set(callback)
    try:
        yield
    finally:
        _on_commit.reset(token)


def alembic_config(url: str) -> Config:
    # alembic is imported here, not with the module: only schema upgrades need it, and a
    # worker that never upgrades starts faster without it.
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_HERE / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the catalog schema at ``url`` up to ``revision``."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    from alembic import command

    command.upgrade(alembic_config(url), revision)
    if revision == "head":
        _backfill_caom(url)
        _create_obscore(url)


def _backfill_caom(url: str) -> None:
    """Build the CAOM rows of a catalog archived before they existed (migration
    0014_caom_observations made their tables empty): computed here, with the models of the
    schema now in place, once, when a catalog has products but no rows."""
    from sqlalchemy import exists, select

    from shared.catalog.caom import backfill
    from shared.catalog.models import CaomObservation, Product

    catalog = Catalog(url)
    try:
        with catalog.session() as s:
            if s.scalar(select(exists().where(CaomObservation.id.is_not(None)))):
                return
            if not s.scalar(select(exists().where(Product.is_current, Product.level >= 1,
                                                   Product.program_id.is_not(None)))):
                return
            backfill(s)
    finally:
        catalog.dispose()


def _create_obscore(url: str) -> None:
    """(Re)create the ObsCore view of a PostgreSQL catalog (shared.catalog.obscore) and the
    TAP_SCHEMA tables describing it (shared.catalog.tap_schema): derived from the head
    schema's tables, so made here rather than by a migration."""
    if not url.startswith("postgresql"):
        return
    from shared.catalog.obscore import create_view
    from shared.catalog.tap_schema import create_tap_schema

    catalog = Catalog(url)
    try:
        with catalog.engine.begin() as conn:
            create_view(conn)
            create_tap_schema(conn)
    finally:
        catalog.dispose()


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()
    check = dbapi_conn.cursor()
    try:  # cone searches test separations in SQL (shared.catalog.sky.in_cone)
        check.execute("SELECT sin(0.5) + cos(0.5) + radians(1.0)").fetchall()
        has_math = True
    except sqlite3.OperationalError:  # an SQLite built without its math functions
        has_math = False
    finally:
        check.close()
    if not has_math:  # (no statement may be open while functions are created)
        for name, fn in (("sin", math.sin), ("cos", math.cos), ("radians", math.radians)):
            dbapi_conn.create_function(name, 1, lambda x, fn=fn: None if x is None else fn(x), deterministic=True)


class Catalog:
    """A connection pool and session factory for one catalog database."""

    def __init__(self, url: str):
        self.url = url
        kwargs = {"pool_pre_ping": True}
        if url.startswith("sqlite"):
            kwargs = {"connect_args": {"timeout": 30}}
        self.engine: Engine = create_engine(url, **kwargs)
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        maintain_derived_columns(self._sessions)  # what the archive's searches read

    def upgrade(self) -> None:
        upgrade(self.url)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session whose transaction commits on success and rolls back on error; the
        outbox events it recorded go to the :func:`dispatch_on_commit` callback, if any,
        after the commit."""
        with self._sessions() as s:
            with s.begin():
                yield s
            recorded = s.info.pop(_NEW_EVENTS, None)
        callback = _on_commit.get()
        if recorded and callback is not None:
            try:
                callback(recorded)
            except Exception as exc:  # committed: the reconciler sends what this did not
                log.warning("could not dispatch %d event(s) at commit: %s: %s", len(recorded),
                            type(exc).__name__, exc)

    def dispose(self) -> None:
        self.engine.dispose()
