"""iotcomms.io mediaservice callbacks → CallEvents and the facts the desk keeps on a call.

This module owns what the desk knows about the mediaservice's callback wire format, and
nothing else: it is pure (no Flask request, no app, no database). ``parse`` turns one
callback (``/callNotify``, ``/callAnswered``, ``/callEvent``, ``/sessionCompleted``,
``/recordingReady``, ``/newCall``, ``/newRemoteCall``, ``/getIvrCommand``,
``/getCallIdentifier`` and alarms posted to ``/<domain>``) into a ``MediaserviceParsed``: the
provider-neutral ``Parsed`` for ``desk.services.ingest`` plus the provider facts the desk must
keep to act on the call later (replyId, connectionId, participant ids, recording outcome,
alarm text). Samples send numbers where strings are typed, so every text field accepts a
JSON number too. Beside it: ``answers`` builds the JSON replies the service waits for,
``signature`` checks callback signatures, ``client`` calls the REST endpoints.

Sources: the provider's OpenAPI page as rendered (``mediaservice-openapi.txt``; sections
named by their path below, e.g. ``/callAnswered``), the checked facts in the specs README
(section "iotcomms.io mediaservice"), and the provider's current pages
https://iotcomms.io/developer/documentation/apis/mediaservice (base URL
``https://api.prod-eu-north-1.iotcomms.io/mediaservice``; some endpoints labelled ``sigv4``,
others ``jwtAuthorizer``) and https://iotcomms.io/developer/documentation/general/api_overview
(the two key pairs: one the customer signs API calls with, one the service signs callbacks
with). The test fixtures are the page's samples (``tests/providers/mediaservice/fixtures/``).

Decisions the document leaves open, and what this module assumes:

* **Which call a callback belongs to.** The mediaservice has no single call id in every
  callback: ``/callAnswered`` carries no ``sessionId``. The document's mechanism for this is
  ``sessionReferenceId`` ("retained for the session and passed in subsequent requests"), so
  the desk's answer to ``/newCall`` (and ``/getCallIdentifier``, ``/newRemoteCall``) sets it
  to ``{"deskCallId": <sessionId>}``. A callback's call is that reference when present, else
  its ``sessionId``. A callback that names neither (the ``/callAnswered`` sample: its
  ``sessionReferenceId`` is ``{}``) gets ``call_ref=None`` and no events; the webhook then
  finds the call by ``participant_ids`` — ``/callNotify``'s ``participantId`` and
  ``remoteParticipantId`` are kept on the call for this (the README: ``remoteParticipantId``
  there is ``calleeParticipantId`` in ``/callAnswered``) — and parses again with ``call_id=``.
* **No timestamps, no delivery id.** Events are dated with the arrival time. The dedupe key
  is the callback kind plus a SHA-256 of the whole body (keys sorted): a retried identical
  callback is a duplicate, any two callbacks that differ in any field are distinct.
* **Monitoring legs** never change the call's state: a supervisor listening in must not
  look like an agent answering, and their hanging up must not end the call. A desk answer
  with ``monitorDestAddr`` adds such a leg (``/newCall`` and ``/callEvent`` response schemas;
  the specs README); ``/callAnswered`` and ``/callNotify`` say so with
  ``monitoringParticipant: true`` (their request schemas). ``/callEvent``'s schema has no such
  field, so its callbacks are recognised by participant: the webhook passes the participant
  ids of the call's monitoring legs (``monitoring_legs``, the ``calleeParticipantId`` of each
  monitoring ``/callAnswered``), and a ``callEvent`` whose ``participantId`` is one of them,
  or that carries ``monitoringParticipant: true`` anyway, is the leg's and nobody else's.
  Their kinds end in ``:monitoring`` (``callEvent:calledPartyDrop:monitoring``), so the
  event log tells them apart.
* **sessionCompleted.** ``sessionDuration`` and ``reason`` are mis-described in the document
  (their descriptions are ``/callAnswered``'s ``callingPartyNumber`` and
  ``callerParticipantId``, copied). ``sessionDuration`` is read as **milliseconds**: the
  sample, ``46890510``, is 13 h 1 min in milliseconds but 542 days in seconds, far beyond any
  call (the service raises a ``maxDuration`` alarm on overlong sessions); the sample value is
  the copied ``callingPartyNumber`` too, so this is the only reading that can be true of it,
  and milliseconds are what a JavaScript service's clock differences come in. It is kept as
  sent (``session_duration``) and as seconds (``session_seconds``). It measures the whole
  session, ringing included, so it is not the talk time: the webhook subtracts the time from
  the session's start to the answer (``views``). The ``ended`` event carries no duration, so
  an unanswered session never looks talked.
* **Callback signatures.** The document says nothing about them; the provider's overview
  says callbacks are signed with a private key configured per service and verified with the
  matching public key. Assumed: an RS256 JWT in the ``Authorization`` header (``Bearer``
  prefix optional), verified with pyjwt; ``exp``/``nbf`` are enforced when present, the
  token must carry ``iat``, at most ``max_age`` seconds old, and each token is accepted once
  (by ``jti``, else by its signature; ``desk.providers.mediaservice.signature``).
  The token does not cover the body, so it proves who sent the callback, not what it said.
  Header name, age and audience are parameters, so the real scheme needs no code change
  if it differs only in those.
* **API authentication and endpoint family.** The document's "Authorizations" sections are
  empty. Assumed (the provider's overview: "RS256 key pair ... JWT tokens for authenticating
  API requests"): ``Authorization: Bearer <JWT>`` signed RS256 with the customer's private
  key, claims ``iat`` and ``exp`` (60 s), plus any ``extra_claims`` the portal turns out to
  require. The page lists base endpoints and ``...jwt`` variants (``hangupcalljwt``,
  ``answerremotecalljwt``, ``placeremotecalljwt``, ``sendremotecallringbackjwt``); one version
  of the provider's page labels the base ones SigV4 and the variants JWT. Which family an
  account uses is the setting ``DESK_MEDIASERVICE_API`` (``base``, the default, or ``jwt``;
  see ``client``).
* **siteBaseUrl** (hybrid deployments: "the base URL for API calls ... related to the
  callback") is kept as a fact, but the desk sends API calls there only when it is one of
  ``DESK_MEDIASERVICE_SITE_URLS``: following any URL a callback names would hand the desk's
  signed token to whoever can post a callback (``client.allowed_site_base_url``).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypedDict, cast

from desk.domain.events import BadPayload, CallEvent, EventKind, Parsed

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
    monitor_party: str  # monitoring callAnswered: the SIP user its leg rang (the listener)
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
    session_duration: str  # as sent (milliseconds, see the module docstring)
    session_seconds: float  # the same in seconds: the whole session, ringing included
    session_end_reason: str
    session_reference_id: Any  # as sent, when it is not the desk's own reference
    site_id: str
    site_base_url: str  # hybrid deployments: API calls for this call go to this base URL


@dataclass(frozen=True)
class MediaserviceParsed:
    """What the desk understood of one mediaservice callback.

    ``parsed`` goes to ``desk.services.ingest`` unchanged: ``kind`` is the callback name, with
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

    def __init__(self, callback: str, data: Mapping[str, Any],
                 monitoring_legs: frozenset[str] = frozenset()) -> None:
        self.callback = callback
        self.data = data
        self.monitoring_legs = monitoring_legs

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
        if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
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

