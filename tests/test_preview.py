"""Preview service: pure steps on tiny synthetic arrays, plots of synthetic x1d and phot
tables, deterministic bytes, the ``dms preview`` command, and the handler end to end on a
simulated, ingested NIRCam exposure (idempotent; bad products dead-lettered)."""

from __future__ import annotations

import argparse
import io
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import yaml
from astropy.io import fits
from astropy.table import Table
from PIL import Image
from sqlalchemy import select

from services.ingest.receive import receive_files
from services.preview.commands import register_commands
from services.preview.load import (
    ImageSource,
    LightCurveSource,
    SpectrumSource,
    UnreadableProductError,
    load_source,
)
from services.preview.pipeline import make_preview
from services.preview.steps.display import display_image, downsample
from services.preview.steps.orientation import scale_bar, sky_orientation
from services.preview.steps.plots import axis_label, median_spectrum, spectrum_series, time_axis
from services.preview.steps.render_image import MASK_COLOR, grey_rgb, image_layout, render_image_png
from services.preview.steps.stretch import StretchParams, stretch
from services.preview.steps.thumbnail import thumbnail_jpeg
from services.preview.task import SCIENCE_SUFFIXES, handle_product
from services.registry import embedded_context
from services.simulator import simulate
from shared.catalog import Artifact, EventRecord, Product, TaskFailure
from shared.catalog.queries import register_product
from shared.config import Settings
from shared.datamodels import dqflags
from shared.messages import EventType, ProductArchived, ProductRef, new_event
from shared.naming import object_key
from shared.runtime import dispatch_events, run_handler
from shared.storage import Bucket
from shared.wcs import wcs_keywords, window_wcs

DNU = dqflags.PIXEL["DO_NOT_USE"]
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

pytestmark = pytest.mark.filterwarnings("ignore::astropy.wcs.FITSFixedWarning")


def star_field(ny=64, nx=64, seed=3, sky=10.0, noise=1.0):
    rng = np.random.default_rng(seed)
    image = rng.normal(sky, noise, (ny, nx))
    yy, xx = np.mgrid[:ny, :nx]
    for x, y, flux in ((20, 30, 500.0), (45, 12, 2000.0), (50, 50, 80.0)):
        image += flux * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / 4.0)
    return image


# ---------------------------------------------------------------- display_image


def test_uncal_shows_last_minus_first_group_of_first_integration():
    ramp = np.zeros((2, 4, 3, 5), dtype=np.uint16)
    ramp[0] = 1000 + np.arange(4, dtype=np.uint16)[:, None, None] * 7  # +7 DN per group
    ramp[1] = 5000  # the second integration is ignored
    d = display_image(ramp, "uncal")
    np.testing.assert_array_equal(d.image, np.full((3, 5), 21.0))
    assert not d.mask.any() and "last - first" in d.note


def test_ramp_masks_do_not_use_in_pixeldq_and_used_groups():
    ramp = np.ones((1, 3, 4, 4), dtype=np.float32)
    pixeldq = np.zeros((4, 4), dtype=np.uint32)
    pixeldq[0, 0] = DNU | dqflags.PIXEL["DEAD"]
    groupdq = np.zeros((1, 3, 4, 4), dtype=np.uint8)
    groupdq[0, -1, 1, 1] = DNU
    groupdq[0, 1, 2, 2] = DNU  # a middle group is not used: not masked
    d = display_image(ramp, "ramp", pixeldq, groupdq)
    assert d.mask[0, 0] and d.mask[1, 1] and not d.mask[2, 2]
    assert np.isnan(d.image[0, 0]) and d.image[2, 2] == 0.0


def test_rateints_median_over_integrations_leaves_flagged_out():
    cube = np.stack([np.full((3, 3), v, dtype=np.float32) for v in (1.0, 2.0, 30.0)])
    dq = np.zeros(cube.shape, dtype=np.uint32)
    dq[2, 0, 0] = DNU  # the outlier at (0, 0) is flagged: median of 1 and 2
    dq[:, 2, 2] = DNU  # flagged in every integration: masked
    d = display_image(cube, "rateints", dq)
    assert d.image[1, 1] == 2.0 and d.image[0, 0] == 1.5
    assert d.mask[2, 2] and d.mask.sum() == 1 and "median of 3 integrations" in d.note


