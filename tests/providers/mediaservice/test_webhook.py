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


# -- supervisor listen-in (monitorDestAddr) ---------------------------------------------------


def bearer(server: LiveServer, name: str) -> dict[str, str]:
    return {"Authorization": "Bearer " + flask_cli(server.env, "users", "token", name).strip()}


def audit_by(engine: Engine, actions: tuple[str, ...]) -> list[tuple[str, str, int | None, str]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(  # type: ignore[misc]
            select(AuditEntry.action, AuditEntry.outcome, AuditEntry.user_id, AuditEntry.detail)
            .where(AuditEntry.action.in_(actions)).order_by(AuditEntry.id))]


def ring_once(standin: StandIn, called: str = "46890200") -> dict[str, Any]:
    """A new call routed to ann; its newCall answer. The session ends again at once."""
    if standin.session_id:
        standin.callback("sessionCompleted", {"sessionId": standin.session_id})
    answer = standin.incoming_call(called=called)
    standin.callback("sessionCompleted", {"sessionId": standin.session_id})
    return answer


def test_a_listen_in_rule_adds_the_monitoring_leg_to_matching_answers_only(
    world: tuple[LiveServer, StandIn, Engine],
) -> None:
    server, standin, engine = world
    server.login("ann", PASSWORD)  # available for routing
    sue = bearer(server, "sue")
    api = f"{server.url}/api/v1/listen-ins"
    audited_before = len(audit_by(engine, ("listen-start", "listen-stop")))

    plain = ring_once(standin)
    assert plain["action"] == "call" and "monitorDestAddr" not in plain

    on_bob = requests.post(api, json={"agent": "bob", "address": "sip:sue-desk@pbx.example"},
                           headers=sue, timeout=5)
    assert on_bob.status_code == 201, on_bob.text
    assert "monitorDestAddr" not in ring_once(standin)  # ann's call: bob's rule does not match

    on_ann = requests.post(api, json={"agent": "ann", "address": "sue-desk@pbx.example"},
                           headers=sue, timeout=5)
    assert on_ann.status_code == 201, on_ann.text
    assert on_ann.json()["address"] == "sip:sue-desk@pbx.example"
    answer = ring_once(standin)
    assert answer["destAddr"] == "sip:777ann@fpbx.de"
    assert answer["monitorDestAddr"] == "sip:sue-desk@pbx.example"
    assert answer["monitorSipFrom"] == "101"  # the supervisor's phone shows whose call it is

    for rule in (on_bob.json(), on_ann.json()):
        gone = requests.delete(api, params={"id": rule["id"]}, headers=sue, timeout=5)
        assert gone.status_code == 200 and gone.json()["id"] == rule["id"]
    assert "monitorDestAddr" not in ring_once(standin)

    by_number = requests.post(api, json={"number": "+4689 0200", "address": "sip:sue@pbx.example"},
                              headers=sue, timeout=5)
    assert by_number.status_code == 201 and by_number.json()["number"] == "46890200"
    to_line = ring_once(standin, called="46890200")
    assert (to_line["monitorDestAddr"], to_line["monitorSipFrom"]) == (
        "sip:sue@pbx.example", "46890200")
    assert "monitorDestAddr" not in ring_once(standin, called="46890999")

    # A transfer's callEvent answer connects the caller again: it gets the leg too.
    ann_session, call_id = connected_call(world)
    split = ann_session.post(f"{server.url}/calls/{call_id}/split",
                             data={"target": "sip:200@pbx.example"},
                             headers=csrf(ann_session, server.url), timeout=5)
    assert split.status_code == 200, split.text
    standin.settle()
    answers = {b["event"]: a for name, b, _, a in standin.callbacks
               if name == "callEvent" and b.get("sessionId") == standin.session_id}
    assert answers["callerConnectionSplit"]["monitorDestAddr"] == "sip:sue@pbx.example"
    assert answers["calleeConnectionSplit"] == {"action": "drop"}  # a drop carries no leg

    stopped = requests.delete(api, params={"number": "46890200"}, headers=sue, timeout=5)
    assert stopped.status_code == 200, stopped.text
    assert requests.get(api, headers=sue, timeout=5).json() == {"listen_ins": []}
    audited = audit_by(engine, ("listen-start", "listen-stop"))[audited_before:]
    assert [(action, outcome, user) for action, outcome, user, _ in audited] == [
        ("listen-start", "ok", 3), ("listen-start", "ok", 3), ("listen-stop", "ok", 3),
        ("listen-stop", "ok", 3), ("listen-start", "ok", 3), ("listen-stop", "ok", 3)]
    assert '"agent": "ann"' in audited[1][3] and "sip:sue-desk@pbx.example" in audited[1][3]


