"""Headless Debian Chromium driven by Playwright (no browser download: we point at it), and
what the browser tests share: logging in through the form, collecting console errors."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager

from playwright.sync_api import Browser, ConsoleMessage, Page, Playwright, expect

from tests.conftest import require

# How long a browser test waits for a state (a page going live, a pushed row): generous, so a
# slow or busy machine waits longer instead of failing; a state that never comes still fails.
WAIT = 20_000

CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@contextmanager
def chromium(playwright: Playwright, *extra_args: str) -> Iterator[Browser]:
    """Debian's Chromium, headless, launched from the run's one Playwright (a second
    ``sync_playwright`` while one runs is refused), with ``extra_args`` added."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        require("Chromium", FileNotFoundError("chromium not on PATH (make test installs it)"))
    browser = playwright.chromium.launch(executable_path=path, headless=True,
                                         args=[*CHROMIUM_ARGS, *extra_args])
    try:
        yield browser
    finally:
        browser.close()


def log_in(page: Page, url: str, name: str, password: str, path: str = "/") -> None:
    """Open ``path`` (logged out: the login form), log in as ``name``, wait to land there."""
    page.goto(url + path)
    page.get_by_label("Name").fill(name)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(url + path, timeout=WAIT)


def console_errors(page: Page) -> list[str]:
    """Every console error the page logs from now on, as "text (where)"."""
    seen: list[str] = []

    def note(message: ConsoleMessage) -> None:
        if message.type == "error":
            where = message.location
            seen.append(f"{message.text} ({where.get('url', '')}:{where.get('lineNumber', '')})")

    page.on("console", note)
    return seen


# Counts the websocket frames htmx has applied (the first one on each connect is the snapshot).
COUNT_FRAMES = """document.addEventListener("htmx:wsAfterMessage", function () {
  window.deskFrames = (window.deskFrames || 0) + 1;
});"""


def count_frames(page: Page) -> None:
    """Before navigating: let ``wait_live`` see when a page has applied its first frame."""
    page.add_init_script(COUNT_FRAMES)


def wait_live(page: Page) -> None:
    """Wait until the page says "live" and has applied its snapshot (needs ``count_frames``)."""
    expect(page.locator("#live-status")).to_have_text("live", timeout=WAIT)
    page.wait_for_function("() => (window.deskFrames || 0) > 0", timeout=WAIT)