def test_median_is_computed_in_row_blocks_with_the_same_result():
    rng = np.random.default_rng(0)
    cube = rng.normal(size=(5, 150, 7)).astype(np.float32)
    dq = np.zeros(cube.shape, dtype=np.uint32)
    dq[0, 100:140] = DNU  # flagged rows beyond the first block of 64
    expected = np.median(cube[1:, 100:140], axis=0)
    d = display_image(cube, "calints", dq)
    np.testing.assert_allclose(d.image[100:140], expected, rtol=1e-6)
    np.testing.assert_allclose(d.image[:64], np.median(cube[:, :64], axis=0), rtol=1e-6)


def test_loader_reads_only_the_first_and_last_group(tmp_path):
    for ngroups, expected in ((5, 12.0), (1, 1000.0)):
        ramp = np.zeros((2, ngroups, 70, 8), dtype=np.uint16) + 1000
        ramp += (np.arange(ngroups, dtype=np.uint16) * 3)[None, :, None, None]
        path = tmp_path / f"g{ngroups}" / "jw01234001001_01101_00001_nrca1_uncal.fits"
        path.parent.mkdir()
        fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(ramp, name="SCI")]).writeto(path)
        source = load_source(path)
        assert source.sci.shape == (1, min(ngroups, 2), 70, 8)
        np.testing.assert_array_equal(display_image(source.sci, source.suffix).image, expected)


def test_s3d_cube_is_nan_median_along_wavelength():
    cube = np.arange(5, dtype=np.float32)[:, None, None] * np.ones((5, 2, 3), dtype=np.float32)
    cube[4, 0, 0] = np.nan
    cube[:, 1, 2] = np.nan
    d = display_image(cube, "s3d")
    assert d.image[0, 1] == 2.0 and d.image[0, 0] == 1.5  # NaN left out of the median
    assert d.mask[1, 2] and "wavelengths" in d.note


def test_2d_products_use_sci_and_nan_is_masked():
    sci = np.ones((4, 4))
    sci[1, 2] = np.nan
    dq = np.zeros((4, 4), dtype=np.uint32)
    dq[3, 3] = DNU
    d = display_image(sci, "cal", dq)
    assert d.mask[1, 2] and d.mask[3, 3] and d.mask.sum() == 2


def test_wrong_dimensions_are_refused():
    with pytest.raises(ValueError, match="should be 2-D"):
        display_image(np.zeros((2, 3, 3)), "rate")
    with pytest.raises(ValueError, match="DQ shape"):
        display_image(np.zeros((3, 3)), "rate", np.zeros((4, 4), dtype=np.uint32))


def test_downsample_averages_unmasked_pixels_only():
    image = np.arange(16, dtype=float).reshape(4, 4)
    mask = np.zeros((4, 4), dtype=bool)
    mask[0, 0] = True
    mask[2:, 2:] = True
    out, out_mask = downsample(image, mask, 2)
    assert out[0, 0] == pytest.approx((1 + 4 + 5) / 3) and out_mask[1, 1] and out_mask.sum() == 1
    odd, _ = downsample(np.ones((5, 5)), np.zeros((5, 5), dtype=bool), 2)
    assert odd.shape == (3, 3)


# ---------------------------------------------------------------- stretch


def test_zscale_limits_bracket_the_sky_and_stars_keep_structure():
    image = star_field()
    st = stretch(image, np.zeros(image.shape, dtype=bool))
    assert st.interval == "zscale"
    assert st.vmin < 10.0 - 1.0  # below the sky by more than 1 sigma
    assert st.vmax >= np.percentile(image, 99.9)  # raised so star cores are not all white
    assert 0.0 <= st.values.min() and st.values.max() <= 1.0
    assert np.median(st.values) == pytest.approx(StretchParams().sky_level, abs=0.02)
    assert st.values[12, 45] > st.values[30, 20] > np.median(st.values)  # brighter star, brighter pixel


def test_masked_pixels_do_not_move_the_limits_and_get_their_own_colour():
    image = star_field()
    mask = np.zeros(image.shape, dtype=bool)
    mask[5:8, 5:8] = mask[9, 9] = True
    clean = stretch(image, mask)
    image[5:8, 5:8] = 1e9  # whatever a flagged pixel holds does not count
    image[9, 9] = np.nan
    mask[9, 9] = False  # NaN is masked by itself
    st = stretch(image, mask)
    assert (st.vmin, st.vmax) == (clean.vmin, clean.vmax)
    assert st.mask[9, 9] and st.mask[6, 6] and st.values[6, 6] == 0.0
    rgb = grey_rgb(st)
    expected = np.round(np.asarray(MASK_COLOR) * 255).astype(np.uint8)
    np.testing.assert_array_equal(rgb[6, 6], expected)
    np.testing.assert_array_equal(rgb[9, 9], expected)
    assert rgb[30, 30, 0] == rgb[30, 30, 1] == rgb[30, 30, 2]  # unmasked: grey


