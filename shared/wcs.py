"""The pointing WCS of a detector readout window: one definition for the simulator
(placing stars) and ingest (writing the WCS keywords).

Convention: the pointing (RA_REF, DEC_REF) is the sky position of the centre of the
readout window, 1-based pixel ((xsize + 1) / 2, (ysize + 1) / 2); ROLL_REF is the position
angle of the detector +y axis, degrees from North through East; sky parity is the usual
one (East to the left when North is up). Gnomonic (TAN) projection.
"""

from __future__ import annotations

import math

from astropy.wcs import WCS

__all__ = ["pc_matrix", "window_wcs", "wcs_keywords"]


def pc_matrix(roll_deg: float) -> tuple[float, float, float, float]:
    """(PC1_1, PC1_2, PC2_1, PC2_2) for a roll angle."""
    r = math.radians(roll_deg)
    return (-math.cos(r), math.sin(r), math.sin(r), math.cos(r))


def wcs_keywords(ra: float, dec: float, roll: float, pixel_scale: float, xsize: int, ysize: int) -> dict:
    """SCI-header WCS keywords for a window of ``xsize`` x ``ysize`` pixels.

    ``pixel_scale`` in arcsec/pixel; angles in degrees.
    """
    pc11, pc12, pc21, pc22 = pc_matrix(roll)
    return {
        "RADESYS": "ICRS",
        "WCSAXES": 2,
        "CRPIX1": (xsize + 1) / 2.0,
        "CRPIX2": (ysize + 1) / 2.0,
        "CRVAL1": ra,
        "CRVAL2": dec,
        "CTYPE1": "RA---TAN",
        "CTYPE2": "DEC--TAN",
        "CUNIT1": "deg",
        "CUNIT2": "deg",
        "CDELT1": pixel_scale / 3600.0,
        "CDELT2": pixel_scale / 3600.0,
        "PC1_1": pc11,
        "PC1_2": pc12,
        "PC2_1": pc21,
        "PC2_2": pc22,
        "RA_REF": ra,
        "DEC_REF": dec,
        "ROLL_REF": roll,
    }


def window_wcs(ra: float, dec: float, roll: float, pixel_scale: float, xsize: int, ysize: int) -> WCS:
    """An astropy WCS for the window; ``wcs.pixel_to_world(x, y)`` takes 0-based pixels."""
    kw = wcs_keywords(ra, dec, roll, pixel_scale, xsize, ysize)
    w = WCS(naxis=2)
    w.wcs.crpix = [kw["CRPIX1"], kw["CRPIX2"]]
    w.wcs.crval = [ra, dec]
    w.wcs.ctype = [kw["CTYPE1"], kw["CTYPE2"]]
    w.wcs.cunit = ["deg", "deg"]
    w.wcs.cdelt = [kw["CDELT1"], kw["CDELT2"]]
    w.wcs.pc = [[kw["PC1_1"], kw["PC1_2"]], [kw["PC2_1"], kw["PC2_2"]]]
    w.wcs.radesys = "ICRS"
    w.wcs.set()
    return w
