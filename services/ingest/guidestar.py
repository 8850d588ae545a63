"""FGS guiding telemetry -> the public guide-star products, and the guide-star keywords of
the science exposures they guided (pure: packets and the plan in, products out).

Products (names: :class:`shared.naming.GuideStarName`; layout: the public GuiderRawModel,
DATAMODL ``GuiderRawModel``):

* ``jw<visit>_gs-id_1_image_uncal.fits`` (FGS_ID-IMAGE), ``_gs-acq1_<yyyydddhhmmss>_uncal``
  (FGS_ACQ1), ``_gs-acq2_..._uncal`` (FGS_ACQ2), ``_gs-track_..._uncal`` (FGS_TRACK): one per
  guided visit, from the visit's guiding file;
* the TRACK product also carries the ``Track subarray table`` (one row per integration: its
  first read's time, the window's corner and size);
* ``_gs-fg_<yyyydddhhmmss>_uncal`` (FGS_FINEGUIDE): one per guided exposure, from the
  exposure's own telemetry, with the 16 Hz centroids (``FGS Centroid Packet`` table) and
  the pointing jitter (``Pointing`` table, JITTRAVG/JITTRMAX/JITTRMIN).

SCI is float32 (nints, ngroups, ny, nx) as the schema declares; DQ (ny, nx) flags rows that
did not arrive in some integration (DROPOUT | DO_NOT_USE). The ``Planned Reference Stars``
table holds the plan's guide star, ``Flight Reference Stars`` the star as measured in the
last integration (centroid and DN/s of the last-minus-first read difference).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
from astropy.time import Time

from services.ingest.assembly import ExposureStreams, StreamReport, assemble
from shared.datamodels import FitsProduct, dqflags
from shared.instruments import DETECTORS_BY_CODE, guide_window
from shared.naming import GUIDE_MODES, GuideStarName
from shared.plan import GuideStar, Observation, Plan
from shared.telemetry import (
    InflateBudget,
    Packet,
    PayloadError,
    centroids_from_rows,
    from_ccsds_time,
)

__all__ = [
    "MODEL_TYPE",
    "Centroids",
    "GuideStarFile",
    "decode_centroids",
    "guide_star_keywords",
    "guide_streams",
    "guiding_products",
]

MODEL_TYPE = "GuiderRawModel"
MAX_GUIDE_INTS = 100_000
_PCS_MODE = {"id-image": "NONE", "id-stack": "NONE", "acq1": "NONE", "acq2": "NONE", "track": "TRACK",
             "fg": "FINEGUIDE"}

PLANNED_DTYPE = np.dtype([
    ("guide_star_order", ">i4"), ("reference_order", ">i4"), ("reference_star_id", "S12"), ("ra", ">f8"),
    ("dec", ">f8"), ("id_x", ">f8"), ("id_y", ">f8"), ("fgs_mag", ">f8"), ("fgs_mag_uncert", ">f8"),
    ("count_rate", ">f8"), ("count_rate_uncert", ">f8"),
])
FLIGHT_DTYPE = np.dtype([("reference_star_id", "S2"), ("id_x", ">f8"), ("id_y", ">f8"), ("count_rate", ">f8")])
POINTING_DTYPE = np.dtype([
    ("time", ">f8"), ("jitter", ">f8"), ("delta_ddc_ra", ">f8"), ("delta_ddc_dec", ">f8"),
    ("delta_aperture_pa", ">f8"), ("delta_v1_ra", ">f8"), ("delta_v1_dec", ">f8"), ("delta_v3_pa", ">f8"),
    ("delta_j1_ra", ">f8"), ("delta_j1_dec", ">f8"), ("delta_j3_pa", ">f8"), ("HGA_motion", "S16"),
])
TRACK_SUBARRAY_DTYPE = np.dtype([("observatory_time", "S23"), ("x_corner", ">f8"), ("y_corner", ">f8"),
                                 ("x_size", ">i4"), ("y_size", ">i4")])
CENTROID_DTYPE = np.dtype([
    ("observatory_time", "S23"), ("centroid_time", "S23"), ("guide_star_position_x", ">f8"),
    ("guide_star_position_y", ">f8"), ("guide_star_instrument_counts_per_sec", ">f8"),
    ("signal_to_noise_current_frame", ">f8"), ("delta_signal", ">f8"), ("delta_noise", ">f8"),
    ("psf_width_x", ">i4"), ("psf_width_y", ">i4"), ("data_quality", ">i4"), ("bad_pixel_flag", "S4"),
    ("bad_centroid_dq_flag", "S12"), ("cosmic_ray_hit_flag", "S5"), ("sw_subwindow_loc_change_flag", "S5"),
    ("guide_star_at_detector_subwindow_boundary_flag", "S5"), ("subwindow_out_of_FOV_flag", "S5"),
])
CENTROID_RATE_HZ = 16.0  # the samples' nominal rate: each centroid integrates 1/16 s


@dataclass(frozen=True)
class Centroids:
    """Fine-guide centroids, time-ordered, duplicates removed: ``time`` UTC datetimes,
    ``x``/``y`` offsets from the planned position (mas, FGS ideal frame), ``counts`` e-/s,
    ``quality`` flags."""

    time: list[datetime]
    x: np.ndarray
    y: np.ndarray
    counts: np.ndarray
    quality: np.ndarray

    def __len__(self) -> int:
        return len(self.time)

    def stats(self) -> tuple[float, float, float]:
        """(rms, max, min) radial offset from the mean position, mas, over good samples."""
        good = self.quality == 0
        if not good.any():
            return math.nan, math.nan, math.nan
        r = np.hypot(self.x[good] - self.x[good].mean(), self.y[good] - self.y[good].mean())
        return float(np.sqrt(np.mean(r**2))), float(r.max()), float(r.min())


@dataclass(frozen=True)
class GuideStarFile:
    """A guide-star product; ``guided`` the identifiers (visit_group, sequence, activity,
    exposure) of the exposure a fine-guide product guided, None for the visit's products."""

    name: GuideStarName
    product: FitsProduct
    observation: int
    guided: tuple[int, int, int, int] | None


