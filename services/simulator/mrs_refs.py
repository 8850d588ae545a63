"""Reference files of MIRI's medium-resolution spectrometer (:mod:`services.simulator.mrs`,
``MIR_MRS``) in the public formats that jwst's assign_wcs, photom and cube_build read: the
facts of the model, carried to the pipeline. Written beside the detector references
(PEDIGREE SIMULATION, USEAFTER 2022-01-01, byte-identical on rewrite). Pixels are 0-based
full-frame (1032 columns x 1024 rows, reference columns included), alpha/beta arcsec in
each channel's local frame, wavelengths um, as the public MRS files have them.

Per detector (MIRIFUSHORT: channels 1 and 2, CHANNEL "12"; MIRIFULONG: 3 and 4, "34") and
band (SHORT, MEDIUM, LONG), ``jwst_miri_<reftype>_<detector>_<band>_sim.<asdf|fits>``:

- DISTORTION (``DistortionMRSModel``, ASDF): ``slices`` the two channels' slice numbers
  (``100 c + k``) in order; per slice, index-aligned with ``slices``: ``alpha_model``
  (y, x) -> alpha = ``(x - x_centre) * alpha_scale``; ``beta_model`` x -> the slice's beta
  (``Const1D``); ``x_model`` (lambda, alpha) -> x = ``alpha / alpha_scale + x_centre`` and
  ``y_model`` (lambda, alpha) -> y, the exact inverse of the wavelength law on its branch,
  ``d = 2 u / (c1 + sqrt(c1^2 + 4 c2 u))``, ``u = lambda - c0``, ``y = d + 511.5 +
  row_shift`` (Mapping, Shift, Scale, Const1D and Polynomial1D with arithmetic operators,
  no fitted polynomial). ``bzero`` / ``bdel`` per channel-band (``"1SHORT"``, ``"2SHORT"``):
  the beta of slice 1's centre and the slice width (jwst finds a slice from beta by
  ``100 c + (beta - bzero) / bdel + 1``); ``abv2v3_model`` per channel-band: (alpha, beta)
  -> (V2, V3) arcsec, ``Mapping((0, 1, 0, 1)) | Polynomial2D(1) & Polynomial2D(1)`` as
  :func:`.mrs.alpha_beta_to_v2v3`, with its exact inverse (:func:`.mrs.v2v3_to_alpha_beta`)
  as ``.inverse``. meta: INSTRUME MIRI, DETECTOR, CHANNEL, BAND, EXP_TYPE MIR_MRS,
  input_units pix, output_units arcsec.
- SPECWCS (``SpecwcsModel``, ASDF): ``slices`` as the DISTORTION's and ``model`` per slice
  (index-aligned: jwst pairs them by position) (y, x) -> lambda um, ``c0 + c1 d + c2 d^2``,
  ``d = y - 511.5 - row_shift`` (``Mapping | Shift | Polynomial1D(2)``, exact).
  input_units pix, output_units um.
- REGIONS (``RegionsModel``, ASDF, zlib-compressed): int32 (9, 1024, 1032); plane j (0-8,
  throughput 10 %-90 %) holds a slice's number on every row of its columns whose fraction
  of their alpha width inside the slicer's field (:meth:`.mrs.MrsSlice.alpha_edges`) is at
  least (j + 1) / 10, 0 elsewhere. assign_wcs reads plane 7 (80 %): the outer columns of a
  slice, partly beyond the slicer's ends, have no WCS there.
- PHOTOM (``MirMrsPhotomModel``, FITS): SCI (1024, 1032) float32 (MJy/sr) / (DN/s) of a
  flat-fielded rate, ``g0 / (JY_PER_MJY_SR_ARCSEC2 * electrons_per_jy(y) * alpha_scale *
  slice_width)`` on every row of a slice's columns (g0 the detector's mean gain, as the
  FLAT's: :func:`.optical_refs.mean_gain`), NaN elsewhere: a pixel that sees the whole
  column of sky (an interior column) gives the surface brightness it saw; ERR 1 % of SCI;
  DQ 0; PIXSIZ the pixel's solid angle on the sky, ``alpha_scale * slice_width`` arcsec^2
  (NaN off the slices); PHOTMJSR 1.0 (the SCI array is the whole conversion). PRIMARY
  keywords DATAMODL MirMrsPhotomModel, DESCRIP, REFTYPE, AUTHOR, PEDIGREE, USEAFTER,
  INSTRUME, DETECTOR, CHANNEL (a card beside BAND: the schema has no CHANNEL), BAND,
  EXP_TYPE, P_EXP_TY; no TIMECOEFF tables (no time dependence is simulated).

The MRS FLAT (``FlatModel``, FITS, ``jwst_miri_flat_<detector>_<band>_sim.fits``, written by
:func:`write_mrs_flats` beside these): the detector model's flat as the imaging FLAT has it
(:func:`.optical_refs.flat_field`: ``QE * g0 / gain``, NaN and NO_FLAT_FIELD|DO_NOT_USE
where QE is 0) without a pixel-area term (the slicer's geometry is the whole geometry: the
PHOTOM's PIXSIZ), FILTER N/A, BAND the band, CHANNEL, EXP_TYPE MIR_MRS, READPATT ANY,
SUBARRAY GENERIC: selected by DETECTOR and BAND.

The MRS FRINGE (``FringeModel``, FITS, ``jwst_miri_fringe_<detector>_<band>_sim.fits``,
written by :func:`write_mrs_fringes`): SCI the detector's fringe transmission in the band
(:func:`.mrs.fringe_transmission`, exactly what the simulator multiplies the light by; 1
off the slices), ERR 0, DQ 0; BAND, CHANNEL (the public FringeModel has no EXP_TYPE or
SUBARRAY: full frame, MRS by its detector): selected by DETECTOR and BAND. The public fringe step divides by it.

One file for both detectors (the same bytes whichever writes it):

- WAVELENGTHRANGE (``WavelengthrangeModel``, ASDF, ``jwst_miri_wavelengthrange_mrs_sim.asdf``):
  ``waverange_selector`` "1SHORT" .. "4LONG" and ``wavelengthrange`` [wmin, wmax] um the
  range every slice of that channel and band covers between rows 6 and 1017 (the slices'
  spectra are shifted along the rows, so the common range is a little narrower than the
  band), rounded inwards to 1e-6 um; meta.wavelength_units um, CHANNEL, BAND and DETECTOR
  N/A, EXP_TYPE MIR_MRS. jwst chooses a channel from the wavelength by these ranges.
- CUBEPAR (``MiriIFUCubeParsModel``, FITS, ``jwst_miri_cubepar_mrs_sim.fits``): CUBEPAR one
  row per channel and band, SPAXELSIZE 0.13, 0.17, 0.20, 0.35 arcsec and SPECTRALSTEP
  0.001, 0.002, 0.003, 0.006 um (channels 1-4), WAVEMIN/WAVEMAX the WAVELENGTHRANGE's;
  CUBEPAR_MSM (ROISPATIAL the spaxel size, ROISPECTRAL two spectral steps, POWER 2, SOFTRAD
  0.01) and CUBEPAR_EMSM (the same ROIs, SCALERAD the spaxel size) per channel and band;
  MULTICHANNEL_DRIZ the wavelength grid of a multi-band cube (each channel's spectral step
  from its shortest wavelength to the next channel's, float32 um), and MULTICHANNEL_MSM /
  MULTICHANNEL_EMSM every 50th of its wavelengths with the channel's ROIs, POWER, SOFTRAD
  and SCALERAD.
"""

