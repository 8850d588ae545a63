"""Previews of time-series spectroscopy: the spectral time series (``_x1dints``, a waterfall
of each integration over the median spectrum) and the white-light curve (``_whtlt``).

Inputs are in the public layouts: the ``_x1dints`` written by stdatamodels'
TSOMultiSpecModel (one EXTRACT1D table per order, one row per integration, array columns),
the ``_whtlt`` by the public white_light step (jwst) from that model, written as ECSV. A
synthetic transit of known depth and integrations runs through both.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import QTable, Table
from PIL import Image
from sqlalchemy import select
from stdatamodels.jwst import datamodels

from services.preview.load import (
    LightCurveSource,
    SpectrumSource,
    UnreadableProductError,
    load_source,
)
from services.preview.pipeline import lightcurve_plot, make_preview, waterfall_plot
from services.preview.steps.plots import PLOT_SIZE
from services.preview.steps.waterfall import RATIO_LABEL, waterfall, waterfall_figure, waterfall_rgb
from services.preview.task import SCIENCE_SUFFIXES, handle_product
from services.registry import embedded_context
from shared.catalog import Artifact, Product, Program, TaskFailure
from shared.catalog.queries import register_product
from shared.config import Settings
from shared.datamodels import dqflags
from shared.datamodels.fits_io import content_type, read_product
from shared.messages import ProductArchived, ProductRef, new_event
from shared.naming import object_key
from shared.routing import ROUTES
from shared.runtime import run_handler
from shared.storage import Bucket

DNU = dqflags.PIXEL["DO_NOT_USE"]
NINTS, NWAVE = 40, 90
IN_TRANSIT = slice(15, 25)  # integrations 16-25 (rows 15-24)
DEPTH = 0.01
CADENCE_DAYS = 60.0 / 86400.0
T0 = 60500.25  # BJD_TDB (MJD) of the first integration
X1DINTS = "jw01234001001_04101_00001-seg001_mirimage_x1dints.fits"
WHTLT = "jw01234-o001_t001_miri_p750l-slitlessprism_whtlt.ecsv"

# the public tso_spectable columns that are one value per integration (the others are arrays)
_PER_INTEGRATION = {"INT_NUM", "N_ALONGDISP", "SEGMENT", "MJD-BEG", "MJD-AVG", "MJD-END", "TDB-BEG", "TDB-MID",
                    "TDB-END"}


def transit_depths(nints: int = NINTS) -> np.ndarray:
    depth = np.zeros(nints)
    depth[IN_TRANSIT] = DEPTH
    return depth


def tso_spectrum(nints: int = NINTS, nwave: int = NWAVE, *, order: int = 1, seed: int = 7,
                 flux: np.ndarray | None = None, padded: int = 4) -> datamodels.TSOSpecModel:
    """One order of a MIRI LRS-like time series: wavelength decreasing along the table (as
    the LRS rows), a transit of DEPTH in IN_TRANSIT, 0.1 % noise, the last ``padded`` points
    of every row padding (NaN, DO_NOT_USE), as the public extraction leaves them."""
    spec = datamodels.TSOSpecModel()
    columns = spec.schema["properties"]["spec_table"]["datatype"]
    dtype = [(c["name"], c["datatype"], () if c["name"] in _PER_INTEGRATION else (nwave,)) for c in columns]
    table = np.zeros(nints, dtype=dtype)
    wavelength = np.linspace(14.0, 5.0, nwave)
    if flux is None:
        rng = np.random.default_rng(seed)
        star = 2e-3 * np.exp(-(((wavelength - 8.0) / 4.0) ** 2))
        flux = star[None, :] * (1.0 - transit_depths(nints)[:, None]) * (1.0 + rng.normal(0, 1e-3, (nints, nwave)))
    table["WAVELENGTH"] = wavelength
    table["FLUX"] = flux
    table["FLUX_ERROR"] = 2e-6
    table["DQ"] = 0
    if padded:
        table["WAVELENGTH"][:, -padded:] = np.nan
        table["FLUX"][:, -padded:] = np.nan
        table["DQ"][:, -padded:] = DNU
    table["INT_NUM"] = np.arange(1, nints + 1)
    table["N_ALONGDISP"] = nwave - padded
    table["SEGMENT"] = 1
    mid = np.arange(nints) * CADENCE_DAYS
    for prefix, t0 in (("MJD", T0 - 0.004), ("TDB", T0)):
        for name, shift in (("BEG", -0.4), ("AVG" if prefix == "MJD" else "MID", 0.0), ("END", 0.4)):
            table[f"{prefix}-{name}"] = t0 + mid + shift * CADENCE_DAYS
    spec.spec_table = table
    for name, unit in (("WAVELENGTH", "um"), ("FLUX", "Jy"), ("FLUX_ERROR", "Jy")):
        spec.spec_table.columns[name].unit = unit
    spec.spectral_order = order
    return spec


def tso_model(*orders: datamodels.TSOSpecModel) -> datamodels.TSOMultiSpecModel:
    model = datamodels.TSOMultiSpecModel()
    model.meta.instrument.name = "MIRI"
    model.meta.instrument.detector = "MIRIMAGE"
    model.meta.instrument.filter = "P750L"
    model.meta.exposure.type = "MIR_LRS-SLITLESS"
    model.meta.subarray.name = "SLITLESSPRISM"
    for spec in orders or (tso_spectrum(),):
        model.spec.append(spec)
    return model


def write_x1dints(path: Path, *orders: datamodels.TSOSpecModel) -> Path:
    with tso_model(*orders) as model:
        model.save(path)
    return path


def write_whtlt(path: Path, *orders: datamodels.TSOSpecModel) -> Path:
    """The public white_light step's table of ``orders`` (jwst's own function), as ECSV."""
    from jwst.white_light.white_light import white_light

    with tso_model(*orders) as model:
        white_light(model).write(path, format="ascii.ecsv", overwrite=True)
    return path


def _png_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as im:
        assert im.format == "PNG"
        return im.size


def _jpeg_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as im:
        assert im.format == "JPEG"
        return im.size


# ---------------------------------------------------------------- x1dints: reading


def test_public_x1dints_is_read_as_one_series_per_order(tmp_path):
    path = write_x1dints(tmp_path / X1DINTS)
    with datamodels.open(path) as model:  # the file is the public model
        assert type(model).__name__ == "TSOMultiSpecModel" and model.spec[0].spec_table["FLUX"].shape == (NINTS, NWAVE)
    source = load_source(path)
    assert isinstance(source, SpectrumSource) and len(source.series) == 1
    series = source.series[0]
    assert series.label == "order 1" and series.flux.shape == (NINTS, NWAVE) and series.flux_unit == "Jy"
    np.testing.assert_array_equal(series.integration, np.arange(1, NINTS + 1))
    assert series.time_name == "TDB-MID" and series.time[1] - series.time[0] == pytest.approx(CADENCE_DAYS)
    # the project's own product reader sees the same table
    product = read_product(path)
    assert product.model_type == "TSOMultiSpecModel"
    np.testing.assert_array_equal(product.spectra[0].table["FLUX"], series.flux)
    assert len(source.flux) == NINTS  # every integration is still a spectrum of its own


# ---------------------------------------------------------------- x1dints: the waterfall kernel


def test_waterfall_shows_the_transit_as_dark_rows(tmp_path):
    series = load_source(write_x1dints(tmp_path / X1DINTS)).series[0]
    wf = waterfall(series.wavelength, series.flux, series.dq, series.integration, series.time)
    usable = NWAVE - 4  # the padding is DO_NOT_USE and NaN: no wavelength, left out
    assert wf.ratio.shape == (NINTS, usable) and not wf.mask.any()
    assert np.all(np.diff(wf.wavelength) > 0) and wf.wavelength[-1] == pytest.approx(14.0)  # the padded end gone
    assert (wf.first_row, wf.row_label) == (1, "Integration")
    np.testing.assert_array_equal(wf.rows, np.arange(1, NINTS + 1))
    # the median spectrum is out of transit (30 of 40 integrations): ratio 1 there, 1 - DEPTH in transit
    rows_in = np.nanmean(wf.ratio[IN_TRANSIT], axis=1)
    rows_out = np.nanmean(np.delete(wf.ratio, np.r_[IN_TRANSIT], axis=0), axis=1)
    assert rows_in == pytest.approx(1.0 - DEPTH, abs=1e-3) and rows_out == pytest.approx(1.0, abs=1e-3)
    # the grey scale spans the noise and the transit, not the wild points
    lo, hi = wf.limits
    assert 1.0 - DEPTH - 0.005 < lo < 1.0 - DEPTH and 1.0 < hi < 1.005
    # and the pixels drawn: every in-transit row darker than every out-of-transit row
    rgb, wavelength, factors = waterfall_rgb(wf)
    grey = rgb[..., 0].astype(float).mean(axis=1)
    assert factors == (1, 1) and wavelength.size == usable
    assert grey[IN_TRANSIT].max() < np.delete(grey, np.r_[IN_TRANSIT]).min()
    assert grey[IN_TRANSIT].mean() < 0.4 * np.delete(grey, np.r_[IN_TRANSIT]).mean()


def test_waterfall_orders_rows_by_time_and_masks_flagged_points():
    rng = np.random.default_rng(1)
    n, nw = 12, 20
    wave = np.tile(np.linspace(1.0, 2.0, nw), (n, 1))
    flux = 5.0 * (1 + rng.normal(0, 1e-3, (n, nw)))
    flux[3] *= 0.9  # the integration observed 4th in time (listed last below)
    dq = np.zeros((n, nw), np.uint32)
    dq[5, 7] = DNU
    flux[6, 8] = np.nan
    flux[:, 2] = -1.0  # a wavelength with a negative median: nothing to divide by
    order = np.r_[np.arange(3), np.arange(4, n), 3]
    time = 60000.0 + np.arange(n) * 0.01
    wf = waterfall(wave[order], flux[order], dq[order], integration=np.arange(1, n + 1)[order], time=time[order])
    assert np.nanmean(wf.ratio[3]) < 0.95 and np.nanmax(np.abs(np.delete(wf.ratio, 3, axis=0) - 1)) < 0.01
    assert wf.mask[5, 7] and wf.mask[6, 8] and wf.mask[:, 2].all() and wf.mask.sum() == n + 2
    np.testing.assert_allclose(wf.time, time)
    assert wf.row_label == "Integration"
    # integration numbers that are not consecutive (two exposures): the sequence number in time order
    wf = waterfall(wave, flux, integration=np.r_[1:7, 1:7], time=time)
    assert (wf.first_row, wf.row_label) == (1, "Integration (in time order)")
    # a long series is block-averaged to the drawing, masked points left out of the means
    long = waterfall(np.tile(np.linspace(1.0, 2.0, 30), (1000, 1)), np.full((1000, 30), 3.0))
    rgb, wavelength, factors = waterfall_rgb(long, (400, 800))
    assert factors == (3, 1) and rgb.shape == (334, 30, 3) and wavelength.size == 30


@pytest.mark.parametrize("case, match", [
    ("no rows", "no integrations"),
    ("all NaN", "no usable flux"),
    ("all flagged", "no usable flux"),
    ("shapes", "must be the same"),
])
def test_waterfall_refuses_what_it_cannot_show(case, match):
    wave = np.tile(np.linspace(1.0, 2.0, 10), (4, 1))
    flux = np.ones((4, 10))
    dq = None
    if case == "no rows":
        wave, flux = wave[:0], flux[:0]
    elif case == "all NaN":
        flux[:] = np.nan
    elif case == "all flagged":
        dq = np.full((4, 10), DNU | dqflags.PIXEL["SATURATED"], np.uint32)
    else:
        flux = flux[:, :5]
    with pytest.raises(ValueError, match=match):
        waterfall(wave, flux, dq)


# ---------------------------------------------------------------- x1dints: the preview


def test_x1dints_preview_is_a_waterfall_with_labelled_axes(tmp_path):
    source = load_source(write_x1dints(tmp_path / X1DINTS))
    plot = waterfall_plot(source)
    assert len(plot.panels) == 1
    assert (plot.xlabel, plot.ylabel, plot.colorbar_label) == ("Wavelength [\u00b5m]", "Integration", RATIO_LABEL)
    assert "median of 40 integrations over 0.65 h" in plot.note
    preview = make_preview(source, title=X1DINTS)
    assert preview.kind == "waterfall" and "MIRI MIRIMAGE P750L MIR_LRS-SLITLESS" in preview.note
    assert _png_size(preview.png) == PLOT_SIZE and _jpeg_size(preview.jpeg) == (128, 128)
    assert preview.png == make_preview(load_source(tmp_path / X1DINTS), title=X1DINTS).png  # deterministic
    # the thumbnail is the waterfall itself: its in-transit band is darker than the rest
    with Image.open(io.BytesIO(preview.jpeg)) as im:
        thumb = np.asarray(im.convert("L"), float)
    picture = thumb[thumb.mean(axis=1) > 5]  # rows of the picture, not the letterbox bars
    band = slice(round(picture.shape[0] * 16 / NINTS) + 1, round(picture.shape[0] * 24 / NINTS) - 1)
    top = picture.shape[0] - band.stop, picture.shape[0] - band.start  # the first integration is at the bottom
    inside = picture[top[0]:top[1]].mean()
    assert inside < 0.5 * np.delete(picture, np.r_[top[0]:top[1]], axis=0).mean()


def test_x1dints_preview_axes_in_the_figure(tmp_path):
    """The figure drawn: the waterfall panel's axis labels, its y range the integrations,
    its x ticks round wavelengths in um, and the colour bar's label and range."""
    plot = waterfall_plot(load_source(write_x1dints(tmp_path / X1DINTS)))
    fig, [picture] = waterfall_figure(plot, title="t", subtitle="s")
    panel, bar = fig.axes
    assert panel.get_xlabel() == "Wavelength [\u00b5m]" and panel.get_ylabel() == "Integration"
    assert panel.get_ylim() == (0.5, NINTS + 0.5) and picture.shape == (NINTS, NWAVE - 4, 3)
    ticks = [float(t.get_text()) for t in panel.get_xticklabels()]
    assert len(ticks) >= 3 and min(ticks) >= 5.4 and max(ticks) <= 14.0
    assert bar.get_ylabel() == RATIO_LABEL and bar.get_ylim() == pytest.approx(plot.panels[0].limits)


