"""The MIRI low-resolution spectrometer's slit (LRS, ``MIR_LRS-FIXEDSLIT``): a model of the
spectrograph with known truth, the dispersed scene it makes on the MIRIMAGE detector, and
the reference files that carry the same facts to the pipeline.

Geometry (full-frame pixels of MIRIMAGE, 1-based in the reference files as in the public
ones, 0-based in the functions here):

- The slit is 0.51" wide and 4.7" long; its centre images at (``IMX``, ``IMY``) =
  (326.13, 300.70). The slit runs along detector x; the prism disperses along y.
- Wavelength of the trace centre at row y: ``lambda(d) = 7.5 - 0.0285 d + 5.5e-5 d^2``
  micrometres with ``d = y - (IMY - 1)``: 14.9 um near row 111, 5.0 um near row 411,
  0.049 to 0.016 um per pixel. It is the same along a row (the spectral axis is y).
- The trace drifts across x: the slit centre images at ``x = IMX - 1 + 0.004 d + 2e-6 d^2``.
- Spatial scale 0.11" per pixel along the slit; the slit is 0.51 / 0.11 = 4.6 rows wide.

Optics: the PSF is the simulator's diffraction-limited Gaussian (FWHM 0.0317" per um,
:func:`services.simulator.optics.psf_fwhm_arcsec`). Along the slit a point source has that
profile; along the dispersion its line-spread function (LSF) is a Gaussian of
``sigma^2 = sigma_psf^2 + 1 px^2`` (the detector's own blur; the part of the PSF the slit
passes, for a source near the slit centre). A point source at offset ``delta`` across the
slit loses light at the slit jaws: the slit passes
``0.5 [erf((w/2 - delta) / (sqrt 2 sigma_psf)) + erf((w/2 + delta) / (sqrt 2 sigma_psf))]``
(the path loss); its spectrum moves by ``delta`` rows.

Photometry: a source of flux density ``f_nu`` (Jy) puts
``f_nu * 1e-26 / h * 25.4 m^2 * eta(lambda) * |dlambda/dy| / lambda`` photo-electrons per
second into one row (the photon rate per unit ln nu, times the row's ln-wavelength width),
before the slit loss, with the prism's total throughput
``eta = 0.22 exp(-((lambda - 7.5 um) / 4 um)^2 / 2)``. A uniform sky of surface brightness
``S`` (MJy/sr) fills the slit: a pixel under it gets ``S`` times the sky area one pixel
sees through the slit (0.11" x 0.51") in the same electrons per Jy.

Reference files (written by :func:`write_lrs_references`, public formats):

- SPECWCS (``MiriLRSSpecwcsModel``, FITS, table WAVETABLE, IMX/IMY): per wavelength element
  of one row, the trace centre and the corners of the element relative to (IMX, IMY): the
  slit's length along x, the row along y (the public pipeline bounds the spectrum by them).
- PHOTOM (``MirLrsPhotomModel``): PHOTMJSR and RELRESPONSE(lambda) such that a flat-fielded
  rate (DN/s) times ``PHOTMJSR * RELRESPONSE`` is MJy/sr per nominal pixel, calibrated for a
  point source with no slit loss: ``sum over the slit's pixels of SB * PIXAR_SR * 1e6`` is
  ``f_nu`` in Jy.
- PATHLOSS (``MirLrsPathlossModel``): per wavelength, the correction (1 / the fraction of
  a point source's light the slit passes) as a function of its position in the slit
  (across x along, pixels from the slit centre: the WCS of the PATHLOSS extension).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.special import erf
from stdatamodels.jwst import datamodels as dm

from services.simulator.optics import COLLECTING_AREA_M2, PLANCK_J_S, psf_fwhm_arcsec
from services.simulator.reffiles import ReferenceFile, _common, _save

__all__ = [
    "LRS",
    "LRS_EXP_TYPE",
    "LrsModel",
    "SlitSource",
    "SourceSpectrum",
    "SpectralLine",
    "observed_spectrum",
    "render_slit",
    "sky_spectrum",
    "write_lrs_references",
]

ARCSEC_PER_RAD = 206264.80624709636
_SIGMA_PER_FWHM = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))
JY_PER_MJY_SR_ARCSEC2 = 1.0e6 / ARCSEC_PER_RAD**2  # 1 MJy/sr over one arcsec^2, in Jy


@dataclass(frozen=True)
class SpectralLine:
    """A Gaussian emission (``strength`` > 0) or absorption (< 0) line: its centre (um),
    its intrinsic FWHM (um) and its peak relative to the continuum."""

    wavelength: float
    fwhm: float
    strength: float


@dataclass(frozen=True)
class SourceSpectrum:
    """A continuum ``f_nu = flux_jy * (lambda / 7.5 um) ** slope`` (Jy) times lines."""

    flux_jy: float
    slope: float = 0.0
    lines: tuple[SpectralLine, ...] = ()

    def __call__(self, wavelength: np.ndarray) -> np.ndarray:
        wl = np.asarray(wavelength, np.float64)
        profile = np.ones_like(wl)
        for line in self.lines:
            sigma = line.fwhm * _SIGMA_PER_FWHM
            profile += line.strength * np.exp(-0.5 * ((wl - line.wavelength) / sigma) ** 2)
        return self.flux_jy * (wl / 7.5) ** self.slope * profile


@dataclass(frozen=True)
class SlitSource:
    """A point source in the slit: its spectrum and where it sits (arcsec from the slit
    centre, ``along`` the slit and ``across`` it)."""

    spectrum: SourceSpectrum
    along: float = 0.0
    across: float = 0.0


@dataclass(frozen=True)
class LrsModel:
    """The MIRI LRS slit spectrograph (see the module docstring)."""

    imx: float = 326.13  # 1-based full-frame column of the slit centre
    imy: float = 300.70  # 1-based full-frame row of the slit centre
    slit_width: float = 0.51  # arcsec, across the slit (along the dispersion)
    slit_length: float = 4.7  # arcsec
    pixel_scale: float = 0.11  # arcsec per pixel along the slit
    wave_coeffs: tuple[float, float, float] = (7.5, -0.0285, 5.5e-5)
    trace_coeffs: tuple[float, float, float] = (0.0, 0.004, 2.0e-6)
    rows: tuple[int, int] = (111, 411)  # 0-based full-frame rows the spectrum covers
    detector_sigma: float = 1.0  # px, the detector's own blur along the dispersion
    peak_throughput: float = 0.22
    throughput_centre: float = 7.5
    throughput_width: float = 4.0
    filter: str = "P750L"
    detector: str = "MIRIMAGE"

    # -- geometry ---------------------------------------------------------------------
    def _d(self, y: np.ndarray) -> np.ndarray:
        return np.asarray(y, np.float64) - (self.imy - 1.0)

    def wavelength(self, y: np.ndarray) -> np.ndarray:
        """Wavelength (um) at 0-based full-frame row ``y`` of a source centred in the slit."""
        d = self._d(y)
        c0, c1, c2 = self.wave_coeffs
        return c0 + c1 * d + c2 * d * d

    def dispersion(self, y: np.ndarray) -> np.ndarray:
        """|d lambda / d y| in um per pixel."""
        d = self._d(y)
        return np.abs(self.wave_coeffs[1] + 2.0 * self.wave_coeffs[2] * d)

    def row(self, wavelength: np.ndarray) -> np.ndarray:
        """The 0-based row of ``wavelength`` (um) for a source centred in the slit."""
        c0, c1, c2 = self.wave_coeffs
        wl = np.asarray(wavelength, np.float64)
        # c2 d^2 + c1 d + (c0 - wl) = 0, the root on the monotonic branch
        d = (-c1 - np.sqrt(c1 * c1 - 4.0 * c2 * (c0 - wl))) / (2.0 * c2)
        return d + (self.imy - 1.0)

    def trace_x(self, y: np.ndarray) -> np.ndarray:
        """0-based full-frame column where the slit centre images at row ``y``."""
        d = self._d(y)
        t0, t1, t2 = self.trace_coeffs
        return (self.imx - 1.0) + t0 + t1 * d + t2 * d * d

    @property
    def slit_width_px(self) -> float:
        return self.slit_width / self.pixel_scale

    @property
    def pixel_area_sr(self) -> float:
        return (self.pixel_scale / ARCSEC_PER_RAD) ** 2

    # -- optics -----------------------------------------------------------------------
    def psf_sigma(self, wavelength: np.ndarray) -> np.ndarray:
        """Sigma of the PSF in pixels (arcsec / pixel scale)."""
        wl = np.asarray(wavelength, np.float64)
        return np.vectorize(psf_fwhm_arcsec)(wl) * _SIGMA_PER_FWHM / self.pixel_scale

    def lsf_sigma(self, wavelength: np.ndarray) -> np.ndarray:
        """Sigma of the line-spread function along the dispersion, pixels."""
        return np.hypot(self.psf_sigma(wavelength), self.detector_sigma)

    def resolution_element(self, wavelength: np.ndarray) -> np.ndarray:
        """FWHM of the LSF in micrometres."""
        wl = np.asarray(wavelength, np.float64)
        return self.lsf_sigma(wl) / _SIGMA_PER_FWHM * self.dispersion(self.row(wl))

    def throughput(self, wavelength: np.ndarray) -> np.ndarray:
        wl = np.asarray(wavelength, np.float64)
        return self.peak_throughput * np.exp(-0.5 * ((wl - self.throughput_centre) / self.throughput_width) ** 2)

    def slit_transmission(self, wavelength: np.ndarray, across: float | np.ndarray = 0.0) -> np.ndarray:
        """Fraction of a point source's light the slit passes (its path loss) at offset
        ``across`` (arcsec) from the slit's centre line."""
        sigma = self.psf_sigma(wavelength) * self.pixel_scale * math.sqrt(2.0)
        half = 0.5 * self.slit_width
        return 0.5 * (erf((half - across) / sigma) + erf((half + across) / sigma))

    def electrons_per_jy(self, y: np.ndarray) -> np.ndarray:
        """Photo-electrons per second into row ``y`` from a 1 Jy source centred in the
        slit, before the slit loss."""
        wl = self.wavelength(y)
        return (1.0e-26 / PLANCK_J_S * COLLECTING_AREA_M2 * self.throughput(wl)
                * self.dispersion(y) / wl)

    def sky_electrons(self, y: np.ndarray, sky_mjy_sr: np.ndarray) -> np.ndarray:
        """Photo-electrons per second per pixel under a uniform sky (MJy/sr) filling the slit."""
        area = self.pixel_scale * self.slit_width  # arcsec^2 of sky one pixel sees
        return np.asarray(sky_mjy_sr) * JY_PER_MJY_SR_ARCSEC2 * area * self.electrons_per_jy(y)

    def photmjsr(self, g0: float) -> tuple[float, np.ndarray, np.ndarray]:
        """PHOTOM's PHOTMJSR and the (wavelength, RELRESPONSE) table for detectors of mean
        gain ``g0`` (e-/DN): a flat-fielded pixel is (e-/s per nominal pixel) / g0."""
        y = np.arange(self.rows[0], self.rows[1] + 1, dtype=np.float64)
        wl = self.wavelength(y)
        mjysr = g0 / (self.electrons_per_jy(y) * self.pixel_area_sr * 1.0e6)
        ref = float(np.interp(self.throughput_centre, wl[::-1], mjysr[::-1]))
        order = np.argsort(wl)
        return ref, wl[order], mjysr[order] / ref


