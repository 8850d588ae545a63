"""The object-store contract, run against both backends (local filesystem and S3).

The S3 cases run against a real S3-protocol server on loopback (``tests/s3server.py``:
moto's standalone server, or a disposable MinIO named by ``DMS_TEST_S3_ENDPOINT``) and are
marked ``integration``.
"""

from __future__ import annotations

import hashlib
import io
import os
import socket
import urllib.request
from pathlib import Path

import pytest
from minio.error import S3Error

from shared.storage.base import (
    BUCKETS,
    Bucket,
    ContentMismatchError,
    ImmutableObjectError,
    ObjectNotFoundError,
    ObjectStore,
    StorageError,
    sha256_bytes,
    sha256_file,
)
from shared.storage.local import LocalObjectStore
from shared.storage.s3 import MIN_PART_SIZE, S3ObjectStore

MiB = 1024 * 1024
RAW, ARCHIVE = Bucket.RAW, Bucket.ARCHIVE
KEY = "01234/001/r1/jw01234001001_02101_00001_nrca1_uncal.fits"


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.integration)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "local":
        local = LocalObjectStore(tmp_path / "objects")
        local.ensure_buckets()
        return local
    return request.getfixturevalue("s3_store")


def _write(path: Path, size: int, seed: int = 0) -> Path:
    """A file of pseudo-random bytes (incompressible, reproducible)."""
    block = hashlib.sha256(str(seed).encode()).digest() * (MiB // 32)
    with open(path, "wb") as f:
        remaining = size
        i = 0
        while remaining > 0:
            chunk = hashlib.sha256(block[:64] + i.to_bytes(8, "big")).digest() + block
            f.write(chunk[:remaining])
            remaining -= len(chunk[:remaining])
            i += 1
    return path


# -- the contract, both backends ------------------------------------------------------


def test_put_bytes_records_sha256_size_and_type(store: ObjectStore):
    data = b'{"asn_type": "image3"}'
    obj = store.put_bytes(ARCHIVE, "01234/001/r1/a_asn.json", data, content_type="application/json")
    assert (obj.bucket, obj.key, obj.filename) == (ARCHIVE, "01234/001/r1/a_asn.json", "a_asn.json")
    assert obj.sha256 == sha256_bytes(data)
    assert obj.size == len(data)
    assert obj.content_type == "application/json"
    assert store.stat(ARCHIVE, obj.key) == obj
    assert store.get_bytes(ARCHIVE, obj.key) == data
    assert store.exists(ARCHIVE, obj.key)


def test_put_file_then_download(store: ObjectStore, tmp_path: Path):
    src = _write(tmp_path / "in.fits", 100_000)
    obj = store.put_file(RAW, KEY, src)
    assert obj.sha256 == sha256_file(src) and obj.size == 100_000
    dest = store.download(RAW, KEY, tmp_path / "out" / "deeper" / "copy.fits")
    assert dest == tmp_path / "out" / "deeper" / "copy.fits"
    assert dest.read_bytes() == src.read_bytes()


def test_a_file_hashed_by_its_writer_is_stored_under_that_hash(store: ObjectStore, tmp_path: Path):
    """The writer that has just hashed a file (to name its revision) passes the digest:
    the object records it, and the file is not hashed again."""
    src = _write(tmp_path / "in.fits", 100_000)
    sha = sha256_file(src)
    obj = store.put_file(ARCHIVE, KEY, src, sha256=sha)
    assert obj.sha256 == sha and store.stat(ARCHIVE, KEY).sha256 == sha
    assert store.put_file(ARCHIVE, KEY, src, sha256=sha) == obj  # the same bytes again: nothing to do


def test_download_checks_the_expected_sha256_as_it_arrives(store: ObjectStore, tmp_path: Path):
    """A reader that knows the digest (the catalog's) gets the file when the object has
    it, and ContentMismatchError (not retriable, nothing left behind) when it is another
    object's content."""
    src = _write(tmp_path / "in.fits", 3 * MiB + 17)
    obj = store.put_file(RAW, KEY, src)
    dest = store.download(RAW, KEY, tmp_path / "ok.fits", sha256=obj.sha256)
    assert dest.read_bytes() == src.read_bytes()
    with pytest.raises(ContentMismatchError, match="does not have the expected content") as caught:
        store.download_uri(obj.uri, tmp_path / "bad.fits", sha256="0" * 64)
    assert not caught.value.retriable
    assert not (tmp_path / "bad.fits").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".bad")] == []


