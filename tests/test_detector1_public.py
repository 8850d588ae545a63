"""Detector-1 kernels beside the public pipeline's, on the same simulated ramps.

Jump detection and ramp fitting beside stcal 1.20 (``stcal.jump.jump.detect_jumps_data``
with jwst's JumpStep defaults, ``stcal.ramp_fitting.ramp_fit.ramp_fit_data`` OLS_C with
optimal weighting), on the ramp as our pipeline leaves it just before jump; refpix beside
jwst 3.0's ``jwst.refpix.reference_pixels.correct_model`` (default parameters, "median"
side algorithm) on the ramp just before refpix. Small windows, so the module takes ~30 s.

Exposures (one simulated program per instrument, so each detector's reference files are
written once): the demo's NIRCam field (NRCA1 SUB160, RAPID) with 5 and 8 groups, one
integration, cosmic rays 1e-3 /px/s; the MIRI example's field (SUB128, FAST, 10 groups x 2
integrations; SUB64, 6 x 3), cosmic rays 3e-3 /px/s.

Tolerances and what is compared:

* jump: false JUMP_DET group samples (flagged, not an injected ray's group nor one of its
  4 neighbours in that group, both groups of the difference usable, no SATURATED group in
  the integration, pixel not DO_NOT_USE) -- ours <= stcal's; injected rays flagged (rays
  in group >= 2 whose group and predecessor are usable and whose integration keeps >= 3
  usable groups) -- ours >= stcal's. Both also reported.
* ramp fitting on the same ramp and jump flags: median ``|rate_ours - rate_stcal| / ERR``
  <= 1e-4 over pixels with DQ == 0 in both; DQ equal on every pixel; ERR within 1e-4
  relative (median).
* clean pixels (rate DQ == 0, no injected ray): ``std((rate - truth) / ERR)`` of our whole
  pipeline within 5 % of 1.
* refpix, near-IR: ours minus jwst's at most 0.01 DN anywhere (float32 rounding of the
  means), on the simulated SUB160 ramp (one output: every reference pixel by column parity)
  and on a synthetic full frame (4 outputs, top/bottom rows, side median box).
* refpix, MIRI: full frame (synthetic) ours minus jwst's at most 0.01 DN; SUB128 (jwst
  skips MIRI subarrays) scored against the truth: the correction matches the simulator's
  drifts (relative to group 1, per integration) to <= 2 DN rms (a clipped mean of 32-64
  reference pixels per amplifier and row parity, differenced with group 1: 1.0-1.4 DN), and
  skipping leaves at least 3 times more.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import yaml
from astropy.io import fits
from astropy.table import Table

from services.detector1.pipeline import DETECTOR1, run_detector1
from services.detector1.steps.jump import detect_jumps
from services.detector1.steps.ramp_fit import fit_ramps
from services.detector1.steps.refpix import correct_miri_refpix, correct_nir_refpix
from services.ingest.pipeline import ingest_telemetry
from services.simulator import simulate
from shared.datamodels import FitsProduct, dqflags, write_product
from shared.refdata import LocalReferences, Reference, load_references

pytestmark = pytest.mark.integration

stcal_jump = pytest.importorskip("stcal.jump.jump")
from stcal.jump.jump_class import JumpData  # noqa: E402
from stcal.ramp_fitting.ramp_fit import ramp_fit_data  # noqa: E402
from stcal.ramp_fitting.ramp_fit_class import RampData  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
F = dict(dqflags.PIXEL)
CREATED = "2026-01-01T00:00:00"

RATE_AGREEMENT = 1e-4  # median |rate_ours - rate_stcal| / ERR
RESIDUAL_SPREAD = 0.05
REFPIX_VS_JWST_DN = 0.01
MIRI_SUBARRAY_DRIFT_RMS = 2.0  # DN, correction error against the truth drifts
MIRI_SUBARRAY_GAIN = 3.0  # drift left by skipping / correction error


# --------------------------------------------------------------------------- exposures


@dataclass
class Exposure:
    name: str
    uncal: FitsProduct
    uncal_path: Path
    refs: dict[str, Reference]
    truth_rate: np.ndarray
    drifts: Table
    jumps: Table

    @property
    def kw(self) -> dict:
        return self.uncal.keywords

    def pre(self, *skip: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Our calibrated ramp with ``skip`` steps (and ramp_fit) left out: SCI, GROUPDQ, PIXELDQ."""
        params = DETECTOR1.params(skip={*skip, "ramp_fit"}, save_ramp=True)
        ramp = run_detector1(self.uncal, self.refs, params=params, software_version="test", created=CREATED).ramp
        return ramp.images["SCI"], ramp.images["GROUPDQ"], ramp.images["PIXELDQ"]


