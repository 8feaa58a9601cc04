"""iotcomms.io mediaservice adapter: callbacks → CallEvents and facts, action answers, client.

This module owns everything the desk knows about the mediaservice wire format (the
provider's OpenAPI document, ``mediaservice-openapi.txt``), and nothing else: it is pure (no
Flask request, no app, no database). It has four parts.

* ``parse`` turns one callback (``/callNotify``, ``/callAnswered``, ``/callEvent``,
  ``/sessionCompleted``, ``/recordingReady``, ``/newCall``, ``/newRemoteCall``,
  ``/getIvrCommand``, ``/getCallIdentifier`` and alarms posted to ``/<domain>``) into a
  ``MediaserviceParsed``: the provider-neutral ``Parsed`` for ``desk.calls.ingest`` plus the
  provider facts the desk must keep to act on the call later (replyId, connectionId,
  participant ids, recording outcome, alarm text). Samples send numbers where strings are
  typed, so every text field accepts a JSON number too.
* ``answer_for_new_call`` / ``answer_for_call_event`` (and the two small ones for
  ``newRemoteCall`` and ``getCallIdentifier``) build the JSON the callback's HTTP response
  must carry.
* ``verify_callback_signature`` checks that a callback was signed by the provider.
* ``MediaserviceClient`` calls the REST endpoints (hang up, split, record, prompt files).

Decisions the document leaves open, and what this module assumes:

* **Which call a callback belongs to.** The mediaservice has no single call id in every
  callback: ``/callAnswered`` carries no ``sessionId``. The document's mechanism for this is
  ``sessionReferenceId`` ("retained for the session and passed in subsequent requests"), so
  the desk's answer to ``/newCall`` (and ``/getCallIdentifier``, ``/newRemoteCall``) sets it
  to ``{"deskCallId": <sessionId>}``. A callback's call is that reference when present, else
  its ``sessionId``. A callback that names neither gets ``call_ref=None`` and no events; the
  desk may find the call by ``participant_ids`` and parse again with ``call_id=``.
* **No timestamps, no delivery id.** Events are dated with the arrival time. The dedupe key
  is the callback kind plus a SHA-256 of the whole body (keys sorted): a retried identical
  callback is a duplicate, any two callbacks that differ in any field are distinct.
* **Monitoring legs** (``monitoringParticipant: true``) never change the call's state: a
  supervisor listening in must not look like an agent answering.
* **sessionCompleted.** ``sessionDuration`` and ``reason`` are mis-described in the document
  (copy-pasted descriptions, unit unknown), so they are kept as facts only and the event
  carries no duration.
* **Callback signatures.** The document says nothing about them; the provider's overview
  says callbacks are signed with a private key configured per service and verified with the
  matching public key. Assumed: an RS256 JWT in the ``Authorization`` header (``Bearer``
  prefix optional), verified with pyjwt; ``exp``/``nbf`` are enforced when present, the
  token must carry ``exp`` or ``iat``, and ``iat`` may be at most ``max_age`` seconds old.
  The token does not cover the body, so it proves who sent the callback, not what it said.
  Header name, age and audience are parameters, so the real scheme needs no code change
  if it differs only in those.
* **API authentication.** The document's "Authorizations" sections are empty. Assumed (the
  provider's overview: "RS256 key pair ... JWT tokens for authenticating API requests"):
  ``Authorization: Bearer <JWT>`` signed RS256 with the customer's private key, claims
  ``iat`` and ``exp`` (60 s), plus any ``extra_claims`` the portal turns out to require.
  The ``...jwt`` endpoint variants (``hangupcalljwt`` etc.) are not used.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypedDict, cast
from urllib.parse import quote

import jwt
import requests
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from cryptography.hazmat.primitives.serialization import (
    load_pem_private_key,
    load_pem_public_key,
)

from desk.events import BadPayload, CallEvent, Parsed

PROVIDER = "mediaservice"
ALARM = "alarm"  # alarms arrive at /<domain>; the webhook passes "alarm" (or the domain)
CALLBACKS = (
    "callNotify", "callAnswered", "callEvent", "sessionCompleted", "recordingReady",
    "newCall", "newRemoteCall", "getIvrCommand", "getCallIdentifier", ALARM,
)
# Callbacks whose HTTP response body is an instruction to the mediaservice.
ANSWERED = frozenset({"newCall", "newRemoteCall", "callEvent", "getIvrCommand",
                      "getCallIdentifier"})
CALL_EVENTS = (
    "callingPartyDrop", "calledPartyDrop", "callingPartyFailure", "calledPartyFailure",
    "callerConnectionSplit", "calleeConnectionSplit",
)
RECORDING_EVENTS = {"recordingSuccessful": "ready", "recordingFailed": "failed"}
REFERENCE_KEY = "deskCallId"
DEFAULT_MAX_RING_TIME = 30

_PRINTABLE = re.compile(r"^[^\x00-\x1f\x7f]+$")
_TOKEN = re.compile(r"^[A-Za-z0-9_.:-]{1,40}$")
_SIP_URI = re.compile(r"^sips?:[^\s\x00-\x1f\x7f]{1,250}$")


class Facts(TypedDict, total=False):
    """Provider facts from one callback; only the keys the callback actually carried.

    Fold them into the call with ``dict.update``: nothing a later callback omits is erased.
    """

    session_id: str  # mediaservice session (the desk's provider_call_id unless referenced)
    trace_id: str  # one id across every session of a call
    reply_id: str  # copy into hangupcall / splitconnection / startrecording; a JWT, long
    connection_id: str  # the connection to split or record
    caller_participant_id: str
    callee_participant_id: str
    participant_id: str  # the participant the callback is about
    remote_participant_id: str
    monitoring: bool  # the callback is about a supervisor's monitoring leg
    event: str  # the callback's own event name (ringing, calledPartyDrop, ...)
    split: str  # "caller" or "callee": which participant a /splitconnection left alone
    sip_call_id: str
    sip_response_code: int
    sip_reason: str
    error_description: str
    recording_state: str  # "ready" or "failed"
    recording_file_name: str
    recording_file_size: int
    recording_failure_reason: str
    alarm_type: str
    alarm_error: str
    alarm_text: str  # one line for a supervisor: "sessionError: maxDuration"
    alarm_details: dict[str, Any]
    caller_withheld: bool  # callingPartyPrivacy "secret": from_number is left empty
    caller_display_name: str
    called_party: str
    codec: str
    remote_rtp_ip: str
    remote_rtp_port: int
    dtmf: str
    session_duration: str  # as sent; unit undocumented
    session_end_reason: str
    session_reference_id: Any  # as sent, when it is not the desk's own reference
    site_id: str
    site_base_url: str  # hybrid deployments: API calls for this call go to this base URL


@dataclass(frozen=True)
class MediaserviceParsed:
    """What the desk understood of one mediaservice callback.

    ``parsed`` goes to ``desk.calls.ingest`` unchanged: ``kind`` is the callback name, with
    its event after a colon where it has one (``callEvent:calledPartyDrop``); ``events`` is
    empty when the callback changes no call state. ``facts`` are to be kept on the call.
    ``needs_answer`` says the HTTP response carries an instruction (build it with the
    ``answer_for_*`` functions even when ingest reports a duplicate: a retry means our first
    answer was lost). ``call_ref`` is the call the callback belongs to, ``None`` when it names
    none (then ``parsed.provider_call_id`` is ``""`` and there are no events).
    """

    callback: str
    parsed: Parsed
    facts: Facts
    needs_answer: bool
    call_ref: str | None

    @property
    def participant_ids(self) -> tuple[str, ...]:
        """Every participant id the callback names, to find its call by when unreferenced."""
        keys = ("caller_participant_id", "callee_participant_id", "participant_id",
                "remote_participant_id")
        found = (cast(dict[str, Any], self.facts).get(key) for key in keys)
        return tuple(dict.fromkeys(value for value in found if value))


# -- reading fields ----------------------------------------------------------------------


class _Body:
    """Typed, tolerant access to one callback's fields; errors name callback and field."""

    def __init__(self, callback: str, data: Mapping[str, Any]) -> None:
        self.callback = callback
        self.data = data

    def bad(self, message: str) -> BadPayload:
        return BadPayload(f"{self.callback}: {message}")

    def text(self, name: str, *, required: bool = False, max_len: int = 255) -> str | None:
        value = self.data.get(name)
        if isinstance(value, (bool, dict, list)):
            raise self.bad(f"field '{name}' must be text, not {json.dumps(value)[:60]}")
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, (int, float)):
            value = str(value)  # the samples send numbers where strings are typed
        if isinstance(value, str):
            value = value.strip() or None
        if value is None:
            if required:
                raise self.bad(f"missing field '{name}'")
            return None
        if len(value) > max_len or not _PRINTABLE.match(value):
            raise self.bad(
                f"field '{name}' is not usable text (control characters or longer than "
                f"{max_len}): {value[:60]!r}"
            )
        return value

    def number(self, name: str) -> int | None:
        value = self.data.get(name)
        if value is None or value == "":
            return None
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value.strip())
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 10**12:
            raise self.bad(f"field '{name}' must be a whole number, not {value!r:.60}")
        return value

    def flag(self, name: str) -> bool | None:
        value = self.data.get(name)
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        raise self.bad(f"field '{name}' must be true or false, not {value!r:.60}")

    def choice(self, name: str, allowed: Mapping[str, Any] | tuple[str, ...]) -> str:
        value = self.text(name, required=True)
        assert value is not None
        if value not in allowed:
            raise self.bad(f"unknown {name} {value[:40]!r}; expected one of {', '.join(allowed)}")
        return value

    def common(self) -> dict[str, Any]:
        """Fields most callbacks share."""
        return {
            "session_id": self.text("sessionId"),
            "trace_id": self.text("traceId"),
            "site_id": self.text("siteId"),
            "site_base_url": self.text("siteBaseUrl", max_len=2000),
        }


