"""SIA 2.0 (/vo/sia2) and Simple Cone Search (/vo/scs) of the archive.

* pyvo, unchanged, against the live archive of tests/vo_archive.py (the small imaging
  program through every service, PostgreSQL catalog, uvicorn): ``SIA2Service`` finds the
  query endpoint in the VOSI capabilities; a cone returns exactly the catalog rows whose
  centre lies in it; band, time, calibration level, instrument and target filters; MAXREC
  overflow; bad parameters are DALQueryErrors (HTTP 400 with a VOTable naming the
  parameter); ``SCSService`` returns the same rows; the program is under exclusive access
  and an anonymous caller still sees its rows (metadata are public).
* The same routes over a SQLite catalog holding a few hand-made rows (FastAPI test client).
* Parameter parsing, without a server.
"""

from __future__ import annotations

import io
import math
import warnings
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import pyvo
import requests
from astropy.coordinates import SkyCoord
from astropy.io.votable import parse_single_table
from astropy.time import Time
from fastapi.testclient import TestClient
from pyvo.dal import DALOverflowWarning, DALQueryError
from sqlalchemy import select

from services.archive.app import create_app
from services.archive.vo.scs import parse_scs
from services.archive.vo.sia import (
    Circle,
    ParameterError,
    Polygon,
    RaDecRange,
    grouped,
    parse_interval,
    parse_maxrec,
    parse_pos,
    parse_sia,
)
from shared.catalog import CaomObservation, Catalog, Program, sky
from shared.catalog.obscore import publisher_did
from shared.config import Settings
from shared.footprints import parse_region, region_contains
from tests.vo_archive import PI

# ------------------------------------------------------------------ parsing


def test_pos_circle_range_and_polygon_are_parsed():
    assert parse_pos("CIRCLE 10 20 0.5") == Circle(10.0, 20.0, 0.5)
    assert parse_pos("circle  10 -20 1e-3") == Circle(10.0, -20.0, 0.001)
    assert parse_pos("RANGE 0 360 -2 2") == RaDecRange(0.0, 360.0, -2.0, 2.0)
    assert parse_pos("RANGE -Inf +Inf 10 +Inf") == RaDecRange(None, None, 10.0, None)
    polygon = parse_pos("POLYGON 10 0 11 0 11 1 10 1")
    assert isinstance(polygon, Polygon) and len(polygon.vertices) == 4
    assert polygon.contains(10.5, 0.5) and not polygon.contains(11.5, 0.5) and not polygon.contains(190.5, -0.5)


@pytest.mark.parametrize("text, says", [
    ("", "empty"),
    ("BOX 1 2 3 4", "not CIRCLE, RANGE or POLYGON"),
    ("CIRCLE 1 2", "3 numbers"),
    ("CIRCLE a 2 3", "not a number"),
    ("CIRCLE 1 2 NaN", "not a finite number"),
    ("CIRCLE 1 95 1", "outside -90..90"),
    ("CIRCLE 400 0 1", "outside 0..360"),
    ("CIRCLE 1 2 -1", "outside 0..180"),
    ("RANGE 0 10 5 1", "empty"),
    ("RANGE +Inf 10 0 1", "lower bound"),
    ("POLYGON 1 2 3 4", "at least 3 vertices"),
    ("POLYGON 0 0 120 0 240 0", "cancel out|hemisphere"),
    ("POLYGON 0 0 90 0 180 0 270 0 45 -10", "hemisphere"),
])
def test_bad_pos_names_the_parameter(text, says):
    with pytest.raises(ParameterError, match=says) as caught:
        parse_pos(text)
    assert str(caught.value).startswith("POS: ")


def test_polygon_edges_are_great_circles():
    # an edge from (0, 60) to (90, 60) bulges north of dec 60 along its great circle
    polygon = parse_pos("POLYGON 0 60 90 60 45 40")
    assert polygon.contains(45.0, 61.0)
    assert not polygon.contains(45.0, 72.0)


