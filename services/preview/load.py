"""Read a product file into what a preview needs (the I/O adapter of the preview steps).

FITS products are opened with astropy (memory-mapped where the data allow): the SCI array and its DQ, the SCI
header's celestial WCS, and the identification keywords for the subtitle. Of a 4-D ramp
(``uncal``, ``ramp``) only the first and last group of integration 1 are read, so a 2 GB
segment costs two frames of memory. Spectra come from the EXTRACT1D table(s) (a time series of
spectra, ``x1dints``, also as one (integration, wavelength) array per slit or order), light
curves from the ECSV table (a white-light table's flux columns each with its detector's times),
the pointing jitter of a fine-guide product (``gs-fg``) from its
``FGS Centroid Packet`` table. Anything unreadable raises :class:`UnreadableProductError` saying what
is wrong; retrying cannot help.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table
from astropy.time import Time
from astropy.wcs import WCS

from services.preview.steps.display import IMAGE_SUFFIXES
from shared.naming import BadNameError, parse_any

__all__ = [
    "LIGHTCURVE_SUFFIXES",
    "SPECTRUM_SUFFIXES",
    "Column",
    "ImageSource",
    "JitterSource",
    "LightCurveSource",
    "SpectralSeries",
    "SpectrumSource",
    "UnreadableProductError",
    "load_source",
    "suffix_of",
]

SPECTRUM_SUFFIXES = frozenset({"x1d", "x1dints", "c1d"})
LIGHTCURVE_SUFFIXES = frozenset({"phot", "whtlt"})
JITTER_SUFFIXES = frozenset({"gs-fg", "gs-fg-cal"})
CENTROID_TABLE = "FGS Centroid Packet"

#: Time columns of a light-curve table, in order of preference.
TIME_COLUMNS = ("BJD_TDB", "MJD_UTC", "MJD", "time", "TIME", "JD")
#: A white-light flux column of the public ``_whtlt`` table: ``whitelight_flux``, with
#: ``_order_<N>`` when there are several orders and ``_<detector>`` when several detectors
#: (or NIRSpec); that detector's times are ``BJD_TDB_<detector>`` and ``MJD_UTC_<detector>``.
WHITELIGHT = re.compile(r"^whitelight_flux(?:_order_(?P<order>-?\d+))?(?P<detector>_.+)?$")
#: Mid-time columns of an ``x1dints`` EXTRACT1D table (MJD), in order of preference.
SPECTRUM_TIME_COLUMNS = ("TDB-MID", "MJD-AVG")
#: Flux columns of a light-curve table, in order of preference (``<name>_err`` is its error).
FLUX_COLUMNS = ("net_aperture_sum", "whitelight_flux", "flux", "aperture_sum")


class UnreadableProductError(ValueError):
    """A product file a preview cannot be made from; the message names the file and why."""


@dataclass(frozen=True)
class ImageSource:
    """An imaging-like product: SCI (2-D, 3-D, or a 4-D ramp cut to its first and last group
    of integration 1), DQ and group DQ when present, the celestial WCS of SCI if any."""

    suffix: str | None
    sci: np.ndarray
    dq: np.ndarray | None = None
    groupdq: np.ndarray | None = None
    wcs: WCS | None = None
    bunit: str | None = None
    info: str = ""
    # a 2-D spectrum (``_s2d``): turned so that the dispersion runs along x, wavelength
    # increasing to the right; the wavelength (um) of each column. An IFU cube (``_s3d``):
    # the wavelength (um) of each plane, from its WCS
    wavelength: np.ndarray | None = None


@dataclass(frozen=True)
class Column:
    """One table column: values (1-D, or 2-D for one spectrum per row) and its unit."""

    name: str
    values: np.ndarray
    unit: str | None = None


@dataclass(frozen=True)
class SpectralSeries:
    """One spectrum (slit, order) over integrations: ``wavelength``, ``flux`` and ``dq``
    (nints, nwave), one row per integration; ``integration`` (INT_NUM) and ``time`` (mid-time,
    MJD, from the ``time_name`` column) per row when the product has them."""

    label: str
    wavelength: np.ndarray
    flux: np.ndarray
    dq: np.ndarray | None = None
    integration: np.ndarray | None = None
    time: np.ndarray | None = None
    time_name: str | None = None
    flux_unit: str | None = None


@dataclass(frozen=True)
class SpectrumSource:
    """Extracted spectra: one entry per EXTRACT1D table, or per row of a table whose
    columns are arrays (one integration per row). A time series of spectra (``x1dints``)
    also has them as ``series``: one :class:`SpectralSeries` per slit or order."""

    suffix: str | None
    wavelength: list[Column]
    flux: list[Column]
    error: list[Column | None]
    dq: list[np.ndarray | None]
    labels: list[str]
    info: str = ""
    series: tuple[SpectralSeries, ...] = ()


@dataclass(frozen=True)
class LightCurveSource:
    """A light curve: a time column and one or more flux columns with optional errors."""

    suffix: str | None
    time: Column
    fluxes: list[Column]
    errors: list[Column | None] = field(default_factory=list)
    info: str = ""
    # the time of each flux column when they differ (a white-light table's detectors have
    # their own); empty: ``time`` for all
    times: list[Column] = field(default_factory=list)


@dataclass(frozen=True)
class JitterSource:
    """The guide star's measured position over time: ``seconds`` since ``start`` (ISO UTC),
    ``x``/``y`` its position in the FGS ideal frame (arcsec), ``good`` the samples without
    a quality flag."""

    suffix: str | None
    start: str
    seconds: np.ndarray
    x: np.ndarray
    y: np.ndarray
    good: np.ndarray
    info: str = ""


Source = ImageSource | SpectrumSource | LightCurveSource | JitterSource


def suffix_of(filename: str) -> str | None:
    """The product suffix of a JWST file name (``..._rate.fits`` -> ``rate``), else the last
    ``_``-separated word of the stem, else None."""
    try:
        return parse_any(filename).suffix
    except (BadNameError, AttributeError):
        stem = Path(filename).name.split(".", 1)[0]
        return stem.rsplit("_", 1)[-1].lower() if "_" in stem else None


def load_source(path: str | Path, suffix: str | None = None) -> Source:
    """Read ``path`` into an image, spectrum or light-curve source.

    ``suffix`` (default: from the file name) decides which; a suffix this module does not
    know is decided by content (an EXTRACT1D table: spectrum; an SCI array: image; ECSV:
    light curve).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    suffix = suffix or suffix_of(path.name)
    if suffix in LIGHTCURVE_SUFFIXES or (suffix not in SPECTRUM_SUFFIXES and suffix not in IMAGE_SUFFIXES
                                         and path.name.lower().endswith(".ecsv")):
        return _load_lightcurve(path, suffix)
    return _load_fits(path, suffix)


