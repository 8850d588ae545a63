"""What the archive's searches read instead of scanning the catalog (migration
0013_search_indexes): the HEALPix ranges of a cone, the observations' summaries of their
current products (kept by the catalog session), their backfill by the migration, and the
benchmark's bulk loader, on SQLite and PostgreSQL."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import psycopg
import pytest
from sqlalchemy import func, select, update

from shared.catalog import Catalog, Exposure, Observation, Product, sky, upgrade
from shared.catalog.queries import (
    register_product,
    supersede_products,
    upsert_exposure,
    upsert_program,
)
from shared.catalog.summary import SUMMARY_COLUMNS, refresh_observations
from shared.storage import StoredObject
from tests.telemetry_factory import tiny_plan


def _separation(ra1, dec1, ra2, dec2):
    p1, p2 = np.radians(dec1), np.radians(dec2)
    h = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(np.radians(ra2 - ra1) / 2) ** 2
    return np.degrees(2 * np.arcsin(np.minimum(1.0, np.sqrt(h))))


@pytest.mark.parametrize("ra, dec, radius", [
    (53.16, -27.79, 1.0), (0.1, 10.0, 0.5), (359.95, -5.0, 0.2), (120.0, 89.7, 1.0), (200.0, -89.9, 0.3),
    (10.0, 0.0, 0.01), (250.0, 45.0, 12.0),
])
def test_cone_ranges_hold_every_pointing_in_the_cone(ra, dec, radius):
    rng = np.random.default_rng(3)
    # points around the centre, out to twice the radius (and across RA 0 and the poles)
    dist = radius * 2 * np.sqrt(rng.uniform(0, 1, 20000))
    angle = rng.uniform(0, 2 * np.pi, 20000)
    lat = np.clip(dec + dist * np.cos(angle), -90, 90)
    lon = (ra + dist * np.sin(angle) / np.maximum(np.cos(np.radians(lat)), 1e-3)) % 360
    inside = _separation(ra, dec, lon, lat) <= radius
    assert inside.sum() > 100
    pix = sky.pixels(lon, lat)
    ranges = sky.cone_ranges(ra, dec, radius)
    covered = np.zeros(len(pix), bool)
    for lo, hi in ranges:
        covered |= (pix >= lo) & (pix < hi)
    assert covered[inside].all(), "a pointing inside the cone falls outside its pixel ranges"
    # a prefilter worth having: it leaves out much of the ring out to twice the radius
    # (not near a pole, where that ring is folded onto the cone)
    assert covered.sum() < 0.9 * len(pix) or radius > 5 or abs(dec) + 2 * radius > 89
    assert len(ranges) <= 60


def test_pixel_of_nothing_is_none():
    assert sky.pixel(None, 3.0) is None and sky.pixel(float("nan"), 0.0) is None
    assert 0 <= sky.pixel(359.999, -90.0) < 12 * 4**sky.ORDER


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog(request, tmp_path):
    url = f"sqlite:///{tmp_path / 'c.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    cat = Catalog(url)
    cat.upgrade()
    yield cat
    cat.dispose()


def _stored(name: str) -> StoredObject:
    return StoredObject("dms-archive", name, f"file:///{name}", "0" * 64, 10, "application/fits")


def _recomputed(session, oid: int) -> tuple:
    current = [Product.observation_id == oid, Product.is_current]
    return (
        session.scalar(select(func.max(Product.level)).where(*current, Product.suffix != "msa")),
        session.scalar(select(func.max(Product.level)).where(*current, func.upper(Product.product_type) == "SCIENCE",
                                                             Product.suffix != "asn")),
        session.scalar(select(func.max(Product.data_release)).where(*current)),
        session.scalar(select(func.count()).where(*current)),
    )


def _summary(session, oid: int) -> tuple:
    row = session.execute(select(*(getattr(Observation, c) for c in SUMMARY_COLUMNS)).where(Observation.id == oid)).one()
    return tuple(row)


def _same(a: tuple, b: tuple) -> bool:
    def norm(v):
        return v.replace(tzinfo=None) if isinstance(v, datetime) else v
    return [norm(v) for v in a] == [norm(v) for v in b]


@pytest.mark.integration
def test_the_catalog_keeps_each_observations_summary_and_pixels(catalog):
    plan = tiny_plan(exposures=2)
    now = datetime(2026, 1, 31, tzinfo=UTC)
    with catalog.session() as s:
        upsert_program(s, plan)
        exp = upsert_exposure(s, "01234", 1, "jw01234001001_01101_00001_nrca1", visit=1, visit_group=1, sequence=1,
                              activity="01", exposure=1, detector="NRCA1", exp_type="NRC_IMAGE", filter="F200W",
                              pupil="CLEAR", readpatt="RAPID", subarray="SUB64P", ngroups=3, nints=2,
                              ra=53.16, dec=-27.78)
        oid = exp.observation_id
        obs = s.get(Observation, oid)
        assert obs.target_hpx == sky.pixel(53.16, -27.78) and exp.hpx == sky.pixel(53.16, -27.78)
        assert _summary(s, oid) == (None, None, None, 0)  # planned: nothing archived yet

    def register(name, suffix, level, product_type="SCIENCE", revision=1, at=now):
        with catalog.session() as s:
            register_product(s, stored=_stored(f"{name}.{revision}"), filename=name, suffix=suffix, level=level,
                             revision=revision, program_id="01234", observation_id=oid, exposure_id=exp.id,
                             archived_at=at, eap_months=12, software_version="t", inputs=[],
                             product_type=product_type)

    register("a_msa.fits", "msa", 1, "AUXILIARY")
    with catalog.session() as s:
        assert _summary(s, oid)[0] is None and _summary(s, oid)[3] == 1  # an MSA file alone: still planned
    register("a_uncal.fits", "uncal", 1)
    register("a_rate.fits", "rate", 2)
    register("o001_asn.json", "asn", 3, "AUXILIARY")
    register("l3_i2d.fits", "i2d", 3, at=now + timedelta(days=5))
    with catalog.session() as s:
        assert _summary(s, oid) == (3, 3, datetime(2027, 2, 5, tzinfo=UTC), 5) or _same(
            _summary(s, oid), (3, 3, datetime(2027, 2, 5), 5))
        assert _same(_summary(s, oid), _recomputed(s, oid))
    register("l3_i2d.fits", "i2d", 3, revision=2, at=now + timedelta(days=9))  # a new revision: one current
    with catalog.session() as s:
        assert _summary(s, oid)[3] == 5 and _same(_summary(s, oid), _recomputed(s, oid))
        supersede_products(s, ["l3_i2d.fits"], now + timedelta(days=10))
    with catalog.session() as s:
        assert _summary(s, oid)[:2] == (3, 2)  # the ASN stays at level 3; the science tops out at 2
        assert _same(_summary(s, oid), _recomputed(s, oid))
        rate = s.scalar(select(Product).where(Product.filename == "a_rate.fits"))
        rate.data_release = datetime(2030, 1, 1, tzinfo=UTC)  # an ORM change anywhere (e.g. an access change)
    with catalog.session() as s:
        assert _same(_summary(s, oid), _recomputed(s, oid)) and _summary(s, oid)[2].year == 2030
        exp_row = s.get(Exposure, exp.id)
        exp_row.ra, exp_row.dec = 10.0, 20.0
    with catalog.session() as s:
        assert s.get(Exposure, exp.id).hpx == sky.pixel(10.0, 20.0)


@pytest.mark.integration
def test_two_workers_archiving_products_of_one_exposure_do_not_deadlock(pg_url):
    """Each transaction that archives a product holds key-share locks on its observation
    and exposure (the foreign keys) before it locks them to refresh their derived rows (the
    observation's summary, the exposure's CAOM row). Locked FOR UPDATE, two such
    transactions each waited for the other's key share: PostgreSQL's deadlock, a retried
    task, and (on a retried reprocessing step) a revision stored twice."""
    import threading

    catalog = Catalog(pg_url)
    catalog.upgrade()
    plan = tiny_plan(exposures=1)
    with catalog.session() as s:
        upsert_program(s, plan)
        exp = upsert_exposure(s, "01234", 1, "jw01234001001_01101_00001_nrca1", visit=1, visit_group=1, sequence=1,
                              activity="01", exposure=1, detector="NRCA1", exp_type="NRC_IMAGE", filter="F200W",
                              pupil="CLEAR", readpatt="RAPID", subarray="SUB64P", ngroups=3, nints=2,
                              ra=53.16, dec=-27.78)
        oid, eid = exp.observation_id, exp.id
    both_hold_key_shares = threading.Barrier(2, timeout=30)
    errors: list[BaseException] = []

    def archive(name: str) -> None:
        try:
            with catalog.session() as s:
                # what an earlier statement of the same transaction holds (a product row inserted)
                s.execute(select(Observation.id).where(Observation.id == oid).with_for_update(read=True, key_share=True))
                s.execute(select(Exposure.id).where(Exposure.id == eid).with_for_update(read=True, key_share=True))
                both_hold_key_shares.wait()
                register_product(s, stored=_stored(name), filename=name, suffix="rate", level=2, revision=1,
                                 program_id="01234", observation_id=oid, exposure_id=eid,
                                 archived_at=datetime(2026, 1, 31, tzinfo=UTC), eap_months=12, software_version="t",
                                 inputs=[], product_type="SCIENCE")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    workers = [threading.Thread(target=archive, args=(f"{n}_rate.fits",)) for n in ("a", "b")]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=60)
    assert errors == [], [f"{type(e).__name__}: {str(e).splitlines()[0]}" for e in errors]
    with catalog.session() as s:
        assert _summary(s, oid)[3] == 2 and _same(_summary(s, oid), _recomputed(s, oid))
    catalog.dispose()


@pytest.mark.integration
def test_the_migration_fills_the_summaries_of_rows_already_archived(pg_server_url):
    """Rows written before 0013 (bulk, bypassing the session) get their pixels and
    summaries when the schema is upgraded; refresh_observations recomputes them too."""
    from benchmarks.catalog_load import BASE_SCHEMA, load

    name = f"{pg_server_url.rsplit('/', 1)[1]}_mig"
    admin = pg_server_url.rsplit("/", 1)[0].replace("postgresql+psycopg", "postgresql") + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = pg_server_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        upgrade(url, BASE_SCHEMA)
        with psycopg.connect(url.replace("postgresql+psycopg", "postgresql")) as conn:
            loaded = load(conn, 3000, seed=5)
        assert 2500 < loaded.products < 4500 and loaded.observations >= 25
        upgrade(url)
        cat = Catalog(url)
        try:
            with cat.session() as s:
                for oid in s.scalars(select(Observation.id).order_by(Observation.id).limit(10)):
                    assert _same(_summary(s, oid), _recomputed(s, oid))
                    assert _summary(s, oid)[0] == 3 and _summary(s, oid)[3] > 20
                ra, dec, hpx = s.execute(select(Exposure.ra, Exposure.dec, Exposure.hpx).limit(1)).one()
                assert hpx == sky.pixel(ra, dec)
                assert s.scalar(select(func.count()).where(Exposure.hpx.is_(None))) == 0
                s.execute(update(Observation).values(current_products=0, mrp_level=None))
                refresh_observations(s.connection())
                oid = s.scalar(select(Observation.id).limit(1))
                assert _same(_summary(s, oid), _recomputed(s, oid))
        finally:
            cat.dispose()
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_coarse_order_keeps_cones_to_a_few_tens_of_pixels():
    for radius in (0.001, 0.05, 0.2, 1.0, 5.0, 30.0, 90.0):
        n = len(sky.cone_ranges(40.0, -30.0, radius))
        assert 1 <= n <= 60, (radius, n)
    assert sky.cone_ranges(0.0, 0.0, 180.0) == [(0, 12 * 4**sky.ORDER)]
    assert math.isclose(sky.ORDER, 12)


def test_cones_decided_in_sql_agree_with_the_angular_separation(catalog):
    """sky.in_cone (pixel ranges, then the haversine test in SQL) selects exactly the
    pointings that sky.separation puts in the cone, across RA 0, near a pole and in a
    small cone, on SQLite and PostgreSQL."""
    from sqlalchemy import BigInteger, Column, Float, Integer, MetaData, Table, insert

    rng = np.random.default_rng(12)
    table = Table("cone_points", MetaData(), Column("id", Integer, primary_key=True), Column("ra", Float),
                  Column("dec", Float), Column("hpx", BigInteger))
    cones = [(0.2, 10.0, 1.0), (120.0, 89.5, 0.8), (53.16, -27.79, 0.05)]
    rows, n = [], 0
    for ra, dec, radius in cones:
        dist = radius * 1.5 * np.sqrt(rng.uniform(0, 1, 3000))
        angle = rng.uniform(0, 2 * np.pi, 3000)
        lat = np.clip(dec + dist * np.cos(angle), -90, 90)
        lon = (ra + dist * np.sin(angle) / np.maximum(np.cos(np.radians(lat)), 1e-3)) % 360
        for r, d, p in zip(lon.tolist(), lat.tolist(), sky.pixels(lon, lat).tolist(), strict=True):
            n += 1
            rows.append({"id": n, "ra": r, "dec": d, "hpx": p})
    table.create(catalog.engine)
    try:
        with catalog.engine.begin() as conn:
            conn.execute(insert(table), rows)
            for ra, dec, radius in cones:
                found = set(conn.scalars(select(table.c.id).where(
                    sky.in_cone(table.c.hpx, table.c.ra, table.c.dec, ra, dec, radius))))
                seps = {r["id"]: sky.separation(ra, dec, r["ra"], r["dec"]) for r in rows}
                inside = {i for i, s in seps.items() if s <= radius - 1e-9}
                outside = {i for i, s in seps.items() if s > radius + 1e-9}
                assert len(inside) > 500, (ra, dec)
                assert inside <= found and not (found & outside), (ra, dec, radius)
                # the page's distances, all at once, are the same angles
                assert np.allclose(sky.separations(ra, dec, [r["ra"] for r in rows], [r["dec"] for r in rows]),
                                   list(seps.values()), rtol=0, atol=1e-9)
    finally:
        table.drop(catalog.engine)


def test_an_sqlite_without_math_functions_gets_them():
    """Cones test separations in SQL; an SQLite built without its math functions has them
    registered on each connection (shared.catalog.db)."""
    import sqlite3

    from shared.catalog.db import _sqlite_pragmas

    class NoMathCursor(sqlite3.Cursor):
        def execute(self, sql, *args):
            if "sin(" in sql and not self.connection.registered:
                raise sqlite3.OperationalError("no such function: sin")
            return super().execute(sql, *args)

    class NoMath(sqlite3.Connection):
        registered: set[str]

        def cursor(self, factory=NoMathCursor):
            return super().cursor(factory)

        def create_function(self, name, narg, func, *, deterministic=False):
            self.registered.add(name)
            return super().create_function(name, narg, func, deterministic=deterministic)

    conn = sqlite3.connect(":memory:", factory=NoMath)
    conn.registered = set()
    _sqlite_pragmas(conn, None)
    assert conn.registered == {"sin", "cos", "radians"}
    value = conn.cursor().execute("SELECT sin(radians(30.0)), cos(NULL)").fetchone()
    assert math.isclose(value[0], 0.5) and value[1] is None
    conn.close()


def test_a_page_and_its_total_count_only_when_the_page_cannot_tell(catalog):
    """counted_page: a page short of pagesize tells the total itself (no count statement);
    a full page, or an empty page after the first, counts."""
    from sqlalchemy import Column, Integer, MetaData, Table, event, insert
    from sqlalchemy.orm import Session

    from services.archive.search import counted_page

    table = Table("paged_rows", MetaData(), Column("id", Integer, primary_key=True))
    table.create(catalog.engine)
    statements: list[str] = []

    def seen(conn, cursor, statement, *rest):
        statements.append(statement)

    event.listen(catalog.engine, "before_cursor_execute", seen)
    try:
        with catalog.engine.begin() as conn:
            conn.execute(insert(table), [{"id": i} for i in range(1, 8)])  # 7 rows
        query, count = select(table.c.id).order_by(table.c.id), select(func.count()).select_from(table)
        with Session(catalog.engine) as session:
            for page, pagesize, total, ids, counted in [
                (1, 10, 7, list(range(1, 8)), False), (1, 7, 7, list(range(1, 8)), True),
                (1, 3, 7, [1, 2, 3], True), (3, 3, 7, [7], False), (4, 3, 7, [], True), (2, 7, 7, [], True),
            ]:
                statements.clear()
                got_total, rows = counted_page(session, query, count, page, pagesize)
                assert (got_total, [r.id for r in rows]) == (total, ids), (page, pagesize)
                assert any("count(" in x.lower() for x in statements) == counted, (page, pagesize, statements)
    finally:
        event.remove(catalog.engine, "before_cursor_execute", seen)
        table.drop(catalog.engine)
