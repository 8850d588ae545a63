"""Absolute astrometric catalogs for tweakreg: ECSV tables with ``ra``/``dec`` columns
(degrees), from the directory a deployment configures or a file given to ``dms run``."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from astropy.table import Table, vstack

from shared.errors import InputError

__all__ = ["load_astrometric_catalog", "read_catalog"]

log = logging.getLogger(__name__)


def read_catalog(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(ra, dec) degrees of one ECSV catalog; InputError saying what is wrong with it."""
    if not path.is_file():
        raise FileNotFoundError(f"astrometric catalog {path}: no such file")
    try:
        t = Table.read(path, format="ascii.ecsv")
    except Exception as exc:  # noqa: BLE001 - astropy raises many kinds on a file that is not ECSV
        raise InputError(f"astrometric catalog {path.name} is not a readable ECSV table ({exc})") from exc
    if "ra" not in t.colnames or "dec" not in t.colnames:
        raise InputError(f"astrometric catalog {path.name} has no ra and dec columns (degrees)")
    return np.asarray(t["ra"], float), np.asarray(t["dec"], float)


def load_astrometric_catalog(directory: Path | None) -> tuple[np.ndarray, np.ndarray] | None:
    """(ra, dec) degrees of every ECSV catalog in ``directory``; None when there is no
    directory or no usable catalog (an unusable file is skipped, logged)."""
    if directory is None or not Path(directory).is_dir():
        return None
    parts = []
    for path in sorted(Path(directory).glob("*.ecsv")):
        try:
            ra, dec = read_catalog(path)
        except InputError as exc:
            log.warning("%s; skipped", exc)
            continue
        parts.append(Table({"ra": ra, "dec": dec}))
    if not parts:
        return None
    t = vstack(parts)
    return np.asarray(t["ra"]), np.asarray(t["dec"])
