"""What a reference file says about itself, whether FITS, ASDF or JSON.

FITS references carry their keywords in the primary header. ASDF references (the public
pipeline's DistortionModel, FilteroffsetModel, ...) carry them in the tree's ``meta``,
which :func:`reference_header` maps to the same FITS names (REFTYPE, INSTRUME, DETECTOR,
EXP_TYPE, USEAFTER, ...), so delivery and selection treat both alike. As in CRDS, a
``P_*`` pattern (``P_EXP_TY`` / ``meta.exposure.p_exptype``, ``P_FILTER``, ...) stands for
its keyword: ``NRC_IMAGE|NRC_TSIMAGE|`` selects either type. JSON references (the public
MSAOPER) carry them as top-level entries (``reftype``, ``instrument``, ``useafter``, ...).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shared.refdata.errors import ReferenceFileError

__all__ = ["REFERENCE_SUFFIXES", "is_asdf", "is_json", "media_type", "read_json_reference", "reference_files",
           "reference_header"]

REFERENCE_SUFFIXES = (".fits", ".asdf", ".json")
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


def is_json(path: str | Path) -> bool:
    """Whether ``path`` is a JSON reference (by its name: the public ones end in .json)."""
    return Path(path).suffix.lower() == ".json"


def read_json_reference(path: str | Path) -> dict[str, Any]:
    """A JSON reference's document.

    Raises
    ------
    OSError, ValueError
        Unreadable, not JSON, or not a JSON object."""
    with open(path, encoding="utf-8") as handle:
        document = json.load(handle)
    if not isinstance(document, dict):
        raise ValueError("a JSON reference is an object of entries (reftype, instrument, useafter, ...)")
    return document


def media_type(path: str | Path) -> str:
    """The media type a reference file is stored with."""
    if is_json(path):
        return "application/json"
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
    """The keywords of a reference file: its FITS primary header (no COMMENT/HISTORY), its
    ASDF ``meta`` or its JSON entries under FITS names; ``P_*`` patterns replace their keywords.

    Raises
    ------
    OSError, ValueError
        The file is neither readable FITS, ASDF nor JSON; ReferenceFileError (a ValueError)
        when it reads but what should hold its keywords cannot (an ASDF ``meta`` that is not
        a mapping).
    """
    if is_json(path):
        document = read_json_reference(path)
        instrument = document.get("instrument")
        if isinstance(instrument, dict):
            instrument = instrument.get("name")
        header = {k: v for k, v in {"REFTYPE": document.get("reftype"), "INSTRUME": instrument,
                                    "USEAFTER": document.get("useafter"), "PEDIGREE": document.get("pedigree"),
                                    "DESCRIP": document.get("descrip"), "AUTHOR": document.get("author"),
                                    "TELESCOP": document.get("telescope"), "EXP_TYPE": document.get("exp_type"),
                                    }.items() if v is not None}
        patterns = {"EXP_TYPE": document.get("p_exptype")}
    elif is_asdf(path):
        import asdf

        with asdf.open(path, lazy_load=True, memmap=False) as af:
            meta = af.tree.get("meta")
        if meta is not None and not isinstance(meta, Mapping):
            raise ReferenceFileError(f"its ASDF meta is a {type(meta).__name__}, not a mapping of keywords "
                                     "(reftype, instrument, useafter, ...)")
        meta = dict(meta or {})
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