def test_stretch_falls_back_for_few_pixels_and_constant_images():
    tiny = np.array([[1.0, 2.0], [3.0, 4.0]])
    assert stretch(tiny).interval == "percentile"
    flat = stretch(np.full((20, 20), 5.0))
    assert flat.interval == "constant" and np.isfinite(flat.values).all()
    empty = stretch(np.full((4, 4), np.nan))
    assert empty.mask.all() and (empty.values == 0).all()


# ---------------------------------------------------------------- orientation


@pytest.mark.parametrize("roll, north, east", [
    (0.0, (0.0, 1.0), (-1.0, 0.0)),     # North up, East left
    (90.0, (1.0, 0.0), (0.0, 1.0)),     # detector +y points East
    (30.0, (0.5, 0.866), (-0.866, 0.5)),
])
def test_compass_follows_the_wcs(roll, north, east):
    o = sky_orientation(window_wcs(53.16, -27.79, roll, 0.031, 160, 160), (160, 160))
    assert o.north == pytest.approx(north, abs=1e-3) and o.east == pytest.approx(east, abs=1e-3)
    assert o.arcsec_per_pixel == pytest.approx(0.031)


def test_scale_bar_picks_a_round_length():
    bar = scale_bar(0.031, 160)
    assert (bar.arcsec, bar.label) == (0.5, "0.5\u2033") and bar.pixels == pytest.approx(0.5 / 0.031)
    assert scale_bar(0.5, 2048).label == "2\u2032"  # 205" allowed: 2 arcmin
    assert sky_orientation(None, (10, 10)) is None


# ---------------------------------------------------------------- rendering


def _png_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as im:
        assert im.format == "PNG"
        return im.size


def test_image_png_is_deterministic_and_about_1024_px():
    image = star_field(60, 80)
    layout = image_layout(image.shape)
    rgb = grey_rgb(stretch(image))
    orientation = sky_orientation(window_wcs(53.16, -27.79, 30.0, 0.031, 80, 60), image.shape)
    first = render_image_png(rgb, layout, title="t.fits", subtitle="s", orientation=orientation)
    again = render_image_png(rgb, layout, title="t.fits", subtitle="s", orientation=orientation)
    assert first == again
    assert max(_png_size(first)) == 1024
    assert b"Software" not in first and b"tIME" not in first


def test_long_strip_is_shown_stretched_and_big_images_binned():
    strip = image_layout((30, 1500))
    assert strip.stretched_aspect and strip.box_width / strip.box_height == pytest.approx(4.0, rel=0.01)
    full = image_layout((2048, 2048))
    assert full.factor == 2 and not full.stretched_aspect and max(full.figure_size) == 1024


def test_thumbnail_is_a_deterministic_128px_letterboxed_jpeg():
    rgb = np.zeros((40, 100, 3), dtype=np.uint8)
    rgb[..., 0] = 200
    jpeg = thumbnail_jpeg(rgb)
    assert jpeg == thumbnail_jpeg(rgb)
    with Image.open(io.BytesIO(jpeg)) as im:
        assert (im.format, im.size, im.mode) == ("JPEG", (128, 128), "RGB")
        assert "exif" not in im.info
        pixels = np.asarray(im)
    assert pixels[2, 64].max() < 20 and pixels[64, 64, 0] > 150  # black bars above, picture in the middle


# ---------------------------------------------------------------- spectra and light curves


def write_x1d(path: Path, nints: int = 1) -> Path:
    wave = np.linspace(1.0, 2.0, 200)
    hdus = [fits.PrimaryHDU(header=fits.Header([("DATAMODL", "MultiSpecModel"), ("INSTRUME", "NIRSPEC")]))]
    for i in range(nints):
        flux = 1e-3 * (1 + 0.2 * np.sin(wave * 6)) * (1 + 0.01 * i)
        dq = np.zeros(wave.size, dtype=np.uint32)
        dq[:3] = DNU
        cols = [fits.Column("WAVELENGTH", "D", "um", array=wave), fits.Column("FLUX", "D", "Jy", array=flux),
                fits.Column("FLUX_ERROR", "D", "Jy", array=np.full(wave.size, 1e-5)),
                fits.Column("DQ", "J", array=dq)]
        hdus.append(fits.BinTableHDU.from_columns(cols, name="EXTRACT1D"))
    fits.HDUList(hdus).writeto(path)
    return path


