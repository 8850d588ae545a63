"""MIRI MRS cubes against the simulator's truth: one exposure's slices, as the references
describe them (:mod:`shared.spectra.ifu`), built into a cube per channel by the 3-D drizzle
(:mod:`shared.spectra.cube`).

The scene is rendered noiseless by :mod:`services.simulator.mrs` on MIRIFUSHORT, band SHORT
(channels 1 and 2), and calibrated as a perfect detector1 + photom would: electrons per
second over the mean gain times the PHOTOM reference's conversion. What must hold (the
issue's tolerances; figures printed with ``-s``):

- an extended scene (two Gaussians of different spectra): the cube's surface brightness
  per spaxel within 5 % median of the truth (the scene seen through the PSF at the
  spaxel's centre), over the spaxels brighter than a fifth of the peak, from one exposure;
  within 3 % from four dithers that sample it finely (a quarter of a slice apart);
- a point source: its position in the cube (the centroid of the collapsed cube) within
  0.1 spaxel of the truth; its spectrum (the cube summed in a circle of 5 PSF sigma at
  the band's long end, times the spaxel's solid angle) within 3 % median of its f_nu seen
  through the LSF; its narrow lines' centroids within 1/10 of a resolution element.
"""

from __future__ import annotations

import dataclasses
import math

import asdf
import numpy as np
import pytest
from astropy.io import fits

from services.simulator import mrs
from services.simulator.detector_model import make_detector_model
from services.simulator.mrs_refs import write_mrs_references
from services.simulator.optical_refs import mean_gain
from services.simulator.spectrograph import SourceSpectrum, SpectralLine
from shared.imaging_wcs import TelescopePointing, v23tosky
from shared.instruments import detector as detector_info
from shared.spectra.cube import build_cube, cube_grid
from shared.spectra.ifu import MrsGeometry, pixel_footprints

DETECTOR, BAND = "MIRIFUSHORT", "SHORT"
SPAXEL = {1: 0.13, 2: 0.17}
STEP = {1: 0.001, 2: 0.002}
ARCSEC_PER_RAD = 206264.80624709636


@pytest.fixture(scope="module")
def refs(tmp_path_factory):
    out = tmp_path_factory.mktemp("mrs_refs")
    detector_model = make_detector_model(detector_info(DETECTOR), 7)
    written = write_mrs_references(detector_model, out)
    trees = {}
    for ref in written:
        path = str(ref.path)
        if path.endswith(".asdf"):
            with asdf.open(path, lazy_load=False, memmap=False) as af:
                band = str(af.tree.get("meta", {}).get("instrument", {}).get("band", "N/A")).upper()
                if band in (BAND, "N/A"):
                    trees[ref.reftype.upper()] = {k: af.tree[k] for k in af.tree if k not in ("asdf_library", "history")}
        elif ref.reftype.upper() == "PHOTOM":
            with fits.open(path) as hdul:
                if hdul[0].header.get("BAND", "").upper() == BAND:
                    trees["PHOTOM"] = np.array(hdul["SCI"].data, np.float64)
        elif ref.reftype.upper() == "CUBEPAR":
            with fits.open(path) as hdul:
                table = hdul["CUBEPAR"].data
                trees["CUBEPAR"] = [{n.upper(): row[n] for n in table.names} for row in table]
    return trees, mean_gain(detector_model)


def _pointing() -> TelescopePointing:
    info = detector_info(DETECTOR)
    return TelescopePointing(80.48, -69.49, 37.0, float(info.v2_ref), float(info.v3_ref))


def _cube_params(cubepar, channel: int) -> tuple[float, float]:
    for row in cubepar:
        if str(row["CHANNEL"]).strip() == str(channel) and str(row["BAND"]).strip().upper() == BAND:
            return float(row["WAVEMIN"]), float(row["WAVEMAX"])
    raise AssertionError(f"CUBEPAR has no row for channel {channel} {BAND}")


