"""The public pipeline's steps after SOSS's extraction (jwst's photom and white_light,
offline) re-run on our NIRISS SOSS time series, with our PHOTOM reference.

The chain is tests/test_tso_spectra_soss.py's (its ``run`` fixture): examples/niriss_soss.yaml,
30 integrations in three segments, through the system in process. jwst's calwebb_spec2
cannot extract these files: its SOSS extraction (ATOCA, or its box with the traces of
PASTASOSS) needs the instrument's trace model for the pupil wheel's position, the
profile and kernel references, which the simulator does not make (it writes the traces in
the public SPECTRACE layout). What follows extraction can run, and is checked here:

- **photom**: our calwebb_spec2 on one segment's archived ``_rateints`` with photom skipped
  (its ``_x1dints`` of both orders in DN/s, as the public extract_1d hands its photom),
  then jwst's ``PhotomStep`` with our SOSS PHOTOM reference (the public
  NisSossPhotomModel): jwst's flux (MJy, as its photom leaves SOSS spectra) is ours (Jy)
  over 1e6 to 1e-6 for every element of both orders;
- **white_light**: jwst's ``WhiteLightStep`` on our Level-3 ``_x1dints``: one flux
  column per order (``whitelight_flux_order_1``, ``_order_2``), each equal to ours.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table
from stdatamodels.jwst import datamodels as dm

from benchmarks._jwst import run_steps
from services.stage2 import spec2
from shared.datamodels import read_product, write_product
from shared.refdata import LocalReferences
from tests.test_tso_spectra_soss import LEVEL3, STEM, WHITE_LIGHT
from tests.test_tso_spectra_soss import run as run  # noqa: F401  (the time series through the system, shared)

pytestmark = [pytest.mark.integration, pytest.mark.public,
              pytest.mark.filterwarnings("ignore::astropy.wcs.FITSFixedWarning")]


def _photom_reference(run) -> Path:  # noqa: F811
    refs = [Path(p) for p in run["sim"].reference_paths]
    (path,) = [p for p in refs if "photom" in p.name and "soss" in p.name]
    return path


def test_jwst_photom_calibrates_our_spectra_as_we_do(run, tmp_path):  # noqa: F811
    rateints = run["out"] / f"{STEM}-seg002_nis_rateints.fits"
    refs_dir = Path(run["sim"].reference_paths[0]).parent
    raw = spec2.calibrate(read_product(rateints), LocalReferences(refs_dir=refs_dir),
                          params=spec2.SPEC2.params(skip=["photom"]), software_version="test")
    assert raw.record.statuses["photom"] == "SKIPPED"
    counts = write_product(tmp_path / f"{STEM}-seg002_nis_x1dints.fits", raw.x1d)
    run_steps([("photom", {"override_photom": str(_photom_reference(run)), "override_area": "N/A"})], [counts],
              tmp_path / "jwst", tmp_path / "crds", tmp_path / "jwst-photom.log")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = dm.open(str(tmp_path / "jwst" / f"{STEM}-seg002_nis_photomstep.fits"))
        ours = dm.open(str(run["out"] / f"{STEM}-seg002_nis_x1dints.fits"))
    assert [s.spectral_order for s in theirs.spec] == [s.spectral_order for s in ours.spec] == [1, 2]
    for t, o in zip(theirs.spec, ours.spec, strict=True):
        flux_t, flux_o = np.asarray(t.spec_table["FLUX"]), np.asarray(o.spec_table["FLUX"])
        ok = np.isfinite(flux_o)
        # where PHOTOM has no response both leave the element uncalibrated (jwst 0 or NaN, ours NaN)
        assert ok.all() and np.isfinite(flux_t).all()
        ratio = flux_t[ok] * 1e6 / flux_o[ok]
        print(f"order {o.spectral_order}: jwst photom (MJy) x 1e6 / ours (Jy): {ratio.min():.8f}-{ratio.max():.8f}")
        np.testing.assert_allclose(ratio, 1.0, rtol=1e-6)
        np.testing.assert_allclose(np.asarray(t.spec_table["FLUX_ERROR"])[ok] * 1e6,
                                   np.asarray(o.spec_table["FLUX_ERROR"])[ok], rtol=1e-6)


def test_jwst_white_light_sums_our_orders_as_we_do(run, tmp_path):  # noqa: F811
    x1dints = run["out"] / f"{LEVEL3}_x1dints.fits"
    run_steps([("white_light", {"override_wavelengthrange": "N/A"})], [x1dints], tmp_path / "jwst",
              tmp_path / "crds", tmp_path / "jwst-white-light.log")
    theirs = Table.read(tmp_path / "jwst" / f"{LEVEL3}_whtlt.ecsv")
    ours = Table.read(run["out"] / f"{LEVEL3}_whtlt.ecsv")
    assert [c for c in theirs.colnames if c.startswith("whitelight")] == list(WHITE_LIGHT)
    for column in WHITE_LIGHT:
        np.testing.assert_allclose(np.asarray(theirs[column]), np.asarray(ours[column].value), rtol=1e-9)
