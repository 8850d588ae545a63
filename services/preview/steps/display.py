"""display_image: the one 2-D image a preview shows for an imaging-like product.

What is shown, by product suffix (array order as in the JWST layouts, (nints, ngroups, ny, nx)):

- ``uncal``, ``ramp`` (4-D): last group minus first group of the first integration, i.e. the
  signal accumulated over the ramp (bias and most fixed pattern cancel); one group: that group;
- ``rate``, ``cal``, ``crf``, ``bsub``, ``i2d``, ``s2d``, ``segm`` (2-D): SCI itself;
- ``rateints``, ``calints``, ``crfints``, ``bsubints``, ``psfstack``, ``psfsub`` (3-D): the
  median over integrations (NaN-aware, flagged pixels left out of each integration);
- ``s3d`` (3-D (nwave, ny, nx)): the NaN-median along wavelength (a "white-light" image).

Pixels whose DQ has DO_NOT_USE, and non-finite pixels, are masked. Nothing is read from
files here; a 4-D input may be only the groups needed (e.g. (1, 2, ny, nx)), since only the
first and last group of integration 1 are used.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from shared.datamodels import dqflags

__all__ = ["DisplayImage", "IMAGE_SUFFIXES", "display_image", "downsample", "method_for"]

DO_NOT_USE = dqflags.PIXEL["DO_NOT_USE"]

#: How each imaging-like suffix becomes one 2-D image: ``ramp`` (last - first group),
#: ``plane`` (2-D as is), ``median`` (over integrations), ``collapse`` (over wavelength).
IMAGE_SUFFIXES: dict[str, str] = {
    "uncal": "ramp",
    "ramp": "ramp",
    "rate": "plane",
    "cal": "plane",
    "crf": "plane",
    "bsub": "plane",
    "i2d": "plane",
    "s2d": "plane",
    "segm": "plane",
    "rateints": "median",
    "calints": "median",
    "crfints": "median",
    "bsubints": "median",
    "psfstack": "median",
    "psfsub": "median",
    "s3d": "collapse",
}

_NDIM = {"ramp": 4, "plane": 2, "median": 3, "collapse": 3}
_BY_NDIM = {4: "ramp", 2: "plane", 3: "median"}


@dataclass(frozen=True)
class DisplayImage:
    """The image to show.

    ``image`` float64 (ny, nx), masked pixels set to NaN; ``mask`` bool (ny, nx), True where
    the pixel is flagged or has no finite value; ``note`` says how it was made (for the
    preview's subtitle), e.g. "group 5 - group 1, integration 1".
    """

    image: np.ndarray
    mask: np.ndarray
    note: str


def method_for(suffix: str | None, ndim: int) -> str:
    """The display method of a suffix; unknown suffixes are decided by the SCI dimensions."""
    if suffix in IMAGE_SUFFIXES:
        return IMAGE_SUFFIXES[suffix]
    try:
        return _BY_NDIM[ndim]
    except KeyError:
        raise ValueError(f"cannot display a {ndim}-D SCI array as an image") from None


def _flagged(dq: np.ndarray | None, shape: tuple[int, ...], do_not_use: int) -> np.ndarray:
    if dq is None:
        return np.zeros(shape, dtype=bool)
    dq = np.asarray(dq)
    try:
        return np.broadcast_to((dq & do_not_use) != 0, shape)
    except ValueError:
        raise ValueError(f"DQ shape {dq.shape} does not match SCI shape {shape}") from None


def _median_planes(cube: np.ndarray, dq: np.ndarray | None, do_not_use: int, rows: int = 64) -> np.ndarray:
    """NaN-median over axis 0 with DO_NOT_USE pixels left out, a block of rows at a time
    in float32, so a large (possibly memory-mapped) cube is never copied whole."""
    n, ny, nx = cube.shape
    out = np.empty((ny, nx), dtype=np.float64)
    for y0 in range(0, ny, rows):
        block = np.array(cube[:, y0:y0 + rows], dtype=np.float32)
        if dq is not None:
            block[(np.asarray(dq[:, y0:y0 + rows]) & do_not_use) != 0] = np.nan
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: NaN, masked below
            out[y0:y0 + rows] = np.nanmedian(block, axis=0) if n > 1 else block[0]
    return out


def display_image(
    sci: np.ndarray,
    suffix: str | None = None,
    dq: np.ndarray | None = None,
    groupdq: np.ndarray | None = None,
    *,
    do_not_use: int = DO_NOT_USE,
) -> DisplayImage:
    """The 2-D image (and mask) a preview shows for ``sci``.

    Parameters
    ----------
    sci : ndarray
        SCI array: 4-D (nints, ngroups, ny, nx) for ``uncal``/``ramp``, 3-D (nints or nwave,
        ny, nx) for ``*ints``/``s3d``, 2-D (ny, nx) otherwise.
    suffix : str, optional
        Product suffix; decides the method (:data:`IMAGE_SUFFIXES`). None or unknown: by ndim.
    dq : ndarray, optional
        Pixel DQ (uint32): 2-D, or the same shape as a 3-D SCI (PIXELDQ for a ramp).
    groupdq : ndarray, optional
        Group DQ of a ramp (uint8, the shape of SCI); DO_NOT_USE in either group used masks.
    do_not_use : int
        The DO_NOT_USE bit value.

    Raises
    ------
    ValueError
        SCI has the wrong number of dimensions for the suffix, or DQ does not fit.
    """
    sci = np.asarray(sci)
    method = method_for(suffix, sci.ndim)
    if sci.ndim != _NDIM[method]:
        raise ValueError(f"{suffix or 'product'} SCI should be {_NDIM[method]}-D, got shape {sci.shape}")
    if method == "ramp":
        if sci.shape[0] < 1 or sci.shape[1] < 1:
            raise ValueError(f"ramp SCI of shape {sci.shape} has no groups")
        first, last = sci[0, 0].astype(np.float64), sci[0, -1].astype(np.float64)
        ngroups = sci.shape[1]
        image = last - first if ngroups > 1 else last
        mask = _flagged(dq, image.shape, do_not_use).copy()
        if groupdq is not None:
            gdq = np.asarray(groupdq)
            mask |= ((gdq[0, 0] | gdq[0, -1]) & do_not_use) != 0
        note = "group 1, integration 1" if ngroups == 1 else "last - first group, integration 1"
    elif method == "plane":
        image = sci.astype(np.float64)
        mask = _flagged(dq, image.shape, do_not_use).copy()
        note = ""
    else:
        if dq is not None:
            dq = np.asarray(dq)
            if dq.shape not in (sci.shape, sci.shape[1:]):
                raise ValueError(f"DQ shape {dq.shape} does not match SCI shape {sci.shape}")
            dq = np.broadcast_to(dq, sci.shape)
        image = _median_planes(sci, dq, do_not_use)
        mask = np.zeros(image.shape, dtype=bool)
        n = sci.shape[0]
        note = (f"median of {n} integrations" if method == "median" else f"median over {n} wavelengths")
        if n == 1:
            note = "1 integration" if method == "median" else "1 wavelength plane"
    mask |= ~np.isfinite(image)
    image = np.where(mask, np.nan, image)
    return DisplayImage(image=image, mask=mask, note=note)


def downsample(image: np.ndarray, mask: np.ndarray, factor: int | tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Block-average ``image`` by an integer ``factor`` (or (rows, columns) factors)
    ignoring masked pixels.

    The image is padded (masked) to a multiple of ``factor``; an output pixel is masked only
    when every pixel of its block is. Returns (image, mask) of shape ceil(shape / factor).
    """
    fy, fx = (factor, factor) if isinstance(factor, int | np.integer) else factor
    if fy <= 1 and fx <= 1:
        return image, mask
    fy, fx = max(1, fy), max(1, fx)
    ny, nx = image.shape
    py, px = -ny % fy, -nx % fx
    data = np.pad(np.where(mask, np.nan, image), ((0, py), (0, px)), constant_values=np.nan)
    blocks = data.reshape(data.shape[0] // fy, fy, data.shape[1] // fx, fx)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-masked blocks
        out = np.nanmean(blocks, axis=(1, 3))
    out_mask = ~np.isfinite(out)
    return out, out_mask
