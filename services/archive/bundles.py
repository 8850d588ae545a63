"""Bundles of several files: a zip, tar or gzip-compressed tar streamed as it is built
(memory stays at one chunk, whatever the total), or a curl script that fetches each file
and checks its sha256.

Every bundle lays files out as ``JWST/<obs_id>/<filename>`` (like astroquery's
``mastDownload/JWST/<obs_id>/``) with a ``SHA256SUMS`` file at the top, so
``sha256sum -c SHA256SUMS`` verifies an unpacked bundle.
"""

from __future__ import annotations

import shlex
import tarfile
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

from services.archive.files import open_artifact
from shared.storage import ObjectStore

__all__ = ["BundleEntry", "curl_script", "human_size", "sha256sums", "tar_stream", "targz_stream", "zip_stream"]

CHUNK = 1024 * 1024
_ZIP_EPOCH = datetime(1980, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class BundleEntry:
    name: str  # the productFilename
    arcname: str  # path inside the bundle
    uri: str  # object in the store
    size: int
    sha256: str
    mtime: datetime
    needs_token: bool


def sha256sums(entries: Sequence[BundleEntry]) -> bytes:
    return "".join(f"{e.sha256}  {e.arcname}\n" for e in entries).encode("utf-8")


class _Sink:
    """A write-only, non-seekable file that collects what zipfile writes until drained."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._pos = 0

    def write(self, data) -> int:
        b = bytes(data)
        self._parts.append(b)
        self._pos += len(b)
        return len(b)

    def tell(self) -> int:
        return self._pos

    def flush(self) -> None:
        pass

    def drain(self) -> bytes:
        out = b"".join(self._parts)
        self._parts.clear()
        return out


def _zip_info(arcname: str, when: datetime) -> zipfile.ZipInfo:
    when = max(when if when.tzinfo else when.replace(tzinfo=UTC), _ZIP_EPOCH)
    info = zipfile.ZipInfo(arcname, date_time=when.timetuple()[:6])
    info.compress_type = zipfile.ZIP_STORED  # FITS is mostly noise; deflating costs CPU for little
    info.external_attr = 0o644 << 16
    return info


def zip_stream(store: ObjectStore, entries: Sequence[BundleEntry]) -> Iterator[bytes]:
    sink = _Sink()
    with zipfile.ZipFile(sink, mode="w", allowZip64=True) as zf:
        for e in entries:
            with open_artifact(store, e.uri) as src, zf.open(_zip_info(e.arcname, e.mtime), "w", force_zip64=True) as dst:
                while chunk := src.read(CHUNK):
                    dst.write(chunk)
                    yield sink.drain()
            yield sink.drain()
        zf.writestr(_zip_info("SHA256SUMS", datetime.now(UTC)), sha256sums(entries))
    yield sink.drain()


def _tar_header(arcname: str, size: int, when: datetime) -> bytes:
    info = tarfile.TarInfo(arcname)
    info.size = size
    info.mtime = int(when.timestamp())
    info.mode = 0o644
    info.type = tarfile.REGTYPE
    return info.tobuf(format=tarfile.PAX_FORMAT, encoding="utf-8", errors="strict")


def tar_stream(store: ObjectStore, entries: Sequence[BundleEntry]) -> Iterator[bytes]:
    """A POSIX (pax) tar, written block by block so a file is never held in memory."""
    written = 0
    for e in entries:
        header = _tar_header(e.arcname, e.size, e.mtime)
        written += len(header)
        yield header
        n = 0
        with open_artifact(store, e.uri) as src:
            while chunk := src.read(CHUNK):
                n += len(chunk)
                if n > e.size:
                    raise RuntimeError(f"{e.name}: the stored file is longer than its catalogued size {e.size}")
                yield chunk
        if n != e.size:
            raise RuntimeError(f"{e.name}: the stored file has {n} bytes, the catalog says {e.size}")
        pad = b"\0" * (-n % tarfile.BLOCKSIZE)
        written += n + len(pad)
        yield pad
    sums = sha256sums(entries)
    header = _tar_header("SHA256SUMS", len(sums), datetime.now(UTC))
    tail = header + sums + b"\0" * (-len(sums) % tarfile.BLOCKSIZE) + b"\0" * (2 * tarfile.BLOCKSIZE)
    written += len(tail)
    yield tail + b"\0" * (-written % tarfile.RECORDSIZE)


GZIP_LEVEL = 1  # FITS pixels are mostly noise: a higher level costs CPU for a few per cent


def targz_stream(store: ObjectStore, entries: Sequence[BundleEntry]) -> Iterator[bytes]:
    """:func:`tar_stream` compressed on the fly into one gzip member (``tar -xzf`` reads it)."""
    gz = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 16 + zlib.MAX_WBITS)  # 16+: gzip header and trailer
    for chunk in tar_stream(store, entries):
        if out := gz.compress(chunk):
            yield out
    yield gz.flush()


def human_size(n: int) -> str:
    """Bytes in decimal units, as MAST states its basket cap (5.12 GB)."""
    for unit in ("bytes", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.2f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def curl_script(entries: Sequence[BundleEntry], base_url: str, now: datetime) -> str:
    """A POSIX shell script fetching each file with curl and checking its sha256.

    The token comes from ``$DMS_TOKEN`` and is passed to curl on its standard input
    (``--config -``), so it never shows in the process list.
    """
    base = base_url.rstrip("/")
    exclusive = sum(e.needs_token for e in entries)
    lines = [
        "#!/bin/sh",
        f"# jwst-dms download script: {len(entries)} file(s), made {now:%Y-%m-%dT%H:%M:%SZ} by {base}",
        f"# {exclusive} of them are under exclusive access and need a token of an authorized user:",
        "#   export DMS_TOKEN=<token>     (tokens come from the archive operators: `dms token create`)",
        "# Files are written under ./JWST/<obs_id>/ and checked against their sha256.",
        "set -u",
        "failed=0",
        "",
        "sha256_of() {",
        "    if command -v sha256sum >/dev/null 2>&1; then sha256sum \"$1\" | cut -d' ' -f1",
        "    else shasum -a 256 \"$1\" | cut -d' ' -f1; fi",
        "}",
        "",
        "fetch() {  # url path sha256",
        "    mkdir -p \"$(dirname \"$2\")\"",
        "    if [ -n \"${DMS_TOKEN:-}\" ]; then",
        "        printf 'header = \"Authorization: Bearer %s\"\\n' \"$DMS_TOKEN\" |",
        "            curl --fail --location --silent --show-error --config - --output \"$2.part\" \"$1\"",
        "    else",
        "        curl --fail --location --silent --show-error --output \"$2.part\" \"$1\"",
        "    fi",
        "    if [ $? -ne 0 ]; then echo \"FAILED  $2\" >&2; rm -f \"$2.part\"; failed=$((failed + 1)); return; fi",
        "    if [ \"$(sha256_of \"$2.part\")\" != \"$3\" ]; then",
        "        echo \"CHECKSUM MISMATCH  $2\" >&2; rm -f \"$2.part\"; failed=$((failed + 1)); return",
        "    fi",
        "    mv \"$2.part\" \"$2\" && echo \"OK  $2\"",
        "}",
        "",
    ]
    for e in entries:
        url = f"{base}/download/{quote(e.name)}"
        lines.append(f"fetch {shlex.quote(url)} {shlex.quote(e.arcname)} {e.sha256}")
    lines += [
        "",
        "if [ \"$failed\" -ne 0 ]; then echo \"$failed file(s) failed\" >&2; exit 1; fi",
        f"echo \"all {len(entries)} file(s) downloaded and verified\"",
        "",
    ]
    return "\n".join(lines)
