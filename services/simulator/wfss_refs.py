"""The reference files of wide-field slitless spectroscopy (WFSS: ``NIS_WFSS``,
``NRC_WFSS``), in the public formats, for the grisms the simulator renders
(:data:`.spectrograph.WFSS_GRISMS`), selected by EXP_TYPE (P_EXPTYPE ``<EXP_TYPE>|``)
and, per grism, FILTER and PUPIL as the exposures say them (NIRISS: FILTER the grism,
PUPIL the blocking filter; NIRCam: FILTER the blocking filter, PUPIL the grism):

- SPECWCS (``NIRISSGrismModel`` / ``NIRCAMGrismModel``, ASDF, one per grism,
  ``jwst_<instrument>_specwcs_<detector>_<grism>_sim.asdf``): ``orders`` [1] and the
  dispersion models in the forms the public transforms evaluate
  (:func:`public_grism_models`), exact for the simulator's law and trace (the trace a
  curve of the detector's, so its offset from a source changes with the source's
  place): ``displ`` t -> wavelength and ``invdispl`` its inverse, and per order
  ``dispx``, ``dispy`` the offsets from the source's undispersed pixel, as Polynomial2D
  coefficients of x0, y0 of a polynomial in t (``dx = C0 + C1 t + C2 t^2``), or for
  NIRCam's offset along the dispersion (the same at every place) a Polynomial1D of t, with
  NIRCam's inverses ``invdispx``, ``invdispy``; NIRISS's ``fwcpos_ref`` is the filter
  wheel's nominal position, which the simulated exposures keep (FWCPOS), so no rotation.
- PHOTOM (``NisWfssPhotomModel`` / ``NrcWfssPhotomModel``, one per detector,
  ``jwst_<instrument>_photom_<detector>_wfss_sim.fits``): a row per grism (filter, pupil,
  order 1) in the convention of the NIRCam grism time series' PHOTOM, the public grisms'
  unit (MJy um / (sr DN/s)): a point source's flat-fielded rate (DN/s) times ``PHOTMJSR *
  RELRESPONSE(lambda)`` over the pixel's dispersion (um per pixel) is MJy/sr, summed over
  its cross-dispersion profile times PIXAR_SR x 1e6 its f_nu in Jy.
- WFSSBKG (``WfssBkgModel``, one per grism, ``jwst_<instrument>_wfssbkg_<detector>_<grism>_sim.fits``):
  the dispersed sky of the full frame, normalised to a median of 1 over the
  detector's light-sensitive pixels: a uniform sky's spectrum seen without a slit, each
  patch of sky within the field dispersed onto the detector, so the level falls off
  within a spectrum's length of the edges the dispersion runs to (the sky beyond the
  field puts no light there). Its shape is that of the simulator's default sky; the
  exposure's sky is this pattern times a scale (bkg_subtract fits it).
- WAVELENGTHRANGE (``WavelengthrangeModel``, ASDF, one per EXP_TYPE,
  ``jwst_<instrument>_wavelengthrange_wfss_sim.asdf``): the public WFSS layout:
  ``order`` [1], ``waverange_selector`` the blocking filters, ``wavelengthrange`` rows
  ``[order, filter, low, high]`` (um) and ``extract_orders`` ``[[filter, [1]]]``: the band
  each grism's spectrum covers (its blocking filter's).
"""

from __future__ import annotations

from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.modeling.models import Polynomial1D, Polynomial2D
from stdatamodels.jwst import datamodels as dm

from shared.instruments import NIRISS_FWCPOS

from .optical_refs import _save_asdf, mean_gain
from .reffiles import AUTHOR, PEDIGREE, USEAFTER, ReferenceFile, _common, _save
from .slit_refs import _slit_common
from .spectrograph import NIS_WFSS_EXP_TYPE, WFSS_EXP_TYPES, SlitSpectrograph

__all__ = ["FWCPOS_REF", "public_grism_models", "wfss_filename", "wfss_keywords", "wfss_photom_table", "wfss_sky_pattern",
           "write_wfss_references"]

