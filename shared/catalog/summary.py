"""Columns the catalog derives so the archive's searches need not aggregate every product:

* on each observation, from its current products: ``current_level`` (the highest level,
  an MSA metadata file aside; NULL while it has none: planned), ``mrp_level`` (the highest
  level of its current SCIENCE products other than associations: the level of its Minimum
  Recommended Products), ``current_release`` (the latest data release date) and
  ``current_products`` (how many);
* on each exposure and observation, the HEALPix pixel of the pointing and of the target
  (``exposure.hpx``, ``observation.target_hpx``; shared.catalog.sky).

They are maintained by the catalog session itself (:func:`install`, which
``shared.catalog.Catalog`` calls on its sessions): whatever flush adds a product, or
changes whether it is current, its level, type, suffix or release date, recomputes the
summary of its observation in the same transaction (the observation row is locked first,
so two transactions archiving products of one observation serialize there and neither
loses the other's product); a flush that writes an exposure's or an observation's
position sets its pixel. :func:`refresh_observations` recomputes the summary of any
observation (every one: the migration that added the columns, and a catalog filled in
bulk).
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import chain

from sqlalchemy import Connection, case, event, func, inspect, select
from sqlalchemy.orm import Session

from shared.catalog import sky
from shared.catalog.models import Exposure, Observation, Product

__all__ = ["SUMMARY_COLUMNS", "install", "refresh_observations", "summary_values"]

SUMMARY_COLUMNS = ("current_level", "mrp_level", "current_release", "current_products")
# Product attributes a summary depends on.
_WATCHED = ("is_current", "level", "product_type", "suffix", "data_release", "observation_id")


def summary_values(observation=None, product=None) -> dict:
    """The summary of each observation as correlated subqueries over its current products
    (``observation`` and ``product``: the tables, or aliases of them)."""
    o = observation if observation is not None else Observation.__table__
    p = product if product is not None else Product.__table__
    current = (p.c.observation_id == o.c.id) & p.c.is_current
    return {
        "current_level": select(func.max(case((p.c.suffix == "msa", None), else_=p.c.level)))
        .where(current).scalar_subquery(),
        "mrp_level": select(func.max(p.c.level))
        .where(current, func.upper(p.c.product_type) == "SCIENCE", p.c.suffix != "asn").scalar_subquery(),
        "current_release": select(func.max(p.c.data_release)).where(current).scalar_subquery(),
        "current_products": select(func.count()).where(current).scalar_subquery(),
    }


def refresh_observations(connection: Connection, ids: Iterable[int] | None = None) -> None:
    """Recompute the summary of the observations ``ids`` (None: all) through ``connection``,
    locking their rows first on PostgreSQL."""
    table = Observation.__table__
    stmt = table.update().values(**summary_values())
    if ids is not None:
        wanted = sorted({i for i in ids if i is not None})
        if not wanted:
            return
        if connection.dialect.name == "postgresql":
            connection.execute(select(table.c.id).where(table.c.id.in_(wanted)).order_by(table.c.id).with_for_update())
        stmt = stmt.where(table.c.id.in_(wanted))
    connection.execute(stmt)


def _changed_observations(session: Session) -> set[int]:
    ids: set[int] = set()
    for obj in chain(session.new, session.deleted):
        if isinstance(obj, Product):
            ids.add(obj.observation_id)
    for obj in session.dirty:
        if not isinstance(obj, Product):
            continue
        state = inspect(obj)
        if any(state.attrs[name].history.has_changes() for name in _WATCHED):
            ids.add(obj.observation_id)
            ids.update(state.attrs.observation_id.history.deleted or ())
    ids.discard(None)
    return ids


def _set_pixels(session: Session, _context, _instances) -> None:
    for obj in chain(session.new, session.dirty):
        if isinstance(obj, Exposure):
            obj.hpx = sky.pixel(obj.ra, obj.dec)
        elif isinstance(obj, Observation):
            obj.target_hpx = sky.pixel(obj.target_ra, obj.target_dec)


def _after_flush(session: Session, _context) -> None:
    ids = _changed_observations(session)
    if ids:
        session.info.setdefault("_refreshed_observations", set()).update(ids)
        refresh_observations(session.connection(), ids)


def _after_flush_postexec(session: Session, _context) -> None:
    ids = session.info.pop("_refreshed_observations", None)
    if not ids:
        return
    for obj in list(session.identity_map.values()):
        if isinstance(obj, Observation) and obj.id in ids:
            session.expire(obj, list(SUMMARY_COLUMNS))


def install(sessions) -> None:
    """Maintain the derived columns in every session of ``sessions`` (a sessionmaker, or Session)."""
    event.listen(sessions, "before_flush", _set_pixels)
    event.listen(sessions, "after_flush", _after_flush)
    event.listen(sessions, "after_flush_postexec", _after_flush_postexec)
