"""Shape statistics of the source catalog: the DAOFIND sharpness and roundness (Stetson
1987, as the public catalog reports them) and position angles on the sky."""

from __future__ import annotations

import math

import numpy as np
from astropy.wcs import WCS
from scipy import ndimage

__all__ = ["daofind_kernel", "position_angle", "sharpness_roundness"]


def daofind_kernel(fwhm: float) -> tuple[np.ndarray, np.ndarray]:
    """The zero-sum DAOFIND kernel of a Gaussian of ``fwhm`` pixels and its circular
    footprint (1 inside radius max(2, 1.5 sigma))."""
    sigma = fwhm / (2.0 * math.sqrt(2.0 * math.log(2.0)))
    radius = max(2.0, 1.5 * sigma)
    size = 2 * int(radius) + 1
    c = (size - 1) // 2
    yy, xx = np.mgrid[0:size, 0:size]
    r2 = (xx - c) ** 2 + (yy - c) ** 2
    footprint = (np.sqrt(r2) <= radius).astype(float)
    g = np.exp(-r2 / (2.0 * sigma**2)) * footprint
    n = footprint.sum()
    denom = np.sum(g**2) - g.sum() ** 2 / n
    return (g - g.sum() / n) / denom * footprint, footprint


def _cutouts(image: np.ndarray, x: np.ndarray, y: np.ndarray, size: int) -> np.ndarray:
    half = size // 2
    padded = np.pad(image, half, constant_values=0.0)
    xi = np.rint(np.nan_to_num(x, nan=-1e6)).astype(np.intp)
    yi = np.rint(np.nan_to_num(y, nan=-1e6)).astype(np.intp)
    out = np.zeros((len(x), size, size))
    ny, nx = image.shape
    for k, (a, b) in enumerate(zip(xi, yi, strict=True)):
        if 0 <= a < nx and 0 <= b < ny:
            out[k] = padded[b: b + size, a: a + size]
    return out


def sharpness_roundness(data: np.ndarray, x: np.ndarray, y: np.ndarray, fwhm: float) -> tuple[np.ndarray, np.ndarray]:
    """DAOFIND statistics at each (x, y) (nearest pixel) of a background-subtracted image.

    sharpness = (peak - mean of the other footprint pixels) / peak of the filtered image
    (stars about 0.2-1); roundness = 2 (-q1 + q2 - q3 + q4) / sum |q| over the quadrants
    of the filtered cutout with its centre zeroed (round sources near 0).
    """
    kernel, footprint = daofind_kernel(fwhm)
    size = kernel.shape[0]
    c = size // 2
    img = np.nan_to_num(np.asarray(data, float))
    conv = ndimage.convolve(img, kernel, mode="constant", cval=0.0)
    cut = _cutouts(img, x, y, size)
    cut_conv = _cutouts(conv, x, y, size)
    with np.errstate(invalid="ignore", divide="ignore"):
        peak = cut[:, c, c]
        mean_rest = (np.sum(cut * footprint, axis=(1, 2)) - peak) / (footprint.sum() - 1)
        sharp = (peak - mean_rest) / cut_conv[:, c, c]
        q = cut_conv.copy()
        q[:, c, c] = 0.0
        q1 = q[:, : c + 1, c + 1:].sum(axis=(1, 2))
        q2 = q[:, :c, : c + 1].sum(axis=(1, 2))
        q3 = q[:, c:, :c].sum(axis=(1, 2))
        q4 = q[:, c + 1:, c:].sum(axis=(1, 2))
        total = np.abs(q).sum(axis=(1, 2))
        round_ = 2.0 * (-q1 + q2 - q3 + q4) / np.where(total == 0, np.nan, total)
    return sharp, round_


def position_angle(wcs: WCS, x: np.ndarray, y: np.ndarray, angle_deg: np.ndarray) -> np.ndarray:
    """Position angle on the sky (degrees East of North, 0-360) of directions that make
    ``angle_deg`` (counter-clockwise from +x) at pixels (x, y)."""
    t = np.radians(np.asarray(angle_deg, float))
    step = 0.5
    ra0, dec0 = wcs.pixel_to_world_values(x, y)
    ra1, dec1 = wcs.pixel_to_world_values(x + step * np.cos(t), y + step * np.sin(t))
    d0, d1 = np.radians(dec0), np.radians(dec1)
    da = np.radians(np.asarray(ra1) - np.asarray(ra0))
    pa = np.arctan2(np.sin(da) * np.cos(d1), np.cos(d0) * np.sin(d1) - np.sin(d0) * np.cos(d1) * np.cos(da))
    return np.degrees(pa) % 360.0
