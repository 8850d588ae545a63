"""DataLink 1.1 (/vo/datalink) against the live archive of the VO tests (tests/vo_archive.py),
read by pyvo as a user would: the links of a Level-3 row and of an exposure row, of a product
URI, several IDs at once; exclusive access (the PI downloads through ``access_url`` and gets
the catalogued sha256, a stranger and an anonymous caller get error rows and 401/403 on the
raw download); an operator's reads of exclusive data (links authorized, downloads audited);
an embargo (no access_url for anyone but operators, the PI included, downloads refused);
unknown IDs (NotFoundFault rows) and bad requests (400, a VOTable error);
VOSI capabilities, which let pyvo's AuthSession send the token cookie.

The program stays under exclusive access: the one change of the shared catalog's access
state, the embargo test's, is lifted again before that test ends (embargo and lift move no
release date). The public case is the program's association report (public from the start).
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from urllib.parse import quote

import pytest
import requests
from astropy.io.votable import parse as parse_votable
from pyvo.auth import AuthSession
from pyvo.dal import DALQueryError, DALServiceError, TAPResults
from pyvo.dal.adhoc import DatalinkResults, DatalinkService
from pyvo.io import vosi
from pyvo.utils import vocabularies
from sqlalchemy import select, text

from services.archive.vo.datalink import MAX_IDS
from services.archive.vo.votable import obscore_fields, result_votable
from shared.catalog import Artifact, ArtifactKind, CaomObservation, Product
from shared.catalog.obscore import ACCESS_FORMAT, absolute_url, publisher_did
from tests.vo_archive import OPERATOR, PI, STRANGER

PRODUCT = "mast:JWST/product/"


@pytest.fixture(scope="module", autouse=True)
def datalink_vocabulary():
    """pyvo's ``bysemantics`` reads the datalink/core vocabulary from www.ivoa.net (narrower
    terms); the tests run offline, so it reads the copy pyvo ships with its own tests."""
    copy = resources.files("pyvo.dal.tests").joinpath("data/datalink/datalink.desise")
    if not copy.is_file():
        pytest.skip("pyvo's copy of the datalink/core vocabulary is not installed")
    real = vocabularies.download_file
    vocabularies.download_file = lambda *args, **kwargs: str(copy)
    vocabularies.get_vocabulary.cache_clear()
    yield
    vocabularies.download_file = real
    vocabularies.get_vocabulary.cache_clear()


@pytest.fixture(scope="module")
def rows(vo_archive) -> dict[str, CaomObservation]:
    with vo_archive.run.ctx.catalog.session() as s:
        return {r.obs_id: r for r in s.scalars(select(CaomObservation))}


@pytest.fixture(scope="module")
def level3(rows) -> CaomObservation:
    return next(r for r in rows.values() if r.kind == "level3")


@pytest.fixture(scope="module")
def exposures(rows) -> list[CaomObservation]:
    return sorted((r for r in rows.values() if r.kind == "exposure"), key=lambda r: r.obs_id)


def _service(arch, user: str | None = None) -> DatalinkService:
    return DatalinkService(arch.url + "/vo/datalink", session=arch.session(user))


def _artifact(arch, filename: str, kind: str = ArtifactKind.DATA) -> Artifact:
    with arch.run.ctx.catalog.session() as s:
        art = s.scalar(select(Artifact).join(Product, Product.id == Artifact.product_id).where(
            Product.filename == filename, Product.is_current, Artifact.kind == kind))
        s.expunge(art)
        return art


def _sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def _by(links, semantics: str) -> list:
    return list(links.bysemantics(semantics, include_narrower=False))


def test_links_of_a_level3_row(vo_archive, level3, exposures):
    did = publisher_did(level3.obs_id)
    links = _service(vo_archive).search(id=did)
    assert {r.id for r in links} == {did}
    assert {"content_qualifier", "local_semantics", "link_auth", "link_authorized"} <= set(links.fieldnames)

    this = list(links.bysemantics("#this"))
    assert [r["local_semantics"] for r in this] == ["i2d"]
    i2d = this[0]
    assert i2d.description.startswith(f"I2D file {level3.top_filename}")
    assert i2d.content_type == "application/fits" and i2d["content_qualifier"] == "#image"
    assert i2d.content_length == _artifact(vo_archive, level3.top_filename).size

    # anonymous: metadata yes, data no
    assert not i2d["access_url"]
    assert i2d.error_message.startswith(f"DefaultFault: {level3.top_filename} is under exclusive access "
                                        "for program 01234 until ")
    assert "only its PI and authorized users may read it: send the token of one of them" in i2d.error_message
    assert i2d["link_auth"] == "true" and not i2d["link_authorized"]
    with pytest.raises(DALServiceError, match="exclusive access"):
        i2d.getdataurl()

    # the members: each one's own DataLink document, readable by anyone
    progenitors = _by(links, "#progenitor")
    assert len(progenitors) == len(exposures) == 2
    for rec, member in zip(progenitors, exposures, strict=True):
        assert rec.access_url == (f"{vo_archive.url}/vo/datalink?ID="
                                  f"{quote(publisher_did(member.obs_id), safe='')}")
        assert rec.content_type == ACCESS_FORMAT and not rec.error_message and rec["link_authorized"]
        assert member.obs_id in rec.description

    auxiliary = {r["local_semantics"]: r for r in _by(links, "#auxiliary")}
    assert {"asn", "cat", "pool"} <= set(auxiliary)
    assert "_image3_" in auxiliary["asn"].description
    assert auxiliary["asn"].content_type == "application/json"
    assert auxiliary["pool"].content_type == "text/csv"

    # previews and thumbnails (pyvo counts a thumbnail as a preview: a narrower term)
    previews = _by(links, "#preview")
    thumbnails = _by(links, "#thumbnail")
    assert previews and thumbnails
    assert any(level3.top_filename in r.description for r in previews)
    assert {r.content_type for r in previews} == {"image/png"}
    assert {r.content_type for r in thumbnails} == {"image/jpeg"}
    assert len(list(links.bysemantics("#preview"))) == len(previews) + len(thumbnails)
    assert not _by(links, "#derivation")


def test_pi_downloads_through_access_url_and_others_are_refused(vo_archive, level3):
    did = publisher_did(level3.obs_id)
    pi = vo_archive.session(PI)
    links = _service(vo_archive, PI).search(id=did)
    assert not [r for r in links if r.error_message]
    assert all(r["link_authorized"] for r in links)

    i2d = next(links.bysemantics("#this"))
    url = i2d.getdataurl()
    assert url == f"{vo_archive.url}/download/{level3.top_filename}"
    got = pi.get(url, timeout=60)
    assert got.status_code == 200
    assert _sha256(got.content) == _artifact(vo_archive, level3.top_filename).sha256 == got.headers["X-Checksum-SHA256"]
    assert len(got.content) == i2d.content_length
    assert _sha256(links.getdataset().read()) == _sha256(got.content)  # pyvo's own: the first #this

    preview = next(r for r in _by(links, "#preview") if level3.top_filename in r.description)
    shown = pi.get(preview.getdataurl(), timeout=60)
    assert shown.status_code == 200 and shown.headers["content-type"] == "image/png"
    assert _sha256(shown.content) == _artifact(vo_archive, level3.top_filename, ArtifactKind.PREVIEW).sha256

    # every file link of the PI's document, fetched raw as a stranger and anonymously
    files = [r for r in links if r.content_type != ACCESS_FORMAT]
    for rec in files[:4]:
        assert vo_archive.session(STRANGER).get(rec.access_url, timeout=60).status_code == 403
        assert requests.get(rec.access_url, timeout=60).status_code == 401


def test_a_stranger_gets_error_rows(vo_archive, level3):
    links = _service(vo_archive, STRANGER).search(id=publisher_did(level3.obs_id))
    files = [r for r in links if r.content_type != ACCESS_FORMAT]
    assert files
    for rec in files:
        assert not rec["access_url"] and rec["link_auth"] == "true" and not rec["link_authorized"]
        assert "is under exclusive access for program 01234 until" in rec.error_message
        assert f"{STRANGER} is neither its PI nor an authorized user" in rec.error_message
    for rec in (r for r in links if r.content_type == ACCESS_FORMAT):
        assert rec.access_url and not rec.error_message


def test_links_of_an_exposure_row(vo_archive, level3, exposures):
    exposure = exposures[0]
    did = publisher_did(exposure.obs_id)
    links = _service(vo_archive, PI).search(id=did)
    this = {r["local_semantics"] for r in links.bysemantics("#this")}
    assert {"rate", "cal"} <= this and "uncal" not in this
    assert {r["local_semantics"] for r in _by(links, "#progenitor")} == {"uncal"}
    assert all(r.content_type == "application/fits" for r in _by(links, "#progenitor"))
    derivation = _by(links, "#derivation")
    assert [r.access_url for r in derivation] == [
        f"{vo_archive.url}/vo/datalink?ID={quote(publisher_did(level3.obs_id), safe='')}"]
    auxiliary = {r["local_semantics"] for r in _by(links, "#auxiliary")}
    assert "asn" in auxiliary and any(s.startswith("gs-") for s in auxiliary)

    cal = next(r for r in links.bysemantics("#this") if r["local_semantics"] == "cal")
    got = vo_archive.session(PI).get(cal.getdataurl(), timeout=60)
    assert _sha256(got.content) == _artifact(vo_archive, f"{exposure.obs_id}_cal.fits").sha256

    # following a Level-3 row's #progenitor link gives this document
    level3_links = _service(vo_archive).search(id=publisher_did(level3.obs_id))
    member = next(r for r in _by(level3_links, "#progenitor") if exposure.obs_id in r.description)
    followed = DatalinkResults.from_result_url(member.access_url, session=vo_archive.session(PI))
    assert [r.id for r in followed][0] == did
    assert sorted((r.semantics, r.access_url) for r in followed) == sorted((r.semantics, r.access_url) for r in links)


def test_pyvo_follows_obscore_rows_to_their_datalinks(vo_archive, level3, rows):
    """ObsCore rows from the ``ivoa.obscore`` view, as a TAP service would return them
    (access_format: the DataLink format): pyvo's iter_datalinks and getdatalink follow them."""
    fields = obscore_fields()
    with vo_archive.run.ctx.catalog.engine.connect() as conn:
        found = conn.execute(text("SELECT * FROM ivoa.obscore WHERE proposal_id = '01234' ORDER BY obs_id")).all()
    assert {r.obs_id for r in found} == set(rows)
    table = [tuple(absolute_url(v, vo_archive.url) if f.name == "access_url" else v
                   for f, v in zip(fields, r, strict=True)) for r in found]
    votable = parse_votable(io.BytesIO(result_votable(fields, table)))
    results = TAPResults(votable, session=vo_archive.session(PI))
    assert set(results["access_format"]) == {ACCESS_FORMAT}

    followed = list(results.iter_datalinks())
    assert len(followed) == len(rows)
    for links in followed:
        did = links.original_row["obs_publisher_did"]
        assert {r.id for r in links} == {did}
        assert list(links.bysemantics("#this"))

    record = next(r for r in results if r["obs_id"] == level3.obs_id)
    links = record.getdatalink()  # with the record's session: the PI's
    url = next(links.bysemantics("#this")).getdataurl()
    got = vo_archive.session(PI).get(url, timeout=60)
    assert _sha256(got.content) == _artifact(vo_archive, level3.top_filename).sha256


