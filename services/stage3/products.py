"""Keywords of stage-3 products: the tweakreg cards (no public keywords; SCI header) and
the WCS of a member. Everything else goes through :func:`shared.datamodels.set_cards`.
And the members' own products (the ``_crf``) as outputs of the association."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

from services.stage3.asn import Level3Association
from shared.datamodels import FitsProduct, card_value, set_cards
from shared.naming import member_output_name
from shared.pipeline import Output
from shared.wcs import wcs_header

__all__ = [
    "INTERMEDIATE",
    "TWEAKREG_COMMENTS",
    "WCS_CARD",
    "card_value",
    "crf_outputs",
    "member_wcs",
    "replace_wcs",
    "set_keywords",
]

INTERMEDIATE = "AUXILIARY"
"""Product type of what stage 3 makes on the way (the 2c ``_crf``/``_crfints``, the
``_segm`` map): archived and linked, never a Minimum Recommended Product."""


def crf_outputs(asn: Level3Association, crf: Sequence[FitsProduct]) -> list[Output]:
    """The ``_crf`` of each science member, named for the association, in member order."""
    return [Output(member_output_name(member, asn.asn_id, "crf"), "crf", product, INTERMEDIATE, member=member)
            for member, product in zip(asn.science, crf, strict=True)]


# The tweakreg fit has no public keywords: our own cards in the SCI header.
TWEAKREG_COMMENTS: dict[str, str] = {
    "TWKREF": "tweakreg alignment: relative or absolute",
    "TWKDX": "[pix] tweakreg shift of the centre pixel along x",
    "TWKDY": "[pix] tweakreg shift of the centre pixel along y",
    "TWKROT": "[deg] tweakreg rotation",
    "TWKRMS": "[pix] rms of the tweakreg fit residuals",
    "TWKNMAT": "Sources matched in the tweakreg fit",
    "TWKABS": "absolute alignment: ALIGNED or FAILED",
    "TWKANOTE": "why the absolute alignment failed",
}

WCS_CARD = re.compile(
    r"^(WCSAXES|CRPIX\d|CRVAL\d|CTYPE\d|CUNIT\d|CDELT\d|PC\d_\d|CD\d_\d|RADESYS|EQUINOX|LONPOLE|LATPOLE|"
    r"MJDREF|[AB]P?_ORDER|[AB]P?_\d+_\d+|[AB]_DMAX)$"
)


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


def set_keywords(product: FitsProduct, cards: Mapping[str, Any]) -> None:
    """:func:`shared.datamodels.set_cards` with the comments of the tweakreg cards."""
    set_cards(product, cards, comments=TWEAKREG_COMMENTS)


def replace_wcs(product: FitsProduct, wcs: WCS) -> None:
    """Put ``wcs`` in the product's SCI header in place of whatever WCS it had."""
    for name in [k for k in product.keywords if WCS_CARD.match(k)]:
        del product.keywords[name]
    sci = product.hdu_keywords.get("SCI", {})
    for name in [k for k in sci if WCS_CARD.match(k)]:
        del sci[name]
    cards = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in wcs_header(wcs).items()}
    set_keywords(product, cards)
