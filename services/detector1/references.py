"""Reference files for detector1: which types each step needs, loading them from local
files, and cutting full-frame references to the science readout window."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits

from shared.errors import NonRetriableError
from shared.refdata import Window

__all__ = [
    "DARK_REFTYPES",
    "REFTYPE_KEYWORDS",
    "STEP_REFTYPES",
    "LoadedReference",
    "Window",
    "load_reference",
    "needed_reftypes",
]

# Reference type of each step (jump and ramp_fit share gain and readnoise).
STEP_REFTYPES: dict[str, tuple[str, ...]] = {
    "dq_init": ("mask",),
    "saturation": ("saturation",),
    "superbias": ("superbias",),
    "linearity": ("linearity",),
    "rscd": ("rscd",),
    "dark_current": ("dark",),
    "jump": ("gain", "readnoise"),
    "ramp_fit": ("gain", "readnoise"),
}

# The R_* keyword naming each reference type in a product header.
REFTYPE_KEYWORDS = {
    "mask": "R_MASK", "saturation": "R_SATURA", "superbias": "R_SUPERB", "linearity": "R_LINEAR",
    "dark": "R_DARK", "gain": "R_GAIN", "readnoise": "R_READNO", "rscd": "R_RSCD",
}

DARK_REFTYPES = ("mask", "saturation", "superbias", "linearity", "rscd")

# Which extensions each reference type carries (first one is required).
_EXTENSIONS = {
    "mask": ("DQ",),
    "saturation": ("SCI", "DQ"),
    "superbias": ("SCI", "DQ"),
    "linearity": ("COEFFS", "DQ"),
    "dark": ("SCI", "DQ", "AVDRKCUR"),
    "gain": ("SCI",),
    "readnoise": ("SCI",),
    "rscd": ("SCI",),
}


@dataclass(frozen=True)
class LoadedReference:
    """A reference file's arrays, already cut to the science window."""

    reftype: str
    filename: str
    arrays: dict[str, np.ndarray]
    header: dict

    def get(self, extname: str) -> np.ndarray | None:
        return self.arrays.get(extname)


def needed_reftypes(steps: list[str]) -> list[str]:
    """Reference types the given steps need, each once, in step order."""
    out: list[str] = []
    for step in steps:
        for reftype in STEP_REFTYPES.get(step, ()):
            if reftype not in out:
                out.append(reftype)
    return out


def _scaled(raw: np.ndarray, header) -> np.ndarray:
    """Apply BSCALE/BZERO to a section of unscaled data, keeping integer types integer.

    The result is in native byte order (FITS stores big-endian): the kernels then run on
    native arrays instead of byte-swapping on the fly in every operation.
    """
    bzero, bscale = header.get("BZERO", 0), header.get("BSCALE", 1)
    if bzero == 0 and bscale == 1:
        return np.array(raw, dtype=raw.dtype.newbyteorder("="))
    bits = raw.dtype.itemsize * 8
    if bscale == 1 and raw.dtype.kind == "i" and bzero == 2 ** (bits - 1):
        return (raw.astype(np.int64) + int(bzero)).astype(f"uint{bits}")
    return (raw * bscale + bzero).astype(np.float32)


def load_reference(reftype: str, path: str | Path, window: Window, full_shape: tuple[int, int]) -> LoadedReference:
    """Read a reference file and cut its arrays to ``window``.

    Raises NonRetriableError naming the file when it is unreadable or lacks its data.
    """
    path = Path(path)
    wanted = _EXTENSIONS.get(reftype)
    if wanted is None:
        raise ValueError(f"detector1 does not use reference type {reftype!r}")
    try:
        # Memory-mapped and unscaled: only the window's rows of a full-frame reference are
        # read, and scaling (BZERO for unsigned integers) is applied to that part alone.
        with fits.open(path, memmap=True, do_not_scale_image_data=True) as hdul:
            header = dict(hdul[0].header)
            arrays = {}
            for ext in wanted:
                if ext in hdul and hdul[ext].data is not None:
                    raw = window.cut(hdul[ext].data, full_shape, path.name)
                    arrays[ext] = _scaled(raw, hdul[ext].header)
    except OSError as exc:
        raise NonRetriableError(f"reference {path.name} is not a readable FITS file: {exc}") from exc
    if wanted[0] not in arrays:
        raise NonRetriableError(f"{reftype} reference {path.name} has no {wanted[0]} extension")
    return LoadedReference(reftype, path.name, arrays, header)
