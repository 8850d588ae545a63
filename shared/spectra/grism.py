"""assign_wcs for NIRCam's grism time series (``NRC_TSGRISM``): the trace and wavelengths
of a slitless spectrum from the grism's dispersion model.

The SPECWCS reference is the public ``NIRCAMGrismModel`` (an ASDF file): per spectral
order (``orders``) transforms of a parameter ``t`` that runs from 0 to 1 along the
spectrum:

- ``displ``: t -> wavelength (um);
- ``dispx``, ``dispy``: (x0, y0, t) -> (dx, dy), the offset of the trace from the
  source's undispersed image at full-frame pixel (x0, y0) (0-based);
- ``invdispx``: (x0, y0, dx) -> t, the inverse of ``dispx``.

The grism disperses along detector x (``DISPAXIS`` 1): each column the spectrum covers
has one wavelength, ``displ(invdispx(x0, y0, x - x0))``, and the trace crosses it at row
``y0 + dispy(x0, y0, t)``. The :class:`SlitTrace` is given in the dispersion frame
(:func:`shared.spectra.trace.in_frame`: frame row = detector column, frame x = detector
row), like NIRSpec's, so extract_1d and the time-series steps treat it like any
slitless trace.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from shared.spectra.extract import GRISM_TSO_EXP_TYPES
from shared.spectra.trace import SlitTrace

__all__ = ["GRISM_MODELS", "GRISM_TSO_EXP_TYPES", "grism_trace"]

#: The entries of the NIRCAMGrismModel tree a trace needs.
GRISM_MODELS = ("orders", "displ", "dispx", "dispy", "invdispx")


def _order_models(tree: Mapping[str, Any], order: int) -> tuple[Any, Any, Any]:
    missing = [k for k in GRISM_MODELS if tree.get(k) is None]
    if missing:
        raise ValueError(f"its dispersion model lacks {', '.join(missing)}")
    orders = [int(o) for o in tree["orders"]]
    if order not in orders:
        raise ValueError(f"it has no order {order} (its orders: {orders})")
    k = orders.index(order)
    try:
        return tree["displ"][k], tree["dispy"][k], tree["invdispx"][k]
    except (IndexError, TypeError) as exc:
        raise ValueError(f"its model lists do not give order {order} a model each: {exc}") from None


def grism_trace(tree: Mapping[str, Any], x0: float, y0: float, *, xstart: int = 1, ystart: int = 1,
                nx: int, ny: int, order: int = 1) -> SlitTrace:
    """The trace of ``order`` on a readout window of ``nx`` x ``ny`` pixels starting at
    full-frame pixel (``xstart``, ``ystart``) (1-based, the SUBSTRT cards), for a source
    whose undispersed image is window pixel (``x0``, ``y0``) (0-based).

    Columns whose ``t`` falls outside 0..1 (beyond the spectrum) or whose trace leaves the
    window have no wavelength (NaN), as does a column where a model gives no number.

    Raises
    ------
    ValueError
        The tree lacks a model or the order, or a model cannot be evaluated.
    """
    displ, dispy, invdispx = _order_models(tree, order)
    fx0, fy0 = x0 + (xstart - 1.0), y0 + (ystart - 1.0)  # full frame, 0-based
    columns = np.arange(nx, dtype=np.float64)
    dx = columns + (xstart - 1.0) - fx0
    full = np.full_like(dx, fx0), np.full_like(dx, fy0)
    try:
        t = np.asarray(invdispx(*full, dx), np.float64)
        wavelength = np.asarray(displ(t), np.float64)
        row = fy0 + np.asarray(dispy(*full, t), np.float64) - (ystart - 1.0)
    except Exception as exc:  # an astropy model that cannot take these inputs
        raise ValueError(f"its dispersion model cannot be evaluated: {exc}") from None
    inside = (np.isfinite(t) & (t >= 0.0) & (t <= 1.0) & np.isfinite(wavelength) & (wavelength > 0)
              & np.isfinite(row) & (row >= 0.0) & (row <= ny - 1.0))
    rows = np.flatnonzero(inside)
    if rows.size >= 2:
        steps = np.diff(wavelength[rows])
        if not (np.all(steps > 0) or np.all(steps < 0)):
            raise ValueError(f"order {order}'s wavelength is not monotonic along the columns")
    return SlitTrace(wavelength=np.where(inside, wavelength, np.nan), x=np.where(inside, row, np.nan), rows=rows,
                     ref=(y0, x0), dispaxis=1)
