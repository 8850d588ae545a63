"""Wide-field slitless spectroscopy (WFSS: NIRISS ``NIS_WFSS``, NIRCam ``NRC_WFSS``): the
spectra of every source of a field on one dispersed exposure, found from the source
catalog of the observation's direct images.

Pure functions over arrays (the exposure's imaging WCS comes in as a function from sky to
window pixels):

- :func:`grism_sources`: each catalog source's undispersed window pixel (its
  ``sky_centroid`` through the imaging WCS), its extraction half-height
  (:func:`half_height`) and its trace per order on the window (the grism's dispersion
  model, :func:`shared.spectra.grism.grism_trace`, cut to the order's range in the
  WAVELENGTHRANGE reference, :func:`wfss_ranges`); sources none of whose orders fall on
  the window are dropped (and counted);
- a source's extraction region in an order: the pixels its boxcar aperture (``2 h + 1``
  pixels across the dispersion, centred on the trace) touches, ``|i - c| < h + 1`` of
  the trace's centre ``c`` on each line of the spectrum and on :data:`SPREAD_LINES` lines
  past each end, where the line-spread function carries the light of the spectrum's ends
  (the trace's centre held at the end's there) (:func:`region_mask`); its cutout
  (:meth:`GrismSource.box`) the lines of its spectrum and the pixels across them its
  region touches;
- :func:`contamination`: the pixels of a source's cutout that another source's region
  (any of its orders) covers;
- :func:`source_mask` and :func:`background_scale`: the dispersed sky's pattern (the
  WFSSBKG reference) scaled to the exposure by a fit over the pixels outside every
  source's region.

The catalog is the Level-3 ``_cat.ecsv`` of the direct images (the public source
catalog's columns: ``label``, ``sky_centroid``, ``isophotal_abmag``, ``is_extended``,
``semimajor_sigma``, ``sky_bbox_ll``/``ul``/``lr``/``ur``, ...).

Extraction half-height (pixels across the dispersion, either side of the trace), the
source's size on this exposure: the largest distance across the dispersion of the corners
of its bounding box (``sky_bbox_*`` through the imaging WCS) from its centroid; without
a bounding box, three times ``semimajor_sigma`` (pixels); without either, the floor. It is
held within :data:`HALF_HEIGHT_LIMITS` (5-20 pixels: a point source's light at 5 um and
the spread of a galaxy, without the aperture taking in half the field) and rounded up to
whole pixels.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from numbers import Real
from typing import Any

import astropy.units as u
import numpy as np

from shared.datamodels.dqflags import PIXEL
from shared.spectra.extract import WFSS_EXP_TYPES
from shared.spectra.grism import grism_orders, grism_trace
from shared.spectra.trace import SlitTrace, in_frame
from shared.spectra.wavelengthrange import bound_trace

__all__ = ["HALF_HEIGHT_LIMITS", "SPREAD_LINES", "WFSS_EXP_TYPES", "BackgroundScale", "GrismSource", "WfssSources", "background_scale",
           "contamination", "extract_orders", "grism_sources", "half_height", "region_mask", "source_boxes", "source_mask",
           "wfss_filter", "wfss_ranges"]

#: Lines past each end of a spectrum its light reaches, which its region takes in: the
#: line-spread function spreads the band's edge (a sigma of 1-1.5 pixels at the grisms'
#: resolution; the edge anywhere within its last pixel) to about 1 % of the spectrum's
#: level three lines past it.
SPREAD_LINES = 3

#: The floor and ceiling of a source's extraction half-height, pixels.
HALF_HEIGHT_LIMITS = (5.0, 20.0)
_DO_NOT_USE = np.uint32(PIXEL["DO_NOT_USE"])
_BBOX = ("sky_bbox_ll", "sky_bbox_ul", "sky_bbox_lr", "sky_bbox_ur")

WorldToPixel = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def wfss_filter(keywords: Mapping[str, Any]) -> str:
    """The blocking filter a WFSS exposure's WAVELENGTHRANGE entries are named by: NIRCam's
    FILTER (its grism is in PUPIL), NIRISS's PUPIL (its grism is in FILTER); upper case."""
    instrument = str(keywords.get("INSTRUME") or "").strip().upper()
    return str(keywords.get("PUPIL" if instrument == "NIRISS" else "FILTER") or "").strip().upper()


