"""Full-frame timing and memory of jump + ramp_fit (slow: run with DMS_RUN_SLOW=1).

Target: a 2048 x 2048, 10-group, 1-integration ramp through jump and ramp_fit well under 3 s
on one core, inside the detector1 budget of 1 GB.
"""

from __future__ import annotations

import time
import tracemalloc

import numpy as np
import pytest

from services.detector1.steps.jump import detect_jumps
from services.detector1.steps.ramp_fit import fit_ramps


@pytest.mark.slow
def test_full_frame_jump_and_ramp_fit_fast_and_small():
    rng = np.random.default_rng(1)
    ny = nx = 2048
    ngroups, tgroup, gain, rn = 10, 10.737, 2.0, 10.0
    rate = rng.uniform(0, 50, (ny, nx)).astype(np.float32)
    data = np.empty((1, ngroups, ny, nx), np.float32)
    cum = np.zeros((ny, nx), np.float32)
    for g in range(ngroups):
        cum += rng.poisson(rate * tgroup * gain).astype(np.float32) / gain
        data[0, g] = cum + rng.normal(0, rn / np.sqrt(2), (ny, nx)).astype(np.float32)
    hits = rng.integers(0, ny * nx, 20_000)
    groups = rng.integers(1, ngroups, hits.size)
    flat = data.reshape(ngroups, -1)
    for p, g in zip(hits, groups, strict=True):
        flat[g:, p] += 250.0
    gdq = np.zeros(data.shape, np.uint8)
    pdq = np.zeros((ny, nx), np.uint32)
    gain_a = np.full((ny, nx), gain, np.float32)
    rn_a = np.full((ny, nx), rn, np.float32)

    best = np.inf
    for _ in range(2):
        t0 = time.perf_counter()
        jumps = detect_jumps(data, gdq, pdq, gain_a, rn_a, nframes=1)
        res = fit_ramps(data, jumps.groupdq, jumps.pixeldq, gain_a, rn_a, group_time=tgroup, nframes=1)
        best = min(best, time.perf_counter() - t0)
    assert best < 3.0, f"jump + ramp_fit took {best:.2f} s"

    tracemalloc.start()
    jumps = detect_jumps(data, gdq, pdq, gain_a, rn_a, nframes=1)
    res = fit_ramps(data, jumps.groupdq, jumps.pixeldq, gain_a, rn_a, group_time=tgroup, nframes=1)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 600e6, f"peak {peak / 1e6:.0f} MB beyond the inputs"
    z = (res.rate - rate) / res.err
    assert abs(np.nanstd(z) - 1.0) < 0.05
