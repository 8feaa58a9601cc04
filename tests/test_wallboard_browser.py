"""The wallboard in headless Chromium: counters, the chart and an agent's timer change live
when webhooks arrive, without a reload."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import PASSWORD
from tests.servers import LiveServer, desk_env, running_desk

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    path: Path = tmp_path_factory.mktemp("wallboard") / "desk.sqlite3"
    # Thresholds of 1 and 2 seconds so the amber and red timers show within the test.
    env = desk_env(f"sqlite:///{path}", DESK_TIMER_AMBER="1", DESK_TIMER_RED="2",
                   DESK_TIMEZONE="Europe/Berlin")
    with running_desk(env, PASSWORD) as live:
        yield live


@pytest.fixture
def viewport() -> dict[str, int]:
    return {"width": 1920, "height": 1080}


def counter(page: Page, name: str):  # type: ignore[no-untyped-def]
    return page.locator(f'#wallboard-counters [data-counter="{name}"]')


def test_counters_chart_and_timers_follow_webhooks(page: Page, server: LiveServer) -> None:
    page.goto(server.url + "/wallboard")
    page.get_by_label("Name").fill("sue")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(server.url + "/wallboard")
    expect(page.locator("#live-status")).to_have_text("live")
    expect(counter(page, "waiting")).to_have_text("0")
    expect(counter(page, "answered")).to_have_text("0")
    chart = page.locator("#wallboard-chart")
    expect(chart.locator("canvas")).to_have_count(1)  # uPlot drew
    expect(chart).to_have_attribute("data-total", "0")

    server.placetel(event="IncomingCall", call_id="wb-1", **{"from": "022129191999"}, to="0221")
    expect(counter(page, "waiting")).to_have_text("1")
    expect(counter(page, "longest-wait").locator("time")).to_have_count(1)
    expect(chart).to_have_attribute("data-total", "1")  # the chart took the pushed data

    server.placetel(event="CallAccepted", call_id="wb-1", peer="777ann@fpbx.de")
    expect(counter(page, "waiting")).to_have_text("0")
    expect(counter(page, "talking")).to_have_text("1")
    expect(counter(page, "answered")).to_have_text("1")
    timer = page.locator("#agent-1 .agent__timer")
    expect(timer).to_have_class(re.compile(r"timer--red"))  # past DESK_TIMER_RED (2 s)

    server.placetel(event="HungUp", call_id="wb-1", type="accepted", duration="75")
    expect(counter(page, "talking")).to_have_text("0")
    expect(counter(page, "handle-time")).to_have_text("1:15")
    expect(page.locator("#agent-1 .agent__timer")).to_have_count(0)

    server.placetel(event="IncomingCall", call_id="wb-2", **{"from": "0301"}, to="0221")
    server.placetel(event="HungUp", call_id="wb-2", type="missed")
    expect(counter(page, "missed")).to_have_text("1")
    expect(counter(page, "abandoned-rate")).to_contain_text("50")
    expect(chart).to_have_attribute("data-total", "2")
