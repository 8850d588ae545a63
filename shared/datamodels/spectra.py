"""The extracted-spectrum products, stage 2's or stage 3's: the ``_x1d`` (a MultiSpecModel)
and, for a time series, the ``_x1dints`` (a TSOMultiSpecModel: one table whose rows are
the integrations, each row holding its spectrum as array columns, with the integration's
number, segment and times), and the times of a product's integrations."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from shared.datamodels.fits_io import FitsProduct, SpectrumTable, card_value, set_cards
from shared.datamodels.keywords import SLIT_KEYWORDS
from shared.spectra import SPECTABLE_DTYPE, spectable_units

__all__ = ["TSO_TIME_COLUMNS", "IntegrationTimes", "integration_times", "x1d_product", "x1dints_product"]

# SCI-header cards of an image product that a table product has no SCI extension for
_IMAGE_ONLY = frozenset({"BUNIT", "PHOTMJSR", "PHOTUJA2", "PIXAR_SR", "PIXAR_A2", "SRCTYPE", "DISPAXIS", "SLTNAME",
                         "SRCXPOS", "SRCYPOS"})


def _table_cards(header: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in header.items()
            if k not in _IMAGE_ONLY and k not in SLIT_KEYWORDS and not k.startswith(("A_", "B_", "AP_", "BP_"))}


def x1d_product(spectra: Sequence[tuple[np.ndarray, Mapping[str, Any]]], header: Mapping[str, Any], *,
                counts: bool = False) -> FitsProduct:
    """A MultiSpecModel of spectral tables (the public ``spectable`` layout), each with its
    cards (SLTNAME, SRCTYPE, SRCXPOS, SRCYPOS, SOURCEID, SPORDER, ...; None values left out)
    and its columns' units in its EXTRACT1D extension, and the product's keywords
    ``header`` in PRIMARY, less the image's own SCI cards and distortion terms. ``counts``:
    the spectra are in DN/s (not flux-calibrated), and their units say so."""
    product = FitsProduct(model_type="MultiSpecModel", spectra=[
        SpectrumTable(table, {k: v for k, v in {**spectable_units(table, counts=counts), **cards}.items()
                              if v is not None})
        for table, cards in spectra])
    set_cards(product, _table_cards(header))
    return product


#: The time columns of an ``_x1dints`` row (the public ``tso_spectable``): MJD (UTC) and
#: BJD_TDB (as MJD) of the integration's start, middle and end.
TSO_TIME_COLUMNS = ("MJD-BEG", "MJD-AVG", "MJD-END", "TDB-BEG", "TDB-MID", "TDB-END")
_INT_TIMES_COLUMNS = ("int_start_MJD_UTC", "int_mid_MJD_UTC", "int_end_MJD_UTC", "int_start_BJD_TDB",
                      "int_mid_BJD_TDB", "int_end_BJD_TDB")


@dataclass(frozen=True)
class IntegrationTimes:
    """The integrations of a product: ``numbers`` (1-based, of the whole exposure: a
    segment's start at INTSTART) and ``times`` by :data:`TSO_TIME_COLUMNS` (NaN where
    unknown); ``note`` says what was not known, or is None."""

    numbers: np.ndarray
    times: dict[str, np.ndarray]
    note: str | None = None


def integration_times(product: FitsProduct, nints: int) -> IntegrationTimes:
    """The numbers and times of the ``nints`` integrations of a product (a segment's
    first is INTSTART): from its INT_TIMES table, whose rows are found by integration
    number; without one (or one missing some), the MJDs from EXPSTART and EFFINTTM
    (integration i mid at EXPSTART + (i - 0.5) EFFINTTM) and the BJD_TDB unknown."""
    start = int(card_value(product, "INTSTART", 1) or 1)
    numbers = np.arange(start, start + nints)
    table = product.tables.get("INT_TIMES")
    if table is not None and len(table):
        have = np.asarray(table["integration_number"], int)
        order = np.argsort(have, kind="stable")
        idx = np.searchsorted(have[order], numbers)
        found = np.minimum(idx, len(have) - 1)
        if np.all(have[order][found] == numbers):
            rows = order[found]
            return IntegrationTimes(numbers, {col: np.asarray(table[src], np.float64)[rows]
                                              for col, src in zip(TSO_TIME_COLUMNS, _INT_TIMES_COLUMNS, strict=True)})
    t0, dt = card_value(product, "EXPSTART"), card_value(product, "EFFINTTM")
    unknown = np.full(nints, np.nan)
    times = {col: unknown.copy() for col in TSO_TIME_COLUMNS}
    if t0 is None or dt is None:
        return IntegrationTimes(numbers, times, "no INT_TIMES table, EXPSTART or EFFINTTM: times unknown")
    day = float(dt) / 86400.0
    for col, offset in (("MJD-BEG", 1.0), ("MJD-AVG", 0.5), ("MJD-END", 0.0)):
        times[col] = float(t0) + (numbers - offset) * day
    return IntegrationTimes(numbers, times, "no INT_TIMES table: MJD from EXPSTART and EFFINTTM, BJD_TDB unknown")


def x1dints_product(spectra: Sequence[np.ndarray] | Mapping[int, Sequence[np.ndarray]], ints: IntegrationTimes,
                    cards: Mapping[str, Any], header: Mapping[str, Any], *, segment: int | np.ndarray = 0,
                    counts: bool = False) -> FitsProduct:
    """A TSOMultiSpecModel of one spectrum per integration (each a table of
    :data:`SPECTABLE_DTYPE`, all of the same wavelengths): one EXTRACT1D table whose row
    i is integration ``ints.numbers[i]``, its spectrum in array columns, with INT_NUM,
    N_ALONGDISP (its spectral elements), SEGMENT (``segment``, one for all rows or one per
    row: the exposure segment's number, 0 for an unsegmented exposure) and the times; ``cards`` of the table (SLTNAME, SRCTYPE, ...) and the
    product's keywords ``header`` as for :func:`x1d_product`.

    ``spectra`` by spectral order (a mapping: NIRISS SOSS) gives one such table per order,
    in the mapping's order, each with its SPORDER. ``counts``: the spectra are in DN/s
    (not flux-calibrated), and their units say so.

    Raises
    ------
    ValueError
        No spectra, spectra of different lengths, or not as many as ``ints`` numbers."""
    by_order = dict(spectra) if isinstance(spectra, Mapping) else {None: spectra}
    if not by_order:
        raise ValueError("an _x1dints needs at least one spectral order")
    tables = []
    for order, series in by_order.items():
        table = _tso_table(series, ints, segment)
        units = {**spectable_units(table, counts=counts),
                 **{f"TUNIT{table.dtype.names.index(c) + 1}": "d" for c in TSO_TIME_COLUMNS}}
        own = {**units, **cards, **({} if order is None else {"SPORDER": int(order)})}
        tables.append(SpectrumTable(table, {k: v for k, v in own.items() if v is not None}))
    product = FitsProduct(model_type="TSOMultiSpecModel", spectra=tables)
    set_cards(product, _table_cards(header))
    return product


def _tso_table(spectra: Sequence[np.ndarray], ints: IntegrationTimes, segment: int | np.ndarray) -> np.ndarray:
    """The EXTRACT1D table of one series of spectra (:func:`x1dints_product`)."""
    if not spectra:
        raise ValueError("an _x1dints needs at least one integration's spectrum")
    n = len(spectra[0])
    if any(len(t) != n for t in spectra):
        raise ValueError("the integrations' spectra differ in length")
    if len(spectra) != len(ints.numbers):
        raise ValueError(f"{len(spectra)} spectra for {len(ints.numbers)} integrations")
    dtype = np.dtype([("INT_NUM", "<i4"),
                      *((name, SPECTABLE_DTYPE[name].str, (n,)) for name in SPECTABLE_DTYPE.names),
                      ("N_ALONGDISP", "<i4"), ("SEGMENT", "<i4"), *((c, "<f8") for c in TSO_TIME_COLUMNS)])
    table = np.zeros(len(spectra), dtype)
    table["INT_NUM"] = ints.numbers
    for name in SPECTABLE_DTYPE.names:
        table[name] = np.stack([t[name] for t in spectra])
    table["N_ALONGDISP"] = n
    table["SEGMENT"] = segment
    for col in TSO_TIME_COLUMNS:
        table[col] = ints.times[col]
    return table
