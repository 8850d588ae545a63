"""Read and write JWST-layout products; DQ flags; keyword maps."""

from shared.datamodels import dqflags
from shared.datamodels.fits_io import (
    FitsProduct,
    MalformedProductError,
    read_product,
    write_product,
)
from shared.datamodels.keywords import KEYWORDS

__all__ = ["KEYWORDS", "FitsProduct", "MalformedProductError", "dqflags", "read_product", "write_product"]
