"""Stringee: the two answer URLs (SCCO JSON) and the event URL, protected by a token.

Stringee cannot send credentials of its own, so the URLs pasted into its portal carry
``?token=<DESK_STRINGEE_TOKEN>``; a wrong or missing token → 401 (without a token set,
only demo mode accepts). The answer URLs (``/answer/project`` for calls made from the app,
``/answer/number`` for calls to a Stringee number) answer like Stringee's SCCO helper when
the URL carries the helper's parameters (``appToPhone``, ``to_number``, ...), and otherwise
with the desk's routing policy ringing agents by their Stringee user id. Call events POSTed
to ``/events`` go through ``desk.services.ingest.ingest`` like every provider's. Whatever we cannot
understand → 400 with the reason, and the delivery is kept in the event log.
"""

from __future__ import annotations

import hmac
import json
import logging
from typing import Any, Literal
from urllib.parse import urlencode

from flask import Response, current_app, request
from flask.typing import ResponseReturnValue

from desk.domain.events import BadPayload, Parsed
from desk.extensions import db
from desk.models import utcnow
from desk.providers.stringee import parse as stringee
from desk.providers.stringee.answers import scco_for_decision, scco_from_helper_params
from desk.providers.webhook import apply, blueprint, parse_or_reject, require
from desk.services.routing_store import decide_for_call

bp = blueprint("stringee")

log = logging.getLogger(__name__)

# A number answer URL request from Stringee itself may carry ``custom``; only the helper's
# own switches mean "answer like the helper".
_HELPER_SWITCHES: dict[str, tuple[str, ...]] = {
    "project": stringee.PROJECT_HELPER_PARAMS,
    "number": tuple(p for p in stringee.NUMBER_HELPER_PARAMS if p != "custom"),
}


def _authorised() -> bool:
    expected = current_app.config["DESK_STRINGEE_TOKEN"]
    if not expected:
        return bool(current_app.config["DESK_DEMO"])
    given = request.args.get("token", "")
    return hmac.compare_digest(given.encode(), expected.encode())


def _require_token() -> None:
    require(_authorised(), "Wrong or missing token: add ?token=<DESK_STRINGEE_TOKEN> to the "
                           "answer and event URLs in Stringee's portal.")


def _params() -> dict[str, str]:
    """The answer URL's GET parameters, first value of each, without our token."""
    return {name: value for name, value in request.args.items() if name != "token"}


def _scco(kind: Literal["project", "number"], params: dict[str, str]) -> list[dict[str, Any]]:
    if any(name in params for name in _HELPER_SWITCHES[kind]):
        return scco_from_helper_params(kind, params)  # BadPayload on bad values
    try:
        decision = decide_for_call(
            db.session, params.get("from"), params.get("to"), reachable_by="stringee_user_id"
        )
        return scco_for_decision(decision, params)
    except Exception:
        # Routing must never answer 500: an empty SCCO ends the call cleanly, and the log
        # says why.
        log.exception("Stringee %s answer URL: routing failed for %s", kind, params)
        return []


def _answer(kind: Literal["project", "number"]) -> Response:
    _require_token()
    params = _params()
    scco = parse_or_reject(
        stringee.PROVIDER, lambda: _scco(kind, params), payload=urlencode(params),
        kind=lambda: f"answer/{kind}", call_ref=lambda: params.get("callId") or params.get("uuid"),
    )
    # json.dumps keeps the SCCO's key order ("action" first), as Stringee's documents show it.
    return Response(json.dumps(scco), mimetype="application/json")


@bp.get("/answer/project")
def stringee_answer_project() -> Response:
    return _answer("project")


@bp.get("/answer/number")
def stringee_answer_number() -> Response:
    return _answer("number")


@bp.post("/events")
def stringee_events() -> ResponseReturnValue:
    _require_token()
    body = request.get_json(force=True, silent=True)

    def parse() -> Parsed:
        if body is None:
            raise BadPayload(
                "expected a JSON body (a Stringee call event); is this URL the project's "
                "event_url?"
            )
        return stringee.parse_event(body, utcnow())

    def field(name: str) -> str | None:
        value = body.get(name) if isinstance(body, dict) else None
        return value if isinstance(value, str) else None

    parsed = parse_or_reject(stringee.PROVIDER, parse, kind=lambda: field("call_status"),
                             call_ref=lambda: field("call_id"))
    return apply(stringee.PROVIDER, parsed)
