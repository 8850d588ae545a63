"""photom: convert count rates (DN/s) to surface brightness (MJy/sr).

Rules (jwst-conventions.md §5, "Photom"; the public pipeline's imaging photom):

- the PHOTOM reference's ``phot_table`` holds one row per optical configuration: NIRCam
  and NIRISS match FILTER and PUPIL, MIRI matches FILTER and SUBARRAY (a ``GENERIC`` row
  serves every subarray that has no row of its own), NIRSpec's fixed slits FILTER,
  GRATING and the slit; no matching row means no conversion;
- NIRSpec's tables give ``photmj`` (MJy per DN/s of a pixel, for a point source) where
  the others give ``photmjsr``: a point source stays in MJy, an extended one is divided
  by the nominal pixel area to MJy/sr, as the public photom does;
- SCI and ERR are multiplied by PHOTMJSR (MJy/sr per DN/s), variances by PHOTMJSR²;
- the SCI header gets PHOTMJSR, PHOTUJA2 (µJy/arcsec² per DN/s), and the nominal pixel
  area PIXAR_SR / PIXAR_A2 from the reference.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shared.arrays import check_image_stack, float32_op

__all__ = [
    "MJSR_TO_UJA2",
    "PhotomResult",
    "PhotomRow",
    "apply_photom",
    "photom_keywords",
    "select_photom_row",
    "spectral_conversion",
]

#: 1 MJy/sr in µJy/arcsec²: 1e12 µJy/MJy over the arcsec² in a steradian (4.2545170e10).
MJSR_TO_UJA2 = 1e12 / 4.2545170296152e10



@dataclass(frozen=True)
class PhotomRow:
    """The ``phot_table`` row that applies: conversion per DN/s (in ``unit``: MJy/sr of a
    ``photmjsr`` column, MJy of a ``photmj`` one) and its 1-sigma uncertainty, with the
    row's own selector values for the log."""

    photmjsr: float
    uncertainty: float
    selectors: dict[str, str]
    index: int = 0  # the row's place in the table (a spectroscopic row's arrays are read from it)
    unit: str = "MJy/sr"


@dataclass(frozen=True)
class PhotomResult:
    """Calibrated arrays, float32, the shapes of the inputs; ``variances`` keyed as given."""

    sci: np.ndarray
    err: np.ndarray
    variances: dict[str, np.ndarray]


def _text(value) -> str:
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    return str(value).strip().upper()


def select_photom_row(table: np.ndarray, *, filter: str, pupil: str | None = None,
                      subarray: str | None = None, grating: str | None = None,
                      slit: str | None = None, order: int | None = None) -> PhotomRow | None:
    """The row of ``table`` for this configuration, or None when there is none.

    Parameters
    ----------
    table : structured ndarray
        ``phot_table`` with columns ``filter``, ``photmjsr`` (or NIRSpec's ``photmj``),
        ``uncertainty`` and ``pupil`` (near-IR imaging), ``subarray`` (MIRI) or
        ``grating`` and ``slit`` (NIRSpec fixed slits); a grism's also ``order``.
    filter, pupil, subarray, grating, slit : str
        The exposure's FILTER, PUPIL, SUBARRAY, GRATING and FXD_SLIT (case-insensitive).
    order : int, optional
        The spectral order (a table with an ``order`` column: the row of that order).
    """
    names = table.dtype.names or ()
    value = "photmjsr" if "photmjsr" in names else "photmj"
    if "filter" not in names or value not in names:
        raise ValueError("phot_table needs the columns 'filter' and 'photmjsr' (or 'photmj')")
    wanted = {"filter": _text(filter)}
    if "pupil" in names:
        wanted["pupil"] = _text(pupil or "")
    for column, given in (("grating", grating), ("slit", slit)):
        if column in names:
            wanted[column] = _text(given or "")
    if order is not None and "order" in names:
        wanted["order"] = str(int(order))
    generic_ok = "subarray" in names
    if generic_ok:
        wanted["subarray"] = _text(subarray or "")
    fallback = None
    for index, row in enumerate(table):
        values = {k: _text(row[k]) for k in wanted}
        exact = values == wanted
        generic = generic_ok and values["subarray"] == "GENERIC" and all(
            values[k] == v for k, v in wanted.items() if k != "subarray")
        if exact or (generic and fallback is None):
            unc = float(row["uncertainty"]) if "uncertainty" in names else float("nan")
            found = PhotomRow(float(row[value]), unc, values, index, "MJy/sr" if value == "photmjsr" else "MJy")
            if exact:
                return found
            fallback = found
    return fallback


