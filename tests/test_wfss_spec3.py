"""calwebb_spec3 for wide-field slitless spectroscopy on two dithered exposures of a small
field: sources of known flat spectra rendered on each exposure along the traces of a grism
model (NIRCam's GRISMR along x, NIRISS's GR150R along y), each exposure calibrated by
spec2's WFSS path with the same source catalog, and the two ``_cal`` combined per source.
The second exposure's pointing moves the field by a few pixels along the dispersion and 25
across it, which takes source 4 off its window; sources 1 and 2 overlap on both."""

from __future__ import annotations

import numpy as np
import pytest
from stdatamodels.jwst import datamodels as dm

from services.stage2.spec2 import SPEC2, run_spec2
from services.stage2.steps.assign_wcs import exposure_wcs
from services.stage3.asn import Level3Association
from services.stage3.pipeline import calibrate
from services.stage3.wfss3 import WFSS3, half_height_of_cutout, run_wfss3
from shared.datamodels.fits_io import read_product, write_product
from shared.errors import InputError
from shared.imaging_wcs import TelescopePointing
from tests.test_wfss_spec2 import (
    NIRCAM,
    NIRISS,
    NX,
    NY,
    POINTING,
    XSTART,
    YSTART,
    _catalog,
    _distortion,
    _exposure,
    _refs,
    _scene,
    _wcs,
)

OTHER_BAD_PIXEL = 1 << 30
# (label, along the dispersion, across it, flux Jy, is_extended, AB mag) on the first
# exposure's window: 1 and 2 overlap, 4 lies near the window's edge across the dispersion
SOURCES = [(1, 20.3, 30.6, 1.0e-4, False, 20.0), (2, 60.7, 31.0, 0.5e-4, False, 21.0),
           (3, 40.2, 80.4, 2.0e-4, True, 19.5), (4, 30.5, 200.3, 1.0e-4, False, 20.5)]
DITHER = (3.4, 25.0)  # pixels (along, across) the second pointing moves the field by
PRODUCT = "jw01234-o001_t001_nircam_f444w-grismr"


def _window(mode, along: float, across: float) -> tuple[float, float]:
    return (along, across) if mode.dispaxis == 1 else (across, along)


def _dithered_pointing(mode) -> dict:
    """The pointing that puts the sky of first-exposure pixel p at p + DITHER: the
    reference point (full-frame pixel 1023.5, 1023.5) aimed at the sky of the pixel
    DITHER before it."""
    dx, dy = _window(mode, *DITHER)
    ra, dec = _wcs()(1023.5 - (XSTART - 1) - dx, 1023.5 - (YSTART - 1) - dy, with_bounding_box=False)
    return {**POINTING, "RA_REF": float(ra), "DEC_REF": float(dec)}


def _cal(mode, sources, catalog, *, seed: int, pointing: dict, exposure: int):
    rate, flat, pattern = _scene(mode, sources, seed=seed)
    science = _exposure(mode, rate)
    science.keywords.update(pointing)
    science.keywords.update(EXPOSURE=f"{exposure:05d}",
                            FILENAME=f"jw01234001001_01101_{exposure:05d}_nrcalong_rate.fits",
                            EXPSTART=60000.0 + exposure, EXPEND=60000.01 + exposure)
    refs = _refs(mode, flat, pattern)
    out = run_spec2(science, refs, catalog=catalog, params=SPEC2.params(), software_version="test",
                    created="2026-01-01T00:00:00")
    assert out.record.statuses["extract_2d"] == "COMPLETE"
    out.cal.keywords["FILENAME"] = science.keywords["FILENAME"].replace("_rate", "_cal")
    return out.cal, refs["specwcs"]


