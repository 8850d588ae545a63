"""Detector-1 science accuracy, scored against the simulator's truth.

One simulated exposure per case (simulate -> ingest -> ``run_detector1`` with the simulator's
reference files and ``save_ramp=True``), each built from an example description with one
detector, no dither, and the knobs below chosen so that every criterion has enough samples
(stars: N(>F) ~ F^-0.7 from ``star_flux_min`` to 3e5 e-/s plus "bright" 1e6-1e7 e-/s stars
that saturate; sky and seeds as in the examples):

=========  ========  ========  ==============  =========================================
case       detector  subarray  groups x ints   simulation knobs (beyond the example)
=========  ========  ========  ==============  =========================================
nircam     NRCA1     SUB160    RAPID 10 x 4    600 stars from 1e4 e-/s, 6 bright;
                                               cosmic rays 1e-3 /px/s, 50-4000 DN
niriss     NIS       SUB128    NISRAPID 10x6   300 stars from 1e4 e-/s, 6 bright;
                                               cosmic rays 2e-3 /px/s, 55-4000 DN
miri       MIRIMAGE  SUB128    FAST 15 x 4     300 stars from 1e4 e-/s, 6 bright;
                                               cosmic rays 1e-3 /px/s, 32-4000 DN
miri_full  MIRIMAGE  FULL      FAST 10 x 2     2000 stars from 1e4 e-/s, 40 bright;
                                               cosmic rays 2e-5 /px/s, 32-4000 DN
=========  ========  ========  ==============  =========================================

Why these choices:

* the smallest cosmic ray is about 4 sigma of one difference (CDS read noise 12, 13.5 and
  8 DN), so the population straddles the detection threshold and the ">= 10 sigma" rule
  below selects a real subset;
* several integrations, because a bright pixel's relative error is bounded by its full well
  (about 1 / sqrt(9e4 e-) = 0.33 % per NIRCam integration);
* about 10 groups (shorter ramps are compared with stcal and jwst in
  ``test_detector1_public.py``, where the false flags of both are counted);
* MIRI is run twice: in SUB128 (refpix corrects the drifts with the subarray's reference
  columns, which jwst skips) and full frame (refpix as jwst). Both have several
  integrations, so the reset-switch charge decay (RSCD) the simulator adds to
  integrations 2.. is corrected with the simulator's RSCD reference (criterion 6).

Definitions (per pixel, from the truth and the reference files; R = truth SCI, D = truth
DARK, both DN/s; g = GAIN e-/DN; rn = READNOISE, CDS DN; t_g = TGROUP; N_f = NFRAMES;
n = groups a clean ramp fits, NGROUPS, or NGROUPS - 1 for MIRI whose last frame is
DO_NOT_USE; N_i = NINTS):

* expected relative slope error ``sigma_rel = sqrt((R + D) / (g t_g (n - 1) N_i)
  + rn^2 / (N_f ((n - 1) t_g)^2 N_i)) / R``: Poisson plus the read noise of an end-point
  slope (an upper bound on the optimally weighted fit's read-noise term);
* noise of one group difference ``sigma_diff = sqrt(rn^2 / N_f + (R + D) t_g / g)`` DN;
* "noiselessly saturated": the simulator's noiseless ramp of the same exposure
  (``simulate_exposure(..., noiseless=True)``) at or above the SATURATION reference;
* a "usable" group carries neither SATURATED nor DO_NOT_USE in the ramp GROUPDQ.

Criteria (the issue's targets; none loosened):

1. Bright unsaturated pixels: rate DQ == 0, ``sigma_rel <= 0.3 %`` (half the target, so noise
   alone gives a median |error| near 0.2 %), noiseless ramp below SATURATION - 200 DN in
   every group; at least 50 such pixels; median ``|rate - R| / R <= 0.6 %``.
2. Clean pixels: rate DQ == 0 and no injected cosmic ray in any integration;
   ``std((rate - R) / ERR)`` within 5 % of 1 (0.95..1.05).
3. Injected jumps: the truth lists cosmic rays by the first group holding their charge. A ray
   in group 1 is an offset, not a jump, and one is detectable only where groups g-1 and g are
   usable and the integration keeps >= 3 usable groups (the minimum for the test); those are
   the "injected jumps" counted here (pixels DO_NOT_USE in PIXELDQ excluded). A jump is
   "flagged" when JUMP_DET is set in the ramp GROUPDQ at (integration, group, y, x).
   Reading of the issue's ">= 85 % of injected jumps flagged and all of those >= 10 sigma":
   at least 85 % of the injected jumps are flagged, and every injected jump whose amplitude
   is >= 10 ``sigma_diff`` is flagged (none missed). At least 80 injected jumps per case.
4. False jump flags: JUMP_DET in a group sample that is not an injected ray's group, not
   one of its 4 neighbours in that group (flag_4_neighbors), in a pixel with no SATURATED
   group in that integration and not DO_NOT_USE; divided by the number of such "clean" group
   samples (groups >= 2 whose group and predecessor are usable): <= 5e-4.
5. Saturation: pixels that noiselessly saturate at group k >= 3 (so >= 2 good groups; and
   before MIRI's last frame, which no fit uses) in every integration, clear of the threshold on both sides of the crossing (noiseless value
   <= SATURATION - 200 DN in group k-1 and >= SATURATION + 50 DN in group k; the ramp clips
   at SATURATION + 100), whose 3x3 box (n_pix_grow_sat) saturates no earlier than group 3,
   with no injected ray and not DO_NOT_USE: at least 20 of them; every one has a finite
   rate, SATURATED in the rate DQ, and ``|rate - R| <= 5 ERR``.

6. MIRI integrations after the first (RSCD): over criterion 1's bright unsaturated pixels,
   the median of ``(rateints[n] - R) / R`` of every integration n >= 2 is within 0.25 %
   of 0; and the same exposure calibrated with rscd skipped has it below -0.4 % in every
   such integration (the decay is there, and the correction removes it).

Products: ``_rate`` (and ``_rateints``, NINTS > 1) written with ``write_product`` open in
``stdatamodels.jwst.datamodels.open`` as ImageModel (CubeModel) without a warning, with
BUNIT DN/s and every step's S_* and every reference's R_* keyword. A dark exposure (the
simulator makes imaging only: the NIRCam ``_uncal`` with EXP_TYPE NRC_DARK) runs
calwebb_dark: no dark_current, jump or ramp_fit, no S_DARK, no rate, a ramp returned.

Measured figures are printed (run with ``-s``). The whole module takes about a minute on
two cores.
"""

