"""Waterfall of a spectral time series (``x1dints``): integration against wavelength.

Each integration's spectrum is divided by the median spectrum over integrations, so what
stays constant (the star's spectrum, the throughput) divides out and what changes with time
shows as structure across rows: a transit or an eclipse is a band of dark rows, a drift a
gradient, a bad integration a bright or dark line, a wavelength-dependent depth a band whose
darkness changes along the row.

- rows are put in time order (mid-times when all are known, else INT_NUM);
- a point is masked when its flux or wavelength is not finite, its DQ has DO_NOT_USE (the
  public layout pads rows shorter than the table with DO_NOT_USE), or the median flux of its
  wavelength is not positive (a ratio to zero or to a negative median says nothing);
- the columns are laid along the common wavelength of each column (the NaN-median over rows),
  increasing to the right;
- grey levels are linear between the 1st and 99th percentile of the unmasked ratios (robust to
  a few wild points; dark is low flux), masked points in the image previews' mask colour;
- a series longer or wider than the drawing is block-averaged (masked points left out).

Pure functions over arrays; :func:`render_waterfall_png` draws the preview.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from shared.datamodels import dqflags

from ._figure import figure_png, new_figure
from .display import downsample
from .plots import PLOT_SIZE
from .render_image import grey_levels_rgb, wavelength_axis

__all__ = [
    "RATIO_LABEL",
    "Waterfall",
    "WaterfallPlot",
    "describe",
    "panel_aspect",
    "panel_boxes",
    "ratio_limits",
    "render_waterfall_png",
    "waterfall",
    "waterfall_figure",
    "waterfall_rgb",
]

#: The colour bar's label: what a grey level stands for.
RATIO_LABEL = "Flux / median spectrum"
#: Central percentile of the unmasked ratios spanned by the grey scale.
PERCENTILE = 98.0

_LEFT, _RIGHT, _BOTTOM, _TOP = 0.1, 0.86, 0.11, 0.85  # the panels' box in figure fractions
_GAP = 0.09  # between stacked panels (room for the wavelength ticks and label)
_CBAR = (0.885, 0.02)  # colour bar: left edge and width


@dataclass(frozen=True)
class Waterfall:
    """One spectral time series ready to draw.

    ``ratio`` (nrows, nwave) is each integration's flux over ``median`` (nwave,), NaN where
    ``mask`` is True; ``wavelength`` (nwave,) increases. Row ``i`` is integration number
    ``first_row + i`` (INT_NUM when the integrations are consecutive, else the sequence
    number in time order, from 1), as ``row_label`` says. ``time`` holds the rows' mid-times
    (MJD) when known, ``limits`` the ratio range of the grey scale.
    """

    wavelength: np.ndarray
    ratio: np.ndarray
    mask: np.ndarray
    median: np.ndarray
    first_row: int
    row_label: str
    time: np.ndarray | None
    limits: tuple[float, float]
    label: str = ""

    @property
    def rows(self) -> np.ndarray:
        """The integration number of each row."""
        return self.first_row + np.arange(self.ratio.shape[0])


def waterfall(
    wavelength: np.ndarray,
    flux: np.ndarray,
    dq: np.ndarray | None = None,
    integration: np.ndarray | None = None,
    time: np.ndarray | None = None,
    label: str = "",
    *,
    do_not_use: int = dqflags.PIXEL["DO_NOT_USE"],
    percentile: float = PERCENTILE,
) -> Waterfall:
    """Divide each integration's spectrum by the median spectrum.

    Parameters
    ----------
    wavelength, flux : ndarray
        (nints, nwave): one row per integration, as the public ``x1dints`` EXTRACT1D columns.
    dq : ndarray, optional
        (nints, nwave) DQ; points with ``do_not_use`` are left out.
    integration : ndarray, optional
        (nints,) INT_NUM of each row.
    time : ndarray, optional
        (nints,) mid-time of each row (MJD); orders the rows when every one is finite.
    label : str
        The spectrum's name (slit, order) for the panel.

    Raises
    ------
    ValueError
        Shapes that do not fit, no rows, or no usable point (every flux NaN or flagged, or
        no wavelength with a positive median flux).
    """
    wavelength = np.asarray(wavelength, dtype=np.float64)
    flux = np.asarray(flux, dtype=np.float64)
    if flux.ndim != 2 or wavelength.shape != flux.shape:
        raise ValueError(f"WAVELENGTH {wavelength.shape} and FLUX {flux.shape} must be the same (nints, nwave)")
    nrows = flux.shape[0]
    if nrows == 0 or flux.shape[1] == 0:
        raise ValueError("the spectral time series has no integrations" if nrows == 0 else "the spectra are empty")
    if dq is not None and np.shape(dq) != flux.shape:
        raise ValueError(f"DQ {np.shape(dq)} does not fit FLUX {flux.shape}")
    for name, values in (("INT_NUM", integration), ("time", time)):
        if values is not None and np.shape(values) != (nrows,):
            raise ValueError(f"{name} has {np.size(values)} values for {nrows} integrations")

    order = _time_order(integration, time, nrows)
    wavelength, flux = wavelength[order], flux[order]
    bad = ~np.isfinite(flux) | ~np.isfinite(wavelength)
    if dq is not None:
        bad |= (np.asarray(dq)[order].astype(np.int64) & do_not_use) != 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-masked columns give NaN, dropped below
        grid = np.nanmedian(np.where(bad, np.nan, wavelength), axis=0)
        median = np.nanmedian(np.where(bad, np.nan, flux), axis=0)
    columns = np.flatnonzero(np.isfinite(grid))
    columns = columns[np.argsort(grid[columns], kind="stable")]
    grid, median, flux, bad = grid[columns], median[columns], flux[:, columns], bad[:, columns]
    bad |= ~(median > 0)[None, :]
    if bad.all():
        raise ValueError("no usable flux: every FLUX value is NaN or flagged DO_NOT_USE, "
                         "or no wavelength has a positive median flux")
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(bad, np.nan, flux / median[None, :])

    first, row_label = 1, "Integration (in time order)"
    if integration is not None:
        ints = np.asarray(integration)[order].astype(np.int64)
        if np.array_equal(ints, ints[0] + np.arange(nrows)):
            first, row_label = int(ints[0]), "Integration"
    times = None
    if time is not None and np.isfinite(time).all():
        times = np.asarray(time, dtype=np.float64)[order]
    return Waterfall(wavelength=grid, ratio=ratio, mask=bad, median=median, first_row=first, row_label=row_label,
                     time=times, limits=ratio_limits(ratio, bad, percentile), label=label)


def _time_order(integration: np.ndarray | None, time: np.ndarray | None, n: int) -> np.ndarray:
    if time is not None and np.isfinite(time).all():
        return np.argsort(np.asarray(time, dtype=np.float64), kind="stable")
    if integration is not None:
        return np.argsort(np.asarray(integration), kind="stable")
    return np.arange(n)


def ratio_limits(ratio: np.ndarray, mask: np.ndarray, percentile: float = PERCENTILE) -> tuple[float, float]:
    """(low, high): the central ``percentile`` of the unmasked ratios; a window of +-0.1 %
    around them when they are all alike (one integration, a constant series)."""
    good = ratio[~mask]
    good = good[np.isfinite(good)]
    if good.size == 0:
        return 0.999, 1.001
    half = (100.0 - percentile) / 2.0
    lo, hi = (float(v) for v in np.percentile(good, [half, 100.0 - half]))
    if not hi > lo:
        centre = float(np.median(good))
        lo, hi = centre - 1e-3 * max(abs(centre), 1.0), centre + 1e-3 * max(abs(centre), 1.0)
    return lo, hi


def waterfall_rgb(wf: Waterfall, max_shape: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """uint8 (nrows', nwave', 3) grey levels of ``wf`` (row 0 the first integration), the
    wavelength of each column shown, and the (rows, columns) block-average factors used to
    fit ``max_shape`` (rows, columns) pixels."""
    ny, nx = wf.ratio.shape
    factors = (1, 1)
    if max_shape is not None:
        factors = (max(1, math.ceil(ny / max_shape[0])), max(1, math.ceil(nx / max_shape[1])))
    ratio, mask = downsample(wf.ratio, wf.mask, factors)
    wavelength = wf.wavelength
    if factors[1] > 1:
        n = nx // factors[1] * factors[1]
        tail = wavelength[n:]
        wavelength = np.concatenate([wavelength[:n].reshape(-1, factors[1]).mean(axis=1),
                                     [tail.mean()] if tail.size else []])
    lo, hi = wf.limits
    values = np.clip((np.where(mask, lo, ratio) - lo) / (hi - lo), 0.0, 1.0)
    return grey_levels_rgb(values, mask), wavelength, factors


@dataclass(frozen=True)
class WaterfallPlot:
    """What a waterfall preview shows: one panel per spectrum (order, slit), its axis labels
    and a ``note`` for the subtitle."""

    panels: tuple[Waterfall, ...]
    xlabel: str = "Wavelength [\u00b5m]"
    ylabel: str = "Integration"
    colorbar_label: str = RATIO_LABEL
    note: str = ""


def panel_boxes(n: int, size: tuple[int, int] = PLOT_SIZE) -> list[tuple[float, float, float, float]]:
    """Axes boxes (left, bottom, width, height, figure fractions) of ``n`` stacked panels,
    the first at the top."""
    height = (_TOP - _BOTTOM - _GAP * (n - 1)) / n
    return [(_LEFT, _TOP - (i + 1) * height - i * _GAP, _RIGHT - _LEFT, height) for i in range(n)]


def render_waterfall_png(plot: WaterfallPlot, *, title: str, subtitle: str = "") -> tuple[bytes, list[np.ndarray]]:
    """The preview PNG (:data:`PLOT_SIZE` pixels, the look of the spectrum plots) and the RGB
    picture of each panel as drawn (for the thumbnail)."""
    fig, pictures = waterfall_figure(plot, title=title, subtitle=subtitle)
    return figure_png(fig), pictures


def waterfall_figure(plot: WaterfallPlot, *, title: str, subtitle: str = "") -> tuple[Figure, list[np.ndarray]]:
    """The figure of :func:`render_waterfall_png`: per panel an image axes (wavelength
    along x, integration along y, first integration at the bottom) and its colour bar."""
    width, height = PLOT_SIZE
    fig = new_figure(width, height)
    fig.patch.set_facecolor("white")
    pictures = []
    for wf, box in zip(plot.panels, panel_boxes(len(plot.panels)), strict=True):
        ax = fig.add_axes(box)
        rgb, wavelength, _ = waterfall_rgb(wf, (round(box[3] * height), round(box[2] * width)))
        ny, nx = rgb.shape[:2]
        last = wf.first_row + wf.ratio.shape[0] - 1
        ax.imshow(rgb, origin="lower", interpolation="nearest", aspect="auto",
                  extent=(-0.5, nx - 0.5, wf.first_row - 0.5, last + 0.5))
        wavelength_axis(ax, wavelength, label=plot.xlabel)
        ax.yaxis.set_major_locator(MaxNLocator(nbins=6, integer=True))
        ax.tick_params(axis="y", labelsize=9)
        ax.set_ylabel(plot.ylabel if len(plot.panels) == 1 else f"{plot.ylabel}\n{wf.label}", fontsize=11)
        cax = fig.add_axes((_CBAR[0], box[1], _CBAR[1], box[3]))
        bar = fig.colorbar(ScalarMappable(Normalize(*wf.limits), cmap="gray"), cax=cax)
        bar.set_label(plot.colorbar_label, fontsize=10)
        bar.ax.tick_params(labelsize=8)
        pictures.append(rgb)
    fig.text(_LEFT, 1 - 14 / height, title, ha="left", va="top", fontsize=14, weight="bold")
    line = " \u00b7 ".join(p for p in (subtitle, plot.note) if p)
    if line:
        fig.text(_LEFT, 1 - 40 / height, line, ha="left", va="top", fontsize=10.5, color="#333333")
    return fig, pictures


def panel_aspect(n: int, size: tuple[int, int] = PLOT_SIZE) -> float:
    """Width / height of one of ``n`` stacked panels as drawn."""
    box = panel_boxes(n, size)[0]
    return box[2] * size[0] / (box[3] * size[1])


def describe(panels: Sequence[Waterfall]) -> str:
    """One line on what the panels show: how many integrations over how long, the masked
    points (each colour bar gives its grey range)."""
    wf = panels[0]
    n = wf.ratio.shape[0]
    what = f"each integration / median of {n} integration{'s' if n != 1 else ''}"
    if wf.time is not None and n > 1:
        what += f" over {(wf.time[-1] - wf.time[0]) * 24.0:.3g} h"
    parts = [what]
    masked = sum(int(p.mask.sum()) for p in panels)
    if masked:
        parts.append(f"{masked} masked points in blue")
    return " \u00b7 ".join(parts)
