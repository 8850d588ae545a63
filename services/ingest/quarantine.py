"""Refusing input: the raw object stays untouched in dms-raw, a row in ``ingest_rejection``
says why, and ``dms.ingest.rejected`` announces it (once per input and reason)."""

from __future__ import annotations

import logging
from datetime import datetime

from shared.archiving import event_id_for
from shared.catalog.queries import add_event, record_rejection
from shared.messages import IngestRejected, RawFile, new_event
from shared.runtime import ServiceContext
from shared.storage import StoredObject

__all__ = ["quarantine"]

log = logging.getLogger(__name__)


def quarantine(ctx: ServiceContext, raw: StoredObject, reason: str, detail: str, program: str | None,
               when: datetime) -> str | None:
    """Record why ``raw`` was refused; the id of the new ``dms.ingest.rejected`` event, or
    None when this input was already refused for this reason."""
    ev = new_event(
        IngestRejected(raw=RawFile(uri=raw.uri, filename=raw.filename, sha256=raw.sha256, size=raw.size),
                       reason=reason, detail=detail, program=program),
        f"{ctx.settings.source}/ingest", subject=raw.filename,
        event_id=event_id_for("rejected", raw.sha256, reason, program),
        time=when,
    )
    with ctx.catalog.session() as s:
        _, created = record_rejection(s, raw=raw, reason=reason, detail=detail, program_id=program, event_id=ev.id)
        if not created:
            return None
        add_event(s, ev)
    log.warning("rejected %s: %s: %s (raw kept at %s)", raw.filename, reason, detail, raw.uri)
    return ev.id