from __future__ import annotations

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
from services.ingest.pipeline import ingest_telemetry
from services.simulator import load_description, simulate, simulate_exposure
from shared.datamodels import FitsProduct, dqflags, write_product
from shared.datamodels.keywords import reference_keyword
from shared.refdata import LocalReferences, Reference, load_references

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
F = dqflags.PIXEL
CREATED = "2026-01-01T00:00:00"

# --------------------------------------------------------------------------- tolerances

BRIGHT_SIGMA_REL = 0.003  # expected relative slope error that makes a pixel "bright"
BRIGHT_MEDIAN_REL_ERR = 0.006  # the target
SATURATION_MARGIN_DN = 200.0  # keep clear of the threshold where noise could decide
MIN_BRIGHT_PIXELS = 50
RESIDUAL_SPREAD = 0.05  # |std((rate - truth)/ERR) - 1| <= 5 %
JUMP_FLAGGED_FRACTION = 0.85
JUMP_SURE_SIGMA = 10.0
FALSE_JUMP_RATE = 5e-4
SATURATED_MAX_Z = 5.0
RSCD_MEDIAN_REL_ERR = 0.0025  # later integrations, RSCD corrected
RSCD_UNCORRECTED_BELOW = -0.004  # later integrations, rscd skipped
SATURATED_ABOVE_DN = 50.0  # noiseless value at the crossing group (the ramp clips at SATURATION + 100)
MIN_SATURATING_PIXELS = 20
MIN_JUMPS = 80


