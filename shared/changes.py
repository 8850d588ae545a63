"""What changed between a reprocessed product revision and the revision it replaces.

A reprocessing request stores the result of :func:`compare_files` with the revision it
stages (catalog ``product.changes``) and shows :func:`summary` of it in the request's
report and notifications. Every figure is a plain ``int``/``float`` (or None where it is
undefined), so the result is JSON as it stands.

What is compared, by file name:

- FITS products (``*.fits``) with a SCI image, of any dimension (2-D ``_rate``/``_cal``/
  ``_i2d``, 3-D ``_rateints``/``_calints``, 4-D ``_uncal``/``_ramp``): the relative and
  absolute change of SCI over the pixels usable in both revisions, and the change of the
  pixel DQ (DQ, or PIXELDQ of a ramp) and, for a ramp, of GROUPDQ.
  Segmentation maps (``_segm``, SCI = source labels) compare their source footprints.
- ECSV source catalogs (``*_cat.ecsv``): sources matched by sky position.
- Anything else (JSON, other tables): None, not comparable.

A comparison never fails the task that asks for it: a file that cannot be read, or two
revisions that cannot be set side by side, give ``{"comparable": False, "why": ...}``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.table import QTable

from shared.datamodels import FitsProduct, dqflags, read_product

__all__ = ["MATCH_RADIUS_ARCSEC", "REL_FLOOR_FRACTION", "compare_catalogs", "compare_files", "compare_products",
           "summary"]

log = logging.getLogger(__name__)

REL_FLOOR_FRACTION = 0.01
"""The relative change of a pixel is ``|new - old| / max(|old|, floor)`` with ``floor`` this
fraction of the median ``|old|`` over the compared pixels whose old value is not zero: a
pixel at or near zero (background-subtracted sky, an empty label) is measured against 1 %
of the typical level instead of giving an infinite or meaningless ratio. When every
compared old value is zero, relative changes are undefined (None)."""

MATCH_RADIUS_ARCSEC = 0.1
"""Two catalog sources within this distance of each other are the same source."""

FLUX_COLUMNS = ("aper_total_flux", "isophotal_flux", "flux")
"""Catalog flux columns, in order of preference; the first both revisions have is compared."""

_DO_NOT_USE = dqflags.PIXEL["DO_NOT_USE"]


class _NotComparable(Exception):
    """The two revisions cannot be set side by side; the message says why (a sentence)."""


def compare_files(old: Path, new: Path) -> dict[str, Any] | None:
    """How ``new`` differs from ``old``, two revisions of the same product.

    Parameters
    ----------
    old, new : Path
        The replaced and the new revision; the kind of comparison follows the file name
        of ``new``.

    Returns
    -------
    dict or None
        None for a product that is not compared (neither FITS nor a ``_cat`` catalog);
        ``{"comparable": False, "why": "<sentence>"}`` when the files cannot be read or
        set side by side; otherwise the figures of :func:`compare_products` or
        :func:`compare_catalogs`. Never raises.
    """
    old, new = Path(old), Path(new)
    name = new.name.lower()
    if not (name.endswith(".fits") or name.endswith("_cat.ecsv")):
        return None
    try:
        if name.endswith(".fits"):
            return compare_products(read_product(old), read_product(new))
        return compare_catalogs(QTable.read(old, format="ascii.ecsv"), QTable.read(new, format="ascii.ecsv"))
    except _NotComparable as exc:
        return _incomparable(str(exc))
    except Exception as exc:  # whatever the readers raise: a comparison never fails the task asking for it
        log.warning("%s: revisions not compared", new.name, exc_info=True)
        # The replaced revision is read from a temporary copy: name files, not paths.
        detail = str(exc).replace(str(old), old.name).replace(str(new), new.name)
        return _incomparable(f"{new.name} could not be compared ({type(exc).__name__}: {detail}).")


def _incomparable(why: str) -> dict[str, Any]:
    return {"comparable": False, "why": why}


# ---------------------------------------------------------------------------- FITS


def compare_products(old: FitsProduct, new: FitsProduct) -> dict[str, Any]:
    """Compare two revisions of a FITS product held in memory.

    Returns ``{"comparable": True, "kind": "image", "sci": {...}, "dq_changed_fraction":
    float | None, "dq_flags_changed": {flag: int} | None}`` (plus ``groupdq_changed_fraction``
    and ``groupdq_flags_changed`` when the product has a GROUPDQ), or for a segmentation
    map ``{"comparable": True, "kind": "segmentation", ...}`` (see :func:`_compare_segm`),
    or ``{"comparable": False, "why": ...}``.

    ``sci`` holds ``median_rel`` and ``p99_rel`` (median and 99th percentile of the
    relative change, see :data:`REL_FLOOR_FRACTION`), ``max_abs`` (largest absolute
    change, in the SCI unit) and ``pixels`` (how many were compared): the SCI elements
    finite in both revisions and flagged DO_NOT_USE in neither (in DQ/PIXELDQ, broadcast
    over integrations and groups, or in GROUPDQ). DQ figures are over every element of
    the DQ array; a flag's count is the number of elements that have it.
    """
    try:
        if old.model_type != new.model_type:
            raise _NotComparable(f"model type {old.model_type} differs from {new.model_type}")
        old_sci, new_sci = old.images.get("SCI"), new.images.get("SCI")
        if old_sci is None or new_sci is None:
            tables = sorted(set(old.tables) | set(new.tables) | ({"EXTRACT1D"} if old.spectra or new.spectra else set()))
            raise _NotComparable(f"{new.model_type} has no SCI image to compare"
                                 + (f" (tables only: {', '.join(tables)})" if tables else ""))
        if old_sci.shape != new_sci.shape:
            raise _NotComparable(f"SCI shape {old_sci.shape} differs from {new_sci.shape}")
        if new.model_type == "SegmentationMapModel":
            return _compare_segm(old_sci, new_sci)
        result: dict[str, Any] = {"comparable": True, "kind": "image"}
        result["sci"] = _sci_change(old_sci, new_sci, _unusable(old, old_sci.shape) | _unusable(new, new_sci.shape))
        pixel_dq = _dq_name(old, new)
        result["dq_changed_fraction"], result["dq_flags_changed"] = (
            _dq_change(old.images[pixel_dq], new.images[pixel_dq], dqflags.PIXEL) if pixel_dq else (None, None))
        if "GROUPDQ" in old.images and "GROUPDQ" in new.images:
            result["groupdq_changed_fraction"], result["groupdq_flags_changed"] = _dq_change(
                old.images["GROUPDQ"], new.images["GROUPDQ"], dqflags.GROUP)
        return result
    except _NotComparable as exc:
        return _incomparable(_sentence(str(exc)))


def _sentence(text: str) -> str:
    return text if text.endswith(".") else text + "."


def _dq_name(old: FitsProduct, new: FitsProduct) -> str | None:
    """The pixel DQ array both revisions have: DQ, or PIXELDQ of a ramp."""
    return next((n for n in ("DQ", "PIXELDQ") if n in old.images and n in new.images), None)


def _unusable(product: FitsProduct, shape: tuple[int, ...]) -> np.ndarray:
    """DO_NOT_USE of every SCI element (bool, broadcastable to ``shape``): from DQ or
    PIXELDQ (the trailing axes of SCI: a 2-D PIXELDQ applies to every group) and GROUPDQ."""
    bad = np.zeros((), bool)
    for name in ("DQ", "PIXELDQ", "GROUPDQ"):
        dq = product.images.get(name)
        if dq is None:
            continue
        if dq.ndim > len(shape) or dq.shape != shape[len(shape) - dq.ndim:]:
            raise _NotComparable(f"{name} shape {dq.shape} does not fit SCI shape {shape}")
        bad = bad | ((dq.astype(np.uint32, copy=False) & _DO_NOT_USE) != 0)
    return bad


def _sci_change(old: np.ndarray, new: np.ndarray, bad: np.ndarray) -> dict[str, Any]:
    good = np.isfinite(old) & np.isfinite(new) & ~bad
    # float64 before subtracting: an _uncal SCI is uint16 and would wrap around.
    before = old[good].astype(np.float64)
    delta = np.abs(new[good].astype(np.float64) - before)
    result: dict[str, Any] = {"median_rel": None, "p99_rel": None, "max_abs": None, "pixels": int(delta.size)}
    if not delta.size:
        return result
    result["max_abs"] = _num(delta.max())
    magnitude = np.abs(before)
    nonzero = magnitude[magnitude > 0]
    if nonzero.size:
        rel = delta / np.maximum(magnitude, REL_FLOOR_FRACTION * np.median(nonzero))
        result["median_rel"], result["p99_rel"] = _num(np.median(rel)), _num(np.percentile(rel, 99))
    return result


def _dq_change(old: np.ndarray, new: np.ndarray, flags: Mapping[str, int]) -> tuple[float | None, dict[str, int]]:
    """Fraction of DQ elements whose value differs, and the net change of the number of
    elements having each flag (only flags whose count changed)."""
    if old.shape != new.shape:
        raise _NotComparable(f"DQ shape {old.shape} differs from {new.shape}")
    fraction = _num(np.count_nonzero(old != new) / old.size) if old.size else None
    old_bits, new_bits = old.astype(np.uint32, copy=False), new.astype(np.uint32, copy=False)
    changed = {}
    for name, bit in flags.items():
        if bit:
            net = int(np.count_nonzero(new_bits & bit)) - int(np.count_nonzero(old_bits & bit))
            if net:
                changed[name] = net
    return fraction, changed


def _compare_segm(old: np.ndarray, new: np.ndarray) -> dict[str, Any]:
    """A segmentation map's labels are renumbered by any change upstream, so what is
    compared is the number of segments and the source footprint (label > 0)."""
    old_src, new_src = old > 0, new > 0
    return {
        "comparable": True, "kind": "segmentation",
        "segments_old": int(np.unique(old[old_src]).size), "segments_new": int(np.unique(new[new_src]).size),
        "source_pixels_old": int(np.count_nonzero(old_src)), "source_pixels_new": int(np.count_nonzero(new_src)),
        "footprint_changed_fraction": _num(np.count_nonzero(old_src != new_src) / old.size) if old.size else None,
    }


# ---------------------------------------------------------------------------- catalogs


def compare_catalogs(old: QTable, new: QTable, *, radius_arcsec: float = MATCH_RADIUS_ARCSEC) -> dict[str, Any]:
    """Match the sources of two revisions of a source catalog by sky position.

    Each new source is paired with its nearest old source when they are within
    ``radius_arcsec``; an old source claimed by several new ones keeps the nearest, and
    the others count as added. Positions come from ``sky_centroid`` (as the ``_cat``
    writes them) or from ``ra``/``dec`` columns in degrees.

    Returns ``{"comparable": True, "kind": "catalog", "sources_old", "sources_new",
    "added", "lost", "matched", "moved_median_mas", "moved_max_mas"}`` (moves None when
    nothing matched), plus ``flux_column`` and ``flux_median_rel`` (median of the signed
    ``(new - old) / old`` over matched sources with a positive, finite old flux and a
    finite new one; None when there is none) when both revisions have one of
    :data:`FLUX_COLUMNS` in compatible units; or ``{"comparable": False, "why": ...}``.
    """
    try:
        old_pos, new_pos = _positions(old, "old"), _positions(new, "new")
    except _NotComparable as exc:
        return _incomparable(_sentence(str(exc)))
    n_old, n_new = len(old), len(new)
    old_i = new_i = np.zeros(0, int)
    sep_mas = np.zeros(0)
    if n_old and n_new:
        idx, sep, _ = new_pos.match_to_catalog_sky(old_pos)
        sep_all = sep.to_value(u.mas)
        near = np.flatnonzero(sep_all <= radius_arcsec * 1000.0)
        near = near[np.argsort(sep_all[near], kind="stable")]
        _, first = np.unique(idx[near], return_index=True)  # nearest new source of each old one
        new_i = np.sort(near[first])
        old_i, sep_mas = idx[new_i], sep_all[new_i]
    matched = int(new_i.size)
    result: dict[str, Any] = {
        "comparable": True, "kind": "catalog", "sources_old": n_old, "sources_new": n_new,
        "added": n_new - matched, "lost": n_old - matched, "matched": matched,
        "moved_median_mas": _num(np.median(sep_mas)) if matched else None,
        "moved_max_mas": _num(sep_mas.max()) if matched else None,
    }
    column = next((c for c in FLUX_COLUMNS if c in old.colnames and c in new.colnames), None)
    if column is not None:
        fluxes = _fluxes(old[column], new[column])
        if fluxes is not None:
            before, after = fluxes[0][old_i], fluxes[1][new_i]
            ok = np.isfinite(before) & np.isfinite(after) & (before > 0)
            rel = (after[ok] - before[ok]) / before[ok]
            result["flux_column"] = column
            result["flux_median_rel"] = _num(np.median(rel)) if rel.size else None
    return result


def _positions(table: QTable, which: str) -> SkyCoord | None:
    if not len(table):
        return None
    if "sky_centroid" in table.colnames and isinstance(table["sky_centroid"], SkyCoord):
        return table["sky_centroid"]
    if "ra" in table.colnames and "dec" in table.colnames:
        return SkyCoord(_values(table["ra"], u.deg), _values(table["dec"], u.deg), unit=u.deg)
    raise _NotComparable(f"the {which} catalog has no sky positions (sky_centroid, or ra and dec)")


def _values(column, unit: u.UnitBase) -> np.ndarray:
    """Column values in ``unit`` (a column without a unit is taken to be in it)."""
    if isinstance(column, u.Quantity):
        return np.asarray(column.to_value(unit), float)
    return np.asarray(np.ma.filled(np.ma.asarray(column, float), np.nan))


def _fluxes(old, new) -> tuple[np.ndarray, np.ndarray] | None:
    """Old and new fluxes in the old column's unit; None when the units do not convert
    (or only one of the columns has a unit)."""
    if isinstance(old, u.Quantity) != isinstance(new, u.Quantity):
        return None
    unit = old.unit if isinstance(old, u.Quantity) else u.one
    try:
        return _values(old, unit), _values(new, unit)
    except u.UnitConversionError:
        return None


def _num(value) -> float | None:
    """A plain float, or None for NaN and infinities (JSON has neither)."""
    value = float(value)
    return value if np.isfinite(value) else None


# ---------------------------------------------------------------------------- summary


def summary(changes: Mapping[str, Any] | None) -> str:
    """One line for people (notifications, CLI reports), e.g. ``"SCI median 0.12 % (p99
    1.8 %), DQ changed on 0.4 % of pixels: JUMP_DET +12"`` or ``"catalog: 3 added, 1 lost,
    120 matched, median move 2.1 mas"``."""
    if not changes:
        return "not compared"
    if changes.get("comparable") is False:
        return f"not comparable: {changes.get('why') or 'no reason given'}"
    kind = changes.get("kind")
    if kind == "catalog":
        return _catalog_summary(changes)
    if kind == "segmentation":
        frac = changes.get("footprint_changed_fraction")
        return (f"segmentation: {changes.get('segments_old')} -> {changes.get('segments_new')} segments"
                + (f", footprint changed on {_pct(frac)} % of pixels" if frac is not None else ""))
    if kind == "image":
        return _image_summary(changes)
    return "changes recorded"


