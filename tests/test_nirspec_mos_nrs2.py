"""NIRSpec MOS on NRS2 (MSA quadrants 2 and 4) with two-shutter slitlets through the
system, scored against the simulator's truth.

One module-scoped run, in this process, of a small MOS observation on NRS2 alone
(PRISM/CLEAR, FULL frame, 3 groups; the two points of the 2-SHUTTER-SLITLET nod, PATTTYPE
2-POINT-NOD; the MSA metadata file gives a two-shutter slitlet to each of the 8 brightest
stars of quadrants 2 and 4 the MSA can take, the source in its lower shutter at point 1
and in its upper one at point 2): simulator -> ingest (the MSA metadata file with the
plan) -> detector1 -> the spec2 associations (each nod the other's background) -> spec2
(assign_wcs from NRS2's own SPECWCS geometry, Q2Y0 and Q4Y0; pathloss with the public
aperture choice for a two-shutter slitlet: the three-shutter aperture's lower or upper
part) -> spec3 (a product set per source), on the embedded catalog and store. The sky is
the fixed-slit tests' (30 e-/s per pixel). Target acquisition places the field exactly:
the pipeline takes each source's place in its shutter from the MSA metadata, so an
acquisition error moves every source of a nod against its shutter's jaws unseen, and with
only two nods to average that would be what is scored (measured with 0.004" rms: a nod
0.005" off across the shutters, its sources 0.05" off their shutters' centres 1-2 % high,
up to 14 % at 4-5 um; ``tests/test_spec2_nirspec_mos.py`` measures that effect).

Tolerances (the issue's requirements), for every source brighter than 50 uJy:

- flux calibration: the median of x1d / truth over 0.7-5.1 um within 3 % of 1, in each
  nod's ``_x1d`` and in each source's Level-3 ``_x1d``;
- identities: each spectrum's slitlet, source id, name, coordinates, quadrant and shutter
  state those of the MSA metadata, and every slitlet of quadrants 2 and 4 (none of 1 and
  3) there.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from stdatamodels.jwst import datamodels as dm

from services.stage2.asn import parse_level2_asn
from shared.datamodels.msa import read_msa_metadata
from shared.spectra.msa import open_slitlets
from tests.slit_examples import PRODUCT_SERVICES, flux_scores, run_in_process, spectra_of

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore::astropy.wcs.FITSFixedWarning")]

PROGRAM = 1358
NODS = tuple(f"jw01358001001_01101_0000{n}_nrs2" for n in (1, 2))
MSA_FILE = "jw01358001001_01_msa.fits"
SHUTTER_STATES = ("x1", "1x")  # the source in the lower shutter, then in the upper one

DESCRIPTION = {
    "program": PROGRAM, "title": "MOS of a star field on NRS2, two-shutter slitlets", "pi": "Ada Lovelace",
    "targets": [{"name": "FIELD", "ra": 53.16, "dec": -27.79}],
    "observations": [{"number": 1, "target": "FIELD", "instrument": "NIRSPEC", "exp_type": "NRS_MSASPEC",
                      "detectors": ["NRS2"], "filter": "CLEAR", "pupil": "PRISM", "readpatt": "NRSRAPID",
                      "ngroups": 3, "nints": 1, "msa_sources": 8, "dither": {"pattern": "2-SHUTTER-SLITLET"}}],
    "simulation": {"seed": 3, "stars_per_window": 1500, "bright_stars_per_window": 1, "sky_level": 30.0,
                   "acquisition_error_arcsec": 0.0},
}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return run_in_process(DESCRIPTION, tmp_path_factory.mktemp("nrs2mos"), PRODUCT_SERVICES)  # previews: end to end


@pytest.fixture(scope="module")
def msa(run):
    return read_msa_metadata(run["out"] / MSA_FILE)


def _level3_x1d(run) -> list[str]:
    return sorted(n for n in run["names"] if n.startswith(f"jw0{PROGRAM}-o001_s") and n.endswith("_x1d.fits"))


def _spectra(run, which: str) -> list[tuple[fits.Header, np.ndarray]]:
    if which == "level3":
        return [spectrum for name in _level3_x1d(run) for spectrum in spectra_of(run["out"] / name)]
    return spectra_of(run["out"] / f"{which}_x1d.fits")


def _truth(run, which: str, source_id: int) -> Table:
    """The source's truth in a nod (for ``level3``, the first's: the nods see it alike)."""
    stem = NODS[0] if which == "level3" else which
    return Table.read(run["truth_dir"] / f"{stem}_truth_spectrum_s{source_id:05d}.ecsv")


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
    for s in slitlets:
        assert _truth(run, NODS[0], s.source_id).meta["msa"]["quadrant"] in (2, 4)


def test_two_nods_each_the_others_background_and_every_slitlet_calibrated_with_its_identity(run, msa):
    names = run["names"]
    asns = [n for n in names if n.endswith("_asn.json") and "_spec2_" in n]
    backgrounds = {}
    for name in asns:
        (product,) = parse_level2_asn((run["out"] / name).read_bytes(), name).products
        backgrounds[product.science] = set(product.backgrounds)
    assert backgrounds == {f"{a}_rate.fits": {f"{b}_rate.fits"} for a, b in (NODS, NODS[::-1])}
    sources = {int(s["source_id"]): s for s in msa.source_info}
    for point, stem in enumerate(NODS, start=1):
        slitlets = open_slitlets(msa.shutter_info, msa.source_info, 1, point)
        assert all(len(s.columns) == 2 for s in slitlets)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # the public data models read them without complaint
            with dm.open(str(run["out"] / f"{stem}_cal.fits")) as cal:
                assert isinstance(cal, dm.MultiSlitModel) and cal.meta.instrument.detector == "NRS2"
                assert cal.meta.dither.primary_type == "2-POINT-NOD" and cal.meta.cal_step.pathloss == "COMPLETE"
                assert [s.name for s in cal.slits] == [s.name for s in slitlets]
                for slit, want in zip(cal.slits, slitlets, strict=True):
                    assert (slit.source_id, slit.quadrant, slit.shutter_state) == (want.source_id, want.quadrant,
                                                                                   SHUTTER_STATES[point - 1])
                    assert slit.source_name == _text(sources[want.source_id]["source_name"])
                    assert slit.source_ra == pytest.approx(sources[want.source_id]["ra"], abs=1e-9)
                    assert np.isfinite(slit.wavelength).sum() > 1000
            with dm.open(str(run["out"] / f"{stem}_x1d.fits")) as x1d:
                assert [(s.name, s.source_id) for s in x1d.spec] == [(s.name, s.source_id) for s in slitlets]
    (asn3,) = [n for n in names if n.endswith("_asn.json") and "_spec3_" in n]
    members = json.loads((run["out"] / asn3).read_text())["products"][0]["members"]
    assert sorted(m["expname"] for m in members) == [f"{stem}_cal.fits" for stem in NODS]
    first = open_slitlets(msa.shutter_info, msa.source_info, 1, 1)
    assert _level3_x1d(run) == [f"jw0{PROGRAM}-o001_s{s.source_id:09d}_nirspec_clear-prism_x1d.fits"
                                for s in sorted(first, key=lambda s: s.source_id)]


@pytest.mark.parametrize("stem", [*NODS, "level3"])
def test_flux_calibration_against_the_truth(run, stem):
    scores = flux_scores(_spectra(run, stem), lambda sid: _truth(run, stem, sid), stem)
    assert len(scores) >= 2
    for _, ratio, _ in scores:
        assert abs(ratio - 1) < 0.03
