"""desk.providers.mediaservice: every sample callback of the document, the answers, callback
signatures, and the REST client against a real HTTP server on loopback.

The samples are the document's own (``mediaservice-openapi.txt``), stored one per file in
``fixtures/`` with numbers where strings are typed, as printed; ``fixtures/SOURCES.md`` lists
the two print defects repaired so they parse as JSON (the trailing comma after ``"siteId"``,
where the page dropped the ``siteBaseUrl`` line, and the unescaped quotes inside
``referredBy``). Each sample goes through ``json.dumps``/``loads`` first, so the adapter sees
what the wire delivers.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from desk.domain.events import BadPayload
from desk.providers.mediaservice import parse as ms
from desk.providers.mediaservice.answers import (
    answer_for_call_event,
    answer_for_call_identifier,
    answer_for_new_call,
    answer_for_new_remote_call,
    session_reference,
)
from desk.providers.mediaservice.client import (
    MediaserviceClient,
    ProviderError,
    allowed_site_base_url,
    normalise_base_url,
)
from desk.providers.mediaservice.signature import BadSignature, verify_callback_signature
from desk.settings import SettingsError, load_settings
from tests.providers.mediaservice.samples import load

AT = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
DOMAIN = "customer47.prod-eu-north-1.iotcomms.io"
SESSION = "9bb07660-c747-11ea-afa0-bd07728b88b7"
REPLY = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJkb21..."

# -- the document's request samples (fixtures/, see fixtures/SOURCES.md) ---------------------

CALL_NOTIFY = load("callNotify")
CALL_ANSWERED = load("callAnswered")
CALL_EVENT = load("callEvent")
SESSION_COMPLETED = load("sessionCompleted")
RECORDING_READY = load("recordingReady")
NEW_CALL = load("newCall")
NEW_REMOTE_CALL = load("newRemoteCall")
GET_IVR_COMMAND = load("getIvrCommand")
GET_CALL_IDENTIFIER = load("getCallIdentifier")
ALARM = load("alarm")


def wire(sample: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """The sample as a JSON body arrives, with ``changes`` applied (None removes a key)."""
    body = json.loads(json.dumps(sample))
    for key, value in changes.items():
        if value is None:
            body.pop(key, None)
        else:
            body[key] = value
    return body


def parse(callback: str, sample: dict[str, Any], **changes: Any) -> ms.MediaserviceParsed:
    return ms.parse(callback, wire(sample, **changes), AT)


# -- parse: every sample -------------------------------------------------------------------


def test_call_notify_ringing_sample() -> None:
    result = parse("callNotify", CALL_NOTIFY)
    (event,) = result.parsed.events
    assert result.parsed.kind == "callNotify:ringing"
    assert result.call_ref == result.parsed.provider_call_id == SESSION
    assert (event.provider, event.provider_call_id, event.kind, event.at) == (
        "mediaservice", SESSION, "ringing", AT)
    assert (event.from_number, event.to_number) == ("+46890510", "+46890200")
    assert result.facts == {
        "session_id": SESSION,
        "trace_id": "d9b15290-fa96-11ef-a9c8-631ff62a0f63",
        "site_id": "siteA",
        "event": "ringing",
        "monitoring": False,
        "participant_id": SESSION,
        "remote_participant_id": "da9cbeb0-c787-11eb-a47c-c9c4e460ef16",
        "sip_call_id": "5473001594892095000",  # a number in the sample, text for the desk
        "session_reference_id": 20000,  # someone else's reference: kept, not used
    }
    assert not result.needs_answer


@pytest.mark.parametrize("event", ["reInvite", "update"])
def test_call_notify_renegotiations_change_no_state(event: str) -> None:
    result = parse("/callNotify", CALL_NOTIFY, event=event)
    assert result.parsed.events == ()
    assert result.parsed.kind == f"callNotify:{event}"
    assert result.facts["event"] == event


def test_call_notify_for_a_monitoring_leg_changes_no_state() -> None:
    result = parse("callNotify", CALL_NOTIFY, monitoringParticipant=True)
    assert result.parsed.events == ()
    assert result.facts["monitoring"] is True


def test_call_answered_sample_without_desk_reference_waits_for_the_desk() -> None:
    # The document gives callAnswered no sessionId; this sample's sessionReferenceId is empty.
    result = parse("callAnswered", CALL_ANSWERED)
    assert result.call_ref is None
    assert result.parsed.provider_call_id == ""
    assert result.parsed.events == ()
    assert result.participant_ids == (
        "d93f0370-c787-11eb-a47c-c9c4e460ef16", "da9cbeb0-c787-11eb-a47c-c9c4e460ef16")
    assert result.facts == {
        "trace_id": "d9b15290-fa96-11ef-a9c8-631ff62a0f63",
        "site_id": "siteA",
        "monitoring": False,
        "reply_id": REPLY,
        "connection_id": "da9ce5c0-c787-11eb-a47c-c9c4e460ef16",
        "caller_participant_id": "d93f0370-c787-11eb-a47c-c9c4e460ef16",
        "callee_participant_id": "da9cbeb0-c787-11eb-a47c-c9c4e460ef16",
        "codec": "GSM",
        "remote_rtp_ip": "10.0.0.2",
        "remote_rtp_port": 45000,
    }
    # The desk found the call by participant id: parse again naming it.
    again = ms.parse("callAnswered", wire(CALL_ANSWERED), AT, call_id=SESSION)
    (event,) = again.parsed.events
    assert (event.provider_call_id, event.kind) == (SESSION, "answered")
    assert (event.from_number, event.to_number, event.answered_by) == (
        "46890510", "46890200", "46890200")
    assert again.parsed.dedupe_key == result.parsed.dedupe_key


def test_call_answered_with_the_desk_reference_names_the_call() -> None:
    result = parse("callAnswered", CALL_ANSWERED,
                   sessionReferenceId=session_reference(SESSION))
    assert result.call_ref == SESSION
    assert result.parsed.events[0].kind == "answered"
    assert "session_reference_id" not in result.facts  # our own reference is not a fact


@pytest.mark.parametrize("reference", [
    json.dumps({"deskCallId": SESSION}),  # where sessionReferenceId is typed string
    {"deskCallId": SESSION, "other": 1},
])
def test_desk_reference_is_read_as_object_or_json_text(reference: Any) -> None:
    assert parse("callAnswered", CALL_ANSWERED, sessionReferenceId=reference).call_ref == SESSION


def test_call_answered_on_a_monitoring_leg_is_not_an_answer() -> None:
    result = parse("callAnswered", CALL_ANSWERED, monitoringParticipant=True,
                   sessionReferenceId=session_reference(SESSION))
    assert result.parsed.events == ()
    assert result.facts["monitoring"] is True


def test_call_event_sample_called_party_drop() -> None:
    result = parse("callEvent", CALL_EVENT)
    (event,) = result.parsed.events
    assert result.parsed.kind == "callEvent:calledPartyDrop"
    assert (event.provider_call_id, event.kind, event.end_cause) == (
        SESSION, "ended", "callee-hangup")
    assert result.needs_answer
    assert result.facts == {
        "session_id": SESSION,
        "site_id": "siteA",
        "event": "calledPartyDrop",
        "connection_id": "da5cbeb0-c787-11eb-a47c-c9c4e460ef16",
        "participant_id": "da9cbeb0-c787-11eb-a47c-c9c4e460ef16",
        "remote_participant_id": "da9cbeb0-c787-11eb-a47c-c9c4e460ef16",
        "sip_response_code": 486,
        "sip_reason": "SIP ;cause=200 ;text=Call completed elsewhere",
        "error_description": "Request cancelled",
        "session_reference_id": 20000,
    }


@pytest.mark.parametrize(("event", "code", "cause"), [
    ("callingPartyDrop", None, "caller-hangup"),
    ("calledPartyDrop", None, "callee-hangup"),
    ("callingPartyFailure", 500, "failed"),
    ("calledPartyFailure", 486, "busy"),
    ("calledPartyFailure", 603, "rejected"),
    ("calledPartyFailure", 480, "missed"),
    ("calledPartyFailure", "408", "missed"),  # a number sent as text
    ("calledPartyFailure", 503, "failed"),
])
def test_call_event_drops_and_failures_end_the_call(event: str, code: Any, cause: str) -> None:
    result = parse("callEvent", CALL_EVENT, event=event, sipResponseCode=code)
    (ended,) = result.parsed.events
    assert (ended.kind, ended.end_cause) == ("ended", cause)


@pytest.mark.parametrize(("event", "side"), [
    ("callerConnectionSplit", "caller"), ("calleeConnectionSplit", "callee")])
def test_call_event_split_keeps_the_call_alive(event: str, side: str) -> None:
    result = parse("callEvent", CALL_EVENT, event=event, sipResponseCode=None)
    assert result.parsed.events == ()
    assert result.facts["split"] == side
    assert result.needs_answer


def test_session_completed_sample_ends_the_call_without_guessing_duration() -> None:
    result = parse("sessionCompleted", SESSION_COMPLETED)
    (event,) = result.parsed.events
    assert (event.kind, event.end_cause, event.duration) == ("ended", None, None)
    assert result.facts["session_duration"] == "46890510"
    assert result.facts["session_end_reason"] == "d93f0370-c787-11eb-a47c-c9c4e460ef16"
    assert result.facts["trace_id"] == "d9b15290-fa96-11ef-a9c8-631ff62a0f63"
    assert "session_reference_id" not in result.facts  # {} says nothing


def test_recording_ready_sample_successful() -> None:
    result = parse("recordingReady", RECORDING_READY)
    assert result.parsed.events == ()
    assert result.parsed.kind == "recordingReady:recordingSuccessful"
    assert result.facts == {
        "session_id": SESSION,
        "event": "recordingSuccessful",
        "recording_state": "ready",
        "connection_id": "9bb0eee0-c747-11ea-afa0-bd07728b88b7",
        "recording_file_name": "recording.mp3",
        "recording_file_size": 4711,
        # the sample's "reason" is ignored: present only if recordingFailed
    }


def test_recording_ready_failed_keeps_the_reason() -> None:
    result = parse("recordingReady", RECORDING_READY, event="recordingFailed",
                   recordingFileName=None, fileSize=None)
    assert result.facts["recording_state"] == "failed"
    assert result.facts["recording_failure_reason"] == "No callee media received"
    assert "recording_file_name" not in result.facts


def test_new_call_sample_is_a_ringing_inbound_call_that_needs_an_answer() -> None:
    result = parse("newCall", NEW_CALL)
    (event,) = result.parsed.events
    assert (event.kind, event.direction, event.from_number, event.to_number) == (
        "ringing", "inbound", "caller", "ivr")
    assert result.needs_answer
    assert result.facts == {
        "session_id": SESSION,
        "site_id": "siteA",
        "sip_call_id": "5473001594892095000",
        "caller_display_name": "Carl Carlsson",
        "called_party": "ivr",
    }


def test_new_call_with_a_withheld_number_shows_no_number() -> None:
    result = parse("newCall", NEW_CALL, callingPartyPrivacy="secret")
    assert result.parsed.events[0].from_number is None
    assert result.facts["caller_withheld"] is True


def test_new_call_falls_back_to_from_user() -> None:
    result = parse("newCall", NEW_CALL, callingParty=None)
    assert result.parsed.events[0].from_number == "fromUser"


def test_new_remote_call_sample() -> None:
    result = parse("newRemoteCall", NEW_REMOTE_CALL)
    (event,) = result.parsed.events
    assert (event.kind, event.direction, event.from_number, event.to_number) == (
        "ringing", "inbound", "1234567", "user")
    assert result.needs_answer
    assert result.facts == {
        "session_id": SESSION,
        "trace_id": "9851cf70-1cc8-11ef-b3dd-9b598c1e38cf",
        "reply_id": REPLY,
        "sip_call_id": "nfdfsij82893kn",
        "codec": "PCMA",
        "remote_rtp_ip": "10.2.30.12",
        "remote_rtp_port": 20000,
    }


def test_get_ivr_command_sample_with_nulls() -> None:
    result = parse("getIvrCommand", GET_IVR_COMMAND)
    assert result.parsed.events == ()
    assert result.needs_answer
    assert result.facts == {"session_id": SESSION, "site_id": "siteA", "dtmf": "12"}


def test_get_call_identifier_sample() -> None:
    result = parse("getCallIdentifier", GET_CALL_IDENTIFIER)
    assert result.parsed.events == ()
    assert result.needs_answer
    assert result.facts == {"session_id": SESSION, "site_id": "siteA", "called_party": "ivr"}


@pytest.mark.parametrize("callback", ["alarm", "/customer47.prod-eu-north-1.iotcomms.io"])
def test_alarm_sample_posted_to_the_domain(callback: str) -> None:
    result = parse(callback, ALARM)
    assert result.callback == "alarm"
    assert result.parsed.kind == "alarm:sessionError"
    assert result.call_ref == "8eaf1600-c20b-11eb-9fdb-f32f171bb218"
    assert result.parsed.events == ()
    assert not result.needs_answer
    assert result.facts["alarm_text"] == "sessionError: maxDuration (status string)"
    assert result.facts["alarm_type"] == "sessionError"
    assert result.facts["alarm_error"] == "maxDuration"
    assert "alarm_details" not in result.facts  # {} says nothing


def test_alarm_without_a_session_is_not_about_a_call() -> None:
    result = parse("alarm", ALARM, sessionId=None, errorDetails={"node": "a"}, status=None)
    assert result.call_ref is None and result.parsed.provider_call_id == ""
    assert result.facts["alarm_details"] == {"node": "a"}
    assert result.facts["alarm_text"] == "sessionError: maxDuration"


def test_unknown_extra_fields_are_tolerated() -> None:
    result = parse("callEvent", CALL_EVENT, somethingNew={"x": [1, 2]}, anotherOne="y")
    assert result.parsed.events[0].kind == "ended"


# -- dedupe keys ---------------------------------------------------------------------------


def test_a_retried_identical_callback_has_the_same_key_in_any_key_order() -> None:
    first = parse("callEvent", CALL_EVENT)
    retried = ms.parse("callEvent", dict(reversed(list(wire(CALL_EVENT).items()))), AT)
    assert first.parsed.dedupe_key == retried.parsed.dedupe_key
    assert len(first.parsed.dedupe_key) <= 320  # Delivery.dedupe_key


@pytest.mark.parametrize(("callback", "sample", "changes"), [
    ("callEvent", CALL_EVENT, {"event": "callingPartyDrop"}),
    ("callEvent", CALL_EVENT, {"participantId": "other"}),
    ("callNotify", CALL_NOTIFY, {"event": "reInvite"}),
    ("callAnswered", CALL_ANSWERED, {"httpTransactionId": "another-transaction"}),
    ("recordingReady", RECORDING_READY, {"recordingFileName": "second.mp3"}),
])
def test_distinct_callbacks_have_distinct_keys(
    callback: str, sample: dict[str, Any], changes: dict[str, Any]
) -> None:
    assert parse(callback, sample).parsed.dedupe_key != (
        parse(callback, sample, **changes).parsed.dedupe_key)


def test_the_same_body_on_two_callbacks_has_two_keys() -> None:
    body = {"sessionId": SESSION, "calledParty": "ivr"}
    assert (ms.parse("getCallIdentifier", body, AT).parsed.dedupe_key
            != ms.parse("getIvrCommand", body, AT).parsed.dedupe_key)


# -- malformed callbacks -------------------------------------------------------------------


@pytest.mark.parametrize(("callback", "body", "message"), [
    ("hangup", {}, "unknown mediaservice callback 'hangup'"),
    ("callEvent", [CALL_EVENT], "callEvent: expected a JSON object, got list"),
    ("callEvent", "text", "expected a JSON object, got str"),
    ("callEvent", wire(CALL_EVENT, event=None), "callEvent: missing field 'event'"),
    ("callEvent", wire(CALL_EVENT, event="partyLeft"), "unknown event 'partyLeft'"),
    ("callEvent", wire(CALL_EVENT, sessionId=None, sessionReferenceId=None),
     "callEvent: missing field 'sessionId'"),
    ("callEvent", wire(CALL_EVENT, sipResponseCode="busy"), "field 'sipResponseCode'"),
    ("callEvent", wire(CALL_EVENT, sipResponseCode=True), "field 'sipResponseCode'"),
    ("callNotify", wire(CALL_NOTIFY, sessionId="x" * 256), "field 'sessionId'"),
    ("callNotify", wire(CALL_NOTIFY, user="+4689\x00"), "field 'user'"),
    ("callNotify", wire(CALL_NOTIFY, user={"number": 1}), "field 'user' must be text"),
    ("callNotify", wire(CALL_NOTIFY, monitoringParticipant="maybe"),
     "field 'monitoringParticipant' must be true or false"),
    ("callNotify", wire(CALL_NOTIFY, event="ring ing"), "field 'event'"),
    ("callAnswered", wire(CALL_ANSWERED, replyId=None), "callAnswered: missing field 'replyId'"),
    ("callAnswered", wire(CALL_ANSWERED, connectionId=""), "missing field 'connectionId'"),
    ("recordingReady", wire(RECORDING_READY, recordingFileName=None),
     "missing field 'recordingFileName'"),
    ("recordingReady", wire(RECORDING_READY, event="done"), "unknown event 'done'"),
    ("newRemoteCall", wire(NEW_REMOTE_CALL, replyId=None), "missing field 'replyId'"),
    ("newCall", wire(NEW_CALL, sessionId=None), "newCall: missing field 'sessionId'"),
    ("alarm", wire(ALARM, type=None), "alarm: missing field 'type'"),
    ("alarm", wire(ALARM, type="not a type"), "field 'type'"),
])
def test_malformed_callbacks_say_what_is_wrong(callback: str, body: Any, message: str) -> None:
    with pytest.raises(BadPayload, match=message):
        ms.parse(callback, body, AT)


# -- answers -------------------------------------------------------------------------------

AGENT = "sip:201@customer47.prod-eu-north-1.iotcomms.io"


def test_new_call_answer_rings_the_agent_and_sets_the_desk_reference() -> None:
    answer = answer_for_new_call(parse("newCall", NEW_CALL), AGENT, max_ring_time=20)
    assert answer == {
        "action": "call", "destAddr": AGENT, "maxRingTime": 20,
        "sessionReferenceId": {"deskCallId": SESSION},
    }


def test_new_call_answer_with_recording() -> None:
    answer = answer_for_new_call(parse("newCall", NEW_CALL), AGENT, record=True,
                                    recording_file_name="call-1.mp3", max_ring_time=12.5)
    assert answer["callRecording"] is True
    assert answer["recordingFileName"] == "call-1.mp3"
    assert answer["maxRingTime"] == 12.5
    assert json.loads(json.dumps(answer)) == answer


def test_new_call_answer_without_an_agent_drops_the_call() -> None:
    assert answer_for_new_call(parse("newCall", NEW_CALL), None) == {
        "action": "drop", "dropCode": "temporarilyUnavailable"}


@pytest.mark.parametrize("bad", ["201", "tel:+4689", "sip:has space@x", "http://x"])
def test_answers_refuse_what_is_not_a_sip_address(bad: str) -> None:
    with pytest.raises(ValueError, match="sip: or sips: URI"):
        answer_for_new_call(parse("newCall", NEW_CALL), bad)


def test_answers_refuse_the_wrong_callback_and_ring_times() -> None:
    with pytest.raises(ValueError, match="expected a parsed newCall"):
        answer_for_new_call(parse("callEvent", CALL_EVENT), AGENT)
    with pytest.raises(ValueError, match="max_ring_time"):
        answer_for_new_call(parse("newCall", NEW_CALL), AGENT, max_ring_time=0)


@pytest.mark.parametrize(("changes", "answer"), [
    ({}, {"action": "drop"}),  # the sample: calledPartyDrop
    ({"event": "callingPartyDrop"}, {"action": "drop"}),
    ({"event": "callingPartyFailure"}, {"action": "drop"}),
    ({"event": "calledPartyFailure"}, {"action": "drop", "dropCode": "busy"}),
    ({"event": "calledPartyFailure", "sipResponseCode": 480},
     {"action": "drop", "dropCode": "temporarilyUnavailable"}),
    ({"event": "calleeConnectionSplit"}, {"action": "drop"}),
    ({"event": "callerConnectionSplit"}, {"action": "drop", "dropCode": "temporarilyUnavailable"}),
])
def test_call_event_answers_drop_the_remaining_party(
    changes: dict[str, Any], answer: dict[str, Any]
) -> None:
    assert answer_for_call_event(parse("callEvent", CALL_EVENT, **changes)) == answer


def test_call_event_answer_after_a_split_transfers_the_caller() -> None:
    target = "sip:+4640123456@trunk.example"
    caller = parse("callEvent", CALL_EVENT, event="callerConnectionSplit")
    agent = parse("callEvent", CALL_EVENT, event="calleeConnectionSplit")
    assert answer_for_call_event(caller, target, max_ring_time=25) == {
        "action": "call", "destAddr": target, "maxRingTime": 25}
    assert answer_for_call_event(agent, target) == {"action": "drop"}


def test_remote_call_and_call_identifier_answers_carry_the_reference() -> None:
    remote = answer_for_new_remote_call(parse("newRemoteCall", NEW_REMOTE_CALL))
    assert remote == {"sessionReferenceId": json.dumps({"deskCallId": SESSION})}
    # Echoed back as text where the schema types it string, it still names the call.
    echoed = ms.parse("callNotify", wire(CALL_NOTIFY, sessionId=None, **remote), AT)
    assert echoed.call_ref == SESSION
    assert answer_for_call_identifier(parse("getCallIdentifier", GET_CALL_IDENTIFIER)) == {
        "sessionId": SESSION, "sessionReferenceId": {"deskCallId": SESSION}}


# -- keys ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyPair:
    private_pem: str
    public_pem: str


def _key_pair() -> KeyPair:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return KeyPair(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                          serialization.NoEncryption()).decode(),
        key.public_key().public_bytes(serialization.Encoding.PEM,
                                      serialization.PublicFormat.SubjectPublicKeyInfo).decode(),
    )


@pytest.fixture(scope="module")
def provider_keys() -> KeyPair:
    """The provider's callback-signing pair; the desk holds only the public half."""
    return _key_pair()


