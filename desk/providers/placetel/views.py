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
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from desk.domain.events import BadPayload, Parsed
from desk.domain.routing import Decision
from desk.models import Call, utcnow
from desk.providers.placetel import parse as placetel
from desk.providers.placetel.route import CONTENT_TYPE, render_route
from desk.providers.webhook import apply, blueprint, parse_or_reject, require
from desk.services.ingest import IngestResult, Logged, attribute_to
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


def _stored_route(session: Session, call_ids: tuple[int, ...]) -> bytes | None:
    """The routing answer kept on the call (a retried IncomingCall gets the same)."""
    call = session.get(Call, call_ids[0]) if call_ids else None
    stored = (call.provider_facts or {}).get("route") if call is not None else None
    if isinstance(stored, dict) and isinstance(stored.get("xml"), str):
        return stored["xml"].encode()
    return None


_FACTS = select(Call.provider_facts).where(Call.id == bindparam("b_id"))


class _Router:
    """The routing answer for an IncomingCall, decided and kept on the call inside the
    delivery's own transaction (a fold): one commit for the call and its answer."""

    def __init__(self, parsed: Parsed) -> None:
        self.parsed = parsed
        self.body: bytes | None = None

    def fold(self, session: Session, delivery: Logged) -> None:
        if delivery.call_id is None:
            return
        event = self.parsed.events[0]
        try:
            with session.begin_nested():  # a failed read must not doom the delivery
                # Placetel renders prompts, groups and routing plans itself: the full decision.
                decision = decide_for_call(session, event.from_number, event.to_number,
                                           "sip_peer", portable=False)
        except Exception:
            log.exception("Placetel call %s: routing failed; answering voicemail",
                          self.parsed.provider_call_id)
            self.body = render_route(FALLBACK_ROUTE)
            return
        self.body = render_route(decision)
        route = {"xml": self.body.decode(), "action": decision.action,
                 "reason": decision.reason}
        facts = (None if delivery.new_call  # created just now, with no facts yet
                 else session.connection().execute(_FACTS, {"b_id": delivery.call_id}).scalar())
        # the answer and whom it rings, in one UPDATE of the call
        record_offer(session, delivery.call_id, decision.offered_to,
                     facts={**(facts or {}), "route": route})

    def answer(self, session: Session, result: IngestResult) -> Response:
        body = self.body if self.body is not None else _stored_route(session, result.call_ids)
        if body is None:  # a retry of a delivery whose answer was never kept: decide now
            try:
                event = self.parsed.events[0]
                body = render_route(decide_for_call(session, event.from_number,
                                                    event.to_number, "sip_peer",
                                                    portable=False))
            except Exception:
                session.rollback()
                log.exception("Placetel call %s: routing failed; answering voicemail",
                              self.parsed.provider_call_id)
                body = render_route(FALLBACK_ROUTE)
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
        router = _Router(parsed)
        return apply(placetel.PROVIDER, parsed, fold=router.fold, answer=router.answer)
    peer = placetel.calling_peer(parsed)
    return apply(placetel.PROVIDER, parsed,
                 fold=attribute_to(peer) if peer else None)
