"""How a service handler runs: its context, the transports that carry events to it, and
the outbox dispatcher that turns recorded events into task messages.

A handler is ``handler(event, ctx) -> list[str]``: it does its work, records the events
it announces in the outbox (same transaction as its catalog changes) and returns their
ids. :func:`run_handler` is the one wrapper around every handler, whether it is called by
a Celery worker or in-process: decode, call, classify failures, dispatch. A handler reads
the event's typed payload (:attr:`shared.messages.Event.payload`); a malformed one raises
:class:`shared.messages.PayloadError`, which is non-retriable: the message is dead-lettered
with the reason.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from pydantic import ValidationError
from sqlalchemy import select

from shared.catalog import Catalog, EventRecord, TaskFailure
from shared.catalog.queries import event_from_record, record_task_run
from shared.config import Settings
from shared.errors import is_retriable
from shared.messages import Event, PayloadError
from shared.routing import queue_for, routes_for
from shared.storage import ObjectStore, open_store

__all__ = [
    "DISPATCH_TASK",
    "Handler",
    "InlineTransport",
    "Outcome",
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


@dataclass
class ServiceContext:
    """What a handler needs: settings, the object store, the catalog and a transport."""

    settings: Settings
    store: ObjectStore
    catalog: Catalog
    transport: Transport | None = None

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
    ``failed`` (dead-lettered)."""

    status: str
    event_ids: tuple[str, ...] = ()
    error: str | None = None


def record_failure(
    catalog: Catalog, task: str, payload: dict[str, Any], reason: str, *, retriable: bool, attempts: int
) -> None:
    """Dead-letter a task: a row a person can read, with the message kept whole."""
    with catalog.session() as s:
        s.add(_failure(task, payload, reason, retriable=retriable, attempts=attempts))


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


def run_handler(
    task: str,
    handler: Handler,
    payload: dict[str, Any],
    ctx: ServiceContext,
    *,
    attempt: int = 1,
    max_attempts: int = 1,
) -> Outcome:
    """Run one handler on one message; never raises.

    A malformed message or a non-retriable error is dead-lettered at once; a retriable
    error returns ``retry`` until ``max_attempts`` and is then dead-lettered too. Every
    run adds its duration to the task's totals (the metrics of the archive API).
    """
    started = time.perf_counter()
    outcome = _run(task, handler, payload, ctx, attempt, max_attempts)
    try:
        with ctx.catalog.session() as s:
            record_task_run(s, task, time.perf_counter() - started, outcome.status == "failed")
    except Exception as exc:  # metrics must never fail a task
        log.warning("could not record the run of %s: %s", task, exc)
    return outcome


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
        record_failure(ctx.catalog, task, payload, reason, retriable=False, attempts=attempt)
        return Outcome("failed", error=reason)
    try:
        event_ids = tuple(handler(event, ctx) or ())
    except Exception as exc:  # classified below; a worker must never crash on one message
        retriable = is_retriable(exc)
        reason = f"{type(exc).__name__}: {exc}"
        if retriable and attempt < max_attempts:
            log.warning("%s on event %s failed (attempt %d/%d), will retry: %s",
                        task, event.id, attempt, max_attempts, reason)
            return Outcome("retry", error=reason)
        log.exception("%s on event %s failed for good: %s", task, event.id, reason)
        record_failure(ctx.catalog, task, payload, reason, retriable=retriable, attempts=attempt)
        return Outcome("failed", error=reason)
    if ctx.transport is not None and event_ids:
        dispatch_events(ctx.catalog, ctx.transport, event_ids=event_ids)
    return Outcome("ok", event_ids=event_ids)


def dispatch_events(
    catalog: Catalog,
    transport: Transport,
    *,
    event_ids: Iterable[str] | None = None,
    older_than: timedelta | None = None,
    limit: int = 500,
) -> int:
    """Send undispatched outbox events to the tasks their routes name; returns how many
    events were dispatched. An event whose send fails stays pending with its error; one
    whose payload is malformed (no route can be chosen, and never will) is dead-lettered
    as task :data:`DISPATCH_TASK` and marked done with the reason in ``last_error``."""
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
                routes = routes_for(event)
            except PayloadError as exc:
                log.error("outbox event %s dead-lettered: %s", row.id, exc)
                row.last_error, row.dispatched_at = str(exc), datetime.now(UTC)
                s.add(_failure(DISPATCH_TASK, event.to_json_dict(), str(exc), retriable=False, attempts=row.attempts))
                continue
            try:
                for route in routes:
                    transport.send(route.task, event)
            except Exception as exc:  # broker down: leave it for the reconciler
                row.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("could not dispatch event %s: %s", row.id, row.last_error)
                continue
            row.dispatched_at = datetime.now(UTC)
            row.last_error = None
            sent += 1
        return sent


def reconcile(catalog: Catalog, transport: Transport, older_than_seconds: float) -> int:
    """Re-dispatch events left pending (a crash between commit and publish)."""
    return dispatch_events(catalog, transport, older_than=timedelta(seconds=older_than_seconds))


@dataclass
class InlineTransport:
    """Runs handlers in this process, first in first out: the embedded default and tests.

    Same handlers, same wrapper as a Celery worker; retries happen at once (no sleep) up
    to the configured number of attempts.
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
