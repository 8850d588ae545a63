"""Fine guidance: the guide star of each visit, the pointing jitter while guiding, and the
FGS guiding telemetry (format: :mod:`shared.telemetry`, docs/telemetry.md).

Every guided visit (every observation that is not a dark) has one guide star, chosen when
the plan is built (:func:`select_guide_star`): a star 6 to 9 arcmin from the visit's first
pointing, of FGS magnitude 12 to 16.5, planned at a position of the FGS ideal frame.

The observatory then runs, before the first exposure of the visit, the guide-star
activities ID (two 2-group integrations of a 128x128 window), ACQ1 (6 of 64x64), ACQ2
(5 of 32x32) and TRACK (16 of 32x32, at 16 Hz), and fine guides (FG) through the
exposures: an 8x8 window read at 16 Hz, of which each centroid is downlinked and one
2-group image per second. Each activity lasts its integrations, starting
:data:`ACTIVITY_LEAD` seconds before the first exposure.

The images are read through the guider's detector model (:mod:`.detector_model`, the same
model its reference files are written from): each window (:func:`shared.instruments.guide_window`,
around the guide star's planned position) sees the pixels' quantum efficiency (the flat;
dead pixels see nothing), dark current (hot and warm pixels), gain, bias and CDS read noise,
so the calibrated guide-star products can be scored against the truth: the star gives
``count_rate(fgs_mag) / g0`` DN/s once flat-fielded (g0 the guider's mean gain, as for the
science detectors).

The pointing jitter is a damped random walk (Ornstein-Uhlenbeck process) per axis of the
FGS ideal frame with rms ``jitter_mas`` and correlation time ``jitter_time_s``, sampled at
16 Hz from the start of TRACK to the end of the visit's last exposure. The science
exposures see it as a blur: :func:`exposure_blur` is the variance of the true jitter over
an exposure's time, by which the simulator widens the PSF of that exposure (a Gaussian
convolution, the distribution of the pointing over the exposure being close to
Gaussian). The FGS measures the jitter with centroid noise that grows with magnitude
(:func:`centroid_noise_mas`): the telemetry carries the measured centroids; the truth
keeps both.

Telemetry layout: the visit's ID/ACQ1/ACQ2/TRACK images travel in a file of the visit,
``<visit_id>_gs.ccsds``; the fine-guide centroids and images of an exposure travel in the
telemetry file of each detector of that exposure (identified by the exposure's
identifiers and the guider's detector code), so an exposure's file is complete on its own
and no file depends on another's arrival.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from scipy.signal import lfilter
from scipy.special import erf

from shared.instruments import detector, exposure_timing, guide_window, subarray
from shared.plan import GuideStar, Observation, Plan, PlannedExposure
from shared.telemetry import APID, SecondaryHeader, centroid_rows, encode_packet, to_ccsds_time

from .detector_model import DetectorModel
from .pointing import offset_radec
from .seeding import Stream, generator

__all__ = [
    "ACTIVITIES",
    "ACTIVITY_LEAD",
    "FG_IMAGE_PERIOD",
    "GUIDE_RATE_HZ",
    "VisitJitter",
    "centroid_noise_mas",
    "exposure_blur",
    "fine_guide_packets",
    "guided",
    "select_guide_star",
    "visit_guide_packets",
    "visit_jitter",
    "write_visit_guiding",
]

GUIDE_RATE_HZ = 16.0  # FG and TRACK centroid rate
FG_IMAGE_PERIOD = 1.0  # s between downlinked fine-guide images
FGS_PIXEL_ARCSEC = 0.069
FGS_FWHM_PIX = 1.3
FGS_SKY = 2.0  # e-/s/pixel
FGS_ZERO_POINT = 27.0  # FGS magnitude giving 1 e-/s


@dataclass(frozen=True)
class Activity:
    """A guide-star activity with images: window size, integrations, frame time (s) and
    how long before the visit's first exposure it starts (s)."""

    mode: str
    size: int
    nints: int
    tframe: float
    lead: float