def _program(example: str, observations: list[dict], **simulation) -> dict:
    desc = yaml.safe_load((EXAMPLES / example).read_text())
    base = {k: v for k, v in desc["observations"][0].items() if k not in ("number", "start_time")}
    desc["observations"] = [{**base, "number": n, "detectors": base["detectors"][:1], "dither": {"pattern": "NONE"}, **o}
                            for n, o in enumerate(observations, 1)]
    desc["simulation"].update(simulation)
    return desc


def _exposures(desc: dict, names: list[str], out: Path) -> dict[str, Exposure]:
    sim = simulate(desc, out)
    found = {}
    for name, telemetry in zip(names, sim.telemetry_paths, strict=True):
        [uf] = ingest_telemetry(telemetry.read_bytes(), lambda program: sim.plan, software_version="test",
                                created=datetime(2026, 1, 1, tzinfo=UTC), segment_bytes=2_000_000_000).files
        stem = uf.name.exposure_id
        kw = uf.product.keywords
        refs = load_references(LocalReferences(refs_dir=sim.reference_paths[0].parent), kw, DETECTOR1.reftypes(kw))
        with fits.open(sim.truth_dir / f"{stem}_truth_rate.fits") as truth:
            rate, drifts = truth["SCI"].data.astype(np.float64), Table(truth["DRIFTS"].data)
        found[name] = Exposure(name, uf.product, write_product(out / f"{stem}_uncal.fits", uf.product), refs.found,
                               rate, drifts, Table.read(sim.truth_dir / f"{stem}_truth_jumps.ecsv"))
    return found


@pytest.fixture(scope="module")
def exposures(tmp_path_factory) -> dict[str, Exposure]:
    nircam = _program("nircam_imaging.yaml", [{"ngroups": 5, "nints": 1}, {"ngroups": 8, "nints": 1}],
                      cosmic_ray_rate=1.0e-3)
    miri = _program("miri_imaging.yaml", [{"subarray": "SUB128", "ngroups": 10, "nints": 2},
                                          {"subarray": "SUB64", "ngroups": 6, "nints": 3}], cosmic_ray_rate=3.0e-3)
    return {
        **_exposures(nircam, ["nircam_5x1", "nircam_8x1"], tmp_path_factory.mktemp("nircam")),
        **_exposures(miri, ["miri_sub128_10x2", "miri_sub64_6x3"], tmp_path_factory.mktemp("miri")),
    }


# --------------------------------------------------------------------------- scoring


def _grow(mask: np.ndarray) -> np.ndarray:
    out = mask.copy()
    out[..., 1:, :] |= mask[..., :-1, :]
    out[..., :-1, :] |= mask[..., 1:, :]
    out[..., :, 1:] |= mask[..., :, :-1]
    out[..., :, :-1] |= mask[..., :, 1:]
    return out


def _rays(e: Exposure) -> tuple[np.ndarray, ...]:
    j = e.jumps
    return (np.asarray(j["integration"]) - 1, np.asarray(j["group"]) - 1, np.asarray(j["y"]), np.asarray(j["x"]))


def _jump_score(e: Exposure, gdq: np.ndarray, pdq: np.ndarray) -> tuple[int, int, int]:
    """(false flagged samples, injected rays flagged, detectable injected rays)."""
    usable = (gdq & (F["SATURATED"] | F["DO_NOT_USE"])) == 0
    flagged = (gdq & F["JUMP_DET"]) != 0
    dead = (pdq & F["DO_NOT_USE"]) != 0
    i, g, y, x = _rays(e)
    injected = np.zeros(gdq.shape, bool)
    injected[i, g, y, x] = True
    samples = np.zeros(gdq.shape, bool)
    samples[:, 1:] = usable[:, 1:] & usable[:, :-1]
    samples &= ~_grow(injected) & ~((gdq & F["SATURATED"]) != 0).any(axis=1, keepdims=True) & ~dead
    detectable = ((g >= 1) & usable[i, g, y, x] & usable[i, np.maximum(g - 1, 0), y, x]
                  & (usable.sum(axis=1)[i, y, x] >= 3) & ~dead[y, x])
    return int((flagged & samples).sum()), int(flagged[i, g, y, x][detectable].sum()), int(detectable.sum())


