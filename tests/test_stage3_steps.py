"""Stage-3 kernels on synthetic exposures with known truth (tests/stage3_scenes.py).

Scenes: 4 dithered 160x160 NIRCam-like exposures (0.031"/px, SIP distortion, Gaussian
PSF of FWHM 2 px) of ~150 stars, with known pointing errors (up to 0.3") and roll errors,
Poisson and read noise and 30-40 unflagged cosmic rays each.

Tolerances (stated per test): tweakreg recovers the injected pointing errors to
<= 0.02 pixel RMS over the detector, 0.03 at its corners (relative alignment: up to the
reference exposure's own error; absolute: exactly); outlier detection flags >= 90 % of
the cosmic rays, with false flags at most 10 % of their number;
catalog positions within 0.05 pixel RMS and flux errors within 2 % (median) for S/N > 50
isolated stars, >= 95 % completeness above S/N 10 for stars without a brighter
neighbour within 3 pixels; TSO photometry recovers a 2 % transit depth within 5 %.
"""

from __future__ import annotations

import numpy as np
import pytest
from photutils.aperture import CircularAperture, aperture_photometry
from scipy.spatial import cKDTree

from services.stage3.steps._matching import RShift, fit_rshift
from services.stage3.steps.catalog_refs import ReferenceRowError, abvega_offset, apcorr_apertures
from services.stage3.steps.outlier_detection import (
    OutlierParams,
    apply_outliers,
    flag_outliers_ifu,
    flag_outliers_imaging,
    flag_outliers_shifted,
    flag_outliers_slit,
    flag_outliers_tso,
    nan_median_filter,
    nanmedian_stack,
    rolling_median,
)
from services.stage3.steps.skymatch import SkyMatchParams, skymatch
from services.stage3.steps.source_catalog import SourceCatalogParams, make_catalog
from services.stage3.steps.tso_photometry import TsoPhotometryParams, tso_photometry
from services.stage3.steps.tweakreg import (
    TweakregInput,
    TweakregParams,
    corrected_wcs,
    project,
    tweakreg,
)
from shared.datamodels.dqflags import PIXEL
from shared.resample import ResampleInput, output_grid, pixel_area_arcsec2, resample
from shared.spectra import rectify_slit
from tests.stage3_scenes import PIXAR_SR, SR_PER_ARCSEC2, make_exposures, make_sky, make_time_series

POINTING_ERRORS = [(0.05, -0.03), (-0.1, 0.2), (0.25, -0.1), (0.0, 0.3)]  # arcsec along RA, Dec
ROLL_ERRORS = [0.0, 0.01, -0.02, 0.005]  # deg


@pytest.fixture(scope="module")
def sky():
    return make_sky(150, radius_arcsec=3.5, seed=3)


@pytest.fixture(scope="module")
def exposures(sky):
    return make_exposures(sky, pointing_errors=POINTING_ERRORS, roll_errors=ROLL_ERRORS, n_cr=40)


def _pixel_offsets(wcs, true_wcs, shape):
    """Where ``wcs`` puts each grid pixel's sky position, minus the truth, in pixels."""
    yy, xx = np.mgrid[0:shape[0]:10, 0:shape[1]:10]
    x, y = true_wcs.world_to_pixel_values(*wcs.pixel_to_world_values(xx.ravel().astype(float), yy.ravel().astype(float)))
    return x - xx.ravel(), y - yy.ravel()


def _inputs(exposures):
    return [TweakregInput(e.data, e.err, e.dq, e.wcs) for e in exposures]


def _sky_residual(new, true_wcs, shape, tangent):
    """Sky positions (plane arcsec) the corrected WCS gives a grid of pixels, and the truth."""
    yy, xx = np.mgrid[0:shape[0]:10, 0:shape[1]:10]
    x, y = xx.ravel().astype(float), yy.ravel().astype(float)
    return project(*new.pixel_to_world_values(x, y), tangent), project(*true_wcs.pixel_to_world_values(x, y), tangent)


def test_tweakreg_relative_alignment_recovers_pointing_errors(exposures):
    result = tweakreg(_inputs(exposures))
    assert all(a.aligned for a in result.alignments) and result.absolute is None
    assert all(a.nmatch >= 15 for a in result.alignments)
    ref = next(i for i, a in enumerate(result.alignments) if a.note == "reference exposure")
    # The group keeps the reference exposure's (unknowable) error: one shift + rotation on
    # the sky, found from the reference alone; every exposure must then agree with it.
    got, truth = _sky_residual(result.wcss[ref], exposures[ref].true_wcs, exposures[ref].data.shape, result.tangent)
    group_error, _ = fit_rshift(got, truth, nclip=0)
    assert np.hypot(*group_error.shift) > 0.03  # arcsec: the reference's own error is not removed
    scale = 0.031
    for new, exp in zip(result.wcss, exposures, strict=True):
        got, truth = _sky_residual(new, exp.true_wcs, exp.data.shape, result.tangent)
        miss = np.hypot(*(got - group_error.apply(truth)).T) / scale
        assert np.sqrt(np.mean(miss**2)) <= 0.02 and np.max(miss) <= 0.03
        before, _ = _sky_residual(exp.wcs, exp.true_wcs, exp.data.shape, result.tangent)
        if exp is not exposures[ref]:
            assert np.max(np.hypot(*(before - group_error.apply(truth)).T)) / scale > 1.0


