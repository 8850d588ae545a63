"""Private helpers: sorting network, medians, clipped mean, running median."""

from __future__ import annotations

import numpy as np
import pytest

from services.detector1.steps import _common


@pytest.mark.parametrize("nrows", [1, 2, 3, 4, 5, 9, 10, 16, 17, 31, 32, 40])
def test_sort_columns_matches_numpy(nrows):
    rng = np.random.default_rng(nrows)
    values = rng.normal(size=(nrows, 257)).astype(np.float32)
    values[rng.random(values.shape) < 0.2] = np.inf
    expected = np.sort(values, axis=0)
    assert np.array_equal(_common.sort_columns(values.copy()), expected)
    rows = _common.sorted_rows(values.copy())
    assert all(np.array_equal(rows[k], expected[k]) for k in range(nrows))


def test_median_of_sorted_with_counts_and_offsets():
    rng = np.random.default_rng(3)
    data = np.sort(rng.normal(size=(7, 50)), axis=0)
    count = rng.integers(0, 8, 50)
    offset = np.minimum(rng.integers(0, 2, 50), 7 - count)
    med = _common.median_of_sorted(data, count, offset)
    for j in range(50):
        if count[j] == 0:
            assert np.isnan(med[j])
        else:
            assert med[j] == pytest.approx(np.median(data[offset[j] : offset[j] + count[j], j]))


def _scipy_like_sigmaclip(values, n=3.0):
    c = values[np.isfinite(values)]
    while True:
        size = c.size
        mean, std = c.mean(), c.std()
        c = c[(c >= mean - n * std) & (c <= mean + n * std)]
        if c.size == size:
            return c.mean()


def test_clipped_mean_matches_iterative_sigmaclip():
    rng = np.random.default_rng(5)
    values = rng.normal(10.0, 1.0, size=(6, 400))
    values[:, :5] = 1000.0  # outliers
    values[2, 7:20] = np.nan
    got = _common.clipped_mean(values)
    for k in range(6):
        assert got[k] == pytest.approx(_scipy_like_sigmaclip(values[k]), rel=1e-12)
        assert abs(got[k] - 10.0) < 0.2
    assert np.isnan(_common.clipped_mean(np.full((2, 3), np.nan))).all()


def test_running_median_truncates_at_the_edges():
    x = np.array([5.0, 1.0, 9.0, 3.0, 7.0, np.nan, 2.0])
    got = _common.running_median(x, 3)
    expected = [3.0, 5.0, 3.0, 7.0, 5.0, 4.5, 2.0]
    assert np.allclose(got, expected)
    assert np.allclose(_common.running_median(x[np.newaxis], 1)[0][[0, 1, 6]], [5.0, 1.0, 2.0])
