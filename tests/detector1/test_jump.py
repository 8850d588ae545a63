"""Two-point-difference jump detection: thresholds, iteration, neighbours, and a per-pixel reference."""

from __future__ import annotations

import numpy as np
import pytest

from services.detector1.steps.jump import JumpParams, clipped_median_of_diffs, detect_jumps

GAIN = 2.0
RN = 7.0  # CDS read noise, DN


def _arrays(data):
    ny, nx = data.shape[-2:]
    return (
        np.zeros(data.shape, np.uint8),
        np.zeros((ny, nx), np.uint32),
        np.full((ny, nx), GAIN, np.float32),
        np.full((ny, nx), RN, np.float32),
    )


def _simulate(rng, shape, rate_e=50.0, rn=RN, gain=GAIN):
    """Ramps in DN: Poisson signal of ``rate_e`` e-/group plus per-group read noise rn/sqrt(2)."""
    nints, ngroups, ny, nx = shape
    electrons = np.cumsum(rng.poisson(rate_e, shape), axis=1).astype(np.float64)
    return (electrons / gain + rng.normal(0, rn / np.sqrt(2), shape)).astype(np.float32)


def _jumped(gdq, flag=4):
    return (gdq & flag) != 0


def test_defaults_match_jwst():
    p = JumpParams()
    assert (p.rejection_threshold, p.four_group_rejection_threshold, p.three_group_rejection_threshold) == (4.0, 5.0, 6.0)
    assert p.flag_4_neighbors and (p.min_jump_to_flag_neighbors, p.max_jump_to_flag_neighbors) == (10.0, 1000.0)
    assert p.min_diffs_single_pass == 10 and p.minimum_groups == 3 and p.minimum_sigclip_groups == 100


def test_clipped_median_rules():
    nan = np.nan
    diffs = np.array(
        [
            [1.0, 1.0, 5.0, 3.0, nan],
            [2.0, 9.0, 1.0, -8.0, 4.0],
            [3.0, 2.0, nan, 1.0, nan],
            [100.0, 3.0, nan, 2.0, nan],
            [4.0, nan, nan, 2.5, nan],
        ],
        np.float32,
    )
    median, count = clipped_median_of_diffs(diffs)
    assert count.tolist() == [5, 4, 2, 5, 1]
    assert median[0] == pytest.approx(2.5)  # drop 100, median of 1,2,3,4
    assert median[1] == pytest.approx(2.0)  # drop 9, median of 1,2,3
    assert median[2] == pytest.approx(1.0)  # two: the smaller |value|
    assert median[3] == pytest.approx(2.25)  # drop -8 (largest |value|), median of 3,1,2,2.5
    assert np.isnan(median[4])
    three = np.array([[5.0], [1.0], [3.0]], np.float32)
    assert clipped_median_of_diffs(three)[0][0] == pytest.approx(3.0)  # 3 diffs: no clipping


def test_injected_500_electron_jumps_found_and_few_false_positives(dqflags):
    rng = np.random.default_rng(11)
    shape = (1, 10, 200, 200)
    clean = _simulate(rng, shape)
    gdq, pdq, gain, rn = _arrays(clean)

    res = detect_jumps(clean, gdq, pdq, gain, rn, nframes=1, flag_4_neighbors=False, dqflags=dqflags)
    false_rate = _jumped(res.groupdq).sum() / (200 * 200 * 9)
    assert false_rate <= 5e-4

    data = clean.copy()
    where = rng.integers(1, 10, (200, 200))  # group of the jump, per pixel
    hit = rng.random((200, 200)) < 0.2
    yy, xx = np.nonzero(hit)
    for y, x in zip(yy, xx, strict=True):
        data[0, where[y, x] :, y, x] += 500.0 / GAIN
    res = detect_jumps(data, gdq, pdq, gain, rn, nframes=1, flag_4_neighbors=False, dqflags=dqflags)
    recovered = _jumped(res.groupdq)[0, where[yy, xx], yy, xx]
    assert recovered.mean() >= 0.99
    assert res.n_jumps >= recovered.sum()
    assert not gdq.any()  # input untouched