def guide_streams(streams: ExposureStreams) -> bool:
    """Whether these packets are FGS guiding (rather than an exposure's science)."""
    return bool(streams.packets) and all(s.startswith("gs-") for s in streams.packets)


def decode_centroids(packets: list[Packet], report: StreamReport, budget: InflateBudget | None = None) -> Centroids:
    """The samples of centroid packets, sorted by time; a repeated sample is counted as a
    duplicate and kept once; an unreadable payload is a ``bad_payload`` fault."""
    seen: dict[tuple[int, int], tuple] = {}
    for p in packets:
        try:
            fields = centroids_from_rows(p.rows(None, budget))
        except PayloadError as exc:
            report.faults["bad_payload"] += 1
            report.fault_details.append(f"byte {p.offset}: bad_payload: centroid packet: {exc}")
            continue
        base_coarse, base_fine = p.header.time_coarse, p.header.time_fine
        base_us = base_coarse * 1_000_000 + round(base_fine * 1_000_000 / 65536)
        for k in range(len(fields["dt_us"])):
            key = (base_us + int(fields["dt_us"][k]), 0)
            row = (int(fields["x_uas"][k]), int(fields["y_uas"][k]), int(fields["counts_100"][k]),
                   int(fields["quality"][k]))
            if key in seen:
                report.duplicates += 1
                if seen[key] != row:
                    report.conflicting_duplicates += 1
                continue
            seen[key] = row
    keys = sorted(seen)
    epoch = from_ccsds_time(0, 0)
    times = [epoch + timedelta(microseconds=k[0]) for k in keys]
    rows = np.array([seen[k] for k in keys], dtype=np.float64).reshape(-1, 4)
    return Centroids(times, rows[:, 0] / 1000.0, rows[:, 1] / 1000.0, rows[:, 2] * 100.0,
                     rows[:, 3].astype(np.int32))


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]


def _mjd(when: datetime) -> float:
    return float(Time(when.astimezone(UTC).replace(tzinfo=None), scale="utc").mjd)


