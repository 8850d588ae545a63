"""Match two star lists in a tangent plane and fit a shift + rotation between them.

Positions are (n, 2) arrays of standard coordinates (xi, eta) in arcsec: xi towards East,
eta towards North, in one tangent plane. The transform maps the *source* list onto the
*reference*: ``u' = R(theta) u + d``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

__all__ = ["RShift", "initial_offset", "match_and_fit", "mutual_matches", "fit_rshift"]


@dataclass(frozen=True)
class RShift:
    """``u' = R(theta) u + shift``; ``theta`` radians (counter-clockwise in (xi, eta)),
    ``shift`` arcsec (2,); ``rms`` arcsec of the kept residuals; ``nmatch`` pairs kept."""

    theta: float = 0.0
    shift: tuple[float, float] = (0.0, 0.0)
    rms: float = 0.0
    nmatch: int = 0

    @property
    def matrix(self) -> np.ndarray:
        c, s = math.cos(self.theta), math.sin(self.theta)
        return np.array([[c, -s], [s, c]])

    def apply(self, uv: np.ndarray) -> np.ndarray:
        return np.asarray(uv, float) @ self.matrix.T + np.asarray(self.shift)

    def then(self, other: RShift) -> RShift:
        """This transform followed by ``other``."""
        shift = other.matrix @ np.asarray(self.shift) + np.asarray(other.shift)
        return RShift(self.theta + other.theta, (float(shift[0]), float(shift[1])), other.rms, other.nmatch)


def initial_offset(ref: np.ndarray, src: np.ndarray, *, searchrad: float, binsize: float) -> tuple[float, float] | None:
    """The offset (ref - src) most pairs agree on, from a 2-D histogram of every pair
    closer than ``searchrad``; None when no pair is that close."""
    tree = cKDTree(ref)
    pairs = tree.query_ball_point(src, r=searchrad)
    di = np.array([j for i, js in enumerate(pairs) for j in js], dtype=np.intp)
    si = np.array([i for i, js in enumerate(pairs) for _ in js], dtype=np.intp)
    if di.size == 0:
        return None
    diff = ref[di] - src[si]
    nbin = max(3, int(math.ceil(2 * searchrad / binsize)))
    hist, xe, ye = np.histogram2d(diff[:, 0], diff[:, 1], bins=nbin, range=[[-searchrad, searchrad]] * 2)
    # Smooth over the 3x3 neighbourhood so a peak split between bins still wins.
    padded = np.pad(hist, 1)
    smooth = sum(padded[1 + a: 1 + a + nbin, 1 + b: 1 + b + nbin] for a in (-1, 0, 1) for b in (-1, 0, 1))
    i, j = np.unravel_index(np.argmax(smooth), smooth.shape)
    cx, cy = (xe[i] + xe[i + 1]) / 2, (ye[j] + ye[j + 1]) / 2
    near = (np.abs(diff[:, 0] - cx) <= 1.5 * binsize) & (np.abs(diff[:, 1] - cy) <= 1.5 * binsize)
    return float(np.median(diff[near, 0])), float(np.median(diff[near, 1]))


def mutual_matches(ref: np.ndarray, src: np.ndarray, tolerance: float) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (ref_i, src_i) of mutual nearest neighbours closer than ``tolerance``."""
    if len(ref) == 0 or len(src) == 0:
        return np.zeros(0, np.intp), np.zeros(0, np.intp)
    d_s, j_s = cKDTree(ref).query(src, distance_upper_bound=tolerance)
    d_r, j_r = cKDTree(src).query(ref, distance_upper_bound=tolerance)
    src_idx = np.nonzero(np.isfinite(d_s))[0]
    ref_idx = j_s[src_idx]
    mutual = j_r[ref_idx] == src_idx
    return ref_idx[mutual], src_idx[mutual]


