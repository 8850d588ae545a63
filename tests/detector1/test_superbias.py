from __future__ import annotations

import numpy as np

from services.detector1.steps.superbias import subtract_superbias


def test_bias_subtracted_from_every_group_nan_is_zero():
    rng = np.random.default_rng(0)
    bias = rng.uniform(10_000, 12_000, (20, 20)).astype(np.float32)
    bias[3, 4] = np.nan
    signal = rng.uniform(0, 500, (2, 5, 20, 20)).astype(np.float32)
    data = signal + np.nan_to_num(bias, nan=0.0)
    data[:, :, 3, 4] = 123.0
    bias_dq = np.zeros((20, 20), np.uint32)
    bias_dq[1, 1] = 2**22  # UNRELIABLE_BIAS
    pixeldq = np.zeros((20, 20), np.uint32)
    pixeldq[2, 2] = 1

    res = subtract_superbias(data, pixeldq, bias, bias_dq)

    assert res.data.dtype == np.float32
    good = np.ones((20, 20), bool)
    good[3, 4] = False
    assert np.allclose(res.data[:, :, good], signal[:, :, good], atol=2e-3)
    assert np.all(res.data[:, :, 3, 4] == 123.0)
    assert res.pixeldq[1, 1] == 2**22 and res.pixeldq[2, 2] == 1
    assert np.count_nonzero(res.pixeldq) == 2
