"""Subscriptions: what a user asked to be told about. Used by the notifier (matching), the
archive API (CRUD for a token's owner) and the CLI (`dms subscribe`).

What a subscription may be (checked here, for every way one is made):

* a webhook target passes :class:`shared.webhooks.WebhookPolicy` (public addresses only
  unless the operator allows more), and its HMAC secret is 16 to 128 printable characters;
* an e-mail target is one valid address, and receives nothing but a confirmation link until
  that link is followed (:func:`confirm_subscription`; the notifier sends the link);
* an owner has at most ``DMS_SUBSCRIPTION_LIMIT`` active subscriptions;
* every text is bounded in length and free of control characters.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from shared.catalog.models import Subscription
from shared.webhooks import TargetRefused, WebhookPolicy, parse_webhook_url

__all__ = [
    "MAX_SECRET",
    "MIN_SECRET",
    "NOTIFICATION_TYPES",
    "ConfirmationError",
    "SubscriptionFilters",
    "SubscriptionLimitReached",
    "SubscriptionSpec",
    "TargetRefused",
    "check_email",
    "confirm_subscription",
    "create_subscription",
    "delete_subscription",
    "issue_confirmation",
    "list_subscriptions",
    "matches",
    "replace_subscription",
    "withdraw_confirmation",
]

NOTIFICATION_TYPES = ("new", "first", "reprocessed", "public", "reference")

Channel = Literal["webhook", "email"]
Frequency = Literal["immediate", "hourly", "daily", "weekly"]

MIN_SECRET, MAX_SECRET = 16, 128
_MAX_LIST = 50        # values in one filter
_MAX_VALUE = 32       # characters of one filter value
_MAX_EMAIL = 254


def _printable(value: str) -> str:
    if any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in value):
        raise ValueError("control characters (CR, LF, NUL, ...) are not allowed")
    return value


def _short_values(values: list[str]) -> list[str]:
    for v in values:
        if len(str(v)) > _MAX_VALUE:
            raise ValueError(f"a filter value is at most {_MAX_VALUE} characters")
        _printable(str(v))
    return values


Text = Annotated[str, AfterValidator(_printable)]
FilterList = Annotated[list[str], Field(max_length=_MAX_LIST), AfterValidator(_short_values)]


class SubscriptionLimitReached(Exception):
    """The owner has as many active subscriptions as the limit allows."""


class ConfirmationError(Exception):
    """A confirmation link that is unknown, wrong or expired; ``status`` is the HTTP answer."""

    def __init__(self, message: str, status: int = 404):
        super().__init__(message)
        self.status = status


def check_email(address: str) -> str:
    """One e-mail address, syntax checked (no DNS look-up), domain normalised.

    Raises
    ------
    ValueError
        Not exactly one valid address (lists, display names, CR/LF are refused).
    """
    if len(address) > _MAX_EMAIL:
        raise ValueError(f"an e-mail address is at most {_MAX_EMAIL} characters")
    _printable(address)
    try:
        return validate_email(address, check_deliverability=False, allow_display_name=False).normalized
    except EmailNotValidError as exc:
        raise ValueError(f"{address!r} is not an e-mail address: {exc}") from None


class SubscriptionFilters(BaseModel):
    """Every list is ORed within itself and ANDed with the others; empty means any."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mission: str = Field("JWST", max_length=8, description="Mission; this archive serves JWST only.")
    programs: FilterList = Field(default_factory=list, description="Five-digit program ids.")
    event_types: FilterList = Field(default_factory=list, description=f"Any of {', '.join(NOTIFICATION_TYPES)}.")
    suffixes: FilterList = Field(default_factory=list, description="Product types by file suffix, e.g. uncal, cal, i2d.")
    instruments: FilterList = Field(default_factory=list, description="NIRCAM, NIRSPEC, NIRISS, MIRI, FGS.")

    @field_validator("mission")
    @classmethod
    def _mission(cls, v: str) -> str:
        if v.upper() != "JWST":
            raise ValueError(f"mission {v!r} is not served here; only JWST")
        return "JWST"

    @field_validator("programs")
    @classmethod
    def _programs(cls, v: list[str]) -> list[str]:
        out = []
        for p in v:
            p = str(p).strip()
            if not p.isdigit() or len(p) > 5:
                raise ValueError(f"program {p!r} is not a program number (up to five digits)")
            out.append(p.zfill(5))
        return out

    @field_validator("event_types")
    @classmethod
    def _types(cls, v: list[str]) -> list[str]:
        bad = [t for t in v if t.lower() not in NOTIFICATION_TYPES]
        if bad:
            raise ValueError(f"unknown event type(s) {bad}; choose from {', '.join(NOTIFICATION_TYPES)}")
        return [t.lower() for t in v]

    @field_validator("suffixes")
    @classmethod
    def _suffixes(cls, v: list[str]) -> list[str]:
        return [s.lower() for s in v]

    @field_validator("instruments")
    @classmethod
    def _instruments(cls, v: list[str]) -> list[str]:
        return [i.upper() for i in v]


