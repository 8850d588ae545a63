"""Centroids of compact sources: a pixel-integrated 2-D Gaussian fitted to every source
at once (batched Levenberg-Marquardt), with an iterative windowed centroid as fallback.

A PSF sampled by the pixels is a Gaussian integrated over each pixel; fitting that model
(rather than taking a barycentre) keeps centroids unbiased when the PSF is only about two
pixels wide, which is what the astrometric requirements of stage 3 need.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import erf

__all__ = ["GaussianFit", "fit_gaussians", "windowed_centroids"]

_SQRT2 = math.sqrt(2.0)
_FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))


@dataclass(frozen=True)
class GaussianFit:
    """Per-source fit results, all shape (n,): 0-based pixel centre ``x``, ``y``; total
    ``flux`` and per-pixel background ``bkg`` in data units; ``sigma`` in pixels; 1-sigma
    errors ``x_err``/``y_err`` in pixels; ``ok`` where the fit converged inside its box."""

    x: np.ndarray
    y: np.ndarray
    flux: np.ndarray
    sigma: np.ndarray
    bkg: np.ndarray
    x_err: np.ndarray
    y_err: np.ndarray
    ok: np.ndarray

    @property
    def fwhm(self) -> np.ndarray:
        return self.sigma * _FWHM_PER_SIGMA


def _cutouts(data: np.ndarray, weight: np.ndarray, xc: np.ndarray, yc: np.ndarray, half: int):
    """(n, size, size) cutouts of data and weight around integer centres (zero weight
    off the image), and the pixel coordinates of the cutout's first row/column."""
    ny, nx = data.shape
    offs = np.arange(-half, half + 1)
    cols = xc[:, None] + offs[None, :]
    rows = yc[:, None] + offs[None, :]
    inside = ((cols >= 0) & (cols < nx))[:, None, :] & ((rows >= 0) & (rows < ny))[:, :, None]
    c = np.clip(cols, 0, nx - 1)
    r = np.clip(rows, 0, ny - 1)
    d = data[r[:, :, None], c[:, None, :]]
    w = np.where(inside, weight[r[:, :, None], c[:, None, :]], 0.0)
    good = np.isfinite(d) & (w > 0)
    return np.where(good, d, 0.0), np.where(good, w, 0.0), cols[:, 0], rows[:, 0]


def _profile(edges_lo: np.ndarray, centre: np.ndarray, sigma: np.ndarray):
    """Pixel-integrated unit Gaussian along one axis and its derivatives with respect to
    the centre and sigma; arrays (n, size)."""
    s = sigma[:, None]
    a = (edges_lo + 1.0 - centre[:, None]) / s
    b = (edges_lo - centre[:, None]) / s
    g = 0.5 * (erf(a / _SQRT2) - erf(b / _SQRT2))
    pa = np.exp(-0.5 * a * a) / math.sqrt(2.0 * math.pi)
    pb = np.exp(-0.5 * b * b) / math.sqrt(2.0 * math.pi)
    dg_dc = -(pa - pb) / s
    dg_ds = -(a * pa - b * pb) / s
    return g, dg_dc, dg_ds


