"""The spectral gwcs of a slit exposure and of its rectified slit, as the public products
carry it at ``meta.wcs``: pixels to (RA, Dec, wavelength).

A slit dispersed along rows (:mod:`.trace`), frames::

    detector (x, y pixels of the readout window)
      -> v2v3  (V2, V3 arcsec; wavelength um)    the DISTORTION model, the row's wavelength
      -> world (RA, Dec deg; wavelength um)      the pointing's rotation (v23tosky)

A pixel's sky position is the point of the slit's centre line at its place along the
slit: its column less the trace's at its row (the prism moves light along the rows, so a
row says nothing of where across the slit it came from), put at the slit's reference
point (SPECWCS IMX, IMY) and through the detector's DISTORTION model, as the public
pipeline does (its ``alpha``, with ``beta`` = 0). Its wavelength is the trace's at its
row (NaN off the spectrum's rows). The inverse takes the place along the slit from the
sky position and the row from the wavelength, so a point of the world lands on the row
of its wavelength. The bounding box is the slit's image: the spectrum's rows, and half
the slit's length either side of the trace.

A rectified slit (the ``_s2d``, :mod:`.rectify`) has its own pixels: column ``i`` is slit
coordinate ``offsets[0] + i`` pixels from the trace (plus ``shift``, for a grid centred
on a source), row ``j`` is detector row ``rows[0] + j``. Its gwcs maps them to the
detector pixel they came from and on through the exposure's gwcs (frames detector, v2v3,
world), exactly.

All of this is said in the trace's dispersion frame (:mod:`.trace`). For a spectrum
dispersed along detector x (NIRSpec, ``DISPAXIS`` 1) the gwcs takes the window's own
(x, y), swapping them into the frame and the DISTORTION model's inputs back, and a
rectified slit is written transposed as well (wavelength along its x, as the public
NIRSpec ``_s2d``): its gwcs takes that grid's (x, y).

gwcs is imported when a function needs it, as in :mod:`shared.imaging_wcs`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from astropy.modeling import bind_bounding_box
from astropy.modeling import models as m

from shared.imaging_wcs import TelescopePointing, v23tosky
from shared.spectra.trace import SlitTrace

if TYPE_CHECKING:
    import gwcs
    from astropy.modeling import Model

__all__ = ["rectified_gwcs", "slit_gwcs"]


def _frames():
    from astropy import coordinates as coord
    from astropy import units as u
    from gwcs import coordinate_frames as cf

    def spectral(name: str):
        return cf.SpectralFrame(name=name, axes_order=(2,), unit=(u.micron,), axes_names=("wavelength",))

    detector = cf.Frame2D(name="detector", axes_order=(0, 1), unit=(u.pix, u.pix))
    v2v3 = cf.CompositeFrame([cf.Frame2D(name="v2v3_spatial", axes_order=(0, 1), axes_names=("v2", "v3"),
                                         unit=(u.arcsec, u.arcsec)), spectral("spec")], name="v2v3")
    world = cf.CompositeFrame([cf.CelestialFrame(name="icrs", reference_frame=coord.ICRS(), axes_order=(0, 1),
                                                 unit=(u.deg, u.deg), axes_names=("RA", "DEC")),
                               spectral("spectral")], name="world")
    return detector, v2v3, world


def _row_wavelength(trace: SlitTrace) -> tuple[Model, Model]:
    """(row -> wavelength, wavelength -> row) over the spectrum's rows; NaN beyond them."""
    rows = trace.rows.astype(np.float64)
    wl = np.asarray(trace.wavelength, np.float64)[trace.rows]
    forward = m.Tabular1D(points=rows, lookup_table=wl, bounds_error=False, fill_value=np.nan, name="row2wavelength")
    order = np.argsort(wl)
    forward.inverse = m.Tabular1D(points=wl[order], lookup_table=rows[order], bounds_error=False, fill_value=np.nan,
                                  name="wavelength2row")
    return forward, forward.inverse


def _trace_x(trace: SlitTrace) -> Model:
    """Window row -> window column of the slit's centre (the trace); NaN beyond its rows."""
    return m.Tabular1D(points=trace.rows.astype(np.float64), lookup_table=np.asarray(trace.x, np.float64)[trace.rows],
                       bounds_error=False, fill_value=np.nan, name="trace_x")


def _swapped_inputs(model: Model) -> Model:
    """``model`` taking its two inputs the other way round, with its inverse's two outputs
    swapped to match."""
    out = m.Mapping((1, 0)) | model
    out.inverse = model.inverse | m.Mapping((1, 0))
    return out


