"""assign_wcs for a slit spectrum dispersed along detector rows (MIRI LRS fixed slit): the
wavelength and the slit's position on each row, from the SPECWCS reference.

The reference (the public ``MiriLRSSpecwcsModel``) holds a WAVETABLE: per wavelength
element, the trace centre (``x_center``, ``y_center``) and the element's corners, in
pixels relative to the slit's reference point (IMX, IMY; 1-based full-frame pixels), and
the wavelength there. Wavelength depends on the row alone; along a row the slit runs in
x, centred on the trace. The table is interpolated linearly in row (it has an element
per row): the wavelength of row y and the trace's x there. Pixels beyond the table's rows
or farther from the trace than half the slit's length have no wavelength (NaN).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

__all__ = ["SlitTrace", "slit_length", "slit_trace", "wavelength_image"]


@dataclass(frozen=True)
class SlitTrace:
    """The slit on a readout window, per window row ``y`` (0-based): ``wavelength`` (um,
    NaN off the spectrum), ``x`` (0-based window column of the slit centre, NaN off the
    spectrum); ``rows`` the window rows that have a wavelength, in increasing order;
    ``ref`` the window pixel (x, y) of the slit's reference point."""

    wavelength: np.ndarray
    x: np.ndarray
    rows: np.ndarray
    ref: tuple[float, float]

    def row_of(self, wavelength: float) -> float:
        """The (fractional) window row of ``wavelength`` on the trace."""
        w = self.wavelength[self.rows]
        order = np.argsort(w)
        return float(np.interp(wavelength, w[order], self.rows[order].astype(np.float64)))


def slit_trace(wavetable: np.ndarray, x_ref: float, y_ref: float, *, xstart: int = 1, ystart: int = 1,
               ny: int) -> SlitTrace:
    """The slit trace of a readout window of ``ny`` rows starting at full-frame pixel
    (``xstart``, ``ystart``) (1-based, the SUBSTRT keywords).

    Parameters
    ----------
    wavetable : structured ndarray
        The SPECWCS WAVETABLE: ``x_center``, ``y_center``, ``wavelength`` at least.
    x_ref, y_ref : float
        IMX, IMY: the 1-based full-frame pixel the table's offsets are from.

    Raises
    ------
    ValueError
        A table without those columns, with fewer than two finite elements, or whose
        wavelength is not monotonic in row.
    """
    names = wavetable.dtype.names or ()
    missing = [c for c in ("x_center", "y_center", "wavelength") if c not in names]
    if missing:
        raise ValueError(f"the WAVETABLE has no {', '.join(missing)} column(s)")
    xc = np.asarray(wavetable["x_center"], np.float64)
    yc = np.asarray(wavetable["y_center"], np.float64)
    wl = np.asarray(wavetable["wavelength"], np.float64)
    ok = np.isfinite(xc) & np.isfinite(yc) & np.isfinite(wl)
    if ok.sum() < 2:
        raise ValueError("the WAVETABLE has fewer than two usable wavelength elements")
    xc, yc, wl = xc[ok], yc[ok], wl[ok]
    order = np.argsort(yc)
    xc, yc, wl = xc[order], yc[order], wl[order]
    steps = np.diff(wl)
    if not (np.all(steps > 0) or np.all(steps < 0)):
        raise ValueError("the WAVETABLE's wavelength is not monotonic along the trace")
    # window coordinates, 0-based: full-frame 0-based = offset + (ref - 1); window = that - (start - 1)
    y_win = yc + (y_ref - 1.0) - (ystart - 1.0)
    x_win = xc + (x_ref - 1.0) - (xstart - 1.0)
    rows = np.arange(ny, dtype=np.float64)
    inside = (rows >= y_win[0]) & (rows <= y_win[-1])
    wavelength = np.where(inside, np.interp(rows, y_win, wl), np.nan)
    x = np.where(inside, np.interp(rows, y_win, x_win), np.nan)
    ref = ((x_ref - 1.0) - (xstart - 1.0), (y_ref - 1.0) - (ystart - 1.0))
    return SlitTrace(wavelength=wavelength, x=x, rows=np.flatnonzero(inside), ref=ref)


def slit_length(header: Mapping) -> float:
    """The slit's length (arcsec): the longest side of its corners on the sky (V2VERT1..4,
    V3VERT1..4 of the SPECWCS header, arcsec).

    Raises
    ------
    ValueError
        The header lacks a corner or one is not a number.
    """
    try:
        v2 = np.array([float(header[f"V2VERT{i}"]) for i in range(1, 5)])
        v3 = np.array([float(header[f"V3VERT{i}"]) for i in range(1, 5)])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"no slit corners (V2VERT1..4, V3VERT1..4): {exc}") from None
    return float(np.hypot(np.diff(np.append(v2, v2[0])), np.diff(np.append(v3, v3[0]))).max())


def wavelength_image(trace: SlitTrace, nx: int, half_length: float) -> np.ndarray:
    """Wavelength (um) of every pixel of the window (ny, nx): the row's, where the pixel
    centre lies within ``half_length`` pixels of the trace along the row; NaN elsewhere."""
    cols = np.arange(nx, dtype=np.float64)[None, :]
    on_slit = np.abs(cols - trace.x[:, None]) <= half_length
    return np.where(on_slit, trace.wavelength[:, None], np.nan).astype(np.float32)