def _sip_user(uri: str | None) -> str | None:
    """``sip:user@host;param`` → ``user``; anything else unchanged."""
    if not uri:
        return None
    user = re.sub(r"^sips?:", "", uri).split(";", 1)[0].split("@", 1)[0]
    return user[:64] or None


def _desk_reference(value: Any) -> str | None:
    """The desk's own call id inside ``sessionReferenceId``, in whichever form it came back."""
    if isinstance(value, str) and value.lstrip().startswith("{"):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    if isinstance(value, Mapping):
        ref = value.get(REFERENCE_KEY)
        if isinstance(ref, str) and 0 < len(ref) <= 255 and _PRINTABLE.match(ref):
            return ref
    return None


# -- one function per callback: (kind, facts, state changes) -----------------------------

_Change = tuple[str, dict[str, Any]]  # (CallEvent kind, CallEvent fields)
_Result = tuple[str, dict[str, Any], list[_Change]]

_NUMBER_MAX = 64  # Call.from_number / to_number


def _call_notify(b: _Body) -> _Result:
    event = b.text("event", required=True, max_len=40)
    assert event is not None
    if not _TOKEN.match(event):
        raise b.bad(f"field 'event' is not an event name: {event[:40]!r}")
    monitoring = b.flag("monitoringParticipant")
    facts = {
        **b.common(), "event": event, "monitoring": monitoring,
        "participant_id": b.text("participantId"),
        "remote_participant_id": b.text("remoteParticipantId"),
        "sip_call_id": b.text("sipCallId"),
    }
    user = b.text("user", max_len=_NUMBER_MAX)
    remote = b.text("remoteUser", max_len=_NUMBER_MAX)
    changes: list[_Change] = []
    # reInvite / update (and event names added later) are media renegotiations: no state.
    if event == "ringing" and not monitoring:
        changes.append(("ringing", {"from_number": user, "to_number": remote}))
    return f"callNotify:{event}", facts, changes