def test_product_uris_repeated_and_unknown_ids(vo_archive, level3, exposures):
    uri = PRODUCT + level3.top_filename
    row = publisher_did(exposures[1].obs_id)
    unknown = publisher_did("jw09999-o001_t001_nircam_clear-f200w")
    ids = [uri, row, uri, unknown, "ivo://elsewhere/obs?x", PRODUCT + "jw09999001001_01101_00001_nrca1_cal.fits"]
    links = _service(vo_archive, PI).search(id=ids)
    order = list(dict.fromkeys(r.id for r in links))
    assert order == [uri, row, unknown, "ivo://elsewhere/obs?x", ids[-1]]  # each once, in the order given
    seen = [r.id for r in links]
    assert seen == sorted(seen, key=order.index)  # an ID's links are consecutive

    file_links = [r for r in links if r.id == uri]
    assert [r.semantics for r in file_links] == ["#this", "#preview", "#thumbnail"]
    assert file_links[0].access_url == f"{vo_archive.url}/download/{level3.top_filename}"
    assert file_links[0]["local_semantics"] == "i2d"

    errors = {r.id: r.error_message for r in links if r.id not in (uri, row)}
    assert all(m.startswith("NotFoundFault: ") for m in errors.values())
    assert "jw09999-o001_t001_nircam_clear-f200w" in errors[unknown]
    assert "obs_publisher_did" in errors["ivo://elsewhere/obs?x"]

    # odd identifiers are unknown ones, not server errors
    odd = [PRODUCT + "../../etc/passwd", PRODUCT, publisher_did("jw01234\u00e9\u2603"), "ivo://jwst-dms/jwst?",
           "x" * 1000]
    answered = {r.id: r.error_message for r in _service(vo_archive).search(id=odd)}
    assert set(answered) == set(odd) and all(m.startswith("NotFoundFault: ") for m in answered.values())

    # the same as a POST, form-encoded (how pyvo asks for many IDs), and a lower-case name
    posted = requests.post(vo_archive.url + "/vo/datalink", data=[("ID", uri), ("id", row)], timeout=60)
    assert posted.status_code == 200 and posted.headers["content-type"].startswith(ACCESS_FORMAT)
    table = parse_votable(io.BytesIO(posted.content)).get_first_table().to_table()
    assert list(dict.fromkeys(table["ID"])) == [uri, row]


