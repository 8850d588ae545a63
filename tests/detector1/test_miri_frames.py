from __future__ import annotations

import numpy as np

from services.detector1.pipeline import DETECTOR1
from services.detector1.steps.miri_frames import flag_first_frame, flag_last_frame


def test_firstframe_is_skipped_unless_asked_for():
    assert "firstframe" in DETECTOR1.params().skip and "lastframe" not in DETECTOR1.params().skip
    assert "firstframe" not in DETECTOR1.params(steps={"firstframe": {"skip": False}}).skip
    assert "lastframe" in DETECTOR1.params(skip=["lastframe"]).skip


def test_first_frame_needs_more_than_three_groups(dqflags):
    gdq = np.zeros((2, 5, 20, 20), np.uint8)
    gdq[0, 0, 1, 1] = dqflags["SATURATED"]
    res = flag_first_frame(gdq, dqflags=dqflags)
    assert res.applied
    assert np.all(res.groupdq[:, 0] & dqflags["DO_NOT_USE"])
    assert res.groupdq[0, 0, 1, 1] == dqflags["SATURATED"] | dqflags["DO_NOT_USE"]
    assert not res.groupdq[:, 1:].any()
    assert not gdq[:, 1:].any() and gdq[0, 0, 0, 0] == 0
    small = np.zeros((1, 3, 4, 4), np.uint8)
    res = flag_first_frame(small)
    assert not res.applied and res.groupdq is small


def test_last_frame_needs_more_than_two_groups(dqflags):
    gdq = np.zeros((2, 3, 20, 20), np.uint8)
    res = flag_last_frame(gdq, dqflags=dqflags)
    assert res.applied
    assert np.all(res.groupdq[:, 2] == dqflags["DO_NOT_USE"])
    assert not res.groupdq[:, :2].any()
    res = flag_last_frame(np.zeros((1, 2, 4, 4), np.uint8))
    assert not res.applied
