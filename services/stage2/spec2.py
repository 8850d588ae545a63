"""calwebb_spec2 for slit spectra (MIRI LRS fixed slit, ``MIR_LRS-FIXEDSLIT``; NIRSpec's
fixed slits, ``NRS_FIXEDSLIT``, and MOS, ``NRS_MSASPEC``), the MIRI LRS without its
slit (``MIR_LRS-SLITLESS``, a time series's ``_rateints`` or one ``_rate``) and NIRSpec's
bright-object time series through S1600A1 (``NRS_BRIGHTOBJ``, its ``_rateints``), declared
over the kernels of ``steps/`` and :mod:`shared.spectra` (those stage 3 uses too).

No I/O: the science ``_rate``, its background (nod) exposures and loaded reference files
in, products out. Steps in order (:data:`SPEC2`), as the public pipeline runs them for
this mode:

- bkg_subtract: the other nod position(s) of the Level-2 association subtracted (the
  imaging step's kernels: the backgrounds averaged, their variance added);
- assign_wcs: the trace and the wavelength of every pixel on the slit from SPECWCS, and the
  spectral gwcs (with the DISTORTION reference and the pointing); the
  source's position in the slit from the pointing, the DISTORTION reference and the
  target's coordinates (TARG_RA/TARG_DEC); the slit's footprint on the sky (S_REGION);
- msa_flagging (NIRSpec MOS): the spectra of shutters stuck open (MSAOPER) flagged
  MSA_FAILED_OPEN;
- flat_field: as for imaging;
- extract_2d (NIRSpec MOS): a cutout and a state per slitlet of the exposure's MSA
  metadata, which each later step calibrates on its own (:func:`_each_slit`);
- srctype: POINT or EXTENDED (:mod:`steps.srctype`; a MOS source by its stellarity);
- pathloss: a point source corrected for the light the slit stops, at its position;
- photom: to MJy/sr with PHOTMJSR times the relative response at each pixel's wavelength;
- resample_spec: the slit rectified (``_s2d``, a SlitModel with a WAVELENGTH array);
- extract_1d: the spectrum along the trace at the source's position (``_x1d``, a
  MultiSpecModel), in Jy for a point source.

A slitless exposure (:data:`SPEC2_EXP_TYPES`) takes assign_wcs (the trace from the
SPECWCS table about the slitless reference point, IMXSLTL/IMYSLTL; NIRCam's grism time
series, ``NRC_TSGRISM``, from the grism's dispersion model, the public NIRCAMGrismModel,
about the source's undispersed image; every pixel of a row, or of the grism's column,
gets its wavelength, as no slit bounds the light), flat_field, srctype, photom and
extract_1d (with background regions either side of the trace: the sky fills the window);
no slit, so no path loss, and no rectified ``_s2d``. A time series is calibrated
integration by integration: its ``_calints`` is a CubeModel (with its 2-D WAVELENGTH and
INT_TIMES) and its ``_x1dints`` a TSOMultiSpecModel, a spectrum per integration with its
times (:func:`shared.datamodels.spectra.x1dints_product`). A bright-object time series
takes the fixed slit's steps (its slit S1600A1, FXD_SLIT) integration by integration but
resample_spec (no ``_s2d`` for a time series, as in the public pipeline); its ``_calints``
is a SlitModel of 3-D arrays.

Wide-field slitless spectroscopy (:data:`WFSS_EXP_TYPES`, NIRISS's and NIRCam's grisms)
is calibrated with the source catalog of the observation's direct images (``catalog``)
in the public order for it: assign_wcs (each source's undispersed pixel through the
imaging WCS, its trace per order from the grism's dispersion model within WAVELENGTHRANGE,
:mod:`shared.spectra.wfss`), bkg_subtract (the WFSSBKG pattern scaled to the exposure off
the sources, in place of the nods), flat_field, extract_2d (a state per source and order,
like MOS's slitlets; the pixels another source's spectrum covers flagged OTHER_BAD_PIXEL),
srctype (the catalog's ``is_extended``), photom (the order's row) and extract_1d (a boxcar
as wide as the source's extraction height). Its ``_cal`` is a MultiSlitModel, a slit per
source and order, and its ``_x1d`` a WFSSMultiSpecModel (a table per order, a row per
source); no ``_s2d``.

The MIRI LRS ``_cal`` is a SlitModel, as the public pipeline writes it for this mode, with
its WAVELENGTH array (each pixel's wavelength; NaN off the slit), read by later steps, and
its spectral gwcs at ``meta.wcs`` (pixels to RA, Dec and wavelength,
:mod:`shared.spectra.wcs`); the ``_s2d`` carries the gwcs of its rectified grid. NIRSpec's
``_cal`` and ``_s2d`` are MultiSlitModels (a fixed slit's one slit; a MOS exposure's slit
per slitlet) and a MOS ``_x1d`` has a spectrum per slitlet.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import numpy as np
from astropy.table import Table
from pydantic import BaseModel, ConfigDict, Field

from services.stage2 import ifu2
from services.stage2.pipeline import (
    CalState,
    _bkg_subtract,
    _distortion_model,
    _flat_field,
    _mark_invalid,
    _pixel_scale,
    _product,
    _state_from,
)
from services.stage2.steps.assign_wcs import exposure_wcs, s_region
from services.stage2.steps.bkg_subtract import BkgSubtractParams
from services.stage2.steps.msaflagopen import flag_failed_open
from services.stage2.steps.pathloss import (
    PathlossGrid,
    apply_pathloss,
    msa_aperture,
    nirspec_pathloss,
    pathloss_vector,
)
from services.stage2.steps.photom import (
    apply_photom,
    photom_keywords,
    select_photom_row,
    spectral_conversion,
)
from services.stage2.steps.srctype import slitlet_source_type, source_type
from shared.datamodels import FitsProduct, SlitProduct, set_cards, single_slit
from shared.datamodels.dqflags import PIXEL
from shared.datamodels.keywords import SLIT_KEYWORDS
from shared.datamodels.spectra import (
    exposure_group_id,
    integration_times,
    s3d_product,
    wfss_x1d_product,
    x1d_product,
    x1dints_product,
)
from shared.errors import InputError
from shared.imaging_wcs import TelescopePointing, v23tosky
from shared.naming import output_name
from shared.pipeline import (
    Output,
    Pipeline,
    PipelineParams,
    Recorded,
    RunRecord,
    Skip,
    SkipKind,
    Step,
    StepArgs,
    for_each_part,
    provenance_cards,
)
from shared.refdata import Reference, ReferenceFileError, ReferenceProvider, load_references
from shared.spectra import (
    SLIT_EXP_TYPES,
    SLITLESS_EXP_TYPES,
    TSO_SLIT_EXP_TYPES,
    TSO_SPEC_EXP_TYPES,
    WFSS_EXP_TYPES,
    ExtractParams,
    Rectified,
    SlitTrace,
    boxcar_extract,
    in_frame,
    rectify_slit,
    reference_point,
    slit_length,
    slit_table,
    slit_trace,
    slit_width,
    source_along,
    wavelength_image,
)
from shared.spectra.grism import GRISM_TSO_EXP_TYPES, grism_dispaxis, grism_trace, line_dispersion
from shared.spectra.ifu_cube import CubeBuildParams
from shared.spectra.msa import (
    MsaGeometry,
    MsaMetadata,
    Slitlet,
    failed_open_shutters,
    mos_specwcs,
    open_slitlets,
    shutter_footprint,
)
from shared.spectra.soss import SOSS_EXP_TYPES, calibrate_orders, order_params, order_traces
from shared.spectra.wavelengthrange import bound_trace, exposure_range
from shared.spectra.wcs import rectified_gwcs, slit_gwcs
from shared.spectra.wfss import (
    GrismSource,
    background_scale,
    contamination,
    grism_sources,
    source_boxes,
    source_mask,
    wfss_filter,
    wfss_ranges,
)

__all__ = ["SLIT_EXP_TYPES", "SPEC2", "SPEC2_EXP_TYPES", "WFSS_EXP_TYPES", "Extract2dParams", "Spec2Options",
           "Spec2Output", "SpecState", "calibrate", "run_spec2"]

log = logging.getLogger(__name__)

MOS_EXP_TYPE = "NRS_MSASPEC"
_MOS = frozenset({MOS_EXP_TYPE})
_IFU = ifu2.IFU_EXP_TYPES
#: What calwebb_spec2 calibrates: the slit modes, the slitless ones, the slit time series,
#: NIRISS SOSS, wide-field slitless spectroscopy and the MIRI MRS (:mod:`.ifu2`).
SPEC2_EXP_TYPES = SLIT_EXP_TYPES | SLITLESS_EXP_TYPES | TSO_SLIT_EXP_TYPES | SOSS_EXP_TYPES | WFSS_EXP_TYPES | _IFU
#: The modes with one trace, from the SPECWCS (all but SOSS's orders, WFSS's sources and
#: the IFU's slices): a table, or NIRCam's grism dispersion model (:data:`_GRISM`).
_ONE_TRACE = SPEC2_EXP_TYPES - SOSS_EXP_TYPES - WFSS_EXP_TYPES - _IFU
_GRISM = GRISM_TSO_EXP_TYPES
_WFSS = WFSS_EXP_TYPES
#: The modes whose spectra (one, or one per source and order) photom and extract_1d calibrate.
_TRACED = _ONE_TRACE | _WFSS
_OTHER_BAD_PIXEL = np.uint32(PIXEL["OTHER_BAD_PIXEL"])


class Spec2Options(BaseModel):
    """Options of calwebb_spec2 as a whole."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    save_bsub: bool = Field(False, description="Also write the background-subtracted rate (_bsub).")


