"""The archive catalog: SQLAlchemy models, queries and Alembic migrations."""

from shared.catalog.db import Catalog, upgrade
from shared.catalog.models import (
    ApiToken,
    Artifact,
    Base,
    Delivery,
    DeliveryAttempt,
    EventRecord,
    Exposure,
    IngestRejection,
    Observation,
    Product,
    Program,
    ReferenceContext,
    ReferenceContextFile,
    ReferenceFile,
    Subscription,
    TaskFailure,
    TaskStat,
)

__all__ = [
    "ApiToken",
    "Artifact",
    "Base",
    "Delivery",
    "DeliveryAttempt",
    "Catalog",
    "EventRecord",
    "Exposure",
    "IngestRejection",
    "Observation",
    "Product",
    "Program",
    "ReferenceContext",
    "ReferenceContextFile",
    "ReferenceFile",
    "Subscription",
    "TaskFailure",
    "TaskStat",
    "upgrade",
]
