"""The observation plan: what the observatory was asked to do (APT-like JSON).

The simulator writes it beside the telemetry; ingest reads it to know the shape of each
exposure and to fill the headers; the association builder (later) reads which exposures
each candidate expects. Every exposure is listed explicitly with its identifiers, so no
consumer has to re-derive the visit/exposure numbering.

Candidates (``Plan.candidates``) are the proposal-defined associations (``c1NNN``) the
proposer asked for: a MOSAIC groups two or more observations into one Level-3 product; a
BACKGROUND candidate links science observations with dedicated background ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from shared.access import default_eap_months, eap_problem
from shared.instruments import (
    DETECTORS,
    EXP_TYPE_PREFIX,
    INSTRUMENTS,
    MAX_EXPOSURE_BYTES,
    MAX_NGROUPS,
    MAX_NINTS,
    READOUT_PATTERNS_BY_INSTRUMENT,
    SUBARRAYS,
    exposure_bytes,
    exposure_timing,
    instrument_detectors,
)
from shared.naming import BadNameError, parse_msa_metadata
from shared.storage import Bucket

__all__ = [
    "PLAN_SCHEMA_VERSION",
    "CANDIDATE_TYPES",
    "Aperture",
    "Channel",
    "DirectImage",
    "DitherPattern",
    "GuideStar",
    "PlannedExposure",
    "Observation",
    "Plan",
    "PlannedCandidate",
    "Pointing",
    "Target",
    "candidate_id",
    "candidate_problem",
    "latest_plan_key",
    "latest_program_file_key",
    "target_key",
    "load_latest_plan",
    "plan_filename",
    "prerequisite_problem",
    "validation_summary",
]

PLAN_SCHEMA_VERSION = 1

# Planned exposure times must fall between the observatory's launch and a sane horizon.
EARLIEST_EXPOSURE = datetime(2021, 12, 25, tzinfo=UTC)
LATEST_EXPOSURE = datetime(2060, 1, 1, tzinfo=UTC)

Category = Literal["GO", "GTO", "ERS", "DD", "CAL", "ENG"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def target_key(name: str) -> str:
    """What two target names must share to be the same name: letters and digits only,
    case-folded (after Unicode compatibility normalization), so ``NGC 1234``, ``ngc1234`` and
    ``N.G.C.-1234`` are one name. The archive's name resolution matches names and aliases by it."""
    import unicodedata

    folded = unicodedata.normalize("NFKD", name).casefold()
    return "".join(c for c in folded if c.isalnum())


MAX_ALIASES = 20


class Target(_Frozen):
    id: int = Field(ge=1, description="Target number within the program (TARGETID).")
    name: str = Field(description="Catalog name (TARGNAME).")
    ra: float = Field(ge=0.0, lt=360.0, description="Right ascension, degrees (TARG_RA).")
    dec: float = Field(ge=-90.0, le=90.0, description="Declination, degrees (TARG_DEC).")
    target_type: Literal["FIXED", "MOVING", "GENERIC"] = "FIXED"
    aliases: list[str] = Field(default_factory=list, max_length=MAX_ALIASES, description=(
        "Other names of the target (e.g. HUDF for a field named after its program), by which the "
        "archive also resolves it; case, spaces and punctuation do not count."))

    @field_validator("aliases")
    @classmethod
    def _aliases(cls, v: list[str], info: ValidationInfo) -> list[str]:
        keys = {target_key(info.data.get("name", ""))}
        out = []
        for alias in v:
            alias = " ".join(alias.split())
            if not target_key(alias) or len(alias) > 200:
                raise ValueError(f"alias {alias!r}: an alias needs a letter or digit, and at most 200 characters")
            if target_key(alias) in keys:
                raise ValueError(f"alias {alias!r} is the target's name, or another of its aliases, again "
                                 "(case, spaces and punctuation do not count)")
            keys.add(target_key(alias))
            out.append(alias)
        return out


