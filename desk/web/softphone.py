"""The browser softphone: an agent's calls ring, and are placed, in the desk's own page.

Teleforge's WebRTC variant ("Create a Call", WebRTC; see ``desk.providers.teleforge.rules``
and ``specs/README.md``): a SIP.js user agent ``<ext>@<server>`` registers over Teleforge's
SIP websocket (``wss://<server>:8089/ws``, older ``ws://<server>:8088/ws``) with the
extension's password; an outbound call is ``invite('sip:<callee>@<server>')`` with the
headers ``X-Teleforge-Outbound-ID`` / ``X-Teleforge-Contact-Ref`` (v4.0.0 on;
``X-Platforma-*`` before, ``rules.sip_headers``); validation errors come back in
``X-Teleforge-Error`` (``X-Platforma-Error``) response headers; an inbound call is an INVITE
to the registered extension. CDRs still come on Redis, as for a REST dial.

What this blueprint owns (``static/softphone/softphone.js`` is the browser's half):

* ``POST /softphone/phone``: where the agent's calls ring, ``desk`` or ``browser``
  (``User.phone``), and, if the agent asks and ``DESK_SIP_SECRET_KEY`` is set, their SIP
  password, kept encrypted (Fernet) in ``User.sip_password_encrypted``;
* ``POST /softphone/credentials``: what the browser registers with; the stored password
  reaches the browser only in this POST's answer body, never in a URL or a log line;
* ``place_call``: the dial form's submit when the agent's phone is the browser. The same
  checks, question and "dialling" row as a REST dial (``desk.services.dial``), with the
  dial's reference as the row's ``provider_call_id``, so Teleforge's CDR (whose
  ``contact_ref`` is the ``Contact-Ref`` header) folds into the same row; instead of the
  REST POST the form's answer tells the page what to INVITE, with which headers;
* ``POST /softphone/calls/<id>/answered|ended|failed``: what the page saw of that INVITE,
  applied to the row through ``desk.services.ingest`` like any provider event (logged,
  idempotent, order-tolerant) and audited; a refusal's ``X-Teleforge-Error`` headers are
  filed under the dial form's fields (``client.field_errors_from``) and the form comes back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import force_locale, gettext, lazy_gettext
from flask_login import current_user, login_required
from sqlalchemy.orm import Session

from desk.db import end_reads
from desk.domain.events import CallEvent, Parsed
from desk.extensions import current_app_object, db
from desk.live.changes import CALLS, mark_changed
from desk.models import Call, User, utcnow
from desk.providers.teleforge.client import N_, field_errors_from
from desk.providers.teleforge.rules import (
    PROVIDER,
    DialInvalid,
    english,
    generate_reference,
    sip_error_header,
    sip_headers,
    sip_reason,
    validate_dial,
)
from desk.services import audit, ingest
from desk.services import dial as dial_service
from desk.services.dial import (
    CHECK_FIELDS,
    REFERENCE_USED,
    DialNeedsConfirmation,
    DialOutcome,
    DialRefused,
    reference_for_attempt,
    resolve_agent,
    unknown_extension,
)

bp = Blueprint("softphone", __name__, url_prefix="/softphone")

PHONES = ("desk", "browser")
PASSWORD_MAX = 256
# SIP final answers the page reports for a call that never connected, as the desk's end
# causes (RFC 3261 21.4 / 21.6): busy, declined, nobody answered; any other is a failure.
_CAUSES = {486: "busy", 600: "busy", 603: "rejected", 480: "no_answer", 408: "no_answer",
           487: "cancelled"}
_REPORT_LIMIT = 8  # error headers kept from one refusal
_TEXT_LIMIT = 500
# What a browser dial that did not connect says (the form's banner, ``Call.action_error``).
SIP_UNREACHABLE = N_("The browser could not reach Teleforge's SIP server; the call was not "
                     "placed.")
SIP_REJECTED = N_("Teleforge refused the call (SIP %(status)s): %(detail)s")
SIP_FAILED_WITH_REASON = N_("The call did not connect (SIP %(status)s %(reason)s).")
SIP_FAILED = N_("The call did not connect (SIP %(status)s).")
MESSAGES = (SIP_UNREACHABLE, SIP_REJECTED, SIP_FAILED_WITH_REASON, SIP_FAILED)
"""Every sentence ``_failed`` says of a browser dial."""


def configured(app: Flask) -> bool:
    """Whether the desk knows Teleforge's SIP websocket (``DESK_TELEFORGE_SIP_WS_URL``)."""
    return bool(app.config.get("DESK_TELEFORGE_SIP_WS_URL"))


