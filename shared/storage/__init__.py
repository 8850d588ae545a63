"""Object storage: one interface, an S3 backend and a local-filesystem backend."""

from shared.storage.base import (
    BUCKETS,
    Bucket,
    ContentMismatchError,
    ImmutableObjectError,
    ObjectNotFoundError,
    ObjectStore,
    StorageError,
    StoredObject,
    sha256_bytes,
    sha256_file,
)
from shared.storage.factory import open_store

__all__ = [
    "BUCKETS",
    "Bucket",
    "ContentMismatchError",
    "ImmutableObjectError",
    "ObjectNotFoundError",
    "ObjectStore",
    "StorageError",
    "StoredObject",
    "open_store",
    "sha256_bytes",
    "sha256_file",
]
