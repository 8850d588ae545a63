"""Search results a person can take away: every search page as CSV, ECSV and VOTable (read
back with the csv module, astropy.table and astropy.io.votable, the same rows as the JSON),
every page of a search in one file (page=all: the rows of all the JSON pages, read a few at a
time; refused beyond the row cap, for JSON and for a bad page),
bundles as zip, tar, tar.gz and curl (unpacked and checked against SHA256SUMS; the size cap
refused before anything is sent), and every URL the API answers built from the address the
request reached (a real server on a free port, and the curl script run against it).

Uses the small archived programs of tests/test_archive.py (its ``archive`` fixture)."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
import socket
import subprocess
import tarfile
import threading
import time
import zipfile
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import numpy as np
import pytest
from astropy.io import votable
from astropy.table import Table
from fastapi.testclient import TestClient

from services.archive import exports
from services.archive.app import create_app
from services.archive.exports import negotiate
from services.archive.schemas import ObservationRow, ProductRow
from tests import test_archive
from tests.test_archive import ADA, PI

archive = test_archive.archive  # the fixture: two small archived programs, on SQLite and PostgreSQL

SEARCHES = [
    ("/observations", {"include_planned": "true"}),
    ("/products", {"program": "1234,2345", "pagesize": "7", "page": "2"}),
    ("/observations/jw01234001/products", {"include_superseded": "true"}),
    ("/references", {}),
    ("/wavefront", {}),
    ("/events", {"pagesize": "5"}),
]


@pytest.fixture(scope="module")
def stocked(archive):
    """The archive, with two reference files and two wavefront OPD files in its catalog (the
    programs' fixture delivers none): rows with a mapping, a list and nulls to export."""
    from shared.catalog import ReferenceFile, WavefrontOpd

    now = datetime.now(UTC)
    with archive.ctx.catalog.session() as s:
        s.add_all([
            ReferenceFile(filename="jwst_nircam_dark_nrca1_sim.fits", reftype="DARK", instrument="NIRCAM",
                          selectors={"DETECTOR": "NRCA1", "READPATT": "RAPID|BRIGHT1"}, useafter=now,
                          uri="file:///nowhere/dark.fits", sha256="a" * 64, size=1234, pedigree="DUMMY",
                          description="a dark, \"quoted\", with commas", delivered_at=now),
            ReferenceFile(filename="jwst_nircam_gain_sim.fits", reftype="GAIN", instrument="NIRCAM", selectors={},
                          useafter=now, uri="file:///nowhere/gain.fits", sha256="b" * 64, size=99,
                          pedigree="GROUND", description="", delivered_at=now),
            *(WavefrontOpd(filename=f"R2025030{d}01-NRCA3_FP1-1.fits", date_obs=now - timedelta(days=d),
                           aperture="NRCA3_FP1", rms_nm=60.5 + d, uri=f"file:///nowhere/{d}.fits", sha256="c" * 64,
                           size=5000 + d, archived_at=now) for d in (1, 2)),
        ])
    return archive


def _json_cells(row: dict) -> dict:
    """A JSON row as the text each export writes: lists ';'-joined, mappings as JSON."""
    out = {}
    for k, v in row.items():
        if isinstance(v, list) and all(not isinstance(x, dict | list) for x in v):
            v = ";".join(str(x) for x in v)
        elif isinstance(v, dict | list):
            v = json.dumps(v, separators=(",", ":"), sort_keys=True)
        out[k] = v
    return out


def _same(value, expected) -> bool:
    if expected is None or expected == "":  # ECSV reads an empty string back as masked, CSV a null as ""
        return value is None or value is np.ma.masked or value == ""
    if isinstance(expected, bool):
        return bool(value) == expected if not isinstance(value, str) else value == str(expected).lower()
    if isinstance(expected, float):
        return abs(float(value) - expected) <= 1e-9 * max(1.0, abs(expected))
    if isinstance(expected, int):
        return int(value) == expected
    return str(value) == str(expected)


def _check_rows(rows: list[dict], expected: list[dict], where: str) -> None:
    assert len(rows) == len(expected), where
    for got, want in zip(rows, expected, strict=True):
        assert list(got) == list(want), where
        for key, value in _json_cells(want).items():
            assert _same(got[key], value), (where, key, got[key], value)


def _table_rows(table) -> list[dict]:
    return [{name: (None if np.ma.is_masked(row[name]) else row[name].item() if hasattr(row[name], "item")
                    else row[name]) for name in table.colnames} for row in table]


@pytest.mark.parametrize("path,params", SEARCHES)
def test_every_search_exports_the_same_rows_in_each_format(stocked, path, params):
    archive = stocked
    client = archive.client
    page = client.get(path, params=params, headers=archive.auth(PI))
    assert page.status_code == 200, page.text
    body = page.json()
    expected = body["rows"]
    assert expected, f"{path} has rows to export"
    for fmt in ("csv", "ecsv", "votable"):
        r = client.get(path, params={**params, "format": fmt}, headers=archive.auth(PI))
        assert r.status_code == 200, (fmt, r.text)
        assert r.headers["X-Total-Count"] == str(body["total"]) and 'rel="first"' in r.headers["Link"]
        assert "attachment" in r.headers["Content-Disposition"]
        if fmt == "csv":
            assert r.headers["content-type"].startswith("text/csv")
            rows = list(csv.DictReader(io.StringIO(r.text)))
        elif fmt == "ecsv":
            table = Table.read(r.text, format="ascii.ecsv")
            assert table.meta["total"] == body["total"] and table.meta["page"] == body["page"]
            rows = _table_rows(table)
        else:
            assert r.headers["content-type"].startswith("application/x-votable+xml")
            parsed = votable.parse(io.BytesIO(r.content))
            infos = {i.name: i.value for i in parsed.resources[0].infos}
            more = body["page"] * body["pagesize"] < body["total"]
            assert infos["QUERY_STATUS"] == ("OVERFLOW" if more else "OK") and infos["total"] == str(body["total"])
            rows = _table_rows(parsed.get_first_table().to_table())
        _check_rows(rows, expected, f"{path} {fmt}")


def test_columns_carry_units_and_descriptions(archive):
    r = archive.client.get("/observations", params={"format": "votable"})
    fields = {f.name: f for f in votable.parse(io.BytesIO(r.content)).get_first_table().fields}
    assert str(fields["s_ra"].unit) == "deg" and fields["s_ra"].ucd == "pos.eq.ra"
    assert str(fields["t_min"].unit) == "d" and "MJD" in fields["t_min"].description
    assert fields["obs_id"].description == ObservationRow.model_fields["obs_id"].description
    ecsv = Table.read(archive.client.get("/products", params={"format": "ecsv"}).text, format="ascii.ecsv")
    assert str(ecsv["size"].unit) == "byte"
    assert ecsv["productType"].description == ProductRow.model_fields["productType"].description
    assert ecsv["archived_date"].dtype.kind == "U"  # ISO 8601 text, as in the JSON
    vo = votable.parse(io.BytesIO(archive.client.get("/products", params={"format": "votable"}).content))
    vfields = {f.name: f for f in vo.get_first_table().fields}
    assert vfields["archived_date"].xtype == "timestamp" and vfields["is_current"].datatype == "boolean"


def test_accept_header_chooses_the_format_and_format_wins(archive):
    client = archive.client
    r = client.get("/products", headers={"Accept": "text/csv"})
    assert r.headers["content-type"].startswith("text/csv") and r.headers["Vary"] == "Accept"
    r = client.get("/products", headers={"Accept": "application/x-votable+xml;q=0.5, text/x-ecsv;q=0.9"})
    assert r.headers["content-type"].startswith("text/x-ecsv")
    r = client.get("/products", params={"format": "json"}, headers={"Accept": "text/csv"})
    assert r.headers["content-type"].startswith("application/json")
    assert client.get("/products", headers={"Accept": "text/html,*/*;q=0.8"}).json()["rows"]  # browsers: JSON
    assert negotiate("VOT", None) == "votable" and negotiate(None, "application/xml") == "votable"


def test_unknown_format_is_a_400_naming_the_valid_ones(archive):
    for path, _ in SEARCHES:
        r = archive.client.get(path, params={"format": "xlsx"})
        assert r.status_code == 400, path
        assert "json, csv, ecsv, votable" in r.json()["detail"] and "xlsx" in r.json()["detail"]


def test_link_headers_walk_the_pages(archive):
    client = archive.client
    r = client.get("/products", params={"program": "1234", "pagesize": 3, "page": 2, "format": "csv"},
                   headers=archive.auth(PI))
    total = int(r.headers["X-Total-Count"])
    links = {}
    for part in r.headers["Link"].split(", "):
        url, rel = part.split("; ")
        links[rel.split('"')[1]] = url.strip("<>")
    assert set(links) == {"first", "prev", "next", "last"}
    nxt = urlsplit(links["next"])
    assert f"{nxt.scheme}://{nxt.netloc}" == archive.settings.archive_base_url.split("/api")[0]
    assert nxt.path == "/api/products"  # the configured public base URL, path included
    query = parse_qs(nxt.query)
    assert query["page"] == ["3"] and query["format"] == ["csv"] and query["program"] == ["1234"]
    assert parse_qs(urlsplit(links["last"]).query)["page"] == [str(-(-total // 3))]
    # following "next" gives the next rows
    again = client.get(nxt.path.removeprefix("/api"), params=query, headers=archive.auth(PI))
    assert again.status_code == 200 and again.text != r.text


# ------------------------------------------------------------------ every page in one file


ALL_SEARCHES = [
    ("/products", {"program": "1234,2345"}),
    ("/observations", {"include_planned": "true"}),
    ("/observations/jw01234001/products", {"include_superseded": "true"}),
    ("/references", {}),
    ("/wavefront", {}),
    ("/events", {}),
]
CHUNK = 3  # rows read at a time in these tests: every search here is exported in several reads


def _every_page(client, path: str, params: dict, headers: dict, pagesize: int = 2) -> tuple[int, list[dict]]:
    """Every row of the search, fetched as JSON pages of ``pagesize``."""
    rows, page = [], 1
    while True:
        body = client.get(path, params={**params, "page": page, "pagesize": pagesize}, headers=headers).json()
        rows += body["rows"]
        if page * pagesize >= body["total"]:
            return body["total"], rows
        page += 1


def _exported_rows(r, fmt: str, total: int) -> list[dict]:
    """The rows of an export of every page, checked to be ``total`` once read back with astropy."""
    if fmt == "csv":
        assert r.headers["content-type"].startswith("text/csv")
        assert len(Table.read(r.text, format="ascii.csv", guess=False, fast_reader=False)) == total
        return list(csv.DictReader(io.StringIO(r.text)))
    if fmt == "ecsv":
        table = Table.read(r.text, format="ascii.ecsv")
        assert len(table) == total and table.meta["total"] == total and table.meta["page"] == "all"
        assert "page=all" in table.meta["query"]
        return _table_rows(table)
    assert r.headers["content-type"].startswith("application/x-votable+xml")
    parsed = votable.parse(io.BytesIO(r.content))
    infos = {i.name: i.value for i in parsed.resources[0].infos}
    assert infos["QUERY_STATUS"] == "OK" and infos["total"] == str(total) and infos["page"] == "all"
    table = parsed.get_first_table().to_table()
    assert len(table) == total
    return _table_rows(table)


@pytest.mark.parametrize("path,params", ALL_SEARCHES)
def test_page_all_exports_every_row_of_the_search_in_one_file(stocked, monkeypatch, path, params):
    monkeypatch.setattr(exports, "CHUNK_ROWS", CHUNK)
    client, headers = stocked.client, stocked.auth(PI)
    total, expected = _every_page(client, path, params, headers)
    assert total >= 2, f"{path}: rows to export"
    for fmt in ("csv", "ecsv", "votable"):
        r = client.get(path, params={**params, "page": "all", "format": fmt}, headers=headers)
        assert r.status_code == 200, (fmt, r.text)
        assert r.headers["X-Total-Count"] == str(total) and "Link" not in r.headers
        suffix = {"csv": "csv", "ecsv": "ecsv", "votable": "xml"}[fmt]
        assert r.headers["Content-Disposition"].endswith(f'_all.{suffix}"')
        assert "_p1." not in r.headers["Content-Disposition"]
        _check_rows(_exported_rows(r, fmt, total), expected, f"{path} page=all {fmt}")
    # chosen by the Accept header as well
    r = client.get(path, params={**params, "page": "ALL"}, headers={**headers, "Accept": "text/x-ecsv"})
    assert r.status_code == 200 and len(Table.read(r.text, format="ascii.ecsv")) == total


def test_page_all_reads_the_search_a_chunk_at_a_time(archive, monkeypatch):
    """The search runs once for the count, then once per chunk (the file is written as they
    come); none reads more than a chunk."""
    from services.archive.routers import products

    reads = []
    real = products.search_products

    def counted(session, criteria, page, pagesize, now):
        total, rows = real(session, criteria, page, pagesize, now)
        reads.append((page, pagesize, len(rows)))
        return total, rows

    monkeypatch.setattr(exports, "CHUNK_ROWS", CHUNK)
    monkeypatch.setattr(products, "search_products", counted)
    r = archive.client.get("/products", params={"page": "all", "format": "csv"}, headers=archive.auth(PI))
    assert r.status_code == 200
    total = int(r.headers["X-Total-Count"])
    assert total > 2 * CHUNK and len(list(csv.DictReader(io.StringIO(r.text)))) == total
    assert reads[0] == (1, 1, 1)  # the count, before anything is sent
    chunks = reads[1:]
    assert [page for page, _, _ in chunks] == list(range(1, len(chunks) + 1))
    assert {size for _, size, _ in chunks} == {CHUNK}
    assert sum(n for _, _, n in chunks) == total and len(chunks) in (-(-total // CHUNK), -(-total // CHUNK) + 1)


def test_page_all_beyond_the_cap_is_refused_naming_cap_and_total(archive):
    params = {"program": "1234", "page": "all"}
    total = int(archive.client.get("/products", params={"program": "1234"}, headers=archive.auth(PI))
                .headers["X-Total-Count"])
    cap = total - 1
    settings = archive.settings.model_copy(update={"export_max_rows": cap})
    with TestClient(create_app(settings)) as client:
        for fmt in ("csv", "ecsv", "votable"):
            r = client.get("/products", params={**params, "format": fmt}, headers=archive.auth(PI))
            assert r.status_code == 400 and r.headers["content-type"].startswith("application/json")
            detail = r.json()["detail"]
            assert f"matches {total} rows" in detail and f"the {cap} one export" in detail
            assert "DMS_EXPORT_MAX_ROWS" in detail
        r = client.get("/products", params={**params, "program": "1234,2345", "format": "csv"},
                       headers=archive.auth(PI))
        assert r.status_code == 400  # more rows still
        r = client.get("/products", params={**params, "format": "csv"}, headers=archive.auth(PI))
        assert r.status_code == 400
    settings = archive.settings.model_copy(update={"export_max_rows": total})
    with TestClient(create_app(settings)) as client:  # at the cap: given whole
        r = client.get("/products", params={**params, "format": "csv"}, headers=archive.auth(PI))
        assert r.status_code == 200 and len(list(csv.DictReader(io.StringIO(r.text)))) == total


def test_page_all_of_a_search_matching_nothing_is_an_empty_file(archive):
    for fmt in ("csv", "ecsv", "votable"):
        r = archive.client.get("/products", params={"program": "9999", "page": "all", "format": fmt})
        assert r.status_code == 200 and r.headers["X-Total-Count"] == "0"
        assert _exported_rows(r, fmt, 0) == []
    header = archive.client.get("/products", params={"program": "9999", "page": "all", "format": "csv"}).text
    assert header.splitlines() == [",".join(ProductRow.model_fields)]


def test_default_export_cap():
    from shared.config import Settings

    assert Settings(_env_file=None).export_max_rows == 100_000


@pytest.mark.parametrize("page", ["0", "-1", "x", "1.5", "al", "1000001", "", "all pages"])
def test_a_bad_page_is_a_400_naming_the_valid_values(archive, page):
    for path in ("/products", "/observations", "/events"):
        r = archive.client.get(path, params={"page": page, "format": "csv"})
        assert r.status_code == 400, (path, page, r.text)
        assert "query parameter page" in r.json()["detail"] and "'all'" in r.json()["detail"]


def test_page_all_in_json_is_refused_pointing_to_the_file_formats(archive):
    for params, headers in (({"page": "all"}, {}), ({"page": "all", "format": "json"}, {"Accept": "text/csv"})):
        r = archive.client.get("/products", params=params, headers=headers)
        assert r.status_code == 400
        assert "csv, ecsv or votable" in r.json()["detail"] and "pagesize" in r.json()["detail"]
    assert archive.client.get("/products", params={"page": "2", "pagesize": 1}).json()["page"] == 2


# ------------------------------------------------------------------ bundles


def _check_sums(files: dict[str, bytes]) -> None:
    sums = files.pop("SHA256SUMS").decode().splitlines()
    assert len(sums) == len(files)
    for line in sums:
        digest, name = line.split("  ", 1)
        assert hashlib.sha256(files[name]).hexdigest() == digest, name


def test_bundles_unpack_and_match_their_sha256sums(archive):
    names = [archive.uncal_b, archive.cal_a[0], archive.uncal_a[0]]
    for fmt in ("zip", "tar", "tar.gz"):
        r = archive.client.post("/bundles", json={"filenames": names, "format": fmt}, headers=archive.auth(ADA))
        assert r.status_code == 200, (fmt, r.text)
        assert r.headers["Content-Disposition"].endswith(f'.{fmt}"')
        if fmt == "zip":
            with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
                files = {n: zf.read(n) for n in zf.namelist()}
        else:
            assert (r.content[:2] == b"\x1f\x8b") == (fmt == "tar.gz")  # gzip magic
            with tarfile.open(fileobj=io.BytesIO(r.content), mode="r:*") as tf:
                files = {m.name: tf.extractfile(m).read() for m in tf.getmembers()}
        assert f"JWST/jw02345001/{archive.uncal_b}" in files
        _check_sums(files)
        assert len(files) == 3


def test_bundle_beyond_the_cap_is_refused_before_streaming(archive):
    names = [archive.uncal_b, archive.uncal_a[0]]
    sizes = []
    for n in names:
        head = archive.client.head(f"/download/{n}", headers=archive.auth(ADA))
        sizes.append(int(head.headers["Content-Length"]))
    cap = sum(sizes) - 1
    settings = archive.settings.model_copy(update={"bundle_max_bytes": cap})
    with TestClient(create_app(settings)) as client:
        for fmt in ("zip", "tar", "tar.gz"):
            r = client.post("/bundles", json={"filenames": names, "format": fmt}, headers=archive.auth(ADA))
            assert r.status_code == 413 and r.headers["content-type"].startswith("application/json")
            detail = r.json()["detail"]
            assert f"({sum(sizes)} bytes)" in detail and f"({cap} bytes)" in detail and "curl" in detail
        r = client.post("/bundles", json={"filenames": names[:1], "format": "tar"}, headers=archive.auth(ADA))
        assert r.status_code == 200  # under the cap
        r = client.post("/bundles", json={"filenames": names, "format": "curl"})
        assert r.status_code == 200 and r.text.startswith("#!/bin/sh")  # a script has no cap


def test_default_cap_is_the_mast_basket():
    from shared.config import Settings

    assert Settings(_env_file=None).bundle_max_bytes == 5_120_000_000


# ------------------------------------------------------------------ URLs


def test_urls_follow_the_request_without_a_public_base_url(archive):
    settings = archive.settings.model_copy(update={"archive_base_url": None})
    with TestClient(create_app(settings), base_url="http://archive.local:8123") as client:
        [row] = client.get("/observations", params={"program": "1234"}).json()["rows"]
        assert row["jpegURL"].startswith("http://archive.local:8123/previews/")
        assert row["dataURL"].startswith("http://archive.local:8123/download/")
        ref = client.get("/references", params={"pagesize": 1}).json()["rows"]
        assert all(r["dataURL"].startswith("http://archive.local:8123/references/") for r in ref)
        script = client.post("/bundles", json={"filenames": [archive.uncal_b], "format": "curl"}).text
        assert f"fetch http://archive.local:8123/download/{archive.uncal_b} " in script
        assert "<http://archive.local:8123/products?" in client.get("/products").headers["Link"]
        # a proxy's headers are ignored unless the setting says there is one
        r = client.get("/observations", params={"program": "1234"},
                       headers={"X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example"})
        assert r.json()["rows"][0]["dataURL"].startswith("http://archive.local:8123/")
    proxied = settings.model_copy(update={"archive_behind_proxy": True})
    with TestClient(create_app(proxied), base_url="http://10.0.0.5:8000") as client:
        headers = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "archive.example.org, 10.0.0.1",
                   "X-Forwarded-Prefix": "/jwst"}
        [row] = client.get("/observations", params={"program": "1234"}, headers=headers).json()["rows"]
        assert row["dataURL"].startswith("https://archive.example.org/jwst/download/")
        r = client.get("/products", headers={"X-Forwarded-Proto": "https", "X-Forwarded-Host": "a.example",
                                             "X-Forwarded-Port": "8443"})
        assert "<https://a.example:8443/products?" in r.headers["Link"]
        r = client.get("/observations", headers={"X-Forwarded-Proto": "gopher"})
        assert r.status_code == 400 and "X-Forwarded-Proto" in r.json()["detail"]
        r = client.get("/observations", headers={"X-Forwarded-Host": "bad host/x"})
        assert r.status_code == 400 and "host" in r.json()["detail"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_script_downloads_from_the_port_the_server_listens_on(archive, tmp_path):
    import uvicorn

    settings = archive.settings.model_copy(update={"archive_base_url": None})  # nothing says which port
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
            time.sleep(0.05)
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=10) as http:
            [row] = http.get("/observations", params={"program": "1234"}).json()["rows"]
            assert row["dataURL"].startswith(f"{base}/download/")
            names = [archive.uncal_b, archive.uncal_a[1]]
            script = http.post("/bundles", json={"filenames": names, "format": "curl"}).text
        assert f"{base}/download/" in script
        (tmp_path / "get.sh").write_text(script)
        env = {"PATH": "/usr/bin:/bin", "DMS_TOKEN": archive.tokens[ADA]}
        proc = subprocess.run(["sh", "get.sh"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "all 2 file(s) downloaded and verified" in proc.stdout
        got = tmp_path / "JWST" / "jw02345001" / archive.uncal_b
        assert hashlib.sha256(got.read_bytes()).hexdigest() == archive.sha256(archive.uncal_b)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_notification_links_use_the_configured_or_listening_address():
    from shared.config import Settings

    assert Settings(_env_file=None, archive_port=8123).archive_link_base == "http://127.0.0.1:8123"
    assert Settings(_env_file=None, archive_base_url="https://a.example/api/").archive_link_base == \
        "https://a.example/api"
    assert Settings(_env_file=None, archive_base_url="").archive_base_url is None  # empty: unset
    with pytest.raises(ValueError, match="no http"):
        Settings(_env_file=None, archive_base_url="archive.example.org:8000")


def test_the_simulated_example_resolves_by_its_alias(archive):
    """examples/nircam_imaging.yaml gives its field an alias; simulated, ingested and
    archived, the alias resolves to the field."""
    r = archive.client.get("/resolve", params={"name": "hubble ultra-deep field"})
    assert r.status_code == 200, r.text
    [row] = r.json()["resolvedCoordinate"]
    assert row["canonicalName"] == "DEMO-FIELD-1" and row["matchedAlias"] == "Hubble Ultra Deep Field"
    assert row["programs"] == ["01234"] and (row["ra"], row["decl"]) == (53.1625, -27.7914)
