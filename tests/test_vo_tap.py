"""TAP over ivoa.obscore, as pyvo speaks it, against the live archive of tests/vo_archive.py.

pyvo's TAPService, unchanged: ADQL cone searches (CONTAINS/POINT/CIRCLE on pg_sphere)
compared with the catalog's CAOM rows, TOP and MAXREC (OVERFLOW), asynchronous jobs (UWS),
TAP_SCHEMA and the VOSI resources (tables, capabilities, availability); the refusals a bad
query gets (DALQueryError from a 400 VOTable error document), tables that are not published,
more than one statement, a query that runs too long, and a SQLite catalog. The plan of a cone
search shows the GiST position index.
"""

from __future__ import annotations

import math
import re
import time

import httpx
import pytest
import pyvo
from fastapi.testclient import TestClient
from pyvo.dal import DALQueryError
from sqlalchemy import create_engine, select, text

from services.archive.app import create_app
from services.archive.vo import tap as tap_module
from services.archive.vo.tap import TapError, TapQuery, TapUnavailable, execute, parse_request
from shared.catalog import CaomObservation
from shared.catalog.obscore import COLUMNS, POSITION_INDEX
from shared.config import Settings
from tests.system import Server, free_port
from tests.vo_archive import PI, STRANGER

CONE = ("SELECT obs_id, s_ra, s_dec, access_url, proposal_id FROM ivoa.obscore "
        "WHERE CONTAINS(POINT('ICRS', s_ra, s_dec), CIRCLE('ICRS', {ra}, {dec}, {r})) = 1")


def _service(vo_archive, user: str | None = None) -> pyvo.dal.TAPService:
    return pyvo.dal.TAPService(vo_archive.url + "/vo/tap", session=vo_archive.session(user))


def _separation(ra1: float, dec1: float, ra2: float, dec2: float) -> float:
    """Great-circle distance in degrees (haversine)."""
    ra1, dec1, ra2, dec2 = map(math.radians, (ra1, dec1, ra2, dec2))
    h = math.sin((dec2 - dec1) / 2) ** 2 + math.cos(dec1) * math.cos(dec2) * math.sin((ra2 - ra1) / 2) ** 2
    return math.degrees(2 * math.asin(math.sqrt(h)))


def _positions(vo_archive) -> dict[str, tuple[float, float]]:
    with vo_archive.run.ctx.catalog.session() as s:
        rows = s.execute(select(CaomObservation.obs_id, CaomObservation.s_ra, CaomObservation.s_dec)
                         .where(CaomObservation.s_ra.is_not(None))).all()
    return {r.obs_id: (r.s_ra, r.s_dec) for r in rows}


def test_a_cone_returns_exactly_the_rows_whose_centre_is_inside(vo_archive):
    positions = _positions(vo_archive)
    assert len(positions) >= 2
    ra, dec = next(iter(positions.values()))
    distances = sorted({_separation(ra, dec, *p) for p in positions.values()})
    # a radius between two distances when the rows are not all at one place, so the circle leaves some out
    r = (distances[0] + distances[1]) / 2 if len(distances) > 1 else 0.01
    expected = {o for o, p in positions.items() if _separation(ra, dec, *p) < r}
    result = _service(vo_archive).search(CONE.format(ra=ra, dec=dec, r=r))
    assert {str(o) for o in result["obs_id"]} == expected
    assert len(result) == len(expected)
    # the same with a radius holding every row, and a circle far away holding none
    wide = _service(vo_archive).search(CONE.format(ra=ra, dec=dec, r=distances[-1] + 0.01))
    assert {str(o) for o in wide["obs_id"]} == set(positions)
    far = _service(vo_archive).search(CONE.format(ra=(ra + 180) % 360, dec=-dec, r=1))
    assert len(far) == 0


