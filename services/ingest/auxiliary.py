"""Checks of the auxiliary files a delivery may carry besides telemetry: MSA metadata
files (planning input of NIRSpec MOS observations) and wavefront-sensing OPD files. Each
reads one file and says what is wrong with it; the ingest task archives or refuses."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from astropy.io import fits

__all__ = ["MSA_TABLES", "msa_problem", "opd_facts"]

MSA_TABLES = {
    "SHUTTER_INFO": ("slitlet_id", "msa_metadata_id", "shutter_quadrant", "shutter_row", "shutter_column",
                     "source_id", "background", "shutter_state", "dither_point_index", "primary_source"),
    "SOURCE_INFO": ("program", "source_id", "source_name", "ra", "dec"),
}


def msa_problem(path: Path, program: str) -> str | None:
    """Why a file is not an MSA metadata file of ``program`` in the public layout, or None."""
    try:
        with fits.open(path, memmap=False) as hdul:
            header_program = str(hdul[0].header.get("PROGRAM", "")).strip()
            if header_program.zfill(5) != program:
                return f"its PROGRAM keyword is {header_program!r}, not {program}"
            for extname, columns in MSA_TABLES.items():
                if extname not in hdul:
                    return f"it has no {extname} table"
                names = {c.lower() for c in hdul[extname].columns.names}
                missing = [c for c in columns if c not in names]
                if missing:
                    return f"its {extname} table lacks {', '.join(missing)}"
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        return f"it is not a readable FITS file ({exc})"
    return None


def opd_facts(path: Path) -> tuple[datetime, float]:
    """(sensing time, rms OPD in nm) of an OPD file in the public layout: a 2-D PRIMARY
    image in metres (BUNIT m), finite, with DATE-OBS and TIME-OBS. ValueError says what is
    wrong."""
    try:
        with fits.open(path, memmap=False) as hdul:
            header, opd = hdul[0].header, hdul[0].data
            if opd is None or opd.ndim != 2:
                raise ValueError("its PRIMARY HDU holds no 2-D OPD image")
            if str(header.get("BUNIT", "")).strip().lower() not in ("m", "meter", "meters"):
                raise ValueError(f"its BUNIT is {header.get('BUNIT')!r}, not m (the OPD is in metres)")
            if not np.all(np.isfinite(opd)):
                raise ValueError("its OPD has non-finite values")
            try:
                when = datetime.fromisoformat(f"{header['DATE-OBS']}T{header.get('TIME-OBS', '00:00:00')}")
            except (KeyError, ValueError):
                raise ValueError("it has no valid DATE-OBS/TIME-OBS") from None
            pupil = opd != 0
            rms = float(np.sqrt(np.mean(np.asarray(opd, float)[pupil] ** 2)) * 1e9) if pupil.any() else 0.0
    except OSError as exc:
        raise ValueError(f"it is not a readable FITS file ({exc})") from None
    return when.replace(tzinfo=UTC), rms
