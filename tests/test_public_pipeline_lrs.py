"""The public pipeline (jwst's calwebb_spec2 and calwebb_spec3, offline) re-runs our MIRI LRS
slit spectra; its products and ours are scored against the simulator's truth side by side.

The chain is tests/test_spec2_lrs.py's (its ``run`` fixture): examples/miri_lrs.yaml, two
nods 1" either side of the slit centre, through the system in process (simulator ->
ingest -> detector1 -> the spec2 associations -> our calwebb_spec2). jwst's
``Spec2Pipeline`` then runs offline (``benchmarks._jwst``: every reference an override,
nothing asked of CRDS) on our archived spec2 associations (each nod's ``_rate`` as
science, the other's as background), with the simulator's references chosen by the
archive's rules: SPECWCS, DISTORTION, FLAT (P750L), PATHLOSS and PHOTOM, and an EXTRACT1D
(JSON) holding our extract_1d's aperture: a box of ``DEFAULT_WIDTH["MIR_LRS-FIXEDSLIT"]`` pixels along
the slit centred on the source, which jwst places from the dither offsets.

jwst's steps that run: assign_wcs, bkg_subtract, srctype, flat_field, pathloss, photom,
resample_spec and extract_1d; the others are skipped (``benchmarks._jwst.LRS_SPEC2_SKIP``, with
the reason), and the reference types that belong to other modes, or that our pipeline does not
use either, are N/A (``LRS_SPEC2_NOT_APPLICABLE``).

Our exposures carry their pointing as jwst reads it for this mode: about the slit's
reference point (APERNAME MIRIM_SLIT, V2_REF/V3_REF and RA_REF/DEC_REF/ROLL_REF there) with
XOFFSET/YOFFSET the target's place in the slit's ideal frame, where jwst's assign_wcs puts
the dithered position and extract_1d centres its aperture. jwst gets our files as they are
archived.

What must hold (figures measured with the example's seed, 13):

- the same wavelengths: jwst's assign_wcs gives every pixel on the slit the wavelength of
  ours and of the truth's row within 0.01 pixel of dispersion (measured 1e-5), and its
  ``_x1d`` elements the wavelengths of ours (measured 1e-5 pixel);
- the same calibration: over the pixels both calibrate, |SCI_ours - SCI_jwst| / ERR_ours
  <= 0.05 (measured 0.018, at the source: our path loss is taken at the source's place
  across the slit, -0.01 px, between the grid's columns; jwst's at the slit's centre
  line), and jwst calibrates at least 99 % of our pixels;
- both extract the source: jwst's aperture centre on the sky (SLIT_RA/SLIT_DEC) within
  0.01" of the target (measured 0.001");
- against the truth, over 5.2-14.5 um as tests/test_spec2_lrs.py scores ours: jwst's median
  flux ratio within 3 % of 1 (measured 0.9965 and 1.0054; ours 0.9981 and 1.0072), ours no
  worse (|ours - 1| <= |jwst - 1| + 0.01), and the two spectra agree element by element
  (median jwst / ours within 0.5 % of 1: measured 0.9986 and 0.9997); the spread of
  (flux - truth) / error no farther from 1 than jwst's + 0.05 (ours 1.04 and 1.00, jwst
  1.45 and 1.44: jwst's FLUX_ERROR is 0.75 of ours, because jwst's bkg_subtract subtracts
  the other nod but keeps the science exposure's variance alone, by design, so its ERR is
  0.72 of ours in the aperture); the narrow lines' centroids within 0.1 resolution element
  of the truth for both, and within 0.03 of each other (measured <= 0.011).

- the same spectral WCS: our ``_cal``'s gwcs (``meta.wcs``) and the one jwst's assign_wcs
  builds from our ``_rate`` name the same sky position and wavelength for the pixels on the
  slit (measured: identical to 0.001 mas and 4e-13 pixel of dispersion; jwst composes it
  through its alpha/beta frame, we do not);
- stage 3: jwst's calwebb_spec3 takes our archived spec3 association and our ``_cal`` as they
  are (outlier_detection, resample_spec, extract_1d; master_background skipped, the nods
  being subtracted in spec2: ``benchmarks._jwst.LRS_SPEC3_SKIP``); its Level-3 ``_x1d``
  agrees with ours (median ratio 0.999, FLUX_ERROR 0.986 of ours) and with the truth
  (0.9989; ours 0.9985), its aperture on the target (0.0001").

Figures are printed (``-s``).
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.io import fits
from scipy.optimize import curve_fit
from stdatamodels.jwst import datamodels as dm

from benchmarks._jwst import (
    LRS_SPEC2_NOT_APPLICABLE,
    LRS_SPEC2_SKIP,
    LRS_SPEC3_NOT_APPLICABLE,
    LRS_SPEC3_SKIP,
    lrs_extract1d_reference,
    run_pipeline,
    step_overrides,
)
from services.stage2.spec2 import SPEC2
from shared.datamodels import read_product
from shared.refdata import LocalReferences
from shared.spectra.extract import DEFAULT_WIDTH
from tests.slit_examples import gaussian_line
from tests.test_spec2_lrs import (
    BAND,
    LEVEL3,
    NODS,
    _compared,
    _opened_wcs,
    _truth,
    _x1d,
)
from tests.test_spec2_lrs import run as run  # noqa: F401  (the LRS chain through the system, shared)

pytestmark = [pytest.mark.integration, pytest.mark.public,
              pytest.mark.filterwarnings("ignore::astropy.wcs.FITSFixedWarning")]

@pytest.fixture(scope="module")
def lrs(run, tmp_path_factory):  # noqa: F811  (the fixture imported above)
    """jwst's calwebb_spec2 on our archived spec2 associations, beside our products."""
    root = tmp_path_factory.mktemp("public-lrs")
    inputs = root / "inputs"
    inputs.mkdir()
    refs_dir = Path(run["sim"].reference_paths[0]).parent
    keywords = dict(read_product(run["out"] / f"{NODS[0]}_rate.fits").keywords)
    chosen, _ = LocalReferences(refs_dir=refs_dir).choose(keywords, list(SPEC2.all_reftypes))
    refs = {t: c.path for t, c in chosen.items() if c.path is not None}
    refs["extract1d"] = lrs_extract1d_reference(root / "extract1d.json", DEFAULT_WIDTH["MIR_LRS-FIXEDSLIT"])
    for stem in NODS:  # our archived _rate, unchanged
        shutil.copy(run["out"] / f"{stem}_rate.fits", inputs / f"{stem}_rate.fits")
    asns = [shutil.copy(p, inputs / p.name) for p in sorted(run["out"].glob("*_spec2_*_asn.json"))]
    assert len(asns) == len(NODS)
    steps, ran = step_overrides("calwebb_spec2", refs, LRS_SPEC2_SKIP, LRS_SPEC2_NOT_APPLICABLE)
    run_pipeline("calwebb_spec2", asns, steps, root / "jwst", root / "crds", root / "jwst-spec2.log")
    return {**run, "jwst": root / "jwst", "refs": refs, "ran": ran}


