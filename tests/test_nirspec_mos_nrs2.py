"""NIRSpec MOS on NRS2 (MSA quadrants 2 and 4) through the system, scored against the
simulator's truth.

One module-scoped run, in this process, of a small MOS observation on NRS2 alone
(PRISM/CLEAR, FULL frame, 3 groups, one pointing; the MSA metadata file gives a
three-shutter slitlet to each of the 8 brightest stars of quadrants 2 and 4 the MSA can
take): simulator -> ingest (the MSA metadata file with the plan) -> detector1 -> spec2
(assign_wcs from NRS2's own SPECWCS geometry, Q2Y0 and Q4Y0) -> spec3 (a product set per
source), on the embedded catalog and store. Target acquisition leaves the field within
0.004" rms, as in ``tests/test_spec2_nirspec_mos.py`` (the pipeline takes each source's
place in its shutter from the MSA metadata); the sky is the default (about 0.1 e-/s per
pixel): with one pointing there is no nod to subtract it, and in a 5-pixel aperture it
is well under 1 % of a 50 uJy source.

Tolerances (the issue's requirements), for every source brighter than 50 uJy:

- flux calibration: the median of x1d / truth over 0.7-5.1 um within 3 % of 1, in the
  exposure's ``_x1d`` and in each source's Level-3 ``_x1d``;
- identities: each spectrum's slitlet, source id, name, coordinates and quadrant those of
  the MSA metadata, and every slitlet of quadrants 2 and 4 (none of 1 and 3) there.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from stdatamodels.jwst import datamodels as dm

from shared.datamodels.msa import read_msa_metadata
from shared.spectra.msa import open_slitlets
from tests.slit_examples import flux_scores, run_in_process, spectra_of

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore::astropy.wcs.FITSFixedWarning")]

PROGRAM = 1358
STEM = "jw01358001001_01101_00001_nrs2"
MSA_FILE = "jw01358001001_01_msa.fits"

DESCRIPTION = {
    "program": PROGRAM, "title": "MOS of a star field on NRS2", "pi": "Ada Lovelace",
    "targets": [{"name": "FIELD", "ra": 53.16, "dec": -27.79}],
    "observations": [{"number": 1, "target": "FIELD", "instrument": "NIRSPEC", "exp_type": "NRS_MSASPEC",
                      "detectors": ["NRS2"], "filter": "CLEAR", "pupil": "PRISM", "readpatt": "NRSRAPID",
                      "ngroups": 3, "nints": 1, "msa_sources": 8, "dither": {"pattern": "NONE"}}],
    "simulation": {"seed": 3, "stars_per_window": 600, "bright_stars_per_window": 1,
                   "acquisition_error_arcsec": 0.004},
}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return run_in_process(DESCRIPTION, tmp_path_factory.mktemp("nrs2mos"))


@pytest.fixture(scope="module")
def msa(run):
    return read_msa_metadata(run["out"] / MSA_FILE)


def _level3_x1d(run) -> list[str]:
    return sorted(n for n in run["names"] if n.startswith(f"jw0{PROGRAM}-o001_s") and n.endswith("_x1d.fits"))


def _truth(run, source_id: int) -> Table:
    return Table.read(run["truth_dir"] / f"{STEM}_truth_spectrum_s{source_id:05d}.ecsv")


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def test_nrs2_sees_quadrants_2_and_4_and_its_references_are_its_own(run, msa):
    """The MSA planned on NRS2's quadrants alone; the exposure's slitlets are theirs, each
    with its truth; the pipeline's NRS2 references are NRS2's (the SPECWCS's Q2Y0 and
    Q4Y0, no Q1Y0 or Q3Y0), the MSAOPER one for the MSA."""
    slitlets = open_slitlets(msa.shutter_info, msa.source_info, 1, 1)
    assert len(slitlets) >= 4 and {s.quadrant for s in slitlets} == {2, 4}
    refs = {p.name: p for p in run["sim"].reference_paths}
    with fits.open(refs["jwst_nirspec_specwcs_nrs2_msaspec_sim.fits"]) as hdul:
        h = hdul[0].header
        assert (h["DETECTOR"], h["EXP_TYPE"], h["MSAX0"], h["Q2Y0"], h["Q4Y0"]) == ("NRS2", "NRS_MSASPEC", 620.0,
                                                                                   110.0, 1040.0)
        assert "Q1Y0" not in h and "Q3Y0" not in h
    for name in ("photom", "pathloss"):
        assert fits.getheader(refs[f"jwst_nirspec_{name}_nrs2_msaspec_sim.fits"])["DETECTOR"] == "NRS2"
    assert "jwst_nirspec_msaoper_sim.json" in refs and not any("nrs1" in name for name in refs)
    entry = [s.source_id for s in slitlets]
    for sid in entry:
        assert _truth(run, sid).meta["msa"]["quadrant"] in (2, 4)


def test_every_nrs2_slitlet_is_calibrated_with_its_identity(run, msa):
    slitlets = open_slitlets(msa.shutter_info, msa.source_info, 1, 1)
    sources = {int(s["source_id"]): s for s in msa.source_info}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the public data models read them without complaint
        with dm.open(str(run["out"] / f"{STEM}_cal.fits")) as cal:
            assert isinstance(cal, dm.MultiSlitModel) and cal.meta.instrument.detector == "NRS2"
            assert [s.name for s in cal.slits] == [s.name for s in slitlets]
            for slit, want in zip(cal.slits, slitlets, strict=True):
                assert (slit.source_id, slit.quadrant, slit.shutter_state) == (want.source_id, want.quadrant, "1x1")
                assert slit.source_name == _text(sources[want.source_id]["source_name"])
                assert slit.source_ra == pytest.approx(sources[want.source_id]["ra"], abs=1e-9)
                assert np.isfinite(slit.wavelength).sum() > 1000
        with dm.open(str(run["out"] / f"{STEM}_x1d.fits")) as x1d:
            assert [(s.name, s.source_id) for s in x1d.spec] == [(s.name, s.source_id) for s in slitlets]
    assert _level3_x1d(run) == [f"jw0{PROGRAM}-o001_s{s.source_id:09d}_nirspec_clear-prism_x1d.fits"
                                for s in sorted(slitlets, key=lambda s: s.source_id)]


@pytest.mark.parametrize("level", ["exposure", "level3"])
def test_flux_calibration_against_the_truth(run, level):
    spectra = (spectra_of(run["out"] / f"{STEM}_x1d.fits") if level == "exposure"
               else [sp for name in _level3_x1d(run) for sp in spectra_of(run["out"] / name)])
    scores = flux_scores(spectra, lambda sid: _truth(run, sid), level)
    assert len(scores) >= 2
    for _, ratio, _ in scores:
        assert abs(ratio - 1) < 0.03