from __future__ import annotations

import io
import math
import warnings
from pathlib import Path

import asdf
import numpy as np
from astropy import units as u
from astropy.io import fits
from astropy.modeling.models import Const1D, Mapping, Polynomial1D, Polynomial2D, Scale, Shift
from stdatamodels.jwst import datamodels as dm

from .mrs import (
    BANDS,
    CHANNELS,
    FRAME_ANGLE_DEG,
    MRS_EXP_TYPE,
    N_COLUMNS,
    N_ROWS,
    ROW_CENTRE,
    MrsChannel,
    MrsSlice,
    channels_on,
    reference_point,
)
from .reffiles import AUTHOR, PEDIGREE, USEAFTER, ReferenceFile, _common, _dq_def, _save
from .spectrograph import JY_PER_MJY_SR_ARCSEC2

__all__ = [
    "CUBEPAR_FILENAME",
    "SPAXEL_SIZE",
    "SPECTRAL_STEP",
    "THROUGHPUT_LEVELS",
    "WAVELENGTHRANGE_FILENAME",
    "abv2v3_model",
    "column_coverage",
    "mrs_filename",
    "mrs_photom_arrays",
    "mrs_regions",
    "slice_models",
    "wavelength_ranges",
    "mrs_flat_filename",
    "write_mrs_flats",
    "write_mrs_fringes",
    "write_mrs_references",
]

