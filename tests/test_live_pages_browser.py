"""Every page that holds /ws, in headless Chromium, while calls ring, are answered and end.

Rows pushed for new calls land at the top of their list, rows move between lists, and the
lists a board shows are exactly what a reload of it shows, with nothing on the console: the
agent boards (the call's agent and another), the supervisor board, the wallboard and the
history page get the same frames, and none of them logs ``htmx:oobErrorNoTarget`` for what
it has no place for. A call's page goes live like the boards and follows its call.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from tests.browser import WAIT, console_errors, count_frames, log_in, wait_live
from tests.conftest import PASSWORD
from tests.servers import LiveServer, desk_env, running_desk

pytestmark = pytest.mark.browser

# The lists of a board, and the rows in each, in order, as the page has them now.
LISTS = """() => Object.fromEntries([...document.querySelectorAll(".calls[id]")].map(
  list => [list.id, [...list.querySelectorAll(":scope > .call")].map(row => row.id)]))"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    path = tmp_path_factory.mktemp("live-pages") / "desk.sqlite3"
    with running_desk(desk_env(f"sqlite:///{path}"), PASSWORD) as live:
        yield live


class Opened:
    """A logged-in page in its own browser context, with what its console said."""

    def __init__(self, browser: Browser, server: LiveServer, who: str, path: str) -> None:
        self.page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
        count_frames(self.page)
        self.errors = console_errors(self.page)
        self.page.on("pageerror", lambda exc: self.errors.append(f"uncaught: {exc}"))
        log_in(self.page, server.url, who, PASSWORD, path)
        wait_live(self.page)

    def rows(self, selector: str) -> Locator:
        return self.page.locator(selector)

    def lists(self) -> dict[str, list[str]]:
        lists: dict[str, list[str]] = self.page.evaluate(LISTS)
        return lists


def test_pushed_rows_land_in_their_lists_with_nothing_on_the_console(
    browser: Browser, server: LiveServer
) -> None:
    ann = Opened(browser, server, "ann", "/")
    bob = Opened(browser, server, "bob", "/")
    sue = Opened(browser, server, "sue", "/supervisor")
    wall = Opened(browser, server, "sue", "/wallboard")
    history = Opened(browser, server, "ann", "/history")
    opened = [ann, bob, sue, wall, history]
    try:
        # A new call: a row no page had yet, at the top of each board's list.
        server.placetel(event="IncomingCall", call_id="lp-1", **{"from": "022129191999"},
                        to="0221")
        for board, where in [(ann, "#calls-queue"), (bob, "#calls-queue"), (sue, "#calls-live")]:
            expect(board.rows(f"{where} .call")).to_have_count(1, timeout=WAIT)
            expect(board.rows(f"{where} .call").first).to_contain_text("Ringing")
        expect(wall.rows('[data-counter="waiting"]')).to_have_text("1", timeout=WAIT)
        expect(history.rows("#counters")).to_contain_text("1 ringing", timeout=WAIT)

        # Answered by ann: her row moves to "My calls"; bob still sees it in the queue.
        server.placetel(event="CallAccepted", call_id="lp-1", peer="777ann@fpbx.de")
        expect(ann.rows("#calls-mine .call")).to_have_count(1, timeout=WAIT)
        expect(ann.rows("#calls-queue .call")).to_have_count(0)
        expect(bob.rows("#calls-queue .call").first).to_contain_text("Talking", timeout=WAIT)
        expect(sue.rows("#calls-live .call").first).to_contain_text("Talking", timeout=WAIT)
        expect(wall.rows('[data-counter="talking"]')).to_have_text("1", timeout=WAIT)

        # A second call, on top of the first in the supervisor's list.
        server.placetel(event="IncomingCall", call_id="lp-2", **{"from": "0301"}, to="0221")
        expect(sue.rows("#calls-live .call")).to_have_count(2, timeout=WAIT)
        expect(sue.rows("#calls-live .call").first).to_contain_text("0301")
        expect(ann.rows("#calls-queue .call")).to_have_count(1, timeout=WAIT)

        # Both end: ann's call goes to her "Recently ended" and leaves bob's board (it was
        # hers); the missed one goes to everyone's.
        server.placetel(event="HungUp", call_id="lp-1", type="accepted", duration="75")
        server.placetel(event="HungUp", call_id="lp-2", type="missed", duration="0")
        expect(ann.rows("#calls-ended .call")).to_have_count(2, timeout=WAIT)
        expect(ann.rows("#calls-mine .call")).to_have_count(0)
        expect(bob.rows("#calls-ended .call")).to_have_count(1, timeout=WAIT)
        expect(bob.rows("#calls-queue .call")).to_have_count(0)
        expect(sue.rows("#calls-ended .call")).to_have_count(2, timeout=WAIT)
        expect(sue.rows("#calls-live .call")).to_have_count(0)
        expect(wall.rows('[data-counter="missed"]')).to_have_text("1", timeout=WAIT)
        expect(history.rows("#counters")).to_contain_text("0 talking", timeout=WAIT)
        assert not history.rows(".call").count()  # the history page shows no board rows

        # What the pushes built is what the server renders.
        for board in (ann, bob, sue):
            pushed = board.lists()
            board.page.reload()
            wait_live(board.page)
            assert board.lists() == pushed
        for page in opened:
            assert not page.errors, f"console errors on {page.page.url}: {page.errors}"
    finally:
        for page in opened:
            page.page.context.close()


def test_a_calls_page_goes_live_and_follows_its_call(page: Page, server: LiveServer) -> None:
    count_frames(page)
    errors = console_errors(page)
    log_in(page, server.url, "ann", PASSWORD)
    wait_live(page)
    server.placetel(event="IncomingCall", call_id="lp-page", **{"from": "0302555"}, to="0221")
    queued = page.locator("#calls-queue .call")
    expect(queued).to_have_count(1, timeout=WAIT)
    row_id = queued.first.get_attribute("id")
    queued.first.locator(".call__parties").click()
    expect(page.locator("h1")).to_have_text("0302555 → 0221", timeout=WAIT)
    wait_live(page)  # the same header as the boards, live
    counters = page.locator("#counters")
    expect(counters).to_contain_text("1 ringing")
    row = page.locator(f"main .calls > #{row_id}")
    expect(row).to_contain_text("Ringing")

    server.placetel(event="CallAccepted", call_id="lp-page", peer="777ann@fpbx.de")
    expect(row).to_contain_text("Talking", timeout=WAIT)
    expect(counters).to_contain_text("0 ringing")
    expect(counters).to_contain_text("1 talking")

    server.placetel(event="HungUp", call_id="lp-page", type="accepted", duration="75")
    expect(row).to_contain_text("Answered", timeout=WAIT)
    expect(row.locator(".call__timer")).to_have_text("1:15")
    expect(counters).to_contain_text("0 talking")
    assert not errors, f"console errors on the call's page: {errors}"
