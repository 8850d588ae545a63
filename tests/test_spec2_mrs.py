"""calwebb_spec2 on a MIRI MRS exposure (services/stage2/ifu2.py): the steps, the products as
the public models, and the cube's spectrum against the simulator's truth.

The ``_rate`` is made here from the simulator's noiseless scene (services/simulator/mrs.py)
through the mean gain, with the simulator's MRS references (services/simulator/mrs_refs.py)
loaded as the pipeline loads them; no FLAT (the scene has no pixel response), so
flat_field is skipped for want of one. What must hold (figures printed with ``-s``):

- a point source (SRCTYAPT POINT) at the target's position: the ``_x1d`` (channel 1, the
  detector's first, as the public spec2 saves its cube) within 3 % median of the truth
  (its f_nu through the line-spread function), its narrow line within 0.1 resolution
  element;
- the products open in stdatamodels as IFUImageModel, IFUCubeModel and MultiSpecModel, the
  cube's WCS places the target within 0.1 spaxel of where the aperture was centred;
- an exposure without a pointing gets no cube and says why; a window that is not the full
  frame is refused with a reason.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from astropy.wcs import WCS

from services.simulator import mrs
from services.simulator.detector_model import make_detector_model
from services.simulator.mrs_refs import write_mrs_references
from services.simulator.optical_refs import mean_gain
from services.simulator.spectrograph import SourceSpectrum, SpectralLine
from services.stage2.spec2 import run_spec2
from shared.datamodels import FitsProduct, read_product, write_product
from shared.errors import InputError
from shared.imaging_wcs import TelescopePointing, v23tosky
from shared.instruments import detector as detector_info
from shared.refdata.loading import load_reference
from shared.refdata.window import Window

DETECTOR, BAND = "MIRIFUSHORT", "SHORT"
LINE = SpectralLine(5.42, 0.0003, 1.5)
SOURCE = mrs.PointSource(SourceSpectrum(0.03, slope=-1.0, lines=(LINE,)), alpha=0.21, beta=-0.14)


@pytest.fixture(scope="module")
def setting(tmp_path_factory):
    out = tmp_path_factory.mktemp("mrs_spec2")
    detector_model = make_detector_model(detector_info(DETECTOR), 7)
    files = write_mrs_references(detector_model, out)
    window = Window(1, 1, 1032, 1024)
    refs = {}
    for ref in files:
        name = str(ref.path.name)
        if ref.reftype.upper() in ("DISTORTION", "SPECWCS", "REGIONS", "PHOTOM") and f"_{BAND.lower()}_" not in name:
            continue
        refs[ref.reftype.lower()] = load_reference(ref.reftype.lower(), ref.path, window, (1024, 1032))
    return refs, mean_gain(detector_model)


def _rate(gain: float, *, pointing: bool = True) -> FitsProduct:
    info = detector_info(DETECTOR)
    p = TelescopePointing(80.48, -69.49, 37.0, float(info.v2_ref), float(info.v3_ref))
    v2, v3 = mrs.alpha_beta_to_v2v3(SOURCE.alpha, SOURCE.beta, DETECTOR)
    ra, dec = (float(v) for v in v23tosky(p)(v2, v3))
    image = mrs.render_mrs(DETECTOR, BAND, points=[SOURCE]).image
    sci = (image / gain).astype(np.float32)
    kw = {"FILENAME": "jw01234001001_01101_00001_mirifushort_rate.fits", "INSTRUME": "MIRI", "DETECTOR": DETECTOR,
          "EXP_TYPE": "MIR_MRS", "CHANNEL": "12", "BAND": BAND, "SUBARRAY": "FULL", "SUBSTRT1": 1, "SUBSTRT2": 1,
          "SUBSIZE1": 1032, "SUBSIZE2": 1024, "SRCTYAPT": "POINT", "TARG_RA": ra, "TARG_DEC": dec,
          "DATE-OBS": "2024-03-01", "TIME-OBS": "12:00:00", "BUNIT": "DN/s"}
    if pointing:
        kw.update({"RA_REF": p.ra_ref, "DEC_REF": p.dec_ref, "ROLL_REF": p.roll_ref, "V2_REF": p.v2_ref,
                   "V3_REF": p.v3_ref})
    var = np.full(sci.shape, 1e-4, np.float32)
    return FitsProduct("ImageModel", keywords=kw, images={
        "SCI": sci, "DQ": np.zeros(sci.shape, np.uint32), "ERR": np.sqrt(2 * var), "VAR_POISSON": var,
        "VAR_RNOISE": var})


def test_point_source_spectrum_and_products(setting, tmp_path):
    refs, gain = setting
    out = run_spec2(_rate(gain), refs, software_version="test")
    status = {k: out.cal.keywords.get(k) for k in ("S_WCS", "S_FLAT", "S_SRCTYP", "S_PHOTOM", "S_IFUCUB")}
    assert status == {"S_WCS": "COMPLETE", "S_FLAT": "SKIPPED", "S_SRCTYP": "COMPLETE", "S_PHOTOM": "COMPLETE",
                      "S_IFUCUB": None}, status  # the _cal is the exposure through photom, as the public one
    assert out.s3d.keywords["S_IFUCUB"] == "COMPLETE" and out.x1d.keywords["S_EXTR1D"] == "COMPLETE"
    assert [s for s, _ in out.products()] == ["cal", "s3d", "x1d"]
    assert out.cal.keywords["SRCTYPE"] == "POINT" and out.cal.keywords["S_REGION"].startswith("POLYGON ICRS")

    table = out.x1d.spectra[0].table
    wl, flux = table["WAVELENGTH"], table["FLUX"]
    ch = mrs.CHANNELS[1]
    sl = ch.slice((ch.n_slices + 1) // 2, BAND)
    rows = np.arange(12.0, 1012.0)
    truth = np.interp(wl, sl.wavelength(rows), mrs.point_source_truth(SOURCE, sl, rows))
    lo, hi = ch.bands[BAND]
    inside = (wl > lo + 0.01) & (wl < hi - 0.01) & np.isfinite(flux)
    ratio = flux[inside] / truth[inside]
    element = float(sl.resolution_element(LINE.wavelength))
    near = np.abs(wl - LINE.wavelength) < 2.0 * element
    edge = (np.abs(wl - LINE.wavelength) >= 2.0 * element) & (np.abs(wl - LINE.wavelength) < 4.0 * element)
    cont = np.polyval(np.polyfit(wl[edge], flux[edge], 1), wl[near])
    centroid = float(np.sum(wl[near] * (flux[near] - cont)) / np.sum(flux[near] - cont))
    print(f"\nspec2 MRS x1d: median flux/truth {np.median(ratio):.4f}, median |ratio - 1| "
          f"{np.median(np.abs(ratio - 1)):.4f}; line off by {abs(centroid - LINE.wavelength) / element:.3f} element")
    assert np.median(np.abs(ratio - 1.0)) <= 0.03
    assert abs(centroid - LINE.wavelength) <= 0.1 * element

    # the products, written and opened as the public models
    from stdatamodels.jwst import datamodels as dm

    paths = {}
    for suffix, product in out.products():
        paths[suffix] = tmp_path / f"x_{suffix}.fits"
        write_product(paths[suffix], product)
    with dm.open(paths["cal"]) as cal:
        assert type(cal).__name__ == "IFUImageModel" and cal.meta.instrument.band == BAND
    with dm.open(paths["s3d"]) as cube:
        assert type(cube).__name__ == "IFUCubeModel"
        assert cube.data.ndim == 3 and cube.weightmap.shape == cube.data.shape
        assert cube.meta.bunit_data == "MJy/sr"
    with dm.open(paths["x1d"]) as x1d:
        assert type(x1d).__name__ == "MultiSpecModel" and len(x1d.spec) == 1
    # the cube's FITS WCS: the target where extract_1d centred its aperture
    s3d = read_product(paths["s3d"])
    header = {**s3d.keywords, **s3d.hdu_keywords.get("SCI", {})}
    wcs = WCS({k: v for k, v in header.items() if k.startswith(("CTYPE", "CRPIX", "CRVAL", "CDELT", "CUNIT", "PC",
                                                                  "WCSAXES"))})
    x, y, _ = wcs.all_world2pix(out.cal.keywords["TARG_RA"], out.cal.keywords["TARG_DEC"], 5.3e-6, 0)
    srcx, srcy = out.x1d.spectra[0].keywords["SRCXPOS"], out.x1d.spectra[0].keywords["SRCYPOS"]
    assert math.hypot(float(x) - srcx, float(y) - srcy) < 0.1


def test_without_a_pointing_there_is_no_cube(setting):
    refs, gain = setting
    out = run_spec2(_rate(gain, pointing=False), refs, software_version="test")
    assert out.record.status_cards(None)["S_IFUCUB"] == "SKIPPED" and out.s3d is None and out.x1d is None
    assert any("no pointing" in n for n in out.record.notes)


def test_a_window_is_refused(setting):
    refs, gain = setting
    rate = _rate(gain)
    rate.images = {k: v[:512] for k, v in rate.images.items()}
    rate.keywords["SUBSIZE2"] = 512
    with pytest.raises(InputError, match="full frame"):
        run_spec2(rate, refs, software_version="test")
