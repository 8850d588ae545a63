"""srctype: is the source a point or extended, for the calibration of a spectrum?

As in the public pipeline: the observer's choice (SRCTYAPT, from the plan) when it is
POINT or EXTENDED; otherwise a background exposure (BKGDTARG true) is EXTENDED, and the
slit modes (MIRI LRS, NIRSpec fixed slit) default to POINT.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["source_type"]

_POINT_BY_DEFAULT = ("MIR_LRS-FIXEDSLIT", "MIR_LRS-SLITLESS", "NRS_FIXEDSLIT", "NRS_BRIGHTOBJ")


def source_type(keywords: Mapping) -> tuple[str, str]:
    """(SRCTYPE, why) for an exposure's keywords."""
    chosen = str(keywords.get("SRCTYAPT") or "").strip().upper()
    if chosen in ("POINT", "EXTENDED"):
        return chosen, f"the observer's choice (SRCTYAPT={chosen})"
    if keywords.get("BKGDTARG") in (True, "T", 1):
        return "EXTENDED", "a background target (BKGDTARG)"
    exp_type = str(keywords.get("EXP_TYPE") or "").upper()
    if exp_type in _POINT_BY_DEFAULT:
        return "POINT", f"the default of {exp_type}"
    return "EXTENDED", f"the default of {exp_type or 'an unknown mode'}"
