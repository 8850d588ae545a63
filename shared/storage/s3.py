"""Object store on an S3-compatible service (MinIO in deployment), through the ``minio`` SDK.

URIs are ``s3://<bucket>/<key>``; the endpoint is configuration (``DMS_S3_ENDPOINT``), not
part of the name, so a URI stays valid when the service moves.

Every object carries its sha256 as user metadata (``x-amz-meta-sha256``), computed from the
bytes before they are sent, so :meth:`S3ObjectStore.stat` never rereads the data and every
read can be checked against it.

Immutability follows :mod:`shared.storage.base`: writing the same bytes to an existing key is
a no-op that returns the stored object; different bytes raise ``ImmutableObjectError``.

**The check-then-write race.** The ``minio`` SDK offers no atomic create-if-absent (S3's
``If-None-Match: *`` on PutObject/CompleteMultipartUpload is not exposed by its public API),
so a write is "stat, then upload". Two writers of *different* bytes to the same free key can
both pass the stat and the last upload wins. After every upload the object is stat'ed again and
a writer whose bytes were replaced gets ``ImmutableObjectError``, which narrows the window to
the instant between one writer's check and the other's upload but does not close it. This is
harmless here because keys are deterministic
(``<program>/<observation>/r<revision>/<filename>``): the only concurrent writers of one key
are redeliveries of the same task over the same inputs and revision, which produce the same
bytes, so whichever upload wins stores the same object. A new revision always gets a new key.

Errors from the SDK and from urllib3 become :class:`~shared.storage.base.StorageError` with
``retriable`` set: connection failures, timeouts, 5xx and ``SlowDown`` may succeed later;
a missing key is ``ObjectNotFoundError``; refused credentials, missing buckets and malformed
requests are not retriable. Messages name the endpoint, bucket and key and what to check.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import timedelta
from pathlib import Path

import certifi
import urllib3
from minio import Minio
from minio.error import InvalidResponseError, S3Error, ServerError
from urllib3.exceptions import HTTPError as Urllib3HTTPError
from urllib3.exceptions import MaxRetryError
from urllib3.exceptions import SSLError as Urllib3SSLError

from shared.storage.base import (
    BUCKETS,
    ImmutableObjectError,
    ObjectNotFoundError,
    ObjectStore,
    StorageError,
    StoredObject,
    sha256_bytes,
    sha256_file,
)

__all__ = ["S3ObjectStore"]

MIN_PART_SIZE = 5 * 1024 * 1024  # S3's smallest part (except the last)
MAX_PART_SIZE = 5 * 1024 * 1024 * 1024
MAX_PRESIGN_SECONDS = 7 * 24 * 3600  # SigV4 presigned URLs live at most 7 days

_SHA256_META = "sha256"  # sent as x-amz-meta-sha256
_SHA256_HEADER = "x-amz-meta-sha256"
_STREAM_CHUNK = 1024 * 1024
_CONNECT_TIMEOUT = 10.0  # seconds; a dead endpoint fails fast
_READ_TIMEOUT = 300.0  # seconds; a large part may take a while on a busy server

# S3 error codes worth retrying: throttling and transient server trouble.
_RETRIABLE_CODES = frozenset({
    "SlowDown", "SlowDownRead", "SlowDownWrite", "ServiceUnavailable", "InternalError",
    "RequestTimeout", "OperationAborted", "XMinioServerNotInitialized",
})
_CREDENTIAL_CODES = frozenset({
    "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled",
    "AccountProblem", "ExpiredToken", "InvalidToken",
})


def _error(message: str, *, retriable: bool, cls: type[StorageError] = StorageError,
           unavailable: bool = False) -> StorageError:
    err = cls(message)
    err.retriable, err.unavailable = retriable, unavailable
    return err


def _check_key(key: str) -> None:
    """Keys are relative POSIX paths with no empty, '.' or '..' parts (so they mean the
    same thing on every backend and never escape their bucket)."""
    if not key:
        raise ValueError("object key must not be empty")
    parts = key.split("/")
    if key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(
            f"object key {key!r} must be relative, with no empty, '.' or '..' parts"
        )


class S3ObjectStore(ObjectStore):
    """Immutable objects on an S3-compatible service.

    Parameters
    ----------
    endpoint
        ``host:port`` of the service (``http://`` or ``https://`` in front is accepted and
        sets ``secure``).
    access_key, secret_key
        Credentials (``DMS_S3_ACCESS_KEY`` / ``DMS_S3_SECRET_KEY``).
    secure
        Use HTTPS.
    region
        Region to sign for; given explicitly so the client never has to ask the service
        (presigning stays offline).
    part_size
        Multipart part size in bytes (5 MiB .. 5 GiB). Files larger than this are uploaded
        in parts; up to three parts are held in memory at once while uploading.
    public_endpoint
        ``host:port`` (or URL) clients outside the deployment use to reach the service, for
        presigned URLs only; a presigned URL's signature covers the host, so it must be signed
        for the name the downloader will use. Default: ``endpoint``.
    """

    scheme = "s3"

    def __init__(
        self,
        endpoint: str,
        access_key: str,
        secret_key: str,
        secure: bool = False,
        region: str = "us-east-1",
        part_size: int = 16 * 1024 * 1024,
        *,
        public_endpoint: str | None = None,
    ):
        if not MIN_PART_SIZE <= part_size <= MAX_PART_SIZE:
            raise ValueError(
                f"part_size {part_size} is outside S3's limits "
                f"[{MIN_PART_SIZE}, {MAX_PART_SIZE}] bytes (DMS_S3_PART_SIZE)"
            )
        self.endpoint, self.secure = self._split_endpoint(endpoint, secure)
        self.region = region
        self.part_size = part_size
        self._client = self._make_client(self.endpoint, self.secure, access_key, secret_key, region)
        if public_endpoint:
            pub, pub_secure = self._split_endpoint(public_endpoint, self.secure)
            self._presign_client = self._make_client(pub, pub_secure, access_key, secret_key, region)
        else:
            self._presign_client = self._client

    def __repr__(self) -> str:
        scheme = "https" if self.secure else "http"
        return f"S3ObjectStore({scheme}://{self.endpoint}, region={self.region!r})"

    @staticmethod
    def _split_endpoint(endpoint: str, secure: bool) -> tuple[str, bool]:
        for prefix, is_secure in (("https://", True), ("http://", False)):
            if endpoint.startswith(prefix):
                return endpoint[len(prefix):].rstrip("/"), is_secure
        return endpoint.rstrip("/"), secure

    @staticmethod
    def _make_client(endpoint: str, secure: bool, access_key: str, secret_key: str, region: str) -> Minio:
        # Like the SDK's default pool, but a dead endpoint fails in seconds rather than
        # minutes, and the last 5xx reaches us as an S3 error (code, message) rather than
        # an opaque MaxRetryError.
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=_CONNECT_TIMEOUT, read=_READ_TIMEOUT),
            maxsize=10,
            cert_reqs="CERT_REQUIRED",
            ca_certs=os.environ.get("SSL_CERT_FILE") or certifi.where(),
            retries=urllib3.Retry(
                total=3, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504],
                raise_on_status=False,
            ),
        )
        return Minio(endpoint, access_key=access_key, secret_key=secret_key, secure=secure,
                     region=region, http_client=http)

    # -- naming -----------------------------------------------------------------------

    def uri(self, bucket: str, key: str) -> str:
        return f"s3://{bucket}/{key}"

    def parse_uri(self, uri: str) -> tuple[str, str]:
        if not uri.startswith("s3://"):
            scheme = uri.split("://", 1)[0] + "://" if "://" in uri else "no scheme"
            raise ValueError(f"{uri!r} is not an S3 URI (expected s3://<bucket>/<key>, got {scheme})")
        bucket, _, key = uri[len("s3://"):].partition("/")
        if not bucket or not key:
            raise ValueError(f"{uri!r} must name a bucket and a key: s3://<bucket>/<key>")
        _check_key(key)
        return bucket, key

    def _where(self, bucket: str, key: str | None) -> str:
        name = self.uri(bucket, key) if key is not None else f"bucket {bucket!r}"
        return f"{name} at {self.endpoint}"

    # -- errors -----------------------------------------------------------------------

    @contextmanager
    def _translate(self, action: str, bucket: str, key: str | None = None, *, reading: bool = False):
        """Turn SDK and transport errors raised inside the block into StorageError."""
        try:
            yield
        except S3Error as exc:
            raise self._from_s3_error(exc, action, bucket, key, reading) from exc
        except ServerError as exc:
            raise _error(
                f"{action} {self._where(bucket, key)}: server answered HTTP {exc.status_code}",
                retriable=exc.status_code >= 500 or exc.status_code == 429, unavailable=exc.status_code == 503,
            ) from exc
        except InvalidResponseError as exc:
            status = getattr(exc, "_code", 0) or 0
            raise _error(
                f"{action} {self._where(bucket, key)}: the service gave a non-S3 answer "
                f"(HTTP {status}); is DMS_S3_ENDPOINT={self.endpoint} an S3 service? ({exc})",
                retriable=status >= 500 or status == 429, unavailable=status == 503,
            ) from exc
        except Urllib3HTTPError as exc:
            reason = exc.reason if isinstance(exc, MaxRetryError) else exc
            if isinstance(reason, Urllib3SSLError):
                raise _error(
                    f"{action} {self._where(bucket, key)}: TLS failed ({reason}); "
                    f"check DMS_S3_SECURE (now {self.secure}) and the server certificate",
                    retriable=False,
                ) from exc
            raise _error(
                f"{action} {self._where(bucket, key)}: cannot talk to the S3 service ({reason}); "
                f"is it running and is DMS_S3_ENDPOINT={self.endpoint} right?",
                retriable=True, unavailable=True,
            ) from exc

    def _from_s3_error(
        self, exc: S3Error, action: str, bucket: str, key: str | None, reading: bool
    ) -> StorageError:
        code = exc.code or "UnknownError"
        where = self._where(bucket, key)
        status = getattr(exc.response, "status", 0) or 0
        if code == "NoSuchKey":
            return _error(f"no object {where}", retriable=False, cls=ObjectNotFoundError)
        if code == "NoSuchBucket":
            return _error(
                f"{action} {where}: bucket {bucket!r} does not exist; create the buckets with "
                f"`dms storage init`", retriable=False,
                cls=ObjectNotFoundError if reading else StorageError,
            )
        if code in _CREDENTIAL_CODES:
            return _error(
                f"{action} {where}: the service refused the request ({code}: {exc.message}); "
                f"check DMS_S3_ACCESS_KEY / DMS_S3_SECRET_KEY and the bucket policy",
                retriable=False,
            )
        if code == "RequestTimeTooSkewed":
            return _error(
                f"{action} {where}: this host's clock differs too much from the service's; "
                f"synchronise it (NTP)", retriable=False,
            )
        retriable = code in _RETRIABLE_CODES or status >= 500 or status == 429
        hint = "; it may succeed later" if retriable else ""
        return _error(f"{action} {where}: {code}: {exc.message}{hint}", retriable=retriable,
                      unavailable=status == 503)

    # -- buckets ----------------------------------------------------------------------

    def ensure_buckets(self, buckets: tuple[str, ...] = BUCKETS) -> None:
        for bucket in buckets:
            with self._translate("creating", bucket):
                if self._client.bucket_exists(bucket):
                    continue
                try:
                    self._client.make_bucket(bucket)
                except S3Error as exc:
                    if exc.code != "BucketAlreadyOwnedByYou":  # lost a harmless race
                        raise

    # -- writes -----------------------------------------------------------------------

    def put_file(
        self, bucket: str, key: str, path: str | Path, content_type: str = "application/octet-stream",
        *, sha256: str | None = None,
    ) -> StoredObject:
        """Upload a file, multipart when larger than ``part_size``.

        The file is read twice: once to hash it (unless the caller gives ``sha256``),
        once to send it. It must not change in between.
        """
        _check_key(key)
        path = Path(path)
        sha256 = sha256 or sha256_file(path)
        size = path.stat().st_size
        existing = self._check_immutable(bucket, key, sha256)
        if existing is not None:
            return existing
        with self._translate("uploading", bucket, key):
            self._client.fput_object(
                bucket, key, str(path), content_type=content_type,
                metadata={_SHA256_META: sha256}, part_size=self.part_size,
            )
        return self._confirm(bucket, key, sha256, size, content_type)

    def put_bytes(
        self, bucket: str, key: str, data: bytes, content_type: str = "application/octet-stream"
    ) -> StoredObject:
        _check_key(key)
        sha256 = sha256_bytes(data)
        existing = self._check_immutable(bucket, key, sha256)
        if existing is not None:
            return existing
        with self._translate("uploading", bucket, key):
            self._client.put_object(
                bucket, key, io.BytesIO(data), len(data), content_type=content_type,
                metadata={_SHA256_META: sha256}, part_size=self.part_size,
            )
        return self._confirm(bucket, key, sha256, len(data), content_type)

    def _confirm(self, bucket: str, key: str, sha256: str, size: int, content_type: str) -> StoredObject:
        """Stat after upload: detects a concurrent writer whose different bytes replaced ours
        (see the module docstring on the check-then-write race)."""
        stored = self.stat(bucket, key)
        if stored is None:
            raise _error(f"uploaded {self._where(bucket, key)} but cannot see it yet", retriable=True)
        if stored.sha256 != sha256 or stored.size != size:
            raise ImmutableObjectError(
                f"{self.uri(bucket, key)} was written concurrently with different content "
                f"(sha256 {stored.sha256[:12]}..., ours {sha256[:12]}...); the key now holds the "
                f"other writer's bytes. Outputs of one task must be deterministic."
            )
        return stored

    # -- reads ------------------------------------------------------------------------

    def stat(self, bucket: str, key: str) -> StoredObject | None:
        """The stored object, or None when the key (or its bucket) does not exist.

        The sha256 comes from the object's ``x-amz-meta-sha256`` metadata. An object
        written by something other than this class (``mc cp``, the console) lacks it;
        its sha256 is then computed by streaming the whole object, which costs a full read
        on every stat of that object.
        """
        _check_key(key)
        try:
            with self._translate("inspecting", bucket, key, reading=True):
                info = self._client.stat_object(bucket, key)
        except ObjectNotFoundError:
            return None
        sha256 = info.metadata.get(_SHA256_HEADER) if info.metadata is not None else None
        if not sha256:
            sha256 = self._stream_sha256(bucket, key)
        return StoredObject(
            bucket, key, self.uri(bucket, key), sha256, int(info.size or 0),
            info.content_type or "application/octet-stream", created=info.last_modified,
        )

    def remove(self, bucket: str, key: str) -> None:
        _check_key(key)
        with self._translate("removing", bucket, key):
            self._client.remove_object(bucket, key)

    def _stream_sha256(self, bucket: str, key: str) -> str:
        h = hashlib.sha256()
        with self._open(bucket, key) as response:
            with self._translate("reading", bucket, key, reading=True):
                for chunk in response.stream(_STREAM_CHUNK):
                    h.update(chunk)
        return h.hexdigest()

    @contextmanager
    def _open(self, bucket: str, key: str):
        """A GET response, closed and its connection returned to the pool afterwards."""
        _check_key(key)
        with self._translate("reading", bucket, key, reading=True):
            response = self._client.get_object(bucket, key)
        try:
            yield response
        finally:
            response.close()
            response.release_conn()

    def _verify(self, bucket: str, key: str, expected: str | None, actual: str) -> None:
        if expected and expected != actual:
            raise _error(
                f"reading {self._where(bucket, key)}: received bytes have sha256 {actual[:12]}..., "
                f"the object records {expected[:12]}...; the transfer was corrupted",
                retriable=True,
            )

    def get_bytes(self, bucket: str, key: str) -> bytes:
        """The whole object in memory (for small objects: ASN JSON, plans, previews);
        use :meth:`download` for products. Checked against the recorded sha256."""
        with self._open(bucket, key) as response:
            with self._translate("reading", bucket, key, reading=True):
                data = response.read()
            self._verify(bucket, key, response.headers.get(_SHA256_HEADER), sha256_bytes(data))
        return data

    def download(self, bucket: str, key: str, path: str | Path, *, sha256: str | None = None) -> Path:
        """Stream an object to ``path`` (1 MiB at a time, never whole in memory), checked
        against the recorded sha256 (a corrupted transfer: retriable) and against
        ``sha256`` when given (another object than the caller's: ContentMismatchError).
        The file appears atomically: it is written beside the destination and renamed, so
        a failed transfer leaves no partial file."""
        dest = Path(path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
        tmp = Path(tmp_name)
        try:
            h = hashlib.sha256()
            with os.fdopen(fd, "wb") as out, self._open(bucket, key) as response:
                with self._translate("reading", bucket, key, reading=True):
                    for chunk in response.stream(_STREAM_CHUNK):
                        out.write(chunk)
                        h.update(chunk)
                self._verify(bucket, key, response.headers.get(_SHA256_HEADER), h.hexdigest())
            if sha256 and h.hexdigest() != sha256:
                raise self._mismatch(bucket, key, sha256, h.hexdigest())
            os.replace(tmp, dest)
        except BaseException:
            with suppress(FileNotFoundError):
                tmp.unlink()
            raise
        return dest

    def list_keys(self, bucket: str, prefix: str = "") -> Iterator[str]:
        """Every key under ``prefix`` (recursively), sorted. The listing is complete before
        this returns, so errors surface here rather than mid-iteration."""
        with self._translate("listing", bucket, prefix or None):
            keys = [
                obj.object_name
                for obj in self._client.list_objects(bucket, prefix=prefix or None, recursive=True)
                if obj.object_name and not obj.is_dir
            ]
        return iter(sorted(keys))

    def presigned_get_url(self, bucket: str, key: str, expires_seconds: int = 3600) -> str:
        """A URL anyone holding it can GET the object with, for ``expires_seconds``
        (1 s .. 7 days). Signed offline (no request to the service) for
        ``public_endpoint``; it does not check that the object exists."""
        _check_key(key)
        if not 1 <= expires_seconds <= MAX_PRESIGN_SECONDS:
            raise ValueError(f"expires_seconds must be in [1, {MAX_PRESIGN_SECONDS}], got {expires_seconds}")
        with self._translate("presigning", bucket, key):
            return self._presign_client.presigned_get_object(
                bucket, key, expires=timedelta(seconds=expires_seconds)
            )