def test_listen_in_refusals_are_clear_4xx_and_audited(
    world: tuple[LiveServer, StandIn, Engine],
) -> None:
    server, _standin, engine = world
    api = f"{server.url}/api/v1/listen-ins"
    sue, ann = bearer(server, "sue"), bearer(server, "ann")
    agent = requests.post(api, json={"agent": "bob"}, headers=ann, timeout=5)
    assert agent.status_code == 403 and "supervisors" in agent.json()["message"]
    cases = [
        ({}, 400, "pick an agent, or give a number"),
        ({"agent": "bob", "number": "0221"}, 400, "not both"),
        ({"agent": "nobody"}, 404, "no user named 'nobody'"),
        ({"agent": "bob"}, 400, "you have no SIP peer set"),  # sue has none, and gave none
        ({"agent": "bob", "address": "not an address"}, 400, "is not a SIP address"),
        ({"number": "call me", "address": "sip:sue@pbx.example"}, 400, "not a phone number"),
        ({"agent": "sue", "address": "sip:sue@pbx.example"}, 400, "your own calls"),
        ({"agent": "bob", "colour": "red"}, 422, "Unknown field(s) 'colour'"),
    ]
    for body, status, message in cases:
        answer = requests.post(api, json=body, headers=sue, timeout=5)
        assert (answer.status_code, message in answer.json()["message"]) == (status, True), (
            body, answer.text)
    first = requests.post(api, json={"agent": "bob", "address": "sip:sue@pbx.example"},
                          headers=sue, timeout=5)
    again = requests.post(api, json={"agent": "bob", "address": "sip:sue2@pbx.example"},
                          headers=sue, timeout=5)
    assert again.status_code == 409 and "already" in again.json()["message"]
    assert requests.delete(api, params={"id": "x"}, headers=sue, timeout=5).status_code == 400
    stop = requests.delete(api, params={"id": first.json()["id"]}, headers=sue, timeout=5)
    assert stop.status_code == 200
    twice = requests.delete(api, params={"id": first.json()["id"]}, headers=sue, timeout=5)
    assert twice.status_code == 404 and "stopped already" in twice.json()["message"]
    invalid = [row for row in audit_by(engine, ("listen-start", "listen-stop"))
               if row[1] == "invalid"]
    assert len(invalid) >= 7 and all(row[2] == 3 for row in invalid)


