"""MAST's observation rows of JWST (/caom/observations) over a real archived program: the
small imaging program (two dither points of one detector) run through every service, on
SQLite and on PostgreSQL. One row per Level-3 product and one per exposure and detector,
with MAST's fields; a Level-3 row's product list holds its own files and its members';
a reprocessed revision updates the rows; a catalog made before the rows gets them when it
is upgraded."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from astropy.io import fits
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, inspect, select, text

from services.archive import mast
from services.archive.app import create_app
from shared.catalog import (
    CaomMember,
    CaomObservation,
    CaomProduct,
    Exposure,
    Observation,
    Product,
    upgrade,
)
from shared.catalog.db import alembic_config
from shared.catalog.obscore import COLUMNS, obs_id_of, obscore_select
from shared.catalog.queries import next_revision, register_product, supersede_products
from shared.footprints import parse_region, region_contains
from shared.naming import object_key, parse_level3
from tests.conftest import empty_catalog
from tests.faults.harness import small_program
from tests.imaging_chain import ChainRun, copy_run, run_chain


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def chain(request, tmp_path_factory, small_program_sim):
    work = tmp_path_factory.mktemp("caom")
    if request.param == "postgresql":
        url = empty_catalog(request.getfixturevalue("pg_server_url"))
        run = run_chain(small_program(), work, catalog_url=url, sim=small_program_sim)
    else:
        run = copy_run(request.getfixturevalue("small_program_run"), work)
    with TestClient(create_app(run.ctx.settings)) as client:
        yield run, client
    run.ctx.catalog.dispose()


def _rows(client, **params) -> dict[str, dict]:
    answer = client.get("/caom/observations", params={"pagesize": 1000, **params})
    assert answer.status_code == 200, answer.text
    return {r["obs_id"]: r for r in answer.json()["rows"]}


def _products(client, ident, **params) -> list[dict]:
    answer = client.get(f"/caom/observations/{ident}/products", params={"pagesize": 1000, **params})
    assert answer.status_code == 200, answer.text
    return answer.json()["rows"]


def _base(run: ChainRun) -> str:
    """The address the API's URLs start with: the test client's (no DMS_ARCHIVE_BASE_URL set)."""
    return (run.ctx.settings.archive_base_url or "http://testserver").rstrip("/")


def _level3(run: ChainRun) -> str:
    (i2d,) = run.filenames("i2d", 3)
    return i2d


def _exposures(run: ChainRun) -> list[str]:
    return [n.removesuffix("_uncal.fits") for n in run.filenames("uncal") if "_gs-" not in n]


def test_one_row_per_level3_product_and_per_exposure(chain):
    run, client = chain
    rows = _rows(client, program="1234")
    level3 = parse_level3(_level3(run)).product_name
    exposures = _exposures(run)
    assert len(exposures) == 2
    assert set(rows) == {level3, *exposures}
    assert rows[level3]["calib_level"] == 3 and rows[level3]["n_members"] == 2
    for name in exposures:
        assert rows[name]["calib_level"] == 2 and rows[name]["n_members"] == 0
    for row in rows.values():
        assert row["instrument_name"] == "NIRCAM/IMAGE" and row["filters"] == "F200W"
        assert row["dataproduct_type"] == "image" and row["observations"] == ["jw01234001"]
        assert row["proposal_id"] == "1234" and row["target_name"]
        assert row["em_min"] == pytest.approx(1741.25) and row["em_max"] == pytest.approx(2238.75)  # F200W, W class
    # t_min/t_max: the mosaic spans its members
    assert rows[level3]["t_min"] == min(rows[n]["t_min"] for n in exposures)
    assert rows[level3]["t_max"] == max(rows[n]["t_max"] for n in exposures)
    assert rows[level3]["t_exptime"] == pytest.approx(sum(rows[n]["t_exptime"] for n in exposures))


def test_level3_product_list_holds_its_own_files_and_its_members(chain):
    run, client = chain
    level3 = parse_level3(_level3(run)).product_name
    row = _rows(client, obs_id=level3)[level3]
    listed = _products(client, row["obsid"])
    data = [p for p in listed if p["productType"] != "PREVIEW"]
    names = [p["productFilename"] for p in data]
    assert len(names) == len(set(names)), "a file is listed once"
    assert all(p["parent_obsid"] == row["obsid"] for p in listed)
    home = {p["productFilename"]: p["obs_id"] for p in data}
    for suffix in ("i2d", "cat", "segm"):
        (name,) = [n for n in run.filenames(suffix, 3) if not n.startswith("jw01234001")]
        assert home[name] == level3
    (asn3,) = [n for n in run.filenames("asn") if "image3" in n]
    assert home[asn3] == level3
    members = _exposures(run)
    member_rows = _rows(client, obs_id=",".join(members))
    for exposure in members:
        for suffix in ("uncal", "rate", "cal"):
            assert home[f"{exposure}_{suffix}.fits"] == exposure
        (crf,) = [n for n in run.filenames("crf") if n.startswith(exposure)]
        assert home[crf] == exposure
        assert {p["obsID"] for p in data if p["obs_id"] == exposure} == {member_rows[exposure]["obsid"]}
    lv2 = [n for n, o in home.items() if n.endswith("_asn.json") and "image2" in n]
    assert sorted(home[n] for n in lv2) == sorted(members)
    # an exposure row's own list: its files, not the mosaic's
    own = {p["productFilename"] for p in _products(client, members[0]) if p["productType"] != "PREVIEW"}
    assert f"{members[0]}_cal.fits" in own and _level3(run) not in own
    # Minimum Recommended Products of the Level-3 row: its science products and its association
    mrp = {p["productFilename"] for p in _products(client, level3, mrp_only=True)}
    assert mrp == {_level3(run), _level3(run).replace("_i2d.fits", "_cat.ecsv"), asn3}


def test_row_fields_follow_release_footprint_and_previews(chain):
    run, client = chain
    now = datetime.now(UTC)
    level3 = parse_level3(_level3(run)).product_name
    rows = _rows(client, program="1234")
    listed = {p["productFilename"]: p for p in _products(client, level3) if p["productType"] != "PREVIEW"}
    cal_releases = [listed[f"{e}_cal.fits"]["public_release_date"] for e in _exposures(run)]
    latest = max(datetime.fromisoformat(r) for r in cal_releases)
    # a Level-3 product is released with its latest member; the row with its latest file
    assert rows[level3]["t_obs_release"] == pytest.approx(mast.mjd(latest), abs=1e-8)
    with run.ctx.catalog.session() as s:
        eap = s.scalar(select(Observation).where(Observation.program_id == "01234")).program.eap_months
    assert eap == 12
    for name, row in rows.items():
        release = mast.from_mjd(row["t_obs_release"])
        assert release > now + timedelta(days=300)  # a GO program's data: 12 months of exclusive access
        assert row["dataRights"] == "EXCLUSIVE_ACCESS"
        shape, _ = parse_region(row["s_region"])
        assert shape == "POLYGON"
        assert region_contains(row["s_region"], row["s_ra"], row["s_dec"]), name
        assert not region_contains(row["s_region"], row["s_ra"] + 0.05, row["s_dec"])
    # the footprint is the S_REGION the pipeline wrote into the highest-level product
    sci = fits.getheader(run.path(_level3(run)), "SCI")
    assert rows[level3]["s_region"] == sci["S_REGION"]
    assert rows[level3]["jpegURL"] == f"{_base(run)}/previews/{_level3(run)}"
    assert rows[level3]["dataURL"] == f"{_base(run)}/download/{_level3(run)}"
    for exposure in _exposures(run):
        assert rows[exposure]["jpegURL"] == f"{_base(run)}/previews/{exposure}_cal.fits"
        sci = fits.getheader(run.path(f"{exposure}_cal.fits"), "SCI")
        assert rows[exposure]["s_region"] == sci["S_REGION"]


def test_program_observation_names_its_caom_rows_and_criteria(chain):
    run, client = chain
    obs = client.get("/observations/jw01234001").json()
    assert obs["n_caom_rows"] == 3
    assert obs["caomURL"] == f"{_base(run)}/caom/observations?observation=jw01234001"
    assert len(client.get(obs["caomURL"]).json()["rows"]) == 3
    level3 = parse_level3(_level3(run)).product_name
    assert set(_rows(client, calib_level="3")) == {level3}
    assert set(_rows(client, calib_level="1..2")) == set(_exposures(run))
    assert set(_rows(client, obs_id="jw01234-o001_*")) == {level3}
    assert set(_rows(client, obs_id="!jw01234-*", program="1234")) == set(_exposures(run))
    assert len(_rows(client, instrument_name="NIRCAM")) == 3 and not _rows(client, instrument_name="MIRI")
    assert len(_rows(client, filters="F200W")) == 3 and not _rows(client, filters="F444W")
    centre = _rows(client, obs_id=level3)[level3]
    assert len(_rows(client, ra=centre["s_ra"], dec=centre["s_dec"], radius=0.01)) == 3
    assert not _rows(client, ra=(centre["s_ra"] + 1) % 360, dec=centre["s_dec"], radius=0.01)
    assert len(_rows(client, dataRights="EXCLUSIVE_ACCESS")) == 3 and not _rows(client, dataRights="PUBLIC")
    assert set(_rows(client, s_ra=f"{centre['s_ra'] - 1e-6}..{centre['s_ra'] + 1e-6}")) == {level3}
    assert len(_rows(client, em_min=f"<={centre['em_min']}", em_max=f">={centre['em_max']}")) == 3
    assert len(_rows(client, proposal_pi="Ada*", obs_title="*NIRCam*")) == 3 and not _rows(client, proposal_pi="Grace*")
    assert not _rows(client, t_exptime=f">{centre['t_exptime'] * 10}")
    one = client.get(f"/caom/observations/{level3}").json()
    assert one["obs_id"] == level3 and client.get(f"/caom/observations/{one['obsid']}").json() == one
    for bad, params in (("/caom/observations", {"observation": "jw1"}),
                        ("/caom/observations", {"dataRights": "SOMETIMES"}),
                        ("/caom/observations", {"ra": "10"}),
                        ("/caom/observations", {"t_exptime": "long"})):
        answer = client.get(bad, params=params)
        assert answer.status_code == 400 and answer.json()["detail"], answer.text
    for missing in ("/caom/observations/jw09999-o001_t001_nircam_clear-f200w",
                    "/caom/observations/99999999/products"):
        answer = client.get(missing)
        assert answer.status_code == 404 and "obs_id" in answer.json()["detail"]


def test_migration_gives_an_existing_catalog_its_rows(chain, tmp_path):
    """Down to the schema before the rows and up again: the upgrade builds them (SQLite: a
    copy of the catalog file; PostgreSQL: the run's catalog itself, rows and all back after)."""
    run, _ = chain
    url = run.ctx.catalog.url
    if url.startswith("sqlite"):
        copy = tmp_path / "catalog.db"
        source = sqlite3.connect(url.removeprefix("sqlite:///"))
        with sqlite3.connect(copy) as target:
            source.backup(target)
        source.close()
        url = f"sqlite:///{copy}"

    def snapshot():
        engine = create_engine(url)
        with engine.connect() as conn:
            rows = {r.obs_id: r for r in conn.execute(select(CaomObservation))}
            files = {(o, f) for o, f in conn.execute(select(CaomObservation.obs_id, CaomProduct.filename)
                                                        .join(CaomProduct))}
            members = conn.execute(select(CaomMember)).all()
        engine.dispose()
        return rows, files, len(members)

    before = snapshot()
    command.downgrade(alembic_config(url), "0013_search_indexes")  # the catalog as it was before the rows
    engine = create_engine(url)
    assert "caom_observation" not in inspect(engine).get_table_names()
    engine.dispose()
    upgrade(url)
    after = snapshot()
    assert set(after[0]) == set(before[0]) and after[1] == before[1] and after[2] == before[2] == 2
    for obs_id, row in after[0].items():
        old = before[0][obs_id]
        for column in ("kind", "calib_level", "t_obs_release", "top_filename", "n_products", "t_min", "t_max",
                       "instrument_name", "filters"):
            assert getattr(row, column) == getattr(old, column), (obs_id, column)
        # the files' footprints went with the downgrade: a circle about the pointing (or the members)
        assert parse_region(row.s_region)[0] == "CIRCLE"
        assert region_contains(row.s_region, row.s_ra, row.s_dec)
        assert region_contains(row.s_region, old.s_ra, old.s_dec)


def test_reprocessed_revision_updates_the_rows(chain):
    """Last in this module: it changes the archive the other tests read."""
    run, client = chain
    ctx = run.ctx
    i2d = _level3(run)
    level3 = parse_level3(i2d).product_name
    before = _rows(client, obs_id=level3)[level3]
    data = b"a reprocessed mosaic"
    later = datetime.now(UTC) + timedelta(days=800)
    with ctx.catalog.session() as s:
        rev = next_revision(s, i2d, "0" * 64).revision
    stored = ctx.store.put_bytes("dms-archive", object_key("01234", 1, rev, i2d), data, "application/fits")
    with ctx.catalog.session() as s:
        old = s.scalar(select(Product).where(Product.filename == i2d, Product.is_current))
        register_product(
            s, stored=stored, filename=i2d, suffix="i2d", level=3, revision=rev, program_id="01234",
            observation_id=old.observation_id, exposure_id=None, archived_at=datetime.now(UTC), eap_months=12,
            software_version="9.9", inputs=list(old.inputs), product_type="SCIENCE", data_release=later,
            s_region="POLYGON ICRS 10 10 10.1 10 10.1 10.1 10 10.1",
        )
    after = _rows(client, obs_id=level3)[level3]
    assert after["obsid"] == before["obsid"]
    assert after["t_obs_release"] == pytest.approx(mast.mjd(later), abs=1e-8)
    assert after["s_region"] == "POLYGON ICRS 10 10 10.1 10 10.1 10.1 10 10.1"  # the new revision's footprint
    assert region_contains(after["s_region"], after["s_ra"], after["s_dec"])
    assert after["jpegURL"] is None  # the new revision has no preview yet
    revisions = [p["revision"] for p in _products(client, level3, filename=i2d, include_superseded=True)
                 if p["productType"] != "PREVIEW"]
    assert sorted(revisions) == [1, rev]
    assert [p["revision"] for p in _products(client, level3, filename=i2d)] == [rev]
    # superseded with nothing in their place (its association made again elsewhere): the row goes
    own = [p["productFilename"] for p in _products(client, level3) if p["obs_id"] == level3
           and not p["productFilename"].endswith("_asn.json") and p["productType"] != "PREVIEW"]
    with ctx.catalog.session() as s:
        supersede_products(s, own, datetime.now(UTC))
    assert level3 not in _rows(client, program="1234")
    assert client.get("/observations/jw01234001").json()["n_caom_rows"] == 2


def test_a_mosaic_of_two_observations_is_one_row_of_each(chain):
    """A proposal candidate's product (c1NNN) combining exposures of observations 1 and 2 is
    one row, linked to both (its catalog product names only the first)."""
    run, client = chain
    ctx = run.ctx
    exposure = _exposures(run)[0]
    other = exposure.replace("jw01234001001", "jw01234002001")
    mosaic = "jw01234-c1000_t001_nircam_clear-f200w-sub160_i2d.fits"
    with ctx.catalog.session() as s:
        obs1 = s.scalar(select(Observation).where(Observation.program_id == "01234", Observation.number == 1))
        obs2 = Observation(program_id="01234", number=2, target_name=obs1.target_name, instrument="NIRCAM",
                           exp_type="NRC_IMAGE", filter="F200W", pupil="CLEAR")
        s.add(obs2)
        s.flush()
        template = s.scalar(select(Product).where(Product.filename == f"{exposure}_cal.fits", Product.is_current))
        e1 = template.exposure
        fields = {k: getattr(e1, k) for k in ("visit", "visit_group", "sequence", "activity", "exposure", "detector",
                                              "exp_type", "filter", "pupil", "readpatt", "subarray", "ngroups",
                                              "nints", "start_time", "ra", "dec")}
        e2 = Exposure(name=other, observation_id=obs2.id, **{**fields, "dec": e1.dec + 0.01})
        s.add(e2)
        s.flush()
        ids = (obs1.id, obs2.id, e2.id)

    def add(filename: str, suffix: str, level: int, exposure_id, observation_id, inputs, release=None):
        data = filename.encode()
        stored = ctx.store.put_bytes("dms-archive", object_key("01234", 2, 1, filename), data, "application/fits")
        with ctx.catalog.session() as s:
            register_product(s, stored=stored, filename=filename, suffix=suffix, level=level, revision=1,
                             program_id="01234", observation_id=observation_id, exposure_id=exposure_id,
                             archived_at=datetime.now(UTC), eap_months=12, software_version="0.2.0", inputs=inputs,
                             data_release=release)

    add(f"{other}_cal.fits", "cal", 2, ids[2], ids[1], [])
    add(mosaic, "i2d", 3, None, ids[0], [f"{exposure}_cal.fits", f"{other}_cal.fits"])
    name = parse_level3(mosaic).product_name
    row = _rows(client, obs_id=name)[name]
    assert row["observations"] == ["jw01234001", "jw01234002"] and row["n_members"] == 2
    assert name in _rows(client, observation="jw01234002") and name in _rows(client, observation="jw01234001")
    homes = {p["productFilename"]: p["obs_id"] for p in _products(client, name) if p["productType"] != "PREVIEW"}
    assert homes[mosaic] == name and homes[f"{other}_cal.fits"] == other and homes[f"{exposure}_cal.fits"] == exposure
    # no footprint recorded for either: a circle that holds both exposures' pointings
    assert parse_region(row["s_region"])[0] == "CIRCLE"
    with ctx.catalog.session() as s:
        pointings = [(e.ra, e.dec) for e in s.scalars(select(Exposure).where(Exposure.name.in_([exposure, other])))]
    assert all(region_contains(row["s_region"], ra, dec) for ra, dec in pointings)


def test_obscore_rows_are_the_caom_rows_in_obscore_units(chain):
    # One ObsCore row per CAOM row, times in MJD and wavelengths in metres; on PostgreSQL the
    # view ivoa.obscore gives exactly what the SELECT gives.
    run, client = chain
    caom = _rows(client, program="1234")
    with run.ctx.catalog.session() as s:
        found = {r.obs_id: r for r in s.execute(obscore_select())}
        if s.bind.dialect.name == "postgresql":
            viewed = {r.obs_id: r for r in s.execute(text("SELECT * FROM ivoa.obscore"))}
            assert list(next(iter(viewed.values()))._fields) == [c.name for c in COLUMNS]
            assert viewed.keys() == found.keys()
            for obs_id, row in viewed.items():
                for name, value in row._asdict().items():
                    expected = getattr(found[obs_id], name)
                    if isinstance(value, float):
                        assert value == pytest.approx(expected, rel=1e-12), (obs_id, name)
                    else:
                        assert value == expected, (obs_id, name)
    assert set(found) == set(caom)
    for obs_id, row in found.items():
        mast_row = caom[obs_id]
        assert row.calib_level == mast_row["calib_level"] and row.obs_collection == "JWST"
        assert row.t_min == pytest.approx(mast_row["t_min"], abs=1e-6)  # MAST's are MJD too
        assert row.t_max == pytest.approx(mast_row["t_max"], abs=1e-6)
        assert row.em_min == pytest.approx(mast_row["em_min"] * 1e-9) and row.em_max > row.em_min
        assert obs_id_of(row.obs_publisher_did) == obs_id
        assert row.access_url == f"/vo/datalink?ID={row.obs_publisher_did}"
        assert row.proposal_id == "01234" and row.s_region == mast_row["s_region"]


def test_bulk_backfill_makes_the_rows_a_refresh_makes():
    """The upgrade builds a catalog's rows in bulk, a program at a time; refreshing every
    program afterwards (the path archiving takes, row by row) changes nothing. Over the
    benchmark's synthetic catalog: imaging and IFU, detectors, dithers, reprocessed revisions,
    guide-star products of each visit and Level-3 products with their associations."""
    from benchmarks.catalog_load import BASE_SCHEMA, load
    from shared.catalog import Catalog
    from shared.catalog.caom import refresh_program
    from tests.conftest import scratch_database

    def snapshot(s):
        rows = {r.obs_id: {c: getattr(r, c) for c in CaomObservation.__table__.columns.keys()
                           if c not in ("id", "updated_at")} for r in s.scalars(select(CaomObservation))}
        obs_ids = dict(s.execute(select(CaomObservation.id, CaomObservation.obs_id)).all())
        files = {(obs_ids[c], f) for c, f in s.execute(select(CaomProduct.caom_id, CaomProduct.filename))}
        members = {(obs_ids[c], obs_ids[m]) for c, m in s.execute(select(CaomMember.caom_id, CaomMember.member_id))}
        return rows, files, members

    with scratch_database() as url:
        upgrade(url, BASE_SCHEMA)
        import psycopg

        with psycopg.connect(url.replace("postgresql+psycopg", "postgresql")) as conn:
            loaded = load(conn, 2500, seed=11)
        upgrade(url)
        cat = Catalog(url)
        try:
            with cat.session() as s:
                built = snapshot(s)
                programs = sorted({r["program_id"] for r in built[0].values()})
                for program_id in programs:
                    refresh_program(s, program_id)
                refreshed = snapshot(s)
        finally:
            cat.dispose()
    rows, files, members = built
    kinds = [r["kind"] for r in rows.values()]
    assert kinds.count("level3") >= loaded.observations and kinds.count("exposure") == loaded.exposures
    assert members and len(files) > loaded.products * 0.9
    assert rows == refreshed[0]
    assert files == refreshed[1] and members == refreshed[2]


# ------------------------------------------------------------------ time series


@pytest.mark.parametrize(("exp_type", "tsovisit", "expected"), [
    ("MIR_LRS-SLITLESS", True, "timeseries"),  # the LRS slitless time series
    ("MIR_LRS-SLITLESS", False, "spectrum"),
    ("MIR_LRS-SLITLESS", None, "spectrum"),  # TSOVISIT not known: the mode alone, as before it was kept
    ("MIR_LRS-FIXEDSLIT", False, "spectrum"),
    ("MIR_IMAGE", True, "timeseries"),  # an imaging time series
    ("MIR_IMAGE", False, "image"),
    ("NRS_BRIGHTOBJ", False, "timeseries"),  # a time series by its type, whatever TSOVISIT says
    ("NRS_BRIGHTOBJ", None, "timeseries"),
    ("NRC_TSIMAGE", None, "timeseries"),
    ("nrc_tsgrism", False, "timeseries"),
    ("NIS_SOSS", False, "timeseries"),
    ("NRS_FIXEDSLIT", None, "spectrum"),
    ("NRS_IFU", True, "timeseries"),
    ("MIR_MRS", False, "cube"),
    ("NIS_AMI", None, "image"),
    (None, None, None),
    ("NRC_UNKNOWN", False, None),
])
def test_dataproduct_type_is_timeseries_for_a_time_series_visit_or_mode(exp_type, tsovisit, expected):
    from shared.catalog.caom import dataproduct_type

    assert dataproduct_type(exp_type, tsovisit) == expected


@pytest.mark.parametrize(("instrument", "filter_", "pupil", "band"), [
    ("MIRI", "P750L", None, (5.0, 14.0)),  # the LRS prism, a filter-wheel element
    ("NIRSPEC", "CLEAR", "PRISM", (0.6, 5.3)),
    ("NIRSPEC", "F290LP", "G395M", (2.87, 5.10)),  # a bright-object time series' grating
])
def test_em_range_of_a_disperser_is_its_band(instrument, filter_, pupil, band):
    """em_min/em_max of a spectrum's rows: its disperser's band, not its filter's."""
    from shared.instruments import filter_band

    assert filter_band(instrument, filter_, pupil) == band


def _time_series_plan():
    """Program 01234: a MIRI LRS slitless time series (1), a NIRSpec bright-object time series
    planned without TSOVISIT (2), a MIRI imaging time series (3) and an LRS slit exposure (4)."""
    from shared.plan import DitherPattern, PlannedExposure, Pointing
    from shared.plan import Observation as PlannedObservation
    from tests.associations_factory import T0, make_plan

    def planned(number, instrument, exp_type, detector, filter_, pupil, subarray, readpatt, tsovisit, **kw):
        return PlannedObservation(
            number=number, target_id=1, template=f"{instrument.title()} {exp_type}", instrument=instrument,
            exp_type=exp_type, detectors=[detector], filter=filter_, pupil=pupil, readpatt=readpatt, ngroups=3,
            nints=4 if tsovisit or exp_type == "NRS_BRIGHTOBJ" else 1, subarray=subarray, tsovisit=tsovisit,
            dither=DitherPattern(pattern_type="NONE", offsets=[(0.0, 0.0)]), **kw,
            exposures=[PlannedExposure(visit=1, exposure=1, detector=detector, dither_point=1,
                                       start_time=T0 + timedelta(hours=number), pointing=Pointing(ra=53.16, dec=-27.78))])

    return make_plan([
        planned(1, "MIRI", "MIR_LRS-SLITLESS", "MIRIMAGE", "P750L", "N/A", "SLITLESSPRISM", "FAST", True),
        planned(2, "NIRSPEC", "NRS_BRIGHTOBJ", "NRS1", "CLEAR", "PRISM", "SUB2048", "NRSRAPID", False,
                fixed_slit="S1600A1"),
        planned(3, "MIRI", "MIR_IMAGE", "MIRIMAGE", "F1500W", "N/A", "SUB64", "FAST", True),
        planned(4, "MIRI", "MIR_LRS-FIXEDSLIT", "MIRIMAGE", "P750L", "N/A", "FULL", "FAST", False),
    ])


@pytest.fixture(params=["sqlite", "postgresql"])
def tso_archive(request, tmp_path):
    from shared.config import Settings
    from shared.runtime import ServiceContext

    url = request.getfixturevalue("pg_url") if request.param == "postgresql" else None
    ctx = ServiceContext.from_settings(Settings(var_dir=tmp_path / "var", catalog_url=url, _env_file=None))
    ctx.catalog.upgrade()
    with TestClient(create_app(ctx.settings)) as client:
        yield ctx, client
    ctx.catalog.dispose()


def test_time_series_observations_are_timeseries_rows(tso_archive, tmp_path):
    """MAST's rule: a time-series visit (TSOVISIT) of any mode, and NRS_BRIGHTOBJ by its type,
    is ``timeseries`` at the exposure level and for its tso3 products; an LRS slit exposure
    stays ``spectrum``. The search by type, the observation rows, ObsCore and the MAST
    protocol follow; a catalog from before TSOVISIT was kept types by EXP_TYPE alone until
    the plan is recorded again."""
    from shared.archiving import archive_product
    from shared.catalog.caom import refresh_program
    from shared.catalog.queries import upsert_program
    from shared.datamodels.fits_io import content_type
    from tests.associations_factory import archive_exposure, exposure_ids, store_plan

    ctx, client = tso_archive
    plan = _time_series_plan()
    store_plan(ctx, plan)
    ids = {o.number: exposure_ids(plan, o.number)[0] for o in plan.observations}
    for number, eid in ids.items():
        suffixes = ("rate", "cal") if number == 4 else ("rateints", "calints")
        for suffix in suffixes:
            archive_exposure(ctx, plan, eid, suffix, tmp_path)
    level3 = "jw01234-o001_t001_miri_p750l-slitlessprism"
    for suffix, ext in (("x1dints", "fits"), ("whtlt", "ecsv")):
        path = tmp_path / f"{level3}_{suffix}.{ext}"
        path.write_text(path.name)
        archive_product(ctx, path, suffix=suffix, level=3, program=plan.program, observation=1, exposure=None,
                        inputs=[f"{ids[1]}_calints.fits"], source="/test/stage3", content_type=content_type(path.name))

    rows = _rows(client, program="1234")
    assert set(rows) == {level3, *ids.values()}
    expected = {ids[1]: "timeseries", level3: "timeseries", ids[2]: "timeseries", ids[3]: "timeseries",
                ids[4]: "spectrum"}
    assert {k: r["dataproduct_type"] for k, r in rows.items()} == expected
    assert rows[level3]["n_members"] == 1 and rows[level3]["instrument_name"] == "MIRI/SLITLESS"
    assert set(_rows(client, dataproduct_type="timeseries")) == {level3, ids[1], ids[2], ids[3]}
    assert set(_rows(client, dataproduct_type="spectrum")) == {ids[4]}
    assert not _rows(client, dataproduct_type="image")
    # the program observations, the Level-3 row's products, ObsCore and the MAST protocol
    observations = client.get("/observations", params={"program": "1234"}).json()["rows"]
    assert {o["obs_id"]: o["dataproduct_type"] for o in observations} == {
        "jw01234001": "timeseries", "jw01234002": "timeseries", "jw01234003": "timeseries",
        "jw01234004": "spectrum"}
    with ctx.catalog.session() as s:
        assert {r.obs_id: r.dataproduct_type for r in s.execute(obscore_select())} == expected

    def invoke(service: str, params: dict) -> list[dict]:
        reply = client.post("/api/v0/invoke", data={"request": json.dumps(
            {"service": service, "format": "json", "params": params})})
        assert reply.status_code == 200, reply.text
        return reply.json()["data"]

    found = invoke("Mast.Caom.Filtered", {"columns": "obs_id", "filters": [
        {"paramName": "dataproduct_type", "values": ["timeseries"]}]})
    assert {r["obs_id"] for r in found} == {level3, ids[1], ids[2], ids[3]}
    listed = {p["productFilename"]: p["dataproduct_type"] for p in invoke(
        "Mast.Caom.Products", {"obsid": str(rows[level3]["obsid"])}) if p["productType"] != "PREVIEW"}
    assert listed[f"{level3}_x1dints.fits"] == listed[f"{level3}_whtlt.ecsv"] == "timeseries"

    # A catalog from before TSOVISIT was kept: NULL, typed by EXP_TYPE alone (the rows stay as
    # they were until refreshed); recording the plan again fills it and retypes the rows.
    url = ctx.catalog.url
    command.downgrade(alembic_config(url), "0017_fan_in")
    upgrade(url)
    with ctx.catalog.session() as s:
        assert set(s.scalars(select(Observation.tsovisit))) == {None}
        refresh_program(s, "01234")
    assert {k: r["dataproduct_type"] for k, r in _rows(client, program="1234").items()} == {
        **expected, ids[1]: "spectrum", level3: "spectrum", ids[3]: "image"}
    with ctx.catalog.session() as s:
        upsert_program(s, plan)
    assert {k: r["dataproduct_type"] for k, r in _rows(client, program="1234").items()} == expected
