"""Routing through the real app: Placetel Call Control XML, Stringee's answer and event URLs,
the rules store and the supervisor's routing page, all against the database of one test.

The expected Placetel documents are the shapes of Placetel's own examples (parsed and
compared element for element); the expected Stringee SCCO for helper parameters are the
three examples of Stringee's SCCO helper document (``tests.providers.stringee.test_parse``).
"""

from __future__ import annotations

import html
import json
import logging
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import func, select, text, update

from desk import create_app
from desk.cli import upgrade_database
from desk.domain.routing import Rules
from desk.extensions import db
from desk.models import AuditEntry, Call, Delivery, RoutingConfig, User, utcnow
from desk.services.routing_store import (
    decide_for_call,
    load_rules,
    routing_agents,
    rules_from_document,
    rules_to_document,
    save_rules,
)
from tests.conftest import PASSWORD, add_user, base_config, login
from tests.providers.placetel.test_route import DECLARATION, tree
from tests.providers.placetel.test_webhook import AUTH
from tests.providers.stringee.test_parse import HELPER_EXAMPLES

TOKEN = "stringee-t0ken"
ANN, BOB = "777ann@fpbx.de", "777bob@fpbx.de"


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    """The standard test app, with a Stringee token configured."""
    app = create_app(base_config(f"sqlite:///{tmp_path / 'desk.sqlite3'}",
                                 DESK_STRINGEE_TOKEN=TOKEN))
    upgrade_database(app)
    yield app
    db.dispose()


def add_person(app: Flask, name: str, role: str = "agent", sip_peer: str | None = None,
               stringee_user_id: str | None = None, presence: str = "available") -> int:
    return add_user(app, name, role=role, sip_peer=sip_peer, presence=presence,
                    stringee_user_id=stringee_user_id)


@pytest.fixture
def people(app: Flask) -> dict[str, int]:
    return {
        "ann": add_person(app, "ann", sip_peer=ANN, stringee_user_id="user_ann"),
        "bob": add_person(app, "bob", sip_peer=BOB, stringee_user_id="user_bob"),
        # available but reachable by neither provider: never rung
        "cy": add_person(app, "cy"),
        "sue": add_person(app, "sue", role="supervisor", sip_peer="777sue@fpbx.de",
                          stringee_user_id="user_sue"),
    }


def set_rules(app: Flask, document: dict[str, Any]) -> None:
    with app.app_context():
        save_rules(db.session, rules_from_document(document), None)
        db.session.commit()


def set_presence_in_db(app: Flask, user_id: int, presence: str) -> None:
    with app.app_context():
        db.session.get(User, user_id).presence = presence
        db.session.commit()


_calls = iter(range(1, 10**6))


def incoming(client: FlaskClient, caller: str = "022129191999", called: str = "0221",
             call_id: str | None = None) -> bytes:
    """POST an IncomingCall as Placetel does; the XML routing answer."""
    form = {"event": "IncomingCall", "from": caller, "to": called,
            "call_id": call_id or f"call-{next(_calls)}"}
    response = client.post("/webhooks/placetel", data=form, headers=AUTH)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "application/xml"
    assert response.data.startswith(DECLARATION)
    return response.data


def same_xml(body: bytes, expected: str) -> bool:
    return tree(ET.fromstring(body)) == tree(ET.fromstring(expected.encode()))


def forward(*targets: tuple[int | None, tuple[str, ...]], **attrs: str) -> str:
    """A Forward document like Placetel's examples: (ringtime, numbers) per Target."""
    attributes = "".join(f' {name}="{value}"' for name, value in attrs.items())
    inner = "".join(
        (f'<Target ringtime="{ring}">' if ring else "<Target>")
        + "".join(f"<Number>{n}</Number>" for n in numbers) + "</Target>"
        for ring, numbers in targets
    )
    return f'<?xml version="1.0" encoding="UTF-8"?><Response><Forward{attributes}>{inner}' \
           "</Forward></Response>"


def count(app: Flask, model: type, **where: Any) -> int:
    with app.app_context():
        query = select(func.count()).select_from(model)
        for name, value in where.items():
            query = query.where(getattr(model, name) == value)
        return db.session.scalar(query)


# --- Placetel Call Control --------------------------------------------------------------


def test_default_rules_ring_every_available_agent_by_sip_peer(
    client: FlaskClient, people: dict[str, int]
) -> None:
    body = incoming(client)
    # Supervisors are not routed to; cy has no SIP peer.
    assert same_xml(body, forward((60, (ANN, BOB)), voicemail="true"))


def test_presence_set_on_the_board_changes_the_next_answer(
    app: Flask, people: dict[str, int], runner: FlaskCliRunner
) -> None:
    placetel = app.test_client()
    assert same_xml(incoming(placetel), forward((60, (ANN, BOB)), voicemail="true"))

    ann = app.test_client()
    token = login(ann, "ann")
    assert ann.post("/presence", data={"presence": "away", "csrf_token": token}).status_code == 302
    assert same_xml(incoming(placetel), forward((60, (BOB,)), voicemail="true"))

    issued = runner.invoke(args=["users", "token", "bob"])
    bearer = {"Authorization": f"Bearer {issued.output.strip()}"}
    response = placetel.put("/api/v1/agents/me/presence", json={"presence": "wrap-up"},
                            headers=bearer)
    assert response.status_code == 200
    # Nobody can take it: voicemail, which Placetel spells as a Forward without targets.
    assert same_xml(incoming(placetel), forward(voicemail="true"))

    assert ann.post("/presence", data={"presence": "available", "csrf_token": token}).status_code \
        == 302
    assert same_xml(incoming(placetel), forward((60, (ANN,)), voicemail="true"))


