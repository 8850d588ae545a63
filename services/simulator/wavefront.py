"""Wavefront-sensing OPD files: the telescope's optical path difference over time.

The observatory senses its wavefront every ``wavefront_cadence_hours`` (JWST: every two
days) at field point NRCA3_FP1; the simulator writes one OPD file per sensing from before
the program's first exposure to after its last, named as the public ones
(``R<YYYYMMDD><NN>-NRCA3_FP1-1.fits``, :class:`shared.naming.OpdName`) in the layout the
public PSF tools read: the PRIMARY image is the OPD in metres over the pupil (0 outside),
with BUNIT ``m``, PUPLDIAM (the circumscribed pupil diameter, m) and PUPLSCAL (m per
pixel), the sensing time (DATE-OBS, TIME-OBS, MJD-OBS), the aperture (APERNAME,
INSTRUME, DETECTOR) and the map's rms (WFE_RMS, nm); a RESULT_PHASE extension holds the
same map in micrometres, as the wavefront-sensing software delivers it.

The map: a circular pupil with a central obscuration, and low-order aberrations (Zernike
defocus, astigmatism, coma, trefoil) whose coefficients drift as a seeded random walk
between sensings, about 60 nm rms in all. The time series is a pure function of the seed
and the sensing times.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.time import Time

from shared.naming import OpdName
from shared.plan import Plan

from .seeding import Stream, generator

__all__ = ["APERTURE", "NPIX", "PUPIL_DIAMETER", "opd_map", "sensing_times", "write_opd_files"]

APERTURE = "NRCA3_FP1"
NPIX = 256  # pixels across the pupil, as the sensing software's maps
PUPIL_DIAMETER = 6.603464  # m, circumscribed diameter of the primary
_OBSCURATION = 0.11  # central obscuration, fraction of the diameter
_BASE_NM = np.array([35.0, 25.0, -20.0, 15.0, 10.0, -12.0, 8.0])  # Z4..Z10 at the start
_STEP_NM = 6.0  # rms change of each coefficient between sensings


def _zernikes(npix: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """The pupil mask and Zernike terms Z4..Z10 (defocus, astigmatism x2, coma x2,
    trefoil x2), unit rms over the unit disk."""
    y, x = (np.indices((npix, npix)) - (npix - 1) / 2) / (npix / 2)
    r, t = np.hypot(x, y), np.arctan2(y, x)
    pupil = (r <= 1.0) & (r >= _OBSCURATION)
    terms = [
        np.sqrt(3) * (2 * r**2 - 1),
        np.sqrt(6) * r**2 * np.sin(2 * t), np.sqrt(6) * r**2 * np.cos(2 * t),
        np.sqrt(8) * (3 * r**3 - 2 * r) * np.sin(t), np.sqrt(8) * (3 * r**3 - 2 * r) * np.cos(t),
        np.sqrt(8) * r**3 * np.sin(3 * t), np.sqrt(8) * r**3 * np.cos(3 * t),
    ]
    return pupil, terms


def opd_map(coefficients_nm: np.ndarray, npix: int = NPIX) -> np.ndarray:
    """The OPD (metres, float64) of the Zernike coefficients (nm) over the pupil; 0 outside."""
    pupil, terms = _zernikes(npix)
    opd = sum(c * z for c, z in zip(coefficients_nm, terms, strict=True)) * 1e-9
    return np.where(pupil, opd, 0.0)


def sensing_times(plan: Plan, cadence_hours: float) -> list[datetime]:
    """Sensing times every ``cadence_hours`` (from midnight before the first exposure),
    covering the program's exposures with one sensing before the first and one after the last."""
    starts = [e.start_time for o in plan.observations if o.msa_metadata is None for e in o.exposures]
    if not starts or cadence_hours <= 0:
        return []
    first = min(starts).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(hours=cadence_hours / 2)
    step = timedelta(hours=cadence_hours)
    times = [first]
    while times[-1] <= max(starts):
        times.append(times[-1] + step)
    return times


def write_opd_files(plan: Plan, seed: int, cadence_hours: float, directory: Path) -> list[Path]:
    """Write one OPD file per sensing (:func:`sensing_times`); their paths, in time order."""
    times = sensing_times(plan, cadence_hours)
    rng = generator(Stream.WAVEFRONT, seed)
    coefficients = _BASE_NM.copy()
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths, per_day = [], {}
    for when in times:
        coefficients = coefficients + rng.normal(0.0, _STEP_NM, size=coefficients.size)
        opd = opd_map(coefficients)
        day = when.replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None)
        per_day[day] = per_day.get(day, 0) + 1
        name = OpdName(day, per_day[day], APERTURE).format()
        pupil = opd != 0.0
        rms_nm = float(np.sqrt(np.mean(opd[pupil] ** 2)) * 1e9)
        primary = fits.PrimaryHDU(opd)
        primary.header.update({
            "TELESCOP": ("JWST", "telescope"),
            "INSTRUME": ("NIRCAM", "instrument the wavefront was sensed with"),
            "DETECTOR": ("NRCA3", "detector"),
            "APERNAME": (APERTURE, "field point of the sensing"),
            "FILENAME": (name, "name of file"),
            "DATE-OBS": (f"{when:%Y-%m-%d}", "UTC date of the sensing"),
            "TIME-OBS": (f"{when:%H:%M:%S}", "UTC time of the sensing"),
            "MJD-OBS": (float(Time(when).mjd), "MJD (UTC) of the sensing"),
            "CORR_ID": (1, "correction id"),
            "BUNIT": ("m", "OPD unit"),
            "PUPLDIAM": (PUPIL_DIAMETER, "pupil diameter, m"),
            "PUPLSCAL": (PUPIL_DIAMETER / opd.shape[0], "pupil scale, m per pixel"),
            "WFE_RMS": (round(rms_nm, 3), "rms OPD over the pupil, nm"),
        })
        phase = fits.ImageHDU((opd * 1e6).astype(np.float32), name="RESULT_PHASE")
        phase.header["BUNIT"] = ("um", "OPD, micrometres (sensing software output)")
        path = directory / name
        fits.HDUList([primary, phase]).writeto(path, overwrite=True, output_verify="exception")
        paths.append(path)
    return paths