def test_the_monitoring_leg_never_ends_or_reattributes_the_call_and_shows_on_the_supervisor_board(
    world: tuple[LiveServer, StandIn, Engine],
) -> None:
    server, standin, engine = world
    sue = server.login("sue", PASSWORD)
    board_page = sue.get(f"{server.url}/supervisor", timeout=5).text
    assert 'id="listen-in"' in board_page and "Start listening" in board_page
    token = re.search(r'name="csrf-token" content="([^"]+)"', board_page).group(1)  # type: ignore[union-attr]
    started = sue.post(f"{server.url}/supervisor/listen-in",
                       data={"agent_id": "1", "address": "sip:sue-desk@pbx.example"},
                       headers={"X-CSRFToken": token, "HX-Request": "true"}, timeout=5)
    assert started.status_code == 200 and "sue listens to ann's calls" in started.text
    rule_id = int(re.search(r'id="listen-in-(\d+)"', started.text).group(1))  # type: ignore[union-attr]
    audited_before = len(audit_by(engine, ("listen-start", "listen-stop"))) - 1  # its start

    ann, call_id = connected_call(world)
    before = the_call(engine, standin.session_id)
    with server.board(sue) as sue_board:
        sue_board.recv(timeout=5)
        answered = standin.monitoring_leg("sue-desk")
        assert answered.status_code == 200
        row = recv_until(sue_board, "listened by sue")
        assert f'id="call-{call_id}"' in row and 'data-state="talking"' in row
        call = the_call(engine, standin.session_id)
        assert (call.state, call.agent_id, call.answered_by, call.answered_at) == (
            "talking", before.agent_id, before.answered_by, before.answered_at)
        assert (call.caller_participant_id, call.callee_participant_id) == (
            before.caller_participant_id, before.callee_participant_id)
        assert call.provider_facts["reply_id"] == before.provider_facts["reply_id"]
        assert call.provider_facts["listened_by"] == "sue"
        assert "listened by sue" in sue.get(f"{server.url}/supervisor", timeout=5).text
        assert f'id="call-{call_id}"' in (ann_board := ann.get(server.url + "/", timeout=5).text)
        assert "listened by" not in ann_board  # DESK_LISTEN_IN_SHOWN_TO_AGENT is off

        dropped = standin.monitoring_leg_drops()  # no monitoringParticipant in a callEvent
        assert (dropped.status_code, dropped.json()) == (200, {})  # no action: the call goes on
        gone = recv_until(sue_board, f'id="call-{call_id}"')
        assert "listened by" not in gone and 'data-state="talking"' in gone
    # A leg the desk does not know, flagged as monitoring anyway: the flag is believed.
    flagged = standin.monitoring_leg_drops(leg="mon-other", event="calledPartyFailure",
                                           monitoringParticipant=True)
    assert flagged.json() == {}
    call = the_call(engine, standin.session_id)
    assert (call.state, call.agent_id, call.end_cause) == ("talking", before.agent_id, None)

    with engine.connect() as conn:
        kinds = conn.scalars(select(Delivery.kind).where(Delivery.call_id == call_id)).all()
    assert {"callNotify:ringing:monitoring", "callAnswered:monitoring",
            "callEvent:calledPartyDrop:monitoring"} <= set(kinds)
    assert "callAnswered:monitoring" in sue.get(f"{server.url}/calls/{call_id}", timeout=5).text
    ann_page = ann.get(f"{server.url}/calls/{call_id}", timeout=5).text
    assert ":monitoring" not in ann_page and "callAnswered" in ann_page

    hang = ann.post(f"{server.url}/calls/{call_id}/hangup", headers=csrf(ann, server.url),
                    timeout=5)
    assert hang.status_code == 200
    standin.settle()
    assert the_call(engine, standin.session_id).state == "ended"  # the call's own end still ends

    call_page = sue.get(f"{server.url}/calls/{call_id}", timeout=5).text
    assert "Stop listening" in call_page  # sue's rule for ann, from the call page
    stopped = sue.post(f"{server.url}/supervisor/listen-in/{rule_id}/stop",
                       data={"csrf_token": token, "next": f"/calls/{call_id}"}, timeout=5)
    assert stopped.status_code == 200 and stopped.url.endswith(f"/calls/{call_id}")
    assert "Listen to ann's calls" in stopped.text
    audited = audit_by(engine, ("listen-start", "listen-stop"))[audited_before:]
    assert [(a, o, u) for a, o, u, _d in audited] == [
        ("listen-start", "ok", 3), ("listen-stop", "ok", 3)]
    assert all(f'"listen_in": {rule_id}' in (d or "") for *_rest, d in audited)


# -- pause and resume recording ----------------------------------------------------------------


