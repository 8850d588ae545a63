"""What the catalog says about the files an event is about (the inputs of classification).

Every answer here is a function of rows that never change once written (product
revisions, archive times, program membership), so classifying the same event again, on
redelivery or when a retry rebuilds the payload, gives the same result.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.notifier.classify import FileFacts, as_utc
from shared.access import combined_release
from shared.catalog.models import Observation, Product
from shared.instruments import UnknownInstrumentError, detector
from shared.messages import (
    DataPublic,
    Event,
    ProductArchived,
    ProductRef,
    ReferenceDelivered,
    Reprocessed,
)
from shared.naming import BadNameError, parse_level3

__all__ = [
    "effective_release",
    "event_files",
    "instrument_of",
    "is_first_of_program",
    "previously_public",
    "product_facts",
    "reprocessing_extras",
]

log = logging.getLogger(__name__)


def is_first_of_program(session: Session, product: Product) -> bool:
    """True for the program's first product: the smallest ``(archived_at, id)`` among
    *all* its product rows, every revision, current or superseded.

    Rows are never deleted and neither key changes, so the answer for a product never
    changes: a redelivered event is classified as before, and exactly one product per
    program is ever "first" (products archived in the same instant are ordered by id).

    One window remains: if two workers archive a new program's first products at once and
    the earlier ``archived_at`` commits after the other product's event was matched, both
    are reported first. Closing it needs a per-program claim row (e.g. a
    ``program.first_archived_at`` set once under a unique/conditional update).
    """
    earliest = session.scalar(
        select(Product.id).where(Product.program_id == product.program_id)
        .order_by(Product.archived_at, Product.id).limit(1)
    )
    return earliest == product.id


def effective_release(session: Session, product: Product) -> datetime:
    """When the product's data become public: its own ``data_release``, and for a
    combined product no earlier than its most recent contributing input (DESIGN §7,
    :func:`shared.access.combined_release`). Inputs are matched by file name against the
    current catalog products; inputs that are not products (raw telemetry) are ignored."""
    names = {str(i).rsplit("/", 1)[-1] for i in (product.inputs or [])}
    names.discard(product.filename)
    releases = [product.data_release]
    if names:
        releases += list(session.scalars(
            select(Product.data_release).where(Product.filename.in_(sorted(names)), Product.is_current)
        ))
    return combined_release(releases)


def previously_public(session: Session, product: Product) -> bool:
    """Whether an earlier revision of this file was already public when it was archived
    (then a waived EAP on the new revision is not news)."""
    if product.revision <= 1:
        return False
    archived = as_utc(product.archived_at)
    earlier = session.scalars(
        select(Product.data_release).where(Product.filename == product.filename,
                                           Product.revision < product.revision)
    )
    return any(as_utc(r) <= archived for r in earlier)


def instrument_of(session: Session, product: Product | None, ref: ProductRef | None) -> str | None:
    """The instrument: from the catalog (the product's observation), else from the
    reference's detector, else from a Level-3 name."""
    if product is not None and product.observation_id is not None:
        found = session.scalar(select(Observation.instrument).where(Observation.id == product.observation_id))
        if found:
            return found.upper()
    if ref is not None and ref.detector:
        try:
            return detector(ref.detector).instrument
        except UnknownInstrumentError:
            pass
    filename = product.filename if product is not None else ref.filename if ref is not None else None
    if filename:
        try:
            return parse_level3(filename).instrument.upper()
        except BadNameError:
            pass
    return None


def product_facts(session: Session, product: Product, ref: ProductRef | None = None) -> FileFacts:
    return FileFacts(
        filename=product.filename,
        suffix=product.suffix,
        program=product.program_id,
        instrument=instrument_of(session, product, ref),
        revision=product.revision,
        level=product.level,
        archived_at=as_utc(product.archived_at),
        data_release=as_utc(effective_release(session, product)),
        first_of_program=product.revision == 1 and is_first_of_program(session, product),
        previously_public=previously_public(session, product),
    )


def reprocessing_extras(why: Reprocessed) -> dict[str, str | None]:
    """The row fields of a revision a reprocessing request made: the request, its reason
    and what changed against the revision it replaces, in one line (None when it was
    not compared: a file new to the archive, or a kind that is not compared)."""
    from shared.changes import summary

    return {"reprocessing_request": why.request_id, "reprocessing_reason": why.reason,
            "changes": summary(why.changes) if why.changes else None}


def _product_files(session: Session, event: Event, payload: ProductArchived | DataPublic) -> list[FileFacts]:
    ref = payload.product
    product = session.scalar(
        select(Product).where(Product.filename == ref.filename, Product.revision == ref.revision)
    )
    why = payload.reprocessing if isinstance(payload, ProductArchived) else None
    extras = reprocessing_extras(why) if why is not None else {}
    if product is not None:
        return [replace(product_facts(session, product, ref), extras=extras)]
    # The outbox row and the product are written together, so this means a catalog that
    # was pruned or an event from elsewhere: notify from what the event says.
    log.warning("event %s: %s r%d is not in the catalog; using the event's data",
                event.id, ref.filename, ref.revision)
    archived_at = payload.archived_at if isinstance(payload, DataPublic) else as_utc(event.time)
    return [FileFacts(
        filename=ref.filename, suffix=ref.suffix, program=ref.program,
        instrument=instrument_of(session, None, ref), revision=ref.revision,
        level=payload.level, archived_at=archived_at, data_release=payload.data_release, extras=extras,
    )]


def _reference_files(event: Event, payload: ReferenceDelivered) -> list[FileFacts]:
    """One file per reference of a ``dms.reference.delivered`` event (shared.refdata.delivery);
    references are public the moment they are delivered. ``useafter`` is given as reference
    files write it (UTC, no offset); ``impact``, when the event has it, is the context's
    summary of the archived exposures it would calibrate with other files (the same on
    every row of the event)."""
    impact = payload.impact.model_dump(mode="json") if payload.impact is not None else None
    return [FileFacts(
        filename=r.filename, suffix=r.reftype.lower(), program=None, instrument=r.instrument.upper(),
        archived_at=as_utc(event.time), data_release=as_utc(event.time),
        extras={"reftype": r.reftype.lower(), "context": payload.context,
                "useafter": r.useafter.replace(tzinfo=None).isoformat(),
                **({"impact": impact} if impact is not None else {})},
    ) for r in payload.files]


def event_files(session: Session, event: Event) -> list[FileFacts]:
    """The files an event is about, with what classification and payloads need.

    Raises
    ------
    shared.messages.PayloadError
        The event's payload is malformed.
    """
    payload = event.payload
    if isinstance(payload, ProductArchived | DataPublic):
        return _product_files(session, event, payload)
    if isinstance(payload, ReferenceDelivered):
        return _reference_files(event, payload)
    return []
