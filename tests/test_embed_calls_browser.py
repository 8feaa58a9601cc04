"""Which calls a CRM hears about, in headless Chromium: screen pops only for calls ringing
the agent, ``hangup`` acknowledged, the wrap-up reaching the CRM; and the HubSpot adapter
driven by the real SDK's host side.

The desk runs under gunicorn with Placetel webhooks, a stand-in mediaservice (real HTTP, it
confirms a hang-up with signed callbacks) and a stand-in Teleforge. Two pages on other
origins embed it: the example CRM page (``flask --app app embed-example``) and a stand-in
for HubSpot that loads ``@hubspot/calling-extensions-sdk`` as HubSpot's own page does and
opens ``/embed/hubspot`` with the SDK's ``iFrameOptions`` (the SDK is one package for both
sides: with ``iFrameOptions`` it is the host, creating the widget's iframe and sending
SYNC). The stand-in notes every event the widget sends and answers an engagement request
with an engagement id, as HubSpot does; its SYNC carries an ``engagementId``, as
HubSpot's does when the widget opens for an existing call.

Nothing is asserted after a fixed wait: "exactly one" is checked after a later message
has arrived (a fresh ``ready`` in answer to ``hello``, or the next event of the same call),
which the desk sends after anything it might wrongly have sent before.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread
from typing import Any

import pytest
import requests
from playwright.sync_api import FrameLocator, Page, expect

from tests.browser import WAIT
from tests.conftest import PASSWORD
from tests.mediaservice_standin import DOMAIN, StandIn, key_pair
from tests.servers import LiveServer, desk_env, flask_cli, free_port, prepare
from tests.teleforge_standin import TeleforgeStandIn
from tests.test_embed_browser import ExamplePage, received

pytestmark = pytest.mark.browser

HOST_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>HubSpot stand-in</title></head>
<body>
<div id="widget"></div>
<script src="__DESK__/static/vendor/hubspot-calling-extensions.js"></script>
<script>
(function () {
  var CallingExtensions = window["default"];
  var events = window.hubspotEvents = [];
  var engagements = 0;
  var host = new CallingExtensions({
    debugMode: false,
    iFrameOptions: { src: "__DESK__/embed/hubspot", width: "420px", height: "700px",
                     hostElementSelector: "#widget" },
    eventHandlers: {},
  });
  var manager = host.iFrameManager;
  var send = manager.sendMessage.bind(manager);
  // HubSpot's SYNC names the portal, the user and the engagement the widget opens for.
  manager.sendMessage = function (message, callback) {
    if (message.type === "SYNC") {
      message = Object.assign({}, message, { portalId: 99, userId: 7, engagementId: 4242 });
    }
    return send(message, callback);
  };
  // HubSpot's side: note what the widget says; an engagement it asks for gets an id.
  host.onMessageHandler = function (event) {
    events.push({ type: event.type, data: event.data || null });
    if (event.data && event.data.createEngagement) {
      send({ type: "CREATE_ENGAGEMENT_SUCCEEDED", data: { engagementId: 9000 + (++engagements) } });
    }
  };
  window.hubspotDial = function (number) {
    send({ type: "DIAL_NUMBER",
           data: { phoneNumber: number, objectId: 51, objectType: "CONTACT" } });
  };
})();
</script>
</body></html>"""


