"""Where each detector's readout window points on the sky.

Focal-plane model: a window's centre sits in the telescope frame at the (V2, V3) its
detector's distortion model gives it (:func:`services.simulator.distortion.window_v2v3`:
the aperture reference point, V2_REF/V3_REF of the exposure); offsets between window
centres are taken along detector +x = -V2 and +y = +V3 (VPARITY -1, V3I_YANG 0), one
arcsec of V2/V3 per arcsec on the sky (true to a fraction of a milliarcsecond over an
instrument's field).

An observation's aperture reference point is the mean (V2, V3) of the centres of the
readout windows of its detectors; the target sits there at dither offset (0, 0). A slit
observation (MIR_LRS-FIXEDSLIT, NRS_FIXEDSLIT) points the slit instead: its reference
point is the (V2, V3) of the slit's reference point, full-frame pixel (IMX - 1, IMY - 1)
0-based of its :class:`services.simulator.spectrograph.SlitSpectrograph`, through the
detector's distortion. A dither
offset (dx, dy) arcsec moves every detector's reference point by dx along detector +x
and dy along +y on the sky.

Each detector's pointing is the sky position of its window centre (RA_REF/DEC_REF at
1-based pixel ((xsize+1)/2, (ysize+1)/2), where V2_REF/V3_REF are; ROLL_REF the position
angle of +V3, detector +y, East of North, East to the left when North is up: the
convention of :mod:`shared.imaging_wcs`). The roll of each detector is measured at its own
pointing, so the focal plane stays rigid on the sky even away from the target.

Pointing errors (:func:`pointing_error`, :func:`true_pointing`): the plan holds the
commanded pointing; the telescope lands off by an error drawn per exposure (shared by the
detectors read out together): a shift (dx, dy) arcsec along detector x/y, Gaussian with
``pointing_error_arcsec`` rms per axis, and a roll error (``roll_error_deg`` rms) about the
aperture reference point, which moves a detector whose window centre sits (u, v) arcsec
from that point by ``(R(droll) - 1)(u, v)`` more.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shared.instruments import DETECTOR_SUBARRAYS, DetectorInfo, Subarray, detector
from shared.plan import Pointing

from .distortion import detector_distortion_model, window_v2v3
from .seeding import Stream, generator
from .spectrograph import SlitSpectrograph

__all__ = [
    "PointingError",
    "detector_pointings",
    "offset_radec",
    "pointing_error",
    "reference_point",
    "reference_point_offset",
    "slit_v2v3",
    "true_pointing",
    "position_angle",
    "sky_axes",
    "tangent_project",
    "window_center_v2v3",
]

ARCSEC_PER_RAD = 180.0 / np.pi * 3600.0


def sky_axes(roll_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors of detector +x and +y in the tangent plane (xi East, eta North).

    Matches the PC matrix of :func:`shared.wcs.pc_matrix`.
    """
    r = np.radians(roll_deg)
    return np.array([-np.cos(r), np.sin(r)]), np.array([np.sin(r), np.cos(r)])


