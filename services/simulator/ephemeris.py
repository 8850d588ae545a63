"""The observatory's orbit: a halo about the Sun-Earth L2 point, sampled as a definitive
ephemeris (:class:`shared.ephemeris.Ephemeris`) covering a program's visits.

A kinematic model, not an integrated orbit: L2 lies on the Sun-Earth line beyond the Earth
at ``|r_earth - r_sun| * (mu / 3)**(1/3)`` (about 1.5e6 km, ``mu`` the Earth-Moon to Sun
mass ratio); the observatory circles it once every :data:`HALO_PERIOD_DAYS` on an ellipse of
a few 1e5 km in the frame that turns with the Earth (x away from the Sun, z along the
Earth's orbital angular momentum, y completing it). Positions come from astropy's built-in
solar-system ephemeris; velocities are the central difference of the positions over
:data:`_DERIVATIVE_STEP_S`, so the sampled states are consistent with the positions.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import astropy.units as u
import numpy as np
from astropy.coordinates import get_body_barycentric
from astropy.time import Time

from shared.ephemeris import Ephemeris
from shared.plan import Plan

__all__ = ["HALO_AMPLITUDES_KM", "HALO_PERIOD_DAYS", "halo_position", "simulated_ephemeris"]

MASS_RATIO = 3.040e-6  # (Earth + Moon) / Sun
HALO_PERIOD_DAYS = 180.0
HALO_AMPLITUDES_KM = (1.5e5, 5.0e5, 3.5e5)  # along x (anti-Sun), y, z of the rotating frame
HALO_EPOCH_MJD = 59600.0  # phase 0 of the halo (2022-01-24, arrival at L2)
_DERIVATIVE_STEP_S = 60.0


def halo_position(mjd_utc) -> np.ndarray:
    """Barycentric ICRS position of the observatory, km, shape (n, 3)."""
    t = Time(np.atleast_1d(np.asarray(mjd_utc, np.float64)), format="mjd", scale="utc")
    earth = get_body_barycentric("earth", t).xyz.to_value(u.km).T
    sun = get_body_barycentric("sun", t).xyz.to_value(u.km).T
    # The Earth's heliocentric velocity, by differences, only to orient the frame.
    dt = 3600.0 * u.s
    ahead = (get_body_barycentric("earth", t + dt).xyz - get_body_barycentric("sun", t + dt).xyz).to_value(u.km).T
    helio = earth - sun
    dist = np.linalg.norm(helio, axis=1, keepdims=True)
    x = helio / dist
    z = np.cross(helio, ahead - helio)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    y = np.cross(z, x)
    phase = 2.0 * np.pi * (t.mjd - HALO_EPOCH_MJD) / HALO_PERIOD_DAYS
    ax, ay, az = HALO_AMPLITUDES_KM
    halo = (ax * np.cos(phase))[:, None] * x + (ay * np.sin(phase))[:, None] * y + (az * np.cos(phase))[:, None] * z
    return earth + dist * (MASS_RATIO / 3.0) ** (1.0 / 3.0) * x + halo


def _states(mjd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    step = _DERIVATIVE_STEP_S / 86400.0
    pos = halo_position(mjd)
    vel = (halo_position(mjd + step) - halo_position(mjd - step)) / (2.0 * _DERIVATIVE_STEP_S)
    return pos, vel


def simulated_ephemeris(plan: Plan, *, step_hours: float = 1.0, margin_days: float = 1.0) -> Ephemeris:
    """A definitive ephemeris sampled every ``step_hours`` from ``margin_days`` before the
    first planned exposure to ``margin_days`` after the last one ends."""
    from shared.instruments import exposure_timing, subarray

    starts, ends = [], []
    for obs in plan.observations:
        timing = exposure_timing(obs.instrument, subarray(obs.instrument, obs.subarray), obs.readpatt,
                                 obs.ngroups, obs.nints)
        for e in obs.exposures:
            starts.append(e.start_time)
            ends.append(e.start_time + timedelta(seconds=timing.duration))
    first = (min(starts) - timedelta(days=margin_days)).astimezone(UTC)
    last = (max(ends) + timedelta(days=margin_days)).astimezone(UTC)
    first = datetime(first.year, first.month, first.day, first.hour, tzinfo=UTC)  # whole hours
    t0 = Time(first).mjd
    n = int(np.ceil((Time(last).mjd - t0) * 24.0 / step_hours)) + 1
    mjd = t0 + np.arange(n) * step_hours / 24.0
    pos, vel = _states(mjd)
    return Ephemeris(type="DEFINITIVE", program=plan.program, mjd=mjd.tolist(),
                     position_km=[tuple(p) for p in pos.tolist()], velocity_km_s=[tuple(v) for v in vel.tolist()])