def _info(header: fits.Header) -> str:
    parts = [header.get(k) for k in ("INSTRUME", "DETECTOR", "FILTER", "PUPIL", "GRATING", "EXP_TYPE")]
    return " ".join(str(p) for p in parts if p not in (None, "", "N/A", "NONE"))


def _load_fits(path: Path, suffix: str | None) -> Source:
    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with fits.open(path) as hdul:
                info = _info(hdul[0].header)
                names = [h.name for h in hdul]
                if suffix in JITTER_SUFFIXES:
                    return _jitter(hdul, path, suffix, info)
                if suffix in SPECTRUM_SUFFIXES or (suffix not in IMAGE_SUFFIXES and "EXTRACT1D" in names):
                    return _spectra(hdul, path, suffix, info)
                return _image(hdul, path, suffix, info)
    except UnreadableProductError:
        raise
    except Exception as exc:  # astropy raises OSError, TypeError, ValueError... on bad files
        hint = "; ".join(sorted({str(w.message) for w in caught if "truncated" in str(w.message)}))
        raise UnreadableProductError(
            f"{path.name}: not a readable FITS product ({type(exc).__name__}: {exc})" + (f" [{hint}]" if hint else "")
        ) from exc


def _jitter(hdul: fits.HDUList, path: Path, suffix: str | None, info: str) -> JitterSource:
    if CENTROID_TABLE.upper() not in [h.name.upper() for h in hdul]:
        raise UnreadableProductError(f"{path.name}: fine-guide product without a {CENTROID_TABLE!r} table")
    table = hdul[CENTROID_TABLE].data
    missing = {"centroid_time", "guide_star_position_x", "guide_star_position_y", "data_quality"} - set(
        table.names if table is not None else ())
    if table is None or missing or len(table) == 0:
        raise UnreadableProductError(f"{path.name}: the {CENTROID_TABLE!r} table has no centroids"
                                     + (f" (missing columns {', '.join(sorted(missing))})" if missing else ""))
    try:
        times = Time([str(t).strip() for t in table["centroid_time"]], format="isot", scale="utc")
    except ValueError as exc:
        raise UnreadableProductError(f"{path.name}: centroid times are not ISO times ({exc})") from exc
    seconds = np.asarray((times - times[0]).sec, dtype=np.float64)
    return JitterSource(
        suffix=suffix, start=times[0].isot, seconds=seconds,
        x=np.asarray(table["guide_star_position_x"], dtype=np.float64),
        y=np.asarray(table["guide_star_position_y"], dtype=np.float64),
        good=np.asarray(table["data_quality"]) == 0, info=info,
    )


