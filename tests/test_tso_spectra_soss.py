"""NIRISS single-object slitless spectroscopy (NIS_SOSS: GR700XD/CLEAR, SUBSTRIP256, two
spectral orders) through the system, scored against the simulator's truth.

One module-scoped run of ``examples/niriss_soss.yaml`` (a bright star transited by a
planet that blocks 1 %, 1.25 % in water bands at 1.4 and 1.9 um; 30 integrations) in
this process: simulator -> ingest (the exposure cut into three segments) -> detector1
(``_rateints`` per segment) -> the tso-spec2 association -> stage 2 (calwebb_spec2: the
``_calints`` CubeModels in DN/s and the ``_x1dints`` of both orders per segment, their
spectra flux-calibrated after extraction as the public pipeline does for SOSS) -> the
tso3 association -> stage 3 (calwebb_tso3: ``_crfints``, the Level-3 ``_x1dints`` of
both orders over all 30 integrations and the ``_whtlt`` with a column per order), on the
embedded catalog and store.

The transit is measured as tests/tso_scoring.py says. Tolerances (the issue's):

- the order-1 spectrum within 3 % of the truth's (median over the band, each integration
  out of transit); order 2 likewise;
- white light (order 1): depth within 3 % of the truth's over the same elements, the
  scatter out of transit within 30 % of what FLUX_ERROR predicts;
- transmission spectrum of each order (0.025 um bins: 76 over 0.9-2.8 um in order 1, 32
  over 0.6-1.4 um in order 2): at least 90 % of the bins within twice their error of the
  truth, the pulls' spread within 0.6-1.5; and each water band of order 1 seen deeper than
  its surroundings by more than 3 sigma. (With 19 bins of 0.1 um, honest errors leave two
  or more bins outside 2 sigma one time in five, which the 90 % criterion then fails: the
  finer bins test the errors with the power the criterion needs.)
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml
from astropy.io import fits
from astropy.table import Table
from stdatamodels.jwst import datamodels as dm

from tests.slit_examples import PRODUCT_SERVICES, run_in_process, run_level3_locally
from tests.tso_scoring import (
    TsoSeries,
    band_depth,
    bin_depths,
    check_series_products,
    check_transmission,
    check_white_light,
    rateints_and_references,
)

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore::astropy.wcs.FITSFixedWarning")]

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "niriss_soss.yaml"
STEM = "jw04523001001_01101_00001"
LEVEL3 = "jw04523-o001_t001_niriss_clear-gr700xd-substrip256"
SEGMENTS = 3
NINTS = 30
#: the transmission spectrum's bins (um) per order: 0.025 um, some ten resolution elements
BINS = {1: np.round(np.arange(0.9, 2.8001, 0.025), 3), 2: np.round(np.arange(0.6, 1.4001, 0.025), 3)}
ORDER1 = TsoSeries(f"{STEM}_nis", LEVEL3, order=1)
ORDER2 = TsoSeries(f"{STEM}_nis", LEVEL3, order=2)
WHITE_LIGHT = ("whitelight_flux_order_1", "whitelight_flux_order_2")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    # 45 MB segments: three of the 30 integrations' 126 MB _uncal
    return run_in_process(yaml.safe_load(EXAMPLE.read_text()), tmp_path_factory.mktemp("soss"), PRODUCT_SERVICES,
                          segment_bytes=45_000_000)


def test_segments_products_and_associations(run):
    check_series_products(run, STEM, "nis", LEVEL3, SEGMENTS, "tso-spec2")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the public data models read them without complaint
        for suffix in ("calints", "o001_crfints"):
            with dm.open(str(run["out"] / f"{STEM}-seg002_nis_{suffix}.fits")) as cal:
                # as the public pipeline writes SOSS: a CubeModel left in DN/s
                assert isinstance(cal, dm.CubeModel) and cal.data.shape[1:] == (256, 2048)
                assert cal.meta.bunit_data == "DN/s" and cal.meta.exposure.type == "NIS_SOSS"
                assert len(cal.int_times) > 0
        for path in (run["out"] / f"{STEM}-seg002_nis_x1dints.fits", run["out"] / f"{LEVEL3}_x1dints.fits"):
            with dm.open(str(path)) as x:
                assert isinstance(x, dm.TSOMultiSpecModel)
                assert [s.spectral_order for s in x.spec] == [1, 2]
                assert {s.spec_table.columns["FLUX"].unit for s in x.spec} == {"Jy"}
    header = fits.getheader(run["out"] / f"{STEM}-seg002_nis_calints.fits")
    assert {header[k] for k in ("S_WCS", "S_SRCTYP", "S_FLAT")} == {"COMPLETE"}
    assert "S_PHOTOM" not in header  # photom calibrates the spectra, not the pixels
    spectra = fits.getheader(run["out"] / f"{STEM}-seg002_nis_x1dints.fits")
    assert spectra["S_EXTR1D"] == spectra["S_PHOTOM"] == "COMPLETE"
    level3 = fits.getheader(run["out"] / f"{LEVEL3}_x1dints.fits")
    assert {level3[k] for k in ("S_OUTLIR", "S_PXREPL", "S_EXTR1D", "S_PHOTOM", "S_WHTLIT")} == {"COMPLETE"}


def test_level3_x1dints_holds_both_orders_of_every_integration_in_order(run):
    lc = ORDER1.truth(run, "lightcurve")
    bands = {1: (0.85, 0.9, 2.8, 2.9), 2: (0.55, 0.65, 1.35, 1.45)}
    for series in (ORDER1, ORDER2):
        x = series.x1dints(run)
        assert list(x["INT_NUM"]) == list(range(1, NINTS + 1))
        assert list(np.unique(x["SEGMENT"])) == list(range(1, SEGMENTS + 1))
        assert np.max(np.abs(x["TDB-MID"] - np.asarray(lc["mid_bjd_tdb"]))) * 86400 < 1e-3
        wavelength = x["WAVELENGTH"][0]
        assert np.all(x["WAVELENGTH"] == wavelength) and np.all(np.diff(wavelength) > 0)
        lo1, lo2, hi1, hi2 = bands[series.order]
        assert lo1 < wavelength[0] < lo2 and hi1 < wavelength[-1] < hi2
    seg = fits.open(run["out"] / f"{STEM}-seg002_nis_x1dints.fits")
    tables = [h for h in seg if h.name == "EXTRACT1D"]
    assert [h.header["SPORDER"] for h in tables] == [1, 2]
    assert set(tables[0].data["SEGMENT"]) == {2}
    np.testing.assert_array_equal(tables[0].data["WAVELENGTH"][0], ORDER1.x1dints(run)["WAVELENGTH"][0])


@pytest.mark.parametrize("series", [ORDER1, ORDER2], ids=["order1", "order2"])
def test_spectrum_flux_against_the_truth(run, series):
    """Each order's spectrum, each integration out of transit against the truth's (the
    star seen through the LSF): the median ratio within 3 %."""
    x = series.x1dints(run)
    wavelength = x["WAVELENGTH"][0]
    sp = series.truth(run, "spectrum")
    order = np.argsort(sp["wavelength"])
    jy = np.interp(wavelength, np.asarray(sp["wavelength"])[order], np.asarray(sp["observed_jy"])[order])
    out = series.shape(run) == 0
    ratio = np.nanmedian(x["FLUX"][out] / jy[None, :], axis=1)
    spread = np.nanstd((x["FLUX"][out] - jy) / x["FLUX_ERROR"][out])
    print(f"order {series.order}: flux / truth out of transit: median {np.median(ratio):.4f} "
          f"({ratio.min():.4f}-{ratio.max():.4f} over {out.sum()} integrations); spread of (flux - truth) / error "
          f"{spread:.2f}")
    assert np.all(np.abs(ratio - 1) < 0.03)


def test_white_light_depth_against_the_truth(run):
    x = ORDER1.x1dints(run)
    whtlt = Table.read(run["out"] / f"{LEVEL3}_whtlt.ecsv")
    check_white_light(whtlt, x, ORDER1.shape(run), *ORDER1.truth_depth(run, x["WAVELENGTH"][0]), columns=WHITE_LIGHT)
    np.testing.assert_allclose(whtlt["whitelight_flux_order_2"].value, np.nansum(ORDER2.x1dints(run)["FLUX"], axis=1),
                               rtol=1e-9)


@pytest.mark.parametrize("series", [ORDER1, ORDER2], ids=["order1", "order2"])
def test_transmission_spectrum_against_the_truth(run, series):
    x = series.x1dints(run)
    check_transmission(bin_depths(x, BINS[series.order], series.shape(run),
                                  *series.truth_depth(run, x["WAVELENGTH"][0])))


def test_water_bands_stand_out(run):
    x = ORDER1.x1dints(run)
    wavelength = x["WAVELENGTH"][0]
    shape = ORDER1.shape(run)
    for band, around in (((1.35, 1.45), ((1.15, 1.3), (1.55, 1.75))), ((1.85, 1.95), ((1.6, 1.75), (2.05, 2.3)))):
        d_band, e_band = band_depth(x, (wavelength >= band[0]) & (wavelength < band[1]), shape)
        cont = np.zeros(wavelength.size, bool)
        for lo, hi in around:
            cont |= (wavelength >= lo) & (wavelength < hi)
        d_cont, e_cont = band_depth(x, cont, shape)
        print(f"{band[0]}-{band[1]} um {d_band:.5f} +- {e_band:.5f} against {d_cont:.5f} +- {e_cont:.5f}")
        assert d_band - d_cont > 3 * np.hypot(e_band, e_cont)


def test_dms_run_tso3_makes_the_archives_products(run, tmp_path):
    """``dms run tso3`` on the archived tso3 association with its ``_calints`` beside it: the
    archive's Level-3 ``_x1dints`` and ``_whtlt``, value for value."""
    from services.stage3.commands import TSO3_COMMAND

    out = run_level3_locally(TSO3_COMMAND, run, "tso3", "calints", tmp_path)
    for k in (1, 2):
        np.testing.assert_array_equal(fits.getdata(out / f"{LEVEL3}_x1dints.fits", ("EXTRACT1D", k))["FLUX"],
                                      fits.getdata(run["out"] / f"{LEVEL3}_x1dints.fits", ("EXTRACT1D", k))["FLUX"])
    mine, archived = Table.read(out / f"{LEVEL3}_whtlt.ecsv"), Table.read(run["out"] / f"{LEVEL3}_whtlt.ecsv")
    for column in WHITE_LIGHT:
        np.testing.assert_array_equal(mine[column], archived[column])


