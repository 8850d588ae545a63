"""Subscriptions: what a user asked to be told about. Used by the notifier (matching), the
archive API (CRUD for a token's owner) and the CLI (`dms subscribe`)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator, model_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.catalog.models import Subscription

__all__ = [
    "NOTIFICATION_TYPES",
    "SubscriptionFilters",
    "SubscriptionSpec",
    "create_subscription",
    "delete_subscription",
    "list_subscriptions",
    "matches",
]

NOTIFICATION_TYPES = ("new", "first", "reprocessed", "public", "reference")

Channel = Literal["webhook", "email"]
Frequency = Literal["immediate", "hourly", "daily", "weekly"]


class SubscriptionFilters(BaseModel):
    """Every list is ORed within itself and ANDed with the others; empty means any."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mission: str = Field("JWST", description="Mission; this archive serves JWST only.")
    programs: list[str] = Field(default_factory=list, description="Five-digit program ids.")
    event_types: list[str] = Field(default_factory=list, description=f"Any of {', '.join(NOTIFICATION_TYPES)}.")
    suffixes: list[str] = Field(default_factory=list, description="Product types by file suffix, e.g. uncal, cal, i2d.")
    instruments: list[str] = Field(default_factory=list, description="NIRCAM, NIRSPEC, NIRISS, MIRI, FGS.")

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
    """A request for a subscription, as the API and CLI accept it."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("", max_length=200)
    filters: SubscriptionFilters = Field(default_factory=SubscriptionFilters)
    channel: Channel
    target: str = Field(description="Webhook URL (http/https) or e-mail address.")
    frequency: Frequency = "immediate"
    secret: str | None = Field(None, description="HMAC key for webhook bodies; generated when omitted.")

    @model_validator(mode="after")
    def _target_fits_channel(self) -> SubscriptionSpec:
        if self.channel == "webhook":
            HttpUrl(self.target)  # raises a clear ValueError for a bad URL
            if self.frequency != "immediate":
                raise ValueError("webhooks are delivered immediately; digests go by e-mail")
        elif "@" not in self.target or " " in self.target.strip():
            raise ValueError(f"{self.target!r} is not an e-mail address")
        return self


def create_subscription(session: Session, owner: str, spec: SubscriptionSpec) -> Subscription:
    secret = spec.secret
    if spec.channel == "webhook" and not secret:
        secret = secrets.token_hex(32)
    row = Subscription(
        owner=owner, name=spec.name, filters=spec.filters.model_dump(), channel=spec.channel,
        target=spec.target.strip(), secret=secret, frequency=spec.frequency, active=True,
        created_at=datetime.now(UTC),
    )
    session.add(row)
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