@dataclass(frozen=True)
class Case:
    example: str
    detector: str
    subarray: str
    ngroups: int
    nints: int
    simulation: dict


def _knobs(cr_rate: float, cr_min_dn: float, **stars) -> dict:
    base = {"stars_per_window": 300.0, "star_flux_min": 1.0e4, "bright_stars_per_window": 6.0}
    return {**base, **stars, "cosmic_ray_rate": cr_rate, "cosmic_ray_min_dn": cr_min_dn}


CASES = {
    "nircam": Case("nircam_imaging.yaml", "NRCA1", "SUB160", 10, 4, _knobs(1.0e-3, 50.0, stars_per_window=600.0)),
    "niriss": Case("niriss_imaging.yaml", "NIS", "SUB128", 10, 6, _knobs(2.0e-3, 55.0)),
    "miri": Case("miri_imaging.yaml", "MIRIMAGE", "SUB128", 15, 4, _knobs(1.0e-3, 32.0)),
    "miri_full": Case("miri_imaging.yaml", "MIRIMAGE", "FULL", 10, 2, _knobs(2.0e-5, 32.0, stars_per_window=2000.0,
                                                                          bright_stars_per_window=40.0)),
}


def description(case: Case) -> dict:
    desc = yaml.safe_load((EXAMPLES / case.example).read_text())
    obs = desc["observations"][0]
    desc["observations"] = [obs]
    obs.update(detectors=[case.detector], subarray=case.subarray, ngroups=case.ngroups, nints=case.nints,
               dither={"pattern": "NONE"})
    desc.setdefault("simulation", {}).update(case.simulation)
    return desc


# --------------------------------------------------------------------------- one exposure


@dataclass
class Calibrated:
    """One simulated exposure through detector1, with its truth."""

    name: str
    uncal: FitsProduct
    refs: dict[str, Reference]
    out: object  # Detector1Output
    truth_rate: np.ndarray  # DN/s
    truth_dark: np.ndarray  # DN/s
    gain: np.ndarray
    readnoise: np.ndarray
    jumps: Table
    noiseless: np.ndarray  # (nints, ngroups, ny, nx) raw DN, no noise, drifts or rays
    saturation: np.ndarray  # SATURATION reference, raw DN

    @property
    def kw(self) -> dict:
        return self.uncal.keywords

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return self.uncal.images["SCI"].shape

    @property
    def fitted_groups(self) -> int:
        ngroups = self.shape[1]
        return ngroups - 1 if self.kw["INSTRUME"] == "MIRI" else ngroups

    def jump_index(self) -> tuple[np.ndarray, ...]:
        """(integration, group, y, x), 0-based, and amplitude (DN) of every injected ray."""
        j = self.jumps
        return (np.asarray(j["integration"]) - 1, np.asarray(j["group"]) - 1, np.asarray(j["y"]),
                np.asarray(j["x"]), np.asarray(j["amplitude_dn"], float))

    def truth_jump_cube(self) -> np.ndarray:
        cube = np.zeros(self.shape, bool)
        i, g, y, x, _ = self.jump_index()
        cube[i, g, y, x] = True
        return cube


def _load_refs(sim, kw: dict) -> dict[str, Reference]:
    """The simulator's references of this exposure, chosen by the archive's selection rules."""
    provider = LocalReferences(refs_dir=sim.reference_paths[0].parent)
    return load_references(provider, kw, DETECTOR1.reftypes(kw)).found


