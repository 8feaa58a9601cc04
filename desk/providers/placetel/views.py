"""``POST /webhooks/placetel``: Placetel Notify deliveries, authenticated by Basic auth and/or
Placetel's request signature.

Two proofs of origin, either or both configured (README of ``Placetel/call-control-notify-api``,
sections "Our POST request" and "Security"):

* **Basic auth**: Placetel puts the credentials into the URL pasted in its portal
  (``https://USER:PASSWORD@desk.example.com/webhooks/placetel``), which arrives as a Basic
  ``Authorization`` header (``DESK_PLACETEL_USER`` / ``DESK_PLACETEL_PASSWORD``).
* **Signature**: with a shared secret set in the portal's external API settings, every
  request carries ``X-PLACETEL-SIGNATURE``, the hex HMAC-SHA256 of the raw POST body keyed
  with that secret (``DESK_PLACETEL_SECRET``). The README's vector: secret ``12345``, body
  ``call_id=4a4c…0c3c&event=CallAccepted&from=0123456789&to=0987654321`` →
  ``c4f823c5…7792d0``.

Whatever is configured must match: with both, both. Wrong or missing → 401 and nothing is
stored; with neither configured only demo mode accepts. A delivery we cannot understand →
400 with the reason, and the raw body is kept in the event log. Everything else is applied
by ``desk.services.ingest.ingest`` and answered at once; the boards are updated after the
commit, off the request.

IncomingCall is also Placetel's Call Control question "where does this call go?": it is
answered with the routing XML (``desk.services.routing_store.decide_for_call`` rendered by
``desk.providers.placetel.route``), which Placetel acts on for numbers routed to "External
API" and ignores otherwise. The answer is kept on the call, so a retried IncomingCall gets
the same answer, with the agents it rings (``Call.offered_to``: their boards show the call
as ringing for them); a routing failure is logged and answered with voicemail, never a 500.

OutgoingCall names the calling SIP user (``peer``): the call is put on that agent (found
like any answering party, ``desk.services.ingest.find_agent``) in the same transaction.
"""

from __future__ import annotations

import hashlib
import hmac
import logging

from flask import Response, current_app, request
from flask.typing import ResponseReturnValue
from sqlalchemy import update
from sqlalchemy.orm import Session

from desk.domain.events import BadPayload, Parsed
from desk.domain.routing import Decision
from desk.models import Call, utcnow
from desk.providers.placetel import parse as placetel
from desk.providers.placetel.route import CONTENT_TYPE, render_route
from desk.providers.webhook import apply, blueprint, parse_or_reject, require
from desk.services.ingest import attribute_to
from desk.services.routing_store import decide_for_call, record_offer

bp = blueprint("placetel")

log = logging.getLogger(__name__)
# When routing itself fails: the caller can at least leave a message.
FALLBACK_ROUTE = Decision("voicemail", voicemail=True, reason="routing failed")
SIGNATURE_HEADER = "X-PLACETEL-SIGNATURE"


