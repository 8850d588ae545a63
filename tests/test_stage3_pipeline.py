"""calwebb_image3 and calwebb_tso3 over synthetic members (tests/stage3_scenes.py), and
the products they write opened with the public data models.

Tolerances: with an absolute catalog, the ``_crf`` WCSs match the truth to 0.02 pixel
RMS and the ``_cat`` sky positions of isolated S/N > 50 stars to 0.05 pixel RMS; the
recorded sky levels match the injected ones to a tenth of the pixel noise; >= 90 % of the
cosmic rays are flagged in the ``_crf``; the ``_phot`` light curve gives the injected 2 %
transit depth within 5 %. Every product with a WCS carries a gwcs (``meta.wcs``) that
agrees with its SCI-header WCS to 1e-3 mas: the ``_crf`` the member's gwcs turned by the
tweakreg correction, the ``_i2d``/``_segm`` the grid's.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager

import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.table import QTable
from astropy.wcs import WCS, FITSFixedWarning
from stdatamodels.jwst import datamodels as dm
from stdatamodels.jwst.datamodels.util import NoTypeWarning

from services.stage3.parts import survey_from_bytes, survey_to_bytes
from services.stage3.pipeline import (
    IMAGE3,
    TSO3,
    SplitRun,
    image3_median,
    image3_member,
    image3_mosaic,
    image3_single,
    member_meta,
    run_image3,
    run_tso3,
    survey_member,
)
from services.stage3.products import (
    card_value,
    member_wcs,
    set_keywords,
)
from shared.datamodels import read_product, write_product
from shared.datamodels.dqflags import PIXEL
from shared.imaging_wcs import max_separation_mas
from shared.messages import InputRef
from shared.pipeline import provenance_cards
from tests.stage3_scenes import (
    SCALE,
    cal_product,
    calints_product,
    make_exposures,
    make_sky,
    make_time_series,
)

SKY_LEVELS = [0.0, 0.3, 0.15, 0.45]  # MJy/sr
POINTING_ERRORS = [(0.05, -0.03), (-0.1, 0.2), (0.25, -0.1), (0.0, 0.3)]
COMMON = dict(software_version="9.9.9", created="2025-01-01T00:00:00", context="jwst_0042.pmap",
              asn_table="jw01234-o001_20250101t000000_image3_00001_asn.json")
ASN = {"asn_pool": "jw01234_20250101t000000_pool.csv"}


@pytest.fixture(scope="module")
def sky():
    return make_sky(150, radius_arcsec=3.5, seed=3)


@pytest.fixture(scope="module")
def scene(sky):
    return make_exposures(sky, pointing_errors=POINTING_ERRORS, sky_levels=SKY_LEVELS, n_cr=40)


@pytest.fixture(scope="module")
def members(scene, tmp_path_factory):
    """The members as stage 3 reads them: written and read back through the FITS layer."""
    tmp = tmp_path_factory.mktemp("members")
    out = []
    for k, exp in enumerate(scene):
        product = cal_product(exp, exposure_number=k + 1)
        out.append(read_product(write_product(tmp / product.keywords["FILENAME"], product)))
    return out


@pytest.fixture(scope="module")
def catalog_refs(tmp_path_factory):
    """The simulator's NIRCam APCORR and ABVEGAOFFSET, loaded as a pipeline gets them."""
    from services.simulator.optical_refs import write_catalog_references
    from shared.refdata import Window, load_reference

    written = write_catalog_references("NIRCAM", tmp_path_factory.mktemp("catalog_refs"))
    return {r.reftype.lower(): load_reference(r.reftype.lower(), r.path, Window(950, 900, 160, 160), (2048, 2048))
            for r in written}


@pytest.fixture(scope="module")
def image3(members, sky, catalog_refs):
    return run_image3(members, ASN, abs_refcat=(sky.ra, sky.dec), refs=catalog_refs, **COMMON)


