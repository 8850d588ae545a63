"""Fan-in: work split across tasks, and the one moment all its parts are done.

A task that splits its work (stage 3 maps each member) opens a :class:`FanIn` with the
number of parts and records one event per part, in one transaction. Each part's task
stores its result (an object in ``dms-work``) and records it with :func:`record_part`;
the call that records the last part returns True, and the caller records the event of
the task that combines the parts in that same transaction. No task waits for another:
the catalog, not a task, knows when the parts are done.

Concurrent parts are serialized on the fan-in's row (``SELECT ... FOR UPDATE``), so two
parts finishing at once cannot both see the other missing (under READ COMMITTED each
would count only its own part). A part recorded again (its task ran twice: a retry, a
redelivered message) keeps its first result and closes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shared.catalog.models import FanIn, FanInPart

__all__ = ["PartResult", "open_fan_in", "part_results", "record_part"]


@dataclass(frozen=True)
class PartResult:
    """Where one part's result is, and its checksum."""

    part: int
    uri: str
    sha256: str


def open_fan_in(session: Session, key: str, parts: int) -> bool:
    """Open the fan-in ``key`` of ``parts`` parts; False when it is open already (the task
    that splits the work ran again: its part events are recorded already)."""
    if parts < 1:
        raise ValueError(f"a fan-in needs at least one part, got {parts}")
    existing = session.get(FanIn, key)
    if existing is not None:
        if existing.parts != parts:
            raise ValueError(f"fan-in {key} has {existing.parts} parts, not {parts}")
        return False
    session.add(FanIn(key=key, parts=parts, created_at=datetime.now(UTC)))
    session.flush()
    return True


def record_part(session: Session, key: str, part: int, uri: str, sha256: str) -> bool:
    """Record the result of part ``part`` of ``key``; True exactly once: for the call that
    records the last missing part (the caller then records the combining task's event in
    the same transaction).

    Raises
    ------
    LookupError
        No fan-in ``key`` is open.
    ValueError
        ``part`` is not one of its parts.
    """
    fan_in = session.scalar(select(FanIn).where(FanIn.key == key).with_for_update())
    if fan_in is None:
        raise LookupError(f"no fan-in {key!r} is open")
    if not 0 <= part < fan_in.parts:
        raise ValueError(f"fan-in {key} has parts 0..{fan_in.parts - 1}, not {part}")
    if session.get(FanInPart, (key, part)) is None:
        session.add(FanInPart(fan_in_key=key, part=part, result_uri=uri, result_sha256=sha256,
                              done_at=datetime.now(UTC)))
        session.flush()
    if fan_in.closed_at is not None:
        return False
    done = session.scalar(select(func.count()).select_from(FanInPart).where(FanInPart.fan_in_key == key))
    if done < fan_in.parts:
        return False
    fan_in.closed_at = datetime.now(UTC)
    return True


def part_results(session: Session, key: str) -> list[PartResult]:
    """The recorded results of ``key``'s parts, in part order."""
    rows = session.scalars(select(FanInPart).where(FanInPart.fan_in_key == key).order_by(FanInPart.part))
    return [PartResult(r.part, r.result_uri, r.result_sha256) for r in rows]
