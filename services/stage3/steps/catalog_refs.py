"""The source catalog's reference data, picked from the reference tables as the public
source_catalog picks them (jwst ``source_catalog/reference_data.py``):

- **APCORR** (table ``apcorr_table``: filter, pupil or subarray, eefraction, radius,
  apcorr, skyin, skyout): the rows of the exposure's FILTER and PUPIL (NIRCam, NIRISS) or
  FILTER and SUBARRAY (MIRI; FGS: every row), then for each requested encircled energy (%)
  the row whose ``round(100 * eefraction)`` equals it: its radius and correction, and the
  background annulus (one skyin/skyout for the configuration). Radii are in the detector's
  native pixels; the image measured has pixels ``pixel_scale_ratio`` times as large, so
  radii and annulus are divided by it.
- **ABVEGAOFFSET** (table ``abvega_offset``): the row of FILTER and PUPIL (NIRCam,
  NIRISS), FILTER (MIRI) or DETECTOR (FGS); its ``abvega_offset`` is m_AB - m_Vega.

A table without the row asked for raises :class:`ReferenceRowError` (the caller falls back
and says so).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["ApertureParams", "ReferenceRowError", "abvega_offset", "apcorr_apertures"]


class ReferenceRowError(LookupError):
    """The reference table has no (single) row for this configuration."""


@dataclass(frozen=True)
class ApertureParams:
    """The catalog's apertures: encircled energies ``ee`` (%), their ``radii`` (pixels
    of the image measured), the ``corrections`` from each aperture's flux to the total
    (the largest one makes ``aper_total_flux``), the background annulus ``bkg_inner`` to
    ``bkg_outer`` (pixels) and where they came from (``source``)."""

    ee: tuple[int, ...]
    radii: tuple[float, ...]
    corrections: tuple[float, ...]
    bkg_inner: float
    bkg_outer: float
    source: str


def _text(values) -> np.ndarray:
    return np.array([(v.decode("ascii", "replace") if isinstance(v, bytes) else str(v)).strip().upper()
                     for v in np.asarray(values).ravel()])


def _select(table: np.ndarray, selectors: dict[str, str | None], what: str) -> np.ndarray:
    names = table.dtype.names or ()
    keep = np.ones(len(table), bool)
    for column, value in selectors.items():
        if column not in names:
            raise ReferenceRowError(f"{what} has no {column!r} column")
        keep &= _text(table[column]) == str(value or "").strip().upper()
    if not keep.any():
        wanted = " ".join(f"{k.upper()}={v}" for k, v in selectors.items())
        raise ReferenceRowError(f"{what} has no row for {wanted}")
    return table[keep]


def _selectors(kind: str, instrument: str, *, filter: str | None, pupil: str | None, subarray: str | None,
               detector: str | None) -> dict[str, str | None]:
    """The columns (and values) that pick the row of ``kind`` ("apcorr" or "abvega")."""
    inst = instrument.upper()
    if inst in ("NIRCAM", "NIRISS"):
        return {"filter": filter, "pupil": pupil}
    if inst == "MIRI":
        return {"filter": filter, "subarray": subarray} if kind == "apcorr" else {"filter": filter}
    if inst == "FGS":
        return {} if kind == "apcorr" else {"detector": detector}
    raise ReferenceRowError(f"no imaging reference rows for instrument {instrument}")


def apcorr_apertures(
    table: np.ndarray, *, instrument: str, filter: str | None, pupil: str | None, subarray: str | None,
    aperture_ee: Sequence[int], pixel_scale_ratio: float = 1.0, source: str = "APCORR",
) -> ApertureParams:
    """The apertures of ``aperture_ee`` (%) for this configuration (module docstring).

    Parameters
    ----------
    table : structured ndarray
        The APCORR ``apcorr_table``.
    instrument, filter, pupil, subarray : str
        The image's INSTRUME, FILTER, PUPIL and SUBARRAY.
    aperture_ee : sequence of int
        Encircled energies, percent, increasing.
    pixel_scale_ratio : float
        Pixel scale of the image measured over the detector's.
    source : str
        Recorded in the result (e.g. the file name).
    """
    what = f"APCORR {source}"
    rows = _select(table, _selectors("apcorr", instrument, filter=filter, pupil=pupil, subarray=subarray,
                                     detector=None), what)
    percent = np.round(np.asarray(rows["eefraction"], float) * 100.0).astype(int)
    chosen = []
    for ee in aperture_ee:
        match = rows[percent == int(ee)]
        if len(match) != 1:
            raise ReferenceRowError(f"{what} has {len(match)} rows for an encircled energy of {ee} %")
        chosen.append(match[0])
    skyin = {float(r["skyin"]) for r in chosen}
    skyout = {float(r["skyout"]) for r in chosen}
    if len(skyin) != 1 or len(skyout) != 1:
        raise ReferenceRowError(f"{what} gives more than one background annulus for this configuration")
    scale = float(pixel_scale_ratio)
    return ApertureParams(
        ee=tuple(int(e) for e in aperture_ee),
        radii=tuple(float(r["radius"]) / scale for r in chosen),
        corrections=tuple(float(r["apcorr"]) for r in chosen),
        bkg_inner=skyin.pop() / scale, bkg_outer=skyout.pop() / scale, source=source,
    )


def abvega_offset(table: np.ndarray, *, instrument: str, filter: str | None, pupil: str | None,
                  detector: str | None, source: str = "ABVEGAOFFSET") -> float:
    """m_AB - m_Vega for this configuration (module docstring)."""
    what = f"ABVEGAOFFSET {source}"
    rows = _select(table, _selectors("abvega", instrument, filter=filter, pupil=pupil, subarray=None,
                                     detector=detector), what)
    if len(rows) != 1:
        raise ReferenceRowError(f"{what} has {len(rows)} rows for this configuration")
    return float(rows[0]["abvega_offset"])