def test_tweakreg_absolute_alignment_recovers_truth(exposures, sky):
    result = tweakreg(_inputs(exposures), abs_refcat=(sky.ra, sky.dec))
    assert result.absolute is not None and result.absolute_note == ""
    for new, exp in zip(result.wcss, exposures, strict=True):
        dx, dy = _pixel_offsets(new, exp.true_wcs, exp.data.shape)
        assert np.sqrt(np.mean(dx**2 + dy**2)) <= 0.02 and np.max(np.hypot(dx, dy)) <= 0.03
        # SIP terms and reference pixel are kept; only CRVAL and PC move.
        assert new.sip is not None and np.allclose(new.sip.a, exp.wcs.sip.a)
        assert np.allclose(new.wcs.crpix, exp.wcs.wcs.crpix)


def test_tweakreg_aligns_the_detectors_of_an_exposure_together():
    """Three dithered exposures of two detectors 12 arcsec apart: the detectors never
    overlap each other, only their own images at the other dither points. Aligned
    exposure by exposure (the public step's group_id) every image is fitted, both
    detectors of an exposure by one correction, to the truth within 0.05 pixel; image by
    image, the second detector's images meet no source of the reference detector's and
    stay unaligned."""
    sky = make_sky(1600, radius_arcsec=16.0, seed=21, flux_range=(1e-7, 2e-6))
    kw = dict(n=3, pointing_errors=[(0.0, 0.0), (0.25, -0.15), (-0.2, 0.3)], roll_errors=[0.0, 0.004, -0.003],
              n_cr=0, seed=4)
    near = make_exposures(sky, **kw)
    far = make_exposures(sky, offset=(12.0, 0.0), **kw)
    images = [e for pair in zip(near, far, strict=True) for e in pair]
    groups = [k for k in range(3) for _ in range(2)]

    alone = tweakreg(_inputs(images))
    assert sum(a.aligned for a in alone.alignments) <= 3
    assert any("no pair of sources" in a.note for a in alone.alignments)

    together = tweakreg(_inputs(images), groups=groups)
    assert all(a.aligned for a in together.alignments)
    assert together.alignments[0] == together.alignments[1] and together.alignments[2] == together.alignments[3]
    ref = next(i for i, a in enumerate(together.alignments) if a.note == "reference exposure")
    got, truth = _sky_residual(together.wcss[ref], images[ref].true_wcs, images[ref].data.shape, together.tangent)
    group_error, _ = fit_rshift(got, truth, nclip=0)
    for new, exp in zip(together.wcss, images, strict=True):
        got, truth = _sky_residual(new, exp.true_wcs, exp.data.shape, together.tangent)
        miss = np.hypot(*(got - group_error.apply(truth)).T) / 0.031
        assert np.sqrt(np.mean(miss**2)) <= 0.05


def test_tweakreg_reports_what_it_cannot_align(exposures, sky):
    blank = exposures[0].data * 0 + np.float32(1.0)
    inputs = _inputs(exposures[:2]) + [TweakregInput(blank, exposures[0].err, exposures[0].dq, exposures[0].wcs)]
    result = tweakreg(inputs, TweakregParams())
    assert not result.alignments[2].aligned and "too few sources" in result.alignments[2].note
    assert result.wcss[2].wcs.crval.tolist() == exposures[0].wcs.wcs.crval.tolist()
    far = tweakreg(_inputs(exposures), abs_refcat=(sky.ra + 1.0, sky.dec))
    assert far.absolute is None and "no star in the field" in far.absolute_note


def test_weighted_fit_judges_each_residual_by_its_own_error():
    """Bright stars (errors 1 mas) and faint ones (20 mas) with residuals as their errors say:
    clipping must keep the faint ones (their residuals are large only against the weighted
    rms the bright stars set) and drop a real mismatch."""
    rng = np.random.default_rng(3)
    src = rng.uniform(-2.5, 2.5, (40, 2))
    err = np.where(np.arange(40) < 10, 0.001, 0.020)
    ref = RShift(1e-4, (0.05, -0.03)).apply(src) + rng.normal(0.0, 1.0, (40, 2)) * err[:, None]
    ref[39] += 0.3  # one wrong pair
    fit, keep = fit_rshift(ref, src, 1.0 / err**2, nclip=3, sigma=3.0)
    assert not keep[39] and keep[:39].sum() >= 37
    assert fit.shift == pytest.approx((0.05, -0.03), abs=1e-3) and fit.theta == pytest.approx(1e-4, abs=1e-3)