def test_rows_carry_obscore_metadata_and_absolute_access_urls(vo_archive):
    result = _service(vo_archive).search("SELECT TOP 3 * FROM ivoa.obscore")
    assert len(result) == 3
    table = result.to_table()
    assert table.colnames == [c.name for c in COLUMNS]
    assert str(table["s_ra"].unit) == "deg"
    assert result.fieldname_with_ucd("pos.eq.ra") == "s_ra"
    for url in result["access_url"]:
        assert url.startswith(f"{vo_archive.url}/vo/datalink?ID=ivo://jwst-dms/jwst?")
    # metadata are public: an anonymous caller sees the rows of a program under exclusive access
    with vo_archive.run.ctx.catalog.session() as s:
        programs = set(s.scalars(select(CaomObservation.program_id).distinct()))
    anonymous = _service(vo_archive).search("SELECT DISTINCT proposal_id FROM ivoa.obscore")
    assert {str(p) for p in anonymous["proposal_id"]} == programs


def test_computed_columns_and_distance(vo_archive):
    ra, dec = next(iter(_positions(vo_archive).values()))
    result = _service(vo_archive).search(
        f"SELECT obs_id, DISTANCE(POINT('ICRS', s_ra, s_dec), POINT('ICRS', {ra}, {dec})) AS d, "
        "calib_level * 2 AS twice FROM ivoa.obscore ORDER BY d")
    assert len(result) >= 2
    assert result["d"][0] == pytest.approx(0.0, abs=1e-9)
    assert list(result["d"]) == sorted(result["d"])
    assert {int(v) for v in result["twice"]} <= {2, 4, 6}
    # a column shown under its own name keeps its ObsCore metadata; a computed one has only a type
    fields = {f.name: f for f in result.fielddescs}
    assert fields["d"].unit is None and fields["d"].datatype == "double"
    counted = _service(vo_archive).search("SELECT COUNT(s_ra) AS n, MAX(calib_level) AS highest, s_ra, "
                                          "COUNT(s_dec) AS s_dec FROM ivoa.obscore GROUP BY s_ra")
    fields = {f.name: f for f in counted.fielddescs}
    assert fields["n"].datatype == "long" and fields["n"].unit is None and fields["n"].ucd is None
    assert fields["highest"].ucd is None
    assert str(fields["s_ra"].unit) == "deg" and fields["s_ra"].ucd == "pos.eq.ra"
    # a count named like a position is no position: its type differs
    assert fields["s_dec"].datatype == "long" and fields["s_dec"].unit is None


def test_top_and_maxrec(vo_archive):
    service = _service(vo_archive)
    total = service.search("SELECT COUNT(*) AS n FROM ivoa.obscore")["n"][0]
    assert total >= 3
    assert len(service.search("SELECT TOP 2 obs_id FROM ivoa.obscore")) == 2
    capped = service.search("SELECT obs_id FROM ivoa.obscore", maxrec=2)
    assert len(capped) == 2
    assert capped.query_status == "OVERFLOW"
    whole = service.search("SELECT obs_id FROM ivoa.obscore", maxrec=total)
    assert len(whole) == total and whole.query_status == "OK"


def test_tap_schema_describes_obscore_from_the_column_list(vo_archive):
    result = _service(vo_archive).search(
        "SELECT column_name, unit, ucd FROM tap_schema.columns WHERE table_name = 'ivoa.obscore' "
        "ORDER BY column_index")
    assert [str(c) for c in result["column_name"]] == [c.name for c in COLUMNS]
    tables = _service(vo_archive).search("SELECT table_name FROM tap_schema.tables")
    assert {str(t) for t in tables["table_name"]} == {
        "ivoa.obscore", "tap_schema.schemas", "tap_schema.tables", "tap_schema.columns", "tap_schema.keys",
        "tap_schema.key_columns"}


