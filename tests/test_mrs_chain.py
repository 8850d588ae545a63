"""A MIRI MRS observation through the system in this process: examples/miri_mrs.yaml on
MIRIFULONG (channels 3 and 4, band SHORT, the 4-POINT dither optimized for a point
source; MIRIFUSHORT goes through the workers in tests/test_end_to_end.py) simulated,
ingested, through detector1, its spec2 associations (one per exposure) and calwebb_spec2,
its spec3 association (Asn_Lv3MIRMRS) and calwebb_spec3, each ``_x1d`` scored against the
simulator's truth spectrum of its channel.

The target is made 30 mJy here (10 in the example) so that one exposure's spectrum is
scored, not its noise. What must hold (figures measured with the example's seed, 17,
printed with ``-s``):

- every exposure has its ``_rate``, ``_cal`` (IFUImageModel), ``_s3d`` (IFUCubeModel) and
  ``_x1d``; the spectrum is a point source's (DITHOPFR POINT-SOURCE); the detector's
  fringes (5 % on MIRIFULONG) divided out by the band's FRINGE reference;
- per exposure, the median of flux / truth over the channel's band (its ends left out)
  within 3 % of 1 (measured 0.991-1.000 on channel 3);
- the narrow lines' centroids (a Gaussian on a straight continuum fitted) within 0.1
  resolution element of the truth (measured <= 0.045);
- spec3 makes a cube and a spectrum per channel, ``<product>_ch3-short_s3d`` and
  ``_ch4-short_s3d``, from the four dithers, and each member's ``_crf``: the channel's
  spectrum within 3 % median of the truth, its line within 0.1 resolution element; the
  target in the combined cube (the centroid of its collapsed image) within 0.1 spaxel of
  where the pointing puts it.

Not yet: the spread of (flux - truth) / error is about 1.8, not 1: the cube's ERR ignores
the correlation the drizzle puts between neighbouring spaxels, which an aperture sums.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS
from scipy.optimize import curve_fit

from services.simulator import mrs
from tests.slit_examples import PRODUCT_SERVICES, edited, gaussian_line, run_in_process, spectra_of

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "miri_mrs.yaml"
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    import yaml

    spectrum = yaml.safe_load(EXAMPLE.read_text())["targets"][0]["spectrum"]
    lines = [line for line in spectrum["lines"] if line["wavelength"] > 11.0]  # channel 3's
    desc = edited(EXAMPLE, obs={"detectors": ["MIRIFULONG"]},
                  target={"spectrum": {**spectrum, "flux_jy": 0.03, "lines": lines}})
    return run_in_process(desc, tmp_path_factory.mktemp("mrs_chain"), PRODUCT_SERVICES)


def _exposures(run) -> list[str]:
    return sorted(n.removesuffix("_rate.fits") for n in run["names"] if n.endswith("_rate.fits"))


def test_every_exposure_has_its_spec2_products(run):
    from stdatamodels.jwst import datamodels as dm

    exposures = _exposures(run)
    assert len(exposures) == 4  # 4 dithers
    assert sum(1 for n in run["names"] if "_spec2_" in n and n.endswith("_asn.json")) == 4
    for stem in exposures:
        for suffix in ("cal", "s3d", "x1d"):
            assert f"{stem}_{suffix}.fits" in run["names"], (stem, suffix)
    with dm.open(run["out"] / f"{exposures[0]}_s3d.fits") as cube:
        assert type(cube).__name__ == "IFUCubeModel" and cube.data.ndim == 3
    with dm.open(run["out"] / f"{exposures[0]}_cal.fits") as cal:
        assert type(cal).__name__ == "IFUImageModel"
        assert cal.meta.dither.optimized_for == "POINT-SOURCE" and cal.meta.target.source_type == "POINT"
        # the detector's fringes divided out by the band's FRINGE
        assert cal.meta.cal_step.fringe == "COMPLETE"
        assert cal.meta.ref_file.fringe.name.endswith("jwst_miri_fringe_mirifulong_short_sim.fits")


def _lines() -> list[float]:
    import yaml

    return [line["wavelength"] for line in yaml.safe_load(EXAMPLE.read_text())["targets"][0]["spectrum"]["lines"]]


def _score(x: np.ndarray, truth: Table, channel: int, label: str) -> None:
    """A spectrum against the truth of its channel: the median flux / truth within 3 %,
    the lines' centroids within 0.1 resolution element."""
    t = truth[truth["channel"] == channel]
    order = np.argsort(t["wavelength"])
    wl_t, fnu_t = np.asarray(t["wavelength"])[order], np.asarray(t["observed_jy"])[order]
    expected = np.interp(x["WAVELENGTH"], wl_t, fnu_t)
    ok = (np.isfinite(x["FLUX"]) & ((x["DQ"] & 1) == 0) & (x["WAVELENGTH"] > wl_t[0] + 0.02)
          & (x["WAVELENGTH"] < wl_t[-1] - 0.02))
    ratio = np.median(x["FLUX"][ok] / expected[ok])
    pull = np.std((x["FLUX"][ok] - expected[ok]) / x["FLUX_ERROR"][ok])
    print(f"\n{label}: channel {channel}, median flux/truth {ratio:.4f}, spread of (flux - truth)/error {pull:.2f}")
    assert abs(ratio - 1.0) <= 0.03
    ch = mrs.CHANNELS[channel]
    sl = ch.slice((ch.n_slices + 1) // 2, "SHORT")
    for centre in _lines():
        if not wl_t[0] + 0.02 < centre < wl_t[-1] - 0.02:
            continue
        element = float(sl.resolution_element(centre))
        near = ok & (np.abs(x["WAVELENGTH"] - centre) < 4.0 * element)
        wl, flux = x["WAVELENGTH"][near], x["FLUX"][near]
        p0 = (centre, element / 2.355, float(flux.max() - np.median(flux)), float(np.median(flux)), 0.0)
        fit, _ = curve_fit(gaussian_line, wl, flux, p0=p0)
        off = abs(fit[0] - centre) / element
        print(f"  line {centre} um: off by {off:.3f} resolution element")
        assert off <= 0.1


def test_spectra_against_the_truth(run):
    for stem in _exposures(run):
        ((header, x),) = spectra_of(run["out"] / f"{stem}_x1d.fits")
        assert header.get("SRCTYPE") == "POINT"
        _score(x, Table.read(run["truth_dir"] / f"{stem}_truth_spectrum.ecsv"), 3, stem)


def _spec3_product(run) -> str:
    [asn] = [n for n in run["names"] if "_spec3_" in n and n.endswith("_asn.json")]
    return json.loads((run["out"] / asn).read_text())["products"][0]["name"]


def test_spec3_cubes_and_spectra(run):
    """The four dithers combined per channel: the cube's target where the pointing puts
    it, the spectrum against the truth."""
    from stdatamodels.jwst import datamodels as dm

    product = _spec3_product(run)
    assert product.endswith("_miri") and "-o001_t001" in product
    exposures = _exposures(run)
    crf = [n for n in run["names"] if n.endswith("_crf.fits")]
    assert len(crf) == 4, crf
    truth = Table.read(run["truth_dir"] / f"{exposures[0]}_truth_spectrum.ecsv")
    for channel in (3, 4):
        name = f"{product}_ch{channel}-short"
        with dm.open(run["out"] / f"{name}_s3d.fits") as cube:
            assert type(cube).__name__ == "IFUCubeModel" and cube.meta.cal_step.cube_build == "COMPLETE"
            assert cube.meta.cal_step.outlier_detection == "COMPLETE"
            sci, header = np.array(cube.data), cube.meta.wcsinfo
            ra, dec = cube.meta.target.ra, cube.meta.target.dec
        with fits.open(run["out"] / f"{name}_s3d.fits") as hdul:
            wcs = WCS(hdul["SCI"].header).celestial
        x0, y0 = (float(v) for v in wcs.world_to_pixel_values(ra, dec))
        image = np.nanmedian(sci, axis=0)
        image = image - np.nanmedian(image)
        yy, xx = np.mgrid[:image.shape[0], :image.shape[1]]
        near = (np.hypot(xx - x0, yy - y0) <= 4.0) & np.isfinite(image)
        w = np.where(near, np.clip(image, 0, None), 0.0)
        xc, yc = (w * xx).sum() / w.sum(), (w * yy).sum() / w.sum()
        off = math.hypot(xc - x0, yc - y0)
        print(f"\n{name}: {sci.shape[2]} x {sci.shape[1]} spaxels of {abs(header.cdelt1) * 3600:.3f}\", target "
              f"centroid off by {off:.3f} spaxel")
        assert off <= 0.1
        ((xheader, x),) = spectra_of(run["out"] / f"{name}_x1d.fits")
        assert xheader.get("SRCTYPE") == "POINT"
        _score(x, truth, channel, f"spec3 {name}")