@pytest.fixture(scope="module")
def desk_keys() -> KeyPair:
    """The desk's API key pair; the provider holds only the public half."""
    return _key_pair()


# -- callback signatures -------------------------------------------------------------------


def _signed(keys: KeyPair, **claims: Any) -> dict[str, str]:
    now = int(time.time())
    claims = {"iat": now, "exp": now + 60, **claims}
    claims = {k: v for k, v in claims.items() if v is not None}
    return {"Authorization": "Bearer " + jwt.encode(claims, keys.private_pem, algorithm="RS256")}


def test_a_callback_signed_by_the_provider_is_accepted(provider_keys: KeyPair) -> None:
    headers = _signed(provider_keys, iss="iotcomms")
    claims = verify_callback_signature(headers, provider_keys.public_pem)
    assert claims["iss"] == "iotcomms"
    # Header names match in any case; "Bearer" is optional.
    bare = {"authorization": headers["Authorization"].removeprefix("Bearer ")}
    assert verify_callback_signature(bare, provider_keys.public_pem.encode())["iss"]


def test_a_custom_header_and_audience(provider_keys: KeyPair) -> None:
    token = _signed(provider_keys, aud="desk")["Authorization"]
    headers = {"X-Iotcomms-Signature": token}
    assert verify_callback_signature(headers, provider_keys.public_pem,
                                        header="x-iotcomms-signature", audience="desk")
    with pytest.raises(BadSignature, match="not valid"):
        verify_callback_signature(headers, provider_keys.public_pem,
                                     header="X-Iotcomms-Signature", audience="someone-else")