def test_a_public_file_is_linked_to_anyone(vo_archive):
    with vo_archive.run.ctx.catalog.session() as s:
        report = s.scalar(select(Product.filename).where(Product.product_type == "INFO", Product.is_current))
    links = _service(vo_archive).search(id=PRODUCT + report)
    this = next(links.bysemantics("#this"))
    assert this["link_auth"] == "false" and this["link_authorized"] and not this.error_message
    got = requests.get(this.getdataurl(), timeout=60)
    assert got.status_code == 200 and _sha256(got.content) == _artifact(vo_archive, report).sha256


@pytest.mark.parametrize("method, params, words", [
    ("GET", {}, "ID is required"),
    ("GET", {"ID": "  "}, "ID is required"),
    ("POST", {}, "ID is required"),
    ("GET", {"ID": "x", "RESPONSEFORMAT": "application/json"}, "RESPONSEFORMAT"),
    ("GET", {"ID": "x" * 1001}, "longer than"),
])
def test_bad_requests_get_a_votable_error(vo_archive, method, params, words):
    got = requests.request(method, vo_archive.url + "/vo/datalink", params=params if method == "GET" else None,
                           data=params if method == "POST" else None, timeout=60)
    assert got.status_code == 400
    assert got.headers["content-type"].startswith("application/x-votable+xml")
    status = {i.name: i for i in parse_votable(io.BytesIO(got.content)).resources[0].infos}["QUERY_STATUS"]
    assert status.value == "ERROR" and status.content.startswith("UsageFault: ") and words in status.content


