"""The association summary report: made by the associations service over a real catalog
(SQLite and PostgreSQL) and object store, archived as a program product, a new revision
only when its content changes, naming every association with its rule, members and what
it waits for, with one footprint per member; served by the archive API; and the report
of the demo's imaging program through the embedded chain."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html.parser import HTMLParser
from xml.etree import ElementTree

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from services.archive.app import create_app
from services.associations.builder import evaluate
from services.associations.state import load_state
from services.associations.task import handle_product
from shared.archiving import archive_product
from shared.catalog.models import Artifact, Association, EventRecord, Exposure, Product, Program
from shared.config import Settings
from shared.messages import EventType
from shared.naming import object_key, parse_report
from shared.runtime import ServiceContext
from shared.storage import Bucket, ImmutableObjectError
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


@dataclass
class Section:
    attrs: dict
    rule: str = ""
    members: list[tuple[str, str]] = field(default_factory=list)  # (file, state)
    polygons: list[tuple[str, str]] = field(default_factory=list)  # (member, class)
    products: list[str] = field(default_factory=list)
    state: str = ""


class ReportParser(HTMLParser):
    """What the report shows, read back with the standard library's parser."""

    def __init__(self):
        super().__init__()
        self.sections: list[Section] = []
        self.stack: list[str] = []
        self.cell: list[str] | None = None
        self.row: list[str] = []
        self.row_class = ""
        self.td_class = ""
        self.svgs = 0
        self.timeline_rects = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.stack.append(tag)
        if tag == "section":
            self.sections.append(Section(a))
        elif tag == "svg":
            self.svgs += 1
        elif tag == "polygon" and self.sections:
            self.sections[-1].polygons.append((a["data-member"], a["class"]))
        elif tag == "rect":
            self.timeline_rects += 1
        elif tag == "tr":
            self.row, self.row_class = [], a.get("class", "")
        elif tag == "td":
            self.cell, self.td_class = [], a.get("class", "")

    def handle_endtag(self, tag):
        while self.stack and self.stack.pop() != tag:
            pass
        if tag == "td" and self.cell is not None:
            text = "".join(self.cell).strip()
            self.row.append(text)
            if self.sections and self.td_class == "rule":
                self.sections[-1].rule = text
            if self.sections and self.td_class == "state" and not self.sections[-1].state:
                self.sections[-1].state = text
            self.cell = None
        elif tag == "tr" and self.sections and "section" in self.stack:
            if self.row_class.startswith("member"):
                self.sections[-1].members.append((self.row[0], self.row[2]))
            elif self.row_class == "product":
                self.sections[-1].products.append(self.row[0])

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)


def parse(html: str) -> ReportParser:
    p = ReportParser()
    p.feed(html)
    p.close()
    return p


@pytest.fixture(params=["sqlite", "postgresql"])
def ctx(request, tmp_path):
    url = request.getfixturevalue("pg_url") if request.param == "postgresql" else None
    context = ServiceContext.from_settings(Settings(var_dir=tmp_path / "var", catalog_url=url, _env_file=None))
    context.catalog.upgrade()
    yield context
    context.catalog.dispose()


def reports(ctx) -> list[Product]:
    """Every revision of every report, oldest first."""
    with ctx.catalog.session() as s:
        rows = s.scalars(select(Product).where(Product.suffix == "asn-report").order_by(Product.id)).all()
        for r in rows:
            _ = r.artifacts
        return rows


def current_report(ctx) -> tuple[Product, str]:
    (row,) = [r for r in reports(ctx) if r.is_current]
    return row, ctx.store.get_uri(row.artifacts[0].uri).decode()


def report_events(ctx, ids):
    with ctx.catalog.session() as s:
        return [(e.type, e.subject) for e in (s.get(EventRecord, i) for i in ids) if "asn-report" in (e.subject or "")]


