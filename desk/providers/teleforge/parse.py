"""Teleforge's Redis notifications, read into call events. Pure: no Redis, no database.

Every item Teleforge pushes is JSON ``{"type": <kind>, "payload": {...}}``, whichever list it
is on. Two kinds are understood; anything else comes back as ``UnknownNotification`` (the
listener keeps it as a rejected delivery with an alert, never drops it).

Where each fact comes from: Teleforge's public pages for v4.0.0 onwards
(https://tforge.atlassian.net/wiki/spaces/EPD, checked in ``specs/README.md`` section
"Teleforge Click2Dial"); "desk's reading" marks what the desk decides where they are silent.

* ``cdr`` (list ``enigma:notifications:cdr``; page "Call Data Record (Call End
  Notification)", .../pages/3441750): the end of every inbound and outbound call. Payload
  from v3.0.0: ``extension`` (the agent; null when the caller hung up in a queue before
  reaching one), ``number`` (the client: dialled, or the inbound caller), ``dial_number``
  (the PBX's number), ``call_ref`` (Teleforge's own call id, also used to fetch the
  recording), ``contact_ref`` (the reference the integrator sent), ``dialed_at``,
  ``end_reason``, ``end_code``, ``call_time``, ``hold_time``, ``call_dir`` (``inbound`` /
  ``outbound``), ``recording_url`` and ``ref`` (``"click-dial"``). Before v3.0.0 there is no
  ``number`` and ``ref`` holds the client's number.
* ``call`` (list ``enigma:notifications:inbound``; page "Call Connection (Inbound
  Notification)", https://tforge.atlassian.net/wiki/x/TYQ0): an inbound call bridged to an
  agent. Payload: ``number`` (caller), ``dial_number`` (the number dialled), ``hold_time``
  (seconds queued), ``call_ref``, ``contact_ref`` (often ``""``), ``call_dir: "inbound"``
  (``campaign_ref: "inbound"`` before v3.0.0) and ``ref``, the agent's extension. The page
  says the format is the Teleforge Dialler's call connection too, so a ``campaign_ref`` other
  than ``inbound`` is read as a dialler campaign's outbound call (desk's reading).
* Page "Glossary C4D" (.../pages/3441690): ``dialed_at`` is Unix seconds when the call
  started; ``call_time`` the total duration *including ringing and holding*.
* Page "Dispositions" (.../pages/3441745): the ``end_reason`` values and their ISDN (Q.850)
  ``end_code``: ``hungup``/``callee_hungup``/``agent_hungup``/``voicemail`` 0 or 16,
  ``busy`` 17, ``reject`` 19/21/22, ``timeout`` 18/102, ``error`` 28/34/42/others,
  ``failed``; Click2Dial before v2.3.0 sent raw words (``ANSWER``, ``BUSY``, ``NOANSWER``,
  ``CANCEL``, ``CONGESTION``, ``CHANUNAVAIL``, ``DONTCALL``, ``TORTURE``, ``INVALIDARGS``).
  It also says Click2Dial reports *every* hangup as ``hungup``, including a caller giving
  up before the callee answered.
* Older versions used the lists ``enigma:notifications:c2d`` and
  ``enigma:notifications:campaigns`` with the same envelope: the list does not matter here.

Which call an item belongs to (``provider_call_id``): an inbound call is keyed by
``call_ref``, Teleforge's id, because its ``contact_ref`` is usually empty (or typed in an
IVR). Any other call is keyed by ``contact_ref``, the reference the desk sent with its dial
and the id of the row it made, falling back to ``call_ref`` when empty (a pre-v3 page says
``call_ref`` then carried the caller's reference).

How a CDR ends the call (desk's reading of the codes above):

* inbound with a null ``extension`` → ``missed`` (the caller gave up in the queue);
* an ``end_reason`` that names the outcome wins: ``busy`` → busy, ``reject`` / ``DONTCALL``
  / ``TORTURE`` → rejected, ``timeout`` / ``NOANSWER`` → no_answer, ``voicemail`` →
  voicemail, ``CANCEL`` → cancelled, ``CONGESTION`` → congestion, ``CHANUNAVAIL`` →
  unavailable, ``error`` / ``failed`` / ``INVALIDARGS`` → failed;
* otherwise the ``end_code``: 17 → busy, 18 / 19 / 102 → no_answer, 21 → rejected;
  0 or 16 (normal clearing), or no code with a hangup word, → talked when ``call_time`` is
  more than 0 (the end cause is the hangup word, e.g. ``callee_hungup``), else no_answer.
  Because ``call_time`` includes ringing, a caller who gave up while it rang is read as
  talked: Teleforge's CDR does not tell the two apart;
* anything else → failed.

A talked call's duration is left to ``desk.providers.teleforge.fold``: the time since the
desk saw it answered when it did (a ``call`` item), else ``call_time``. ``call_time``,
``hold_time``, ``recording_url`` and the rest are kept on the call as provider facts.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from desk.domain.events import CallEvent, EventKind, Parsed
from desk.providers.teleforge.rules import PROVIDER

CDR, CALL = "cdr", "call"
KINDS = (CDR, CALL)


@dataclass(frozen=True)
class UnknownNotification:
    """A popped notification the desk could not read. Keep it (log it); never drop it."""

    raw: bytes | str
    reason: str
    received_at: datetime | None = None
    reference: str | None = None

    @property
    def text(self) -> str:
        """The payload as text for the event log, undecodable bytes escaped."""
        if isinstance(self.raw, bytes):
            return self.raw.decode("utf-8", errors="backslashreplace")
        return self.raw


@dataclass(frozen=True)
class Notification(Parsed):
    """A notification read: the events, plus what the fold keeps beyond the call's state.

    ``facts`` go into ``Call.provider_facts``. ``call_time`` is set on a CDR of a talked call:
    the duration to use unless the desk knows when the call was answered (see
    ``desk.providers.teleforge.fold``); its ``ended`` event then carries no duration.
    """

    facts: dict[str, Any] = field(default_factory=dict, hash=False)
    call_time: int | None = None

    @property
    def ended(self) -> CallEvent | None:
        return next((event for event in self.events if event.kind == "ended"), None)


# end_reason (lower case) → end cause, for the words that name the outcome by themselves.
_REASON_CAUSE = {
    "busy": "busy",
    "reject": "rejected",
    "timeout": "no_answer",
    "voicemail": "voicemail",
    "error": "failed",
    "failed": "failed",
    # Raw dispositions, Click2Dial before v2.3.0.
    "noanswer": "no_answer",
    "cancel": "cancelled",
    "congestion": "congestion",
    "chanunavail": "unavailable",
    "dontcall": "rejected",
    "torture": "rejected",
    "invalidargs": "failed",
}
# Words of a normal hangup: whether anyone talked is up to call_time.
_HANGUP = ("hungup", "callee_hungup", "agent_hungup", "answer")
_CODE_CAUSE = {17: "busy", 18: "no_answer", 19: "no_answer", 102: "no_answer", 21: "rejected"}
_CLEARING = (0, 16)
_DIRECTIONS = ("inbound", "outbound")

_TOKEN = re.compile(r"[^\x00-\x1f\x7f]{1,255}")
_URL_MAX = 2000
_SECONDS_MAX = 7 * 86400  # no call lasts a week; a bigger number is garbage
# A provider clock far from ours is less trustworthy than the arrival time.
_CLOCK_PAST, _CLOCK_FUTURE = timedelta(days=7), timedelta(minutes=5)


def _text(payload: dict[str, Any], key: str, limit: int = 255) -> str | None:
    """A short printable value (numbers too: extensions arrive as 101 or "101")."""
    value = payload.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    text = str(value).strip()
    return text[:limit] if text and _TOKEN.fullmatch(text) else None


def _whole(payload: dict[str, Any], key: str) -> int | None:
    """A whole non-negative number of seconds or a code, given as a number or digits."""
    value = payload.get(key)
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = int(float(value))
    except (TypeError, ValueError, OverflowError):
        return None
    return number if 0 <= number < _SECONDS_MAX else None


def _dialed_at(payload: dict[str, Any], received_at: datetime) -> datetime | None:
    """``dialed_at`` (Unix seconds) when plausible; the desk's clock is trusted over a far one."""
    seconds = payload.get("dialed_at")
    if isinstance(seconds, str) and re.fullmatch(r"\s*[0-9]+(\.[0-9]+)?\s*", seconds):
        seconds = float(seconds)
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        return None
    try:
        at = datetime.fromtimestamp(seconds, UTC)
    except (ValueError, OverflowError, OSError):
        return None
    return at if received_at - _CLOCK_PAST <= at <= received_at + _CLOCK_FUTURE else None