def test_a_multipart_post_is_refused(vo_archive):
    got = requests.post(vo_archive.url + "/vo/datalink", files={"ID": (None, "x")}, timeout=60)
    assert got.status_code == 400 and b"x-www-form-urlencoded" in got.content
    with pytest.raises(DALQueryError, match="UsageFault: ID is required"):
        _service(vo_archive).search(id=None)  # pyvo reads the error document of the 400


def test_more_ids_than_one_request_answers_overflow(vo_archive):
    ids = [publisher_did(f"jw09999001001_01101_{n:05d}_nrca1") for n in range(MAX_IDS + 5)]
    got = requests.post(vo_archive.url + "/vo/datalink", data=[("ID", i) for i in ids], timeout=60)
    assert got.status_code == 200
    document = parse_votable(io.BytesIO(got.content))
    status = {i.name: i for i in document.resources[0].infos}["QUERY_STATUS"]
    assert status.value == "OVERFLOW"
    answered = list(document.get_first_table().to_table()["ID"])
    assert answered == ids[:MAX_IDS]  # the first ones, in order: a client asks again for the rest


def test_vosi_and_pyvo_auth_session_with_the_token_cookie(vo_archive, level3):
    """pyvo's AuthSession reads the capabilities, then sends the archive's token cookie to the
    DataLink endpoint and to the file routes its links lead to (and to nothing else)."""
    auth = AuthSession()
    auth.credentials.set_cookie("mast_token", vo_archive.tokens[PI])
    service = DatalinkService(vo_archive.url + "/vo/datalink", session=auth)  # reads the capabilities
    standards = {c.standardid for c in service.capabilities}
    assert {"ivo://ivoa.net/std/DataLink#links-1.1", "ivo://ivoa.net/std/VOSI#capabilities",
            "ivo://ivoa.net/std/VOSI#availability"} <= standards
    links = service.search(id=publisher_did(level3.obs_id))
    i2d = next(links.bysemantics("#this"))
    assert i2d["link_authorized"] and not i2d.error_message
    got = auth.get(i2d.getdataurl())
    assert got.status_code == 200 and _sha256(got.content) == _artifact(vo_archive, level3.top_filename).sha256

    # without the cookie the same session is anonymous
    anonymous = DatalinkService(vo_archive.url + "/vo/datalink", session=AuthSession())
    assert next(anonymous.search(id=publisher_did(level3.obs_id)).bysemantics("#this")).error_message

    available = requests.get(vo_archive.url + "/vo/datalink/availability", timeout=60)
    assert available.status_code == 200 and available.headers["content-type"].startswith("text/xml")
    assert vosi.parse_availability(io.BytesIO(available.content).read).available


