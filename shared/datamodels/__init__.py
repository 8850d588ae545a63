"""Read and write JWST-layout products; DQ flags; keyword maps."""

from shared.datamodels import dqflags
from shared.datamodels.fits_io import (
    FitsProduct,
    MalformedProductError,
    card_value,
    read_product,
    set_cards,
    write_product,
)
from shared.datamodels.keywords import KEYWORDS

__all__ = ["KEYWORDS", "FitsProduct", "MalformedProductError", "card_value", "dqflags", "read_product", "set_cards",
           "write_product"]
