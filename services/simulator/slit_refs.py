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

FLAT (CLEAR/PRISM) and DISTORTION of NRS1 are written with the imaging ones
(:mod:`services.simulator.optical_refs`).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from astropy.io import fits
from stdatamodels.jwst import datamodels as dm

from shared.instruments import detector

from .distortion import detector_distortion_model
from .reffiles import AUTHOR, PEDIGREE, USEAFTER, ReferenceFile, _common, _save
from .spectrograph import LRS, LRS_EXP_TYPE, NIRSPEC_FS, NRS_FS_EXP_TYPE, SlitSpectrograph

__all__ = ["nirspec_fs_filename", "slit_trace_table", "slit_vertices", "write_lrs_references",
           "write_nirspec_fs_references", "write_slit_references"]

_PATHLOSS_OFFSETS_PX = np.arange(-3.0, 3.01, 0.5)  # LRS: across the slit (rows): wider than its 4.6 px
_NRS_PATHLOSS_ACROSS = np.linspace(-0.5, 0.5, 21)  # fraction of the slit width
_NRS_PATHLOSS_ALONG = np.linspace(-0.5, 0.5, 3)  # fraction of the slit length
_NRS_PATHLOSS_WAVELENGTH = np.arange(0.55, 5.4501, 0.01)  # um
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


def nirspec_fs_filename(reftype: str, detector_name: str = "NRS1") -> str:
    """``jwst_nirspec_<reftype>_<detector>_fixedslit_sim.fits``."""
    return f"jwst_nirspec_{reftype}_{detector_name}_fixedslit_sim.fits".lower()


def _slit_common(ref, reftype: str, detector_model, description: str, exp_type: str) -> None:
    _common(ref, reftype, detector_model, description, None, window=False)
    ref.meta.exposure.type = exp_type
    ref.meta.exposure.p_exptype = f"{exp_type}|"


def write_lrs_references(model: SlitSpectrograph, detector_model, out_dir: Path) -> list[ReferenceFile]:
    """SPECWCS, PHOTOM and PATHLOSS of the LRS for the detector of ``detector_model``
    (MIRIMAGE), in the public formats (see the module docstring)."""
    from .optical_refs import mean_gain

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = detector_model.detector.name
    if name != model.detector:
        raise ValueError(f"the LRS images on {model.detector}, not {name}")

    table = slit_trace_table(model)
    specwcs = dm.MiriLRSSpecwcsModel(wavetable=table, x_ref=model.imx, y_ref=model.imy, **slit_vertices(model))
    _slit_common(specwcs, "SPECWCS", detector_model, "Simulated MIRI LRS slit: trace and wavelengths per row",
                 LRS_EXP_TYPE)
    specwcs.meta.instrument.filter = model.filter
    written = [ReferenceFile("SPECWCS", name, _save(specwcs, out_dir / _lrs_filename("specwcs")), "GENERIC")]

    # PHOTOM: PHOTMJSR and the relative response against wavelength (1 at the throughput's peak).
    waves, mjy = model.response(mean_gain(detector_model))
    mjysr = mjy / model.pixel_area_sr
    value = float(np.interp(model.throughput_centre, waves, mjysr))
    relresp = mjysr / value
    n = waves.size
    photom_table = np.zeros(1, dtype=[("filter", "S12"), ("subarray", "S17"), ("photmjsr", "<f4"),
                                      ("uncertainty", "<f4"), ("nelem", "<i2"), ("wavelength", "<f4", (n,)),
                                      ("relresponse", "<f4", (n,)), ("reluncertainty", "<f4", (n,))])
    photom_table[0] = (model.filter, "FULL", value, 0.01 * value, n, waves, relresp, 0.01 * relresp)
    photom = dm.MirLrsPhotomModel(phot_table=photom_table)
    _slit_common(photom, "PHOTOM", detector_model, "Simulated MIRI LRS slit: point-source flux calibration",
                 LRS_EXP_TYPE)
    photom.meta.photometry.pixelarea_steradians = model.pixel_area_sr
    photom.meta.photometry.pixelarea_arcsecsq = model.pixel_scale**2
    written.append(ReferenceFile("PHOTOM", name, _save(photom, out_dir / _lrs_filename("photom")), "GENERIC"))

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


