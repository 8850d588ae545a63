"""Reference files of the slit spectrographs (:mod:`services.simulator.spectrograph`): the
facts of each model, carried to the pipeline. Written beside the detector references
(PEDIGREE SIMULATION, USEAFTER 2022-01-01, byte-identical on rewrite); 1-based full-frame
pixels as in the public files.

MIRI LRS (:func:`write_lrs_references`, public formats, ``jwst_miri_<type>_lrs-fixedslit_sim.fits``):

- SPECWCS (``MiriLRSSpecwcsModel``, FITS, table WAVETABLE, IMX/IMY): per row of the
  spectrum (wavelength increasing), the trace centre and the corners of the element
  relative to (IMX, IMY): the slit's length along x, the row along y (the public pipeline
  bounds the spectrum by them); the slit's corners on the sky (V2VERT1..4, V3VERT1..4).
- PHOTOM (``MirLrsPhotomModel``): PHOTMJSR and RELRESPONSE(lambda) such that a flat-fielded
  rate (DN/s) times ``PHOTMJSR * RELRESPONSE`` is MJy/sr per nominal pixel, calibrated for a
  point source with no slit loss: ``sum over the slit's pixels of SB * PIXAR_SR * 1e6`` is
  ``f_nu`` in Jy.
- PATHLOSS (``MirLrsPathlossModel``): per wavelength, the correction (1 / the fraction of
  a point source's light the slit passes; the public LRS correction is multiplicative) as a
  function of its position in the slit (across x along, pixels from the slit centre: the
  WCS of the PATHLOSS extension).

The SPECWCS carries both public reference points: IMX/IMY (``x_ref``/``y_ref``) the slit's,
IMXSLTL/IMYSLTL (``x_ref_slitless``/``y_ref_slitless``) the slitless mode's, (38.5, 829.0).

MIRI LRS slitless (:func:`write_lrs_slitless_references`, MIR_LRS-SLITLESS,
``jwst_miri_<type>_lrs-slitless_sim.fits``), selected by EXP_TYPE as CRDS selects them:

- SPECWCS (``MiriLRSSpecwcsModel``): the slit's file with EXP_TYPE MIR_LRS-SLITLESS: the
  same table (the prism's trace and wavelengths relative to the reference point, which the
  public pipeline puts at IMXSLTL/IMYSLTL for this mode, and cuts to the SLITLESSPRISM
  window through SUBSTRT1/2).
- PHOTOM (``MirLrsPhotomModel``): one row, filter P750L, subarray SLITLESSPRISM (the public
  step matches FILTER and SUBARRAY), in the slit's convention: with no slit there is no
  slit loss to correct, so the flat-fielded rate times PHOTMJSR x RELRESPONSE summed over
  a row's pixels times PIXAR_SR x 1e6 is the source's f_nu in Jy.
- No PATHLOSS (no slit). The FLAT of P750L (full frame, SUBARRAY GENERIC) serves both
  modes: the pipeline cuts it to the window; the DISTORTION lists MIR_LRS-SLITLESS.

NIRSpec fixed slits with PRISM/CLEAR (:func:`write_nirspec_fs_references`, NRS1,
``jwst_nirspec_<type>_nrs1_fixedslit_sim.fits``), every fixed slit in each file:

- SPECWCS, this system's own format (the public pipeline uses an optical model instead),
  in the LRS table's layout. PRIMARY header: TELESCOP, INSTRUME, DETECTOR, EXP_TYPE
  (NRS_FIXEDSLIT), P_EXP_TY (the public FITS keyword of P_EXPTYPE), FILTER, GRATING, REFTYPE = SPECWCS, DISPAXIS = 1 and the
  common reference keywords (USEAFTER, PEDIGREE, AUTHOR, DESCRIP, ...). One BINTABLE per
  fixed slit, EXTNAME the slit's name (S200A1, S200A2, S400A1, S1600A1, S200B1), columns
  ``x_center, y_center, wavelength, x0, y0, x1, y1, x2, y2, x3, y3`` (float64; pixels and
  um), one row per detector column of the spectrum (wavelength increasing with x):
  ``x_center`` the column's offset and ``y_center`` the trace's, both relative to the
  slit's reference pixel; the corners bound the slit's image on that column: the column
  along x (``x_center -/+ 0.5``), the slit's length along y (``y_center -/+ length/2``),
  in the LRS's order (0 upper left, 1 upper right, 2 lower right, 3 lower left). Extension
  header: IMX, IMY (1-based full-frame pixel of the reference point: the slit centre's
  image at the prism's reference wavelength, 2 um), V2VERT1..4 / V3VERT1..4 (the slit's
  corners on the sky, arcsec, counter-clockwise from the lower left as the LRS's, through
  NRS1's DISTORTION), and SLITWID / SLITLEN (arcsec), APERNAME, PIXSCALE (arcsec/px).
- PHOTOM (``NrsFsPhotomModel``): one phot_table row per (filter, grating, slit) = (CLEAR,
  PRISM, each slit): PHOTMJ, UNCERTAINTY (1 %), NELEM and WAVELENGTH (um) / RELRESPONSE /
  RELUNCERTAINTY over the slit's columns (padded with zeros past NELEM), RELRESPONSE 1 at
  the throughput's peak (3.2 um). Convention: for a point source, the flat-fielded rate
  (DN/s per pixel) times ``PHOTMJ * RELRESPONSE(lambda)`` is MJy per pixel; summed over
  the slit's pixels of a column it is the source's f_nu in MJy before the slit loss, i.e.
  once the path loss is corrected (the public NIRSpec point-source unit, MJy).
- PATHLOSS (``PathlossModel``, the public format): one aperture per fixed slit (NAME the
  slit); POINTSOURCE (wavelength, y, x) the fraction of a point source's light the slit
  passes, which the public pipeline divides by, at the source's place in the slit in the
  public slit units: x across the slit (SRCXPOS, -0.5 to 0.5 of its width, 21 samples),
  y along it (SRCYPOS, -0.5 to 0.5 of its length, 3 samples: no loss along the slit),
  wavelength 0.55-5.45 um in steps of 0.01 um, given in metres (the WCS CRVAL3/CDELT3);
  UNIFORM 1 (a uniform source is calibrated as it comes through the slit).

NIRSpec bright-object time series (:func:`write_nirspec_bots_references`, NRS_BRIGHTOBJ,
G395M behind F290LP through S1600A1 on NRS1, ``jwst_nirspec_<type>_nrs1_brightobj_sim.fits``),
the fixed slits' formats for the one slit, selected by EXP_TYPE NRS_BRIGHTOBJ (so a
bright-object exposure gets these and a fixed-slit one, NRS_FIXEDSLIT, the prism's):

- SPECWCS: PRIMARY EXP_TYPE / P_EXP_TY NRS_BRIGHTOBJ, FILTER F290LP, GRATING G395M,
  DISPAXIS 1; one BINTABLE, EXTNAME S1600A1, per column of the 2.87-5.10 um spectrum
  (IMX, IMY the slit centre's image at the grating's reference wavelength, 4.2 um;
  SLITWID, SLITLEN 1.6", V2VERT/V3VERT, APERNAME NRS_S1600A1_SLIT).
- PHOTOM (``NrsFsPhotomModel``): the row (F290LP, G395M, S1600A1), in the fixed slits'
  convention (RELRESPONSE 1 at the throughput's peak, 4.0 um).
- PATHLOSS (``PathlossModel``): the S1600A1 aperture (its transmission of a point source
  at its place, 0.55-5.45 um: the grating's band inside).

NIRSpec MOS with PRISM/CLEAR on NRS1 and NRS2 (:func:`write_nirspec_mos_references`, per
detector ``jwst_nirspec_<type>_<detector>_msaspec_sim.fits``; one MSAOPER for the MSA,
``jwst_nirspec_msaoper_sim.json``):

- SPECWCS, this system's own format (as the fixed slits'): the PRIMARY header of the
  fixed slits' file with EXP_TYPE = NRS_MSASPEC, plus the MSA geometry
  (:mod:`services.simulator.spectrograph`): MSAX0, ROWPITCH, COLPITCH (pixels) and the
  QnY0 of the detector's quadrants (1-based; NRS1's file Q1Y0 and Q3Y0, NRS2's Q2Y0 and
  Q4Y0: a quadrant without its card is not on this detector), SHUTWID (0.20
  arcsec, the open width, along x), SHUTPTCH (0.53 arcsec, the pitch along the slitlet),
  PIXSCALE. A shutter (q, row r, column c) has its reference point at ``IMX = MSAX0 +
  ROWPITCH (r - 1)``, ``IMY = Q<q>Y0 + COLPITCH (c - 1)``; a slitlet's is the mean of its
  shutters'. One BINTABLE, EXTNAME SHUTTER: the trace of one shutter relative to its
  reference point (IMX - 1, IMY - 1) in the fixed slits' table layout, one row per column
  of the spectrum (offsets -83 to +376, wavelength increasing), the corners over one
  shutter pitch along y (a slitlet of n shutters spans n pitches about its own reference
  point).
- MSAOPER (JSON, the public layout the msaflagopen step reads; there is no public data
  model for it): ``title, reftype, pedigree, author, instrument, exp_type, telescope,
  useafter, descrip, history`` and ``msaoper``, one entry per failed shutter: ``Q``
  (quadrant 1-4), ``x`` (the shutter's row, 1-365: SHUTTER_INFO's shutter_row, along the
  dispersion), ``y`` (its column, 1-171: shutter_column, along the slitlets; the public
  shutter id is ``x + (y - 1) * 365``), ``state``, ``TA state``, ``Internal state``
  ("open" for a failed-open shutter, "closed" for a failed-closed one: the failed-open
  ones first, then the failed-closed ones) and ``Vignetted`` ("no").
- PHOTOM (``NrsMosPhotomModel``): one phot_table row (CLEAR, PRISM), PHOTMJ and
  RELRESPONSE over a shutter's columns, in the fixed slits' convention (point source: the
  flat-fielded rate times PHOTMJ x RELRESPONSE is MJy per pixel, summed over the
  slitlet's rows the source's f_nu before the slit loss).
- PATHLOSS (``PathlossModel``): the apertures the public pathloss step picks for a MOS
  slitlet by its shutter state: MOS1X1 (``shutters`` 1, a slitlet whose primary
  shutter has both neighbours closed) and MOS1X3 (``shutters`` 3, every other; a
  two-shutter slitlet, there being no public two-shutter aperture, is corrected with its
  upper or lower part: SRCYPOS moved by one shutter, as the public step does). POINTSOURCE
  (wavelength, y, x) the fraction of a point source's light the open width passes at its
  place in the public MSA units (SRCXPOS, -0.5 to 0.5 of the 0.27" pitch across the
  shutter; SRCYPOS along the slitlet, -0.5 to 0.5 of the 0.53" pitch for MOS1X1, -1.5 to
  1.5 for MOS1X3, the middle shutter's centre at 0: no loss along it, the bars are not
  modelled), 0.55-5.45 um in metres; UNIFORM 1.

NIRISS SOSS (:func:`write_niriss_soss_references`, NIS_SOSS, the GR700XD grism behind
CLEAR on NIS read in SUBSTRIP256, ``jwst_niriss_<type>_soss_sim.fits``), the public
formats, both spectral orders in each file:

- SPECTRACE (``SpecTraceModel``): PRIMARY REFTYPE SPECTRACE, INSTRUME NIRISS, DETECTOR NIS,
  EXP_TYPE NIS_SOSS, FILTER CLEAR, PUPIL GR700XD, SUBARRAY SUBSTRIP256 with its SUBSTRT1/2
  (1, 1793) and SUBSIZE1/2 (2048, 256) and the common reference keywords; one BINTABLE
  per order, EXTNAME ORDER, EXTVER and the card ORDER the order's number (1, 2), columns
  (float64) WAVELENGTH (um), X (0-based column of the SUBSTRIP256 window, one row per
  column of the order's span, increasing), Y (0-based window row of the trace centre),
  THROUGHPUT (the order's total throughput at that wavelength) and TILT (0: the simulated
  traces are not tilted).
- PHOTOM (``NisSossPhotomModel``): one phot_table row per order (filter CLEAR, pupil
  GR700XD, order 1 and 2): PHOTMJ, UNCERTAINTY (1 %), NELEM and WAVELENGTH (um,
  increasing) / RELRESPONSE / RELUNCERTAINTY over the order's columns and one more at each end (padded with zeros
  past NELEM), RELRESPONSE 1 at the order's throughput peak (1.4 um, 0.85 um).
  Convention: a point source's flat-fielded rate (DN/s) summed over the whole
  cross-dispersion profile of a column, times ``PHOTMJ * RELRESPONSE(lambda)``, is its
  f_nu in MJy: ``PHOTMJ * RELRESPONSE = 1e-6 g0 / electrons_per_jy`` of that order's
  column (g0 the detector's mean gain, as the FLAT's), as the public pipeline applies it
  to an extracted SOSS spectrum.

NIRCam's grism time series (:func:`write_nircam_grism_references`, NRC_TSGRISM, GRISMR
behind F444W on NRCALONG, ``jwst_nircam_<type>_nrcalong_tsgrism_sim.<asdf|fits>``), the
public formats, selected by EXP_TYPE through P_EXPTYPE ``NRC_TSGRISM|`` (the wide-field
mode, NRC_WFSS, has its own: :mod:`.wfss_refs`) and, the SPECWCS, by FILTER and PUPIL:

- SPECWCS (``NIRCAMGrismModel``, ASDF as CRDS's NIRCam grism files): meta REFTYPE
  specwcs, INSTRUME NIRCAM, DETECTOR NRCALONG, MODULE A, FILTER F444W, PUPIL GRISMR,
  EXP_TYPE NRC_TSGRISM, input and output units um, and the common reference keywords;
  ``orders`` [1] and one astropy model per order in each of ``displ`` (t -> wavelength
  um), ``dispx``, ``dispy`` ((x0, y0, t) -> the trace's column and row offsets dx, dy from
  the source's undispersed 0-based full-frame pixel (x0, y0)), ``invdispl`` (wavelength
  -> t), ``invdispx`` ((x0, y0, dx) -> t) and ``invdispy`` ((x0, y0, dy) -> t)
  (:func:`grism_dispersion_models`). t runs from 0 at the spectrum's first column (780,
  3.8806 um, for a source at the reference point) to 1 at its last (1875, 4.9794 um):
  ``lambda = 3.8805835 + 1.0988325 t``, ``dx = -119 + 1095 t`` (the law is linear, so the
  inverses are polynomials too and every model is exact); ``dy = t0 + t1 u + t2 u^2`` with
  ``u = x0 + dx - (IMX - 1)`` the column's offset from the reference point (the trace is
  a curve on the detector that the source's place moves as a whole, as the simulator
  renders it), and its inverse the root on the span's branch, ``u = 2 w / (t1 + sqrt(t1^2
  + 4 t2 w))``, ``w = dy - t0``. All are compositions of Mapping, Shift, Scale, Const1D
  and Polynomial1D with arithmetic operators, which the public ASDF transforms store.
- PHOTOM (``NrcWfssPhotomModel``): one phot_table row, filter F444W, pupil GRISMR, order
  1: PHOTMJSR at the throughput's peak (4.4 um), UNCERTAINTY (1 %), NELEM and WAVELENGTH
  (um, increasing) / RELRESPONSE (1 at the peak) / RELUNCERTAINTY over the spectrum's
  columns and one more at each end; PIXAR_SR, PIXAR_A2 nominal. In the public grisms'
  unit, MJy um / (sr DN/s), per um of spectrum: a point source's flat-fielded rate (DN/s)
  times ``PHOTMJSR * RELRESPONSE(lambda)`` over the column's dispersion (um per pixel) is
  MJy/sr, summed over a column's pixels times PIXAR_SR x 1e6 the source's f_nu in Jy
  (``PHOTMJSR * RELRESPONSE * PIXAR_SR / dispersion = 1e-6 g0 / electrons_per_jy`` of the
  column, g0 the FLAT's mean gain).

FLAT (CLEAR/PRISM; F290LP/G395M for the bright objects) and DISTORTION of NRS1 (and of
NRS2 for the MOS), NIS's FLAT of CLEAR/GR700XD and NRCALONG's of F444W/GRISMR, are
written with the imaging ones (:mod:`services.simulator.optical_refs`; the DARK of
SUBSTRIP256 and of SUBGRISM64 with the detector's, :mod:`.reffiles`);
WAVELENGTHRANGE (the public ASDF, one file for every slit mode and both detectors) with
each set (:mod:`services.simulator.wavelengthrange_ref`).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.io import fits
from astropy.modeling.models import Const1D, Mapping, Polynomial1D, Scale, Shift
from stdatamodels.jwst import datamodels as dm

from shared.instruments import detector, subarray

from .distortion import detector_distortion_model
from .reffiles import AUTHOR, PEDIGREE, USEAFTER, ReferenceFile, _common, _save
from .spectrograph import (
    COLUMN_PITCH,
    LRS,
    LRS_EXP_TYPE,
    LRS_SLITLESS,
    LRS_SLITLESS_EXP_TYPE,
    MSA_QUADRANTS,
    MSA_SHUTTER_OPEN,
    MSA_SHUTTER_PITCH,
    MSA_X0,
    MSA_Y0,
    NIRCAM_GRISM_TSO,
    NIRISS_SOSS,
    NIRSPEC_BOTS,
    NIRSPEC_FS,
    NIS_SOSS_EXP_TYPE,
    NRC_TSGRISM_EXP_TYPE,
    NRS_BOTS_EXP_TYPE,
    NRS_FS_EXP_TYPE,
    NRS_MOS_EXP_TYPE,
    ROW_PITCH,
    GratingDispersion,
    SlitSpectrograph,
    msa_slitlet,
    spectral_orders,
)
from .wavelengthrange_ref import write_nirspec_wavelengthrange

__all__ = ["MSAOPER_FILENAME", "grism_dispersion_models", "nircam_grism_filename", "nircam_grism_photom_table",
           "niriss_soss_filename", "nirspec_bots_filename", "nirspec_fs_filename", "nirspec_mos_filename",
           "shutter_trace_model", "slit_trace_table", "slit_vertices", "soss_photom_table", "soss_trace_table",
           "write_lrs_references", "write_lrs_slitless_references", "write_nircam_grism_references",
           "write_niriss_soss_references", "write_nirspec_bots_references", "write_nirspec_fs_references",
           "write_nirspec_mos_references", "write_slit_references"]

MSAOPER_FILENAME = "jwst_nirspec_msaoper_sim.json"

_PATHLOSS_OFFSETS_PX = np.arange(-3.0, 3.01, 0.5)  # LRS: across the slit (rows): wider than its 4.6 px
_NRS_PATHLOSS_ACROSS = np.linspace(-0.5, 0.5, 21)  # fraction of the slit width
_NRS_PATHLOSS_ALONG = np.linspace(-0.5, 0.5, 3)  # fraction of the slit length
_NRS_PATHLOSS_WAVELENGTH = np.arange(0.55, 5.4501, 0.01)  # um
_MOS_PATHLOSS_ACROSS = np.linspace(-0.5, 0.5, 21)  # SRCXPOS: fraction of the row pitch
_MOS_APERTURES = (("MOS1X1", 1), ("MOS1X3", 3))  # (NAME, shutters) the public step chooses between
_TABLE_COLUMNS = ("x_center", "y_center", "wavelength", "x0", "y0", "x1", "y1", "x2", "y2", "x3", "y3")


def slit_trace_table(model: SlitSpectrograph) -> np.ndarray:
    """The SPECWCS table of a slit: one element per spectral pixel of its spectrum,
    wavelength increasing; positions relative to the reference pixel (IMX - 1, IMY - 1)."""
    s = model.pixels()
    x, y = model.to_detector(s, model.trace(s))
    xc, yc = x - (model.imx - 1.0), y - (model.imy - 1.0)
    hx, hy = model.to_detector(0.5, 0.5 * model.slit_length_px)  # half the element: a pixel by the slit's length
    table = np.zeros(s.size, dtype=[(c, "<f8") for c in _TABLE_COLUMNS])
    table["x_center"], table["y_center"], table["wavelength"] = xc, yc, model.wavelength(s)
    table["x0"], table["y0"] = xc - hx, yc + hy  # upper left
    table["x1"], table["y1"] = xc + hx, yc + hy  # upper right
    table["x2"], table["y2"] = xc + hx, yc - hy  # lower right
    table["x3"], table["y3"] = xc - hx, yc - hy  # lower left
    return table[np.argsort(table["wavelength"])]


def slit_vertices(model: SlitSpectrograph) -> dict[str, float]:
    """The slit's corners on the sky (V2, V3 arcsec) through its detector's distortion,
    counter-clockwise from the lower left as the public files list them:
    ``{"v2_vert1": ..., "v3_vert4": ...}``."""
    hx, hy = model.to_detector(0.5 * model.slit_width_px, 0.5 * model.slit_length_px)
    cx, cy = model.imx - 1.0, model.imy - 1.0
    corners_x = np.array([cx - hx, cx + hx, cx + hx, cx - hx])
    corners_y = np.array([cy - hy, cy - hy, cy + hy, cy + hy])
    v2, v3 = detector_distortion_model(detector(model.detector))(corners_x, corners_y)
    return {f"v2_vert{i + 1}": float(v2[i]) for i in range(4)} | {f"v3_vert{i + 1}": float(v3[i]) for i in range(4)}


def _lrs_filename(reftype: str) -> str:
    return f"jwst_miri_{reftype}_lrs-fixedslit_sim.fits"


def _lrs_slitless_filename(reftype: str) -> str:
    return f"jwst_miri_{reftype}_lrs-slitless_sim.fits"


def nirspec_fs_filename(reftype: str, detector_name: str = "NRS1") -> str:
    """``jwst_nirspec_<reftype>_<detector>_fixedslit_sim.fits``."""
    return f"jwst_nirspec_{reftype}_{detector_name}_fixedslit_sim.fits".lower()


def _slit_common(ref, reftype: str, detector_model, description: str, exp_type: str) -> None:
    _common(ref, reftype, detector_model, description, None, window=False)
    ref.meta.exposure.type = exp_type
    ref.meta.exposure.p_exptype = f"{exp_type}|"


def _lrs_specwcs(model: SlitSpectrograph, detector_model, path: Path) -> Path:
    """The LRS SPECWCS for ``model`` (the slit or the slitless mode: its EXP_TYPE): the
    trace table relative to the reference point, both reference points (IMX/IMY the slit's,
    IMXSLTL/IMYSLTL the slitless one's, as the public file), the slit's corners."""
    what = "slitless prism" if model.slitless else "slit"
    specwcs = dm.MiriLRSSpecwcsModel(wavetable=slit_trace_table(model), x_ref=LRS.imx, y_ref=LRS.imy,
                                     x_ref_slitless=LRS_SLITLESS.imx, y_ref_slitless=LRS_SLITLESS.imy,
                                     **slit_vertices(LRS))
    _slit_common(specwcs, "SPECWCS", detector_model, f"Simulated MIRI LRS {what}: trace and wavelengths per row",
                 model.exp_type)
    specwcs.meta.instrument.filter = model.filter
    return _save(specwcs, path)


def _lrs_photom(model: SlitSpectrograph, detector_model, path: Path) -> Path:
    """The LRS PHOTOM for ``model``: one phot_table row (P750L, its window: FULL for the
    slit, SLITLESSPRISM slitless), PHOTMJSR and RELRESPONSE against wavelength (1 at the
    throughput's peak) for a point source without slit loss (module docstring)."""
    from .optical_refs import mean_gain

    waves, mjy = model.response(mean_gain(detector_model))
    mjysr = mjy / model.pixel_area_sr
    value = float(np.interp(model.throughput_centre, waves, mjysr))
    relresp = mjysr / value
    n = waves.size
    photom_table = np.zeros(1, dtype=[("filter", "S12"), ("subarray", "S17"), ("photmjsr", "<f4"),
                                      ("uncertainty", "<f4"), ("nelem", "<i2"), ("wavelength", "<f4", (n,)),
                                      ("relresponse", "<f4", (n,)), ("reluncertainty", "<f4", (n,))])
    photom_table[0] = (model.filter, model.subarrays[0], value, 0.01 * value, n, waves, relresp, 0.01 * relresp)
    photom = dm.MirLrsPhotomModel(phot_table=photom_table)
    what = "slitless prism" if model.slitless else "slit"
    _slit_common(photom, "PHOTOM", detector_model, f"Simulated MIRI LRS {what}: point-source flux calibration",
                 model.exp_type)
    photom.meta.photometry.pixelarea_steradians = model.pixel_area_sr
    photom.meta.photometry.pixelarea_arcsecsq = model.pixel_scale**2
    return _save(photom, path)


def write_lrs_slitless_references(model: SlitSpectrograph, detector_model, out_dir: Path) -> list[ReferenceFile]:
    """SPECWCS and PHOTOM of the LRS slitless mode (MIR_LRS-SLITLESS, no slit: no
    PATHLOSS) for the detector of ``detector_model`` (MIRIMAGE), in the public formats
    (module docstring)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = detector_model.detector.name
    if name != model.detector or not model.slitless:
        raise ValueError(f"the LRS slitless mode images on {model.detector}, not {name}")
    return [ReferenceFile("SPECWCS", name, _lrs_specwcs(model, detector_model,
                                                        out_dir / _lrs_slitless_filename("specwcs")), "GENERIC"),
            ReferenceFile("PHOTOM", name, _lrs_photom(model, detector_model,
                                                      out_dir / _lrs_slitless_filename("photom")), "GENERIC")]


def write_lrs_references(model: SlitSpectrograph, detector_model, out_dir: Path) -> list[ReferenceFile]:
    """SPECWCS, PHOTOM and PATHLOSS of the LRS for the detector of ``detector_model``
    (MIRIMAGE), in the public formats (see the module docstring)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = detector_model.detector.name
    if name != model.detector:
        raise ValueError(f"the LRS images on {model.detector}, not {name}")

    table = slit_trace_table(model)
    written = [ReferenceFile("SPECWCS", name, _lrs_specwcs(model, detector_model, out_dir / _lrs_filename("specwcs")),
                             "GENERIC"),
               ReferenceFile("PHOTOM", name, _lrs_photom(model, detector_model, out_dir / _lrs_filename("photom")),
                             "GENERIC")]

    # PATHLOSS: the correction (1 / the slit's transmission) against wavelength (decreasing,
    # as the public files) and the source's offset from the slit centre in pixels: axis 1
    # along the slit (no loss there), axis 2 across it.
    wl_desc = table["wavelength"][::-1]
    across = _PATHLOSS_OFFSETS_PX
    along = np.array([-20.0, 20.0])
    passed = model.slit_transmission(wl_desc[:, None], across[None, :] * model.pixel_scale)
    correction = np.repeat((1.0 / passed)[:, :, None], along.size, axis=2).astype(np.float32)
    pathloss_table = np.zeros(wl_desc.size, dtype=[("wavelength", "<f4"), ("pathloss", "<f4", correction.shape[1:]),
                                                   ("pathloss_err", "<f4", correction.shape[1:])])
    pathloss_table["wavelength"] = wl_desc
    pathloss_table["pathloss"] = correction
    pathloss_table["pathloss_err"] = 0.01 * correction
    pathloss = dm.MirLrsPathlossModel(pathloss_table=pathloss_table)
    _slit_common(pathloss, "PATHLOSS", detector_model, "Simulated MIRI LRS slit: point-source slit losses",
                 LRS_EXP_TYPE)
    info = pathloss.meta.wcsinfo
    info.wcsaxes = 2
    info.crpix1, info.crval1, info.cdelt1 = 1.0, float(along[0]), float(along[1] - along[0])
    info.crpix2, info.crval2, info.cdelt2 = 1.0, float(across[0]), float(across[1] - across[0])
    written.append(ReferenceFile("PATHLOSS", name, _save(pathloss, out_dir / _lrs_filename("pathloss")), "GENERIC"))
    return written


def _nirspec_specwcs_primary(model: SlitSpectrograph, description: str) -> fits.PrimaryHDU:
    """The PRIMARY HDU of a NIRSpec SPECWCS of this system's format (module docstring)."""
    primary = fits.PrimaryHDU()
    h = primary.header
    for key, value, comment in (
        ("TELESCOP", "JWST", "telescope"), ("ORIGIN", "jwst-dms", "institution"),
        ("INSTRUME", "NIRSPEC", "instrument"), ("DETECTOR", model.detector, "detector"),
        ("EXP_TYPE", model.exp_type, "exposure type"), ("P_EXP_TY", f"{model.exp_type}|", "exposure types (p_exptype)"),
        ("FILTER", model.filter, "filter wheel element"), ("GRATING", model.grating, "grating wheel element"),
        ("REFTYPE", "SPECWCS", "reference type"), ("DISPAXIS", 1, "dispersion along x (columns)"),
        ("SUBARRAY", "GENERIC", "applies to every window"),
        ("USEAFTER", USEAFTER, "use after"), ("PEDIGREE", PEDIGREE, "pedigree"), ("AUTHOR", AUTHOR, "author"),
        ("DESCRIP", description, ""),
        ("DATE", USEAFTER, "USEAFTER: the same model, the same bytes"),
    ):
        h[key] = (value, comment)
    return primary


def _trace_hdu(model: SlitSpectrograph, name: str) -> fits.BinTableHDU:
    table = slit_trace_table(model)
    return fits.BinTableHDU.from_columns(
        [fits.Column(name=c, format="D", unit="um" if c == "wavelength" else "pixel", array=table[c])
         for c in _TABLE_COLUMNS], name=name)


def _nirspec_specwcs(models: list[SlitSpectrograph], detector_model, path: Path,
                     description: str = "Simulated NIRSpec fixed slits PRISM/CLEAR: trace per column") -> Path:
    primary = _nirspec_specwcs_primary(models[0], description)
    h = primary.header
    h.add_comment("One BINTABLE per fixed slit (EXTNAME the slit): per detector column of its spectrum,")
    h.add_comment("x_center/y_center (column and trace offsets from IMX-1, IMY-1, pixels), wavelength (um)")
    h.add_comment("and the corners x0..y3 of the slit's image on the column (upper left, upper right,")
    h.add_comment("lower right, lower left).")
    hdus = [primary]
    for model in models:
        hdu = _trace_hdu(model, model.slit)
        e = hdu.header
        reference = f"{float(model.wavelength(model.s_ref)):g} um"  # the law's reference wavelength
        e["IMX"] = (model.imx, f"1-based column of the slit centre at {reference}")
        e["IMY"] = (model.imy, f"1-based row of the slit centre at {reference}")
        for key, value in slit_vertices(model).items():
            e[key.replace("_", "").upper()] = (value, "[arcsec] slit corner on the sky")
        e["SLITWID"] = (model.slit_width, "[arcsec] slit width (along x)")
        e["SLITLEN"] = (model.slit_length, "[arcsec] slit length (along y)")
        e["PIXSCALE"] = (model.pixel_scale, "[arcsec/pixel] along the slit")
        e["APERNAME"] = (model.aperture, "aperture name")
        hdus.append(hdu)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fits.HDUList(hdus).writeto(path, overwrite=True)
    return path


def _photom_table(models: list[SlitSpectrograph], detector_model, by_slit: bool) -> np.ndarray:
    """phot_table rows (filter, grating[, slit]) of the NIRSpec apertures ``models``: PHOTMJ
    at the throughput's peak and RELRESPONSE over each one's columns (module docstring)."""
    from .optical_refs import mean_gain

    g0 = mean_gain(detector_model)
    curves = [m.response(g0) for m in models]
    n = max(w.size for w, _ in curves)
    slit = [("slit", "S15")] if by_slit else []
    table = np.zeros(len(models), dtype=[
        ("filter", "S12"), ("grating", "S15"), *slit, ("photmj", "<f4"), ("uncertainty", "<f4"),
        ("nelem", "<i2"), ("wavelength", "<f4", (n,)), ("relresponse", "<f4", (n,)),
        ("reluncertainty", "<f4", (n,))])
    for k, (model, (waves, mjy)) in enumerate(zip(models, curves, strict=True)):
        value = float(np.interp(model.throughput_centre, waves, mjy))
        pad = np.zeros(n - waves.size)
        rel = np.concatenate([mjy / value, pad])
        name = (model.slit,) if by_slit else ()
        table[k] = (model.filter, model.grating, *name, value, 0.01 * value, waves.size,
                    np.concatenate([waves, pad]), rel, 0.01 * rel)
    return table


def _nirspec_photom(models: list[SlitSpectrograph], detector_model, path: Path,
                    what: str = "Simulated NIRSpec fixed slits") -> Path:
    photom = dm.NrsFsPhotomModel(phot_table=_photom_table(models, detector_model, by_slit=True))
    _slit_common(photom, "PHOTOM", detector_model, f"{what}: point-source flux calibration", models[0].exp_type)
    photom.meta.photometry.pixelarea_steradians = models[0].pixel_area_sr
    photom.meta.photometry.pixelarea_arcsecsq = models[0].pixel_scale**2
    return _save(photom, path)


def _pathloss_aperture(model: SlitSpectrograph, name: str, shutters: int, across: np.ndarray,
                       across_unit: float, along: np.ndarray) -> dict:
    """A PathlossModel aperture: POINTSOURCE (wavelength, y, x) the slit's transmission of a
    point source at ``across * across_unit`` arcsec from its centre line (no loss along
    it, ``along`` the y samples), UNIFORM 1; wavelengths in metres."""
    wl = _NRS_PATHLOSS_WAVELENGTH
    passed = model.slit_transmission(wl[:, None], across[None, :] * across_unit)  # (nwave, nx)
    data = np.repeat(passed[:, None, :], along.size, axis=1).astype(np.float32)  # (nwave, ny, nx)
    return {
        "name": name, "shutters": shutters,
        "pointsource_data": data, "pointsource_err": np.zeros_like(data),
        "pointsource_wcs": {"crpix1": 1.0, "crval1": float(across[0]), "cdelt1": float(across[1] - across[0]),
                            "crpix2": 1.0, "crval2": float(along[0]), "cdelt2": float(along[1] - along[0]),
                            "crpix3": 1.0, "crval3": float(wl[0]) * 1e-6,
                            "cdelt3": float(wl[1] - wl[0]) * 1e-6},
        "uniform_data": np.ones(wl.size, np.float32), "uniform_err": np.zeros(wl.size, np.float32),
        "uniform_wcs": {"crpix1": 1.0, "crval1": float(wl[0]) * 1e-6, "cdelt1": float(wl[1] - wl[0]) * 1e-6},
    }


def _nirspec_pathloss(models: list[SlitSpectrograph], detector_model, path: Path,
                      what: str = "Simulated NIRSpec fixed slits") -> Path:
    pathloss = dm.PathlossModel()
    for model in models:
        pathloss.apertures.append(_pathloss_aperture(model, model.slit, 0, _NRS_PATHLOSS_ACROSS, model.slit_width,
                                                     _NRS_PATHLOSS_ALONG))
    _slit_common(pathloss, "PATHLOSS", detector_model, f"{what}: point-source slit losses", models[0].exp_type)
    return _save(pathloss, path)


def write_nirspec_fs_references(detector_model, out_dir: Path) -> list[ReferenceFile]:
    """SPECWCS, PHOTOM and PATHLOSS of every NIRSpec fixed slit (PRISM/CLEAR) for NRS1
    (see the module docstring), and WAVELENGTHRANGE."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = detector_model.detector.name
    models = [m for m in NIRSPEC_FS.values() if m.detector == name]
    if not models:
        raise ValueError(f"no NIRSpec fixed slit images on {name}")
    return [
        ReferenceFile("SPECWCS", name, _nirspec_specwcs(models, detector_model,
                                                        out_dir / nirspec_fs_filename("specwcs", name)), "GENERIC"),
        ReferenceFile("PHOTOM", name, _nirspec_photom(models, detector_model,
                                                      out_dir / nirspec_fs_filename("photom", name)), "GENERIC"),
        ReferenceFile("PATHLOSS", name, _nirspec_pathloss(models, detector_model,
                                                          out_dir / nirspec_fs_filename("pathloss", name)), "GENERIC"),
        write_nirspec_wavelengthrange(out_dir),  # one file for both detectors and both slit modes
    ]


def nirspec_bots_filename(reftype: str, detector_name: str = "NRS1") -> str:
    """``jwst_nirspec_<reftype>_<detector>_brightobj_sim.fits``."""
    return f"jwst_nirspec_{reftype}_{detector_name}_brightobj_sim.fits".lower()


def write_nirspec_bots_references(detector_model, out_dir: Path) -> list[ReferenceFile]:
    """SPECWCS, PHOTOM and PATHLOSS of NIRSpec's bright-object time series (G395M/F290LP
    through S1600A1, NRS_BRIGHTOBJ) for NRS1, in the fixed slits' formats (see the module
    docstring), and WAVELENGTHRANGE. ValueError for another detector."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = detector_model.detector.name
    model = NIRSPEC_BOTS
    if name != model.detector:
        raise ValueError(f"the NIRSpec bright-object time series is simulated on {model.detector}, not {name}")
    what = f"Simulated NIRSpec bright-object time series {model.slit} {model.grating}/{model.filter}"
    return [
        ReferenceFile("SPECWCS", name, _nirspec_specwcs([model], detector_model,
                                                        out_dir / nirspec_bots_filename("specwcs", name),
                                                        f"{what}: trace per column"), "GENERIC"),
        ReferenceFile("PHOTOM", name, _nirspec_photom([model], detector_model,
                                                      out_dir / nirspec_bots_filename("photom", name), what),
                      "GENERIC"),
        ReferenceFile("PATHLOSS", name, _nirspec_pathloss([model], detector_model,
                                                          out_dir / nirspec_bots_filename("pathloss", name), what),
                      "GENERIC"),
        write_nirspec_wavelengthrange(out_dir),
    ]