def apply_photom(sci: np.ndarray, err: np.ndarray, variances: dict[str, np.ndarray],
                 photmjsr: float | np.ndarray) -> PhotomResult:
    """Multiply SCI and ERR by ``photmjsr`` and each variance by its square.

    Parameters
    ----------
    sci, err : ndarray, shape (ny, nx) or (nints, ny, nx)
        DN/s.
    variances : dict of str to ndarray
        (DN/s)², e.g. ``{"VAR_POISSON": ..., "VAR_RNOISE": ..., "VAR_FLAT": ...}``.
    photmjsr : float or ndarray
        MJy/sr per DN/s; a number (imaging) must be finite and positive; an array of the
        image's shape (a spectrum's conversion at each pixel's wavelength,
        :func:`spectral_conversion`) is NaN where there is none, which makes those
        pixels NaN.
    """
    sci = check_image_stack("sci", sci)
    if np.ndim(photmjsr) == 0:
        if not np.isfinite(photmjsr) or photmjsr <= 0:
            raise ValueError(f"PHOTMJSR must be finite and positive, got {photmjsr}")
    elif np.shape(photmjsr) != sci.shape[-2:]:
        raise ValueError(f"a conversion array of shape {np.shape(photmjsr)} for images of {sci.shape[-2:]}")
    c = np.asarray(photmjsr, np.float64)
    return PhotomResult(
        sci=float32_op(np.multiply, sci, c),
        err=float32_op(np.multiply, err, c),
        variances={k: float32_op(np.multiply, v, c * c) for k, v in variances.items()},
    )


def spectral_conversion(wavelength: np.ndarray, photmjsr: float, table_wavelength: np.ndarray,
                        relresponse: np.ndarray) -> np.ndarray:
    """The conversion (MJy/sr per DN/s) at each pixel's ``wavelength`` (um; NaN: none):
    ``photmjsr`` times the relative response interpolated linearly in the reference's
    (wavelength, RELRESPONSE) table; NaN off the table's wavelengths, as the public
    pipeline leaves those pixels uncalibrated."""
    if not np.isfinite(photmjsr) or photmjsr <= 0:
        raise ValueError(f"PHOTMJSR must be finite and positive, got {photmjsr}")
    tw, rr = np.asarray(table_wavelength, np.float64), np.asarray(relresponse, np.float64)
    keep = np.isfinite(tw) & np.isfinite(rr) & (tw > 0)
    tw, rr = tw[keep], rr[keep]
    if tw.size < 2:
        raise ValueError("the relative response has fewer than two usable wavelengths")
    order = np.argsort(tw)
    wl = np.asarray(wavelength, np.float64)
    rel = np.interp(np.nan_to_num(wl, nan=-1.0), tw[order], rr[order], left=np.nan, right=np.nan)
    return np.where(np.isfinite(wl), photmjsr * rel, np.nan)


def photom_keywords(photmjsr: float, pixar_sr: float | None, pixar_a2: float | None) -> dict[str, float]:
    """SCI-header keywords of the conversion: PHOTMJSR, PHOTUJA2 and (when known) PIXAR_SR,
    PIXAR_A2 (sr and arcsec² of a nominal pixel)."""
    kw = {"PHOTMJSR": float(photmjsr), "PHOTUJA2": float(photmjsr) * MJSR_TO_UJA2}
    if pixar_sr is not None:
        kw["PIXAR_SR"] = float(pixar_sr)
    if pixar_a2 is not None:
        kw["PIXAR_A2"] = float(pixar_a2)
    return kw