ACTIVITIES = (
    Activity("id-image", 128, 2, 0.30, 300.0),
    Activity("acq1", 64, 6, 0.10, 240.0),
    Activity("acq2", 32, 5, 0.05, 180.0),
    Activity("track", 32, 16, 1.0 / GUIDE_RATE_HZ, 120.0),
)
ACTIVITY_LEAD = {a.mode: a.lead for a in ACTIVITIES}
FG_SIZE = 8


def guided(obs: Observation) -> bool:
    """Whether an observation is taken under fine guidance (every one but darks)."""
    return not obs.exp_type.endswith("DARK")


def select_guide_star(seed: int, program: int, obs_number: int, visit: int, ra: float, dec: float) -> GuideStar:
    """The guide star of a visit whose first exposure points at (ra, dec): deterministic in
    the identifiers."""
    rng = generator(seed, Stream.GUIDING, program, obs_number, visit, 0)
    radius = rng.uniform(360.0, 540.0)
    angle = rng.uniform(0.0, 2.0 * math.pi)
    gs_ra, gs_dec = offset_radec(ra, dec, radius * math.sin(angle), radius * math.cos(angle))
    mag = float(rng.uniform(12.0, 16.5))
    digits = int(rng.integers(0, 36**6))
    ident = "S" + np.base_repr(digits, 36).rjust(6, "0") + f"{obs_number:03d}"
    return GuideStar(
        visit=visit, id=ident, ra=float(gs_ra), dec=float(gs_dec), ra_uncert=1e-5, dec_uncert=1e-5,
        fgs_mag=round(mag, 3), fgs_mag_uncert=0.05, detector="GUIDER1" if rng.random() < 0.5 else "GUIDER2",
        ideal_x=round(float(rng.uniform(-40.0, 40.0)), 3), ideal_y=round(float(rng.uniform(-40.0, 40.0)), 3),
    )


def centroid_noise_mas(fgs_mag: float) -> float:
    """Rms per axis of one 16 Hz centroid of a star of ``fgs_mag`` (photon-limited: it
    doubles every 1.5 magnitudes), milliarcsec."""
    return 0.4 * 10 ** (0.2 * (fgs_mag - 12.0))


def count_rate(fgs_mag: float) -> float:
    """e-/s of the guide star on the FGS."""
    return 10 ** (0.4 * (FGS_ZERO_POINT - fgs_mag))


@dataclass(frozen=True)
class VisitJitter:
    """The pointing of a visit while guiding, sampled at :data:`GUIDE_RATE_HZ` from
    ``start``: ``true_x``/``true_y`` the telescope's offsets and ``meas_x``/``meas_y`` the
    FGS centroids (milliarcsec, FGS ideal frame)."""

    start: datetime
    true_x: np.ndarray
    true_y: np.ndarray
    meas_x: np.ndarray
    meas_y: np.ndarray

    @property
    def times(self) -> np.ndarray:
        """Seconds after ``start`` of each sample."""
        return np.arange(len(self.true_x)) / GUIDE_RATE_HZ

    def window(self, start: datetime, seconds: float) -> slice:
        """Samples within [start, start + seconds)."""
        t0 = (start - self.start).total_seconds()
        first = max(0, math.ceil(t0 * GUIDE_RATE_HZ - 1e-9))
        last = min(len(self.true_x), math.ceil((t0 + seconds) * GUIDE_RATE_HZ - 1e-9))
        return slice(first, max(first, last))


def _exposure_end(obs: Observation, exp: PlannedExposure) -> datetime:
    timing = exposure_timing(obs.instrument, subarray(obs.instrument, obs.subarray), obs.readpatt,
                             obs.ngroups, obs.nints)
    return exp.start_time + timedelta(seconds=timing.duration)


