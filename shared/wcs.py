"""The pointing WCS of a detector readout window (what ingest writes), and the SIP
polynomial a detector's optical distortion is made of.

Convention: the pointing (RA_REF, DEC_REF) is the sky position of the centre of the
readout window, 1-based pixel ((xsize + 1) / 2, (ysize + 1) / 2); ROLL_REF is the position
angle of the detector +y axis, degrees from North through East; sky parity is the usual
one (East to the left when North is up). Gnomonic (TAN) projection, no distortion.

Distortion (:class:`SipDistortion`): a SIP polynomial in full-frame pixels about a fixed
full-frame reference pixel. :mod:`shared.imaging_wcs` builds on it the DISTORTION model
(pixels to the telescope's V2/V3) and the gwcs the simulator places stars with and
stage 2 (assign_wcs) writes into calibrated products.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from astropy.wcs import WCS

__all__ = ["SipDistortion", "pc_matrix", "wcs_header", "window_wcs", "wcs_keywords"]


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


@dataclass(frozen=True)
class SipDistortion:
    """Distortion of one detector: SIP polynomials in full-frame pixels.

    ``a``/``b`` map (p, q) to the coefficient of ``u**p * v**q`` in the x/y corrections
    (``u, v`` = 1-based full-frame pixel minus ``crpix``), 2 <= p + q <= ``order``;
    ``crpix`` is the full-frame 1-based reference pixel.
    """

    order: int
    crpix: tuple[float, float]
    a: dict[tuple[int, int], float] = field(default_factory=dict)
    b: dict[tuple[int, int], float] = field(default_factory=dict)

    def correction(self, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(du, dv) added to (u, v), pixels."""
        u, v = np.asarray(u, float), np.asarray(v, float)
        du = sum(c * u**p * v**q for (p, q), c in self.a.items()) + 0.0 * u
        dv = sum(c * u**p * v**q for (p, q), c in self.b.items()) + 0.0 * v
        return du, dv

    def relative_area(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Pixel area relative to an undistorted pixel at 0-based full-frame (x, y):
        the Jacobian determinant of (u, v) -> (u + du, v + dv)."""
        u = np.asarray(x, float) + 1.0 - self.crpix[0]
        v = np.asarray(y, float) + 1.0 - self.crpix[1]

        def partial(coeffs: dict[tuple[int, int], float], wrt_u: bool) -> np.ndarray:
            out = np.zeros(np.broadcast(u, v).shape)
            for (p, q), c in coeffs.items():
                if wrt_u and p:
                    out = out + c * p * u ** (p - 1) * v**q
                elif not wrt_u and q:
                    out = out + c * q * u**p * v ** (q - 1)
            return out

        return (1.0 + partial(self.a, True)) * (1.0 + partial(self.b, False)) - partial(self.a, False) * partial(self.b, True)


def wcs_header(w: WCS) -> dict:
    """SCI-header keywords of an astropy WCS (with SIP terms when it has them)."""
    hdr = w.to_header(relax=True)
    return {k: hdr[k] for k in hdr if k not in ("DATE-OBS", "MJD-OBS", "DATEREF", "MJDREF", "WCSNAME")}
