"""The science readout window, and cutting a reference file's arrays to it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from shared.refdata.errors import HeaderError, ReferenceFileError

__all__ = ["Window"]


@dataclass(frozen=True)
class Window:
    """The science readout window in full-frame pixels (1-based starts, as SUBSTRT1/2)."""

    xstart: int
    ystart: int
    xsize: int
    ysize: int

    @classmethod
    def from_keywords(cls, kw: Mapping) -> Window:
        try:
            return cls(int(kw["SUBSTRT1"]), int(kw["SUBSTRT2"]), int(kw["SUBSIZE1"]), int(kw["SUBSIZE2"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise HeaderError(f"{kw.get('FILENAME', 'the exposure')}: no usable SUBSTRT1/2 and SUBSIZE1/2 "
                              f"keywords ({exc})") from exc

    def check(self, shape: tuple[int, ...], full_shape: tuple[int, int], where: str) -> bool:
        """True when an array of ``shape`` is window-sized, False when it is full frame;
        ReferenceFileError naming ``where`` when it is neither."""
        ny, nx = shape[-2:]
        if (ny, nx) == (self.ysize, self.xsize):
            return True
        if (ny, nx) == tuple(full_shape):
            return False
        raise ReferenceFileError(
            f"{where}: reference of {nx}x{ny} pixels fits neither the {self.xsize}x{self.ysize} window "
            f"nor the {full_shape[1]}x{full_shape[0]} full frame")

    def cut(self, array: np.ndarray, full_shape: tuple[int, int], where: str) -> np.ndarray:
        """The part of ``array`` (last two axes image-like) that covers the window: the
        array itself when it is window-sized, a view when it is full frame."""
        if self.check(array.shape, full_shape, where):
            return array
        y0, x0 = self.ystart - 1, self.xstart - 1
        return array[..., y0 : y0 + self.ysize, x0 : x0 + self.xsize]