def _segment_and_references(run) -> tuple:
    return rateints_and_references(run, f"{STEM}-seg002_nis_rateints.fits")


def test_one_integration_makes_a_cal_and_an_x1d_of_both_orders(run):
    """A SOSS exposure of one integration (its ``_rate``): the public ``_cal`` (ImageModel,
    DN/s) and ``_x1d`` (MultiSpecModel, a spectrum per order with its SPORDER), the same
    spectra as that integration's in the ``_x1dints``."""
    from services.stage2.spec2 import run_spec2
    from shared.datamodels import FitsProduct

    rateints, refs = _segment_and_references(run)
    one = FitsProduct(model_type="ImageModel", images={k: v[0] for k, v in rateints.images.items()},
                      keywords={**rateints.keywords, "NINTS": 1})
    out = run_spec2(one, refs, software_version="test")
    assert not out.is_cube and out.cal.model_type == "ImageModel" and out.cal.keywords["BUNIT"] == "DN/s"
    assert out.x1d.model_type == "MultiSpecModel"
    assert [t.keywords["SPORDER"] for t in out.x1d.spectra] == [1, 2]
    archived = fits.open(run["out"] / f"{STEM}-seg002_nis_x1dints.fits")
    for k, spectrum in enumerate(out.x1d.spectra, start=1):
        np.testing.assert_allclose(spectrum.table["FLUX"], archived["EXTRACT1D", k].data["FLUX"][0], rtol=1e-6)


