"""The imaging WCS as the public pipeline composes it: a gwcs from detector pixels through
the telescope's (V2, V3) frame to the sky, and the FITS TAN-SIP approximation of it.

Frames of :func:`imaging_gwcs` (those of jwst's imaging ``assign_wcs``)::

    detector    0-based pixels of the readout window
      | subarray shift (SUBSTRT1/2 - 1), filter offset (FILTEROFFSET), DISTORTION model
    v2v3        telescope frame, arcsec
      | velocity aberration: identity (the simulated observatory has none)
    v2v3vacorr  arcsec
      | v23tosky: the rotation of the sphere taking (V2_REF, V3_REF) to (RA_REF, DEC_REF),
      | the +V3 axis there at position angle ROLL_REF (East of North)
    world       ICRS, degrees

The DISTORTION model (:func:`distortion_model`, one per detector, the ``model`` of a
``DistortionModel`` reference file) maps full-frame 0-based pixels (x, y) to (V2, V3)
arcsec: ``u, v = x + 1 - crpix1, y + 1 - crpix2`` about the detector's reference pixel, the
SIP polynomial of :class:`shared.wcs.SipDistortion` gives the ideal pixel offsets
``U = u + f(u, v)``, ``V = v + g(u, v)``, and ``V2 = v2_ref - pixel_scale * U``,
``V3 = v3_ref + pixel_scale * V`` (VPARITY -1, V3I_YANG 0: detector +x along -V2, +y along
+V3). Its inverse is a polynomial (the lowest degree from 6 to 9 that fits better than
1e-6 pixel) fitted over the frame and a 10 % margin. (V2, V3) are then read as spherical coordinates by v23tosky.

An exposure's (V2_REF, V3_REF) is the DISTORTION model at the centre of its readout window
(:func:`window_reference`), the point its RA_REF/DEC_REF name.

:func:`fits_approximation` fits the FITS TAN-SIP WCS jwst writes into the SCI header
(``gwcs.WCS.to_fits_sip``), with CRPIX at the window centre, here to 1e-5 pixel; stage 2 and
3 compute with that ``astropy.wcs.WCS``. :func:`fits_gwcs` is the exact gwcs of a FITS
TAN(-SIP) WCS (resampled grids), and :func:`sky_rotation` / :func:`rotate_gwcs` carry a
tweakreg correction (a rotation of the sky) from the FITS WCS over to the gwcs.

gwcs is imported when a function needs it, not with this module.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from astropy.modeling import bind_bounding_box
from astropy.modeling import models as m
from astropy.wcs import WCS, Sip

from shared.wcs import SipDistortion

if TYPE_CHECKING:
    import gwcs

__all__ = [
    "FIT_MAX_PIX_ERROR",
    "INVERSE_DEGREE",
    "TelescopePointing",
    "distortion_model",
    "fits_approximation",
    "fits_gwcs",
    "ideal_position",
    "imaging_gwcs",
    "max_separation_mas",
    "pointing_about",
    "rotate_gwcs",
    "sky_rotation",
    "v23tosky",
    "window_reference",
]

ARCSEC = 3600.0
INVERSE_DEGREE = 6  # the lowest degree tried for the inverse distortion, up to 9
_INVERSE_MAX_DEGREE = 9
FIT_MAX_PIX_ERROR = 1e-5  # pixels, forward and inverse, of the TAN-SIP approximation
_INVERSE_MARGIN = 0.1  # of the frame size, beyond every edge, where the inverse is fitted
_INVERSE_TOLERANCE = 1e-6  # pixels


@dataclass(frozen=True)
class TelescopePointing:
    """Where the aperture reference point (V2_REF, V3_REF arcsec) points: RA_REF,
    DEC_REF (degrees) and ROLL_REF (degrees, position angle of +V3 East of North there)."""

    ra_ref: float
    dec_ref: float
    roll_ref: float
    v2_ref: float
    v3_ref: float

    @classmethod
    def from_keywords(cls, kw: Mapping[str, Any], *, v2v3: tuple[float, float] | None = None) -> TelescopePointing:
        """From RA_REF, DEC_REF, ROLL_REF and V2_REF, V3_REF (``v2v3`` stands for the last
        two when given); KeyError naming a missing keyword."""
        v2, v3 = v2v3 if v2v3 is not None else (kw["V2_REF"], kw["V3_REF"])
        return cls(float(kw["RA_REF"]), float(kw["DEC_REF"]), float(kw["ROLL_REF"]), float(v2), float(v3))


def pointing_about(pointing: TelescopePointing, v2_ref: float, v3_ref: float) -> TelescopePointing:
    """The same pointing expressed about another reference point (``v2_ref``, ``v3_ref``
    arcsec): the sky position of that point and the position angle of +V3 there."""
    sky = v23tosky(pointing)
    ra, dec = (float(v) for v in sky(v2_ref, v3_ref))
    up = sky(v2_ref, v3_ref + 1.0)
    roll = _position_angle(_unit_vector(ra, dec), _unit_vector(float(up[0]), float(up[1]))) % 360.0
    return TelescopePointing(ra, dec, roll, float(v2_ref), float(v3_ref))


def ideal_position(pointing: TelescopePointing, ra: float, dec: float, *, parity: int = -1,
                   v3_yangle: float = 0.0) -> tuple[float, float]:
    """Where the sky position (``ra``, ``dec``) degrees falls in the ideal frame (arcsec) of
    the aperture whose reference point ``pointing`` is about (VPARITY ``parity``, V3I_YANG
    ``v3_yangle`` degrees): how the public pipeline reads XOFFSET/YOFFSET of a slit."""
    v2, v3 = (float(v) for v in v23tosky(pointing).inverse(ra, dec))
    dv2, dv3 = v2 - pointing.v2_ref, v3 - pointing.v3_ref
    c, s = math.cos(math.radians(v3_yangle)), math.sin(math.radians(v3_yangle))
    return parity * (dv2 * c - dv3 * s), dv2 * s + dv3 * c


def _sip_polynomial(order: int, coeffs: Mapping[tuple[int, int], float], linear: str) -> m.Polynomial2D:
    """``w + sum c_pq u^p v^q`` as a Polynomial2D in (u, v), ``linear`` naming w's term."""
    params = {f"c{p}_{q}": float(c) for (p, q), c in coeffs.items()}
    params[linear] = params.get(linear, 0.0) + 1.0
    return m.Polynomial2D(order, **params)