LRS = LrsModel()


def sky_spectrum(wavelength: np.ndarray, at_5um: float = 5.0, at_14um: float = 60.0) -> np.ndarray:
    """A thermal-like background in MJy/sr: a power law through the two given levels."""
    wl = np.asarray(wavelength, np.float64)
    slope = math.log(at_14um / at_5um) / math.log(14.0 / 5.0)
    return at_5um * (wl / 5.0) ** slope


def _cell_fractions(centre: np.ndarray, edges: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Fraction of unit Gaussians (one per row: ``centre``, ``sigma`` of shape (n,)) in
    each cell between consecutive ``edges`` (m+1,): shape (n, m)."""
    z = (edges[None, :] - centre[:, None]) / (sigma[:, None] * math.sqrt(2.0))
    return 0.5 * np.diff(erf(z), axis=1)


@dataclass(frozen=True)
class RenderedSlit:
    """A dispersed slit scene: ``image`` (ny, nx) photo-electrons per second per pixel of
    the window; per source its path loss and the wavelength grid of its truth."""

    image: np.ndarray
    sky: np.ndarray
    sources: tuple[dict, ...]


def render_slit(
    model: LrsModel,
    sources: list[SlitSource],
    window: tuple[int, int, int, int],
    *,
    sky_mjy_sr=None,
    oversample: int = 5,
) -> RenderedSlit:
    """The electron rate the slit puts on a window (``xstart, ystart, xsize, ysize``,
    0-based full-frame start) of the detector.

    Each source's spectrum is sampled on a grid ``oversample`` times finer than the rows,
    each sample's light spread along the dispersion by the LSF and along the slit by the
    PSF (both integrated over pixels), cut by the slit's transmission at the source's
    offset across it, and moved by that offset along the dispersion. ``sky_mjy_sr`` is a
    function of wavelength (um) -> MJy/sr (None: no sky).
    """
    x0, y0, nx, ny = window
    image = np.zeros((ny, nx), np.float64)
    half_len = 0.5 * model.slit_length / model.pixel_scale
    lo, hi = model.rows
    fine = np.arange(lo - 10.0, hi + 10.0, 1.0 / oversample) + 0.5 / oversample
    wl = model.wavelength(fine)
    keep = wl > 0.5
    fine, wl = fine[keep], wl[keep]
    per_jy = model.electrons_per_jy(fine) / oversample  # each fine sample covers 1/oversample row
    col_edges = np.arange(x0, x0 + nx + 1, dtype=np.float64) - 0.5
    row_edges = np.arange(y0, y0 + ny + 1, dtype=np.float64) - 0.5
    truth = []
    for src in sources:
        shift = src.across / model.pixel_scale  # rows: the source's offset across the slit
        passed = model.slit_transmission(wl, src.across)
        electrons = src.spectrum(wl) * per_jy * passed  # e-/s of each fine sample
        yc = fine + shift
        xc = model.trace_x(yc) + src.along / model.pixel_scale
        along = _cell_fractions(xc, col_edges, model.psf_sigma(wl))  # (n, nx)
        disp = _cell_fractions(yc, row_edges, model.lsf_sigma(wl))  # (n, ny)
        image += np.einsum("n,ny,nx->yx", electrons, disp, along, optimize=True)
        truth.append({"along": src.along, "across": src.across, "shift_rows": shift})
    sky = np.zeros_like(image)
    if sky_mjy_sr is not None:
        rows = np.arange(y0, y0 + ny, dtype=np.float64)
        cols = np.arange(x0, x0 + nx, dtype=np.float64)
        level = model.sky_electrons(rows, sky_mjy_sr(model.wavelength(rows)))
        # the slit's image: |x - trace| within half its length, edges smoothed by the PSF
        sig = model.psf_sigma(model.wavelength(rows))[:, None] * math.sqrt(2.0)
        dx = cols[None, :] - model.trace_x(rows)[:, None]
        inside = 0.5 * (erf((half_len - dx) / sig) + erf((half_len + dx) / sig))
        inside[(rows < lo - 5) | (rows > hi + 5), :] = 0.0
        sky = level[:, None] * inside
    return RenderedSlit(image=image + sky, sky=sky, sources=tuple(truth))


def observed_spectrum(model: LrsModel, spectrum: SourceSpectrum, rows: np.ndarray, across: float = 0.0,
                      oversample: int = 9) -> np.ndarray:
    """The spectrum (Jy) a perfect extraction of rows ``rows`` recovers once path loss is
    corrected: the source's ``f_nu`` seen through the LSF, each row's light over its
    electrons per Jy (the truth the pipeline's ``_x1d`` is scored against)."""
    rows = np.asarray(rows, np.float64)
    if rows.ndim != 1 or np.any(np.diff(rows) != 1.0):
        raise ValueError("rows must be consecutive and increasing")
    shift = across / model.pixel_scale
    fine = np.arange(rows.min() - 15.0, rows.max() + 15.0, 1.0 / oversample) + 0.5 / oversample
    wl = model.wavelength(fine)
    e = spectrum(wl) * model.electrons_per_jy(fine) / oversample
    edges = np.append(rows - 0.5, rows[-1] + 0.5)
    per_row = e @ _cell_fractions(fine + shift, edges, model.lsf_sigma(wl))
    return per_row / model.electrons_per_jy(rows)


LRS_EXP_TYPE = "MIR_LRS-FIXEDSLIT"
_PATHLOSS_OFFSETS_PX = np.arange(-3.0, 3.01, 0.5)  # across the slit (rows): wider than its 4.6 px


def _lrs_filename(reftype: str, fmt: str = "fits") -> str:
    return f"jwst_miri_{reftype}_lrs-fixedslit_sim.{fmt}"


def _lrs_common(ref, reftype: str, detector_model, description: str) -> None:
    _common(ref, reftype, detector_model, description, None, window=False)
    ref.meta.exposure.type = LRS_EXP_TYPE
    ref.meta.exposure.p_exptype = f"{LRS_EXP_TYPE}|"


def write_lrs_references(model: LrsModel, detector_model, out_dir: Path) -> list[ReferenceFile]:
    """SPECWCS, PHOTOM and PATHLOSS of ``model`` for the detector of ``detector_model``
    (MIRIMAGE), in the public formats (see the module docstring)."""
    from services.simulator.optical_refs import mean_gain

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = detector_model.detector.name
    if name != model.detector:
        raise ValueError(f"the LRS images on {model.detector}, not {name}")

    # SPECWCS: one wavelength element per row of the spectrum, relative to (IMX, IMY); an
    # element's corners bound the slit's image on its row: the slit's length along x, the
    # row along y (the public pipeline's bounding box of the spectrum is their extent).
    y = np.arange(model.rows[0], model.rows[1] + 1, dtype=np.float64)[::-1]  # wavelength increasing
    wl = model.wavelength(y)
    xc = model.trace_x(y) - (model.imx - 1.0)
    yc = y - (model.imy - 1.0)
    half_w = 0.5 * model.slit_width_px
    half_len = 0.5 * model.slit_length / model.pixel_scale
    table = np.zeros(y.size, dtype=[(c, "<f8") for c in ("x_center", "y_center", "wavelength", "x0", "y0", "x1",
                                                            "y1", "x2", "y2", "x3", "y3")])
    table["x_center"], table["y_center"], table["wavelength"] = xc, yc, wl
    table["x0"], table["y0"] = xc - half_len, yc + 0.5  # upper left
    table["x1"], table["y1"] = xc + half_len, yc + 0.5  # upper right
    table["x2"], table["y2"] = xc + half_len, yc - 0.5  # lower right
    table["x3"], table["y3"] = xc - half_len, yc - 0.5  # lower left
    # the slit's corners on the sky (V2, V3, arcsec) through the detector's distortion,
    # counter-clockwise from the lower left as the public files list them
    from services.simulator.distortion import detector_distortion_model

    cx, cy = model.imx - 1.0, model.imy - 1.0
    corners_x = np.array([cx - half_len, cx + half_len, cx + half_len, cx - half_len])
    corners_y = np.array([cy - half_w, cy - half_w, cy + half_w, cy + half_w])
    v2, v3 = detector_distortion_model(detector_model.detector)(corners_x, corners_y)
    vertices = {f"v2_vert{i + 1}": float(v2[i]) for i in range(4)} | {f"v3_vert{i + 1}": float(v3[i]) for i in range(4)}
    specwcs = dm.MiriLRSSpecwcsModel(wavetable=table, x_ref=model.imx, y_ref=model.imy, **vertices)
    _lrs_common(specwcs, "SPECWCS", detector_model, "Simulated MIRI LRS slit: trace and wavelengths per row")
    specwcs.meta.instrument.filter = model.filter
    written = [ReferenceFile("SPECWCS", name, _save(specwcs, out_dir / _lrs_filename("specwcs")), "GENERIC")]

    # PHOTOM: PHOTMJSR and the relative response against wavelength.
    value, waves, relresp = model.photmjsr(mean_gain(detector_model))
    n = waves.size
    photom_table = np.zeros(1, dtype=[("filter", "S12"), ("subarray", "S17"), ("photmjsr", "<f4"),
                                      ("uncertainty", "<f4"), ("nelem", "<i2"), ("wavelength", "<f4", (n,)),
                                      ("relresponse", "<f4", (n,)), ("reluncertainty", "<f4", (n,))])
    photom_table[0] = (model.filter, "FULL", value, 0.01 * value, n, waves, relresp, 0.01 * relresp)
    photom = dm.MirLrsPhotomModel(phot_table=photom_table)
    _lrs_common(photom, "PHOTOM", detector_model, "Simulated MIRI LRS slit: point-source flux calibration")
    photom.meta.photometry.pixelarea_steradians = model.pixel_area_sr
    photom.meta.photometry.pixelarea_arcsecsq = model.pixel_scale**2
    written.append(ReferenceFile("PHOTOM", name, _save(photom, out_dir / _lrs_filename("photom")), "GENERIC"))

    # PATHLOSS: the correction (1 / the slit's transmission) against wavelength (decreasing,
    # as the public files) and the source's offset from the slit centre in pixels: axis 1
    # along the slit (no loss there), axis 2 across it.
    wl_desc = wl[::-1]
    across = _PATHLOSS_OFFSETS_PX
    along = np.array([-20.0, 20.0])
    passed = model.slit_transmission(wl_desc[:, None], across[None, :] * model.pixel_scale)
    correction = np.repeat((1.0 / passed)[:, :, None], along.size, axis=2).astype(np.float32)
    pathloss_table = np.zeros(wl_desc.size, dtype=[("wavelength", "<f4"), ("pathloss", "<f4", correction.shape[1:]),
                                                   ("pathloss_err", "<f4", correction.shape[1:])])
    pathloss_table["wavelength"] = wl_desc
    pathloss_table["pathloss"] = correction
    pathloss_table["pathloss_err"] = 0.01 * correction
    pathloss = dm.MirLrsPathlossModel(pathloss_table=pathloss_table)
    _lrs_common(pathloss, "PATHLOSS", detector_model, "Simulated MIRI LRS slit: point-source slit losses")
    info = pathloss.meta.wcsinfo
    info.wcsaxes = 2
    info.crpix1, info.crval1, info.cdelt1 = 1.0, float(along[0]), float(along[1] - along[0])
    info.crpix2, info.crval2, info.cdelt2 = 1.0, float(across[0]), float(across[1] - across[0])
    written.append(ReferenceFile("PATHLOSS", name, _save(pathloss, out_dir / _lrs_filename("pathloss")), "GENERIC"))
    return written
