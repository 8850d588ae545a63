"""Reference files of the optics and the photometric calibration: FLAT, PHOTOM, AREA,
DISTORTION and FILTEROFFSET, written beside the detector references of :mod:`reffiles` (same common
keywords, PEDIGREE SIMULATION, USEAFTER 2022-01-01, byte-identical on rewrite).

Definitions (g0 = mean gain of the detector over its non-reference pixels, e-/DN;
Omega = nominal pixel area, sr, ``(pixel_scale / 206264.806")**2``; area = relative pixel
area from the distortion; QE = the detector model's flat):

- FLAT (FlatModel, per detector, filter and pupil used): ``QE * area * g0 / gain``, so that
  a ``_rate`` pixel (DN/s) divided by FLAT gives photo-electrons/s per nominal pixel / g0.
  Where QE is 0 (dead and reference pixels) SCI is NaN and DQ = NO_FLAT_FIELD|DO_NOT_USE;
  ERR = 0.001 x SCI (0 there).
- PHOTOM (Nrc/Nis/MirImgPhotomModel, per detector): ``PHOTMJSR = jy_per_electron * 1e-6 *
  g0 / Omega`` MJy/sr per (DN/s of a flat-fielded pixel), 1 % uncertainty, one row per
  filter/pupil combination of the instrument (MIRI: per filter and subarray); PIXAR_SR and
  PIXAR_A2 nominal. Then PHOTUJA2 = PHOTMJSR * 1e12 / 4.2545170e10 (uJy/arcsec^2).
- AREA (PixelAreaModel, per detector): SCI = relative pixel area on the full frame
  (reference pixels included: they are pixels of the same geometry); FILTER, PUPIL and
  EXP_TYPE are ANY (the distortion does not depend on them); PIXAR_SR/PIXAR_A2 nominal.
- DISTORTION (DistortionModel, ASDF ``jwst_<inst>_distortion_<det>_sim.asdf``, per
  detector): ``model`` = :func:`services.simulator.distortion.detector_distortion_model`,
  full-frame 0-based pixels to (V2, V3) arcsec with its fitted inverse; input units pixel,
  output arcsec; EXP_TYPE the first imaging type and P_EXPTYPE all of them (``A|B|``;
  MIRIMAGE's also MIR_LRS-FIXEDSLIT and MIR_LRS-SLITLESS: the slit images through the
  imager's optics; NRS1's NRS_FIXEDSLIT, NRS_BRIGHTOBJ and NRS_MSASPEC, NRS2's NRS_MSASPEC:
  the slits' and shutters' undispersed images at the disperser's reference wavelength;
  NIS's NIS_SOSS: the target's undispersed image at order 1's reference point;
  NRCALONG's NRC_TSGRISM: the target's undispersed image at the grism's reference point;
  NIS's NIS_WFSS and NRCALONG's NRC_WFSS: the sources' undispersed images, which their
  grisms' traces start from);
  NIRCam also MODULE, CHANNEL and PUPIL/P_PUPIL ANY.
- FILTEROFFSET (FilteroffsetModel, ASDF ``jwst_<inst>_filteroffset_<det>_sim.asdf``, per
  detector): one row per filter (MIRI) or filter/pupil pair (NIRCam, NIRISS: those of
  PHOTOM), column and row offsets 0: the simulated optics have no filter-dependent
  shifts. jwst's MIRI imaging WCS needs the file; NIRCam and NIRISS use it when there.

The imaging references (PHOTOM, FILTEROFFSET, APCORR, ABVEGAOFFSET) list the imaging
filters: not the LRS prism P750L, whose calibration is the slit's own
(:func:`services.simulator.slit_refs.write_lrs_references`); a FLAT is written for it
as for any filter the plan uses on the detector. NIRSpec (simulated for its fixed slits
and the MOS) gets FLAT and DISTORTION of each detector used (NRS1; NRS2 for the MOS): the
FLAT of each (filter, grating) used, FILTER CLEAR and GRATING PRISM, or F290LP and G395M
for the bright-object time series (no PUPIL: selected by DETECTOR and FILTER), the same
``QE * area * g0 / gain``; its slits' calibration is
theirs (:func:`services.simulator.slit_refs.write_nirspec_fs_references`,
:func:`services.simulator.slit_refs.write_nirspec_mos_references`).

NIS's FLAT of CLEAR/GR700XD (NIRISS SOSS, FILTER CLEAR, PUPIL GR700XD) is written as for any
(filter, pupil) the plan uses on it; the spectral calibration is SOSS's own
(:func:`services.simulator.slit_refs.write_niriss_soss_references`).

The guiders (:func:`write_guider_references`, GUIDER1/GUIDER2, for the guide-star products
that calwebb_guider calibrates): MASK, GAIN and READNOISE as :mod:`reffiles` writes them for
any detector, and one FLAT, ``jwst_fgs_flat_<guider>_sim.fits``, ``QE * g0 / gain`` (no
filter or pupil: the guiders have none; no pixel-area term: the guide-star windows are
calibrated in detector pixels), with the same NaN/NO_FLAT_FIELD rule.

The ASDF files are validated against their schemas and written with DATE = USEAFTER,
byte-identical on rewrite, like the FITS ones.

Per instrument (:func:`write_catalog_references`; selected by INSTRUME and EXP_TYPE, the
imaging types in P_EXP_TY, as in CRDS):

- APCORR (Nrc/Nis/MirImgApcorrModel, FITS, table APCORR): per PHOTOM row (filter/pupil;
  MIRI filter/subarray) and encircled energy 10-90 %, the radius in detector pixels, the
  aperture correction 1/EE and the background annulus. The PSF is the simulator's
  Gaussian (:func:`optics.psf_fwhm_arcsec`) as the source catalog sees it in a mosaic at
  the native scale: variance sigma_psf^2 + :data:`MOSAIC_BLUR_PX2` per axis, so
  ``radius = sigma * sqrt(-2 ln(1 - EE))``; annulus from max(3 FWHM, r90 + 2) to that plus
  max(3, 1.5 FWHM) (FWHM of that Gaussian), where the PSF holds < 1e-9 of its flux, so
  the correction is exactly 1/EE.
- ABVEGAOFFSET (ABVegaOffsetModel, ASDF as CRDS has them, table ``abvega_offset``): per
  filter/pupil (MIRI filter) the AB - Vega magnitude :func:`optics.vega_ab_offset`.
"""

