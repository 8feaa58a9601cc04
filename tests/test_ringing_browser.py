"""*Ringing for you* on the agent board, in headless Chromium against the desk under gunicorn.

A Placetel IncomingCall is answered by the desk's routing, which rings the available agents
with a SIP peer; the call is kept as offered to them (``Call.offered_to``) and their boards
mark it: listed under "Ringing for you" above the lists, counted in the tab's title until it
is answered or gone. Calls that ring other agents are not marked. A notification and a ring
tone come only after the agent asked for them; the browser's own Notification and Web Audio
objects are watched (wrapped, still doing their work) to see that they were used.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Browser, Page, expect

from tests.browser import WAIT, count_frames, log_in, wait_live
from tests.conftest import PASSWORD
from tests.servers import LiveServer, desk_env, flask_cli, running_desk
from tests.test_a11y_browser import AXE, RUN_AXE

pytestmark = pytest.mark.browser

TITLE = "Agent Desk · ann"
RINGING_TITLE = "(1) Ringing for you · Agent Desk · ann"

# Notes each notification and each tone the page makes; the real objects still do the work.
WATCH_ALERTS = """(() => {
  window.deskNotes = [];
  window.deskTones = 0;
  if (window.Notification) {
    const Real = window.Notification;
    class Watched extends Real {
      constructor(title, options) {
        super(title, options);
        window.deskNotes.push({ title: title, body: options && options.body });
      }
    }
    window.Notification = Watched;
  }
  if (window.AudioContext) {
    const create = AudioContext.prototype.createOscillator;
    AudioContext.prototype.createOscillator = function () {
      window.deskTones += 1;
      return create.call(this);
    };
  }
})();"""


class Desk:
    """The desk with ann and cy (both with SIP peers: Placetel can ring them) and bob."""

    def __init__(self, server: LiveServer, tokens: dict[str, str]) -> None:
        self.server, self.tokens = server, tokens

    def presence(self, name: str, value: str) -> None:
        response = requests.put(f"{self.server.url}/api/v1/agents/me/presence",
                                json={"presence": value}, timeout=5,
                                headers={"Authorization": f"Bearer {self.tokens[name]}"})
        assert response.ok, response.text

    def ring(self, call_id: str, caller: str = "0301234567") -> None:
        assert self.server.placetel(event="IncomingCall", call_id=call_id,
                                    **{"from": caller}, to="0221").ok

    def answer(self, call_id: str, peer: str) -> None:
        assert self.server.placetel(event="CallAccepted", call_id=call_id, peer=peer).ok

    def hang_up(self, call_id: str, talked: bool = True) -> None:
        assert self.server.placetel(event="HungUp", call_id=call_id,
                                    type="accepted" if talked else "missed",
                                    duration="12" if talked else "0").ok


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Desk]:
    path: Path = tmp_path_factory.mktemp("ringing") / "desk.sqlite3"
    env = desk_env(f"sqlite:///{path}", DESK_WRAP_UP_SECONDS="0")
    with running_desk(env, PASSWORD) as server:
        flask_cli(env, "users", "create", "cy", "--role", "agent", "--extension", "104",
                  "--sip-peer", "777cy@fpbx.de", stdin=PASSWORD + "\n")
        tokens = {name: flask_cli(env, "users", "token", name).strip() for name in ("ann", "cy")}
        yield Desk(server, tokens)


def board(page: Page, desk: Desk) -> None:
    count_frames(page)
    log_in(page, desk.server.url, "ann", PASSWORD)
    wait_live(page)


def test_a_call_ringing_the_agent_is_marked_for_them_until_answered(
    page: Page, desk: Desk,
) -> None:
    board(page, desk)
    desk.presence("cy", "available")
    banner = page.locator("#ringing")
    expect(page).to_have_title(TITLE)

    # While ann is away, calls ring cy only: on ann's board they are the queue's.
    desk.presence("ann", "away")
    expect(page.locator("#presence-select")).to_have_value("away")
    desk.ring("rfy-cy-1")
    desk.ring("rfy-cy-2")
    desk.answer("rfy-cy-2", "777cy@fpbx.de")  # cy is on a call now: routing skips cy
    queue = page.locator("#calls-queue .call")
    expect(queue).to_have_count(2)
    desk.presence("ann", "available")
    expect(page.locator("#presence-select")).to_have_value("available")
    expect(page.locator(".call[data-for-you]")).to_have_count(0)
    expect(banner).to_be_hidden()
    expect(page).to_have_title(TITLE)

    # Now a call rings ann: marked in the queue, listed above the lists, in the title.
    desk.ring("rfy-ann", caller="0309876543")
    row = page.locator("#calls-queue .call--for-you")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("Ringing for you")
    expect(row).not_to_contain_text("no agent yet")
    expect(row.get_by_role("button")).to_have_count(0)  # not ann's call yet: no buttons
    expect(banner).to_be_visible()
    expect(banner.get_by_role("heading")).to_have_text("Ringing for you")
    expect(banner.get_by_role("link")).to_have_text("0309876543 → 0221")
    expect(page).to_have_title(RINGING_TITLE)
    expect(page.locator("#calls-queue .call[data-for-you]")).to_have_count(1)  # cy's are not

    # A newer call that does not ring ann (away now, and cy is busy) stays below hers.
    desk.presence("ann", "away")
    desk.ring("rfy-late", caller="0304440000")
    later = page.locator("#calls-queue .call", has_text="0304440000")
    expect(later).to_have_count(1)
    expect(page).to_have_title(RINGING_TITLE)  # hers still rings her phone
    assert row.bounding_box()["y"] < later.bounding_box()["y"]  # type: ignore[index]
    desk.presence("ann", "available")
    expect(page.locator("#presence-select")).to_have_value("available")

    # Answered: it is ann's call, nothing rings for her any more.
    desk.answer("rfy-ann", "777ann@fpbx.de")
    expect(page.locator("#calls-mine .call")).to_have_count(1)
    expect(page.locator(".call[data-for-you]")).to_have_count(0)
    expect(banner).to_be_hidden()
    expect(page).to_have_title(TITLE)

    # A reload while a call rings for ann shows it from the page itself.
    desk.hang_up("rfy-ann")
    desk.hang_up("rfy-cy-2")  # cy is free again
    desk.ring("rfy-both", caller="0307770000")
    expect(page).to_have_title(RINGING_TITLE)
    page.reload()
    wait_live(page)
    expect(page).to_have_title(RINGING_TITLE)
    expect(banner).to_be_visible()

    # Taken by a colleague it rang too: gone from ann's "ringing for you".
    desk.answer("rfy-both", "777cy@fpbx.de")
    expect(page.locator("#calls-queue .call", has_text="0307770000")).to_contain_text("Talking")
    expect(page.locator(".call[data-for-you]")).to_have_count(0)
    expect(banner).to_be_hidden()
    expect(page).to_have_title(TITLE)
    desk.hang_up("rfy-both")
    for call_id in ("rfy-cy-1", "rfy-late"):
        desk.hang_up(call_id, talked=False)


def test_notification_and_ring_tone_only_after_the_agent_asks(
    browser: Browser, desk: Desk,
) -> None:
    context = browser.new_context(viewport={"width": 1100, "height": 800})
    context.grant_permissions(["notifications"])
    context.add_init_script(WATCH_ALERTS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        board(page, desk)
        desk.presence("cy", "offline")  # only ann rings
        notify = page.get_by_role("button", name="Notify me")
        sound = page.get_by_role("button", name="Ring sound")
        expect(notify).to_have_attribute("aria-pressed", "false")
        expect(sound).to_have_attribute("aria-pressed", "false")

        # Not asked for: the call is marked, but no notification and no tone.
        desk.ring("rfy-quiet")
        expect(page).to_have_title(RINGING_TITLE)
        desk.hang_up("rfy-quiet", talked=False)
        expect(page).to_have_title(TITLE)
        assert page.evaluate("window.deskNotes") == []
        assert page.evaluate("window.deskTones") == 0

        notify.click()
        expect(notify).to_have_attribute("aria-pressed", "true")
        sound.click()  # a click: the browser lets the page make sound
        expect(sound).to_have_attribute("aria-pressed", "true")
        page.wait_for_function("window.deskTones > 0", timeout=WAIT)  # a sample of the tone
        tones = page.evaluate("window.deskTones")

        desk.ring("rfy-loud", caller="0305550101")
        expect(page).to_have_title(RINGING_TITLE)
        page.wait_for_function("window.deskNotes.length === 1", timeout=WAIT)
        (note,) = page.evaluate("window.deskNotes")
        assert note["title"] == "Call ringing for you"
        assert note["body"] == "0305550101 → 0221"
        page.wait_for_function(f"window.deskTones > {tones}", timeout=WAIT)  # it rings

        desk.answer("rfy-loud", "777ann@fpbx.de")
        expect(page).to_have_title(TITLE)
        expect(page.locator("body")).to_have_attribute("data-ringing-for-you", "0")
        desk.hang_up("rfy-loud")

        # The choices stay with this browser; turning one off turns it off.
        page.reload()
        wait_live(page)
        expect(notify).to_have_attribute("aria-pressed", "true")
        notify.click()
        expect(notify).to_have_attribute("aria-pressed", "false")
        assert page.evaluate("window.deskNotes") == []  # a new page: nothing rang since
    finally:
        context.close()
        desk.presence("cy", "available")
    assert not errors, errors


def test_the_board_ringing_for_you_passes_axe(page: Page, desk: Desk) -> None:
    if not AXE.exists():
        pytest.skip(f"{AXE} is missing: run `make assets`")
    page.context.add_init_script(path=str(AXE))  # as tests/test_a11y_browser.py: before the CSP
    board(page, desk)
    desk.presence("cy", "offline")
    page.get_by_role("button", name="Ring sound").click()
    desk.ring("rfy-axe", caller="0306660000")
    expect(page.locator("#ringing")).to_be_visible()
    for width in (1280, 320):
        page.set_viewport_size({"width": width, "height": 800})
        expect(page.locator(".call--for-you .call__for-you")).to_be_visible()  # narrow too
        violations = page.evaluate(RUN_AXE)
        assert violations == [], f"at {width}px: {violations}"
    desk.hang_up("rfy-axe", talked=False)
    desk.presence("cy", "available")