def test_corrected_wcs_applies_the_transform_exactly(exposures):
    exp = exposures[1]
    tangent = (53.1003, -27.8002)
    same = corrected_wcs(exp.wcs, RShift(), tangent)
    dx, dy = _pixel_offsets(same, exp.wcs, exp.data.shape)
    assert np.max(np.abs(dx)) < 1e-6 and np.max(np.abs(dy)) < 1e-6
    move = RShift(theta=2e-4, shift=(0.3, -0.2))
    new = corrected_wcs(exp.wcs, move, tangent)
    got, before = _sky_residual(new, exp.wcs, exp.data.shape, tangent)
    assert np.max(np.hypot(*(got - move.apply(before)).T)) / 0.031 < 1e-3


def test_skymatch_levels(exposures):
    levels = [0.5, 0.8, 0.65, 1.1]
    images = [e.data + np.float32(level) for e, level in zip(exposures, levels, strict=True)]
    dqs = [e.dq for e in exposures]
    result = skymatch(images, dqs)
    # The stars lift a clipped median a little; the noise-free sky is 0 in these scenes.
    noise = float(np.median(exposures[0].err))
    assert np.allclose(result.measured, levels, atol=0.1 * noise)
    assert result.subtracted == result.measured
    assert abs(float(np.median(result.data[0])) - float(np.median(exposures[0].data))) < 0.1 * noise
    glob = skymatch(images, dqs, SkyMatchParams(skymethod="global"))
    assert glob.subtracted == [min(glob.measured)] * 4
    match = skymatch(images, dqs, SkyMatchParams(skymethod="match", subtract=False))
    assert min(match.subtracted) == 0.0 and match.data[0] is images[0]


def test_outlier_detection_flags_cosmic_rays(exposures):
    wcss = [e.true_wcs for e in exposures]
    grid = output_grid(wcss, [e.data.shape for e in exposures])
    inputs = [ResampleInput(e.data, e.true_wcs, e.dq, e.var_rnoise, e.var_poisson) for e in exposures]
    found = flag_outliers_imaging(inputs, [e.err for e in exposures], *grid)
    hits = sum(int((m & e.cr_mask).sum()) for m, e in zip(found.masks, exposures, strict=True))
    crs = sum(int(e.cr_mask.sum()) for e in exposures)
    false = sum(int((m & ~e.cr_mask).sum()) for m, e in zip(found.masks, exposures, strict=True))
    assert hits >= 0.9 * crs
    assert false <= 0.1 * crs  # a few star-core pixels at most
    dq, (sci,) = apply_outliers(found.masks[0], exposures[0].dq, exposures[0].data)
    flagged = found.masks[0]
    assert np.all(dq[flagged] & (PIXEL["DO_NOT_USE"] | PIXEL["OUTLIER"]))
    assert np.isnan(sci[flagged]).all() and np.isfinite(exposures[0].data).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("depth", [1, 2, 3, 4, 7])
def test_nanmedian_stack_is_numpys_nanmedian_to_the_bit(dtype, depth):
    rng = np.random.default_rng(depth)
    stack = rng.normal(100.0, 30.0, (depth, 40, 50)).astype(dtype)
    stack[rng.random(stack.shape) < 0.3] = np.nan  # every count of finite values 0..depth
    stack[:, :5] = np.nan  # empty mosaic pixels
    stack[:, 5:8] = stack[:1, 5:8]  # ties
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):
        expected = np.nanmedian(stack, axis=0).astype(np.float32)
    got = nanmedian_stack(stack)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, expected)
    with pytest.raises(ValueError, match="empty stack"):
        nanmedian_stack(stack[:0])


def test_nanmedian_stack_of_a_mosaic_is_taken_in_blocks_to_the_same_bits():
    """A stack larger than one block (a mosaic's) goes in blocks of rows on two threads;
    rows of every block, the last (shorter) one too, are numpy's median."""
    rng = np.random.default_rng(5)
    stack = rng.normal(0.0, 1.0, (3, 1403, 1000)).astype(np.float32)  # 4.2 million values: two blocks
    stack[rng.random(stack.shape) < 0.3] = np.nan
    stack[:, :, :100] = np.nan
    got = nanmedian_stack(stack)
    for rows in (slice(0, 40), slice(1390, 1403)):
        with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):
            expected = np.nanmedian(stack[:, rows], axis=0).astype(np.float32)
        np.testing.assert_array_equal(got[rows], expected)


