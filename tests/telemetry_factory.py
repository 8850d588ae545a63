"""Tiny plans and telemetry for ingest tests, built straight from the packet codec so
each fault can be injected byte-exactly."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from shared.instruments import detector, exposure_timing, subarray
from shared.plan import Observation, Plan, PlannedExposure, Pointing, Target
from shared.telemetry import APID, SecondaryHeader, encode_packet, to_ccsds_time

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
    packets: list[bytes]  # science packets in order
    refout: np.ndarray | None = None


def tiny_exposure(plan: Plan | None = None, *, exposure: int = 1, rows_per_packet: int = 8,
                  compress: bool = False, seed: int = 1) -> TinyExposure:
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
    seq = {}
    packets = []

    def emit(apid, i, g, first, block):
        t = exp.start_time + timedelta(seconds=(i - 1) * t_int + g * timing.tgroup)
        coarse, fine = to_ccsds_time(t)
        h = SecondaryHeader(coarse, fine, int(plan.program), obs.number, exp.visit, exp.visit_group,
                            exp.sequence, exp.activity, det.code, exp.exposure, i, g, first, block.shape[0])
        packets.append(encode_packet(apid, seq.setdefault(apid, 0), h, block, compress=compress))
        seq[apid] += 1

    refout = None
    if det.has_refout:
        refout = (cube[:, :, : sub.ysize // 4, :] // 2).astype(np.uint16)
    for i in range(1, obs.nints + 1):
        for g in range(1, obs.ngroups + 1):
            for first in range(0, sub.ysize, rows_per_packet):
                emit(APID.SCIENCE[obs.instrument], i, g, first, cube[i - 1, g - 1, first : first + rows_per_packet])
            if refout is not None:
                for first in range(0, sub.ysize // 4, rows_per_packet):
                    emit(APID.REFOUT["MIRI"], i, g, first, refout[i - 1, g - 1, first : first + rows_per_packet])
    return TinyExposure(plan, cube, packets, refout)