from __future__ import annotations

import io
import math
import warnings
from pathlib import Path

import asdf
import numpy as np
from astropy import units as u
from astropy.io import fits
from astropy.table import Table
from stdatamodels.jwst import datamodels as dm

from shared.datamodels.dqflags import PIXEL
from shared.instruments import SUBARRAYS, detector

from .detector_model import DetectorModel
from .distortion import detector_distortion, detector_distortion_model
from .optics import (
    CLEAR_POSITIONS,
    FILTERS,
    IMAGING_EXP_TYPES,
    NIRCAM_PUPIL_PARTNERS,
    NIRCAM_SW_MAX_UM,
    WEAK_LENS_FWHM_ARCSEC,
    jy_per_electron,
    pivot_wavelength,
    psf_fwhm_arcsec,
    vega_ab_offset,
)
from .reffiles import (
    AUTHOR,
    PEDIGREE,
    USEAFTER,
    ReferenceFile,
    _common,
    _dq_def,
    _save,
    reference_filename,
    write_gain,
    write_mask,
    write_readnoise,
)
from .spectrograph import LRS, MSA_QUADRANTS, NRS_MOS_EXP_TYPE, SLIT_SPECTROGRAPHS, WFSS_GRISMS

__all__ = [
    "APCORR_EE",
    "ARCSEC_PER_RADIAN",
    "MOSAIC_BLUR_PX2",
    "apcorr_rows",
    "UJY_A2_PER_MJY_SR",
    "flat_field",
    "flat_filename",
    "imaging_filters",
    "mean_gain",
    "nominal_pixel_area_sr",
    "photmjsr",
    "photom_elements",
    "write_catalog_references",
    "write_guider_references",
    "write_optical_references",
]

