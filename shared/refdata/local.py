"""Reference files for a pipeline run on one's own files (``dms run ...``): the ones given
with ``--ref TYPE=PATH`` first, then the best match in a directory, by the same rules as
the service's selection."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from shared.refdata.files import reference_files
from shared.refdata.selection import select_from_files

__all__ = ["choose_local_references", "parse_ref_overrides"]


def parse_ref_overrides(pairs: Iterable[str], allowed: Iterable[str] | None = None,
                        pipeline: str = "this pipeline") -> dict[str, Path]:
    """``TYPE=PATH`` arguments as {type (lower case): path}; ValueError or
    FileNotFoundError naming the bad argument (a type ``pipeline`` does not use, when
    ``allowed`` lists those it does)."""
    known = [t.lower() for t in allowed] if allowed is not None else None
    out = {}
    for pair in pairs:
        reftype, sep, path = pair.partition("=")
        reftype = reftype.strip().lower()
        if not sep or not path:
            raise ValueError(f"--ref {pair!r}: expected TYPE=PATH, e.g. flat=jwst_nircam_flat.fits")
        if known is not None and reftype not in known:
            raise ValueError(f"--ref {pair!r}: {pipeline} uses {', '.join(known) or 'no reference files'}")
        if not Path(path).is_file():
            raise FileNotFoundError(f"--ref {pair}: no such file")
        out[reftype] = Path(path)
    return out


def choose_local_references(
    header: Mapping[str, Any], reftypes: Iterable[str], overrides: Mapping[str, Path], refs_dir: Path | None,
) -> dict[str, tuple[Path | None, str]]:
    """{type: (path or None, why)} for every type in ``reftypes``: an override, else the
    best file of ``refs_dir``, else None with the reason none was chosen."""
    reftypes = list(reftypes)
    chosen: dict[str, tuple[Path | None, str]] = {
        t: (overrides[t], "given with --ref") for t in reftypes if t in overrides}
    rest = [t for t in reftypes if t not in chosen]
    if refs_dir is not None and rest:
        for reftype, sel in select_from_files(reference_files(refs_dir), header, rest).items():
            chosen[reftype] = (Path(refs_dir) / sel.filename if sel.filename else None, sel.reason)
    return {t: chosen.get(t, (None, "no reference directory given")) for t in reftypes}
