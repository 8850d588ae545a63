"""Reading reference files for a pipeline run, and where they come from.

:func:`load_reference` checks one file in its public format and returns a
:class:`Reference`: its tables and primary header, and its image extensions read when a
step asks for them, cut to the science window (memory-mapped and unscaled, so only the
window's rows of a full-frame reference are read and BZERO/BSCALE apply to that part
alone); for the ASDF types (DISTORTION, FILTEROFFSET) the entries of the tree the type
carries, with the ``meta`` as header. :data:`FORMATS` says what each type carries.

A *reference provider* chooses the file of each type for an exposure:
:class:`CatalogReferences` asks the catalog (the current context, or a named one) and
keeps the files in a local cache; :class:`LocalReferences` takes files given by type and
otherwise the best match in a directory, by the same selection rules (``dms run``).
:func:`load_references` asks a provider for a pipeline's types and checks what it chose.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from astropy.io import fits

from shared.instruments import NIRSPEC_FIXED_SLITS, UnknownInstrumentError, detector
from shared.refdata.errors import HeaderError, ReferenceFileError
from shared.refdata.files import is_asdf, read_json_reference, reference_header
from shared.refdata.local import choose_local_references
from shared.refdata.window import Window

__all__ = [
    "FORMATS",
    "CatalogReferences",
    "LocalReferences",
    "ReferenceChoice",
    "ReferenceFormat",
    "Reference",
    "ReferenceProvider",
    "References",
    "load_reference",
    "load_references",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReferenceFormat:
    """What a reference type carries: image extensions (cut to the window), tables, and
    the extension (image or table) without which the file is unusable (None: the
    primary header alone is the reference; a tuple: any one of them will do). A type with ``tree`` entries is an ASDF file
    (the public pipeline's ``DistortionModel``, ...): those entries of its tree are read,
    the ``required`` one must be there, and its ``meta`` stands for the header."""

    images: tuple[str, ...] = ()
    tables: tuple[str, ...] = ()
    required: str | tuple[str, ...] | None = None
    tree: tuple[str, ...] = ()
    arrays: tuple[str, ...] = ()  # image extensions that are not of the detector: read whole, every EXTVER
    document: bool = False  # a JSON file (the public MSAOPER): its entries are the tree, ``required`` one of them

    def lacks_required(self, present) -> bool:
        """Whether none of the extensions ``present`` is the required one (or one of them)."""
        if self.required is None:
            return False
        wanted = (self.required,) if isinstance(self.required, str) else self.required
        return not any(name in present for name in wanted)

    @property
    def required_text(self) -> str:
        return self.required if isinstance(self.required, str) else " or ".join(self.required or ())


FORMATS: dict[str, ReferenceFormat] = {
    "mask": ReferenceFormat(images=("DQ",), required="DQ"),
    "saturation": ReferenceFormat(images=("SCI", "DQ"), required="SCI"),
    "superbias": ReferenceFormat(images=("SCI", "DQ"), required="SCI"),
    "linearity": ReferenceFormat(images=("COEFFS", "DQ"), required="COEFFS"),
    "dark": ReferenceFormat(images=("SCI", "DQ", "AVDRKCUR"), required="SCI"),
    "gain": ReferenceFormat(images=("SCI",), required="SCI"),
    "readnoise": ReferenceFormat(images=("SCI",), required="SCI"),
    "flat": ReferenceFormat(images=("SCI", "DQ", "ERR"), required="SCI"),
    "fringe": ReferenceFormat(images=("SCI", "DQ", "ERR"), required="SCI"),
    "area": ReferenceFormat(images=("SCI",), required="SCI"),
    # PHOTOM: a table of rows by FILTER/PUPIL/... (imaging, slits), or the MIRI MRS's
    # conversion per pixel (the public MirMrsPhotomModel's SCI, (MJy/sr) / (DN/s)).
    "photom": ReferenceFormat(images=("SCI",), tables=("PHOTOM",), required=("PHOTOM", "SCI")),
    # WFSS's dispersed sky (the public WfssBkgModel): its normalised pattern on the detector.
    "wfssbkg": ReferenceFormat(images=("SCI", "DQ", "ERR"), required="SCI"),
    # Slit spectroscopy: the trace and wavelengths (MIRI LRS: FITS WAVETABLE, the slit's
    # reference point and corners in the header; NIRSpec: a table of the same layout per
    # fixed slit, named after it, those cards in its own header), and the point-source
    # slit losses (a grid per wavelength; the grid's axes in the PATHLOSS header, see
    # table_headers).
    # A NIRSpec MOS SPECWCS: one shutter's trace (SHUTTER) and the MSA's geometry in its
    # header (shared.spectra.msa).
    # NIRCam's grism (the public NIRCAMGrismModel, an ASDF file): per spectral order the
    # transforms of the dispersion model (shared.spectra.grism).
    # The MIRI MRS's (the public SpecwcsModel, ASDF): per slice its wavelength model
    # (``model``, in the order of ``slices``; shared.spectra.ifu).
    "specwcs": ReferenceFormat(tables=("WAVETABLE", "SHUTTER", *NIRSPEC_FIXED_SLITS),
                               required=("WAVETABLE", "SHUTTER", *NIRSPEC_FIXED_SLITS, "displ", "model"),
                               tree=("orders", "displ", "dispx", "dispy", "invdispl", "invdispx", "invdispy",
                                     "fwcpos_ref", "model", "slices")),
    # NIRISS SOSS (the public SpecTraceModel): one table per spectral order, EXTNAME ORDER,
    # EXTVER and the card ORDER its number (WAVELENGTH, X, Y, THROUGHPUT, TILT; X and Y
    # 0-based in the SUBSTRIP window): read whole, every order.
    "spectrace": ReferenceFormat(arrays=("ORDER",), required="ORDER"),
    # NIRSpec's MSA shutters that failed open or closed: the public JSON document.
    "msaoper": ReferenceFormat(document=True, required="msaoper"),
    # NIRSpec's PATHLOSS (the public PathlossModel): per aperture (EXTVER) a point-source
    # cube PS and a uniform-source vector UNI, each with its own cards (APERTURE, the WCS).
    "pathloss": ReferenceFormat(tables=("PATHLOSS",), arrays=("PS", "UNI"), required=("PATHLOSS", "PS")),
    # MIRI RSCD: the public RSCD_GROUP_SKIP table (what jwst reads) and this project's
    # RSCD_DECAY (SUBARRAY, READPATT, SCALE, TAU, LEVEL_MAX; services/detector1/steps/rscd.py).
    "rscd": ReferenceFormat(tables=("RSCD_GROUP_SKIP", "RSCD_DECAY"), required="RSCD_GROUP_SKIP"),
    # ASDF: the transform from full-frame pixels to V2/V3 (shared.imaging_wcs), and the
    # filter-dependent pixel shifts (a list of {filter, [pupil,] column_offset, row_offset}).
    # The MIRI MRS's (the public DistortionMRSModel): per slice its alpha, beta and inverse
    # models, the slice widths and each channel's (alpha, beta) -> (V2, V3) (shared.spectra.ifu).
    "distortion": ReferenceFormat(tree=("model", "slices", "alpha_model", "beta_model", "x_model", "y_model", "bzero",
                                        "bdel", "abv2v3_model"), required=("model", "alpha_model")),
    # The MIRI MRS's slice of each pixel at nine throughput levels (the public RegionsModel).
    "regions": ReferenceFormat(tree=("regions",), required="regions"),
    # The MIRI MRS's cube parameters per channel and band (the public MiriIFUCubeParsModel).
    "cubepar": ReferenceFormat(tables=("CUBEPAR",), required="CUBEPAR"),
    "filteroffset": ReferenceFormat(tree=("filters",), required="filters"),
    # ASDF, the public WavelengthrangeModel: the ranges (``wavelengthrange``), the names
    # they go with (``waverange_selector``: NIRSpec's FILTER_GRATING), their spectral
    # orders, and the ``meta`` whose ``wavelength_units`` says what the ranges are in.
    # WFSS's also lists the orders to extract per filter (``extract_orders``).
    "wavelengthrange": ReferenceFormat(tree=("wavelengthrange", "waverange_selector", "order", "extract_orders", "meta"),
                                       required="wavelengthrange"),
    # source_catalog: the APCORR table (FITS, as CRDS has them) and the ABVEGAOFFSET
    # table (an ASDF file, the tree's abvega_offset, as CRDS has them).
    "apcorr": ReferenceFormat(tables=("APCORR",), required="APCORR"),
    "abvegaoffset": ReferenceFormat(tables=("abvega_offset",), required="abvega_offset"),
}


def _scaled(raw: np.ndarray, header) -> np.ndarray:
    """Apply BSCALE/BZERO to a section of unscaled data, keeping integer types integer,
    in native byte order (the kernels then never byte-swap on the fly)."""
    bzero, bscale = header.get("BZERO", 0), header.get("BSCALE", 1)
    if bzero == 0 and bscale == 1:
        return np.array(raw, dtype=raw.dtype.newbyteorder("="))
    bits = raw.dtype.itemsize * 8
    if bscale == 1 and raw.dtype.kind == "i" and bzero == 2 ** (bits - 1):
        return (raw.astype(np.int64) + int(bzero)).astype(f"uint{bits}")
    return (raw * bscale + bzero).astype(np.float32)


class Reference:
    """A checked reference file of one type whose image extensions are read when a step
    first asks for them (:meth:`get`), cut to the science window, and forgotten again by
    :meth:`release`: the runner releases a step's references when the step ends, so a run
    holds only the references of the step at hand. Tables and the primary header are read
    when the file is checked."""

    def __init__(self, reftype: str, path: Path, window: Window, full_shape: tuple[int, int],
                 header: dict[str, Any], tables: dict[str, np.ndarray], images: tuple[str, ...],
                 tree: dict[str, Any] | None = None, table_headers: dict[str, dict[str, Any]] | None = None,
                 arrays: dict[str, list[tuple[dict[str, Any], np.ndarray]]] | None = None):
        self.reftype = reftype
        self.path = path
        self.filename = path.name
        self.window = window
        self.full_shape = full_shape
        self.header = header
        self.tables = tables
        self._images = images  # the image extensions the file has, of those its type carries
        self.tree = tree or {}  # an ASDF reference's entries its type carries (e.g. "model")
        self.table_headers = table_headers or {}  # each table's own cards (not its column layout)
        # whole arrays that are not detector images, per EXTNAME: (own cards, data) per EXTVER
        self.arrays = arrays or {}
        self._arrays: dict[str, np.ndarray] = {}

    @property
    def extensions(self) -> tuple[str, ...]:
        """The image extensions the file has, of those its type carries."""
        return self._images

    def get(self, extname: str) -> np.ndarray | None:
        """The extension's array cut to the window (native byte order, integer types kept),
        or None when the file has no such extension."""
        if extname not in self._images:
            return None
        if extname not in self._arrays:
            try:
                with fits.open(self.path, memmap=True, do_not_scale_image_data=True) as hdul:
                    hdu = hdul[extname]
                    self._arrays[extname] = _scaled(self.window.cut(hdu.data, self.full_shape, self.filename),
                                                    hdu.header)
            except OSError as exc:
                raise ReferenceFileError(f"reference {self.filename} is not a readable FITS file: {exc}") from exc
        return self._arrays[extname]

    def release(self) -> None:
        """Forget the arrays read so far (they are read again when asked for)."""
        self._arrays.clear()

    def __repr__(self) -> str:
        return f"Reference({self.reftype!r}, {self.filename!r})"


def load_reference(reftype: str, path: str | Path, window: Window, full_shape: tuple[int, int]) -> Reference:
    """Check a reference file of ``reftype`` for ``window`` and return it, ready to read.

    A process keeps the last :data:`KEPT_REFERENCES` references it checked (their headers,
    tables and ASDF trees; image arrays are read per step and released after it, as
    always): a worker's next task with the same file, window and type gets the same
    :class:`Reference` without opening the file again (an ASDF reference with a distortion
    model takes tens of milliseconds to read). A file changed since (size or modification
    time) is checked again. Steps treat a reference as read-only.

    Raises
    ------
    ReferenceFileError
        The file is unreadable, lacks the data of its type, or has an image that fits
        neither the window nor the full frame ``full_shape`` (ny, nx); the message names
        the file.
    """
    path = Path(path)
    try:
        st = path.stat()
    except OSError:
        return _load_reference(reftype, path, window, full_shape)  # says what is wrong with it
    return _kept_reference(reftype.lower(), str(path), st.st_size, st.st_mtime_ns, window, tuple(full_shape))


KEPT_REFERENCES = 32


@lru_cache(maxsize=KEPT_REFERENCES)
def _kept_reference(reftype: str, path: str, size: int, mtime_ns: int, window: Window,
                    full_shape: tuple[int, int]) -> Reference:
    return _load_reference(reftype, Path(path), window, full_shape)


def _load_reference(reftype: str, path: Path, window: Window, full_shape: tuple[int, int]) -> Reference:
    reftype = reftype.lower()
    fmt = FORMATS.get(reftype)
    if fmt is None:
        raise ReferenceFileError(f"no pipeline reads reference type {reftype!r} (known: {', '.join(FORMATS)})")
    if fmt.document:
        try:
            document = read_json_reference(path)
        except (OSError, ValueError) as exc:
            raise ReferenceFileError(f"{reftype.upper()} reference {path.name} is not a readable JSON file: "
                                     f"{exc}") from exc
        if fmt.lacks_required(document):
            raise ReferenceFileError(f"{reftype.upper()} reference {path.name} has no {fmt.required_text!r} entry")
        header = reference_header(path)
        return Reference(reftype, path, window, full_shape, header, {}, (), document)
    if path.is_file() and is_asdf(path):
        return _load_asdf_reference(reftype, fmt, path, window, full_shape)
    if fmt.tree and not (fmt.images or fmt.tables or fmt.arrays):  # a type that is ASDF alone
        raise ReferenceFileError(f"{reftype.upper()} reference {path.name} is not an ASDF file, its public format")
    try:
        with fits.open(path, memmap=True, do_not_scale_image_data=True) as hdul:
            header = {k: v for k, v in hdul[0].header.items() if k not in ("COMMENT", "HISTORY", "")}
            images = tuple(ext for ext in fmt.images if ext in hdul and hdul[ext].header.get("NAXIS", 0) > 0)
            for ext in images:
                window.check(tuple(hdul[ext].shape), full_shape, path.name)
            tables = {ext: np.array(hdul[ext].data) for ext in fmt.tables if ext in hdul and hdul[ext].data is not None}
            table_headers = {ext: _table_cards(hdul[ext].header) for ext in tables}
            arrays: dict[str, list[tuple[dict[str, Any], np.ndarray]]] = {}
            for hdu in hdul[1:]:
                if hdu.name in fmt.arrays and hdu.data is not None:
                    data = np.array(hdu.data)
                    arrays.setdefault(hdu.name, []).append((_table_cards(hdu.header), data.astype(data.dtype.newbyteorder("="))))
    except OSError as exc:
        raise ReferenceFileError(f"reference {path.name} is not a readable FITS file: {exc}") from exc
    if fmt.lacks_required({*images, *tables, *arrays}):
        raise ReferenceFileError(f"{reftype.upper()} reference {path.name} has no {fmt.required_text} extension")
    return Reference(reftype, path, window, full_shape, header, tables, images, table_headers=table_headers,
                     arrays=arrays)


_TABLE_LAYOUT = re.compile(r"^(XTENSION|BITPIX|NAXIS\d*|PCOUNT|GCOUNT|TFIELDS|EXTNAME|EXTVER|T(TYPE|FORM|UNIT|DIM|NULL"
                           r"|SCAL|ZERO|DISP)\d+|CHECKSUM|DATASUM|COMMENT|HISTORY|)$")


def _table_cards(header) -> dict[str, Any]:
    """A table extension's own keywords (e.g. the WCS of a PATHLOSS grid), without those
    that describe its columns."""
    return {k: v for k, v in header.items() if not _TABLE_LAYOUT.match(k)}


def _load_asdf_reference(reftype: str, fmt: ReferenceFormat, path: Path, window: Window,
                         full_shape: tuple[int, int]) -> Reference:
    """An ASDF reference: its ``meta`` as the header, the tree entries and tables its type
    carries (no image extensions are read). A file whose ``meta.reftype`` names another
    type is refused (e.g. a DISTORTION given as the WAVELENGTHRANGE)."""
    import asdf

    try:
        header = reference_header(path)
        with asdf.open(path, lazy_load=False, memmap=False) as af:
            tree = {key: af.tree[key] for key in fmt.tree if key in af.tree}
            tables = {name: table for name in fmt.tables if (table := _structured(af.tree.get(name))) is not None}
    except ReferenceFileError as exc:
        raise ReferenceFileError(f"{reftype.upper()} reference {path.name}: {exc}") from exc
    except Exception as exc:  # not ASDF, or a tree asdf cannot convert (asdf, yaml and OSError)
        raise ReferenceFileError(f"reference {path.name} is not a readable ASDF file: {exc}") from exc
    declared = str(header.get("REFTYPE") or "").strip().upper()
    if declared and declared != reftype.upper():
        raise ReferenceFileError(f"reference {path.name} is a {declared} reference (its meta.reftype), "
                                 f"not {reftype.upper()}")
    if fmt.lacks_required({*tree, *tables}):
        raise ReferenceFileError(f"{reftype.upper()} reference {path.name} has no {fmt.required_text!r} in its ASDF tree")
    return Reference(reftype, path, window, full_shape, header, tables, (), tree)


def _structured(value: Any) -> np.ndarray | None:
    """A table of an ASDF tree (an astropy Table or a structured array) as a structured
    array; None when it is neither."""
    if value is None:
        return None
    as_array = getattr(value, "as_array", None)  # an astropy Table
    array = np.array(as_array() if as_array is not None else value)
    return array if array.dtype.names else None


@dataclass(frozen=True)
class ReferenceChoice:
    """The file chosen for one type (``path`` None: none applies) and why."""

    reftype: str
    path: Path | None
    reason: str


class ReferenceProvider(Protocol):
    """Chooses reference files for an exposure."""

    def choose(self, keywords: Mapping[str, Any], reftypes: Sequence[str]) -> tuple[dict[str, ReferenceChoice], str]:
        """The choice for each type (local paths) and the name of the context they came from."""


@dataclass(frozen=True)
class CatalogReferences:
    """The references the catalog selects (the current context, or ``context``), fetched
    into ``cache_dir`` (checked against their sha256, downloaded once)."""

    catalog: Any  # shared.catalog.Catalog
    store: Any  # shared.storage.ObjectStore
    cache_dir: Path
    context: str | int | None = None

    @classmethod
    def of(cls, ctx: Any, context: str | int | None = None) -> CatalogReferences:
        """The catalog's references for a service context (cache under ``<var>/refcache``);
        a context working for a reprocessing request uses the request's context."""
        request = getattr(ctx, "request", None)
        if request is not None:
            context = request.reference_context
        return cls(ctx.catalog, ctx.store, ctx.settings.var_dir / "refcache", context)

    def choose(self, keywords: Mapping[str, Any], reftypes: Sequence[str]) -> tuple[dict[str, ReferenceChoice], str]:
        from shared.refdata.cache import fetch
        from shared.refdata.selection import best_references

        with self.catalog.session() as s:
            selections = best_references(s, keywords, reftypes, self.context)
        chosen, context = {}, None
        for reftype, sel in selections.items():
            context = context or sel.context
            path = fetch(self.store, sel, self.cache_dir) if sel.filename is not None else None
            chosen[reftype] = ReferenceChoice(reftype, path, sel.reason)
        return chosen, context or "N/A"


@dataclass(frozen=True)
class LocalReferences:
    """Files given by type (``--ref TYPE=PATH``) first, then the best match in
    ``refs_dir`` by the archive's selection rules; the context is called ``local``."""

    overrides: Mapping[str, Path] = field(default_factory=dict)
    refs_dir: Path | None = None

    def choose(self, keywords: Mapping[str, Any], reftypes: Sequence[str]) -> tuple[dict[str, ReferenceChoice], str]:
        chosen = choose_local_references(keywords, reftypes, self.overrides, self.refs_dir)
        return {t: ReferenceChoice(t, path, why) for t, (path, why) in chosen.items()}, "local"


@dataclass(frozen=True)
class References:
    """The references of one run: the files found, by type (checked, read on demand), the
    choice made for every type, and the context (CRDS_CTX)."""

    found: dict[str, Reference]
    choices: dict[str, ReferenceChoice]
    context: str


def load_references(provider: ReferenceProvider, keywords: Mapping[str, Any], reftypes: Sequence[str]) -> References:
    """Choose the references of ``reftypes`` for an exposure and check them for its window.

    A type with no applicable file is left out of ``found`` (its steps are skipped) and
    logged with the reason. Raises HeaderError when the keywords have no usable window or
    detector, ReferenceFileError for an unusable file.
    """
    if not reftypes:
        return References({}, {}, "N/A")
    window = Window.from_keywords(keywords)
    try:
        det = detector(str(keywords["DETECTOR"]))
    except (KeyError, UnknownInstrumentError) as exc:
        raise HeaderError(f"{keywords.get('FILENAME', 'the exposure')}: no known DETECTOR ({exc})") from exc
    choices, context = provider.choose(keywords, list(reftypes))
    found = {}
    for reftype, choice in choices.items():
        if choice.path is None:
            log.warning("%s: no %s reference: %s", keywords.get("FILENAME"), reftype, choice.reason)
            continue
        found[reftype] = load_reference(reftype, choice.path, window, (det.ny, det.nx))
    return References(found, choices, context)
