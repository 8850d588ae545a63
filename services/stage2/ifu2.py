"""calwebb_spec2's steps for MIRI's integral-field unit (``MIR_MRS``) and its products,
declared in :data:`services.stage2.spec2.SPEC2` beside the slit modes' (the steps they
share: bkg_subtract, flat_field, srctype).

- assign_wcs: the exposure's geometry from its DISTORTION, SPECWCS and REGIONS references
  (:class:`shared.spectra.ifu.MrsGeometry`: every pixel of a slice its alpha, beta and
  wavelength, as the public assign_wcs composes them) and, with a pointing, its gwcs
  (:func:`shared.spectra.ifu.mrs_gwcs`, the ``_cal``'s ``meta.wcs``); S_REGION the footprint
  of the detector's larger field;
- photom: the PHOTOM reference's per-pixel conversion (``MirMrsPhotomModel``: (MJy/sr) /
  (DN/s)); pixels it has no value for (off the slices) are NaN and DO_NOT_USE;
- cube_build: the cube of the detector's first channel in the exposure's band
  (:mod:`shared.spectra.cube`, the 3-D drizzle, sky-aligned, spaxel and wavelength step
  and range from CUBEPAR), as the public calwebb_spec2 saves one cube (its cube_build's
  first, ``output_type='band'``); spec3 builds every channel's;
- extract_1d: the cube's spectrum (:func:`cube_spectrum`): a point source in a circle about
  the target (TARG_RA, TARG_DEC) of ``ifu_rscale`` times the telescope's diffraction FWHM
  at each wavelength, less the background of an annulus about it (``ifu_bkg_annulus``, in
  aperture radii), an extended source over every spaxel with data; FLUX in Jy, SURF_BRIGHT
  the mean surface brightness in MJy/sr.

Products: the ``_cal`` an IFUImageModel, the ``_s3d`` an IFUCubeModel (SCI, ERR, DQ, WMAP;
the cube's FITS WCS: ``RA---TAN``, ``DEC--TAN``, ``WAVE``), the ``_x1d`` a MultiSpecModel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from services.stage2.steps.assign_wcs import s_region
from services.stage2.steps.photom import apply_photom
from shared.datamodels import FitsProduct, set_cards
from shared.datamodels.dqflags import PIXEL
from shared.errors import InputError
from shared.imaging_wcs import TelescopePointing, v23tosky
from shared.pipeline import Skip, SkipKind, StepArgs
from shared.refdata import ReferenceFileError
from shared.spectra.cube import CubeGrid, CubeResult, build_cube, cube_grid
from shared.spectra.extract import SPECTABLE_DTYPE
from shared.spectra.ifu import GeometryError, MrsGeometry, mrs_gwcs, pixel_footprints

__all__ = ["DIFFRACTION_FWHM_PER_UM", "IFU_EXP_TYPES", "CubeBuildParams", "IfuCube", "IfuState", "assign_wcs",
           "cube_build", "cube_product", "cube_spectrum", "extract_1d", "photom"]

IFU_EXP_TYPES = frozenset({"MIR_MRS"})
_DO_NOT_USE = np.uint32(PIXEL["DO_NOT_USE"])
_ARCSEC_PER_RAD = 206264.80624709636
# the telescope's diffraction: FWHM of a 6.5 m aperture's PSF, 1.025 lambda / D, arcsec per um
DIFFRACTION_FWHM_PER_UM = 1.025e-6 / 6.5 * _ARCSEC_PER_RAD


class CubeBuildParams(BaseModel):
    """Parameters of cube_build."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    scalexy: float = Field(0.0, ge=0.0, description="Spaxel size, arcsec; 0 for the CUBEPAR's of the channel and band.")
    scalew: float = Field(0.0, ge=0.0, description="Wavelength step, um; 0 for the CUBEPAR's of the channel and band.")


@dataclass(frozen=True)
class IfuCube:
    """One channel's cube of an exposure: its channel, band, grid and arrays."""

    channel: int
    band: str
    grid: CubeGrid
    result: CubeResult


@dataclass
class IfuState:
    """What the IFU steps add to the exposure's state: its geometry (assign_wcs), its
    pointing, the cube (cube_build) and the cube's spectrum (extract_1d)."""

    geometry: MrsGeometry | None = None
    pointing: TelescopePointing | None = None
    cube: IfuCube | None = None
    spectrum: np.ndarray | None = None
    spectrum_cards: dict[str, Any] | None = None


def _pointing(kw) -> TelescopePointing | None:
    try:
        return TelescopePointing.from_keywords(kw)
    except (KeyError, TypeError, ValueError):
        return None