@pytest.fixture(scope="module", params=[NIRCAM, NIRISS], ids=["nrc_grismr_along_x", "nis_gr150r_along_y"])
def field(request, tmp_path_factory):
    """The two exposures' _cal (written and read back, as stage 3 gets them), the SPECWCS,
    the truth and the spec3 result."""
    mode = request.param
    first = [(label, *_window(mode, along, across), flux, ext, mag)
             for label, along, across, flux, ext, mag in SOURCES]
    catalog = _catalog(first)
    pointing = _dithered_pointing(mode)
    wcs2 = exposure_wcs(_distortion(), TelescopePointing.from_keywords(pointing), xstart=XSTART, ystart=YSTART,
                        xsize=NX, ysize=NY)[1]
    ra, dec = catalog["sky_centroid"].ra.deg, catalog["sky_centroid"].dec.deg
    x2, y2 = wcs2.all_world2pix(ra, dec, 0)
    second = [(label, float(x), float(y), flux, ext, mag)
              for (label, _, _, flux, ext, mag), x, y in zip(first, x2, y2, strict=True)]
    across2 = [y if mode.dispaxis == 1 else x for _, x, y, *_ in second]
    assert across2[3] > (NY if mode.dispaxis == 1 else NX) + 5  # source 4 is off the second window
    tmp = tmp_path_factory.mktemp(f"wfss3_{mode.dispaxis}")
    members = []
    for i, (sources, pointing_i) in enumerate(((first, POINTING), (second, pointing)), start=1):
        cal, specwcs = _cal(mode, sources, catalog, seed=10 + i, pointing=pointing_i, exposure=i)
        members.append(read_product(write_product(tmp / cal.keywords["FILENAME"], cal)))
    out = run_wfss3(members, {"asn_pool": "jw01234_pool.csv"}, refs={"specwcs": specwcs}, software_version="test",
                    created="2026-01-01T00:00:00", asn_table=f"{PRODUCT}_spec3_00001_asn.json")
    return mode, members, specwcs, out, tmp


def _rows(product, extname_index: int = 0) -> dict[int, dict[str, np.ndarray]]:
    """{SOURCE_ID: {column: its values, cut to N_ALONGDISP}} of one table of a product."""
    table = product.spectra[extname_index].table
    out = {}
    for row in table:
        n = int(row["N_ALONGDISP"])
        out[int(row["SOURCE_ID"])] = {name: np.asarray(row[name])[:n] if np.ndim(row[name]) else row[name]
                                      for name in table.dtype.names}
    return out


def test_one_combined_spectrum_per_source_at_the_true_flux(field):
    mode, members, _, out, _ = field
    assert out.statuses == {"extract_1d": "COMPLETE", "combine_1d": "COMPLETE"}
    combined = _rows(out.c1d)
    assert sorted(combined) == [1, 2, 3, 4]
    for label, _, _, flux, _, _ in SOURCES:
        c = combined[label]
        clean = (c["DQ"] & (OTHER_BAD_PIXEL | 1)) == 0
        assert clean.sum() > 20, label
        ratio = c["FLUX"][clean] / flux
        assert np.all(np.abs(ratio - 1) < 0.02), (label, ratio.min(), ratio.max())
        assert np.all(np.diff(c["WAVELENGTH"]) > 0)
        assert np.all(c["WAVELENGTH"] >= mode.band[0] - 0.01) and np.all(c["WAVELENGTH"] <= mode.band[1] + 0.01)


def test_combined_error_is_that_of_two_exposures(field):
    _, _, _, out, _ = field
    combined = _rows(out.c1d)[3]
    single = _rows(out.x1d, 0)[3]
    both = combined["N_INPUT"] == 2
    assert both.sum() > 50
    # each combined element against the first exposure's element nearest in wavelength
    nearest = np.abs(single["WAVELENGTH"][None, :] - combined["WAVELENGTH"][both][:, None]).argmin(axis=1)
    ratio = np.median(combined["ERROR"][both] / single["FLUX_ERROR"][nearest])
    assert abs(ratio / np.sqrt(0.5) - 1) < 0.15, ratio
    np.testing.assert_allclose(combined["WEIGHT"][both], 1.0 / combined["ERROR"][both] ** 2)


