from __future__ import annotations

import numpy as np

from services.detector1.steps.dq_init import initialize_dq


def test_mask_ored_and_do_not_use_copied_to_groups(dqflags):
    pixeldq = np.zeros((20, 20), np.uint32)
    pixeldq[0, 0] = dqflags["REFERENCE_PIXEL"]
    groupdq = np.zeros((2, 5, 20, 20), np.uint8)
    groupdq[1, 3, 7, 7] = dqflags["DROPOUT"]
    mask = np.zeros((20, 20), np.uint32)
    mask[5, 5] = dqflags["DEAD"] | dqflags["DO_NOT_USE"]
    mask[6, 6] = dqflags["HOT"]
    mask[0, 0] = dqflags["DO_NOT_USE"]

    res = initialize_dq(pixeldq, groupdq, mask, dqflags=dqflags)

    assert res.pixeldq.dtype == np.uint32 and res.groupdq.dtype == np.uint8
    assert res.pixeldq[5, 5] == dqflags["DEAD"] | dqflags["DO_NOT_USE"]
    assert res.pixeldq[6, 6] == dqflags["HOT"]
    assert res.pixeldq[0, 0] == dqflags["REFERENCE_PIXEL"] | dqflags["DO_NOT_USE"]
    assert np.all(res.groupdq[:, :, 5, 5] == dqflags["DO_NOT_USE"])
    assert np.all(res.groupdq[:, :, 0, 0] == dqflags["DO_NOT_USE"])
    assert np.all(res.groupdq[:, :, 6, 6] == 0)  # HOT alone does not exclude groups
    assert res.groupdq[1, 3, 7, 7] == dqflags["DROPOUT"]  # existing flags kept
    assert np.count_nonzero(res.groupdq) == 2 * 5 * 2 + 1
    assert groupdq.sum() == dqflags["DROPOUT"]  # inputs untouched
