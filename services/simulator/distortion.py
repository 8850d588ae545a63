"""Optical distortion of each detector: a fixed SIP polynomial (the DISTORTION reference).

Every detector gets an order-3 :class:`shared.wcs.SipDistortion` about its full-frame
centre, 1-based ``((nx + 1) / 2, (ny + 1) / 2)``. The coefficients are drawn once from the
detector code (not from any seed of a run: the optics do not change between programs):

- quadratic terms ``A_p_q``/``B_p_q`` (p + q = 2): magnitude log-uniform in
  [1e-6, 2.5e-6] per pixel, random sign (1-7 pixels at the corners of a 2048 frame);
- cubic terms (p + q = 3): magnitude log-uniform in [5e-11, 1.5e-10] per pixel^2.

No linear terms: the scale and orientation at the reference pixel are the nominal ones.
The relative pixel area (Jacobian determinant) stays within about +-2 % over the frame
(bounded by 2 x (3 x 2.5e-6 x 1024 + 6 x 1.5e-10 x 1024^2) = 1.7 %).
"""

from __future__ import annotations

from functools import cache

import numpy as np

from shared.instruments import DetectorInfo
from shared.wcs import SipDistortion

from .seeding import Stream, generator

__all__ = ["QUADRATIC_RANGE", "CUBIC_RANGE", "detector_distortion", "relative_area_window"]

QUADRATIC_RANGE = (1.0e-6, 2.5e-6)  # per pixel
CUBIC_RANGE = (5.0e-11, 1.5e-10)  # per pixel^2
_ORDER = 3


@cache
def detector_distortion(det: DetectorInfo) -> SipDistortion:
    """The SIP distortion of a detector (deterministic: the same for every run)."""
    rng = generator(0, Stream.OPTICS, det.code)
    terms = [(p, q) for order in (2, 3) for p in range(order, -1, -1) for q in [order - p]]
    coeffs = {}
    for axis in ("a", "b"):
        values = {}
        for p, q in terms:
            low, high = QUADRATIC_RANGE if p + q == 2 else CUBIC_RANGE
            # 10 significant digits: the DISTORTION reference's FITS cards hold them exactly,
            # so stage 2 rebuilds the very WCS the stars were placed with.
            magnitude = float(f"{np.exp(rng.uniform(np.log(low), np.log(high))):.10g}")
            values[(p, q)] = magnitude if rng.random() < 0.5 else -magnitude
        coeffs[axis] = values
    crpix = ((det.nx + 1) / 2.0, (det.ny + 1) / 2.0)
    return SipDistortion(_ORDER, crpix, coeffs["a"], coeffs["b"])


def relative_area_window(distortion: SipDistortion, xstart: int, ystart: int, xsize: int, ysize: int) -> np.ndarray:
    """Relative pixel area of a readout window.

    Parameters
    ----------
    distortion : SipDistortion
        The detector's distortion.
    xstart, ystart : int
        1-based full-frame position of the window's first pixel (SUBSTRT1/2).
    xsize, ysize : int
        Window size, pixels.

    Returns
    -------
    ndarray of float64, shape (ysize, xsize)
        Area of each pixel on the sky relative to a nominal (``pixel_scale``^2) pixel.
    """
    x = np.arange(xstart - 1, xstart - 1 + xsize, dtype=np.float64)
    y = np.arange(ystart - 1, ystart - 1 + ysize, dtype=np.float64)
    return distortion.relative_area(x[None, :], y[:, None])
