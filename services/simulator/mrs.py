"""MIRI's medium-resolution spectrometer (MRS, ``MIR_MRS``) with known truth: an integral-field
unit whose image slicer cuts the field into slices, each dispersed along the rows of its
detector. This system's layout, not the instrument's: the facts below are round values of
the right order, chosen so that every part of the pipeline has something real to do.

Four channels, each an image slicer over its own field, all centred on the MRS reference
point (V2_REF, V3_REF of MIRIFUSHORT/MIRIFULONG in :mod:`shared.instruments`). Channels 1
and 2 fall on MIRIFUSHORT (left and right half), 3 and 4 on MIRIFULONG; an exposure takes
one band (SHORT, MEDIUM or LONG, the public A/B/C) of every channel of its detector at once.
Channels 1 and 4 take the detector's left half, 2 and 3 its right, as on the instrument.

=======  ======  ============  ==========  ============  ========  =====  ===========
channel  slices  slice width   along-      field along   columns   pitch  LSF sigma
                 (beta, ")     slice px "  the slice "   / slice          (rows)
=======  ======  ============  ==========  ============  ========  =====  ===========
1        21      0.177         0.196       3.2           17        20     0.9
2        17      0.280         0.196       4.0           21        24     1.0
3        16      0.390         0.245       5.2           22        25     1.3
4        12      0.656         0.273       6.6           25        28     2.0
=======  ======  ============  ==========  ============  ========  =====  ===========

Bands (um; the public MRS ranges, rounded): channel 1 4.90-5.74, 5.66-6.63, 6.53-7.65;
channel 2 7.51-8.77, 8.67-10.13, 10.02-11.70; channel 3 11.55-13.47, 13.34-15.57,
15.41-17.98; channel 4 17.70-20.95, 20.69-24.48, 24.19-27.90.

Coordinates: 0-based full-frame pixels (1032 columns, 1024 rows; columns 0-3 and 1028-1031
are reference pixels). Each channel has its own local frame on the sky, (alpha, beta)
arcsec from the field centre: ``alpha`` along the slices, ``beta`` across them.

- Slices: slice ``k`` (1 to n) of channel ``c`` is numbered ``100 c + k`` as in the public
  REGIONS files. It covers ``beta`` within ``beta_k +- width / 2``, ``beta_k = (k - (n + 1) / 2)
  width``, and ``alpha`` within ``+- length / 2`` (the slicer's ends stop the light beyond).
  Its image occupies ``columns`` consecutive detector columns, ``pitch`` columns from the
  previous slice's, the channel's slices centred in its half of the detector (columns
  4-515 for channels 1 and 4, 516-1027 for 2 and 3): column ``x`` sees ``alpha = (x - x_k) * along-slice px``, ``x_k`` the
  slice's centre column. The spectrum of a slice runs along the rows and does not tilt.
  Slices are numbered left to right.
- Wavelength: ``lambda_k(y) = c0 + c1 d + c2 d^2``, ``d = y - 511.5 - delta_k``, the band's
  ends at rows 6 and 1017 for ``delta_k = 0``, a curvature of 3 % of the band
  (``c2 = 0.03 (hi - lo) / 505.5^2``); the slices' spectra are shifted along the rows by
  ``delta_k = 0.8 (k - (n + 1) / 2) / ((n - 1) / 2)`` rows (+-0.8 at the outer slices).
  The wavelength does not depend on where in the slice the light enters (this model's
  slicer, and the public pipeline's assumption).
- Sky frame: ``V2 = V2_REF + alpha cos t + beta sin t``, ``V3 = V3_REF - alpha sin t + beta cos t``
  with ``t`` = 8.2 degrees for every channel.
- PSF: the simulator's diffraction-limited Gaussian (FWHM 0.0317" per um,
  :func:`services.simulator.optics.psf_fwhm_arcsec`). A point source at (alpha_s, beta_s)
  puts into slice ``k`` the fraction of its PSF within the slice's width (erf across
  beta), spread along alpha by the PSF and cut at the slicer's ends, and along the rows by
  the channel's line-spread function (a Gaussian of the tabled sigma, rows): resolving power
  about 3300 (channel 1) to 1700 (channel 4).
- Photometry: ``f_nu * 1e-26 / h * 25.4 m^2 * eta(lambda) * |dlambda/dy| / lambda``
  photo-electrons per second into one row (as the slit spectrographs,
  :mod:`services.simulator.spectrograph`), with ``eta = peak (1 - 0.2 u^2)``, ``u`` the
  offset from the band's middle in half-bands, peak 0.20, 0.18, 0.12, 0.05 (channels 1-4).
- Extended sources: circular Gaussians of surface brightness (MJy/sr at their centre times
  the spectrum's shape) whose spectrum differs from one to the next, so that the scene's
  spectrum varies across the field. A pixel gets the source seen through the PSF (a
  Gaussian of ``sigma^2 = sigma_source^2 + sigma_psf^2``), integrated over the part of its
  column's alpha range inside the slicer's field, over its slice's beta and its row's
  wavelengths: ``S * 1e6 / (206265")^2 * electrons_per_jy * area`` (lines of such sources
  are meant to be broader than the LSF; the LSF is not applied to them).
- Sky: a uniform surface brightness ``S(lambda)`` (the thermal background, a power law
  through 4 MJy/sr at 5 um and 300 MJy/sr at 25 um) over every slice's field.
- Fringes (:func:`fringe_transmission`, with ``render_mrs(..., fringes=True)``): the
  detector's substrate is a Fabry-Perot etalon; every pixel's light is multiplied by
  ``1 + A cos(2 pi D / lambda)`` averaged over the wavelengths its row sees, the optical
  path ``D = 2 n d`` (n 3.42, d 470 um: a fringe every 0.008 um at 5 um, about 10 rows;
  every 0.12 um at 20 um) and ``A`` 10 % on MIRIFUSHORT and 5 % on MIRIFULONG. The FRINGE
  reference holds that transmission exactly.

The truth the cube is scored against (:func:`truth_cube`, :func:`point_source_truth`): the
surface brightness seen through the PSF at each spaxel's centre, and a point source's
``f_nu`` seen through the LSF.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import erf

from services.simulator.optics import COLLECTING_AREA_M2, PLANCK_J_S, psf_fwhm_arcsec
from services.simulator.spectrograph import (
    ARCSEC_PER_RAD,
    JY_PER_MJY_SR_ARCSEC2,
    SourceSpectrum,
    _samples,
)
from shared.instruments import detector as detector_info

__all__ = [
    "BANDS",
    "CHANNELS",
    "FRAME_ANGLE_DEG",
    "MRS_EXP_TYPE",
    "N_COLUMNS",
    "N_ROWS",
    "ROW_CENTRE",
    "ExtendedSource",
    "MrsChannel",
    "MrsSlice",
    "PointSource",
    "RenderedMrs",
    "alpha_beta_to_v2v3",
    "channels_on",
    "fringe_transmission",
    "point_source_truth",
    "reference_point",
    "render_mrs",
    "slice_map",
    "truth_cube",
    "v2v3_to_alpha_beta",
]

MRS_EXP_TYPE = "MIR_MRS"
BANDS = ("SHORT", "MEDIUM", "LONG")
N_COLUMNS, N_ROWS = 1032, 1024
REFERENCE_COLUMNS = 4
ROW_CENTRE = 511.5
_BAND_ROWS = (6.0, 1017.0)  # rows of a band's ends (delta_k = 0)
_CURVATURE = 0.03
FRAME_ANGLE_DEG = 8.2
SKY_LEVELS = ((5.0, 4.0), (25.0, 300.0))  # (um, MJy/sr)
_SQRT2 = math.sqrt(2.0)
_SIGMA_PER_FWHM = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))


@dataclass(frozen=True)
class MrsChannel:
    """One channel's slicer and spectrometer (module docstring)."""

    channel: int
    detector: str
    n_slices: int
    slice_width: float  # arcsec, across the slices (beta)
    alpha_scale: float  # arcsec per detector column, along the slices
    field_length: float  # arcsec, the slicer's length along alpha
    columns: int  # detector columns of one slice's image
    pitch: int  # columns from one slice's first column to the next's
    lsf_sigma: float  # rows
    peak_throughput: float
    bands: dict  # band name -> (shortest, longest) um

    @property
    def first_column(self) -> int:
        """0-based full-frame column of slice 1's first column: the slices centred in the
        channel's half of the detector (columns 4-515 for channels 1 and 4, 516-1027 for 2
        and 3, the halves the public pipeline's cube_build reads for each channel)."""
        half = N_COLUMNS // 2
        start = REFERENCE_COLUMNS if self.channel in (1, 4) else half
        usable = half - REFERENCE_COLUMNS
        used = (self.n_slices - 1) * self.pitch + self.columns
        return start + (usable - used) // 2

    def slice(self, k: int, band: str) -> MrsSlice:
        """Slice ``k`` (1 to ``n_slices``) in ``band``."""
        if not 1 <= k <= self.n_slices:
            raise ValueError(f"channel {self.channel} has slices 1-{self.n_slices}, not {k}")
        if band not in self.bands:
            raise ValueError(f"band must be one of {', '.join(BANDS)}, got {band!r}")
        return MrsSlice(self, k, band)

    def slices(self, band: str) -> tuple[MrsSlice, ...]:
        return tuple(self.slice(k, band) for k in range(1, self.n_slices + 1))

    @property
    def beta_extent(self) -> float:
        """The field across the slices, arcsec."""
        return self.n_slices * self.slice_width

    def sky(self, wavelength: np.ndarray) -> np.ndarray:
        """The default sky, MJy/sr (module docstring)."""
        (w1, s1), (w2, s2) = SKY_LEVELS
        slope = math.log(s2 / s1) / math.log(w2 / w1)
        return s1 * (np.asarray(wavelength, np.float64) / w1) ** slope

    def psf_sigma(self, wavelength: np.ndarray) -> np.ndarray:
        """Sigma of the PSF, arcsec."""
        return psf_fwhm_arcsec(np.asarray(wavelength, np.float64)) * _SIGMA_PER_FWHM


