"""Placetel Notify adapter: form-encoded IncomingCall / CallAccepted / HungUp → CallEvents.

Pure: takes the decoded form and the time the delivery arrived, returns a ``Parsed`` or
raises ``BadPayload`` with a message for whoever reads Placetel's delivery log. Placetel
sends no timestamps and no delivery id, so the arrival time stands in for ``at`` and the
pair (call_id, event) is the dedupe key: Placetel sends each event once per call and
retries a failed delivery with the same body.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime

from desk.domain.events import BadPayload, CallEvent, Parsed

PROVIDER = "placetel"
EVENTS = {"IncomingCall": "ringing", "CallAccepted": "answered", "HungUp": "ended"}
HANGUP_TYPES = ("voicemail", "missed", "blocked", "accepted")

# Placetel's call ids are SHA-256 in hex; accept any token of that character class so a
# format change on their side does not turn live calls into rejected deliveries.
_CALL_ID = re.compile(r"^[A-Za-z0-9._:@-]{1,255}$")
_NUMBER = re.compile(r"^[^\x00-\x1f\x7f]{1,64}$")
_TYPE = re.compile(r"^[A-Za-z_-]{1,32}$")


def _text(form: Mapping[str, str], name: str, pattern: re.Pattern[str], what: str) -> str | None:
    value = form.get(name)
    if value is None or value == "":
        return None
    value = value.strip()
    if not pattern.match(value):
        raise BadPayload(f"field '{name}' is not {what}: {value[:80]!r}")
    return value


def parse(form: Mapping[str, str], received_at: datetime) -> Parsed:
    """Understand one Notify delivery. Raises ``BadPayload`` saying what is wrong."""
    event = (form.get("event") or "").strip()
    if not event:
        raise BadPayload(
            "missing field 'event' (expected IncomingCall, CallAccepted or HungUp); "
            "is this endpoint set as a Placetel Notify/Call Control URL?"
        )
    if event not in EVENTS:
        raise BadPayload(
            f"unknown event {event[:40]!r}; expected IncomingCall, CallAccepted or HungUp"
        )
    call_id = _text(form, "call_id", _CALL_ID, "a Placetel call id")
    if call_id is None:
        raise BadPayload(f"missing field 'call_id' on {event}")

    from_number = _text(form, "from", _NUMBER, "a phone number")
    to_number = _text(form, "to", _NUMBER, "a phone number")
    answered_by = end_cause = None
    duration: int | None = None

    if event == "CallAccepted":
        answered_by = _text(form, "peer", _NUMBER, "a SIP peer")
    elif event == "HungUp":
        end_cause = _text(form, "type", _TYPE, f"a hangup type ({', '.join(HANGUP_TYPES)})")
        end_cause = end_cause.lower() if end_cause else None
        raw_duration = (form.get("duration") or "").strip()
        if raw_duration:
            if not raw_duration.isdigit() or len(raw_duration) > 7:
                raise BadPayload(
                    f"field 'duration' must be whole seconds (0 or more), not {raw_duration[:20]!r}"
                )
            duration = int(raw_duration)

    kind = EVENTS[event]
    return Parsed(
        kind=event,
        provider_call_id=call_id,
        dedupe_key=f"{call_id}:{event}",
        events=(
            CallEvent(
                provider=PROVIDER,
                provider_call_id=call_id,
                kind=kind,  # type: ignore[arg-type]
                at=received_at,
                direction="inbound",
                from_number=from_number,
                to_number=to_number,
                answered_by=answered_by,
                end_cause=end_cause,
                duration=duration,
            ),
        ),
    )