def _call_answered(b: _Body) -> _Result:
    monitoring = b.flag("monitoringParticipant")
    facts = {
        **b.common(), "monitoring": monitoring,
        "reply_id": b.text("replyId", required=True, max_len=8192),
        "connection_id": b.text("connectionId", required=True),
        "caller_participant_id": b.text("callerParticipantId"),
        "callee_participant_id": b.text("calleeParticipantId"),
        "codec": b.text("codec", max_len=16),
        "remote_rtp_ip": b.text("remoteRtpIp", max_len=64),
        "remote_rtp_port": b.number("remoteRtpPort"),
    }
    caller = b.text("callingPartyNumber", max_len=_NUMBER_MAX)
    callee = b.text("remotePartyNumber", max_len=_NUMBER_MAX)
    changes: list[_Change] = []
    if not monitoring:
        changes.append(("answered", {"from_number": caller, "to_number": callee,
                                     "answered_by": callee}))
    return "callAnswered", facts, changes


def _end_cause_for_failure(code: int | None) -> str:
    if code in (486, 600):
        return "busy"
    if code == 603:
        return "rejected"
    if code in (408, 480, 487):
        return "missed"
    return "failed"


def _call_event(b: _Body) -> _Result:
    event = b.choice("event", CALL_EVENTS)
    code = b.number("sipResponseCode")
    facts = {
        **b.common(), "event": event,
        "connection_id": b.text("connectionId"),
        "participant_id": b.text("participantId"),
        "remote_participant_id": b.text("remoteParticipantId"),
        "sip_response_code": code,
        "sip_reason": b.text("sipReason", max_len=1000),
        "error_description": b.text("errorDescr", max_len=1000),
    }
    changes: list[_Change] = []
    if event == "callingPartyDrop":
        changes.append(("ended", {"end_cause": "caller-hangup"}))
    elif event == "calledPartyDrop":
        changes.append(("ended", {"end_cause": "callee-hangup"}))
    elif event == "callingPartyFailure":
        changes.append(("ended", {"end_cause": "failed"}))
    elif event == "calledPartyFailure":
        changes.append(("ended", {"end_cause": _end_cause_for_failure(code)}))
    else:
        # A split is the first half of a transfer: the caller lives on, so the call does too.
        facts["split"] = "caller" if event == "callerConnectionSplit" else "callee"
    return f"callEvent:{event}", facts, changes


