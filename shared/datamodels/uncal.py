"""The ``_uncal`` product (Level1bModel): raw ramps as ingest writes them.

SCI is uint16 (nints, ngroups, ny, nx); ZEROFRAME uint16 (nints, ny, nx) when the zero
frame was downlinked; REFOUT uint16 (nints, ngroups, ny/4, nx) for MIRI; GROUP and
INT_TIMES tables; the ASDF metadata HDU last.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from shared.datamodels.fits_io import FitsProduct, read_product, write_product

__all__ = [
    "GROUP_DTYPE",
    "INT_TIMES_DTYPE",
    "MODEL_TYPE",
    "group_table",
    "int_times_table",
    "read_uncal",
    "uncal_product",
    "write_uncal",
]

MODEL_TYPE = "Level1bModel"

GROUP_DTYPE = np.dtype([
    ("integration_number", ">i4"),
    ("group_number", ">i2"),
    ("end_day", ">i2"),
    ("end_milliseconds", ">i4"),
    ("end_submilliseconds", ">i2"),
    ("group_end_time", "S26"),
    ("number_of_columns", ">i2"),
    ("number_of_rows", ">i2"),
    ("number_of_gaps", ">i2"),
    ("completion_code_number", ">i2"),
    ("completion_code_text", "S36"),
    ("bary_end_time", ">f8"),
    ("helio_end_time", ">f8"),
])

INT_TIMES_DTYPE = np.dtype([
    ("integration_number", ">i4"),
    ("int_start_MJD_UTC", ">f8"),
    ("int_mid_MJD_UTC", ">f8"),
    ("int_end_MJD_UTC", ">f8"),
    ("int_start_BJD_TDB", ">f8"),
    ("int_mid_BJD_TDB", ">f8"),
    ("int_end_BJD_TDB", ">f8"),
])


def group_table(rows: list[tuple]) -> np.ndarray:
    """GROUP table from tuples in :data:`GROUP_DTYPE` order."""
    return np.array(rows, dtype=GROUP_DTYPE)


def int_times_table(rows: list[tuple]) -> np.ndarray:
    """INT_TIMES table from tuples in :data:`INT_TIMES_DTYPE` order."""
    return np.array(rows, dtype=INT_TIMES_DTYPE)


def uncal_product(
    keywords: dict,
    sci: np.ndarray,
    group: np.ndarray,
    int_times: np.ndarray,
    zeroframe: np.ndarray | None = None,
    refout: np.ndarray | None = None,
) -> FitsProduct:
    if sci.ndim != 4 or sci.dtype != np.uint16:
        raise ValueError(f"_uncal SCI must be uint16 4-D, got {sci.dtype} {sci.shape}")
    images = {"SCI": sci}
    if zeroframe is not None:
        images["ZEROFRAME"] = zeroframe.astype(np.uint16, copy=False)
    if refout is not None:
        images["REFOUT"] = refout.astype(np.uint16, copy=False)
    return FitsProduct(
        model_type=MODEL_TYPE,
        keywords=dict(keywords),
        images=images,
        tables={"GROUP": group, "INT_TIMES": int_times},
    )


def write_uncal(path: str | Path, product: FitsProduct) -> Path:
    return write_product(path, product)


def read_uncal(path: str | Path) -> FitsProduct:
    return read_product(path)
