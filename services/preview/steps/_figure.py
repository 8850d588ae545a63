"""Matplotlib figures without pyplot: an Agg canvas per figure, no global state.

pyplot is never imported, so no GUI backend is ever selected and concurrent renders in one
process do not share a "current figure". PNG bytes are deterministic: the ``Software``
text chunk (the matplotlib version) is left out and nothing else time-dependent is written.
"""

from __future__ import annotations

import io

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["DPI", "figure_png", "figure_rgb", "new_figure"]

DPI = 100


def new_figure(width_px: int, height_px: int) -> Figure:
    """A figure of exactly ``width_px`` x ``height_px`` pixels on an Agg canvas."""
    fig = Figure(figsize=(width_px / DPI, height_px / DPI), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def figure_png(fig: Figure) -> bytes:
    """The figure as PNG bytes (same figure, same bytes)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


def figure_rgb(fig: Figure) -> np.ndarray:
    """The rendered figure as a uint8 (height, width, 3) array, top row first."""
    canvas = fig.canvas
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()
