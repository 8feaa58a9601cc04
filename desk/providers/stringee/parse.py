"""Stringee adapter: call events and answer-URL requests → CallEvents. Pure, like every
adapter: no request, no app, no database. The SCCO answers are in ``answers``.

* ``parse_event`` reads one JSON call event POSTed to the project's event_url. Stringee
  stamps every event, so ``timestamp_ms`` is ``at``; (call_id, call_status) is the dedupe key.
* ``parse_agent_call`` reads a project answer URL request: an app user (an agent) placing a
  call. It becomes an outbound "dialling" event on that agent, so the call is on the agent's
  board before Stringee's first event arrives.
* ``parse_number_call`` reads a number answer URL request carrying ``callId``: a phone
  calling a Stringee number becomes an inbound "ringing" event, so the agents the desk's
  answer rings see it ringing for them at once.

Facts relied on:

* Call events (https://developer.stringee.com/docs/server/call-events): ``call_id``,
  ``call_status`` (created, started, ringing, answered, ended, agentEnded), ``from``/``to``
  objects (``number``, ``alias``, ``type`` internal/external, ``is_online``),
  ``timestamp_ms``, ``request_from_user_id`` ("Request from this User ID": the app user who
  placed the call), ``clientCustomData``; the "End Call Events" sample adds
  ``callCreatedReason`` (``CLIENT_MAKE_CALL``), ``endCallCause`` (a SIP status line,
  ``486 Busy Here``), ``endedBy`` (``EXTERNAL``), ``callType``, ``duration`` and
  ``answerDuration``. The two samples are ``tests/providers/stringee/fixtures/``.
* Answer URLs (https://developer.stringee.com/docs/server/event-url-and-answer-url, and
  ``answer_url/php/project_answer_url.php`` in ``stringeecom/server-samples``): the project
  answer URL is asked when a client calls ``makeCall``, with ``from``, ``to``, ``custom``,
  ``fromInternal=true``, ``userId``, ``projectId``, ``callId``; the number answer URL when a
  phone calls a Stringee number, with ``from``, ``to``, ``uuid``, ``fromInternal=false``.
  The desk takes the answer URL's ``callId`` to be the events' ``call_id`` (both are
  ``call-vn-…`` ids in those documents).
  ``callId`` on the *number* answer URL is in the answer-URL samples of the Stringee call
  API description this desk was first specified from (``from_external`` requests), but not
  in the public page's 1.2 sample (``tests/providers/stringee/fixtures/number_answer.query``,
  verbatim): ``parse_number_call`` therefore only records an offer when one is sent, and a
  number call without it appears with its first call event, as before.

How a call's end becomes the desk's end cause (``desk.domain.outcomes``): a call someone
talked on keeps Stringee's text (its outcome is "answered"), and so does an unanswered
inbound call (its outcome is "missed" whatever SIP said). An unanswered *outbound* call,
the agent's own, is named from the SIP status: 486/600 ``busy``, 480/408 ``no_answer``, 603
``rejected``, 487 ``cancelled``, 503 ``congestion``, any other 4xx-6xx ``failed``; without a
status, ``cancelled`` when ``endedBy`` is ``INTERNAL`` (the app user hung up first; only
``EXTERNAL`` appears in Stringee's sample, ``INTERNAL`` is read as its counterpart), else
``no_answer``. An outbound call is never "missed".
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from desk.domain.events import BadPayload, CallEvent, EventKind, Parsed

PROVIDER = "stringee"

# ``agentEnded`` ends one agent's leg, not the call: the call's own ``ended`` follows, and
# the desk's state machine cannot undo an early "ended", so it is logged but changes nothing.
STATUSES: dict[str, EventKind | None] = {
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
_SIP_STATUS = re.compile(r"^\s*([1-6][0-9]{2})\b")
# SIP status codes of an outbound call nobody answered → the desk's end cause.
SIP_CAUSES = {
    486: "busy", 600: "busy",
    480: "no_answer", 408: "no_answer",
    603: "rejected",
    487: "cancelled",
    503: "congestion",
}


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


def end_cause(
    cause: str | None, ended_by: str | None, direction: str | None, answered: bool
) -> str | None:
    """The desk's end cause for Stringee's ``endCallCause`` and ``endedBy`` (module docstring)."""
    text = (cause.strip()[:64] or None) if cause else None
    if answered or direction != "outbound":
        return text
    match = _SIP_STATUS.match(text or "")
    code = int(match.group(1)) if match else None
    if code in SIP_CAUSES:
        return SIP_CAUSES[code]
    if code is not None and code >= 400:
        return "failed"
    if (ended_by or "").strip().upper() == "INTERNAL":
        return "cancelled"
    return "no_answer"


def _user_id(body: Mapping[str, Any]) -> str | None:
    """``request_from_user_id``: the app user (an agent) who placed the call, if any."""
    user = body.get("request_from_user_id")
    if user is None or user == "":
        return None
    if not isinstance(user, str) or not _NUMBER.match(user.strip()):
        raise BadPayload(
            f"field 'request_from_user_id' must be a Stringee user id, not {str(user)[:40]!r}"
        )
    return user.strip()


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
    caller_agent = _user_id(body)
    at = _timestamp(body, received_at)
    kind = STATUSES[status]
    dedupe_key = f"{call_id}:{status}"
    if kind is None:
        return Parsed(kind=status, provider_call_id=call_id, dedupe_key=dedupe_key)

    # A call an app user placed is that agent's outbound call, whoever it rings; otherwise
    # the agent is the app user on the call: the callee of a phone-to-app call, the caller
    # of an app-to-phone call.
    if caller_agent is not None:
        direction: str | None = "outbound"
    else:
        direction = {"internal": "outbound", "external": "inbound"}.get(from_type or "")

    cause: str | None = None
    talked: int | None = None
    if kind == "ended":
        raw_cause = body.get("endCallCause")
        if raw_cause is not None and not isinstance(raw_cause, str):
            raise BadPayload(
                f"field 'endCallCause' must be a string, not {str(raw_cause)[:40]!r}"
            )
        ended_by = body.get("endedBy")
        _whole_field(body, "duration", 10**7)  # validated; it includes the ringing time
        # The desk's duration is talk time, as Placetel's is: Stringee's answerDuration.
        talked = _whole_field(body, "answerDuration", 10**7)
        cause = end_cause(raw_cause, ended_by if isinstance(ended_by, str) else None,
                          direction, (talked or 0) > 0)

    answered = kind == "answered" or (kind == "ended" and (talked or 0) > 0)
    if caller_agent is not None:
        agent: str | None = caller_agent
    else:
        agent = to_number if to_type == "internal" else (
            from_number if from_type == "internal" else None)
        agent = agent if answered else None

    event = CallEvent(
        provider=PROVIDER,
        provider_call_id=call_id,
        kind=kind,
        at=at,
        direction=direction,
        from_number=from_number,
        to_number=to_number,
        answered_by=agent,
        end_cause=cause,
        duration=talked,
    )
    return Parsed(kind=status, provider_call_id=call_id, dedupe_key=dedupe_key, events=(event,))


# --- the project answer URL: an agent placing a call -------------------------------------


def _param(params: Mapping[str, str], name: str, pattern: re.Pattern[str], what: str) -> str | None:
    value = (params.get(name) or "").strip()
    if not value:
        return None
    if not pattern.match(value):
        raise BadPayload(f"parameter '{name}' is not {what}: {value[:80]!r}")
    return value


def parse_agent_call(params: Mapping[str, str], received_at: datetime) -> Parsed | None:
    """The project answer URL request as the start of ``userId``'s outbound call.

    None when the request names no ``callId`` or no ``userId`` (nothing to correlate the
    call events with, or nobody to put the call on). Raises ``BadPayload`` for values that
    cannot be an id or a number.
    """
    call_id = _param(params, "callId", _CALL_ID, "a Stringee call id")
    user = _param(params, "userId", _NUMBER, "a Stringee user id")
    if call_id is None or user is None:
        return None
    event = CallEvent(
        provider=PROVIDER,
        provider_call_id=call_id,
        kind="dialling",
        at=received_at,
        direction="outbound",
        from_number=_param(params, "from", _NUMBER, "a phone number or user id"),
        to_number=_param(params, "to", _NUMBER, "a phone number or user id"),
        answered_by=user,
    )
    return Parsed(kind="answer/project", provider_call_id=call_id,
                  dedupe_key=f"{call_id}:answer/project", events=(event,))


def parse_number_call(params: Mapping[str, str], received_at: datetime) -> Parsed | None:
    """The number answer URL request as an inbound call ringing (the desk's answer rings
    its agents), so the call is on the boards, offered to them, before Stringee's events.

    None when the request names no ``callId`` to correlate the events with. Raises
    ``BadPayload`` for values that cannot be an id or a number.
    """
    call_id = _param(params, "callId", _CALL_ID, "a Stringee call id")
    if call_id is None:
        return None
    event = CallEvent(
        provider=PROVIDER,
        provider_call_id=call_id,
        kind="ringing",
        at=received_at,
        direction="inbound",
        from_number=_param(params, "from", _NUMBER, "a phone number or user id"),
        to_number=_param(params, "to", _NUMBER, "a phone number or user id"),
    )
    return Parsed(kind="answer/number", provider_call_id=call_id,
                  dedupe_key=f"{call_id}:answer/number", events=(event,))


def agent_of(parsed: Parsed) -> str | None:
    """The app user who placed the call, when the delivery says so: the agent it is on."""
    for event in parsed.events:
        if event.direction == "outbound" and event.answered_by:
            return event.answered_by
    return None

