"""white_light: the flux of a time series's spectra summed over wavelength, per
integration (the ``_whtlt`` light curve).

Per integration ``i``, ``whitelight_flux[i]`` is the sum of FLUX (Jy) over the spectral
elements whose wavelength lies within [``min_wavelength``, ``max_wavelength``] (all of
them by default) and whose flux is measured, as the public step sums them (NaN
elements are left out, so an integration with an unmeasured element sums less: the
elements are taken as they are, and tso3's pixel_replace fills flagged pixels before
the spectra are extracted). An integration with no measured element in the range is
NaN. The table (ECSV) has the public columns MJD_UTC, BJD_TDB and whitelight_flux (for
several spectral orders, NIRISS SOSS, one ``whitelight_flux_order_<n>`` per order, each
summed over its own spectra), in time order, and the exposure's instrument, exposure type, subarray, filter, pupil and
target in its metadata.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import astropy.units as u
import numpy as np
from astropy.table import QTable
from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["WhiteLightParams", "white_light", "whtlt_table"]


class WhiteLightParams(BaseModel):
    """Parameters of white_light (the public step's)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_wavelength: float | None = Field(None, gt=0, description="Shortest wavelength summed, um; default all.")
    max_wavelength: float | None = Field(None, gt=0, description="Longest wavelength summed, um; default all.")

    @model_validator(mode="after")
    def _order(self) -> WhiteLightParams:
        if self.min_wavelength is not None and self.max_wavelength is not None \
                and self.min_wavelength >= self.max_wavelength:
            raise ValueError(f"min_wavelength ({self.min_wavelength}) must be below max_wavelength "
                             f"({self.max_wavelength})")
        return self


def white_light(wavelength: np.ndarray, flux: np.ndarray, params: WhiteLightParams | None = None) -> np.ndarray:
    """Per integration (rows of ``wavelength`` and ``flux``, shape (nints, n)), the sum of
    the measured fluxes within the wavelength range; NaN where none is measured.

    Raises
    ------
    ValueError
        Arrays of different shapes, or not two-dimensional."""
    p = params or WhiteLightParams()
    wavelength, flux = np.asarray(wavelength, np.float64), np.asarray(flux, np.float64)
    if wavelength.ndim != 2 or wavelength.shape != flux.shape:
        raise ValueError(f"white_light needs (nints, n) wavelengths and fluxes of one shape, got "
                         f"{wavelength.shape} and {flux.shape}")
    use = np.isfinite(flux) & np.isfinite(wavelength)
    if p.min_wavelength is not None:
        use &= wavelength >= p.min_wavelength
    if p.max_wavelength is not None:
        use &= wavelength <= p.max_wavelength
    total = np.where(use, flux, 0.0).sum(axis=1)
    return np.where(use.any(axis=1), total, np.nan)


def whtlt_table(flux: np.ndarray | Mapping[str, np.ndarray], mjd_utc: np.ndarray, bjd_tdb: np.ndarray, *,
                unit: str = "Jy", meta: Mapping[str, Any] | None = None) -> QTable:
    """The ``_whtlt`` table: MJD_UTC, BJD_TDB (as MJD) and whitelight_flux (``unit``), one
    row per integration in time order (by MJD_UTC; rows without a time last). ``flux`` by
    column name gives several flux columns (the public ``whitelight_flux_order_<n>`` of a
    series of several spectral orders)."""
    mjd = np.asarray(mjd_utc, np.float64)
    order = np.argsort(np.where(np.isfinite(mjd), mjd, np.inf), kind="stable")
    table = QTable(meta=dict(meta or {}))
    table["MJD_UTC"] = mjd[order]
    table["BJD_TDB"] = np.asarray(bjd_tdb, np.float64)[order]
    columns = flux if isinstance(flux, Mapping) else {"whitelight_flux": flux}
    for name, values in columns.items():
        table[name] = np.asarray(values, np.float64)[order] * u.Unit(unit)
    return table
