"""Bad filters on the history and audit pages, as a person meets them in headless Chromium.

A link with a filter that is wrong (a date that is no date, ``to`` before ``from``) opens the
whole page: the header, every filter as it was sent, the problem under its field with the
field marked invalid and described by it, the focus on the first such field, and the results
area saying why no calls are shown. Fixing the field and searching again shows the calls.
The pages in that state are held to the accessibility rules of ``tests.test_a11y_browser``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser import WAIT, log_in
from tests.conftest import PASSWORD
from tests.servers import LiveServer, desk_env, running_desk
from tests.test_a11y_browser import axe_source, check_page  # noqa: F401  (a fixture)

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    path: Path = tmp_path_factory.mktemp("filters-browser") / "desk.sqlite3"
    with running_desk(desk_env(f"sqlite:///{path}"), PASSWORD) as live:
        hooks = [{"event": "IncomingCall", "call_id": "f-1", "from": "0301111", "to": "0221"},
                 {"event": "HungUp", "call_id": "f-1", "type": "missed", "duration": "0"}]
        for hook in hooks:
            assert live.placetel(**hook).ok
        yield live


def test_a_date_that_is_no_date_is_shown_under_its_field_with_the_focus(
    page: Page, server: LiveServer,
) -> None:
    log_in(page, server.url, "sue", PASSWORD, "/history?number=0301&from=yesterday")
    expect(page.locator("h1")).to_have_text("Call history")
    expect(page.locator("#live-status")).to_have_text("live", timeout=WAIT)  # the usual header
    first = page.get_by_label("From")
    expect(first).to_be_focused()
    expect(first).to_have_value("yesterday")
    expect(first).to_have_attribute("aria-invalid", "true")
    expect(first).to_have_accessible_description(
        "'from' must be a date like 2026-03-31, not 'yesterday'.")
    expect(page.get_by_label("Number")).to_have_value("0301")
    expect(page.get_by_label("To")).not_to_have_attribute("aria-invalid", "true")
    expect(page.locator("#results-refused")).to_contain_text("No calls shown")
    expect(page.locator("[id^=history-]")).to_have_count(0)

    first.fill("2000-01-01")
    page.get_by_role("button", name="Search").click()
    expect(page.locator("#results-refused")).to_have_count(0)
    expect(page.locator("[id^=history-]")).to_have_count(1)
    expect(page.get_by_label("From")).not_to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Number")).to_have_value("0301")


def test_to_before_from_puts_the_focus_on_to(page: Page, server: LiveServer) -> None:
    log_in(page, server.url, "sue", PASSWORD, "/history?from=2026-05-04&to=2026-05-01")
    to = page.get_by_label("To")
    expect(to).to_be_focused()
    expect(to).to_have_value("2026-05-01")  # still a date picker, with the date sent
    expect(to).to_have_accessible_description(
        "The 'to' date is before the 'from' date; swap them.")
    expect(page.get_by_label("From")).to_have_value("2026-05-04")


def test_a_bad_audit_filter_is_shown_under_its_field_with_the_focus(
    page: Page, server: LiveServer,
) -> None:
    log_in(page, server.url, "sue", PASSWORD, "/audit?action=hangup&call=twelve")
    call = page.get_by_label("Call")
    expect(call).to_be_focused()
    expect(call).to_have_value("twelve")
    expect(call).to_have_accessible_description(
        "'call' must be a number from 0 to 2147483647, not 'twelve'.")
    expect(page.get_by_label("Action")).to_have_value("hangup")
    expect(page.locator("#results-refused")).to_contain_text("No audit entries shown")


@pytest.mark.parametrize("path", [
    "/history?provider=skype&from=yesterday&to=2026-05-01&page=0",
    "/audit?user=ann&call=x&from=2026-05-04&to=2026-05-01",
])
def test_pages_with_bad_filters_have_no_serious_violations(
    page: Page, server: LiveServer, axe_source: Path, path: str,  # noqa: F811
) -> None:
    check_page(page, server.url, "sue", path, axe_source, status=400)
