"""tweakreg: align the WCSs of a group of exposures to each other, and optionally to an
absolute astrometric catalog.

1. Sources per exposure (:func:`find_sources`): a Gaussian matched filter, local maxima
   above ``snr_threshold``, cores with SATURATED/DO_NOT_USE/NaN pixels skipped, centroids
   from a pixel-integrated Gaussian fit, cosmic-ray-sharp or extended fits dropped, the
   ``brightest`` kept.
2. Every exposure's sources go to the sky with its own WCS (distortion included), then to
   one tangent plane at the group's centre.
3. Relative alignment (:func:`align`), exposure by exposure: the images of one exposure
   (its detectors, ``groups``) are one catalog with one correction, as the public step
   aligns by group_id, so detectors that never overlap each other are still aligned
   through the dithers. The exposure with most sources is the reference;
   the others, most-overlapping first, are matched to the growing reference catalog (its
   sources plus those of exposures already aligned) and fitted with a shift + rotation
   ("rshift": initial offset from a pair histogram within ``searchrad``, mutual nearest
   neighbours within ``tolerance``, weighted least squares with ``nclip`` rounds of
   ``sigma`` clipping). A second pass refits each exposure to all the others.
4. Absolute alignment, when a catalog is given: the merged group catalog is matched to it
   and one shift + rotation moves the whole group.
5. :func:`corrected_wcs` applies an exposure's transform to its FITS WCS: CRVAL moves with
   the transform and the PC matrix turns by its angle; CRPIX and SIP terms are kept.

Defaults follow the public step where they carry over (brightest 200, fitgeometry
rshift, nclip 3, sigma 3). Deliberate differences: snr_threshold 5 is the S/N in the
matched-filtered image (the public 10 is in units of the unfiltered rms, a far higher
bar); minobj 6, not 15, because subarray exposures often hold fewer stars and a shift +
rotation is well determined by 6 clipped matches; the matching tolerance is in pixels.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np
from astropy.stats import sigma_clipped_stats
from astropy.wcs import WCS
from pydantic import BaseModel, ConfigDict, Field
from scipy import ndimage

from services.stage3.steps._centroid import fit_gaussians
from services.stage3.steps._matching import RShift, match_and_fit, mutual_matches
from shared.datamodels.dqflags import PIXEL

__all__ = [
    "Alignment",
    "SourceList",
    "TweakregInput",
    "TweakregParams",
    "TweakregResult",
    "align",
    "corrected_wcs",
    "deproject",
    "find_sources",
    "input_sources",
    "project",
    "tweakreg",
]

_ARCSEC = 3600.0
_CORE_BAD = PIXEL["DO_NOT_USE"] | PIXEL["SATURATED"]


class TweakregParams(BaseModel):
    """Parameters of tweakreg."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    snr_threshold: float = Field(5.0, gt=0, description="Detection S/N of a source in the matched-filtered image.")
    kernel_fwhm: float = Field(2.5, gt=0, description="FWHM of the Gaussian detection kernel, pixels.")
    brightest: int = Field(200, ge=1, description="Keep at most this many brightest sources per exposure.")
    searchrad: float = Field(1.0, gt=0, description="Largest offset searched for between exposures, arcsec.")
    tolerance: float = Field(3.0, gt=0, description="Matching tolerance after the initial offset, pixels.")
    minobj: int = Field(6, ge=3, description="Fewest matched sources for a fit.")
    nclip: int = Field(3, ge=0, description="Sigma-clipping rounds of the fit.")
    sigma: float = Field(3.0, gt=0, description="Clipping limit, in units of the fit rms.")
    abs_searchrad: float = Field(1.0, gt=0, description="Largest offset searched for against the absolute catalog, arcsec.")
    abs_tolerance: float = Field(3.0, gt=0, description="Matching tolerance against the absolute catalog, pixels.")
    abs_minobj: int = Field(6, ge=3, description="Fewest matched sources for the absolute fit.")