def fit_rshift(ref: np.ndarray, src: np.ndarray, weights: np.ndarray | None = None, *, nclip: int = 3,
               sigma: float = 3.0) -> tuple[RShift, np.ndarray]:
    """Weighted least-squares shift + rotation taking ``src`` onto ``ref`` (closed form),
    refitted ``nclip`` times without pairs whose residual, in units of its own error
    (``1 / sqrt(weight)``), exceeds ``sigma`` times the rms of those normalized residuals
    on either axis: a faint star's larger residual is judged against its larger error, not
    against the bright stars that dominate the weighted rms. Returns the fit and the mask of
    kept pairs; the fit's ``rms`` is the weighted rms of the kept residuals (arcsec)."""
    w = np.ones(len(ref)) if weights is None else np.asarray(weights, float)
    keep = np.ones(len(ref), bool)
    fit = RShift()
    for it in range(nclip + 1):
        ww = w * keep
        tot = ww.sum()
        if keep.sum() < 2 or tot <= 0:
            break
        rc = (ww[:, None] * ref).sum(0) / tot
        sc = (ww[:, None] * src).sum(0) / tot
        r0, s0 = ref - rc, src - sc
        cross = np.sum(ww * (s0[:, 0] * r0[:, 1] - s0[:, 1] * r0[:, 0]))
        dot = np.sum(ww * (s0[:, 0] * r0[:, 0] + s0[:, 1] * r0[:, 1]))
        theta = math.atan2(cross, dot)
        c, s = math.cos(theta), math.sin(theta)
        shift = rc - np.array([[c, -s], [s, c]]) @ sc
        fit = RShift(theta, (float(shift[0]), float(shift[1])))
        resid = ref - fit.apply(src)
        rms_xy = np.sqrt(np.sum(ww[:, None] * resid**2, axis=0) / tot)
        fit = RShift(fit.theta, fit.shift, float(np.sqrt(np.sum(rms_xy**2))), int(keep.sum()))
        if it == nclip:
            break
        chi = resid * np.sqrt(w)[:, None]
        chi_rms = np.sqrt(np.sum(keep[:, None] * chi**2, axis=0) / keep.sum())
        new_keep = keep & np.all(np.abs(chi) <= sigma * np.maximum(chi_rms, 1e-12), axis=1)
        if np.array_equal(new_keep, keep):
            break
        keep = new_keep
    return fit, keep


def match_and_fit(
    ref: np.ndarray, src: np.ndarray, *, ref_err: np.ndarray | None = None, src_err: np.ndarray | None = None,
    searchrad: float, tolerance: float, nclip: int = 3, sigma: float = 3.0, minobj: int = 10,
) -> tuple[RShift | None, str]:
    """Find the transform taking ``src`` onto ``ref``: initial offset from the pair
    histogram (robust to offsets up to ``searchrad``), then mutual nearest neighbours
    within ``tolerance`` and a clipped fit, iterated. Errors (n,) in arcsec weight the
    pairs by 1 / (ref_err² + src_err²). Returns (fit, "") or (None, why not)."""
    if len(ref) < minobj or len(src) < minobj:
        return None, f"too few sources to match ({len(src)} against {len(ref)}; need {minobj})"
    offset = initial_offset(ref, src, searchrad=searchrad, binsize=tolerance / 2)
    if offset is None:
        return None, f"no pair of sources closer than the search radius {searchrad:.2f} arcsec"
    fit = RShift(0.0, offset)
    kept = 0
    for _ in range(4):
        ri, si = mutual_matches(ref, fit.apply(src), tolerance)
        if len(ri) < minobj:
            return None, f"only {len(ri)} sources matched within {tolerance:.3f} arcsec (need {minobj})"
        var = np.zeros(len(ri))
        if ref_err is not None:
            var = var + np.asarray(ref_err)[ri] ** 2
        if src_err is not None:
            var = var + np.asarray(src_err)[si] ** 2
        weights = 1.0 / np.maximum(var, 1e-12) if np.any(var > 0) else None
        fit, keep = fit_rshift(ref[ri], src[si], weights, nclip=nclip, sigma=sigma)
        if int(keep.sum()) == kept:
            break
        kept = int(keep.sum())
    if fit.nmatch < minobj:
        return None, f"only {fit.nmatch} matches survived clipping (need {minobj})"
    return fit, ""