def test_download_replaces_an_existing_file(store: ObjectStore, tmp_path: Path):
    store.put_bytes(RAW, "a/b.bin", b"new")
    dest = tmp_path / "b.bin"
    dest.write_bytes(b"old, longer content")
    store.download(RAW, "a/b.bin", dest)
    assert dest.read_bytes() == b"new"


def test_empty_object(store: ObjectStore):
    obj = store.put_bytes(RAW, "empty.bin", b"")
    assert obj.size == 0 and obj.sha256 == sha256_bytes(b"")
    assert store.get_bytes(RAW, "empty.bin") == b""


def test_list_keys_sorted_recursive_and_prefixed(store: ObjectStore):
    keys = ["02000/001/r1/z.fits", "01234/002/r1/a.fits", "01234/001/r2/b.fits",
            "01234/001/r1/c.fits", "01234/001/r1/sub/d.fits"]
    for k in keys:
        store.put_bytes(ARCHIVE, k, k.encode())
    store.put_bytes(RAW, "01234/001/r1/other-bucket.fits", b"x")
    assert list(store.list_keys(ARCHIVE)) == sorted(keys)
    assert list(store.list_keys(ARCHIVE, "01234/001/")) == [
        "01234/001/r1/c.fits", "01234/001/r1/sub/d.fits", "01234/001/r2/b.fits"]
    assert list(store.list_keys(ARCHIVE, "99999/")) == []
    assert list(store.list_keys("dms-previews")) == []


def test_same_bytes_again_is_a_noop(store: ObjectStore, tmp_path: Path):
    first = store.put_bytes(ARCHIVE, KEY, b"payload")
    assert store.put_bytes(ARCHIVE, KEY, b"payload") == first
    src = tmp_path / "same"
    src.write_bytes(b"payload")
    assert store.put_file(ARCHIVE, KEY, src) == first
    assert list(store.list_keys(ARCHIVE)) == [KEY]


def test_different_bytes_are_refused(store: ObjectStore, tmp_path: Path):
    store.put_bytes(ARCHIVE, KEY, b"revision one")
    with pytest.raises(ImmutableObjectError, match="new revision") as err:
        store.put_bytes(ARCHIVE, KEY, b"revision two")
    assert err.value.retriable is False
    src = tmp_path / "other"
    src.write_bytes(b"revision two")
    with pytest.raises(ImmutableObjectError):
        store.put_file(ARCHIVE, KEY, src)
    assert store.get_bytes(ARCHIVE, KEY) == b"revision one"


def test_missing_object(store: ObjectStore, tmp_path: Path):
    assert store.stat(ARCHIVE, "no/such.fits") is None
    assert not store.exists(ARCHIVE, "no/such.fits")
    with pytest.raises(ObjectNotFoundError) as err:
        store.get_bytes(ARCHIVE, "no/such.fits")
    assert err.value.retriable is False
    assert "no/such.fits" in str(err.value)
    with pytest.raises(ObjectNotFoundError):
        store.download(ARCHIVE, "no/such.fits", tmp_path / "x.fits")
    assert not (tmp_path / "x.fits").exists()
    assert list(tmp_path.glob("*.part")) == []


def test_large_file_round_trips(store: ObjectStore, tmp_path: Path):
    # ~12 MiB with a ragged tail: three parts at the S3 fixture's 5 MiB part size.
    src = _write(tmp_path / "big.fits", 12 * MiB + 12345, seed=1)
    obj = store.put_file(RAW, KEY, src)
    assert obj.sha256 == sha256_file(src) and obj.size == src.stat().st_size
    assert store.stat(RAW, KEY) == obj
    dest = store.download(RAW, KEY, tmp_path / "back.fits")
    assert sha256_file(dest) == obj.sha256
    assert store.put_file(RAW, KEY, src) == obj  # idempotent re-put of a multipart object


def test_uri_round_trip(store: ObjectStore, tmp_path: Path):
    obj = store.put_bytes(ARCHIVE, KEY, b"abc")
    assert obj.uri == store.uri(ARCHIVE, KEY)
    assert obj.uri.startswith(f"{store.scheme}://")
    assert store.parse_uri(obj.uri) == (ARCHIVE, KEY)
    assert store.get_uri(obj.uri) == b"abc"
    assert store.download_uri(obj.uri, tmp_path / "f").read_bytes() == b"abc"