def nirspec_mos_filename(reftype: str, detector_name: str = "NRS1") -> str:
    """``jwst_nirspec_<reftype>_<detector>_msaspec_sim.fits``."""
    return f"jwst_nirspec_{reftype}_{detector_name}_msaspec_sim.fits".lower()


def shutter_trace_model(detector_name: str = "NRS1") -> SlitSpectrograph:
    """The one-shutter slitlet whose trace the MOS SPECWCS of ``detector_name`` tabulates:
    shutter (row 1, column 1) of the detector's first quadrant (Q1 on NRS1, Q2 on NRS2),
    reference point (MSAX0, QnY0) on whole pixels, so the table's x_center are whole
    column offsets. ValueError for a detector that sees no MSA quadrant."""
    if detector_name not in MSA_QUADRANTS:
        raise ValueError(f"NIRSpec MOS is simulated on {' and '.join(MSA_QUADRANTS)}, not {detector_name}")
    return msa_slitlet(MSA_QUADRANTS[detector_name][0], 1, (1,))


def _mos_specwcs(detector_name: str, path: Path) -> Path:
    model = shutter_trace_model(detector_name)
    primary = _nirspec_specwcs_primary(model, "Simulated NIRSpec MSA PRISM/CLEAR: shutter geometry and trace")
    h = primary.header
    h["MSAX0"] = (MSA_X0[detector_name], "[pixel] 1-based IMX of row 1")
    h["ROWPITCH"] = (ROW_PITCH, "[pixel] IMX step per shutter row (along x)")
    h["COLPITCH"] = (COLUMN_PITCH, "[pixel] IMY step per shutter column (along y)")
    for q in MSA_QUADRANTS[detector_name]:
        h[f"Q{q}Y0"] = (MSA_Y0[q], f"[pixel] 1-based IMY of column 1, quadrant {q}")
    h["SHUTWID"] = (MSA_SHUTTER_OPEN[0], "[arcsec] shutter open width (along x)")
    h["SHUTPTCH"] = (MSA_SHUTTER_PITCH[1], "[arcsec] shutter pitch along the slitlet (y)")
    h["PIXSCALE"] = (model.pixel_scale, "[arcsec/pixel]")
    h["APERNAME"] = (model.aperture, "aperture name")
    h.add_comment("Shutter (q, row r, column c) reference point, 1-based: IMX = MSAX0 + ROWPITCH*(r-1),")
    h.add_comment("IMY = Q<q>Y0 + COLPITCH*(c-1); a slitlet's: the mean of its shutters'. A quadrant")
    h.add_comment("without its Q<q>Y0 card is not on this detector. Table SHUTTER: per column of the")
    h.add_comment("spectrum, x_center/y_center (offsets from IMX-1, IMY-1), wavelength (um) and the")
    h.add_comment("corners x0..y3 over one shutter pitch along y (upper left, upper right, lower right,")
    h.add_comment("lower left).")
    hdu = _trace_hdu(model, "SHUTTER")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fits.HDUList([primary, hdu]).writeto(path, overwrite=True)
    return path


