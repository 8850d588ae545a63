"""skymatch: one constant sky level per exposure (or per detector image), measured and
subtracted.

Simplified from the public step, which matches sky in the overlaps of the images on the
sky (stcal ``skymatch``); here the skies are taken as constant over each image.

1. Every image's sky ``s_i`` is the sigma-clipped median (3 sigma, 5 iterations) of its
   good pixels (finite, not DO_NOT_USE), after pixels more than ``source_snr`` sigma
   above a first clipped median, grown by ``source_grow`` pixels, are masked as sources;
   ``n_i`` is the number of sky pixels it used.
2. Images are grouped: with ``grouping="exposure"`` (default) the images of one exposure
   (its detectors) form one group whose level is fitted and subtracted together, as the
   public step does (jwst ``SkyMatchStep`` makes one ``SkyGroup`` per exposure of its
   ``ModelLibrary``: program, observation, visit, visit group, sequence, activity and
   exposure number); with ``grouping="detector"`` every image is its own group. The
   caller gives the group of each image.
3. Levels, as stcal computes them for skies constant over each image (``m`` = lowest):

   - a group's own sky ``L_g`` is the lowest ``s_i`` of its images (stcal ``SkyGroup``
     without an overlap); its sky where it overlaps others ``M_g`` is the pixel-weighted
     mean ``sum(n_i s_i) / sum(n_i)`` of its images (stcal weights each member's overlap
     sky by its pixels);
   - ``"local"``: ``L_g``;
   - ``"global"``: ``min_g L_g`` for every group (one common sky, offsets kept);
   - ``"match"``: ``d_g = M_g - min_h M_h`` (all brought to the lowest, which stays);
   - ``"global+match"`` (default): ``d_g + min_h min_{i in h} (s_i - d_h)``: matched,
     then the lowest remaining sky removed from all.

   With one image per group these are ``s_i``, ``min s``, ``s_i - min s`` and ``s_i``.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from astropy.stats import sigma_clipped_stats
from pydantic import BaseModel, ConfigDict, Field
from scipy import ndimage

from shared.datamodels.dqflags import PIXEL

__all__ = ["SkyMatchParams", "SkyMatchResult", "group_levels", "measure_sky", "skymatch", "subtract_level"]


class SkyMatchParams(BaseModel):
    """Parameters of skymatch."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    skymethod: Literal["local", "global", "match", "global+match"] = Field(
        "global+match", description="How levels combine; see the module docstring.")
    grouping: Literal["exposure", "detector"] = Field(
        "exposure", description="One level per exposure (its detectors together, as the public step) or per detector.")
    source_snr: float = Field(3.0, gt=0, description="Pixels this many sigma above the sky are masked as sources.")
    source_grow: int = Field(2, ge=0, description="Grow the source mask by this many pixels.")
    subtract: bool = Field(True, description="Subtract the level from the data (else only report it).")


@dataclass(frozen=True)
class SkyMatchResult:
    """Per image: ``measured`` sky s_i and ``subtracted`` level (its group's; data
    units); ``data`` the images after subtraction (inputs unchanged when ``subtract`` is
    False); ``groups`` the group index of each image, in order of first appearance."""

    measured: list[float]
    subtracted: list[float]
    data: list[np.ndarray]
    groups: list[int]


def measure_sky(data: np.ndarray, dq: np.ndarray | None = None, *, source_snr: float = 3.0,
                source_grow: int = 2) -> tuple[float, int]:
    """Sigma-clipped median of the sky pixels of one image (data units) and the number of
    pixels it was taken over; (NaN, 0) when the image has no good pixel."""
    good = np.isfinite(data)
    if dq is not None:
        good &= (dq & PIXEL["DO_NOT_USE"]) == 0
    if not good.any():
        return float("nan"), 0
    _, median, std = sigma_clipped_stats(data[good], sigma=3.0, maxiters=5)
    sources = good & (data > median + source_snr * std)
    if source_grow:
        sources = ndimage.binary_dilation(sources, iterations=source_grow)
    sky = good & ~sources
    if sky.sum() < 0.05 * good.sum():
        sky = good  # a field full of sources: fall back to all good pixels
    _, median, _ = sigma_clipped_stats(data[sky], sigma=3.0, maxiters=5)
    return float(median), int(sky.sum())


def group_levels(measured: Sequence[float], npix: Sequence[int], groups: Sequence[int],
                 skymethod: str) -> list[float]:
    """The level subtracted from each image (module docstring, step 3): ``measured``
    skies, their pixel counts and group indices (0..G-1) in, one level per image out (0
    for a group with no measured sky)."""
    s = np.asarray(measured, float)
    n = np.asarray(npix, float)
    g = np.asarray(groups, int)
    ids = sorted(set(g.tolist()))
    ok = np.isfinite(s)
    own = {k: float(np.min(s[(g == k) & ok])) for k in ids if np.any((g == k) & ok)}
    if not own:
        return [0.0] * len(s)
    level: dict[int, float]
    if skymethod == "local":
        level = own
    elif skymethod == "global":
        level = dict.fromkeys(own, min(own.values()))
    else:
        mean = {k: float(np.average(s[(g == k) & ok], weights=np.maximum(n[(g == k) & ok], 1))) for k in own}
        low = min(mean.values())
        level = {k: m - low for k, m in mean.items()}
        if skymethod == "global+match":
            rest = min(float(np.min(s[(g == k) & ok])) - d for k, d in level.items())
            level = {k: d + rest for k, d in level.items()}
    return [level.get(k, 0.0) for k in g.tolist()]


def subtract_level(image: np.ndarray, level: float) -> np.ndarray:
    """``image`` less a sky ``level``, a new array of the image's type."""
    return (image - np.float32(level)).astype(image.dtype)


def skymatch(images: Sequence[np.ndarray], dqs: Sequence[np.ndarray | None], params: SkyMatchParams | None = None,
             groups: Sequence[Hashable] | None = None,
             measured: Sequence[tuple[float, int] | None] | None = None) -> SkyMatchResult:
    """Measure the sky of every image and subtract its group's level (module docstring).

    Parameters
    ----------
    images : sequence of ndarray (ny, nx)
        Surface brightness.
    dqs : sequence of ndarray or None
        DQ of each image (DO_NOT_USE pixels are not sky).
    params : SkyMatchParams, optional
    groups : sequence of hashable, optional
        The exposure of each image (images with equal keys are fitted together); None,
        or ``params.grouping == "detector"``, puts every image in its own group.
    measured : sequence of (sky, npix) or None, optional
        What :func:`measure_sky` gave for an image already (a task of its own measured
        it); None entries (or None) are measured here.
    """
    p = params or SkyMatchParams()
    keys = list(range(len(images))) if groups is None or p.grouping == "detector" else list(groups)
    if len(keys) != len(images):
        raise ValueError(f"{len(keys)} group keys for {len(images)} images")
    index: dict[Hashable, int] = {}
    group_of = [index.setdefault(k, len(index)) for k in keys]
    known = list(measured) if measured is not None else [None] * len(images)
    if len(known) != len(images):
        raise ValueError(f"{len(known)} measured skies for {len(images)} images")
    sky = [found if found is not None else measure_sky(img, dq, source_snr=p.source_snr, source_grow=p.source_grow)
           for img, dq, found in zip(images, dqs, known, strict=True)]
    measured = [m for m, _ in sky]
    levels = group_levels(measured, [n for _, n in sky], group_of, p.skymethod)
    data = [subtract_level(img, level) if p.subtract else img for img, level in zip(images, levels, strict=True)]
    return SkyMatchResult(measured, levels, data, group_of)
