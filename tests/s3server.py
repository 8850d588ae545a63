"""pytest plugin: a real S3-protocol server on loopback for the S3 storage path.

Register it with ``pytest_plugins = ["tests.s3server"]`` in ``tests/conftest.py`` (or run
pytest with ``-p tests.s3server``). It depends on no other fixture.

Fixtures
--------
``s3_server`` (session)
    By default starts moto's standalone server (``python -m moto.server``) as a separate
    process on a free port of 127.0.0.1, waits until it answers, and stops it at the end of
    the session; its output goes to ``<basetemp>/moto-server/moto.log``. Set
    ``DMS_TEST_S3_ENDPOINT`` (and ``DMS_TEST_S3_ACCESS_KEY`` / ``DMS_TEST_S3_SECRET_KEY``)
    to use a running server instead, e.g. a MinIO on 127.0.0.1:9000 -- a **disposable** one:
    ``reset()`` empties its ``dms-*`` buckets.
    Yields an :class:`S3Server` (``endpoint`` "127.0.0.1:PORT", keys, region, ``env()`` for
    ``DMS_*`` variables of subprocesses, ``client()`` for a raw minio client, ``reset()``).
``s3_store`` (function)
    A fresh :class:`~shared.storage.s3.S3ObjectStore` on that server after ``reset()``, with
    the standard buckets (``shared.storage.BUCKETS``) created and empty, and the smallest
    legal part size (5 MiB) so modest files exercise multipart uploads.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from minio import Minio
from minio.deleteobjects import DeleteObject

from shared.storage.base import BUCKETS
from shared.storage.s3 import MIN_PART_SIZE, S3ObjectStore

__all__ = ["S3Server", "s3_server", "s3_store", "start_moto", "stop_process"]

_START_TIMEOUT = 30.0  # seconds for moto to import and bind
_STOP_TIMEOUT = 10.0


@dataclass
class S3Server:
    endpoint: str  # "127.0.0.1:PORT"
    access_key: str
    secret_key: str
    region: str = "us-east-1"
    kind: str = "moto"  # or "external"

    @property
    def url(self) -> str:
        return f"http://{self.endpoint}"

    def env(self) -> dict[str, str]:
        """``DMS_*`` settings that point a subprocess (worker, CLI) at this server."""
        return {
            "DMS_STORE": "s3",
            "DMS_S3_ENDPOINT": self.endpoint,
            "DMS_S3_ACCESS_KEY": self.access_key,
            "DMS_S3_SECRET_KEY": self.secret_key,
            "DMS_S3_SECURE": "false",
            "DMS_S3_REGION": self.region,
        }

    def client(self) -> Minio:
        """A raw minio client, for tests that inspect or tamper with objects directly."""
        return Minio(self.endpoint, access_key=self.access_key, secret_key=self.secret_key,
                     secure=False, region=self.region)

    def store(self, **kwargs) -> S3ObjectStore:
        return S3ObjectStore(self.endpoint, self.access_key, self.secret_key,
                             secure=False, region=self.region, **kwargs)

    def reset(self) -> None:
        """Forget every object: moto is reset whole; an external server has its standard
        buckets emptied."""
        if self.kind == "moto":
            req = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST", data=b"")
            with urllib.request.urlopen(req, timeout=10):
                pass
            return
        client = self.client()
        for bucket in BUCKETS:
            if not client.bucket_exists(bucket):
                continue
            names = [DeleteObject(o.object_name)
                     for o in client.list_objects(bucket, recursive=True) if o.object_name]
            errors = list(client.remove_objects(bucket, names))
            if errors:
                raise RuntimeError(f"could not empty {bucket} on {self.endpoint}: {errors[:3]}")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1):
            return True
    except urllib.error.HTTPError:  # an HTTP error is still an answer
        return True
    except OSError:
        return False


def start_moto(log_path: Path) -> tuple[subprocess.Popen, int]:
    """Start moto on a free port; try a few ports in case one is taken between the probe
    and the bind."""
    env = dict(os.environ, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
               AWS_DEFAULT_REGION="us-east-1")
    for _attempt in range(3):
        port = _free_port()
        log = open(log_path, "ab")  # a file, not a pipe: a full pipe would block the server
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
        )
        log.close()
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline and proc.poll() is None:
            if _answers(f"http://127.0.0.1:{port}/moto-api/"):
                return proc, port
            time.sleep(0.1)
        stop_process(proc)
    tail = log_path.read_text(errors="replace")[-2000:]
    raise RuntimeError(f"moto server did not start (is moto[server] installed?); log {log_path}:\n{tail}")


def stop_process(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(_STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(_STOP_TIMEOUT)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    external = os.environ.get("DMS_TEST_S3_ENDPOINT")
    if external:
        yield S3Server(
            endpoint=external,
            access_key=os.environ.get("DMS_TEST_S3_ACCESS_KEY", "minioadmin"),
            secret_key=os.environ.get("DMS_TEST_S3_SECRET_KEY", "minioadmin"),
            kind="external",
        )
        return
    log_path = tmp_path_factory.mktemp("moto-server") / "moto.log"
    proc, port = start_moto(log_path)
    try:
        yield S3Server(endpoint=f"127.0.0.1:{port}", access_key="testing", secret_key="testing")
    finally:
        stop_process(proc)


@pytest.fixture
def s3_store(s3_server: S3Server) -> S3ObjectStore:
    s3_server.reset()
    store = s3_server.store(part_size=MIN_PART_SIZE)
    store.ensure_buckets()
    return store
