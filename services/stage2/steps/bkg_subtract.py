"""bkg_subtract: subtract the average of dedicated background exposures.

Rules (the public pipeline's image2 background step, dedicated-background case):

- the background exposures (``_rate``, DN/s) are averaged pixel by pixel: by default a
  sigma-clipped mean (``sigma`` 3, iterating until nothing more is clipped), or a plain
  mean; values that are NaN or flagged DO_NOT_USE take no part;
- the averaged background's variances are those of a mean: Σ var / n² over the n
  values used; where no background value is usable the background is 0 and the
  science pixel is flagged DO_NOT_USE;
- the background DQ (the OR of every member's DQ) is ORed into the science DQ;
- science SCI − background; VAR_POISSON and VAR_RNOISE add; ERR is recomputed from them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from astropy.stats import sigma_clip
from pydantic import BaseModel, ConfigDict, Field

from shared.arrays import check_image_stack, check_reference, total_error
from shared.datamodels import dqflags as _dqflags

__all__ = ["BackgroundImage", "BkgSubtractParams", "BkgSubtractResult", "average_background", "subtract_background"]


class BkgSubtractParams(BaseModel):
    """Parameters of the background step."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    average: Literal["clipped_mean", "mean"] = Field(
        "clipped_mean", description="How background exposures are combined per pixel.")
    sigma: float = Field(3.0, gt=0, description="Clipping threshold, standard deviations (clipped_mean).")
    maxiters: int | None = Field(None, ge=1, description="Clipping iterations; None until nothing changes.")


_DEFAULT_PARAMS = BkgSubtractParams()


@dataclass(frozen=True)
class BackgroundImage:
    """The averaged background, shape (ny, nx): DN/s, its variances, OR of member DQs,
    and how many members each pixel used."""

    sci: np.ndarray
    var_poisson: np.ndarray
    var_rnoise: np.ndarray
    dq: np.ndarray
    n_used: np.ndarray


@dataclass(frozen=True)
class BkgSubtractResult:
    """Background-subtracted arrays, the shape of the science input."""

    sci: np.ndarray
    err: np.ndarray
    dq: np.ndarray
    var_poisson: np.ndarray
    var_rnoise: np.ndarray


def average_background(
    sci: Sequence[np.ndarray],
    dq: Sequence[np.ndarray],
    var_poisson: Sequence[np.ndarray],
    var_rnoise: Sequence[np.ndarray],
    params: BkgSubtractParams = _DEFAULT_PARAMS,
    *,
    dqflags: Mapping[str, int] = _dqflags.PIXEL,
) -> BackgroundImage:
    """Average background exposures pixel by pixel.

    Parameters
    ----------
    sci, dq, var_poisson, var_rnoise : sequence of ndarray, each shape (ny, nx)
        One entry per background exposure: DN/s, uint32 flags, (DN/s)².
    params : BkgSubtractParams
    dqflags : mapping
        DQ bit values by name.
    """
    if not sci:
        raise ValueError("average_background needs at least one background exposure")
    stack = np.stack([np.asarray(s, np.float64) for s in sci])
    if stack.ndim != 3:
        raise ValueError(f"background exposures must be 2-D images, got shape {stack.shape[1:]}")
    dq_stack = np.stack([np.asarray(d, np.uint32) for d in dq])
    unusable = ~np.isfinite(stack) | ((dq_stack & np.uint32(dqflags["DO_NOT_USE"])) != 0)
    values = np.ma.masked_array(stack, mask=unusable)
    if params.average == "clipped_mean" and len(sci) > 2:
        values = sigma_clip(values, sigma=params.sigma, maxiters=params.maxiters, axis=0, masked=True)
    used = ~np.ma.getmaskarray(values)
    n_used = used.sum(axis=0)
    n = np.maximum(n_used, 1)
    mean = np.where(n_used > 0, np.where(used, stack, 0.0).sum(axis=0) / n, 0.0)

    def mean_variance(variances: Sequence[np.ndarray]) -> np.ndarray:
        v = np.stack([np.asarray(x, np.float64) for x in variances])
        return np.where(n_used > 0, np.where(used, v, 0.0).sum(axis=0) / (n * n), 0.0).astype(np.float32)

    combined_dq = np.bitwise_or.reduce(dq_stack, axis=0)
    combined_dq = combined_dq | np.where(n_used == 0, np.uint32(dqflags["DO_NOT_USE"]), np.uint32(0))
    return BackgroundImage(sci=mean.astype(np.float32), var_poisson=mean_variance(var_poisson),
                           var_rnoise=mean_variance(var_rnoise), dq=combined_dq.astype(np.uint32),
                           n_used=n_used.astype(np.int32))


def subtract_background(
    sci: np.ndarray,
    dq: np.ndarray,
    var_poisson: np.ndarray,
    var_rnoise: np.ndarray,
    background: BackgroundImage,
) -> BkgSubtractResult:
    """Subtract ``background`` from an image (ny, nx) or from every integration of a cube
    (nints, ny, nx); units DN/s, variances (DN/s)²."""
    sci = check_image_stack("sci", sci)
    bkg = check_reference("background", background.sci, sci.shape)
    var_p = (np.asarray(var_poisson, np.float64) + background.var_poisson).astype(np.float32)
    var_r = (np.asarray(var_rnoise, np.float64) + background.var_rnoise).astype(np.float32)
    return BkgSubtractResult(
        sci=(np.asarray(sci, np.float64) - bkg).astype(np.float32),
        err=total_error(var_p, var_r),
        dq=np.asarray(dq, np.uint32) | background.dq,
        var_poisson=var_p,
        var_rnoise=var_r,
    )