def test_pause_and_resume_record_segments_that_play_in_order(
    world: tuple[LiveServer, StandIn, Engine],
) -> None:
    server, standin, engine = world
    ann, call_id = connected_call(world)
    headers = csrf(ann, server.url)
    bob = server.login("bob", PASSWORD)
    standin.seen.clear()
    standin.callbacks.clear()
    url = f"{server.url}/calls/{call_id}/recording"
    with server.board(bob) as bob_board:
        bob_board.recv(timeout=5)
        started = ann.post(url, headers=headers, timeout=5)
        assert "Pause recording" in started.text, started.text[-800:]
        paused = ann.post(url + "/pause", headers=headers, timeout=5)
        assert paused.status_code == 200 and "Recording paused" in paused.text
        assert "Resume recording" in paused.text and ">Record<" not in paused.text
        seen_by_bob = recv_until(bob_board, "Recording paused")  # everyone watching
        assert "Resume recording" not in seen_by_bob  # bob may not act on ann's call
    standin.settle()
    resumed = ann.post(url + "/resume", headers=headers, timeout=5)
    assert resumed.status_code == 200 and "● Recording" in resumed.text
    sue = bearer(server, "sue")  # a supervisor pauses the second part through the API
    by_api = requests.post(f"{server.url}/api/v1/calls/{call_id}/recording/pause", headers=sue,
                           timeout=5)
    assert by_api.status_code == 202 and by_api.json()["recording_state"] == "paused"
    standin.settle()
    again = requests.post(f"{server.url}/api/v1/calls/{call_id}/recording/resume", headers=sue,
                          timeout=5)
    assert again.status_code == 202 and again.json()["recording_state"] == "on"
    stopped = ann.delete(url, headers=headers, timeout=5)
    assert "Saving recording" in stopped.text
    standin.settle()

    starts = [s.body["recordingFileName"] for s in standin.seen
              if s.path == f"/{DOMAIN}/startrecording"]
    assert [s.path.rsplit("/", 1)[1] for s in standin.seen] == [
        "startrecording", "stoprecording"] * 3
    assert len(set(starts)) == 3 and starts[1:] == [
        starts[0].replace(".mp3", "-part2.mp3"), starts[0].replace(".mp3", "-part3.mp3")]
    ready = [b["recordingFileName"] for name, b, status, _ in standin.callbacks
             if name == "recordingReady" and status == 200]
    assert ready == starts  # one recordingReady per segment, each applied

    listing = requests.get(f"{server.url}/api/v1/calls/{call_id}/recording/segments",
                           headers=sue, timeout=5).json()
    assert listing["recording_state"] == "ready" and listing["recording_error"] is None
    assert [(s["position"], s["file_name"], s["state"]) for s in listing["segments"]] == [
        (i + 1, name, "ready") for i, name in enumerate(starts)]
    assert [(s["started_by"], s["stopped_by"], s["stop_reason"]) for s in listing["segments"]] == [
        ("ann", "ann", "pause"), ("ann", "sue", "pause"), ("sue", "ann", "stop")]
    assert [(p["after_part"], p["paused_by"], p["resumed_by"]) for p in listing["paused"]] == [
        (1, "ann", "ann"), (2, "sue", "sue")]
    assert all(p["seconds"] is not None for p in listing["paused"])

    page = ann.get(f"{server.url}/calls/{call_id}", timeout=5).text
    order = [page.index(f'id="segment-{n}"') for n in (1, 2, 3)]
    pauses = [page.index(f'id="paused-after-{n}"') for n in (1, 2)]
    assert order[0] < pauses[0] < order[1] < pauses[1] < order[2]
    assert "paused by sue" in page and "segments.js" in page
    for position, name in enumerate(starts, start=1):
        audio = ann.get(f"{url}?part={position}", timeout=5)
        assert audio.status_code == 200 and audio.content.startswith(b"RIFF")
        assert audio.url == f"{standin.url}/files/{name}"
    assert ann.get(f"{url}?part=4", timeout=5).status_code == 404
    assert ann.get(f"{url}?part=two", timeout=5).status_code == 400
    with engine.connect() as conn:
        pressed = conn.execute(select(AuditEntry.action, AuditEntry.outcome, AuditEntry.user_id)
                               .where(AuditEntry.call_id == call_id)
                               .order_by(AuditEntry.id)).all()
    assert [tuple(p) for p in pressed] == [
        ("record", "ok", 1), ("pause-record", "ok", 1), ("resume-record", "ok", 1),
        ("pause-record", "ok", 3), ("resume-record", "ok", 3), ("stop-record", "ok", 1)]


