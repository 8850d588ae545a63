"""Associations of wide-field slitless spectroscopy (NIRISS GR150R/GR150C, NIRCam GRISMR):
a spec2 per dispersed exposure with its direct images' Level-3 products (Asn_Lv2WFSSNIS,
Asn_Lv2WFSSNRC), waiting for their source catalog; a spec3 of the dispersed exposures
(Asn_Lv3WFSSNIS, Asn_Lv3WFSSNRC); the direct images' own image2 and image3; compared with
the public generator on our pool, member for member and name for name. Then the service
over a real catalog: an archived source catalog completes the waiting spec2."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from services.associations.builder import evaluate, spec_key
from services.associations.rules import WFSS_MEMBER_TYPES, wfss_catalog_members
from services.associations.state import ProductRecord, ProgramState
from shared.plan import DirectImage, Observation, Plan, PlannedExposure, Pointing
from tests.associations_factory import T0, exposure_ids, make_plan, snapshot
from tests.test_associations_tso_spec import (
    _loads_in_the_public_pipeline,
    _ours,
    _public,
    _write_pool,
)

ALL = ("uncal", "rate", "cal")
NIS_DIRECT = "jw01234-o001_t001_niriss_clear-f150w"
NRC_DIRECT = "jw01234-o003_t001_nircam_clear-f444w"


def wfss(number: int, instrument: str, grism: str, blocking: str, *, detectors=("NIS",), npoints: int = 2,
         subarray: str = "FULL") -> Observation:
    """A wide-field slitless observation as APT sequences it: a direct image (activity 1),
    the dispersed exposures at ``npoints`` dither points (activity 2), a direct image
    (activity 3). NIRISS: the grism in the filter wheel, the blocking filter in the pupil
    wheel; NIRCam: the filter, then the grism in the pupil wheel."""
    nircam = instrument == "NIRCAM"
    filter, pupil = (blocking, grism) if nircam else (grism, blocking)
    direct = DirectImage(exp_type="NRC_IMAGE" if nircam else "NIS_IMAGE", filter=blocking if nircam else "CLEAR",
                         pupil="CLEAR" if nircam else blocking, activities=[1, 3])
    exposures, k = [], 0
    for activity, count in ((1, 1), (2, npoints), (3, 1)):
        for point in range(1, count + 1):
            k += 1
            exposures += [PlannedExposure(visit=1, activity=activity, exposure=point, detector=d, dither_point=point,
                                          start_time=T0 + timedelta(hours=number, minutes=10 * k),
                                          pointing=Pointing(ra=53.16, dec=-27.78)) for d in detectors]
    return Observation.model_validate({
        "number": number, "target_id": 1, "template": f"{instrument.title()} Wide Field Slitless Spectroscopy",
        "instrument": instrument, "exp_type": "NRC_WFSS" if nircam else "NIS_WFSS", "detectors": list(detectors),
        "filter": filter, "pupil": pupil, "readpatt": "RAPID" if nircam else "NIS", "ngroups": 3, "nints": 1,
        "subarray": subarray, "dither": {"pattern_type": "4-POINT", "offsets": [(0.5 * i, 0.25 * i) for i in range(npoints)]},
        "exposures": exposures, "direct_image": direct})


def wfss_plan() -> Plan:
    return make_plan([wfss(1, "NIRISS", "GR150R", "F150W"), wfss(2, "NIRISS", "GR150C", "F150W"),
                      wfss(3, "NIRCAM", "GRISMR", "F444W", detectors=("NRCALONG",))])


def dispersed(plan: Plan, number: int) -> list[str]:
    return [i for i in exposure_ids(plan, number) if "_01102_" in i]


def direct(plan: Plan, number: int) -> list[str]:
    return [i for i in exposure_ids(plan, number) if "_01102_" not in i]


def with_level3(state: ProgramState, names: list[str], *, revision: int = 1, seconds: int = 100) -> ProgramState:
    """``state`` with these Level-3 products current (archived ``seconds`` after T0)."""
    found = {n: ProductRecord(n, n.rsplit("_", 1)[1].split(".")[0], revision, None, T0 + timedelta(seconds=seconds))
             for n in names}
    return replace(state, level3={**state.level3, **found})


def image3_products(*roots: str) -> list[str]:
    return [f"{r}_{suffix}.{ext}" for r in roots for suffix, ext in WFSS_MEMBER_TYPES.values()]


def test_wfss_as_the_public_generator(tmp_path):
    """NIRISS with each grism (two observations, two dither points each) and NIRCam's
    GRISMR: a spec2 per dispersed exposure (its _rate, then the direct images' _i2d,
    _cat.ecsv and _segm named for their image3 product), a spec3 per observation of the
    dispersed _cal named without the direct images, and the direct images' own image2 and
    image3; the public generator makes the same from our pool."""
    plan = wfss_plan()
    ids = [i for o in plan.observations for i in exposure_ids(plan, o.number)]
    roots = [NIS_DIRECT, "jw01234-o002_t001_niriss_clear-f150w", NRC_DIRECT]
    ev = evaluate(plan, with_level3(snapshot(plan, {s: ids for s in ALL}), image3_products(*roots)))
    ours = _ours(ev)
    spec2 = sorted((a[0], a[2], a[3], tuple(sorted(a[4]))) for a in ours if a[1] == "spec2")
    assert [(acid, rule) for acid, _, rule, _ in spec2] == [
        ("o001", "candidate_Asn_Lv2WFSSNIS")] * 2 + [("o002", "candidate_Asn_Lv2WFSSNIS")] * 2 + [
        ("o003", "candidate_Asn_Lv2WFSSNRC")] * 2
    first = next(s for s in spec2 if s[1] == dispersed(plan, 1)[0])
    assert first[3] == tuple(sorted([
        (f"{dispersed(plan, 1)[0]}_rate.fits", "science"), (f"{NIS_DIRECT}_i2d.fits", "direct_image"),
        (f"{NIS_DIRECT}_cat.ecsv", "sourcecat"), (f"{NIS_DIRECT}_segm.fits", "segmap")]))
    level3 = {(a[0], a[1], a[2]): {m for m, _ in a[4]} for a in ours if a[1] in ("spec3", "image3")}
    assert level3 == {
        ("o001", "image3", NIS_DIRECT): {f"{i}_cal.fits" for i in direct(plan, 1)},
        ("o001", "spec3", "jw01234-o001_t001_niriss_f150w-gr150r"): {f"{i}_cal.fits" for i in dispersed(plan, 1)},
        ("o002", "image3", roots[1]): {f"{i}_cal.fits" for i in direct(plan, 2)},
        ("o002", "spec3", "jw01234-o002_t001_niriss_f150w-gr150c"): {f"{i}_cal.fits" for i in dispersed(plan, 2)},
        ("o003", "image3", NRC_DIRECT): {f"{i}_cal.fits" for i in direct(plan, 3)},
        ("o003", "spec3", "jw01234-o003_t001_nircam_f444w-grismr"): {f"{i}_cal.fits" for i in dispersed(plan, 3)},
    }
    assert {a[3] for a in ours if a[1] == "spec3"} == {"candidate_Asn_Lv3WFSSNIS", "candidate_Asn_Lv3WFSSNRC"}
    assert sorted(a[2] for a in ours if a[1] == "image2") == sorted(i for n in (1, 2, 3) for i in direct(plan, n))
    assert ours == _public(_write_pool(ev, tmp_path))
    _loads_in_the_public_pipeline(ev)
    rows = {r["FILENAME"]: r for r in ev.pool.rows}  # the direct images in the pool in their own mode
    assert (rows[f"{direct(plan, 1)[0]}_uncal.fits"]["EXP_TYPE"], rows[f"{direct(plan, 3)[0]}_uncal.fits"]["PUPIL"]) \
        == ("NIS_IMAGE", "CLEAR")


def test_niriss_subarray_names_the_direct_images_product(tmp_path):
    """NIRISS's Level-2 rule constrains the subarray, so the direct images' product it names
    carries it (as their image3 product does); the spec3 name has none."""
    plan = make_plan([wfss(1, "NIRISS", "GR150C", "F200W", subarray="SUB256", npoints=1)])
    root = "jw01234-o001_t001_niriss_clear-f200w-sub256"
    assert wfss_catalog_members(plan, plan.observation(1))["sourcecat"] == f"{root}_cat.ecsv"
    ids = exposure_ids(plan, 1)
    ev = evaluate(plan, with_level3(snapshot(plan, {s: ids for s in ALL}), image3_products(root)))
    ours = _ours(ev)
    assert {(a[1], a[2]) for a in ours if a[1] != "image2"} == {
        ("spec2", dispersed(plan, 1)[0]), ("image3", root), ("spec3", "jw01234-o001_t001_niriss_f200w-gr150c")}
    assert ours == _public(_write_pool(ev, tmp_path))


def test_spec2_waits_for_the_source_catalog():
    """Every _rate archived: the spec2s wait for the direct images' _cat.ecsv; once it is
    archived they are complete (the _i2d and _segm, archived by the same image3 run before
    it, are members when archived, awaited as optional ones when not); a new revision of
    the catalog (a late direct image re-made image3) changes the member set."""
    plan = make_plan([wfss(1, "NIRISS", "GR150R", "F150W")])
    ids = exposure_ids(plan, 1)
    state = snapshot(plan, {"uncal": ids, "rate": ids})
    cat, i2d, segm = (f"{NIS_DIRECT}_cat.ecsv", f"{NIS_DIRECT}_i2d.fits", f"{NIS_DIRECT}_segm.fits")

    def spec2s(st):
        return {x.spec.name: x.spec for x in evaluate(plan, st).associations if x.spec.asn_type == "spec2"}

    waiting = spec2s(state)
    assert sorted(waiting) == dispersed(plan, 1)
    for name, spec in waiting.items():
        assert not spec.complete and spec.waiting == (cat,) and spec.products == ()
        assert spec.expected == (f"{name}_rate.fits", cat)
        assert spec.optional_waiting == (i2d, segm)
    # the images' image2 do not wait for anything of the kind
    assert all(x.spec.complete for x in evaluate(plan, state).associations if x.spec.asn_type == "image2")

    only_cat = spec2s(with_level3(state, [cat]))
    for name, spec in only_cat.items():
        assert spec.complete and spec.optional_waiting == (i2d, segm)
        assert [(m.expname, m.exptype) for m in spec.members] == [(f"{name}_rate.fits", "science"), (cat, "sourcecat")]

    done = spec2s(with_level3(state, [cat, i2d, segm]))
    for name, spec in done.items():
        assert spec.complete and spec.optional_waiting == ()
        assert [m.exptype for m in spec.members] == ["science", "direct_image", "sourcecat", "segmap"]
        assert spec.signature != only_cat[name].signature

    again = spec2s(with_level3(state, [cat, i2d, segm], revision=2, seconds=200))
    assert all(again[n].signature != done[n].signature for n in done)
    # a dispersed exposure's _rate is still required
    missing = dispersed(plan, 1)[1]
    short = replace(state, exposures={k: v for k, v in state.exposures.items() if k != missing})
    spec = spec2s(with_level3(short, [cat]))[missing]
    assert spec.waiting == (f"{missing}_rate.fits",) and not spec.complete


def test_no_direct_images_no_wfss_spec2_and_time_series_keep_tso_spec2():
    """Without direct images the public rule makes no spec2 (it names the catalog from
    them); a WFSS time series stays with tso-spec2, as before."""
    obs = wfss(1, "NIRISS", "GR150R", "F150W")
    bare = obs.model_copy(update={"direct_image": None, "exposures": [e for e in obs.exposures if e.activity == 2]})
    plan = make_plan([bare])
    ids = exposure_ids(plan, 1)
    ev = evaluate(plan, snapshot(plan, {s: ids for s in ALL}))
    assert {(x.spec.asn_type, x.spec.asn_rule) for x in ev.associations} == {("spec3", "candidate_Asn_Lv3WFSSNIS")}
    tso = make_plan([obs.model_copy(update={"tsovisit": True})])
    ev = evaluate(tso, snapshot(tso, {s: exposure_ids(tso, 1) for s in ALL}))
    assert "candidate_Asn_Lv2WFSSNIS" not in {x.spec.asn_rule for x in ev.associations}
    assert {x.spec.asn_rule for x in ev.associations if x.spec.asn_type == "tso-spec2"} == {"candidate_Asn_Lv2SpecTSO"}


def test_report_names_the_awaited_catalog_members():
    from services.associations.report import member_views

    plan = make_plan([wfss(1, "NIRISS", "GR150R", "F150W", npoints=1)])
    ids = exposure_ids(plan, 1)
    ev = evaluate(plan, snapshot(plan, {"rate": ids}))
    item = next(x for x in ev.associations if x.spec.asn_type == "spec2" and "_01102_" in x.spec.name)
    assert [(v.filename, v.exptype, v.state) for v in member_views(item)] == [
        (f"{NIS_DIRECT}_cat.ecsv", "sourcecat", "waiting"), (f"{NIS_DIRECT}_i2d.fits", "direct_image", "waiting"),
        (f"{NIS_DIRECT}_segm.fits", "segmap", "waiting")]
    assert spec_key(item.spec) == ("o001", "spec2", dispersed(plan, 1)[0])


# ---------------------------------------------------------------- the service


@pytest.fixture
def ctx(tmp_path):
    from shared.config import Settings
    from shared.runtime import ServiceContext

    context = ServiceContext.from_settings(Settings(var_dir=tmp_path / "var", _env_file=None))
    context.catalog.upgrade()
    yield context
    context.catalog.dispose()


def archive_level3(ctx, plan: Plan, filename: str, tmp_path, content: str = "") -> str | None:
    """Archive a stand-in Level-3 product the way stage 3 does; returns its event id."""
    from shared.archiving import archive_product

    path = tmp_path / filename
    path.write_text(f"{filename}:{content}")
    suffix = filename.rsplit("_", 1)[1].split(".")[0]
    archived = archive_product(ctx, path, suffix=suffix, level=3, program=plan.program, observation=1, exposure=None,
                               inputs=[], source="/test/stage3", asn_id="o001",
                               content_type="text/plain" if suffix == "cat" else "application/fits")
    return archived.event_id


def test_an_archived_source_catalog_completes_the_spec2(ctx, tmp_path):
    """Over a real catalog: the _rate of every exposure makes the direct images' image2 and
    nothing for the dispersed ones; the direct images' Level-3 products, archived as stage 3
    archives them (their events routed to associations.update like every product made
    from an association), make the dispersed exposures' spec2 with the four members."""
    import json

    from sqlalchemy import select

    from services.associations.state import load_state
    from services.associations.task import handle_product
    from shared.catalog.models import Association, EventRecord, Product
    from shared.routing import routes_for
    from tests.associations_factory import deliver, outbox_event, store_plan

    plan = make_plan([wfss(1, "NIRISS", "GR150R", "F150W")])
    store_plan(ctx, plan)
    ids = exposure_ids(plan, 1)
    new = deliver(ctx, plan, tmp_path, ids, "uncal", level=1) + deliver(ctx, plan, tmp_path, ids, "rate")

    def asns(event_ids, asn_type):
        with ctx.catalog.session() as s:
            rows = [s.get(EventRecord, i) for i in event_ids]
        return [e for e in rows if e.data.get("asn_type") == asn_type]

    assert sorted(e.data["products"][0] for e in asns(new, "image2")) == direct(plan, 1)
    assert not asns(new, "spec2")
    with ctx.catalog.session() as s:
        rows = s.scalars(select(Association).where(Association.asn_type == "spec2")).all()
        assert sorted(r.product_name for r in rows) == dispersed(plan, 1)
        assert all(r.waiting == [f"{NIS_DIRECT}_cat.ecsv"] and not r.complete for r in rows)
    # a stage-2 _i2d of one exposure is not a Level-3 product
    deliver(ctx, plan, tmp_path, direct(plan, 1)[:1], "i2d")
    with ctx.catalog.session() as s:
        assert load_state(s, plan.program).level3 == {}

    made = []
    for name in (f"{NIS_DIRECT}_i2d.fits", f"{NIS_DIRECT}_segm.fits", f"{NIS_DIRECT}_cat.ecsv"):
        event = outbox_event(ctx, archive_level3(ctx, plan, name, tmp_path))
        assert "associations.update" in {r.task for r in routes_for(event)}
        made += handle_product(event, ctx)
    cat_event = event
    with ctx.catalog.session() as s:
        state = load_state(s, plan.program)
    assert sorted(state.level3) == sorted(image3_products(NIS_DIRECT))
    assert {p.revision for p in state.level3.values()} == {1}
    spec2 = asns(made, "spec2")
    assert sorted(e.data["products"][0] for e in spec2) == dispersed(plan, 1)
    with ctx.catalog.session() as s:
        product = s.scalar(select(Product).where(Product.filename == spec2[0].subject, Product.is_current))
        doc = json.loads(ctx.store.get_uri(product.artifacts[0].uri))
    assert doc["asn_rule"] == "candidate_Asn_Lv2WFSSNIS" and doc["asn_type"] == "spec2"
    assert [(m["expname"], m["exptype"]) for m in doc["products"][0]["members"]] == [
        (f"{doc['products'][0]['name']}_rate.fits", "science"), (f"{NIS_DIRECT}_i2d.fits", "direct_image"),
        (f"{NIS_DIRECT}_cat.ecsv", "sourcecat"), (f"{NIS_DIRECT}_segm.fits", "segmap")]
    # the same catalog event again: nothing new; a new revision of the catalog: new spec2s
    assert handle_product(cat_event, ctx) == []
    again = handle_product(outbox_event(ctx, archive_level3(ctx, plan, f"{NIS_DIRECT}_cat.ecsv", tmp_path,
                                                            content="re-made")), ctx)
    assert sorted(e.data["products"][0] for e in asns(again, "spec2")) == dispersed(plan, 1)