def _noiseless(diffs_dn, rn=RN):
    """One pixel (1x1) whose first differences are ``diffs_dn``."""
    ramp = np.concatenate([[1000.0], 1000.0 + np.cumsum(diffs_dn)]).astype(np.float32)
    data = ramp[None, :, None, None]
    gdq, pdq, gain, rnoise = _arrays(data)
    rnoise[:] = rn
    return data, gdq, pdq, gain, rnoise


@pytest.mark.parametrize(
    ("ngroups", "threshold"), [(3, 6.0), (4, 5.0), (5, 4.0), (8, 4.0)]
)
def test_threshold_depends_on_usable_differences(ngroups, threshold, dqflags):
    base = 20.0  # DN per group -> 40 e-
    sigma_e = np.sqrt(2 * base + (RN * GAIN) ** 2)  # |median| + RN_CDS^2 (e-), nframes = 1
    for factor, expect in ((0.95, False), (1.05, True)):
        jump_dn = factor * threshold * sigma_e / GAIN
        diffs = np.full(ngroups - 1, base)
        diffs[-1] += jump_dn
        data, gdq, pdq, gain, rn = _noiseless(diffs)
        res = detect_jumps(data, gdq, pdq, gain, rn, nframes=1, dqflags=dqflags)
        assert _jumped(res.groupdq)[0, -1, 0, 0] == expect, (ngroups, factor)
        assert _jumped(res.groupdq)[0, :-1, 0, 0].sum() == 0


def test_nframes_lowers_read_noise_term(dqflags):
    diffs = np.array([20.0, 20.0, 20.0, 20.0, 20.0 + 40.0])  # 80 e- jump
    data, gdq, pdq, gain, rn = _noiseless(diffs)
    # sigma = sqrt(40 + 196/nframes): ratio 80/15.4 = 5.2 (nframes 1) vs 80/8.7 = 9.2 (nframes 4)
    assert _jumped(detect_jumps(data, gdq, pdq, gain, rn, nframes=1, dqflags=dqflags).groupdq).sum() == 1
    res = detect_jumps(data, gdq, pdq, gain, rn, nframes=1, rejection_threshold=6.0, dqflags=dqflags)
    assert not _jumped(res.groupdq).any()
    res = detect_jumps(data, gdq, pdq, gain, rn, nframes=4, rejection_threshold=6.0, dqflags=dqflags)
    assert _jumped(res.groupdq)[0, 5, 0, 0]


def test_iterative_and_single_pass_find_two_jumps(dqflags):
    for ngroups in (7, 12):  # 6 diffs: iterative; 11 diffs: single pass
        diffs = np.full(ngroups - 1, 10.0)
        diffs[1] += 400.0
        diffs[4] += 150.0
        data, gdq, pdq, gain, rn = _noiseless(diffs)
        res = detect_jumps(data, gdq, pdq, gain, rn, nframes=1, dqflags=dqflags)
        assert np.flatnonzero(_jumped(res.groupdq)[0, :, 0, 0]).tolist() == [2, 5]
        assert res.n_jumps == 2


def test_saturated_and_do_not_use_groups_ignored(dqflags):
    diffs = np.array([10.0, 10.0, 10.0, 10.0, 900.0, 10.0])
    data, gdq, pdq, gain, rn = _noiseless(diffs)
    gdq[0, 5:, 0, 0] = dqflags["SATURATED"]  # the big step happens at saturation
    res = detect_jumps(data, gdq, pdq, gain, rn, nframes=1, dqflags=dqflags)
    assert not _jumped(res.groupdq).any()
    gdq[:] = 0
    gdq[0, 0, 0, 0] = dqflags["DO_NOT_USE"]
    data[0, 0, 0, 0] = -5000.0  # garbage in a DO_NOT_USE group
    res = detect_jumps(data, gdq, pdq, gain, rn, nframes=1, dqflags=dqflags)
    assert np.flatnonzero(_jumped(res.groupdq)[0, :, 0, 0]).tolist() == [5]