WAVELENGTHRANGE_FILENAME = "jwst_miri_wavelengthrange_mrs_sim.asdf"
CUBEPAR_FILENAME = "jwst_miri_cubepar_mrs_sim.fits"
#: cube_build's spaxel (arcsec) and spectral step (um) per channel.
SPAXEL_SIZE = {1: 0.13, 2: 0.17, 3: 0.20, 4: 0.35}
SPECTRAL_STEP = {1: 0.001, 2: 0.002, 3: 0.003, 4: 0.006}
#: The REGIONS planes' throughput thresholds, 10 % to 90 %.
THROUGHPUT_LEVELS = tuple((j + 1) / 10.0 for j in range(9))
#: The rows between which WAVELENGTHRANGE is the range every slice covers.
COMMON_ROWS = (6.0, 1017.0)
_MULTICHANNEL_EVERY = 50
_COVERAGE_TOLERANCE = 1e-9  # a column's coverage at a threshold counts as reaching it


def mrs_filename(reftype: str, detector: str, band: str) -> str:
    """``jwst_miri_<reftype>_<detector>_<band>_sim.<asdf|fits>``, lower case: ASDF for
    DISTORTION, SPECWCS and REGIONS (the public formats), FITS for PHOTOM."""
    suffix = "fits" if reftype.lower() == "photom" else "asdf"
    return f"jwst_miri_{reftype}_{detector}_{band}_sim.{suffix}".lower()


def _channel_string(detector: str) -> str:
    return "".join(str(c.channel) for c in channels_on(detector))


def slice_models(sl: MrsSlice) -> dict[str, object]:
    """The public per-slice models of ``sl`` (module docstring): ``alpha`` (y, x) -> alpha
    arcsec, ``beta`` x -> beta arcsec, ``lambda`` (y, x) -> wavelength um, ``x`` and ``y``
    (lambda, alpha) -> detector column and row, exact for :mod:`.mrs`'s laws."""
    scale = sl.channel.alpha_scale
    c0, c1, c2 = sl.coefficients
    row0 = ROW_CENTRE + sl.row_shift
    second = Mapping((1,), n_inputs=2)
    first = Mapping((0,), n_inputs=2)
    alpha = second | Shift(-sl.x_centre) | Scale(scale)
    lam = first | Shift(-row0) | Polynomial1D(2, c0=c0, c1=c1, c2=c2)
    x = second | Scale(1.0 / scale) | Shift(sl.x_centre)
    # the quadratic's root on the band's branch, d = 2 u / (c1 + sqrt(c1^2 + 4 c2 u)), u = lambda - c0
    # (no cancellation as c2 goes to 0)
    denominator = (Polynomial1D(1, c0=c1 * c1, c1=4.0 * c2) ** Const1D(0.5)) | Shift(c1)
    y = first | Shift(-c0) | (Scale(2.0) / denominator) | Shift(row0)
    return {"alpha": alpha, "beta": Const1D(sl.beta), "lambda": lam, "x": x, "y": y}


def abv2v3_model(detector: str):
    """(alpha, beta) arcsec -> (V2, V3) arcsec of :func:`.mrs.alpha_beta_to_v2v3`, with its
    exact inverse as ``.inverse`` (the public form: ``Mapping((0, 1, 0, 1)) |
    Polynomial2D(1) & Polynomial2D(1)``)."""
    v2_ref, v3_ref = reference_point(detector)
    t = math.radians(FRAME_ANGLE_DEG)
    cos_t, sin_t = math.cos(t), math.sin(t)
    forward = Mapping((0, 1, 0, 1)) | (Polynomial2D(1, c0_0=v2_ref, c1_0=cos_t, c0_1=sin_t)
                                       & Polynomial2D(1, c0_0=v3_ref, c1_0=-sin_t, c0_1=cos_t))
    # alpha = (v2 - v2_ref) cos t - (v3 - v3_ref) sin t, beta = (v2 - v2_ref) sin t + (v3 - v3_ref) cos t
    inverse = Mapping((0, 1, 0, 1)) | (
        Polynomial2D(1, c0_0=-v2_ref * cos_t + v3_ref * sin_t, c1_0=cos_t, c0_1=-sin_t)
        & Polynomial2D(1, c0_0=-v2_ref * sin_t - v3_ref * cos_t, c1_0=sin_t, c0_1=cos_t))
    forward.inverse = inverse
    return forward