@dataclass(frozen=True)
class MrsSlice:
    """Slice ``k`` of a channel in one band: its place on the detector and on the sky, its
    wavelengths (the spectral pixel is the detector row)."""

    channel: MrsChannel
    k: int
    band: str

    @property
    def number(self) -> int:
        """The public slice number, ``100 * channel + k``."""
        return 100 * self.channel.channel + self.k

    @property
    def first_column(self) -> int:
        return self.channel.first_column + (self.k - 1) * self.channel.pitch

    @property
    def x_centre(self) -> float:
        """0-based full-frame column where alpha = 0."""
        return self.first_column + 0.5 * (self.channel.columns - 1)

    @property
    def beta(self) -> float:
        """beta of the slice's centre line, arcsec."""
        return (self.k - 0.5 * (self.channel.n_slices + 1)) * self.channel.slice_width

    @property
    def row_shift(self) -> float:
        half = 0.5 * (self.channel.n_slices - 1)
        return 0.8 * (self.k - 0.5 * (self.channel.n_slices + 1)) / half

    @property
    def coefficients(self) -> tuple[float, float, float]:
        """(c0, c1, c2) of ``lambda(d) = c0 + c1 d + c2 d^2``, ``d = y - 511.5 - row_shift``."""
        lo, hi = self.channel.bands[self.band]
        half_rows = 0.5 * (_BAND_ROWS[1] - _BAND_ROWS[0])
        c2 = _CURVATURE * (hi - lo) / half_rows**2
        c1 = (hi - lo) / (2.0 * half_rows)
        c0 = 0.5 * (lo + hi) - c2 * half_rows**2
        return c0, c1, c2

    def alpha(self, x: np.ndarray) -> np.ndarray:
        """alpha (arcsec) seen by column ``x``."""
        return (np.asarray(x, np.float64) - self.x_centre) * self.channel.alpha_scale

    def column(self, alpha: np.ndarray) -> np.ndarray:
        return np.asarray(alpha, np.float64) / self.channel.alpha_scale + self.x_centre

    def wavelength(self, y: np.ndarray) -> np.ndarray:
        """Wavelength (um) at row ``y``."""
        c0, c1, c2 = self.coefficients
        d = np.asarray(y, np.float64) - ROW_CENTRE - self.row_shift
        return c0 + c1 * d + c2 * d * d

    def dispersion(self, y: np.ndarray) -> np.ndarray:
        """d lambda / dy, um per row."""
        _, c1, c2 = self.coefficients
        return c1 + 2.0 * c2 * (np.asarray(y, np.float64) - ROW_CENTRE - self.row_shift)

    def pixel(self, wavelength: np.ndarray) -> np.ndarray:
        """The row of ``wavelength`` (um)."""
        c0, c1, c2 = self.coefficients
        u = np.asarray(wavelength, np.float64) - c0
        d = 2.0 * u / (c1 + np.sqrt(c1 * c1 + 4.0 * c2 * u))
        return d + ROW_CENTRE + self.row_shift

    def resolution_element(self, wavelength: np.ndarray) -> np.ndarray:
        """FWHM of the line-spread function, um."""
        return self.channel.lsf_sigma / _SIGMA_PER_FWHM * np.abs(self.dispersion(self.pixel(wavelength)))

    def throughput(self, wavelength: np.ndarray) -> np.ndarray:
        lo, hi = self.channel.bands[self.band]
        u = (np.asarray(wavelength, np.float64) - 0.5 * (lo + hi)) / (0.5 * (hi - lo))
        return self.channel.peak_throughput * (1.0 - 0.2 * u * u)

    def electrons_per_jy(self, y: np.ndarray) -> np.ndarray:
        """Photo-electrons per second into row ``y`` of the slice from 1 Jy that the slice
        passes whole."""
        wl = self.wavelength(y)
        return 1.0e-26 / PLANCK_J_S * COLLECTING_AREA_M2 * self.throughput(wl) * np.abs(self.dispersion(y)) / wl

    def transmission(self, wavelength: np.ndarray, beta: float) -> np.ndarray:
        """Fraction of a point source's light at ``beta`` (arcsec) the slice passes."""
        sigma = self.channel.psf_sigma(wavelength) * _SQRT2
        half = 0.5 * self.channel.slice_width
        across = beta - self.beta
        return 0.5 * (erf((half - across) / sigma) + erf((half + across) / sigma))

    def alpha_edges(self, x0: int, nx: int) -> np.ndarray:
        """alpha (arcsec) of the edges of columns ``x0 .. x0 + nx - 1``, clipped to the
        slicer's field (columns beyond it get no light)."""
        half = 0.5 * self.channel.field_length
        edges = self.alpha(np.arange(x0, x0 + nx + 1, dtype=np.float64) - 0.5)
        return np.clip(edges, -half, half)

    @property
    def column_range(self) -> tuple[int, int]:
        """First and last (inclusive) 0-based column of the slice's image."""
        return self.first_column, self.first_column + self.channel.columns - 1