def test_intervals_maxrec_and_the_rest():
    assert parse_interval("1e-6 2e-6", "BAND") == (1e-6, 2e-6)
    assert parse_interval("-Inf 2e-6", "BAND") == (None, 2e-6)
    assert parse_interval("60000 +Inf", "TIME") == (60000.0, None)
    assert parse_interval("3e-6", "BAND") == (3e-6, 3e-6)
    for bad in ("2 1", "a b", "1 2 3", "", "+Inf +Inf", "nan 1"):
        with pytest.raises(ParameterError, match="^BAND: "):
            parse_interval(bad, "BAND")
    assert parse_maxrec([]) == 1000 and parse_maxrec(["0"]) == 0 and parse_maxrec(["10", "5"]) == 5
    assert parse_maxrec(["10000000"]) == 10000
    with pytest.raises(ParameterError, match="^MAXREC: "):
        parse_maxrec(["-1"])
    q = parse_sia(grouped([("pos", "CIRCLE 1 2 3"), ("Pos", "RANGE 0 1 0 1"), ("calib", "3"), ("CALIB", "2"),
                           ("instrument", "NIRCAM"), ("unknown", "ignored")]))
    assert len(q.pos) == 2 and q.calib == (3, 2) and q.text == {"INSTRUMENT": ("NIRCAM",)}
    assert q.dptype == ("image", "cube")
    for params, name in (([("CALIB", "5")], "CALIB"), ([("DPTYPE", "spectrum")], "DPTYPE"), ([("POL", "Z")], "POL"),
                         ([("RESPONSEFORMAT", "csv")], "RESPONSEFORMAT"), ([("EXPTIME", "x")], "EXPTIME"),
                         ([("ID", " ")], "ID")):
        with pytest.raises(ParameterError, match=f"^{name}: "):
            parse_sia(grouped(params))


def test_cone_search_parameters():
    q = parse_scs(grouped([("ra", "10"), ("DEC", "-5"), ("sr", "0.1"), ("verb", "3")]))
    assert (q.ra, q.dec, q.sr, q.verb, q.maxrec) == (10.0, -5.0, 0.1, 3, 1000)
    for params, name in (([("DEC", "1"), ("SR", "1")], "RA"), ([("RA", "1"), ("DEC", "1")], "SR"),
                         ([("RA", "1"), ("DEC", "91"), ("SR", "1")], "DEC"),
                         ([("RA", "1"), ("DEC", "1"), ("SR", "11")], "SR"),
                         ([("RA", "1"), ("DEC", "1"), ("SR", "-1")], "SR"),
                         ([("RA", "x"), ("DEC", "1"), ("SR", "1")], "RA"),
                         ([("RA", "1"), ("DEC", "1"), ("SR", "1"), ("VERB", "4")], "VERB")):
        with pytest.raises(ParameterError, match=f"^{name}: "):
            parse_scs(grouped(params))


# ------------------------------------------------------------------ SQLite, hand-made rows

NOW = datetime(2026, 1, 1, tzinfo=UTC)
# obs_id: (ra, dec, dataproduct_type, calib_level, instrument_name, em nm, target)
_ROWS = {
    "jw09999-o001_t001_nircam_clear-f200w": (150.0, 2.0, "image", 3, "NIRCAM/IMAGE", (1755.0, 2226.0), "GALAXY"),
    "jw09999001001_02101_00001_nrca1": (150.01, 2.0, "image", 2, "NIRCAM/IMAGE", (1755.0, 2226.0), "GALAXY"),
    "jw09999002001_02101_00001_mirimage": (150.3, 2.0, "image", 2, "MIRI/IMAGE", (6500.0, 8500.0), "GALAXY"),
    "jw09999003001_02101_00001_nrs1": (150.0, 2.001, "spectrum", 2, "NIRSPEC/SLIT", (970.0, 1890.0), "GALAXY"),
    "jw09999004001_02101_00001_nrca1": (350.0, -30.0, "image", 2, "NIRCAM/IMAGE", (1755.0, 2226.0), "FAR AWAY"),
}


@pytest.fixture(scope="module")
def sqlite_api(tmp_path_factory):
    settings = Settings(var_dir=tmp_path_factory.mktemp("sia") / "var", catalog_url=None, _env_file=None)
    catalog = Catalog(settings.resolved_catalog_url)
    catalog.upgrade()
    with catalog.session() as s:
        s.add(Program(id="09999", title="Hand-made rows", pi_name="Ada", created_at=NOW))
        s.flush()
        for n, (obs_id, (ra, dec, kind, level, instrument, (lo, hi), target)) in enumerate(_ROWS.items()):
            s.add(CaomObservation(
                obs_id=obs_id, kind="level3" if level == 3 else "exposure", program_id="09999", calib_level=level,
                instrument_name=instrument, filters="F200W", target_name=target, dataproduct_type=kind,
                s_ra=ra, s_dec=dec, hpx=sky.pixel(ra, dec), t_min=NOW + timedelta(days=n),
                t_max=NOW + timedelta(days=n, hours=1), t_exptime=100.0 * (n + 1), em_min=lo, em_max=hi,
                t_obs_release=NOW + timedelta(days=365), n_products=1, updated_at=NOW))
    with TestClient(create_app(settings)) as client:
        yield client
    catalog.dispose()


