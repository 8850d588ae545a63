"""NIRSpec MOS with two-shutter slitlets through the system, scored against the truth.

One module-scoped run, in this process, of a MOS observation of a star field (PRISM/CLEAR
on NRS1, FULL frame, 3 groups, the two points of the 2-SHUTTER-SLITLET nod, PATTTYPE
2-POINT-NOD; the MSA metadata file gives each of the 8 brightest stars the MSA can take a
two-shutter slitlet, the source in its lower shutter at point 1 and in its upper one at
point 2): simulator -> ingest -> detector1 -> the spec2 associations (each nod the other's
background) -> stage 2 (pathloss with the public aperture choice for a two-shutter
slitlet: the three-shutter aperture's lower or upper part) -> stage 3. The sky is the
fixed-slit tests' (30 e-/s per pixel). Target acquisition places the field exactly: the
pipeline takes each source's place in its shutter from the MSA metadata, so an
acquisition error moves every source of a nod against its shutter's jaws unseen, and with
only two nods to average that would be what is scored (measured on this scene with
0.004" rms: nod 1 off by 0.005" across the shutters, its sources 0.05" off their shutters'
centres 1-2 % high, up to 14 % at 4-5 um; the three-shutter test measures that effect,
``tests/test_spec2_nirspec_mos.py``).

Tolerance (the issue's requirement): for every source brighter than 50 uJy, the median of
x1d / truth over 0.7-5.1 um within 3 % of 1, in each nod's spectrum and in the source's
Level-3 spectrum.
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
from tests.slit_examples import flux_scores, run_in_process, spectra_of

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore::astropy.wcs.FITSFixedWarning")]

NODS = tuple(f"jw01357001001_01101_0000{n}_nrs1" for n in (1, 2))
MSA_FILE = "jw01357001001_01_msa.fits"
SHUTTER_STATES = ("x1", "1x")  # the source in the lower shutter, then in the upper one

DESCRIPTION = {
    "program": 1357, "title": "MOS of a star field, two-shutter slitlets", "pi": "Ada Lovelace",
    "targets": [{"name": "FIELD", "ra": 53.16, "dec": -27.79}],
    "observations": [{"number": 1, "target": "FIELD", "instrument": "NIRSPEC", "exp_type": "NRS_MSASPEC",
                      "detectors": ["NRS1"], "filter": "CLEAR", "pupil": "PRISM", "readpatt": "NRSRAPID",
                      "ngroups": 3, "nints": 1, "msa_sources": 8, "dither": {"pattern": "2-SHUTTER-SLITLET"}}],
    "simulation": {"seed": 3, "stars_per_window": 1500, "bright_stars_per_window": 1, "sky_level": 30.0,
                   "acquisition_error_arcsec": 0.0},
}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return run_in_process(DESCRIPTION, tmp_path_factory.mktemp("nrsmos2"))


def _level3_x1d(run) -> list[str]:
    return [n for n in run["names"] if n.startswith("jw01357-o001_s") and n.endswith("_x1d.fits")]


def _spectra(run, which: str) -> list[tuple[fits.Header, np.ndarray]]:
    if which == "level3":
        return [spectrum for name in _level3_x1d(run) for spectrum in spectra_of(run["out"] / name)]
    return spectra_of(run["out"] / f"{which}_x1d.fits")


def _truth(run, which: str, source_id: int) -> Table:
    """The source's truth in a nod (for ``level3``, the first's: the nods see it alike)."""
    stem = NODS[0] if which == "level3" else which
    return Table.read(run["truth_dir"] / f"{stem}_truth_spectrum_s{source_id:05d}.ecsv")


def test_two_nods_each_the_others_background_with_two_shutter_slitlets(run):
    names = run["names"]
    asns = [n for n in names if n.endswith("_asn.json") and "_spec2_" in n]
    assert len(asns) == 2
    backgrounds = {}
    for name in asns:
        (product,) = parse_level2_asn((run["out"] / name).read_bytes(), name).products
        backgrounds[product.science] = set(product.backgrounds)
    assert backgrounds == {f"{a}_rate.fits": {f"{b}_rate.fits"} for a, b in (NODS, NODS[::-1])}
    msa = read_msa_metadata(run["out"] / MSA_FILE)
    for point, stem in enumerate(NODS, start=1):
        planned = open_slitlets(msa.shutter_info, msa.source_info, 1, point)
        assert len(planned) >= 4 and all(len(s.columns) == 2 for s in planned)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # the public data models read them without complaint
            with dm.open(str(run["out"] / f"{stem}_cal.fits")) as cal:
                assert cal.meta.dither.primary_type == "2-POINT-NOD" and cal.meta.cal_step.pathloss == "COMPLETE"
                assert [s.name for s in cal.slits] == [s.name for s in planned]
                assert {s.shutter_state for s in cal.slits} == {SHUTTER_STATES[point - 1]}
    (asn3,) = [n for n in names if n.endswith("_asn.json") and "_spec3_" in n]
    members = json.loads((run["out"] / asn3).read_text())["products"][0]["members"]
    assert sorted(m["expname"] for m in members) == [f"{stem}_cal.fits" for stem in NODS]


@pytest.mark.parametrize("stem", [*NODS, "level3"])
def test_flux_calibration_against_the_truth(run, stem):
    scores = flux_scores(_spectra(run, stem), lambda sid: _truth(run, stem, sid), stem)
    assert len(scores) >= 3
    for _, ratio, _ in scores:
        assert abs(ratio - 1) < 0.03
