"""Asynchronous TAP jobs kept in the catalog (services/archive/vo/uws.py), on SQLite and on
PostgreSQL: two stores over two engines on one database stand for two API processes. The
query is a stand-in (the live TAP service is tests/test_vo_tap.py's); what is checked is what
every process sees of a job: its phase, result, error, owner, deletion, a lost runner and
expiry. Also migration 0016 up and down.
"""

from __future__ import annotations

import threading
import time
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, inspect, select

from services.archive.vo.tap import TapError
from services.archive.vo.uws import RUNNER_MARGIN_SECONDS, JobStore, job_xml, jobs_xml, runner_id
from shared.catalog import Catalog, TapJob, upgrade

pytestmark = pytest.mark.integration

QUERY = [("QUERY", "SELECT TOP 1 obs_id FROM ivoa.obscore"), ("LANG", "ADQL")]
VOTABLE = b"<VOTABLE>one row</VOTABLE>"


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path) -> str:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'catalog.db'}"
        upgrade(url)
        return url
    return request.getfixturevalue("pg_url")


@pytest.fixture
def processes(url):
    """Two catalogs (engines, pools) on one database: what two API processes have."""
    one, two = Catalog(url), Catalog(url)
    yield one, two
    one.dispose()
    two.dispose()


class Clock:
    """A time that tests move."""

    def __init__(self):
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


def test_a_job_made_by_one_process_is_run_and_read_by_another(processes):
    a, b = (JobStore(c) for c in processes)
    job = a.create("ada", QUERY, 10)
    assert (job.phase, job.owner, job.parameters, job.has_result) == ("PENDING", "ada", QUERY, False)
    assert job.destruction - job.created == timedelta(hours=1)
    seen = b.get(job.job_id, "ada")
    assert seen == job
    asked = []
    b.run(job.job_id, lambda parameters: asked.append(parameters) or VOTABLE)
    assert asked == [QUERY]
    done = a.get(job.job_id, "ada")
    assert done.phase == "COMPLETED" and done.has_result and done.error is None
    assert done.started is not None and done.ended >= done.started
    assert a.result(job.job_id) == VOTABLE
    # the job document reads the same from either process
    document = ET.fromstring(job_xml(done, "http://x/vo/tap/async/" + job.job_id))
    ns = {"uws": "http://www.ivoa.net/xml/UWS/v1.0"}
    assert document.find("uws:phase", ns).text == "COMPLETED"
    assert document.find("uws:results/uws:result", ns) is not None
    assert job_xml(done, "u") == job_xml(b.get(job.job_id, "ada"), "u")
    # a second RUN does nothing: the job ran
    b.run(job.job_id, lambda parameters: pytest.fail("ran twice"))
    a.delete(job.job_id)
    assert b.get(job.job_id, "ada") is None


def test_owner_rule_and_job_list(processes):
    a, b = (JobStore(c) for c in processes)
    ada = a.create("ada", QUERY, 10)
    anonymous = a.create(None, QUERY, 10)
    assert b.get(ada.job_id, "eve") is None and b.get(ada.job_id, None) is None
    assert b.get(anonymous.job_id, "eve") is not None
    assert [j.job_id for j in b.visible("ada")] == [ada.job_id, anonymous.job_id]
    assert [j.job_id for j in b.visible("eve")] == [anonymous.job_id]
    assert [j.job_id for j in b.visible(None)] == [anonymous.job_id]
    listing = ET.fromstring(jobs_xml(b.visible("ada"), "http://x/vo/tap/async"))
    assert len(listing) == 2


def test_a_refused_query_ends_in_error_with_its_message(processes):
    a, b = (JobStore(c) for c in processes)
    job = a.create(None, QUERY, 10)

    def refuse(parameters):
        raise TapError("public.program is not a table of this service")

    a.run(job.job_id, refuse)
    failed = b.get(job.job_id, None)
    assert failed.phase == "ERROR" and failed.error == "public.program is not a table of this service"
    assert not failed.has_result and b.result(job.job_id) is None
    # an unforeseen failure ends the job too, without its internals
    other = a.create(None, QUERY, 10)
    a.run(other.job_id, lambda parameters: 1 / 0)
    failed = b.get(other.job_id, None)
    assert failed.phase == "ERROR" and "ZeroDivisionError" in failed.error