class SubscriptionSpec(BaseModel):
    """A request for a subscription, as the API and CLI accept it. The syntax is checked
    here; where a webhook may go is checked by :func:`create_subscription` (it resolves)."""

    model_config = ConfigDict(extra="forbid")

    name: Text = Field("", max_length=200)
    filters: SubscriptionFilters = Field(default_factory=SubscriptionFilters)
    channel: Channel
    target: str = Field(max_length=2048, description="Webhook URL (http/https, public address) or one e-mail address.")
    frequency: Frequency = "immediate"
    secret: str | None = Field(
        None, min_length=MIN_SECRET, max_length=MAX_SECRET,
        description=f"HMAC key of webhook bodies, {MIN_SECRET} to {MAX_SECRET} printable ASCII characters; "
                    "generated when omitted. Shown once, when it is set.")

    @field_validator("secret")
    @classmethod
    def _secret(cls, v: str | None) -> str | None:
        if v is not None and not all(0x21 <= ord(c) < 0x7F for c in v):
            raise ValueError("a secret is printable ASCII without spaces")
        return v

    @model_validator(mode="after")
    def _target_fits_channel(self) -> SubscriptionSpec:
        self.target = self.target.strip()
        if self.channel == "webhook":
            try:
                parse_webhook_url(self.target)
            except TargetRefused as exc:
                raise ValueError(str(exc)) from None
            if self.frequency != "immediate":
                raise ValueError("webhooks are delivered immediately; digests go by e-mail")
        else:
            if self.secret:
                raise ValueError("a secret signs webhook bodies; it does not apply to e-mail")
            self.target = check_email(self.target)
        return self


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _lock_owner(session: Session, owner: str) -> None:
    """Serialise subscription changes of one owner (PostgreSQL; SQLite has one writer)."""
    if session.get_bind().dialect.name == "postgresql":
        key = int.from_bytes(hashlib.sha256(f"subscription:{owner}".encode()).digest()[:8], "big", signed=True)
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def _check_target(spec: SubscriptionSpec, policy: WebhookPolicy) -> None:
    if spec.channel == "webhook":
        policy.check(spec.target)  # raises TargetRefused with the reason


def create_subscription(session: Session, owner: str, spec: SubscriptionSpec, *, policy: WebhookPolicy,
                        limit: int | None = None, confirmed: bool = False,
                        now: datetime | None = None) -> Subscription:
    """A new active subscription of ``owner``.

    A webhook is confirmed at once (its target was checked); an e-mail subscription waits
    for its confirmation link unless ``confirmed`` (the caller vouches for the address,
    e.g. the demo's own mailbox). A webhook without a secret gets a generated one: read it
    from the returned row now, it is never shown again.

    Raises
    ------
    TargetRefused
        The webhook target is refused by ``policy`` (message says why).
    SubscriptionLimitReached
        ``owner`` already has ``limit`` active subscriptions.
    """
    now = now or datetime.now(UTC)
    _check_target(spec, policy)
    _lock_owner(session, owner)
    if limit is not None:
        active = session.scalar(select(func.count()).select_from(Subscription)
                                .where(Subscription.owner == owner, Subscription.active))
        if active >= limit:
            raise SubscriptionLimitReached(
                f"{owner} has {active} active subscriptions, the limit (DMS_SUBSCRIPTION_LIMIT is {limit}); "
                "delete one first")
    secret = spec.secret
    if spec.channel == "webhook" and not secret:
        secret = secrets.token_hex(32)
    row = Subscription(
        owner=owner, name=spec.name, filters=spec.filters.model_dump(), channel=spec.channel,
        target=spec.target, secret=secret, frequency=spec.frequency, active=True, created_at=now,
        confirmed_at=now if spec.channel == "webhook" or confirmed else None,
    )
    session.add(row)
    session.flush()
    return row