def _ranges_table(tree: Mapping[str, Any]) -> dict[tuple[int, str], tuple[float, float]]:
    """{(order, filter): (low, high) um} of a WFSS WAVELENGTHRANGE tree, in either layout
    the public model holds: rows ``[order, filter, low, high]`` (the schema's
    ``wfss-wavelengthrange``), or ``[order index][filter index] -> [low, high]`` over
    ``order`` and ``waverange_selector``."""
    ranges = tree.get("wavelengthrange")
    if ranges is None:
        raise ValueError("it has no wavelengthrange")
    ranges = list(ranges)
    meta = tree.get("meta")
    units = meta.get("wavelength_units") if isinstance(meta, Mapping) else None
    scale = 1.0
    if units is not None:  # WFSS ranges are in um unless the file says otherwise
        try:
            scale = float(u.Unit(units).to(u.um))
        except (TypeError, ValueError, u.UnitsError) as exc:
            raise ValueError(f"its wavelength_units {units!s} is not a unit of length ({exc})") from None
    out: dict[tuple[int, str], tuple[float, float]] = {}

    def put(order: Any, name: Any, low: Any, high: Any) -> None:
        if not all(isinstance(v, Real) and np.isfinite(v) for v in (low, high)) or not 0 < low < high:
            raise ValueError(f"its range for order {order}, {name} is {[low, high]!r}, not [low, high] "
                             "(two positive numbers, low below high)")
        out[(int(order), str(name).strip().upper())] = (float(low) * scale, float(high) * scale)

    if ranges and all(isinstance(r, list | tuple) and len(r) == 4 and isinstance(r[1], str) for r in ranges):
        for order, name, low, high in ranges:
            put(order, name, low, high)
        return out
    orders, names = tree.get("order"), tree.get("waverange_selector")
    if orders is None or names is None or len(list(orders)) != len(ranges):
        raise ValueError("its wavelengthrange is neither rows of [order, filter, low, high] nor one list per "
                         "order (of its 'order') of [low, high] per filter (of its 'waverange_selector')")
    names = list(names)
    for order, per_filter in zip(orders, ranges, strict=True):
        per_filter = list(per_filter)
        if len(per_filter) != len(names):
            raise ValueError(f"its order {order} gives {len(per_filter)} ranges for {len(names)} filters")
        for name, pair in zip(names, per_filter, strict=True):
            pair = list(pair) if isinstance(pair, list | tuple | np.ndarray) else [pair]
            if len(pair) != 2:
                raise ValueError(f"its range for order {order}, {name} is {pair!r}, not [low, high]")
            put(order, name, *pair)
    return out


def extract_orders(tree: Mapping[str, Any], filter_name: str) -> list[int] | None:
    """The orders WAVELENGTHRANGE's ``extract_orders`` ([[filter, [orders]], ...]) lists for
    ``filter_name``; None when it lists none for it.

    Raises
    ------
    ValueError
        ``extract_orders`` is not such a list."""
    entries = tree.get("extract_orders")
    if entries is None:
        return None
    try:
        for name, orders in entries:
            if str(name).strip().upper() == filter_name.strip().upper():
                return [int(o) for o in orders]
    except (TypeError, ValueError) as exc:
        raise ValueError(f"its extract_orders is not a list of [filter, [orders]]: {exc}") from None
    return None


def wfss_ranges(tree: Mapping[str, Any] | None, filter_name: str, grism: Mapping[str, Any]
                ) -> tuple[dict[int, tuple[float, float] | None], list[int]]:
    """({order: (low, high) um, or None for no bound}, orders left out) of a WFSS exposure
    whose blocking filter is ``filter_name``: the orders WAVELENGTHRANGE (``tree``) names
    for extraction, else the grism model's (``grism``, the SPECWCS tree) orders above 0;
    each bounded by WAVELENGTHRANGE's range for it and the filter (none without the
    reference). Orders to extract that the grism model does not describe are left out.

    Raises
    ------
    ValueError
        A malformed WAVELENGTHRANGE or grism model, or no range for an order to extract."""
    described = grism_orders(grism)
    wanted = None if tree is None else extract_orders(tree, filter_name)
    if wanted is None:
        wanted = [o for o in described if o > 0]
    table = {} if tree is None else _ranges_table(tree)
    out: dict[int, tuple[float, float] | None] = {}
    for order in wanted:
        if order not in described:
            continue
        if tree is not None and (order, filter_name) not in table:
            raise ValueError(f"it has no range for order {order} with {filter_name} (it lists "
                             f"{', '.join(f'{o}/{f}' for o, f in sorted(table)) or 'none'})")
        out[order] = table.get((order, filter_name))
    return out, [o for o in wanted if o not in described]


