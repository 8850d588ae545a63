"""How a service handler runs: its context, the transports that carry events to it, and
the outbox dispatcher that turns recorded events into task messages.

A handler is ``handler(event, ctx) -> list[str]``: it does its work, records the events
it announces in the outbox (same transaction as its catalog changes) and returns their
ids. :func:`run_handler` is the one wrapper around every handler, whether it is called by
a Celery worker or in-process: claim the work item, decode, call, classify failures, settle
the work item. Events are dispatched as soon as the transaction that records them commits,
while the handler still runs (:func:`shared.catalog.db.dispatch_on_commit`), so the next
task starts on the first product of a long task, not after its last. A handler reads the event's typed payload
(:attr:`shared.messages.Event.payload`); a malformed one raises
:class:`shared.messages.PayloadError`, which is non-retriable: the message is dead-lettered
with the reason.

The catalog, not the broker, records the work (:mod:`shared.catalog.work`): every routed
task is a work item written with its event. The wrapper claims the item before the
handler runs (a message whose item is already done is a duplicate: acknowledged, nothing
done), extends its lease while the handler runs, and marks it done, failed or pending
again (a retry) after. :func:`reconcile` sends again what was sent and never started and
what was started under a lease that expired, so a broker that loses its data delays work
but never loses it.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from pydantic import ValidationError
from sqlalchemy import or_, select
from sqlalchemy.exc import SQLAlchemyError

from shared.catalog import Catalog, EventRecord, TaskFailure, WorkItem, WorkState
from shared.catalog import work as ledger
from shared.catalog.db import dispatch_on_commit
from shared.catalog.queries import event_from_record, record_task_run
from shared.config import Settings
from shared.errors import is_retriable, is_unavailable
from shared.messages import Event, PayloadError
from shared.routing import for_reprocessing, queue_for, routes_for
from shared.storage import ObjectStore, open_store

__all__ = [
    "DISPATCH_TASK",
    "Handler",
    "InlineTransport",
    "Outcome",
    "Reconciled",
    "RequestScope",
    "ServiceContext",
    "Transport",
    "dispatch_events",
    "reconcile",
    "record_failure",
    "run_handler",
]

log = logging.getLogger(__name__)

DISPATCH_TASK = "outbox.dispatch"  # the task name of an outbox event dead-lettered by the dispatcher


class Transport(Protocol):
    def send(self, task: str, event: Event) -> None:
        """Deliver ``event`` to ``task`` (on the task's service queue)."""


@dataclass(frozen=True)
class RequestScope:
    """The reprocessing request a handler works for (shared.reprocessing): what it makes
    is staged under ``request_id`` and ``unit`` (not current until the unit is complete),
    its inputs are the request's staged revisions where there are, and its references
    come from ``reference_context``."""

    request_id: str
    unit: str
    reference_context: str
    reason: str


@dataclass
class ServiceContext:
    """What a handler needs: settings, the object store, the catalog and a transport; and,
    while a handler runs, the work item it holds (``work``: marked done with its outputs,
    :func:`shared.archiving.archive_outputs`) and the reprocessing request it works for
    (``request``)."""

    settings: Settings
    store: ObjectStore
    catalog: Catalog
    transport: Transport | None = None
    work: ledger.Claim | None = None
    request: RequestScope | None = None

    @classmethod
    def from_settings(cls, settings: Settings, transport: Transport | None = None) -> ServiceContext:
        store = open_store(settings)
        store.ensure_buckets()
        catalog = Catalog(settings.resolved_catalog_url)
        return cls(settings=settings, store=store, catalog=catalog, transport=transport)


Handler = Callable[[Event, ServiceContext], list[str] | None]


@dataclass(frozen=True)
class Outcome:
    """How one handler call ended: ``ok``, ``retry`` (transient fault, try again) or
    ``failed`` (dead-lettered). ``note`` says why an ``ok`` did nothing (a duplicate);
    ``unavailable`` marks a retry caused by an outage (the object store or the catalog out
    of reach), which does not count against the task's attempts."""

    status: str
    event_ids: tuple[str, ...] = ()
    error: str | None = None
    note: str | None = None
    unavailable: bool = False


def record_failure(
    catalog: Catalog, task: str, payload: dict[str, Any], reason: str, *, retriable: bool, attempts: int,
    work: ledger.Claim | None = None,
) -> None:
    """Dead-letter a task: a row a person can read, with the message kept whole; the work
    item it held is failed with the reason in the same transaction, and so is the unit of
    a reprocessing request the task worked for (:func:`shared.reprocessing.fail_step`)."""
    with catalog.session() as s:
        s.add(_failure(task, payload, reason, retriable=retriable, attempts=attempts))
        if work is not None:
            ledger.fail(s, work, reason)
        if for_reprocessing(task):
            from shared.reprocessing import fail_step  # it builds on this module

            fail_step(s, payload, reason)  # its events wait for the reconciler's sweep


def _failure(task: str, payload: Any, reason: str, *, retriable: bool, attempts: int) -> TaskFailure:
    return TaskFailure(
        task=task,
        event_id=str(payload.get("id")) if isinstance(payload, dict) else None,
        reason=reason,
        retriable=retriable,
        attempts=attempts,
        payload=payload if isinstance(payload, dict) else {"raw": repr(payload)},
        created_at=datetime.now(UTC),
    )


def worker_id() -> str:
    """host:pid of this process (each prefork child of a Celery worker is its own)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def run_handler(
    task: str,
    handler: Handler,
    payload: dict[str, Any],
    ctx: ServiceContext,
    *,
    attempt: int = 1,
    max_attempts: int = 1,
    retry_in: float = 0.0,
    redelivered: bool = False,
) -> Outcome:
    """Run one handler on one message; never raises (but lets the termination of its
    process proceed).

    The message's work item is claimed first: when it is done already (a duplicate or a
    redelivery) or another worker holds it under a live lease, nothing runs and the
    outcome is ``ok`` with a note; a message the broker ``redelivered`` (its consumer
    died) takes the item over from the worker that held it. A malformed message or a
    non-retriable error is dead-lettered at once; a retriable error returns ``retry`` (the work item pending
    again, due in ``retry_in`` seconds) until ``max_attempts`` and is then dead-lettered
    too. An outage (:func:`shared.errors.is_unavailable`, or a catalog that cannot be
    reached to claim the item) returns ``retry`` marked ``unavailable`` whatever the
    attempt: the caller retries it without counting it, so a store restart of any length
    delays work and never dead-letters it. Every run adds its duration to the task's totals (the metrics of the archive API).
    """
    started = time.perf_counter()
    lease = timedelta(seconds=ctx.settings.work_lease_seconds)
    event_id = payload.get("id") if isinstance(payload, dict) else None
    try:
        taken = _claim(ctx.catalog, event_id, task, lease, take_over=redelivered)
    except Exception as exc:  # the catalog does not answer: nothing was done, nothing can be recorded
        reason = f"could not claim the work item: {type(exc).__name__}: {exc}"
        log.warning("%s on event %s: %s", task, event_id, reason)
        retriable = is_retriable(exc)
        return Outcome("retry" if retriable else "failed", error=reason, unavailable=retriable)
    if taken.status in ("done", "busy"):
        note = ("already done" if taken.status == "done" else f"running under {taken.holder}'s live lease")
        log.info("%s on event %s: %s; message acknowledged, nothing done", task, event_id, note)
        return Outcome("ok", note=note)
    claim = taken.claim
    with _Heartbeat(ctx.catalog, claim, lease), _dispatching(ctx):
        outcome = _run(task, handler, payload, replace(ctx, work=claim), attempt, max_attempts)
    if claim is not None:
        _settle(ctx.catalog, claim, outcome, retry_in)
    # what the handler's transactions did not dispatch as they committed (one in a thread
    # of its own, or a send that failed then)
    if outcome.status == "ok" and ctx.transport is not None and outcome.event_ids:
        try:
            dispatch_events(ctx.catalog, ctx.transport, event_ids=outcome.event_ids)
        except Exception as exc:  # the work is done and its events recorded: the reconciler sends them
            log.warning("%s on event %s: its events stay in the outbox for the reconciler (%s: %s)", task,
                        event_id, type(exc).__name__, str(exc).splitlines()[0])
    try:
        with ctx.catalog.session() as s:
            record_task_run(s, task, time.perf_counter() - started, outcome.status == "failed")
    except Exception as exc:  # metrics must never fail a task
        log.warning("could not record the run of %s: %s", task, exc)
    return outcome


def _dispatching(ctx: ServiceContext) -> AbstractContextManager[None]:
    """Events a handler records are sent as soon as the transaction recording them commits
    (a ``_crf`` goes on before its association's mosaic is made, a superseded revision is
    announced at once), not when the handler returns."""
    transport = ctx.transport
    if transport is None:
        return nullcontext()
    return dispatch_on_commit(lambda ids: dispatch_events(ctx.catalog, transport, event_ids=ids))


def _claim(catalog: Catalog, event_id: Any, task: str, lease: timedelta, *, take_over: bool) -> ledger.ClaimResult:
    if not isinstance(event_id, str):
        return ledger.ClaimResult("untracked")  # malformed: _run dead-letters it
    with catalog.session() as s:
        taken = ledger.claim(s, event_id, task, worker_id(), lease, take_over=take_over)
    if taken.status == "untracked":
        log.info("%s on event %s: no work item (a message sent outside the ledger); running it", task, event_id)
    return taken


def _settle(catalog: Catalog, claim: ledger.Claim, outcome: Outcome, retry_in: float) -> None:
    """Record how the run ended in the work item (a dead letter already failed it)."""
    try:
        with catalog.session() as s:
            if outcome.status == "ok":
                ledger.complete(s, claim)
            elif outcome.status == "retry":
                ledger.release(s, claim, outcome.error or "retry",
                               datetime.now(UTC) + timedelta(seconds=retry_in))
    except Exception as exc:  # the lease expires and the reconciler sends it again
        log.warning("could not record the end of %s on event %s (%s): %s",
                    claim.task, claim.event_id, outcome.status, exc)


class _Heartbeat:
    """Extends a claim's lease every third of the lease while the handler runs, from a
    thread; stops when the claim was given to another worker (it expired: this one hung)."""

    def __init__(self, catalog: Catalog, claim: ledger.Claim | None, lease: timedelta):
        self.catalog, self.claim, self.lease = catalog, claim, lease
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    def __enter__(self) -> _Heartbeat:
        if self.claim is not None:
            self.thread = threading.Thread(target=self._beat, name=f"lease of {self.claim.task}", daemon=True)
            self.thread.start()
        return self

    def _beat(self) -> None:
        while not self.stop.wait(self.lease.total_seconds() / 3):
            try:
                with self.catalog.session() as s:
                    kept = ledger.extend_lease(s, self.claim, self.lease)
            except Exception as exc:  # try again at the next beat; the lease may expire meanwhile
                log.warning("could not extend the lease of %s on event %s: %s",
                            self.claim.task, self.claim.event_id, exc)
                continue
            if not kept:
                log.warning("%s on event %s: the lease expired and the task was given to another worker",
                            self.claim.task, self.claim.event_id)
                return

    def __exit__(self, *exc_info) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(timeout=10)


def _run(task: str, handler: Handler, payload: dict[str, Any], ctx: ServiceContext,
         attempt: int, max_attempts: int) -> Outcome:
    try:
        event = Event.model_validate(payload)
        _ = event.payload  # validated where it enters: a malformed payload never reaches the handler
    except (ValidationError, PayloadError) as exc:
        detail = (f"{exc.error_count()} error(s): {exc.errors()[0]['msg']}" if isinstance(exc, ValidationError)
                  else str(exc))
        reason = f"malformed message for {task}: {detail}"
        log.error(reason)
        record_failure(ctx.catalog, task, payload, reason, retriable=False, attempts=attempt, work=ctx.work)
        return Outcome("failed", error=reason)
    try:
        event_ids = tuple(handler(event, ctx) or ())
    except Exception as exc:  # classified below; a worker must never crash on one message
        _reraise_termination(exc)
        retriable, unavailable = is_retriable(exc), is_unavailable(exc)
        reason = f"{type(exc).__name__}: {exc}"
        if unavailable:
            log.warning("%s on event %s: a service is out of reach (attempt %d/%d, not counted), will retry: %s",
                        task, event.id, attempt, max_attempts, reason)
            return Outcome("retry", error=reason, unavailable=True)
        if retriable and attempt < max_attempts:
            log.warning("%s on event %s failed (attempt %d/%d), will retry: %s",
                        task, event.id, attempt, max_attempts, reason)
            return Outcome("retry", error=reason)
        log.exception("%s on event %s failed for good: %s", task, event.id, reason)
        record_failure(ctx.catalog, task, payload, reason, retriable=retriable, attempts=attempt, work=ctx.work)
        return Outcome("failed", error=reason)
    return Outcome("ok", event_ids=event_ids)


def _reraise_termination(exc: Exception) -> None:
    """A process being terminated (SystemExit raised by a signal handler mid-query) can
    surface as the database error of the cleanup it interrupted: that is no verdict on
    the task. Let the termination proceed; the lease expires and the task is sent again."""
    seen, cause = set(), exc.__context__ or exc.__cause__
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, SystemExit | KeyboardInterrupt):
            raise cause
        seen.add(id(cause))
        cause = cause.__context__ or cause.__cause__


def dispatch_events(
    catalog: Catalog,
    transport: Transport,
    *,
    event_ids: Iterable[str] | None = None,
    older_than: timedelta | None = None,
    limit: int = 500,
) -> int:
    """Send undispatched outbox events to the tasks their routes name; returns how many
    events were dispatched.

    Each route's work item (written with the event; created here for an event recorded
    before there were work items) is sent once, when it is pending and was never sent,
    and stamped with the time. An event whose send fails stays pending with its error;
    one whose payload is malformed (no route can be chosen, and never will) is
    dead-lettered as task :data:`DISPATCH_TASK` and marked done with the reason in
    ``last_error``."""
    with catalog.session() as s:
        query = select(EventRecord).where(EventRecord.dispatched_at.is_(None))
        if event_ids is not None:
            query = query.where(EventRecord.id.in_(list(event_ids)))
        if older_than is not None:
            query = query.where(EventRecord.created_at < datetime.now(UTC) - older_than)
        query = query.order_by(EventRecord.created_at).limit(limit).with_for_update(skip_locked=True)
        sent = 0
        for row in s.scalars(query):
            event = event_from_record(row)
            row.attempts += 1
            try:
                routes_for(event)
            except PayloadError as exc:
                log.error("outbox event %s dead-lettered: %s", row.id, exc)
                row.last_error, row.dispatched_at = str(exc), datetime.now(UTC)
                s.add(_failure(DISPATCH_TASK, event.to_json_dict(), str(exc), retriable=False, attempts=row.attempts))
                continue
            try:
                for item in ledger.add_work(s, event):
                    if item.state == WorkState.PENDING and item.dispatched_at is None:
                        _send(transport, item, event)
            except SQLAlchemyError:
                raise  # the catalog failed: this transaction is lost, the whole dispatch with it
            except Exception as exc:  # broker down: leave it for the reconciler
                row.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("could not dispatch event %s: %s", row.id, row.last_error)
                continue
            row.dispatched_at = datetime.now(UTC)
            row.last_error = None
            sent += 1
        return sent


def _send(transport: Transport, item: WorkItem, event: Event) -> None:
    transport.send(item.task, event)
    item.dispatched_at = datetime.now(UTC)
    item.sends += 1


@dataclass(frozen=True)
class Reconciled:
    """What one pass of :func:`reconcile` did: outbox events dispatched, work items sent
    again (never started, or their lease expired), leases found expired, items failed
    because their lease expired too often."""

    events: int = 0
    resent: int = 0
    expired: int = 0
    failed: int = 0

    def __bool__(self) -> bool:
        return bool(self.events or self.resent or self.expired or self.failed)


def reconcile(
    catalog: Catalog,
    transport: Transport,
    older_than_seconds: float,
    *,
    start_timeout_seconds: float = 600.0,
    max_attempts: int = 5,
    limit: int = 500,
) -> Reconciled:
    """One pass of the reconciler; it needs nothing from the broker.

    - Outbox events left undispatched for ``older_than_seconds`` (a crash between commit
      and publish) are dispatched.
    - A running work item whose lease expired (its worker died or hung) becomes pending
      and is sent again, or is failed (and dead-lettered) once it was claimed
      ``max_attempts`` times.
    - A pending item sent ``start_timeout_seconds`` ago and not started (the broker lost
      the message) is sent again; the wait doubles with each send (up to 32 times), so a
      long queue is not flooded with copies (a copy finds the item taken and does nothing).
    """
    events = dispatch_events(catalog, transport, older_than=timedelta(seconds=older_than_seconds), limit=limit)
    now = datetime.now(UTC)
    expired = failed = resent = 0
    with catalog.session() as s:
        for item in s.scalars(select(WorkItem).where(WorkItem.state == WorkState.RUNNING, WorkItem.lease_until < now)
                              .order_by(WorkItem.lease_until).limit(limit).with_for_update(skip_locked=True)):
            held = f"worker {item.worker}, attempt {item.attempts}"
            if item.attempts >= max_attempts:
                reason = (f"lease expired on each of {item.attempts} attempt(s), the last held by {item.worker}: "
                          "the task kills or hangs its worker")
                item.state, item.finished_at, item.lease_until, item.last_error = WorkState.FAILED, now, None, reason
                s.add(_failure(item.task, event_from_record(s.get(EventRecord, item.event_id)).to_json_dict(), reason,
                               retriable=False, attempts=item.attempts))
                log.error("%s on event %s failed: %s", item.task, item.event_id, reason)
                failed += 1
            else:
                item.state, item.lease_until, item.dispatched_at = WorkState.PENDING, None, None
                item.last_error = f"lease expired ({held}): the worker died or hung"
                log.warning("%s on event %s: %s; sending it again", item.task, item.event_id, item.last_error)
                expired += 1
        s.flush()
        start_timeout = timedelta(seconds=start_timeout_seconds)
        lost = (select(WorkItem).join(EventRecord, EventRecord.id == WorkItem.event_id)
                .where(WorkItem.state == WorkState.PENDING, EventRecord.dispatched_at.is_not(None),
                       or_(WorkItem.dispatched_at.is_(None), WorkItem.dispatched_at < now - start_timeout))
                .order_by(WorkItem.id).limit(limit).with_for_update(skip_locked=True, of=WorkItem))
        for item in s.scalars(lost):
            if item.dispatched_at is not None and now - ledger.aware(item.dispatched_at) < start_timeout * 2 ** min(
                    max(item.sends - 1, 0), 5):
                continue
            try:
                _send(transport, item, event_from_record(s.get(EventRecord, item.event_id)))
            except Exception as exc:  # broker down: next pass
                log.warning("could not send %s on event %s again: %s", item.task, item.event_id, exc)
                break
            resent += 1
    return Reconciled(events, resent, expired, failed)


@dataclass
class InlineTransport:
    """Runs handlers in this process, first in first out: the embedded default and tests.

    Same handlers, same wrapper as a Celery worker; retries happen at once (no sleep) up
    to the configured number of attempts. A task still meeting an outage then is left
    pending for the reconciler, not dead-lettered.
    """

    handlers: dict[str, Handler]
    ctx: ServiceContext | None = None
    max_attempts: int = 3
    # False when only some services run here (tests of one service): messages for the
    # others are dropped instead of refused.
    strict: bool = True
    queue: deque = field(default_factory=deque)
    completed: list[tuple[str, Outcome]] = field(default_factory=list)

    def send(self, task: str, event: Event) -> None:
        queue_for(task)  # validates the name
        if task not in self.handlers:
            if self.strict:
                raise LookupError(f"no handler registered for task {task!r}")
            log.debug("no %s running here; message for event %s dropped", task, event.id)
            return
        self.queue.append((task, event.to_json_dict()))

    def run_until_idle(self, progress: Callable[[str, Outcome], None] | None = None) -> list[tuple[str, Outcome]]:
        assert self.ctx is not None, "InlineTransport needs a context before running"
        done = []
        while self.queue:
            task, payload = self.queue.popleft()
            for attempt in range(1, self.max_attempts + 1):
                outcome = run_handler(task, self.handlers[task], payload, self.ctx,
                                      attempt=attempt, max_attempts=self.max_attempts)
                if outcome.status != "retry":
                    break
                time.sleep(0.05 * attempt)
            done.append((task, outcome))
            if progress:
                progress(task, outcome)
        self.completed.extend(done)
        return done
