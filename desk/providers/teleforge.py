"""Teleforge Click2Dial adapter: dial rules, the request payload, the HTTP client, notifications.

Owns everything the desk knows about Teleforge's Click2Dial (``specs/teleforge-click2dial.txt``):
checking and normalising what an agent typed into the dial form (``validate_dial``), the JSON
body for ``POST /click2dial/calls`` in the key spelling of the PBX's version (``payload``), the
WebRTC variant's SIP headers (``sip_headers``), the outbound client (``TeleforgeClient``) and
the notifications Teleforge pushes onto a Redis LIST (``parse_notification``). Pure, like the
other adapters: no ``request``, no ``current_app``, no database. The client never retries: a
second POST could ring a customer twice, so every failure goes back to the agent, saying
whether the call may already have been placed.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

import requests
from urllib3.exceptions import NewConnectionError

from desk.events import CallEvent, Parsed

PROVIDER = "teleforge"
DEFAULT_PORT = 8300  # from Teleforge v3.3; older PBXs use the port in their issued configuration
REFERENCE_MAX = 230  # Teleforge truncates longer references silently; we refuse them instead

_EXTENSION = re.compile(r"[0-9]{3,4}")
# The document's three callee forms: national, international without prefix, with 00 prefix.
_CALLEE_FORMS = (re.compile(r"0[0-9]{9}"), re.compile(r"27[0-9]{9}"), re.compile(r"00[0-9]{11,14}"))
_OUTBOUND_RECOMMENDED = re.compile(r"27[0-9]{9}")
_OUTBOUND_NATIONAL = re.compile(r"0[0-9]{9}")
# Campaign names are PBX configuration and undocumented; keep them to a safe token.
_OUTBOUND_CAMPAIGN = re.compile(r"tvc_([A-Za-z0-9._~-]{1,100})", re.IGNORECASE)
_REFERENCE_CHAR = re.compile(r"[A-Za-z0-9._~-]")
_VERSION = re.compile(r"v?([0-9]+)(?:\.([0-9]+))?(?:\.([0-9]+))?", re.IGNORECASE)
# Pasted numbers: whitespace (any kind, and the invisible characters web pages carry),
# dashes (ASCII and typographic), dots, brackets, slashes.
_PUNCTUATION = re.compile(r"[\s\u200b-\u200d\u2060\ufeff\-\u2010-\u2015\u2212.()\[\]/]")
_TRUNK_ZERO = re.compile(r"\(\s*0\s*\)")

CALLEE_EXPECTED = (
    "10 digits starting 0 (0820001234), 11 digits starting 27 (27820001234) "
    "or 13 to 16 digits starting 00 (0027820001234)"
)
AGENT_EXPECTED = f"a 3 or 4 digit extension (1001), or a phone number: {CALLEE_EXPECTED}"
OUTBOUND_EXPECTED = (
    "'random', 'tvc_<campaign>', 11 digits starting 27 (27820001234, recommended) "
    "or 10 digits starting 0 (0820001234)"
)
REFERENCE_EXPECTED = (
    f"letters, digits and . - _ ~ only, at most {REFERENCE_MAX} characters; "
    "leave it empty to have one generated"
)


# --- the dial form -------------------------------------------------------------------------


class DialInvalid(ValueError):
    """The dial form has mistakes: ``errors`` maps field → message, ``warnings`` likewise."""

    def __init__(self, errors: dict[str, str], warnings: dict[str, str] | None = None) -> None:
        self.errors = dict(errors)
        self.warnings = dict(warnings or {})
        super().__init__("; ".join(f"{name}: {message}" for name, message in self.errors.items()))


@dataclass(frozen=True)
class DialRequest:
    """A checked dial: normalised values (show these to the agent) and any warnings."""

    agent: str
    callee: str
    outbound_id: str
    reference: str
    reference_generated: bool = False
    warnings: dict[str, str] = field(default_factory=dict, hash=False)


def normalise_number(raw: str) -> str:
    """Strip what people paste around a number; a leading ``+`` becomes ``00``.

    ``"+27 (82) 123-4567"`` → ``"0027821234567"``, ``"082 123 4567"`` → ``"0821234567"``.
    A trunk zero in brackets after an international prefix (``"+27 (0)82 ..."``) is dropped:
    kept, it would make a 14-digit number that passes the 00 rule but rings nobody. Anything
    else (letters, a ``+`` in the middle) is left in place for the validator to report.
    """
    text = raw.strip()
    if text.startswith(("+", "00")):
        text = _TRUNK_ZERO.sub("", text)
    text = _PUNCTUATION.sub("", text)
    if text.startswith("+"):
        text = "00" + text[1:]
    return text


def _is_callee(number: str) -> bool:
    return any(form.fullmatch(number) for form in _CALLEE_FORMS)


def _received(raw: str, normalised: str) -> str:
    """How a message quotes what the person typed, and what we made of it when different."""
    shown = raw.strip()
    digits = sum(ch.isdigit() for ch in normalised)
    if shown != normalised:
        return f"{shown[:40]!r} (read as {normalised[:40]!r}, {digits} digits)"
    return f"{shown[:40]!r} ({digits} digits)" if normalised.isdigit() else f"{shown[:40]!r}"


def _check_agent(raw: str) -> tuple[str, str | None]:
    value = normalise_number(raw)
    if not value:
        return value, f"the agent extension is missing; expected {AGENT_EXPECTED}"
    if _EXTENSION.fullmatch(value) or _is_callee(value):
        return value, None
    return value, f"received {_received(raw, value)}; expected {AGENT_EXPECTED}"


def _check_callee(raw: str) -> tuple[str, str | None]:
    value = normalise_number(raw)
    if not value:
        return value, f"the number to dial is missing; expected {CALLEE_EXPECTED}"
    if _is_callee(value):
        return value, None
    return value, f"received {_received(raw, value)}; expected {CALLEE_EXPECTED}"


def _check_outbound(raw: str) -> tuple[str, str | None, str | None]:
    """Returns (value, error, warning)."""
    text = raw.strip()
    if not text:
        return text, f"the outbound caller ID is missing; expected {OUTBOUND_EXPECTED}", None
    if text.lower() == "random":
        return "random", None, None
    campaign = _OUTBOUND_CAMPAIGN.fullmatch(text)
    if campaign:
        return f"tvc_{campaign.group(1)}", None, None
    value = normalise_number(text)
    # +27 82 ... is the recommended 27 form with an international prefix; say it that way.
    if value.startswith("0027") and _OUTBOUND_RECOMMENDED.fullmatch(value[2:]):
        value = value[2:]
    if _OUTBOUND_RECOMMENDED.fullmatch(value):
        return value, None, None
    if _OUTBOUND_NATIONAL.fullmatch(value):
        recommended = "27" + value[1:]
        return (
            value,
            None,
            (
                f"{value} is allowed, but providers often reject a caller ID starting 0; "
                f"{recommended} is the recommended form"
            ),
        )
    if text.lower().startswith("tvc_"):
        return (
            text,
            (
                f"received {text[:40]!r}; a campaign caller ID is 'tvc_' followed by 1 to 100 "
                "letters, digits or . - _ ~"
            ),
            None,
        )
    return value, f"received {_received(raw, value)}; expected {OUTBOUND_EXPECTED}", None


def _check_reference(raw: str) -> tuple[str, str | None]:
    value = raw.strip()
    if len(value) > REFERENCE_MAX:
        return value, (
            f"received {len(value)} characters; at most {REFERENCE_MAX} are allowed "
            "(Teleforge would cut the rest off and its notifications would no longer match)"
        )
    bad = sorted({ch for ch in value if not _REFERENCE_CHAR.fullmatch(ch)})
    if bad:
        shown = ", ".join(repr(ch) for ch in bad[:10])
        return value, f"received {value[:40]!r}, which contains {shown}; use {REFERENCE_EXPECTED}"
    return value, None


def generate_reference() -> str:
    """A reference for a dial the agent left without one: ``desk-`` + 32 random hex digits."""
    return f"desk-{uuid.uuid4().hex}"


def validate_dial(agent: str, callee: str, outbound_id: str, reference: str) -> DialRequest:
    """Check every field of a dial at once. Raises ``DialInvalid`` listing each bad field.

    Follows the document's rules; where the form is more forgiving it is in what people
    paste (see ``normalise_number``). ``agent`` may also be a phone number: the document
    defines it as "the agent extension or the first number connected to the call".
    """
    errors: dict[str, str] = {}
    warnings: dict[str, str] = {}

    agent_value, error = _check_agent(agent)
    if error:
        errors["agent"] = error
    callee_value, error = _check_callee(callee)
    if error:
        errors["callee"] = error
    outbound_value, error, warning = _check_outbound(outbound_id)
    if error:
        errors["outbound_id"] = error
    if warning:
        warnings["outbound_id"] = warning
    reference_value, error = _check_reference(reference)
    if error:
        errors["reference"] = error

    if errors:
        raise DialInvalid(errors, warnings)
    generated = not reference_value
    return DialRequest(
        agent=agent_value,
        callee=callee_value,
        outbound_id=outbound_value,
        reference=reference_value or generate_reference(),
        reference_generated=generated,
        warnings=warnings,
    )


# --- versions, payload, SIP headers ----------------------------------------------------------


def parse_version(version: str) -> tuple[int, int, int]:
    """``"2.9"``, ``"3.0.0"``, ``"v4.1"`` → a comparable triple. Raises ``ValueError``."""
    match = _VERSION.fullmatch(str(version).strip())
    if not match:
        raise ValueError(
            f"Teleforge version {str(version)[:40]!r} is not a version number; "
            "expected something like 3.3 or 4.0.1"
        )
    major, minor, patch = (int(part) if part else 0 for part in match.groups())
    return major, minor, patch


def reference_key(version: str) -> str:
    """The reference's key: ``callcontact_ref`` from v3.0.0, before that ``contactcall_ref``."""
    return "callcontact_ref" if parse_version(version) >= (3, 0, 0) else "contactcall_ref"