def test_an_agent_on_a_call_is_not_rung_until_it_ends_and_the_wrap_up_is_over(
    client: FlaskClient, people: dict[str, int]
) -> None:
    incoming(client, call_id="talking-1")
    client.post("/webhooks/placetel", headers=AUTH,
                data={"event": "CallAccepted", "call_id": "talking-1", "peer": ANN})
    assert same_xml(incoming(client), forward((60, (BOB,)), voicemail="true"))
    client.post("/webhooks/placetel", headers=AUTH,
                data={"event": "HungUp", "call_id": "talking-1", "type": "accepted",
                      "duration": "12"})
    # ann wraps up (DESK_WRAP_UP_SECONDS): still not rung, until the wrap-up is over.
    assert same_xml(incoming(client), forward((60, (BOB,)), voicemail="true"))
    with db.new_session() as session:
        session.execute(update(User).where(User.id == people["ann"])
                        .values(presence_until=utcnow() - timedelta(seconds=1)))
        session.commit()
    assert same_xml(incoming(client), forward((60, (ANN, BOB)), voicemail="true"))


@pytest.mark.parametrize(
    ("rules", "caller", "called", "expected"),
    [
        ({"blocked_callers": ["0221 2919-1999"], "blocked_action": "busy"},
         "022129191999", "0221", '<Response><Reject reason="busy" /></Response>'),
        ({"blocked_callers": ["anonymous"]}, "anonymous", "0221",
         "<Response><Reject /></Response>"),
        ({"blocked_callers": ["0049221"], "blocked_action": "hangup"}, "+49221", "0221",
         "<Response><Hangup /></Response>"),
        ({"targets": {"0221888": {"queue_id": "123"}}}, "0301", "0221888",
         '<Response><Queue id="123" /></Response>'),
        ({"targets": {"0221777": {"agent_ids": [2]}}, "ring_time": 25}, "0301", "0221777",
         forward((25, (BOB,)), voicemail="true")),
        ({"ring_groups": [{"agent_ids": [1], "ring_time": 30}, {"agent_ids": [2, 3],
                                                                "ring_time": 45}]},
         "0301", "0221", forward((30, (ANN,)), (45, (BOB,)), voicemail="true")),
        ({"music_on_hold": True, "forward_announcement": "7684", "when_nobody": "hangup"},
         "0301", "0221", forward((60, (ANN, BOB)), music_on_hold="true", voicemail="false",
                                 forward_announcement="7684")),
    ],
    ids=["blocked-busy", "blocked-anonymous", "blocked-hangup", "number-to-queue",
         "number-to-agent", "ring-groups", "music-and-announcement"],
)
def test_rules_shape_the_placetel_answer(
    app: Flask, client: FlaskClient, people: dict[str, int], rules: dict[str, Any],
    caller: str, called: str, expected: str,
) -> None:
    assert (people["ann"], people["bob"], people["cy"]) == (1, 2, 3)  # ids the rules name
    set_rules(app, rules)
    assert same_xml(incoming(client, caller, called), expected)


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        ({"voicemail_announcement": "4"},
         '<Response><Forward voicemail="true" voicemail_announcement="4"/></Response>'),
        ({"when_nobody": "queue", "queue_id": "123"},
         '<Response><Queue id="123" /></Response>'),
        ({"when_nobody": "busy"}, '<Response><Reject reason="busy" /></Response>'),
        ({"when_nobody": "hangup"}, "<Response><Hangup /></Response>"),
    ],
    ids=["voicemail", "queue", "busy", "hangup"],
)
def test_nobody_available_goes_where_the_rules_say(
    app: Flask, client: FlaskClient, people: dict[str, int], rules: dict[str, Any],
    expected: str,
) -> None:
    set_rules(app, rules)
    for name in ("ann", "bob"):
        set_presence_in_db(app, people[name], "away")
    assert same_xml(incoming(client), expected)


def test_a_retried_incoming_call_gets_the_first_answer_again(
    app: Flask, client: FlaskClient, people: dict[str, int]
) -> None:
    first = incoming(client, call_id="retry-1")
    set_presence_in_db(app, people["ann"], "away")  # would change a fresh decision
    again = incoming(client, call_id="retry-1")
    assert again == first and same_xml(again, forward((60, (ANN, BOB)), voicemail="true"))
    assert count(app, Delivery, status="duplicate") == 1 and count(app, Call) == 1
    with app.app_context():
        route = db.session.scalars(select(Call)).one().provider_facts["route"]
        assert route["action"] == "ring" and "2 agent(s)" in route["reason"]


def test_other_placetel_events_keep_their_json_answer(
    client: FlaskClient, people: dict[str, int]
) -> None:
    incoming(client, call_id="json-1")
    response = client.post("/webhooks/placetel", headers=AUTH,
                           data={"event": "HungUp", "call_id": "json-1", "type": "missed"})
    assert response.is_json and response.json["status"] == "applied"