def test_foreign_and_malformed_uris_are_rejected(store: ObjectStore, tmp_path: Path):
    foreign = ("file:///tmp/dms-raw/a.fits" if store.scheme == "s3"
               else f"s3://{RAW}/a.fits")
    no_key = store.uri(RAW, "a.fits").rsplit("/", 1)[0] + "/"
    for bad in (foreign, "", "dms-raw/a.fits", "https://example.org/dms-raw/a.fits", no_key):
        with pytest.raises(ValueError):
            store.parse_uri(bad)


@pytest.mark.parametrize("key", ["../escape.fits", "a/../../escape.fits", "/abs/key.fits"])
def test_keys_cannot_escape_their_bucket(store: ObjectStore, key: str):
    with pytest.raises(ValueError):
        store.put_bytes(ARCHIVE, key, b"x")


def test_ensure_buckets_is_idempotent(store: ObjectStore):
    store.ensure_buckets()
    store.ensure_buckets(BUCKETS)
    for bucket in BUCKETS:
        store.put_bytes(bucket, "probe", b"ok")
        assert store.get_bytes(bucket, "probe") == b"ok"


# -- S3 only --------------------------------------------------------------------------


@pytest.mark.integration
def test_s3_uses_multipart_and_records_sha256_metadata(s3_store: S3ObjectStore, s3_server, tmp_path):
    src = _write(tmp_path / "big.fits", 12 * MiB, seed=2)
    obj = s3_store.put_file(RAW, KEY, src)
    info = s3_server.client().stat_object(RAW, KEY)
    assert info.etag.endswith("-3"), f"expected a 3-part upload, etag {info.etag}"
    assert info.metadata["x-amz-meta-sha256"] == obj.sha256 == sha256_file(src)


@pytest.mark.integration
def test_s3_small_file_is_a_single_put(s3_store: S3ObjectStore, s3_server, tmp_path):
    src = _write(tmp_path / "small.fits", MIN_PART_SIZE - 1)
    s3_store.put_file(RAW, KEY, src)
    assert "-" not in s3_server.client().stat_object(RAW, KEY).etag


@pytest.mark.integration
def test_s3_presigned_url_downloads(s3_store: S3ObjectStore):
    obj = s3_store.put_bytes(ARCHIVE, KEY, b"science!")
    url = s3_store.presigned_get_url(ARCHIVE, KEY, expires_seconds=300)
    assert url.startswith(f"http://{s3_store.endpoint}/{ARCHIVE}/")
    assert "X-Amz-Signature=" in url and "X-Amz-Expires=300" in url
    with urllib.request.urlopen(url, timeout=10) as response:
        body = response.read()
    assert sha256_bytes(body) == obj.sha256
    with pytest.raises(ValueError):
        s3_store.presigned_get_url(ARCHIVE, KEY, expires_seconds=8 * 24 * 3600)


def test_s3_presigned_url_for_public_endpoint_needs_no_server():
    store = S3ObjectStore("minio:9000", "ak", "sk", public_endpoint="https://data.example.org")
    url = store.presigned_get_url(ARCHIVE, KEY, expires_seconds=60)
    assert url.startswith(f"https://data.example.org/{ARCHIVE}/01234/001/r1/")


@pytest.mark.integration
def test_s3_object_without_sha256_metadata_is_hashed_on_stat(s3_store, s3_server):
    data = b"placed with mc cp"
    s3_server.client().put_object(RAW, "manual.bin", io.BytesIO(data), len(data))
    obj = s3_store.stat(RAW, "manual.bin")
    assert obj is not None and obj.sha256 == sha256_bytes(data) and obj.size == len(data)
    assert s3_store.put_bytes(RAW, "manual.bin", data) == obj


@pytest.mark.integration
def test_s3_corrupted_transfer_is_detected(s3_store, s3_server, tmp_path):
    data = b"bytes that do not match their recorded checksum"
    s3_server.client().put_object(RAW, "bad.bin", io.BytesIO(data), len(data),
                                  metadata={"sha256": "0" * 64})
    with pytest.raises(StorageError, match="corrupted") as err:
        s3_store.get_bytes(RAW, "bad.bin")
    assert err.value.retriable is True
    with pytest.raises(StorageError, match="corrupted"):
        s3_store.download(RAW, "bad.bin", tmp_path / "bad.bin")
    assert os.listdir(tmp_path) == []


