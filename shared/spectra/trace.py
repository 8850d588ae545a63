"""assign_wcs for a slit spectrum: the wavelength and the slit's position on each line of
the dispersion, from the SPECWCS reference.

The reference (for the MIRI LRS the public ``MiriLRSSpecwcsModel``; for NIRSpec's fixed
slits a table of the same layout per slit) holds a table: per wavelength element, the
trace centre (``x_center``, ``y_center``) and the element's corners, in pixels relative to
the slit's reference point (IMX, IMY; 1-based full-frame pixels), and the wavelength
there. The MIRI LRS file also gives the reference point of its slitless mode
(IMXSLTL, IMYSLTL: where the target is placed without the slit), from which the same
table traces a slitless exposure's spectrum (:func:`reference_point`).

The dispersion frame. The kernels of this package see a spectrum dispersed along rows:
row ``y`` has one wavelength and the slit runs along it in ``x``, centred on the trace.
The MIRI LRS disperses so on the detector (``DISPAXIS`` 2). NIRSpec disperses along
detector x (``DISPAXIS`` 1): its dispersion frame is the readout window transposed
(:func:`in_frame`), where a frame row is a detector column. A :class:`SlitTrace` is in
the dispersion frame and knows its ``dispaxis``.

The table is interpolated linearly along the dispersion (it has an element per line):
the wavelength of frame row y and the trace's frame x there. Pixels beyond the table's
lines or farther from the trace than half the slit's length have no wavelength (NaN).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

__all__ = ["SlitTrace", "in_frame", "recorded_source_along", "reference_point", "slit_length", "slit_table", "slit_trace", "slit_width",
           "source_along", "wavelength_image"]


@dataclass(frozen=True)
class SlitTrace:
    """The slit on a readout window in its dispersion frame (see the module docstring),
    per frame row ``y`` (0-based): ``wavelength`` (um, NaN off the spectrum), ``x``
    (0-based frame column of the slit centre, NaN off the spectrum); ``rows`` the frame
    rows that have a wavelength, in increasing order; ``ref`` the frame pixel (x, y) of
    the slit's reference point; ``dispaxis`` the detector axis of the dispersion (2: rows,
    the frame is the window; 1: columns, the frame is the window transposed)."""

    wavelength: np.ndarray
    x: np.ndarray
    rows: np.ndarray
    ref: tuple[float, float]
    dispaxis: int = 2

    def cut(self, first_row: int, nrows: int, first_column: int) -> SlitTrace:
        """The trace on a cutout of its frame: ``nrows`` frame rows from ``first_row``,
        frame columns from ``first_column`` (a slitlet's window, extract_2d)."""
        rows = slice(first_row, first_row + nrows)
        wavelength, x = self.wavelength[rows], self.x[rows] - first_column
        return SlitTrace(wavelength=wavelength, x=x, rows=np.flatnonzero(np.isfinite(wavelength)),
                         ref=(self.ref[0] - first_column, self.ref[1] - first_row), dispaxis=self.dispaxis)

    def row_of(self, wavelength: float) -> float:
        """The (fractional) window row of ``wavelength`` on the trace."""
        w = self.wavelength[self.rows]
        order = np.argsort(w)
        return float(np.interp(wavelength, w[order], self.rows[order].astype(np.float64)))


def in_frame(array: np.ndarray, dispaxis: int) -> np.ndarray:
    """``array`` (..., ny, nx) of a readout window seen in the dispersion frame of a
    spectrum dispersed along detector axis ``dispaxis``: itself (2) or, for 1, a view with
    its last two axes swapped. Applied twice it gives the window back."""
    if dispaxis == 2:
        return array
    if dispaxis == 1:
        return np.swapaxes(array, -1, -2)
    raise ValueError(f"DISPAXIS must be 1 or 2, not {dispaxis}")


def slit_table(tables: Mapping[str, np.ndarray], table_cards: Mapping[str, Mapping], header: Mapping,
               slit: str | None) -> tuple[np.ndarray, dict]:
    """The SPECWCS table of an exposure's slit and the cards that go with it (IMX, IMY,
    the corners V2VERTn/V3VERTn, DISPAXIS): the MIRI LRS file's WAVETABLE with its primary
    ``header``; a NIRSpec fixed-slit file's table named after the slit (FXD_SLIT), its own
    cards (``table_cards``) over the primary header's.

    Raises
    ------
    ValueError
        No WAVETABLE and no table of that slit.
    """
    if "WAVETABLE" in tables:
        return tables["WAVETABLE"], dict(header)
    name = str(slit or "").strip().upper()
    if name not in tables:
        raise ValueError(f"no table for the exposure's slit FXD_SLIT={name or '(none)'} "
                         f"(it has {', '.join(sorted(tables)) or 'none'})")
    return tables[name], {**header, **table_cards.get(name, {})}


def reference_point(cards: Mapping, slitless: bool = False) -> tuple[float, float]:
    """The 1-based full-frame pixel (x, y) the SPECWCS table's offsets are from: the slit's
    (IMX, IMY) or, for a slitless exposure, the slitless mode's (IMXSLTL, IMYSLTL).

    Raises
    ------
    ValueError
        The cards lack them or they are not numbers."""
    names = ("IMXSLTL", "IMYSLTL") if slitless else ("IMX", "IMY")
    try:
        return float(cards[names[0]]), float(cards[names[1]])
    except KeyError:
        raise ValueError(f"no {'slitless ' if slitless else ''}reference point ({names[0]}, {names[1]})") from None
    except (TypeError, ValueError) as exc:
        raise ValueError(f"its reference point ({names[0]}, {names[1]}) is not a pair of numbers: {exc}") from None


def source_along(trace: SlitTrace, x_src: float, y_src: float) -> float:
    """Where a source whose undispersed image is frame pixel (``x_src``, ``y_src``) lies
    from the trace, along the frame row (pixels): its x less the trace's x at its row."""
    return float(x_src - np.interp(y_src, trace.rows, trace.x[trace.rows]))


def recorded_source_along(trace: SlitTrace, srcpos: tuple[float, float], cards: Mapping, pixel_scale: float) -> float:
    """Where the source lies from the trace along the frame row (pixels), from SRCXPOS and
    SRCYPOS as spec2's assign_wcs recorded them for the mode: for NIRSpec (DISPAXIS 1)
    SRCYPOS is its place along the slit in slit lengths (``cards``' SLITLEN, arcsec, over
    ``pixel_scale`` arcsec per pixel); for the MIRI LRS they are its undispersed pixel
    (:func:`source_along`).

    Raises
    ------
    ValueError
        A NIRSpec slit's cards lack its length."""
    if trace.dispaxis == 1:
        return float(srcpos[1]) * slit_length(cards) / pixel_scale
    return source_along(trace, float(srcpos[0]), float(srcpos[1]))


def slit_trace(wavetable: np.ndarray, x_ref: float, y_ref: float, *, xstart: int = 1, ystart: int = 1,
               ny: int, dispaxis: int = 2) -> SlitTrace:
    """The slit trace of a readout window starting at full-frame pixel (``xstart``,
    ``ystart``) (1-based, the SUBSTRT keywords), ``ny`` its number of lines along the
    dispersion (its rows for ``dispaxis`` 2, its columns for 1).

    Parameters
    ----------
    wavetable : structured ndarray
        The SPECWCS WAVETABLE: ``x_center``, ``y_center``, ``wavelength`` at least.
    x_ref, y_ref : float
        IMX, IMY: the 1-based full-frame pixel the table's offsets are from.
    dispaxis : int
        The detector axis along which the spectrum disperses (2: y, 1: x); the trace is
        given in the dispersion frame.

    Raises
    ------
    ValueError
        A table without those columns, with fewer than two finite elements, whose
        wavelength is not monotonic along the dispersion, or a DISPAXIS not 1 or 2.
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
    if dispaxis not in (1, 2):
        raise ValueError(f"DISPAXIS must be 1 or 2, not {dispaxis}")
    if dispaxis == 1:  # the frame's rows are detector columns
        xc, yc, x_ref, y_ref, xstart, ystart = yc, xc, y_ref, x_ref, ystart, xstart
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
    return SlitTrace(wavelength=wavelength, x=x, rows=np.flatnonzero(inside), ref=ref, dispaxis=dispaxis)


def _slit_sides(header: Mapping) -> np.ndarray:
    """The lengths (arcsec) of the four sides of the slit's corners on the sky (V2VERT1..4,
    V3VERT1..4 of the SPECWCS header, arcsec)."""
    try:
        v2 = np.array([float(header[f"V2VERT{i}"]) for i in range(1, 5)])
        v3 = np.array([float(header[f"V3VERT{i}"]) for i in range(1, 5)])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"no slit corners (V2VERT1..4, V3VERT1..4): {exc}") from None
    return np.hypot(np.diff(np.append(v2, v2[0])), np.diff(np.append(v3, v3[0])))


def slit_length(header: Mapping) -> float:
    """The slit's length (arcsec): the longest side of its corners on the sky (V2VERT1..4,
    V3VERT1..4 of the SPECWCS header, arcsec).

    Raises
    ------
    ValueError
        The header lacks a corner or one is not a number.
    """
    return float(_slit_sides(header).max())


def slit_width(header: Mapping) -> float:
    """The slit's width (arcsec): the shortest side of its corners on the sky (as
    :func:`slit_length`)."""
    return float(_slit_sides(header).min())


def wavelength_image(trace: SlitTrace, nx: int, half_length: float) -> np.ndarray:
    """Wavelength (um) of every pixel of the dispersion frame (ny, nx), ``nx`` its number
    of columns: the row's, where the pixel centre lies within ``half_length`` pixels of
    the trace along the row; NaN elsewhere. (:func:`in_frame` turns it to the window.)"""
    cols = np.arange(nx, dtype=np.float64)[None, :]
    on_slit = np.abs(cols - trace.x[:, None]) <= half_length
    return np.where(on_slit, trace.wavelength[:, None], np.nan).astype(np.float32)
