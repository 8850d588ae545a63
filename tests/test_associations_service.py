"""The associations service over a real catalog (SQLite and PostgreSQL) and object store:
pool and ASNs archived once, Level 3 only when complete, late members and reprocessed
members make new ASNs, repeated and reordered events make nothing, bad input is refused
with a reason, and ``dms associations`` shows what is waiting."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from services.associations.commands import describe_program
from services.associations.task import HANDLERS, handle_product
from shared.catalog.models import Association, EventRecord, Product
from shared.config import Settings
from shared.errors import InputError, NonRetriableError
from shared.messages import Event, EventType
from shared.runtime import ServiceContext
from shared.storage import Bucket
from tests.associations_factory import (
    archive_exposure,
    deliver,
    exposure_ids,
    make_plan,
    observation,
    outbox_event,
    store_plan,
)

pytestmark = pytest.mark.integration


def plan_with_background():
    return make_plan([observation(1), observation(2, is_background=True, target=2)],
                     candidates=[("BACKGROUND", [1, 2])])


@pytest.fixture(params=["sqlite", "postgresql"])
def ctx(request, tmp_path):
    url = request.getfixturevalue("pg_url") if request.param == "postgresql" else None
    context = ServiceContext.from_settings(Settings(var_dir=tmp_path / "var", catalog_url=url, _env_file=None))
    context.catalog.upgrade()
    yield context
    context.catalog.dispose()


def events(ctx, ids):
    with ctx.catalog.session() as s:
        return [s.get(EventRecord, i) for i in ids]


def asn_events(ctx, ids, asn_type=None):
    return [e for e in events(ctx, ids) if e.type == EventType.PRODUCT_ARCHIVED and e.data["product"]["suffix"] == "asn"
            and (asn_type is None or e.data["asn_type"] == asn_type)]


def stored_asn(ctx, filename) -> dict:
    with ctx.catalog.session() as s:
        product = s.scalar(select(Product).where(Product.filename == filename, Product.is_current))
        uri = product.artifacts[0].uri
    return json.loads(ctx.store.get_uri(uri))


def test_level2_then_level3_once_complete_and_idempotent(ctx, tmp_path):
    plan = plan_with_background()
    store_plan(ctx, plan)
    o1 = exposure_ids(plan, 1)
    new = deliver(ctx, plan, tmp_path, o1, "uncal", level=1) + deliver(ctx, plan, tmp_path, o1, "rate")
    lv2 = asn_events(ctx, new, "image2")
    # one Lv2 per science exposure, made when its _rate arrived (not again for later ones)
    assert sorted(e.data["products"][0] for e in lv2) == sorted(o1)
    for e in lv2:
        assert (e.data["asn_id"], e.data["asn_rule"], e.data["product"]["asn_id"]) == (
            "c1000", "candidate_Asn_Lv2Image", "c1000")
        assert e.data["level"] == 2 and e.type == EventType.PRODUCT_ARCHIVED
    assert not asn_events(ctx, new, "image3")
    pools = [e for e in events(ctx, new) if e.type == EventType.PRODUCT_ARCHIVED and e.data["product"]["suffix"] == "pool"]
    assert pools and all(e.data["level"] == 2 for e in pools)
    # the same event again, and an older one: nothing new
    with ctx.catalog.session() as s:
        old = s.scalars(select(EventRecord.id).where(EventRecord.subject == f"{o1[0]}_rate.fits")).first()
    assert handle_product(outbox_event(ctx, old), ctx) == []
    assert handle_product(outbox_event(ctx, old), ctx) == []
    # three of four _cal: Level 3 waits
    new = deliver(ctx, plan, tmp_path, o1[:3], "cal")
    assert not asn_events(ctx, new)
    with ctx.catalog.session() as s:
        row = s.scalar(select(Association).where(Association.asn_type == "image3"))
        assert (row.acid, row.complete, row.waiting, row.filename) == ("o001", False, [f"{o1[3]}_cal.fits"], None)
    # the last one completes it: one image3 ASN, with the router's fields
    new = deliver(ctx, plan, tmp_path, o1[3:], "cal")
    (lv3,) = asn_events(ctx, new)
    assert lv3.data["asn_type"] == "image3" and lv3.data["asn_id"] == "o001" and lv3.data["level"] == 3
    assert lv3.data["products"] == ["jw01234-o001_t001_nircam_clear-f200w-sub64p"]
    doc = stored_asn(ctx, lv3.subject)
    assert doc["asn_pool"] == pools[-1].subject
    assert sorted(m["expname"] for m in doc["products"][0]["members"]) == sorted(f"{i}_cal.fits" for i in o1)
    with ctx.catalog.session() as s:
        asn = s.scalar(select(Product).where(Product.filename == lv3.subject))
        assert asn.level == 3 and asn.product_type == "AUXILIARY" and asn.inputs[0] == pools[-1].subject
        row = s.scalar(select(Association).where(Association.asn_type == "image3"))
        assert row.complete and row.waiting == [] and row.filename == lv3.subject and row.emitted_count == 1
    assert handle_product(outbox_event(ctx, new[0]), ctx) == []


def test_reprocessed_member_and_late_background_make_new_asns(ctx, tmp_path):
    plan = plan_with_background()
    store_plan(ctx, plan)
    o1, o2 = exposure_ids(plan, 1), exposure_ids(plan, 2)
    deliver(ctx, plan, tmp_path, o1, "rate")
    deliver(ctx, plan, tmp_path, o1, "cal")
    # a reprocessed _cal (new bytes: revision 2): image3 again, as a new revision of the same file
    with ctx.catalog.session() as s:
        before = s.scalar(select(Association).where(Association.asn_type == "image3"))
    new = deliver(ctx, plan, tmp_path, o1[:1], "cal", content="reprocessed")
    (lv3,) = asn_events(ctx, new, "image3")
    assert lv3.subject == before.filename and lv3.data["product"]["revision"] == 2
    assert not asn_events(ctx, new, "image2")
    with ctx.catalog.session() as s:
        row = s.scalar(select(Association).where(Association.asn_type == "image3"))
        assert row.emitted_count == 2 and [f"{o1[0]}_cal.fits", 2, "science"] in row.members
        kinds = s.scalars(select(EventRecord.type).where(EventRecord.subject == lv3.subject)).all()
    assert EventType.PRODUCT_SUPERSEDED in kinds
    # background exposures of NRCA1 arrive late: the NRCA1 science Lv2 are made again with them
    bkg_a1 = [b for b in o2 if b.endswith("nrca1")]
    new = deliver(ctx, plan, tmp_path, bkg_a1, "rate")
    by_product = {e.data["products"][0]: e for e in asn_events(ctx, new, "image2")}
    assert {p for p in by_product if p in o1} == {i for i in o1 if i.endswith("nrca1")}
    members = stored_asn(ctx, by_product[o1[0]].subject)["products"][0]["members"]
    assert [(m["expname"], m["exptype"]) for m in members] == [
        (f"{o1[0]}_rate.fits", "science"), *((f"{b}_rate.fits", "background") for b in bkg_a1)]
    assert not asn_events(ctx, new, "image3")  # Level 3 does not use backgrounds


def current_auxiliary(ctx, suffix) -> list[str]:
    with ctx.catalog.session() as s:
        return sorted(s.scalars(select(Product.filename).where(Product.suffix == suffix, Product.is_current)))


def test_superseded_pools_and_asns_stop_being_current(ctx, tmp_path):
    """Every new pool (a newer time stamp, so a new name) replaces the earlier one, and an
    ASN made again under the newer pool replaces the one it re-makes: one current pool,
    and exactly the ASNs the association rows last emitted are current."""
    plan = plan_with_background()
    store_plan(ctx, plan)
    o1, o2 = exposure_ids(plan, 1), exposure_ids(plan, 2)
    deliver(ctx, plan, tmp_path, o1, "rate")
    deliver(ctx, plan, tmp_path, o1, "cal")
    first_lv2 = {e.data["products"][0]: e.subject for e in asn_events(ctx, _archived_ids(ctx), "image2")}
    bkg_a1 = [b for b in o2 if b.endswith("nrca1")]
    time.sleep(1.1)  # the pool's time stamp has a resolution of a second: a newer pool, a new name
    new = [i for i in deliver(ctx, plan, tmp_path, bkg_a1, "rate") if i in set(_archived_ids(ctx))]
    remade = {e.data["products"][0]: e.subject for e in asn_events(ctx, new, "image2")
              if e.data["products"][0] in first_lv2}
    assert remade and all(remade[p] != first_lv2[p] for p in remade)

    with ctx.catalog.session() as s:
        emitted = sorted(s.scalars(select(Association.filename).where(Association.filename.is_not(None))))
        superseded = {e.subject: e.data for e in s.scalars(
            select(EventRecord).where(EventRecord.type == EventType.PRODUCT_SUPERSEDED))}
    assert len(current_auxiliary(ctx, "pool")) == 1, current_auxiliary(ctx, "pool")
    assert current_auxiliary(ctx, "asn") == emitted
    for product, old in ((p, first_lv2[p]) for p in remade):
        assert old not in current_auxiliary(ctx, "asn")
        # on a slow machine the delivery may span several pool time stamps: the ASN is then
        # re-made more than once, and the chain of replacements leads to the last one
        chain = [old]
        while superseded.get(chain[-1], {}).get("replaced_by") and len(chain) < 10:
            chain.append(superseded[chain[-1]]["replaced_by"])
        assert chain[-1] == remade[product], chain
    # the same event again changes nothing
    assert handle_product(outbox_event(ctx, new[0]), ctx) == []
    assert current_auxiliary(ctx, "asn") == emitted


def _archived_ids(ctx):
    with ctx.catalog.session() as s:
        return list(s.scalars(select(EventRecord.id).where(EventRecord.type == EventType.PRODUCT_ARCHIVED)))


def test_bad_input_is_refused_with_a_reason(ctx, tmp_path):
    no_product = Event(id="e-1", source="/test", type=EventType.PRODUCT_ARCHIVED, time=datetime.now(UTC), data={})
    with pytest.raises(NonRetriableError, match="malformed payload: 3 error"):
        HANDLERS["associations.update"](no_product, ctx)
    plan = plan_with_background()
    with ctx.catalog.session() as s:
        from shared.catalog.queries import upsert_program

        upsert_program(s, plan)
    archived = archive_exposure(ctx, plan, exposure_ids(plan, 1)[0], "rate", tmp_path)
    with pytest.raises(NonRetriableError, match="program 01234 has no delivered plan"):
        handle_product(outbox_event(ctx, archived.event_id), ctx)
    ctx.store.put_bytes(Bucket.RAW, "01234/000/r1/jw01234_plan.json", b'{"program": "01234"}', "application/json")
    with pytest.raises(InputError, match="stored plan of program 01234 is invalid"):
        handle_product(outbox_event(ctx, archived.event_id), ctx)


def test_command_shows_what_is_waiting(ctx, tmp_path):
    plan = plan_with_background()
    store_plan(ctx, plan)
    o1 = exposure_ids(plan, 1)
    assert "no exposure archived yet" in describe_program(ctx, "01234")
    deliver(ctx, plan, tmp_path, o1, "rate")
    deliver(ctx, plan, tmp_path, o1[:1], "cal")
    text = describe_program(ctx, "01234")
    assert "c1000  BACKGROUND   observations 001, 002" in text
    assert f"waiting for 3 of 4 members: {o1[1]}_cal.fits" in text
    assert "emitted jw01234-c1000_" in text and "background not archived yet" in text
    assert text.splitlines()[-1] == "4 of 9 associations complete"


def test_archived_asns_load_in_the_public_pipeline(ctx, tmp_path):
    pytest.importorskip("jwst")
    from jwst.associations import load_asn

    plan = make_plan([observation(1), observation(2), observation(3, tsovisit=True, nints=2, detectors=("NRCA1",))],
                     candidates=[("MOSAIC", [1, 2])])
    store_plan(ctx, plan)
    ids = [i for n in (1, 2, 3) for i in exposure_ids(plan, n)]
    tso = exposure_ids(plan, 3)
    deliver(ctx, plan, tmp_path, [i for i in ids if i not in tso], "rate")
    deliver(ctx, plan, tmp_path, tso, "rateints")
    deliver(ctx, plan, tmp_path, [i for i in ids if i not in tso], "cal")
    new = deliver(ctx, plan, tmp_path, tso, "calints")
    with ctx.catalog.session() as s:
        names = s.scalars(select(Product.filename).where(Product.suffix == "asn", Product.is_current)).all()
    types = set()
    for name in names:
        asn = load_asn(json.dumps(stored_asn(ctx, name)))
        types.add((asn["asn_id"], asn["asn_type"]))
    assert {("o001", "image3"), ("o002", "image3"), ("c1000", "image3"), ("o003", "tso3"),
            ("o003", "tso-image2"), ("o001", "image2")} <= types
    assert asn_events(ctx, new, "tso3")


def test_concurrent_updates_emit_each_asn_once(pg_url, tmp_path):
    """Two workers handling events of one program at the same moment (PostgreSQL)."""
    settings = Settings(var_dir=tmp_path / "var", catalog_url=pg_url, _env_file=None)
    ctx = ServiceContext.from_settings(settings)
    ctx.catalog.upgrade()
    plan = make_plan([observation(1)])
    store_plan(ctx, plan)
    o1 = exposure_ids(plan, 1)
    archived = [archive_exposure(ctx, plan, i, suffix, tmp_path) for suffix in ("rate", "cal") for i in o1]
    results, errors = [], []
    barrier = threading.Barrier(4)

    def work(event_id):
        worker = ServiceContext.from_settings(settings)
        try:
            barrier.wait()
            results.append(handle_product(outbox_event(worker, event_id), worker))
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            worker.catalog.dispose()

    threads = [threading.Thread(target=work, args=(a.event_id,)) for a in archived[-4:]]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    emitted = [i for r in results for i in r]
    lv3 = asn_events(ctx, emitted, "image3")
    assert len(lv3) == 1 and len(asn_events(ctx, emitted, "image2")) == len(o1)
    with ctx.catalog.session() as s:
        assert s.scalar(select(Association).where(Association.asn_type == "image3")).emitted_count == 1
    ctx.catalog.dispose()


def test_cli_command_prints_the_state_or_a_reason(tmp_path, monkeypatch, capsys):
    import argparse

    from services.associations.commands import register_commands
    from shared.config import get_settings

    monkeypatch.setenv("DMS_VAR_DIR", str(tmp_path / "var"))
    get_settings.cache_clear()
    try:
        parser = argparse.ArgumentParser()
        register_commands(parser.add_subparsers(dest="command"))
        args = parser.parse_args(["associations", "1234"])
        assert args.func(args) == 2 and "program 01234 has no delivered plan" in capsys.readouterr().err
        ctx = ServiceContext.from_settings(get_settings())
        ctx.catalog.upgrade()
        plan = make_plan([observation(1), observation(2)])
        store_plan(ctx, plan)
        archive_exposure(ctx, plan, exposure_ids(plan, 1)[0], "rate", tmp_path)
        ctx.catalog.dispose()
        args = parser.parse_args(["associations", "01234", "--discover"])
        assert args.func(args) == 0
        out = capsys.readouterr().out
        assert "a3001  DISCOVERED   observations 001, 002" in out and "pool jw01234_" in out
    finally:
        get_settings.cache_clear()
