"""Catalog schema and queries on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from shared.catalog import Base, Catalog
from shared.catalog.obscore import is_derived
from shared.catalog.queries import (
    add_months,
    next_revision,
    register_product,
    upsert_exposure,
    upsert_program,
)
from shared.storage import StoredObject
from tests.telemetry_factory import tiny_plan


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog(request, tmp_path):
    url = f"sqlite:///{tmp_path / 'c.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    cat = Catalog(url)
    cat.upgrade()
    yield cat
    cat.dispose()


@pytest.mark.integration
def test_migrations_match_the_models(catalog):
    with catalog.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_object": is_derived})
        diff = compare_metadata(context, Base.metadata)
    assert diff == [], f"models and migrations differ; add an Alembic revision: {diff}"


def stored(n: int, sha: str) -> StoredObject:
    return StoredObject("dms-archive", f"k{n}", f"file:///k{n}", sha, 10, "application/fits")


@pytest.mark.integration
def test_revisions_supersede_and_retries_are_no_ops(catalog):
    plan = tiny_plan()
    now = datetime(2026, 1, 31, tzinfo=UTC)
    with catalog.session() as s:
        upsert_program(s, plan)
        exp = upsert_exposure(s, "01234", 1, "jw01234001001_01101_00001_nrca1", visit=1, visit_group=1,
                              sequence=1, activity="01", exposure=1, detector="NRCA1", exp_type="NRC_IMAGE",
                              filter="F200W", pupil="CLEAR", readpatt="RAPID", subarray="SUB64P", ngroups=3, nints=2)

    def register(sha, revision):
        with catalog.session() as s:
            return register_product(
                s, stored=stored(revision, sha), filename="f_uncal.fits", suffix="uncal", level=1,
                revision=revision, program_id="01234", observation_id=exp.observation_id, exposure_id=exp.id,
                archived_at=now, eap_months=plan.eap_months, software_version="t", inputs=["raw"])

    with catalog.session() as s:
        assert next_revision(s, "f_uncal.fits", "a" * 64).revision == 1
    p1, created = register("a" * 64, 1)
    assert created and p1.data_release == datetime(2027, 1, 31, tzinfo=UTC)
    with catalog.session() as s:
        same = next_revision(s, "f_uncal.fits", "a" * 64)
        assert same.existing is not None and same.revision == 1
        assert next_revision(s, "f_uncal.fits", "b" * 64).revision == 2
    _, created = register("a" * 64, 1)
    assert not created
    p2, created = register("b" * 64, 2)
    assert created and p2.is_current
    with catalog.session() as s:
        from sqlalchemy import select

        from shared.catalog import Product

        rows = s.scalars(select(Product).order_by(Product.revision)).all()
        assert [(r.revision, r.is_current, r.superseded_at is not None) for r in rows] == [(1, False, True), (2, True, False)]


def test_add_months_clips_to_month_end():
    assert add_months(datetime(2026, 1, 31), 1) == datetime(2026, 2, 28)
    assert add_months(datetime(2026, 11, 15), 14) == datetime(2028, 1, 15)
    assert add_months(datetime(2026, 5, 1), 0) == datetime(2026, 5, 1)
