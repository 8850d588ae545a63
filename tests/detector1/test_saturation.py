from __future__ import annotations

import numpy as np
import pytest

from services.detector1.steps.saturation import NO_CHECK_THRESHOLD, flag_saturation


def _ramp(nints=1, ngroups=5, n=20):
    # 1000 DN per group on a 10000 DN bias: group g holds 10000 + 1000 (g + 1)
    g = np.arange(ngroups, dtype=np.float32)[:, None, None]
    data = np.broadcast_to(10_000.0 + 1000.0 * (g + 1), (nints, ngroups, n, n)).astype(np.float32)
    return data.copy(), np.zeros(data.shape, np.uint8), np.zeros((n, n), np.uint32)


def test_group_at_threshold_and_later_groups_flagged(dqflags):
    data, gdq, pdq = _ramp()
    thresh = np.full((20, 20), 60_000.0, np.float32)
    thresh[10, 10] = 13_000.0  # group index 2 equals the threshold
    res = flag_saturation(data, gdq, pdq, thresh, n_pix_grow_sat=0, dqflags=dqflags)
    sat = (res.groupdq[0, :, 10, 10] & dqflags["SATURATED"]) != 0
    assert sat.tolist() == [False, False, True, True, True]
    assert np.count_nonzero(res.groupdq) == 3
    # once saturated, stays saturated even if the value drops back below threshold
    data[0, 3, 10, 10] = 0.5
    res = flag_saturation(data, gdq, pdq, thresh, n_pix_grow_sat=0, dqflags=dqflags)
    assert (res.groupdq[0, 3, 10, 10] & dqflags["SATURATED"]) != 0


def test_grow_flags_3x3_box_in_same_and_later_groups(dqflags):
    data, gdq, pdq = _ramp()
    thresh = np.full((20, 20), 60_000.0, np.float32)
    thresh[5, 5] = 14_000.0  # saturates from group index 3
    res = flag_saturation(data, gdq, pdq, thresh, dqflags=dqflags)  # default n_pix_grow_sat=1
    sat = (res.groupdq & dqflags["SATURATED"]) != 0
    assert np.all(sat[0, 3:, 4:7, 4:7])
    assert not sat[0, :3].any()
    assert sat[0, 3].sum() == 9 and sat[0, 4].sum() == 9
    # corner pixel: box clipped at the edge
    thresh[0, 0] = 11_000.0
    res = flag_saturation(data, gdq, pdq, thresh, n_pix_grow_sat=1, dqflags=dqflags)
    sat0 = (res.groupdq[0, 0] & dqflags["SATURATED"]) != 0
    assert sat0.sum() == 4 and sat0[:2, :2].all()


def test_ad_floor_for_non_positive_values(dqflags):
    data, gdq, pdq = _ramp()
    data[0, 1, 2, 3] = 0.0
    data[0, 2, 2, 3] = -5.0
    thresh = np.full((20, 20), 60_000.0, np.float32)
    res = flag_saturation(data, gdq, pdq, thresh, dqflags=dqflags)
    floor = dqflags["AD_FLOOR"] | dqflags["DO_NOT_USE"]
    assert res.groupdq[0, 1, 2, 3] == floor and res.groupdq[0, 2, 2, 3] == floor
    assert res.groupdq[0, 3, 2, 3] == 0 and res.groupdq[0, 0, 2, 3] == 0


def test_nan_threshold_and_no_sat_check(dqflags):
    data, gdq, pdq = _ramp()
    data[:, :, 1, 1] = 65_535.0
    data[:, :, 2, 2] = 65_535.0
    thresh = np.full((20, 20), 30_000.0, np.float32)
    thresh[1, 1] = np.nan
    sat_dq = np.zeros((20, 20), np.uint32)
    sat_dq[2, 2] = dqflags["NO_SAT_CHECK"]
    sat_dq[3, 3] = dqflags["DEAD"]
    res = flag_saturation(data, gdq, pdq, thresh, sat_dq, n_pix_grow_sat=0, dqflags=dqflags)
    assert NO_CHECK_THRESHOLD == 65536.0
    for y, x in ((1, 1), (2, 2)):
        assert res.pixeldq[y, x] & dqflags["NO_SAT_CHECK"]
        assert not (res.groupdq[:, :, y, x] & dqflags["SATURATED"]).any()
    assert res.pixeldq[3, 3] == dqflags["DEAD"]
    # the 30000 threshold elsewhere: groups 10000+1000(g+1) never reach it
    assert np.count_nonzero(res.groupdq) == 0


def test_each_integration_independent(dqflags):
    data, gdq, pdq = _ramp(nints=2)
    data[1] -= 5000.0
    thresh = np.full((20, 20), 13_500.0, np.float32)
    res = flag_saturation(data, gdq, pdq, thresh, n_pix_grow_sat=0, dqflags=dqflags)
    sat = (res.groupdq & dqflags["SATURATED"]) != 0
    assert sat[0].any(axis=(1, 2)).tolist() == [False, False, False, True, True]
    assert not sat[1].any()


def test_shape_checks():
    data, gdq, pdq = _ramp()
    with pytest.raises(ValueError):
        flag_saturation(data, gdq, pdq, np.ones((5, 5)))
