"""desk.providers.stringee: call events, the SCCO helper's answers, and SCCO for a decision."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from desk.domain.events import BadPayload
from desk.domain.routing import Agent, Decision, NumberTarget, RingGroup, RingStep, Rules, decide
from desk.providers.stringee import parse as stringee
from desk.providers.stringee.answers import scco_for_decision, scco_from_helper_params

AT = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
CALL_ID = "call-vn-1-ZD3IDIXS1J-1515820305477"

# --- the three examples of Stringee's SCCO helper document, copied as they are ------------

PROJECT_EXAMPLE = """[{
"action": "record",
"eventUrl": "",
"format": "mp3"
}, {
"action": "connect",
"from": {
"type": "internal",
"number": "...",
"alias": "..."
},
"to": {
"type": "external",
"number": "...",
"alias": "..."
},
"customData": "...",
"timeout": 60,
"maxConnectTime": 0,
"peerToPeerCall": false
}]"""

NUMBER_EXAMPLE_1 = """[{
"action": "record",
"eventUrl": "",
"format": "mp3"
}, {
"action": "connect",
"from": {
"type": "external",
"number": "...",
"alias": "..."
},
"to": {
"type": "internal",
"number": "user1",
"alias": "Call_to_"
},
"continueOnFail": false,
"onFailEventUrl": "",
"customData": "..."
}]"""

NUMBER_EXAMPLE_2 = """[{
"action": "record",
"eventUrl": "",
"format": "mp3"
}, {
"action": "connect",
"from": {
"type": "external",
"number": null,
"alias": "STRINGEE_NUMBER"
},
"to": {
"type": "external",
"number": "TO_NUMBER",
"alias": "Call_to_"
},
"continueOnFail": false,
"onFailEventUrl": "",
"customData": null
}]"""

# The examples show the values Stringee's own request supplies (from, to, custom) as "...";
# passing "..." for them reproduces the examples literally.
HELPER_EXAMPLES = {
    "project: ?appToPhone=true&record=true": (
        "project",
        {"appToPhone": "true", "record": "true", "from": "...", "to": "...", "custom": "..."},
        PROJECT_EXAMPLE,
    ),
    "number example 1: ?record=true&to_number=user1&phoneToPhone=false": (
        "number",
        {"record": "true", "to_number": "user1", "phoneToPhone": "false",
         "from": "...", "to": "...", "uuid": "882696e2", "fromInternal": "false", "custom": "..."},
        NUMBER_EXAMPLE_1,
    ),
    "number example 2: phone to phone with stringeeNumber": (
        "number",
        {"record": "true", "to_number": "TO_NUMBER", "phoneToPhone": "true",
         "stringeeNumber": "STRINGEE_NUMBER", "from": "84899199866", "to": "842471234567",
         "fromInternal": "false"},
        NUMBER_EXAMPLE_2,
    ),
}


@pytest.mark.parametrize(
    ("kind", "params", "expected"), HELPER_EXAMPLES.values(), ids=HELPER_EXAMPLES.keys()
)
def test_helper_examples_exactly(kind: Any, params: dict[str, str], expected: str) -> None:
    scco = scco_from_helper_params(kind, params)
    assert scco == json.loads(expected)
    # Same keys in the same order, so the JSON reads like the document's.
    assert json.dumps(scco) == json.dumps(json.loads(expected))


def project(**params: str) -> dict[str, Any]:
    """The connect action of the project helper's answer for a call user_1 → ``to``."""
    scco = scco_from_helper_params("project", {"from": "user_1", **params})
    assert scco[-1]["action"] == "connect"
    return scco[-1]


def test_project_defaults_are_an_app_to_app_peer_to_peer_call() -> None:
    scco = scco_from_helper_params(
        "project", {"from": "user_1", "to": "user_2", "custom": "", "callId": CALL_ID}
    )
    assert scco == [{
        "action": "connect",
        "from": {"type": "internal", "number": "user_1", "alias": "user_1"},
        "to": {"type": "internal", "number": "user_2", "alias": "user_2"},
        "customData": "",
        "timeout": 60,
        "maxConnectTime": 0,
        "peerToPeerCall": True,
    }]


