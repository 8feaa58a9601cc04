"""The board while the server is down: it says so, turns its controls off, and goes live again.

A real gunicorn desk and headless Chromium: the server is stopped (the websocket drops), the
page must show the offline banner and disabled controls; a new server on the same port and
database must bring the board back to "live" with its controls on, by itself, well within
10 seconds (the reconnect backoff is at most about 3 s).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import PASSWORD
from tests.servers import LiveServer, desk_env, prepare

pytestmark = pytest.mark.browser


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

    expect(page.locator("#offline-banner")).to_be_visible(timeout=10_000)
    expect(status).to_contain_text("offline")
    expect(presence).to_be_disabled()

    server = LiveServer(env, port=port)
    try:
        expect(status).to_have_text("live", timeout=10_000)
        expect(page.locator("#offline-banner")).to_be_hidden()
        expect(presence).to_be_enabled()
        # And it is live again: a call that starts now appears without a reload.
        server.placetel(event="IncomingCall", call_id="offline-1", **{"from": "022129191999"},
                        to="0221")
        expect(page.locator("#calls-queue .call")).to_have_count(1)
    finally:
        server.stop()
