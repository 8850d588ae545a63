"""The extracted-spectrum products, stage 2's or stage 3's: the ``_x1d`` (a MultiSpecModel)
and, for a time series, the ``_x1dints`` (a TSOMultiSpecModel: one table whose rows are
the integrations, each row holding its spectrum as array columns, with the integration's
number, segment and times), a WFSS exposure's ``_x1d`` (a WFSSMultiSpecModel: a table per
spectral order whose rows are the sources), a WFSS association's Level-3 ``_x1d`` (the
same, a table per exposure and order) and ``_c1d`` (a WFSSMultiCombinedSpecModel: a table
per order whose rows are the sources' combined spectra), and the times of a product's
integrations; and an IFU's cube, the ``_s3d`` (an IFUCubeModel)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from shared.datamodels.fits_io import (
    COMBINED_EXTNAME,
    FitsProduct,
    SpectrumTable,
    card_value,
    set_cards,
)
from shared.datamodels.keywords import SLIT_KEYWORDS
from shared.footprints import s_region_keyword
from shared.spectra import SPECTABLE_DTYPE, SPECTABLE_UNITS, spectable_units

if TYPE_CHECKING:
    from shared.spectra.ifu_cube import IfuCube

__all__ = ["TSO_TIME_COLUMNS", "WFSS_COMBINED_COLUMNS", "WFSS_SOURCE_COLUMNS", "IntegrationTimes", "exposure_group_id",
           "integration_times", "s3d_product", "wfss_c1d_product", "wfss_level3_x1d_product", "wfss_x1d_product", "x1d_product",
           "x1dints_product"]

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


#: The columns of a WFSS ``_x1d`` row that describe its source (the public
#: ``wfss_spectable``), after its spectrum's array columns and N_ALONGDISP.
WFSS_SOURCE_COLUMNS = (("SOURCE_TYPE", "S20"), ("SOURCE_XPOS", "<f8"), ("SOURCE_YPOS", "<f8"),
                       ("SOURCE_RA", "<f8"), ("SOURCE_DEC", "<f8"), ("EXTRACT2D_XSTART", "<u4"),
                       ("EXTRACT2D_YSTART", "<u4"), ("EXTRACT2D_XSTOP", "<u4"), ("EXTRACT2D_YSTOP", "<u4"))
_WFSS_UNITS = {"SOURCE_XPOS": "pix", "SOURCE_YPOS": "pix", "SOURCE_RA": "deg", "SOURCE_DEC": "deg",
               "EXTRACT2D_XSTART": "pix", "EXTRACT2D_YSTART": "pix", "EXTRACT2D_XSTOP": "pix", "EXTRACT2D_YSTOP": "pix"}


def exposure_group_id(keywords: Mapping[str, Any]) -> str:
    """The exposure's group id as the public pipeline forms it from the observation's
    keywords: ``jw<PROGRAM><OBSERVTN><VISIT>_<VISITGRP><SEQ_ID><ACT_ID>_<EXPOSURE>``.

    Raises
    ------
    ValueError
        One of them is missing."""
    names = ("PROGRAM", "OBSERVTN", "VISIT", "VISITGRP", "SEQ_ID", "ACT_ID", "EXPOSURE")
    missing = [k for k in names if keywords.get(k) is None]
    if missing:
        raise ValueError(f"no {', '.join(missing)} keyword(s) to name the exposure's group by")
    v = {k: str(keywords[k]) for k in names}
    return (f"jw{v['PROGRAM']}{v['OBSERVTN']}{v['VISIT']}_{v['VISITGRP']}{v['SEQ_ID']}{v['ACT_ID']}"
            f"_{v['EXPOSURE']}")


def wfss_x1d_product(spectra: Sequence[tuple[np.ndarray, Mapping[str, Any]]], header: Mapping[str, Any], *,
                     group_id: str, dispaxis: int) -> FitsProduct:
    """A WFSS exposure's ``_x1d`` as the public calwebb_spec2 writes it (a
    WFSSMultiSpecModel): one EXTRACT1D table per spectral order, in increasing order,
    whose row is a source (by increasing SOURCE_ID): its spectrum (a table of
    :data:`SPECTABLE_DTYPE`) in array columns, padded to the order's longest spectrum
    (NaN; DQ DO_NOT_USE), N_ALONGDISP its own length, and its source's columns
    (:data:`WFSS_SOURCE_COLUMNS`). ``spectra`` pairs each spectrum with its ``cards``:
    SPORDER, SOURCE_ID and the source's columns by name. Each table's cards: FILENAME of
    the exposure, EXPGRPID (``group_id`` and the order), DISPAXIS, SPORDER, EFFEXPTM and
    EFFINTTM from ``header``; the product's keywords ``header`` as for :func:`x1d_product`.

    Raises
    ------
    ValueError
        No spectra, or a spectrum without its SPORDER or SOURCE_ID."""
    if not spectra:
        raise ValueError("a WFSS _x1d needs at least one spectrum")
    by_order: dict[int, list[tuple[np.ndarray, Mapping[str, Any]]]] = {}
    for table, cards in spectra:
        if cards.get("SPORDER") is None or cards.get("SOURCE_ID") is None:
            raise ValueError("each WFSS spectrum needs its SPORDER and SOURCE_ID")
        by_order.setdefault(int(cards["SPORDER"]), []).append((table, cards))
    tables = []
    for order in sorted(by_order):
        rows = sorted(by_order[order], key=lambda pair: int(pair[1]["SOURCE_ID"]))
        n = max(len(t) for t, _ in rows)
        dtype = np.dtype([("SOURCE_ID", "<i4"),
                          *((name, SPECTABLE_DTYPE[name].str, (n,)) for name in SPECTABLE_DTYPE.names),
                          ("N_ALONGDISP", "<u4"), *WFSS_SOURCE_COLUMNS])
        out = np.zeros(len(rows), dtype)
        for name in SPECTABLE_DTYPE.names:
            out[name] = 1 if name == "DQ" else np.nan  # the padding: DO_NOT_USE, no value
        for i, (table, cards) in enumerate(rows):
            out["SOURCE_ID"][i] = int(cards["SOURCE_ID"])
            for name in SPECTABLE_DTYPE.names:
                out[name][i, : len(table)] = table[name]
            out["N_ALONGDISP"][i] = len(table)
            for name, _ in WFSS_SOURCE_COLUMNS:
                value = cards.get(name)
                if value is not None:
                    out[name][i] = value
        units = spectable_units(out)
        units.update({f"TUNIT{dtype.names.index(c) + 1}": u for c, u in _WFSS_UNITS.items()})
        own = {**units, "FILENAME": header.get("FILENAME"), "EXPGRPID": f"{group_id}_{order}",
               "DISPAXIS": int(dispaxis), "SPORDER": order, "EFFEXPTM": header.get("EFFEXPTM"),
               "EFFINTTM": header.get("EFFINTTM")}
        tables.append(SpectrumTable(out, {k: v for k, v in own.items() if v is not None}))
    product = FitsProduct(model_type="WFSSMultiSpecModel", spectra=tables)
    set_cards(product, _table_cards(header))
    return product


# the public wfss_spectable's values of a source an exposure has no spectrum of
_WFSS_ABSENT = {"SOURCE_TYPE": "", "SOURCE_XPOS": np.nan, "SOURCE_YPOS": np.nan, "SOURCE_RA": np.nan,
                "SOURCE_DEC": np.nan}


def _with_every_source(table: np.ndarray, source_ids: Sequence[int]) -> np.ndarray:
    """A WFSS ``_x1d`` table (:func:`wfss_x1d_product`'s) with a row for each of
    ``source_ids`` (increasing), those it has no spectrum of as the public schema fills
    them: no values (NaN), DQ DO_NOT_USE, N_ALONGDISP 0."""
    out = np.zeros(len(source_ids), table.dtype)
    for name in SPECTABLE_DTYPE.names:
        out[name] = 1 if name == "DQ" else np.nan
    for name, value in _WFSS_ABSENT.items():
        out[name] = value
    out["SOURCE_ID"] = source_ids
    where = {int(sid): i for i, sid in enumerate(source_ids)}
    out[[where[int(sid)] for sid in table["SOURCE_ID"]]] = table
    return out


def wfss_level3_x1d_product(exposures: Sequence[tuple[Sequence[tuple[np.ndarray, Mapping[str, Any]]],
                                                      Mapping[str, Any], str]],
                            header: Mapping[str, Any], *, dispaxis: int) -> FitsProduct:
    """A WFSS association's Level-3 ``_x1d`` as the public calwebb_spec3 writes it (a
    WFSSMultiSpecModel): one EXTRACT1D table per exposure and spectral order, laid out as
    an exposure's own (:func:`wfss_x1d_product`), in the order of ``exposures``, each with
    a row for every source any of them has (by increasing SOURCE_ID; an exposure's row of
    a source it has no spectrum of holds none). ``exposures``: each one's spectra (with
    their cards, as for :func:`wfss_x1d_product`), its keywords (FILENAME, EFFEXPTM,
    EFFINTTM) and its group id; ``header`` the product's keywords.

    Raises
    ------
    ValueError
        No exposure has a spectrum."""
    tables: list[SpectrumTable] = []
    for spectra, keywords, group_id in exposures:
        if spectra:
            tables += wfss_x1d_product(spectra, keywords, group_id=group_id, dispaxis=dispaxis).spectra
    if not tables:
        raise ValueError("a WFSS Level-3 _x1d needs at least one spectrum")
    source_ids = sorted({int(sid) for t in tables for sid in t.table["SOURCE_ID"]})
    product = FitsProduct(model_type="WFSSMultiSpecModel",
                          spectra=[SpectrumTable(_with_every_source(t.table, source_ids), t.keywords) for t in tables])
    set_cards(product, _table_cards(header))
    return product


#: The columns of a WFSS ``_c1d`` row (the public ``wfss_combinedspectable``): its source,
#: its combined spectrum (array columns), N_ALONGDISP and the source's type and sky position.
WFSS_COMBINED_COLUMNS = (("SOURCE_ID", "<i4"), ("WAVELENGTH", "<f8"), ("FLUX", "<f8"), ("ERROR", "<f8"),
                         ("SURF_BRIGHT", "<f8"), ("SB_ERROR", "<f8"), ("DQ", "<u4"), ("WEIGHT", "<f8"),
                         ("N_INPUT", "<f8"), ("N_ALONGDISP", "<u4"), ("SOURCE_TYPE", "S20"),
                         ("SOURCE_RA", "<f8"), ("SOURCE_DEC", "<f8"))
_COMBINED_ARRAYS = ("WAVELENGTH", "FLUX", "ERROR", "SURF_BRIGHT", "SB_ERROR", "DQ", "WEIGHT", "N_INPUT")
# a column of the combined table -> the spectable column it comes from (its unit too)
_COMBINED_FROM = {"WAVELENGTH": "WAVELENGTH", "FLUX": "FLUX", "ERROR": "FLUX_ERROR", "SURF_BRIGHT": "SURF_BRIGHT",
                  "SB_ERROR": "SB_ERROR", "DQ": "DQ"}


def wfss_c1d_product(spectra: Sequence[tuple[np.ndarray, np.ndarray, Mapping[str, Any]]], header: Mapping[str, Any],
                     *, dispaxis: int) -> FitsProduct:
    """A WFSS association's ``_c1d`` as the public calwebb_spec3 writes it (a
    WFSSMultiCombinedSpecModel): one COMBINE1D table per spectral order, in increasing
    order, whose row is a source (by increasing SOURCE_ID) with its combined spectrum in
    array columns padded to the order's longest (NaN; DQ DO_NOT_USE), N_ALONGDISP its own
    length. ``spectra``: each source's combined spectrum (a table of
    :data:`SPECTABLE_DTYPE`: FLUX_ERROR gives ERROR), how many exposures each element
    combines (N_INPUT) and its cards: SPORDER, SOURCE_ID, SOURCE_TYPE, SOURCE_RA,
    SOURCE_DEC. WEIGHT is the element's sum of inverse-variance weights, ``1 / ERROR^2``
    (0 where no exposure has it). Each table's cards: SPORDER and DISPAXIS; the product's
    keywords ``header`` as for :func:`x1d_product`.

    Raises
    ------
    ValueError
        No spectra, or a spectrum without its SPORDER or SOURCE_ID."""
    if not spectra:
        raise ValueError("a WFSS _c1d needs at least one combined spectrum")
    by_order: dict[int, list[tuple[np.ndarray, np.ndarray, Mapping[str, Any]]]] = {}
    for table, counts, cards in spectra:
        if cards.get("SPORDER") is None or cards.get("SOURCE_ID") is None:
            raise ValueError("each combined WFSS spectrum needs its SPORDER and SOURCE_ID")
        by_order.setdefault(int(cards["SPORDER"]), []).append((table, counts, cards))
    tables = []
    for order in sorted(by_order):
        rows = sorted(by_order[order], key=lambda one: int(one[2]["SOURCE_ID"]))
        n = max(len(t) for t, _, _ in rows)
        dtype = np.dtype([(name, kind, (n,)) if name in _COMBINED_ARRAYS else (name, kind)
                          for name, kind in WFSS_COMBINED_COLUMNS])
        out = np.zeros(len(rows), dtype)
        for name in _COMBINED_ARRAYS:
            out[name] = 1 if name == "DQ" else np.nan  # the padding: DO_NOT_USE, no value
        for i, (table, counts, cards) in enumerate(rows):
            m = len(table)
            for name, source in _COMBINED_FROM.items():
                out[name][i, :m] = table[source]
            err = np.asarray(table["FLUX_ERROR"], np.float64)
            used = np.asarray(counts) > 0
            with np.errstate(divide="ignore", invalid="ignore"):
                out["WEIGHT"][i, :m] = np.where(used & np.isfinite(err) & (err > 0), 1.0 / err**2, 0.0)
            out["N_INPUT"][i, :m] = counts
            out["N_ALONGDISP"][i] = m
            out["SOURCE_ID"][i] = int(cards["SOURCE_ID"])
            out["SOURCE_TYPE"][i] = str(cards.get("SOURCE_TYPE") or "")
            for name in ("SOURCE_RA", "SOURCE_DEC"):
                out[name][i] = np.nan if cards.get(name) is None else float(cards[name])
        units = {f"TUNIT{dtype.names.index(c) + 1}": SPECTABLE_UNITS[source] for c, source in _COMBINED_FROM.items()
                 if source in SPECTABLE_UNITS}
        units |= {f"TUNIT{dtype.names.index(c) + 1}": "deg" for c in ("SOURCE_RA", "SOURCE_DEC")}
        tables.append(SpectrumTable(out, {**units, "SPORDER": order, "DISPAXIS": int(dispaxis)}, COMBINED_EXTNAME))
    product = FitsProduct(model_type="WFSSMultiCombinedSpecModel", spectra=tables)
    set_cards(product, _table_cards(header))
    return product


_ARCSEC_PER_RAD = 206264.80624709636
# the WCS of an image the cube's header must not carry over (the cube has its own)
_IMAGE_WCS = ("A_", "B_", "AP_", "BP_", "CTYPE", "CRPIX", "CRVAL", "CDELT", "CUNIT", "PC", "CD", "WCSAXES")


def s3d_product(cube: IfuCube, header: Mapping[str, Any]) -> FitsProduct:
    """The ``_s3d``: an IFUCubeModel (SCI, ERR, DQ, WMAP) with the cube's FITS WCS
    (``RA---TAN``, ``DEC--TAN``, ``WAVE``), its channel and band, photometry keywords and
    S_REGION (the cube's spatial extent) over ``header``."""
    r = cube.result
    product = FitsProduct(model_type="IFUCubeModel", images={
        "SCI": r.sci, "ERR": np.sqrt(r.var).astype(np.float32), "DQ": r.dq, "WMAP": r.weight},
        hdu_keywords={"ERR": {"BUNIT": "MJy/sr"}})
    area_a2 = cube.grid.spaxel**2
    cards = {k: v for k, v in header.items() if not k.startswith(_IMAGE_WCS)}
    g = cube.grid
    ra, dec = g.cube_to_sky(np.array([-0.5, g.nx - 0.5, g.nx - 0.5, -0.5]), np.array([-0.5, -0.5, g.ny - 0.5, g.ny - 0.5]))
    set_cards(product, {**cards, "CHANNEL": str(cube.channel), "BAND": cube.band, "BUNIT": "MJy/sr",
                        "PIXAR_A2": area_a2, "PIXAR_SR": area_a2 / _ARCSEC_PER_RAD**2, **g.fits_cards(),
                        "S_REGION": s_region_keyword(list(zip(ra.tolist(), dec.tolist(), strict=True)))})
    return product
