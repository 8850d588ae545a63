"""Catalog tables (CAOM-inspired): program -> observation -> exposure -> product -> artifact,
plus the event outbox, ingest rejections, dead-lettered tasks and associations.

Works on SQLite (embedded) and PostgreSQL (deployment); schema changes go through the
Alembic migrations beside this module.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

__all__ = [
    "AccessChange",
    "AccessKind",
    "ApiToken",
    "Artifact",
    "ArtifactKind",
    "Association",
    "Base",
    "CaomMember",
    "CaomObservation",
    "CaomObservationLink",
    "CaomProduct",
    "Delivery",
    "DeliveryAttempt",
    "EventRecord",
    "ExclusiveRead",
    "Exposure",
    "IngestRejection",
    "Observation",
    "Product",
    "Program",
    "ReferenceContext",
    "ReferenceContextFile",
    "ReferenceFile",
    "ReferenceImpact",
    "ReprocessingRequest",
    "ReprocessingUnit",
    "RequestState",
    "Subscription",
    "TapJob",
    "TaskFailure",
    "TaskStat",
    "WavefrontOpd",
    "WorkItem",
    "WorkState",
]


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON, datetime: DateTime(timezone=True)}


class Program(Base):
    __tablename__ = "program"

    id: Mapped[str] = mapped_column(String(5), primary_key=True, comment="Five-digit program id")
    title: Mapped[str] = mapped_column(Text, default="")
    pi_name: Mapped[str] = mapped_column(String(200), default="")
    category: Mapped[str] = mapped_column(String(8), default="GO")
    eap_months: Mapped[int] = mapped_column(Integer, default=12)
    authorized_users: Mapped[list[Any]] = mapped_column(JSON, default=list)
    granted_users: Mapped[list[Any]] = mapped_column(JSON, default=list, comment="Granted by the PI through the API")
    pi_user: Mapped[str | None] = mapped_column(String(200), comment="PI's identity; may grant access")
    embargoed: Mapped[bool] = mapped_column(
        Boolean, default=False, comment="Data and previews readable by operators only (shared.access)")
    created_at: Mapped[datetime]

    observations: Mapped[list[Observation]] = relationship(back_populates="program")


class AccessKind(StrEnum):
    """A dated change of a program's exclusive access (``program_access_change.kind``)."""

    WAIVER = "waiver"  # the PI waives the EAP from ``effective_at``: 0 months
    EXTENSION = "extension"  # an operator adds ``months`` to releases still due at ``effective_at``
    EMBARGO = "embargo"  # an operator makes the program's data readable by operators only
    LIFT = "lift"  # an operator lifts the embargo


