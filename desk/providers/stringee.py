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
from typing import Any, Literal

from desk.events import BadPayload, CallEvent, Parsed
from desk.routing import DEFAULT_RING_TIME, Decision

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
RECORD_FORMATS = ("mp3", "wav", "mp4")
# appToPhone=auto: a "to" that is an integer above this is a phone number, else a user id.
AUTO_PHONE_ABOVE = 600000

_CALL_ID = re.compile(r"^[A-Za-z0-9._:@-]{1,255}$")
_NUMBER = re.compile(r"^[^\x00-\x1f\x7f]{1,64}$")
_WHOLE = re.compile(r"^-?[0-9]{1,7}$")
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


# --- SCCO helper -------------------------------------------------------------------------


def _option(params: Mapping[str, str], name: str, allowed: tuple[str, ...], default: str) -> str:
    raw = params.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value not in allowed:
        raise BadPayload(
            f"parameter '{name}' must be {', '.join(allowed[:-1])} or {allowed[-1]}, "
            f"not {raw[:40]!r}"
        )
    return value


def _seconds(params: Mapping[str, str], name: str, default: int, minimum: int, rule: str) -> int:
    raw = params.get(name)
    if raw is None or raw.strip() == "":
        return default
    text = raw.strip()
    if not _WHOLE.match(text) or int(text) < minimum:
        raise BadPayload(f"parameter '{name}' must be {rule}, not {raw[:40]!r}")
    return int(text)


def _required(params: Mapping[str, str], name: str, why: str) -> str:
    value = (params.get(name) or "").strip()
    if not value:
        raise BadPayload(f"parameter '{name}' is required: {why}")
    return value


def _recording(params: Mapping[str, str]) -> list[dict[str, Any]]:
    """The helper's leading record action, or nothing; recordFormat is checked either way."""
    record = _option(params, "record", ("true", "false"), "false") == "true"
    fmt = _option(params, "recordFormat", RECORD_FORMATS, "mp3")
    return [_record_action(fmt)] if record else []


def _record_action(fmt: str) -> dict[str, Any]:
    return {"action": "record", "eventUrl": "", "format": fmt}


def _project_scco(params: Mapping[str, str]) -> list[dict[str, Any]]:
    app_to_phone = _option(params, "appToPhone", ("true", "false", "auto"), "false")
    caller, callee = params.get("from"), params.get("to")
    if app_to_phone == "auto":
        if callee is None:
            raise BadPayload("appToPhone=auto decides by the answer URL's 'to' parameter, "
                             "which is missing")
        # "An integer greater than 600000" is a phone number; any other string a user id.
        to_phone = callee.isascii() and callee.isdigit() and int(callee) > AUTO_PHONE_ABOVE
    else:
        to_phone = app_to_phone == "true"
    timeout = _seconds(params, "timeout", 60, 1, "whole seconds greater than 0")
    max_connect = _seconds(
        params, "maxConnectTime", -1, -1, "-1 (no limit) or whole seconds from 0"
    )
    peer_to_peer = _option(params, "peerToPeerCall", ("true", "false"), "true") == "true"
    scco = _recording(params)
    scco.append({
        "action": "connect",
        "from": {"type": "internal", "number": caller, "alias": caller},
        "to": {"type": "external" if to_phone else "internal", "number": callee, "alias": callee},
        "customData": params.get("custom"),
        "timeout": timeout,
        # The helper's example writes the default "no limit" (-1) as 0.
        "maxConnectTime": max(max_connect, 0),
        # Media to a phone, or media being recorded, has to pass through Stringee's servers:
        # the helper's example turns peer-to-peer off for an app-to-phone call with record.
        "peerToPeerCall": peer_to_peer and not to_phone and not scco,
    })
    return scco


def _number_scco(params: Mapping[str, str]) -> list[dict[str, Any]]:
    to_phone = _option(params, "phoneToPhone", ("true", "false"), "false") == "true"
    to_number = _required(
        params, "to_number",
        "the user id to ring (phoneToPhone=false) or the phone number to call (phoneToPhone=true)",
    )
    scco = _recording(params)
    if to_phone:
        stringee_number = _required(
            params, "stringeeNumber",
            "with phoneToPhone=true the call goes out from a number bought on Stringee",
        )
        caller: dict[str, Any] = {"type": "external", "number": None, "alias": stringee_number}
        custom = None  # custom data is only pushed to a client app
    else:
        caller = {"type": "external", "number": params.get("from"), "alias": params.get("from")}
        custom = params.get("custom")
    scco.append({
        "action": "connect",
        "from": caller,
        # "Call_to_" is what the helper's examples show as the alias, for both kinds of call.
        "to": {"type": "external" if to_phone else "internal", "number": to_number,
               "alias": "Call_to_"},
        "continueOnFail": False,
        "onFailEventUrl": "",
        "customData": custom,
    })
    return scco


def scco_from_helper_params(
    kind: Literal["project", "number"], params: Mapping[str, str]
) -> list[dict[str, Any]]:
    """The SCCO Stringee's helper returns for ``params`` on its project or number answer URL.

    Raises ``BadPayload`` (a ``ValueError``) naming the parameter and its allowed values.
    """
    if kind == "project":
        return _project_scco(params)
    if kind == "number":
        return _number_scco(params)
    raise ValueError(f"kind must be 'project' or 'number', not {kind!r}")


# --- SCCO for the desk's own routing -----------------------------------------------------


def scco_for_decision(decision: Decision, params: Mapping[str, str]) -> list[dict[str, Any]]:
    """The SCCO that carries out ``decision`` for the answer-URL request ``params``.

    Stringee's ``connect`` rings one party, so a ring decision becomes one connect per agent
    (by Stringee user id) in decision order, each ringing for its step's ring time and
    continuing to the next on failure; agents of one step therefore ring one after another.
    Stringee's documents give no action for voicemail, queues or rejecting, so every other
    decision is an empty SCCO: nothing to connect, the call ends.
    """
    if decision.action != "ring":
        return []
    caller, called = params.get("from"), params.get("to")
    from_type = "internal" if (params.get("fromInternal") or "").lower() == "true" else "external"
    legs: list[tuple[dict[str, Any], dict[str, Any], int]] = []
    for step in decision.steps:
        ring_time = step.ring_time or DEFAULT_RING_TIME
        for agent in step.agents:
            if not agent.stringee_user_id:
                raise ValueError(
                    f"agent {agent.name!r} (id {agent.id}) has no Stringee user id; Stringee "
                    "cannot ring them (route with reachable_by='stringee_user_id')"
                )
            legs.append((
                {"type": from_type, "number": caller, "alias": caller},
                {"type": "internal", "number": agent.stringee_user_id, "alias": called},
                ring_time,
            ))
        for number in step.numbers:
            # A phone is called out from our Stringee number, shown as the caller's alias.
            legs.append((
                {"type": "external", "number": caller, "alias": called},
                {"type": "external", "number": number, "alias": number},
                ring_time,
            ))
    scco = [_record_action("mp3")] if decision.record else []
    for index, (source, target, ring_time) in enumerate(legs):
        scco.append({
            "action": "connect",
            "from": source,
            "to": target,
            "customData": params.get("custom"),
            "timeout": ring_time,
            "continueOnFail": index < len(legs) - 1,
            "onFailEventUrl": "",
        })
    return scco
