"""MAST's protocol: astroquery.mast, unchanged, against the archive API.

The small imaging program (two dither points of one detector) runs through every service;
the archive API then listens on a free loopback port (uvicorn) and astroquery, told the
server by its own configuration file (``[mast] server``, cache off), runs as a user would in
a process of its own (tests/astroquery_client.py): criteria and cone searches, the column
metadata, product lists of a Level-3 row and of an exposure row, the Minimum Recommended
Products, downloads checked against the catalogued sha256, a login with an archive token
that then downloads exclusive data, and the errors a bad request gets.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from services.archive.app import create_app
from shared.access import change_access
from shared.catalog import Artifact, ArtifactKind, CaomObservation, Observation, Product, Program
from shared.tokens import create_token
from tests.imaging_chain import ChainRun, copy_run
from tests.system import Server, free_port

REPO = Path(__file__).resolve().parents[1]
PI = "ada@example.org"
STRANGER = "eve@example.org"


class Archive:
    def __init__(self, run: ChainRun, server: Server, home: Path):
        self.run, self.server, self.home = run, server, home
        with run.ctx.catalog.session() as s:
            self.tokens = {PI: create_token(s, PI, 30, "tests"), STRANGER: create_token(s, STRANGER, 30, "tests")}

    def astroquery(self, phase: str, *args: str, resolver_via_archive: bool = False) -> dict:
        """Run a phase of tests/astroquery_client.py; what astroquery returned, as JSON.
        ``resolver_via_archive``: MAST's resolver host (fixed in astroquery 0.4.11, plain
        http) is reached through the archive, named as the process's HTTP proxy."""
        workdir = self.home / f"work-{phase}"
        workdir.mkdir(exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAST_") and k.lower() not in
               ("http_proxy", "https_proxy", "all_proxy", "no_proxy")}
        env.update({"XDG_CONFIG_HOME": str(self.home / "config"), "PYTHONPATH": str(REPO),
                    "no_proxy": "127.0.0.1,localhost"})
        if resolver_via_archive:
            env["http_proxy"] = self.server.url
        done = subprocess.run([sys.executable, "-m", "tests.astroquery_client", phase, str(workdir), *args],
                              cwd=workdir, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-4000:]
        return json.loads(done.stdout.strip().splitlines()[-1])

    def sha256(self, filename: str) -> str:
        with self.run.ctx.catalog.session() as s:
            return s.scalar(select(Artifact.sha256).join(Product, Product.id == Artifact.product_id).where(
                Product.filename == filename, Product.is_current, Artifact.kind == ArtifactKind.DATA))


@pytest.fixture(scope="module")
def archive(tmp_path_factory, small_program_run):
    run = copy_run(small_program_run, tmp_path_factory.mktemp("mast"))
    home = tmp_path_factory.mktemp("astroquery")
    (home / "config" / "astropy").mkdir(parents=True)
    port = free_port()
    settings = run.ctx.settings.model_copy(update={"archive_base_url": f"http://127.0.0.1:{port}"})
    server = Server(create_app(settings), port)
    # astroquery's own configuration: the server, and its cache off
    (home / "config" / "astropy" / "astroquery.cfg").write_text(
        f"cache_active = False\n\n[mast]\nserver = {server.url}\n")
    with server:
        yield Archive(run, server, home)
    run.ctx.catalog.dispose()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _caom_rows(arch: Archive) -> dict[str, CaomObservation]:
    with arch.run.ctx.catalog.session() as s:
        return {r.obs_id: r for r in s.scalars(select(CaomObservation))}