def visit_jitter(plan: Plan, obs: Observation, visit: int, seed: int, rms_mas: float, tau_s: float) -> VisitJitter:
    """The jitter of a guided visit, from the start of TRACK to the end of its last exposure."""
    gs = obs.guide_star(visit)
    if gs is None:
        raise ValueError(f"observation {obs.number:03d} visit {visit:03d} has no guide star")
    exposures = [e for e in obs.exposures if e.visit == visit]
    start = min(e.start_time for e in exposures) - timedelta(seconds=ACTIVITY_LEAD["track"])
    end = max(_exposure_end(obs, e) for e in exposures)
    n = int(math.ceil((end - start).total_seconds() * GUIDE_RATE_HZ)) + 1
    rng = generator(seed, Stream.GUIDING, int(plan.program), obs.number, visit, 1)
    a = math.exp(-1.0 / (GUIDE_RATE_HZ * tau_s))
    drive = rng.standard_normal((2, n)) * rms_mas * math.sqrt(1.0 - a * a)
    drive[:, 0] = rng.standard_normal(2) * rms_mas  # x[0] from the stationary distribution
    true = lfilter([1.0], [1.0, -a], drive, axis=1)  # x[k] = a x[k-1] + drive[k]
    noise = rng.standard_normal((2, n)) * centroid_noise_mas(gs.fgs_mag)
    return VisitJitter(start, true[0], true[1], true[0] + noise[0], true[1] + noise[1])


def exposure_blur(jitter: VisitJitter, start: datetime, seconds: float) -> tuple[float, float, int]:
    """(variance per axis in mas^2, rms of the radial offset from the mean in mas, samples)
    of the true jitter during an exposure."""
    sl = jitter.window(start, seconds)
    x, y = jitter.true_x[sl], jitter.true_y[sl]
    if len(x) < 2:
        return 0.0, 0.0, len(x)
    var = 0.5 * (float(np.var(x)) + float(np.var(y)))
    return var, math.sqrt(2.0 * var), len(x)


def _star_image(size: int, cx: float, cy: float, electrons: float) -> np.ndarray:
    """A Gaussian star of ``electrons`` integrated over the pixels of a size x size window."""
    sigma = FGS_FWHM_PIX / 2.3548
    edges = np.arange(size + 1) - 0.5
    fx = np.diff(0.5 * (1 + erf((edges - cx) / (sigma * math.sqrt(2)))))
    fy = np.diff(0.5 * (1 + erf((edges - cy) / (sigma * math.sqrt(2)))))
    return electrons * np.outer(fy, fx)


def _cds_ramp(rng: np.random.Generator, pixels: DetectorModel, nints: int, tframe: float, rate: float,
              offsets_pix: np.ndarray) -> np.ndarray:
    """uint16 (nints, 2, size, size): a reset-read / read pair per integration of the
    window ``pixels`` (a window of the guider's detector model), the star at the window
    centre plus ``offsets_pix`` (nints, 2), a sky of :data:`FGS_SKY` e-/s/pixel, both seen
    through the pixels' QE (the model's flat), the dark current, Poisson noise in
    electrons, the gain, the bias and a read noise of ``read_noise / sqrt(2)`` per read
    (``read_noise`` is the CDS noise)."""
    size = pixels.shape[0]
    out = np.empty((nints, 2, size, size), dtype=np.uint16)
    centre = (size - 1) / 2.0
    qe = pixels.flat.astype(np.float64)
    gain = pixels.gain.astype(np.float64)
    bias = pixels.bias.astype(np.float64)
    read = pixels.read_noise.astype(np.float64) / math.sqrt(2.0)
    for i in range(nints):
        light = _star_image(size, centre + offsets_pix[i, 0], centre + offsets_pix[i, 1], rate * tframe) \
            + FGS_SKY * tframe
        expected = light * qe + pixels.dark * tframe
        signal = rng.poisson(expected) / gain
        first = bias + rng.normal(0.0, 1.0, (size, size)) * read
        second = bias + signal + rng.normal(0.0, 1.0, (size, size)) * read
        out[i, 0] = np.clip(np.rint(first), 0, 65535)
        out[i, 1] = np.clip(np.rint(second), 0, 65535)
    return out


