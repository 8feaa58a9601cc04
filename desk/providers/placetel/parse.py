"""Placetel Notify adapter: form-encoded IncomingCall / OutgoingCall / CallAccepted / HungUp.

Pure: takes the decoded form and the time the delivery arrived, returns a ``Parsed`` or
raises ``BadPayload`` with a message for whoever reads Placetel's delivery log. Placetel
sends no timestamps and no delivery id, so the arrival time stands in for ``at`` and the
pair (call_id, event) is the dedupe key: Placetel sends each event once per call and
retries a failed delivery with the same body.

Facts relied on, from the README of the public repository ``Placetel/call-control-notify-api``
(commit 49abb20, March 2025; sections "Our POST request" and "Hangup types"):

* every event carries ``event``, ``from``, ``to``, ``call_id`` and ``direction`` (``in`` /
  ``out``; ``HungUp`` carries either);
* ``OutgoingCall`` (``direction=out``): ``from`` is the caller id of the calling party,
  ``peer`` the calling SIP user (e.g. ``7777abcdefg@fpbx.de``), which is how the desk finds
  the agent. It is sent only when that SIP user's caller id is enabled for notifications;
  anonymous outgoing calls are not notified. No ``CallAccepted`` follows it (the README:
  "Only for incoming calls"; issue #16), so an outgoing call stays "dialling" until its
  ``HungUp``, whose ``duration`` (seconds of an *accepted* call) dates the answer;
* ``CallAccepted`` (incoming only): ``peer`` is the SIP peer that answered;
* hangup ``type``: ``voicemail``, ``missed``, ``blocked``, ``accepted``, and for outbound calls
  only ``busy``, ``canceled``, ``unavailable``, ``congestion``;
* for internal calls ``from`` and ``to`` are SIP ids.

How hangup types become the desk's end causes (``desk.domain.outcomes``): each keeps its own
word, except ``canceled``, spelt ``cancelled`` like every other provider's cause, and
``missed`` on an outbound call, which is ``no_answer`` (the callee did not pick up; "missed"
is the desk's word for an inbound caller nobody served). A ``canceled`` inbound call (not
documented, but harmless to read) is the caller giving up: ``missed``. A ``HungUp`` without
``direction`` is read as inbound unless its type exists only for outbound calls.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime

from desk.domain.events import BadPayload, CallEvent, EventKind, Parsed

PROVIDER = "placetel"
EVENTS: dict[str, EventKind] = {
    "IncomingCall": "ringing",
    "OutgoingCall": "dialling",
    "CallAccepted": "answered",
    "HungUp": "ended",
}
HANGUP_TYPES = ("voicemail", "missed", "blocked", "accepted")
"""Hangup types of any call."""
OUTBOUND_HANGUP_TYPES = ("busy", "canceled", "unavailable", "congestion")
"""Hangup types Placetel documents for outbound calls only."""
DIRECTIONS = {"in": "inbound", "out": "outbound"}
# Which direction an event has when it does not say: Placetel documents one per event.
_DEFAULT_DIRECTION = {"IncomingCall": "in", "OutgoingCall": "out", "CallAccepted": "in"}

# Placetel's call ids are SHA-256 in hex; accept any token of that character class so a
# format change on their side does not turn live calls into rejected deliveries.
_CALL_ID = re.compile(r"^[A-Za-z0-9._:@-]{1,255}$")
_NUMBER = re.compile(r"^[^\x00-\x1f\x7f]{1,64}$")
_TYPE = re.compile(r"^[A-Za-z_-]{1,32}$")
_EVENT_LIST = "IncomingCall, OutgoingCall, CallAccepted or HungUp"


def _text(form: Mapping[str, str], name: str, pattern: re.Pattern[str], what: str) -> str | None:
    value = form.get(name)
    if value is None or value == "":
        return None
    value = value.strip()
    if not pattern.match(value):
        raise BadPayload(f"field '{name}' is not {what}: {value[:80]!r}")
    return value


def _direction(form: Mapping[str, str], event: str, hangup: str | None) -> str:
    raw = (form.get("direction") or "").strip().lower()
    if raw:
        if raw not in DIRECTIONS:
            raise BadPayload(f"field 'direction' must be 'in' or 'out', not {raw[:20]!r}")
        return DIRECTIONS[raw]
    if hangup in OUTBOUND_HANGUP_TYPES:
        return "outbound"
    return DIRECTIONS[_DEFAULT_DIRECTION.get(event, "in")]


def end_cause(hangup: str | None, direction: str) -> str | None:
    """The desk's end cause for Placetel's hangup ``type`` on a call going ``direction``."""
    if hangup is None:
        return None
    if hangup == "canceled":
        return "cancelled" if direction == "outbound" else "missed"
    if hangup == "missed" and direction == "outbound":
        return "no_answer"
    # Unknown types are kept as sent (lower case): a type added later still shows its word.
    return hangup


def parse(form: Mapping[str, str], received_at: datetime) -> Parsed:
    """Understand one Notify delivery. Raises ``BadPayload`` saying what is wrong."""
    event = (form.get("event") or "").strip()
    if not event:
        raise BadPayload(
            f"missing field 'event' (expected {_EVENT_LIST}); is this endpoint set as a "
            "Placetel Notify/Call Control URL?"
        )
    if event not in EVENTS:
        raise BadPayload(f"unknown event {event[:40]!r}; expected {_EVENT_LIST}")
    call_id = _text(form, "call_id", _CALL_ID, "a Placetel call id")
    if call_id is None:
        raise BadPayload(f"missing field 'call_id' on {event}")

    from_number = _text(form, "from", _NUMBER, "a phone number")
    to_number = _text(form, "to", _NUMBER, "a phone number")
    peer: str | None = None
    hangup: str | None = None
    duration: int | None = None

    if event in ("CallAccepted", "OutgoingCall"):
        # The answering peer of an incoming call; the calling SIP user of an outgoing one.
        peer = _text(form, "peer", _NUMBER, "a SIP peer")
    elif event == "HungUp":
        all_types = ", ".join(HANGUP_TYPES + OUTBOUND_HANGUP_TYPES)
        hangup = _text(form, "type", _TYPE, f"a hangup type ({all_types})")
        hangup = hangup.lower() if hangup else None
        raw_duration = (form.get("duration") or "").strip()
        if raw_duration:
            # isascii: str.isdigit() also takes "²", which int() refuses
            if not (raw_duration.isascii() and raw_duration.isdigit()) or len(raw_duration) > 7:
                raise BadPayload(
                    f"field 'duration' must be whole seconds (0 or more), not {raw_duration[:20]!r}"
                )
            duration = int(raw_duration)
    direction = _direction(form, event, hangup)

    return Parsed(
        kind=event,
        provider_call_id=call_id,
        dedupe_key=f"{call_id}:{event}",
        events=(
            CallEvent(
                provider=PROVIDER,
                provider_call_id=call_id,
                kind=EVENTS[event],
                at=received_at,
                direction=direction,
                from_number=from_number,
                to_number=to_number,
                answered_by=peer,
                end_cause=end_cause(hangup, direction),
                duration=duration,
            ),
        ),
    )


def calling_peer(parsed: Parsed) -> str | None:
    """The SIP user placing an ``OutgoingCall``: the agent the call belongs to."""
    if parsed.kind != "OutgoingCall" or not parsed.events:
        return None
    return parsed.events[0].answered_by
