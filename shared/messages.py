"""Message schemas: product references, CloudEvents-style events and their typed payloads.

Every task receives one argument, an :class:`Event` as a JSON-compatible dict. The event's
``data`` holds references (:class:`ProductRef`) and identifiers, never pixel data. Each
event type has one frozen payload model (:data:`PAYLOADS`): :func:`new_event` builds an
event from its payload, and :attr:`Event.payload` validates ``data`` against the model of
the event's type when a handler reads it. On the wire and in the outbox ``data`` stays a
JSON object, so stored events and the archive API's ``/events`` read as before.

A payload that does not fit its model raises :class:`PayloadError`, a non-retriable error:
the task is dead-lettered with the reason (:func:`shared.runtime.run_handler`).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    model_validator,
)

from shared.errors import NonRetriableError

__all__ = [
    "EVENT_TYPES",
    "PAYLOADS",
    "SCHEMA_VERSION",
    "AssociationComplete",
    "DataPublic",
    "DeliveredReference",
    "Event",
    "EventType",
    "ImpactCount",
    "ImpactSummary",
    "IngestRejected",
    "IngestSummary",
    "InputRef",
    "Payload",
    "PayloadError",
    "ProductArchived",
    "ProductCreated",
    "ProductRef",
    "ProductSuperseded",
    "RawFile",
    "ReferenceDelivered",
    "ReprocessingCompleted",
    "ReprocessingRequested",
    "ReprocessingStep",
    "Reprocessed",
    "Stage",
    "Stage3Part",
    "TelemetryArrived",
    "UtcDatetime",
    "new_event",
]

SCHEMA_VERSION = 1


class EventType(StrEnum):
    """The ``type`` of every DMS event (CloudEvents); each has one payload model in :data:`PAYLOADS`."""

    TELEMETRY_ARRIVED = "dms.telemetry.arrived"
    PRODUCT_CREATED = "dms.product.created"
    PRODUCT_ARCHIVED = "dms.product.archived"
    PRODUCT_SUPERSEDED = "dms.product.superseded"
    ASSOCIATION_COMPLETE = "dms.association.complete"
    REFERENCE_DELIVERED = "dms.reference.delivered"
    DATA_PUBLIC = "dms.data.public"
    REPROCESSING_REQUESTED = "dms.reprocessing.requested"
    REPROCESSING_COMPLETED = "dms.reprocessing.completed"
    REPROCESSING_STEP = "dms.reprocessing.step"
    INGEST_REJECTED = "dms.ingest.rejected"
    STAGE3_PART = "dms.stage3.part"


EVENT_TYPES = frozenset(EventType)


class PayloadError(NonRetriableError):
    """An event whose ``data`` does not fit the payload model of its type (or whose type has
    none): retrying cannot help, so the task reading it is dead-lettered with this message."""


def _as_utc(when: datetime) -> datetime:
    """Every catalog time is UTC; a naive one (SQLite hands those back) is taken as UTC."""
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


UtcDatetime = Annotated[
    datetime,
    AfterValidator(_as_utc),
    PlainSerializer(lambda when: when.isoformat(), return_type=str, when_used="json"),
]
"""A UTC time; ISO 8601 with offset in JSON (``2027-03-01T12:00:00+00:00``); naive input is UTC."""


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


class RawFile(_Frozen):
    """A delivered file as stored, untouched, in ``dms-raw``."""

    uri: str
    filename: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)


class IngestSummary(_Frozen):
    """What ingest counted while decoding the telemetry file a product was made from
    (docs/telemetry.md); every count >= 0, absent means 0. ``fault_<kind>`` counts the
    undecodable byte runs of each :class:`shared.telemetry.FaultKind`."""

    packets: int = Field(0, ge=0, description="packets decoded")
    sequence_gaps: int = Field(0, ge=0, description="gaps in the per-APID sequence count")
    duplicates: int = Field(0, ge=0, description="identical copies dropped")
    conflicting_duplicates: int = Field(0, ge=0, description="differing copies (the first kept)")
    reordered: int = Field(0, ge=0, description="packets placed out of arrival order")
    out_of_range: int = Field(0, ge=0, description="rows outside the planned shape")
    missing_rows: int = Field(0, ge=0, description="rows that never arrived (flagged DROPOUT)")
    missing_zeroframe_rows: int = Field(0, ge=0, description="ZEROFRAME rows that never arrived (left 0)")
    fault_crc_mismatch: int = Field(0, ge=0)
    fault_truncated: int = Field(0, ge=0)
    fault_garbled: int = Field(0, ge=0)
    fault_bad_header: int = Field(0, ge=0)
    fault_unknown_apid: int = Field(0, ge=0)
    fault_bad_payload: int = Field(0, ge=0)


Stage = Literal["detector1", "stage2", "stage3"]


class ImpactCount(_Frozen):
    """How many archived exposures of a program a new context would calibrate differently,
    from which stage, and what the reprocessing policy does about them."""

    program: str
    first_stage: Stage = Field(description="the earliest stage whose products used a reference that changed")
    exposures: int = Field(ge=1)
    policy: Literal["notify", "reprocess"] = Field(description="reprocess: a request was opened for them")


class ImpactSummary(_Frozen):
    """What a new context changes for archived exposures (shared.refdata.impact): the
    exposures in total and the counts per program and first stage; the list itself is
    served by ``GET /references/{context}/impact`` and ``dms refs impact``."""

    exposures: int = Field(ge=0)
    counts: tuple[ImpactCount, ...] = ()


class DeliveredReference(_Frozen):
    """One reference file a new context added (``dms.reference.delivered``)."""

    filename: str
    reftype: str = Field(description="upper case, e.g. DARK")
    instrument: str
    selectors: dict[str, str] = Field(description="the header values it applies to, e.g. DETECTOR")
    useafter: UtcDatetime
    uri: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)
    pedigree: str = ""


class Payload(_Frozen):
    """Base of the event payloads: the ``data`` of one event type (:attr:`event_type`).

    Optional fields (default None) are left out of ``data`` when empty (:meth:`to_data`);
    required fields are always there, null when they may be.
    """

    event_type: ClassVar[EventType]

    def to_data(self) -> dict[str, Any]:
        """The event's ``data``: a JSON-compatible object."""
        fields = type(self).model_fields
        return {k: v for k, v in self.model_dump(mode="json").items()
                if v is not None or fields[k].is_required()}