def test_a_routing_failure_answers_voicemail_not_500(
    app: Flask, client: FlaskClient, people: dict[str, int], caplog: pytest.LogCaptureFixture
) -> None:
    with app.app_context():  # a database the rules cannot be read from
        db.session.execute(text("DROP TABLE routing_config"))
        db.session.commit()
    with caplog.at_level(logging.ERROR, logger="desk"):
        body = incoming(client, call_id="broken-1")
    assert same_xml(body, forward(voicemail="true"))
    assert "routing failed" in caplog.text
    assert count(app, Call, provider_call_id="broken-1") == 1  # the call is still on the board


def test_an_invalid_stored_document_routes_with_the_defaults(
    app: Flask, client: FlaskClient, people: dict[str, int], caplog: pytest.LogCaptureFixture
) -> None:
    with app.app_context():
        db.session.add(RoutingConfig(rules={"ring_time": "soon"}))
        db.session.commit()
    with caplog.at_level(logging.ERROR, logger="desk"):
        assert same_xml(incoming(client), forward((60, (ANN, BOB)), voicemail="true"))
    assert "ring_time" in caplog.text


# --- the rules store ----------------------------------------------------------------------


def test_rules_document_round_trips() -> None:
    document = {
        "blocked_callers": ["022129191999", "anonymous"], "blocked_action": "busy",
        "targets": {"0221999": {"agent_ids": [1, 2]}, "0221888": {"queue_id": "123"},
                    "0221777": {"ring_groups": [{"agent_ids": [1], "ring_time": 20}]}},
        "ring_groups": [{"agent_ids": [1, 2], "ring_time": 30}, {"agent_ids": [3],
                                                                 "ring_time": 60}],
        "ring_time": 60, "when_nobody": "queue", "queue_id": "123", "record": True,
        "music_on_hold": True, "forward_announcement": "7684", "voicemail_announcement": "4",
    }
    assert rules_to_document(rules_from_document(document)) == document


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ([], "rules"),
        ({"ring_tme": 30}, "ring_tme"),
        ({"ring_time": 0}, "ring_time"),
        ({"ring_time": True}, "ring_time"),
        ({"blocked_callers": ["call me"]}, "blocked_callers[0]"),
        ({"blocked_action": "ignore"}, "blocked_action"),
        ({"when_nobody": "queue"}, "queue_id"),
        ({"when_nobody": "pray"}, "when_nobody"),
        ({"queue_id": "1 2 3"}, "queue_id"),
        ({"targets": {"0221": {}}}, "targets['0221']"),
        ({"targets": {"0221": {"agent_ids": [1], "queue_id": "1"}}}, "targets['0221']"),
        ({"targets": {"0221": {"agent_ids": ["ann"]}}}, "targets['0221'].agent_ids"),
        ({"targets": {"0221": {"queue_id": "1"}, "0 221": {"queue_id": "2"}}}, "targets['0 221']"),
        ({"ring_groups": [{"agent_ids": [1], "ring_time": -5}]}, "ring_groups[0].ring_time"),
        ({"record": "yes"}, "record"),
        ({"forward_announcement": "<x/>"}, "forward_announcement"),
    ],
)
def test_invalid_documents_name_the_field(document: Any, field: str) -> None:
    with pytest.raises(ValueError) as error:
        rules_from_document(document)
    assert str(error.value).startswith(field), str(error.value)


def test_unknown_agent_ids_are_refused_only_when_the_agents_are_known() -> None:
    document = {"targets": {"0221": {"agent_ids": [99]}}}
    assert rules_from_document(document).targets["0221"].agent_ids == (99,)
    with pytest.raises(ValueError, match="no agent with id 99"):
        rules_from_document(document, known_agents={1, 2})


def test_decide_for_call_sees_agents_presence_and_live_calls(
    app: Flask, client: FlaskClient, people: dict[str, int]
) -> None:
    incoming(client, call_id="busy-bob")
    client.post("/webhooks/placetel", headers=AUTH,
                data={"event": "CallAccepted", "call_id": "busy-bob", "peer": BOB})
    with app.app_context():
        agents = {a.name: a for a in routing_agents(db.session)}
        assert set(agents) == {"ann", "bob", "cy"}
        assert (agents["ann"].active_calls, agents["bob"].active_calls) == (0, 1)
        # No row: the defaults.
        assert rules_to_document(load_rules(db.session)) == rules_to_document(Rules())
        decision = decide_for_call(db.session, "0301", "0221", reachable_by="sip_peer")
        assert decision.action == "ring"
        assert [a.name for a in decision.steps[0].agents] == ["ann"]
        anyone = decide_for_call(db.session, "0301", "0221", reachable_by=None)
        assert [a.name for a in anyone.steps[0].agents] == ["ann", "cy"]


# --- Stringee answer URLs -----------------------------------------------------------------


def answer(client: FlaskClient, kind: str, token: str | None = TOKEN, **params: str) -> Any:
    query = {**({"token": token} if token is not None else {}), **params}
    return client.get(f"/webhooks/stringee/answer/{kind}?{urlencode(query)}")


@pytest.mark.parametrize(
    ("kind", "params", "expected"), HELPER_EXAMPLES.values(), ids=HELPER_EXAMPLES.keys()
)
def test_helper_parameters_reproduce_the_documents_examples(
    client: FlaskClient, people: dict[str, int], kind: str, params: dict[str, str],
    expected: str,
) -> None:
    response = answer(client, kind, **params)
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert response.json == json.loads(expected)
    # Key order as in the document too (the action first).
    assert json.dumps(response.json) == json.dumps(json.loads(expected))


