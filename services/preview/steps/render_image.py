"""Image previews: stretched values to colours, and the annotated PNG.

Array convention: image arrays are (ny, nx) with row 0 at the bottom, as FITS and DS9 show
them (``origin="lower"``); RGB arrays handed to the thumbnail are flipped to image order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from matplotlib import patheffects
from matplotlib.colors import hsv_to_rgb
from matplotlib.ticker import MaxNLocator

from ._figure import figure_png, new_figure
from .orientation import Orientation, scale_bar
from .stretch import Stretched

__all__ = [
    "MASK_COLOR",
    "PREVIEW_SIZE",
    "ImageLayout",
    "grey_levels_rgb",
    "grey_rgb",
    "image_layout",
    "label_rgb",
    "render_image_png",
    "wavelength_axis",
]

#: Longest side of a preview PNG, in pixels.
PREVIEW_SIZE = 1024
#: Colour of masked (flagged or NaN) pixels: a muted blue, distinct from every grey.
MASK_COLOR = (0.23, 0.36, 0.62)
#: Widest displayed aspect ratio; longer strips (e.g. 2-D spectra) are shown stretched.
MAX_ASPECT = 4.0

_MARGIN = 40  # px around the image, left/right/bottom
_HEADER = 64  # px above the image for the title and subtitle
_ANNOTATION = "#ffd54a"
_OUTLINE = [patheffects.withStroke(linewidth=3, foreground="black")]


@dataclass(frozen=True)
class ImageLayout:
    """Where an image of (ny, nx) pixels goes in the preview: the image box in figure
    pixels, the integer block-average ``factor`` to apply first, and whether the aspect
    ratio had to be stretched (no compass or scale bar then)."""

    box_width: int
    box_height: int
    factor: int
    stretched_aspect: bool

    @property
    def figure_size(self) -> tuple[int, int]:
        return self.box_width + 2 * _MARGIN, self.box_height + _HEADER + _MARGIN


def image_layout(shape: tuple[int, int], size: int = PREVIEW_SIZE) -> ImageLayout:
    """Layout for an image of ``shape`` (ny, nx) so the figure's longest side is ``size``."""
    ny, nx = shape
    max_width, max_height = size - 2 * _MARGIN, size - _HEADER - _MARGIN
    aspect = nx / ny
    shown = min(max(aspect, 1 / MAX_ASPECT), MAX_ASPECT)
    width = min(max_width, round(max_height * shown))
    height = max(1, round(width / shown))
    stretched = not math.isclose(shown, aspect, rel_tol=1e-6)
    ratios = (nx / width, ny / height)
    factor = max(1, int(min(ratios) if stretched else max(ratios)))
    return ImageLayout(width, height, factor, stretched)


def grey_rgb(stretched: Stretched, mask_color: tuple[float, float, float] = MASK_COLOR) -> np.ndarray:
    """uint8 (ny, nx, 3): grey levels from the stretched values, masked pixels in ``mask_color``."""
    return grey_levels_rgb(stretched.values, stretched.mask, mask_color)


def grey_levels_rgb(values: np.ndarray, mask: np.ndarray,
                    mask_color: tuple[float, float, float] = MASK_COLOR) -> np.ndarray:
    """uint8 (ny, nx, 3): ``values`` in [0, 1] as grey levels (0 black), ``mask`` in ``mask_color``."""
    grey = np.round(np.asarray(values) * 255.0).astype(np.uint8)
    rgb = np.repeat(grey[..., None], 3, axis=2)
    rgb[np.asarray(mask, dtype=bool)] = np.round(np.asarray(mask_color) * 255.0).astype(np.uint8)
    return rgb


def label_rgb(labels: np.ndarray) -> np.ndarray:
    """uint8 (ny, nx, 3) for a segmentation map: 0 black, each label its own colour (a
    golden-ratio walk round the hue circle, so neighbouring labels differ)."""
    labels = np.nan_to_num(np.asarray(labels, dtype=np.float64), nan=0.0).astype(np.int64)
    hue = (labels * 0.6180339887498949) % 1.0
    hsv = np.stack([hue, np.full(hue.shape, 0.65), np.full(hue.shape, 0.95)], axis=-1)
    rgb = np.round(hsv_to_rgb(hsv) * 255.0).astype(np.uint8)
    rgb[labels <= 0] = 0
    return rgb


