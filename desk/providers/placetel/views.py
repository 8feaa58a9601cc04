"""``POST /webhooks/placetel``: Placetel Notify deliveries, authenticated with HTTP Basic.

Placetel puts the credentials into the URL pasted in its portal
(``https://USER:PASSWORD@desk.example.com/webhooks/placetel``), which arrives as a Basic
``Authorization`` header. Wrong or missing credentials → 401 and nothing is stored. A
delivery we cannot understand → 400 with the reason, and the raw body is kept in the event
log. Everything else is applied by ``desk.services.ingest.ingest`` and answered at once; the boards
are updated after the commit, off the request.

IncomingCall is also Placetel's Call Control question "where does this call go?": it is
answered with the routing XML (``desk.services.routing_store.decide_for_call`` rendered by
``desk.providers.placetel.route``), which Placetel acts on for numbers routed to "External
API" and ignores otherwise. The answer is kept on the call, so a retried IncomingCall gets
the same answer; a routing failure is logged and answered with voicemail, never a 500.
"""

from __future__ import annotations

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
from desk.services.routing_store import decide_for_call

bp = blueprint("placetel")

log = logging.getLogger(__name__)
# When routing itself fails: the caller can at least leave a message.
FALLBACK_ROUTE = Decision("voicemail", voicemail=True, reason="routing failed")


def _authorised() -> bool:
    user = current_app.config["DESK_PLACETEL_USER"]
    password = current_app.config["DESK_PLACETEL_PASSWORD"]
    if not user:
        # No credentials configured: only demo mode accepts unauthenticated deliveries.
        return bool(current_app.config["DESK_DEMO"])
    auth = request.authorization
    if auth is None or auth.type != "basic":
        return False
    given_user = (auth.username or "").encode()
    given_password = (auth.password or "").encode()
    # Compare both, always, in constant time: no early exit that leaks which one was wrong.
    user_ok = hmac.compare_digest(given_user, user.encode())
    password_ok = hmac.compare_digest(given_password, password.encode())
    return user_ok and password_ok


def _route(session: Session, parsed: Parsed, call_ids: tuple[int, ...]) -> Response:
    """The Call Control XML for an IncomingCall: the stored answer for a retry, else decided
    now and stored on the call (``provider_facts["route"]``)."""
    event = parsed.events[0]
    try:
        call = session.get(Call, call_ids[0]) if call_ids else None
        stored = (call.provider_facts or {}).get("route") if call is not None else None
        if isinstance(stored, dict) and isinstance(stored.get("xml"), str):
            return Response(stored["xml"].encode(), content_type=CONTENT_TYPE)
        decision = decide_for_call(session, event.from_number, event.to_number, "sip_peer")
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
            session.commit()
        except Exception:  # the answer stands; only a retry would be decided afresh
            session.rollback()
            log.exception("Placetel call %s: could not keep the routing answer",
                          parsed.provider_call_id)
    return Response(body, content_type=CONTENT_TYPE)


@bp.post("")
def placetel_notify() -> ResponseReturnValue:
    require(_authorised(), "Wrong or missing credentials: put DESK_PLACETEL_USER and "
                           "DESK_PLACETEL_PASSWORD into the URL in Placetel's portal.")

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
    if parsed.kind != "IncomingCall":
        return apply(placetel.PROVIDER, parsed)
    return apply(placetel.PROVIDER, parsed,
                 answer=lambda session, result: _route(session, parsed, result.call_ids))
