"""The MSA metadata file of a planned NIRSpec MOS observation (MSAMETFL).

What the observer's MSA planning delivers with the plan: a FITS file named
``jw<ppppp><ooo><vvv>_<cc>_msa.fits`` in the public layout the calibration pipeline reads
(``jwst.assign_wcs.nirspec.get_open_msa_slits``): a PRIMARY header (TELESCOP, INSTRUME,
FILENAME, PROGRAM, VISIT, OBSERVTN, VISIT_ID, PNTG_SEQ, MSACFG10, MSACFG36), a
SHUTTER_IMAGE of the open shutters, a SHUTTER_INFO table (one row per open shutter:
slitlet_id, msa_metadata_id, shutter_quadrant, shutter_row, shutter_column, source_id,
background, shutter_state, estimated_source_in_shutter_x/y, dither_point_index,
primary_source, fixed_slit) and a SOURCE_INFO table (program, source_id, source_name,
alias, catalog_id, ra, dec, preimage_id, stellarity).

The sources are the brightest stars of the target's astrometric catalog (what the
pre-image shows) in the quadrants the observation's detectors see (NRS1: 1 and 3, NRS2: 2
and 4; all four with both: :func:`observed_quadrants`); each gets a three-shutter slitlet
(columns c-1, c, c+1 of one row) at every dither point, or a two-shutter one (c, c+1) for the two-shutter slitlet nod
(:func:`slitlet_offsets`). The MSA geometry is simplified (:mod:`.spectrograph`: four quadrants
of 365 x 171 shutters on a 0.27" x 0.53" pitch), centred on the target, no roll; a star
off the MSA is left out, and so is a star outside the central half of its shutter (the
planning's source centring constraint, :data:`CENTRING`: within 0.25 of the pitch of the
shutter's centre both ways, so that its light clears the bars, a nod keeps it in its
slitlet, and a pointing error of 0.01" changes its slit loss by a few per cent at most),
and a star whose slitlet's spectrum would share detector
rows with another slitlet's or with a failed-open shutter's (same quadrant, columns less
than 4 apart; the prism spreads every spectrum over hundreds of columns), or whose
slitlet would hold a failed-closed shutter (as the public MSA planning never opens one
for a source). The pre-image
named in ``preimage_id`` is the program's observation whose ``pre_image_for`` lists
this one.

The nod (``3-SHUTTER-SLITLET`` in the description, PATTTYPE ``3-POINT-NOD`` in the plan
as the public data model knows NIRSpec's nods; the public three-shutter slitlet nod): the
telescope moves by one shutter pitch (0.53") along the slitlet between dither points, so
the source is in the middle shutter (column c) at point 1, in the one above (c + 1) at
point 2 and the one below (c - 1) at point 3; the same three shutters stay open. Per
dither point, the shutter holding the source has ``background`` 'N', ``primary_source``
'Y' and the source's estimated place in it (``estimated_source_in_shutter_x`` across the
shutter along the rows, i.e. the dispersion, ``_y`` along its column; 0-1 of the pitch);
the others 'Y', 'N' and NaN. The two-shutter slitlet nod (``2-SHUTTER-SLITLET`` in the
description, PATTTYPE ``2-POINT-NOD``: the public data model's value for a two-point
NIRSpec nod, its PATTTYPE enumeration having no slitlet names): the source is in the
lower shutter (c) at point 1 and, the telescope moved by one pitch, in the upper one
(c + 1) at point 2; the same two shutters stay open, so each nod is the other's
background. Any other pattern keeps the source in the middle shutter of three.
Every shutter is written with ``shutter_state`` OPEN (the planner opens no failed-closed
shutter; a file that lists one CLOSED is read with it closed:
:func:`shared.spectra.msa.open_slitlets`).

Failed-open shutters (:func:`failed_open_shutters`): six shutters of each detector's
quadrants stuck open (NRS1's 1 and 3, NRS2's 2 and 4; twelve in all), drawn from the
detector seed (hardware, the same for every program, as the
detector model is); they let the sky through at every exposure and are listed in the
MSAOPER reference (:mod:`.slit_refs`). Failed-closed shutters
(:func:`failed_closed_shutters`): :data:`FAILED_CLOSED_COUNT` shutters of the whole MSA
stuck closed, drawn from the detector seed on a stream of their own (the failed-open
draw is unchanged by them); no light passes them, no slitlet the planner makes holds one,
and the MSAOPER reference lists them with every state "closed".

The sources' spectra (:func:`mos_source_spectrum`): the catalog's ``flux`` is in the
simulator's flux unit, photo-electrons per second of the imagers for a flat-spectrum
(f_nu) source; read as NIRCam F200W's, it is the continuum ``f_nu`` at F200W's pivot
wavelength, 1.99 um: ``flux x 3.48e-8 Jy`` (:func:`.optics.jy_per_electron`), with a
power-law slope and one or two lines drawn from (seed, star id).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table

from shared.datamodels.msa import read_msa_metadata
from shared.naming import parse_msa_metadata
from shared.plan import Observation, Plan
from shared.spectra.msa import Slitlet, open_slitlets

from .optics import jy_per_electron, pivot_wavelength
from .seeding import Stream, generator
from .spectrograph import (
    MSA_QUADRANT_SHAPE,
    MSA_QUADRANTS,
    MSA_SHUTTER_PITCH,
    SourceSpectrum,
    SpectralLine,
)

__all__ = ["FAILED_CLOSED_COUNT", "FAILED_OPEN_COUNT", "QUADRANT_SHAPE", "SHUTTER_PITCH", "SLITLET_NOD",
           "TWO_SHUTTER_NOD", "MsaExposure", "failed_closed_shutters", "failed_open_shutters", "mos_source_spectrum",
           "msa_exposure", "msa_sources", "nod_shutter_steps", "observed_quadrants", "slitlet_offsets",
           "write_msa_metadata"]

QUADRANT_SHAPE = MSA_QUADRANT_SHAPE  # shutters per quadrant: rows (dispersion) x columns (spatial)
SHUTTER_PITCH = MSA_SHUTTER_PITCH  # arcsec along rows and along columns
SLITLET_NOD = "3-POINT-NOD"  # PATTTYPE of a MOS observation's three-shutter slitlet nod
_NOD_STEPS = (0, 1, -1)  # the source's shutter at dither points 1, 2, 3: column c + step
FAILED_OPEN_COUNT = 6
_MIN_COLUMN_GAP = 4  # slitlets of one quadrant: columns at least this far apart (no shared detector rows)
_FAILED_OPEN_KEY = 4653  # ("MSA"): the failed-open shutters' stream beside the detectors'
TWO_SHUTTER_NOD = "2-POINT-NOD"  # PATTTYPE of a MOS observation's two-shutter slitlet nod
_TWO_SHUTTER_STEPS = (0, 1)  # its source's shutter at dither points 1, 2: column c + step
FAILED_CLOSED_COUNT = 1000  # shutters stuck closed over the whole MSA (0.4 % of its 249,660)
_FAILED_CLOSED_KEY = 4654  # the failed-closed shutters' stream, beside the failed-open ones'
_SPECTRUM_KEY = 7779  # ("MOS"): the MSA sources' spectra
_BASE36 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _base36(number: int, width: int = 2) -> str:
    digits = ""
    while number:
        number, d = divmod(number, 36)
        digits = _BASE36[d] + digits
    return digits.rjust(width, "0")


def _shutter(dx: float, dy: float) -> tuple[int, int, int, float, float] | None:
    """(quadrant 1-4, row, column, x and y of the source in the shutter, 0..1) of a sky
    offset (arcsec, +x West-East, +y North) from the MSA centre; None off the MSA."""
    nrows, ncols = QUADRANT_SHAPE
    px, py = SHUTTER_PITCH
    u, v = dx / px + nrows, dy / py + ncols  # shutter units across the 2 x 2 quadrants
    if not (0 <= u < 2 * nrows and 1 <= v < 2 * ncols - 1):
        return None
    qx, qy = int(u // nrows), int(v // ncols)
    row, column = int(u - qx * nrows) + 1, int(v - qy * ncols) + 1
    if not 2 <= column <= ncols - 1:  # the slitlet's neighbours must be in the same quadrant
        return None
    return 1 + qx + 2 * qy, row, column, u % 1.0, v % 1.0


def failed_open_shutters(detector_seed: int, count: int = FAILED_OPEN_COUNT) -> tuple[tuple[int, int, int], ...]:
    """``count`` distinct shutters (quadrant, row, column) stuck open in each detector's
    quadrants (:data:`.spectrograph.MSA_QUADRANTS`), sorted: NRS1's (1 and 3) drawn from
    ``(detector_seed, DETECTOR, 4653)``, NRS2's (2 and 4) from ``(detector_seed, DETECTOR,
    4653, 2)``, each detector's draw on its own."""
    nrows, ncols = QUADRANT_SHAPE
    found: set[tuple[int, int, int]] = set()
    for k, quadrants in enumerate(MSA_QUADRANTS.values(), start=1):
        rng = generator(detector_seed, Stream.DETECTOR, _FAILED_OPEN_KEY, *(() if k == 1 else (k,)))
        mine: set[tuple[int, int, int]] = set()
        while len(mine) < count:
            q = int(quadrants[int(rng.integers(len(quadrants)))])
            mine.add((q, int(rng.integers(1, nrows + 1)), int(rng.integers(1, ncols + 1))))
        found |= mine
    return tuple(sorted(found))


