"""NIRCam's grism time series (NRC_TSGRISM: GRISMR behind F444W on NRCALONG, SUBGRISM64)
and the short-wave imaging read at the same time (NRC_TSIMAGE: F212N behind the WLP8 weak
lens on NRCA1) through the system, scored against the simulator's truth.

One module-scoped run of ``examples/nircam_grism_tso.yaml`` (a 0.4 Jy star at 4.4 um
transited by a planet that blocks 1 %, 1.3 % in a CO2 band at 4.3 um; 30 integrations)
in this process: simulator -> ingest (each detector's exposure cut into three segments)
-> detector1 (``_rateints``) -> the Level-2 associations (tso-spec2 for the grism,
tso-image2 for the short wave) -> stage 2 (calwebb_spec2: ``_calints`` and ``_x1dints``
per segment; calwebb_image2: ``_calints``) -> two tso3 associations -> stage 3
(calwebb_tso3: the grism's Level-3 ``_x1dints`` and ``_whtlt``; the short wave's
``_phot``), on the embedded catalog and store.

The transit is measured as tests/tso_scoring.py says. Tolerances (the issue's):

- the spectrum within 3 % of the truth's (median over the band, each integration out of
  transit), its wavelengths those of the truth's dispersion to 1e-6 um;
- white light: depth within 3 % of the truth's over the same elements, the scatter out
  of transit within 30 % of what FLUX_ERROR predicts;
- transmission spectrum (0.05 um bins, 3.9-4.95 um): at least 90 % of the bins within
  twice their error of the truth, the pulls' spread within 0.6-1.5, and the CO2 band
  seen deeper than its surroundings by more than 3 sigma;
- the short wave's light curve (``_phot``): the depth within 3 sigma of its error of the
  truth's (the transit's depth at F212N's pivot; the error is 2.5 % of the depth), its
  scatter within 30 % of what its errors predict, the star's flux within 3 % of the
  truth's (the aperture holds 99.7 % of the defocused star).
"""

from __future__ import annotations

import json
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
    check_transmission,
    check_white_light,
    fit_transit,
    rateints_and_references,
    transit_shape,
)

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore::astropy.wcs.FITSFixedWarning")]

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "nircam_grism_tso.yaml"
STEM = "jw04610001001_01101_00001"
LEVEL3 = "jw04610-o001_t001_nircam_f444w-grismr-subgrism64"
PHOT = "jw04610-o001_t001_nircam_f212n-wlp8-subgrism64_phot.ecsv"
SEGMENTS = 3
NINTS = 30
BINS = np.round(np.arange(3.9, 4.951, 0.05), 3)  # um
SERIES = TsoSeries(f"{STEM}_nrcalong", LEVEL3)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    # 12 MB segments: three of each detector's 30 integrations' 31 MB _uncal (zero frames included)
    return run_in_process(yaml.safe_load(EXAMPLE.read_text()), tmp_path_factory.mktemp("grism"), PRODUCT_SERVICES,
                          segment_bytes=12_000_000)


def test_segments_products_and_associations(run):
    names = set(run["names"])
    for seg in range(1, SEGMENTS + 1):
        for det, made in (("nrcalong", ("uncal", "rateints", "calints", "x1dints", "o001_crfints")),
                          ("nrca1", ("uncal", "rateints", "calints", "o001_crfints"))):
            assert {f"{STEM}-seg{seg:03d}_{det}_{s}.fits" for s in made} <= names, (seg, det)
    assert {f"{LEVEL3}_x1dints.fits", f"{LEVEL3}_whtlt.ecsv", PHOT} <= names
    asns = {n: json.loads((run["out"] / n).read_text()) for n in names if n.endswith("_asn.json")}
    # the Level-2 associations a product per segment, a tso3 per channel
    kinds = sorted((a["asn_type"], a["products"][0]["name"], len(a["products"])) for a in asns.values())
    assert kinds == sorted([("tso-image2", f"{STEM}-seg001_nrca1", SEGMENTS),
                            ("tso-spec2", f"{STEM}-seg001_nrcalong", SEGMENTS),
                            ("tso3", LEVEL3, 1), ("tso3", PHOT.removesuffix("_phot.ecsv"), 1)]), kinds
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the public data models read them without complaint
        with dm.open(str(run["out"] / f"{STEM}-seg002_nrcalong_calints.fits")) as cal:
            # a slitless time series: a CubeModel of the integrations, with its wavelengths
            assert isinstance(cal, dm.CubeModel) and cal.data.shape[1:] == (64, 2048)
            assert cal.meta.exposure.type == "NRC_TSGRISM" and cal.meta.instrument.pupil == "GRISMR"
            assert cal.wavelength.shape == (64, 2048) and len(cal.int_times) > 0
        with dm.open(str(run["out"] / f"{STEM}-seg002_nrca1_calints.fits")) as sw:
            assert isinstance(sw, dm.CubeModel) and sw.meta.exposure.type == "NRC_TSIMAGE"
            assert (sw.meta.instrument.filter, sw.meta.instrument.pupil) == ("F212N", "WLP8")
            assert (sw.meta.subarray.name, sw.meta.subarray.ystart) == ("SUBGRISM64", 85)
        for path in (run["out"] / f"{STEM}-seg002_nrcalong_x1dints.fits", run["out"] / f"{LEVEL3}_x1dints.fits"):
            with dm.open(str(path)) as x:
                assert isinstance(x, dm.TSOMultiSpecModel)
                assert x.spec[0].spec_table.columns["FLUX"].unit == "Jy"
    header = fits.getheader(run["out"] / f"{STEM}-seg002_nrcalong_calints.fits")
    assert {header[k] for k in ("S_WCS", "S_SRCTYP", "S_FLAT", "S_PHOTOM")} == {"COMPLETE"}
    assert header["R_SPCWCS"].endswith(".asdf")
    assert fits.getheader(run["out"] / f"{STEM}-seg002_nrcalong_calints.fits", "SCI")["DISPAXIS"] == 1
    level3 = fits.getheader(run["out"] / f"{LEVEL3}_x1dints.fits")
    assert {level3[k] for k in ("S_OUTLIR", "S_PXREPL", "S_EXTR1D", "S_WHTLIT")} == {"COMPLETE"}