def _band_slices(detector: str, band: str) -> list[MrsSlice]:
    return [sl for channel in channels_on(detector) for sl in channel.slices(band)]


def column_coverage(sl: MrsSlice) -> np.ndarray:
    """Per column of the slice's image (:attr:`.mrs.MrsSlice.column_range`), the fraction of
    its alpha width inside the slicer's field."""
    lo, hi = sl.column_range
    return np.diff(sl.alpha_edges(lo, hi - lo + 1)) / sl.channel.alpha_scale


def mrs_regions(detector: str, band: str) -> np.ndarray:
    """The REGIONS array (9, 1024, 1032) int32 of ``detector`` in ``band`` (module docstring)."""
    regions = np.zeros((len(THROUGHPUT_LEVELS), N_ROWS, N_COLUMNS), np.int32)
    for sl in _band_slices(detector, band):
        lo, _ = sl.column_range
        coverage = column_coverage(sl)
        for j, level in enumerate(THROUGHPUT_LEVELS):
            columns = lo + np.flatnonzero(coverage >= level - _COVERAGE_TOLERANCE)
            regions[j][:, columns] = sl.number
    return regions


def mrs_photom_arrays(detector: str, band: str, g0: float) -> tuple[np.ndarray, np.ndarray]:
    """SCI ((MJy/sr) / (DN/s), float32) and PIXSIZ (arcsec^2, float32) of the PHOTOM of
    ``detector`` in ``band`` for the mean gain ``g0`` e-/DN (module docstring): NaN off the
    slices."""
    sci = np.full((N_ROWS, N_COLUMNS), np.nan)
    pixsiz = np.full((N_ROWS, N_COLUMNS), np.nan)
    rows = np.arange(N_ROWS, dtype=np.float64)
    for sl in _band_slices(detector, band):
        lo, hi = sl.column_range
        area = sl.channel.alpha_scale * sl.channel.slice_width
        sci[:, lo:hi + 1] = (g0 / (JY_PER_MJY_SR_ARCSEC2 * sl.electrons_per_jy(rows) * area))[:, None]
        pixsiz[:, lo:hi + 1] = area
    return sci.astype(np.float32), pixsiz.astype(np.float32)


def _common_range(channel: MrsChannel, band: str) -> tuple[float, float]:
    lows, highs = [], []
    for sl in channel.slices(band):
        a, b = (float(v) for v in sl.wavelength(np.array(COMMON_ROWS)))
        lows.append(min(a, b))
        highs.append(max(a, b))
    return max(lows), min(highs)


def wavelength_ranges() -> dict[str, tuple[float, float]]:
    """``"<channel><BAND>"`` -> (wmin, wmax) um: the range every slice of the channel covers
    in the band between rows 6 and 1017, rounded inwards to 1e-6 um."""
    out = {}
    for c, channel in CHANNELS.items():
        for band in BANDS:
            lo, hi = _common_range(channel, band)
            out[f"{c}{band}"] = (math.ceil(lo * 1e6) / 1e6, math.floor(hi * 1e6) / 1e6)
    return out


def _save_asdf(model, path: Path, *, compress: bool = False) -> Path:
    """Validate (a schema warning means a broken file) and write an ASDF reference with
    DATE = USEAFTER, so the same model always gives the same bytes (``compress``: zlib).
    The MRS models do not stamp DATE on saving; should one, the file is rewritten with
    its DATE set back."""
    useafter = model.meta.useafter
    model.meta.date = useafter
    compression = "zlib" if compress else None
    first = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.to_asdf(first, all_array_compression=compression)  # validates
    stamped = model.meta.date != useafter
    model.close()
    if stamped:
        first.seek(0)
        out = io.BytesIO()
        with asdf.open(first, lazy_load=False, memmap=False) as af:
            af.tree["meta"]["date"] = useafter
            af.write_to(out, all_array_compression=compression)
        first = out
    path.write_bytes(first.getvalue())
    return path


