"""stretch: display limits and a non-linear stretch for an image, masked pixels left out.

Limits come from astropy's ZScaleInterval (the IRAF/DS9 "zscale" that brackets the sky
and faint sources) over the unmasked, finite pixels. When zscale cannot give two distinct
finite limits (too few pixels, a constant image, a fit that fails), a percentile interval is
used instead, and for a constant image a unit-wide window around the value.

ZScale's upper limit is meant for a linear display and sits just above the noise, so every
star would be a white disc. Because the asinh stretch compresses bright values, the upper
limit is raised to the ``bright_percentile`` of the pixels (when that is higher) so star
cores keep some structure. The data are scaled to [0, 1] between the limits, clipped, and
passed through astropy's AsinhStretch, whose softening ``a`` is chosen so the median pixel
(the sky, in nearly every image) comes out at grey level ``sky_level``: a dark sky that
keeps its noise texture, faint sources lifted, bright ones compressed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from astropy.visualization import AsinhStretch, PercentileInterval, ZScaleInterval
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["StretchParams", "Stretched", "asinh_softening", "display_limits", "stretch"]


class StretchParams(BaseModel):
    """Parameters of the preview stretch."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    contrast: float = Field(0.25, gt=0, le=1, description="ZScale contrast: smaller gives a wider range.")
    n_samples: int = Field(2000, ge=10, description="Pixels ZScale samples (evenly spaced, so deterministic).")
    percentile: float = Field(99.5, gt=0, le=100, description="Central percentile kept when ZScale fails.")
    bright_percentile: float | None = Field(
        99.9, gt=50, le=100, description="Raise the upper limit to this percentile if higher (None: keep ZScale's).",
    )
    sky_level: float = Field(
        0.2, gt=0, lt=1, description="Grey level (0-1) the median pixel is stretched to; sets the asinh softening.",
    )


_DEFAULTS = StretchParams()


@dataclass(frozen=True)
class Stretched:
    """A stretched image: ``values`` float64 in [0, 1] (masked pixels 0), ``mask`` (given
    mask or non-finite), the limits used, which interval produced the lower one ("zscale",
    "percentile" or "constant") and the asinh softening used."""

    values: np.ndarray
    mask: np.ndarray
    vmin: float
    vmax: float
    interval: str
    asinh_a: float


def display_limits(values: np.ndarray, params: StretchParams = _DEFAULTS) -> tuple[float, float, str]:
    """(vmin, vmax, interval name) for a 1-D array of finite values."""
    if values.size == 0:
        return 0.0, 1.0, "constant"
    if values.size >= 10:
        try:
            vmin, vmax = ZScaleInterval(n_samples=params.n_samples, contrast=params.contrast).get_limits(values)
        except Exception:  # zscale's fit can fail on odd data; fall back below
            vmin = vmax = np.nan
        if np.isfinite(vmin) and np.isfinite(vmax) and vmax > vmin:
            return float(vmin), float(vmax), "zscale"
    vmin, vmax = PercentileInterval(params.percentile).get_limits(values)
    if np.isfinite(vmin) and np.isfinite(vmax) and vmax > vmin:
        return float(vmin), float(vmax), "percentile"
    lo, hi = float(values.min()), float(values.max())
    if hi > lo:
        return lo, hi, "percentile"
    return lo - 0.5, lo + 0.5, "constant"


def asinh_softening(median: float, sky_level: float) -> float:
    """The AsinhStretch ``a`` in (0, 1] that maps ``median`` (in [0, 1]) to ``sky_level``;
    1 (nearly linear) when the median is already at or above that level."""
    def f(a: float) -> float:
        return float(np.arcsinh(median / a) / np.arcsinh(1.0 / a))

    if not 0 < median < 1 or f(1.0) >= sky_level:
        return 1.0
    lo, hi = 1e-6, 1.0  # f decreases with a: f(lo) > sky_level > f(hi)
    if f(lo) <= sky_level:
        return lo
    for _ in range(50):  # bisection in log a; deterministic
        mid = float(np.sqrt(lo * hi))
        lo, hi = (mid, hi) if f(mid) > sky_level else (lo, mid)
    return float(np.sqrt(lo * hi))


def stretch(image: np.ndarray, mask: np.ndarray | None = None, params: StretchParams = _DEFAULTS) -> Stretched:
    """Scale ``image`` (ny, nx) to [0, 1] for display.

    Parameters
    ----------
    image : ndarray
        2-D image, any float dtype; non-finite pixels are treated as masked.
    mask : ndarray of bool, optional
        True where a pixel must not count (flagged); such pixels get value 0 and stay in the
        returned mask, for the renderer to paint in its own colour.
    params : StretchParams
    """
    image = np.asarray(image, dtype=np.float64)
    bad = ~np.isfinite(image)
    if mask is not None:
        bad = bad | np.asarray(mask, dtype=bool)
    good = image[~bad]
    vmin, vmax, interval = display_limits(good, params)
    if params.bright_percentile is not None and interval != "constant":
        vmax = max(vmax, float(np.percentile(good, params.bright_percentile)))
    scaled = np.clip((np.where(bad, vmin, image) - vmin) / (vmax - vmin), 0.0, 1.0)
    median = float(np.median(scaled[~bad])) if good.size else 0.0
    a = asinh_softening(median, params.sky_level)
    values = AsinhStretch(a=a)(scaled, clip=True)
    values[bad] = 0.0
    return Stretched(values=values, mask=bad, vmin=vmin, vmax=vmax, interval=interval, asinh_a=a)