def _session_completed(b: _Body) -> _Result:
    facts = {
        **b.common(),
        "session_duration": b.text("sessionDuration", max_len=64),
        "session_end_reason": b.text("reason", max_len=1000),
    }
    # The session is over: the one definite end. Its cause comes from the callEvent before.
    return "sessionCompleted", facts, [("ended", {})]


def _recording_ready(b: _Body) -> _Result:
    event = b.choice("event", tuple(RECORDING_EVENTS))
    ok = event == "recordingSuccessful"
    facts = {
        **b.common(), "event": event,
        "recording_state": RECORDING_EVENTS[event],
        "connection_id": b.text("connectionId"),
        "recording_file_name": b.text("recordingFileName", required=ok, max_len=1000),
        "recording_file_size": b.number("fileSize"),
        # "Present only if event equals recordingFailed": ignore it on success.
        "recording_failure_reason": None if ok else b.text("reason", max_len=1000),
    }
    return f"recordingReady:{event}", facts, []


def _new_call(b: _Body) -> _Result:
    withheld = (b.text("callingPartyPrivacy", max_len=16) or "").lower() == "secret"
    # callingParty honours P-Asserted-Identity; fromUser is whatever the caller's device set.
    caller = b.text("callingParty", max_len=_NUMBER_MAX)
    caller = caller or b.text("fromUser", max_len=_NUMBER_MAX)
    facts = {
        **b.common(),
        "sip_call_id": b.text("sipCallId"),
        "caller_withheld": withheld or None,
        "caller_display_name": b.text("displayName", max_len=255),
        "called_party": b.text("calledParty", max_len=_NUMBER_MAX),
    }
    change = {
        "direction": "inbound",
        "from_number": None if withheld else caller,
        "to_number": facts["called_party"],
    }
    return "newCall", facts, [("ringing", change)]


