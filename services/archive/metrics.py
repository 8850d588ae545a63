"""Prometheus text exposition (format 0.0.4) of the system's state, read from the catalog
and the broker at scrape time: backlog per queue, outbox, work items per task and state
(and the age of the oldest pending/running one), products per level, rejections, dead
letters and per-task run statistics."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shared.catalog import EventRecord, IngestRejection, TaskFailure, TaskStat, WorkState
from shared.catalog.queries import product_counts_by_level
from shared.catalog.work import work_summary
from shared.config import Settings
from shared.health import queue_depths

__all__ = ["CONTENT_TYPE", "render_metrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

log = logging.getLogger(__name__)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float | int) -> str:
    return repr(float(value)) if isinstance(value, float) else str(int(value))


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_: str,
               samples: Iterable[tuple[dict[str, str], float | int]], sample_name: str | None = None) -> None:
        self.lines.append(f"# HELP {name} {help_}")
        self.lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            label_text = ",".join(f'{k}="{_escape(str(v))}"' for k, v in labels.items())
            self.lines.append(f"{sample_name or name}{{{label_text}}} {_number(value)}" if label_text
                              else f"{sample_name or name} {_number(value)}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def render_metrics(session: Session, settings: Settings) -> str:
    w = _Writer()
    try:
        depths = queue_depths(settings)
        broker_up = None if depths is None else 1
    except Exception as exc:  # the broker being down is itself a metric, not a failed scrape
        log.warning("metrics: broker %s did not answer: %s", settings.broker_url, exc)
        depths, broker_up = None, 0
    w.family("dms_queue_depth", "gauge", "Task messages waiting in each service queue (Redis broker).",
             (({"queue": q}, n) for q, n in (depths or {}).items()))
    if broker_up is not None:
        w.family("dms_broker_up", "gauge", "1 when the broker answered this scrape, else 0.", [({}, broker_up)])
    pending = session.scalar(select(func.count()).select_from(EventRecord).where(EventRecord.dispatched_at.is_(None)))
    w.family("dms_outbox_pending", "gauge", "Events recorded but not yet dispatched.", [({}, pending or 0)])
    work = work_summary(session)
    w.family("dms_work", "gauge", "Work items (routed tasks) per task and state.",
             (({"task": t.task, "state": t.state}, t.count) for t in work))
    now = datetime.now(UTC)
    w.family("dms_work_oldest_seconds", "gauge",
             "Age of the oldest pending (since recorded) or running (since started) work item per task.",
             (({"task": t.task, "state": t.state}, round((now - t.oldest).total_seconds(), 3)) for t in work
              if t.state in (WorkState.PENDING, WorkState.RUNNING) and t.oldest is not None))
    counts = product_counts_by_level(session)
    w.family("dms_products", "gauge", "Current product revisions per CAOM calibration level.",
             (({"level": str(level)}, counts[level]) for level in sorted(counts)))
    rejections = session.scalar(select(func.count()).select_from(IngestRejection))
    w.family("dms_ingest_rejections_total", "counter", "Raw inputs quarantined with a reason.",
             [({}, rejections or 0)])
    failures = session.scalar(select(func.count()).select_from(TaskFailure))
    w.family("dms_task_failures_total", "counter", "Tasks dead-lettered (bad input or retries exhausted).",
             [({}, failures or 0)])
    stats = session.scalars(select(TaskStat).order_by(TaskStat.task)).all()
    w.family("dms_task_runs_total", "counter", "Handler runs per task.",
             (({"task": s.task}, s.runs) for s in stats))
    w.family("dms_task_failures", "counter", "Handler runs per task that ended dead-lettered.",
             (({"task": s.task}, s.failures) for s in stats))
    w.family("dms_task_seconds", "summary", "Handler run time per task, seconds.",
             (({"task": s.task}, float(s.total_seconds)) for s in stats), sample_name="dms_task_seconds_sum")
    w.lines.extend(f'dms_task_seconds_count{{task="{_escape(s.task)}"}} {s.runs}' for s in stats)
    w.family("dms_task_seconds_max", "gauge", "Longest handler run per task, seconds.",
             (({"task": s.task}, float(s.max_seconds)) for s in stats))
    return w.text()
