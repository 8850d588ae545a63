"""The public JWST pipeline, run offline beside ours (benchmarks and the compatibility tests).

Nothing is chosen by CRDS: every reference type of every step that runs is given as an
override (:func:`step_overrides` stops when one is not), step parameters are not looked up
(``STPIPE_DISABLE_CRDS_STEPPARS=true``), and what CRDS still does (naming the context it
"used" in the outputs) is served by a fresh ``CRDS_PATH`` holding only a minimal
``config/jwst/server_config``, with ``CRDS_MODE=local``, ``CRDS_READONLY_CACHE=1``, a
placeholder ``CRDS_CONTEXT`` (no rules are read) and ``CRDS_SERVER_URL`` set to CRDS's
serverless mode (its client refuses every call instead of connecting). Without that file
CRDS stops with "CRDS server connection and cache load FAILED". Where ``unshare --net
--map-root-user`` works, the process also runs in an empty network namespace.

:func:`run_pipeline` runs one of jwst's pipelines on several inputs in one child process
(``python -m benchmarks._jwst SPEC``), so jwst is imported once.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

__all__ = ["EXTRACT_1D_NOT_APPLICABLE", "LRS_SLITLESS_SPEC2_SKIP", "LRS_SPEC2_NOT_APPLICABLE", "LRS_SPEC2_SKIP",
           "LRS_SPEC3_NOT_APPLICABLE", "LRS_SPEC3_SKIP", "SERVER_CONFIG", "STEPS", "WFSS_SPEC2_NOT_APPLICABLE",
           "WFSS_SPEC2_SKIP", "box_extract1d_reference", "crds_env",
           "lrs_extract1d_reference", "network_isolation", "run_pipeline", "run_steps", "slitless_extract1d_reference",
           "step_logged_seconds", "step_overrides", "strun_arguments"]

SERVER_CONFIG = {  # what CRDS reads instead of asking a server
    "observatory": "jwst",
    "operational_context": "jwst_0000.pmap",
    "edit_context": "jwst_0000.pmap",
    "last_synced": "never (offline)",
    "force_remote_mode": False,
    "bad_files": "",
    "bad_files_list": [],
}
PIPELINES = {
    "calwebb_detector1": "jwst.pipeline.Detector1Pipeline",
    "calwebb_image2": "jwst.pipeline.Image2Pipeline",
    "calwebb_image3": "jwst.pipeline.Image3Pipeline",
    "calwebb_spec2": "jwst.pipeline.Spec2Pipeline",
    "calwebb_spec3": "jwst.pipeline.Spec3Pipeline",
}
#: jwst's steps run one by one (:func:`run_steps`), where a pipeline cannot run offline.
STEPS = {
    "cube_build": "jwst.cube_build.CubeBuildStep",
    "extract_1d": "jwst.extract_1d.Extract1dStep",
    "photom": "jwst.photom.PhotomStep",
    "white_light": "jwst.white_light.WhiteLightStep",
}


def crds_env(crds_path: Path) -> dict[str, str]:
    """The environment that keeps CRDS offline, with its config written under ``crds_path``."""
    from crds.client import proxy

    config = crds_path / "config" / "jwst" / "server_config"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(repr({**SERVER_CONFIG, "download_metadata": proxy.crds_encode({})}))
    return {
        "CRDS_PATH": str(crds_path),
        "CRDS_SERVER_URL": "https://jwst-serverless-mode.stsci.edu",
        "CRDS_OBSERVATORY": "jwst",
        "CRDS_MODE": "local",
        "CRDS_CONTEXT": SERVER_CONFIG["operational_context"],
        "CRDS_READONLY_CACHE": "1",
        "CRDS_CLIENT_RETRY_COUNT": "1",
        "CRDS_CLIENT_RETRY_DELAY_SECONDS": "0",
        "STPIPE_DISABLE_CRDS_STEPPARS": "true",
    }


def network_isolation() -> list[str]:
    """``unshare --net --map-root-user`` when it works here (an empty network namespace)."""
    prefix = ["unshare", "--net", "--map-root-user"]
    try:
        ok = subprocess.run([*prefix, "true"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    return prefix if ok else []


def _pipeline_class(name: str):
    from importlib import import_module

    module, _, cls = {**PIPELINES, **STEPS}[name].rpartition(".")
    return getattr(import_module(module), cls)


def step_overrides(
    pipeline: str,
    refs: Mapping[str, Path],
    skip: Mapping[str, str] | None = None,
    not_applicable: Iterable[tuple[str, str]] = (),
    params: Mapping[str, Mapping[str, str]] | None = None,
) -> tuple[dict[str, dict], list[str]]:
    """Step settings for ``pipeline`` (e.g. ``calwebb_detector1``) that keep it offline.

    Every reference type of every step that runs comes from ``refs`` (type -> file), or is
    ``N/A`` for the (step, type) pairs of ``not_applicable``; ``skip`` (step -> why) turns
    steps off; ``params`` adds step parameters. Returns ({step: {parameter: value}}, the
    steps that run); RuntimeError when a step that runs needs a type not provided (it would
    ask CRDS), is a pipeline of its own, or ``skip`` names a step jwst does not have.
    """
    cls = _pipeline_class(pipeline)
    skip, params, not_applicable = skip or {}, params or {}, set(not_applicable)
    steps: dict[str, dict] = {}
    ran: list[str] = []
    for step, step_cls in cls.step_defs.items():
        if step in skip:
            steps[step] = {"skip": True}
            continue
        ran.append(step)
        settings: dict = dict(params.get(step, {}))
        if not isinstance(step_cls.reference_file_types, list | tuple):  # e.g. spec2's master_background_mos
            raise RuntimeError(f"jwst's {pipeline} step {step} is a pipeline of its own (its reference types "
                               "are its steps'); skip it")
        for reftype in step_cls.reference_file_types:
            if reftype in refs:
                settings[f"override_{reftype}"] = str(refs[reftype])
            elif (step, reftype) in not_applicable:
                settings[f"override_{reftype}"] = "N/A"
            else:
                raise RuntimeError(f"jwst's {pipeline} step {step} needs a {reftype!r} reference that is not "
                                   "provided; running it would ask CRDS. Skip the step or provide the file.")
        if settings:
            steps[step] = settings
    unknown = set(skip) - set(cls.step_defs)
    if unknown:
        raise RuntimeError(f"{pipeline} has no steps {sorted(unknown)}")
    return steps, ran


def strun_arguments(steps: Mapping[str, Mapping]) -> list[str]:
    """The same settings as ``strun`` options (``--steps.<step>.<param>=<value>``)."""
    return [f"--steps.{step}.{p}={str(v).lower() if isinstance(v, bool) else v}"
            for step, settings in steps.items() for p, v in settings.items()]


def run_pipeline(pipeline: str, inputs: Iterable[Path], steps: Mapping[str, Mapping], output_dir: Path,
                 crds_path: Path, log: Path, env: Mapping[str, str] | None = None, timeout: float = 1800,
                 ) -> subprocess.CompletedProcess:
    """Run jwst's ``pipeline`` on each input (files or association JSON) in one offline child
    process, from the input's directory (where jwst looks for the source catalog an
    association names for a WFSS exposure), saving its products in ``output_dir``; the
    child's output goes to ``log``. RuntimeError with the end of the log when it fails."""
    spec = {"pipeline": pipeline, "inputs": [str(p) for p in inputs], "steps": steps, "output_dir": str(output_dir)}
    return _run_child(spec, pipeline, output_dir, crds_path, log, env, timeout)


