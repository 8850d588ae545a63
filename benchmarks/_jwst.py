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
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

__all__ = ["SERVER_CONFIG", "crds_env", "network_isolation", "run_pipeline", "step_overrides", "strun_arguments"]

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

    module, _, cls = PIPELINES[name].rpartition(".")
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
    process, saving its products in ``output_dir``; the child's output goes to ``log``.
    RuntimeError with the end of the log when it fails."""
    output_dir.mkdir(parents=True, exist_ok=True)
    spec = {"pipeline": pipeline, "inputs": [str(p) for p in inputs], "steps": steps, "output_dir": str(output_dir)}
    base = {k: v for k, v in (env or os.environ).items() if not k.startswith(("CRDS_", "STPIPE_"))}
    with open(log, "wb") as out:
        proc = subprocess.run([*network_isolation(), sys.executable, "-m", "benchmarks._jwst", json.dumps(spec)],
                              env={**base, **crds_env(crds_path)}, stdout=out, stderr=subprocess.STDOUT,
                              timeout=timeout, cwd=Path(__file__).resolve().parents[1])
    if proc.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        raise RuntimeError(f"jwst {pipeline} exited with {proc.returncode}; end of {log}:\n{tail}")
    return proc


def _main(spec: dict) -> None:
    cls = _pipeline_class(spec["pipeline"])
    for path in spec["inputs"]:
        cls.call(path, steps=spec["steps"], output_dir=spec["output_dir"], save_results=True)


if __name__ == "__main__":
    _main(json.loads(sys.argv[1]))