class TelemetryArrived(Payload):
    """``dms.telemetry.arrived``: a telemetry file was stored in ``dms-raw`` (ingest runs on it).
    ``telemetry.suffix`` is ``telemetry``; program and observation are those of its first
    readable packet (None when no packet is readable). An MSA metadata file delivered with
    the plan arrives the same way, with suffix ``msa`` and the program and observation of
    its name."""

    event_type: ClassVar[EventType] = EventType.TELEMETRY_ARRIVED
    telemetry: ProductRef


class ProductCreated(Payload):
    """``dms.product.created``: a product was written but is not archived yet. Declared by
    DESIGN §4; nothing produces it today (archiving stores, registers and announces at once)."""

    event_type: ClassVar[EventType] = EventType.PRODUCT_CREATED
    product: ProductRef
    level: int = Field(ge=0, le=4, description="CAOM calibration level")


class Reprocessed(_Frozen):
    """Why a reprocessing request made a product revision, and what changed against the
    revision it replaced (``changes``: :mod:`shared.changes`; None for a product new to
    the archive)."""

    request_id: str
    reason: str
    old_context: str | None = None
    new_context: str | None = None
    references: tuple[str, ...] = Field((), description="the reference files used now that the replaced revision did not use")
    changes: dict[str, Any] | None = None


class ProductArchived(Payload):
    """``dms.product.archived``: a product revision was stored and registered (and is current).

    ``asn_type``, ``asn_id``, ``asn_rule`` and ``products`` describe an association file
    (suffix ``asn``; ``asn_type`` is then required, the router chooses stage 2 or stage 3 by
    it); ``ingest`` is set on the ``_uncal`` products of ingest.
    """

    event_type: ClassVar[EventType] = EventType.PRODUCT_ARCHIVED
    product: ProductRef
    level: int = Field(ge=0, le=4, description="CAOM calibration level")
    data_release: UtcDatetime = Field(description="when the data leave exclusive access")
    asn_type: str | None = Field(None, description="association type, e.g. image2, image3, tso3")
    asn_id: str | None = Field(None, description="the association's candidate id, e.g. o001 (= product.asn_id)")
    asn_rule: str | None = Field(None, description="the rule that made the association, e.g. Asn_Lv2Image")
    products: tuple[str, ...] | None = Field(None, description="names of the products the association makes")
    ingest: IngestSummary | None = None
    reprocessing: Reprocessed | None = Field(None, description="set when a reprocessing request made it")

    @model_validator(mode="after")
    def _association_fields(self) -> ProductArchived:
        asn_fields = (self.asn_type, self.asn_id, self.asn_rule, self.products)
        if self.product.suffix == "asn":
            if self.asn_type is None:
                raise ValueError("an association file (suffix asn) needs asn_type")
            if self.asn_id is not None and self.asn_id != self.product.asn_id:
                raise ValueError(f"asn_id {self.asn_id!r} differs from the product's {self.product.asn_id!r}")
        elif any(v is not None for v in asn_fields):
            raise ValueError(f"asn_type, asn_id, asn_rule and products describe association files only, "
                             f"not a {self.product.suffix!r} product")
        return self


