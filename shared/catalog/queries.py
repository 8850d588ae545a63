"""Catalog writes and reads shared by the services. Writes are upserts keyed by content,
so a retried task registers nothing twice."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import case, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from shared.access import add_months, release_for
from shared.catalog.caom import refresh_for, refresh_program
from shared.catalog.db import note_new_event
from shared.catalog.models import (
    AccessChange,
    Artifact,
    ArtifactKind,
    EventRecord,
    Exposure,
    IngestRejection,
    Observation,
    Product,
    Program,
    TaskStat,
)
from shared.catalog.work import add_work
from shared.messages import Event
from shared.plan import Plan
from shared.storage import StoredObject

__all__ = [
    "ProductRevision",
    "add_event",
    "add_months",
    "current_product",
    "event_from_record",
    "latest_rejection",
    "next_revision",
    "product_counts_by_level",
    "record_rejection",
    "record_task_run",
    "register_product",
    "staged_product",
    "supersede_products",
    "upsert_exposure",
    "upsert_program",
]


def upsert_program(session: Session, plan: Plan) -> Program:
    """The program row and its observations, created or refreshed from the plan."""
    program = session.get(Program, plan.program)
    if program is None:
        program = Program(id=plan.program, created_at=datetime.now(UTC))
        session.add(program)
    program.title = plan.title
    program.pi_name = plan.pi_name
    program.pi_user = plan.pi_user
    program.category = plan.category
    program.eap_months = plan.exclusive_months
    program.authorized_users = list(plan.authorized_users)
    session.flush()
    retyped = False
    for obs in plan.observations:
        row = session.scalar(
            select(Observation).where(Observation.program_id == plan.program, Observation.number == obs.number)
        )
        if row is None:
            row = Observation(program_id=plan.program, number=obs.number)
            session.add(row)
        elif row.tsovisit != obs.tsovisit:  # e.g. not known before (migration 0018): its rows' type may change
            retyped = True
        target = plan.target(obs.target_id)
        row.target_name = target.name
        row.target_ra = target.ra
        row.target_dec = target.dec
        row.target_aliases = list(target.aliases)
        row.instrument = obs.instrument
        row.template = obs.template
        row.exp_type = obs.exp_type
        row.filter = obs.filter
        row.pupil = obs.pupil
        row.tsovisit = obs.tsovisit
        row.pre_image_for = list(obs.pre_image_for)
    session.flush()
    if retyped:
        refresh_program(session, plan.program)
    return program


def upsert_exposure(session: Session, program: str, observation: int, name: str, **fields) -> Exposure:
    """The exposure row named ``name`` (e.g. ``jw01234001001_01101_00001_nrca1``)."""
    obs = session.scalar(
        select(Observation).where(Observation.program_id == program, Observation.number == observation)
    )
    if obs is None:
        raise LookupError(f"program {program} observation {observation:03d} is not in the catalog")
    row = session.scalar(select(Exposure).where(Exposure.name == name))
    if row is None:
        row = Exposure(name=name, observation_id=obs.id, **fields)
        session.add(row)
    else:
        for k, v in fields.items():
            setattr(row, k, v)
    session.flush()
    return row


def current_product(session: Session, filename: str) -> Product | None:
    return session.scalar(select(Product).where(Product.filename == filename, Product.is_current))


def staged_product(session: Session, filename: str, request_id: str) -> Product | None:
    """The revision of ``filename`` a reprocessing request staged (not current yet), if any."""
    return session.scalar(select(Product).where(
        Product.filename == filename, Product.request_id == request_id, Product.abandoned_at.is_(None),
        Product.superseded_at.is_(None)).order_by(Product.revision.desc()).limit(1))


@dataclass(frozen=True)
class ProductRevision:
    """What to do with a product file: store it at ``revision``, or nothing when an
    identical one is already current (``existing``)."""

    revision: int
    existing: Product | None


def next_revision(session: Session, filename: str, sha256: str, request_id: str | None = None) -> ProductRevision:
    """Revision for a new file of this name: the current one if its bytes are identical
    (a retried task), else one more than the newest. For a reprocessing request
    (``request_id``), a revision it staged already with these bytes comes first."""
    if request_id is not None:
        staged = session.scalar(select(Product).where(
            Product.filename == filename, Product.request_id == request_id, Product.abandoned_at.is_(None),
            Product.artifacts.any((Artifact.kind == ArtifactKind.DATA) & (Artifact.sha256 == sha256)))
            .options(selectinload(Product.artifacts)))  # read by the caller after the session
        if staged is not None:
            return ProductRevision(staged.revision, staged)
    current = current_product(session, filename)
    if current is not None and any(a.sha256 == sha256 for a in current.artifacts if a.kind == ArtifactKind.DATA):
        return ProductRevision(current.revision, current)
    newest = session.scalar(select(func.max(Product.revision)).where(Product.filename == filename))
    return ProductRevision((newest or 0) + 1, None)


def register_product(
    session: Session,
    *,
    stored: StoredObject,
    filename: str,
    suffix: str,
    level: int,
    revision: int,
    program_id: str,
    observation_id: int | None,
    exposure_id: int | None,
    archived_at: datetime,
    eap_months: int,
    software_version: str,
    inputs: list[str],
    segment: int | None = None,
    reference_context: str | None = None,
    product_type: str = "SCIENCE",
    data_release: datetime | None = None,
    staged: bool = False,
    s_region: str | None = None,
) -> tuple[Product, bool]:
    """Register a stored product revision; returns (product, created).

    Idempotent: registering the same (filename, revision) again returns the existing row.
    A new revision becomes current, the previous current one is marked superseded, and the
    data release date is that of the first revision (archive date + EAP), unless
    ``data_release`` is given (a combined product: released with its latest input). The
    first revision's date follows the program's dated access changes too
    (:func:`shared.access.release_for`: a waiver in force makes it public on arrival).
    A ``staged`` revision (made by a reprocessing request) is registered not current and
    supersedes nothing: :func:`shared.reprocessing.complete_unit` switches it in.
    ``s_region`` is the file's sky footprint (:func:`shared.footprints.file_region`). The
    CAOM rows the product belongs to follow in the same transaction
    (:func:`shared.catalog.caom.refresh_for`).
    """
    existing = session.scalar(
        select(Product).where(Product.filename == filename, Product.revision == revision)
    )
    if existing is not None:
        return existing, False
    # Exclusive access runs from the first archiving: a reprocessed revision keeps the
    # release date of the revisions before it.
    earlier_release = session.scalar(select(func.min(Product.data_release)).where(Product.filename == filename))
    if data_release is None and earlier_release is None:
        # Shares the program row with other archiving, and waits for an access change
        # being recorded (it holds the row for update): then its change is seen here.
        session.execute(select(Program.id).where(Program.id == program_id).with_for_update(read=True))
        changes = session.scalars(select(AccessChange).where(AccessChange.program_id == program_id)).all()
        data_release = release_for(archived_at, eap_months, changes)
    if not staged:
        session.execute(
            update(Product)
            .where(Product.filename == filename, Product.is_current)
            .values(is_current=False, superseded_at=archived_at)
        )
    product = Product(
        filename=filename,
        suffix=suffix,
        level=level,
        product_type=product_type,
        revision=revision,
        is_current=not staged,
        program_id=program_id,
        observation_id=observation_id,
        exposure_id=exposure_id,
        segment=segment,
        archived_at=archived_at,
        meta_release=archived_at,
        data_release=data_release or earlier_release,
        software_version=software_version,
        reference_context=reference_context,
        inputs=list(inputs),
        s_region=s_region,
    )
    product.artifacts.append(
        Artifact(kind=ArtifactKind.DATA, uri=stored.uri, sha256=stored.sha256, size=stored.size,
                 content_type=stored.content_type)
    )
    session.add(product)
    session.flush()
    if not staged:
        refresh_for(session, [product])
    return product, True


def supersede_products(session: Session, filenames: Iterable[str], at: datetime) -> list[Product]:
    """Mark the current revision of each named product superseded (no longer current);
    returns the rows marked. For a product replaced by one of another name: a pool or an
    association made again under a newer time stamp."""
    names = list(filenames)
    if not names:
        return []
    rows = list(session.scalars(select(Product).where(Product.filename.in_(names), Product.is_current)))
    for row in rows:
        row.is_current, row.superseded_at = False, at
    session.flush()
    refresh_for(session, rows)
    return rows


def add_event(session: Session, event: Event) -> EventRecord:
    """Put an event in the outbox (same transaction as the change it announces), with a
    work item for each task it routes to (:func:`shared.catalog.work.add_work`). Adding an
    id that is already there is a no-op."""
    row = session.get(EventRecord, event.id)
    if row is not None:
        return row
    row = EventRecord(
        id=event.id,
        type=event.type,
        source=event.source,
        subject=event.subject,
        time=event.time,
        data=event.to_json_dict()["data"],
        created_at=datetime.now(UTC),
    )
    session.add(row)
    session.flush()
    add_work(session, event)
    note_new_event(session, event.id)
    return row


def event_from_record(row: EventRecord) -> Event:
    """The event an outbox row holds (its payload is validated when it is read)."""
    return Event(id=row.id, source=row.source, type=row.type, time=row.time, subject=row.subject, data=row.data)


def record_rejection(
    session: Session,
    *,
    raw: StoredObject,
    reason: str,
    detail: str,
    program_id: str | None,
    event_id: str | None,
) -> tuple[IngestRejection, bool]:
    """Record why raw input was refused; (row, created). One row per input and reason."""
    row = session.scalar(
        select(IngestRejection).where(IngestRejection.raw_sha256 == raw.sha256, IngestRejection.reason == reason)
    )
    if row is not None:
        return row, False
    row = IngestRejection(
        raw_uri=raw.uri,
        raw_filename=raw.filename,
        raw_sha256=raw.sha256,
        reason=reason,
        detail=detail,
        program_id=program_id,
        created_at=datetime.now(UTC),
        event_id=event_id,
    )
    session.add(row)
    session.flush()
    return row, True


def latest_rejection(session: Session, program_id: str, reason: str) -> IngestRejection | None:
    """The newest refusal of a program's input for ``reason``."""
    return session.scalar(
        select(IngestRejection)
        .where(IngestRejection.program_id == program_id, IngestRejection.reason == reason)
        .order_by(IngestRejection.created_at.desc(), IngestRejection.id.desc())
        .limit(1)
    )


def product_counts_by_level(session: Session) -> dict[int, int]:
    rows = session.execute(
        select(Product.level, func.count()).where(Product.is_current).group_by(Product.level)
    )
    return {level: n for level, n in rows}


def record_task_run(session: Session, task: str, seconds: float, failed: bool) -> None:
    """Add one run to the task's totals (atomic increments, safe across workers)."""
    now = datetime.now(UTC)
    values = {
        "runs": TaskStat.runs + 1,
        "failures": TaskStat.failures + (1 if failed else 0),
        "total_seconds": TaskStat.total_seconds + seconds,
        "max_seconds": case((TaskStat.max_seconds < seconds, seconds), else_=TaskStat.max_seconds),
        "last_run_at": now,
    }
    if session.execute(update(TaskStat).where(TaskStat.task == task).values(**values)).rowcount:
        return
    try:
        with session.begin_nested():
            session.add(TaskStat(task=task, runs=1, failures=int(failed), total_seconds=seconds,
                                 max_seconds=seconds, last_run_at=now))
    except IntegrityError:  # another worker created it first
        session.execute(update(TaskStat).where(TaskStat.task == task).values(**values))
