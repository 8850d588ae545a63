"""Plots for tabular products: spectra (``x1d``, ``c1d``) and light curves (``phot``,
``whtlt``), as a preview PNG with labelled axes and units, and a line-only thumbnail.

- spectrum: flux against wavelength, a shaded +-1 sigma band when an error column exists;
  points flagged DO_NOT_USE or non-finite are left out; several spectra (slits, orders) are
  overplotted; :func:`median_spectrum` gives the median of spectra on one grid (a time
  series of spectra, ``x1dints``, is drawn as a waterfall: :mod:`.waterfall`);
- light curve: flux against time, as hours since the first point (the axis says since
  which MJD / BJD_TDB), with error bars when an error column exists.

The y range is the 0.2-99.8 percentile range of the points, padded by 10 %, so a few
wild edge pixels do not flatten the plot.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import astropy.units as u
import numpy as np

from shared.datamodels import dqflags

from ._figure import figure_png, figure_rgb, new_figure

__all__ = [
    "PLOT_SIZE",
    "PlotData",
    "Series",
    "axis_label",
    "median_spectrum",
    "render_plot_png",
    "render_plot_thumbnail_rgb",
    "spectrum_series",
    "time_axis",
]

#: (width, height) of a plot preview in pixels.
PLOT_SIZE = (1024, 640)
_COLORS = ("#1f4e99", "#c0392b", "#2e8b57", "#8e44ad", "#d35400", "#16a085", "#7f8c8d", "#2c3e50")
_MAX_SERIES = len(_COLORS)


@dataclass(frozen=True)
class Series:
    """One curve: ``x``, ``y`` and optional 1-sigma ``error`` (1-D float arrays of one length)."""

    x: np.ndarray
    y: np.ndarray
    error: np.ndarray | None = None
    label: str = ""


@dataclass(frozen=True)
class PlotData:
    """What a plot shows: its curves, axis labels, ``style`` "line" (spectra) or "points"
    (light curves), and a ``note`` for the subtitle (e.g. "median of 40 integrations")."""

    series: tuple[Series, ...]
    xlabel: str
    ylabel: str
    style: str = "line"
    note: str = ""


def axis_label(name: str, unit: str | None) -> str:
    """``name [unit]`` with the unit in astropy's unicode form (``um`` -> ``µm``)."""
    if not unit:
        return name
    try:
        text = u.Unit(unit).to_string("unicode")
    except (ValueError, TypeError):
        text = str(unit)
    return f"{name} [{text}]" if text else name


def spectrum_series(
    wavelength: np.ndarray,
    flux: np.ndarray,
    error: np.ndarray | None = None,
    dq: np.ndarray | None = None,
    label: str = "",
    *,
    do_not_use: int = dqflags.PIXEL["DO_NOT_USE"],
) -> Series:
    """A spectrum without its unusable points (non-finite, or DQ with DO_NOT_USE)."""
    wavelength = np.asarray(wavelength, dtype=np.float64).ravel()
    flux = np.asarray(flux, dtype=np.float64).ravel()
    if wavelength.shape != flux.shape:
        raise ValueError(f"WAVELENGTH has {wavelength.size} points, FLUX {flux.size}")
    keep = np.isfinite(wavelength) & np.isfinite(flux)
    if dq is not None:
        keep &= (np.asarray(dq).ravel().astype(np.int64) & do_not_use) == 0
    err = None
    if error is not None:
        err = np.asarray(error, dtype=np.float64).ravel()
        err = np.where(np.isfinite(err), err, 0.0)[keep]
    return Series(wavelength[keep], flux[keep], err, label)


def median_spectrum(spectra: Sequence[Series]) -> Series:
    """The median of spectra on one wavelength grid (``x1dints``: one per integration).

    Spectra whose length differs from the first one's are left out; the error band is the
    median error divided by sqrt(N) (an estimate, shown for scale only).
    """
    first = spectra[0]
    same = [s for s in spectra if s.x.shape == first.x.shape and np.allclose(s.x, first.x, equal_nan=True)]
    ys = np.stack([s.y for s in same])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        y = np.nanmedian(ys, axis=0)
        err = None
        if all(s.error is not None for s in same):
            err = np.nanmedian(np.stack([s.error for s in same]), axis=0) / np.sqrt(len(same))
    return Series(first.x, y, err, first.label)


