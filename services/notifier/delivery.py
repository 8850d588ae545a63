"""Deliveries: create them once, claim them, send them, record every attempt.

Life of a ``delivery`` row (one DMS event for one subscription, unique pair):

- created ``pending`` by the matching handler; ``next_attempt_at`` is the creation time
  for immediate subscriptions and empty for digests (they wait for the digest period);
- *claimed* by one sender with a conditional UPDATE (still pending and due), which moves
  ``next_attempt_at`` a lease ahead, so two senders (the handler and ``dms notify``, or
  two notifier replicas) never send it at the same time; a sender that dies mid-send
  leaves it to be retried when the lease ends;
- each send writes a ``delivery_attempt`` row (ok, status code, error, duration) and
  then marks the delivery ``delivered``, or schedules the retry
  ``notify_retry_base * 2**(attempts-1)`` seconds (+0-10% jitter) later, or after
  ``notify_max_attempts`` failed attempts marks it ``dead`` with ``last_error``; a
  webhook whose target the policy refuses at send time (shared/webhooks.py) is ``dead``
  at once, with the reason, since retrying cannot help.

Nothing is sent to a subscription that is not confirmed (an e-mail address whose
confirmation link was not followed).

An immediate delivery keeps one batch id (``uuid5`` of subscription and event) across its
retries: it is the CloudEvent ``id`` and the ``X-DMS-Delivery`` header, so a subscriber
that got a POST we believe failed (e.g. it answered after our timeout) can drop the repeat.
A digest gets a fresh batch id per attempt; every delivery it carried stores it.
"""

from __future__ import annotations

import json
import logging
import math
import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.notifier.channels import SendResult, post_webhook, send_email
from services.notifier.classify import Notice, as_utc, notices_for, primary_type, wanted
from services.notifier.facts import event_files
from services.notifier.payload import (
    CE_CONTENT_TYPE,
    attachment_name,
    cloud_event,
    email_subject,
    email_text,
    encode,
    mast_row,
)
from shared.catalog.models import Delivery, DeliveryAttempt, EventRecord, Subscription
from shared.catalog.queries import event_from_record
from shared.messages import Event
from shared.runtime import ServiceContext
from shared.webhooks import TargetRefused, TargetUnresolved, WebhookPolicy

__all__ = [
    "DIGEST_PERIODS",
    "Sent",
    "create_delivery",
    "deliver_digest",
    "deliver_one",
    "delivery_batch_id",
    "digest_anchor",
    "due",
    "lease",
    "retry_delay",
]

log = logging.getLogger(__name__)

DIGEST_PERIODS = {"hourly": timedelta(hours=1), "daily": timedelta(days=1), "weekly": timedelta(weeks=1)}
JITTER = 0.1  # retry delays are stretched by up to 10% so retries of many deliveries spread out


@dataclass(frozen=True)
class Sent:
    """One attempt at sending: what went, how it ended, what it dead-lettered."""

    subscription_id: int
    batch_id: str
    event_ids: tuple[str, ...]
    result: SendResult
    dead: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.result.ok


def retry_delay(attempts: int, base: float, jitter: float = 0.0) -> float:
    """Seconds to wait after the ``attempts``-th failed attempt: ``base * 2**(attempts-1)``
    stretched by ``JITTER * jitter`` (``jitter`` in [0, 1))."""
    return base * 2 ** (attempts - 1) * (1 + JITTER * jitter)


def lease(ctx: ServiceContext) -> timedelta:
    """How long a claimed delivery is reserved for its sender."""
    return timedelta(seconds=max(60.0, 3 * ctx.settings.webhook_timeout))


