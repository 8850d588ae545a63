"""Confirmation links of e-mail subscriptions: nothing but this link is sent to an address
until someone follows it (``GET /subscriptions/{id}/confirm?token=...`` on the archive API).

Each pass of ``dms notify`` sends a link to every active, unconfirmed e-mail subscription
that has none out: a fresh random token (only its sha256 is stored, claimed with a
conditional update so two notifier processes never both send), and the mail. A mail that
cannot be sent withdraws its token, so the next pass tries again; after
``DMS_NOTIFY_MAX_ATTEMPTS`` failed sends no more are tried. Every send is a
``delivery_attempt`` row (batch id ``confirm-<uuid>``, no event ids).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from services.notifier.channels import SendResult, send_email
from shared.catalog.models import DeliveryAttempt, Subscription
from shared.runtime import ServiceContext
from shared.subscriptions import issue_confirmation, withdraw_confirmation

__all__ = ["CONFIRM_BATCH_PREFIX", "Confirmation", "confirmation_text", "send_confirmations"]

log = logging.getLogger(__name__)

CONFIRM_BATCH_PREFIX = "confirm-"


@dataclass(frozen=True)
class Confirmation:
    subscription_id: int
    to: str
    result: SendResult


def confirmation_text(sub: Subscription, link: str, valid_days: int) -> str:
    name = f' "{sub.name}"' if sub.name else ""
    return (
        f"{sub.owner} subscribed this address to notifications of the jwst-dms archive "
        f"(subscription {sub.id}{name}, {sub.frequency}).\n\n"
        f"Nothing will be sent to you unless you confirm, within {valid_days} days, by opening:\n\n"
        f"  {link}\n\n"
        "If you did not expect this, ignore this message: you will hear nothing more.\n"
    )


def _failed_sends(session, subscription_id: int) -> int:
    return session.scalar(select(func.count()).select_from(DeliveryAttempt).where(
        DeliveryAttempt.subscription_id == subscription_id, DeliveryAttempt.ok.is_(False),
        DeliveryAttempt.batch_id.like(f"{CONFIRM_BATCH_PREFIX}%")))


def send_confirmations(ctx: ServiceContext, now: datetime) -> list[Confirmation]:
    """Send the confirmation link of every e-mail subscription waiting for one."""
    settings = ctx.settings
    with ctx.catalog.session() as s:
        waiting = list(s.scalars(
            select(Subscription.id).where(Subscription.active, Subscription.channel == "email",
                                          Subscription.confirmed_at.is_(None),
                                          Subscription.confirm_token_sha256.is_(None))
            .order_by(Subscription.id)))
    sent = []
    for sub_id in waiting:
        with ctx.catalog.session() as s:
            if _failed_sends(s, sub_id) >= settings.notify_max_attempts:
                continue
            token = issue_confirmation(s, sub_id, now)
            if token is None:
                continue
            sub = s.get(Subscription, sub_id)
            to, text = sub.target, confirmation_text(
                sub, f"{settings.archive_link_base}/subscriptions/{sub_id}/confirm?token={token}",
                settings.confirm_days)
        batch_id = f"{CONFIRM_BATCH_PREFIX}{uuid.uuid4()}"
        result = send_email(settings, to, "Confirm your jwst-dms archive subscription", text, batch_id=batch_id)
        with ctx.catalog.session() as s:
            s.add(DeliveryAttempt(subscription_id=sub_id, batch_id=batch_id, event_ids=[], attempted_at=now,
                                  ok=result.ok, status_code=result.status_code, error=result.error,
                                  duration_seconds=result.duration_seconds))
            if not result.ok:
                withdraw_confirmation(s, sub_id, token)
        if result.ok:
            log.info("subscription %d: confirmation link sent to %s", sub_id, to)
        else:
            log.warning("subscription %d: could not send the confirmation link to %s: %s", sub_id, to, result.error)
        sent.append(Confirmation(sub_id, to, result))
    return sent