def test_astroquery_searches_lists_and_downloads(archive):
    got = archive.astroquery("anonymous")
    caom = _caom_rows(archive)
    level3 = next(r for r in caom.values() if r.calib_level == 3)
    exposures = sorted(n for n, r in caom.items() if r.calib_level != 3)
    assert len(exposures) == 2

    assert got["whoami"]["anon"] is True
    names = {r["Column Name"] for r in got["metadata_observations"]}
    assert {"obsid", "obs_id", "calib_level", "dataRights", "t_obs_release", "s_region", "jpegURL",
            "proposal_id", "instrument_name", "filters"} <= names
    assert {"dataURI", "productSubGroupDescription", "productGroupDescription", "productFilename", "size"} <= {
        r["Column Name"] for r in got["metadata_products"]}

    # query_criteria(proposal_id=...): one row per Level-3 product and per exposure
    rows = {r["obs_id"]: r for r in got["criteria"]}
    assert set(rows) == set(caom)
    assert got["count"] == len(caom)
    top = rows[level3.obs_id]
    assert top["obsid"] == str(level3.id) and top["calib_level"] == 3
    assert top["obs_collection"] == "JWST" and top["instrument_name"] == "NIRCAM/IMAGE"
    assert top["dataRights"] == "EXCLUSIVE_ACCESS" and top["t_obs_release"] > 60000
    assert top["s_region"].startswith("POLYGON") and top["jpegURL"].startswith(archive.server.url + "/previews/")
    assert top["dataURL"] == f"mast:JWST/product/{level3.top_filename}"
    assert [r["obs_id"] for r in got["criteria_level3"]] == [level3.obs_id]
    assert {r["obs_id"] for r in got["criteria_instrument"]} == set(caom)
    assert got["criteria_other_mission"] == []

    # query_region: the cone holds the rows centred near the mosaic; 5 degrees away, none
    region = {r["obs_id"]: r for r in got["region"]}
    assert region[level3.obs_id]["distance"] == pytest.approx(0.0, abs=1e-3)  # arcsec from the centre asked for
    assert all(0 <= r["distance"] <= 0.05 * 3600 for r in region.values())
    assert got["region_far"] == []
    assert [r["obs_id"] for r in got["criteria_position"]] == [level3.obs_id]

    # get_product_list on a Level-3 obsid: its own files and its members'
    listed = got["products_level3"]
    homes = {p["productFilename"]: p["obs_id"] for p in listed}
    assert {p["parent_obsid"] for p in listed} == {str(level3.id)}
    assert homes[level3.top_filename] == level3.obs_id
    for exposure in exposures:
        assert homes[f"{exposure}_cal.fits"] == exposure
        assert homes[f"{exposure}_uncal.fits"] == exposure
    for p in listed:
        assert p["dataURI"] == f"mast:JWST/product/{p['productFilename']}"
        assert p["productSubGroupDescription"]
        assert p["dataRights"] == "EXCLUSIVE_ACCESS"
    # ... and on an exposure obsid: that exposure's files only (with its visit's guide-star
    # data and its Level-2 association, as MAST lists them)
    own = {p["productFilename"] for p in got["products_exposure"]}
    first = next(r for r in got["criteria"] if r["calib_level"] != 3)
    visit = first["obs_id"].split("_")[0]
    strays = [n for n in own if not (n.startswith(first["obs_id"]) or n.startswith(f"{visit}_gs-")
                                     or n.endswith("_image2_00001_asn.json"))]
    assert own and not strays
    assert {p["obs_id"] for p in got["products_exposure"]} == {first["obs_id"]}
    # a table of observations: every row's list
    assert {p["parent_obsid"] for p in got["products_table"]} == {str(r.id) for r in caom.values()}

    # filter_products(mrp_only=True): the Level-3 products and their association
    mrp = {p["productFilename"]: p for p in got["mrp_level3"]}
    assert level3.top_filename in mrp
    assert all(p["obs_id"] == level3.obs_id and p["calib_level"] == 3 for p in mrp.values())
    assert {p["productSubGroupDescription"] for p in mrp.values()} >= {"I2D", "ASN"}
    # downloads without a token: exclusive data are refused, nothing is written
    manifest = got["manifest_anonymous"]
    assert len(manifest) == len(mrp)
    assert {m["Status"] for m in manifest} == {"ERROR"}
    assert all("401" in m["Message"] for m in manifest)
    assert not any(Path(m["Local Path"]).exists() for m in manifest)

    # errors, as astroquery shows them: MAST's error reply with the reason
    assert got["error_bad_range"].startswith("RemoteServiceError") and "t_min" in got["error_bad_range"]
    assert "not-a-program" in got["error_bad_value"] and "RemoteServiceError" in got["error_bad_value"]
    assert "400" in got["error_service"]
    assert "RemoteServiceError" in got["error_products_obs_id"] and "obs_id" in got["error_products_obs_id"]


