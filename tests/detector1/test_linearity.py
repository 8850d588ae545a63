from __future__ import annotations

import numpy as np

from services.detector1.steps.linearity import correct_linearity


def test_polynomial_applied_and_saturated_groups_skipped(dqflags):
    rng = np.random.default_rng(2)
    data = rng.uniform(100, 40_000, (2, 5, 20, 20)).astype(np.float32)
    gdq = np.zeros(data.shape, np.uint8)
    gdq[0, 3:, 4, 4] = dqflags["SATURATED"]
    coeffs = np.zeros((4, 20, 20), np.float32)
    coeffs[0] = 1.5
    coeffs[1] = 1.0
    coeffs[2] = 2.0e-6
    coeffs[3] = -1.0e-11
    pdq = np.zeros((20, 20), np.uint32)

    res = correct_linearity(data, gdq, pdq, coeffs, dqflags=dqflags)

    f = data.astype(np.float64)
    expected = 1.5 + f + 2.0e-6 * f**2 - 1.0e-11 * f**3
    assert res.data.dtype == np.float32
    mask = np.ones(data.shape, bool)
    mask[0, 3:, 4, 4] = False
    assert np.allclose(res.data[mask], expected[mask], rtol=1e-6)
    assert np.array_equal(res.data[0, 3:, 4, 4], data[0, 3:, 4, 4])
    assert np.count_nonzero(res.pixeldq) == 0


def test_nan_coefficient_or_no_lin_corr_leaves_pixel(dqflags):
    data = np.full((1, 3, 20, 20), 1000.0, np.float32)
    gdq = np.zeros(data.shape, np.uint8)
    coeffs = np.zeros((3, 20, 20), np.float32)
    coeffs[1] = 1.0
    coeffs[2] = 1.0e-5
    coeffs[2, 1, 1] = np.nan
    lin_dq = np.zeros((20, 20), np.uint32)
    lin_dq[2, 2] = dqflags["NO_LIN_CORR"]
    lin_dq[3, 3] = dqflags["HOT"]
    pdq = np.zeros((20, 20), np.uint32)

    res = correct_linearity(data, gdq, pdq, coeffs, lin_dq, dqflags=dqflags)

    assert np.all(res.data[:, :, 1, 1] == 1000.0) and np.all(res.data[:, :, 2, 2] == 1000.0)
    assert np.allclose(res.data[:, :, 0, 0], 1010.0)
    assert res.pixeldq[1, 1] == dqflags["NO_LIN_CORR"]
    assert res.pixeldq[2, 2] == dqflags["NO_LIN_CORR"]
    assert res.pixeldq[3, 3] == dqflags["HOT"]
    assert np.allclose(res.data[:, :, 3, 3], 1010.0)
