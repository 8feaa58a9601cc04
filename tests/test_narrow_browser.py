"""The desk in a 320 px window (a phone, a CRM side panel), embedding off, in headless Chromium.

The compact layout is desk.css's own media query, so it applies whether the desk is framed
or not: on every page nothing is wider than the window (``document.scrollWidth`` at most
``innerWidth``), and a row's numbers are shown whole, not cut off.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.browser import WAIT, count_frames, log_in, wait_live
from tests.conftest import PASSWORD
from tests.servers import LiveServer, desk_env, running_desk

pytestmark = pytest.mark.browser

LONG = "004922112345678901"  # an international number: the longest a row shows

# Every .call__parties whose text is cut off (wider inside than its box).
CUT_OFF = """() => [...document.querySelectorAll(".call__parties")]
  .filter(el => el.offsetParent !== null && el.scrollWidth > el.clientWidth + 1)
  .map(el => el.textContent.trim())"""


@pytest.fixture
def viewport() -> dict[str, int]:
    return {"width": 320, "height": 640}


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, int]]:
    path = tmp_path_factory.mktemp("narrow") / "desk.sqlite3"
    with running_desk(desk_env(f"sqlite:///{path}"), PASSWORD) as live:
        for hook in [
            {"event": "IncomingCall", "call_id": "n-ring", "from": LONG, "to": "022129191999"},
            {"event": "IncomingCall", "call_id": "n-talk", "from": "0301234567", "to": "0221"},
            {"event": "CallAccepted", "call_id": "n-talk", "peer": "777ann@fpbx.de"},
            {"event": "IncomingCall", "call_id": "n-done", "from": LONG, "to": "0221"},
            {"event": "CallAccepted", "call_id": "n-done", "peer": "777ann@fpbx.de"},
            {"event": "HungUp", "call_id": "n-done", "type": "accepted", "duration": "75"},
        ]:
            assert live.placetel(**hook).ok
        page = live.login("sue", PASSWORD).get(live.url + "/history",
                                               params={"number": "0301234567"}, timeout=10).text
        yield live, int(re.findall(r'id="history-(\d+)"', page)[0])


PAGES = [
    ("ann", "/"),
    ("ann", "/calls/{talk}"),
    ("ann", "/history"),
    ("sue", "/supervisor"),
    ("sue", "/wallboard"),
    ("sue", "/calls/{talk}"),
    ("sue", "/history"),
    ("sue", "/audit"),
    ("sue", "/routing"),
    ("sue", "/routing?from=022129191999&to=0221&via=placetel"),
    (None, "/login"),
]


@pytest.mark.parametrize(("who", "path"), PAGES, ids=[f"{w}:{p}" for w, p in PAGES])
def test_nothing_is_wider_than_a_320px_window(
    page: Page, desk: tuple[LiveServer, int], who: str | None, path: str
) -> None:
    server, talk = desk
    path = path.format(talk=talk)
    count_frames(page)
    if who is None:
        page.goto(server.url + path)
    else:
        log_in(page, server.url, who, PASSWORD, path)
    if page.locator("#live-status").count():
        wait_live(page)
    # The compact layout is on without embedding (no embed stylesheet on this desk).
    expect(page.locator("link[href$='embed/embed.css']")).to_have_count(0)
    if page.locator(".topbar").count():
        expect(page.locator(".topbar .spacer")).to_have_css("display", "none", timeout=WAIT)
    else:
        # The login card's margin: 1rem instead of 3rem.
        expect(page.locator(".card")).to_have_css("margin-top", "15px", timeout=WAIT)
    width = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], f"{path} is {width[0]} px wide in a {width[1]} px window"
    assert page.evaluate(CUT_OFF) == [], f"numbers cut off on {path}"
    if path == "/":
        expect(page.locator(f"#calls-queue .call__from:text-is('{LONG}')")).to_be_visible()