# ------------------------------------------------------------------ operators and embargoes


def _reads(arch, filename: str) -> list[dict]:
    """The audit of the operator's reads of ``filename`` (GET /access/reads)."""
    got = arch.session(OPERATOR).get(arch.url + "/access/reads", params={"reader": OPERATOR, "program": "01234"},
                                     timeout=60)
    assert got.status_code == 200, got.text
    return [r for r in got.json() if r["filename"] == filename]


def _report(arch) -> str:
    with arch.run.ctx.catalog.session() as s:
        return s.scalar(select(Product.filename).where(Product.product_type == "INFO", Product.is_current))


def test_an_operator_reads_exclusive_data_and_each_read_is_audited(vo_archive, level3):
    did = publisher_did(level3.obs_id)
    operator = vo_archive.session(OPERATOR)
    links = _service(vo_archive, OPERATOR).search(id=did)
    files = [r for r in links if r.content_type != ACCESS_FORMAT]
    assert files
    for rec in files:
        assert rec.access_url and not rec.error_message and rec["link_authorized"], rec.description
    i2d = next(links.bysemantics("#this"))
    assert i2d["link_auth"] == "true"  # the file is still exclusive: others need a token
    assert i2d.getdataurl() == f"{vo_archive.url}/download/{level3.top_filename}"

    before = len(_reads(vo_archive, level3.top_filename))
    got = operator.get(i2d.getdataurl(), timeout=60)
    assert got.status_code == 200
    assert _sha256(got.content) == _artifact(vo_archive, level3.top_filename).sha256
    reads = _reads(vo_archive, level3.top_filename)
    assert len(reads) == before + 1 and reads[0]["why"] == "exclusive" and reads[0]["user"] == OPERATOR

    # the PI's read of the same file is no exclusive read of an operator's: not in the audit
    assert vo_archive.session(PI).get(i2d.getdataurl(), timeout=60).status_code == 200
    assert len(_reads(vo_archive, level3.top_filename)) == before + 1
    # the operator's links lead where a stranger is still refused
    assert vo_archive.session(STRANGER).get(i2d.getdataurl(), timeout=60).status_code == 403


