"""Selection rules: which header keywords select each reference type, how a reference's
value matches an exposure's, and the times USEAFTER is compared with.

Pure functions, no catalog: :mod:`shared.refdata.selection` applies them to a context.
The table follows the CRDS rmaps of JWST (reference/jwst-conventions.md section 7); every
type also selects by INSTRUME (exactly) and by USEAFTER against DATE-OBS + TIME-OBS.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from typing import Any

from shared.refdata.errors import HeaderError

__all__ = [
    "REFTYPES",
    "MatchKind",
    "SelectorSpec",
    "as_utc",
    "exposure_start",
    "format_time",
    "match_value",
    "normalize_header",
    "normalize_value",
    "parse_time",
    "reference_selectors",
    "selector_spec",
]

WILDCARDS = frozenset({"ANY", "N/A", "*"})
"""Reference values that match any exposure value, even a missing one."""

GENERIC = "GENERIC"
"""SUBARRAY value of a full-frame reference usable by every subarray."""


@dataclass(frozen=True)
class SelectorSpec:
    """Selector keywords of one reference type (INSTRUME is implied).

    ``keywords`` are always recorded (ANY when the reference header lacks one);
    ``optional`` ones only when the reference header has them.
    """

    keywords: tuple[str, ...]
    optional: tuple[str, ...] = ()

    @property
    def all(self) -> tuple[str, ...]:
        return self.keywords + self.optional


_SPECS: dict[str, SelectorSpec] = {
    # APCORR and ABVEGAOFFSET: one file per instrument and exposure type; the step picks the
    # row of its FILTER/PUPIL (MIRI: FILTER/SUBARRAY) in the file's table.
    "ABVEGAOFFSET": SelectorSpec(("EXP_TYPE",)),
    "APCORR": SelectorSpec(("EXP_TYPE",)),
    # MIRI MRS's cube-building parameters (the public MiriIFUCubeParsModel): one file for the
    # mode, by EXP_TYPE; cube_build picks its channel and band rows.
    "CUBEPAR": SelectorSpec(("EXP_TYPE",)),
    "AREA": SelectorSpec(("DETECTOR", "FILTER", "PUPIL", "EXP_TYPE")),
    "DARK": SelectorSpec(("DETECTOR", "READPATT", "SUBARRAY")),
    "DISTORTION": SelectorSpec(("DETECTOR",), optional=("EXP_TYPE", "FILTER")),
    "FILTEROFFSET": SelectorSpec(("DETECTOR",), optional=("EXP_TYPE",)),
    "FLAT": SelectorSpec(("DETECTOR", "FILTER", "PUPIL")),
    # MIRI MRS's fringe flat (the public FringeModel): per detector and band.
    "FRINGE": SelectorSpec(("DETECTOR",), optional=("EXP_TYPE", "CHANNEL", "BAND")),
    "GAIN": SelectorSpec(("DETECTOR", "SUBARRAY")),
    "LINEARITY": SelectorSpec(("DETECTOR", "SUBARRAY")),
    "MASK": SelectorSpec(("DETECTOR", "SUBARRAY")),
    # NIRSpec's shutters stuck open or closed (one JSON file for the MSA, both detectors).
    "MSAOPER": SelectorSpec((), optional=("EXP_TYPE",)),
    # PATHLOSS and SPECWCS of a spectroscopic mode; PHOTOM by EXP_TYPE where the file names
    # one (imaging and each spectroscopic mode have their own, as in CRDS).
    "PATHLOSS": SelectorSpec(("DETECTOR", "EXP_TYPE")),
    "PHOTOM": SelectorSpec(("DETECTOR",), optional=("EXP_TYPE",)),
    "READNOISE": SelectorSpec(("DETECTOR", "READPATT", "SUBARRAY")),
    # MIRI MRS's slice map (the public RegionsModel): per detector, its channels and band.
    "REGIONS": SelectorSpec(("DETECTOR", "CHANNEL", "BAND", "EXP_TYPE")),
    "RSCD": SelectorSpec(("DETECTOR",)),
    "SATURATION": SelectorSpec(("DETECTOR",)),
    "SPECWCS": SelectorSpec(("DETECTOR", "EXP_TYPE")),
    # NIRISS SOSS's traces, wavelengths and throughputs per order (the public SpecTraceModel):
    # one per readout window, as CRDS has them, and per filter/pupil where the file names them.
    "SPECTRACE": SelectorSpec(("DETECTOR", "EXP_TYPE", "SUBARRAY"), optional=("FILTER", "PUPIL")),
    "SUPERBIAS": SelectorSpec(("DETECTOR", "READPATT", "SUBARRAY")),
    # The wavelength range of each filter/grating pair (ASDF, the public WavelengthrangeModel):
    # by EXP_TYPE alone, as CRDS selects NIRSpec's; the step picks its FILTER_GRATING entry.
    "WAVELENGTHRANGE": SelectorSpec(("EXP_TYPE",)),
    # A wide-field grism's dispersed sky (the public WfssBkgModel), per grism and blocking filter.
    "WFSSBKG": SelectorSpec(("DETECTOR", "EXP_TYPE", "FILTER", "PUPIL")),
}

# Instrument-specific rules that replace the general one.
_INSTRUMENT_SPECS: dict[tuple[str, str], SelectorSpec] = {
    ("DARK", "NIRCAM"): SelectorSpec(("DETECTOR", "EXP_TYPE", "NOUTPUTS", "SUBARRAY")),
    # MIRI: the MRS's references are per detector, channels (CHANNEL 12 or 34) and band
    # (BAND SHORT, MEDIUM, LONG), as in CRDS; CHANNEL and BAND select where the file names
    # them (MIRI only: elsewhere CHANNEL is NIRCam's SHORT/LONG, which the catalog's
    # exposure rows do not carry). An imaging FLAT's BAND is N/A.
    ("DISTORTION", "MIRI"): SelectorSpec(("DETECTOR",), optional=("EXP_TYPE", "FILTER", "CHANNEL", "BAND")),
    ("FLAT", "MIRI"): SelectorSpec(("DETECTOR", "FILTER", "BAND", "READPATT", "SUBARRAY"), optional=("CHANNEL",)),
    ("PHOTOM", "MIRI"): SelectorSpec(("DETECTOR",), optional=("EXP_TYPE", "CHANNEL", "BAND")),
    ("SPECWCS", "MIRI"): SelectorSpec(("DETECTOR", "EXP_TYPE"), optional=("CHANNEL", "BAND")),
    # NIRCam's grism dispersion (the public NIRCAMGrismModel, ASDF): one per grism and
    # filter, as CRDS selects them (EXP_TYPE through P_EXPTYPE: NRC_TSGRISM, NRC_WFSS).
    ("SPECWCS", "NIRCAM"): SelectorSpec(("DETECTOR", "EXP_TYPE", "FILTER", "PUPIL")),
    # NIRISS's wide-field grisms (the public NIRISSGrismModel): per grism (FILTER) and blocking filter (PUPIL).
    ("SPECWCS", "NIRISS"): SelectorSpec(("DETECTOR", "EXP_TYPE", "FILTER", "PUPIL")),
}

REFTYPES: tuple[str, ...] = tuple(sorted(_SPECS))


def selector_spec(reftype: str, instrument: str) -> SelectorSpec:
    """The selector keywords of ``reftype`` for ``instrument``; KeyError for an unknown type."""
    reftype, instrument = reftype.upper(), instrument.upper()
    return _INSTRUMENT_SPECS.get((reftype, instrument)) or _SPECS[reftype]


def normalize_value(value: Any) -> str | None:
    """A header value as the upper-case string selection compares; None when absent/blank."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "T" if value else "F"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip().upper()
    return text or None