def run_steps(chain: Sequence[tuple[str, Mapping]], inputs: Iterable[Path], output_dir: Path, crds_path: Path,
              log: Path, env: Mapping[str, str] | None = None, timeout: float = 1800) -> subprocess.CompletedProcess:
    """Run jwst's steps ``chain`` (:data:`STEPS` name, its parameters: every reference an
    override, so nothing asks CRDS) one after the other on each input, each step on the
    previous one's result, in one offline child process, saving every step's product in
    ``output_dir``; the child's output goes to ``log``. RuntimeError with the end of the log
    when it fails."""
    spec = {"chain": [[name, dict(params)] for name, params in chain], "inputs": [str(p) for p in inputs],
            "output_dir": str(output_dir)}
    return _run_child(spec, " -> ".join(name for name, _ in chain), output_dir, crds_path, log, env, timeout)


def _run_child(spec: dict, what: str, output_dir: Path, crds_path: Path, log: Path, env: Mapping[str, str] | None,
               timeout: float) -> subprocess.CompletedProcess:
    output_dir.mkdir(parents=True, exist_ok=True)
    base = {k: v for k, v in (env or os.environ).items() if not k.startswith(("CRDS_", "STPIPE_"))}
    with open(log, "wb") as out:
        proc = subprocess.run([*network_isolation(), sys.executable, "-m", "benchmarks._jwst", json.dumps(spec)],
                              env={**base, **crds_env(crds_path)}, stdout=out, stderr=subprocess.STDOUT,
                              timeout=timeout, cwd=Path(__file__).resolve().parents[1])
    if proc.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        raise RuntimeError(f"jwst {what} exited with {proc.returncode}; end of {log}:\n{tail}")
    return proc


