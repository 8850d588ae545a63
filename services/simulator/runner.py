"""``simulate``: a program description in, plan + telemetry + truth + reference files out.

Layout of ``out_dir``::

    plan/jw<ppppp>_plan.json
    plan/jw<ppppp>_ephem.json                     the observatory's definitive ephemeris
    telemetry/<exposure_id>.ccsds                 (science, with the exposure's fine guiding)
    telemetry/<visit_id>_gs.ccsds                 (guide-star ID/ACQ1/ACQ2/TRACK of a guided visit)
    truth/<exposure_id>_truth_{rate.fits,stars.ecsv,jumps.ecsv}
    truth/<exposure_id>_truth_lightcurve.ecsv     (TSO exposures with a host star)
    truth/<exposure_id>_truth_spectrum.ecsv       (slit exposures: MIRI LRS slit and slitless, NIRSpec fixed slits
                                                  and bright-object time series, NIRISS SOSS: both orders;
                                                  MIRI MRS: each channel of the detector)
    truth/<exposure_id>_truth_transmission.ecsv   (spectroscopic time series with a transit: depth per spectral
                                                  pixel; NIRISS SOSS per order)
    truth/<exposure_id>_truth_spectrum_s<sssss>.ecsv  (NIRSpec MOS: one per MSA source on the detector,
                                                     NRS1's quadrants 1 and 3, NRS2's 2 and 4)
    truth/truth.json
    catalogs/<program>_<target>_astrometric.ecsv  (one per target)
    msa/jw<ppppp><ooo>001_01_msa.fits             (NIRSpec MOS observations; rendered with PRISM/CLEAR)
    wavefront/R<YYYYMMDD><NN>-NRCA3_FP1-1.fits     (OPD files, with simulation.wavefront_cadence_hours)
    refs/jwst_<instrument>_<reftype>_<detector>[...]_sim.fits
    refs/jwst_miri_{specwcs,photom,pathloss}_lrs-fixedslit_sim.fits  (a plan with an LRS observation)
    refs/jwst_miri_{specwcs,photom}_lrs-slitless_sim.fits  (a plan with an LRS slitless observation)
    refs/jwst_nirspec_{specwcs,photom,pathloss}_nrs1_fixedslit_sim.fits  (a NIRSpec fixed-slit observation)
    refs/jwst_nirspec_{specwcs,photom,pathloss}_nrs1_brightobj_sim.fits  (a NIRSpec bright-object time series)
    refs/jwst_niriss_{spectrace,photom}_soss_sim.fits  (a NIRISS SOSS time series; its FLAT of CLEAR/GR700XD and
                                                  DARK of SUBSTRIP256 with the detector's)
    refs/jwst_nircam_specwcs_nrcalong_tsgrism_sim.asdf,
    refs/jwst_nircam_photom_nrcalong_tsgrism_sim.fits  (a NIRCam grism time series; its FLAT of F444W/GRISMR and
                                                  DARK of SUBGRISM64 with the detector's)
    refs/jwst_nirspec_{specwcs,photom,pathloss}_nrs<n>_msaspec_sim.fits,
    refs/jwst_nirspec_msaoper_sim.json            (a rendered NIRSpec MOS observation: per detector it
                                                  uses, NRS1 and/or NRS2; one MSAOPER, every quadrant)
    refs/jwst_miri_{distortion,specwcs,regions}_<mirifu*>_<band>_sim.asdf,
    refs/jwst_miri_{photom,flat}_<mirifu*>_<band>_sim.fits,
    refs/jwst_miri_wavelengthrange_mrs_sim.asdf, refs/jwst_miri_cubepar_mrs_sim.fits
                                                  (a MIRI MRS observation: per MRS detector it uses, every
                                                  band; no imaging FLAT/PHOTOM/AREA/DISTORTION there)

The astrometric catalogs and the MSA metadata files are written first: a MOS exposure
is rendered from its observation's MSA file (its sources' fluxes from the catalog).

Exposures are simulated detector by detector so only one full-frame detector model is in
memory at a time; each exposure's random streams come from its identifiers, so the order
does not change any byte.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from astropy.table import Table

from shared.ephemeris import Ephemeris, ephemeris_filename
from shared.instruments import detector, frame_time, subarray
from shared.plan import Observation, Plan

from .astrometric import write_astrometric_catalog
from .description import (
    DEFAULT_SPECTRUM,
    DescriptionError,
    ProgramDescription,
    SimulationSpec,
    load_description,
)
from .detector_model import make_detector_model
from .ephemeris import simulated_ephemeris
from .exposure import ExposureSimulation, simulate_exposure
from .guiding import fine_guide_packets, write_visit_guiding
from .mrs import MRS_EXP_TYPE
from .mrs_refs import write_mrs_flats, write_mrs_fringes, write_mrs_references
from .msa import failed_closed_shutters, failed_open_shutters, msa_exposure, write_msa_metadata
from .optical_refs import (
    mean_gain,
    write_catalog_references,
    write_guider_references,
    write_optical_references,
)
from .optics import jy_per_electron
from .plan_builder import build_plan, planned_only, rendered_mos
from .ramps import FrameSchedule
from .reffiles import DarkRequest, write_reference_files
from .slit_refs import write_nirspec_mos_references, write_slit_references
from .spectrograph import SourceSpectrum, slit_spectrograph, wfss_grism
from .telemetry_writer import max_rows_per_packet, write_telemetry
from .transit import HostStar
from .truth import (
    transit_summary,
    write_exposure_truth,
    write_lightcurve_truth,
    write_mos_truth,
    write_spectrum_truth,
    write_transmission_truth,
    write_truth_index,
)
from .wavefront import write_opd_files
from .wfss_refs import write_wfss_references

__all__ = ["Progress", "SimulationResult", "host_star", "simulate", "target_spectrum"]

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class SimulationResult:
    """What :func:`simulate` wrote. Paths are absolute; lists are in plan order."""

    plan_path: Path
    plan: Plan
    ephemeris_path: Path
    ephemeris: Ephemeris
    telemetry_paths: list[Path]
    truth_dir: Path
    reference_paths: list[Path]
    catalog_paths: list[Path] = field(default_factory=list)
    guide_paths: list[Path] = field(default_factory=list)  # <visit_id>_gs.ccsds of the guided visits
    msa_paths: list[Path] = field(default_factory=list)  # MSA metadata files, delivered with the plan
    opd_paths: list[Path] = field(default_factory=list)  # wavefront-sensing OPD files (program-independent)

    @property
    def delivery(self) -> list[Path]:
        """What the observatory delivers: the plan, the ephemeris, the MSA metadata files,
        the telemetry (the exposures' and the guided visits') and the wavefront-sensing OPD
        files."""
        return [self.plan_path, self.ephemeris_path, *self.msa_paths, *self.telemetry_paths, *self.guide_paths,
                *self.opd_paths]

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


def host_star(desc: ProgramDescription, observation: int) -> HostStar | None:
    """The TSO host star of an observation (by number), or None: an imaging time series'
    star of ``host_flux`` e-/s, or a spectroscopic time series' target (MIR_LRS-SLITLESS,
    NRS_BRIGHTOBJ, NIS_SOSS; flux None: its spectrum is the target's)."""
    for index, spec in enumerate(desc.observations):
        if desc.observation_number(index) != observation:
            continue
        if spec.host_flux is not None:
            return HostStar(flux=spec.host_flux, transit=spec.transit)
        if spec.spectroscopic_tso:
            return HostStar(flux=None, transit=spec.transit)
    return None


