"""Migration 0005 (association table) upgrades a catalog at 0004 that holds data, and
downgrades again, on SQLite and on PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import psycopg
import pytest
from sqlalchemy import create_engine, inspect, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shared.catalog import upgrade
from shared.catalog.models import Association
from tests.conftest import PG_ADMIN_URL

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'catalog.db'}"
        return
    name = f"dms_mig_{uuid.uuid4().hex[:10]}"
    try:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN_URL}: {exc}")
    yield PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1) + f"/{name}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_upgrade_from_0004_keeps_data_and_downgrades(fresh_url):
    upgrade(fresh_url, "0004")
    engine = create_engine(fresh_url)
    try:
        assert "association" not in inspect(engine).get_table_names()
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO program (id, title, pi_name, category, eap_months, authorized_users, "
                              "granted_users, created_at) VALUES ('01234', 't', 'p', 'GO', 12, '[]', '[]', :now)"),
                         {"now": datetime(2026, 1, 1, tzinfo=UTC)})
        upgrade(fresh_url, "0005")
        engine.dispose()
        columns = {c["name"] for c in inspect(engine).get_columns("association")}
        assert {"acid", "asn_type", "product_name", "members", "waiting", "version_id", "product_id"} <= columns
        now = datetime(2026, 2, 1, tzinfo=UTC)
        row = dict(program_id="01234", acid="o001", asn_type="image3", product_name="jw01234-o001_t001_nircam_f200w",
                   asn_rule="candidate_Asn_Lv3Image", level=3, complete=False, expected=["a_cal.fits"],
                   waiting=["a_cal.fits"], members=[], emitted_count=0, updated_at=now)
        with Session(engine) as s, s.begin():
            s.add(Association(**row))
        with Session(engine) as s:
            got = s.scalar(select(Association))
            assert (got.program_id, got.waiting, got.filename) == ("01234", ["a_cal.fits"], None)
        with pytest.raises(IntegrityError), Session(engine) as s, s.begin():
            s.add(Association(**row))  # one row per program, candidate, type and product
        engine.dispose()
        downgrade_to_0004(fresh_url)
        assert "association" not in inspect(engine).get_table_names()
        with engine.connect() as conn:
            assert conn.execute(text("SELECT id FROM program")).scalar_one() == "01234"
    finally:
        engine.dispose()


def downgrade_to_0004(url: str) -> None:
    from alembic import command

    from shared.catalog.db import alembic_config

    command.downgrade(alembic_config(url), "0004")
