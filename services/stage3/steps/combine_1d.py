"""combine_1d: several extractions of one source on the same spectral grid combined into
one spectrum (the Level-3 ``_x1d`` of a slit: one extraction per exposure).

Per spectral element, the exposures whose element is finite are averaged with weights
``w = 1 / FLUX_ERROR^2``: FLUX, SURF_BRIGHT and BACKGROUND are the weighted means, each
variance column ``sum(w^2 var) / (sum w)^2``, the errors the square roots of their
sums; NPIXELS adds up; DQ is the OR of the exposures used (DO_NOT_USE alone where none
is). The grids must agree (the same wavelengths, element for element): the exposures of a
slit that is nodded along its length share their rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from shared.datamodels.dqflags import PIXEL

__all__ = ["combine_spectra"]

_DO_NOT_USE = np.uint32(PIXEL["DO_NOT_USE"])
_VARS = ("POISSON", "RNOISE", "FLAT")


def combine_spectra(tables: Sequence[np.ndarray]) -> np.ndarray:
    """The weighted mean of spectral tables (the public ``spectable`` layout) that share
    their WAVELENGTH column; ValueError when none is given or the grids differ."""
    if not tables:
        raise ValueError("combine_1d needs at least one spectrum")
    first = tables[0]
    for t in tables[1:]:
        if t.dtype != first.dtype or len(t) != len(first) or not np.allclose(t["WAVELENGTH"], first["WAVELENGTH"],
                                                                              rtol=0, atol=1e-9, equal_nan=True):
            raise ValueError("the spectra to combine are not on one wavelength grid")
    flux = np.stack([np.asarray(t["FLUX"], np.float64) for t in tables])
    err = np.stack([np.asarray(t["FLUX_ERROR"], np.float64) for t in tables])
    use = np.isfinite(flux) & np.isfinite(err) & (err > 0)
    w = np.where(use, 1.0 / np.where(use, err, 1.0) ** 2, 0.0)
    wsum = w.sum(axis=0)
    some = wsum > 0
    out = np.zeros(len(first), first.dtype)
    out["WAVELENGTH"] = first["WAVELENGTH"]

    def mean(column: str) -> np.ndarray:
        values = np.stack([np.asarray(t[column], np.float64) for t in tables])
        return np.where(some, (w * np.where(use, values, 0.0)).sum(axis=0) / np.where(some, wsum, 1.0), np.nan)

    def variance(column: str) -> np.ndarray:
        values = np.stack([np.asarray(t[column], np.float64) for t in tables])
        return np.where(some, (w**2 * np.where(use, values, 0.0)).sum(axis=0) / np.where(some, wsum, 1.0) ** 2,
                        np.nan)

    for column in ("FLUX", "SURF_BRIGHT", "BACKGROUND"):
        out[column] = mean(column)
    for prefix, error in (("FLUX_VAR", "FLUX_ERROR"), ("SB_VAR", "SB_ERROR"), ("BKGD_VAR", "BKGD_ERROR")):
        for k in _VARS:
            out[f"{prefix}_{k}"] = variance(f"{prefix}_{k}")
        out[error] = np.sqrt(sum(out[f"{prefix}_{k}"] for k in _VARS))
    out["NPIXELS"] = np.where(some, sum(np.where(use[i], t["NPIXELS"], 0.0) for i, t in enumerate(tables)), np.nan)
    dq = np.zeros(len(first), np.uint32)
    for i, t in enumerate(tables):
        dq |= np.where(use[i], np.asarray(t["DQ"], np.uint32), 0).astype(np.uint32)
    out["DQ"] = np.where(some, dq, _DO_NOT_USE)
    return out
