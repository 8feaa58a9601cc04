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
