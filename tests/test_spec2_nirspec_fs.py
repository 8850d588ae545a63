"""NIRSpec fixed-slit spectra through the system, scored against the simulator's truth.

One module-scoped run of ``examples/nirspec_fs.yaml`` (a 0.5 mJy source in the slit
S200A1, the prism, three nods 1" apart along the slit, read out in SUBS200A1), under a sky
500 times the example's (100 e-/s per pixel: the near-infrared sky is so faint that in an
8 s exposure nod subtraction could not be measured to 1 % of it; this one's mean over the
pixels clear of the nods is known to 0.15 %), in this process: simulator -> ingest -> detector1 -> the spec2 associations -> stage 2
(calwebb_spec2) -> the spec3 association -> stage 3 (calwebb_spec3) -> previews, on the
embedded catalog and store. Each nod's ``_x1d`` is compared, column by column, with the
truth's ``observed_jy`` (the source's f_nu seen through the line-spread function); the
Level-3 ``_x1d`` with the mean of the nods' truths.

NIRSpec disperses along detector x: the products are the public pipeline's for the mode
(a MultiSlitModel of the slit for the ``_cal`` and ``_s2d``, wavelength along x), the
source's place in the slit is SRCXPOS/SRCYPOS in units of the slit's width and length,
and a point source's ``_cal`` is in MJy per pixel.

Tolerances (the issue's requirements):

- flux calibration: the median of x1d / truth over 0.7-5.1 um within 3 % of 1 (measured
  1.001, 0.995, 0.995 for the three nods);
- errors: the standard deviation of (x1d - truth) / FLUX_ERROR, over the elements not
  marked DO_NOT_USE, within 10 % of 1 (measured 1.05, 1.01, 1.00);
- wavelengths: the centroid of each narrow emission line within a tenth of the resolution
  element of where the truth puts it for this source (its column, given the slit-centred
  wavelengths the pipeline assigns; measured within 0.04);
- nod subtraction: the mean of the nod-subtracted ``_cal`` over the slit's pixels away
  from the three nod positions below 1 % of the sky there;
- the source's place (SRCXPOS/SRCYPOS) within 0.05" of the truth, along and across;
- Level 3: the same flux and error tolerances for the combined ``_x1d`` (measured 0.997
  and 1.02), its errors those of one nod over about sqrt(3).
"""

from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.table import Table
from scipy.optimize import curve_fit
from sqlalchemy import select
from stdatamodels.jwst import datamodels as dm

from services.stage2.asn import parse_level2_asn
from services.stage2.spec2 import SPEC2, calibrate
from shared.catalog import Artifact, ArtifactKind, Product
from shared.datamodels import read_product
from shared.refdata import LocalReferences
from tests.slit_examples import edited, gaussian_line, run_in_process

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore::astropy.wcs.FITSFixedWarning")]

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "nirspec_fs.yaml"
NODS = tuple(f"jw04521001001_01101_0000{n}_nrs1" for n in (1, 2, 3))
LEVEL3 = "jw04521-o001_t001-s000000001_nirspec_clear-prism-s200a1-subs200a1"
BAND = (0.7, 5.1)
PIXEL_SCALE = 0.1  # arcsec
SLIT = (3.3, 0.2)  # S200A1's length and width, arcsec


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    plan = edited(EXAMPLE, simulation={"sky_level": 30.0})  # e-/s per pixel (the default's 0.2 x 150)
    return run_in_process(plan, tmp_path_factory.mktemp("nrsfs"))


def _truth(run, stem: str) -> Table:
    return Table.read(run["truth_dir"] / f"{stem}_truth_spectrum.ecsv")


def _x1d(run, stem: str) -> np.ndarray:
    return fits.getdata(run["out"] / f"{stem}_x1d.fits", "EXTRACT1D")


def _interp_truth(t: Table, wavelength: np.ndarray, column: str = "observed_jy") -> np.ndarray:
    order = np.argsort(t["wavelength"])
    return np.interp(wavelength, np.asarray(t["wavelength"])[order], np.asarray(t[column])[order])


def _usable(x: np.ndarray) -> np.ndarray:
    """The elements of a spectral table in the band not marked DO_NOT_USE (an element's DQ
    is the OR of its aperture's pixels: a jump or a warm pixel among them flags it too,
    and a 40 s exposure's 7 x 460 aperture pixels see about a hundred cosmic rays)."""
    return (np.isfinite(x["FLUX"]) & ((x["DQ"] & 1) == 0) & (x["WAVELENGTH"] > BAND[0])
            & (x["WAVELENGTH"] < BAND[1]))