#: NIRISS's filter-wheel position (deg) its grism models are given at; the exposures'
#: FWCPOS (ingest writes the nominal position).
FWCPOS_REF = NIRISS_FWCPOS


def wfss_keywords(model: SlitSpectrograph) -> tuple[str, str]:
    """(FILTER, PUPIL) of an exposure through the grism ``model``: NIRISS's grisms are in
    its filter wheel, NIRCam's in its pupil wheel."""
    if model.exp_type == NIS_WFSS_EXP_TYPE:
        return model.grating, model.filter
    return model.filter, model.grating


def _instrument(model: SlitSpectrograph) -> str:
    return "niriss" if model.exp_type == NIS_WFSS_EXP_TYPE else "nircam"


def wfss_filename(model: SlitSpectrograph, reftype: str) -> str:
    """The file name of a WFSS reference of ``model``'s (module docstring)."""
    det, inst = model.detector.lower(), _instrument(model)
    if reftype in ("specwcs", "wfssbkg"):
        suffix = "asdf" if reftype == "specwcs" else "fits"
        return f"jwst_{inst}_{reftype}_{det}_{model.grating.lower()}_sim.{suffix}"
    if reftype == "photom":
        return f"jwst_{inst}_photom_{det}_wfss_sim.fits"
    if reftype == "wavelengthrange":
        return f"jwst_{inst}_wavelengthrange_wfss_sim.asdf"
    raise ValueError(f"no WFSS reference of type {reftype!r}")


def _selected(ref, model: SlitSpectrograph) -> None:
    """The keywords a grism's own files are selected by: EXP_TYPE, FILTER, PUPIL."""
    ref.meta.exposure.type = model.exp_type
    ref.meta.exposure.p_exptype = f"{model.exp_type}|"
    ref.meta.instrument.filter, ref.meta.instrument.pupil = wfss_keywords(model)


def public_grism_models(model: SlitSpectrograph) -> dict[str, list]:
    """``model``'s dispersion in the public grism files' forms (module docstring), exact.

    t runs over the blocking filter's band, 0 at its blue edge and 1 at its red edge (the
    spectrum's light: :func:`.wfss.through_blocking_filter`). With ``b`` the band's length
    in pixels, ``k`` its blue edge's offset from the reference point and ``s0`` the
    source's spectral pixel (x0 along the rows, y0 along the columns): the
    offset along the dispersion is ``k + b t`` at every place; across it ``t0 + t1 u + t2
    u^2`` with ``u = s0 + k + b t - s_ref`` the spectral pixel's offset from the reference
    point, a polynomial in t whose coefficients (C0, C1, C2) are polynomials of s0
    (Polynomial2D of x0, y0). ``displ`` (t -> um) and ``invdispl`` are Polynomial1D.

    NIRISS's form (the public NIRISSGrismModel) gives both offsets as coefficient lists
    (``dispx``, ``dispy``). NIRCam's (NIRCAMGrismModel) gives the offset along the
    dispersion as a Polynomial1D of t, its inverse ``invdisp<along>`` a Polynomial1D of
    the offset (the public transforms evaluate them so), the offset across as a
    coefficient list and its inverse ``invdisp<across>`` as one too (exact for a straight
    trace, ``t2 = 0``: ValueError otherwise)."""
    lam0, lam1 = model.white_light_band
    first, last = (float(model.law.offset(lam)) + model.s_ref for lam in (lam0, lam1))
    k, b = first - model.s_ref, last - first
    t0, t1, t2 = model.trace_coeffs
    var = "c1_0" if model.dispaxis == 1 else "c0_1"  # s0: x0 along the rows, y0 along the columns
    square = "c2_0" if model.dispaxis == 1 else "c0_2"

    def poly(c0: float, linear: float = 0.0, quadratic: float = 0.0) -> Polynomial2D:
        return Polynomial2D(2, **{"c0_0": c0, var: linear, square: quadratic})

    h = k - model.s_ref  # u = s0 + h + b t
    across = [poly(t0 + t1 * h + t2 * h * h, t1 + 2.0 * t2 * h, t2),
              poly(b * (t1 + 2.0 * t2 * h), 2.0 * t2 * b), poly(t2 * b * b)]
    out = {"displ": [Polynomial1D(1, c0=lam0, c1=lam1 - lam0)],
           "invdispl": [Polynomial1D(1, c0=-lam0 / (lam1 - lam0), c1=1.0 / (lam1 - lam0))]}
    along_name, across_name = ("x", "y") if model.dispaxis == 1 else ("y", "x")
    if model.exp_type == NIS_WFSS_EXP_TYPE:
        out[f"disp{along_name}"] = [[poly(k), poly(b), poly(0.0)]]
        out[f"disp{across_name}"] = [across]
        return out
    if t2 != 0.0:
        raise ValueError(f"the {model.label} trace is curved: the inverse of its offset across the dispersion is "
                         "not a polynomial")
    out[f"disp{along_name}"] = [Polynomial1D(1, c0=k, c1=b)]
    out[f"invdisp{along_name}"] = [Polynomial1D(1, c0=-k / b, c1=1.0 / b)]
    out[f"disp{across_name}"] = [across[:2]]
    # t = (c - t0 - t1 (s0 + h)) / (t1 b)
    out[f"invdisp{across_name}"] = [[poly(-(t0 + t1 * h) / (t1 * b), -1.0 / b), poly(1.0 / (t1 * b))]]
    return out