def _stcal_jumps(e: Exposure, data, gdq, pdq):
    jd = JumpData(gain2d=e.refs["gain"].get("SCI").astype(np.float32),
                  rnoise2d=e.refs["readnoise"].get("SCI").astype(np.float32), dqflags=F)
    jd.init_arrays_from_arrays(data.copy(), gdq.copy(), pdq.copy())
    jd.nframes = int(e.kw["NFRAMES"])
    jd.dt_group = np.ones(1)  # equal group spacing, no read pattern: jwst's default path
    jd.n_reads_groupdiff = np.ones(1) * 2 * jd.nframes
    jd.max_cores = "none"
    new_gdq, new_pdq, _, _ = stcal_jump.detect_jumps_data(jd)
    return new_gdq, new_pdq


def _dark(e: Exposure) -> np.ndarray:
    shape = e.truth_rate.shape
    avg = e.refs["dark"].get("AVDRKCUR") if e.refs.get("dark") is not None else None
    return np.zeros(shape, np.float32) if avg is None else np.broadcast_to(avg, shape).astype(np.float32)


def _stcal_fit(e: Exposure, data, gdq, pdq) -> dict:
    kw = e.kw
    rd = RampData()
    rd.algorithm = "OLS_C"
    rd.set_arrays(data.copy(), gdq.copy(), pdq.copy(), _dark(e))
    rd.set_meta(name=kw["INSTRUME"], frame_time=float(kw["TFRAME"]), group_time=float(kw["TGROUP"]),
                groupgap=int(kw["GROUPGAP"]), nframes=int(kw["NFRAMES"]), drop_frames1=None)
    rd.set_dqflags(F)
    rd.start_row, rd.num_rows = 0, data.shape[2]
    rd.suppress_one_group_ramps = True
    gain = e.refs["gain"].get("SCI").astype(np.float32)
    rnoise = e.refs["readnoise"].get("SCI").astype(np.float32)
    image, _, _ = ramp_fit_data(rd, False, rnoise.copy(), gain.copy(), "OLS_C", "optimal", "none")
    return image


def _report(name: str, what: str, **figures) -> None:
    print(f"\n[{name}] {what}: " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                           for k, v in figures.items()))


CASES = ["nircam_5x1", "nircam_8x1", "miri_sub128_10x2", "miri_sub64_6x3"]


# --------------------------------------------------------------------------- jump and ramp fit


@pytest.mark.parametrize("name", CASES)
def test_jump_flags_no_more_false_and_no_fewer_rays_than_stcal(exposures, name):
    e = exposures[name]
    data, gdq, pdq = e.pre("jump")
    ours = detect_jumps(data, gdq, pdq, e.refs["gain"].get("SCI"), e.refs["readnoise"].get("SCI"),
                        nframes=int(e.kw["NFRAMES"]), dqflags=F)
    st_gdq, st_pdq = _stcal_jumps(e, data, gdq, pdq)
    false_o, hit_o, n = _jump_score(e, ours.groupdq, ours.pixeldq)
    false_s, hit_s, _ = _jump_score(e, st_gdq, st_pdq)
    both = ((ours.groupdq & st_gdq) & F["JUMP_DET"]) != 0
    _report(name, "jump vs stcal", false_ours=false_o, false_stcal=false_s, rays_ours=f"{hit_o}/{n}",
            rays_stcal=f"{hit_s}/{n}", flags_ours=int(((ours.groupdq & F["JUMP_DET"]) != 0).sum()),
            flags_stcal=int(((st_gdq & F["JUMP_DET"]) != 0).sum()), in_common=int(both.sum()))
    assert n >= 5, "too few injected rays to compare"
    assert false_o <= false_s
    assert hit_o >= hit_s
    assert np.array_equal(ours.pixeldq, st_pdq)