def half_height(centre: float, corners: np.ndarray | None, semimajor_sigma: float | None) -> float:
    """A source's extraction half-height (pixels; the module docstring): from its
    centroid's cross-dispersion coordinate ``centre`` and its bounding box's corners' there
    (``corners``), else ``semimajor_sigma``; within :data:`HALF_HEIGHT_LIMITS`, rounded up."""
    low, high = HALF_HEIGHT_LIMITS
    size = low
    if corners is not None and np.all(np.isfinite(corners)) and np.size(corners):
        size = float(np.max(np.abs(np.asarray(corners, np.float64) - centre)))
    elif semimajor_sigma is not None and np.isfinite(semimajor_sigma) and semimajor_sigma > 0:
        size = 3.0 * float(semimajor_sigma)
    return float(np.ceil(min(max(size, low), high)))


@dataclass(frozen=True)
class GrismSource:
    """A catalog source on a WFSS exposure: its catalog ``label``, sky position (degrees),
    undispersed window pixel (x, y; 0-based, it may lie off the window), extraction
    ``half`` height (pixels), whether the catalog calls it extended, its isophotal AB
    magnitude (None when unknown), and its trace per spectral order (in the dispersion
    frame, :class:`SlitTrace`; only orders whose spectrum falls on the window)."""

    label: int
    ra: float
    dec: float
    pixel: tuple[float, float]
    half: float
    is_extended: bool
    abmag: float | None
    traces: dict[int, SlitTrace] = field(default_factory=dict)

    def box(self, order: int, shape: tuple[int, int]) -> tuple[int, int, int, int]:
        """The cutout of ``order`` in the dispersion frame of a window of ``shape`` (ny, nx):
        (first line, end line, first pixel across, end pixel across), the ends exclusive:
        the lines of its spectrum and the pixels across them its region touches."""
        trace = self.traces[order]
        n_across = shape[0] if trace.dispaxis == 1 else shape[1]
        centre = trace.x[trace.rows]
        first = max(int(np.floor(np.min(centre) - self.half - 1.0)) + 1, 0)
        end = min(int(np.ceil(np.max(centre) + self.half + 1.0)), n_across)
        return int(trace.rows[0]), int(trace.rows[-1]) + 1, first, end

    def region_box(self, order: int, shape: tuple[int, int]) -> tuple[int, int, int, int]:
        """The part of the window's dispersion frame ``order``'s region covers: its cutout
        (:meth:`box`) and :data:`SPREAD_LINES` lines past each end (within the window)."""
        l0, l1, c0, c1 = self.box(order, shape)
        n_lines = self.traces[order].x.size
        return max(l0 - SPREAD_LINES, 0), min(l1 + SPREAD_LINES, n_lines), c0, c1


@dataclass(frozen=True)
class WfssSources:
    """What :func:`grism_sources` found: the ``sources`` with a spectrum on the window, in
    catalog order; the labels of those without a usable position (``unplaced``) and of
    those none of whose orders fall on the window (``dropped``)."""

    sources: list[GrismSource]
    unplaced: list[int]
    dropped: list[int]


def _column(catalog: Any, name: str) -> Any:
    return catalog[name] if name in getattr(catalog, "colnames", ()) else None


def _values(column: Any, n: int) -> np.ndarray:
    """A numeric column as floats (a Quantity's values; masked entries NaN); NaN when absent."""
    if column is None:
        return np.full(n, np.nan)
    return np.ma.filled(np.ma.asarray(getattr(column, "value", column), dtype=np.float64), np.nan)


def _sky(column: Any) -> tuple[np.ndarray, np.ndarray]:
    """(ra, dec) degrees of a SkyCoord column."""
    icrs = column.icrs if hasattr(column, "icrs") else column
    return np.asarray(icrs.ra.deg, np.float64), np.asarray(icrs.dec.deg, np.float64)


