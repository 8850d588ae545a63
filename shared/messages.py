"""Message schemas: product references and CloudEvents-style events (JSON only).

Every task receives one argument, an :class:`Event` as a JSON-compatible dict. The event's
``data`` holds references (:class:`ProductRef`) and identifiers, never pixel data.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "EVENT_TYPES",
    "SCHEMA_VERSION",
    "Event",
    "EventType",
    "ProductRef",
    "new_event",
]

SCHEMA_VERSION = 1


class EventType:
    TELEMETRY_ARRIVED = "dms.telemetry.arrived"
    PRODUCT_CREATED = "dms.product.created"
    PRODUCT_ARCHIVED = "dms.product.archived"
    PRODUCT_SUPERSEDED = "dms.product.superseded"
    ASSOCIATION_COMPLETE = "dms.association.complete"
    REFERENCE_DELIVERED = "dms.reference.delivered"
    DATA_PUBLIC = "dms.data.public"
    REPROCESSING_REQUESTED = "dms.reprocessing.requested"
    REPROCESSING_COMPLETED = "dms.reprocessing.completed"
    INGEST_REJECTED = "dms.ingest.rejected"


EVENT_TYPES = frozenset(v for k, v in vars(EventType).items() if k.isupper())


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ProductRef(_Frozen):
    """Where a product is and how to check it; identifiers for routing and filtering."""

    schema_version: int = SCHEMA_VERSION
    uri: str = Field(description="s3://bucket/key or file:///path")
    filename: str
    suffix: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)
    revision: int = Field(1, ge=1)
    program: str | None = None
    observation: int | None = None
    visit: int | None = None
    exposure: int | None = None
    detector: str | None = None
    exp_type: str | None = None
    asn_id: str | None = None


class Event(_Frozen):
    """A CloudEvents 1.0 envelope; ``dmsschema`` is an extension attribute."""

    id: str
    source: str
    type: str
    specversion: str = "1.0"
    time: datetime
    subject: str | None = None
    datacontenttype: str = "application/json"
    dmsschema: int = SCHEMA_VERSION
    data: dict[str, Any] = Field(default_factory=dict)

    def to_json_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @property
    def product(self) -> ProductRef | None:
        """The product this event is about, when its data carries one."""
        raw = self.data.get("product")
        return ProductRef.model_validate(raw) if raw else None


def new_event(
    type_: str,
    source: str,
    *,
    subject: str | None = None,
    data: dict[str, Any] | None = None,
    event_id: str | None = None,
    time: datetime | None = None,
) -> Event:
    """An event with a fresh id; ``event_id`` may be given to make it deterministic."""
    if type_ not in EVENT_TYPES:
        raise ValueError(f"unknown event type {type_!r}")
    return Event(
        id=event_id or str(uuid.uuid4()),
        source=source,
        type=type_,
        time=time or datetime.now(UTC),
        subject=subject,
        data=data or {},
    )
