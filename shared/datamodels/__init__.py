"""Read and write JWST-layout products; DQ flags; keyword maps."""

from shared.datamodels import dqflags
from shared.datamodels.fits_io import (
    FitsProduct,
    MalformedProductError,
    card_value,
    content_type,
    read_product,
    set_cards,
    write_output,
    write_product,
)
from shared.datamodels.keywords import KEYWORDS

__all__ = ["KEYWORDS", "FitsProduct", "MalformedProductError", "card_value", "content_type", "dqflags",
           "read_product", "set_cards", "write_output", "write_product"]