def _table(answer):
    return parse_single_table(io.BytesIO(answer.content)).to_table()


def _obs_ids(answer) -> list[str]:
    assert answer.status_code == 200, answer.text
    return sorted(str(v) for v in _table(answer)["obs_id"])


def test_sqlite_sia2_queries(sqlite_api):
    client = sqlite_api
    sia = "/vo/sia2/query"
    # images only by default: the NIRSpec spectrum at the centre is not an image
    assert _obs_ids(client.get(sia, params={"POS": "CIRCLE 150 2 0.05"})) == [
        "jw09999-o001_t001_nircam_clear-f200w", "jw09999001001_02101_00001_nrca1"]
    assert _obs_ids(client.get(sia, params={"pos": "CIRCLE 150 2 0.5"})) == sorted(
        k for k, v in _ROWS.items() if v[2] == "image" and v[0] < 200)
    assert _obs_ids(client.get(sia, params={"POS": "RANGE 149.9 150.005 -Inf +Inf"})) == [
        "jw09999-o001_t001_nircam_clear-f200w"]
    assert _obs_ids(client.get(sia, params={"POS": "RANGE 340 10 -90 0"})) == ["jw09999004001_02101_00001_nrca1"]
    assert _obs_ids(client.get(sia, params={"POS": "POLYGON 150.2 1.9 150.4 1.9 150.4 2.1 150.2 2.1"})) == [
        "jw09999002001_02101_00001_mirimage"]
    # two POS values are OR-ed; POS and CALIB AND-ed
    assert _obs_ids(client.get(sia, params=[("POS", "CIRCLE 350 -30 0.1"), ("POS", "CIRCLE 150.3 2 0.01"),
                                            ("CALIB", "2")])) == [
        "jw09999002001_02101_00001_mirimage", "jw09999004001_02101_00001_nrca1"]
    # BAND in metres: 7 microns is MIRI's
    assert _obs_ids(client.get(sia, params={"BAND": "7e-6 7.1e-6"})) == ["jw09999002001_02101_00001_mirimage"]
    assert _obs_ids(client.get(sia, params={"BAND": "-Inf 1e-6"})) == []
    assert _obs_ids(client.get(sia, params={"DPTYPE": "cube"})) == []
    assert _obs_ids(client.get(sia, params={"INSTRUMENT": "miri"})) == ["jw09999002001_02101_00001_mirimage"]
    assert _obs_ids(client.get(sia, params={"EXPTIME": "250 350"})) == ["jw09999002001_02101_00001_mirimage"]
    # TIME in MJD: 2026-01-01 is MJD 61041
    assert _obs_ids(client.get(sia, params={"TIME": "61041.5 +Inf", "TARGET": "far away"})) == [
        "jw09999004001_02101_00001_nrca1"]
    assert _obs_ids(client.get(sia, params={"ID": publisher_did("jw09999001001_02101_00001_nrca1")})) == [
        "jw09999001001_02101_00001_nrca1"]
    # POST, form-encoded
    assert _obs_ids(client.post(sia, data={"POS": "CIRCLE 350 -30 0.1"})) == ["jw09999004001_02101_00001_nrca1"]
    # the access URL is absolute, the DataLink document of the row
    table = _table(client.get(sia, params={"ID": publisher_did("jw09999001001_02101_00001_nrca1")}))
    assert str(table["access_url"][0]) == ("http://testserver/vo/datalink?ID="
                                           + publisher_did("jw09999001001_02101_00001_nrca1"))
    assert math.isclose(float(table["em_min"][0]), 1.755e-6)
    assert math.isclose(float(table["t_min"][0]), 61042.0)


