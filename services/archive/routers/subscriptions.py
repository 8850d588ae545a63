"""/subscriptions: a token owner's own subscriptions (create, list, read, replace, delete).

Another owner's subscription is answered with 404, exactly as one that does not exist.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status

from services.archive.dependencies import DbSession, RequiredUser
from services.archive.schemas import SubscriptionOut
from shared.catalog import Subscription
from shared.subscriptions import (
    SubscriptionSpec,
    create_subscription,
    delete_subscription,
    list_subscriptions,
)

__all__ = ["router"]

router = APIRouter(prefix="/subscriptions", tags=["subscriptions"])


def _out(row: Subscription, with_secret: bool = False) -> SubscriptionOut:
    return SubscriptionOut(
        id=row.id, owner=row.owner, name=row.name, filters=row.filters, channel=row.channel, target=row.target,
        frequency=row.frequency, active=row.active, created_at=row.created_at,
        secret=row.secret if with_secret else None,
    )


def _own(session, subscription_id: int, owner: str) -> Subscription:
    row = session.get(Subscription, subscription_id)
    if row is None or row.owner != owner:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"you have no subscription {subscription_id}")
    return row


@router.get("", response_model=list[SubscriptionOut], summary="Your subscriptions")
def list_own(
    session: DbSession, user: RequiredUser,
    include_inactive: Annotated[bool, Query(description="Also deleted (deactivated) ones.")] = False,
) -> list[SubscriptionOut]:
    return [_out(r) for r in list_subscriptions(session, owner=user) if r.active or include_inactive]


@router.post("", response_model=SubscriptionOut, status_code=status.HTTP_201_CREATED, summary="Subscribe")
def create(spec: SubscriptionSpec, session: DbSession, user: RequiredUser) -> SubscriptionOut:
    """A new subscription of the token's owner. For a webhook the response carries the
    HMAC ``secret`` (generated when not given) once; keep it to verify deliveries."""
    return _out(create_subscription(session, user, spec), with_secret=True)


@router.get("/{subscription_id}", response_model=SubscriptionOut, summary="One of your subscriptions")
def read(subscription_id: int, session: DbSession, user: RequiredUser) -> SubscriptionOut:
    return _out(_own(session, subscription_id, user))


@router.put("/{subscription_id}", response_model=SubscriptionOut, summary="Replace a subscription")
def replace(subscription_id: int, spec: SubscriptionSpec, session: DbSession, user: RequiredUser) -> SubscriptionOut:
    """Replace name, filters, channel, target and frequency. A webhook keeps its secret
    unless a new one is given."""
    row = _own(session, subscription_id, user)
    if not row.active:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=f"subscription {subscription_id} was deleted")
    row.name, row.filters, row.channel = spec.name, spec.filters.model_dump(), spec.channel
    row.target, row.frequency = spec.target.strip(), spec.frequency
    if spec.secret:
        row.secret = spec.secret
    elif spec.channel == "webhook" and not row.secret:
        row.secret = secrets.token_hex(32)
    session.flush()
    return _out(row, with_secret=spec.channel == "webhook")


@router.delete("/{subscription_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Unsubscribe")
def delete(subscription_id: int, session: DbSession, user: RequiredUser) -> None:
    """Deactivate it (its delivery history is kept)."""
    if not delete_subscription(session, subscription_id, owner=user):
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"you have no active subscription {subscription_id}")
