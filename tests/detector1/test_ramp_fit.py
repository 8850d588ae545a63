"""OLS ramp fitting with optimal weighting: exact recoveries, hand-computed variances, noise
calibration, DQ rules, special cases, and a per-pixel reference implementation."""

from __future__ import annotations

import numpy as np
import pytest

from services.detector1.steps.ramp_fit import (
    P_EDGES,
    P_VALUES,
    RampFitParams,
    fit_ramps,
    segment_coefficients,
)

TG = 10.0
GAIN = 2.0
RN = 10.0  # CDS read noise, DN


def _inputs(data, gain=GAIN, rn=RN):
    ny, nx = data.shape[-2:]
    return (
        np.zeros(data.shape, np.uint8),
        np.zeros((ny, nx), np.uint32),
        np.full((ny, nx), gain, np.float32),
        np.full((ny, nx), rn, np.float32),
    )


def _linear(nints, ngroups, slope_dn_s, ny=4, nx=5, bias=500.0):
    g = np.arange(ngroups, dtype=np.float64)[None, :, None, None]
    slope = np.broadcast_to(np.asarray(slope_dn_s, np.float64), (ny, nx))
    return (bias + slope * TG * (g + 1) + np.zeros((nints, ngroups, ny, nx))).astype(np.float32)


def test_defaults():
    assert RampFitParams().suppress_one_group is True
    assert P_EDGES == (5.0, 10.0, 20.0, 50.0, 100.0)
    assert P_VALUES == (0.0, 0.4, 1.0, 3.0, 6.0, 10.0)


