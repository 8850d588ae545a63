"""Time-series spectra scored against the simulator's truth, as an observer measures a
transit: each light curve (a white-light curve, or the flux of one wavelength bin of an
``_x1dints``) fitted by weighted least squares with the pipeline's FLUX_ERROR as
``F0 (1 - depth s(t))``, ``s`` the truth's transit shape (0 out of transit, 1 at full
depth). The truth's depth over some wavelengths is the flux-weighted mean of its
per-element ``observed_depth`` (what summing the calibrated spectrum measures)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from astropy.table import Table


def transit_shape(lightcurve: Table) -> np.ndarray:
    """The truth's transit shape per integration, from its ``_truth_lightcurve``."""
    return (1.0 - np.asarray(lightcurve["relative_flux"])) / lightcurve.meta["transit"]["depth"]


def fit_transit(flux: np.ndarray, error: np.ndarray, shape: np.ndarray) -> tuple[float, float, np.ndarray]:
    """(depth, its error, residuals in sigma) of ``F0 (1 - depth shape)`` fitted to a light curve."""
    ok = np.isfinite(flux) & np.isfinite(error) & (error > 0)
    a = np.column_stack([np.ones(ok.sum()), -shape[ok]]) / error[ok, None]
    b = flux[ok] / error[ok]
    coef, *_ = np.linalg.lstsq(a, b, rcond=None)
    cov = np.linalg.inv(a.T @ a)
    f0, blocked = coef
    depth = blocked / f0
    # d(depth) from the covariance of (f0, blocked)
    grad = np.array([-blocked / f0**2, 1.0 / f0])
    return float(depth), float(np.sqrt(grad @ cov @ grad)), b - a @ coef


def truth_depth(transmission: Table, spectrum: Table, wavelength: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per element at ``wavelength``: the truth's observed depth and its flux (Jy)."""
    o1, o2 = np.argsort(transmission["wavelength"]), np.argsort(spectrum["wavelength"])
    depth = np.interp(wavelength, np.asarray(transmission["wavelength"])[o1],
                      np.asarray(transmission["observed_depth"])[o1])
    jy = np.interp(wavelength, np.asarray(spectrum["wavelength"])[o2], np.asarray(spectrum["observed_jy"])[o2])
    return depth, jy


@dataclass(frozen=True)
class BinScore:
    """A wavelength bin's measured depth against the truth's."""

    lo: float
    hi: float
    depth: float
    error: float
    truth: float

    @property
    def pull(self) -> float:
        return (self.depth - self.truth) / self.error


def bin_depths(x: np.ndarray, edges: np.ndarray, shape: np.ndarray, truth: np.ndarray, jy: np.ndarray
               ) -> list[BinScore]:
    """The depth of each bin (``edges``, um) of an ``_x1dints``'s EXTRACT1D ``x`` (its
    first row's wavelengths) against the truth's (``truth``, ``jy`` per element), each
    printed."""
    wavelength = x["WAVELENGTH"][0]
    out = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        sel = (wavelength >= lo) & (wavelength < hi)
        flux = np.nansum(x["FLUX"][:, sel], axis=1)
        error = np.sqrt(np.nansum(x["FLUX_ERROR"][:, sel] ** 2, axis=1))
        depth, depth_err, _ = fit_transit(flux, error, shape)
        expected = float(np.sum(jy[sel] * truth[sel]) / np.sum(jy[sel]))
        out.append(BinScore(float(lo), float(hi), depth, depth_err, expected))
        print(f"{lo:5.2f}-{hi:5.2f} um: depth {depth:.5f} +- {depth_err:.5f}, truth {expected:.5f}, "
              f"pull {out[-1].pull:+.2f}")
    return out


def band_depth(x: np.ndarray, sel: np.ndarray, shape: np.ndarray) -> tuple[float, float]:
    """(depth, error) of the summed flux of the elements ``sel`` of an ``_x1dints``."""
    flux = np.nansum(x["FLUX"][:, sel], axis=1)
    error = np.sqrt(np.nansum(x["FLUX_ERROR"][:, sel] ** 2, axis=1))
    depth, err, _ = fit_transit(flux, error, shape)
    return depth, err
