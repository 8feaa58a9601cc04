"""desk.providers.placetel: what each Notify delivery becomes, and what is refused."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from desk.domain.events import BadPayload
from desk.providers.placetel import parse as placetel

AT = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
CALL_ID = "f4591ba315d81671d7a06c2a3b4f963dafd119de39cb26edd8a6476676b2f447"


def test_incoming_call_is_a_ringing_inbound_event() -> None:
    parsed = placetel.parse(
        {"event": "IncomingCall", "from": "022129191999", "to": "022129191000", "call_id": CALL_ID},
        AT,
    )
    (event,) = parsed.events
    assert parsed.dedupe_key == f"{CALL_ID}:IncomingCall"
    assert (event.kind, event.direction, event.from_number, event.to_number, event.at) == (
        "ringing", "inbound", "022129191999", "022129191000", AT,
    )


def test_call_accepted_names_the_answering_peer() -> None:
    parsed = placetel.parse(
        {"event": "CallAccepted", "from": "anonymous", "to": "0221", "call_id": CALL_ID,
         "peer": "777xxxxx@fpbx.de"}, AT,
    )
    assert parsed.events[0].kind == "answered"
    assert parsed.events[0].answered_by == "777xxxxx@fpbx.de"
    assert parsed.events[0].from_number == "anonymous"


@pytest.mark.parametrize("kind", placetel.HANGUP_TYPES)
def test_hungup_keeps_type_and_duration(kind: str) -> None:
    parsed = placetel.parse(
        {"event": "HungUp", "from": "1", "to": "2", "call_id": CALL_ID, "type": kind,
         "duration": "42"}, AT,
    )
    event = parsed.events[0]
    assert (event.kind, event.end_cause, event.duration) == ("ended", kind, 42)


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({}, "missing field 'event'"),
        ({"event": "Ringing", "call_id": CALL_ID}, "unknown event 'Ringing'"),
        ({"event": "HungUp"}, "missing field 'call_id'"),
        ({"event": "HungUp", "call_id": "has space"}, "field 'call_id'"),
        ({"event": "HungUp", "call_id": CALL_ID, "duration": "-3"}, "field 'duration'"),
        ({"event": "HungUp", "call_id": CALL_ID, "duration": "1.5"}, "field 'duration'"),
        ({"event": "HungUp", "call_id": CALL_ID, "type": "not a type!"}, "field 'type'"),
        ({"event": "IncomingCall", "call_id": CALL_ID, "from": "0\x00"}, "field 'from'"),
        ({"event": "IncomingCall", "call_id": "x" * 256}, "field 'call_id'"),
    ],
)
def test_malformed_deliveries_say_what_is_wrong(form: dict[str, str], message: str) -> None:
    with pytest.raises(BadPayload, match=message):
        placetel.parse(form, AT)


# --- outgoing calls, directions and every documented hangup type ---------------------------


def test_outgoing_call_is_a_dialling_outbound_event_naming_the_calling_sip_user() -> None:
    parsed = placetel.parse(
        {"event": "OutgoingCall", "from": "022129191999", "to": "23", "call_id": CALL_ID,
         "peer": "7777abcdefg@fpbx.de", "direction": "out"}, AT,
    )
    (event,) = parsed.events
    assert (parsed.kind, parsed.dedupe_key) == ("OutgoingCall", f"{CALL_ID}:OutgoingCall")
    assert (event.kind, event.direction, event.from_number, event.to_number) == (
        "dialling", "outbound", "022129191999", "23",
    )
    assert placetel.calling_peer(parsed) == event.answered_by == "7777abcdefg@fpbx.de"


def test_outgoing_call_without_direction_is_still_outbound() -> None:
    parsed = placetel.parse({"event": "OutgoingCall", "call_id": CALL_ID}, AT)
    assert parsed.events[0].direction == "outbound"
    assert placetel.calling_peer(parsed) is None


@pytest.mark.parametrize(
    ("direction", "kind", "cause"),
    [
        ("in", "voicemail", "voicemail"), ("in", "missed", "missed"),
        ("in", "blocked", "blocked"), ("in", "accepted", "accepted"),
        ("out", "accepted", "accepted"), ("out", "voicemail", "voicemail"),
        ("out", "busy", "busy"), ("out", "canceled", "cancelled"),
        ("out", "unavailable", "unavailable"), ("out", "congestion", "congestion"),
        # never "missed" for an outbound call: the callee did not pick up
        ("out", "missed", "no_answer"),
        # not documented for inbound calls; a caller cancelling is a missed call
        ("in", "canceled", "missed"),
        ("in", "busy", "busy"),
    ],
)
def test_each_hangup_type_has_its_own_end_cause(direction: str, kind: str, cause: str) -> None:
    (event,) = placetel.parse(
        {"event": "HungUp", "call_id": CALL_ID, "type": kind, "duration": "0",
         "direction": direction}, AT,
    ).events
    assert event.end_cause == cause
    assert event.direction == {"in": "inbound", "out": "outbound"}[direction]


@pytest.mark.parametrize("kind", placetel.OUTBOUND_HANGUP_TYPES)
def test_a_hangup_type_only_outbound_calls_have_makes_a_hangup_without_direction_outbound(
    kind: str,
) -> None:
    (event,) = placetel.parse({"event": "HungUp", "call_id": CALL_ID, "type": kind}, AT).events
    assert event.direction == "outbound"


def test_every_event_carries_its_direction() -> None:
    directions = {
        name: placetel.parse({"event": name, "call_id": CALL_ID}, AT).events[0].direction
        for name in placetel.EVENTS
    }
    assert directions == {"IncomingCall": "inbound", "OutgoingCall": "outbound",
                          "CallAccepted": "inbound", "HungUp": "inbound"}


def test_a_direction_that_is_neither_in_nor_out_is_refused() -> None:
    with pytest.raises(BadPayload, match="field 'direction' must be 'in' or 'out'"):
        placetel.parse({"event": "HungUp", "call_id": CALL_ID, "direction": "sideways"}, AT)
