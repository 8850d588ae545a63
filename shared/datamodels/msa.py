"""Reading an MSA metadata file (NIRSpec MOS, MSAMETFL): its SHUTTER_INFO and SOURCE_INFO
tables as :class:`shared.spectra.msa.MsaMetadata`, for the pure functions of
:mod:`shared.spectra.msa`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.io import fits

from shared.spectra.msa import MsaMetadata

__all__ = ["read_msa_metadata"]


def read_msa_metadata(path: str | Path) -> MsaMetadata:
    """The tables of the MSA metadata file ``path``.

    Raises
    ------
    ValueError
        Not a readable FITS file, or one without the SHUTTER_INFO or SOURCE_INFO table."""
    path = Path(path)
    try:
        with fits.open(path, memmap=False) as hdul:
            names = [h.name for h in hdul]
            missing = [t for t in ("SHUTTER_INFO", "SOURCE_INFO") if t not in names]
            if missing:
                raise ValueError(f"{path.name}: no {', '.join(missing)} table (an MSA metadata file has "
                                 "SHUTTER_INFO and SOURCE_INFO)")
            return MsaMetadata(path.name, np.array(hdul["SHUTTER_INFO"].data), np.array(hdul["SOURCE_INFO"].data))
    except OSError as exc:
        raise ValueError(f"{path.name}: not a readable FITS file ({exc})") from None