@pytest.mark.parametrize("name", CASES)
def test_ramp_fit_agrees_with_stcal_on_the_same_flags(exposures, name):
    e = exposures[name]
    data, gdq, pdq = e.pre("jump")
    st_gdq, st_pdq = _stcal_jumps(e, data, gdq, pdq)
    kw = e.kw
    ours = fit_ramps(data, st_gdq, st_pdq, e.refs["gain"].get("SCI"), e.refs["readnoise"].get("SCI"),
                     group_time=float(kw["TGROUP"]), nframes=int(kw["NFRAMES"]), average_dark_current=_dark(e),
                     dqflags=F)
    theirs = _stcal_fit(e, data, st_gdq, st_pdq)
    good = (ours.dq == 0) & (theirs["dq"] == 0)
    diff = np.abs(ours.rate[good] - theirs["slope"][good]) / ours.err[good]
    err_ratio = np.median(np.abs(ours.err[good] / theirs["err"][good] - 1))
    _report(name, "ramp fit vs stcal", pixels=int(good.sum()), median_abs_diff_over_err=float(np.median(diff)),
            median_err_rel_diff=float(err_ratio), dq_differs=int((ours.dq != theirs["dq"]).sum()))
    assert good.sum() > 0.9 * good.size
    assert np.median(diff) <= RATE_AGREEMENT
    assert err_ratio <= RATE_AGREEMENT
    assert np.array_equal(ours.dq, theirs["dq"])


@pytest.mark.parametrize("name", CASES)
def test_clean_pixel_residuals_have_unit_spread(exposures, name):
    e = exposures[name]
    out = run_detector1(e.uncal, e.refs, software_version="test", created=CREATED)
    rate, err, dq = (out.rate.images[k] for k in ("SCI", "ERR", "DQ"))
    i, g, y, x = _rays(e)
    rayed = np.zeros(rate.shape, bool)
    rayed[y, x] = True
    clean = (dq == 0) & ~rayed
    z = (rate[clean] - e.truth_rate[clean]) / err[clean]
    _report(name, "clean residuals", n=int(clean.sum()), std_z=float(np.std(z)), mean_z=float(np.mean(z)))
    assert abs(np.std(z) - 1.0) <= RESIDUAL_SPREAD


# --------------------------------------------------------------------------- refpix


def _jwst_refpix(model) -> np.ndarray:
    from jwst.refpix import reference_pixels

    kernel = {"refpix_algorithm": "median", "sirs_kernel_model": None, "sigreject": 4.0, "gaussmooth": 1.0,
              "halfwidth": 30}
    logging.getLogger("jwst").setLevel(logging.ERROR)
    status = reference_pixels.correct_model(model, True, True, 11, 1.0, True, kernel, 3.0)
    assert status == reference_pixels.REFPIX_OK
    return np.asarray(model.data)


def _ramp_model(data, pixeldq, *, instrument, detector, subarray, xstart, ystart, noutputs, readpatt):
    from stdatamodels.jwst import datamodels

    nints, ngroups, ny, nx = data.shape
    m = datamodels.RampModel(data=data.astype(np.float32), pixeldq=pixeldq.astype(np.uint32),
                             groupdq=np.zeros(data.shape, np.uint8))
    m.meta.instrument.name, m.meta.instrument.detector = instrument, detector
    sub = m.meta.subarray
    sub.name, sub.xstart, sub.ystart, sub.xsize, sub.ysize = subarray, xstart, ystart, nx, ny
    sub.fastaxis, sub.slowaxis = 1, 2  # our files are in the detector frame (ingest writes these)
    m.meta.exposure.nints, m.meta.exposure.ngroups = nints, ngroups
    m.meta.exposure.noutputs, m.meta.exposure.readpatt = noutputs, readpatt
    return m


def _drifting_frame(rng, shape, cols_amp, rows_parity=None, cols_parity=None):
    """Synthetic ramp: signal on science pixels, per-(group, amplifier, parity) offsets
    everywhere, read noise."""
    nints, ngroups, ny, nx = shape
    offsets = rng.normal(0, 8.0, (nints, ngroups, 4, 2))
    parity = cols_parity[None, :] if rows_parity is None else rows_parity[:, None]
    pattern = offsets[:, :, np.broadcast_to(cols_amp[None, :], (ny, nx)), np.broadcast_to(parity, (ny, nx))]
    signal = np.cumsum(rng.uniform(0, 30, (nints, ngroups, ny, nx)), axis=1)
    return (signal + pattern + rng.normal(0, 6.0, shape)).astype(np.float32)