ARCSEC_PER_RADIAN = 206264.80624709636
UJY_A2_PER_MJY_SR = 1.0e12 / 4.2545170e10  # uJy/arcsec^2 per MJy/sr
_PHOTOM_UNCERTAINTY = 0.01
_FLAT_ERR = 0.001
_PHOTOM_MODELS = {"NIRCAM": dm.NrcImgPhotomModel, "NIRISS": dm.NisImgPhotomModel, "MIRI": dm.MirImgPhotomModel}
_APCORR_MODELS = {"NIRCAM": dm.NrcImgApcorrModel, "NIRISS": dm.NisImgApcorrModel, "MIRI": dm.MirImgApcorrModel}
APCORR_EE = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
#: Variance (detector pixels squared, per axis) the catalog's image adds to the PSF's: the
#: pixel (1/12), circular apertures over square pixels (1/12) and the drizzle of a rotated
#: or sub-pixel-shifted exposure onto the mosaic grid (2/12, the linear interpolation that
#: pixfrac 1 amounts to); measured on simulated mosaics through shared.resample.
MOSAIC_BLUR_PX2 = 4.0 / 12.0
_FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))


def imaging_filters(instrument: str) -> list[str]:
    """The instrument's filters in :data:`FILTERS` that image (not the LRS prism)."""
    return [f for f in FILTERS[instrument.upper()] if f != LRS.filter]


def mean_gain(model: DetectorModel) -> float:
    """g0: the mean gain (e-/DN) over the non-reference pixels of a full-frame model."""
    return float(np.mean(model.gain[~model.refpix], dtype=np.float64))


def nominal_pixel_area_sr(pixel_scale: float) -> float:
    """Omega: area of a nominal pixel of ``pixel_scale`` arcsec, steradians."""
    return (pixel_scale / ARCSEC_PER_RADIAN) ** 2


def photmjsr(instrument: str, filter_: str, pupil: str | None, g0: float, pixel_scale: float) -> float:
    """PHOTMJSR, MJy/sr per DN/s of a flat-fielded pixel: ``jy_per_electron * 1e-6 * g0 / Omega``."""
    return jy_per_electron(instrument, filter_, pupil) * 1.0e-6 * g0 / nominal_pixel_area_sr(pixel_scale)


