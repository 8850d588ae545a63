"""SDP: one telemetry file -> ``_uncal`` products (segmented when large), or a rejection.

No I/O here: bytes and the plan in, products (in memory) or a :class:`Rejection` out. The
task stores, registers and announces what this returns.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np

from services.ingest.assembly import (
    ExposureKey,
    ExposureStreams,
    RampCube,
    StreamReport,
    assemble,
    split_exposures,
)
from services.ingest.guidestar import (
    Centroids,
    GuideStarFile,
    decode_centroids,
    guide_star_keywords,
    guide_streams,
    guiding_products,
)
from services.ingest.headers import (
    exposure_keywords,
    exposure_start,
    group_table_rows,
    int_times_rows,
    integration_times,
)
from services.ingest.observer import observer_keywords
from shared.datamodels import FitsProduct, dqflags
from shared.datamodels.fits_io import set_cards
from shared.datamodels.uncal import group_table, int_times_table, uncal_product
from shared.ephemeris import Ephemeris
from shared.instruments import DETECTORS_BY_CODE, MAX_EXPOSURE_BYTES, exposure_timing, subarray
from shared.naming import ExposureName
from shared.plan import Plan
from shared.telemetry import (
    InflateBudget,
    InflateLimitError,
    Packet,
    from_ccsds_time,
    to_ccsds_time,
)

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_TIME_TOLERANCE",
    "IngestOutput",
    "Rejection",
    "UncalFile",
    "ingest_telemetry",
    "plan_segments",
]

# How far packet times may lie outside the plan's visit window (first planned start to
# last planned end of the visit's exposures): schedules slip, clocks do not jump by years.
DEFAULT_TIME_TOLERANCE = timedelta(days=1)


@dataclass(frozen=True)
class Rejection:
    """Why a telemetry file cannot become a product. ``reason`` is a stable code."""

    reason: str
    detail: str
    program: str | None = None


@dataclass(frozen=True)
class UncalFile:
    name: ExposureName
    product: FitsProduct
    exposure_fields: dict  # catalog columns of the exposure
    observation: int


@dataclass
class IngestOutput:
    files: list[UncalFile] = field(default_factory=list)
    guide_files: list[GuideStarFile] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    report: StreamReport = field(default_factory=StreamReport)


def plan_segments(bytes_per_integration: int, nints: int, segment_bytes: int) -> list[tuple[int, int]]:
    """(first, last) 1-based integrations of each segment; one segment when it all fits.

    A segment holds as many whole integrations as fit in ``segment_bytes`` (at least one).
    """
    if bytes_per_integration * nints <= segment_bytes:
        return [(1, nints)]
    per = max(1, segment_bytes // bytes_per_integration)
    return [(start, min(start + per - 1, nints)) for start in range(1, nints + 1, per)]


def _program_id(key: ExposureKey) -> str:
    return f"{key.program:05d}"


def ingest_telemetry(
    data: bytes,
    plan_for: Callable[[str], Plan | None],
    *,
    ephemeris_for: Callable[[str], Ephemeris | None] | None = None,
    created: datetime,
    software_version: str,
    segment_bytes: int,
    max_inflated_bytes: int = MAX_EXPOSURE_BYTES,
    time_tolerance: timedelta = DEFAULT_TIME_TOLERANCE,
) -> IngestOutput:
    """Turn a telemetry file into ``_uncal`` products.

    Parameters
    ----------
    data : bytes
        The file as delivered.
    plan_for : callable
        Program id -> its observation plan, or None when none has been delivered.
    ephemeris_for : callable, optional
        Program id -> the observatory's ephemeris delivered with it, or None. Without one
        that covers an exposure, its times are computed at the geocentre and EPH_TYPE says
        so (:mod:`services.ingest.observer`).
    created : datetime
        Creation time written to DATE: when the raw file was first stored, so every run over
        the same bytes writes the same products.
    software_version : str
        SDP_VER.
    segment_bytes : int
        Maximum size of one ``_uncal``; larger exposures are split into ``-segNNN`` files.
    max_inflated_bytes : int
        Hard cap on what the file's compressed payloads may expand to in total (each
        payload is also capped by the rows its header declares); beyond it the whole file
        is refused (``decompression_bomb`` or ``decompression_limit``).
    time_tolerance : timedelta
        How far packet times may lie outside the plan's visit window before the exposure
        is refused (``time_outside_window``).
    """
    out = IngestOutput()
    if not data:
        out.rejections.append(Rejection("empty_file", "the telemetry file is empty (0 bytes)"))
        return out
    exposures, report = split_exposures(data)
    out.report = report
    if not exposures:
        faults = ", ".join(f"{n} {k}" for k, n in sorted(report.faults.items())) or "none"
        out.rejections.append(Rejection(
            "no_science_packets",
            f"no readable science packet in {len(data)} bytes (faults: {faults}); "
            + ("; ".join(report.fault_details[:3]) or ""),
        ))
        return out
    budget = InflateBudget(max_inflated_bytes)
    guiding = {key: streams for key, streams in exposures.items() if guide_streams(streams)}
    science = {key: streams for key, streams in exposures.items() if key not in guiding}
    for key in sorted(guiding):
        try:
            result = _ingest_guiding(guiding[key], science, plan_for(_program_id(key)), report, created,
                                     software_version, budget, time_tolerance)
        except InflateLimitError as exc:
            return _too_large(exc, key, report)
        if isinstance(result, Rejection):
            out.rejections.append(result)
        else:
            out.guide_files.extend(result)
    for key in sorted(science):
        fine_guiding = next((streams for k, streams in guiding.items() if _same_exposure(k, key)), None)
        try:
            program = _program_id(key)
            result = _ingest_exposure(science[key], plan_for(program), report, created, software_version,
                                      segment_bytes, budget, time_tolerance,
                                      ephemeris_for(program) if ephemeris_for is not None else None, fine_guiding)
        except InflateLimitError as exc:
            return _too_large(exc, key, report)
        if isinstance(result, Rejection):
            out.rejections.append(result)
        else:
            out.files.extend(result)
    return out


def _too_large(exc: InflateLimitError, key: ExposureKey, report: StreamReport) -> IngestOutput:
    """A payload that expands past its cap makes the whole file suspect: nothing of it is
    archived (the raw file is kept for inspection)."""
    reason = "decompression_bomb" if exc.scope == "packet" else "decompression_limit"
    return IngestOutput(rejections=[Rejection(reason, f"{exc}; the file was not ingested", _program_id(key))],
                        report=report)


def _same_exposure(a: ExposureKey, b: ExposureKey) -> bool:
    """Whether two keys name the same exposure (on any detectors)."""
    return (a.program, a.observation, a.visit, a.visit_group, a.sequence, a.activity, a.exposure) == \
        (b.program, b.observation, b.visit, b.visit_group, b.sequence, b.activity, b.exposure)


def _ingest_guiding(
    streams: ExposureStreams,
    science: dict[ExposureKey, ExposureStreams],
    plan: Plan | None,
    report: StreamReport,
    created: datetime,
    software_version: str,
    budget: InflateBudget,
    time_tolerance: timedelta,
) -> list[GuideStarFile] | Rejection:
    """The guide-star products of a visit's guiding, or of one exposure's fine guiding."""
    key = streams.key
    program = _program_id(key)
    if plan is None:
        return Rejection("missing_plan", f"no observation plan has been delivered for program {program}; deliver it and re-queue this file", program)
    if plan.program != program:
        return Rejection("plan_mismatch", f"telemetry of program {program} checked against the plan of program {plan.program}", program)
    try:
        obs = plan.observation(key.observation)
        first, last = obs.visit_window(key.visit)
    except KeyError as exc:
        return Rejection("not_in_plan", f"guiding telemetry: {exc.args[0]}", program)
    every = [p for packets in streams.packets.values() for p in packets]
    late_or_early = _outside_window(every, first - time_tolerance, last + time_tolerance)
    if late_or_early:
        return Rejection(
            "time_outside_window",
            f"{len(late_or_early)} of {len(every)} guiding packets carry times outside the plan's window for visit "
            f"{key.visit:03d} of observation {key.observation:03d} ({first.isoformat()} .. {last.isoformat()}, "
            f"tolerance {time_tolerance})", program)
    carrier = next((DETECTORS_BY_CODE[k.detector_code].name for k in sorted(science)
                    if _same_exposure(k, key) and k.detector_code in DETECTORS_BY_CODE), None)
    result = guiding_products(streams, plan, report, created=created, software_version=software_version,
                              budget=budget, science_detector=carrier)
    if isinstance(result, str):
        return Rejection("guiding_mismatch", result, program)
    return result


def _outside_window(packets: list[Packet], start: datetime, end: datetime) -> list[Packet]:
    """Packets stamped before ``start`` or after ``end`` (compared in whole CCSDS seconds)."""
    lo, hi = to_ccsds_time(start)[0], to_ccsds_time(end)[0] + 1
    return [p for p in packets if not lo <= p.header.time_coarse <= hi]


def _ingest_exposure(
    streams: ExposureStreams,
    plan: Plan | None,
    report: StreamReport,
    created: datetime,
    software_version: str,
    segment_bytes: int,
    budget: InflateBudget,
    time_tolerance: timedelta,
    ephemeris: Ephemeris | None = None,
    fine_guiding: ExposureStreams | None = None,
) -> list[UncalFile] | Rejection:
    key = streams.key
    program = _program_id(key)
    det = DETECTORS_BY_CODE.get(key.detector_code)
    if det is None:
        return Rejection("unknown_detector", f"detector code {key.detector_code} in the secondary header is not a known detector", program)
    if det.instrument != streams.instrument:
        return Rejection(
            "instrument_mismatch",
            f"packets of a {streams.instrument} APID carry detector {det.name} ({det.instrument})",
            program,
        )
    if plan is None:
        return Rejection("missing_plan", f"no observation plan has been delivered for program {program}; deliver it and re-queue this file", program)
    if plan.program != program:
        return Rejection("plan_mismatch", f"telemetry of program {program} checked against the plan of program {plan.program}", program)
    try:
        obs, exp = plan.find_exposure(key.observation, key.visit, key.visit_group, key.sequence,
                                      key.activity, key.exposure, det.name)
    except KeyError as exc:
        return Rejection("not_in_plan", str(exc.args[0]), program)

    obs = obs.for_exposure(exp)  # a simultaneous channel's detector, a direct image: its own mode
    sub = subarray(det.instrument, obs.subarray, det.name)
    nints, ngroups, ny, nx = obs.nints, obs.ngroups, sub.ysize, sub.xsize
    sci_packets = streams.packets.get("sci", [])
    if not sci_packets:
        return Rejection("no_science_packets", f"exposure {key} has only {', '.join(streams.packets)} packets and no science rows", program)
    first, last = obs.visit_window(exp.visit)
    every = [p for packets in streams.packets.values() for p in packets]
    late_or_early = _outside_window(every, first - time_tolerance, last + time_tolerance)
    if late_or_early:
        p = late_or_early[0]
        when = from_ccsds_time(p.header.time_coarse, p.header.time_fine)
        return Rejection(
            "time_outside_window",
            f"{len(late_or_early)} of {len(every)} packets carry times outside the plan's window for visit "
            f"{exp.visit:03d} of observation {obs.number:03d} ({first.isoformat()} .. {last.isoformat()}, "
            f"tolerance {time_tolerance}); the first, at byte {p.offset}, says {when.isoformat()}",
            program,
        )
    sci = assemble(sci_packets, (nints, ngroups, ny, nx), report, budget=budget)
    if sci.wrong_width and not sci.present.any():
        width = sci.wrong_width.most_common(1)[0][0]
        return Rejection(
            "plan_mismatch",
            f"rows are {width} pixels wide but the plan's subarray {sub.name} is {nx} wide",
            program,
        )
    zero = None
    if streams.packets.get("zeroframe"):
        zero = assemble(streams.packets["zeroframe"], (nints, ny, nx), report, zeroframe=True, budget=budget)
        # A zero-frame row that never arrived stays 0, which the public pipeline reads as
        # "no zero frame for this pixel"; counting it sets DATAPROB.
        report.missing_zeroframe_rows += int((~zero.present).sum())
    refout = None
    if det.has_refout:
        refout = assemble(streams.packets.get("refout", []), (nints, ngroups, ny // 4, nx), report, budget=budget)
    missing = ~sci.present
    report.missing_rows += int(missing.sum())
    if refout is not None and not refout.present.all():
        report.missing_rows += int((~refout.present).sum())

    timing = exposure_timing(det.instrument, sub, obs.readpatt, ngroups, nints)
    t0 = exposure_start(sci.group_times, timing, ngroups, exp.start_time)
    target = plan.target(obs.target_id)
    times = integration_times(t0, timing, nints, ngroups, target.ra, target.dec, ephemeris)
    keywords = exposure_keywords(
        plan=plan, obs=obs, exp=exp, det=det, sub=sub, timing=timing, times=times, created=created,
        software_version=software_version, zero_frame=zero is not None, data_problem=report.data_problem,
    )
    keywords.update(observer_keywords(times.observer, float(times.start[0]), float(times.end[-1]),
                                      target.ra, target.dec, keywords["RA_REF"], keywords["DEC_REF"]))
    if times.observer.why:
        log.warning("exposure %s: BJD_TDB at the geocentre, %s", key, times.observer.why)
    gs = obs.guide_star(exp.visit)
    if gs is not None:
        centroids: Centroids | None = None
        if fine_guiding is not None and fine_guiding.packets.get("gs-centroid"):
            # The file's fine guiding measured this exposure: its own report, so that the
            # science product's DATAPROB does not count the guiding's faults twice.
            centroids = decode_centroids(fine_guiding.packets["gs-centroid"], StreamReport(), budget)
        keywords.update(guide_star_keywords(gs, centroids))
    exposure_fields = {
        "visit": exp.visit, "visit_group": exp.visit_group, "sequence": exp.sequence,
        "activity": f"{exp.activity:02d}", "exposure": exp.exposure, "detector": det.name,
        "exp_type": obs.exp_type, "filter": obs.filter, "pupil": obs.pupil, "readpatt": obs.readpatt,
        "subarray": sub.name, "ngroups": ngroups, "nints": nints, "start_time": t0,
        "ra": exp.pointing.ra, "dec": exp.pointing.dec,
    }
    per_int = ngroups * ny * nx * 2 + (ny * nx * 2 if zero else 0) + (ngroups * (ny // 4) * nx * 2 if refout else 0)
    segments = plan_segments(per_int, nints, segment_bytes)
    base = ExposureName(
        program=program, observation=obs.number, visit=exp.visit, visit_group=exp.visit_group,
        sequence=exp.sequence, activity=f"{exp.activity:02d}", exposure=exp.exposure,
        detector=det.name.lower(), suffix="uncal",
    )
    files = []
    for number, (first, last) in enumerate(segments, start=1):
        name = base if len(segments) == 1 else ExposureName(**{**base.__dict__, "segment": number})
        product = _segment_product(keywords, sci, zero, refout, missing, times, first, last,
                                   number, len(segments), nx, ny)
        if obs.band is not None:  # MIRI MRS: the band (BAND) every channel of the detector took
            set_cards(product, {"BAND": obs.band})
        files.append(UncalFile(name, product, exposure_fields, obs.number))
    return files


def _segment_product(
    keywords: dict,
    sci: RampCube,
    zero: RampCube | None,
    refout: RampCube | None,
    missing: np.ndarray,
    times,
    first: int,
    last: int,
    number: int,
    total: int,
    nx: int,
    ny: int,
) -> FitsProduct:
    sl = slice(first - 1, last)
    kw = dict(keywords)
    kw.update(EXSEGNUM=number, EXSEGTOT=total, INTSTART=first, INTEND=last)
    group_rows = group_table_rows(times, sci.present, first, last, nx, ny)
    int_rows = int_times_rows(times)
    product = uncal_product(
        kw,
        sci.data[sl],
        group_table(group_rows),
        int_times_table(int_rows),
        zeroframe=zero.data[sl] if zero is not None else None,
        refout=refout.data[sl] if refout is not None else None,
    )
    seg_missing = missing[sl]
    if seg_missing.any():
        # Carried as GROUPDQ so that a ramp opened from this file starts with DROPOUT set.
        groupdq = np.zeros(sci.data[sl].shape, dtype=np.uint8)
        groupdq[seg_missing] = dqflags.GROUP["DROPOUT"] | dqflags.GROUP["DO_NOT_USE"]
        product.images["GROUPDQ"] = groupdq
    return product