def test_a_source_off_one_window_is_combined_from_the_other(field):
    _, _, _, out, _ = field
    c = _rows(out.c1d)[4]
    assert np.all(c["N_INPUT"][np.isfinite(c["FLUX"])] == 1)
    absent = _rows(out.x1d, 1)[4]  # the second exposure's row of source 4: none
    assert absent["N_ALONGDISP"] == 0
    present = _rows(out.x1d, 0)[4]
    np.testing.assert_allclose(c["FLUX"], present["FLUX"], rtol=1e-12)  # one exposure: its own spectrum


def test_contaminated_elements_keep_their_flag(field):
    _, _, _, out, _ = field
    combined = _rows(out.c1d)
    for label in (1, 2):
        flagged_out = (combined[label]["DQ"] & OTHER_BAD_PIXEL) != 0
        assert flagged_out.sum() > 20, label
        for exposure in (0, 1):
            single = _rows(out.x1d, exposure)[label]
            flagged_in = (single["DQ"] & OTHER_BAD_PIXEL) != 0
            assert flagged_in.any()
            k = np.abs(combined[label]["WAVELENGTH"][None, :] - single["WAVELENGTH"][flagged_in][:, None]).argmin(1)
            assert np.all(flagged_out[k]), (label, exposure)
    assert not np.any(combined[3]["DQ"] & OTHER_BAD_PIXEL)


def test_half_height_from_the_cutout():
    """spec2 cuts the pixels within h + 1 of the trace's centre: an unclipped side gives h."""
    assert half_height_of_cutout(np.array([7.3, 8.9]), 21, (False, False)) == 7  # floor(7.3); 21 - ceil(8.9) - 1 = 11
    assert half_height_of_cutout(np.array([6.2, 6.2]), 20, (True, False)) == 12  # the low side clipped
    assert half_height_of_cutout(np.array([6.2, 6.2]), 20, (False, True)) == 6
    with pytest.raises(ValueError, match="no aperture"):
        half_height_of_cutout(np.array([0.2]), 2, (False, False))


def test_spec3_spectra_match_spec2s(field):
    mode, members, specwcs, out, _ = field
    # spec2 again on the first exposure, to compare its _x1d with spec3's extraction of the same slits
    first = [(label, *_window(mode, along, across), flux, ext, mag)
             for label, along, across, flux, ext, mag in SOURCES]
    rate, flat, pattern = _scene(mode, first, seed=11)
    science = _exposure(mode, rate)
    spec2 = run_spec2(science, _refs(mode, flat, pattern), catalog=_catalog(first), params=SPEC2.params(),
                      software_version="test")
    (table,) = spec2.x1d.spectra
    spec3 = _rows(out.x1d, 0)
    for row in table.table:
        n = int(row["N_ALONGDISP"])
        mine = spec3[int(row["SOURCE_ID"])]
        np.testing.assert_allclose(mine["WAVELENGTH"], row["WAVELENGTH"][:n], rtol=1e-12)
        np.testing.assert_allclose(mine["FLUX"], row["FLUX"][:n], rtol=1e-5, equal_nan=True)
        np.testing.assert_array_equal(mine["DQ"], row["DQ"][:n])