def test_image3_statuses_and_member_products(image3, scene):
    assert image3.statuses == dict.fromkeys(
        ("tweakreg", "skymatch", "outlier_detection", "resample", "source_catalog"), "COMPLETE")
    assert len(image3.crf) == 4
    noise = float(np.median(scene[0].err))
    hits = crs = 0
    for crf, exp, level in zip(image3.crf, scene, SKY_LEVELS, strict=True):
        assert card_value(crf, "S_TWKREG") == "COMPLETE" and card_value(crf, "S_OUTLIR") == "COMPLETE"
        assert card_value(crf, "TWKREF") == "absolute" and card_value(crf, "TWKNMAT") >= 15
        assert card_value(crf, "TWKABS") == "ALIGNED" and card_value(crf, "TWKANOTE") is None
        assert card_value(crf, "BKGLEVEL") == pytest.approx(level, abs=0.1 * noise)
        assert card_value(crf, "BKGSUB") is True
        wcs = member_wcs(crf)
        yy, xx = np.mgrid[0:160:10, 0:160:10]
        x, y = exp.true_wcs.world_to_pixel_values(*wcs.pixel_to_world_values(xx.ravel() * 1.0, yy.ravel() * 1.0))
        assert np.sqrt(np.mean((x - xx.ravel()) ** 2 + (y - yy.ravel()) ** 2)) <= 0.02
        # The gwcs turned with the FITS WCS: the _crf's meta.wcs is the aligned one, frames kept.
        gw = crf.extra_meta["meta.wcs"]
        assert gw.available_frames == ["detector", "v2v3", "v2v3vacorr", "world"]
        assert max_separation_mas(gw, wcs, (160, 160)) < 1e-3
        assert max_separation_mas(exp.gwcs, wcs, (160, 160)) > 10.0  # it did move
        flagged = (crf.images["DQ"] & PIXEL["OUTLIER"]) > 0
        assert np.all(np.isnan(crf.images["SCI"][flagged])) and np.all(np.isnan(crf.images["ERR"][flagged]))
        hits += int((flagged & exp.cr_mask).sum())
        crs += int(exp.cr_mask.sum())
        assert card_value(crf, "CAL_VER") == "9.9.9" and card_value(crf, "ASNPOOL") == ASN["asn_pool"]
    assert hits >= 0.9 * crs


def test_image3_level3_keywords(image3, members):
    i2d = image3.i2d
    assert set(i2d.images) == {"SCI", "ERR", "CON", "WHT", "VAR_POISSON", "VAR_RNOISE", "VAR_FLAT"}
    assert i2d.images["CON"].dtype == np.int32 and i2d.images["CON"].max() == 15
    values = {k: card_value(i2d, k) for k in ("NDRIZ", "PIXFRAC", "RESWHT", "BUNIT", "S_RESAMP", "S_SRCCAT",
                                               "EXPSTART", "EXPEND", "EFFEXPTM", "ASNTABLE", "CRDS_CTX", "CTYPE1")}
    assert values == {"NDRIZ": 4, "PIXFRAC": 1.0, "RESWHT": "ivm", "BUNIT": "MJy/sr", "S_RESAMP": "COMPLETE",
                      "S_SRCCAT": "COMPLETE", "EXPSTART": 60000.01, "EXPEND": 60000.05, "EFFEXPTM": 400.0,
                      "ASNTABLE": COMMON["asn_table"], "CRDS_CTX": "jwst_0042.pmap", "CTYPE1": "RA---TAN"}
    assert card_value(i2d, "PIXAR_A2") == pytest.approx(SCALE**2, rel=1e-3)
    assert card_value(i2d, "A_ORDER") is None and card_value(i2d, "S_REGION").startswith("POLYGON ICRS")


def test_image3_catalog_positions_on_the_sky(image3, sky):
    cat = image3.cat
    truth = SkyCoord(sky.ra, sky.dec, unit="deg")
    idx, sep, _ = truth.match_to_catalog_sky(cat["sky_centroid"])
    snr = (cat["aper_total_flux"] / cat["aper_total_flux_err"]).value[idx]
    xy = np.transpose([np.asarray(cat["xcentroid"]), np.asarray(cat["ycentroid"])])
    d2 = np.sort(np.hypot(*(xy[:, None, :] - xy[None, :, :]).transpose(2, 0, 1)), axis=1)[:, 1][idx]
    good = (sep.arcsec < 0.5 * SCALE * 3) & (snr > 50) & (d2 > 4)
    assert good.sum() >= 15
    assert np.sqrt(np.mean((sep.arcsec[good] / SCALE) ** 2)) <= 0.05