def test_report_names_every_association_and_follows_the_pool(ctx, tmp_path):
    plan = make_plan([observation(1)])  # 2 dither points x NRCA1, NRCA2: 4 image2 and 1 image3
    store_plan(ctx, plan)
    o1 = exposure_ids(plan, 1)
    # one exposure (both detectors) of two delivered
    first = [i for i in o1 if "_00001_" in i]
    new = deliver(ctx, plan, tmp_path, first, "rate")
    row, html = current_report(ctx)
    assert parse_report(row.filename).program == "01234" and row.revision == len(first)
    assert row.product_type == "INFO" and row.observation_id is None and row.artifacts[0].content_type == "text/html"
    assert row.data_release.replace(tzinfo=UTC) <= datetime.now(UTC)  # metadata only: public at once
    assert (EventType.PRODUCT_ARCHIVED, row.filename) in report_events(ctx, new)

    page = parse(html)
    with ctx.catalog.session() as s:
        evaluation = evaluate(plan, load_state(s, "01234"))
    assert len(page.sections) == len(evaluation.associations) == 5
    by_name = {sec.attrs["id"]: sec for sec in page.sections}
    for item in evaluation.associations:
        spec = item.spec
        sec = by_name[f"asn-{spec.acid}-{spec.asn_type}-{item.sequence:05d}"]
        assert sec.rule == spec.asn_rule and spec.name in html
        # one footprint per member, archived or awaited, named as the member
        assert sorted(m for m, _ in sec.polygons) == sorted(m for m, _ in sec.members)
    image3 = next(s for s in page.sections if s.attrs["data-asn-type"] == "image3")
    assert image3.attrs["class"] == "association waiting"
    assert image3.state == "waiting for 4 of 4 members"
    assert {m for m, st in image3.members if st == "waiting"} == {f"{i}_cal.fits" for i in o1}
    assert all(c == "footprint waiting" for _, c in image3.polygons)
    lv2 = {s.attrs["id"]: s for s in page.sections if s.attrs["data-asn-type"] == "image2"}
    waiting_lv2 = [s for s in lv2.values() if s.state.startswith("waiting")]
    assert len(waiting_lv2) == 2 and all(st == "waiting" for s in waiting_lv2 for _, st in s.members)
    assert page.svgs == 1 + 2 * 5  # the pool's timeline, and per association footprints and timeline
    svgs = re.findall(r"<svg .*?</svg>", html)
    assert len(svgs) == page.svgs and all(ElementTree.fromstring(svg).tag.endswith("svg") for svg in svgs)

    # the same events again: no new revision, nothing announced
    made = len(reports(ctx))
    with ctx.catalog.session() as s:
        triggers = s.scalars(select(EventRecord.id).where(EventRecord.subject.like("%_rate.fits"))).all()
    assert len(triggers) == 2 and all(handle_product(outbox_event(ctx, i), ctx) == [] for i in triggers)
    assert len(reports(ctx)) == made

    # the second exposure joins the pool: a new revision, the old one superseded
    before = current_report(ctx)[0]
    new = deliver(ctx, plan, tmp_path, [i for i in o1 if i not in first], "rate")
    after, html = current_report(ctx)
    assert after.filename == before.filename == "jw01234_asn-report.html" and after.revision > before.revision
    assert (EventType.PRODUCT_SUPERSEDED, before.filename) in report_events(ctx, new)
    with ctx.catalog.session() as s:
        pool = s.scalar(select(Product.filename).where(Product.suffix == "pool", Product.is_current))
    assert pool in html
    page = parse(html)
    assert all(s.state.startswith("complete") for s in page.sections if s.attrs["data-asn-type"] == "image2")

    # three _cal of four (the pool is unchanged): a new revision; image3 waits for the last
    before = current_report(ctx)[0]
    deliver(ctx, plan, tmp_path, o1[:3], "cal")
    after, html = current_report(ctx)
    assert after.revision > before.revision
    image3 = next(s for s in parse(html).sections if s.attrs["data-asn-type"] == "image3")
    assert image3.state == "waiting for 1 of 4 members"
    assert [m for m, st in image3.members if st == "waiting"] == [f"{o1[3]}_cal.fits"]
    assert sorted(c for _, c in image3.polygons) == ["footprint archived"] * 3 + ["footprint waiting"]