def test_x1d_spectrum_plot_has_units_and_leaves_flagged_points_out(tmp_path):
    source = load_source(write_x1d(tmp_path / "jw01234-o001_s00001_nirspec_f100lp-g140m_x1d.fits"))
    assert isinstance(source, SpectrumSource)
    assert (source.wavelength[0].unit, source.flux[0].unit) == ("um", "Jy")
    series = spectrum_series(source.wavelength[0].values, source.flux[0].values,
                             source.error[0].values, source.dq[0])
    assert series.x.size == 197 and series.error is not None
    assert axis_label("Wavelength", "um") == "Wavelength [\u00b5m]"
    preview = make_preview(source, title="x1d")
    assert preview.kind == "spectrum" and _png_size(preview.png) == (1024, 640)
    assert preview.png == make_preview(source, title="x1d").png


@pytest.mark.parametrize("dispaxis", [1, 2])
def test_s2d_is_turned_so_that_wavelength_increases_to_the_right(tmp_path, dispaxis):
    ny, nwave = 9, 120
    wl = np.linspace(14.0, 5.0, nwave)  # decreasing along the dispersion, as the MIRI LRS rows are
    sci = np.tile(np.linspace(1.0, 2.0, nwave), (ny, 1))
    sci[4] += 10.0  # the trace
    wave = np.tile(wl, (ny, 1))
    wave[0] = np.nan  # a spatial line off the slit
    if dispaxis == 2:
        sci, wave = sci.T, wave.T
    header = fits.Header({"DISPAXIS": dispaxis, "BUNIT": "MJy/sr"})
    path = tmp_path / "jw01234001001_01101_00001_mirimage_s2d.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(sci.astype(np.float32), header, name="SCI"),
                  fits.ImageHDU(wave.astype(np.float32), name="WAVELENGTH")]).writeto(path)
    source = load_source(path)
    assert isinstance(source, ImageSource) and source.sci.shape == (ny, nwave)
    np.testing.assert_allclose(source.wavelength, np.sort(wl), rtol=1e-6)  # increasing left to right
    np.testing.assert_allclose(source.sci[4] - source.sci[3], 10.0)  # the trace is a row
    assert source.sci[0, 0] == pytest.approx(2.0)  # the long-wavelength end is now on the right
    preview = make_preview(source, title="s2d")
    assert preview.kind == "image" and preview.png == make_preview(source, title="s2d").png


def test_x1dints_shows_the_median_spectrum(tmp_path):
    source = load_source(write_x1d(tmp_path / "jw01234001001_04101_00001-seg001_nis_x1dints.fits", nints=5))
    assert len(source.flux) == 5
    spectra = [spectrum_series(w.values, f.values) for w, f in zip(source.wavelength, source.flux, strict=True)]
    np.testing.assert_allclose(median_spectrum(spectra).y, spectra[2].y)
    assert "median of 5 integrations" in make_preview(source, title="x").note


def test_phot_light_curve_plot_with_units(tmp_path):
    n = 50
    mjd = 60735.5 + np.arange(n) * 60 / 86400
    table = Table({"MJD": mjd, "net_aperture_sum": np.full(n, 1e4), "net_aperture_sum_err": np.full(n, 10.0)})
    table["net_aperture_sum"].unit = table["net_aperture_sum_err"].unit = "electron/s"
    path = tmp_path / "jw01234-o001_t001_nircam_f210m-clear-sub64p_phot.ecsv"
    table.write(path, format="ascii.ecsv")
    source = load_source(path)
    assert isinstance(source, LightCurveSource)
    assert source.time.name == "MJD" and source.fluxes[0].unit == "electron / s"
    x, label = time_axis(source.time.values, "MJD", None)
    assert x[-1] == pytest.approx((n - 1) / 60) and label == "Time since MJD 60735.50000 [h]"
    preview = make_preview(source, title=path.name)
    assert preview.kind == "lightcurve" and _png_size(preview.png) == (1024, 640)
    with Image.open(io.BytesIO(preview.jpeg)) as im:
        assert im.size == (128, 128)


