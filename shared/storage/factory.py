"""Open the object store the settings name."""

from __future__ import annotations

from shared.config import Settings
from shared.storage.base import ObjectStore

__all__ = ["open_store"]


def open_store(settings: Settings) -> ObjectStore:
    if settings.store == "s3":
        from shared.storage.s3 import S3ObjectStore

        return S3ObjectStore(
            endpoint=settings.s3_endpoint,
            access_key=settings.s3_access_key,
            secret_key=settings.s3_secret_key,
            secure=settings.s3_secure,
            region=settings.s3_region,
            part_size=settings.s3_part_size,
            public_endpoint=settings.s3_public_endpoint,
        )
    from shared.storage.local import LocalObjectStore

    return LocalObjectStore(settings.resolved_store_root)
