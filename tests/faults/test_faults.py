"""Fault tests: the small program through the whole system while something breaks, each
ending with the invariant check (tests/faults/invariants.py, docs/operations.md)."""

from __future__ import annotations

import time

import pytest

from tests.faults.harness import Harness
from tests.faults.invariants import chain_complete, check_invariants

pytestmark = [pytest.mark.integration, pytest.mark.faults]

CHAIN_TIMEOUT = 150


def run_to_the_end(harness: Harness, timeout: float = CHAIN_TIMEOUT) -> None:
    harness.system.wait_until(lambda: chain_complete(harness), timeout, "the chain down to Level 3 and previews",
                              poll=1.0)
    harness.system.wait_idle(quiet=6)
    check_invariants(harness)


def test_no_fault(harness):
    t0 = time.monotonic()
    harness.submit()
    run_to_the_end(harness)
    print(f"no fault: the small program in {time.monotonic() - t0:.1f} s")