def test_query_object_resolves_the_archive_targets(archive):
    with archive.run.ctx.catalog.session() as s:
        target, aliases, ra, dec = s.execute(select(
            Observation.target_name, Observation.target_aliases, Observation.target_ra, Observation.target_dec)
            .where(Observation.program_id == "01234")).first()
    assert aliases, "the example plan gives its target an alias"
    got = archive.astroquery("names", target, aliases[0], resolver_via_archive=True)
    caom = _caom_rows(archive)
    level3 = next(r for r in caom.values() if r.calib_level == 3)
    # the target's position resolves; the rows of the program lie about it
    assert level3.obs_id in {r["obs_id"] for r in got["object"]}
    assert {r["obs_id"] for r in got["object_alias"]} == {r["obs_id"] for r in got["object"]}
    assert [r["obs_id"] for r in got["criteria_objectname"]] == [level3.obs_id]
    (lookup,) = got["lookup"]
    assert lookup["canonicalName"] == target and lookup["matchedAlias"] == aliases[0]
    assert lookup["ra"] == pytest.approx(ra) and lookup["decl"] == pytest.approx(dec)
    assert got["error_unknown"].startswith("ResolverError") and "No Such Field Anywhere" in got["error_unknown"]
    # the resolver's own answer: the closest names of an unknown one
    answer = httpx.get(f"{archive.server.url}/Santa-war/query",
                       params={"name": target.replace("-", " ").lower() + "x", "outputFormat": "json"}).json()
    assert answer["resolvedCoordinate"] == [] and target in answer["notFound"][0]["suggestions"]


def test_login_with_a_token_downloads_exclusive_data(archive):
    got = archive.astroquery("token", archive.tokens[PI])
    assert got["whoami"]["anon"] is False and got["whoami"]["attrib"]["display_name"] == PI
    manifest = got["manifest"]
    assert manifest and {m["Status"] for m in manifest} == {"COMPLETE"}
    assert len(manifest) == len({p["dataURI"] for p in got["mrp"]})
    workdir = archive.home / "work-token"
    for m in manifest:
        path = workdir / m["Local Path"]
        # mastDownload/<obs_collection>/<obs_id>/<productFilename>
        assert path.parent.parent.name == "JWST" and path.parent.parent.parent.name == "mastDownload"
        assert _sha256(path) == archive.sha256(path.name), path.name
    # a token of somebody else reads no exclusive data; a bad token is no login
    other = archive.astroquery("token", archive.tokens[STRANGER])
    assert other["whoami"]["ezid"] == STRANGER and {m["Status"] for m in other["manifest"]} == {"ERROR"}
    assert all("403" in m["Message"] for m in other["manifest"])
    refused = archive.astroquery("bad_token", "not-a-token")["error_login"]
    assert refused.startswith("LoginError") and "invalid" in refused


def test_public_data_download_anonymously_and_as_a_curl_script(archive):
    with archive.run.ctx.catalog.session() as s:
        change_access(s, "01234", "waiver", requested_by=PI, reason="tests: data public now")
    got = archive.astroquery("public")
    manifest = got["manifest"]
    assert manifest and {m["Status"] for m in manifest} == {"COMPLETE"}
    workdir = archive.home / "work-public"
    for m in manifest:
        path = workdir / m["Local Path"]
        assert _sha256(path) == archive.sha256(path.name)
    ((script,),) = [[r["Local Path"] for r in got["curl"]]]
    text = (workdir / script).read_text()
    assert text.startswith("#!/bin/sh") and archive.server.url in text


def _invoke(arch: Archive, body: str | None, **form) -> httpx.Response:
    data = dict(form)
    if body is not None:
        data["request"] = body
    return httpx.post(f"{arch.server.url}/api/v0/invoke", data=data, timeout=30)