def _new_remote_call(b: _Body) -> _Result:
    facts = {
        **b.common(),
        "reply_id": b.text("replyId", required=True, max_len=8192),
        "sip_call_id": b.text("callId"),
        "codec": b.text("codec", max_len=16),
        "remote_rtp_ip": b.text("remoteRtpIp", max_len=64),
        "remote_rtp_port": b.number("remoteRtpPort"),
    }
    change = {
        "direction": "inbound",
        "from_number": b.text("sourceUser", max_len=_NUMBER_MAX),
        "to_number": _sip_user(b.text("destinationUri", max_len=1000)),
    }
    return "newRemoteCall", facts, [("ringing", change)]


def _get_ivr_command(b: _Body) -> _Result:
    dtmf = b.text("dtmfBuffer")
    params = b.data.get("dtmfParams")
    if dtmf is None and isinstance(params, Mapping):
        dtmf = _Body(f"{b.callback} dtmfParams", params).text("dtmfMatch")
    # replyId, sessionReferenceId and dtmfBuffer are null in the sample: all optional.
    facts = {**b.common(), "reply_id": b.text("replyId", max_len=8192), "dtmf": dtmf}
    return "getIvrCommand", facts, []


def _get_call_identifier(b: _Body) -> _Result:
    facts = {**b.common(), "called_party": b.text("calledParty", max_len=_NUMBER_MAX)}
    return "getCallIdentifier", facts, []


def _alarm(b: _Body) -> _Result:
    kind = b.text("type", required=True, max_len=40)
    assert kind is not None
    if not _TOKEN.match(kind):
        raise b.bad(f"field 'type' is not an alarm type: {kind[:40]!r}")
    error = b.text("error", max_len=1000)
    status = b.text("status", max_len=64)
    details = b.data.get("errorDetails")
    text = f"{kind}: {error}" if error else kind
    if status:
        text += f" (status {status})"
    facts = {
        **b.common(),
        "alarm_type": kind,
        "alarm_error": error,
        "alarm_text": text,
        "alarm_details": dict(details) if isinstance(details, Mapping) and details else None,
        "participant_id": b.text("participantId"),
        "sip_call_id": b.text("callId"),
    }
    return f"alarm:{kind}", facts, []


_HANDLERS = {
    "callNotify": _call_notify,
    "callAnswered": _call_answered,
    "callEvent": _call_event,
    "sessionCompleted": _session_completed,
    "recordingReady": _recording_ready,
    "newCall": _new_call,
    "newRemoteCall": _new_remote_call,
    "getIvrCommand": _get_ivr_command,
    "getCallIdentifier": _get_call_identifier,
    ALARM: _alarm,
}
# The document gives these no sessionId (callAnswered) or an optional one (alarms).
_SESSION_OPTIONAL = frozenset({"callAnswered", ALARM})


def _callback_name(callback: str) -> str:
    name = (callback or "").strip().strip("/")
    if name in _HANDLERS:
        return name
    if "." in name and "/" not in name:
        return ALARM  # alarms are posted to /<domain configured>
    raise BadPayload(
        f"unknown mediaservice callback {name[:60]!r}; expected one of {', '.join(CALLBACKS)}"
        " (alarms arrive at /<your domain>)"
    )