class Extract2dParams(BaseModel):
    """Parameters of extract_2d (wide-field slitless spectroscopy's; a MOS exposure's
    slitlets take none)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    wfss_mmag_extract: float | None = Field(None, description=(
        "WFSS: extract only the sources brighter than this isophotal AB magnitude (those without one are left "
        "out too); None for every source of the catalog."))
    wfss_extract_half_height: int | None = Field(None, ge=1, description=(
        "WFSS: the extraction half-height (pixels either side of the trace) of the point sources, in place of "
        "the one their size gives; extended sources keep theirs."))


@dataclass
class SpecState(CalState):
    """The exposure as the steps pass it along (:class:`CalState`) and what the spectral
    steps add: the slit's trace, each pixel's wavelength, the source's place in the slit
    (pixels from the slit centre, along and across it), and the products made."""

    trace: SlitTrace | None = None
    wavelength: np.ndarray | None = None
    half_length: float = 0.0
    source: tuple[float, float] = (0.0, 0.0)  # along, across the slit: pixels from its centre
    source_pixel: tuple[float, float] = (0.0, 0.0)  # window (x, y) of the source, undispersed
    slit_size: tuple[float, float] = (0.0, 0.0)  # the slit's length and width, arcsec
    s2d: Rectified | None = None
    x1d: np.ndarray | None = None
    x1dints: list[np.ndarray] | None = None  # a time series's spectra, one per integration
    # NIRSpec MOS: the exposure's MSA metadata; the slitlets assign_wcs found on the window
    # (with their traces there); after extract_2d, a state per slitlet, and in each its slitlet
    msa: MsaMetadata | None = None
    geometry: MsaGeometry | None = None
    slitlets: list[tuple[Slitlet, SlitTrace]] = dataclasses.field(default_factory=list)
    slits: list[SpecState] = dataclasses.field(default_factory=list)
    slitlet: Slitlet | None = None
    # NIRISS SOSS: each spectral order's trace (assign_wcs) and spectra, one per integration
    # (extract_1d, in DN/s until photom calibrates them: ``order_flux_calibrated``)
    orders: dict[int, SlitTrace] = dataclasses.field(default_factory=dict)
    order_x1dints: dict[int, list[np.ndarray]] = dataclasses.field(default_factory=dict)
    order_flux_calibrated: bool = False
    # WFSS: the direct images' source catalog (an astropy Table); the sources assign_wcs
    # found spectra of on the window; after extract_2d, a state per source and order
    # (``slits``), and in each its source, order and its pixels another source's spectrum
    # covers (flagged OTHER_BAD_PIXEL)
    catalog: Any = None
    sources: list[GrismSource] = dataclasses.field(default_factory=list)
    # the MIRI MRS: its geometry, pointing, cube and the cube's spectrum (:mod:`.ifu2`)
    ifu: ifu2.IfuState = dataclasses.field(default_factory=ifu2.IfuState)
    grism_source: GrismSource | None = None
    spectral_order: int | None = None
    contaminated: np.ndarray | None = None


def _spec_state(product: FitsProduct, backgrounds: Sequence[FitsProduct], msa: MsaMetadata | None,
                catalog: Any = None) -> SpecState:
    state = _state_from(product, backgrounds)
    time_series = str(product.keywords.get("EXP_TYPE") or "").upper() in TSO_SPEC_EXP_TYPES
    if state.sci.ndim != 2 and not time_series:
        raise InputError(f"{state.name}: a slit spectrum is calibrated from a _rate (one image); "
                         f"SCI has shape {state.sci.shape}")
    return SpecState(**{f.name: getattr(state, f.name) for f in dataclasses.fields(CalState)}, msa=msa,
                     catalog=catalog)


def _part_name(s: SpecState) -> str:
    """How the notes name a part: a MOS slitlet, or a WFSS source's spectrum in an order."""
    if s.grism_source is not None:
        return f"source {s.grism_source.label} order {s.spectral_order}"
    return f"slitlet {s.slitlet.name}"


# a step of one slit run on every part once extract_2d has cut them: a MOS exposure's
# slitlets, a WFSS exposure's sources (a part per source and order)
_each_slit = for_each_part(lambda s: s.slits, _part_name)


def _assign_wcs(s: SpecState, a: StepArgs) -> Skip | None:
    ref, kw = a.refs["specwcs"], s.keywords
    ny, nx = s.sci.shape[-2:]
    exp_type = str(kw.get("EXP_TYPE", "")).upper()
    if exp_type == MOS_EXP_TYPE:
        return _assign_mos(s, a)
    slitless = exp_type in SLITLESS_EXP_TYPES
    try:
        table, cards = slit_table(ref.tables, ref.table_headers, ref.header, kw.get("FXD_SLIT"))
        dispaxis = int(cards.get("DISPAXIS", 2))
        x_ref, y_ref = reference_point(cards, slitless)
        trace = slit_trace(table, x_ref, y_ref, xstart=int(kw.get("SUBSTRT1", 1)), ystart=int(kw.get("SUBSTRT2", 1)),
                           ny=ny if dispaxis == 2 else nx, dispaxis=dispaxis)
    except (KeyError, TypeError, ValueError) as exc:
        raise ReferenceFileError(f"SPECWCS reference {ref.filename}: {exc}") from exc
    if trace.rows.size == 0:
        raise InputError(f"{s.name}: the slit's spectrum does not fall on this readout window")
    bounds = _wavelength_range(s, a)
    if bounds is not None:
        trace = bound_trace(trace, *bounds)
        if trace.rows.size == 0:
            raise InputError(f"{s.name}: the slit's spectrum on this readout window lies outside the "
                             f"{bounds[0]:g}-{bounds[1]:g} um range of its filter and grating (WAVELENGTHRANGE)")
    frame_nx = in_frame(s.sci, dispaxis).shape[-1]
    if slitless:  # no slit bounds the light: every pixel of a row has the row's wavelength
        s.half_length = float(frame_nx)
    else:
        try:
            length, width = slit_length(cards), slit_width(cards)
        except ValueError as exc:
            raise ReferenceFileError(f"SPECWCS reference {ref.filename}: {exc}") from exc
        s.half_length = 0.5 * length / _pixel_scale(kw)
        s.slit_size = (length, width)
    s.trace = trace
    s.wavelength = in_frame(wavelength_image(trace, frame_nx, s.half_length), dispaxis)
    s.source_pixel = _source_position(s, a, trace)
    x_src, y_src = s.source_pixel if dispaxis == 2 else s.source_pixel[::-1]  # in the dispersion frame
    s.source = (source_along(trace, x_src, y_src), y_src - trace.ref[1])
    if slitless and abs(s.source[1]) > 0.5:
        a.note(f"assign_wcs: the source images {s.source[1]:+.2f} px along the dispersion from the slitless "
               "reference point; the wavelengths are the reference point's")
    s.keywords.update(_slit_cards(s))  # the source's place, for stage 3 to combine the nods on it
    _spectral_gwcs(s, a, trace)
    pointing = [kw.get(k) for k in ("RA_REF", "DEC_REF", "ROLL_REF", "V2_REF", "V3_REF")]
    if all(v is not None for v in pointing) and not slitless:  # a slitless footprint is the window's
        v2, v3 = ([float(cards[f"{axis}VERT{i}"]) for i in range(1, 5)] for axis in ("V2", "V3"))
        ra, dec = v23tosky(TelescopePointing.from_keywords(kw))(np.array(v2), np.array(v3))
        s.keywords["S_REGION"] = s_region(np.column_stack([np.asarray(ra), np.asarray(dec)]))
    s.keywords["DISPAXIS"] = dispaxis
    a.note(f"assign_wcs: {trace.rows.size} {'rows' if dispaxis == 2 else 'columns'} of spectrum, "
           f"{np.nanmin(trace.wavelength):.3f}-{np.nanmax(trace.wavelength):.3f} um; source at "
           f"{s.source[0]:+.2f} px along, {s.source[1]:+.2f} px across the slit"
           + (" (slitless: from the trace across and along the dispersion)" if slitless else ""))
    return None


def _spectral_gwcs(s: SpecState, a: StepArgs, trace: SlitTrace) -> None:
    """The spectral gwcs (``meta.wcs``) of the window, with the DISTORTION reference and the
    pointing, and DITH_RA/DITH_DEC where the source sits on the sky (by which the public
    extract_1d centres its aperture); noted when it cannot be made."""
    kw = s.keywords
    ny, nx = s.sci.shape[-2:]
    pointing = [kw.get(k) for k in ("RA_REF", "DEC_REF", "ROLL_REF", "V2_REF", "V3_REF")]
    if any(v is None for v in pointing) or "distortion" not in a.refs:
        a.note("assign_wcs: no spectral gwcs (meta.wcs) without the DISTORTION reference and the pointing")
        return
    try:
        s.gwcs = slit_gwcs(_distortion_model(a.refs["distortion"]), TelescopePointing.from_keywords(kw), trace,
                           s.half_length, xstart=int(kw.get("SUBSTRT1", 1)), ystart=int(kw.get("SUBSTRT2", 1)),
                           xsize=nx, ysize=ny)
    except ValueError as exc:
        raise InputError(f"{s.name}: {exc}") from exc
    ra, dec, _ = s.gwcs(*s.source_pixel)
    if np.isfinite(ra) and np.isfinite(dec):
        s.keywords["DITH_RA"], s.keywords["DITH_DEC"] = float(ra), float(dec)
    else:
        a.note("assign_wcs: the source lies off the slit's image; no DITH_RA/DITH_DEC")