def tangent_project(ra0: float, dec0: float, ra: np.ndarray, dec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gnomonic projection about (ra0, dec0).

    Parameters
    ----------
    ra0, dec0 : float
        Tangent point, degrees.
    ra, dec : array_like
        Positions, degrees.

    Returns
    -------
    xi, eta : ndarray
        Standard coordinates in arcsec (xi towards East, eta towards North).
    """
    a0, d0 = np.radians(ra0), np.radians(dec0)
    a, d = np.radians(np.asarray(ra, float)), np.radians(np.asarray(dec, float))
    cosc = np.sin(d0) * np.sin(d) + np.cos(d0) * np.cos(d) * np.cos(a - a0)
    xi = np.cos(d) * np.sin(a - a0) / cosc
    eta = (np.cos(d0) * np.sin(d) - np.sin(d0) * np.cos(d) * np.cos(a - a0)) / cosc
    return xi * ARCSEC_PER_RAD, eta * ARCSEC_PER_RAD


def offset_radec(ra0: float, dec0: float, xi: np.ndarray, eta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse gnomonic projection: standard coordinates (arcsec) about (ra0, dec0) to
    (ra, dec) in degrees, ra in [0, 360)."""
    a0, d0 = np.radians(ra0), np.radians(dec0)
    x = np.asarray(xi, float) / ARCSEC_PER_RAD
    y = np.asarray(eta, float) / ARCSEC_PER_RAD
    denom = np.cos(d0) - y * np.sin(d0)
    a = a0 + np.arctan2(x, denom)
    d = np.arctan2(np.sin(d0) + y * np.cos(d0), np.hypot(x, denom))
    return np.degrees(a) % 360.0, np.degrees(d)


def position_angle(ra1: float, dec1: float, ra2: float, dec2: float) -> float:
    """Position angle (degrees East of North, in [0, 360)) of point 2 seen from point 1."""
    a1, d1, a2, d2 = np.radians([ra1, dec1, ra2, dec2])
    da = a2 - a1
    pa = np.arctan2(np.sin(da) * np.cos(d2), np.cos(d1) * np.sin(d2) - np.sin(d1) * np.cos(d2) * np.cos(da))
    return float(np.degrees(pa) % 360.0)


def window_center_v2v3(det: DetectorInfo, sub: Subarray) -> tuple[float, float]:
    """(V2, V3) in arcsec of the centre of a readout window of a detector (through its
    distortion), the window placed where it is on that detector
    (:data:`shared.instruments.DETECTOR_SUBARRAYS`)."""
    return window_v2v3(det, DETECTOR_SUBARRAYS.get((det.name, sub.name), sub))


def slit_v2v3(slit: SlitSpectrograph) -> tuple[float, float]:
    """(V2, V3) in arcsec of a slit's reference point (through its detector's distortion)."""
    v2, v3 = detector_distortion_model(detector(slit.detector))(slit.imx - 1.0, slit.imy - 1.0)
    return float(v2), float(v3)


def reference_point(detectors: list[DetectorInfo], sub: Subarray,
                    slit: SlitSpectrograph | None = None) -> tuple[float, float]:
    """(V2, V3) arcsec of an observation's aperture reference point, where the target sits
    at dither offset (0, 0): the slit's reference point for a slit observation, else the
    mean of the centres of the detectors' readout windows."""
    if slit is not None:
        if slit.detector not in [d.name for d in detectors]:
            raise ValueError(f"the {slit.label} slit images on {slit.detector}, not on {[d.name for d in detectors]}")
        return slit_v2v3(slit)
    centres = [window_center_v2v3(d, sub) for d in detectors]
    return float(np.mean([c[0] for c in centres])), float(np.mean([c[1] for c in centres]))


def detector_pointings(
    target_ra: float,
    target_dec: float,
    roll: float,
    detectors: list[DetectorInfo],
    sub: Subarray,
    offsets: list[tuple[float, float]],
    slit: SlitSpectrograph | None = None,
) -> list[dict[str, Pointing]]:
    """Pointing of every detector at every dither point.

    Parameters
    ----------
    target_ra, target_dec : float
        Target, degrees; placed at the aperture reference point.
    roll : float
        Position angle of detector +y at the target, degrees East of North.
    detectors : list of DetectorInfo
        The detectors read out together.
    sub : Subarray
        Readout window (the same on every detector).
    offsets : list of (dx, dy)
        Dither offsets in arcsec along detector x and y.
    slit : SlitSpectrograph, optional
        The slit of a slit observation, whose reference point is the aperture reference
        point (:func:`reference_point`).

    Returns
    -------
    list of dict
        One ``{detector name: Pointing}`` per dither point, in order.
    """
    centres = {d.name: window_center_v2v3(d, sub) for d in detectors}
    v2a, v3a = reference_point(detectors, sub, slit)
    ex, ey = sky_axes(roll)
    out = []
    for dx, dy in offsets:
        point = {}
        for d in detectors:
            v2, v3 = centres[d.name]
            u = -(v2 - v2a) + dx  # arcsec along detector +x
            v = (v3 - v3a) + dy  # arcsec along detector +y
            xi, eta = u * ex + v * ey
            ra, dec = offset_radec(target_ra, target_dec, xi, eta)
            # Roll at the detector: the direction of +y, one arcsec further along it.
            ra_up, dec_up = offset_radec(target_ra, target_dec, xi + ey[0], eta + ey[1])
            local_roll = position_angle(float(ra), float(dec), float(ra_up), float(dec_up))
            point[d.name] = Pointing(ra=float(ra), dec=float(dec), roll=local_roll, v2_ref=v2, v3_ref=v3)
        out.append(point)
    return out


def reference_point_offset(det: DetectorInfo, detectors: list[DetectorInfo], sub: Subarray,
                           slit: SlitSpectrograph | None = None) -> tuple[float, float]:
    """(u, v) arcsec along detector x/y from the aperture reference point
    (:func:`reference_point` of ``detectors``) to the centre of ``det``'s window."""
    v2a, v3a = reference_point(detectors, sub, slit)
    v2, v3 = window_center_v2v3(det, sub)
    return -(v2 - v2a), v3 - v3a


@dataclass(frozen=True)
class PointingError:
    """Error of one exposure: ``dx``/``dy`` arcsec along detector x/y (the telescope's
    shift, the same for every detector), ``droll`` degrees."""

    dx: float
    dy: float
    droll: float


def pointing_error(
    seed: int, identifiers: tuple[int, ...], sigma_arcsec: float, sigma_roll_deg: float
) -> PointingError:
    """The pointing error of an exposure, drawn from ``(seed, POINTING, *identifiers)``.

    Parameters
    ----------
    seed : int
        Run seed.
    identifiers : tuple of int
        Program, observation, visit, visit group, sequence, activity, exposure (no
        detector: the detectors of one exposure share the error).
    sigma_arcsec : float
        rms per axis, arcsec (0: no shift).
    sigma_roll_deg : float
        rms of the roll error, degrees (0: none).
    """
    z = generator(seed, Stream.POINTING, *identifiers).standard_normal(3)
    return PointingError(float(z[0] * sigma_arcsec), float(z[1] * sigma_arcsec), float(z[2] * sigma_roll_deg))


def true_pointing(
    planned: Pointing, error: PointingError, offset: tuple[float, float]
) -> tuple[Pointing, float, float]:
    """Where a detector really pointed.

    Parameters
    ----------
    planned : Pointing
        The commanded pointing of the detector's window centre.
    error : PointingError
        The exposure's error.
    offset : (u, v)
        Arcsec along detector x/y from the aperture reference point to the window centre
        (:func:`reference_point_offset`); the roll error turns about that point.

    Returns
    -------
    pointing, dx, dy
        The true pointing, and the total shift of this window centre, arcsec along
        detector x/y (the telescope shift plus what the roll error adds here).
    """
    if error.dx == 0.0 and error.dy == 0.0 and error.droll == 0.0:
        return planned, 0.0, 0.0
    u, v = offset
    c, s = np.cos(np.radians(error.droll)), np.sin(np.radians(error.droll))
    dx = error.dx + (u * c - v * s - u)
    dy = error.dy + (u * s + v * c - v)
    ex, ey = sky_axes(planned.roll)
    xi, eta = dx * ex + dy * ey
    ra, dec = offset_radec(planned.ra, planned.dec, xi, eta)
    roll = (planned.roll + error.droll) % 360.0
    moved = planned.model_copy(update={"ra": float(ra), "dec": float(dec), "roll": float(roll)})
    return moved, float(dx), float(dy)
