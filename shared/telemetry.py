"""CCSDS space-packet codec for science telemetry (format in docs/telemetry.md).

A telemetry file is a plain concatenation of packets. Each packet carries a block of
detector rows of one group of one integration of one exposure:

    primary header (6 B) | secondary header (32 B) | payload | CRC-16 (2 B)

The encoder is used by the simulator, the decoder by ingest. The decoder never raises on
bad bytes: it yields :class:`Packet` objects for packets it could read and
:class:`Fault` records for everything it could not, so the caller can decide between a
flagged product and a rejection, and nothing is silently dropped.

Payloads are not expanded while decoding: a :class:`Packet` keeps its payload as
transmitted (a view of the file) and :meth:`Packet.rows` inflates it when the caller knows
where its rows go, never to more than the rows the packet declares (plus a per-file
:class:`InflateBudget`), so a small file cannot expand into a large memory footprint.
"""

from __future__ import annotations

import binascii
import re
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

import numpy as np

from shared.instruments import MAX_ROW_PIXELS, MAX_WINDOW_ROWS

__all__ = [
    "APID",
    "CCSDS_EPOCH",
    "CENTROID_WORDS",
    "CRC_SIZE",
    "MAX_PACKET_DATA",
    "PRIMARY_HEADER_SIZE",
    "SECONDARY_HEADER_SIZE",
    "Fault",
    "FaultKind",
    "InflateBudget",
    "InflateLimitError",
    "Packet",
    "PayloadError",
    "SecondaryHeader",
    "centroid_rows",
    "centroids_from_rows",
    "crc16",
    "decode_stream",
    "encode_packet",
    "from_ccsds_time",
    "to_ccsds_time",
]

PRIMARY_HEADER_SIZE = 6
SECONDARY_HEADER_SIZE = 32
CRC_SIZE = 2
MAX_PACKET_DATA = 65536  # the 16-bit length field counts octets minus one

# CCSDS unsegmented time code epoch (TAI and UTC are not distinguished in this system).
CCSDS_EPOCH = datetime(1958, 1, 1, tzinfo=UTC)

_SECONDARY = struct.Struct(">IHIHHBBBBIHHHHBB")
assert _SECONDARY.size == SECONDARY_HEADER_SIZE

FLAG_COMPRESSED = 0x01


class APID:
    """Application process identifiers of science streams, one per instrument and kind."""

    SCIENCE = {"NIRCAM": 0x2C1, "NIRSPEC": 0x2C2, "NIRISS": 0x2C3, "MIRI": 0x2C4, "FGS": 0x2C5}
    ZEROFRAME = {"NIRCAM": 0x2E1, "NIRSPEC": 0x2E2, "NIRISS": 0x2E3, "FGS": 0x2E5}
    REFOUT = {"MIRI": 0x2D4}
    # FGS guiding: subarray images of each guide-star activity (rows of pixels, like the
    # science streams) and the fine-guide centroid samples (rows of CENTROID_WORDS words).
    GUIDE_IMAGE = {"id-image": 0x2F0, "acq1": 0x2F1, "acq2": 0x2F2, "track": 0x2F3, "fg": 0x2F4}
    GUIDE_CENTROID = 0x2F8

    @classmethod
    def describe(cls, apid: int) -> tuple[str, str] | None:
        """(instrument, stream) for a known APID, else None. stream is sci|zeroframe|refout,
        ``gs-<mode>`` for guide-star images or ``gs-centroid`` for fine-guide centroids."""
        for stream, table in (("sci", cls.SCIENCE), ("zeroframe", cls.ZEROFRAME), ("refout", cls.REFOUT)):
            for instrument, value in table.items():
                if value == apid:
                    return instrument, stream
        for mode, value in cls.GUIDE_IMAGE.items():
            if value == apid:
                return "FGS", f"gs-{mode}"
        if apid == cls.GUIDE_CENTROID:
            return "FGS", "gs-centroid"
        return None


# A fine-guide centroid sample is one payload row of big-endian uint16 words:
# [0:2] uint32 microseconds after the packet time, [2:4] int32 x offset, [4:6] int32 y offset
# (microarcseconds, FGS ideal frame, from the guide star's planned position), [6] guide
# star counts in units of 100 e-/s, [7] quality flags (0: good).
CENTROID_WORDS = 8


