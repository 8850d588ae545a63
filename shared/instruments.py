"""Instrument and detector facts shared by the simulator and the ingest service.

One place for the geometry and readout timing of every detector the system knows:
full-frame sizes, reference-pixel borders, amplifier layout, named subarrays, readout
patterns and frame times. Values follow the public JWST documentation where it gives
them; where it does not (timing formulas) the choice is stated beside the value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "DETECTORS",
    "EXP_TYPE_PREFIX",
    "INSTRUMENTS",
    "MAX_EXPOSURE_BYTES",
    "MAX_NGROUPS",
    "MAX_NINTS",
    "MAX_ROW_PIXELS",
    "MAX_WINDOW_ROWS",
    "NIRISS_FWCPOS",
    "NIRSPEC_FILTERS",
    "NIRSPEC_FIXED_SLITS",
    "NIRSPEC_GRATINGS",
    "READOUT_PATTERNS",
    "READOUT_PATTERNS_BY_INSTRUMENT",
    "SUBARRAYS",
    "DETECTOR_SUBARRAYS",
    "FILTERS",
    "DetectorInfo",
    "ReadoutPattern",
    "Subarray",
    "UnknownInstrumentError",
    "bandpass_element",
    "detector",
    "filter_band",
    "keyword_pixel_scale",
    "fractional_bandwidth",
    "frame_time",
    "readout_pattern",
    "subarray",
    "exposure_bytes",
    "exposure_timing",
    "guide_window",
]


class UnknownInstrumentError(ValueError):
    """A detector, subarray or readout pattern that this system does not know."""


@dataclass(frozen=True)
class DetectorInfo:
    """Static facts about one detector.

    ``code`` is the detector number carried in the telemetry secondary header.
    ``pixel_scale`` is in arcsec/pixel; ``v2_ref``/``v3_ref`` (arcsec) place the
    detector centre in the telescope (V2, V3) frame for the pointing WCS.
    """

    name: str
    instrument: str
    code: int
    nx: int
    ny: int
    pixel_scale: float
    v2_ref: float
    v3_ref: float
    exp_type: str
    module: str | None = None
    channel: str | None = None
    refpix_border: int = 4
    n_amplifiers: int = 4
    # MIRI carries its reference output (REFOUT) as a separate stream.
    has_refout: bool = False


@dataclass(frozen=True)
class Subarray:
    """A readout window, 1-based SUBSTRT1/SUBSTRT2 as in the JWST keywords."""

    name: str
    xstart: int
    ystart: int
    xsize: int
    ysize: int
    noutputs: int


@dataclass(frozen=True)
class ReadoutPattern:
    name: str
    nframes: int
    groupgap: int


def _nircam(name: str, code: int, module: str, channel: str, v2: float, v3: float) -> DetectorInfo:
    scale = 0.063 if channel == "LONG" else 0.031
    return DetectorInfo(
        name=name, instrument="NIRCAM", code=code, nx=2048, ny=2048, pixel_scale=scale,
        v2_ref=v2, v3_ref=v3, exp_type="NRC_IMAGE", module=module, channel=channel,
    )


DETECTORS: dict[str, DetectorInfo] = {
    d.name: d
    for d in (
        _nircam("NRCA1", 1, "A", "SHORT", 120.6, -527.5),
        _nircam("NRCA2", 2, "A", "SHORT", 120.0, -459.7),
        _nircam("NRCA3", 3, "A", "SHORT", 51.3, -527.2),
        _nircam("NRCA4", 4, "A", "SHORT", 52.0, -459.3),
        _nircam("NRCALONG", 5, "A", "LONG", 86.1, -493.2),
        _nircam("NRCB1", 6, "B", "SHORT", -120.6, -459.2),
        _nircam("NRCB2", 7, "B", "SHORT", -120.0, -527.0),
        _nircam("NRCB3", 8, "B", "SHORT", -51.8, -459.5),
        _nircam("NRCB4", 9, "B", "SHORT", -52.6, -527.4),
        _nircam("NRCBLONG", 10, "B", "LONG", -86.8, -493.4),
        DetectorInfo("NRS1", "NIRSPEC", 11, 2048, 2048, 0.1, 378.6, -428.2, "NRS_IMAGE"),
        DetectorInfo("NRS2", "NIRSPEC", 12, 2048, 2048, 0.1, 378.6, -428.2, "NRS_IMAGE"),
        DetectorInfo(
            "MIRIMAGE", "MIRI", 13, 1032, 1024, 0.11, -453.4, -373.8, "MIR_IMAGE",
            refpix_border=4, n_amplifiers=4, has_refout=True,
        ),
        # the MRS detectors: CHANNEL the channels each holds (3 and 4, 1 and 2), as the public files
        DetectorInfo(
            "MIRIFULONG", "MIRI", 14, 1032, 1024, 0.196, -502.7, -318.7, "MIR_MRS", channel="34",
            n_amplifiers=4, has_refout=True,
        ),
        DetectorInfo(
            "MIRIFUSHORT", "MIRI", 15, 1032, 1024, 0.196, -502.7, -318.7, "MIR_MRS", channel="12",
            n_amplifiers=4, has_refout=True,
        ),
        DetectorInfo("NIS", "NIRISS", 16, 2048, 2048, 0.0656, -290.1, -697.5, "NIS_IMAGE"),
        DetectorInfo("GUIDER1", "FGS", 17, 2048, 2048, 0.069, 207.2, -697.5, "FGS_IMAGE"),
        DetectorInfo("GUIDER2", "FGS", 18, 2048, 2048, 0.069, 24.4, -697.6, "FGS_IMAGE"),
    )
}

DETECTORS_BY_CODE: dict[int, DetectorInfo] = {d.code: d for d in DETECTORS.values()}

INSTRUMENTS: tuple[str, ...] = ("NIRCAM", "NIRSPEC", "NIRISS", "MIRI", "FGS")

# Named subarrays per instrument: (xstart, ystart, xsize, ysize, noutputs); 1-based starts.
# Full frames are listed too so that every exposure resolves through one table.
SUBARRAYS: dict[str, dict[str, Subarray]] = {
    "NIRCAM": {
        "FULL": Subarray("FULL", 1, 1, 2048, 2048, 4),
        "SUB64P": Subarray("SUB64P", 1, 1, 64, 64, 1),
        "SUB160": Subarray("SUB160", 1, 1, 160, 160, 1),
        "SUB320": Subarray("SUB320", 1, 1, 320, 320, 1),
        "SUB640": Subarray("SUB640", 1, 1, 640, 640, 1),
        "SUB400P": Subarray("SUB400P", 1, 1, 400, 400, 1),
        # the grism time series' window (NRC_TSGRISM), public SUBSTRT/SUBSIZE: the bottom 64
        # rows, read (as the public mode allows) through one output: refpix then corrects the
        # window with all its reference pixels at once and adds no row-by-row noise of side
        # pixels (services/detector1/steps/refpix.py). TFRAME here 1.339 s; the public
        # documents give 1.3596 s, counting one more row of overhead for one output
        # (with four outputs both give 0.3406 s)
        "SUBGRISM64": Subarray("SUBGRISM64", 1, 1, 2048, 64, 1),
    },
    "NIRISS": {
        "FULL": Subarray("FULL", 1, 1, 2048, 2048, 4),
        "SUB64": Subarray("SUB64", 1, 1, 64, 64, 1),
        "SUB128": Subarray("SUB128", 1, 1, 128, 128, 1),
        "SUB256": Subarray("SUB256", 1, 1, 256, 256, 1),
        # the SOSS window (NIS_SOSS), public SUBSTRT/SUBSIZE: the top 256 rows, one output
        "SUBSTRIP256": Subarray("SUBSTRIP256", 1, 1793, 2048, 256, 1),
    },
    # NIRSpec fixed-slit windows on NRS1 (this system's placement, each holding its slit's
    # spectrum: services/simulator/spectrograph.py NIRSPEC_FS): full width, one output.
    "NIRSPEC": {
        "FULL": Subarray("FULL", 1, 1, 2048, 2048, 4),
        "ALLSLITS": Subarray("ALLSLITS", 1, 897, 2048, 256, 1),
        "SUBS200A2": Subarray("SUBS200A2", 1, 897, 2048, 64, 1),
        "SUBS200A1": Subarray("SUBS200A1", 1, 959, 2048, 64, 1),
        "SUB2048": Subarray("SUB2048", 1, 1025, 2048, 32, 1),
        "SUBS400A1": Subarray("SUBS400A1", 1, 1053, 2048, 64, 1),
        "SUBS200B1": Subarray("SUBS200B1", 1, 1089, 2048, 64, 1),
    },
    "FGS": {
        "FULL": Subarray("FULL", 1, 1, 2048, 2048, 4),
        "SUB128CNTR": Subarray("SUB128CNTR", 961, 961, 128, 128, 1),
    },
    "MIRI": {
        "FULL": Subarray("FULL", 1, 1, 1032, 1024, 4),
        "BRIGHTSKY": Subarray("BRIGHTSKY", 457, 51, 576, 512, 4),
        "SUB256": Subarray("SUB256", 413, 51, 320, 256, 4),
        "SUB128": Subarray("SUB128", 1, 889, 136, 128, 4),
        "SUB64": Subarray("SUB64", 1, 779, 72, 64, 4),
        # the LRS slitless window (MIR_LRS-SLITLESS), public SUBSTRT/SUBSIZE
        "SLITLESSPRISM": Subarray("SLITLESSPRISM", 1, 529, 72, 416, 4),
    },
}

READOUT_PATTERNS: dict[str, ReadoutPattern] = {
    p.name: p
    for p in (
        ReadoutPattern("RAPID", 1, 0),
        ReadoutPattern("BRIGHT1", 1, 1),
        ReadoutPattern("BRIGHT2", 2, 0),
        ReadoutPattern("SHALLOW2", 2, 3),
        ReadoutPattern("SHALLOW4", 4, 1),
        ReadoutPattern("MEDIUM2", 2, 8),
        ReadoutPattern("MEDIUM8", 8, 2),
        ReadoutPattern("DEEP2", 2, 18),
        ReadoutPattern("DEEP8", 8, 12),
        ReadoutPattern("NIS", 4, 0),
        ReadoutPattern("NISRAPID", 1, 0),
        ReadoutPattern("FAST", 1, 0),
        ReadoutPattern("SLOW", 1, 0),
        ReadoutPattern("FASTR1", 1, 0),
        ReadoutPattern("SLOWR1", 1, 0),
        ReadoutPattern("NRS", 4, 0),
        ReadoutPattern("NRSRAPID", 1, 0),
        ReadoutPattern("NRSIRS2", 5, 0),
        ReadoutPattern("NRSIRS2RAPID", 1, 0),
        ReadoutPattern("FGS", 4, 0),
        ReadoutPattern("FGSRAPID", 1, 0),
    )
}

# The readout patterns each instrument offers for science exposures.
READOUT_PATTERNS_BY_INSTRUMENT: dict[str, tuple[str, ...]] = {
    "NIRCAM": ("RAPID", "BRIGHT1", "BRIGHT2", "SHALLOW2", "SHALLOW4", "MEDIUM2", "MEDIUM8",
               "DEEP2", "DEEP8"),
    "NIRISS": ("NISRAPID", "NIS"),
    "MIRI": ("FAST", "SLOW", "FASTR1", "SLOWR1"),
    "NIRSPEC": ("NRSRAPID", "NRS", "NRSIRS2RAPID", "NRSIRS2"),
    "FGS": ("FGSRAPID", "FGS"),
}

# EXP_TYPE values start with the instrument's prefix (NRC_IMAGE, MIR_LRS-FIXEDSLIT, ...).
EXP_TYPE_PREFIX: dict[str, str] = {"NIRCAM": "NRC_", "NIRSPEC": "NRS_", "NIRISS": "NIS_", "MIRI": "MIR_",
                                   "FGS": "FGS_"}

# NIRISS's filter-wheel position angle (FWCPOS, deg) with an element in the beam: the wheel
# is taken to stop at its nominal place, the angle the WFSS SPECWCS's ``fwcpos_ref`` holds
# (the grisms' traces unrotated).
NIRISS_FWCPOS = 0.0

# Acceptance limits of a planned exposure. NINTS and NGROUPS travel in 16-bit fields of the
# telemetry secondary header, so 65535 is the format's bound; NIRCam's readout patterns have
# at most 20 groups (public NIRCam readout documentation); the other instruments are held to
# 1000 groups, this system's bound (the simulator's too). The total size bound keeps one
# exposure within what an ingest worker assembles in memory: 16 GiB is NIRCam FULL with 10
# groups and 200 integrations.
MAX_NINTS = 65535
MAX_NGROUPS: dict[str, int] = {"NIRCAM": 20, "NIRSPEC": 1000, "NIRISS": 1000, "MIRI": 1000, "FGS": 1000}
MAX_EXPOSURE_BYTES = 16 * 1024**3

# The widest and tallest readout window of any detector: bounds what one packet may carry.
MAX_ROW_PIXELS = max(d.nx for d in DETECTORS.values())
MAX_WINDOW_ROWS = max(d.ny for d in DETECTORS.values())

# MIRI frame times (s) per subarray in FAST mode (JWST user documentation).
_MIRI_FAST_TFRAME = {
    "FULL": 2.77504,
    "BRIGHTSKY": 0.86528,
    "SUB256": 0.29952,
    "SUB128": 0.11904,
    "SUB64": 0.08524,
    "SLITLESSPRISM": 0.15904,
}


def detector(name: str) -> DetectorInfo:
    try:
        return DETECTORS[name.upper()]
    except KeyError:
        raise UnknownInstrumentError(
            f"unknown detector {name!r}; known: {', '.join(sorted(DETECTORS))}"
        ) from None


def instrument_detectors(instrument: str | None, names: list[str]) -> list[str]:
    """``names`` upper-cased, after checking each is a known detector of ``instrument`` (when
    given) and none is listed twice; a ValueError names what is wrong."""
    names = [n.strip().upper() for n in names]
    for name in names:
        det = detector(name)
        if instrument and det.instrument != instrument:
            raise ValueError(f"detector {name} belongs to {det.instrument}, not to this observation's {instrument}")
    if len(set(names)) != len(names):
        raise ValueError(f"detectors listed twice: {names}")
    return names


#: Windows whose place differs by detector: ``(detector, name)`` -> the window on that
#: detector (the same size and outputs as the instrument's window of that name, so the
#: detectors read out together keep one timing). NIRCam's grism time series reads its
#: short-wave detector in a window of the grism's name placed where the target images
#: there (this system's focal plane puts it at full-frame row 117 of NRCA1, 1-based).
DETECTOR_SUBARRAYS: dict[tuple[str, str], Subarray] = {
    ("NRCA1", "SUBGRISM64"): Subarray("SUBGRISM64", 1, 85, 2048, 64, 1),
}


def subarray(instrument: str, name: str, detector_name: str | None = None) -> Subarray:
    """The readout window ``name`` of ``instrument``; on ``detector_name`` (when given)
    its place there (:data:`DETECTOR_SUBARRAYS`)."""
    table = SUBARRAYS.get(instrument.upper())
    if table is None:
        raise UnknownInstrumentError(f"unknown instrument {instrument!r}")
    try:
        window = table[name.upper()]
    except KeyError:
        raise UnknownInstrumentError(
            f"unknown subarray {name!r} for {instrument}; known: {', '.join(sorted(table))}"
        ) from None
    if detector_name is not None:
        return DETECTOR_SUBARRAYS.get((detector_name.upper(), window.name), window)
    return window


def guide_window(detector_name: str, ideal_x: float, ideal_y: float, size: int) -> Subarray:
    """The ``size`` x ``size`` window a guider reads around a guide star planned at
    (``ideal_x``, ``ideal_y``) arcsec of the FGS ideal frame: the ideal frame's origin is
    the detector centre and its axes run along the detector's columns and rows, at the
    guider's pixel scale; the window is centred on the pixel nearest the planned position
    and kept inside the light-sensitive area (clear of the reference-pixel border).
    ``name`` is ``GS<size>``; the simulator and ingest both place windows with it, so a
    guide-star product's SUBSTRT1/2 cut its reference files.
    """
    det = detector(detector_name)
    if det.instrument != "FGS":
        raise UnknownInstrumentError(f"{detector_name} is not an FGS guider")
    b = det.refpix_border
    if not 1 <= size <= min(det.nx, det.ny) - 2 * b:
        raise ValueError(f"a guide window of {size} pixels does not fit {detector_name}")

    def start(ideal: float, n: int) -> int:
        centre = (n - 1) / 2.0 + ideal / det.pixel_scale  # 0-based pixel of the planned position
        first = int(round(centre)) - size // 2
        return min(max(first, b), n - b - size) + 1

    return Subarray(f"GS{size}", start(ideal_x, det.nx), start(ideal_y, det.ny), size, size, 1)


def readout_pattern(name: str) -> ReadoutPattern:
    try:
        return READOUT_PATTERNS[name.upper()]
    except KeyError:
        raise UnknownInstrumentError(
            f"unknown readout pattern {name!r}; known: {', '.join(sorted(READOUT_PATTERNS))}"
        ) from None


def exposure_bytes(det: DetectorInfo, sub: Subarray, ngroups: int, nints: int) -> int:
    """Bytes of an exposure's uint16 pixels as ingest assembles them: SCI, the ZEROFRAME of a
    near-IR detector (one frame per integration) and MIRI's REFOUT (a quarter of the rows)."""
    frame = sub.xsize * sub.ysize * 2
    per_int = ngroups * frame
    if det.has_refout:
        per_int += ngroups * (sub.ysize // 4) * sub.xsize * 2
    else:
        per_int += frame
    return nints * per_int


def frame_time(instrument: str, sub: Subarray, readpatt: str = "FAST") -> float:
    """Frame time TFRAME in seconds.

    Near-IR (SIDECAR ASIC, 10 us per pixel): ``(xsize/noutputs + 12) * (ysize + 1) * 1e-5``,
    which gives 10.737 s for a 4-output full frame. MIRI uses the documented per-subarray
    values for FAST mode; SLOW mode is 10x slower per frame.
    """
    if instrument.upper() == "MIRI":
        t = _MIRI_FAST_TFRAME.get(sub.name.upper())
        if t is None:
            t = _MIRI_FAST_TFRAME["FULL"] * (sub.xsize * sub.ysize) / (1032 * 1024)
        return t * (10.0 if readpatt.upper().startswith("SLOW") else 1.0)
    return (sub.xsize / sub.noutputs + 12.0) * (sub.ysize + 1.0) * 1.0e-5


@dataclass(frozen=True)
class ExposureTiming:
    """Times in seconds for one exposure (keywords TFRAME, TGROUP, EFFINTTM, EFFEXPTM,
    DURATION, TMEASURE)."""

    tframe: float
    tgroup: float
    effinttm: float
    effexptm: float
    duration: float
    tmeasure: float


def exposure_timing(
    instrument: str, sub: Subarray, readpatt: str, ngroups: int, nints: int
) -> ExposureTiming:
    """Exposure timing from the readout pattern.

    TGROUP = (NFRAMES + GROUPGAP) * TFRAME. The public documents give no formula for the
    effective integration time, so this system defines it as the photon-collecting time up
    to the last read frame: near-IR ``NGROUPS * TGROUP - GROUPGAP * TFRAME`` (the gap
    after the last group is not read); MIRI ``NGROUPS * TGROUP``. TMEASURE, the time the
    ramp fit measures over, is ``(NGROUPS - 1) * TGROUP``. DURATION adds one reset frame
    per integration.
    """
    patt = readout_pattern(readpatt)
    tframe = frame_time(instrument, sub, readpatt)
    tgroup = (patt.nframes + patt.groupgap) * tframe
    if instrument.upper() == "MIRI":
        effinttm = ngroups * tgroup
    else:
        effinttm = ngroups * tgroup - patt.groupgap * tframe
    tmeasure = max(ngroups - 1, 1) * tgroup
    duration = nints * (ngroups * tgroup + tframe)
    return ExposureTiming(
        tframe=tframe,
        tgroup=tgroup,
        effinttm=effinttm,
        effexptm=effinttm * nints,
        duration=duration,
        tmeasure=tmeasure,
    )


# ------------------------------------------------------------------ filters

# Pivot wavelengths of the public JWST filters, micrometres.
FILTERS: dict[str, dict[str, float]] = {
    "NIRCAM": {
        "F070W": 0.704, "F090W": 0.901, "F115W": 1.154, "F140M": 1.404, "F150W": 1.501,
        "F150W2": 1.659, "F162M": 1.626, "F164N": 1.644, "F182M": 1.845, "F187N": 1.874,
        "F200W": 1.990, "F210M": 2.093, "F212N": 2.120,
        "F250M": 2.503, "F277W": 2.786, "F300M": 2.996, "F322W2": 3.247, "F323N": 3.237,
        "F335M": 3.365, "F356W": 3.563, "F360M": 3.621, "F405N": 4.055, "F410M": 4.092,
        "F430M": 4.280, "F444W": 4.421, "F460M": 4.624, "F466N": 4.654, "F470N": 4.707,
        "F480M": 4.834,
    },
    "NIRISS": {
        "F090W": 0.902, "F115W": 1.149, "F140M": 1.404, "F150W": 1.497, "F158M": 1.582,
        "F200W": 1.992, "F277W": 2.777, "F356W": 3.591, "F380M": 3.826, "F430M": 4.282,
        "F444W": 4.433, "F480M": 4.814,
    },
    "MIRI": {
        "F560W": 5.635, "F770W": 7.639, "F1000W": 9.953, "F1130W": 11.309, "F1280W": 12.810,
        "F1500W": 15.064, "F1800W": 17.984, "F2100W": 20.795, "F2550W": 25.365,
        "P750L": 7.5,  # the LRS prism (5-14 um), its nominal wavelength
    },
}


_BANDWIDTH_BY_CLASS = {"W2": 0.5, "W": 0.25, "M": 0.1, "N": 0.01}


def bandpass_element(instrument: str, filter_: str, pupil: str | None = None) -> str:
    """The filter that sets the bandpass: the pupil-wheel element when it is a filter,
    else the filter-wheel element (KeyError when neither is a known filter)."""
    table = FILTERS[instrument.upper()]
    for element in (pupil, filter_):
        if element and element.upper() in table:
            return element.upper()
    raise KeyError(f"no known {instrument} filter in filter={filter_!r}, pupil={pupil!r}")


def fractional_bandwidth(element: str) -> float:
    """dlambda/lambda of a filter from its class, the letters after the wavelength
    (F200W: W, F150W2: W2, F210M: M, F187N: N)."""
    suffix = element.upper().lstrip("F").lstrip("0123456789")
    try:
        return _BANDWIDTH_BY_CLASS[suffix]
    except KeyError:
        raise KeyError(f"filter {element!r} has no known bandwidth class (W, W2, M, N)") from None


# NIRSpec's filter-wheel elements, its grating-wheel elements (the dispersers, given as the
# plan's pupil) and its five fixed slits (FXD_SLIT; the public enumeration).
NIRSPEC_FILTERS: tuple[str, ...] = ("CLEAR", "F070LP", "F100LP", "F170LP", "F290LP")
NIRSPEC_GRATINGS: tuple[str, ...] = ("PRISM", "G140M", "G235M", "G395M", "G140H", "G235H", "G395H")
NIRSPEC_FIXED_SLITS: tuple[str, ...] = ("S200A1", "S200A2", "S400A1", "S1600A1", "S200B1")

# Dispersers and the wavelengths they pass (um): the MIRI LRS prism (a filter-wheel
# element), the NIRSpec prism (a grating-wheel element, behind CLEAR), G395M (behind
# F290LP, its one filter: the nominal 2.87-5.10 um) and NIRISS's GR700XD (a pupil-wheel
# element, behind CLEAR: SOSS, orders 1 and 2 together 0.6-2.8 um).
DISPERSER_BANDS: dict[tuple[str, str], tuple[float, float]] = {("MIRI", "P750L"): (5.0, 14.0),
                                                               ("NIRSPEC", "PRISM"): (0.6, 5.3),
                                                               ("NIRSPEC", "G395M"): (2.87, 5.10),
                                                               ("NIRISS", "GR700XD"): (0.6, 2.8)}


def keyword_pixel_scale(keywords: Mapping) -> float:
    """An exposure's pixel scale (arcsec/pixel): CDELT1 of its pointing WCS as ingest wrote
    it, else its DETECTOR's nominal scale. KeyError when it has neither (or an unknown
    detector)."""
    if keywords.get("CDELT1"):
        return abs(float(keywords["CDELT1"])) * 3600.0
    try:
        return detector(str(keywords["DETECTOR"])).pixel_scale
    except UnknownInstrumentError as exc:
        raise KeyError(str(exc)) from None


def filter_band(instrument: str, filter_: str | None, pupil: str | None = None) -> tuple[float, float] | None:
    """(shortest, longest) wavelength in micrometres of the bandpass the elements set: a
    disperser's range (:data:`DISPERSER_BANDS`), else the pivot wavelength -/+ half the
    bandwidth of the filter's class; None when neither element is a known filter of the
    instrument (a grism alone, an unknown instrument)."""
    disperser = (DISPERSER_BANDS.get((instrument.upper(), (filter_ or "").upper()))
                 or DISPERSER_BANDS.get((instrument.upper(), (pupil or "").upper())))
    if disperser is not None:
        return disperser
    try:
        element = bandpass_element(instrument, filter_ or "", pupil)
        pivot, width = FILTERS[instrument.upper()][element], fractional_bandwidth(element)
    except KeyError:
        return None
    return pivot * (1 - width / 2), pivot * (1 + width / 2)
