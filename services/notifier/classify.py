"""Which notifications a DMS event makes, and which of them a subscription wants.

Pure functions over :class:`FileFacts` (what the catalog says about each file an event is
about; gathered by :mod:`services.notifier.facts`). The rules, as MAST's program
subscriptions (reference/archive-conventions.md §3):

==========================  =========================================================
DMS event                   notification types (per file)
==========================  =========================================================
``dms.product.archived``    revision 1: ``new``; plus ``first`` when it is the earliest
                            product of its program; revision > 1: ``reprocessed``;
                            plus ``public`` when its data are public on arrival
                            (release <= archived, i.e. EAP waived) and no earlier
                            revision of the file was public already
``dms.data.public``         ``public``
``dms.reference.delivered`` ``reference`` for every reference file it names
anything else               nothing
==========================  =========================================================

A program's association report (``_asn-report.html``) raises nothing: it is a page about
the program's associations, rewritten as they change, not data; subscribers hear of the
products themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shared.messages import EventType
from shared.naming import ReportName
from shared.subscriptions import NOTIFICATION_TYPES, matches

__all__ = [
    "FileFacts",
    "Notice",
    "as_utc",
    "notices_for",
    "notification_types",
    "primary_type",
    "wanted",
]

NEW, FIRST, REPROCESSED, PUBLIC, REFERENCE = NOTIFICATION_TYPES


def as_utc(when: datetime | None) -> datetime | None:
    """An aware UTC datetime (SQLite hands back naive ones; every catalog time is UTC)."""
    if when is None:
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


@dataclass(frozen=True)
class FileFacts:
    """One file a DMS event is about, as far as notifications care.

    ``first_of_program``: the file is the program's earliest product (see
    :func:`services.notifier.facts.is_first_of_program`). ``previously_public``: an earlier
    revision of the same file was already public when this one was archived.
    ``extras`` are named fields added to the MAST-style row as they are (reference files:
    ``reftype``, ``context``).
    """

    filename: str
    suffix: str | None = None
    program: str | None = None
    instrument: str | None = None
    revision: int = 1
    level: int | None = None
    archived_at: datetime | None = None
    data_release: datetime | None = None
    first_of_program: bool = False
    previously_public: bool = False
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Notice:
    """One (file, notification type) pair: a row of the MAST-style payload."""

    file: FileFacts
    notification_type: str


def notification_types(event_type: str, facts: FileFacts) -> tuple[str, ...]:
    """The notification types ``facts`` raises for an event of ``event_type``, in the
    order of :data:`shared.subscriptions.NOTIFICATION_TYPES`."""
    if facts.suffix == ReportName.SUFFIX:
        return ()
    if event_type == EventType.PRODUCT_ARCHIVED:
        types = [NEW, FIRST] if facts.revision == 1 and facts.first_of_program else (
            [NEW] if facts.revision == 1 else [REPROCESSED])
        released, archived = as_utc(facts.data_release), as_utc(facts.archived_at)
        if released is not None and archived is not None and released <= archived and not facts.previously_public:
            types.append(PUBLIC)
        return tuple(types)
    if event_type == EventType.DATA_PUBLIC:
        return (PUBLIC,)
    if event_type == EventType.REFERENCE_DELIVERED:
        return (REFERENCE,)
    return ()


def notices_for(event_type: str, files: list[FileFacts]) -> list[Notice]:
    """Every (file, type) pair an event raises, files in the event's order."""
    return [Notice(f, t) for f in files for t in notification_types(event_type, f)]


def wanted(filters: dict, notices: list[Notice]) -> list[Notice]:
    """The notices a subscription's filters let through (shared.subscriptions.matches)."""
    return [
        n for n in notices
        if matches(filters, notification_type=n.notification_type, program=n.file.program,
                   suffix=n.file.suffix, instrument=n.file.instrument)
    ]


def primary_type(notices: list[Notice]) -> str:
    """The type a delivery (and its CloudEvent) is filed under: the first of the matched
    types in NOTIFICATION_TYPES order (new before first before public...)."""
    present = {n.notification_type for n in notices}
    for t in NOTIFICATION_TYPES:
        if t in present:
            return t
    raise ValueError("no notices")