def test_level3_x1dints_holds_every_integration_and_the_grisms_wavelengths(run):
    x = SERIES.x1dints(run)
    assert list(x["INT_NUM"]) == list(range(1, NINTS + 1))
    assert list(np.unique(x["SEGMENT"])) == list(range(1, SEGMENTS + 1))
    lc = SERIES.truth(run, "lightcurve")
    assert np.max(np.abs(x["TDB-MID"] - np.asarray(lc["mid_bjd_tdb"]))) * 86400 < 1e-3
    wavelength = x["WAVELENGTH"][0]
    assert np.all(x["WAVELENGTH"] == wavelength) and np.all(np.diff(wavelength) > 0)
    # each column's wavelength is the dispersion's at that column, for the source where it lies
    # (its undispersed image, SRCXPOS): lambda = 4.0 + 0.0010035 (column - x0) um
    x0 = fits.getheader(run["out"] / f"{STEM}-seg001_nrcalong_calints.fits", "SCI")["SRCXPOS"]
    columns = np.round((wavelength - 4.0) / 0.0010035 + x0)
    np.testing.assert_allclose(wavelength, 4.0 + 0.0010035 * (columns - x0), atol=1e-6)
    assert 3.88 <= wavelength[0] < 3.885 and 4.975 < wavelength[-1] <= 4.98


def test_spectrum_flux_against_the_truth(run):
    x = SERIES.x1dints(run)
    wavelength = x["WAVELENGTH"][0]
    sp = SERIES.truth(run, "spectrum")
    order = np.argsort(sp["wavelength"])
    jy = np.interp(wavelength, np.asarray(sp["wavelength"])[order], np.asarray(sp["observed_jy"])[order])
    out = SERIES.shape(run) == 0
    ratio = np.nanmedian(x["FLUX"][out] / jy[None, :], axis=1)
    spread = np.nanstd((x["FLUX"][out] - jy) / x["FLUX_ERROR"][out])
    print(f"flux / truth out of transit: median {np.median(ratio):.4f} ({ratio.min():.4f}-{ratio.max():.4f} "
          f"over {out.sum()} integrations); spread of (flux - truth) / error {spread:.2f}")
    assert np.all(np.abs(ratio - 1) < 0.03)


def test_white_light_depth_against_the_truth(run):
    x = SERIES.x1dints(run)
    check_white_light(Table.read(run["out"] / f"{LEVEL3}_whtlt.ecsv"), x, SERIES.shape(run),
                      *SERIES.truth_depth(run, x["WAVELENGTH"][0]))


def test_transmission_spectrum_against_the_truth(run):
    x = SERIES.x1dints(run)
    wavelength = x["WAVELENGTH"][0]
    shape = SERIES.shape(run)
    check_transmission(bin_depths(x, BINS, shape, *SERIES.truth_depth(run, wavelength)))
    d_band, e_band = band_depth(x, (wavelength >= 4.25) & (wavelength < 4.35), shape)
    d_cont, e_cont = band_depth(x, ((wavelength >= 3.9) & (wavelength < 4.15)) | (wavelength >= 4.5), shape)
    print(f"4.25-4.35 um {d_band:.5f} +- {e_band:.5f} against the continuum {d_cont:.5f} +- {e_cont:.5f}")
    assert d_band - d_cont > 3 * np.hypot(e_band, e_cont)