class ProductSuperseded(Payload):
    """``dms.product.superseded``: a new revision of ``filename``, or the product
    ``replaced_by``, replaced ``revision``."""

    event_type: ClassVar[EventType] = EventType.PRODUCT_SUPERSEDED
    filename: str
    program: str
    revision: int = Field(ge=1, description="the revision that is no longer current")
    superseded_by: int = Field(ge=1, description="the revision that is current now (of ``replaced_by`` when given)")
    replaced_by: str | None = Field(None, description="the product of another name that replaces this one "
                                    "(a pool or association re-made under a newer time stamp)")


class AssociationComplete(Payload):
    """``dms.association.complete``: every member an association needs exists. Declared by
    DESIGN §4; nothing produces it today (the association file's ``dms.product.archived``
    carries what the router needs, see docs/associations.md)."""

    event_type: ClassVar[EventType] = EventType.ASSOCIATION_COMPLETE
    product: ProductRef = Field(description="the association file (suffix asn)")
    asn_type: str
    asn_id: str
    asn_rule: str
    products: tuple[str, ...] = Field(description="names of the products the association makes")
    members: tuple[str, ...] = Field(description="file names of its members")


class ReferenceDelivered(Payload):
    """``dms.reference.delivered``: a new reference context was made (shared.refdata.delivery)."""

    event_type: ClassVar[EventType] = EventType.REFERENCE_DELIVERED
    context: str = Field(description="the new context, e.g. dms_0002.ctx")
    parent: str | None = Field(description="the context it derives from; None for the first")
    note: str
    files: tuple[DeliveredReference, ...] = Field(description="the files it added")
    replaced: tuple[str, ...] = Field(description="file names of the parent's files it no longer holds")
    impact: ImpactSummary | None = Field(
        None, description="the archived exposures it would calibrate with other files (reference types "
        "whose policy is off are not counted)")


class DataPublic(Payload):
    """``dms.data.public``: the data of a current product left exclusive access
    (recorded by ``dms notify``, once per product revision)."""

    event_type: ClassVar[EventType] = EventType.DATA_PUBLIC
    product: ProductRef
    level: int = Field(ge=0, le=4, description="CAOM calibration level")
    data_release: UtcDatetime = Field(description="the release that passed (a combined product's latest input's)")
    archived_at: UtcDatetime


class ReprocessingRequested(Payload):
    """``dms.reprocessing.requested``: someone (or a new reference context, by policy) asked
    for products to be made again (shared.reprocessing). ``units`` names what becomes
    current together: exposures and association files."""

    event_type: ClassVar[EventType] = EventType.REPROCESSING_REQUESTED
    request_id: str
    program: str
    scope: dict[str, Any] = Field(description="observations, exposures, products or association asked for")
    from_stage: Stage = Field(description="the first stage to run again")
    reference_context: str = Field(description="the context the new revisions are calibrated with")
    reason: str = Field(description="why; recorded with every new revision")
    requested_by: str | None = None
    units: tuple[str, ...] = ()


class ReprocessingStep(Payload):
    """``dms.reprocessing.step``: one stage of one unit of a request is due (routed to the
    stage's reprocessing task, on its low-priority queue). ``product`` is the input: the
    ``_uncal`` (detector1) or the association file (stage2, stage3)."""

    event_type: ClassVar[EventType] = EventType.REPROCESSING_STEP
    request_id: str
    stage: Stage
    unit: str = Field(description="the exposure or association file the step belongs to")
    product: ProductRef
    reference_context: str


class ReprocessingCompleted(Payload):
    """``dms.reprocessing.completed``: a request ended (``state`` done, failed or
    cancelled); the products of each unit that finished became current together."""

    event_type: ClassVar[EventType] = EventType.REPROCESSING_COMPLETED
    request_id: str
    program: str
    state: Literal["done", "failed", "cancelled"] = "done"
    products: tuple[ProductRef, ...] = Field(description="the new revisions made current")


