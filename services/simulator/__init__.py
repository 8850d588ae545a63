"""The observatory stand-in: program description -> plan, telemetry, truth, reference files.

Entry points: :func:`simulate` (everything, into a directory) and :func:`load_description`.
:func:`simulate_exposure` rebuilds the cube of one exposure exactly as written (for tests
and scoring). The physics, the truth files and the reference files are described in
``docs/simulator.md``.
"""

from .description import (
    DescriptionError,
    DitherSpec,
    ObservationSpec,
    ProgramDescription,
    SimulationSpec,
    TargetSpec,
    load_description,
)
from .exposure import ExposureSimulation, ExposureTruth, StarTruth, exposure_name, simulate_exposure
from .plan_builder import build_plan
from .runner import SimulationResult, simulate

__all__ = [
    "DescriptionError",
    "DitherSpec",
    "ExposureSimulation",
    "ExposureTruth",
    "ObservationSpec",
    "ProgramDescription",
    "SimulationResult",
    "SimulationSpec",
    "StarTruth",
    "TargetSpec",
    "build_plan",
    "exposure_name",
    "load_description",
    "simulate",
    "simulate_exposure",
]