def _powers(u: np.ndarray, v: np.ndarray, degree: int) -> tuple[np.ndarray, list[tuple[int, int]]]:
    terms = [(p, q) for p in range(degree + 1) for q in range(degree + 1 - p)]
    return np.stack([u**p * v**q for p, q in terms], axis=1), terms


def distortion_model(sip: SipDistortion, pixel_scale: float, v2_ref: float, v3_ref: float,
                     frame_shape: tuple[int, int]) -> m.Model:
    """The DISTORTION transform of a detector: full-frame 0-based (x, y) to (V2, V3) arcsec.

    Parameters
    ----------
    sip : SipDistortion
        The optical distortion, about the full-frame reference pixel ``sip.crpix``.
    pixel_scale : float
        Arcsec per ideal pixel.
    v2_ref, v3_ref : float
        (V2, V3) arcsec of the reference pixel.
    frame_shape : (ny, nx)
        The full frame; the inverse is fitted over it and 10 % beyond each edge.

    Raises
    ------
    ValueError
        When no fitted inverse up to degree 9 is better than 1e-6 pixel.
    """
    cx, cy = sip.crpix
    ideal = (m.Shift(1.0 - cx) & m.Shift(1.0 - cy)) | m.Mapping((0, 1, 0, 1)) | (
        _sip_polynomial(sip.order, sip.a, "c1_0") & _sip_polynomial(sip.order, sip.b, "c0_1"))
    forward = ideal | (m.Scale(-pixel_scale) & m.Scale(pixel_scale)) | (m.Shift(v2_ref) & m.Shift(v3_ref))

    # The inverse: ideal pixels (U, V) -> (u, v) by a polynomial in (U, V) / L, fitted.
    ny, nx = frame_shape
    length = float(max(nx, ny)) / 2.0
    grid_x = np.linspace(-_INVERSE_MARGIN * nx, (1 + _INVERSE_MARGIN) * nx - 1, 97)
    grid_y = np.linspace(-_INVERSE_MARGIN * ny, (1 + _INVERSE_MARGIN) * ny - 1, 97)
    x, y = (a.ravel() for a in np.meshgrid(grid_x, grid_y))
    big_u, big_v = ideal(x, y)
    u, v = x + 1.0 - cx, y + 1.0 - cy
    for degree in range(INVERSE_DEGREE, _INVERSE_MAX_DEGREE + 1):
        design, terms = _powers(big_u / length, big_v / length, degree)
        cu = np.linalg.lstsq(design, u, rcond=None)[0]
        cv = np.linalg.lstsq(design, v, rcond=None)[0]
        miss = float(np.max(np.hypot(design @ cu - u, design @ cv - v)))
        if miss <= _INVERSE_TOLERANCE:
            break
    else:
        raise ValueError(f"the inverse distortion polynomial misses by {miss:.3g} px at degree {degree} "
                         f"(tolerance {_INVERSE_TOLERANCE})")
    poly_u = m.Polynomial2D(degree, **{f"c{p}_{q}": float(c) for (p, q), c in zip(terms, cu, strict=True)})
    poly_v = m.Polynomial2D(degree, **{f"c{p}_{q}": float(c) for (p, q), c in zip(terms, cv, strict=True)})
    inverse = ((m.Shift(-v2_ref) & m.Shift(-v3_ref)) | (m.Scale(-1.0 / pixel_scale) & m.Scale(1.0 / pixel_scale))
               | (m.Scale(1.0 / length) & m.Scale(1.0 / length)) | m.Mapping((0, 1, 0, 1)) | (poly_u & poly_v)
               | (m.Shift(cx - 1.0) & m.Shift(cy - 1.0)))
    forward.inverse = inverse
    forward.name = "distortion"
    return forward


