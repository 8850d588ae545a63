"""The simulator: plan, telemetry, truth and reference files (fast: small subarrays).

Tolerances are stated beside each check. Two module-scoped simulations (NIRCam, 2
detectors x 2 dither points x 2 integrations; MIRI with REFOUT) feed most tests.
"""

from __future__ import annotations

import math
import os
import time
from collections import defaultdict
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from stdatamodels.jwst import datamodels as dm

from services.simulator import (
    DescriptionError,
    build_plan,
    load_description,
    simulate,
    simulate_exposure,
)
from services.simulator.detector_model import (
    apply_nonlinearity,
    linearity_coefficients,
    make_detector_model,
)
from services.simulator.ramps import ResetDecay
from services.simulator.reffiles import dark_signal
from services.simulator.sky import render_stars
from shared.instruments import SUBARRAYS, detector, exposure_timing, subarray
from shared.plan import Plan
from shared.telemetry import APID, Fault, Packet, decode_stream

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def nircam_description(**simulation) -> dict:
    return {
        "program": 4321,
        "title": "Simulator test",
        "pi": "Test Person",
        "category": "GO",
        "eap_months": 12,
        "authorized_users": ["someone@example.org"],
        "targets": [{"name": "FIELD", "ra": 53.16, "dec": -27.79}],
        "observations": [{
            "target": "FIELD", "instrument": "NIRCAM", "detectors": ["NRCA1", "NRCA2"],
            "filter": "F200W", "pupil": "CLEAR", "readpatt": "BRIGHT2", "ngroups": 5, "nints": 2,
            "subarray": "SUB64P", "roll": 20.0,
            "dither": {"pattern": "CUSTOM", "offsets": [[0.0, 0.0], [1.0, 0.5]]},
            "start_time": "2025-06-01T00:00:00",
        }],
        "simulation": {
            "seed": 5, "cosmic_ray_rate": 0.02, "stars_per_window": 20, "bright_stars_per_window": 2,
            "bright_flux_min": 5.0e6, "bright_flux_max": 2.0e7, **simulation,
        },
    }


def miri_description(**simulation) -> dict:
    return {
        "program": 4322, "title": "MIRI test", "pi": "Test Person", "category": "ERS", "eap_months": 0,
        "targets": [{"name": "FIELD", "ra": 266.4, "dec": -29.0}],
        "observations": [{
            "target": "FIELD", "instrument": "MIRI", "detectors": ["MIRIMAGE"], "filter": "F770W",
            "readpatt": "FAST", "ngroups": 6, "nints": 1, "subarray": "SUB128",
        }],
        "simulation": {"seed": 9, **simulation},
    }


@pytest.fixture(scope="module")
def nircam(tmp_path_factory):
    calls = []
    out = tmp_path_factory.mktemp("nircam")
    result = simulate(nircam_description(), out, progress=lambda *a: calls.append(a))
    return result, calls


@pytest.fixture(scope="module")
def miri(tmp_path_factory):
    return simulate(miri_description(), tmp_path_factory.mktemp("miri"))


@pytest.fixture(scope="module")
def models():
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = make_detector_model(detector(name), 2022)
        return cache[name]

    return get


def decode(path: Path) -> list[Packet]:
    items = list(decode_stream(path.read_bytes()))
    faults = [i for i in items if isinstance(i, Fault)]
    assert not faults, faults[:3]
    return items


def assemble(packets: list[Packet], shape: tuple[int, ...], *, zeroframe: bool = False) -> np.ndarray:
    cube = np.zeros(shape, np.uint16)
    seen = np.zeros(shape[:-1], bool)
    for p in packets:
        h = p.header
        rows = slice(h.first_row, h.first_row + h.nrows)
        where = (h.integration - 1, rows) if zeroframe else (h.integration - 1, h.group - 1, rows)
        cube[where] = p.pixels
        seen[where] = True
    assert seen.all(), "rows missing from the telemetry"
    return cube


def find(plan: Plan, exposure_id: str):
    for obs in plan.observations:
        for exp in obs.exposures:
            name = f"jw{plan.program}{obs.number:03d}{exp.visit:03d}_{exp.visit_group:02d}{exp.sequence}{exp.activity:02d}_{exp.exposure:05d}_{exp.detector.lower()}"
            if name == exposure_id:
                return obs, exp
    raise KeyError(exposure_id)


# --- plan -----------------------------------------------------------------------------


