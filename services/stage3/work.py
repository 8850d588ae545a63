"""The intermediates of split stage-3 runs in ``dms-work`` (:mod:`services.stage3.parts`):
where a run keeps them, the ids of its part events, and their removal, by the run's own
last task or by the reconciler's sweep.

Light on purpose: the reconciler imports it, and it must not pull in the pipeline (nothing
of the science stack is imported here).
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from shared.catalog.models import EventRecord, FanIn, WorkItem, WorkState
from shared.catalog.work import aware
from shared.runtime import ServiceContext
from shared.storage import Bucket

__all__ = ["PART_TASKS", "part_event_id", "remove_run", "run_prefix", "sweep_work"]

log = logging.getLogger(__name__)

_IDS = uuid.UUID("5b0e3c1e-8a43-4f0e-9d1c-6a7d2f3e9b10")  # names the events of split runs
PART_TASKS = ("stage3.part", "stage3.reprocess-part")


def part_event_id(run: str, name: str) -> str:
    """The id of the event of part ``name`` (e.g. ``survey/2``, ``mosaic``) of ``run``:
    derived from both, so that a task run again records the same event."""
    return str(uuid.uuid5(_IDS, f"{run}/{name}"))


def run_prefix(run: str) -> str:
    """Where in ``dms-work`` the run's objects are (``stage3:<sha256>:<step>`` ->
    ``stage3/<sha256>/<step>``)."""
    return run.replace(":", "/")


def remove_run(ctx: ServiceContext, run: str) -> None:
    """Remove the run's objects from ``dms-work`` (also those of attempts never recorded)."""
    try:
        for key in list(ctx.store.list_keys(Bucket.WORK, run_prefix(run) + "/")):
            ctx.store.remove(Bucket.WORK, key)
    except Exception as exc:  # the products are archived: leftovers cost space, not correctness
        log.warning("run %s: could not remove its intermediates from %s: %s", run, Bucket.WORK.value, exc)


def sweep_work(ctx: ServiceContext, retention_seconds: float, *, now: datetime | None = None) -> list[str]:
    """Remove from ``dms-work`` the intermediates of split runs that are over, which their
    own mosaic task did not remove: a run whose mosaic task is done (its worker died between
    archiving the products and removing them), and a run with no part pending or running
    whose last phase began more than ``retention_seconds`` ago (failed or abandoned: its
    intermediates are kept that long so that an operator can send a failed part again).
    A run with a part pending or running is left alone. Returns the runs removed (the
    reconciler's pass calls it)."""
    now = now or datetime.now(UTC)
    runs = {":".join(key.split("/")[:3]) for key in ctx.store.list_keys(Bucket.WORK, "stage3/")
            if key.count("/") >= 3}
    if not runs:
        return []
    removed: list[tuple[str, str]] = []
    with ctx.catalog.session() as s:
        active = {(data or {}).get("run") for data in s.scalars(
            select(EventRecord.data).join(WorkItem, WorkItem.event_id == EventRecord.id)
            .where(WorkItem.task.in_(PART_TASKS), WorkItem.state.in_((WorkState.PENDING, WorkState.RUNNING))))}
        for run in sorted(runs - active):
            finished = s.scalar(select(func.count()).select_from(WorkItem).where(
                WorkItem.event_id == part_event_id(run, "mosaic"), WorkItem.state == WorkState.DONE)) > 0
            began = s.scalar(select(func.max(FanIn.created_at)).where(FanIn.key.startswith(f"{run}:")))
            if finished:
                removed.append((run, "its mosaic is done"))
            elif began is None or now - aware(began) > timedelta(seconds=retention_seconds):
                removed.append((run, f"nothing of it pending or running, its last phase began more than "
                                     f"{retention_seconds:g} s ago"))
    for run, why in removed:
        log.info("run %s is over (%s); removing its intermediates from %s", run, why, Bucket.WORK.value)
        remove_run(ctx, run)
    return [run for run, _ in removed]

