"""stage3 as a service: Level-3 associations archived -> ``stage3.run`` -> ``_crf`` per
member and ``_i2d``/``_cat``/``_segm`` archived with provenance, asn id, their observation
and the release date of the latest member (``_crf`` and ``_segm`` as AUXILIARY);
``_crfints``/``_phot`` for tso3. Embedded settings (local store, SQLite catalog); members are synthetic ``_cal`` products (tests/stage3_scenes.py)
archived the way stage 2 archives them.
"""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import QTable, Table
from sqlalchemy import select

from services.stage3.refcat import load_astrometric_catalog
from services.stage3.task import HANDLERS, handle_association
from services.stage3.work import sweep_work
from shared.archiving import archive_product
from shared.asn import AssociationError
from shared.catalog import EventRecord, FanIn, Product, WorkItem, WorkState
from shared.catalog.queries import (
    current_product,
    event_from_record,
    upsert_exposure,
    upsert_program,
)
from shared.datamodels import write_product
from shared.errors import InputError, NonRetriableError, is_retriable
from shared.messages import Event
from shared.naming import parse_exposure
from shared.resample import resample
from shared.runtime import InlineTransport, ServiceContext, run_handler
from shared.storage import Bucket
from tests.stage3_scenes import (
    cal_product,
    calints_product,
    make_exposures,
    make_sky,
    make_time_series,
)
from tests.telemetry_factory import tiny_plan

PRODUCT = "jw01234-o001_t001_nircam_clear-f200w-sub160"
TSO_PRODUCT = "jw01234-o002_t001_nircam_clear-f200w-sub64p"


def _asn(asn_type: str, acid: str, product: str, members: list[str]) -> dict:
    return {
        "asn_type": asn_type, "asn_rule": "candidate_Asn_Lv3Image" if asn_type == "image3" else "candidate_Asn_Lv3TSO",
        "version_id": "20250101t000000", "code_version": "0.1.0",
        "degraded_status": "No known degraded exposures in association.", "program": "01234",
        "constraints": "test", "asn_id": acid, "target": "t001", "asn_pool": "jw01234_20250101t000000_pool.csv",
        "products": [{"name": product, "members": [
            {"expname": m, "exptype": "science", "exposerr": "null", "asn_candidate": f"('{acid}', 'observation')"}
            for m in members]}],
    }


@pytest.fixture
def ctx(embedded_settings):
    """Stage 3 in one task (the split run has tests of its own below)."""
    context = ServiceContext.from_settings(embedded_settings.model_copy(update={"stage3_split_members": 0}))
    context.catalog.upgrade()
    plan = tiny_plan()
    plan = plan.model_copy(update={"observations": [plan.observations[0],
                                                    plan.observations[0].model_copy(update={"number": 2})]})
    with context.catalog.session() as s:
        upsert_program(s, plan)
    return context


def _archive_member(ctx, tmp: Path, product, observation: int, release: datetime) -> str:
    name = product.keywords["FILENAME"]
    parsed = parse_exposure(name)
    with ctx.catalog.session() as s:
        exposure = upsert_exposure(
            s, "01234", observation, parsed.exposure_id, visit=parsed.visit, visit_group=parsed.visit_group,
            sequence=parsed.sequence, activity=parsed.activity, exposure=parsed.exposure, detector="NRCA1",
            exp_type=product.keywords["EXP_TYPE"], filter="F200W", pupil="CLEAR", readpatt="RAPID",
            subarray="SUB160", ngroups=3, nints=1)
    path = write_product(tmp / name, product)
    archived = archive_product(ctx, path, suffix=parsed.suffix, level=2, program="01234",
                               observation=observation, exposure=exposure, inputs=["x"], source="/test")
    with ctx.catalog.session() as s:
        s.get(Product, archived.product_id).data_release = release
    return name


def _archive_asn(ctx, tmp: Path, doc: dict, filename: str, observation: int) -> Event:
    path = tmp / filename
    path.write_text(json.dumps(doc, indent=4) + "\n")
    archived = archive_product(ctx, path, suffix="asn", level=3, program="01234", observation=observation,
                               exposure=None, inputs=[], source="/test", product_type="AUXILIARY",
                               content_type="application/json", asn_id=doc["asn_id"], asn_type=doc["asn_type"])
    with ctx.catalog.session() as s:
        return event_from_record(s.get(EventRecord, archived.event_id))