class DitherPattern(_Frozen):
    pattern_type: str = Field("NONE", description="PATTTYPE, e.g. 4-POINT-BOX.")
    optimized_for: Literal["POINT-SOURCE", "EXTENDED-SOURCE"] | None = Field(None, description=(
        "DITHOPFR: what a MIRI MRS dither is optimized for, from which spec2's srctype takes a point source "
        "from an extended one; None for the other patterns."))
    offsets: list[tuple[float, float]] = Field(
        default_factory=lambda: [(0.0, 0.0)],
        description="Offsets of each dither point in arcsec along detector x and y.",
    )

    @property
    def npoints(self) -> int:
        return len(self.offsets)


class Pointing(_Frozen):
    """Where the aperture reference point of the detector pointed (RA_REF/DEC_REF/ROLL_REF),
    and where that point is in the telescope frame (V2_REF/V3_REF)."""

    ra: float = Field(ge=0.0, le=360.0, description="RA_REF, degrees.")
    dec: float = Field(ge=-90.0, le=90.0, description="DEC_REF, degrees.")
    roll: float = Field(0.0, ge=-360.0, le=360.0, description="Position angle of +V3 (detector +y), degrees E of N.")
    v2_ref: float | None = Field(None, description="V2 of the aperture reference point (the window centre), arcsec.")
    v3_ref: float | None = Field(None, description="V3 of the aperture reference point (the window centre), arcsec.")


class Aperture(_Frozen):
    """A named aperture whose reference point is not a window's centre (the MIRI LRS slit,
    MIRIM_SLIT; a NIRSpec fixed slit, NRS_S200A1_SLIT, ...): the point (V2, V3, arcsec) the target is placed on, which the exposures'
    headers are expressed about (APERNAME, V2_REF/V3_REF, RA_REF/DEC_REF/ROLL_REF, and
    XOFFSET/YOFFSET the target's place in its ideal frame)."""

    name: str
    v2_ref: float
    v3_ref: float
    x_ref: float | None = Field(None, description=(
        "1-based full-frame column of the reference point on its detector (the SIAF's XSciRef; "
        "the exposure's XREF_SCI in its window)."))
    y_ref: float | None = Field(None, description="1-based full-frame row of the reference point (YREF_SCI).")


class Channel(_Frozen):
    """Detectors of an observation read out at the same time as its own but in another
    mode, with their own filter and pupil: NIRCam's short-wave channel during a grism time
    series (the long-wave grism NRC_TSGRISM, the short-wave imaging NRC_TSIMAGE). Their
    exposures share the observation's numbers, timing and window name; each file says its
    own EXP_TYPE, FILTER and PUPIL (:meth:`Observation.for_detector`)."""

    detectors: list[str] = Field(min_length=1)
    exp_type: str
    filter: str
    pupil: str = "CLEAR"

    @field_validator("exp_type", "filter", "pupil")
    @classmethod
    def _upper(cls, v: str) -> str:
        return v.upper()

    @field_validator("detectors")
    @classmethod
    def _detectors(cls, v: list[str]) -> list[str]:
        return instrument_detectors(None, v)


class DirectImage(_Frozen):
    """The direct images of a wide-field slitless observation (NIS_WFSS, NRC_WFSS): the
    field imaged through the same blocking filter without the grism, in activities of
    their own within the observation's visits, so that the pipeline can find the sources
    whose spectra the grism exposures hold. Their exposures share the observation's
    detectors, readout and window; each file says its own EXP_TYPE, FILTER and PUPIL
    (:meth:`Observation.for_exposure`)."""

    exp_type: str = Field(description="The imaging EXP_TYPE, NIS_IMAGE or NRC_IMAGE.")
    filter: str
    pupil: str = "CLEAR"
    activities: list[int] = Field(min_length=1, description=(
        "The activity numbers of the observation's exposures that are direct images."))

    @field_validator("exp_type", "filter", "pupil")
    @classmethod
    def _upper(cls, v: str) -> str:
        return v.upper()