def _compared(x: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    keep = _usable(x)
    return x[keep], truth[keep]


def _open(path: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the public data model reads it without complaint
        return dm.open(str(path))


def test_every_nod_gets_its_spec2_association_and_products(run):
    names = run["names"]
    asns = [n for n in names if n.endswith("_asn.json") and "_spec2_" in n]
    assert len(asns) == 3
    backgrounds = {}
    for name in asns:
        assert json.loads((run["out"] / name).read_text())["asn_rule"] == "candidate_Asn_Lv2NRSFSS"
        (product,) = parse_level2_asn((run["out"] / name).read_bytes(), name).products
        backgrounds[product.science] = set(product.backgrounds)
    assert backgrounds == {f"{stem}_rate.fits": {f"{other}_rate.fits" for other in NODS if other != stem}
                           for stem in NODS}
    for stem in NODS:
        for suffix in ("cal", "s2d"):  # as jwst writes them for the mode: a product of slits
            with _open(run["out"] / f"{stem}_{suffix}.fits") as opened:
                assert isinstance(opened, dm.MultiSlitModel) and len(opened.slits) == 1
                slit = opened.slits[0]
                assert (slit.name, slit.source_id, slit.source_type) == ("S200A1", 1, "POINT")
                assert slit.meta.bunit_data == "MJy"  # a point source: MJy per pixel, as the public photom
                assert slit.wavelength.shape == slit.data.shape
                assert opened.meta.instrument.fixed_slit == "S200A1" and opened.meta.instrument.grating == "PRISM"
                if suffix == "s2d":  # wavelength increases along x
                    assert np.nanmedian(np.diff(slit.wavelength, axis=1)) > 0
        with _open(run["out"] / f"{stem}_x1d.fits") as opened:
            assert isinstance(opened, dm.MultiSpecModel)
            assert opened.spec[0].source_type == "POINT" and opened.spec[0].name == "S200A1"
            assert opened.spec[0].spec_table.columns["FLUX"].unit == "Jy"
        header = fits.getheader(run["out"] / f"{stem}_cal.fits")
        assert {header[k] for k in ("S_BKDSUB", "S_WCS", "S_SRCTYP", "S_FLAT", "S_PTHLOS", "S_PHOTOM")} == {"COMPLETE"}
        assert header["R_SPCWCS"].endswith("specwcs_nrs1_fixedslit_sim.fits")
        assert header["R_PTHLOS"].endswith("pathloss_nrs1_fixedslit_sim.fits")
        assert fits.getval(run["out"] / f"{stem}_cal.fits", "DISPAXIS", "SCI") == 1
    with run["ctx"].catalog.session() as s:
        previews = s.scalars(select(Product.filename).join(Artifact).where(
            Artifact.kind == ArtifactKind.PREVIEW, Product.suffix.in_(("s2d", "x1d")), Product.level == 2)).all()
    assert len(set(previews)) == 6


@pytest.mark.parametrize("stem", NODS)
def test_flux_calibration_against_the_truth(run, stem):
    x = _x1d(run, stem)
    x, truth = _compared(x, _interp_truth(_truth(run, stem), x["WAVELENGTH"]))
    assert len(x) > 400
    ratio = float(np.median(x["FLUX"] / truth))
    spread = float(np.std((x["FLUX"] - truth) / x["FLUX_ERROR"]))
    print(f"{stem}: median flux / truth {ratio:.4f}, spread of (flux - truth) / error {spread:.3f}")
    assert abs(ratio - 1) < 0.03
    assert abs(spread - 1) < 0.10


@pytest.mark.parametrize("stem", NODS)
def test_line_centroids(run, stem):
    x, t = _x1d(run, stem), _truth(run, stem)
    narrow = [line for line in t.meta["lines"] if line["fwhm"] < line["resolution_element_um"]]
    assert len(narrow) == 2, "the example has two narrow lines to measure"
    good = np.isfinite(x["FLUX"])
    columns = np.asarray(t["column"], np.float64)
    for line in narrow:
        centre, resel = line["wavelength"], line["resolution_element_um"]
        near = good & (np.abs(x["WAVELENGTH"] - centre) < 3 * resel)
        wl, fl, err = x["WAVELENGTH"][near], x["FLUX"][near], x["FLUX_ERROR"][near]
        guess = (centre, resel / 2.355, float(fl.max() - np.median(fl)), float(np.median(fl)), 0.0)
        popt, _ = curve_fit(gaussian_line, wl, fl, p0=guess, sigma=err, absolute_sigma=True)
        # the source sits off the slit's centre line (target acquisition), which moves its
        # spectrum along x; the pipeline gives each column the wavelength of a centred
        # source: the line is expected at the wavelength of the column it falls on
        seen_at = float(np.interp(line["column"], columns, np.asarray(t["wavelength"])))
        offset = popt[0] - seen_at
        print(f"{stem}: line {centre} um measured at {popt[0]:.4f} um (expected {seen_at:.4f}), "
              f"{offset / resel:+.3f} resolution elements; the truth's shift {seen_at - centre:+.4f} um")
        # (the rest wavelength is not a bound here: target acquisition's 0.01" rms across a
        # 0.1" pixel moves a prism line by up to a tenth of its resolution element itself,
        # which the pipeline, knowing only the commanded place, cannot undo)
        assert abs(offset) < 0.1 * resel


def _slit_arrays(product) -> dict[str, np.ndarray]:
    """A spec2 product's arrays: those of its one slit (NIRSpec's MultiSlitModel)."""
    return product.slits[0].images if product.slits else product.images


def test_nod_subtraction_leaves_no_sky(run):
    """The first nod calibrated with and without its backgrounds (the other nods): the sky
    of the second, the residual of the first, over the slit's pixels away from the three
    nod positions."""
    out, sim = run["out"], run["sim"]
    refs = LocalReferences({}, Path(sim.reference_paths[0]).parent)
    science, *others = (read_product(out / f"{stem}_rate.fits") for stem in NODS)
    params = SPEC2.params(skip=("resample_spec", "extract_1d"))
    subtracted = _slit_arrays(calibrate(science, refs, backgrounds=others, params=params,
                                        software_version="test").cal)
    sky_only = _slit_arrays(calibrate(science, refs, params=params, software_version="test").cal)
    wl = subtracted["WAVELENGTH"]
    ny, nx = wl.shape
    trace_y = np.array([np.nanmean(np.flatnonzero(np.isfinite(wl[:, x]))) if np.isfinite(wl[:, x]).any() else np.nan
                        for x in range(nx)])
    along = np.arange(ny)[:, None] - trace_y[None, :]  # pixels from the slit's centre line
    nods = np.array([0.0, -1.0, 1.0]) / PIXEL_SCALE
    clear_of_nods = np.min(np.abs(along[None] - nods[:, None, None]), axis=0) > 4
    away = (np.isfinite(wl) & clear_of_nods & (np.abs(along) < 0.5 * SLIT[0] / PIXEL_SCALE - 2)
            & (wl > BAND[0]) & (wl < BAND[1]))
    for arrays in (subtracted, sky_only):
        away &= np.isfinite(arrays["SCI"]) & (arrays["DQ"] == 0)
    residual = float(np.mean(subtracted["SCI"][away]))
    sky = float(np.mean(sky_only["SCI"][away]))
    noise = float(np.std(subtracted["SCI"][away]) / np.sqrt(away.sum()))
    print(f"nod subtraction: residual {residual:.4g} MJy against the sky's {sky:.4g} "
          f"({residual / sky:+.2%}, its noise {noise / sky:.2%}) over {int(away.sum())} pixels")
    assert away.sum() > 500
    assert sky > 0
    assert abs(residual) < 0.01 * sky


@pytest.mark.parametrize("stem", NODS)
def test_source_position_in_the_slit(run, stem):
    """SRCXPOS/SRCYPOS as the public pipeline gives them for NIRSpec: the source's place
    from the slit's centre in units of its width (across, along the dispersion) and of its
    length, the same on the ``_cal``, ``_s2d`` and ``_x1d``."""
    truth = _truth(run, stem).meta
    cal = fits.getheader(run["out"] / f"{stem}_cal.fits", "SCI")
    across, along = cal["SRCXPOS"] * SLIT[1], cal["SRCYPOS"] * SLIT[0]
    print(f"{stem}: along {along:+.4f}\" (truth {truth['along_arcsec']:+.4f}\"), "
          f"across {across:+.4f}\" (truth {truth['across_arcsec']:+.4f}\")")
    assert abs(along - truth["along_arcsec"]) < 0.05 and abs(across - truth["across_arcsec"]) < 0.05
    for suffix, extname in (("s2d", "SCI"), ("x1d", "EXTRACT1D")):
        header = fits.getheader(run["out"] / f"{stem}_{suffix}.fits", extname)
        assert (header["SRCXPOS"], header["SRCYPOS"]) == (cal["SRCXPOS"], cal["SRCYPOS"])


def _opened_wcs(path: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with dm.open(str(path)) as opened:
            slit = opened.slits[0]
            wcs = copy.deepcopy(slit.meta.wcs)  # its lookup tables read before the file closes
            header = {**fits.getheader(path), **fits.getheader(path, "SCI")}
            return wcs, np.asarray(slit.wavelength, np.float64), header


@pytest.mark.parametrize("stem", NODS[:2])
def test_products_carry_their_spectral_wcs(run, stem):
    """The slit of a nod's ``_cal`` and ``_s2d`` carries a spectral gwcs taking the
    detector's own (x, y) although the dispersion runs along x: at the source's pixels the
    truth gives (its trace, on each column of the spectrum) it names the target within
    0.05" and each pixel's own WAVELENGTH; the way back lands on that wavelength's column
    and within 0.3 px of the source. The ``_s2d``'s row of the source and the Level-3
    ``_s2d``'s middle row (the source) name the target too."""
    truth = _truth(run, stem)
    columns, source_y = np.asarray(truth["column"]), np.asarray(truth["source_y"], np.float64)
    cal_wcs, cal_wl, header = _opened_wcs(run["out"] / f"{stem}_cal.fits")
    target = SkyCoord(header["TARG_RA"], header["TARG_DEC"], unit="deg")
    assert list(cal_wcs.available_frames) == ["detector", "v2v3", "world"]
    y = source_y - (header["SUBSTRT2"] - 1)  # window rows
    x = columns - (header["SUBSTRT1"] - 1)
    ra, dec, wl = cal_wcs(x.astype(np.float64), y)
    off = target.separation(SkyCoord(ra, dec, unit="deg")).to_value("arcsec")
    on_wl = cal_wl[np.round(y).astype(int), x]
    x_back, y_back = cal_wcs.invert(np.full(x.size, header["TARG_RA"]), np.full(x.size, header["TARG_DEC"]), wl)
    print(f"\n{stem}_cal: gwcs at the source {np.median(off):.4f}\" (max {off.max():.4f}\") from the target; "
          f"back: columns {np.abs(x_back - x).max():.1e}, rows {np.abs(y_back - y).max():.3f} px")
    assert off.max() < 0.05
    assert np.allclose(wl, on_wl, rtol=0, atol=1e-6)
    assert np.abs(x_back - x).max() < 1e-6 and np.abs(y_back - y).max() < 0.3
    s2d_wcs, s2d_wl, s2d_header = _opened_wcs(run["out"] / f"{stem}_s2d.fits")
    ny, nx = s2d_wl.shape
    # the grid's rows are pixels along the slit centred on the trace; the source's row:
    row = (ny - 1) / 2.0 + s2d_header["SRCYPOS"] * SLIT[0] / PIXEL_SCALE
    c = np.arange(nx, dtype=np.float64)
    ra, dec, wl = s2d_wcs(c, np.full(nx, row))
    off = target.separation(SkyCoord(ra, dec, unit="deg")).to_value("arcsec")
    assert np.nanmax(off) < 0.05
    assert np.allclose(wl, s2d_wl[int(round(row))], rtol=0, atol=1e-6, equal_nan=True)
    l3_wcs, l3_wl, _ = _opened_wcs(run["out"] / f"{LEVEL3}_s2d.fits")
    ny, nx = l3_wl.shape
    ra, dec, wl = l3_wcs(np.arange(nx, dtype=np.float64), np.full(nx, (ny - 1) / 2.0))
    off3 = target.separation(SkyCoord(ra, dec, unit="deg")).to_value("arcsec")
    print(f"{stem}_s2d: the source's row {np.nanmedian(off):.4f}\" from the target; Level 3 {np.nanmedian(off3):.4f}\"")
    assert np.nanmax(off3) < 0.05
    assert np.allclose(wl, l3_wl[ny // 2], rtol=0, atol=1e-6, equal_nan=True)


def test_level3_combines_the_nods_on_the_source(run):
    names = run["names"]
    [asn_name] = [n for n in names if n.endswith("_asn.json") and "_spec3_" in n]
    asn = json.loads((run["out"] / asn_name).read_text())
    # the public rule's name, with the source and slit left for stage 3 to fill in
    assert asn["asn_rule"] == "candidate_Asn_Lv3NRSFSS"
    assert asn["products"][0]["name"] == "jw04521-o001_t001-{source_id}_nirspec_clear-prism-{slit_name}-subs200a1"
    assert {(m["expname"], m["exptype"]) for m in asn["products"][0]["members"]} >= {
        (f"{n}_cal.fits", "science") for n in NODS}
    with _open(run["out"] / f"{LEVEL3}_s2d.fits") as opened:
        assert isinstance(opened, dm.MultiSlitModel)
        assert (opened.slits[0].name, opened.slits[0].source_id, opened.slits[0].source_type) == ("S200A1", 1, "POINT")
    with _open(run["out"] / f"{LEVEL3}_x1d.fits") as opened:
        assert isinstance(opened, dm.MultiSpecModel) and opened.spec[0].source_type == "POINT"
    header = fits.getheader(run["out"] / f"{LEVEL3}_x1d.fits")
    assert {header[k] for k in ("S_OUTLIR", "S_RESAMP", "S_EXTR1D", "S_COMB1D")} == {"COMPLETE"}
    for stem in NODS:  # outlier detection's members: the nods' _crf, laid out as their _cal
        with _open(run["out"] / f"{stem}_o001_crf.fits") as crf:
            assert isinstance(crf, dm.MultiSlitModel) and crf.meta.cal_step.outlier_detection == "COMPLETE"
            flagged = int(((crf.slits[0].dq & 16) > 0).sum())
        print(f"{stem}_o001_crf: {flagged} outlier(s)")
    # the combined slit, centred on the source: its brightest row is the middle one
    s2d = fits.getdata(run["out"] / f"{LEVEL3}_s2d.fits", "SCI")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the grid's outer rows lie beyond the slit
        profile = np.nanmedian(s2d, axis=1)
    assert int(np.nanargmax(profile)) == s2d.shape[0] // 2
    x = fits.getdata(run["out"] / f"{LEVEL3}_x1d.fits", "EXTRACT1D")
    truth = np.mean([_interp_truth(_truth(run, stem), x["WAVELENGTH"]) for stem in NODS], axis=0)
    keep = _usable(x)
    ratio = float(np.median(x["FLUX"][keep] / truth[keep]))
    spread = float(np.std(((x["FLUX"] - truth) / x["FLUX_ERROR"])[keep]))
    nod = _x1d(run, NODS[0])
    shrink = float(np.nanmedian(x["FLUX_ERROR"][keep] / np.interp(x["WAVELENGTH"][keep], nod["WAVELENGTH"],
                                                                   nod["FLUX_ERROR"])))
    print(f"Level 3: {int(keep.sum())} elements, median flux / truth {ratio:.4f}, spread {spread:.3f}, "
          f"errors {shrink:.3f} of one nod's")
    assert keep.sum() > 400
    assert abs(ratio - 1) < 0.03
    assert abs(spread - 1) < 0.10
    assert 0.5 < shrink < 0.7  # three nods: about 1 / sqrt(3)
    with run["ctx"].catalog.session() as s:
        previewed = set(s.scalars(select(Product.filename).join(Artifact).where(
            Artifact.kind == ArtifactKind.PREVIEW, Product.level == 3)).all())
    assert {f"{LEVEL3}_s2d.fits", f"{LEVEL3}_x1d.fits"} <= previewed


def test_spec2_refuses_what_it_cannot_calibrate(run):
    """Bad input gets a reason a person can act on: a slit the SPECWCS does not know, a
    window the slit misses."""
    from shared.errors import InputError
    from shared.refdata import ReferenceFileError

    refs = LocalReferences({}, Path(run["sim"].reference_paths[0]).parent)
    science = read_product(run["out"] / f"{NODS[0]}_rate.fits")
    unknown = type(science)(science.model_type, {**science.keywords, "FXD_SLIT": "S999A1"}, science.images)
    with pytest.raises(ReferenceFileError, match="no table for the exposure's slit FXD_SLIT=S999A1"):
        calibrate(unknown, refs, software_version="test")
    window = {k: v[:, :500] for k, v in science.images.items()}  # columns 0-499: the spectrum is on 1016-1475
    elsewhere = type(science)(science.model_type, {**science.keywords, "SUBSIZE1": 500}, window)
    with pytest.raises(InputError, match="does not fall on this readout window"):
        calibrate(elsewhere, refs, software_version="test")