def test_without_photom_the_spectra_stay_in_dn_and_say_so(run):
    from services.stage2.spec2 import SPEC2, run_spec2

    rateints, refs = _segment_and_references(run)
    out = run_spec2(rateints, refs, params=SPEC2.params(skip=["photom"]), software_version="test")
    assert out.record.statuses["photom"] == "SKIPPED"
    table = out.x1d.spectra[0]
    names = table.table.dtype.names
    assert table.keywords[f"TUNIT{names.index('FLUX') + 1}"] == "DN/s"
    # a PHOTOM without order 2's row: photom skipped, saying why, the spectra left in DN/s
    photom = refs["photom"]
    keep = photom.tables["PHOTOM"]["order"] == 1
    photom.tables = {**photom.tables, "PHOTOM": photom.tables["PHOTOM"][keep]}
    out = run_spec2(rateints, refs, software_version="test")
    assert out.record.statuses["photom"] == "SKIPPED"
    assert any("no row for FILTER=CLEAR PUPIL=GR700XD order(s) 2" in n for n in out.record.notes)
    assert out.x1d.spectra[1].keywords[f"TUNIT{names.index('FLUX') + 1}"] == "DN/s"


def test_a_spectrace_without_orders_is_a_reference_error(run):
    from services.stage2.spec2 import run_spec2
    from shared.refdata import ReferenceFileError

    rateints, refs = _segment_and_references(run)
    refs["spectrace"].arrays = {}
    with pytest.raises(ReferenceFileError, match="SPECTRACE reference .* no ORDER table"):
        run_spec2(rateints, refs, software_version="test")
