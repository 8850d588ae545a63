"""Reference files of image2: which types it uses, reading them from local files, and
cutting full-frame arrays to the science readout window.

DISTORTION is a FITS file whose PRIMARY header holds PIXSCALE (arcsec/pixel) and the SIP
keywords of :meth:`shared.wcs.SipDistortion.header`; FLAT (SCI, DQ, ERR), AREA (SCI) and
PHOTOM (``PHOTOM`` table, PIXAR_SR/PIXAR_A2 in the PRIMARY header) are the public
reference formats. Arrays are full frame (SUBARRAY GENERIC) or exactly the window.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits

from shared.errors import NonRetriableError
from shared.refdata import Window
from shared.wcs import SipDistortion

__all__ = [
    "IMAGE2_REFTYPES",
    "REFTYPE_KEYWORDS",
    "AreaReference",
    "DistortionReference",
    "FlatReference",
    "Image2References",
    "PhotomReference",
    "Window",
    "load_references",
]

IMAGE2_REFTYPES = ("distortion", "flat", "photom", "area")

# The R_* keyword naming each reference type in a product header.
REFTYPE_KEYWORDS = {"distortion": "R_DISTOR", "flat": "R_FLAT", "photom": "R_PHOTOM", "area": "R_AREA"}


@dataclass(frozen=True)
class DistortionReference:
    filename: str
    distortion: SipDistortion
    pixel_scale: float  # arcsec/pixel


@dataclass(frozen=True)
class FlatReference:
    filename: str
    data: np.ndarray  # (ny, nx) float32
    dq: np.ndarray | None  # (ny, nx) uint32
    err: np.ndarray | None  # (ny, nx) float32


@dataclass(frozen=True)
class PhotomReference:
    filename: str
    table: np.ndarray  # phot_table rows (structured)
    pixar_sr: float | None
    pixar_a2: float | None


@dataclass(frozen=True)
class AreaReference:
    filename: str
    data: np.ndarray  # (ny, nx) float32, pixel area relative to nominal


@dataclass(frozen=True)
class Image2References:
    """The references an image2 run uses; None where there is none (its step is skipped)."""

    distortion: DistortionReference | None = None
    flat: FlatReference | None = None
    photom: PhotomReference | None = None
    area: AreaReference | None = None

    def filenames(self) -> dict[str, str]:
        """{reference type: file name} of those present."""
        return {t: r.filename for t in IMAGE2_REFTYPES if (r := getattr(self, t)) is not None}


def _image(hdul: fits.HDUList, extname: str, window: Window, full_shape, where: str, dtype) -> np.ndarray | None:
    """The window of an image extension, in native byte order. The file is opened
    memory-mapped and unscaled, so only the window of a full-frame array is read and
    BZERO/BSCALE (unsigned integers) apply to that part alone."""
    if extname not in hdul or hdul[extname].data is None:
        return None
    hdu = hdul[extname]
    raw = window.cut(hdu.data, full_shape, where)
    bzero, bscale = hdu.header.get("BZERO", 0), hdu.header.get("BSCALE", 1)
    if bzero == 0 and bscale == 1:
        return np.asarray(raw).astype(dtype)
    if bscale == 1 and raw.dtype.kind == "i" and bzero == 2 ** (raw.dtype.itemsize * 8 - 1):
        return (raw.astype(np.int64) + int(bzero)).astype(dtype)
    return (raw * bscale + bzero).astype(dtype)


def _load_one(reftype: str, path: Path, window: Window, full_shape: tuple[int, int]):
    name = path.name
    with fits.open(path, memmap=True, do_not_scale_image_data=True) as hdul:
        primary = hdul[0].header
        if reftype == "distortion":
            try:
                return DistortionReference(name, SipDistortion.from_header(primary), float(primary["PIXSCALE"]))
            except (KeyError, ValueError) as exc:
                raise NonRetriableError(f"DISTORTION reference {name} lacks a usable keyword: {exc}") from exc
        if reftype == "photom":
            if "PHOTOM" not in hdul:
                raise NonRetriableError(f"PHOTOM reference {name} has no PHOTOM table")
            table = np.array(hdul["PHOTOM"].data)
            sr, a2 = primary.get("PIXAR_SR"), primary.get("PIXAR_A2")
            return PhotomReference(name, table, None if sr is None else float(sr), None if a2 is None else float(a2))
        sci = _image(hdul, "SCI", window, full_shape, name, np.float32)
        if sci is None:
            raise NonRetriableError(f"{reftype.upper()} reference {name} has no SCI array")
        if reftype == "area":
            return AreaReference(name, sci)
        if reftype == "flat":
            return FlatReference(name, sci, _image(hdul, "DQ", window, full_shape, name, np.uint32),
                                 _image(hdul, "ERR", window, full_shape, name, np.float32))
    raise ValueError(f"image2 does not use reference type {reftype!r}")


def load_references(paths: Mapping[str, Path | None], window: Window, full_shape: tuple[int, int]) -> Image2References:
    """Read the references given by type (``distortion``, ``flat``, ``photom``, ``area``;
    None or absent: no such reference), arrays cut to ``window``.

    Raises NonRetriableError naming the file when one is unreadable or lacks its data.
    """
    loaded = {}
    for reftype, path in paths.items():
        reftype = reftype.lower()
        if reftype not in IMAGE2_REFTYPES:
            raise ValueError(f"image2 does not use reference type {reftype!r}")
        if path is None:
            continue
        try:
            loaded[reftype] = _load_one(reftype, Path(path), window, full_shape)
        except OSError as exc:
            raise NonRetriableError(f"reference {Path(path).name} is not a readable FITS file: {exc}") from exc
    return Image2References(**loaded)