def _calibrate(name: str, out_dir: Path) -> Calibrated:
    desc = description(CASES[name])
    sim = simulate(desc, out_dir)
    [telemetry] = sim.telemetry_paths
    ingested = ingest_telemetry(telemetry.read_bytes(), lambda program: sim.plan,
                                created=datetime(2026, 1, 1, tzinfo=UTC), software_version="test",
                                segment_bytes=2_000_000_000)
    [uncal_file] = ingested.files
    uncal = uncal_file.product
    refs = _load_refs(sim, uncal.keywords)
    out = run_detector1(uncal, refs, params=DETECTOR1.params(save_ramp=True), context="jwst_sim_0001.pmap",
                        software_version="test", created=CREATED)
    stem = uncal_file.name.exposure_id
    with fits.open(sim.truth_dir / f"{stem}_truth_rate.fits") as truth:
        rate, dark, gain = (truth[e].data.astype(np.float64) for e in ("SCI", "DARK", "GAIN"))
    jumps = Table.read(sim.truth_dir / f"{stem}_truth_jumps.ecsv")
    obs = sim.plan.observations[0]
    noiseless = simulate_exposure(sim.plan, obs, obs.exposures[0], load_description(desc).simulation,
                                  noiseless=True).sci
    return Calibrated(
        name=name, uncal=uncal, refs=refs, out=out, truth_rate=rate, truth_dark=dark, gain=gain,
        readnoise=refs["readnoise"].get("SCI").astype(np.float64), jumps=jumps,
        noiseless=noiseless.astype(np.float64), saturation=refs["saturation"].get("SCI").astype(np.float64),
    )


@pytest.fixture(scope="module")
def exposures(tmp_path_factory):
    """name -> Calibrated, each simulated and calibrated once per module."""
    cache: dict[str, Calibrated] = {}

    def get(name: str) -> Calibrated:
        if name not in cache:
            cache[name] = _calibrate(name, tmp_path_factory.mktemp(name))
        return cache[name]

    return get


@pytest.fixture(scope="module", params=sorted(CASES))
def calibrated(request, exposures) -> Calibrated:
    return exposures(request.param)


# --------------------------------------------------------------------------- helpers


def _usable(c: Calibrated) -> np.ndarray:
    gdq = c.out.ramp.images["GROUPDQ"]
    return (gdq & np.uint8(F["SATURATED"] | F["DO_NOT_USE"])) == 0


def _dead(c: Calibrated) -> np.ndarray:
    return (c.out.ramp.images["PIXELDQ"] & np.uint32(F["DO_NOT_USE"])) != 0


def _sigma_diff(c: Calibrated) -> np.ndarray:
    """Noise of one group difference, DN (read noise + Poisson of the difference)."""
    kw = c.kw
    tg, nframes = float(kw["TGROUP"]), int(kw["NFRAMES"])
    return np.sqrt(c.readnoise**2 / nframes + np.maximum(c.truth_rate + c.truth_dark, 0) * tg / c.gain)


def _sigma_rel(c: Calibrated) -> np.ndarray:
    kw = c.kw
    tg, nframes, nints = float(kw["TGROUP"]), int(kw["NFRAMES"]), int(kw["NINTS"])
    n = c.fitted_groups
    var_p = np.maximum(c.truth_rate + c.truth_dark, 0) / (c.gain * tg * (n - 1) * nints)
    var_r = c.readnoise**2 / (nframes * ((n - 1) * tg) ** 2 * nints)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(c.truth_rate > 0, np.sqrt(var_p + var_r) / c.truth_rate, np.inf)


def _grow(mask: np.ndarray) -> np.ndarray:
    """``mask`` (..., ny, nx) plus its 4 perpendicular neighbours."""
    out = mask.copy()
    out[..., 1:, :] |= mask[..., :-1, :]
    out[..., :-1, :] |= mask[..., 1:, :]
    out[..., :, 1:] |= mask[..., :, :-1]
    out[..., :, :-1] |= mask[..., :, 1:]
    return out


def _first_saturated_group(c: Calibrated) -> np.ndarray:
    """(nints, ny, nx) 0-based first group at or above SATURATION in the noiseless ramp (NGROUPS if none)."""
    above = c.noiseless >= c.saturation
    return np.where(above.any(axis=1), above.argmax(axis=1), above.shape[1])