def _slit_exposures(alongs, seed=7, sigma=1.5):
    """Nod-subtracted slit exposures (60 rows x 80 columns, noise 1 per pixel): a slit whose
    trace drifts across x, a point source of peak 200 and width ``sigma`` (pixels) at each
    ``along`` (pixels) from it."""
    rng = np.random.default_rng(seed)
    ny, nx = 60, 80
    rows = np.arange(ny)
    trace = 40.0 + 0.02 * rows
    cols = np.arange(nx)[None, :]
    out = []
    for along in alongs:
        profile = 200.0 * np.exp(-0.5 * ((cols - (trace + along)[:, None]) / sigma) ** 2)
        sci = profile + rng.normal(0.0, 1.0, (ny, nx))
        out.append({"sci": sci, "err": np.ones((ny, nx)), "dq": np.zeros((ny, nx), np.uint32),
                    "var": {"VAR_RNOISE": np.ones((ny, nx))}, "centre": trace + along})
    return out, rows, 30.0


@pytest.mark.parametrize("n", [3, 2])
def test_slit_outlier_detection_flags_a_cosmic_ray(n):
    """A cosmic ray of 60 sigma on two pixels of one exposure beside the source is flagged
    there and nowhere else, with three exposures and with two (where the median is their
    mean: the other exposure sees half the ray in the mean, which the allowance for the
    blotted median's own steepness keeps from being flagged). The bright source, where
    the exposures line up on it, is never flagged."""
    exposures, rows, half = _slit_exposures([-8.0, 0.0, 8.0][:n])
    hit = exposures[1]
    y0, x0 = 30, int(round(hit["centre"][30])) + 4
    hit["sci"][y0, x0:x0 + 2] += 60.0
    reach = half + 8.0
    singles = [rectify_slit(e["sci"], e["dq"], e["var"], e["centre"], rows, np.linspace(5, 14, rows.size), reach)
               for e in exposures]
    masks = flag_outliers_slit([e["sci"] for e in exposures], [e["err"] for e in exposures],
                               [e["dq"] for e in exposures], [r.sci for r in singles], singles[0].rows,
                               singles[0].offsets, [e["centre"] for e in exposures])
    cr = np.zeros(hit["sci"].shape, bool)
    cr[y0, x0:x0 + 2] = True
    assert np.array_equal(masks[1], cr)
    for i, mask in enumerate(masks):
        if i != 1:
            assert not mask.any(), (i, np.argwhere(mask))


def test_nods_whole_pixels_apart_are_compared_without_resampling():
    """Three nods 10 pixels apart of a source as undersampled as NIRSpec's at 1 um (sigma
    0.2 px), shifted onto each other by whole pixels: a cosmic ray on one of them is
    flagged, and nothing else, the source's bright pixels included."""
    exposures, rows, half = _slit_exposures([-10.0, 0.0, 10.0], sigma=0.2)
    hit = exposures[2]
    y0, x0 = 20, int(round(hit["centre"][20])) + 3
    hit["sci"][y0, x0] += 60.0
    masks = flag_outliers_shifted([e["sci"] for e in exposures], [e["err"] for e in exposures],
                                  [e["dq"] for e in exposures], [-10, 0, 10])
    cr = np.zeros(hit["sci"].shape, bool)
    cr[y0, x0] = True
    assert np.array_equal(masks[2], cr)
    assert not masks[0].any() and not masks[1].any()


def test_nan_median_filter_is_the_median_of_what_is_there():
    rng = np.random.default_rng(3)
    image = rng.normal(size=(40, 37))
    image[rng.random(image.shape) < 0.2] = np.nan
    image[5:12, 20:27] = np.nan  # a window with nothing in it
    got = nan_median_filter(image, (7, 5), rows=9)
    for y, x in [(0, 0), (20, 18), (39, 36), (8, 23), (13, 3)]:
        window = image[max(y - 3, 0):y + 4, max(x - 2, 0):x + 3]
        expected = np.nanmedian(window) if np.isfinite(window).any() else np.nan
        assert got[y, x] == pytest.approx(expected, nan_ok=True), (y, x)