def _assign_grism(s: SpecState, a: StepArgs) -> Skip | None:
    """assign_wcs of NIRCam's grism time series: the trace and each column's wavelength from
    the grism's dispersion model (the public NIRCAMGrismModel SPECWCS,
    :func:`shared.spectra.grism.grism_trace`) about the source's undispersed image, found
    through the imaging WCS (or, without it, at XREF_SCI/YREF_SCI, the aperture's
    reference point); no slit, so every pixel of a column has its wavelength."""
    ref, kw = a.refs["specwcs"], s.keywords
    ny, nx = s.sci.shape[-2:]
    if "distortion" in a.refs and all(kw.get(k) is not None for k in ("TARG_RA", "TARG_DEC", "RA_REF", "DEC_REF",
                                                                     "ROLL_REF", "V2_REF", "V3_REF")):
        x0, y0 = _source_position(s, a, None)
        where = "through the imaging WCS"
    elif kw.get("XREF_SCI") is not None and kw.get("YREF_SCI") is not None:
        x0, y0 = float(kw["XREF_SCI"]) - 1.0, float(kw["YREF_SCI"]) - 1.0
        where = "at the aperture's reference point (XREF_SCI, YREF_SCI)"
    else:
        raise InputError(f"{s.name}: where the source images cannot be known: no DISTORTION reference and "
                         "pointing, and no XREF_SCI/YREF_SCI")
    try:
        trace = grism_trace(ref.tree, x0, y0, xstart=int(kw.get("SUBSTRT1", 1)), ystart=int(kw.get("SUBSTRT2", 1)),
                            nx=nx, ny=ny)
    except ValueError as exc:
        raise ReferenceFileError(f"SPECWCS reference {ref.filename}: {exc}") from exc
    if trace.rows.size == 0:
        raise InputError(f"{s.name}: the grism spectrum of a source at window pixel ({x0:.1f}, {y0:.1f}) does not "
                         "fall on this readout window")
    s.trace, s.half_length = trace, float(ny)
    s.wavelength = in_frame(wavelength_image(trace, ny, s.half_length), 1)
    s.source_pixel, s.source = (x0, y0), (0.0, 0.0)  # the trace runs through the source's own image
    s.keywords.update(_slit_cards(s))
    _spectral_gwcs(s, a, trace)
    s.keywords["DISPAXIS"] = 1
    a.note(f"assign_wcs: {trace.rows.size} columns of spectrum, {np.nanmin(trace.wavelength):.3f}-"
           f"{np.nanmax(trace.wavelength):.3f} um; source {where} at window pixel ({x0:.2f}, {y0:.2f})")
    return None


#: How far (degrees) a NIRISS exposure's filter wheel may sit from the SPECWCS's
#: reference position (FWCPOS_REF) for its traces to hold unrotated.
_FWCPOS_TOLERANCE = 0.01