def _image_summary(changes: Mapping[str, Any]) -> str:
    sci = changes.get("sci") or {}
    if not sci.get("pixels"):
        parts = ["SCI: no pixel usable in both revisions"]
    elif sci.get("max_abs") == 0:
        parts = ["SCI unchanged"]
    elif sci.get("median_rel") is None:
        parts = [f"SCI max |change| {sci.get('max_abs'):.3g} (old values all zero)"]
    else:
        parts = [f"SCI median {_pct(sci['median_rel'])} % (p99 {_pct(sci['p99_rel'])} %)"]
    for prefix, label in (("dq", "DQ"), ("groupdq", "GROUPDQ")):
        frac = changes.get(f"{prefix}_changed_fraction")
        if frac is None:
            continue
        if not frac:
            parts.append(f"{label} unchanged")
            continue
        flags = sorted((changes.get(f"{prefix}_flags_changed") or {}).items(), key=lambda kv: (-abs(kv[1]), kv[0]))
        shown = ", ".join(f"{name} {net:+d}" for name, net in flags[:3]) + (", ..." if len(flags) > 3 else "")
        parts.append(f"{label} changed on {_pct(frac)} % of pixels" + (f": {shown}" if shown else ""))
    return ", ".join(parts)


def _catalog_summary(changes: Mapping[str, Any]) -> str:
    text = f"catalog: {changes.get('added')} added, {changes.get('lost')} lost, {changes.get('matched')} matched"
    if changes.get("moved_median_mas") is not None:
        text += f", median move {_sig(changes['moved_median_mas'])} mas"
    if changes.get("flux_median_rel") is not None:
        text += f", median flux change {'+' if changes['flux_median_rel'] >= 0 else '-'}{_pct(abs(changes['flux_median_rel']))} %"
    return text


def _pct(fraction: float) -> str:
    """A fraction as a percentage with two significant digits."""
    return _sig(fraction * 100.0)


def _sig(value: float) -> str:
    """Two significant digits, never in exponent form (0.0012, 1.8, 120)."""
    return np.format_float_positional(value, precision=2, unique=False, fractional=False, trim="-")
