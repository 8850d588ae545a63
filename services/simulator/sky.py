"""The sky: point sources with known positions and fluxes, and their images.

Stars are generated in square tiles of :data:`TILE_ARCSEC` in the tangent plane of the
target, each tile from its own random stream (seed, target, tile). Any window sees the same
stars wherever it lies, so every dither, detector and observation of a target shares one
sky, and only the tiles under a window are ever generated.

Two populations per tile: faint stars with a power-law flux distribution
``N(>F) ~ F**-alpha`` between ``star_flux_min`` and ``star_flux_max``, and bright stars,
log-uniform between ``bright_flux_min`` and ``bright_flux_max`` (most of them saturate).
Fluxes are photo-electrons per second collected by a pixel of unit flat field.

Images are circular Gaussians integrated exactly over each pixel (differences of error
functions), so the pixels of a star sum to its flux, up to what falls outside the window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from shared.instruments import detector, subarray
from shared.plan import Plan, Target

from .pointing import offset_radec
from .seeding import Stream, generator

__all__ = [
    "TILE_ARCSEC",
    "RenderedStars",
    "StarList",
    "StarPopulation",
    "powerlaw_fluxes",
    "render_stars",
    "star_population",
    "stars_in_region",
]

TILE_ARCSEC = 10.0
_TILE_LIMIT = 50_000  # |tile index| bound that keeps star ids unique
_PER_TILE_LIMIT = 100_000
_CHUNK = 2048  # stars rendered per vectorised batch
_SIGMA_PER_FWHM = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))
_erf = np.frompyfunc(math.erf, 1, 1)


@dataclass(frozen=True)
class StarPopulation:
    """Surface densities (stars per arcsec^2) and flux laws (e-/s) of a target's sky."""

    faint_density: float
    bright_density: float
    flux_min: float
    flux_max: float
    powerlaw_index: float
    bright_min: float
    bright_max: float


@dataclass(frozen=True)
class StarList:
    """Stars: ``id`` (int64), ``ra``/``dec`` (degrees), ``flux`` (e-/s); all shape (n,)."""

    id: np.ndarray
    ra: np.ndarray
    dec: np.ndarray
    flux: np.ndarray

    def __len__(self) -> int:
        return len(self.id)


def star_population(plan: Plan, target_id: int, knobs) -> StarPopulation:
    """The population of a target: ``knobs.stars_per_window`` faint and
    ``knobs.bright_stars_per_window`` bright stars on average in the smallest readout
    window (arcsec^2) that observes the target (``knobs.target_stars[name]`` replaces
    either for that target)."""
    areas = []
    for obs in plan.observations:
        if obs.target_id != target_id:
            continue
        sub = subarray(obs.instrument, obs.subarray)
        areas += [sub.xsize * sub.ysize * detector(name).pixel_scale**2 for name in obs.detectors]
    area = min(areas) if areas else 1.0
    own = knobs.target_stars.get(plan.target(target_id).name)
    faint = own.stars_per_window if own and own.stars_per_window is not None else knobs.stars_per_window
    bright = (own.bright_stars_per_window if own and own.bright_stars_per_window is not None
              else knobs.bright_stars_per_window)
    return StarPopulation(
        faint_density=faint / area,
        bright_density=bright / area,
        flux_min=knobs.star_flux_min,
        flux_max=knobs.star_flux_max,
        powerlaw_index=knobs.star_powerlaw_index,
        bright_min=knobs.bright_flux_min,
        bright_max=knobs.bright_flux_max,
    )


def powerlaw_fluxes(u: np.ndarray, flux_min: float, flux_max: float, alpha: float) -> np.ndarray:
    """Inverse-CDF sampling of ``N(>F) ~ F**-alpha`` on [flux_min, flux_max].

    Parameters
    ----------
    u : ndarray
        Uniform deviates in [0, 1).
    flux_min, flux_max : float
        Flux range (any unit; the result has the same unit).
    alpha : float
        Cumulative power-law index (> 0).
    """
    r = (flux_max / flux_min) ** (-alpha)
    return flux_min * (1.0 - u * (1.0 - r)) ** (-1.0 / alpha)


def _tile(seed: int, target_id: int, ix: int, iy: int, pop: StarPopulation):
    rng = generator(seed, Stream.SKY, target_id, ix + _TILE_LIMIT, iy + _TILE_LIMIT)
    area = TILE_ARCSEC**2
    n_faint = int(rng.poisson(pop.faint_density * area))
    n_bright = int(rng.poisson(pop.bright_density * area))
    n = n_faint + n_bright
    if n > _PER_TILE_LIMIT:
        raise ValueError(f"{n} stars in one {TILE_ARCSEC} arcsec tile; lower stars_per_window")
    xi = (ix + rng.random(n)) * TILE_ARCSEC
    eta = (iy + rng.random(n)) * TILE_ARCSEC
    flux = np.empty(n)
    flux[:n_faint] = powerlaw_fluxes(rng.random(n_faint), pop.flux_min, pop.flux_max, pop.powerlaw_index)
    flux[n_faint:] = np.exp(rng.uniform(np.log(pop.bright_min), np.log(pop.bright_max), n_bright))
    ids = (
        target_id * 10**15 + (ix + _TILE_LIMIT) * 10**10 + (iy + _TILE_LIMIT) * 10**5
        + np.arange(n, dtype=np.int64)
    )
    return ids, xi, eta, flux