def guide_star_keywords(gs: GuideStar, centroids: Centroids | None) -> dict:
    """The guide-star keywords of a science exposure guided by ``gs``; with its fine-guide
    centroids, when the guiding ran (GSSTRTTM/GSENDTIM), where the star was on average
    (GSCENTX/GSCENTY) and the jitter statistics (GSJITRMS, GSJITMAX, GSJITNUM)."""
    kw = {
        "GS_ORDER": 1, "GDSTARID": gs.id, "GS_RA": gs.ra, "GS_DEC": gs.dec, "GS_URA": gs.ra_uncert,
        "GS_UDEC": gs.dec_uncert, "GS_MAG": gs.fgs_mag, "GS_UMAG": gs.fgs_mag_uncert, "PCS_MODE": "FINEGUIDE",
        "GSIDL_X": gs.ideal_x, "GSIDL_Y": gs.ideal_y,
    }
    if centroids is not None and len(centroids):
        good = centroids.quality == 0
        rms, peak, _ = centroids.stats()
        kw.update(
            GSSTRTTM=_iso(centroids.time[0]), GSENDTIM=_iso(centroids.time[-1]),
            GSCENTX=round(gs.ideal_x + float(centroids.x[good].mean()) / 1000.0, 6) if good.any() else None,
            GSCENTY=round(gs.ideal_y + float(centroids.y[good].mean()) / 1000.0, 6) if good.any() else None,
            GSJITRMS=round(rms, 4) if math.isfinite(rms) else None,
            GSJITMAX=round(peak, 4) if math.isfinite(peak) else None,
            GSJITNUM=int(good.sum()),
        )
    return kw


def _image_cube(packets: list[Packet], report: StreamReport, budget: InflateBudget | None):
    """The (nints, ngroups, ny, nx) cube of guider image packets, its rows-present mask and
    group times; None when the packets do not describe a window."""
    widths = set()
    for p in packets[:1]:
        try:
            widths.add(p.rows(None, budget).shape[1])
        except PayloadError:
            return None
    if not widths:
        return None
    nx = widths.pop()
    nints = max(p.header.integration for p in packets)
    ngroups = max(p.header.group for p in packets)
    ny = max(p.header.first_row + p.header.nrows for p in packets)
    if not (1 <= nints <= MAX_GUIDE_INTS and 1 <= ngroups <= 2 and ny <= 2048):
        return None
    return assemble(packets, (nints, ngroups, ny, nx), report, budget=budget)


def _measured_star(cube: np.ndarray, times: dict, present: np.ndarray) -> tuple[float, float, float]:
    """(x, y, DN/s) of the star in the last integration's last-minus-first read difference:
    a centroid over a 5x5 box about the brightest pixel, background the window's median."""
    last = cube[-1].astype(np.float64)
    diff = last[-1] - last[0] if last.shape[0] > 1 else last[0]
    diff = diff - np.median(diff)
    ny, nx = diff.shape
    iy, ix = np.unravel_index(int(np.argmax(diff)), diff.shape)
    y0, y1, x0, x1 = max(iy - 2, 0), min(iy + 3, ny), max(ix - 2, 0), min(ix + 3, nx)
    box = np.clip(diff[y0:y1, x0:x1], 0.0, None)
    total = float(box.sum())
    if total <= 0:
        return math.nan, math.nan, math.nan
    yy, xx = np.mgrid[y0:y1, x0:x1]
    nint = cube.shape[0]
    t_first, t_last = times.get((nint, 1)), times.get((nint, cube.shape[1]))
    dt = (t_last - t_first).total_seconds() if t_first and t_last and t_last > t_first else math.nan
    return float((xx * box).sum() / total), float((yy * box).sum() / total), total / dt if dt else math.nan


def _group_time(times: dict) -> float | None:
    """Median time between consecutive reads of an integration (s), rounded to the packet
    clock (1/65536 s); None with fewer than two reads."""
    steps = [(times[(i, g + 1)] - times[(i, g)]).total_seconds() for (i, g) in times if (i, g + 1) in times]
    steps = [t for t in steps if t > 0]
    return round(float(np.median(steps)) * 65536) / 65536 if steps else None