def window_reference(distortion: m.Model, xstart: int, ystart: int, xsize: int, ysize: int) -> tuple[float, float]:
    """(V2, V3) arcsec of the centre of a readout window (1-based SUBSTRT1/2 ``xstart``,
    ``ystart``; ``xsize`` x ``ysize`` pixels): its V2_REF/V3_REF."""
    v2, v3 = distortion(xstart - 1 + (xsize - 1) / 2.0, ystart - 1 + (ysize - 1) / 2.0)
    return float(v2), float(v3)


def v23tosky(pointing: TelescopePointing) -> m.Model:
    """(V2, V3) arcsec to (RA, Dec) degrees for a pointing (JWST's rotation sequence)."""
    from gwcs.geometry import CartesianToSpherical, SphericalToCartesian

    p = pointing
    rotation = m.RotationSequence3D([p.v2_ref / ARCSEC, -p.v3_ref / ARCSEC, p.roll_ref, p.dec_ref, -p.ra_ref],
                                    axes_order="zyxyz")
    model = ((m.Scale(1.0 / ARCSEC) & m.Scale(1.0 / ARCSEC)) | SphericalToCartesian(wrap_lon_at=180)
             | rotation | CartesianToSpherical(wrap_lon_at=360))
    model.name = "v23tosky"
    return model


def _frames():
    from astropy import coordinates as coord
    from astropy import units as u
    from gwcs import coordinate_frames as cf

    detector = cf.Frame2D(name="detector", axes_order=(0, 1), unit=(u.pix, u.pix))
    v2v3 = cf.Frame2D(name="v2v3", axes_order=(0, 1), axes_names=("v2", "v3"), unit=(u.arcsec, u.arcsec))
    vacorr = cf.Frame2D(name="v2v3vacorr", axes_order=(0, 1), axes_names=("v2", "v3"), unit=(u.arcsec, u.arcsec))
    world = cf.CelestialFrame(reference_frame=coord.ICRS(), name="world")
    return detector, v2v3, vacorr, world


