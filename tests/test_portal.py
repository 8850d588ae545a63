"""The portal (/portal) in a real browser: headless Chromium driven by Playwright against the
live archive of tests/vo_archive.py (the demo's imaging program run through every service,
under exclusive access), its Level-3 products reprocessed once.

A user searches the program, opens an observation, sees its previews once signed in,
follows a linkage, fills a basket, is refused its exclusive files until signing in, then
downloads it as a zip; a signed-in PI subscribes and requests reprocessing. Every page is
checked by axe-core (no serious or critical violation) and worked by the keyboard.

Chromium is Debian's (``/usr/bin/chromium``, ``DMS_CHROMIUM`` to use another); .ci/run
installs it. Without it these tests are skipped, except under CI where that fails.
Screenshots go to ``DMS_PORTAL_SCREENSHOTS`` when set (``make portal-screenshots`` writes
docs/img/), else to the test's temporary directory.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import time
import zipfile
from pathlib import Path

import pytest
import requests
from sqlalchemy import func, select

from shared.catalog import Exposure, Observation, Product, Program
from shared.reprocessing import Scope, submit
from shared.runtime import dispatch_events
from tests.imaging_chain import ChainRun
from tests.vo_archive import PI, STRANGER, serve_vo_archive

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is a test dependency (make install)")
axe_api = pytest.importorskip("axe_playwright_python.sync_playwright",
                              reason="axe-playwright-python is a test dependency (make install)")

pytestmark = pytest.mark.integration

CHROMIUM = os.environ.get("DMS_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
# Headless, with nothing reaching out of the machine (no sync, updates or background traffic).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TIMEOUT_MS = 30_000
SERIOUS = {"serious", "critical"}
MRP = "Minimum Recommended Products"


REPROCESSED = "a new outlier-detection threshold"


def _reprocess_stage3(run: ChainRun) -> None:
    """Remake the Level-3 products once, so they have a superseded revision."""
    _, _, ids = submit(run.ctx, program="01234", scope=Scope(observations=(1,)), from_stage="stage3",
                       reason=REPROCESSED)
    dispatch_events(run.ctx.catalog, run.inline, event_ids=ids)
    done = run.inline.run_until_idle()
    assert all(o.status == "ok" for _, o in done), [(t, o.error) for t, o in done if o.status != "ok"]


@pytest.fixture(scope="module")
def archive(tmp_path_factory, small_program_sim):
    """The small program run through every service, its Level-3 products reprocessed once,
    served on a loopback port (tests/vo_archive.py: exclusive access, the PI's tokens)."""
    yield from serve_vo_archive(tmp_path_factory, prepare=_reprocess_stage3, sim=small_program_sim)


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"no Chromium at {CHROMIUM}: .ci/run installs Debian's chromium package")
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium; .ci/run does)")
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, archive):
    """A new browser context (its own storage) on the portal; a script error or a breach of the
    page's content security policy fails the test."""
    context = browser.new_context(base_url=archive.url, viewport={"width": 1360, "height": 900},
                                  accept_downloads=True)
    context.set_default_timeout(TIMEOUT_MS)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.on("console", lambda msg: errors.append(msg.text) if "Content Security Policy" in msg.text else None)
    tab.goto("/portal")
    tab.wait_for_selector("body[data-ready=true]")
    yield tab
    context.close()
    assert not errors, f"the page raised: {errors}"


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    target = os.environ.get("DMS_PORTAL_SCREENSHOTS")
    folder = Path(target) if target else tmp_path_factory.mktemp("portal-shots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def program(archive) -> dict:
    """The demo program: its number, its observation and its current Level-3 products."""
    with archive.run.ctx.catalog.session() as s:
        prog = s.scalars(select(Program)).one()
        level3 = s.scalars(select(Product.filename).where(Product.level == 3, Product.is_current)).all()
        return {"proposal_id": str(int(prog.id)), "obs_id": f"jw{prog.id}001", "level3": sorted(level3)}


def accessible(tab, what: str) -> None:
    """axe-core finds no serious or critical violation (contrast, names, labels, structure)."""
    results = axe_api.Axe().run(tab)
    bad = [v for v in results.response["violations"] if v.get("impact") in SERIOUS]
    assert not bad, f"{what}: " + "; ".join(
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes'][:3]]}" for v in bad)


def sign_in(tab, token: str) -> None:
    tab.goto("/portal#/account")
    tab.get_by_label("API token").fill(token)
    tab.get_by_role("button", name="Sign in").click()
    tab.get_by_role("heading", name="Account:").wait_for()


def search(tab, proposal_id: str) -> None:
    """The keyboard's way: type the program and press Enter."""
    tab.goto("/portal#/search")
    box = tab.get_by_label("Program")
    box.fill(proposal_id)
    box.press("Enter")
    tab.get_by_role("heading", name="1 observation").wait_for()


def eventually(tab, expression: str, arg=None, timeout: float = TIMEOUT_MS / 1000) -> None:
    """Wait until ``expression`` (a function of ``arg``) is true in the page. Polled from here:
    Playwright's own waiting evaluates strings in the page, which its security policy forbids."""
    deadline = time.monotonic() + timeout
    while not tab.evaluate(expression, arg):
        if time.monotonic() > deadline:
            pytest.fail(f"not true within {timeout} s: {expression}")
        time.sleep(0.1)


def image_shown(tab, selector: str) -> bool:
    """Whether an image under ``selector`` is decoded and has pixels."""
    eventually(tab, "s => [...document.querySelectorAll(s)].some(i => i.complete && i.naturalWidth > 0)", selector)
    return True


def test_the_page_is_served_whole_from_the_archive(archive):
    page = requests.get(f"{archive.url}/portal", timeout=30)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
    # Everything it loads is this server's own: no CDN, nothing absolute.
    assert not re.findall(r'(?:src|href)="(?:https?:)?//', page.text)
    for asset, kind in (("portal.js", "javascript"), ("portal.css", "text/css"), ("icon.svg", "image/svg+xml")):
        got = requests.get(f"{archive.url}/portal/static/{asset}", timeout=30)
        assert got.status_code == 200 and kind in got.headers["content-type"], asset
    assert requests.get(f"{archive.url}/portal/static/%2e%2e/routers/portal.py", timeout=30).status_code == 404
    limits = requests.get(f"{archive.url}/portal/config", timeout=30).json()
    assert limits == {"bundle_max_bytes": archive.settings.bundle_max_bytes, "bundle_max_files": 5000}


def test_search_lists_the_program_with_footprints_sorting_and_export(page, program):
    search(page, program["proposal_id"])
    table = page.locator("main table").first
    assert program["obs_id"] in table.inner_text()
    # The sky plot draws the footprints of the page's observations: the Level-3 mosaic and each exposure.
    page.wait_for_selector("figure.sky svg polygon")
    assert page.locator("figure.sky svg polygon").count() >= 1 + 2
    # Anonymous: the program is exclusive, so its thumbnail is refused with the reason.
    refused = page.locator("td.thumb span.note")
    refused.first.wait_for()
    assert refused.first.inner_text() == "Exclusive"
    assert "is under exclusive access for program" in refused.first.get_attribute("title")
    # A header sorts on the server; a second press reverses it.
    page.get_by_role("button", name="Target").click()
    page.wait_for_selector("th[aria-sort=ascending]")
    page.get_by_role("button", name="Target").click()
    page.wait_for_selector("th[aria-sort=descending]")
    assert "sort=-target_name" in page.url
    # Export: every page of the same search, as CSV.
    href = page.get_by_role("link", name="CSV").get_attribute("href")
    with page.expect_download() as got:
        page.get_by_role("link", name="CSV").click()
    text = Path(got.value.path()).read_text()
    assert "format=csv" in href and "page=all" in href
    assert text.splitlines()[0].startswith("obsid,obs_id") and program["obs_id"] in text
    accessible(page, "search page")
    # An observation's recommended products go into the basket from the results.
    page.get_by_role("button", name=f"Add the recommended products of {program['obs_id']} to the basket").click()
    added = page.get_by_role("button", name=f"of {program['obs_id']} added to the basket")
    added.wait_for()
    assert int(page.locator("#basket-count").inner_text()) == int(added.inner_text().split()[0]) > 0


def test_search_by_target_name_and_by_position(page, program, archive):
    with archive.run.ctx.catalog.session() as s:
        target, ra, dec = s.execute(select(Observation.target_name, Observation.target_ra, Observation.target_dec)).one()
    page.goto(f"/portal#/search?target_name={target}")
    page.get_by_role("heading", name="1 observation").wait_for()
    # A position draws the searched circle around it; a position far away finds nothing.
    page.goto(f"/portal#/search?ra={ra}&dec={dec}&radius=0.05")
    page.get_by_role("heading", name="1 observation").wait_for()
    page.wait_for_selector("figure.sky svg circle.cone")
    assert f"RA {ra:.4f}" in page.locator("figure.sky figcaption").inner_text()
    page.goto(f"/portal#/search?ra={(ra + 10) % 360}&dec={dec}&radius=0.05")
    page.get_by_role("heading", name="0 observations").wait_for()
    # Dates: the day it was observed counts at either end of the range.
    with archive.run.ctx.catalog.session() as s:
        day = s.scalar(select(func.min(Exposure.start_time))).date().isoformat()
    page.goto(f"/portal#/search?from={day}&to={day}")
    page.get_by_role("heading", name="1 observation").wait_for()
    page.goto(f"/portal#/search?to={day}&dataRights=PUBLIC")
    page.get_by_role("heading", name="0 observations").wait_for()


def test_a_bad_search_is_refused_with_its_reason(page):
    page.goto("/portal#/search?ra=400&dec=0")
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert "ra" in alert.inner_text().lower()


def test_exclusive_basket_refused_until_signing_in_then_downloaded(page, program, archive, shots):
    # Anonymous: open the observation from the results, fill the basket with its Level-3 products.
    search(page, program["proposal_id"])
    page.get_by_role("link", name=program["obs_id"], exact=True).click()
    page.get_by_role("heading", name=f"Observation {program['obs_id']}").wait_for()
    page.get_by_role("button", name="Add all").first.click()
    assert int(page.locator("#basket-count").inner_text()) >= len(program["level3"])
    page.get_by_role("link", name="Basket").click()
    page.get_by_role("heading", name="Download basket").wait_for()
    assert "under exclusive access" in page.locator("main").inner_text()
    page.get_by_role("button", name="Download", exact=True).click()
    refusal = page.get_by_role("alert")
    refusal.wait_for()
    assert "exclusive access" in refusal.inner_text() and "Sign in" in refusal.inner_text()

    # Signed in as the program's PI: the previews show and the basket downloads.
    sign_in(page, archive.tokens[PI])
    assert page.evaluate("localStorage.getItem('dms.token')") is None  # the token stays in this tab's session
    search(page, program["proposal_id"])
    assert image_shown(page, "td.thumb img")
    page.screenshot(path=shots / "portal-search.png", full_page=True)

    page.get_by_role("link", name=program["obs_id"], exact=True).click()
    page.get_by_role("heading", name="Previews").wait_for()
    assert image_shown(page, ".previews img")
    page.get_by_role("heading", name="Made from").wait_for()
    page.screenshot(path=shots / "portal-observation.png", full_page=True)
    accessible(page, "observation page")

    page.get_by_role("link", name="Basket").click()
    page.get_by_role("heading", name="Download basket").wait_for()
    rows = page.locator("main tbody tr td:first-child a")
    rows.first.wait_for()  # the page draws its table after the heading: read it once it is there
    names = [row.inner_text() for row in rows.all()]
    assert set(program["level3"]) <= set(names)
    page.screenshot(path=shots / "portal-basket.png", full_page=True)
    accessible(page, "basket page")
    with page.expect_download() as got:
        page.get_by_role("button", name="Download", exact=True).click()
    with zipfile.ZipFile(io.BytesIO(Path(got.value.path()).read_bytes())) as bundle:
        assert sorted(Path(n).name for n in bundle.namelist()) == sorted([*names, "SHA256SUMS"])

    # Signing out forgets the token; the basket stays.
    page.goto("/portal#/account")
    page.get_by_role("button", name="Sign out").click()
    assert page.evaluate("sessionStorage.getItem('dms.token')") is None
    assert page.get_by_role("link", name="Sign in").is_visible()


def test_observation_page_mrp_and_revisions_with_what_changed(page, program, archive):
    sign_in(page, archive.tokens[PI])
    page.goto(f"/portal#/observation/{program['obs_id']}")
    page.get_by_role("heading", name="Made from").wait_for()
    rows = page.locator("main tr[data-name]")
    every = rows.count()
    page.get_by_label("Minimum Recommended Products only").check()
    shown = set(rows.evaluate_all("rows => rows.map(r => r.dataset.name)"))
    listed = requests.get(f"{archive.url}/observations/{program['obs_id']}/products", timeout=30).json()["rows"]
    assert shown == {r["productFilename"] for r in listed if r["productGroupDescription"] == MRP
                     and r["productType"] != "PREVIEW"}
    assert 0 < len(shown) < every
    # The page opens on the Level-3 image: revision 2, made by the reprocessing; revision 1 on request.
    detail = page.locator("section.detail")
    assert detail.locator("#detail-heading").inner_text().endswith("_i2d.fits")
    revisions = detail.locator("table").last
    assert revisions.locator("tbody tr").count() == 1
    assert "1 superseded revision hidden" in detail.inner_text()
    page.get_by_label("Show superseded revisions").check()
    assert revisions.locator("tbody tr").count() == 2
    newest, oldest = (r.inner_text() for r in revisions.locator("tbody tr").all())
    assert newest.startswith("2\tcurrent") and REPROCESSED in newest and "SCI" in newest
    assert oldest.startswith("1\tsuperseded") and "first revision" in oldest
    # The superseded revision is still served, on request.
    name = detail.locator("#detail-heading").inner_text()
    with page.expect_download() as got:
        revisions.get_by_role("button", name=f"Download revision 1 of {name}").click()
    with archive.run.ctx.catalog.session() as s:
        old = s.scalars(select(Product).where(Product.filename == name, Product.revision == 1)).one()
        sha = next(a.sha256 for a in old.artifacts if a.kind == "data")
    assert hashlib.sha256(Path(got.value.path()).read_bytes()).hexdigest() == sha
    # Another product of the list, chosen: shown in its place and named by the address.
    catalog = next(n for n in shown if n.endswith("_cat.ecsv"))
    page.get_by_role("button", name=f"Show {catalog}").click()
    page.get_by_role("heading", name=catalog, level=3).wait_for()
    assert page.url.endswith(f"#/observation/{program['obs_id']}?product={catalog}")
    assert page.evaluate("() => document.activeElement.id") == "detail-heading"


def test_following_a_linkage_from_level3_down_to_the_raw_exposure(page, program, archive):
    sign_in(page, archive.tokens[PI])
    page.goto(f"/portal#/observation/{program['obs_id']}")
    page.get_by_role("heading", name="Made from").wait_for()
    detail = page.locator("section.detail")
    assert detail.locator("#detail-heading").inner_text() in program["level3"]
    # The Level-3 product is made from the exposures' Level-2 products; follow one of them.
    cal = detail.locator("ul.tree a", has_text="_cal.fits").first
    name = cal.inner_text()
    cal.click()
    page.get_by_role("heading", name=name, level=1).wait_for()
    page.get_by_role("heading", name="Made from").wait_for()
    assert page.url.endswith(f"#/product/{name}")
    # Its own tree goes down to the raw exposure, and up to the Level-3 product it made.
    tree = page.locator("section.detail").inner_text()
    assert "_uncal.fits" in tree and program["level3"][0] in tree
    assert "association that made it" in tree
    # The guide-star products that guided the exposure are linked to it.
    page.get_by_role("heading", name="Guide-star data").wait_for()
    assert "_gs-fg_" in tree and "_gs-track_" in tree
    page.get_by_role("heading", name="Provenance").wait_for()
    assert "Reference context" in page.locator("section.detail").inner_text()
    accessible(page, "product page")


def test_keyboard_alone_reaches_search_results_and_an_observation(page, program):
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    url = page.url
    page.keyboard.press("Enter")
    # The skip link moves the focus to the content and leaves the address (the page) alone: a
    # change of route would redraw the form and lose what is typed next.
    assert page.evaluate("document.activeElement.id") == "main"
    assert page.url == url
    # Tab to the program field, type, submit with Enter; then Tab through to the first result.
    for _ in range(10):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "program":
            break
    assert page.evaluate("document.activeElement.id") == "program"
    page.keyboard.type(program["proposal_id"])
    page.keyboard.press("Enter")
    page.get_by_role("heading", name="1 observation").wait_for()
    visited = []
    for _ in range(60):
        page.keyboard.press("Tab")
        visited.append(page.evaluate("(e => `${e.tagName}:${e.id || e.textContent.slice(0, 20)}`)(document.activeElement)"))
        if page.evaluate("document.activeElement.textContent") == program["obs_id"]:
            break
    else:
        pytest.fail(f"Tab never reached the result's link: {visited}")
    page.keyboard.press("Enter")
    page.get_by_role("heading", name=f"Observation {program['obs_id']}").wait_for()
    # The new page's heading has the focus, so a screen reader starts there.
    eventually(page, "() => document.activeElement.tagName === 'H1'")


def test_a_stranger_is_refused_and_the_pi_subscribes_and_requests_reprocessing(page, program, archive, shots):
    sign_in(page, archive.tokens[STRANGER])
    page.goto(f"/portal#/observation/{program['obs_id']}")
    page.get_by_role("heading", name="Previews").wait_for()
    page.get_by_text("is neither its PI nor an authorized user").first.wait_for()  # previews refused, with why
    page.goto("/portal#/account")
    page.get_by_text("You are no program's PI or authorized user").wait_for()
    page.get_by_role("button", name="Sign out").click()

    sign_in(page, archive.tokens[PI])
    subscribe = page.get_by_role("form", name="Subscribe")
    subscribe.get_by_label("Program").fill(program["proposal_id"])
    subscribe.get_by_label("Address").fill("ada@example.org")
    subscribe.get_by_role("button", name="Subscribe", exact=True).click()
    page.get_by_text("Follow the confirmation link").wait_for()
    row = page.locator("section[aria-labelledby=subs-heading] tbody tr").first
    assert f"program {program['proposal_id']}" in row.inner_text()
    row.get_by_role("button", name="Deliveries").click()
    page.get_by_role("heading", name="Deliveries of").wait_for()

    yours = page.locator("section[aria-labelledby=programs-heading] tbody tr")
    assert yours.count() == 1 and "its PI" in yours.inner_text()
    yours.get_by_role("button", name=f"Reprocess program {program['proposal_id']}").click()
    form = page.get_by_role("form", name="Request reprocessing")
    assert form.get_by_label("Program").input_value() == program["proposal_id"]
    form.get_by_label("From stage").select_option("stage3")
    form.get_by_label("Reason").fill("portal test: a new drizzle kernel")
    form.get_by_role("button", name="Request reprocessing").click()
    page.get_by_text("Reprocessing request").wait_for()
    requests_table = page.locator("section[aria-labelledby=repro-heading] table")
    assert "portal test: a new drizzle kernel" in requests_table.inner_text()
    assert requests_table.locator("progress").count() >= 1
    accessible(page, "account page")
    page.screenshot(path=shots / "portal-account.png", full_page=True)