def _common_keywords(plan: Plan, obs: Observation, visit: int, gs: GuideStar, mode: str, created: datetime,
                     software_version: str, start: datetime, end: datetime) -> dict:
    visit_id = f"{plan.program}{obs.number:03d}{visit:03d}"
    return {
        "DATE": _iso(created), "ORIGIN": "JWST-DMS", "TELESCOP": "JWST", "SDP_VER": software_version,
        "TITLE": plan.title, "PI_NAME": plan.pi_name, "CATEGORY": plan.category,
        "PROGRAM": plan.program, "OBSERVTN": f"{obs.number:03d}", "VISIT": f"{visit:03d}", "VISIT_ID": visit_id,
        "DATE-OBS": start.strftime("%Y-%m-%d"), "TIME-OBS": start.strftime("%H:%M:%S.%f")[:-3],
        "DATE-BEG": _iso(start), "DATE-END": _iso(end),
        "INSTRUME": "FGS", "DETECTOR": gs.detector, "EXP_TYPE": GUIDE_MODES[mode],
        "EXPSTART": _mjd(start), "EXPEND": _mjd(end), "DATASTRT": _mjd(start), "DATAEND": _mjd(end),
        **guide_star_keywords(gs, None), "PCS_MODE": _PCS_MODE[mode], "GSSTRTTM": _iso(start),
        "GSENDTIM": _iso(end), "GSACSTAT": "COMPLETE",
    }


def _pointing_table(c: Centroids, roll_deg: float) -> np.ndarray:
    """One row per centroid: the radial offset from the mean (mas) and the offsets on the
    sky (arcsec), taking ideal +y along the V3 position angle ``roll_deg`` and ideal +x
    90 degrees East of it; no roll jitter is measured (PA deltas 0)."""
    dx, dy = c.x - c.x.mean(), c.y - c.y.mean()
    r = math.radians(roll_deg)
    east = (dx * math.cos(r) + dy * math.sin(r)) / 1000.0
    north = (-dx * math.sin(r) + dy * math.cos(r)) / 1000.0
    table = np.zeros(len(c), dtype=POINTING_DTYPE)
    table["time"] = [_mjd(t) for t in c.time]
    table["jitter"] = np.hypot(dx, dy)
    for prefix in ("ddc", "v1", "j1"):
        table[f"delta_{prefix}_ra"] = east
        table[f"delta_{prefix}_dec"] = north
    table["HGA_motion"] = b"NONE"
    return table


def _track_subarray_table(cube, gs: GuideStar) -> np.ndarray:
    """One row per TRACK integration: the time of its first read and the window it read
    (corner = SUBSTRT1/SUBSTRT2, 1-based full-frame pixels; the simulated TRACK window does
    not move)."""
    nints, _, ny, nx = cube.data.shape
    window = guide_window(gs.detector, gs.ideal_x, gs.ideal_y, nx)
    table = np.zeros(nints, dtype=TRACK_SUBARRAY_DTYPE)
    table["observatory_time"] = [_iso(cube.group_times[(i + 1, 1)]).encode() if (i + 1, 1) in cube.group_times
                                 else b"" for i in range(nints)]
    table["x_corner"], table["y_corner"] = window.xstart, window.ystart
    table["x_size"], table["y_size"] = nx, ny
    return table


