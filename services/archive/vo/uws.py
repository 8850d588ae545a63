"""Asynchronous TAP jobs (UWS 1.1), kept in the memory of the API process.

A job holds the parameters it was created with; ``PHASE=RUN`` runs its query there and then
(the same :func:`services.archive.vo.tap.execute` as a synchronous query, so it obeys the
same timeout) and keeps the VOTable, or the error, for :data:`RETENTION_SECONDS`. Jobs live
in the process that created them: they are lost when it stops, and with several API replicas
a client must reach the same replica (sticky sessions) or use the synchronous endpoint.
At most :data:`MAX_JOBS` are kept; the oldest go first. A job created with a token belongs to
its owner: other callers get 404 for it.
"""

from __future__ import annotations

import secrets
import threading
import xml.etree.ElementTree as ET
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

__all__ = ["MAX_JOBS", "RETENTION_SECONDS", "Job", "JobStore", "job_xml", "jobs_xml", "run_job"]

UWS = "http://www.ivoa.net/xml/UWS/v1.0"
XLINK = "http://www.w3.org/1999/xlink"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
for _prefix, _uri in (("uws", UWS), ("xlink", XLINK), ("xsi", XSI)):
    ET.register_namespace(_prefix, _uri)

RETENTION_SECONDS = 3600
MAX_JOBS = 100


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Job:
    job_id: str
    owner: str | None
    parameters: list[tuple[str, str]]
    execution_duration: float
    created: datetime = field(default_factory=_now)
    phase: str = "PENDING"
    started: datetime | None = None
    ended: datetime | None = None
    result: bytes | None = None  # the VOTable of a COMPLETED job
    error: str | None = None  # the message of a job in ERROR
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def destruction(self) -> datetime:
        return self.created + timedelta(seconds=RETENTION_SECONDS)


class JobStore:
    """The jobs of one API process (thread-safe)."""

    def __init__(self, max_jobs: int = MAX_JOBS):
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()
        self._max = max_jobs

    def _expire(self) -> None:
        now = _now()
        for job_id in [j.job_id for j in self._jobs.values() if j.destruction <= now]:
            del self._jobs[job_id]
        while len(self._jobs) > self._max:
            self._jobs.popitem(last=False)

    def create(self, owner: str | None, parameters: list[tuple[str, str]], execution_duration: float) -> Job:
        job = Job(secrets.token_hex(8), owner, parameters, execution_duration)
        with self._lock:
            self._jobs[job.job_id] = job
            self._expire()
        return job

    def get(self, job_id: str, caller: str | None) -> Job | None:
        """The job, unless it is unknown, expired or someone else's."""
        with self._lock:
            self._expire()
            job = self._jobs.get(job_id)
        if job is None or (job.owner is not None and job.owner != caller):
            return None
        return job

    def visible(self, caller: str | None) -> list[Job]:
        with self._lock:
            self._expire()
            return [j for j in self._jobs.values() if j.owner is None or j.owner == caller]

    def delete(self, job_id: str) -> None:
        with self._lock:
            self._jobs.pop(job_id, None)


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
    if job.result is not None:
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


def run_job(job: Job, run) -> None:
    """Run a PENDING job now: ``run(parameters)`` returns the result VOTable or raises
    :class:`~services.archive.vo.tap.TapError` (the job ends in ERROR with its message)."""
    from services.archive.vo.tap import TapError, TapUnavailable

    with job.lock:  # two PHASE=RUN at once: one runs the query
        if job.phase != "PENDING":
            return
        job.phase, job.started = "EXECUTING", _now()
    try:
        job.result = run(job.parameters)
        job.phase = "COMPLETED"
    except (TapError, TapUnavailable) as exc:
        job.error, job.phase = str(exc), "ERROR"
    finally:
        job.ended = _now()
