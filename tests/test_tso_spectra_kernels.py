"""The kernels and products of spectroscopic time series: the ``_x1dints`` layout (the
public TSOMultiSpecModel), the integrations' times, white_light and the replacement of
flagged pixels by their median over nearby integrations."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from stdatamodels.jwst import datamodels as dm

from services.stage3.steps.outlier_detection import replace_flagged
from services.stage3.steps.white_light import WhiteLightParams, white_light, whtlt_table
from shared.datamodels import FitsProduct, read_product, write_product
from shared.datamodels.spectra import (
    TSO_TIME_COLUMNS,
    IntegrationTimes,
    integration_times,
    x1dints_product,
)
from shared.datamodels.uncal import int_times_table
from shared.spectra import SPECTABLE_DTYPE, ExtractParams


def _spectra(nints: int, n: int = 40) -> list[np.ndarray]:
    out = []
    for i in range(nints):
        t = np.zeros(n, SPECTABLE_DTYPE)
        t["WAVELENGTH"] = np.linspace(5.0, 12.0, n)
        t["FLUX"] = 1.0 + 0.01 * i
        t["FLUX_ERROR"] = 0.001
        out.append(t)
    return out


def test_x1dints_opens_as_the_public_model_with_its_rows_and_units(tmp_path):
    ints = IntegrationTimes(np.arange(21, 25), {c: 60000.0 + np.arange(4) / 1440 for c in TSO_TIME_COLUMNS})
    product = x1dints_product(_spectra(4), ints, {"SLTNAME": "MIR_LRS-SLITLESS", "SRCTYPE": "POINT", "SOURCEID": None},
                              {"TELESCOP": "JWST", "INSTRUME": "MIRI", "EXP_TYPE": "MIR_LRS-SLITLESS",
                               "BUNIT": "MJy/sr", "SRCXPOS": 36.0}, segment=np.array([2, 2, 3, 3]))
    path = write_product(tmp_path / "a_x1dints.fits", product)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = dm.open(path)
        model.validate()
    assert type(model).__name__ == "TSOMultiSpecModel"
    table = model.spec[0].spec_table
    assert table["FLUX"].shape == (4, 40)
    assert list(table["INT_NUM"]) == [21, 22, 23, 24]
    assert list(table["SEGMENT"]) == [2, 2, 3, 3]
    assert list(table["N_ALONGDISP"]) == [40] * 4
    assert table.columns["WAVELENGTH"].unit == "um" and table.columns["FLUX"].unit == "Jy"
    assert table.columns["TDB-MID"].unit == "d"
    assert model.spec[0].source_type == "POINT"
    assert read_product(path).spectra[0].table["FLUX"].shape == (4, 40)


def test_x1dints_refuses_spectra_it_cannot_lay_out():
    ints = IntegrationTimes(np.arange(1, 3), {c: np.zeros(2) for c in TSO_TIME_COLUMNS})
    with pytest.raises(ValueError, match="differ in length"):
        x1dints_product([*_spectra(1, 40), *_spectra(1, 41)], ints, {}, {})
    with pytest.raises(ValueError, match="3 spectra for 2 integrations"):
        x1dints_product(_spectra(3), ints, {}, {})
    with pytest.raises(ValueError, match="at least one"):
        x1dints_product([], ints, {}, {})


def test_integration_times_of_a_segment_come_from_its_int_times_rows():
    rows = [(i, 60000 + i, 60000.5 + i, 60001 + i, 60000.1 + i, 60000.6 + i, 60001.1 + i) for i in range(1, 11)]
    product = FitsProduct("CubeModel", keywords={"INTSTART": 4}, tables={"INT_TIMES": int_times_table(rows[::-1])})
    found = integration_times(product, 3)
    assert list(found.numbers) == [4, 5, 6]
    assert found.times["MJD-AVG"] == pytest.approx([60004.5, 60005.5, 60006.5])
    assert found.times["TDB-END"] == pytest.approx([60005.1, 60006.1, 60007.1])
    assert found.note is None
    # without a table: the MJDs from EXPSTART and EFFINTTM, BJD_TDB unknown, and said so
    bare = FitsProduct("CubeModel", keywords={"INTSTART": 3, "EXPSTART": 60000.0, "EFFINTTM": 8640.0})
    found = integration_times(bare, 2)
    assert found.times["MJD-BEG"] == pytest.approx([60000.2, 60000.3])
    assert found.times["MJD-AVG"] == pytest.approx([60000.25, 60000.35])
    assert np.isnan(found.times["TDB-MID"]).all() and "BJD_TDB unknown" in found.note


def test_white_light_sums_the_measured_flux_in_the_range():
    wavelength = np.tile(np.linspace(5.0, 14.0, 10), (3, 1))
    flux = np.ones((3, 10))
    flux[1, 2] = np.nan
    flux[2] = np.nan
    assert white_light(wavelength, flux)[:2] == pytest.approx([10.0, 9.0])
    assert np.isnan(white_light(wavelength, flux)[2])
    sums = white_light(wavelength, flux, WhiteLightParams(min_wavelength=6.0, max_wavelength=12.0))
    assert sums[0] == pytest.approx(np.sum((wavelength[0] >= 6) & (wavelength[0] <= 12)))
    with pytest.raises(ValueError, match="min_wavelength"):
        WhiteLightParams(min_wavelength=12.0, max_wavelength=6.0)
    with pytest.raises(ValueError, match="one shape"):
        white_light(wavelength[:, :5], flux)


def test_whtlt_table_has_the_public_columns_in_time_order():
    table = whtlt_table(np.array([3.0, 1.0, 2.0]), np.array([3.0, 1.0, 2.0]), np.array([3.1, 1.1, 2.1]),
                        meta={"exp_type": "MIR_LRS-SLITLESS"})
    assert table.colnames == ["MJD_UTC", "BJD_TDB", "whitelight_flux"]
    assert list(table["MJD_UTC"]) == [1.0, 2.0, 3.0]
    assert list(table["whitelight_flux"].value) == [1.0, 2.0, 3.0] and str(table["whitelight_flux"].unit) == "Jy"
    assert table.meta["exp_type"] == "MIR_LRS-SLITLESS"


def test_replace_flagged_takes_the_median_of_nearby_integrations():
    t = np.arange(40, dtype=np.float32)
    cube = np.broadcast_to(t[:, None, None], (40, 2, 2)).copy()  # a ramp in time: only a local median fits
    unusable = np.zeros(cube.shape, bool)
    unusable[30, 1, 1] = True
    unusable[:, 0, 0] = True  # never usable: nothing to take
    filled, replaced = replace_flagged(cube, unusable, 5)
    assert replaced.sum() == 1 and replaced[30, 1, 1]
    assert filled[30, 1, 1] == pytest.approx(30.0, abs=0.5)
    assert np.isnan(filled[:, 0, 0]).all()


def test_extract_params_take_the_slitless_modes_background_by_default():
    params = ExtractParams().for_mode("MIR_LRS-SLITLESS")
    assert params.width == 13.0 and params.background == ((-25.0, -12.0), (12.0, 25.0))
    assert ExtractParams().for_mode("MIR_LRS-FIXEDSLIT").background == ()
    assert ExtractParams(background=()).for_mode("MIR_LRS-SLITLESS").background == ()


def test_a_products_metadata_is_read_without_its_arrays(tmp_path):
    """What tso3 knows of its members before it takes each: keywords, tables, no image."""
    rows = [(i, 60000.0 + i, 60000.5 + i, 60001.0 + i, 60000.1 + i, 60000.6 + i, 60001.1 + i) for i in (1, 2)]
    product = FitsProduct("CubeModel", keywords={"EXP_TYPE": "MIR_LRS-SLITLESS", "INTSTART": 1},
                          images={"SCI": np.ones((2, 3, 4), np.float32), "DQ": np.zeros((2, 3, 4), np.uint32)},
                          tables={"INT_TIMES": int_times_table(rows)})
    path = write_product(tmp_path / "a_calints.fits", product)
    meta = read_product(path, arrays=False)
    assert meta.images == {} and meta.keywords["EXP_TYPE"] == "MIR_LRS-SLITLESS"
    assert list(meta.tables["INT_TIMES"]["integration_number"]) == [1, 2]
    assert read_product(path).images["SCI"].shape == (2, 3, 4)
