"""Reprocessing requests in process (shared.reprocessing): scope, units, staged revisions
made current together, idempotency, cancel and failure, on the small program archived
once by the whole chain (each test works on its own copy of the catalog and store)."""

from __future__ import annotations

import pytest
from astropy.io import fits
from sqlalchemy import select

from shared.catalog import Association, EventRecord, Product, ReprocessingUnit
from shared.messages import EventType
from shared.reprocessing import RequestError, Scope, cancel, report, request_view, submit
from shared.runtime import dispatch_events
from tests.imaging_chain import ChainRun, copy_run

PROGRAM = "01234"
E1, E2 = "jw01234001001_01101_00001_nrca1", "jw01234001001_01101_00002_nrca1"


@pytest.fixture(scope="module")
def archived(small_program_run) -> ChainRun:
    """The small program through the whole chain once (for the session: tests/conftest.py)."""
    return small_program_run


def _copy(archived: ChainRun, tmp_path, **settings):
    run = copy_run(archived, tmp_path, **settings)  # the copy's catalog names the copy's store
    return run.ctx, run.inline


@pytest.fixture
def system(archived, tmp_path):
    ctx, inline = _copy(archived, tmp_path)
    yield ctx, inline
    ctx.catalog.dispose()


def current(ctx) -> dict[str, int]:
    with ctx.catalog.session() as s:
        return {p.filename: p.revision for p in s.scalars(select(Product).where(
            Product.program_id == PROGRAM, Product.is_current))}


def run(ctx, inline, ids):
    dispatch_events(ctx.catalog, inline, event_ids=ids)
    done = inline.run_until_idle()
    assert all(o.status == "ok" for _, o in done), [(t, o.error) for t, o in done if o.status != "ok"]
    return done


def changed(before: dict[str, int], after: dict[str, int]) -> set[str]:
    return {n for n, r in after.items() if before.get(n) != r}


def test_stage2_request_remakes_exactly_the_chain_below_it(system):
    ctx, inline = system
    before = current(ctx)
    view, new, ids = submit(ctx, program=PROGRAM, scope=Scope(observations=(1,)), from_stage="stage2",
                            reason="new flat-field algorithm")
    assert new and view["state"] == "running"
    assert {(u["kind"], u["state"]) for u in view["units"]} == {("exposure", "running"), ("association", "queued")}
    done = run(ctx, inline, ids)
    after = current(ctx)
    remade = changed(before, after)
    suffixes = {n.rsplit("_", 1)[1] for n in remade}
    assert suffixes == {"cal.fits", "i2d.fits", "crf.fits", "cat.ecsv", "segm.fits"}, remade
    assert all(after[n] == before[n] + 1 for n in remade)
    assert not any(n.endswith(("_uncal.fits", "_rate.fits", "_asn.json")) for n in remade)
    # the operational chain did not run again: only the request's steps, previews, notices
    assert {t for t, _ in done} <= {"stage2.reprocess", "stage3.reprocess", "preview.make", "notifier.match"}
    with ctx.catalog.session() as s:
        view = request_view(s, view["id"])
        rows = {p.filename: p for p in s.scalars(select(Product).where(Product.filename.in_(remade)))}
        old = s.scalars(select(Product).where(Product.filename.in_(remade), Product.is_current.is_(False))).all()
        archived = s.scalars(select(EventRecord).where(EventRecord.type == EventType.PRODUCT_ARCHIVED,
                                                       EventRecord.subject.in_(remade))).all()
        rep = report(s, view["id"])
    assert view["state"] == "done" and view["progress"]["done"] == view["progress"]["units"] == 3
    assert all(p.request_id == view["id"] and p.reason["reason"] == "new flat-field algorithm"
               for p in rows.values() if p.is_current)
    assert len(old) == len(remade) and all(o.superseded_at is not None for o in old)
    # one announcement per new revision, carrying the request and why
    new_archived = [e for e in archived if e.data.get("reprocessing")]
    assert sorted(e.subject for e in new_archived) == sorted(remade)
    assert {e.data["reprocessing"]["request_id"] for e in new_archived} == {view["id"]}
    assert {p["filename"] for p in rep["products"]} == remade
    assert all(p["state"] == "current" and p["replaces"] == p["revision"] - 1 for p in rep["products"])
    # same software, same references: what changed is nothing but the request's own cards
    changes = {p["filename"]: p["changes"] for p in rep["products"]}
    cal_changes = [c for n, c in changes.items() if n.endswith("_cal.fits")]
    assert cal_changes and all(c["comparable"] and c["sci"]["median_rel"] == 0 and c["sci"]["p99_rel"] == 0
                               and c["dq_changed_fraction"] == 0 for c in cal_changes)
    cat = next(c for n, c in changes.items() if n.endswith("_cat.ecsv"))
    assert cat["added"] == cat["lost"] == 0 and cat["matched"] == cat["sources_old"] > 0
    # the product itself says which request made it
    cal = next(n for n in remade if n.endswith("_cal.fits"))
    from tests.imaging_chain import ChainRun
    path = ChainRun(None, ctx, [], {}).path(cal)
    assert fits.getheader(path)["DMSREQID"] == view["id"]


