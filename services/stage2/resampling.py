"""resample (image2): one calibrated exposure onto an undistorted sky grid -> ``_i2d``.

Uses :mod:`shared.resample` (drizzle): the grid covers the exposure's footprint at the
exposure's own pixel scale (times ``pixel_scale_ratio``), TAN, by default oriented like
the detector (+y at ROLL_REF, the public default of rotation None). Weights are inverse
read-noise variance ("ivm") or the exposure time; DO_NOT_USE pixels get none. The
``_i2d`` arrays follow the public ImageModel layout of resampled products: SCI, ERR, CON,
WHT and the resampled variances, with NDRIZ, RESWHT, PIXFRAC, PXSCLRT and the grid's WCS
in the SCI header (PIXAR_SR/PIXAR_A2 become the output pixel's area).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from astropy.wcs import WCS
from pydantic import BaseModel, ConfigDict, Field

from services.stage2.steps.assign_wcs import footprint, s_region, wcs_cards
from shared.resample import ResampleInput, output_grid, pixel_scale_arcsec, resample

__all__ = ["I2dImages", "ResampleParams", "resample_exposure"]

ARCSEC2_PER_SR = 4.2545170296152e10


class ResampleParams(BaseModel):
    """Parameters of resample; defaults follow the public resample step."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    pixfrac: float = Field(1.0, gt=0, le=1, description="Drizzle pixel shrink factor.")
    kernel: Literal["square", "point", "turbo", "gaussian", "lanczos2", "lanczos3"] = Field(
        "square", description="Drizzle kernel.")
    weight_type: Literal["ivm", "exptime"] = Field(
        "ivm", description="Input weights: inverse VAR_RNOISE, or the measurement time.")
    pixel_scale_ratio: float = Field(1.0, gt=0, description="Output over input pixel size.")
    pixel_scale: float | None = Field(None, gt=0, description="Output pixel scale, arcsec (overrides the ratio).")
    rotation: float | None = Field(
        None, description="Position angle of output +y, deg East of North; None: the detector's (ROLL_REF).")


_DEFAULT_PARAMS = ResampleParams()


@dataclass(frozen=True)
class I2dImages:
    """The ``_i2d`` arrays by EXTNAME (SCI, ERR, CON, WHT, VAR_*), its keywords and the
    grid's WCS (TAN)."""

    images: dict[str, np.ndarray]
    keywords: dict
    wcs: WCS


def resample_exposure(
    sci: np.ndarray,
    dq: np.ndarray,
    wcs: WCS,
    *,
    var_rnoise: np.ndarray | None,
    var_poisson: np.ndarray | None = None,
    var_flat: np.ndarray | None = None,
    exptime: float = 1.0,
    roll: float | None = None,
    params: ResampleParams = _DEFAULT_PARAMS,
) -> I2dImages:
    """Resample one exposure.

    Parameters
    ----------
    sci : ndarray, shape (ny, nx)
        Surface brightness (MJy/sr after photom, else DN/s).
    dq : ndarray of uint32, shape (ny, nx)
    wcs : WCS
        The exposure's WCS (0-based pixels), distortion included.
    var_rnoise, var_poisson, var_flat : ndarray, shape (ny, nx), optional
        Variances in SCI units squared.
    exptime : float
        Seconds (the weight of ``weight_type="exptime"``).
    roll : float, optional
        Detector +y position angle, degrees: the grid orientation when ``params.rotation``
        is None (north up when both are None).
    params : ResampleParams
    """
    shape = sci.shape
    rotation = params.rotation if params.rotation is not None else roll
    out_wcs, out_shape = output_grid([wcs], [shape], pixel_scale=params.pixel_scale,
                                     pixel_scale_ratio=params.pixel_scale_ratio, rotation=rotation)
    result = resample([ResampleInput(sci, wcs, dq=dq, var_rnoise=var_rnoise, var_poisson=var_poisson,
                                     var_flat=var_flat, exptime=exptime)],
                      out_wcs, out_shape, pixfrac=params.pixfrac, kernel=params.kernel, weight_type=params.weight_type)
    images = {"SCI": result.data, "ERR": result.err, "CON": result.con, "WHT": result.wht}
    for name, var in (("VAR_RNOISE", result.var_rnoise), ("VAR_POISSON", result.var_poisson),
                      ("VAR_FLAT", result.var_flat)):
        if var is not None:
            images[name] = var
    scale = pixel_scale_arcsec(out_wcs)
    keywords = {
        **wcs_cards(out_wcs),
        "S_REGION": s_region(footprint(out_wcs, out_shape)),
        "NDRIZ": result.n_inputs, "RESWHT": params.weight_type, "PIXFRAC": params.pixfrac,
        "PXSCLRT": (params.pixel_scale_ratio if params.pixel_scale is None
                    else scale / pixel_scale_arcsec(wcs, shape)),
        "PIXAR_A2": scale * scale, "PIXAR_SR": scale * scale / ARCSEC2_PER_SR,
    }
    return I2dImages(images, keywords, out_wcs)