@pytest.fixture(scope="module")
def spec3(run, tmp_path_factory):  # noqa: F811  (the fixture imported above)
    """jwst's calwebb_spec3 on our archived spec3 association: our nods' ``_cal`` as they are
    archived (with their ``_x1d``, the association's background members)."""
    root = tmp_path_factory.mktemp("public-lrs-spec3")
    inputs = root / "inputs"
    inputs.mkdir()
    [asn] = sorted(run["out"].glob("*_spec3_*_asn.json"))
    shutil.copy(asn, inputs / asn.name)
    for stem in NODS:
        for suffix in ("cal", "x1d"):
            shutil.copy(run["out"] / f"{stem}_{suffix}.fits", inputs / f"{stem}_{suffix}.fits")
    refs = {"extract1d": lrs_extract1d_reference(root / "extract1d.json", DEFAULT_WIDTH["MIR_LRS-FIXEDSLIT"])}
    steps, ran = step_overrides("calwebb_spec3", refs, LRS_SPEC3_SKIP, LRS_SPEC3_NOT_APPLICABLE)
    run_pipeline("calwebb_spec3", [inputs / asn.name], steps, root / "jwst", root / "crds", root / "jwst-spec3.log")
    return {**run, "jwst": root / "jwst", "ran": ran}


def _jwst_run(lrs) -> dict:
    """``lrs`` with jwst's products where tests/test_spec2_lrs.py looks for ours."""
    return {**lrs, "out": lrs["jwst"]}