def _specwcs(model: SlitSpectrograph, detector_model, path: Path) -> Path:
    if model.exp_type == NIS_WFSS_EXP_TYPE:
        ref = dm.NIRISSGrismModel(orders=[model.order], fwcpos_ref=FWCPOS_REF, **public_grism_models(model))
    else:
        ref = dm.NIRCAMGrismModel(orders=[model.order], **public_grism_models(model))
        ref.meta.instrument.module = detector_model.detector.module
    _common(ref, "SPECWCS", detector_model, f"Simulated {model.label} order {model.order}: dispersion and trace "
            "from the source's undispersed pixel", None, window=False)
    ref.meta.reftype = ref.reftype  # the model checks its own spelling, "specwcs"
    _selected(ref, model)
    ref.meta.input_units = u.micron
    ref.meta.output_units = u.micron
    return _save_asdf(ref, path)


def wfss_photom_table(models: list[SlitSpectrograph], detector_model) -> np.ndarray:
    """The phot_table of a detector's grisms (module docstring): a row per grism, order 1,
    PHOTMJSR at the throughput's peak, RELRESPONSE over the spectrum's pixels and one more
    at each end (the float32 wavelengths then cover the span's own)."""
    rows = []
    for model in models:
        waves, mjy = model.response(mean_gain(detector_model), margin=1)
        mjysr = mjy / model.pixel_area_sr * model.dispersion(model.pixel(waves))  # per um of spectrum
        value = float(np.interp(model.throughput_centre, waves, mjysr))
        rows.append((model, waves, mjysr / value, value))
    size = max(w.size for _, w, _, _ in rows)
    table = np.zeros(len(rows), dtype=[
        ("filter", "S12"), ("pupil", "S15"), ("order", "<i2"), ("photmjsr", "<f4"), ("uncertainty", "<f4"),
        ("nelem", "<i2"), ("wavelength", "<f4", (size,)), ("relresponse", "<f4", (size,)),
        ("reluncertainty", "<f4", (size,))])
    for k, (model, waves, rel, value) in enumerate(rows):
        n = waves.size
        filt, pupil = wfss_keywords(model)
        table[k] = (filt, pupil, model.order, value, 0.01 * value, n, np.pad(waves, (0, size - n)),
                    np.pad(rel, (0, size - n)), np.pad(0.01 * rel, (0, size - n)))
    return table


def _photom(models: list[SlitSpectrograph], detector_model, path: Path) -> Path:
    first = models[0]
    cls = dm.NisWfssPhotomModel if first.exp_type == NIS_WFSS_EXP_TYPE else dm.NrcWfssPhotomModel
    photom = cls(phot_table=wfss_photom_table(models, detector_model))
    _slit_common(photom, "PHOTOM", detector_model, f"Simulated {_instrument(first).upper()} WFSS: point-source flux "
                 f"calibration of {', '.join(m.grating for m in models)}, order 1", first.exp_type)
    photom.meta.photometry.pixelarea_steradians = first.pixel_area_sr
    photom.meta.photometry.pixelarea_arcsecsq = first.pixel_scale**2
    return _save(photom, path)


