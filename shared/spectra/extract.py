"""extract_1d: a slit spectrum summed over an aperture along the trace (the ``_x1d``).

For a spectrum dispersed along rows (MIRI LRS) the aperture on row ``y`` spans
``centre(y) +- width / 2`` pixels along the row, ``centre`` the trace plus the source's
offset along the slit; pixels count by the fraction of them inside it. It is measured on
the calibrated exposure (MJy/sr), whose pixels carry independent noise, not on the
rectified ``_s2d``, whose neighbouring pixels share it.

Per spectral element (row), with ``w`` the weights of the usable pixels (finite, not
DO_NOT_USE) and ``Omega`` the nominal pixel area (PIXAR_SR):

- SURF_BRIGHT = sum(w SB) / sum(w) (MJy/sr); SB_VAR_* = sum(w^2 var) / sum(w)^2;
- FLUX = sum(w SB) * Omega * 1e6 (Jy; a point source: the aperture holds its light),
  FLUX_VAR_* = sum(w^2 var) * (Omega * 1e6)^2;
- an exposure calibrated in MJy per pixel (``unit="MJy"``: a NIRSpec point source, as
  the public photom leaves it) has FLUX = sum(w F) * 1e6 and its SURF_BRIGHT is F / Omega;
- an exposure in DN/s (``unit="DN/s"``: NIRISS SOSS, flux-calibrated after extraction,
  :mod:`shared.spectra.soss`) gives every column in DN/s (FLUX = sum(w F), SURF_BRIGHT
  and BACKGROUND per pixel);
- with background regions (offsets from the centre, pixels), BACKGROUND is their mean
  surface brightness on that row, subtracted from every aperture pixel first (its
  variance, scaled to the aperture, is added);
- NPIXELS = sum(w); DQ = OR of the DQ of the aperture's pixels (unusable pixels are left
  out of the sums, and their flags say so);
- elements whose aperture has no usable pixel are NaN.

The table's columns and units are those of the public ``spectable`` schema.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from shared.datamodels.dqflags import PIXEL

__all__ = ["DEFAULT_BACKGROUND", "DEFAULT_WIDTH", "GRISM_TSO_EXP_TYPES", "SLITLESS_EXP_TYPES", "SLIT_EXP_TYPES", "SOSS_EXP_TYPES", "SPECTABLE_DTYPE", "TSO_SLIT_EXP_TYPES", "TSO_SPEC_EXP_TYPES", "SPECTABLE_UNITS", "WFSS_EXP_TYPES", "ExtractParams", "boxcar_extract", "spectable_units"]

_DO_NOT_USE = np.uint32(PIXEL["DO_NOT_USE"])
_VARS = ("POISSON", "RNOISE", "FLAT")

SPECTABLE_DTYPE = np.dtype(
    [("WAVELENGTH", "<f8"), ("FLUX", "<f8"), ("FLUX_ERROR", "<f8"), ("FLUX_VAR_POISSON", "<f8"),
     ("FLUX_VAR_RNOISE", "<f8"), ("FLUX_VAR_FLAT", "<f8"), ("SURF_BRIGHT", "<f8"), ("SB_ERROR", "<f8"),
     ("SB_VAR_POISSON", "<f8"), ("SB_VAR_RNOISE", "<f8"), ("SB_VAR_FLAT", "<f8"), ("DQ", "<u4"),
     ("BACKGROUND", "<f8"), ("BKGD_ERROR", "<f8"), ("BKGD_VAR_POISSON", "<f8"), ("BKGD_VAR_RNOISE", "<f8"),
     ("BKGD_VAR_FLAT", "<f8"), ("NPIXELS", "<f8")])

SPECTABLE_UNITS = {"WAVELENGTH": "um", "FLUX": "Jy", "FLUX_ERROR": "Jy", "FLUX_VAR_POISSON": "Jy^2",
                   "FLUX_VAR_RNOISE": "Jy^2", "FLUX_VAR_FLAT": "Jy^2", "SURF_BRIGHT": "MJy/sr",
                   "SB_ERROR": "MJy/sr", "SB_VAR_POISSON": "MJy^2/sr^2", "SB_VAR_RNOISE": "MJy^2/sr^2",
                   "SB_VAR_FLAT": "MJy^2/sr^2", "BACKGROUND": "MJy/sr", "BKGD_ERROR": "MJy/sr",
                   "BKGD_VAR_POISSON": "MJy^2/sr^2", "BKGD_VAR_RNOISE": "MJy^2/sr^2",
                   "BKGD_VAR_FLAT": "MJy^2/sr^2"}


def spectable_units(table: np.ndarray, *, counts: bool = False) -> dict[str, str]:
    """The TUNITn cards of a spectral table's extension (its columns' units); with
    ``counts`` those of a table not flux-calibrated (DN/s, as extract_1d leaves a SOSS
    spectrum until photom converts it)."""
    def unit(name: str) -> str:
        u = SPECTABLE_UNITS[name]
        return u if not counts or name == "WAVELENGTH" else ("DN^2/s^2" if "^2" in u else "DN/s")

    return {f"TUNIT{i + 1}": unit(name) for i, name in enumerate(table.dtype.names or ()) if name in SPECTABLE_UNITS}


#: The aperture's width (pixels along the slit) where extract_1d is given none, by
#: EXP_TYPE: about 3 FWHM of the PSF either side at the longest wavelength (the MIRI LRS:
#: 0.44" at 14 um on 0.11" pixels; NIRSpec: 0.17" at 5.3 um on 0.1" pixels), so the
#: aperture holds a point source's light (no aperture correction is applied), and narrow
#: enough that a source nodded 1" from a 3.3" slit's centre keeps it inside the slit; a
#: NIRSpec MOS slitlet's 5 pixels (3.5 sigma of the PSF at 5.3 um either side) stay within
#: the 5.3-pixel shutter that holds the source, clear of the nods' negative images one
#: shutter away.
#: The MIRI LRS without its slit takes the slit's 13 pixels; NIRSpec's bright-object time
#: series (S1600A1, its star held at the slit's centre) the fixed slits' 7; NIRISS SOSS,
#: whose orders the grism's lens spreads over some 25 pixels across, the public box
#: extraction's 40 (each order's, :mod:`shared.spectra.soss`). NIRCam's grism time series
#: 15 (3 FWHM of the PSF either side at 5 um: 0.16" on 0.063" pixels).
DEFAULT_WIDTH: dict[str, float] = {"MIR_LRS-FIXEDSLIT": 13.0, "NRS_FIXEDSLIT": 7.0, "NRS_MSASPEC": 5.0,
                                   "MIR_LRS-SLITLESS": 13.0, "NRS_BRIGHTOBJ": 7.0, "NIS_SOSS": 40.0,
                                   "NRC_TSGRISM": 15.0}

#: Background regions (offsets from the aperture's centre, pixels) where extract_1d is given
#: none, by EXP_TYPE: a slitless exposure has no nod to subtract, and the sky fills the
#: whole window, so the sky of each row is measured 12 to 25 pixels (3 to 6 FWHM of the PSF
#: at 14 um) either side of the trace, within the 72 columns of SLITLESSPRISM. NIRSpec's
#: bright-object time series has no nod either: its background is measured 4 to 7.5 pixels
#: either side, inside the 16-pixel S1600A1 clear of the star's 7-pixel aperture, which
#: removes the slit's sky and, above all, what each integration's readout leaves common to
#: its pixels (in a 32-row window the reference pixels' correction leaves 0.2 DN/s per
#: integration, which summed over the aperture's 8700 pixels is larger than the star's
#: photon noise in the white light). NIRCam's grism time series, whose trace crosses a
#: 64-row window near its middle, measures its sky and what the readout leaves common to a
#: column 12 to 25 pixels either side (5 to 10 FWHM at 5 um), clear of the reference rows.
#: The other modes subtract their nods and have none.
DEFAULT_BACKGROUND: dict[str, tuple[tuple[float, float], ...]] = {
    "MIR_LRS-SLITLESS": ((-25.0, -12.0), (12.0, 25.0)), "NRS_BRIGHTOBJ": ((-7.5, -4.0), (4.0, 7.5)),
    "NRC_TSGRISM": ((-25.0, -12.0), (12.0, 25.0))}

#: The slit modes (EXP_TYPE) calwebb_spec2 and calwebb_spec3 calibrate.
SLIT_EXP_TYPES = frozenset({"MIR_LRS-FIXEDSLIT", "NRS_FIXEDSLIT", "NRS_MSASPEC"})

#: NIRCam's grism time series: slitless, traced by the grism's dispersion model
#: (:mod:`shared.spectra.grism`).
GRISM_TSO_EXP_TYPES = frozenset({"NRC_TSGRISM"})

#: The slitless modes calwebb_spec2 calibrates (an exposure or, for a time series, each of
#: its integrations) and calwebb_tso3 extracts.
SLITLESS_EXP_TYPES = frozenset({"MIR_LRS-SLITLESS"}) | GRISM_TSO_EXP_TYPES

#: The slit modes that are time series (NIRSpec's bright objects, through S1600A1):
#: calwebb_spec2 calibrates each integration through the slit, calwebb_tso3 extracts them.
TSO_SLIT_EXP_TYPES = frozenset({"NRS_BRIGHTOBJ"})

#: NIRISS SOSS: spectral orders from SPECTRACE, spectra flux-calibrated after extraction
#: (:mod:`shared.spectra.soss`); always a time series.
SOSS_EXP_TYPES = frozenset({"NIS_SOSS"})

#: The spectroscopic time series calwebb_tso3 extracts, with and without a slit.
TSO_SPEC_EXP_TYPES = SLITLESS_EXP_TYPES | TSO_SLIT_EXP_TYPES | SOSS_EXP_TYPES

#: Wide-field slitless spectroscopy (NIRISS's GR150R/GR150C, NIRCam's GRISMR/GRISMC): the
#: spectra of every source of a field, traced by the grism's dispersion model from the
#: sources of the direct image's catalog (:mod:`shared.spectra.wfss`); its aperture is
#: each source's own (no default width).
WFSS_EXP_TYPES = frozenset({"NIS_WFSS", "NRC_WFSS"})


class ExtractParams(BaseModel):
    """Parameters of extract_1d."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    width: float | None = Field(None, gt=0, description=(
        "Width of the aperture along the slit, pixels; by default the mode's (13 for the MIRI LRS, 7 for "
        "NIRSpec's fixed slits and bright objects, 5 for a NIRSpec MOS slitlet)."))
    background: tuple[tuple[float, float], ...] | None = Field(
        None, description="Background regions: (from, to) offsets from the aperture's centre along the slit, "
                          "pixels; by default the mode's (12 to 25 pixels either side for the MIRI LRS slitless, 4 to 7.5 "
                          "for NIRSpec's bright objects; none for the nod-subtracted slit modes). () for none.")
    ifu_rscale: float = Field(2.5, gt=0, description=(
        "IFU cube, point source: the aperture's radius in FWHMs of the telescope's diffraction-limited PSF "
        "(1.025 lambda / 6.5 m) at each wavelength."))
    ifu_bkg_annulus: tuple[float, float] | None = Field((1.5, 2.5), description=(
        "IFU cube, point source: the background annulus, its inner and outer radius in aperture radii (the "
        "sigma-clipped mean surface brightness there subtracted plane by plane); None for no background."))

    def for_mode(self, exp_type: str, *, width: float | None = None) -> ExtractParams:
        """These parameters with the width and background regions the mode takes by default
        filled in; ``width`` the default width of the spectrum at hand where the mode has
        none of its own (a WFSS source's extraction height).

        Raises
        ------
        ValueError
            No width is given and ``exp_type`` is not a mode with a default one."""
        mode = str(exp_type).upper()
        update: dict = {}
        if self.background is None:
            update["background"] = DEFAULT_BACKGROUND.get(mode, ())
        if self.width is None:
            if mode in DEFAULT_WIDTH:
                update["width"] = DEFAULT_WIDTH[mode]
            elif width is not None:
                update["width"] = float(width)
            else:
                raise ValueError(f"no default extraction width for EXP_TYPE {mode}; give one (one of "
                                 f"{', '.join(sorted(DEFAULT_WIDTH))} has a default)")
        return self.model_copy(update=update) if update else self


