"""A real headless Chromium driven by Playwright, for the tests of the dashboard.

The browser is Debian's ``chromium`` package, installed by the Makefile (``make browser``, a
prerequisite of ``make test`` and ``make test-integration``); Playwright never downloads one of
its own (``playwright install`` is never run). A test that needs the browser fails when it is
missing, unless that target recorded why it could not be installed here
(``.tools/chromium.unavailable``): only then does it skip, with that reason.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from playwright.async_api import Page, ViewportSize, async_playwright

from tests.helpers import system_tool

VIEWPORT = ViewportSize(width=1280, height=800)

# Playwright only looks for browsers of its own when it is not given an executable; this keeps
# any of its tooling from fetching one, since the machine reaches no browser download site.
os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")


def chromium_executable() -> str:
    """The system chromium; fails the test (or skips it, see the module) when missing."""
    return system_tool("chromium", "browser")


def launch_args() -> list[str]:
    """Chromium's command-line switches for a test run.

    Chromium's sandbox needs user namespaces that root (as CI runs) is refused; and /dev/shm
    in containers is often too small for the renderer, so shared memory goes to /tmp.
    """
    args = ["--disable-dev-shm-usage"]
    if os.geteuid() == 0:
        args.append("--no-sandbox")
    return args


@asynccontextmanager
async def browser_page(*, ignore_https_errors: bool = False) -> AsyncIterator[Page]:
    """A page of a fresh headless Chromium in a 1280x800 context; everything closes after.

    Args:
        ignore_https_errors: Accept certificates the browser does not trust (a test's own CA).

    Yields:
        The page, with no URL loaded yet.

    """
    executable = chromium_executable()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=executable, headless=True, args=launch_args()
        )
        try:
            context = await browser.new_context(
                viewport=VIEWPORT,
                ignore_https_errors=ignore_https_errors,
            )
            try:
                yield await context.new_page()
            finally:
                await context.close()
        finally:
            await browser.close()