def test_unreadable_files_say_why(tmp_path):
    junk = tmp_path / "jw01234001001_01101_00001_nrca1_cal.fits"
    junk.write_bytes(b"not a fits file" * 200)
    with pytest.raises(UnreadableProductError, match="not a readable FITS"):
        load_source(junk)
    good = tmp_path / "jw01234001001_01101_00001_nrca1_uncal.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.zeros((1, 4, 32, 32), dtype=np.uint16), name="SCI")]).writeto(good)
    truncated = tmp_path / "jw01234001001_01101_00001_nrca2_uncal.fits"
    truncated.write_bytes(good.read_bytes()[:6000])
    with pytest.raises(UnreadableProductError, match="not a readable FITS"):
        load_source(truncated)
    no_sci = tmp_path / "jw01234001001_01101_00001_nrca1_rate.fits"
    fits.HDUList([fits.PrimaryHDU()]).writeto(no_sci)
    with pytest.raises(UnreadableProductError, match="no SCI"):
        load_source(no_sci)
    bad_ecsv = tmp_path / "jw01234-o001_t001_nircam_f210m-clear-sub64p_phot.ecsv"
    Table({"flux": [1.0, 2.0]}).write(bad_ecsv, format="ascii.ecsv")
    with pytest.raises(UnreadableProductError, match="no time column"):
        load_source(bad_ecsv)


# ---------------------------------------------------------------- the CLI command


def test_dms_preview_command_renders_a_local_file(tmp_path, capsys):
    sci = star_field(40, 40).astype(np.float32)
    header = fits.Header(list(wcs_keywords(53.16, -27.79, 30.0, 0.031, 40, 40).items()))
    path = tmp_path / "jw01234001001_01101_00001_nrca1_rate.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(sci, header, name="SCI")]).writeto(path)
    parser = argparse.ArgumentParser(prog="dms")
    register_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["preview", str(path), str(tmp_path / "missing_rate.fits"), "--out", str(tmp_path / "out")])
    assert args.func(args) == 2  # the missing file is reported, the other one rendered
    png = tmp_path / "out" / "jw01234001001_01101_00001_nrca1_rate_preview.png"
    assert max(_png_size(png.read_bytes())) == 1024
    assert (tmp_path / "out" / "jw01234001001_01101_00001_nrca1_rate_thumb.jpg").is_file()
    assert "error:" in capsys.readouterr().err


# ---------------------------------------------------------------- the service end to end


@pytest.fixture(scope="module")
def archived(tmp_path_factory):
    """One NIRCam exposure simulated, ingested in-process, and the dms.product.archived event
    of its ``_uncal``."""
    tmp = tmp_path_factory.mktemp("preview-e2e")
    desc = yaml.safe_load((EXAMPLES / "nircam_imaging.yaml").read_text())
    desc["observations"] = desc["observations"][:1]  # the imaging observation (the demo adds a TSO one)
    for obs in desc["observations"]:
        obs["detectors"] = obs["detectors"][:1]
        obs["dither"] = {"pattern": "NONE"}
    desc["simulation"]["write_references"] = False
    sim = simulate(desc, tmp / "sim")
    ctx, inline = embedded_context(Settings(var_dir=tmp / "var", _env_file=None))
    received = receive_files(ctx, [sim.plan_path, *sim.telemetry_paths])
    dispatch_events(ctx.catalog, ctx.transport, event_ids=[r.event_id for r in received if r.event_id])
    done = inline.run_until_idle()  # ingest, and whatever the routes start after it
    assert [o.status for task, o in done if task == "ingest.telemetry"] == ["ok"]
    with ctx.catalog.session() as s:
        [row] = [r for r in s.scalars(select(EventRecord).where(EventRecord.type == EventType.PRODUCT_ARCHIVED))
                 if r.data["product"]["suffix"] == "uncal"]
        payload = {"id": row.id, "source": row.source, "type": row.type, "time": row.time.isoformat(),
                   "subject": row.subject, "data": row.data}
    yield ctx, payload
    ctx.catalog.dispose()


def _artifacts(ctx, filename):
    with ctx.catalog.session() as s:
        return sorted((a.kind, a.uri, a.content_type, a.sha256, a.size) for a in s.scalars(
            select(Artifact).join(Product).where(Product.filename == filename)))