@contextmanager
def _embargo(arch) -> Iterator[None]:
    """The program under an operator's embargo (through the archive's own route), lifted on
    leaving whatever happens inside."""
    operator = arch.session(OPERATOR)
    got = operator.post(arch.url + "/programs/01234/access", json={"kind": "embargo", "reason": "a test embargo"},
                        timeout=60)
    assert got.status_code == 201, got.text
    try:
        yield
    finally:
        lifted = operator.post(arch.url + "/programs/01234/access", json={"kind": "lift", "reason": "test over"},
                               timeout=60)
        assert lifted.status_code == 201, lifted.text


def test_an_embargo_keeps_everyone_but_operators_out(vo_archive, level3):
    did = publisher_did(level3.obs_id)
    report = _report(vo_archive)
    with _embargo(vo_archive):
        for user in (None, PI, STRANGER):
            links = _service(vo_archive, user).search(id=[did, PRODUCT + report])
            files = [r for r in links if r.content_type != ACCESS_FORMAT]
            assert len(files) > 3
            for rec in files:
                assert not rec["access_url"], (user, rec.description)
                assert rec["link_auth"] == "true" and not rec["link_authorized"]
                assert rec.error_message.startswith("DefaultFault: ")
                assert "belongs to program 01234, which is under embargo (operators only)" in rec.error_message
                if user is None:
                    assert "send an operator's token" in rec.error_message
                else:
                    assert f"{user} is no operator" in rec.error_message
                    assert "neither its PI" not in rec.error_message
            # metadata stay public: the member rows' DataLink documents are still linked
            assert all(r.access_url and r["link_authorized"] for r in links if r.content_type == ACCESS_FORMAT)
            assert [r for r in links if r.content_type == ACCESS_FORMAT]

        # even the public report: an embargo closes data whatever their release date
        this = next(r for r in _service(vo_archive).search(id=PRODUCT + report) if r.semantics == "#this")
        assert not this["access_url"] and not this["link_authorized"]

        # the operator's links lead to the files; the same URLs refuse everyone else
        links = _service(vo_archive, OPERATOR).search(id=did)
        files = [r for r in links if r.content_type != ACCESS_FORMAT]
        assert all(r.access_url and r["link_authorized"] and not r.error_message for r in files)
        i2d = next(links.bysemantics("#this"))
        got = vo_archive.session(OPERATOR).get(i2d.getdataurl(), timeout=60)
        assert got.status_code == 200
        assert _sha256(got.content) == _artifact(vo_archive, level3.top_filename).sha256
        assert _reads(vo_archive, level3.top_filename)[0]["why"] == "embargoed"
        preview = next(r for r in _by(links, "#preview") if level3.top_filename in r.description)
        for rec in (i2d, preview):
            refused = vo_archive.session(PI).get(rec.access_url, timeout=60)
            assert refused.status_code == 403 and "under embargo" in refused.json()["detail"]
            assert vo_archive.session(STRANGER).get(rec.access_url, timeout=60).status_code == 403
            assert requests.get(rec.access_url, timeout=60).status_code == 401
        assert requests.get(f"{vo_archive.url}/download/{report}", timeout=60).status_code == 401

    # lifted: the PI reads again, the report is public again
    i2d = next(_service(vo_archive, PI).search(id=did).bysemantics("#this"))
    assert i2d["link_authorized"] and vo_archive.session(PI).get(i2d.getdataurl(), timeout=60).status_code == 200
    this = next(r for r in _service(vo_archive).search(id=PRODUCT + report) if r.semantics == "#this")
    assert this["link_auth"] == "false" and this["link_authorized"]