def rings_in_browser(user: Any) -> bool:
    """Whether this user's calls ring, and are placed, in the desk's softphone (agents: the
    panel is on the agent board)."""
    return (configured(current_app_object()) and getattr(user, "phone", "desk") == "browser"
            and not getattr(user, "is_supervisor", False))


def _fernet(app: Flask) -> Fernet | None:
    key = app.config.get("DESK_SIP_SECRET_KEY") or ""
    return Fernet(key) if key else None


def stored_password(app: Flask, user: User) -> str | None:
    """The user's stored SIP password, or None (none stored, no key, or another key's)."""
    fernet = _fernet(app)
    if fernet is None or not user.sip_password_encrypted:
        return None
    try:
        return fernet.decrypt(user.sip_password_encrypted.encode()).decode()
    except InvalidToken:
        return None  # stored under a key since replaced: the agent types it again


def state_for(user: Any) -> dict[str, Any]:
    """What ``_softphone.html`` shows for ``user``."""
    app = current_app_object()
    return {
        "configured": configured(app),
        "phone": getattr(user, "phone", "desk"),
        "can_remember": _fernet(app) is not None,
        "remembered": bool(getattr(user, "sip_password_encrypted", None))
        and _fernet(app) is not None,
        "extension": getattr(user, "extension", None),
        "error_header": sip_error_header(str(app.config["DESK_TELEFORGE_VERSION"])),
    }


@bp.app_context_processor
def _softphone_globals() -> dict[str, Any]:
    return {"softphone_state": state_for, "rings_in_browser": rings_in_browser}


def _wants_json() -> bool:
    return request.accept_mimetypes.best == "application/json" or bool(
        request.headers.get("X-Requested-With")
    )


def _problem(status: int, message: str) -> ResponseReturnValue:
    if _wants_json():
        return jsonify({"error": "Bad Request" if status == 400 else "Conflict",
                        "message": message, "status": status}), status
    abort(status, message)


@bp.post("/phone")
@login_required
def choose_phone() -> ResponseReturnValue:
    """Where the agent's calls ring; optionally keep (or forget) their SIP password."""
    app = current_app_object()
    phone = request.form.get("phone", "").strip()
    if phone not in PHONES:
        return _problem(400, gettext("Choose where your calls ring: 'desk' (your desk phone) "
                                     "or 'browser' (this browser)."))
    if phone == "browser" and not configured(app):
        return _problem(409, gettext("The browser phone is not set up on this desk "
                                     "(DESK_TELEFORGE_SIP_WS_URL); ask an administrator."))
    user = db.session.get_one(User, current_user.id)
    if phone == "browser" and not user.extension:
        return _problem(409, gettext("You have no extension, so the browser cannot register "
                                     "as your phone. Ask an administrator to give you one."))
    password = request.form.get("sip_password", "")
    remember = request.form.get("remember") == "1"
    if len(password) > PASSWORD_MAX:
        return _problem(400, gettext("A SIP password has at most %(most)s characters.",
                                     most=PASSWORD_MAX))
    fernet = _fernet(app)
    if remember and password and fernet is None:
        return _problem(409, gettext("This desk cannot keep SIP passwords (no "
                                     "DESK_SIP_SECRET_KEY): leave 'remember' off and type it "
                                     "when you connect."))
    end_reads(db.session)
    user.phone = phone
    if remember and password and fernet is not None:
        user.sip_password_encrypted = fernet.encrypt(password.encode()).decode()
    elif not remember:
        user.sip_password_encrypted = None
    db.session.commit()
    if _wants_json():
        return jsonify({"phone": user.phone, "remembered": bool(user.sip_password_encrypted)})
    return redirect(url_for("board.index"))


@bp.post("/credentials")
@login_required
def credentials() -> ResponseReturnValue:
    """What the page registers with. POST, so the stored password is never in a URL."""
    app = current_app_object()
    user = db.session.get_one(User, current_user.id)
    if not configured(app):
        return _problem(409, gettext("The browser phone is not set up on this desk "
                                     "(DESK_TELEFORGE_SIP_WS_URL)."))
    if not user.extension:
        return _problem(409, gettext("You have no extension to register the browser phone "
                                     "with."))
    return jsonify({
        "ws_url": app.config["DESK_TELEFORGE_SIP_WS_URL"],
        "domain": app.config["DESK_TELEFORGE_SIP_DOMAIN"],
        "user": user.extension,
        "password": stored_password(app, user),
        "error_header": sip_error_header(str(app.config["DESK_TELEFORGE_VERSION"])),
    })


# -- placing a call through the page ---------------------------------------------------------


@dataclass(frozen=True)
class Invite:
    """What the page sends: ``invite(target)`` with ``headers``, reporting on ``call_id``."""

    call_id: int
    target: str
    headers: dict[str, str]
    error_header: str

    def to_json(self) -> dict[str, Any]:
        return {"call_id": self.call_id, "target": self.target, "headers": self.headers,
                "error_header": self.error_header,
                "report": url_for("softphone.report", call_id=self.call_id, what="_")[:-1]}