CHANNELS: dict[int, MrsChannel] = {
    1: MrsChannel(1, "MIRIFUSHORT", 21, 0.177, 0.196, 3.2, 17, 20, 0.9, 0.20,
                  {"SHORT": (4.90, 5.74), "MEDIUM": (5.66, 6.63), "LONG": (6.53, 7.65)}),
    2: MrsChannel(2, "MIRIFUSHORT", 17, 0.280, 0.196, 4.0, 21, 24, 1.0, 0.18,
                  {"SHORT": (7.51, 8.77), "MEDIUM": (8.67, 10.13), "LONG": (10.02, 11.70)}),
    3: MrsChannel(3, "MIRIFULONG", 16, 0.390, 0.245, 5.2, 22, 25, 1.3, 0.12,
                  {"SHORT": (11.55, 13.47), "MEDIUM": (13.34, 15.57), "LONG": (15.41, 17.98)}),
    4: MrsChannel(4, "MIRIFULONG", 12, 0.656, 0.273, 6.6, 25, 28, 2.0, 0.05,
                  {"SHORT": (17.70, 20.95), "MEDIUM": (20.69, 24.48), "LONG": (24.19, 27.90)}),
}


def channels_on(detector: str) -> tuple[MrsChannel, MrsChannel]:
    """The two channels a detector holds: (1, 2) on MIRIFUSHORT, (3, 4) on MIRIFULONG."""
    name = str(detector).upper()
    found = tuple(c for c in CHANNELS.values() if c.detector == name)
    if len(found) != 2:
        raise ValueError(f"the MRS detectors are MIRIFUSHORT and MIRIFULONG, not {detector!r}")
    return found  # type: ignore[return-value]