def test_number_answer_without_helper_parameters_rings_agents_by_stringee_user_id(
    app: Flask, client: FlaskClient, people: dict[str, int]
) -> None:
    params = {"from": "84899199866", "to": "842471234567", "uuid": "882696e2",
              "callId": "call-vn-1-ABCDWXKUQM-1542377678921", "fromInternal": "false"}
    response = answer(client, "number", **params)
    assert response.status_code == 200
    caller = {"type": "external", "number": "84899199866", "alias": "84899199866"}
    assert response.json == [
        {"action": "connect", "from": caller,
         "to": {"type": "internal", "number": "user_ann", "alias": "842471234567"},
         "customData": None, "timeout": 60, "continueOnFail": True, "onFailEventUrl": ""},
        {"action": "connect", "from": caller,
         "to": {"type": "internal", "number": "user_bob", "alias": "842471234567"},
         "customData": None, "timeout": 60, "continueOnFail": False, "onFailEventUrl": ""},
    ]
    # Presence on the board changes the next answer here too.
    set_presence_in_db(app, people["ann"], "wrap-up")
    numbers = [leg["to"]["number"] for leg in answer(client, "number", **params).json]
    assert numbers == ["user_bob"]
    set_presence_in_db(app, people["bob"], "offline")
    assert answer(client, "number", **params).json == []  # nobody: nothing to connect


def test_project_answer_without_helper_parameters_connects_the_agents_call_with_record(
    app: Flask, client: FlaskClient, people: dict[str, int]
) -> None:
    # A target for the called number does not apply: an app user's call is not routed.
    set_rules(app, {"record": True, "targets": {"84909985668": {"agent_ids": [people["bob"]]}}})
    response = answer(client, "project", **{"from": "user_9", "to": "84909985668",
                                             "fromInternal": "true", "custom": "ticket-7"})
    assert response.json == [
        {"action": "record", "eventUrl": "", "format": "mp3"},
        {"action": "connect",
         "from": {"type": "internal", "number": "user_9", "alias": "user_9"},
         "to": {"type": "external", "number": "84909985668", "alias": "84909985668"},
         "customData": "ticket-7", "timeout": 60, "maxConnectTime": -1,
         "peerToPeerCall": False},
    ]


def test_stringees_own_custom_parameter_does_not_switch_to_helper_mode(
    client: FlaskClient, people: dict[str, int]
) -> None:
    response = answer(client, "number", **{"from": "8490", "to": "8424", "custom": "x"})
    assert response.status_code == 200
    assert [leg["to"]["number"] for leg in response.json] == ["user_ann", "user_bob"]


@pytest.mark.parametrize(
    ("kind", "params", "parameter"),
    [
        ("project", {"appToPhone": "maybe"}, "appToPhone"),
        ("project", {"timeout": "-5"}, "timeout"),
        ("project", {"record": "true", "recordFormat": "ogg"}, "recordFormat"),
        ("project", {"maxConnectTime": "-2"}, "maxConnectTime"),
        ("number", {"recordFormat": "ogg", "to_number": "user1"}, "recordFormat"),
        ("number", {"phoneToPhone": "true", "to_number": "0909"}, "stringeeNumber"),
        ("number", {"record": "true"}, "to_number"),
    ],
)
def test_bad_helper_parameters_get_400_naming_the_parameter_and_are_kept(
    app: Flask, client: FlaskClient, kind: str, params: dict[str, str], parameter: str
) -> None:
    response = answer(client, kind, **{"from": "user_1", "to": "user_2", "callId": "c-1",
                                       **params})
    assert response.status_code == 400
    assert f"'{parameter}'" in response.json["message"]
    with app.app_context():
        kept = db.session.scalars(select(Delivery)).one()
        assert (kept.status, kept.kind, kept.provider_call_id) == ("rejected", f"answer/{kind}",
                                                                   "c-1")
        assert parameter in kept.error and TOKEN not in kept.payload


@pytest.mark.parametrize("token", [None, "", "wrong", TOKEN + "x"], ids=repr)
@pytest.mark.parametrize(
    ("method", "path"),
    [("get", "/webhooks/stringee/answer/project"), ("get", "/webhooks/stringee/answer/number"),
     ("post", "/webhooks/stringee/events")],
)
def test_a_wrong_or_missing_token_gets_401_and_stores_nothing(
    app: Flask, client: FlaskClient, token: str | None, method: str, path: str
) -> None:
    query = "" if token is None else "?" + urlencode({"token": token, "appToPhone": "maybe"})
    response = getattr(client, method)(path + query, json={"call_status": "created"})
    assert response.status_code == 401
    assert "DESK_STRINGEE_TOKEN" in response.json["message"]
    assert count(app, Delivery) == 0


def test_without_a_token_configured_only_demo_mode_accepts(tmp_path: Path) -> None:
    for demo, status in ((False, 401), (True, 200)):
        app = create_app(base_config(f"sqlite:///{tmp_path / f'{demo}.sqlite3'}",
                                     DESK_DEMO=demo))
        upgrade_database(app)
        response = app.test_client().get("/webhooks/stringee/answer/number?to_number=user1")
        assert response.status_code == status
        db.dispose()


# --- Stringee call events -----------------------------------------------------------------

CALL_ID = "call-vn-1-ZD3IDIXS1J-1515820305477"