def test_x1dints_with_several_orders_gets_a_panel_each(tmp_path):
    path = write_x1dints(tmp_path / X1DINTS, tso_spectrum(order=1), tso_spectrum(order=2, seed=8, nwave=60))
    source = load_source(path)
    assert [s.label for s in source.series] == ["order 1", "order 2"]
    plot = waterfall_plot(source)
    assert [p.label for p in plot.panels] == ["order 1", "order 2"] and plot.panels[1].ratio.shape == (NINTS, 56)
    preview = make_preview(source, title=X1DINTS)
    assert _png_size(preview.png) == PLOT_SIZE and _jpeg_size(preview.jpeg) == (128, 128)
    # an order with nothing usable is named and left out; the other is shown
    path = write_x1dints(tmp_path / "two_x1dints.fits", tso_spectrum(order=1),
                         tso_spectrum(order=2, flux=np.full((NINTS, NWAVE), np.nan)))
    plot = waterfall_plot(load_source(path))
    assert len(plot.panels) == 1 and "order 2 not shown (no usable flux)" in plot.note


def test_x1dints_bad_inputs_say_why(tmp_path):
    empty = write_x1dints(tmp_path / "empty_x1dints.fits", tso_spectrum(nints=0))
    with pytest.raises(UnreadableProductError, match="order 1.*has no rows: no integration was extracted"):
        load_source(empty)
    nan = write_x1dints(tmp_path / "nan_x1dints.fits", tso_spectrum(flux=np.full((NINTS, NWAVE), np.nan)))
    with pytest.raises(ValueError, match="no usable flux: every FLUX value is NaN or flagged"):
        make_preview(load_source(nan), title="nan")
    no_table = tmp_path / "none_x1dints.fits"
    fits.HDUList([fits.PrimaryHDU(header=fits.Header([("DATAMODL", "TSOMultiSpecModel")]))]).writeto(no_table)
    with pytest.raises(UnreadableProductError, match="has no EXTRACT1D table"):
        load_source(no_table)


