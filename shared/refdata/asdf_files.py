"""Reference files in ASDF, the public format of some types (ABVEGAOFFSET: CRDS holds
``jwst_<instrument>_abvegaoffset_NNNN.asdf``): their keywords and tables, read so that
delivery, selection and loading treat them like FITS references.

A reference's keywords are its ``meta`` tree (stdatamodels' reference-file schemas) under
their FITS names (``meta.reftype`` is REFTYPE, ``meta.instrument.name`` INSTRUME, ...); a
table is a top-level key of the tree (an astropy Table or a structured array), returned
as a structured numpy array.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits

__all__ = ["REFERENCE_SUFFIXES", "asdf_header", "asdf_tables", "is_asdf", "reference_header"]

REFERENCE_SUFFIXES = (".fits", ".asdf")
"""File name endings of reference files (a directory stands for its files with these)."""

_MAGIC = b"#ASDF"

# meta path -> FITS keyword, as the stdatamodels reference-file schemas map them.
_KEYWORDS: dict[tuple[str, ...], str] = {
    ("reftype",): "REFTYPE", ("useafter",): "USEAFTER", ("pedigree",): "PEDIGREE",
    ("description",): "DESCRIP", ("author",): "AUTHOR", ("telescope",): "TELESCOP",
    ("model_type",): "DATAMODL", ("date",): "DATE", ("filename",): "FILENAME",
    ("instrument", "name"): "INSTRUME", ("instrument", "detector"): "DETECTOR",
    ("instrument", "filter"): "FILTER", ("instrument", "pupil"): "PUPIL", ("instrument", "band"): "BAND",
    ("instrument", "channel"): "CHANNEL", ("exposure", "type"): "EXP_TYPE",
    ("exposure", "p_exptype"): "P_EXP_TY", ("exposure", "readpatt"): "READPATT",
    ("subarray", "name"): "SUBARRAY",
}


def is_asdf(path: str | Path) -> bool:
    """Whether the file starts as an ASDF file does (``#ASDF``)."""
    with open(path, "rb") as f:
        return f.read(len(_MAGIC)) == _MAGIC


def _open(path: Path):
    import asdf

    try:
        return asdf.open(path, lazy_load=False, memmap=False)
    except Exception as exc:  # asdf raises ValueError, yaml errors, ... for a broken file
        raise OSError(f"{path.name} is not a readable ASDF file: {exc}") from exc


def _plain(value: Any) -> Any:
    if isinstance(value, str | int | float | bool):
        return value
    return str(value)  # e.g. an astropy Time


def asdf_header(path: str | Path) -> dict[str, Any]:
    """The keywords of an ASDF reference file ({FITS name: value}); OSError when the file
    cannot be read."""
    path = Path(path)
    with _open(path) as af:
        meta = af.tree.get("meta") or {}
        out: dict[str, Any] = {}
        for keys, name in _KEYWORDS.items():
            node: Any = meta
            for key in keys:
                node = node.get(key) if isinstance(node, dict) else None
            if node is not None and not isinstance(node, dict):
                out[name] = _plain(node)
        return out


def asdf_tables(path: str | Path, names: Iterable[str]) -> dict[str, np.ndarray]:
    """The tables ``names`` (top-level keys of the tree) that the file has, as structured
    arrays; OSError when the file cannot be read."""
    path = Path(path)
    out = {}
    with _open(path) as af:
        for name in names:
            value = af.tree.get(name)
            if value is None:
                continue
            as_array = getattr(value, "as_array", None)  # an astropy Table
            array = np.array(as_array() if as_array is not None else value)
            if array.dtype.names:
                out[name] = array
    return out


def reference_header(path: str | Path) -> dict[str, Any]:
    """The keywords of a reference file, FITS (its primary header) or ASDF (its meta
    tree); OSError (or ValueError) when it is neither."""
    path = Path(path)
    if is_asdf(path):
        return asdf_header(path)
    header = fits.getheader(path, 0)
    return {k: v for k, v in header.items() if k and k not in ("COMMENT", "HISTORY")}