def _header_wcs(path) -> WCS:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)  # astropy fills DATE-* from MJD-*
        return WCS(fits.getheader(path, "SCI"))


def test_products_open_in_public_models(image3, tmp_path):
    paths = {"i2d": write_product(tmp_path / "jw01234-o001_t001_nircam_clear-f200w_i2d.fits", image3.i2d),
             "segm": write_product(tmp_path / "jw01234-o001_t001_nircam_clear-f200w_segm.fits", image3.segm),
             "crf": write_product(tmp_path / "jw01234001001_02101_00001_nrca1_o001_crf.fits", image3.crf[0])}
    with warnings.catch_warnings():
        warnings.simplefilter("error", NoTypeWarning)  # DATAMODL must pick the model
        with dm.open(paths["i2d"]) as m:
            assert type(m).__name__ == "ImageModel"
            assert m.meta.ref_file.apcorr.name == "crds://jwst_nircam_apcorr_sim.fits"
            assert m.meta.ref_file.abvegaoffset.name == "crds://jwst_nircam_abvegaoffset_sim.asdf"
            assert max_separation_mas(m.meta.wcs, _header_wcs(paths["i2d"]), m.data.shape, 16) < 1e-3
            assert m.meta.cal_step.resample == "COMPLETE" and m.meta.cal_step.tweakreg == "COMPLETE"
            assert m.meta.resample.pointings == 4 and m.meta.resample.weight_type == "ivm"
            assert m.meta.asn.pool_name == ASN["asn_pool"] and m.meta.bunit_data == "MJy/sr"
            assert m.meta.photometry.pixelarea_steradians == pytest.approx(card_value(image3.i2d, "PIXAR_SR"))
            assert m.con.shape[1:] == m.data.shape and m.wht.shape == m.data.shape
        with dm.open(paths["segm"]) as m:
            assert type(m).__name__ == "SegmentationMapModel" and m.data.max() == len(image3.cat)
            assert m.meta.wcs.bounding_box.bounding_box(order="F")[0] == (-0.5, m.data.shape[1] - 0.5)
        with dm.open(paths["crf"]) as m:
            assert type(m).__name__ == "ImageModel" and m.meta.background.subtracted is True
            assert max_separation_mas(m.meta.wcs, _header_wcs(paths["crf"]), m.data.shape) < 1e-3
            assert m.meta.cal_step.outlier_detection == "COMPLETE"
    image3.cat.write(tmp_path / "cat.ecsv", format="ascii.ecsv")
    back = QTable.read(tmp_path / "cat.ecsv", format="ascii.ecsv")
    assert back.colnames == image3.cat.colnames and isinstance(back["sky_centroid"], SkyCoord)


def test_catalog_reads_its_references_or_says_it_does_without(image3, members):
    cat = image3.cat
    assert cat.meta["aperture_source"] == "jwst_nircam_apcorr_sim.fits"
    assert cat.meta["abvega_offset"] == pytest.approx(1.695, abs=1e-3)
    assert card_value(image3.i2d, "R_APCORR") == "crds://jwst_nircam_apcorr_sim.fits"
    assert card_value(image3.segm, "R_ABVEGA") == "crds://jwst_nircam_abvegaoffset_sim.asdf"
    assert card_value(image3.crf[0], "R_APCORR") is None  # the 2c products used no reference
    rel = run_image3(members, ASN, IMAGE3.params(skip={"outlier_detection"}), **COMMON)
    assert rel.statuses["source_catalog"] == "COMPLETE"
    assert "measured on the image" in rel.cat.meta["aperture_source"] and rel.cat.meta["abvega_offset"] == 0.0
    assert any("no APCORR reference" in n for n in rel.notes) and any("no ABVEGAOFFSET" in n for n in rel.notes)
    assert card_value(rel.i2d, "R_APCORR") == "N/A"


