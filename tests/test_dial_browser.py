"""Dialling as a person does it, in headless Chromium against a stand-in Teleforge.

Types a pasted-looking number (spaces and a leading ``+``), sees the normalised number the
desk will dial, dials with Enter, watches the button say "Dialling…" while Teleforge is
asked, and sees the call's row appear on the board.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import PASSWORD
from tests.servers import LiveServer, desk_env, running_desk
from tests.teleforge_standin import Answer, TeleforgeStandIn

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def pbx() -> Iterator[TeleforgeStandIn]:
    with TeleforgeStandIn() as standin:
        yield standin


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, pbx: TeleforgeStandIn) -> Iterator[LiveServer]:
    path: Path = tmp_path_factory.mktemp("dial-browser") / "desk.sqlite3"
    env = desk_env(f"sqlite:///{path}", DESK_TELEFORGE_URL=pbx.url, DESK_PROVIDER_TIMEOUT="20",
                   DESK_TELEFORGE_CALLER_IDS="27820001111")
    with running_desk(env, PASSWORD) as live:
        yield live


def log_in(page: Page, server: LiveServer, name: str, path: str = "/") -> None:
    page.goto(server.url + path)
    page.get_by_label("Name").fill(name)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#live-status")).to_have_text("live")


def test_type_a_pasted_number_see_it_normalised_dial_and_see_the_row(
    page: Page, server: LiveServer, pbx: TeleforgeStandIn,
) -> None:
    log_in(page, server, "ann")
    callee = page.get_by_label("Number to dial")
    callee.press_sequentially("+27 82 000 1234")
    expect(page.locator("#dial-callee-msg")).to_have_text("Will dial 0027820001234")
    expect(page.locator("#dial-outbound_id-msg")).to_have_text("Caller ID 27820001111")

    pbx.answer = Answer(delay=30)  # Teleforge holds the answer until we have looked
    callee.press("Enter")
    button = page.locator("#dial button[type=submit]")
    expect(button).to_be_disabled()
    expect(button.locator(".dial__busy")).to_be_visible()  # the button says "Dialling…"
    expect(button.locator(".dial__busy")).to_have_text("Dialling…")
    expect(button.locator(".dial__idle")).to_be_hidden()
    row = page.locator("#calls-mine .call")
    expect(row).to_have_count(1)  # the row is on the board before Teleforge answers
    expect(row.first).to_contain_text("Dialling")
    expect(row.first).to_contain_text("0027820001234")
    pbx.release()

    expect(page.locator(".dial__banner--ok")).to_contain_text("Dialling 0027820001234")
    expect(button).to_be_enabled()
    expect(callee).to_have_value("")  # ready for the next number
    assert len(pbx.dials) == 1
    assert pbx.dials[0].json["callee"] == "0027820001234"


def test_mistakes_show_under_the_field_as_you_type(page: Page, server: LiveServer) -> None:
    log_in(page, server, "bob")
    reference = page.get_by_label("Reference")
    reference.fill("order 42")
    expect(page.locator("#dial-reference-msg")).to_contain_text("which contains ' '")
    outbound = page.get_by_label("Caller ID shown")
    outbound.fill("0820001234")
    expect(page.locator("#dial-outbound_id-msg")).to_contain_text("providers often reject")

    # Submitted anyway (Enter): the answer is 422, and the form shows why under each field.
    page.get_by_label("Number to dial").fill("12345")
    page.get_by_label("Number to dial").press("Enter")
    expect(page.locator("#dial .dial__banner--error")).to_have_text("Check the highlighted fields.")
    expect(page.locator("#dial-callee-msg")).to_contain_text("expected 10 digits starting 0")
    expect(page.locator("#dial-reference-msg")).to_contain_text("which contains ' '")
    expect(page.get_by_label("Reference")).to_have_value("order 42")  # nothing typed is lost
    expect(page.locator("#toast")).to_be_hidden()


def test_a_dial_link_opens_the_form_filled_in(page: Page, server: LiveServer) -> None:
    log_in(page, server, "bob", "/dial?number=%2B27%2082%20000%201234")
    expect(page.get_by_label("Number to dial")).to_have_value("+27 82 000 1234")
    expect(page.locator("#dial-callee-msg")).to_have_text("Will dial 0027820001234")
