"""Our WCSs in the public pipeline (jwst 3.0, offline): its assign_wcs on our ``_rate`` with
our reference files, ``meta.wcs`` of our products in stdatamodels, and its stage-3 steps
on our ``_cal``.

One small program runs through every service once for the module (tests/imaging_chain.py):
NIRCam NRCA1 SUB160 F200W, a 1" 4-point box dither of 5-group RAPID ramps with 80 stars of
3000-1e5 e-/s per window (enough for jwst's source finder on a 5" field); MIRI MIRIMAGE
SUB64 F770W, one exposure (its imaging WCS needs FILTEROFFSET).

(a) jwst's ``AssignWcsStep`` on our ``_rate`` with the simulator's DISTORTION and
    FILTEROFFSET files as overrides: its ``meta.wcs`` maps the window's pixels (a 4-pixel
    grid, edges included) where our ``_cal``'s ``meta.wcs`` and SCI-header WCS do, within
    1 mas (the same composition: measured 5e-8 mas (NIRCam) and 0 (MIRI) against our gwcs,
    2e-6 and 9e-4 mas against our TAN-SIP header).
(b) ``datamodels.open`` of our ``_cal``, ``_crf``, stage-2 and Level-3 ``_i2d``: ``meta.wcs``
    within 1 mas of the SCI-header WCS, with a bounding box over the array (measured
    <= 9e-4 mas for ``_cal`` and ``_crf``, <= 6e-6 mas for ``_i2d``).
(c) jwst's ``TweakRegStep`` (its matching radii scaled to a 5" field), ``SkyMatchStep``
    and ``ResampleStep`` take our four ``_cal`` in a ModelLibrary and finish COMPLETE;
    tweakreg aligns at least three of them (a ``v2v3corr`` frame in their gwcs).

Offline: CRDS in local mode over a cache holding only its server configuration, no step
parameters from CRDS, every reference type of assign_wcs an override (N/A where it does
not apply); as in benchmarks/whole_process_bench.py.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning

from shared.imaging_wcs import max_separation_mas
from tests.imaging_chain import ChainRun, run_chain

jwst = pytest.importorskip("jwst")
dm = pytest.importorskip("stdatamodels.jwst.datamodels")

pytestmark = [pytest.mark.integration, pytest.mark.public]

MAX_MAS = 1.0
DESCRIPTION = {
    "program": 1234, "title": "Public pipeline WCS", "pi": "Ada Lovelace", "pi_user": "ada@example.org",
    "category": "GO", "eap_months": 12,
    "targets": [{"name": "FIELD-1", "ra": 53.1625, "dec": -27.7914}, {"name": "FIELD-2", "ra": 266.4, "dec": -29.0}],
    "observations": [
        {"number": 1, "target": "FIELD-1", "instrument": "NIRCAM", "template": "NIRCam Imaging",
         "detectors": ["NRCA1"], "filter": "F200W", "pupil": "CLEAR", "readpatt": "RAPID", "ngroups": 5,
         "nints": 1, "subarray": "SUB160", "dither": {"pattern": "4-POINT-BOX", "size": 1.0}, "roll": 30.0,
         "start_time": "2025-03-01T12:00:00Z"},
        {"number": 2, "target": "FIELD-2", "instrument": "MIRI", "template": "MIRI Imaging",
         "detectors": ["MIRIMAGE"], "filter": "F770W", "readpatt": "FAST", "ngroups": 3, "nints": 1,
         "subarray": "SUB64", "dither": {"pattern": "NONE"}, "roll": 75.0},
    ],
    "simulation": {"seed": 5, "stars_per_window": 80, "star_flux_min": 3000.0, "star_flux_max": 1.0e5,
                   "bright_stars_per_window": 0, "cosmic_ray_rate": 0.0},
}
CRDS_SERVER_CONFIG = {"observatory": "jwst", "operational_context": "jwst_0000.pmap",
                      "edit_context": "jwst_0000.pmap", "last_synced": "never (offline test)",
                      "force_remote_mode": False, "bad_files": "", "bad_files_list": []}


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> ChainRun:
    return run_chain(DESCRIPTION, tmp_path_factory.mktemp("public_wcs"))


@pytest.fixture(scope="module")
def offline(tmp_path_factory):
    """CRDS and stpipe without a server: local mode over a cache of one config file."""
    from crds.client import proxy

    crds_path = tmp_path_factory.mktemp("crds")
    config = crds_path / "config" / "jwst" / "server_config"
    config.parent.mkdir(parents=True)
    config.write_text(repr({**CRDS_SERVER_CONFIG, "download_metadata": proxy.crds_encode({})}))
    with pytest.MonkeyPatch.context() as mp:
        for key, value in {"CRDS_PATH": str(crds_path), "CRDS_SERVER_URL": "https://jwst-serverless-mode.stsci.edu",
                           "CRDS_OBSERVATORY": "jwst", "CRDS_MODE": "local", "CRDS_CONTEXT": "jwst_0000.pmap",
                           "CRDS_READONLY_CACHE": "1", "CRDS_CLIENT_RETRY_COUNT": "1",
                           "CRDS_CLIENT_RETRY_DELAY_SECONDS": "0", "STPIPE_DISABLE_CRDS_STEPPARS": "true"}.items():
            mp.setenv(key, value)
        yield


def _header_wcs(path: Path) -> WCS:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)  # astropy fills DATE-* from MJD-*
        return WCS(fits.getheader(path, "SCI"))


def _gwcs_separation_mas(a, b, shape: tuple[int, int], step: float = 4.0) -> float:
    """Largest distance (mas) between where two gwcs put a grid over ``shape`` (edges included)."""
    ny, nx = shape
    x, y = (g.ravel() for g in np.meshgrid(np.append(np.arange(-0.5, nx - 0.5, step), nx - 0.5),
                                          np.append(np.arange(-0.5, ny - 0.5, step), ny - 0.5)))
    (ra1, dec1), (ra2, dec2) = (np.radians(w(x, y, with_bounding_box=False)) for w in (a, b))
    hav = np.sin((dec2 - dec1) / 2) ** 2 + np.cos(dec1) * np.cos(dec2) * np.sin((ra2 - ra1) / 2) ** 2
    return float(np.degrees(2 * np.arcsin(np.sqrt(hav))).max() * 3.6e6)


def _reference(run: ChainRun, reftype: str, detector: str) -> str:
    [path] = [p for p in run.sim.reference_paths if f"_{reftype}_{detector}_" in p.name]
    return str(path)


@pytest.mark.parametrize("detector", ["nrca1", "mirimage"])
def test_jwst_assign_wcs_on_our_rate_matches_our_wcs(run, offline, detector):
    from jwst.assign_wcs import AssignWcsStep

    [rate_name] = [n for n in run.filenames("rate", 2) if f"_00001_{detector}_" in n]
    overrides = {f"override_{t}": "N/A" for t in AssignWcsStep.reference_file_types}
    overrides.update(override_distortion=_reference(run, "distortion", detector),
                     override_filteroffset=_reference(run, "filteroffset", detector))
    result = AssignWcsStep.call(str(run.path(rate_name)), **overrides)
    assert result.meta.cal_step.assign_wcs == "COMPLETE"
    theirs = result.meta.wcs
    cal_path = run.path(rate_name.replace("_rate", "_cal"))
    with dm.open(cal_path) as cal:
        ours, shape = cal.meta.wcs, cal.data.shape
        assert theirs.available_frames == ours.available_frames == ["detector", "v2v3", "v2v3vacorr", "world"]
        assert theirs.bounding_box.bounding_box(order="F") == ours.bounding_box.bounding_box(order="F")
        gwcs_mas = _gwcs_separation_mas(theirs, ours, shape)
    header_mas = max_separation_mas(theirs, _header_wcs(cal_path), shape, step=4.0)
    print(f"\n[assign_wcs {detector}] jwst vs our gwcs {gwcs_mas:.3g} mas, vs our SCI WCS {header_mas:.3g} mas")
    assert gwcs_mas <= MAX_MAS and header_mas <= MAX_MAS


@pytest.mark.parametrize("suffix,level", [("cal", 2), ("i2d", 2), ("crf", 3), ("i2d", 3)])
def test_products_carry_a_gwcs_that_matches_their_fits_wcs(run, suffix, level):
    names = run.filenames(suffix, level)
    assert names
    worst = 0.0
    for name in names:
        path = run.path(name)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a schema warning means a broken product
            model = dm.open(path)
        with model:
            assert model.meta.wcs is not None, name
            ny, nx = model.data.shape
            assert model.meta.wcs.bounding_box.bounding_box(order="F") == ((-0.5, nx - 0.5), (-0.5, ny - 0.5))
            worst = max(worst, max_separation_mas(model.meta.wcs, _header_wcs(path), (ny, nx), step=4.0))
    print(f"\n[meta.wcs {suffix} level {level}] {len(names)} products, worst {worst:.3g} mas")
    assert worst <= MAX_MAS


def _nircam_cals(run: ChainRun):
    from jwst.datamodels import ModelLibrary

    return ModelLibrary([dm.open(run.path(n)) for n in run.filenames("cal", 2) if "_nrca1_" in n])


def _statuses(library, step: str) -> list[str]:
    out = []
    with library:
        for i in range(len(library)):
            model = library.borrow(i)
            out.append((getattr(model.meta.cal_step, step), model.meta.wcs.available_frames))
            library.shelve(model, i, modify=False)
    return out


def test_jwst_stage3_steps_accept_our_cal(run, offline):
    from jwst.resample import ResampleStep
    from jwst.skymatch import SkyMatchStep
    from jwst.tweakreg import TweakRegStep

    # A 5" field holds ~80 stars: jwst's 1" separation and 0.7" tolerance would merge them.
    aligned = _statuses(TweakRegStep.call(_nircam_cals(run), separation=0.3, tolerance=0.2), "tweakreg")
    assert [s for s, _ in aligned] == ["COMPLETE"] * 4
    assert sum("v2v3corr" in frames for _, frames in aligned) >= 3
    matched = _statuses(SkyMatchStep.call(_nircam_cals(run)), "skymatch")
    assert [s for s, _ in matched] == ["COMPLETE"] * 4
    mosaic = ResampleStep.call(_nircam_cals(run))
    assert mosaic.meta.cal_step.resample == "COMPLETE" and np.isfinite(mosaic.data).mean() > 0.5
    assert mosaic.meta.wcs.output_frame.name == "world"
