"""What to emit, given the plan and the catalog state: the pool, every association with
its file name and content, and which ones differ from what was last emitted.

Pure: no catalog, no store. The task archives what :func:`to_emit` returns.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field

from services.associations.asn import asn_bytes, asn_document, asn_name, version_id
from services.associations.candidates import Candidate, all_candidates
from services.associations.pool import Pool, build_pool
from services.associations.rules import AsnSpec, build_specs
from services.associations.state import ProgramState
from shared.naming import AssociationName
from shared.plan import Plan

__all__ = ["AssociationParams", "Evaluation", "LastEmitted", "PlannedAsn", "evaluate", "spec_key", "to_emit"]


class AssociationParams(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    discover: bool = Field(False, description="Also build discovered (a3NNN) candidates, as the generator's discover mode.")


SpecKey = tuple[str, str, str]
_STAMP = "%Y%m%dt%H%M%S"


def spec_key(spec: AsnSpec) -> SpecKey:
    """What identifies an association across pools: candidate, type and product."""
    return (spec.acid, spec.asn_type, spec.name)


@dataclass(frozen=True)
class PlannedAsn:
    """One association with its place in the pool: sequence number, file name and version."""

    spec: AsnSpec
    sequence: int
    name: AssociationName | None  # None until the program has a pool
    version: str | None

    @property
    def filename(self) -> str | None:
        return self.name.format() if self.name else None

    def content(self, pool: Pool, code_version: str) -> bytes:
        doc = asn_document(self.spec, program=pool.name.program, pool_filename=pool.filename,
                           version=self.version, code_version=code_version)
        return asn_bytes(doc)


@dataclass(frozen=True)
class Evaluation:
    program: str
    candidates: tuple[Candidate, ...]
    pool: Pool | None
    associations: tuple[PlannedAsn, ...]


def _sequences(specs: list[AsnSpec]) -> dict[SpecKey, int]:
    """1, 2, ... per candidate and type, in product-name order. Specs come from the plan,
    so a given association keeps its number while the plan is unchanged."""
    by_group: dict[tuple[str, str], list[str]] = defaultdict(list)
    for s in specs:
        by_group[(s.acid, s.asn_type)].append(s.name)
    return {(acid, t, name): i for (acid, t), names in by_group.items()
            for i, name in enumerate(sorted(names), start=1)}


def evaluate(plan: Plan, state: ProgramState, params: AssociationParams | None = None) -> Evaluation:
    """Pool, candidates and every association of the program, complete or not."""
    params = params or AssociationParams()
    candidates = all_candidates(plan, discover=params.discover)
    pool = build_pool(plan, state, candidates)
    specs = build_specs(plan, state, candidates)
    numbers = _sequences(specs)
    planned = []
    for spec in specs:
        seq = numbers[spec_key(spec)]
        if pool is None:
            planned.append(PlannedAsn(spec, seq, None, None))
        else:
            planned.append(PlannedAsn(spec, seq, asn_name(plan.program, spec, pool.created, seq),
                                      version_id(pool.created, spec)))
    return Evaluation(plan.program, tuple(candidates), pool, tuple(planned))


@dataclass(frozen=True)
class LastEmitted:
    """What the last ASN emitted for an association had: its member signature and version."""

    signature: list
    version: str | None
    filename: str | None = None  # the ASN file emitted; a new one under another name replaces it


def _after(version: str, last: str | None) -> str:
    """``version``, or one second after ``last`` when not later: an ASN whose members
    changed gets new content even when every time stamp falls in the same second."""
    if last is None or version > last:
        return version
    bumped = datetime.strptime(last, _STAMP) + timedelta(seconds=1)
    return bumped.strftime(_STAMP)


def to_emit(evaluation: Evaluation, last: dict[SpecKey, LastEmitted]) -> list[PlannedAsn]:
    """Complete associations whose member set differs from the one last emitted, in pool
    order, with a version later than the last one's."""
    if evaluation.pool is None:
        return []
    out = []
    for item in evaluation.associations:
        before = last.get(spec_key(item.spec))
        if not item.spec.complete or (before is not None and before.signature == item.spec.signature):
            continue
        out.append(replace(item, version=_after(item.version, before.version if before else None)))
    return out