def test_two_runs_at_once_run_the_query_once(processes):
    a, b = (JobStore(c) for c in processes)
    job = a.create(None, QUERY, 10)
    calls = []

    def slow(parameters):
        calls.append(threading.current_thread().name)
        time.sleep(0.3)
        return VOTABLE

    threads = [threading.Thread(target=store.run, args=(job.job_id, slow), name=f"run-{i}")
               for i, store in enumerate((a, b, a, b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert a.get(job.job_id, None).phase == "COMPLETED"


def test_an_abort_while_executing_drops_the_outcome(processes):
    a, b = (JobStore(c) for c in processes)
    job = a.create(None, QUERY, 10)

    def aborted_meanwhile(parameters):
        assert b.get(job.job_id, None).phase == "EXECUTING"
        b.abort(job.job_id)
        return VOTABLE

    a.run(job.job_id, aborted_meanwhile)
    ended = b.get(job.job_id, None)
    assert ended.phase == "ABORTED" and not ended.has_result and ended.ended is not None
    # an ended job stays as it ended
    done = a.create(None, QUERY, 10)
    a.run(done.job_id, lambda parameters: VOTABLE)
    b.abort(done.job_id)
    assert a.get(done.job_id, None).phase == "COMPLETED"


def test_a_job_whose_runner_stopped_is_seen_in_error(processes):
    later = Clock()
    a = JobStore(processes[0])
    b = JobStore(processes[1], clock=later)
    job = a.create("ada", QUERY, 10)
    seen = {}

    def runner_dies(parameters):
        # while the query runs, another process reads the job: within the duration and the
        # margin it is EXECUTING, past them the runner is taken for dead
        later.now = datetime.now(UTC) + timedelta(seconds=10 + RUNNER_MARGIN_SECONDS - 5)
        seen["within"] = b.get(job.job_id, "ada")
        later.now += timedelta(seconds=10)
        seen["past"] = b.get(job.job_id, "ada")
        seen["listed"] = b.visible("ada")
        return VOTABLE

    a.run(job.job_id, runner_dies)
    assert seen["within"].phase == "EXECUTING"
    lost = seen["past"]
    assert lost.phase == "ERROR" and "runner stopped" in lost.error and runner_id() in lost.error
    assert [j.phase for j in seen["listed"]] == ["ERROR"]
    # the late outcome of a runner taken for dead does not overwrite the error
    final = a.get(job.job_id, "ada")
    assert final.phase == "ERROR" and not final.has_result


def test_a_job_left_executing_by_a_killed_process(processes, url):
    """A row as a killed process leaves it: EXECUTING, its start long ago."""
    a = JobStore(processes[0])
    job = a.create(None, QUERY, 5)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(TapJob.__table__.update().where(TapJob.id == job.job_id).values(
            phase="EXECUTING", runner="gone-host:4242",
            started_at=datetime.now(UTC) - timedelta(seconds=5 + RUNNER_MARGIN_SECONDS + 1)))
    engine.dispose()
    lost = JobStore(processes[1]).get(job.job_id, None)
    assert lost.phase == "ERROR" and "gone-host:4242" in lost.error and lost.ended is not None


def test_expired_jobs_are_gone_and_removed(processes, url):
    clock = Clock()
    a = JobStore(processes[0], clock=clock)
    old = a.create(None, QUERY, 10)
    kept = a.create("ada", QUERY, 10)
    clock.now += timedelta(seconds=3601)
    assert a.get(old.job_id, None) is None
    assert a.visible("ada") == []
    engine = create_engine(url)
    with engine.connect() as conn:
        assert conn.execute(select(TapJob.id)).all() == []  # both removed: one read, the list
    engine.dispose()
    assert kept.job_id not in {j.job_id for j in JobStore(processes[1]).visible("ada")}


def test_the_oldest_jobs_go_beyond_the_limit(processes):
    clock = Clock()
    a = JobStore(processes[0], max_jobs=3, clock=clock)
    made = []
    for _ in range(5):
        clock.now += timedelta(seconds=1)
        made.append(a.create(None, QUERY, 10).job_id)
    assert [j.job_id for j in JobStore(processes[1]).visible(None)] == made[2:]


def test_migration_0016_up_and_down(url):
    from alembic import command

    from shared.catalog.db import alembic_config

    engine = create_engine(url)
    try:
        assert "tap_job" in inspect(engine).get_table_names()
        command.downgrade(alembic_config(url), "0015_obscore_view")
        engine.dispose()
        assert "tap_job" not in inspect(engine).get_table_names()
        upgrade(url)
        engine.dispose()
        columns = {c["name"] for c in inspect(engine).get_columns("tap_job")}
        assert {"id", "owner", "parameters", "execution_duration", "phase", "created_at", "started_at", "ended_at",
                "destruction_at", "result", "error"} <= columns
    finally:
        engine.dispose()