class AccessChange(Base):
    """One dated change of a program's exclusive access: who made it, why, and what it
    did to the program's archived products (shared.access.change_access)."""

    __tablename__ = "program_access_change"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    program_id: Mapped[str] = mapped_column(ForeignKey("program.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16), comment="waiver, extension, embargo or lift (AccessKind)")
    effective_at: Mapped[datetime] = mapped_column(comment="From when it applies")
    months: Mapped[int | None] = mapped_column(Integer, comment="An extension's months")
    reason: Mapped[str] = mapped_column(Text)
    requested_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]
    moved: Mapped[int] = mapped_column(Integer, default=0, comment="Product revisions whose release date it moved")


class ExclusiveRead(Base):
    """The audit of operators' reads of data nobody else could read then (exclusive or
    embargoed): who read which file of which product revision, and when."""

    __tablename__ = "exclusive_read"
    __table_args__ = (Index("ix_exclusive_read_time", "read_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user: Mapped[str] = mapped_column(String(200), index=True)
    program_id: Mapped[str] = mapped_column(ForeignKey("program.id"), index=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("product.id"))
    filename: Mapped[str] = mapped_column(String(200), comment="The file served (data, preview or thumbnail)")
    revision: Mapped[int] = mapped_column(Integer)
    why: Mapped[str] = mapped_column(String(16), comment="exclusive or embargoed")
    read_at: Mapped[datetime]


class Observation(Base):
    __tablename__ = "observation"
    __table_args__ = (UniqueConstraint("program_id", "number", name="uq_observation_program_number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    program_id: Mapped[str] = mapped_column(ForeignKey("program.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    target_name: Mapped[str] = mapped_column(String(200), default="")
    target_ra: Mapped[float | None] = mapped_column(Float)
    target_dec: Mapped[float | None] = mapped_column(Float)
    target_aliases: Mapped[list[Any] | None] = mapped_column(
        JSON, default=list, comment="Other names of the target, from the plan (name resolution)")
    instrument: Mapped[str] = mapped_column(String(16))
    template: Mapped[str] = mapped_column(String(100), default="")
    exp_type: Mapped[str] = mapped_column(String(32), default="")
    filter: Mapped[str | None] = mapped_column(String(32))
    pupil: Mapped[str | None] = mapped_column(String(32))
    tsovisit: Mapped[bool | None] = mapped_column(
        Boolean, comment="TSOVISIT from the plan: a time-series observation; NULL: not known (recorded before 0018)")
    pre_image_for: Mapped[list[Any] | None] = mapped_column(
        JSON, default=list, comment="Observation numbers this one is the pre-image of (prerequisite products)")
    # Derived (shared.catalog.summary): what the searches would otherwise aggregate over every product.
    target_hpx: Mapped[int | None] = mapped_column(
        BigInteger, index=True, comment="Derived: HEALPix pixel of the target (shared.catalog.sky)")
    current_level: Mapped[int | None] = mapped_column(
        Integer, comment="Derived: highest level of its current products (no MSA file); NULL: planned")
    mrp_level: Mapped[int | None] = mapped_column(
        Integer, comment="Derived: highest level of its current science products (no ASN): the MRP level")
    current_release: Mapped[datetime | None] = mapped_column(
        comment="Derived: latest data release date of its current products")
    current_products: Mapped[int] = mapped_column(
        Integer, default=0, server_default="0", comment="Derived: number of its current products")

    program: Mapped[Program] = relationship(back_populates="observations")
    exposures: Mapped[list[Exposure]] = relationship(back_populates="observation")


class Exposure(Base):
    __tablename__ = "exposure"
    __table_args__ = (Index("ix_exposure_hpx", "hpx", "observation_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    observation_id: Mapped[int] = mapped_column(ForeignKey("observation.id"), index=True)
    name: Mapped[str] = mapped_column(
        String(64), unique=True, comment="e.g. jw01234001001_01101_00001_nrca1"
    )
    visit: Mapped[int] = mapped_column(Integer)
    visit_group: Mapped[int] = mapped_column(Integer)
    sequence: Mapped[int] = mapped_column(Integer)
    activity: Mapped[str] = mapped_column(String(2))
    exposure: Mapped[int] = mapped_column(Integer)
    detector: Mapped[str] = mapped_column(String(16))
    exp_type: Mapped[str] = mapped_column(String(32))
    filter: Mapped[str | None] = mapped_column(String(32))
    pupil: Mapped[str | None] = mapped_column(String(32))
    readpatt: Mapped[str] = mapped_column(String(16))
    subarray: Mapped[str] = mapped_column(String(32))
    ngroups: Mapped[int] = mapped_column(Integer)
    nints: Mapped[int] = mapped_column(Integer)
    start_time: Mapped[datetime | None] = mapped_column(index=True)
    ra: Mapped[float | None] = mapped_column(Float)
    dec: Mapped[float | None] = mapped_column(Float)
    hpx: Mapped[int | None] = mapped_column(
        BigInteger, comment="Derived: HEALPix pixel of the pointing (shared.catalog.sky)")

    observation: Mapped[Observation] = relationship(back_populates="exposures")


class Product(Base):
    """One product revision (a CAOM plane). Exactly one revision of a filename is current."""

    __tablename__ = "product"
    __table_args__ = (
        UniqueConstraint("filename", "revision", name="uq_product_filename_revision"),
        Index("ix_product_current", "filename", "is_current"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    filename: Mapped[str] = mapped_column(String(200), index=True)
    suffix: Mapped[str] = mapped_column(String(32), index=True)
    level: Mapped[int] = mapped_column(Integer, comment="CAOM calibration level")
    product_type: Mapped[str] = mapped_column(String(16), default="SCIENCE")
    revision: Mapped[int] = mapped_column(Integer, default=1)
    is_current: Mapped[bool] = mapped_column(Boolean, default=True)
    program_id: Mapped[str] = mapped_column(ForeignKey("program.id"), index=True)
    observation_id: Mapped[int | None] = mapped_column(ForeignKey("observation.id"), index=True)
    exposure_id: Mapped[int | None] = mapped_column(ForeignKey("exposure.id"), index=True)
    segment: Mapped[int | None] = mapped_column(Integer)
    archived_at: Mapped[datetime]
    meta_release: Mapped[datetime]
    data_release: Mapped[datetime]
    software_version: Mapped[str] = mapped_column(String(32), default="")
    reference_context: Mapped[str | None] = mapped_column(String(64))
    inputs: Mapped[list[Any]] = mapped_column(JSON, default=list, comment="Provenance: input filenames")
    superseded_at: Mapped[datetime | None]
    public_announced_at: Mapped[datetime | None] = mapped_column(comment="When dms.data.public was recorded")
    request_id: Mapped[str | None] = mapped_column(
        ForeignKey("reprocessing_request.id"), index=True,
        comment="The reprocessing request that made this revision (None: operational processing)")
    request_unit: Mapped[str | None] = mapped_column(
        String(200), comment="The unit of that request it belongs to (an exposure, an association)")
    abandoned_at: Mapped[datetime | None] = mapped_column(
        comment="A request's revision that never became current (the request failed or was cancelled)")
    reason: Mapped[dict[str, Any] | None] = mapped_column(
        JSON, comment="Why a reprocessed revision was made: request, contexts, references that differ")
    changes: Mapped[dict[str, Any] | None] = mapped_column(
        JSON, comment="How it differs from the revision it replaces (shared.changes)")
    s_region: Mapped[str | None] = mapped_column(
        Text, comment="Sky footprint (S_REGION of the file, or of its pointing): POLYGON ICRS ra dec ...")

    artifacts: Mapped[list[Artifact]] = relationship(back_populates="product")
    exposure: Mapped[Exposure | None] = relationship()


class ArtifactKind(StrEnum):
    """What an artifact of a product is; a member is the value stored in ``artifact.kind``."""

    DATA = "data"  # the product file itself (in dms-archive)
    PREVIEW = "preview"  # PNG preview (in dms-previews)
    THUMBNAIL = "thumbnail"  # small JPEG (in dms-previews)


class Artifact(Base):
    """One stored file of a product: its data file, and its preview and thumbnail."""

    __tablename__ = "artifact"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("product.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16), default=ArtifactKind.DATA)  # an ArtifactKind value
    uri: Mapped[str] = mapped_column(String(500), unique=True)
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    content_type: Mapped[str] = mapped_column(String(100))

    product: Mapped[Product] = relationship(back_populates="artifacts")


class EventRecord(Base):
    """The outbox: written in the same transaction as what it announces, then dispatched."""

    __tablename__ = "event"
    __table_args__ = (Index("ix_event_pending", "dispatched_at", "created_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    type: Mapped[str] = mapped_column(String(64), index=True)
    source: Mapped[str] = mapped_column(String(200))
    subject: Mapped[str | None] = mapped_column(String(200))
    time: Mapped[datetime]
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime]
    dispatched_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)


class RequestState(StrEnum):
    """Where a reprocessing request (or one of its units) stands."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


class ReprocessingRequest(Base):
    """A request to make products again (shared.reprocessing): its scope, the stage it
    starts from, the reference context, why, and where it stands. ``key`` makes requests
    idempotent: the same scope, stage and context is the same request."""

    __tablename__ = "reprocessing_request"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True, comment="sha256 of scope, stage and context")
    program_id: Mapped[str] = mapped_column(ForeignKey("program.id"), index=True)
    scope: Mapped[dict[str, Any]] = mapped_column(JSON, comment="observations, exposures, products, association")
    from_stage: Mapped[str] = mapped_column(String(16), comment="detector1, stage2 or stage3")
    reference_context: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text, default="")
    software_reason: Mapped[str | None] = mapped_column(Text, comment="A software change that motivates it")
    requested_by: Mapped[str | None] = mapped_column(String(200))
    origin: Mapped[str] = mapped_column(String(16), default="user", comment="user, operator or reference (policy)")
    state: Mapped[str] = mapped_column(String(16), default=RequestState.QUEUED, index=True)
    created_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)

    units: Mapped[list[ReprocessingUnit]] = relationship(back_populates="request", order_by="ReprocessingUnit.id")


class ReprocessingUnit(Base):
    """What becomes current together: an exposure's chain (``exposure``, named by the
    exposure) or an association's products (``association``, named by its ASN file)."""

    __tablename__ = "reprocessing_unit"
    __table_args__ = (UniqueConstraint("request_id", "kind", "name", name="uq_reprocessing_unit"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("reprocessing_request.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16), comment="exposure or association")
    name: Mapped[str] = mapped_column(String(200))
    stage: Mapped[str] = mapped_column(String(16), comment="The stage it runs (or ran) last")
    state: Mapped[str] = mapped_column(String(16), default=RequestState.QUEUED)
    pending: Mapped[list[Any]] = mapped_column(
        JSON, default=list, comment="Inputs whose step of this stage is still due (segments, ASN files)")
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)

    request: Mapped[ReprocessingRequest] = relationship(back_populates="units")


class ReferenceImpact(Base):
    """One archived exposure a new reference context would calibrate with a different
    file: which stage it would start from and which references differ."""

    __tablename__ = "reference_impact"
    __table_args__ = (UniqueConstraint("context", "exposure_name", name="uq_reference_impact"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    context: Mapped[str] = mapped_column(String(64), index=True, comment="The new context")
    parent: Mapped[str | None] = mapped_column(String(64), comment="The context the exposure was calibrated with")
    program_id: Mapped[str] = mapped_column(ForeignKey("program.id"), index=True)
    exposure_name: Mapped[str] = mapped_column(String(64))
    first_stage: Mapped[str] = mapped_column(String(16), comment="detector1, stage2 or stage3")
    references: Mapped[list[Any]] = mapped_column(
        JSON, default=list, comment="[{reftype, step, old, new}] of each reference that differs")
    request_id: Mapped[str | None] = mapped_column(
        ForeignKey("reprocessing_request.id"), comment="The request the policy opened for it")
    created_at: Mapped[datetime]


class WorkState(StrEnum):
    """Where a routed task stands: ``pending`` (recorded, maybe sent), ``running`` (claimed
    by a worker under a lease), ``done`` (its outputs are committed) or ``failed``
    (dead-lettered, or its lease expired too often)."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class WorkItem(Base):
    """One routed task: the event that causes it and the task it starts, written in the
    same transaction as the event. The catalog, not the broker, is the record of what
    must happen (shared.work has the state changes)."""

    __tablename__ = "work_item"
    __table_args__ = (
        UniqueConstraint("event_id", "task", name="uq_work_item_event_task"),
        Index("ix_work_item_state_task", "state", "task"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[str] = mapped_column(ForeignKey("event.id"), index=True)
    task: Mapped[str] = mapped_column(String(100), comment="e.g. detector1.run")
    state: Mapped[str] = mapped_column(String(16), default=WorkState.PENDING, comment="pending, running, done, failed")
    created_at: Mapped[datetime]
    dispatched_at: Mapped[datetime | None] = mapped_column(
        comment="When its message was last sent (a retry: when the delayed message falls due)")
    sends: Mapped[int] = mapped_column(Integer, default=0, comment="Messages sent for it")
    attempts: Mapped[int] = mapped_column(Integer, default=0, comment="Times a worker claimed it")
    worker: Mapped[str | None] = mapped_column(String(200), comment="host:pid of the last worker to claim it")
    started_at: Mapped[datetime | None] = mapped_column(comment="When the last claim began")
    lease_until: Mapped[datetime | None] = mapped_column(comment="A running claim expires then unless extended")
    finished_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)


class FanIn(Base):
    """Work split across tasks (a map): each of its ``parts`` records its result here, and
    the part that completes the set records, in the same transaction, the event of the
    task that combines them (:mod:`shared.catalog.fanin`)."""

    __tablename__ = "fan_in"

    key: Mapped[str] = mapped_column(String(200), primary_key=True,
                                     comment="Names the split work, e.g. stage3:<asn sha256>:survey")
    parts: Mapped[int] = mapped_column(Integer, comment="How many parts the work was split into")
    created_at: Mapped[datetime]
    closed_at: Mapped[datetime | None] = mapped_column(
        comment="When the last part was recorded (and the combining task's event with it)")


class FanInPart(Base):
    """The result of one part of a :class:`FanIn`: an object in dms-work."""

    __tablename__ = "fan_in_part"

    fan_in_key: Mapped[str] = mapped_column(ForeignKey("fan_in.key"), primary_key=True)
    part: Mapped[int] = mapped_column(Integer, primary_key=True, comment="0 .. parts - 1")
    result_uri: Mapped[str] = mapped_column(String(500))
    result_sha256: Mapped[str] = mapped_column(String(64))
    done_at: Mapped[datetime]


class IngestRejection(Base):
    """Telemetry that could not be used, kept untouched in dms-raw, with the reason."""

    __tablename__ = "ingest_rejection"
    __table_args__ = (UniqueConstraint("raw_sha256", "reason", name="uq_rejection_raw_reason"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    raw_uri: Mapped[str] = mapped_column(String(500), index=True)
    raw_filename: Mapped[str] = mapped_column(String(200))
    raw_sha256: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(64), comment="Machine-readable reason code")
    detail: Mapped[str] = mapped_column(Text, comment="What a person can act on")
    program_id: Mapped[str | None] = mapped_column(String(5))
    created_at: Mapped[datetime]
    event_id: Mapped[str | None] = mapped_column(String(64))


class TaskFailure(Base):
    """A task that failed for good (bad input or retries exhausted): the dead-letter record."""

    __tablename__ = "task_failure"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    task: Mapped[str] = mapped_column(String(100), index=True)
    event_id: Mapped[str | None] = mapped_column(String(64), index=True)
    reason: Mapped[str] = mapped_column(Text)
    retriable: Mapped[bool] = mapped_column(Boolean, default=False)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime]


class TaskStat(Base):
    """Running totals per task for the metrics endpoint (updated by every handler run)."""

    __tablename__ = "task_stat"

    task: Mapped[str] = mapped_column(String(100), primary_key=True)
    runs: Mapped[int] = mapped_column(Integer, default=0)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    total_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    max_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    last_run_at: Mapped[datetime | None]


class ApiToken(Base):
    """A bearer token of the archive API; only its sha256 is stored."""

    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    owner: Mapped[str] = mapped_column(String(200), index=True, comment="User identity, e.g. an e-mail address")
    description: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class TapJob(Base):
    """An asynchronous TAP query (UWS 1.1; services.archive.vo.uws keeps them): kept here, not
    in an API process, so that every process of the archive answers for it and it outlives
    the process that made it. Removed once past its destruction time."""

    __tablename__ = "tap_job"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, comment="The UWS job id (random)")
    owner: Mapped[str | None] = mapped_column(
        String(200), index=True, comment="The token owner who made it; none: anyone who knows the id")
    parameters: Mapped[list[Any]] = mapped_column(JSON, default=list, comment="[name, value] pairs, as sent")
    execution_duration: Mapped[float] = mapped_column(Float, comment="Seconds the query may run")
    phase: Mapped[str] = mapped_column(String(16), default="PENDING",
                                       comment="PENDING, EXECUTING, COMPLETED, ERROR or ABORTED")
    created_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    destruction_at: Mapped[datetime] = mapped_column(index=True, comment="Removed after this time")
    runner: Mapped[str | None] = mapped_column(String(200), comment="host:pid of the API process that ran it")
    result: Mapped[bytes | None] = mapped_column(LargeBinary, comment="The VOTable of a COMPLETED job")
    error: Mapped[str | None] = mapped_column(Text, comment="Why a job in ERROR failed")


class Subscription(Base):
    """What a user wants to hear about, how and how often."""

    __tablename__ = "subscription"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner: Mapped[str] = mapped_column(String(200), index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    filters: Mapped[dict[str, Any]] = mapped_column(
        JSON, default=dict, comment="mission, programs, event_types, suffixes, instruments (lists; empty = any)"
    )
    channel: Mapped[str] = mapped_column(String(16), comment="webhook or email")
    target: Mapped[str] = mapped_column(String(500), comment="URL or e-mail address")
    secret: Mapped[str | None] = mapped_column(String(200), comment="HMAC-SHA256 key of webhook bodies")
    frequency: Mapped[str] = mapped_column(String(16), default="immediate", comment="immediate, hourly, daily, weekly")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]
    last_digest_at: Mapped[datetime | None]
    confirmed_at: Mapped[datetime | None] = mapped_column(
        comment="when the target confirmed it (e-mail: the link was followed); nothing is sent before"
    )
    confirm_token_sha256: Mapped[str | None] = mapped_column(
        String(64), comment="sha256 of the confirmation link's token, while one is out"
    )
    confirm_sent_at: Mapped[datetime | None] = mapped_column(comment="when that link was sent")


class Delivery(Base):
    """One event for one subscription: delivered at most once (unique pair)."""

    __tablename__ = "delivery"
    __table_args__ = (
        UniqueConstraint("subscription_id", "event_id", name="uq_delivery_subscription_event"),
        Index("ix_delivery_due", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subscription_id: Mapped[int] = mapped_column(ForeignKey("subscription.id"), index=True)
    event_id: Mapped[str] = mapped_column(String(64), index=True)
    notification_type: Mapped[str] = mapped_column(String(16), comment="new, first, reprocessed, public, reference")
    status: Mapped[str] = mapped_column(String(16), default="pending", comment="pending, delivered, dead")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    delivered_at: Mapped[datetime | None]
    batch_id: Mapped[str | None] = mapped_column(String(64), comment="Digest that carried it")
    last_error: Mapped[str | None] = mapped_column(Text)


class DeliveryAttempt(Base):
    """Every try at sending a delivery (or a digest batch), successful or not."""

    __tablename__ = "delivery_attempt"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subscription_id: Mapped[int] = mapped_column(ForeignKey("subscription.id"), index=True)
    batch_id: Mapped[str] = mapped_column(String(64), index=True)
    event_ids: Mapped[list[Any]] = mapped_column(JSON, default=list)
    attempted_at: Mapped[datetime]
    ok: Mapped[bool] = mapped_column(Boolean)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    duration_seconds: Mapped[float] = mapped_column(Float, default=0.0)


class ReferenceFile(Base):
    """A delivered calibration reference file (immutable: new content needs a new name)."""

    __tablename__ = "reference_file"
    __table_args__ = (Index("ix_reference_file_lookup", "instrument", "reftype"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    filename: Mapped[str] = mapped_column(String(200), unique=True)
    reftype: Mapped[str] = mapped_column(String(32), comment="REFTYPE, e.g. DARK")
    instrument: Mapped[str] = mapped_column(String(16), comment="INSTRUME, e.g. NIRCAM")
    selectors: Mapped[dict[str, Any]] = mapped_column(
        JSON, comment="Selector keyword -> value or pattern (A|B, ANY, N/A, GENERIC)"
    )
    useafter: Mapped[datetime] = mapped_column(comment="Applies to exposures starting at or after this")
    uri: Mapped[str] = mapped_column(String(500))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    pedigree: Mapped[str] = mapped_column(String(100), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    delivered_at: Mapped[datetime]


class ReferenceContext(Base):
    """One immutable, numbered set of reference files (``dms_NNNN.ctx``)."""

    __tablename__ = "reference_context"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False, comment="Context number")
    name: Mapped[str] = mapped_column(String(32), unique=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("reference_context.id"))
    created_at: Mapped[datetime]
    note: Mapped[str] = mapped_column(Text, default="")

    files: Mapped[list[ReferenceFile]] = relationship(secondary="reference_context_file", viewonly=True)


class ReferenceContextFile(Base):
    """Membership of a reference file in a context."""

    __tablename__ = "reference_context_file"

    context_id: Mapped[int] = mapped_column(ForeignKey("reference_context.id"), primary_key=True)
    reference_file_id: Mapped[int] = mapped_column(ForeignKey("reference_file.id"), primary_key=True, index=True)


class Association(Base):
    """One association of a program (candidate, type, product): which members it needs,
    which it still waits for, and which members the last ASN file emitted for it had.

    A new ASN is emitted only when the member set (filenames and revisions) differs from
    ``members``, so a repeated event emits nothing.
    """

    __tablename__ = "association"
    __table_args__ = (
        UniqueConstraint("program_id", "acid", "asn_type", "product_name", name="uq_association_key"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    program_id: Mapped[str] = mapped_column(ForeignKey("program.id"), index=True)
    acid: Mapped[str] = mapped_column(String(8), comment="Candidate: oNNN, c1NNN or a3NNN")
    asn_type: Mapped[str] = mapped_column(String(16), comment="image2, tso-image2, image3, tso3, ...")
    product_name: Mapped[str] = mapped_column(String(200), comment="Lv2: the exposure id; Lv3: the product name")
    asn_rule: Mapped[str] = mapped_column(String(64), comment="e.g. candidate_Asn_Lv3Image")
    level: Mapped[int] = mapped_column(Integer, comment="2 or 3")
    complete: Mapped[bool] = mapped_column(Boolean, default=False, comment="Every required member exists")
    expected: Mapped[list[Any]] = mapped_column(JSON, default=list, comment="Required member filenames")
    waiting: Mapped[list[Any]] = mapped_column(JSON, default=list, comment="Required members not archived yet")
    members: Mapped[list[Any]] = mapped_column(
        JSON, default=list, comment="[filename, revision, exptype] of each member of the last ASN emitted"
    )
    filename: Mapped[str | None] = mapped_column(String(200), index=True, comment="Last ASN file emitted")
    version_id: Mapped[str | None] = mapped_column(String(16), comment="version_id of the last ASN emitted")
    pool: Mapped[str | None] = mapped_column(String(64), comment="Pool the last ASN was built from")
    product_id: Mapped[int | None] = mapped_column(ForeignKey("product.id"), comment="The archived ASN file")
    emitted_count: Mapped[int] = mapped_column(Integer, default=0, comment="ASNs emitted so far")
    updated_at: Mapped[datetime]
    emitted_at: Mapped[datetime | None]


class WavefrontOpd(Base):
    """A wavefront-sensing OPD file of the observatory (program-independent, public): when
    it was sensed, where, and where the archived file is."""

    __tablename__ = "wavefront_opd"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    filename: Mapped[str] = mapped_column(String(200), unique=True)
    date_obs: Mapped[datetime] = mapped_column(index=True, comment="When the wavefront was sensed (UTC)")
    aperture: Mapped[str] = mapped_column(String(32), comment="Field point, e.g. NRCA3_FP1")
    rms_nm: Mapped[float] = mapped_column(Float, comment="rms OPD over the pupil, nm")
    uri: Mapped[str] = mapped_column(String(500))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    archived_at: Mapped[datetime]


# The archive's case-insensitive criteria compare lower(column) (services/archive/mast.like_any):
# prefix patterns of file names use the btree (text_pattern_ops), other patterns the trigram
# index (PostgreSQL with pg_trgm; migration 0013_search_indexes).
Index("ix_product_lower_suffix", func.lower(Product.suffix))
Index("ix_product_lower_filename", func.lower(Product.filename).label("lower_filename"),
      postgresql_ops={"lower_filename": "text_pattern_ops"})
Index("ix_product_filename_trgm", func.lower(Product.filename).label("lower_filename_trgm"),
      postgresql_using="gin", postgresql_ops={"lower_filename_trgm": "gin_trgm_ops"})


class CaomObservation(Base):
    """One observation row as MAST presents JWST (shared.catalog.caom keeps them): one per
    Level-3 product (``obs_id`` its product name, e.g. ``jw01234-o001_t001_nircam_clear-f200w``)
    and one per exposure and detector (``obs_id`` e.g. ``jw01234001001_02101_00001_nrca1``).
    Maintained in the transaction that registers or supersedes its products."""

    __tablename__ = "caom_observation"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, comment="MAST's obsid (Product Group ID)")
    obs_id: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(16), index=True, comment="exposure or level3")
    program_id: Mapped[str] = mapped_column(ForeignKey("program.id"), index=True)
    observation_id: Mapped[int | None] = mapped_column(
        ForeignKey("observation.id"), index=True, comment="Its (first) program observation")
    exposure_id: Mapped[int | None] = mapped_column(ForeignKey("exposure.id"), unique=True)
    association_id: Mapped[int | None] = mapped_column(
        ForeignKey("association.id"), comment="Level 3: the association that made it")
    calib_level: Mapped[int] = mapped_column(Integer, index=True)
    instrument_name: Mapped[str] = mapped_column(String(64), comment="INSTRUMENT/MODE, e.g. NIRCAM/IMAGE")
    filters: Mapped[str] = mapped_column(String(64))
    target_name: Mapped[str] = mapped_column(String(200), default="")
    dataproduct_type: Mapped[str | None] = mapped_column(String(16))
    s_ra: Mapped[float | None] = mapped_column(Float)
    s_dec: Mapped[float | None] = mapped_column(Float)
    hpx: Mapped[int | None] = mapped_column(
        BigInteger, index=True, comment="HEALPix pixel of (s_ra, s_dec) (shared.catalog.sky): the cone's index")
    s_region: Mapped[str | None] = mapped_column(Text)
    t_min: Mapped[datetime | None]
    t_max: Mapped[datetime | None]
    t_exptime: Mapped[float | None] = mapped_column(Float, comment="Effective exposure time, s")
    em_min: Mapped[float | None] = mapped_column(Float, comment="Shortest wavelength, nm")
    em_max: Mapped[float | None] = mapped_column(Float, comment="Longest wavelength, nm")
    t_obs_release: Mapped[datetime | None] = mapped_column(comment="Latest data release of its current products")
    top_filename: Mapped[str | None] = mapped_column(
        String(200), comment="Its highest-level science product: dataURL, and jpegURL when it has a preview")
    n_products: Mapped[int] = mapped_column(Integer, default=0, comment="Current files of its own")
    updated_at: Mapped[datetime]


class CaomProduct(Base):
    """A file (by name: every revision) in a CAOM row's own product list."""

    __tablename__ = "caom_product"

    caom_id: Mapped[int] = mapped_column(ForeignKey("caom_observation.id", ondelete="CASCADE"), primary_key=True)
    filename: Mapped[str] = mapped_column(String(200), primary_key=True, index=True)


class CaomMember(Base):
    """A Level-3 row's member: the exposure row of one exposure it combines."""

    __tablename__ = "caom_member"

    caom_id: Mapped[int] = mapped_column(ForeignKey("caom_observation.id", ondelete="CASCADE"), primary_key=True)
    member_id: Mapped[int] = mapped_column(
        ForeignKey("caom_observation.id", ondelete="CASCADE"), primary_key=True, index=True)


class CaomObservationLink(Base):
    """Every program observation a CAOM row belongs to (a multi-observation Level-3 product:
    each observation it combines)."""

    __tablename__ = "caom_observation_link"

    caom_id: Mapped[int] = mapped_column(ForeignKey("caom_observation.id", ondelete="CASCADE"), primary_key=True)
    observation_id: Mapped[int] = mapped_column(ForeignKey("observation.id"), primary_key=True, index=True)