def imaging_gwcs(distortion: m.Model, pointing: TelescopePointing, *, xstart: int, ystart: int, xsize: int,
                 ysize: int, filter_offset: tuple[float, float] | None = None) -> gwcs.WCS:
    """The gwcs of a readout window (bounding box: the window's pixels).

    Parameters
    ----------
    distortion : Model
        The detector's DISTORTION model (full-frame 0-based pixels to V2/V3 arcsec).
    pointing : TelescopePointing
        RA_REF, DEC_REF, ROLL_REF at V2_REF, V3_REF.
    xstart, ystart : int
        SUBSTRT1/2, 1-based full-frame position of the window's first pixel.
    xsize, ysize : int
        Window size, pixels.
    filter_offset : (column, row), optional
        FILTEROFFSET shift (pixels) added before the distortion.
    """
    from gwcs import wcs

    to_v2v3 = distortion.copy()
    if filter_offset is not None and any(filter_offset):
        to_v2v3 = (m.Shift(float(filter_offset[0])) & m.Shift(float(filter_offset[1]))) | to_v2v3
    if (xstart, ystart) != (1, 1):
        to_v2v3 = (m.Shift(xstart - 1.0) & m.Shift(ystart - 1.0)) | to_v2v3
    bind_bounding_box(to_v2v3, ((-0.5, xsize - 0.5), (-0.5, ysize - 0.5)), order="F")
    detector, v2v3, vacorr, world = _frames()
    return wcs.WCS([(detector, to_v2v3), (v2v3, m.Identity(2)), (vacorr, v23tosky(pointing)), (world, None)])


def _pc_form(fitted: WCS) -> WCS:
    """The same WCS with CDELT (the square root of the pixel area) and a PC matrix in place
    of a CD matrix, as ingest writes the pointing WCS."""
    cd = fitted.wcs.cd if fitted.wcs.has_cd() else np.diag(fitted.wcs.cdelt) @ fitted.wcs.get_pc()
    scale = math.sqrt(abs(float(np.linalg.det(cd))))
    out = WCS(naxis=2)
    out.wcs.crpix = list(fitted.wcs.crpix)
    out.wcs.crval = list(fitted.wcs.crval)
    out.wcs.ctype = list(fitted.wcs.ctype)
    out.wcs.cunit = ["deg", "deg"]
    out.wcs.cdelt = [scale, scale]
    out.wcs.pc = cd / scale
    out.wcs.radesys = "ICRS"
    if fitted.sip is not None:
        out.sip = Sip(fitted.sip.a, fitted.sip.b, fitted.sip.ap, fitted.sip.bp, list(fitted.wcs.crpix))
    out.wcs.set()
    return out


def fits_approximation(gw: gwcs.WCS, shape: tuple[int, int], crpix: tuple[float, float] | None = None) -> WCS:
    """The TAN-SIP approximation of ``gw`` over a window of ``shape`` (ny, nx).

    CRPIX is the window centre ``((nx + 1) / 2, (ny + 1) / 2)`` unless given (1-based);
    the SIP degree (forward and inverse, AP/BP) is the lowest of 1-6 that fits within
    :data:`FIT_MAX_PIX_ERROR` pixel on a 32 x 32 grid, else 6. CDELT/PC form.
    """
    ny, nx = shape
    bbox = ((-0.5, nx - 0.5), (-0.5, ny - 0.5))
    crpix = list(crpix) if crpix is not None else [(nx + 1) / 2.0, (ny + 1) / 2.0]
    common = dict(bounding_box=bbox, npoints=32, crpix=crpix, projection="TAN")
    try:
        header = gw.to_fits_sip(max_pix_error=FIT_MAX_PIX_ERROR, degree=range(1, 7),
                                max_inv_pix_error=FIT_MAX_PIX_ERROR, inv_degree=range(1, 7), **common)
    except ValueError:  # not met within degree 6: the best there is
        header = gw.to_fits_sip(degree=6, max_inv_pix_error=1.0, inv_degree=6, **common)
    return _pc_form(WCS(header))


def _sip_models(wcs: WCS) -> tuple[m.Model, m.Model | None] | None:
    """(forward, inverse or None) of the SIP terms of ``wcs`` in (u, v) = 1-based pixel
    minus CRPIX; None without SIP."""
    sip = wcs.sip
    if sip is None:
        return None

    def poly(matrix: np.ndarray, linear: str) -> m.Polynomial2D:
        order = matrix.shape[0] - 1
        coeffs = {(p, q): matrix[p, q] for p in range(order + 1) for q in range(order + 1 - p) if matrix[p, q]}
        return _sip_polynomial(order, coeffs, linear)

    forward = m.Mapping((0, 1, 0, 1)) | (poly(sip.a, "c1_0") & poly(sip.b, "c0_1"))
    inverse = None
    if sip.ap is not None and sip.bp is not None:
        inverse = m.Mapping((0, 1, 0, 1)) | (poly(sip.ap, "c1_0") & poly(sip.bp, "c0_1"))
    return forward, inverse