def _celestial_wcs(header: fits.Header) -> WCS | None:
    if "CTYPE1" not in header:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # FITSFixedWarning: DATE-OBS/MJD fixes etc.
            wcs = WCS(header, naxis=2)
    except Exception:
        return None
    return wcs if wcs.has_celestial and wcs.naxis == 2 else None


def _image(hdul: fits.HDUList, path: Path, suffix: str | None, info: str) -> ImageSource:
    if "SCI" not in hdul or hdul["SCI"].header.get("NAXIS", 0) == 0:
        raise UnreadableProductError(f"{path.name}: has no SCI image array")
    hdu = hdul["SCI"]
    ndim = hdu.header["NAXIS"]
    groupdq = None
    if ndim == 4:
        # (1, 2, ny, nx), first and last group of integration 1: all display_image uses
        groups = (0, -1) if hdu.header["NAXIS3"] > 1 else (0,)
        sec = hdu.section
        sci = np.stack([sec[0, g] for g in groups])[None]
        dq = np.asarray(hdul["PIXELDQ"].data) if "PIXELDQ" in hdul else None
        if "GROUPDQ" in hdul:
            gsec = hdul["GROUPDQ"].section
            groupdq = np.stack([gsec[0, g] for g in groups])[None]
    else:
        sci = np.asarray(hdu.data)
        dq = np.asarray(hdul["DQ"].data) if "DQ" in hdul and hdul["DQ"].data is not None else None
    if suffix == "s2d" and ndim == 2 and "WAVELENGTH" in hdul and hdul["WAVELENGTH"].data is not None:
        return _spectral_image(sci, dq, np.asarray(hdul["WAVELENGTH"].data, np.float64), hdu.header, suffix, info)
    if suffix == "s3d" and ndim == 3:
        return ImageSource(suffix=suffix, sci=sci, dq=dq, wcs=_celestial_wcs(hdu.header), bunit=hdu.header.get("BUNIT"),
                           info=info, wavelength=_cube_wavelengths(hdu.header, sci.shape[0]))
    return ImageSource(
        suffix=suffix, sci=sci, dq=dq, groupdq=groupdq, wcs=_celestial_wcs(hdu.header),
        bunit=hdu.header.get("BUNIT"), info=info,
    )


def _cube_wavelengths(header: fits.Header, n: int) -> np.ndarray | None:
    """The wavelength (um) of each plane of a cube from its linear WAVE axis (CRVAL3,
    CDELT3, CRPIX3, CUNIT3 um or m); None when it has none."""
    if str(header.get("CTYPE3", "")).strip().upper() != "WAVE" or "CDELT3" not in header:
        return None
    scale = {"UM": 1.0, "MICRON": 1.0, "M": 1e6}.get(str(header.get("CUNIT3", "um")).strip().upper())
    if scale is None:
        return None
    i = np.arange(n, dtype=np.float64) + 1.0
    return scale * (float(header.get("CRVAL3", 0.0)) + (i - float(header.get("CRPIX3", 1.0))) * float(header["CDELT3"]))


