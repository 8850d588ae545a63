"""The object-store interface every backend implements.

Objects are immutable: writing a key that already holds the same bytes is a no-op that
returns the stored object (so a retried task is harmless); writing different bytes to an
existing key is an error, because a new revision must get a new key.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path

__all__ = [
    "BUCKETS",
    "Bucket",
    "ContentMismatchError",
    "ImmutableObjectError",
    "ObjectNotFoundError",
    "ObjectStore",
    "StorageError",
    "StoredObject",
    "sha256_bytes",
    "sha256_file",
]



class Bucket(StrEnum):
    """The buckets of the system (DESIGN §5); a member is its bucket name."""

    RAW = "dms-raw"  # telemetry and plans as delivered, never modified
    ARCHIVE = "dms-archive"  # products
    PREVIEWS = "dms-previews"  # previews and thumbnails
    REFS = "dms-refs"  # calibration reference files
    WORK = "dms-work"  # intermediates of work split across tasks (stage 3's maps), removed after


BUCKETS: tuple[Bucket, ...] = tuple(Bucket)

_CHUNK = 8 * 1024 * 1024


class StorageError(RuntimeError):
    """A storage operation failed; ``retriable`` says whether trying again may help, and
    ``unavailable`` whether the service itself could not be reached or said it is
    unavailable (an outage: nothing about the request is wrong)."""

    retriable = True
    unavailable = False


class ObjectNotFoundError(StorageError):
    retriable = False


class ImmutableObjectError(StorageError):
    """A write would change the bytes of an existing key."""

    retriable = False


class ContentMismatchError(StorageError):
    """An object's bytes are not those its reader expected (the sha256 the catalog
    records): the object itself differs, not its transfer, so reading it again cannot help."""

    retriable = False


@dataclass(frozen=True)
class StoredObject:
    bucket: str
    key: str
    uri: str
    sha256: str
    size: int
    content_type: str = "application/octet-stream"
    created: datetime | None = None  # when the key was first written (objects never change)

    @property
    def filename(self) -> str:
        return self.key.rsplit("/", 1)[-1]


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class ObjectStore(ABC):
    """Buckets of immutable objects addressed by ``(bucket, key)`` or by URI."""

    scheme: str

    @abstractmethod
    def ensure_buckets(self, buckets: tuple[str, ...] = BUCKETS) -> None:
        """Create the buckets that do not exist yet."""

    @abstractmethod
    def put_file(
        self, bucket: str, key: str, path: str | Path, content_type: str = "application/octet-stream",
        *, sha256: str | None = None,
    ) -> StoredObject:
        """Upload a local file (multipart when large) and record its sha256: ``sha256``
        when the caller has just hashed the file (it must not change before it is sent:
        a product is hashed once, not once to name its revision and again here),
        otherwise computed here."""

    @abstractmethod
    def put_bytes(
        self, bucket: str, key: str, data: bytes, content_type: str = "application/octet-stream"
    ) -> StoredObject:
        """Store bytes under a key."""

    @abstractmethod
    def stat(self, bucket: str, key: str) -> StoredObject | None:
        """The stored object, or None when the key does not exist."""

    @abstractmethod
    def remove(self, bucket: str, key: str) -> None:
        """Delete the object (nothing when it does not exist). Objects are immutable: only
        what no catalog row refers to may be removed (a write whose registration failed)."""

    @abstractmethod
    def get_bytes(self, bucket: str, key: str) -> bytes:
        """The whole object; raises ObjectNotFoundError."""

    @abstractmethod
    def download(self, bucket: str, key: str, path: str | Path, *, sha256: str | None = None) -> Path:
        """Copy an object to a local file and return its path. With ``sha256`` (what the
        catalog records), the bytes are hashed as they arrive and must have that digest:
        otherwise :class:`ContentMismatchError`, and no file is left at ``path``."""

    @abstractmethod
    def list_keys(self, bucket: str, prefix: str = "") -> Iterator[str]:
        """Keys under a prefix, in lexical order."""

    @abstractmethod
    def uri(self, bucket: str, key: str) -> str:
        """The URI that names this object in messages and the catalog."""

    @abstractmethod
    def parse_uri(self, uri: str) -> tuple[str, str]:
        """(bucket, key) of a URI this store produced; ValueError otherwise."""

    def exists(self, bucket: str, key: str) -> bool:
        return self.stat(bucket, key) is not None

    def get_uri(self, uri: str) -> bytes:
        return self.get_bytes(*self.parse_uri(uri))

    def download_uri(self, uri: str, path: str | Path, *, sha256: str | None = None) -> Path:
        return self.download(*self.parse_uri(uri), path, sha256=sha256)

    def _mismatch(self, bucket: str, key: str, expected: str, actual: str) -> ContentMismatchError:
        return ContentMismatchError(f"{self.uri(bucket, key)} does not have the expected content (sha256 "
                                    f"{actual[:12]}..., expected {expected[:12]}...)")

    def _check_immutable(self, bucket: str, key: str, sha256: str) -> StoredObject | None:
        """Existing object with the same bytes (write is a no-op), None when the key is
        free; raises ImmutableObjectError when the key holds other bytes."""
        existing = self.stat(bucket, key)
        if existing is None:
            return None
        if existing.sha256 != sha256:
            raise ImmutableObjectError(
                f"{self.uri(bucket, key)} already holds different content "
                f"(sha256 {existing.sha256[:12]}..., new {sha256[:12]}...); write a new revision instead"
            )
        return existing
