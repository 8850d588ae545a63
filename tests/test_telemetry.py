"""The packet codec: round trips, CRC, and a decoder that survives any byte string."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from shared.telemetry import (
    APID,
    Fault,
    FaultKind,
    Packet,
    SecondaryHeader,
    crc16,
    decode_stream,
    encode_packet,
    from_ccsds_time,
    to_ccsds_time,
)


def header(**kw):
    base = dict(time_coarse=2_000_000_000, time_fine=123, program=1234, observation=1, visit=1,
                visit_group=1, sequence=1, activity=1, detector_code=1, exposure=1, integration=1,
                group=1, first_row=0, nrows=2)
    return SecondaryHeader(**{**base, **kw})


def test_crc16_is_ccitt_false():
    assert crc16(b"123456789") == 0x29B1  # the catalogued check value of CRC-16/CCITT-FALSE


def test_round_trip_plain_and_compressed():
    pixels = np.arange(2 * 10, dtype=np.uint16).reshape(2, 10) * 3000
    for compress in (False, True):
        raw = encode_packet(APID.SCIENCE["NIRCAM"], 16383 + 2, header(), pixels, compress=compress)
        [p] = list(decode_stream(raw))
        assert isinstance(p, Packet)
        assert p.sequence_count == 1 and p.header.compressed is compress
        np.testing.assert_array_equal(p.pixels, pixels)
    # big-endian on the wire, primary header as specified
    raw = encode_packet(0x2C1, 5, header(), pixels)
    assert raw[:2] == bytes([0x0A, 0xC1]) and raw[2:4] == bytes([0xC0, 0x05])
    assert int.from_bytes(raw[4:6], "big") == len(raw) - 7
    assert raw[38:40] == pixels[0, 0].astype(">u2").tobytes()


def test_time_code_round_trip():
    when = datetime(2026, 3, 1, 12, 0, 0, 250000, tzinfo=UTC)
    assert abs((from_ccsds_time(*to_ccsds_time(when)) - when).total_seconds()) < 2e-5


def test_encoder_refuses_oversize_and_mismatched_rows():
    with pytest.raises(ValueError, match="exceeds"):
        encode_packet(0x2C1, 0, header(nrows=20), np.zeros((20, 2048), np.uint16))
    with pytest.raises(ValueError, match="nrows"):
        encode_packet(0x2C1, 0, header(nrows=3), np.zeros((2, 10), np.uint16))


def test_decoder_expected_width():
    raw = encode_packet(0x2C1, 0, header(), np.zeros((2, 10), np.uint16))
    [f] = list(decode_stream(raw, ncols=12))
    assert isinstance(f, Fault) and f.kind is FaultKind.BAD_PAYLOAD


@pytest.mark.parametrize("seed", range(20))
def test_decoder_never_raises_and_accounts_for_every_byte(seed):
    """Random corruption of a valid stream: decoding ends, and packets plus faults cover
    the whole file without overlap (nothing is silently skipped)."""
    rng = np.random.default_rng(seed)
    good = [encode_packet(0x2C1, k, header(first_row=2 * k), rng.integers(0, 65535, (2, 16)).astype(np.uint16),
                          compress=bool(k % 2)) for k in range(30)]
    data = bytearray(b"".join(good))
    for _ in range(rng.integers(1, 8)):
        pos = int(rng.integers(0, len(data)))
        action = rng.integers(0, 3)
        if action == 0:
            data[pos] ^= int(rng.integers(1, 256))
        elif action == 1:
            del data[pos : pos + int(rng.integers(1, 40))]
        else:
            data[pos:pos] = rng.bytes(int(rng.integers(1, 40)))
    items = list(decode_stream(bytes(data)))
    covered = 0
    for item in items:
        assert item.offset == covered, "gap or overlap in the decoder's account of the file"
        covered += item.length if isinstance(item, Fault) else 7 + int.from_bytes(data[item.offset + 4 : item.offset + 6], "big")
    assert covered == len(data)
    assert sum(isinstance(i, Packet) for i in items) >= 10  # resynchronisation recovers the rest
