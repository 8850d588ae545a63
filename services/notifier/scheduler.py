"""The notifier's periodic work (``dms notify``): send the confirmation links of new e-mail
subscriptions, announce data that became public, send digests whose period has elapsed,
and retry failed immediate deliveries that are due.

Every function takes ``now`` so tests (and operators replaying a period) control the clock.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select

from services.notifier.classify import as_utc
from services.notifier.confirmations import Confirmation, send_confirmations
from services.notifier.delivery import DIGEST_PERIODS, Sent, deliver_digest, deliver_one, due
from services.notifier.facts import effective_release
from shared.archiving import product_ref
from shared.catalog.models import ArtifactKind, Delivery, Product, Subscription
from shared.catalog.queries import add_event
from shared.messages import DataPublic, Event, new_event
from shared.runtime import InlineTransport, Outcome, ServiceContext, dispatch_events

__all__ = ["FlushReport", "NotifyReport", "announce_releases", "flush_due", "notify_once", "public_event_id"]

log = logging.getLogger(__name__)

BATCH = 500


@dataclass
class FlushReport:
    """What one :func:`flush_due` pass sent."""

    retries: list[Sent] = field(default_factory=list)
    digests: list[Sent] = field(default_factory=list)

    @property
    def sent(self) -> list[Sent]:
        return self.retries + self.digests

    @property
    def delivered(self) -> int:
        return sum(len(s.event_ids) for s in self.sent if s.ok)

    @property
    def failed(self) -> int:
        return sum(len(s.event_ids) for s in self.sent if not s.ok)

    @property
    def dead(self) -> int:
        return sum(len(s.dead) for s in self.sent)


def public_event_id(filename: str, revision: int) -> str:
    """Deterministic id of the ``dms.data.public`` event of one product revision."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"jwst-dms:public:{filename}:{revision}"))


def _public_event(ctx: ServiceContext, session, product: Product, release: datetime, now: datetime) -> Event | None:
    data_file = next((a for a in product.artifacts if a.kind == ArtifactKind.DATA), None)
    if data_file is None:
        log.error("%s r%d has no data artifact; not announcing it public", product.filename, product.revision)
        return None
    ref = product_ref(session, product)
    return new_event(
        DataPublic(product=ref, level=product.level, data_release=release, archived_at=product.archived_at),
        f"{ctx.settings.source}/notifier", subject=product.filename,
        event_id=public_event_id(product.filename, product.revision), time=now,
    )


def announce_releases(ctx: ServiceContext, now: datetime) -> list[str]:
    """Record a ``dms.data.public`` event for every current product whose data became
    public by ``now`` and was not announced yet; returns the new event ids (to dispatch).

    The event goes into the outbox in the same transaction that sets the product's
    ``public_announced_at``, so each product revision is announced once. A combined
    product waits for its latest input (:func:`services.notifier.facts.effective_release`).
    A product that was public on arrival (EAP waived) is not announced again: its
    ``dms.product.archived`` event already made the ``public`` notification, so it is only
    marked, with ``public_announced_at`` = its archive time.
    """
    with ctx.catalog.session() as s:
        candidates = list(s.scalars(
            select(Product.id).where(Product.is_current, Product.public_announced_at.is_(None),
                                     Product.data_release <= now)
            .order_by(Product.data_release, Product.id)
        ))
    event_ids = []
    for start in range(0, len(candidates), BATCH):
        with ctx.catalog.session() as s:
            products = s.scalars(
                select(Product).where(Product.id.in_(candidates[start:start + BATCH]), Product.is_current,
                                      Product.public_announced_at.is_(None))
                .order_by(Product.id).with_for_update(skip_locked=True)
            )
            for product in products:
                release, archived = as_utc(effective_release(s, product)), as_utc(product.archived_at)
                if release > now:
                    continue  # an input is still exclusive
                if release <= archived:
                    product.public_announced_at = archived
                    continue
                event = _public_event(ctx, s, product, release, now)
                if event is not None:
                    add_event(s, event)
                    event_ids.append(event.id)
                product.public_announced_at = now
    if event_ids:
        log.info("announced %d product(s) public", len(event_ids))
    return event_ids


def flush_due(ctx: ServiceContext, now: datetime) -> FlushReport:
    """Retry every due failed immediate delivery, then send every digest whose period
    has elapsed (one e-mail per subscription with all its pending deliveries)."""
    report = FlushReport()
    with ctx.catalog.session() as s:
        retry_ids = list(s.scalars(
            select(Delivery.id).join(Subscription, Subscription.id == Delivery.subscription_id)
            .where(Subscription.active, Subscription.confirmed_at.is_not(None), Subscription.frequency == "immediate",
                   Delivery.status == "pending", due(now))
            .order_by(Delivery.next_attempt_at, Delivery.id)
        ))
        digest_ids = list(s.scalars(
            select(Subscription.id).where(Subscription.active, Subscription.confirmed_at.is_not(None),
                                          Subscription.frequency.in_(list(DIGEST_PERIODS)))
            .order_by(Subscription.id)
        ))
    for delivery_id in retry_ids:
        sent = deliver_one(ctx, delivery_id, now)
        if sent is not None:
            report.retries.append(sent)
    for subscription_id in digest_ids:
        sent = deliver_digest(ctx, subscription_id, now)
        if sent is not None:
            report.digests.append(sent)
    return report


@dataclass
class NotifyReport:
    announced: list[str]
    dispatched: int
    handled: list[tuple[str, Outcome]]
    flushed: FlushReport
    confirmations: list[Confirmation] = field(default_factory=list)


def notify_once(ctx: ServiceContext, now: datetime, inline: InlineTransport | None = None,
                progress: Callable[[str, Outcome], None] | None = None) -> NotifyReport:
    """One pass of ``dms notify``: send confirmation links, announce releases, dispatch
    those events through the context's transport (run them here when it is in-process),
    then flush what is due."""
    confirmations = send_confirmations(ctx, now)
    announced = announce_releases(ctx, now)
    dispatched = dispatch_events(ctx.catalog, ctx.transport, event_ids=announced) if (
        announced and ctx.transport is not None) else 0
    handled = inline.run_until_idle(progress=progress) if inline is not None else []
    return NotifyReport(announced, dispatched, handled, flush_due(ctx, now), confirmations)