class HubSpotStandIn:
    """The stand-in HubSpot page on http://localhost:<port>/, embedding ``desk_url``."""

    def __init__(self, port: int, desk_url: str) -> None:
        self.url = f"http://localhost:{port}"
        page = HOST_PAGE.replace("__DESK__", desk_url).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # http.server calls it by this name
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class World:
    server: LiveServer
    crm: ExamplePage
    hubspot: HubSpotStandIn
    mediaservice: StandIn
    pbx: TeleforgeStandIn
    tokens: dict[str, str]

    def api(self, name: str, method: str, path: str, body: Any) -> Any:
        response = requests.request(method, self.server.url + "/api/v1" + path, json=body,
                                    headers={"Authorization": f"Bearer {self.tokens[name]}"},
                                    timeout=5)
        assert response.ok, response.text
        return response.json()

    def presence(self, name: str, value: str) -> None:
        self.api(name, "PUT", "/agents/me/presence", {"presence": value})

    def placetel(self, **form: str) -> None:
        assert self.server.placetel(**form).ok


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp: Path = tmp_path_factory.mktemp("embed-calls")
    desk_private, desk_public = key_pair()
    provider_private, provider_public = key_pair()
    (tmp / "desk.pem").write_text(desk_private)
    (tmp / "provider.pub").write_text(provider_public)
    mediaservice = StandIn(desk_url="", desk_public_key=desk_public,
                           provider_private_key=provider_private)
    pbx = TeleforgeStandIn()
    pbx.__enter__()
    crm_port, hubspot_port = free_port(), free_port()
    env = desk_env(
        f"sqlite:///{tmp / 'desk.sqlite3'}",
        DESK_EMBED_ORIGINS=f"http://localhost:{crm_port},http://localhost:{hubspot_port}",
        DESK_MEDIASERVICE_URL=mediaservice.url, DESK_MEDIASERVICE_DOMAIN=DOMAIN,
        DESK_MEDIASERVICE_KEY_FILE=str(tmp / "desk.pem"),
        DESK_MEDIASERVICE_CALLBACK_KEY_FILE=str(tmp / "provider.pub"),
        DESK_TELEFORGE_URL=pbx.url, DESK_TELEFORGE_CALLER_IDS="27820001111",
        DESK_PROVIDER_TIMEOUT="10", DESK_WRAP_UP_SECONDS="0",
    )
    prepare(env, PASSWORD)
    flask_cli(env, "users", "create", "cy", "--role", "agent", "--extension", "104",
              "--sip-peer", "777cy@fpbx.de", stdin=PASSWORD + "\n")
    tokens = {name: flask_cli(env, "users", "token", name).strip()
              for name in ("ann", "cy", "sue")}
    server = LiveServer(env)
    mediaservice.desk_url = server.url
    crm = ExamplePage(crm_port, server.url, tmp)
    hubspot = HubSpotStandIn(hubspot_port, server.url)
    world = World(server, crm, hubspot, mediaservice, pbx, tokens)
    world.api("sue", "PUT", "/dispositions", {"dispositions": ["Sale", "Call back"]})
    try:
        yield world
    finally:
        hubspot.stop()
        crm.stop()
        server.stop()
        mediaservice.stop()
        pbx.__exit__(None, None, None)


@pytest.fixture
def viewport() -> dict[str, int]:
    return {"width": 1200, "height": 900}


def log_in_framed(page: Page, frame: FrameLocator) -> None:
    """ann logs in inside ``frame`` through the popup, as an agent in a CRM does."""
    with page.expect_popup() as opened:
        frame.get_by_role("button", name="Log in in a new window").click()
    popup = opened.value
    popup.get_by_label("Name").fill("ann")
    popup.get_by_label("Password").fill(PASSWORD)
    # Listen before the click: the popup may close before a later wait could start.
    with popup.expect_event("close", timeout=WAIT):
        popup.get_by_role("button", name="Log in").click()
    expect(frame.locator("#live-status")).to_have_text("live", timeout=WAIT)


def count(page: Page, kind: str) -> int:
    return page.locator(f"#log li[data-type='{kind}']").count()


def settle(page: Page) -> None:
    """Ask the desk for ``ready`` and wait for it: whatever it sent before has arrived."""
    before = count(page, "ready")
    page.get_by_role("button", name="Hello").click()
    expect(page.locator("#log li[data-type='ready']")).to_have_count(before + 1)


# -- the example CRM page --------------------------------------------------------------------


def test_screen_pops_come_only_for_calls_ringing_this_agent_and_once(
    page: Page, world: World,
) -> None:
    world.presence("ann", "offline")
    world.presence("cy", "available")
    # Five live calls of other agents before ann logs in: two talking with bob, three
    # ringing cy (ann is offline: routing does not ring her).
    for n in range(1, 6):
        world.placetel(event="IncomingCall", call_id=f"other-{n}", **{"from": f"030100000{n}"},
                       to="0221")
    for n in (1, 2):
        world.placetel(event="CallAccepted", call_id=f"other-{n}", peer="102")

    page.goto(world.crm.url + "/")
    frame = page.frame_locator("#desk")
    log_in_framed(page, frame)
    expect(frame.locator("#calls-queue .call")).to_have_count(5)
    settle(page)
    ready = received(page, "ready")[-1]["data"]
    assert ready["loggedIn"] is True and ready["user"] == "ann"
    assert ready["presence"] == "available" and ready["available"] is True
    assert count(page, "screen_pop") == 0
    assert count(page, "call_started") == 0

    # A call routed to ann (and cy): one screen pop, with the caller's number.
    world.placetel(event="IncomingCall", call_id="for-ann", **{"from": "0309876543"}, to="0221")
    expect(page.locator("#log li[data-type='screen_pop']")).to_have_count(1)
    pop = received(page, "screen_pop")[0]["data"]
    assert (pop["from"], pop["to"], pop["number"]) == ("0309876543", "0221", "0309876543")
    expect(page.locator("#pop")).to_contain_text("Incoming call from 0309876543")
    expect(frame.locator(f"#call-{pop['callId']}")).to_contain_text("Ringing for you")

    # Reloading the CRM page while it still rings replays nothing.
    page.reload()
    frame = page.frame_locator("#desk")
    expect(frame.locator("#live-status")).to_have_text("live", timeout=WAIT)
    expect(frame.locator(f"#call-{pop['callId']}")).to_contain_text("Ringing for you")
    settle(page)
    assert count(page, "screen_pop") == 0

    # A colleague takes it: the CRM is told the pop is over.
    world.placetel(event="CallAccepted", call_id="for-ann", peer="777cy@fpbx.de")
    expect(page.locator("#log li[data-type='call_ended']")).to_have_count(1)
    ended = received(page, "call_ended")[0]["data"]
    assert ended["callId"] == pop["callId"] and ended["status"] == "answered_elsewhere"
    settle(page)
    assert count(page, "screen_pop") == 0 and count(page, "call_started") == 0
    for call_id in ("for-ann", "other-1", "other-2"):
        world.placetel(event="HungUp", call_id=call_id, type="accepted", duration="30")
    for n in (3, 4, 5):
        world.placetel(event="HungUp", call_id=f"other-{n}", type="missed")


