from __future__ import annotations

import numpy as np
import pytest

from services.detector1.steps.dark_current import dark_frames_for_groups, subtract_dark


def _dark(nframes_dark=40, n=20):
    # frame f of the dark holds 10 + 2 f (+ a per-pixel pattern)
    pattern = np.arange(n * n, dtype=np.float32).reshape(n, n) * 0.01
    f = np.arange(nframes_dark, dtype=np.float32)[:, None, None]
    return (10.0 + 2.0 * f + pattern).astype(np.float32), pattern


def test_frame_lists_for_nframes4_groupgap1():
    frames = dark_frames_for_groups(3, nframes=4, groupgap=1)
    assert [list(x) for x in frames] == [[0, 1, 2, 3], [5, 6, 7, 8], [10, 11, 12, 13]]
    frames = dark_frames_for_groups(2, nframes=2, groupgap=3, drop_frames1=1)
    assert [list(x) for x in frames] == [[1, 2], [6, 7]]


def test_nframes4_groupgap1_averaging_every_integration():
    dark, pattern = _dark()
    data = np.full((2, 5, 20, 20), 1000.0, np.float32)
    pdq = np.zeros((20, 20), np.uint32)
    res = subtract_dark(data, pdq, dark, nframes=4, groupgap=1)
    assert res.n_frames_extrapolated == 0
    for g in range(5):
        mean_frame = g * 5 + 1.5  # mean of g*5 .. g*5+3
        expected = 1000.0 - (10.0 + 2.0 * mean_frame + pattern)
        assert np.allclose(res.data[:, g], expected, atol=1e-3)
    assert np.all(data == 1000.0)


def test_extrapolates_linearly_past_the_dark():
    dark, pattern = _dark(nframes_dark=6)
    data = np.zeros((1, 4, 20, 20), np.float32)
    res = subtract_dark(data, np.zeros((20, 20), np.uint32), dark, nframes=2, groupgap=1)
    # group 3 uses frames 9, 10: beyond the 6-frame dark, extrapolated 10 + 2 f
    assert res.n_frames_extrapolated == 5
    assert np.allclose(-res.data[0, 3], 10.0 + 2.0 * 9.5 + pattern, atol=1e-3)
    assert np.allclose(-res.data[0, 2], 10.0 + 2.0 * 6.5 + pattern, atol=1e-3)  # frames 6 (extrap.), 7


def test_nan_dark_is_zero_and_dq_ored():
    dark, _ = _dark(nframes_dark=5)
    dark[:, 4, 4] = np.nan
    dark_dq = np.zeros((20, 20), np.uint32)
    dark_dq[7, 7] = 2**23
    pdq = np.zeros((20, 20), np.uint32)
    pdq[1, 1] = 1
    data = np.full((1, 3, 20, 20), 50.0, np.float32)
    res = subtract_dark(data, pdq, dark, dark_dq, nframes=1, groupgap=0)
    assert np.all(res.data[0, :, 4, 4] == 50.0)
    assert res.pixeldq[7, 7] == 2**23 and res.pixeldq[1, 1] == 1


def test_miri_style_4d_dark_per_integration():
    dark = np.stack([np.full((4, 20, 20), 1.0), np.full((4, 20, 20), 3.0)]).astype(np.float32)
    dark_dq = np.zeros((2, 4, 20, 20), np.uint32)
    dark_dq[1, 2, 5, 6] = 4
    data = np.full((3, 4, 20, 20), 10.0, np.float32)
    res = subtract_dark(data, np.zeros((20, 20), np.uint32), dark, dark_dq, nframes=1, groupgap=0)
    assert np.allclose(res.data[0], 9.0)
    assert np.allclose(res.data[1], 7.0)
    assert np.allclose(res.data[2], 7.0)  # last dark integration reused
    assert res.pixeldq[5, 6] == 4


def test_shape_errors():
    with pytest.raises(ValueError):
        subtract_dark(np.zeros((1, 2, 4, 4), np.float32), np.zeros((4, 4), np.uint32), np.zeros((2, 3, 3)), nframes=1, groupgap=0)
