"""Small inline SVG graphics of the association report: the members' footprints on the sky
and an exposure timeline.

Pure: numbers and names in, SVG text out; every name written into the SVG is escaped.
The sky drawing is a gnomonic-like flat projection about the centre of what it shows
(north up, east left), good for the few arcminutes an association spans.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape

__all__ = ["Bar", "Footprint", "footprint_svg", "timeline_svg"]

_WIDTH, _HEIGHT, _MARGIN = 220, 180, 14


@dataclass(frozen=True)
class Footprint:
    """One member's outline: its corners (ra, dec) in degrees, and its state
    (``archived`` or ``waiting``)."""

    name: str
    corners: tuple[tuple[float, float], ...]
    state: str


@dataclass(frozen=True)
class Bar:
    """One exposure on the timeline: [start, end) UTC and its state."""

    name: str
    start: datetime
    end: datetime
    state: str


def _offsets(corners: Sequence[tuple[float, float]], ra0: float, dec0: float) -> list[tuple[float, float]]:
    """(east, north) offsets in arcsec from (ra0, dec0)."""
    cos0 = math.cos(math.radians(dec0))
    out = []
    for ra, dec in corners:
        dra = (ra - ra0 + 180.0) % 360.0 - 180.0
        out.append((dra * cos0 * 3600.0, (dec - dec0) * 3600.0))
    return out


def _centre(footprints: Sequence[Footprint]) -> tuple[float, float]:
    """Mean position of every corner (the RA mean taken on the circle)."""
    points = [c for f in footprints for c in f.corners]
    x = sum(math.cos(math.radians(ra)) for ra, _ in points)
    y = sum(math.sin(math.radians(ra)) for ra, _ in points)
    ra0 = math.degrees(math.atan2(y, x)) % 360.0
    return ra0, sum(dec for _, dec in points) / len(points)


def footprint_svg(footprints: Sequence[Footprint], title: str) -> str:
    """One polygon per footprint (``class="footprint <state>"``, ``data-member`` its name),
    north up and east left, with the extent of the drawing in arcsec. Footprints without
    corners are left out; none at all gives a note instead of a drawing."""
    drawn = [f for f in footprints if len(f.corners) >= 3]
    if not drawn:
        return '<p class="note">no footprint known</p>'
    ra0, dec0 = _centre(drawn)
    shapes = [(f, _offsets(f.corners, ra0, dec0)) for f in drawn]
    xs = [e for _, pts in shapes for e, _ in pts]
    ys = [n for _, pts in shapes for _, n in pts]
    span = max(max(xs) - min(xs), max(ys) - min(ys), 1e-3)
    scale = min(_WIDTH - 2 * _MARGIN, _HEIGHT - 16 - 2 * _MARGIN) / span
    cx, cy = (max(xs) + min(xs)) / 2, (max(ys) + min(ys)) / 2

    def px(east: float, north: float) -> str:
        return f"{_WIDTH / 2 - (east - cx) * scale:.1f},{(_HEIGHT - 16) / 2 - (north - cy) * scale:.1f}"

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="sky" width="{_WIDTH}" height="{_HEIGHT}" '
             f'viewBox="0 0 {_WIDTH} {_HEIGHT}" role="img" aria-label="{escape(title)}">',
             f"<title>{escape(title)}</title>"]
    for f, pts in shapes:
        points = " ".join(px(e, n) for e, n in pts)
        parts.append(f'<polygon class="footprint {escape(f.state)}" data-member="{escape(f.name)}" '
                     f'points="{points}"><title>{escape(f.name)} ({escape(f.state)})</title></polygon>')
    parts.append(f'<text x="4" y="{_HEIGHT - 4}" class="axis">N up, E left; '
                 f'{span:.0f}&#8243; across; centre {ra0:.5f} {dec0:+.5f}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _clock(when: datetime) -> str:
    return when.strftime("%Y-%m-%d %H:%M:%S")


def timeline_svg(bars: Sequence[Bar], title: str, width: int = 520) -> str:
    """One row per bar (``class="exposure <state>"``, ``data-exposure`` its name), time
    running right, with the first start and last end written under it (UTC)."""
    if not bars:
        return '<p class="note">no exposure times known</p>'
    bars = sorted(bars, key=lambda b: (b.start, b.name))
    t0, t1 = min(b.start for b in bars), max(b.end for b in bars)
    total = max((t1 - t0).total_seconds(), 1.0)
    row = 10 if len(bars) > 12 else 14
    height = row * len(bars) + 24
    usable = width - 2 * _MARGIN
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
             f"<title>{escape(title)}</title>"]
    for i, b in enumerate(bars):
        x = _MARGIN + (b.start - t0).total_seconds() / total * usable
        w = max((b.end - b.start).total_seconds() / total * usable, 2.0)
        parts.append(f'<rect class="exposure {escape(b.state)}" data-exposure="{escape(b.name)}" x="{x:.1f}" '
                     f'y="{4 + i * row}" width="{w:.1f}" height="{row - 3}"><title>{escape(b.name)}: '
                     f'{_clock(b.start)} to {_clock(b.end)} UTC ({escape(b.state)})</title></rect>')
    parts.append(f'<text x="{_MARGIN}" y="{height - 4}" class="axis">{_clock(t0)}</text>')
    parts.append(f'<text x="{width - _MARGIN}" y="{height - 4}" class="axis" text-anchor="end">'
                 f'{_clock(t1)} UTC</text>')
    parts.append("</svg>")
    return "".join(parts)
