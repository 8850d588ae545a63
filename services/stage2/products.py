"""Keywords of stage-2 products and writing them.

:data:`shared.datamodels.KEYWORDS` places every keyword it knows. Stage 2 also writes
keywords it may not know yet (its step statuses, the association, photometry, resampling
and the SIP terms of the WCS); :func:`set_keywords` routes those to their public HDU
(``hdu_keywords``) and data-model path (``extra_meta``), and :func:`write_stage2_product`
adds the PRIMARY ones after the shared writer has written the file. A keyword that the
shared table learns later simply takes the shared path.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from astropy.io import fits

from shared.datamodels import KEYWORDS, FitsProduct, write_product

__all__ = ["STAGE2_KEYWORDS", "set_keywords", "write_stage2_product"]

# Public data-model path, HDU and comment of the stage-2 keywords (stdatamodels core,
# photometry and wcsinfo schemas).
STAGE2_KEYWORDS: dict[str, tuple[str, str, str]] = {
    "S_BKDSUB": ("meta.cal_step.bkg_subtract", "PRIMARY", "Background subtraction"),
    "S_WCS": ("meta.cal_step.assign_wcs", "PRIMARY", "Assign World Coordinate System"),
    "S_FLAT": ("meta.cal_step.flat_field", "PRIMARY", "Flat field correction"),
    "S_PHOTOM": ("meta.cal_step.photom", "PRIMARY", "Photometric calibration"),
    "S_RESAMP": ("meta.cal_step.resample", "PRIMARY", "Image resampling"),
    "ASNPOOL": ("meta.asn.pool_name", "PRIMARY", "Name of the ASN pool"),
    "ASNTABLE": ("meta.asn.table_name", "PRIMARY", "Name of the ASN table"),
    "NDRIZ": ("meta.resample.pointings", "PRIMARY", "Number of inputs in the resampled product"),
    "RESWHT": ("meta.resample.weight_type", "PRIMARY", "Type of drizzle weighting of the inputs"),
    "PIXFRAC": ("meta.resample.pixfrac", "PRIMARY", "Drizzle pixel shrink factor"),
    "PXSCLRT": ("meta.resample.pixel_scale_ratio", "PRIMARY", "Output over input pixel scale"),
    "PHOTMJSR": ("meta.photometry.conversion_megajanskys", "SCI", "Flux density (MJy/sr) producing 1 DN/s"),
    "PHOTUJA2": ("meta.photometry.conversion_microjanskys", "SCI", "Flux density (uJy/arcsec2) producing 1 DN/s"),
    "PIXAR_SR": ("meta.photometry.pixelarea_steradians", "SCI", "Nominal pixel area in steradians"),
    "PIXAR_A2": ("meta.photometry.pixelarea_arcsecsq", "SCI", "Nominal pixel area in arcsec^2"),
}


def set_keywords(product: FitsProduct, cards: Mapping[str, Any], *, default_hdu: str = "SCI") -> None:
    """Set ``cards`` on ``product``: shared keywords in ``keywords``, stage-2 ones in
    their HDU (and data-model path), any other (WCS terms such as A_2_0, LONPOLE) as a
    card of ``default_hdu``."""
    for name, value in cards.items():
        if name in KEYWORDS:
            product.keywords[name] = value
            continue
        if value is None:  # as the shared writer: a keyword without a value is not written
            continue
        path, hdu, comment = STAGE2_KEYWORDS.get(name, (None, default_hdu, None))
        product.hdu_keywords.setdefault(hdu, {})[name] = value if comment is None else (value, _fit(name, value, comment))
        if path is not None:
            product.extra_meta[path] = value


def _fit(name: str, value: Any, comment: str) -> str:
    """The comment, shortened so the card stays one 80-character line."""
    room = 80 - len(fits.Card(name, value).image.rstrip()) - 3  # " / " separator
    return comment[: max(room, 0)]


def write_stage2_product(path: str | Path, product: FitsProduct) -> Path:
    """Write ``product`` with :func:`shared.datamodels.write_product`, then add its
    PRIMARY cards the shared writer does not place. Deterministic like the shared writer."""
    path = write_product(path, product)
    extra = product.hdu_keywords.get("PRIMARY", {})
    if extra:
        with fits.open(path, mode="update") as hdul:
            header = hdul[0].header
            for name, value in extra.items():
                header[name] = value
    return path
