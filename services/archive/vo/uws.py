"""Asynchronous TAP jobs (UWS 1.1), kept in the catalog (table ``tap_job``).

Every API process of the archive answers for every job: a job is a row, and each change of
its phase is a write to that row, so a client whose requests reach different processes (or a
process started since) sees one job. The UWS documents are :func:`job_xml` and :func:`jobs_xml`.

* ``PHASE=RUN`` runs the query in the API process that receives it, within that request (the
  same :func:`services.archive.vo.tap.execute` as a synchronous query, so under the same
  timeout, which is the job's execution duration). The request, not a background thread,
  carries the run so that a graceful stop of the process, which lets the requests in flight
  end, also lets the job end. One conditional update claims the run (PENDING to EXECUTING):
  two RUNs at once, through one process or two, run the query once.
* The query's outcome, the VOTable or the error's message, is written with the final phase
  (COMPLETED or ERROR) unless the job left EXECUTING meanwhile (aborted, or deleted): then the
  outcome is dropped.
* A job still EXECUTING :data:`RUNNER_MARGIN_SECONDS` after its execution duration has run
  out lost its runner (the process was killed, or its host stopped, during the query): the
  next request that reads it puts it in ERROR with a message saying so.
* A job is kept for :data:`RETENTION_SECONDS` from its creation (its destruction time). An
  expired job answers 404 at once and is removed lazily: when it is asked for, when the job
  list is read and when a job is created. At most :data:`MAX_JOBS` jobs are kept in the
  archive; creating one more removes the oldest.
* A job created with a token belongs to its owner: other callers get 404 for it (and do not
  see it in the list). A job created without a token is anyone's who knows its id.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from shared.catalog import Catalog, TapJob

__all__ = ["ACTIVE_PHASES", "MAX_JOBS", "RETENTION_SECONDS", "RUNNER_MARGIN_SECONDS", "Job", "JobStore", "job_xml",
           "jobs_xml", "runner_id"]

log = logging.getLogger(__name__)

UWS = "http://www.ivoa.net/xml/UWS/v1.0"
XLINK = "http://www.w3.org/1999/xlink"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
for _prefix, _uri in (("uws", UWS), ("xlink", XLINK), ("xsi", XSI)):
    ET.register_namespace(_prefix, _uri)

RETENTION_SECONDS = 3600
"""A job is removed this long after its creation (its UWS destruction time)."""

MAX_JOBS = 100
"""Jobs kept in the archive at most (every owner's): creating one more removes the oldest."""

RUNNER_MARGIN_SECONDS = 60.0
"""How long past its execution duration a job may stay EXECUTING before it is taken for one
whose runner stopped: time to translate the ADQL, wait for a connection and write the VOTable."""

ACTIVE_PHASES = ("PENDING", "QUEUED", "EXECUTING")
"""Phases a job may be aborted in."""

Runner = Callable[[list[tuple[str, str]]], bytes]
"""Runs a job's query: its parameters in, the result VOTable out; raises
:class:`~services.archive.vo.tap.TapError` or :class:`~services.archive.vo.tap.TapUnavailable`
for a query it cannot answer."""


def _now() -> datetime:
    return datetime.now(UTC)


def _utc(when: datetime | None) -> datetime | None:
    """``when`` with its time zone (SQLite gives back naive UTC times)."""
    return when if when is None or when.tzinfo else when.replace(tzinfo=UTC)


def runner_id() -> str:
    """host:pid of this process: who runs a job it claims."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class Job:
    """A job as read from the catalog (its result, when it has one, is read apart: :meth:`JobStore.result`)."""

    job_id: str
    owner: str | None
    parameters: list[tuple[str, str]]
    execution_duration: float
    created: datetime
    destruction: datetime
    phase: str = "PENDING"
    started: datetime | None = None
    ended: datetime | None = None
    has_result: bool = False  # a COMPLETED job's VOTable is stored
    error: str | None = None  # the message of a job in ERROR


_COLUMNS = (TapJob.id, TapJob.owner, TapJob.parameters, TapJob.execution_duration, TapJob.created_at,
            TapJob.destruction_at, TapJob.phase, TapJob.started_at, TapJob.ended_at,
            TapJob.result.is_not(None).label("has_result"), TapJob.error, TapJob.runner)


def _job(row) -> Job:
    return Job(job_id=row.id, owner=row.owner, parameters=[(str(k), str(v)) for k, v in row.parameters],
               execution_duration=row.execution_duration, created=_utc(row.created_at),
               destruction=_utc(row.destruction_at), phase=row.phase, started=_utc(row.started_at),
               ended=_utc(row.ended_at), has_result=bool(row.has_result), error=row.error)


class JobStore:
    """The asynchronous TAP jobs of the archive, in its catalog. Holds no job itself: any
    number of stores, in any number of processes, over one catalog see the same jobs.

    ``clock`` gives the current time (aware, UTC); tests move it."""

    def __init__(self, catalog: Catalog, *, retention_seconds: float = RETENTION_SECONDS, max_jobs: int = MAX_JOBS,
                 runner_margin_seconds: float = RUNNER_MARGIN_SECONDS, clock: Callable[[], datetime] = _now):
        self._catalog = catalog
        self._retention = timedelta(seconds=retention_seconds)
        self._max = max_jobs
        self._margin = timedelta(seconds=runner_margin_seconds)
        self._clock = clock

    # --- reading ------------------------------------------------------------------------

    def _runner_lost(self, s: Session, row, now: datetime) -> bool:
        """Put a job EXECUTING past its duration and the margin in ERROR; True when it was."""
        if row.phase != "EXECUTING" or row.started_at is None:
            return False
        deadline = _utc(row.started_at) + timedelta(seconds=row.execution_duration) + self._margin
        if now <= deadline:
            return False
        message = (f"the job's runner stopped: the archive process that ran its query ({row.runner or 'unknown'}) "
                   f"ended before the query did (still EXECUTING {int((now - _utc(row.started_at)).total_seconds())} "
                   f"s after it started, for an execution duration of {int(row.execution_duration)} s); "
                   "submit the query again")
        done = s.execute(update(TapJob).where(TapJob.id == row.id, TapJob.phase == "EXECUTING")
                         .values(phase="ERROR", error=message, ended_at=now)).rowcount
        if done:
            log.warning("TAP job %s: runner %s lost; the job is in ERROR", row.id, row.runner)
        return True

    def _read(self, s: Session, job_id: str) -> Job | None:
        row = s.execute(select(*_COLUMNS).where(TapJob.id == job_id)).one_or_none()
        return None if row is None else _job(row)

    def get(self, job_id: str, caller: str | None) -> Job | None:
        """The job, unless it is unknown, expired or someone else's."""
        now = self._clock()
        with self._catalog.session() as s:
            row = s.execute(select(*_COLUMNS).where(TapJob.id == job_id)).one_or_none()
            if row is not None and _utc(row.destruction_at) <= now:
                s.execute(delete(TapJob).where(TapJob.id == job_id))
                return None
            if row is None or (row.owner is not None and row.owner != caller):
                return None
            if self._runner_lost(s, row, now):
                return self._read(s, job_id)
            return _job(row)

    def visible(self, caller: str | None) -> list[Job]:
        """The jobs ``caller`` may see (its own and the anonymous ones), oldest first."""
        now = self._clock()
        with self._catalog.session() as s:
            s.execute(delete(TapJob).where(TapJob.destruction_at <= now))
            owned = TapJob.owner.is_(None) if caller is None else (TapJob.owner.is_(None) | (TapJob.owner == caller))
            rows = s.execute(select(*_COLUMNS).where(owned).order_by(TapJob.created_at, TapJob.id)).all()
            lost = [row.id for row in rows if self._runner_lost(s, row, now)]
            if lost:
                fresh = {row.id: row for row in s.execute(select(*_COLUMNS).where(TapJob.id.in_(lost)))}
                rows = [fresh.get(row.id, row) for row in rows]
            return [_job(row) for row in rows]

    def result(self, job_id: str) -> bytes | None:
        """The VOTable of a COMPLETED job (None for another phase or an unknown job)."""
        with self._catalog.session() as s:
            return s.scalar(select(TapJob.result).where(TapJob.id == job_id))

    # --- writing ------------------------------------------------------------------------

    def create(self, owner: str | None, parameters: Sequence[tuple[str, str]], execution_duration: float) -> Job:
        """A new PENDING job; expired jobs, and the oldest beyond :data:`MAX_JOBS`, go."""
        now = self._clock()
        job_id = secrets.token_hex(8)
        with self._catalog.session() as s:
            s.execute(delete(TapJob).where(TapJob.destruction_at <= now))
            s.add(TapJob(id=job_id, owner=owner, parameters=[[k, v] for k, v in parameters],
                         execution_duration=float(execution_duration), phase="PENDING", created_at=now,
                         destruction_at=now + self._retention))
            s.flush()
            oldest = select(TapJob.id).order_by(TapJob.created_at.desc(), TapJob.id.desc()).offset(self._max)
            s.execute(delete(TapJob).where(TapJob.id.in_(oldest.scalar_subquery())))
            return self._read(s, job_id)

    def delete(self, job_id: str) -> None:
        with self._catalog.session() as s:
            s.execute(delete(TapJob).where(TapJob.id == job_id))

    def abort(self, job_id: str) -> None:
        """ABORTED, unless the job has already ended. A query already running is not stopped
        (it ends within its execution duration); its outcome is dropped."""
        with self._catalog.session() as s:
            s.execute(update(TapJob).where(TapJob.id == job_id, TapJob.phase.in_(ACTIVE_PHASES))
                      .values(phase="ABORTED", ended_at=self._clock()))

    def run(self, job_id: str, run: Runner) -> None:
        """Run a PENDING job now, in this thread: ``run`` gets its parameters; the job ends
        COMPLETED with the VOTable, or ERROR with the message of the refusal. A job in any
        other phase (another request runs it, or ran it) is left as it is."""
        from services.archive.vo.tap import TapError, TapUnavailable

        with self._catalog.session() as s:
            claimed = s.execute(update(TapJob).where(TapJob.id == job_id, TapJob.phase == "PENDING")
                                .values(phase="EXECUTING", started_at=self._clock(), runner=runner_id())).rowcount
            parameters = s.scalar(select(TapJob.parameters).where(TapJob.id == job_id)) if claimed else None
        if not claimed:
            return
        result, error = None, None
        try:
            result = run([(str(k), str(v)) for k, v in parameters])
        except (TapError, TapUnavailable) as exc:
            error = str(exc)
        except Exception as exc:  # an unforeseen failure still ends the job, and is logged in full
            log.exception("TAP job %s failed", job_id)
            error = f"the query failed in the archive ({type(exc).__name__}); the operators have the details"
        with self._catalog.session() as s:
            s.execute(update(TapJob).where(TapJob.id == job_id, TapJob.phase == "EXECUTING")
                      .values(phase="COMPLETED" if error is None else "ERROR", result=result, error=error,
                              ended_at=self._clock()))


def _iso(when: datetime | None) -> str | None:
    return None if when is None else when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _sub(parent: ET.Element, tag: str, text: str | None = None, nil: bool = False, **attrib: str) -> ET.Element:
    element = ET.SubElement(parent, f"{{{UWS}}}{tag}", attrib)
    if nil:
        element.set(f"{{{XSI}}}nil", "true")
    elif text is not None:
        element.text = text
    return element


def job_xml(job: Job, job_url: str) -> bytes:
    """The UWS job document of ``job``, served at ``job_url``."""
    root = ET.Element(f"{{{UWS}}}job", {"version": "1.1"})
    _sub(root, "jobId", job.job_id)
    _sub(root, "ownerId", job.owner, nil=job.owner is None)
    _sub(root, "phase", job.phase)
    _sub(root, "creationTime", _iso(job.created))
    _sub(root, "startTime", _iso(job.started), nil=job.started is None)
    _sub(root, "endTime", _iso(job.ended), nil=job.ended is None)
    _sub(root, "executionDuration", str(int(job.execution_duration)))
    _sub(root, "destruction", _iso(job.destruction))
    parameters = _sub(root, "parameters")
    for name, value in job.parameters:
        _sub(parameters, "parameter", value, id=name.lower())
    results = _sub(root, "results")
    if job.has_result:
        _sub(results, "result", id="result", **{f"{{{XLINK}}}href": f"{job_url}/results/result",
                                                 f"{{{XLINK}}}type": "simple"})
    if job.error is not None:
        summary = _sub(root, "errorSummary", type="fatal", hasDetail="true")
        _sub(summary, "message", job.error)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def jobs_xml(jobs: list[Job], async_url: str) -> bytes:
    """The UWS job list."""
    root = ET.Element(f"{{{UWS}}}jobs", {"version": "1.1"})
    for job in jobs:
        ref = _sub(root, "jobref", id=job.job_id, **{f"{{{XLINK}}}href": f"{async_url}/{job.job_id}",
                                                    f"{{{XLINK}}}type": "simple"})
        _sub(ref, "phase", job.phase)
        _sub(ref, "creationTime", _iso(job.created))
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)