def test_async_jobs(vo_archive):
    service = _service(vo_archive, PI)
    result = service.run_async("SELECT TOP 2 obs_id, access_url FROM ivoa.obscore")
    assert len(result) == 2
    assert result["access_url"][0].startswith(vo_archive.url)
    job = service.submit_job("SELECT obs_id FROM ivoa.obscore", maxrec=1)
    assert job.phase == "PENDING"
    job.run().wait()
    assert job.phase == "COMPLETED"
    assert job.result_uri.startswith(f"{vo_archive.url}/vo/tap/async/{job.job_id}/")
    assert len(job.fetch_result()) == 1
    # a job belongs to the token's owner
    assert httpx.get(job.url, headers={"Authorization": f"Bearer {vo_archive.tokens[STRANGER]}"}).status_code == 404
    job.delete()
    # an async query TAP refuses ends in ERROR with the reason
    with pytest.raises(DALQueryError, match="not a table of this service"):
        service.run_async("SELECT * FROM public.program")


def test_async_jobs_are_the_archive_s_not_one_process_s(vo_archive):
    """Two API processes on one catalog, as uvicorn's workers or the deployment's replicas: a
    job made through one is run, read and deleted through the other, and outlives the process
    that made it."""
    pi, stranger = vo_archive.session(PI), vo_archive.session(STRANGER)
    here = vo_archive.url + "/vo/tap/async"
    with Server(create_app(vo_archive.settings), free_port()) as other:
        there = other.url + "/vo/tap/async"
        made = pi.post(here, data={"QUERY": "SELECT TOP 1 obs_id FROM ivoa.obscore"}, allow_redirects=False)
        assert made.status_code == 303
        job_id = made.headers["location"].rsplit("/", 1)[1]
        job = pyvo.dal.AsyncTAPJob(f"{there}/{job_id}", session=pi)  # pyvo, through the other process
        assert job.phase == "PENDING"
        job.run().wait()
        assert pi.get(f"{here}/{job_id}/phase").text == "COMPLETED"
        assert len(pyvo.dal.AsyncTAPJob(f"{here}/{job_id}", session=pi).fetch_result()) == 1
        assert job_id in pi.get(there).text and job_id not in stranger.get(there).text
        for url in (here, there):
            assert stranger.get(f"{url}/{job_id}").status_code == 404
        assert pi.delete(f"{there}/{job_id}", allow_redirects=False).status_code == 303
        assert pi.get(f"{here}/{job_id}").status_code == 404
        # a job made through a process that then stops
        kept = pi.post(there, data={"QUERY": "SELECT TOP 1 obs_id FROM ivoa.obscore", "PHASE": "RUN"},
                       allow_redirects=False).headers["location"].rsplit("/", 1)[1]
    assert pi.get(f"{here}/{kept}/phase").text == "COMPLETED"
    assert pi.get(f"{here}/{kept}/results/result").text.count("<TR>") == 1
    pi.delete(f"{here}/{kept}")


@pytest.mark.filterwarnings("ignore:The .*availab.* function is deprecated")
def test_vosi(vo_archive):
    service = _service(vo_archive)
    assert service.available
    r = httpx.get(vo_archive.url + "/vo/tap/availability")
    assert r.status_code == 200 and "<vosi:available>true</vosi:available>" in r.text
    tables = service.tables
    assert set(tables.keys()) >= {"ivoa.obscore", "tap_schema.columns"}
    assert [c.name for c in tables["ivoa.obscore"].columns] == [c.name for c in COLUMNS]
    s_ra = next(c for c in tables["ivoa.obscore"].columns if c.name == "s_ra")
    assert s_ra.unit == "deg" and s_ra.ucd == "pos.eq.ra"
    capability = service.get_tap_capability()
    assert [lang.name for lang in capability.languages] == ["ADQL"]
    assert any(f.mime == "application/x-votable+xml" for f in capability.outputformats)
    urls = [i.accessurls[0].content for c in service.capabilities for i in c.interfaces]
    assert f"{vo_archive.url}/vo/tap" in urls and all(u.startswith(vo_archive.url) for u in urls)
    assert service.hardlimit == service.maxrec > 0
    # xsi:type values name prefixes the documents declare
    for path, prefixes in (("capabilities", ("vs", "tr")), ("tables", ("vs",))):
        document = httpx.get(f"{vo_archive.url}/vo/tap/{path}").text
        assert all(f"xmlns:{p}=" in document for p in prefixes), document[:400]