def _direction(payload: dict[str, Any]) -> str | None:
    direction = (_text(payload, "call_dir", 32) or "").lower()
    if direction in _DIRECTIONS:
        return direction
    campaign = _text(payload, "campaign_ref", 255)
    if campaign:  # before v3.0.0; a dialler campaign's name otherwise
        return "inbound" if campaign.lower() == "inbound" else "outbound"
    return None


def _key(payload: dict[str, Any], direction: str | None) -> str | None:
    call_ref, contact_ref = _text(payload, "call_ref"), _text(payload, "contact_ref")
    if direction == "inbound":
        return call_ref or contact_ref
    return contact_ref or call_ref


def _ending(
    payload: dict[str, Any], direction: str | None, call_time: int | None
) -> tuple[str | None, bool]:
    """(end cause, talked) of a CDR, by the rules in the module docstring."""
    if direction == "inbound" and _text(payload, "extension") is None:
        return "missed", False
    word = (_text(payload, "end_reason", 64) or "").lower()
    code = _whole(payload, "end_code")
    if word in _REASON_CAUSE:
        return _REASON_CAUSE[word], False
    if code in _CODE_CAUSE:
        return _CODE_CAUSE[code], False
    if code in _CLEARING or (code is None and word in _HANGUP):
        if call_time:
            return (word if word in _HANGUP and word != "answer" else None), True
        return "no_answer", False
    return "failed", False


