"""msaflagopen: NIRSpec MOS pixels lit through shutters stuck open.

A shutter that failed open lets the sky (and whatever lies there) through wherever the
MSA is pointed: its spectrum falls on the detector whether or not the exposure planned
it. As in the public step, every pixel of such a shutter's spectrum
(:func:`shared.spectra.msa.shutter_footprint`) is marked MSA_FAILED_OPEN; the data are
left as they are (the flag is informational: later steps keep using the pixels, and
spectra on those pixels are known to be contaminated).
"""

from __future__ import annotations

import numpy as np

from shared.datamodels.dqflags import PIXEL

__all__ = ["flag_failed_open"]

_FAILED_OPEN = np.uint32(PIXEL["MSA_FAILED_OPEN"])


def flag_failed_open(dq: np.ndarray, footprint: np.ndarray) -> tuple[np.ndarray, int]:
    """(a new DQ with MSA_FAILED_OPEN set where ``footprint`` is true, the number of pixels
    flagged)."""
    if footprint.shape != dq.shape:
        raise ValueError(f"the failed-open footprint {footprint.shape} is not the DQ's shape {dq.shape}")
    out = dq.copy()
    out[footprint] |= _FAILED_OPEN
    return out, int(np.count_nonzero(footprint))
