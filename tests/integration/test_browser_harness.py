"""The browser harness (tests/browser.py): the system Chromium loads a page and runs its script."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.async_api import Error as PlaywrightError
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from polyfleet.dev_credentials import DevCredentials
from tests.browser import VIEWPORT, browser_page
from tests.http_server import ThreadedServer

# The page's script fetches a value the server makes up per run and writes it into the page, so
# the text can only appear if the script ran and reached the server.
PAGE = """<!doctype html>
<html><head><title>harness</title></head>
<body><p id="out">script has not run</p>
<script>
  fetch("/value").then((r) => r.json()).then((body) => {
    document.getElementById("out").textContent = "value " + body.value;
    document.title = innerWidth + "x" + innerHeight;
  });
</script></body></html>
"""


class PageServer(ThreadedServer):
    """Serves the page at ``/`` and a random ``value`` as JSON at ``/value``."""

    def __init__(self) -> None:
        self.value = secrets.token_hex(8)
        super().__init__([Route("/", self._page), Route("/value", self._value)])

    async def _page(self, request: Request) -> Response:
        return HTMLResponse(PAGE)

    async def _value(self, request: Request) -> Response:
        return JSONResponse({"value": self.value})


class TlsPageServer(PageServer):
    """The same pages over HTTPS, with a certificate from a throwaway dev CA no browser trusts."""

    def __init__(self, credentials: DevCredentials) -> None:
        super().__init__()
        # uvicorn reads these when it starts serving, so they may be set after construction.
        self._server.config.ssl_certfile = str(credentials.server_cert)
        self._server.config.ssl_keyfile = str(credentials.server_key)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"


@pytest.fixture
def page_server() -> Iterator[PageServer]:
    server = PageServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def tls_page_server(tmp_path: Path) -> Iterator[PageServer]:
    server = TlsPageServer(DevCredentials.ensure(tmp_path / "credentials"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def test_chromium_runs_the_page_script(page_server: PageServer) -> None:
    async with browser_page() as page:
        await page.goto(f"{page_server.url}/")
        out = page.locator("#out")
        await out.filter(has_text=f"value {page_server.value}").wait_for()
        assert await page.title() == f"{VIEWPORT['width']}x{VIEWPORT['height']}"


async def test_an_untrusted_certificate_is_refused_unless_ignored(
    tls_page_server: PageServer,
) -> None:
    async with browser_page() as page:
        with pytest.raises(PlaywrightError, match="ERR_CERT"):
            await page.goto(f"{tls_page_server.url}/")
    async with browser_page(ignore_https_errors=True) as page:
        await page.goto(f"{tls_page_server.url}/")
        out = page.locator("#out")
        await out.filter(has_text=f"value {tls_page_server.value}").wait_for()