def test_older_x1dints_with_a_table_per_integration_is_stacked(tmp_path):
    """One EXTRACT1D table per integration, INT_NUM and SPORDER in its header (the layout
    before the public pipeline wrote array columns): the same waterfall."""
    wave = np.linspace(5.0, 12.0, 30)
    depth = np.array([0, 0, DEPTH, DEPTH, 0, 0, 0])
    hdus = [fits.PrimaryHDU(header=fits.Header([("DATAMODL", "MultiSpecModel"), ("INSTRUME", "MIRI")]))]
    for i in (4, 0, 1, 2, 3, 5, 6):  # stored out of order; INT_NUM says which
        flux = np.full(wave.size, 1e-3) * (1 - depth[i])
        hdus.append(fits.BinTableHDU.from_columns(
            [fits.Column("WAVELENGTH", "D", "um", array=wave), fits.Column("FLUX", "D", "Jy", array=flux)],
            header=fits.Header([("SPORDER", 1), ("INT_NUM", i + 11)]), name="EXTRACT1D"))
    path = tmp_path / "jw01234001001_04101_00001-seg002_mirimage_x1dints.fits"
    fits.HDUList(hdus).writeto(path)
    [series] = load_source(path).series
    assert series.label == "order 1" and series.flux.shape == (7, 30)
    plot = waterfall_plot(load_source(path))
    [wf] = plot.panels
    assert (wf.first_row, plot.ylabel) == (11, "Integration")  # rows in INT_NUM order, 11 to 17
    np.testing.assert_allclose(np.nanmean(wf.ratio, axis=1), 1 - depth, atol=1e-12)