def event(client: FlaskClient, status: str, at: int, **extra: Any) -> Any:
    body = {"call_id": CALL_ID, "call_status": status, "project_id": 22512,
            "timestamp_ms": 1_763_802_000_000 + at * 1000,
            "from": {"number": "84899199866", "alias": "84899199866", "type": "external"},
            "to": {"number": "user_bob", "alias": "842471234567", "type": "internal"},
            **extra}
    return client.post(f"/webhooks/stringee/events?token={TOKEN}", json=body)


def the_call(app: Flask) -> Call:
    with app.app_context():
        return db.session.scalars(select(Call).where(Call.provider == "stringee")).one()


def test_events_move_a_call_through_its_states_onto_the_agent(
    app: Flask, client: FlaskClient, people: dict[str, int]
) -> None:
    assert event(client, "created", 0).json["status"] == "applied"
    assert the_call(app).state == "dialling"
    event(client, "started", 1)
    event(client, "ringing", 2)
    assert the_call(app).state == "ringing"
    event(client, "answered", 5)
    call = the_call(app)
    assert (call.state, call.agent_id, call.direction) == ("talking", people["bob"], "inbound")
    assert event(client, "agentEnded", 40).json["status"] == "applied"
    assert the_call(app).state == "talking"  # one agent's leg, not the call
    event(client, "ended", 41, endCallCause="NORMAL_CLEARING", duration=41, answerDuration=36)
    call = the_call(app)
    assert (call.state, call.duration, call.end_cause) == ("ended", 36, "NORMAL_CLEARING")
    # A retry changes nothing; a late "ringing" does not revive the call.
    assert event(client, "ended", 41, duration=41).json["status"] == "duplicate"
    event(client, "ringing", 3, call_id=CALL_ID)
    assert the_call(app).state == "ended"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("not json", "expected a JSON body"),
        ('["created"]', "expected a JSON object"),
        ('{"call_id": "c-1"}', "call_status"),
        ('{"call_id": "c-1", "call_status": "exploded"}', "unknown call_status"),
        ('{"call_id": "c-1", "call_status": "ended", "answerDuration": -1}', "answerDuration"),
    ],
)
def test_bad_events_get_400_with_a_reason_and_are_kept(
    app: Flask, client: FlaskClient, body: str, message: str
) -> None:
    response = client.post(f"/webhooks/stringee/events?token={TOKEN}", data=body,
                           content_type="application/json")
    assert response.status_code == 400 and message in response.json["message"]
    with app.app_context():
        kept = db.session.scalars(select(Delivery)).one()
        assert kept.status == "rejected" and kept.payload == body and message in kept.error


# --- the supervisor's routing page --------------------------------------------------------


def supervisor(app: Flask) -> tuple[FlaskClient, str]:
    client = app.test_client()
    return client, login(client, "sue")


def valid_form(token: str, **changes: Any) -> dict[str, Any]:
    form: dict[str, Any] = {
        "csrf_token": token, "ring_time": "30", "ring_groups": "", "when_nobody": "voicemail",
        "queue_id": "", "blocked_callers": "", "blocked_action": "reject",
        "forward_announcement": "", "voicemail_announcement": "",
    }
    form.update(changes)
    return form


def test_the_routing_page_is_for_supervisors(app: Flask, people: dict[str, int]) -> None:
    anonymous = app.test_client()
    assert anonymous.get("/routing").status_code == 302
    agent = app.test_client()
    token = login(agent, "ann")
    assert agent.get("/routing").status_code == 403
    assert agent.post("/routing", data=valid_form(token)).status_code == 403
    assert 'href="/routing"' not in agent.get("/").get_data(as_text=True)
    assert count(app, RoutingConfig) == 0

    client, _ = supervisor(app)
    assert 'href="/routing"' in client.get("/supervisor").get_data(as_text=True)
    page = client.get("/routing").get_data(as_text=True)
    assert 'name="ring_time"' in page and 'value="60"' in page  # the defaults, shown