def reference_point(detector: str) -> tuple[float, float]:
    """(V2_REF, V3_REF) arcsec of the MRS field centre."""
    info = detector_info(detector)
    return float(info.v2_ref), float(info.v3_ref)


def alpha_beta_to_v2v3(alpha, beta, detector: str = "MIRIFUSHORT") -> tuple[np.ndarray, np.ndarray]:
    """(V2, V3) arcsec of local (alpha, beta) arcsec (module docstring)."""
    v2_ref, v3_ref = reference_point(detector)
    t = math.radians(FRAME_ANGLE_DEG)
    a, b = np.asarray(alpha, np.float64), np.asarray(beta, np.float64)
    return v2_ref + a * math.cos(t) + b * math.sin(t), v3_ref - a * math.sin(t) + b * math.cos(t)


def v2v3_to_alpha_beta(v2, v3, detector: str = "MIRIFUSHORT") -> tuple[np.ndarray, np.ndarray]:
    """The inverse of :func:`alpha_beta_to_v2v3`."""
    v2_ref, v3_ref = reference_point(detector)
    t = math.radians(FRAME_ANGLE_DEG)
    du, dv = np.asarray(v2, np.float64) - v2_ref, np.asarray(v3, np.float64) - v3_ref
    return du * math.cos(t) - dv * math.sin(t), du * math.sin(t) + dv * math.cos(t)