class InputRef(_Frozen):
    """One revision of an input product, pinned: its name, where it is and its checksum."""

    filename: str
    uri: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class Stage3Part(Payload):
    """``dms.stage3.part``: a part of a stage-3 run split across tasks is due (routed to
    ``stage3.part``, or ``stage3.reprocess-part`` on the reprocessing queue for a
    request's run). ``product`` is the Level-3 association, ``members`` the revisions of
    its science members the run is made of, ``run`` names the run (its fan-ins,
    :mod:`shared.catalog.fanin`). ``phase`` is what is due: ``survey``, ``single`` or
    ``member`` for member ``part`` alone, ``median`` or ``mosaic`` for them all
    (docs/stage3.md). ``step`` is the reprocessing step the run is part of (None:
    operational)."""

    event_type: ClassVar[EventType] = EventType.STAGE3_PART
    product: ProductRef
    run: str
    phase: Literal["survey", "single", "median", "member", "mosaic"]
    members: tuple[InputRef, ...] = Field(min_length=1)
    part: int | None = Field(None, ge=0)
    step: ReprocessingStep | None = None


class IngestRejected(Payload):
    """``dms.ingest.rejected``: nothing usable could be made of a telemetry file (or of part
    of it); it stays in ``dms-raw``. ``reason`` is a code of docs/telemetry.md."""

    event_type: ClassVar[EventType] = EventType.INGEST_REJECTED
    raw: RawFile
    reason: str
    detail: str = Field(description="a sentence an operator can act on")
    program: str | None = Field(description="the program the rejected packets belong to, when known")


PAYLOADS: Mapping[EventType, type[Payload]] = MappingProxyType({m.event_type: m for m in (
    TelemetryArrived, ProductCreated, ProductArchived, ProductSuperseded, AssociationComplete,
    ReferenceDelivered, DataPublic, ReprocessingRequested, ReprocessingStep, ReprocessingCompleted,
    IngestRejected, Stage3Part,
)})
"""The payload model of every event type."""

P = TypeVar("P", bound=Payload)


class Event(_Frozen):
    """A CloudEvents 1.0 envelope; ``dmsschema`` is an extension attribute.

    ``data`` is kept as the JSON object it travels as; read it through :attr:`payload`
    (or :meth:`payload_as`), which validates it against the model of ``type``.
    """

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
    def payload(self) -> Payload:
        """``data`` as the payload model of this event's type (:data:`PAYLOADS`).

        Raises
        ------
        PayloadError
            The type has no payload model, or ``data`` does not fit it (non-retriable).
        """
        model = PAYLOADS.get(self.type)
        if model is None:
            raise PayloadError(f"event {self.id} has the unknown type {self.type!r}")
        try:
            return model.model_validate(self.data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "data"
            raise PayloadError(f"event {self.id} ({self.type}) has a malformed payload: "
                               f"{exc.error_count()} error(s), first at {where}: {first['msg']}") from None

    def payload_as(self, model: type[P]) -> P:
        """:attr:`payload`, checked to be a ``model`` (the event type a handler expects).

        Raises
        ------
        PayloadError
            The event is of another type, or its payload is malformed.
        """
        payload = self.payload
        if not isinstance(payload, model):
            raise PayloadError(f"event {self.id} is {self.type}, not {model.event_type}")
        return payload

    @property
    def product(self) -> ProductRef | None:
        """The product this event is about, when its payload names one (product events,
        ``dms.data.public``, ``dms.association.complete``).

        Raises
        ------
        PayloadError
            The payload is malformed.
        """
        return getattr(self.payload, "product", None)


def new_event(
    payload: Payload,
    source: str,
    *,
    subject: str | None = None,
    event_id: str | None = None,
    time: datetime | None = None,
) -> Event:
    """The event carrying ``payload`` (its type is the payload's), with a fresh id;
    ``event_id`` may be given to make it deterministic."""
    if type(payload) is not PAYLOADS.get(getattr(payload, "event_type", None)):
        raise TypeError(f"{type(payload).__name__} is not an event payload (one of shared.messages.PAYLOADS)")
    return Event(
        id=event_id or str(uuid.uuid4()),
        source=source,
        type=payload.event_type,
        time=time or datetime.now(UTC),
        subject=subject,
        data=payload.to_data(),
    )
