"""Reprocessing requests as users see them: the archive API's /reprocessing routes, the
revisions it serves, and ``dms reprocess``, over a small program (two dithers of one
NIRCam detector, down to Level 3) run once through the embedded chain.

The tests share the module's catalog and run in order: a request is made, run and
reported; another is stopped half-way (a staged revision, then an abandoned one); the
command line then reads both and makes a third.
"""

from __future__ import annotations

import hashlib
import uuid
from collections import deque

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from services.archive.app import create_app
from services.cli import main
from shared.catalog import Artifact, Association, Exposure, Product, Program
from shared.config import Settings, get_settings
from shared.runtime import dispatch_events, run_handler
from shared.tokens import create_token
from tests.imaging_chain import copy_run

PROGRAM = "01234"
PI, AUTHORIZED, OUTSIDER, OPERATOR = ("ada@example.org", "charles@example.org", "mallory@example.org",
                                      "ops@example.org")


class Api:
    def __init__(self, client: TestClient, tokens: dict[str, str]):
        self.client, self.tokens = client, tokens

    def _headers(self, user):
        return {"Authorization": f"Bearer {self.tokens[user]}"} if user else None

    def get(self, url, user=None, **params):
        return self.client.get(url, params=params, headers=self._headers(user))

    def post(self, url, user=None, json=None):
        return self.client.post(url, json=json, headers=self._headers(user))


@pytest.fixture(scope="module")
def chain(tmp_path_factory, small_program_run):
    run = copy_run(small_program_run, tmp_path_factory.mktemp("reprocess"))
    with run.ctx.catalog.session() as s:
        program = s.get(Program, PROGRAM)
        assert program.pi_user == PI and AUTHORIZED in program.authorized_users
    yield run
    run.ctx.catalog.dispose()


@pytest.fixture(scope="module")
def api(chain):
    settings = Settings(var_dir=chain.ctx.settings.var_dir, operators=f" {OPERATOR} , other@example.org",
                        _env_file=None)
    with chain.ctx.catalog.session() as s:
        tokens = {u: create_token(s, u, 1, "tests") for u in (PI, AUTHORIZED, OUTSIDER, OPERATOR)}
    with TestClient(create_app(settings)) as client:
        yield Api(client, tokens)


def exposures(chain) -> list[str]:
    with chain.ctx.catalog.session() as s:
        return sorted(s.scalars(select(Exposure.name).where(Exposure.name.like("jw01234%"))))


def level3_asn(chain) -> str:
    with chain.ctx.catalog.session() as s:
        return s.scalar(select(Association.filename).where(Association.program_id == PROGRAM,
                                                          Association.level == 3))


def run_all(chain) -> None:
    """What a broker and the reprocessing workers would do: send what was recorded, run it."""
    dispatch_events(chain.ctx.catalog, chain.ctx.transport)
    done = chain.ctx.transport.run_until_idle()
    assert done and all(outcome.status == "ok" for _, outcome in done), done


def run_only(chain, task: str) -> int:
    """Run the queued messages of one task (and those it queues for itself); keep the rest."""
    dispatch_events(chain.ctx.catalog, chain.ctx.transport)
    inline, kept, ran = chain.ctx.transport, deque(), 0
    while inline.queue:
        name, payload = inline.queue.popleft()
        if name != task:
            kept.append((name, payload))
            continue
        assert run_handler(name, inline.handlers[name], payload, chain.ctx).status == "ok"
        ran += 1
    inline.queue = kept
    return ran


def sha_of(chain, filename: str, revision: int) -> str:
    with chain.ctx.catalog.session() as s:
        return s.scalar(select(Artifact.sha256).join(Product).where(
            Product.filename == filename, Product.revision == revision, Artifact.kind == "data"))


def request_body(**changes) -> dict:
    body = {"program": "1234", "scope": {}, "from_stage": "stage2", "reason": "new flat for NRCA1"}
    body.update(changes)
    return body


# ---------------------------------------------------------------------- submitting


