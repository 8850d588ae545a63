"""The observatory's ephemeris and what follows from it: barycentric and heliocentric
times, and the velocity aberration.

An ephemeris is a table of state vectors of the observatory (position and velocity)
sampled in time, delivered to ``dms-raw`` beside the plan as ``jw<ppppp>_ephem.json``
(``<program>/000/r<revision>/``). Positions are in km and velocities in km/s, relative to
the solar-system barycentre, along the ICRS axes; sample times are MJD in UTC. Between
samples the state is the cubic Hermite interpolant of the positions and velocities (exact
for the sample values, continuous in position and velocity).

The times here are those of light arriving at the observatory, moved to the barycentre (or
the Sun's centre) along the direction of the target: the Roemer delay ``r . n / c`` of the
observatory's position ``r`` projected on the unit vector ``n`` towards the target. The
Shapiro delay (< 0.1 ms near L2 away from the Sun's limb) and the target's parallax are
not included.
"""

from __future__ import annotations

import math
from typing import Literal

import astropy.units as u
import numpy as np
from astropy.constants import c
from astropy.coordinates import get_body_barycentric
from astropy.time import Time
from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.plan import latest_program_file_key
from shared.storage import Bucket

__all__ = [
    "EPHEMERIS_SCHEMA_VERSION",
    "Ephemeris",
    "EphemerisCoverageError",
    "bjd_tdb",
    "earth_barycentric_km",
    "ephemeris_filename",
    "heliocentric_delay",
    "latest_ephemeris_key",
    "load_latest_ephemeris",
    "roemer_delay",
    "unit_vector",
    "velocity_aberration",
]

EPHEMERIS_SCHEMA_VERSION = 1
C_KM_S = c.to_value(u.km / u.s)
_DAY = 86400.0
# The observatory is always about 1 au from the barycentre and moves at about the Earth's
# orbital speed: anything far outside these bounds is not an ephemeris of it.
_AU_KM = 1.495978707e8
_DISTANCE_BOUNDS_KM = (0.9 * _AU_KM, 1.1 * _AU_KM)
_SPEED_BOUNDS_KM_S = (20.0, 40.0)


class EphemerisCoverageError(LookupError):
    """A time outside the span the ephemeris samples."""


