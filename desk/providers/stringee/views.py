"""Stringee: the two answer URLs (SCCO JSON) and the event URL, protected by a token and,
for call events, by Stringee's request signature.

Stringee cannot send credentials of its own, so the URLs pasted into its portal carry
``?token=<DESK_STRINGEE_TOKEN>``; a wrong or missing token → 401 (without a token set,
only demo mode accepts). With ``DESK_STRINGEE_SECRET`` set (the project's signing secret),
call events must also carry ``X-STRINGEE-SIGNATURE``: base64 of the HMAC-SHA1 of the raw
POST body keyed with that secret, as ``event_url/php/event_url.php`` in
``stringeecom/server-samples`` computes it (``base64_encode(hash_hmac("sha1", $postData,
$signing_secret_key, true))``); a wrong or missing one → 401. The same samples sign answer
URL requests over the request URI; the desk does not check that (a proxy in front may
rewrite the URI), the token protects those.

* ``/answer/project`` is asked when an app user (an agent) places a call: the desk connects
  it to whom they called (``answers.scco_for_agent_call``), recording it when the routing
  rules say so, and puts the call on that agent (``userId``) as an outbound call right away.
* ``/answer/number`` is asked for a phone calling a Stringee number: the desk's routing
  policy rings agents by their Stringee user id (``answers.scco_for_decision``); when the
  request names its ``callId`` and the answer rings someone, the call goes on the boards at
  once as ringing, offered to those agents (``Call.offered_to``).
* Either answers like Stringee's SCCO helper when the URL carries the helper's parameters
  (``appToPhone``, ``to_number``, ...).

Call events POSTed to ``/events`` go through ``desk.services.ingest.ingest`` like every
provider's; one naming ``request_from_user_id`` is put on that agent. Whatever we cannot
understand → 400 with the reason, and the delivery is kept in the event log.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from typing import Any, Literal
from urllib.parse import urlencode

from flask import Response, current_app, request
from flask.typing import ResponseReturnValue
from sqlalchemy.orm import Session

from desk.db import end_reads
from desk.domain.events import BadPayload, Parsed
from desk.extensions import db
from desk.models import utcnow
from desk.providers.stringee import parse as stringee
from desk.providers.stringee.answers import (
    scco_for_agent_call,
    scco_for_decision,
    scco_from_helper_params,
)
from desk.providers.webhook import (
    apply,
    blueprint,
    json_body,
    json_or_none,
    parse_or_reject,
    require,
)
from desk.services import ingest
from desk.services.routing_store import decide_for_call, load_rules, record_offer

bp = blueprint("stringee")

log = logging.getLogger(__name__)
SIGNATURE_HEADER = "X-STRINGEE-SIGNATURE"

# A number answer URL request from Stringee itself may carry ``custom``; only the helper's
# own switches mean "answer like the helper".
_HELPER_SWITCHES: dict[str, tuple[str, ...]] = {
    "project": stringee.PROJECT_HELPER_PARAMS,
    "number": tuple(p for p in stringee.NUMBER_HELPER_PARAMS if p != "custom"),
}


def signature(secret: str, body: bytes) -> str:
    """Stringee's ``X-STRINGEE-SIGNATURE`` for ``body``: base64(HMAC-SHA1(secret, body))."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha1).digest()).decode()


def _authorised() -> bool:
    expected = current_app.config["DESK_STRINGEE_TOKEN"]
    if not expected:
        return bool(current_app.config["DESK_DEMO"])
    given = request.args.get("token", "")
    return hmac.compare_digest(given.encode(), expected.encode())


def _require_token() -> None:
    require(_authorised(), "Wrong or missing token: add ?token=<DESK_STRINGEE_TOKEN> to the "
                           "answer and event URLs in Stringee's portal.")