def test_plan_file_validates_and_lists_every_exposure(nircam):
    result, _ = nircam
    plan = Plan.model_validate_json(result.plan_path.read_text())
    assert plan == result.plan
    assert result.plan_path.name == "jw04321_plan.json"
    assert plan.program == "04321" and plan.pi_name == "Test Person" and plan.eap_months == 12
    obs = plan.observations[0]
    assert obs.number == 1 and obs.template == "NIRCam Imaging" and obs.exp_type == "NRC_IMAGE"
    assert [(e.exposure, e.detector) for e in obs.exposures] == [
        (1, "NRCA1"), (1, "NRCA2"), (2, "NRCA1"), (2, "NRCA2")
    ]
    assert all((e.visit, e.visit_group, e.sequence, e.activity) == (1, 1, 1, 1) for e in obs.exposures)
    timing = exposure_timing("NIRCAM", subarray("NIRCAM", "SUB64P"), "BRIGHT2", 5, 2)
    step = obs.exposures[2].start_time - obs.exposures[0].start_time
    assert step == timedelta(seconds=timing.duration + 30.0)  # DURATION + default overhead
    assert obs.exposures[0].start_time == obs.exposures[1].start_time  # detectors read together
    assert obs.exposures[0].start_time.utcoffset() == timedelta(0)
    assert obs.dither.offsets == [(0.0, 0.0), (1.0, 0.5)]


def test_dither_moves_each_pointing_by_the_offset(nircam):
    result, _ = nircam
    from services.simulator.pointing import tangent_project

    obs = result.plan.observations[0]
    by = {(e.exposure, e.detector): e.pointing for e in obs.exposures}
    for det in ("NRCA1", "NRCA2"):
        p1, p2 = by[(1, det)], by[(2, det)]
        xi, eta = tangent_project(p1.ra, p1.dec, p2.ra, p2.dec)
        assert math.hypot(float(xi), float(eta)) == pytest.approx(math.hypot(1.0, 0.5), abs=1e-4)
        assert p1.roll == pytest.approx(20.0, abs=0.05)
    # The two detectors are ~68 arcsec apart in V3 (detector y).
    a1, a2 = by[(1, "NRCA1")], by[(1, "NRCA2")]
    xi, eta = tangent_project(a1.ra, a1.dec, a2.ra, a2.dec)
    assert 60.0 < math.hypot(float(xi), float(eta)) < 80.0


def test_progress_reports_every_exposure(nircam):
    _, calls = nircam
    stages = defaultdict(list)
    for stage, done, total in calls:
        stages[stage].append((done, total))
    assert stages["plan"] == [(1, 1)]
    assert stages["exposures"] == [(k, 4) for k in range(1, 5)]
    assert stages["references"] == [(1, 2), (2, 2)]


def test_examples_validate():
    files = sorted(EXAMPLES.glob("*.yaml"))
    assert {f.name for f in files} >= {"nircam_imaging.yaml", "niriss_imaging.yaml", "miri_imaging.yaml"}
    for f in files:
        plan = build_plan(load_description(f))
        assert plan.observations and all(o.exposures for o in plan.observations)
    demo = build_plan(load_description(EXAMPLES / "nircam_imaging.yaml")).observations[0]
    assert demo.detectors == ["NRCA1", "NRCA2"] and demo.dither.npoints == 4 and len(demo.exposures) == 8


# --- telemetry ------------------------------------------------------------------------