@pytest.mark.parametrize(("params", "message"), [
    ({"QUERY": "SELEC obs_id FROM ivoa.obscore"}, "ADQL syntax error"),
    ({"QUERY": "SELECT * FROM api_token"}, "api_token is not a table of this service"),
    ({"QUERY": "SELECT * FROM public.program"}, "public.program is not a table of this service"),
    ({"QUERY": "SELECT obs_id FROM ivoa.obscore UNION SELECT token_hash FROM public.api_token"},
     "public.api_token is not a table"),
    ({"QUERY": "SELECT nosuchcolumn FROM ivoa.obscore"}, "nosuchcolumn"),
    ({"QUERY": "SELECT obs_id FROM ivoa.obscore; DELETE FROM ivoa.obscore"}, "more than one statement"),
    ({"QUERY": "SELECT pg_sleep(30) FROM ivoa.obscore"}, "only ADQL functions"),
    ({"QUERY": "SELECT obs_id FROM ivoa.obscore WHERE "
               "CONTAINS(POINT('ICRS', s_ra, s_dec), CIRCLE('ICRS', 10, 20, -1)) = 1"}, "radius must be"),
    ({"QUERY": "SELECT * FROM ivoa.obscore", "LANG": "SQL"}, "speaks ADQL"),
    ({"QUERY": "SELECT * FROM ivoa.obscore", "RESPONSEFORMAT": "csv"}, "results are VOTables"),
    ({"QUERY": "SELECT * FROM ivoa.obscore", "MAXREC": "many"}, "MAXREC"),
    ({"LANG": "ADQL"}, "QUERY is missing"),
])
def test_bad_queries_are_400_with_a_votable_error(vo_archive, params, message):
    for method in ("GET", "POST"):
        # parameter names are case-insensitive
        sent = {k.lower(): v for k, v in params.items()} if method == "POST" else params
        r = httpx.request(method, vo_archive.url + "/vo/tap/sync", **({"params": sent} if method == "GET"
                                                                      else {"data": sent}))
        assert r.status_code == 400, r.text
        assert r.headers["content-type"].startswith("application/x-votable+xml")
        assert 'name="QUERY_STATUS" value="ERROR"' in r.text and message in r.text


def test_pyvo_raises_the_refusal(vo_archive):
    service = _service(vo_archive)
    with pytest.raises(DALQueryError, match="ADQL syntax error"):
        service.search("SELECT FROM WHERE")
    with pytest.raises(DALQueryError, match="api_token is not a table"):
        service.search("SELECT * FROM api_token")
    with pytest.raises(DALQueryError, match="speaks ADQL"):
        service.search("SELECT 1", language="PostgreSQL")


def test_the_cone_search_uses_the_position_index(vo_archive):
    ra, dec = next(iter(_positions(vo_archive).values()))
    sql = tap_module.translate(CONE.format(ra=ra, dec=dec, r=0.1)).sql
    with vo_archive.run.ctx.catalog.engine.connect() as conn:
        conn.execute(text("SET LOCAL enable_seqscan = off"))  # a table this small is otherwise read whole
        plan = "\n".join(conn.execute(text(f"EXPLAIN {sql}")).scalars())
    assert POSITION_INDEX in plan, plan


def test_a_query_running_too_long_is_cancelled(vo_archive):
    cross = "SELECT COUNT(*) AS n FROM " + ", ".join(f"ivoa.obscore AS t{i}" for i in range(7))
    with pytest.raises(TapError, match="ran longer than"):
        execute(vo_archive.run.ctx.catalog.engine, TapQuery(cross, 10), timeout_seconds=0.001,
                base_url=vo_archive.url)