def test_ifu_outliers_are_pixels_bad_in_every_dither():
    """Four dithers of a slice-striped scene whose bright source moves between them: a
    pixel hot in all four is flagged, in every one; a cosmic ray in one alone (jump
    detection's to find) and the moving source are not; NaN and DO_NOT_USE pixels are
    never outliers."""
    rng = np.random.default_rng(5)
    ny, nx = 120, 100
    yy, xx = np.mgrid[:ny, :nx]
    data, dqs = [], []
    for k in range(4):
        scene = 10.0 + 0.02 * yy + rng.normal(0, 0.1, (ny, nx))
        scene += 200.0 * np.exp(-0.5 * (((xx - 30 - 5 * k) / 1.2) ** 2 + ((yy - 60) / 30.0) ** 2))
        scene[:, ::17] = np.nan  # between slices
        scene[70, 80] += 50.0  # hot in every dither
        dq = np.zeros((ny, nx), np.uint32)
        dq[10, 10] = PIXEL["DO_NOT_USE"]
        if k == 2:
            scene[40, 50] += 80.0  # a cosmic ray in one
        data.append(scene)
        dqs.append(dq)
    mask = flag_outliers_ifu(data, dqs, dispaxis=2)
    assert mask[70, 80]
    assert not mask[40, 50] and not mask[10, 10]
    assert not mask[:, ::17].any()
    assert not mask[55:66, 25:50].any()  # the source's core in any dither
    # the percentile flags its share of the pixels (0.2 %)
    assert mask.sum() <= 0.004 * mask.size


def test_rolling_median_and_tso_outliers():
    cube = np.arange(10, dtype=float)[:, None, None] * np.ones((10, 2, 2))
    med = rolling_median(cube, 3)
    assert med[5, 0, 0] == 5 and med[0, 0, 0] == 1 and med[9, 0, 0] == 8
    assert np.all(rolling_median(cube, 25) == 4.5)
    ts = make_time_series(nints=60, n_cr=30)
    mask = flag_outliers_tso(ts.data, ts.err, ts.dq, OutlierParams())
    assert (mask & ts.cr_mask).sum() >= 0.9 * ts.cr_mask.sum()
    assert (mask & ~ts.cr_mask).sum() <= 10


def _catalog(exposures):
    inputs = [ResampleInput(e.data, e.true_wcs, e.dq, e.var_rnoise, e.var_poisson) for e in exposures]
    grid, shape = output_grid([e.true_wcs for e in exposures], [e.data.shape for e in exposures])
    r = resample(inputs, grid, shape)
    pixar = pixel_area_arcsec2(grid, shape[1] / 2, shape[0] / 2) * SR_PER_ARCSEC2
    return make_catalog(r.data, r.err, r.wht, pixar_sr=pixar, wcs=grid), grid, r, pixar


def test_source_catalog_against_truth(sky):
    exposures = make_exposures(sky, n_cr=0)  # outliers are another step's business
    result, grid, r, pixar = _catalog(exposures)
    cat = result.catalog
    assert result.psf is not None and "curve of growth" in result.psf.method
    tx, ty = grid.world_to_pixel_values(sky.ra, sky.dec)
    ny, nx = r.data.shape
    inside = (tx > 8) & (tx < nx - 9) & (ty > 8) & (ty < ny - 9)
    inside &= np.isfinite(r.data[np.clip(np.rint(ty).astype(int), 0, ny - 1), np.clip(np.rint(tx).astype(int), 0, nx - 1)])
    # Truth S/N in the 70 % aperture, from the image's own error map.
    err_jy = np.nan_to_num(r.err) * 1e6 * pixar
    sigma = np.asarray(aperture_photometry(err_jy**2, CircularAperture(np.transpose([tx, ty]), result.psf.radii[-1]))
                       ["aperture_sum"]) ** 0.5
    snr = 0.7 * sky.flux / np.where(sigma > 0, sigma, np.inf)
    # Stars with a brighter neighbour closer than 3 px are blends, not measurable alone.
    d2, j2 = cKDTree(np.transpose([tx, ty])).query(np.transpose([tx, ty]), k=2)
    isolated = ~((d2[:, 1] < 3.0) & (sky.flux[j2[:, 1]] > 0.3 * sky.flux))
    dist, idx = cKDTree(np.transpose([cat["xcentroid"], cat["ycentroid"]])).query(np.transpose([tx, ty]))
    found = dist < 1.0

    complete = inside & isolated & (snr > 10)
    assert complete.sum() >= 30
    assert found[complete].mean() >= 0.95

    bright = inside & isolated & (snr > 50) & found
    assert bright.sum() >= 20
    dx = np.asarray(cat["xcentroid"])[idx[bright]] - tx[bright]
    dy = np.asarray(cat["ycentroid"])[idx[bright]] - ty[bright]
    assert np.sqrt(np.mean(dx**2 + dy**2)) <= 0.05
    ratio = np.asarray(cat["aper_total_flux"].value)[idx[bright]] / sky.flux[bright]
    assert np.median(np.abs(ratio - 1)) <= 0.02
    assert abs(np.median(ratio) - 1) <= 0.01

    # Columns as the public catalog, in its order, with its units.
    names = cat.colnames
    assert names[:6] == ["label", "xcentroid", "ycentroid", "sky_centroid", "aper_bkg_flux", "aper_bkg_flux_err"]
    for col in ("aper30_flux", "aper50_flux_err", "aper70_abmag", "aper_total_vegamag_err", "CI_50_30", "CI_70_50",
                "CI_70_30", "is_extended", "sharpness", "roundness", "nn_label", "nn_dist", "isophotal_flux",
                "isophotal_abmag", "isophotal_area", "semimajor_sigma", "semiminor_sigma", "ellipticity",
                "orientation", "sky_orientation", "sky_bbox_ll", "sky_bbox_ul", "sky_bbox_lr", "sky_bbox_ur"):
        assert col in names, col
    assert names.index("CI_50_30") > names.index("aper_total_vegamag_err") > names.index("aper_total_flux")
    assert str(cat["aper_total_flux"].unit) == "Jy" and str(cat["isophotal_area"].unit) == "pix2"
    assert np.allclose(cat["aper_total_abmag"][idx[bright]], -2.5 * np.log10(ratio * sky.flux[bright]) + 8.9)
    assert not np.any(np.asarray(cat["is_extended"])[idx[bright]])
    assert result.segm.dtype == np.int32 and set(np.unique(result.segm)) == {0, *np.asarray(cat["label"])}