def _nirspec_specwcs(models: list[SlitSpectrograph], detector_model, path: Path) -> Path:
    first = models[0]
    primary = fits.PrimaryHDU()
    h = primary.header
    for key, value, comment in (
        ("TELESCOP", "JWST", "telescope"), ("ORIGIN", "jwst-dms", "institution"),
        ("INSTRUME", "NIRSPEC", "instrument"), ("DETECTOR", first.detector, "detector"),
        ("EXP_TYPE", NRS_FS_EXP_TYPE, "exposure type"), ("P_EXP_TY", f"{NRS_FS_EXP_TYPE}|", "exposure types (p_exptype)"),
        ("FILTER", first.filter, "filter wheel element"), ("GRATING", first.grating, "grating wheel element"),
        ("REFTYPE", "SPECWCS", "reference type"), ("DISPAXIS", 1, "dispersion along x (columns)"),
        ("SUBARRAY", "GENERIC", "applies to every window"),
        ("USEAFTER", USEAFTER, "use after"), ("PEDIGREE", PEDIGREE, "pedigree"), ("AUTHOR", AUTHOR, "author"),
        ("DESCRIP", "Simulated NIRSpec fixed slits PRISM/CLEAR: trace per column", ""),
        ("DATE", USEAFTER, "USEAFTER: the same model, the same bytes"),
    ):
        h[key] = (value, comment)
    h.add_comment("One BINTABLE per fixed slit (EXTNAME the slit): per detector column of its spectrum,")
    h.add_comment("x_center/y_center (column and trace offsets from IMX-1, IMY-1, pixels), wavelength (um)")
    h.add_comment("and the corners x0..y3 of the slit's image on the column (upper left, upper right,")
    h.add_comment("lower right, lower left).")
    hdus = [primary]
    for model in models:
        table = slit_trace_table(model)
        hdu = fits.BinTableHDU.from_columns(
            [fits.Column(name=c, format="D", unit="um" if c == "wavelength" else "pixel", array=table[c])
             for c in _TABLE_COLUMNS], name=model.slit)
        e = hdu.header
        e["IMX"] = (model.imx, "1-based column of the slit centre at 2 um")
        e["IMY"] = (model.imy, "1-based row of the slit centre at 2 um")
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


def _nirspec_photom(models: list[SlitSpectrograph], detector_model, path: Path) -> Path:
    from .optical_refs import mean_gain

    g0 = mean_gain(detector_model)
    curves = [m.response(g0) for m in models]
    n = max(w.size for w, _ in curves)
    table = np.zeros(len(models), dtype=[
        ("filter", "S12"), ("grating", "S15"), ("slit", "S15"), ("photmj", "<f4"), ("uncertainty", "<f4"),
        ("nelem", "<i2"), ("wavelength", "<f4", (n,)), ("relresponse", "<f4", (n,)),
        ("reluncertainty", "<f4", (n,))])
    for k, (model, (waves, mjy)) in enumerate(zip(models, curves, strict=True)):
        value = float(np.interp(model.throughput_centre, waves, mjy))
        pad = np.zeros(n - waves.size)
        rel = np.concatenate([mjy / value, pad])
        table[k] = (model.filter, model.grating, model.slit, value, 0.01 * value, waves.size,
                    np.concatenate([waves, pad]), rel, 0.01 * rel)
    photom = dm.NrsFsPhotomModel(phot_table=table)
    _slit_common(photom, "PHOTOM", detector_model, "Simulated NIRSpec fixed slits: point-source flux calibration",
                 NRS_FS_EXP_TYPE)
    photom.meta.photometry.pixelarea_steradians = models[0].pixel_area_sr
    photom.meta.photometry.pixelarea_arcsecsq = models[0].pixel_scale**2
    return _save(photom, path)


def _nirspec_pathloss(models: list[SlitSpectrograph], detector_model, path: Path) -> Path:
    wl = _NRS_PATHLOSS_WAVELENGTH
    across, along = _NRS_PATHLOSS_ACROSS, _NRS_PATHLOSS_ALONG
    pathloss = dm.PathlossModel()
    for model in models:
        passed = model.slit_transmission(wl[:, None], across[None, :] * model.slit_width)  # (nwave, nx)
        data = np.repeat(passed[:, None, :], along.size, axis=1).astype(np.float32)  # (nwave, ny, nx)
        aperture = {
            "name": model.slit, "shutters": 0,
            "pointsource_data": data, "pointsource_err": np.zeros_like(data),
            "pointsource_wcs": {"crpix1": 1.0, "crval1": float(across[0]), "cdelt1": float(across[1] - across[0]),
                                "crpix2": 1.0, "crval2": float(along[0]), "cdelt2": float(along[1] - along[0]),
                                "crpix3": 1.0, "crval3": float(wl[0]) * 1e-6,
                                "cdelt3": float(wl[1] - wl[0]) * 1e-6},
            "uniform_data": np.ones(wl.size, np.float32), "uniform_err": np.zeros(wl.size, np.float32),
            "uniform_wcs": {"crpix1": 1.0, "crval1": float(wl[0]) * 1e-6, "cdelt1": float(wl[1] - wl[0]) * 1e-6},
        }
        pathloss.apertures.append(aperture)
    _slit_common(pathloss, "PATHLOSS", detector_model, "Simulated NIRSpec fixed slits: point-source slit losses",
                 NRS_FS_EXP_TYPE)
    return _save(pathloss, path)


def write_nirspec_fs_references(detector_model, out_dir: Path) -> list[ReferenceFile]:
    """SPECWCS, PHOTOM and PATHLOSS of every NIRSpec fixed slit (PRISM/CLEAR) for NRS1
    (see the module docstring)."""
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
    ]


def write_slit_references(models, detector_model, out_dir: Path) -> list[ReferenceFile]:
    """The references of the slits ``models`` used on the detector of ``detector_model``:
    the LRS's, and (one set for all five) the NIRSpec fixed slits'."""
    exp_types = {m.exp_type for m in models}
    written = []
    if LRS_EXP_TYPE in exp_types:
        written += write_lrs_references(LRS, detector_model, out_dir)
    if NRS_FS_EXP_TYPE in exp_types:
        written += write_nirspec_fs_references(detector_model, out_dir)
    return written
