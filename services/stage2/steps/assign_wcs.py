"""assign_wcs: the imaging WCS of a readout window (a gwcs and its FITS approximation),
and its footprint.

With a DISTORTION reference the WCS is the gwcs jwst's imaging ``assign_wcs`` composes
(:func:`shared.imaging_wcs.imaging_gwcs`): detector pixels -> subarray shift -> filter
offset (FILTEROFFSET, when the reference has a row for the exposure's FILTER/PUPIL) ->
the DISTORTION model -> (V2, V3) -> the pointing (RA_REF, DEC_REF, ROLL_REF at V2_REF,
V3_REF) -> ICRS. Its TAN-SIP approximation (CRPIX at the window centre, fitted to
1e-5 pixel) goes into the SCI header, and is what the later steps compute with.
Without a distortion, the pointing WCS (TAN, RA_REF/DEC_REF at the window centre, +y at
ROLL_REF) is kept and the gwcs is exactly that.

S_REGION is the polygon through the sky positions of the window's outer pixel corners
(0-based pixel edges -0.5 and n - 0.5), ICRS degrees, as the public pipeline writes it.

Pointing errors are not known here: aligning to the sky is stage 3's tweakreg.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from astropy.modeling import Model
from astropy.wcs import WCS

from shared.footprints import s_region_keyword
from shared.imaging_wcs import TelescopePointing, fits_approximation, fits_gwcs, imaging_gwcs
from shared.wcs import wcs_header, window_wcs

if TYPE_CHECKING:
    import gwcs

__all__ = ["exposure_wcs", "filter_offset", "footprint", "pointing_wcs", "s_region", "wcs_cards"]


def exposure_wcs(distortion: Model, pointing: TelescopePointing, *, xstart: int, ystart: int, xsize: int,
                 ysize: int, offset: tuple[float, float] | None = None) -> tuple[gwcs.WCS, WCS]:
    """(gwcs, its TAN-SIP approximation) of a window (1-based SUBSTRT1/2 ``xstart``,
    ``ystart``; ``xsize`` x ``ysize`` pixels) through a DISTORTION model, with the FILTEROFFSET
    ``offset`` (column, row pixels) when given."""
    gw = imaging_gwcs(distortion, pointing, xstart=int(xstart), ystart=int(ystart), xsize=int(xsize),
                      ysize=int(ysize), filter_offset=offset)
    return gw, fits_approximation(gw, (int(ysize), int(xsize)))


def pointing_wcs(ra_ref: float, dec_ref: float, roll_ref: float, pixel_scale: float, xsize: int,
                 ysize: int) -> tuple[gwcs.WCS, WCS]:
    """(gwcs, FITS WCS) without distortion: TAN, the window centre at (``ra_ref``,
    ``dec_ref``) degrees, +y at position angle ``roll_ref``; ``pixel_scale`` arcsec/pixel."""
    if not pixel_scale > 0:
        raise ValueError(f"pixel scale must be positive, got {pixel_scale}")
    wcs = window_wcs(ra_ref, dec_ref, roll_ref, pixel_scale, int(xsize), int(ysize))
    return fits_gwcs(wcs, (int(ysize), int(xsize))), wcs


def filter_offset(rows: Sequence[Mapping[str, Any]], filter_: str | None, pupil: str | None) -> tuple[float, float] | None:
    """(column_offset, row_offset) pixels of the FILTEROFFSET row for this FILTER (and
    PUPIL, when the row names one); None when no row applies."""
    def same(a: Any, b: Any) -> bool:
        return str(a or "").strip().upper() == str(b or "").strip().upper()

    for row in rows:
        if same(row.get("filter"), filter_) and ("pupil" not in row or same(row.get("pupil"), pupil)):
            return float(row.get("column_offset", 0.0)), float(row.get("row_offset", 0.0))
    return None


def wcs_cards(wcs: WCS) -> dict:
    """SCI-header keywords of ``wcs`` (SIP terms included), values as plain Python numbers."""
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in wcs_header(wcs).items()}


def footprint(wcs: WCS, shape: tuple[int, int]) -> np.ndarray:
    """Sky positions (ra, dec) degrees, shape (4, 2), of the outer corners of a window of
    ``shape`` (ny, nx): (-0.5, -0.5), (nx-0.5, -0.5), (nx-0.5, ny-0.5), (-0.5, ny-0.5)."""
    ny, nx = shape
    x = np.array([-0.5, nx - 0.5, nx - 0.5, -0.5])
    y = np.array([-0.5, -0.5, ny - 0.5, ny - 0.5])
    ra, dec = wcs.all_pix2world(x, y, 0)
    return np.column_stack([np.mod(ra, 360.0), dec])


def s_region(corners: np.ndarray) -> str:
    """The S_REGION value of a footprint (degrees; :func:`shared.footprints.s_region_keyword`)."""
    return s_region_keyword([(float(ra), float(dec)) for ra, dec in np.asarray(corners)])
