"""The archive API's documentation pages (/docs, /redoc) work with no internet: every
script, style sheet and icon they load is served by the API itself."""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from services.archive.app import DOCS_STATIC_URL, create_app
from shared.config import Settings

CONTENT_TYPES = {
    ".js": {"text/javascript", "application/javascript"},
    ".css": {"text/css"},
    ".png": {"image/png"},
}


class _References(HTMLParser):
    """Every URL a page loads: ``src`` and ``href`` attributes, and ReDoc's ``spec-url``."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs) -> None:
        self.urls += [value for name, value in attrs if name in ("src", "href", "spec-url") and value]


@pytest.fixture
def client(tmp_path):
    # No lifespan: the pages need neither the catalog nor the object store.
    return TestClient(create_app(Settings(var_dir=tmp_path / "var", _env_file=None)))


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_only_local_assets(client, page):
    r = client.get(page)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "http://" not in r.text and "https://" not in r.text, "the page names a remote URL"
    parser = _References()
    parser.feed(r.text)
    assets = [u for u in parser.urls if u.startswith(DOCS_STATIC_URL + "/")]
    assert any(u.endswith(".js") for u in assets), parser.urls
    for url in parser.urls:
        parts = urlsplit(url)
        assert not parts.scheme and not parts.netloc, f"{page} loads {url} from elsewhere"
        assert url in assets or url == "/openapi.json", f"{page} loads {url}, not a packaged asset"
    for url in assets:
        asset = client.get(url)
        assert asset.status_code == 200, url
        media_type = asset.headers["content-type"].split(";")[0]
        assert media_type in CONTENT_TYPES[url[url.rindex("."):]], (url, media_type)
        assert len(asset.content) > 1000, url


def test_swagger_ui_loads_the_local_openapi_document(client):
    assert "url: '/openapi.json'" in client.get("/docs").text
    assert client.get("/openapi.json").json()["info"]["title"] == "jwst-dms archive API"