def normalize_header(header: Mapping[str, Any]) -> dict[str, str]:
    """Keywords upper-cased, values normalized, absent/blank values dropped."""
    out: dict[str, str] = {}
    for key, value in header.items():
        v = normalize_value(value)
        if v is not None and key:
            out[str(key).upper()] = v
    return out


def reference_selectors(reftype: str, instrument: str, header: Mapping[str, Any]) -> dict[str, str]:
    """The selectors a reference file's header declares: {keyword: value or pattern}
    (a CRDS pattern keyword such as P_EXP_TY already stands for its keyword in the header
    :func:`shared.refdata.files.reference_header` gives)."""
    hdr = normalize_header(header)
    spec = selector_spec(reftype, instrument)
    selectors = {k: hdr.get(k, "ANY") for k in spec.keywords}
    selectors.update({k: hdr[k] for k in spec.optional if k in hdr})
    return selectors


class MatchKind(enum.IntEnum):
    """How a reference value matched; higher is more specific."""

    WILDCARD = 0  # ANY, N/A, *, or SUBARRAY GENERIC
    PATTERN = 1  # alternatives A|B or a glob
    EXACT = 2


def match_value(keyword: str, pattern: str | None, value: str | None) -> MatchKind | None:
    """How the reference ``pattern`` of ``keyword`` matches the exposure's ``value``
    (None: no match). A missing exposure value only matches a wildcard."""
    pat = normalize_value(pattern) or "ANY"
    if pat in WILDCARDS or (keyword.upper() == "SUBARRAY" and pat == GENERIC):
        return MatchKind.WILDCARD
    val = normalize_value(value)
    if val is None:
        return None
    alternatives = [a.strip() for a in pat.split("|")]
    if len(alternatives) == 1 and not any(c in pat for c in "*?["):
        return MatchKind.EXACT if pat == val else None
    for alt in alternatives:
        if alt in WILDCARDS or alt == val or fnmatchcase(val, alt):
            return MatchKind.PATTERN
    return None


def as_utc(when: datetime) -> datetime:
    """Aware UTC datetime (SQLite returns naive datetimes for UTC ones)."""
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def parse_time(text: Any) -> datetime:
    """A USEAFTER or exposure time: ISO 8601 (``2022-01-01T00:00:00``, a space instead
    of T, a date alone) or the older CRDS form ``Jan 01 2022 00:00:00``; UTC unless an
    offset is given. ValueError when it is neither."""
    raw = str(text).strip()
    try:
        return as_utc(datetime.fromisoformat(raw))
    except ValueError:
        pass
    for fmt in ("%b %d %Y %H:%M:%S", "%b %d %Y %H:%M:%S.%f"):
        try:
            return as_utc(datetime.strptime(raw, fmt))
        except ValueError:
            continue
    raise ValueError(f"{raw!r} is not a date and time (expected e.g. 2022-01-01T00:00:00)")


def format_time(when: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SS`` in UTC (fraction kept when there is one)."""
    when = as_utc(when)
    return when.strftime("%Y-%m-%dT%H:%M:%S" + (".%f" if when.microsecond else ""))


def exposure_start(header: Mapping[str, Any]) -> datetime:
    """The exposure start DATE-OBS + TIME-OBS (UTC) that USEAFTER is compared with."""
    hdr = normalize_header(header)
    date = hdr.get("DATE-OBS")
    if date is None:
        raise HeaderError("the exposure header has no DATE-OBS, so USEAFTER cannot be applied")
    text = date if "T" in date else f"{date}T{hdr.get('TIME-OBS', '00:00:00')}"
    try:
        return parse_time(text)
    except ValueError:
        raise HeaderError(f"DATE-OBS/TIME-OBS {text!r} is not a date and time") from None