# ---------------------------------------------------------------- whtlt


def test_public_whtlt_is_a_relative_light_curve_against_bjd(tmp_path):
    path = write_whtlt(tmp_path / WHTLT)
    assert Table.read(path, format="ascii.ecsv").colnames == ["MJD_UTC", "BJD_TDB", "whitelight_flux"]
    source = load_source(path)
    assert isinstance(source, LightCurveSource) and [f.name for f in source.fluxes] == ["whitelight_flux"]
    assert source.time.name == "BJD_TDB" and source.fluxes[0].unit == "Jy"
    plot = lightcurve_plot(source)
    assert plot.xlabel == f"Time since BJD_TDB {T0:.5f} [h]" and plot.ylabel == "White-light flux / median"
    assert plot.style == "points" and "median whitelight_flux" in plot.note and "Jy" in plot.note
    [series] = plot.series
    assert series.x[-1] == pytest.approx((NINTS - 1) / 60.0) and series.x.size == NINTS
    # the white light is the flux summed over wavelength: relative to the median, 1 out of transit,
    # 1 - DEPTH in transit (the depth is grey: the same at every wavelength)
    np.testing.assert_allclose(series.y[IN_TRANSIT], 1.0 - DEPTH, atol=5e-4)
    np.testing.assert_allclose(np.delete(series.y, np.r_[IN_TRANSIT]), 1.0, atol=5e-4)
    preview = make_preview(source, title=WHTLT)
    assert preview.kind == "lightcurve" and "MIRI P750L MIR_LRS-SLITLESS" in preview.note
    assert _png_size(preview.png) == PLOT_SIZE and _jpeg_size(preview.jpeg) == (128, 128)