def fits_gwcs(wcs: WCS, shape: tuple[int, int]) -> gwcs.WCS:
    """The gwcs (frames ``detector`` -> ``world``) equal to a celestial FITS WCS with a
    gnomonic projection, with SIP terms or without (a resampled grid), bounding box the
    ``shape`` (ny, nx) pixels. With SIP but no inverse SIP the gwcs has no inverse."""
    from gwcs import wcs as gwcs_wcs

    w = wcs.celestial
    if not all(c.endswith(("TAN", "TAN-SIP")) for c in w.wcs.ctype):
        raise ValueError(f"only gnomonic (TAN) FITS WCSs have a gwcs here, not {list(w.wcs.ctype)}")
    cd = w.wcs.cd if w.wcs.has_cd() else np.diag(w.wcs.cdelt) @ w.wcs.get_pc()
    crpix1, crpix2 = (float(c) for c in w.wcs.crpix)
    shift = m.Shift(1.0 - crpix1) & m.Shift(1.0 - crpix2)
    sky = (m.AffineTransformation2D(matrix=cd, translation=[0.0, 0.0]) | m.Pix2Sky_TAN()
           | m.RotateNative2Celestial(float(w.wcs.crval[0]), float(w.wcs.crval[1]), float(w.wcs.lonpole)))
    sip = _sip_models(w)
    if sip is None:
        transform = shift | sky
    else:
        forward, inverse = sip
        transform = shift | forward | sky
        transform.inverse = None if inverse is None else (sky.inverse | inverse | shift.inverse)
    ny, nx = shape
    bind_bounding_box(transform, ((-0.5, nx - 0.5), (-0.5, ny - 0.5)), order="F")
    detector, _, _, world = _frames()
    return gwcs_wcs.WCS([(detector, transform), (world, None)])


def _unit_vector(ra: float, dec: float) -> np.ndarray:
    a, d = math.radians(ra), math.radians(dec)
    return np.array([math.cos(d) * math.cos(a), math.cos(d) * math.sin(a), math.sin(d)])


def _east_north(ra: float, dec: float) -> tuple[np.ndarray, np.ndarray]:
    a, d = math.radians(ra), math.radians(dec)
    return (np.array([-math.sin(a), math.cos(a), 0.0]),
            np.array([-math.sin(d) * math.cos(a), -math.sin(d) * math.sin(a), math.cos(d)]))


def _radec(vector: np.ndarray) -> tuple[float, float]:
    x, y, z = vector / np.linalg.norm(vector)
    return math.degrees(math.atan2(y, x)) % 360.0, math.degrees(math.asin(max(-1.0, min(1.0, z))))


def _position_angle(origin: np.ndarray, point: np.ndarray) -> float:
    """Position angle (degrees East of North) of ``point`` seen from ``origin`` (unit vectors)."""
    east, north = _east_north(*_radec(origin))
    return math.degrees(math.atan2(float(point @ east), float(point @ north)))


