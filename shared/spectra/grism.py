"""assign_wcs of the grisms: the trace and wavelengths of a slitless spectrum from the
grism's dispersion model, for NIRCam's grism time series (``NRC_TSGRISM``) and for the
sources of a wide-field slitless exposure (``NRC_WFSS``, ``NIS_WFSS``,
:mod:`shared.spectra.wfss`).

The SPECWCS reference is the public ``NIRCAMGrismModel`` or ``NIRISSGrismModel`` (an ASDF
file): per spectral order (``orders``) transforms of a parameter ``t`` that runs from 0 to
1 along the spectrum:

- ``displ``: t -> wavelength (um);
- ``dispx``, ``dispy``: (x0, y0, t) -> (dx, dy), the offset of the trace from the
  source's undispersed image at full-frame pixel (x0, y0) (0-based);
- ``invdispx``, ``invdispy``: (x0, y0, dx) -> t and (x0, y0, dy) -> t, their inverses.

A model comes in any of the forms the public transforms evaluate (:func:`model_function`):
a model of the three inputs; a model of t alone (NIRCam's offset along the dispersion,
the same at every place, and ``displ``); or a list of models of (x0, y0), the
coefficients of a polynomial in t (``dx = C0(x0, y0) + C1(x0, y0) t + ...``, NIRISS's
offsets and NIRCam's across the dispersion). NIRISS's files carry no ``invdispx`` or
``invdispy``: the offset along the dispersion is inverted by interpolation over t
(:func:`_inverse_by_sampling`), as the public transforms do.

A grism disperses along detector x (``DISPAXIS`` 1: NIRCam's GRISMR, NIRISS's GR150C) or
along y (``DISPAXIS`` 2: NIRCam's GRISMC, NIRISS's GR150R; :func:`grism_dispaxis`). Along
x each column the spectrum covers has one wavelength, ``displ(invdispx(x0, y0, x -
x0))``, and the trace crosses it at row ``y0 + dispy(x0, y0, t)``; along y each row has
one, ``displ(invdispy(x0, y0, y - y0))``, the trace at column ``x0 + dispx(x0, y0, t)``.
The :class:`SlitTrace` is given in the dispersion frame
(:func:`shared.spectra.trace.in_frame`: for DISPAXIS 1 frame row = detector column, frame
x = detector row), like NIRSpec's, so extract_1d and the time-series steps treat it like
any slitless trace.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from shared.spectra.extract import GRISM_TSO_EXP_TYPES
from shared.spectra.trace import SlitTrace

__all__ = ["GRISM_MODELS", "GRISM_TSO_EXP_TYPES", "grism_dispaxis", "grism_orders", "grism_trace", "line_dispersion",
           "model_function"]

#: The entries of the grism model tree a trace needs (``invdispx`` along x, ``invdispy``
#: along y, where the file has them: NIRISS's have neither).
GRISM_MODELS = ("orders", "displ", "dispx", "dispy")
#: Samples of t over 0..1 the offset along the dispersion is inverted with when the file
#: has no inverse: a polynomial of low degree, monotonic over the spectrum, so linear
#: interpolation between them is good to far below a millipixel for the simulator's
#: (exactly linear) and the public (quadratic at most) models.
_INVERSE_SAMPLES = 4001

#: The detector axis each grism disperses along (DISPAXIS: 1 along x, 2 along y).
GRISM_DISPAXIS: dict[str, int] = {"GRISMR": 1, "GRISMC": 2, "GR150C": 1, "GR150R": 2}


def grism_dispaxis(instrument: Any, filter_name: Any, pupil: Any) -> int:
    """DISPAXIS of an exposure's grism: NIRCam's is in PUPIL (GRISMR along x, GRISMC along
    y), NIRISS's in FILTER (GR150C along x, GR150R along y).

    Raises
    ------
    ValueError
        Not a NIRCam or NIRISS grism."""
    instrument = str(instrument or "").strip().upper()
    grism = str((filter_name if instrument == "NIRISS" else pupil) or "").strip().upper()
    if instrument not in ("NIRCAM", "NIRISS") or grism not in GRISM_DISPAXIS:
        wheel = "FILTER" if instrument == "NIRISS" else "PUPIL"
        raise ValueError(f"{instrument or 'the instrument'} {wheel}={grism or '(none)'} is not a grism "
                         f"({', '.join(sorted(GRISM_DISPAXIS))})")
    return GRISM_DISPAXIS[grism]


def grism_orders(tree: Mapping[str, Any]) -> list[int]:
    """The spectral orders the grism model describes (``orders``).

    Raises
    ------
    ValueError
        It lists none, or an order is not an integer."""
    try:
        orders = [int(o) for o in tree.get("orders") or ()]
    except (TypeError, ValueError) as exc:
        raise ValueError(f"its orders are not integers: {exc}") from None
    if not orders:
        raise ValueError("its dispersion model lists no orders")
    return orders


def model_function(model: Any) -> Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]:
    """``f(x0, y0, t)`` of one order's model in any of its forms (module docstring): a
    model of three inputs, of t alone, or a list of models of (x0, y0), the coefficients of
    a polynomial in t (a list of one model is that model).

    Raises
    ------
    ValueError
        Not one of those forms."""
    if isinstance(model, (list, tuple)) or (hasattr(model, "__len__") and not hasattr(model, "n_inputs")):
        parts = list(model)
        if len(parts) == 1:
            return model_function(parts[0])
        if not parts or any(getattr(p, "n_inputs", None) != 2 for p in parts):
            raise ValueError("a list of models must hold models of (x0, y0), the coefficients of a polynomial in t")
        return lambda x0, y0, t: sum(c(x0, y0) * np.asarray(t, np.float64) ** i for i, c in enumerate(parts))
    n = getattr(model, "n_inputs", None)
    if n == 1:
        return lambda x0, y0, t: model(t)
    if n == 3:
        return lambda x0, y0, t: model(x0, y0, t)
    raise ValueError(f"a model of {n} inputs is neither of t, nor of (x0, y0, t)")


def _inverse_by_sampling(along: Callable, x0: float, y0: float) -> Callable:
    """t of an offset along the dispersion for the source at full-frame (x0, y0), by
    linear interpolation of ``along`` over :data:`_INVERSE_SAMPLES` values of t; NaN
    beyond the spectrum's ends. ValueError when the offset is not monotonic in t."""
    t = np.linspace(0.0, 1.0, _INVERSE_SAMPLES)
    offsets = np.asarray(along(np.full_like(t, x0), np.full_like(t, y0), t), np.float64)
    steps = np.diff(offsets)
    if not (np.all(steps > 0) or np.all(steps < 0)):
        raise ValueError("its offset along the dispersion is not monotonic in t")
    order = np.argsort(offsets)
    return lambda _x0, _y0, offset: np.interp(offset, offsets[order], t[order], left=np.nan, right=np.nan)