def test_short_wave_light_curve_against_the_truth(run):
    """The short-wave channel's ``_phot``: every integration of the three segments, the
    transit's depth and the star's flux against the truth."""
    phot = Table.read(run["out"] / PHOT)
    truth = Table.read(run["truth_dir"] / f"{STEM}_nrca1_truth_lightcurve.ecsv")
    assert len(phot) == NINTS and np.all(np.diff(np.asarray(phot["MJD"])) > 0)
    assert np.max(np.abs(np.asarray(phot["BJD_TDB"]) - np.asarray(truth["mid_bjd_tdb"]))) * 86400 < 1e-3
    flux, error = np.asarray(phot["net_aperture_sum"].value), np.asarray(phot["net_aperture_sum_err"].value)
    shape = transit_shape(truth)
    depth, depth_err, residuals = fit_transit(flux, error, shape)
    expected = truth.meta["transit"]["depth"]
    print(f"short wave: depth {depth:.5f} +- {depth_err:.5f}, truth {expected:.5f}; scatter / predicted "
          f"{np.std(residuals):.2f}; flux {np.median(flux[shape == 0]):.4f} Jy")
    assert abs(depth - expected) < 3 * depth_err
    assert 0.7 < np.std(residuals) < 1.3
    # the star's flux density at the filter's pivot (its spectrum there), in Jy
    spectrum = yaml.safe_load(EXAMPLE.read_text())["targets"][0]["spectrum"]
    f_pivot = spectrum["flux_jy"] * (2.12 / spectrum["reference_wavelength"]) ** spectrum["slope"]
    assert abs(np.median(flux[shape == 0]) / f_pivot - 1) < 0.03


def test_dms_run_tso3_makes_the_archives_products(run, tmp_path):
    """``dms run tso3`` on the archived grism tso3 association with its ``_calints`` beside
    it: the archive's Level-3 ``_x1dints`` and ``_whtlt``, value for value."""
    from services.stage3.commands import TSO3_COMMAND

    out = run_level3_locally(TSO3_COMMAND, run, "tso3", "calints", tmp_path, product=LEVEL3)
    np.testing.assert_array_equal(fits.getdata(out / f"{LEVEL3}_x1dints.fits", "EXTRACT1D")["FLUX"],
                                  SERIES.x1dints(run)["FLUX"])
    np.testing.assert_array_equal(Table.read(out / f"{LEVEL3}_whtlt.ecsv")["whitelight_flux"],
                                  Table.read(run["out"] / f"{LEVEL3}_whtlt.ecsv")["whitelight_flux"])


def _segment_and_references(run) -> tuple:
    return rateints_and_references(run, f"{STEM}-seg002_nrcalong_rateints.fits")


def test_without_distortion_the_source_is_at_the_apertures_reference_point(run):
    """Without the DISTORTION reference the source's place cannot come from the WCS: the
    aperture's reference point (XREF_SCI/YREF_SCI) stands in, and without those either
    the exposure is refused with the reason."""
    from services.stage2.spec2 import run_spec2
    from shared.datamodels import FitsProduct
    from shared.errors import InputError

    rateints, refs = _segment_and_references(run)
    # ingest wrote the grism aperture's reference point (the simulator's IMX, IMY), 1-based in the window
    assert (rateints.keywords["XREF_SCI"], rateints.keywords["YREF_SCI"]) == (900.0, 34.0)
    with_wcs = run_spec2(rateints, refs, software_version="test")
    refs = {k: v for k, v in refs.items() if k != "distortion"}
    out = run_spec2(rateints, refs, software_version="test")
    assert any("XREF_SCI" in n for n in out.record.notes)
    kw = with_wcs.cal.keywords
    without = FitsProduct(model_type=rateints.model_type, images=rateints.images,
                          keywords={k: v for k, v in rateints.keywords.items() if k not in ("XREF_SCI", "YREF_SCI")})
    with pytest.raises(InputError, match="where the source images cannot be known"):
        run_spec2(without, refs, software_version="test")
    # the pointing's error moves the source by a fraction of a pixel: nearly the same spectrum
    a, b = with_wcs.x1d.spectra[0].table, out.x1d.spectra[0].table
    assert abs(float(kw["SRCXPOS"]) - 899.0) < 2 and abs(float(kw["SRCYPOS"]) - 33.0) < 2
    assert np.nanmedian(b["FLUX"]) / np.nanmedian(a["FLUX"]) == pytest.approx(1.0, abs=0.02)


def test_a_specwcs_without_the_grisms_models_is_a_reference_error(run):
    from services.stage2.spec2 import run_spec2
    from shared.refdata import ReferenceFileError

    rateints, refs = _segment_and_references(run)
    # (without invdispx the offset along the dispersion is inverted over t, as NIRISS's files need)
    refs["specwcs"].tree = {k: v for k, v in refs["specwcs"].tree.items() if k != "dispy"}
    with pytest.raises(ReferenceFileError, match="SPECWCS reference .* lacks dispy"):
        run_spec2(rateints, refs, software_version="test")