@pytest.fixture
def image3_setup(ctx, tmp_path):
    sky = make_sky(150, radius_arcsec=3.5, seed=3)
    exposures = make_exposures(sky, pointing_errors=[(0.05, -0.03), (-0.1, 0.2), (0.25, -0.1), (0.0, 0.3)], n_cr=20)
    base = datetime(2026, 6, 1, tzinfo=UTC)
    names = [_archive_member(ctx, tmp_path, cal_product(e, exposure_number=k + 1), 1, base + timedelta(days=k))
             for k, e in enumerate(exposures)]
    return sky, names, base + timedelta(days=len(names) - 1)


def _products(ctx) -> dict[str, Product]:
    with ctx.catalog.session() as s:
        rows = s.scalars(select(Product).where(Product.is_current)).all()
        for r in rows:
            r.artifacts  # noqa: B018 - load while the session is open
        return {r.filename: r for r in rows}


def test_image3_archives_every_product(ctx, tmp_path, image3_setup):
    sky, names, latest = image3_setup
    asn_file = "jw01234-o001_20250101t000000_image3_00001_asn.json"
    event = _archive_asn(ctx, tmp_path, _asn("image3", "o001", PRODUCT, names), asn_file, 1)
    ids = handle_association(event, ctx)
    products = _products(ctx)
    crf = [f"{n.rsplit('_', 1)[0]}_o001_crf.fits" for n in names]
    level3 = [f"{PRODUCT}_i2d.fits", f"{PRODUCT}_segm.fits", f"{PRODUCT}_cat.ecsv"]
    assert set(crf + level3) <= set(products)
    assert len(ids) == len(crf) + len(level3)
    observations = {products[m].observation_id for m in names}
    assert len(observations) == 1 and None not in observations
    for name, member in zip(crf, names, strict=True):
        p = products[name]
        assert p.level == 3 and p.exposure_id is not None and p.inputs == [member, asn_file]
        assert p.reference_context == "jwst_0001.pmap"
        # 2c: an intermediate, released with the association's latest member (not its own)
        assert p.product_type == "AUXILIARY" and p.data_release.replace(tzinfo=UTC) == latest
    assert products[crf[0]].data_release > products[names[0]].data_release
    for name in level3:
        p = products[name]
        assert p.exposure_id is None and p.inputs == [*names, asn_file]
        assert p.data_release.replace(tzinfo=UTC) == latest
        assert p.observation_id in observations  # belongs to its members' observation
    assert {n: products[n].product_type for n in level3} == {
        f"{PRODUCT}_i2d.fits": "SCIENCE", f"{PRODUCT}_segm.fits": "AUXILIARY", f"{PRODUCT}_cat.ecsv": "SCIENCE"}
    assert products[f"{PRODUCT}_cat.ecsv"].artifacts[0].content_type == "text/plain"
    # The event carries the association id; the i2d names its association.
    with ctx.catalog.session() as s:
        ev = s.get(EventRecord, ids[-1])
        assert ev.data["product"]["asn_id"] == "o001"
        uri = products[f"{PRODUCT}_i2d.fits"].artifacts[0].uri
    local = tmp_path / "i2d.fits"
    ctx.store.download_uri(uri, local)
    assert fits.getheader(local)["ASNTABLE"] == asn_file and fits.getheader(local)["S_TWKREG"] == "COMPLETE"
    cat_local = tmp_path / "cat.ecsv"
    ctx.store.download_uri(products[f"{PRODUCT}_cat.ecsv"].artifacts[0].uri, cat_local)
    assert len(QTable.read(cat_local, format="ascii.ecsv")) > 30
    # A retry stores nothing new.
    assert handle_association(event, ctx) == []


class _Recorder:
    """A transport that notes the messages sent and sets ``all_sent`` once the products
    named in ``awaited`` have each gone out."""

    def __init__(self, awaited: set[str]):
        self.awaited, self.sent, self.all_sent = awaited, [], threading.Event()

    def send(self, task, event):
        self.sent.append((event.subject, task))
        if self.awaited <= {subject for subject, _ in self.sent}:
            self.all_sent.set()