class PlannedExposure(_Frozen):
    """One exposure of one detector, with every identifier of its file name."""

    visit: int = Field(ge=1, le=999)
    visit_group: int = Field(1, ge=1, le=99)
    sequence: int = Field(1, ge=0, le=9, description="Parallel sequence id.")
    activity: int = Field(1, ge=1, le=99, description="Activity number (base 10 here).")
    exposure: int = Field(ge=1, le=99999)
    detector: str
    dither_point: int = Field(1, ge=1)
    start_time: datetime = Field(description="Planned start (UTC).")
    pointing: Pointing

    @field_validator("detector")
    @classmethod
    def _detector(cls, v: str) -> str:
        v = v.upper()
        if v not in DETECTORS:
            raise ValueError(f"unknown detector {v!r}; known: {', '.join(sorted(DETECTORS))}")
        return v

    @field_validator("start_time")
    @classmethod
    def _start(cls, v: datetime) -> datetime:
        v = v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)
        if not EARLIEST_EXPOSURE <= v < LATEST_EXPOSURE:
            raise ValueError(f"start time {v.isoformat()} is outside {EARLIEST_EXPOSURE.date()} .. "
                             f"{LATEST_EXPOSURE.date()} (launch .. the plan's horizon)")
        return v


class GuideStar(_Frozen):
    """The guide star selected for one visit of an observation (GS_ORDER 1): what the
    observatory acquires and tracks with the FGS while the visit's exposures are taken."""

    visit: int = Field(ge=1, le=999)
    id: str = Field(min_length=1, max_length=24, description="Guide star catalog identifier (GDSTARID).")
    ra: float = Field(ge=0.0, lt=360.0, description="GS_RA, degrees.")
    dec: float = Field(ge=-90.0, le=90.0, description="GS_DEC, degrees.")
    ra_uncert: float = Field(0.0, ge=0.0, description="GS_URA, degrees.")
    dec_uncert: float = Field(0.0, ge=0.0, description="GS_UDEC, degrees.")
    fgs_mag: float = Field(description="GS_MAG: magnitude in the FGS band.")
    fgs_mag_uncert: float = Field(0.0, ge=0.0, description="GS_UMAG.")
    detector: Literal["GUIDER1", "GUIDER2"] = "GUIDER1"
    ideal_x: float = Field(description="GSIDL_X: planned position in the FGS ideal frame, arcsec.")
    ideal_y: float = Field(description="GSIDL_Y: planned position in the FGS ideal frame, arcsec.")


