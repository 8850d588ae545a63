from __future__ import annotations

import numpy as np
import pytest

from services.detector1.steps.persistence import PersistenceParams, correct_persistence


def test_no_previous_state_no_correction_but_new_state(dqflags):
    data = np.zeros((1, 4, 20, 20), np.float32)
    data[0, :, 5, 5] = [10_000, 20_000, 30_000, 60_000]
    data[0, :, 6, 6] = [1, 2, 3, np.nan]
    gdq = np.zeros(data.shape, np.uint8)
    res = correct_persistence(data, gdq, np.zeros((20, 20), np.uint32), None, group_time=10.0, dqflags=dqflags)
    assert not res.applied and res.data is data
    p = PersistenceParams()
    assert res.trapsfilled[5, 5] == pytest.approx(min(p.trap_capacity, p.fill_fraction * 60_000))
    assert res.trapsfilled[6, 6] == pytest.approx(p.fill_fraction * 3)
    assert not res.pixeldq.any()


def test_release_model_subtracted_and_flagged(dqflags):
    ngroups, tgroup, tau, dt0 = 5, 10.0, 100.0, 30.0
    truth = np.cumsum(np.full((2, ngroups, 20, 20), 5.0, np.float32), axis=1)
    traps = np.zeros((20, 20), np.float32)
    traps[3, 3] = 500.0
    traps[4, 4] = 50.0
    # build data with the model's persistence added
    data = truth.copy()
    for n in range(2):
        t0 = dt0 + n * ngroups * tgroup
        for g in range(ngroups):
            data[n, g] += traps * (np.exp(-t0 / tau) - np.exp(-(t0 + (g + 1) * tgroup) / tau))
    gdq = np.zeros(data.shape, np.uint8)
    gdq[1, 2:, 3, 3] = dqflags["SATURATED"]

    res = correct_persistence(
        data, gdq, np.zeros((20, 20), np.uint32), traps,
        group_time=tgroup, time_since_previous=dt0, tau=tau, flag_pers_cutoff=40.0, dqflags=dqflags,
    )

    ok = np.ones(data.shape, bool)
    ok[1, 2:, 3, 3] = False
    assert res.applied
    assert np.allclose(res.data[ok], truth[ok], atol=1e-3)
    assert np.array_equal(res.data[1, 2:, 3, 3], data[1, 2:, 3, 3])
    largest_33 = 500.0 * (np.exp(-dt0 / tau) - np.exp(-(dt0 + ngroups * tgroup) / tau))
    assert res.persistence[3, 3] == pytest.approx(largest_33, rel=1e-6)
    assert res.pixeldq[3, 3] == dqflags["PERSISTENCE"]  # ~145 DN > 40
    assert res.pixeldq[4, 4] == 0  # ~14.5 DN < 40
    # traps decay over the gap and the exposure; this exposure's 50 DN peak refills little
    remaining = 500.0 * np.exp(-(dt0 + 2 * ngroups * tgroup) / tau)
    assert res.trapsfilled[3, 3] == pytest.approx(remaining, rel=1e-5)


def test_bad_arguments():
    data = np.zeros((1, 2, 4, 4), np.float32)
    with pytest.raises(ValueError):
        correct_persistence(data, np.zeros(data.shape, np.uint8), np.zeros((4, 4), np.uint32), None, group_time=0.0)