def _report(c: Calibrated, what: str, **figures) -> None:
    text = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in figures.items())
    print(f"\n[{c.name}] {what}: {text}")


# --------------------------------------------------------------------------- criteria


def test_bright_unsaturated_pixels_median_relative_error(calibrated):
    c = calibrated
    rate, dq = c.out.rate.images["SCI"], c.out.rate.images["DQ"]
    unsaturated = (c.noiseless < c.saturation - SATURATION_MARGIN_DN).all(axis=(0, 1))
    bright = (dq == 0) & (_sigma_rel(c) <= BRIGHT_SIGMA_REL) & unsaturated & (c.truth_rate > 0)
    rel = np.abs(rate[bright] - c.truth_rate[bright]) / c.truth_rate[bright]
    median = float(np.median(rel)) if rel.size else np.nan
    _report(c, "bright pixels", n=int(bright.sum()), median_rel_err=median,
            median_expected=float(np.median(_sigma_rel(c)[bright])) if rel.size else np.nan,
            median_signed=float(np.median((rate[bright] - c.truth_rate[bright]) / c.truth_rate[bright])))
    assert bright.sum() >= MIN_BRIGHT_PIXELS, f"only {bright.sum()} bright unsaturated pixels"
    assert median <= BRIGHT_MEDIAN_REL_ERR


def test_clean_pixel_residuals_have_unit_spread(calibrated):
    c = calibrated
    rate, err, dq = (c.out.rate.images[e] for e in ("SCI", "ERR", "DQ"))
    clean = (dq == 0) & ~c.truth_jump_cube().any(axis=(0, 1))
    z = (rate[clean] - c.truth_rate[clean]) / err[clean]
    spread = float(np.std(z))
    _report(c, "clean residuals", n=int(clean.sum()), std_z=spread, mean_z=float(np.mean(z)))
    assert np.isfinite(z).all()
    assert abs(spread - 1.0) <= RESIDUAL_SPREAD


def test_injected_jumps_are_flagged(calibrated):
    c = calibrated
    usable = _usable(c)
    flagged = (c.out.ramp.images["GROUPDQ"] & np.uint8(F["JUMP_DET"])) != 0
    i, g, y, x, amp = c.jump_index()
    prev = np.maximum(g - 1, 0)
    detectable = (
        (g >= 1) & usable[i, g, y, x] & usable[i, prev, y, x]
        & (usable.sum(axis=1)[i, y, x] >= 3) & ~_dead(c)[y, x]
    )
    snr = amp / _sigma_diff(c)[y, x]
    hit = flagged[i, g, y, x]
    sure = detectable & (snr >= JUMP_SURE_SIGMA)
    fraction = float(hit[detectable].mean())
    missed_sure = [(int(a), int(b), int(cc), int(d), round(float(s), 1))
                   for a, b, cc, d, s in zip(i[sure & ~hit], g[sure & ~hit] + 1, y[sure & ~hit], x[sure & ~hit],
                                             snr[sure & ~hit], strict=True)]
    _report(c, "jumps", injected=len(amp), in_group_1=int((g == 0).sum()), detectable=int(detectable.sum()),
            flagged_fraction=fraction, at_least_10_sigma=int(sure.sum()), missed_at_least_10_sigma=len(missed_sure),
            flagged_below_10_sigma=f"{int((hit & detectable & ~sure).sum())}/{int((detectable & ~sure).sum())}")
    assert detectable.sum() >= MIN_JUMPS, "too few injected jumps to score"
    assert fraction >= JUMP_FLAGGED_FRACTION
    assert not missed_sure, f"jumps >= {JUMP_SURE_SIGMA} sigma not flagged (int, group, y, x, sigma): {missed_sure}"


