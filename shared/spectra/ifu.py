"""The geometry of an MIRI MRS exposure (``MIR_MRS``) from its reference files, as the
public pipeline's assign_wcs composes it, and each pixel's footprint on the sky and in
wavelength, the input of the cube build (:mod:`.cube`).

The references are the public ones, read as trees (their ASDF content):

- DISTORTION (``DistortionMRSModel``): ``slices`` (``100 channel + slice``), per slice
  ``alpha_model`` ((y, x) -> alpha arcsec), ``beta_model`` ((x) -> beta, constant over a
  slice), ``bdel`` (the slice width per channel-band key such as ``1SHORT``) and
  ``abv2v3_model`` ((alpha, beta) -> (V2, V3) arcsec per channel-band);
- SPECWCS (``SpecwcsModel``): ``model``, per slice in the DISTORTION's order, (y, x) ->
  wavelength um;
- REGIONS (``RegionsModel``): ``regions`` (9, ny, nx), the slice number of each pixel at
  nine throughput levels; plane 7 (80 %) is the one assign_wcs uses, 0 outside every
  slice.

Frames, as the public MRS WCS: detector (x, y, 0-based full-frame pixels) -> alpha_beta
(alpha, beta arcsec of the channel's local frame; wavelength um) -> v2v3 -> world (the
pointing's rotation, :func:`shared.imaging_wcs.v23tosky`).

The exposure's gwcs (:func:`mrs_gwcs`, ``meta.wcs`` of its ``_cal``) is composed as the
public one, so that the public cube_build can rebuild cubes from our ``_cal``: frames
``detector``, ``alpha_beta``, ``v2v3``, ``v2v3vacorr``, ``world``; detector -> alpha_beta a
``RegionsSelector`` over the REGIONS plane (a ``LabelMapperArray``) with each slice's
models, its inverse choosing the slice from beta (the public ``MIRI_AB2Slice``) within the
channel its wavelength falls in; alpha_beta -> v2v3 the channel's model, chosen by
wavelength (each channel's range: that of its pixels).

A pixel's footprint (:func:`pixel_footprints`): the quadrilateral on the sky through
(alpha at the pixel's column edges x -/+ 0.5, beta -/+ half the slice width), and its
wavelength range from its row's edges (y -/+ 0.5): the 3-D drizzle's volume element
(Law et al. 2023), as the public cube_build forms it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from astropy.modeling import Model

__all__ = ["REGIONS_PLANE", "GeometryError", "MrsGeometry", "PixelFootprints", "SkyFootprints", "gwcs_channels",
           "gwcs_footprints", "mrs_gwcs", "pixel_footprints"]

REGIONS_PLANE = 7  # the 80 % throughput plane, as the public assign_wcs


class GeometryError(ValueError):
    """A reference tree that does not describe an MRS geometry, with the reason."""


@dataclass(frozen=True)
class MrsGeometry:
    """One MRS detector and band as its references describe it.

    ``slices`` the slice numbers; per slice (same order) ``alpha`` and ``wavelength``
    models of (y, x), its ``beta`` (arcsec) and its inverse models ``x`` and ``y`` of
    (wavelength, alpha); ``slice_width`` and ``to_v2v3`` per channel (1-4); ``label``
    (ny, nx) int the slice number of each pixel (0: none).
    """

    slices: tuple[int, ...]
    alpha: tuple[Model, ...]
    wavelength: tuple[Model, ...]
    beta: tuple[float, ...]
    slice_width: Mapping[int, float]
    to_v2v3: Mapping[int, Model]
    label: np.ndarray
    x: tuple[Model, ...] = ()
    y: tuple[Model, ...] = ()

    @classmethod
    def from_trees(cls, distortion: Mapping[str, Any], specwcs: Mapping[str, Any],
                   regions: Mapping[str, Any]) -> MrsGeometry:
        """From the DISTORTION, SPECWCS and REGIONS trees; :class:`GeometryError` naming
        what is missing or inconsistent."""
        try:
            slices = tuple(int(s) for s in distortion["slices"])
            alpha, beta_models = list(distortion["alpha_model"]), list(distortion["beta_model"])
            x_models, y_models = list(distortion.get("x_model") or ()), list(distortion.get("y_model") or ())
            bdel = dict(zip(distortion["bdel"]["channel_band"], distortion["bdel"]["delta_beta"], strict=True))
            v23 = dict(zip(distortion["abv2v3_model"]["channel_band"], distortion["abv2v3_model"]["model"],
                           strict=True))
            lam = list(specwcs["model"])
            planes = np.asarray(regions["regions"])
        except (KeyError, TypeError, ValueError) as exc:
            raise GeometryError(f"the MRS references lack or misstate {exc}") from exc
        if not (len(alpha) == len(beta_models) == len(lam) == len(slices)):
            raise GeometryError(f"{len(slices)} slices but {len(alpha)} alpha, {len(beta_models)} beta and "
                                f"{len(lam)} wavelength models")
        if len(x_models) != len(slices) or len(y_models) != len(slices):
            raise GeometryError(f"{len(slices)} slices but {len(x_models)} x and {len(y_models)} y models")
        spec_slices = specwcs.get("slices")
        if spec_slices is not None and tuple(int(s) for s in spec_slices) != slices:
            raise GeometryError("the SPECWCS lists its slices in another order than the DISTORTION")
        if planes.ndim != 3 or planes.shape[0] <= REGIONS_PLANE:
            raise GeometryError(f"REGIONS must be (9, ny, nx), got shape {planes.shape}")
        channels = sorted({s // 100 for s in slices})
        width, to_v2v3 = {}, {}
        for c in channels:
            key = next((k for k in bdel if str(k).startswith(str(c))), None)
            vkey = next((k for k in v23 if str(k).startswith(str(c))), None)
            if key is None or vkey is None:
                raise GeometryError(f"the DISTORTION has no bdel or abv2v3_model for channel {c}")
            width[c], to_v2v3[c] = float(bdel[key]), v23[vkey]
        beta = tuple(float(np.asarray(b(0.0))) for b in beta_models)
        return cls(slices, tuple(alpha), tuple(lam), beta, width, to_v2v3, planes[REGIONS_PLANE].astype(np.int32),
                   tuple(x_models), tuple(y_models))

    def channels(self) -> tuple[int, ...]:
        return tuple(sorted({s // 100 for s in self.slices}))


@dataclass(frozen=True)
class PixelFootprints:
    """The pixels of one channel that lie in a slice: their 0-based (``y``, ``x``), slice
    number, centre (``alpha``, ``beta`` arcsec, ``wavelength`` um), the (alpha, beta) of
    their footprint's corners ``corners`` (n, 4, 2) in order around it, and their
    wavelength range (``wl_lo``, ``wl_hi``)."""

    y: np.ndarray
    x: np.ndarray
    slice: np.ndarray
    alpha: np.ndarray
    beta: np.ndarray
    wavelength: np.ndarray
    corners: np.ndarray
    wl_lo: np.ndarray
    wl_hi: np.ndarray

    def sky_corners(self, to_v2v3: Model, v23tosky: Model) -> tuple[np.ndarray, np.ndarray]:
        """(ra, dec) degrees of the footprints' corners, each (n, 4)."""
        v2, v3 = to_v2v3(self.corners[..., 0], self.corners[..., 1])
        ra, dec = v23tosky(v2, v3)
        return np.asarray(ra), np.asarray(dec)

    def sky_centres(self, to_v2v3: Model, v23tosky: Model) -> tuple[np.ndarray, np.ndarray]:
        v2, v3 = to_v2v3(self.alpha, self.beta)
        ra, dec = v23tosky(v2, v3)
        return np.asarray(ra), np.asarray(dec)


