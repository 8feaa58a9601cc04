"""``/api/v1/agents``: who is there and their presence; agents set their own."""

from __future__ import annotations

from typing import Any

from flask import Response, abort, jsonify, request
from flask_login import current_user

from desk.api.blueprint import bp
from desk.api.openapi import ERROR
from desk.extensions import db
from desk.models import PRESENCES, User
from desk.services import queries
from desk.services.presence import set_presence


@bp.get("/agents")
def list_agents() -> Response:
    current = queries.current_calls(db.session())
    result = []
    for person in queries.people(db.session()):
        data = person.to_json()
        call = current.get(person.id)
        data["current_call"] = call.id if call else None
        result.append(data)
    return jsonify(agents=result)


@bp.put("/agents/me/presence")
def put_presence() -> Response:
    body = request.get_json(silent=True)
    value = body.get("presence") if isinstance(body, dict) else None
    if value not in PRESENCES:
        abort(400, f"Send JSON {{\"presence\": ...}} with one of: {', '.join(PRESENCES)}.")
    set_presence(db.session, current_user.id, value)
    me = db.session.get_one(User, current_user.id)
    db.session.refresh(me)
    return jsonify(me.to_json())


PATHS: dict[str, Any] = {
    "/agents": {
        "get": {
            "summary": "Everyone on the desk, with presence and current call",
            "responses": {
                "200": {"description": "Agents and supervisors", "content": {
                    "application/json": {"schema": {"type": "object", "properties": {
                        "agents": {"type": "array",
                                   "items": {"$ref": "#/components/schemas/Agent"}}}}}}},
                "401": ERROR,
            },
        }
    },
    "/agents/me/presence": {
        "put": {
            "summary": "Set your own presence",
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["presence"],
                "properties": {"presence": {"type": "string", "enum": list(PRESENCES)}},
            }}}},
            "responses": {
                "200": {"description": "You, with the new presence", "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/Agent"}}}},
                "400": ERROR, "401": ERROR,
            },
        }
    },
}