def slit_gwcs(distortion: Model, pointing: TelescopePointing, trace: SlitTrace, half_length: float, *,
              xstart: int, ystart: int, xsize: int, ysize: int) -> gwcs.WCS:
    """The gwcs of a slit exposure's readout window (see the module docstring).

    Parameters
    ----------
    distortion : Model
        The detector's DISTORTION model (full-frame 0-based pixels to V2/V3 arcsec), with
        its inverse.
    pointing : TelescopePointing
        RA_REF, DEC_REF, ROLL_REF at V2_REF, V3_REF.
    trace : SlitTrace
        The slit on the window (rows, wavelengths, the trace's columns).
    half_length : float
        Half the slit's length, pixels.
    xstart, ystart, xsize, ysize : int
        The window (SUBSTRT1/2, 1-based; its size in pixels), on the detector.

    Raises
    ------
    ValueError
        A trace on fewer than two rows of the window.
    """
    from gwcs import wcs

    if trace.rows.size < 2:
        raise ValueError("the slit's trace covers fewer than two lines of the window")
    swap = trace.dispaxis == 1
    if swap:  # work in the dispersion frame: the window transposed
        xstart, ystart, xsize, ysize = ystart, xstart, ysize, xsize
        distortion = _swapped_inputs(distortion)
    wavelength, row_of = _row_wavelength(trace)
    trace_x = _trace_x(trace)
    # the slit's reference point, 0-based full-frame (IMX - 1, IMY - 1): where the slit's
    # centre images undispersed, through which the DISTORTION model sees the sky
    ref_x, ref_y = trace.ref[0] + (xstart - 1.0), trace.ref[1] + (ystart - 1.0)
    along = (m.Mapping((0,), n_inputs=2) | m.Shift(ref_x)) - (m.Mapping((1,), n_inputs=2) | trace_x)
    on_slit = m.Mapping((0, 1, 0, 1)) | (along & (m.Mapping((1,), n_inputs=2) | m.Const1D(ref_y)))
    forward = m.Mapping((0, 1, 1)) | ((on_slit | distortion.copy()) & wavelength)
    # back: the place along the slit from the sky, the row from the wavelength, the
    # column from both (the trace at that row)
    column = (m.Mapping((0,), n_inputs=3) | m.Shift(-ref_x)) + (m.Mapping((2,), n_inputs=3) | trace_x)
    row = m.Mapping((2,), n_inputs=3)
    forward.inverse = ((distortion.inverse & row_of) | m.Mapping((0, 1, 2, 0, 1, 2))) | (column & row)
    x = np.asarray(trace.x, np.float64)[trace.rows]
    bbox_x = (max(-0.5, np.floor(np.nanmin(x) - half_length) - 0.5),
              min(xsize - 0.5, np.ceil(np.nanmax(x) + half_length) + 0.5))
    bbox_y = (max(-0.5, float(trace.rows[0]) - 0.5), min(ysize - 0.5, float(trace.rows[-1]) + 0.5))
    if swap:  # the window's own (x, y) in
        forward, bbox_x, bbox_y = _swapped_inputs(forward), bbox_y, bbox_x
    bind_bounding_box(forward, (bbox_x, bbox_y), order="F")
    detector, v2v3, world = _frames()
    return wcs.WCS([(detector, forward), (v2v3, v23tosky(pointing) & m.Identity(1)), (world, None)])


def rectified_gwcs(exposure: gwcs.WCS, trace: SlitTrace, rows: np.ndarray, offsets: np.ndarray,
                   shift: float = 0.0) -> gwcs.WCS:
    """The gwcs of a rectified slit (see the module docstring): ``rows`` the detector rows
    of its rows (consecutive), ``offsets`` the slit coordinate of its columns (pixels from
    the trace, whole steps), ``shift`` how far from the trace its zero lies (a source's
    place along the slit); ``exposure`` the gwcs of the exposure it was cut from. For a
    trace of ``dispaxis`` 1 the grid is the transposed one (wavelength along x)."""
    from gwcs import wcs

    rows = np.asarray(rows)
    first_row, first_offset = float(rows[0]), float(offsets[0]) + float(shift)
    trace_x = _trace_x(trace)
    x_det = (m.Mapping((0,), n_inputs=2) | m.Shift(first_offset)) + (m.Mapping((1,), n_inputs=2)
                                                                     | m.Shift(first_row) | trace_x)
    column = (m.Mapping((0,), n_inputs=2) | m.Shift(-first_offset)) - (m.Mapping((1,), n_inputs=2) | trace_x)
    row = m.Mapping((1,), n_inputs=2)
    to_detector = m.Mapping((0, 1, 0, 1)) | (x_det & (row | m.Shift(first_row)))
    to_detector.inverse = m.Mapping((0, 1, 0, 1)) | (column & (row | m.Shift(-first_row)))
    bbox = ((-0.5, len(offsets) - 0.5), (-0.5, rows.size - 0.5))
    if trace.dispaxis == 1:  # the transposed grid in, the window's (x, y) out
        inner = to_detector
        to_detector = m.Mapping((1, 0)) | inner | m.Mapping((1, 0))
        to_detector.inverse = m.Mapping((1, 0)) | inner.inverse | m.Mapping((1, 0))
        bbox = bbox[::-1]
    forward = to_detector | exposure.get_transform("detector", "v2v3")
    forward.inverse = exposure.get_transform("v2v3", "detector") | to_detector.inverse
    bind_bounding_box(forward, bbox, order="F")
    detector, v2v3, world = _frames()
    return wcs.WCS([(detector, forward), (v2v3, exposure.get_transform("v2v3", "world")), (world, None)])