def test_parameters():
    assert parse_request([("query", "SELECT 1"), ("maxrec", "99999999")], 100) == TapQuery("SELECT 1", 100)
    assert parse_request([("Query", "SELECT 1"), ("REQUEST", "doQuery"), ("lang", "adql")], 5).maxrec == 5
    with pytest.raises(TapError, match="REQUEST"):
        parse_request([("QUERY", "SELECT 1"), ("REQUEST", "getCapabilities")], 5)


def test_sqlite_catalogs_have_no_tap(tmp_path):
    engine = create_engine("sqlite://")
    with pytest.raises(TapUnavailable, match="PostgreSQL"):
        execute(engine, TapQuery("SELECT * FROM ivoa.obscore", 10), timeout_seconds=1, base_url="http://x")
    settings = Settings(var_dir=tmp_path / "var", catalog_url=f"sqlite:///{tmp_path}/catalog.db", _env_file=None)
    with TestClient(create_app(settings)) as client:
        r = client.get("/vo/tap/sync", params={"QUERY": "SELECT * FROM ivoa.obscore"})
        assert r.status_code == 503 and "TAP needs a PostgreSQL catalog" in r.text
        assert 'name="QUERY_STATUS" value="ERROR"' in r.text
        assert "<vosi:available>false</vosi:available>" in client.get("/vo/tap/availability").text


def test_a_query_may_span_lines_and_name_tables_in_any_case(vo_archive):
    query = "SELECT TOP 2 obs_id,\n\ts_ra\r\nFROM IVOA.ObsCore\nWHERE obs_id LIKE 'jw%'\nORDER BY s_ra DESC"
    r = httpx.get(vo_archive.url + "/vo/tap/sync", params={"query": query, "lang": "ADQL"})
    assert r.status_code == 200, r.text
    assert 'value="OK"' in r.text and r.text.count("<TR>") == 2
    nul = httpx.get(vo_archive.url + "/vo/tap/sync", params={"QUERY": "SELECT obs_id\x00 FROM ivoa.obscore"})
    assert nul.status_code == 400


def test_queries_differing_in_their_numbers_share_one_translation():
    # the second query of a shape costs a substitution, and gives what translating it would
    def numbers_as_floats(sql: str) -> str:
        return re.sub(r"(?<![\w.])\d+\.?\d*(?![\w.])", lambda m: repr(float(m.group(0))), sql)

    shape = ("SELECT TOP {top} obs_id, DISTANCE(POINT('ICRS', s_ra, s_dec), POINT('ICRS', {ra}, {dec})) AS d "
             "FROM ivoa.obscore WHERE CONTAINS(POINT('ICRS', s_ra, s_dec), CIRCLE('ICRS', {ra}, {dec}, {r})) = 1 "
             "AND calib_level >= {level} AND target_name = 'NGC 1 2' ORDER BY d")
    tap_module._translate_cached.cache_clear()
    for values in ({"top": 5, "ra": 10.5, "dec": -20.25, "r": 0.1, "level": 2},
                   {"top": 50, "ra": 200, "dec": 3, "r": 1, "level": 3},
                   {"top": 1, "ra": 0.125, "dec": -89.5, "r": 0.001, "level": 1}):
        adql = shape.format(**values)
        assert numbers_as_floats(tap_module.translate(adql).sql) == numbers_as_floats(tap_module._translate(adql).sql)
    assert tap_module._translate_cached.cache_info().misses == 1
    # a number inside a string is the string's, not a literal
    assert "'NGC 1 2'" in tap_module.translate(shape.format(top=2, ra=1, dec=1, r=1, level=1)).sql


def test_health_reports_the_adql_translator_ready_once_warmed(vo_archive):
    """Each API process warms its ADQL translator in the background at its start and /health
    says when it is done (what a readiness probe or a benchmark waits for)."""
    deadline = time.monotonic() + 60
    while (state := httpx.get(vo_archive.url + "/health", timeout=10).json()["tap"]) != "ready":
        assert state == "warming" and time.monotonic() < deadline, state
        time.sleep(0.2)