def failed_closed_shutters(detector_seed: int, count: int = FAILED_CLOSED_COUNT
                           ) -> tuple[tuple[int, int, int], ...]:
    """``count`` distinct shutters (quadrant, row, column) of the whole MSA (quadrants 1-4)
    stuck closed, sorted: drawn from ``(detector_seed, DETECTOR, 4654)`` (hardware, as the
    failed-open ones, whose draw it leaves alone), none of them a failed-open one."""
    rng = generator(detector_seed, Stream.DETECTOR, _FAILED_CLOSED_KEY)
    nrows, ncols = QUADRANT_SHAPE
    stuck_open = set(failed_open_shutters(detector_seed))
    found: set[tuple[int, int, int]] = set()
    while len(found) < count:
        shutter = (int(rng.integers(1, 5)), int(rng.integers(1, nrows + 1)), int(rng.integers(1, ncols + 1)))
        if shutter not in stuck_open:
            found.add(shutter)
    return tuple(sorted(found))


def slitlet_offsets(obs: Observation) -> tuple[int, ...]:
    """The columns of a source's slitlet relative to the shutter holding it at point 1
    (column c): c and c + 1 for the two-shutter slitlet nod, c - 1 to c + 1 otherwise."""
    return (0, 1) if obs.dither.pattern_type == TWO_SHUTTER_NOD else (-1, 0, 1)


