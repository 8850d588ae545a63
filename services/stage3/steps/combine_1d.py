"""combine_1d: several extractions of one source on the same spectral grid combined into
one spectrum (the Level-3 ``_x1d`` of a slit: one extraction per exposure).

Per spectral element, the exposures whose element is finite are averaged with weights
``w = 1 / FLUX_ERROR^2``: FLUX, SURF_BRIGHT and BACKGROUND are the weighted means, each
variance column ``sum(w^2 var) / (sum w)^2``, the errors the square roots of their
sums; NPIXELS adds up; DQ is the OR of the exposures used (DO_NOT_USE alone where none
is). The grids must agree (the same wavelengths, element for element): the exposures of a
slit that is nodded along its length share their rows.

Spectra on different grids (a wide-field slitless source seen at other pixels in each
exposure) are first put on one grid, as the public combine_1d does: the output
wavelengths are the inputs' wavelengths taken together, in increasing order, averaged in
groups of as many as there are spectra covering them (:func:`output_wavelengths`), and
each input element goes, unresampled, to the output element nearest its wavelength
(:func:`on_grid`); then they are combined as above.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from shared.datamodels.dqflags import PIXEL

__all__ = ["combine_spectra", "n_inputs", "on_grid", "output_wavelengths"]

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
    err = np.stack([np.asarray(t["FLUX_ERROR"], np.float64) for t in tables])
    use = _usable(tables)
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


def _usable(tables: Sequence[np.ndarray]) -> np.ndarray:
    """(spectra, elements): the elements combine_1d takes (a finite FLUX with a positive
    FLUX_ERROR)."""
    flux = np.stack([np.asarray(t["FLUX"], np.float64) for t in tables])
    err = np.stack([np.asarray(t["FLUX_ERROR"], np.float64) for t in tables])
    return np.isfinite(flux) & np.isfinite(err) & (err > 0)


def n_inputs(tables: Sequence[np.ndarray]) -> np.ndarray:
    """How many of the spectra (on one grid) each element of their combination takes."""
    return _usable(tables).sum(axis=0)


def output_wavelengths(wavelengths: Sequence[np.ndarray]) -> np.ndarray:
    """The grid spectra of these ``wavelengths`` (um) are combined on: all of them in
    increasing order, averaged in consecutive groups of as many values as there are
    spectra covering the group's middle (a spectrum covers its first to its last
    wavelength and half an element beyond each). Spectra on one grid give that grid back;
    spectra offset by a fraction of an element, the middle of each element's wavelengths.
    Spectra of fewer than two finite wavelengths are left out.

    Raises
    ------
    ValueError
        No spectrum has two finite wavelengths."""
    spectra = [np.sort(w[np.isfinite(w)]) for w in (np.asarray(v, np.float64) for v in wavelengths)]
    spectra = [w for w in spectra if w.size >= 2]
    if not spectra:
        raise ValueError("combine_1d needs a spectrum of at least two wavelengths")
    union = np.sort(np.concatenate(spectra))
    cover = np.zeros(union.size, int)
    for w in spectra:
        cover += (union >= w[0] - 0.5 * (w[1] - w[0])) & (union < w[-1] + 0.5 * (w[-1] - w[-2]))
    grid, i = [], 0
    while i < union.size:
        n = max(int(cover[min(i + int(cover[i]) // 2, union.size - 1)]), 1)
        grid.append(float(union[i:i + n].mean()))
        i += n
    return np.asarray(grid)


def on_grid(table: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """A spectral table put on ``grid`` (increasing wavelengths, um): each element with a
    finite wavelength and FLUX, not DO_NOT_USE, taken whole to the grid element nearest
    its wavelength (within half an element of the grid's ends); where two fall on one,
    the nearer. The grid's other elements have no value (NaN, NPIXELS 0) and DO_NOT_USE."""
    grid = np.asarray(grid, np.float64)
    n = grid.size
    out = np.zeros(n, table.dtype)
    for name in table.dtype.names:
        if np.issubdtype(table.dtype[name], np.floating):
            out[name] = np.nan
    out["NPIXELS"] = 0.0
    out["DQ"] = _DO_NOT_USE
    out["WAVELENGTH"] = grid
    if n == 0:
        return out
    step = (grid[1] - grid[0], grid[-1] - grid[-2]) if n > 1 else (1.0, 1.0)
    ends = np.concatenate([[grid[0] - step[0]], grid, [grid[-1] + step[1]]])
    wave = np.asarray(table["WAVELENGTH"], np.float64)
    ok = (np.isfinite(wave) & np.isfinite(np.asarray(table["FLUX"], np.float64))
          & ((np.asarray(table["DQ"], np.uint32) & _DO_NOT_USE) == 0))
    place = np.interp(np.where(ok, wave, grid[0]), ends, np.arange(-1.0, n + 1.0))
    k = np.rint(place).astype(int)
    ok &= (k >= 0) & (k < n)
    order = np.flatnonzero(ok)[np.argsort(np.abs(place - k)[ok], kind="stable")]
    _, first = np.unique(k[order], return_index=True)  # the nearest of those on one element
    taken = order[first]
    for name in table.dtype.names:
        if name != "WAVELENGTH":
            out[name][k[taken]] = table[name][taken]
    return out