@pytest.mark.parametrize(("body", "code", "words"), [
    (None, 400, "request"),
    ("{not json", 400, "not valid JSON"),
    ('["Mast.Caom.Filtered"]', 400, "JSON object"),
    ('{"service": "Mast.Caom.Nothing", "params": {}}', 400, "unknown service"),
    ('{"service": "Mast.Caom.Filtered", "params": {}, "format": "xml"}', 400, "format"),
    ('{"service": "Mast.Name.Lookup", "params": {"input": "M 31"}, "format": "csv"}', 400, "json"),
    ('{"service": "Mast.Caom.Filtered", "params": {"filters": [{"paramName": "colour", "values": ["red"]}]}}',
     200, "no such column"),
    ('{"service": "Mast.Caom.Filtered", "params": {"filters": [{"paramName": "t_min", "values": ["x"]}]}}',
     200, "one range"),
    ('{"service": "Mast.Caom.Filtered", "params": {"filters": [{"paramName": "t_min", '
     '"values": [{"min": 60000, "max": 50000}]}]}}', 200, "above max"),
    ('{"service": "Mast.Caom.Filtered", "params": {"filters": [{"paramName": "proposal_id", "values": ["abc"]}]}}',
     200, "program number"),
    ('{"service": "Mast.Caom.Filtered", "params": {"filters": [{"paramName": "jpegURL", '
     '"values": ["x"]}]}}', 200, "does not search"),
    ('{"service": "Mast.Caom.Filtered", "params": {"filters": []}}', 200, "at least one filter"),
    ('{"service": "Mast.Caom.Cone", "params": {"ra": 10, "dec": 95, "radius": 0.1}}', 200, "dec"),
    ('{"service": "Mast.Caom.Filtered.Position", "params": {"filters": [], "position": "10, 20"}}', 200,
     "position"),
    ('{"service": "Mast.Caom.Products", "params": {"obsid": "jw01234001001_02101_00001_nrca1"}}', 200, "obs_id"),
    ('{"service": "Mast.Name.Lookup", "params": {"format": "json"}}', 200, "params.input"),
    ('{"service": "Mast.Caom.Filtered", "params": {"columns": "obs_id, colour", '
     '"filters": [{"paramName": "obs_collection", "values": ["JWST"]}]}}', 200, "colour"),
])
def test_malformed_requests_get_mast_error_replies(archive, body, code, words):
    answer = _invoke(archive, body)
    assert answer.status_code == code, answer.text
    reply = answer.json()
    assert reply["status"] == "ERROR" and words in reply["msg"], reply
    assert reply["data"] == [] and reply["fields"] == []


def test_csv_and_votable_replies_hold_the_json_reply_rows(archive):
    from astropy.io.votable import parse

    request = {"service": "Mast.Caom.Filtered", "pagesize": 2, "page": 1, "params": {
        "columns": "obsid, obs_id, calib_level, s_ra, t_obs_release, jpegURL",
        "filters": [{"paramName": "proposal_id", "values": ["1234"]}]}}
    reply = _invoke(archive, json.dumps({**request, "format": "json"})).json()
    rows, names = reply["data"], [f["name"] for f in reply["fields"]]
    assert len(rows) == 2 and set(rows[0]) == set(names)
    text = _invoke(archive, json.dumps({**request, "format": "csv"}))
    assert text.status_code == 200 and text.headers["content-type"].startswith("text/csv")
    lines = list(csv.reader(io.StringIO(text.text)))
    assert lines[0] == names and len(lines) == 3
    for line, row in zip(lines[1:], rows, strict=True):
        assert line == ["" if row[n] is None else str(row[n]) for n in names]
    vot = _invoke(archive, json.dumps({**request, "format": "votable"}))
    assert vot.headers["content-type"].startswith("application/x-votable+xml")
    document = parse(io.BytesIO(vot.content))
    table = document.get_first_table()
    assert [f.name for f in table.fields] == names
    assert table.get_field_by_id_or_name("s_ra").unit == "deg"
    assert table.get_field_by_id_or_name("calib_level").datatype == "int"
    for got, row in zip(table.array, rows, strict=True):
        assert str(got["obs_id"]) == row["obs_id"] and int(got["calib_level"]) == row["calib_level"]
        assert float(got["s_ra"]) == pytest.approx(row["s_ra"], abs=1e-9)
    infos = {i.name: i.value for i in document.resources[0].infos}
    assert infos["QUERY_STATUS"] == "OVERFLOW" and infos["rowsFiltered"] == "3"  # a second page follows
    count = _invoke(archive, json.dumps({**request, "format": "csv", "params": {
        **request["params"], "columns": "COUNT_BIG(*)"}}))
    assert count.text.split() == ["Column1", "3"]