def test_bad_signatures_are_refused(provider_keys: KeyPair, desk_keys: KeyPair) -> None:
    key = provider_keys.public_pem
    cases = [
        ({}, "no Authorization header"),
        ({"Authorization": "Bearer "}, "no Authorization header"),
        ({"Authorization": "Bearer not-a-jwt"}, "not valid"),
        (_signed(desk_keys), "not valid"),  # signed with another key
        (_signed(provider_keys, iat=int(time.time()) - 600, exp=int(time.time()) - 300),
         "expired"),
        (_signed(provider_keys, iat=int(time.time()) - 3600, exp=int(time.time()) + 60),
         "older than 300 s"),
        (_signed(provider_keys, iat=None, exp=None), "neither iat nor exp"),
        # The classic confusion: HS256 keyed with the public key must not pass.
        ({"Authorization": "Bearer " + _hs256_with(key)}, "not valid"),
    ]
    for headers, message in cases:
        with pytest.raises(BadSignature, match=message):
            verify_callback_signature(headers, key)
    tampered = _signed(provider_keys)["Authorization"]
    head, _payload, signature = tampered.removeprefix("Bearer ").split(".")
    forged = jwt.utils.base64url_encode(json.dumps({"iat": int(time.time()),
                                                    "sub": "evil"}).encode()).decode()
    with pytest.raises(BadSignature, match="not valid"):
        verify_callback_signature({"Authorization": f"{head}.{forged}.{signature}"}, key)