def _dispersion(truth) -> np.ndarray:
    """|d lambda / d row| (um per pixel) at each truth row."""
    return np.abs(np.gradient(np.asarray(truth["wavelength"], np.float64)))


def test_jwst_calibrates_our_files(lrs):
    """jwst's products open; the steps that run are COMPLETE with our references; its
    extraction aperture is centred on the target (SLIT_RA/SLIT_DEC within 0.01"), from our
    headers' pointing and XOFFSET/YOFFSET."""
    assert lrs["ran"] == ["assign_wcs", "bkg_subtract", "flat_field", "srctype", "pathloss", "photom",
                          "resample_spec", "extract_1d"]
    expected = {"cal": dm.SlitModel, "s2d": dm.SlitModel, "x1d": dm.MultiSpecModel}
    for stem in NODS:
        for suffix, model in expected.items():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with dm.open(str(lrs["jwst"] / f"{stem}_{suffix}.fits")) as opened:
                    assert isinstance(opened, model)
        header = fits.getheader(lrs["jwst"] / f"{stem}_cal.fits")
        assert {header[k] for k in ("S_WCS", "S_BKDSUB", "S_SRCTYP", "S_FLAT", "S_PTHLOS", "S_PHOTOM")} == {"COMPLETE"}
        for key, reftype in (("R_SPCWCS", "specwcs"), ("R_PTHLOS", "pathloss"), ("R_PHOTOM", "photom"),
                             ("R_FLAT", "flat"), ("R_DISTOR", "distortion")):
            assert header[key].endswith(Path(lrs["refs"][reftype]).name)
        assert fits.getval(lrs["jwst"] / f"{stem}_s2d.fits", "S_RESAMP") == "COMPLETE"
        ext = fits.getheader(lrs["jwst"] / f"{stem}_x1d.fits", "EXTRACT1D")
        assert fits.getval(lrs["jwst"] / f"{stem}_x1d.fits", "S_EXTR1D") == "COMPLETE"
        assert ext["TUNIT2"] == "Jy" and ext["SRCTYPE"] == "POINT"
        target = SkyCoord(header["TARG_RA"], header["TARG_DEC"], unit="deg")
        centre = SkyCoord(ext["SLIT_RA"], ext["SLIT_DEC"], unit="deg")
        width = ext["EXTRXSTP"] - ext["EXTRXSTR"] + 1
        print(f"  jwst's aperture: {width:g} px wide, centred {target.separation(centre).to_value('arcsec'):.4f}\" "
              f"from the target")
        assert width == pytest.approx(DEFAULT_WIDTH["MIR_LRS-FIXEDSLIT"])
        assert target.separation(centre).to_value("arcsec") < 0.01


def test_wavelengths_agree(lrs):
    """jwst's assign_wcs gives every pixel both have on the slit the wavelength ours and
    the truth give its row, within 0.01 pixel of dispersion; its ``_x1d`` elements carry
    the wavelengths of ours."""
    for stem in NODS:
        truth = _truth(lrs, stem)
        rows, row_wavelength = np.asarray(truth["row"]), np.asarray(truth["wavelength"], np.float64)
        dispersion = _dispersion(truth)[:, None]  # um per pixel, per truth row
        ours = fits.getdata(lrs["out"] / f"{stem}_cal.fits", "WAVELENGTH")[rows].astype(np.float64)
        theirs = fits.getdata(lrs["jwst"] / f"{stem}_cal.fits", "WAVELENGTH")[rows].astype(np.float64)
        both, on_slit = np.isfinite(ours) & np.isfinite(theirs), np.isfinite(theirs)
        vs_ours = (np.abs(theirs - ours) / dispersion)[both]
        vs_truth = (np.abs(theirs - row_wavelength[:, None]) / dispersion)[on_slit]
        x_ours, x_jwst = (np.sort(_x1d(r, stem)["WAVELENGTH"]) for r in (lrs, _jwst_run(lrs)))
        assert x_ours.shape == x_jwst.shape
        order = np.argsort(row_wavelength)
        x1d = np.abs(x_jwst - x_ours) / np.interp(x_ours, row_wavelength[order], dispersion[order, 0])
        print(f"\n{stem}: jwst's wavelengths - ours, max {vs_ours.max():.1e} px over {both.sum()} pixels; "
              f"- the truth's, max {vs_truth.max():.1e} px; x1d elements - ours, max {x1d.max():.1e} px")
        assert both.sum() > 0.9 * np.isfinite(ours).sum()
        assert vs_ours.max() < 0.01 and vs_truth.max() < 0.01 and x1d.max() < 0.01