def centroid_rows(dt_us: np.ndarray, x_uas: np.ndarray, y_uas: np.ndarray, counts_100: np.ndarray,
                  quality: np.ndarray) -> np.ndarray:
    """Centroid samples as ``(n, CENTROID_WORDS)`` uint16 payload rows."""
    n = len(dt_us)
    words = np.zeros((n, CENTROID_WORDS), dtype=np.uint16)
    for k, (values, dtype) in enumerate(((dt_us, np.uint32), (x_uas, np.int32), (y_uas, np.int32))):
        raw = np.asarray(values).astype(dtype).view(np.uint32)
        words[:, 2 * k] = raw >> 16
        words[:, 2 * k + 1] = raw & 0xFFFF
    words[:, 6] = np.clip(np.asarray(counts_100), 0, 0xFFFF).astype(np.uint16)
    words[:, 7] = np.asarray(quality, dtype=np.uint16)
    return words


def centroids_from_rows(rows: np.ndarray) -> dict[str, np.ndarray]:
    """The fields of centroid payload rows (inverse of :func:`centroid_rows`)."""
    if rows.ndim != 2 or rows.shape[1] != CENTROID_WORDS:
        raise PayloadError(f"centroid rows must have {CENTROID_WORDS} words, got shape {rows.shape}")
    w = rows.astype(np.uint32)

    def joined(k: int) -> np.ndarray:
        return (w[:, 2 * k] << 16) | w[:, 2 * k + 1]

    return {"dt_us": joined(0), "x_uas": joined(1).view(np.int32), "y_uas": joined(2).view(np.int32),
            "counts_100": w[:, 6].astype(np.uint16), "quality": w[:, 7].astype(np.uint16)}


@dataclass(frozen=True)
class SecondaryHeader:
    """Identifies the rows a packet carries.

    ``integration`` and ``group`` are 1-based (group 0 marks a ZEROFRAME row block);
    ``first_row`` is 0-based within the readout window; ``detector_code`` is
    :attr:`shared.instruments.DetectorInfo.code`.
    """

    time_coarse: int
    time_fine: int
    program: int
    observation: int
    visit: int
    visit_group: int
    sequence: int
    activity: int
    detector_code: int
    exposure: int
    integration: int
    group: int
    first_row: int
    nrows: int
    flags: int = 0

    def pack(self) -> bytes:
        return _SECONDARY.pack(
            self.time_coarse, self.time_fine, self.program, self.observation, self.visit,
            self.visit_group, self.sequence, self.activity, self.detector_code, self.exposure,
            self.integration, self.group, self.first_row, self.nrows, self.flags, 0,
        )

    @classmethod
    def unpack(cls, raw: bytes) -> SecondaryHeader:
        fields = _SECONDARY.unpack(raw)
        return cls(*fields[:15])

    @property
    def compressed(self) -> bool:
        return bool(self.flags & FLAG_COMPRESSED)

    @property
    def time(self) -> datetime:
        return from_ccsds_time(self.time_coarse, self.time_fine)


class PayloadError(ValueError):
    """A payload that is not the rows its packet declares. ``width`` is the row length in
    pixels when the payload is whole rows of another width, else None."""

    def __init__(self, message: str, width: int | None = None):
        super().__init__(message)
        self.width = width


class InflateLimitError(ValueError):
    """Decompression stopped at a hard cap: ``scope`` is ``packet`` (a payload expanding past
    the rows its header declares) or ``file`` (the file's total past its budget)."""

    def __init__(self, message: str, scope: str):
        super().__init__(message)
        self.scope = scope


class InflateBudget:
    """How many bytes the compressed payloads of one file may expand to, in total."""

    def __init__(self, limit: int):
        self.limit = limit
        self.used = 0

    @property
    def remaining(self) -> int:
        return max(self.limit - self.used, 0)