def test_crf_events_leave_before_the_mosaic_is_made(ctx, tmp_path, image3_setup, monkeypatch):
    _, names, _ = image3_setup
    event = _archive_asn(ctx, tmp_path, _asn("image3", "o001", PRODUCT, names),
                         "jw01234-o001_20250101t000000_image3_00001_asn.json", 1)
    crf = {f"{n.rsplit('_', 1)[0]}_o001_crf.fits" for n in names}
    recorder = _Recorder(crf)
    seen_by_resample = []

    def resample_once_the_crf_are_out(*args, **kwargs):
        # The mosaic waits (30 s at most) for the _crf messages: they must not wait for it.
        seen_by_resample.append(recorder.all_sent.wait(30))
        return resample(*args, **kwargs)

    monkeypatch.setattr("services.stage3.pipeline.resample", resample_once_the_crf_are_out)
    outcome = run_handler("stage3.run", handle_association, event.to_json_dict(), replace(ctx, transport=recorder))
    assert outcome.status == "ok", outcome.error
    assert seen_by_resample == [True]
    assert {subject for subject, _ in recorder.sent} >= crf | {f"{PRODUCT}_i2d.fits", f"{PRODUCT}_cat.ecsv"}
    with ctx.catalog.session() as s:  # the work item is done, with the last Level-3 product
        assert s.scalar(select(WorkItem.state).where(WorkItem.event_id == event.id,
                                                     WorkItem.task == "stage3.run")) == WorkState.DONE


def test_image3_aligns_to_the_configured_catalog(ctx, tmp_path, image3_setup, embedded_settings):
    sky, names, _ = image3_setup
    catalogs = tmp_path / "astrometric"
    catalogs.mkdir()
    Table({"ra": sky.ra, "dec": sky.dec}).write(catalogs / "field.ecsv", format="ascii.ecsv")
    (catalogs / "broken.ecsv").write_text("not a table")
    ctx.settings = ctx.settings.model_copy(update={"astrometric_catalog_dir": catalogs})
    assert len(load_astrometric_catalog(catalogs)[0]) == len(sky.ra)
    event = _archive_asn(ctx, tmp_path, _asn("image3", "o001", PRODUCT, names),
                         "jw01234-o001_20250101t000000_image3_00001_asn.json", 1)
    handle_association(event, ctx)
    uri = _products(ctx)[f"{names[0].rsplit('_', 1)[0]}_o001_crf.fits"].artifacts[0].uri
    local = tmp_path / "crf.fits"
    ctx.store.download_uri(uri, local)
    assert fits.getheader(local, "SCI")["TWKREF"] == "absolute"


def test_stale_association_and_missing_member(ctx, tmp_path, image3_setup):
    _, names, _ = image3_setup
    asn_file = "jw01234-o001_20250101t000000_image3_00001_asn.json"
    first = _archive_asn(ctx, tmp_path, _asn("image3", "o001", PRODUCT, names[:2]), asn_file, 1)
    _archive_asn(ctx, tmp_path, _asn("image3", "o001", PRODUCT, names), asn_file, 1)  # revision 2
    with ctx.catalog.session() as s:
        assert current_product(s, asn_file).revision == 2
    assert handle_association(first, ctx) == []
    missing = _archive_asn(ctx, tmp_path, _asn("image3", "o001", PRODUCT, [*names, "jw01234001001_02101_00009_nrca1_cal.fits"]),
                           "jw01234-o001_20250101t000000_image3_00002_asn.json", 1)
    with pytest.raises(InputError, match="00009_nrca1_cal.fits is not archived") as raised:
        handle_association(missing, ctx)
    assert not is_retriable(raised.value)
    bad = _asn("coron3", "o001", PRODUCT, names)
    wrong = _archive_asn(ctx, tmp_path, bad, "jw01234-o001_20250101t000000_coron3_00001_asn.json", 1)
    with pytest.raises(AssociationError, match="stage 3 runs image3, tso3, spec3"):
        handle_association(wrong, ctx)
    # a spec3 association of imaging exposures: refused with the reason, not retried
    imaging = _archive_asn(ctx, tmp_path, _asn("spec3", "o001", PRODUCT, names),
                           "jw01234-o001_20250101t000000_spec3_00001_asn.json", 1)
    with pytest.raises(InputError, match="spec3 combines MIR_LRS-FIXEDSLIT, MIR_MRS, NRS_FIXEDSLIT, NRS_MSASPEC exposures, not NRC_IMAGE") as raised:
        handle_association(imaging, ctx)
    assert not is_retriable(raised.value)