def payload(request: DialRequest, version: str) -> dict[str, str]:
    """The JSON body of ``POST /click2dial/calls``. All values are strings (leading zeros)."""
    return {
        "agent": request.agent,
        "callee": request.callee,
        "outbound_id": request.outbound_id,
        reference_key(version): request.reference,
    }


def _sip_prefix(version: str) -> str:
    return "X-Teleforge" if parse_version(version) >= (4, 0, 0) else "X-Platforma"


def sip_headers(request: DialRequest, version: str) -> dict[str, str]:
    """The extra SIP headers of the WebRTC variant: ``X-Teleforge-*`` from v4.0.0, before
    ``X-Platforma-*``. The browser sends them with ``invite('sip:<callee>@<server>')``."""
    prefix = _sip_prefix(version)
    return {
        f"{prefix}-Outbound-ID": request.outbound_id,
        f"{prefix}-Contact-Ref": request.reference,
    }


def sip_error_header(version: str) -> str:
    """The SIP header a failed WebRTC call carries its validation errors in."""
    return f"{_sip_prefix(version)}-Error"


# --- the client ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DialResult:
    """Teleforge accepted the dial. ``body`` is its answer (JSON when it sent JSON, else text)."""

    status: int
    reference: str
    body: Any


# Names Teleforge (or a proxy in front of it) may give our fields in an error answer.
_FIELD_NAMES = {
    "agent": "agent",
    "ext": "agent",
    "extension": "agent",
    "callee": "callee",
    "outbound_id": "outbound_id",
    "outbound": "outbound_id",
    "callerid": "outbound_id",
    "caller_id": "outbound_id",
    "clid": "outbound_id",
    "callcontact_ref": "reference",
    "contactcall_ref": "reference",
    "custom_call_ref": "reference",
    "reference": "reference",
}
_MESSAGE_KEYS = ("message", "msg", "error", "detail", "description", "reason")