def _inflate(payload: memoryview, cap: int) -> bytes:
    """zlib-inflate ``payload`` into at most ``cap`` bytes; InflateLimitError beyond, PayloadError
    for a stream that is not complete deflate data."""
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(payload, cap + 1)
    except zlib.error as exc:
        raise PayloadError(f"payload does not decompress: {exc}") from None
    if len(out) > cap:
        raise InflateLimitError(f"compressed payload of {len(payload)} bytes expands beyond {cap} bytes", "packet")
    if not inflater.eof:
        raise PayloadError(f"compressed payload of {len(payload)} bytes ends before its deflate stream does")
    if inflater.unused_data:
        raise PayloadError(f"{len(inflater.unused_data)} bytes after the end of the deflate stream")
    return out


@dataclass(frozen=True)
class Packet:
    """One good packet: CRC verified, header read. ``payload`` is as transmitted (deflate
    data when ``header.compressed``), a view of the decoded file."""

    offset: int
    apid: int
    sequence_count: int
    header: SecondaryHeader
    payload: memoryview
    raw_crc: int

    def rows(self, ncols: int | None = None, budget: InflateBudget | None = None) -> np.ndarray:
        """The payload as ``(nrows, ncols)`` uint16 pixels.

        A compressed payload is inflated to at most what its header's ``nrows`` rows of the
        widest detector row can hold, and counted against ``budget``.
        Raises :class:`InflateLimitError` past either cap, :class:`PayloadError` when the
        bytes are not ``nrows`` whole rows of ``ncols`` pixels.
        """
        nrows = self.header.nrows
        declared = nrows * MAX_ROW_PIXELS * 2
        if self.header.compressed:
            remaining = declared if budget is None else budget.remaining
            try:
                data = _inflate(self.payload, min(declared, remaining))
            except InflateLimitError:
                if remaining < declared:
                    raise InflateLimitError(
                        f"the file's compressed payloads expand to more than {budget.limit} bytes "
                        f"(reached in the packet at byte {self.offset})", "file") from None
                raise InflateLimitError(
                    f"the compressed payload of the packet at byte {self.offset} ({len(self.payload)} bytes) "
                    f"expands beyond the {declared} bytes that the {nrows} rows its header declares can hold "
                    f"(rows of at most {MAX_ROW_PIXELS} pixels)", "packet") from None
            if budget is not None:
                budget.used += len(data)
        else:
            data = self.payload
        width = _row_width(len(data), nrows)
        if width is None:
            raise PayloadError(f"{len(data)} payload bytes are not {nrows} whole rows")
        if ncols is not None and width != ncols:
            raise PayloadError(f"rows of {width} pixels where {ncols} were expected", width)
        return np.frombuffer(data, dtype=">u2").reshape(nrows, width)

    @property
    def pixels(self) -> np.ndarray:
        """The rows, at whatever width the payload has (inflated under the packet's cap)."""
        return self.rows()


def _row_width(nbytes: int, nrows: int) -> int | None:
    if nrows == 0 or nbytes % (2 * nrows):
        return None
    return nbytes // (2 * nrows)


class FaultKind(StrEnum):
    CRC_MISMATCH = "crc_mismatch"
    TRUNCATED = "truncated"
    GARBLED = "garbled"  # bytes that do not start a packet; skipped while resynchronising
    BAD_HEADER = "bad_header"  # version/type/flags wrong, or a length that cannot be
    UNKNOWN_APID = "unknown_apid"
    BAD_PAYLOAD = "bad_payload"  # undecompressable, or not a whole number of rows


@dataclass(frozen=True)
class Fault:
    """Bytes the decoder could not turn into a packet, with where and why."""

    kind: FaultKind
    offset: int
    length: int
    detail: str
    apid: int | None = None
    header: SecondaryHeader | None = None


def crc16(data: bytes | memoryview, init: int = 0xFFFF) -> int:
    """CRC-16-CCITT (polynomial 0x1021, initial value 0xFFFF, no reflection, no final XOR):
    the CCSDS packet error control."""
    return binascii.crc_hqx(data, init)


