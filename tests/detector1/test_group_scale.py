from __future__ import annotations

import numpy as np
import pytest

from services.detector1.steps.group_scale import scale_groups


def test_scales_by_frame_divisor_over_nframes():
    data = np.full((1, 5, 20, 20), 100.0, np.float32)
    res = scale_groups(data, nframes=5, frame_divisor=4)
    assert res.applied and res.factor == pytest.approx(0.8)
    assert res.data.dtype == np.float32
    assert np.allclose(res.data, 80.0)
    assert np.all(data == 100.0)  # input untouched


@pytest.mark.parametrize("divisor", [None, 4])
def test_not_applied_when_equal_or_unknown(divisor):
    data = np.ones((1, 3, 4, 4), np.float32)
    res = scale_groups(data, nframes=4, frame_divisor=divisor)
    assert not res.applied and res.factor == 1.0 and res.data is data


def test_rejects_bad_shapes():
    with pytest.raises(ValueError):
        scale_groups(np.ones((3, 4, 4), np.float32), nframes=1, frame_divisor=2)