class Observation(_Frozen):
    number: int = Field(ge=1, le=999)
    target_id: int
    template: str = Field(description="APT template, e.g. 'NIRCam Imaging'.")
    instrument: str
    exp_type: str
    detectors: list[str]
    filter: str
    pupil: str = "CLEAR"
    readpatt: str
    ngroups: int = Field(ge=1)
    nints: int = Field(ge=1)
    subarray: str = "FULL"
    dither: DitherPattern = Field(default_factory=DitherPattern)
    tsovisit: bool = False
    is_background: bool = False
    is_psf: bool = False
    pre_image_for: list[int] = Field(default_factory=list, description=(
        "Observations this imaging observation is the pre-image of (their MSA configurations are "
        "planned from it): its products are prerequisites of theirs."))
    msa_metadata: str | None = Field(None, description=(
        "MSAMETFL of a NIRSpec MOS observation (NRS_MSASPEC): its MSA metadata file, "
        "jw<ppppp><ooo><vvv>_<cc>_msa.fits, delivered with the plan."))
    aperture: Aperture | None = Field(None, description=(
        "The aperture the target is placed on when it is not the detectors' windows (the LRS slit)."))
    fixed_slit: str | None = Field(None, description=(
        "FXD_SLIT of a NIRSpec fixed-slit observation (NRS_FIXEDSLIT): S200A1, S200A2, S400A1, S1600A1 or S200B1."))
    band: Literal["SHORT", "MEDIUM", "LONG"] | None = Field(None, description=(
        "BAND of a MIRI MRS observation (MIR_MRS): the grating setting every channel of both detectors "
        "takes (the public A/B/C); None for every other mode."))
    exposures: list[PlannedExposure] = Field(default_factory=list)
    guide_stars: list[GuideStar] = Field(default_factory=list, description=(
        "The guide star of each guided visit; none for unguided (dark) observations."))
    simultaneous: Channel | None = Field(None, description=(
        "Detectors (among ``detectors``) read at the same time in another mode: NIRCam's "
        "short-wave imaging (NRC_TSIMAGE) during a grism time series. The observation's "
        "exp_type, filter and pupil are its other detectors'."))
    direct_image: DirectImage | None = Field(None, description=(
        "A wide-field slitless observation's direct images: the exposures of these activities "
        "image the field without the grism. The observation's exp_type, filter and pupil are "
        "its dispersed exposures'."))

    @field_validator("filter", "pupil")
    @classmethod
    def _upper(cls, v: str) -> str:
        return v.upper()

    @field_validator("instrument")
    @classmethod
    def _instrument(cls, v: str) -> str:
        v = v.upper()
        if v not in INSTRUMENTS:
            raise ValueError(f"unknown instrument {v!r}; known: {', '.join(INSTRUMENTS)}")
        return v

    @field_validator("exp_type")
    @classmethod
    def _exp_type(cls, v: str, info: ValidationInfo) -> str:
        v = v.upper()
        prefix = EXP_TYPE_PREFIX.get(info.data.get("instrument", ""))
        if prefix and not v.startswith(prefix):
            raise ValueError(f"EXP_TYPE {v!r} is not a {info.data['instrument']} type (those start with {prefix})")
        return v

    @field_validator("detectors")
    @classmethod
    def _detectors(cls, v: list[str], info: ValidationInfo) -> list[str]:
        if not v:
            raise ValueError("an observation needs at least one detector")
        return instrument_detectors(info.data.get("instrument"), v)

    @field_validator("readpatt")
    @classmethod
    def _readpatt(cls, v: str, info: ValidationInfo) -> str:
        v = v.upper()
        instrument = info.data.get("instrument")
        allowed = READOUT_PATTERNS_BY_INSTRUMENT.get(instrument or "", ())
        if instrument and v not in allowed:
            raise ValueError(f"readout pattern {v!r} is not one of {instrument}'s: {', '.join(allowed)}")
        return v

    @field_validator("ngroups")
    @classmethod
    def _ngroups(cls, v: int, info: ValidationInfo) -> int:
        limit = MAX_NGROUPS.get(info.data.get("instrument", ""), min(MAX_NGROUPS.values()))
        if v > limit:
            raise ValueError(f"{v} groups per integration; {info.data.get('instrument', 'the instrument')} allows at most {limit}")
        return v

    @field_validator("nints")
    @classmethod
    def _nints(cls, v: int) -> int:
        if v > MAX_NINTS:
            raise ValueError(f"{v} integrations; at most {MAX_NINTS} (a 16-bit field of the telemetry)")
        return v

    @field_validator("subarray")
    @classmethod
    def _subarray(cls, v: str, info: ValidationInfo) -> str:
        v = v.upper()
        table = SUBARRAYS.get(info.data.get("instrument", ""))
        if table is not None and v not in table:
            raise ValueError(f"unknown subarray {v!r} for {info.data['instrument']}; known: {', '.join(sorted(table))}")
        return v

    @model_validator(mode="after")
    def _exposures(self) -> Observation:
        sub = SUBARRAYS[self.instrument][self.subarray]
        for name in self.detectors:
            size = exposure_bytes(DETECTORS[name], sub, self.ngroups, self.nints)
            if size > MAX_EXPOSURE_BYTES:
                raise ValueError(
                    f"nints: {self.nints} integrations of {self.ngroups} groups of {sub.name} on {name} make "
                    f"{size / 2**30:.1f} GiB, more than the {MAX_EXPOSURE_BYTES / 2**30:.0f} GiB an exposure may have"
                )
        seen = set()
        for k, e in enumerate(self.exposures):
            if e.detector not in self.detectors:
                raise ValueError(f"exposures.{k}.detector: {e.detector} is not one of this observation's "
                                 f"detectors {self.detectors}")
            ident = (e.visit, e.visit_group, e.sequence, e.activity, e.exposure, e.detector)
            if ident in seen:
                raise ValueError(f"exposures.{k}: visit {e.visit} exposure {e.exposure} on {e.detector} is planned twice")
            seen.add(ident)
        return self

    @model_validator(mode="after")
    def _simultaneous(self) -> Observation:
        if self.simultaneous is None:
            return self
        others = [d for d in self.simultaneous.detectors if d not in self.detectors]
        if others:
            raise ValueError(f"simultaneous.detectors: {others} are not among the observation's detectors {self.detectors}")
        if len(self.simultaneous.detectors) == len(self.detectors):
            raise ValueError("simultaneous.detectors: every detector of the observation is listed; the channel is "
                             "the detectors read in another mode beside the observation's own")
        prefix = EXP_TYPE_PREFIX.get(self.instrument)
        if prefix and not self.simultaneous.exp_type.startswith(prefix):
            raise ValueError(f"simultaneous.exp_type: {self.simultaneous.exp_type!r} is not a {self.instrument} type")
        return self

    @model_validator(mode="after")
    def _direct_image(self) -> Observation:
        direct = self.direct_image
        if direct is None:
            return self
        prefix = EXP_TYPE_PREFIX.get(self.instrument)
        if prefix and not direct.exp_type.startswith(prefix):
            raise ValueError(f"direct_image.exp_type: {direct.exp_type!r} is not a {self.instrument} type")
        if direct.exp_type == self.exp_type:
            raise ValueError(f"direct_image.exp_type: the direct images are taken in another mode than the "
                             f"observation's own ({self.exp_type})")
        if self.exposures:
            activities = {e.activity for e in self.exposures}
            missing = sorted(set(direct.activities) - activities)
            if missing:
                raise ValueError(f"direct_image.activities: {missing} name no planned exposure (the observation's "
                                 f"activities: {sorted(activities)})")
            if activities <= set(direct.activities):
                raise ValueError("direct_image.activities: every exposure is a direct image; the observation "
                                 "needs dispersed exposures of its own")
        return self

    def for_exposure(self, exp: PlannedExposure) -> Observation:
        """The observation as one exposure sees it: its detector's part
        (:meth:`for_detector`) and, for a wide-field slitless observation, the direct
        images' mode or the dispersed exposures' (:attr:`direct_image`)."""
        view = self.for_detector(exp.detector)
        return view._part(exp.activity in view.direct_image.activities) if view.direct_image else view

    def _part(self, direct: bool) -> Observation:
        """The direct images of a wide-field slitless observation (its imaging mode and
        their exposures), or its dispersed exposures; itself without direct images."""
        d = self.direct_image
        if d is None:
            return self
        update = {"exp_type": d.exp_type, "filter": d.filter, "pupil": d.pupil} if direct else {}
        exposures = [e for e in self.exposures if (e.activity in d.activities) == direct]
        return self.model_copy(update={**update, "direct_image": None, "exposures": exposures})

    def for_detector(self, name: str) -> Observation:
        """The observation as ``name``'s exposures see it: for a detector of the
        :attr:`simultaneous` channel its mode (exp_type, filter, pupil), its detectors and
        their exposures; for another detector the observation's own mode, detectors and
        exposures without the channel's. Itself when there is no channel."""
        if self.simultaneous is None:
            return self
        channel = self.simultaneous
        if name.upper() in channel.detectors:
            dets = list(channel.detectors)
            # the channel images its own window's centre: no named aperture of the observation's
            update = {"exp_type": channel.exp_type, "filter": channel.filter, "pupil": channel.pupil,
                      "aperture": None}
        else:
            dets = [d for d in self.detectors if d not in channel.detectors]
            update = {}
        return self.model_copy(update={**update, "detectors": dets, "simultaneous": None,
                                       "exposures": [e for e in self.exposures if e.detector in dets]})

    def channels(self) -> list[Observation]:
        """The observation split by mode (:meth:`for_exposure`): itself alone, or its own
        detectors' part then its simultaneous channel's; a wide-field slitless
        observation's dispersed exposures, then its direct images."""
        if self.simultaneous is None:
            parts = [self]
        else:
            own = next(d for d in self.detectors if d not in self.simultaneous.detectors)
            parts = [self.for_detector(own), self.for_detector(self.simultaneous.detectors[0])]
        return [view for p in parts for view in ([p._part(False), p._part(True)] if p.direct_image else [p])]

    def guide_star(self, visit: int) -> GuideStar | None:
        """The guide star selected for ``visit`` (None: an unguided visit)."""
        return next((g for g in self.guide_stars if g.visit == visit), None)

    def visit_window(self, visit: int) -> tuple[datetime, datetime]:
        """(first planned start, last planned end) of this observation's exposures in ``visit``:
        when its telemetry should have been taken."""
        starts = [e.start_time for e in self.exposures if e.visit == visit]
        if not starts:
            raise KeyError(f"observation {self.number:03d} plans no exposure in visit {visit:03d}")
        timing = exposure_timing(self.instrument, SUBARRAYS[self.instrument][self.subarray], self.readpatt,
                                 self.ngroups, self.nints)
        return min(starts), max(starts) + timedelta(seconds=timing.duration)


