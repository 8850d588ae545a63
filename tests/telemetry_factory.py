"""Tiny plans and telemetry for ingest tests, built straight from the packet codec so
each fault can be injected byte-exactly."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from shared.instruments import detector, exposure_timing, subarray
from shared.plan import Observation, Plan, PlannedExposure, Pointing, Target
from shared.telemetry import (
    APID,
    CRC_SIZE,
    FLAG_COMPRESSED,
    PRIMARY_HEADER_SIZE,
    SECONDARY_HEADER_SIZE,
    SecondaryHeader,
    crc16,
    encode_packet,
    to_ccsds_time,
)

START = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def tiny_plan(
    *,
    program: str = "01234",
    instrument: str = "NIRCAM",
    detector_name: str = "NRCA1",
    subarray_name: str = "SUB64P",
    ngroups: int = 3,
    nints: int = 2,
    readpatt: str = "RAPID",
    exposures: int = 1,
) -> Plan:
    exp_type = detector(detector_name).exp_type
    obs = Observation(
        number=1, target_id=1, template=f"{instrument.title()} Imaging", instrument=instrument,
        exp_type=exp_type, detectors=[detector_name], filter="F200W" if instrument != "MIRI" else "F770W",
        pupil="CLEAR", readpatt=readpatt, ngroups=ngroups, nints=nints, subarray=subarray_name,
        exposures=[
            PlannedExposure(visit=1, exposure=e, detector=detector_name, dither_point=1,
                            start_time=START + timedelta(minutes=10 * (e - 1)),
                            pointing=Pointing(ra=53.16, dec=-27.78, roll=30.0))
            for e in range(1, exposures + 1)
        ],
    )
    return Plan(program=program, title="Test program", pi_name="Tester, A.", category="GO", eap_months=12,
                authorized_users=["pi@example.org"], targets=[Target(id=1, name="NGC 1234", ra=53.16, dec=-27.78)],
                observations=[obs])


@dataclass
class TinyExposure:
    plan: Plan
    cube: np.ndarray  # (nints, ngroups, ny, nx) uint16
    packets: list[bytes]  # every packet in order (ZEROFRAME and REFOUT packets beside SCI)
    refout: np.ndarray | None = None
    zeroframe: np.ndarray | None = None  # (nints, ny, nx) uint16


def tiny_exposure(plan: Plan | None = None, *, exposure: int = 1, rows_per_packet: int = 8,
                  compress: bool = False, seed: int = 1, zeroframe: bool = False,
                  first_sequence: int = 0) -> TinyExposure:
    plan = plan or tiny_plan()
    obs = plan.observations[0]
    exp = obs.exposures[exposure - 1]
    det = detector(exp.detector)
    sub = subarray(obs.instrument, obs.subarray)
    timing = exposure_timing(obs.instrument, sub, obs.readpatt, obs.ngroups, obs.nints)
    rng = np.random.default_rng(seed)
    base = rng.integers(10000, 12000, size=(sub.ysize, sub.xsize))
    ramp = np.arange(1, obs.ngroups + 1)[None, :, None, None] * rng.integers(5, 50, size=(1, 1, sub.ysize, sub.xsize))
    cube = (base[None, None] + ramp + np.zeros((obs.nints, 1, 1, 1), int)).astype(np.uint16)
    t_int = obs.ngroups * timing.tgroup + timing.tframe
    seq: dict[int, int] = {}
    packets = []

    def emit(apid, i, g, first, block):
        t = exp.start_time + timedelta(seconds=(i - 1) * t_int + g * timing.tgroup)
        coarse, fine = to_ccsds_time(t)
        h = SecondaryHeader(coarse, fine, int(plan.program), obs.number, exp.visit, exp.visit_group,
                            exp.sequence, exp.activity, det.code, exp.exposure, i, g, first, block.shape[0])
        packets.append(encode_packet(apid, seq.setdefault(apid, first_sequence), h, block, compress=compress))
        seq[apid] += 1

    refout = None
    if det.has_refout:
        refout = (cube[:, :, : sub.ysize // 4, :] // 2).astype(np.uint16)
    zero = (cube[:, 0] - 3).astype(np.uint16) if zeroframe else None
    for i in range(1, obs.nints + 1):
        if zero is not None:
            for first in range(0, sub.ysize, rows_per_packet):
                emit(APID.ZEROFRAME[obs.instrument], i, 0, first, zero[i - 1, first : first + rows_per_packet])
        for g in range(1, obs.ngroups + 1):
            for first in range(0, sub.ysize, rows_per_packet):
                emit(APID.SCIENCE[obs.instrument], i, g, first, cube[i - 1, g - 1, first : first + rows_per_packet])
            if refout is not None:
                for first in range(0, sub.ysize // 4, rows_per_packet):
                    emit(APID.REFOUT["MIRI"], i, g, first, refout[i - 1, g - 1, first : first + rows_per_packet])
    return TinyExposure(plan, cube, packets, refout, zero)


# ---------------------------------------------------------------- fault injection


def header_of(packet: bytes) -> SecondaryHeader:
    return SecondaryHeader.unpack(packet[PRIMARY_HEADER_SIZE : PRIMARY_HEADER_SIZE + SECONDARY_HEADER_SIZE])


def _seal(body: bytes | bytearray) -> bytes:
    """A packet body with its CRC appended (so a fault is in the content, not the CRC)."""
    return bytes(body) + struct.pack(">H", crc16(bytes(body)))


def flip(packet: bytes, offset: int) -> bytes:
    """One byte changed, CRC left as it was."""
    b = bytearray(packet)
    b[offset] ^= 0x5A
    return bytes(b)


def with_header(packet: bytes, **changes) -> bytes:
    """The packet with changed secondary-header fields and a valid CRC."""
    body = packet[:-CRC_SIZE]
    h = SecondaryHeader(**{**header_of(packet).__dict__, **changes})
    return _seal(body[:PRIMARY_HEADER_SIZE] + h.pack() + body[PRIMARY_HEADER_SIZE + SECONDARY_HEADER_SIZE :])


def with_apid(packet: bytes, apid: int) -> bytes:
    body = bytearray(packet[:-CRC_SIZE])
    word0 = struct.unpack_from(">H", body, 0)[0]
    struct.pack_into(">H", body, 0, (word0 & ~0x7FF) | apid)
    return _seal(body)


def with_primary(packet: bytes, *, word0_or: int = 0, word0_and: int = 0xFFFF, word1_and: int = 0xFFFF,
                 sequence: int | None = None) -> bytes:
    """Primary-header bits changed (version, type, flags, sequence count), CRC recomputed."""
    body = bytearray(packet[:-CRC_SIZE])
    w0, w1 = struct.unpack_from(">HH", body, 0)
    w0 = (w0 & word0_and) | word0_or
    w1 &= word1_and
    if sequence is not None:
        w1 = (w1 & 0xC000) | (sequence & 0x3FFF)
    struct.pack_into(">HH", body, 0, w0, w1)
    return _seal(body)


def with_payload(packet: bytes, payload: bytes, *, compressed: bool | None = None) -> bytes:
    """The packet carrying ``payload`` instead, length field and CRC made consistent."""
    h = header_of(packet)
    if compressed is not None:
        h = SecondaryHeader(**{**h.__dict__, "flags": (h.flags & ~FLAG_COMPRESSED) | (FLAG_COMPRESSED if compressed else 0)})
    word0, word1 = struct.unpack_from(">HH", packet, 0)
    body = struct.pack(">HHH", word0, word1, SECONDARY_HEADER_SIZE + len(payload) + CRC_SIZE - 1) + h.pack() + payload
    return _seal(body)


def payload_of(packet: bytes) -> bytes:
    return packet[PRIMARY_HEADER_SIZE + SECONDARY_HEADER_SIZE : -CRC_SIZE]


def bomb(packet: bytes, expanded_bytes: int) -> bytes:
    """The packet with a deflate payload of ``expanded_bytes`` zero bytes, whatever rows it declares."""
    return with_payload(packet, zlib.compress(bytes(expanded_bytes), 9), compressed=True)


def at_time(packet: bytes, coarse: int, fine: int = 0) -> bytes:
    return with_header(packet, time_coarse=coarse, time_fine=fine)


def shifted(packet: bytes, seconds: float) -> bytes:
    h = header_of(packet)
    total = h.time_coarse + h.time_fine / 65536.0 + seconds
    return at_time(packet, int(total), int((total - int(total)) * 65536))
