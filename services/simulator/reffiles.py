"""Calibration reference files written from the detector model, in the public JWST formats.

Each file is built as a ``stdatamodels`` reference model and saved, so
``stdatamodels.jwst.datamodels.open`` returns the right class. Full-frame files carry
SUBARRAY=GENERIC (they apply to every subarray; the calibration cuts the window out);
darks are written per readout window because their frames are TFRAME long.

Written per detector (``jwst_<instrument>_<reftype>_<detector>_sim.fits``):

- MASK (MaskModel): DQ uint32 = DEAD|DO_NOT_USE, HOT, WARM, LOW_QE, REFERENCE_PIXEL.
- SATURATION (SaturationModel): SCI float32 raw DN (bias included) = full well - 100 DN.
- SUPERBIAS (SuperBiasModel; near-IR only, MIRI has no superbias step): SCI bias DN.
- LINEARITY (LinearityModel): COEFFS (6, ny, nx) float32, increasing power, correcting DN
  above bias (near-IR) or raw DN with the bias passed through (MIRI).
- GAIN (GainModel): SCI e-/DN.
- READNOISE (ReadnoiseModel): SCI CDS read noise, DN.
- RSCD (RSCDModel; MIRI only): the reset-switch charge decay the simulator applies to
  integrations 2..NINTS (``ramps.ResetDecay``). One row per MIRI subarray and readout
  pattern in the public table RSCD_GROUP_SKIP (SUBARRAY, READPATT, GROUP_SKIP1 = 0,
  GROUP_SKIP = ``ceil(tau * ln(scale * level_max / (read_noise / sqrt(2))))``, the groups
  the largest offset takes to fall below one read's noise: what jwst's rscd step flags
  DO_NOT_USE) and in the extension RSCD_DECAY (SUBARRAY, READPATT, SCALE, TAU in groups,
  LEVEL_MAX in DN: the model's parameters, which detector-1's rscd step corrects with;
  the public schema has no columns for them, ``stdatamodels`` keeps the extension).
- DARK per window, ``jwst_<instrument>_dark_<detector>_<subarray>[_<readpatt>]_sim.fits``:
  DarkModel (near-IR, SCI (nframes, ny, nx)) or DarkMIRIModel (SCI (nints, nframes, ny, nx)),
  NFRAMES=1, GROUPGAP=0: plane k (0-based) is the dark signal ``dark_rate/gain * (k+1) * TFRAME``
  in DN accumulated by frame k+1; AVDRKCUR = dark current, e-/s. Longer ramps extrapolate
  (the dark is exactly linear in time).

The SCI arrays are the model itself (noiseless); ERR arrays are nominal (what averaging 50
calibration frames or ramps would give). PEDIGREE is SIMULATION, USEAFTER 2022-01-01T00:00:00.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits
from stdatamodels.jwst import datamodels as dm

from shared.datamodels.dqflags import PIXEL
from shared.instruments import SUBARRAYS, Subarray

from .detector_model import DetectorModel, linearity_coefficients
from .optics import READOUT_PATTERNS_BY_INSTRUMENT
from .ramps import ResetDecay

__all__ = [
    "USEAFTER",
    "DarkRequest",
    "ReferenceFile",
    "dark_filename",
    "dark_signal",
    "reference_filename",
    "rscd_group_skip",
    "write_gain",
    "write_mask",
    "write_readnoise",
    "write_reference_files",
]

USEAFTER = "2022-01-01T00:00:00"
AUTHOR = "jwst-dms simulator"
PEDIGREE = "SIMULATION"
_NOMINAL_AVERAGED = 50.0

_DQ_DESCRIPTIONS = {
    "DO_NOT_USE": "Bad pixel, do not use",
    "DEAD": "Dead pixel",
    "HOT": "Hot pixel",
    "WARM": "Warm pixel",
    "LOW_QE": "Low quantum efficiency",
    "REFERENCE_PIXEL": "Reference pixel",
}


@dataclass(frozen=True)
class DarkRequest:
    """A dark reference to write: window, frame time, number of frames and integrations.

    ``readpatt`` is the READPATT keyword (ANY for near-IR, FAST or SLOW for MIRI, whose
    frame time depends on it).
    """

    subarray: Subarray
    readpatt: str
    tframe: float
    nframes: int
    nints: int
    exp_type: str


@dataclass(frozen=True)
class ReferenceFile:
    reftype: str
    detector: str
    path: Path
    subarray: str


def reference_filename(instrument: str, reftype: str, detector: str) -> str:
    return f"jwst_{instrument}_{reftype}_{detector}_sim.fits".lower()


def dark_filename(instrument: str, detector: str, sub: Subarray, readpatt: str) -> str:
    patt = f"_{readpatt}" if instrument.upper() == "MIRI" else ""
    return f"jwst_{instrument}_dark_{detector}_{sub.name}{patt}_sim.fits".lower()


def dark_signal(dark_rate_dn: np.ndarray, tframe: float, nframes: int) -> np.ndarray:
    """Cumulative dark signal per frame.

    Parameters
    ----------
    dark_rate_dn : ndarray, shape (ny, nx)
        Dark current, DN/s.
    tframe : float
        Frame time, s.
    nframes : int
        Frames.

    Returns
    -------
    ndarray of float32, shape (nframes, ny, nx)
        DN accumulated by frames 1..nframes.
    """
    t = tframe * np.arange(1, nframes + 1, dtype=np.float64)
    return (t[:, None, None] * dark_rate_dn[None].astype(np.float64)).astype(np.float32)


def _dq_def(names: list[str]) -> np.ndarray:
    rows = [
        (int(PIXEL[n]).bit_length() - 1, PIXEL[n], n, _DQ_DESCRIPTIONS.get(n, n)) for n in names
    ]
    return np.array(rows, dtype=[("BIT", "<i4"), ("VALUE", "<u4"), ("NAME", "S40"), ("DESCRIPTION", "S80")])


def _common(model, reftype: str, det: DetectorModel, description: str, sub: Subarray | None,
            *, window: bool = True) -> None:
    """Keywords every reference file carries; ``window`` False for models whose schema has
    no SUBARRAY keywords (PHOTOM, AREA)."""
    info = det.detector
    model.meta.reftype = reftype
    model.meta.instrument.name = info.instrument
    model.meta.instrument.detector = info.name
    model.meta.useafter = USEAFTER
    model.meta.description = description
    model.meta.author = AUTHOR
    model.meta.pedigree = PEDIGREE
    model.meta.telescope = "JWST"
    model.meta.origin = "jwst-dms"
    if not window:
        return
    ny, nx = det.shape if sub is None else (sub.ysize, sub.xsize)
    model.meta.subarray.name = "GENERIC" if sub is None else sub.name
    model.meta.subarray.xstart = 1 if sub is None else sub.xstart
    model.meta.subarray.ystart = 1 if sub is None else sub.ystart
    model.meta.subarray.xsize = nx
    model.meta.subarray.ysize = ny


def _save(model, path: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a schema warning means a broken reference file
        model.save(str(path), overwrite=True)
    useafter = model.meta.useafter
    model.close()
    # Saving stamps DATE with the clock; stamp the USEAFTER instead, so the same detector
    # model always gives byte-identical files (a repeated delivery is then a no-op).
    with fits.open(path, mode="update") as hdul:
        hdul[0].header["DATE"] = useafter
    return path


def write_reference_files(
    model: DetectorModel, out_dir: Path, darks: list[DarkRequest], *, nominal: float = _NOMINAL_AVERAGED
) -> list[ReferenceFile]:
    """Write the reference files of one detector.

    Parameters
    ----------
    model : DetectorModel
        Full-frame model.
    out_dir : Path
        Directory (created if missing).
    darks : list of DarkRequest
        Dark references to write (one per window/frame time used).
    nominal : float
        Number of calibration frames the nominal ERR arrays correspond to.

    Returns
    -------
    list of ReferenceFile
    """
    if model.subarray is not None:
        raise ValueError("reference files are written from a full-frame model")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    info = model.detector
    inst, name = info.instrument, info.name
    near_ir = inst != "MIRI"
    written: list[ReferenceFile] = []

    def record(reftype: str, path: Path, sub: str = "GENERIC") -> None:
        written.append(ReferenceFile(reftype, name, path, sub))

    record("MASK", write_mask(model, out_dir))

    sat = dm.SaturationModel(data=model.saturation, dq=np.zeros(model.shape, np.uint32))
    _common(sat, "SATURATION", model, f"Simulated saturation thresholds (raw DN) of {name}", None)
    sat.dq_def = _dq_def(["DO_NOT_USE", "REFERENCE_PIXEL"])
    record("SATURATION", _save(sat, out_dir / reference_filename(inst, "saturation", name)))

    read_sigma = model.read_noise / np.float32(np.sqrt(2.0))
    if near_ir:
        bias = dm.SuperBiasModel(
            data=model.bias, err=(read_sigma / np.float32(np.sqrt(nominal))).astype(np.float32),
            dq=np.zeros(model.shape, np.uint32),
        )
        _common(bias, "SUPERBIAS", model, f"Simulated superbias of {name}", None)
        bias.meta.exposure.readpatt = "ANY"
        bias.meta.bunit_data = "DN"
        bias.meta.bunit_err = "DN"
        bias.dq_def = _dq_def(["DO_NOT_USE", "UNRELIABLE_BIAS"])
        record("SUPERBIAS", _save(bias, out_dir / reference_filename(inst, "superbias", name)))

    coeffs = linearity_coefficients(model.nonlin, None if near_ir else model.bias)
    lin = dm.LinearityModel(coeffs=coeffs, dq=np.zeros(model.shape, np.uint32))
    kind = "DN above bias" if near_ir else "raw DN (bias passes through)"
    _common(lin, "LINEARITY", model, f"Simulated linearity correction of {name}, in {kind}", None)
    lin.dq_def = _dq_def(["DO_NOT_USE", "NO_LIN_CORR"])
    record("LINEARITY", _save(lin, out_dir / reference_filename(inst, "linearity", name)))

    record("GAIN", write_gain(model, out_dir))
    record("READNOISE", write_readnoise(model, out_dir))

    decay = ResetDecay.of(model.params)
    if decay is not None:
        record("RSCD", _write_rscd(model, decay, out_dir / reference_filename(inst, "rscd", name)))

    for request in darks:
        written.append(_write_dark(model, out_dir, request, nominal))
    return written


def write_mask(model: DetectorModel, out_dir: Path) -> Path:
    """MASK (MaskModel) of a full-frame model."""
    info = model.detector
    mask = dm.MaskModel(dq=model.dq)
    _common(mask, "MASK", model, f"Simulated bad-pixel mask of {info.name}", None)
    mask.dq_def = _dq_def(["DO_NOT_USE", "DEAD", "HOT", "WARM", "LOW_QE", "REFERENCE_PIXEL"])
    return _save(mask, Path(out_dir) / reference_filename(info.instrument, "mask", info.name))


def write_gain(model: DetectorModel, out_dir: Path) -> Path:
    """GAIN (GainModel, e-/DN) of a full-frame model."""
    info = model.detector
    gain = dm.GainModel(data=model.gain)
    _common(gain, "GAIN", model, f"Simulated gain of {info.name}", None)
    gain.meta.bunit_data = "electrons/DN"
    return _save(gain, Path(out_dir) / reference_filename(info.instrument, "gain", info.name))


def write_readnoise(model: DetectorModel, out_dir: Path) -> Path:
    """READNOISE (ReadnoiseModel, CDS DN) of a full-frame model."""
    info = model.detector
    rn = dm.ReadnoiseModel(data=model.read_noise)
    _common(rn, "READNOISE", model, f"Simulated CDS read noise of {info.name}", None)
    rn.meta.exposure.readpatt = "ANY"
    rn.meta.bunit_data = "DN"
    return _save(rn, Path(out_dir) / reference_filename(info.instrument, "readnoise", info.name))


def rscd_group_skip(decay: ResetDecay, read_noise_cds: float) -> int:
    """Groups until the largest RSCD offset (``scale * level_max``) falls below the noise
    of one read (``read_noise_cds / sqrt(2)``)."""
    ratio = decay.scale * decay.level_max / (read_noise_cds / np.sqrt(2.0))
    return int(np.ceil(decay.tau * np.log(ratio))) if ratio > 1 else 0


def _write_rscd(model: DetectorModel, decay: ResetDecay, path: Path) -> Path:
    info = model.detector
    modes = [(sub, patt) for sub in SUBARRAYS[info.instrument]
             for patt in READOUT_PATTERNS_BY_INSTRUMENT[info.instrument]]
    skip = rscd_group_skip(decay, float(np.median(model.read_noise[~model.refpix])))
    table = np.array([(sub, patt, 0, skip) for sub, patt in modes],
                     dtype=[("subarray", "S17"), ("readpatt", "S12"), ("group_skip1", "<i4"), ("group_skip", "<i4")])
    rscd = dm.RSCDModel(rscd_group_skip_table=table)
    _common(rscd, "RSCD", model, f"Simulated reset-switch charge decay of {info.name}", None, window=False)
    _save(rscd, path)
    n = len(modes)
    decay_table = fits.BinTableHDU.from_columns(
        [
            fits.Column("SUBARRAY", "17A", array=[sub for sub, _ in modes]),
            fits.Column("READPATT", "12A", array=[patt for _, patt in modes]),
            fits.Column("SCALE", "D", array=np.full(n, decay.scale)),
            fits.Column("TAU", "D", unit="group", array=np.full(n, decay.tau)),
            fits.Column("LEVEL_MAX", "D", unit="DN", array=np.full(n, decay.level_max)),
        ],
        name="RSCD_DECAY",
    )
    decay_table.header["CONTENT"] = "offset[n,g] = SCALE * min(A[n-1], LEVEL_MAX) * exp(-g / TAU)"
    with fits.open(path, mode="append") as hdul:
        hdul.append(decay_table)
    return path


def _write_dark(model: DetectorModel, out_dir: Path, request: DarkRequest, nominal: float) -> ReferenceFile:
    info = model.detector
    sub = request.subarray
    win = model.window(sub)
    rate_dn = win.dark / win.gain
    signal = dark_signal(rate_dn, request.tframe, request.nframes)
    # Nominal error: read noise and dark shot noise of an average of `nominal` ramps.
    shot = np.sqrt(np.maximum(signal * win.gain[None], 0.0)) / win.gain[None]
    err = (np.sqrt((win.read_noise[None] / np.sqrt(2.0)) ** 2 + shot**2) / np.sqrt(nominal)).astype(np.float32)
    avg = np.asarray(win.dark, np.float32)
    if info.instrument == "MIRI":
        reps = (request.nints, 1, 1, 1)
        dark = dm.DarkMIRIModel(
            data=np.tile(signal[None], reps), err=np.tile(err[None], reps),
            dq=np.zeros((request.nints,) + signal.shape, np.uint32), average_dark_current=avg,
        )
    else:
        dark = dm.DarkModel(data=signal, err=err, dq=np.zeros(signal.shape[1:], np.uint32),
                            average_dark_current=avg)
        dark.meta.exposure.noutputs = sub.noutputs
    _common(dark, "DARK", model,
            f"Simulated dark of {info.name} {sub.name}, TFRAME={request.tframe:.5f} s per plane", sub)
    dark.meta.exposure.readpatt = request.readpatt
    dark.meta.exposure.type = request.exp_type
    dark.meta.exposure.nframes = 1
    dark.meta.exposure.groupgap = 0
    dark.meta.exposure.ngroups = request.nframes
    dark.meta.exposure.average_dark_current = float(np.mean(avg[~win.refpix])) if (~win.refpix).any() else 0.0
    dark.dq_def = _dq_def(["DO_NOT_USE", "HOT", "WARM"])
    path = out_dir / dark_filename(info.instrument, info.name, sub, request.readpatt)
    return ReferenceFile("DARK", info.name, _save(dark, path), sub.name)


def revise_reference(path: Path, out_dir: Path, *, name: str | None = None, factor: float = 1.0,
                     useafter: str | None = None, detector: str | None = None, filter_: str | None = None,
                     description: str | None = None) -> Path:
    """A new version of a reference file, as a calibration team delivers one: a copy whose
    SCI is multiplied by ``factor`` (a small, known change), optionally with another
    USEAFTER (ISO 8601, UTC), DETECTOR or FILTER; written to ``out_dir`` as ``name``
    (default: ``<stem>_v2.fits``). Reference files are immutable, so a new version needs
    a new name."""
    from stdatamodels.jwst import datamodels

    out = Path(out_dir) / (name or f"{Path(path).stem}_v2.fits")
    out.parent.mkdir(parents=True, exist_ok=True)
    model = datamodels.open(str(path))
    model.data = (model.data * factor).astype(model.data.dtype)
    if useafter is not None:
        model.meta.useafter = useafter
    if detector is not None:
        model.meta.instrument.detector = detector
    if filter_ is not None:
        model.meta.instrument.filter = filter_
    model.meta.description = description or f"{model.meta.description} (revised: SCI x {factor:g})"
    return _save(model, out)
