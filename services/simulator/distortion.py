"""Optical distortion of each detector: a fixed SIP polynomial, and the transform from its
pixels to the telescope's (V2, V3) frame built on it (the DISTORTION reference's model).

Every detector gets an order-3 :class:`shared.wcs.SipDistortion` about its full-frame
centre, 1-based ``((nx + 1) / 2, (ny + 1) / 2)``. The coefficients are drawn once from the
detector code (not from any seed of a run: the optics do not change between programs):

- quadratic terms ``A_p_q``/``B_p_q`` (p + q = 2): magnitude log-uniform in
  [1e-6, 2.5e-6] per pixel, random sign (1-7 pixels at the corners of a 2048 frame);
- cubic terms (p + q = 3): magnitude log-uniform in [5e-11, 1.5e-10] per pixel^2.

No linear terms: the scale and orientation at the reference pixel are the nominal ones.
The relative pixel area (Jacobian determinant) stays within about +-2 % over the frame
(bounded by 2 x (3 x 2.5e-6 x 1024 + 6 x 1.5e-10 x 1024^2) = 1.7 %).

:func:`detector_distortion_model` is :func:`shared.imaging_wcs.distortion_model` of that
polynomial with the detector's pixel scale, its reference pixel at the detector's
(``v2_ref``, ``v3_ref``): the optics the stars are placed through, and the DISTORTION
reference file's model.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from shared.instruments import DetectorInfo, Subarray
from shared.wcs import SipDistortion

from .seeding import Stream, generator

__all__ = ["QUADRATIC_RANGE", "CUBIC_RANGE", "detector_distortion", "detector_distortion_model",
           "relative_area_window", "window_v2v3"]

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
            # 10 significant digits: short, readable numbers (the coefficients of earlier
            # runs, when FITS cards held them).
            magnitude = float(f"{np.exp(rng.uniform(np.log(low), np.log(high))):.10g}")
            values[(p, q)] = magnitude if rng.random() < 0.5 else -magnitude
        coeffs[axis] = values
    crpix = ((det.nx + 1) / 2.0, (det.ny + 1) / 2.0)
    return SipDistortion(_ORDER, crpix, coeffs["a"], coeffs["b"])


@cache
def detector_distortion_model(det: DetectorInfo):
    """The detector's full-frame 0-based pixels to (V2, V3) arcsec (an astropy model)."""
    from shared.imaging_wcs import distortion_model

    return distortion_model(detector_distortion(det), det.pixel_scale, det.v2_ref, det.v3_ref, (det.ny, det.nx))


def window_v2v3(det: DetectorInfo, sub: Subarray) -> tuple[float, float]:
    """(V2, V3) arcsec of the centre of a readout window: its aperture reference point."""
    from shared.imaging_wcs import window_reference

    return window_reference(detector_distortion_model(det), sub.xstart, sub.ystart, sub.xsize, sub.ysize)


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