def nod_shutter_steps(obs: Observation) -> list[int]:
    """Per dither point, the column of the shutter holding the source relative to column c
    (:func:`slitlet_offsets`): 0, +1, -1 for the three-shutter slitlet nod, 0, +1 for the
    two-shutter one; 0 otherwise."""
    npoints = max(1, obs.dither.npoints)
    if obs.dither.pattern_type == SLITLET_NOD:
        return list(_NOD_STEPS[:npoints])
    if obs.dither.pattern_type == TWO_SHUTTER_NOD:
        return list(_TWO_SHUTTER_STEPS[:npoints])
    return [0] * npoints


def _crowded(taken: list[tuple[int, int]], quadrant: int, column: int) -> bool:
    return any(q == quadrant and abs(c - column) < _MIN_COLUMN_GAP for q, c in taken)


def observed_quadrants(obs: Observation) -> tuple[int, ...]:
    """The MSA quadrants the observation's detectors see (NRS1: 1 and 3, NRS2: 2 and 4),
    sorted. ValueError when none of its detectors sees the MSA."""
    quadrants = tuple(sorted(q for name in obs.detectors for q in MSA_QUADRANTS.get(name, ())))
    if not quadrants:
        raise ValueError(f"observation {obs.number}: none of its detectors {obs.detectors} sees the MSA (NRS1 sees "
                         "quadrants 1 and 3, NRS2 2 and 4)")
    return quadrants


