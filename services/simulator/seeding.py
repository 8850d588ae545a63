"""Deterministic random streams.

Every random quantity is drawn from a generator whose seed is derived from the run seed
and the identifiers of what it describes (detector code, target and sky tile, exposure
identifiers, row block), never from a shared generator. So one exposure's pixels do not
depend on which exposures were simulated before it, nor on the number of threads.
"""

from __future__ import annotations

import numpy as np

__all__ = ["Stream", "generator", "seed_sequence"]


class Stream:
    """First key of every seed sequence, so streams of different kinds never collide."""

    DETECTOR = 1
    SKY = 2
    EXPOSURE = 3
    POINTING = 4
    OPTICS = 5
    CATALOG = 6
    GUIDING = 7
    WAVEFRONT = 8


def seed_sequence(*keys: int, spawn_key: tuple[int, ...] = ()) -> np.random.SeedSequence:
    """A seed sequence from non-negative integer keys (and an optional spawn key)."""
    entropy = [int(k) for k in keys]
    if any(k < 0 for k in entropy):
        raise ValueError(f"seed keys must be non-negative integers, got {entropy}")
    return np.random.SeedSequence(entropy, spawn_key=tuple(int(k) for k in spawn_key))


def generator(*keys: int, spawn_key: tuple[int, ...] = ()) -> np.random.Generator:
    """``numpy.random.default_rng`` of :func:`seed_sequence`."""
    return np.random.default_rng(seed_sequence(*keys, spawn_key=spawn_key))