def test_whtlt_orders_and_detectors_each_get_their_curve(tmp_path):
    # two orders: whitelight_flux_order_1, whitelight_flux_order_2 (the public step's names)
    path = write_whtlt(tmp_path / WHTLT, tso_spectrum(order=1), tso_spectrum(order=2, seed=9))
    plot = lightcurve_plot(load_source(path))
    assert [s.label for s in plot.series] == ["whitelight_flux_order_1", "whitelight_flux_order_2"]
    assert all(np.nanmedian(s.y) == pytest.approx(1.0) for s in plot.series)
    # NIRSpec-like: each detector has its times; a NaN BJD_TDB (barycentre unknown) falls back to
    # MJD_UTC; NaN fluxes are skipped
    n = 30
    mjd = T0 + np.arange(n) * CADENCE_DAYS
    table = QTable({"MJD_UTC_nrs1": mjd, "BJD_TDB_nrs1": np.full(n, np.nan),
                    "whitelight_flux_nrs1": np.full(n, 2.0) * (1 - transit_depths(n)),
                    "MJD_UTC_nrs2": mjd + 0.5 / 86400, "BJD_TDB_nrs2": np.full(n, np.nan),
                    "whitelight_flux_nrs2": np.full(n, 4.0)})
    table["whitelight_flux_nrs2"][[3, 7]] = np.nan
    path = tmp_path / "jw01234-o002_t001_nirspec_clear-prism-s1600a1-sub512_whtlt.ecsv"
    table.write(path, format="ascii.ecsv")
    source = load_source(path)
    assert [t.name for t in source.times] == ["MJD_UTC_nrs1", "MJD_UTC_nrs2"]
    plot = lightcurve_plot(source)
    assert plot.xlabel.startswith("Time since MJD_UTC ") and plot.xlabel.endswith("[h]")
    nrs1, nrs2 = plot.series
    assert nrs1.x.size == n and nrs2.x.size == n - 2 and nrs2.x[0] == pytest.approx(0.5 / 3600)
    assert nrs1.y.min() == pytest.approx(1 - DEPTH) and np.all(nrs2.y == 1.0)


