"""The catalog's ``association`` rows: per candidate, type and product, what is expected,
what is still missing and which member set the last emitted ASN had."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import String, cast, func, select
from sqlalchemy.orm import Session

from services.associations.builder import Evaluation, LastEmitted, PlannedAsn, SpecKey, spec_key
from services.associations.report import MadeProduct
from shared.catalog import Catalog
from shared.catalog.models import Association, Exposure, Observation, Product

__all__ = ["Emitted", "exposure_starts", "last_emitted", "made_from_associations", "program_lock", "save_evaluation"]

# Namespace of the PostgreSQL advisory locks taken here (first key of the pair).
_LOCK_NAMESPACE = 0x41534E  # "ASN"


@contextmanager
def program_lock(catalog: Catalog, program: str) -> Iterator[None]:
    """Serialize association updates of one program across workers (PostgreSQL advisory
    lock held by a transaction of its own). SQLite runs one writer at a time anyway."""
    if catalog.engine.dialect.name != "postgresql":
        yield
        return
    with catalog.session() as s:
        s.execute(select(func.pg_advisory_xact_lock(_LOCK_NAMESPACE, int(program))))
        yield


def last_emitted(session: Session, program: str) -> dict[SpecKey, LastEmitted]:
    """Key -> member signature and version of the last ASN emitted for it."""
    rows = session.scalars(select(Association).where(Association.program_id == program))
    return {(r.acid, r.asn_type, r.product_name): LastEmitted(r.members, r.version_id, r.filename) for r in rows if r.filename}


@dataclass(frozen=True)
class Emitted:
    """An ASN archived by this run: its plan entry and the archived product's id."""

    planned: PlannedAsn
    product_id: int


def _set(row: Association, **values) -> bool:
    changed = False
    for k, v in values.items():
        if getattr(row, k) != v:
            setattr(row, k, v)
            changed = True
    return changed


def save_evaluation(session: Session, evaluation: Evaluation, emitted: list[Emitted], now: datetime) -> None:
    """Record every association's state, and the member set of those just emitted."""
    rows = {(r.acid, r.asn_type, r.product_name): r for r in session.scalars(
        select(Association).where(Association.program_id == evaluation.program))}
    done = {spec_key(e.planned.spec): e for e in emitted}
    for item in evaluation.associations:
        spec = item.spec
        key = spec_key(spec)
        row = rows.get(key)
        if row is None:
            row = Association(program_id=evaluation.program, acid=spec.acid, asn_type=spec.asn_type,
                              product_name=spec.name, members=[], emitted_count=0, updated_at=now)
            session.add(row)
        changed = _set(row, asn_rule=spec.asn_rule, level=spec.level, complete=spec.complete,
                       expected=list(spec.expected), waiting=list(spec.waiting))
        if key in done:
            e = done[key]
            changed = _set(row, members=spec.signature, filename=e.planned.filename, version_id=e.planned.version,
                           pool=evaluation.pool.filename, product_id=e.product_id, emitted_at=now) or changed
            row.emitted_count = (row.emitted_count or 0) + 1
        if changed:
            row.updated_at = now
    session.flush()


def made_from_associations(session: Session, program: str) -> list[tuple[MadeProduct, list[str]]]:
    """Current products of ``program`` whose provenance names an association file, with
    their inputs (what the report lists as made by each association)."""
    rows = session.scalars(
        select(Product).where(Product.program_id == program, Product.is_current,
                              Product.suffix.not_in(("asn", "pool")),
                              cast(Product.inputs, String).like("%\\_asn.json%", escape="\\"))
        .order_by(Product.filename)
    ).all()
    return [(MadeProduct(p.filename, p.suffix, p.level, p.revision, _utc(p.data_release)),
             [str(i) for i in p.inputs or ()]) for p in rows]


def _utc(when: datetime) -> datetime:
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def exposure_starts(session: Session, program: str) -> dict[str, datetime]:
    """Exposure id -> start time the catalog records (ingest's, from the telemetry)."""
    rows = session.execute(
        select(Exposure.name, Exposure.start_time).join(Observation, Exposure.observation_id == Observation.id)
        .where(Observation.program_id == program, Exposure.start_time.is_not(None))
    ).all()
    return {name: _utc(start) for name, start in rows}