@dataclass(frozen=True)
class TweakregInput:
    """One exposure: ``data``/``err`` (ny, nx) in any one unit, ``dq`` uint32 or None,
    ``wcs`` its current WCS (0-based pixels)."""

    data: np.ndarray
    err: np.ndarray | None
    dq: np.ndarray | None
    wcs: WCS


@dataclass(frozen=True)
class SourceList:
    """Sources of one exposure, shape (n,): 0-based pixel ``x``/``y``, their 1-sigma
    errors (pixels), ``flux`` (data units x pixels) and detection ``snr``."""

    x: np.ndarray
    y: np.ndarray
    x_err: np.ndarray
    y_err: np.ndarray
    flux: np.ndarray
    snr: np.ndarray

    def __len__(self) -> int:
        return len(self.x)


@dataclass(frozen=True)
class Alignment:
    """The correction of one exposure: ``transform`` in the group's tangent plane,
    ``aligned`` False when it could not be fitted (identity then), with the reason in
    ``note``; ``nmatch``/``rms`` (arcsec) of the last fit that set it."""

    transform: RShift
    aligned: bool
    nmatch: int
    rms: float
    note: str = ""


@dataclass(frozen=True)
class TweakregResult:
    """Corrected WCSs (input order), each exposure's :class:`Alignment`, the tangent
    point (deg), and the absolute fit (None when no catalog was used or it failed, with
    the reason in ``absolute_note``)."""

    wcss: list[WCS]
    alignments: list[Alignment]
    tangent: tuple[float, float]
    sources: list[SourceList]
    absolute: RShift | None
    absolute_note: str


# ---------------------------------------------------------------------------- geometry

def project(ra: np.ndarray, dec: np.ndarray, tangent: tuple[float, float]) -> np.ndarray:
    """Gnomonic standard coordinates (xi East, eta North), arcsec, (n, 2)."""
    a0, d0 = (math.radians(v) for v in tangent)
    a, d = np.radians(np.asarray(ra, float)), np.radians(np.asarray(dec, float))
    cosc = math.sin(d0) * np.sin(d) + math.cos(d0) * np.cos(d) * np.cos(a - a0)
    xi = np.cos(d) * np.sin(a - a0) / cosc
    eta = (math.cos(d0) * np.sin(d) - math.sin(d0) * np.cos(d) * np.cos(a - a0)) / cosc
    return np.degrees(np.stack([xi, eta], axis=-1)) * _ARCSEC


