"""Peak memory of ingest on a telemetry decompression bomb.

A tiny NIRCam SUB64P exposure whose every packet carries a deflate payload of 64 MiB of
zeros (about 65 KB on the wire, the most a packet can hold): a file of about 3 MB that
would expand to about 2.9 GiB. Prints the file size, the ingest outcome and the process's
peak resident memory before and after ingest.

    python -m benchmarks.ingest_bomb [--inflate-mib 64]
"""

from __future__ import annotations

import argparse
import resource
import struct
import time
import zlib
from datetime import UTC, datetime, timedelta

from services.ingest.pipeline import ingest_telemetry
from shared.instruments import detector, exposure_timing, subarray
from shared.plan import Observation, Plan, PlannedExposure, Pointing, Target
from shared.telemetry import (
    APID,
    CRC_SIZE,
    SECONDARY_HEADER_SIZE,
    SecondaryHeader,
    crc16,
    to_ccsds_time,
)

START = datetime(2026, 3, 1, 12, tzinfo=UTC)


def _plan() -> Plan:
    obs = Observation(
        number=1, target_id=1, template="NIRCam Imaging", instrument="NIRCAM", exp_type="NRC_IMAGE",
        detectors=["NRCA1"], filter="F200W", readpatt="RAPID", ngroups=3, nints=2, subarray="SUB64P",
        exposures=[PlannedExposure(visit=1, exposure=1, detector="NRCA1", start_time=START,
                                   pointing=Pointing(ra=53.16, dec=-27.78))],
    )
    return Plan(program="01234", title="bomb", pi_name="Tester", targets=[Target(id=1, name="T", ra=53.16, dec=-27.78)],
                observations=[obs])


def bomb_file(plan: Plan, inflate_bytes: int) -> bytes:
    """Every (integration, group, 8-row block) packet of the exposure, each with a deflate
    payload of ``inflate_bytes`` zero bytes (valid CRC, compression flag set)."""
    obs = plan.observations[0]
    det = detector("NRCA1")
    sub = subarray("NIRCAM", obs.subarray)
    timing = exposure_timing("NIRCAM", sub, obs.readpatt, obs.ngroups, obs.nints)
    payload = zlib.compress(bytes(inflate_bytes), 9)
    out, seq = [], 0
    for i in range(1, obs.nints + 1):
        for g in range(1, obs.ngroups + 1):
            for first in range(0, sub.ysize, 8):
                t = START + timedelta(seconds=(i - 1) * (obs.ngroups * timing.tgroup + timing.tframe) + g * timing.tgroup)
                h = SecondaryHeader(*to_ccsds_time(t), 1234, 1, 1, 1, 1, 1, det.code, 1, i, g, first, 8, 1)
                body = struct.pack(">HHH", 0x0800 | APID.SCIENCE["NIRCAM"], 0xC000 | seq,
                                   SECONDARY_HEADER_SIZE + len(payload) + CRC_SIZE - 1) + h.pack() + payload
                out.append(body + struct.pack(">H", crc16(body)))
                seq += 1
    return b"".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inflate-mib", type=int, default=64, help="what each packet's payload expands to")
    args = parser.parse_args()
    plan = _plan()
    data = bomb_file(plan, args.inflate_mib * 2**20)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    try:
        out = ingest_telemetry(data, lambda program: plan, created=START, software_version="bench",
                               segment_bytes=2_000_000_000)
        outcome = ([f"rejected {r.reason}: {r.detail[:160]}" for r in out.rejections]
                   + [f"archived {f.name.format()} (DATAPROB={f.product.keywords['DATAPROB']})" for f in out.files])
    except Exception as exc:  # the point is to see what happens, whatever it is
        outcome = [f"raised {type(exc).__name__}: {exc}"]
    seconds = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"bomb file: {len(data) / 1e6:.2f} MB, {len(data) // (len(data) // 48)} packets, "
          f"declared expansion {48 * args.inflate_mib / 1024:.2f} GiB")
    for line in outcome:
        print(f"outcome: {line}")
    print(f"peak RSS: {before:.0f} MiB before ingest, {after:.0f} MiB after ({seconds:.2f} s)")


if __name__ == "__main__":
    main()
