"""The `dms` command as a user runs it, on the embedded default."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


def dms(tmp_path, *args, check=True):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DMS_")} | {"DMS_VAR_DIR": str(tmp_path / "var")}
    proc = subprocess.run([sys.executable, "-m", "services.cli", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"dms {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture
def description(tmp_path):
    desc = yaml.safe_load((REPO / "examples" / "nircam_imaging.yaml").read_text())
    desc["observations"] = desc["observations"][:1]  # the imaging observation (the demo adds a TSO one)
    desc["observations"][0]["detectors"] = ["NRCA1"]
    desc["observations"][0]["dither"] = {"pattern": "NONE"}
    desc["simulation"]["write_references"] = False
    path = tmp_path / "desc.yaml"
    path.write_text(yaml.safe_dump(desc))
    return path


def test_simulate_ingest_status(tmp_path, description):
    out = dms(tmp_path, "simulate", str(description), "--out", str(tmp_path / "sim")).stdout
    assert "telemetry: 1 files" in out
    out = dms(tmp_path, "ingest", str(tmp_path / "sim")).stdout
    assert "delivered 1 plan(s), 1 ephemeris file(s) and 1 telemetry file(s)" in out and "ingest.telemetry       ok" in out
    bad = tmp_path / "noise.ccsds"
    bad.write_bytes(b"\xff" * 300)
    dms(tmp_path, "ingest", str(bad))
    status = dms(tmp_path, "status").stdout
    assert "level 1 (uncal): 1" in status
    assert "rejections: 1" in status and "noise.ccsds  no_science_packets" in status


def test_status_shows_reprocessing_requests(tmp_path):
    from datetime import UTC, datetime, timedelta

    from shared.catalog import Catalog, Program, ReprocessingRequest, ReprocessingUnit, RequestState
    from shared.config import Settings

    catalog = Catalog(Settings(var_dir=tmp_path / "var").resolved_catalog_url)
    catalog.upgrade()
    now = datetime.now(UTC)

    ids = {name: str(uuid.uuid4()) for name in "abcde"}

    def request(s, name, state, minutes_ago, units=()):
        rid, since = ids[name], now - timedelta(minutes=minutes_ago)
        s.add(ReprocessingRequest(id=rid, key=rid.replace("-", "") * 2, program_id="01234", scope={},
                                  from_stage="stage2", reference_context="jwst_0002.pmap", state=state,
                                  created_at=since, started_at=None if state == RequestState.QUEUED else since))
        for i, unit_state in enumerate(units):
            s.add(ReprocessingUnit(request_id=rid, kind="exposure", name=f"jw01234001001_01101_0000{i + 1}_nrca1",
                                   stage="stage2", state=unit_state))

    done, failed, running = RequestState.DONE, RequestState.FAILED, RequestState.RUNNING
    with catalog.session() as s:
        s.add(Program(id="01234", created_at=now))
        s.flush()
        request(s, "a", running, 125, [done, done, failed, running, running])  # the oldest running
        request(s, "b", running, 10, [running])
        request(s, "c", RequestState.QUEUED, 1)
        request(s, "d", done, 300, [done])
        request(s, "e", RequestState.CANCELLED, 400, [RequestState.CANCELLED])
    catalog.dispose()

    status = dms(tmp_path, "status").stdout
    lines = status.splitlines()
    line = lines.index("reprocessing requests: 2 running, 1 queued (1 done, 0 failed, 1 cancelled)")
    assert lines[line - 1].startswith("  not available: broker none"), "right after the backlog"
    assert re.fullmatch(rf"  oldest running: {ids['a']} \(program 01234, from stage2\), started 2h0[45]m ago",
                        lines[line + 1]), lines[line + 1]
    # 3 of 5 units ended in about 125 minutes: the other 2 in about 83 more
    assert re.fullmatch(r"    units: 2/5 done, 1 failed; about 1h2[23]m to go", lines[line + 2]), lines[line + 2]
    assert ids["b"] not in status
    assert lines[line + 3].startswith("outbox: ")


def test_clear_errors(tmp_path, description):
    proc = dms(tmp_path, "ingest", str(tmp_path / "nope.ccsds"), check=False)
    assert proc.returncode == 2 and "no such file" in proc.stderr
    bad_plan = tmp_path / "jw01234_plan.json"
    bad_plan.write_text('{"program": "1234"}')
    proc = dms(tmp_path, "ingest", str(bad_plan), check=False)
    assert proc.returncode == 2 and "invalid plan" in proc.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text("program: 1234\nobservations: [{instrument: NIRCAM, detectors: [NRCX9]}]\n")
    proc = dms(tmp_path, "simulate", str(broken), "--out", str(tmp_path / "x"), check=False)
    assert proc.returncode == 2 and "NRCX9" in proc.stderr
    proc = dms(tmp_path, "worker", "ingest", check=False)
    assert proc.returncode == 2 and "DMS_BROKER_URL" in proc.stderr


def test_commands_parse_their_own_arguments(tmp_path):
    # `run` hands the rest of the line to the pipeline's module; a service's commands are
    # parsed by the parser its module builds (imported only then).
    out = dms(tmp_path, "run", "image3", "--help").stdout
    assert out.startswith("usage: dms run image3") and "--abs-refcat" in out
    out = dms(tmp_path, "subscribe", "--help").stdout
    assert out.startswith("usage: dms subscribe") and "--webhook" in out
    assert "usage: dms token" in dms(tmp_path, "token", "--help").stdout
    proc = dms(tmp_path, "run", "image4", "x.json", check=False)
    assert proc.returncode == 2 and "invalid choice: 'image4'" in proc.stderr
    proc = dms(tmp_path, "subscriptions", "--bogus", check=False)
    assert proc.returncode == 2 and "unrecognized arguments: --bogus" in proc.stderr
    proc = dms(tmp_path, "status", "--bogus", check=False)
    assert proc.returncode == 2 and "unrecognized arguments: --bogus" in proc.stderr
