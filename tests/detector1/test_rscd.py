"""MIRI RSCD: the model, its correction, and its parameters from the RSCD_DECAY table."""

from __future__ import annotations

import numpy as np
import pytest

from services.detector1.steps.rscd import (
    RscdParameters,
    correct_rscd,
    decay_parameters,
    rscd_offsets,
)

P = RscdParameters(scale=0.02, tau=1.5, level_max=5000.0)


def _ramps(rng, shape, p=P):
    """Ramps with the RSCD the simulator adds: each integration n >= 1 gets the offset of
    what integration n-1 collected (before its own offset)."""
    truth = (1000.0 + np.cumsum(rng.uniform(10, 600, shape), axis=1)).astype(np.float32)
    data = truth.copy()
    for n in range(1, shape[0]):
        data[n] += rscd_offsets(truth[n - 1], shape[1], p)
    return truth, data


def test_first_integration_untouched_later_ones_corrected(dqflags):
    rng = np.random.default_rng(4)
    truth, data = _ramps(rng, (3, 6, 20, 20))
    gdq = np.zeros(data.shape, np.uint8)
    gdq[2, 4:, 3, 3] = dqflags["SATURATED"]

    res = correct_rscd(data, gdq, P, dqflags=dqflags)

    assert res.applied
    assert np.array_equal(res.data[0], data[0])
    ok = np.ones(data.shape, bool)
    ok[2, 4:, 3, 3] = False
    assert np.allclose(res.data[ok], truth[ok], atol=2e-3)
    assert np.array_equal(res.data[2, 4:, 3, 3], data[2, 4:, 3, 3])  # saturated: left alone
    assert not np.allclose(data[1:], truth[1:], atol=1.0)  # there was something to correct


def test_offsets_decay_and_amplitude_is_capped():
    previous = np.zeros((4, 1, 3), np.float32)
    previous[-1] = [100.0, 5000.0, 20000.0]  # collected between the first and last group
    off = rscd_offsets(previous, 4, P)
    decay = np.exp(-np.arange(4) / 1.5)
    assert np.allclose(off[:, 0, 0], 0.02 * 100.0 * decay)
    assert np.allclose(off[:, 0, 1], 0.02 * 5000.0 * decay)
    assert np.allclose(off[:, 0, 2], 0.02 * 5000.0 * decay)  # capped at level_max
    assert np.all(rscd_offsets(-previous, 4, P) == 0)  # nothing collected: no offset


def test_in_place_and_single_integration(dqflags):
    rng = np.random.default_rng(5)
    truth, data = _ramps(rng, (2, 5, 8, 8))
    res = correct_rscd(data, np.zeros(data.shape, np.uint8), P, out=data, dqflags=dqflags)
    assert res.data is data and np.allclose(data, truth, atol=2e-3)
    one = truth[:1].copy()
    res = correct_rscd(one, np.zeros(one.shape, np.uint8), P, dqflags=dqflags)
    assert not res.applied and res.data is one


def test_parameters_from_the_decay_table():
    table = np.array([(b"FULL", b"FAST", 0.02, 1.0, 15000.0), (b"SUB128", b"FAST", 0.03, 2.0, 9000.0)],
                     dtype=[("SUBARRAY", "S17"), ("READPATT", "S12"), ("SCALE", "f8"), ("TAU", "f8"),
                            ("LEVEL_MAX", "f8")])
    assert decay_parameters(table, "sub128", "FAST") == RscdParameters(0.03, 2.0, 9000.0)
    assert decay_parameters(table, "SUB64", "FAST") is None
    assert decay_parameters(None, "FULL", "FAST") is None
    with pytest.raises(ValueError):
        correct_rscd(np.zeros((2, 3, 2, 2), np.float32), np.zeros((2, 3, 2, 2), np.uint8), RscdParameters(0.1, 0, 1))
