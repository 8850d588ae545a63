"""Exclusive access (shared.access): category periods and what a plan may ask for, dated
waivers and extensions that re-compute the release dates of archived products (older
revisions and combined products too) and get them announced once, embargoes that keep
even the PI out, operators' reads recorded, and bad requests refused with a reason."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import select

from services.archive.app import create_app
from services.notifier.scheduler import announce_releases, public_event_id
from shared.access import AccessError, change_access, default_eap_months, eap_problem, release_for
from shared.catalog import (
    AccessChange,
    Artifact,
    ArtifactKind,
    EventRecord,
    Observation,
    Product,
    Program,
)
from shared.catalog.queries import add_months, next_revision, register_product, upsert_exposure
from shared.config import Settings
from shared.messages import EventType
from shared.naming import object_key
from shared.plan import Plan
from shared.storage import StoredObject
from shared.tokens import create_token
from tests.telemetry_factory import tiny_plan
from tests.test_notifier import T0, archive, make_ctx

PI, OUTSIDER, OPERATOR = "pi@example.org", "someone@example.org", "ops@example.org"
UNCAL = "jw01234001001_01101_00001_nrca1_uncal.fits"
CAL1 = "jw01234001001_01101_00001_nrca1_cal.fits"
CAL2 = "jw01234001001_01101_00002_nrca1_cal.fits"
I2D = "jw01234-o001_t001_nircam_clear-f200w_i2d.fits"


@pytest.fixture(params=["sqlite", "postgresql"])
def ctx(request, tmp_path):
    url = request.getfixturevalue("pg_url") if request.param == "postgresql" else None
    context = make_ctx(tmp_path, url)
    yield context
    context.catalog.dispose()


def releases(ctx) -> dict[tuple[str, int], datetime]:
    with ctx.catalog.session() as s:
        return {(p.filename, p.revision): p.data_release.replace(tzinfo=UTC) if p.data_release.tzinfo is None
                else p.data_release for p in s.scalars(select(Product))}


def archived_program(ctx) -> None:
    """Program 01234 (GO, 12 months): an uncal, a cal in two revisions, another cal and
    a combined i2d of both cals, all archived at T0 (the i2d a day later)."""
    archive(ctx, UNCAL)
    archive(ctx, CAL1, level=2)
    archive(ctx, CAL1, level=2, revision=2, archived_at=T0 + timedelta(days=2),
            data_release=add_months(T0, 12))  # a reprocessed revision keeps the first release
    archive(ctx, CAL2, level=2)
    archive(ctx, I2D, level=3, archived_at=T0 + timedelta(days=1), inputs=[CAL1, CAL2],
            data_release=add_months(T0, 12))


# ---------------------------------------------------------------- the rules


def test_category_defaults_and_what_a_plan_may_ask_for():
    assert [default_eap_months(c) for c in ("GO", "GTO", "ERS", "DD", "CAL", "ENG")] == [12, 12, 0, 0, 0, 0]
    base = tiny_plan().model_dump(exclude={"eap_months", "eap_waiver", "category"})
    assert Plan(**base, category="GO").exclusive_months == 12
    assert Plan(**base, category="GTO", eap_months=6).exclusive_months == 6
    assert Plan(**base, category="ERS").exclusive_months == 0
    assert Plan(**base, category="GO", eap_months=0, eap_waiver="community data").exclusive_months == 0
    assert Plan(**base, category="GO", eap_waiver="community data").exclusive_months == 0
    for bad, reason in (({"category": "GO", "eap_months": 0}, "needs the PI's waiver"),
                        ({"category": "GO", "eap_months": 9}, "may ask for 3, 6, 12 months"),
                        ({"category": "GO", "eap_months": 24}, "longer only by an operator's extension"),
                        ({"category": "ERS", "eap_months": 12}, "has no exclusive-access period"),
                        ({"category": "GO", "eap_months": 12, "eap_waiver": "x"}, "a waiver means no exclusive"),
                        ({"category": "GO", "eap_waiver": "  "}, "give the reason")):
        with pytest.raises(ValidationError, match=reason):
            Plan(**base, **bad)
    assert eap_problem("DD", 0) is None and eap_problem("GO", 3) is None


def test_release_dates_follow_dated_changes_in_order():
    def change(kind, at, months=None, id_=1):
        return AccessChange(id=id_, kind=kind, effective_at=at, months=months)

    assert release_for(T0, 12) == add_months(T0, 12)
    waiver = change("waiver", T0 + timedelta(days=30))
    assert release_for(T0, 12, [waiver]) == T0 + timedelta(days=30)  # archived before: public from the waiver
    assert release_for(T0 + timedelta(days=40), 12, [waiver]) == T0 + timedelta(days=40)  # after: on arrival
    extension = change("extension", T0 + timedelta(days=30), months=6)
    assert release_for(T0, 12, [extension]) == add_months(T0, 18)
    assert release_for(T0 - timedelta(days=400), 12, [extension]) == add_months(T0 - timedelta(days=400), 12)
    assert release_for(T0 + timedelta(days=60), 12, [extension]) == add_months(T0 + timedelta(days=60), 18)
    # a waiver, then an extension: only products archived after the extension are exclusive again
    later = change("extension", T0 + timedelta(days=90), months=3, id_=2)
    assert release_for(T0, 12, [later, waiver]) == T0 + timedelta(days=30)


# ---------------------------------------------------------------- changes of archived products


def test_waiver_makes_archived_products_public_and_announced_once(ctx):
    archived_program(ctx)
    with ctx.catalog.session() as s:
        s.get(Program, "01234").pi_user = PI
    now = T0 + timedelta(days=30)
    assert announce_releases(ctx, now) == []  # still exclusive
    with ctx.catalog.session() as s:
        change = change_access(s, "01234", "waiver", requested_by=PI, reason="community data", now=now)
        assert change.moved == 5  # every revision, the superseded one and the combined product too
    assert set(releases(ctx).values()) == {now}
    announced = announce_releases(ctx, now)
    assert sorted(announced) == sorted(public_event_id(f, r) for f, r in
                                       ((UNCAL, 1), (CAL1, 2), (CAL2, 1), (I2D, 1)))
    assert announce_releases(ctx, now + timedelta(hours=1)) == []
    with ctx.catalog.session() as s:
        events = s.scalars(select(EventRecord).where(EventRecord.type == EventType.DATA_PUBLIC)).all()
        assert sorted(e.id for e in events) == sorted(announced)


def test_extension_moves_release_dates_but_public_data_stay_public(ctx):
    archive(ctx, "jw01234001001_01101_00009_nrca1_cal.fits", level=2, archived_at=T0 - timedelta(days=400))
    archived_program(ctx)
    now = T0 + timedelta(days=10)
    with ctx.catalog.session() as s:
        s.get(Program, "01234").pi_user = PI
        with pytest.raises(PermissionError, match="only an operator may extend"):
            change_access(s, "01234", "extension", requested_by=PI, reason="more time", months=6, now=now)
        change = change_access(s, "01234", "extension", requested_by=OPERATOR, reason="instrument anomaly",
                               operators={OPERATOR}, months=6, now=now)
        assert change.moved == 5
    after = releases(ctx)
    assert after[("jw01234001001_01101_00009_nrca1_cal.fits", 1)] == add_months(T0 - timedelta(days=400), 12)
    assert after[(CAL1, 1)] == after[(CAL1, 2)] == after[(UNCAL, 1)] == add_months(T0, 18)
    assert after[(I2D, 1)] == add_months(T0, 18)  # its latest input's
    with ctx.catalog.session() as s:
        for bad, reason in (({"months": 0}, "adds 1 to 24 months"),
                            ({"months": None}, "adds 1 to 24 months"),
                            ({"months": 3, "effective_at": now - timedelta(days=1)}, "takes effect now or later"),
                            ({"months": 3, "reason": " "}, "a reason is required")):
            with pytest.raises(AccessError, match=reason):
                change_access(s, "01234", "extension", **{"requested_by": OPERATOR, "reason": "r",
                                                         "operators": {OPERATOR}, "now": now, **bad})
        with pytest.raises(LookupError, match="no program 09999"):
            change_access(s, "09999", "waiver", requested_by=OPERATOR, reason="r", operators={OPERATOR})


def test_2c_products_keep_the_latest_member_release_through_a_change(ctx):
    """A 2c _crf belongs to its member's exposure but is released with the association's
    latest member, before and after a change re-computes the releases."""
    asn = "jw01234-o001_20250301t130000_image3_00001_asn.json"
    crf1 = "jw01234001001_01101_00001_nrca1_o001_crf.fits"
    archive(ctx, CAL1, level=2)
    archive(ctx, CAL2, level=2, archived_at=T0 + timedelta(days=5))
    with ctx.catalog.session() as s:  # the association, as the associations service registers it
        s.add(Product(filename=asn, suffix="asn", level=3, program_id="01234", observation_id=None,
                      archived_at=T0 + timedelta(days=5), meta_release=T0, product_type="AUXILIARY",
                      data_release=add_months(T0 + timedelta(days=5), 12), inputs=[CAL1, CAL2]))
    latest = add_months(T0 + timedelta(days=5), 12)
    archive(ctx, crf1, level=3, archived_at=T0 + timedelta(days=6), inputs=[CAL1, asn], data_release=latest)
    with ctx.catalog.session() as s:
        exposure = upsert_exposure(s, "01234", 1, CAL1.removesuffix("_cal.fits"), visit=1, visit_group=1,
                                   sequence=1, activity="01", exposure=1, detector="NRCA1", exp_type="NRC_IMAGE",
                                   readpatt="RAPID", subarray="FULL", ngroups=2, nints=1)
        s.scalar(select(Product).where(Product.filename == crf1)).exposure_id = exposure.id
    with ctx.catalog.session() as s:
        change_access(s, "01234", "extension", requested_by=OPERATOR, reason="anomaly", operators={OPERATOR},
                      months=6, now=T0 + timedelta(days=10))
    after = releases(ctx)
    assert after[(CAL1, 1)] < after[(CAL2, 1)] == add_months(T0 + timedelta(days=5), 18)
    assert after[(crf1, 1)] == after[(CAL2, 1)]  # the latest member's, not its own nor its member's


def test_products_archived_after_a_change_follow_it(ctx):
    archive(ctx, UNCAL)
    with ctx.catalog.session() as s:
        change_access(s, "01234", "extension", requested_by=OPERATOR, reason="anomaly", operators={OPERATOR},
                      months=2, now=T0 + timedelta(days=1))
        change_access(s, "01234", "waiver", requested_by=OPERATOR, reason="public", operators={OPERATOR},
                      effective_at=T0 + timedelta(days=20), now=T0 + timedelta(days=1))

    def register(name, at):
        stored = StoredObject(bucket="dms-archive", key=name, uri=f"file:///archive/{name}", sha256=name[:8],
                              size=1, content_type="application/fits")
        with ctx.catalog.session() as s:
            product, _ = register_product(
                s, stored=stored, filename=name, suffix="cal", level=2, revision=1, program_id="01234",
                observation_id=None, exposure_id=None, archived_at=at, eap_months=12, software_version="t", inputs=[])
            return product.data_release if product.data_release.tzinfo else product.data_release.replace(tzinfo=UTC)

    assert register(CAL1, T0 + timedelta(days=5)) == T0 + timedelta(days=20)  # extended, then waived
    assert register(CAL2, T0 + timedelta(days=30)) == T0 + timedelta(days=30)  # public on arrival
    assert releases(ctx)[(UNCAL, 1)] == T0 + timedelta(days=20)


# ---------------------------------------------------------------- the API


@pytest.fixture
def api(tmp_path):
    ctx = make_ctx(tmp_path)
    with ctx.catalog.session() as s:
        s.add(Program(id="01234", title="t", category="GO", eap_months=12, created_at=T0, pi_user=PI))
        s.flush()
        s.add(Observation(program_id="01234", number=1, instrument="NIRCAM"))
    for name in (CAL1, CAL2):
        data = f"{name} data".encode()
        stored = ctx.store.put_bytes("dms-archive", object_key("01234", 1, 1, name), data, "application/fits")
        with ctx.catalog.session() as s:
            assert next_revision(s, name, stored.sha256).revision == 1
            obs = s.scalar(select(Observation))
            product, _ = register_product(
                s, stored=stored, filename=name, suffix="cal", level=2, revision=1, program_id="01234",
                observation_id=obs.id, exposure_id=None, archived_at=datetime.now(UTC), eap_months=12,
                software_version="t", inputs=[])
            preview = ctx.store.put_bytes("dms-previews", object_key("01234", 1, 1, name[:-5] + ".png"),
                                          b"\x89PNG preview", "image/png")
            s.add(Artifact(product_id=product.id, kind=ArtifactKind.PREVIEW, uri=preview.uri, sha256=preview.sha256,
                           size=preview.size, content_type="image/png"))
    settings = Settings(var_dir=ctx.settings.var_dir, operators=OPERATOR, _env_file=None)
    with ctx.catalog.session() as s:
        tokens = {u: create_token(s, u, 1, "tests") for u in (PI, OUTSIDER, OPERATOR)}
    with TestClient(create_app(settings)) as client:
        def call(method, url, user=None, **kw):
            headers = {"Authorization": f"Bearer {tokens[user]}"} if user else None
            return client.request(method, url, headers=headers, **kw)
        yield ctx, call
    ctx.catalog.dispose()


def test_operator_reads_everything_and_is_audited(api):
    ctx, call = api
    assert call("GET", f"/download/{CAL1}", PI).status_code == 200
    assert call("GET", f"/download/{CAL1}").status_code == 401
    r = call("GET", f"/download/{CAL1}", OUTSIDER)
    assert r.status_code == 403 and "exclusive access" in r.json()["detail"]
    assert call("GET", "/access/reads", PI).status_code == 403
    assert call("GET", "/access/reads", OPERATOR).json() == []  # the PI's reads are not audited
    assert call("GET", f"/download/{CAL1}", OPERATOR).content == f"{CAL1} data".encode()
    assert call("GET", f"/previews/{CAL2}", OPERATOR).status_code == 200
    reads = call("GET", "/access/reads", OPERATOR).json()
    assert [(r["user"], r["filename"], r["why"]) for r in reads] == [
        (OPERATOR, CAL2[:-5] + ".png", "exclusive"), (OPERATOR, CAL1, "exclusive")]
    assert len(call("GET", "/access/reads", OPERATOR, params={"program": "1234", "limit": 1}).json()) == 1
    assert call("GET", "/access/reads", OPERATOR, params={"program": "99999"}).json() == []


def test_embargo_refuses_the_pi_until_lifted(api):
    ctx, call = api
    assert call("POST", "/programs/1234/access", PI, json={"kind": "waiver", "reason": "r"}).status_code == 201
    assert call("GET", f"/download/{CAL1}").status_code == 200  # public: the embargo hides even that
    r = call("POST", "/programs/1234/access", PI, json={"kind": "embargo", "reason": "press release"})
    assert r.status_code == 403 and "only an operator may embargo" in r.json()["detail"]
    r = call("POST", "/programs/1234/access", OPERATOR, json={"kind": "embargo", "reason": "press release"})
    assert r.status_code == 201 and r.json()["kind"] == "embargo"
    assert call("GET", "/programs/1234", PI).json()["embargoed"] is True
    assert call("GET", f"/products/{CAL1}").json()["product"]["dataRights"] == "EXCLUSIVE_ACCESS"
    for url in (f"/download/{CAL1}", f"/previews/{CAL1}"):
        r = call("GET", url, PI)
        assert r.status_code == 403 and "under embargo" in r.json()["detail"], url
    assert call("GET", f"/download/{CAL1}").status_code == 401
    assert call("GET", f"/download/{CAL1}", OPERATOR).status_code == 200
    assert [r["why"] for r in call("GET", "/access/reads", OPERATOR).json()] == ["embargoed"]
    r = call("POST", "/programs/1234/access", OPERATOR, json={"kind": "embargo", "reason": "again"})
    assert r.status_code == 400 and "already under embargo" in r.json()["detail"]
    assert call("POST", "/programs/1234/access", OPERATOR, json={"kind": "lift", "reason": "published"}).status_code == 201
    assert call("GET", f"/download/{CAL1}", PI).status_code == 200
    assert call("GET", f"/download/{CAL1}").status_code == 200
    view = call("GET", "/programs/1234/access").json()
    assert view["embargoed"] is False and [c["kind"] for c in view["changes"]] == ["waiver", "embargo", "lift"]


def test_pi_waiver_through_the_api_then_announced_once(api):
    ctx, call = api
    view = call("GET", "/programs/1234/access").json()
    assert (view["category_eap_months"], view["exclusive_products"]) == (12, 2)
    r = call("POST", "/programs/1234/access", OUTSIDER, json={"kind": "waiver", "reason": "r"})
    assert r.status_code == 403 and "only the PI" in r.json()["detail"]
    r = call("POST", "/programs/1234/access", PI, json={"kind": "waiver", "reason": "share with the community"})
    assert r.status_code == 201 and r.json()["moved"] == 2 and r.json()["requested_by"] == PI
    assert call("GET", f"/download/{CAL1}").status_code == 200  # public now, no token needed
    assert call("GET", f"/products/{CAL1}").json()["product"]["dataRights"] == "PUBLIC"
    assert call("GET", "/programs/1234/access").json()["exclusive_products"] == 0
    now = datetime.now(UTC)
    assert sorted(announce_releases(ctx, now)) == sorted(public_event_id(n, 1) for n in (CAL1, CAL2))
    assert announce_releases(ctx, now) == []


@pytest.mark.parametrize(("user", "program", "body", "code", "reason"), [
    (OPERATOR, "1234", {"kind": "extension", "reason": "r"}, 400, "adds 1 to 24 months"),
    (OPERATOR, "1234", {"kind": "waiver", "reason": "r", "months": 3}, 400, "months are for extensions"),
    (OPERATOR, "1234", {"kind": "lift", "reason": "r"}, 400, "not under embargo"),
    (OPERATOR, "1234", {"kind": "forever", "reason": "r"}, 400, "kind"),
    (OPERATOR, "1234", {"kind": "embargo"}, 400, "reason"),
    (OPERATOR, "1234", {"kind": "extension", "reason": "r", "months": 2, "effective": "2020-01-01T00:00:00Z"},
     400, "takes effect now or later"),
    (OPERATOR, "99999", {"kind": "embargo", "reason": "r"}, 404, "no program 99999"),
    (OPERATOR, "abc", {"kind": "embargo", "reason": "r"}, 400, "abc"),
    (PI, "1234", {"kind": "extension", "reason": "r", "months": 2}, 403, "only an operator may extend"),
    (None, "1234", {"kind": "waiver", "reason": "r"}, 401, "token"),
])
def test_bad_access_changes_are_refused_with_a_reason(api, user, program, body, code, reason):
    ctx, call = api
    r = call("POST", f"/programs/{program}/access", user, json=body)
    assert r.status_code == code and reason in r.json()["detail"], r.json()
    with ctx.catalog.session() as s:
        assert s.scalars(select(AccessChange)).all() == []


def test_dms_access_extend_and_reads(tmp_path, monkeypatch, capsys):
    from services.access_commands import register_commands
    from shared.config import get_settings

    monkeypatch.setenv("DMS_VAR_DIR", str(tmp_path / "var"))
    get_settings.cache_clear()
    parser = argparse.ArgumentParser(prog="dms")
    register_commands(parser.add_subparsers(dest="command", required=True))

    def run(*argv):
        args = parser.parse_args(list(argv))
        return args.func(args)

    try:
        ctx = make_ctx(tmp_path)
        now = datetime.now(UTC)
        archive(ctx, CAL1, level=2, archived_at=now - timedelta(days=10))
        ctx.catalog.dispose()
        assert run("access", "extend", "1234", "--months", "3", "--reason", "anomaly", "--by", OPERATOR) == 0
        out = capsys.readouterr().out
        assert "1 release date(s) moved" in out and "extension +3 month(s)" in out and "by ops@example.org" in out
        assert run("access", "extend", "1234", "--months", "30", "--reason", "x") == 2
        assert "adds 1 to 24 months" in capsys.readouterr().out
        assert run("access", "waive", "1234", "--reason", "done", "--by", OPERATOR) == 0
        assert "1 product revision(s) announced public" in capsys.readouterr().out
        assert run("access", "waive", "1234", "--reason", "again") == 0
        assert "announced public" not in capsys.readouterr().out  # once per revision
        assert run("access", "show", "99999") == 2
        assert run("access", "reads") == 0 and "no reads" in capsys.readouterr().out
    finally:
        get_settings.cache_clear()
