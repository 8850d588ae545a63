"""``simulate``: a program description in, plan + telemetry + truth + reference files out.

Layout of ``out_dir``::

    plan/jw<ppppp>_plan.json
    telemetry/<exposure_id>.ccsds
    truth/<exposure_id>_truth_{rate.fits,stars.ecsv,jumps.ecsv}
    truth/truth.json
    refs/jwst_<instrument>_<reftype>_<detector>[...]_sim.fits

Exposures are simulated detector by detector so only one full-frame detector model is in
memory at a time; each exposure's random streams come from its identifiers, so the order
does not change any byte.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shared.instruments import detector, frame_time, subarray
from shared.plan import Plan

from .description import DescriptionError, ProgramDescription, SimulationSpec, load_description
from .detector_model import make_detector_model
from .exposure import simulate_exposure
from .plan_builder import build_plan
from .ramps import FrameSchedule
from .reffiles import DarkRequest, write_reference_files
from .telemetry_writer import max_rows_per_packet, write_telemetry
from .truth import write_exposure_truth, write_truth_index

__all__ = ["Progress", "SimulationResult", "simulate"]

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class SimulationResult:
    """What :func:`simulate` wrote. Paths are absolute; lists are in plan order."""

    plan_path: Path
    plan: Plan
    telemetry_paths: list[Path]
    truth_dir: Path
    reference_paths: list[Path]

    @property
    def truth_index(self) -> Path:
        return self.truth_dir / "truth.json"


def _check_packets(plan: Plan, knobs: SimulationSpec) -> None:
    if knobs.rows_per_packet is None:
        return
    for obs in plan.observations:
        ncols = subarray(obs.instrument, obs.subarray).xsize
        if knobs.rows_per_packet > max_rows_per_packet(ncols):
            raise DescriptionError(
                f"invalid program description:\n  simulation.rows_per_packet: {knobs.rows_per_packet} rows "
                f"of {ncols} pixels (observation {obs.number}) do not fit a packet; at most "
                f"{max_rows_per_packet(ncols)}",
                [("simulation.rows_per_packet", "too many rows for a packet")],
            )


def _dark_requests(plan: Plan, det_name: str, knobs: SimulationSpec) -> list[DarkRequest]:
    """One dark per (window, readout timing) the detector is used with."""
    wanted: dict[tuple[str, str], dict[str, Any]] = {}
    for obs in plan.observations:
        if det_name not in obs.detectors:
            continue
        sub = subarray(obs.instrument, obs.subarray)
        readpatt = obs.readpatt if obs.instrument == "MIRI" else "ANY"
        schedule = FrameSchedule.for_exposure(obs.instrument, sub, obs.readpatt, obs.ngroups, obs.nints)
        entry = wanted.setdefault(
            (sub.name, readpatt),
            {"sub": sub, "tframe": frame_time(obs.instrument, sub, obs.readpatt), "frames": 0, "nints": 1,
             "exp_type": obs.exp_type},
        )
        entry["frames"] = max(entry["frames"], schedule.frames_per_integration)
        if obs.instrument == "MIRI":
            entry["nints"] = max(entry["nints"], min(obs.nints, 2))
    return [
        DarkRequest(subarray=e["sub"], readpatt=patt, tframe=e["tframe"],
                    nframes=max(2, min(e["frames"], knobs.dark_max_frames)), nints=e["nints"],
                    exp_type=e["exp_type"])
        for (_, patt), e in sorted(wanted.items())
    ]


def simulate(
    description: str | os.PathLike[str] | Mapping[str, Any] | ProgramDescription,
    out_dir: str | os.PathLike[str],
    *,
    seed: int | None = None,
    progress: Progress | None = None,
) -> SimulationResult:
    """Simulate a program: plan, telemetry, truth and reference files.

    Parameters
    ----------
    description : path, YAML/JSON text, mapping or ProgramDescription
        The program description (see :func:`load_description`).
    out_dir : path
        Output directory (created); existing files of the same names are replaced.
    seed : int, optional
        Overrides ``simulation.seed`` of the description.
    progress : callable, optional
        ``progress(stage, done, total)``, stages ``plan``, ``exposures`` (after each
        exposure/detector is written) and ``references`` (after each detector).

    Raises
    ------
    DescriptionError
        The description is invalid (the message names the field).
    """
    desc = load_description(description)
    if seed is not None:
        if int(seed) < 0:
            raise DescriptionError(f"seed must be a non-negative integer, got {seed}")
        desc = desc.model_copy(update={"simulation": desc.simulation.model_copy(update={"seed": int(seed)})})
    knobs = desc.simulation
    plan = build_plan(desc)
    _check_packets(plan, knobs)
    report = progress or (lambda stage, done, total: None)

    out = Path(out_dir).resolve()
    plan_dir, tele_dir, truth_dir, ref_dir = (out / d for d in ("plan", "telemetry", "truth", "refs"))
    for d in (plan_dir, tele_dir, truth_dir):
        d.mkdir(parents=True, exist_ok=True)
    plan_path = plan_dir / f"jw{plan.program}_plan.json"
    plan_path.write_text(plan.model_dump_json(indent=2) + "\n", encoding="utf-8")
    report("plan", 1, 1)

    pairs = [(obs, exp) for obs in plan.observations for exp in obs.exposures]
    jobs = [(n, obs, exp) for n, (obs, exp) in enumerate(pairs)]
    detectors = list(dict.fromkeys(exp.detector for _, _, exp in jobs))
    telemetry: dict[int, Path] = {}
    entries: dict[int, dict[str, Any]] = {}
    references: list[dict[str, str]] = []
    reference_paths: list[Path] = []
    det_summary: dict[str, dict[str, float]] = {}
    done = 0
    for d, det_name in enumerate(detectors):
        model = make_detector_model(detector(det_name), knobs.detector_seed)
        sensitive = ~model.refpix
        det_summary[det_name] = {
            "gain_mean_e_per_dn": float(np.mean(model.gain[sensitive])),
            "read_noise_median_dn": float(np.median(model.read_noise[sensitive])),
            "bias_mean_dn": float(np.mean(model.bias)),
            "dark_median_e_per_s": float(np.median(model.dark[sensitive])),
        }
        for n, obs, exp in jobs:
            if exp.detector != det_name:
                continue
            sim = simulate_exposure(plan, obs, exp, knobs, model=model)
            path = write_telemetry(sim, tele_dir, rows_per_packet=knobs.rows_per_packet, compress=knobs.compress)
            rate, stars, jumps = write_exposure_truth(sim, truth_dir)
            telemetry[n] = path
            entries[n] = {
                "exposure_id": sim.name.exposure_id,
                "observation": obs.number,
                "exposure": exp.exposure,
                "detector": exp.detector,
                "subarray": obs.subarray,
                "telemetry": str(path.relative_to(out)),
                "truth_rate": str(rate.relative_to(out)),
                "truth_stars": str(stars.relative_to(out)),
                "truth_jumps": str(jumps.relative_to(out)),
                "n_stars": len(sim.truth.star_table.id),
                "n_saturated_stars": int(np.count_nonzero(sim.truth.star_table.saturated)),
                "n_jumps": len(sim.truth.jumps),
                "sky_level_e_per_s": sim.truth.sky_level,
                "psf_fwhm_pix": sim.truth.psf_fwhm,
            }
            del sim
            done += 1
            report("exposures", done, len(jobs))
        if knobs.write_references:
            for ref in write_reference_files(model, ref_dir, _dark_requests(plan, det_name, knobs)):
                reference_paths.append(ref.path)
                references.append({"reftype": ref.reftype, "detector": ref.detector, "subarray": ref.subarray,
                                   "path": str(ref.path.relative_to(out))})
            report("references", d + 1, len(detectors))
        del model

    order = sorted(telemetry)
    write_truth_index(truth_dir / "truth.json", {
        "program": plan.program,
        "seed": knobs.seed,
        "detector_seed": knobs.detector_seed,
        "parameters": knobs.model_dump(mode="json"),
        "description": desc.model_dump(mode="json"),
        "plan": str(plan_path.relative_to(out)),
        "exposures": [entries[n] for n in order],
        "references": references,
        "detectors": det_summary,
        "units": {
            "truth_rate SCI": "DN/s = (sky + stars) e-/s * flat / gain",
            "truth_rate DARK": "DN/s = dark e-/s / gain",
            "star flux": "photo-electrons/s (unit flat)",
            "jump amplitude_dn": "linear DN (electrons / gain)",
        },
    })
    return SimulationResult(
        plan_path=plan_path,
        plan=plan,
        telemetry_paths=[telemetry[n] for n in order],
        truth_dir=truth_dir,
        reference_paths=reference_paths,
    )
