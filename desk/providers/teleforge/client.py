"""Teleforge Click2Dial's outbound client: ``POST /click2dial/calls``, with its answers read.

The client never retries: a second POST could ring a customer twice, so every failure goes
back to the agent, saying whether the call may already have been placed. Field errors in
Teleforge's answer are mapped back onto the dial form's fields (``field_errors_from``).

Sources: Teleforge's page "Create a Call" (docs v4.0.0 onwards, see ``rules``) gives the URL
``POST http://<server>:<http_port>/click2dial/calls`` and the JSON body; it does not describe
the answer, so the answer's reading here is the desk's own (as tolerant as it can be).

A ``TeleforgeError``'s ``message`` is lazy (``lazy_gettext``): the dial form shows it in the
agent's language; what the desk stores of it (``Call.action_error``, the audit log) is its
English (``rules.english``). Teleforge's own texts (its error answers) are shown as they came:
it documents where they come, not their wording.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import requests
from flask import Flask
from flask_babel import lazy_gettext
from urllib3.exceptions import NewConnectionError

from desk.providers.teleforge.rules import (
    DEFAULT_PORT,
    DialRequest,
    english,
    parse_version,
    payload,
)
from desk.settings import SettingsError


def N_(text: str) -> str:
    """Marks a message for the catalogue; returns it unchanged (``lazy_gettext(TEXT, ...)``
    says it in the reader's language, ``desk.services.sweeper.stored_text`` the English a
    row keeps of it)."""
    return text


# What a failed dial says (``TeleforgeError.message``), one whole sentence each.
CONNECT_TIMEOUT = N_("Teleforge at %(url)s did not accept a connection within %(seconds)ss; "
                     "the call was not placed. Check the address and network.")
ANSWER_TIMEOUT = N_("Teleforge did not answer within %(seconds)ss. The call may still have "
                    "been placed: check the board before dialling again.")
CONNECTION_REFUSED = N_("Teleforge refused the connection at %(url)s; the call was not "
                        "placed. Is Click2Dial running on that port (default %(port)s from "
                        "v3.3)?")
UNREACHABLE = N_("Teleforge at %(url)s cannot be reached (%(reason)s); the call was not "
                 "placed.")
INTERRUPTED = N_("The connection to Teleforge dropped before it answered. The call may still "
                 "have been placed: check the board before dialling again.")
REJECTED_WITH_DETAIL = N_("Teleforge refused the call (HTTP %(status)s): %(detail)s")
REJECTED = N_("Teleforge refused the call (HTTP %(status)s)")
SERVER_ERROR = N_("Teleforge failed with HTTP %(status)s. The call may or may not have been "
                  "placed: check the board before dialling again.")
UNEXPECTED = N_("Teleforge answered HTTP %(status)s, which the desk does not expect; check "
                "the configured Teleforge URL.")
MESSAGES = (CONNECT_TIMEOUT, ANSWER_TIMEOUT, CONNECTION_REFUSED, UNREACHABLE, INTERRUPTED,
            REJECTED_WITH_DETAIL, REJECTED, SERVER_ERROR, UNEXPECTED)
"""Every sentence a ``TeleforgeError`` of ``TeleforgeClient.dial`` says."""


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
    "contact_ref": "reference",  # the body's key from v3.0.0
    "call_ref": "reference",  # before v3.0.0
    "custom_call_ref": "reference",  # what "Create a Call" calls the value
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
        message: Any,
        status: int | None = None,
        body: Any = None,
        field_errors: dict[str, str] | None = None,
    ) -> None:
        super().__init__(english(message))  # str(error), for the logs
        self.kind = kind
        self.message = message  # lazy: in the reader's language wherever it is shown
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
                lazy_gettext(CONNECT_TIMEOUT, url=self.base_url,
                             seconds=format(self.timeout, "g")),
            ) from exc
        except requests.Timeout as exc:
            raise TeleforgeError(
                "timeout",
                lazy_gettext(ANSWER_TIMEOUT, seconds=format(self.timeout, "g")),
            ) from exc
        except requests.ConnectionError as exc:
            if _caused_by(exc, ConnectionRefusedError):
                raise TeleforgeError(
                    "refused",
                    lazy_gettext(CONNECTION_REFUSED, url=self.base_url, port=DEFAULT_PORT),
                ) from exc
            if _caused_by(exc, NewConnectionError):
                # Name resolution, no route, ...: the connection was never made.
                raise TeleforgeError(
                    "unreachable",
                    lazy_gettext(UNREACHABLE, url=self.base_url, reason=_short(exc)),
                ) from exc
            raise TeleforgeError(
                "interrupted",
                lazy_gettext(INTERRUPTED),
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
                lazy_gettext(REJECTED_WITH_DETAIL, status=status, detail=detail) if detail
                else lazy_gettext(REJECTED, status=status),
                status=status,
                body=answer,
                field_errors=fields,
            )
        if status >= 500:
            raise TeleforgeError(
                "server_error",
                lazy_gettext(SERVER_ERROR, status=status),
                status=status,
                body=answer,
            )
        raise TeleforgeError(
            "unexpected",
            lazy_gettext(UNEXPECTED, status=status),
            status=status,
            body=answer,
        )


def _short(exc: BaseException) -> str:
    return str(exc)[:160]



def init_app(app: Flask) -> None:
    """Build the Teleforge client from settings, refusing a bad version at start-up."""
    url = app.config.get("DESK_TELEFORGE_URL") or ""
    client = None
    if url:
        try:
            client = TeleforgeClient(
                url, str(app.config["DESK_TELEFORGE_VERSION"]),
                float(app.config["DESK_PROVIDER_TIMEOUT"]),
            )
        except ValueError as exc:
            raise SettingsError(f"DESK_TELEFORGE_VERSION: {exc}") from None
    app.extensions["teleforge_client"] = client


def client_for(app: Flask) -> TeleforgeClient | None:
    return app.extensions.get("teleforge_client")


def caller_ids(app: Flask) -> list[str]:
    """The outbound caller IDs the form offers: the configured ones, then 'random'."""
    configured = list(app.config.get("DESK_TELEFORGE_CALLER_IDS") or [])
    return configured + ([] if "random" in configured else ["random"])
