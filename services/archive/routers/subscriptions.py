"""/subscriptions: a token owner's own subscriptions (create, list, read, replace, delete),
their delivery history, and the confirmation link of an e-mail subscription.

Another owner's subscription is answered with 404, exactly as one that does not exist.
Webhook targets go through shared.webhooks (422 with the reason when refused); an owner
has at most ``DMS_SUBSCRIPTION_LIMIT`` active subscriptions (409 beyond); a webhook secret
is in the answer of the request that set or generated it, never again.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Response, status
from fastapi.responses import JSONResponse

from services.archive.dependencies import DbSession, RequiredUser, SettingsDep
from services.archive.mast import MAX_INT
from services.archive.routers.common import PageParam, PageSizeParam, set_total
from services.archive.routers.events import public_data
from services.archive.schemas import (
    DEFAULT_PAGESIZE,
    ConfirmationOut,
    DeliveryOut,
    ErrorOut,
    Page,
    SubscriptionOut,
)
from services.archive.search import subscription_deliveries
from shared.catalog import Subscription
from shared.subscriptions import (
    ConfirmationError,
    SubscriptionLimitReached,
    SubscriptionSpec,
    TargetRefused,
    confirm_subscription,
    create_subscription,
    delete_subscription,
    list_subscriptions,
    replace_subscription,
)
from shared.webhooks import WebhookPolicy

__all__ = ["router"]

router = APIRouter(prefix="/subscriptions", tags=["subscriptions"])

SubscriptionId = Annotated[int, Path(ge=1, le=MAX_INT, description="The subscription's id.")]
_NOT_YOURS = {404: {"model": ErrorOut, "description": "You have no such subscription."}}
_REFUSED = {422: {"model": ErrorOut, "description": "The webhook target is refused by policy (the detail says why)."}}


def _out(row: Subscription, secret: str | None = None) -> SubscriptionOut:
    return SubscriptionOut(
        id=row.id, owner=row.owner, name=row.name, filters=row.filters, channel=row.channel, target=row.target,
        frequency=row.frequency, active=row.active, created_at=row.created_at,
        confirmed=row.confirmed_at is not None, secret=secret,
    )


def _own(session, subscription_id: int, owner: str) -> Subscription:
    row = session.get(Subscription, subscription_id)
    if row is None or row.owner != owner:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"you have no subscription {subscription_id}")
    return row


def _policy(settings) -> WebhookPolicy:
    return WebhookPolicy.from_settings(settings)


@router.get("", response_model=list[SubscriptionOut], summary="Your subscriptions")
def list_own(
    session: DbSession, user: RequiredUser,
    include_inactive: Annotated[bool, Query(description="Also deleted (deactivated) ones.")] = False,
) -> list[SubscriptionOut]:
    return [_out(r) for r in list_subscriptions(session, owner=user) if r.active or include_inactive]


@router.post("", response_model=SubscriptionOut, status_code=status.HTTP_201_CREATED, summary="Subscribe",
             responses={409: {"model": ErrorOut, "description": "You have as many subscriptions as allowed."},
                        **_REFUSED})
def create(spec: SubscriptionSpec, session: DbSession, user: RequiredUser, settings: SettingsDep) -> SubscriptionOut:
    """A new subscription of the token's owner.

    * webhook: the URL's host is resolved and every address checked (public addresses
      only unless the operator allows more: 422 with the reason); the answer carries the
      HMAC ``secret`` (generated when not given) this once — keep it to verify deliveries;
    * e-mail: ``confirmed`` is false and nothing is sent to the address but a confirmation
      link, until someone follows it.
    """
    try:
        row = create_subscription(session, user, spec, policy=_policy(settings), limit=settings.subscription_limit)
    except TargetRefused as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc)) from None
    except SubscriptionLimitReached as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from None
    return _out(row, secret=row.secret if row.channel == "webhook" else None)


@router.get("/{subscription_id}", response_model=SubscriptionOut, summary="One of your subscriptions",
            responses=_NOT_YOURS)
def read(subscription_id: SubscriptionId, session: DbSession, user: RequiredUser) -> SubscriptionOut:
    return _out(_own(session, subscription_id, user))


@router.get("/{subscription_id}/deliveries", response_model=Page[DeliveryOut],
            summary="Deliveries of one of your subscriptions", responses=_NOT_YOURS)
def deliveries(
    subscription_id: SubscriptionId, session: DbSession, user: RequiredUser, response: Response,
    page: PageParam = 1, pagesize: PageSizeParam = DEFAULT_PAGESIZE,
) -> Page[DeliveryOut]:
    """Every event matched to it (a deleted one's too), newest first: its status, tries and
    last error, and the event's type and subject."""
    _own(session, subscription_id, user)
    total, rows = subscription_deliveries(session, subscription_id, page, pagesize)
    for row in rows:  # no storage location in an answer (as /events)
        row.event_subject, row.last_error = public_data(row.event_subject), public_data(row.last_error)
        for a in row.attempt_log:
            a.error = public_data(a.error)
    set_total(response, total)
    return Page[DeliveryOut](total=total, page=page, pagesize=pagesize, rows=rows)


@router.put("/{subscription_id}", response_model=SubscriptionOut, summary="Replace a subscription",
            responses={**_NOT_YOURS, 409: {"model": ErrorOut, "description": "It was deleted."}, **_REFUSED})
def replace(subscription_id: SubscriptionId, spec: SubscriptionSpec, session: DbSession, user: RequiredUser,
            settings: SettingsDep) -> SubscriptionOut:
    """Replace name, filters, channel, target and frequency. A webhook keeps its secret
    unless a new one is given; the answer shows a secret only when this request generated
    it (a subscription that becomes a webhook without one). A new e-mail address must be
    confirmed again."""
    row = _own(session, subscription_id, user)
    if not row.active:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=f"subscription {subscription_id} was deleted")
    try:
        generated = replace_subscription(session, row, spec, policy=_policy(settings))
    except TargetRefused as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc)) from None
    return _out(row, secret=generated)


@router.delete("/{subscription_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Unsubscribe",
               responses=_NOT_YOURS)
def delete(subscription_id: SubscriptionId, session: DbSession, user: RequiredUser) -> None:
    """Deactivate it (its delivery history is kept)."""
    if not delete_subscription(session, subscription_id, owner=user):
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"you have no active subscription {subscription_id}")


@router.get("/{subscription_id}/confirm", response_model=ConfirmationOut, summary="Confirm an e-mail address",
            responses={404: {"model": ErrorOut, "description": "No subscription waits for this link."},
                       410: {"model": ErrorOut, "description": "The link expired; a new one is sent."}})
def confirm(
    subscription_id: SubscriptionId, session: DbSession, settings: SettingsDep,
    token: Annotated[str, Query(min_length=1, max_length=200, description="The token of the link that was mailed.")],
) -> ConfirmationOut | JSONResponse:
    """The link mailed to a new e-mail subscription's address; following it lets
    notifications go there. No API token is needed: the link's token is the proof."""
    try:
        row = confirm_subscription(session, subscription_id, token, datetime.now(UTC), settings.confirm_days)
    except ConfirmationError as exc:
        if exc.status == status.HTTP_410_GONE:  # answered, not raised: the withdrawal is committed
            return JSONResponse({"detail": str(exc)}, status_code=exc.status)
        raise HTTPException(exc.status, detail=str(exc)) from None
    return ConfirmationOut(id=row.id, target=row.target, confirmed=True)
