"""One exposure of one detector: sky -> electron rate -> ramps, with its truth.

:func:`simulate_exposure` is deterministic in (seed, plan, identifiers): calling it again
returns the same arrays, which is how tests compare decoded telemetry with what the
simulator produced.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np

from shared.instruments import (
    DetectorInfo,
    ExposureTiming,
    Subarray,
    detector,
    exposure_timing,
    subarray,
)
from shared.naming import ExposureName
from shared.plan import Observation, Plan, PlannedExposure
from shared.wcs import wcs_keywords, window_wcs

from .description import SimulationSpec
from .detector_model import (
    DetectorModel,
    apply_nonlinearity,
    make_detector_model,
    readout_channels,
    refout_row_parity,
)
from .optics import default_sky_level, pivot_wavelength, psf_fwhm_arcsec
from .pointing import tangent_project
from .ramps import (
    CosmicRays,
    FrameSchedule,
    PixelModel,
    draw_cosmic_rays,
    draw_drifts,
    simulate_ramp,
    simulate_refout,
)
from .seeding import Stream, generator
from .sky import render_stars, star_population, stars_in_region

__all__ = ["ExposureSimulation", "ExposureTruth", "StarTruth", "exposure_name", "simulate_exposure"]

_MARGIN_PIX = 2.0  # beyond the PSF radius, when collecting stars around a window


@dataclass(frozen=True)
class StarTruth:
    """Stars that put light in the window; all shape (n,).

    ``x``/``y`` 0-based window pixels; ``flux`` e-/s (whole star, unit flat);
    ``flux_in_window`` e-/s landing inside the window; ``rate`` DN/s the star adds to the
    truth rate image (sum over the window of its pixels x flat / gain); ``peak_dn`` linear
    DN above bias (star + sky + dark) in the pixel holding the centre at the last read
    frame of an integration (NaN when the centre is outside); ``saturated`` whether that
    pixel reaches the saturation threshold within an integration.
    """

    id: np.ndarray
    ra: np.ndarray
    dec: np.ndarray
    x: np.ndarray
    y: np.ndarray
    flux: np.ndarray
    flux_in_window: np.ndarray
    rate: np.ndarray
    peak_dn: np.ndarray
    saturated: np.ndarray


@dataclass(frozen=True)
class ExposureTruth:
    """Noiseless truth of a window, arrays of shape (ny, nx) unless stated.

    ``flux``      photo-electrons/s per pixel from sky + stars, before the flat;
    ``rate``      DN/s: ``flux * flat / gain`` (what a perfect detector-1 slope gives after
                  dark subtraction);
    ``dark``      DN/s: ``dark current (e-/s) / gain``;
    ``stars``     DN/s from stars only (``rate`` minus the sky);
    ``flat``, ``gain`` the detector model in the window;
    ``sky_level`` e-/s/pixel; ``psf_fwhm`` pixels; ``wcs`` FITS WCS keywords of the window;
    ``drifts`` DN, shape (nints, ngroups, namps, 2): the offset added to every pixel of an
    amplifier (reference pixels included) per group, by column parity (row parity, MIRI).
    """

    flux: np.ndarray
    rate: np.ndarray
    dark: np.ndarray
    stars: np.ndarray
    flat: np.ndarray
    gain: np.ndarray
    sky_level: float
    psf_fwhm: float
    wavelength: float
    star_table: StarTruth
    jumps: CosmicRays
    wcs: dict
    drifts: np.ndarray


@dataclass(frozen=True)
class ExposureSimulation:
    """Everything simulated for one exposure of one detector.

    ``sci`` uint16 (nints, ngroups, ny, nx); ``zeroframe`` uint16 (nints, ny, nx) for
    near-IR detectors; ``refout`` uint16 (nints, ngroups, ny/4, nx) for MIRI.
    """

    name: ExposureName
    program: int
    observation: Observation
    exposure: PlannedExposure
    detector: DetectorInfo
    subarray: Subarray
    timing: ExposureTiming
    schedule: FrameSchedule
    start_time: datetime
    sci: np.ndarray
    zeroframe: np.ndarray | None
    refout: np.ndarray | None
    truth: ExposureTruth


def exposure_name(plan: Plan, obs: Observation, exp: PlannedExposure, suffix: str = "uncal") -> ExposureName:
    """The JWST name of an exposure (``.exposure_id`` names its telemetry and truth)."""
    return ExposureName(
        program=plan.program, observation=obs.number, visit=exp.visit, visit_group=exp.visit_group,
        sequence=exp.sequence, activity=f"{exp.activity:02d}", exposure=exp.exposure,
        detector=exp.detector.lower(), suffix=suffix,
    )


def _exposure_entropy(seed: int, plan: Plan, obs: Observation, exp: PlannedExposure, det: DetectorInfo) -> tuple[int, ...]:
    return (seed, Stream.EXPOSURE, int(plan.program), obs.number, exp.visit, exp.visit_group,
            exp.sequence, exp.activity, exp.exposure, det.code)


def _window_box(wcs, target, nx: int, ny: int, margin: float) -> tuple[tuple[float, float], tuple[float, float]]:
    """Bounding box, in the target's standard coordinates (arcsec), of a window grown by
    ``margin`` pixels."""
    xs = np.array([-margin, nx - 1 + margin, nx - 1 + margin, -margin])
    ys = np.array([-margin, -margin, ny - 1 + margin, ny - 1 + margin])
    ra, dec = wcs.wcs_pix2world(xs, ys, 0)
    xi, eta = tangent_project(target.ra, target.dec, ra, dec)
    return (float(xi.min()), float(xi.max())), (float(eta.min()), float(eta.max()))


def simulate_exposure(
    plan: Plan,
    obs: Observation,
    exp: PlannedExposure,
    knobs: SimulationSpec,
    *,
    model: DetectorModel | None = None,
    noiseless: bool = False,
) -> ExposureSimulation:
    """Simulate one planned exposure of one detector.

    Parameters
    ----------
    plan, obs, exp
        The plan, the observation and the exposure (from the plan).
    knobs : SimulationSpec
        Seeds and sky/cosmic-ray parameters.
    model : DetectorModel, optional
        Full-frame model of ``exp.detector`` (made from ``knobs.detector_seed`` if absent).
    noiseless : bool
        No Poisson noise, read noise, drifts or cosmic rays (for tests of the truth).
    """
    det = detector(exp.detector)
    sub = subarray(obs.instrument, obs.subarray)
    timing = exposure_timing(obs.instrument, sub, obs.readpatt, obs.ngroups, obs.nints)
    schedule = FrameSchedule.for_exposure(obs.instrument, sub, obs.readpatt, obs.ngroups, obs.nints)
    model = model or make_detector_model(det, knobs.detector_seed)
    if model.detector.name != det.name:
        raise ValueError(f"detector model of {model.detector.name} given for {det.name}")
    win = model.window(sub)
    ny, nx = sub.ysize, sub.xsize

    # Sky: stars through the window's WCS, plus a flat background.
    target = plan.target(obs.target_id)
    wavelength = pivot_wavelength(obs.instrument, obs.filter, obs.pupil)
    fwhm = psf_fwhm_arcsec(wavelength) / det.pixel_scale
    wcs = window_wcs(exp.pointing.ra, exp.pointing.dec, exp.pointing.roll, det.pixel_scale, nx, ny)
    psf_radius = 6.0 * fwhm / 2.3548 + 1.0
    xi_range, eta_range = _window_box(wcs, target, nx, ny, psf_radius + _MARGIN_PIX)
    stars = stars_in_region(target, knobs.seed, star_population(plan, target.id, knobs), xi_range, eta_range)
    sx, sy = wcs.wcs_world2pix(stars.ra, stars.dec, 0)
    weights = np.divide(win.flat, win.gain, dtype=np.float64)
    rendered = render_stars(sx, sy, stars.flux, fwhm, (ny, nx), weights=weights)
    sky_level = knobs.sky_level if knobs.sky_level is not None else default_sky_level(obs.instrument, wavelength)
    flux = rendered.image + sky_level
    detected = flux * win.flat
    electron_rate = detected + win.dark
    truth_rate = detected / win.gain
    truth_dark = win.dark / win.gain
    star_rate = rendered.image * weights

    # Random streams of this exposure.
    entropy = _exposure_entropy(knobs.seed, plan, obs, exp, det)
    sensitive = ~win.refpix & (win.flat > 0)
    if noiseless or knobs.cosmic_ray_rate == 0:
        crs = CosmicRays.none()
    else:
        crs = draw_cosmic_rays(generator(*entropy, 1), schedule, sensitive, knobs.cosmic_ray_rate,
                               (knobs.cosmic_ray_min_dn, knobs.cosmic_ray_max_dn))
    channels, nchannels = readout_channels(det, sub)
    p = model.params
    drifts = draw_drifts(generator(*entropy, 2), obs.nints, obs.ngroups, nchannels // 2,
                         p.drift_common, p.drift_amplifier, p.drift_parity)
    if noiseless:
        drifts = np.zeros_like(drifts)
    pixels = PixelModel(gain=win.gain, bias=win.bias, read_noise=win.read_noise, nonlin=win.nonlin,
                        full_well=win.full_well, channels=channels)
    ramp = simulate_ramp(electron_rate, pixels, schedule, drifts, crs, (*entropy, 3),
                         zeroframe=det.instrument in ("NIRCAM", "NIRISS"), noiseless=noiseless)
    refout = None
    if det.has_refout:
        refout = simulate_refout(win.refout_level(), float(np.median(win.read_noise)), refout_row_parity(sub),
                                 drifts, schedule, generator(*entropy, 4), noiseless=noiseless)

    # Star truth: stars that put light in the window.
    keep = np.flatnonzero(rendered.captured > 1e-9)
    xk, yk = sx[keep], sy[keep]
    ix, iy = np.floor(xk + 0.5).astype(int), np.floor(yk + 0.5).astype(int)
    inside = (ix >= 0) & (ix < nx) & (iy >= 0) & (iy < ny)
    ixc, iyc = np.clip(ix, 0, nx - 1), np.clip(iy, 0, ny - 1)
    peak = (truth_rate + truth_dark)[iyc, ixc] * schedule.last_frame_time
    raw_peak = win.bias[iyc, ixc] + apply_nonlinearity(peak, win.nonlin[iyc, ixc])
    star_table = StarTruth(
        id=stars.id[keep], ra=stars.ra[keep], dec=stars.dec[keep], x=xk, y=yk,
        flux=stars.flux[keep], flux_in_window=stars.flux[keep] * rendered.captured[keep],
        rate=rendered.weighted[keep],
        peak_dn=np.where(inside, peak, np.nan),
        saturated=inside & (raw_peak >= win.saturation[iyc, ixc]),
    )
    wcs_kw = wcs_keywords(exp.pointing.ra, exp.pointing.dec, exp.pointing.roll, det.pixel_scale, nx, ny)
    truth = ExposureTruth(
        flux=flux.astype(np.float32), rate=truth_rate.astype(np.float32), dark=truth_dark.astype(np.float32),
        stars=star_rate.astype(np.float32), flat=np.asarray(win.flat), gain=np.asarray(win.gain),
        sky_level=float(sky_level), psf_fwhm=float(fwhm), wavelength=float(wavelength),
        star_table=star_table, jumps=crs, wcs=wcs_kw, drifts=drifts,
    )
    return ExposureSimulation(
        name=exposure_name(plan, obs, exp), program=int(plan.program), observation=obs, exposure=exp,
        detector=det, subarray=sub, timing=timing, schedule=schedule, start_time=exp.start_time,
        sci=ramp.sci, zeroframe=ramp.zeroframe, refout=refout, truth=truth,
    )
