"""mediaservice end to end: the desk under gunicorn, a stand-in mediaservice on loopback
that checks the desk's JWT, records requests and sends signed callbacks back over HTTP.

Two more stand-ins play hybrid sites a callback's ``siteBaseUrl`` may name: one configured in
``DESK_MEDIASERVICE_SITE_URLS`` (with ``http://127.0.0.1:9``, where nothing listens), one not.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import create_engine, select
from sqlalchemy.engine import Engine

from desk.models import AuditEntry, Call, Delivery
from tests.conftest import PASSWORD
from tests.mediaservice_standin import DOMAIN, StandIn, key_pair
from tests.servers import LiveServer, desk_env, flask_cli, prepare, recv_until


@dataclass(frozen=True)
class Keys:
    desk_private: str
    desk_public: str
    provider_private: str
    provider_public: str


@dataclass(frozen=True)
class Sites:
    listed: StandIn  # a hybrid site in DESK_MEDIASERVICE_SITE_URLS
    unlisted: StandIn  # any other host a (forged) callback might name


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys(*key_pair(), *key_pair())


@pytest.fixture(scope="module")
def sites(keys: Keys) -> Iterator[Sites]:
    both = Sites(*(StandIn(desk_url="", desk_public_key=keys.desk_public,
                           provider_private_key=keys.provider_private) for _ in range(2)))
    yield both
    both.listed.stop()
    both.unlisted.stop()


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory, keys: Keys, sites: Sites,
) -> Iterator[tuple[LiveServer, StandIn, Engine]]:
    tmp: Path = tmp_path_factory.mktemp("mediaservice")
    desk_private, desk_public = keys.desk_private, keys.desk_public
    provider_private, provider_public = keys.provider_private, keys.provider_public
    (tmp / "desk.pem").write_text(desk_private)
    (tmp / "provider.pub").write_text(provider_public)
    standin = StandIn(desk_url="", desk_public_key=desk_public,
                      provider_private_key=provider_private)
    database = f"sqlite:///{tmp / 'desk.sqlite3'}"
    env = desk_env(
        database, DESK_MEDIASERVICE_URL=standin.url, DESK_MEDIASERVICE_DOMAIN=DOMAIN,
        DESK_MEDIASERVICE_KEY_FILE=str(tmp / "desk.pem"),
        DESK_MEDIASERVICE_CALLBACK_KEY_FILE=str(tmp / "provider.pub"),
        DESK_PROVIDER_TIMEOUT="2",
        DESK_MEDIASERVICE_SITE_URLS=f"{sites.listed.url}, http://127.0.0.1:9",
        # Each test's call for ann comes right after the previous one ended: no wrap-up
        # in between (tests/test_wrapup.py is about that).
        DESK_WRAP_UP_SECONDS="0",
    )
    prepare(env, PASSWORD)
    server = LiveServer(env)
    standin.desk_url = sites.listed.desk_url = server.url
    engine = create_engine(database)
    yield server, standin, engine
    engine.dispose()
    server.stop()
    standin.stop()


def csrf(session: requests.Session, url: str) -> dict[str, str]:
    page = session.get(url + "/", timeout=5).text
    token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    return {"X-CSRFToken": token, "HX-Request": "true"}


def the_call(engine: Engine, session_id: str) -> Call:
    with engine.connect() as conn:
        row = conn.execute(select(Call).where(Call.provider_call_id == session_id)).one()
    return row  # type: ignore[return-value]


def audit(engine: Engine, call_id: int) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(
            select(AuditEntry.action, AuditEntry.outcome).where(AuditEntry.call_id == call_id)
            .order_by(AuditEntry.id))]


def connected_call(
    world: tuple[LiveServer, StandIn, Engine], **answered: Any,
) -> tuple[requests.Session, int]:
    """ann on a new call; ``answered`` adds fields to its callAnswered (``siteBaseUrl``)."""
    server, standin, engine = world
    ann = server.login("ann", PASSWORD)  # logging in makes ann available for routing
    if standin.session_id:  # the previous test's call ends: ann is free again
        standin.callback("sessionCompleted", {"sessionId": standin.session_id})
    answer = standin.incoming_call()
    assert answer["action"] == "call" and answer["destAddr"] == "sip:777ann@fpbx.de"
    assert answer["sessionReferenceId"] == {"deskCallId": standin.session_id}
    standin.answered(**answered)
    call = the_call(engine, standin.session_id)
    assert (call.state, call.agent_id) == ("talking", 1)
    return ann, call.id


def test_a_whole_call_records_and_hangs_up_with_the_right_requests_and_audit(
    world: tuple[LiveServer, StandIn, Engine],
) -> None:
    server, standin, engine = world
    ann, call_id = connected_call(world)
    headers = csrf(ann, server.url)
    standin.seen.clear()
    with server.board(ann) as board:
        snapshot = board.recv(timeout=5)
        assert f'hx-post="/calls/{call_id}/hangup"' in snapshot  # ann's own call: buttons

        row = ann.post(f"{server.url}/calls/{call_id}/recording", headers=headers, timeout=5)
        assert row.status_code == 200 and "● Recording" in row.text
        assert "Stop recording" in recv_until(board, "● Recording")

        stop = ann.delete(f"{server.url}/calls/{call_id}/recording", headers=headers, timeout=5)
        assert stop.status_code == 200 and "Saving recording" in stop.text
        assert "▶ Recording ready" in recv_until(board, "Recording ready")

        hang = ann.post(f"{server.url}/calls/{call_id}/hangup", headers=headers, timeout=5)
        assert hang.status_code == 200 and "Hanging up" in hang.text
        ended = recv_until(board, 'data-state="ended"')
        assert "Hanging up" not in ended

    start, stop_, hangup = standin.seen
    call = the_call(engine, standin.session_id)
    assert (start.method, start.path) == ("POST", f"/{DOMAIN}/startrecording")
    assert start.body == {"recordingFileName": call.recording_file_name,
                          "replyId": call.provider_facts["reply_id"],
                          "connectionId": standin.connection_id}
    assert (stop_.path, stop_.body) == (f"/{DOMAIN}/stoprecording", {
        "replyId": call.provider_facts["reply_id"], "connectionId": standin.connection_id})
    assert (hangup.path, hangup.body) == (f"/{DOMAIN}/hangupcall",
                                          {"replyId": call.provider_facts["reply_id"]})
    assert all(seen.claims is not None for seen in standin.seen)  # signed with the desk's key
    assert (call.state, call.recording_state, call.pending_action) == ("ended", "ready", None)
    assert re.fullmatch(r"desk-call-\d+-\d{8}T\d{6}Z\.mp3", call.recording_file_name)
    assert audit(engine, call_id) == [("record", "ok"), ("stop-record", "ok"), ("hangup", "ok")]
    drop = next(a for name, b, _, a in standin.callbacks
                if name == "callEvent" and b["sessionId"] == standin.session_id)
    assert drop == {"action": "drop"}  # the remaining party is dropped too


def test_recording_plays_from_a_fresh_provider_url(
    world: tuple[LiveServer, StandIn, Engine],
) -> None:
    server, standin, engine = world
    ann, call_id = connected_call(world)
    headers = csrf(ann, server.url)
    started = ann.post(f"{server.url}/calls/{call_id}/recording", headers=headers, timeout=5)
    assert "● Recording" in started.text, started.text[-600:]
    stopped = ann.delete(f"{server.url}/calls/{call_id}/recording", headers=headers, timeout=5)
    assert "Saving recording" in stopped.text, stopped.text[-600:]
    standin.settle()
    page = ann.get(f"{server.url}/calls/{call_id}", timeout=5).text
    assert '<audio controls' in page and "recordingReady" in page  # timeline shows callbacks
    audio = ann.get(f"{server.url}/calls/{call_id}/recording", timeout=5)
    assert audio.status_code == 200 and audio.content.startswith(b"RIFF")
    assert audio.url.startswith(standin.url + "/files/desk-call-")
    with engine.connect() as conn:  # the 15-minute URL is never stored
        facts = conn.scalars(select(Call.provider_facts)).all()
    assert not any("/files/" in str(f) for f in facts)


def test_split_with_a_target_answers_both_split_events(
    world: tuple[LiveServer, StandIn, Engine],
) -> None:
    server, standin, engine = world
    ann, call_id = connected_call(world)
    standin.seen.clear()
    response = ann.post(f"{server.url}/calls/{call_id}/split",
                        data={"target": "sip:200@pbx.example"},
                        headers=csrf(ann, server.url), timeout=5)
    assert response.status_code == 200 and "Transferring" in response.text
    standin.settle()
    (split,) = standin.seen
    assert (split.path, split.body) == (f"/{DOMAIN}/splitconnection", {
        "replyId": the_call(engine, standin.session_id).provider_facts["reply_id"],
        "connectionId": standin.connection_id})
    answers = {b["event"]: a for name, b, _, a in standin.callbacks
               if name == "callEvent" and b.get("sessionId") == standin.session_id}
    assert answers["callerConnectionSplit"] == {"action": "call", "destAddr": "sip:200@pbx.example",
                                                "maxRingTime": 30}
    assert answers["calleeConnectionSplit"] == {"action": "drop"}
    assert the_call(engine, standin.session_id).pending_action is None  # confirmed
    assert audit(engine, call_id) == [("split", "ok")]


@pytest.mark.parametrize(
    ("mode", "message", "outcome"),
    [("refuse", "refused to hang up the call: call not found", "refused"),
     ("slow", "did not answer within 2 s", "error"),
     ("error", "failed to hang up the call (HTTP 500)", "error"),
     ("down", "Could not reach the call service", "error")],
)
def test_provider_trouble_shows_inline_is_audited_and_changes_nothing_else(
    world: tuple[LiveServer, StandIn, Engine], mode: str, message: str, outcome: str,
) -> None:
    server, standin, engine = world
    ann, call_id = connected_call(world)
    before = the_call(engine, standin.session_id)
    if mode == "down":  # this call's API base (a hybrid site) is where nothing listens
        with engine.begin() as conn:
            facts = dict(before.provider_facts, site_base_url="http://127.0.0.1:9")
            conn.execute(Call.__table__.update().where(Call.id == call_id)
                         .values(provider_facts=facts))
    standin.mode = mode
    try:
        response = ann.post(f"{server.url}/calls/{call_id}/hangup",
                            headers=csrf(ann, server.url), timeout=10)
    finally:
        standin.mode = "ok"
    assert response.status_code == 200
    assert message in response.text and 'class="call__error"' in response.text
    after = the_call(engine, standin.session_id)
    assert (after.state, after.pending_action, after.agent_id) == ("talking", None, 1)
    assert message in after.action_error
    assert audit(engine, call_id) == [("hangup", outcome)]


def test_a_double_click_sends_one_request(world: tuple[LiveServer, StandIn, Engine]) -> None:
    server, standin, _engine = world
    ann, call_id = connected_call(world)
    headers = csrf(ann, server.url)
    standin.seen.clear()
    standin.mode = "slow"  # the first press is still waiting for the provider
    results: list[int] = []
    try:
        presses = [threading.Thread(target=lambda: results.append(ann.post(
            f"{server.url}/calls/{call_id}/hangup", headers=headers, timeout=10).status_code))
            for _ in range(2)]
        for press in presses:
            press.start()
        for press in presses:
            press.join()
    finally:
        standin.mode = "ok"
    assert sorted(results) == [200, 409], server.output()
    assert [s.path for s in standin.seen] == [f"/{DOMAIN}/hangupcall"]


def test_only_the_calls_agent_or_a_supervisor_may_press(
    world: tuple[LiveServer, StandIn, Engine],
) -> None:
    server, _standin, _engine = world
    _ann, call_id = connected_call(world)
    bob = server.login("bob", PASSWORD)
    refused = bob.post(f"{server.url}/calls/{call_id}/recording", headers=csrf(bob, server.url),
                       timeout=5)
    assert refused.status_code == 403 and "their own calls" in refused.text
    with server.board(bob) as board:
        assert f"/calls/{call_id}/hangup" not in board.recv(timeout=5)  # no buttons for bob
    sue = server.login("sue", PASSWORD)
    bearer = flask_cli(server.env, "users", "token", "sue").strip()  # the API, by token
    started = requests.post(f"{server.url}/api/v1/calls/{call_id}/recording",
                    headers={"Authorization": f"Bearer {bearer}"}, timeout=5)
    assert started.status_code == 202, started.text
    assert started.json()["recording_state"] == "on"
    stopped = requests.delete(f"{server.url}/api/v1/calls/{call_id}/recording",
                              headers={"Authorization": f"Bearer {bearer}"}, timeout=5)
    assert stopped.status_code == 202
    again = requests.delete(f"{server.url}/api/v1/calls/{call_id}/recording",
                            headers={"Authorization": f"Bearer {bearer}"}, timeout=5)
    assert again.status_code == 409 and "not being recorded" in again.json()["message"]
    assert sue.get(f"{server.url}/calls/{call_id}", timeout=5).ok


def test_callbacks_must_be_signed(world: tuple[LiveServer, StandIn, Engine]) -> None:
    server, standin, engine = world
    unsigned = standin.callback("sessionCompleted", {"sessionId": "x"}, signed=False)
    assert unsigned.status_code == 401 and "signed" in unsigned.json()["message"]
    forged = requests.post(f"{server.url}/webhooks/mediaservice/sessionCompleted",
                           json={"sessionId": "x"}, timeout=5,
                           headers={"Authorization": "Bearer " + "e30.e30.c2ln"})
    assert forged.status_code == 401
    with engine.connect() as conn:
        assert not conn.scalar(select(Delivery.id).where(Delivery.provider_call_id == "x"))


def test_bad_callbacks_get_400_and_are_kept(world: tuple[LiveServer, StandIn, Engine]) -> None:
    server, standin, engine = world
    response = standin.callback("callEvent", {"event": "somethingElse", "sessionId": "s-bad"})
    assert response.status_code == 400 and "event" in response.json()["message"]
    unknown = standin.callback("noSuchCallback", {"sessionId": "s"})
    assert unknown.status_code == 404
    garbage = requests.post(f"{server.url}/webhooks/mediaservice/callNotify", data=b"\xff{",
                            headers={"Authorization": f"Bearer {standin.sign()}",
                                     "Content-Type": "application/json"}, timeout=5)
    assert garbage.status_code == 400 and "not JSON" in garbage.json()["message"]
    with engine.connect() as conn:
        kept = conn.scalars(select(Delivery.error).where(Delivery.status == "rejected")).all()
    assert len(kept) >= 2


def test_a_retried_new_call_gets_the_same_answer(world: tuple[LiveServer, StandIn, Engine]) -> None:
    server, standin, _engine = world
    server.login("ann", PASSWORD)
    standin.callback("sessionCompleted", {"sessionId": standin.session_id})  # ann is free
    body = {"sessionId": "s-retry", "callingParty": "4680", "calledParty": "4690"}
    first = standin.callback("newCall", body).json()
    again = standin.callback("newCall", body).json()
    assert first == again and first["action"] == "call"


def test_alarms_reach_the_supervisor_board(world: tuple[LiveServer, StandIn, Engine]) -> None:
    server, standin, _engine = world
    with server.board(server.login("sue", PASSWORD)) as board:
        board.recv(timeout=5)
        response = standin.callback(DOMAIN, {"type": "sessionError", "error": "maxDuration",
                                             "sessionId": "s-alarm"})
        assert response.status_code == 200
        assert "sessionError: maxDuration" in recv_until(board, 'id="alerts"')


@pytest.mark.browser
def test_in_the_browser_record_then_hang_up_change_the_row(
    world: tuple[LiveServer, StandIn, Engine], browser: Any,
) -> None:
    from playwright.sync_api import expect

    server, _standin, _engine = world
    _ann, call_id = connected_call(world)
    with browser.new_context() as context:
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(server.url + "/login")
        page.get_by_label("Name").fill("ann")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        expect(page.locator("#live-status")).to_have_text("live")
        row = page.locator(f"#call-{call_id}")
        expect(row).to_contain_text("Talking")

        row.get_by_role("button", name="Record").click()
        expect(row.locator(".rec--on")).to_have_text("● Recording")
        expect(row.get_by_role("button", name="Stop recording")).to_be_visible()

        row.get_by_role("button", name="Hang up").click()
        ended = page.locator(f"#calls-ended #call-{call_id}")
        expect(ended).to_contain_text("Answered")  # the provider's callback confirmed it
        expect(ended.get_by_role("button", name="Hang up")).to_have_count(0)
        assert not errors, errors


def test_dropping_one_party_sends_hangupparticipant(
    world: tuple[LiveServer, StandIn, Engine],
) -> None:
    server, standin, engine = world
    ann, call_id = connected_call(world)
    headers = csrf(ann, server.url)
    assert "Drop the caller" in ann.get(f"{server.url}/calls/{call_id}", timeout=5).text
    standin.seen.clear()
    bad = ann.post(f"{server.url}/calls/{call_id}/drop", data={"party": "everyone"},
                   headers=headers, timeout=5)
    assert bad.status_code == 400 and "caller or agent" in bad.text
    response = ann.post(f"{server.url}/calls/{call_id}/drop", data={"party": "caller"},
                        headers=headers, timeout=5)
    assert response.status_code == 200 and "Dropping a party" in response.text
    (drop,) = standin.seen
    assert (drop.path, drop.body) == (f"/{DOMAIN}/hangupparticipant", {
        "participantId": "d93f0370", "replyId": the_call(engine, standin.session_id)
        .provider_facts["reply_id"], "sessionId": standin.session_id})
    assert audit(engine, call_id) == [("drop", "invalid"), ("drop", "ok")]


def test_a_site_base_url_not_configured_is_ignored_and_api_calls_stay_home(
    world: tuple[LiveServer, StandIn, Engine], sites: Sites,
) -> None:
    server, standin, engine = world
    ann, call_id = connected_call(world, siteBaseUrl=sites.unlisted.url, siteId="siteB")
    assert "site_base_url" not in the_call(engine, standin.session_id).provider_facts
    standin.seen.clear()
    hang = ann.post(f"{server.url}/calls/{call_id}/hangup", headers=csrf(ann, server.url),
                    timeout=5)
    assert hang.status_code == 200 and "Hanging up" in hang.text
    standin.settle()
    assert [s.path for s in standin.seen] == [f"/{DOMAIN}/hangupcall"]
    assert sites.unlisted.seen == []  # the desk's signed token never went there
    assert the_call(engine, standin.session_id).state == "ended"
    assert "not in DESK_MEDIASERVICE_SITE_URLS" in server.output()


def test_a_configured_site_base_url_gets_the_calls_api_requests(
    world: tuple[LiveServer, StandIn, Engine], sites: Sites,
) -> None:
    server, standin, engine = world
    site = sites.listed
    ann, call_id = connected_call(world, siteBaseUrl=site.url.upper() + "/", siteId="siteA")
    assert the_call(engine, standin.session_id).provider_facts["site_base_url"] == site.url
    standin.seen.clear()
    site.seen.clear()
    site.session_id = standin.session_id  # the site's own callbacks name the same session
    hang = ann.post(f"{server.url}/calls/{call_id}/hangup", headers=csrf(ann, server.url),
                    timeout=5)
    assert hang.status_code == 200 and "Hanging up" in hang.text
    site.settle()
    assert [(s.path, s.claims is not None) for s in site.seen] == [
        (f"/{DOMAIN}/hangupcall", True)]
    assert standin.seen == []
    assert the_call(engine, standin.session_id).state == "ended"  # the site's callbacks


@pytest.mark.browser
def test_keyboard_shortcuts_list_themselves_record_and_hang_up_with_a_second_press(
    world: tuple[LiveServer, StandIn, Engine], browser: Any,
) -> None:
    """static/board/keys.js: "?" opens the list, D goes to the number to dial, R records
    the agent's call, H asks first and hangs up on the second press; nothing while typing."""
    from playwright.sync_api import expect

    server, _standin, _engine = world
    _ann, call_id = connected_call(world)
    with browser.new_context() as context:
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(server.url + "/login")
        page.get_by_label("Name").fill("ann")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        expect(page.locator("#live-status")).to_have_text("live")
        row = page.locator(f"#calls-mine #call-{call_id}")
        expect(row).to_contain_text("Talking")

        page.keyboard.press("?")
        help_box = page.get_by_role("dialog", name="Keyboard shortcuts")
        expect(help_box).to_be_visible()
        expect(help_box).to_contain_text("Hang up your call (press twice)")
        page.keyboard.press("Escape")
        expect(help_box).to_be_hidden()

        page.keyboard.press("d")
        expect(page.locator("#dial-callee")).to_be_focused()
        page.keyboard.type("hr")  # typing in a field is typing, not shortcuts
        expect(page.locator("#dial-callee")).to_have_value("hr")
        expect(row.get_by_role("button", name="Hang up")).to_be_enabled()
        page.locator("#dial-callee").fill("")
        page.locator("body").click(position={"x": 5, "y": 5})

        page.keyboard.press("r")
        expect(row.locator(".rec--on")).to_have_text("● Recording")

        page.keyboard.press("h")
        expect(page.locator("#shortcut-status")).to_contain_text("Press H again to hang up")
        expect(row).to_contain_text("Talking")  # one press hangs nothing up
        page.keyboard.press("h")
        ended = page.locator(f"#calls-ended #call-{call_id}")
        expect(ended).to_contain_text("Answered")  # the provider's callback confirmed it
        assert not errors, errors