class TeleforgeError(Exception):
    """A dial that did not go through.

    ``kind`` is one of:

    * ``refused`` - nothing listens at the address (wrong port? 8300 from v3.3);
    * ``unreachable`` - the host cannot be resolved or connected to; nothing was sent;
    * ``timeout`` - Teleforge got the request but did not answer in time;
    * ``interrupted`` - the connection dropped after the request was sent;
    * ``rejected`` - a 4xx: Teleforge refused the values (``field_errors`` uses our field names);
    * ``server_error`` - a 5xx;
    * ``unexpected`` - any other answer (1xx, 3xx: redirects are not followed).

    ``may_have_dialled`` tells the agent to look at the board before dialling again.
    """

    def __init__(
        self,
        kind: str,
        message: str,
        status: int | None = None,
        body: Any = None,
        field_errors: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status
        self.body = body
        self.field_errors = dict(field_errors or {})

    @property
    def may_have_dialled(self) -> bool:
        return self.kind in ("timeout", "interrupted", "server_error", "unexpected")


def _caused_by(exc: BaseException, *types: type[BaseException]) -> bool:
    """Whether ``types`` appears in the chain requests/urllib3 wrap a socket error in."""
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, types):
            return True
        links = [current.__cause__, current.__context__, getattr(current, "reason", None)]
        links += [arg for arg in current.args if isinstance(arg, BaseException)]
        pending.extend(link for link in links if isinstance(link, BaseException))
    return False