def _hs256_with(secret: str) -> str:
    # pyjwt refuses PEM text as an HMAC key, so build the forged token by hand.
    def b64(data: bytes) -> str:
        return jwt.utils.base64url_encode(data).decode()

    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps({"iat": int(time.time())}).encode())
    mac = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(mac)}"


def test_timeless_tokens_pass_only_when_asked(provider_keys: KeyPair) -> None:
    headers = _signed(provider_keys, iat=None, exp=None, sub="x")
    assert verify_callback_signature(headers, provider_keys.public_pem, max_age=None)


def test_an_unusable_callback_key_is_a_configuration_error(provider_keys: KeyPair) -> None:
    with pytest.raises(ValueError, match="not a PEM public key"):
        verify_callback_signature(_signed(provider_keys), "not a key")
    with pytest.raises(ValueError, match="not a PEM public key"):
        verify_callback_signature(_signed(provider_keys), provider_keys.private_pem)


# -- the client against a real HTTP server -------------------------------------------------


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


@dataclass
class FakeMediaservice:
    """A loopback stand-in that records requests and answers per path."""

    url: str
    seen: list[Seen] = field(default_factory=list)
    # path -> (status, body (JSON-able or bytes), delay in seconds)
    replies: dict[str, tuple[int, Any, float]] = field(default_factory=dict)
    release: threading.Event = field(default_factory=threading.Event)

    def reply(self, path: str, status: int = 200, body: Any = None, delay: float = 0.0) -> None:
        self.replies[path] = (status, {"success": True} if body is None else body, delay)


