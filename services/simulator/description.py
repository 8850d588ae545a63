"""The program description: the small YAML/JSON document the simulator starts from.

Validated with pydantic; unknown fields, unknown detectors, subarrays, readout patterns
and filters, and combinations the instrument cannot do are rejected with an error that
names the field (``observations[0].detectors[1]: ...``). See ``examples/*.yaml``.

Besides imaging, the simulator renders slit spectra (:mod:`services.simulator.spectrograph`):

- the MIRI low-resolution spectrometer's slit (``exp_type: MIR_LRS-FIXEDSLIT``): filter
  P750L, detector MIRIMAGE, subarray FULL, one pointing (``dither`` NONE: the target at
  the slit centre) or the along-slit nod (``ALONG-SLIT-NOD``);
- the MIRI LRS without its slit (``exp_type: MIR_LRS-SLITLESS``): filter P750L, detector
  MIRIMAGE, subarray SLITLESSPRISM, a time series (``tsovisit: true``, many ``nints``)
  staring at the target (``dither`` NONE), whose host star is the target with its
  ``spectrum`` (Jy; not ``host_flux``, which gives an imaging time series' star in
  e-/s) and whose ``transit`` may have a depth per wavelength (``depth_spectrum``);
- the NIRSpec fixed slits (``exp_type: NRS_FIXEDSLIT``): ``fixed_slit`` one of S200A1,
  S200A2, S400A1, S1600A1, S200B1 (FXD_SLIT), filter CLEAR with the prism (``pupil:
  PRISM``, the grating wheel's element, GRATING), detector NRS1, the slit's own window
  (SUBS200A1, SUBS200A2, SUBS400A1, SUB2048 for S1600A1, SUBS200B1), ALLSLITS or FULL;
  one pointing or the public nods along the slit, ``2-POINT-NOD`` (the target at
  -size/2 and +size/2) and ``3-POINT-NOD`` (0, -size, +size; ``size`` the step between
  nods, default the slit's: 1.0", S1600A1 0.3");
- NIRSpec's bright-object time series (``exp_type: NRS_BRIGHTOBJ``): G395M behind F290LP
  (``filter: F290LP``, ``pupil: G395M``) through S1600A1 (``fixed_slit``, its default),
  detector NRS1, subarray SUB2048, NRSRAPID or NRS, a time series (``tsovisit: true``)
  staring at the target (``dither`` NONE) whose host star is the target with its
  ``spectrum``, as the LRS slitless time series (the slit cuts its light and the sky);
- NIRISS single-object slitless spectroscopy (``exp_type: NIS_SOSS``): the GR700XD grism
  in the pupil wheel behind CLEAR (``filter: CLEAR``, ``pupil: GR700XD``), detector NIS,
  subarray SUBSTRIP256, NISRAPID or NIS, a time series (``tsovisit: true``) staring at
  the target (``dither`` NONE) whose host star is the target with its ``spectrum``, as
  the LRS slitless time series; orders 1 and 2 of its spectrum share the window;
- NIRCam's grism time series, long-wave channel (``exp_type: NRC_TSGRISM``): the GRISMR
  grism behind F444W (``filter: F444W``, ``pupil: GRISMR``), detectors that include
  NRCALONG (for now NRCALONG alone), subarray SUBGRISM64, a time series (``tsovisit:
  true``) staring at the target (``dither`` NONE) whose host star is the target with its
  ``spectrum``, as the LRS slitless time series;
- NIRSpec multi-object spectroscopy (``exp_type: NRS_MSASPEC``) with the prism behind
  CLEAR (``filter: CLEAR``, ``pupil: PRISM``): detectors NRS1 (it sees MSA quadrants 1
  and 3), NRS2 (quadrants 2 and 4) or both, subarray FULL, NRSRAPID or NRS, one pointing (``dither``
  NONE) or the public three-shutter slitlet nod (``3-SHUTTER-SLITLET``: one shutter pitch,
  0.53", along the slitlets; its size is fixed) or two-shutter slitlet nod
  (``2-SHUTTER-SLITLET``: two points one pitch apart, each nod the other's background). The sources are the brightest stars of
  the target's field, one slitlet each (:mod:`services.simulator.msa`). A MOS observation
  with another filter/grating is planned, with its MSA metadata file, not simulated;
- MIRI's medium-resolution spectrometer, an integral-field unit (``exp_type: MIR_MRS``,
  :mod:`services.simulator.mrs`): ``band`` SHORT, MEDIUM or LONG (required there, refused
  elsewhere), detectors MIRIFUSHORT (channels 1 and 2), MIRIFULONG (3 and 4) or both (the
  normal case: they expose together), subarray FULL, FASTR1 or SLOWR1, no filter (FILTER
  N/A), one pointing (``dither`` NONE: the target at the MRS reference point) or the MRS
  ``4-POINT`` dither (:data:`MRS_4POINT_ALPHA_BETA`: where the target lands in the
  channels' local frame). The MRS detectors take no other mode.

A nod that would bring the target within 0.5" of the slit's ends is refused. The target's
spectrum is its ``spectrum`` (default :data:`DEFAULT_SPECTRUM`); its lines must fall in
the spectrum of a slit that observes it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from shared.instruments import (
    INSTRUMENTS,
    NIRSPEC_FILTERS,
    NIRSPEC_FIXED_SLITS,
    NIRSPEC_GRATINGS,
    UnknownInstrumentError,
    detector,
    instrument_detectors,
    subarray,
)
from shared.plan import CANDIDATE_TYPES, candidate_problem

from .mrs import BANDS as MRS_BANDS
from .mrs import MRS_EXP_TYPE, alpha_beta_to_v2v3, channels_on
from .mrs import reference_point as mrs_reference_point
from .optics import (
    CLEAR_POSITIONS,
    FILTERS,
    IMAGING_EXP_TYPES,
    NIRCAM_PUPIL_PARTNERS,
    NIRCAM_SW_MAX_UM,
    READOUT_PATTERNS_BY_INSTRUMENT,
    SIMULATED_INSTRUMENTS,
    WEAK_LENS_FWHM_ARCSEC,
)
from .spectrograph import (
    GRISM_TSO_SHORT_WAVE_DETECTOR,
    GRISM_TSO_SHORT_WAVE_PUPILS,
    LRS,
    LRS_EXP_TYPE,
    LRS_SLITLESS_EXP_TYPE,
    MSA_QUADRANTS,
    MSA_SHUTTER_PITCH,
    NIRCAM_GRISM_TSO,
    NIRISS_SOSS,
    NIRSPEC_BOTS,
    NIRSPEC_FS,
    NIS_SOSS_EXP_TYPE,
    NRC_TSGRISM_EXP_TYPE,
    NRS_BOTS_EXP_TYPE,
    NRS_FS_EXP_TYPE,
    NRS_MOS_EXP_TYPE,
    SPECTRAL_TSO_EXP_TYPES,
    WFSS_EXP_TYPES,
    WFSS_GRISMS,
    SlitSpectrograph,
    SourceSpectrum,
    SpectralLine,
    slit_spectrograph,
    spectral_orders,
    wfss_grism,
)

__all__ = [
    "DEFAULT_SPECTRUM",
    "CandidateSpec",
    "DescriptionError",
    "DitherSpec",
    "LineSpec",
    "ShortWaveSpec",
    "ObservationSpec",
    "ProgramDescription",
    "SimulationSpec",
    "SpectrumSpec",
    "TargetStars",
    "TargetSpec",
    "TransitSpec",
    "load_description",
    "parse_description",
]

# Multi-object spectroscopy: planned with an MSA metadata file (services/simulator/msa.py);
# rendered on NRS1 and NRS2 with the prism behind CLEAR (MOS_RENDERED: filter, pupil), planned, not
# simulated (no telemetry), with any other filter/grating.
MOS_EXP_TYPES: dict[str, tuple[str, ...]] = {"NIRSPEC": (NRS_MOS_EXP_TYPE,)}
MOS_RENDERED = ("CLEAR", "PRISM")
MOS_READOUT_PATTERNS = ("NRSRAPID", "NRS")
# Slit spectroscopy the simulator renders (services/simulator/spectrograph.py), per instrument.
SLIT_EXP_TYPES: dict[str, tuple[str, ...]] = {detector(LRS.detector).instrument: (LRS_EXP_TYPE, LRS_SLITLESS_EXP_TYPE),
                                              "NIRSPEC": (NRS_FS_EXP_TYPE, NRS_BOTS_EXP_TYPE),
                                              detector(NIRISS_SOSS.detector).instrument: (NIS_SOSS_EXP_TYPE,),
                                              detector(NIRCAM_GRISM_TSO.detector).instrument: (NRC_TSGRISM_EXP_TYPE,)}
# Wide-field slitless spectroscopy the simulator renders (its grisms: WFSS_GRISMS), per instrument.
WFSS_SIMULATED: dict[str, tuple[str, ...]] = {
    instrument: tuple(sorted({m.exp_type for m in WFSS_GRISMS.values() if detector(m.detector).instrument == instrument}))
    for instrument in sorted({detector(m.detector).instrument for m in WFSS_GRISMS.values()})}
# The nod patterns along each slit, and how close to the slit's ends (arcsec) a nod may
# bring the target.
NOD_PATTERNS: dict[str, tuple[str, ...]] = {LRS_EXP_TYPE: ("ALONG-SLIT-NOD",), LRS_SLITLESS_EXP_TYPE: (),
                                            NRS_FS_EXP_TYPE: ("2-POINT-NOD", "3-POINT-NOD"), NRS_BOTS_EXP_TYPE: (),
                                            NIS_SOSS_EXP_TYPE: (), NRC_TSGRISM_EXP_TYPE: (),
                                            NRS_MOS_EXP_TYPE: ("3-SHUTTER-SLITLET", "2-SHUTTER-SLITLET")}
NOD_MARGIN_ARCSEC = 0.5
# Readout patterns of the slits where the instrument offers more than the simulator reads
# (NIRSpec's IRS2 patterns interleave reference pixels: not simulated).
SLIT_READOUT_PATTERNS: dict[str, tuple[str, ...]] = {NRS_FS_EXP_TYPE: ("NRSRAPID", "NRS"),
                                                     NRS_BOTS_EXP_TYPE: ("NRSRAPID", "NRS")}
# The exposure types that name a NIRSpec fixed slit (FXD_SLIT).
FIXED_SLIT_EXP_TYPES = (NRS_FS_EXP_TYPE, NRS_BOTS_EXP_TYPE)

# MIRI's medium-resolution spectrometer (services/simulator/mrs.py): its two detectors, read
# out together, and the filter it observes with (no filter wheel in its path: FILTER N/A).
MRS_DETECTORS = ("MIRIFUSHORT", "MIRIFULONG")
MRS_FILTER = "N/A"
MRS_READOUT_PATTERNS = ("FASTR1", "SLOWR1")
#: The MRS 4-POINT dither (the public APT pattern's name, optimized here for all channels):
#: where the target lands in the channels' local frame, (alpha, beta) arcsec, at each point.
#: Points 1/2 and 3/4 are 0.975" apart across the slices, (n + 1/2) slices of every channel
#: (5.51, 3.48, 2.50, 1.49 slices of channels 1-4), and 0.294" resp. 0.098" apart along them
#: (1.5 resp. 0.5 of the 0.196" pixel of channels 1 and 2).
MRS_4POINT_ALPHA_BETA: tuple[tuple[float, float], ...] = (
    (0.147, 0.4875), (-0.147, -0.4875), (0.049, -0.4875), (-0.049, 0.4875))

# Reference files are written with USEAFTER 2022-01-01; exposures must come after it.
EARLIEST_START = datetime(2022, 1, 1, tzinfo=UTC)


class DescriptionError(ValueError):
    """A program description that cannot be simulated; ``errors`` lists (field, message)."""

    def __init__(self, message: str, errors: list[tuple[str, str]] | None = None):
        super().__init__(message)
        self.errors = errors or []


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LineSpec(_Strict):
    """A Gaussian line of a target's spectrum: emission (``strength`` > 0) or absorption
    (< 0, at most -1: the line's centre then reaches zero flux)."""

    wavelength: float = Field(gt=0.0, description="Centre, micrometres.")
    fwhm: float = Field(gt=0.0, le=5.0, description="Intrinsic full width at half maximum, micrometres.")
    strength: float = Field(ge=-1.0, le=1000.0, description="Peak relative to the continuum (-0.3: 30 % deep).")


class SpectrumSpec(_Strict):
    """A target's spectrum, as a slit observation (MIRI LRS, NIRSpec fixed slit) sees it:
    ``f_nu = flux_jy * (lambda / reference_wavelength) ** slope * (1 + sum of the lines'
    Gaussians)``."""

    flux_jy: float = Field(0.002, gt=0.0, le=10.0, description="Continuum f_nu at reference_wavelength, Jy.")
    reference_wavelength: float = Field(7.5, ge=0.5, le=30.0, description="Where f_nu = flux_jy, um.")
    slope: float = Field(-1.0, ge=-10.0, le=10.0, description="Power-law index of the continuum in wavelength.")
    lines: list[LineSpec] = Field(
        default_factory=lambda: [LineSpec(wavelength=6.985, fwhm=0.05, strength=2.0),
                                 LineSpec(wavelength=9.7, fwhm=1.0, strength=-0.3)],
        description="Lines; default an emission line at 6.985 um ([Ar II]) and the 9.7 um silicate absorption.",
    )

    def source_spectrum(self) -> SourceSpectrum:
        """The spectrum as :mod:`.spectrograph` renders it."""
        return SourceSpectrum(flux_jy=self.flux_jy, slope=self.slope, reference=self.reference_wavelength,
                              lines=tuple(SpectralLine(wavelength=line.wavelength, fwhm=line.fwhm,
                                                       strength=line.strength) for line in self.lines))


#: The spectrum of a target observed through a slit that gives none (its lines are in the
#: LRS band: a NIRSpec spectrum of it is the continuum alone).
DEFAULT_SPECTRUM = SpectrumSpec()


class TargetSpec(_Strict):
    name: str = Field(min_length=1, description="Catalog name (TARGNAME); observations refer to it.")
    ra: float = Field(ge=0.0, lt=360.0, description="Right ascension, degrees.")
    dec: float = Field(ge=-90.0, le=90.0, description="Declination, degrees.")
    aliases: list[str] = Field(default_factory=list, description="Other names the archive resolves to it.")
    spectrum: SpectrumSpec | None = Field(None, description=(
        "Its spectrum in slit and slitless observations (MIRI LRS slit and slitless, NIRSpec fixed slits and "
        "bright-object time series, NIRISS SOSS, NIRCam's grism time series: only they simulate one; a "
        "MIR_LRS-SLITLESS, NRS_BRIGHTOBJ, NIS_SOSS or NRC_TSGRISM time series' host star); default "
        "DEFAULT_SPECTRUM."))


_KNOWN_PATTERNS = ("NONE", "4-POINT-BOX", "N-POINT-LINE", "ALONG-SLIT-NOD", "2-POINT-NOD", "3-POINT-NOD",
                   "3-SHUTTER-SLITLET", "2-SHUTTER-SLITLET", "4-POINT", "CUSTOM")


def mrs_dither_offsets(points=MRS_4POINT_ALPHA_BETA, detector_name: str = "MIRIFUSHORT") -> list[tuple[float, float]]:
    """The (dx, dy) arcsec along detector x/y (:class:`DitherSpec`'s offsets: the reference
    point moves by that much on the sky) that put the target at each (alpha, beta) arcsec of
    the MRS channels' local frame: the target, fixed on the sky, lands at ``(V2_REF + dx,
    V3_REF - dy)`` (+x is -V2, +y is +V3), so ``dx = V2 - V2_REF``, ``dy = V3_REF - V3`` of
    :func:`.mrs.alpha_beta_to_v2v3`."""
    v2_ref, v3_ref = mrs_reference_point(detector_name)
    out = []
    for alpha, beta in points:
        v2, v3 = alpha_beta_to_v2v3(alpha, beta, detector_name)
        out.append((round(float(v2) - v2_ref, 9), round(v3_ref - float(v3), 9)))
    return out


class DitherSpec(_Strict):
    """A dither pattern: a known name with a size, or explicit offsets.

    Known names: ``NONE`` (one point), ``4-POINT-BOX`` (corners of a square of side
    ``size``), ``N-POINT-LINE`` (``npoints`` points ``size`` apart along the detector
    diagonal), ``ALONG-SLIT-NOD`` (a slit observation's two nods, ``size`` apart along the
    slit, detector x: offsets -size/2 and +size/2, so the default puts them at -1.0" and
    +1.0"), ``2-POINT-NOD`` and ``3-POINT-NOD`` (NIRSpec fixed slits: along the slit,
    detector y; offsets -size/2, +size/2 and 0, +size, -size, ``size`` the step between
    nods, default the slit's), ``3-SHUTTER-SLITLET`` (NIRSpec MOS: the telescope steps one
    shutter pitch, 0.53", along the slitlets, detector y: offsets 0, -0.53, +0.53, so the
    source sits in the slitlet's middle, upper, lower shutter), ``2-SHUTTER-SLITLET``
    (NIRSpec MOS: two-shutter slitlets, the telescope stepping one pitch: offsets 0,
    -0.53, the source in the lower then the upper shutter), ``4-POINT`` (MIRI MRS: the target
    at the four (alpha, beta) of :data:`MRS_4POINT_ALPHA_BETA`, half-slice steps in every
    channel), ``CUSTOM`` (``offsets`` required). Any other name needs ``offsets`` and is
    recorded as the pattern type. Offsets are arcsec along detector x and y: the detector
    reference point moves by that much on the sky (the target, fixed on the sky, moves the
    other way on the detector).
    """

    pattern: str = Field("NONE", description="Pattern name (PATTTYPE).")
    npoints: int | None = Field(None, ge=1, le=100, description="Number of points (N-POINT-LINE).")
    size: float = Field(2.0, gt=0.0, le=600.0, description="Box side or line step, arcsec.")
    offsets: list[tuple[float, float]] | None = Field(
        None, min_length=1, description="Explicit (dx, dy) offsets, arcsec."
    )
    optimized_for: Literal["POINT-SOURCE", "EXTENDED-SOURCE"] | None = Field(None, description=(
        "MIRI MRS 4-POINT: what the pattern is optimized for (DITHOPFR), as the observer chooses it in APT; "
        "spec2's srctype takes a POINT-SOURCE pattern's target as a point source."))

    @field_validator("pattern")
    @classmethod
    def _upper(cls, v: str) -> str:
        return v.strip().upper()

    @model_validator(mode="after")
    def _check(self) -> DitherSpec:
        if self.offsets is not None:
            if self.npoints is not None and self.npoints != len(self.offsets):
                raise ValueError(
                    f"npoints={self.npoints} but {len(self.offsets)} offsets are given"
                )
            return self
        if self.pattern not in _KNOWN_PATTERNS or self.pattern == "CUSTOM":
            raise ValueError(
                f"pattern {self.pattern!r} needs explicit 'offsets' (patterns generated from a "
                f"size: {', '.join(p for p in _KNOWN_PATTERNS if p != 'CUSTOM')})"
            )
        expected = {"NONE": 1, "4-POINT-BOX": 4, "ALONG-SLIT-NOD": 2, "2-POINT-NOD": 2, "3-POINT-NOD": 3,
                    "3-SHUTTER-SLITLET": 3, "2-SHUTTER-SLITLET": 2, "4-POINT": 4}.get(
            self.pattern)
        if expected is not None and self.npoints not in (None, expected):
            raise ValueError(f"pattern {self.pattern} has {expected} points, not npoints={self.npoints}")
        if self.pattern == "N-POINT-LINE" and self.npoints is None:
            raise ValueError("pattern N-POINT-LINE needs 'npoints'")
        if self.optimized_for is not None and self.pattern != "4-POINT":
            raise ValueError(f"optimized_for is a MIRI MRS 4-POINT dither's choice, not pattern {self.pattern}'s")
        return self

    def step(self, default: float) -> float:
        """``size`` when the description gives it, else ``default``."""
        return self.size if "size" in self.model_fields_set else default

    def nod_positions(self, default_step: float = 2.0) -> list[float] | None:
        """Offsets along the slit (arcsec) of a nod pattern, one per point; None for any
        other pattern."""
        if self.pattern in ("ALONG-SLIT-NOD", "2-POINT-NOD"):
            h = self.step(default_step) / 2.0
            return [-h, h]
        if self.pattern == "3-POINT-NOD":
            step = self.step(default_step)
            return [0.0, step, -step]
        if self.pattern == "3-SHUTTER-SLITLET":
            pitch = MSA_SHUTTER_PITCH[1]
            return [0.0, -pitch, pitch]
        if self.pattern == "2-SHUTTER-SLITLET":
            return [0.0, -MSA_SHUTTER_PITCH[1]]
        return None

    def resolved_offsets(self, nod_step: float = 2.0, slit_axis: int = 1) -> list[tuple[float, float]]:
        """The (dx, dy) offsets in arcsec, one per dither point. A nod pattern's run along
        the slit: detector x (``slit_axis`` 1, the LRS) or y (2, NIRSpec), ``nod_step``
        its size when the description gives none."""
        if self.offsets is not None:
            return [(float(x), float(y)) for x, y in self.offsets]
        if self.pattern == "NONE":
            return [(0.0, 0.0)]
        if self.pattern == "4-POINT":
            return mrs_dither_offsets()
        nods = self.nod_positions(nod_step)
        if nods is not None:
            return [(u, 0.0) if slit_axis == 1 else (0.0, u) for u in nods]
        h = self.size / 2.0
        if self.pattern == "4-POINT-BOX":
            return [(-h, -h), (h, -h), (h, h), (-h, h)]
        n = int(self.npoints or 1)
        step = self.size / 2.0**0.5
        return [((k - (n - 1) / 2.0) * step, (k - (n - 1) / 2.0) * step) for k in range(n)]


class TransitSpec(_Strict):
    """A transit of the host star of a TSO observation: a trapezoid light curve, grey
    (``depth``) or, in a spectroscopic time series (MIR_LRS-SLITLESS, NRS_BRIGHTOBJ, NIS_SOSS, NRC_TSGRISM), with a
    depth that
    depends on the wavelength (``depth_spectrum``: the transmission spectrum, points
    (wavelength um, depth) joined by straight lines and held constant beyond the first and
    the last; the light curve at each wavelength is the trapezoid scaled to that depth).
    Exactly one of the two is given."""

    depth: float | None = Field(None, gt=0.0, lt=1.0, description=(
        "Fractional flux drop at full transit (0.01 = 1 %), the same at every wavelength."))
    depth_spectrum: list[tuple[float, float]] | None = Field(None, min_length=2, description=(
        "Spectroscopic time series: (wavelength um, depth) points of the transmission spectrum, wavelengths "
        "increasing, interpolated linearly (constant beyond the ends)."))
    duration_s: float = Field(gt=0.0, description="Total duration T14 (first to last contact), s.")
    ingress_s: float | None = Field(None, ge=0.0, description="Ingress (= egress) time, s; default duration_s / 10.")
    mid_time_s: float | None = Field(
        None, description=("Mid-transit, s after the observation start (UTC at the observatory); default the "
                           "middle of the observation. The truth also gives it as a BJD_TDB.")
    )

    @model_validator(mode="after")
    def _shape(self) -> TransitSpec:
        if self.ingress_s is not None and self.ingress_s > self.duration_s / 2.0:
            raise ValueError(f"ingress_s ({self.ingress_s}) exceeds half of duration_s ({self.duration_s})")
        if (self.depth is None) == (self.depth_spectrum is None):
            raise ValueError("give the transit's depth (grey) or its depth_spectrum (depth per wavelength), "
                             f"{'not both' if self.depth is not None else 'one of them'}")
        if self.depth_spectrum is not None:
            waves = [w for w, _ in self.depth_spectrum]
            if any(w <= 0.0 for w in waves) or any(b <= a for a, b in zip(waves, waves[1:], strict=False)):
                raise ValueError(f"depth_spectrum: the wavelengths {waves} must be positive and increasing (um)")
            bad = [d for _, d in self.depth_spectrum if not 0.0 <= d < 1.0]
            if bad:
                raise ValueError(f"depth_spectrum: depths {bad} are not fractions of the flux in [0, 1)")
        return self

    @property
    def chromatic(self) -> bool:
        """Whether the depth depends on the wavelength (``depth_spectrum`` given)."""
        return self.depth_spectrum is not None

    def depth_at(self, wavelength) -> np.ndarray:
        """The depth at full transit at ``wavelength`` (um, array): ``depth`` everywhere, or
        ``depth_spectrum`` interpolated linearly, constant beyond its ends."""
        wl = np.asarray(wavelength, np.float64)
        if self.depth_spectrum is None:
            return np.full(wl.shape, float(self.depth))
        waves, depths = zip(*self.depth_spectrum, strict=True)
        return np.interp(wl, np.asarray(waves, np.float64), np.asarray(depths, np.float64))

    @property
    def ingress(self) -> float:
        """Ingress time, s (the default resolved)."""
        return self.duration_s / 10.0 if self.ingress_s is None else self.ingress_s


class ShortWaveSpec(_Strict):
    """NIRCam's short-wave channel imaging the target while the long-wave grism disperses
    it (a grism time series): its filter and pupil element."""

    filter: str = Field(description="A short-wave NIRCam filter, e.g. F210M.")
    pupil: str = Field("WLP8", description="WLP8 (the weak lens, default) or CLEAR.")

    @field_validator("filter", "pupil")
    @classmethod
    def _upper(cls, v: str) -> str:
        return v.strip().upper()


class ObservationSpec(_Strict):
    """One observation: an instrument configuration repeated at each dither point."""

    number: int | None = Field(None, ge=1, le=999, description="Observation number; default: position in the list.")
    target: str = Field(description="Name of one of the program's targets.")
    instrument: str
    template: str | None = Field(None, description="APT template; default '<Instrument> Imaging'.")
    exp_type: str | None = Field(None, description="EXP_TYPE; default the detector's imaging type.")
    detectors: list[str] = Field(min_length=1)
    subarray: str = "FULL"
    readpatt: str
    filter: str
    pupil: str | None = Field(None, description="Pupil wheel element; default CLEAR (N/A for MIRI).")
    ngroups: int = Field(ge=1, le=1000)
    nints: int = Field(1, ge=1, le=10000)
    dither: DitherSpec = Field(default_factory=DitherSpec)
    roll: float = Field(0.0, ge=0.0, lt=360.0, description="Position angle of detector +y, degrees E of N.")
    start_time: datetime | None = Field(None, description="UTC start; default: after the previous observation.")
    tsovisit: bool = False
    is_background: bool = False
    is_psf: bool = False
    host_flux: float | None = Field(
        None, gt=0.0, description="TSO: a star of this flux (e-/s) exactly at the target position."
    )
    transit: TransitSpec | None = Field(None, description="TSO: a transit of the host star.")
    short_wave: ShortWaveSpec | None = Field(None, description=(
        f"NIRCam grism time series (NRC_TSGRISM): the short-wave imaging read at the same time on "
        f"{GRISM_TSO_SHORT_WAVE_DETECTOR} (listed among the detectors), its filter and pupil."))
    pre_image_for: list[int] = Field(default_factory=list, description=(
        "Imaging only: the observations this one is the pre-image of (e.g. NIRSpec MOS observations "
        "whose MSA configuration is planned from it)."))
    msa_sources: int = Field(10, ge=1, le=500, description=(
        "NIRSpec MOS (NRS_MSASPEC): sources given a slitlet in its MSA metadata file."))
    fixed_slit: str | None = Field(None, description=(
        "NIRSpec fixed-slit spectroscopy (NRS_FIXEDSLIT): the slit (FXD_SLIT), one of "
        + ", ".join(NIRSPEC_FIXED_SLITS) + "; required there; a bright-object time series (NRS_BRIGHTOBJ): "
        + f"{NIRSPEC_BOTS.slit}, its default; not allowed elsewhere."))
    band: str | None = Field(None, description=(
        "MIRI MRS (MIR_MRS): the band every channel takes, SHORT, MEDIUM or LONG (the public A/B/C); "
        "required there, not allowed elsewhere."))

    @field_validator("instrument")
    @classmethod
    def _instrument(cls, v: str) -> str:
        v = v.strip().upper()
        if v not in INSTRUMENTS:
            raise ValueError(f"unknown instrument {v!r}; known: {', '.join(INSTRUMENTS)}")
        if v not in SIMULATED_INSTRUMENTS and v not in MOS_EXP_TYPES and v not in SLIT_EXP_TYPES:
            raise ValueError(
                f"instrument {v} is not simulated (imaging of {', '.join(SIMULATED_INSTRUMENTS)}, the MIRI "
                "LRS slit, the NIRSpec fixed slits, bright-object time series and MOS only)"
            )
        return v

    @field_validator("fixed_slit")
    @classmethod
    def _fixed_slit(cls, v: str | None) -> str | None:
        if v is None:
            return None
        v = v.strip().upper()
        if v not in NIRSPEC_FIXED_SLITS:
            raise ValueError(f"{v!r} is not a NIRSpec fixed slit; one of {', '.join(NIRSPEC_FIXED_SLITS)}")
        return v

    @field_validator("band")
    @classmethod
    def _band(cls, v: str | None) -> str | None:
        if v is None:
            return None
        v = v.strip().upper()
        if v not in MRS_BANDS:
            raise ValueError(f"{v!r} is not an MRS band; one of {', '.join(MRS_BANDS)}")
        return v

    @field_validator("detectors")
    @classmethod
    def _detectors(cls, v: list[str], info: ValidationInfo) -> list[str]:
        return instrument_detectors(info.data.get("instrument"), v)

    @field_validator("subarray")
    @classmethod
    def _subarray(cls, v: str, info: ValidationInfo) -> str:
        v = v.strip().upper()
        if info.data.get("instrument"):
            subarray(info.data["instrument"], v)
        return v

    @field_validator("readpatt")
    @classmethod
    def _readpatt(cls, v: str, info: ValidationInfo) -> str:
        v = v.strip().upper()
        instrument = info.data.get("instrument")
        if instrument:
            allowed = READOUT_PATTERNS_BY_INSTRUMENT[instrument]
            if v not in allowed:
                raise ValueError(f"readout pattern {v!r} is not one of {instrument}'s: {', '.join(allowed)}")
        return v

    @field_validator("exp_type")
    @classmethod
    def _exp_type(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is None:
            return None
        v = v.strip().upper()
        instrument = info.data.get("instrument")
        allowed = (IMAGING_EXP_TYPES.get(instrument or "", ()) + SLIT_EXP_TYPES.get(instrument or "", ())
                   + MOS_EXP_TYPES.get(instrument or "", ()) + WFSS_SIMULATED.get(instrument or "", ())
                   + ((MRS_EXP_TYPE,) if instrument == "MIRI" else ()))
        if instrument and v not in allowed:
            raise ValueError(f"exp_type {v!r} is not simulated for {instrument}; use one of {', '.join(allowed)}")
        return v

    @field_validator("filter", "pupil")
    @classmethod
    def _upper(cls, v: str | None) -> str | None:
        return v.strip().upper() if v is not None else None

    @field_validator("start_time")
    @classmethod
    def _utc(cls, v: datetime | None) -> datetime | None:
        if v is None:
            return None
        v = v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)
        if v < EARLIEST_START:
            raise ValueError(f"start_time {v.isoformat()} is before {EARLIEST_START.date()} (reference-file USEAFTER)")
        return v

    @model_validator(mode="before")
    @classmethod
    def _mrs_filter(cls, data: Any) -> Any:
        """An MRS observation has no filter in its path: FILTER N/A when it names none."""
        if (isinstance(data, dict) and str(data.get("exp_type") or "").strip().upper() == MRS_EXP_TYPE
                and data.get("filter") is None):
            return {**data, "filter": MRS_FILTER}
        return data

    @model_validator(mode="before")
    @classmethod
    def _bots_slit(cls, data: Any) -> Any:
        """A bright-object time series observes through S1600A1 when it names no slit."""
        if (isinstance(data, dict) and str(data.get("exp_type") or "").strip().upper() == NRS_BOTS_EXP_TYPE
                and data.get("fixed_slit") is None):
            return {**data, "fixed_slit": NIRSPEC_BOTS.slit}
        return data

    @model_validator(mode="before")
    @classmethod
    def _planned_only_instrument(cls, data: Any) -> Any:
        if isinstance(data, dict):
            instrument = str(data.get("instrument") or "").strip().upper()
            exp_type = str(data.get("exp_type") or "").strip().upper()
            slits = SLIT_EXP_TYPES.get(instrument, ())
            if instrument in MOS_EXP_TYPES and exp_type not in MOS_EXP_TYPES[instrument] + slits:
                raise ValueError(
                    f"instrument: {instrument} is not simulated (imaging of {', '.join(SIMULATED_INSTRUMENTS)} only); "
                    f"a {instrument} observation is simulated as exp_type {' or '.join(slits)} (slit spectroscopy) "
                    f"or {' or '.join(MOS_EXP_TYPES[instrument])} (multi-object spectroscopy, with its MSA "
                    "metadata file)")
        return data

    @property
    def mos(self) -> bool:
        """A NIRSpec MOS observation (NRS_MSASPEC), planned with its MSA metadata file."""
        return self.exp_type in MOS_EXP_TYPES.get(self.instrument, ())

    @property
    def planned_only(self) -> bool:
        """A MOS observation the simulator plans but does not render (a filter/grating
        other than :data:`MOS_RENDERED`)."""
        return self.mos and (self.filter, self.pupil) != MOS_RENDERED

    @property
    def spectrograph(self) -> SlitSpectrograph | None:
        """The slit a slit spectroscopy observation disperses with (None otherwise)."""
        try:
            return slit_spectrograph(self.exp_type, self.fixed_slit)
        except ValueError:
            return None

    @property
    def slit(self) -> bool:
        """A slit spectroscopy observation (MIR_LRS-FIXEDSLIT, NRS_FIXEDSLIT, NRS_BRIGHTOBJ),
        or slitless (the LRS without its slit MIR_LRS-SLITLESS, NIRISS SOSS NIS_SOSS, NIRCam's
        grism NRC_TSGRISM): one spectrograph renders them all."""
        return self.spectrograph is not None

    def nod_step(self) -> float:
        """The default step of a nod pattern: the LRS's 2.0"; a NIRSpec fixed slit's 1.0",
        less on a short slit so that a 3-point nod stays NOD_MARGIN_ARCSEC from its ends."""
        model = self.spectrograph
        if model is None or model.exp_type == LRS_EXP_TYPE:
            return 2.0
        return round(min(1.0, 0.5 * model.slit_length - NOD_MARGIN_ARCSEC), 3)

    def offsets(self) -> list[tuple[float, float]]:
        """The dither offsets (dx, dy) arcsec of every point (nods along the slit)."""
        model = self.spectrograph
        axis = 2 if self.mos or (model is not None and model.dispaxis == 1) else 1
        return self.dither.resolved_offsets(self.nod_step(), slit_axis=axis)

    @property
    def mrs(self) -> bool:
        """A MIRI MRS observation (MIR_MRS)."""
        return self.exp_type == MRS_EXP_TYPE

    def mrs_ranges(self) -> list[tuple[str, float, float]]:
        """(label, shortest, longest um) of each channel an MRS observation sees in its band."""
        if not self.mrs or self.band is None:
            return []
        return [(f"channel {c.channel} {self.band}", *c.bands[self.band]) for d in self.detectors if d in MRS_DETECTORS
                for c in channels_on(d)]

    @model_validator(mode="after")
    def _mrs(self) -> ObservationSpec:
        """A MIRI MRS observation, every check of the mode here: MIRIFUSHORT and/or
        MIRIFULONG in FULL, FASTR1 or SLOWR1, a band, no filter, one pointing or the
        4-POINT dither, a staring exposure of its target."""
        if not self.mrs:
            if self.band is not None:
                raise ValueError(f"band: only a MIRI MRS observation (exp_type {MRS_EXP_TYPE}) takes a band, not "
                                 f"{self.exp_type or 'imaging'}")
            if self.dither.pattern == "4-POINT" and self.dither.offsets is None:
                raise ValueError(f"dither: 4-POINT is the MIRI MRS pattern (exp_type {MRS_EXP_TYPE}), not "
                                 f"{self.exp_type or 'imaging'}'s")
            wrong = [d for d in self.detectors if d in MRS_DETECTORS]
            if wrong and self.spectrograph is None:  # (a slit's own check names its detector)
                raise ValueError(f"detectors: {', '.join(wrong)} are the MRS detectors (exp_type {MRS_EXP_TYPE}), "
                                 f"not {self.exp_type or 'imaging'}'s")
            return self
        if self.band is None:
            raise ValueError(f"band: a {MRS_EXP_TYPE} observation names its band, one of {', '.join(MRS_BANDS)}")
        if not self.detectors or not set(self.detectors) <= set(MRS_DETECTORS):
            raise ValueError(f"detectors: a {MRS_EXP_TYPE} observation is simulated on MIRIFUSHORT (channels 1 and "
                             f"2), MIRIFULONG (3 and 4) or both, not {self.detectors}")
        if self.subarray != "FULL":
            raise ValueError(f"subarray: a {MRS_EXP_TYPE} observation is simulated in FULL, not {self.subarray}")
        if self.readpatt not in MRS_READOUT_PATTERNS:
            raise ValueError(f"readpatt: a {MRS_EXP_TYPE} observation is simulated with "
                             f"{' or '.join(MRS_READOUT_PATTERNS)}, not {self.readpatt}")
        if self.filter != MRS_FILTER:
            raise ValueError(f"filter: the MRS has no filter in its path (FILTER {MRS_FILTER}: leave filter out), "
                             f"not {self.filter}")
        if self.pupil not in (None, "N/A"):
            raise ValueError("pupil: MIRI has no pupil wheel; leave pupil out")
        if self.dither.pattern not in ("NONE", "4-POINT") or self.dither.offsets is not None:
            raise ValueError(f"dither: a {MRS_EXP_TYPE} observation takes pattern NONE (the target at the MRS "
                             "reference point) or 4-POINT (the MRS dither, offsets fixed), not "
                             f"{self.dither.pattern if self.dither.offsets is None else 'explicit offsets'}")
        if "size" in self.dither.model_fields_set:
            raise ValueError("dither.size: the MRS 4-POINT dither has fixed offsets (half-slice steps); leave size "
                             "out")
        if self.tsovisit or self.is_psf or self.pre_image_for or self.host_flux is not None or self.transit:
            raise ValueError(f"exp_type: a {MRS_EXP_TYPE} observation is simulated as a staring exposure of its "
                             "target (no tsovisit, is_psf, pre_image_for, host_flux or transit)")
        return self

    @model_validator(mode="after")
    def _mos(self) -> ObservationSpec:
        if self.pre_image_for and self.mos:
            raise ValueError("pre_image_for: a pre-image is an imaging observation")
        if not self.mos:
            return self
        if self.filter not in NIRSPEC_FILTERS:
            raise ValueError(f"filter: unknown NIRSpec filter {self.filter!r}; known: {', '.join(NIRSPEC_FILTERS)}")
        if self.pupil not in NIRSPEC_GRATINGS:
            raise ValueError(f"pupil: give the NIRSpec grating or prism, one of {', '.join(NIRSPEC_GRATINGS)}")
        if self.planned_only:
            return self
        # rendered: the prism on NRS1 and NRS2 (services/simulator/spectrograph.py msa_slitlet)
        if not self.detectors or not set(self.detectors) <= set(MSA_QUADRANTS):
            raise ValueError(f"detectors: a {NRS_MOS_EXP_TYPE} observation with the prism is simulated on NRS1 (MSA "
                             f"quadrants 1 and 3), NRS2 (quadrants 2 and 4) or both, not {self.detectors}")
        if self.subarray != "FULL":
            raise ValueError(f"subarray: a {NRS_MOS_EXP_TYPE} observation is simulated in FULL, not {self.subarray}")
        if self.readpatt not in MOS_READOUT_PATTERNS:
            raise ValueError(f"readpatt: a {NRS_MOS_EXP_TYPE} observation is simulated with "
                             f"{' or '.join(MOS_READOUT_PATTERNS)}, not {self.readpatt} (the IRS2 readout is not "
                             "simulated)")
        nods = NOD_PATTERNS[NRS_MOS_EXP_TYPE]
        if self.dither.pattern not in ("NONE", *nods) or self.dither.offsets is not None:
            raise ValueError(f"dither: a {NRS_MOS_EXP_TYPE} observation takes pattern NONE (the sources in their "
                             f"slitlets' middle shutters) or {' or '.join(nods)} (the public nod by one shutter "
                             f"pitch, {MSA_SHUTTER_PITCH[1]} arcsec, along the slitlets), not "
                             f"{self.dither.pattern if self.dither.offsets is None else 'explicit offsets'}")
        if self.dither.pattern in nods and "size" in self.dither.model_fields_set:
            raise ValueError(f"dither.size: the {self.dither.pattern} nod steps by one shutter pitch "
                             f"({MSA_SHUTTER_PITCH[1]} arcsec); leave size out")
        if self.tsovisit or self.is_psf:
            raise ValueError(f"exp_type: a {NRS_MOS_EXP_TYPE} observation is simulated as staring slitlet spectra "
                             "(no tsovisit or is_psf)")
        return self

    @model_validator(mode="after")
    def _nircam_grism_tso(self) -> ObservationSpec:
        """NIRCam's grism time series (NRC_TSGRISM), every check of the mode here: a TSO
        visit (the generic checks of :meth:`_time_series`: SUBGRISM64, tsovisit, no
        dithers, the target's spectrum as the host) whose detectors include NRCALONG, the
        long-wave detector the grism disperses on (for now the only one simulated), with
        GRISMR behind F444W; and, with ``short_wave``, the short-wave detector that images the
        target at the same time (:data:`GRISM_TSO_SHORT_WAVE_DETECTOR`) behind a short-wave
        filter and the weak lens or CLEAR."""
        grism = NIRCAM_GRISM_TSO
        if self.exp_type != grism.exp_type or not self.detectors:
            if self.short_wave is not None:
                raise ValueError(f"short_wave: only a {grism.exp_type} observation reads the short-wave channel "
                                 "beside its own")
            return self
        if grism.detector not in self.detectors:
            raise ValueError(f"detectors: a {grism.exp_type} observation disperses on {grism.detector} (the long-wave "
                             f"channel's grism), which {self.detectors} does not include")
        others = [name for name in self.detectors if name != grism.detector]
        sw = GRISM_TSO_SHORT_WAVE_DETECTOR
        if others and others != [sw]:
            raise ValueError(f"detectors: a {grism.exp_type} observation is simulated on {grism.detector} and, for "
                             f"its short-wave imaging, {sw} (where the target images), not also on "
                             f"{', '.join(o for o in others if o != sw)}")
        if bool(others) != (self.short_wave is not None):
            raise ValueError(f"short_wave: give the short-wave imaging's filter and pupil with {sw} among the "
                             "detectors, and neither without the other")
        if self.short_wave is not None:
            sw_filters = {k: v for k, v in FILTERS["NIRCAM"].items() if v < NIRCAM_SW_MAX_UM and k not in NIRCAM_PUPIL_PARTNERS}
            if self.short_wave.filter not in sw_filters:  # F162M, F164N: in the pupil wheel, where WLP8 or CLEAR is
                raise ValueError(f"short_wave.filter: {self.short_wave.filter!r} is not a short-wave NIRCam filter "
                                 f"({', '.join(sw_filters)})")
            if self.short_wave.pupil not in GRISM_TSO_SHORT_WAVE_PUPILS:
                raise ValueError(f"short_wave.pupil: the short-wave imaging beside the grism is simulated behind "
                                 f"{' or '.join(GRISM_TSO_SHORT_WAVE_PUPILS)}, not {self.short_wave.pupil}")
        if self.filter != grism.filter:
            raise ValueError(f"filter: a {grism.exp_type} observation is simulated with filter {grism.filter} (the "
                             f"{grism.grating} grism's band, {grism.band[0]:.2f}-{grism.band[1]:.2f} um), not "
                             f"{self.filter}")
        if self.pupil != grism.grating:
            raise ValueError(f"pupil: a {grism.exp_type} observation is simulated with pupil {grism.grating} (the "
                             f"grism), not {self.pupil or 'none'}")
        return self._time_series(grism)

    @property
    def wfss(self) -> bool:
        """Wide-field slitless spectroscopy (NIS_WFSS, NRC_WFSS): the field's spectra through
        a grism, with direct images of the field before them."""
        return self.exp_type in WFSS_EXP_TYPES

    @model_validator(mode="after")
    def _wfss(self) -> ObservationSpec:
        """A WFSS observation, every check of the mode here: a simulated grism behind its
        blocking filter (NIRISS: FILTER the grism, PUPIL the filter; NIRCam the other way
        round) on the grism's detector, staring or dithered like imaging, no time series."""
        if not self.wfss or not self.detectors:
            return self
        try:
            grism = wfss_grism(self.exp_type, self.filter, self.pupil)
        except ValueError as exc:
            raise ValueError(f"filter/pupil: {exc}") from None
        if self.detectors != [grism.detector]:
            raise ValueError(f"detectors: the {grism.label} spectra are simulated on {grism.detector} alone, not "
                             f"{self.detectors}")
        if self.tsovisit or self.is_psf or self.is_background or self.pre_image_for:
            raise ValueError(f"exp_type: a {self.exp_type} observation is simulated as dispersed images of a field "
                             "with its direct images (no tsovisit, is_psf, is_background or pre_image_for)")
        if self.nints != 1:
            raise ValueError(f"nints: a {self.exp_type} exposure is simulated with one integration")
        return self

    @model_validator(mode="after")
    def _optics(self) -> ObservationSpec:
        if not self.detectors or self.mos or self.exp_type == NRC_TSGRISM_EXP_TYPE or self.wfss or self.mrs:  # their own checks
            return self
        if self.instrument == "NIRSPEC":  # the fixed slits: the prism behind CLEAR; BOTS: G395M behind F290LP
            if self.filter not in NIRSPEC_FILTERS:
                raise ValueError(f"filter: unknown NIRSpec filter {self.filter!r}; known: {', '.join(NIRSPEC_FILTERS)}")
            if self.pupil not in NIRSPEC_GRATINGS:
                raise ValueError(f"pupil: give the NIRSpec grating or prism, one of {', '.join(NIRSPEC_GRATINGS)}")
            bots = NIRSPEC_BOTS
            if self.exp_type == bots.exp_type:
                if (self.filter, self.pupil) != (bots.filter, bots.grating):
                    raise ValueError(f"filter/pupil: a {bots.exp_type} observation is simulated with {bots.grating} "
                                     f"behind {bots.filter} (filter {bots.filter}, pupil {bots.grating}), not "
                                     f"{self.filter}/{self.pupil}")
                return self
            model = next(iter(NIRSPEC_FS.values()))
            if (self.filter, self.pupil) != (model.filter, model.grating):
                hint = (f" ({bots.grating} behind {bots.filter} is simulated for the bright-object time series, "
                        f"exp_type {bots.exp_type})" if (self.filter, self.pupil) == (bots.filter, bots.grating)
                        else "")
                raise ValueError(f"filter/pupil: the NIRSpec fixed slits are simulated with the prism behind CLEAR "
                                 f"(filter {model.filter}, pupil {model.grating}), not {self.filter}/{self.pupil}"
                                 f"{hint}")
            return self
        soss = NIRISS_SOSS  # the GR700XD grism in the pupil wheel behind CLEAR
        if self.exp_type == soss.exp_type:
            if self.filter != soss.filter:
                raise ValueError(f"filter: a {soss.exp_type} observation is simulated with filter {soss.filter} (the "
                                 f"{soss.grating} grism behind the open filter wheel), not {self.filter}")
            if self.pupil != soss.grating:
                raise ValueError(f"pupil: a {soss.exp_type} observation is simulated with pupil {soss.grating} (the "
                                 f"SOSS grism), not {self.pupil or 'none'}")
            return self
        if self.pupil == soss.grating and self.instrument == detector(soss.detector).instrument:
            raise ValueError(f"pupil: {soss.grating} is the SOSS grism; observe with it as exp_type {soss.exp_type} "
                             "(single-object slitless spectroscopy)")
        grism = NIRCAM_GRISM_TSO
        if self.pupil == grism.grating and self.instrument == detector(grism.detector).instrument:
            raise ValueError(f"pupil: {grism.grating} is the NIRCam grism; observe with it as exp_type "
                             f"{grism.exp_type} (a grism time series)")
        table = FILTERS[self.instrument]
        clear = CLEAR_POSITIONS[self.instrument]
        if self.instrument == "MIRI":
            if self.filter not in table:
                raise ValueError(f"filter: unknown MIRI filter {self.filter!r}; known: {', '.join(table)}")
            if self.pupil not in (None, "N/A"):
                raise ValueError("pupil: MIRI has no pupil wheel; leave pupil out")
            if self.slit and self.filter != LRS.filter:
                raise ValueError(f"filter: a {self.exp_type} observation disperses with the prism {LRS.filter}, "
                                 f"not {self.filter}")
            if not self.slit and self.filter == LRS.filter:
                raise ValueError(f"filter: {LRS.filter} is the LRS prism; observe with it as exp_type {LRS_EXP_TYPE} "
                                 "(imaging takes one of the F filters)")
            return self
        pupil = self.pupil or "CLEAR"
        if self.filter not in table and not (self.filter in clear and pupil in table):
            raise ValueError(
                f"filter: unknown {self.instrument} filter {self.filter!r} (pupil {pupil!r}); known: {', '.join(table)}"
            )
        weak_lens = self.instrument == "NIRCAM" and pupil in WEAK_LENS_FWHM_ARCSEC
        if pupil not in table and pupil not in clear and not weak_lens:
            raise ValueError(f"pupil: {pupil!r} is neither an open position {clear} nor a {self.instrument} filter")
        if weak_lens and table.get(self.filter, 0.0) >= NIRCAM_SW_MAX_UM:
            raise ValueError(
                f"pupil: the weak lens {pupil} is in the short-wavelength pupil wheel, not behind {self.filter}"
            )
        partner = NIRCAM_PUPIL_PARTNERS.get(pupil) if self.instrument == "NIRCAM" else None
        if partner and self.filter not in (partner, *clear):
            raise ValueError(f"pupil: NIRCam {pupil} is used behind filter {partner} (or CLEAR), not {self.filter}")
        if self.instrument == "NIRCAM":
            wavelength = table.get(pupil, table.get(self.filter))
            for name in self.detectors:
                long_channel = detector(name).channel == "LONG"
                if long_channel != (wavelength >= NIRCAM_SW_MAX_UM):
                    band = "long" if wavelength >= NIRCAM_SW_MAX_UM else "short"
                    raise ValueError(
                        f"filter: {self.filter}/{pupil} is a {band}-wavelength element but detector "
                        f"{name} is on the {'long' if long_channel else 'short'}-wavelength channel "
                        "(use NRCALONG/NRCBLONG for F250M and redder)"
                    )
        return self

    @model_validator(mode="after")
    def _slit(self) -> ObservationSpec:
        pattern = self.dither.pattern
        nod_types = [t for t, patterns in NOD_PATTERNS.items() if pattern in patterns]
        if self.exp_type == NRS_FS_EXP_TYPE and self.fixed_slit is None:
            raise ValueError(f"fixed_slit: a {NRS_FS_EXP_TYPE} observation names its slit (FXD_SLIT), one of "
                             f"{', '.join(NIRSPEC_FIXED_SLITS)}")
        if self.fixed_slit is not None and self.exp_type not in FIXED_SLIT_EXP_TYPES:
            raise ValueError(f"fixed_slit: only a NIRSpec fixed-slit observation (exp_type {NRS_FS_EXP_TYPE}) or "
                             f"bright-object time series ({NRS_BOTS_EXP_TYPE}) names a fixed slit, not "
                             f"{self.exp_type or 'imaging'}")
        if self.exp_type == NRS_BOTS_EXP_TYPE and self.fixed_slit != NIRSPEC_BOTS.slit:
            raise ValueError(f"fixed_slit: a {NRS_BOTS_EXP_TYPE} observation is simulated through "
                             f"{NIRSPEC_BOTS.slit} (the bright-object slit), not {self.fixed_slit}")
        model = self.spectrograph
        if model is None:
            if nod_types and self.exp_type not in nod_types:
                raise ValueError(f"dither: {pattern} nods along a slit (exp_type {' or '.join(nod_types)}), not "
                                 f"{self.exp_type or 'imaging'}")
            return self
        if model.exp_type == NRC_TSGRISM_EXP_TYPE:  # every check of the grism in _nircam_grism_tso
            return self
        if self.detectors != [model.detector]:
            raise ValueError(f"detectors: the {model.label} slit images on {model.detector} alone, not "
                             f"{self.detectors}")
        readpatts = SLIT_READOUT_PATTERNS.get(model.exp_type)
        if readpatts is not None and self.readpatt not in readpatts:
            raise ValueError(f"readpatt: a {model.exp_type} observation is simulated with {' or '.join(readpatts)}, "
                             f"not {self.readpatt} (the IRS2 readout is not simulated)")
        if model.time_series:
            return self._time_series(model)
        if self.subarray not in model.subarrays:
            hint = (f" (SLITLESSPRISM is slitless spectroscopy: exp_type {LRS_SLITLESS_EXP_TYPE})" if model is LRS
                    else "")
            raise ValueError(f"subarray: the {model.label} slit is simulated in {' or '.join(model.subarrays)}, "
                             f"not {self.subarray}{hint}")
        nods = NOD_PATTERNS[model.exp_type]
        if pattern not in ("NONE", *nods) or self.dither.offsets is not None:
            sizes = ("size: the distance between the two nods, default 2.0 arcsec" if model is LRS else
                     f"size: the step between nods, default {self.nod_step()} arcsec on {model.slit}")
            raise ValueError(f"dither: a {model.exp_type} observation takes pattern NONE (the target at the slit "
                             f"centre) or {' or '.join(nods)} ({sizes}), not explicit offsets or another pattern")
        positions = self.dither.nod_positions(self.nod_step()) or [0.0]
        reach = 0.5 * model.slit_length - NOD_MARGIN_ARCSEC
        farthest = max(abs(u) for u in positions)
        if farthest > reach + 1e-9:
            largest = 2.0 * reach if len(positions) == 2 else reach
            raise ValueError(f"dither.size: {pattern} nods of size {self.dither.step(self.nod_step())} arcsec put "
                             f"the target {farthest:.2f} arcsec from the slit centre, within {NOD_MARGIN_ARCSEC} "
                             f"arcsec of the {model.label} slit's ends or out of the slit ({model.slit_length} "
                             f"arcsec long); at most {largest:.2f}")
        if self.tsovisit or self.is_psf or self.pre_image_for:
            raise ValueError(f"exp_type: a {model.exp_type} observation is simulated as a staring slit spectrum "
                             "(no tsovisit, is_psf or pre_image_for)")
        return self

    def _time_series(self, model: SlitSpectrograph) -> ObservationSpec:
        """A spectroscopic time series (the LRS slitless MIR_LRS-SLITLESS in SLITLESSPRISM,
        NIRSpec's bright objects NRS_BRIGHTOBJ in SUB2048, NIRISS SOSS NIS_SOSS in
        SUBSTRIP256, NIRCam's grism NRC_TSGRISM in SUBGRISM64): a staring TSO visit whose
        host star is the target, with its ``spectrum``."""
        if self.subarray not in model.subarrays:
            what = "the slitless spectrum" if model.slitless else "its spectrum"
            raise ValueError(f"subarray: a {model.exp_type} observation is read in {' or '.join(model.subarrays)} "
                             f"(the window that holds {what}), not {self.subarray}")
        if not self.tsovisit:
            raise ValueError(f"tsovisit: a {model.exp_type} observation is simulated as a time series of the "
                             "target (tsovisit: true)")
        if self.dither.pattern != "NONE" or self.dither.offsets is not None:
            raise ValueError(f"dither: a {model.exp_type} time series stares at the target (pattern NONE), "
                             f"not {self.dither.pattern if self.dither.offsets is None else 'explicit offsets'}")
        if self.is_psf or self.pre_image_for or self.is_background:
            raise ValueError(f"exp_type: a {model.exp_type} observation is simulated as a time series of its "
                             "target (no is_psf, is_background or pre_image_for)")
        if self.host_flux is not None:
            raise ValueError(f"host_flux: the host star of a {model.exp_type} time series is its target, with the "
                             "target's spectrum (targets[].spectrum, f_nu in Jy); host_flux (e-/s) is for imaging "
                             "time series")
        return self

    @property
    def slitless(self) -> bool:
        """Slitless spectroscopy (MIR_LRS-SLITLESS): no slit cuts the light."""
        model = self.spectrograph
        return model is not None and model.slitless

    @property
    def spectroscopic_tso(self) -> bool:
        """A spectroscopic time series whose target is the host star (MIR_LRS-SLITLESS,
        NRS_BRIGHTOBJ, NIS_SOSS, NRC_TSGRISM): its light is the target's spectrum."""
        model = self.spectrograph
        return model is not None and model.time_series

    @model_validator(mode="after")
    def _tso(self) -> ObservationSpec:
        if (self.transit is not None or self.host_flux is not None) and not self.tsovisit:
            field = "transit" if self.transit is not None else "host_flux"
            raise ValueError(f"{field}: only a time-series observation (tsovisit: true) has a host star or a transit")
        if self.spectroscopic_tso:
            return self
        spectral = " or ".join(SPECTRAL_TSO_EXP_TYPES)
        if self.transit is not None and self.host_flux is None:
            raise ValueError("transit: needs host_flux, the flux (e-/s) of the star that is transited (a "
                             f"{spectral} time series takes the target's spectrum instead)")
        if self.transit is not None and self.transit.chromatic:
            raise ValueError(f"transit.depth_spectrum: a depth per wavelength needs a spectroscopic time series "
                             f"(exp_type {spectral}); an imaging time series takes a grey depth")
        return self


class TargetStars(_Strict):
    """Star densities of one target's sky, replacing the simulation-wide ones."""

    stars_per_window: float | None = Field(None, ge=0.0, le=1e5, description="Mean faint stars per window.")
    bright_stars_per_window: float | None = Field(None, ge=0.0, le=1e4, description="Mean bright stars per window.")


class SimulationSpec(_Strict):
    """Knobs of the simulation; every one has a default."""

    seed: int = Field(1, ge=0, description="Seed of the sky, noise and cosmic rays.")
    detector_seed: int = Field(
        2022, ge=0,
        description="Seed of the detector model (bias, gain, dark, ...); kept apart from 'seed' so "
        "every program sees the same detectors and the same reference files.",
    )
    stars_per_window: float = Field(40.0, ge=0.0, le=1e5, description="Mean number of faint stars per readout window.")
    bright_stars_per_window: float = Field(2.0, ge=0.0, le=1e4, description="Mean number of bright (usually saturating) stars per window.")
    star_flux_min: float = Field(30.0, gt=0.0, description="Faintest star, photo-electrons/s.")
    star_flux_max: float = Field(3.0e5, gt=0.0, description="Brightest faint-population star, e-/s.")
    star_powerlaw_index: float = Field(0.7, gt=0.0, le=5.0, description="alpha in N(>F) proportional to F**-alpha.")
    bright_flux_min: float = Field(1.0e6, gt=0.0, description="Bright population, log-uniform from (e-/s).")
    bright_flux_max: float = Field(1.0e7, gt=0.0, description="Bright population, log-uniform to (e-/s).")
    sky_level: float | None = Field(None, ge=0.0, description="Flat sky, e-/s/pixel; default per instrument and filter.")
    cosmic_ray_rate: float = Field(5.0e-5, ge=0.0, le=0.1, description="Cosmic rays per pixel per second.")
    cosmic_ray_min_dn: float = Field(200.0, gt=0.0, description="Smallest cosmic-ray deposit, DN.")
    cosmic_ray_max_dn: float = Field(4000.0, gt=0.0, description="Largest cosmic-ray deposit, DN.")
    compress: bool = Field(False, description="zlib-compress packet payloads.")
    rows_per_packet: int | None = Field(None, ge=1, le=4096, description="Rows per packet; default keeps payloads near 32 kB.")
    dither_overhead_s: float = Field(30.0, ge=0.0, description="Slew/settle time between dither points, s.")
    observation_gap_s: float = Field(600.0, ge=0.0, description="Time between observations without a start_time, s.")
    write_references: bool = Field(True, description="Write the reference files of the detectors used.")
    wavefront_cadence_hours: float = Field(0.0, ge=0.0, le=720.0, description=(
        "Write a wavefront-sensing OPD file every this many hours around the program's exposures "
        "(JWST senses every 48 h); 0: none."))
    dark_max_frames: int = Field(200, ge=2, le=5000, description="Cap on the frames in a dark reference; longer ramps extrapolate.")
    pointing_error_arcsec: float = Field(
        0.05, ge=0.0, le=10.0, description="Pointing error, rms per detector axis and exposure, arcsec; 0 disables."
    )
    acquisition_error_arcsec: float = Field(
        0.01, ge=0.0, le=1.0, description=(
            "Slit spectroscopy (MIRI LRS): where target acquisition leaves the target, rms per detector axis and "
            "exposure, arcsec; replaces pointing_error_arcsec there (0 disables)."))
    roll_error_deg: float = Field(0.0, ge=0.0, le=1.0, description="Roll error, rms per exposure, degrees.")
    jitter_mas: float = Field(
        1.0, ge=0.0, le=50.0,
        description="Pointing jitter while fine guiding, rms per axis, milliarcsec; 0 disables.")
    jitter_time_s: float = Field(
        2.0, gt=0.0, le=600.0, description="Correlation time of the pointing jitter (a damped random walk), s.")
    astrometric_flux_min: float = Field(
        300.0, gt=0.0, description="Faintest star of the astrometric reference catalog, e-/s."
    )
    astrometric_error_mas: float = Field(
        0.2, ge=0.0, le=1000.0, description="Position error of the astrometric catalog, mas per axis."
    )
    astrometric_margin_arcsec: float = Field(
        2.0, ge=0.0, le=600.0, description="Catalog coverage beyond the planned windows, arcsec."
    )
    target_stars: dict[str, TargetStars] = Field(
        default_factory=dict, description="Per target name: star densities replacing the ones above."
    )

    @model_validator(mode="after")
    def _ranges(self) -> SimulationSpec:
        for low, high in (
            ("star_flux_min", "star_flux_max"),
            ("bright_flux_min", "bright_flux_max"),
            ("cosmic_ray_min_dn", "cosmic_ray_max_dn"),
        ):
            if getattr(self, low) > getattr(self, high):
                raise ValueError(f"{low} ({getattr(self, low)}) exceeds {high} ({getattr(self, high)})")
        return self


Category = Literal["GO", "GTO", "ERS", "DD", "CAL", "ENG"]


class CandidateSpec(_Strict):
    """A proposal candidate: observations associated into one Level-3 product (MOSAIC) or
    science observations with their dedicated backgrounds (BACKGROUND)."""

    type: Literal["MOSAIC", "BACKGROUND"] = Field(description="mosaic or background (any case).")
    observations: list[int] = Field(min_length=1, description="Observation numbers.")

    @field_validator("type", mode="before")
    @classmethod
    def _upper(cls, v: Any) -> Any:
        if isinstance(v, str) and v.strip().upper() not in CANDIDATE_TYPES:
            raise ValueError(f"unknown candidate type {v!r}; known: {', '.join(t.lower() for t in CANDIDATE_TYPES)}")
        return v.strip().upper() if isinstance(v, str) else v


class ProgramDescription(_Strict):
    program: int = Field(ge=1, le=99999, description="Program number (written 5-digit zero-padded).")
    title: str = Field(min_length=1)
    pi: str = Field(min_length=1, description="Principal investigator.")
    pi_user: str | None = Field(None, description="The PI's identity (e-mail) in the archive; may grant access.")
    category: Category = "GO"
    eap_months: int | None = Field(None, ge=0, le=24, description=(
        "Exclusive-access period, months (default: the category's; see shared.access.eap_problem)."))
    eap_waiver: str | None = Field(None, description="The PI's reason for waiving the exclusive access.")
    authorized_users: list[str] = Field(default_factory=list)
    targets: list[TargetSpec] = Field(min_length=1)
    observations: list[ObservationSpec] = Field(min_length=1)
    candidates: list[CandidateSpec] = Field(default_factory=list, description="Proposal candidates (c1000, ...).")
    simulation: SimulationSpec = Field(default_factory=SimulationSpec)

    @field_validator("program", mode="before")
    @classmethod
    def _program(cls, v: Any) -> Any:
        if isinstance(v, str) and v.strip().isdigit():
            return int(v.strip())
        return v

    @field_validator("category", mode="before")
    @classmethod
    def _category(cls, v: Any) -> Any:
        return v.strip().upper() if isinstance(v, str) else v

    @model_validator(mode="after")
    def _cross(self) -> ProgramDescription:
        names = [t.name for t in self.targets]
        if len(set(names)) != len(names):
            raise ValueError(f"targets: names must be unique, got {names}")
        numbers = []
        for k, obs in enumerate(self.observations):
            if obs.target not in names:
                raise ValueError(f"observations[{k}].target: {obs.target!r} is not one of the targets {names}")
            numbers.append(obs.number or k + 1)
        if len(set(numbers)) != len(numbers):
            raise ValueError(f"observations: numbers must be unique, got {numbers}")
        unknown = sorted(set(self.simulation.target_stars) - set(names))
        if unknown:
            raise ValueError(f"simulation.target_stars: {unknown} are not targets {names}")
        for k, target in enumerate(self.targets):
            slits = list(dict.fromkeys(o.spectrograph for o in self.observations
                                       if o.slit and o.target == target.name))
            mrs = list(dict.fromkeys(r for o in self.observations if o.mrs and o.target == target.name
                                     for r in o.mrs_ranges()))
            if target.spectrum is not None and not slits and not mrs:
                raise ValueError(f"targets[{k}].spectrum: only a slit, slitless or IFU observation (exp_type "
                                 f"{LRS_EXP_TYPE}, {LRS_SLITLESS_EXP_TYPE}, {NRS_FS_EXP_TYPE}, "
                                 f"{NRS_BOTS_EXP_TYPE}, {NIS_SOSS_EXP_TYPE}, {NRC_TSGRISM_EXP_TYPE} or "
                                 f"{MRS_EXP_TYPE}) simulates a spectrum, and none observes {target.name!r}")
            spectra = [(m.label, *m.band) for s in slits for m in spectral_orders(s)]  # every order (SOSS: two)
            spectra += mrs  # each MRS channel in its band
            for j, line in enumerate(target.spectrum.lines if target.spectrum is not None else []):
                if not any(lo <= line.wavelength <= hi for _, lo, hi in spectra):
                    bands = ", ".join(f"{lo:.2f}-{hi:.2f} um" for _, lo, hi in spectra)
                    raise ValueError(f"targets[{k}].spectrum.lines[{j}].wavelength: {line.wavelength} um is outside "
                                     f"the {' and the '.join(label for label, _, _ in spectra)} spectrum ({bands})")
        for k, (number, obs) in enumerate(zip(numbers, self.observations, strict=True)):
            for n in obs.pre_image_for:
                if n == number:
                    raise ValueError(f"observations[{k}].pre_image_for: observation {n} cannot be its own pre-image")
                if n not in numbers:
                    raise ValueError(f"observations[{k}].pre_image_for: {n} is not an observation of the "
                                     f"program (known: {sorted(numbers)})")
        background = {n: obs.is_background for n, obs in zip(numbers, self.observations, strict=True)}
        for k, cand in enumerate(self.candidates):
            problem = candidate_problem(cand.type, cand.observations, background)
            if problem:
                raise ValueError(f"candidates[{k}].{problem}")
        return self

    @property
    def program_id(self) -> str:
        """Five-digit zero-padded program number."""
        return f"{self.program:05d}"

    def observation_number(self, index: int) -> int:
        obs = self.observations[index]
        return obs.number or index + 1

    def target_id(self, name: str) -> int:
        """1-based position of the named target (TARGETID)."""
        return [t.name for t in self.targets].index(name) + 1


def _field_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(description)"


def parse_description(data: Mapping[str, Any], source: str = "description") -> ProgramDescription:
    """Validate a mapping; raise :class:`DescriptionError` naming every bad field."""
    if not isinstance(data, Mapping):
        raise DescriptionError(f"{source}: a program description must be a mapping, got {type(data).__name__}")
    try:
        return ProgramDescription.model_validate(dict(data))
    except ValidationError as exc:
        errors = []
        for err in exc.errors():
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown field"
            errors.append((_field_path(err["loc"]), msg))
        lines = "\n".join(f"  {path}: {msg}" for path, msg in errors)
        raise DescriptionError(f"invalid program description ({source}):\n{lines}", errors) from None
    except UnknownInstrumentError as exc:  # raised outside a validator (should not happen)
        raise DescriptionError(f"invalid program description ({source}): {exc}") from None


def load_description(source: str | os.PathLike[str] | Mapping[str, Any] | ProgramDescription) -> ProgramDescription:
    """Load and validate a program description.

    Parameters
    ----------
    source : path, str, mapping or ProgramDescription
        A ``.yaml``/``.yml``/``.json`` file, YAML/JSON text (a string with a newline or
        starting with ``{``), an already parsed mapping, or a description.

    Raises
    ------
    DescriptionError
        The file is missing or unparsable, or a field is invalid (the message names it).
    """
    if isinstance(source, ProgramDescription):
        return source
    if isinstance(source, Mapping):
        return parse_description(source)
    text_like = isinstance(source, str) and ("\n" in source or source.lstrip().startswith("{"))
    if text_like:
        return parse_description(_parse_text(source, "<text>", json_first=source.lstrip().startswith("{")), "<text>")
    path = Path(source)
    if not path.is_file():
        raise DescriptionError(f"program description {str(path)!r} not found")
    text = path.read_text(encoding="utf-8")
    return parse_description(_parse_text(text, str(path), json_first=path.suffix.lower() == ".json"), str(path))


def _parse_text(text: str, source: str, *, json_first: bool) -> Any:
    try:
        return json.loads(text) if json_first else yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise DescriptionError(f"{source}: not valid JSON: {exc}") from None
    except yaml.YAMLError as exc:
        raise DescriptionError(f"{source}: not valid YAML: {exc}") from None