CANDIDATE_TYPES = ("MOSAIC", "BACKGROUND")
_FIRST_CANDIDATE = 1000


def candidate_id(index: int) -> str:
    """The id of the proposal candidate at 0-based position ``index``: c1000, c1001, ..."""
    return f"c{_FIRST_CANDIDATE + index}"


def candidate_problem(kind: str, observations: Iterable[int], background: Mapping[int, bool]) -> str | None:
    """Why a candidate cannot be made, or None.

    ``background`` maps every observation number of the program to its is_background
    flag. The message starts with the field it is about (``observations: ...``).
    """
    numbers = list(observations)
    unknown = [n for n in numbers if n not in background]
    if unknown:
        return f"observations: {unknown} are not observations of the program (known: {sorted(background)})"
    if len(set(numbers)) != len(numbers):
        return f"observations: listed twice in {numbers}"
    if kind == "MOSAIC" and len(numbers) < 2:
        return f"observations: a MOSAIC candidate needs at least 2 observations, got {numbers}"
    if kind == "BACKGROUND":
        if not any(background[n] for n in numbers):
            return f"observations: a BACKGROUND candidate needs an observation with is_background true, got {numbers}"
        if all(background[n] for n in numbers):
            return f"observations: a BACKGROUND candidate needs a science observation, got only backgrounds {numbers}"
    return None


