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
    "LRS_SLITLESS",
    "NODDED_SLIT_EXP_TYPES",
    "NODDED_SLIT_RULES",
    "NoddedSlitRules",
    "SPECTRAL_EXP_TYPES",
    "TSO_SPEC2_EXP_TYPES",
    "WFSS_RULES",
    "Candidate",
    "WfssRules",
    "all_candidates",
    "candidate_text",
    "candidates_of",
    "discovered_candidates",
    "is_imaging",
    "is_tso",
    "observation_candidates",
    "plan_candidates",
    "tso3_takes",
    "tso_spec2_takes",
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

@dataclass(frozen=True)
class WfssRules:
    """How the public rules associate a wide-field slitless mode: its Level-2 rule (one
    dispersed exposure with the products of its observation's direct images) and its
    Level-3 rule (the observation's dispersed exposures)."""

    level2: str
    level3: str


WFSS_RULES: dict[str, WfssRules] = {
    "NIS_WFSS": WfssRules("Asn_Lv2WFSSNIS", "Asn_Lv3WFSSNIS"),
    "NRC_WFSS": WfssRules("Asn_Lv2WFSSNRC", "Asn_Lv3WFSSNRC"),
}

# Spectroscopic science exposure types (the public rules' SPEC2_SCIENCE_EXP_TYPES).
SPECTRAL_EXP_TYPES = frozenset({
    "MIR_LRS-FIXEDSLIT", "MIR_LRS-SLITLESS", "MIR_MRS", "MIR_WFSS", "NIS_SOSS", "NIS_WFSS", "NRC_TSGRISM",
    "NRC_WFSS", "NRS_FIXEDSLIT", "NRS_IFU", "NRS_MSASPEC", "NRS_BRIGHTOBJ",
})
# The MIRI LRS without its slit: the public rules give it a Level-2 rule of its own
# (Asn_MIRLRSTAConfirm, asn_type spec2, one science exposure, TSO or not), never tso-spec2.
LRS_SLITLESS = "MIR_LRS-SLITLESS"
MRS = "MIR_MRS"  # MIRI's medium-resolution spectrometer (an IFU)
# tso-spec2 (Asn_Lv2SpecTSO): TSO exposures of the spectroscopic types that have no
# dedicated rule (the MIRI LRS in both modes and NIRSpec's slits and MOS are excluded).
TSO_SPEC2_EXP_TYPES = SPECTRAL_EXP_TYPES - {"NRS_MSASPEC", "NRS_FIXEDSLIT", "MIR_LRS-SLITLESS", "MIR_LRS-FIXEDSLIT"}
# Exposure types that are time series whatever TSOVISIT says (the public TSO_EXP_TYPES).
TSO_EXP_TYPES = frozenset({"NRC_TSIMAGE", "NRC_TSGRISM", "NRS_BRIGHTOBJ"})
# IFU exposures never enter tso3 (Asn_Lv3TSO excludes them).
IFU_EXP_TYPES = frozenset({"MIR_MRS", "MIR_FLATMRS", "NRS_AUTOWAVE", "NRS_IFU"})
# NIRISS SOSS filters the pipeline has no flux calibration for: no tso-spec2, no tso3.
NIS_SOSS_UNCALIBRATED_FILTERS = frozenset({"F277W"})
# NIRCam time-series grism engineering paths Asn_Lv3TSO leaves out: these pupils, these subarrays.
NRC_TSGRISM_NO_TSO3_PUPILS = frozenset({"CLEAR", "GDHS0", "GDHS60"})
NRC_DHS_SUBARRAYS = frozenset({"SUB260STRIPE4_DHS", "SUB41STRIPE1_DHS", "SUB82STRIPE2_DHS", "SUB164STRIPE4_DHS"})
# NIRSpec bright-object (S1600A1) paths that put light on a detector: (grating, filter, detector),
# the A-slit rows of the public rules' table of valid fixed-slit optical paths.
NRS_BRIGHTOBJ_PATHS = frozenset({
    ("PRISM", "CLEAR", "NRS1"), ("G395H", "F290LP", "NRS1"), ("G395H", "F290LP", "NRS2"),
    ("G235H", "F170LP", "NRS1"), ("G235H", "F170LP", "NRS2"), ("G140H", "F100LP", "NRS1"),
    ("G140H", "F100LP", "NRS2"), ("G140H", "F070LP", "NRS1"), ("G395M", "F290LP", "NRS1"),
    ("G235M", "F170LP", "NRS1"), ("G140M", "F100LP", "NRS1"), ("G140M", "F070LP", "NRS1"),
})


def _tso_spectral_path_ok(obs: Observation, detector: str) -> bool:
    """The exclusions Asn_Lv2SpecTSO and Asn_Lv3TSO share: NIRCam's grism on NRCBLONG, a
    NIRSpec bright-object path that puts no light on ``detector``, a NIRISS SOSS filter
    without flux calibration."""
    exp_type, detector = obs.exp_type.upper(), detector.upper()
    if exp_type == "NRC_TSGRISM" and detector == "NRCBLONG":
        return False
    if exp_type == "NRS_BRIGHTOBJ" and (obs.pupil, obs.filter, detector) not in NRS_BRIGHTOBJ_PATHS:
        return False
    return not (exp_type == "NIS_SOSS" and obs.filter in NIS_SOSS_UNCALIBRATED_FILTERS)


def tso_spec2_takes(obs: Observation, detector: str) -> bool:
    """Whether Asn_Lv2SpecTSO (tso-spec2) takes this observation's exposures on ``detector``:
    a TSO exposure of :data:`TSO_SPEC2_EXP_TYPES`, not NIRCam's grism with the CLEAR pupil,
    on a path that reaches the detector. (The plan gives NIRSpec's grating as its pupil.)"""
    if not is_tso(obs) or obs.is_background or obs.exp_type.upper() not in TSO_SPEC2_EXP_TYPES:
        return False
    if obs.exp_type.upper() == "NRC_TSGRISM" and obs.pupil == "CLEAR":
        return False
    return _tso_spectral_path_ok(obs, detector)


def tso3_takes(obs: Observation, detector: str) -> bool:
    """Whether Asn_Lv3TSO takes a TSO spectroscopic exposure of ``obs`` on ``detector``: not
    an IFU, not NIRCam's grism engineering paths (CLEAR or dispersed-Hartmann pupils, DHS
    subarrays), not NIRISS SOSS of one integration, on a path that reaches the detector."""
    exp_type = obs.exp_type.upper()
    if not is_tso(obs) or obs.is_background or exp_type not in SPECTRAL_EXP_TYPES or exp_type in IFU_EXP_TYPES:
        return False
    if exp_type == "NRC_TSGRISM" and obs.pupil in NRC_TSGRISM_NO_TSO3_PUPILS:
        return False
    if obs.subarray.upper() in NRC_DHS_SUBARRAYS:
        return False
    if exp_type == "NIS_SOSS" and obs.nints == 1:
        return False
    return _tso_spectral_path_ok(obs, detector)

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


def is_tso(obs: Observation) -> bool:
    """A time-series observation: TSOVISIT, or an exposure type that is one by itself."""
    return obs.tsovisit or obs.exp_type.upper() in TSO_EXP_TYPES


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