def test_a_member_whose_object_is_not_what_the_catalog_records_is_refused(ctx, tmp_path, image3_setup):
    """A member's stored bytes that differ from the catalog's sha256 (changed behind the
    archive's back) stop the task with the reason, not retried: reading it again cannot help."""
    _, names, _ = image3_setup
    event = _archive_asn(ctx, tmp_path, _asn("image3", "o001", PRODUCT, names),
                         "jw01234-o001_20250101t000000_image3_00001_asn.json", 1)
    stored = Path(ctx.store.local_path(*ctx.store.parse_uri(_products(ctx)[names[1]].artifacts[0].uri)))
    stored.write_bytes(stored.read_bytes()[:-2880])  # its last FITS block lost
    with pytest.raises(NonRetriableError, match=f"{names[1]} does not have the sha256 the catalog records") as raised:
        handle_association(event, ctx)
    assert not is_retriable(raised.value)


def _split(ctx, members: int) -> ServiceContext:
    """``ctx`` splitting image3 associations of ``members`` or more, with an inline
    transport running the stage-3 tasks (the others' messages dropped)."""
    inline = InlineTransport(dict(HANDLERS), strict=False)
    split = replace(ctx, settings=ctx.settings.model_copy(update={"stage3_split_members": members}), transport=inline)
    inline.ctx = split
    return split


def _arrays(ctx, tmp: Path, filename: str) -> dict[str, np.ndarray]:
    local = tmp / f"read-{filename}"
    ctx.store.download_uri(_products(ctx)[filename].artifacts[0].uri, local)
    with fits.open(local) as hdul:
        return {h.name: np.array(h.data) for h in hdul if h.is_image and h.data is not None}


def test_split_run_makes_the_products_of_one_task(ctx, tmp_path, image3_setup):
    """At ``stage3_split_members`` the association's task records one survey part per
    member and ends; the phases follow (each member surveyed, resampled alone, its median,
    each member flagged, its _crf archived and its contribution made, the mosaic), each
    started by the task that ends the one before. The products are those one task makes
    (the same arrays and step keywords); dms-work is empty after. A task run again
    records nothing more."""
    _, names, _ = image3_setup
    asn_file = "jw01234-o001_20250101t000000_image3_00001_asn.json"
    crf = [f"{n.rsplit('_', 1)[0]}_o001_crf.fits" for n in names]
    one = _archive_asn(ctx, tmp_path, _asn("image3", "o001", PRODUCT, names), asn_file, 1)
    handle_association(one, ctx)
    expected = {f: _arrays(ctx, tmp_path, f) for f in [*crf, f"{PRODUCT}_i2d.fits"]}
    # the same association again (a second revision), split
    split = _split(ctx, 4)
    event = _archive_asn(ctx, tmp_path, {**_asn("image3", "o001", PRODUCT, names), "code_version": "0.1.1"},
                         asn_file, 1)
    with ctx.catalog.session() as s:  # archived a day later: its products' DATE is not the first run's
        current_product(s, asn_file).archived_at += timedelta(days=1)  # (within one second it would be)
    started = run_handler("stage3.run", handle_association, event.to_json_dict(), split)
    assert started.status == "ok" and len(started.event_ids) == len(names)
    with ctx.catalog.session() as s:
        parts = [event_from_record(s.get(EventRecord, i)) for i in started.event_ids]
        assert [(p.payload.phase, p.payload.part, p.subject) for p in parts] == [
            ("survey", k, n) for k, n in enumerate(names)]
        assert [m.filename for m in parts[0].payload.members] == names
        assert s.get(FanIn, f"{parts[0].payload.run}:survey").parts == 4
    assert _products(ctx)[f"{PRODUCT}_i2d.fits"].revision == 1  # nothing combined yet
    phases = []
    ran = split.transport.run_until_idle(lambda task, outcome: phases.append(outcome.status))
    assert [t for t, _ in ran] == ["stage3.part"] * 14 and set(phases) == {"ok"}, [o.error for _, o in ran]
    with ctx.catalog.session() as s:
        order = [event_from_record(s.get(EventRecord, i)).payload.phase for _, o in ran for i in o.event_ids
                 if s.get(EventRecord, i).type == "dms.stage3.part"]
    assert order == ["single"] * 4 + ["median"] + ["member"] * 4 + ["mosaic"]
    products = _products(ctx)
    assert products[f"{PRODUCT}_i2d.fits"].revision == 2 and products[crf[0]].revision == 2
    for filename, arrays in expected.items():
        got = _arrays(ctx, tmp_path, filename)
        assert got.keys() == arrays.keys()
        assert all(np.array_equal(got[k], arrays[k], equal_nan=True) for k in arrays), filename
    assert {f"{PRODUCT}_cat.ecsv", f"{PRODUCT}_segm.fits"} <= set(products)
    assert products[f"{PRODUCT}_i2d.fits"].inputs == [*names, asn_file]
    assert products[crf[1]].inputs == [names[1], asn_file] and products[crf[1]].exposure_id is not None
    assert list(ctx.store.list_keys(Bucket.WORK)) == []  # the run's intermediates are removed
    # Run again: the association records nothing; a part's message again is a duplicate.
    assert handle_association(event, split) == []
    again = run_handler("stage3.part", HANDLERS["stage3.part"], parts[0].to_json_dict(), split)
    assert again.status == "ok" and again.note == "already done"
    assert _products(ctx)[f"{PRODUCT}_i2d.fits"].revision == 2
    # Had the mosaic's worker died between archiving and removing the run's intermediates,
    # the reconciler's sweep removes them: the run's mosaic task is done.
    run = parts[0].payload.run
    left = f"{run.replace(':', '/')}/member/0000-leftover.npz"
    ctx.store.put_bytes(Bucket.WORK, left, b"left over", "application/octet-stream")
    assert sweep_work(ctx, retention_seconds=7 * 86400) == [run]
    assert list(ctx.store.list_keys(Bucket.WORK)) == []


