"""Association candidates: observation (``oNNN``), proposal (``c1NNN``, from the plan)
and discovered (``a3NNN``) ones.

A candidate names a set of observations whose exposures may be associated. The pool lists
the observation and proposal candidates of every exposure (ASN_CANDIDATE); discovered
candidates are found by the builder only in discover mode, as in the public generator.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from shared.naming import ProductNaming
from shared.plan import Observation, Plan

__all__ = [
    "IMAGING_EXP_TYPES",
    "NODDED_SLIT_EXP_TYPES",
    "NODDED_SLIT_RULES",
    "NoddedSlitRules",
    "Candidate",
    "all_candidates",
    "candidate_text",
    "candidates_of",
    "discovered_candidates",
    "is_imaging",
    "observation_candidates",
    "plan_candidates",
]

# Exposure types the imaging rules (Asn_Lv2Image*, Asn_Lv3Image, Asn_Lv3TSO) take.
IMAGING_EXP_TYPES = frozenset({"NRC_IMAGE", "NRC_TSIMAGE", "MIR_IMAGE", "NIS_IMAGE", "FGS_IMAGE"})


@dataclass(frozen=True)
class NoddedSlitRules:
    """How the public rules associate a slit mode whose exposures are nodded along the
    slit (each nod the others' background): its Level-2 and Level-3 rules; whether the
    Level-3 association lists each nod's ``_x1d`` as a background member beside its
    ``_cal`` (the LRS's rule does); how its Level-3 products are named (NIRSpec's per
    source, :meth:`shared.naming.Level3Name.build`)."""

    level2: str
    level3: str
    x1d_members: bool
    naming: ProductNaming


NODDED_SLIT_RULES: dict[str, NoddedSlitRules] = {
    "MIR_LRS-FIXEDSLIT": NoddedSlitRules("Asn_Lv2MIRLRSFixedSlitNod", "Asn_Lv3SpectralTarget",
                                         x1d_members=True, naming=ProductNaming.TARGET),
    "NRS_FIXEDSLIT": NoddedSlitRules("Asn_Lv2NRSFSS", "Asn_Lv3NRSFSS", x1d_members=False,
                                     naming=ProductNaming.SOURCE_AND_SLIT),
    "NRS_MSASPEC": NoddedSlitRules("Asn_Lv2NRSMSA", "Asn_Lv3SpectralSource", x1d_members=False,
                                   naming=ProductNaming.SOURCE),
}
NODDED_SLIT_EXP_TYPES = frozenset(NODDED_SLIT_RULES)

FIRST_DISCOVERED = 3001


@dataclass(frozen=True)
class Candidate:
    """``acid`` (e.g. ``o001``, ``c1000``, ``a3001``), its type (OBSERVATION, MOSAIC,
    BACKGROUND, DISCOVERED, ...) and the observation numbers it spans."""

    acid: str
    type: str
    observations: tuple[int, ...]

    @property
    def kind(self) -> str:
        """``o``, ``c`` or ``a``: the candidate's origin."""
        return self.acid[0]


def is_imaging(obs: Observation) -> bool:
    return obs.exp_type.upper() in IMAGING_EXP_TYPES


def observation_candidates(plan: Plan) -> list[Candidate]:
    return [Candidate(f"o{o.number:03d}", "OBSERVATION", (o.number,)) for o in plan.observations]


def plan_candidates(plan: Plan) -> list[Candidate]:
    """The proposal candidates of the plan (``Plan.candidates``), sorted by id."""
    out = []
    for c in plan.candidates:
        out.append(Candidate(c.id.lower(), c.type.upper(), tuple(sorted(set(c.observations)))))
    return sorted(out, key=lambda c: c.acid)


def _discovery_key(obs: Observation) -> tuple:
    return (obs.target_id, obs.instrument, obs.filter, obs.pupil, obs.subarray)


def discovered_candidates(plan: Plan, known: list[Candidate]) -> list[Candidate]:
    """Groups of two or more science imaging observations with the same target,
    instrument, filter, pupil and subarray (the Asn_Lv3Image constraints), numbered from
    a3001 in key order; a group some known candidate already spans exactly is left out."""
    groups: dict[tuple, list[int]] = defaultdict(list)
    for obs in plan.observations:
        if is_imaging(obs) and not obs.is_background and not obs.tsovisit:
            groups[_discovery_key(obs)].append(obs.number)
    spans = {frozenset(c.observations) for c in known}
    out = []
    for key in sorted(groups):
        numbers = tuple(sorted(groups[key]))
        if len(numbers) > 1 and frozenset(numbers) not in spans:
            out.append(Candidate(f"a{FIRST_DISCOVERED + len(out)}", "DISCOVERED", numbers))
    return out


def all_candidates(plan: Plan, discover: bool = False) -> list[Candidate]:
    """Observation candidates, then proposal candidates, then (``discover``) discovered ones."""
    known = observation_candidates(plan) + plan_candidates(plan)
    return known + (discovered_candidates(plan, known) if discover else [])


def candidates_of(observation: int, candidates: list[Candidate]) -> list[Candidate]:
    """The observation and proposal candidates an observation's exposures belong to
    (what the pool's ASN_CANDIDATE lists)."""
    return [c for c in candidates if c.kind in "oc" and observation in c.observations]


def candidate_text(candidates: list[Candidate]) -> str:
    """ASN_CANDIDATE as written in a pool: ``[('o001', 'OBSERVATION'), ('c1000', 'MOSAIC')]``."""
    return "[" + ", ".join(f"({c.acid!r}, {c.type!r})" for c in candidates) + "]"
