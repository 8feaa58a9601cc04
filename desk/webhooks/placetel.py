"""``POST /webhooks/placetel``: Placetel Notify deliveries, authenticated with HTTP Basic.

Placetel puts the credentials into the URL pasted in its portal
(``https://USER:PASSWORD@desk.example.com/webhooks/placetel``), which arrives as a Basic
``Authorization`` header. Wrong or missing credentials → 401 and nothing is stored. A
delivery we cannot understand → 400 with the reason, and the raw body is kept in the event
log. Everything else is applied by ``desk.calls.ingest`` and answered at once; the boards
are updated after the commit, off the request.
"""

from __future__ import annotations

import hmac

from flask import abort, current_app, jsonify, request

from desk import calls
from desk.events import BadPayload
from desk.extensions import db
from desk.models import utcnow
from desk.providers import placetel
from desk.webhooks import bp


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


@bp.post("/placetel")
def placetel_notify():  # type: ignore[no-untyped-def]
    if not _authorised():
        abort(401, "Wrong or missing credentials: put DESK_PLACETEL_USER and "
                   "DESK_PLACETEL_PASSWORD into the URL in Placetel's portal.")
    body = request.get_data(cache=True)
    payload = body.decode("utf-8", errors="replace")
    content_type = request.content_type
    try:
        if request.mimetype != "application/x-www-form-urlencoded":
            raise BadPayload(
                f"expected an application/x-www-form-urlencoded body, got "
                f"{request.mimetype or 'no content type'}"
            )
        parsed = placetel.parse(request.form, utcnow())
    except BadPayload as exc:
        with db.new_session() as session:
            calls.record_rejected(
                session, placetel.PROVIDER, payload, content_type, str(exc),
                kind=(request.form.get("event") or None) if request.form else None,
                call_ref=(request.form.get("call_id") or None) if request.form else None,
            )
        return jsonify(error="Bad Request", message=str(exc), status=400), 400

    with db.new_session() as session:
        result = calls.ingest(session, placetel.PROVIDER, parsed, payload, content_type)
    return jsonify(status=result.status, calls=list(result.call_ids))