def flat_field(model: DetectorModel, area: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The FLAT arrays of a full-frame model.

    Parameters
    ----------
    model : DetectorModel
        Full frame.
    area : ndarray, shape (ny, nx)
        Relative pixel area.

    Returns
    -------
    data, err : ndarray of float32, shape (ny, nx)
        ``QE * area * g0 / gain`` (NaN where QE is 0) and its nominal error.
    dq : ndarray of uint32
        NO_FLAT_FIELD|DO_NOT_USE where QE is 0.
    """
    g0 = mean_gain(model)
    flat = model.flat.astype(np.float64) * area * g0 / model.gain.astype(np.float64)
    bad = model.flat <= 0
    data = np.where(bad, np.nan, flat).astype(np.float32)
    err = np.where(bad, 0.0, _FLAT_ERR * flat).astype(np.float32)
    dq = np.where(bad, np.uint32(PIXEL["NO_FLAT_FIELD"] | PIXEL["DO_NOT_USE"]), np.uint32(0)).astype(np.uint32)
    return data, err, dq


def flat_filename(instrument: str, detector: str, filter_: str, pupil: str | None) -> str:
    """``jwst_<inst>_flat_<det>_<filter>[_<pupil>]_sim.fits`` (no pupil for MIRI)."""
    part = f"_{pupil}" if pupil and pupil.upper() not in ("N/A", "ANY") else ""
    return f"jwst_{instrument}_flat_{detector}_{filter_}{part}_sim.fits".lower()


def photom_elements(instrument: str) -> list[tuple[str, str]]:
    """(filter, pupil) of every PHOTOM row (MIRI: (filter, subarray)).

    Every filter behind each open position of the other wheel; NIRCam adds the weak lens
    behind each short-wavelength filter and the pupil-wheel filters behind their partner.
    """
    inst = instrument.upper()
    table = {f: FILTERS[inst][f] for f in imaging_filters(inst)}
    if inst == "MIRI":
        return [(f, s) for f in table for s in SUBARRAYS["MIRI"]]
    rows = [(f, c) for f in table for c in CLEAR_POSITIONS[inst]] + [(c, f) for c in CLEAR_POSITIONS[inst]
                                                                        for f in table]
    if inst == "NIRCAM":
        rows += [(f, lens) for lens in WEAK_LENS_FWHM_ARCSEC for f in table if table[f] < NIRCAM_SW_MAX_UM]
        rows += [(partner, p) for p, partner in NIRCAM_PUPIL_PARTNERS.items()]
    return list(dict.fromkeys(rows))


def _write_flat(model: DetectorModel, out_dir: Path, area: np.ndarray, filter_: str, pupil: str) -> ReferenceFile:
    info = model.detector
    data, err, dq = flat_field(model, area)
    flat = dm.FlatModel(data=data, err=err, dq=dq)
    element = filter_ if info.instrument == "MIRI" else f"{filter_}/{pupil}"
    _common(flat, "FLAT", model, f"Simulated flat of {info.name} {element}: QE x area x g0/gain", None)
    flat.meta.instrument.filter = filter_
    if info.instrument == "MIRI":
        flat.meta.instrument.band = "N/A"
        flat.meta.exposure.readpatt = "ANY"
    elif info.instrument == "NIRSPEC":  # the second element is the grating wheel's (GRATING, below)
        flat.meta.exposure.type = "ANY"
    else:
        flat.meta.instrument.pupil = pupil
    flat.dq_def = _dq_def(["DO_NOT_USE", "NO_FLAT_FIELD"])
    path = _save(flat, out_dir / flat_filename(info.instrument, info.name, filter_,
                                               None if info.instrument == "MIRI" else pupil))
    if info.instrument == "NIRSPEC":  # the FLAT model has no GRATING: a FITS card beside its keywords
        with fits.open(path, mode="update") as hdul:
            hdul[0].header.set("GRATING", pupil, "Name of the grating element used", after="FILTER")
    return ReferenceFile("FLAT", info.name, path, "GENERIC")


def _write_photom(model: DetectorModel, out_dir: Path) -> ReferenceFile:
    info = model.detector
    inst, g0 = info.instrument, mean_gain(model)
    rows = []
    for first, second in photom_elements(inst):
        pupil = None if inst == "MIRI" else second
        value = photmjsr(inst, first, pupil, g0, info.pixel_scale)
        rows.append((first, second, value, _PHOTOM_UNCERTAINTY * value))
    second_column = ("subarray", "S17") if inst == "MIRI" else ("pupil", "S12")
    table = np.array(rows, dtype=[("filter", "S12"), second_column, ("photmjsr", "<f4"), ("uncertainty", "<f4")])
    photom = _PHOTOM_MODELS[inst](phot_table=table)
    _common(photom, "PHOTOM", model, f"Simulated imaging photometric calibration of {info.name}", None,
            window=False)
    exp_types = IMAGING_EXP_TYPES[inst]
    photom.meta.exposure.type = exp_types[0]
    photom.meta.exposure.p_exptype = "".join(f"{t}|" for t in exp_types)
    photom.meta.photometry.pixelarea_steradians = nominal_pixel_area_sr(info.pixel_scale)
    photom.meta.photometry.pixelarea_arcsecsq = info.pixel_scale**2
    path = out_dir / reference_filename(inst, "photom", info.name)
    return ReferenceFile("PHOTOM", info.name, _save(photom, path), "GENERIC")


def _write_area(model: DetectorModel, out_dir: Path, area: np.ndarray) -> ReferenceFile:
    info = model.detector
    pam = dm.PixelAreaModel(data=area.astype(np.float32))
    _common(pam, "AREA", model, f"Simulated relative pixel area of {info.name} (SIP distortion)", None,
            window=False)
    pam.meta.instrument.filter = "ANY"
    pam.meta.instrument.pupil = "ANY"
    pam.meta.exposure.type = "ANY"
    pam.meta.photometry.pixelarea_steradians = nominal_pixel_area_sr(info.pixel_scale)
    pam.meta.photometry.pixelarea_arcsecsq = info.pixel_scale**2
    path = out_dir / reference_filename(info.instrument, "area", info.name)
    return ReferenceFile("AREA", info.name, _save(pam, path), "GENERIC")


def _asdf_filename(instrument: str, reftype: str, detector: str) -> str:
    return reference_filename(instrument, reftype, detector).removesuffix(".fits") + ".asdf"


def _save_asdf(model, path: Path) -> Path:
    """Validate (a schema warning means a broken file) and write an ASDF reference with
    DATE = USEAFTER, so the same optics always give the same bytes."""
    first = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.to_asdf(first)  # validates; stamps DATE with the clock (most models)
    useafter = model.meta.useafter
    model.close()
    first.seek(0)
    out = io.BytesIO()
    with asdf.open(first, lazy_load=False, memmap=False) as af:
        af.tree["meta"]["date"] = useafter
        af.write_to(out)
    path.write_bytes(out.getvalue())
    return path


def _imaging_meta(model, info, *, slit: bool = False) -> None:
    """EXP_TYPE/P_EXPTYPE of the instrument's imaging types (``slit``: and those of the slits
    on its detector); NIRCam's MODULE and CHANNEL."""
    exp_types = IMAGING_EXP_TYPES.get(info.instrument, ())
    if slit:
        exp_types = (*exp_types, *dict.fromkeys(m.exp_type for m in (*SLIT_SPECTROGRAPHS.values(),
                                                                     *WFSS_GRISMS.values())
                                                if m.detector == info.name))
        if info.name in MSA_QUADRANTS:  # the MSA's slitlets image on NRS1 and NRS2 through the same optics
            exp_types = (*exp_types, NRS_MOS_EXP_TYPE)
    model.meta.exposure.type = exp_types[0]
    model.meta.exposure.p_exptype = "".join(f"{t}|" for t in exp_types)
    if info.instrument == "NIRCAM":
        model.meta.instrument.module = info.module
        model.meta.instrument.channel = info.channel