def test_saving_rules_stores_audits_and_routes_the_next_call(
    app: Flask, people: dict[str, int]
) -> None:
    client, token = supervisor(app)
    form = valid_form(
        token, ring_time="25", blocked_callers="0301 555\nanonymous", blocked_action="busy",
        ring_groups="bob : 20\nAnn", when_nobody="queue", queue_id="123", music_on_hold="on",
        **{"target-0-number": "0221888", "target-0-queue": "77",
           "target-1-number": "0221777", "target-1-agents": [str(people["ann"])],
           "target-2-number": ""},
    )
    response = client.post("/routing", data=form)
    assert response.status_code == 302, response.get_data(as_text=True)
    page = client.get("/routing").get_data(as_text=True)
    assert "Routing saved" in page and "bob : 20" in page and "0221888" in page

    with app.app_context():
        stored = db.session.scalars(select(RoutingConfig)).one()
        assert stored.updated_by == people["sue"]
        assert stored.rules["ring_groups"] == [
            {"agent_ids": [people["bob"]], "ring_time": 20},
            {"agent_ids": [people["ann"]], "ring_time": 25},
        ]
        entry = db.session.scalars(select(AuditEntry)).one()
        assert (entry.action, entry.outcome, entry.user_id) == ("routing.update", "ok",
                                                                people["sue"])
        assert json.loads(entry.detail)["after"]["queue_id"] == "123"

    placetel = app.test_client()
    assert same_xml(incoming(placetel, "0301555"), '<Response><Reject reason="busy"/></Response>')
    assert same_xml(incoming(placetel, "0999", "0221888"), '<Response><Queue id="77"/>'
                                                            "</Response>")
    assert same_xml(incoming(placetel, "0999", "0221777"),
                    forward((25, (ANN,)), music_on_hold="true", voicemail="false"))
    assert same_xml(incoming(placetel, "0999", "0221"),
                    forward((20, (BOB,)), (25, (ANN,)), music_on_hold="true", voicemail="false"))

    # Emptying a target row removes it.
    form["target-0-number"], form["target-0-queue"] = "", ""
    assert client.post("/routing", data=form).status_code == 302
    with app.app_context():
        assert set(load_rules(db.session).targets) == {"0221777"}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"ring_time": "0"}, "Ring time: must be whole seconds from 1 to 600"),
        ({"ring_time": "soon"}, "Ring time: must be whole seconds"),
        ({"blocked_callers": "0301\ncall me maybe"}, "is not a phone number"),
        ({"when_nobody": "queue"}, "Queue id: needed"),
        ({"when_nobody": "pray"}, "Choose what happens when nobody"),
        ({"queue_id": "1 2"}, "Queue id: must be an id"),
        ({"ring_groups": "ann, zed : 20"}, "no agent named &#39;zed&#39;"),
        ({"ring_groups": "ann : -5"}, "Ring groups, line 1: must be whole seconds"),
        ({"forward_announcement": "<b>"}, "Announcement before ringing: must be an id"),
        ({"target-0-number": "0221", "target-0-queue": "5", "target-0-agents": ["1"]},
         "not both and not neither"),
        ({"target-0-number": "0221"}, "not both and not neither"),
        ({"target-0-queue": "5"}, "which called number"),
        ({"target-0-number": "0221", "target-0-queue": "5",
          "target-1-number": "0221", "target-1-queue": "6"}, "has two rows"),
        ({"target-0-number": "0221", "target-0-agents": ["99"]}, "no longer exists"),
    ],
)
def test_invalid_input_is_refused_with_a_message_and_nothing_is_stored(
    app: Flask, people: dict[str, int], changes: dict[str, Any], message: str
) -> None:
    set_rules(app, {"ring_time": 45})
    client, token = supervisor(app)
    response = client.post("/routing", data=valid_form(token, **changes))
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert message in page and "Nothing was saved" in page
    with app.app_context():
        assert load_rules(db.session).ring_time == 45
        assert db.session.scalar(select(func.count()).select_from(AuditEntry)) == 0


def test_saving_without_the_csrf_token_is_refused(app: Flask, people: dict[str, int]) -> None:
    client, token = supervisor(app)
    form = valid_form(token)
    del form["csrf_token"]
    assert client.post("/routing", data=form).status_code == 400
    assert count(app, RoutingConfig) == 0


def test_preview_shows_where_a_call_would_go_now(app: Flask, people: dict[str, int]) -> None:
    client, _ = supervisor(app)
    page = client.get("/routing?from=0301&to=0221&via=placetel").get_data(as_text=True)
    assert "ringing 2 agent(s)" in page and ANN in page and "&lt;Forward" in page
    set_presence_in_db(app, people["ann"], "away")
    set_presence_in_db(app, people["bob"], "away")
    page = client.get("/routing?from=0301&to=0221&via=stringee").get_data(as_text=True)
    assert "<strong>voicemail</strong>" in page and "[]" in page


def test_cli_creates_an_agent_with_a_stringee_user_id(app: Flask, runner: FlaskCliRunner) -> None:
    result = runner.invoke(args=["users", "create", "dora", "--stringee-user-id", "user_dora"],
                           input=PASSWORD + "\n")
    assert result.exit_code == 0, result.output
    with app.app_context():
        dora = db.session.scalars(select(User).where(User.name == "dora")).one()
        assert dora.stringee_user_id == "user_dora"


# --- Placetel's prompts, groups and routing plans as number targets -----------------------


def test_placetel_targets_round_trip_through_the_document() -> None:
    document = {
        "targets": {"0221666": {"group_id": "12", "group_ring_time": 30,
                                "backup_behaviour": "routing_object",
                                "backup_routing_object": "77"},
                    "0221665": {"group_id": "13"},
                    "0221555": {"prompt_id": "5"}, "0221444": {"routing_plan_id": "3"}},
    }
    rules = rules_from_document(document)
    assert rules.targets["0221666"].group_ring_time == 30
    assert rules_to_document(rules)["targets"] == document["targets"]
    assert rules_from_document(rules_to_document(rules)) == rules


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ({"targets": {"0221": {"group_id": "1", "group_ring_time": 61}}},
         "targets['0221'].group_ring_time"),
        ({"targets": {"0221": {"group_id": "1", "group_ring_time": "40"}}},
         "targets['0221'].group_ring_time"),
        ({"targets": {"0221": {"group_id": "1", "backup_behaviour": "routing_object"}}},
         "targets['0221'].backup_routing_object"),
        ({"targets": {"0221": {"group_id": "1", "backup_behaviour": "voicemail"}}},
         "targets['0221'].backup_behaviour"),
        ({"targets": {"0221": {"prompt_id": "1", "group_ring_time": 30}}},
         "targets['0221'].group_ring_time"),
        ({"targets": {"0221": {"prompt_id": "1", "routing_plan_id": "2"}}}, "targets['0221']"),
        ({"targets": {"0221": {"routing_plan_id": "<3>"}}}, "targets['0221'].routing_plan_id"),
    ],
)
def test_invalid_placetel_targets_name_the_field(document: Any, field: str) -> None:
    with pytest.raises(ValueError) as error:
        rules_from_document(document)
    assert str(error.value).startswith(field + ":")