def test_who_may_submit_and_bad_requests(chain, api):
    exposure = exposures(chain)[0]
    body = request_body(scope={"exposures": [exposure]})
    assert api.post("/reprocessing", json=body).status_code == 401
    r = api.post("/reprocessing", OUTSIDER, body)
    assert r.status_code == 403 and "neither the PI nor an authorized user of program 01234" in r.json()["detail"]
    assert api.post("/reprocessing", PI, request_body(program="99999")).status_code == 404
    assert api.post("/reprocessing", PI, request_body(program="12x")).status_code == 400

    r = api.post("/reprocessing", PI, request_body(scope={"exposures": ["jw01234001001_01101_00009_nrca1"]}))
    assert r.status_code == 400
    assert r.json()["detail"] == "program 01234 has no exposure jw01234001001_01101_00009_nrca1"
    r = api.post("/reprocessing", PI, request_body(scope={"observations": [7]}))
    assert r.status_code == 400 and "has no observation 7" in r.json()["detail"]
    for context in ("dms_0099.ctx", "dms_99999999999999999999.ctx", "latest"):
        r = api.post("/reprocessing", PI, request_body(reference_context=context, scope=body["scope"]))
        assert r.status_code == 400 and context in r.json()["detail"], r.json()
    for bad, where in ((request_body(from_stage="stage9"), "from_stage"), (request_body(reason=" "), "reason"),
                       ({"program": "1234", "from_stage": "stage2"}, "reason"),
                       (request_body(scope={"exposure": [exposure]}), "scope.exposure"),
                       (request_body(scope={"observations": ["one"]}), "scope.observations")):
        r = api.post("/reprocessing", PI, bad)
        assert r.status_code == 400 and where in r.json()["detail"], (bad, r.json())
    assert api.get("/reprocessing", PI).json() == []  # nothing was recorded


def test_submit_follow_run_and_report(chain, api):
    exposure = exposures(chain)[0]
    cal = f"{exposure}_cal.fits"
    old_sha = sha_of(chain, cal, 1)
    body = request_body(scope={"exposures": [exposure]}, software_reason="flat_field 1.2")
    r = api.post("/reprocessing", PI, body)
    assert r.status_code == 201, r.json()
    request = r.json()
    rid = request["id"]
    assert request["state"] == "running" and request["requested_by"] == PI and request["origin"] == "user"
    assert request["from_stage"] == "stage2" and request["reference_context"]
    assert request["scope"]["exposures"] == [exposure]
    kinds = {u["kind"]: u for u in request["units"]}
    assert kinds["exposure"]["name"] == exposure and kinds["exposure"]["state"] == "running"
    assert kinds["association"]["name"] == level3_asn(chain) and kinds["association"]["state"] == "queued"
    assert request["progress"] == {"units": 2, "done": 0, "failed": 0, "ended": 0, "eta_seconds": None}

    again = api.post("/reprocessing", AUTHORIZED, {**body, "program": "01234"})  # the same request
    assert again.status_code == 200 and again.json()["id"] == rid

    assert api.get(f"/reprocessing/{rid}", AUTHORIZED).json()["state"] == "running"
    assert api.get(f"/reprocessing/{rid}", OUTSIDER).status_code == 403
    assert api.get(f"/reprocessing/{rid}").status_code == 401
    assert api.get(f"/reprocessing/{uuid.uuid4()}", PI).status_code == 404
    assert api.get("/reprocessing/not-a-request", PI).status_code == 400
    assert [v["id"] for v in api.get("/reprocessing", PI).json()] == [rid]
    assert api.get("/reprocessing", OUTSIDER).json() == []
    assert api.get("/reprocessing", OUTSIDER, program="1234").status_code == 403
    assert [v["id"] for v in api.get("/reprocessing", OPERATOR, state="running").json()] == [rid]
    assert api.get("/reprocessing", OPERATOR, state="done").json() == []
    assert api.get(f"/reprocessing/{rid}", OPERATOR).status_code == 200

    run_all(chain)
    done = api.get(f"/reprocessing/{rid}", PI).json()
    assert done["state"] == "done" and done["finished_at"] and done["error"] is None
    assert done["progress"] == {"units": 2, "done": 2, "failed": 0, "ended": 2, "eta_seconds": None}
    assert all(u["state"] == "done" and u["products"] for u in done["units"])

    report = api.get(f"/reprocessing/{rid}/report", PI)
    assert report.status_code == 200
    products = {p["filename"]: p for p in report.json()["products"]}
    row = products[cal]
    assert (row["revision"], row["replaces"], row["state"], row["unit"]) == (2, 1, "current", exposure)
    assert row["reason"]["reason"] == "new flat for NRCA1" and row["reason"]["request_id"] == rid
    assert row["changes"] is not None and isinstance(row["summary"], str) and row["summary"]
    level3 = [p for p in products.values() if p["unit"] == level3_asn(chain)]
    assert level3 and all(p["state"] == "current" for p in level3)
    assert api.get(f"/reprocessing/{rid}/report", OUTSIDER).status_code == 403

    # the product is served current by default, its superseded revision on request
    current = api.get(f"/download/{cal}", PI)
    assert current.status_code == 200 and current.headers["X-DMS-Revision"] == "2"
    old = api.get(f"/download/{cal}", PI, revision=1)
    assert old.status_code == 200 and old.headers["X-DMS-Revision"] == "1"
    assert old.headers["X-Checksum-SHA256"] == old_sha == hashlib.sha256(old.content).hexdigest()
    assert hashlib.sha256(current.content).hexdigest() == sha_of(chain, cal, 2) != old_sha
    detail = api.get(f"/products/{cal}").json()
    assert [(r["revision"], r["state"]) for r in detail["revisions"]] == [(2, "current"), (1, "superseded")]
    rows = api.get("/products", filename=cal, productType="SCIENCE", include_superseded="true").json()["rows"]
    assert sorted((r["revision"], r["is_current"]) for r in rows) == [(1, False), (2, True)]


