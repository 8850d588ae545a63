"""Telemetry packets -> 4-D ramp cubes, with every fault counted (pure: bytes in, arrays out).

Checks: CRC (by the codec), per-APID sequence counts, duplicates (identical copies are
dropped and counted; conflicting copies keep the first and are counted), out-of-order
packets (placed by their header, counted), rows outside the planned shape, and rows that
never arrived (flagged as dropouts).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from shared.telemetry import (
    APID,
    Fault,
    FaultKind,
    InflateBudget,
    Packet,
    PayloadError,
    decode_stream,
)

__all__ = ["ExposureKey", "ExposureStreams", "RampCube", "StreamReport", "assemble", "split_exposures"]


@dataclass(frozen=True, order=True)
class ExposureKey:
    """Identifiers shared by every packet of one exposure on one detector."""

    program: int
    observation: int
    visit: int
    visit_group: int
    sequence: int
    activity: int
    exposure: int
    detector_code: int


@dataclass
class StreamReport:
    """What happened to a telemetry file while decoding; feeds DATAPROB and the ingest log."""

    packets: int = 0
    faults: Counter = field(default_factory=Counter)
    fault_details: list[str] = field(default_factory=list)
    sequence_gaps: int = 0
    duplicates: int = 0
    conflicting_duplicates: int = 0
    reordered: int = 0
    out_of_range: int = 0
    missing_rows: int = 0
    missing_zeroframe_rows: int = 0

    @property
    def data_problem(self) -> bool:
        return bool(
            sum(self.faults.values()) or self.sequence_gaps or self.conflicting_duplicates
            or self.out_of_range or self.missing_rows or self.missing_zeroframe_rows
        )

    def summary(self) -> dict[str, int]:
        out = {f"fault_{k}": v for k, v in sorted(self.faults.items())}
        out.update(
            packets=self.packets, sequence_gaps=self.sequence_gaps, duplicates=self.duplicates,
            conflicting_duplicates=self.conflicting_duplicates, reordered=self.reordered,
            out_of_range=self.out_of_range, missing_rows=self.missing_rows,
            missing_zeroframe_rows=self.missing_zeroframe_rows,
        )
        return {k: v for k, v in out.items() if v}

    def note(self, fault: Fault) -> None:
        self.faults[fault.kind.value] += 1
        if len(self.fault_details) < 20:
            self.fault_details.append(f"byte {fault.offset}: {fault.kind.value}: {fault.detail}")


@dataclass
class ExposureStreams:
    """Good packets of one exposure, by stream (sci / zeroframe / refout)."""

    key: ExposureKey
    instrument: str
    packets: dict[str, list[Packet]] = field(default_factory=lambda: defaultdict(list))


def split_exposures(data: bytes) -> tuple[dict[ExposureKey, ExposureStreams], StreamReport]:
    """Decode a file and sort its good packets by exposure; faults go to the report."""
    report = StreamReport()
    exposures: dict[ExposureKey, ExposureStreams] = {}
    last_seq: dict[int, int] = {}
    for item in decode_stream(data):
        if isinstance(item, Fault):
            report.note(item)
            continue
        report.packets += 1
        prev = last_seq.get(item.apid)
        if prev is not None:
            gap = (item.sequence_count - prev - 1) % 16384
            if gap and gap < 8192:  # a large "gap" is a step back: a reordered or repeated packet
                report.sequence_gaps += gap
        last_seq[item.apid] = item.sequence_count
        h = item.header
        key = ExposureKey(h.program, h.observation, h.visit, h.visit_group, h.sequence, h.activity,
                          h.exposure, h.detector_code)
        instrument, stream = APID.describe(item.apid)
        streams = exposures.setdefault(key, ExposureStreams(key, instrument))
        streams.packets[stream].append(item)
    return exposures, report


@dataclass
class RampCube:
    """An assembled stream: values, which rows arrived, and the readout time of each group."""

    data: np.ndarray  # uint16, (nints, ngroups, nrows, ncols) or (nints, nrows, ncols) for zeroframe
    present: np.ndarray  # bool, data.shape[:-1]: row arrived
    group_times: dict[tuple[int, int], datetime]
    wrong_width: Counter = field(default_factory=Counter)  # row width -> packets of that other width


def assemble(
    packets: list[Packet], shape: tuple[int, ...], report: StreamReport, *, zeroframe: bool = False,
    budget: InflateBudget | None = None,
) -> RampCube:
    """Place packets into a cube of ``shape`` by their (integration, group, first_row).

    ``shape`` is (nints, ngroups, nrows, ncols), or (nints, nrows, ncols) for a zero frame
    (whose packets carry group 0). Rows never received stay 0 and ``present`` False.
    Payloads are inflated one packet at a time, straight into the cube, under the packet's
    declared geometry and ``budget``: :class:`shared.telemetry.InflateLimitError` propagates
    (the file is refused); a payload that is not the planned rows is a ``bad_payload`` fault.
    """
    data = np.zeros(shape, dtype=np.uint16)
    present = np.zeros(shape[:-1], dtype=bool)
    nints = shape[0]
    ngroups = 1 if zeroframe else shape[1]
    nrows, ncols = shape[-2], shape[-1]
    times: dict[tuple[int, int], datetime] = {}
    wrong_width: Counter = Counter()
    last_pos = (-1, -1, -1)
    for p in packets:
        h = p.header
        group = 1 if zeroframe else h.group
        if (
            not 1 <= h.integration <= nints
            or not 1 <= group <= ngroups
            or (zeroframe and h.group != 0)
            or h.first_row + h.nrows > nrows
        ):
            report.out_of_range += 1
            continue
        try:
            pixels = p.rows(ncols, budget)
        except PayloadError as exc:
            if exc.width is not None:
                wrong_width[exc.width] += 1
            report.note(Fault(FaultKind.BAD_PAYLOAD, p.offset, len(p.payload), str(exc), p.apid, h))
            continue
        pos = (h.integration, group, h.first_row)
        if pos < last_pos:
            report.reordered += 1
        last_pos = max(last_pos, pos)
        i, g, rows = h.integration - 1, group - 1, slice(h.first_row, h.first_row + h.nrows)
        target = (i, rows) if zeroframe else (i, g, rows)
        seen = present[target]
        if seen.any():
            if np.array_equal(data[target][seen], pixels[seen]):
                report.duplicates += 1
            else:
                report.conflicting_duplicates += 1
            fresh = ~seen
            if fresh.any():  # overlapping block: keep only the rows not yet filled
                block = data[target]
                block[fresh] = pixels[fresh]
                data[target] = block
                present[target] = True
            continue
        data[target] = pixels
        present[target] = True
        times[(h.integration, group)] = max(times.get((h.integration, group), h.time), h.time)
    return RampCube(data, present, times, wrong_width)