def test_report_lists_products_made_by_each_association(ctx, tmp_path):
    plan = make_plan([observation(1, detectors=("NRCA1",))])
    store_plan(ctx, plan)
    o1 = exposure_ids(plan, 1)
    deliver(ctx, plan, tmp_path, o1, "rate")
    deliver(ctx, plan, tmp_path, o1, "cal")
    with ctx.catalog.session() as s:
        asn = s.scalar(select(Product.filename).where(Product.filename.like("%image3%"), Product.is_current))
    # stage 3 makes its Level-3 product from the ASN (its provenance names it)
    i2d = tmp_path / "jw01234-o001_t001_nircam_clear-f200w-sub64p_i2d.fits"
    i2d.write_bytes(b"mosaic")
    made = archive_product(ctx, i2d, suffix="i2d", level=3, program="01234", observation=1, exposure=None,
                           inputs=[*(f"{i}_cal.fits" for i in o1), asn], source="/test/stage3")
    ids = handle_product(outbox_event(ctx, made.event_id), ctx)
    assert report_events(ctx, ids)  # the report is made again with the product
    _, html = current_report(ctx)
    image3 = next(s for s in parse(html).sections if s.attrs["data-asn-type"] == "image3")
    assert image3.products == [i2d.name] and image3.state.startswith("complete")
    assert asn in html
    # release date of the product, not its data
    assert "mosaic" not in html


def test_report_escapes_what_it_shows(ctx, tmp_path):
    plan = make_plan([observation(1, detectors=("NRCA1",), npoints=1)])
    plan = plan.model_copy(update={"title": "<script>alert('x')</script> & more"})
    store_plan(ctx, plan)
    deliver(ctx, plan, tmp_path, exposure_ids(plan, 1), "rate")
    _, html = current_report(ctx)
    assert "<script>" not in html and "&lt;script&gt;" in html and "&amp; more" in html


def test_api_serves_the_report(ctx, tmp_path):
    plan = make_plan([observation(1, detectors=("NRCA1",))])
    store_plan(ctx, plan)
    settings = Settings(var_dir=tmp_path / "var", catalog_url=ctx.settings.catalog_url, _env_file=None)
    with TestClient(create_app(settings)) as client:
        r = client.get("/programs/01234/associations/report")
        assert r.status_code == 404 and "no association report yet" in r.json()["detail"]
        deliver(ctx, plan, tmp_path, exposure_ids(plan, 1), "rate")
        row, html = current_report(ctx)
        r = client.get("/programs/1234/associations/report")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        assert r.text == html and r.headers["x-dms-revision"] == str(row.revision)
        assert "default-src 'none'" in r.headers["content-security-policy"]
        assert r.headers["x-checksum-sha256"] == hashlib.sha256(html.encode()).hexdigest()
        assert client.get("/programs/09999/associations/report").status_code == 404
        bad = client.get("/programs/abc/associations/report")
        assert bad.status_code == 400 and bad.json()["detail"]
        # it is one of the program's products, public although the program is under exclusive access
        found = client.get("/products", params={"program": "01234", "productSubGroupDescription": "ASN-REPORT"})
        (listed,) = found.json()["rows"]
        assert (listed["productFilename"], listed["productType"], listed["linkage"], listed["dataRights"]) == (
            row.filename, "INFO", "linked", "PUBLIC")
        assert client.get(f"/download/{row.filename}").status_code == 200
        head = client.head("/programs/01234/associations/report")
        assert head.status_code == 200 and head.content == b"" and head.headers["etag"] == r.headers["etag"]
        # an embargoed program's files, this one too, are for operators only
        with ctx.catalog.session() as s:
            s.get(Program, "01234").embargoed = True
        r = client.get("/programs/01234/associations/report")
        assert r.status_code == 401 and "embargo" in r.json()["detail"]


@dataclass
class StagedChain:
    run: object  # tests.imaging_chain.ChainRun after both exposures
    half: tuple[Product, str]  # the report (row, page) after the first exposure only