def _mrs_meta(ref, reftype: str, detector_model, band: str, description: str, *, window: bool) -> None:
    _common(ref, reftype, detector_model, description, None, window=window)
    ref.meta.instrument.channel = _channel_string(detector_model.detector.name)
    ref.meta.instrument.band = band
    ref.meta.exposure.type = MRS_EXP_TYPE


def _distortion(detector_model, band: str, path: Path) -> Path:
    name = detector_model.detector.name
    slices = _band_slices(name, band)
    models = [slice_models(sl) for sl in slices]
    channels = channels_on(name)
    keys = [f"{c.channel}{band}" for c in channels]
    ref = dm.DistortionMRSModel(
        x_model=[m["x"] for m in models], y_model=[m["y"] for m in models],
        alpha_model=[m["alpha"] for m in models], beta_model=[m["beta"] for m in models],
        bzero={"channel_band": keys, "beta_zero": [c.slice(1, band).beta for c in channels]},
        bdel={"channel_band": keys, "delta_beta": [c.slice_width for c in channels]},
        input_units=u.pix, output_units=u.arcsec)
    ref.slices = [sl.number for sl in slices]
    ref.abv2v3_model = {"channel_band": keys, "model": [abv2v3_model(name) for _ in channels]}
    _mrs_meta(ref, "DISTORTION", detector_model, band, f"Simulated MIRI MRS {name} {band}: detector to "
              "alpha/beta per slice and alpha/beta to V2/V3 per channel", window=False)
    return _save_asdf(ref, path)


def _specwcs(detector_model, band: str, path: Path) -> Path:
    name = detector_model.detector.name
    slices = _band_slices(name, band)
    ref = dm.SpecwcsModel(model=[slice_models(sl)["lambda"] for sl in slices], input_units=u.pix,
                          output_units=u.micron)
    ref.slices = [sl.number for sl in slices]
    _mrs_meta(ref, "SPECWCS", detector_model, band, f"Simulated MIRI MRS {name} {band}: wavelength per slice",
              window=True)
    return _save_asdf(ref, path)


def _regions(detector_model, band: str, path: Path) -> Path:
    name = detector_model.detector.name
    ref = dm.RegionsModel(regions=mrs_regions(name, band))
    _mrs_meta(ref, "REGIONS", detector_model, band, f"Simulated MIRI MRS {name} {band}: slice numbers at "
              "throughputs 10-90 %", window=True)
    return _save_asdf(ref, path, compress=True)


def _photom(detector_model, band: str, path: Path) -> Path:
    from .optical_refs import mean_gain

    name = detector_model.detector.name
    sci, pixsiz = mrs_photom_arrays(name, band, mean_gain(detector_model))
    ref = dm.MirMrsPhotomModel(data=sci, err=(0.01 * sci).astype(np.float32),
                               dq=np.zeros(sci.shape, np.uint32), pixsiz=pixsiz)
    _common(ref, "PHOTOM", detector_model, f"Simulated MIRI MRS {name} {band}: surface-brightness calibration "
            "per pixel", None, window=False)
    ref.meta.instrument.band = band
    ref.meta.exposure.type = MRS_EXP_TYPE
    ref.meta.exposure.p_exptype = f"{MRS_EXP_TYPE}|"
    ref.meta.photometry.conversion_megajanskys = 1.0
    _save(ref, path)
    with fits.open(path, mode="update") as hdul:  # the MirMrsPhotomModel schema has no CHANNEL: a card beside BAND
        hdul[0].header.set("CHANNEL", _channel_string(name), "MRS channels", before="BAND")
    return path


def _mode_meta(ref, reftype: str, description: str) -> None:
    """The common keywords of a reference for the whole mode (both detectors: DETECTOR N/A)."""
    meta = ref.meta
    meta.reftype = reftype
    meta.instrument.name = "MIRI"
    meta.instrument.detector = "N/A"
    meta.exposure.type = MRS_EXP_TYPE
    meta.useafter = USEAFTER
    meta.description = description
    meta.author = AUTHOR
    meta.pedigree = PEDIGREE
    meta.telescope = "JWST"
    meta.origin = "jwst-dms"