def target_spectrum(desc: ProgramDescription, target_id: int) -> SourceSpectrum:
    """The spectrum of a target (by TARGETID, its 1-based position) in slit exposures:
    its description's ``spectrum``, else :data:`description.DEFAULT_SPECTRUM`."""
    return (desc.targets[target_id - 1].spectrum or DEFAULT_SPECTRUM).source_spectrum()


def _detector_views(plan: Plan, det_name: str) -> list[Observation]:
    """Every observation that uses the detector, as its exposures see it (a simultaneous
    channel's detector: the channel's mode; a slitless observation's direct images and its
    dispersed exposures each in their own: :meth:`Observation.channels`)."""
    return [view for o in plan.observations for view in o.channels() if det_name in view.detectors]


def _optical_elements(plan: Plan, det_name: str) -> list[tuple[str, str]]:
    """(filter, pupil) of every observation that uses the detector, in plan order."""
    return list(dict.fromkeys((o.filter, o.pupil) for o in _detector_views(plan, det_name)))


def _dark_requests(plan: Plan, det_name: str, knobs: SimulationSpec) -> list[DarkRequest]:
    """One dark per (window, readout timing) the detector is used with (EXP_TYPE ANY when
    the window serves several exposure types)."""
    wanted: dict[tuple[str, str], dict[str, Any]] = {}
    for obs in _detector_views(plan, det_name):
        sub = subarray(obs.instrument, obs.subarray, det_name)
        readpatt = obs.readpatt if obs.instrument == "MIRI" else "ANY"
        schedule = FrameSchedule.for_exposure(obs.instrument, sub, obs.readpatt, obs.ngroups, obs.nints)
        entry = wanted.setdefault(
            (sub.name, readpatt),
            {"sub": sub, "tframe": frame_time(obs.instrument, sub, obs.readpatt), "frames": 0, "nints": 1,
             "exp_type": obs.exp_type},
        )
        if entry["exp_type"] != obs.exp_type:
            entry["exp_type"] = "ANY"
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
    ephemeris = simulated_ephemeris(plan)
    ephemeris_path = plan_dir / ephemeris_filename(plan.program)
    ephemeris_path.write_text(ephemeris.model_dump_json() + "\n", encoding="utf-8")
    report("plan", 1, 1)

    catalogs = []
    for target in plan.targets:
        if not any(o.target_id == target.id for o in plan.observations):
            continue
        hosts = [host_star(desc, o.number) for o in plan.observations if o.target_id == target.id]
        host_flux = next((h.flux for h in hosts if h is not None and h.flux is not None), None)
        path, count = write_astrometric_catalog(plan, target.id, knobs, out / "catalogs", host_flux)
        catalogs.append({"target": target.name, "target_id": target.id, "path": str(path.relative_to(out)),
                         "n_stars": count, "flux_min_e_per_s": knobs.astrometric_flux_min,
                         "position_error_mas": knobs.astrometric_error_mas})
    catalog_tables = {c["target_id"]: Table.read(out / c["path"], format="ascii.ecsv") for c in catalogs}

    # the MSA's failed-open and failed-closed shutters (hardware: the detector seed), which MSA planning avoids
    failed_open = failed_open_shutters(knobs.detector_seed)
    failed_closed = failed_closed_shutters(knobs.detector_seed)
    msa_paths, msa_files = [], {}
    for obs in (o for o in plan.observations if o.msa_metadata is not None):
        path = write_msa_metadata(plan, obs, catalog_tables[obs.target_id], out / "msa",
                                  desc.observations[_spec_index(desc, obs.number)].msa_sources, avoid=failed_open,
                                  closed=failed_closed)
        msa_paths.append(path)
        msa_files[obs.number] = path

    # NIRSpec MOS observations with a grating are planned (with their MSA metadata file), not simulated
    pairs = [(obs, exp) for obs in plan.observations if not planned_only(obs) for exp in obs.exposures]
    jobs = [(n, obs, exp) for n, (obs, exp) in enumerate(pairs)]
    detectors = list(dict.fromkeys(exp.detector for _, _, exp in jobs))
    telemetry: dict[int, Path] = {}
    entries: dict[int, dict[str, Any]] = {}
    references: list[dict[str, str]] = []
    reference_paths: list[Path] = []
    det_summary: dict[str, dict[str, float]] = {}
    catalog_refs_written: set[str] = set()
    guide_entries: list[dict[str, Any]] = []
    # The guiders of the guided visits: their images are read through their detector models.
    guiders = {name: make_detector_model(detector(name), knobs.detector_seed) for name in dict.fromkeys(
        gs.detector for obs in plan.observations if not planned_only(obs) for gs in obs.guide_stars)}
    done = 0
    for d, det_name in enumerate(detectors):
        model = make_detector_model(detector(det_name), knobs.detector_seed)
        det_summary[det_name] = _detector_summary(model)
        for n, obs, exp in jobs:
            if exp.detector != det_name:
                continue
            msa = None
            if rendered_mos(obs):
                msa = msa_exposure(msa_files[obs.number], exp.dither_point, catalog_tables[obs.target_id], knobs.seed,
                                   failed_open)
            sim = simulate_exposure(plan, obs, exp, knobs, model=model, host=host_star(desc, obs.number),
                                    ephemeris=ephemeris, spectrum=target_spectrum(desc, obs.target_id), msa=msa)
            guiding = fine_guide_packets(plan, obs, exp, knobs.seed, knobs.jitter_mas, knobs.jitter_time_s,
                                         guiders)
            path = write_telemetry(sim, tele_dir, rows_per_packet=knobs.rows_per_packet, compress=knobs.compress,
                                   guiding=guiding)
            telemetry[n] = path
            entries[n] = _exposure_entry(sim, path, truth_dir, out)
            del sim
            done += 1
            report("exposures", done, len(jobs))
        if knobs.write_references:
            written = write_reference_files(model, ref_dir, _dark_requests(plan, det_name, knobs))
            if any(o.exp_type == MRS_EXP_TYPE for o in _detector_views(plan, det_name)):
                # the MRS detectors: the slicer's references and a FLAT per band, no imaging optics
                written += (write_mrs_references(model, ref_dir) + write_mrs_flats(model, ref_dir)
                            + write_mrs_fringes(model, ref_dir))
            else:
                written += write_optical_references(model, ref_dir, _optical_elements(plan, det_name))
            slits = [slit_spectrograph(o.exp_type, o.fixed_slit) for o in _detector_views(plan, det_name)]
            if any(slits):  # SPECWCS, PHOTOM, PATHLOSS of the slits
                written += write_slit_references([m for m in slits if m is not None], model, ref_dir)
            grisms = [wfss_grism(o.exp_type, o.filter, o.pupil) for o in _detector_views(plan, det_name)]
            if any(grisms):  # SPECWCS, PHOTOM, WFSSBKG, WAVELENGTHRANGE of the wide-field grisms
                written += write_wfss_references([g for g in grisms if g is not None], model, ref_dir)
            if any(rendered_mos(o) and det_name in o.detectors for o in plan.observations):
                written += write_nirspec_mos_references(model, ref_dir, failed_open, failed_closed)
            instrument = model.detector.instrument
            if instrument not in catalog_refs_written:  # APCORR, ABVEGAOFFSET: one per instrument
                catalog_refs_written.add(instrument)
                written += write_catalog_references(instrument, ref_dir)
            for ref in written:
                if ref.path in reference_paths:
                    continue  # one file for every detector (MSAOPER, WAVELENGTHRANGE): listed once
                reference_paths.append(ref.path)
                references.append({"reftype": ref.reftype, "detector": ref.detector, "subarray": ref.subarray,
                                   "path": str(ref.path.relative_to(out))})
            report("references", d + 1, len(detectors))
        del model

    guide_paths = []
    for obs in plan.observations:
        if planned_only(obs):
            continue  # planned, not simulated: no visit took place, so no guiding either
        for gs in obs.guide_stars:
            path = write_visit_guiding(plan, obs, gs.visit, tele_dir, knobs.seed, knobs.jitter_mas,
                                       knobs.jitter_time_s, guiders[gs.detector])
            guide_paths.append(path)
            guide_entries.append({
                "observation": obs.number, "visit": gs.visit, "telemetry": str(path.relative_to(out)),
                "guide_star": gs.model_dump(mode="json"), "jitter_rms_mas_per_axis": knobs.jitter_mas,
                "jitter_time_s": knobs.jitter_time_s,
            })

    for name, model in guiders.items():
        det_summary[name] = _detector_summary(model)
        if knobs.write_references:
            for ref in write_guider_references(model, ref_dir):
                reference_paths.append(ref.path)
                references.append({"reftype": ref.reftype, "detector": ref.detector, "subarray": ref.subarray,
                                   "path": str(ref.path.relative_to(out))})
    del guiders

    opd_paths = write_opd_files(plan, knobs.seed, knobs.wavefront_cadence_hours, out / "wavefront")

    order = sorted(telemetry)
    write_truth_index(truth_dir / "truth.json", {
        "program": plan.program,
        "seed": knobs.seed,
        "detector_seed": knobs.detector_seed,
        "parameters": knobs.model_dump(mode="json"),
        "description": desc.model_dump(mode="json"),
        "plan": str(plan_path.relative_to(out)),
        "ephemeris": str(ephemeris_path.relative_to(out)),
        "exposures": [entries[n] for n in order],
        "references": references,
        "catalogs": catalogs,
        "guiding": guide_entries,
        **({"msa": {"metadata": [str(m.relative_to(out)) for m in msa_paths],
                    "failed_open_shutters": [{"quadrant": q, "row": r, "column": c} for q, r, c in failed_open]}}
           if msa_paths else {}),
        "detectors": det_summary,
        "units": {
            "truth_rate SCI": "DN/s = (sky * area + stars) e-/s * flat / gain",
            "truth_rate DARK": "DN/s = dark e-/s / gain",
            "star flux": "photo-electrons/s (unit flat)",
            "star flux_jy": "Jy = flux * jy_per_electron (see photometry)",
            "jump amplitude_dn": "linear DN (electrons / gain)",
            "pointing_offset_arcsec": "true minus planned window centre, arcsec along detector x/y",
            "jitter_rms_mas": "rms radial pointing jitter about its mean during the exposure (true), mas",
            "FLAT": "QE * area * g0 / gain (g0 = detectors.<det>.g0_e_per_dn)",
            "PHOTMJSR": "jy_per_electron * 1e-6 * g0 / pixel area (sr), MJy/sr per DN/s",
            "guide star": "guiding.count_rate(GS_MAG) e-/s; count_rate / g0 of its guider DN/s once flat-fielded",
            "truth_spectrum": "slit: per spectral pixel (LRS row, NIRSpec column), source and sky (see the table's "
                              "description)",
            "truth_spectra": "NIRSpec MOS: one truth_spectrum table per MSA source on the detector, with its MSA "
                             "identification (source, slitlet, quadrant, row, columns, primary shutter)",
            "truth_rate SKY": "slit: the sky's e-/s (pixel area included); STARS is then the source's DN/s",
            "truth_lightcurve": "TSO: per integration the host's relative flux (a spectroscopic time series: its "
                                "white light over white_light_band_um)",
            "truth_transmission": "spectroscopic time series with a transit: per spectral pixel (LRS row, NIRSpec "
                                  "column) the depth at full transit, intrinsic and through the line-spread "
                                  "function",
        },
        "photometry": _photometry(plan),
    })
    return SimulationResult(
        plan_path=plan_path,
        plan=plan,
        ephemeris_path=ephemeris_path,
        ephemeris=ephemeris,
        telemetry_paths=[telemetry[n] for n in order],
        guide_paths=guide_paths,
        truth_dir=truth_dir,
        reference_paths=reference_paths,
        catalog_paths=[out / c["path"] for c in catalogs],
        msa_paths=msa_paths,
        opd_paths=opd_paths,
    )