def test_wide_regions_are_read_in_chunks_of_ids(sqlite_api, monkeypatch):
    """A region may hold more rows than one statement may bind: their ids are read in
    chunks, and MAXREC still cuts the union in catalog order."""
    import services.archive.vo.sia as sia

    whole = _obs_ids(sqlite_api.get("/vo/scs", params={"RA": "150", "DEC": "2", "SR": "1"}))
    monkeypatch.setattr(sia, "ID_CHUNK", 1)
    assert _obs_ids(sqlite_api.get("/vo/scs", params={"RA": "150", "DEC": "2", "SR": "1"})) == whole
    assert len(whole) == 4
    first = sqlite_api.get("/vo/scs", params={"RA": "150", "DEC": "2", "SR": "1", "MAXREC": "2"})
    assert _obs_ids(first) == sorted(list(_ROWS)[:2]) and b'value="OVERFLOW"' in first.content
    assert _obs_ids(sqlite_api.get("/vo/sia2/query", params=[("POS", "CIRCLE 150 2 1"), ("POS", "CIRCLE 350 -30 1"),
                                                             ("MAXREC", "3")])) == sorted(list(_ROWS)[:3])


def test_sqlite_errors_are_votables_with_400(sqlite_api):
    for params, name in (({"POS": "CIRCLE 1 2"}, "POS"), ({"BAND": "2 1"}, "BAND"), ({"MAXREC": "x"}, "MAXREC")):
        answer = sqlite_api.get("/vo/sia2/query", params=params)
        assert answer.status_code == 400 and answer.headers["content-type"].startswith("application/x-votable+xml")
        assert b'name="QUERY_STATUS" value="ERROR"' in answer.content and f"{name}: ".encode() in answer.content
    answer = sqlite_api.post("/vo/sia2/query", content=b"{}", headers={"content-type": "application/json"})
    assert answer.status_code == 400 and b"x-www-form-urlencoded" in answer.content
    answer = sqlite_api.get("/vo/scs", params={"RA": "150", "DEC": "2", "SR": "20"})
    assert answer.status_code == 400 and b'name="Error"' in answer.content and b"SR: " in answer.content


def test_sqlite_cone_search(sqlite_api):
    answer = sqlite_api.get("/vo/scs", params={"RA": "150", "DEC": "2", "SR": "0.05"})
    # every data product type, the spectrum too
    assert _obs_ids(answer) == ["jw09999-o001_t001_nircam_clear-f200w", "jw09999001001_02101_00001_nrca1",
                                "jw09999003001_02101_00001_nrs1"]
    table = parse_single_table(io.BytesIO(answer.content))
    ucds = {f.name: f.ucd for f in table.fields}
    assert (ucds["obs_id"], ucds["s_ra"], ucds["s_dec"]) == ("ID_MAIN", "POS_EQ_RA_MAIN", "POS_EQ_DEC_MAIN")
    verb1 = parse_single_table(io.BytesIO(
        sqlite_api.get("/vo/scs", params={"RA": "150", "DEC": "2", "SR": "0.05", "VERB": "1"}).content))
    assert [f.name for f in verb1.fields] == ["obs_id", "s_ra", "s_dec"]
    verb3 = parse_single_table(io.BytesIO(
        sqlite_api.get("/vo/scs", params={"RA": "150", "DEC": "2", "SR": "0.05", "VERB": "3"}).content))
    assert len(verb3.fields) > len(table.fields) > 3
    metadata = sqlite_api.get("/vo/scs", params={"RA": "150", "DEC": "2", "SR": "0"})
    assert _obs_ids(metadata) == [] and b"POS_EQ_RA_MAIN" in metadata.content


# ------------------------------------------------------------------ pyvo against the live archive


def _catalog_rows(vo_archive) -> list[CaomObservation]:
    with vo_archive.run.ctx.catalog.session() as s:
        rows = s.scalars(select(CaomObservation)).all()
        s.expunge_all()
    return rows


def _touches(region: str, ra: float, dec: float, radius: float) -> bool:
    """Whether a footprint reaches the circle, found by walking its edges in small steps
    (independent of the service's plane geometry): a point of an edge within the radius, or
    the centre inside the footprint."""
    if region_contains(region, ra, dec):
        return True
    _, n = parse_region(region)
    corners = list(zip(n[0::2], n[1::2], strict=True))
    for (r1, d1), (r2, d2) in zip(corners, corners[1:] + corners[:1], strict=True):
        for t in np.linspace(0.0, 1.0, 400):
            if sky.separation(ra, dec, r1 + t * (r2 - r1), d1 + t * (d2 - d1)) <= radius:
                return True
    return False