@pytest.mark.parametrize(
    ("to", "to_type"),
    [
        ("84909985668", "external"),
        ("0909985668", "external"),
        ("600001", "external"),
        ("600000", "internal"),  # "less than or equal to 600000" is an app user
        ("42", "internal"),
        ("user_2", "internal"),
        ("+84909985668", "internal"),  # not an integer: a string, so an app user
    ],
)
def test_app_to_phone_auto_uses_the_600000_rule(to: str, to_type: str) -> None:
    connect = project(appToPhone="auto", to=to)
    assert connect["to"]["type"] == to_type
    assert connect["peerToPeerCall"] is (to_type == "internal")


def test_app_to_phone_false_and_true_ignore_the_shape_of_to() -> None:
    assert project(appToPhone="false", to="84909985668")["to"]["type"] == "internal"
    assert project(appToPhone="true", to="user_2")["to"]["type"] == "external"


def test_project_parameters_are_passed_on() -> None:
    connect = project(to="user_2", timeout="30", maxConnectTime="120", peerToPeerCall="false")
    assert (connect["timeout"], connect["maxConnectTime"], connect["peerToPeerCall"]) == (
        30, 120, False,
    )
    assert project(to="user_2", maxConnectTime="-1")["maxConnectTime"] == 0


def test_recording_formats_and_recording_turns_peer_to_peer_off() -> None:
    scco = scco_from_helper_params(
        "project", {"from": "u1", "to": "u2", "record": "true", "recordFormat": "wav"}
    )
    assert scco[0] == {"action": "record", "eventUrl": "", "format": "wav"}
    assert scco[1]["peerToPeerCall"] is False
    number = scco_from_helper_params(
        "number", {"to_number": "u1", "record": "TRUE", "recordFormat": "mp4"}
    )
    assert number[0]["format"] == "mp4"
    assert scco_from_helper_params("number", {"to_number": "u1", "record": "false"})[
        0]["action"] == "connect"


def test_number_helper_without_custom_sends_no_custom_data() -> None:
    (connect,) = scco_from_helper_params(
        "number", {"to_number": "user1", "from": "84899199866"}
    )
    assert connect["from"] == {"type": "external", "number": "84899199866", "alias": "84899199866"}
    assert connect["to"] == {"type": "internal", "number": "user1", "alias": "Call_to_"}
    assert connect["customData"] is None


@pytest.mark.parametrize(
    ("kind", "params", "message"),
    [
        ("project", {"appToPhone": "maybe"}, r"'appToPhone' must be true, false or auto"),
        ("project", {"appToPhone": "auto"}, r"appToPhone=auto .* 'to' parameter"),
        ("project", {"timeout": "-5"}, r"'timeout' must be whole seconds greater than 0"),
        ("project", {"timeout": "0"}, r"'timeout' must be"),
        ("project", {"timeout": "1.5"}, r"'timeout' must be"),
        ("project", {"timeout": "soon"}, r"'timeout' must be"),
        ("project", {"maxConnectTime": "-2"}, r"'maxConnectTime' must be -1 \(no limit\)"),
        ("project", {"peerToPeerCall": "yes"}, r"'peerToPeerCall' must be true or false"),
        ("project", {"record": "1"}, r"'record' must be true or false"),
        ("project", {"recordFormat": "ogg"}, r"'recordFormat' must be mp3, wav or mp4"),
        ("number", {"to_number": "u1", "recordFormat": "ogg"}, r"'recordFormat' must be mp3"),
        ("number", {"to_number": "u1", "phoneToPhone": "maybe"},
         r"'phoneToPhone' must be true or false"),
        ("number", {}, r"'to_number' is required"),
        ("number", {"to_number": "  "}, r"'to_number' is required"),
        ("number", {"to_number": "0909", "phoneToPhone": "true"}, r"'stringeeNumber' is required"),
    ],
)
def test_invalid_helper_parameters_name_the_parameter(
    kind: Any, params: dict[str, str], message: str
) -> None:
    with pytest.raises(BadPayload, match=message):
        scco_from_helper_params(kind, params)


def test_unknown_helper_kind() -> None:
    with pytest.raises(ValueError, match="kind must be 'project' or 'number'"):
        scco_from_helper_params("app", {})  # type: ignore[arg-type]


