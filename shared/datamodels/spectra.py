"""The ``_x1d`` product (a MultiSpecModel): one extracted spectrum, stage 2's or stage 3's."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from shared.datamodels.fits_io import FitsProduct, set_cards
from shared.spectra import spectable_units

__all__ = ["x1d_product"]

# SCI-header cards of an image product that a table product has no SCI extension for
_IMAGE_ONLY = frozenset({"BUNIT", "PHOTMJSR", "PHOTUJA2", "PIXAR_SR", "PIXAR_A2", "SRCTYPE", "DISPAXIS", "SLTNAME",
                         "SRCXPOS", "SRCYPOS"})


def x1d_product(table: np.ndarray, header: Mapping[str, Any], spectrum_cards: Mapping[str, Any]) -> FitsProduct:
    """A MultiSpecModel of one spectral table (the public ``spectable`` layout) in its
    EXTRACT1D extension, with the table's units and ``spectrum_cards`` there (SLTNAME,
    SRCTYPE, SRCXPOS, SRCYPOS; None values left out), and the product's keywords
    ``header`` in PRIMARY, less the image's own SCI cards and distortion terms."""
    ext = {**spectable_units(table), "EXTVER": 1, **spectrum_cards}
    product = FitsProduct(model_type="MultiSpecModel", tables={"EXTRACT1D": table},
                          hdu_keywords={"EXTRACT1D": {k: v for k, v in ext.items() if v is not None}})
    set_cards(product, {k: v for k, v in header.items()
                        if k not in _IMAGE_ONLY and not k.startswith(("A_", "B_", "AP_", "BP_"))})
    return product