def place_call(
    session: Session, app: Flask, *, user: User, agent: str | None, callee: str,
    outbound_id: str, reference: str, attempt: str | None, confirm: bool,
) -> tuple[DialOutcome, Invite]:
    """Check, ask, create the "dialling" row and audit, as ``dial.place_call`` does, and
    say what the page must INVITE instead of POSTing to Teleforge's REST API.

    Raises ``DialRefused`` / ``DialNeedsConfirmation`` exactly as the REST dial does. The
    call is always the user's own: the browser is their phone, so a supervisor's "on
    behalf of" another extension is refused here.
    """
    version = str(app.config["DESK_TELEFORGE_VERSION"])
    agent_value, owner = resolve_agent(session, user, None)
    if agent and agent.strip() and agent.strip() != agent_value:
        raise DialRefused(
            422, lazy_gettext("Your phone is this browser, so calls from it come from your own "
                              "extension."),
            errors={"agent": lazy_gettext(
                "Calls from this browser come from your extension (%(extension)s); choose your "
                "desk phone to dial for others.", extension=agent_value)},
        )
    generated = not reference.strip()
    if generated:
        reference = reference_for_attempt(attempt) or generate_reference()
    fields = {"agent": agent_value, "callee": callee, "outbound_id": outbound_id,
              "reference": reference}
    try:
        checked = validate_dial(agent_value, callee, outbound_id, reference)
    except DialInvalid as exc:
        end_reads(session)
        with force_locale("en"):  # the audit log keeps the messages in English
            audit.record(session, user_id=user.id, action="dial", outcome="invalid",
                         detail={"fields": fields, "errors": exc.errors, "via": "softphone"})
        session.commit()
        raise DialRefused(422, CHECK_FIELDS, errors=exc.errors,
                          warnings=exc.warnings) from None
    if nobody := unknown_extension(session, checked.agent):
        raise DialRefused(422, nobody, errors={"agent": nobody})

    # The same question as a REST dial: the agent is on a call already.
    questions, current = dial_service.questions_before_dialling(session, user, owner, checked)
    if questions and not confirm:
        raise DialNeedsConfirmation(questions, current)

    call = ingest.start_outbound(
        session, provider=PROVIDER, provider_call_id=checked.reference,
        agent_id=owner.id if owner else None, from_number=checked.agent,
        to_number=checked.callee, outbound_id=checked.outbound_id,
    )
    if call is None:
        message = lazy_gettext("This dial was sent already; it was not placed again.") \
            if generated else lazy_gettext(
                "A call with reference %(reference)s exists already; it was not placed again. "
                "Use a new reference, or leave it empty to have one generated.",
                reference=repr(checked.reference))
        raise DialRefused(409, message, errors={} if generated else {
            "reference": REFERENCE_USED})

    domain = app.config["DESK_TELEFORGE_SIP_DOMAIN"]
    invite = Invite(call_id=call.id, target=f"sip:{checked.callee}@{domain}",
                    headers=sip_headers(checked, version),
                    error_header=sip_error_header(version))
    end_reads(session)
    call.provider_facts = {**(call.provider_facts or {}), "via": "softphone"}
    detail: dict[str, Any] = {"via": "softphone", "target": invite.target,
                              "headers": invite.headers}
    if questions:
        detail["confirmed"] = questions
    if checked.warnings:
        detail["warnings"] = checked.warnings
    # "ok": the desk handed the INVITE to the agent's browser; Teleforge's answer to it is
    # audited when the page reports it (``report``).
    with force_locale("en"):  # the questions and warnings, in English
        audit.record(session, user_id=user.id, call_id=call.id, action="dial", outcome="ok",
                     detail=detail)
    session.commit()
    outcome = DialOutcome(call=call, request=checked, reference_generated=generated,
                          warnings=dict(checked.warnings))
    return outcome, invite


# -- what the page saw -----------------------------------------------------------------------


def _reported() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        abort(400, gettext("Send the call's news as a JSON object."))
    return body


def _ingest(session: Session, call: Call, kind: str, payload: dict[str, Any],
            event: CallEvent, fold: ingest.Fold | None = None) -> None:
    parsed = Parsed(kind=f"softphone.{kind}", provider_call_id=call.provider_call_id,
                    dedupe_key=f"softphone:{call.provider_call_id}:{kind}", events=(event,))
    end_reads(session)
    ingest.ingest(session, PROVIDER, parsed, json.dumps(payload, sort_keys=True),
                  "application/json", fold)