def slice_map(detector: str, band: str) -> np.ndarray:
    """(1024, 1032) int32: the slice number (``100 c + k``) of each pixel inside a slice's
    image (its ``columns`` columns, every row), 0 elsewhere."""
    out = np.zeros((N_ROWS, N_COLUMNS), np.int32)
    for channel in channels_on(detector):
        for sl in channel.slices(band):
            lo, hi = sl.column_range
            out[:, lo:hi + 1] = sl.number
    return out


@dataclass(frozen=True)
class PointSource:
    """A point source at (``alpha``, ``beta``) arcsec of the channel's local frame (the
    same for every channel: they share their centre and orientation)."""

    spectrum: SourceSpectrum
    alpha: float = 0.0
    beta: float = 0.0


@dataclass(frozen=True)
class ExtendedSource:
    """A circular Gaussian of surface brightness: ``spectrum(lambda)`` MJy/sr at its centre
    (``SourceSpectrum.flux_jy`` read as MJy/sr), ``sigma`` arcsec, centred at (``alpha``,
    ``beta``)."""

    spectrum: SourceSpectrum
    sigma: float
    alpha: float = 0.0
    beta: float = 0.0

    def seen(self, alpha, beta, wavelength) -> np.ndarray:
        """Surface brightness (MJy/sr) seen through the PSF at (alpha, beta) arcsec and
        ``wavelength`` um (broadcast)."""
        wl = np.asarray(wavelength, np.float64)
        s2 = self.sigma**2 + (psf_fwhm_arcsec(wl) * _SIGMA_PER_FWHM) ** 2
        r2 = (np.asarray(alpha, np.float64) - self.alpha) ** 2 + (np.asarray(beta, np.float64) - self.beta) ** 2
        return self.spectrum(wl) * self.sigma**2 / s2 * np.exp(-0.5 * r2 / s2)


@dataclass(frozen=True)
class RenderedMrs:
    """An MRS scene on one detector: ``image`` (1024, 1032) photo-electrons per second per
    pixel (sky included) and ``sky`` its sky part."""

    image: np.ndarray
    sky: np.ndarray