def _spectral_image(sci: np.ndarray, dq: np.ndarray | None, wavelength: np.ndarray, header: fits.Header,
                    suffix: str | None, info: str) -> ImageSource:
    """A 2-D spectrum with its WAVELENGTH array: the dispersion axis (DISPAXIS: 1 along x,
    2 along y) laid along x, wavelength increasing to the right."""
    if wavelength.shape != sci.shape:
        raise UnreadableProductError(f"WAVELENGTH of shape {wavelength.shape} for SCI of {sci.shape}")
    if int(header.get("DISPAXIS", 1)) == 2:
        sci, wavelength = sci.T, wavelength.T
        dq = dq.T if dq is not None else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # columns off the slit are all NaN
        per_column = np.nanmedian(np.where(wavelength > 0, wavelength, np.nan), axis=0)
    if np.count_nonzero(np.isfinite(per_column)) >= 2:
        first, last = np.flatnonzero(np.isfinite(per_column))[[0, -1]]
        if per_column[last] < per_column[first]:
            sci, per_column = sci[:, ::-1], per_column[::-1]
            dq = dq[:, ::-1] if dq is not None else None
    return ImageSource(suffix=suffix, sci=np.ascontiguousarray(sci), dq=None if dq is None else np.ascontiguousarray(dq),
                       bunit=header.get("BUNIT"), info=info, wavelength=per_column)


def _unit(hdu: fits.BinTableHDU, name: str) -> str | None:
    unit = hdu.columns[name].unit
    return (str(unit).strip() or None) if unit is not None else None


def _spectra(hdul: fits.HDUList, path: Path, suffix: str | None, info: str) -> SpectrumSource:
    # a _c1d's combined spectra are COMBINE1D tables, their error column ERROR
    tables = [h for h in hdul if h.name in ("EXTRACT1D", "COMBINE1D") and isinstance(h, fits.BinTableHDU)]
    if not tables:
        raise UnreadableProductError(f"{path.name}: has no EXTRACT1D table")
    out = SpectrumSource(suffix=suffix, wavelength=[], flux=[], error=[], dq=[], labels=[], info=info)
    # a time series: by its suffix, or (a file named otherwise) by its data model
    tso = suffix == "x1dints" or (suffix not in SPECTRUM_SUFFIXES
                                  and hdul[0].header.get("DATAMODL") == "TSOMultiSpecModel")
    series: list[SpectralSeries] = []
    single: dict[str, list[tuple[fits.BinTableHDU, int]]] = {}  # per-integration tables, by spectrum
    for i, hdu in enumerate(tables, start=1):
        data = hdu.data
        cols = set(hdu.columns.names)
        if data is None or not {"WAVELENGTH", "FLUX"} <= cols:
            raise UnreadableProductError(f"{path.name}: EXTRACT1D #{i} lacks WAVELENGTH or FLUX")
        wave, flux = np.asarray(data["WAVELENGTH"]), np.asarray(data["FLUX"])
        err_name = "FLUX_ERROR" if "FLUX_ERROR" in cols else "ERROR"
        err = np.asarray(data[err_name]) if err_name in cols else None
        dq = np.asarray(data["DQ"]) if "DQ" in cols else None
        label = _spectrum_label(hdu.header, i)
        if tso and len(data) == 0:
            raise UnreadableProductError(f"{path.name}: EXTRACT1D #{i} ({label}) has no rows: "
                                         "no integration was extracted")
        if tso and wave.ndim == 2:  # array columns: one row per integration (the public layout)
            series.append(_series(data, cols, label, _unit(hdu, "FLUX")))
        elif tso:  # an older layout: one EXTRACT1D table per integration
            single.setdefault(_spectrum_label(hdu.header, None), []).append((hdu, i))
        rows = range(wave.shape[0]) if wave.ndim == 2 else [None]
        for r in rows:
            out.wavelength.append(Column("WAVELENGTH", _row(wave, r), _unit(hdu, "WAVELENGTH")))
            out.flux.append(Column("FLUX", _row(flux, r), _unit(hdu, "FLUX")))
            out.error.append(Column(err_name, _row(err, r), _unit(hdu, err_name)) if err is not None else None)
            out.dq.append(_row(dq, r))
            out.labels.append(label if r is None else f"{label} row {r + 1}")
    series += [_stacked(members, label) for label, members in single.items()]
    return replace(out, series=tuple(series))


