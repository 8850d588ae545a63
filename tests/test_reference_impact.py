"""Reference-driven reprocessing: a new context records the archived exposures it would
calibrate with other files (shared.refdata.impact), announces a summary, and under the
``reprocess`` policy opens a request for exactly those exposures.

One embedded chain (two dither exposures of NRCA1, about 32 s apart) serves the module;
each test delivers a new context on top of the previous ones, and every impact is
relative to what the current products used.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from services.archive.app import create_app
from services.cli import main
from services.notifier.classify import REFERENCE, Notice
from services.notifier.facts import event_files
from services.notifier.payload import email_text, mast_row
from services.simulator.reffiles import revise_reference
from shared.catalog import EventRecord, Exposure, Product, ReferenceImpact
from shared.config import Settings, get_settings
from shared.messages import Event
from shared.refdata import PolicyError, ReprocessPolicy, deliver, list_impact
from shared.refdata.policy import Action
from shared.reprocessing import request_view
from tests.imaging_chain import copy_run

FLAT = "jwst_nircam_flat_nrca1_f200w_clear_sim.fits"
DARK = "jwst_nircam_dark_nrca1_sub160_sim.fits"


@pytest.fixture(scope="module")
def chain(tmp_path_factory, small_program_run):
    run = copy_run(small_program_run, tmp_path_factory.mktemp("impact"))
    yield run
    run.ctx.catalog.dispose()


@pytest.fixture(scope="module")
def exposures(chain) -> list[tuple[str, object]]:
    """(name, start) of the two exposures, in time order."""
    with chain.ctx.catalog.session() as s:
        return [(e.name, e.start_time) for e in s.scalars(select(Exposure).order_by(Exposure.start_time))]


def _reference(chain, name):
    return next(p for p in chain.sim.reference_paths if p.name == name)


def _between(exposures) -> str:
    """A USEAFTER after the first exposure's start and before the second's."""
    (_, first), (_, second) = exposures
    return (first + (second - first) / 2).replace(microsecond=0).isoformat()


def _deliver(chain, paths, policy: str = "*=notify"):
    ctx = replace(chain.ctx, settings=chain.ctx.settings.model_copy(update={"reprocess_policy": policy}))
    return deliver(ctx, paths, note="test")


def _impact(chain, context):
    with chain.ctx.catalog.session() as s:
        return list_impact(s, context)


def _event(chain, event_id) -> Event:
    with chain.ctx.catalog.session() as s:
        row = s.get(EventRecord, event_id)
        return Event.model_validate({"id": row.id, "source": row.source, "type": row.type, "subject": row.subject,
                                     "time": row.time, "data": row.data})


def _current(chain, filename) -> Product:
    with chain.ctx.catalog.session() as s:
        return s.scalar(select(Product).where(Product.filename == filename, Product.is_current))


def test_a_flat_for_later_exposures_affects_only_those_from_stage2(chain, exposures, tmp_path):
    (first, _), (second, _) = exposures
    new = revise_reference(_reference(chain, FLAT), tmp_path, name="flat_nrca1_f200w_late.fits", factor=1.02,
                           useafter=_between(exposures))
    d = _deliver(chain, [new])
    rows = _impact(chain, d.context_name)
    assert [r.exposure for r in rows] == [second]
    assert rows[0].first_stage == "stage2" and rows[0].parent == "dms_0001.ctx" and rows[0].request_id is None
    assert rows[0].references == ({"reftype": "FLAT", "stage": "stage2", "old": FLAT, "new": new.name,
                                   "policy": "notify"},)
    assert d.requests == ()
    # The event carries the summary, and so do the notifier's reference rows.
    event = _event(chain, d.event_id)
    assert event.data["impact"] == {"exposures": 1, "counts": [
        {"program": "01234", "first_stage": "stage2", "exposures": 1, "policy": "notify"}]}
    with chain.ctx.catalog.session() as s:
        (facts,) = event_files(s, event)
    row = mast_row(Notice(facts, REFERENCE), "batch")
    assert row["impact"]["exposures"] == 1 and row["context"] == d.context_name
    text = email_text([row], frequency="immediate", subscription_name="", subscription_id=1, attachment="a.json",
                      archive_base_url="http://x", when=event.time)
    assert f"{d.context_name} would calibrate 1 archived exposure(s) with other files: program 01234: 1 from stage2" \
        in text
    assert first not in {r.exposure for r in rows}


def test_a_dark_affects_every_exposure_from_detector1(chain, exposures, tmp_path):
    new = revise_reference(_reference(chain, DARK), tmp_path, name="dark_nrca1_sub160_v2.fits", factor=1.05)
    d = _deliver(chain, [new])
    rows = _impact(chain, d.context_name)
    assert [r.exposure for r in rows] == [name for name, _ in exposures]
    for r in rows:
        # Only the types this delivery touched: the FLAT of the previous context is its own impact.
        assert r.first_stage == "detector1"
        assert r.references == ({"reftype": "DARK", "stage": "detector1", "old": DARK, "new": new.name,
                                 "policy": "notify"},)
    assert d.impact.counts[0].first_stage == "detector1" and d.impact.exposures == 2


def test_references_for_another_detector_or_filter_affect_nothing(chain, tmp_path):
    other_detector = revise_reference(_reference(chain, FLAT), tmp_path, name="flat_nrca2_f200w.fits",
                                      detector="NRCA2")
    other_filter = revise_reference(_reference(chain, FLAT), tmp_path, name="flat_nrca1_f150w.fits",
                                    filter_="F150W")
    d = _deliver(chain, [other_detector, other_filter])
    assert d.created and d.impact.exposures == 0 and _impact(chain, d.context_name) == []
    assert _event(chain, d.event_id).data["impact"] == {"exposures": 0, "counts": []}


def test_policy_off_records_nothing_for_that_type(chain, tmp_path):
    new = revise_reference(_reference(chain, FLAT), tmp_path, name="flat_nrca1_f200w_off.fits", factor=0.99,
                           useafter="2023-01-01T00:00:00")
    d = _deliver(chain, [new], policy="FLAT=off,*=reprocess")
    assert d.impact.exposures == 0 and _impact(chain, d.context_name) == [] and d.requests == ()


def test_policy_reprocess_opens_one_request_for_exactly_the_affected_exposures(chain, exposures, tmp_path):
    (first, _), (second, _) = exposures
    before = {name: _current(chain, f"{name}_cal.fits").revision for name in (first, second)}
    new = revise_reference(_reference(chain, FLAT), tmp_path, name="flat_nrca1_f200w_late_v2.fits", factor=1.03,
                           useafter=(exposures[1][1] - timedelta(seconds=1)).replace(microsecond=0).isoformat())
    d = _deliver(chain, [new], policy="FLAT:NIRCAM=reprocess,DARK=notify,*=notify")
    rows = _impact(chain, d.context_name)
    assert [r.exposure for r in rows] == [second]
    assert rows[0].references[0]["policy"] == "reprocess"
    (request_id,) = d.requests
    assert rows[0].request_id == request_id
    with chain.ctx.catalog.session() as s:
        view = request_view(s, request_id)
    assert view["origin"] == "reference" and view["from_stage"] == "stage2"
    assert view["scope"]["exposures"] == [second] and view["reference_context"] == d.context_name
    assert view["reason"] == f"reference context {d.context_name}: FLAT changed"
    assert {u["name"] for u in view["units"] if u["kind"] == "exposure"} == {second}

    done = chain.ctx.transport.run_until_idle()
    assert all(o.status == "ok" for _, o in done), done
    with chain.ctx.catalog.session() as s:
        assert request_view(s, request_id)["state"] == "done"
    cal = _current(chain, f"{second}_cal.fits")
    assert cal.revision == before[second] + 1 and cal.request_id == request_id
    assert cal.reference_context == d.context_name and f"crds://{new.name}" in cal.inputs
    untouched = _current(chain, f"{first}_cal.fits")
    assert untouched.revision == before[first] and untouched.request_id is None
    # A request made again for the same context is the same request (nothing new to run).
    with chain.ctx.catalog.session() as s:
        assert s.scalar(select(ReferenceImpact.request_id).where(ReferenceImpact.context == d.context_name)) \
            == request_id


def test_dms_refs_impact_and_the_api(chain, exposures, monkeypatch, capsys):
    monkeypatch.setenv("DMS_VAR_DIR", str(chain.ctx.settings.var_dir))
    monkeypatch.delenv("DMS_CATALOG_URL", raising=False)
    monkeypatch.delenv("DMS_BROKER_URL", raising=False)
    get_settings.cache_clear()
    try:
        assert main(["refs", "impact", "dms_0002.ctx"]) == 0
        out = capsys.readouterr().out
        assert "dms_0002.ctx: 1 archived exposure(s) would be calibrated with other files" in out
        assert exposures[1][0] in out and exposures[0][0] not in out
        assert f"FLAT       {FLAT} -> flat_nrca1_f200w_late.fits (stage2, notify)" in out
        assert main(["refs", "impact", "dms_0099.ctx"]) == 2
        assert "no reference context dms_0099.ctx" in capsys.readouterr().err
    finally:
        get_settings.cache_clear()

    with TestClient(create_app(chain.ctx.settings)) as client:
        got = client.get("/references/dms_0003.ctx/impact")
        assert got.status_code == 200 and got.json()["total"] == 2
        assert {r["first_stage"] for r in got.json()["rows"]} == {"detector1"}
        assert client.get("/references/3/impact?program=1234").json()["total"] == 2
        assert client.get("/references/3/impact?program=4321").json()["total"] == 0
        current = client.get("/references/current/impact").json()["rows"]
        assert [r["exposure"] for r in current] == [exposures[1][0]] and current[0]["request_id"]
        missing = client.get("/references/dms_0099.ctx/impact")
        assert missing.status_code == 404 and "dms_0099.ctx" in missing.json()["detail"]
        assert client.get("/references/nonsense/impact").status_code == 404
        assert client.get("/references/3/impact?program=abc").status_code == 400


@pytest.mark.parametrize("text, message", [
    ("FLAT", "expected REFTYPE[:INSTRUMENT]=ACTION"),
    ("FLATT=reprocess", "unknown reference type FLATT"),
    ("FLAT:NIRCOM=notify", "unknown instrument NIRCOM"),
    ("FLAT=redo", "unknown action 'redo'"),
    ("FLAT=off,flat=notify", "FLAT:* is given twice"),
])
def test_bad_policies_are_refused_with_the_reason(text, message, monkeypatch, tmp_path, capsys):
    with pytest.raises(PolicyError, match=re.escape(message)):
        ReprocessPolicy.parse(text)
    with pytest.raises(ValueError, match="reprocess_policy"):
        Settings(var_dir=tmp_path, reprocess_policy=text, _env_file=None)
    monkeypatch.setenv("DMS_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("DMS_REPROCESS_POLICY", text)
    get_settings.cache_clear()
    try:
        assert main(["refs", "contexts"]) == 2
        assert capsys.readouterr().err.startswith("error: DMS_REPROCESS_POLICY: reprocessing policy entry")
    finally:
        get_settings.cache_clear()


def test_the_most_specific_policy_entry_wins():
    policy = ReprocessPolicy.parse(" FLAT:NIRCAM=reprocess, FLAT=off, *:MIRI=off, *=notify ")
    assert policy.action("flat", "nircam") is Action.REPROCESS
    assert policy.action("FLAT", "MIRI") is Action.OFF
    assert policy.action("DARK", "MIRI") is Action.OFF
    assert policy.action("DARK", "NIRCAM") is Action.NOTIFY
    assert ReprocessPolicy.parse("").action("DARK", "NIRCAM") is Action.NOTIFY