def _msaoper(failed_open, path: Path, failed_closed=()) -> Path:
    doc = {
        "title": "Simulated NIRSpec MSA shutter operability: failed-open and failed-closed shutters",
        "reftype": "MSAOPER",
        "pedigree": PEDIGREE,
        "author": AUTHOR,
        "instrument": "NIRSPEC",
        "exp_type": "NRS_IFU|NRS_MSASPEC",
        "telescope": "JWST",
        "useafter": USEAFTER,
        "descrip": "Failed-open and failed-closed shutters of the simulated MSA (all four quadrants)",
        "history": "x is the shutter row (1-365, along the dispersion), y its column (1-171); drawn from the "
                   "detector seed",
        "msaoper": [{"Q": int(q), "x": int(r), "y": int(c), "state": "open", "TA state": "open",
                     "Internal state": "open", "Vignetted": "no"} for q, r, c in failed_open]
                   + [{"Q": int(q), "x": int(r), "y": int(c), "state": "closed", "TA state": "closed",
                       "Internal state": "closed", "Vignetted": "no"} for q, r, c in failed_closed],
    }
    path.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    return path


def _mos_photom(detector_model, path: Path) -> Path:
    model = shutter_trace_model(detector_model.detector.name)
    photom = dm.NrsMosPhotomModel(phot_table=_photom_table([model], detector_model, by_slit=False))
    _slit_common(photom, "PHOTOM", detector_model, "Simulated NIRSpec MSA PRISM/CLEAR: point-source flux calibration",
                 NRS_MOS_EXP_TYPE)
    photom.meta.photometry.pixelarea_steradians = model.pixel_area_sr
    photom.meta.photometry.pixelarea_arcsecsq = model.pixel_scale ** 2
    return _save(photom, path)


