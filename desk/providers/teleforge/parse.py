"""Teleforge's call notifications, as popped from its Redis LIST: parsed into call events.

Pure: ``parse_notification`` takes the raw item and the time it was popped and returns a
``Parsed`` or an ``UnknownNotification`` to keep (never drop) with the reason.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

from desk.domain.events import CallEvent, Parsed
from desk.providers.teleforge.rules import PROVIDER


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


# Status words → (event kind, end cause). Teleforge appears to be built on Asterisk (its
# WebRTC socket is Asterisk's :8088/ws), so Asterisk's channel states and DIALSTATUS values
# are understood next to plain English ones.
_STATUS: dict[str, tuple[str, str | None]] = {
    **dict.fromkeys(
        [
            "dialling",
            "dialing",
            "dial",
            "calling",
            "originate",
            "originating",
            "originated",
            "initiated",
            "created",
            "new",
            "queued",
            "trying",
            "start",
            "started",
        ],
        ("dialling", None),
    ),
    **dict.fromkeys(
        ["ringing", "ring", "alerting", "progress", "early", "ringback"], ("ringing", None)
    ),
    **dict.fromkeys(
        ["answered", "answer", "up", "connected", "bridged", "joined", "talking", "in_progress"],
        ("answered", None),
    ),
    **dict.fromkeys(
        [
            "ended",
            "end",
            "hangup",
            "hung_up",
            "hungup",
            "completed",
            "complete",
            "finished",
            "disconnected",
            "terminated",
        ],
        ("ended", None),
    ),
    "busy": ("ended", "busy"),
    **dict.fromkeys(["noanswer", "no_answer"], ("ended", "no_answer")),
    **dict.fromkeys(["cancel", "cancelled", "canceled"], ("ended", "cancelled")),
    **dict.fromkeys(["rejected", "declined"], ("ended", "rejected")),
    **dict.fromkeys(
        ["failed", "failure", "congestion", "chanunavail", "unavailable", "error"],
        ("ended", "failed"),
    ),
}
_STATUS_KEYS = ("event", "status", "state", "call_status", "call_state", "dialstatus", "type")
_REFERENCE_KEYS = (
    "callcontact_ref",
    "contactcall_ref",
    "custom_call_ref",
    "call_ref",
    "contact_ref",
    "reference",
    "ref",
)
_NESTED_KEYS = ("data", "payload", "call", "body")
_TIME_KEYS = ("timestamp", "time", "at", "ts", "event_time", "datetime")
_CAUSE_KEYS = ("cause", "hangup_cause", "end_cause", "reason")
_DURATION_KEYS = ("duration", "billsec", "talk_time")
_ID_KEYS = ("event_id", "id", "uuid")
_TOKEN = re.compile(r"[^\x00-\x1f\x7f]{1,255}")
# A provider clock far from ours is less trustworthy than the arrival time.
_CLOCK_PAST, _CLOCK_FUTURE = timedelta(days=7), timedelta(minutes=5)


def _scalar(data: dict[str, Any], keys: tuple[str, ...], limit: int = 255) -> str | None:
    for key in keys:
        value = data.get(key)
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, int | float | str):
            text = str(value).strip()
            if text and _TOKEN.fullmatch(text):
                return text[:limit]
    return None


def _timestamp(data: dict[str, Any], received_at: datetime) -> datetime:
    """The provider's time when it is unambiguous (epoch, or ISO with an offset) and plausible.

    A naive ISO time is ignored: the PBX's time zone is unknown, and a wrong guess would move
    the call hours because ``desk.services.ingest`` keeps the earliest time it sees.
    """
    for key in _TIME_KEYS:
        value = data.get(key)
        at: datetime | None = None
        try:
            if isinstance(value, int | float) and not isinstance(value, bool):
                seconds = value / 1000 if value > 1e11 else value
                at = datetime.fromtimestamp(seconds, UTC)
            elif isinstance(value, str) and value.strip():
                text = value.strip()
                if re.fullmatch(r"[0-9]+(\.[0-9]+)?", text):
                    number = float(text)
                    at = datetime.fromtimestamp(number / 1000 if number > 1e11 else number, UTC)
                else:
                    parsed = datetime.fromisoformat(text)
                    at = parsed if parsed.tzinfo else None
        except (ValueError, OverflowError, OSError):
            at = None
        if at and received_at - _CLOCK_PAST <= at <= received_at + _CLOCK_FUTURE:
            return at.astimezone(UTC)
    return received_at


def _duration(data: dict[str, Any]) -> int | None:
    for key in _DURATION_KEYS:
        value = data.get(key)
        if value is None or isinstance(value, bool):
            continue
        try:
            seconds: int | None = int(float(value))
        except (TypeError, ValueError, OverflowError):
            seconds = None
        if seconds is not None and 0 <= seconds < 10**7:
            return seconds
    return None


def _flatten(data: dict[str, Any]) -> dict[str, Any]:
    """Top-level keys, filled in from one nested object such as ``{"data": {...}}``."""
    merged = {str(k).lower(): v for k, v in data.items()}
    for key in _NESTED_KEYS:
        inner = merged.get(key)
        if isinstance(inner, dict):
            for k, v in inner.items():
                merged.setdefault(str(k).lower(), v)
    return merged


def _event(data: dict[str, Any], received_at: datetime) -> tuple[str, str, CallEvent] | str:
    """One notification object → (status word, dedupe part, event), or the reason it is unknown."""
    fields = _flatten(data)
    reference = _scalar(fields, _REFERENCE_KEYS)
    if reference is None:
        return "no call reference (callcontact_ref, contactcall_ref, reference, ...)"
    words = [w for w in (_scalar(fields, (key,), 64) for key in _STATUS_KEYS) if w]
    if not words:
        return f"no status (event, status or state) for reference {reference[:60]!r}"
    known = [w for w in words if re.sub(r"[\s-]+", "_", w.lower()) in _STATUS]
    if not known:
        return f"unknown status {words[0]!r} for reference {reference[:60]!r}"
    word = known[0]
    kind, cause = _STATUS[re.sub(r"[\s-]+", "_", word.lower())]
    if kind == "ended":
        explicit_cause = _scalar(fields, _CAUSE_KEYS, 64)
        cause = explicit_cause.lower() if explicit_cause else cause
    agent = _scalar(fields, ("agent", "ext", "extension"), 64)
    event = CallEvent(
        provider=PROVIDER,
        provider_call_id=reference,
        kind=kind,  # type: ignore[arg-type]
        at=_timestamp(fields, received_at),
        direction="outbound",
        from_number=agent,
        to_number=_scalar(fields, ("callee", "to", "destination"), 64),
        answered_by=agent,
        end_cause=cause,
        duration=_duration(fields) if kind == "ended" else None,
    )
    event_id = _scalar(fields, _ID_KEYS, 64)
    return word, event_id or word.lower(), event


def parse_notification(raw: bytes | str, received_at: datetime) -> Parsed | UnknownNotification:
    """Read one notification popped (BRPOP/RPOP) from Teleforge's Redis LIST. Never raises.

    The payload is undocumented. Accepted: a JSON object or a form-encoded ``key=value&...``
    line, carrying

    * a reference: ``callcontact_ref`` (v3+), ``contactcall_ref`` (before), ``custom_call_ref``,
      ``call_ref``, ``contact_ref``, ``reference`` or ``ref``;
    * a status in ``event``, ``status``, ``state``, ``call_status``, ``call_state``,
      ``dialstatus`` or ``type``: dialling / ringing / answered (up, bridged, joined, ...) /
      ended (hangup, completed, busy, noanswer, cancel, failed, congestion, ...);
    * optionally ``agent``, ``callee``, ``timestamp`` (epoch s/ms or ISO with offset),
      ``cause``, ``duration``, ``event_id``.

    Keys are matched case-insensitively, also inside one nested ``data``/``payload``/``call``
    object. Anything else comes back as ``UnknownNotification`` with the raw payload.
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
        pairs = parse_qsl(text, keep_blank_values=True)
        if not pairs or "=" not in text or "{" in text:
            return unknown("neither JSON nor key=value pairs")
        document = dict(pairs)
    if not isinstance(document, dict):
        return unknown(f"expected a JSON object, got {type(document).__name__}")

    result = _event(document, received_at)
    if isinstance(result, str):
        return unknown(result, _scalar(_flatten(document), _REFERENCE_KEYS))
    word, dedupe, event = result
    return Parsed(
        kind=word,
        provider_call_id=event.provider_call_id,
        dedupe_key=f"{event.provider_call_id}:{dedupe}",
        events=(event,),
    )