def test_staged_and_abandoned_revisions_are_for_operators_only(chain, api):
    exposure = exposures(chain)[1]
    rate = f"{exposure}_rate.fits"
    r = api.post("/reprocessing", OPERATOR, request_body(scope={"exposures": [exposure]}, from_stage="detector1",
                                                         reason="new dark"))
    assert r.status_code == 201 and r.json()["origin"] == "operator" and r.json()["requested_by"] == OPERATOR
    rid = r.json()["id"]
    assert rid in [v["id"] for v in api.get("/reprocessing", PI).json()]  # the PI follows it too

    assert run_only(chain, "detector1.reprocess") >= 1  # detector1 ran; stage 2 waits in the queue
    staged = api.get(f"/reprocessing/{rid}", PI).json()
    [unit] = [u for u in staged["units"] if u["kind"] == "exposure"]
    assert unit["state"] == "running" and unit["stage"] == "stage2" and f"{rate} r2" in unit["products"]

    assert api.get(f"/download/{rate}", PI).headers["X-DMS-Revision"] == "1"  # still the old one
    assert api.get(f"/download/{rate}", PI, revision=2).status_code == 404
    assert api.get(f"/products/{rate}", PI, revision=2).status_code == 404
    assert [r["revision"] for r in api.get(f"/products/{rate}", PI).json()["revisions"]] == [1]
    rows = api.get("/products", PI, filename=rate, productType="SCIENCE", include_superseded="true").json()["rows"]
    assert [r["revision"] for r in rows] == [1]
    seen = api.get(f"/products/{rate}", OPERATOR, revision=2)
    assert seen.status_code == 200 and seen.json()["product"]["revision"] == 2
    assert [(r["revision"], r["state"]) for r in seen.json()["revisions"]] == [(2, "staged"), (1, "current")]
    rows = api.get("/products", OPERATOR, filename=rate, productType="SCIENCE", include_superseded="true")
    assert sorted(r["revision"] for r in rows.json()["rows"]) == [1, 2]

    assert api.post(f"/reprocessing/{rid}/cancel", OUTSIDER).status_code == 403
    assert api.post(f"/reprocessing/{uuid.uuid4()}/cancel", PI).status_code == 404
    cancelled = api.post(f"/reprocessing/{rid}/cancel", PI)
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    assert all(u["state"] == "cancelled" for u in cancelled.json()["units"])
    run_all(chain)  # the stage-2 steps already sent find the request cancelled and do nothing
    again = api.post(f"/reprocessing/{rid}/cancel", PI).json()
    assert again["state"] == "cancelled" and again["finished_at"] == cancelled.json()["finished_at"]

    report = {p["filename"]: p for p in api.get(f"/reprocessing/{rid}/report", PI).json()["products"]}
    assert report[rate]["state"] == "abandoned" and report[rate]["replaces"] == 1
    assert api.get(f"/download/{rate}", PI).headers["X-DMS-Revision"] == "1"
    assert api.get(f"/download/{rate}", PI, revision=2).status_code == 404
    assert [(r["revision"], r["state"]) for r in api.get(f"/products/{rate}", OPERATOR).json()["revisions"]] == \
        [(2, "abandoned"), (1, "current")]