def deproject(uv: np.ndarray, tangent: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`project`: (ra, dec) degrees."""
    a0, d0 = (math.radians(v) for v in tangent)
    uv = np.radians(np.asarray(uv, float) / _ARCSEC)
    xi, eta = uv[..., 0], uv[..., 1]
    denom = math.cos(d0) - eta * math.sin(d0)
    a = a0 + np.arctan2(xi, denom)
    d = np.arctan2(math.sin(d0) + eta * math.cos(d0), np.hypot(xi, denom))
    return np.degrees(a) % 360.0, np.degrees(d)


def group_tangent_point(wcss: Sequence[WCS], shapes: Sequence[tuple[int, int]]) -> tuple[float, float]:
    """Mean sky direction of the exposures' centres, degrees."""
    vecs = []
    for w, (ny, nx) in zip(wcss, shapes, strict=True):
        ra, dec = (math.radians(float(v)) for v in w.pixel_to_world_values((nx - 1) / 2, (ny - 1) / 2))
        vecs.append((math.cos(dec) * math.cos(ra), math.cos(dec) * math.sin(ra), math.sin(dec)))
    v = np.mean(vecs, axis=0)
    return math.degrees(math.atan2(v[1], v[0])) % 360.0, math.degrees(math.atan2(v[2], math.hypot(v[0], v[1])))


def _pixel_scale(wcs: WCS, shape: tuple[int, int]) -> float:
    ny, nx = shape
    x, y = (nx - 1) / 2, (ny - 1) / 2
    ra, dec = wcs.pixel_to_world_values(np.array([x, x + 1.0]), np.array([y, y]))
    uv = project(ra, dec, (float(ra[0]), float(dec[0])))
    return float(np.hypot(*(uv[1] - uv[0])))


# ---------------------------------------------------------------------------- sources

def find_sources(
    data: np.ndarray, err: np.ndarray | None, dq: np.ndarray | None, *, snr_threshold: float = 10.0,
    kernel_fwhm: float = 2.5, brightest: int = 200,
) -> SourceList:
    """Point sources of one image; see the module docstring (step 1)."""
    bad = ~np.isfinite(data)
    if dq is not None:
        bad |= (dq & PIXEL["DO_NOT_USE"]) != 0
    _, bkg, std = sigma_clipped_stats(data[~bad], sigma=3.0, maxiters=5)
    filled = np.where(bad, bkg, data) - bkg
    sig_k = kernel_fwhm / 2.3548
    smooth = ndimage.gaussian_filter(filled, sig_k, mode="nearest")
    # Noise of a unit-sum Gaussian filter of white noise: std / (2 sqrt(pi) sigma).
    std_smooth = std / (2.0 * math.sqrt(math.pi) * sig_k)
    peaks = (smooth == ndimage.maximum_filter(smooth, size=3)) & (smooth > snr_threshold * std_smooth)
    core_bad = ndimage.maximum_filter(bad.astype(np.uint8), size=3).astype(bool)
    if dq is not None:
        core_bad |= ndimage.maximum_filter(((dq & _CORE_BAD) != 0).astype(np.uint8), size=3).astype(bool)
    edge = max(3, math.ceil(1.5 * kernel_fwhm))
    peaks[:edge], peaks[-edge:], peaks[:, :edge], peaks[:, -edge:] = False, False, False, False
    ys, xs = np.nonzero(peaks & ~core_bad)
    snr = smooth[ys, xs] / std_smooth
    order = np.argsort(-snr)[: 3 * brightest]  # fit a margin; some fits fail or are rejected
    ys, xs, snr = ys[order], xs[order], snr[order]
    error = err if err is not None else np.full(data.shape, std)
    fit = fit_gaussians(filled, xs.astype(float), ys.astype(float), fwhm=kernel_fwhm, error=error, mask=bad)
    ok = fit.ok
    if ok.sum() >= 5:
        # Cosmic rays are sharper, blends and galaxies broader, than the typical star.
        typical = float(np.median(fit.sigma[ok]))
        ok &= (fit.sigma > 0.6 * typical) & (fit.sigma < 1.6 * typical)
    idx = np.nonzero(ok)[0][:brightest]
    return SourceList(fit.x[idx], fit.y[idx], fit.x_err[idx], fit.y_err[idx], fit.flux[idx], snr[idx])


def _to_plane(src: SourceList, wcs: WCS, tangent, pixel_scale: float) -> tuple[np.ndarray, np.ndarray]:
    ra, dec = wcs.pixel_to_world_values(src.x, src.y)
    uv = project(ra, dec, tangent)
    err = np.hypot(src.x_err, src.y_err) / math.sqrt(2.0) * pixel_scale
    return uv, np.where(np.isfinite(err) & (err > 0), err, pixel_scale)


# ---------------------------------------------------------------------------- alignment

def _merge(uvs: list[np.ndarray], errs: list[np.ndarray], tolerance: float) -> tuple[np.ndarray, np.ndarray]:
    """One catalog from several aligned lists: sources matched within ``tolerance`` are
    averaged (weights 1/err²), the others appended."""
    pos, wsum = uvs[0].copy(), 1.0 / errs[0] ** 2
    for uv, err in zip(uvs[1:], errs[1:], strict=True):
        w = 1.0 / err**2
        ri, si = mutual_matches(pos, uv, tolerance) if len(pos) else (np.zeros(0, int), np.zeros(0, int))
        pos[ri] = (pos[ri] * wsum[ri, None] + uv[si] * w[si, None]) / (wsum[ri] + w[si])[:, None]
        wsum[ri] += w[si]
        rest = np.setdiff1d(np.arange(len(uv)), si)
        pos = np.vstack([pos, uv[rest]])
        wsum = np.concatenate([wsum, w[rest]])
    return pos, 1.0 / np.sqrt(wsum)


def align(
    planes: list[tuple[np.ndarray, np.ndarray]], params: TweakregParams, pixel_scale: float,
    abs_uv: np.ndarray | None = None,
) -> tuple[list[Alignment], RShift | None, str]:
    """Transforms for every exposure, from its sources (uv (n, 2), err (n,), arcsec in the
    group plane); see the module docstring (steps 3-4). ``pixel_scale`` arcsec turns the
    pixel tolerances into arcsec. Returns (alignments, absolute fit or None, note)."""
    tol = params.tolerance * pixel_scale
    kw = dict(searchrad=params.searchrad, tolerance=tol, nclip=params.nclip, sigma=params.sigma,
              minobj=params.minobj)
    n = len(planes)
    identity = RShift()
    fits: list[Alignment | None] = [None] * n
    ref = int(np.argmax([len(uv) for uv, _ in planes]))
    fits[ref] = Alignment(identity, True, len(planes[ref][0]), 0.0, "reference exposure")
    if n > 1:
        cat_uv, cat_err = planes[ref]
        pending = [i for i in range(n) if i != ref]
        while pending:
            # Most overlap first: the exposure with most sources near the catalog.
            overlap = [len(mutual_matches(cat_uv, planes[i][0], params.searchrad)[0]) for i in pending]
            i = pending.pop(int(np.argmax(overlap)))
            fit, why = match_and_fit(cat_uv, planes[i][0], ref_err=cat_err, src_err=planes[i][1], **kw)
            if fit is None:
                fits[i] = Alignment(identity, False, 0, 0.0, why)
                continue
            fits[i] = Alignment(fit, True, fit.nmatch, fit.rms)
            cat_uv, cat_err = _merge([cat_uv, fit.apply(planes[i][0])], [cat_err, planes[i][1]], tol)
        # Second pass: each exposure against all the others as now aligned.
        for i in range(n):
            if i == ref or not fits[i].aligned:
                continue
            others = [j for j in range(n) if j != i and fits[j].aligned]
            o_uv, o_err = _merge([fits[j].transform.apply(planes[j][0]) for j in others],
                                 [planes[j][1] for j in others], tol)
            fit, _ = match_and_fit(o_uv, planes[i][0], ref_err=o_err, src_err=planes[i][1], **kw)
            if fit is not None:
                fits[i] = Alignment(fit, True, fit.nmatch, fit.rms)
    result = [f for f in fits if f is not None]
    if abs_uv is None:
        return result, None, ""
    aligned = [i for i in range(n) if result[i].aligned]
    g_uv, g_err = _merge([result[i].transform.apply(planes[i][0]) for i in aligned], [planes[i][1] for i in aligned],
                         tol)
    fit, why = match_and_fit(abs_uv, g_uv, src_err=g_err, searchrad=params.abs_searchrad,
                             tolerance=params.abs_tolerance * pixel_scale, nclip=params.nclip, sigma=params.sigma,
                             minobj=params.abs_minobj)
    if fit is None:
        return result, None, f"absolute alignment failed: {why}"
    moved = [Alignment(a.transform.then(fit), a.aligned, a.nmatch, a.rms, a.note) if a.aligned else a for a in result]
    return moved, fit, ""


def _catalog_near(refcat: tuple[np.ndarray, np.ndarray], tangent, planes, margin: float):
    """The catalog's stars around the group's sources (plane coordinates, arcsec), so a
    large catalog costs no matching time; (None, why) when none is there."""
    ra, dec = (np.asarray(v, float) for v in refcat)
    a0, d0 = (math.radians(v) for v in tangent)
    cos_sep = (math.sin(d0) * np.sin(np.radians(dec))
               + math.cos(d0) * np.cos(np.radians(dec)) * np.cos(np.radians(ra) - a0))
    near = cos_sep > math.cos(math.radians(1.0))  # the gnomonic plane is only used within a degree
    uv = project(ra[near], dec[near], tangent)
    sources = [p[0] for p in planes if len(p[0])]
    if len(uv) and sources:
        allsrc = np.vstack(sources)
        lo, hi = allsrc.min(axis=0) - 2 * margin, allsrc.max(axis=0) + 2 * margin
        uv = uv[np.all((uv >= lo) & (uv <= hi), axis=1)]
    if len(uv) == 0:
        return None, "the absolute catalog has no star in the field"
    return uv, ""


def corrected_wcs(wcs: WCS, transform: RShift, tangent: tuple[float, float]) -> WCS:
    """``wcs`` with ``transform`` (in the plane at ``tangent``) applied: new CRVAL and PC,
    same CRPIX, CDELT and SIP. Accurate to well under 1e-3 pixel over a detector."""
    new = wcs.deepcopy()
    crval = np.array([wcs.wcs.crval], float)
    ra, dec = deproject(transform.apply(project(crval[:, 0], crval[:, 1], tangent)), tangent)
    new.wcs.crval = [float(ra[0]), float(dec[0])]
    # Intermediate coordinates are (xi, eta) at CRVAL, so the rotation acts on CDELT * PC.
    cd = np.diag(wcs.wcs.cdelt) @ wcs.wcs.get_pc()
    new.wcs.pc = np.diag(1.0 / np.asarray(wcs.wcs.cdelt)) @ (transform.matrix @ cd)
    new.wcs.set()
    return new


def input_sources(inp: TweakregInput, params: TweakregParams | None = None) -> SourceList:
    """The sources :func:`tweakreg` finds in one input (step 1): what a task of its own can
    find for each exposure before the fit, which needs them all."""
    p = params or TweakregParams()
    return find_sources(inp.data, inp.err, inp.dq, snr_threshold=p.snr_threshold, kernel_fwhm=p.kernel_fwhm,
                        brightest=p.brightest)


def tweakreg(inputs: Sequence[TweakregInput], params: TweakregParams | None = None,
             abs_refcat: tuple[np.ndarray, np.ndarray] | None = None,
             groups: Sequence[Hashable] | None = None,
             sources: Sequence[SourceList | None] | None = None) -> TweakregResult:
    """Align ``inputs`` (see the module docstring). ``abs_refcat`` is (ra, dec) degrees of
    an absolute astrometric catalog, or None for relative alignment only. ``groups``
    names each input's exposure: inputs of one exposure get one correction, fitted on
    their sources together (default: every input its own exposure). ``sources`` are
    those :func:`input_sources` found already, per input (None: found here)."""
    p = params or TweakregParams()
    shapes = [i.data.shape for i in inputs]
    wcss = [i.wcs for i in inputs]
    tangent = group_tangent_point(wcss, shapes)
    scale = float(np.median([_pixel_scale(w, s) for w, s in zip(wcss, shapes, strict=True)]))
    known = list(sources) if sources is not None else [None] * len(inputs)
    if len(known) != len(inputs):
        raise ValueError(f"tweakreg: {len(known)} source lists for {len(inputs)} inputs")
    sources = [found if found is not None else input_sources(i, p) for i, found in zip(inputs, known, strict=True)]
    planes = [_to_plane(s, w, tangent, scale) for s, w in zip(sources, wcss, strict=True)]
    abs_uv, note = _catalog_near(abs_refcat, tangent, planes, p.abs_searchrad) if abs_refcat is not None else (None, "")
    keys = list(groups) if groups is not None else list(range(len(inputs)))
    if len(keys) != len(inputs):
        raise ValueError(f"tweakreg: {len(keys)} groups for {len(inputs)} inputs")
    order = {k: n for n, k in enumerate(dict.fromkeys(keys))}  # exposure -> its index in the fit
    members = [[i for i, k in enumerate(keys) if k == g] for g in order]
    exposures = [(np.vstack([planes[i][0] for i in m]), np.concatenate([planes[i][1] for i in m])) for m in members]
    fitted, absolute, abs_note = align(exposures, p, scale, abs_uv)
    alignments = [fitted[order[k]] for k in keys]
    new_wcss = [corrected_wcs(w, a.transform, tangent) if a.aligned else w.deepcopy() for w, a in zip(wcss, alignments, strict=True)]
    return TweakregResult(new_wcss, alignments, tangent, sources, absolute, abs_note or note)