def _apcorr_table(sigma: float) -> np.ndarray:
    """An APCORR-like table: F200W/CLEAR rows of a Gaussian EE of ``sigma`` px (and a
    decoy F150W row), MIRI-free."""
    rows = []
    for filt, s in (("F200W", sigma), ("F150W", 0.5 * sigma)):
        for ee in (0.3, 0.5, 0.7, 0.8):
            rows.append((filt, "CLEAR", ee, s * np.sqrt(-2 * np.log(1 - ee)), 1 / ee, 7.5 * s, 11.0 * s))
    return np.array(rows, dtype=[("filter", "S12"), ("pupil", "S15"), ("eefraction", "f4"), ("radius", "f4"),
                                 ("apcorr", "f4"), ("skyin", "f4"), ("skyout", "f4")])


def test_catalog_references_pick_rows_as_the_public_step():
    table = _apcorr_table(1.0)
    ap = apcorr_apertures(table, instrument="NIRCAM", filter="f200w", pupil="CLEAR", subarray="SUB160",
                          aperture_ee=(30, 50, 70), pixel_scale_ratio=0.5, source="apcorr.fits")
    np.testing.assert_allclose(ap.radii, np.sqrt(-2 * np.log([0.7, 0.5, 0.3])) / 0.5, rtol=1e-6)
    np.testing.assert_allclose(ap.corrections, [1 / 0.3, 2.0, 1 / 0.7], rtol=1e-6)
    assert (ap.bkg_inner, ap.bkg_outer, ap.ee, ap.source) == (15.0, 22.0, (30, 50, 70), "apcorr.fits")
    with pytest.raises(ReferenceRowError, match="no row for FILTER=F444W PUPIL=CLEAR"):
        apcorr_apertures(table, instrument="NIRCAM", filter="F444W", pupil="CLEAR", subarray=None,
                         aperture_ee=(30, 50, 70))
    with pytest.raises(ReferenceRowError, match="0 rows for an encircled energy of 90"):
        apcorr_apertures(table, instrument="NIRCAM", filter="F200W", pupil="CLEAR", subarray=None,
                         aperture_ee=(50, 70, 90))
    miri = np.array([("F770W", "FULL", 0.5, 2.0, 2.0, 8.0, 12.0), ("F770W", "SUB128", 0.5, 2.1, 2.0, 8.0, 12.0)],
                    dtype=[("filter", "S12"), ("subarray", "S17"), ("eefraction", "f4"), ("radius", "f4"),
                           ("apcorr", "f4"), ("skyin", "f4"), ("skyout", "f4")])
    sub = apcorr_apertures(miri, instrument="MIRI", filter="F770W", pupil=None, subarray="SUB128", aperture_ee=(50,))
    assert sub.radii == pytest.approx((2.1,))
    offsets = np.array([("F200W", "CLEAR", 1.7), ("F200W", "F187N", 2.0)],
                       dtype=[("filter", "U12"), ("pupil", "U15"), ("abvega_offset", "f4")])
    assert abvega_offset(offsets, instrument="NIRCAM", filter="F200W", pupil="F187N", detector="NRCA1") == \
        pytest.approx(2.0)
    with pytest.raises(ReferenceRowError):
        abvega_offset(offsets, instrument="NIRCAM", filter="F090W", pupil="CLEAR", detector="NRCA1")