@bp.post("/calls/<int:call_id>/<what>")
@login_required
def report(call_id: int, what: str) -> ResponseReturnValue:
    """The page's news of a call it placed: ``answered``, ``ended`` or ``failed``."""
    if what not in ("answered", "ended", "failed"):
        abort(404)
    session = db.session()
    call = session.get(Call, call_id)
    if call is None or call.provider != PROVIDER or (call.provider_facts or {}).get("via") \
            != "softphone":
        abort(404, gettext("No call placed from a browser has this id."))
    if call.agent_id != current_user.id:
        abort(403, gettext("Only the agent whose browser placed this call can report on it."))
    body = _reported()
    now = utcnow()
    extension = current_user.extension or ""
    if what == "answered":
        _ingest(session, call, what, {"answered": True},
                CallEvent(provider=PROVIDER, provider_call_id=call.provider_call_id,
                          kind="answered", at=now, answered_by=extension))
        return jsonify({"ok": True})
    if what == "ended":
        by = str(body.get("by", ""))[:16]
        duration = None
        if call.answered_at is not None:
            duration = max(0, int((now - call.answered_at).total_seconds()))
        cause = None if call.answered_at is not None else (
            "cancelled" if by == "agent" else "no_answer")
        _ingest(session, call, what, {"by": by},
                CallEvent(provider=PROVIDER, provider_call_id=call.provider_call_id,
                          kind="ended", at=now, end_cause=cause, duration=duration))
        return jsonify({"ok": True})
    return _failed(session, call, body, now)


def _failed(session: Session, call: Call, body: dict[str, Any], now: Any) -> ResponseReturnValue:
    """Teleforge (or the network) refused the INVITE: end the row with the reason, audit it,
    and answer the dial form with Teleforge's errors under their fields."""
    try:
        status = int(body.get("status") or 0)
    except (TypeError, ValueError):
        abort(400, gettext("'status' must be the SIP status code the call ended with."))
    reason = str(body.get("reason") or "")[:_TEXT_LIMIT]
    raw_errors = body.get("errors") or []
    if not isinstance(raw_errors, list):
        abort(400, gettext("'errors' must be the list of the error headers' values."))
    errors = [str(item)[:_TEXT_LIMIT] for item in raw_errors[:_REPORT_LIMIT]]
    version = str(current_app.config["DESK_TELEFORGE_VERSION"])
    header = sip_error_header(version)
    fields: dict[str, str] = {}
    general = ""
    for value in errors:
        found, rest = field_errors_from(None, {header: value})
        for name, text in found.items():
            fields[name] = f"{fields[name]}; {text}" if name in fields else text
        general = "; ".join(filter(None, [general, rest]))
    cause = _CAUSES.get(status, "failed")
    # Lazy: the form's banner says it in the agent's language, the row and the audit log
    # keep its English (``stored``).
    message: Any
    if status == 0:
        message = lazy_gettext(SIP_UNREACHABLE)
    elif errors:
        detail = "; ".join([*(f"{k}: {v}" for k, v in fields.items()), *filter(None, [general])])
        message = lazy_gettext(SIP_REJECTED, status=status, detail=detail)
    elif reason:
        message = lazy_gettext(SIP_FAILED_WITH_REASON, status=status, reason=sip_reason(reason))
    else:
        message = lazy_gettext(SIP_FAILED, status=status)
    stored = english(message)
    payload = {"status": status, "reason": reason, "errors": errors}
    user_id = current_user.id

    def fold(inner: Session, delivery: ingest.Logged) -> None:
        row = inner.get(Call, delivery.call_id) if delivery.call_id else None
        if row is None:
            return
        if cause == "failed":
            row.action_error = stored
        mark_changed(inner, CALLS, row.id)
        audit.record(inner, user_id=user_id, call_id=row.id, action="dial",
                     outcome="refused" if status else "error",
                     detail={"via": "softphone"}, provider_answer={**payload, "message": stored})

    _ingest(session, call, "failed", payload,
            CallEvent(provider=PROVIDER, provider_call_id=call.provider_call_id, kind="ended",
                      at=now, end_cause=cause, duration=0), fold)

    from desk.web.dial import form_state

    user = session.get_one(User, user_id)
    values = {"callee": call.to_number or "", "outbound_id": call.outbound_id or "",
              "reference": "" if call.provider_call_id.startswith("desk-")
              else call.provider_call_id}
    state = form_state(user, values)
    for name, text in fields.items():
        state["errors"][name] = gettext("Teleforge: %(message)s", message=text)
    state["banner"] = {"kind": "error", "text": message}
    state["answer"] = True
    response = current_app.make_response(
        (render_template("board/_dial_form.html", dial=state, me=user), 422 if errors else 200)
    )
    response.headers["X-Desk-Swap"] = "1"
    return response

