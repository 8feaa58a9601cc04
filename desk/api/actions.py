"""``/api/v1/calls/<id>/hangup|split|recording|close``: the call buttons for scripts and CRMs.

202 with the call when the provider accepted (its callback confirms later: watch the
call's ``pending_action`` clear), 502/504 with the provider's refusal or a timeout, 4xx when
the desk refuses (not your call, wrong state, already pending). ``close`` (supervisors) asks
no provider: 200 with the ended call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import abort, current_app, jsonify, request
from flask.typing import ResponseReturnValue
from flask_login import current_user
from sqlalchemy.orm import Session

from desk.api.blueprint import bp
from desk.api.openapi import ERROR
from desk.errors import error_response
from desk.extensions import db
from desk.models import User
from desk.services import actions


def _run(do: Callable[[], actions.Outcome]) -> ResponseReturnValue:
    try:
        outcome = do()
    except actions.ActionRefused as exc:
        abort(exc.status, exc.message)
    if not outcome.ok:
        return error_response(
            outcome.status, outcome.message,
            error="Provider refused" if outcome.status == 502 else "Timeout",
            call=outcome.call.to_json(),
        )
    return jsonify(outcome.call.to_json()), 202


def _who(call_id: int) -> tuple[Session, User, int]:
    """The arguments every action starts with: this request's session, user and call."""
    return db.session(), current_user, call_id


@bp.post("/calls/<int:call_id>/hangup")
def api_hangup(call_id: int) -> ResponseReturnValue:
    return _run(lambda: actions.hangup(*_who(call_id), current_app.config))


@bp.post("/calls/<int:call_id>/drop")
def api_drop(call_id: int) -> ResponseReturnValue:
    body = request.get_json(silent=True)
    party = body.get("party") if isinstance(body, dict) else None
    return _run(lambda: actions.drop_party(*_who(call_id), party, current_app.config))


@bp.post("/calls/<int:call_id>/split")
def api_split(call_id: int) -> ResponseReturnValue:
    body = request.get_json(silent=True)
    if body is not None and not isinstance(body, dict):
        abort(400, 'Send a JSON object, e.g. {"target": "sip:101@example.com"}, or no body.')
    target = (body or {}).get("target")
    if target is not None and not isinstance(target, str):
        abort(400, "'target' must be a string: a number, extension or SIP address.")
    return _run(lambda: actions.split(*_who(call_id), target, current_app.config))


@bp.post("/calls/<int:call_id>/close")
def api_close(call_id: int) -> ResponseReturnValue:
    try:
        outcome = actions.close(*_who(call_id))
    except actions.ActionRefused as exc:
        abort(exc.status, exc.message)
    return jsonify(outcome.call.to_json())


@bp.post("/calls/<int:call_id>/recording")
def api_record(call_id: int) -> ResponseReturnValue:
    return _run(lambda: actions.start_recording(*_who(call_id), current_app.config))


@bp.delete("/calls/<int:call_id>/recording")
def api_stop_record(call_id: int) -> ResponseReturnValue:
    return _run(lambda: actions.stop_recording(*_who(call_id), current_app.config))


def _action(summary: str, description: str, body: dict[str, Any] | None = None) -> dict:
    operation: dict[str, Any] = {
        "summary": summary,
        "description": description,
        "parameters": [{"name": "call_id", "in": "path", "required": True,
                        "schema": {"type": "integer"}}],
        "responses": {
            "202": {"description": "The provider accepted; the call shows pending_action until "
                                   "its callback confirms",
                    "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/Call"}}}},
            "400": ERROR, "401": ERROR, "403": ERROR, "404": ERROR, "409": ERROR,
            "502": ERROR, "503": ERROR, "504": ERROR,
        },
    }
    if body:
        operation["requestBody"] = {"required": False,
                                    "content": {"application/json": {"schema": body}}}
    return operation


PATHS: dict[str, Any] = {
    "/calls/{call_id}/hangup": {"post": _action(
        "Hang up a call", "Agents: their own calls; supervisors: any.")},
    "/calls/{call_id}/drop": {"post": _action(
        "Drop one party", "Hangs up the caller's or the agent's leg only (hangupparticipant).",
        {"type": "object", "required": ["party"],
         "properties": {"party": {"type": "string", "enum": ["caller", "agent"]}}})},
    "/calls/{call_id}/split": {"post": _action(
        "Split (transfer) a call",
        "Splits the connection; the caller is connected onward to `target`, the agent's leg is "
        "dropped. Without a target the caller goes back through the routing policy.",
        {"type": "object", "properties": {"target": {
            "type": "string", "description": "number, extension or sip: URI"}}})},
    "/calls/{call_id}/close": {"post": {
        "summary": "Close a call on the desk",
        "description": "Supervisors only, any live call of any provider: the desk ends the call "
                       "itself (end_cause `closed_by_supervisor`), for a call whose provider will "
                       "not report its end. The provider is not asked; audited.",
        "parameters": [{"name": "call_id", "in": "path", "required": True,
                        "schema": {"type": "integer"}}],
        "responses": {
            "200": {"description": "The call, ended",
                    "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/Call"}}}},
            "401": ERROR, "403": ERROR, "404": ERROR, "409": ERROR,
        },
    }},
    "/calls/{call_id}/recording": {
        "post": _action("Start recording", "The row shows recording pending → on."),
        "delete": _action("Stop recording",
                          "The row shows stopping → ready (or failed with the reason)."),
    },
}