def _window(model: DetectorModel, gs: GuideStar, size: int) -> DetectorModel:
    """The detector model of the ``size`` x ``size`` window read around ``gs``."""
    if model.detector.name != gs.detector:
        raise ValueError(f"guide star on {gs.detector}, detector model of {model.detector.name}")
    return model.window(guide_window(gs.detector, gs.ideal_x, gs.ideal_y, size))


class _Counter:
    def __init__(self) -> None:
        self.counts: dict[int, int] = {}

    def next(self, apid: int) -> int:
        n = self.counts.get(apid, 0)
        self.counts[apid] = n + 1
        return n


def _image_packets(apid: int, counter: _Counter, cube: np.ndarray, when: datetime, tframe: float,
                   ident: dict, guider_code: int, period: float | None = None) -> Iterator[bytes]:
    """Packets of a (nints, 2, ny, nx) cube; integration i is read at ``when`` + i * period."""
    period = period if period is not None else 2 * tframe
    for i in range(cube.shape[0]):
        for g in range(cube.shape[1]):
            coarse, fine = to_ccsds_time(when + timedelta(seconds=i * period + (g + 1) * tframe))
            header = SecondaryHeader(time_coarse=coarse, time_fine=fine, **ident, detector_code=guider_code,
                                     integration=i + 1, group=g + 1, first_row=0, nrows=cube.shape[2])
            yield encode_packet(apid, counter.next(apid), header, cube[i, g])


def _visit_ident(plan: Plan, obs: Observation, visit: int) -> dict:
    return dict(program=int(plan.program), observation=obs.number, visit=visit, visit_group=0, sequence=0,
                activity=0, exposure=0)


def visit_guide_packets(plan: Plan, obs: Observation, visit: int, seed: int, rms_mas: float,
                        tau_s: float, model: DetectorModel) -> Iterator[bytes]:
    """The ID, ACQ1, ACQ2 and TRACK telemetry of a guided visit, in time order, read
    through ``model``, the full-frame detector model of the visit's guider."""
    gs = obs.guide_star(visit)
    jitter = visit_jitter(plan, obs, visit, seed, rms_mas, tau_s)
    first = min(e.start_time for e in obs.exposures if e.visit == visit)
    code = detector(gs.detector).code
    rate = count_rate(gs.fgs_mag)
    counter = _Counter()
    rng = generator(seed, Stream.GUIDING, int(plan.program), obs.number, visit, 2)
    # Where the star lands before it is acquired: the slew's error, corrected by each step.
    acquired = rng.normal(0.0, 1.0, 2) * np.array([6.0, 6.0])
    for activity in ACTIVITIES:
        when = first - timedelta(seconds=activity.lead)
        if activity.mode == "track":
            sl = jitter.window(when, activity.nints / GUIDE_RATE_HZ)
            offsets = np.stack([jitter.true_x[sl], jitter.true_y[sl]], axis=1) / 1000.0 / FGS_PIXEL_ARCSEC
            offsets = np.vstack([offsets, np.zeros((activity.nints - len(offsets), 2))])
            period = 1.0 / GUIDE_RATE_HZ
        else:
            scale = {"id-image": 1.0, "acq1": 0.2, "acq2": 0.05}[activity.mode]
            offsets = np.tile(acquired * scale, (activity.nints, 1))
            period = None
        cube = _cds_ramp(rng, _window(model, gs, activity.size), activity.nints, activity.tframe, rate, offsets)
        yield from _image_packets(APID.GUIDE_IMAGE[activity.mode], counter, cube, when, activity.tframe,
                                  _visit_ident(plan, obs, visit), code, period)