_DEFAULT_PARAMS = ExtractParams().for_mode("MIR_LRS-FIXEDSLIT")


def _weights(centres: np.ndarray, half: float | np.ndarray, nx: int) -> np.ndarray:
    """(rows, nx): the fraction of each pixel [i - 0.5, i + 0.5] of each row inside
    [centre - half, centre + half] of that row."""
    i = np.arange(nx, dtype=np.float64)
    c = np.asarray(centres, np.float64)[:, None]
    return np.clip(np.minimum(i + 0.5, c + half) - np.maximum(i - 0.5, c - half), 0.0, 1.0)


def boxcar_extract(sci: np.ndarray, dq: np.ndarray, variances: dict[str, np.ndarray], centre: np.ndarray,
                   rows: np.ndarray, row_wavelength: np.ndarray, pixar_sr: float,
                   params: ExtractParams = _DEFAULT_PARAMS, *, unit: str = "MJy/sr") -> np.ndarray:
    """The spectral table (:data:`SPECTABLE_DTYPE`), one element per row of ``rows``, in
    order of increasing wavelength.

    ``variances`` by "POISSON", "RNOISE", "FLAT" (absent ones count as 0); ``centre``
    (ny,) the aperture's centre column on each row; ``unit`` that of ``sci``: "MJy/sr", "MJy"
    (per pixel) or "DN/s" (the table then in DN/s; ``pixar_sr`` unused).
    """
    if unit not in ("MJy/sr", "MJy", "DN/s"):
        raise ValueError(f"extract_1d sums MJy/sr, MJy per pixel or DN/s, not {unit!r}")
    if unit != "DN/s" and (not np.isfinite(pixar_sr) or pixar_sr <= 0):
        raise ValueError(f"the nominal pixel area (PIXAR_SR) must be positive, got {pixar_sr}")
    if params.width is None:
        raise ValueError("extract_1d needs the aperture's width (ExtractParams.for_mode gives the mode's)")
    sci = np.asarray(sci, np.float64)
    ny, nx = sci.shape
    dq = np.asarray(dq, np.uint32)
    usable = np.isfinite(sci) & ((dq & _DO_NOT_USE) == 0)
    var = {k: np.asarray(variances[k], np.float64) if k in variances else np.zeros_like(sci) for k in _VARS}
    # a pixel's value -> Jy and -> MJy/sr (in DN/s: kept as it is)
    scale = {"MJy/sr": pixar_sr * 1.0e6, "MJy": 1.0e6, "DN/s": 1.0}[unit]
    sb = 1.0 / pixar_sr if unit == "MJy" else 1.0
    rows = np.asarray(rows, int)
    out = np.zeros(rows.size, SPECTABLE_DTYPE)
    out["WAVELENGTH"] = np.asarray(row_wavelength, np.float64)[rows]
    # every row at once: (rows, nx) weights of the aperture about each row's centre
    c = np.asarray(centre, np.float64)[rows]
    finite = np.isfinite(c)
    c = np.where(finite, c, 0.0)
    w_all = _weights(c, 0.5 * params.width, nx) * finite[:, None]
    good = usable[rows]
    w = w_all * good
    touched = w_all > 0
    out["DQ"] = np.where(touched.any(axis=1), np.bitwise_or.reduce(np.where(touched, dq[rows], 0), axis=1),
                         _DO_NOT_USE)
    wsum = w.sum(axis=1)
    ok = finite & (wsum > 0)
    safe = np.where(ok, wsum, 1.0)
    row = np.where(good, sci[rows], 0.0)
    row_var = {k: np.where(good, var[k][rows], 0.0) for k in _VARS}
    bkg, bkg_var = np.zeros(rows.size), {k: np.zeros(rows.size) for k in _VARS}
    if params.background:
        wb = sum(_weights(c + 0.5 * (lo + hi), 0.5 * abs(hi - lo), nx) for lo, hi in params.background) * good
        nb = wb.sum(axis=1)
        has = nb > 0
        nb = np.where(has, nb, 1.0)
        bkg = np.where(has, (wb * row).sum(axis=1) / nb, 0.0)
        bkg_var = {k: np.where(has, ((wb**2) * row_var[k]).sum(axis=1) / nb**2, 0.0) for k in _VARS}
    total = (w * row).sum(axis=1) - bkg * wsum
    out["SURF_BRIGHT"] = total / safe * sb
    out["FLUX"] = total * scale
    for k in _VARS:
        v = ((w**2) * row_var[k]).sum(axis=1) + bkg_var[k] * wsum**2
        out[f"SB_VAR_{k}"] = v / safe**2 * sb**2
        out[f"FLUX_VAR_{k}"] = v * scale**2
        out[f"BKGD_VAR_{k}"] = bkg_var[k] * sb**2
    out["SB_ERROR"] = np.sqrt(sum(out[f"SB_VAR_{k}"] for k in _VARS))
    out["FLUX_ERROR"] = np.sqrt(sum(out[f"FLUX_VAR_{k}"] for k in _VARS))
    out["BACKGROUND"] = bkg * sb
    out["BKGD_ERROR"] = np.sqrt(sum(bkg_var.values())) * sb
    out["NPIXELS"] = wsum
    # a row without a usable pixel in its aperture (or without a centre): no spectrum there
    for name in SPECTABLE_DTYPE.names:
        if name not in ("WAVELENGTH", "DQ"):
            out[name][~ok] = np.nan
    out["DQ"][~ok] |= _DO_NOT_USE
    return out[np.argsort(out["WAVELENGTH"], kind="stable")]