def test_cal_agrees(lrs):
    """Over the pixels both calibrate: |SCI_ours - SCI_jwst| / ERR_ours <= 0.05, and jwst
    calibrates at least 99 % of our pixels. (ERR differs by design: printed.)"""
    for stem in NODS:
        ours, theirs = (read_product(d / f"{stem}_cal.fits") for d in (lrs["out"], lrs["jwst"]))
        fo, fj = np.isfinite(ours.images["SCI"]), np.isfinite(theirs.images["SCI"])
        both = fo & fj
        diff = np.abs(ours.images["SCI"] - theirs.images["SCI"])[both] / ours.images["ERR"][both]
        truth = _truth(lrs, stem)
        aperture = (np.asarray(truth["row"])[:, None],
                    np.round(np.asarray(truth["source_x"]))[:, None].astype(int) + np.arange(-6, 7)[None, :])
        err_ratio = float(np.nanmedian(theirs.images["ERR"][aperture] / ours.images["ERR"][aperture]))
        print(f"\n{stem}_cal: max |ours - jwst| / ERR {diff.max():.3f} (median {np.median(diff):.1e}) over "
              f"{both.sum()} pixels; ours calibrates {fo.sum()}, jwst {fj.sum()}; ERR jwst / ours in the "
              f"aperture {err_ratio:.3f}")
        assert both.sum() >= 0.99 * fo.sum()
        assert diff.max() <= 0.05


def _line_offsets(run, stem: str) -> list[tuple[float, float]]:
    """(wavelength, offset in resolution elements) of each narrow line's centroid from
    where the truth puts it, measured as tests/test_spec2_lrs.py measures ours."""
    x, t = _x1d(run, stem), _truth(run, stem)
    good = np.isfinite(x["FLUX"])
    rows = np.asarray(t["row"], np.float64)
    order = np.argsort(t["source_wavelength"])
    out = []
    for line in (line for line in t.meta["lines"] if line["fwhm"] < line["resolution_element_um"]):
        centre, resel = line["wavelength"], line["resolution_element_um"]
        near = good & (np.abs(x["WAVELENGTH"] - centre) < 3 * resel)
        wl, fl, err = x["WAVELENGTH"][near], x["FLUX"][near], x["FLUX_ERROR"][near]
        guess = (centre, resel / 2.355, float(fl.max() - np.median(fl)), float(np.median(fl)), 0.0)
        popt, _ = curve_fit(gaussian_line, wl, fl, p0=guess, sigma=err, absolute_sigma=True)
        row = np.interp(centre, np.asarray(t["source_wavelength"])[order], rows[order])
        seen_at = float(np.interp(row, rows, np.asarray(t["wavelength"])))
        out.append((centre, (popt[0] - seen_at) / resel))
    return out