def _assign_wfss(s: SpecState, a: StepArgs) -> Skip | None:
    """assign_wcs of a wide-field slitless exposure: each source of the direct images'
    catalog placed on the window through the exposure's imaging WCS (pointing and
    DISTORTION), with its trace per spectral order from the grism's dispersion model (the
    public NIRCAMGrismModel / NIRISSGrismModel SPECWCS), cut to the order's range for the
    exposure's blocking filter (WAVELENGTHRANGE, which also names the orders to extract;
    without it the model's orders above 0, over their whole span) (:mod:`shared.spectra.wfss`).
    Sources none of whose spectra fall on the window are dropped (counted in the note)."""
    ref, kw = a.refs["specwcs"], s.keywords
    if s.catalog is None:
        raise InputError(f"{s.name}: a wide-field slitless exposure ({kw.get('EXP_TYPE')}) is calibrated with the "
                         "source catalog of its direct images, which was not given")
    missing = [c for c in ("label", "sky_centroid") if c not in getattr(s.catalog, "colnames", ())]
    if missing:
        raise InputError(f"{s.name}: the source catalog has no {', '.join(missing)} column(s) (the image3 "
                         "_cat.ecsv has them)")
    try:
        dispaxis = grism_dispaxis(kw.get("INSTRUME"), kw.get("FILTER"), kw.get("PUPIL"))
    except ValueError as exc:
        raise InputError(f"{s.name}: {exc}") from None
    fwcpos_ref, fwcpos = ref.tree.get("fwcpos_ref"), kw.get("FWCPOS")
    if fwcpos_ref is not None and fwcpos is not None and abs(float(fwcpos) - float(fwcpos_ref)) > _FWCPOS_TOLERANCE:
        raise InputError(f"{s.name}: the filter wheel sits at FWCPOS={float(fwcpos):.3f} deg, "
                         f"{float(fwcpos) - float(fwcpos_ref):+.3f} deg from the position the SPECWCS "
                         f"{ref.filename} models (fwcpos_ref {float(fwcpos_ref):.3f}); traces rotated by the wheel "
                         "are not supported")
    needed = ("RA_REF", "DEC_REF", "ROLL_REF", "V2_REF", "V3_REF")
    if "distortion" not in a.refs or any(kw.get(k) is None for k in needed):
        raise InputError(f"{s.name}: the sources of a wide-field slitless exposure are placed through its imaging "
                         "WCS, which needs the DISTORTION reference and the pointing (RA_REF, DEC_REF, ROLL_REF, "
                         "V2_REF, V3_REF)")
    ny, nx = s.sci.shape[-2:]
    xstart, ystart = int(kw.get("SUBSTRT1", 1)), int(kw.get("SUBSTRT2", 1))
    _, wcs = exposure_wcs(_distortion_model(a.refs["distortion"]), TelescopePointing.from_keywords(kw),
                          xstart=xstart, ystart=ystart, xsize=nx, ysize=ny)

    def world_to_pixel(ra: np.ndarray, dec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x, y = wcs.all_world2pix(np.atleast_1d(ra), np.atleast_1d(dec), 0)
        return np.asarray(x, np.float64), np.asarray(y, np.float64)

    blocking = wfss_filter(kw)
    wr = a.refs.get("wavelengthrange")
    try:
        ranges, absent = wfss_ranges(None if wr is None else wr.tree, blocking, ref.tree)
    except ValueError as exc:
        name = "SPECWCS" if wr is None else "WAVELENGTHRANGE"
        raise ReferenceFileError(f"{name} reference {(ref if wr is None else wr).filename}: {exc}") from exc
    if not ranges:
        raise ReferenceFileError(f"SPECWCS reference {ref.filename}: it describes none of the orders to extract "
                                 f"with {blocking} ({absent})")
    try:
        found = grism_sources(s.catalog, ref.tree, world_to_pixel, ranges=ranges, dispaxis=dispaxis, xstart=xstart,
                              ystart=ystart, nx=nx, ny=ny)
    except ValueError as exc:
        raise ReferenceFileError(f"SPECWCS reference {ref.filename}: {exc}") from exc
    if not found.sources:
        raise InputError(f"{s.name}: the spectra of none of the {len(s.catalog)} catalog source(s) fall on this "
                         "readout window")
    s.sources = found.sources
    s.keywords["DISPAXIS"] = dispaxis
    bounds = ", ".join(f"order {n}: " + ("its whole span" if r is None else f"{r[0]:.3f}-{r[1]:.3f} um")
                       for n, r in ranges.items())
    a.note(f"assign_wcs: {len(found.sources)} of {len(s.catalog)} catalog source(s) have spectra on the window "
           f"(dispersed along {'x' if dispaxis == 1 else 'y'}; {bounds}"
           + (f"; WAVELENGTHRANGE {wr.filename}" if wr is not None else "; no WAVELENGTHRANGE reference") + ")"
           + (f"; {len(found.dropped)} dropped, their spectra off the window ({_labels(found.dropped)})"
              if found.dropped else "")
           + (f"; {len(found.unplaced)} without a position on it ({_labels(found.unplaced)})" if found.unplaced else "")
           + (f"; order(s) {absent} not in the SPECWCS" if absent else ""))
    return None


def _labels(labels: Sequence[int], most: int = 10) -> str:
    shown = ", ".join(str(v) for v in labels[:most])
    return shown + (f", ... ({len(labels) - most} more)" if len(labels) > most else "")


def _bkg_wfss(s: SpecState, a: StepArgs) -> Skip | None:
    """bkg_subtract of a wide-field slitless exposure: the dispersed sky's pattern (the
    WFSSBKG reference) scaled to the exposure by a robust fit over the pixels outside
    every source's region (:func:`shared.spectra.wfss.background_scale`, clipped at the
    step's ``sigma``), subtracted; its DQ flags added (BKGD_SCL records the scale)."""
    if not s.sources:
        return Skip("the exposure has no sources (assign_wcs did not run)", SkipKind.NO_INPUT)
    ref = a.refs["wfssbkg"]
    pattern, pattern_dq = ref.get("SCI"), ref.get("DQ")
    if pattern.shape != s.sci.shape:
        raise ReferenceFileError(f"WFSSBKG reference {ref.filename}: its SCI {pattern.shape} is not the exposure's "
                                 f"window {s.sci.shape}")
    mask = source_mask(s.sources, s.sci.shape)
    try:
        fit = background_scale(s.sci, s.dq, pattern, pattern_dq, mask, sigma=a.params.sigma,
                               maxiters=a.params.maxiters)
    except ValueError as exc:
        return Skip(f"the background cannot be scaled: {exc}", SkipKind.NOT_APPLICABLE)
    bkg = (fit.scale * np.asarray(pattern, np.float64)).astype(np.float32)
    s.sci = (s.sci - bkg).astype(np.float32)
    if pattern_dq is not None:
        s.dq = s.dq | np.asarray(pattern_dq, np.uint32)
    s.keywords["BKGD_SCL"] = fit.scale
    a.note(f"bkg_subtract: WFSSBKG {ref.filename} scaled by {fit.scale:.5g} (fitted on {fit.n_used} pixels off the "
           f"sources' regions, {fit.n_rejected} rejected in {fit.rounds} round(s)); mean "
           f"{float(np.nanmean(bkg)):.4g} DN/s subtracted")
    if a.options.save_bsub:
        s.bsub = dataclasses.replace(s, keywords=dict(s.keywords))
    return None


def _extract_2d_wfss(s: SpecState, a: StepArgs) -> Skip | None:
    """Each source's spectrum per order cut out of a wide-field slitless exposure (the
    lines of its spectrum, the pixels across them its region touches): a state of its own,
    with its trace, wavelengths and keywords (the public WFSS slit's: SLTNAME the source's
    label, SOURCEID, SPORDER, SRCXPOS/SRCYPOS its undispersed window pixel, SRCRA/SRCDEC,
    SLTSTRT/SLTSIZE); the pixels of the cutout that another source's region covers are
    flagged OTHER_BAD_PIXEL. Sources fainter than ``wfss_mmag_extract`` are left out."""
    if not s.sources:
        return Skip("the exposure has no sources (assign_wcs did not run)", SkipKind.NO_INPUT)
    p: Extract2dParams = a.params
    kw = s.keywords
    shape = s.sci.shape[-2:]
    xstart, ystart = int(kw.get("SUBSTRT1", 1)), int(kw.get("SUBSTRT2", 1))
    sources = s.sources
    if p.wfss_extract_half_height is not None:
        sources = [src if src.is_extended else dataclasses.replace(src, half=float(p.wfss_extract_half_height))
                   for src in sources]
    faint = set() if p.wfss_mmag_extract is None else {
        src.label for src in sources if src.abmag is None or src.abmag >= p.wfss_mmag_extract}
    flagged = n_contaminated = 0
    boxes = source_boxes(sources, shape)
    for i, src in enumerate(sources):
        if src.label in faint:
            continue
        for order, trace in src.traces.items():
            l0, l1, c0, c1 = boxes[(i, order)]
            d = trace.dispaxis
            rows, cols = (slice(c0, c1), slice(l0, l1)) if d == 1 else (slice(l0, l1), slice(c0, c1))
            box = (rows, cols)
            covered = in_frame(contamination(sources, i, order, shape, boxes=boxes), d)  # the window's orientation
            dq = s.dq[box] | np.where(covered, _OTHER_BAD_PIXEL, np.uint32(0))
            cut = trace.cut(l0, l1 - l0, c0)
            slit = SpecState(
                sci=s.sci[box].copy(), err=s.err[box].copy(), dq=dq, var_poisson=s.var_poisson[box].copy(),
                var_rnoise=s.var_rnoise[box].copy(), var_flat=None if s.var_flat is None else s.var_flat[box].copy(),
                keywords=dict(kw), bunit=s.bunit, trace=cut, half_length=src.half, grism_source=src,
                spectral_order=order, contaminated=covered)
            # slitless: every pixel of a line of the spectrum has the line's wavelength
            slit.wavelength = in_frame(wavelength_image(cut, c1 - c0, float(c1 - c0)), d)
            slit.source_pixel, slit.source = src.pixel, (0.0, 0.0)  # the trace runs through the source
            slit.keywords.update({"SLTNAME": str(src.label), "SOURCEID": src.label, "SPORDER": order,
                                  "SRCXPOS": src.pixel[0], "SRCYPOS": src.pixel[1], "SRCRA": src.ra,
                                  "SRCDEC": src.dec, "SLTSTRT1": xstart + cols.start, "SLTSIZE1": cols.stop - cols.start,
                                  "SLTSTRT2": ystart + rows.start, "SLTSIZE2": rows.stop - rows.start})
            s.slits.append(slit)
            n = int(covered.sum())
            flagged += n
            n_contaminated += n > 0
    kept = len(sources) - len(faint)
    if not s.slits:
        return Skip(f"none of the {len(sources)} source(s) is brighter than AB {p.wfss_mmag_extract:g} "
                    "(wfss_mmag_extract)", SkipKind.PARAMETER)
    a.note(f"extract_2d: {len(s.slits)} spectra of {kept} source(s)"
           + (f" ({len(faint)} fainter than AB {p.wfss_mmag_extract:g} left out)" if faint else "")
           + f"; {n_contaminated} overlap another source's spectrum: {flagged} pixel(s) flagged OTHER_BAD_PIXEL")
    return None


def _wavelength_range(s: SpecState, a: StepArgs) -> tuple[float, float] | None:
    """The wavelength range (um) of a NIRSpec exposure's filter and grating, from the
    WAVELENGTHRANGE reference (:func:`shared.spectra.wavelengthrange.exposure_range`): its
    slits' pixels outside it get no wavelength. None for the MIRI LRS and when the context
    has no WAVELENGTHRANGE (noted)."""
    ref = a.refs.get("wavelengthrange")
    found = exposure_range(ref, s.keywords, s.name)
    if found is None:
        if ref is None and str(s.keywords.get("INSTRUME") or "").upper() == "NIRSPEC":
            a.note("assign_wcs: no WAVELENGTHRANGE reference; the spectrum spans the SPECWCS's table")
        return None
    pair, low, high = found
    a.note(f"assign_wcs: {pair} spans {low:.3f}-{high:.3f} um (WAVELENGTHRANGE {ref.filename})")
    return low, high


def _assign_mos(s: SpecState, a: StepArgs) -> Skip | None:
    """assign_wcs of a MOS exposure: the slitlets its MSA metadata opens at its
    configuration (MSAMETID) and dither point (PATT_NUM) whose quadrant images on this
    detector, each with its trace from the SPECWCS's shutter table moved to its reference
    point (:mod:`shared.spectra.msa`) and cut to the range of the exposure's filter and
    grating (:func:`_wavelength_range`)."""
    ref, kw = a.refs["specwcs"], s.keywords
    if s.msa is None:
        raise InputError(f"{s.name}: a MOS exposure is calibrated with its MSA metadata file "
                         f"(MSAMETFL={kw.get('MSAMETFL') or '(none)'}), which was not given")
    try:
        geometry, table = mos_specwcs(ref.header, ref.tables)
    except ValueError as exc:
        raise ReferenceFileError(f"SPECWCS reference {ref.filename}: {exc}") from exc
    try:
        slitlets = open_slitlets(s.msa.shutter_info, s.msa.source_info, int(kw["MSAMETID"]), int(kw["PATT_NUM"]),
                                 program=str(kw.get("PROGRAM") or ""))
    except (KeyError, TypeError) as exc:
        raise InputError(f"{s.name}: no {exc} keyword to find its shutters in {s.msa.filename} by") from None
    except ValueError as exc:
        raise InputError(f"{s.name}: MSA metadata {s.msa.filename}: {exc}") from exc
    ny, nx = s.sci.shape[-2:]
    xstart, ystart = int(kw.get("SUBSTRT1", 1)), int(kw.get("SUBSTRT2", 1))
    elsewhere = []
    bounds = _wavelength_range(s, a)
    for slitlet in slitlets:
        if not geometry.on_detector(slitlet.quadrant):
            elsewhere.append(slitlet.name)
            continue
        trace = geometry.slitlet_trace(table, slitlet, xstart=xstart, ystart=ystart, ncolumns=nx)
        if bounds is not None:
            trace = bound_trace(trace, *bounds)
        if trace.rows.size:
            s.slitlets.append((slitlet, trace))
        else:
            elsewhere.append(slitlet.name)
    if not s.slitlets:
        raise InputError(f"{s.name}: none of the {len(slitlets)} slitlet(s) of {s.msa.filename} at configuration "
                         f"{kw['MSAMETID']}, dither point {kw['PATT_NUM']} images on this window")
    s.geometry = geometry
    s.keywords["DISPAXIS"] = 1
    a.note(f"assign_wcs: {len(s.slitlets)} slitlet(s) of {s.msa.filename} on {kw.get('DETECTOR')}"
           + (f"; {len(elsewhere)} image elsewhere ({', '.join(elsewhere)})" if elsewhere else ""))
    return None


def _msaflagopen(s: SpecState, a: StepArgs) -> Skip | None:
    ref = a.refs["msaoper"]
    if s.geometry is None:
        return Skip("the exposure has no MSA geometry (assign_wcs did not run)", SkipKind.NO_INPUT)
    try:
        stuck = failed_open_shutters(ref.tree)
    except ValueError as exc:
        raise ReferenceFileError(f"MSAOPER reference {ref.filename}: {exc}") from exc
    kw = s.keywords
    footprint = shutter_footprint(a.refs["specwcs"].tables["SHUTTER"], s.geometry, stuck, s.sci.shape,
                                  xstart=int(kw.get("SUBSTRT1", 1)), ystart=int(kw.get("SUBSTRT2", 1)))
    s.dq, n = flag_failed_open(s.dq, footprint)
    here = sum(1 for q, _, _ in stuck if s.geometry.on_detector(q))
    a.note(f"msa_flagging: {len(stuck)} shutter(s) failed open, {here} imaging on this detector; "
           f"{n} pixel(s) flagged MSA_FAILED_OPEN")
    return None


def _extract_2d(s: SpecState, a: StepArgs) -> Skip | None:
    """Each slitlet's cutout: the window's columns its spectrum covers, its rows within
    half its length and half a shutter (and a pixel) of its trace; a state of its own, with its trace,
    wavelengths, source and keywords (the public slit attributes), and its gwcs."""
    if not s.slitlets:
        return Skip("the exposure has no slitlets (assign_wcs did not run)", SkipKind.NO_INPUT)
    kw, g = s.keywords, s.geometry
    ny, nx = s.sci.shape[-2:]
    xstart, ystart = int(kw.get("SUBSTRT1", 1)), int(kw.get("SUBSTRT2", 1))
    distortion = _distortion_model(a.refs["distortion"]) if "distortion" in a.refs else None
    pointing = (TelescopePointing.from_keywords(kw)
                if all(kw.get(k) is not None for k in ("RA_REF", "DEC_REF", "ROLL_REF", "V2_REF", "V3_REF")) else None)
    for slitlet, trace in s.slitlets:
        half = g.cutout_half_length(len(slitlet.columns))  # as the public pipeline bounds it
        rows = trace.rows
        centre = trace.x[rows]
        x0, x1 = int(rows[0]), int(rows[-1]) + 1  # window columns (the frame's rows)
        y0 = max(int(np.floor(np.min(centre) - half)) - 1, 0)
        y1 = min(int(np.ceil(np.max(centre) + half)) + 2, ny)
        if y1 <= y0:
            a.note(f"extract_2d: slitlet {slitlet.name} lies off the window")
            continue
        cut = trace.cut(x0, x1 - x0, y0)
        box = (slice(y0, y1), slice(x0, x1))
        slit = SpecState(
            sci=s.sci[box].copy(), err=s.err[box].copy(), dq=s.dq[box].copy(), var_poisson=s.var_poisson[box].copy(),
            var_rnoise=s.var_rnoise[box].copy(), var_flat=None if s.var_flat is None else s.var_flat[box].copy(),
            keywords=dict(kw), bunit=s.bunit, trace=cut, half_length=half, slitlet=slitlet)
        slit.wavelength = in_frame(wavelength_image(cut, y1 - y0, half), 1)
        slit.source = g.source_offset(slitlet)  # (along, across) pixels from the slitlet's reference point
        slit.keywords.update({**slitlet.keywords(), "SLTSTRT1": xstart + x0, "SLTSIZE1": x1 - x0,
                              "SLTSTRT2": ystart + y0, "SLTSIZE2": y1 - y0})
        if distortion is not None and pointing is not None:
            try:
                slit.gwcs = slit_gwcs(distortion, pointing, cut, half, xstart=xstart + x0, ystart=ystart + y0,
                                      xsize=x1 - x0, ysize=y1 - y0)
            except ValueError as exc:
                raise InputError(f"{s.name}: slitlet {slitlet.name}: {exc}") from exc
        s.slits.append(slit)
    a.note(f"extract_2d: {len(s.slits)} slitlet(s) cut out"
           + ("" if distortion is not None and pointing is not None else
              " (no spectral gwcs without the DISTORTION reference and the pointing)"))
    return None


def _source_position(s: SpecState, a: StepArgs, trace: SlitTrace | None) -> tuple[float, float]:
    """The window pixel (x, y) where the target images undispersed: its coordinates through
    the exposure's imaging WCS (pointing and DISTORTION); the slit's reference point when
    that cannot be known (noted)."""
    kw = s.keywords
    needed = ("TARG_RA", "TARG_DEC", "RA_REF", "DEC_REF", "ROLL_REF", "V2_REF", "V3_REF")
    if "distortion" not in a.refs or any(kw.get(k) is None for k in needed):
        a.note("assign_wcs: the source is taken to be at the slit centre (no DISTORTION reference or pointing)")
        return trace.ref
    ny, nx = s.sci.shape[-2:]
    _, wcs = exposure_wcs(_distortion_model(a.refs["distortion"]), TelescopePointing.from_keywords(kw),
                          xstart=int(kw.get("SUBSTRT1", 1)), ystart=int(kw.get("SUBSTRT2", 1)), xsize=nx, ysize=ny)
    xt, yt = (float(v) for v in wcs.all_world2pix(float(kw["TARG_RA"]), float(kw["TARG_DEC"]), 0))
    return xt, yt


@_each_slit
def _srctype(s: SpecState, a: StepArgs) -> Skip | None:
    if s.grism_source is not None:  # a WFSS source: as its catalog entry says
        kind = "EXTENDED" if s.grism_source.is_extended else "POINT"
        why = f"the source catalog's is_extended is {s.grism_source.is_extended}"
    else:
        kind, why = source_type(s.keywords) if s.slitlet is None else slitlet_source_type(s.slitlet.stellarity)
    s.keywords["SRCTYPE"] = kind
    a.note(f"srctype: {kind} ({why})")
    return None


def _variances(s: SpecState) -> dict[str, np.ndarray]:
    out = {"VAR_POISSON": s.var_poisson, "VAR_RNOISE": s.var_rnoise}
    if s.var_flat is not None:
        out["VAR_FLAT"] = s.var_flat
    return out


def _set_variances(s: SpecState, sci: np.ndarray, err: np.ndarray, variances: Mapping[str, np.ndarray]) -> None:
    s.sci, s.err = sci, err
    s.var_poisson, s.var_rnoise = variances["VAR_POISSON"], variances["VAR_RNOISE"]
    s.var_flat = variances.get("VAR_FLAT")


@_each_slit
def _pathloss(s: SpecState, a: StepArgs) -> Skip | None:
    if s.keywords.get("SRCTYPE") != "POINT":
        return Skip("an extended source loses no light at the slit's jaws to correct for")
    if s.wavelength is None:
        return Skip("the exposure has no wavelengths (assign_wcs did not run)", SkipKind.NO_INPUT)
    ref = a.refs["pathloss"]
    try:
        if "PS" in ref.arrays:  # NIRSpec's, per aperture, over the source's place in slit units
            kw = s.keywords
            # a fixed slit's aperture is named after it; a MOS slitlet's follows its shutter state
            aperture, shift = (str(kw.get("FXD_SLIT") or ""), 0.0) if s.slitlet is None else \
                msa_aperture(s.slitlet.shutter_state)
            waves, vector, centred = nirspec_pathloss(ref.arrays["PS"], aperture, float(kw["SRCXPOS"]),
                                                      float(kw["SRCYPOS"]) + shift)
        else:  # the MIRI LRS's: a table over the source's place in pixels
            table = ref.tables["PATHLOSS"]
            grid = PathlossGrid.from_wcs(ref.table_headers.get("PATHLOSS", {}))
            vector, centred = pathloss_vector(table["pathloss"], grid, *s.source)
            waves = table["wavelength"]
    except (ValueError, KeyError) as exc:
        raise ReferenceFileError(f"PATHLOSS reference {ref.filename}: {exc}") from exc
    r = apply_pathloss(s.sci, s.err, _variances(s), s.wavelength, waves, vector, centred=centred)
    _set_variances(s, r.sci, r.err, r.variances)
    on = np.isfinite(s.wavelength)
    a.note(f"pathloss: point source corrected by {float(np.nanmin(r.correction[on])):.3f}-"
           f"{float(np.nanmax(r.correction[on])):.3f}" + (" (outside the grid: as at the slit centre)" if centred else ""))
    return None


@_each_slit
def _photom(s: SpecState, a: StepArgs) -> Skip | None:
    ph, kw = a.refs["photom"], s.keywords
    table = ph.tables["PHOTOM"]
    if not {"wavelength", "relresponse"} <= set(table.dtype.names or ()):
        return Skip(f"PHOTOM reference {ph.filename} has no relative response (a spectroscopic PHOTOM has)",
                    SkipKind.NO_REFERENCE)
    # a grism's row is its order's (filter, pupil, order): a WFSS spectrum's own, the time series' first
    grism = str(kw.get("EXP_TYPE") or "").upper() in _GRISM | _WFSS
    order = (s.spectral_order or 1) if grism else None
    row = select_photom_row(table, filter=str(kw.get("FILTER") or ""), pupil=kw.get("PUPIL"),
                            subarray=kw.get("SUBARRAY"), grating=kw.get("GRATING"), slit=kw.get("FXD_SLIT"),
                            order=order)
    if row is None:
        wanted = " ".join(f"{k}={kw.get(k)}" for k in ("FILTER", "PUPIL", "GRATING", "FXD_SLIT", "SUBARRAY")
                          if k in kw) + (f" order {order}" if grism else "")
        return Skip(f"PHOTOM reference {ph.filename} has no row for {wanted}; the data stay in DN/s",
                    SkipKind.NO_REFERENCE)
    if s.wavelength is None:
        return Skip("the exposure has no wavelengths (assign_wcs did not run)", SkipKind.NO_INPUT)
    chosen = table[row.index]
    n = int(chosen["nelem"]) if "nelem" in table.dtype.names else len(chosen["wavelength"])
    sr, a2 = ph.header.get("PIXAR_SR"), ph.header.get("PIXAR_A2")
    value, unit = row.photmjsr, row.unit
    if unit == "MJy" and kw.get("SRCTYPE") != "POINT":  # an extended source: per steradian
        if sr is None:
            raise ReferenceFileError(f"PHOTOM reference {ph.filename} gives MJy per pixel but no pixel area "
                                     "(PIXAR_SR) to calibrate an extended source by")
        value, unit = value / float(sr), "MJy/sr"
    conversion = spectral_conversion(s.wavelength, value, chosen["wavelength"][:n], chosen["relresponse"][:n])
    if grism:  # the grisms' PHOTMJSR is per um of spectrum (MJy um / (sr DN/s)), as the public files give it
        conversion = conversion / in_frame(line_dispersion(s.trace)[:, None], s.trace.dispaxis)
    r = apply_photom(s.sci, s.err, _variances(s), conversion)
    _set_variances(s, r.sci, r.err, r.variances)
    cards = photom_keywords(value, None if sr is None else float(sr), None if a2 is None else float(a2))
    if unit == "MJy":  # a point source in MJy per pixel: no surface-brightness conversion to state
        cards.pop("PHOTMJSR"), cards.pop("PHOTUJA2")
    s.keywords.update(cards)
    s.bunit = unit
    n_invalid = _mark_invalid(s)
    a.note(f"photom: {value:.4g} {unit} per DN/s x relative response"
           + (" / the dispersion (um per pixel) of each line" if grism else "")
           + f"; {n_invalid} pixel(s) without a conversion")
    return None


def _frame(s: SpecState) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """SCI, DQ and the variances seen in the trace's dispersion frame (views)."""
    d = s.trace.dispaxis
    return in_frame(s.sci, d), in_frame(s.dq, d), {k: in_frame(v, d) for k, v in _variances(s).items()}


@_each_slit
def _resample_spec(s: SpecState, a: StepArgs) -> Skip | None:
    if s.trace is None:
        return Skip("the exposure has no trace (assign_wcs did not run)", SkipKind.NO_INPUT)
    sci, dq, variances = _frame(s)
    s.s2d = rectify_slit(sci, dq, variances, s.trace.x, s.trace.rows, s.trace.wavelength, s.half_length)
    return None


@_each_slit
def _extract_1d(s: SpecState, a: StepArgs) -> Skip | None:
    if s.trace is None:
        return Skip("the exposure has no trace (assign_wcs did not run)", SkipKind.NO_INPUT)
    pixar = s.keywords.get("PIXAR_SR")
    if s.bunit not in ("MJy/sr", "MJy") or pixar is None:
        return Skip("the exposure is not flux-calibrated (photom did not run)", SkipKind.NO_INPUT)
    sci, dq, variances = _frame(s)
    variances = {k.removeprefix("VAR_"): v for k, v in variances.items()}
    centre = s.trace.x + s.source[0]
    # a WFSS source's aperture: its extraction height (2 x half-height + 1 pixels), no background regions
    # (the dispersed sky was subtracted)
    own = None if s.grism_source is None else 2.0 * s.half_length + 1.0
    try:
        params = a.params.for_mode(str(s.keywords.get("EXP_TYPE") or ""), width=own)
    except ValueError as exc:
        raise InputError(f"{s.name}: extract_1d: {exc}") from None

    def extract(i: int | None) -> np.ndarray:
        if i is None:
            return boxcar_extract(sci, dq, variances, centre, s.trace.rows, s.trace.wavelength, float(pixar), params,
                                  unit=s.bunit)
        return boxcar_extract(sci[i], dq[i], {k: v[i] for k, v in variances.items()}, centre, s.trace.rows,
                              s.trace.wavelength, float(pixar), params, unit=s.bunit)

    where = (f"aperture {params.width:g} px at {s.source[0]:+.2f} px along the slit"
             + (f", background {', '.join(f'{lo:+g}..{hi:+g}' for lo, hi in params.background)} px"
                if params.background else ""))
    if sci.ndim == 3:  # a time series: each integration's spectrum
        s.x1dints = [extract(i) for i in range(sci.shape[0])]
        good = np.isfinite(np.stack([t["FLUX"] for t in s.x1dints]))
        a.note(f"extract_1d: {len(s.x1dints)} integrations of {good.shape[1]} spectral elements "
               f"({good.mean():.1%} of them measured), {where}")
        return None
    s.x1d = extract(None)
    good = np.isfinite(s.x1d["FLUX"])
    covered = int(np.count_nonzero(s.x1d["DQ"] & _OTHER_BAD_PIXEL)) if s.grism_source is not None else 0
    a.note(f"extract_1d: {int(good.sum())} of {len(s.x1d)} spectral elements, {where}"
           + (f"; {covered} flagged OTHER_BAD_PIXEL (another source's spectrum overlaps)" if covered else ""))
    return None


def _assign_orders(s: SpecState, a: StepArgs) -> Skip | None:
    """assign_wcs of NIRISS SOSS: each spectral order's trace and wavelengths on the
    window, from the SPECTRACE reference (:func:`shared.spectra.soss.order_traces`)."""
    ref, kw = a.refs["spectrace"], s.keywords
    ny, nx = s.sci.shape[-2:]
    try:
        s.orders = order_traces(ref.arrays.get("ORDER", []), ref.header, xstart=int(kw.get("SUBSTRT1", 1)),
                                ystart=int(kw.get("SUBSTRT2", 1)), nx=nx, ny=ny)
    except (TypeError, ValueError) as exc:
        raise ReferenceFileError(f"SPECTRACE reference {ref.filename}: {exc}") from exc
    if not s.orders:
        raise InputError(f"{s.name}: no spectral order of SPECTRACE {ref.filename} falls on this readout window "
                         f"({kw.get('SUBARRAY')})")
    s.keywords["DISPAXIS"] = 1
    for n, trace in s.orders.items():
        a.note(f"assign_wcs: order {n}: columns {trace.rows[0]}-{trace.rows[-1]}, "
               f"{np.nanmin(trace.wavelength):.3f}-{np.nanmax(trace.wavelength):.3f} um, trace at rows "
               f"{np.nanmin(trace.x):.1f}-{np.nanmax(trace.x):.1f}")
    return None


def _extract_orders(s: SpecState, a: StepArgs) -> Skip | None:
    if not s.orders:
        return Skip("the exposure has no spectral orders (assign_wcs did not run)", SkipKind.NO_INPUT)
    if s.bunit != "DN/s":
        raise InputError(f"{s.name}: SOSS spectra are extracted in DN/s and calibrated after; its data are in "
                         f"{s.bunit}")
    sci, dq, variances = in_frame(s.sci, 1), in_frame(s.dq, 1), {
        k.removeprefix("VAR_"): in_frame(v, 1) for k, v in _variances(s).items()}
    cube = sci.ndim == 3
    for n, trace in s.orders.items():
        params = order_params(a.params, n)

        def extract(i: int | None, trace: SlitTrace = trace, params: ExtractParams = params) -> np.ndarray:
            pick = (lambda v: v[i]) if i is not None else (lambda v: v)
            return boxcar_extract(pick(sci), pick(dq), {k: pick(v) for k, v in variances.items()}, trace.x,
                                  trace.rows, trace.wavelength, float("nan"), params, unit="DN/s")

        s.order_x1dints[n] = [extract(i) for i in range(sci.shape[0])] if cube else [extract(None)]
        a.note(f"extract_1d: order {n}: {len(s.order_x1dints[n])} spectra of {trace.rows.size} columns in DN/s, "
               f"aperture {params.width:g} px" + (
                   f", background {', '.join(f'{lo:+g}..{hi:+g}' for lo, hi in params.background)} px"
                   if params.background else ""))
    return None


def _photom_orders(s: SpecState, a: StepArgs) -> Skip | None:
    if not s.order_x1dints:
        return Skip("no spectra were extracted", SkipKind.NO_INPUT)
    ph = a.refs["photom"]
    try:
        calibrated, note = calibrate_orders(s.order_x1dints, ph.tables.get("PHOTOM"), ph.header, s.keywords)
    except ValueError as exc:
        raise ReferenceFileError(f"PHOTOM reference {ph.filename}: {exc}") from exc
    if calibrated is None:
        return Skip(f"PHOTOM reference {ph.filename} {note}", SkipKind.NO_REFERENCE)
    s.order_x1dints, s.order_flux_calibrated = calibrated, True
    a.note(f"photom: {note}")
    return None


SPEC2: Pipeline[SpecState] = Pipeline(
    name="spec2",
    title="calwebb_spec2",
    options=Spec2Options,
    steps=(
        # the nods of the slit modes (WFSS: its dispersed sky, scaled, once its sources are known)
        Step("bkg_subtract", "S_BKDSUB", _bkg_subtract, params=BkgSubtractParams, exp_types=SPEC2_EXP_TYPES - _WFSS),
        Step("assign_wcs", "S_WCS", _assign_wcs, reftypes=("specwcs",),
             optional_reftypes=("distortion", "wavelengthrange"), exp_types=_ONE_TRACE - _GRISM),
        Step("assign_wcs", "S_WCS", _assign_grism, reftypes=("specwcs",), optional_reftypes=("distortion",),
             exp_types=_GRISM),
        Step("assign_wcs", "S_WCS", _assign_orders, reftypes=("spectrace",), exp_types=SOSS_EXP_TYPES),
        Step("assign_wcs", "S_WCS", _assign_wfss, reftypes=("specwcs",),
             optional_reftypes=("distortion", "wavelengthrange"), exp_types=_WFSS),
        Step("assign_wcs", "S_WCS", ifu2.assign_wcs, reftypes=("distortion", "specwcs", "regions"), exp_types=_IFU),
        Step("bkg_subtract", "S_BKDSUB", _bkg_wfss, reftypes=("wfssbkg",), params=BkgSubtractParams, exp_types=_WFSS),
        Step("msa_flagging", "S_MSAFLG", _msaflagopen, reftypes=("msaoper", "specwcs"), exp_types=_MOS),
        Step("flat_field", "S_FLAT", _flat_field, reftypes=("flat",), exp_types=SPEC2_EXP_TYPES),
        Step("extract_2d", "S_EXTR2D", _extract_2d, params=Extract2dParams, optional_reftypes=("distortion",),
             exp_types=_MOS),
        Step("extract_2d", "S_EXTR2D", _extract_2d_wfss, params=Extract2dParams, exp_types=_WFSS),
        Step("srctype", "S_SRCTYP", _srctype, exp_types=SPEC2_EXP_TYPES),
        Step("pathloss", "S_PTHLOS", _pathloss, reftypes=("pathloss",),
             exp_types=SLIT_EXP_TYPES | TSO_SLIT_EXP_TYPES),
        Step("photom", "S_PHOTOM", _photom, reftypes=("photom",), exp_types=_TRACED),
        Step("fringe", "S_FRINGE", ifu2.fringe, reftypes=("fringe",), exp_types=_IFU),
        Step("photom", "S_PHOTOM", ifu2.photom, reftypes=("photom",), exp_types=_IFU),
        Step("cube_build", "S_IFUCUB", ifu2.cube_build, reftypes=("cubepar",), params=CubeBuildParams,
             exp_types=_IFU),
        Step("resample_spec", "S_RESAMP", _resample_spec, exp_types=SLIT_EXP_TYPES),
        Step("extract_1d", "S_EXTR1D", _extract_1d, params=ExtractParams, exp_types=_TRACED),
        Step("extract_1d", "S_EXTR1D", ifu2.extract_1d, params=ExtractParams, exp_types=_IFU),
        # SOSS: each order's spectra extracted in DN/s, then flux-calibrated (the public order)
        Step("extract_1d", "S_EXTR1D", _extract_orders, params=ExtractParams, exp_types=SOSS_EXP_TYPES),
        Step("photom", "S_PHOTOM", _photom_orders, reftypes=("photom",), exp_types=SOSS_EXP_TYPES),
    ),
)


@dataclass(frozen=True)
class Spec2Output(Recorded):
    """What the pipeline made: ``cal``, and ``s2d``/``x1d`` when their steps ran; ``bsub``
    on request; ``record`` what the runner recorded. For a time series (``is_cube``) they
    are the ``_calints``, ``_x1dints`` and ``_bsubints``."""

    cal: FitsProduct
    bsub: FitsProduct | None
    s2d: FitsProduct | None
    x1d: FitsProduct | None
    record: RunRecord
    context: str
    is_cube: bool = False
    s3d: FitsProduct | None = None  # an IFU exposure's cube

    def products(self) -> list[tuple[str, FitsProduct]]:
        ints = "ints" if self.is_cube else ""
        out = [(f"bsub{ints}", self.bsub), (f"cal{ints}", self.cal), ("s2d", self.s2d), ("s3d", self.s3d),
               (f"x1d{ints}", self.x1d)]
        return [(s, p) for s, p in out if p is not None]

    def outputs(self, science_name: str) -> list[Output]:
        """The products named after the science member, in order (``_bsub`` is auxiliary)."""
        return [Output(output_name(science_name, suffix), suffix, product,
                       "AUXILIARY" if suffix.startswith("bsub") else "SCIENCE")
                for suffix, product in self.products()]


def _slit_cards(s: SpecState) -> dict[str, Any]:
    """The slit's own keywords (SCI header): its name and where the source is, SRCXPOS and
    SRCYPOS, as the public pipeline gives them for the mode.

    - MIRI LRS: the 0-based pixel of the product's own grid, here the window's pixel where
      the source images undispersed (on the ``_s2d``, its column and row there:
      :func:`_rectified_cards`);
    - NIRSpec: the source's place in the slit from its centre, in units of the slit's
      width (SRCXPOS, across it, along the dispersion) and of its length (SRCYPOS), the
      same on every product.
    """
    if s.slitlet is not None:  # a MOS slitlet's, from its MSA metadata (extract_2d)
        return {k: s.keywords[k] for k in ("SLTNAME", "SOURCEID", "SRCXPOS", "SRCYPOS")}
    grism = str(s.keywords.get("EXP_TYPE") or "").upper() in _GRISM
    if s.trace is not None and s.trace.dispaxis == 1 and not grism:
        length, width = s.slit_size
        scale = _pixel_scale(s.keywords)
        return {"SLTNAME": str(s.keywords.get("FXD_SLIT") or "slit"), "SOURCEID": 1,  # the primary slit's source
                "SRCXPOS": s.source[1] * scale / width, "SRCYPOS": s.source[0] * scale / length}
    return {"SLTNAME": str(s.keywords.get("EXP_TYPE", "slit")), "SRCXPOS": s.source_pixel[0],
            "SRCYPOS": s.source_pixel[1]}


def _rectified_cards(s: SpecState) -> dict[str, Any]:
    """SRCXPOS/SRCYPOS on the rectified grid (the ``_s2d``, and the ``_x1d`` made beside it,
    as the public pipeline carries them over): for the MIRI LRS the source's column and
    its row's; NIRSpec's do not change."""
    if s.trace.dispaxis == 1:
        return _slit_cards(s)
    r = s.s2d
    return {**_slit_cards(s), "SRCXPOS": s.source[0] - float(r.offsets[0]),
            "SRCYPOS": s.source_pixel[1] - float(r.rows[0])}


def _s2d_product(s: SpecState, header: dict) -> FitsProduct:
    r = s.s2d
    images = {"SCI": r.sci, "DQ": r.dq, "ERR": r.err, "WAVELENGTH": r.wavelength, **r.variances}
    images = {k: in_frame(v, s.trace.dispaxis) for k, v in images.items()}  # NIRSpec's: wavelength along x
    wcs = {} if s.gwcs is None else {"meta.wcs": rectified_gwcs(s.gwcs, s.trace, r.rows, r.offsets)}
    product = FitsProduct(model_type="SlitModel", images=images, hdu_keywords={"ERR": {"BUNIT": s.bunit}},
                          extra_meta=wcs)
    cards = {k: v for k, v in header.items() if not k.startswith(("A_", "B_", "AP_", "BP_"))}
    set_cards(product, {**cards, **_rectified_cards(s), "BUNIT": s.bunit})
    return product


def _spectrum_cards(s: SpecState) -> dict[str, Any]:
    """The cards of a slit's spectrum (its EXTRACT1D extension)."""
    slit = _slit_cards(s) if s.s2d is None else _rectified_cards(s)
    own = {k: s.keywords.get(k) for k in ("SRCNAME", "SRCRA", "SRCDEC", "STLARITY", "SHUTSTA", "SLITID")}
    return {"SLTNAME": slit["SLTNAME"], "SOURCEID": slit.get("SOURCEID"), "SRCTYPE": s.keywords.get("SRCTYPE"),
            "SRCXPOS": slit["SRCXPOS"], "SRCYPOS": slit["SRCYPOS"], **own}


def _x1d_product(s: SpecState, header: dict) -> FitsProduct:
    return x1d_product([(s.x1d, _spectrum_cards(s))], header)


def _slit_of(product: FitsProduct) -> SlitProduct:
    """A one-slit product (a slitlet's ``_cal`` or ``_s2d``) as a slit of a product of many:
    its arrays, gwcs, and own keywords (with its BUNIT)."""
    own = {k: v for k, v in product.keywords.items() if k in SLIT_KEYWORDS or k == "BUNIT"}
    return SlitProduct(images=dict(product.images), keywords=own, extra_meta=dict(product.extra_meta))


def _mos_products(state: SpecState, header: Callable[[SpecState, str | None], dict]
                  ) -> tuple[FitsProduct, FitsProduct | None, FitsProduct | None]:
    """The ``_cal``, ``_s2d`` and ``_x1d`` of a MOS exposure: a MultiSlitModel with a slit
    per slitlet (its cutout, wavelengths and gwcs; rectified in the ``_s2d``) and a
    MultiSpecModel with a spectrum per slitlet, in slitlet order. The products' own
    keywords are the exposure's with what the steps set on the slits (photom's), less the
    slits' own."""
    slits = state.slits
    if not slits:  # extract_2d did not run (skipped): the whole frame, as it stands
        return _product(state, header(state, "photom"), {}), None, None

    def common(through: str | None) -> dict:
        return _common_cards(state, header, through)

    cal = _slits_cal(state, header)
    s2d = x1d = None
    if all(slit.s2d is not None for slit in slits):
        s2d = FitsProduct("MultiSlitModel", hdu_keywords={"ERR": {"BUNIT": slits[0].bunit}},
                          slits=[_slit_of(_s2d_product(slit, header(slit, "resample_spec"))) for slit in slits])
        set_cards(s2d, common("resample_spec"))
    spectra = [(slit.x1d, _spectrum_cards(slit)) for slit in slits if slit.x1d is not None]
    if spectra:
        x1d = x1d_product(spectra, common(None))
    return cal, s2d, x1d


def _common_cards(state: SpecState, header: Callable[[SpecState, str | None], dict], through: str | None) -> dict:
    """The keywords of a product of slits: the exposure's with what the steps set on the
    slits (photom's), less the slits' own."""
    cards = {**header(state, through), **header(state.slits[0], through)}
    return {k: v for k, v in cards.items() if k not in SLIT_KEYWORDS}


def _slits_cal(state: SpecState, header: Callable[[SpecState, str | None], dict]) -> FitsProduct:
    """The ``_cal`` of an exposure cut into slits (a MOS exposure's slitlets, a WFSS
    exposure's sources and orders): a MultiSlitModel with a slit per part, its cutout,
    wavelengths, gwcs and own keywords."""
    cal_slits = []
    for slit in state.slits:
        one = _product(slit, {**header(slit, "photom"), "BUNIT": slit.bunit}, {})
        one.images["WAVELENGTH"] = slit.wavelength
        cal_slits.append(_slit_of(one))
    cal = _product(state, _common_cards(state, header, "photom"), {})
    cal.model_type, cal.images, cal.slits = "MultiSlitModel", {}, cal_slits
    cal.extra_meta.pop("meta.wcs", None)  # the slits have theirs
    return cal


def _wfss_products(state: SpecState, header: Callable[[SpecState, str | None], dict]
                   ) -> tuple[FitsProduct, FitsProduct | None]:
    """The ``_cal`` and ``_x1d`` of a WFSS exposure, as the public pipeline writes them: a
    MultiSlitModel with a slit per source and order (in catalog order, each source's
    orders in turn), and a WFSSMultiSpecModel with a table per order whose rows are the
    sources (:func:`shared.datamodels.spectra.wfss_x1d_product`); no ``_s2d``."""
    if not state.slits:  # extract_2d did not run: the whole frame, as it stands
        return _product(state, header(state, "photom"), {}), None
    cal = _slits_cal(state, header)
    spectra = []
    for slit in state.slits:
        if slit.x1d is None:
            continue
        k = slit.keywords
        spectra.append((slit.x1d, {
            "SPORDER": slit.spectral_order, "SOURCE_ID": slit.grism_source.label, "SOURCE_TYPE": k.get("SRCTYPE"),
            "SOURCE_XPOS": slit.source_pixel[0], "SOURCE_YPOS": slit.source_pixel[1],
            "SOURCE_RA": slit.grism_source.ra, "SOURCE_DEC": slit.grism_source.dec,
            "EXTRACT2D_XSTART": k["SLTSTRT1"], "EXTRACT2D_YSTART": k["SLTSTRT2"],
            "EXTRACT2D_XSTOP": k["SLTSTRT1"] + k["SLTSIZE1"], "EXTRACT2D_YSTOP": k["SLTSTRT2"] + k["SLTSIZE2"]}))
    if not spectra:
        return cal, None
    cards = _common_cards(state, header, None)
    try:
        group = exposure_group_id(state.keywords)
    except ValueError as exc:  # an exposure without its observation's numbers: named by its file
        group = str(state.keywords.get("FILENAME") or "exposure").removesuffix(".fits")
        log.warning("%s: %s; its spectra's group is named %s", state.name, exc, group)
    return cal, wfss_x1d_product(spectra, cards, group_id=group, dispaxis=int(state.keywords.get("DISPAXIS") or 1))


def run_spec2(
    science: FitsProduct,
    refs: Mapping[str, Reference | None],
    *,
    backgrounds: Sequence[FitsProduct] = (),
    params: PipelineParams | None = None,
    context: str | None = None,
    software_version: str = "",
    created: str | None = None,
    asn_table: str | None = None,
    asn_pool: str | None = None,
    step_hook: Callable[[str], AbstractContextManager] | None = None,
    msa: MsaMetadata | None = None,
    catalog: Table | None = None,
) -> Spec2Output:
    """Run calwebb_spec2 on one slit exposure (a ``_rate``, DN/s, with DQ, VAR_POISSON and
    VAR_RNOISE) with loaded references and its ``backgrounds`` (the other nods' ``_rate``);
    a MOS exposure with its MSA metadata (``msa``, the file MSAMETFL names); a wide-field
    slitless exposure (:data:`WFSS_EXP_TYPES`) with the source catalog of its direct
    images (``catalog``, the image3 ``_cat.ecsv`` read as a Table).

    Raises
    ------
    InputError
        Input that cannot be calibrated: not a single image, a background of another
        window, a slit that misses the window, a MOS exposure without its MSA metadata,
        a WFSS exposure without its catalog.
    """
    exp_type = str(science.keywords.get("EXP_TYPE") or "").upper()
    if exp_type not in SPEC2_EXP_TYPES:
        raise InputError(f"{science.keywords.get('FILENAME', 'the exposure')}: spec2 calibrates "
                         f"{', '.join(sorted(SPEC2_EXP_TYPES))}, not EXP_TYPE {exp_type or '(none)'}")
    if exp_type == MOS_EXP_TYPE and msa is None:
        raise InputError(f"{science.keywords.get('FILENAME', 'the exposure')}: a MOS exposure is calibrated with its "
                         f"MSA metadata file (MSAMETFL={science.keywords.get('MSAMETFL') or '(none)'}), "
                         "which was not given")
    if exp_type in WFSS_EXP_TYPES and catalog is None:
        raise InputError(f"{science.keywords.get('FILENAME', 'the exposure')}: a wide-field slitless exposure "
                         f"({exp_type}) is calibrated with the source catalog of its direct images (their image3 "
                         "_cat.ecsv), which was not given")
    state = _spec_state(science, backgrounds, msa, catalog)
    record = SPEC2.run(state, science.keywords, {t: r for t, r in refs.items() if r is not None}, params,
                       step_hook=step_hook)
    prov = provenance_cards(software_version=software_version, context=context, created=created,
                            asn_table=asn_table, asn_pool=asn_pool)

    def header(s: SpecState, through: str | None) -> dict:
        return {**s.keywords, **prov, **record.status_cards(through), **record.reference_cards(through)}

    tables = {k: v for k, v in science.tables.items() if k == "INT_TIMES"}
    bsub = _product(state.bsub, header(state.bsub, "bkg_subtract"), tables) if state.bsub is not None else None
    if exp_type in SOSS_EXP_TYPES:  # a _calints (or one integration's _cal) in DN/s, its orders' spectra calibrated
        return _orders_output(science, state, header, tables, bsub, record, context)
    if state.sci.ndim == 3:  # a time series
        return _cube_output(science, state, header, tables, bsub, record, context)
    if exp_type == MOS_EXP_TYPE:
        cal, s2d, x1d = _mos_products(state, header)
        return Spec2Output(cal, bsub, s2d, x1d, record, context or "N/A")
    if exp_type in WFSS_EXP_TYPES:
        cal, x1d = _wfss_products(state, header)
        return Spec2Output(cal, bsub, None, x1d, record, context or "N/A")
    if exp_type in _IFU:
        return _ifu_output(state, header, bsub, record, context)
    cal = _product(state, header(state, "photom"), {})
    cal.model_type = "SlitModel"  # as the public pipeline writes a slit's _cal, its wavelengths included
    if state.wavelength is not None:
        cal.images["WAVELENGTH"] = state.wavelength
    s2d = _s2d_product(state, header(state, "resample_spec")) if state.s2d is not None else None
    x1d = _x1d_product(state, header(state, None)) if state.x1d is not None else None
    if state.trace is not None and state.trace.dispaxis == 1:  # NIRSpec: a product of slits
        cal = single_slit(cal)
        s2d = None if s2d is None else single_slit(s2d)
    return Spec2Output(cal, bsub, s2d, x1d, record, context or "N/A")


def _ifu_output(state: SpecState, header: Callable[[SpecState, str | None], dict], bsub: FitsProduct | None,
                record: RunRecord, context: str | None) -> Spec2Output:
    """The ``_cal`` (an IFUImageModel), ``_s3d`` and ``_x1d`` of an MRS exposure (:mod:`.ifu2`)."""
    cal = _product(state, header(state, "photom"), {})
    cal.model_type = "IFUImageModel"
    ifu = state.ifu
    s3d = None if ifu.cube is None else s3d_product(ifu.cube, header(state, "cube_build"))
    x1d = None
    if ifu.spectrum is not None:
        cards = {"SLTNAME": f"CH{ifu.cube.channel}-{ifu.cube.band}", **(ifu.spectrum_cards or {})}
        x1d = x1d_product([(ifu.spectrum, cards)], {**header(state, None), "CHANNEL": str(ifu.cube.channel)})
    return Spec2Output(cal, bsub, None, x1d, record, context or "N/A", s3d=s3d)


def _cube_output(science: FitsProduct, state: SpecState, header: Callable[[SpecState, str | None], dict],
                 tables: dict, bsub: FitsProduct | None, record: RunRecord, context: str | None) -> Spec2Output:
    """The ``_calints`` (with its WAVELENGTH image and INT_TIMES) and the ``_x1dints`` of a
    time series. As the public pipeline writes them: a CubeModel without a slit, a SlitModel
    (of 3-D arrays, with the slit's own keywords) through a slit (NIRSpec's S1600A1)."""
    cal = _product(state, header(state, "photom"), tables)
    if str(state.keywords.get("EXP_TYPE") or "").upper() in TSO_SLIT_EXP_TYPES:
        cal.model_type = "SlitModel"
    if state.wavelength is not None:
        cal.images["WAVELENGTH"] = state.wavelength
    x1dints = None
    if state.x1dints is not None:
        ints = integration_times(science, len(state.x1dints))
        if ints.note:
            log.warning("%s: %s", state.name, ints.note)
        x1dints = x1dints_product(state.x1dints, ints, _spectrum_cards(state), header(state, None),
                                  segment=int(state.keywords.get("EXSEGNUM") or 0))
    return Spec2Output(cal, bsub, None, x1dints, record, context or "N/A", is_cube=True)


def _orders_output(science: FitsProduct, state: SpecState, header: Callable[[SpecState, str | None], dict],
                   tables: dict, bsub: FitsProduct | None, record: RunRecord, context: str | None) -> Spec2Output:
    """The products of NIRISS SOSS, as the public pipeline writes them: the calibrated
    exposure stays in DN/s (photom calibrates the spectra), a ``_calints`` CubeModel (one
    integration's ``_rate``: a ``_cal`` ImageModel); its ``_x1dints`` (``_x1d``) has a
    table (a spectrum) per order, with its SPORDER."""
    cal = _product(state, header(state, "srctype"), tables)
    cube = state.sci.ndim == 3
    spectra = None
    if state.order_x1dints:
        cards = {"SLTNAME": str(state.keywords.get("EXP_TYPE")), "SRCTYPE": state.keywords.get("SRCTYPE")}
        if not cube:
            spectra = x1d_product([(series[0], {**cards, "SPORDER": n}) for n, series in state.order_x1dints.items()],
                                  header(state, None), counts=not state.order_flux_calibrated)
        else:
            ints = integration_times(science, len(next(iter(state.order_x1dints.values()))))
            if ints.note:
                log.warning("%s: %s", state.name, ints.note)
            spectra = x1dints_product(state.order_x1dints, ints, cards, header(state, None),
                                      segment=int(state.keywords.get("EXSEGNUM") or 0),
                                      counts=not state.order_flux_calibrated)
    return Spec2Output(cal, bsub, None, spectra, record, context or "N/A", is_cube=cube)


def calibrate(
    science: FitsProduct,
    provider: ReferenceProvider,
    *,
    backgrounds: Sequence[FitsProduct] = (),
    params: PipelineParams | None = None,
    software_version: str,
    created: str | None = None,
    asn_table: str | None = None,
    asn_pool: str | None = None,
    msa: MsaMetadata | None = None,
    catalog: Table | None = None,
) -> Spec2Output:
    """Choose and read the references of this exposure's steps from ``provider`` and run
    :func:`run_spec2` (a WFSS exposure with its direct images' source ``catalog``)."""
    refs = load_references(provider, science.keywords, SPEC2.reftypes(science.keywords))
    return run_spec2(science, refs.found, backgrounds=backgrounds, params=params, context=refs.context,
                     software_version=software_version, created=created, asn_table=asn_table, asn_pool=asn_pool,
                     msa=msa, catalog=catalog)

