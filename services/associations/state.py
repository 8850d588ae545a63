"""What the catalog holds for a program: its exposures and their current products, and
its current Level-3 products that associations name as members.

Everything the builder decides is a function of this snapshot and the plan, so a
repeated or reordered event leads to the same decisions. Products are matched to their
exposure by file name (``parse_exposure``), whatever the stage that made them recorded.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.catalog.models import Artifact, ArtifactKind, Exposure, Observation, Product
from shared.naming import (
    BadNameError,
    ExposureName,
    PoolName,
    parse_exposure,
    parse_level3,
    parse_pool,
)

__all__ = ["EXPOSURE_SUFFIXES", "LEVEL3_SUFFIXES", "CurrentPool", "ExposureRecord", "ProductRecord", "ProgramState",
           "load_state"]

# Exposure-level products the rules use: the raw file (pool), stage 1 (Lv2) and stage 2 (Lv3;
# an LRS nod's _x1d is a background member of its spec3 association).
EXPOSURE_SUFFIXES = ("uncal", "rate", "rateints", "cal", "calints", "x1d")
# Level-3 products the rules use: a wide-field slitless exposure's spec2 names its direct
# images' _i2d, source catalog (_cat) and segmentation map (_segm).
LEVEL3_SUFFIXES = ("i2d", "cat", "segm")


@dataclass(frozen=True)
class ProductRecord:
    """The current revision of one exposure-level product (one segment of it)."""

    filename: str
    suffix: str
    revision: int
    segment: int | None
    archived_at: datetime
    software_version: str = ""


@dataclass(frozen=True)
class ExposureRecord:
    """One exposure of one detector as the catalog knows it, with its current products."""

    name: str  # exposure id, e.g. jw01234001001_01101_00001_nrca1
    program: str
    observation: int
    visit: int
    visit_group: int
    sequence: int
    activity: str
    exposure: int
    detector: str
    instrument: str
    exp_type: str
    filter: str | None
    pupil: str | None
    subarray: str
    readpatt: str
    ngroups: int
    nints: int
    target_name: str = ""
    products: dict[str, tuple[ProductRecord, ...]] = field(default_factory=dict)

    def files(self, suffix: str) -> tuple[ProductRecord, ...]:
        """Current products with this suffix, in segment order."""
        return self.products.get(suffix, ())

    @property
    def segments(self) -> tuple[int | None, ...]:
        """The segments the exposure was delivered in (``(None,)`` when unsegmented)."""
        raw = self.files("uncal") or self.files("rate")
        return tuple(p.segment for p in raw) or (None,)

    def has(self, suffix: str) -> bool:
        """True when a current product with ``suffix`` exists for every segment."""
        found = {p.segment for p in self.files(suffix)}
        return bool(found) and set(self.segments) <= found

    def file_name(self, suffix: str, segment: int | None = None) -> str:
        """The name of this exposure's product with ``suffix`` (e.g. the pool's FILENAME
        is ``file_name("uncal")``)."""
        return ExposureName(
            program=self.program, observation=self.observation, visit=self.visit,
            visit_group=self.visit_group, sequence=self.sequence, activity=self.activity,
            exposure=self.exposure, detector=self.detector.lower(), suffix=suffix, segment=segment,
        ).format()


@dataclass(frozen=True)
class CurrentPool:
    """The program's current pool: its name and the sha256 of its bytes."""

    name: PoolName
    sha256: str


@dataclass(frozen=True)
class ProgramState:
    """The program's exposures, its current pool and its current Level-3 products of
    :data:`LEVEL3_SUFFIXES` (file name -> record; ``segment`` None)."""

    program: str
    exposures: dict[str, ExposureRecord]
    pool: CurrentPool | None = None
    level3: dict[str, ProductRecord] = field(default_factory=dict)

    def exposure(self, name: str) -> ExposureRecord | None:
        return self.exposures.get(name)

    def product(self, filename: str) -> ProductRecord | None:
        """The current revision of a Level-3 product, by file name (None: not archived)."""
        return self.level3.get(filename)


def _utc(when: datetime) -> datetime:
    # SQLite gives naive datetimes (stored as UTC); PostgreSQL gives the session's zone.
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _current_products(session: Session, program: str) -> dict[str, dict[str, list[ProductRecord]]]:
    rows = session.execute(
        select(Product.filename, Product.suffix, Product.revision, Product.archived_at, Product.software_version)
        .where(Product.program_id == program, Product.is_current, Product.suffix.in_(EXPOSURE_SUFFIXES))
    ).all()
    out: dict[str, dict[str, list[ProductRecord]]] = defaultdict(lambda: defaultdict(list))
    for filename, suffix, revision, archived_at, version in rows:
        try:
            name = parse_exposure(filename)
        except BadNameError:
            continue
        if name.acid is not None:
            continue
        out[name.exposure_id][suffix].append(
            ProductRecord(filename, suffix, revision, name.segment, _utc(archived_at), version or "")
        )
    return out


def load_state(session: Session, program: str) -> ProgramState:
    """The exposures of ``program`` in the catalog and their current products."""
    products = _current_products(session, program)
    rows = session.execute(
        select(Exposure, Observation.number, Observation.instrument, Observation.target_name)
        .join(Observation, Exposure.observation_id == Observation.id)
        .where(Observation.program_id == program)
        .order_by(Exposure.name)
    ).all()
    exposures = {}
    for exp, number, instrument, target_name in rows:
        found = products.get(exp.name, {})
        exposures[exp.name] = ExposureRecord(
            name=exp.name, program=program, observation=number, visit=exp.visit, visit_group=exp.visit_group,
            sequence=exp.sequence, activity=exp.activity, exposure=exp.exposure, detector=exp.detector.upper(),
            instrument=instrument.upper(), exp_type=exp.exp_type.upper(), filter=exp.filter, pupil=exp.pupil,
            subarray=exp.subarray, readpatt=exp.readpatt, ngroups=exp.ngroups, nints=exp.nints,
            target_name=target_name or "",
            products={s: tuple(sorted(v, key=lambda p: (p.segment or 0))) for s, v in found.items()},
        )
    return ProgramState(program, exposures, _current_pool(session, program), _current_level3(session, program))


def _current_level3(session: Session, program: str) -> dict[str, ProductRecord]:
    """The program's current Level-3 products of :data:`LEVEL3_SUFFIXES`, by file name."""
    rows = session.execute(
        select(Product.filename, Product.suffix, Product.revision, Product.archived_at, Product.software_version)
        .where(Product.program_id == program, Product.is_current, Product.suffix.in_(LEVEL3_SUFFIXES))
    ).all()
    out = {}
    for filename, suffix, revision, archived_at, version in rows:
        try:
            parse_level3(filename)
        except BadNameError:
            continue  # a stage-2 _i2d of one exposure
        out[filename] = ProductRecord(filename, suffix, revision, None, _utc(archived_at), version or "")
    return out


def _current_pool(session: Session, program: str) -> CurrentPool | None:
    row = session.execute(
        select(Product.filename, Artifact.sha256).join(Artifact, Artifact.product_id == Product.id)
        .where(Product.program_id == program, Product.suffix == "pool", Product.is_current,
               Artifact.kind == ArtifactKind.DATA)
        .order_by(Product.filename.desc()).limit(1)
    ).first()
    if row is None:
        return None
    try:
        return CurrentPool(parse_pool(row.filename), row.sha256)
    except BadNameError:
        return None