def _series_times(columns: dict[str, np.ndarray]) -> tuple[np.ndarray | None, str | None]:
    """The mid-times of the integrations: the first of :data:`SPECTRUM_TIME_COLUMNS` known
    for every one, else the first that is there at all."""
    present = [(name, np.asarray(columns[name], np.float64)) for name in SPECTRUM_TIME_COLUMNS if name in columns]
    for name, values in present:
        if np.isfinite(values).all():
            return values, name
    return (present[0][1], present[0][0]) if present else (None, None)


def _series(data: fits.FITS_rec, cols: set[str], label: str, flux_unit: str | None) -> SpectralSeries:
    """A table with array columns as a time series (the public ``tso_spectable`` layout)."""
    scalars = {name: data[name] for name in ("INT_NUM", *SPECTRUM_TIME_COLUMNS) if name in cols}
    time, time_name = _series_times(scalars)
    return SpectralSeries(
        label=label, wavelength=np.asarray(data["WAVELENGTH"], np.float64), flux=np.asarray(data["FLUX"], np.float64),
        dq=np.asarray(data["DQ"]) if "DQ" in cols else None,
        integration=np.asarray(scalars["INT_NUM"], np.int64) if "INT_NUM" in scalars else None,
        time=time, time_name=time_name, flux_unit=flux_unit,
    )


def _stacked(members: list[tuple[fits.BinTableHDU, int]], label: str) -> SpectralSeries:
    """Tables of one spectrum per integration (INT_NUM and mid-times in their headers) as a
    time series; shorter spectra are padded with NaN."""
    n = max(len(hdu.data) for hdu, _ in members)

    def stack(name: str, fill: float) -> np.ndarray:
        out = np.full((len(members), n), fill, dtype=np.float64)
        for row, (hdu, _) in enumerate(members):
            values = np.asarray(hdu.data[name], np.float64)
            out[row, :values.size] = values
        return out

    headers = {name: [hdu.header.get(name) for hdu, _ in members] for name in ("INT_NUM", *SPECTRUM_TIME_COLUMNS)}
    known = {name: np.asarray(v, np.float64) for name, v in headers.items() if all(x is not None for x in v)}
    time, time_name = _series_times({k: v for k, v in known.items() if k != "INT_NUM"})
    has_dq = all("DQ" in hdu.columns.names for hdu, _ in members)
    first = members[0][0]
    return SpectralSeries(
        label=label or _spectrum_label(first.header, members[0][1]),
        wavelength=stack("WAVELENGTH", np.nan), flux=stack("FLUX", np.nan),
        dq=stack("DQ", 0).astype(np.uint32) if has_dq else None,
        integration=known["INT_NUM"].astype(np.int64) if "INT_NUM" in known else None,
        time=time, time_name=time_name, flux_unit=_unit(first, "FLUX"),
    )


def _row(array: np.ndarray | None, row: int | None) -> np.ndarray | None:
    return array if array is None or row is None else array[row]


def _spectrum_label(header: fits.Header, index: int | None) -> str:
    """The spectrum's slit, source and order from its header, else ``spectrum <index>``
    (else "" when ``index`` is None)."""
    parts = []
    for key, fmt in (("SLTNAME", "{}"), ("SOURCEID", "source {}"), ("SPORDER", "order {}")):
        if header.get(key) not in (None, ""):
            parts.append(fmt.format(header[key]))
    return ", ".join(parts) or (f"spectrum {index}" if index is not None else "")


