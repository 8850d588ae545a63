"""The wavelength range of NIRSpec's slits (spec2's assign_wcs, spec3's traces): the span
of each filter/grating pair, from the WAVELENGTHRANGE reference, bounds a slit's spectrum.

The reference is the public ``WavelengthrangeModel`` (ASDF): ``waverange_selector`` names
each pair as ``<FILTER>_<GRATING>`` (``CLEAR_PRISM``, ``F290LP_G395H``, ...), and
``wavelengthrange`` holds one ``[low, high]`` for each, in ``meta.wavelength_units``
(metres in the public NIRSpec files, and when the file says nothing). The public pipeline
builds its slits' transforms over that span only, so a pixel whose wavelength falls
outside has none; here the trace is cut to it (:func:`bound_trace`), and with it every
pixel's wavelength, the rectified grid and the extraction.
"""

from __future__ import annotations

from collections.abc import Mapping
from numbers import Real
from typing import Any

import astropy.units as u
import numpy as np

from shared.refdata.errors import HeaderError, ReferenceFileError
from shared.spectra.trace import SlitTrace

__all__ = ["bound_trace", "exposure_range", "filter_grating", "wavelength_ranges"]


def filter_grating(filter_name: Any, grating: Any) -> str:
    """The pair's name as WAVELENGTHRANGE lists it: ``<FILTER>_<GRATING>``, upper case.

    Raises
    ------
    ValueError
        FILTER or GRATING is missing.
    """
    parts = [str(v or "").strip().upper() for v in (filter_name, grating)]
    missing = [k for k, v in zip(("FILTER", "GRATING"), parts, strict=True) if not v]
    if missing:
        raise ValueError(f"no {' or '.join(missing)} keyword to choose a wavelength range by")
    return "_".join(parts)


def _in_um(units: Any) -> float:
    """The factor from ``meta.wavelength_units`` to um (metres when absent)."""
    try:
        return float((u.m if units is None else u.Unit(units)).to(u.um))
    except (TypeError, ValueError, u.UnitsError) as exc:
        raise ValueError(f"its wavelength_units {units!s} is not a unit of length ({exc})") from None


def wavelength_ranges(tree: Mapping[str, Any]) -> dict[str, tuple[float, float]]:
    """The (low, high) wavelength in um of each pair a WAVELENGTHRANGE tree names
    (``waverange_selector``, ``wavelengthrange`` and ``meta.wavelength_units``, as the
    ASDF file holds them).

    Raises
    ------
    ValueError
        The names or ranges are missing, their counts differ, a name repeats, a range is
        not two finite numbers with low below high, or the unit is not a length.
    """
    names, ranges = tree.get("waverange_selector"), tree.get("wavelengthrange")
    if names is None or ranges is None:
        absent = [k for k, v in (("waverange_selector", names), ("wavelengthrange", ranges)) if v is None]
        raise ValueError(f"it has no {' and no '.join(absent)} (NIRSpec's lists its FILTER_GRATING names and "
                         "a [low, high] for each)")
    if isinstance(names, str | bytes) or not all(isinstance(n, str) for n in names):
        raise ValueError("its waverange_selector is not a list of names (FILTER_GRATING)")
    ranges = list(ranges)
    if len(names) != len(ranges):
        raise ValueError(f"it names {len(names)} filter/grating pair(s) in waverange_selector but gives "
                         f"{len(ranges)} wavelengthrange entries")
    meta = tree.get("meta")
    scale = _in_um(meta.get("wavelength_units") if isinstance(meta, Mapping) else None)
    out: dict[str, tuple[float, float]] = {}
    for name, entry in zip(names, ranges, strict=True):
        key = name.strip().upper()
        if key in out:
            raise ValueError(f"it names {key} twice")
        values = list(entry) if isinstance(entry, list | tuple | np.ndarray) else [entry]
        if len(values) != 2 or not all(isinstance(v, Real) and np.isfinite(v) for v in values):
            raise ValueError(f"its range for {key} is {entry!r}, not [low, high] (two numbers; the NIRSpec layout)")
        low, high = (float(v) * scale for v in values)
        if not 0 < low < high:
            raise ValueError(f"its range for {key} ({low:g}-{high:g} um) is not a positive span from low to high")
        out[key] = (low, high)
    return out


def bound_trace(trace: SlitTrace, low: float, high: float) -> SlitTrace:
    """``trace`` with the lines whose wavelength lies outside ``low``-``high`` (um) dropped:
    no wavelength and no trace there (NaN), so no pixel of theirs gets a wavelength."""
    wavelength = np.asarray(trace.wavelength, np.float64)
    with np.errstate(invalid="ignore"):
        keep = np.isfinite(wavelength) & (wavelength >= low) & (wavelength <= high)
    return SlitTrace(wavelength=np.where(keep, trace.wavelength, np.nan), x=np.where(keep, trace.x, np.nan),
                     rows=np.flatnonzero(keep), ref=trace.ref, dispaxis=trace.dispaxis)


def exposure_range(ref: Any, keywords: Mapping[str, Any], name: str) -> tuple[str, float, float] | None:
    """(FILTER_GRATING, low, high in um) of a NIRSpec exposure (``name`` in messages) from
    its WAVELENGTHRANGE reference ``ref`` (a loaded reference with its ``tree``); None for
    another instrument (the MIRI LRS's range is its SPECWCS table's, as in the public
    pipeline) and when there is no reference (the caller notes it).

    The reference is optional: a SPECWCS here tabulates each slit's trace over the
    spectrum it models and no farther, so without WAVELENGTHRANGE the spectrum is the
    table's span and the exposure is still calibrated, as it was by contexts made before
    the type was delivered. (The public pipeline needs it: its optical model has no extent
    of its own.) An exposure whose FILTER_GRATING the file does not list is refused: the
    public pipeline would fall back on the grating's or NIRSpec's whole range, which would
    put wavelengths on pixels the pair does not illuminate.

    Raises
    ------
    ReferenceFileError
        A malformed WAVELENGTHRANGE, or one without the exposure's pair.
    HeaderError
        The exposure has no FILTER or GRATING.
    """
    if str(keywords.get("INSTRUME") or "").upper() != "NIRSPEC" or ref is None:
        return None
    try:
        ranges = wavelength_ranges(ref.tree)
    except ValueError as exc:
        raise ReferenceFileError(f"WAVELENGTHRANGE reference {ref.filename}: {exc}") from exc
    try:
        pair = filter_grating(keywords.get("FILTER"), keywords.get("GRATING"))
    except ValueError as exc:
        raise HeaderError(f"{name}: {exc}") from None
    if pair not in ranges:
        raise ReferenceFileError(f"{name}: WAVELENGTHRANGE reference {ref.filename} has no range for the "
                                 f"exposure's filter and grating {pair} (it lists {', '.join(ranges) or 'none'})")
    return pair, *ranges[pair]