def _facts(payload: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    facts: dict[str, Any] = {}
    for key in keys:
        if key in ("call_time", "hold_time", "end_code"):
            value: Any = _whole(payload, key)
        elif key == "recording_url":
            raw = payload.get(key)
            value = raw.strip() if isinstance(raw, str) and raw.strip() else None
            if value and (len(value) > _URL_MAX or not _TOKEN.fullmatch(value[:255])):
                value = None
        else:
            value = _text(payload, key)
        if value is not None:
            facts[key] = value
    return facts


def _event(kind: EventKind, at: datetime, key: str, direction: str | None,
           numbers: tuple[str | None, str | None], **extra: Any) -> CallEvent:
    return CallEvent(provider=PROVIDER, provider_call_id=key, kind=kind,
                     at=at, direction=direction, from_number=numbers[0], to_number=numbers[1],
                     **extra)


def _cdr(payload: dict[str, Any], key: str, direction: str | None, received_at: datetime,
         dedupe: str) -> Notification:
    call_time = _whole(payload, "call_time")
    extension = _text(payload, "extension", 64)
    # v3.0.0 has "number"; before, "ref" held the client's number (since then "click-dial").
    client = _text(payload, "number", 64) if "number" in payload else None
    if client is None and "number" not in payload:
        ref = _text(payload, "ref", 64)
        client = ref if ref and ref.lower() != "click-dial" else None
    numbers = (client, _text(payload, "dial_number", 64)) if direction == "inbound" else (
        extension, client)

    # The call ran from dialed_at for call_time seconds; without a usable dialed_at it ended
    # when the CDR arrived (Teleforge pushes it at the end of the call).
    # An end in the future means the PBX's clock is off: keep the call's length, not its times.
    ended_at, started_at = received_at, None
    dialed = _dialed_at(payload, received_at)
    if dialed is not None:
        ends = dialed + timedelta(seconds=call_time or 0)
        if ends <= received_at + _CLOCK_FUTURE:
            started_at, ended_at = dialed, ends
    if started_at is None:
        started_at = ended_at - timedelta(seconds=call_time or 0)

    cause, talked = _ending(payload, direction, call_time)
    # An inbound call's agent is the one who answered it; an outbound call's is its own.
    answered_by = extension if (talked or direction != "inbound") else None
    start = _event("dialling" if direction == "outbound" else "ringing", started_at, key,
                   direction, numbers)
    end = _event("ended", ended_at, key, direction, numbers, answered_by=answered_by,
                 end_cause=cause, duration=None if talked else 0)
    facts = _facts(payload, ("call_ref", "contact_ref", "end_reason", "end_code", "call_time",
                             "hold_time", "recording_url"))
    return Notification(kind=CDR, provider_call_id=key, dedupe_key=dedupe, events=(start, end),
                        facts=facts, call_time=call_time if talked else None)


def _call(payload: dict[str, Any], key: str, direction: str, received_at: datetime,
          dedupe: str) -> Notification:
    agent = _text(payload, "ref", 64)
    number, dialled = _text(payload, "number", 64), _text(payload, "dial_number", 64)
    numbers = (number, dialled) if direction == "inbound" else (agent, number)
    # No time in the item: it is pushed when the agent is bridged, so arrival is answer
    # time; the caller had waited ``hold_time`` seconds in the queue before that.
    queued = _whole(payload, "hold_time") or 0
    events: list[CallEvent] = []
    if direction == "inbound":
        events.append(_event("ringing", received_at - timedelta(seconds=queued), key, direction,
                             numbers))
    events.append(_event("answered", received_at, key, direction, numbers, answered_by=agent))
    facts = _facts(payload, ("call_ref", "contact_ref"))
    if _whole(payload, "hold_time") is not None:
        facts["queue_hold_time"] = queued
    return Notification(kind=CALL, provider_call_id=key, dedupe_key=dedupe,
                        events=tuple(events), facts=facts)


def _dedupe(kind: str, document: dict[str, Any]) -> str:
    """The same item pushed again is a duplicate: a digest of its content, key order aside."""
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                           default=str)
    return f"{kind}:{hashlib.sha256(canonical.encode('utf-8', 'surrogatepass')).hexdigest()}"