def test_telemetry_decodes_and_matches_the_simulated_cube(nircam, models):
    result, _ = nircam
    plan = result.plan
    assert [p.name for p in result.telemetry_paths] == [
        "jw04321001001_01101_00001_nrca1.ccsds", "jw04321001001_01101_00001_nrca2.ccsds",
        "jw04321001001_01101_00002_nrca1.ccsds", "jw04321001001_01101_00002_nrca2.ccsds",
    ]
    knobs = load_description(nircam_description()).simulation
    for path in (result.telemetry_paths[0], result.telemetry_paths[3]):
        obs, exp = find(plan, path.stem)
        sim = simulate_exposure(plan, obs, exp, knobs, model=models(exp.detector))
        packets = decode(path)
        by_apid = defaultdict(list)
        for p in packets:
            by_apid[p.apid].append(p)
        # The science streams, then the exposure's fine guiding (docs/telemetry.md).
        assert set(by_apid) == {APID.SCIENCE["NIRCAM"], APID.ZEROFRAME["NIRCAM"], APID.GUIDE_CENTROID,
                                APID.GUIDE_IMAGE["fg"]}
        for stream in by_apid.values():  # per-APID counters from 0, step 1
            assert [p.sequence_count for p in stream] == list(range(len(stream)))
        guider = detector(obs.guide_star(exp.visit).detector).code
        assert all(p.header.detector_code == guider for a in (APID.GUIDE_CENTROID, APID.GUIDE_IMAGE["fg"])
                   for p in by_apid.pop(a))
        packets = [p for p in packets if p.apid in by_apid]
        for p in packets:
            h = p.header
            assert (h.program, h.observation, h.visit, h.visit_group, h.sequence, h.activity) == (4321, 1, 1, 1, 1, 1)
            assert h.exposure == exp.exposure and h.detector_code == detector(exp.detector).code
        ny, nx = 64, 64
        sci = assemble(by_apid[APID.SCIENCE["NIRCAM"]], (2, 5, ny, nx))
        zero = assemble(by_apid[APID.ZEROFRAME["NIRCAM"]], (2, ny, nx), zeroframe=True)
        np.testing.assert_array_equal(sci, sim.sci)
        np.testing.assert_array_equal(zero, sim.zeroframe)
        assert all(p.header.group == 0 for p in by_apid[APID.ZEROFRAME["NIRCAM"]])
        # Group time stamps: start + (i-1) * (ngroups*tgroup + tframe) + g*tgroup (1/65536 s).
        timing = sim.timing
        for p in by_apid[APID.SCIENCE["NIRCAM"]]:
            h = p.header
            expect = exp.start_time + timedelta(
                seconds=(h.integration - 1) * (5 * timing.tgroup + timing.tframe) + h.group * timing.tgroup)
            assert abs((h.time - expect).total_seconds()) < 2.0 / 65536


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    desc = nircam_description(write_references=False, compress=True, rows_per_packet=16)
    desc["observations"][0].update(detectors=["NRCA1"], dither={"pattern": "NONE"}, nints=1)
    a = simulate(desc, tmp_path / "a")
    b = simulate(desc, tmp_path / "b")
    c = simulate(desc, tmp_path / "c", seed=6)
    assert a.reference_paths == []
    for pa, pb, pc in zip(a.telemetry_paths, b.telemetry_paths, c.telemetry_paths, strict=True):
        assert pa.read_bytes() == pb.read_bytes()
        assert pa.read_bytes() != pc.read_bytes()
    for name in ("truth.json",):
        assert (a.truth_dir / name).read_bytes() == (b.truth_dir / name).read_bytes()
    # The science rows are compressed as asked; the fine guiding (small) never is.
    packets = [p for p in decode(a.telemetry_paths[0]) if APID.describe(p.apid)[1] == "sci"]
    assert all(p.header.compressed for p in packets)
    assert {p.header.nrows for p in packets} == {16}