# --- SCCO for the desk's routing decision -----------------------------------------------

ANNA = Agent(1, "anna", "available", stringee_user_id="anna")
BEN = Agent(2, "ben", "available", stringee_user_id="ben")
CARA = Agent(3, "cara", "available", stringee_user_id="cara")
PHONE_TO_APP = {
    "from": "84899199866", "to": "842471234567", "uuid": "882696e2-bb01-11e7-8056-3fae8fb0a1ad",
    "callId": CALL_ID, "fromInternal": "false",
}


def test_a_single_agent_like_the_phone_to_app_example() -> None:
    scco = scco_for_decision(decide("84899199866", "842471234567", (ANNA,)), PHONE_TO_APP)
    assert scco == [{
        "action": "connect",
        "from": {"type": "external", "number": "84899199866", "alias": "84899199866"},
        "to": {"type": "internal", "number": "anna", "alias": "842471234567"},
        "customData": None,
        "timeout": 60,
        "continueOnFail": False,
        "onFailEventUrl": "",
    }]


def test_ring_groups_become_connects_in_order_that_continue_on_failure() -> None:
    rules = Rules(
        ring_groups=(RingGroup((BEN.id, ANNA.id), 20), RingGroup((CARA.id,), 40)), record=True
    )
    decision = decide("84899199866", "842471234567", (ANNA, BEN, CARA), rules,
                      reachable_by="stringee_user_id")
    scco = scco_for_decision(decision, PHONE_TO_APP)
    assert scco[0] == {"action": "record", "eventUrl": "", "format": "mp3"}
    assert [(c["to"]["number"], c["timeout"], c["continueOnFail"]) for c in scco[1:]] == [
        ("ben", 20, True), ("anna", 20, True), ("cara", 40, False),
    ]


def test_app_originated_requests_keep_the_caller_internal_and_custom_data() -> None:
    params = {"from": "user_1", "to": "user_2", "fromInternal": "true", "userId": "user_1",
              "projectId": "22512", "callId": CALL_ID, "custom": "test-custom-data"}
    (connect,) = scco_for_decision(decide("user_1", "user_2", (BEN,)), params)
    assert connect["from"] == {"type": "internal", "number": "user_1", "alias": "user_1"}
    assert connect["customData"] == "test-custom-data"


def test_external_numbers_are_called_from_our_number() -> None:
    decision = Decision("ring", steps=(RingStep(numbers=("84909985668",), ring_time=None),))
    (connect,) = scco_for_decision(decision, PHONE_TO_APP)
    assert connect["from"] == {"type": "external", "number": "84899199866",
                               "alias": "842471234567"}
    assert connect["to"] == {"type": "external", "number": "84909985668", "alias": "84909985668"}
    assert connect["timeout"] == 60


@pytest.mark.parametrize(
    "decision",
    [Decision("voicemail"), Decision("queue", queue_id="1"), Decision("reject"),
     Decision("busy"), Decision("hangup", record=True)],
)
def test_decisions_stringee_cannot_express_connect_nobody(decision: Decision) -> None:
    assert scco_for_decision(decision, PHONE_TO_APP) == []


def test_an_agent_without_stringee_user_id_cannot_be_rung() -> None:
    decision = Decision("ring", steps=(RingStep((Agent(4, "dan", "available"),)),))
    with pytest.raises(ValueError, match="no Stringee user id"):
        scco_for_decision(decision, PHONE_TO_APP)


# --- call events ------------------------------------------------------------------------