def grism_sources(catalog: Any, grism: Mapping[str, Any], world_to_pixel: WorldToPixel, *,
                  ranges: Mapping[int, tuple[float, float] | None], dispaxis: int, xstart: int = 1,
                  ystart: int = 1, nx: int, ny: int) -> WfssSources:
    """The catalog's sources whose spectra fall on a readout window of ``nx`` x ``ny``
    pixels starting at full-frame pixel (``xstart``, ``ystart``) (1-based), each with its
    undispersed pixel (``world_to_pixel``: arrays of RA, Dec degrees -> window x, y,
    0-based), half-height and trace per order of ``ranges`` ({order: (low, high) um or
    None}) from the grism model ``grism`` (the SPECWCS tree) dispersing along ``dispaxis``.

    Raises
    ------
    ValueError
        The catalog lacks ``label`` or ``sky_centroid``, or the grism model cannot trace an
        order (a missing model, one that cannot be evaluated)."""
    missing = [c for c in ("label", "sky_centroid") if _column(catalog, c) is None]
    if missing:
        raise ValueError(f"the source catalog has no {', '.join(missing)} column(s)")
    n = len(catalog)
    labels = np.asarray(catalog["label"]).astype(np.int64)
    if n == 0:
        return WfssSources([], [], [])
    ra, dec = _sky(catalog["sky_centroid"])
    x, y = (np.asarray(v, np.float64) for v in world_to_pixel(ra, dec))
    across = y if dispaxis == 1 else x
    corners = None
    if all(_column(catalog, c) is not None for c in _BBOX):
        pix = [world_to_pixel(*_sky(catalog[c])) for c in _BBOX]
        corners = np.stack([np.asarray(p[1] if dispaxis == 1 else p[0], np.float64) for p in pix], axis=1)
    sigma = _values(_column(catalog, "semimajor_sigma"), n)
    mags = _values(_column(catalog, "isophotal_abmag"), n)
    extended = _column(catalog, "is_extended")
    extended = np.zeros(n, bool) if extended is None else np.asarray(np.ma.filled(np.ma.asarray(extended), False), bool)
    sources, unplaced, dropped = [], [], []
    for i in range(n):
        label = int(labels[i])
        if not (np.isfinite(x[i]) and np.isfinite(y[i])):
            unplaced.append(label)
            continue
        half = half_height(float(across[i]), None if corners is None else corners[i], float(sigma[i]))
        traces = {}
        for order, bounds in ranges.items():
            trace = grism_trace(grism, float(x[i]), float(y[i]), xstart=xstart, ystart=ystart, nx=nx, ny=ny,
                                order=order, dispaxis=dispaxis)
            if bounds is not None:
                trace = bound_trace(trace, *bounds)
            if trace.rows.size >= 2:
                traces[order] = trace
        if not traces:
            dropped.append(label)
            continue
        sources.append(GrismSource(label=label, ra=float(ra[i]), dec=float(dec[i]), pixel=(float(x[i]), float(y[i])),
                                   half=half, is_extended=bool(extended[i]),
                                   abmag=float(mags[i]) if np.isfinite(mags[i]) else None, traces=traces))
    return WfssSources(sources, unplaced, dropped)


def _spread_centre(trace: SlitTrace) -> np.ndarray:
    """The trace's centre on each line of the window, held at its end's on the
    :data:`SPREAD_LINES` lines past each end (NaN elsewhere off the spectrum)."""
    centre = np.asarray(trace.x, np.float64).copy()
    rows = trace.rows
    if rows.size:
        first, last = int(rows[0]), int(rows[-1])
        centre[max(first - SPREAD_LINES, 0):first] = centre[first]
        centre[last + 1:last + 1 + SPREAD_LINES] = centre[last]
    return centre


def region_mask(trace: SlitTrace, half: float, box: tuple[int, int, int, int]) -> np.ndarray:
    """(lines, pixels across) of the dispersion-frame ``box`` (a cutout as
    :meth:`GrismSource.box` gives it, or a part of one): True on the pixels of the trace's
    region, those its aperture of ``2 half + 1`` pixels touches (``|i - c| < half + 1``)
    on the lines of the spectrum and :data:`SPREAD_LINES` past each end."""
    l0, l1, c0, c1 = box
    centre = _spread_centre(trace)[l0:l1, None]  # NaN off the spectrum: outside the region
    cols = np.arange(c0, c1, dtype=np.float64)[None, :]
    with np.errstate(invalid="ignore"):
        return np.abs(cols - centre) < half + 1.0


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> tuple[int, int, int, int] | None:
    l0, l1, c0, c1 = max(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), min(a[3], b[3])
    return (l0, l1, c0, c1) if l0 < l1 and c0 < c1 else None


def source_boxes(sources: Sequence[GrismSource], shape: tuple[int, int]) -> dict[tuple[int, int], tuple[int, int, int, int]]:
    """{(index of the source, order): its cutout} (:meth:`GrismSource.box`) on a window of
    ``shape``."""
    return {(i, n): src.box(n, shape) for i, src in enumerate(sources) for n in src.traces}