def test_miri_telemetry_carries_refout(miri, models):
    plan = miri.plan
    obs, exp = find(plan, miri.telemetry_paths[0].stem)
    packets = decode(miri.telemetry_paths[0])
    apids = {p.apid for p in packets}
    # no zero frame for MIRI; the exposure's fine guiding rides along
    assert apids == {APID.SCIENCE["MIRI"], APID.REFOUT["MIRI"], APID.GUIDE_CENTROID, APID.GUIDE_IMAGE["fg"]}
    sub = subarray("MIRI", "SUB128")
    refout = assemble([p for p in packets if p.apid == APID.REFOUT["MIRI"]], (1, 6, sub.ysize // 4, sub.xsize))
    sci = assemble([p for p in packets if p.apid == APID.SCIENCE["MIRI"]], (1, 6, sub.ysize, sub.xsize))
    sim = simulate_exposure(plan, obs, exp, miri_knobs(), model=models("MIRIMAGE"))
    np.testing.assert_array_equal(refout, sim.refout)
    np.testing.assert_array_equal(sci, sim.sci)
    # Bias-like level, no signal: flat up the ramp to within the read noise and drifts.
    assert 11000 < np.median(refout) < 13000
    assert abs(float(np.median(refout[0, -1].astype(float) - refout[0, 0]))) < 30


def miri_knobs():
    return load_description(miri_description()).simulation


# --- truth ----------------------------------------------------------------------------


def _linearize(raw: np.ndarray, coeffs: np.ndarray) -> np.ndarray:
    out = np.zeros(raw.shape)
    for k in range(coeffs.shape[0] - 1, -1, -1):
        out = out * raw + coeffs[k]
    return out


@pytest.mark.parametrize("instrument", ["NIRCAM", "MIRI"])
def test_reference_files_recover_the_truth_rate(nircam, miri, models, instrument):
    """Noiseless ramp calibrated with the written superbias, linearity and dark references
    gives the truth rate: |slope - truth| < 1.2 DN / (ramp span) + 0.1 % (quantization to
    integer DN and the truncated inverse series)."""
    result = nircam[0] if instrument == "NIRCAM" else miri
    plan = result.plan
    obs, exp = plan.observations[0], plan.observations[0].exposures[0]
    knobs = load_description(nircam_description() if instrument == "NIRCAM" else miri_description()).simulation
    knobs = knobs.model_copy(update={"sky_level": 3000.0})
    sim = simulate_exposure(plan, obs, exp, knobs, model=models(exp.detector), noiseless=True)
    sub, s = sim.subarray, sim.schedule
    cut = (slice(sub.ystart - 1, sub.ystart - 1 + sub.ysize), slice(sub.xstart - 1, sub.xstart - 1 + sub.xsize))
    refs = {dm.open(p).meta.reftype: p for p in result.reference_paths if exp.detector.lower() in p.name}
    with dm.open(refs["LINEARITY"]) as lin, dm.open(refs["DARK"]) as dark, dm.open(refs["SATURATION"]) as sat:
        coeffs = np.asarray(lin.coeffs[(slice(None),) + cut], np.float64)
        dark_frames = np.asarray(dark.data if instrument == "NIRCAM" else dark.data[0], np.float64)
        threshold = np.asarray(sat.data[cut])
    raw = sim.sci[0].astype(np.float64)
    if instrument == "NIRCAM":
        with dm.open(refs["SUPERBIAS"]) as bias:
            raw = raw - np.asarray(bias.data[cut], np.float64)
    lin_ramp = _linearize(raw, coeffs)
    first = [s.first_frame(g) for g in (1, s.ngroups)]
    dark_groups = [dark_frames[f - 1 : f - 1 + s.nframes].mean(axis=0) for f in first]
    span = (s.ngroups - 1) * s.tgroup
    slope = ((lin_ramp[-1] - dark_groups[1]) - (lin_ramp[0] - dark_groups[0])) / span
    # Pixels whose last frame stays below the clip (a group of NFRAMES frames can average
    # below the SATURATION threshold while its last frame is clipped, as on the detectors).
    win = models(exp.detector).window(sub)
    last = win.bias + apply_nonlinearity((sim.truth.rate + sim.truth.dark) * s.last_frame_time, win.nonlin)
    good = (last < win.full_well - 1) & (sim.truth.flat > 0)
    assert np.all(sim.sci[0, -1][good] < threshold[good] + 100)
    truth = sim.truth.rate
    assert good.sum() > 0.9 * good.size - 200
    err = np.abs(slope - truth)[good]
    tol = (1.2 / span + 1e-3 * truth)[good]
    assert np.all(err < tol), float(np.max(err - tol))
    # The dark reference holds dark/gain * frame time per frame.
    np.testing.assert_allclose(dark_frames[2], dark_signal(sim.truth.dark, s.tframe, 3)[2], rtol=1e-5, atol=1e-6)


def test_star_truth_sums_to_the_injected_flux(nircam):
    result, _ = nircam
    for path in result.telemetry_paths:
        stem = path.stem
        stars = Table.read(result.truth_dir / f"{stem}_truth_stars.ecsv", format="ascii.ecsv")
        with fits.open(result.truth_dir / f"{stem}_truth_rate.fits") as hdul:
            star_rate = hdul["STARS"].data.astype(np.float64)
            flux = hdul["FLUX"].data.astype(np.float64)
            sky = hdul[0].header["SKYLEVEL"] * hdul["AREA"].data.astype(np.float64)  # uniform surface brightness
            rate = hdul["SCI"].data
            flat, gain = hdul["FLAT"].data, hdul["GAIN"].data
            assert hdul["SCI"].header["BUNIT"] == "DN/s"
        assert len(stars) > 5
        # Stars' DN/s add up to the STARS image; their electrons to FLUX minus the sky (1e-5).
        assert star_rate.sum() == pytest.approx(float(np.sum(stars["rate"])), rel=1e-5)
        assert (flux - sky).sum() == pytest.approx(float(np.sum(stars["flux_in_window"])), rel=1e-5)
        np.testing.assert_allclose(rate, (flux * flat / gain).astype(np.float32), rtol=1e-5)
        # A star well inside the window puts all its flux in it.
        inside = (stars["x"] > 8) & (stars["x"] < 55) & (stars["y"] > 8) & (stars["y"] < 55)
        np.testing.assert_allclose(stars["flux_in_window"][inside], stars["flux"][inside], rtol=1e-6)


def test_render_stars_conserves_flux():
    rng = np.random.default_rng(0)
    x, y = rng.uniform(10, 90, 50), rng.uniform(10, 90, 50)
    flux = rng.uniform(1, 1e5, 50)
    out = render_stars(x, y, flux, 2.0, (100, 100), weights=np.full((100, 100), 0.5))
    assert out.image.sum() == pytest.approx(flux.sum(), rel=1e-9)
    np.testing.assert_allclose(out.captured, 1.0, atol=1e-9)
    np.testing.assert_allclose(out.weighted, 0.5 * flux, rtol=1e-9)
    # Centroid of a lone star is where it was put.
    one = render_stars(np.array([40.3]), np.array([60.7]), np.array([1.0]), 2.5, (100, 100)).image
    yy, xx = np.indices(one.shape)
    assert (one * xx).sum() == pytest.approx(40.3, abs=1e-6)
    assert (one * yy).sum() == pytest.approx(60.7, abs=1e-6)


def test_cosmic_rays_appear_as_steps(nircam, models):
    """Each recorded hit (group >= 2, alone on its pixel in its integration, on sky) shows
    as a step of its amplitude between groups g-1 and g: within 100 DN + 2 % (read noise,
    drifts and the non-linearity of the deposit)."""
    result, _ = nircam
    path = result.telemetry_paths[0]
    obs, exp = find(result.plan, path.stem)
    sim = simulate_exposure(result.plan, obs, exp, load_description(nircam_description()).simulation,
                            model=models(exp.detector))
    jumps = Table.read(result.truth_dir / f"{path.stem}_truth_jumps.ecsv", format="ascii.ecsv")
    assert len(jumps) > 20
    assert set(jumps.colnames) == {"integration", "group", "y", "x", "amplitude_dn"}
    counts = defaultdict(int)
    for j in jumps:
        counts[(j["integration"], j["y"], j["x"])] += 1
    checked = 0
    for j in jumps:
        i, g, y, x, amp = int(j["integration"]), int(j["group"]), int(j["y"]), int(j["x"]), float(j["amplitude_dn"])
        if g < 2 or counts[(i, y, x)] > 1 or sim.truth.rate[y, x] > 50:
            continue
        ramp = sim.sci[i - 1, :, y, x].astype(float)
        step = ramp[g - 1] - ramp[g - 2]
        others = np.delete(np.diff(ramp), g - 2)
        assert abs(step - np.median(others) - amp) < 100 + 0.02 * amp, (i, g, y, x, amp, ramp)
        checked += 1
    assert checked > 10


def test_reference_pixels_carry_the_recorded_drifts(nircam, models):
    """Reference pixels minus bias, averaged per group and column parity, equal the DRIFTS
    truth within 2 DN (~5 sigma of the mean of ~250 pixels with 6 DN read noise each)."""
    result, _ = nircam
    path = result.telemetry_paths[0]
    obs, exp = find(result.plan, path.stem)
    model = models(exp.detector)
    win = model.window(subarray("NIRCAM", obs.subarray))
    sci = assemble([p for p in decode(path) if p.apid == APID.SCIENCE["NIRCAM"]], (2, 5, 64, 64))
    with fits.open(result.truth_dir / f"{path.stem}_truth_rate.fits") as hdul:
        table = hdul["DRIFTS"].data
        assert hdul["DRIFTS"].header["PARITYOF"] == "COLUMN"
    drift = {(r["INTEGRATION"], r["GROUP"], r["AMPLIFIER"], r["PARITY"]): r["OFFSET"] for r in table}
    assert {k[2] for k in drift} == {0}  # SUB64P is read through one output
    parity = np.broadcast_to(np.arange(64) % 2, (64, 64))
    for (i, g, _, par), offset in drift.items():
        pick = win.refpix & (parity == par)
        measured = float(np.mean(sci[i - 1, g - 1][pick] - win.bias[pick]))
        assert measured == pytest.approx(offset, abs=2.0)


def test_saturated_stars_reach_full_well(nircam, models):
    result, _ = nircam
    saturated = 0
    for path in result.telemetry_paths:
        obs, exp = find(result.plan, path.stem)
        stars = Table.read(result.truth_dir / f"{path.stem}_truth_stars.ecsv", format="ascii.ecsv")
        sim_sci = None
        for s in stars[stars["saturated"]]:
            if sim_sci is None:
                sim_sci = simulate_exposure(result.plan, obs, exp, load_description(nircam_description()).simulation,
                                            model=models(exp.detector)).sci
            y, x = int(np.floor(s["y"] + 0.5)), int(np.floor(s["x"] + 0.5))
            full_well = models(exp.detector).full_well[y, x]  # SUB64P starts at (1, 1)
            assert sim_sci[0, -1, y, x] == np.uint16(np.rint(full_well))
            saturated += 1
    assert saturated >= 1


def test_nonlinearity_is_inverted_by_the_linearity_coefficients():
    rng = np.random.default_rng(1)
    a = rng.uniform(1.0e-6, 1.6e-6, 1000)
    bias = rng.uniform(11500, 12500, 1000)
    s = rng.uniform(1.0, 49000.0, 1000)
    measured = apply_nonlinearity(s, a)
    near_ir = _linearize(measured, linearity_coefficients(a[None], None)[:, 0].astype(np.float64))
    assert np.max(np.abs(near_ir / s - 1)) < 1e-3
    miri = _linearize(bias + measured, linearity_coefficients(a[None], bias[None])[:, 0].astype(np.float64))
    assert np.max(np.abs((miri - bias) / s - 1)) < 1e-3


# --- reference files ------------------------------------------------------------------

EXPECTED_CLASS = {
    "MASK": dm.MaskModel, "SATURATION": dm.SaturationModel, "SUPERBIAS": dm.SuperBiasModel,
    "LINEARITY": dm.LinearityModel, "GAIN": dm.GainModel, "READNOISE": dm.ReadnoiseModel,
    "FLAT": dm.FlatModel, "AREA": dm.PixelAreaModel, "DISTORTION": dm.DistortionModel,
    "FILTEROFFSET": dm.FilteroffsetModel, "RSCD": dm.RSCDModel,
}
WINDOWLESS = {"PHOTOM", "AREA", "DISTORTION", "FILTEROFFSET", "RSCD"}  # no SUBARRAY keywords in these files
CATALOG_CLASS = {  # the source catalog's, one file per instrument
    "APCORR": {"NIRCAM": dm.NrcImgApcorrModel, "MIRI": dm.MirImgApcorrModel},
    "ABVEGAOFFSET": {"NIRCAM": dm.ABVegaOffsetModel, "MIRI": dm.ABVegaOffsetModel},
}


def test_reference_files_open_as_the_right_models(nircam, miri):
    result, _ = nircam
    seen = defaultdict(set)
    for path in result.reference_paths + miri.reference_paths:
        with dm.open(path) as model:
            reftype = model.meta.reftype.upper()  # DistortionModel writes its type in lower case
            if reftype in CATALOG_CLASS:  # one per instrument, no detector
                instrument = model.meta.instrument.name
                assert type(model) is CATALOG_CLASS[reftype][instrument], (path.name, type(model))
                assert model.meta.useafter == "2022-01-01T00:00:00" and model.meta.pedigree == "SIMULATION"
                seen[instrument].add(reftype)
                continue
            det = model.meta.instrument.detector
            seen[det].add(reftype)
            if det.startswith("GUIDER"):  # the guider of the guided visits: calwebb_guider's references
                assert type(model) is EXPECTED_CLASS[reftype] and model.meta.instrument.name == "FGS"
                assert path.name == f"jwst_fgs_{reftype.lower()}_{det.lower()}_sim.fits"
                assert model.meta.subarray.name == "GENERIC" and model.meta.pedigree == "SIMULATION"
                array = model.dq if reftype == "MASK" else model.data
                assert array.shape == (2048, 2048)
                continue
            if reftype == "DARK":
                expected = dm.DarkMIRIModel if det == "MIRIMAGE" else dm.DarkModel
            elif reftype == "PHOTOM":
                expected = dm.MirImgPhotomModel if det == "MIRIMAGE" else dm.NrcImgPhotomModel
            else:
                expected = EXPECTED_CLASS[reftype]
            assert type(model) is expected, (path.name, type(model))
            assert model.meta.useafter == "2022-01-01T00:00:00"
            assert model.meta.pedigree == "SIMULATION"
            assert model.meta.instrument.name == ("MIRI" if det == "MIRIMAGE" else "NIRCAM")
            assert path.name.startswith(f"jwst_{model.meta.instrument.name.lower()}_{reftype.lower()}_{det.lower()}")
            full = (1024, 1032) if det == "MIRIMAGE" else (2048, 2048)
            if reftype == "DARK":
                assert model.meta.exposure.nframes == 1 and model.meta.exposure.groupgap == 0
                sub = subarray(model.meta.instrument.name, model.meta.subarray.name)
                assert model.data.shape[-2:] == (sub.ysize, sub.xsize)
                assert model.data.ndim == (4 if det == "MIRIMAGE" else 3)
            elif reftype not in WINDOWLESS:
                assert model.meta.subarray.name == "GENERIC"
                array = model.coeffs if reftype == "LINEARITY" else (model.dq if reftype == "MASK" else model.data)
                assert array.shape[-2:] == full
    nir = {"MASK", "SATURATION", "SUPERBIAS", "LINEARITY", "GAIN", "READNOISE", "DARK", "FLAT", "PHOTOM", "AREA",
           "DISTORTION", "FILTEROFFSET"}
    assert seen["NRCA1"] == nir and seen["NRCA2"] == nir
    assert seen["MIRIMAGE"] == nir - {"SUPERBIAS"} | {"RSCD"}  # MIRI: no superbias step, an rscd one
    assert seen["NIRCAM"] == seen["MIRI"] == set(CATALOG_CLASS)
    guiders = {d for d in seen if d.startswith("GUIDER")}
    assert guiders and all(seen[d] == {"MASK", "GAIN", "READNOISE", "FLAT"} for d in guiders)


def test_miri_rscd_and_its_reference_file(tmp_path, models):
    """Integrations 2.. of a noiseless MIRI exposure differ from the first by the reset-switch
    charge decay of the detector model; detector-1's rscd kernel with the parameters of the
    written RSCD file (RSCD_DECAY row of the exposure's SUBARRAY/READPATT) removes it to the
    accuracy of the linearity inverse (1e-4 relative) and quantization."""
    from services.detector1.steps.rscd import correct_rscd, decay_parameters
    from services.simulator.reffiles import rscd_group_skip

    desc = miri_description(sky_level=30000.0, cosmic_ray_rate=0.0)
    desc["observations"][0].update(nints=3, ngroups=6)
    result = simulate(desc, tmp_path)
    plan = result.plan
    obs, exp = plan.observations[0], plan.observations[0].exposures[0]
    knobs = load_description(desc).simulation
    sim = simulate_exposure(plan, obs, exp, knobs, model=models("MIRIMAGE"), noiseless=True)
    params = models("MIRIMAGE").params
    assert sim.truth.reset_decay == ResetDecay(params.rscd_scale, params.rscd_tau, params.rscd_level_max)
    [path] = [p for p in result.reference_paths if "_rscd_" in p.name]
    with dm.open(path) as rscd:
        skip = {(r["subarray"], r["readpatt"]): (r["group_skip1"], r["group_skip"]) for r in rscd.rscd_group_skip_table}
        assert skip[("SUB128", "FAST")] == (0, rscd_group_skip(sim.truth.reset_decay, 8.0)) == (0, 4)
        assert set(skip) == {(s, p) for s in SUBARRAYS["MIRI"] for p in ("FAST", "SLOW", "FASTR1", "SLOWR1")}
    with fits.open(path) as hdul:
        decay = decay_parameters(np.array(hdul["RSCD_DECAY"].data), "SUB128", "FAST")
    assert (decay.scale, decay.tau, decay.level_max) == (params.rscd_scale, params.rscd_tau, params.rscd_level_max)

    sub = sim.subarray
    cut = (slice(sub.ystart - 1, sub.ystart - 1 + sub.ysize), slice(sub.xstart - 1, sub.xstart - 1 + sub.xsize))
    with dm.open(next(p for p in result.reference_paths if "_linearity_" in p.name)) as lin:
        coeffs = np.asarray(lin.coeffs[(slice(None),) + cut], np.float64)
    with dm.open(next(p for p in result.reference_paths if "_saturation_" in p.name)) as sat:
        unsaturated = (sim.sci < np.asarray(sat.data[cut])).all(axis=(0, 1))
    ramp = np.stack([_linearize(sim.sci[n].astype(np.float64), coeffs) for n in range(3)]).astype(np.float32)
    collected = ramp[0, -1] - ramp[0, 0]
    assert np.median(collected[unsaturated]) > 1000  # enough signal for a visible offset
    change = ramp[1:] - ramp[0]
    assert np.all(change[:, 0][:, unsaturated] > 0.9 * decay.scale * np.minimum(collected, 15000)[unsaturated] - 1)
    corrected = correct_rscd(ramp, np.zeros(ramp.shape, np.uint8), decay).data
    tol = 1.0 + 1e-4 * np.abs(ramp[0])
    assert np.all((np.abs(corrected[1:] - ramp[0]) <= tol)[:, :, unsaturated])


def test_mask_flags_reference_and_dead_pixels(nircam):
    result, _ = nircam
    path = next(p for p in result.reference_paths if "mask_nrca1" in p.name)
    with dm.open(path) as mask:
        dq = np.asarray(mask.dq)
    ref = np.uint32(1 << 31)
    assert np.all(dq[:4] & ref) and np.all(dq[:, -4:] & ref) and not np.any(dq[100:-100, 100:-100] & ref)
    assert np.count_nonzero(dq & 1024) > 100  # DEAD, with DO_NOT_USE
    assert np.all(dq[(dq & 1024) > 0] & 1)


# --- bad input ------------------------------------------------------------------------


def _bad(**changes) -> dict:
    desc = nircam_description()
    desc["observations"][0].update(changes)
    return desc


@pytest.mark.parametrize(
    ("desc", "words"),
    [
        (_bad(detectors=["NRCA1", "NRCX9"]), ["observations[0].detectors", "NRCX9"]),
        (_bad(detectors=["MIRIMAGE"]), ["observations[0].detectors", "belongs to MIRI"]),
        (_bad(filter="F444W"), ["long-wavelength", "NRCA1"]),
        (_bad(subarray="SUB999"), ["observations[0].subarray", "SUB999"]),
        (_bad(readpatt="FAST"), ["observations[0].readpatt", "FAST"]),
        (_bad(target="NOWHERE"), ["observations[0].target", "NOWHERE"]),
        (_bad(ngroup=5), ["observations[0].ngroup", "unknown field"]),
        (_bad(ngroups=0), ["observations[0].ngroups"]),
        (_bad(dither={"pattern": "SPIRAL"}), ["observations[0].dither", "offsets"]),
        (_bad(instrument="NIRSPEC", detectors=["NRS1"]), ["observations[0]", "instrument: NIRSPEC is not simulated"]),
    ],
)
def test_bad_description_names_the_field(desc, words):
    with pytest.raises(DescriptionError) as info:
        load_description(desc)
    for word in words:
        assert word in str(info.value)


def test_bad_rows_per_packet_and_missing_file(tmp_path):
    with pytest.raises(DescriptionError, match="simulation.rows_per_packet"):
        simulate(nircam_description(rows_per_packet=4000, write_references=False), tmp_path)
    with pytest.raises(DescriptionError, match="not found"):
        load_description(tmp_path / "missing.yaml")
    with pytest.raises(DescriptionError, match="not valid YAML"):
        load_description("program: [1\ntitle: x\n")


@pytest.mark.slow
def test_full_frame_exposure_is_fast(models):
    desc = nircam_description(cosmic_ray_rate=5e-5)
    desc["observations"][0].update(detectors=["NRCA1"], subarray="FULL", readpatt="RAPID", ngroups=10,
                                   nints=1, dither={"pattern": "NONE"})
    plan = build_plan(load_description(desc))
    obs = plan.observations[0]
    start = time.perf_counter()
    sim = simulate_exposure(plan, obs, obs.exposures[0], load_description(desc).simulation, model=models("NRCA1"))
    elapsed = time.perf_counter() - start
    assert sim.sci.shape == (1, 10, 2048, 2048)
    assert elapsed < 15.0 * max(1.0, 2.0 / (os.cpu_count() or 1))
