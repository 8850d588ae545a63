"""The host star of a time-series observation and its transit light curve.

The host star sits exactly at the target position. Its flux is constant within an
integration and follows a trapezoid light curve from one integration to the next,
evaluated at the integration's mid time (the INT_TIMES convention: an integration
starts ``(i - 1) * (NGROUPS * TGROUP + TFRAME)`` after the exposure start and lasts
``NGROUPS * TGROUP``; its mid time is half that later).

The transit happens on the barycentric clock: its mid-time is a BJD_TDB, and each
integration sees the star at the BJD_TDB of the light reaching the observatory, from the
observatory's position in its ephemeris (the one delivered with the plan). The mid-time a
description gives in seconds after the observation start is placed on that clock as the
BJD_TDB of light arriving at that instant.

Trapezoid: 1 outside the transit (``|t - mid| >= T14 / 2``), ``1 - depth`` between second
and third contact (``|t - mid| <= T14 / 2 - ingress``), linear in between. Its *shape*
``k(t)`` is the fraction of the full depth reached (0 outside, 1 between second and third
contact), so the flux is ``1 - depth * k(t)``.

A spectroscopic time series (MIR_LRS-SLITLESS, NRS_BRIGHTOBJ, NIS_SOSS) has a depth per wavelength
(``TransitSpec.depth_spectrum``): at each wavelength the host's flux is ``f_nu(lambda) (1 -
depth(lambda) k(t))``. Its white-light light curve is ``1 - D k(t)`` with ``D`` the
white-light depth (:func:`white_light_depth`): the blocked light over the host's light,
both summed over the spectral pixels (LRS rows, NIRSpec columns) whose wavelengths are in
the spectrograph's white-light band
(:attr:`.spectrograph.SlitSpectrograph.white_light_band`: the LRS slitless
:data:`WHITE_LIGHT_BAND_UM`, 5-12 um; NIRSpec's G395M its whole spectrum, 2.87-5.10 um;
NIRISS SOSS its order 1's whole band, 0.867-2.855 um, that order's columns alone),
weighted by electrons (what a box sum of the rates gives) or by f_nu (what a sum of the
calibrated spectrum over those pixels gives).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from astropy.time import Time

from shared.ephemeris import Ephemeris, bjd_tdb
from shared.instruments import exposure_timing, subarray
from shared.plan import Observation, Target

from .description import TransitSpec
from .ramps import FrameSchedule
from .spectrograph import LRS_SLITLESS

__all__ = ["WHITE_LIGHT_BAND_UM", "HostStar", "LightCurve", "integration_mid_offsets", "light_curve",
           "observation_span", "trapezoid", "white_light_depth"]

#: The band (um) of the MIRI LRS slitless time series' white light in the truth (each
#: spectrograph carries its own: ``SlitSpectrograph.white_light_band``).
WHITE_LIGHT_BAND_UM = LRS_SLITLESS.white_light_band


@dataclass(frozen=True)
class HostStar:
    """A star at the target position, with an optional transit: an imaging time series'
    star of ``flux`` e-/s, or (``flux`` None) a spectroscopic time series' target, whose
    light is its spectrum."""

    flux: float | None
    transit: TransitSpec | None = None


@dataclass(frozen=True)
class LightCurve:
    """Per integration (shape (nints,)): ``mid_s`` seconds after the exposure start,
    ``mid_bjd_tdb`` the BJD_TDB (as MJD) of its mid time at the observatory and
    ``relative`` flux; ``mid_time_s`` the transit mid-time, seconds after the observation
    start, and ``mid_time_bjd_tdb`` the same instant as a BJD_TDB (MJD) (None without a
    transit); ``shape`` the fraction of the full depth reached in each integration (0
    without a transit) and ``depth`` the (white-light) depth ``relative`` is scaled to:
    ``relative = 1 - depth * shape``."""

    mid_s: np.ndarray
    mid_bjd_tdb: np.ndarray
    relative: np.ndarray
    mid_time_s: float | None
    mid_time_bjd_tdb: float | None = None
    shape: np.ndarray | None = None
    depth: float = 0.0


def trapezoid(t: np.ndarray, mid: float, duration: float, ingress: float, depth: float) -> np.ndarray:
    """Relative flux of a trapezoid transit.

    Parameters
    ----------
    t : ndarray
        Times, s (any origin shared with ``mid``).
    mid : float
        Mid-transit time, s.
    duration : float
        T14, first to last contact, s.
    ingress : float
        Ingress (= egress) time, s; 0 gives a box.
    depth : float
        Fractional flux drop between second and third contact.

    Returns
    -------
    ndarray, shape of ``t``
        Relative flux, 1 out of transit.
    """
    dt = np.abs(np.asarray(t, np.float64) - mid)
    half = duration / 2.0
    if ingress <= 0.0:
        return np.where(dt < half, 1.0 - depth, 1.0)
    fraction = np.clip((half - dt) / ingress, 0.0, 1.0)  # 0 outside, 1 at full depth
    return 1.0 - depth * fraction


def integration_mid_offsets(schedule: FrameSchedule) -> np.ndarray:
    """Mid time of each integration, s after the exposure start, shape (nints,)."""
    i = np.arange(schedule.nints, dtype=np.float64)
    return i * schedule.integration_period + schedule.ngroups * schedule.tgroup / 2.0


def observation_span(obs: Observation) -> tuple[datetime, datetime]:
    """(start, end) of an observation: first exposure start, last exposure end (UTC)."""
    timing = exposure_timing(obs.instrument, subarray(obs.instrument, obs.subarray), obs.readpatt,
                             obs.ngroups, obs.nints)
    starts = [e.start_time for e in obs.exposures]
    return min(starts), max(starts) + timedelta(seconds=timing.duration)


def _bjd(ephemeris: Ephemeris, target: Target, mjd_utc: np.ndarray) -> np.ndarray:
    position, _ = ephemeris.state(mjd_utc)
    return bjd_tdb(mjd_utc, target.ra, target.dec, position)


def light_curve(host: HostStar, obs: Observation, target: Target, exposure_start: datetime,
                schedule: FrameSchedule, ephemeris: Ephemeris, depth: float | None = None) -> LightCurve:
    """The host star's relative flux in each integration of one exposure, seen from the
    observatory on its ``ephemeris`` (EphemerisCoverageError when it does not cover the
    exposure). ``depth`` the depth the relative flux is scaled to: default the transit's
    grey depth; a depth per wavelength needs it given (its white-light depth,
    :func:`white_light_depth`)."""
    mids = integration_mid_offsets(schedule)
    mid_bjd = _bjd(ephemeris, target, Time(exposure_start).mjd + mids / 86400.0)
    if host.transit is None:
        return LightCurve(mids, mid_bjd, np.ones_like(mids), None, shape=np.zeros_like(mids))
    t = host.transit
    if depth is None:
        if t.depth is None:
            raise ValueError("a transit with a depth per wavelength needs the white-light depth its light curve "
                             "is scaled to")
        depth = t.depth
    start, end = observation_span(obs)
    mid_time = t.mid_time_s if t.mid_time_s is not None else (end - start).total_seconds() / 2.0
    mid_time_bjd = float(_bjd(ephemeris, target, np.array([Time(start).mjd + mid_time / 86400.0]))[0])
    shape = 1.0 - trapezoid((mid_bjd - mid_time_bjd) * 86400.0, 0.0, t.duration_s, t.ingress, 1.0)
    return LightCurve(mids, mid_bjd, 1.0 - depth * shape, mid_time, mid_time_bjd, shape=shape, depth=float(depth))


def white_light_depth(wavelength: np.ndarray, weight: np.ndarray, blocked: np.ndarray,
                      band: tuple[float, float]) -> float:
    """The white-light depth of a transit seen per spectral pixel: ``sum(blocked) /
    sum(weight)`` over the pixels whose ``wavelength`` (um) is in ``band``; ``weight`` the
    host's light in each pixel out of transit, ``blocked`` the part the planet blocks at
    full transit (same units: e-/s, or Jy). ValueError when no pixel is in the band."""
    wl = np.asarray(wavelength, np.float64)
    inside = (wl >= band[0]) & (wl <= band[1]) & np.isfinite(weight) & np.isfinite(blocked)
    total = float(np.sum(np.asarray(weight, np.float64)[inside]))
    if not np.any(inside) or total <= 0.0:
        raise ValueError(f"no light of the spectrum falls in the white-light band {band[0]}-{band[1]} um")
    return float(np.sum(np.asarray(blocked, np.float64)[inside])) / total