def test_nir_subarray_refpix_matches_jwst(exposures):
    from stdatamodels.jwst import datamodels

    e = exposures["nircam_8x1"]
    data, _, pdq = e.pre("refpix", "linearity", "persistence", "dark_current", "jump")
    kw = e.kw
    ours = correct_nir_refpix(data, pdq, xstart=int(kw["SUBSTRT1"]), ystart=int(kw["SUBSTRT2"]),
                              noutputs=int(kw["NOUTPUTS"]), dqflags=F)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = datamodels.RampModel(str(e.uncal_path))
    model.data, model.pixeldq = data.copy(), pdq.copy()
    theirs = _jwst_refpix(model)
    delta = np.abs(ours.data - theirs)
    _report(e.name, "refpix vs jwst (SUB160, one output)", max_abs_dn=float(delta.max()),
            median_correction_dn=float(np.median(np.abs(data - ours.data))))
    assert ours.top_bottom_applied and not ours.side_applied
    assert delta.max() <= REFPIX_VS_JWST_DN


def test_nir_full_frame_refpix_matches_jwst():
    rng = np.random.default_rng(17)
    shape = (1, 2, 2048, 2048)
    cols = np.arange(2048)
    data = _drifting_frame(rng, shape, cols // 512, cols_parity=cols % 2)
    pdq = np.zeros(shape[2:], np.uint32)
    pdq[rng.integers(0, 2048, 50), rng.integers(0, 4, 50)] = F["DO_NOT_USE"]  # a few bad side pixels
    ours = correct_nir_refpix(data, pdq, noutputs=4, dqflags=F)
    theirs = _jwst_refpix(_ramp_model(data.copy(), pdq, instrument="NIRCAM", detector="NRCA1", subarray="FULL",
                                      xstart=1, ystart=1, noutputs=4, readpatt="RAPID"))
    delta = np.abs(ours.data - theirs)
    _report("synthetic", "refpix vs jwst (NIR full frame)", max_abs_dn=float(delta.max()))
    assert ours.top_bottom_applied and ours.side_applied
    assert delta.max() <= REFPIX_VS_JWST_DN


def test_miri_full_frame_refpix_matches_jwst():
    rng = np.random.default_rng(19)
    shape = (2, 3, 1024, 1032)
    data = _drifting_frame(rng, shape, np.arange(1032) % 4, rows_parity=np.arange(1024) % 2)
    pdq = np.zeros(shape[2:], np.uint32)
    ours = correct_miri_refpix(data, pdq, dqflags=F)
    theirs = _jwst_refpix(_ramp_model(data.copy(), pdq, instrument="MIRI", detector="MIRIMAGE", subarray="FULL",
                                      xstart=1, ystart=1, noutputs=4, readpatt="FAST"))
    delta = np.abs(ours.data - theirs)
    _report("synthetic", "refpix vs jwst (MIRI full frame)", max_abs_dn=float(delta.max()))
    assert delta.max() <= REFPIX_VS_JWST_DN


@pytest.mark.parametrize("name", ["miri_sub128_10x2", "miri_sub64_6x3"])
def test_miri_subarray_refpix_removes_the_true_drifts(exposures, name):
    e = exposures[name]
    data, _, pdq = e.pre("refpix", "jump")
    kw = e.kw
    x0, y0 = int(kw["SUBSTRT1"]) - 1, int(kw["SUBSTRT2"]) - 1
    nints, ngroups, ny, nx = data.shape
    table = np.zeros((nints, ngroups, 4, 2))
    for row in e.drifts:
        table[row["INTEGRATION"] - 1, row["GROUP"] - 1, row["AMPLIFIER"], row["PARITY"]] = row["OFFSET"]
    amp = np.broadcast_to((x0 + np.arange(nx)) % 4, (ny, nx))
    parity = np.broadcast_to(((y0 + np.arange(ny)) % 2)[:, None], (ny, nx))
    drift = table[:, :, amp, parity]
    drift = drift - drift[:, :1]  # refpix leaves group 1 as it is (jwst's MIRI rule)
    ours = correct_miri_refpix(data, pdq, xstart=x0 + 1, ystart=y0 + 1, dqflags=F)
    science = (pdq & F["REFERENCE_PIXEL"]) == 0
    error = ((data - ours.data) - drift)[..., science]
    left = drift[..., science]  # what skipping the step (jwst) leaves
    rms, rms_skipped = float(np.sqrt(np.mean(error**2))), float(np.sqrt(np.mean(left**2)))
    _report(name, "MIRI subarray refpix vs truth", correction_error_rms_dn=rms, skipped_rms_dn=rms_skipped)
    assert ours.top_bottom_applied
    assert rms <= MIRI_SUBARRAY_DRIFT_RMS
    assert rms_skipped >= MIRI_SUBARRAY_GAIN * rms
