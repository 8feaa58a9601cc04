"""The board while the server is down: it says so, turns its controls off, and goes live again.

A real gunicorn desk and headless Chromium: the server is stopped (the websocket drops), the
page must show the offline banner and disabled controls, and a request made meanwhile shows
the "cannot be reached" toast; a new server on the same port and database must bring the
board back to "live" with its controls on and banner and toast gone, by itself, well within
the wait (the reconnect backoff is at most about 3 s).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser import WAIT
from tests.conftest import PASSWORD
from tests.servers import LiveServer, desk_env, prepare

pytestmark = pytest.mark.browser

# What htmx does for any request of the page (a refresh every minute, a button); it fails to
# connect while the server is down. The rejected promise is the page's to handle.
REQUEST = """() => {
  htmx.ajax("GET", window.location.pathname, { swap: "none" }).catch(() => {});
}"""


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    env = desk_env(f"sqlite:///{tmp_path / 'desk.sqlite3'}")
    prepare(env, PASSWORD)
    yield env


def test_board_goes_offline_and_comes_back(page: Page, env: dict[str, str]) -> None:
    server = LiveServer(env)
    port = server.port
    try:
        page.goto(server.url + "/login")
        page.get_by_label("Name").fill("ann")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        status = page.locator("#live-status")
        expect(status).to_have_text("live")
        presence = page.locator("#presence select")
        expect(presence).to_be_enabled()
        expect(page.locator("#offline-banner")).to_be_hidden()
    finally:
        server.stop()

    expect(page.locator("#offline-banner")).to_be_visible(timeout=WAIT)
    expect(status).to_contain_text("offline")
    expect(presence).to_be_disabled()
    # A request made while the desk is down (a panel's refresh, say) cannot be sent.
    toast = page.locator("#toast")
    page.evaluate(REQUEST)
    expect(toast).to_be_visible(timeout=WAIT)
    expect(toast).to_contain_text("cannot be reached")

    server = LiveServer(env, port=port)
    try:
        expect(status).to_have_text("live", timeout=WAIT)
        expect(page.locator("#offline-banner")).to_be_hidden()
        expect(toast).to_be_hidden()
        expect(presence).to_be_enabled()
        # And it is live again: a call that starts now appears without a reload.
        server.placetel(event="IncomingCall", call_id="offline-1", **{"from": "022129191999"},
                        to="0221")
        expect(page.locator("#calls-queue .call")).to_have_count(1, timeout=WAIT)
    finally:
        server.stop()
