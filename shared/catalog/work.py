"""The work ledger: one row per routed task (:class:`~shared.catalog.models.WorkItem`) and
every change of its state, each one statement so that concurrent workers and reconcilers
agree on who owns a task.

    pending ──claim──▶ running ──complete──▶ done
       ▲                 │ │
       │  retry / lease  │ └──fail (dead letter, or lease expired too often)──▶ failed
       └─────expired─────┘

A row is written with the event that causes it (:func:`add_work`, called by
:func:`shared.catalog.queries.add_event`), claimed by the worker that starts it
(:func:`claim`), kept alive while it runs (:func:`extend_lease`) and marked done in the
same transaction as its outputs (:func:`complete`). A claim is owned by one worker and
one attempt: a worker whose lease expired (it hung, and the task was given to another)
can neither extend nor fail the new owner's claim; it can still mark the row done,
because by then its outputs are committed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from shared.catalog.models import WorkItem, WorkState
from shared.messages import Event, PayloadError
from shared.routing import routes_for

__all__ = [
    "Claim",
    "ClaimResult",
    "TaskWork",
    "add_work",
    "aware",
    "claim",
    "complete",
    "extend_lease",
    "fail",
    "release",
    "work_summary",
]


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Claim:
    """A worker's hold on one work item: the row, who holds it and which attempt this is."""

    id: int
    event_id: str
    task: str
    worker: str
    attempt: int


@dataclass(frozen=True)
class ClaimResult:
    """What :func:`claim` found: ``claimed`` (``claim`` set), ``done`` (a duplicate or
    redelivered message: nothing to do), ``busy`` (another worker holds a live lease) or
    ``untracked`` (no row: a message sent outside the ledger)."""

    status: str
    claim: Claim | None = None
    holder: str | None = None


def add_work(session: Session, event: Event) -> list[WorkItem]:
    """The work rows an event causes, one per route (``shared/routing.py``), created if
    missing; none for an event whose payload the routes cannot read (the dispatcher
    dead-letters it)."""
    try:
        tasks = [route.task for route in routes_for(event)]
    except PayloadError:
        return []
    rows = []
    for task in dict.fromkeys(tasks):
        row = session.scalar(select(WorkItem).where(WorkItem.event_id == event.id, WorkItem.task == task))
        if row is None:
            row = WorkItem(event_id=event.id, task=task, state=WorkState.PENDING, created_at=_now(),
                           sends=0, attempts=0)
            session.add(row)
        rows.append(row)
    session.flush()
    return rows


def claim(session: Session, event_id: str, task: str, worker: str, lease: timedelta, *,
          take_over: bool = False) -> ClaimResult:
    """Take the work item of (``event_id``, ``task``) for ``worker``: atomically, when it
    is pending, failed (a dead letter sent again) or running under an expired lease.

    ``take_over`` also takes it from a worker whose lease has not expired yet: the broker
    redelivered the message because the consumer that had it died (or did not acknowledge
    within the broker's visibility timeout)."""
    now = _now()
    running = WorkItem.state == WorkState.RUNNING
    claimable = and_(
        WorkItem.event_id == event_id, WorkItem.task == task,
        or_(WorkItem.state.in_([WorkState.PENDING, WorkState.FAILED]),
            running if take_over else and_(running, WorkItem.lease_until < now)),
    )
    taken = session.execute(
        update(WorkItem).where(claimable).values(
            state=WorkState.RUNNING, worker=worker, attempts=WorkItem.attempts + 1, started_at=now,
            lease_until=now + lease, finished_at=None,
        ).execution_options(synchronize_session=False)
    ).rowcount
    row = session.execute(
        select(WorkItem.id, WorkItem.state, WorkItem.worker, WorkItem.attempts)
        .where(WorkItem.event_id == event_id, WorkItem.task == task)
    ).one_or_none()
    if row is None:
        return ClaimResult("untracked")
    if taken:
        return ClaimResult("claimed", Claim(row.id, event_id, task, worker, row.attempts))
    if row.state == WorkState.DONE:
        return ClaimResult("done", holder=row.worker)
    return ClaimResult("busy", holder=row.worker)


def _owned(c: Claim):
    return and_(WorkItem.id == c.id, WorkItem.state == WorkState.RUNNING, WorkItem.worker == c.worker,
                WorkItem.attempts == c.attempt)


def extend_lease(session: Session, c: Claim, lease: timedelta) -> bool:
    """Push the lease of a claim ``lease`` ahead (the heartbeat); False when the claim is
    no longer this worker's (its lease expired and the task was given to another)."""
    return bool(session.execute(
        update(WorkItem).where(_owned(c)).values(lease_until=_now() + lease)
        .execution_options(synchronize_session=False)
    ).rowcount)


def complete(session: Session, c: Claim) -> bool:
    """Mark the item done (call it in the transaction that commits the outputs). Done by
    whichever worker finishes first; False when it was already done."""
    return bool(session.execute(
        update(WorkItem).where(WorkItem.id == c.id, WorkItem.state != WorkState.DONE)
        .values(state=WorkState.DONE, finished_at=_now(), lease_until=None, worker=c.worker)
        .execution_options(synchronize_session=False)
    ).rowcount)


def fail(session: Session, c: Claim, reason: str) -> bool:
    """Mark a claimed item failed with the reason (it was dead-lettered); False when the
    claim is no longer this worker's."""
    return bool(session.execute(
        update(WorkItem).where(_owned(c))
        .values(state=WorkState.FAILED, finished_at=_now(), lease_until=None, last_error=reason)
        .execution_options(synchronize_session=False)
    ).rowcount)


def release(session: Session, c: Claim, reason: str, due: datetime) -> bool:
    """Give a claimed item back as pending (a transient fault: a retry message falls due
    at ``due``); False when the claim is no longer this worker's."""
    return bool(session.execute(
        update(WorkItem).where(_owned(c))
        .values(state=WorkState.PENDING, lease_until=None, last_error=reason, dispatched_at=due)
        .execution_options(synchronize_session=False)
    ).rowcount)


@dataclass(frozen=True)
class TaskWork:
    """How many items of a task are in a state, and since when the oldest has been there
    (pending: created; running: started; done/failed: finished)."""

    task: str
    state: str
    count: int
    oldest: datetime | None


def work_summary(session: Session) -> list[TaskWork]:
    """Items per task and state, with the oldest of each, ordered by task and state."""
    since = {WorkState.PENDING: WorkItem.created_at, WorkState.RUNNING: WorkItem.started_at}
    out = []
    for state in WorkState:
        column = since.get(state, WorkItem.finished_at)
        rows = session.execute(
            select(WorkItem.task, func.count(), func.min(column)).where(WorkItem.state == state)
            .group_by(WorkItem.task)
        )
        out += [TaskWork(task, state.value, n, aware(oldest)) for task, n, oldest in rows]
    order = {s.value: i for i, s in enumerate(WorkState)}
    return sorted(out, key=lambda w: (w.task, order[w.state]))


def aware(when: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes for timezone-aware columns; they are UTC."""
    return when.replace(tzinfo=UTC) if when is not None and when.tzinfo is None else when