def test_source_catalog_with_reference_apertures(sky):
    """Apertures from an APCORR table of the scene's PSF as the mosaic sees it (the
    pixel-integrated Gaussian, sigma^2 + 4/12 px^2 from apertures over pixels and the
    rotated drizzle): fluxes within 2 % (median) and 1 % (bias) of the truth; Vega = AB -
    the offset."""
    exposures = make_exposures(sky, n_cr=0)
    inputs = [ResampleInput(e.data, e.true_wcs, e.dq, e.var_rnoise, e.var_poisson) for e in exposures]
    grid, shape = output_grid([e.true_wcs for e in exposures], [e.data.shape for e in exposures])
    r = resample(inputs, grid, shape)
    pixar = pixel_area_arcsec2(grid, shape[1] / 2, shape[0] / 2) * SR_PER_ARCSEC2
    sigma = np.sqrt((2.0 / 2.3548) ** 2 + 4 / 12)
    ap = apcorr_apertures(_apcorr_table(sigma), instrument="NIRCAM", filter="F200W", pupil="CLEAR", subarray=None,
                          aperture_ee=(30, 50, 70), source="test_apcorr.fits")
    result = make_catalog(r.data, r.err, r.wht, pixar_sr=pixar, wcs=grid, apertures=ap, abvega_offset=1.7)
    cat = result.catalog
    assert result.psf is None and result.apertures == ap
    assert cat.meta["aperture_source"] == "test_apcorr.fits" and cat.meta["abvega_offset"] == 1.7
    assert cat.meta["aperture_params"]["aperture_corrections"] == pytest.approx([1 / 0.3, 2.0, 1 / 0.7])
    assert any("apertures (test_apcorr.fits)" in n for n in result.notes)
    good = np.isfinite(cat["aper_total_abmag"])
    np.testing.assert_allclose(cat["aper_total_vegamag"][good], cat["aper_total_abmag"][good] - 1.7, atol=1e-6)
    tx, ty = grid.world_to_pixel_values(sky.ra, sky.dec)
    ny, nx = r.data.shape
    d2, j2 = cKDTree(np.transpose([tx, ty])).query(np.transpose([tx, ty]), k=2)
    isolated = d2[:, 1] > 6.0
    inside = (tx > 12) & (tx < nx - 13) & (ty > 12) & (ty < ny - 13)
    dist, idx = cKDTree(np.transpose([cat["xcentroid"], cat["ycentroid"]])).query(np.transpose([tx, ty]))
    flux_snr = np.asarray(cat["aper_total_flux"] / cat["aper_total_flux_err"])[idx]
    bright = inside & isolated & (dist < 1.0) & (flux_snr > 50)
    assert bright.sum() >= 15
    ratio = np.asarray(cat["aper_total_flux"].value)[idx[bright]] / sky.flux[bright]
    print(f"\n[catalog with APCORR] n={bright.sum()} median |error| {np.median(np.abs(ratio - 1)):.4f} "
          f"bias {np.median(ratio) - 1:+.4f}")
    assert np.median(np.abs(ratio - 1)) <= 0.02 and abs(np.median(ratio) - 1) <= 0.01
    with pytest.raises(ValueError, match="apertures for EE"):
        make_catalog(r.data, r.err, r.wht, pixar_sr=pixar, wcs=grid, apertures=ap,
                     params=SourceCatalogParams(aperture_ee=(20, 50, 80)))


def test_source_catalog_finds_nothing_in_noise():
    rng = np.random.default_rng(4)
    noise = rng.normal(0, 1e-3, (80, 80)).astype(np.float32)
    from shared.wcs import window_wcs
    result = make_catalog(noise, np.full((80, 80), 1e-3, np.float32), None, pixar_sr=PIXAR_SR,
                          wcs=window_wcs(53.1, -27.8, 0.0, 0.031, 80, 80),
                          params=SourceCatalogParams(snr_threshold=6.0))
    assert len(result.catalog) == 0 and not result.segm.any() and "no source detected" in result.notes