class Ephemeris(BaseModel):
    """State vectors of the observatory, sampled in time (see the module docstring)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = EPHEMERIS_SCHEMA_VERSION
    observatory: Literal["JWST"] = "JWST"
    type: Literal["DEFINITIVE", "PREDICTED"] = Field(description="Definitive (reconstructed) or predicted.")
    reference_frame: Literal["ICRS"] = Field("ICRS", description="Axes of the vectors.")
    center: Literal["SSB"] = Field("SSB", description="Origin: the solar-system barycentre.")
    time_scale: Literal["UTC"] = Field("UTC", description="Time scale of ``mjd``.")
    program: str | None = Field(None, pattern=r"^\d{5}$", description="The program it was delivered for.")
    mjd: list[float] = Field(min_length=2, description="Sample times, MJD (UTC), strictly increasing.")
    position_km: list[tuple[float, float, float]] = Field(description="Barycentric position (x, y, z), km.")
    velocity_km_s: list[tuple[float, float, float]] = Field(description="Barycentric velocity, km/s.")

    @model_validator(mode="after")
    def _consistent(self) -> Ephemeris:
        n = len(self.mjd)
        if len(self.position_km) != n or len(self.velocity_km_s) != n:
            raise ValueError(f"mjd has {n} samples but position_km {len(self.position_km)} and "
                             f"velocity_km_s {len(self.velocity_km_s)}")
        t, r, v = np.asarray(self.mjd), np.asarray(self.position_km), np.asarray(self.velocity_km_s)
        if not (np.isfinite(t).all() and np.isfinite(r).all() and np.isfinite(v).all()):
            raise ValueError("mjd, position_km and velocity_km_s must be finite numbers")
        steps = np.diff(t)
        if (steps <= 0).any():
            k = int(np.argmax(steps <= 0))
            raise ValueError(f"mjd: sample {k + 1} ({t[k + 1]}) does not follow sample {k} ({t[k]})")
        dist, speed = np.linalg.norm(r, axis=1), np.linalg.norm(v, axis=1)
        for name, values, (lo, hi), unit in (("position_km", dist, _DISTANCE_BOUNDS_KM, "km from the barycentre"),
                                             ("velocity_km_s", speed, _SPEED_BOUNDS_KM_S, "km/s")):
            bad = np.flatnonzero((values < lo) | (values > hi))
            if bad.size:
                k = int(bad[0])
                raise ValueError(f"{name}.{k}: {values[k]:.6g} {unit} is outside {lo:.6g}..{hi:.6g}; "
                                 "not an ephemeris of the observatory (units km and km/s?)")
        return self

    @property
    def span(self) -> tuple[float, float]:
        """(first, last) sample time, MJD (UTC)."""
        return self.mjd[0], self.mjd[-1]

    def covers(self, start_mjd: float, end_mjd: float) -> bool:
        return self.mjd[0] <= start_mjd and end_mjd <= self.mjd[-1]

    def state(self, mjd_utc) -> tuple[np.ndarray, np.ndarray]:
        """Position (km) and velocity (km/s) at the given times.

        Parameters
        ----------
        mjd_utc : float or array of shape (n,)
            MJD (UTC), within :attr:`span`.

        Returns
        -------
        position, velocity : ndarray, shape (n, 3)

        Raises
        ------
        EphemerisCoverageError
            A time outside the sampled span (the ephemeris is never extrapolated).
        """
        t = np.atleast_1d(np.asarray(mjd_utc, np.float64))
        knots = np.asarray(self.mjd)
        outside = (t < knots[0]) | (t > knots[-1])
        if outside.any():
            raise EphemerisCoverageError(
                f"MJD {t[outside][0]:.6f} is outside the ephemeris span {knots[0]:.6f} .. {knots[-1]:.6f}")
        r, v = np.asarray(self.position_km), np.asarray(self.velocity_km_s)
        k = np.clip(np.searchsorted(knots, t, side="right") - 1, 0, len(knots) - 2)
        h = (knots[k + 1] - knots[k]) * _DAY  # s
        s = ((t - knots[k]) * _DAY / h)[:, None]
        h = h[:, None]
        p0, p1, m0, m1 = r[k], r[k + 1], v[k] * h, v[k + 1] * h
        # Cubic Hermite basis and its derivative in s.
        h00, h10, h01, h11 = 2 * s**3 - 3 * s**2 + 1, s**3 - 2 * s**2 + s, -2 * s**3 + 3 * s**2, s**3 - s**2
        d00, d10, d01, d11 = 6 * s**2 - 6 * s, 3 * s**2 - 4 * s + 1, -6 * s**2 + 6 * s, 3 * s**2 - 2 * s
        pos = h00 * p0 + h10 * m0 + h01 * p1 + h11 * m1
        vel = (d00 * p0 + d10 * m0 + d01 * p1 + d11 * m1) / h
        return pos, vel


def unit_vector(ra: float, dec: float) -> np.ndarray:
    """Unit vector towards (``ra``, ``dec``) deg, shape (3,)."""
    r, d = math.radians(ra), math.radians(dec)
    return np.array([math.cos(d) * math.cos(r), math.cos(d) * math.sin(r), math.sin(d)])


def roemer_delay(position_km: np.ndarray, ra: float, dec: float) -> np.ndarray:
    """Light-travel time from the barycentre's plane to the observer along the target
    direction, s: positive when the observer is nearer the target than the barycentre.

    ``position_km``: barycentric position(s) of the observer, shape (3,) or (n, 3)."""
    return np.asarray(position_km, np.float64) @ unit_vector(ra, dec) / C_KM_S


def bjd_tdb(mjd_utc, ra: float, dec: float, position_km: np.ndarray) -> np.ndarray:
    """Barycentric Julian Date (TDB), as MJD, of light reaching an observer at the
    barycentric ``position_km`` (shape (n, 3)) at the UTC times ``mjd_utc`` (shape (n,))."""
    t = Time(np.atleast_1d(np.asarray(mjd_utc, np.float64)), format="mjd", scale="utc")
    return t.tdb.mjd + roemer_delay(position_km, ra, dec) / _DAY


def earth_barycentric_km(mjd_utc) -> np.ndarray:
    """Barycentric position of the geocentre (astropy's built-in ephemeris), km, shape (n, 3)."""
    t = Time(np.atleast_1d(np.asarray(mjd_utc, np.float64)), format="mjd", scale="utc")
    return get_body_barycentric("earth", t).xyz.to_value(u.km).T


def heliocentric_delay(mjd_utc, ra: float, dec: float, position_km: np.ndarray) -> np.ndarray:
    """Light-travel time from the Sun's centre's plane to the observer along the target
    direction, s (the observer's barycentric ``position_km`` minus the Sun's)."""
    t = Time(np.atleast_1d(np.asarray(mjd_utc, np.float64)), format="mjd", scale="utc")
    sun = get_body_barycentric("sun", t).xyz.to_value(u.km).T
    return roemer_delay(np.asarray(position_km) - sun, ra, dec)


def velocity_aberration(velocity_km_s: np.ndarray, ra: float, dec: float) -> tuple[float, float, float]:
    """Aberration of starlight for an observer moving at ``velocity_km_s`` (barycentric,
    shape (3,)): the plate-scale factor and the apparent position of (``ra``, ``dec``).

    Special relativity: a source in direction ``n`` appears in direction
    ``(n + gamma*beta + gamma**2/(1 + gamma) (n.beta) beta) / (gamma (1 + n.beta))`` and
    angles near it are stretched by the Doppler factor ``gamma (1 + n.beta)``.

    Returns
    -------
    scale, ra_apparent, dec_apparent : float
        Scale factor (multiply the nominal pixel scale by it), apparent RA and Dec, deg.
    """
    beta = np.asarray(velocity_km_s, np.float64) / C_KM_S
    n = unit_vector(ra, dec)
    b2 = float(beta @ beta)
    gamma = 1.0 / math.sqrt(1.0 - b2)
    nb = float(n @ beta)
    apparent = (n + gamma * beta + gamma**2 / (1.0 + gamma) * nb * beta) / (gamma * (1.0 + nb))
    apparent /= np.linalg.norm(apparent)
    ra_app = math.degrees(math.atan2(apparent[1], apparent[0])) % 360.0
    dec_app = math.degrees(math.asin(max(-1.0, min(1.0, apparent[2]))))
    return gamma * (1.0 + nb), ra_app, dec_app


def ephemeris_filename(program: str) -> str:
    return f"jw{program}_ephem.json"


def latest_ephemeris_key(store, program: str) -> str | None:
    """Key of the newest revision of the ephemeris delivered for a program, or None
    (``<program>/000/r<revision>/jw<program>_ephem.json``)."""
    return latest_program_file_key(store, program, ephemeris_filename(program))


def load_latest_ephemeris(store, program: str) -> Ephemeris | None:
    """The newest ephemeris delivered for a program; None when none was. One that does not
    validate raises pydantic's ValidationError."""
    key = latest_ephemeris_key(store, program)
    if key is None:
        return None
    return Ephemeris.model_validate_json(store.get_bytes(Bucket.RAW, key))
