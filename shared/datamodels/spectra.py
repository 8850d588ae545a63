"""The ``_x1d`` product (a MultiSpecModel): the extracted spectra, stage 2's or stage 3's."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from shared.datamodels.fits_io import FitsProduct, SpectrumTable, set_cards
from shared.datamodels.keywords import SLIT_KEYWORDS
from shared.spectra import spectable_units

__all__ = ["x1d_product"]

# SCI-header cards of an image product that a table product has no SCI extension for
_IMAGE_ONLY = frozenset({"BUNIT", "PHOTMJSR", "PHOTUJA2", "PIXAR_SR", "PIXAR_A2", "SRCTYPE", "DISPAXIS", "SLTNAME",
                         "SRCXPOS", "SRCYPOS"})


def x1d_product(spectra: Sequence[tuple[np.ndarray, Mapping[str, Any]]], header: Mapping[str, Any]) -> FitsProduct:
    """A MultiSpecModel of spectral tables (the public ``spectable`` layout), each with its
    cards (SLTNAME, SRCTYPE, SRCXPOS, SRCYPOS, SOURCEID, ...; None values left out) and its
    columns' units in its EXTRACT1D extension, and the product's keywords ``header`` in
    PRIMARY, less the image's own SCI cards and distortion terms."""
    product = FitsProduct(model_type="MultiSpecModel", spectra=[
        SpectrumTable(table, {k: v for k, v in {**spectable_units(table), **cards}.items() if v is not None})
        for table, cards in spectra])
    set_cards(product, {k: v for k, v in header.items()
                        if k not in _IMAGE_ONLY and k not in SLIT_KEYWORDS and not k.startswith(("A_", "B_", "AP_", "BP_"))})
    return product