def _mos_pathloss(detector_model, path: Path) -> Path:
    model = shutter_trace_model(detector_model.detector.name)
    pathloss = dm.PathlossModel()
    for name, shutters in _MOS_APERTURES:
        half = 0.5 * shutters
        pathloss.apertures.append(_pathloss_aperture(model, name, shutters, _MOS_PATHLOSS_ACROSS,
                                                     MSA_SHUTTER_PITCH[0], np.linspace(-half, half, 3)))
    _slit_common(pathloss, "PATHLOSS", detector_model, "Simulated NIRSpec MSA: point-source slit losses",
                 NRS_MOS_EXP_TYPE)
    return _save(pathloss, path)


def write_nirspec_mos_references(detector_model, out_dir: Path, failed_open, failed_closed=()
                                 ) -> list[ReferenceFile]:
    """SPECWCS, MSAOPER, PHOTOM and PATHLOSS of NIRSpec MOS with PRISM/CLEAR for the
    detector of ``detector_model``, NRS1 or NRS2 (see the module docstring), and
    WAVELENGTHRANGE; ``failed_open`` the (quadrant, row, column) shutters stuck open, of
    all four quadrants (:func:`.msa.failed_open_shutters`), ``failed_closed`` those stuck
    closed (:func:`.msa.failed_closed_shutters`): the MSAOPER reference, one for
    the MSA (DETECTOR ANY), is the same file whichever detector writes it. ValueError for
    another detector."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = detector_model.detector.name
    shutter_trace_model(name)  # ValueError for a detector without MSA quadrants
    return [
        ReferenceFile("SPECWCS", name, _mos_specwcs(name, out_dir / nirspec_mos_filename("specwcs", name)), "GENERIC"),
        ReferenceFile("MSAOPER", "ANY", _msaoper(failed_open, out_dir / MSAOPER_FILENAME, failed_closed), "GENERIC"),
        ReferenceFile("PHOTOM", name, _mos_photom(detector_model, out_dir / nirspec_mos_filename("photom", name)),
                      "GENERIC"),
        ReferenceFile("PATHLOSS", name, _mos_pathloss(detector_model,
                                                      out_dir / nirspec_mos_filename("pathloss", name)), "GENERIC"),
        write_nirspec_wavelengthrange(out_dir),
    ]


def niriss_soss_filename(reftype: str) -> str:
    """``jwst_niriss_<reftype>_soss_sim.fits``."""
    return f"jwst_niriss_{reftype}_soss_sim.fits".lower()


_SPECTRACE_COLUMNS = ("WAVELENGTH", "X", "Y", "THROUGHPUT", "TILT")


def soss_trace_table(model: SlitSpectrograph) -> np.ndarray:
    """The SPECTRACE table of one SOSS order (module docstring): per column of its span,
    increasing, the wavelength, the window column and the trace's window row (0-based),
    the throughput, and no tilt."""
    window = subarray(detector(model.detector).instrument, model.subarrays[0])
    s = model.pixels()
    x, y = model.to_detector(s, model.trace(s))
    wavelength = model.wavelength(s)
    table = np.zeros(s.size, dtype=[(c, "<f8") for c in _SPECTRACE_COLUMNS])
    table["WAVELENGTH"], table["X"], table["Y"] = wavelength, x - (window.xstart - 1), y - (window.ystart - 1)
    table["THROUGHPUT"] = model.throughput(wavelength)
    return table


def _soss_spectrace(detector_model, path: Path) -> Path:
    orders = spectral_orders(NIRISS_SOSS)
    window = subarray(detector_model.detector.instrument, NIRISS_SOSS.subarrays[0])
    trace = dm.SpecTraceModel()
    for model in orders:
        trace.trace.append(trace.trace.item())
        trace.trace[-1].order = model.order
        trace.trace[-1].data = soss_trace_table(model)
    _common(trace, "SPECTRACE", detector_model, "Simulated NIRISS SOSS GR700XD/CLEAR: traces of orders 1 and 2",
            window)
    trace.meta.exposure.type = NIS_SOSS_EXP_TYPE
    trace.meta.instrument.filter = NIRISS_SOSS.filter
    _save(trace, path)
    with fits.open(path, mode="update") as hdul:  # the SpecTraceModel schema has no PUPIL: a card beside FILTER
        hdul[0].header.set("PUPIL", NIRISS_SOSS.grating, "Name of the pupil element used", after="FILTER")
    return path


def soss_photom_table(detector_model) -> np.ndarray:
    """The NIRISS SOSS phot_table (module docstring): one row per order, PHOTMJ at the
    order's throughput peak and RELRESPONSE over its columns and one more at each end."""
    from .optical_refs import mean_gain

    orders = spectral_orders(NIRISS_SOSS)
    # a pixel beyond each end of the span: the table's float32 wavelengths then cover the
    # span's own to the last column
    curves = [m.response(mean_gain(detector_model), margin=1) for m in orders]
    n = max(w.size for w, _ in curves)
    table = np.zeros(len(orders), dtype=[
        ("filter", "S12"), ("pupil", "S15"), ("order", "<i2"), ("photmj", "<f4"), ("uncertainty", "<f4"),
        ("nelem", "<i2"), ("wavelength", "<f4", (n,)), ("relresponse", "<f4", (n,)),
        ("reluncertainty", "<f4", (n,))])
    for k, (model, (waves, mjy)) in enumerate(zip(orders, curves, strict=True)):
        value = float(np.interp(model.throughput_centre, waves, mjy))
        pad = np.zeros(n - waves.size)
        rel = np.concatenate([mjy / value, pad])
        table[k] = (model.filter, model.grating, model.order, value, 0.01 * value, waves.size,
                    np.concatenate([waves, pad]), rel, 0.01 * rel)
    return table