@pytest.fixture(scope="module")
def demo_chain(tmp_path_factory, small_program_sim):
    """The demo's imaging observation cut down (two dither points of NRCA1; its simulation
    shared by the session) through every service in process, its two exposures delivered
    one after the other."""
    from services.ingest.receive import receive_files
    from services.registry import embedded_context
    from shared.refdata import deliver as deliver_references
    from shared.runtime import dispatch_events
    from tests.imaging_chain import ChainRun

    work = tmp_path_factory.mktemp("asn-report-chain")
    sim = small_program_sim
    catalogs = sim.catalog_paths[0].parent if sim.catalog_paths else None
    ctx, inline = embedded_context(Settings(var_dir=work / "var", astrometric_catalog_dir=catalogs, _env_file=None))
    deliver_references(ctx, sim.reference_paths, note="simulator references")
    done = inline.run_until_idle()
    first, *rest = sorted(sim.telemetry_paths)
    assert rest, "the small program has two exposures"
    half = None
    for paths in ([sim.plan_path, first], rest):
        received = receive_files(ctx, paths)
        dispatch_events(ctx.catalog, inline, event_ids=[r.event_id for r in received if r.event_id])
        done += inline.run_until_idle()
        if half is None:
            half = current_report(ctx)
    assert all(outcome.status == "ok" for _, outcome in done), done
    yield StagedChain(ChainRun(sim, ctx, [(t, o.status) for t, o in done], {}), half)
    ctx.catalog.dispose()


def test_report_waits_for_the_missing_exposure_through_the_chain(demo_chain):
    """One exposure of two delivered: its image2 is complete with its products, the other
    image2 and the image3 wait for what the missing exposure will give."""
    row, html = demo_chain.half
    page = parse(html)
    by_type = {}
    for sec in page.sections:
        by_type.setdefault(sec.attrs["data-asn-type"], []).append(sec)
    done, waiting = sorted(by_type["image2"], key=lambda sec: not sec.state.startswith("complete"))
    assert done.state == "complete (1 member)" and any(p.endswith("_cal.fits") for p in done.products)
    assert waiting.state == "waiting for 1 of 1 members" and waiting.members[0][1] == "waiting"
    (image3,) = by_type["image3"]
    assert image3.state == "waiting for 1 of 2 members" and image3.products == []
    (missing,) = [m for m, st in image3.members if st == "waiting"]
    assert missing.endswith("_cal.fits") and "_00002_" in missing
    assert sorted(c for _, c in image3.polygons) == ["footprint archived", "footprint waiting"]
    final, _ = current_report(demo_chain.run.ctx)
    assert final.filename == row.filename and final.revision > row.revision


def test_report_of_the_demo_program_through_the_chain(demo_chain, tmp_path):
    """The demo's imaging observation (two dither points, one detector) through every
    service: the report lists each association of the catalog with its rule, members
    and the products stage 2 and stage 3 made, one footprint per member; the API serves it."""
    chain = demo_chain.run
    ctx = chain.ctx
    program = chain.sim.plan.program
    (name,) = chain.filenames("asn-report")
    assert name == f"jw{program}_asn-report.html"
    html = chain.path(name).read_text()
    page = parse(html)
    with ctx.catalog.session() as s:
        rows = s.scalars(select(Association).where(Association.program_id == program)).all()
        current = set(s.scalars(select(Product.filename).where(Product.program_id == program, Product.is_current)))
    assert rows and len(page.sections) == len(rows)
    sections = {(sec.attrs["data-acid"], sec.attrs["data-asn-type"], sec.attrs["data-product"]): sec
                for sec in page.sections}
    for row in rows:
        sec = sections[(row.acid, row.asn_type, row.product_name)]
        assert sec.rule == row.asn_rule and row.filename in html
        assert sec.state.startswith("complete") and all(st == "archived" for _, st in sec.members)
        assert sorted(m for m, _ in sec.members) == sorted(m[0] for m in row.members)
        assert sorted(m for m, _ in sec.polygons) == sorted(m for m, _ in sec.members)
        assert sec.products and set(sec.products) <= current
    image3 = next(sec for sec in page.sections if sec.attrs["data-asn-type"] == "image3")
    assert {p.rsplit("_", 1)[-1] for p in image3.products} >= {"i2d.fits", "cat.ecsv", "segm.fits", "crf.fits"}
    for sec in page.sections:
        if sec.attrs["data-asn-type"] == "image2":
            assert any(p.endswith("_cal.fits") for p in sec.products)
    # the timeline starts each exposure when the telemetry says it started
    with ctx.catalog.session() as s:
        starts = dict(s.execute(select(Exposure.name, Exposure.start_time)).all())
    assert starts and all(when is not None for when in starts.values())
    for name_, when in starts.items():
        assert re.search(rf'data-exposure="{name_}" [^>]*><title>{name_}: {when:%Y-%m-%d %H:%M:%S} to ', html)
    # the report was made again as products arrived, and its last revision is current
    with ctx.catalog.session() as s:
        revisions = s.scalars(select(Product.revision).where(Product.filename == name)).all()
    assert len(revisions) > 1

    settings = Settings(var_dir=ctx.settings.var_dir, _env_file=None)
    with TestClient(create_app(settings)) as client:
        r = client.get(f"/programs/{program}/associations/report")
        assert r.status_code == 200 and r.text == html