def _centred(rows, ra, dec, radius) -> list[str]:
    """The rows whose centre lies in the circle (a cone search's rows)."""
    return sorted(r.obs_id for r in rows if r.s_ra is not None and sky.separation(ra, dec, r.s_ra, r.s_dec) <= radius)


def _in_circle(rows, ra, dec, radius, images_only=True) -> list[str]:
    """The rows whose footprint (or, without one, centre) reaches the circle."""
    return sorted(r.obs_id for r in rows if r.s_ra is not None
                  and (not images_only or r.dataproduct_type in ("image", "cube"))
                  and (_touches(r.s_region, ra, dec, radius) if r.s_region
                       else sky.separation(ra, dec, r.s_ra, r.s_dec) <= radius))


@pytest.fixture(scope="module")
def live(vo_archive):
    rows = _catalog_rows(vo_archive)
    level3 = next(r for r in rows if r.calib_level == 3)
    service = pyvo.dal.SIA2Service(vo_archive.url + "/vo/sia2", session=vo_archive.session())
    return vo_archive, rows, level3, service


def _ids(result) -> list[str]:
    return sorted(str(v) for v in result["obs_id"])


def test_pyvo_sia2_cone_returns_the_rows_whose_footprint_it_reaches(live):
    archive, rows, level3, service = live
    ra, dec = level3.s_ra, level3.s_dec
    # a radius that splits the rows: half-way to the farthest exposure centre
    farthest = max(sky.separation(ra, dec, r.s_ra, r.s_dec) for r in rows if r.s_ra is not None)
    for radius in (farthest / 2, farthest * 1.01, 1e-4):
        expected = _in_circle(rows, ra, dec, radius)
        assert expected, radius
        found = service.search(pos=(ra, dec, radius))
        assert _ids(found) == expected, radius
    result = service.search(pos=(ra, dec, farthest * 1.01))
    record = result[0]
    assert record.access_url.startswith(archive.url + "/vo/datalink?ID=ivo://jwst-dms/jwst?")
    assert result["obs_publisher_did"][0] == publisher_did(str(result["obs_id"][0]))
    assert _ids(service.search(pos=(ra + 90.0, -dec, 0.5))) == []
    # pyvo sends 4 numbers as a RANGE and 6 or more as a POLYGON
    images = _in_circle(rows, ra, dec, 1.0)
    assert _ids(service.search(pos=(ra - 0.5, ra + 0.5, dec - 0.5, dec + 0.5))) == images
    assert _ids(service.search(pos=(ra - 0.5, dec - 0.5, ra + 0.5, dec - 0.5, ra, dec + 0.5))) == images
    assert _ids(service.search(pos=(ra + 0.5, ra + 1.5, dec - 0.5, dec + 0.5))) == []


def test_pyvo_sia2_filters(live):
    archive, rows, level3, service = live
    ra, dec = level3.s_ra, level3.s_dec
    images = _in_circle(rows, ra, dec, 1.0)
    lo, hi = level3.em_min * 1e-9, level3.em_max * 1e-9
    assert _ids(service.search(pos=(ra, dec, 1.0), band=((lo + hi) / 2, (lo + hi) / 2))) == images
    assert _ids(service.search(pos=(ra, dec, 1.0), band=(hi * 2, math.inf))) == []
    assert _ids(service.search(pos=(ra, dec, 1.0), calib_level=3)) == [level3.obs_id]
    assert _ids(service.search(pos=(ra, dec, 1.0), calib_level=[2, 3])) == images
    instrument = level3.instrument_name.split("/")[0]
    assert _ids(service.search(instrument=instrument, target_name=level3.target_name)) == sorted(
        r.obs_id for r in rows if r.dataproduct_type in ("image", "cube") and r.target_name == level3.target_name)
    assert _ids(service.search(instrument="MIRI")) == []
    start, end = Time(level3.t_min), Time(level3.t_max)
    assert level3.obs_id in _ids(service.search(time=(start, end)))
    assert _ids(service.search(time=(Time(end.mjd + 10, format="mjd"), Time(end.mjd + 11, format="mjd")))) == []


def test_pyvo_maxrec_overflow_and_metadata_only(live):
    archive, rows, level3, service = live
    everything = _in_circle(rows, level3.s_ra, level3.s_dec, 1.0)
    assert len(everything) >= 2
    with warnings.catch_warnings():
        warnings.simplefilter("error", DALOverflowWarning)  # asked for: no warning
        cut = service.search(pos=(level3.s_ra, level3.s_dec, 1.0), maxrec=1)
    assert len(cut) == 1 and cut.votable.resources[0].infos[0].value == "OVERFLOW"
    assert set(_ids(cut)) <= set(everything)
    empty = service.search(pos=(level3.s_ra, level3.s_dec, 1.0), maxrec=0)
    assert len(empty) == 0 and "access_url" in empty.fieldnames


