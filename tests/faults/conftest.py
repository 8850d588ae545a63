"""Fixtures of the fault tests: the small program (simulated once per session) and a
:class:`~tests.faults.harness.Harness` per test, torn down (logs printed on failure)."""

from __future__ import annotations

import pytest

from tests.faults.harness import Harness, simulate_small


@pytest.fixture(scope="session")
def small_sim(tmp_path_factory):
    return simulate_small(tmp_path_factory.mktemp("small-program"))


@pytest.fixture
def harness(request, tmp_path, pg_url, small_sim):
    h = Harness(tmp_path, pg_url, small_sim)
    failed_before = request.session.testsfailed
    try:
        h.start()
        yield h
    finally:
        h.stop()
        if request.session.testsfailed > failed_before:
            print(h.system.logs())
