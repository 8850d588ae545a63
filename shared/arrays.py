"""Checks of the arrays a science kernel is given, shared by the pipelines' steps (stage 2's
kernels, the flat-field kernel of :mod:`shared.flatfield`). Pure: arrays in, arrays out."""

from __future__ import annotations

import numpy as np

__all__ = ["check_image_stack", "check_reference", "float32_op", "read_only", "total_error"]


def check_image_stack(name: str, array: np.ndarray) -> np.ndarray:
    """``array`` as an ndarray after checking it is an image (ny, nx) or a cube (nints, ny, nx)."""
    array = np.asarray(array)
    if array.ndim not in (2, 3):
        raise ValueError(f"{name} must be 2-D (ny, nx) or 3-D (nints, ny, nx), got shape {array.shape}")
    return array


def check_reference(name: str, array: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray | None:
    """A reference image (ny, nx) matching the last two axes of ``shape`` (None passes)."""
    if array is None:
        return None
    array = np.asarray(array)
    if array.shape != tuple(shape[-2:]):
        raise ValueError(f"{name} has shape {array.shape}, expected {tuple(shape[-2:])} (cut to the window)")
    return array


def read_only(array: np.ndarray, dtype: type | None = None) -> np.ndarray:
    """A read-only view of ``array`` (as native ``dtype`` when given: a converted copy when
    it is not that already). What receives it cannot change the array, not even for a
    moment (astropy swaps a writeable array's bytes in place while writing it)."""
    view = (np.asarray(array) if dtype is None else np.asarray(array, np.dtype(dtype).newbyteorder("="))).view()
    view.flags.writeable = False
    return view


def float32_op(op: np.ufunc, array: np.ndarray, factor: float | np.ndarray) -> np.ndarray:
    """``op(array, factor)`` (``np.multiply``, ``np.divide``) computed in float64 and
    stored in a new float32 array the shape of ``array``; ``factor`` (a number, or an
    image (ny, nx) over a cube (nints, ny, nx)) broadcasts.

    Bit for bit ``op(array.astype(float64), factor).astype(float32)``, but numpy casts
    through its small buffers, so no float64 temporaries the size of ``array`` are made:
    a cube of integrations costs its float32 result alone."""
    array = np.asarray(array)
    return op(array, np.asarray(factor, np.float64), out=np.empty(array.shape, np.float32))


def total_error(*variances: np.ndarray | None) -> np.ndarray:
    """ERR = sqrt of the sum of the variances given (None ones are left out), float32.

    Summed in float64, in the order given, into one float64 accumulator (not a stack of
    float64 copies of every variance)."""
    present = [np.asarray(v) for v in variances if v is not None]
    if not present:
        raise ValueError("total_error needs at least one variance")
    total = np.array(present[0], np.float64)
    for v in present[1:]:
        total += v
    return np.sqrt(total, out=total).astype(np.float32)