def assign_wcs(s, a: StepArgs) -> Skip | None:
    """The geometry of the exposure from its references; S_REGION from the pointing."""
    refs = {t: a.refs[t] for t in ("distortion", "specwcs", "regions")}
    try:
        geometry = MrsGeometry.from_trees(refs["distortion"].tree, refs["specwcs"].tree, refs["regions"].tree)
    except GeometryError as exc:
        names = ", ".join(r.filename for r in refs.values())
        raise ReferenceFileError(f"the MRS references ({names}) do not describe an MRS geometry: {exc}") from exc
    if geometry.label.shape != s.sci.shape[-2:]:
        raise InputError(f"{s.name}: an MRS exposure is calibrated full frame ({geometry.label.shape[1]} x "
                         f"{geometry.label.shape[0]}, its REGIONS'), not a window of {s.sci.shape[-1]} x "
                         f"{s.sci.shape[-2]}")
    s.ifu.geometry = geometry
    s.ifu.pointing = _pointing(s.keywords)
    channels = geometry.channels()
    counts = {c: int(np.count_nonzero(geometry.label // 100 == c)) for c in channels}
    if s.ifu.pointing is None:
        a.note("assign_wcs: the exposure has no pointing (RA_REF, DEC_REF, ROLL_REF, V2_REF, V3_REF): "
               "no sky positions, so no cube")
    else:
        sky = v23tosky(s.ifu.pointing)
        s.gwcs = mrs_gwcs(geometry, sky)
        boxes = {c: _field_box(geometry, c) for c in channels}
        widest = max(channels, key=lambda c: (boxes[c][1] - boxes[c][0]) * (boxes[c][3] - boxes[c][2]))
        s.keywords["S_REGION"] = s_region(np.column_stack(_field_corners(geometry, widest, boxes[widest], sky)))
    a.note("assign_wcs: " + ", ".join(f"channel {c}: {sum(1 for n in geometry.slices if n // 100 == c)} slices, "
                                      f"{counts[c]} pixels" for c in channels))
    return None


def _field_box(geometry: MrsGeometry, channel: int) -> tuple[float, float, float, float]:
    """(alpha min, alpha max, beta min, beta max) arcsec of the channel's pixels' footprints."""
    pix = pixel_footprints(geometry, channel)
    a, b = pix.corners[..., 0], pix.corners[..., 1]
    return float(a.min()), float(a.max()), float(b.min()), float(b.max())


def _field_corners(geometry: MrsGeometry, channel: int, box: tuple[float, float, float, float],
                   sky) -> tuple[np.ndarray, np.ndarray]:
    """(ra, dec) degrees of the corners of the channel's field ``box`` (:func:`_field_box`)."""
    a0, a1, b0, b1 = box
    v2, v3 = geometry.to_v2v3[channel](np.array([a0, a1, a1, a0]), np.array([b0, b0, b1, b1]))
    ra, dec = sky(v2, v3)
    return np.mod(np.asarray(ra), 360.0), np.asarray(dec)


def photom(s, a: StepArgs) -> Skip | None:
    """The PHOTOM reference's per-pixel conversion to MJy/sr."""
    ph = a.refs["photom"]
    conversion = ph.get("SCI")
    if conversion is None:
        return Skip(f"PHOTOM reference {ph.filename} has no SCI conversion array (an MRS PHOTOM has); the data stay "
                    "in DN/s", SkipKind.NO_REFERENCE)
    conversion = np.asarray(conversion, np.float64)
    variances = {"VAR_POISSON": s.var_poisson, "VAR_RNOISE": s.var_rnoise}
    if s.var_flat is not None:
        variances["VAR_FLAT"] = s.var_flat
    r = apply_photom(s.sci, s.err, variances, conversion)
    s.sci, s.err = r.sci, r.err
    s.var_poisson, s.var_rnoise = r.variances["VAR_POISSON"], r.variances["VAR_RNOISE"]
    s.var_flat = r.variances.get("VAR_FLAT")
    none = ~np.isfinite(conversion)
    s.dq = np.where(none, s.dq | _DO_NOT_USE, s.dq).astype(np.uint32)
    value = ph.header.get("PHOTMJSR")
    if value is not None:
        s.keywords["PHOTMJSR"] = float(value)
    s.bunit = "MJy/sr"
    a.note(f"photom: per-pixel conversion of {ph.filename}; {int(np.count_nonzero(none))} pixels off the slices "
           "set DO_NOT_USE")
    return None


def _cubepar_row(table: np.ndarray, channel: int, band: str) -> dict[str, float] | None:
    names = {n.upper(): n for n in table.dtype.names or ()}
    for row in table:
        def text(key: str, row=row) -> str:
            value = row[names[key]]
            return (value.decode() if isinstance(value, bytes) else str(value)).strip().upper()

        if text("CHANNEL") == str(channel) and text("BAND") == band.upper():
            return {k: float(row[names[k]]) for k in ("SPAXELSIZE", "SPECTRALSTEP", "WAVEMIN", "WAVEMAX")}
    return None


def cube_build(s, a: StepArgs) -> Skip | None:
    """The cube of the detector's first channel in the exposure's band."""
    geometry, pointing = s.ifu.geometry, s.ifu.pointing
    if geometry is None:
        return Skip("the exposure has no geometry (assign_wcs did not run)", SkipKind.NO_INPUT)
    if pointing is None:
        return Skip("the exposure has no pointing: its pixels have no place on the sky", SkipKind.NO_INPUT)
    if s.bunit != "MJy/sr":
        return Skip(f"the exposure is in {s.bunit}, not surface brightness (photom did not run)", SkipKind.NO_INPUT)
    band = str(s.keywords.get("BAND") or "").strip().upper()
    channel = geometry.channels()[0]
    table = a.refs["cubepar"].tables.get("CUBEPAR")
    row = None if table is None else _cubepar_row(table, channel, band)
    if row is None:
        raise ReferenceFileError(f"CUBEPAR reference {a.refs['cubepar'].filename} has no row for channel {channel} "
                                 f"band {band or '(no BAND)'}")
    params: CubeBuildParams = a.params
    spaxel = params.scalexy or row["SPAXELSIZE"]
    step = params.scalew or row["SPECTRALSTEP"]
    pix = pixel_footprints(geometry, channel)
    ra, dec = pix.sky_corners(geometry.to_v2v3[channel], v23tosky(pointing))
    flux = s.sci[pix.y, pix.x].astype(np.float64)
    var = s.err[pix.y, pix.x].astype(np.float64) ** 2
    valid = (s.dq[pix.y, pix.x] & _DO_NOT_USE) == 0
    grid = cube_grid(ra, dec, row["WAVEMIN"], row["WAVEMAX"], spaxel, step)
    result = build_cube(ra, dec, pix.wl_lo, pix.wl_hi, flux, var, grid, valid=valid)
    s.ifu.cube = IfuCube(channel, band, grid, result)
    used = int(np.count_nonzero(valid & np.isfinite(flux)))
    a.note(f"cube_build: channel {channel} {band}: {grid.nx} x {grid.ny} spaxels of {spaxel:g}\", {grid.nw} "
           f"wavelengths {grid.wl_edges[0]:.4f}-{grid.wl_edges[-1]:.4f} um in steps of {step:g} um, from {used} pixels")
    return None


def cube_spectrum(cube: IfuCube, source_type: str, target: tuple[float, float] | None, rscale: float,
                  annulus: tuple[float, float] | None = (1.5, 2.5)) -> tuple[np.ndarray, dict[str, Any]]:
    """The spectrum of a cube (a ``spectable`` row per wavelength) and where it was taken.

    POINT with a ``target`` (RA, Dec degrees): the spaxels whose centre lies within
    ``rscale`` diffraction FWHMs of it at each wavelength, less the background: the
    sigma-clipped (3 sigma) mean surface brightness of the spaxels between ``annulus``
    times that radius (BACKGROUND; a plane with fewer than 5 such spaxels is not
    background-subtracted and is flagged DO_NOT_USE); otherwise every spaxel with data, no
    background. FLUX (Jy) is the sum of surface brightness times the spaxel's solid angle;
    SURF_BRIGHT the mean (MJy/sr); FLUX_ERROR and SB_ERROR from the cube's ERR, the
    background's error included (the variance columns by kind are not carried through the
    cube and are NaN)."""
    from astropy.stats import sigma_clip

    grid, r = cube.grid, cube.result
    sr = (grid.spaxel / _ARCSEC_PER_RAD) ** 2
    wl = grid.wavelengths
    good = np.isfinite(r.sci) & (r.weight > 0)
    point = source_type == "POINT" and target is not None
    if point:
        x0, y0 = (float(np.asarray(v).ravel()[0]) for v in grid.sky_to_cube(target[0], target[1]))
        yy, xx = np.mgrid[:grid.ny, :grid.nx]
        dist = np.hypot(xx - x0, yy - y0) * grid.spaxel  # arcsec
        radius = rscale * DIFFRACTION_FWHM_PER_UM * wl  # arcsec per plane
        use = good & (dist[None] <= radius[:, None, None])
    else:
        x0 = y0 = math.nan
        use = good
    n = use.sum(axis=(1, 2))
    sci = np.where(use, r.sci, 0.0)
    var = np.where(use, r.var, 0.0)
    total = sci.sum(axis=(1, 2), dtype=np.float64)
    total_var = var.sum(axis=(1, 2), dtype=np.float64)
    bkg = np.zeros(wl.size)
    bkg_var = np.zeros(wl.size)
    no_bkg = np.zeros(wl.size, bool)
    if point and annulus is not None:
        inner, outer = annulus
        ring = good & (dist[None] >= inner * radius[:, None, None]) & (dist[None] <= outer * radius[:, None, None])
        values = np.ma.masked_array(r.sci.reshape(wl.size, -1), mask=~ring.reshape(wl.size, -1))
        clipped = sigma_clip(values, sigma=3.0, axis=1, masked=True)
        kept = (~np.ma.getmaskarray(clipped)).sum(axis=1)
        no_bkg = kept < 5
        bkg = np.where(no_bkg, 0.0, np.ma.filled(clipped.mean(axis=1), 0.0))
        ring_var = np.where(~np.ma.getmaskarray(clipped), r.var.reshape(wl.size, -1), 0.0).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            bkg_var = np.where(no_bkg, 0.0, ring_var / np.maximum(kept, 1) ** 2)
        total = total - n * bkg
        total_var = total_var + n**2 * bkg_var
    table = np.zeros(wl.size, SPECTABLE_DTYPE)
    table["WAVELENGTH"] = wl
    with np.errstate(invalid="ignore", divide="ignore"):
        table["FLUX"] = np.where(n > 0, total * sr * 1e6, np.nan)
        table["FLUX_ERROR"] = np.where(n > 0, np.sqrt(total_var) * sr * 1e6, np.nan)
        table["SURF_BRIGHT"] = np.where(n > 0, total / n, np.nan)
        table["SB_ERROR"] = np.where(n > 0, np.sqrt(total_var) / n, np.nan)
    for name in ("FLUX_VAR_POISSON", "FLUX_VAR_RNOISE", "FLUX_VAR_FLAT", "SB_VAR_POISSON", "SB_VAR_RNOISE",
                 "SB_VAR_FLAT", "BKGD_VAR_POISSON", "BKGD_VAR_RNOISE", "BKGD_VAR_FLAT"):
        table[name] = np.nan
    table["BACKGROUND"] = bkg
    table["BKGD_ERROR"] = np.sqrt(bkg_var)
    table["DQ"] = np.where((n > 0) & ~no_bkg, 0, _DO_NOT_USE)
    table["NPIXELS"] = n
    where = {"SRCTYPE": source_type, "SRCXPOS": None if math.isnan(x0) else x0,
             "SRCYPOS": None if math.isnan(y0) else y0}
    return table, where


def extract_1d(s, a: StepArgs) -> Skip | None:
    """The cube's spectrum (:func:`cube_spectrum`)."""
    if s.ifu.cube is None:
        return Skip("no cube was built (cube_build did not run)", SkipKind.NO_INPUT)
    kind = str(s.keywords.get("SRCTYPE") or "EXTENDED").upper()
    target = None
    if kind == "POINT":
        try:
            target = (float(s.keywords["TARG_RA"]), float(s.keywords["TARG_DEC"]))
        except (KeyError, TypeError, ValueError):
            a.note("extract_1d: a point source without TARG_RA/TARG_DEC: the whole field is summed")
    rscale, annulus = a.params.ifu_rscale, a.params.ifu_bkg_annulus
    table, where = cube_spectrum(s.ifu.cube, kind, target, rscale, annulus)
    s.ifu.spectrum, s.ifu.spectrum_cards = table, where
    how = (f"a circle of {rscale:g} FWHM about the target" if target is not None and kind == "POINT"
           else "every spaxel with data")
    if target is not None and kind == "POINT" and annulus is not None:
        how += f", less the background between {annulus[0]:g} and {annulus[1]:g} radii"
    a.note(f"extract_1d: {kind.lower()} source, {how}; {int(np.count_nonzero(table['NPIXELS']))} of "
           f"{table.size} wavelengths")
    return None


def cube_product(cube: IfuCube, header: dict) -> FitsProduct:
    """The ``_s3d``: an IFUCubeModel with the cube's WCS and photometry keywords."""
    r = cube.result
    product = FitsProduct(model_type="IFUCubeModel", images={
        "SCI": r.sci, "ERR": np.sqrt(r.var).astype(np.float32), "DQ": r.dq, "WMAP": r.weight},
        hdu_keywords={"ERR": {"BUNIT": "MJy/sr"}})
    area_a2 = cube.grid.spaxel**2
    cards = {k: v for k, v in header.items() if not k.startswith(("A_", "B_", "AP_", "BP_", "CTYPE", "CRPIX", "CRVAL",
                                                                 "CDELT", "CUNIT", "PC", "CD", "WCSAXES"))}
    set_cards(product, {**cards, "CHANNEL": str(cube.channel), "BAND": cube.band, "BUNIT": "MJy/sr",
                        "PIXAR_A2": area_a2, "PIXAR_SR": area_a2 / _ARCSEC_PER_RAD**2, **cube.grid.fits_cards()})
    return product