def test_phot_with_unknown_bjd_is_drawn_against_mjd(tmp_path):
    """The tso_photometry table when the barycentric times are unknown (NaN): MJD instead,
    its fluxes absolute (not a white-light table)."""
    n = 20
    table = Table({"MJD": T0 + np.arange(n) * CADENCE_DAYS, "BJD_TDB": np.full(n, np.nan),
                   "net_aperture_sum": np.full(n, 1e4)})
    path = tmp_path / "jw01234-o001_t001_nircam_f210m-clear-sub64p_phot.ecsv"
    table.write(path, format="ascii.ecsv")
    plot = lightcurve_plot(load_source(path))
    assert plot.xlabel.startswith("Time since MJD ") and plot.series[0].x.size == n
    assert plot.ylabel == "net_aperture_sum" and np.all(plot.series[0].y == 1e4)


@pytest.mark.parametrize("columns, match", [
    ({"MJD_UTC": [1.0, 2.0], "BJD_TDB": [1.0, 2.0]}, "white-light table has no flux column"),
    ({"MJD_UTC": [1.0, 2.0], "whitelight_flux": [np.nan, np.nan]}, "no white-light flux value is finite"),
    ({"whitelight_flux": [1.0, 2.0]}, "has no time column"),
    ({"BJD_TDB": [np.nan, np.nan], "whitelight_flux": [1.0, 2.0]}, "has no time column with values"),
])
def test_whtlt_bad_inputs_say_why(tmp_path, columns, match):
    path = tmp_path / WHTLT
    Table(columns).write(path, format="ascii.ecsv")
    with pytest.raises(UnreadableProductError, match=match):
        load_source(path)


# ---------------------------------------------------------------- the preview service


@pytest.fixture
def service(tmp_path):
    ctx, _ = embedded_context(Settings(var_dir=tmp_path / "var", _env_file=None), services=["preview"])
    with ctx.catalog.session() as s:
        s.add(Program(id="01234", title="TSO", category="GO", eap_months=12, created_at=datetime.now(UTC)))
    yield ctx
    ctx.catalog.dispose()


