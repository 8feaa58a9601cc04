"""After-call work through the API: a call's wrap-up, and the dispositions list.

``POST /api/v1/calls/<id>/wrap-up`` with ``{"disposition", "note"}`` stores them on an ended
call (its agent or a supervisor; the same rules and messages as the board's form, from
``desk.services.wrapup``); a refusal is 422 with ``errors`` by field. ``GET
/api/v1/dispositions`` lists the active labels; ``PUT`` (supervisors) replaces the list.
"""

from __future__ import annotations

from typing import Any

from flask import Response, abort, jsonify, request
from flask_login import current_user

from desk.api.blueprint import bp
from desk.api.openapi import ERROR
from desk.errors import error_response
from desk.extensions import db
from desk.services import wrapup


def _object(example: str) -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        abort(400, f"Send a JSON object: {example}.")
    return body


@bp.post("/calls/<int:call_id>/wrap-up")
def post_wrap_up(call_id: int) -> Response:
    body = _object('{"disposition": "Sale", "note": "wants a callback on Friday"}')
    unknown = sorted(set(body) - {"disposition", "note"})
    if unknown:
        abort(422, f"Unknown field(s) {', '.join(map(repr, unknown))}; expected disposition "
                   f"and note.")
    try:
        call = wrapup.save_wrap_up(db.session(), current_user, call_id,
                                   body.get("disposition"), body.get("note"))
    except wrapup.WrapUpRefused as problem:
        errors = {problem.field: problem.message} if problem.field else {}
        return error_response(problem.status, problem.message, errors=errors)
    return jsonify(call.to_json())


@bp.get("/dispositions")
def get_dispositions() -> Response:
    return jsonify(dispositions=wrapup.dispositions(db.session))


@bp.put("/dispositions")
def put_dispositions() -> Response:
    if not current_user.is_supervisor:
        abort(403, "Only supervisors keep the dispositions list.")
    body = _object('{"dispositions": ["Sale", "Call back", "No interest"]}')
    labels = body.get("dispositions")
    if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
        abort(422, "'dispositions' must be a list of texts, in the order agents see them.")
    try:
        saved = wrapup.replace_dispositions(db.session(), labels, current_user)
    except wrapup.WrapUpRefused as problem:
        return error_response(422, problem.message, errors={"dispositions": problem.message})
    return jsonify(dispositions=saved)


_LABELS = {"type": "array", "items": {"type": "string", "maxLength": wrapup.MAX_LABEL}}
_REFUSED = {"description": "Refused; `errors` maps fields to messages", "content": {
    "application/json": {"schema": {"allOf": [
        {"$ref": "#/components/schemas/Error"},
        {"type": "object", "properties": {
            "errors": {"type": "object", "additionalProperties": {"type": "string"}}}},
    ]}}}}

PATHS: dict[str, Any] = {
    "/calls/{call_id}/wrap-up": {
        "post": {
            "summary": "Save the disposition and note of an ended call",
            "description": "The call's agent or a supervisor; the last save wins. The "
            "disposition must be one of `GET /dispositions` (required when there are any); "
            "the note has at most 2,000 characters. Saving ends the agent's wrap-up.",
            "parameters": [{"name": "call_id", "in": "path", "required": True,
                            "schema": {"type": "integer"}}],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "additionalProperties": False,
                "properties": {"disposition": {"type": ["string", "null"]},
                               "note": {"type": ["string", "null"],
                                        "maxLength": wrapup.MAX_NOTE}},
            }}}},
            "responses": {
                "200": {"description": "The call, with its wrap-up", "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/Call"}}}},
                "400": ERROR, "403": ERROR, "404": ERROR,
                "409": ERROR, "422": _REFUSED,
            },
        },
    },
    "/dispositions": {
        "get": {
            "summary": "The dispositions agents choose from, in order",
            "responses": {"200": {"description": "The active list", "content": {
                "application/json": {"schema": {"type": "object", "properties": {
                    "dispositions": _LABELS}}}}}},
        },
        "put": {
            "summary": "Replace the dispositions list (supervisors)",
            "description": "Labels left out stay on the calls that have them.",
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["dispositions"],
                "properties": {"dispositions": _LABELS}}}}},
            "responses": {
                "200": {"description": "The list as saved", "content": {
                    "application/json": {"schema": {"type": "object", "properties": {
                        "dispositions": _LABELS}}}}},
                "400": ERROR, "403": ERROR, "422": _REFUSED,
            },
        },
    },
}