def _body(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text


def _as_text(value: Any) -> str:
    if isinstance(value, list):
        return "; ".join(_as_text(item) for item in value)
    if isinstance(value, dict):
        for key in _MESSAGE_KEYS:
            if key in value:
                return _as_text(value[key])
        return json.dumps(value, sort_keys=True)
    return str(value)


def field_errors_from(
    body: Any, headers: dict[str, str] | None = None
) -> tuple[dict[str, str], str]:
    """Teleforge's validation errors in our field names, plus what could not be placed.

    Teleforge documents its error format only for WebRTC (``X-Platforma-Error`` /
    ``X-Teleforge-Error`` headers); the REST answer is undocumented, so this accepts
    ``{"errors": {field: msg | [msg]}}``, ``{"errors": [{"field": f, "message": m}]}``,
    ``{field: [msg]}``, ``{"error"|"message": text}``, the error headers and plain text. A
    plain message naming exactly one of our fields is filed under that field.
    """
    fields: dict[str, str] = {}
    general: list[str] = []

    def add(name: str | None, message: Any) -> None:
        text = _as_text(message).strip()
        if not text:
            return
        ours = _FIELD_NAMES.get((name or "").strip().lower())
        if ours is None and name is None:
            mentioned = {v for k, v in _FIELD_NAMES.items() if re.search(rf"\b{k}\b", text, re.I)}
            ours = mentioned.pop() if len(mentioned) == 1 else None
        if ours:
            fields[ours] = f"{fields[ours]}; {text}" if ours in fields else text
        elif name:
            general.append(f"{name}: {text}")
        else:
            general.append(text)

    if isinstance(body, dict):
        errors = body.get("errors", body.get("validation_errors"))
        if isinstance(errors, dict):
            for name, message in errors.items():
                add(str(name), message)
        elif isinstance(errors, list):
            for item in errors:
                if isinstance(item, dict):
                    keys = ("field", "param", "name", "key")
                    name = next((item[k] for k in keys if k in item), None)
                    add(str(name) if name is not None else None, item)
                else:
                    add(None, item)
        for key, value in body.items():
            # {"callee": ["..."]}: a list under one of our names is an error, a plain value
            # is more likely Teleforge echoing what it received.
            if errors is None and key.lower() in _FIELD_NAMES and isinstance(value, list):
                add(key, value)
            elif key in _MESSAGE_KEYS:
                add(None, value)
    elif isinstance(body, list):
        for item in body:
            add(None, item)
    elif isinstance(body, str) and body.strip():
        add(None, body[:500])

    for header, value in (headers or {}).items():
        if header.lower() in ("x-teleforge-error", "x-platforma-error"):
            add(None, value)
    return fields, "; ".join(general)


class TeleforgeClient:
    """Places dials on one Teleforge PBX. Built from settings; one POST per dial, never more."""

    def __init__(self, base_url: str, version: str, timeout: float) -> None:
        parse_version(version)  # refuse a bad version at start-up, not at the first dial
        self.base_url = base_url.rstrip("/")
        self.version = version
        self.timeout = timeout

    @property
    def url(self) -> str:
        return f"{self.base_url}/click2dial/calls"

    def dial(self, request: DialRequest) -> DialResult:
        """POST the dial once. Returns ``DialResult`` on 2xx, else raises ``TeleforgeError``."""
        body = payload(request, self.version)
        try:
            response = requests.post(
                self.url, json=body, timeout=self.timeout, allow_redirects=False
            )
        except requests.ConnectTimeout as exc:
            raise TeleforgeError(
                "unreachable",
                f"Teleforge at {self.base_url} did not accept a connection within "
                f"{self.timeout:g}s; the call was not placed. Check the address and network.",
            ) from exc
        except requests.Timeout as exc:
            raise TeleforgeError(
                "timeout",
                f"Teleforge did not answer within {self.timeout:g}s. The call may still have "
                "been placed: check the board before dialling again.",
            ) from exc
        except requests.ConnectionError as exc:
            if _caused_by(exc, ConnectionRefusedError):
                raise TeleforgeError(
                    "refused",
                    f"Teleforge refused the connection at {self.base_url}; the call was not "
                    f"placed. Is Click2Dial running on that port (default {DEFAULT_PORT} "
                    "from v3.3)?",
                ) from exc
            if _caused_by(exc, NewConnectionError):
                # Name resolution, no route, ...: the connection was never made.
                raise TeleforgeError(
                    "unreachable",
                    f"Teleforge at {self.base_url} cannot be reached ({_short(exc)}); "
                    "the call was not placed.",
                ) from exc
            raise TeleforgeError(
                "interrupted",
                "The connection to Teleforge dropped before it answered. The call may still "
                "have been placed: check the board before dialling again.",
            ) from exc

        answer = _body(response)
        status = response.status_code
        if 200 <= status < 300:
            return DialResult(status=status, reference=request.reference, body=answer)
        if 400 <= status < 500:
            fields, general = field_errors_from(answer, dict(response.headers))
            detail = "; ".join(
                [*(f"{k}: {v}" for k, v in fields.items()), *filter(None, [general])]
            )
            raise TeleforgeError(
                "rejected",
                f"Teleforge refused the call (HTTP {status})" + (f": {detail}" if detail else ""),
                status=status,
                body=answer,
                field_errors=fields,
            )
        if status >= 500:
            raise TeleforgeError(
                "server_error",
                f"Teleforge failed with HTTP {status}. The call may or may not have been "
                "placed: check the board before dialling again.",
                status=status,
                body=answer,
            )
        raise TeleforgeError(
            "unexpected",
            f"Teleforge answered HTTP {status}, which the desk does not expect; "
            "check the configured Teleforge URL.",
            status=status,
            body=answer,
        )


def _short(exc: BaseException) -> str:
    return str(exc)[:160]


# --- notifications from the Redis LIST -------------------------------------------------------


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
    the call hours because ``desk.calls`` keeps the earliest time it sees.
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