def test_cli_writes_the_report_or_says_why_not(tmp_path, monkeypatch, capsys):
    import argparse

    from services.associations.commands import register_commands
    from shared.config import get_settings

    monkeypatch.setenv("DMS_VAR_DIR", str(tmp_path / "var"))
    get_settings.cache_clear()
    try:
        parser = argparse.ArgumentParser()
        register_commands(parser.add_subparsers(dest="command"))
        out = tmp_path / "report.html"
        args = parser.parse_args(["associations", "1234", "--report", str(out)])
        assert args.func(args) == 2 and "no delivered plan" in capsys.readouterr().err and not out.exists()
        ctx = ServiceContext.from_settings(get_settings())
        ctx.catalog.upgrade()
        plan = make_plan([observation(1, detectors=("NRCA1",))])
        store_plan(ctx, plan)
        archived = archive_exposure(ctx, plan, exposure_ids(plan, 1)[0], "rate", tmp_path)
        handle_product(outbox_event(ctx, archived.event_id), ctx)
        _, html = current_report(ctx)
        ctx.catalog.dispose()
        assert args.func(args) == 0 and f"report written to {out}" in capsys.readouterr().out
        assert out.read_text() == html  # the same page the service archived
        args = parser.parse_args(["associations", "1234", "--report", str(tmp_path / "no" / "such" / "dir.html")])
        assert args.func(args) == 2 and "No such file or directory" in capsys.readouterr().err
    finally:
        get_settings.cache_clear()


def test_graphics_put_east_left_north_up_and_time_to_the_right():
    from datetime import timedelta

    from services.associations.graphics import Bar, Footprint, footprint_svg, timeline_svg

    def square(ra, dec, d=0.001):
        return ((ra - d, dec - d), (ra + d, dec - d), (ra + d, dec + d), (ra - d, dec + d))

    def centre(svg, name):
        points = re.search(rf'data-member="{re.escape(name)}" points="([^"]+)"', svg).group(1)
        xy = [tuple(map(float, p.split(","))) for p in points.split()]
        return sum(x for x, _ in xy) / 4, sum(y for _, y in xy) / 4

    # across RA = 0: "east" is at RA 0.002, "west" at 359.998
    svg = footprint_svg([Footprint("east", square(0.002, 10.0), "archived"),
                         Footprint("west", square(359.998, 10.0), "waiting"),
                         Footprint("north", square(0.0, 10.004), "archived")], "t")
    (ex, ey), (wx, wy), (nx, ny) = centre(svg, "east"), centre(svg, "west"), centre(svg, "north")
    assert ex < nx < wx and abs(ey - wy) < 0.5 and ny < ey  # east left, north up (SVG y grows down)
    assert 'class="footprint waiting" data-member="west"' in svg
    assert all(0 <= float(v) <= 220 for v in re.findall(r"(-?[\d.]+),", svg))  # inside the drawing
    assert footprint_svg([], "t") == '<p class="note">no footprint known</p>'

    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    svg = timeline_svg([Bar("late", t0 + timedelta(hours=1), t0 + timedelta(hours=2), "waiting"),
                        Bar("early", t0, t0 + timedelta(minutes=30), "archived")], "t", width=300)
    late = float(re.search(r'data-exposure="late" x="([\d.]+)"', svg).group(1))
    early = float(re.search(r'data-exposure="early" x="([\d.]+)"', svg).group(1))
    assert early < late and "2026-03-01 00:00:00" in svg and "2026-03-01 02:00:00 UTC" in svg
    assert '<rect class="exposure waiting" data-exposure="late"' in svg
    assert "&lt;x&gt;" in timeline_svg([Bar("<x>", t0, t0 + timedelta(seconds=1), "archived")], "t")