@pytest.mark.parametrize("stem", NODS)
def test_x1d_against_the_truth_beside_ours(lrs, stem):
    """Both ``_x1d`` scored as tests/test_spec2_lrs.py scores ours (over 5.2-14.5 um, each
    product's elements without DQ flags): jwst's median flux ratio within 3 % of 1 and ours
    no worse (+ 0.01); the two agree element by element (median ratio within 0.5 %); our
    spread of (flux - truth) / error no farther from 1 than jwst's + 0.05; line centroids
    within 0.1 resolution element of the truth for both and within 0.03 of each other."""
    figures = {}
    for name, where in (("ours", lrs), ("jwst", _jwst_run(lrs))):
        x, truth = _compared(where, stem)
        figures[name] = {"n": len(x), "ratio": float(np.median(x["FLUX"] / truth)),
                         "spread": float(np.std((x["FLUX"] - truth) / x["FLUX_ERROR"])),
                         "lines": _line_offsets(where, stem)}
    x_ours, x_jwst = (x[np.argsort(x["WAVELENGTH"])] for x in (_x1d(lrs, stem), _x1d(_jwst_run(lrs), stem)))
    common = ((x_ours["DQ"] == 0) & (x_jwst["DQ"] == 0) & (x_ours["WAVELENGTH"] > BAND[0])
              & (x_ours["WAVELENGTH"] < BAND[1]))
    agreement = float(np.median(x_jwst["FLUX"][common] / x_ours["FLUX"][common]))
    error_ratio = float(np.median(x_jwst["FLUX_ERROR"][common] / x_ours["FLUX_ERROR"][common]))
    print()
    for name, f in figures.items():
        lines = ", ".join(f"{w} um {o:+.3f}" for w, o in f["lines"])
        print(f"{stem} {name}: median flux / truth {f['ratio']:.4f}, spread of (flux - truth) / error "
              f"{f['spread']:.3f} over {f['n']} elements; line centroids - truth (resolution elements): {lines}")
    print(f"{stem}: jwst / ours element by element: flux {agreement:.4f}, FLUX_ERROR {error_ratio:.3f}")
    ours, jwst = figures["ours"], figures["jwst"]
    assert abs(jwst["ratio"] - 1) < 0.03
    assert abs(ours["ratio"] - 1) <= abs(jwst["ratio"] - 1) + 0.01
    assert abs(agreement - 1) < 0.005
    assert abs(ours["spread"] - 1) <= abs(jwst["spread"] - 1) + 0.05
    for (wl, o), (_, j) in zip(ours["lines"], jwst["lines"], strict=True):
        assert abs(o) < 0.1 and abs(j) < 0.1, wl
        assert abs(o - j) < 0.03, wl


@pytest.mark.parametrize("stem", NODS)
def test_our_spectral_wcs_is_jwsts(lrs, stem):
    """Our ``_cal``'s gwcs (meta.wcs) and the one jwst's assign_wcs builds from the same
    ``_rate`` and references name the same sky position and wavelength for every pixel on
    the slit (its spectrum's rows, within half the slit's length of the trace less a
    pixel): within 1 mas (measured 0.01 mas) and 0.001 pixel of dispersion (measured 1e-5)."""
    ours, _, _ = _opened_wcs(lrs["out"] / f"{stem}_cal.fits")
    theirs, _, _ = _opened_wcs(lrs["jwst"] / f"{stem}_cal.fits")
    truth = _truth(lrs, stem)
    rows = np.asarray(truth["row"], np.float64)
    trace = np.asarray(truth["trace_x"], np.float64)
    half = 0.5 * 4.7 / 0.11 - 1.0
    y = np.repeat(rows, 9)
    x = (trace[:, None] + np.linspace(-half, half, 9)[None, :]).ravel()
    ra_o, dec_o, wl_o = ours(x, y)
    ra_j, dec_j, wl_j = theirs(x, y)
    sep = SkyCoord(ra_o, dec_o, unit="deg").separation(SkyCoord(ra_j, dec_j, unit="deg")).to_value("mas")
    dispersion = np.repeat(_dispersion(truth), 9)
    dwl = np.abs(wl_o - wl_j) / dispersion
    print(f"\n{stem}: our gwcs - jwst's over {x.size} pixels on the slit: sky max {sep.max():.3f} mas, "
          f"wavelength max {dwl.max():.1e} px of dispersion")
    assert np.isfinite(sep).all() and sep.max() < 1.0
    assert dwl.max() < 1e-3