def replace_subscription(session: Session, row: Subscription, spec: SubscriptionSpec, *,
                         policy: WebhookPolicy, now: datetime | None = None) -> str | None:
    """Replace name, filters, channel, target and frequency of ``row``; returns a secret
    generated by this call (a webhook that had none), else None.

    A webhook keeps its secret unless a new one is given; an e-mail target that changes
    must be confirmed again. Raises :class:`TargetRefused` like :func:`create_subscription`.
    """
    now = now or datetime.now(UTC)
    _check_target(spec, policy)
    new_address = spec.channel == "email" and (row.channel != "email" or row.target != spec.target)
    row.name, row.filters, row.channel = spec.name, spec.filters.model_dump(), spec.channel
    row.target, row.frequency = spec.target, spec.frequency
    generated = None
    if spec.channel == "email":
        row.secret = None
    elif spec.secret:
        row.secret = spec.secret
    elif not row.secret:
        row.secret = generated = secrets.token_hex(32)
    if spec.channel == "webhook":
        row.confirmed_at = row.confirmed_at or now
        row.confirm_token_sha256 = row.confirm_sent_at = None
    elif new_address:
        row.confirmed_at = row.confirm_token_sha256 = row.confirm_sent_at = None
    session.flush()
    return generated


def issue_confirmation(session: Session, subscription_id: int, now: datetime) -> str | None:
    """Claim the sending of an e-mail subscription's confirmation link: a new random token
    whose sha256 is stored; returns the token, or None when the subscription needs no link
    (confirmed, inactive, not e-mail) or one is out already (another sender claimed it)."""
    token = secrets.token_urlsafe(32)
    claimed = session.execute(
        update(Subscription)
        .where(Subscription.id == subscription_id, Subscription.active, Subscription.channel == "email",
               Subscription.confirmed_at.is_(None), Subscription.confirm_token_sha256.is_(None))
        .values(confirm_token_sha256=_hash(token), confirm_sent_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    return token if claimed == 1 else None


def withdraw_confirmation(session: Session, subscription_id: int, token: str) -> None:
    """Forget a link that could not be sent, so the next pass sends a new one."""
    session.execute(
        update(Subscription)
        .where(Subscription.id == subscription_id, Subscription.confirm_token_sha256 == _hash(token))
        .values(confirm_token_sha256=None, confirm_sent_at=None)
        .execution_options(synchronize_session=False)
    )


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def confirm_subscription(session: Session, subscription_id: int, token: str, now: datetime,
                         valid_days: int) -> Subscription:
    """Mark a subscription confirmed when ``token`` is its link's token (compared in
    constant time). Confirming twice with the right token is harmless.

    Raises
    ------
    ConfirmationError
        No such subscription or wrong token (404: the two are not told apart), or the link
        expired (410; it is withdrawn, so the notifier sends a new one).
    """
    row = session.get(Subscription, subscription_id)
    unknown = ConfirmationError(f"no subscription {subscription_id} waits for this confirmation link")
    if row is None or not row.active or not token or len(token) > 200:
        raise unknown
    if row.confirmed_at is not None and row.confirm_token_sha256 is None:
        return row
    if row.confirm_token_sha256 is None or not hmac.compare_digest(row.confirm_token_sha256, _hash(token)):
        raise unknown
    if row.confirm_sent_at is not None and _aware(row.confirm_sent_at) + timedelta(days=valid_days) < now:
        row.confirm_token_sha256 = row.confirm_sent_at = None
        session.flush()
        raise ConfirmationError(f"this confirmation link expired after {valid_days} days; "
                                "a new one will be sent to the address", status=410)
    row.confirmed_at, row.confirm_token_sha256 = now, None
    session.flush()
    return row


def list_subscriptions(session: Session, owner: str | None = None) -> list[Subscription]:
    query = select(Subscription).order_by(Subscription.id)
    if owner is not None:
        query = query.where(Subscription.owner == owner)
    return list(session.scalars(query))


def delete_subscription(session: Session, subscription_id: int, owner: str | None = None) -> bool:
    """Deactivate a subscription (its delivery history stays); False when not found."""
    row = session.get(Subscription, subscription_id)
    if row is None or (owner is not None and row.owner != owner) or not row.active:
        return False
    row.active = False
    return True


def matches(filters: dict, *, notification_type: str, program: str | None, suffix: str | None,
            instrument: str | None) -> bool:
    """Whether an event with these attributes passes a subscription's filters."""
    f = SubscriptionFilters.model_validate(filters)

    def ok(allowed: list[str], value: str | None) -> bool:
        return not allowed or (value is not None and value in allowed)

    return (ok(f.event_types, notification_type) and ok(f.programs, program)
            and ok(f.suffixes, suffix) and ok(f.instruments, instrument.upper() if instrument else None))