def time_axis(time: np.ndarray, name: str, unit: str | None) -> tuple[np.ndarray, str]:
    """Times as offsets from the first one, and the axis label: hours when the times are
    in days (MJD, BJD_TDB, JD), else the table's own unit."""
    time = np.asarray(time, dtype=np.float64)
    finite = time[np.isfinite(time)]
    t0 = float(finite.min()) if finite.size else 0.0
    in_days = (unit in (None, "", "d", "day", "days")) and name.upper().startswith(("MJD", "BJD", "JD", "TIME"))
    if in_days:
        return (time - t0) * 24.0, f"Time since {name} {t0:.5f} [h]"
    return time - t0, axis_label(f"Time since {name} {t0:.6g}", unit)


def _ylimits(series: Sequence[Series]) -> tuple[float, float] | None:
    ys = np.concatenate([s.y[np.isfinite(s.y)] for s in series]) if series else np.array([])
    if ys.size == 0:
        return None
    lo, hi = np.percentile(ys, [0.2, 99.8])
    if hi <= lo:
        lo, hi = lo - max(abs(lo), 1.0) * 0.1, hi + max(abs(hi), 1.0) * 0.1
    pad = 0.1 * (hi - lo)
    return float(lo - pad), float(hi + pad)


def _draw(ax, plot: PlotData, *, thumbnail: bool) -> None:
    series = plot.series[:_MAX_SERIES]
    for color, s in zip(_COLORS, series, strict=False):
        if plot.style == "points":
            if s.error is not None and not thumbnail:
                ax.errorbar(s.x, s.y, yerr=s.error, fmt="none", ecolor="#9aa5b1", elinewidth=0.8, zorder=1)
            ax.plot(s.x, s.y, "o", ms=2.5 if thumbnail else 3.5, color=color, label=s.label or None, zorder=2)
        else:
            if s.error is not None:
                ax.fill_between(s.x, s.y - s.error, s.y + s.error, color=color, alpha=0.25, lw=0,
                                step="mid")
            ax.plot(s.x, s.y, color=color, lw=1.0 if thumbnail else 1.2, drawstyle="steps-mid",
                    label=s.label or None)
    limits = _ylimits(series)
    if limits is not None:
        ax.set_ylim(*limits)


def render_plot_png(plot: PlotData, *, title: str, subtitle: str = "") -> bytes:
    """The preview PNG of a plot, :data:`PLOT_SIZE` pixels, with axis labels and units."""
    width, height = PLOT_SIZE
    fig = new_figure(width, height)
    fig.patch.set_facecolor("white")
    ax = fig.add_axes((0.1, 0.11, 0.86, 0.74))
    if plot.series:
        _draw(ax, plot, thumbnail=False)
    else:
        ax.text(0.5, 0.5, "no usable points", transform=ax.transAxes, ha="center", va="center",
                fontsize=16, color="#888888")
    ax.set_xlabel(plot.xlabel, fontsize=12)
    ax.set_ylabel(plot.ylabel, fontsize=12)
    ax.grid(True, color="#dddddd", lw=0.6)
    ax.ticklabel_format(axis="y", style="sci", scilimits=(-4, 5), useOffset=False, useMathText=True)
    if sum(1 for s in plot.series[:_MAX_SERIES] if s.label) > 1:
        ax.legend(fontsize=9, loc="best")
    fig.text(0.1, 1 - 14 / height, title, ha="left", va="top", fontsize=14, weight="bold")
    line = " \u00b7 ".join(p for p in (subtitle, plot.note) if p)
    if line:
        fig.text(0.1, 1 - 40 / height, line, ha="left", va="top", fontsize=10.5, color="#333333")
    return figure_png(fig)


def render_plot_thumbnail_rgb(plot: PlotData, size: int = 128) -> np.ndarray:
    """A ``size`` x ``size`` rendering of the curves only (no text), uint8 RGB, top row first."""
    fig = new_figure(size, size)
    fig.patch.set_facecolor("white")
    ax = fig.add_axes((0.04, 0.04, 0.92, 0.92))
    if plot.series:
        _draw(ax, plot, thumbnail=True)
    ax.set_xticks([])
    ax.set_yticks([])
    return figure_rgb(fig)