def _soss_photom(detector_model, path: Path) -> Path:
    photom = dm.NisSossPhotomModel(phot_table=soss_photom_table(detector_model))
    _slit_common(photom, "PHOTOM", detector_model, "Simulated NIRISS SOSS GR700XD/CLEAR: flux calibration, orders 1, 2",
                 NIS_SOSS_EXP_TYPE)
    photom.meta.photometry.pixelarea_steradians = NIRISS_SOSS.pixel_area_sr
    photom.meta.photometry.pixelarea_arcsecsq = NIRISS_SOSS.pixel_scale**2
    return _save(photom, path)


def write_niriss_soss_references(detector_model, out_dir: Path) -> list[ReferenceFile]:
    """SPECTRACE and PHOTOM of NIRISS SOSS (NIS_SOSS, orders 1 and 2 of GR700XD/CLEAR) for
    NIS, in the public formats (see the module docstring). ValueError for another
    detector."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = detector_model.detector.name
    if name != NIRISS_SOSS.detector:
        raise ValueError(f"NIRISS SOSS is simulated on {NIRISS_SOSS.detector}, not {name}")
    window = NIRISS_SOSS.subarrays[0]
    return [
        ReferenceFile("SPECTRACE", name, _soss_spectrace(detector_model, out_dir / niriss_soss_filename("spectrace")),
                      window),
        ReferenceFile("PHOTOM", name, _soss_photom(detector_model, out_dir / niriss_soss_filename("photom")),
                      "GENERIC"),
    ]


def nircam_grism_filename(reftype: str) -> str:
    """``jwst_nircam_<reftype>_nrcalong_tsgrism_sim.<asdf|fits>``: the SPECWCS in ASDF (as
    CRDS's NIRCam grism SPECWCS files), the PHOTOM in FITS."""
    suffix = "asdf" if reftype.lower() == "specwcs" else "fits"
    return f"jwst_nircam_{reftype}_{NIRCAM_GRISM_TSO.detector}_tsgrism_sim.{suffix}".lower()


#: The exposure types the NIRCam grism time series' references serve (P_EXPTYPE).
_NRC_GRISM_P_EXPTYPE = f"{NRC_TSGRISM_EXP_TYPE}|"


def grism_dispersion_models(model: SlitSpectrograph) -> dict[str, list]:
    """The public NIRCam grism dispersion models of ``model``'s spectrum (one order; the
    module docstring): ``displ`` t -> wavelength (um), ``dispx`` and ``dispy`` (x0, y0, t)
    -> the trace's column and row offsets (dx, dy) from the source's undispersed 0-based
    full-frame pixel (x0, y0), and their inverses ``invdispl`` (wavelength -> t),
    ``invdispx`` (x0, y0, dx -> t) and ``invdispy`` (x0, y0, dy -> t), each a list of one
    astropy model, exact for the model's law and trace; t runs from 0 at the first column
    of the span to 1 at its last. ValueError for a spectrum dispersed along y (DISPAXIS 2),
    a law that is not linear (its inverse would not be a polynomial) or a trace whose row does not
    move one way over the span (its inverse would not be one function)."""
    law = model.law
    if model.dispaxis != 1:
        raise ValueError(f"the {model.label} spectrum is dispersed along y (DISPAXIS 2); the NIRCam GRISMR "
                         "models disperse along x")
    if not isinstance(law, GratingDispersion) or law.quadratic != 0.0:
        raise ValueError(f"the {model.label} law is not linear: its inverse is not a polynomial")
    first, last = (float(v) for v in model.span)
    lam0, lam1 = float(model.wavelength(first)), float(model.wavelength(last))
    dx0, dx1 = first - model.s_ref, last - model.s_ref  # the trace's column offsets at t = 0 and 1
    t0, t1, t2 = model.trace_coeffs
    slope = t1 + 2.0 * t2 * np.array([dx0, dx1])  # d row / d column at the span's ends (linear in between)
    if not (np.all(slope > 0.0) or np.all(slope < 0.0)):
        raise ValueError(f"the {model.label} trace turns over on its span: dy does not give one t")
    sign = float(np.sign(slope[0]))
    third = Mapping((2,), n_inputs=3)  # (x0, y0, t or an offset) -> the third input
    dispx = third | Polynomial1D(1, c0=dx0, c1=dx1 - dx0)
    # dy = t0 + t1 u + t2 u^2, u = x0 + dx - s_ref the trace's column offset from the reference point
    column = (Mapping((0,), n_inputs=3) | Shift(-model.s_ref)) + dispx
    dispy = column | Polynomial1D(2, c0=t0, c1=t1, c2=t2)
    # its inverse on the span's branch: u = 2 w / (t1 + sign sqrt(t1^2 + 4 t2 w)), w = dy - t0 (no cancellation
    # as t2 goes to 0), then t = (u - (x0 - s_ref + dx0)) / (dx1 - dx0)
    root = Polynomial1D(1, c0=t1 * t1, c1=4.0 * t2) ** Const1D(0.5)
    u = third | Shift(-t0) | (Scale(2.0) / (root | Scale(sign) | Shift(t1)))
    start = Mapping((0,), n_inputs=3) | Shift(dx0 - model.s_ref)
    invdispy = (u - start) | Scale(1.0 / (dx1 - dx0))
    return {
        "displ": [Polynomial1D(1, c0=lam0, c1=lam1 - lam0)],
        "dispx": [dispx],
        "dispy": [dispy],
        "invdispl": [Polynomial1D(1, c0=-lam0 / (lam1 - lam0), c1=1.0 / (lam1 - lam0))],
        "invdispx": [third | Polynomial1D(1, c0=-dx0 / (dx1 - dx0), c1=1.0 / (dx1 - dx0))],
        "invdispy": [invdispy],
    }


def _nircam_grism_specwcs(detector_model, path: Path) -> Path:
    from .optical_refs import _save_asdf

    model = NIRCAM_GRISM_TSO
    ref = dm.NIRCAMGrismModel(orders=[model.order], **grism_dispersion_models(model))
    _common(ref, "SPECWCS", detector_model, f"Simulated NIRCam grism {model.grating}/{model.filter} order "
            f"{model.order}: dispersion and trace from the source's undispersed pixel", None, window=False)
    ref.meta.reftype = ref.reftype  # the model checks its own spelling, "specwcs"
    ref.meta.instrument.module = detector_model.detector.module
    ref.meta.instrument.filter = model.filter
    ref.meta.instrument.pupil = model.grating
    ref.meta.exposure.type = model.exp_type
    ref.meta.exposure.p_exptype = _NRC_GRISM_P_EXPTYPE
    ref.meta.input_units = u.micron
    ref.meta.output_units = u.micron
    return _save_asdf(ref, path)


def nircam_grism_photom_table(detector_model) -> np.ndarray:
    """The NIRCam grism phot_table (module docstring): one row, F444W/GRISMR order 1,
    PHOTMJSR at the throughput's peak and RELRESPONSE over the spectrum's columns and one
    more at each end."""
    from .optical_refs import mean_gain

    model = NIRCAM_GRISM_TSO
    # a pixel beyond each end of the span: the table's float32 wavelengths then cover the span's own
    waves, mjy = model.response(mean_gain(detector_model), margin=1)
    mjysr = mjy / model.pixel_area_sr * model.dispersion(model.pixel(waves))  # per um of spectrum, the grisms' unit
    value = float(np.interp(model.throughput_centre, waves, mjysr))
    rel = mjysr / value
    table = np.zeros(1, dtype=[
        ("filter", "S12"), ("pupil", "S15"), ("order", "<i2"), ("photmjsr", "<f4"), ("uncertainty", "<f4"),
        ("nelem", "<i2"), ("wavelength", "<f4", (waves.size,)), ("relresponse", "<f4", (waves.size,)),
        ("reluncertainty", "<f4", (waves.size,))])
    table[0] = (model.filter, model.grating, model.order, value, 0.01 * value, waves.size, waves, rel, 0.01 * rel)
    return table


def _nircam_grism_photom(detector_model, path: Path) -> Path:
    model = NIRCAM_GRISM_TSO
    photom = dm.NrcWfssPhotomModel(phot_table=nircam_grism_photom_table(detector_model))
    _slit_common(photom, "PHOTOM", detector_model, f"Simulated NIRCam grism {model.grating}/{model.filter}: "
                 "point-source flux calibration, order 1", model.exp_type)
    photom.meta.exposure.p_exptype = _NRC_GRISM_P_EXPTYPE
    photom.meta.photometry.pixelarea_steradians = model.pixel_area_sr
    photom.meta.photometry.pixelarea_arcsecsq = model.pixel_scale**2
    return _save(photom, path)


def write_nircam_grism_references(detector_model, out_dir: Path) -> list[ReferenceFile]:
    """SPECWCS and PHOTOM of NIRCam's grism time series (NRC_TSGRISM, GRISMR/F444W order 1)
    for NRCALONG, in the public formats (see the module docstring). ValueError for another
    detector."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = detector_model.detector.name
    if name != NIRCAM_GRISM_TSO.detector:
        raise ValueError(f"NIRCam's grism time series is simulated on {NIRCAM_GRISM_TSO.detector}, not {name}")
    return [
        ReferenceFile("SPECWCS", name, _nircam_grism_specwcs(detector_model, out_dir / nircam_grism_filename("specwcs")),
                      "GENERIC"),
        ReferenceFile("PHOTOM", name, _nircam_grism_photom(detector_model, out_dir / nircam_grism_filename("photom")),
                      "GENERIC"),
    ]


def write_slit_references(models, detector_model, out_dir: Path) -> list[ReferenceFile]:
    """The references of the slits ``models`` used on the detector of ``detector_model``:
    the LRS slit's, the LRS slitless mode's, (one set for all five) the NIRSpec fixed
    slits', the NIRSpec bright-object time series', NIRISS SOSS's and NIRCam's grism time
    series'."""
    exp_types = {m.exp_type for m in models}
    written = []
    if LRS_EXP_TYPE in exp_types:
        written += write_lrs_references(LRS, detector_model, out_dir)
    if LRS_SLITLESS_EXP_TYPE in exp_types:
        written += write_lrs_slitless_references(LRS_SLITLESS, detector_model, out_dir)
    if NRS_FS_EXP_TYPE in exp_types:
        written += write_nirspec_fs_references(detector_model, out_dir)
    if NRS_BOTS_EXP_TYPE in exp_types:
        written += write_nirspec_bots_references(detector_model, out_dir)
    if NIS_SOSS_EXP_TYPE in exp_types:
        written += write_niriss_soss_references(detector_model, out_dir)
    if NRC_TSGRISM_EXP_TYPE in exp_types:
        written += write_nircam_grism_references(detector_model, out_dir)
    return written