def to_ccsds_time(when: datetime) -> tuple[int, int]:
    """(coarse seconds, fine 1/65536 s) since :data:`CCSDS_EPOCH`."""
    delta = when.astimezone(UTC) - CCSDS_EPOCH
    total = delta.total_seconds()
    coarse = int(total)
    fine = int(round((total - coarse) * 65536.0))
    if fine == 65536:
        coarse, fine = coarse + 1, 0
    return coarse, fine


def from_ccsds_time(coarse: int, fine: int) -> datetime:
    return CCSDS_EPOCH + timedelta(seconds=coarse + fine / 65536.0)


def encode_packet(
    apid: int,
    sequence_count: int,
    header: SecondaryHeader,
    pixels: np.ndarray,
    *,
    compress: bool = False,
) -> bytes:
    """Encode rows of uint16 pixels as one packet.

    Parameters
    ----------
    apid : int
        11-bit application process identifier (see :class:`APID`).
    sequence_count : int
        Per-APID packet counter; stored modulo 16384.
    header : SecondaryHeader
        Identifiers; its ``nrows`` must equal ``pixels.shape[0]``.
    pixels : ndarray, shape (nrows, ncols)
        Values in DN; written big-endian.
    compress : bool
        Deflate (zlib) the payload and set the compression flag.
    """
    if pixels.ndim != 2 or pixels.shape[0] != header.nrows:
        raise ValueError(f"pixels shape {pixels.shape} does not match nrows={header.nrows}")
    payload = np.ascontiguousarray(pixels, dtype=">u2").tobytes()
    flags = header.flags & ~FLAG_COMPRESSED
    if compress:
        payload = zlib.compress(payload, 6)
        flags |= FLAG_COMPRESSED
    if flags != header.flags:
        header = SecondaryHeader(**{**header.__dict__, "flags": flags})
    data_len = SECONDARY_HEADER_SIZE + len(payload) + CRC_SIZE
    if data_len > MAX_PACKET_DATA:
        raise ValueError(f"packet data field of {data_len} bytes exceeds {MAX_PACKET_DATA}")
    word0 = (0 << 13) | (0 << 12) | (1 << 11) | (apid & 0x7FF)
    word1 = (0b11 << 14) | (sequence_count & 0x3FFF)
    body = struct.pack(">HHH", word0, word1, data_len - 1) + header.pack() + payload
    return body + struct.pack(">H", crc16(body))


def _primary(buf: memoryview, pos: int) -> tuple[int, int, int, int, int] | None:
    """(version, secondary flag, apid, sequence count, total packet size) or None."""
    if pos + PRIMARY_HEADER_SIZE > len(buf):
        return None
    word0, word1, length = struct.unpack_from(">HHH", buf, pos)
    version = word0 >> 13
    ptype = (word0 >> 12) & 1
    secflag = (word0 >> 11) & 1
    apid = word0 & 0x7FF
    seqflags = word1 >> 14
    if version != 0 or ptype != 0 or seqflags != 0b11:
        return version, -1, apid, word1 & 0x3FFF, 0
    return version, secflag, apid, word1 & 0x3FFF, PRIMARY_HEADER_SIZE + length + 1


def _header_looks_valid(buf: memoryview, pos: int) -> bool:
    """A primary header with the right version/flags, a known APID and a sane length."""
    head = _primary(buf, pos)
    if head is None:
        return False
    _, secflag, apid, _, size = head
    return (
        secflag == 1
        and APID.describe(apid) is not None
        and size >= PRIMARY_HEADER_SIZE + SECONDARY_HEADER_SIZE + CRC_SIZE
    )


def _plausible_start(buf: memoryview, pos: int) -> bool:
    """Test used while resynchronising: a valid-looking header whose CRC checks."""
    if not _header_looks_valid(buf, pos):
        return False
    end = pos + _primary(buf, pos)[4]
    if end > len(buf):
        return False
    return crc16(buf[pos : end - CRC_SIZE]) == struct.unpack_from(">H", buf, end - CRC_SIZE)[0]


# A packet starts with 0b00001xxx: version 0, telemetry, secondary header present.
_START_BYTE = re.compile(rb"[\x08-\x0f]")


def _resync(buf: memoryview, start: int) -> int:
    """Offset of the next plausible packet at or after ``start``, or len(buf)."""
    for match in _START_BYTE.finditer(buf, start):
        if _plausible_start(buf, match.start()):
            return match.start()
    return len(buf)