#: extract_1d's reference types that are N/A for a box extraction of ours (its aperture
#: in an EXTRACT1D of our own): the aperture correction (our PHOTOM is calibrated for a
#: point source's whole light, which the box holds) and the SOSS and optimal-extraction types.
EXTRACT_1D_NOT_APPLICABLE = ("apcorr", "pastasoss", "specprofile", "speckernel", "psf")


# calwebb_spec2 on MIRI LRS slit exposures (tests/test_public_pipeline_lrs.py, the spectroscopy
# benchmark).
# jwst's Spec2Pipeline steps we do not run on MIR_LRS-FIXEDSLIT, and why.
LRS_SPEC2_SKIP = {
    "badpix_selfcal": "skipped by default upstream",
    "msa_flagging": "NIRSpec MOS and IFU only",
    "clean_flicker_noise": "NIRSpec only; skipped by default upstream",
    "imprint_subtract": "NIRSpec MOS and IFU only",
    "extract_2d": "not run for MIR_LRS-FIXEDSLIT (NIRSpec, WFSS)",
    "master_background_mos": "NIRSpec MOS only",
    "targ_centroid": "needs a target-acquisition verification image; skipped by default upstream",
    "wavecorr": "NIRSpec only",
    "straylight": "MIRI MRS only",
    "fringe": "MIRI MRS only",
    "residual_fringe": "MIRI MRS only; skipped by default upstream",
    "barshadow": "NIRSpec MOS only",
    "wfss_contam": "WFSS only; skipped by default upstream",
    "adaptive_trace_model": "skipped by default upstream",
    "pixel_replace": "skipped by default upstream",
    "cube_build": "IFU only",
}
# Reference types of the steps that run which are N/A here: those of other modes
# (NIRSpec, MRS, WFSS, SOSS); FILTEROFFSET (ours is the imager's, its filters; jwst's LRS
# WCS reads none); AREA (our photom takes the pixel area from PHOTOM's PIXAR_SR, as jwst's
# does without an AREA); APCORR (our PHOTOM is calibrated for a point source's whole light
# and ours applies no aperture correction: a 13-pixel box holds more than 99.97 % of the
# PSF at 14.5 um); PSF (optimal extraction only; this is a box).
LRS_SPEC2_NOT_APPLICABLE = ({("assign_wcs", t) for t in ("filteroffset", "regions", "wavelengthrange", "camera", "chromcorr",
                                          "collimator", "disperser", "fore", "fpa", "msa", "ote", "ifupost",
                                          "ifufore", "ifuslicer")}
            | {("bkg_subtract", "bkg"), ("bkg_subtract", "wavelengthrange"), ("photom", "area")}
            | {("flat_field", t) for t in ("fflat", "sflat", "dflat")}
            | {("extract_1d", t) for t in EXTRACT_1D_NOT_APPLICABLE})