def prerequisite_problem(program: str, obs: Observation, numbers: set[int]) -> str | None:
    """Why an observation's prerequisites (``pre_image_for``, ``msa_metadata``) are wrong,
    or None; the message starts with the field it is about."""
    for n in obs.pre_image_for:
        if n == obs.number:
            return f"pre_image_for: observation {n} cannot be its own pre-image"
        if n not in numbers:
            return f"pre_image_for: {n} is not an observation of the program (known: {sorted(numbers)})"
    if obs.pre_image_for and not obs.exp_type.endswith("_IMAGE"):
        return f"pre_image_for: a pre-image is an imaging observation, not {obs.exp_type}"
    if obs.msa_metadata is not None:
        if obs.exp_type != "NRS_MSASPEC":
            return f"msa_metadata: only a NIRSpec MOS observation (NRS_MSASPEC) has one, not {obs.exp_type}"
        try:
            name = parse_msa_metadata(obs.msa_metadata)
        except BadNameError as exc:
            return f"msa_metadata: {exc}"
        if (name.program, name.observation) != (program, obs.number):
            return (f"msa_metadata: {obs.msa_metadata} names program {name.program} observation "
                    f"{name.observation:03d}, not this observation ({program} {obs.number:03d})")
    return None


class PlannedCandidate(_Frozen):
    """A proposal-defined association candidate (ASN_CANDIDATE ``(id, type)`` in the pool)."""

    id: str = Field(pattern=r"^c1\d{3}$", description="Candidate id, c1000, c1001, ... in plan order.")
    type: Literal["MOSAIC", "BACKGROUND"] = Field(description="MOSAIC or BACKGROUND (any case on input).")
    observations: list[int] = Field(min_length=1, description="Observation numbers in the candidate.")

    @field_validator("type", mode="before")
    @classmethod
    def _upper(cls, v):
        return v.strip().upper() if isinstance(v, str) else v


