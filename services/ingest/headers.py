"""Header keywords of an ``_uncal`` from the plan, the telemetry times and the instrument
tables (pure: values in, a keyword dict out)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord
from astropy.time import Time

from services.ingest.observer import Observer, observer
from shared.ephemeris import Ephemeris
from shared.imaging_wcs import TelescopePointing, ideal_position, pointing_about
from shared.instruments import (
    NIRISS_FWCPOS,
    DetectorInfo,
    ExposureTiming,
    Subarray,
    readout_pattern,
)
from shared.naming import parse_msa_metadata
from shared.plan import Observation, Plan, PlannedExposure
from shared.wcs import wcs_keywords

__all__ = [
    "IntegrationTimes",
    "exposure_keywords",
    "exposure_start",
    "group_table_rows",
    "int_times_rows",
    "integration_times",
    "v1_pointing",
]


@dataclass(frozen=True)
class IntegrationTimes:
    """Start, mid and end of each integration (UTC MJD and BJD_TDB), the end time of
    each group (UTC MJD) and where the BJD_TDB were computed from."""

    start: np.ndarray
    mid: np.ndarray
    end: np.ndarray
    start_bjd: np.ndarray
    mid_bjd: np.ndarray
    end_bjd: np.ndarray
    group_end: np.ndarray  # (nints, ngroups)
    observer: Observer


# The ideal frame of every aperture here: x against V2, y along V3 (VPARITY, V3I_YANG).
_VPARITY = -1
_V3I_YANG = 0.0

def _mjd(when: datetime) -> float:
    return Time(when).mjd


def integration_times(
    t0: datetime, timing: ExposureTiming, nints: int, ngroups: int, ra: float, dec: float,
    ephemeris: Ephemeris | None = None,
) -> IntegrationTimes:
    """Times of every integration and group for an exposure whose first integration
    started at ``t0``. An integration lasts NGROUPS*TGROUP plus one reset frame; group g
    (1-based) ends g*TGROUP after its integration starts. BJD_TDB are those of light
    reaching the observatory on its ``ephemeris`` from (``ra``, ``dec``); without an
    ephemeris that covers the exposure, at the geocentre (``IntegrationTimes.observer``
    says which)."""
    t_int = ngroups * timing.tgroup + timing.tframe
    start0 = _mjd(t0)
    day = 86400.0
    starts = start0 + np.arange(nints) * t_int / day
    ends = starts + ngroups * timing.tgroup / day
    mids = (starts + ends) / 2.0
    group_end = starts[:, None] + np.arange(1, ngroups + 1)[None, :] * timing.tgroup / day
    where = observer(ephemeris, float(starts[0]), float(ends[-1]))
    bjd = where.bjd_tdb(np.concatenate([starts, mids, ends]), ra, dec).reshape(3, nints)
    return IntegrationTimes(starts, mids, ends, bjd[0], bjd[1], bjd[2], group_end, where)


def group_table_rows(
    times: IntegrationTimes, present: np.ndarray, first: int, last: int, ncols: int, nrows: int
) -> list[tuple]:
    """Rows of the GROUP table for integrations ``first``..``last`` (1-based): end time of
    each group as day of year, milliseconds of day and ISO text; completion code 1
    (MISSING_ROWS) when any row of the group never arrived."""
    ngroups = times.group_end.shape[1]
    ends = Time(times.group_end[first - 1 : last].ravel(), format="mjd", scale="utc")
    iso = ends.isot
    rows = []
    for k, (when, text) in enumerate(zip(ends.to_datetime(), iso, strict=True)):
        i, g = first + k // ngroups, k % ngroups + 1
        ms = (when.hour * 3600 + when.minute * 60 + when.second) * 1000 + when.microsecond // 1000
        complete = bool(present[i - 1, g - 1].all())
        rows.append((
            i, g, when.timetuple().tm_yday, ms, 0, text.encode()[:26], ncols, nrows, 0,
            0 if complete else 1, b"COMPLETE" if complete else b"MISSING_ROWS", 0.0, 0.0,
        ))
    return rows


def int_times_rows(times: IntegrationTimes) -> list[tuple]:
    """Rows of the INT_TIMES table for every integration of the exposure."""
    return [
        (i + 1, times.start[i], times.mid[i], times.end[i], times.start_bjd[i], times.mid_bjd[i], times.end_bjd[i])
        for i in range(len(times.start))
    ]


def exposure_start(
    group_times: dict[tuple[int, int], datetime], timing: ExposureTiming, ngroups: int, planned: datetime
) -> datetime:
    """Start of the first integration, from the earliest group time the telemetry carries
    (packets are stamped at the end of their group's readout); the planned start when no
    packet arrived."""
    if not group_times:
        return planned
    t_int = ngroups * timing.tgroup + timing.tframe
    starts = [
        t - timedelta(seconds=(i - 1) * t_int + g * timing.tgroup) for (i, g), t in group_times.items()
    ]
    return min(starts)


def v1_pointing(ra_ref: float, dec_ref: float, roll_ref: float, v2_ref: float, v3_ref: float) -> tuple[float, float, float]:
    """(RA_V1, DEC_V1, PA_V3) from the reference point at (``v2_ref``, ``v3_ref``) arcsec,
    treating (V2, V3) as a flat offset frame with V3 along the detector +y axis (adequate
    at the arcminute scale of one instrument field)."""
    ref = SkyCoord(ra_ref, dec_ref, unit="deg")
    # V1 lies at (-v2, -v3) from the reference point in the (V2, V3) frame.
    sep = math.hypot(v2_ref, v3_ref) / 3600.0
    angle_in_v = math.degrees(math.atan2(-v2_ref, -v3_ref))  # from +V3 towards +V2
    v1 = ref.directional_offset_by((roll_ref + angle_in_v) * u.deg, sep * u.deg)
    return float(v1.ra.deg), float(v1.dec.deg), roll_ref


def _round_ms(when: datetime) -> datetime:
    """Nearest millisecond (packet times carry 1/65536 s, MJD floats about 1 us)."""
    when = when.astimezone(UTC) + timedelta(microseconds=500)
    return when.replace(microsecond=when.microsecond // 1000 * 1000)


def _iso(when: datetime) -> str:
    return _round_ms(when).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]


def exposure_keywords(
    *,
    plan: Plan,
    obs: Observation,
    exp: PlannedExposure,
    det: DetectorInfo,
    sub: Subarray,
    timing: ExposureTiming,
    times: IntegrationTimes,
    created: datetime,
    software_version: str,
    zero_frame: bool,
    data_problem: bool,
) -> dict:
    """Every keyword of the exposure (segment keywords are added per file)."""
    target = plan.target(obs.target_id)
    patt = readout_pattern(obs.readpatt)
    start = _round_ms(Time(times.start[0], format="mjd").to_datetime(timezone=UTC))
    end = _round_ms(Time(times.end[-1], format="mjd").to_datetime(timezone=UTC))
    visit_id = f"{plan.program}{obs.number:03d}{exp.visit:03d}"
    activity = f"{exp.activity:02d}"
    dither_index = exp.dither_point - 1
    xoff, yoff = obs.dither.offsets[dither_index] if dither_index < obs.dither.npoints else (0.0, 0.0)
    # The aperture reference point in the telescope frame: the plan's (the window centre),
    # else (older plans) the detector's.
    p = exp.pointing
    v2_ref, v3_ref = (p.v2_ref, p.v3_ref) if p.v2_ref is not None and p.v3_ref is not None else (det.v2_ref,
                                                                                                  det.v3_ref)
    ra_v1, dec_v1, pa_v3 = v1_pointing(p.ra, p.dec, p.roll, v2_ref, v3_ref)
    aperture_name, about = f"{det.name}_{sub.name}", None
    if obs.aperture is not None:
        # The target is placed on a named aperture (a slit): the pointing is given
        # about its reference point, and XOFFSET/YOFFSET say where the target is in its
        # ideal frame, as the public pipeline reads them for a slit.
        about = pointing_about(TelescopePointing(p.ra, p.dec, p.roll, v2_ref, v3_ref),
                               obs.aperture.v2_ref, obs.aperture.v3_ref)
        aperture_name = obs.aperture.name
        xoff, yoff = ideal_position(about, target.ra, target.dec, parity=_VPARITY, v3_yangle=_V3I_YANG)
    n_in_visit = sum(1 for e in obs.exposures if e.visit == exp.visit and e.detector == exp.detector)
    kw = {
        "DATE": _iso(created),
        "ORIGIN": "JWST-DMS",
        "TELESCOP": "JWST",
        "SDP_VER": software_version,
        "TITLE": plan.title,
        "PI_NAME": plan.pi_name,
        "CATEGORY": plan.category,
        "PROGRAM": plan.program,
        "OBSERVTN": f"{obs.number:03d}",
        "VISIT": f"{exp.visit:03d}",
        "VISITGRP": f"{exp.visit_group:02d}",
        "SEQ_ID": str(exp.sequence),
        "ACT_ID": activity,
        "EXPOSURE": f"{exp.exposure:05d}",
        "OBS_ID": f"V{visit_id}P{0:08d}{exp.visit_group:02d}{exp.sequence}{activity}",
        "VISIT_ID": visit_id,
        "DATE-OBS": start.strftime("%Y-%m-%d"),
        "TIME-OBS": start.strftime("%H:%M:%S.%f")[:-3],
        "DATE-BEG": _iso(start),
        "DATE-END": _iso(end),
        "TEMPLATE": obs.template,
        "BKGDTARG": obs.is_background,
        "VISITYPE": "PRIME_TARGETED_FIXED",
        "TSOVISIT": obs.tsovisit,
        "NEXPOSUR": n_in_visit,
        "ENGQLPTG": "CALCULATED",
        "TARGPROP": target.name,
        "TARGNAME": target.name,
        "TARGTYPE": target.target_type,
        "TARG_RA": target.ra,
        "TARG_DEC": target.dec,
        "INSTRUME": det.instrument,
        "DETECTOR": det.name,
        "MODULE": det.module,
        "CHANNEL": det.channel,
        "FILTER": obs.filter,
        "PUPIL": obs.pupil if det.instrument in ("NIRCAM", "NIRISS") else None,
        # NIRISS: the filter wheel's position angle, where its grisms' SPECWCS models them
        "FWCPOS": NIRISS_FWCPOS if det.instrument == "NIRISS" else None,
        # NIRSpec: the grating wheel's element (the plan's pupil) and the fixed slit
        "GRATING": obs.pupil if det.instrument == "NIRSPEC" else None,
        "FXD_SLIT": (obs.fixed_slit or "NONE") if det.instrument == "NIRSPEC" else None,
        # NIRSpec MOS: the MSA metadata file and the configuration in it (its name's cc)
        "MSAMETFL": obs.msa_metadata,
        "MSAMETID": parse_msa_metadata(obs.msa_metadata).config if obs.msa_metadata else None,
        "EXP_TYPE": obs.exp_type,
        "EXPCOUNT": exp.exposure,
        "EXPRIPAR": "PRIME",
        "IS_PSF": obs.is_psf,
        "READPATT": obs.readpatt,
        "NOUTPUTS": sub.noutputs,
        "NINTS": obs.nints,
        "NGROUPS": obs.ngroups,
        "NFRAMES": patt.nframes,
        "GROUPGAP": patt.groupgap,
        "NRSTSTRT": 1,
        "NRESETS": 1,
        "FRMDIVSR": patt.nframes,
        "TSAMPLE": 10.0,
        "TFRAME": round(timing.tframe, 6),
        "TGROUP": round(timing.tgroup, 6),
        "EFFINTTM": round(timing.effinttm, 6),
        "EFFEXPTM": round(timing.effexptm, 6),
        "DURATION": round(timing.duration, 6),
        "TMEASURE": round(timing.tmeasure, 6),
        "EXPSTART": float(times.start[0]),
        "EXPMID": float((times.start[0] + times.end[-1]) / 2.0),
        "EXPEND": float(times.end[-1]),
        "ZEROFRAM": zero_frame,
        "DATAPROB": data_problem,
        "SUBARRAY": sub.name,
        "SUBSTRT1": sub.xstart,
        "SUBSTRT2": sub.ystart,
        "SUBSIZE1": sub.xsize,
        "SUBSIZE2": sub.ysize,
        "FASTAXIS": 1,
        "SLOWAXIS": 2,
        "PATTTYPE": obs.dither.pattern_type,
        "DITHOPFR": obs.dither.optimized_for,
        "NUMDTHPT": obs.dither.npoints,
        "PATT_NUM": exp.dither_point,
        "XOFFSET": float(xoff),
        "YOFFSET": float(yoff),
        "APERNAME": aperture_name,
        # the named aperture's reference point in the window (the public pipeline places a grism
        # time series' source there), 1-based
        "XREF_SCI": None if obs.aperture is None or obs.aperture.x_ref is None else obs.aperture.x_ref - (sub.xstart - 1),
        "YREF_SCI": None if obs.aperture is None or obs.aperture.y_ref is None else obs.aperture.y_ref - (sub.ystart - 1),
        "BUNIT": "DN",
        "XPOSURE": round(timing.effexptm, 6),
        "MJD-BEG": float(times.start[0]),
        "MJD-AVG": float((times.start[0] + times.end[-1]) / 2.0),
        "MJD-END": float(times.end[-1]),
        "PA_APER": exp.pointing.roll,
        "RA_V1": ra_v1,
        "DEC_V1": dec_v1,
        "PA_V3": pa_v3,
        "V2_REF": v2_ref,
        "V3_REF": v3_ref,
        "VPARITY": _VPARITY,
        "V3I_YANG": _V3I_YANG,
    }
    kw.update(wcs_keywords(exp.pointing.ra, exp.pointing.dec, exp.pointing.roll, det.pixel_scale,
                           sub.xsize, sub.ysize))
    if about is not None:
        kw.update(RA_REF=about.ra_ref, DEC_REF=about.dec_ref, ROLL_REF=about.roll_ref, V2_REF=about.v2_ref,
                  V3_REF=about.v3_ref)
    return kw
