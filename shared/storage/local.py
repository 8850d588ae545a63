"""Object store on the local filesystem (the embedded default).

Layout: ``<root>/<bucket>/<key>``; the sha256, size and content type of each object sit
in ``<root>/.meta/<bucket>/<key>.json`` so a stat never rereads the data. Writes go to a
temporary file and are renamed into place, so a crash never leaves half an object.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from shared.storage.base import (
    _CHUNK,
    BUCKETS,
    ObjectNotFoundError,
    ObjectStore,
    StoredObject,
    sha256_bytes,
    sha256_file,
)

__all__ = ["LocalObjectStore"]


class LocalObjectStore(ObjectStore):
    scheme = "file"

    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()

    def _path(self, bucket: str, key: str) -> Path:
        if ".." in Path(key).parts or key.startswith("/"):
            raise ValueError(f"object key {key!r} must be relative and stay inside its bucket")
        return self.root / bucket / key

    def _meta_path(self, bucket: str, key: str) -> Path:
        return self.root / ".meta" / bucket / f"{key}.json"

    def ensure_buckets(self, buckets: tuple[str, ...] = BUCKETS) -> None:
        for b in buckets:
            (self.root / b).mkdir(parents=True, exist_ok=True)

    def _commit(self, bucket: str, key: str, tmp: Path, sha256: str, size: int, content_type: str) -> StoredObject:
        existing = self._check_immutable(bucket, key, sha256)
        if existing is not None:
            tmp.unlink(missing_ok=True)
            return existing
        dest = self._path(bucket, key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        meta = self._meta_path(bucket, key)
        meta.parent.mkdir(parents=True, exist_ok=True)
        created = datetime.now(UTC)
        obj = StoredObject(bucket, key, self.uri(bucket, key), sha256, size, content_type, created)
        # Metadata first: an object without metadata would be unreadable by stat.
        meta_tmp = meta.with_suffix(".json.tmp")
        meta_tmp.write_text(json.dumps({"sha256": sha256, "size": size, "content_type": content_type,
                                        "created": created.isoformat()}))
        os.replace(meta_tmp, meta)
        os.replace(tmp, dest)
        return obj

    def _tempfile(self, bucket: str) -> Path:
        tmpdir = self.root / ".tmp"
        tmpdir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=tmpdir, prefix=f"{bucket}-")
        os.close(fd)
        return Path(name)

    def put_file(self, bucket, key, path, content_type="application/octet-stream", *, sha256=None) -> StoredObject:
        tmp = self._tempfile(bucket)
        shutil.copyfile(path, tmp)
        return self._commit(bucket, key, tmp, sha256 or sha256_file(tmp), tmp.stat().st_size, content_type)

    def put_bytes(self, bucket, key, data, content_type="application/octet-stream") -> StoredObject:
        tmp = self._tempfile(bucket)
        tmp.write_bytes(data)
        return self._commit(bucket, key, tmp, sha256_bytes(data), len(data), content_type)

    def stat(self, bucket: str, key: str) -> StoredObject | None:
        path = self._path(bucket, key)
        if not path.is_file():
            return None
        meta_path = self._meta_path(bucket, key)
        if meta_path.is_file():
            meta = json.loads(meta_path.read_text())
        else:  # placed by hand: describe it from the bytes
            meta = {"sha256": sha256_file(path), "size": path.stat().st_size,
                    "content_type": "application/octet-stream"}
        created = meta.get("created")
        created = datetime.fromisoformat(created) if created else datetime.fromtimestamp(path.stat().st_mtime, UTC)
        return StoredObject(bucket, key, self.uri(bucket, key), meta["sha256"], meta["size"],
                            meta["content_type"], created)

    def remove(self, bucket: str, key: str) -> None:
        self._path(bucket, key).unlink(missing_ok=True)
        self._meta_path(bucket, key).unlink(missing_ok=True)

    def get_bytes(self, bucket: str, key: str) -> bytes:
        path = self._path(bucket, key)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise ObjectNotFoundError(f"no object {self.uri(bucket, key)}") from None

    def download(self, bucket: str, key: str, path, *, sha256: str | None = None) -> Path:
        src = self._path(bucket, key)
        if not src.is_file():
            raise ObjectNotFoundError(f"no object {self.uri(bucket, key)}")
        dest = Path(path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if sha256 is None:
            shutil.copyfile(src, dest)
            return dest
        h = hashlib.sha256()  # hashed as it is copied: the file is read once
        with open(src, "rb") as inp, open(dest, "wb") as out:
            while chunk := inp.read(_CHUNK):
                out.write(chunk)
                h.update(chunk)
        if h.hexdigest() != sha256:
            dest.unlink(missing_ok=True)
            raise self._mismatch(bucket, key, sha256, h.hexdigest())
        return dest

    def local_path(self, bucket: str, key: str) -> Path:
        """The file backing an object (local store only; lets readers skip a copy)."""
        return self._path(bucket, key)

    def list_keys(self, bucket: str, prefix: str = "") -> Iterator[str]:
        base = self.root / bucket
        if not base.is_dir():
            return iter(())
        keys = sorted(
            p.relative_to(base).as_posix() for p in base.rglob("*") if p.is_file()
        )
        return (k for k in keys if k.startswith(prefix))

    def uri(self, bucket: str, key: str) -> str:
        return (self.root / bucket / key).as_uri()

    def parse_uri(self, uri: str) -> tuple[str, str]:
        prefix = self.root.as_uri() + "/"
        if not uri.startswith(prefix):
            raise ValueError(f"{uri!r} is not an object of the local store at {self.root}")
        bucket, _, key = uri[len(prefix):].partition("/")
        if not key:
            raise ValueError(f"{uri!r} names no key")
        return bucket, key
