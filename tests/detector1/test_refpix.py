from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import sigmaclip

from services.detector1.steps.refpix import correct_miri_refpix, correct_nir_refpix


def _nir_frame(ny, nx, x0, y0, ngroups=3, noise=0.5, seed=0):
    """Ramp with per-(group, amplifier, column parity) offsets on top of a known signal.

    Reference pixels (full-frame rows/cols 0-3 and 2044-2047) carry no signal.
    """
    rng = np.random.default_rng(seed)
    rows = y0 + np.arange(ny)
    cols = x0 + np.arange(nx)
    ref = (rows[:, None] < 4) | (rows[:, None] >= 2044) | (cols[None] < 4) | (cols[None] >= 2044)
    signal = np.where(ref, 0.0, rng.uniform(100, 1000, (ngroups, ny, nx)) * (np.arange(ngroups) + 1)[:, None, None])
    offsets = rng.uniform(-300, 300, (ngroups, 4, 2))  # (group, amp, parity)
    pattern = offsets[:, cols // 512, cols % 2][:, None, :]
    data = signal + pattern + rng.normal(0, noise, (ngroups, ny, nx))
    return data[None].astype(np.float32), signal[None], ref


def test_full_frame_removes_amplifier_odd_even_offsets(dqflags):
    data, signal, ref = _nir_frame(2048, 2048, 0, 0, ngroups=2)
    pdq = np.zeros((2048, 2048), np.uint32)
    res = correct_nir_refpix(data, pdq, dqflags=dqflags)
    assert res.top_bottom_applied and res.side_applied
    assert (res.n_ref_rows, res.n_ref_cols) == (8, 8)
    resid = (res.data - signal)[0][:, ~ref]
    assert np.abs(resid.mean()) < 0.05 and resid.std() < 0.6  # noise 0.5 (+ side-correction noise)
    assert np.abs((data - signal)[0][:, ~ref]).mean() > 50  # there was something to remove
    assert data.dtype == res.data.dtype == np.float32


def test_full_width_subarray_bottom_rows_only_and_side_drift(dqflags):
    ny = 64
    data, signal, ref = _nir_frame(ny, 2048, 0, 0, ngroups=3, seed=1)
    drift = 20.0 * np.sin(np.arange(ny) / 15.0)  # slow row drift common to all columns
    data = data + drift[None, None, :, None].astype(np.float32)
    res = correct_nir_refpix(data, np.zeros((ny, 2048), np.uint32), xstart=1, ystart=1, noutputs=4, dqflags=dqflags)
    assert res.top_bottom_applied and res.side_applied and res.n_ref_rows == 4
    resid = (res.data - signal)[0][:, ~ref]
    # the running median over 11 rows follows a slow drift to well under a DN
    assert np.abs(resid).mean() < 1.0
    plain = correct_nir_refpix(data, np.zeros((ny, 2048), np.uint32), use_side_ref_pixels=False, dqflags=dqflags)
    assert not plain.side_applied
    assert np.abs((plain.data - signal)[0][:, ~ref]).mean() > 5.0  # drift left in


def test_one_output_subarray_uses_every_reference_pixel_by_column_parity(dqflags):
    # 64 x 64 window in the top-right corner, read by one amplifier: 4 reference rows and
    # 4 reference columns, pooled per column parity; no side (running-median) correction
    ny = nx = 64
    x0 = y0 = 2048 - 64
    rng = np.random.default_rng(3)
    rows, cols = y0 + np.arange(ny), x0 + np.arange(nx)
    ref = (rows[:, None] >= 2044) | (cols[None] >= 2044)
    signal = np.where(ref, 0.0, rng.uniform(10, 50, (2, ny, nx)))
    off = np.array([[5.0, -7.0], [11.0, 3.0]])  # (group, parity), one amplifier
    data = (signal + off[:, cols % 2][:, None, :] + rng.normal(0, 0.2, (2, ny, nx)))[None].astype(np.float32)
    pdq = np.zeros((ny, nx), np.uint32)
    res = correct_nir_refpix(data, pdq, xstart=x0 + 1, ystart=y0 + 1, noutputs=1, dqflags=dqflags)
    assert res.top_bottom_applied and not res.side_applied and (res.n_ref_rows, res.n_ref_cols) == (4, 4)
    assert "496 reference pixels" in res.note  # 4 rows x 64 + 60 rows x 4 columns
    resid = (res.data - signal)[0][:, ~ref]
    assert np.abs(resid).mean() < 0.3
    # pooled: the offset removed is the 3-sigma clipped mean of all reference pixels of a parity
    even_ref = ref & (cols % 2 == 0)[None, :]
    expected = sigmaclip(data[0, 0][even_ref].astype(np.float64), 3.0, 3.0)[0].mean()
    assert np.allclose(data[0, 0][~ref & (cols % 2 == 0)[None, :]] - res.data[0, 0][~ref & (cols % 2 == 0)[None, :]],
                       expected, atol=1e-3)


def test_window_without_reference_pixels_is_left_alone(dqflags):
    data = np.ones((1, 2, 32, 32), np.float32)
    res = correct_nir_refpix(data, np.zeros((32, 32), np.uint32), xstart=1000, ystart=1000, dqflags=dqflags)
    assert not res.top_bottom_applied and not res.side_applied
    assert res.data is data and "no reference" in res.note


def test_do_not_use_reference_pixels_are_skipped(dqflags):
    data, signal, ref = _nir_frame(32, 2048, 0, 0, ngroups=1, seed=2)
    pdq = np.zeros((32, 2048), np.uint32)
    # a whole bad reference row per amplifier would bias the mean if used (beyond clipping)
    data[0, 0, 0:2, :] += 5000.0
    pdq[0:2, :] = dqflags["DO_NOT_USE"]
    res = correct_nir_refpix(data, pdq, use_side_ref_pixels=False, dqflags=dqflags)
    assert np.abs((res.data - signal)[0][:, ~ref]).mean() < 0.5


def test_window_outside_detector_rejected():
    with pytest.raises(ValueError):
        correct_nir_refpix(np.zeros((1, 1, 8, 8), np.float32), np.zeros((8, 8), np.uint32), xstart=2045)


def test_miri_amplifier_row_parity_offsets(dqflags):
    rng = np.random.default_rng(7)
    ngroups, ny, nx = 4, 1024, 1032
    cols = np.arange(nx)
    ref = (cols < 4) | (cols >= 1028)
    signal = np.cumsum(rng.uniform(0, 20, (ngroups, ny, nx)), axis=0) * ~ref
    off = rng.uniform(-50, 50, (ngroups, 2, 4))  # (group, row parity, amplifier)
    pattern = off[:, (np.arange(ny) % 2)[:, None], (cols % 4)[None, :]]
    data = (signal + pattern + rng.normal(0, 0.3, signal.shape))[None].astype(np.float32)
    res = correct_miri_refpix(data, np.zeros((ny, nx), np.uint32), dqflags=dqflags)
    assert res.top_bottom_applied and res.n_ref_cols == 8
    assert np.array_equal(res.data[0, 0], data[0, 0])  # first group unchanged
    got = res.data[0] - res.data[0, :1]
    want = signal - signal[:1]
    assert np.abs((got - want)[:, :, ~ref]).mean() < 0.5
    assert np.abs(((data[0] - data[0, :1]) - want)[:, :, ~ref]).mean() > 10


def _miri(ny, nx, x0, y0, ngroups=4, seed=7):
    rng = np.random.default_rng(seed)
    cols, rows = x0 + np.arange(nx), y0 + np.arange(ny)
    ref = (cols < 4) | (cols >= 1028)
    signal = np.cumsum(rng.uniform(0, 20, (ngroups, ny, nx)), axis=0) * ~ref
    off = rng.uniform(-50, 50, (ngroups, 2, 4))  # (group, full-frame row parity, amplifier)
    pattern = off[:, (rows % 2)[:, None], (cols % 4)[None, :]]
    data = (signal + pattern + rng.normal(0, 0.3, signal.shape))[None].astype(np.float32)
    return data, signal, ref


def test_miri_subarray_with_reference_columns_is_corrected(dqflags):
    # SUB128: columns 1-136 (0-3 are reference columns), rows 889-1016 (odd start row)
    data, signal, ref = _miri(128, 136, 0, 888)
    res = correct_miri_refpix(data, np.zeros((128, 136), np.uint32), xstart=1, ystart=889, dqflags=dqflags)
    assert res.top_bottom_applied and res.n_ref_cols == 4 and "subarray" in res.note
    got = res.data[0] - res.data[0, :1]
    want = signal - signal[:1]
    assert np.abs((got - want)[:, :, ~ref]).mean() < 0.5
    assert np.abs(((data[0] - data[0, :1]) - want)[:, :, ~ref]).mean() > 10
    off = correct_miri_refpix(data, np.zeros((128, 136), np.uint32), xstart=1, ystart=889, miri_subarrays=False,
                              dqflags=dqflags)
    assert not off.top_bottom_applied and off.data is data and "skipped" in off.note  # jwst's behaviour


def test_miri_subarray_without_reference_columns_is_left_alone(dqflags):
    data = np.ones((1, 3, 256, 320), np.float32)
    res = correct_miri_refpix(data, np.zeros((256, 320), np.uint32), xstart=413, ystart=51, dqflags=dqflags)
    assert not res.top_bottom_applied and res.data is data and "without reference columns" in res.note