def _write_distortion(model: DetectorModel, out_dir: Path) -> ReferenceFile:
    info = model.detector
    ref = dm.DistortionModel(model=detector_distortion_model(info), input_units=u.pix, output_units=u.arcsec)
    _common(ref, "DISTORTION", model, f"Simulated distortion of {info.name}: full-frame pixels to V2/V3 arcsec",
            None, window=False)
    _imaging_meta(ref, info, slit=True)
    if info.instrument == "NIRCAM":
        ref.meta.instrument.pupil = "ANY"
        ref.meta.instrument.p_pupil = "ANY|"
    path = out_dir / _asdf_filename(info.instrument, "distortion", info.name)
    return ReferenceFile("DISTORTION", info.name, _save_asdf(ref, path), "GENERIC")


def _write_filteroffset(model: DetectorModel, out_dir: Path) -> ReferenceFile:
    info = model.detector
    inst = info.instrument
    if inst == "MIRI":
        rows = [{"filter": f, "column_offset": 0.0, "row_offset": 0.0} for f in imaging_filters(inst)]
    else:
        rows = [{"filter": f, "pupil": p, "column_offset": 0.0, "row_offset": 0.0} for f, p in photom_elements(inst)]
    ref = dm.FilteroffsetModel(filters=rows, instrument=inst)
    _common(ref, "FILTEROFFSET", model, f"Simulated filter offsets of {info.name}: none (0 pixels)", None,
            window=False)
    _imaging_meta(ref, info)
    ref.meta.input_units = "pixel"
    path = out_dir / _asdf_filename(inst, "filteroffset", info.name)
    return ReferenceFile("FILTEROFFSET", info.name, _save_asdf(ref, path), "GENERIC")