def dedupe_key(kind: str, body: Mapping[str, Any]) -> str:
    """``kind`` and a SHA-256 of the body with sorted keys: equal bodies, equal keys."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                           default=str)
    return f"{kind}:{hashlib.sha256(canonical.encode()).hexdigest()}"


def parse(
    callback: str,
    body: Mapping[str, Any] | list[Any] | Any,
    received_at: datetime,
    *,
    call_id: str | None = None,
) -> MediaserviceParsed:
    """Understand one callback. ``callback`` is the path it was posted to (``callEvent``,
    ``/callNotify``; ``alarm`` or the domain for alarms); ``body`` the decoded JSON.

    ``call_id`` names the call when the desk found it itself (see ``MediaserviceParsed``).
    Raises ``BadPayload`` saying which callback and field are wrong.
    """
    name = _callback_name(callback)
    if not isinstance(body, Mapping):
        raise BadPayload(
            f"{name}: expected a JSON object, got {type(body).__name__}; is the callback "
            "posted with Content-Type application/json?"
        )
    b = _Body(name, body)
    kind, raw_facts, changes = _HANDLERS[name](b)

    reference = body.get("sessionReferenceId")
    call_ref = call_id or _desk_reference(reference) or raw_facts.get("session_id")
    if call_ref is None and name not in _SESSION_OPTIONAL:
        raise b.bad("missing field 'sessionId'; every such callback names its session")
    if call_ref is not None and (len(call_ref) > 255 or not _PRINTABLE.match(call_ref)):
        raise b.bad(f"call id {call_ref[:60]!r} is not usable")
    if reference not in (None, "", {}) and _desk_reference(reference) is None:
        raw_facts["session_reference_id"] = reference

    events: tuple[CallEvent, ...] = ()
    if call_ref is not None:
        events = tuple(
            CallEvent(PROVIDER, call_ref, event_kind, received_at, **fields)  # type: ignore[arg-type]
            for event_kind, fields in changes
        )
    facts = cast(Facts, {k: v for k, v in raw_facts.items() if v is not None})
    return MediaserviceParsed(
        callback=name,
        parsed=Parsed(kind=kind, provider_call_id=call_ref or "",
                      dedupe_key=dedupe_key(kind, body), events=events),
        facts=facts,
        needs_answer=name in ANSWERED,
        call_ref=call_ref,
    )


# -- answers -----------------------------------------------------------------------------


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


class BadSignature(ValueError):
    """The callback is not provably from the mediaservice; answer 401 and store nothing."""


def _public_key(pem: str | bytes) -> RSAPublicKey:
    try:
        key = load_pem_public_key(pem.encode() if isinstance(pem, str) else pem)
    except ValueError as exc:
        raise ValueError(f"the mediaservice callback key is not a PEM public key: {exc}") from None
    if not isinstance(key, RSAPublicKey):
        raise ValueError("the mediaservice callback key must be an RSA public key (RS256)")
    return key


def verify_callback_signature(
    headers: Mapping[str, str],
    public_key_pem: str | bytes,
    *,
    header: str = "Authorization",
    max_age: int | None = 300,
    leeway: int = 30,
    audience: str | None = None,
) -> dict[str, Any]:
    """Verify the provider's RS256 JWT on a callback; returns its claims.

    ``headers`` may be any mapping (Flask's, or a plain dict; names match in any case).
    With ``max_age`` set the token must carry ``exp`` or ``iat`` and ``iat`` may be at most
    that many seconds old, so a captured token cannot be replayed for ever. Raises
    ``BadSignature`` saying why; ``ValueError`` if the configured key is not usable.
    """
    key = _public_key(public_key_pem)
    wanted = header.lower()
    token = next((v for k, v in headers.items() if k.lower() == wanted), None) or ""
    token = token.strip()
    if token.lower().split(" ", 1)[0] == "bearer":
        token = token[6:].strip()
    if not token:
        raise BadSignature(f"no {header} header: the callback is not signed")
    try:
        claims = jwt.decode(
            token, key, algorithms=["RS256"], leeway=leeway, audience=audience,
            options={"verify_aud": audience is not None},
        )
    except jwt.ExpiredSignatureError:
        raise BadSignature("the callback's signature has expired") from None
    except jwt.PyJWTError as exc:
        raise BadSignature(f"the callback's signature is not valid: {exc}") from None
    if max_age is not None:
        iat = claims.get("iat")
        if iat is None and claims.get("exp") is None:
            raise BadSignature("the callback's token has neither iat nor exp; refusing replays")
        if isinstance(iat, (int, float)) and time.time() - iat > max_age + leeway:
            raise BadSignature(f"the callback's token is older than {max_age} s")
    return claims


# -- REST client -------------------------------------------------------------------------


class ProviderError(RuntimeError):
    """A mediaservice request failed; ``str()`` is a sentence an agent can read.

    ``kind``: ``refused`` (the mediaservice said no: ``success: false`` or HTTP 4xx),
    ``timeout`` (no answer in time: the action may still happen), ``unreachable`` (no
    connection), ``error`` (HTTP 5xx or an answer the desk cannot read).
    """

    def __init__(self, message: str, status: int | None = None, answer: Any = None,
                 kind: str = "refused") -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.answer = answer
        self.kind = kind


def _refusal(answer: Any, status: int) -> str:
    if isinstance(answer, Mapping):
        for key in ("reason", "error", "message"):
            if isinstance(answer.get(key), str) and answer[key].strip():
                return answer[key].strip()[:200]
    if status in (401, 403):
        return ("the desk is not authorised (check that the public key uploaded in the "
                "iotcomms portal matches the desk's private key)")
    if status == 404:
        return "unknown address (check the mediaservice base URL and domain)"
    if isinstance(answer, Mapping) and answer.get("success") is False:
        return "it gave no reason"
    return f"HTTP {status}"


class MediaserviceClient:
    """Calls ``{base_url}/{domain}/<endpoint>`` with a fresh RS256 JWT and a timeout each.

    Every method returns the mediaservice's JSON answer, or raises ``ProviderError``.
    """

    def __init__(
        self,
        base_url: str,
        domain: str,
        private_key_pem: str | bytes,
        timeout: float = 5.0,
        *,
        token_lifetime: int = 60,
        extra_claims: Mapping[str, Any] | None = None,
    ) -> None:
        if not re.match(r"^https?://[^/\s]+", base_url or ""):
            raise ValueError(f"mediaservice base URL must be http(s)://host..., not {base_url!r}")
        if not domain or "/" in domain or not _PRINTABLE.match(domain):
            raise ValueError(f"mediaservice domain must look like customer47.prod-eu-north-1."
                             f"iotcomms.io, not {domain!r}")
        if not timeout > 0:
            raise ValueError("timeout must be more than 0 seconds")
        try:
            key = load_pem_private_key(
                private_key_pem.encode() if isinstance(private_key_pem, str) else private_key_pem,
                password=None,
            )
        except (ValueError, TypeError) as exc:
            raise ValueError(f"the mediaservice API key is not a PEM private key: {exc}") from None
        if not isinstance(key, RSAPrivateKey):
            raise ValueError("the mediaservice API key must be an RSA private key (RS256)")
        self.base_url = base_url.rstrip("/")
        self.domain = domain
        self.timeout = timeout
        self._key = key
        self._token_lifetime = token_lifetime
        self._extra_claims = dict(extra_claims or {})

    def _token(self) -> str:
        now = int(time.time())
        claims = {**self._extra_claims, "iat": now, "exp": now + self._token_lifetime}
        return jwt.encode(claims, self._key, algorithm="RS256")

    def _request(self, method: str, path: str, what: str, *, body: dict[str, Any] | None = None,
                 params: dict[str, str] | None = None) -> dict[str, Any]:
        url = f"{self.base_url}/{quote(self.domain, safe='')}/{path}"
        try:
            response = requests.request(
                method, url, json=body, params=params, timeout=self.timeout,
                headers={"Authorization": f"Bearer {self._token()}",
                         "Accept": "application/json"},
            )
        except requests.Timeout as exc:
            raise ProviderError(
                f"The call service did not answer within {self.timeout:g} s when asked to "
                f"{what}; it may still happen. Check the call before trying again.",
                kind="timeout",
            ) from exc
        except requests.RequestException as exc:
            refused = "refused" in str(exc).lower()
            raise ProviderError(
                f"Could not reach the call service to {what} "
                f"({'connection refused' if refused else 'network error'}). Try again in a "
                "moment; if it keeps failing, tell your supervisor.",
                kind="unreachable",
            ) from exc
        try:
            answer = response.json()
        except ValueError:
            answer = None
        status = response.status_code
        if status >= 500:
            raise ProviderError(
                f"The call service failed to {what} (HTTP {status}). Try again in a moment.",
                status, answer, kind="error",
            )
        if status >= 400 or (isinstance(answer, Mapping) and answer.get("success") is False):
            raise ProviderError(
                f"The call service refused to {what}: {_refusal(answer, status)}.",
                status, answer, kind="refused",
            )
        if not isinstance(answer, dict) or answer.get("success") is not True:
            raise ProviderError(
                f"The call service did not confirm that it will {what}; its answer was "
                f"{response.text[:120]!r}.",
                status, answer, kind="error",
            )
        return answer

    def hangupcall(self, reply_id: str) -> dict[str, Any]:
        """``POST /{domain}/hangupcall``: busy if unanswered, else hang up."""
        return self._request("POST", "hangupcall", "hang up the call",
                             body={"replyId": reply_id})

    def hangupparticipant(self, participant_id: str, reply_id: str,
                          session_id: str) -> dict[str, Any]:
        """``POST /{domain}/hangupparticipant``: hang up one participant of the call."""
        return self._request(
            "POST", "hangupparticipant", "hang up that participant",
            body={"participantId": participant_id, "replyId": reply_id, "sessionId": session_id},
        )

    def splitconnection(self, reply_id: str, connection_id: str) -> dict[str, Any]:
        """``POST /{domain}/splitconnection``: the first step of a transfer; a callEvent
        per participant follows, answered by ``answer_for_call_event``."""
        return self._request("POST", "splitconnection", "transfer the call",
                             body={"replyId": reply_id, "connectionId": connection_id})

    def startrecording(self, recording_file_name: str, reply_id: str,
                       connection_id: str) -> dict[str, Any]:
        """``POST /{domain}/startrecording``; ``/recordingReady`` follows after the stop."""
        return self._request(
            "POST", "startrecording", "start recording",
            body={"recordingFileName": recording_file_name, "replyId": reply_id,
                  "connectionId": connection_id},
        )

    def stoprecording(self, reply_id: str, connection_id: str) -> dict[str, Any]:
        """``POST /{domain}/stoprecording``: the file is then uploaded to prompt storage."""
        return self._request("POST", "stoprecording", "stop recording",
                             body={"replyId": reply_id, "connectionId": connection_id})

    def list_promptfiles(self, next_page: str | None = None) -> dict[str, Any]:
        """``GET /{domain}/promptfile``: one page, ``{"files": [...], "next": ...}``."""
        return self._request("GET", "promptfile", "list the recordings",
                             params={"next": next_page} if next_page else None)

    def promptfile_url(self, name: str) -> str:
        """``GET /{domain}/promptfile/{filename}/url``: a download URL valid 15 minutes."""
        what = "fetch the recording"
        answer = self._request("GET", f"promptfile/{quote(name, safe='')}/url", what)
        url = answer.get("url")
        if not isinstance(url, str) or not url:
            raise ProviderError(f"The call service gave no address to {what}.", 200, answer,
                                kind="error")
        return url