def test_hangup_is_acknowledged_and_the_wrap_up_reaches_the_crm(
    page: Page, world: World,
) -> None:
    world.presence("cy", "offline")  # the mediaservice rings the first free agent: ann
    page.goto(world.crm.url + "/")
    frame = page.frame_locator("#desk")
    log_in_framed(page, frame)

    ms = world.mediaservice
    answer = ms.incoming_call(caller="46890510")
    assert answer["destAddr"] == "sip:777ann@fpbx.de"
    expect(page.locator("#log li[data-type='screen_pop']")).to_have_count(1)
    pop = received(page, "screen_pop")[0]["data"]
    assert pop["number"] == "46890510"
    ms.answered(caller="46890510", agent_user="101")
    expect(page.locator("#log li[data-type='call_answered']")).to_have_count(1)
    started = received(page, "call_started")
    assert [m["data"]["callId"] for m in started] == [pop["callId"]]
    assert started[0]["data"]["direction"] == "inbound"
    assert started[0]["data"]["number"] == "46890510"
    assert count(page, "screen_pop") == 1

    # The CRM hangs up: the desk acknowledges, then the call ends as the provider confirms.
    page.get_by_role("button", name="Hang up").click()
    expect(page.locator("#log li[data-type='ack']")).to_have_count(1)
    (ack,) = received(page, "ack")
    assert ack["data"] == {"type": "hangup", "callId": pop["callId"]}
    assert ack["id"].startswith("crm-")
    assert not received(page, "error")
    expect(page.locator("#log li[data-type='call_ended']")).to_have_count(1)
    ended = received(page, "call_ended")[0]["data"]
    assert ended["callId"] == pop["callId"] and ended["status"] == "answered"
    assert ended["disposition"] is None and ended["note"] is None and ended["wrappedUp"] is None
    assert [seen.path for seen in ms.seen][-1] == f"/{DOMAIN}/hangupcall"

    # The agent wraps up in the ended row: the CRM gets the disposition and the note.
    row = frame.locator(f"#calls-ended #call-{pop['callId']}")
    row.get_by_label("Disposition").select_option("Sale")
    row.get_by_label("Note").fill("wants a brochure")
    row.get_by_role("button", name="Save wrap-up").click()
    expect(page.locator("#log li[data-type='call_wrapped_up']")).to_have_count(1)
    # call_ended again, now the call's whole record, before call_wrapped_up.
    first, again = (m["data"] for m in received(page, "call_ended"))
    assert again == {**first, "disposition": "Sale", "note": "wants a brochure",
                     "wrappedUp": again["wrappedUp"]}
    assert again["wrappedUp"]  # when, ISO 8601
    types = page.locator("#log li").evaluate_all("items => items.map(i => i.dataset.type)")
    assert types.index("call_wrapped_up") > len(types) - 1 - types[::-1].index("call_ended")
    wrapped = received(page, "call_wrapped_up")[0]["data"]
    assert wrapped == {"callId": pop["callId"], "disposition": "Sale",
                       "note": "wants a brochure", "record": None}
    expect(page.locator("#pop")).to_contain_text("wrapped up: Sale — wants a brochure")

    expect(row).to_contain_text("Wrapped up: Sale — wants a brochure")
    settle(page)
    assert count(page, "call_wrapped_up") == 1 and count(page, "call_ended") == 2
    world.presence("cy", "available")


# -- HubSpot, driven by the SDK's host side ----------------------------------------------------