def test_image3_relative_and_single_member(members):
    events = []

    @contextmanager
    def step(name):
        events.append(name)
        yield

    rel = run_image3(members, ASN, **COMMON, step_hook=step,
                     on_crf=lambda crf: events.append(("crf", [card_value(c, "S_OUTLIR") for c in crf], crf)))
    # The _crf are handed over once outlier detection has run, before the mosaic is made,
    # and they are the products of the result (nothing after the step changes them).
    given = events[3]
    assert events[:3] == ["tweakreg", "skymatch", "outlier_detection"] and events[4:] == ["resample", "source_catalog"]
    assert given[0] == "crf" and given[1] == ["COMPLETE"] * len(members) and given[2] == rel.crf
    assert all(a is b for a, b in zip(given[2], rel.crf, strict=True))
    assert rel.statuses["tweakreg"] == "COMPLETE"
    assert {card_value(c, "TWKREF") for c in rel.crf} == {"relative"}
    one = run_image3(members[:1], ASN, IMAGE3.params(skip={"source_catalog"}), **COMMON)
    assert one.statuses["tweakreg"] == "SKIPPED" and one.statuses["outlier_detection"] == "SKIPPED"
    assert one.statuses["resample"] == "COMPLETE" and one.statuses["source_catalog"] == "SKIPPED"
    assert one.cat is None and card_value(one.i2d, "S_OUTLIR") == "SKIPPED"
    assert any("nothing to align" in n for n in one.notes)


def test_released_inputs_give_the_same_products(members, image3):
    handed_over = list(members)
    released = run_image3(handed_over, ASN, IMAGE3.params(skip={"source_catalog"}), **COMMON, release_inputs=True)
    kept = run_image3(members, ASN, IMAGE3.params(skip={"source_catalog"}), **COMMON)
    # the list now holds the members' metadata only; the products it held are untouched
    assert all("SCI" not in p.images and p.keywords == m.keywords for p, m in zip(handed_over, members, strict=True))
    assert all("SCI" in m.images for m in members)
    for a, b in zip([*released.crf, released.i2d], [*kept.crf, kept.i2d], strict=True):
        assert a.images.keys() == b.images.keys() and a.keywords == b.keywords
        assert all(np.array_equal(a.images[k], b.images[k], equal_nan=True) for k in a.images)


def test_member_surveys_and_metadata_travel_exactly(members):
    """What a survey task stores of its member (sources, sky, metadata, as JSON) reads back
    to the same values, bit for bit; skipped steps survey nothing."""
    for m in members:
        ref = InputRef(filename=m.keywords["FILENAME"], uri="file:///x", sha256="0" * 64)
        survey, meta = survey_member(m), member_meta(m)
        name, meta2, survey2 = survey_from_bytes(survey_to_bytes(survey, meta, ref))
        assert name == ref.filename and len(survey.sources) > 20 and survey.sky[1] > 0
        assert survey2.sky == survey.sky
        for f in ("x", "y", "x_err", "y_err", "flux", "snr"):
            a, b = getattr(survey.sources, f), getattr(survey2.sources, f)
            assert a.dtype == b.dtype and np.array_equal(a, b)
        assert meta2.product.keywords == meta.product.keywords and meta2.shape == meta.shape
        assert meta2.product.hdu_keywords == meta.product.hdu_keywords and meta2.variances == meta.variances
        assert list(meta2.product.keywords) == list(m.keywords)
    skipped = survey_member(members[0], IMAGE3.params(skip={"tweakreg", "skymatch"}))
    assert skipped.sources is None and skipped.sky is None


def test_split_run_gives_the_products_of_one_run(members, sky, catalog_refs, image3):
    """image3 split as the stage-3 tasks split it (each member surveyed, resampled alone,
    flagged and drizzled on its own, with only its own arrays; the median and the mosaic
    from what those made) gives run_image3's products, to the bit."""
    p = IMAGE3.params()
    metas = [member_meta(m) for m in members]
    run = SplitRun(metas, [survey_member(m) for m in members], p, (sky.ra, sky.dec), COMMON["asn_table"])
    assert all("SCI" not in meta.product.images for meta in metas) and metas[0].shape == members[0].images["SCI"].shape
    layers = [image3_single(run, k, m) for k, m in enumerate(members)]
    median = image3_median(run, iter(layers))
    prov = provenance_cards(software_version=COMMON["software_version"], created=COMMON["created"],
                            context=COMMON["context"], asn_table=COMMON["asn_table"], asn_pool=ASN["asn_pool"])
    made = [image3_member(run, k, m, median=lambda: median, prov=prov) for k, m in enumerate(members)]
    mosaic = image3_mosaic(run, lambda: (c for _, c in made), prov=prov, refs=catalog_refs)
    assert mosaic.statuses == image3.statuses and mosaic.crf == []
    for a, b in zip([*(crf for crf, _ in made), mosaic.i2d, mosaic.segm], [*image3.crf, image3.i2d, image3.segm],
                    strict=True):
        assert a.images.keys() == b.images.keys() and a.keywords == b.keywords
        assert all(np.array_equal(a.images[k], b.images[k], equal_nan=True) for k in a.images)
    assert len(mosaic.cat) == len(image3.cat)
    # a member task holds one member's arrays; the others are placeholders of their shape
    state = run.state(own=(1, members[1]))
    assert [m.remote for m in state.members] == [True, False, True, True]
    assert state.members[0].sci.strides == (0, 0)
    with pytest.raises(RuntimeError, match="outlier median was not made"):
        image3_member(run, 0, members[0], median=None, prov=prov)


