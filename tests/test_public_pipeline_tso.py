"""The public pipeline (jwst's calwebb_spec2, offline) re-runs our MIRI LRS slitless time
series; its ``_x1dints`` and ours are scored against the simulator's truth side by side.

The chain is tests/test_tso_spectra.py's (its ``run`` fixture): examples/miri_lrs_tso.yaml,
60 integrations in four segments, through the system in process. jwst's ``Spec2Pipeline``
then runs offline (``benchmarks._jwst``) on our archived spec2 associations (each
segment's ``_rateints``, as archived) with the simulator's references chosen by the
archive's rules (SPECWCS with the slitless reference point, DISTORTION, FLAT, PHOTOM) and
an EXTRACT1D reference holding our extract_1d's aperture in the window's columns: jwst
cannot place a slitless source from the WCS ("Source position cannot be found for
EXP_TYPE MIR_LRS-SLITLESS"), so the box of ``DEFAULT_WIDTH`` pixels is centred on the
column where our assign_wcs put the source (SRCXPOS), with our background regions beside
it. jwst's steps that run: assign_wcs, flat_field, srctype, photom and extract_1d
(``benchmarks._jwst.LRS_SLITLESS_SPEC2_SKIP`` says why the others do not).

What must hold (measured with the example's seed, 21):

- jwst's ``_x1dints`` is the public layout of ours: a row per integration, the same
  integration numbers, the same wavelengths (to 1e-4 um: measured 0);
- the same flux: median jwst / ours within 1 % of 1 over 5-12 um (measured 1.0000), and
  the errors within 10 % (measured 0.997);
- the white-light transit depth (the flux over 5-12 um fitted with the truth's transit
  shape): jwst's within 3 % of the truth, ours no farther from it than jwst's + 1 %
  (measured: jwst 1.011 %, ours 1.011 %, the truth 1.022 %).
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from stdatamodels.jwst import datamodels as dm

from benchmarks._jwst import (
    LRS_SLITLESS_SPEC2_SKIP,
    LRS_SPEC2_NOT_APPLICABLE,
    run_pipeline,
    slitless_extract1d_reference,
    step_overrides,
)
from services.stage2.spec2 import SPEC2
from shared.datamodels import read_product
from shared.refdata import LocalReferences
from shared.spectra.extract import DEFAULT_BACKGROUND, DEFAULT_WIDTH
from tests.test_tso_spectra import SERIES, STEM
from tests.test_tso_spectra import run as run  # noqa: F401  (the time series through the system, shared)

pytestmark = [pytest.mark.integration, pytest.mark.public,
              pytest.mark.filterwarnings("ignore::astropy.wcs.FITSFixedWarning")]

MODE = "MIR_LRS-SLITLESS"
BAND = (5.0, 12.0)


@pytest.fixture(scope="module")
def jwst(run, tmp_path_factory):  # noqa: F811  (the fixture imported above)
    """jwst's calwebb_spec2 on our archived spec2 associations (one per segment)."""
    root = tmp_path_factory.mktemp("public-tso")
    inputs = root / "inputs"
    inputs.mkdir()
    refs_dir = Path(run["sim"].reference_paths[0]).parent
    segments = sorted(run["out"].glob(f"{STEM}-seg*_mirimage_rateints.fits"))
    keywords = dict(read_product(segments[0]).keywords)
    chosen, _ = LocalReferences(refs_dir=refs_dir).choose(keywords, list(SPEC2.all_reftypes))
    refs = {t: c.path for t, c in chosen.items() if c.path is not None and t != "pathloss"}
    centre = float(fits.getheader(run["out"] / segments[0].name.replace("_rateints", "_calints"), "SCI")["SRCXPOS"])
    refs["extract1d"] = slitless_extract1d_reference(root / "extract1d.json", centre, DEFAULT_WIDTH[MODE],
                                                     DEFAULT_BACKGROUND[MODE])
    for path in segments:  # our archived _rateints, unchanged
        shutil.copy(path, inputs / path.name)
    asns = [shutil.copy(p, inputs / p.name) for p in sorted(run["out"].glob("*_spec2_*_asn.json"))]
    steps, ran = step_overrides("calwebb_spec2", refs, LRS_SLITLESS_SPEC2_SKIP, LRS_SPEC2_NOT_APPLICABLE)
    run_pipeline("calwebb_spec2", asns, steps, root / "jwst", root / "crds", root / "jwst-spec2.log")
    return {"out": root / "jwst", "ran": ran, "segments": [p.name.removesuffix("_rateints.fits") for p in segments]}


def _series(directory: Path, stems: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """INT_NUM, WAVELENGTH, FLUX and FLUX_ERROR of every segment's ``_x1dints`` in ``directory``,
    each spectrum in increasing wavelength (jwst keeps the rows' order: decreasing for the LRS)."""
    parts = []
    for stem in stems:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = dm.open(str(directory / f"{stem}_x1dints.fits"))
        assert isinstance(model, dm.TSOMultiSpecModel) and len(model.spec) == 1
        t = model.spec[0].spec_table
        order = np.argsort(np.asarray(t["WAVELENGTH"])[0])
        parts.append([np.asarray(t["INT_NUM"]), *(np.asarray(t[c])[:, order] for c in ("WAVELENGTH", "FLUX", "FLUX_ERROR"))])
    return tuple(np.concatenate([p[i] for p in parts]) for i in range(4))


def _depth(wavelength: np.ndarray, flux: np.ndarray, shape: np.ndarray) -> float:
    band = (wavelength >= BAND[0]) & (wavelength <= BAND[1])
    white = np.nansum(np.where(band, flux, 0.0), axis=1)
    a = np.column_stack([np.ones(white.size), -shape])
    (f0, blocked), *_ = np.linalg.lstsq(a, white, rcond=None)
    return float(blocked / f0)


def test_jwst_reruns_our_time_series(run, jwst):  # noqa: F811
    assert jwst["ran"] == ["assign_wcs", "flat_field", "srctype", "photom", "extract_1d"]
    ints_j, wave_j, flux_j, err_j = _series(jwst["out"], jwst["segments"])
    ints_o, wave_o, flux_o, err_o = _series(run["out"], jwst["segments"])
    assert list(ints_j) == list(ints_o) == list(range(1, 61))
    assert wave_j.shape == wave_o.shape
    np.testing.assert_allclose(wave_j, wave_o, atol=1e-4)
    band = (wave_o >= BAND[0]) & (wave_o <= BAND[1]) & np.isfinite(flux_j) & np.isfinite(flux_o)
    ratio = float(np.median(flux_j[band] / flux_o[band]))
    errors = float(np.median(err_j[band] / err_o[band]))
    depth_j, depth_o = _depth(wave_j, flux_j, SERIES.shape(run)), _depth(wave_o, flux_o, SERIES.shape(run))
    truth, jy = SERIES.truth_depth(run, wave_o[0])
    in_band = (wave_o[0] >= BAND[0]) & (wave_o[0] <= BAND[1])
    expected = float(np.sum((jy * truth)[in_band]) / np.sum(jy[in_band]))
    print(f"jwst / ours: flux {ratio:.4f}, errors {errors:.3f}; white-light depth over {BAND[0]:g}-{BAND[1]:g} um: "
          f"jwst {depth_j:.5f}, ours {depth_o:.5f}, truth {expected:.5f}")
    assert abs(ratio - 1) < 0.01
    assert abs(errors - 1) < 0.10
    assert abs(depth_j / expected - 1) < 0.03
    assert abs(depth_o / expected - 1) <= abs(depth_j / expected - 1) + 0.01
