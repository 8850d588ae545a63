"""resample_spec for a slit dispersed along rows: the calibrated slit rectified onto a
grid whose rows are the detector's (one wavelength each) and whose columns are whole
pixels along the slit, centred on the trace (the ``_s2d``).

Each output pixel covers one pixel of slit coordinate (``s = x - trace(y)``) on its row;
it is the mean of the input pixels of that row weighted by how much of each it overlaps
(exact 1-D overlap, the square kernel of drizzle with pixfrac 1 along the slit).
Surface brightness is averaged, so the rows' sums are kept; variances are
``sum(a^2 var) / (sum a)^2``; DQ is the OR of the contributing pixels. Pixels without a
usable input (DO_NOT_USE, NaN) do not contribute; an output pixel with none is NaN and
DO_NOT_USE. Neighbouring output pixels share inputs, so their noise is correlated: a
spectrum is extracted from the ``_cal`` (:mod:`shared.spectra.extract`), where it is not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from shared.datamodels.dqflags import PIXEL

__all__ = ["Rectified", "blot_slit", "rectify_slit"]

_DO_NOT_USE = np.uint32(PIXEL["DO_NOT_USE"])
_BLOCK_ELEMENTS = 2_000_000  # overlaps computed at once: 16 MB of float64


@dataclass(frozen=True)
class Rectified:
    """The rectified slit: images (n_rows, n_cols); ``rows`` the input rows of its rows,
    ``offsets`` the slit coordinate (pixels from the trace) of its columns."""

    sci: np.ndarray
    err: np.ndarray
    dq: np.ndarray
    variances: dict[str, np.ndarray]
    wavelength: np.ndarray  # (n_rows, n_cols), the row's wavelength
    rows: np.ndarray
    offsets: np.ndarray


def rectify_slit(sci: np.ndarray, dq: np.ndarray, variances: dict[str, np.ndarray], trace_x: np.ndarray,
                 rows: np.ndarray, row_wavelength: np.ndarray, half_length: float) -> Rectified:
    """Rectify rows ``rows`` of a calibrated slit image (see the module docstring).

    Parameters
    ----------
    sci, dq : ndarray (ny, nx)
    variances : dict of name -> ndarray (ny, nx)
    trace_x : ndarray (ny,)
        Window column of the slit centre on each row.
    rows : ndarray of int
        The rows to keep (the spectrum's).
    row_wavelength : ndarray (ny,)
        Wavelength of each row.
    half_length : float
        Half the slit's length in pixels: the grid spans it.
    """
    sci = np.asarray(sci, np.float64)
    ny, nx = sci.shape
    n_half = math.ceil(half_length)
    offsets = np.arange(-n_half, n_half + 1, dtype=np.float64)
    rows = np.asarray(rows, int)
    usable = np.isfinite(sci) & ((np.asarray(dq, np.uint32) & _DO_NOT_USE) == 0)
    cols = np.arange(nx, dtype=np.float64)
    n_rows, n_cols = rows.size, offsets.size
    out_sci = np.full((n_rows, n_cols), np.nan)
    out_dq = np.zeros((n_rows, n_cols), np.uint32)
    out_var = {k: np.full((n_rows, n_cols), np.nan) for k in variances}
    # only the columns the grid can overlap (within its half length and a pixel of the
    # trace), the rows in blocks, each as one (rows, n_cols, columns) array of overlaps
    trace_x = np.asarray(trace_x, np.float64)
    band = slice(0, 0)  # a row without a trace overlaps nothing
    if n_rows and np.isfinite(trace_x[rows]).any():
        band = slice(max(int(np.floor(np.nanmin(trace_x[rows]) - n_half - 1)), 0),
                     min(int(np.ceil(np.nanmax(trace_x[rows]) + n_half + 2)), nx))
    width = max(band.stop - band.start, 1)
    block = max(1, _BLOCK_ELEMENTS // (n_cols * width))
    for start in range(0, n_rows, block):
        ys = rows[start:start + block]
        here = slice(start, start + ys.size)
        s = cols[band][None, :] - trace_x[ys][:, None]  # slit coordinate of each pixel's centre
        # overlap of input [s-0.5, s+0.5] with output [o-0.5, o+0.5]: 1 - |s - o|, clipped at 0
        a = np.clip(1.0 - np.abs(s[:, None, :] - offsets[None, :, None]), 0.0, None)  # (rows, n_cols, columns)
        good = usable[ys, band]
        a_good = a * good[:, None, :]
        wsum = a_good.sum(axis=2)
        has = wsum > 0
        safe = np.where(has, wsum, 1.0)
        row_sci = np.where(good, sci[ys, band], 0.0)
        out_sci[here] = np.where(has, np.einsum("rcx,rx->rc", a_good, row_sci) / safe, np.nan)
        a_good2 = a_good**2
        for k, v in variances.items():
            row_v = np.where(good, np.asarray(v, np.float64)[ys, band], 0.0)
            out_var[k][here] = np.where(has, np.einsum("rcx,rx->rc", a_good2, row_v) / safe**2, np.nan)
        row_dq = np.asarray(dq, np.uint32)[ys, band]
        block_dq = np.bitwise_or.reduce(np.where(a > 0, row_dq[:, None, :], 0), axis=2).astype(np.uint32)
        block_dq[~has] |= _DO_NOT_USE
        out_dq[here] = block_dq
    total = sum(out_var.values()) if out_var else np.zeros_like(out_sci)
    wavelength = np.repeat(np.asarray(row_wavelength, np.float64)[rows][:, None], n_cols, axis=1)
    return Rectified(
        sci=out_sci.astype(np.float32), err=np.sqrt(total).astype(np.float32), dq=out_dq,
        variances={k: v.astype(np.float32) for k, v in out_var.items()},
        wavelength=wavelength.astype(np.float32), rows=rows, offsets=offsets,
    )


def blot_slit(values: np.ndarray, rows: np.ndarray, offsets: np.ndarray, centre_x: np.ndarray,
              shape: tuple[int, int]) -> np.ndarray:
    """A rectified slit's ``values`` (n_rows, n_cols) put back onto the detector window
    ``shape`` (ny, nx): the inverse of :func:`rectify_slit`. Row ``r`` holds detector row
    ``rows[r]``; each detector pixel of it takes the value at its slit coordinate
    ``x - centre_x[y]``, interpolated linearly between the grid's columns (``offsets``).
    NaN off the grid's rows and beyond its columns (and next to a NaN value)."""
    values = np.asarray(values, np.float64)
    out = np.full(shape, np.nan)
    cols = np.arange(shape[1], dtype=np.float64)
    offsets = np.asarray(offsets, np.float64)
    for r, y in enumerate(np.asarray(rows, int)):
        if 0 <= y < shape[0] and np.isfinite(centre_x[y]):
            out[y] = np.interp(cols - centre_x[y], offsets, values[r], left=np.nan, right=np.nan)
    return out
