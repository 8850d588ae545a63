from __future__ import annotations

import numpy as np

from services.detector1.steps.rscd import RscdParams, correct_rscd, rscd_offsets


def test_first_integration_untouched_later_ones_corrected(dqflags):
    rng = np.random.default_rng(4)
    truth = np.cumsum(rng.uniform(10, 20, (3, 6, 20, 20)), axis=1).astype(np.float32)
    scale, tau = 0.01, 2.0
    data = truth.copy()
    for n in range(1, 3):
        data[n] += rscd_offsets(data[n - 1, -1], 6, scale=scale, tau_groups=tau)
    gdq = np.zeros(data.shape, np.uint8)
    gdq[2, 4:, 3, 3] = dqflags["SATURATED"]

    res = correct_rscd(data, gdq, scale=scale, tau_groups=tau, dqflags=dqflags)

    assert res.applied
    assert np.array_equal(res.data[0], data[0])
    ok = np.ones(data.shape, bool)
    ok[2, 4:, 3, 3] = False
    assert np.allclose(res.data[ok], truth[ok], atol=1e-3)
    assert np.array_equal(res.data[2, 4:, 3, 3], data[2, 4:, 3, 3])  # saturated: left alone


def test_offsets_decay_exponentially_in_group():
    last = np.full((2, 2), 1000.0, np.float32)
    off = rscd_offsets(last, 4, scale=0.1, tau_groups=1.0)
    assert np.allclose(off[:, 0, 0], 100.0 * np.exp(-np.arange(4)))


def test_default_scale_is_a_no_op():
    data = np.ones((2, 3, 4, 4), np.float32)
    assert RscdParams().scale == 0.0
    res = correct_rscd(data, np.zeros(data.shape, np.uint8))
    assert not res.applied and res.data is data