@pytest.mark.integration
def test_s3_concurrent_writer_of_other_bytes_is_detected(s3_store, s3_server, monkeypatch):
    # Another writer replaces our bytes between our upload and our confirming stat.
    raw, upload = s3_server.client(), s3_store._client.put_object

    def upload_then_overwritten(bucket, key, *args, **kwargs):
        result = upload(bucket, key, *args, **kwargs)
        raw.put_object(bucket, key, io.BytesIO(b"theirs"), 6,
                       metadata={"sha256": sha256_bytes(b"theirs")})
        return result

    monkeypatch.setattr(s3_store._client, "put_object", upload_then_overwritten)
    with pytest.raises(ImmutableObjectError, match="concurrently"):
        s3_store.put_bytes(ARCHIVE, KEY, b"ours")


@pytest.mark.integration
def test_s3_missing_bucket_is_explained(s3_store):
    with pytest.raises(ObjectNotFoundError, match="dms storage init"):
        s3_store.get_bytes("no-such-bucket", "a.fits")
    with pytest.raises(StorageError, match="does not exist") as err:
        s3_store.put_bytes("no-such-bucket", "a.fits", b"x")
    assert err.value.retriable is False
    assert s3_store.stat("no-such-bucket", "a.fits") is None


@pytest.mark.integration
def test_s3_unreachable_endpoint_is_retriable():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    store = S3ObjectStore(f"127.0.0.1:{port}", "ak", "sk")
    with pytest.raises(StorageError) as err:
        store.get_bytes(RAW, KEY)
    assert err.value.retriable is True and err.value.unavailable is True  # an outage: waited out, never spent
    assert f"127.0.0.1:{port}" in str(err.value) and "DMS_S3_ENDPOINT" in str(err.value)


def test_s3_uri_parsing_without_a_server():
    store = S3ObjectStore("127.0.0.1:9", "ak", "sk")
    assert store.uri(RAW, KEY) == f"s3://{RAW}/{KEY}"
    assert store.parse_uri(f"s3://{RAW}/{KEY}") == (RAW, KEY)
    for bad in ("s3://", "s3://bucket", "s3:///key", "s3://b/a/../../x", "s3://b/a//x"):
        with pytest.raises(ValueError):
            store.parse_uri(bad)
    with pytest.raises(ValueError, match="not an S3 URI"):
        store.parse_uri("file:///var/objects/dms-raw/a.fits")


def test_s3_rejects_illegal_part_size():
    with pytest.raises(ValueError, match="DMS_S3_PART_SIZE"):
        S3ObjectStore("127.0.0.1:9", "ak", "sk", part_size=MiB)


@pytest.mark.parametrize(
    ("code", "status", "error", "retriable"),
    [
        ("SlowDown", 503, StorageError, True),
        ("InternalError", 500, StorageError, True),
        ("RequestTimeout", 400, StorageError, True),
        ("SomethingNew", 502, StorageError, True),
        ("NoSuchKey", 404, ObjectNotFoundError, False),
        ("AccessDenied", 403, StorageError, False),
        ("InvalidAccessKeyId", 403, StorageError, False),
        ("SignatureDoesNotMatch", 403, StorageError, False),
        ("InvalidBucketName", 400, StorageError, False),
    ],
)
def test_s3_error_classification(code, status, error, retriable):
    class _Response:
        pass

    response = _Response()
    response.status = status
    store = S3ObjectStore("127.0.0.1:9", "ak", "sk")
    with pytest.raises(error) as err:
        with store._translate("reading", ARCHIVE, KEY):
            raise S3Error(response, code, "message", "/r", "req", "host")
    assert type(err.value) is error
    assert err.value.retriable is retriable
    assert err.value.unavailable is (status == 503)  # the service says it is unavailable (a restart, throttling)
    assert f"s3://{ARCHIVE}/{KEY}" in str(err.value) and "127.0.0.1:9" in str(err.value)
    if code == "AccessDenied":
        assert "DMS_S3_ACCESS_KEY" in str(err.value)


def test_remove_deletes_the_object_and_is_quiet_when_there_is_none(store: ObjectStore):
    store.put_bytes("dms-archive", "p/r1/gone.txt", b"bytes", "text/plain")
    store.put_bytes("dms-archive", "p/r1/kept.txt", b"bytes", "text/plain")
    store.remove("dms-archive", "p/r1/gone.txt")
    assert store.stat("dms-archive", "p/r1/gone.txt") is None
    assert list(store.list_keys("dms-archive", "p/")) == ["p/r1/kept.txt"]
    store.remove("dms-archive", "p/r1/gone.txt")  # again: nothing to do
    # the key is free again: other bytes may be written there
    assert store.put_bytes("dms-archive", "p/r1/gone.txt", b"other", "text/plain").size == 5