#: The planning's source centring constraint: a source at most this far (a fraction of the
#: pitch) from its shutter's centre, across and along.
CENTRING = 0.25


def msa_sources(plan: Plan, obs: Observation, catalog: Table, nsources: int,
                avoid: tuple[tuple[int, int, int], ...] = (),
                closed: tuple[tuple[int, int, int], ...] = ()) -> list[dict]:
    """The ``nsources`` brightest catalog stars that fall on shutters of the quadrants the
    observation's detectors see (:func:`observed_quadrants`), brightest first, each
    slitlet's spectrum clear of the others' and of the shutters in ``avoid`` (the
    failed-open ones): no two in one quadrant fewer than 4 columns apart; none whose
    slitlet (:func:`slitlet_offsets`) would hold a shutter of ``closed`` (the failed-closed
    ones, which the MSA planning never opens for a source)."""
    quadrants = observed_quadrants(obs)
    target = plan.target(obs.target_id)
    cos_dec = math.cos(math.radians(target.dec))
    out = []
    taken = [(q, c) for q, _, c in avoid]
    stuck_closed, offsets = set(closed), slitlet_offsets(obs)
    for star in sorted(catalog, key=lambda s: -float(s["flux"])):
        dra = ((float(star["ra"]) - target.ra + 180.0) % 360.0) - 180.0
        place = _shutter(dra * cos_dec * 3600.0, (float(star["dec"]) - target.dec) * 3600.0)
        if place is None:
            continue
        quadrant, row, column, x, y = place
        if quadrant not in quadrants:
            continue  # its spectrum falls on a detector the observation does not read
        if abs(x - 0.5) > CENTRING or abs(y - 0.5) > CENTRING:
            continue  # off its shutter's centre: the planning's centring constraint leaves it out
        if _crowded(taken, quadrant, column):
            continue  # its spectrum would share detector rows with another slitlet's
        if any((quadrant, row, column + d) in stuck_closed for d in offsets):
            continue  # its slitlet would need a failed-closed shutter
        taken.append((quadrant, column))
        out.append({"source_id": len(out) + 1, "catalog_id": str(star["source_id"]), "ra": float(star["ra"]),
                    "dec": float(star["dec"]), "flux": float(star["flux"]), "quadrant": quadrant, "row": row,
                    "column": column, "x": x, "y": y})
        if len(out) == nsources:
            break
    return out