class Plan(_Frozen):
    schema_version: Literal[1] = PLAN_SCHEMA_VERSION
    program: str = Field(pattern=r"^\d{5}$", description="Five-digit, zero-padded.")
    title: str
    pi_name: str
    pi_user: str | None = Field(None, description="PI's identity (e-mail); may grant data access.")
    category: Category = "GO"
    eap_months: int | None = Field(None, ge=0, le=24, description=(
        "Exclusive-access months; default: the category's (GO/GTO 12, others 0). GO/GTO may ask "
        "for 3 or 6, or 0 with eap_waiver (shared.access.eap_problem)."))
    eap_waiver: str | None = Field(None, description="The PI's reason for waiving the exclusive access (EAP 0).")
    authorized_users: list[str] = Field(default_factory=list)
    targets: list[Target]
    observations: list[Observation]
    candidates: list[PlannedCandidate] = Field(default_factory=list)

    @property
    def exclusive_months(self) -> int:
        """The program's exclusive-access months: the plan's, else its category's."""
        if self.eap_months is not None:
            return self.eap_months
        return 0 if self.eap_waiver else default_eap_months(self.category)

    @model_validator(mode="after")
    def _exclusive_access(self) -> Plan:
        if self.eap_waiver is not None and not self.eap_waiver.strip():
            raise ValueError("eap_waiver: give the reason for the waiver")
        problem = eap_problem(self.category, self.exclusive_months, waived=self.eap_waiver is not None)
        if problem:
            raise ValueError(f"eap_months: {problem}")
        if self.eap_waiver is not None and self.exclusive_months != 0:
            raise ValueError(f"eap_waiver: a waiver means no exclusive access, but eap_months is {self.eap_months}")
        return self

    @model_validator(mode="after")
    def _target_names(self) -> Plan:
        owner: dict[str, str] = {}
        for t in self.targets:
            for name in (t.name, *t.aliases):
                other = owner.setdefault(target_key(name), t.name)
                if other != t.name:
                    raise ValueError(f"targets: {name!r} (of target {t.name!r}) is also a name or alias of target "
                                     f"{other!r}; a name must say which target it is")
        return self

    @model_validator(mode="after")
    def _references(self) -> Plan:
        targets = {t.id for t in self.targets}
        if len(targets) != len(self.targets):
            raise ValueError(f"targets: ids must be unique, got {[t.id for t in self.targets]}")
        numbers = [o.number for o in self.observations]
        if len(set(numbers)) != len(numbers):
            raise ValueError(f"observations: numbers must be unique, got {numbers}")
        for k, o in enumerate(self.observations):
            if o.target_id not in targets:
                raise ValueError(f"observations.{k}.target_id: target {o.target_id} is not in targets {sorted(targets)}")
        return self

    @model_validator(mode="after")
    def _prerequisites(self) -> Plan:
        numbers = {o.number for o in self.observations}
        for k, o in enumerate(self.observations):
            problem = prerequisite_problem(self.program, o, numbers)
            if problem:
                raise ValueError(f"observations.{k}.{problem}")
        return self

    def msa_observation(self, msa_file: str) -> Observation | None:
        """The observation whose MSA metadata file is ``msa_file``, or None."""
        return next((o for o in self.observations if o.msa_metadata == msa_file), None)

    @model_validator(mode="after")
    def _candidates(self) -> Plan:
        background = {o.number: o.is_background for o in self.observations}
        for k, cand in enumerate(self.candidates):
            problem = candidate_problem(cand.type, cand.observations, background)
            if problem:
                raise ValueError(f"candidates[{k}].{problem}")
        ids = [c.id for c in self.candidates]
        if len(set(ids)) != len(ids):
            raise ValueError(f"candidates: ids must be unique, got {ids}")
        return self

    def target(self, target_id: int) -> Target:
        for t in self.targets:
            if t.id == target_id:
                return t
        raise KeyError(f"program {self.program} has no target {target_id}")

    def observation(self, number: int) -> Observation:
        for o in self.observations:
            if o.number == number:
                return o
        raise KeyError(f"program {self.program} has no observation {number}")

    def candidates_of(self, observation: int) -> list[PlannedCandidate]:
        """The proposal candidates an observation belongs to, in plan order."""
        return [c for c in self.candidates if observation in c.observations]

    def find_exposure(
        self, observation: int, visit: int, visit_group: int, sequence: int, activity: int,
        exposure: int, detector: str,
    ) -> tuple[Observation, PlannedExposure]:
        """The planned exposure with these identifiers; KeyError names what is missing."""
        obs = self.observation(observation)
        for e in obs.exposures:
            if (
                e.visit == visit and e.visit_group == visit_group and e.sequence == sequence
                and e.activity == activity and e.exposure == exposure
                and e.detector == detector.upper()
            ):
                return obs, e
        raise KeyError(
            f"plan of program {self.program} observation {observation:03d} has no exposure "
            f"visit {visit:03d} group {visit_group:02d} seq {sequence} act {activity:02d} "
            f"exp {exposure:05d} on {detector}"
        )


