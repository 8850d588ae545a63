"""Keywords and layouts of the stage-3 products built from several members.

Level-3 keywords (``_i2d``, ``_segm``): the earliest member's keywords without what
belongs to one exposure (its WCS, DQ-related and segment keywords), DETECTOR
"MULTIPLE" when members differ, EXPSTART/EXPEND the earliest start and latest end,
EXPMID their middle, and the exposure times summed over distinct exposures.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from astropy.wcs import WCS

from services.stage3.products import WCS_CARD, card_value, replace_wcs, set_keywords
from shared.datamodels import FitsProduct
from shared.footprints import s_region_keyword
from shared.imaging_wcs import fits_gwcs

__all__ = ["i2d_product", "level3_keywords", "pixel_area_cards", "s_region", "segm_product"]

SR_PER_ARCSEC2 = (math.pi / 180.0 / 3600.0) ** 2
# One exposure's keywords that a combined product must not claim.
_PER_EXPOSURE = ("FILENAME", "S_REGION", "EXPOSURE", "EXSEGNUM", "EXSEGTOT", "INTSTART", "INTEND", "RA_REF", "DEC_REF",
                 "ROLL_REF", "V2_REF", "V3_REF", "VPARITY", "V3I_YANG", "BKGLEVEL", "BKGSUB", "BKGMETH", "TWKREF",
                 "TWKDX", "TWKDY", "TWKROT", "TWKRMS", "TWKNMAT", "DCRPIX1", "DCRPIX2")


def level3_keywords(members: Sequence[FitsProduct]) -> tuple[dict, dict]:
    """(shared keywords, other cards by HDU) of a product combining ``members``."""
    order = sorted(range(len(members)), key=lambda i: float(card_value(members[i], "EXPSTART", 0.0) or 0.0))
    first = members[order[0]]
    keywords = {k: v for k, v in first.keywords.items() if k not in _PER_EXPOSURE and not WCS_CARD.match(k)}
    other = {hdu: {k: v for k, v in cards.items() if k not in _PER_EXPOSURE and not WCS_CARD.match(k)}
             for hdu, cards in first.hdu_keywords.items() if hdu in ("PRIMARY", "SCI")}
    detectors = {str(m.keywords.get("DETECTOR")) for m in members}
    if len(detectors) > 1:
        keywords["DETECTOR"] = "MULTIPLE"
    starts = [float(v) for m in members if (v := card_value(m, "EXPSTART")) is not None]
    ends = [float(v) for m in members if (v := card_value(m, "EXPEND")) is not None]
    if starts and ends:
        keywords.update(EXPSTART=min(starts), EXPEND=max(ends), EXPMID=(min(starts) + max(ends)) / 2)
        keywords.update({"MJD-BEG": min(starts), "MJD-END": max(ends), "MJD-AVG": (min(starts) + max(ends)) / 2})
    distinct = {}
    for m in members:
        key = (card_value(m, "VISIT"), card_value(m, "VISITGRP"), card_value(m, "SEQ_ID"), card_value(m, "ACT_ID"),
               card_value(m, "EXPOSURE"))
        distinct[key] = m
    for name in ("EFFEXPTM", "XPOSURE", "TMEASURE", "DURATION"):
        values = [card_value(m, name) for m in distinct.values()]
        if all(v is not None for v in values) and values:
            keywords[name] = float(sum(float(v) for v in values))
    return keywords, other


def s_region(wcs: WCS, covered: np.ndarray) -> str:
    """S_REGION of the corners of the bounding box of the covered pixels."""
    ys, xs = np.nonzero(covered)
    if xs.size == 0:
        ny, nx = covered.shape
        xs, ys = np.array([0, nx - 1]), np.array([0, ny - 1])
    x = np.array([xs.min() - 0.5, xs.max() + 0.5, xs.max() + 0.5, xs.min() - 0.5])
    y = np.array([ys.min() - 0.5, ys.min() - 0.5, ys.max() + 0.5, ys.max() + 0.5])
    ra, dec = wcs.pixel_to_world_values(x, y)
    return s_region_keyword([(float(a), float(d)) for a, d in zip(ra, dec, strict=True)])


def pixel_area_cards(wcs: WCS) -> dict:
    """PIXAR_A2 and PIXAR_SR of a pixel of ``wcs`` (at its reference point)."""
    area_a2 = float(abs(np.linalg.det(wcs.pixel_scale_matrix))) * 3600.0**2
    return {"PIXAR_A2": area_a2, "PIXAR_SR": area_a2 * SR_PER_ARCSEC2}


def i2d_product(header: dict, other: dict, images: dict[str, np.ndarray], wcs: WCS, resample_cards: dict,
                bunit: str) -> FitsProduct:
    """The ``_i2d`` (ImageModel layout of resampled products: SCI, ERR, CON, WHT, VAR_*)
    with the grid's WCS and pixel area in the SCI header, and its gwcs as ``meta.wcs``."""
    product = FitsProduct(model_type="ImageModel", images=images, hdu_keywords={"ERR": {"BUNIT": bunit}},
                          extra_meta={"meta.wcs": fits_gwcs(wcs, images["SCI"].shape)})
    for hdu, cards in other.items():
        product.hdu_keywords.setdefault(hdu, {}).update(cards)
    set_keywords(product, {**header, "BUNIT": bunit, **resample_cards})
    replace_wcs(product, wcs)
    area = pixel_area_cards(wcs)
    if card_value(product, "PHOTMJSR") is not None or bunit == "MJy/sr":
        set_keywords(product, area)
    set_keywords(product, {"S_REGION": s_region(wcs, np.isfinite(images["SCI"]))})
    return product


def segm_product(header: dict, other: dict, labels: np.ndarray, wcs: WCS) -> FitsProduct:
    """The ``_segm``: SegmentationMapModel, SCI = int32 labels (0 = no source), the grid's
    WCS (and gwcs)."""
    product = FitsProduct(model_type="SegmentationMapModel", images={"SCI": labels.astype(np.int32)},
                          extra_meta={"meta.wcs": fits_gwcs(wcs, labels.shape)})
    for hdu, cards in other.items():
        product.hdu_keywords.setdefault(hdu, {}).update({k: v for k, v in cards.items() if hdu == "PRIMARY"})
    set_keywords(product, {k: v for k, v in header.items() if k != "BUNIT"})
    replace_wcs(product, wcs)
    return product