def test_sweep_keeps_what_a_run_may_still_need(ctx, tmp_path, image3_setup):
    """The sweep leaves a run with a part pending or running alone; a run whose parts all
    failed keeps its intermediates for the retention time (an operator may send a failed
    part again), then loses them."""
    _, names, _ = image3_setup
    split = _split(ctx, 4)
    event = _archive_asn(ctx, tmp_path, _asn("image3", "o001", PRODUCT, names),
                         "jw01234-o001_20250101t000000_image3_00001_asn.json", 1)
    started = run_handler("stage3.run", handle_association, event.to_json_dict(), split)
    assert started.status == "ok" and len(started.event_ids) == len(names)  # the survey parts, pending
    with ctx.catalog.session() as s:
        run = event_from_record(s.get(EventRecord, started.event_ids[0])).payload.run
    key = f"{run.replace(':', '/')}/survey/0000-result.npz"
    ctx.store.put_bytes(Bucket.WORK, key, b"a survey", "application/octet-stream")
    assert sweep_work(ctx, retention_seconds=60) == []  # parts pending: the run goes on
    later = datetime.now(UTC) + timedelta(days=8)
    assert sweep_work(ctx, retention_seconds=7 * 86400, now=later) == []  # still pending, however old
    with ctx.catalog.session() as s:  # every part failed (dead-lettered)
        for item in s.scalars(select(WorkItem).where(WorkItem.event_id.in_(started.event_ids))):
            item.state = WorkState.FAILED
    assert sweep_work(ctx, retention_seconds=7 * 86400) == []  # kept for a retry
    assert list(ctx.store.list_keys(Bucket.WORK)) == [key]
    assert sweep_work(ctx, retention_seconds=7 * 86400, now=later) == [run]  # abandoned
    assert list(ctx.store.list_keys(Bucket.WORK)) == []


def test_tso3_archives_crfints_and_phot(ctx, tmp_path):
    ts = make_time_series(nints=60)
    name = _archive_member(ctx, tmp_path, calints_product(ts), 2, datetime(2026, 6, 1, tzinfo=UTC))
    event = _archive_asn(ctx, tmp_path, _asn("tso3", "o002", TSO_PRODUCT, [name]),
                         "jw01234-o002_20250101t000000_tso3_00001_asn.json", 2)
    ids = handle_association(event, ctx)
    products = _products(ctx)
    assert len(ids) == 2
    assert {"jw01234002001_01101_00001_nrca1_o002_crfints.fits", f"{TSO_PRODUCT}_phot.ecsv"} <= set(products)
    local = tmp_path / "phot.ecsv"
    ctx.store.download_uri(products[f"{TSO_PRODUCT}_phot.ecsv"].artifacts[0].uri, local)
    phot = QTable.read(local, format="ascii.ecsv")
    assert len(phot) == 60 and np.all(np.isfinite(phot["net_aperture_sum"].value))
