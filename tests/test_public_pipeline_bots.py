"""The public pipeline's calwebb_tso3 spectral steps (jwst's extract_1d and white_light,
offline) re-run on our NIRSpec bright-object time series; their ``_x1dints`` and white
light and ours scored against the simulator's truth side by side.

The chain is tests/test_tso_spectra_bots.py's (its ``run`` fixture): examples/nirspec_bots.yaml,
50 integrations in four segments, through the system in process. jwst's calwebb_spec2
cannot run on these files (its NIRSpec WCS needs the instrument's optical model, which is
not simulated), nor its calwebb_tso3 offline (the pipeline asks CRDS for GAIN and READNOISE
before any step runs, with no override). Its steps can: ``Extract1dStep`` then
``WhiteLightStep`` run on each of our archived ``_crfints`` (SlitModels of S1600A1, after our
outlier detection and pixel replacement: what jwst's tso3 hands its extract_1d), with an
EXTRACT1D reference holding our aperture (7 pixels about our trace, a quadratic in the
column fitted to it, and our background regions 4 to 7.5 pixels either side) and no
aperture correction; jwst takes the wavelengths from the product (its WAVELENGTH array).

What must hold (measured with the example's seed, 22):

- jwst's ``_x1dints`` is the public layout of ours: the same integration numbers, the
  same wavelengths (to 1e-4 um);
- the same flux: median jwst / ours within 1 % of 1 over the band, and the errors within
  10 %;
- the white-light transit depth (jwst's ``_whtlt`` fitted with the truth's transit shape):
  jwst's within 3 % of the truth, ours no farther from it than jwst's + 1 %.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table, vstack
from stdatamodels.jwst import datamodels as dm

from benchmarks._jwst import EXTRACT_1D_NOT_APPLICABLE, box_extract1d_reference, run_steps
from shared.datamodels import read_product
from shared.instruments import keyword_pixel_scale
from shared.refdata import LocalReferences, load_references
from shared.spectra import recorded_source_along, reference_point, slit_table, slit_trace
from shared.spectra.extract import DEFAULT_BACKGROUND, DEFAULT_WIDTH
from tests.test_tso_spectra_bots import LEVEL3, SERIES, STEM
from tests.test_tso_spectra_bots import run as run  # noqa: F401  (the time series through the system, shared)
from tests.tso_scoring import fit_transit

pytestmark = [pytest.mark.integration, pytest.mark.public,
              pytest.mark.filterwarnings("ignore::astropy.wcs.FITSFixedWarning")]

MODE = "NRS_BRIGHTOBJ"
SLIT = "S1600A1"


def _aperture_centre(run, member: Path) -> list[float]:
    """Our aperture's centre in the window's rows as a quadratic in its column (increasing
    powers): our trace of S1600A1 from the SPECWCS, moved to where spec2 placed the star."""
    product = read_product(member, arrays=False)
    kw = product.keywords
    refs_dir = Path(run["sim"].reference_paths[0]).parent
    ref = load_references(LocalReferences(refs_dir=refs_dir), kw, ("specwcs",)).found["specwcs"]
    table, cards = slit_table(ref.tables, ref.table_headers, ref.header, kw["FXD_SLIT"])
    trace = slit_trace(table, *reference_point(cards), xstart=int(kw["SUBSTRT1"]), ystart=int(kw["SUBSTRT2"]),
                       ny=int(kw["SUBSIZE1"]), dispaxis=1)
    sci = fits.getheader(member, "SCI")
    along = recorded_source_along(trace, (sci["SRCXPOS"], sci["SRCYPOS"]), cards, keyword_pixel_scale(kw))
    columns = trace.rows.astype(np.float64)  # the frame's rows are the window's columns
    return list(np.polyfit(columns, trace.x[trace.rows] + along, 2)[::-1])


@pytest.fixture(scope="module")
def jwst(run, tmp_path_factory):  # noqa: F811  (the fixture imported above)
    """jwst's extract_1d and white_light on our archived _crfints (one per segment)."""
    root = tmp_path_factory.mktemp("public-bots")
    members = sorted(run["out"].glob(f"{STEM}-seg*_nrs1_o001_crfints.fits"))
    extract1d = box_extract1d_reference(root / "extract1d.json", "NIRSPEC", MODE, SLIT, 1,
                                        _aperture_centre(run, members[0]), DEFAULT_WIDTH[MODE],
                                        DEFAULT_BACKGROUND[MODE])
    params = {"override_extract1d": str(extract1d), "apply_apcorr": False, "suffix": "x1dints",
              **{f"override_{t}": "N/A" for t in EXTRACT_1D_NOT_APPLICABLE}}
    run_steps([("extract_1d", params), ("white_light", {})], members, root / "jwst", root / "crds",
              root / "jwst-steps.log")
    return {"out": root / "jwst", "stems": [p.name.removesuffix("_crfints.fits") for p in members]}


def test_jwst_steps_rerun_our_time_series(run, jwst):  # noqa: F811
    parts = []
    for stem in jwst["stems"]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = dm.open(str(jwst["out"] / f"{stem}_x1dints.fits"))
        assert isinstance(model, dm.TSOMultiSpecModel) and len(model.spec) == 1
        parts.append(model.spec[0].spec_table)
    ints_j = np.concatenate([np.asarray(t["INT_NUM"]) for t in parts])
    wave_j, flux_j, err_j = (np.concatenate([np.asarray(t[c]) for t in parts])
                             for c in ("WAVELENGTH", "FLUX", "FLUX_ERROR"))
    ours = SERIES.x1dints(run)
    assert list(ints_j) == list(ours["INT_NUM"]) == list(range(1, 51))
    np.testing.assert_allclose(wave_j, ours["WAVELENGTH"], atol=1e-4)
    ok = np.isfinite(flux_j) & np.isfinite(ours["FLUX"])
    ratio = float(np.median(flux_j[ok] / ours["FLUX"][ok]))
    errors = float(np.median(err_j[ok] / ours["FLUX_ERROR"][ok]))
    # jwst's white light, its segments in order (its columns are named after the detector)
    whtlt = vstack([Table.read(jwst["out"] / f"{stem}_whtlt.ecsv") for stem in jwst["stems"]])
    white_j = np.asarray(whtlt["whitelight_flux_NRS1"])
    white_o = np.asarray(Table.read(run["out"] / f"{LEVEL3}_whtlt.ecsv")["whitelight_flux"])
    shape = SERIES.shape(run)
    error = np.sqrt(np.nansum(np.where(ok, err_j, 0.0) ** 2, axis=1))
    depth_j, _, _ = fit_transit(white_j, error, shape)
    depth_o, _, _ = fit_transit(white_o, error, shape)
    truth, jy = SERIES.truth_depth(run, ours["WAVELENGTH"][0])
    expected = float(np.sum(jy * truth) / np.sum(jy))
    print(f"jwst / ours: flux {ratio:.4f}, errors {errors:.3f}; white-light depth: jwst {depth_j:.5f}, "
          f"ours {depth_o:.5f}, truth {expected:.5f}")
    assert abs(ratio - 1) < 0.01
    assert abs(errors - 1) < 0.10
    assert abs(depth_j / expected - 1) < 0.03
    assert abs(depth_o / expected - 1) <= abs(depth_j / expected - 1) + 0.01