def wfss_sky_pattern(model: SlitSpectrograph, detector_model) -> np.ndarray:
    """The full frame's dispersed sky (module docstring) of ``model``'s default sky,
    normalised to a median of 1 over the light-sensitive pixels (float32, (ny, nx))."""
    ny, nx = detector_model.detector.ny, detector_model.detector.nx
    along = model.slitless_sky_electrons(np.arange(nx if model.dispaxis == 1 else ny, dtype=np.float64), model.sky)
    image = np.broadcast_to(along[None, :] if model.dispaxis == 1 else along[:, None], (ny, nx))
    border = detector_model.detector.refpix_border
    inside = image[border:ny - border, border:nx - border]
    return (image / float(np.median(inside))).astype(np.float32)


def _wfssbkg(model: SlitSpectrograph, detector_model, path: Path) -> Path:
    bkg = dm.WfssBkgModel(data=wfss_sky_pattern(model, detector_model))
    bkg.err = np.zeros(bkg.data.shape, np.float32)
    _common(bkg, "WFSSBKG", detector_model, f"Simulated {model.label}: the dispersed sky, median 1", None)
    _selected(bkg, model)
    return _save(bkg, path)


def _wavelengthrange(models: list[SlitSpectrograph], path: Path) -> Path:
    bands = {m.filter: m.white_light_band for m in models}  # the blocking filter's band, every grism behind it
    first = models[0]
    ref = dm.WavelengthrangeModel(
        wrange_selector=sorted(bands), order=[first.order],
        wrange=[[first.order, name, round(lo, 6), round(hi, 6)] for name, (lo, hi) in sorted(bands.items())],
        extract_orders=[[name, [first.order]] for name in sorted(bands)], wunits=u.micron)
    meta = ref.meta
    meta.reftype = "WAVELENGTHRANGE"
    meta.instrument.name = _instrument(first).upper()
    meta.exposure.type = first.exp_type
    meta.exposure.p_exptype = f"{first.exp_type}|"
    meta.useafter = USEAFTER
    meta.description = f"Simulated {_instrument(first).upper()} WFSS wavelength ranges per blocking filter, order 1"
    meta.author = AUTHOR
    meta.pedigree = PEDIGREE
    meta.telescope = "JWST"
    meta.origin = "jwst-dms"
    return _save_asdf(ref, path)


def write_wfss_references(models, detector_model, out_dir: Path) -> list[ReferenceFile]:
    """The WFSS references (module docstring) of the grisms ``models`` that disperse on
    ``detector_model``'s detector: SPECWCS and WFSSBKG per grism, one PHOTOM and one
    WAVELENGTHRANGE. ValueError for a grism of another detector."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = detector_model.detector.name
    models = list({(m.exp_type, m.grating): m for m in models}.values())
    if not models:
        return []
    wrong = [m.label for m in models if m.detector != name or m.exp_type not in WFSS_EXP_TYPES]
    if wrong:
        raise ValueError(f"WFSS references of {name}: {', '.join(wrong)} do not disperse on it")
    written = []
    for model in models:
        written += [
            ReferenceFile("SPECWCS", name, _specwcs(model, detector_model, out_dir / wfss_filename(model, "specwcs")),
                          "GENERIC"),
            ReferenceFile("WFSSBKG", name, _wfssbkg(model, detector_model, out_dir / wfss_filename(model, "wfssbkg")),
                          "FULL"),
        ]
    written.append(ReferenceFile("PHOTOM", name, _photom(models, detector_model,
                                                         out_dir / wfss_filename(models[0], "photom")), "GENERIC"))
    written.append(ReferenceFile("WAVELENGTHRANGE", "ANY",
                                 _wavelengthrange(models, out_dir / wfss_filename(models[0], "wavelengthrange")),
                                 "GENERIC"))
    return written
