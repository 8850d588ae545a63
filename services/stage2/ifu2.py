"""calwebb_spec2's steps for MIRI's integral-field unit (``MIR_MRS``) and its products,
declared in :data:`services.stage2.spec2.SPEC2` beside the slit modes' (the steps they
share: bkg_subtract, flat_field, srctype).

- assign_wcs: the exposure's geometry from its DISTORTION, SPECWCS and REGIONS references
  (:class:`shared.spectra.ifu.MrsGeometry`: every pixel of a slice its alpha, beta and
  wavelength, as the public assign_wcs composes them) and, with a pointing, its gwcs
  (:func:`shared.spectra.ifu.mrs_gwcs`, the ``_cal``'s ``meta.wcs``); S_REGION the footprint
  of the detector's larger field;
- fringe: the data divided by the FRINGE reference (the detector's fringe transmission per
  pixel; NaN there counts as 1), ERR by as much and the variances by its square, as the
  public step; the reference's DQ is not carried over (as the public step);
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

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from services.stage2.steps.assign_wcs import s_region
from services.stage2.steps.photom import apply_photom
from shared.datamodels.dqflags import PIXEL
from shared.errors import InputError
from shared.imaging_wcs import TelescopePointing, v23tosky
from shared.pipeline import Skip, SkipKind, StepArgs
from shared.refdata import ReferenceFileError
from shared.spectra.ifu import (
    GeometryError,
    MrsGeometry,
    PixelFootprints,
    SkyFootprints,
    mrs_gwcs,
    pixel_footprints,
)
from shared.spectra.ifu_cube import (
    ExposurePixels,
    IfuCube,
    channel_cube,
    cube_spectrum,
    cubepar_row,
)

__all__ = ["IFU_EXP_TYPES", "IfuState", "assign_wcs", "cube_build", "extract_1d", "fringe", "photom"]

IFU_EXP_TYPES = frozenset({"MIR_MRS"})
_DO_NOT_USE = np.uint32(PIXEL["DO_NOT_USE"])


@dataclass
class IfuState:
    """What the IFU steps add to the exposure's state: its geometry and every channel's
    pixel footprints (assign_wcs), its pointing, the cube (cube_build) and the cube's
    spectrum (extract_1d)."""

    geometry: MrsGeometry | None = None
    footprints: dict[int, PixelFootprints] = field(default_factory=dict)
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
    s.ifu.footprints = {c: pixel_footprints(geometry, c) for c in channels}
    counts = {c: int(np.count_nonzero(geometry.label // 100 == c)) for c in channels}
    if s.ifu.pointing is None:
        a.note("assign_wcs: the exposure has no pointing (RA_REF, DEC_REF, ROLL_REF, V2_REF, V3_REF): "
               "no sky positions, so no cube")
    else:
        sky = v23tosky(s.ifu.pointing)
        s.gwcs = mrs_gwcs(geometry, sky, s.ifu.footprints)
        boxes = {c: _field_box(s.ifu.footprints[c]) for c in channels}
        widest = max(channels, key=lambda c: (boxes[c][1] - boxes[c][0]) * (boxes[c][3] - boxes[c][2]))
        s.keywords["S_REGION"] = s_region(np.column_stack(_field_corners(geometry, widest, boxes[widest], sky)))
    a.note("assign_wcs: " + ", ".join(f"channel {c}: {sum(1 for n in geometry.slices if n // 100 == c)} slices, "
                                      f"{counts[c]} pixels" for c in channels))
    return None


def _field_box(pix: PixelFootprints) -> tuple[float, float, float, float]:
    """(alpha min, alpha max, beta min, beta max) arcsec of a channel's pixels' footprints."""
    a, b = pix.corners[..., 0], pix.corners[..., 1]
    return float(a.min()), float(a.max()), float(b.min()), float(b.max())


def _field_corners(geometry: MrsGeometry, channel: int, box: tuple[float, float, float, float],
                   sky) -> tuple[np.ndarray, np.ndarray]:
    """(ra, dec) degrees of the corners of the channel's field ``box`` (:func:`_field_box`)."""
    a0, a1, b0, b1 = box
    v2, v3 = geometry.to_v2v3[channel](np.array([a0, a1, a1, a0]), np.array([b0, b0, b1, b1]))
    ra, dec = sky(v2, v3)
    return np.mod(np.asarray(ra), 360.0), np.asarray(dec)


def fringe(s, a: StepArgs) -> Skip | None:
    """The data divided by the FRINGE reference's transmission."""
    ref = a.refs["fringe"]
    transmission = ref.get("SCI")
    if transmission is None or np.shape(transmission) != s.sci.shape[-2:]:
        raise ReferenceFileError(f"FRINGE reference {ref.filename}: its SCI is not an image of the exposure's "
                                 f"{s.sci.shape[-1]} x {s.sci.shape[-2]} pixels")
    t = np.asarray(transmission, np.float64)
    t = np.where(np.isfinite(t) & (t != 0), t, 1.0)
    s.sci = (s.sci / t).astype(np.float32)
    s.err = (s.err / t).astype(np.float32)
    s.var_poisson = (s.var_poisson / t**2).astype(np.float32)
    s.var_rnoise = (s.var_rnoise / t**2).astype(np.float32)
    if s.var_flat is not None:
        s.var_flat = (s.var_flat / t**2).astype(np.float32)
    a.note(f"fringe: divided by {ref.filename} (transmission {float(t.min()):.3f}-{float(t.max()):.3f})")
    return None


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
    row = None if table is None else cubepar_row(table, channel, band)
    if row is None:
        raise ReferenceFileError(f"CUBEPAR reference {a.refs['cubepar'].filename} has no row for channel {channel} "
                                 f"band {band or '(no BAND)'}")
    pix = s.ifu.footprints[channel]
    ra, dec = pix.sky_corners(geometry.to_v2v3[channel], v23tosky(pointing))
    pixels = ExposurePixels.of(SkyFootprints(pix, ra, dec), s.sci, s.err, s.dq)
    s.ifu.cube = cube = channel_cube([pixels], channel, band, row, a.params)
    grid = cube.grid
    used = int(np.count_nonzero(pixels.valid & np.isfinite(pixels.flux)))
    a.note(f"cube_build: channel {channel} {band}: {grid.nx} x {grid.ny} spaxels of {grid.spaxel:g}\", {grid.nw} "
           f"wavelengths {grid.wl_edges[0]:.4f}-{grid.wl_edges[-1]:.4f} um in steps of "
           f"{grid.wl_edges[1] - grid.wl_edges[0]:g} um, from {used} pixels")
    return None


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