def _imaging_pixel_scale(instrument: str, wavelength_um: float) -> float:
    """Native pixel scale (arcsec) of the imager that sees ``wavelength_um``."""
    name = {"NIRISS": "NIS", "MIRI": "MIRIMAGE"}.get(instrument)
    if name is None:  # NIRCam: the short- or long-wavelength channel
        name = "NRCA1" if wavelength_um < NIRCAM_SW_MAX_UM else "NRCALONG"
    return detector(name).pixel_scale


def apcorr_rows(instrument: str) -> list[tuple[str, str, float, float, float, float, float]]:
    """(filter, pupil or subarray, eefraction, radius, apcorr, skyin, skyout) of every
    APCORR row of ``instrument`` (radii in native detector pixels; see the module docstring)."""
    inst = instrument.upper()
    rows = []
    for first, second in photom_elements(inst):
        pupil = None if inst == "MIRI" else second
        wavelength = pivot_wavelength(inst, first, pupil)
        fwhm_px = psf_fwhm_arcsec(wavelength, pupil) / _imaging_pixel_scale(inst, wavelength)
        sigma = math.sqrt((fwhm_px / _FWHM_PER_SIGMA) ** 2 + MOSAIC_BLUR_PX2)
        radii = [sigma * math.sqrt(-2.0 * math.log(1.0 - ee)) for ee in APCORR_EE]
        fwhm = sigma * _FWHM_PER_SIGMA
        skyin = max(3.0 * fwhm, radii[-1] + 2.0)
        skyout = skyin + max(3.0, 1.5 * fwhm)
        rows += [(first, second, ee, r, 1.0 / ee, skyin, skyout) for ee, r in zip(APCORR_EE, radii, strict=True)]
    return rows


def _catalog_reference_meta(model, reftype: str, instrument: str, description: str) -> None:
    model.meta.reftype = reftype
    model.meta.instrument.name = instrument
    model.meta.useafter = USEAFTER
    model.meta.description = description
    model.meta.author = AUTHOR
    model.meta.pedigree = PEDIGREE
    model.meta.telescope = "JWST"
    model.meta.origin = "jwst-dms"


def _write_apcorr(instrument: str, out_dir: Path) -> ReferenceFile:
    second = ("subarray", "S17") if instrument == "MIRI" else ("pupil", "S15")
    table = np.array(apcorr_rows(instrument), dtype=[
        ("filter", "S12"), second, ("eefraction", "<f4"), ("radius", "<f4"), ("apcorr", "<f4"), ("skyin", "<f4"),
        ("skyout", "<f4")])
    model = _APCORR_MODELS[instrument](apcorr_table=table)
    _catalog_reference_meta(model, "APCORR", instrument,
                            f"Simulated {instrument} imaging aperture corrections (Gaussian PSF in a mosaic)")
    exp_types = IMAGING_EXP_TYPES[instrument]
    model.meta.exposure.type = exp_types[0]
    model.meta.exposure.p_exptype = "".join(f"{t}|" for t in exp_types)
    path = out_dir / f"jwst_{instrument}_apcorr_sim.fits".lower()
    return ReferenceFile("APCORR", "ANY", _save(model, path), "GENERIC")