def test_four_neighbours_flagged_only_for_moderate_jumps(dqflags):
    rng = np.random.default_rng(5)
    data = _simulate(rng, (1, 6, 20, 20), rate_e=20.0)
    gdq, pdq, gain, rn = _arrays(data)  # sigma = sqrt(20 + 14^2) ~ 14.7 e-
    data[0, 3:, 5, 5] += 250.0 / GAIN  # ~17 sigma: neighbours flagged
    data[0, 2:, 12, 12] += 50_000.0 / GAIN  # > 1000 sigma: no neighbours
    data[0, 4:, 0, 19] += 250.0 / GAIN  # corner: only 2 neighbours exist
    data[0, 4:, 16, 3] += 100.0 / GAIN  # ~7 sigma: a jump, but below 10 sigma
    res = detect_jumps(data, gdq, pdq, gain, rn, nframes=1, dqflags=dqflags)
    jumped = _jumped(res.groupdq)[0]
    assert jumped[3, 5, 5] and jumped[3, 4, 5] and jumped[3, 6, 5] and jumped[3, 5, 4] and jumped[3, 5, 6]
    assert not jumped[3, 4, 4]  # diagonal untouched
    assert jumped[2, 12, 12] and not jumped[2, 11, 12] and not jumped[2, 12, 13]
    assert jumped[4, 0, 19] and jumped[4, 1, 19] and jumped[4, 0, 18]
    assert jumped[4, 16, 3] and not jumped[4, 15, 3] and not jumped[4, 16, 4]
    assert res.n_neighbor_flags == 6
    off = detect_jumps(data, gdq, pdq, gain, rn, nframes=1, flag_4_neighbors=False, dqflags=dqflags)
    assert _jumped(off.groupdq).sum() == res.n_jumps == jumped.sum() - 6


def test_bad_gain_flagged_and_not_tested(dqflags):
    diffs = np.array([10.0, 10.0, 500.0, 10.0, 10.0])
    data, gdq, pdq, gain, rn = _noiseless(diffs)
    gain[0, 0] = 0.0
    res = detect_jumps(data, gdq, pdq, gain, rn, nframes=1, dqflags=dqflags)
    assert res.pixeldq[0, 0] == dqflags["NO_GAIN_VALUE"] | dqflags["DO_NOT_USE"]
    assert not res.groupdq.any()


def test_too_few_groups_skips(dqflags):
    data = np.zeros((1, 2, 4, 4), np.float32)
    gdq, pdq, gain, rn = _arrays(data)
    res = detect_jumps(data, gdq, pdq, gain, rn, nframes=1, dqflags=dqflags)
    assert res.skipped and not res.groupdq.any()


def test_sigma_clipping_across_many_integrations(dqflags):
    rng = np.random.default_rng(9)
    data = _simulate(rng, (100, 2, 6, 6), rate_e=30.0)  # 2 groups: only sigma clipping can work
    data[37, 1, 2, 3] += 400.0
    gdq, pdq, gain, rn = _arrays(data)
    res = detect_jumps(data, gdq, pdq, gain, rn, nframes=1, dqflags=dqflags)
    jumped = _jumped(res.groupdq)
    assert not res.skipped and jumped[37, 1, 2, 3]
    assert jumped.sum() <= 5


# --------------------------------------------------------------------------- per-pixel reference


def _ref_median(d):
    v = d[~np.isnan(d)]
    if v.size >= 4:
        v = np.delete(v, np.argmax(np.abs(v)))
        return np.median(v)
    if v.size == 3:
        return np.median(v)
    if v.size == 2:
        return v[np.argmin(np.abs(v))]
    return np.nan


def _ref_pixel(d, rn2, single, thr=(4.0, 5.0, 6.0)):
    """Straightforward per-pixel transcription of the documented rule on all the differences
    ``d`` of one pixel (every integration, NaN = unusable); returns the flagged indices."""
    d = d.copy()
    if single:
        if np.isnan(d).all():
            return set()
        med = np.nanmedian(d)
        sigma = np.sqrt(abs(med) + rn2)
        return {i for i in np.flatnonzero(~np.isnan(d)) if abs(d[i] - med) / sigma > thr[0]}
    a, found = np.abs(d), set()
    while True:
        k = int(np.sum(~np.isnan(a)))
        if k < 2:
            return found
        med = _ref_median(a)
        sigma = np.sqrt(abs(med) + rn2)
        r = np.where(np.isnan(a), -1.0, np.abs(a - med) / sigma)
        i = int(np.argmax(r))
        if r[i] <= (thr[0] if k >= 4 else (thr[1] if k == 3 else thr[2])):
            return found
        found.add(i)
        a[i] = np.nan