# Stringee's documented "started" event (app-to-phone), with the other statuses derived.
STARTED = {
    "call_status": "started",
    "project_id": 25,
    "request_from_user_id": "huydn",
    "account_sid": "ACab9b9bcf6391c6af9fe1663c729e3a6b",
    "timestamp_ms": 1515859261381,
    "from": {"number": "84899199866", "alias": "84899199866", "is_online": False,
             "type": "internal"},
    "to": {"number": "84909985668", "alias": "84909985668", "is_online": False,
           "type": "external"},
    "clientCustomData": "CLIENT_CUSTOM_DATA",
    "type": "stringee_call",
    "call_id": CALL_ID,
}
STARTED_AT = datetime(2018, 1, 13, 16, 1, 1, 381000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("status", "kind"),
    [("created", "dialling"), ("started", "dialling"), ("ringing", "ringing"),
     ("answered", "answered"), ("ended", "ended")],
)
def test_each_call_status_becomes_one_event(status: str, kind: str) -> None:
    parsed = stringee.parse_event({**STARTED, "call_status": status}, AT)
    (event,) = parsed.events
    assert (parsed.kind, parsed.provider_call_id, parsed.dedupe_key) == (
        status, CALL_ID, f"{CALL_ID}:{status}",
    )
    assert (event.provider, event.provider_call_id, event.kind, event.at) == (
        "stringee", CALL_ID, kind, STARTED_AT,
    )
    assert (event.direction, event.from_number, event.to_number) == (
        "outbound", "84899199866", "84909985668",
    )


def test_agent_ended_is_logged_but_changes_nothing() -> None:
    parsed = stringee.parse_event({**STARTED, "call_status": "agentEnded"}, AT)
    assert (parsed.kind, parsed.dedupe_key, parsed.events) == (
        "agentEnded", f"{CALL_ID}:agentEnded", (),
    )


def test_documented_ended_event_is_the_agents_busy_outbound_call() -> None:
    ended = {
        **STARTED, "call_status": "ended", "timestamp_ms": 1538369461077,
        "callCreatedReason": "CLIENT_MAKE_CALL", "endCallCause": "486 Busy Here",
        "endedBy": "EXTERNAL", "callType": "CALL", "duration": 9, "answerDuration": 0,
    }
    (event,) = stringee.parse_event(ended, AT).events
    assert (event.kind, event.end_cause, event.duration, event.answered_by) == (
        "ended", "busy", 0, "huydn",
    )
    assert event.direction == "outbound"
    assert event.at == datetime(2018, 10, 1, 4, 51, 1, 77000, tzinfo=UTC)


def test_phone_to_app_answer_names_the_app_user() -> None:
    body = {
        "call_status": "answered", "call_id": CALL_ID, "timestamp_ms": "1515859261381",
        "from": {"number": 84899199866, "alias": "84899199866", "type": "external"},
        "to": {"number": "user_1", "alias": "842471234567", "type": "internal"},
    }
    (event,) = stringee.parse_event(body, AT).events
    assert (event.direction, event.from_number, event.answered_by, event.at) == (
        "inbound", "84899199866", "user_1", STARTED_AT,
    )
    talked = {**body, "call_status": "ended", "answerDuration": 42, "duration": 50,
              "endCallCause": "NORMAL_CLEARING"}
    (end,) = stringee.parse_event(talked, AT).events
    assert (end.duration, end.answered_by, end.end_cause) == (42, "user_1", "NORMAL_CLEARING")


def test_without_timestamp_the_arrival_time_is_used() -> None:
    body = {"call_status": "ringing", "call_id": CALL_ID}
    (event,) = stringee.parse_event(body, AT).events
    assert (event.at, event.direction, event.from_number) == (AT, None, None)


def test_long_end_causes_are_cut_to_the_column() -> None:
    body = {"call_status": "ended", "call_id": CALL_ID, "endCallCause": "x" * 100}
    assert stringee.parse_event(body, AT).events[0].end_cause == "x" * 64


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "expected a JSON object"),
        ({}, "missing field 'call_status'.*event_url"),
        ({"call_status": "hold", "call_id": CALL_ID}, "unknown call_status 'hold'; expected"),
        ({"call_status": "ended"}, "missing field 'call_id' on call_status ended"),
        ({"call_status": "ended", "call_id": "has space"}, "field 'call_id'"),
        ({"call_status": "ended", "call_id": 7}, "missing field 'call_id'"),
        ({"call_status": "ended", "call_id": CALL_ID, "from": "0901"}, "field 'from' must be"),
        ({"call_status": "ended", "call_id": CALL_ID, "to": {"number": ["x"]}},
         "field 'to.number' must be a string"),
        ({"call_status": "ended", "call_id": CALL_ID, "from": {"number": "0\x00"}},
         "field 'from.number'"),
        ({"call_status": "ended", "call_id": CALL_ID, "timestamp_ms": "yesterday"},
         "field 'timestamp_ms'"),
        ({"call_status": "ended", "call_id": CALL_ID, "timestamp_ms": True},
         "field 'timestamp_ms'"),
        ({"call_status": "ended", "call_id": CALL_ID, "answerDuration": -1},
         "field 'answerDuration'"),
        ({"call_status": "ended", "call_id": CALL_ID, "duration": 1.5}, "field 'duration'"),
        ({"call_status": "ended", "call_id": CALL_ID, "endCallCause": 486},
         "field 'endCallCause'"),
    ],
)
def test_malformed_events_say_what_is_wrong(body: Any, message: str) -> None:
    with pytest.raises(BadPayload, match=message):
        stringee.parse_event(body, AT)