def test_pause_and_resume_refuse_what_does_not_fit(
    world: tuple[LiveServer, StandIn, Engine],
) -> None:
    server, standin, engine = world
    ann, call_id = connected_call(world)
    headers = csrf(ann, server.url)
    url = f"{server.url}/calls/{call_id}/recording"
    not_recording = ann.post(url + "/pause", headers=headers, timeout=5)
    assert not_recording.status_code == 409 and "not being recorded" in not_recording.text
    not_paused = ann.post(url + "/resume", headers=headers, timeout=5)
    assert not_paused.status_code == 409 and "not paused" in not_paused.text
    bob = server.login("bob", PASSWORD)
    assert bob.post(url + "/pause", headers=csrf(bob, server.url), timeout=5).status_code == 403
    ann.post(url, headers=headers, timeout=5)
    standin.mode = "refuse"
    try:
        refused = ann.post(url + "/pause", headers=headers, timeout=5)
    finally:
        standin.mode = "ok"
    assert refused.status_code == 200 and "call not found" in refused.text
    assert "● Recording" in refused.text  # still recording: nothing else changed
    ann.post(url + "/pause", headers=headers, timeout=5)
    twice = ann.post(url, headers=headers, timeout=5)
    assert twice.status_code == 409 and "paused; resume it" in twice.text
    assert audit(engine, call_id) == [
        ("pause-record", "invalid"), ("resume-record", "invalid"), ("record", "ok"),
        ("pause-record", "refused"), ("pause-record", "ok"), ("record", "invalid")]


@pytest.mark.parametrize("named", [True, False],
                         ids=["failure-names-its-file", "failure-names-none"])
def test_a_failed_segment_is_shown_without_losing_the_others(
    world: tuple[LiveServer, StandIn, Engine], named: bool,
) -> None:
    server, standin, _engine = world
    ann, call_id = connected_call(world)
    headers = csrf(ann, server.url)
    url = f"{server.url}/calls/{call_id}/recording"
    standin.failing_recordings = {"-part2"}
    standin.failures_name_no_file = not named
    try:
        ann.post(url, headers=headers, timeout=5)
        ann.post(url + "/pause", headers=headers, timeout=5)
        standin.settle()
        ann.post(url + "/resume", headers=headers, timeout=5)
        stopped = ann.delete(url, headers=headers, timeout=5)
        assert "Saving recording" in stopped.text
        standin.settle()
    finally:
        standin.failing_recordings, standin.failures_name_no_file = set(), False
    sue = bearer(server, "sue")
    listing = requests.get(f"{server.url}/api/v1/calls/{call_id}/recording/segments",
                           headers=sue, timeout=5).json()
    assert [(s["position"], s["state"], s["error"]) for s in listing["segments"]] == [
        (1, "ready", None), (2, "failed", "No callee media received")]
    assert listing["recording_state"] == "ready"
    assert listing["recording_error"] == "part 2 failed: No callee media received"
    row = requests.get(f"{server.url}/api/v1/calls/{call_id}", headers=sue, timeout=5).json()
    assert row["recording_state"] == "ready"
    page = ann.get(f"{server.url}/calls/{call_id}", timeout=5).text
    assert "This part failed: No callee media received" in page
    assert page.count("<audio controls") == 1  # part 1 plays, part 2 has nothing to play
    assert ann.get(f"{url}?part=1", timeout=5).content.startswith(b"RIFF")
    assert ann.get(f"{url}?part=2", timeout=5).status_code == 404


