"""Parse and format every JWST file name this system uses; the only place naming rules live.

Forms (reference: JWST file-naming conventions):

- exposure   ``jw<ppppp><ooo><vvv>_<gg><s><aa>_<eeeee>[-segNNN]_<detector>_<suffix>.fits``
- 2c         ``jw<ppppp><ooo><vvv>_<gg><s><aa>_<eeeee>_<detector>_<acid>_<suffix>.fits``
- Level 3    ``jw<ppppp>-<acid>_<t###|s#####…>[-epochX]_<instr>_<optelems>[-<subarray>]_<suffix>.fits``
- association ``jw<ppppp>-<acid>_<YYYYMMDDtHHMMSS>_<asn_type>_<NNNNN>_asn.json``
- pool       ``jw<ppppp>_<YYYYMMDDtHHMMSS>_pool.csv``
- association report ``jw<ppppp>_asn-report.html`` (one per program; a change is a new revision)
- guide star ``jw<ppppp><ooo><vvv>_gs-<mode>_<yyyydddhhmmss>_<suffix>.fits`` (``acq1``, ``acq2``,
  ``track``, ``fg``: the UTC start of the activity as year, day of year, hours, minutes,
  seconds) and ``jw<ppppp><ooo><vvv>_gs-id_<attempt>_<image|stacked>_<suffix>.fits``

Every ``parse_*`` raises :class:`BadNameError` saying which part is wrong, and
``parse_x(name).format() == name`` for every valid name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime
from enum import Enum

from shared.instruments import DETECTORS, SUBARRAYS

__all__ = [
    "ASN_TYPES",
    "AssociationName",
    "BadNameError",
    "GUIDE_MODES",
    "ExposureName",
    "GuideStarName",
    "Level3Name",
    "MsaMetadataName",
    "OpdName",
    "PoolName",
    "ProductNaming",
    "SLIT_PLACEHOLDER",
    "SOURCE_PLACEHOLDER",
    "ReportName",
    "filled_product_name",
    "is_2c",
    "made_by",
    "member_output_name",
    "object_key",
    "output_name",
    "parse_any",
    "parse_association",
    "parse_exposure",
    "parse_guidestar",
    "parse_level3",
    "parse_msa_metadata",
    "parse_opd",
    "parse_pool",
    "parse_report",
    "source_token",
]


class BadNameError(ValueError):
    """A file name that does not follow the JWST conventions."""


ASN_TYPES = (
    "image2", "spec2", "tso-image2", "tso-spec2", "nrslamp-spec2", "image3", "spec3",
    "tso3", "coron3", "ami3", "wfs-image3",
)

_ACID = r"(?:o\d{3}|c\d{4}|a\d{4})"
_TIMESTAMP = r"\d{8}t\d{6}"
_EXT = r"\.(?P<ext>fits|ecsv|json|csv|asdf|png|jpg|html)"

_EXPOSURE_RE = re.compile(
    r"^jw(?P<program>\d{5})(?P<observation>\d{3})(?P<visit>\d{3})"
    r"_(?P<visit_group>\d{2})(?P<sequence>\d)(?P<activity>[0-9a-z]{2})"
    r"_(?P<exposure>\d{5})(?:-seg(?P<segment>\d{3}))?"
    r"_(?P<detector>[a-z0-9]+)"
    rf"(?:_(?P<acid>{_ACID}))?"
    r"_(?P<suffix>[a-z0-9]+)" + _EXT + "$"
)
_LEVEL3_RE = re.compile(
    rf"^jw(?P<program>\d{{5}})-(?P<acid>{_ACID})"
    r"_(?P<target>t\d{3}|[sbv]\d{5,9})(?:-(?P<source>s\d{9}))?(?:-epoch(?P<epoch>\d+))?"
    r"_(?P<instrument>nircam|nirspec|niriss|miri|fgs)"
    r"_(?P<optical>[a-z0-9-]+?)"
    r"_(?P<suffix>[a-z0-9]+)" + _EXT + "$"
)
_ASN_RE = re.compile(
    rf"^jw(?P<program>\d{{5}})-(?P<acid>{_ACID})_(?P<stamp>{_TIMESTAMP})"
    r"_(?P<asn_type>[a-z0-9-]+)_(?P<sequence>\d{5})_asn\.json$"
)
_POOL_RE = re.compile(rf"^jw(?P<program>\d{{5}})_(?P<stamp>{_TIMESTAMP})_pool\.csv$")
_REPORT_RE = re.compile(r"^jw(?P<program>\d{5})_asn-report\.html$")

_GUIDESTAR_RE = re.compile(
    r"^jw(?P<program>\d{5})(?P<observation>\d{3})(?P<visit>\d{3})"
    r"_gs-(?:id_(?P<attempt>\d{1,2})_(?P<id_kind>image|stacked)|(?P<mode>acq1|acq2|track|fg)_(?P<stamp>\d{13}))"
    r"_(?P<suffix>[a-z0-9]+)" + _EXT + "$"
)

GUIDE_MODES = {
    # mode in the name -> EXP_TYPE of the public guider products
    "id-image": "FGS_ID-IMAGE", "id-stack": "FGS_ID-STACK", "acq1": "FGS_ACQ1", "acq2": "FGS_ACQ2",
    "track": "FGS_TRACK", "fg": "FGS_FINEGUIDE",
}
"""Guide-star activities, by the mode a product name carries, and their EXP_TYPE."""

_DETECTOR_NAMES = {d.lower() for d in DETECTORS}
_SUBARRAY_NAMES = {s.lower() for table in SUBARRAYS.values() for s in table if s != "FULL"}


def _stamp(when: datetime) -> str:
    return when.strftime("%Y%m%dt%H%M%S")


def _parse_stamp(text: str) -> datetime:
    return datetime.strptime(text, "%Y%m%dt%H%M%S")


def _check_range(name: str, what: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise BadNameError(f"{name!r}: {what} {value} is outside {low}..{high}")


@dataclass(frozen=True)
class ExposureName:
    """An exposure-level product (stage 0-2), a segment of one, or a 2c product (``acid``)."""

    program: str
    observation: int
    visit: int
    visit_group: int
    sequence: int
    activity: str
    exposure: int
    detector: str
    suffix: str
    segment: int | None = None
    acid: str | None = None
    ext: str = "fits"

    @property
    def visit_id(self) -> str:
        """``jw<ppppp><ooo><vvv>``: the program, observation and visit part."""
        return f"jw{self.program}{self.observation:03d}{self.visit:03d}"

    @property
    def exposure_id(self) -> str:
        """The exposure's name without segment, asn id or suffix, e.g.
        ``jw01234001001_01101_00001_nrca1`` (the Level-2 product name)."""
        return (
            f"{self.visit_id}_{self.visit_group:02d}{self.sequence}{self.activity}"
            f"_{self.exposure:05d}_{self.detector.lower()}"
        )

    def with_suffix(self, suffix: str, ext: str = "fits") -> ExposureName:
        return replace(self, suffix=suffix, ext=ext)

    def format(self) -> str:
        seg = f"-seg{self.segment:03d}" if self.segment is not None else ""
        acid = f"_{self.acid}" if self.acid else ""
        return (
            f"{self.visit_id}_{self.visit_group:02d}{self.sequence}{self.activity}"
            f"_{self.exposure:05d}{seg}_{self.detector.lower()}{acid}_{self.suffix}.{self.ext}"
        )

    def __str__(self) -> str:
        return self.format()


#: The placeholders of a per-source Level-3 product name in its association.
SOURCE_PLACEHOLDER, SLIT_PLACEHOLDER = "{source_id}", "{slit_name}"


class ProductNaming(Enum):
    """How a Level-3 product is named by what it holds: its target (``t###``); its target,
    source and slit (NIRSpec's fixed slits); its source in the target's place (NIRSpec MOS,
    one product set per source)."""

    TARGET = "target"
    SOURCE_AND_SLIT = "source and slit"
    SOURCE = "source"


@dataclass(frozen=True)
class Level3Name:
    """A combined (stage 3) product. A NIRSpec fixed-slit product's name also carries its
    ``source`` (``s#########``) after the target and its slit last of the optical elements
    (the public ``jw<p>-<acid>_<target>-<source>_nirspec_<optelems>-<slit>[-<subarray>]``);
    a NIRSpec MOS product's has its source in the target's place
    (``jw<p>-<acid>_<source>_nirspec_<optelems>``, :class:`ProductNaming`). In the
    association the source and slit are placeholders, ``{source_id}`` and ``{slit_name}``,
    which stage 3 fills (:func:`filled_product_name`) as the public calwebb_spec3 does."""

    program: str
    acid: str
    target: str
    instrument: str
    optical_elements: tuple[str, ...]
    suffix: str
    subarray: str | None = None
    epoch: int | None = None
    ext: str = "fits"
    source: str | None = None

    @property
    def product_name(self) -> str:
        """The name without suffix, as written in an association's ``products[].name``."""
        epoch = f"-epoch{self.epoch}" if self.epoch is not None else ""
        source = f"-{self.source}" if self.source else ""
        opt = "-".join(self.optical_elements) or "clear"
        sub = f"-{self.subarray}" if self.subarray else ""
        return f"jw{self.program}-{self.acid}_{self.target}{source}{epoch}_{self.instrument}_{opt}{sub}".lower()

    def format(self) -> str:
        return f"{self.product_name}_{self.suffix}.{self.ext}"

    def __str__(self) -> str:
        return self.format()

    @classmethod
    def build(
        cls, program: str, acid: str, target: str, instrument: str,
        filters: list[str | None], subarray: str | None, suffix: str, ext: str = "fits", *,
        naming: ProductNaming = ProductNaming.TARGET,
    ) -> Level3Name:
        """Name a product the way the association rules do: non-empty optical elements
        sorted and joined, "clear" when none, subarray omitted when FULL; a per-source
        product (``naming``) with the placeholders of its source (and slit)."""
        opt = tuple(sorted({f.lower() for f in filters if f and f.upper() not in ("N/A", "NONE")}))
        sub = None if not subarray or subarray.upper() == "FULL" else subarray.lower()
        source = None
        if naming is ProductNaming.SOURCE_AND_SLIT:
            opt, source = (*opt, SLIT_PLACEHOLDER), SOURCE_PLACEHOLDER
        elif naming is ProductNaming.SOURCE:
            target = SOURCE_PLACEHOLDER
        return cls(program, acid.lower(), target.lower(), instrument.lower(), opt, suffix, sub, None, ext, source)




def source_token(source_id: int, source_name: str = "") -> str:
    """A source as the public calwebb_spec3 writes it into a product name: ``s`` and its id
    in nine digits; for a NIRSpec MOS background slitlet (``BKG`` in its name) ``b``, for a
    virtual slitlet (a negative id) ``v`` and the id's digits."""
    if "BKG" in source_name.upper():
        return f"b{abs(source_id):09d}"
    return f"v{-source_id:09d}" if source_id < 0 else f"s{source_id:09d}"


def filled_product_name(name: str, *, source: str, slit_name: str = "") -> str:
    """An association's product name with its placeholders filled, as the public
    calwebb_spec3 names a per-source product: the source's token (:func:`source_token`),
    the slit's name in lower case; a name without them is returned as it is."""
    return name.replace(SOURCE_PLACEHOLDER, source).replace(SLIT_PLACEHOLDER, slit_name.strip().lower())


def made_by(product_name: str, filename: str) -> bool:
    """Whether ``filename`` is a product of the association whose product name is
    ``product_name`` (its placeholders standing for any source and slit)."""
    if SOURCE_PLACEHOLDER not in product_name and SLIT_PLACEHOLDER not in product_name:
        return filename.startswith(product_name)
    pattern = re.escape(product_name).replace(re.escape(SOURCE_PLACEHOLDER), r"[sbv]\d{9}")
    pattern = pattern.replace(re.escape(SLIT_PLACEHOLDER), r"[a-z0-9]+(?:-[a-z0-9]+)*")
    return re.match(pattern, filename) is not None


@dataclass(frozen=True)
class AssociationName:
    program: str
    acid: str
    created: datetime
    asn_type: str
    sequence: int

    def format(self) -> str:
        return f"jw{self.program}-{self.acid}_{_stamp(self.created)}_{self.asn_type}_{self.sequence:05d}_asn.json"

    def __str__(self) -> str:
        return self.format()


@dataclass(frozen=True)
class PoolName:
    program: str
    created: datetime

    def format(self) -> str:
        return f"jw{self.program}_{_stamp(self.created)}_pool.csv"

    def __str__(self) -> str:
        return self.format()


@dataclass(frozen=True)
class ReportName:
    """A program's association summary report: one file per program, whose revisions
    follow the program's pool and associations."""

    program: str

    SUFFIX = "asn-report"

    def format(self) -> str:
        return f"jw{self.program}_{self.SUFFIX}.html"

    def __str__(self) -> str:
        return self.format()


@dataclass(frozen=True)
class GuideStarName:
    """A guide-star product of a visit: ``mode`` is a key of :data:`GUIDE_MODES`; the ID
    products are numbered by ``attempt``, the others stamped with their ``start`` (UTC,
    whole seconds)."""

    program: str
    observation: int
    visit: int
    mode: str
    suffix: str
    start: datetime | None = None
    attempt: int | None = None
    ext: str = "fits"

    def __post_init__(self) -> None:
        if self.mode not in GUIDE_MODES:
            raise BadNameError(f"guide-star mode {self.mode!r} is not one of {', '.join(GUIDE_MODES)}")
        if self.mode.startswith("id-") and self.attempt is None:
            raise BadNameError(f"a gs-{self.mode} name needs an attempt number")
        if not self.mode.startswith("id-") and self.start is None:
            raise BadNameError(f"a gs-{self.mode} name needs a start time")

    @property
    def visit_id(self) -> str:
        return f"jw{self.program}{self.observation:03d}{self.visit:03d}"

    @property
    def exp_type(self) -> str:
        return GUIDE_MODES[self.mode]

    @property
    def kind(self) -> str:
        """The product kind the catalog records as the suffix: ``gs-<mode>`` for the raw
        product (``uncal``), ``gs-<mode>-<suffix>`` for one calwebb_guider made from it
        (``gs-acq1-cal``), so routes and searches tell them apart."""
        return f"gs-{self.mode}" if self.suffix == "uncal" else f"gs-{self.mode}-{self.suffix}"

    def with_suffix(self, suffix: str, ext: str = "fits") -> GuideStarName:
        return replace(self, suffix=suffix, ext=ext)

    def format(self) -> str:
        if self.mode.startswith("id-"):
            middle = f"gs-id_{self.attempt}_{'image' if self.mode == 'id-image' else 'stacked'}"
        else:
            middle = f"gs-{self.mode}_{self.start:%Y%j%H%M%S}"
        return f"{self.visit_id}_{middle}_{self.suffix}.{self.ext}"

    def __str__(self) -> str:
        return self.format()


def parse_guidestar(name: str) -> GuideStarName:
    m = _GUIDESTAR_RE.match(name)
    if not m:
        raise BadNameError(
            f"{name!r} is not a guide-star name "
            "jw<ppppp><ooo><vvv>_gs-<acq1|acq2|track|fg>_<yyyydddhhmmss>_<suffix>.fits or "
            "jw<ppppp><ooo><vvv>_gs-id_<n>_<image|stacked>_<suffix>.fits"
        )
    obs, visit = int(m["observation"]), int(m["visit"])
    _check_range(name, "observation", obs, 1, 999)
    _check_range(name, "visit", visit, 1, 999)
    if m["attempt"] is not None:
        attempt = int(m["attempt"])
        _check_range(name, "ID attempt", attempt, 1, 99)
        mode = "id-image" if m["id_kind"] == "image" else "id-stack"
        return GuideStarName(m["program"], obs, visit, mode, m["suffix"], attempt=attempt, ext=m["ext"])
    try:
        start = datetime.strptime(m["stamp"], "%Y%j%H%M%S")
    except ValueError as exc:
        raise BadNameError(f"{name!r}: bad time stamp {m['stamp']!r} (yyyydddhhmmss): {exc}") from None
    return GuideStarName(m["program"], obs, visit, m["mode"], m["suffix"], start=start, ext=m["ext"])


def parse_exposure(name: str) -> ExposureName:
    m = _EXPOSURE_RE.match(name)
    if not m:
        raise BadNameError(
            f"{name!r} is not an exposure name "
            "jw<ppppp><ooo><vvv>_<gg><s><aa>_<eeeee>[-segNNN]_<detector>[_<acid>]_<suffix>.<ext>"
        )
    g = m.groupdict()
    if g["detector"] not in _DETECTOR_NAMES:
        raise BadNameError(f"{name!r}: unknown detector {g['detector']!r}")
    if g["segment"] is not None:
        _check_range(name, "segment", int(g["segment"]), 1, 999)
    return ExposureName(
        program=g["program"],
        observation=int(g["observation"]),
        visit=int(g["visit"]),
        visit_group=int(g["visit_group"]),
        sequence=int(g["sequence"]),
        activity=g["activity"],
        exposure=int(g["exposure"]),
        detector=g["detector"],
        suffix=g["suffix"],
        segment=int(g["segment"]) if g["segment"] is not None else None,
        acid=g["acid"],
        ext=g["ext"],
    )


def parse_level3(name: str) -> Level3Name:
    m = _LEVEL3_RE.match(name)
    if not m:
        raise BadNameError(
            f"{name!r} is not a Level-3 name "
            "jw<ppppp>-<acid>_<t###|[sbv]#########>[-s#########][-epochX]_<instrument>_<optelems>[-<subarray>]_<suffix>.<ext>"
        )
    g = m.groupdict()
    parts = g["optical"].split("-")
    subarray = parts.pop() if len(parts) > 1 and parts[-1] in _SUBARRAY_NAMES else None
    if not all(parts):
        raise BadNameError(f"{name!r}: empty optical element in {g['optical']!r}")
    return Level3Name(
        program=g["program"],
        acid=g["acid"],
        target=g["target"],
        instrument=g["instrument"],
        optical_elements=tuple(parts),
        suffix=g["suffix"],
        subarray=subarray,
        epoch=int(g["epoch"]) if g["epoch"] is not None else None,
        ext=g["ext"],
        source=g["source"],
    )


def parse_association(name: str) -> AssociationName:
    m = _ASN_RE.match(name)
    if not m:
        raise BadNameError(
            f"{name!r} is not an association name jw<ppppp>-<acid>_<YYYYMMDDtHHMMSS>_<asn_type>_<NNNNN>_asn.json"
        )
    g = m.groupdict()
    if g["asn_type"] not in ASN_TYPES:
        raise BadNameError(f"{name!r}: unknown asn_type {g['asn_type']!r}; known: {', '.join(ASN_TYPES)}")
    try:
        created = _parse_stamp(g["stamp"])
    except ValueError as exc:
        raise BadNameError(f"{name!r}: bad timestamp {g['stamp']!r}: {exc}") from None
    return AssociationName(g["program"], g["acid"], created, g["asn_type"], int(g["sequence"]))


def parse_pool(name: str) -> PoolName:
    m = _POOL_RE.match(name)
    if not m:
        raise BadNameError(f"{name!r} is not a pool name jw<ppppp>_<YYYYMMDDtHHMMSS>_pool.csv")
    try:
        created = _parse_stamp(m["stamp"])
    except ValueError as exc:
        raise BadNameError(f"{name!r}: bad timestamp {m['stamp']!r}: {exc}") from None
    return PoolName(m["program"], created)


def parse_report(name: str) -> ReportName:
    m = _REPORT_RE.match(name)
    if not m:
        raise BadNameError(f"{name!r} is not an association report name jw<ppppp>_asn-report.html")
    return ReportName(m["program"])


def parse_any(name: str) -> ExposureName | Level3Name | AssociationName | PoolName | GuideStarName:
    """Parse a name of any form; the error lists why each form did not fit."""
    errors = []
    for parser in (parse_exposure, parse_level3, parse_association, parse_pool, parse_guidestar):
        try:
            return parser(name)
        except BadNameError as exc:
            errors.append(str(exc))
    raise BadNameError(f"{name!r} matches no JWST name form:\n  " + "\n  ".join(errors))


def is_2c(name: str) -> bool:
    """True for a 2c product name (an exposure's product made for a Level-3 association:
    ``..._<detector>_<acid>_crf.fits``)."""
    try:
        return parse_exposure(name).acid is not None
    except BadNameError:
        return False


def object_key(program: str, observation: int | str, revision: int, filename: str) -> str:
    """Object-store key ``<program>/<observation>/r<revision>/<filename>``; observation
    ``000`` holds program-level objects such as plans and pools."""
    obs = f"{int(observation):03d}" if str(observation).isdigit() else str(observation)
    if revision < 1:
        raise ValueError(f"revision must be >= 1, got {revision}")
    return f"{program}/{obs}/r{revision}/{filename}"


def _stem(name: str) -> str:
    """A file name without its extension and, when it ends in ``_<suffix>``, without that."""
    stem = name.rsplit(".", 1)[0] if "." in name else name
    head, sep, _tail = stem.rpartition("_")
    return head if sep and head else stem


def output_name(input_name: str, suffix: str, ext: str = "fits") -> str:
    """The name of the product ``suffix`` made from the file ``input_name``: the input's
    exposure name with the new suffix (``..._nrca1_uncal.fits`` -> ``..._nrca1_rate.fits``);
    for a file not named by the convention, its stem without its last ``_part``
    (``full_uncal.fits`` -> ``full_rate.fits``), as the public pipeline names outputs."""
    try:
        return parse_exposure(input_name).with_suffix(suffix, ext).format()
    except BadNameError:
        return f"{_stem(input_name)}_{suffix}.{ext}"


def member_output_name(member: str, acid: str, suffix: str) -> str:
    """The 2c name of a product made from association member ``member`` for association
    ``acid`` (``..._nrca1_cal.fits`` -> ``..._nrca1_o001_crf.fits``; a segment keeps its
    ``-segNNN``); for a member not named by the convention, ``<stem>_<acid>_<suffix>.fits``."""
    try:
        return replace(parse_exposure(member), acid=acid, suffix=suffix, ext="fits").format()
    except BadNameError:
        return f"{_stem(member)}_{acid}_{suffix}.fits"


# ------------------------------------------------------------------ MSA metadata files

_MSA_RE = re.compile(r"^jw(?P<program>\d{5})(?P<observation>\d{3})(?P<visit>\d{3})_(?P<config>\d{2})_msa\.fits$")


@dataclass(frozen=True)
class MsaMetadataName:
    """A NIRSpec MSA metadata file (MSAMETFL): ``jw<ppppp><ooo><vvv>_<cc>_msa.fits``, the
    shutter configuration ``cc`` planned for a visit of a MOS observation."""

    program: str
    observation: int
    visit: int = 1
    config: int = 1

    def format(self) -> str:
        return f"jw{self.program}{self.observation:03d}{self.visit:03d}_{self.config:02d}_msa.fits"

    def __str__(self) -> str:
        return self.format()


def parse_msa_metadata(name: str) -> MsaMetadataName:
    m = _MSA_RE.match(name)
    if not m:
        raise BadNameError(f"{name!r} is not an MSA metadata name jw<ppppp><ooo><vvv>_<cc>_msa.fits")
    observation, visit, config = int(m["observation"]), int(m["visit"]), int(m["config"])
    _check_range(name, "observation", observation, 1, 999)
    _check_range(name, "visit", visit, 1, 999)
    _check_range(name, "configuration", config, 1, 99)
    return MsaMetadataName(m["program"], observation, visit, config)


# ------------------------------------------------------------------ wavefront-sensing OPD files

_OPD_RE = re.compile(r"^R(?P<day>\d{8})(?P<sequence>\d{2})-(?P<aperture>[A-Z0-9]+_[A-Z0-9]+)-(?P<corr>\d{1,3})\.fits$")


@dataclass(frozen=True)
class OpdName:
    """A wavefront-sensing OPD file, named as the public ones:
    ``R<YYYYMMDD><NN>-<aperture>-<correction>.fits`` (the ``NN``-th sensing of the day, the
    field point it was measured at, e.g. NRCA3_FP1, and the correction id)."""

    day: datetime
    sequence: int
    aperture: str
    correction: int = 1

    def format(self) -> str:
        return f"R{self.day:%Y%m%d}{self.sequence:02d}-{self.aperture}-{self.correction}.fits"

    def __str__(self) -> str:
        return self.format()


def parse_opd(name: str) -> OpdName:
    m = _OPD_RE.match(name)
    if not m:
        raise BadNameError(f"{name!r} is not an OPD name R<YYYYMMDD><NN>-<aperture>-<correction>.fits")
    try:
        day = datetime.strptime(m["day"], "%Y%m%d")
    except ValueError as exc:
        raise BadNameError(f"{name!r}: bad date {m['day']!r}: {exc}") from None
    return OpdName(day, int(m["sequence"]), m["aperture"], int(m["corr"]))