def _archive(ctx, path: Path, suffix: str, level: int) -> dict:
    """Store ``path`` as the archive does (its own content type), register it, and return
    the dms.product.archived event."""
    stored = ctx.store.put_bytes(Bucket.ARCHIVE, object_key("01234", 1, 1, path.name), path.read_bytes(),
                                 content_type(path.name))
    with ctx.catalog.session() as s:
        product, _ = register_product(s, stored=stored, filename=path.name, suffix=suffix, level=level, revision=1,
                                      program_id="01234", observation_id=None, exposure_id=None,
                                      archived_at=datetime.now(UTC), eap_months=12, software_version="test",
                                      inputs=[])
        release = product.data_release
    ref = ProductRef(uri=stored.uri, filename=path.name, suffix=suffix, sha256=stored.sha256, size=stored.size,
                     program="01234", observation=1)
    return new_event(ProductArchived(product=ref, level=level, data_release=release), "/test",
                     subject=path.name).to_json_dict()


def _artifacts(ctx, filename: str) -> dict[str, tuple[str, str]]:
    with ctx.catalog.session() as s:
        rows = s.scalars(select(Artifact).join(Product).where(Product.filename == filename)).all()
        return {a.kind: (a.uri, a.content_type) for a in rows}


def test_service_previews_stored_x1dints_and_whtlt(service, tmp_path):
    ctx = service
    for suffix in ("x1dints", "whtlt"):  # both routed to the preview service and drawn by it
        assert suffix in SCIENCE_SUFFIXES
        assert any(r.task == "preview.make" and suffix in r.suffixes for r in ROUTES if r.suffixes)
    assert content_type(WHTLT) == "text/plain" and content_type(X1DINTS) == "application/fits"
    products = {X1DINTS: ("x1dints", 2, write_x1dints(tmp_path / X1DINTS)),
                WHTLT: ("whtlt", 3, write_whtlt(tmp_path / WHTLT))}
    for name, (suffix, level, path) in products.items():
        event = _archive(ctx, path, suffix, level)
        for _ in range(2):  # a redelivery adds nothing
            assert run_handler("preview.make", handle_product, event, ctx).status == "ok"
        arts = _artifacts(ctx, name)
        assert set(arts) == {"data", "preview", "thumbnail"}
        stem = name.rsplit(".", 1)[0]
        assert arts["preview"] == (ctx.store.uri(Bucket.PREVIEWS, f"01234/001/r1/{stem}_preview.png"), "image/png")
        png = ctx.store.get_bytes(Bucket.PREVIEWS, f"01234/001/r1/{stem}_preview.png")
        assert _png_size(png) == PLOT_SIZE
        assert png == make_preview(load_source(path, suffix), title=name).png
        assert _jpeg_size(ctx.store.get_bytes(Bucket.PREVIEWS, f"01234/001/r1/{stem}_thumb.jpg")) == (128, 128)


@pytest.mark.parametrize("name, suffix, match", [
    ("jw01234001001_04101_00002-seg001_mirimage_x1dints.fits", "x1dints", "no usable flux"),
    ("jw01234001001_04101_00003-seg001_mirimage_x1dints.fits", "x1dints", "no integration was extracted"),
    ("jw01234-o003_t001_miri_p750l-slitlessprism_whtlt.ecsv", "whtlt", "no flux column"),
])
def test_service_dead_letters_bad_tso_products(service, tmp_path, name, suffix, match):
    ctx = service
    path = tmp_path / name
    if "00002" in name:
        write_x1dints(path, tso_spectrum(flux=np.full((NINTS, NWAVE), np.nan)))
    elif suffix == "x1dints":
        write_x1dints(path, tso_spectrum(nints=0))
    else:
        Table({"MJD_UTC": [1.0], "BJD_TDB": [1.0]}).write(path, format="ascii.ecsv")
    event = _archive(ctx, path, suffix, 2)
    outcome = run_handler("preview.make", handle_product, event, ctx)
    assert outcome.status == "failed" and f"cannot make a preview of {name}" in outcome.error and match in outcome.error
    with ctx.catalog.session() as s:
        failure = s.scalar(select(TaskFailure).where(TaskFailure.event_id == event["id"]))
        assert failure is not None and not failure.retriable and match in failure.reason
    assert set(_artifacts(ctx, name)) == {"data"}