def write_mrs_wavelengthrange(out_dir: Path) -> ReferenceFile:
    """The MRS WAVELENGTHRANGE (module docstring) in ``out_dir``; the same bytes every time."""
    ranges = wavelength_ranges()
    ref = dm.WavelengthrangeModel(wrange_selector=list(ranges), wrange=[list(r) for r in ranges.values()],
                                  wunits=u.micron)
    _mode_meta(ref, "WAVELENGTHRANGE",
               "Simulated MIRI MRS wavelength ranges per channel and band: the range every slice covers")
    ref.meta.instrument.channel = "N/A"
    ref.meta.instrument.band = "N/A"
    path = Path(out_dir) / WAVELENGTHRANGE_FILENAME
    return ReferenceFile("WAVELENGTHRANGE", "ANY", _save_asdf(ref, path), "GENERIC")


def _multichannel_grid() -> tuple[np.ndarray, np.ndarray]:
    """The multi-band wavelength grid (um) and each wavelength's channel: each channel's
    spectral step from its shortest wavelength to the next channel's (the last to its
    longest)."""
    ranges = wavelength_ranges()
    starts = [min(ranges[f"{c}{b}"][0] for b in BANDS) for c in CHANNELS]
    end = max(ranges[f"{max(CHANNELS)}{b}"][1] for b in BANDS)
    waves, owner = [], []
    for i, c in enumerate(CHANNELS):
        stop = starts[i + 1] if i + 1 < len(starts) else end + SPECTRAL_STEP[c]
        n = int(math.ceil((stop - starts[i]) / SPECTRAL_STEP[c] - 1e-9))
        waves.append(starts[i] + SPECTRAL_STEP[c] * np.arange(n))
        owner.append(np.full(n, c))
    return np.concatenate(waves), np.concatenate(owner)


def _table(rows: list[tuple], dtype: list[tuple]) -> np.ndarray:
    return np.array(rows, dtype=dtype)


def cubepar_tables() -> dict[str, np.ndarray]:
    """The CUBEPAR tables (module docstring), by ``MiriIFUCubeParsModel`` attribute."""
    ranges = wavelength_ranges()
    chb = [("channel", "S3"), ("band", "S12")]
    f4 = "<f4"
    per_band = [(str(c), b) for c in CHANNELS for b in BANDS]
    waves, owner = _multichannel_grid()
    pick = slice(None, None, _MULTICHANNEL_EVERY)
    w, o = waves[pick], owner[pick]
    spax = np.array([SPAXEL_SIZE[c] for c in o])
    roi_w = np.array([2.0 * SPECTRAL_STEP[c] for c in o])
    return {
        "ifucubepars_table": _table(
            [(c, b, SPAXEL_SIZE[int(c)], SPECTRAL_STEP[int(c)], *ranges[f"{c}{b}"]) for c, b in per_band],
            [*chb, ("spaxelsize", f4), ("spectralstep", f4), ("wavemin", f4), ("wavemax", f4)]),
        "ifucubepars_msm_table": _table(
            [(c, b, SPAXEL_SIZE[int(c)], 2.0 * SPECTRAL_STEP[int(c)], 2.0, 0.01) for c, b in per_band],
            [*chb, ("roispatial", f4), ("roispectral", f4), ("power", f4), ("softrad", f4)]),
        "ifucubepars_emsm_table": _table(
            [(c, b, SPAXEL_SIZE[int(c)], 2.0 * SPECTRAL_STEP[int(c)], SPAXEL_SIZE[int(c)]) for c, b in per_band],
            [*chb, ("roispatial", f4), ("roispectral", f4), ("scalerad", f4)]),
        "ifucubepars_multichannel_msm_wavetable": _table(
            list(zip(w, spax, roi_w, np.full(w.size, 2.0), np.full(w.size, 0.01), strict=True)),
            [("wavelength", f4), ("roispatial", f4), ("roispectral", f4), ("power", f4), ("softrad", f4)]),
        "ifucubepars_multichannel_emsm_wavetable": _table(
            list(zip(w, spax, roi_w, spax, strict=True)),
            [("wavelength", f4), ("roispatial", f4), ("roispectral", f4), ("scalerad", f4)]),
        "ifucubepars_multichannel_driz_wavetable": _table([(v,) for v in waves], [("wavelength", f4)]),
    }