def test_false_jump_flag_rate(calibrated):
    c = calibrated
    usable = _usable(c)
    gdq = c.out.ramp.images["GROUPDQ"]
    flagged = (gdq & np.uint8(F["JUMP_DET"])) != 0
    saturated_int = ((gdq & np.uint8(F["SATURATED"])) != 0).any(axis=1, keepdims=True)
    samples = np.zeros(gdq.shape, bool)
    samples[:, 1:] = usable[:, 1:] & usable[:, :-1]
    samples &= ~_grow(c.truth_jump_cube()) & ~saturated_int & ~_dead(c)
    n_false = int((flagged & samples).sum())
    rate = n_false / samples.sum()
    _report(c, "false jump flags", flags=n_false, clean_samples=int(samples.sum()), rate=float(rate))
    assert rate <= FALSE_JUMP_RATE


def test_saturated_pixels_keep_a_slope(calibrated):
    c = calibrated
    rate, err, dq = (c.out.rate.images[e] for e in ("SCI", "ERR", "DQ"))
    first = _first_saturated_group(c)  # (nints, ny, nx)
    nints, ngroups, ny, nx = c.shape
    ii, yy, xx = np.indices(first.shape)
    k = np.minimum(first, ngroups - 1)
    before = c.noiseless[ii, np.maximum(k - 1, 0), yy, xx]
    at = c.noiseless[ii, k, yy, xx]
    clear = (before <= c.saturation - SATURATION_MARGIN_DN) & (at >= c.saturation + SATURATED_ABOVE_DN)
    # before MIRI's last frame, which no fit uses (its flags do not reach the rate DQ, as in stcal)
    saturating = ((first >= 2) & (first < c.fitted_groups) & clear).all(axis=0)
    # the 3x3 box around a saturating pixel is flagged too: keep pixels whose box starts late
    earliest = first.min(axis=0).astype(float)
    box = np.pad(earliest, 1, constant_values=np.inf)
    box_min = np.min([box[dy : dy + ny, dx : dx + nx] for dy in range(3) for dx in range(3)], axis=0)
    selected = saturating & (box_min >= 2) & ~c.truth_jump_cube().any(axis=(0, 1)) & ~_dead(c)
    z = (rate[selected] - c.truth_rate[selected]) / err[selected]
    has_flag = (dq[selected] & F["SATURATED"]) != 0
    _report(c, "saturating pixels", n=int(selected.sum()), finite=int(np.isfinite(rate[selected]).sum()),
            saturated_flag=int(has_flag.sum()), max_abs_z=float(np.nanmax(np.abs(z))) if z.size else np.nan,
            std_z=float(np.nanstd(z)) if z.size else np.nan)
    assert selected.sum() >= MIN_SATURATING_PIXELS
    assert np.isfinite(rate[selected]).all()
    assert has_flag.all()
    assert (np.abs(z) <= SATURATED_MAX_Z).all()


@pytest.mark.parametrize("name", ["miri", "miri_full"])
def test_miri_later_integrations_are_corrected_for_rscd(exposures, name):
    c = exposures(name)
    assert c.out.statuses["rscd"] == "COMPLETE" and c.out.references["rscd"].startswith("jwst_miri_rscd")
    unsaturated = (c.noiseless < c.saturation - SATURATION_MARGIN_DN).all(axis=(0, 1))
    bright = (c.out.rate.images["DQ"] == 0) & (_sigma_rel(c) <= BRIGHT_SIGMA_REL) & unsaturated & (c.truth_rate > 0)
    skipped = run_detector1(c.uncal, c.refs, params=DETECTOR1.params(skip={"rscd"}), context="jwst_sim_0001.pmap",
                            software_version="test", created=CREATED)

    def medians(out) -> list[float]:
        ints = out.rateints.images["SCI"]
        return [float(np.median((ints[n][bright] - c.truth_rate[bright]) / c.truth_rate[bright]))
                for n in range(1, ints.shape[0])]

    corrected, uncorrected = medians(c.out), medians(skipped)
    _report(c, "RSCD, integrations 2..", n=int(bright.sum()), corrected=[f"{m:+.3%}" for m in corrected],
            rscd_skipped=[f"{m:+.3%}" for m in uncorrected])
    assert bright.sum() >= MIN_BRIGHT_PIXELS
    assert all(abs(m) <= RSCD_MEDIAN_REL_ERR for m in corrected)
    assert all(m < RSCD_UNCORRECTED_BELOW for m in uncorrected)


