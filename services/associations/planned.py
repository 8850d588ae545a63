"""The plan's exposures named as files: what each observation is expected to deliver."""

from __future__ import annotations

from shared.naming import ExposureName
from shared.plan import Observation, Plan, PlannedExposure

__all__ = ["planned_name", "planned_names"]


def planned_name(program: str, obs: Observation, exp: PlannedExposure, suffix: str = "uncal") -> ExposureName:
    """The file name of one planned exposure (its ``exposure_id`` is the catalog key)."""
    return ExposureName(
        program=program, observation=obs.number, visit=exp.visit, visit_group=exp.visit_group,
        sequence=exp.sequence, activity=f"{exp.activity:02d}", exposure=exp.exposure,
        detector=exp.detector.lower(), suffix=suffix,
    )


def planned_names(plan: Plan, obs: Observation) -> list[tuple[PlannedExposure, ExposureName]]:
    """Every planned exposure of ``obs`` with its name, in plan order."""
    return [(e, planned_name(plan.program, obs, e)) for e in obs.exposures]