def _detector_summary(model) -> dict[str, float]:
    """The truth's summary of a detector model."""
    sensitive = ~model.refpix
    return {
        "gain_mean_e_per_dn": float(np.mean(model.gain[sensitive])),
        "read_noise_median_dn": float(np.median(model.read_noise[sensitive])),
        "bias_mean_dn": float(np.mean(model.bias)),
        "dark_median_e_per_s": float(np.median(model.dark[sensitive])),
        "g0_e_per_dn": mean_gain(model),
    }


def _spec_index(desc: ProgramDescription, number: int) -> int:
    return next(i for i in range(len(desc.observations)) if desc.observation_number(i) == number)


def _photometry(plan: Plan) -> dict[str, float]:
    """Jy per photo-electron/s of every instrument/filter/pupil the plan images with (a
    slit's is per spectral pixel: its truth_spectrum's electrons_per_jy)."""
    return {
        f"{o.instrument}/{o.filter}/{o.pupil}": jy_per_electron(o.instrument, o.filter, o.pupil)
        for whole in plan.observations for o in whole.channels()
        if o.msa_metadata is None and slit_spectrograph(o.exp_type, o.fixed_slit) is None
        and wfss_grism(o.exp_type, o.filter, o.pupil) is None and o.exp_type != MRS_EXP_TYPE
    }


