"""DQ bit values (jwst-conventions.md §1), as in stdatamodels ``dqflags``.

TEMPORARY local copy: these tables move to ``shared/datamodels``. Every kernel either takes
``dqflags`` as an argument or falls back to :data:`PIXEL` imported from here, so the move is
a one-line change in this module.
"""

from __future__ import annotations

from types import MappingProxyType

__all__ = ["GROUP", "PIXEL"]

PIXEL = MappingProxyType(
    {
        "GOOD": 0,
        "DO_NOT_USE": 2**0,
        "SATURATED": 2**1,
        "JUMP_DET": 2**2,
        "DROPOUT": 2**3,
        "OUTLIER": 2**4,
        "PERSISTENCE": 2**5,
        "AD_FLOOR": 2**6,
        "CHARGELOSS": 2**7,
        "RESERVED": 2**8,
        "NON_SCIENCE": 2**9,
        "DEAD": 2**10,
        "HOT": 2**11,
        "WARM": 2**12,
        "LOW_QE": 2**13,
        "RC": 2**14,
        "TELEGRAPH": 2**15,
        "NONLINEAR": 2**16,
        "BAD_REF_PIXEL": 2**17,
        "NO_FLAT_FIELD": 2**18,
        "NO_GAIN_VALUE": 2**19,
        "NO_LIN_CORR": 2**20,
        "NO_SAT_CHECK": 2**21,
        "UNRELIABLE_BIAS": 2**22,
        "UNRELIABLE_DARK": 2**23,
        "UNRELIABLE_SLOPE": 2**24,
        "UNRELIABLE_FLAT": 2**25,
        "OPEN": 2**26,
        "ADJ_OPEN": 2**27,
        "FLUX_ESTIMATED": 2**28,
        "MSA_FAILED_OPEN": 2**29,
        "OTHER_BAD_PIXEL": 2**30,
        "REFERENCE_PIXEL": 2**31,
    }
)
"""32-bit pixel flags (PIXELDQ, DQ)."""

GROUP = MappingProxyType(
    {
        name: PIXEL[name]
        for name in (
            "GOOD",
            "DO_NOT_USE",
            "SATURATED",
            "JUMP_DET",
            "DROPOUT",
            "PERSISTENCE",
            "AD_FLOOR",
            "CHARGELOSS",
        )
    }
)
"""8-bit group flags (GROUPDQ); same values as the pixel flags of the same name."""
