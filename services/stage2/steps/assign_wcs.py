"""assign_wcs: the imaging WCS of a readout window, as FITS keywords, and its footprint.

The WCS is :func:`shared.wcs.sky_wcs` of the commanded pointing (RA_REF, DEC_REF,
ROLL_REF at the window centre) with the detector's SIP distortion from the DISTORTION
reference: a gnomonic projection with SIP terms about the detector's full-frame
reference pixel, written into the SCI header so that ``astropy.wcs.WCS(header)`` maps
pixels to the sky. Without a distortion the plain pointing WCS (TAN) is kept.

S_REGION is the polygon through the sky positions of the window's outer pixel corners
(0-based pixel edges -0.5 and n - 0.5), ICRS degrees, as the public pipeline writes it.

Pointing errors are not known here: aligning to the sky is stage 3's tweakreg.
"""

from __future__ import annotations

import numpy as np
from astropy.wcs import WCS

from shared.wcs import SipDistortion, sky_wcs, wcs_header

__all__ = ["exposure_wcs", "footprint", "s_region", "wcs_cards"]



def exposure_wcs(ra_ref: float, dec_ref: float, roll_ref: float, pixel_scale: float, xsize: int, ysize: int,
                 *, xstart: int = 1, ystart: int = 1, distortion: SipDistortion | None = None) -> WCS:
    """The WCS of a window whose centre points at (``ra_ref``, ``dec_ref``) degrees, +y at
    position angle ``roll_ref`` degrees; ``pixel_scale`` arcsec/pixel; ``xstart``/``ystart``
    the 1-based full-frame position of the window's first pixel (SUBSTRT1/2)."""
    if not pixel_scale > 0:
        raise ValueError(f"pixel scale must be positive, got {pixel_scale}")
    return sky_wcs(ra_ref, dec_ref, roll_ref, pixel_scale, int(xsize), int(ysize),
                   xstart=int(xstart), ystart=int(ystart), distortion=distortion)


def wcs_cards(wcs: WCS) -> dict:
    """SCI-header keywords of ``wcs`` (SIP terms included), values as plain Python numbers."""
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in wcs_header(wcs).items()}


def footprint(wcs: WCS, shape: tuple[int, int]) -> np.ndarray:
    """Sky positions (ra, dec) degrees, shape (4, 2), of the outer corners of a window of
    ``shape`` (ny, nx): (-0.5, -0.5), (nx-0.5, -0.5), (nx-0.5, ny-0.5), (-0.5, ny-0.5)."""
    ny, nx = shape
    x = np.array([-0.5, nx - 0.5, nx - 0.5, -0.5])
    y = np.array([-0.5, -0.5, ny - 0.5, ny - 0.5])
    ra, dec = wcs.all_pix2world(x, y, 0)
    return np.column_stack([np.mod(ra, 360.0), dec])


def s_region(corners: np.ndarray) -> str:
    """The S_REGION value of a footprint: ``POLYGON ICRS ra1 dec1 ra2 dec2 ...`` (degrees)."""
    return "POLYGON ICRS " + " ".join(f"{ra:.9f} {dec:.9f}" for ra, dec in np.asarray(corners))