def validation_summary(exc: ValidationError, limit: int = 3) -> str:
    """The first problems of a failed validation as ``where: what`` phrases a person can act on."""
    parts = []
    for err in exc.errors()[:limit]:
        where = ".".join(str(p) for p in err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ")
        parts.append(f"{where}: {msg}" if where else msg)
    more = exc.error_count() - limit
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def plan_filename(program: str) -> str:
    return f"jw{program}_plan.json"


def latest_plan_key(store, program: str) -> str | None:
    """Key of the newest revision of a program's plan in dms-raw, or None.

    Plans live at ``<program>/000/r<revision>/jw<program>_plan.json``.
    """
    return latest_program_file_key(store, program, plan_filename(program))


def latest_program_file_key(store, program: str, name: str) -> str | None:
    """Key of the newest revision of a file delivered for a whole program (its plan, its
    ephemeris) in dms-raw: ``<program>/000/r<revision>/<name>``; None when none was."""
    best: tuple[int, str] | None = None
    for key in store.list_keys(Bucket.RAW, f"{program}/000/"):
        parts = key.split("/")
        if len(parts) == 4 and parts[3] == name and parts[2][1:].isdigit():
            rev = int(parts[2][1:])
            if best is None or rev > best[0]:
                best = (rev, key)
    return best[1] if best else None


def load_latest_plan(store, program: str) -> Plan | None:
    """The newest delivered plan of a program; None when none was delivered. A stored
    plan that does not validate raises pydantic's ValidationError."""
    key = latest_plan_key(store, program)
    if key is None:
        return None
    return Plan.model_validate_json(store.get_bytes(Bucket.RAW, key))
