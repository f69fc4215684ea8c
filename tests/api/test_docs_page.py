"""The API docs page works without the internet: Swagger UI is served by the bridge, and renders in a real browser."""
from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser
from urllib.parse import urljoin

import pytest

from app.web.docs_ui import ASSETS, ASSETS_RULE, DIST, swagger_ui_version
from tests.conftest import unavailable
from tests.support.live_service import Service

ON_SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
# Operations the rendered page must list: one per tag, paths as the OpenAPI document writes them.
EXPECTED_PATHS = ("/whmcs/v1/services/{service_id}/create", "/whmcs/v1/services/{service_id}/terminate",
                  "/api/v1/orders/{order_id}", "/geocat-live/api/1.0/order/{instance}")
EXPECTED_SUMMARIES = ("Create the order and deploy its stack (WHMCS CreateAccount)",)
BROWSER_NAMES = ("chromium", "chromium-browser")


class Links(HTMLParser):
    """Every URL a page makes the browser load: ``src`` and ``href`` attributes, and inline scripts' text."""

    def __init__(self):
        super().__init__()
        self.urls: list[str] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        self.urls.extend(value for name, value in attrs if name in ("src", "href") and value)
        self._in_script = tag == "script"

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.scripts.append(data)


def without_line_comments(script: str) -> str:
    """The script without ``// ...`` comment lines (APIFlask's template names Swagger UI's manual in one)."""
    return "\n".join(line for line in script.splitlines() if not line.strip().startswith("//"))


def test_the_page_loads_nothing_from_outside(api):
    page = api.get("/api/v1/docs", scope=None)
    assert page.status_code == 200
    links = Links()
    links.feed(page.get_data(as_text=True))
    version = swagger_ui_version()
    assert sorted(links.urls) == sorted(f"docs/assets/{name}?v={version}" for name in ASSETS)
    # Relative to the page, so a proxy's path prefix is kept; nothing absolute or scheme-relative.
    assert not [url for url in links.urls if url.startswith("/") or re.match(r"^[a-z][a-z0-9+.-]*:", url, re.I)]
    code = "\n".join(without_line_comments(script) for script in links.scripts)
    assert re.findall(r"[a-z]+://\S+|\"//\S+", code, re.I) == []
    assert 'url: "/api/v1/openapi.json"' in code and '"validatorUrl": null' in code


def test_the_page_works_behind_a_path_prefix(api):
    """A proxy mounting the bridge under /live (SCRIPT_NAME): every URL of the page resolves under /live."""
    base = "http://bridge.example/live"
    page = api.client.get("/api/v1/docs", base_url=base)
    links = Links()
    links.feed(page.get_data(as_text=True))
    assert 'url: "/live/api/v1/openapi.json"' in "".join(links.scripts)
    for url in links.urls:
        resolved = urljoin(f"{base}/api/v1/docs", url)
        assert resolved.startswith(f"{base}/api/v1/docs/assets/"), resolved
        with api.client.get(resolved.removeprefix(base), base_url=base) as asset:
            assert asset.status_code == 200, resolved


def test_the_assets_are_served_and_hidden_from_the_api_document(api):
    types = {}
    for name in ASSETS:
        asset = api.get(f"/api/v1/docs/assets/{name}?v=1", scope=None)
        with asset:  # a file response holds the file open until closed
            assert asset.status_code == 200 and asset.data == (DIST / name).read_bytes(), name
            assert "max-age=86400" in asset.headers["Cache-Control"]
            types[name] = asset.mimetype
    assert types["swagger-ui-bundle.js"] == "text/javascript" and types["swagger-ui.css"] == "text/css"
    # Only the page's files: not the rest of the package's folder, nothing outside it.
    for other in ("VERSION", "oauth2-redirect.html", "..%2Fflask_swagger_ui.py", "LICENSE"):
        assert api.get(f"/api/v1/docs/assets/{other}", scope=None).status_code == 404, other
    document = api.get("/api/v1/openapi.json", scope=None).json
    assert not [path for path in document["paths"] if path.startswith("/api/v1/docs")]
    assert ASSETS_RULE == "/api/v1/docs/assets/<filename>"


def browser() -> str:
    """Debian's chromium (``.ci/run`` installs it); locally a missing one skips, in CI it fails."""
    for name in BROWSER_NAMES:
        path = shutil.which(name)
        if path:
            return path
    unavailable("chromium is not installed (apt-get install chromium): the docs page cannot be rendered")
    raise AssertionError("unreachable")  # unavailable() skips or fails


def render(url: str, profile) -> str:
    """The DOM of ``url`` after its scripts ran, from headless chromium that can reach nothing but 127.0.0.1."""
    command = [
        browser(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", f"--user-data-dir={profile}",
        # Every other host name fails to resolve: a CDN reference would leave the page blank here too.
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        "--dump-dom", "--virtual-time-budget=10000", url,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@ON_SQLITE
def test_a_headless_browser_lists_the_operations_offline(settings, tmp_path):
    service = Service(settings, tmp_path)
    try:
        service.start(worker=False)
        dom = render(f"{service.url}/api/v1/docs", tmp_path / "chromium-profile")
    finally:
        service.stop()
    assert 'class="swagger-ui' in dom, dom[-2000:]
    missing = [path for path in EXPECTED_PATHS if f'data-path="{path}"' not in dom]
    assert missing == [], f"operations not rendered: {missing}\n{dom[-3000:]}"
    assert all(summary in dom for summary in EXPECTED_SUMMARIES)
    # The document came from the bridge: Swagger UI shows its title and version.
    assert "GeoCat Live Bridge" in dom
    log = (tmp_path / "gunicorn.log").read_text()
    assert "/api/v1/docs/assets/swagger-ui-bundle.js" in log and "/api/v1/openapi.json" in log