# --------------------------------------------------------------------------- products


def _open_quietly(path: Path):
    from stdatamodels.jwst import datamodels

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = datamodels.open(path)
    return model, [f"{w.category.__name__}: {w.message}" for w in caught]


def test_rate_products_open_in_public_datamodels(calibrated, tmp_path):
    c = calibrated
    out = c.out
    steps = DETECTOR1.sequence(c.kw)
    expected = [("rate", out.rate, "ImageModel", 2)]
    if int(c.kw["NINTS"]) > 1:
        expected.append(("rateints", out.rateints, "CubeModel", 3))
    else:
        assert out.rateints is None
    for suffix, product, model_type, ndim in expected:
        path = write_product(tmp_path / f"{c.name}_{suffix}.fits", product)
        model, caught = _open_quietly(path)
        with model:
            assert type(model).__name__ == model_type
            assert not caught, caught
            assert model.data.ndim == ndim and model.data.dtype.kind == "f" and model.data.dtype.itemsize == 4
            assert model.err.shape == model.data.shape and model.dq.shape == model.data.shape
            assert model.meta.bunit_data == "DN/s"
            assert model.meta.bunit_err == "DN/s"
            assert model.meta.ref_file.crds.context_used == "jwst_sim_0001.pmap"
            assert model.meta.cal_step.jump == "COMPLETE" and model.meta.cal_step.ramp_fit == "COMPLETE"
            assert model.meta.ref_file.gain.name == f"crds://{out.references['gain']}"
            if ndim == 3:
                assert model.data.shape[0] == int(c.kw["NINTS"])
                assert len(model.int_times) == int(c.kw["NINTS"])
        with fits.open(path) as hdul:
            primary = hdul[0].header
            assert hdul["SCI"].header["BUNIT"] == "DN/s"
            for step in steps:
                assert primary[step.status_keyword] in ("COMPLETE", "SKIPPED"), step.name
            for reftype in DETECTOR1.reftypes(c.kw):
                value = primary[reference_keyword(reftype)]
                if reftype in out.references:
                    assert value == f"crds://{out.references[reftype]}"
                else:
                    assert value == "N/A"
            assert primary["S_JUMP"] == "COMPLETE" and primary["S_RAMP"] == "COMPLETE"
            assert primary["S_DARK"] == "COMPLETE"


def test_dark_exposure_runs_calwebb_dark(exposures, tmp_path):
    c = exposures("nircam")
    keywords = {**c.uncal.keywords, "EXP_TYPE": "NRC_DARK"}
    dark_uncal = FitsProduct(model_type=c.uncal.model_type, keywords=keywords,
                             images=dict(c.uncal.images), tables=dict(c.uncal.tables))
    out = run_detector1(dark_uncal, c.refs, context="jwst_sim_0001.pmap", software_version="test", created=CREATED)
    assert out.rate is None and out.rateints is None
    assert out.ramp is not None
    assert set(out.statuses) == {"group_scale", "dq_init", "saturation", "superbias", "refpix", "linearity",
                                 "persistence"}
    assert "S_DARK" not in out.ramp.keywords and "S_JUMP" not in out.ramp.keywords
    assert "S_RAMP" not in out.ramp.keywords
    assert out.ramp.images["SCI"].shape == c.shape
    path = write_product(tmp_path / "dark_ramp.fits", out.ramp)
    model, caught = _open_quietly(path)
    with model:
        assert type(model).__name__ == "RampModel"
        assert not caught, caught
        assert model.meta.exposure.type == "NRC_DARK"
        assert model.meta.cal_step.superbias == "COMPLETE"
        assert model.meta.cal_step.dark_sub is None
    with fits.open(path) as hdul:
        assert "S_DARK" not in hdul[0].header and "S_SUPERB" in hdul[0].header