def test_report_name_round_trips_and_refuses_other_names():
    from shared.naming import BadNameError, ReportName

    assert parse_report("jw01234_asn-report.html") == ReportName("01234")
    assert ReportName("01234").format() == "jw01234_asn-report.html"
    for bad in ("jw1234_asn-report.html", "jw01234_asn-report.htm", "jw01234_20260301t120000_pool.csv",
                "jw01234-o001_asn-report.html"):
        with pytest.raises(BadNameError, match="association report name"):
            parse_report(bad)


def test_exposure_views_take_the_measured_start_and_the_planned_pointing():
    from datetime import timedelta

    from services.associations.report import exposure_views
    from shared.instruments import exposure_timing, subarray

    plan = make_plan([observation(1, detectors=("NRCA1",))])
    first, second = exposure_ids(plan, 1)
    measured = datetime(2026, 3, 1, 13, 10, 7, tzinfo=UTC)
    views = exposure_views(plan, {first: measured})
    obs = plan.observation(1)
    seconds = exposure_timing("NIRCAM", subarray("NIRCAM", "SUB64P"), obs.readpatt, obs.ngroups, obs.nints).duration
    assert views[first].start == measured and views[first].end == measured + timedelta(seconds=seconds)
    assert views[second].start == obs.exposures[1].start_time  # not ingested: the plan's
    # a SUB64P window of NRCA1 (0.031"/px): about 2" on a side around the pointing
    ras = [ra for ra, _ in views[first].corners]
    decs = [dec for _, dec in views[first].corners]
    assert abs(sum(ras) / 4 - 53.16) < 1e-6 and abs(sum(decs) / 4 + 27.78) < 1e-6
    assert 1.5 < (max(decs) - min(decs)) * 3600 < 2.5


def test_a_revision_stored_but_not_registered_is_written_anew_with_other_bytes(ctx, tmp_path):
    # An attempt stored the report's next revision, then lost its catalog connection before
    # registering it; the retry makes the report from a catalog that moved on (other bytes).
    # Under the program's lock the builder is the report's only writer: the unregistered
    # object is its own, removed and written anew, and nothing is left over.
    plan = make_plan([observation(1)])
    store_plan(ctx, plan)
    o1 = exposure_ids(plan, 1)
    deliver(ctx, plan, tmp_path, o1[:1], "rate")
    row, _ = current_report(ctx)
    stale_key = object_key("01234", 0, row.revision + 1, row.filename)
    ctx.store.put_bytes(Bucket.ARCHIVE, stale_key, b"<html>an attempt that never registered</html>", "text/html")
    stale = tmp_path / row.filename
    stale.write_text("<html>other bytes</html>")
    with pytest.raises(ImmutableObjectError):  # another writer's object is never replaced
        archive_product(ctx, stale, suffix="asn-report", level=0, program="01234", observation=0, exposure=None,
                        inputs=[], source="tests", product_type="INFO", content_type="text/html")
    deliver(ctx, plan, tmp_path, o1[1:2], "rate")  # the builder, whose report now differs again
    after, html = current_report(ctx)
    assert after.revision == row.revision + 1 and "never registered" not in html
    assert ctx.store.get_uri(after.artifacts[0].uri).decode() == html
    with ctx.catalog.session() as s:
        referenced = {ctx.store.parse_uri(u)[1] for u in s.scalars(select(Artifact.uri))}
    assert set(ctx.store.list_keys(Bucket.ARCHIVE)) <= referenced