def test_jwst_spec3_combines_our_cal(spec3):
    """jwst's calwebb_spec3 takes our archived spec3 association and our ``_cal`` as they are
    (their gwcs, SRCXPOS/SRCYPOS, DITH_RA/DITH_DEC): outlier detection, resample_spec and
    extract_1d COMPLETE; its outlier detection, like ours, finds (almost) nothing to flag
    in the two clean nods (at most 5 pixels each; measured 0 and 0). Its Level-3 ``_x1d`` has our wavelengths (within 1e-4 pixel of
    dispersion), its aperture centred on the target (SLIT_RA/SLIT_DEC within 0.01"), and
    agrees with ours element by element (median ratio within 0.5 % of 1: measured 1.000)
    and with the truth (median within 3 %, ours no worse + 0.01)."""
    assert spec3["ran"] == ["outlier_detection", "resample_spec", "extract_1d", "combine_1d"]
    x1d_path = spec3["jwst"] / f"{LEVEL3}_x1d.fits"
    header = fits.getheader(x1d_path)
    assert {header[k] for k in ("S_OUTLIR", "S_RESAMP", "S_EXTR1D")} == {"COMPLETE"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with dm.open(str(spec3["jwst"] / f"{LEVEL3}_s2d.fits")) as s2d:
            assert isinstance(s2d, dm.SlitModel)
    ext = fits.getheader(x1d_path, "EXTRACT1D")
    target = SkyCoord(header["TARG_RA"], header["TARG_DEC"], unit="deg")
    off = target.separation(SkyCoord(ext["SLIT_RA"], ext["SLIT_DEC"], unit="deg")).to_value("arcsec")
    ours = fits.getdata(spec3["out"] / f"{LEVEL3}_x1d.fits", "EXTRACT1D")
    theirs = fits.getdata(x1d_path, "EXTRACT1D")
    ours, theirs = (x[np.argsort(x["WAVELENGTH"])] for x in (ours, theirs))
    assert ours.shape == theirs.shape
    truths = [_truth(spec3, stem) for stem in NODS]
    order = np.argsort(truths[0]["row"])
    dispersion = np.interp(ours["WAVELENGTH"], np.asarray(truths[0]["wavelength"])[order[::-1]],
                           _dispersion(truths[0])[order[::-1]])
    shift = np.abs(theirs["WAVELENGTH"] - ours["WAVELENGTH"]) / dispersion
    common = ((ours["DQ"] == 0) & np.isfinite(theirs["FLUX"]) & (ours["WAVELENGTH"] > BAND[0])
              & (ours["WAVELENGTH"] < BAND[1]))
    agreement = float(np.median(theirs["FLUX"][common] / ours["FLUX"][common]))
    errors = float(np.median(theirs["FLUX_ERROR"][common] / ours["FLUX_ERROR"][common]))
    wl_order = np.argsort(truths[0]["wavelength"])
    truth = np.mean([np.interp(ours["WAVELENGTH"], np.asarray(t["wavelength"])[wl_order],
                               np.asarray(t["observed_jy"])[wl_order]) for t in truths], axis=0)
    ratio_ours = float(np.median(ours["FLUX"][common] / truth[common]))
    ratio_jwst = float(np.median(theirs["FLUX"][common] / truth[common]))
    print(f"\njwst spec3 on our _cal: aperture {off:.4f}\" from the target; wavelengths - ours max {shift.max():.1e} "
          f"px; jwst / ours: flux {agreement:.4f}, FLUX_ERROR {errors:.3f} over {int(common.sum())} elements; "
          f"flux / truth: jwst {ratio_jwst:.4f}, ours {ratio_ours:.4f}")
    flagged = {who: [int(((fits.getdata(d / f"{stem}_o001_crf.fits", "DQ") & 16) > 0).sum()) for stem in NODS]
               for who, d in (("jwst", spec3["jwst"]), ("ours", spec3["out"]))}
    print(f"outliers flagged per nod: jwst {flagged['jwst']}, ours {flagged['ours']}")
    assert max(flagged["jwst"] + flagged["ours"]) <= 5
    assert off < 0.01
    assert shift.max() < 1e-4
    assert abs(agreement - 1) < 0.005
    assert abs(ratio_jwst - 1) < 0.03
    assert abs(ratio_ours - 1) <= abs(ratio_jwst - 1) + 0.01
