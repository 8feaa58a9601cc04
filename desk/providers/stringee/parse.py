"""Stringee adapter: call events → CallEvents, and the SCCO answers for Stringee's answer URLs.

Pure, like every adapter: no request, no app, no database.

* ``parse_event`` reads one JSON call event POSTed to the project's event_url (``call_id``,
  ``call_status``, ``from``/``to`` objects, ``timestamp_ms``; on ``ended`` also
  ``endCallCause``, ``duration``, ``answerDuration``). Stringee stamps every event, so
  ``timestamp_ms`` is ``at``; (call_id, call_status) is the dedupe key.
* ``scco_from_helper_params`` answers an answer-URL request the way Stringee's SCCO helper
  (``simple_project_answer_url`` / ``simple_number_answer_url``) would for the same GET
  parameters, so a project set up with the helper keeps working when pointed at the desk.
* ``scco_for_decision`` answers with the desk's own routing ``Decision`` when the answer
  URL carries no helper parameters.

Both SCCO functions take the answer URL's GET parameters as one mapping: Stringee's own
(``from``, ``to``, ``custom``, ``fromInternal``, ...) together with the helper's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from desk.domain.events import BadPayload, CallEvent, Parsed

PROVIDER = "stringee"

# ``agentEnded`` ends one agent's leg, not the call: the call's own ``ended`` follows, and
# the desk's state machine cannot undo an early "ended", so it is logged but changes nothing.
STATUSES: dict[str, str | None] = {
    "created": "dialling",
    "started": "dialling",
    "ringing": "ringing",
    "answered": "answered",
    "ended": "ended",
    "agentEnded": None,
}

PROJECT_HELPER_PARAMS = (
    "appToPhone", "timeout", "maxConnectTime", "peerToPeerCall", "record", "recordFormat",
)
NUMBER_HELPER_PARAMS = (
    "phoneToPhone", "to_number", "custom", "stringeeNumber", "record", "recordFormat",
)
# appToPhone=auto: a "to" that is an integer above this is a phone number, else a user id.

_CALL_ID = re.compile(r"^[A-Za-z0-9._:@-]{1,255}$")
_NUMBER = re.compile(r"^[^\x00-\x1f\x7f]{1,64}$")
_STATUS_LIST = ", ".join(STATUSES)


# --- call events -------------------------------------------------------------------------


def _whole_field(body: Mapping[str, Any], name: str, limit: int) -> int | None:
    value = body.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= limit:
        raise BadPayload(f"field '{name}' must be a whole number from 0, not {str(value)[:30]!r}")
    return value


def _party(body: Mapping[str, Any], name: str) -> tuple[str | None, str | None]:
    """(number, type) of the ``from`` or ``to`` object; type is internal, external or None."""
    party = body.get(name)
    if party is None:
        return None, None
    if not isinstance(party, Mapping):
        raise BadPayload(
            f"field '{name}' must be an object with number, alias, type; got {str(party)[:40]!r}"
        )
    number = party.get("number")
    if isinstance(number, int) and not isinstance(number, bool):
        number = str(number)  # numbers arrive as JSON numbers now and then
    if number is not None and not isinstance(number, str):
        raise BadPayload(f"field '{name}.number' must be a string, not {str(number)[:40]!r}")
    number = number.strip() if number else None
    if number and not _NUMBER.match(number):
        raise BadPayload(
            f"field '{name}.number' is not a phone number or user id: {number[:80]!r}"
        )
    kind = party.get("type")
    return number or None, kind if kind in ("internal", "external") else None


def _timestamp(body: Mapping[str, Any], received_at: datetime) -> datetime:
    millis = _whole_field(body, "timestamp_ms", 10**14)
    if millis is None:
        return received_at
    return datetime.fromtimestamp(millis // 1000, UTC) + timedelta(milliseconds=millis % 1000)


def parse_event(body: Mapping[str, Any], received_at: datetime) -> Parsed:
    """Understand one Stringee call event. Raises ``BadPayload`` saying what is wrong."""
    if not isinstance(body, Mapping):
        raise BadPayload("expected a JSON object (a Stringee call event), got a JSON "
                         f"{type(body).__name__}")
    status = body.get("call_status")
    if not isinstance(status, str) or not status.strip():
        raise BadPayload(
            f"missing field 'call_status' (expected {_STATUS_LIST}); is this endpoint set as "
            "the Stringee project's event_url?"
        )
    status = status.strip()
    if status not in STATUSES:
        raise BadPayload(f"unknown call_status {status[:40]!r}; expected {_STATUS_LIST}")
    call_id = body.get("call_id")
    if not isinstance(call_id, str) or not call_id.strip():
        raise BadPayload(f"missing field 'call_id' on call_status {status}")
    call_id = call_id.strip()
    if not _CALL_ID.match(call_id):
        raise BadPayload(f"field 'call_id' is not a Stringee call id: {call_id[:80]!r}")

    from_number, from_type = _party(body, "from")
    to_number, to_type = _party(body, "to")
    at = _timestamp(body, received_at)
    kind = STATUSES[status]
    dedupe_key = f"{call_id}:{status}"
    if kind is None:
        return Parsed(kind=status, provider_call_id=call_id, dedupe_key=dedupe_key)

    end_cause: str | None = None
    talked: int | None = None
    if kind == "ended":
        cause = body.get("endCallCause")
        if cause is not None and not isinstance(cause, str):
            raise BadPayload(f"field 'endCallCause' must be a string, not {str(cause)[:40]!r}")
        end_cause = (cause.strip()[:64] or None) if cause else None  # e.g. "486 Busy Here"
        _whole_field(body, "duration", 10**7)  # validated; it includes the ringing time
        # The desk's duration is talk time, as Placetel's is: Stringee's answerDuration.
        talked = _whole_field(body, "answerDuration", 10**7)

    # The agent is the app user on the call: the callee of a phone-to-app or app-to-app
    # call, the caller of an app-to-phone call.
    agent = to_number if to_type == "internal" else from_number if from_type == "internal" else None
    answered = kind == "answered" or (kind == "ended" and (talked or 0) > 0)
    direction = {"internal": "outbound", "external": "inbound"}.get(from_type or "")

    event = CallEvent(
        provider=PROVIDER,
        provider_call_id=call_id,
        kind=kind,  # type: ignore[arg-type]
        at=at,
        direction=direction,
        from_number=from_number,
        to_number=to_number,
        answered_by=agent if answered else None,
        end_cause=end_cause,
        duration=talked,
    )
    return Parsed(kind=status, provider_call_id=call_id, dedupe_key=dedupe_key, events=(event,))