def render_image_png(
    rgb: np.ndarray,
    layout: ImageLayout,
    *,
    title: str,
    subtitle: str = "",
    orientation: Orientation | None = None,
    wavelength: np.ndarray | None = None,
) -> bytes:
    """The preview PNG of an image.

    Parameters
    ----------
    rgb : ndarray
        uint8 (ny, nx, 3), row 0 at the bottom, already block-averaged by ``layout.factor``.
    layout : ImageLayout
        From :func:`image_layout` on the full-resolution shape.
    title, subtitle : str
        The file name, and one line on what is shown (instrument, method, stretch).
    orientation : Orientation, optional
        North/East and pixel scale of the full-resolution image; draws a compass and an
        arcsec scale bar unless the aspect ratio was stretched.
    wavelength : ndarray, optional
        A 2-D spectrum's wavelength (um) at each column of ``rgb``, increasing: drawn as
        the x axis.
    """
    width, height = layout.figure_size
    fig = new_figure(width, height)
    fig.patch.set_facecolor("white")
    ax = fig.add_axes((_MARGIN / width, _MARGIN / height, layout.box_width / width, layout.box_height / height))
    ny, nx = rgb.shape[:2]
    ax.imshow(rgb, origin="lower", interpolation="auto", aspect="auto",
              extent=(-0.5, nx - 0.5, -0.5, ny - 0.5))
    ax.set_xticks([])
    ax.set_yticks([])
    if wavelength is not None:
        wavelength_axis(ax, np.asarray(wavelength, np.float64))
    fig.text(_MARGIN / width, 1 - 14 / height, title, ha="left", va="top", fontsize=14, weight="bold")
    if subtitle:
        fig.text(_MARGIN / width, 1 - 40 / height, subtitle, ha="left", va="top", fontsize=10.5, color="#333333")
    if orientation is not None and not layout.stretched_aspect:
        _compass(ax, orientation, nx, ny)
        _scale_bar(ax, orientation.arcsec_per_pixel * layout.factor, nx, ny)
    return figure_png(fig)


def wavelength_axis(ax, wavelength: np.ndarray, label: str = "Wavelength [\u00b5m]") -> None:
    """Ticks at round wavelengths (um), placed at their columns (interpolated: the dispersion
    need not be linear), under an image whose column ``i`` spans ``i - 0.5`` to ``i + 0.5``."""
    cols = np.flatnonzero(np.isfinite(wavelength))
    if cols.size < 2:
        return
    w = wavelength[cols]
    ticks = MaxNLocator(nbins=8, steps=[1, 2, 2.5, 5, 10]).tick_values(w.min(), w.max())
    ticks = ticks[(ticks >= w.min()) & (ticks <= w.max())]
    ax.set_xticks(np.interp(ticks, w, cols.astype(np.float64)), [f"{t:g}" for t in ticks], fontsize=9)
    ax.tick_params(axis="x", pad=2, length=3)
    ax.set_xlabel(label, fontsize=10, labelpad=1)


def _compass(ax, orientation: Orientation, nx: int, ny: int) -> None:
    length = 0.1 * min(nx, ny)
    pad = 0.05 * min(nx, ny)
    x0, y0 = nx - 0.5 - pad - 1.3 * length, -0.5 + pad + 1.3 * length  # lower right corner
    for name, (dx, dy) in (("N", orientation.north), ("E", orientation.east)):
        ax.annotate(
            "", xy=(x0 + length * dx, y0 + length * dy), xytext=(x0, y0),
            arrowprops={"arrowstyle": "-|>", "color": _ANNOTATION, "lw": 2, "mutation_scale": 16,
                        "path_effects": _OUTLINE},
        )
        ax.text(x0 + 1.3 * length * dx, y0 + 1.3 * length * dy, name, color=_ANNOTATION, fontsize=13,
                weight="bold", ha="center", va="center", path_effects=_OUTLINE)


def _scale_bar(ax, arcsec_per_pixel: float, nx: int, ny: int) -> None:
    bar = scale_bar(arcsec_per_pixel, nx)
    if bar is None:
        return
    pad = 0.05 * min(nx, ny)
    x0, y0 = -0.5 + pad, -0.5 + pad
    ax.plot([x0, x0 + bar.pixels], [y0, y0], color=_ANNOTATION, lw=3, solid_capstyle="butt",
            path_effects=_OUTLINE)
    ax.text(x0 + bar.pixels / 2, y0 + 0.02 * ny, bar.label, color=_ANNOTATION, fontsize=13,
            weight="bold", ha="center", va="bottom", path_effects=_OUTLINE)