def _exposure_entry(sim: ExposureSimulation, telemetry: Path, truth_dir: Path, out: Path) -> dict[str, Any]:
    """Write the truth files of one exposure; its entry in truth.json."""
    rate, stars, jumps = write_exposure_truth(sim, truth_dir)
    t = sim.truth
    entry = {
        "exposure_id": sim.name.exposure_id,
        "observation": sim.observation.number,
        "exposure": sim.exposure.exposure,
        "detector": sim.exposure.detector,
        "subarray": sim.observation.subarray,
        "telemetry": str(telemetry.relative_to(out)),
        "truth_rate": str(rate.relative_to(out)),
        "truth_stars": str(stars.relative_to(out)),
        "truth_jumps": str(jumps.relative_to(out)),
        "n_stars": len(t.star_table.id),
        "n_saturated_stars": int(np.count_nonzero(t.star_table.saturated)),
        "n_jumps": len(t.jumps),
        "sky_level_e_per_s": t.sky_level,
        "psf_fwhm_pix": t.psf_fwhm,
        "true_pointing": {"ra": t.pointing.ra, "dec": t.pointing.dec, "roll": t.pointing.roll},
        "pointing_offset_arcsec": list(t.pointing_offset),
        "roll_error_deg": t.roll_error,
        "jitter_rms_mas": t.jitter_rms_mas,
        "jitter_samples": t.jitter_samples,
    }
    if t.reset_decay is not None:
        entry["rscd"] = {"scale": t.reset_decay.scale, "tau_groups": t.reset_decay.tau,
                         "level_max_dn": t.reset_decay.level_max}
    spectrum = write_spectrum_truth(sim, truth_dir)
    if spectrum is not None:
        entry["truth_spectrum"] = str(spectrum.relative_to(out))
    if t.mrs is not None:
        entry["mrs_source"] = {"band": t.mrs.band, "alpha_arcsec": t.mrs.alpha, "beta_arcsec": t.mrs.beta,
                               "v2_arcsec": t.mrs.v2, "v3_arcsec": t.mrs.v3, "sky_scale": t.mrs.sky_scale}
    if spectrum is not None and t.slit is not None:
        slit = t.slit
        entry["slit_source"] = {"along_arcsec": slit.source.along, "across_arcsec": slit.source.across,
                                "x": slit.x, "y": slit.y, "sky_scale": slit.sky_scale,
                                "aperture": slit.model.aperture, "fixed_slit": slit.model.slit}
    if t.mos is not None:
        entry["truth_spectra"] = [{**ident, "truth_spectrum": str(path.relative_to(out))}
                                  for ident, path in write_mos_truth(sim, truth_dir)]
        entry["failed_open_shutters"] = [{"quadrant": m.shutters[0], "row": m.shutters[1], "column": m.shutters[2][0]}
                                         for m in t.mos.failed_open]
        entry["mos_pointing_shift_arcsec"] = list(t.mos.shift)
    curve = write_lightcurve_truth(sim, truth_dir)
    if curve is not None:
        host = t.host
        transit = host.host.transit
        entry["truth_lightcurve"] = str(curve.relative_to(out))
        entry["host_star"] = {"id": host.id, "flux_e_per_s": host.flux, "x": host.x, "y": host.y}
        entry["transit"] = None if transit is None else transit_summary(host.curve, transit)
        if t.slit is not None:  # a spectroscopic time series: the host's light is its spectrum
            entry["host_star"]["flux_band_um"] = list(t.slit.model.white_light_band)
    transmission = write_transmission_truth(sim, truth_dir)
    if transmission is not None:
        entry["truth_transmission"] = str(transmission.relative_to(out))
        entry["transit"]["white_light_depth_fnu"] = t.slit.transit.depth_fnu
    return entry