def test_pyvo_bad_parameters_raise_dal_query_errors(live):
    archive, rows, level3, service = live
    with pytest.raises(DALQueryError, match="POS: "):
        pyvo.dal.sia2.SIA2Query(service.query_ep, session=archive.session(), POS="CIRCLE 1 2").execute()
    answer = requests.get(archive.url + "/vo/sia2/query", params={"POS": "SQUARE 1 2 3"}, timeout=30)
    assert answer.status_code == 400 and b"POS: " in answer.content
    with pytest.raises(DALQueryError, match="CALIB: "):
        pyvo.dal.sia2.SIA2Query(service.query_ep, session=archive.session(), CALIB="7").execute()


def test_pyvo_cone_search_returns_the_same_rows(live):
    archive, rows, level3, service = live
    scs = pyvo.dal.SCSService(archive.url + "/vo/scs", session=archive.session())
    ra, dec = level3.s_ra, level3.s_dec
    farthest = max(sky.separation(ra, dec, r.s_ra, r.s_dec) for r in rows if r.s_ra is not None)
    for radius in (farthest / 2, farthest * 1.01):
        result = scs.search(pos=(ra, dec), radius=radius)
        # a cone search lists the rows centred in the cone; SIA2 those whose footprint it reaches
        assert _ids(result) == _centred(rows, ra, dec, radius)
        assert set(_ids(result)) <= set(_ids(service.search(pos=(ra, dec, radius))))  # every row here is an image
    record = scs.search(pos=(ra, dec), radius=1e-4, verbosity=1)[0]
    assert record.id == level3.obs_id or str(record.id) in _centred(rows, ra, dec, 1e-4)
    assert record.pos.separation(SkyCoord(ra, dec, unit="deg")).deg < 1e-4
    assert len(scs.search(pos=(ra + 90.0, -dec), radius=0.5)) == 0
    with pytest.raises(DALQueryError, match="SR: .*larger than"):
        scs.search(pos=(ra, dec), radius=45.0)
    with pytest.raises(DALQueryError, match="DEC: "):
        pyvo.dal.scs.SCSQuery(archive.url + "/vo/scs", session=archive.session(),
                              RA="10", DEC="95", SR="1").execute()


def test_exclusive_programs_rows_are_listed_to_anonymous_callers(live):
    archive, rows, level3, _ = live
    with archive.run.ctx.catalog.session() as s:
        program = s.get(Program, level3.program_id)
        assert program.eap_months > 0 and PI in (program.pi_user, program.pi_name, *program.authorized_users)
    assert level3.t_obs_release is None or level3.t_obs_release.replace(tzinfo=UTC) > datetime.now(UTC)
    anonymous = pyvo.dal.SIA2Service(archive.url + "/vo/sia2")  # no token
    found = anonymous.search(pos=(level3.s_ra, level3.s_dec, 1.0))
    assert level3.obs_id in _ids(found)
    assert _ids(pyvo.dal.SCSService(archive.url + "/vo/scs").search(pos=(level3.s_ra, level3.s_dec),
                                                                     radius=1.0)) == _ids(found)


def test_vosi_documents(live):
    archive, *_ = live
    caps = pyvo.io.vosi.parse_capabilities(io.BytesIO(requests.get(archive.url + "/vo/sia2/capabilities", timeout=30).content))
    by_id = {c.standardid: c for c in caps}
    assert by_id["ivo://ivoa.net/std/SIA#query-2.0"].interfaces[0].accessurls[0].content == (
        archive.url + "/vo/sia2/query")
    assert "ivo://ivoa.net/std/VOSI#availability" in by_id
    caps = pyvo.io.vosi.parse_capabilities(io.BytesIO(requests.get(archive.url + "/vo/scs/capabilities", timeout=30).content))
    assert {c.standardid for c in caps} >= {"ivo://ivoa.net/std/ConeSearch"}
    for service in ("sia2", "scs"):
        availability = pyvo.io.vosi.parse_availability(
            io.BytesIO(requests.get(f"{archive.url}/vo/{service}/availability", timeout=30).content))
        assert availability.available is True
