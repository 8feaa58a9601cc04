"""A person's view, in headless Chromium: log in, watch a call ring and end without reload."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.conftest import PASSWORD
from tests.servers import LiveServer, desk_env, running_desk

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    path: Path = tmp_path_factory.mktemp("browser") / "desk.sqlite3"
    env = desk_env(f"sqlite:///{path}")
    with running_desk(env, PASSWORD) as live:
        yield live


def log_in(page: Page, server: LiveServer, name: str) -> None:
    page.goto(server.url + "/")
    expect(page).to_have_url(server.url + "/login?next=/")
    page.get_by_label("Name").fill(name)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#live-status")).to_have_text("live")


def test_call_appears_rings_is_answered_and_moves_to_ended(page: Page, server: LiveServer) -> None:
    log_in(page, server, "ann")
    row = page.locator("#calls-queue .call")
    expect(row).to_have_count(0)

    server.placetel(event="IncomingCall", call_id="br-1", **{"from": "022129191999"}, to="0221")
    expect(row).to_have_count(1)
    expect(row.first).to_contain_text("Ringing")
    expect(row.first).to_contain_text("022129191999")
    expect(page.locator("#counters")).to_contain_text("1 ringing")

    server.placetel(event="CallAccepted", call_id="br-1", peer="777ann@fpbx.de")
    mine = page.locator("#calls-mine .call")
    expect(mine).to_have_count(1)  # moved from the queue to "My calls"
    expect(mine.first).to_contain_text("Talking")
    expect(row).to_have_count(0)
    timer = mine.first.locator(".call__timer")
    expect(timer).not_to_have_text("0:00", timeout=4000)  # ticks in the browser

    server.placetel(event="HungUp", call_id="br-1", type="accepted", duration="75")
    ended = page.locator("#calls-ended .call")
    expect(ended).to_have_count(1)
    expect(ended.first).to_contain_text("1:15")
    expect(mine).to_have_count(0)
    expect(page.locator("#calls-mine")).to_be_empty()


def test_presence_switch_reaches_the_supervisor_board(
    page: Page, browser: Browser, server: LiveServer
) -> None:
    log_in(page, server, "bob")
    supervisor = browser.new_context().new_page()
    log_in(supervisor, server, "sue")
    tile = supervisor.locator("#agent-2")
    expect(tile).to_contain_text("Available")
    page.get_by_label("Your presence").select_option("away")
    expect(tile).to_contain_text("Away")
    supervisor.context.close()


def test_presence_can_change_again_after_the_board_was_pushed_an_update(
    page: Page, server: LiveServer
) -> None:
    log_in(page, server, "ann")
    select = page.get_by_label("Your presence")
    for value in ("away", "wrap-up", "available"):  # each change is also pushed back over /ws
        with page.expect_response("**/presence") as answer:
            select.select_option(value)
        assert answer.value.status == 200, answer.value.text()
        expect(page.locator("#presence")).to_have_class(f"presence presence--{value}")
        page.wait_for_timeout(300)  # let the websocket's copy of the form arrive too
