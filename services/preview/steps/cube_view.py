"""The preview of an IFU cube (``s3d``): its white-light image beside the spectrum of its
brightest spaxel.

The white-light image is :func:`.display.display_image`'s collapse of the cube (the NaN
median along wavelength), stretched as any image; the brightest spaxel is its largest
finite value, marked on it; the spectrum is that spaxel's values against the cube's
wavelengths. Pure: arrays in, PNG bytes out.
"""

from __future__ import annotations

import numpy as np

from services.preview.steps._figure import figure_png, new_figure
from services.preview.steps.plots import axis_label

__all__ = ["CUBE_SIZE", "brightest_spaxel", "render_cube_png"]

CUBE_SIZE = (1024, 560)  # pixels: the image on the left, the spectrum on the right


def brightest_spaxel(white: np.ndarray) -> tuple[int, int] | None:
    """(x, y) of the largest finite value of the white-light image; None when it has none."""
    finite = np.isfinite(white)
    if not finite.any():
        return None
    y, x = np.unravel_index(int(np.argmax(np.where(finite, white, -np.inf))), white.shape)
    return int(x), int(y)


def render_cube_png(rgb: np.ndarray, spaxel: tuple[int, int] | None, wavelength: np.ndarray,
                    spectrum: np.ndarray | None, *, bunit: str | None, title: str, subtitle: str = "") -> bytes:
    """The preview PNG: ``rgb`` (ny, nx, 3) the stretched white-light image (row 0 at the
    bottom, as the cube's y), ``spaxel`` the marked (x, y), and its ``spectrum`` against
    ``wavelength`` (um)."""
    width, height = CUBE_SIZE
    fig = new_figure(width, height)
    fig.patch.set_facecolor("white")
    ny, nx = rgb.shape[:2]
    box = 0.74 * height  # the image's side, pixels
    scale = box / max(nx, ny)
    left = fig.add_axes((0.04, 0.08, nx * scale / width, ny * scale / height))
    left.imshow(rgb, origin="lower", interpolation="nearest", aspect="auto")
    left.set_xticks([])
    left.set_yticks([])
    left.set_title("white light (median over wavelength)", fontsize=10)
    if spaxel is not None:
        left.plot([spaxel[0]], [spaxel[1]], "o", ms=10, mfc="none", mec="#e8483b", mew=1.5)
    ax = fig.add_axes((0.5, 0.12, 0.46, 0.7))
    good = None if spectrum is None else np.isfinite(spectrum)
    if spectrum is not None and good.any():
        ax.plot(wavelength[good], spectrum[good], color="#1f5fa8", lw=1.0, drawstyle="steps-mid")
        ax.set_title(f"spaxel ({spaxel[0]}, {spaxel[1]}), the brightest", fontsize=10)
    else:
        ax.text(0.5, 0.5, "no usable spaxel", transform=ax.transAxes, ha="center", va="center", fontsize=14,
                color="#888888")
    ax.set_xlabel(axis_label("Wavelength", "um"), fontsize=11)
    ax.set_ylabel(axis_label("Surface brightness", bunit), fontsize=11)
    ax.grid(True, color="#dddddd", lw=0.6)
    ax.ticklabel_format(axis="y", style="sci", scilimits=(-4, 5), useOffset=False, useMathText=True)
    fig.text(0.04, 1 - 14 / height, title, ha="left", va="top", fontsize=14, weight="bold")
    if subtitle:
        fig.text(0.04, 1 - 40 / height, subtitle, ha="left", va="top", fontsize=10.5, color="#333333")
    return figure_png(fig)