@pytest.mark.parametrize(("ngroups", "nints", "miri_frames"),
                         [(3, 1, False), (4, 2, False), (6, 1, False), (6, 3, False), (11, 2, False), (8, 2, True),
                          (12, 2, True)])
def test_matches_per_pixel_reference(ngroups, nints, miri_frames, dqflags):
    rng = np.random.default_rng(100 + ngroups + nints)
    shape = (nints, ngroups, 15, 15)
    data = _simulate(rng, shape, rate_e=80.0)
    gdq, pdq, gain, rn = _arrays(data)
    gain[:] = rng.uniform(1.5, 2.5, gain.shape)
    rn[:] = rng.uniform(4.0, 9.0, rn.shape)
    data[:, :, :5] = _simulate(rng, (nints, ngroups, 5, 15), rate_e=2.0)  # faint rows: |diff| matters
    # jumps of various sizes, saturation and DO_NOT_USE groups
    for _ in range(120):
        i, g, y, x = rng.integers(0, nints), rng.integers(1, ngroups), rng.integers(0, 15), rng.integers(0, 15)
        data[i, g:, y, x] += rng.uniform(5, 400)
    sat_start = rng.integers(1, ngroups + 3, (nints, 15, 15))
    gdq[np.arange(ngroups)[None, :, None, None] >= sat_start[:, None]] |= dqflags["SATURATED"]
    gdq[rng.random(shape) < 0.05] |= dqflags["DO_NOT_USE"]
    if miri_frames:  # first and last group DO_NOT_USE everywhere, as MIRI firstframe/lastframe set
        gdq[:, 0] |= dqflags["DO_NOT_USE"]
        gdq[:, -1] |= dqflags["DO_NOT_USE"]
    single = ngroups - 2 * miri_frames - 1 >= 10  # usable differences per integration

    res = detect_jumps(data, gdq, pdq, gain, rn, nframes=2, flag_4_neighbors=False, dqflags=dqflags)

    expected = np.zeros(shape, bool)
    excluded = (gdq & (dqflags["SATURATED"] | dqflags["DO_NOT_USE"])) != 0
    for y in range(15):
        for x in range(15):
            e = data[:, :, y, x].astype(np.float64) * gain[y, x]
            e[excluded[:, :, y, x]] = np.nan
            d = np.diff(e, axis=1).ravel()  # every integration's differences, in order
            for k in _ref_pixel(d, (rn[y, x] * gain[y, x]) ** 2 / 2, single):
                i, j = divmod(k, ngroups - 1)
                expected[i, j + 1, y, x] = True
    assert res.note.endswith("single pass" if single else "iterative")
    assert np.array_equal(_jumped(res.groupdq), expected)


def test_integrations_share_one_median(dqflags):
    """A pixel's differences are judged together across integrations: 6 usable differences
    (threshold 4 sigma), not 2 per integration (threshold 6 sigma)."""
    # sigma = sqrt(40 + 14^2) = 15.4 e-; the 80 e- jump is 5.2 sigma
    diffs = np.array([[20.0, 20.0], [20.0, 20.0 + 40.0], [20.0, 20.0]])  # 3 integrations x 2 diffs, DN
    ramp = np.concatenate([np.full((3, 1), 1000.0), 1000.0 + np.cumsum(diffs, axis=1)], axis=1)
    data = ramp[:, :, None, None].astype(np.float32)
    gdq, pdq, gain, rn = _arrays(data)
    res = detect_jumps(data, gdq, pdq, gain, rn, nframes=1, dqflags=dqflags)
    assert np.argwhere(_jumped(res.groupdq)[:, :, 0, 0]).tolist() == [[1, 2]]


def test_pure_noise_rarely_flagged_on_short_faint_ramps(dqflags):
    """Iterative mode tests |diff|: on pure read noise a difference must exceed the median
    |diff| (~0.67 sigma) by the threshold, so false flags stay near the 4.7-sigma tail."""
    rng = np.random.default_rng(21)
    data = _simulate(rng, (1, 5, 200, 200), rate_e=0.0)
    gdq, pdq, gain, rn = _arrays(data)
    res = detect_jumps(data, gdq, pdq, gain, rn, nframes=1, flag_4_neighbors=False, dqflags=dqflags)
    assert _jumped(res.groupdq).sum() / (200 * 200 * 4) < 1e-4
