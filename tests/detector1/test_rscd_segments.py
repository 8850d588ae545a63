"""rscd on a segment that starts later (INTSTART > 1): its first integration follows the
previous segment's last, so it carries the offset too and is corrected from its own signal."""

from __future__ import annotations

import numpy as np

from services.detector1.steps.rscd import RscdParameters, correct_rscd, rscd_offsets

P = RscdParameters(scale=0.02, tau=2.0, level_max=5000.0)


def _series(nints: int, *, later: bool = True, ngroups: int = 8, slope: float = 300.0) -> np.ndarray:
    """A steady source's ramps with the RSCD offset of each previous integration added (to
    the first too when the segment is a ``later`` one: one came before it)."""
    clean = np.broadcast_to((np.arange(ngroups, dtype=np.float32) * slope)[None, :, None, None],
                            (nints, ngroups, 2, 2)).copy()
    data = clean.copy()
    for n in range(nints):
        if n or later:
            data[n] += rscd_offsets(clean[n - 1] if n else clean[0], ngroups, P)
    return clean, data


def test_a_later_segments_first_integration_is_corrected_from_its_own_signal():
    clean, data = _series(4)
    gdq = np.zeros(data.shape, np.uint8)
    later = correct_rscd(data, gdq, P, integration_start=21).data
    assert np.abs(later - clean).max() < 0.05  # every integration, the first included (offsets up to 30 DN)
    clean, data = _series(4, later=False)
    first = correct_rscd(data, gdq, P).data  # an exposure's own first integration is left as it is
    assert np.array_equal(first[0], data[0]) and np.abs(first - clean).max() < 0.05


def test_a_later_segment_of_one_integration_is_corrected_too():
    clean, data = _series(1)
    r = correct_rscd(data, np.zeros(data.shape, np.uint8), P, integration_start=5)
    assert r.applied and np.abs(r.data - clean).max() < 0.05
    assert not correct_rscd(data, np.zeros(data.shape, np.uint8), P).applied
