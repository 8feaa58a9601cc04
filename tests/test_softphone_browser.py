"""The browser softphone against a real SIP server: a private kamailio on loopback
(``tests/sip_server.py``) as registrar and proxy, the desk under gunicorn, and two headless
Chromium pages with fake microphones: the agent's desk and a plain SIP.js phone
(``tests/softphone_callee.html``, served by the test) standing for the customer.

Checked: the agent registers with the SIP password (kept encrypted by the desk, so a reload
connects without typing it); a dial from the form reaches the callee as an INVITE with
``X-Teleforge-Outbound-ID`` and ``X-Teleforge-Contact-Ref`` (Teleforge 4.x) and the row is
the REST dial's row (``provider_call_id`` is the contact ref); audio flows both ways
(``RTCPeerConnection`` stats of each page: inbound audio bytes > 0); hang-up from either
side ends the row; a refusal carrying ``X-Teleforge-Error`` (kamailio's stand-in for
Teleforge's validation, see ``sip_server``) shows its message under the number and ends
the row as failed; a call from the callee page rings the agent "for you" and is answered
(mute, hold, keypad) or declined in the browser.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from playwright.sync_api import Browser, Page, Playwright, expect
from sqlalchemy import create_engine, text

from tests.browser import WAIT, chromium, console_errors
from tests.conftest import PASSWORD, require
from tests.servers import LiveServer, desk_env, running_desk
from tests.services import shared_redis_url
from tests.sip_server import PrivateKamailio
from tests.teleforge_standin import item, list_name
from tests.test_a11y_browser import AXE, RUN_AXE

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
SIP_JS = ROOT / "static" / "vendor" / "sip.js"
AGENT_SIP_PASSWORD = "s1p-secret-101"
CALLEE = "0820001234"
CALLEE_SIP_PASSWORD = "callee-pw-1234"
REFUSED = "0820009999"
REFUSAL = "callee: number not allowed"
CALLER_ID = "27820001111"

MEDIA_ARGS = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
              "--allow-loopback-in-peer-connection", "--autoplay-policy=no-user-gesture-required"]

# Keeps every RTCPeerConnection a page makes and, five times a second, each one's received
# audio bytes (inbound-rtp), so the test can wait for media on a given call.
PEER_STATS = """(() => {
  const Original = window.RTCPeerConnection;
  window.testPeers = [];
  window.testBytes = [];
  function Counted(...args) {
    const peer = new Original(...args);
    window.testPeers.push(peer);
    return peer;
  }
  Counted.prototype = Original.prototype;
  window.RTCPeerConnection = Counted;
  setInterval(async () => {
    for (let i = 0; i < window.testPeers.length; i++) {
      const peer = window.testPeers[i];
      if (peer.connectionState === "closed") continue;
      let total = 0;
      (await peer.getStats()).forEach((r) => {
        if (r.type === "inbound-rtp" && r.kind === "audio") total += r.bytesReceived || 0;
      });
      window.testBytes[i] = total;
    }
  }, 200);
})();"""


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def translate_path(self, path: str) -> str:
        clean = path.split("?", 1)[0].split("#", 1)[0]
        if clean in ("/", "/callee.html"):
            return str(ROOT / "tests" / "softphone_callee.html")
        if clean.startswith("/sip.js/"):
            return super().translate_path(clean[len("/sip.js"):])
        return str(ROOT / "nonexistent")


@pytest.fixture(scope="module")
def sip() -> Iterator[PrivateKamailio]:
    server = PrivateKamailio({"101": AGENT_SIP_PASSWORD, CALLEE: CALLEE_SIP_PASSWORD},
                             refuse_number=REFUSED, refuse_error=REFUSAL)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def callee_url(sip: PrivateKamailio) -> Iterator[str]:
    if not (SIP_JS / "index.js").is_file():
        require("static/vendor/sip.js", FileNotFoundError("run make assets"))
    handler = partial(_Quiet, directory=str(SIP_JS))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield (f"http://127.0.0.1:{httpd.server_address[1]}/callee.html#user={CALLEE}"
               f"&password={CALLEE_SIP_PASSWORD}&ws={sip.ws_url}&domain={sip.domain}")
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('softphone') / 'desk.sqlite3'}"


@pytest.fixture(scope="module")
def cdr_list() -> tuple[str, str]:
    """The Redis (the machine's) and a fresh list the desk takes Teleforge's CDRs from."""
    return shared_redis_url(), list_name()


@pytest.fixture(scope="module")
def server(database: str, sip: PrivateKamailio, cdr_list: tuple[str, str]) -> Iterator[LiveServer]:
    env = desk_env(
        database, DESK_TELEFORGE_REDIS_URL=cdr_list[0], DESK_TELEFORGE_LISTS=cdr_list[1],
        DESK_TELEFORGE_SIP_WS_URL=sip.ws_url, DESK_TELEFORGE_SIP_DOMAIN=sip.domain,
        DESK_TELEFORGE_VERSION="4.1", DESK_TELEFORGE_CALLER_IDS=CALLER_ID,
        DESK_SIP_SECRET_KEY=Fernet.generate_key().decode(), DESK_WRAP_UP_SECONDS="0",
    )
    with running_desk(env, PASSWORD) as live:
        yield live


@pytest.fixture(scope="module")
def media_browser(playwright: Playwright) -> Iterator[Browser]:
    """A Chromium of its own: fake microphone and no permission prompt for both pages."""
    with chromium(playwright, *MEDIA_ARGS) as browser:
        yield browser


def _page(browser: Browser, errors: list[str]) -> Page:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.add_init_script(PEER_STATS)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.set_default_timeout(WAIT)
    return page


@pytest.fixture
def pages(media_browser: Browser, server: LiveServer,
          callee_url: str) -> Iterator[tuple[Page, Page]]:
    """The agent's desk (ann, extension 101, logged in) and the callee's phone, registered."""
    errors: list[str] = []
    agent = _page(media_browser, errors)
    console = console_errors(agent)
    agent.goto(server.url + "/")
    agent.get_by_label("Name").fill("ann")
    agent.get_by_label("Password", exact=True).fill(PASSWORD)
    agent.get_by_role("button", name="Log in").click()
    expect(agent.locator("#live-status")).to_have_text("live")
    callee = _page(media_browser, errors)
    callee.goto(callee_url)
    callee.wait_for_function("() => window.callee && window.callee.registered")
    yield agent, callee
    agent.context.close()
    callee.context.close()
    assert not errors, f"JavaScript errors on the pages: {errors}"
    # The desk's policy holds with the softphone: its websocket is the one source added.
    blocked = [line for line in console if "Content Security Policy" in line]
    assert not blocked, blocked


def connect_browser_phone(agent: Page, remember: bool = False) -> None:
    agent.get_by_label("in this browser").check()
    agent.get_by_label("SIP password of extension 101").fill(AGENT_SIP_PASSWORD)
    if remember:
        agent.get_by_label("Remember it on the desk (stored encrypted)").check()
    agent.get_by_role("button", name="Save and connect").click()
    expect(agent.locator("[data-softphone-status]")).to_have_text(
        "Connected: calls to extension 101 ring in this browser.")


def dial(agent: Page, number: str) -> str:
    """Dial ``number`` from the form; the reference the desk gave the call."""
    callee_field = agent.get_by_label("Number to dial")
    callee_field.fill(number)
    callee_field.press("Enter")
    banner = agent.locator(".dial__banner--ok")
    expect(banner).to_contain_text("from this browser")
    found = re.search(r"reference (\S+)\.$", banner.inner_text().strip())
    assert found, banner.inner_text()
    return found.group(1)


def wait_audio(page: Page, peer: int) -> None:
    page.wait_for_function(f"() => (window.testBytes[{peer}] || 0) > 0")


def row_of(database: str, reference: str) -> dict[str, Any]:
    engine = create_engine(database)
    try:
        with engine.connect() as conn:
            row = conn.execute(text(
                "SELECT id, state, end_cause, answered_at, agent_id, to_number, outbound_id, "
                "action_error FROM calls WHERE provider = 'teleforge' AND provider_call_id = :r"
            ), {"r": reference}).mappings().one()
        return dict(row)
    finally:
        engine.dispose()


def test_register_dial_with_headers_audio_both_ways_and_callee_hangs_up(
    pages: tuple[Page, Page], server: LiveServer, database: str, cdr_list: tuple[str, str],
) -> None:
    agent, callee = pages
    connect_browser_phone(agent, remember=True)

    reference = dial(agent, "082 000 1234")
    row = agent.locator("#calls-mine .call")
    expect(row).to_have_count(1)
    expect(row.first.locator(".call__state")).to_have_text("Dialling")

    callee.wait_for_function("() => window.callee.invites.length === 1")
    invite = callee.evaluate("() => window.callee.invites[0]")
    assert invite["outboundId"] == CALLER_ID
    assert invite["contactRef"] == reference
    assert invite["platformaOutboundId"] is None  # Teleforge 4.x: X-Teleforge-* only
    assert invite["from"] == "101"
    assert invite["to"] == CALLEE

    callee.evaluate("() => window.callee.answer()")
    expect(row.first.locator(".call__state")).to_have_text("Talking")
    expect(agent.locator("[data-softphone-call-label]")).to_have_text(f"On a call with {CALLEE}")
    wait_audio(agent, 0)
    wait_audio(callee, 0)

    callee.evaluate("() => window.callee.hangup()")
    ended = agent.locator("#calls-ended .call")
    expect(ended).to_have_count(1)
    expect(agent.locator("[data-softphone-call]")).to_be_hidden()
    stored = row_of(database, reference)
    assert stored["state"] == "ended" and stored["answered_at"] is not None
    assert stored["to_number"] == CALLEE and stored["outbound_id"] == CALLER_ID

    # Teleforge's CDR for the call (its contact_ref is the Contact-Ref header) folds into
    # this very row, as for a REST dial: no second row, the CDR's facts on this one.
    import redis

    client = redis.Redis.from_url(cdr_list[0])
    try:
        client.lpush(cdr_list[1], item("cdr_v3_outbound_answered.json", now=True,
                                       contact_ref=reference))
    finally:
        client.close()
    agent.goto(server.url + f"/calls/{stored['id']}")
    expect(agent.locator("body")).to_contain_text("teleforge cdr applied", timeout=WAIT)
    engine = create_engine(database)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT count(*) FROM calls WHERE provider = 'teleforge'"
                                     )).scalar_one()
            facts = conn.execute(text("SELECT provider_facts FROM calls WHERE id = :i"),
                                 {"i": stored["id"]}).scalar_one()
    finally:
        engine.dispose()
    assert rows == 1
    assert "tf-1a2b3c4d" in facts and "softphone" in facts

    # The password was kept encrypted: a reload connects without typing it, and it is in
    # neither the database in clear nor the server's log.
    agent.goto(server.url + "/")
    expect(agent.locator("[data-softphone-status]")).to_have_text(
        "Connected: calls to extension 101 ring in this browser.")
    engine = create_engine(database)
    try:
        with engine.connect() as conn:
            kept = conn.execute(text("SELECT sip_password_encrypted FROM users "
                                     "WHERE name = 'ann'")).scalar_one()
    finally:
        engine.dispose()
    assert kept and AGENT_SIP_PASSWORD not in kept
    assert AGENT_SIP_PASSWORD not in server.output()


def test_agent_hangs_up_from_the_browser(pages: tuple[Page, Page], database: str) -> None:
    agent, callee = pages
    connect_browser_phone(agent)
    before = callee.evaluate("() => window.callee.invites.length")
    reference = dial(agent, CALLEE)
    callee.wait_for_function(f"() => window.callee.invites.length === {before + 1}")
    callee.evaluate("() => window.callee.answer()")
    expect(agent.locator("#calls-mine .call")).to_have_count(1)
    expect(agent.locator("#calls-mine .call .call__state")).to_have_text("Talking")
    wait_audio(agent, 0)

    agent.get_by_role("button", name="Hang up").click()
    callee.wait_for_function("() => window.callee.sessionState === 'Terminated'")
    expect(agent.locator("#calls-mine .call")).to_have_count(0)
    expect(agent.locator(f"#calls-ended #call-{row_of(database, reference)['id']}")).to_be_visible()
    assert row_of(database, reference)["state"] == "ended"


def test_teleforge_error_header_shows_under_the_number_and_the_row_fails(
    pages: tuple[Page, Page], database: str,
) -> None:
    agent, _callee = pages
    connect_browser_phone(agent)
    callee_field = agent.get_by_label("Number to dial")
    callee_field.fill("082 000 9999")
    callee_field.press("Enter")
    message = agent.locator("#dial-callee-msg")
    expect(message).to_have_text(f"Teleforge: {REFUSAL}")
    expect(agent.get_by_label("Number to dial")).to_have_attribute("aria-invalid", "true")
    expect(agent.locator(".dial__banner--error")).to_contain_text("SIP 403")
    engine = create_engine(database)
    try:
        with engine.connect() as conn:
            failed = conn.execute(text(
                "SELECT state, end_cause, action_error FROM calls WHERE to_number = :n"
            ), {"n": REFUSED}).mappings().one()
            audit = conn.execute(text(
                "SELECT outcome, provider_answer FROM audit_log WHERE action = 'dial' "
                "ORDER BY id DESC LIMIT 1")).mappings().one()
    finally:
        engine.dispose()
    assert failed["state"] == "ended" and failed["end_cause"] == "failed"
    assert REFUSAL in failed["action_error"]
    assert audit["outcome"] == "refused" and REFUSAL in audit["provider_answer"]


def test_inbound_call_rings_for_you_and_is_answered_with_mute_hold_and_keypad(
    pages: tuple[Page, Page],
) -> None:
    agent, callee = pages
    connect_browser_phone(agent)
    callee.evaluate("() => { window.callee.call('sip:101@pbx.test'); }")
    incoming = agent.locator("[data-softphone-incoming]")
    expect(incoming).to_be_visible()
    expect(incoming).to_contain_text(f"Ringing for you: {CALLEE}")
    agent.get_by_role("button", name="Answer").click()
    callee.wait_for_function("() => window.callee.sessionState === 'Established'")
    expect(agent.locator("[data-softphone-call-label]")).to_have_text(f"On a call with {CALLEE}")
    wait_audio(agent, 0)
    wait_audio(callee, 0)

    mute = agent.locator("[data-softphone-mute]")
    mute.click()
    expect(mute).to_have_attribute("aria-pressed", "true")
    assert agent.evaluate(
        "() => window.testPeers[0].getSenders().every((s) => !s.track || !s.track.enabled)")

    hold = agent.locator("[data-softphone-hold]")
    hold.click()
    expect(hold).to_have_attribute("aria-pressed", "true")
    callee.wait_for_function("() => window.callee.direction().includes('recvonly')")
    hold.click()
    expect(hold).to_have_attribute("aria-pressed", "false")
    callee.wait_for_function("() => window.callee.direction() === 'sendrecv'")

    # Another microphone mid-call: the call sends from it, and audio still arrives.
    microphone = agent.get_by_label("Microphone")
    expect(microphone.locator("option")).not_to_have_count(1)
    chosen = microphone.locator("option").last.inner_text()
    assert chosen != agent.evaluate(
        "() => window.testPeers[0].getSenders().find((s) => s.track).track.label")
    microphone.select_option(label=chosen)
    agent.wait_for_function(
        "(label) => window.testPeers[0].getSenders()"
        ".some((s) => s.track && s.track.label === label)",
        arg=chosen)
    before = callee.evaluate("() => window.testBytes[0]")
    callee.wait_for_function(f"() => window.testBytes[0] > {before}")

    agent.get_by_role("group", name="Keypad (tones)").get_by_role("button", name="5").click()
    expect(agent.locator("[data-softphone-sent]")).to_have_text("Sent 5")

    agent.get_by_role("button", name="Hang up").click()
    callee.wait_for_function("() => window.callee.sessionState === 'Terminated'")
    expect(agent.locator("[data-softphone-call]")).to_be_hidden()


def test_inbound_call_declined(pages: tuple[Page, Page]) -> None:
    agent, callee = pages
    connect_browser_phone(agent)
    callee.evaluate("() => { window.callee.call('sip:101@pbx.test').catch(() => {}); }")
    expect(agent.locator("[data-softphone-incoming]")).to_be_visible()
    agent.get_by_role("button", name="Decline").click()
    callee.wait_for_function("() => window.callee.rejected === 603")
    expect(agent.locator("[data-softphone-incoming]")).to_be_hidden()


def test_choosing_the_desk_phone_again_and_bad_input(server: LiveServer) -> None:
    """Without a browser: the choice is a form; a wrong value is a 400 with a message."""
    session = server.login("bob", PASSWORD)
    page = session.get(server.url + "/")
    token = re.search(r'name="csrf-token" content="([^"]+)"', page.text)
    assert token
    headers = {"X-CSRFToken": token.group(1), "Accept": "application/json"}
    bad = session.post(server.url + "/softphone/phone", data={"phone": "fax"}, headers=headers)
    assert bad.status_code == 400 and "desk" in bad.json()["message"]
    good = session.post(server.url + "/softphone/phone", data={"phone": "browser"},
                        headers=headers)
    assert good.status_code == 200 and good.json() == {"phone": "browser", "remembered": False}
    creds = session.post(server.url + "/softphone/credentials", headers=headers)
    assert creds.status_code == 200 and creds.json()["password"] is None
    assert creds.json()["user"] == "102"
    # The dial form refuses to dial over REST while the agent's phone is the browser.
    refused = session.post(server.url + "/dial", data={"callee": CALLEE, "outbound_id": CALLER_ID},
                           headers={**headers, "HX-Request": "true"})
    assert refused.status_code == 409 and "not connected" in refused.text


def test_the_phone_panel_is_accessible_ringing_and_in_a_call(pages: tuple[Page, Page]) -> None:
    """axe-core (as tests/test_a11y_browser.py runs it) on the board with the panel showing
    a call ringing for the agent, then the call in progress."""
    if not AXE.exists():
        require("axe-core", FileNotFoundError(f"{AXE} is missing: run make assets"))
    agent, callee = pages
    agent.context.add_init_script(path=str(AXE))  # as init script: the policy allows no inline
    agent.reload()
    expect(agent.locator("#live-status")).to_have_text("live")
    connect_browser_phone(agent)
    callee.evaluate("() => { window.callee.call('sip:101@pbx.test'); }")
    expect(agent.locator("[data-softphone-incoming]")).to_be_visible()
    assert agent.evaluate(RUN_AXE) == []
    agent.get_by_role("button", name="Answer").click()
    expect(agent.locator("[data-softphone-call]")).to_be_visible()
    expect(agent.locator("[data-softphone-call-label]")).to_have_text(f"On a call with {CALLEE}")
    assert agent.evaluate(RUN_AXE) == []
    agent.get_by_role("button", name="Hang up").click()
    callee.wait_for_function("() => window.callee.sessionState === 'Terminated'")
