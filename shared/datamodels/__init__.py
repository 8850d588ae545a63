"""Read and write JWST-layout products; DQ flags; keyword maps."""

from shared.datamodels import dqflags
from shared.datamodels.fits_io import (
    MULTI_SLIT_MODELS,
    FitsProduct,
    MalformedProductError,
    SlitProduct,
    SpectrumTable,
    card_value,
    content_type,
    read_product,
    set_cards,
    single_slit,
    write_output,
    write_product,
)
from shared.datamodels.keywords import KEYWORDS

__all__ = ["KEYWORDS", "MULTI_SLIT_MODELS", "FitsProduct", "MalformedProductError", "SlitProduct", "SpectrumTable", "card_value",
           "content_type", "dqflags", "read_product", "set_cards", "single_slit", "write_output", "write_product"]
