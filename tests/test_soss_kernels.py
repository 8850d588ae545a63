"""NIRISS SOSS's kernels (:mod:`shared.spectra.soss`): each spectral order's trace from a
SPECTRACE reference, the extraction in DN/s and the flux calibration of the spectra from
the SOSS PHOTOM, the ``_x1dints`` with a table per order and the white light per order."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from stdatamodels.jwst import datamodels as dm

from services.stage3.steps.white_light import whtlt_table
from shared.datamodels import write_product
from shared.datamodels.spectra import TSO_TIME_COLUMNS, IntegrationTimes, x1dints_product
from shared.spectra import SPECTABLE_DTYPE, ExtractParams, boxcar_extract, in_frame, spectable_units
from shared.spectra.soss import (
    ORDER_BACKGROUND,
    calibrate_spectrum,
    order_conversion,
    order_params,
    order_traces,
)

_TRACE_DTYPE = np.dtype([("WAVELENGTH", "<f8"), ("X", "<f8"), ("Y", "<f8"), ("THROUGHPUT", "<f8"), ("TILT", "<f8")])


def _order_table(x: np.ndarray, y: np.ndarray, wavelength: np.ndarray) -> np.ndarray:
    t = np.zeros(x.size, _TRACE_DTYPE)
    t["X"], t["Y"], t["WAVELENGTH"], t["THROUGHPUT"] = x, y, wavelength, 0.3
    return t


def _spectrace(window: tuple[int, int] = (1, 1793)) -> tuple[list, dict]:
    """Two orders on a 2048 x 256 window starting at full-frame ``window`` (1-based): order
    1 over columns 4-2043, order 2 over 106-1738, wavelength falling with the column."""
    x1 = np.arange(4.0, 2044.0)
    x2 = np.arange(106.0, 1739.0)
    orders = [({"ORDER": 1, "EXTVER": 1}, _order_table(x1, 69.0 + 2e-5 * (x1 - 1024.0) ** 2, 2.85 - 9.75e-4 * (x1 - 4))),
              ({"ORDER": 2, "EXTVER": 2}, _order_table(x2, 159.0 + 0.05 * (x2 - 1024.0), 1.40 - 4.9e-4 * (x2 - 106)))]
    return orders, {"SUBSTRT1": window[0], "SUBSTRT2": window[1]}


def test_order_traces_put_each_order_on_the_window_in_its_frame():
    orders, header = _spectrace()
    traces = order_traces(orders, header, xstart=1, ystart=1793, nx=2048, ny=256)
    assert list(traces) == [1, 2]
    one, two = traces[1], traces[2]
    assert one.dispaxis == 1 and two.dispaxis == 1
    assert (one.rows[0], one.rows[-1]) == (4, 2043) and (two.rows[0], two.rows[-1]) == (106, 1738)
    assert one.wavelength[4] == pytest.approx(2.85) and one.wavelength[1000] == pytest.approx(2.85 - 9.75e-4 * 996)
    assert one.x[1024] == pytest.approx(69.0) and two.x[1024] == pytest.approx(159.0)
    assert np.isnan(one.wavelength[2]) and np.isnan(two.x[1800])


def test_order_traces_follow_the_exposures_window():
    """The reference's X and Y are in its own window (SUBSTRT); an exposure read in another
    window sees the traces shifted by the difference, and an order off it is left out."""
    orders, header = _spectrace()
    # a window 100 rows higher on the detector and 500 columns to the right
    traces = order_traces(orders, header, xstart=501, ystart=1893, nx=1548, ny=156)
    assert 1 not in traces  # order 1 is 31 to 10 rows below this window
    assert traces[2].x[1024 - 500] == pytest.approx(59.0)
    assert traces[2].rows[0] == 0
    assert not order_traces(orders, header, xstart=1, ystart=1, nx=2048, ny=256)


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda o: o.clear(), "no ORDER table"),
    (lambda o: o.append(o[0]), "order 1 has two ORDER tables"),
    (lambda o: o.__setitem__(0, ({"ORDER": 1}, o[0][1][["X", "Y"]])), "no WAVELENGTH"),
    (lambda o: o[0][1].__setitem__("WAVELENGTH", np.r_[o[0][1]["WAVELENGTH"][:-1], 9.0]), "not monotonic"),
    (lambda o: o.__setitem__(0, ({}, o[0][1])), "neither its ORDER nor its EXTVER"),
])
def test_order_traces_say_what_is_wrong_with_the_reference(mutate, message):
    orders, header = _spectrace()
    mutate(orders)
    with pytest.raises(ValueError, match=message):
        order_traces(orders, header, xstart=1, ystart=1793, nx=2048, ny=256)


def _photom(rows=((1, 2.0e-9), (2, 5.0e-9))) -> np.ndarray:
    dtype = np.dtype([("filter", "S12"), ("pupil", "S12"), ("order", "<i2"), ("photmj", "<f4"),
                      ("uncertainty", "<f4"), ("nelem", "<i2"), ("wavelength", "<f4", (8,)),
                      ("relresponse", "<f4", (8,)), ("reluncertainty", "<f4", (8,))])
    table = np.zeros(len(rows), dtype)
    for i, (order, photmj) in enumerate(rows):
        table[i] = ("CLEAR", "GR700XD", order, photmj, 0.0, 5, np.r_[np.linspace(0.5, 3.0, 5), 0, 0, 0],
                    np.r_[np.linspace(1.0, 2.0, 5), 0, 0, 0], 0)
    return table


def test_order_conversion_is_the_rows_photmj_times_its_response():
    conv = order_conversion(_photom(), filter="clear", pupil="GR700XD", order=2)
    assert conv.order == 2 and conv.photmj == pytest.approx(5.0e-9)
    np.testing.assert_allclose(conv.at(np.array([0.5, 1.75, 3.0])), 5.0e-9 * np.array([1.0, 1.5, 2.0]), rtol=1e-6)
    assert np.isnan(conv.at(np.array([0.4, np.nan]))).all()  # off the response: no conversion
    assert order_conversion(_photom(), filter="CLEAR", pupil="GR700XD", order=3) is None
    assert order_conversion(_photom(), filter="F277W", pupil="GR700XD", order=1) is None
    with pytest.raises(ValueError, match="photmj"):
        order_conversion(_photom(((1, -1.0),)), filter="CLEAR", pupil="GR700XD", order=1)
    with pytest.raises(ValueError, match="no relresponse"):
        order_conversion(_photom()[["filter", "pupil", "order", "photmj", "wavelength"]], filter="CLEAR",
                         pupil="GR700XD", order=1)


def test_a_spectrum_extracted_in_dn_is_calibrated_to_jy_and_mjy_per_sr():
    """A flat 10 DN/s per pixel under a 3-pixel profile on a 2 DN/s sky: the box holds 30
    DN/s per column over the sky the background region measures; photom turns it into Jy
    (x 1e6 x photmj x response) and the sky into MJy/sr (over the pixel area)."""
    ny, nx = 12, 60  # the dispersion frame: rows are detector columns
    sci = np.full((ny, nx), 2.0)
    sci[:, 20:23] += 10.0
    var = np.full((ny, nx), 0.5)
    wl = np.linspace(1.0, 2.0, ny)
    params = ExtractParams(width=5.0, background=((10.0, 20.0),))
    table = boxcar_extract(sci, np.zeros((ny, nx), np.uint32), {"POISSON": var}, np.full(ny, 21.0), np.arange(ny), wl,
                           float("nan"), params, unit="DN/s")
    np.testing.assert_allclose(table["FLUX"], 30.0)
    np.testing.assert_allclose(table["BACKGROUND"], 2.0)
    conv = order_conversion(_photom(), filter="CLEAR", pupil="GR700XD", order=1)
    pixar = 1.0e-13
    out = calibrate_spectrum(table, conv, pixar)
    mjy = conv.at(table["WAVELENGTH"])
    np.testing.assert_allclose(out["FLUX"], 30.0 * mjy * 1e6)
    np.testing.assert_allclose(out["FLUX_VAR_POISSON"], table["FLUX_VAR_POISSON"] * (mjy * 1e6) ** 2)
    np.testing.assert_allclose(out["BACKGROUND"], 2.0 * mjy / pixar)
    np.testing.assert_allclose(out["SURF_BRIGHT"], table["SURF_BRIGHT"] * mjy / pixar)
    assert table["FLUX"][0] == 30.0  # the input is left as it was
    with pytest.raises(ValueError, match="PIXAR_SR"):
        calibrate_spectrum(table, conv, 0.0)


def test_elements_without_a_conversion_become_unusable():
    table = np.zeros(3, SPECTABLE_DTYPE)
    table["WAVELENGTH"] = [0.2, 1.0, 2.0]
    table["FLUX"] = 5.0
    out = calibrate_spectrum(table, order_conversion(_photom(), filter="CLEAR", pupil="GR700XD", order=1), 1e-13)
    assert np.isnan(out["FLUX"][0]) and out["DQ"][0] & 1 and np.isfinite(out["FLUX"][1:]).all()


def test_each_order_takes_its_own_background_side_unless_told():
    assert order_params(ExtractParams(), 1).background == ORDER_BACKGROUND[1]
    assert order_params(ExtractParams(), 2).background == ORDER_BACKGROUND[2]
    assert order_params(ExtractParams(), 3).background == ()
    assert order_params(ExtractParams(), 1).width == 40.0
    assert order_params(ExtractParams(width=30.0, background=()), 2) == ExtractParams(width=30.0, background=())


def test_x1dints_of_two_orders_opens_as_the_public_model(tmp_path):
    def series(first: float) -> list[np.ndarray]:
        out = []
        for i in range(3):
            t = np.zeros(5, SPECTABLE_DTYPE)
            t["WAVELENGTH"] = np.linspace(first, first + 1.0, 5)
            t["FLUX"] = 1.0 + i
            out.append(t)
        return out

    ints = IntegrationTimes(np.arange(1, 4), {c: 60000.0 + np.arange(3) / 1440 for c in TSO_TIME_COLUMNS})
    product = x1dints_product({1: series(0.9), 2: series(0.6)}, ints, {"SLTNAME": "NIS_SOSS", "SRCTYPE": "POINT"},
                              {"TELESCOP": "JWST", "INSTRUME": "NIRISS", "EXP_TYPE": "NIS_SOSS"})
    path = write_product(tmp_path / "a_x1dints.fits", product)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = dm.open(path)
        model.validate()
    assert type(model).__name__ == "TSOMultiSpecModel"
    assert [s.spectral_order for s in model.spec] == [1, 2]
    assert model.spec[1].spec_table["WAVELENGTH"][0][0] == pytest.approx(0.6)
    assert model.spec[0].spec_table.columns["FLUX"].unit == "Jy"
    counts = x1dints_product({1: series(0.9)}, ints, {}, {}, counts=True)
    units = spectable_units(counts.spectra[0].table, counts=True)
    names = counts.spectra[0].table.dtype.names
    assert units[f"TUNIT{names.index('FLUX') + 1}"] == "DN/s"
    assert units[f"TUNIT{names.index('FLUX_VAR_POISSON') + 1}"] == "DN^2/s^2"
    assert units[f"TUNIT{names.index('WAVELENGTH') + 1}"] == "um"


def test_whtlt_of_two_orders_has_the_public_columns():
    table = whtlt_table({"whitelight_flux_order_1": np.array([2.0, 1.0]), "whitelight_flux_order_2": np.array([4.0, 3.0])},
                        np.array([2.0, 1.0]), np.array([2.1, 1.1]))
    assert table.colnames == ["MJD_UTC", "BJD_TDB", "whitelight_flux_order_1", "whitelight_flux_order_2"]
    assert list(table["whitelight_flux_order_2"].value) == [3.0, 4.0]  # in time order


def test_in_frame_sees_sosss_columns_as_rows():
    cube = np.arange(2 * 3 * 4).reshape(2, 3, 4)
    assert in_frame(cube, 1).shape == (2, 4, 3)