# --- the app user who placed the call, and how its end is named -----------------------------


def test_request_from_user_id_puts_every_event_on_that_app_user_as_outbound() -> None:
    for status in ("created", "ringing", "answered"):
        body = {**STARTED, "call_status": status,
                "from": {"number": "user_a", "type": "internal"},
                "to": {"number": "user_b", "type": "internal"}}
        (event,) = stringee.parse_event(body, AT).events
        assert (event.direction, event.answered_by) == ("outbound", "huydn")
        assert stringee.agent_of(stringee.parse_event(body, AT)) == "huydn"


def test_a_talked_outbound_call_keeps_stringees_cause_text() -> None:
    body = {**STARTED, "call_status": "ended", "answerDuration": 12,
            "endCallCause": "486 Busy Here"}
    assert stringee.parse_event(body, AT).events[0].end_cause == "486 Busy Here"


def test_an_unanswered_inbound_call_keeps_the_sip_text_and_is_missed_by_outcome() -> None:
    body = {"call_status": "ended", "call_id": CALL_ID, "endCallCause": "487 Request Terminated",
            "from": {"number": "84909986668", "type": "external"},
            "to": {"number": "user_1", "type": "internal"}}
    (event,) = stringee.parse_event(body, AT).events
    assert (event.direction, event.end_cause, event.answered_by) == (
        "inbound", "487 Request Terminated", None,
    )


@pytest.mark.parametrize("user", [7, "bad\x00id"])
def test_a_request_from_user_id_that_is_no_user_id_is_refused(user: object) -> None:
    with pytest.raises(BadPayload, match="field 'request_from_user_id'"):
        stringee.parse_event({**STARTED, "request_from_user_id": user}, AT)


def test_the_project_answer_request_is_the_start_of_the_agents_outbound_call() -> None:
    params = {"from": "84899199866", "to": "84909988668", "fromInternal": "true",
              "userId": "huydn", "projectId": "25", "custom": "custom",
              "callId": "call-vn-1-ABCDWXKXYZ-1542377678717"}
    parsed = stringee.parse_agent_call(params, AT)
    assert parsed is not None
    (event,) = parsed.events
    assert (parsed.kind, parsed.dedupe_key) == (
        "answer/project", "call-vn-1-ABCDWXKXYZ-1542377678717:answer/project",
    )
    assert (event.kind, event.direction, event.answered_by, event.to_number) == (
        "dialling", "outbound", "huydn", "84909988668",
    )
    assert stringee.parse_agent_call({**params, "callId": ""}, AT) is None
    assert stringee.parse_agent_call({**params, "userId": ""}, AT) is None
    with pytest.raises(BadPayload, match="parameter 'callId'"):
        stringee.parse_agent_call({**params, "callId": "has space"}, AT)


def test_a_placetel_only_decision_is_answered_with_its_fallback() -> None:
    rules = Rules(targets={"842471234567": NumberTarget(group_id="12")})
    decision = decide("84899199866", "842471234567", (ANNA, BEN), rules,
                      reachable_by="stringee_user_id")
    assert decision.action == "group"
    assert [c["to"]["number"] for c in scco_for_decision(decision, PHONE_TO_APP)] == [
        "anna", "ben",
    ]
    assert scco_for_decision(Decision("prompt", prompt_id="5"), PHONE_TO_APP) == []