def test_handler_stores_and_registers_preview_and_thumbnail_once(archived):
    ctx, payload = archived
    ref = ProductRef.model_validate(payload["data"]["product"])
    for _ in range(2):  # a redelivered message adds nothing
        outcome = run_handler("preview.make", handle_product, payload, ctx)
        assert outcome.status == "ok" and outcome.event_ids == ()
    arts = _artifacts(ctx, ref.filename)
    assert [a[0] for a in arts] == ["data", "preview", "thumbnail"]
    stem = ref.filename.removesuffix(".fits")
    by_kind = {a[0]: a for a in arts}
    assert by_kind["preview"][1] == ctx.store.uri(
        Bucket.PREVIEWS, object_key(ref.program, ref.observation, ref.revision, f"{stem}_preview.png"))
    assert (by_kind["preview"][2], by_kind["thumbnail"][2]) == ("image/png", "image/jpeg")
    keys = sorted(ctx.store.list_keys(Bucket.PREVIEWS, f"{ref.program}/001/r1/{stem}_"))
    assert keys == [f"01234/001/r1/{stem}_preview.png", f"01234/001/r1/{stem}_thumb.jpg"]
    png = ctx.store.get_bytes(Bucket.PREVIEWS, keys[0])
    assert max(_png_size(png)) == 1024 and by_kind["preview"][3:] == (ctx.store.stat(Bucket.PREVIEWS, keys[0]).sha256, len(png))
    with Image.open(io.BytesIO(ctx.store.get_bytes(Bucket.PREVIEWS, keys[1]))) as im:
        assert (im.format, im.size) == ("JPEG", (128, 128))
    # the preview is a pure function of the product: rendering the file again gives the same bytes
    path = ctx.store.local_path(*ctx.store.parse_uri(ref.uri))
    assert make_preview(load_source(path, "uncal"), title=ref.filename).png == png


def _announce(ctx, filename, data: bytes, suffix="cal", sha256=None):
    """Archive ``data`` as a product of the simulated program and return its event payload."""
    key = object_key("01234", 1, 1, filename)
    stored = ctx.store.put_bytes(Bucket.ARCHIVE, key, data, "application/fits")
    with ctx.catalog.session() as s:
        product, _ = register_product(s, stored=stored, filename=filename, suffix=suffix, level=2, revision=1,
                                      program_id="01234", observation_id=None, exposure_id=None,
                                      archived_at=datetime.now(UTC), eap_months=12, software_version="test",
                                      inputs=[])
        release = product.data_release
    ref = ProductRef(uri=stored.uri, filename=filename, suffix=suffix, sha256=sha256 or stored.sha256,
                     size=stored.size, program="01234", observation=1)
    return new_event(ProductArchived(product=ref, level=2, data_release=release), "/test",
                     subject=filename).to_json_dict()


@pytest.mark.parametrize("name, data, match", [
    ("jw01234001001_01101_00001_nrca2_cal.fits", b"SIMPLE  = corrupt" * 300, "not a readable FITS"),
    ("jw01234001001_01101_00001_nrca3_cal.fits", None, "no SCI image array"),
    ("jw01234001001_01101_00001_nrca4_cal.fits", b"checksum", "differs from the announced"),
])
def test_bad_products_are_dead_lettered_without_crashing(archived, name, data, match):
    ctx, _ = archived
    if data is None:  # a FITS file without SCI
        buf = io.BytesIO()
        fits.HDUList([fits.PrimaryHDU(header=fits.Header([("DATAMODL", "ImageModel")]))]).writeto(buf)
        data = buf.getvalue()
    sha = "0" * 64 if match.startswith("differs") else None
    event = _announce(ctx, name, data, sha256=sha)
    outcome = run_handler("preview.make", handle_product, event, ctx)
    assert outcome.status == "failed" and match in outcome.error
    with ctx.catalog.session() as s:
        failure = s.scalar(select(TaskFailure).where(TaskFailure.event_id == event["id"]))
        assert failure is not None and not failure.retriable and match in failure.reason
    assert [a[0] for a in _artifacts(ctx, name)] == ["data"]


def test_non_science_products_are_skipped(archived):
    ctx, _ = archived
    assert "cat" not in SCIENCE_SUFFIXES and "asn" not in SCIENCE_SUFFIXES
    event = _announce(ctx, "jw01234-o001_t001_nircam_clear-f200w_cat.ecsv", b"# %ECSV 1.0\n", suffix="cat")
    assert run_handler("preview.make", handle_product, event, ctx).status == "ok"
    assert [a[0] for a in _artifacts(ctx, "jw01234-o001_t001_nircam_clear-f200w_cat.ecsv")] == ["data"]