_Change = tuple[EventKind, dict[str, Any]]  # (CallEvent kind, CallEvent fields)
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
    return f"callNotify:{event}{':monitoring' if monitoring else ''}", facts, changes


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
    else:
        facts["monitor_party"] = callee  # the SIP user the leg rang: who is listening
    return f"callAnswered{':monitoring' if monitoring else ''}", facts, changes


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
    participant = b.text("participantId")
    # Not in this callback's schema, but taken when sent: see the module docstring.
    monitoring = bool(b.flag("monitoringParticipant")) or (
        participant is not None and participant in b.monitoring_legs)
    facts = {
        **b.common(), "event": event,
        "connection_id": b.text("connectionId"),
        "participant_id": participant,
        "remote_participant_id": b.text("remoteParticipantId"),
        "sip_response_code": code,
        "sip_reason": b.text("sipReason", max_len=1000),
        "error_description": b.text("errorDescr", max_len=1000),
    }
    changes: list[_Change] = []
    if monitoring:
        facts["monitoring"] = True  # the leg dropped or failed; the call goes on
        return f"callEvent:{event}:monitoring", facts, changes
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


def _milliseconds_as_seconds(value: str | None) -> float | None:
    """``sessionDuration`` (milliseconds; a number, or a number as text) in seconds; None
    when it is not a plausible duration, so an odd value never rejects the session's end."""
    try:
        ms_value = float(value) if value is not None else None
    except ValueError:
        return None
    if ms_value is None or not 0 <= ms_value < 10**11:  # NaN fails this too
        return None
    return ms_value / 1000


def _session_completed(b: _Body) -> _Result:
    duration = b.text("sessionDuration", max_len=64)
    facts = {
        **b.common(),
        "session_duration": duration,
        "session_seconds": _milliseconds_as_seconds(duration),
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
    monitoring_legs: frozenset[str] | set[str] | tuple[str, ...] = (),
) -> MediaserviceParsed:
    """Understand one callback. ``callback`` is the path it was posted to (``callEvent``,
    ``/callNotify``; ``alarm`` or the domain for alarms); ``body`` the decoded JSON.

    ``call_id`` names the call when the desk found it itself (see ``MediaserviceParsed``);
    ``monitoring_legs`` are the participant ids of its monitoring legs (the module
    docstring, "Monitoring legs").
    Raises ``BadPayload`` saying which callback and field are wrong.
    """
    name = _callback_name(callback)
    if not isinstance(body, Mapping):
        raise BadPayload(
            f"{name}: expected a JSON object, got {type(body).__name__}; is the callback "
            "posted with Content-Type application/json?"
        )
    b = _Body(name, body, frozenset(monitoring_legs))
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
            CallEvent(PROVIDER, call_ref, event_kind, received_at, **fields)
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