def _write_abvegaoffset(instrument: str, out_dir: Path) -> ReferenceFile:
    rows = dict.fromkeys(photom_elements(instrument)) if instrument != "MIRI" else dict.fromkeys(
        (f, None) for f in imaging_filters("MIRI"))
    columns: dict[str, list] = {"filter": [f for f, _ in rows]}
    if instrument != "MIRI":
        columns["pupil"] = [p for _, p in rows]
    columns["abvega_offset"] = np.array([vega_ab_offset(instrument, f, p) for f, p in rows], np.float32)
    model = dm.ABVegaOffsetModel()
    model.abvega_offset = Table(columns)
    _catalog_reference_meta(model, "ABVEGAOFFSET", instrument,
                            f"Simulated {instrument} AB - Vega offsets (Vega's flux density at the pivot wavelength)")
    exp_types = IMAGING_EXP_TYPES[instrument]
    model.meta.instance["exposure"] = {"type": exp_types[0], "p_exptype": "".join(f"{t}|" for t in exp_types)}
    path = out_dir / f"jwst_{instrument}_abvegaoffset_sim.asdf".lower()
    return ReferenceFile("ABVEGAOFFSET", "ANY", _save_asdf(model, path), "GENERIC")


def write_catalog_references(instrument: str, out_dir: Path) -> list[ReferenceFile]:
    """Write the APCORR and ABVEGAOFFSET references of an imager (NIRCAM, NIRISS, MIRI),
    which the image3 source catalog reads (see the module docstring)."""
    inst = instrument.upper()
    if inst not in _APCORR_MODELS:
        return []
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return [_write_apcorr(inst, out_dir), _write_abvegaoffset(inst, out_dir)]


def write_optical_references(
    model: DetectorModel, out_dir: Path, elements: list[tuple[str, str]]
) -> list[ReferenceFile]:
    """Write FLAT (one per (filter, pupil) in ``elements``), PHOTOM, AREA, DISTORTION and
    FILTEROFFSET of one detector.

    Parameters
    ----------
    model : DetectorModel
        Full-frame model.
    out_dir : Path
        Directory (created if missing).
    elements : list of (filter, pupil)
        Optical elements the detector is used with (pupil N/A for MIRI).
    """
    if model.subarray is not None:
        raise ValueError("reference files are written from a full-frame model")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    info = model.detector
    yy, xx = np.indices(model.shape, dtype=np.float64)
    area = detector_distortion(info).relative_area(xx, yy)
    written = [_write_flat(model, out_dir, area, f, p) for f, p in dict.fromkeys(elements)]
    if info.instrument not in IMAGING_EXP_TYPES:  # NIRSpec: its slits' references are theirs
        return [*written, _write_distortion(model, out_dir)]
    written += [_write_photom(model, out_dir), _write_area(model, out_dir, area), _write_distortion(model, out_dir),
                _write_filteroffset(model, out_dir)]
    return written


def write_guider_references(model: DetectorModel, out_dir: Path) -> list[ReferenceFile]:
    """Write MASK, GAIN, READNOISE and FLAT of a guider (see the module docstring)."""
    info = model.detector
    if info.instrument != "FGS" or model.subarray is not None:
        raise ValueError("guider references are written from the full-frame model of GUIDER1 or GUIDER2")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data, err, dq = flat_field(model, np.ones(model.shape))
    flat = dm.FlatModel(data=data, err=err, dq=dq)
    _common(flat, "FLAT", model, f"Simulated flat of {info.name}: QE x g0/gain", None)
    flat.dq_def = _dq_def(["DO_NOT_USE", "NO_FLAT_FIELD"])
    flat_path = _save(flat, out_dir / reference_filename(info.instrument, "flat", info.name))
    return [ReferenceFile("MASK", info.name, write_mask(model, out_dir), "GENERIC"),
            ReferenceFile("GAIN", info.name, write_gain(model, out_dir), "GENERIC"),
            ReferenceFile("READNOISE", info.name, write_readnoise(model, out_dir), "GENERIC"),
            ReferenceFile("FLAT", info.name, flat_path, "GENERIC")]