@pytest.mark.browser
def test_in_the_browser_pause_resume_listen_in_and_their_pages_stay_accessible(
    world: tuple[LiveServer, StandIn, Engine], browser: Any,
) -> None:
    """The row's Pause / Resume buttons work from the board; the board with a paused
    recording, the supervisor board with a listen-in and the call page with parts and pauses
    pass axe (no serious or critical violation) at both widths."""
    from playwright.sync_api import expect

    from tests.test_a11y_browser import AXE, check_page

    if not AXE.exists():
        pytest.skip(f"{AXE} is missing: run `make assets`")
    server, standin, _engine = world
    sue = bearer(server, "sue")
    rule = requests.post(f"{server.url}/api/v1/listen-ins",
                         json={"agent": "ann", "address": "sip:sue-desk@pbx.example"},
                         headers=sue, timeout=5).json()
    try:
        ann, call_id = connected_call(world)
        standin.monitoring_leg("sue-desk")
        headers = csrf(ann, server.url)
        ann.post(f"{server.url}/calls/{call_id}/recording", headers=headers, timeout=5)
        ann.post(f"{server.url}/calls/{call_id}/recording/pause", headers=headers, timeout=5)
        standin.settle()
        with browser.new_context() as context:
            page = context.new_page()
            check_page(page, server.url, "ann", "/", AXE)
            row = page.locator(f"#calls-mine #call-{call_id}")
            expect(row.locator(".rec--paused")).to_have_text("❚❚ Recording paused")
            expect(row).not_to_contain_text("listened by")
            row.get_by_role("button", name="Resume recording").click()
            expect(row.locator(".rec--on")).to_have_text("● Recording")
            row.get_by_role("button", name="Pause recording").click()
            expect(row.locator(".rec--paused")).to_be_visible()
        standin.settle()
        for path in ("/supervisor", f"/calls/{call_id}"):
            with browser.new_context() as context:
                page = context.new_page()
                check_page(page, server.url, "sue", path, AXE)
                if path == "/supervisor":
                    expect(page.locator(f"#call-{call_id}")).to_contain_text("listened by sue")
                    expect(page.locator("#listen-in")).to_contain_text("sue listens to ann's calls")
                else:
                    expect(page.locator("#recording .segment--ready")).to_have_count(2)
                    expect(page.locator("#paused-after-1")).to_contain_text("resumed by ann")
                    expect(page.locator("#paused-after-2")).to_contain_text("paused now")
    finally:
        requests.delete(f"{server.url}/api/v1/listen-ins", params={"id": rule["id"]},
                        headers=sue, timeout=5)


def test_a_recording_the_provider_ends_by_itself_mid_call_shows_its_failure(
    world: tuple[LiveServer, StandIn, Engine],
) -> None:
    server, standin, engine = world
    ann, call_id = connected_call(world)
    started = ann.post(f"{server.url}/calls/{call_id}/recording", headers=csrf(ann, server.url),
                       timeout=5)
    assert "● Recording" in started.text
    name = the_call(engine, standin.session_id).recording_file_name
    # Invented: the service gives up on the recording by itself, nobody pressed Stop.
    standin.callback("recordingReady", {
        "event": "recordingFailed", "reason": "Storage unavailable", "recordingFileName": name,
        "connectionId": standin.connection_id, "sessionId": standin.session_id,
        "sessionReferenceId": {"deskCallId": standin.session_id}})
    call = the_call(engine, standin.session_id)
    assert (call.state, call.recording_state, call.recording_error) == (
        "talking", "failed", "Storage unavailable")
    row = ann.get(f"{server.url}/", timeout=5).text
    assert "Recording failed: Storage unavailable" in row and ">Record<" in row