def test_a_request_runs_a_split_stage3_on_its_own_queue(archived, tmp_path):
    """With the association split across tasks (docs/stage3.md), a request's stage-3 run
    goes in parts on the reprocessing queue, stages what it makes like an unsplit run,
    and its last part ends the step: the request is done with the same products remade."""
    ctx, inline = _copy(archived, tmp_path, stage3_split_members=2)
    try:
        before = current(ctx)
        view, _, ids = submit(ctx, program=PROGRAM, scope=Scope(observations=(1,)), from_stage="stage3",
                              reason="a better outlier threshold")
        done = run(ctx, inline, ids)
        tasks = [t for t, _ in done]
        remade = changed(before, current(ctx))
        assert {n.rsplit("_", 1)[1] for n in remade} == {"i2d.fits", "crf.fits", "cat.ecsv", "segm.fits"}, remade
        members = sum(n.endswith("_crf.fits") for n in remade)
        assert members >= 2 and "stage3.part" not in tasks
        assert tasks.count("stage3.reprocess") == 1 and tasks.count("stage3.reprocess-part") == 3 * members + 2
        with ctx.catalog.session() as s:
            assert request_view(s, view["id"])["state"] == "done"
    finally:
        ctx.catalog.dispose()


def test_a_dead_lettered_part_fails_the_request_step(archived, tmp_path, monkeypatch):
    """A part of a split run that fails for good fails its request's unit, as a failed
    unsplit step does: the _crf a member part staged are abandoned, the old set stays."""
    ctx, inline = _copy(archived, tmp_path, stage3_split_members=2)
    import services.stage3.parts as parts

    def broken(*args, **kwargs):
        raise ValueError("a defect in the new mosaic")

    monkeypatch.setattr(parts, "image3_mosaic", broken)
    try:
        before = current(ctx)
        view, _, ids = submit(ctx, program=PROGRAM, scope=Scope(observations=(1,)), from_stage="stage3",
                              reason="will fail in the mosaic")
        dispatch_events(ctx.catalog, inline, event_ids=ids)
        done = inline.run_until_idle()
        assert [o.status for t, o in done if t == "stage3.reprocess-part"][-1] == "failed"
        with ctx.catalog.session() as s:
            view = request_view(s, view["id"])
            abandoned = s.scalars(select(Product).where(Product.request_id == view["id"],
                                                        Product.abandoned_at.is_not(None))).all()
        assert view["state"] == "failed" and "defect in the new mosaic" in view["error"]
        assert abandoned and all(p.filename.endswith("_crf.fits") for p in abandoned)
        assert current(ctx) == before
    finally:
        ctx.catalog.dispose()


def test_the_same_request_twice_is_one_request(system):
    ctx, inline = system
    first, new, ids = submit(ctx, program=PROGRAM, scope=Scope(exposures=(E1,)), from_stage="detector1",
                             reason="bias drift")
    run(ctx, inline, ids)
    before = current(ctx)
    again, new_again, ids_again = submit(ctx, program=PROGRAM, scope=Scope(exposures=(E1,)),
                                         from_stage="detector1", reason="asked again")
    assert (again["id"], new_again, ids_again) == (first["id"], False, [])
    assert current(ctx) == before


