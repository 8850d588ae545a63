"""skymatch: one constant sky level per exposure, measured and subtracted.

Simplified from the public step (which matches sky in the overlaps of exposures on a
common grid). Here every exposure's level ``s_i`` is the sigma-clipped median (3 sigma,
5 iterations) of its good pixels (finite, not DO_NOT_USE), after pixels more than
``source_snr`` sigma above a first clipped median, grown by ``source_grow`` pixels, are
masked as sources. Then, with ``m = min(s_i)``, the subtracted level is:

- ``"local"``: ``s_i`` (each exposure to zero);
- ``"global"``: ``m`` for every exposure (one common sky removed, relative offsets kept);
- ``"match"``: ``s_i - m`` (all brought to the lowest level, which stays);
- ``"global+match"`` (default): ``(s_i - m) + m = s_i``; for skies constant across each
  exposure this is what matching in overlaps and then removing the global minimum gives.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from astropy.stats import sigma_clipped_stats
from pydantic import BaseModel, ConfigDict, Field
from scipy import ndimage

from shared.datamodels.dqflags import PIXEL

__all__ = ["SkyMatchParams", "SkyMatchResult", "measure_sky", "skymatch"]


class SkyMatchParams(BaseModel):
    """Parameters of skymatch."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    skymethod: Literal["local", "global", "match", "global+match"] = Field(
        "global+match", description="How levels combine; see the module docstring.")
    source_snr: float = Field(3.0, gt=0, description="Pixels this many sigma above the sky are masked as sources.")
    source_grow: int = Field(2, ge=0, description="Grow the source mask by this many pixels.")
    subtract: bool = Field(True, description="Subtract the level from the data (else only report it).")


@dataclass(frozen=True)
class SkyMatchResult:
    """Per exposure: ``measured`` sky level s_i and ``subtracted`` level (data units);
    ``data`` the images after subtraction (inputs unchanged when ``subtract`` is False)."""

    measured: list[float]
    subtracted: list[float]
    data: list[np.ndarray]


def measure_sky(data: np.ndarray, dq: np.ndarray | None = None, *, source_snr: float = 3.0,
                source_grow: int = 2) -> float:
    """Sigma-clipped median of the sky pixels of one image (data units); NaN when it has
    no good pixel."""
    good = np.isfinite(data)
    if dq is not None:
        good &= (dq & PIXEL["DO_NOT_USE"]) == 0
    if not good.any():
        return float("nan")
    _, median, std = sigma_clipped_stats(data[good], sigma=3.0, maxiters=5)
    sources = good & (data > median + source_snr * std)
    if source_grow:
        sources = ndimage.binary_dilation(sources, iterations=source_grow)
    sky = good & ~sources
    if sky.sum() < 0.05 * good.sum():
        sky = good  # a field full of sources: fall back to all good pixels
    _, median, _ = sigma_clipped_stats(data[sky], sigma=3.0, maxiters=5)
    return float(median)


def skymatch(images: Sequence[np.ndarray], dqs: Sequence[np.ndarray | None], params: SkyMatchParams | None = None,
             ) -> SkyMatchResult:
    """Measure and subtract the sky of every image (see the module docstring)."""
    p = params or SkyMatchParams()
    measured = [measure_sky(img, dq, source_snr=p.source_snr, source_grow=p.source_grow)
                for img, dq in zip(images, dqs, strict=True)]
    finite = [s for s in measured if np.isfinite(s)]
    low = min(finite) if finite else 0.0
    levels = []
    for s in measured:
        if not np.isfinite(s):
            levels.append(0.0)
        elif p.skymethod == "global":
            levels.append(low)
        elif p.skymethod == "match":
            levels.append(s - low)
        else:  # local, global+match
            levels.append(s)
    data = [(img - np.float32(level)).astype(img.dtype) if p.subtract else img for img, level in zip(images, levels, strict=True)]
    return SkyMatchResult(measured, levels, data)