def fine_guide_packets(plan: Plan, obs: Observation, exp: PlannedExposure, seed: int, rms_mas: float,
                       tau_s: float, models: Mapping[str, DetectorModel]) -> Iterator[bytes]:
    """The fine-guide centroids (16 Hz) and images (one per second) of one exposure;
    ``models`` holds the full-frame detector model of each guider, by name."""
    gs = obs.guide_star(exp.visit)
    if gs is None:
        return
    jitter = visit_jitter(plan, obs, exp.visit, seed, rms_mas, tau_s)
    seconds = (_exposure_end(obs, exp) - exp.start_time).total_seconds()
    sl = jitter.window(exp.start_time, seconds)
    times = jitter.times[sl]
    code = detector(gs.detector).code
    ident = dict(program=int(plan.program), observation=obs.number, visit=exp.visit, visit_group=exp.visit_group,
                 sequence=exp.sequence, activity=exp.activity, exposure=exp.exposure)
    counter = _Counter()
    rate = count_rate(gs.fgs_mag)
    rng = generator(seed, Stream.GUIDING, int(plan.program), obs.number, exp.visit, 3, exp.exposure)
    counts = rng.poisson(rate / GUIDE_RATE_HZ, len(times)) * GUIDE_RATE_HZ / 100.0
    block = int(GUIDE_RATE_HZ)  # one packet per second of centroids
    for b, first in enumerate(range(0, len(times), block)):
        idx = np.arange(first, min(first + block, len(times)))
        t_first = jitter.start + timedelta(seconds=float(times[idx[0]]))
        coarse, fine = to_ccsds_time(t_first)
        dt_us = np.rint((times[idx] - times[idx[0]]) * 1e6)
        rows = centroid_rows(dt_us, np.rint(jitter.meas_x[sl][idx] * 1000.0),
                             np.rint(jitter.meas_y[sl][idx] * 1000.0), np.rint(counts[idx]),
                             np.zeros(len(idx)))
        header = SecondaryHeader(time_coarse=coarse, time_fine=fine, **ident, detector_code=code,
                                 integration=1, group=b + 1, first_row=0, nrows=len(idx))
        yield encode_packet(APID.GUIDE_CENTROID, counter.next(APID.GUIDE_CENTROID), header, rows)
    # One 8x8 CDS image per second, the star where the true jitter puts it.
    nimg = max(1, int(seconds // FG_IMAGE_PERIOD))
    pick = np.minimum((np.arange(nimg) * FG_IMAGE_PERIOD * GUIDE_RATE_HZ).astype(int), max(len(times) - 1, 0))
    tx, ty = (jitter.true_x[sl], jitter.true_y[sl]) if len(times) else (np.zeros(1), np.zeros(1))
    offsets = np.stack([tx[pick], ty[pick]], axis=1) / 1000.0 / FGS_PIXEL_ARCSEC
    cube = _cds_ramp(rng, _window(models[gs.detector], gs, FG_SIZE), nimg, 1.0 / GUIDE_RATE_HZ, rate, offsets)
    yield from _image_packets(APID.GUIDE_IMAGE["fg"], counter, cube, exp.start_time, 1.0 / GUIDE_RATE_HZ,
                              ident, code, FG_IMAGE_PERIOD)


def write_visit_guiding(plan: Plan, obs: Observation, visit: int, directory: Path, seed: int, rms_mas: float,
                        tau_s: float, model: DetectorModel) -> Path:
    """Write ``<visit_id>_gs.ccsds`` (ID, ACQ1, ACQ2, TRACK) into ``directory``, read
    through ``model`` (the visit's guider)."""
    path = Path(directory) / f"jw{plan.program}{obs.number:03d}{visit:03d}_gs.ccsds"
    tmp = path.with_suffix(".ccsds.part")
    with open(tmp, "wb") as fh:
        for packet in visit_guide_packets(plan, obs, visit, seed, rms_mas, tau_s, model):
            fh.write(packet)
    tmp.replace(path)
    return path
