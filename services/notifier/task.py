"""The notifier's handler: a DMS event -> the subscriptions it concerns -> deliveries.

``notifier.match`` classifies the event (:mod:`services.notifier.classify`), finds every
active subscription whose filters pass at least one (file, type) notice
(:func:`shared.subscriptions.matches`), records one ``delivery`` per subscription (the
unique (subscription, event) pair makes a redelivered message a no-op), commits, and then
sends the immediate ones at once. A send that fails is recorded and left to
:func:`services.notifier.scheduler.flush_due`; a crash after the commit leaves the
deliveries pending and due, so the scheduler sends them; so does the message's retry,
for an immediate delivery never attempted. Digest deliveries wait for their period.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from sqlalchemy import select

from services.notifier.classify import notices_for, primary_type, wanted
from services.notifier.delivery import Sent, create_delivery, deliver_one
from services.notifier.facts import event_files
from shared.catalog.models import Delivery
from shared.messages import Event
from shared.runtime import ServiceContext
from shared.subscriptions import list_subscriptions

__all__ = ["HANDLERS", "handle_event", "match_event"]

log = logging.getLogger(__name__)


def match_event(ctx: ServiceContext, event: Event, now: datetime) -> tuple[list[int], list[Sent]]:
    """Record the deliveries ``event`` makes and send the immediate ones; returns the ids
    of the deliveries created by this call and what was sent."""
    created, immediate = [], []
    with ctx.catalog.session() as s:
        notices = notices_for(event.type, event_files(s, event))
        if not notices:
            return [], []
        for sub in list_subscriptions(s):
            if not sub.active or sub.confirmed_at is None:
                continue  # an e-mail address that has not confirmed hears nothing
            chosen = wanted(sub.filters, notices)
            if not chosen:
                continue
            delivery_id = create_delivery(s, sub, event.id, primary_type(chosen), now)
            if delivery_id is None:
                # this event already reached this subscription; an immediate delivery an
                # earlier try recorded and could not send (the catalog dropped out) goes now
                if sub.frequency == "immediate":
                    immediate += s.scalars(select(Delivery.id).where(
                        Delivery.subscription_id == sub.id, Delivery.event_id == event.id,
                        Delivery.status == "pending", Delivery.attempts == 0)).all()
                continue
            created.append(delivery_id)
            if sub.frequency == "immediate":
                immediate.append(delivery_id)
    if created:
        log.info("event %s (%s): %d new delivery(ies), %d to send now",
                 event.id, event.type, len(created), len(immediate))
    sent = [r for r in (deliver_one(ctx, d, now) for d in immediate) if r is not None]
    return created, sent


def handle_event(event: Event, ctx: ServiceContext) -> list[str]:
    """Handler ``notifier.match``; announces no events."""
    match_event(ctx, event, datetime.now(UTC))
    return []


HANDLERS = {"notifier.match": handle_event}