def contamination(sources: Sequence[GrismSource], index: int, order: int, shape: tuple[int, int], *,
                  boxes: Mapping[tuple[int, int], tuple[int, int, int, int]] | None = None) -> np.ndarray:
    """The pixels of the cutout of ``sources[index]``'s ``order`` (its dispersion frame,
    :meth:`GrismSource.box`; ``shape`` the window's) that another source's region, in any
    of its orders, covers. ``boxes``: the sources' cutouts (:func:`source_boxes`), when
    already known."""
    boxes = source_boxes(sources, shape) if boxes is None else boxes
    box = boxes[(index, order)]
    out = np.zeros((box[1] - box[0], box[3] - box[2]), bool)
    for j, n in boxes:
        if j == index:
            continue
        common = _overlap(box, sources[j].region_box(n, shape))
        if common is None:
            continue
        other = sources[j]
        out[common[0] - box[0]:common[1] - box[0], common[2] - box[2]:common[3] - box[2]] |= region_mask(
            other.traces[n], other.half, common)
    return out


def source_mask(sources: Sequence[GrismSource], shape: tuple[int, int]) -> np.ndarray:
    """(ny, nx) of a window of ``shape``: True on every pixel of a source's region (any
    order)."""
    mask = np.zeros(shape, bool)
    for source in sources:
        for order, trace in source.traces.items():
            frame = in_frame(mask, trace.dispaxis)  # a view: painted through
            l0, l1, c0, c1 = box = source.region_box(order, shape)
            frame[l0:l1, c0:c1] |= region_mask(trace, source.half, box)
    return mask


@dataclass(frozen=True)
class BackgroundScale:
    """The WFSSBKG pattern's scale on the exposure (DN/s per unit of the pattern), the
    pixels it was fitted on, those rejected as outliers and the rounds of rejection."""

    scale: float
    n_used: int
    n_rejected: int
    rounds: int


def background_scale(sci: np.ndarray, dq: np.ndarray, pattern: np.ndarray, pattern_dq: np.ndarray | None,
                     mask: np.ndarray, *, sigma: float = 3.0, maxiters: int | None = None,
                     min_pixels: int = 100) -> BackgroundScale:
    """The scale ``k`` of the dispersed sky's ``pattern`` that best matches the exposure
    ``sci`` off the sources (``mask`` True on their regions), by least squares
    (``k = sum(sci p) / sum(p^2)``) over the usable pixels (finite, not DO_NOT_USE in
    ``dq`` or ``pattern_dq``, off the mask), rejecting in rounds the pixels whose residual
    ``sci - k p`` lies more than ``sigma`` robust standard deviations (1.4826 x the median
    absolute deviation) from the residuals' median, until no more are rejected or after
    ``maxiters`` rounds (at most 20).

    The pixels weigh alike: their ERR comes from their own counts, and weighting by it
    would favour those that fluctuated low.

    Raises
    ------
    ValueError
        Fewer than ``min_pixels`` usable pixels, or a pattern that is zero on all of them.
    """
    sci = np.asarray(sci, np.float64)
    p = np.asarray(pattern, np.float64)
    if p.shape != sci.shape:
        raise ValueError(f"the background pattern's shape {p.shape} differs from the exposure's {sci.shape}")
    bad = (np.asarray(dq, np.uint32) & _DO_NOT_USE) != 0
    if pattern_dq is not None:
        bad |= (np.asarray(pattern_dq, np.uint32) & _DO_NOT_USE) != 0
    use = np.isfinite(sci) & np.isfinite(p) & ~bad & ~np.asarray(mask, bool)
    s, p = sci[use], p[use]
    if s.size < min_pixels:
        raise ValueError(f"only {s.size} usable pixel(s) lie off the sources' regions (at least {min_pixels} "
                         "are needed to scale the background)")
    keep = np.ones(s.size, bool)
    limit = min(maxiters or 20, 20)
    rounds = 0
    while True:
        norm = float(np.sum(p[keep] ** 2))
        if norm <= 0:
            raise ValueError("the background pattern is zero on every usable pixel")
        k = float(np.sum(s[keep] * p[keep]) / norm)
        if rounds >= limit:
            break
        r = s - k * p
        centre = float(np.median(r[keep]))
        spread = 1.4826 * float(np.median(np.abs(r[keep] - centre)))
        new = np.abs(r - centre) <= sigma * spread if spread > 0 else keep
        new &= keep
        rounds += 1
        if new.sum() == keep.sum():
            break
        keep = new
        if keep.sum() < min_pixels:
            raise ValueError(f"only {int(keep.sum())} pixel(s) are left after rejecting outliers (at least "
                             f"{min_pixels} are needed to scale the background)")
    return BackgroundScale(k, int(keep.sum()), int(s.size - keep.sum()), rounds)