def write_msa_metadata(plan: Plan, obs: Observation, catalog: Table, directory: Path, nsources: int,
                       avoid: tuple[tuple[int, int, int], ...] = (),
                       closed: tuple[tuple[int, int, int], ...] = ()) -> Path:
    """Write ``obs.msa_metadata`` into ``directory``; returns its path. ``avoid``: the
    failed-open shutters, whose spectra the slitlets keep clear of; ``closed``: the
    failed-closed ones, which no slitlet holds (:func:`msa_sources`).

    Raises ValueError when the observation plans no MSA metadata file or no star of the
    catalog falls on a shutter."""
    if obs.msa_metadata is None:
        raise ValueError(f"observation {obs.number} plans no MSA metadata file")
    name = parse_msa_metadata(obs.msa_metadata)
    sources = msa_sources(plan, obs, catalog, nsources, avoid, closed)
    if not sources:
        raise ValueError(f"{obs.msa_metadata}: no star of the target's catalog falls on the MSA")
    pre_images = [o.number for o in plan.observations if obs.number in o.pre_image_for]
    preimage_id = f"{plan.program}{pre_images[0]:03d}_000" if pre_images else "NONE"
    meta_id = name.config

    shutters = []
    for point, step in enumerate(nod_shutter_steps(obs), start=1):
        for s in sources:
            for d in slitlet_offsets(obs):
                primary = d == step
                shutters.append((s["source_id"], meta_id, s["quadrant"], s["row"], s["column"] + d, s["source_id"],
                                 "N" if primary else "Y", "OPEN", s["x"] if primary else np.nan,
                                 s["y"] if primary else np.nan, point, "Y" if primary else "N", "NONE"))
    cols = list(zip(*shutters, strict=True))
    shutter_info = fits.BinTableHDU.from_columns([
        fits.Column("slitlet_id", "I", array=np.array(cols[0], np.int16)),
        fits.Column("msa_metadata_id", "I", array=np.array(cols[1], np.int16)),
        fits.Column("shutter_quadrant", "I", array=np.array(cols[2], np.int16)),
        fits.Column("shutter_row", "I", array=np.array(cols[3], np.int16)),
        fits.Column("shutter_column", "I", array=np.array(cols[4], np.int16)),
        fits.Column("source_id", "I", array=np.array(cols[5], np.int16)),
        fits.Column("background", "1A", array=np.array(cols[6])),
        fits.Column("shutter_state", "6A", array=np.array(cols[7])),
        fits.Column("estimated_source_in_shutter_x", "E", array=np.array(cols[8], np.float32)),
        fits.Column("estimated_source_in_shutter_y", "E", array=np.array(cols[9], np.float32)),
        fits.Column("dither_point_index", "I", array=np.array(cols[10], np.int16)),
        fits.Column("primary_source", "1A", array=np.array(cols[11])),
        fits.Column("fixed_slit", "5A", array=np.array(cols[12])),
    ], name="SHUTTER_INFO")
    source_info = fits.BinTableHDU.from_columns([
        fits.Column("program", "J", array=np.full(len(sources), int(plan.program), np.int32)),
        fits.Column("source_id", "J", array=np.array([s["source_id"] for s in sources], np.int32)),
        fits.Column("source_name", "20A", array=np.array([f"{int(plan.program)}_{s['source_id']}" for s in sources])),
        fits.Column("alias", "31A", array=np.array([s["catalog_id"] for s in sources])),
        fits.Column("catalog_id", "20A", array=np.array([s["catalog_id"] for s in sources])),
        fits.Column("ra", "D", array=np.array([s["ra"] for s in sources])),
        fits.Column("dec", "D", array=np.array([s["dec"] for s in sources])),
        fits.Column("preimage_id", "30A", array=np.array([preimage_id] * len(sources))),
        fits.Column("stellarity", "D", array=np.ones(len(sources))),
    ], name="SOURCE_INFO")
    nrows, ncols = QUADRANT_SHAPE
    image = np.zeros((2 * ncols, 2 * nrows))  # the four quadrants side by side, columns up
    for q, r, c in {(row[2], row[3], row[4]) for row in shutters}:
        qx, qy = (q - 1) % 2, (q - 1) // 2
        image[qy * ncols + c - 1, qx * nrows + r - 1] = 1.0
    primary = fits.PrimaryHDU()
    primary.header.update({
        "TELESCOP": ("JWST", "telescope used to acquire data"),
        "INSTRUME": ("NIRSPEC", "identifier for instrument used to acquire data"),
        "FILENAME": (obs.msa_metadata, "name of file"),
        "PROGRAM": (plan.program, "program number"),
        "VISIT": (f"{name.visit:03d}", "visit number"),
        "OBSERVTN": (f"{name.observation:03d}", "observation number"),
        "VISIT_ID": (f"{plan.program}{name.observation:03d}{name.visit:03d}", "visit identifier"),
        "PNTG_SEQ": (1, "pointing sequence number"),
        "MSACFG10": (meta_id, "base 10 nirspec_msa_at_pointing.msa_config_id"),
        "MSACFG36": (_base36(meta_id), "base 36 version of MSACFG10"),
    })
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / obs.msa_metadata
    fits.HDUList([primary, fits.ImageHDU(image, name="SHUTTER_IMAGE"), shutter_info, source_info]).writeto(
        path, overwrite=True, output_verify="exception")
    return path