def _gaussian_cells(centre: np.ndarray, sigma: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Fraction of unit Gaussians (``centre``, ``sigma`` of shape (n,)) between consecutive
    ``edges`` (m + 1,) (clipped edges give empty cells): (n, m)."""
    z = (edges[None, :] - centre[:, None]) / (sigma[:, None] * _SQRT2)
    return 0.5 * np.diff(erf(z), axis=1)


def _render_point(image: np.ndarray, sl: MrsSlice, src: PointSource, oversample: int) -> None:
    lo_col, hi_col = sl.column_range
    nx = hi_col - lo_col + 1
    fine, wl, electrons = _samples(sl, src.spectrum, _BAND_ROWS[0] - 6.0, _BAND_ROWS[1] + 6.0, oversample)
    electrons = electrons * sl.transmission(wl, src.beta)
    if not np.any(electrons > 0):
        return
    alpha_edges = sl.alpha_edges(lo_col, nx)
    along = _gaussian_cells(np.full(wl.shape, src.alpha), sl.channel.psf_sigma(wl), alpha_edges)  # (n, nx)
    lsf = np.full(wl.shape, sl.channel.lsf_sigma)
    block = 512
    for k in range(0, fine.size, block):
        part = slice(k, k + block)
        first = max(int(math.floor(float(fine[part].min()) - 10.0 * sl.channel.lsf_sigma)), 0)
        last = min(int(math.ceil(float(fine[part].max()) + 10.0 * sl.channel.lsf_sigma)), N_ROWS - 1)
        if last < first:
            continue
        row_edges = np.arange(first, last + 2, dtype=np.float64) - 0.5
        rows = _gaussian_cells(fine[part], lsf[part], row_edges)  # (n, nrows)
        image[first:last + 1, lo_col:hi_col + 1] += (rows * electrons[part, None]).T @ along[part]


def _render_extended(image: np.ndarray, sl: MrsSlice, src: ExtendedSource) -> None:
    lo_col, hi_col = sl.column_range
    nx = hi_col - lo_col + 1
    rows = np.arange(N_ROWS, dtype=np.float64)
    wl_edges = sl.wavelength(np.arange(N_ROWS + 1, dtype=np.float64) - 0.5)
    wl = sl.wavelength(rows)
    mean = src.spectrum.average(wl_edges[:-1], wl_edges[1:])  # MJy/sr at the centre, per row
    psf = sl.channel.psf_sigma(wl)
    s = np.sqrt(src.sigma**2 + psf**2)  # (rows,)
    peak = mean * src.sigma**2 / s**2
    half_w = 0.5 * sl.channel.slice_width
    # integral over the slice's beta of exp(-(beta - b0)^2 / 2 s^2), arcsec
    across = s * math.sqrt(math.pi / 2.0) * (erf((sl.beta + half_w - src.beta) / (_SQRT2 * s))
                                             - erf((sl.beta - half_w - src.beta) / (_SQRT2 * s)))
    edges = sl.alpha_edges(lo_col, nx)
    along = (s[:, None] * math.sqrt(math.pi / 2.0)
             * np.diff(erf((edges[None, :] - src.alpha) / (_SQRT2 * s[:, None])), axis=1))  # (rows, nx) arcsec
    per_arcsec2 = peak * JY_PER_MJY_SR_ARCSEC2 * sl.electrons_per_jy(rows)
    image[:, lo_col:hi_col + 1] += (per_arcsec2 * across)[:, None] * along


def _render_sky(image: np.ndarray, sl: MrsSlice, sky_mjy_sr) -> None:
    lo_col, hi_col = sl.column_range
    nx = hi_col - lo_col + 1
    rows = np.arange(N_ROWS, dtype=np.float64)
    wl_edges = sl.wavelength(np.arange(N_ROWS + 1, dtype=np.float64) - 0.5)
    level = np.asarray(sky_mjy_sr(0.5 * (wl_edges[:-1] + wl_edges[1:])), np.float64)
    widths = np.diff(sl.alpha_edges(lo_col, nx))  # arcsec of field each column sees
    per_row = level * JY_PER_MJY_SR_ARCSEC2 * sl.electrons_per_jy(rows) * sl.channel.slice_width
    image[:, lo_col:hi_col + 1] += per_row[:, None] * widths[None, :]


FRINGE_PATH_UM = 2.0 * 3.42 * 470.0  # 2 n d of the detector's substrate
FRINGE_AMPLITUDE = {"MIRIFUSHORT": 0.10, "MIRIFULONG": 0.05}


def fringe_transmission(detector: str, band: str, *, subsamples: int = 8) -> np.ndarray:
    """(N_ROWS, N_COLUMNS) the fraction of its light each pixel of ``detector`` keeps in
    ``band`` through the fringes (module docstring), averaged over ``subsamples`` of the
    row's wavelengths; 1 off the slices."""
    band = str(band).upper()
    amplitude = FRINGE_AMPLITUDE[str(detector).upper()]
    out = np.ones((N_ROWS, N_COLUMNS), np.float64)
    within = (np.arange(subsamples) + 0.5) / subsamples - 0.5
    rows = np.arange(N_ROWS, dtype=np.float64)[:, None] + within[None, :]
    for channel in channels_on(detector):
        for sl in channel.slices(band):
            lo, hi = sl.column_range
            phase = 2.0 * math.pi * FRINGE_PATH_UM / sl.wavelength(rows)
            out[:, lo:hi + 1] = (1.0 + amplitude * np.cos(phase).mean(axis=1))[:, None]
    return out


def render_mrs(detector: str, band: str, points=(), extended=(), *, sky_mjy_sr="default",
               oversample: int = 5, fringes: bool = False) -> RenderedMrs:
    """The electron rate an MRS scene puts on ``detector`` (MIRIFUSHORT or MIRIFULONG) in
    ``band``: point sources (:class:`PointSource`), extended sources
    (:class:`ExtendedSource`) and the sky (a function of wavelength um -> MJy/sr; "default"
    the module's thermal background, None none), through each of the detector's two
    channels (module docstring), and through the detector's fringes when ``fringes``.
    Point sources' spectra are sampled ``oversample`` times per row (finer over narrow
    lines)."""
    band = str(band).upper()
    image = np.zeros((N_ROWS, N_COLUMNS), np.float64)
    sky = np.zeros_like(image)
    for channel in channels_on(detector):
        sky_fn = channel.sky if isinstance(sky_mjy_sr, str) and sky_mjy_sr == "default" else sky_mjy_sr
        for sl in channel.slices(band):
            for src in points:
                if abs(src.beta - sl.beta) < 0.5 * channel.slice_width + 6.0 * float(channel.psf_sigma(30.0)):
                    _render_point(image, sl, src, oversample)
            for src in extended:
                _render_extended(image, sl, src)
            if sky_fn is not None:
                _render_sky(sky, sl, sky_fn)
    image += sky
    if fringes:
        transmission = fringe_transmission(detector, band)
        image *= transmission
        sky *= transmission
    return RenderedMrs(image=image, sky=sky)


def truth_cube(sources, alpha, beta, wavelength) -> np.ndarray:
    """The extended sources' surface brightness (MJy/sr) seen through the PSF at (alpha,
    beta) arcsec of the channels' local frame and ``wavelength`` um, broadcast together
    (e.g. a cube's spaxel centres (1, ny, nx) and its wavelengths (nw, 1, 1))."""
    out = 0.0
    for src in sources:
        out = out + src.seen(alpha, beta, wavelength)
    return np.asarray(out, np.float64)


def point_source_truth(src: PointSource, sl: MrsSlice, rows: np.ndarray, oversample: int = 9) -> np.ndarray:
    """The spectrum (Jy) of a point source that a perfect extraction of rows ``rows`` of
    slice ``sl``'s wavelengths recovers: its ``f_nu`` seen through the channel's LSF, each
    row's light over its electrons per Jy."""
    rows = np.asarray(rows, np.float64)
    if rows.ndim != 1 or np.any(np.diff(rows) != 1.0):
        raise ValueError("rows must be consecutive and increasing")
    fine, _wl, e = _samples(sl, src.spectrum, rows.min() - 15.0, rows.max() + 15.0, oversample)
    edges = np.append(rows - 0.5, rows[-1] + 0.5)
    per_row = e @ _gaussian_cells(fine, np.full(fine.shape, sl.channel.lsf_sigma), edges)
    return per_row / sl.electrons_per_jy(rows)


def pixel_area_sr(channel: MrsChannel) -> float:
    """Sky solid angle one pixel sees (along-slice pixel x slice width), steradians."""
    return channel.alpha_scale * channel.slice_width / ARCSEC_PER_RAD**2