def test_failed_absolute_alignment_is_reported(members, sky, tmp_path, caplog, capsys):
    import json
    import logging

    from astropy.table import Table

    from services.stage3.commands import IMAGE3_COMMAND
    from shared.runlocal import run_command

    few = (sky.ra[:3], sky.dec[:3])  # too few stars to fit
    with caplog.at_level(logging.WARNING, logger="services.stage3.pipeline"):
        out = run_image3(members, ASN, IMAGE3.params(skip={"source_catalog"}), abs_refcat=few, **COMMON)
    assert out.statuses["tweakreg"] == "COMPLETE"  # the relative alignment is kept
    for product in (*out.crf, out.i2d):
        assert card_value(product, "TWKABS") == "FAILED"
        assert "matched" in card_value(product, "TWKANOTE") or "sources" in card_value(product, "TWKANOTE")
    assert {card_value(c, "TWKREF") for c in out.crf} == {"relative"}
    assert any("WARNING absolute alignment failed" in n for n in out.notes)
    assert any("absolute alignment failed" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
    # dms run prints it
    for m in members:
        write_product(tmp_path / m.keywords["FILENAME"], m)
    Table({"ra": few[0], "dec": few[1]}).write(tmp_path / "few.ecsv", format="ascii.ecsv")
    asn_path = tmp_path / "jw01234-o001_20250101t000000_image3_00001_asn.json"
    asn_path.write_text(json.dumps({"asn_type": "image3", "asn_id": "o001", "asn_pool": ASN["asn_pool"],
                                    "products": [{"name": "jw01234-o001_t001_nircam_clear-f200w-sub160",
                                                  "members": [{"expname": m.keywords["FILENAME"], "exptype": "science"}
                                                              for m in members]}]}))
    capsys.readouterr()
    assert run_command(IMAGE3_COMMAND, [str(asn_path), "--out", str(tmp_path / "out"), "--abs-refcat",
                                        str(tmp_path / "few.ecsv"), "--skip", "source_catalog"]) == 0
    assert "note: tweakreg: WARNING absolute alignment failed" in capsys.readouterr().out


def test_image3_rejects_unusable_members(members):
    with pytest.raises(ValueError, match="unknown step"):
        IMAGE3.params(skip={"jump"})
    no_wcs = cal_product(make_exposures(make_sky(5, seed=9), n=1, n_cr=0)[0], exposure_number=9)
    for name in ("CRVAL1", "CRVAL2", "CTYPE1", "CTYPE2"):
        no_wcs.keywords.pop(name, None)
        no_wcs.hdu_keywords.get("SCI", {}).pop(name, None)
    with pytest.raises(ValueError, match="assign_wcs"):
        run_image3([members[0], no_wcs], ASN, **COMMON)
    dn = cal_product(make_exposures(make_sky(5, seed=9), n=1, n_cr=0)[0], exposure_number=9)
    set_keywords(dn, {"BUNIT": "DN/s"})
    out = run_image3([dn], ASN, **COMMON)
    assert out.statuses["source_catalog"] == "SKIPPED" and any("not MJy/sr" in n for n in out.notes)


def test_tso3_light_curve(tmp_path):
    ts = make_time_series()
    member = read_product(write_product(tmp_path / "jw01234002001_01101_00001_nrca1_calints.fits",
                                              calints_product(ts)))
    out = run_tso3([member], ASN, **COMMON)
    assert out.statuses == {"outlier_detection": "COMPLETE", "tso_photometry": "COMPLETE"}
    phot = out.phot
    assert phot.colnames[:12] == ["MJD", "BJD_TDB", "aperture_sum", "aperture_sum_err", "annulus_sum",
                                  "annulus_sum_err", "annulus_mean", "annulus_mean_err", "aperture_bkg",
                                  "aperture_bkg_err", "net_aperture_sum", "net_aperture_sum_err"]
    assert {"aperture_x", "aperture_ra_icrs", "aperture_dec_icrs", "centroid_x", "centroid_y"} <= set(phot.colnames)
    assert str(phot["net_aperture_sum"].unit) == "Jy" and len(phot) == ts.data.shape[0]
    assert np.allclose(phot["MJD"], ts.mjd) and np.allclose(phot["BJD_TDB"], ts.mjd + 0.0008)
    assert np.allclose(phot["aperture_ra_icrs"].value, 53.1, atol=1e-5)
    flux = np.asarray(phot["net_aperture_sum"].value)
    depth = 1 - np.median(flux[ts.in_transit]) / np.median(flux[~ts.in_transit])
    assert depth == pytest.approx(0.02, rel=0.05)
    crf = out.crfints[0]
    flagged = (crf.images["DQ"] & PIXEL["OUTLIER"]) > 0
    assert (flagged & ts.cr_mask).sum() >= 0.9 * ts.cr_mask.sum()
    path = write_product(tmp_path / "jw01234002001_01101_00001_nrca1_o002_crfints.fits", crf)
    with dm.open(path) as m:
        assert type(m).__name__ == "CubeModel" and m.meta.cal_step.outlier_detection == "COMPLETE"
        assert max_separation_mas(m.meta.wcs, ts.wcs, m.data.shape[1:], 4) < 1e-3
        assert len(m.int_times) == ts.data.shape[0]


def test_tso3_skips_photometry_of_spectra(tmp_path):
    product = calints_product(make_time_series(nints=30))
    set_keywords(product, {"EXP_TYPE": "NRC_TSGRISM"})
    out = run_tso3([product], ASN, TSO3.params(), **COMMON)
    assert out.statuses["tso_photometry"] == "SKIPPED" and out.phot is None and len(out.crfints) == 1


def test_tso3_sums_the_weak_lens_subarray():
    ts = make_time_series(nints=40)
    product = calints_product(ts)
    set_keywords(product, {"PUPIL": "WLP8", "SUBARRAY": "SUB64P"})
    out = run_tso3([product], ASN, **COMMON)
    phot = out.phot
    assert "sum of all pixels" in phot.meta["apertures"] and np.isnan(phot["annulus_mean"].value).all()
    assert np.all(phot["net_aperture_sum"] == phot["aperture_sum"])


def test_dms_run_image3_on_local_files(members, tmp_path, capsys):
    import json

    from services.stage3.commands import IMAGE3_COMMAND, TSO3_COMMAND
    from shared.runlocal import run_command

    for m in members:
        write_product(tmp_path / m.keywords["FILENAME"], m)
    asn = {"asn_type": "image3", "asn_id": "o001", "asn_pool": ASN["asn_pool"],
           "products": [{"name": "jw01234-o001_t001_nircam_clear-f200w-sub160",
                         "members": [{"expname": m.keywords["FILENAME"], "exptype": "science"} for m in members]}]}
    asn_path = tmp_path / "jw01234-o001_20250101t000000_image3_00001_asn.json"
    asn_path.write_text(json.dumps(asn))
    out = tmp_path / "out"
    assert run_command(IMAGE3_COMMAND, [str(asn_path), "--out", str(out), "--skip", "source_catalog",
                                        "--steps.outlier_detection.snr=4.5 3.5"]) == 0
    written = sorted(p.name for p in out.iterdir())
    assert "jw01234-o001_t001_nircam_clear-f200w-sub160_i2d.fits" in written
    assert sum(name.endswith("_o001_crf.fits") for name in written) == 4
    assert run_command(TSO3_COMMAND, [str(asn_path), "--out", str(out)]) == 2
    assert "use `dms run image3`" in capsys.readouterr().err
    assert run_command(IMAGE3_COMMAND, [str(asn_path), "--steps.tweakreg.bogus=1"]) == 2
    assert "image3.tweakreg has no parameter bogus" in capsys.readouterr().err