def fit_gaussians(
    data: np.ndarray,
    x0: np.ndarray,
    y0: np.ndarray,
    *,
    fwhm: float,
    error: np.ndarray | None = None,
    mask: np.ndarray | None = None,
    half_size: int | None = None,
    max_iter: int = 30,
    segmentation: np.ndarray | None = None,
    labels: np.ndarray | None = None,
) -> GaussianFit:
    """Fit a pixel-integrated circular Gaussian plus constant background to each source.

    Parameters
    ----------
    data : ndarray (ny, nx)
        Image, any units.
    x0, y0 : ndarray (n,)
        Starting positions, 0-based pixels.
    fwhm : float
        Starting FWHM, pixels; also sets the box: half-size ``ceil(1.5 * fwhm)`` (at
        least 3) unless ``half_size`` is given.
    error : ndarray (ny, nx), optional
        1-sigma uncertainty per pixel (weights 1/error²); uniform weights when None.
    mask : ndarray (ny, nx) of bool, optional
        True for pixels to ignore (non-finite pixels are always ignored).
    segmentation, labels : ndarray (ny, nx) of int and ndarray (n,), optional
        A segmentation image and each source's label in it: pixels of *other* sources
        are ignored in a source's fit, so a neighbour does not pull its centroid.
    """
    x0 = np.atleast_1d(np.asarray(x0, float))
    y0 = np.atleast_1d(np.asarray(y0, float))
    n = x0.size
    half = half_size if half_size is not None else max(3, math.ceil(1.5 * fwhm))
    if n == 0:
        empty = np.zeros(0)
        return GaussianFit(empty, empty, empty, empty, empty, empty, empty, np.zeros(0, bool))
    if error is None:
        weight = np.ones(data.shape)
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            weight = np.where(np.isfinite(error) & (error > 0), 1.0 / np.asarray(error, float) ** 2, 0.0)
    if mask is not None:
        weight = np.where(mask, 0.0, weight)
    xc = np.rint(x0).astype(np.intp)
    yc = np.rint(y0).astype(np.intp)
    d, w, col0, row0 = _cutouts(np.asarray(data, float), weight, xc, yc, half)
    size = 2 * half + 1
    if segmentation is not None and labels is not None:
        seg, _, _, _ = _cutouts(np.asarray(segmentation, float), np.ones(segmentation.shape), xc, yc, half)
        own = np.asarray(labels, float)[:, None, None]
        w = np.where((seg != 0) & (seg != own), 0.0, w)
    xs = col0[:, None] - 0.5 + np.arange(size)[None, :]  # low edge of each column
    ys = row0[:, None] - 0.5 + np.arange(size)[None, :]

    border = np.ones((size, size), bool)
    border[1:-1, 1:-1] = False
    bkg0 = np.array([np.median(d[i][border & (w[i] > 0)]) if np.any(border & (w[i] > 0)) else 0.0 for i in range(n)])
    # params: x, y, sigma, flux, bkg
    p = np.stack([x0, y0, np.full(n, fwhm / _FWHM_PER_SIGMA), np.zeros(n), bkg0], axis=1)
    p[:, 3] = np.maximum(np.sum((d - bkg0[:, None, None]) * (w > 0), axis=(1, 2)), 1e-30)
    lam = np.full(n, 1e-3)

    def model_and_jac(p):
        gx, dgx_dx, dgx_ds = _profile(xs, p[:, 0], p[:, 2])
        gy, dgy_dy, dgy_ds = _profile(ys, p[:, 1], p[:, 2])
        f = p[:, 3][:, None, None]
        shape2d = gy[:, :, None] * gx[:, None, :]
        m = f * shape2d + p[:, 4][:, None, None]
        jac = np.stack([
            f * gy[:, :, None] * dgx_dx[:, None, :],
            f * dgy_dy[:, :, None] * gx[:, None, :],
            f * (gy[:, :, None] * dgx_ds[:, None, :] + dgy_ds[:, :, None] * gx[:, None, :]),
            shape2d,
            np.ones_like(shape2d),
        ], axis=-1).reshape(n, size * size, 5)
        return m, jac

    def chi2_of(m):
        return np.sum(w * (d - m) ** 2, axis=(1, 2))

    m, jac = model_and_jac(p)
    chi2 = chi2_of(m)
    active = np.ones(n, bool)
    sigma_max = max(3.0 * fwhm / _FWHM_PER_SIGMA, 1.0)
    for _ in range(max_iter):
        if not active.any():
            break
        wr = (w * (d - m)).reshape(n, -1)
        jtw = jac.transpose(0, 2, 1) * w.reshape(n, 1, -1)
        a = jtw @ jac
        g = np.einsum("nkp,np->nk", jac.transpose(0, 2, 1), wr)
        diag = np.einsum("nkk->nk", a)
        a_damped = a + (lam[:, None] * np.maximum(diag, 1e-30))[:, :, None] * np.eye(5)[None]
        try:
            step = np.linalg.solve(a_damped, g[..., None])[..., 0]
        except np.linalg.LinAlgError:
            step = np.stack([np.linalg.lstsq(a_damped[i], g[i], rcond=None)[0] for i in range(n)])
        step[~active] = 0.0
        trial = p + step
        trial[:, 2] = np.clip(trial[:, 2], 0.2, sigma_max)
        trial[:, 3] = np.maximum(trial[:, 3], 1e-30)
        m_t, jac_t = model_and_jac(trial)
        chi2_t = chi2_of(m_t)
        better = (chi2_t <= chi2) & active
        p[better] = trial[better]
        m[better], jac[better], chi2[better] = m_t[better], jac_t[better], chi2_t[better]
        lam = np.where(better, lam * 0.3, lam * 10.0)
        small = np.all(np.abs(step[:, :3]) < 1e-5, axis=1)
        active &= ~(small | (lam > 1e8))

    a = (jac.transpose(0, 2, 1) * w.reshape(n, 1, -1)) @ jac
    npix = np.sum(w > 0, axis=(1, 2))
    dof = np.maximum(npix - 5, 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cov = np.linalg.pinv(a)
        scale = chi2 / dof if error is None else np.maximum(chi2 / dof, 1.0)
        x_err = np.sqrt(np.abs(cov[:, 0, 0]) * scale)
        y_err = np.sqrt(np.abs(cov[:, 1, 1]) * scale)
    ok = (
        np.all(np.isfinite(p), axis=1)
        & (np.abs(p[:, 0] - xc) <= half - 1) & (np.abs(p[:, 1] - yc) <= half - 1)
        & (p[:, 2] > 0.21) & (p[:, 2] < sigma_max * 0.999) & (p[:, 3] > 0) & (npix >= 9)
    )
    return GaussianFit(p[:, 0], p[:, 1], p[:, 3], p[:, 2], p[:, 4], x_err, y_err, ok)


def windowed_centroids(
    data: np.ndarray, x0: np.ndarray, y0: np.ndarray, *, fwhm: float, n_iter: int = 10,
    mask: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Iterative Gaussian-windowed centroids (window sigma = fwhm / 2.355), for sources
    a Gaussian does not fit (extended or blended); ``data`` background-subtracted."""
    img = np.where(np.isfinite(data) & (True if mask is None else ~mask), data, 0.0)
    sig = max(fwhm / _FWHM_PER_SIGMA, 0.5)
    half = max(3, math.ceil(3 * sig))
    x = np.atleast_1d(np.asarray(x0, float)).copy()
    y = np.atleast_1d(np.asarray(y0, float)).copy()
    if x.size == 0:
        return x, y
    ones = np.ones(img.shape)
    for _ in range(n_iter):
        xc, yc = np.rint(x).astype(np.intp), np.rint(y).astype(np.intp)
        d, w, col0, row0 = _cutouts(img, ones, xc, yc, half)
        px = col0[:, None] + np.arange(2 * half + 1)[None, :]
        py = row0[:, None] + np.arange(2 * half + 1)[None, :]
        dx = px[:, None, :] - x[:, None, None]
        dy = py[:, :, None] - y[:, None, None]
        win = np.exp(-(dx**2 + dy**2) / (2 * sig**2)) * (w > 0)
        wd = win * d
        norm = wd.sum(axis=(1, 2))
        good = norm > 0
        step_x = np.where(good, 2.0 * (wd * dx).sum(axis=(1, 2)) / np.where(good, norm, 1.0), 0.0)
        step_y = np.where(good, 2.0 * (wd * dy).sum(axis=(1, 2)) / np.where(good, norm, 1.0), 0.0)
        x += np.clip(step_x, -1.0, 1.0)
        y += np.clip(step_y, -1.0, 1.0)
        if np.all(np.abs(step_x) < 1e-4) and np.all(np.abs(step_y) < 1e-4):
            break
    return x, y
