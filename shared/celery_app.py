"""Celery app factory: one queue per service, late acknowledgement, JSON only.

Reliability policy (DESIGN §7): ``acks_late`` with ``reject_on_worker_lost`` and prefetch 1
so a task killed mid-way is redelivered, never lost; tasks are idempotent so the
redelivery is harmless; transient faults retry with exponential backoff and jitter; after
the last retry the message is dead-lettered in the catalog (``task_failure``). An
outage is not the task's fault and spends none of its retries: a worker that cannot reach
the store or the catalog to start a task, or whose handler finds the store unavailable
(:func:`shared.errors.is_unavailable`), retries the message until it can -- a failed task
would be acknowledged and its message lost. The retry message counts the outages it
waited out (``outages``), so the attempt a handler sees is ``retries + 1 - outages``, and
:func:`shared.runtime.run_handler` is the one place that spends the budget.
"""

from __future__ import annotations

import ctypes
import logging
import random
from functools import lru_cache

from celery import Celery
from kombu import Queue

from shared.config import Settings
from shared.errors import ConfigurationError, is_retriable
from shared.messages import Event
from shared.routing import QUEUES, queue_for
from shared.runtime import Handler, ServiceContext, run_handler

__all__ = ["CeleryTransport", "create_app", "limit_malloc_arenas", "register_handlers", "retry_delay"]

log = logging.getLogger(__name__)


def create_app(settings: Settings) -> Celery:
    if not settings.broker_url:
        raise ConfigurationError("DMS_BROKER_URL is not set: Celery needs a broker (e.g. redis://127.0.0.1:6379/0)")
    app = Celery("jwst-dms", broker=settings.broker_url, backend=settings.result_backend)
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_queues=[Queue(q) for q in QUEUES],
        task_default_queue="ingest",
        task_ignore_result=settings.result_backend is None,
        broker_connection_retry_on_startup=True,
        broker_transport_options={
            "visibility_timeout": settings.broker_visibility_timeout,
            # Sweep for messages of dead workers every interval (not every interval x 10).
            "unacked_restore_interval": settings.broker_restore_interval,
            "unacked_restore_throttle": 1,
            **({"global_keyprefix": settings.broker_key_prefix} if settings.broker_key_prefix else {}),
        },
        worker_hijack_root_logger=False,
        # A task running when the broker connection drops finishes (its work item is done
        # with its outputs; the acknowledgement may be lost, a redelivery finds it done)
        # instead of being killed mid-write and redone after its lease expires.
        worker_cancel_long_running_tasks_on_connection_loss=False,
    )
    return app


def retry_delay(retries: int, cap: float) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, 2**retries)] + 1 s."""
    return 1.0 + random.uniform(0, min(cap, 2.0**retries))


class CeleryTransport:
    """Sends events as task messages to the queue of the task's service."""

    def __init__(self, app: Celery):
        self.app = app

    def send(self, task: str, event: Event) -> None:
        self.app.send_task(task, args=[event.to_json_dict()], queue=queue_for(task))


@lru_cache(maxsize=1)
def _worker_context(settings: Settings) -> ServiceContext:
    # Built lazily in each worker process (after fork): engines and clients are per process.
    return ServiceContext.from_settings(settings, transport=CeleryTransport(create_app(settings)))


def register_handlers(app: Celery, settings: Settings, handlers: dict[str, Handler]) -> None:
    """Register each handler as a Celery task of the same name (a thin driver)."""
    max_retries = settings.task_max_retries

    for name, handler in handlers.items():

        def task(self, payload, outages=0, _name=name, _handler=handler):
            redelivered = bool((self.request.delivery_info or {}).get("redelivered"))
            if redelivered:
                log.info("%s: redelivered message %s (its consumer died); its work item says whether it is done",
                         _name, self.request.id)
            countdown = retry_delay(self.request.retries, settings.task_retry_backoff_max)
            try:
                ctx = _worker_context(settings)
            except Exception as exc:
                # The catalog or the object store is out of reach: nothing of the message was
                # done. Failing would acknowledge it (late acks ack a failed task) and lose
                # it; it waits instead, for as long as the outage lasts.
                if not is_retriable(exc):
                    raise
                log.warning("%s: cannot build the worker context (%s); message %s retried later",
                            _name, exc, self.request.id)
                raise self.retry(args=[payload], kwargs={"outages": outages + 1}, countdown=countdown) from exc
            outcome = run_handler(
                _name, _handler, payload, ctx,
                attempt=self.request.retries + 1 - outages, max_attempts=max_retries + 1, retry_in=countdown,
                redelivered=redelivered,
            )
            if outcome.status == "retry":
                raise self.retry(args=[payload], kwargs={"outages": outages + outcome.unavailable}, countdown=countdown)
            return {"status": outcome.status, "events": list(outcome.event_ids), "error": outcome.error}

        # No retry limit of Celery's own: its default (3) bounds even retry(max_retries=None),
        # which lost the message of a task still waiting for the store after four tries.
        # run_handler dead-letters a task whose attempts are spent.
        app.task(name=name, bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=None)(task)


_M_ARENA_MAX = -8  # glibc's mallopt parameter (malloc.h)


def limit_malloc_arenas(arenas: int) -> bool:
    """Let this process's C library use at most ``arenas`` memory arenas (glibc
    ``mallopt(M_ARENA_MAX)``), before the worker forks its pool, whose processes keep it.

    A task's threads (archiving ahead, multipart uploads) would otherwise each allocate
    from an arena of its own, and what they free stays there: stage 3 on
    eight full frames peaked at 2.9 GiB that way and at 2.1 GiB with two arenas, in the
    same time. False (nothing changed) for 0 or a C library without ``mallopt``."""
    if arenas <= 0:
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        log.info("no mallopt in this C library: memory arenas left as they are")
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_ARENA_MAX, arenas))