@pytest.fixture
def provider() -> Iterator[FakeMediaservice]:
    fake: FakeMediaservice

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            parts = urlsplit(self.path)
            fake.seen.append(Seen(self.command, parts.path, parse_qs(parts.query),
                                  dict(self.headers), json.loads(raw) if raw else None))
            status, body, delay = fake.replies.get(parts.path, (200, {"success": True}, 0.0))
            if delay:
                fake.release.wait(delay)
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except OSError:
                pass  # the client gave up (timeout test)

        do_GET = do_POST = _handle

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake = FakeMediaservice(url=f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield fake
    fake.release.set()
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def client(provider: FakeMediaservice, desk_keys: KeyPair) -> MediaserviceClient:
    return MediaserviceClient(provider.url + "/", DOMAIN, desk_keys.private_pem, timeout=2)


BASE = f"/{DOMAIN}"


@pytest.mark.parametrize(("call", "path", "body"), [
    (lambda c: c.hangupcall(REPLY), "hangupcall", {"replyId": REPLY}),
    (lambda c: c.hangupparticipant("p-1", REPLY, SESSION), "hangupparticipant",
     {"participantId": "p-1", "replyId": REPLY, "sessionId": SESSION}),
    (lambda c: c.splitconnection(REPLY, "conn-1"), "splitconnection",
     {"replyId": REPLY, "connectionId": "conn-1"}),
    (lambda c: c.startrecording("call-1.mp3", REPLY, "conn-1"), "startrecording",
     {"recordingFileName": "call-1.mp3", "replyId": REPLY, "connectionId": "conn-1"}),
    (lambda c: c.stoprecording(REPLY, "conn-1"), "stoprecording",
     {"replyId": REPLY, "connectionId": "conn-1"}),
])
def test_client_posts_exactly_what_the_document_says(
    client: MediaserviceClient, provider: FakeMediaservice, desk_keys: KeyPair,
    call: Any, path: str, body: dict[str, Any],
) -> None:
    assert call(client) == {"success": True}
    (seen,) = provider.seen
    assert (seen.method, seen.path, seen.body) == ("POST", f"{BASE}/{path}", body)
    assert seen.headers["Content-Type"] == "application/json"
    scheme, token = seen.headers["Authorization"].split(" ", 1)
    assert scheme == "Bearer"
    assert jwt.get_unverified_header(token)["alg"] == "RS256"
    claims = jwt.decode(token, desk_keys.public_pem, algorithms=["RS256"])
    assert 0 < claims["exp"] - claims["iat"] <= 60
    assert abs(claims["iat"] - time.time()) < 5


def test_client_adds_configured_claims(provider: FakeMediaservice, desk_keys: KeyPair) -> None:
    client = MediaserviceClient(provider.url, DOMAIN, desk_keys.private_pem.encode(),
                                   timeout=2, extra_claims={"iss": DOMAIN})
    client.hangupcall(REPLY)
    token = provider.seen[0].headers["Authorization"].removeprefix("Bearer ")
    assert jwt.decode(token, desk_keys.public_pem, algorithms=["RS256"])["iss"] == DOMAIN


def test_client_lists_prompt_files_with_paging(
    client: MediaserviceClient, provider: FakeMediaservice
) -> None:
    page = {"next": "page-2", "success": True, "files": [{"size": 4711, "name": "rec.mp3"}]}
    provider.reply(f"{BASE}/promptfile", body=page)
    assert client.list_promptfiles() == page
    assert client.list_promptfiles("page-2") == page
    first, second = provider.seen
    assert (first.method, first.path, first.query, first.body) == (
        "GET", f"{BASE}/promptfile", {}, None)
    assert second.query == {"next": ["page-2"]}
    assert first.headers["Authorization"].startswith("Bearer ")


def test_client_fetches_a_prompt_file_url(
    client: MediaserviceClient, provider: FakeMediaservice
) -> None:
    provider.reply(f"{BASE}/promptfile/call%201%2Fa.mp3/url",
                   body={"success": True, "url": "https://s3.example/rec?sig=1"})
    assert client.promptfile_url("call 1/a.mp3") == "https://s3.example/rec?sig=1"
    assert provider.seen[0].method == "GET"
    assert provider.seen[0].path == f"{BASE}/promptfile/call%201%2Fa.mp3/url"


def test_success_false_is_a_refusal_with_the_providers_reason(
    client: MediaserviceClient, provider: FakeMediaservice
) -> None:
    provider.reply(f"{BASE}/promptfile/gone.mp3/url",
                   body={"success": False, "reason": "File not found", "error": "NoSuchKey"})
    with pytest.raises(ProviderError) as caught:
        client.promptfile_url("gone.mp3")
    error = caught.value
    assert (error.kind, error.status) == ("refused", 200)
    assert error.answer == {"success": False, "reason": "File not found", "error": "NoSuchKey"}
    assert str(error) == "The call service refused to fetch the recording: File not found."

    provider.reply(f"{BASE}/hangupcall", body={"success": False})
    with pytest.raises(ProviderError, match="refused to hang up the call: it gave no reason"):
        client.hangupcall(REPLY)


@pytest.mark.parametrize(("status", "body", "kind", "message"), [
    (401, {"message": "Unauthorized"}, "refused",
     "refused to start recording: Unauthorized"),
    (403, b"", "refused", "not authorised .*public key uploaded in the iotcomms portal"),
    (404, b"<html>", "refused", "unknown address"),
    (502, b"Bad Gateway", "error", r"failed to start recording \(HTTP 502\)"),
    (200, b"<html>ok</html>", "error", "did not confirm that it will start recording"),
    (200, {"ok": True}, "error", "did not confirm"),
])
def test_http_failures_are_told_apart(
    client: MediaserviceClient, provider: FakeMediaservice,
    status: int, body: Any, kind: str, message: str,
) -> None:
    provider.reply(f"{BASE}/startrecording", status=status, body=body)
    with pytest.raises(ProviderError, match=message) as caught:
        client.startrecording("a.mp3", REPLY, "conn-1")
    assert (caught.value.kind, caught.value.status) == (kind, status)


def test_a_slow_provider_times_out(provider: FakeMediaservice, desk_keys: KeyPair) -> None:
    client = MediaserviceClient(provider.url, DOMAIN, desk_keys.private_pem, timeout=0.3)
    provider.reply(f"{BASE}/splitconnection", delay=5)
    started = time.monotonic()
    with pytest.raises(ProviderError, match=r"did not answer within 0.3 s when asked to "
                                               r"transfer the call; it may still happen") as caught:
        client.splitconnection(REPLY, "conn-1")
    assert time.monotonic() - started < 2
    assert (caught.value.kind, caught.value.status, caught.value.answer) == (
        "timeout", None, None)
    assert len(provider.seen) == 1  # it did arrive: hence "it may still happen"


def test_a_refused_connection_is_unreachable(desk_keys: KeyPair) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Nothing listens on the port any more.
    client = MediaserviceClient(f"http://127.0.0.1:{port}", DOMAIN, desk_keys.private_pem,
                                   timeout=2)
    with pytest.raises(ProviderError, match=r"Could not reach the call service to hang up "
                                               r"the call \(connection refused\)") as caught:
        client.hangupcall(REPLY)
    assert caught.value.kind == "unreachable"


@pytest.mark.parametrize(("args", "message"), [
    (("ftp://x", DOMAIN, "KEY", 1), "base URL"),
    (("https://api.eu-north-1.iotcomms.io", "a/b", "KEY", 1), "domain"),
    (("https://api.eu-north-1.iotcomms.io", DOMAIN, "KEY", 0), "timeout"),
    (("https://api.eu-north-1.iotcomms.io", DOMAIN, "not a key", 1), "not a PEM private key"),
])
def test_client_settings_are_checked(args: tuple[Any, ...], message: str,
                                     desk_keys: KeyPair) -> None:
    args = tuple(desk_keys.private_pem if a == "KEY" else a for a in args)
    with pytest.raises(ValueError, match=message):
        MediaserviceClient(*args)


# -- sessionDuration, endpoint family, hybrid sites, their settings ------------------------


@pytest.mark.parametrize(("sent", "seconds"), [
    (46890510, 46890.51),  # the sample: 13 h in milliseconds (542 days if it were seconds)
    ("1500", 1.5), (0, 0.0), ("soon", None), (None, None),
])
def test_session_duration_is_milliseconds_and_an_odd_one_still_ends_the_call(
    sent: Any, seconds: float | None,
) -> None:
    result = parse("sessionCompleted", SESSION_COMPLETED, sessionDuration=sent)
    assert result.facts.get("session_seconds") == seconds
    (event,) = result.parsed.events
    assert (event.kind, event.duration) == ("ended", None)  # talk time is the webhook's job


@pytest.mark.parametrize(("api", "call", "path"), [
    ("base", lambda c: c.hangupcall(REPLY), "hangupcall"),
    ("jwt", lambda c: c.hangupcall(REPLY), "hangupcalljwt"),
    ("jwt", lambda c: c.startrecording("a.mp3", REPLY, "conn-1"), "startrecording"),
    ("jwt", lambda c: c.promptfile_url("a.mp3"), "promptfile/a.mp3/url"),
])
def test_the_jwt_family_calls_the_jwt_variant_where_the_page_lists_one(
    provider: FakeMediaservice, desk_keys: KeyPair, api: str, call: Any, path: str,
) -> None:
    provider.reply(f"{BASE}/promptfile/a.mp3/url", body={"success": True, "url": "https://f"})
    client = MediaserviceClient(provider.url, DOMAIN, desk_keys.private_pem, timeout=2, api=api)
    call(client)
    (seen,) = provider.seen
    assert seen.path == f"{BASE}/{path}"
    assert seen.headers["Authorization"].startswith("Bearer ")  # the same JWT either way


def test_an_unknown_family_is_refused(desk_keys: KeyPair) -> None:
    with pytest.raises(ValueError, match="base, jwt"):
        MediaserviceClient("https://api.example", DOMAIN, desk_keys.private_pem, api="sigv4")


ALLOWED = ("https://site-a.example.com/mediaservice", "http://127.0.0.1:8081")


@pytest.mark.parametrize(("url", "followed"), [
    ("https://site-a.example.com/mediaservice", "https://site-a.example.com/mediaservice"),
    ("HTTPS://Site-A.example.com/mediaservice/", "https://site-a.example.com/mediaservice"),
    ("http://127.0.0.1:8081", "http://127.0.0.1:8081"),
    ("https://site-a.example.com/mediaservice/../evil", None),
    ("https://site-a.example.com.evil.test/mediaservice", None),
    ("https://site-a.example.com@evil.test/mediaservice", None),
    ("https://site-a.example.com/mediaservice?x=https://evil.test", None),
    ("https://site-b.example.com/mediaservice", None),
    ("http://127.0.0.1:9", None),
    ("", None), (None, None), (42, None),
])
def test_only_a_configured_site_base_url_is_followed(url: Any, followed: str | None) -> None:
    allowed = tuple(normalise_base_url(u) for u in ALLOWED)
    assert allowed_site_base_url(url, allowed) == followed
    assert allowed_site_base_url(url, ()) is None  # nothing configured: never


def settings(**values: str) -> dict[str, Any]:
    return load_settings({"TESTING": True, "DESK_MEDIASERVICE_URL": "https://api.example",
                          "DESK_MEDIASERVICE_DOMAIN": DOMAIN, **values}, environ={})


def test_the_new_settings_are_read_and_checked() -> None:
    config = settings()
    assert (config["DESK_MEDIASERVICE_API"], config["DESK_MEDIASERVICE_SITE_URLS"]) == (
        "base", ())
    config = settings(DESK_MEDIASERVICE_API=" JWT ",
                      DESK_MEDIASERVICE_SITE_URLS=" https://Site-A.example.com/ms/ ,, "
                                                  "http://127.0.0.1:8081")
    assert config["DESK_MEDIASERVICE_API"] == "jwt"
    assert config["DESK_MEDIASERVICE_SITE_URLS"] == ("https://site-a.example.com/ms",
                                                     "http://127.0.0.1:8081")
    with pytest.raises(SettingsError, match="DESK_MEDIASERVICE_API must be base or jwt"):
        settings(DESK_MEDIASERVICE_API="sigv4")
    with pytest.raises(SettingsError, match="DESK_MEDIASERVICE_SITE_URLS takes"):
        settings(DESK_MEDIASERVICE_SITE_URLS="site-a.example.com")


# -- a supervisor's monitoring leg (monitorDestAddr) -----------------------------------------


def test_a_call_event_about_a_known_monitoring_leg_changes_no_state() -> None:
    # The sample's participantId, told to the parser as a monitoring leg of the call: what
    # the service sends when the supervisor hangs up the silent leg (the /callEvent schema
    # has no monitoringParticipant field).
    leg = CALL_EVENT["participantId"]
    for event in ("calledPartyDrop", "calledPartyFailure", "callingPartyDrop"):
        result = ms.parse("callEvent", wire(CALL_EVENT, event=event), AT,
                          monitoring_legs={leg})
        assert result.parsed.events == ()
        assert result.parsed.kind == f"callEvent:{event}:monitoring"
        assert result.facts["monitoring"] is True and "split" not in result.facts
    plain = ms.parse("callEvent", wire(CALL_EVENT), AT, monitoring_legs={"another-leg"})
    assert [e.kind for e in plain.parsed.events] == ["ended"]  # the call's own party dropped


def test_a_call_event_flagged_as_monitoring_is_the_legs_whatever_its_participant() -> None:
    # Invented: the flag /callAnswered and /callNotify carry, on a callEvent.
    result = parse("callEvent", CALL_EVENT, monitoringParticipant=True)
    assert result.parsed.events == () and result.facts["monitoring"] is True
    split = parse("callEvent", CALL_EVENT, event="callerConnectionSplit",
                  monitoringParticipant=True)
    assert "split" not in split.facts  # a monitoring leg is never the caller to transfer


def test_a_monitoring_call_answered_names_the_sip_user_its_leg_rang() -> None:
    result = parse("callAnswered", CALL_ANSWERED, monitoringParticipant=True,
                   remotePartyNumber="sue-desk", sessionReferenceId=session_reference(SESSION))
    assert result.parsed.kind == "callAnswered:monitoring"
    assert result.facts["monitor_party"] == "sue-desk"
    assert result.facts["callee_participant_id"] == CALL_ANSWERED["calleeParticipantId"]
    ringing = parse("callNotify", CALL_NOTIFY, monitoringParticipant=True)
    assert ringing.parsed.kind == "callNotify:ringing:monitoring"


def test_with_monitor_adds_the_leg_to_an_answer_that_connects_the_call_only() -> None:
    from desk.providers.mediaservice.answers import with_monitor

    new_call = parse("newCall", NEW_CALL)
    connect = answer_for_new_call(new_call, "sip:ann@pbx.example")
    assert with_monitor(connect, "sip:sue@pbx.example", "101") == {
        **connect, "monitorDestAddr": "sip:sue@pbx.example", "monitorSipFrom": "101"}
    assert "monitorSipFrom" not in with_monitor(connect, "sip:sue@pbx.example")
    drop = answer_for_new_call(new_call, None)
    assert with_monitor(drop, "sip:sue@pbx.example", "101") == drop
    with pytest.raises(ValueError, match="monitorDestAddr must be a sip: or sips: URI"):
        with_monitor(connect, "sue@pbx.example")