def _centroid_table(c: Centroids, gs: GuideStar) -> np.ndarray:
    table = np.zeros(len(c), dtype=CENTROID_DTYPE)
    stamps = [_iso(t).encode() for t in c.time]
    table["observatory_time"] = stamps
    table["centroid_time"] = stamps
    table["guide_star_position_x"] = gs.ideal_x + c.x / 1000.0
    table["guide_star_position_y"] = gs.ideal_y + c.y / 1000.0
    table["guide_star_instrument_counts_per_sec"] = c.counts
    electrons = np.clip(c.counts / CENTROID_RATE_HZ, 0.0, None)
    table["signal_to_noise_current_frame"] = np.sqrt(electrons)
    table["delta_signal"] = np.diff(c.counts, prepend=c.counts[:1])
    table["delta_noise"] = np.sqrt(2.0 * electrons) * CENTROID_RATE_HZ
    table["psf_width_x"] = -1  # not in the centroid telemetry
    table["psf_width_y"] = -1
    table["data_quality"] = c.quality
    flag = np.where(c.quality != 0, b"T", b"F")
    for name in ("bad_pixel_flag", "bad_centroid_dq_flag", "cosmic_ray_hit_flag", "sw_subwindow_loc_change_flag",
                 "guide_star_at_detector_subwindow_boundary_flag", "subwindow_out_of_FOV_flag"):
        table[name] = flag
    return table


def guiding_products(
    streams: ExposureStreams,
    plan: Plan,
    report: StreamReport,
    *,
    created: datetime,
    software_version: str,
    budget: InflateBudget | None = None,
    science_detector: str | None = None,
) -> list[GuideStarFile] | str:
    """The guide-star products of one guiding stream set (a visit's activities, or one
    exposure's fine guiding); a string says why they cannot be made.

    ``science_detector``: for fine guiding, the detector whose telemetry file carried it; the
    product is made only from the file of the exposure's first detector (every detector's
    file carries the same fine guiding, for its own header keywords)."""
    key = streams.key
    det = DETECTORS_BY_CODE.get(key.detector_code)
    if det is None or det.instrument != "FGS":
        return f"guiding packets name detector code {key.detector_code}, not an FGS guider"
    try:
        obs = plan.observation(key.observation)
    except KeyError:
        return f"guiding of observation {key.observation:03d}, which the plan does not have"
    gs = obs.guide_star(key.visit)
    if gs is None:
        return f"guiding of observation {key.observation:03d} visit {key.visit:03d}, which the plan does not guide"
    if gs.detector != det.name:
        return f"guiding on {det.name} where the plan selected {gs.detector}"
    out: list[GuideStarFile] = []
    centroid_packets = streams.packets.get("gs-centroid", [])
    fg_packets = streams.packets.get("gs-fg", [])
    if centroid_packets or fg_packets:
        exp = next((e for e in obs.exposures if (e.visit, e.visit_group, e.sequence, e.activity, e.exposure)
                    == (key.visit, key.visit_group, key.sequence, key.activity, key.exposure)), None)
        if exp is None:
            return f"fine guiding of exposure {key}, which the plan does not have"
        if science_detector is not None and science_detector != obs.detectors[0]:
            return []
        centroids = decode_centroids(centroid_packets, report, budget)
        if not len(centroids):
            return f"fine guiding of exposure {key} without a readable centroid"
        start, end = centroids.time[0], centroids.time[-1] + timedelta(seconds=1 / CENTROID_RATE_HZ)
        kw = _common_keywords(plan, obs, key.visit, gs, "fg", created, software_version, start, end)
        kw.update(guide_star_keywords(gs, centroids))
        kw.update(PCS_MODE="FINEGUIDE", VISITGRP=f"{exp.visit_group:02d}", SEQ_ID=str(exp.sequence),
                  ACT_ID=f"{exp.activity:02d}", EXPOSURE=f"{exp.exposure:05d}")
        rms, peak, low = centroids.stats()
        product = _product(kw, fg_packets, report, budget, gs)
        product.tables["Pointing"] = _pointing_table(centroids, exp.pointing.roll)
        product.tables["FGS Centroid Packet"] = _centroid_table(centroids, gs)
        product.hdu_keywords["Pointing"] = {"JITTRAVG": rms, "JITTRMAX": peak, "JITTRMIN": low,
                                            "POINTTIM": _iso(start), "PA_V3": exp.pointing.roll}
        product.hdu_keywords["FGS Centroid Packet"] = {"DETECTID": gs.detector, "GUIDESTA": "FINE_GUIDE"}
        name = GuideStarName(plan.program, obs.number, key.visit, "fg", "uncal", start=start.replace(tzinfo=None,
                                                                                                     microsecond=0))
        out.append(GuideStarFile(name, product, obs.number,
                                 (exp.visit_group, exp.sequence, exp.activity, exp.exposure)))
    for mode in ("id-image", "acq1", "acq2", "track"):
        packets = streams.packets.get(f"gs-{mode}", [])
        if not packets:
            continue
        times = sorted(p.header.time for p in packets)
        kw = _common_keywords(plan, obs, key.visit, gs, mode, created, software_version, times[0], times[-1])
        cube = _image_cube(packets, report, budget)
        if cube is None:
            return (f"{GUIDE_MODES[mode]} images of observation {key.observation:03d} visit {key.visit:03d} do not "
                    "form a window: integrations, reads (at most 2) or rows out of range, or an unreadable payload")
        product = _product(kw, packets, report, budget, gs, cube)
        if mode == "track":
            product.tables["Track subarray table"] = _track_subarray_table(cube, gs)
        if mode == "id-image":
            name = GuideStarName(plan.program, obs.number, key.visit, mode, "uncal", attempt=1)
        else:
            name = GuideStarName(plan.program, obs.number, key.visit, mode, "uncal",
                                 start=times[0].replace(tzinfo=None, microsecond=0))
        out.append(GuideStarFile(name, product, obs.number, None))
    return out