def test_tso_photometry_recovers_transit_depth():
    ts = make_time_series()
    to_jy = 1e6 * PIXAR_SR
    x0, y0 = ts.wcs.world_to_pixel_values(53.1, -27.8)
    mask = flag_outliers_tso(ts.data, ts.err, ts.dq)
    _, (cube, err) = apply_outliers(mask, ts.dq, ts.data, ts.err)
    result = tso_photometry(cube * to_jy, err * to_jy, float(x0), float(y0), TsoPhotometryParams())
    flux = result.net_aperture_sum
    depth = 1.0 - np.median(flux[ts.in_transit]) / np.median(flux[~ts.in_transit])
    assert depth == pytest.approx(0.02, rel=0.05)
    assert np.nanmax(np.abs(result.centroid_x - x0)) < 0.1 and result.n_filled >= mask.sum() - 5
    # Without filling, the flagged pixels drop out of the sums as in the public step.
    raw = tso_photometry(cube * to_jy, err * to_jy, float(x0), float(y0), TsoPhotometryParams(fill_flagged=False))
    assert raw.n_filled == 0 and np.all(np.isfinite(raw.aperture_sum))
    assert np.allclose(result.aperture_bkg, result.annulus_mean * np.pi * 9, rtol=1e-6)
    plain = tso_photometry(cube * to_jy, err * to_jy, float(x0), float(y0), TsoPhotometryParams(fill_flagged=False),
                           whole_array=True)
    assert np.allclose(plain.net_aperture_sum, np.nansum(cube * to_jy, axis=(1, 2)), rtol=1e-5)
    assert np.isnan(plain.annulus_mean).all()



def test_skymatch_fits_one_level_per_exposure_by_default():
    # Two exposures of two detectors; the second detector of each sits 0.3 higher.
    rng = np.random.default_rng(5)
    skies = [1.0, 1.3, 0.6, 0.9]
    images = [(level + rng.normal(0, 0.01, (60, 80))).astype(np.float32) for level in skies]
    dqs = [np.zeros((60, 80), np.uint32)] * 4
    exposures = ["e1", "e1", "e2", "e2"]
    r = skymatch(images, dqs, groups=exposures)
    assert r.groups == [0, 0, 1, 1]
    np.testing.assert_allclose(r.measured, skies, atol=0.005)
    # global+match: exposure means 1.15 and 0.75 matched (deltas 0.4, 0), then the lowest
    # remaining sky (0.6, both) removed: each exposure's detectors share one level.
    np.testing.assert_allclose(r.subtracted, [1.0, 1.0, 0.6, 0.6], atol=0.005)
    expected = {"local": [1.0, 1.0, 0.6, 0.6], "global": [0.6] * 4, "match": [0.4, 0.4, 0.0, 0.0]}
    for method, levels in expected.items():
        got = skymatch(images, dqs, SkyMatchParams(skymethod=method), groups=exposures).subtracted
        np.testing.assert_allclose(got, levels, atol=0.005, err_msg=method)
    per_detector = skymatch(images, dqs, SkyMatchParams(grouping="detector"), groups=exposures)
    assert per_detector.groups == [0, 1, 2, 3]
    np.testing.assert_allclose(per_detector.subtracted, skies, atol=0.005)
    assert skymatch(images, dqs).groups == [0, 1, 2, 3]  # no groups given: every image alone


# ---------------------------------------------------------------- combine_1d


def test_combine_1d_weights_by_inverse_variance_and_skips_unusable_elements():
    from services.stage3.steps.combine_1d import combine_spectra
    from shared.spectra import SPECTABLE_DTYPE

    def spectrum(flux, err, dq=0):
        t = np.zeros(3, SPECTABLE_DTYPE)
        t["WAVELENGTH"] = [5.0, 6.0, 7.0]
        t["FLUX"], t["FLUX_ERROR"], t["FLUX_VAR_POISSON"] = flux, err, np.square(err)
        t["SURF_BRIGHT"], t["SB_ERROR"], t["SB_VAR_POISSON"] = flux, err, np.square(err)
        t["NPIXELS"], t["DQ"] = 13.0, dq
        return t

    a = spectrum([1.0, 2.0, np.nan], [1.0, 1.0, 1.0])
    b = spectrum([3.0, 4.0, 5.0], [2.0, 2.0, 2.0], dq=[0, 4, 0])
    c = combine_spectra([a, b])
    # weights 1 and 1/4: (1 + 3/4) / 1.25 = 1.4; variance (1 + 4/16) / 1.25^2 = 0.8
    np.testing.assert_allclose(c["FLUX"][:2], [1.4, (2 + 1) / 1.25])
    np.testing.assert_allclose(c["FLUX_VAR_POISSON"][:2], 0.8)
    np.testing.assert_allclose(c["FLUX_ERROR"][:2], np.sqrt(0.8))
    assert c["FLUX"][2] == pytest.approx(5.0) and c["FLUX_ERROR"][2] == pytest.approx(2.0)  # a's NaN left out
    np.testing.assert_allclose(c["NPIXELS"], [26.0, 26.0, 13.0])
    assert list(c["DQ"]) == [0, 4, 0]
    with pytest.raises(ValueError, match="one wavelength grid"):
        combine_spectra([a, b[:2]])
    with pytest.raises(ValueError, match="at least one"):
        combine_spectra([])