def test_products_open_as_the_public_models(field):
    mode, _, _, out, tmp = field
    x1d_path = write_product(tmp / f"{PRODUCT}_x1d.fits", out.x1d)
    c1d_path = write_product(tmp / f"{PRODUCT}_c1d.fits", out.c1d)
    with dm.open(str(x1d_path)) as x1d:
        assert isinstance(x1d, dm.WFSSMultiSpecModel) and len(x1d.spec) == 2  # an exposure each (one order)
        assert [s.group_id for s in x1d.spec] == ["jw01234001001_01101_00001_1", "jw01234001001_01101_00002_1"]
        for spec in x1d.spec:
            assert list(spec.spec_table["SOURCE_ID"]) == [1, 2, 3, 4]
            assert spec.spectral_order == 1 and spec.dispersion_direction == mode.dispaxis
        assert x1d.spec[1].spec_table["N_ALONGDISP"][3] == 0 and np.all(np.isnan(x1d.spec[1].spec_table["FLUX"][3]))
        assert x1d.meta.asn.table_name == f"{PRODUCT}_spec3_00001_asn.json"
        assert x1d.meta.cal_step.extract_1d == "COMPLETE"
    public = dm.WFSSMultiCombinedSpecModel().schema["properties"]["spec"]["items"]["properties"]["spec_table"]
    with dm.open(str(c1d_path)) as c1d:
        assert isinstance(c1d, dm.WFSSMultiCombinedSpecModel) and len(c1d.spec) == 1
        spec = c1d.spec[0]
        assert spec.spectral_order == 1 and spec.dispersion_direction == mode.dispaxis
        table = spec.spec_table
        assert [c.upper() for c in table.dtype.names] == [c["name"] for c in public["datatype"]]
        assert list(table["SOURCE_ID"]) == [1, 2, 3, 4]
        assert list(table["SOURCE_TYPE"]) == ["POINT", "POINT", "EXTENDED", "POINT"]
        assert table.columns["FLUX"].unit == "Jy" and table.columns["SOURCE_RA"].unit == "deg"
        assert np.all(np.isfinite(table["SOURCE_RA"])) and np.all(np.isfinite(table["SOURCE_DEC"]))
        assert c1d.meta.cal_step.combine_1d == "COMPLETE"
        assert c1d.meta.exposure.start_time == pytest.approx(60001.0)  # the Level-3 keywords: the members' span
        assert c1d.meta.exposure.end_time == pytest.approx(60002.01)


def test_the_stage3_dispatch_names_the_products(field):
    _, members, _, out, _ = field
    asn = Level3Association(f"{PRODUCT}_spec3_00001_asn.json", "spec3", "o001", None, PRODUCT,
                            tuple(m.keywords["FILENAME"] for m in members), {})
    assert [(o.filename, o.suffix) for o in out.outputs(asn)] == [(f"{PRODUCT}_x1d.fits", "x1d"),
                                                                  (f"{PRODUCT}_c1d.fits", "c1d")]
    # a spec3 association of WFSS members goes to the WFSS pipeline (here without references)
    with pytest.raises(InputError, match="no SPECWCS reference"):
        calibrate(asn, members, software_version="test", created=None, provider=None)


def test_mixed_grisms_are_refused(field):
    mode, members, specwcs, _, _ = field
    other = members[1].detached()
    wheel = "FILTER" if mode.dispaxis == 2 else "PUPIL"  # NIRISS's grism is in FILTER, NIRCam's in PUPIL
    other.keywords[wheel] = "GR150C" if mode.dispaxis == 2 else "GRISMC"
    with pytest.raises(InputError, match="different grisms"):
        run_wfss3([members[0], other], refs={"specwcs": specwcs}, software_version="test")


def test_a_member_without_slits_is_refused(field):
    _, members, specwcs, _, _ = field
    other = members[1].detached()
    other.slits = []
    with pytest.raises(InputError, match="holds no slits"):
        run_wfss3([members[0], other], refs={"specwcs": specwcs}, software_version="test")


def test_another_grism_model_is_refused(field):
    mode, members, specwcs, _, _ = field
    moved = type(mode)(**{**mode.__dict__, "lam0": mode.lam0 + 0.01})  # a model 0.01 um off spec2's
    ref = type(specwcs)("specwcs", tree=moved.tree())
    from shared.refdata import ReferenceFileError
    with pytest.raises(ReferenceFileError, match="misses the slit's wavelengths"):
        run_wfss3(members, refs={"specwcs": ref}, software_version="test")
    assert WFSS3.params().step("extract_1d").width is None


def test_spec3_parameters_serve_both_spec3_pipelines(field):
    """`dms run spec3` builds the slit spec3's parameters: WFSS3 takes them (its steps are
    among them); a skipped combine_1d leaves no _c1d."""
    from services.stage3.spec3 import SPEC3
    _, members, specwcs, _, _ = field
    out = run_wfss3(members, params=SPEC3.params(skip=["combine_1d"]), refs={"specwcs": specwcs},
                    software_version="test")
    assert out.statuses == {"extract_1d": "COMPLETE", "combine_1d": "SKIPPED"}
    assert out.c1d is None and out.x1d is not None
