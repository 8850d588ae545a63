"""Fixtures of the scale-out test (``make scale-test``): a cluster of network namespaces on
this machine, and the simulated program it processes. Not part of ``make test``
(``norecursedirs`` in pyproject.toml): it creates namespaces and needs root."""

from __future__ import annotations

import pytest

from services.simulator import simulate
from tests.scale.cluster import Cluster, namespace_support
from tests.scale.program import description


@pytest.fixture(scope="module")
def cluster(request, tmp_path_factory):
    reason = namespace_support()
    if reason is not None:
        pytest.skip(f"the scale-out test needs network namespaces: {reason}")
    sut = Cluster(tmp_path_factory.mktemp("cluster"), workers=3)
    failed_before = request.session.testsfailed
    try:
        sut.start()
        yield sut
    finally:
        if request.session.testsfailed > failed_before:
            print(sut.logs())
        sut.stop()


@pytest.fixture(scope="module")
def simulation(tmp_path_factory):
    """Two NIRCam imaging observations of two detectors at four dither points: 16 exposures."""
    return simulate(description(observations=2, dithers=4), tmp_path_factory.mktemp("sim"))