def delivery_batch_id(subscription_id: int, event_id: str) -> str:
    """The stable batch id (CloudEvent id) of an immediate delivery."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"jwst-dms:delivery:{subscription_id}:{event_id}"))


def digest_anchor(frequency: str, anchor: datetime, now: datetime) -> datetime | None:
    """The end of the last whole digest period since ``anchor`` (``None``: not due yet).
    Periods are counted from the subscription's creation, so a daily digest goes out at
    the same time of day whatever the flush interval."""
    period = DIGEST_PERIODS[frequency]
    anchor, now = as_utc(anchor), as_utc(now)
    periods = math.floor((now - anchor) / period)
    return anchor + periods * period if periods >= 1 else None


def create_delivery(session: Session, subscription: Subscription, event_id: str, notification_type: str,
                    now: datetime) -> int | None:
    """Insert the delivery of ``event_id`` to ``subscription`` unless it exists; returns the
    new row's id, or None when the pair was already there (the unique constraint decides,
    so concurrent handlers of a redelivered message create one row between them)."""
    values = dict(
        subscription_id=subscription.id, event_id=event_id, notification_type=notification_type,
        status="pending", attempts=0, created_at=now,
        next_attempt_at=now if subscription.frequency == "immediate" else None,
    )
    dialect = session.get_bind().dialect.name
    if dialect in ("postgresql", "sqlite"):
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        stmt = (insert(Delivery).values(**values)
                .on_conflict_do_nothing(index_elements=["subscription_id", "event_id"])
                .returning(Delivery.id))
        return session.scalar(stmt)
    try:  # any other database: a savepoint around a plain insert
        with session.begin_nested():
            row = Delivery(**values)
            session.add(row)
        return row.id
    except IntegrityError:
        return None


def due(now: datetime):
    """SQL condition: the delivery may be attempted at ``now``."""
    return or_(Delivery.next_attempt_at.is_(None), Delivery.next_attempt_at <= now)


def _notices(session: Session, subscription: Subscription, delivery: Delivery, event: Event) -> list[Notice]:
    """What this delivery reports: the event re-classified (deterministic, see facts.py)
    and filtered again; if nothing passes any more, what was matched when it was created."""
    files = event_files(session, event)
    chosen = wanted(subscription.filters, notices_for(event.type, files))
    return chosen or [Notice(f, delivery.notification_type) for f in files]


def _payload(session: Session, subscription: Subscription, deliveries: list[Delivery],
             now: datetime) -> tuple[list[dict[str, Any]], list[Notice], list[Delivery], datetime]:
    """Rows of the claimed deliveries; a delivery whose event is gone from the outbox is
    dead-lettered here. Also the notices (for the CloudEvent type) and the event time."""
    rows, notices, kept, when = [], [], [], now
    for d in deliveries:
        record = session.get(EventRecord, d.event_id)
        if record is None:
            d.status, d.next_attempt_at = "dead", None
            d.last_error = f"event {d.event_id} is not in the outbox any more; nothing to send"
            log.error("delivery %d: %s", d.id, d.last_error)
            continue
        event = event_from_record(record)
        chosen = _notices(session, subscription, d, event)
        rows += [mast_row(n, event.id) for n in chosen]
        notices += chosen
        kept.append(d)
        when = record.time
    return rows, notices, kept, when


def _send(ctx: ServiceContext, sub: Subscription, batch_id: str, rows: list[dict[str, Any]],
          notices: list[Notice], when: datetime, now: datetime) -> SendResult:
    """Send through the subscription's channel. A bug here (not a failure of the far end)
    is still recorded as a failed attempt, so it backs off and dead-letters like any
    other instead of being retried at every pass."""
    try:
        return _send_channel(ctx, sub, batch_id, rows, notices, when, now)
    except Exception as exc:
        log.exception("subscription %d: could not send %s", sub.id, batch_id)
        return SendResult(False, None, f"internal error: {type(exc).__name__}: {exc}")


def _send_channel(ctx: ServiceContext, sub: Subscription, batch_id: str, rows: list[dict[str, Any]],
                  notices: list[Notice], when: datetime, now: datetime) -> SendResult:
    settings = ctx.settings
    if sub.channel == "webhook":
        try:  # checked again now: the host's addresses may have changed since it subscribed
            target = WebhookPolicy.from_settings(settings).check(sub.target)
        except TargetUnresolved as exc:
            return SendResult(False, None, str(exc))  # DNS may come back: retried
        except TargetRefused as exc:
            return SendResult(False, None, f"refused: {exc}", permanent=True)
        body = encode(cloud_event(batch_id, rows, primary_type(notices), when))
        return post_webhook(target, body, secret=sub.secret, batch_id=batch_id,
                            content_type=CE_CONTENT_TYPE, timeout=settings.webhook_timeout,
                            user_agent=f"jwst-dms-notifier/{settings.cal_ver}")
    name = attachment_name(rows, sub.frequency, now)
    text = email_text(rows, frequency=sub.frequency, subscription_name=sub.name, subscription_id=sub.id,
                      attachment=name, archive_base_url=settings.archive_link_base, when=now)
    return send_email(settings, sub.target, email_subject(rows, sub.frequency), text,
                      attachment_name=name, attachment=json.dumps(rows, indent=2).encode("utf-8"),
                      batch_id=batch_id)


def _record(ctx: ServiceContext, sub: Subscription, batch_id: str, delivery_ids: list[int],
            result: SendResult, now: datetime, rng: random.Random | None) -> Sent:
    """Write the attempt and move every delivery it carried on (delivered/retry/dead)."""
    rng = rng or random
    max_attempts = ctx.settings.notify_max_attempts
    dead = []
    with ctx.catalog.session() as s:
        deliveries = list(s.scalars(select(Delivery).where(Delivery.id.in_(delivery_ids)).order_by(Delivery.id)))
        s.add(DeliveryAttempt(
            subscription_id=sub.id, batch_id=batch_id, event_ids=[d.event_id for d in deliveries],
            attempted_at=now, ok=result.ok, status_code=result.status_code, error=result.error,
            duration_seconds=result.duration_seconds,
        ))
        for d in deliveries:
            d.attempts += 1
            d.batch_id = batch_id
            if result.ok:
                d.status, d.delivered_at, d.next_attempt_at, d.last_error = "delivered", now, None, None
            elif d.attempts >= max_attempts or result.permanent:
                d.status, d.next_attempt_at, d.last_error = "dead", None, result.error
                dead.append(d.event_id)
            else:
                d.last_error = result.error
                d.next_attempt_at = now + timedelta(
                    seconds=retry_delay(d.attempts, ctx.settings.notify_retry_base, rng.random()))
        event_ids = tuple(d.event_id for d in deliveries)
    if result.ok:
        log.info("subscription %d: delivered %d event(s) in %s", sub.id, len(event_ids), batch_id)
    elif dead:
        log.error("subscription %d: %d delivery(ies) dead after %d attempt(s): %s",
                  sub.id, len(dead), max(d.attempts for d in deliveries), result.error)
    else:
        log.warning("subscription %d: delivery %s failed, will retry: %s", sub.id, batch_id, result.error)
    return Sent(sub.id, batch_id, event_ids, result, tuple(dead))


def deliver_one(ctx: ServiceContext, delivery_id: int, now: datetime, *,
                rng: random.Random | None = None) -> Sent | None:
    """Send one pending, due delivery on its own (immediate subscriptions and their
    retries); None when it is not ours to send (not pending, not due, claimed by another
    sender, subscription inactive, event gone)."""
    with ctx.catalog.session() as s:
        d = s.get(Delivery, delivery_id)
        if d is None:
            return None
        sub = s.get(Subscription, d.subscription_id)
        if not sub.active or sub.confirmed_at is None:
            return None
        batch_id = d.batch_id or delivery_batch_id(sub.id, d.event_id)
        claimed = s.execute(
            update(Delivery).where(Delivery.id == delivery_id, Delivery.status == "pending", due(now))
            .values(next_attempt_at=now + lease(ctx), batch_id=batch_id)
            .execution_options(synchronize_session=False)
        ).rowcount
        if claimed != 1:
            return None
        s.refresh(d)
        rows, notices, kept, when = _payload(s, sub, [d], now)
    if not kept:
        return None
    result = _send(ctx, sub, batch_id, rows, notices, when, now)
    return _record(ctx, sub, batch_id, [d.id for d in kept], result, now, rng)


def deliver_digest(ctx: ServiceContext, subscription_id: int, now: datetime, *,
                   rng: random.Random | None = None) -> Sent | None:
    """Send every pending delivery of a digest subscription in one e-mail, if its period
    has elapsed (since ``last_digest_at``, else its creation) and no earlier failed digest
    is still waiting for its retry time. A period with nothing to send is closed quietly.
    None when nothing was sent."""
    with ctx.catalog.session() as s:
        sub = s.get(Subscription, subscription_id)
        if sub is None or not sub.active or sub.confirmed_at is None or sub.frequency not in DIGEST_PERIODS:
            return None
        closes = digest_anchor(sub.frequency, sub.last_digest_at or sub.created_at, now)
        if closes is None:
            return None
        pending = (Delivery.subscription_id == sub.id, Delivery.status == "pending")
        waiting = s.scalar(select(Delivery.id).where(*pending, Delivery.next_attempt_at > now).limit(1))
        if waiting is not None:
            return None  # a failed digest is backing off; the next one carries everything
        batch_id = str(uuid.uuid4())
        claimed = s.execute(
            update(Delivery).where(*pending, due(now))
            .values(next_attempt_at=now + lease(ctx), batch_id=batch_id)
            .execution_options(synchronize_session=False)
        ).rowcount
        if not claimed:
            sub.last_digest_at = closes
            return None
        deliveries = list(s.scalars(select(Delivery).where(Delivery.batch_id == batch_id, *pending)
                                    .order_by(Delivery.id)))
        rows, notices, kept, _ = _payload(s, sub, deliveries, now)
    if not kept:
        return None
    result = _send(ctx, sub, batch_id, rows, notices, now, now)
    sent = _record(ctx, sub, batch_id, [d.id for d in kept], result, now, rng)
    if result.ok:
        with ctx.catalog.session() as s:
            s.get(Subscription, subscription_id).last_digest_at = closes
    return sent
