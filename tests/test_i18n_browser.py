"""Switching the language in headless Chromium: the board, a pushed row and the dial form.

An agent logs in (the browser asks for English), switches to Deutsch in the header and sees
the board in German; a call that rings afterwards arrives over the websocket already in
German; the dial form's messages, first from the page script and then from the server's
check, are German too. Then Tiếng Việt. A browser that asks for Vietnamese gets the login
page in Vietnamese. The expected words are read from the committed catalogues, so the test
follows a better translation without edits.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from babel.support import Translations
from playwright.sync_api import Browser, Page, expect

from desk.i18n import TRANSLATIONS
from tests.browser import WAIT, count_frames
from tests.conftest import PASSWORD
from tests.servers import LiveServer, desk_env, running_desk

pytestmark = pytest.mark.browser


def words(language: str, domain: str = "messages") -> Translations:
    return Translations.load(str(TRANSLATIONS), [language], domain=domain)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    path: Path = tmp_path_factory.mktemp("i18n-browser") / "desk.sqlite3"
    with running_desk(desk_env(f"sqlite:///{path}"), PASSWORD) as live:
        yield live


def frames(page: Page) -> int:
    return int(page.evaluate("() => window.deskFrames || 0"))


def wait_connected(page: Page) -> None:
    """The board has its websocket snapshot (whatever the language of "live")."""
    page.wait_for_function("() => (window.deskFrames || 0) > 0", timeout=WAIT)
    expect(page.locator("#live-status.live-status--live")).to_have_count(1, timeout=WAIT)


def switch_to(page: Page, language: str, name: str, button: str) -> None:
    page.locator("#header-language").select_option(language)
    page.locator(".language-switch button").click()
    expect(page.locator("html")).to_have_attribute("lang", language, timeout=WAIT)
    expect(page.locator(".language-switch button")).to_have_text(button)
    expect(page.locator("#header-language option:checked")).to_have_text(name)
    wait_connected(page)


def test_switching_the_language_turns_the_board_pushed_rows_and_dial_form(
    page: Page, server: LiveServer
) -> None:
    count_frames(page)
    page.goto(server.url + "/")
    page.get_by_label("Name").fill("ann")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    wait_connected(page)
    expect(page.locator(".topnav")).to_contain_text("History")

    de, de_js = words("de"), words("de", "js")
    switch_to(page, "de", "Deutsch", de.gettext("Switch"))
    expect(page.locator(".topnav")).to_contain_text(de.gettext("History"))
    expect(page.locator("#live-status")).to_have_text(de_js.gettext("live"))

    # A call rings after the switch: its row comes over the websocket, in German.
    server.placetel(event="IncomingCall", call_id="i18n-1", **{"from": "022129191999"},
                    to="0221")
    row = page.locator("#calls-queue .call")
    expect(row).to_have_count(1)
    expect(row.first.locator(".call__state")).to_have_text(de.gettext("Ringing"))

    # The dial form's messages: what will be dialled, then a mistake (the server's check).
    callee = page.locator("#dial-callee")
    message = page.locator("#dial-callee-msg")
    callee.press_sequentially("082 000 1234")
    expect(message).to_have_text(de.gettext("Will dial %(number)s") % {"number": "0820001234"})
    callee.fill("")
    callee.press_sequentially("082 000 12")
    expect(callee).to_have_attribute("aria-invalid", "true")
    expect(message).to_have_text(de.gettext(
        "A number starting 0 has 10 digits, like 082 000 1234; this one has %(n)s.") % {"n": 8})

    vi = words("vi")
    switch_to(page, "vi", "Tiếng Việt", vi.gettext("Switch"))
    expect(page.locator(".topnav")).to_contain_text(vi.gettext("History"))
    expect(page.locator("#calls-queue .call .call__state")).to_have_text(vi.gettext("Ringing"))


def test_a_browser_asking_for_vietnamese_gets_the_login_page_in_vietnamese(
    browser: Browser, server: LiveServer
) -> None:
    context = browser.new_context(locale="vi-VN")
    try:
        page = context.new_page()
        page.goto(server.url + "/login")
        vi = words("vi")
        expect(page.locator("html")).to_have_attribute("lang", "vi")
        expect(page.get_by_role("button", name=vi.gettext("Log in"))).to_be_visible()
        page.get_by_label(vi.gettext("Name")).fill("bob")
        page.get_by_label(vi.gettext("Password")).fill("wrong")
        page.get_by_role("button", name=vi.gettext("Log in")).click()
        expect(page.locator(".error")).to_have_text(
            vi.gettext("That name and password do not match. Check both and try again."))
    finally:
        context.close()
