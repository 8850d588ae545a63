"""Shared fixtures: settings for the embedded default, a fresh PostgreSQL database,
a Redis database, and (via tests.s3server) an S3-protocol server on loopback."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
import redis

from shared.config import Settings

pytest_plugins = ["tests.s3server"]

PG_ADMIN_URL = os.environ.get("DMS_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("DMS_TEST_REDIS", "redis://127.0.0.1:6379/11")

#: The longest modules (minutes each on two cores), run first: `make test` runs the modules
#: on two processes (pytest-xdist, one module per process at a time, in collection order),
#: and a long module started last would leave the other process idle at the end.
LONGEST_FIRST = ("test_end_to_end.py", "test_api_schema.py", "test_spec2_nirspec_mos.py", "test_cli.py",
                 "test_imaging_accuracy.py", "test_linkages.py", "test_nirspec_mos_nrs2.py")


def pytest_collection_modifyitems(config, items):
    rank = {name: k for k, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order
    skips = {}
    if os.environ.get("DMS_RUN_SLOW") != "1":
        skips["slow"] = pytest.mark.skip(reason="slow; set DMS_RUN_SLOW=1 to run")
    if os.environ.get("DMS_RUN_FAULTS") != "1":
        skips["faults"] = pytest.mark.skip(reason="fault test; `make fault-test` runs them (DMS_RUN_FAULTS=1)")
    if os.environ.get("DMS_RUN_PUBLIC") != "1":
        skips["public"] = pytest.mark.skip(reason="the public pipeline on our files; `make public-test` runs them "
                                                  "(DMS_RUN_PUBLIC=1)")
    for item in items:
        for marker, skip in skips.items():
            if marker in item.keywords:
                item.add_marker(skip)


@pytest.fixture
def embedded_settings(tmp_path) -> Settings:
    """Local object store and SQLite catalog under a temporary directory."""
    return Settings(var_dir=tmp_path / "var", _env_file=None)


@pytest.fixture(scope="session")
def pg_server_url() -> str:
    """A fresh PostgreSQL database for this test session, dropped afterwards."""
    with scratch_database() as url:
        yield url


@contextmanager
def scratch_database() -> Iterator[str]:
    """A new, empty PostgreSQL database (its SQLAlchemy URL), dropped on leaving."""
    name = f"dms_test_{uuid.uuid4().hex[:10]}"
    try:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN_URL}: {exc} (start it; .ci/run does)")
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield url.replace("postgresql://", "postgresql+psycopg://", 1)
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def empty_catalog(url: str) -> str:
    """The PostgreSQL catalog at ``url`` at the newest schema with every table emptied; the url."""
    from sqlalchemy import create_engine, text

    from shared.catalog import Base, upgrade

    upgrade(url)
    engine = create_engine(url)
    with engine.begin() as conn:
        tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()
    return url


@pytest.fixture
def pg_url(pg_server_url) -> str:
    """The session database, emptied before each test."""
    return empty_catalog(pg_server_url)


@pytest.fixture
def redis_url() -> str:
    """The test Redis database."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        pytest.fail(f"Redis is not reachable at {REDIS_URL}: {exc} (start it; .ci/run does)")
    return REDIS_URL


@pytest.fixture
def broker_prefix(redis_url) -> str:
    """A key prefix of this test's own, so concurrent test runs never share a queue; its
    keys are deleted afterwards."""
    prefix = f"dmstest-{uuid.uuid4().hex[:8]}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(f"{prefix}*"):
        client.delete(key)


@pytest.fixture
def smtp():
    """An SMTP server on loopback that keeps what it receives (``.port``, ``.messages``)."""
    from tests.system import SmtpSink

    sink = SmtpSink()
    yield sink
    sink.close()


@pytest.fixture(scope="session")
def small_program_sim(tmp_path_factory):
    """The small imaging program (tests/faults/harness.py: two dither points of NRCA1 in
    SUB160) simulated once for the session; its files are inputs, read and never changed."""
    from services.simulator import simulate
    from tests.faults.harness import small_program

    return simulate(small_program(), tmp_path_factory.mktemp("small_program_sim"))


@pytest.fixture(scope="session")
def small_program_run(tmp_path_factory, small_program_sim):
    """The small imaging program through every service once for the session, on the
    embedded SQLite catalog and the local store (tests/imaging_chain.py). Never changed: a
    test module takes a copy of its own with ``tests.imaging_chain.copy_run``."""
    from tests.faults.harness import small_program
    from tests.imaging_chain import run_chain

    run = run_chain(small_program(), tmp_path_factory.mktemp("small_program"), sim=small_program_sim)
    run.ctx.catalog.dispose()
    return run


@pytest.fixture(scope="session")
def demo_tso_sim(tmp_path_factory):
    """The demo program's time series alone (tests/test_simulator_tso.py ``demo_tso``)
    simulated once for the session, for the simulator's and the ephemeris tests; read only."""
    from services.simulator import simulate
    from tests.test_simulator_tso import demo_tso

    return simulate(demo_tso(), tmp_path_factory.mktemp("demo_tso_sim"))


@pytest.fixture(scope="session")
def vo_archive(tmp_path_factory, small_program_sim):
    """The live archive of the Virtual Observatory tests (tests/vo_archive.py), made once."""
    from tests.vo_archive import serve_vo_archive

    yield from serve_vo_archive(tmp_path_factory, sim=small_program_sim)
