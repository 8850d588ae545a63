"""Simulated exposure -> CCSDS science telemetry (format: :mod:`shared.telemetry`).

One file per (exposure, detector), ``<exposure_id>.ccsds``, holding in time order, per
integration: the ZEROFRAME packets (near-IR; group 0), then per group the science
packets and, for MIRI, the reference-output packets. Each packet carries
``rows_per_packet`` rows (the last block of a group may be shorter). Sequence counters
run per APID from 0 within the file. Time stamps: group g of integration i at
``start + (i-1) * (NGROUPS*TGROUP + TFRAME) + g*TGROUP``; the zero frame at
``start + (i-1) * (...) + TFRAME``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import timedelta
from pathlib import Path

import numpy as np

from shared.telemetry import (
    APID,
    CRC_SIZE,
    MAX_PACKET_DATA,
    SECONDARY_HEADER_SIZE,
    SecondaryHeader,
    encode_packet,
    to_ccsds_time,
)

from .exposure import ExposureSimulation

__all__ = ["default_rows_per_packet", "max_rows_per_packet", "telemetry_packets", "write_telemetry"]

_TARGET_PAYLOAD = 32768  # bytes of pixels per packet by default
_ZLIB_SLACK = 64  # worst-case growth of an incompressible zlib payload of < 64 kB


def default_rows_per_packet(ncols: int) -> int:
    """Rows per packet keeping the pixel payload at or under 32 kB (8 rows of 2048)."""
    return max(1, _TARGET_PAYLOAD // (2 * ncols))


def max_rows_per_packet(ncols: int) -> int:
    """Most rows of ``ncols`` pixels that fit one packet, compressed or not."""
    return (MAX_PACKET_DATA - SECONDARY_HEADER_SIZE - CRC_SIZE - _ZLIB_SLACK) // (2 * ncols)


def _blocks(nrows: int, rows_per_packet: int) -> Iterator[tuple[int, int]]:
    for first in range(0, nrows, rows_per_packet):
        yield first, min(rows_per_packet, nrows - first)


def telemetry_packets(
    sim: ExposureSimulation, *, rows_per_packet: int | None = None, compress: bool = False
) -> Iterator[bytes]:
    """Encoded packets of one simulated exposure, in file order.

    Parameters
    ----------
    sim : ExposureSimulation
    rows_per_packet : int, optional
        Rows per packet; default :func:`default_rows_per_packet`.
    compress : bool
        zlib-compress payloads.

    Raises
    ------
    ValueError
        ``rows_per_packet`` does not fit a packet.
    """
    ncols = sim.subarray.xsize
    rows = rows_per_packet or default_rows_per_packet(ncols)
    if rows > max_rows_per_packet(ncols):
        raise ValueError(
            f"rows_per_packet={rows} rows of {ncols} pixels exceed a packet "
            f"(at most {max_rows_per_packet(ncols)})"
        )
    instrument = sim.detector.instrument
    exp = sim.exposure
    counters: dict[int, int] = {}
    schedule = sim.schedule

    def packets(apid: int, frame: np.ndarray, integration: int, group: int, seconds: float) -> Iterator[bytes]:
        coarse, fine = to_ccsds_time(sim.start_time + timedelta(seconds=seconds))
        for first, n in _blocks(frame.shape[0], rows):
            header = SecondaryHeader(
                time_coarse=coarse, time_fine=fine, program=sim.program,
                observation=sim.observation.number, visit=exp.visit, visit_group=exp.visit_group,
                sequence=exp.sequence, activity=exp.activity, detector_code=sim.detector.code,
                exposure=exp.exposure, integration=integration, group=group, first_row=first, nrows=n,
            )
            count = counters.get(apid, 0)
            counters[apid] = count + 1
            yield encode_packet(apid, count, header, frame[first : first + n], compress=compress)

    for i in range(schedule.nints):
        t_int = i * schedule.integration_period
        if sim.zeroframe is not None:
            yield from packets(APID.ZEROFRAME[instrument], sim.zeroframe[i], i + 1, 0, t_int + schedule.tframe)
        for g in range(schedule.ngroups):
            t_group = t_int + (g + 1) * schedule.tgroup
            yield from packets(APID.SCIENCE[instrument], sim.sci[i, g], i + 1, g + 1, t_group)
            if sim.refout is not None:
                yield from packets(APID.REFOUT[instrument], sim.refout[i, g], i + 1, g + 1, t_group)


def write_telemetry(
    sim: ExposureSimulation, directory: Path, *, rows_per_packet: int | None = None, compress: bool = False,
    guiding: Iterable[bytes] = (),
) -> Path:
    """Write ``<exposure_id>.ccsds`` into ``directory``; returns its path. ``guiding``: the
    exposure's fine-guide packets (:func:`guiding.fine_guide_packets`), written after the
    science packets."""
    path = Path(directory) / f"{sim.name.exposure_id}.ccsds"
    tmp = path.with_suffix(".ccsds.part")
    with open(tmp, "wb") as fh:
        for packet in telemetry_packets(sim, rows_per_packet=rows_per_packet, compress=compress):
            fh.write(packet)
        for packet in guiding:
            fh.write(packet)
    tmp.replace(path)
    return path
