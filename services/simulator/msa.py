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
pre-image shows); each gets a three-shutter slitlet (the middle one holding the source)
at every dither point. The MSA geometry is simplified: four quadrants of 365 x 171
shutters on a 0.27" x 0.53" pitch, centred on the target, no roll; a star off the MSA is
left out. The pre-image named in ``preimage_id`` is the program's observation whose
``pre_image_for`` lists this one.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table

from shared.naming import parse_msa_metadata
from shared.plan import Observation, Plan

__all__ = ["QUADRANT_SHAPE", "SHUTTER_PITCH", "msa_sources", "write_msa_metadata"]

QUADRANT_SHAPE = (365, 171)  # shutters per quadrant: rows (dispersion) x columns (spatial)
SHUTTER_PITCH = (0.27, 0.53)  # arcsec along rows and along columns
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


def msa_sources(plan: Plan, obs: Observation, catalog: Table, nsources: int) -> list[dict]:
    """The ``nsources`` brightest catalog stars that fall on shutters, brightest first."""
    target = plan.target(obs.target_id)
    cos_dec = math.cos(math.radians(target.dec))
    out, used = [], set()
    for star in sorted(catalog, key=lambda s: -float(s["flux"])):
        dra = ((float(star["ra"]) - target.ra + 180.0) % 360.0) - 180.0
        place = _shutter(dra * cos_dec * 3600.0, (float(star["dec"]) - target.dec) * 3600.0)
        if place is None or place[:3] in used:
            continue
        quadrant, row, column, x, y = place
        if any((quadrant, row, column + d) in used for d in (-2, -1, 1, 2)):
            continue  # slitlets may not overlap
        used.add((quadrant, row, column))
        out.append({"source_id": len(out) + 1, "catalog_id": str(star["source_id"]), "ra": float(star["ra"]),
                    "dec": float(star["dec"]), "flux": float(star["flux"]), "quadrant": quadrant, "row": row,
                    "column": column, "x": x, "y": y})
        if len(out) == nsources:
            break
    return out


def write_msa_metadata(plan: Plan, obs: Observation, catalog: Table, directory: Path, nsources: int) -> Path:
    """Write ``obs.msa_metadata`` into ``directory``; returns its path.

    Raises ValueError when the observation plans no MSA metadata file or no star of the
    catalog falls on a shutter."""
    if obs.msa_metadata is None:
        raise ValueError(f"observation {obs.number} plans no MSA metadata file")
    name = parse_msa_metadata(obs.msa_metadata)
    sources = msa_sources(plan, obs, catalog, nsources)
    if not sources:
        raise ValueError(f"{obs.msa_metadata}: no star of the target's catalog falls on the MSA")
    pre_images = [o.number for o in plan.observations if obs.number in o.pre_image_for]
    preimage_id = f"{plan.program}{pre_images[0]:03d}_000" if pre_images else "NONE"
    npoints = max(1, obs.dither.npoints)
    meta_id = name.config

    shutters = []
    for point in range(1, npoints + 1):
        for s in sources:
            for d in (-1, 0, 1):
                primary = d == 0
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