def mos_source_spectrum(flux_e_per_s: float, star_id: int, seed: int) -> SourceSpectrum:
    """The spectrum of an MSA source (see the module docstring): continuum ``f_nu`` =
    ``flux x jy_per_electron(NIRCAM F200W)`` Jy at 1.99 um, slope uniform in [-2, 0]; one
    or two lines at 1.0-5.0 um, at least 0.5 um apart: first an emission line (peak 2-6 x
    the continuum, FWHM 0.01 um: unresolved by the prism), a second, if drawn, an
    absorption (30-60 % deep, FWHM 0.05 um). Drawn from ``(seed, SKY, star id, 7779)``."""
    if not flux_e_per_s > 0:
        raise ValueError(f"an MSA source needs a positive catalog flux, got {flux_e_per_s} e-/s (star {star_id})")
    rng = generator(seed, Stream.SKY, int(star_id), _SPECTRUM_KEY)
    slope = float(rng.uniform(-2.0, 0.0))
    first = float(rng.uniform(1.0, 5.0))
    lines = [SpectralLine(wavelength=round(first, 4), fwhm=0.01, strength=round(float(rng.uniform(2.0, 6.0)), 3))]
    if rng.uniform() < 0.5:
        second = float(rng.uniform(1.0, 4.0))
        if abs(second - first) < 0.5:
            second += 1.0
        lines.append(SpectralLine(wavelength=round(second, 4), fwhm=0.05,
                                  strength=-round(float(rng.uniform(0.3, 0.6)), 3)))
    return SourceSpectrum(flux_jy=float(flux_e_per_s) * jy_per_electron("NIRCAM", "F200W", "CLEAR"), slope=slope,
                          lines=tuple(lines), reference=pivot_wavelength("NIRCAM", "F200W", "CLEAR"))


@dataclass(frozen=True)
class MsaExposure:
    """What the MSA shows one exposure: its dither point and the slitlets open there
    (every quadrant; read by the pipeline's rules, :func:`shared.spectra.msa.open_slitlets`),
    each source's spectrum (by MSA source id) and catalog star id, and the failed-open
    shutters."""

    dither_point: int
    slitlets: tuple[Slitlet, ...]
    spectra: Mapping[int, SourceSpectrum]
    star_ids: Mapping[int, int]
    failed_open: tuple[tuple[int, int, int], ...]


def msa_exposure(path: Path, dither_point: int, catalog: Table, seed: int,
                 failed_open: tuple[tuple[int, int, int], ...]) -> MsaExposure:
    """The :class:`MsaExposure` of ``dither_point`` from an MSA metadata file (its one
    configuration, the file name's) and the astrometric catalog its sources were chosen
    from (their flux). ValueError when the file's plan cannot be read or a source is
    missing from the catalog."""
    msa = read_msa_metadata(path)
    slitlets = open_slitlets(msa.shutter_info, msa.source_info, parse_msa_metadata(Path(path).name).config,
                             dither_point)
    flux = {str(sid): float(f) for sid, f in zip(catalog["source_id"], catalog["flux"], strict=True)}
    spectra, star_ids = {}, {}
    for row in msa.source_info:
        star = (row["catalog_id"].decode() if isinstance(row["catalog_id"], bytes) else str(row["catalog_id"])).strip()
        if star not in flux:
            raise ValueError(f"{Path(path).name}: source {int(row['source_id'])} (catalog id {star}) is not in the "
                             "astrometric catalog it was chosen from")
        spectra[int(row["source_id"])] = mos_source_spectrum(flux[star], int(star), seed)
        star_ids[int(row["source_id"])] = int(star)
    return MsaExposure(dither_point=dither_point, slitlets=tuple(slitlets), spectra=spectra, star_ids=star_ids,
                       failed_open=tuple(failed_open))