def placetel_targets_form(token: str, **changes: Any) -> dict[str, Any]:
    return valid_form(token, **{
        "target-0-number": "0221555", "target-0-kind": "prompt", "target-0-id": "5",
        "target-1-number": "0221666", "target-1-kind": "group", "target-1-id": "12",
        "target-1-ringtime": "30", "target-1-backup": "77",
        "target-2-number": "0221444", "target-2-kind": "routing_plan", "target-2-id": "3",
        "target-3-number": "0221888", "target-3-kind": "queue", "target-3-id": "9",
        **changes,
    })


def test_the_page_saves_prompt_group_and_routing_plan_targets_and_placetel_gets_them(
    app: Flask, people: dict[str, int]
) -> None:
    client, token = supervisor(app)
    response = client.post("/routing", data=placetel_targets_form(token))
    assert response.status_code == 302, response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalars(select(RoutingConfig)).one().rules["targets"] == {
            "0221555": {"prompt_id": "5"},
            "0221666": {"group_id": "12", "group_ring_time": 30,
                        "backup_behaviour": "routing_object", "backup_routing_object": "77"},
            "0221444": {"routing_plan_id": "3"},
            "0221888": {"queue_id": "9"},
        }
    page = client.get("/routing").get_data(as_text=True)
    assert '<option value="group" selected>' in page and 'value="77"' in page

    placetel = app.test_client()
    assert same_xml(incoming(placetel, "0301", "0221555"), '<Response><Prompt id="5"/></Response>')
    assert same_xml(incoming(placetel, "0301", "0221666"),
                    '<Response><Group id="12" ringtime="30" backup_behaviour="routing_object" '
                    'backup_routing_object="77"/></Response>')
    assert same_xml(incoming(placetel, "0301", "0221888"), '<Response><Queue id="9"/></Response>')
    # The routing plan holds the desk's own routing as Placetel's documented fallback.
    plan = ET.fromstring(incoming(placetel, "0301", "0221444"))
    assert plan.find("RoutingPlan").attrib == {"id": "3"}
    assert [n.text for n in plan.iterfind("RoutingPlan/Forward/Target/Number")] == [ANN, BOB]


def test_stringee_gets_the_fallback_of_a_placetel_only_target(
    app: Flask, client: FlaskClient, people: dict[str, int]
) -> None:
    set_rules(app, {"targets": {"842471234567": {"group_id": "12"},
                                "842471234568": {"prompt_id": "5"}}})
    params = {"from": "84899199866", "uuid": "882696e2", "fromInternal": "false"}
    group = answer(client, "number", to="842471234567", **params).json
    assert [leg["to"]["number"] for leg in group] == ["user_ann", "user_bob"]
    assert answer(client, "number", to="842471234568", **params).json == []  # hang up


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"target-1-ringtime": "5"},
         "Placetel group ring time: must be whole seconds from 10 to 60"),
        ({"target-3-ringtime": "30"}, "0221888: a group ring time and a backup routing object "
                                      "are for a Placetel group only"),
        ({"target-0-kind": "voicemail"}, "0221555: choose where its calls go"),
        ({"target-0-id": "5 6"}, "Placetel prompt id: must be an id"),
        ({"target-1-backup": "<77>"}, "Backup routing object: must be an id"),
        ({"target-2-agents": [str(1)]}, "not both and not neither"),
    ],
)
def test_invalid_placetel_targets_on_the_page_are_refused(
    app: Flask, people: dict[str, int], changes: dict[str, Any], message: str
) -> None:
    client, token = supervisor(app)
    response = client.post("/routing", data=placetel_targets_form(token, **changes))
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert message in page and "Nothing was saved" in page
    assert count(app, RoutingConfig) == 0


def test_preview_of_a_placetel_only_target_says_what_the_others_do(
    app: Flask, people: dict[str, int]
) -> None:
    set_rules(app, {"targets": {"0221666": {"group_id": "12"}}})
    client, _ = supervisor(app)
    page = client.get("/routing?from=0301&to=0221666&via=placetel").get_data(as_text=True)
    assert "<strong>group</strong>" in page and "&lt;Group id=&#34;12&#34;" in page
    assert 'id="preview-note"' in page and "Stringee and the mediaservice cannot" in page
    page = client.get("/routing?from=0301&to=0221666&via=stringee").get_data(as_text=True)
    assert "<strong>ring</strong>" in page and "user_ann" in page
    assert "which only Placetel can reach; instead ringing 2 agent(s)" in page
    plain = client.get("/routing?from=0301&to=0221&via=stringee").get_data(as_text=True)
    assert 'id="preview-note"' not in plain


# --- the page's answers to mistakes: every one, beside its field, the form as typed --------


