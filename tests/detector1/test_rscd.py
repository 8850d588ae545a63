"""MIRI RSCD: the model, its correction, and its parameters from the RSCD_DECAY table."""

from __future__ import annotations

import numpy as np
import pytest

from services.detector1.steps.rscd import (
    RscdParameters,
    correct_rscd,
    decay_parameters,
    flag_rscd_groups,
    group_skip_counts,
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


# ---------------------------------------------------------------- method "flag" (jwst 3.0's rscd)

def test_flag_method_flags_leading_groups_per_integration(dqflags):
    gdq = np.zeros((3, 10, 4, 4), np.uint8)
    pdq = np.zeros((4, 4), np.uint32)
    res = flag_rscd_groups(gdq, pdq, 0, 4, dqflags=dqflags)
    dnu = (res.groupdq & dqflags["DO_NOT_USE"]) != 0
    assert res.applied and (res.skip_first, res.skip_later) == (0, 4)
    assert not dnu[0].any()
    assert dnu[1:, :4].all() and not dnu[1:, 4:].any()
    assert not gdq.any()  # the input is not modified
    # a segment that starts later has no first integration: every integration is "later"
    seg = flag_rscd_groups(gdq, pdq, 0, 4, integration_start=5, dqflags=dqflags)
    assert ((seg.groupdq[:, :4] & dqflags["DO_NOT_USE"]) != 0).all() and seg.skip_first == 0


def test_flag_method_limits_and_saturation_back_off(dqflags):
    pdq = np.zeros((2, 2), np.uint32)
    assert not flag_rscd_groups(np.zeros((2, 2, 2, 2), np.uint8), pdq, 1, 3, dqflags=dqflags).applied
    few = flag_rscd_groups(np.zeros((2, 5, 2, 2), np.uint8), pdq, 2, 4, dqflags=dqflags)
    assert (few.skip_first, few.skip_later) == (1, 1)  # <= 5 groups: one group each
    capped = flag_rscd_groups(np.zeros((2, 7, 2, 2), np.uint8), pdq, -1, 6, dqflags=dqflags)
    assert (capped.skip_first, capped.skip_later) == (1, 4)  # an old file's -1 counts as 1; 3 groups left
    gdq = np.zeros((2, 10, 2, 2), np.uint8)
    gdq[1, 3:, 0, 0] = dqflags["SATURATED"]  # saturates at group index 3, within the 4 counted + 1
    gdq[1, :, 1, 1] = dqflags["SATURATED"]  # saturated from the first group: nothing to save
    res = flag_rscd_groups(gdq, pdq, 0, 4, dqflags=dqflags)
    dnu = (res.groupdq[1] & dqflags["DO_NOT_USE"]) != 0
    assert dnu[:1, 0, 0].all() and not dnu[1:, 0, 0].any()  # max(3 - 2, 0) = 1 group flagged
    assert dnu[:4, 1, 1].all() and dnu[:4, 0, 1].all()
    assert res.backed_off == 1 and res.pixeldq[0, 0] & dqflags["FLUX_ESTIMATED"]
    assert not res.pixeldq[1, 1] & dqflags["FLUX_ESTIMATED"]


def test_flag_method_matches_jwst_on_random_saturation(dqflags):
    """The same arrays through jwst's own rscd functions give the same flags."""
    rscd_sub = pytest.importorskip("jwst.rscd.rscd_sub")
    datamodels = pytest.importorskip("stdatamodels.jwst.datamodels")
    rng = np.random.default_rng(7)
    nints, ngroups = 3, 9
    first_sat = rng.integers(0, ngroups + 3, size=(16, 16))  # >= ngroups: never saturates
    gdq = np.zeros((nints, ngroups, 16, 16), np.uint8)
    for n in range(nints):
        gdq[n] = np.where(np.arange(ngroups)[:, None, None] >= (first_sat - n)[None], dqflags["SATURATED"], 0)
    pdq = np.zeros((16, 16), np.uint32)
    ours = flag_rscd_groups(gdq, pdq, 1, 4, dqflags=dqflags)
    model = datamodels.RampModel(data=np.zeros(gdq.shape, np.float32), groupdq=gdq.copy(), pixeldq=pdq.copy())
    model.meta.exposure.ngroups, model.meta.exposure.nints = ngroups, nints
    theirs = rscd_sub.correction_skip_groups(model, 1, 4)
    assert np.array_equal(ours.groupdq, theirs.groupdq)
    assert np.array_equal(ours.pixeldq, theirs.pixeldq)


def test_group_skip_counts_reads_the_public_table():
    table = np.array([("FULL", "FASTR1", 0, 3), ("SLITLESSPRISM", "FASTR1", 1, 5)],
                     dtype=[("SUBARRAY", "S16"), ("READPATT", "S16"), ("GROUP_SKIP1", "i4"), ("GROUP_SKIP", "i4")])
    assert group_skip_counts(table, "FULL", "fastr1") == (0, 3)
    assert group_skip_counts(table, "SUBPRISM", "FASTR1") == (1, 5)
    assert group_skip_counts(table, "BRIGHTSKY", "FASTR1") is None
    assert group_skip_counts(None, "FULL", "FASTR1") is None
