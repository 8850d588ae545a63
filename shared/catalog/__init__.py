"""The archive catalog: SQLAlchemy models, queries and Alembic migrations."""

from shared.catalog.db import Catalog, upgrade
from shared.catalog.models import (
    Artifact,
    Base,
    EventRecord,
    Exposure,
    IngestRejection,
    Observation,
    Product,
    Program,
    TaskFailure,
)

__all__ = [
    "Artifact",
    "Base",
    "Catalog",
    "EventRecord",
    "Exposure",
    "IngestRejection",
    "Observation",
    "Product",
    "Program",
    "TaskFailure",
    "upgrade",
]