def _require_signature() -> None:
    secret = current_app.config["DESK_STRINGEE_SECRET"]
    if not secret:
        return
    given = (request.headers.get(SIGNATURE_HEADER) or "").strip()
    expected = signature(secret, request.get_data(cache=True))
    require(hmac.compare_digest(given.encode(), expected.encode()),
            f"Wrong or missing {SIGNATURE_HEADER}: DESK_STRINGEE_SECRET must be the signing "
            "secret of the Stringee project.")


def _params() -> dict[str, str]:
    """The answer URL's GET parameters, first value of each, without our token."""
    return {name: value for name, value in request.args.items() if name != "token"}


def _scco(
    kind: Literal["project", "number"], params: dict[str, str]
) -> tuple[list[dict[str, Any]], tuple[int, ...] | None]:
    """The SCCO, and the agents it rings when the desk's routing decided (else None)."""
    if any(name in params for name in _HELPER_SWITCHES[kind]):
        return scco_from_helper_params(kind, params), None  # BadPayload on bad values
    if kind == "project":
        # The agent's own call: connect it; only the rules' recording applies.
        return scco_for_agent_call(params, record=load_rules(db.session).record), None
    try:
        decision = decide_for_call(
            db.session, params.get("from"), params.get("to"), reachable_by="stringee_user_id"
        )
        return scco_for_decision(decision, params), decision.portable().offered_to
    except Exception:
        # Routing must never answer 500: an empty SCCO ends the call cleanly, and the log
        # says why.
        log.exception("Stringee %s answer URL: routing failed for %s", kind, params)
        return [], None


def _record_agent_call(parsed: Parsed, payload: str) -> None:
    """Log the request and start the agent's outbound call; never fails the answer."""
    user = stringee.agent_of(parsed)
    try:
        with db.new_session() as session:
            ingest.ingest(session, stringee.PROVIDER, parsed, payload, None,
                          fold=ingest.attribute_to(user) if user else None)
    except Exception:  # the events that follow will create the call
        log.exception("Stringee call %s: could not record the agent's call",
                      parsed.provider_call_id)


def _record_number_call(parsed: Parsed, payload: str, offered: tuple[int, ...]) -> None:
    """Put the inbound call on the boards, offered to the agents the answer rings (a
    repeated request for the same call replaces the offer); never fails the answer."""

    def offer(session: Session, delivery: ingest.Logged) -> None:
        if delivery.call_id:
            record_offer(session, delivery.call_id, offered)

    try:
        with db.new_session() as session:
            result = ingest.ingest(session, stringee.PROVIDER, parsed, payload, None, fold=offer)
            if result.status == "duplicate" and result.call_ids:
                record_offer(session, result.call_ids[0], offered)
                session.commit()
    except Exception:  # the events that follow will create the call
        log.exception("Stringee call %s: could not record whom it rings",
                      parsed.provider_call_id)


def _answer(kind: Literal["project", "number"]) -> Response:
    _require_token()
    params = _params()
    payload = urlencode(params)

    def understand() -> tuple[list[dict[str, Any]], tuple[int, ...] | None, Parsed | None]:
        if kind == "project":
            call = stringee.parse_agent_call(params, utcnow())
        else:
            call = stringee.parse_number_call(params, utcnow())
        return (*_scco(kind, params), call)

    scco, offered, call = parse_or_reject(
        stringee.PROVIDER, understand, payload=payload,
        kind=lambda: f"answer/{kind}", call_ref=lambda: params.get("callId") or params.get("uuid"),
    )
    if call is not None and kind == "project":
        end_reads(db.session)  # the rules were read in this request's session
        _record_agent_call(call, payload)
    elif call is not None and offered:
        end_reads(db.session)
        _record_number_call(call, payload, offered)
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
    _require_signature()
    body = json_or_none()

    def parse() -> Parsed:
        if body is None:
            json_body("call event", lenient=True)  # the reason, if JSON the desk refuses
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
    user = stringee.agent_of(parsed)
    return apply(stringee.PROVIDER, parsed, fold=ingest.attribute_to(user) if user else None)