def _product(keywords: dict, packets: list[Packet], report: StreamReport, budget: InflateBudget | None,
             gs: GuideStar, cube=None) -> FitsProduct:
    """A GuiderRawModel product; without images (a fine-guide product whose images are
    missing or unusable) SCI is one DO_NOT_USE pixel and the centroid tables carry it."""
    planned = np.zeros(1, dtype=PLANNED_DTYPE)
    planned[0] = (1, 0, gs.id[:12].encode(), gs.ra, gs.dec, gs.ideal_x, gs.ideal_y, gs.fgs_mag,
                  gs.fgs_mag_uncert, math.nan, math.nan)  # the plan gives no planned count rate
    if cube is None and packets:
        cube = _image_cube(packets, report, budget)
    if cube is None:
        sci = np.zeros((1, 1, 1, 1), dtype=np.float32)
        dq = np.full((1, 1), dqflags.PIXEL["DO_NOT_USE"], dtype=np.uint32)
        flight = np.zeros(0, dtype=FLIGHT_DTYPE)
    else:
        sci = cube.data.astype(np.float32)
        dq = np.zeros(sci.shape[-2:], dtype=np.uint32)
        missing_rows = ~cube.present.all(axis=(0, 1))
        dq[missing_rows, :] = dqflags.PIXEL["DROPOUT"] | dqflags.PIXEL["DO_NOT_USE"]
        report.missing_rows += int((~cube.present).sum())
        x, y, rate = _measured_star(cube.data, cube.group_times, cube.present)
        flight = np.array([(b"GS", x, y, rate)], dtype=FLIGHT_DTYPE)
    nints, ngroups, ny, nx = sci.shape
    # Where the window sits on the guider: around the guide star's planned position.
    window = guide_window(gs.detector, gs.ideal_x, gs.ideal_y, nx) if nx == ny else None
    keywords = {**keywords, "NINTS": nints, "NGROUPS": ngroups, "NFRAMES": 1, "GROUPGAP": 0,
                "SUBSTRT1": window.xstart if window else 1, "SUBSTRT2": window.ystart if window else 1,
                "SUBSIZE1": nx, "SUBSIZE2": ny, "BUNIT": "DN"}
    tgroup = _group_time(cube.group_times) if cube is not None else None
    if tgroup is not None:  # the read-to-read time, as the packet times give it
        keywords.update(TFRAME=tgroup, TGROUP=tgroup)
    product = FitsProduct(model_type=MODEL_TYPE, keywords=keywords, images={"SCI": sci, "DQ": dq},
                          tables={"Planned Reference Stars": planned, "Flight Reference Stars": flight})
    product.hdu_keywords["Flight Reference Stars"] = {"NUMREFST": len(flight)}
    return product
