"""Write and read JWST-layout FITS products.

Layout: an empty PRIMARY HDU holding the keywords, EXTNAME'd image HDUs, binary tables,
and a final ASDF HDU (one byte column ``ASDF_METADATA``) holding the metadata tree. The
tree carries only ``meta`` (no ``_fits_hash``), so the public data models read arrays and
keywords from the FITS HDUs and take the model class from DATAMODL; what has no FITS
keyword rides in the tree (``FitsProduct.extra_meta``), above all the gwcs at
``meta.wcs``, where stdatamodels keeps it. :func:`read_product` reads that gwcs back.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import asdf
import numpy as np
from astropy.io import fits

from shared.arrays import read_only
from shared.datamodels.keywords import KEYWORDS, SLIT_KEYWORDS, UnknownKeywordError

__all__ = ["COMBINED_EXTNAME", "MULTI_SLIT_MODELS", "SPECTRUM_EXTNAME", "FitsProduct", "MalformedProductError", "SlitProduct", "SpectrumTable",
           "card_value", "content_type",
           "single_slit",
           "meta_tree", "read_product", "set_cards", "write_output", "write_product"]

ASDF_EXTNAME = "ASDF"
SPECTRUM_EXTNAME = "EXTRACT1D"  # a MultiSpecModel's spectra, each with its EXTVER
COMBINED_EXTNAME = "COMBINE1D"  # the combined spectra of a WFSSMultiCombinedSpecModel (the _c1d)
#: Data models whose arrays are per slit (EXTVER 1, 2, ...): :attr:`FitsProduct.slits`.
MULTI_SLIT_MODELS = frozenset({"MultiSlitModel"})


class MalformedProductError(ValueError):
    """A file that is not a readable JWST-layout product; the message says what is wrong."""


@dataclass
class SlitProduct:
    """One slit of a :class:`FitsProduct` of many (a MultiSlitModel): its arrays by EXTNAME,
    written with the slit's EXTVER (its place in the list, from 1); its own keywords
    (SLTNAME, SLTSTRT1, SRCXPOS, ...: those of the SCI header), in its SCI header; and
    ``extra_meta``, paths of its ``meta`` tree (``"meta.wcs"``: its gwcs) written into the
    ASDF HDU at ``slits[i]``."""

    images: dict[str, np.ndarray] = field(default_factory=dict)
    keywords: dict[str, Any] = field(default_factory=dict)
    extra_meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class SpectrumTable:
    """One extracted spectrum of a MultiSpecModel: its table (the public ``spectable``
    layout) and the cards of its EXTRACT1D extension (units, SLTNAME, SOURCEID, ...),
    written with its EXTVER (its place in the list, from 1); ``extname`` COMBINE1D for a
    combined spectrum (a ``_c1d``'s)."""

    table: np.ndarray
    keywords: dict[str, Any] = field(default_factory=dict)
    extname: str = SPECTRUM_EXTNAME


@dataclass
class FitsProduct:
    """A product in memory: keywords by FITS name, image arrays and tables by EXTNAME.

    ``keywords`` hold both PRIMARY and SCI-header keywords; :data:`KEYWORDS` says where
    each one goes. ``hdu_keywords`` adds cards to other extensions (e.g. BUNIT of ERR).
    ``extra_meta`` maps paths of the ``meta`` tree (``"meta.wcs"``: a ``gwcs.WCS``) to
    values written into the ASDF HDU only.
    Insertion order of ``images`` and ``tables`` is HDU order. Reading keeps the PRIMARY
    and SCI cards the keyword table does not know (SIP terms, ...) in ``hdu_keywords``.
    ``slits`` are the slits of a product of many (:data:`MULTI_SLIT_MODELS`), written after
    the images, each with its EXTVER; their SCI headers also carry the product's own
    SCI-header keywords (the slit's win). ``spectra`` are the EXTRACT1D tables of a
    MultiSpecModel, one or many, each with its EXTVER.
    """

    model_type: str
    keywords: dict[str, Any] = field(default_factory=dict)
    images: dict[str, np.ndarray] = field(default_factory=dict)
    tables: dict[str, np.ndarray] = field(default_factory=dict)
    extra_meta: dict[str, Any] = field(default_factory=dict)
    hdu_keywords: dict[str, dict[str, Any]] = field(default_factory=dict)
    slits: list[SlitProduct] = field(default_factory=list)
    spectra: list[SpectrumTable] = field(default_factory=list)

    def detached(self) -> FitsProduct:
        """The same product with metadata of its own: the arrays and tables are shared,
        the keyword, card, extension and tree dicts copied. One thread can then write (and
        mark) it while another goes on reading this one."""
        return FitsProduct(self.model_type, dict(self.keywords), dict(self.images), dict(self.tables),
                           dict(self.extra_meta), {hdu: dict(cards) for hdu, cards in self.hdu_keywords.items()},
                           [SlitProduct(dict(sl.images), dict(sl.keywords), dict(sl.extra_meta)) for sl in self.slits],
                           [SpectrumTable(sp.table, dict(sp.keywords), sp.extname) for sp in self.spectra])


def _set_path(tree: dict, path: str, value: Any) -> None:
    parts = path.split(".")
    node = tree
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = value


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value


def meta_tree(keywords: Mapping[str, Any], extra_meta: Mapping[str, Any] | None = None) -> dict:
    """The ``meta`` tree of the data model for a set of keywords."""
    tree: dict = {}
    for name, value in keywords.items():
        kw = KEYWORDS.get(name)
        if kw is None:
            raise UnknownKeywordError(f"keyword {name!r} has no entry in shared.datamodels.keywords")
        if value is not None:
            _set_path(tree, kw.path, _plain(value))
    for path, value in (extra_meta or {}).items():
        _set_path(tree, path, value)
    return tree.get("meta", {})


def _header_for(hdu_name: str, keywords: Mapping[str, Any]) -> fits.Header:
    header = fits.Header()
    for name, value in keywords.items():
        kw = KEYWORDS.get(name)
        if kw is None:
            raise UnknownKeywordError(f"keyword {name!r} has no entry in shared.datamodels.keywords")
        if kw.hdu == hdu_name and value is not None:
            header[name] = (_plain(value), _fitting_comment(name, _plain(value), kw.comment))
    return header


def _fitting_comment(name: str, value: Any, comment: str) -> str:
    """The comment, shortened so the card stays one 80-character line."""
    try:
        room = _comment_room(name, type(value), value)
    except TypeError:  # an unhashable value
        room = _comment_room.__wrapped__(name, type(value), value)
    return comment if len(comment) <= room else comment[: max(room, 0)]


@lru_cache(maxsize=8192)
def _comment_room(name: str, kind: type, value: Any) -> int:
    """Characters left for a comment on the card of ``name`` = ``value``, after the " / "
    separator. Most keywords of a product repeat from one product to the next, so the
    answers are kept, by type too (equal values of two types can make different cards)."""
    return 80 - len(fits.Card(name, value).image.rstrip()) - 3


def write_product(path: str | Path, product: FitsProduct) -> Path:
    """Write ``product`` to ``path`` (overwriting) and return the path.

    The output is a pure function of ``product``: no clock is read here, so the same input
    gives the same bytes (a retried task stores an identical object). The product's arrays
    are never changed, not even for a moment, so another thread may read them meanwhile.
    """
    path = Path(path)
    # The model type and file name are the product's own, whatever keywords it inherited.
    inherited = {k: v for k, v in product.keywords.items() if k not in ("DATAMODL", "FILENAME")}
    keywords = {"DATAMODL": product.model_type, "FILENAME": path.name, **inherited}
    primary = fits.PrimaryHDU(header=_header_for("PRIMARY", keywords))
    for name, value in product.hdu_keywords.get("PRIMARY", {}).items():
        primary.header[name] = value
    hdus: list[fits.hdu.base.ExtensionHDU] = []
    for extname, array in product.images.items():
        header = _header_for(extname, keywords) if extname == "SCI" else fits.Header()
        for name, value in product.hdu_keywords.get(extname, {}).items():
            header[name] = value
        # read-only: given a writeable little-endian array, astropy swaps its bytes in place
        # while writing it, and a thread reading the array meanwhile would see them swapped
        hdus.append(fits.ImageHDU(data=read_only(array), header=header, name=extname))
    for ver, slit in enumerate(product.slits, start=1):
        for extname, array in slit.images.items():
            header = _header_for("SCI", {**keywords, **slit.keywords}) if extname == "SCI" else fits.Header()
            if extname != "SCI":
                for name, value in product.hdu_keywords.get(extname, {}).items():
                    header[name] = value
            hdus.append(fits.ImageHDU(data=read_only(array), header=header, name=extname, ver=ver))
    for extname, table in product.tables.items():
        hdu = fits.BinTableHDU(data=table, name=extname)
        for name, value in product.hdu_keywords.get(extname, {}).items():
            hdu.header[name] = value
        hdus.append(hdu)
    for ver, spectrum in enumerate(product.spectra, start=1):
        hdu = fits.BinTableHDU(data=spectrum.table, name=spectrum.extname, ver=ver)
        for name, value in spectrum.keywords.items():
            hdu.header[name] = value
        hdus.append(hdu)
    tree: dict[str, Any] = {"meta": meta_tree(keywords, product.extra_meta)}
    if product.slits:  # each slit's own tree: its gwcs (its keywords are in its SCI header)
        tree["slits"] = [{"meta": meta_tree({}, slit.extra_meta)} for slit in product.slits]
    raw = np.frombuffer(_asdf_bytes(tree), dtype=np.uint8)[None, :]
    asdf_hdu = fits.BinTableHDU.from_columns(
        [fits.Column(name="ASDF_METADATA", format=f"{raw.shape[1]}B", array=raw)], name=ASDF_EXTNAME
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fits.HDUList([primary, *hdus, asdf_hdu]).writeto(path, overwrite=True, checksum=False)
    return path


class _OrderedHistoryAsdf(asdf.AsdfFile):
    """An AsdfFile that lists the extensions it used in a fixed order.

    asdf records them in ``history.extensions`` in the order of a set of extension
    objects, which differs from one process to the next: a task run again by another
    worker would store different bytes (a new revision) for the same product. asdf
    knows what it used only once the tree is serialized; this sorts the list at that
    point (by extension URI, then class), so one pass writes the file."""

    def _update_extension_history(self, tree, serialization_context):
        super()._update_extension_history(tree, serialization_context)
        history = tree.get("history")
        if isinstance(history, dict) and isinstance(history.get("extensions"), list):
            history["extensions"].sort(key=_extension_order)


def _extension_order(entry: Mapping[str, Any]) -> tuple[str, str]:
    return str(entry.get("extension_uri")), str(entry.get("extension_class"))


@lru_cache(maxsize=1)
def _asdf_resources() -> object:
    """Build asdf's resource manager (every installed schema package, found through
    their entry points) in its global configuration, once.

    asdf builds it lazily in whatever configuration is current, and its writes and our
    reads run in a ``config_context``: a copy of the global configuration that is dropped
    afterwards. Unless the global configuration has built it, each write or read of a
    tree holding a gwcs lists the entry points and parses its schemas again (a ``_cal``'s
    metadata: 69 ms to write without this, 40 with it; 57 and 27 ms to read). Called
    outside any ``config_context``, so that the global configuration is the one built."""
    return asdf.get_config().resource_manager


def _asdf_bytes(tree: dict[str, Any]) -> bytes:
    """The ASDF file of ``tree``, the same bytes in every process (see
    :class:`_OrderedHistoryAsdf`). Arrays of the tree that are not FITS extensions (a gwcs's
    own, such as the MIRI MRS's slice map of 1024 x 1032 labels) are zlib-compressed
    blocks, which asdf (and so stdatamodels) reads back transparently."""
    _asdf_resources()
    buf = io.BytesIO()
    _OrderedHistoryAsdf(dict(tree)).write_to(buf, all_array_compression="zlib")
    return buf.getvalue()


def write_output(path: str | Path, content: Any) -> Path:
    """Write a product: a :class:`FitsProduct` as FITS, a table (astropy) as ECSV."""
    if isinstance(content, FitsProduct):
        return write_product(path, content)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    content.write(path, format="ascii.ecsv", overwrite=True)
    return path


def content_type(filename: str) -> str:
    """The media type a product file is stored and served with."""
    if filename.endswith(".fits"):
        return "application/fits"
    if filename.endswith(".json"):
        return "application/json"
    return "text/plain"  # ECSV tables, reports


def single_slit(product: FitsProduct) -> FitsProduct:
    """``product`` as a MultiSlitModel of one slit (as the public pipeline writes a NIRSpec
    fixed slit's products): its arrays, its ``extra_meta`` (the gwcs) and its slit's own
    keywords (:data:`SLIT_KEYWORDS`) in the slit, whose cutout is the whole of its arrays
    (SLTSTRT1/2 1, SLTSIZE1/2 their shape); the other keywords stay the product's."""
    ny, nx = product.images["SCI"].shape[-2:]
    own = {k: v for k, v in product.keywords.items() if k in SLIT_KEYWORDS}
    slit = SlitProduct(images=dict(product.images), extra_meta=dict(product.extra_meta),
                       keywords={**own, "SLTSTRT1": 1, "SLTSIZE1": nx, "SLTSTRT2": 1, "SLTSIZE2": ny})
    return FitsProduct("MultiSlitModel", {k: v for k, v in product.keywords.items() if k not in SLIT_KEYWORDS},
                       tables=dict(product.tables), hdu_keywords={k: dict(v) for k, v in product.hdu_keywords.items()},
                       slits=[slit])


def read_product(path: str | Path, *, arrays: bool = True) -> FitsProduct:
    """Read a product written by :func:`write_product` (or a compatible JWST file); without
    ``arrays``, its metadata alone: keywords, tables and the ASDF tree, no image array read
    (what a step that takes the product later needs to know of it beforehand).

    Raises :class:`MalformedProductError` naming the problem for anything unreadable.
    """
    try:
        with fits.open(path, memmap=False) as hdul:
            primary = hdul[0].header
            model_type = primary.get("DATAMODL")
            if not model_type:
                raise MalformedProductError(f"{path}: PRIMARY header has no DATAMODL keyword")
            keywords: dict[str, Any] = {k: primary[k] for k in primary if k in KEYWORDS}
            other: dict[str, dict[str, Any]] = {"PRIMARY": _other_cards(primary)}
            images: dict[str, np.ndarray] = {}
            tables: dict[str, np.ndarray] = {}
            spectra: list[SpectrumTable] = []
            extra_meta: dict[str, Any] = {}
            slit_meta: list[dict[str, Any]] = []
            many = model_type in MULTI_SLIT_MODELS
            slits: dict[int, SlitProduct] = {}
            for hdu in hdul[1:]:
                if hdu.name == ASDF_EXTNAME:
                    extra_meta, slit_meta = _tree_extras(hdu, path)
                    continue
                if many and isinstance(hdu, fits.ImageHDU):
                    slit = slits.setdefault(hdu.ver, SlitProduct())
                    if hdu.name == "SCI":  # the slit's own keywords; the product's (alike in all) from the first
                        known = {k: hdu.header[k] for k in hdu.header if k in KEYWORDS}
                        # its BUNIT too: a MOS slit of a point source is in MJy, one of an extended in MJy/sr
                        slit.keywords = {k: v for k, v in known.items() if k in SLIT_KEYWORDS or k == "BUNIT"}
                        if hdu.ver == 1:
                            keywords.update({k: v for k, v in known.items() if k not in SLIT_KEYWORDS})
                    if arrays and hdu.data is not None:
                        slit.images[hdu.name] = np.array(hdu.data, dtype=hdu.data.dtype.newbyteorder("="))
                    continue
                if hdu.name == "SCI":
                    keywords.update({k: hdu.header[k] for k in hdu.header if k in KEYWORDS})
                    other["SCI"] = _other_cards(hdu.header)
                if isinstance(hdu, fits.BinTableHDU) and hdu.name in (SPECTRUM_EXTNAME, COMBINED_EXTNAME):
                    spectra.append(SpectrumTable(np.array(hdu.data), _spectrum_cards(hdu.header), hdu.name))
                elif isinstance(hdu, fits.BinTableHDU):
                    tables[hdu.name] = np.array(hdu.data)
                    cards = _other_cards(hdu.header, table=True)
                    if cards:  # a table's own keywords (the guider Pointing table's JITTRAVG, ...)
                        other[hdu.name] = cards
                elif arrays and hdu.data is not None:  # in this machine's byte order: the steps use them as they are
                    images[hdu.name] = np.array(hdu.data, dtype=hdu.data.dtype.newbyteorder("="))
    except OSError as exc:
        raise MalformedProductError(f"{path}: not a readable FITS file ({exc})") from exc
    ordered = [slits[ver] for ver in sorted(slits)]
    for slit, meta in zip(ordered, slit_meta, strict=False):
        slit.extra_meta = meta
    return FitsProduct(model_type=model_type, keywords=keywords, images=images, tables=tables,
                       extra_meta=extra_meta, hdu_keywords={hdu: cards for hdu, cards in other.items() if cards},
                       slits=ordered, spectra=spectra)


_GWCS_TAG = b"tag:stsci.edu:gwcs/wcs-"


def _tree_extras(hdu: fits.BinTableHDU, path: str | Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(``{"meta.wcs": gwcs}``, the same for each of ``slits``) where the ASDF HDU holds a
    gwcs (the tree is parsed only then). The tree is converted lazily: a file the public
    pipeline wrote refers to its FITS arrays from the tree, and only the gwcs are converted
    here; the ASDF blocks (a spectral gwcs's lookup tables) are read into memory as the
    file opens, so the gwcs outlive it. The tree is not validated against its schemas
    here (a third of the time of reading a MOS exposure's 21 slits): what is read is
    checked as it is converted."""
    raw = hdu.data["ASDF_METADATA"][0].tobytes() if hdu.data is not None and len(hdu.data) else b""
    if _GWCS_TAG not in raw:
        return {}, []

    def wcs_of(node: Any) -> dict[str, Any]:
        wcs = ((node or {}).get("meta") or {}).get("wcs") if isinstance(node, Mapping) else None
        return {} if wcs is None else {"meta.wcs": wcs}

    _asdf_resources()
    try:
        with asdf.config_context() as config:
            config.validate_on_read = False
            with asdf.open(io.BytesIO(raw), lazy_load=False, lazy_tree=True, memmap=False) as af:
                return wcs_of(af.tree), [wcs_of(slit) for slit in (af.tree.get("slits") or [])]
    except Exception as exc:  # asdf, yaml and the gwcs converters raise their own
        raise MalformedProductError(f"{path}: the ASDF extension does not parse ({exc})") from exc


# Cards that describe the HDU itself (written by astropy), not the data.
_STRUCTURAL = re.compile(r"^(SIMPLE|BITPIX|NAXIS\d*|EXTEND|XTENSION|PCOUNT|GCOUNT|EXTNAME|EXTVER|"
                         r"CHECKSUM|DATASUM|COMMENT|HISTORY|)$")


_TABLE_STRUCTURAL = re.compile(r"^(TFIELDS|THEAP|(TTYPE|TFORM|TUNIT|TNULL|TSCAL|TZERO|TDISP|TDIM|TBCOL)\d+)$")


def _spectrum_cards(header: fits.Header) -> dict[str, Any]:
    """An EXTRACT1D extension's own cards: the spectrum's (SLTNAME, SOURCEID, ...) and its
    columns' units, without those that lay out the table."""
    return {k: header[k] for k in header if not _STRUCTURAL.match(k)
            and not (_TABLE_STRUCTURAL.match(k) and not k.startswith("TUNIT"))}


def _other_cards(header: fits.Header, *, table: bool = False) -> dict[str, Any]:
    """Cards the keyword table does not know (e.g. SIP terms), so a re-write keeps them;
    of a table HDU (``table``), without the cards that describe its columns."""
    return {k: header[k] for k in header if k not in KEYWORDS and not _STRUCTURAL.match(k)
            and not (table and _TABLE_STRUCTURAL.match(k))}


def set_cards(product: FitsProduct, cards: Mapping[str, Any], *, default_hdu: str = "SCI",
              comments: Mapping[str, str] | None = None) -> None:
    """Set keywords on ``product``: those the keyword table knows in ``keywords``, any
    other (WCS terms such as A_2_0, a step's own cards) as a card of ``default_hdu``, with
    its comment from ``comments``. A value of None removes the card."""
    for name, value in cards.items():
        value = _plain(value)
        if name in KEYWORDS:
            product.keywords[name] = value
            continue
        for hdu in ("PRIMARY", "SCI"):
            product.hdu_keywords.get(hdu, {}).pop(name, None)
        if value is None:
            continue
        comment = (comments or {}).get(name)
        product.hdu_keywords.setdefault(default_hdu, {})[name] = (
            value if comment is None else (value, _fitting_comment(name, value, comment)))


def card_value(product: FitsProduct, name: str, default: Any = None) -> Any:
    """A keyword's value wherever the product holds it (the keyword table, or a card of
    its PRIMARY or SCI header)."""
    if name in product.keywords:
        return product.keywords[name]
    for hdu in ("SCI", "PRIMARY"):
        value = product.hdu_keywords.get(hdu, {}).get(name)
        if value is not None:
            return value[0] if isinstance(value, tuple) else value
    return default