# calwebb_spec3 on our MIRI LRS slit _cal (tests/test_public_pipeline_lrs.py): the steps we do
# not run, and why; the extract_1d reference types that are N/A as for spec2.
LRS_SPEC3_SKIP = {
    "assign_mtwcs": "moving targets only",
    "master_background": "each nod's _cal is already nod-subtracted (spec2's bkg_subtract)",
    "adaptive_trace_model": "skipped by default upstream",
    "pixel_replace": "skipped by default upstream",
    "cube_build": "IFU only",
    "photom": "NIRISS SOSS only in spec3",
    "spectral_leak": "MIRI MRS only",
}
LRS_SPEC3_NOT_APPLICABLE = {("extract_1d", t) for t in EXTRACT_1D_NOT_APPLICABLE}


def lrs_extract1d_reference(path: Path, width: float) -> Path:
    """jwst's EXTRACT1D reference (JSON) with our extract_1d's aperture: a box ``width``
    pixels wide along the slit, centred on the source (``use_source_posn``), over the
    whole spectrum, no background regions (the nods are subtracted)."""
    path.write_text(json.dumps({
        "reftype": "EXTRACT1D", "instrument": "MIRI", "telescope": "JWST", "exp_type": "MIR_LRS-FIXEDSLIT",
        "description": "our extract_1d's aperture", "apertures": [
            {"id": "MIR_LRS-FIXEDSLIT", "region_type": "target", "dispaxis": 2, "extract_width": width,
             "use_source_posn": True, "bkg_order": 0}]}))
    return path


# calwebb_spec2 on MIRI LRS slitless time series (tests/test_public_pipeline_tso.py): the slit
# modes' skipped steps, and those jwst does not run on a slitless time series either.
LRS_SLITLESS_SPEC2_SKIP = {
    **LRS_SPEC2_SKIP,
    "bkg_subtract": "no nod or background exposure: the sky is measured beside the trace in extract_1d",
    "pathloss": "no slit to lose light at",
    "resample_spec": "not run for a time series",
}


def slitless_extract1d_reference(path: Path, centre: float, width: float,
                                 background: tuple[tuple[float, float], ...]) -> Path:
    """jwst's EXTRACT1D reference (JSON) with our slitless extract_1d's aperture, in the
    window's columns (jwst cannot place a slitless source from the WCS): a box ``width``
    pixels wide about column ``centre`` (0-based), and the background regions
    (offsets from the centre, pixels) either side, whose median jwst subtracts."""
    return box_extract1d_reference(path, "MIRI", "MIR_LRS-SLITLESS", "MIR_LRS-SLITLESS", 2, [centre], width,
                                   background)


def box_extract1d_reference(path: Path, instrument: str, exp_type: str, aperture: str, dispaxis: int,
                            centre: Sequence[float], width: float, background: tuple[tuple[float, float], ...]) -> Path:
    """jwst's EXTRACT1D reference (JSON) with one box aperture (id ``aperture``: the slit's
    name, or the EXP_TYPE without one): ``width`` pixels across the dispersion
    (``dispaxis``) about ``centre``, the polynomial (coefficients in increasing powers; one
    for a constant) in the pixel along the dispersion that gives the aperture's centre
    (0-based pixels of the product's own grid), and the background regions (offsets from
    the centre, pixels) either side, whose median jwst subtracts."""
    c0, *rest = (float(c) for c in centre)

    def edge(offset: float) -> list[float]:
        return [c0 + offset, *rest]

    path.write_text(json.dumps({
        "reftype": "EXTRACT1D", "instrument": instrument, "telescope": "JWST", "exp_type": exp_type,
        "description": "our extract_1d's aperture", "apertures": [
            {"id": aperture, "region_type": "target", "dispaxis": dispaxis, "use_source_posn": False,
             "independent_var": "pixel", "src_coeff": [edge(-width / 2.0), edge(width / 2.0)],
             "bkg_coeff": [edge(lo) for region in background for lo in region], "bkg_order": 0,
             "bkg_fit": "poly"}]}))
    return path


