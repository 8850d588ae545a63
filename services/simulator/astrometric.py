"""An astrometric reference catalog per target (Gaia-like), for absolute alignment.

Not truth: what an observatory would have at hand. Every star of the target's sky (the
host star of a TSO observation included) that lies inside the union of the planned
readout windows of the target's observations, grown by ``astrometric_margin_arcsec``,
and is at least ``astrometric_flux_min`` e-/s bright. Positions carry Gaussian errors of
``astrometric_error_mas`` per axis, drawn per sky tile ``(seed, CATALOG, target, tile)``
so a star's catalog position does not depend on which windows asked for it.

Columns: ``source_id`` (the simulator's star id), ``ra``, ``dec`` (deg, ICRS),
``ra_error`` (mas, along the sky: RA x cos Dec, as Gaia's), ``dec_error`` (mas), ``flux``
(photo-electrons/s of a unit-flat pixel, the simulator's flux unit).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from astropy.table import Table

from shared.instruments import detector, subarray
from shared.plan import Plan, Target

from .description import SimulationSpec
from .exposure import host_star_id, window_box, window_gwcs
from .pointing import offset_radec
from .seeding import Stream, generator
from .sky import StarList, star_population, stars_in_region

__all__ = ["astrometric_catalog", "catalog_filename", "write_astrometric_catalog"]

_ID_TILE = 10**5


def catalog_filename(program: str, target_name: str) -> str:
    """``<program>_<target name, lower case>_astrometric.ecsv`` (characters other than
    letters, digits, '.', '-' and '_' become '-')."""
    safe = re.sub(r"[^a-z0-9._-]+", "-", target_name.strip().lower()).strip("-") or "target"
    return f"{program}_{safe}_astrometric.ecsv"


def _planned_windows(plan: Plan, target: Target):
    """(detector, subarray, gwcs at the commanded pointing) of every planned exposure of the target."""
    for obs in plan.observations:
        if obs.target_id != target.id:
            continue
        for exp in obs.exposures:
            det = detector(exp.detector)
            sub = subarray(obs.instrument, obs.subarray, det.name)
            yield det, sub, window_gwcs(det, sub, exp.pointing)


def _inside_windows(plan: Plan, target: Target, stars: StarList, margin_arcsec: float) -> np.ndarray:
    keep = np.zeros(len(stars), bool)
    for det, sub, wcs in _planned_windows(plan, target):
        m = margin_arcsec / det.pixel_scale
        x, y = wcs.invert(stars.ra, stars.dec, with_bounding_box=False)
        keep |= (x >= -m) & (x <= sub.xsize - 1 + m) & (y >= -m) & (y <= sub.ysize - 1 + m)
    return keep


def _candidate_stars(plan: Plan, target: Target, knobs: SimulationSpec) -> StarList:
    pop = star_population(plan, target.id, knobs)
    parts: dict[int, tuple] = {}
    for det, sub, wcs in _planned_windows(plan, target):
        box = window_box(wcs, target, sub.xsize, sub.ysize, knobs.astrometric_margin_arcsec / det.pixel_scale)
        found = stars_in_region(target, knobs.seed, pop, *box)
        for k, sid in enumerate(found.id):
            parts.setdefault(int(sid), (found.ra[k], found.dec[k], found.flux[k]))
    ids = np.array(sorted(parts), np.int64)
    values = np.array([parts[i] for i in ids], np.float64).reshape(len(ids), 3)
    return StarList(id=ids, ra=values[:, 0], dec=values[:, 1], flux=values[:, 2])


def _position_errors(seed: int, target_id: int, ids: np.ndarray, sigma_mas: float) -> np.ndarray:
    """Errors (d_ra_cosdec, d_dec) in mas, shape (n, 2), from each star's tile stream."""
    out = np.zeros((len(ids), 2))
    local = ids % 10**15
    tiles, n = local // _ID_TILE, local % _ID_TILE
    for tile in np.unique(tiles):
        rows = np.flatnonzero(tiles == tile)
        tx, ty = divmod(int(tile), _ID_TILE)
        z = generator(seed, Stream.CATALOG, target_id, tx, ty).standard_normal((int(n[rows].max()) + 1, 2))
        out[rows] = z[n[rows]] * sigma_mas
    return out


def astrometric_catalog(plan: Plan, target_id: int, knobs: SimulationSpec, host_flux: float | None = None) -> Table:
    """The astrometric catalog of one target (see the module docstring).

    Parameters
    ----------
    plan : Plan
        The plan (planned pointings define the covered area).
    target_id : int
        The target.
    knobs : SimulationSpec
        Seed, star densities and the catalog's flux limit, position error and margin.
    host_flux : float, optional
        Flux (e-/s) of a host star at the target position, when a TSO observation has one.
    """
    target = plan.target(target_id)
    stars = _candidate_stars(plan, target, knobs)
    if host_flux is not None:
        stars = StarList(id=np.append(stars.id, np.int64(host_star_id(target.id))),
                         ra=np.append(stars.ra, target.ra), dec=np.append(stars.dec, target.dec),
                         flux=np.append(stars.flux, host_flux))
    pick = (stars.flux >= knobs.astrometric_flux_min) & _inside_windows(
        plan, target, stars, knobs.astrometric_margin_arcsec)
    ids, ra, dec, flux = stars.id[pick], stars.ra[pick], stars.dec[pick], stars.flux[pick]
    order = np.argsort(ids, kind="stable")
    ids, ra, dec, flux = ids[order], ra[order], dec[order], flux[order]
    err = _position_errors(knobs.seed, target.id, ids, knobs.astrometric_error_mas)
    ra_obs, dec_obs = offset_radec(ra, dec, err[:, 0] / 1000.0, err[:, 1] / 1000.0)
    sigma = np.full(len(ids), knobs.astrometric_error_mas)
    table = Table(
        {"source_id": ids, "ra": np.atleast_1d(ra_obs), "dec": np.atleast_1d(dec_obs), "ra_error": sigma,
         "dec_error": sigma.copy(), "flux": flux},
        units={"ra": "deg", "dec": "deg", "ra_error": "mas", "dec_error": "mas", "flux": "electron/s"},
    )
    table.meta.update({
        "program": plan.program,
        "target": target.name,
        "reference_frame": "ICRS",
        "flux_min_e_per_s": knobs.astrometric_flux_min,
        "margin_arcsec": knobs.astrometric_margin_arcsec,
        "description": "astrometric reference catalog: stars inside the planned windows of the target's "
        "observations (+ margin), positions with Gaussian errors ra_error/dec_error (mas, per axis on the sky)",
    })
    return table


def write_astrometric_catalog(plan: Plan, target_id: int, knobs: SimulationSpec, directory: Path,
                              host_flux: float | None = None) -> tuple[Path, int]:
    """Write one target's catalog into ``directory``; returns (path, number of stars)."""
    table = astrometric_catalog(plan, target_id, knobs, host_flux)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / catalog_filename(plan.program, plan.target(target_id).name)
    table.write(path, format="ascii.ecsv", overwrite=True)
    return path, len(table)
