"""NIRISS single-object slitless spectroscopy (SOSS, ``NIS_SOSS``): the spectral orders'
traces from the SPECTRACE reference, and the flux calibration of their extracted spectra
from the SOSS PHOTOM reference, as the public pipeline applies it (to the spectra, after
extract_1d, not to the pixels).

SPECTRACE (the public ``SpecTraceModel``): per spectral order one ``ORDER`` table
(EXTVER and the ``ORDER`` card its number) of the trace's centre ``X``, ``Y`` (0-based
pixels of the readout window the reference's SUBSTRT1/SUBSTRT2 give, the full frame
without them) and the ``WAVELENGTH`` (um) there. The orders disperse along the detector's
rows (DISPAXIS 1), so an order's trace is a :class:`~shared.spectra.trace.SlitTrace` in
the dispersion frame (the window transposed): its frame rows are the window's columns, its
``x`` the trace centre's window row there; the table is interpolated linearly onto every
whole column between its first and last ``X``.

PHOTOM (the public ``NisSossPhotomModel``): per (FILTER, PUPIL, order) a ``photmj`` and a
relative response over wavelength; a point source's spectrum in DN/s summed over its
order's trace, times ``photmj * relresponse(wavelength)``, is its flux density in MJy.
:func:`calibrate_spectrum` turns an extracted table (``shared.spectra.extract``, in DN/s)
into the ``spectable`` units: FLUX in Jy, SURF_BRIGHT and BACKGROUND in MJy/sr (a pixel's
value over the nominal pixel area), variances by the squares.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from shared.datamodels.dqflags import PIXEL
from shared.instruments import keyword_pixel_scale
from shared.spectra.extract import SOSS_EXP_TYPES, SPECTABLE_DTYPE, ExtractParams
from shared.spectra.trace import SlitTrace

__all__ = ["ORDER_BACKGROUND", "SOSS_EXP_TYPES", "OrderConversion", "calibrate_orders", "calibrate_spectrum",
           "nominal_pixel_area", "order_conversion", "order_params", "order_traces"]

#: Each order's background regions (offsets from its trace, pixels) where extract_1d is
#: given none: 25 to 40 pixels from the trace on the side away from the other order
#: (order 1 below its trace, order 2 above), past the 40-pixel aperture and the profile's
#: wings, where the sky fills the window; they also remove what each integration's readout
#: leaves common to its pixels (as for NIRSpec's bright objects).
ORDER_BACKGROUND: dict[int, tuple[tuple[float, float], ...]] = {1: ((-40.0, -25.0),), 2: ((25.0, 40.0),)}

_FLUX = ("FLUX", "FLUX_ERROR")
_FLUX_VAR = ("FLUX_VAR_POISSON", "FLUX_VAR_RNOISE", "FLUX_VAR_FLAT")
_SB = ("SURF_BRIGHT", "SB_ERROR", "BACKGROUND", "BKGD_ERROR")
_SB_VAR = ("SB_VAR_POISSON", "SB_VAR_RNOISE", "SB_VAR_FLAT", "BKGD_VAR_POISSON", "BKGD_VAR_RNOISE", "BKGD_VAR_FLAT")


def _card(cards: Mapping[str, Any], name: str, default: float) -> float:
    value = cards.get(name, default)
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} is not a number ({value!r})") from None


def order_traces(orders: Sequence[tuple[Mapping[str, Any], np.ndarray]], header: Mapping[str, Any], *,
                 xstart: int, ystart: int, nx: int, ny: int) -> dict[int, SlitTrace]:
    """Each spectral order's trace on a readout window of ``nx`` x ``ny`` pixels starting
    at full-frame pixel (``xstart``, ``ystart``) (1-based, the exposure's SUBSTRT cards),
    by order number, in increasing order; an order whose trace misses the window is left
    out.

    ``orders`` are the SPECTRACE's ``ORDER`` tables with their own cards (ORDER, EXTVER);
    ``header`` its primary header (SUBSTRT1, SUBSTRT2: the window its X and Y are in).

    Raises
    ------
    ValueError
        No ORDER table, a table without X, Y or WAVELENGTH, an order with fewer than two
        usable rows or whose wavelength is not monotonic along X, or an order numbered twice.
    """
    if not orders:
        raise ValueError("it has no ORDER table (the public SpecTraceModel's trace per spectral order)")
    dx = _card(header, "SUBSTRT1", 1) - xstart  # reference window -> exposure window
    dy = _card(header, "SUBSTRT2", 1) - ystart
    out: dict[int, SlitTrace] = {}
    for cards, table in orders:
        number = cards.get("ORDER", cards.get("EXTVER"))
        if number is None:
            raise ValueError("an ORDER table says neither its ORDER nor its EXTVER")
        number = int(number)
        if number in out:
            raise ValueError(f"order {number} has two ORDER tables")
        names = table.dtype.names or ()
        missing = [c for c in ("X", "Y", "WAVELENGTH") if c not in names]
        if missing:
            raise ValueError(f"order {number}'s table has no {', '.join(missing)} column(s)")
        x = np.asarray(table["X"], np.float64) + dx
        y = np.asarray(table["Y"], np.float64) + dy
        wl = np.asarray(table["WAVELENGTH"], np.float64)
        ok = np.isfinite(x) & np.isfinite(y) & np.isfinite(wl) & (wl > 0)
        if ok.sum() < 2:
            raise ValueError(f"order {number}'s table has fewer than two usable rows")
        x, y, wl = x[ok], y[ok], wl[ok]
        sort = np.argsort(x)
        x, y, wl = x[sort], y[sort], wl[sort]
        if np.any(np.diff(x) <= 0):
            raise ValueError(f"order {number}'s table lists a column twice")
        steps = np.diff(wl)
        if not (np.all(steps > 0) or np.all(steps < 0)):
            raise ValueError(f"order {number}'s wavelength is not monotonic along X")
        columns = np.arange(nx, dtype=np.float64)
        inside = (columns >= x[0]) & (columns <= x[-1])
        centre = np.where(inside, np.interp(columns, x, y), np.nan)
        inside &= (centre >= -0.5) & (centre <= ny - 0.5)  # the trace's centre on the window's rows
        if not inside.any():
            continue
        wavelength = np.where(inside, np.interp(columns, x, wl), np.nan)
        centre = np.where(inside, centre, np.nan)
        rows = np.flatnonzero(inside)
        mid = rows[rows.size // 2]
        out[number] = SlitTrace(wavelength=wavelength, x=centre, rows=rows, ref=(float(centre[mid]), float(mid)),
                                dispaxis=1)
    return dict(sorted(out.items()))


def order_params(params: ExtractParams, order: int) -> ExtractParams:
    """extract_1d's parameters for spectral ``order`` of a SOSS exposure: the mode's width
    and the order's background regions (:data:`ORDER_BACKGROUND`; none for another order)
    where ``params`` give none."""
    if params.background is None:
        params = params.model_copy(update={"background": ORDER_BACKGROUND.get(order, ())})
    return params.for_mode("NIS_SOSS")


@dataclass(frozen=True)
class OrderConversion:
    """An order's PHOTOM row: ``photmj`` (MJy per DN/s) and its relative response over
    wavelength (um, increasing)."""

    order: int
    photmj: float
    wavelength: np.ndarray
    relresponse: np.ndarray

    def at(self, wavelength: np.ndarray) -> np.ndarray:
        """MJy per DN/s at each wavelength (um); NaN off the response's wavelengths."""
        wl = np.asarray(wavelength, np.float64)
        rel = np.interp(np.nan_to_num(wl, nan=-1.0), self.wavelength, self.relresponse, left=np.nan, right=np.nan)
        return np.where(np.isfinite(wl), self.photmj * rel, np.nan)


def _text(value: Any) -> str:
    return (value.decode() if isinstance(value, bytes) else str(value)).strip().upper()


def order_conversion(table: np.ndarray, *, filter: str, pupil: str, order: int) -> OrderConversion | None:
    """The PHOTOM row of (``filter``, ``pupil``, ``order``) of a SOSS ``phot_table``
    (columns ``filter``, ``pupil``, ``order``, ``photmj``, ``wavelength``,
    ``relresponse`` and optionally ``nelem``, the used length of the last two); None when
    it has none.

    Raises
    ------
    ValueError
        A table without those columns, or a row whose response has fewer than two usable
        wavelengths or a non-positive ``photmj``."""
    names = table.dtype.names or ()
    missing = [c for c in ("filter", "pupil", "order", "photmj", "wavelength", "relresponse") if c not in names]
    if missing:
        raise ValueError(f"its PHOTOM table has no {', '.join(missing)} column(s) (a SOSS PHOTOM has them)")
    for row in table:
        if (_text(row["filter"]), _text(row["pupil"])) != (_text(filter), _text(pupil)) or int(row["order"]) != order:
            continue
        n = int(row["nelem"]) if "nelem" in names else len(row["wavelength"])
        wl = np.asarray(row["wavelength"][:n], np.float64)
        rel = np.asarray(row["relresponse"][:n], np.float64)
        keep = np.isfinite(wl) & np.isfinite(rel) & (wl > 0)
        wl, rel = wl[keep], rel[keep]
        photmj = float(row["photmj"])
        if wl.size < 2:
            raise ValueError(f"its order {order} row has fewer than two usable wavelengths")
        if not np.isfinite(photmj) or photmj <= 0:
            raise ValueError(f"its order {order} row has photmj {photmj}; it must be positive")
        sort = np.argsort(wl)
        return OrderConversion(order, photmj, wl[sort], rel[sort])
    return None


def nominal_pixel_area(photom_header: Mapping[str, Any], keywords: Mapping[str, Any]) -> float:
    """The nominal pixel area (sr) SURF_BRIGHT is over: the PHOTOM reference's PIXAR_SR,
    else the exposure's pixel scale squared (KeyError without one)."""
    if photom_header.get("PIXAR_SR") is not None:
        return float(photom_header["PIXAR_SR"])
    return float(np.deg2rad(keyword_pixel_scale(keywords) / 3600.0)) ** 2


def calibrate_orders(spectra: Mapping[int, Sequence[np.ndarray]], photom_table: np.ndarray | None,
                     photom_header: Mapping[str, Any], keywords: Mapping[str, Any]
                     ) -> tuple[dict[int, list[np.ndarray]] | None, str]:
    """photom of SOSS: each order's spectra (in DN/s) flux-calibrated by the row of the
    exposure's FILTER, PUPIL and the order in the PHOTOM reference's table (its header
    for the pixel area; :func:`order_conversion`, :func:`calibrate_spectrum`), with a note
    saying with what; (None, why) when the table has no row for an order.

    Raises
    ------
    ValueError
        No PHOTOM table, one without the SOSS columns, or an unusable row."""
    flt, pupil = str(keywords.get("FILTER") or ""), str(keywords.get("PUPIL") or "")
    if photom_table is None:
        raise ValueError("it has no PHOTOM table")
    found = {n: order_conversion(photom_table, filter=flt, pupil=pupil, order=n) for n in spectra}
    try:
        pixar = nominal_pixel_area(photom_header, keywords)
    except KeyError:
        raise ValueError("it has no PIXAR_SR and the exposure no known pixel scale") from None
    lacking = [str(n) for n, c in found.items() if c is None]
    if lacking:
        return None, f"has no row for FILTER={flt} PUPIL={pupil} order(s) {', '.join(lacking)}; the spectra stay in DN/s"
    calibrated = {n: [calibrate_spectrum(t, found[n], pixar) for t in series] for n, series in spectra.items()}
    return calibrated, "the spectra of order(s) " + ", ".join(
        f"{n} ({c.photmj:.4g} MJy per DN/s x relative response)" for n, c in found.items()) + " to Jy"


def calibrate_spectrum(table: np.ndarray, conversion: OrderConversion, pixar_sr: float) -> np.ndarray:
    """A copy of an extracted spectrum in DN/s (``shared.spectra.extract.boxcar_extract``
    with ``unit="DN/s"``) in the ``spectable`` units: FLUX in Jy (DN/s x MJy per DN/s x
    1e6), SURF_BRIGHT, BACKGROUND and their errors in MJy/sr (over the nominal pixel area
    ``pixar_sr``), each variance by its factor's square. Elements without a conversion
    (outside the response's wavelengths) become NaN and DO_NOT_USE."""
    if not np.isfinite(pixar_sr) or pixar_sr <= 0:
        raise ValueError(f"the nominal pixel area (PIXAR_SR) must be positive, got {pixar_sr}")
    out = np.array(table, dtype=SPECTABLE_DTYPE, copy=True)
    mjy = conversion.at(out["WAVELENGTH"])
    jy, sb = mjy * 1.0e6, mjy / pixar_sr
    for name in _FLUX:
        out[name] *= jy
    for name in _FLUX_VAR:
        out[name] *= jy * jy
    for name in _SB:
        out[name] *= sb
    for name in _SB_VAR:
        out[name] *= sb * sb
    missing = ~np.isfinite(mjy)
    if missing.any():
        for name in SPECTABLE_DTYPE.names:
            if name not in ("WAVELENGTH", "DQ", "NPIXELS"):
                out[name][missing] = np.nan
        out["DQ"][missing] |= np.uint32(PIXEL["DO_NOT_USE"])
    return out
