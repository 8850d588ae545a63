"""calwebb_image2 over small synthetic products: references read from files in the public
formats, every step's keywords, the products the public data models open, skipped steps,
TSO integrations, backgrounds, and Level-2 association parsing."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS
from stdatamodels.jwst import datamodels as dm

from services.stage2.asn import parse_level2_asn
from services.stage2.pipeline import IMAGE2, run_image2
from shared.asn import AssociationError
from shared.datamodels import write_product
from shared.datamodels.dqflags import PIXEL
from shared.errors import InputError
from shared.imaging_wcs import TelescopePointing, imaging_gwcs, max_separation_mas
from shared.refdata import Reference, ReferenceFileError, load_reference
from shared.resample import pixel_area_arcsec2
from tests.stage2_fixtures import (
    DISTORTION_MODEL,
    FILTER_OFFSET,
    FULL,
    NX,
    NY,
    PHOTMJSR,
    WINDOW,
    rate_product,
    write_reference_files,
)


@pytest.fixture
def reference_files(tmp_path):
    """FLAT, PHOTOM, AREA (full-frame arrays of FULL), DISTORTION and FILTEROFFSET files."""
    return write_reference_files(tmp_path)


@pytest.fixture
def refs(reference_files) -> dict[str, Reference]:
    return {t: load_reference(t, path, WINDOW, FULL) for t, path in reference_files.items()}


def open_strictly(path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a schema warning means a broken product
        return dm.open(path)


def test_references_are_cut_to_the_window(reference_files, refs):
    with fits.open(reference_files["flat"]) as hdul:
        full = hdul["SCI"].data
    flat = refs["flat"].get("SCI")
    np.testing.assert_array_equal(flat[~np.isnan(flat)], full[200:248, 100:164][~np.isnan(full[200:248, 100:164])])
    assert flat.shape == refs["area"].get("SCI").shape == (NY, NX) and refs["flat"].get("ERR") is not None
    assert refs["photom"].header["PIXAR_SR"] == pytest.approx(2.26e-14) and len(refs["photom"].tables["PHOTOM"]) == 2
    # ASDF references: the tree entries the steps use, and the meta under FITS names.
    assert refs["distortion"].header["REFTYPE"].upper() == "DISTORTION" and refs["distortion"].header["DETECTOR"] == "NRCA1"
    x, y = np.array([0.0, 100.0, 511.0]), np.array([0.0, 300.0, 511.0])
    np.testing.assert_allclose(refs["distortion"].tree["model"](x, y), DISTORTION_MODEL(x, y), rtol=0, atol=1e-12)
    assert refs["filteroffset"].tree["filters"][0]["column_offset"] == FILTER_OFFSET[0]
    with pytest.raises(ReferenceFileError, match="is not an ASDF file, its public format"):
        load_reference("distortion", reference_files["flat"], WINDOW, FULL)
    with pytest.raises(ReferenceFileError, match="is a FILTEROFFSET reference \\(its meta.reftype\\), not DISTORTION"):
        load_reference("distortion", reference_files["filteroffset"], WINDOW, FULL)
    with pytest.raises(ReferenceFileError, match="fits neither"):
        load_reference("flat", reference_files["flat"], WINDOW, (1024, 1024))


def test_cal_and_i2d_are_calibrated_and_open_in_the_public_models(refs, tmp_path):
    rate = rate_product()
    out = run_image2(rate, refs, context="dms_0007.ctx", software_version="9.9", created="2025-03-01T12:00:00",
                     asn_table="jw01234-o001_20250301t120000_image2_00001_asn.json", asn_pool="jw01234_pool.csv")
    assert out.statuses == {"bkg_subtract": "SKIPPED", "assign_wcs": "COMPLETE", "flat_field": "COMPLETE",
                            "photom": "COMPLETE", "resample": "COMPLETE"}
    assert [s for s, _ in out.products()] == ["cal", "i2d"]
    cal_path = write_product(tmp_path / "x_cal.fits", out.cal)
    cal = open_strictly(cal_path)
    assert type(cal).__name__ == "ImageModel"
    assert cal.meta.bunit_data == cal.meta.bunit_err == "MJy/sr"
    assert cal.meta.photometry.conversion_megajanskys == pytest.approx(PHOTMJSR)
    assert cal.meta.photometry.pixelarea_steradians == pytest.approx(2.26e-14)
    assert (cal.meta.cal_step.assign_wcs, cal.meta.cal_step.flat_field, cal.meta.cal_step.photom,
            cal.meta.cal_step.bkg_subtract) == ("COMPLETE", "COMPLETE", "COMPLETE", "SKIPPED")
    assert cal.meta.ref_file.flat.name == "crds://flat.fits" and cal.meta.ref_file.distortion.name == "crds://distortion.asdf"
    assert cal.meta.ref_file.crds.context_used == "dms_0007.ctx" and cal.meta.calibration_software_version == "9.9"
    assert cal.meta.asn.table_name.endswith("_asn.json") and cal.meta.asn.pool_name == "jw01234_pool.csv"
    # SCI / flat * PHOTMJSR; the NaN-flat pixel flagged, and NaN in SCI, ERR and the
    # variances like every DO_NOT_USE pixel (as the public pipeline leaves a _cal).
    flat = refs["flat"].get("SCI")
    good = np.isfinite(flat)
    np.testing.assert_allclose(cal.data[good], (rate.images["SCI"] / flat * PHOTMJSR)[good], rtol=1e-5)
    assert cal.dq[5, 10] & PIXEL["NO_FLAT_FIELD"] and cal.dq[5, 10] & PIXEL["DO_NOT_USE"]
    unusable = (cal.dq & PIXEL["DO_NOT_USE"]) != 0
    assert unusable.sum() == 1
    for array in (cal.data, cal.err, cal.var_poisson, cal.var_rnoise, cal.var_flat):
        np.testing.assert_array_equal(np.isnan(array), unusable)
    np.testing.assert_allclose(cal.err, np.sqrt(cal.var_poisson + cal.var_rnoise + cal.var_flat), rtol=1e-5)
    np.testing.assert_allclose(cal.area, refs["area"].get("SCI"))
    # meta.wcs is the gwcs of the window through the DISTORTION model (with the F200W filter
    # offset) at the header's pointing; the SCI header holds its TAN-SIP approximation.
    assert cal.meta.ref_file.filteroffset.name == "crds://filteroffset.asdf"
    header = fits.getheader(cal_path, "SCI")
    assert header["CTYPE1"] == "RA---TAN-SIP" and header["BUNIT"] == "MJy/sr"
    pointing = TelescopePointing.from_keywords(rate.keywords)
    expected = imaging_gwcs(DISTORTION_MODEL, pointing, xstart=WINDOW.xstart, ystart=WINDOW.ystart, xsize=NX,
                            ysize=NY, filter_offset=FILTER_OFFSET)
    assert cal.meta.wcs.available_frames == ["detector", "v2v3", "v2v3vacorr", "world"]
    assert cal.meta.wcs.bounding_box.bounding_box(order="F") == ((-0.5, NX - 0.5), (-0.5, NY - 0.5))
    x, y = np.meshgrid(np.arange(-0.5, NX, 7.0), np.arange(-0.5, NY, 7.0))
    np.testing.assert_allclose(np.array(cal.meta.wcs(x, y)), np.array(expected(x, y)), rtol=0, atol=1e-12)
    assert max_separation_mas(cal.meta.wcs, WCS(header), (NY, NX), step=2.0) < 1e-3
    # Without the filter offset the window centre would be at RA_REF/DEC_REF; with it,
    # 0.25 px and -0.5 px (times the 0.031" pixels, turned by the distortion) away.
    no_offset = imaging_gwcs(DISTORTION_MODEL, pointing, xstart=WINDOW.xstart, ystart=WINDOW.ystart, xsize=NX,
                             ysize=NY)
    np.testing.assert_allclose(no_offset((NX - 1) / 2, (NY - 1) / 2), (53.16, -27.78), rtol=0, atol=1e-11)
    assert max_separation_mas(expected, WCS(header), (NY, NX)) < 1e-3
    assert 0.3 * 31 < max_separation_mas(no_offset, WCS(header), (NY, NX)) < 0.7 * 31
    assert header["S_REGION"].startswith("POLYGON ICRS ") and cal.meta.wcsinfo.s_region == header["S_REGION"]

    i2d_path = write_product(tmp_path / "x_i2d.fits", out.i2d)
    i2d = open_strictly(i2d_path)
    assert type(i2d).__name__ == "ImageModel" and i2d.meta.bunit_data == "MJy/sr"
    assert (i2d.meta.resample.pointings, i2d.meta.resample.weight_type, i2d.meta.resample.pixfrac) == (1, "ivm", 1.0)
    assert i2d.meta.cal_step.resample == "COMPLETE" and i2d.wht.shape == i2d.data.shape and i2d.con.max() == 1
    i2d_wcs = WCS(fits.getheader(i2d_path, "SCI"))
    assert "SIP" not in i2d_wcs.wcs.ctype[0]
    assert i2d.meta.wcs.available_frames == ["detector", "world"]
    assert max_separation_mas(i2d.meta.wcs, i2d_wcs, i2d.data.shape, step=3.0) < 1e-4
    # Surface brightness is kept, and the star's flux (surface brightness x pixel solid
    # angle, sky subtracted) is conserved within 0.5 % although the distortion changes
    # pixel areas by a few percent here.
    cal_wcs = WCS(header)
    assert np.nanmedian(i2d.data) == pytest.approx(np.nanmedian(cal.data), rel=5e-3)
    ra, dec = cal_wcs.all_pix2world([30.3], [20.7], 0)
    xs, ys = (float(v[0]) for v in i2d_wcs.all_world2pix(ra, dec, 0))

    def star_flux(data, wcs, x0, y0):
        y, x = np.mgrid[: data.shape[0], : data.shape[1]]
        box = (np.abs(x - x0) <= 8) & (np.abs(y - y0) <= 8)
        ring = (np.abs(x - x0) <= 14) & (np.abs(y - y0) <= 14) & ~box
        sky = np.nanmedian(data[ring])
        area = np.array([pixel_area_arcsec2(wcs, i, j) for i, j in zip(x[box], y[box], strict=True)])
        return np.nansum((data[box] - sky) * area)

    assert star_flux(i2d.data, i2d_wcs, xs, ys) == pytest.approx(star_flux(cal.data, cal_wcs, 30.3, 20.7), rel=5e-3)


def test_without_references_steps_are_skipped_and_the_pointing_wcs_kept(tmp_path, caplog):
    rate = rate_product()
    out = run_image2(rate, {}, created="2025-03-01T12:00:00")
    assert out.statuses["flat_field"] == out.statuses["photom"] == "SKIPPED"
    assert out.statuses["assign_wcs"] == "COMPLETE" and out.references == {}
    assert any("no DISTORTION reference" in n for n in out.notes)
    assert "no DISTORTION reference" in caplog.text and "no FLAT reference" in caplog.text
    cal = open_strictly(write_product(tmp_path / "x_cal.fits", out.cal))
    assert cal.meta.bunit_data == "DN/s" and cal.meta.ref_file.flat.name == "N/A"
    np.testing.assert_array_equal(cal.data, rate.images["SCI"])
    header = fits.getheader(tmp_path / "x_cal.fits", "SCI")
    assert header["CTYPE1"] == "RA---TAN" and "A_ORDER" not in header
    ingest_wcs = WCS(fits.Header({k: rate.keywords[k] for k in ("CRPIX1", "CRPIX2", "CRVAL1", "CRVAL2", "CTYPE1",
                                                                "CTYPE2", "CDELT1", "CDELT2", "PC1_1", "PC1_2",
                                                                "PC2_1", "PC2_2")}))
    x, y = np.meshgrid(np.arange(0, NX, 9.0), np.arange(0, NY, 9.0))
    np.testing.assert_allclose(np.array(WCS(header).all_pix2world(x, y, 0)),
                               np.array(ingest_wcs.all_pix2world(x, y, 0)), atol=1e-12)
    assert cal.meta.wcs.available_frames == ["detector", "world"]
    assert max_separation_mas(cal.meta.wcs, ingest_wcs, (NY, NX), step=3.0) < 1e-4


def test_photom_without_a_row_for_the_filter_is_skipped(refs):
    rate = rate_product()
    rate.keywords["FILTER"] = "F090W"
    out = run_image2(rate, refs)
    assert out.statuses["photom"] == "SKIPPED" and out.statuses["flat_field"] == "COMPLETE"
    assert any("no row for FILTER=F090W" in n for n in out.notes)
    assert out.cal.keywords["BUNIT"] == "DN/s" and "PHOTMJSR" not in out.cal.hdu_keywords.get("SCI", {})
    assert out.cal.keywords["R_PHOTOM"] == "N/A"


def test_tso_integrations_become_calints_without_i2d(refs, tmp_path):
    rateints = rate_product(nints=3)
    out = run_image2(rateints, refs, created="2025-03-01T12:00:00")
    assert out.is_cube and out.i2d is None and "resample" not in out.statuses
    assert [s for s, _ in out.products()] == ["calints"]
    path = write_product(tmp_path / "x_calints.fits", out.cal)
    cube = open_strictly(path)
    assert type(cube).__name__ == "CubeModel" and cube.data.shape == (3, NY, NX)
    assert cube.meta.bunit_data == "MJy/sr" and len(cube.int_times) == 3
    flat = refs["flat"].get("SCI")
    good = np.isfinite(flat)
    np.testing.assert_allclose(cube.data[2][good], (rateints.images["SCI"][2] / flat * PHOTMJSR)[good],
                               rtol=1e-5)


def test_background_exposures_are_subtracted_and_bsub_saved_on_request(refs, tmp_path):
    science = rate_product(sky=2.0)
    backgrounds = [rate_product(sky=2.0, seed=s) for s in (10, 11, 12)]
    for b in backgrounds:  # dedicated backgrounds have no star
        b.images["SCI"] = np.full((NY, NX), 2.0, np.float32) + np.random.default_rng(1).normal(0, 0.01, (NY, NX))
    out = run_image2(science, refs, backgrounds=backgrounds, params=IMAGE2.params(save_bsub=True))
    assert out.statuses["bkg_subtract"] == "COMPLETE"
    assert [s for s, _ in out.products()] == ["bsub", "cal", "i2d"]
    bsub = open_strictly(write_product(tmp_path / "x_bsub.fits", out.bsub))
    assert bsub.meta.bunit_data == "DN/s" and bsub.meta.cal_step.bkg_subtract == "COMPLETE"
    assert abs(np.median(bsub.data)) < 0.01  # sky of 2 DN/s removed
    np.testing.assert_allclose(bsub.var_rnoise, 0.004 + 0.004 / 3, rtol=1e-5)
    assert abs(np.nanmedian(out.cal.images["SCI"])) < 0.01 * PHOTMJSR
    assert run_image2(science, refs, backgrounds=backgrounds).bsub is None  # not by default


def test_background_of_another_window_is_refused(refs):
    other = rate_product()
    other.images["SCI"] = other.images["SCI"][:, :32]
    with pytest.raises(InputError, match="readout window"):
        run_image2(rate_product(), refs, backgrounds=[other])


def test_skipping_by_parameter(refs):
    out = run_image2(rate_product(), refs, params=IMAGE2.params(skip={"flat_field", "resample"}))
    assert out.statuses["flat_field"] == out.statuses["resample"] == "SKIPPED" and out.i2d is None
    assert out.cal.keywords["R_FLAT"] == "N/A" and "VAR_FLAT" not in out.cal.images
    with pytest.raises(ValueError, match="unknown step"):
        IMAGE2.params(skip={"flatfield"})


ASN = {
    "asn_type": "image2", "asn_rule": "candidate_Asn_Lv2Image", "version_id": "20250301t120000",
    "code_version": "0.1.0", "degraded_status": "No known degraded exposures in association.",
    "program": "01234", "constraints": "none", "asn_id": "o001", "target": "1",
    "asn_pool": "jw01234_20250301t120000_pool.csv",
    "products": [{"name": "jw01234001001_01101_00001_nrca1", "members": [
        {"expname": "jw01234001001_01101_00001_nrca1_rate.fits", "exptype": "science", "exposerr": "null"},
        {"expname": "jw01234003001_01101_00001_nrca1_rate.fits", "exptype": "background", "exposerr": "null"},
        {"expname": "jw01234001001_01101_00001_nrca1_cat.ecsv", "exptype": "sourcecat", "exposerr": "null"},
    ]}],
}


def test_level2_association_parsing():
    from jwst.associations import load_asn

    text = json.dumps(ASN)
    assert load_asn(text)["asn_id"] == "o001"  # the public pipeline reads it too
    asn = parse_level2_asn(text, "a_asn.json")
    (product,) = asn.products
    assert (asn.asn_type, asn.asn_id, asn.asn_pool) == ("image2", "o001", ASN["asn_pool"])
    assert product.science == "jw01234001001_01101_00001_nrca1_rate.fits"
    assert product.backgrounds == ("jw01234003001_01101_00001_nrca1_rate.fits",)
    assert product.sourcecat == "jw01234001001_01101_00001_nrca1_cat.ecsv" and product.ignored == ()
    assert product.direct_image is None and product.segmap is None
    for broken, message in [
        ("{", "not valid JSON"),
        (json.dumps({**ASN, "asn_type": "spec3"}), "asn_type 'spec3'"),
        (json.dumps({**ASN, "products": []}), "has no products"),
        (json.dumps({**ASN, "products": [{"name": "x", "members": [ASN["products"][0]["members"][1]]}]}),
         "0 science members"),
    ]:
        with pytest.raises(AssociationError, match=message):
            parse_level2_asn(broken, "a_asn.json")