def _order_models(tree: Mapping[str, Any], order: int, dispaxis: int, x0: float, y0: float
                  ) -> tuple[Callable, Callable, Callable]:
    """(displ, the offset across the dispersion, the inverse of the offset along it) of
    ``order``, as functions of (x0, y0, t or offset); the inverse interpolated where the
    file has none (for the source at full-frame (x0, y0))."""
    missing = [k for k in GRISM_MODELS if tree.get(k) is None]
    if missing:
        raise ValueError(f"its dispersion model lacks {', '.join(missing)}")
    orders = grism_orders(tree)
    if order not in orders:
        raise ValueError(f"it has no order {order} (its orders: {orders})")
    k = orders.index(order)
    along, across, inverse = ("dispx", "dispy", "invdispx") if dispaxis == 1 else ("dispy", "dispx", "invdispy")
    try:
        displ, across_model = model_function(tree["displ"][k]), model_function(tree[across][k])
        if tree.get(inverse) is not None:
            return displ, across_model, model_function(tree[inverse][k])
        return displ, across_model, _inverse_by_sampling(model_function(tree[along][k]), x0, y0)
    except (IndexError, TypeError) as exc:
        raise ValueError(f"its model lists do not give order {order} a model each: {exc}") from None


def grism_trace(tree: Mapping[str, Any], x0: float, y0: float, *, xstart: int = 1, ystart: int = 1,
                nx: int, ny: int, order: int = 1, dispaxis: int = 1) -> SlitTrace:
    """The trace of ``order`` on a readout window of ``nx`` x ``ny`` pixels starting at
    full-frame pixel (``xstart``, ``ystart``) (1-based, the SUBSTRT cards), for a source
    whose undispersed image is window pixel (``x0``, ``y0``) (0-based; it may lie off the
    window), dispersed along detector axis ``dispaxis`` (1: x, 2: y).

    Lines (columns along x, rows along y) whose ``t`` falls outside 0..1 (beyond the
    spectrum) or whose trace leaves the window have no wavelength (NaN), as does a line
    where a model gives no number.

    Raises
    ------
    ValueError
        The tree lacks a model or the order, a model cannot be evaluated, the wavelength
        is not monotonic along the dispersion, or DISPAXIS is not 1 or 2.
    """
    if dispaxis not in (1, 2):
        raise ValueError(f"DISPAXIS must be 1 or 2, not {dispaxis}")
    fx0, fy0 = x0 + (xstart - 1.0), y0 + (ystart - 1.0)  # full frame, 0-based
    displ, across, inverse = _order_models(tree, order, dispaxis, fx0, fy0)
    # along the dispersion: the window's lines, their full-frame offset from the source
    n_lines, n_across = (nx, ny) if dispaxis == 1 else (ny, nx)
    start, start_across, src, src_across = ((xstart, ystart, fx0, fy0) if dispaxis == 1 else
                                            (ystart, xstart, fy0, fx0))
    offset = np.arange(n_lines, dtype=np.float64) + (start - 1.0) - src
    full = np.full_like(offset, fx0), np.full_like(offset, fy0)
    try:
        t = np.asarray(inverse(*full, offset), np.float64)
        wavelength = np.asarray(displ(*full, t), np.float64)
        centre = src_across + np.asarray(across(*full, t), np.float64) - (start_across - 1.0)
    except Exception as exc:  # an astropy model that cannot take these inputs
        raise ValueError(f"its dispersion model cannot be evaluated: {exc}") from None
    with np.errstate(invalid="ignore"):
        inside = (np.isfinite(t) & (t >= 0.0) & (t <= 1.0) & np.isfinite(wavelength) & (wavelength > 0)
                  & np.isfinite(centre) & (centre >= 0.0) & (centre <= n_across - 1.0))
    rows = np.flatnonzero(inside)
    if rows.size >= 2:
        steps = np.diff(wavelength[rows])
        if not (np.all(steps > 0) or np.all(steps < 0)):
            lines = "columns" if dispaxis == 1 else "rows"
            raise ValueError(f"order {order}'s wavelength is not monotonic along the {lines}")
    return SlitTrace(wavelength=np.where(inside, wavelength, np.nan), x=np.where(inside, centre, np.nan), rows=rows,
                     ref=(y0, x0) if dispaxis == 1 else (x0, y0), dispaxis=dispaxis)


def line_dispersion(trace: SlitTrace) -> np.ndarray:
    """|d wavelength / d line| (um per pixel) on each line of ``trace`` (NaN off the
    spectrum): the gradient of its wavelengths along the lines of the spectrum (one-sided
    at its ends). The grisms' PHOTOM gives its conversion per um of spectrum, which this
    turns into one per pixel, as the public photom step does with the gradient of the
    wavelengths along the dispersion. NaN everywhere for a spectrum of fewer than two lines."""
    out = np.full(np.shape(trace.wavelength), np.nan)
    rows = np.asarray(trace.rows)
    if rows.size >= 2:
        out[rows] = np.abs(np.gradient(np.asarray(trace.wavelength, np.float64)[rows], rows.astype(np.float64)))
    return out
