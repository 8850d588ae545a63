"""A local cache of reference files keyed by content: detector1 reads references from
local paths, and each file is downloaded once per cache directory."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from shared.refdata.selection import Selection
from shared.storage import ContentMismatchError, ObjectStore, StorageError, sha256_file

__all__ = ["ReferenceIntegrityError", "fetch"]


class ReferenceIntegrityError(StorageError):
    """A downloaded reference file does not have the recorded sha256 (retrying may help)."""


def fetch(store: ObjectStore, selection: Selection, cache_dir: str | Path) -> Path:
    """The local path of the selected reference file, downloaded if needed.

    The file lives at ``<cache_dir>/<sha256>/<filename>``. It is downloaded beside its
    final place, checked and renamed into place, so readers never see a partial or wrong
    file. A cached copy is reused without rehashing while its size and modification time
    are those recorded when it was checked (``<cache_dir>/.verified/<sha256>``); a copy changed since
    is hashed again, and replaced when it no longer matches.

    Raises
    ------
    ValueError
        When the selection found no file.
    ReferenceIntegrityError
        When the downloaded bytes do not match the recorded sha256.
    """
    if selection.filename is None or selection.uri is None or selection.sha256 is None:
        raise ValueError(f"no {selection.reftype} reference was selected: {selection.reason}")
    dest = Path(cache_dir) / selection.sha256 / selection.filename
    marker = Path(cache_dir) / ".verified" / selection.sha256
    marker.parent.mkdir(parents=True, exist_ok=True)
    if dest.is_file():
        if marker.is_file() and marker.read_text() == _stamp(dest):
            return dest
        if sha256_file(dest) == selection.sha256:
            marker.write_text(_stamp(dest))
            return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=dest.parent, prefix=f".{selection.filename}.", suffix=".part")
    os.close(fd)
    tmp = Path(name)
    try:
        try:  # hashed as it arrives
            store.download_uri(selection.uri, tmp, sha256=selection.sha256)
        except ContentMismatchError as exc:
            raise ReferenceIntegrityError(f"{selection.filename}: the catalog records sha256 "
                                          f"{selection.sha256[:12]}... ({exc})") from exc
        os.replace(tmp, dest)
        marker.write_text(_stamp(dest))
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def _stamp(path: Path) -> str:
    st = path.stat()
    return f"{st.st_size} {st.st_mtime_ns}"
