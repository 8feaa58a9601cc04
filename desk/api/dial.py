"""``POST /api/v1/dial``: click-to-dial for scripts and CRMs, same rules as the dial form.

The body is JSON ``{"callee", "outbound_id", "reference"?, "agent"?, "confirm"?}``. Agents
dial from their own extension; a supervisor's token may name any ``agent`` (an extension
someone has, or a phone number). A dial whose first ring goes to someone already on a call,
or to another person who is offline, is answered 409 with ``needs_confirmation`` and the
``questions``; the same body with ``"confirm": true`` places it. A retry is safe when it
carries the same ``reference`` (or ``Idempotency-Key`` header, which is per user): the second
request places no call and answers 409 with the first call (left out when it is a call the
caller may not see, ``desk.services.visibility``). Errors say which field and why, and whether
Teleforge may have placed the call anyway (``may_have_dialled``); nothing is retried.
"""

from __future__ import annotations

import hashlib
from typing import Any

from flask import Response, abort, jsonify, request, url_for
from flask_login import current_user

from desk.api.blueprint import bp
from desk.api.openapi import ERROR
from desk.errors import error_response
from desk.extensions import current_app_object, db
from desk.models import User
from desk.providers.teleforge import client as teleforge_client
from desk.services import dial


def _field(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if value is None:
        return ""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        abort(422, f"'{name}' must be a string, not {type(value).__name__}.")
    return value


@bp.post("/dial")
def post_dial() -> Response:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        abort(400, 'Send a JSON object: {"callee": "0820001234", "outbound_id": "random"}.')
    unknown = sorted(set(body) - {*dial.FIELDS, "confirm"})
    if unknown:
        abort(422, f"Unknown field(s) {', '.join(map(repr, unknown))}; "
                   f"expected {', '.join(dial.FIELDS)} or confirm.")
    confirm = body.get("confirm", False)
    if not isinstance(confirm, bool):
        abort(422, "'confirm' must be true or false (JSON booleans, not strings).")
    values = {name: _field(body, name) for name in dial.FIELDS}
    key = request.headers.get("Idempotency-Key", "").strip()
    user = db.session.get_one(User, current_user.id)
    # Keys are the caller's own: two CRMs that both send "1" must not collide with each other.
    attempt = hashlib.sha256(f"{user.id}:{key}".encode()).hexdigest()[:32] if key else None
    try:
        outcome = dial.place_call(
            db.session(), teleforge_client.client_for(current_app_object()),
            user=user, agent=values["agent"] or None, callee=values["callee"],
            outbound_id=values["outbound_id"], reference=values["reference"], attempt=attempt,
            confirm=confirm,
        )
    except dial.DialNeedsConfirmation as question:
        asked: dict[str, Any] = {"needs_confirmation": True, "questions": question.questions,
                                 "source": "desk"}
        if question.current_call is not None:
            asked["current_call"] = question.current_call.to_json()
        return error_response(
            question.status,
            f'{question.message} Send the same request with "confirm": true to dial anyway.',
            **asked,
        )
    except dial.DialRefused as refused:
        extra: dict[str, Any] = {"errors": refused.errors, "source": "desk"}
        if refused.warnings:
            extra["warnings"] = refused.warnings
        if refused.call is not None:
            extra["call"] = refused.call.to_json()
        return error_response(refused.status, refused.message, **extra)

    sent = {"agent": outcome.request.agent, "callee": outcome.request.callee,
            "outbound_id": outcome.request.outbound_id, "reference": outcome.request.reference}
    if outcome.error is not None:
        error = outcome.error
        return error_response(
            dial.error_status(error), error.message, source="teleforge", kind=error.kind,
            may_have_dialled=error.may_have_dialled, errors=error.field_errors,
            teleforge_status=error.status, call=outcome.call.to_json(), dialled=sent,
        )
    response = jsonify(
        call=outcome.call.to_json(), dialled=sent, reference_generated=outcome.reference_generated,
        warnings=outcome.warnings,
    )
    response.status_code = 201
    response.headers["Location"] = url_for("api.get_call", call_id=outcome.call.id)
    return response


_TEXT = {"type": "string"}
_DIAL_ERROR = {"description": "Refused; `errors` maps fields to messages", "content": {
    "application/json": {"schema": {"allOf": [
        {"$ref": "#/components/schemas/Error"},
        {"type": "object", "properties": {
            "errors": {"type": "object", "additionalProperties": _TEXT},
            "source": {"type": "string", "enum": ["desk", "teleforge"]},
            "kind": {"type": "string", "description": "refused, unreachable, timeout, "
                     "interrupted, rejected, server_error or unexpected"},
            "may_have_dialled": {"type": "boolean",
                                 "description": "Check the board before dialling again."},
            "call": {"$ref": "#/components/schemas/Call"},
            "needs_confirmation": {"type": "boolean", "description": "409 only: nothing was "
                                   "placed; send the same body with \"confirm\": true to "
                                   "dial anyway."},
            "questions": {"type": "object", "additionalProperties": _TEXT,
                          "description": "Why to confirm, by reason: on_call, offline."},
            "current_call": {"$ref": "#/components/schemas/Call"},
        }},
    ]}}}}

PATHS: dict[str, Any] = {
    "/dial": {
        "post": {
            "summary": "Dial a number through Teleforge Click2Dial",
            "description": "Rings `agent` first (default: your extension), then `callee`. The "
            "call row appears at once in state `dialling`; Teleforge's notifications move it "
            "on. Numbers may be pasted with spaces, dashes, brackets and a leading `+` (sent "
            "as `00`). Send the same `reference` or `Idempotency-Key` to retry safely. Never "
            "retried by the desk. When `agent` (or you) is on a call already, or `agent` is "
            "someone else who is offline, the answer is 409 with `needs_confirmation`: send "
            "the same body with `confirm: true` to dial anyway. An extension nobody has is "
            "refused (422).",
            "parameters": [{"name": "Idempotency-Key", "in": "header", "required": False,
                            "description": "Makes a retry without `reference` safe.",
                            "schema": _TEXT}],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["callee", "outbound_id"],
                "additionalProperties": False,
                "properties": {
                    "callee": {"type": "string", "description": "10 digits starting 0, 11 "
                               "starting 27, or 13 to 16 starting 00", "examples": ["0820001234"]},
                    "outbound_id": {"type": "string", "description": "random, tvc_<campaign>, "
                                    "27 + 9 digits (recommended) or 0 + 9 digits (warned)"},
                    "reference": {"type": "string", "maxLength": 230,
                                  "description": "Letters, digits and . - _ ~; generated when "
                                  "empty"},
                    "agent": {"type": "string", "description": "Extension (3 or 4 digits) of "
                              "a person on the desk, or a number, to ring first; supervisors "
                              "only, agents use their own"},
                    "confirm": {"type": "boolean", "default": False,
                                "description": "Dial even when the person rung first is on "
                                "a call or offline (see 409)"},
                },
            }}}},
            "responses": {
                "201": {"description": "Teleforge accepted the dial", "content": {
                    "application/json": {"schema": {"type": "object", "properties": {
                        "call": {"$ref": "#/components/schemas/Call"},
                        "dialled": {"type": "object", "additionalProperties": _TEXT},
                        "reference_generated": {"type": "boolean"},
                        "warnings": {"type": "object", "additionalProperties": _TEXT},
                    }}}}},
                "400": ERROR, "401": ERROR, "403": _DIAL_ERROR, "409": _DIAL_ERROR,
                "422": _DIAL_ERROR, "502": _DIAL_ERROR, "503": _DIAL_ERROR, "504": _DIAL_ERROR,
            },
        }
    },
}