def _load_lightcurve(path: Path, suffix: str | None) -> LightCurveSource:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            table = Table.read(path, format="ascii.ecsv")
    except Exception as exc:
        raise UnreadableProductError(f"{path.name}: not a readable ECSV table ({type(exc).__name__}: {exc})") from exc
    meta = table.meta or {}
    info = " ".join(str(meta[k]) for k in ("instrument", "detector", "filter", "pupil", "grating", "exp_type")
                    if meta.get(k) not in (None, "", "N/A"))
    if suffix == "whtlt" or any(WHITELIGHT.match(c) for c in table.colnames):
        return _whitelight(table, path, suffix, info)
    present = [c for c in TIME_COLUMNS if c in table.colnames]
    # the first with values: a table whose BJD_TDB are unknown (NaN) is shown against MJD
    time_name = next((c for c in present if np.isfinite(_table_column(table, c).values).any()),
                     present[0] if present else None)
    if time_name is None:
        raise UnreadableProductError(
            f"{path.name}: light curve has no time column (one of {', '.join(TIME_COLUMNS)})"
        )
    fluxes = [c for c in FLUX_COLUMNS if c in table.colnames][:1]
    if not fluxes:
        raise UnreadableProductError(
            f"{path.name}: light curve has no flux column (one of {', '.join(FLUX_COLUMNS)})"
        )
    return LightCurveSource(
        suffix=suffix,
        time=_table_column(table, time_name),
        fluxes=[_table_column(table, c) for c in fluxes],
        errors=[_table_column(table, f"{c}_err") if f"{c}_err" in table.colnames else None for c in fluxes],
        info=info,
    )


def _whitelight(table: Table, path: Path, suffix: str | None, info: str) -> LightCurveSource:
    """The public ``_whtlt`` table: every ``whitelight_flux[_order_N][_<detector>]`` column,
    each against its detector's times: BJD_TDB when every column has some, else MJD_UTC."""
    fluxes = [c for c in table.colnames if WHITELIGHT.match(c) and not c.endswith("_err")]
    if not fluxes:
        raise UnreadableProductError(
            f"{path.name}: white-light table has no flux column (whitelight_flux, or whitelight_flux_order_<N> / "
            f"whitelight_flux_<detector>); its columns are {', '.join(table.colnames) or 'none'}"
        )
    flux_columns = [_table_column(table, c) for c in fluxes]
    if not any(np.isfinite(f.values).any() for f in flux_columns):
        raise UnreadableProductError(f"{path.name}: no white-light flux value is finite (all {len(table)} rows NaN)")
    for base in TIME_COLUMNS:
        names = [_detector_time(table, base, WHITELIGHT.match(c).group("detector") or "") for c in fluxes]
        if all(names) and all(np.isfinite(_table_column(table, n).values).any() for n in names):
            times = [_table_column(table, n) for n in names]
            break
    else:
        raise UnreadableProductError(
            f"{path.name}: white-light table has no time column with values (BJD_TDB or MJD_UTC, with the "
            "flux column's _<detector> suffix when it has one)"
        )
    return LightCurveSource(suffix=suffix, time=times[0], fluxes=flux_columns,
                            errors=[_table_column(table, f"{c}_err") if f"{c}_err" in table.colnames else None
                                    for c in fluxes],
                            info=info, times=times)


def _detector_time(table: Table, base: str, detector: str) -> str | None:
    """``<base><detector>`` (e.g. ``BJD_TDB_nrs1``) if the table has it, else ``<base>``, else None."""
    for name in (f"{base}{detector}", base):
        if name in table.colnames:
            return name
    return None


def _table_column(table: Table, name: str) -> Column:
    col = table[name]
    if isinstance(col, Time):
        return Column(name, np.asarray(col.mjd, dtype=np.float64), "d")
    unit = getattr(col, "unit", None)
    if hasattr(col, "filled"):  # masked entries become NaN, then are left out of the plot
        col = col.filled(np.nan)
    values = np.asarray(getattr(col, "value", col), dtype=np.float64)
    return Column(name, values, str(unit) if unit is not None else None)