def parse_notification(
    raw: bytes | str, received_at: datetime
) -> Notification | UnknownNotification:
    """Read one item taken from a Teleforge list. Never raises.

    ``received_at`` is when it was taken (the desk's clock, UTC). Returns a ``Notification``
    (a ``Parsed``) for a readable ``cdr`` or ``call`` item, else an ``UnknownNotification``
    with the reason and the raw item.
    """

    def unknown(reason: str, reference: str | None = None) -> UnknownNotification:
        return UnknownNotification(raw, reason, received_at, reference)

    if received_at.tzinfo is None:  # the desk's clock is UTC; never compare naive with aware
        received_at = received_at.replace(tzinfo=UTC)
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            return unknown(f"not UTF-8 text (byte {exc.start}: {raw[exc.start : exc.start + 1]!r})")
    elif isinstance(raw, str):
        text = raw
    else:
        return unknown(f"not bytes or text but {type(raw).__name__}")
    text = text.strip()
    if not text:
        return unknown("empty notification")
    try:
        document: Any = json.loads(text)
    except RecursionError:
        return unknown("JSON nested too deeply")
    except ValueError:
        return unknown("not JSON; Teleforge sends {\"type\": ..., \"payload\": {...}}")
    if not isinstance(document, dict):
        return unknown(f"expected a JSON object, got {type(document).__name__}")

    kind = document.get("type")
    payload = document.get("payload")
    if not isinstance(kind, str) or not isinstance(payload, dict):
        return unknown("not a Teleforge notification: expected {\"type\": ..., \"payload\": "
                       "{...}}")
    kind = kind.strip().lower()
    direction = _direction(payload)
    if kind == CALL:
        direction = direction or "inbound"  # the list a "call" item comes on is the inbound one
    key = _key(payload, direction)
    if kind not in KINDS:
        return unknown(f"unknown notification type {document['type'][:40]!r} (the desk reads "
                       "'cdr' and 'call')", key)
    if key is None:
        return unknown(f"a {kind!r} notification without call_ref or contact_ref")
    dedupe = _dedupe(kind, document)
    if kind == CDR:
        return _cdr(payload, key, direction, received_at, dedupe)
    return _call(payload, key, direction or "inbound", received_at, dedupe)