def signature(secret: str, body: bytes) -> str:
    """Placetel's ``X-PLACETEL-SIGNATURE`` for ``body``: hex HMAC-SHA256 keyed with ``secret``."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _basic_ok(user: str, password: str) -> bool:
    auth = request.authorization
    if auth is None or auth.type != "basic":
        return False
    given_user = (auth.username or "").encode()
    given_password = (auth.password or "").encode()
    # Compare both, always, in constant time: no early exit that leaks which one was wrong.
    user_ok = hmac.compare_digest(given_user, user.encode())
    password_ok = hmac.compare_digest(given_password, password.encode())
    return user_ok and password_ok


def _signature_ok(secret: str) -> bool:
    given = (request.headers.get(SIGNATURE_HEADER) or "").strip().lower()
    # The raw body as sent, before form parsing; get_data caches it for the form parser.
    expected = signature(secret, request.get_data(cache=True))
    return hmac.compare_digest(given.encode(), expected.encode())


def _authorised() -> bool:
    user = current_app.config["DESK_PLACETEL_USER"]
    password = current_app.config["DESK_PLACETEL_PASSWORD"]
    secret = current_app.config["DESK_PLACETEL_SECRET"]
    if not user and not secret:
        # Nothing configured: only demo mode accepts unauthenticated deliveries.
        return bool(current_app.config["DESK_DEMO"])
    basic_ok = _basic_ok(user, password) if user else True
    signature_ok = _signature_ok(secret) if secret else True
    return basic_ok and signature_ok


def _unauthorised_message() -> str:
    config = current_app.config
    wanted = []
    if config["DESK_PLACETEL_USER"] or not config["DESK_PLACETEL_SECRET"]:
        wanted.append("put DESK_PLACETEL_USER and DESK_PLACETEL_PASSWORD into the URL in "
                      "Placetel's portal")
    if config["DESK_PLACETEL_SECRET"]:
        wanted.append(f"set DESK_PLACETEL_SECRET as the shared secret in Placetel's external "
                      f"API settings ({SIGNATURE_HEADER} did not match)")
    return "Wrong or missing credentials: " + "; and ".join(wanted) + "."


def _route(session: Session, parsed: Parsed, call_ids: tuple[int, ...]) -> Response:
    """The Call Control XML for an IncomingCall: the stored answer for a retry, else decided
    now and stored on the call (``provider_facts["route"]``)."""
    event = parsed.events[0]
    try:
        call = session.get(Call, call_ids[0]) if call_ids else None
        stored = (call.provider_facts or {}).get("route") if call is not None else None
        if isinstance(stored, dict) and isinstance(stored.get("xml"), str):
            return Response(stored["xml"].encode(), content_type=CONTENT_TYPE)
        # Placetel renders prompts, groups and routing plans itself: the full decision.
        decision = decide_for_call(session, event.from_number, event.to_number, "sip_peer",
                                   portable=False)
        body = render_route(decision)
    except Exception:
        session.rollback()
        log.exception("Placetel call %s: routing failed; answering voicemail",
                      parsed.provider_call_id)
        return Response(render_route(FALLBACK_ROUTE), content_type=CONTENT_TYPE)
    if call is not None:
        try:
            session.commit()  # end the reads, so the write below waits for SQLite's lock
            route = {"xml": body.decode(), "action": decision.action, "reason": decision.reason}
            session.execute(
                update(Call).where(Call.id == call.id)
                .values(provider_facts={**(call.provider_facts or {}), "route": route})
                .execution_options(synchronize_session=False)
            )
            record_offer(session, call.id, decision.offered_to)
            session.commit()
        except Exception:  # the answer stands; only a retry would be decided afresh
            session.rollback()
            log.exception("Placetel call %s: could not keep the routing answer",
                          parsed.provider_call_id)
    return Response(body, content_type=CONTENT_TYPE)


@bp.post("")
def placetel_notify() -> ResponseReturnValue:
    require(_authorised(), _unauthorised_message())

    def parse() -> Parsed:
        if request.mimetype != "application/x-www-form-urlencoded":
            raise BadPayload(
                f"expected an application/x-www-form-urlencoded body, got "
                f"{request.mimetype or 'no content type'}"
            )
        return placetel.parse(request.form, utcnow())

    parsed = parse_or_reject(
        placetel.PROVIDER, parse,
        kind=lambda: (request.form.get("event") or None) if request.form else None,
        call_ref=lambda: (request.form.get("call_id") or None) if request.form else None,
    )
    if parsed.kind == "IncomingCall":
        return apply(placetel.PROVIDER, parsed,
                     answer=lambda session, result: _route(session, parsed, result.call_ids))
    peer = placetel.calling_peer(parsed)
    return apply(placetel.PROVIDER, parsed,
                 fold=attribute_to(peer) if peer else None)
