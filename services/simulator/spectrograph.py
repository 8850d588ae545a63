"""Slit spectrographs with known truth: one model, :class:`SlitSpectrograph`, of which the
MIRI low-resolution spectrometer's slit (:data:`LRS`, ``MIR_LRS-FIXEDSLIT``), the five
NIRSpec fixed slits with the prism (:data:`NIRSPEC_FS`, ``NRS_FIXEDSLIT``), NIRSpec's
bright-object time series with G395M (:data:`NIRSPEC_BOTS`, ``NRS_BRIGHTOBJ``), the two
spectral orders of NIRISS SOSS (:data:`NIRISS_SOSS_ORDERS`, ``NIS_SOSS``) and NIRCam's
grism time series in the long-wave channel (:data:`NIRCAM_GRISM_TSO`, ``NRC_TSGRISM``) are
instances;
the dispersed scene a slit makes on its detector; the spectrum a perfect extraction
recovers. The reference files that carry the same facts to the pipeline are written by
:mod:`services.simulator.slit_refs`.

Coordinates: full-frame pixels of the detector, 1-based in the reference files as in the
public ones, 0-based in the functions here. A slit disperses along one detector axis
(``dispaxis`` 1: x, the columns; 2: y, the rows) and its length runs along the other. The
functions speak of the *spectral* pixel ``s`` (the coordinate along the dispersion) and
the *spatial* pixel ``t`` (along the slit); ``d = s - s_ref`` is the offset from the
slit's reference point (``IMX``, ``IMY``), the image of the slit centre at the reference
wavelength.

Common to every slit:

- Wavelength of a slit-centred source at spectral pixel ``s``: the disperser's law
  (:class:`QuadraticDispersion`, :class:`PrismDispersion` or :class:`GratingDispersion`) of ``d``.
- Trace: the slit centre images at spatial pixel ``t = t_ref + t0 + t1 d + t2 d^2``.
- PSF: the simulator's diffraction-limited Gaussian (FWHM 0.0317" per um,
  :func:`services.simulator.optics.psf_fwhm_arcsec`). Along the slit a point source has
  that profile (or the disperser's own, :attr:`SlitSpectrograph.spatial_sigma`, a Gaussian
  of one width at every wavelength: NIRISS SOSS's defocused trace); along the dispersion
  its line-spread function (LSF) is a Gaussian of
  ``sigma^2 = sigma_psf^2 + sigma_det^2`` (the spectrograph's and detector's own blur; the
  part of the PSF the slit passes, for a source near the slit centre).
- Slit loss: a point source at offset ``delta`` across the slit (width ``w``) passes
  ``0.5 [erf((w/2 - delta) / (sqrt 2 sigma_psf)) + erf((w/2 + delta) / (sqrt 2 sigma_psf))]``
  of its light (the path loss); its spectrum moves by ``delta`` pixels along the
  dispersion. Its offset along the slit moves its trace by as much along the slit; the
  slit's ends are not modelled (observations keep the source 0.3" or more from them,
  where a 5 um PSF loses less than 1e-4).
- Photometry: a source of flux density ``f_nu`` (Jy) puts
  ``f_nu * 1e-26 / h * 25.4 m^2 * eta(lambda) * |dlambda/ds| / lambda`` photo-electrons
  per second into one spectral pixel (the photon rate per unit ln nu, times the pixel's
  ln-wavelength width), before the slit loss, with a total throughput
  ``eta = peak exp(-((lambda - centre) / width)^2 / 2)``.
- Sky: a uniform surface brightness ``S(lambda)`` (MJy/sr, a power law through two
  levels) fills the slit: a pixel under it gets ``S`` times the sky area one pixel sees
  through the slit (pixel scale x slit width) in the same electrons per Jy.

The MIRI LRS slit (:data:`LRS`, MIRIMAGE, P750L): 0.51" x 4.7", reference point (IMX, IMY)
= (326.13, 300.70); the prism disperses along y (``dispaxis`` 2), wavelength decreasing
with the row: ``lambda(d) = 7.5 - 0.0285 d + 5.5e-5 d^2`` um, 14.9 um near row 111 to
5.0 um near row 411, 0.049 to 0.016 um per pixel; trace ``x = IMX - 1 + 0.004 d + 2e-6 d^2``;
0.11" per pixel; detector blur 1 px; throughput 0.22 at 7.5 um, width 4 um; sky 5 MJy/sr
at 5 um to 60 MJy/sr at 14 um.

The NIRSpec fixed slits (:data:`NIRSPEC_FS`, NRS1, PRISM behind CLEAR, ``dispaxis`` 1:
wavelength increasing with the column), all on NRS1 (S200B1 too, for simplicity; on the
real instrument the fixed slits' prism spectra fall on NRS1 as well):

============  ===========  ==========  =======  ==============
slit          width x len  IMX         IMY      window
============  ===========  ==========  =======  ==============
S200A1        0.2" x 3.3"  1100.40     990.60   SUBS200A1
S200A2        0.2" x 3.3"  1088.20     928.40   SUBS200A2
S400A1        0.4" x 3.8"  1120.60     1085.30  SUBS400A1
S1600A1       1.6" x 1.6"  1140.90     1040.20  SUB2048
S200B1        0.2" x 3.3"  1170.30     1127.70  SUBS200B1
============  ===========  ==========  =======  ==============

- Prism law (:class:`PrismDispersion`): the column offset of wavelength ``lambda`` is
  ``d = A(lambda) - A(2 um)`` with ``A = q lambda^2 / 2 - p / (2 lambda^2)``, p = 21.4
  px um^2, q = 31 px/um^2: 118 px/um at 0.6 um, 50 px/um at 1.2 um, 164 px/um at 5.3 um
  (0.0085, 0.020 and 0.0061 um per pixel); the spectrum 0.6-5.3 um covers 460 columns,
  -83 to +376 about IMX (S200A1: full-frame columns 1016-1475, 0-based).
- Trace: ``y = IMY - 1 + 0.003 d + 4e-6 d^2`` (1.7 px of curvature over the spectrum).
- 0.1" per pixel; blur 0.85 px (FWHM 2.0 px with a 1 um PSF, 2.6 px at 5.3 um):
  resolving power ``lambda / FWHM`` 35 at 0.6 um, 26 at 0.9 um (its minimum), 62 at 2 um,
  300 at 5 um, 330 at 5.3 um.
- Throughput (telescope, fore-optics, prism, detector): 0.50 at 3.2 um, width 1.6 um
  (0.13 at 0.6 um, 0.38 at 2 um, 0.21 at 5.3 um): electrons per second per Jy in one
  column 7.3e5 at 0.6 um, 1.5e6 at 1.2 um, 1.1e6 at 2 um, 1.3e5 at 5 um. A centred point
  source loses nothing in S200A1 below 2 um, 1.3 % at 3 um, 14 % at 5 um.
- Sky: near-IR zodiacal light, 0.25 MJy/sr at 1 um to 0.20 MJy/sr at 5 um: about 0.1
  electron per second in a pixel of S200A1.

NIRSpec's bright-object time series (:data:`NIRSPEC_BOTS`, ``NRS_BRIGHTOBJ``): the G395M
grating behind F290LP through S1600A1 (1.6" x 1.6", aperture NRS_S1600A1_SLIT) on NRS1,
read in SUB2048 (full-frame rows 1025-1056, 1-based, all 2048 columns, one output), about
S1600A1's reference point (IMX, IMY) = (1140.90, 1040.20); a spectroscopic time series
(``time_series``) of its target, the TSO host star:

- Grating law (:class:`GratingDispersion`, ``dispaxis`` 1, wavelength increasing with the
  column): ``lambda(d) = 4.2 + 0.00179 d + 2e-8 d^2`` um: 0.00176 um per pixel at 2.87 um,
  0.00181 at 5.10 um. The spectrum runs from F290LP's cut-on, 2.87 um, to the grating's
  red end on NRS1, 5.10 um: full-frame columns 391-1639 (0-based; 1249 columns, 387 and
  404 from the reference-pixel borders), band 2.871-5.098 um.
- The prism slits' trace (``y = IMY - 1 + 0.003 d + 4e-6 d^2``: rows 1038.6-1041.7,
  0-based, inside the window's 1024-1055), 0.1" per pixel, blur 0.85 px and sky; the
  slit passes a centred point source whole (its transmission is 1 to double precision:
  the PSF's FWHM, 0.09-0.16", against its 1.6"), and the sky fills it (0.04 e-/s per
  pixel at 3 um).
- Resolving power ``lambda / FWHM``: 768 at 3 um, 945 at 4 um, 1083 at 5 um (742 at
  2.87, 1095 at 5.10).
- Throughput 0.45 at 4.0 um, width 0.8 um (0.17 at both ends of the band): electrons
  per second per Jy in one column 4.6e4 at 3 um, 7.7e4 at 4 um, 2.9e4 at 5 um.
- Its white light (:attr:`SlitSpectrograph.white_light_band`) is the whole band,
  2.87-5.10 um.

The MIRI LRS without its slit (:data:`LRS_SLITLESS`, ``MIR_LRS-SLITLESS``, the prism in
the imager's filter wheel read through the SLITLESSPRISM window, full-frame columns 1-72,
rows 529-944, 1-based): the slit model's prism law, trace, PSF/LSF, throughput and
electrons per Jy about the public slitless reference point (x_ref_slitless, y_ref_slitless)
= (38.5, 829.0), aperture MIRIM_SLITLESSPRISM. The spectrum runs over full-frame rows 640
(14.8 um) to 939 (5.0 um), 0-based: rows 112-411 of the window. No slit cuts the light
(transmission 1 wherever the source sits), and the sky is not a slit's image: every
pixel sees the whole band through the prism, the light of each wavelength coming from the
patch of sky that wavelength's offset maps onto it. A pixel at spectral pixel ``s``
gets ``sum over the spectrum's pixels s' of S(lambda(s')) * Omega_pix * e_per_jy(s')`` (Omega_pix
one pixel's sky, ``(0.11")^2``), over the ``s'`` whose sky patch, at undispersed row ``s - (s'
- s_ref)``, is inside the imager's field (the detector's 1024 rows): the long
wavelengths of the lower rows come from sky below the field, so the level falls smoothly
toward the window's bottom (:meth:`SlitSpectrograph.slitless_sky_electrons`); uniform along x.
A spectroscopic time series of its target (``time_series``) whose white light is the
band 5-12 um.

NIRISS single-object slitless spectroscopy (:data:`NIRISS_SOSS_ORDERS`, ``NIS_SOSS``; this
system's layout, not the instrument's): the GR700XD grism in the pupil wheel behind CLEAR
disperses the target along the columns of NIS (``dispaxis`` 1, wavelength DEcreasing with
the column), read in SUBSTRIP256 (full-frame rows 1793-2048, 1-based, all 2048 columns,
one output; window row = full-frame row - 1792, 0-based), aperture NIS_SUBSTRIP256. Two
spectral orders fall on the window at once, each a :class:`SlitSpectrograph` of its own
(``order`` 1 and 2: its reference point, law, trace, span and throughput); the mode's model
(:func:`slit_spectrograph`) is order 1, :func:`spectral_orders` gives both. The target's
undispersed image sits at order 1's reference point; its offset from there (``place``)
moves both orders' traces alike. No slit (``slitless``: no slit loss), a time series
(``time_series``):

- Order 1: reference point (IMX, IMY) = (1025.0, 1862.0), window row 69 (0-based); law
  (:class:`GratingDispersion`) ``lambda(d) = 1.85 - 9.75e-4 d + 1.0e-8 d^2`` um (1.85 um at
  IMX); trace ``t = t_ref - 0.004 d + 2.0e-5 d^2``; span full-frame columns 4-2043 (0-based,
  inside the 4 reference columns each side): 2.855 um at column 4 to 0.867 um at column 2043,
  0.000995 to 0.000955 um per pixel; trace at window row 93.9 at column 4, 68.8 at its
  lowest (column 1124), 85.7 at column 2043; throughput 0.40 at 1.4 um, width 0.8 um
  (0.32 at 0.867 um, 0.077 at 2.855 um).
- Order 2: reference point (1025.0, 1952.0), window row 159; law ``lambda(d) = 0.95 -
  4.9e-4 d`` um (0.95 um at IMX, 0.00049 um per pixel); trace ``t = t_ref + 0.05 d + 2.0e-5
  d^2``; span the columns whose wavelength is 0.60-1.40 um: 106 (1.3998 um) to 1738 (0.6001
  um); trace at window row 130.0 at column 106 rising to 204.9 at column 1738, 46.6 px
  (9.3 sigma of the profile) below the top reference rows (window rows 252-255);
  throughput 0.20 at 0.85 um, width 0.25 um (0.12 at 0.60 um, 0.018 at 1.40 um).
- The traces are 40.4 px apart at order 2's left end (column 106: order 1 at window row
  89.5, order 2 at 130.0), 61.7 at column 500, 90.0 at 1024, 128.6 at 1738; order 1 stays
  69 px (14 sigma) above the window's bottom edge.
- Both: 0.0656" per pixel; cross-dispersion profile a Gaussian of sigma 5.0 px at every
  wavelength (``spatial_sigma``: the cylindrical lens's defocus, instead of the PSF); LSF
  along the dispersion the PSF with ``detector_sigma`` 1.0 px. Resolving power ``lambda /
  FWHM``: order 1 393 at 0.9 um, 592 at 1.4, 803 at 2.0, 956 at 2.5, 1037 at 2.8; order 2
  516 at 0.6 um, 726 at 0.85, 849 at 1.0, 1010 at 1.2. Electrons per second per Jy in one
  column: order 1 1.34e5 at 0.9 um, 1.06e5 at 1.4, 5.7e4 at 2.0, 2.4e4 at 2.5, 1.2e4 at
  2.8; order 2 3.8e4 at 0.6 um, 4.4e4 at 0.85, 3.1e4 at 1.0, 1.2e4 at 1.2.
- Sky: near-IR zodiacal light, 0.30 MJy/sr at 1 um to 0.20 MJy/sr at 3 um; as for the LRS
  slitless, each order puts the whole band's sky on every pixel (the sky patches of its
  wavelengths that lie on NIS's 2048 columns), and a pixel gets the sum of the two orders':
  1.2 e-/s at column 4 (0.8 + 0.4), 3.1 at column 500, 5.3 at 1024 (3.8 + 1.5, the most),
  4.1 at 2043; uniform along the rows.
- The white light (:attr:`SlitSpectrograph.white_light_band`) is order 1's whole band,
  0.867-2.855 um.
- Each order is rendered in blocks of 256 samples (``render_block``: a block's light
  reaches only its own columns; the spectrum is as wide as the detector), the same image
  as rendering every sample at once (as the narrower spectra are) to rounding.

NIRCam's grism time series, long-wave channel (:data:`NIRCAM_GRISM_TSO`, ``NRC_TSGRISM``;
this system's layout, not the instrument's): the GRISMR grism in NRCALONG's pupil wheel
behind F444W (0.063" per pixel) disperses the target along the rows of NRCALONG
(``dispaxis`` 1, wavelength increasing with the column), read in SUBGRISM64 (full-frame
columns 1-2048, rows 1-64, 1-based, one output, frames of 1.339 s; its bottom four rows
are the detector's reference rows; window pixel = full-frame pixel), aperture
NRCA5_GRISM64_F444W. No slit
(``slitless``: no slit loss, the whole band's sky on every pixel), a time series
(``time_series``), one spectral order (order 1):

- Reference point (IMX, IMY) = (900.0, 34.0): where the target images undispersed and
  where 4.0 um falls (the reference wavelength); window row 33 (0-based).
- Law (:class:`GratingDispersion`, linear: its inverse is exact) ``lambda(d) = 4.0 +
  0.0010035 d`` um (1.0035 nm per pixel). The spectrum is F444W's band, 3.88-4.98 um:
  full-frame columns 780 (3.8806 um) to 1875 (4.9794 um), 0-based: 1096 columns, with
  776 and 168 light-sensitive columns beyond its ends before the reference columns.
- Trace ``y = IMY - 1 + 0.002 d + 1e-6 d^2``: window row 32.78 at column 780, 33.0 at
  IMX, 35.90 at column 1875 (0-based): more than 28 rows (25 sigma of the PSF) from the
  reference rows (0-3) and from the window's top row (63).
- PSF across the dispersion (sigma 0.83 px at 3.9 um, 1.06 px at 4.98 um); LSF along it
  the PSF with ``detector_sigma`` 1.0 px. Resolving power ``lambda / FWHM`` 1268 at 3.9 um,
  1357 at 4.4, 1443 at 4.98.
- Throughput 0.30 at 4.4 um, width 0.5 um (0.17 at 3.88 um, 0.15 at 4.98 um): electrons
  per second per Jy in one column 1.79e4 at 3.9 um, 2.10e4 at 4.0, 2.62e4 at 4.4, 1.43e4
  at 4.9.
- Sky: 0.2 MJy/sr at 3.9 um to 0.35 MJy/sr at 5.0 um; as for the LRS slitless, every pixel
  sees the whole band (the sky patches of its wavelengths that lie on NRCALONG's 2048
  columns): 0.50 e-/s at column 780, 0.56 at IMX, 0.59 over columns 976-1928 (the whole
  band's patches on the field); uniform along the rows.
- The white light (:attr:`SlitSpectrograph.white_light_band`) is the whole band,
  3.88-4.98 um.

The short-wave channel read at the same time (:data:`GRISM_TSO_SHORT_WAVE_DETECTOR`
NRCA1, ``NRC_TSIMAGE``, a short-wave filter behind WLP8 or CLEAR,
:data:`GRISM_TSO_SHORT_WAVE_PUPILS`) is imaging, not a spectrograph: the grism's
reference point images on NRCA1 near full-frame pixel (1886, 116), 0-based, where its
SUBGRISM64 window is placed (SUBSTRT2 85, :data:`shared.instruments.DETECTOR_SUBARRAYS`),
and the host star there is the target's f_nu at the filter's pivot wavelength
(:func:`.exposure.simultaneous_host`).

NIRSpec multi-object spectroscopy (``NRS_MSASPEC``) with PRISM/CLEAR on NRS1 and NRS2: a
slitlet of the micro-shutter array (MSA) is a :class:`SlitSpectrograph` too
(:func:`msa_slitlet`), with the fixed slits' prism law, trace, blur, throughput and sky,
on the detector its quadrant images on.
The MSA has four quadrants of 365 rows x 171 columns of shutters (:data:`MSA_QUADRANT_SHAPE`)
on a 0.27" (rows, along the dispersion) x 0.53" (columns, spatial) pitch; a shutter's
open area is 0.20" x 0.46". Quadrant ``q = 1 + qx + 2 qy``; NRS1 sees the quadrants with
``qx = 0`` (1 and 3), NRS2 those with ``qx = 1`` (2 and 4) (:data:`MSA_QUADRANTS`). Shutter
(q, row r, column c; 1-based as in the MSA metadata file's SHUTTER_INFO) has its
reference point (its centre's image at 2 um) at the 1-based full-frame pixel of its
detector

- ``IMX = MSA_X0[detector] + ROW_PITCH (r - 1)``, ROW_PITCH = 2.7 px (0.27" at 0.1"/px):
  rows run along the dispersion (detector x); the spectrum covers -83 to +376 columns
  about IMX;
- ``IMY = MSA_Y0[q] + COLUMN_PITCH (c - 1)``, COLUMN_PITCH = 5.3 px (0.53"): columns
  1-171 span 901 rows of the detector.

========  ========  ======  ======  =========================  =====================
detector  quadrant  MSA_X0  MSA_Y0  IMX, IMY of rows 1-365,    spectra: 1-based
                                    columns 1-171              columns
========  ========  ======  ======  =========================  =====================
NRS1      1         300.0   100.0   300-1283, 100-1001         217-1658
NRS1      3         300.0   1030.0  300-1283, 1030-1931        217-1658
NRS2      2         620.0   110.0   620-1603, 110-1011         537-1978
NRS2      4         620.0   1040.0  620-1603, 1040-1941        537-1978
========  ========  ======  ======  =========================  =====================

Rows 1-365 put IMX at MSA_X0 to MSA_X0 + 983, so every slitlet's 0.6-5.3 um spectrum
(460 columns) stays on its detector, clear of the 4 reference columns either side; the
two quadrants of a detector are 29 rows apart (more than a slitlet's half length and its
PSF), so their spectra never share a row. NRS2's reference points differ from NRS1's
(this system's layout, not the instrument's: NRS2 has its own MSAX0 and QnY0 cards in
its SPECWCS) so that each detector's geometry is read from its own reference.

A slitlet (consecutive open shutters of one row) has its reference point at the mean of
its shutters', width 0.20" (the open width, across: along the dispersion) and length
``n x 0.53"`` (the bars between the shutters along the slitlet are not modelled: the
slitlet passes light over its whole length); its subarray FULL, APERNAME NRS_FULL_MSA.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
from scipy.special import erf

from services.simulator.optics import COLLECTING_AREA_M2, PLANCK_J_S, psf_fwhm_arcsec
from shared.instruments import detector as detector_info

__all__ = [
    "COLUMN_PITCH",
    "GratingDispersion",
    "LRS",
    "LRS_EXP_TYPE",
    "LRS_SLITLESS",
    "LRS_SLITLESS_EXP_TYPE",
    "MOS_APERTURE",
    "MSA_QUADRANTS",
    "MSA_QUADRANT_SHAPE",
    "MSA_SHUTTER_OPEN",
    "MSA_SHUTTER_PITCH",
    "MSA_X0",
    "MSA_Y0",
    "ModulatedSpectrum",
    "GRISM_TSO_SHORT_WAVE_DETECTOR",
    "GRISM_TSO_SHORT_WAVE_EXP_TYPE",
    "GRISM_TSO_SHORT_WAVE_PUPILS",
    "NIRCAM_GRISM_TSO",
    "NIRISS_SOSS",
    "NIRISS_SOSS_ORDERS",
    "NIRSPEC_BOTS",
    "NIRSPEC_FS",
    "NIS_SOSS_EXP_TYPE",
    "NRS1_QUADRANTS",
    "NRS2_QUADRANTS",
    "NRS_BOTS_EXP_TYPE",
    "NRS_FS_EXP_TYPE",
    "NRS_MOS_EXP_TYPE",
    "NRC_TSGRISM_EXP_TYPE",
    "ROW_PITCH",
    "WFSS_EXP_TYPES",
    "WFSS_GRISMS",
    "at_source",
    "wfss_grism",
    "PrismDispersion",
    "QuadraticDispersion",
    "RenderedSlit",
    "SLIT_SPECTROGRAPHS",
    "SPECTRAL_ORDERS",
    "SPECTRAL_TSO_EXP_TYPES",
    "SlitSource",
    "SlitSpectrograph",
    "SourceSpectrum",
    "SpectralLine",
    "observed_spectrum",
    "render_slit",
    "msa_detector",
    "msa_slitlet",
    "shutter_reference_point",
    "slit_spectrograph",
    "spectral_orders",
]

ARCSEC_PER_RAD = 206264.80624709636
_SIGMA_PER_FWHM = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))
JY_PER_MJY_SR_ARCSEC2 = 1.0e6 / ARCSEC_PER_RAD**2  # 1 MJy/sr over one arcsec^2, in Jy
LRS_EXP_TYPE = "MIR_LRS-FIXEDSLIT"
LRS_SLITLESS_EXP_TYPE = "MIR_LRS-SLITLESS"
NRS_FS_EXP_TYPE = "NRS_FIXEDSLIT"
NRS_MOS_EXP_TYPE = "NRS_MSASPEC"
NRS_BOTS_EXP_TYPE = "NRS_BRIGHTOBJ"
NIS_SOSS_EXP_TYPE = "NIS_SOSS"
NRC_TSGRISM_EXP_TYPE = "NRC_TSGRISM"


@dataclass(frozen=True)
class SpectralLine:
    """A Gaussian emission (``strength`` > 0) or absorption (< 0) line: its centre (um),
    its intrinsic FWHM (um) and its peak relative to the continuum."""

    wavelength: float
    fwhm: float
    strength: float


@dataclass(frozen=True)
class SourceSpectrum:
    """A continuum ``f_nu = flux_jy * (lambda / reference) ** slope`` (Jy; ``reference``
    um, default 7.5) times lines."""

    flux_jy: float
    slope: float = 0.0
    lines: tuple[SpectralLine, ...] = ()
    reference: float = 7.5

    def __call__(self, wavelength: np.ndarray) -> np.ndarray:
        wl = np.asarray(wavelength, np.float64)
        profile = np.ones_like(wl)
        for line in self.lines:
            sigma = line.fwhm * _SIGMA_PER_FWHM
            profile += line.strength * np.exp(-0.5 * ((wl - line.wavelength) / sigma) ** 2)
        return self.flux_jy * (wl / self.reference) ** self.slope * profile

    def average(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """The mean f_nu (Jy) over each wavelength interval [lo, hi] (either order): the
        lines integrated exactly, the continuum (smooth on the scale of an interval) taken
        at the middle."""
        lo, hi = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
        width = hi - lo
        profile = np.ones_like(width)
        for line in self.lines:
            sigma = line.fwhm * _SIGMA_PER_FWHM
            z = math.sqrt(2.0) * sigma
            part = 0.5 * (erf((hi - line.wavelength) / z) - erf((lo - line.wavelength) / z))
            profile += line.strength * sigma * math.sqrt(2.0 * math.pi) * part / width
        return self.flux_jy * (0.5 * (lo + hi) / self.reference) ** self.slope * profile


@dataclass(frozen=True)
class ModulatedSpectrum:
    """A spectrum times a smooth function of wavelength, ``factor(lambda) * base(lambda)``
    (e.g. the light a transiting planet blocks: the host's spectrum times the depth). The
    factor is taken at each interval's middle (smooth on the scale of a sample); the base's
    lines are kept, so the renderer samples them as finely as the base's."""

    base: SourceSpectrum
    factor: object  # callable: wavelength um (ndarray) -> ndarray

    @property
    def lines(self) -> tuple[SpectralLine, ...]:
        return self.base.lines

    def __call__(self, wavelength: np.ndarray) -> np.ndarray:
        wl = np.asarray(wavelength, np.float64)
        return self.base(wl) * self.factor(wl)

    def average(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        mid = 0.5 * (np.asarray(lo, np.float64) + np.asarray(hi, np.float64))
        return self.base.average(lo, hi) * self.factor(mid)


@dataclass(frozen=True)
class SlitSource:
    """A point source in the slit: its spectrum and where it sits (arcsec from the slit
    centre, ``along`` the slit and ``across`` it)."""

    spectrum: SourceSpectrum
    along: float = 0.0
    across: float = 0.0


@dataclass(frozen=True)
class QuadraticDispersion:
    """``lambda(d) = c0 + c1 d + c2 d^2`` (um; ``d`` pixels from the reference point),
    monotonic over the spectrum (the MIRI LRS prism)."""

    coeffs: tuple[float, float, float]

    def wavelength(self, d: np.ndarray) -> np.ndarray:
        c0, c1, c2 = self.coeffs
        d = np.asarray(d, np.float64)
        return c0 + c1 * d + c2 * d * d

    def derivative(self, d: np.ndarray) -> np.ndarray:
        """d lambda / d d, um per pixel."""
        return self.coeffs[1] + 2.0 * self.coeffs[2] * np.asarray(d, np.float64)

    def offset(self, wavelength: np.ndarray) -> np.ndarray:
        """``d`` of ``wavelength``: the root on the spectrum's (monotonic) branch."""
        c0, c1, c2 = self.coeffs
        wl = np.asarray(wavelength, np.float64)
        return (-c1 - np.sqrt(c1 * c1 - 4.0 * c2 * (c0 - wl))) / (2.0 * c2)


@dataclass(frozen=True)
class PrismDispersion:
    """A prism's law written as the pixel offset of a wavelength (the NIRSpec prism):
    ``d(lambda) = A(lambda) - A(reference)``, ``A = q lambda^2 / 2 - p / (2 lambda^2)``,
    so ``dd/dlambda = p / lambda^3 + q lambda`` (px/um; ``p`` px um^2, ``q`` px/um^2):
    steep in the blue and the red, shallowest at ``lambda = (p/q)^(1/4)``, as a prism's
    refractive index makes it. Monotonic in ``d`` for every positive wavelength."""

    p: float
    q: float
    reference: float  # um at d = 0

    def _a(self, wl: np.ndarray) -> np.ndarray:
        return 0.5 * self.q * wl * wl - 0.5 * self.p / (wl * wl)

    def wavelength(self, d: np.ndarray) -> np.ndarray:
        # q u^2 - 2 k u - p = 0 with u = lambda^2, k = d + A(reference)
        k = np.asarray(d, np.float64) + self._a(self.reference)
        return np.sqrt((k + np.sqrt(k * k + self.p * self.q)) / self.q)

    def derivative(self, d: np.ndarray) -> np.ndarray:
        """d lambda / d d, um per pixel."""
        wl = self.wavelength(d)
        return 1.0 / (self.p / wl**3 + self.q * wl)

    def offset(self, wavelength: np.ndarray) -> np.ndarray:
        return self._a(np.asarray(wavelength, np.float64)) - self._a(self.reference)


@dataclass(frozen=True)
class GratingDispersion:
    """A grating's law (the NIRSpec G395M): ``lambda(d) = reference + linear d + quadratic
    d^2`` (um; ``d`` pixels from the reference point), nearly linear: the camera's small
    departure from a constant dispersion is the quadratic term. Monotonic over the
    spectrum (``|quadratic d| << |linear| / 2`` there); :meth:`offset` is the root on that
    branch, written so that it stays exact as ``quadratic`` goes to 0."""

    reference: float  # um at d = 0
    linear: float  # um per pixel at d = 0
    quadratic: float  # um per pixel^2

    def wavelength(self, d: np.ndarray) -> np.ndarray:
        d = np.asarray(d, np.float64)
        return self.reference + (self.linear + self.quadratic * d) * d

    def derivative(self, d: np.ndarray) -> np.ndarray:
        """d lambda / d d, um per pixel."""
        return self.linear + 2.0 * self.quadratic * np.asarray(d, np.float64)

    def offset(self, wavelength: np.ndarray) -> np.ndarray:
        """``d`` of ``wavelength``: ``2 u / (b + sign(b) sqrt(b^2 + 4 c u))`` with ``u =
        lambda - reference``, ``b`` linear, ``c`` quadratic (the root near ``u / b``)."""
        u = np.asarray(wavelength, np.float64) - self.reference
        b = self.linear
        return 2.0 * u / (b + math.copysign(1.0, b) * np.sqrt(b * b + 4.0 * self.quadratic * u))


@dataclass(frozen=True)
class SlitSpectrograph:
    """A slit and its disperser on one detector (see the module docstring).

    ``span`` the 0-based full-frame spectral pixels the spectrum covers (its first and
    last); ``slit`` the FXD_SLIT name (None for the MIRI LRS); ``aperture`` the APERNAME
    the target is placed on; ``sky_levels`` two (wavelength um, MJy/sr) points of the
    sky's power law.
    """

    exp_type: str
    detector: str
    filter: str
    grating: str
    slit: str | None
    aperture: str
    imx: float  # 1-based full-frame column of the reference point
    imy: float  # 1-based full-frame row of the reference point
    slit_width: float  # arcsec, across the slit (along the dispersion)
    slit_length: float  # arcsec
    pixel_scale: float  # arcsec per pixel along the slit
    dispaxis: int  # 1: dispersion along x; 2: along y
    law: QuadraticDispersion | PrismDispersion | GratingDispersion
    trace_coeffs: tuple[float, float, float]
    span: tuple[int, int]
    subarrays: tuple[str, ...]  # the readout windows that hold the slit's spectrum
    detector_sigma: float  # px, the spectrograph's and detector's own blur along the dispersion
    peak_throughput: float
    throughput_centre: float
    throughput_width: float
    sky_levels: tuple[tuple[float, float], tuple[float, float]]
    shutters: tuple[int, int, tuple[int, ...]] | None = None  # MSA slitlet: (quadrant, row, columns)
    slitless: bool = False  # no slit: no slit loss, and the sky of the whole band on every pixel
    time_series: bool = False  # a spectroscopic time series of its target, the TSO host star
    white_light: tuple[float, float] | None = None  # a time series' white-light band, um (None: the spectrum's)
    order: int = 1  # the spectral order this model disperses (a mode may put several on its detector)
    spatial_sigma: float | None = None  # px, the cross-dispersion profile's sigma (None: the PSF's)
    # samples rendered at a time (None: all at once); a spectrum as wide as the detector
    # renders in blocks, each reaching only its own columns (the same light, to rounding)
    render_block: int | None = None

    # -- geometry ---------------------------------------------------------------------
    @property
    def s_ref(self) -> float:
        """0-based spectral pixel of the reference point."""
        return (self.imx if self.dispaxis == 1 else self.imy) - 1.0

    @property
    def t_ref(self) -> float:
        """0-based spatial pixel of the reference point."""
        return (self.imy if self.dispaxis == 1 else self.imx) - 1.0

    def pixels(self) -> np.ndarray:
        """The spectral pixels of the spectrum (``span``, inclusive), float."""
        return np.arange(self.span[0], self.span[1] + 1, dtype=np.float64)

    def wavelength(self, s: np.ndarray) -> np.ndarray:
        """Wavelength (um) at 0-based spectral pixel ``s`` of a source centred in the slit."""
        return self.law.wavelength(np.asarray(s, np.float64) - self.s_ref)

    def dispersion(self, s: np.ndarray) -> np.ndarray:
        """|d lambda / d s| in um per pixel."""
        return np.abs(self.law.derivative(np.asarray(s, np.float64) - self.s_ref))

    def pixel(self, wavelength: np.ndarray) -> np.ndarray:
        """The 0-based spectral pixel of ``wavelength`` (um) for a source centred in the slit."""
        return self.law.offset(wavelength) + self.s_ref

    def trace(self, s: np.ndarray) -> np.ndarray:
        """0-based spatial pixel where the slit centre images at spectral pixel ``s``."""
        d = np.asarray(s, np.float64) - self.s_ref
        t0, t1, t2 = self.trace_coeffs
        return self.t_ref + t0 + t1 * d + t2 * d * d

    def to_detector(self, s, t) -> tuple[np.ndarray, np.ndarray]:
        """(x, y) of (spectral, spatial) pixels."""
        return (s, t) if self.dispaxis == 1 else (t, s)

    def from_detector(self, x, y) -> tuple[np.ndarray, np.ndarray]:
        """(spectral, spatial) pixels of (x, y)."""
        return (x, y) if self.dispaxis == 1 else (y, x)

    def place(self, x: float, y: float) -> tuple[float, float]:
        """(along, across) arcsec from the slit centre of a source whose undispersed image
        would fall on 0-based full-frame pixel (x, y)."""
        s, t = self.from_detector(x, y)
        return (t - self.t_ref) * self.pixel_scale, (s - self.s_ref) * self.pixel_scale

    @property
    def band(self) -> tuple[float, float]:
        """(shortest, longest) wavelength, um, of the spectrum's pixels."""
        ends = self.wavelength(np.array(self.span, np.float64))
        return float(ends.min()), float(ends.max())

    @property
    def white_light_band(self) -> tuple[float, float]:
        """(shortest, longest) wavelength, um, of a time series' white light: the mode's
        own band (:attr:`white_light`), else the spectrum's whole band."""
        return self.white_light if self.white_light is not None else self.band

    @property
    def slit_width_px(self) -> float:
        return self.slit_width / self.pixel_scale

    @property
    def slit_length_px(self) -> float:
        return self.slit_length / self.pixel_scale

    @property
    def pixel_area_sr(self) -> float:
        return (self.pixel_scale / ARCSEC_PER_RAD) ** 2

    @property
    def label(self) -> str:
        """How messages name it: ``LRS``, ``NIRSpec S200A1 PRISM/CLEAR`` or ``NIRSpec MSA
        Q1 row 120 columns 40-42 PRISM/CLEAR``."""
        if self.shutters is not None:
            q, r, cols = self.shutters
            span = f"column {cols[0]}" if len(cols) == 1 else f"columns {cols[0]}-{cols[-1]}"
            return f"NIRSpec MSA Q{q} row {r} {span} {self.grating}/{self.filter}"
        if self.exp_type == NIS_SOSS_EXP_TYPE:
            return f"NIRISS SOSS {self.grating}/{self.filter} order {self.order}"
        if self.exp_type == NRC_TSGRISM_EXP_TYPE:
            return f"NIRCam grism {self.grating}/{self.filter}"
        if self.exp_type in WFSS_EXP_TYPES:
            return f"{'NIRISS' if self.exp_type == NIS_WFSS_EXP_TYPE else 'NIRCam'} WFSS {self.grating}/{self.filter}"
        if self.slitless:
            return "LRS slitless"
        return "LRS" if self.slit is None else f"NIRSpec {self.slit} {self.grating}/{self.filter}"

    # -- optics -----------------------------------------------------------------------
    def psf_sigma(self, wavelength: np.ndarray) -> np.ndarray:
        """Sigma of the PSF in pixels (arcsec / pixel scale)."""
        wl = np.asarray(wavelength, np.float64)
        return psf_fwhm_arcsec(wl) * _SIGMA_PER_FWHM / self.pixel_scale

    def profile_sigma(self, wavelength: np.ndarray) -> np.ndarray:
        """Sigma of the cross-dispersion (spatial) profile of a point source, pixels: the
        PSF's, or :attr:`spatial_sigma` at every wavelength when the disperser sets its own
        (a defocused trace)."""
        if self.spatial_sigma is None:
            return self.psf_sigma(wavelength)
        return np.full(np.shape(wavelength), float(self.spatial_sigma))

    def lsf_sigma(self, wavelength: np.ndarray) -> np.ndarray:
        """Sigma of the line-spread function along the dispersion, pixels."""
        return np.hypot(self.psf_sigma(wavelength), self.detector_sigma)

    def resolution_element(self, wavelength: np.ndarray) -> np.ndarray:
        """FWHM of the LSF in micrometres."""
        wl = np.asarray(wavelength, np.float64)
        return self.lsf_sigma(wl) / _SIGMA_PER_FWHM * self.dispersion(self.pixel(wl))

    def resolving_power(self, wavelength: np.ndarray) -> np.ndarray:
        """``lambda / resolution element``."""
        return np.asarray(wavelength, np.float64) / self.resolution_element(wavelength)

    def throughput(self, wavelength: np.ndarray) -> np.ndarray:
        wl = np.asarray(wavelength, np.float64)
        return self.peak_throughput * np.exp(-0.5 * ((wl - self.throughput_centre) / self.throughput_width) ** 2)

    def slit_transmission(self, wavelength: np.ndarray, across: float | np.ndarray = 0.0) -> np.ndarray:
        """Fraction of a point source's light the slit passes (its path loss) at offset
        ``across`` (arcsec) from the slit's centre line; 1 without a slit."""
        if self.slitless:
            return np.ones(np.broadcast(np.asarray(wavelength), np.asarray(across)).shape)
        sigma = self.psf_sigma(wavelength) * self.pixel_scale * math.sqrt(2.0)
        half = 0.5 * self.slit_width
        return 0.5 * (erf((half - across) / sigma) + erf((half + across) / sigma))

    def electrons_per_jy(self, s: np.ndarray) -> np.ndarray:
        """Photo-electrons per second into spectral pixel ``s`` from a 1 Jy source centred
        in the slit, before the slit loss."""
        wl = self.wavelength(s)
        return (1.0e-26 / PLANCK_J_S * COLLECTING_AREA_M2 * self.throughput(wl)
                * self.dispersion(s) / wl)

    def sky(self, wavelength: np.ndarray) -> np.ndarray:
        """The default sky, MJy/sr: a power law through :attr:`sky_levels`."""
        (w1, s1), (w2, s2) = self.sky_levels
        slope = math.log(s2 / s1) / math.log(w2 / w1)
        return s1 * (np.asarray(wavelength, np.float64) / w1) ** slope

    def sky_electrons(self, s: np.ndarray, sky_mjy_sr: np.ndarray) -> np.ndarray:
        """Photo-electrons per second per pixel under a uniform sky (MJy/sr) filling the slit."""
        area = self.pixel_scale * self.slit_width  # arcsec^2 of sky one pixel sees
        return np.asarray(sky_mjy_sr) * JY_PER_MJY_SR_ARCSEC2 * area * self.electrons_per_jy(s)

    def slitless_sky_electrons(self, s: np.ndarray, sky_mjy_sr) -> np.ndarray:
        """Photo-electrons per second per pixel at spectral pixels ``s`` (0-based full
        frame) under a uniform sky ``sky_mjy_sr`` (function of wavelength um -> MJy/sr)
        seen without a slit (module docstring): each one-pixel patch of sky within the
        detector's field puts its dispersed spectrum on the detector; a pixel sums the
        wavelengths whose patches lie on the field."""
        band = self.pixels()
        per_patch = (np.asarray(sky_mjy_sr(self.wavelength(band)), np.float64) * JY_PER_MJY_SR_ARCSEC2
                     * self.pixel_scale**2 * self.electrons_per_jy(band))
        info = detector_info(self.detector)
        rows = info.nx if self.dispaxis == 1 else info.ny  # the field along the dispersion, full-frame pixels
        patch = np.asarray(s, np.float64)[..., None] - (band - self.s_ref)  # undispersed place of each wavelength's patch
        on_field = (patch >= -0.5) & (patch <= rows - 0.5)
        return np.sum(per_patch * on_field, axis=-1)

    def response(self, g0: float, margin: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(wavelength um, increasing; MJy per DN/s) over the spectrum's pixels (and
        ``margin`` more at each end): a flat-fielded rate (DN/s, i.e. e-/s per nominal
        pixel / ``g0``) summed over a spectral pixel's pixels times this is the f_nu (MJy)
        of a slit-centred point source before the slit loss."""
        s = np.arange(self.span[0] - margin, self.span[1] + margin + 1, dtype=np.float64)
        wl = self.wavelength(s)
        mjy = g0 / (self.electrons_per_jy(s) * 1.0e6)
        order = np.argsort(wl)
        return wl[order], mjy[order]


LRS = SlitSpectrograph(
    exp_type=LRS_EXP_TYPE, detector="MIRIMAGE", filter="P750L", grating="N/A", slit=None, aperture="MIRIM_SLIT",
    imx=326.13, imy=300.70, slit_width=0.51, slit_length=4.7, pixel_scale=0.11, dispaxis=2,
    law=QuadraticDispersion((7.5, -0.0285, 5.5e-5)), trace_coeffs=(0.0, 0.004, 2.0e-6), span=(111, 411),
    subarrays=("FULL",), detector_sigma=1.0, peak_throughput=0.22, throughput_centre=7.5, throughput_width=4.0,
    sky_levels=((5.0, 5.0), (14.0, 60.0)),
)

#: The LRS without its slit: the same prism, trace, optics and detector about the public
#: slitless reference point (x_ref_slitless, y_ref_slitless), read in SLITLESSPRISM.
_SLITLESS_REF = (38.5, 829.0)
LRS_SLITLESS = dataclasses.replace(
    LRS, exp_type=LRS_SLITLESS_EXP_TYPE, aperture="MIRIM_SLITLESSPRISM", imx=_SLITLESS_REF[0], imy=_SLITLESS_REF[1],
    span=(math.ceil(LRS.span[0] - LRS.s_ref + _SLITLESS_REF[1] - 1.0),
          math.floor(LRS.span[1] - LRS.s_ref + _SLITLESS_REF[1] - 1.0)),
    subarrays=("SLITLESSPRISM",), slitless=True, time_series=True, white_light=(5.0, 12.0),
)

_NRS_PRISM = PrismDispersion(p=21.4, q=31.0, reference=2.0)
_NRS_PRISM_BAND = (0.6, 5.3)  # um, PRISM behind CLEAR
# slit: (width, length arcsec; IMX, IMY 1-based on NRS1)
_NRS_SLITS = {
    "S200A1": (0.2, 3.3, 1100.40, 990.60),
    "S200A2": (0.2, 3.3, 1088.20, 928.40),
    "S400A1": (0.4, 3.8, 1120.60, 1085.30),
    "S1600A1": (1.6, 1.6, 1140.90, 1040.20),
    "S200B1": (0.2, 3.3, 1170.30, 1127.70),
}


# the slit's own window (shared.instruments SUBARRAYS["NIRSPEC"])
_NRS_WINDOWS = {"S200A1": "SUBS200A1", "S200A2": "SUBS200A2", "S400A1": "SUBS400A1", "S1600A1": "SUB2048",
                "S200B1": "SUBS200B1"}


def _nirspec_prism(exp_type: str, aperture: str, imx: float, imy: float, width: float, length: float,
                   subarrays: tuple[str, ...], slit: str | None = None,
                   shutters: tuple[int, int, tuple[int, ...]] | None = None,
                   detector: str = "NRS1") -> SlitSpectrograph:
    """A NIRSpec aperture on ``detector`` with PRISM/CLEAR: the prism law, trace, blur,
    throughput and sky every NIRSpec slit and MSA slitlet shares (the module docstring)."""
    first = math.ceil(_NRS_PRISM.offset(_NRS_PRISM_BAND[0]) + imx - 1.0)
    last = math.floor(_NRS_PRISM.offset(_NRS_PRISM_BAND[1]) + imx - 1.0)
    return SlitSpectrograph(
        exp_type=exp_type, detector=detector, filter="CLEAR", grating="PRISM", slit=slit,
        aperture=aperture, imx=imx, imy=imy, slit_width=width, slit_length=length, pixel_scale=0.1,
        dispaxis=1, law=_NRS_PRISM, trace_coeffs=(0.0, 0.003, 4.0e-6), span=(first, last),
        subarrays=subarrays, detector_sigma=0.85,
        peak_throughput=0.50, throughput_centre=3.2, throughput_width=1.6, sky_levels=((1.0, 0.25), (5.0, 0.20)),
        shutters=shutters,
    )


def _nirspec_fixed_slit(name: str) -> SlitSpectrograph:
    width, length, imx, imy = _NRS_SLITS[name]
    return _nirspec_prism(NRS_FS_EXP_TYPE, f"NRS_{name}_SLIT", imx, imy, width, length,
                          (_NRS_WINDOWS[name], "ALLSLITS", "FULL"), slit=name)


#: The NIRSpec fixed slits with PRISM/CLEAR, by FXD_SLIT name.
NIRSPEC_FS: dict[str, SlitSpectrograph] = {name: _nirspec_fixed_slit(name) for name in _NRS_SLITS}

#: G395M behind F290LP: the band from the filter's cut-on to the grating's red end on NRS1
#: (um), and the grating's law about S1600A1's reference point (4.2 um at IMX).
_G395M_BAND = (2.87, 5.10)
_G395M = GratingDispersion(reference=4.2, linear=0.00179, quadratic=2.0e-8)
_BOTS_SLIT = "S1600A1"


def _nirspec_bots() -> SlitSpectrograph:
    """NIRSpec's bright-object time series (the module docstring): G395M behind F290LP
    through S1600A1 on NRS1, read in SUB2048; the fixed slits' trace, PSF, blur and sky."""
    width, length, imx, imy = _NRS_SLITS[_BOTS_SLIT]
    prism = NIRSPEC_FS[_BOTS_SLIT]
    first = math.ceil(float(_G395M.offset(_G395M_BAND[0])) + imx - 1.0)
    last = math.floor(float(_G395M.offset(_G395M_BAND[1])) + imx - 1.0)
    return dataclasses.replace(
        prism, exp_type=NRS_BOTS_EXP_TYPE, filter="F290LP", grating="G395M", law=_G395M, span=(first, last),
        subarrays=("SUB2048",), peak_throughput=0.45, throughput_centre=4.0, throughput_width=0.8,
        time_series=True, white_light=_G395M_BAND,
    )


#: NIRSpec's bright-object time series (NRS_BRIGHTOBJ): G395M/F290LP through S1600A1.
NIRSPEC_BOTS = _nirspec_bots()

#: Samples rendered at once for the long slitless spectra (SOSS, WFSS): a block of 256
#: holds about 50 of SOSS's 2040 columns and bounds the renderer's memory.
_SLITLESS_RENDER_BLOCK = 256

#: NIRISS SOSS (the module docstring): GR700XD in the pupil wheel behind CLEAR, on NIS in
#: SUBSTRIP256; per order its reference point's IMY (IMX 1025.0 for both), its law, trace,
#: the wavelengths its span covers (None: the columns inside the reference pixels) and
#: its throughput (peak, centre um, width um).
_SOSS_IMX = 1025.0
_SOSS_ORDERS = {
    1: (1862.0, GratingDispersion(reference=1.85, linear=-9.75e-4, quadratic=1.0e-8), (0.0, -0.004, 2.0e-5), None,
        (0.40, 1.4, 0.8)),
    2: (1952.0, GratingDispersion(reference=0.95, linear=-4.9e-4, quadratic=0.0), (0.0, 0.05, 2.0e-5), (0.60, 1.40),
        (0.20, 0.85, 0.25)),
}
_SOSS_PROFILE_SIGMA = 5.0  # px: the cylindrical lens's defocus across the dispersion


def _niriss_soss(order: int) -> SlitSpectrograph:
    """Order ``order`` of NIRISS SOSS (the module docstring): no slit, the target's light
    dispersed along the columns of NIS (wavelength decreasing with the column), a
    cross-dispersion profile of :data:`_SOSS_PROFILE_SIGMA` pixels."""
    imy, law, trace, band, (peak, centre, width) = _SOSS_ORDERS[order]
    border = detector_info("NIS").refpix_border
    first, last = border, detector_info("NIS").nx - 1 - border
    if band is not None:  # the columns whose wavelengths are in the band (the law decreases with the column)
        first = math.ceil(float(law.offset(band[1])) + _SOSS_IMX - 1.0)
        last = math.floor(float(law.offset(band[0])) + _SOSS_IMX - 1.0)
    return SlitSpectrograph(
        exp_type=NIS_SOSS_EXP_TYPE, detector="NIS", filter="CLEAR", grating="GR700XD", slit=None,
        aperture="NIS_SUBSTRIP256", imx=_SOSS_IMX, imy=imy, slit_width=0.0, slit_length=0.0, pixel_scale=0.0656,
        dispaxis=1, law=law, trace_coeffs=trace, span=(first, last), subarrays=("SUBSTRIP256",), detector_sigma=1.0,
        peak_throughput=peak, throughput_centre=centre, throughput_width=width,
        sky_levels=((1.0, 0.30), (3.0, 0.20)), slitless=True, time_series=True, order=order,
        spatial_sigma=_SOSS_PROFILE_SIGMA, render_block=_SLITLESS_RENDER_BLOCK,
    )


#: NIRISS SOSS (NIS_SOSS), its two spectral orders on NIS at once; order 1 is the mode's
#: model (its reference point the aperture's, its band the white light).
NIRISS_SOSS_ORDERS: tuple[SlitSpectrograph, ...] = (_niriss_soss(1), _niriss_soss(2))
NIRISS_SOSS = NIRISS_SOSS_ORDERS[0]

#: NIRCam's grism time series (the module docstring): F444W's band (um), the grism's law
#: (4.0 um at the reference point, a constant dispersion) and the source's undispersed
#: place (IMX, IMY), 1-based full-frame pixel of NRCALONG.
_F444W_BAND = (3.88, 4.98)
_GRISMR_F444W = GratingDispersion(reference=4.0, linear=0.0010035, quadratic=0.0)
_GRISM_TSO_REF = (900.0, 34.0)


def _nircam_grism_tso() -> SlitSpectrograph:
    """NIRCam's grism time series, long-wave channel (the module docstring): GRISMR behind
    F444W on NRCALONG, read in SUBGRISM64; no slit, the PSF across the dispersion."""
    imx, imy = _GRISM_TSO_REF
    first = math.ceil(float(_GRISMR_F444W.offset(_F444W_BAND[0])) + imx - 1.0)
    last = math.floor(float(_GRISMR_F444W.offset(_F444W_BAND[1])) + imx - 1.0)
    return SlitSpectrograph(
        exp_type=NRC_TSGRISM_EXP_TYPE, detector="NRCALONG", filter="F444W", grating="GRISMR", slit=None,
        aperture="NRCA5_GRISM64_F444W", imx=imx, imy=imy, slit_width=0.0, slit_length=0.0, pixel_scale=0.063,
        dispaxis=1, law=_GRISMR_F444W, trace_coeffs=(0.0, 0.002, 1.0e-6), span=(first, last),
        subarrays=("SUBGRISM64",), detector_sigma=1.0, peak_throughput=0.30, throughput_centre=4.4,
        throughput_width=0.5, sky_levels=((3.9, 0.2), (5.0, 0.35)), slitless=True, time_series=True,
        white_light=_F444W_BAND,
    )


#: NIRCam's grism time series, long-wave channel (NRC_TSGRISM): GRISMR/F444W on NRCALONG.
NIRCAM_GRISM_TSO = _nircam_grism_tso()

#: The short-wave detector read at the same time as the grism, imaging the same target
#: (NRC_TSIMAGE): in this system's focal plane the grism's reference point images on NRCA1,
#: at full-frame row 117 (1-based), where its SUBGRISM64 window is placed
#: (:data:`shared.instruments.DETECTOR_SUBARRAYS`).
GRISM_TSO_SHORT_WAVE_DETECTOR = "NRCA1"
GRISM_TSO_SHORT_WAVE_EXP_TYPE = "NRC_TSIMAGE"
#: Pupil elements of the short-wave imaging beside the grism: the weak lens (defocusing
#: the bright star) or none.
GRISM_TSO_SHORT_WAVE_PUPILS = ("WLP8", "CLEAR")

#: Wide-field slitless spectroscopy: NIRISS's grisms in its filter wheel behind a blocking
#: filter in the pupil wheel, NIRCam's in its pupil wheel behind a filter.
NIS_WFSS_EXP_TYPE = "NIS_WFSS"
NRC_WFSS_EXP_TYPE = "NRC_WFSS"
WFSS_EXP_TYPES = (NIS_WFSS_EXP_TYPE, NRC_WFSS_EXP_TYPE)
#: NIRISS's GR150 grisms: R ~ 150, 4.7 nm per pixel in order 1, whose light falls about 100
#: pixels from the source's undispersed image (1.5 um there); F150W's band.
_GR150_LAW = GratingDispersion(reference=1.03, linear=0.0047, quadratic=0.0)
_F150W_BAND = (1.33, 1.67)
#: The full frame's centre, 1-based: the reference point the WFSS models are given about.
_WFSS_REF = (1024.5, 1024.5)


def _wfss(exp_type: str, detector: str, blocking: str, grism: str, dispaxis: int, law: GratingDispersion,
          band: tuple[float, float], pixel_scale: float, throughput: tuple[float, float, float],
          sky_levels: tuple[tuple[float, float], tuple[float, float]],
          trace: tuple[float, float, float]) -> SlitSpectrograph:
    """A wide-field grism (the module docstring) for a source whose undispersed image is
    the full frame's centre (:data:`_WFSS_REF`; :func:`at_source` moves it): order 1, its
    spectrum over ``band`` (the blocking filter's), no slit, the PSF across the dispersion;
    ``trace`` its coefficients about the reference point."""
    s_ref = (_WFSS_REF[0] if dispaxis == 1 else _WFSS_REF[1]) - 1.0
    first = math.ceil(float(law.offset(band[0])) + s_ref)
    last = math.floor(float(law.offset(band[1])) + s_ref)
    peak, centre, width = throughput
    return SlitSpectrograph(
        exp_type=exp_type, detector=detector, filter=blocking, grating=grism, slit=None, aperture="FULL",
        imx=_WFSS_REF[0], imy=_WFSS_REF[1], slit_width=0.0, slit_length=0.0, pixel_scale=pixel_scale,
        dispaxis=dispaxis, law=law, trace_coeffs=trace, span=(first, last), subarrays=("FULL",),
        detector_sigma=1.0, peak_throughput=peak, throughput_centre=centre, throughput_width=width,
        sky_levels=sky_levels, slitless=True, white_light=band, render_block=_SLITLESS_RENDER_BLOCK,
    )


#: The simulated wide-field grisms by (EXP_TYPE, grism): NIRISS GR150C (dispersing along
#: the rows, x) and GR150R (along the columns, y) behind F150W on NIS, their traces gently
#: curved; NIRCam GRISMR (x) and GRISMC (y) behind F444W on NRCALONG (the grism time series'
#: law), their traces straight and tilted (the public NIRCam form's inverse across the
#: dispersion is then a polynomial). ``filter`` is the
#: blocking filter and ``grating`` the grism (NIRISS's FILTER and PUPIL keywords hold
#: them the other way round: its grisms sit in the filter wheel).
WFSS_GRISMS: dict[tuple[str, str], SlitSpectrograph] = {
    (NIS_WFSS_EXP_TYPE, "GR150C"): _wfss(NIS_WFSS_EXP_TYPE, "NIS", "F150W", "GR150C", 1, _GR150_LAW, _F150W_BAND,
                                         0.0656, (0.35, 1.5, 0.3), ((1.2, 0.35), (1.8, 0.30)), (0.0, 0.002, 1.0e-6)),
    (NIS_WFSS_EXP_TYPE, "GR150R"): _wfss(NIS_WFSS_EXP_TYPE, "NIS", "F150W", "GR150R", 2, _GR150_LAW, _F150W_BAND,
                                         0.0656, (0.35, 1.5, 0.3), ((1.2, 0.35), (1.8, 0.30)), (0.0, 0.002, 1.0e-6)),
    (NRC_WFSS_EXP_TYPE, "GRISMR"): _wfss(NRC_WFSS_EXP_TYPE, "NRCALONG", "F444W", "GRISMR", 1, _GRISMR_F444W,
                                         _F444W_BAND, 0.063, (0.30, 4.4, 0.5), ((3.9, 0.2), (5.0, 0.35)), (0.0, 0.002, 0.0)),
    (NRC_WFSS_EXP_TYPE, "GRISMC"): _wfss(NRC_WFSS_EXP_TYPE, "NRCALONG", "F444W", "GRISMC", 2, _GRISMR_F444W,
                                         _F444W_BAND, 0.063, (0.30, 4.4, 0.5), ((3.9, 0.2), (5.0, 0.35)), (0.0, 0.002, 0.0)),
}


def wfss_grism(exp_type: str | None, filter_: str | None, pupil: str | None) -> SlitSpectrograph | None:
    """The wide-field grism of an exposure (its EXP_TYPE, FILTER and PUPIL keywords: the
    grism is NIRISS's FILTER, NIRCam's PUPIL) with the blocking filter it is simulated
    behind; None for an exposure of another type. ValueError for a grism or blocking
    filter not simulated."""
    exp_type = (exp_type or "").upper()
    if exp_type not in WFSS_EXP_TYPES:
        return None
    grism, blocking = ((filter_, pupil) if exp_type == NIS_WFSS_EXP_TYPE else (pupil, filter_))
    grism, blocking = (grism or "").upper(), (blocking or "").upper()
    model = WFSS_GRISMS.get((exp_type, grism))
    if model is None:
        known = ", ".join(g for e, g in WFSS_GRISMS if e == exp_type)
        raise ValueError(f"{exp_type}: grism {grism or '(none)'} is not simulated; one of {known}")
    if blocking != model.filter:
        raise ValueError(f"{exp_type}: the {grism} grism is simulated behind {model.filter}, not {blocking or '(none)'}")
    return model


def at_source(model: SlitSpectrograph, x: float, y: float) -> SlitSpectrograph:
    """``model`` (a wide-field grism) for a source whose undispersed image is 0-based
    full-frame pixel (``x``, ``y``): the law is the same about the source (its wavelengths
    move with it), the trace a curve of the detector's: ``t = t_ref + t0 + t1 u + t2 u^2``
    with ``u`` the spectral pixel's offset from the model's own reference point, so a
    source elsewhere sees another part of the curve (the coefficients rewritten about the
    source); the span the pixels of its band."""
    s_new, t_new = model.from_detector(x, y)
    delta = s_new - model.s_ref
    t0, t1, t2 = model.trace_coeffs
    coeffs = (t0 + t1 * delta + t2 * delta * delta, t1 + 2.0 * t2 * delta, t2)
    low, high = model.white_light_band
    first = math.ceil(float(model.law.offset(low)) + s_new)
    last = math.floor(float(model.law.offset(high)) + s_new)
    return dataclasses.replace(model, imx=x + 1.0, imy=y + 1.0, trace_coeffs=coeffs, span=(first, last))


#: The MSA: shutters per quadrant, rows (along the dispersion) x columns (spatial).
MSA_QUADRANT_SHAPE = (365, 171)
#: Shutter pitch, arcsec, along the rows (dispersion) and along the columns (spatial).
MSA_SHUTTER_PITCH = (0.27, 0.53)
#: A shutter's open area, arcsec (across x along the slitlet).
MSA_SHUTTER_OPEN = (0.20, 0.46)
#: The MSA quadrants each detector sees (quadrant ``1 + qx + 2 qy``: NRS1 qx = 0, NRS2 qx = 1).
MSA_QUADRANTS: dict[str, tuple[int, ...]] = {"NRS1": (1, 3), "NRS2": (2, 4)}
NRS1_QUADRANTS = MSA_QUADRANTS["NRS1"]
NRS2_QUADRANTS = MSA_QUADRANTS["NRS2"]
#: The MSA geometry of the module docstring: per detector the 1-based full-frame column of
#: row 1's shutters' reference points, per quadrant the row of column 1's (on its
#: quadrant's detector), and the step per shutter row (along x) and column (along y).
MSA_X0: dict[str, float] = {"NRS1": 300.0, "NRS2": 620.0}
MSA_Y0: dict[int, float] = {1: 100.0, 3: 1030.0, 2: 110.0, 4: 1040.0}
ROW_PITCH = 2.7
COLUMN_PITCH = 5.3
MOS_APERTURE = "NRS_FULL_MSA"


def msa_detector(quadrant: int) -> str:
    """The detector MSA ``quadrant`` (1-4) images on. ValueError for another quadrant."""
    for name, quadrants in MSA_QUADRANTS.items():
        if quadrant in quadrants:
            return name
    raise ValueError(f"MSA quadrant {quadrant} does not exist: quadrants are 1-4 (NRS1 sees 1 and 3, NRS2 2 and 4)")


def shutter_reference_point(quadrant: int, row: int, column: int) -> tuple[float, float]:
    """(IMX, IMY): the 1-based full-frame pixel, on the detector the quadrant images on
    (:func:`msa_detector`), where the centre of shutter (``quadrant``, ``row``,
    ``column``; 1-based) images at 2 um. ValueError for a shutter off the MSA."""
    name = msa_detector(quadrant)
    nrows, ncols = MSA_QUADRANT_SHAPE
    if not (1 <= row <= nrows and 1 <= column <= ncols):
        raise ValueError(f"MSA shutter row {row}, column {column} is off the quadrant (rows 1-{nrows}, "
                         f"columns 1-{ncols})")
    return MSA_X0[name] + ROW_PITCH * (row - 1), MSA_Y0[quadrant] + COLUMN_PITCH * (column - 1)


def msa_slitlet(quadrant: int, row: int, columns) -> SlitSpectrograph:
    """The slitlet of consecutive open shutters ``columns`` (increasing) in ``row`` of
    ``quadrant`` with PRISM/CLEAR, on the detector the quadrant images on (NRS1 for 1 and
    3, NRS2 for 2 and 4; see the module docstring): its reference point the mean of its
    shutters', 0.20" wide, ``len(columns) x 0.53"`` long.

    Raises ValueError for a quadrant not 1-4, a shutter off the quadrant, or columns
    that are empty or not consecutive."""
    cols = tuple(int(c) for c in columns)
    if not cols:
        raise ValueError("an MSA slitlet needs at least one shutter column")
    if any(b - a != 1 for a, b in zip(cols, cols[1:], strict=False)):
        raise ValueError(f"MSA slitlet columns {list(cols)} are not consecutive and increasing: a slitlet is a "
                         "run of neighbouring shutters of one row")
    points = [shutter_reference_point(quadrant, row, c) for c in cols]
    imx = float(np.mean([p[0] for p in points]))
    imy = float(np.mean([p[1] for p in points]))
    return _nirspec_prism(NRS_MOS_EXP_TYPE, MOS_APERTURE, imx, imy, MSA_SHUTTER_OPEN[0],
                          len(cols) * MSA_SHUTTER_PITCH[1], ("FULL",), shutters=(int(quadrant), int(row), cols),
                          detector=msa_detector(quadrant))


#: Every slit the simulator renders, by (EXP_TYPE, FXD_SLIT or None).
SLIT_SPECTROGRAPHS: dict[tuple[str, str | None], SlitSpectrograph] = {
    (LRS_EXP_TYPE, None): LRS, (LRS_SLITLESS_EXP_TYPE, None): LRS_SLITLESS, **{(NRS_FS_EXP_TYPE, name): model for name, model in NIRSPEC_FS.items()},
    (NRS_BOTS_EXP_TYPE, _BOTS_SLIT): NIRSPEC_BOTS, (NIS_SOSS_EXP_TYPE, None): NIRISS_SOSS,
    (NRC_TSGRISM_EXP_TYPE, None): NIRCAM_GRISM_TSO}

#: The modes whose spectral orders are named (their truth tables have an ``order``
#: column): NIRISS SOSS, two orders on its detector at once, and NIRCam's grism time
#: series, its first order alone; every order's model, by EXP_TYPE (the first is the
#: mode's, :func:`slit_spectrograph`).
SPECTRAL_ORDERS: dict[str, tuple[SlitSpectrograph, ...]] = {NIS_SOSS_EXP_TYPE: NIRISS_SOSS_ORDERS,
                                                            NRC_TSGRISM_EXP_TYPE: (NIRCAM_GRISM_TSO,)}

#: The spectroscopic time series the simulator renders (a TSO of their target, the host star).
SPECTRAL_TSO_EXP_TYPES: tuple[str, ...] = tuple(dict.fromkeys(
    m.exp_type for m in SLIT_SPECTROGRAPHS.values() if m.time_series))


def slit_spectrograph(exp_type: str | None, fixed_slit: str | None = None) -> SlitSpectrograph | None:
    """The slit an exposure of ``exp_type`` (and ``fixed_slit``, NIRSpec) disperses with;
    None for an exposure type without one. ValueError for an unknown fixed slit, or a
    bright-object time series through another slit than S1600A1 (None: S1600A1)."""
    exp_type = (exp_type or "").upper()
    if exp_type == LRS_EXP_TYPE:
        return LRS
    if exp_type == LRS_SLITLESS_EXP_TYPE:
        return LRS_SLITLESS
    if exp_type == NRS_FS_EXP_TYPE:
        try:
            return NIRSPEC_FS[(fixed_slit or "").upper()]
        except KeyError:
            raise ValueError(f"fixed_slit: {fixed_slit!r} is not a NIRSpec fixed slit; one of "
                             f"{', '.join(NIRSPEC_FS)}") from None
    if exp_type == NRS_BOTS_EXP_TYPE:
        if (fixed_slit or NIRSPEC_BOTS.slit).upper() != NIRSPEC_BOTS.slit:
            raise ValueError(f"fixed_slit: a {NRS_BOTS_EXP_TYPE} observation is simulated through "
                             f"{NIRSPEC_BOTS.slit}, not {fixed_slit}")
        return NIRSPEC_BOTS
    if exp_type == NIS_SOSS_EXP_TYPE:
        return NIRISS_SOSS
    if exp_type == NRC_TSGRISM_EXP_TYPE:
        return NIRCAM_GRISM_TSO
    return None


def spectral_orders(model: SlitSpectrograph) -> tuple[SlitSpectrograph, ...]:
    """Every spectral order ``model``'s mode puts on its detector, in order (NIRISS SOSS:
    orders 1 and 2); ``(model,)`` for a mode with one (NIRCam's grism time series:
    order 1)."""
    return SPECTRAL_ORDERS.get(model.exp_type, (model,))


def _samples(model: SlitSpectrograph, spectrum: SourceSpectrum, first: float, last: float,
             oversample: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sub-pixel samples of a slit-centred source's spectrum from spectral pixel ``first``
    to ``last`` (their edges): ``oversample`` per pixel, and finer (a third of the line's
    sigma) over +-6 sigma of a line narrower than that, so that every line's light is
    placed where it falls. Returns each sample's centre (spectral pixel), wavelength (um)
    and photo-electrons per second (the spectrum's mean over the sample, before the slit
    loss)."""
    edges = [np.arange(first, last + 0.5 / oversample, 1.0 / oversample)]
    for line in spectrum.lines:
        with np.errstate(invalid="ignore"):
            centre = float(model.pixel(line.wavelength))
        if not math.isfinite(centre) or not first < centre < last:
            continue
        sigma_px = line.fwhm * _SIGMA_PER_FWHM / float(model.dispersion(centre))
        if sigma_px / 3.0 < 1.0 / oversample:
            edges.append(np.arange(centre - 6.0 * sigma_px, centre + 6.0 * sigma_px, sigma_px / 3.0))
    edges = np.unique(np.clip(np.concatenate(edges), first, last))
    centres = 0.5 * (edges[1:] + edges[:-1])
    wl_edges = model.wavelength(edges)
    electrons = (spectrum.average(wl_edges[:-1], wl_edges[1:]) * model.electrons_per_jy(centres)
                 * np.diff(edges))
    return centres, model.wavelength(centres), electrons


def _cell_fractions(centre: np.ndarray, edges: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Fraction of unit Gaussians (one per row: ``centre``, ``sigma`` of shape (n,)) in
    each cell between consecutive ``edges`` (m+1,): shape (n, m)."""
    z = (edges[None, :] - centre[:, None]) / (sigma[:, None] * math.sqrt(2.0))
    return 0.5 * np.diff(erf(z), axis=1)


def _reach(centre: np.ndarray, sigma: np.ndarray, first: int, n: int) -> slice:
    """The cells (of ``n`` from pixel ``first``) a set of Gaussians can light, to 10 sigma."""
    lo = int(math.floor(float(np.min(centre - 10.0 * sigma)))) - first
    hi = int(math.ceil(float(np.max(centre + 10.0 * sigma)))) - first + 1
    return slice(min(max(lo, 0), n), min(max(hi, 0), n))


def _spread(image: np.ndarray, origin: tuple[int, int], sc: np.ndarray, tc: np.ndarray, lsf: np.ndarray,
            profile: np.ndarray, electrons: np.ndarray) -> None:
    """Add samples' light to ``image`` (spectral, spatial pixels from ``origin``): each
    sample's ``electrons`` (e-/s) at (``sc``, ``tc``), spread by Gaussians of sigma ``lsf``
    along the dispersion and ``profile`` across it, integrated over the pixels they reach."""
    s0, t0 = origin
    ns, nt = image.shape
    ks, kt = _reach(sc, lsf, s0, ns), _reach(tc, profile, t0, nt)
    s_edges = np.arange(s0 + ks.start, s0 + ks.stop + 1, dtype=np.float64) - 0.5
    t_edges = np.arange(t0 + kt.start, t0 + kt.stop + 1, dtype=np.float64) - 0.5
    spectral = _cell_fractions(sc, s_edges, lsf)  # (n, ns)
    spatial = _cell_fractions(tc, t_edges, profile)  # (n, nt)
    image[ks, kt] += (spectral * electrons[:, None]).T @ spatial


@dataclass(frozen=True)
class RenderedSlit:
    """A dispersed slit scene: ``image`` (ny, nx) photo-electrons per second per pixel of
    the window (sky included); ``sky`` its sky part; per source its offsets."""

    image: np.ndarray
    sky: np.ndarray
    sources: tuple[dict, ...]


def render_slit(
    model: SlitSpectrograph,
    sources: list[SlitSource],
    window: tuple[int, int, int, int],
    *,
    sky_mjy_sr=None,
    oversample: int = 5,
) -> RenderedSlit:
    """The electron rate the slit puts on a window (``xstart, ystart, xsize, ysize``,
    0-based full-frame start) of the detector.

    Each source's spectrum is averaged over samples ``oversample`` times finer than the
    spectral pixels (finer still over narrow lines, :func:`_samples`), each sample's light
    spread along the dispersion by the LSF and along the slit by the PSF (or the
    disperser's own cross-dispersion profile, :meth:`SlitSpectrograph.profile_sigma`; both
    integrated over pixels), cut by the slit's transmission at the source's offset across it, and
    moved by that offset along the dispersion.
    ``sky_mjy_sr`` is a function of wavelength (um) -> MJy/sr (None: no sky).
    """
    x0, y0, nx, ny = window
    s0, t0 = model.from_detector(x0, y0)
    ns, nt = model.from_detector(nx, ny)
    image = np.zeros((ns, nt), np.float64)  # (spectral, spatial)
    half_len = 0.5 * model.slit_length_px
    lo, hi = model.span
    truth = []
    for src in sources:
        fine, wl, electrons = _samples(model, src.spectrum, lo - 10.0, hi + 10.0, oversample)
        keep = wl > 0.5
        fine, wl = fine[keep], wl[keep]
        psf, lsf = model.profile_sigma(wl), model.lsf_sigma(wl)
        shift = src.across / model.pixel_scale  # spectral pixels: the source's offset across the slit
        electrons = electrons[keep] * model.slit_transmission(wl, src.across)  # e-/s of each sample
        sc = fine + shift
        tc = model.trace(sc) + src.along / model.pixel_scale
        if model.render_block is None:
            _spread(image, (s0, t0), sc, tc, lsf, psf, electrons)
        else:
            for k in range(0, sc.size, model.render_block):
                part = slice(k, k + model.render_block)
                _spread(image, (s0, t0), sc[part], tc[part], lsf[part], psf[part], electrons[part])
        truth.append({"along": src.along, "across": src.across, "shift_pixels": shift})
    sky = np.zeros_like(image)
    if sky_mjy_sr is not None and model.slitless:  # the whole band's sky on every pixel
        sky[:] = model.slitless_sky_electrons(np.arange(s0, s0 + ns, dtype=np.float64), sky_mjy_sr)[:, None]
    elif sky_mjy_sr is not None:
        s_pix = np.arange(s0, s0 + ns, dtype=np.float64)
        t_pix = np.arange(t0, t0 + nt, dtype=np.float64)
        lit = (s_pix >= lo - 5) & (s_pix <= hi + 5)
        s_lit = s_pix[lit]
        wl_lit = model.wavelength(s_lit)
        level = model.sky_electrons(s_lit, sky_mjy_sr(wl_lit))
        # the slit's image: |t - trace| within half its length, edges smoothed by the PSF
        sig = model.profile_sigma(wl_lit)[:, None] * math.sqrt(2.0)
        dt = t_pix[None, :] - model.trace(s_lit)[:, None]
        inside = 0.5 * (erf((half_len - dt) / sig) + erf((half_len + dt) / sig))
        sky[lit] = level[:, None] * inside
    image += sky
    if model.dispaxis == 1:  # (spectral, spatial) = (x, y): the image is its transpose
        image, sky = image.T, sky.T
    return RenderedSlit(image=np.ascontiguousarray(image), sky=np.ascontiguousarray(sky), sources=tuple(truth))


def observed_spectrum(model: SlitSpectrograph, spectrum: SourceSpectrum, pixels: np.ndarray, across: float = 0.0,
                      oversample: int = 9) -> np.ndarray:
    """The spectrum (Jy) a perfect extraction of spectral pixels ``pixels`` recovers once
    path loss is corrected: the source's ``f_nu`` seen through the LSF, each pixel's light
    over its electrons per Jy (the truth the pipeline's ``_x1d`` is scored against)."""
    pixels = np.asarray(pixels, np.float64)
    if pixels.ndim != 1 or np.any(np.diff(pixels) != 1.0):
        raise ValueError("pixels must be consecutive and increasing")
    shift = across / model.pixel_scale
    fine, wl, e = _samples(model, spectrum, pixels.min() - 15.0, pixels.max() + 15.0, oversample)
    edges = np.append(pixels - 0.5, pixels[-1] + 0.5)
    centres, lsf = fine + shift, model.lsf_sigma(wl)
    if model.render_block is None:
        per_pixel = e @ _cell_fractions(centres, edges, lsf)
    else:  # block by block, each over the pixels its LSF reaches (10 sigma)
        per_pixel = np.zeros(pixels.size)
        for k in range(0, centres.size, model.render_block):
            part = slice(k, k + model.render_block)
            lo = min(max(int(math.floor(float(np.min(centres[part] - 10.0 * lsf[part])) - edges[0])), 0), pixels.size)
            hi = min(max(int(math.floor(float(np.max(centres[part] + 10.0 * lsf[part])) - edges[0])) + 1, lo),
                     pixels.size)
            per_pixel[lo:hi] += e[part] @ _cell_fractions(centres[part], edges[lo:hi + 1], lsf[part])
    return per_pixel / model.electrons_per_jy(pixels)
