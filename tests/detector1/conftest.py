"""Fixtures for the Detector-1 kernel tests: a literal DQ mapping, as stcal's tests use."""

from __future__ import annotations

import pytest

# Literal values from jwst-conventions.md §1 (not imported, so a wrong table is caught).
DQFLAGS = {
    "GOOD": 0,
    "DO_NOT_USE": 1,
    "SATURATED": 2,
    "JUMP_DET": 4,
    "DROPOUT": 8,
    "OUTLIER": 16,
    "PERSISTENCE": 32,
    "AD_FLOOR": 64,
    "CHARGELOSS": 128,
    "REFERENCE_PIXEL": 2**31,
    "NO_GAIN_VALUE": 2**19,
    "NO_LIN_CORR": 2**20,
    "NO_SAT_CHECK": 2**21,
    "UNRELIABLE_DARK": 2**23,
    "HOT": 2048,
    "DEAD": 1024,
    "FLUX_ESTIMATED": 2**28,
}


@pytest.fixture
def dqflags() -> dict[str, int]:
    return dict(DQFLAGS)