def test_every_bad_line_is_reported_with_its_number_and_what_to_type(
    app: Flask, people: dict[str, int]
) -> None:
    client, token = supervisor(app)
    groups = "ann, zed : 20\nbob\n : 30\nann : soon\ncy, yan, xi"
    blocked = "0301 555\ncall me maybe\n0302, later; 0303\nanonymous"
    response = client.post("/routing", data=valid_form(
        token, ring_groups=groups, blocked_callers=blocked, ring_time="soon"))
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    text = html.unescape(page)
    for message in [
        "Ring groups, line 1: there is no agent named 'zed'; the agents are ann, bob, cy",
        "Ring groups, line 3: name at least one agent, then optionally ': seconds', "
        "e.g. ann, bob : 20",
        "Ring groups, line 4: must be whole seconds from 1 to 600, not 'soon'",
        "Ring groups, line 5: there is no agent named 'yan' or 'xi'",
        "Blocked callers, line 2: 'call me maybe' is not a phone number (digits",
        "Blocked callers, line 3: 'later' is not a phone number",
        "Ring time: must be whole seconds from 1 to 600, not 'soon'",
    ]:
        assert message in text, message
    assert "Ring groups, line 2" not in text and "Blocked callers, line 1" not in text
    assert "Nothing was saved: 7 mistakes to fix, each shown beside its field below." in text
    # What was typed comes back as typed, each problem beside its field, the first focused.
    assert f">{html.escape(groups)}</textarea>" in page
    assert f">{html.escape(blocked)}</textarea>" in page
    assert 'value="soon"' in page and 'type="text" inputmode="numeric" id="ring_time"' in page
    groups_field = page[page.index('id="ring_groups"'):page.index("</textarea>",
                                                                  page.index('id="ring_groups"'))]
    assert 'aria-invalid="true" aria-describedby="ring_groups-error"' in groups_field
    after_field = page[page.index('id="ring_groups"'):]
    assert after_field.index('id="ring_groups-error"') < after_field.index('class="hint"')
    assert page.count("autofocus") == 1
    assert 'aria-describedby="ring_time-error" autofocus' in page
    assert 'aria-describedby="blocked_callers-error"' in page
    assert count(app, RoutingConfig) == 0


def test_every_bad_target_row_is_reported_beside_its_row(
    app: Flask, people: dict[str, int]
) -> None:
    client, token = supervisor(app)
    response = client.post("/routing", data=valid_form(token, **{
        "target-0-number": "0221", "target-0-queue": "5",
        "target-1-number": "anonymous", "target-1-queue": "6",
        "target-2-number": "0221777",
        "target-3-number": "02 21", "target-3-queue": "7",
    }))
    assert response.status_code == 400
    page = html.unescape(response.get_data(as_text=True))
    assert "Number: a called number is digits such as 0221 2919 1000; 'anonymous' only " \
           "names callers" in page
    assert "0221777: tick the agents to ring or give the id" in page
    assert "Number: 02 21 has two rows; keep one." in page
    for row in (1, 2, 3):
        assert f'aria-describedby="target-{row}-error"' in page
        assert f'id="target-{row}-error"' in page
    assert 'aria-describedby="target-0-error"' not in page
    assert 'value="anonymous"' in page and 'value="02 21"' in page


def test_the_routing_page_has_the_boards_header(app: Flask, people: dict[str, int]) -> None:
    client, _ = supervisor(app)
    page = client.get("/routing").get_data(as_text=True)
    board = client.get("/supervisor").get_data(as_text=True)
    def header(html: str) -> str:
        """The header, less what differs by page and by second: the language switch comes
        back to the page it was used on, and a CSRF token carries the time it was made."""
        part = html[html.index('<header class="topbar"'):html.index("</header>")]
        part = re.sub(r'name="csrf_token" value="[^"]*"', 'name="csrf_token" value=""', part)
        return re.sub(r'name="next" value="[^"]*"', 'name="next" value=""', part)

    assert header(page) == header(board)
    assert 'id="live-status"' in page and 'id="counters"' in page and 'ws-connect="/ws"' in page


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ("from=call+me&to=0221", "from", "From: 'call me' is not a phone number (digits, "
         "optionally a leading + or 00, spaces and dashes allowed) or 'anonymous'"),
        ("from=0301&to=0221x", "to", "To: '0221x' is not a phone number"),
        ("from=0301&to=anonymous", "to", "To: a called number is digits such as 0221 2919 1000"),
        ("from=0301&to=", "to", "To: type the number the call is made to, such as 0221 2919 1000."),
        ("from=0301&to=0221&via=skype", "via", "Provider: choose Placetel or Stringee."),
    ],
)
def test_the_preview_refuses_bad_numbers_with_the_forms_messages(
    app: Flask, people: dict[str, int], query: str, field: str, message: str
) -> None:
    client, _ = supervisor(app)
    response = client.get(f"/routing?{query}")
    assert response.status_code == 400
    page = html.unescape(response.get_data(as_text=True))
    assert f'id="p-{field}-error">{message}' in page
    assert f'aria-invalid="true" aria-describedby="p-{field}-error" autofocus' in page
    assert "No preview:" in page and "The answer the provider gets" not in page
    for name, value in parse_qsl(query):  # what was typed is kept
        assert f'value="{value}"' in page, name
    # The saved rules' form is still there, unharmed.
    assert 'name="ring_time"' in page and "Nothing was saved" not in page


def test_the_preview_takes_a_withheld_caller(app: Flask, people: dict[str, int]) -> None:
    client, _ = supervisor(app)
    for caller in ("", "anonymous"):
        response = client.get(f"/routing?from={caller}&to=0221&via=placetel")
        assert response.status_code == 200
        assert "ringing 2 agent(s)" in response.get_data(as_text=True)