def test_detector1_request_for_one_exposure_then_its_association(system):
    ctx, inline = system
    before = current(ctx)
    view, _, ids = submit(ctx, program=PROGRAM, scope=Scope(exposures=(E1,)), from_stage="detector1",
                          reason="new dark")
    run(ctx, inline, ids)
    remade = changed(before, current(ctx))
    assert {n for n in remade if n.startswith(E1)} >= {f"{E1}_rate.fits", f"{E1}_cal.fits", f"{E1}_o001_crf.fits"}
    assert not any(n.startswith(E2) and not n.endswith("_crf.fits") for n in remade)  # E2's chain untouched
    assert any(n.endswith("_i2d.fits") and n.startswith("jw01234-o001") for n in remade)
    with ctx.catalog.session() as s:
        units = {u.name: (u.kind, u.stage, u.state) for u in s.scalars(select(ReprocessingUnit))}
        asn = s.scalars(select(Association).where(Association.product_name == E1, Association.level == 2)).one()
    assert units[E1] == ("exposure", "stage2", "done")
    # the association rows follow the member revisions the request made current
    assert [m for m in asn.members if m[0] == f"{E1}_rate.fits"][0][1] == current(ctx)[f"{E1}_rate.fits"]


def test_cancelled_before_it_ran_changes_nothing(system):
    ctx, inline = system
    before = current(ctx)
    view, _, ids = submit(ctx, program=PROGRAM, scope=Scope(), from_stage="detector1", reason="to cancel")
    cancelled, more = cancel(ctx, view["id"])
    assert cancelled["state"] == "cancelled"
    run(ctx, inline, ids + more)
    assert current(ctx) == before
    with ctx.catalog.session() as s:
        assert request_view(s, view["id"])["state"] == "cancelled"


def test_a_failed_step_leaves_the_old_set_current(system, monkeypatch):
    ctx, inline = system
    before = current(ctx)
    import services.stage3.task as stage3

    def broken(*args, **kwargs):
        raise ValueError("a defect in the new resampling")

    monkeypatch.setattr(stage3, "calibrate", broken)
    view, _, ids = submit(ctx, program=PROGRAM, scope=Scope(observations=(1,)), from_stage="stage2",
                          reason="will fail in stage 3")
    dispatch_events(ctx.catalog, inline, event_ids=ids)
    inline.run_until_idle()
    after = current(ctx)
    remade = changed(before, after)
    # the exposure units completed (their own unit), the association's did not
    assert remade and all(n.startswith("jw01234001001") and not n.endswith("_crf.fits") for n in remade)
    with ctx.catalog.session() as s:
        view = request_view(s, view["id"])
        abandoned = s.scalars(select(Product).where(Product.request_id == view["id"],
                                                    Product.abandoned_at.is_not(None))).all()
        level3 = s.scalars(select(Product).where(Product.filename.like("jw01234-o001%"),
                                                 Product.request_id == view["id"])).all()
    assert view["state"] == "failed" and "defect in the new resampling" in view["error"]
    assert level3 == [] and abandoned == []  # nothing staged: it failed before archiving
    assert all(after[n] == before[n] for n in before if n.startswith("jw01234-o001"))


@pytest.mark.parametrize("scope, stage, message", [
    (Scope(exposures=("jw01234001001_01101_00009_nrca1",)), "stage2", "no exposure"),
    (Scope(observations=(7,)), "stage2", "no observation 7"),
    (Scope(products=("jw01234001001_01101_00001_nrcb1_cal.fits",)), "stage2", "not a current product"),
    (Scope(), "stage4", "unknown stage"),
])
def test_bad_requests_say_what_to_change(system, scope, stage, message):
    ctx, _ = system
    with pytest.raises(RequestError, match=message):
        submit(ctx, program=PROGRAM, scope=scope, from_stage=stage, reason="x")
    with pytest.raises(RequestError, match="no program 09999"):
        submit(ctx, program="09999", scope=Scope(), from_stage="stage2", reason="x")
    with pytest.raises(RequestError, match="no reference context dms_0099"):
        submit(ctx, program=PROGRAM, scope=Scope(), from_stage="stage2", reference_context="dms_0099.ctx",
               reason="x")
