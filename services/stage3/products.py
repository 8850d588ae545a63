"""Keywords of stage-3 products: the cards the shared keyword table does not know, and
the WCS of a member.

:data:`shared.datamodels.KEYWORDS` places the keywords it knows. Stage 3 also writes sky
background cards (public data-model paths, PRIMARY) and the tweakreg fit (no public
keyword; SCI header): :func:`set_keywords` routes a card to the shared table when it
knows it, else to its HDU and data-model path (:data:`STAGE3_KEYWORDS`), else (WCS terms
such as A_2_0, LONPOLE) to the SCI header. A keyword the shared table learns later simply
takes the shared path.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

from shared.datamodels import KEYWORDS, FitsProduct
from shared.wcs import wcs_header

__all__ = [
    "STAGE3_KEYWORDS",
    "WCS_CARD",
    "card_value",
    "member_wcs",
    "replace_wcs",
    "set_keywords",
]

# Public data-model path, HDU and comment (stdatamodels core schema); the TWK* cards (the
# tweakreg fit) have no public path and go to the SCI header only.
STAGE3_KEYWORDS: dict[str, tuple[str | None, str, str]] = {
    "BKGMETH": ("meta.background.method", "PRIMARY", "Background computation method"),
    "BKGLEVEL": ("meta.background.level", "PRIMARY", "Computed constant background level"),
    "BKGSUB": ("meta.background.subtracted", "PRIMARY", "Background subtracted from the data"),
    "TWKREF": (None, "SCI", "tweakreg alignment: relative or absolute"),
    "TWKDX": (None, "SCI", "[pix] tweakreg shift of the centre pixel along x"),
    "TWKDY": (None, "SCI", "[pix] tweakreg shift of the centre pixel along y"),
    "TWKROT": (None, "SCI", "[deg] tweakreg rotation"),
    "TWKRMS": (None, "SCI", "[pix] rms of the tweakreg fit residuals"),
    "TWKNMAT": (None, "SCI", "Sources matched in the tweakreg fit"),
}

WCS_CARD = re.compile(
    r"^(WCSAXES|CRPIX\d|CRVAL\d|CTYPE\d|CUNIT\d|CDELT\d|PC\d_\d|CD\d_\d|RADESYS|EQUINOX|LONPOLE|LATPOLE|"
    r"MJDREF|[AB]P?_ORDER|[AB]P?_\d+_\d+|[AB]_DMAX)$"
)


def card_value(product: FitsProduct, name: str, default: Any = None) -> Any:
    """A keyword's value wherever the product holds it (shared table, or a raw card of
    its PRIMARY or SCI header)."""
    if name in product.keywords:
        return product.keywords[name]
    for hdu in ("SCI", "PRIMARY"):
        value = product.hdu_keywords.get(hdu, {}).get(name)
        if value is not None:
            return value[0] if isinstance(value, tuple) else value
    return default


def member_wcs(product: FitsProduct) -> WCS:
    """The celestial WCS of a member's SCI header (SIP terms included); ValueError
    naming what is missing when assign_wcs has not run."""
    cards = {k: v for k, v in {**product.keywords, **product.hdu_keywords.get("SCI", {})}.items() if WCS_CARD.match(k)}
    cards = {k: (v[0] if isinstance(v, tuple) else v) for k, v in cards.items()}
    missing = [k for k in ("CRPIX1", "CRPIX2", "CRVAL1", "CRVAL2", "CTYPE1", "CTYPE2") if k not in cards]
    if missing:
        raise ValueError(f"{product.keywords.get('FILENAME', 'product')}: no celestial WCS in the SCI header "
                         f"(missing {', '.join(missing)}; did assign_wcs run?)")
    header = fits.Header()
    for k, v in cards.items():
        header[k] = v
    header["WCSAXES"] = 2
    w = WCS(header, relax=True)
    if not w.has_celestial:
        raise ValueError(f"{product.keywords.get('FILENAME', 'product')}: SCI-header WCS is not celestial")
    return w


def set_keywords(product: FitsProduct, cards: Mapping[str, Any], *, default_hdu: str = "SCI") -> None:
    """Set ``cards``: shared keywords in ``keywords``, stage-3 ones in their HDU (and
    data-model path), any other (WCS terms such as A_2_0, LONPOLE) in ``default_hdu``."""
    for name, value in cards.items():
        if isinstance(value, np.generic):
            value = value.item()
        if name in KEYWORDS:
            product.keywords[name] = value
            continue
        for hdu in ("PRIMARY", "SCI"):
            product.hdu_keywords.get(hdu, {}).pop(name, None)
        if value is None:
            continue
        path, hdu, comment = STAGE3_KEYWORDS.get(name, (None, default_hdu, None))
        product.hdu_keywords.setdefault(hdu, {})[name] = value if comment is None else (value, _fit(name, value, comment))
        if path is not None:
            product.extra_meta[path] = value


def replace_wcs(product: FitsProduct, wcs: WCS) -> None:
    """Put ``wcs`` in the product's SCI header in place of whatever WCS it had."""
    for name in [k for k in product.keywords if WCS_CARD.match(k)]:
        del product.keywords[name]
    sci = product.hdu_keywords.get("SCI", {})
    for name in [k for k in sci if WCS_CARD.match(k)]:
        del sci[name]
    cards = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in wcs_header(wcs).items()}
    set_keywords(product, cards)


def _fit(name: str, value: Any, comment: str) -> str:
    """The comment, shortened so the card stays one 80-character line."""
    # A value with a comment fills at least columns 1-30; then " / " and the comment.
    room = 80 - max(len(fits.Card(name, value).image.rstrip()), 30) - 3
    return comment[: max(room, 0)]