def pixel_footprints(geometry: MrsGeometry, channel: int) -> PixelFootprints:
    """Every pixel of ``channel``'s slices (REGIONS plane 7) and its footprint (module
    docstring)."""
    if channel not in geometry.channels():
        raise ValueError(f"this exposure's references hold channels {geometry.channels()}, not {channel}")
    models = {number: (geometry.alpha[i], geometry.wavelength[i], geometry.beta[i])
              for i, number in enumerate(geometry.slices)}

    def evaluate(number: int, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        alpha, lam, beta = models[number]
        return (np.asarray(alpha(y, x), np.float64), np.full(np.shape(x), beta),
                np.asarray(lam(y, x), np.float64))

    numbers = [n for n in geometry.slices if n // 100 == channel]
    return _footprints(geometry.label, numbers, evaluate, geometry.slice_width[channel])


def _footprints(label: np.ndarray, numbers: list[int], evaluate, width: float) -> PixelFootprints:
    """The footprints of the pixels of slices ``numbers`` on ``label``, ``evaluate(number,
    x, y)`` giving (alpha, beta, wavelength) of 0-based pixel positions in that slice."""
    half = 0.5 * width
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("y", "x", "slice", "a", "b", "w", "a0", "a1", "w0", "w1")}
    for number in numbers:
        y, x = np.nonzero(label == number)
        if y.size == 0:
            continue
        yf, xf = y.astype(np.float64), x.astype(np.float64)
        a, b, w = evaluate(number, xf, yf)
        parts["y"].append(y)
        parts["x"].append(x)
        parts["slice"].append(np.full(y.size, number, np.int32))
        parts["a"].append(a)
        parts["b"].append(b)
        parts["w"].append(w)
        parts["a0"].append(evaluate(number, xf - 0.5, yf)[0])
        parts["a1"].append(evaluate(number, xf + 0.5, yf)[0])
        parts["w0"].append(evaluate(number, xf, yf - 0.5)[2])
        parts["w1"].append(evaluate(number, xf, yf + 0.5)[2])
    if not parts["y"]:
        raise ValueError(f"no pixel lies in slices {numbers[:1]}...{numbers[-1:]}")
    cat = {k: np.concatenate(v) for k, v in parts.items()}
    b_lo, b_hi = cat["b"] - half, cat["b"] + half
    corners = np.stack([np.stack([cat["a0"], b_lo], axis=-1), np.stack([cat["a1"], b_lo], axis=-1),
                        np.stack([cat["a1"], b_hi], axis=-1), np.stack([cat["a0"], b_hi], axis=-1)], axis=1)
    return PixelFootprints(y=cat["y"], x=cat["x"], slice=cat["slice"], alpha=cat["a"], beta=cat["b"],
                           wavelength=cat["w"], corners=corners, wl_lo=np.minimum(cat["w0"], cat["w1"]),
                           wl_hi=np.maximum(cat["w0"], cat["w1"]))


@dataclass(frozen=True)
class SkyFootprints:
    """One channel's pixels of a calibrated exposure on the sky: their footprints
    (:class:`PixelFootprints`) and the (RA, Dec) degrees of each footprint's corners,
    (n, 4) each."""

    pixels: PixelFootprints
    ra: np.ndarray
    dec: np.ndarray


def gwcs_channels(wcs: Any) -> tuple[int, ...]:
    """The channels whose slices an MRS gwcs (a ``_cal``'s ``meta.wcs``) labels."""
    label = _det2ab(wcs).label_mapper.mapper
    numbers = np.unique(np.asarray(label))
    return tuple(sorted({int(n) // 100 for n in numbers if n > 0}))


def _det2ab(wcs: Any) -> Any:
    try:
        transform = wcs.get_transform("detector", "alpha_beta")
        transform.label_mapper.mapper, transform.selector  # noqa: B018 - what an MRS one has
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise GeometryError("the gwcs is not an MRS one: its detector -> alpha_beta is not a RegionsSelector over "
                            f"the slices' labels ({exc})") from exc
    return transform


def gwcs_footprints(wcs: Any, channel: int) -> SkyFootprints:
    """``channel``'s pixels and their footprints on the sky from an MRS exposure's gwcs,
    composed as the public one (:func:`mrs_gwcs`'s, or the public assign_wcs's): each
    slice's own detector -> alpha_beta model at the pixel's centre, column edges (alpha)
    and row edges (wavelength); the slice width the step between the channel's slices'
    beta; the corners through alpha_beta -> world at the pixel's wavelength (which
    chooses the channel). :class:`GeometryError` if it is not such a gwcs."""
    det2ab = _det2ab(wcs)
    label = np.asarray(det2ab.label_mapper.mapper)
    numbers = sorted(int(n) for n in np.unique(label) if n > 0 and int(n) // 100 == channel)
    if not numbers:
        raise GeometryError(f"the gwcs labels no slice of channel {channel}")
    models = det2ab.selector

    def evaluate(number: int, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        a, b, w = models[number](x, y)
        return (np.asarray(a, np.float64), np.broadcast_to(np.asarray(b, np.float64), np.shape(x)),
                np.asarray(w, np.float64))

    # every slice's beta (at one of its pixels): the slice width is the step between them
    betas = []
    for number in numbers:
        y, x = np.nonzero(label == number)
        if y.size:
            betas.append(float(np.asarray(evaluate(number, x[:1].astype(float), y[:1].astype(float))[1])[0]))
    steps = np.diff(np.sort(betas))
    if steps.size == 0 or not np.all(np.isfinite(steps)) or np.median(steps) <= 0:
        raise GeometryError(f"channel {channel}'s slices give no slice width (beta of {len(betas)} slices)")
    pixels = _footprints(label, numbers, evaluate, float(np.median(steps)))
    try:
        to_world = wcs.get_transform("alpha_beta", "world")
    except (KeyError, ValueError) as exc:
        raise GeometryError(f"the gwcs has no alpha_beta -> world ({exc})") from exc
    lam = np.repeat(pixels.wavelength[:, None], 4, axis=1)
    ra, dec, _ = to_world(pixels.corners[..., 0], pixels.corners[..., 1], lam)
    return SkyFootprints(pixels, np.asarray(ra, np.float64), np.asarray(dec, np.float64))


def mrs_gwcs(geometry: MrsGeometry, to_sky: Model, footprints: Mapping[int, PixelFootprints] | None = None) -> Any:
    """The exposure's gwcs (module docstring): full-frame pixels to (RA, Dec, wavelength)
    through ``to_sky`` ((V2, V3) arcsec -> (RA, Dec) degrees, e.g.
    :func:`shared.imaging_wcs.v23tosky`); ``footprints`` every channel's
    (:func:`pixel_footprints`), when already known."""
    from astropy import coordinates as coord
    from astropy import units as u
    from astropy.modeling import bind_bounding_box
    from astropy.modeling import models as m
    from gwcs import coordinate_frames as cf
    from gwcs import selector, wcs
    from stdatamodels.jwst.transforms.models import MIRI_AB2Slice

    per_slice = {}
    for i, number in enumerate(geometry.slices):
        forward = m.Mapping((1, 0, 0, 1, 0)) | geometry.alpha[i].copy() & m.Const1D(geometry.beta[i]) \
            & geometry.wavelength[i].copy()
        forward.inverse = m.Mapping((2, 0, 2, 0)) | geometry.x[i].copy() & geometry.y[i].copy()
        per_slice[number] = forward
    ranges, by_beta, to_v2v3 = {}, {}, {}
    for c in geometry.channels():
        wl = footprints[c] if footprints and c in footprints else pixel_footprints(geometry, c)
        span = (float(np.min(wl.wl_lo)), float(np.max(wl.wl_hi)))
        first = geometry.beta[geometry.slices.index(100 * c + 1)]
        by_beta[span] = selector.LabelMapper(inputs=("alpha", "beta", "lam"),
                                             mapper=MIRI_AB2Slice(first, geometry.slice_width[c], c),
                                             inputs_mapping=m.Mapping((1,), n_inputs=3))
        ranges[span] = m.Mapping((2,)) | m.Const1D(c)
        lam = m.Identity(1)
        lam._inputs = ("lam",)  # noqa: SLF001 - the name the selector passes the wavelength by
        to_v2v3[c] = geometry.to_v2v3[c].copy() & lam
    labels = selector.LabelMapperArray(geometry.label)
    labels.inverse = selector.LabelMapperRange(("alpha", "beta", "lam"), by_beta, m.Mapping((2,)))
    det2abl = selector.RegionsSelector(("x", "y"), ("alpha", "beta", "lam"), label_mapper=labels,
                                       selector=per_slice)
    ny, nx = geometry.label.shape
    bind_bounding_box(det2abl, ((-0.5, nx - 0.5), (-0.5, ny - 0.5)), order="F")
    by_wavelength = selector.LabelMapperRange(("alpha", "beta", "lam"), ranges, inputs_mapping=m.Mapping((2,)))
    by_wavelength.inverse = by_wavelength.copy()
    abl2v2v3 = selector.RegionsSelector(("alpha", "beta", "lam"), ("v2", "v3", "lam"), label_mapper=by_wavelength,
                                        selector=to_v2v3)

    spectral = cf.SpectralFrame(name="spectral", axes_order=(2,), unit=(u.micron,), axes_names=("lambda",))
    detector = cf.Frame2D(name="detector", axes_order=(0, 1), unit=(u.pix, u.pix))
    alpha_beta = cf.CompositeFrame([
        cf.Frame2D(name="alpha_beta_spatial", axes_order=(0, 1), unit=(u.arcsec, u.arcsec),
                   axes_names=("alpha", "beta")),
        cf.SpectralFrame(name="alpha_beta_spectral", axes_order=(2,), unit=(u.micron,), axes_names=("lambda",))],
        name="alpha_beta")
    v2v3 = cf.CompositeFrame([cf.Frame2D(name="v2v3_spatial", axes_order=(0, 1), unit=(u.arcsec, u.arcsec),
                                         axes_names=("v2", "v3")), spectral], name="v2v3")
    vacorr = cf.CompositeFrame([cf.Frame2D(name="v2v3vacorr_spatial", axes_order=(0, 1), unit=(u.arcsec, u.arcsec),
                                           axes_names=("v2", "v3")), spectral], name="v2v3vacorr")
    world = cf.CompositeFrame([cf.CelestialFrame(name="icrs", reference_frame=coord.ICRS(), axes_order=(0, 1),
                                                 unit=(u.deg, u.deg), axes_names=("RA", "DEC")), spectral],
                              name="world")
    return wcs.WCS([(detector, det2abl), (alpha_beta, abl2v2v3), (v2v3, m.Identity(3)),
                    (vacorr, to_sky.copy() & m.Identity(1)), (world, None)])