def stars_in_region(
    target: Target, seed: int, pop: StarPopulation,
    xi_range: tuple[float, float], eta_range: tuple[float, float],
) -> StarList:
    """Every star of the target's sky in the tiles overlapping a box.

    Parameters
    ----------
    target : Target
        Tangent point of the tiles.
    seed : int
        Run seed.
    pop : StarPopulation
        Densities and flux laws.
    xi_range, eta_range : (float, float)
        The box in standard coordinates about the target, arcsec (xi East, eta North).
        Stars of overlapping tiles outside the box are returned too.
    """
    ix0, ix1 = math.floor(xi_range[0] / TILE_ARCSEC), math.floor(xi_range[1] / TILE_ARCSEC)
    iy0, iy1 = math.floor(eta_range[0] / TILE_ARCSEC), math.floor(eta_range[1] / TILE_ARCSEC)
    if max(abs(ix0), abs(ix1), abs(iy0), abs(iy1)) >= _TILE_LIMIT:
        raise ValueError("window is too far from its target for the star tiling")
    parts = [_tile(seed, target.id, ix, iy, pop) for ix in range(ix0, ix1 + 1) for iy in range(iy0, iy1 + 1)]
    ids = np.concatenate([p[0] for p in parts]).astype(np.int64)
    xi = np.concatenate([p[1] for p in parts])
    eta = np.concatenate([p[2] for p in parts])
    flux = np.concatenate([p[3] for p in parts])
    ra, dec = offset_radec(target.ra, target.dec, xi, eta)
    return StarList(id=ids, ra=np.atleast_1d(ra), dec=np.atleast_1d(dec), flux=flux)


@dataclass(frozen=True)
class RenderedStars:
    """Output of :func:`render_stars`.

    ``image`` (ny, nx): e-/s per pixel from all stars. ``captured`` (n,): fraction of each
    star's flux that falls inside the window. ``weighted`` (n,): sum over the window of
    each star's pixels times ``weights`` (None when no weights were given).
    """

    image: np.ndarray
    captured: np.ndarray
    weighted: np.ndarray | None


def _pixel_fractions(center: np.ndarray, first: np.ndarray, m: int, sigma: float) -> np.ndarray:
    """Fraction of a unit 1-D Gaussian in each of m pixels starting at index ``first``;
    pixel j spans [j - 0.5, j + 0.5]. Shape (n, m)."""
    edges = (first - 0.5 - center)[:, None] + np.arange(m + 1)[None, :]
    cdf = _erf(edges / (sigma * math.sqrt(2.0))).astype(float)
    return 0.5 * np.diff(cdf, axis=1)


def render_stars(
    x: np.ndarray,
    y: np.ndarray,
    flux: np.ndarray,
    fwhm: float,
    shape: tuple[int, int],
    weights: np.ndarray | None = None,
) -> RenderedStars:
    """Image of Gaussian point sources integrated over pixels.

    Parameters
    ----------
    x, y : ndarray, shape (n,)
        Centres, 0-based pixel coordinates (pixel j is centred on j).
    flux : ndarray, shape (n,)
        Total flux of each star (e.g. e-/s).
    fwhm : float
        Full width at half maximum, pixels.
    shape : (ny, nx)
        Window shape.
    weights : ndarray, shape (ny, nx), optional
        Per-pixel factor (e.g. flat / gain) for the ``weighted`` per-star sums.

    Returns
    -------
    RenderedStars
        Each star is drawn out to 6 sigma (+1 pixel), which holds all but ~1e-8 of its flux.
    """
    ny, nx = shape
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    flux = np.asarray(flux, float)
    n = len(flux)
    image = np.zeros(ny * nx)
    captured = np.zeros(n)
    weighted = np.zeros(n) if weights is not None else None
    if n == 0:
        return RenderedStars(image.reshape(shape), captured, weighted)
    sigma = fwhm * _SIGMA_PER_FWHM
    r = int(math.ceil(6.0 * sigma)) + 1
    m = 2 * r + 1
    w_flat = weights.ravel() if weights is not None else None
    near = np.flatnonzero((x > -r - 1) & (x < nx + r) & (y > -r - 1) & (y < ny + r))
    offsets = np.arange(m)
    for start in range(0, len(near), _CHUNK):
        idx = near[start : start + _CHUNK]
        x0 = np.floor(x[idx] + 0.5).astype(np.int64) - r
        y0 = np.floor(y[idx] + 0.5).astype(np.int64) - r
        px = _pixel_fractions(x[idx], x0, m, sigma)
        py = _pixel_fractions(y[idx], y0, m, sigma)
        cols = x0[:, None] + offsets[None, :]  # (k, m)
        rows = y0[:, None] + offsets[None, :]
        px = np.where((cols >= 0) & (cols < nx), px, 0.0)
        py = np.where((rows >= 0) & (rows < ny), py, 0.0)
        stamp = flux[idx, None, None] * py[:, :, None] * px[:, None, :]  # (k, m, m)
        captured[idx] = py.sum(axis=1) * px.sum(axis=1)
        flat_index = np.clip(rows, 0, ny - 1)[:, :, None] * nx + np.clip(cols, 0, nx - 1)[:, None, :]
        image += np.bincount(flat_index.ravel(), weights=stamp.ravel(), minlength=ny * nx)
        if w_flat is not None:
            weighted[idx] = (stamp * w_flat[flat_index]).sum(axis=(1, 2))
    return RenderedStars(image.reshape(shape), captured, weighted)
