"""What a reference file says about itself, whether FITS or ASDF.

FITS references carry their keywords in the primary header. ASDF references (the public
pipeline's DistortionModel, FilteroffsetModel, ...) carry them in the tree's ``meta``,
which :func:`reference_header` maps to the same FITS names (REFTYPE, INSTRUME, DETECTOR,
EXP_TYPE, USEAFTER, ...), so delivery and selection treat both alike. As in CRDS, a
``P_*`` pattern (``P_EXP_TY`` / ``meta.exposure.p_exptype``, ``P_FILTER``, ...) stands for
its keyword: ``NRC_IMAGE|NRC_TSIMAGE|`` selects either type.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["REFERENCE_SUFFIXES", "is_asdf", "media_type", "reference_files", "reference_header"]

REFERENCE_SUFFIXES = (".fits", ".asdf")
_ASDF_MAGIC = b"#ASDF"

# FITS keyword -> path in an ASDF reference's ``meta``.
_ASDF_META = {
    "REFTYPE": "reftype",
    "INSTRUME": "instrument.name",
    "DETECTOR": "instrument.detector",
    "MODULE": "instrument.module",
    "CHANNEL": "instrument.channel",
    "FILTER": "instrument.filter",
    "PUPIL": "instrument.pupil",
    "BAND": "instrument.band",
    "EXP_TYPE": "exposure.type",
    "READPATT": "exposure.readpatt",
    "SUBARRAY": "subarray.name",
    "USEAFTER": "useafter",
    "PEDIGREE": "pedigree",
    "DESCRIP": "description",
    "AUTHOR": "author",
    "TELESCOP": "telescope",
}
# keyword -> (its pattern keyword in FITS, the pattern's path in ASDF meta)
_PATTERNS = {
    "EXP_TYPE": ("P_EXP_TY", "exposure.p_exptype"),
    "DETECTOR": ("P_DETECT", "instrument.p_detector"),
    "FILTER": ("P_FILTER", "instrument.p_filter"),
    "PUPIL": ("P_PUPIL", "instrument.p_pupil"),
    "BAND": ("P_BAND", "instrument.p_band"),
    "CHANNEL": ("P_CHANNE", "instrument.p_channel"),
    "READPATT": ("P_READPA", "exposure.p_readpatt"),
    "SUBARRAY": ("P_SUBARR", "subarray.p_subarray"),
}


def is_asdf(path: str | Path) -> bool:
    """Whether ``path`` is an ASDF file (by its first bytes)."""
    with open(path, "rb") as handle:
        return handle.read(len(_ASDF_MAGIC)) == _ASDF_MAGIC


def media_type(path: str | Path) -> str:
    """The media type a reference file is stored with."""
    return "application/asdf" if is_asdf(path) else "application/fits"


def reference_files(directory: str | Path) -> list[Path]:
    """The reference files of a directory (``*.fits`` and ``*.asdf``), sorted by name."""
    return sorted(p for p in Path(directory).iterdir() if p.suffix in REFERENCE_SUFFIXES and p.is_file())


def _lookup(tree: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(tree, dict) or part not in tree:
            return None
        tree = tree[part]
    return tree


def _pattern(text: Any) -> str | None:
    """A ``P_*`` value (``A|B|``) as a selection pattern (``A|B``); None when blank."""
    if text is None:
        return None
    alternatives = [a.strip() for a in str(text).split("|") if a.strip()]
    return "|".join(alternatives) or None


def reference_header(path: str | Path) -> dict[str, Any]:
    """The keywords of a reference file: its FITS primary header (no COMMENT/HISTORY), or
    its ASDF ``meta`` under FITS names; ``P_*`` patterns replace their keywords.

    Raises
    ------
    OSError, ValueError
        The file is neither readable FITS nor ASDF.
    """
    if is_asdf(path):
        import asdf

        with asdf.open(path, lazy_load=True, memmap=False) as af:
            meta = dict(af.tree.get("meta") or {})
        header = {k: v for k, p in _ASDF_META.items() if (v := _lookup(meta, p)) is not None}
        patterns = {k: _lookup(meta, p) for k, (_, p) in _PATTERNS.items()}
    else:
        from astropy.io import fits

        primary = fits.getheader(path, 0)
        header = {k: v for k, v in primary.items() if k and k not in ("COMMENT", "HISTORY")}
        patterns = {k: header.get(p) for k, (p, _) in _PATTERNS.items()}
    for keyword, text in patterns.items():
        if (pattern := _pattern(text)) is not None:
            header[keyword] = pattern
    return header