def decode_stream(data: bytes, ncols: int | None = None) -> Iterator[Packet | Fault]:
    """Decode a telemetry byte stream into packets and faults, in file order.

    Parameters
    ----------
    data : bytes
        The whole file.
    ncols : int, optional
        Expected row length in pixels; an uncompressed payload that is not ``nrows * ncols``
        pixels is a BAD_PAYLOAD fault. When None, the row length is taken from the payload.
        Compressed payloads are checked only when inflated (:meth:`Packet.rows`).
    """
    buf = memoryview(data)
    pos = 0
    n = len(buf)
    while pos < n:
        head = _primary(buf, pos)
        if head is None:
            yield Fault(FaultKind.TRUNCATED, pos, n - pos, f"{n - pos} trailing bytes, less than a primary header")
            return
        _, secflag, apid, seq, size = head
        if secflag != 1 or size < PRIMARY_HEADER_SIZE + SECONDARY_HEADER_SIZE + CRC_SIZE:
            nxt = _resync(buf, pos + 1)
            yield Fault(FaultKind.GARBLED, pos, nxt - pos, "bytes do not start a packet (bad version, type, flags or length); resynchronised")
            pos = nxt
            continue
        end = pos + size
        if end > n:
            # Either a cut-off last packet or a corrupted length field: look for a packet
            # inside the claimed span before calling it truncation.
            nxt = _resync(buf, pos + 1)
            if nxt < n:
                yield Fault(FaultKind.GARBLED, pos, nxt - pos, "packet length runs past the end of the file but a later packet follows; resynchronised", apid)
                pos = nxt
                continue
            yield Fault(FaultKind.TRUNCATED, pos, n - pos, f"last packet cut off: {n - pos} of {size} bytes present", apid)
            return
        body = buf[pos : end - CRC_SIZE]
        (crc,) = struct.unpack_from(">H", buf, end - CRC_SIZE)
        header = SecondaryHeader.unpack(bytes(buf[pos + PRIMARY_HEADER_SIZE : pos + PRIMARY_HEADER_SIZE + SECONDARY_HEADER_SIZE]))
        if crc16(body) != crc:
            # The length may be the corrupted field: trust it only if a packet follows.
            if end == n or _header_looks_valid(buf, end):
                yield Fault(FaultKind.CRC_MISMATCH, pos, size, f"CRC {crc:#06x} does not match the packet contents", apid, header)
                pos = end
            else:
                nxt = _resync(buf, pos + 1)
                yield Fault(FaultKind.GARBLED, pos, nxt - pos, "CRC mismatch and no packet where its length points; resynchronised", apid)
                pos = nxt
            continue
        if APID.describe(apid) is None:
            yield Fault(FaultKind.UNKNOWN_APID, pos, size, f"APID {apid:#05x} is not a science stream this system knows", apid, header)
            pos = end
            continue
        if header.nrows == 0 or header.first_row + header.nrows > MAX_WINDOW_ROWS:
            yield Fault(FaultKind.BAD_HEADER, pos, size, f"rows {header.first_row}+{header.nrows} are not within a "
                        f"readout window of at most {MAX_WINDOW_ROWS} rows", apid, header)
            pos = end
            continue
        payload = buf[pos + PRIMARY_HEADER_SIZE + SECONDARY_HEADER_SIZE : end - CRC_SIZE]
        if not header.compressed:
            width = _row_width(len(payload), header.nrows)
            problem = None
            if width is None:
                problem = f"{len(payload)} payload bytes are not {header.nrows} whole rows"
            elif ncols is not None and width != ncols:
                problem = f"rows of {width} pixels where {ncols} were expected"
            elif width > MAX_ROW_PIXELS:
                problem = f"rows of {width} pixels are wider than any detector ({MAX_ROW_PIXELS})"
            if problem:
                yield Fault(FaultKind.BAD_PAYLOAD, pos, size, problem, apid, header)
                pos = end
                continue
        yield Packet(pos, apid, seq, header, payload, crc)
        pos = end
