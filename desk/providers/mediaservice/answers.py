"""The JSON the mediaservice waits for in a callback's reply: ``newCall``, ``callEvent``,
``newRemoteCall`` and ``getCallIdentifier`` answers, and a supervisor's silent monitoring
leg added to one (``with_monitor``). Pure: a routing decision in, JSON out.
"""

from __future__ import annotations

import json
import re
from typing import Any

from desk.providers.mediaservice.parse import (
    DEFAULT_MAX_RING_TIME,
    REFERENCE_KEY,
    MediaserviceParsed,
)

_SIP_URI = re.compile(r"^sips?:[^\s\x00-\x1f\x7f]{1,250}$")


def session_reference(call_id: str) -> dict[str, str]:
    """The ``sessionReferenceId`` the desk sets so later callbacks name its call."""
    return {REFERENCE_KEY: call_id}


def _sip_address(value: str, what: str) -> str:
    if not _SIP_URI.match(value):
        raise ValueError(f"{what} must be a sip: or sips: URI, not {value[:80]!r}")
    return value


def _ring_time(value: float) -> float | int:
    if not 0 < value <= 600:
        raise ValueError(f"max_ring_time must be between 0 and 600 seconds, not {value!r}")
    return int(value) if float(value).is_integer() else value


def _expect(parsed: MediaserviceParsed, callback: str) -> str:
    if parsed.callback != callback or parsed.call_ref is None:
        raise ValueError(f"expected a parsed {callback} with a session, got {parsed.callback}")
    return parsed.call_ref


def answer_for_new_call(
    parsed: MediaserviceParsed,
    route_to: str | None,
    *,
    max_ring_time: float = DEFAULT_MAX_RING_TIME,
    record: bool = False,
    recording_file_name: str | None = None,
) -> dict[str, Any]:
    """The response to ``/newCall``: ring ``route_to`` (an agent's SIP address).

    With no address (no agent to take the call) the documented default is to drop the call
    with ``dropCode: temporarilyUnavailable`` (SIP 480), so the caller's network can say so.
    ``record`` asks the mediaservice to record the connected call (``callRecording``).
    """
    call_id = _expect(parsed, "newCall")
    if route_to is None:
        return {"action": "drop", "dropCode": "temporarilyUnavailable"}
    answer: dict[str, Any] = {
        "action": "call",
        "destAddr": _sip_address(route_to, "route_to"),
        "maxRingTime": _ring_time(max_ring_time),
        "sessionReferenceId": session_reference(call_id),
    }
    if record:
        answer["callRecording"] = True
        if recording_file_name:
            answer["recordingFileName"] = recording_file_name
    return answer


def answer_for_call_event(
    parsed: MediaserviceParsed,
    transfer_to: str | None = None,
    *,
    max_ring_time: float = DEFAULT_MAX_RING_TIME,
) -> dict[str, Any]:
    """The response to ``/callEvent``; the action applies to the participant left over.

    * A party hung up or failed: drop the remaining party (``dropCode: busy`` when the
      called party was busy, ``temporarilyUnavailable`` for other call-setup failures).
    * After ``/splitconnection`` (a transfer): the caller is called onward to
      ``transfer_to``; the agent's leg (the callee) is dropped. Without ``transfer_to`` the
      documented default drops the caller too, with ``temporarilyUnavailable``: the desk only
      splits a connection when a transfer target is stored, so this is a lost target.
    """
    _expect(parsed, "callEvent")
    event = parsed.facts.get("event")
    if event == "callerConnectionSplit":
        if transfer_to is None:
            return {"action": "drop", "dropCode": "temporarilyUnavailable"}
        return {
            "action": "call",
            "destAddr": _sip_address(transfer_to, "transfer_to"),
            "maxRingTime": _ring_time(max_ring_time),
        }
    if event == "calledPartyFailure":
        busy = parsed.facts.get("sip_response_code") in (486, 600)
        return {"action": "drop", "dropCode": "busy" if busy else "temporarilyUnavailable"}
    # callingPartyDrop, calledPartyDrop, callingPartyFailure, calleeConnectionSplit
    return {"action": "drop"}


def with_monitor(answer: dict[str, Any], address: str,
                 sip_from: str | None = None) -> dict[str, Any]:
    """``answer`` (to ``/newCall`` or ``/callEvent``) with a silent monitoring leg to
    ``address``: a supervisor listening in.

    ``monitorDestAddr`` is a field of both responses; ``monitorSipFrom`` sets the SIP From
    and PAI of that leg "if action is "call" and monitorDestAddr is set" (OpenAPI page,
    ``/newCall`` and ``/callEvent`` → Response Schema; the specs README). So only an answer
    that connects the call gets the leg; a drop is returned unchanged. ``sip_from`` (what
    the supervisor's phone shows: the agent's extension or the line listened to) is left out
    when None, and the leg then shows the caller, as the inbound leg's From.
    """
    if answer.get("action") != "call":
        return answer
    monitored = {**answer, "monitorDestAddr": _sip_address(address, "monitorDestAddr")}
    if sip_from:
        monitored["monitorSipFrom"] = sip_from
    return monitored


def answer_for_new_remote_call(parsed: MediaserviceParsed) -> dict[str, Any]:
    """The response to ``/newRemoteCall`` (then answer it with ``answerremotecall``).

    ``sessionReferenceId`` is typed string here, so the reference goes as JSON text.
    """
    call_id = _expect(parsed, "newRemoteCall")
    return {"sessionReferenceId": json.dumps(session_reference(call_id))}


def answer_for_call_identifier(parsed: MediaserviceParsed) -> dict[str, Any]:
    """The response to ``/getCallIdentifier``: the session and the desk's reference."""
    call_id = _expect(parsed, "getCallIdentifier")
    return {"sessionId": parsed.facts.get("session_id", call_id),
            "sessionReferenceId": session_reference(call_id)}


# -- callback signatures -----------------------------------------------------------------