def events(page: Page, kind: str | None = None) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = page.evaluate("window.hubspotEvents")
    return [e for e in found if kind is None or e["type"] == kind]


def wait_event(page: Page, kind: str, number: int = 1) -> dict[str, Any]:
    page.wait_for_function(
        f"window.hubspotEvents.filter(e => e.type === {json.dumps(kind)}).length >= {number}",
        timeout=WAIT)
    return events(page, kind)[number - 1]


def test_hubspot_gets_initialized_after_sync_and_one_incoming_call_per_call(
    page: Page, world: World,
) -> None:
    warnings: list[str] = []
    page.on("console", lambda m: warnings.append(m.text) if "not initialized" in m.text else None)
    page.goto(world.hubspot.url + "/")
    widget = page.frame_locator("#widget iframe")
    frame = widget.frame_locator("#desk")

    # Logged out: initialized after SYNC (the host saw the SYNC_ACK as READY), and says so.
    first = wait_event(page, "INITIALIZED")
    kinds = [e["type"] for e in events(page)]
    assert kinds.index("READY") < kinds.index("INITIALIZED")
    assert first["data"] == {"isLoggedIn": False, "isAvailable": False, "engagementId": 4242}
    log_in_framed(page, frame)
    wait_event(page, "LOGGED_IN")
    wait_event(page, "USER_AVAILABLE")

    # Opened again (HubSpot reloads its widget): logged in and available from the start.
    world.presence("cy", "available")
    world.placetel(event="IncomingCall", call_id="hs-other", **{"from": "0301110000"}, to="0221")
    world.placetel(event="CallAccepted", call_id="hs-other", peer="777cy@fpbx.de")
    page.reload()
    widget = page.frame_locator("#widget iframe")
    frame = widget.frame_locator("#desk")
    initialized = wait_event(page, "INITIALIZED")
    assert initialized["data"] == {"isLoggedIn": True, "isAvailable": True, "engagementId": 4242}
    expect(frame.locator("#live-status")).to_have_text("live", timeout=WAIT)
    expect(frame.locator("#calls-queue .call")).to_have_count(1)  # cy's call: no incomingCall

    # A call ringing ann: one incomingCall, with the caller's number.
    world.placetel(event="IncomingCall", call_id="hs-in", **{"from": "0309876543"}, to="0221")
    incoming = wait_event(page, "INCOMING_CALL")["data"]
    assert incoming["fromNumber"] == "0309876543" and incoming["toNumber"] == "0221"
    assert incoming["createEngagement"] is True
    call_id = incoming["externalCallId"]
    world.placetel(event="CallAccepted", call_id="hs-in", peer="777ann@fpbx.de")
    assert wait_event(page, "CALL_ANSWERED")["data"] == {"externalCallId": call_id}
    world.placetel(event="HungUp", call_id="hs-in", type="accepted", duration="42")
    ended = wait_event(page, "CALL_ENDED")["data"]
    assert ended == {"externalCallId": call_id, "callEndStatus": "COMPLETED",
                     "engagementId": 9001}
    assert len(events(page, "INCOMING_CALL")) == 1
    assert events(page, "CALL_COMPLETED") == []  # a talked call waits for its wrap-up

    # The wrap-up completes the engagement with the disposition and the note.
    row = frame.locator(f"#calls-ended #call-{call_id}")
    row.get_by_label("Disposition").select_option("Call back")
    row.get_by_label("Note").fill("after five")
    row.get_by_role("button", name="Save wrap-up").click()
    completed = wait_event(page, "CALL_COMPLETED")["data"]
    assert completed["externalCallId"] == call_id and completed["engagementId"] == 9001
    properties = completed["engagementProperties"]
    assert properties["hs_call_body"] == "Call back — after five"
    assert properties["hs_call_duration"] == "42000"

    # HubSpot dials: outgoingCall with the customer's number, never the extension as caller.
    page.evaluate("window.hubspotDial('+27 82 000 1234')")
    outgoing = wait_event(page, "OUTGOING_CALL_STARTED")["data"]
    assert outgoing["toNumber"] == "0027820001234"
    assert outgoing.get("fromNumber") in (None, "27820001111")
    assert outgoing["createEngagement"] is True
    assert len(world.pbx.dials) >= 1 and world.pbx.dials[-1].json["callee"] == "0027820001234"
    assert len(events(page, "INCOMING_CALL")) == 1  # still one: only the call that rang ann
    assert not [e for e in events(page) if e["type"] == "ERROR"]
    assert not warnings, warnings  # nothing was sent before SYNC and dropped
    world.placetel(event="HungUp", call_id="hs-other", type="accepted", duration="10")
