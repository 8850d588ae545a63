"""MIRI LRS slitless time-series spectroscopy through the system, scored against the
simulator's truth.

One module-scoped run of ``examples/miri_lrs_tso.yaml`` (a 0.15 Jy star transited by a
planet that blocks 1 %, 1.25 % at 7.4 um; 60 integrations) in this process: simulator ->
ingest (the exposure cut into four segments) -> detector1 (``_rateints`` per segment) ->
the spec2 associations -> stage 2 (calwebb_spec2: ``_calints`` and ``_x1dints`` per
segment) -> the tso3 association -> stage 3 (calwebb_tso3: ``_crfints``, the Level-3
``_x1dints`` of all 60 integrations and the ``_whtlt`` light curve), on the embedded
catalog and store.

The transit is measured as an observer would: each light curve (the ``_whtlt``'s, and
the flux of each 0.5 um bin of the ``_x1dints``) fitted, by weighted least squares with
the pipeline's FLUX_ERROR, as ``F0 (1 - depth s(t))``, ``s`` the truth's transit shape
(0 out of transit, 1 at full depth). The truth's depth over the same wavelengths is the
flux-weighted mean of its per-row ``observed_depth`` (what summing the calibrated spectrum
measures). Tolerances (the issue's):

- white light: depth within 3 % of the truth (measured 0.994 with seed 21; 0.99-1.01 over
  three seeds);
- transmission spectrum: the depth of at least 90 % of the bins within twice its error
  (the error the fit propagates from FLUX_ERROR; a bin is within 1 sigma two times in
  three for honest errors, so "within its error" in 90 % of bins is read at 2 sigma),
  and the pulls' spread within 0.6-1.5 (the errors are honest);
- the light curve's scatter out of transit within 30 % of what FLUX_ERROR predicts, and
  no integration off the fit by more than 5 sigma (a segment's first integration once was:
  its reset-switch charge decay went uncorrected);
- times: every integration's BJD_TDB that of the truth within 1 ms.
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
)

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore::astropy.wcs.FITSFixedWarning")]

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "miri_lrs_tso.yaml"
STEM = "jw04520001001_01101_00001"
LEVEL3 = "jw04520-o001_t001_miri_p750l-slitlessprism"
SEGMENTS = 4
BINS = np.arange(5.0, 14.01, 0.5)  # um
SERIES = TsoSeries(f"{STEM}_mirimage", LEVEL3)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    # 12 MB segments: four of the 60 integrations' 36 MB _uncal
    return run_in_process(yaml.safe_load(EXAMPLE.read_text()), tmp_path_factory.mktemp("tso"), PRODUCT_SERVICES,
                          segment_bytes=12_000_000)


def test_segments_products_and_associations(run):
    check_series_products(run, STEM, "mirimage", LEVEL3, SEGMENTS, "spec2")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the public data models read them without complaint
        with dm.open(str(run["out"] / f"{STEM}-seg002_mirimage_calints.fits")) as cal:
            assert isinstance(cal, dm.CubeModel) and cal.wavelength.shape == cal.data.shape[1:]
            assert cal.meta.exposure.type == "MIR_LRS-SLITLESS" and len(cal.int_times) > 0
        for path in (run["out"] / f"{STEM}-seg002_mirimage_x1dints.fits", run["out"] / f"{LEVEL3}_x1dints.fits"):
            with dm.open(str(path)) as x:
                assert isinstance(x, dm.TSOMultiSpecModel)
                assert x.spec[0].spec_table.columns["FLUX"].unit == "Jy"
    header = fits.getheader(run["out"] / f"{STEM}-seg002_mirimage_calints.fits")
    assert {header[k] for k in ("S_WCS", "S_SRCTYP", "S_FLAT", "S_PHOTOM")} == {"COMPLETE"}
    assert fits.getheader(run["out"] / f"{STEM}-seg002_mirimage_x1dints.fits")["S_EXTR1D"] == "COMPLETE"
    assert header["R_SPCWCS"].endswith("specwcs_lrs-slitless_sim.fits")
    level3 = fits.getheader(run["out"] / f"{LEVEL3}_x1dints.fits")
    assert {level3[k] for k in ("S_OUTLIR", "S_PXREPL", "S_EXTR1D", "S_WHTLIT")} == {"COMPLETE"}
    assert level3["S_TSPHOT"] == "SKIPPED"


def test_level3_x1dints_holds_every_integration_of_every_segment_in_order(run):
    x = SERIES.x1dints(run)
    assert list(x["INT_NUM"]) == list(range(1, 61))
    assert list(np.unique(x["SEGMENT"])) == list(range(1, SEGMENTS + 1))
    assert np.all(np.diff(x["SEGMENT"]) >= 0)
    lc = SERIES.truth(run, "lightcurve")
    assert np.max(np.abs(x["TDB-MID"] - np.asarray(lc["mid_bjd_tdb"]))) * 86400 < 1e-3
    assert np.all(x["MJD-BEG"] < x["MJD-AVG"]) and np.all(x["MJD-AVG"] < x["MJD-END"])
    # every integration has the same wavelengths, 5-14.8 um, increasing
    assert np.all(x["WAVELENGTH"] == x["WAVELENGTH"][0]) and np.all(np.diff(x["WAVELENGTH"][0]) > 0)
    assert 4.9 < x["WAVELENGTH"][0][0] < 5.2 and 14.5 < x["WAVELENGTH"][0][-1] < 15.0
    # the per-segment _x1dints of stage 2 hold the same integrations
    seg = fits.getdata(run["out"] / f"{STEM}-seg002_mirimage_x1dints.fits", "EXTRACT1D")
    assert set(seg["INT_NUM"]) < set(x["INT_NUM"]) and set(seg["SEGMENT"]) == {2}


def test_white_light_depth_against_the_truth(run):
    x = SERIES.x1dints(run)
    check_white_light(Table.read(run["out"] / f"{LEVEL3}_whtlt.ecsv"), x, SERIES.shape(run),
                      *SERIES.truth_depth(run, x["WAVELENGTH"][0]))


def test_transmission_spectrum_against_the_truth(run):
    x = SERIES.x1dints(run)
    wavelength = x["WAVELENGTH"][0]
    shape = SERIES.shape(run)
    check_transmission(bin_depths(x, BINS, shape, *SERIES.truth_depth(run, wavelength)))
    # the feature at 7.4 um is seen: the 7.0-7.5 um bin deeper than the 5-6.5 um ones by most of the 0.17 % truth says
    d_deep, e_deep = band_depth(x, (wavelength >= 7.0) & (wavelength < 7.5), shape)
    d_grey, e_grey = band_depth(x, (wavelength >= 5.0) & (wavelength < 6.5), shape)
    assert d_deep - d_grey > 3 * np.hypot(e_deep, e_grey)


def test_dms_run_tso3_makes_the_archives_products(run, tmp_path):
    """``dms run tso3`` on the archived tso3 association with its ``_calints`` beside it: the
    archive's Level-3 ``_x1dints`` and ``_whtlt``, value for value."""
    from services.stage3.commands import TSO3_COMMAND

    out = run_level3_locally(TSO3_COMMAND, run, "tso3", "calints", tmp_path)
    ours = fits.getdata(out / f"{LEVEL3}_x1dints.fits", "EXTRACT1D")
    np.testing.assert_array_equal(ours["FLUX"], SERIES.x1dints(run)["FLUX"])
    whtlt = Table.read(out / f"{LEVEL3}_whtlt.ecsv")
    np.testing.assert_array_equal(whtlt["whitelight_flux"], Table.read(run["out"] / f"{LEVEL3}_whtlt.ecsv")["whitelight_flux"])


def test_tso3_refuses_a_segment_listed_twice(run):
    from services.stage3.pipeline import TSO3, run_tso3
    from shared.datamodels import read_product
    from shared.errors import InputError
    from shared.refdata import LocalReferences, load_references

    member = read_product(run["out"] / f"{STEM}-seg002_mirimage_calints.fits")
    refs_dir = Path(run["sim"].reference_paths[0]).parent
    refs = load_references(LocalReferences(refs_dir=refs_dir), member.keywords, TSO3.reftypes(member.keywords)).found
    with pytest.raises(InputError, match="two members hold the same integration"):
        run_tso3([member, member], refs=refs, software_version="test")
