"""Where the observatory was during an exposure, and the header keywords that follow: its
barycentric and geocentric state (JWST_*, OBSGEO*), the velocity aberration at the
reference point (VA_*) and the barycentric and heliocentric exposure times (B*TIME,
H*TIME with their corrections BARTDELT, HELIDELT). Pure: values in, values out.

The observer comes from the ephemeris delivered with the plan (``shared.ephemeris``).
When no ephemeris was delivered, or it does not cover the exposure, the times fall back to
the geocentre, which is up to about 5 s wrong along the L2 direction; the header says so
(EPH_TYPE ``NONE (GEOCENTRE)``) and carries no state vector or aberration keywords, so no
number is written that the ephemeris did not give.
"""

from __future__ import annotations

from dataclasses import dataclass

import astropy.units as u
import numpy as np
from astropy.coordinates import get_body_barycentric_posvel
from astropy.time import Time

from shared.ephemeris import (
    Ephemeris,
    bjd_tdb,
    earth_barycentric_km,
    heliocentric_delay,
    roemer_delay,
    velocity_aberration,
)

__all__ = ["GEOCENTRE_FALLBACK", "Observer", "observer", "observer_keywords"]

GEOCENTRE_FALLBACK = "NONE (GEOCENTRE)"
_DAY = 86400.0


@dataclass(frozen=True)
class Observer:
    """The observatory's barycentric positions (km) at a set of UTC times, and the
    ephemeris they came from (None: the geocentre stood in, ``why`` says why)."""

    ephemeris: Ephemeris | None
    why: str | None = None

    def positions(self, mjd_utc: np.ndarray) -> np.ndarray:
        if self.ephemeris is None:
            return earth_barycentric_km(mjd_utc)
        return self.ephemeris.state(mjd_utc)[0]

    def bjd_tdb(self, mjd_utc: np.ndarray, ra: float, dec: float) -> np.ndarray:
        """BJD_TDB (as MJD) of light reaching the observer at ``mjd_utc`` from (``ra``, ``dec``)."""
        return bjd_tdb(mjd_utc, ra, dec, self.positions(mjd_utc))


def observer(ephemeris: Ephemeris | None, start_mjd: float, end_mjd: float) -> Observer:
    """The observer of an exposure from ``start_mjd`` to ``end_mjd`` (UTC): the ephemeris
    when it covers the exposure, else the geocentre with the reason."""
    if ephemeris is None:
        return Observer(None, "no ephemeris has been delivered for the program")
    if not ephemeris.covers(start_mjd, end_mjd):
        first, last = ephemeris.span
        return Observer(None, f"the ephemeris covers MJD {first:.5f} .. {last:.5f}, "
                              f"not the exposure's {start_mjd:.5f} .. {end_mjd:.5f}")
    return Observer(ephemeris)


def observer_keywords(obs: Observer, start: float, end: float, ra: float, dec: float,
                      ra_ref: float, dec_ref: float) -> dict:
    """The ephemeris, velocity-aberration and barycentric/heliocentric time keywords of an
    exposure from ``start`` to ``end`` (MJD UTC) of a target at (``ra``, ``dec``) with its
    aperture reference point at (``ra_ref``, ``dec_ref``) (deg).

    State vectors and aberration are at the exposure's mid time (MJD-AVG). BARTDELT and
    HELIDELT are the light-travel times (s) from the observatory to the barycentre and to the
    Sun's centre along the target direction at the exposure start; B*TIME are BJD_TDB and
    H*TIME heliocentric TDB, both as MJD."""
    mid = (start + end) / 2.0
    times = np.array([start, mid, end])
    pos = obs.positions(times)
    tdb = Time(times, format="mjd", scale="utc").tdb.mjd
    bary = roemer_delay(pos, ra, dec)
    helio = heliocentric_delay(times, ra, dec, pos)
    kw = {
        "EPH_TYPE": GEOCENTRE_FALLBACK if obs.ephemeris is None else obs.ephemeris.type.capitalize(),
        "BARTDELT": float(bary[0]),
        "BSTRTIME": float(tdb[0] + bary[0] / _DAY),
        "BMIDTIME": float(tdb[1] + bary[1] / _DAY),
        "BENDTIME": float(tdb[2] + bary[2] / _DAY),
        "HELIDELT": float(helio[0]),
        "HSTRTIME": float(tdb[0] + helio[0] / _DAY),
        "HMIDTIME": float(tdb[1] + helio[1] / _DAY),
        "HENDTIME": float(tdb[2] + helio[2] / _DAY),
    }
    if obs.ephemeris is None:
        return kw
    r, v = (a[0] for a in obs.ephemeris.state(mid))
    t_mid = Time(mid, format="mjd", scale="utc")
    earth_pos, earth_vel = get_body_barycentric_posvel("earth", t_mid)
    geo_r = r * 1e3 - earth_pos.xyz.to_value(u.m)
    geo_v = v * 1e3 - earth_vel.xyz.to_value(u.m / u.s)
    scale, va_ra, va_dec = velocity_aberration(v, ra_ref, dec_ref)
    kw.update({
        "REFFRAME": obs.ephemeris.reference_frame,
        "EPH_TIME": float(mid),
        "JWST_X": float(r[0]), "JWST_Y": float(r[1]), "JWST_Z": float(r[2]),
        "JWST_DX": float(v[0]), "JWST_DY": float(v[1]), "JWST_DZ": float(v[2]),
        "OBSGEO-X": float(geo_r[0]), "OBSGEO-Y": float(geo_r[1]), "OBSGEO-Z": float(geo_r[2]),
        "OBSGEODX": float(geo_v[0]), "OBSGEODY": float(geo_v[1]), "OBSGEODZ": float(geo_v[2]),
        "VA_SCALE": float(scale),
        "VA_RA": float(va_ra),
        "VA_DEC": float(va_dec),
    })
    return kw