def test_reply_shape_paging_columns_and_downloads_by_uri(archive):
    filters = [{"paramName": "proposal_id", "values": ["1234"]}]
    pages = []
    for page in (1, 2):
        reply = _invoke(archive, json.dumps({"service": "Mast.Caom.Filtered", "format": "json", "pagesize": 2,
                                             "page": page, "params": {"columns": "*", "filters": filters}})).json()
        assert reply["status"] == "COMPLETE" and reply["msg"] == ""
        assert reply["paging"] == {"page": page, "pageSize": 2, "pagesFiltered": 2, "rows": len(reply["data"]),
                                   "rowsFiltered": 3, "rowsTotal": 3}
        types = {f["name"]: f["type"] for f in reply["fields"]}
        assert types["obsid"] == "string" and types["calib_level"] == "int" and types["s_ra"] == "float"
        pages.append([r["obs_id"] for r in reply["data"]])
    assert len(pages[0]) == 2 and len(pages[1]) == 1 and not set(pages[0]) & set(pages[1])
    some = _invoke(archive, json.dumps({"service": "Mast.Caom.Filtered", "params": {
        "columns": "obsid, obs_id", "filters": [{"paramName": "obs_id", "values": [], "freeText": "%nrca1"}]}})).json()
    assert [f["name"] for f in some["fields"]] == ["obsid", "obs_id"] and len(some["data"]) == 2
    config = httpx.post(f"{archive.server.url}/portal/Mashup/Mashup.asmx/columnsconfig",
                        data={"colConfigId": "Mast.Caom.Cone"}).json()
    assert config["t_min"]["vot.datatype"] == "double" and config["calib_level"]["vot.datatype"] == "int"
    assert httpx.post(f"{archive.server.url}/portal/Mashup/Mashup.asmx/columnsconfig",
                      data={"colConfigId": "Mast.Unknown"}).json() == {}
    # Download/file: a bad uri is a 400 naming the form; an unknown file a 404
    bad = httpx.get(f"{archive.server.url}/api/v0.1/Download/file", params={"uri": "jw01234_i2d.fits"})
    assert bad.status_code == 400 and "mast:JWST/product/" in bad.json()["detail"]
    missing = httpx.get(f"{archive.server.url}/api/v0.1/Download/file",
                        params={"uri": "mast:JWST/product/jw09999-o001_t001_nircam_clear-f200w_i2d.fits"})
    assert missing.status_code == 404
    # the same token forms as the rest of the API: MAST clients send "Authorization: token <t>"
    who = httpx.get(f"{archive.server.url}/whoami", headers={"Authorization": f"token {archive.tokens[PI]}"})
    assert who.json()["anon"] is False and who.json()["ezid"] == PI
    with archive.run.ctx.catalog.session() as s:
        assert s.scalar(select(Program.pi_user).where(Program.id == "01234")) == PI


def test_every_numeric_and_program_column_is_a_filter(archive):
    # s_ra, s_dec, t_exptime, em_min, em_max are ranges; proposal_pi and obs_title wildcards
    rows = _caom_rows(archive)
    level3 = next(r for r in rows.values() if r.calib_level == 3)

    def found(*filters) -> set[str]:
        reply = _invoke(archive, json.dumps({"service": "Mast.Caom.Filtered", "params": {
            "columns": "obs_id", "filters": list(filters)}})).json()
        assert reply["status"] == "COMPLETE", reply
        return {r["obs_id"] for r in reply["data"]}

    def around(name: str, value: float, width: float) -> dict:
        return {"paramName": name, "values": [{"min": value - width, "max": value + width}]}

    assert found(around("s_ra", level3.s_ra, 1e-6), around("s_dec", level3.s_dec, 1e-6)) == {level3.obs_id}
    assert found(around("s_ra", (level3.s_ra + 10) % 360, 1e-3)) == set()
    assert found(around("em_min", level3.em_min, 1.0), around("em_max", level3.em_max, 1.0)) == set(rows)
    assert found({"paramName": "em_min", "values": [{"min": level3.em_max + 1}]}) == set()
    exposure = min((r for r in rows.values() if r.calib_level != 3), key=lambda r: r.obs_id)
    assert exposure.obs_id in found(around("t_exptime", exposure.t_exptime, 0.01))
    assert found({"paramName": "t_exptime", "values": [{"min": level3.t_exptime * 10 + 1}]}) == set()
    assert found({"paramName": "proposal_pi", "values": ["Ada*"]}) == set(rows)
    assert found({"paramName": "obs_title", "values": ["*imaging*"]}) == set(rows)
    assert found({"paramName": "proposal_pi", "values": ["Grace*"]}) == set()
    bad = _invoke(archive, json.dumps({"service": "Mast.Caom.Filtered", "params": {
        "columns": "obs_id", "filters": [{"paramName": "em_min", "values": [{"min": "blue"}]}]}})).json()
    assert bad["status"] == "ERROR" and "em_min" in bad["msg"], bad