def _cube(refs, rendered, channel: int, offsets=((0.0, 0.0),)):
    """The cube of ``channel`` from one exposure, or from the dithers ``rendered`` (a list)
    taken at the local-frame ``offsets`` (alpha, beta arcsec: where the undithered frame's
    point lands in each dither's frame is its place less the offset)."""
    trees, gain = refs
    geometry = MrsGeometry.from_trees(trees["DISTORTION"], trees["SPECWCS"], trees["REGIONS"])
    pix = pixel_footprints(geometry, channel)
    sky = v23tosky(_pointing())
    images = rendered if isinstance(rendered, list) else [rendered]
    ra, dec, flux, lo, hi = [], [], [], [], []
    for image, (da, db) in zip(images, offsets, strict=True):
        cal = image.image / gain * trees["PHOTOM"]  # MJy/sr
        corners = pix.corners + np.array([da, db])
        v2, v3 = geometry.to_v2v3[channel](corners[..., 0], corners[..., 1])
        r, d = sky(v2, v3)
        ra.append(np.asarray(r))
        dec.append(np.asarray(d))
        flux.append(cal[pix.y, pix.x])
        lo.append(pix.wl_lo)
        hi.append(pix.wl_hi)
    ra, dec, flux = np.concatenate(ra), np.concatenate(dec), np.concatenate(flux)
    wmin, wmax = _cube_params(trees["CUBEPAR"], channel)
    grid = cube_grid(ra, dec, wmin, wmax, SPAXEL[channel], STEP[channel])
    cube = build_cube(ra, dec, np.concatenate(lo), np.concatenate(hi), flux, np.full(flux.shape, 1e-4), grid)
    return grid, cube


def _spaxel_alpha_beta(grid):
    yy, xx = np.mgrid[:grid.ny, :grid.nx]
    ra, dec = grid.cube_to_sky(xx.astype(float), yy.astype(float))
    v2, v3 = v23tosky(_pointing()).inverse(ra, dec)
    return mrs.v2v3_to_alpha_beta(v2, v3, DETECTOR)


SCENE = (
    mrs.ExtendedSource(SourceSpectrum(100.0, slope=-1.0), sigma=0.7, alpha=0.3, beta=-0.2),
    mrs.ExtendedSource(SourceSpectrum(60.0, slope=2.0, lines=(SpectralLine(5.30, 0.02, 1.0),
                                                             SpectralLine(8.10, 0.03, 0.8))),
                       sigma=0.5, alpha=-0.6, beta=0.5),
)


def _score(grid, cube, channel: int, label: str) -> tuple[float, float]:
    """(median |cube / truth - 1|, median cube / truth) over the voxels brighter than a
    fifth of the peak whose spaxel centre is inside the field by a spaxel and a half."""
    alpha, beta = _spaxel_alpha_beta(grid)
    ch = mrs.CHANNELS[channel]
    truth = mrs.truth_cube(SCENE, alpha[None], beta[None], grid.wavelengths[:, None, None])
    inside = ((np.abs(alpha) < 0.5 * ch.field_length - 1.5 * SPAXEL[channel])
              & (np.abs(beta) < 0.5 * ch.beta_extent - 1.5 * SPAXEL[channel]))
    good = inside[None] & (truth > 0.2 * truth.max()) & np.isfinite(cube.sci) & (cube.weight > 0)
    assert good.sum() > 1000
    ratio = cube.sci[good] / truth[good]
    dev = np.abs(ratio - 1.0)
    print(f"\nchannel {channel}, {label}: {good.sum()} voxels, median |cube/truth - 1| {np.median(dev):.4f}, "
          f"90th percentile {np.percentile(dev, 90):.4f}, median ratio {np.median(ratio):.4f}")
    return float(np.median(dev)), float(np.median(ratio))