def write_mrs_cubepar(out_dir: Path) -> ReferenceFile:
    """The MRS CUBEPAR (module docstring) in ``out_dir``; the same bytes every time."""
    ref = dm.MiriIFUCubeParsModel(**cubepar_tables())
    _mode_meta(ref, "CUBEPAR",
               "Simulated MIRI MRS cube parameters: spaxel, spectral step and range per channel and band")
    path = Path(out_dir) / CUBEPAR_FILENAME
    return ReferenceFile("CUBEPAR", "ANY", _save(ref, path), "GENERIC")


def mrs_flat_filename(detector: str, band: str) -> str:
    """``jwst_miri_flat_<detector>_<band>_sim.fits``, lower case."""
    return f"jwst_miri_flat_{detector}_{band}_sim.fits".lower()


def write_mrs_flats(detector_model, out_dir: Path) -> list[ReferenceFile]:
    """The MRS FLAT of every band for the detector of ``detector_model`` (module docstring);
    ValueError for a detector without MRS channels."""
    from .optical_refs import flat_field

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = detector_model.detector.name
    channels_on(name)
    data, err, dq = flat_field(detector_model, np.ones(detector_model.shape))
    written = []
    for band in BANDS:
        flat = dm.FlatModel(data=data, err=err, dq=dq)
        _mrs_meta(flat, "FLAT", detector_model, band, f"Simulated MIRI MRS flat of {name} {band}: QE x g0/gain",
                  window=True)
        flat.meta.instrument.filter = "N/A"
        flat.meta.exposure.readpatt = "ANY"
        flat.dq_def = _dq_def(["DO_NOT_USE", "NO_FLAT_FIELD"])
        path = _save(flat, out_dir / mrs_flat_filename(name, band))
        written.append(ReferenceFile("FLAT", name, path, "GENERIC"))
    return written


def write_mrs_fringes(detector_model, out_dir: Path) -> list[ReferenceFile]:
    """The MRS FRINGE of every band for the detector of ``detector_model`` (module
    docstring); ValueError for a detector without MRS channels."""
    from .mrs import fringe_transmission

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = detector_model.detector.name
    channels_on(name)
    written = []
    for band in BANDS:
        data = fringe_transmission(name, band).astype(np.float32)
        fringe = dm.FringeModel(data=data, err=np.zeros_like(data), dq=np.zeros(data.shape, np.uint32))
        _common(fringe, "FRINGE", detector_model, f"Simulated MIRI MRS fringes of {name} {band}: the substrate's "
                "etalon transmission per pixel", None, window=False)
        fringe.meta.instrument.channel = _channel_string(name)
        fringe.meta.instrument.band = band
        fringe.meta.instrument.filter = "N/A"
        path = _save(fringe, out_dir / f"jwst_miri_fringe_{name}_{band}_sim.fits".lower())
        written.append(ReferenceFile("FRINGE", name, path, "GENERIC"))
    return written


def write_mrs_references(detector_model, out_dir: Path) -> list[ReferenceFile]:
    """DISTORTION, SPECWCS, REGIONS and PHOTOM of every band of the MRS for the detector of
    ``detector_model`` (MIRIFUSHORT or MIRIFULONG), and the MRS's WAVELENGTHRANGE and
    CUBEPAR (one file each for both detectors), in the public formats (module docstring).
    ValueError for another detector."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = detector_model.detector.name
    channels_on(name)  # ValueError for a detector without MRS channels
    written = []
    for band in BANDS:
        for reftype, write in (("DISTORTION", _distortion), ("SPECWCS", _specwcs), ("REGIONS", _regions),
                               ("PHOTOM", _photom)):
            path = write(detector_model, band, out_dir / mrs_filename(reftype, name, band))
            written.append(ReferenceFile(reftype, name, path, "GENERIC"))
    written.append(write_mrs_wavelengthrange(out_dir))
    written.append(write_mrs_cubepar(out_dir))
    return written