@pytest.mark.parametrize("n", [2, 3, 4, 7, 10])
@pytest.mark.parametrize("power", P_VALUES)
def test_coefficients_give_exact_slopes(n, power):
    c = segment_coefficients(n, power)
    i = np.arange(n)
    assert c.sum() == pytest.approx(0.0, abs=1e-12)
    assert (c * i).sum() == pytest.approx(1.0)
    # weights |(i-m)/m|^P: the midpoint of an odd segment gets no weight for P > 0
    if n % 2 and power > 0:
        assert c[n // 2] == 0.0


def test_noiseless_slopes_recovered_exactly_in_every_weighting_regime():
    # from read-noise dominated (P=0) to very bright (P=10)
    slopes = np.array([[0.0, 0.05, 0.5, 2.0, 10.0], [40.0, 150.0, 600.0, 2500.0, -3.0]])
    data = _linear(1, 10, slopes, ny=2, nx=5)
    gdq, pdq, gain, rn = _inputs(data)
    res = fit_ramps(data, gdq, pdq, gain, rn, group_time=TG, nframes=1)
    assert np.allclose(res.rate, slopes, rtol=1e-5, atol=1e-5)
    assert np.allclose(res.rate_ints[0], slopes, rtol=1e-5, atol=1e-5)
    assert res.rate.dtype == np.float32 and res.dq.dtype == np.uint32
    assert not res.dq.any()


def test_variances_match_the_formulas_for_one_pixel():
    n, nframes, dark = 10, 2, 0.01
    slope = 3.0  # DN/s, noiseless: median rate = slope
    data = _linear(1, n, slope, ny=1, nx=1)
    gdq, pdq, gain, rn = _inputs(data)
    res = fit_ramps(data, gdq, pdq, gain, rn, group_time=TG, nframes=nframes, average_dark_current=dark)
    rn_e = RN * GAIN / np.sqrt(2 * nframes)
    var_r = 12 * rn_e**2 / ((n**3 - n) * TG**2 * GAIN**2)
    var_p = (slope + dark) / (TG * GAIN * (n - 1))
    assert res.var_rnoise[0, 0] == pytest.approx(var_r, rel=1e-5)
    assert res.var_poisson[0, 0] == pytest.approx(var_p, rel=1e-5)
    assert res.err[0, 0] == pytest.approx(np.sqrt(var_r + var_p), rel=1e-5)
    assert res.var_rnoise_ints[0, 0, 0] == pytest.approx(var_r, rel=1e-5)
    # negative median rate: only the dark term
    data = _linear(1, n, -2.0, ny=1, nx=1, bias=5000.0)
    res = fit_ramps(data, gdq, pdq, gain, rn, group_time=TG, nframes=nframes, average_dark_current=dark)
    assert res.var_poisson[0, 0] == pytest.approx(dark / (TG * GAIN * (n - 1)), rel=1e-5)
    res = fit_ramps(data, gdq, pdq, gain, rn, group_time=TG, nframes=nframes)
    assert res.var_poisson[0, 0] == 0.0


def test_segments_at_a_jump_combine_by_read_noise_variance(dqflags):
    # groups 0-2 rise at 5 DN/s; a jump of 3000 DN at group 3; groups 3-9 rise at 8 DN/s
    ngroups = 10
    data = np.zeros((1, ngroups, 1, 1), np.float32)
    for g in range(ngroups):
        data[0, g] = 100 + 5 * TG * (g + 1) if g < 3 else 100 + 15 * TG + 3000 + 8 * TG * (g - 2)
    gdq, pdq, gain, rn = _inputs(data)
    gdq[0, 3] = dqflags["JUMP_DET"]
    res = fit_ramps(data, gdq, pdq, gain, rn, group_time=TG, nframes=1, dqflags=dqflags)
    w1, w2 = 3**3 - 3, 7**3 - 7  # 1/var_R is proportional to n^3 - n
    assert res.rate[0, 0] == pytest.approx((5 * w1 + 8 * w2) / (w1 + w2), rel=1e-5)
    rn_e2 = (RN * GAIN) ** 2 / 2
    inv_r = sum((k**3 - k) * TG**2 * GAIN**2 / (12 * rn_e2) for k in (3, 7))
    assert res.var_rnoise[0, 0] == pytest.approx(1 / inv_r, rel=1e-5)
    # median rate of clean differences (the jump difference excluded): median(5x2, 8x6) * TG / TG
    inv_p = sum(TG * GAIN * (k - 1) / 8.0 for k in (3, 7))
    assert res.var_poisson[0, 0] == pytest.approx(1 / inv_p, rel=1e-5)
    assert res.dq[0, 0] == dqflags["JUMP_DET"] and res.dq_ints[0, 0, 0] == dqflags["JUMP_DET"]


def test_one_group_segments_dropped_when_a_longer_one_exists(dqflags):
    data = _linear(1, 8, 4.0, ny=1, nx=1)
    gdq, pdq, gain, rn = _inputs(data)
    data[0, 1:, 0, 0] += 1000.0  # jump at group 1 leaves a one-group segment (group 0)
    gdq[0, 1, 0, 0] = dqflags["JUMP_DET"]
    res = fit_ramps(data, gdq, pdq, gain, rn, group_time=TG, nframes=1, dqflags=dqflags)
    assert res.rate[0, 0] == pytest.approx(4.0, rel=1e-5)
    n = 7
    assert res.var_rnoise[0, 0] == pytest.approx(12 * (RN * GAIN) ** 2 / 2 / ((n**3 - n) * TG**2 * GAIN**2), rel=1e-5)


def test_noisy_simulation_errors_are_calibrated():
    rng = np.random.default_rng(2024)
    ny = nx = 200
    ngroups, gain, rn = 10, 2.0, 10.0
    truth = rng.uniform(0.0, 20.0, (ny, nx))  # DN/s: read-noise to Poisson dominated
    electrons = np.cumsum(rng.poisson(truth * TG * gain, (1, ngroups, ny, nx)), axis=1) / gain
    data = (1000.0 + electrons + rng.normal(0, rn / np.sqrt(2), (1, ngroups, ny, nx))).astype(np.float32)
    gdq, pdq, g, r = _inputs(data, gain=gain, rn=rn)
    res = fit_ramps(data, gdq, pdq, g, r, group_time=TG, nframes=1)
    z = (res.rate - truth) / res.err
    assert abs(np.std(z) - 1.0) < 0.05
    assert abs(np.mean(z)) < 0.05


def test_saturation_dq_and_special_one_group_cases(dqflags):
    data = _linear(1, 5, 20.0, ny=1, nx=4)
    gdq, pdq, gain, rn = _inputs(data)
    sat = dqflags["SATURATED"]
    gdq[0, :, 0, 0] = sat  # saturated from the start
    gdq[0, 1:, 0, 1] = sat  # only group 0 good
    gdq[0, 3:, 0, 2] = sat  # three good groups
    res = fit_ramps(data, gdq, pdq, gain, rn, group_time=TG, nframes=1, dqflags=dqflags)
    assert np.isnan(res.rate[0, 0]) and res.dq[0, 0] == sat | dqflags["DO_NOT_USE"]
    assert res.err[0, 0] == 0 and res.var_poisson[0, 0] == 0 and res.var_rnoise[0, 0] == 0
    assert np.isnan(res.rate[0, 1]) and res.dq[0, 1] == sat | dqflags["DO_NOT_USE"]  # suppressed
    assert res.rate[0, 2] == pytest.approx(20.0, rel=1e-5) and res.dq[0, 2] == sat
    assert res.rate[0, 3] == pytest.approx(20.0, rel=1e-5) and res.dq[0, 3] == 0
    kept = fit_ramps(data, gdq, pdq, gain, rn, group_time=TG, nframes=1, suppress_one_group=False, dqflags=dqflags)
    assert kept.rate[0, 1] == pytest.approx(data[0, 0, 0, 1] / TG, rel=1e-6)  # value / TGROUP
    assert kept.dq[0, 1] == sat
    var_r = 12 * (RN * GAIN) ** 2 / 2 / (6 * TG**2 * GAIN**2)  # n treated as 2
    assert kept.var_rnoise[0, 1] == pytest.approx(var_r, rel=1e-5)


def test_ngroups_one_and_two(dqflags):
    data = _linear(1, 1, 7.0, ny=1, nx=2, bias=0.0)
    gdq, pdq, gain, rn = _inputs(data)
    res = fit_ramps(data, gdq, pdq, gain, rn, group_time=TG, nframes=1, dqflags=dqflags)
    assert np.allclose(res.rate, data[0, 0] / TG)
    assert np.allclose(res.var_poisson, (data[0, 0] / TG) / (TG * GAIN), rtol=1e-5)
    data = _linear(1, 2, 7.0, ny=1, nx=2, bias=300.0)
    gdq, pdq, gain, rn = _inputs(data)
    res = fit_ramps(data, gdq, pdq, gain, rn, group_time=TG, nframes=1, dqflags=dqflags)
    assert np.allclose(res.rate, (data[0, 1] - data[0, 0]) / TG, rtol=1e-6)
    assert np.allclose(res.var_rnoise, 12 * (RN * GAIN) ** 2 / 2 / (6 * TG**2 * GAIN**2), rtol=1e-5)


def test_integrations_combined_and_bad_pixels(dqflags):
    data = _linear(3, 6, 10.0, ny=2, nx=2)
    data[1] = _linear(1, 6, 14.0, ny=2, nx=2)[0]
    gdq, pdq, gain, rn = _inputs(data)
    gdq[2, :, 0, 0] = dqflags["SATURATED"]  # third integration of pixel (0,0) unusable
    gain[1, 1] = np.nan
    pdq[0, 1] = dqflags["DO_NOT_USE"] | dqflags["DEAD"]
    res = fit_ramps(data, gdq, pdq, gain, rn, group_time=TG, nframes=1, dqflags=dqflags)
    # equal read-noise variance per integration: a plain mean of the usable integrations
    assert res.rate[0, 0] == pytest.approx(12.0, rel=1e-5)
    assert res.rate[1, 0] == pytest.approx(34.0 / 3, rel=1e-5)
    assert np.isnan(res.rate_ints[2, 0, 0]) and res.dq_ints[2, 0, 0] == dqflags["SATURATED"] | dqflags["DO_NOT_USE"]
    assert res.dq_ints[0, 0, 0] == 0
    assert res.dq[0, 0] == dqflags["SATURATED"]  # not DO_NOT_USE: two integrations were usable
    one = 12 * (RN * GAIN) ** 2 / 2 / ((6**3 - 6) * TG**2 * GAIN**2)
    assert res.var_rnoise[0, 0] == pytest.approx(one / 2, rel=1e-5)
    assert res.var_rnoise[1, 0] == pytest.approx(one / 3, rel=1e-5)
    assert np.isnan(res.rate[1, 1]) and res.dq[1, 1] == dqflags["NO_GAIN_VALUE"] | dqflags["DO_NOT_USE"]
    assert np.isnan(res.rate[0, 1]) and res.dq[0, 1] == dqflags["DO_NOT_USE"] | dqflags["DEAD"]
    assert np.all(np.isnan(res.rate_ints[:, 0, 1]))


# --------------------------------------------------------------------------- per-pixel reference


def _ref_segments(usable, jump):
    segs, start = [], None
    for g in range(len(usable)):
        if usable[g] and (start is None or jump[g]):
            if start is not None:
                segs.append((start, g))
            start = g
        elif not usable[g] and start is not None:
            segs.append((start, g))
            start = None
    if start is not None:
        segs.append((start, len(usable)))
    longest = max((b - a for a, b in segs), default=0)
    if longest >= 2:
        return [(a, b) for a, b in segs if b - a >= 2], longest
    return segs[:1], longest


def _ref_pixel(y, gdq, gain, rn_cds, dark, nframes, suppress, f):
    """Per-pixel transcription of the documented rules; returns (rate, var_p, var_r, rate_ints)."""
    nints, ngroups = y.shape
    jump_bit = f["JUMP_DET"]
    usable = ((gdq & np.uint8(0xFF & ~jump_bit)) == 0) & np.isfinite(y)
    jump = (gdq & jump_bit) != 0
    rates = []
    for i in range(nints):
        d = [(y[i, g + 1] - y[i, g]) / TG for g in range(ngroups - 1) if usable[i, g] and usable[i, g + 1] and not jump[i, g + 1]]
        rates.append(np.median(d) if d else (y[i, 0] / TG if usable[i, 0] else 0.0))
    mrate = float(np.mean(rates))
    term = max(mrate, 0.0) + dark
    rn2 = (rn_cds * gain) ** 2 / (2 * nframes)
    tot_r = tot_p = tot_w = 0.0
    ints = []
    for i in range(nints):
        segs, longest = _ref_segments(usable[i], jump[i])
        if longest == 1 and suppress and ngroups > 1:
            segs = []
        inv_r = inv_p = wsum = 0.0
        for a, b in segs:
            n = b - a
            v = y[i, a:b].astype(np.float64)
            if n == 1:
                slope = v[0] / TG
            else:
                s = (v[-1] - v[0]) * gain
                snr = max(s / np.sqrt(rn2 + s), 0.0) if rn2 + s > 0 else 0.0
                p = P_VALUES[int(np.searchsorted(P_EDGES, snr, side="right"))]
                x = np.arange(n, dtype=np.float64)
                m = (n - 1) / 2
                w = np.abs((x - m) / m) ** p / rn2
                sw, swx, swy = w.sum(), (w * x).sum(), (w * v).sum()
                swxx, swxy = (w * x * x).sum(), (w * x * v).sum()
                slope = (sw * swxy - swx * swy) / (sw * swxx - swx**2) / TG
            ne = max(n, 2)
            vr = 12 * rn2 / ((ne**3 - ne) * TG**2 * gain**2)
            vp = term / (TG * gain * (ne - 1))
            inv_r += 1 / vr
            inv_p += 1 / vp if vp > 0 else 0.0
            wsum += slope / vr
        ints.append(wsum / inv_r if inv_r else np.nan)
        tot_r, tot_p, tot_w = tot_r + inv_r, tot_p + inv_p, tot_w + wsum
    rate = tot_w / tot_r if tot_r else np.nan
    return rate, (1 / tot_p if tot_p else 0.0), (1 / tot_r if tot_r else 0.0), ints


@pytest.mark.parametrize(
    ("nints", "ngroups", "suppress", "miri_frames"),
    [(1, 10, True, False), (2, 5, False, False), (3, 4, True, False), (1, 2, True, False), (2, 8, True, True)],
)
def test_matches_per_pixel_reference(nints, ngroups, suppress, miri_frames, dqflags):
    rng = np.random.default_rng(nints * 100 + ngroups)
    ny, nx = 12, 12
    truth = rng.uniform(-1.0, 200.0, (ny, nx))
    electrons = np.cumsum(rng.poisson(np.maximum(truth, 0) * TG * GAIN, (nints, ngroups, ny, nx)), axis=1) / GAIN
    data = (2000 + electrons + rng.normal(0, RN / np.sqrt(2), electrons.shape)).astype(np.float32)
    gdq, pdq, gain, rn = _inputs(data)
    gain[:] = rng.uniform(1.5, 3.0, gain.shape)
    rn[:] = rng.uniform(5.0, 15.0, rn.shape)
    dark = rng.uniform(0.0, 0.1, (ny, nx))
    flags_pool = [dqflags["JUMP_DET"], dqflags["DO_NOT_USE"], dqflags["JUMP_DET"] | dqflags["DO_NOT_USE"]]
    for _ in range(ny * nx):
        i, g, yy, xx = rng.integers(0, nints), rng.integers(0, ngroups), rng.integers(0, ny), rng.integers(0, nx)
        flag = flags_pool[rng.integers(0, 3)]
        if flag & dqflags["JUMP_DET"]:
            data[i, g:, yy, xx] += rng.uniform(50, 2000)
        gdq[i, g, yy, xx] |= flag
    sat_from = rng.integers(0, ngroups * 3, (nints, ny, nx))
    gdq[np.arange(ngroups)[None, :, None, None] >= sat_from[:, None]] |= dqflags["SATURATED"]
    if miri_frames:  # first and last group DO_NOT_USE everywhere (MIRI firstframe/lastframe)
        gdq[:, 0] |= dqflags["DO_NOT_USE"]
        gdq[:, -1] |= dqflags["DO_NOT_USE"]

    res = fit_ramps(
        data, gdq, pdq, gain, rn, group_time=TG, nframes=2, average_dark_current=dark,
        suppress_one_group=suppress, dqflags=dqflags,
    )
    for yy in range(ny):
        for xx in range(nx):
            rate, vp, vr, ints = _ref_pixel(
                data[:, :, yy, xx], gdq[:, :, yy, xx], float(gain[yy, xx]), float(rn[yy, xx]),
                float(dark[yy, xx]), 2, suppress, dqflags,
            )
            np.testing.assert_allclose(res.rate[yy, xx], rate, rtol=2e-4, atol=2e-4, err_msg=f"{yy},{xx}")
            np.testing.assert_allclose(res.var_poisson[yy, xx], vp, rtol=1e-4)
            np.testing.assert_allclose(res.var_rnoise[yy, xx], vr, rtol=1e-4)
            np.testing.assert_allclose(res.rate_ints[:, yy, xx], ints, rtol=2e-4, atol=2e-4)
            usable_ints = [not np.isnan(v) for v in ints]
            assert bool(res.dq[yy, xx] & dqflags["DO_NOT_USE"]) == (not any(usable_ints))


def test_unflagged_nan_group_is_skipped(dqflags):
    data = _linear(1, 6, 9.0, ny=1, nx=2)
    data[0, 2, 0, 0] = np.nan
    gdq, pdq, gain, rn = _inputs(data)
    res = fit_ramps(data, gdq, pdq, gain, rn, group_time=TG, nframes=1, dqflags=dqflags)
    assert np.allclose(res.rate, 9.0, rtol=1e-5)
    w1, w2 = 2**3 - 2, 3**3 - 3  # segments of 2 and 3 groups around the NaN
    rn2 = (RN * GAIN) ** 2 / 2
    inv = (w1 + w2) * TG**2 * GAIN**2 / (12 * rn2)
    assert res.var_rnoise[0, 0] == pytest.approx(1 / inv, rel=1e-5)


def test_jump_then_ramp_fit_end_to_end():
    """Cosmic rays injected into noisy ramps: after jump + ramp_fit the errors stay calibrated."""
    from services.detector1.steps.jump import detect_jumps

    rng = np.random.default_rng(0)
    ny = nx = 200
    ngroups, gain, rn = 10, 2.0, 10.0
    truth = rng.uniform(0.0, 20.0, (ny, nx))
    electrons = np.cumsum(rng.poisson(truth * TG * gain, (1, ngroups, ny, nx)), axis=1) / gain
    data = (1000.0 + electrons + rng.normal(0, rn / np.sqrt(2), (1, ngroups, ny, nx))).astype(np.float32)
    hit = rng.random((ny, nx)) < 0.03
    at = rng.integers(1, ngroups, (ny, nx))
    for y, x in zip(*np.nonzero(hit), strict=True):
        data[0, at[y, x] :, y, x] += rng.uniform(300, 5000) / gain
    gdq, pdq, g, r = _inputs(data, gain=gain, rn=rn)
    jumps = detect_jumps(data, gdq, pdq, g, r, nframes=1)
    res = fit_ramps(data, jumps.groupdq, jumps.pixeldq, g, r, group_time=TG, nframes=1)
    z = (res.rate - truth) / res.err
    assert abs(np.std(z) - 1.0) < 0.08 and abs(np.mean(z)) < 0.05
    assert abs(np.std(z[hit]) - 1.0) < 0.15 and abs(np.mean(z[hit])) < 0.15
    assert np.all(res.dq[hit] & 4)  # JUMP_DET passed through
