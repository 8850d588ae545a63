"""The observatory stand-in: program description -> plan, telemetry, truth, reference files,
astrometric catalogs.

Entry points: :func:`simulate` (everything, into a directory) and :func:`load_description`.
:func:`simulate_exposure` rebuilds the cube of one exposure exactly as written (for tests
and scoring; a TSO observation's host star comes from :func:`host_star`, a slit
target's spectrum (MIRI LRS slit and slitless, NIRSpec fixed slits and bright objects,
NIRISS SOSS, NIRCam's grism time series) from
:func:`target_spectrum`). The physics, the
photometric calibration, the truth files and the reference files are described in
``docs/simulator.md``.
"""

from .description import (
    CandidateSpec,
    DescriptionError,
    DitherSpec,
    ObservationSpec,
    ProgramDescription,
    SimulationSpec,
    TargetSpec,
    TransitSpec,
    load_description,
)
from .exposure import ExposureSimulation, ExposureTruth, StarTruth, exposure_name, simulate_exposure
from .plan_builder import build_plan
from .runner import SimulationResult, host_star, simulate, target_spectrum
from .transit import HostStar

__all__ = [
    "CandidateSpec",
    "DescriptionError",
    "DitherSpec",
    "ExposureSimulation",
    "ExposureTruth",
    "HostStar",
    "ObservationSpec",
    "ProgramDescription",
    "SimulationResult",
    "SimulationSpec",
    "StarTruth",
    "TargetSpec",
    "TransitSpec",
    "build_plan",
    "exposure_name",
    "host_star",
    "load_description",
    "simulate",
    "simulate_exposure",
    "target_spectrum",
]