@pytest.mark.parametrize("channel", [1, 2])
def test_extended_scene_surface_brightness(refs, channel):
    """One exposure (measured: median deviation 3.9 % in channel 1, whose slices, 0.177",
    are wider than its spaxels, 0.13", and 2.7 % in channel 2; both 1.2 % low, the scene
    averaged over a pixel's footprint and a spaxel); and four dithers a quarter of a slice
    and of a pixel apart, which sample the scene finely: measured 0.6 % and 1.2 %."""
    rendered = mrs.render_mrs(DETECTOR, BAND, extended=SCENE, sky_mjy_sr=None)
    dev, ratio = _score(*_cube(refs, rendered, channel), channel, "one exposure")
    assert dev <= 0.05
    assert abs(ratio - 1.0) <= 0.02
    ch = mrs.CHANNELS[channel]
    offsets = [(f * ch.alpha_scale, f * ch.slice_width) for f in (0.0, 0.5, 0.25, 0.75)]
    dithers = [mrs.render_mrs(DETECTOR, BAND, sky_mjy_sr=None, extended=[
        dataclasses.replace(src, alpha=src.alpha - da, beta=src.beta - db) for src in SCENE]) for da, db in offsets]
    dev4, ratio4 = _score(*_cube(refs, dithers, channel, offsets), channel, "four dithers")
    assert dev4 <= 0.03
    assert dev4 < dev
    assert abs(ratio4 - 1.0) <= 0.02


def _moment_centroid(wl, flux, centre, half):
    sel = np.abs(wl - centre) < half
    edge = (np.abs(wl - centre) >= half) & (np.abs(wl - centre) < 2.0 * half)
    cont = np.polyval(np.polyfit(wl[edge], flux[edge], 1), wl[sel])
    line = flux[sel] - cont
    return float(np.sum(wl[sel] * line) / np.sum(line))


def test_point_source_position_flux_and_lines(refs):
    lines = (SpectralLine(5.20, 0.0003, 1.5), SpectralLine(5.55, 0.0003, 1.0), SpectralLine(8.40, 0.0005, 1.5))
    src = mrs.PointSource(SourceSpectrum(0.05, slope=-1.5, lines=lines), alpha=0.25, beta=-0.12)
    rendered = mrs.render_mrs(DETECTOR, BAND, points=[src], sky_mjy_sr=None)
    for channel in (1, 2):
        ch = mrs.CHANNELS[channel]
        grid, cube = _cube(refs, rendered, channel)
        v2, v3 = mrs.alpha_beta_to_v2v3(src.alpha, src.beta, DETECTOR)
        ra, dec = v23tosky(_pointing())(v2, v3)
        x0, y0 = grid.sky_to_cube(ra, dec)
        white = np.nansum(np.where(cube.weight > 0, cube.sci, 0.0), axis=0)
        yy, xx = np.mgrid[:grid.ny, :grid.nx]
        near = np.hypot(xx - x0, yy - y0) < 4.0
        xc = float(np.sum(white * xx * near) / np.sum(white * near))
        yc = float(np.sum(white * yy * near) / np.sum(white * near))
        off = math.hypot(xc - float(x0), yc - float(y0))
        # flux in a circle of 5 PSF sigma at the band's long end
        lo, hi = ch.bands[BAND]
        radius = 5.0 * float(ch.psf_sigma(hi)) / SPAXEL[channel]
        aperture = np.hypot(xx - x0, yy - y0) <= radius
        sr = (SPAXEL[channel] / ARCSEC_PER_RAD) ** 2
        jy = np.nansum(cube.sci[:, aperture], axis=1) * sr * 1e6
        sl = ch.slice((ch.n_slices + 1) // 2, BAND)
        rows = np.arange(12.0, 1012.0)
        truth_jy = np.interp(grid.wavelengths, sl.wavelength(rows), mrs.point_source_truth(src, sl, rows))
        within = (grid.wavelengths > lo + 0.01) & (grid.wavelengths < hi - 0.01)
        ratio = jy[within] / truth_jy[within]
        print(f"\nchannel {channel}: centroid off by {off:.3f} spaxel; flux median ratio "
              f"{np.median(ratio):.4f}, median |ratio - 1| {np.median(np.abs(ratio - 1)):.4f}")
        assert off <= 0.1
        assert np.median(np.abs(ratio - 1.0)) <= 0.03
        for line in lines:
            if not lo + 0.02 < line.wavelength < hi - 0.02:
                continue
            element = float(sl.resolution_element(line.wavelength))
            found = _moment_centroid(grid.wavelengths, jy, line.wavelength, 2.0 * element)
            err = abs(found - line.wavelength) / element
            print(f"  line {line.wavelength} um: centroid {found:.5f}, off by {err:.3f} resolution element")
            assert err <= 0.1
