"""stretch: display limits and a non-linear stretch for an image, masked pixels left out.

Limits come from astropy's ZScaleInterval (the IRAF/DS9 "zscale" that brackets the sky
and faint sources) over the unmasked, finite pixels. When zscale cannot give two distinct
finite limits (too few pixels, a constant image, a fit that fails), a percentile interval is
used instead, and for a constant image a unit-wide window around the value. The data are
scaled to [0, 1] between the limits, clipped, and passed through astropy's AsinhStretch:
nearly linear for faint values, logarithmic for bright ones, so the sky keeps its noise
texture and stars keep a visible core.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from astropy.visualization import AsinhStretch, PercentileInterval, ZScaleInterval
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["StretchParams", "Stretched", "display_limits", "stretch"]


class StretchParams(BaseModel):
    """Parameters of the preview stretch."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    contrast: float = Field(0.25, gt=0, le=1, description="ZScale contrast: smaller gives a wider range.")
    n_samples: int = Field(2000, ge=10, description="Pixels ZScale samples (evenly spaced, so deterministic).")
    percentile: float = Field(99.5, gt=0, le=100, description="Central percentile kept when ZScale fails.")
    asinh_a: float = Field(
        0.5, gt=0, le=1,
        description="AsinhStretch softening: linear below about a (in units of the limits' range).",
    )


_DEFAULTS = StretchParams()


@dataclass(frozen=True)
class Stretched:
    """A stretched image: ``values`` float64 in [0, 1] (masked pixels 0), ``mask`` as given,
    the limits used and which interval produced them ("zscale", "percentile" or "constant")."""

    values: np.ndarray
    mask: np.ndarray
    vmin: float
    vmax: float
    interval: str


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
    vmin, vmax, interval = display_limits(image[~bad], params)
    scaled = np.clip((np.where(bad, vmin, image) - vmin) / (vmax - vmin), 0.0, 1.0)
    values = AsinhStretch(a=params.asinh_a)(scaled, clip=True)
    values[bad] = 0.0
    return Stretched(values=values, mask=bad, vmin=vmin, vmax=vmax, interval=interval)