def test_openapi_documents_the_reprocessing_routes(api):
    spec = api.get("/openapi.json").json()
    assert {"/reprocessing", "/reprocessing/{request_id}", "/reprocessing/{request_id}/cancel",
            "/reprocessing/{request_id}/report"} <= set(spec["paths"])
    post = spec["paths"]["/reprocessing"]["post"]
    assert {"200", "201", "400", "401", "403", "404"} <= set(post["responses"])
    assert "ReprocessingIn" in spec["components"]["schemas"]


# ---------------------------------------------------------------------- command line


@pytest.fixture
def cli(chain, monkeypatch, capsys):
    monkeypatch.setenv("DMS_VAR_DIR", str(chain.ctx.settings.var_dir))
    for name in ("DMS_CATALOG_URL", "DMS_BROKER_URL", "DMS_STORE"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()

    def run(*argv):
        status = main(["reprocess", *argv])
        out = capsys.readouterr()
        return status, out.out, out.err

    yield run
    get_settings.cache_clear()


def test_cli_status_report_and_errors(chain, api, cli):
    [cancelled, done] = [v["id"] for v in api.get("/reprocessing", PI).json()]  # newest first
    status, out, _ = cli("status")
    assert status == 0 and done in out and cancelled in out and "cancelled" in out
    status, out, _ = cli("status", done)
    assert status == 0 and f"request {done}: done" in out and "2 of 2 unit(s) done" in out
    assert "reason: new flat for NRCA1 (software: flat_field 1.2)" in out and exposures(chain)[0] in out
    status, out, _ = cli("report", done)
    cal = f"{exposures(chain)[0]}_cal.fits"
    [line] = [ln for ln in out.splitlines() if cal in ln]
    assert status == 0 and line.split()[1:4] == ["2", "r1", "current"]
    status, out, _ = cli("report", cancelled)
    assert "abandoned" in out

    status, _, err = cli("status", "no-such-request")
    assert status == 2 and err.strip() == "error: no reprocessing request no-such-request"
    status, _, err = cli("submit", "1234", "--exposure", "jw01234001001_01101_00009_nrca1", "--from", "stage2",
                         "--reason", "x")
    assert status == 2 and "program 01234 has no exposure jw01234001001_01101_00009_nrca1" in err
    with pytest.raises(SystemExit) as exc:
        cli("submit", "1234", "--from", "stage9", "--reason", "x")
    assert exc.value.code == 2


def test_cli_submit_runs_the_request_to_its_end(chain, cli):
    asn = level3_asn(chain)
    status, out, _ = cli("submit", "1234", "--association", asn, "--from", "stage3", "--reason", "better alignment")
    assert status == 0, out
    assert out.startswith("submitted: request ") and "stage3.reprocess" in out
    rid = out.split()[2]
    assert f"request {rid}: done" in out and "1 of 1 unit(s) done" in out
    status, out, _ = cli("submit", "1234", "--association", asn, "--from", "stage3", "--reason", "again")
    assert status == 0 and out.startswith(f"already requested: request {rid}")
    status, out, _ = cli("cancel", rid)  # it ended: nothing changes
    assert status == 0 and f"request {rid}: done" in out
    status, out, _ = cli("status", "--state", "done")
    assert rid in out and "cancelled" not in out


def test_cli_submit_with_a_broker_only_queues(chain, cli, monkeypatch, redis_url, broker_prefix):
    import redis

    monkeypatch.setenv("DMS_BROKER_URL", redis_url)
    monkeypatch.setenv("DMS_BROKER_KEY_PREFIX", broker_prefix)
    get_settings.cache_clear()
    exposure = exposures(chain)[1]
    status, out, _ = cli("submit", "1234", "--exposure", exposure, "--from", "stage2", "--reason", "queued only")
    assert status == 0 and "queued for the reprocessing workers" in out, out
    rid = out.split()[2]
    with chain.ctx.catalog.session() as s:
        made = s.scalars(select(Product.filename).where(Product.request_id == rid)).all()
    assert made == []  # nothing ran here
    queued = redis.Redis.from_url(redis_url).llen(f"{broker_prefix}stage2-reprocess")
    assert queued == 1  # the exposure's stage-2 step, on the low-priority queue
    status, out, _ = cli("cancel", rid)
    assert status == 0 and f"request {rid}: cancelled" in out