def sky_rotation(old: WCS, new: WCS) -> np.ndarray:
    """The rotation of the sky (3 x 3, on unit vectors) that turns the TAN(-SIP) WCS ``old``
    into ``new``, when ``new`` differs from ``old`` only by its tangent point (CRVAL) and a
    rotation of its CD matrix, as tweakreg's shift + rotation leaves it.

    Raises
    ------
    ValueError
        When the two differ in anything else (CRPIX, SIP terms, a scale or skew of CD).
    """
    o, n = old.celestial, new.celestial
    if not np.allclose(o.wcs.crpix, n.wcs.crpix, rtol=0, atol=1e-9):
        raise ValueError("the WCSs have different reference pixels")
    for name in ("a", "b"):
        mo, mn = (getattr(w.sip, name) if w.sip is not None else None for w in (o, n))
        if (mo is None) != (mn is None) or (mo is not None and not np.array_equal(mo, mn)):
            raise ValueError("the WCSs have different SIP terms")

    def cd(w: WCS) -> np.ndarray:
        return w.wcs.cd if w.wcs.has_cd() else np.diag(w.wcs.cdelt) @ w.wcs.get_pc()

    turn = cd(n) @ np.linalg.inv(cd(o))  # old intermediate (x, y) -> new
    if not np.allclose(turn @ turn.T, np.eye(2), rtol=0, atol=1e-9) or np.linalg.det(turn) < 0:
        raise ValueError("the CD matrices differ by more than a rotation")
    frames = []
    for w, mix in ((o, np.eye(2)), (n, turn)):
        ra, dec = (float(c) for c in w.wcs.crval)
        east, north = _east_north(ra, dec)  # intermediate x points East, y North, at CRVAL
        axes = np.column_stack([east, north]) @ mix
        frames.append(np.column_stack([_unit_vector(ra, dec), axes[:, 0], axes[:, 1]]))
    return frames[1] @ frames[0].T


def rotate_gwcs(gw: gwcs.WCS, rotation: np.ndarray) -> gwcs.WCS:
    """``gw`` with its v23tosky step followed by a rotation of the sky, written as a new
    pointing (RA_REF, DEC_REF, ROLL_REF at the same V2_REF, V3_REF): the frames stay
    those of :func:`imaging_gwcs`.

    Raises
    ------
    ValueError
        When ``gw`` has no v23tosky rotation (zyxyz) before its last frame.
    """
    from gwcs import wcs as gwcs_wcs

    steps = [(s.frame, s.transform) for s in gw.pipeline]
    tel2sky = steps[-2][1]
    found = [p for p in (tel2sky.traverse_postorder() if hasattr(tel2sky, "traverse_postorder") else [tel2sky])
             if isinstance(p, m.RotationSequence3D)]
    if len(found) != 1 or found[0].axes_order != "zyxyz":
        raise ValueError("the gwcs has no v23tosky rotation before its world frame")
    v2, minus_v3, roll, dec, minus_ra = (float(a) for a in found[0].angles.value)
    old = TelescopePointing(-minus_ra % 360.0, dec, roll, v2 * ARCSEC, -minus_v3 * ARCSEC)
    # The reference point and a point 60" up V3 from it, on the sky before and after.
    probe = v23tosky(old)
    ref = _unit_vector(old.ra_ref, old.dec_ref)
    up = _unit_vector(*(float(c) for c in probe(old.v2_ref, old.v3_ref + 60.0)))
    ref_new, up_new = rotation @ ref, rotation @ up
    roll_new = old.roll_ref + _position_angle(ref_new, up_new) - _position_angle(ref, up)
    ra_new, dec_new = _radec(ref_new)
    steps[-2] = (steps[-2][0], v23tosky(TelescopePointing(ra_new, dec_new, roll_new % 360.0, old.v2_ref,
                                                          old.v3_ref)))
    return gwcs_wcs.WCS(steps)


def max_separation_mas(gw: gwcs.WCS, wcs: WCS, shape: tuple[int, int], step: float = 8.0) -> float:
    """Largest angular distance (milliarcsec) between where ``gw`` and the FITS ``wcs``
    put the pixels of a grid of ``step`` over a window of ``shape`` (ny, nx), edges
    included."""
    ny, nx = shape
    xs = np.unique(np.append(np.arange(-0.5, nx - 0.5, step), nx - 0.5))
    ys = np.unique(np.append(np.arange(-0.5, ny - 0.5, step), ny - 0.5))
    x, y = (a.ravel() for a in np.meshgrid(xs, ys))
    ra1, dec1 = gw(x, y, with_bounding_box=False)
    ra2, dec2 = wcs.all_pix2world(x, y, 0)
    (a1, d1), (a2, d2) = np.radians([ra1, dec1]), np.radians([ra2, dec2])
    haversine = np.sin((d2 - d1) / 2) ** 2 + np.cos(d1) * np.cos(d2) * np.sin((a2 - a1) / 2) ** 2
    return float(np.degrees(2.0 * np.arcsin(np.sqrt(np.max(haversine)))) * ARCSEC * 1000.0)
