"""Small synthetic stage-2 inputs shared by the stage-2 tests: a ``_rate``/``_rateints``
product and reference files in the public formats."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy import units as u
from stdatamodels.jwst import datamodels as dm

from shared.datamodels import FitsProduct
from shared.imaging_wcs import distortion_model, window_reference
from shared.refdata import Window
from shared.wcs import SipDistortion, wcs_keywords

NY, NX = 48, 64
WINDOW = Window(xstart=101, ystart=201, xsize=NX, ysize=NY)
FULL = (512, 512)  # a small stand-in "full frame" for the reference files
PHOTMJSR = 0.25
DISTORTION = SipDistortion(3, (256.5, 256.5), {(2, 0): 3e-5, (1, 1): -2e-5}, {(0, 2): 4e-5, (2, 1): 1e-7})
V2V3 = (120.6, -527.5)  # of the stand-in frame's reference pixel, arcsec
DISTORTION_MODEL = distortion_model(DISTORTION, 0.031, *V2V3, FULL)
FILTER_OFFSET = (0.25, -0.5)  # FILTEROFFSET of F200W/CLEAR, column and row pixels


def rate_product(*, nints: int | None = None, sky: float = 2.0, seed: int = 3) -> FitsProduct:
    """A ``_rate`` (or ``_rateints`` with ``nints``): flat sky (DN/s) plus one star."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:NY, :NX]
    star = 40.0 * np.exp(-((x - 30.3) ** 2 + (y - 20.7) ** 2) / (2 * 1.2**2))
    shape = (NY, NX) if nints is None else (nints, NY, NX)
    sci = (sky + star + rng.normal(0.0, 0.01, shape)).astype(np.float32)
    kw = dict(FILENAME="jw01234001001_01101_00001_nrca1_rate.fits", INSTRUME="NIRCAM", DETECTOR="NRCA1",
              FILTER="F200W", PUPIL="CLEAR", EXP_TYPE="NRC_IMAGE", SUBARRAY="SUB64P", SUBSTRT1=WINDOW.xstart,
              SUBSTRT2=WINDOW.ystart, SUBSIZE1=NX, SUBSIZE2=NY, TMEASURE=21.0, BUNIT="DN/s", NINTS=nints or 1,
              **{"DATE-OBS": "2025-03-01", "TIME-OBS": "12:00:00.000"})
    kw.update(wcs_keywords(53.16, -27.78, 30.0, 0.031, NX, NY))
    v2, v3 = window_reference(DISTORTION_MODEL, WINDOW.xstart, WINDOW.ystart, NX, NY)
    kw.update(V2_REF=v2, V3_REF=v3, VPARITY=-1, V3I_YANG=0.0)
    dq = np.zeros(shape, np.uint32)
    product = FitsProduct("CubeModel" if nints else "ImageModel", keywords=kw, images=dict(
        SCI=sci, ERR=np.full(shape, 0.1, np.float32), DQ=dq, VAR_POISSON=np.full(shape, 0.006, np.float32),
        VAR_RNOISE=np.full(shape, 0.004, np.float32)))
    if nints:
        product.tables["INT_TIMES"] = np.array(
            [(i + 1, 60000.0 + i * 1e-3, 60000.0005 + i * 1e-3, 60000.001 + i * 1e-3, 0.0, 0.0, 0.0) for i in range(nints)],
            dtype=[("integration_number", ">i4"), ("int_start_MJD_UTC", ">f8"), ("int_mid_MJD_UTC", ">f8"),
                   ("int_end_MJD_UTC", ">f8"), ("int_start_BJD_TDB", ">f8"), ("int_mid_BJD_TDB", ">f8"),
                   ("int_end_BJD_TDB", ">f8")])
    return product


def _ref_meta(model, reftype: str) -> None:
    model.meta.reftype = reftype
    model.meta.instrument.name = "NIRCAM"
    model.meta.instrument.detector = "NRCA1"
    model.meta.useafter = "2022-01-01T00:00:00"
    model.meta.description = f"test {reftype}"
    model.meta.author = "test"
    model.meta.pedigree = "DUMMY"
    model.meta.telescope = "JWST"


def write_reference_files(directory: Path, shape: tuple[int, int] = FULL) -> dict[str, Path]:
    """FLAT, PHOTOM, AREA (FITS) files with arrays of ``shape`` (FULL: the stand-in full
    frame, cut to WINDOW; (NY, NX): the window itself), and DISTORTION (DISTORTION_MODEL)
    and FILTEROFFSET (FILTER_OFFSET for F200W/CLEAR) ASDF files."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    flat_data = (0.8 + 0.4 * xx / shape[1]).astype(np.float32)
    nan_at = (205, 110) if shape == FULL else (5, 10)
    flat_data[nan_at] = np.nan  # window pixel (5, 10)
    flat = dm.FlatModel(data=flat_data, dq=np.zeros(shape, np.uint32), err=np.full(shape, 0.01, np.float32))
    _ref_meta(flat, "FLAT")
    flat.meta.instrument.filter = "F200W"
    flat.meta.instrument.pupil = "CLEAR"
    flat.meta.subarray.name = "GENERIC"
    flat.meta.subarray.xstart, flat.meta.subarray.ystart = 1, 1  # where jwst's flat_field cuts the window
    flat.meta.subarray.xsize, flat.meta.subarray.ysize = shape[1], shape[0]
    flat.save(directory / "flat.fits")
    photom = dm.NrcImgPhotomModel(phot_table=np.array(
        [("F200W", "CLEAR", PHOTMJSR, 0.002), ("F150W", "CLEAR", 0.3, 0.003)],
        dtype=[("filter", "S12"), ("pupil", "S12"), ("photmjsr", "<f4"), ("uncertainty", "<f4")]))
    _ref_meta(photom, "PHOTOM")
    photom.meta.photometry.pixelarea_steradians = 2.26e-14
    photom.meta.photometry.pixelarea_arcsecsq = 9.61e-4
    photom.save(directory / "photom.fits")
    area = dm.PixelAreaModel(data=(1.0 + 0.01 * yy / shape[0]).astype(np.float32))
    _ref_meta(area, "AREA")
    area.save(directory / "area.fits")
    distortion = dm.DistortionModel(model=DISTORTION_MODEL, input_units=u.pix, output_units=u.arcsec)
    _ref_meta(distortion, "DISTORTION")
    distortion.meta.exposure.type = "NRC_IMAGE"
    distortion.meta.instrument.module, distortion.meta.instrument.channel = "A", "SHORT"
    distortion.meta.instrument.p_pupil = "ANY|"
    distortion.save(directory / "distortion.asdf")
    offsets = dm.FilteroffsetModel(instrument="NIRCAM", filters=[
        {"filter": "F200W", "pupil": "CLEAR", "column_offset": FILTER_OFFSET[0], "row_offset": FILTER_OFFSET[1]},
        {"filter": "F150W", "pupil": "CLEAR", "column_offset": 3.0, "row_offset": 3.0}])
    _ref_meta(offsets, "FILTEROFFSET")
    offsets.meta.instrument.module, offsets.meta.instrument.channel = "A", "SHORT"
    offsets.save(directory / "filteroffset.asdf")
    paths = {t: directory / f"{t}.fits" for t in ("flat", "photom", "area")}
    return {**paths, "distortion": directory / "distortion.asdf", "filteroffset": directory / "filteroffset.asdf"}
