"""The desk inside a CRM, in headless Chromium: two loopback sites, the real example page.

The desk runs under gunicorn on http://127.0.0.1:<port>; the example CRM page
(``flask --app app embed-example``, the page CRM admins copy) runs on
http://localhost:<port2> — another site as far as cookies and frames are concerned. The
agent logs in through the popup inside the iframe, an inbound Placetel call ringing the
agent reaches the CRM page as screen_pop and then call_ended, and the CRM page dials through
the desk to a stand-in Teleforge. (tests/test_embed_calls_browser.py: which calls pop, hang
up, wrap-up, HubSpot.) A page on an origin not in DESK_EMBED_ORIGINS can neither frame the desk
nor talk to it.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Frame, Page, expect

from tests.browser import WAIT
from tests.conftest import PASSWORD
from tests.servers import BIN, ROOT, LiveServer, desk_env, free_port, prepare
from tests.teleforge_standin import TeleforgeStandIn

pytestmark = pytest.mark.browser


class ExamplePage:
    """``flask --app app embed-example`` (demo mode) on ``port``, embedding ``desk_url``."""

    def __init__(self, port: int, desk_url: str, tmp: Path) -> None:
        self.url = f"http://localhost:{port}"
        env = desk_env(f"sqlite:///{tmp / f'example-{port}.sqlite3'}", DESK_SIMULATE="0")
        env["DESK_DEMO"] = "1"
        self.proc = subprocess.Popen(
            [str(BIN / "flask"), "--app", "app", "embed-example", "--port", str(port),
             "--desk-url", desk_url],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"embed-example exited with {self.proc.returncode}")
            try:
                if requests.get(f"http://127.0.0.1:{port}/", timeout=2).ok:
                    return
            except requests.RequestException:  # not listening yet
                time.sleep(0.1)
        raise RuntimeError("embed-example did not come up")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def pbx() -> Iterator[TeleforgeStandIn]:
    with TeleforgeStandIn() as standin:
        yield standin


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory,
         pbx: TeleforgeStandIn) -> Iterator[tuple[LiveServer, ExamplePage, ExamplePage]]:
    """The desk, the listed CRM page, and a page on an origin that is not listed."""
    tmp = tmp_path_factory.mktemp("embed-browser")
    crm_port, stranger_port = free_port(), free_port()
    env = desk_env(f"sqlite:///{tmp / 'desk.sqlite3'}", DESK_TELEFORGE_URL=pbx.url,
                   DESK_TELEFORGE_CALLER_IDS="27820001111", DESK_PROVIDER_TIMEOUT="20",
                   DESK_EMBED_ORIGINS=f"http://localhost:{crm_port}")
    prepare(env, PASSWORD)
    server = LiveServer(env)
    pages: list[ExamplePage] = []
    try:
        pages.append(ExamplePage(crm_port, server.url, tmp))
        pages.append(ExamplePage(stranger_port, server.url, tmp))
        yield server, pages[0], pages[1]
    finally:
        for example in pages:
            example.stop()
        server.stop()



@pytest.fixture
def viewport() -> dict[str, int]:
    return {"width": 1100, "height": 800}


def desk_frame(page: Page) -> Frame:
    frame = page.locator("iframe#desk").element_handle().content_frame()
    assert frame is not None
    return frame


def received(page: Page, kind: str) -> list[dict]:  # type: ignore[type-arg]
    """The desk/1 messages of ``kind`` the CRM page logged."""
    return [json.loads(text) for text in
            page.locator(f"#log li[data-type='{kind}']").all_text_contents()]


def test_a_crm_page_embeds_the_desk_dials_and_gets_screen_pops(
    page: Page, desk: tuple[LiveServer, ExamplePage, ExamplePage], pbx: TeleforgeStandIn,
) -> None:
    server, crm, stranger = desk
    page.goto(crm.url + "/")
    frame = page.frame_locator("#desk")

    # Log in inside the iframe through the popup (the way that works without cookies).
    with page.expect_popup() as opened:
        frame.get_by_role("button", name="Log in in a new window").click()
    popup = opened.value
    popup.get_by_label("Name").fill("ann")
    popup.get_by_label("Password").fill(PASSWORD)
    # Listen before the click: the popup may close before a later wait could start.
    with popup.expect_event("close", timeout=WAIT):
        popup.get_by_role("button", name="Log in").click()
    expect(frame.locator("#live-status")).to_have_text("live")
    expect(page.locator("#log li[data-type='ready']").last).to_contain_text('"loggedIn":true')

    # An inbound call ringing ann (routing rings her SIP peer): the CRM gets a screen pop,
    # and when it ends unanswered, call_ended.
    hook = server.placetel(event="IncomingCall", **{"from": "022129191999"}, to="0221",
                           call_id="crm-in-1")
    assert hook.ok
    expect(page.locator("#log li[data-type='screen_pop']")).to_have_count(1)
    pop = received(page, "screen_pop")[0]
    assert pop["v"] == "desk/1"
    assert pop["data"]["from"] == "022129191999" and pop["data"]["to"] == "0221"
    expect(page.locator("#pop")).to_contain_text("Incoming call from 022129191999")
    assert server.placetel(event="HungUp", call_id="crm-in-1", type="missed").ok
    expect(page.locator("#log li[data-type='call_ended']")).to_have_count(1)
    ended = received(page, "call_ended")[0]["data"]
    assert ended["callId"] == pop["data"]["callId"]
    assert ended["status"] == "missed" and ended["duration"] == 0

    # The CRM asks the desk to dial; the stand-in Teleforge gets the call.
    page.get_by_role("button", name="Dial", exact=True).click()
    expect(page.locator("#log li[data-type='ack']")).to_have_count(1)
    assert len(pbx.dials) == 1
    assert pbx.dials[0].json["callee"] == "0027820001234"
    expect(page.locator("#log li[data-type='call_started']")).to_have_count(1)
    started = received(page, "call_started")[0]["data"]
    assert started["direction"] == "outbound" and started["record"] == "contact-42"
    assert started["number"] == "0027820001234"  # the customer's, not the extension

    # A frame from an origin that is not listed (and is not the parent) is ignored.
    page.evaluate("""url => { const f = document.createElement('iframe');
        f.name = 'intruder'; f.src = url; document.body.appendChild(f); }""", stranger.url + "/")
    intruder = page.locator("iframe[name='intruder']").element_handle().content_frame()
    assert intruder is not None
    intruder.wait_for_load_state()
    intruder.evaluate("""() => window.parent.frames['desk'].postMessage(
        {v: 'desk/1', type: 'dial', id: 'x', data: {number: '+27 82 000 9999'}}, '*')""")
    expect(frame.locator("body[data-embed-ignored]")).to_have_count(1)
    expect(frame.get_by_label("Number to dial")).to_have_value("")
    assert len(pbx.dials) == 1
    assert not [m for m in received(page, "error") if m.get("id") == "x"]


def test_a_page_on_an_origin_not_listed_cannot_frame_the_desk(
    page: Page, desk: tuple[LiveServer, ExamplePage, ExamplePage],
) -> None:
    server, _crm, stranger = desk
    answers: list[str] = []
    page.on("response", lambda r: answers.append(r.headers.get("content-security-policy", ""))
            if r.url.startswith(server.url) else None)
    page.goto(stranger.url + "/", wait_until="load")
    assert answers and all(stranger.url not in policy.split() for policy in answers)
    frame = desk_frame(page)
    assert not frame.url.startswith(server.url), frame.url  # Chrome shows its error page
    assert page.locator("#log li").count() == 0
