"""srctype: is the source a point or extended, for the calibration of a spectrum?

As in the public pipeline: the observer's choice (SRCTYAPT, from the plan) when it is
POINT or EXTENDED; otherwise a background exposure (BKGDTARG true) is EXTENDED, a nodded
exposure (PATTTYPE with NOD) or a MIRI MRS dither optimized for a point source (DITHOPFR
POINT-SOURCE) is POINT, the slit modes (MIRI LRS, NIRSpec fixed slit) default to POINT and
the IFU to EXTENDED. A NIRSpec MOS slitlet's source
is typed by its stellarity in the MSA metadata (:func:`slitlet_source_type`).
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["POINT_STELLARITY", "slitlet_source_type", "source_type"]

#: A MOS source more star-like than this (stellarity, 0 to 1) is a point source, as the
#: public step's fixed threshold has it.
POINT_STELLARITY = 0.75
_POINT_BY_DEFAULT = ("MIR_LRS-FIXEDSLIT", "MIR_LRS-SLITLESS", "NRS_FIXEDSLIT", "NRS_BRIGHTOBJ")
#: The modes whose dither says a point source (a nod, or the MRS's pattern optimized for
#: one: its DITHOPFR), as the public step reads them; the IFUs are EXTENDED otherwise.
_NOD_TYPED = ("MIR_LRS-FIXEDSLIT", "MIR_LRS-SLITLESS", "MIR_MRS", "NRS_FIXEDSLIT", "NRS_BRIGHTOBJ", "NRS_IFU")


def source_type(keywords: Mapping) -> tuple[str, str]:
    """(SRCTYPE, why) for an exposure's keywords."""
    chosen = str(keywords.get("SRCTYAPT") or "").strip().upper()
    if chosen in ("POINT", "EXTENDED"):
        return chosen, f"the observer's choice (SRCTYAPT={chosen})"
    if keywords.get("BKGDTARG") in (True, "T", 1):
        return "EXTENDED", "a background target (BKGDTARG)"
    exp_type = str(keywords.get("EXP_TYPE") or "").upper()
    pattern = str(keywords.get("DITHOPFR" if exp_type == "MIR_MRS" else "PATTTYPE") or "").upper()
    if exp_type in _NOD_TYPED and ("NOD" in pattern or "POINT-SOURCE" in pattern):
        what = "DITHOPFR" if exp_type == "MIR_MRS" else "PATTTYPE"
        return "POINT", f"a dither for a point source ({what}={pattern})"
    if exp_type in _POINT_BY_DEFAULT:
        return "POINT", f"the default of {exp_type}"
    return "EXTENDED", f"the default of {exp_type or 'an unknown mode'}"


def slitlet_source_type(stellarity: float) -> tuple[str, str]:
    """(SRCTYPE, why) of a NIRSpec MOS slitlet's source from its stellarity (SOURCE_INFO):
    POINT above :data:`POINT_STELLARITY` and when unknown (negative), EXTENDED otherwise,
    as the public step has it."""
    if stellarity < 0.0:
        return "POINT", f"stellarity unknown ({stellarity:g})"
    if stellarity > POINT_STELLARITY:
        return "POINT", f"stellarity {stellarity:.2f} > {POINT_STELLARITY}"
    return "EXTENDED", f"stellarity {stellarity:.2f} <= {POINT_STELLARITY}"