_STEP_LINE = re.compile(r"^(?P<time>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) - stpipe\.step - INFO - Step "
                        r"(?P<step>\S+) (?P<what>running|done)")


def step_logged_seconds(log_text: str) -> dict[str, float]:
    """Seconds from each step's "running" to its "done" in jwst's log (stpipe stamps them to
    the millisecond), summed over its runs; the pipeline itself is among them (e.g.
    ``Spec2Pipeline``: the whole run after jwst is imported). Steps skipped log no "done"
    and are left out."""
    from datetime import datetime

    started: dict[str, datetime] = {}
    seconds: dict[str, float] = {}
    for line in log_text.splitlines():
        m = _STEP_LINE.match(line)
        if not m:
            continue
        when = datetime.strptime(m["time"], "%Y-%m-%d %H:%M:%S,%f")
        if m["what"] == "running":
            started[m["step"]] = when
        elif m["step"] in started:
            seconds[m["step"]] = seconds.get(m["step"], 0.0) + (when - started.pop(m["step"])).total_seconds()
    return seconds


# calwebb_spec2 on NIRISS and NIRCam wide-field slitless exposures
# (tests/test_public_pipeline_wfss.py): jwst's Spec2Pipeline steps we do not run, and why.
WFSS_SPEC2_SKIP = {
    **{step: why for step, why in LRS_SPEC2_SKIP.items() if step not in ("extract_2d", "wfss_contam")},
    "pathloss": "no slit to lose light at",
    "resample_spec": "not run for WFSS",
    "wfss_contam": "skipped by default upstream (ours flags where listed sources' spectra overlap instead)",
}
# Reference types of the steps that run which are N/A for WFSS: those of other modes
# (NIRSpec, MRS, SOSS, optimal extraction); FILTEROFFSET (ours is the imager's, selected
# for NIS_IMAGE, and our WFSS WCS applies none); AREA (our photom takes the pixel area from
# PHOTOM's PIXAR_SR, as jwst's does without an AREA); EXTRACT1D (jwst's WFSS extraction
# reads none: the aperture is the cutout extract_2d makes); APCORR (our PHOTOM is
# calibrated for a point source's whole light across the dispersion, and neither applies
# an aperture correction: the cutout, 11 pixels and more across, holds the light of the
# trace's profile, a sigma of about a pixel).
WFSS_SPEC2_NOT_APPLICABLE = ({("assign_wcs", t) for t in ("filteroffset", "regions", "camera", "chromcorr",
                                                          "collimator", "disperser", "fore", "fpa", "msa", "ote",
                                                          "ifupost", "ifufore", "ifuslicer")}
                             | {("photom", "area")}
                             | {("flat_field", t) for t in ("fflat", "sflat", "dflat")}
                             | {("extract_1d", t) for t in ("extract1d", *EXTRACT_1D_NOT_APPLICABLE)})


def _main(spec: dict) -> None:
    if "chain" in spec:
        for path in spec["inputs"]:
            result = path
            for name, params in spec["chain"]:
                result = _pipeline_class(name).call(result, output_dir=spec["output_dir"], save_results=True, **params)
        return
    cls = _pipeline_class(spec["pipeline"])
    output_dir = Path(spec["output_dir"]).resolve()
    for path in [Path(p).resolve() for p in spec["inputs"]]:
        os.chdir(path.parent)  # jwst opens a WFSS exposure's source catalog by its name alone
        cls.call(str(path), steps=spec["steps"], output_dir=str(output_dir), save_results=True)


if __name__ == "__main__":
    _main(json.loads(sys.argv[1]))
