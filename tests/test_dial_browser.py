"""Dialling as a person does it, in headless Chromium against a stand-in Teleforge.

Types a pasted-looking number (spaces and a leading ``+``), sees the normalised number the
desk will dial, dials with Enter, watches the button say "Dialling…" while Teleforge is
asked, and sees the call's row appear on the board. Mistakes: the field says
``aria-invalid`` with its message as the person types (``static/board/dial.js`` first, even
with the server unreachable, then the server's check), and a failed submit puts the focus
on the first field with a mistake. On a call already, the form asks; "Dial anyway" dials.
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
    expect(page.locator("#dial-reference-msg")).to_contain_text("Take out the spaces.")
    outbound = page.get_by_label("Caller ID shown")
    outbound.fill("0820001234")
    expect(page.locator("#dial-outbound_id-msg")).to_contain_text("providers often reject")

    # Submitted anyway (Enter): the answer is 422, and the form shows why under each field.
    page.get_by_label("Number to dial").fill("12345")
    page.get_by_label("Number to dial").press("Enter")
    expect(page.locator("#dial .dial__banner--error")).to_have_text("Check the highlighted fields.")
    expect(page.locator("#dial-callee-msg")).to_contain_text("Start the number with 0")
    expect(page.locator("#dial-reference-msg")).to_contain_text("Take out the spaces.")
    expect(page.get_by_label("Reference")).to_have_value("order 42")  # nothing typed is lost
    expect(page.locator("#toast")).to_be_hidden()
    expect(page.get_by_label("Number to dial")).to_be_focused()  # the first mistake
    expect(page.get_by_label("Number to dial")).to_have_attribute("aria-invalid", "true")


def test_a_dial_link_opens_the_form_filled_in(page: Page, server: LiveServer) -> None:
    log_in(page, server, "bob", "/dial?number=%2B27%2082%20000%201234")
    expect(page.get_by_label("Number to dial")).to_have_value("+27 82 000 1234")
    expect(page.locator("#dial-callee-msg")).to_have_text("Will dial 0027820001234")


CHARACTERS = ("A phone number has only digits, spaces, dashes and brackets, and + only at the "
              "start. Take out \u201cA\u201d, \u201cB\u201d.")


def test_a_bad_number_is_marked_invalid_as_you_type_before_the_server_answers(
    page: Page, server: LiveServer,
) -> None:
    log_in(page, server, "bob")
    checks: list[str] = []
    page.route("**/dial/check*", lambda route: (checks.append(route.request.url), route.abort()))
    callee = page.get_by_label("Number to dial")
    expect(callee).to_have_attribute("aria-describedby", "dial-callee-msg")
    callee.press_sequentially("082 AB")
    # The server's checks are cut off: this is the page's own, in the server's words.
    expect(callee).to_have_attribute("aria-invalid", "true")
    message = page.locator("#dial-callee-msg")
    expect(message).to_have_text(CHARACTERS)
    expect(message).to_have_class("field-msg field-msg--error")
    callee.fill("082 000 1234 5")  # already too long: no digit more can mend it
    expect(message).to_have_text(
        "A number starting 0 has 10 digits, like 082 000 1234; this one has 11.")
    page.get_by_label("Reference").fill("a" * 231)
    expect(page.get_by_label("Reference")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#dial-reference-msg")).to_contain_text("this one has 231.")
    assert checks  # htmx did ask; the answers never came

    page.unroute("**/dial/check*")
    callee.fill("082 000 12")  # too short while typing: only the server says so
    expect(message).to_have_text(
        "A number starting 0 has 10 digits, like 082 000 1234; this one has 8.")
    expect(callee).to_have_attribute("aria-invalid", "true")
    callee.fill("082 000 1234")
    expect(message).to_have_text("Will dial 0820001234")
    expect(callee).not_to_have_attribute("aria-invalid", "true")
    callee.fill("")  # emptied again: missing, though the server only shows the hint
    expect(message).to_have_text("Type the number to dial, for example 082 000 1234.")
    expect(callee).to_have_attribute("aria-invalid", "true")


def test_a_failed_submit_puts_the_focus_on_the_first_mistake(
    page: Page, server: LiveServer, pbx: TeleforgeStandIn,
) -> None:
    log_in(page, server, "bob")
    dials = len(pbx.dials)
    page.get_by_label("Number to dial").fill("082 000 1234")
    page.get_by_label("Reference").fill("a/b")
    page.get_by_role("button", name="Dial", exact=True).click()
    expect(page.locator("#dial .dial__banner--error")).to_have_text("Check the highlighted fields.")
    reference = page.get_by_label("Reference")
    expect(reference).to_be_focused()
    expect(reference).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#dial-reference-msg")).to_have_text(
        "A reference has only letters, digits and . - _ ~. Take out \u201c/\u201d.")
    expect(page.get_by_label("Number to dial")).not_to_have_attribute("aria-invalid", "true")
    assert len(pbx.dials) == dials


def test_on_a_call_the_form_asks_and_dial_anyway_dials(
    page: Page, server: LiveServer, pbx: TeleforgeStandIn,
) -> None:
    log_in(page, server, "ann")
    for form in ({"event": "IncomingCall", "call_id": "busy-1", "from": "022129191999",
                  "to": "0221"},
                 {"event": "CallAccepted", "call_id": "busy-1", "peer": "777ann@fpbx.de",
                  "from": "022129191999", "to": "0221"}):
        assert server.placetel(**form).ok
    expect(page.locator("#calls-mine .call[data-state='talking']")).to_have_count(1)
    dials = len(pbx.dials)

    callee = page.get_by_label("Number to dial")
    callee.fill("082 000 5555")
    callee.press("Enter")
    question = page.locator("#dial-confirm-msg")
    expect(question).to_have_text(
        "You are on a call already (talking with 022129191999). Dial anyway?")
    expect(question).to_have_attribute("role", "alert")
    anyway = page.get_by_role("button", name="Dial anyway")
    expect(anyway).to_be_focused()
    expect(callee).to_have_value("082 000 5555")
    page.get_by_role("button", name="Cancel").click()  # not now: nothing is dialled
    expect(question).to_have_count(0)
    expect(callee).to_be_focused()
    assert len(pbx.dials) == dials

    callee.press("Enter")  # Enter in the field asks again, it never confirms
    expect(anyway).to_be_focused()
    assert len(pbx.dials) == dials
    page.keyboard.press("Enter")  # on "Dial anyway"
    expect(page.locator(".dial__banner--ok")).to_contain_text("Dialling 0820005555")
    expect(question).to_have_count(0)
    assert len(pbx.dials) == dials + 1
    assert pbx.dials[-1].json["callee"] == "0820005555"
