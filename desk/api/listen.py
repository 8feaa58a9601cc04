"""``/api/v1/listen-ins``: supervisors listening in on calls, for scripts and CRMs.

``GET`` lists the listen-ins standing; ``POST`` with ``{"agent": "ann"}`` (or
``{"agent_id": 3}``) or ``{"number": "0221"}``, and optionally ``"address": "sip:…"`` (default:
the supervisor's own SIP peer), starts one (201); ``DELETE ?id=3`` stops that one, ``DELETE
?agent=ann`` or ``?number=0221`` the caller's own for that agent or number. Supervisors
only (agents get 403). ``desk.services.listen`` checks, stores and audits; a refusal is
its status (400, 404, 409) with the message, and ``errors`` by field where it is about one.
"""

from __future__ import annotations

from typing import Any

from flask import Response, abort, jsonify, request
from flask.typing import ResponseReturnValue
from flask_login import current_user

from desk.api.blueprint import bp
from desk.api.openapi import ERROR
from desk.errors import MAX_ID, error_response, whole_number
from desk.extensions import db
from desk.services import listen

_FIELDS = {"agent", "agent_id", "number", "address"}


def _refused(problem: listen.ListenRefused) -> Response:
    errors = {problem.field: problem.message} if problem.field else {}
    return error_response(problem.status, problem.message, errors=errors)


def _supervisors_only() -> None:
    if not current_user.is_supervisor:
        abort(403, "Only supervisors can listen in on calls.")


@bp.get("/listen-ins")
def list_listen_ins() -> Response:
    _supervisors_only()
    return jsonify(listen_ins=[listen.to_json(rule) for rule in listen.rules(db.session)])


@bp.post("/listen-ins")
def start_listen_in() -> ResponseReturnValue:
    _supervisors_only()
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        abort(400, 'Send a JSON object: {"agent": "ann"} or {"number": "0221"}, optionally '
                   'with "address": "sip:you@pbx.example".')
    unknown = sorted(set(body) - _FIELDS)
    if unknown:
        abort(422, f"Unknown field(s) {', '.join(map(repr, unknown))}; expected agent (or "
                   "agent_id), number and address.")
    try:
        rule = listen.start(db.session(), current_user, agent_id=body.get("agent_id"),
                            agent_name=body.get("agent"), number=body.get("number"),
                            address=body.get("address"))
    except listen.ListenRefused as problem:
        return _refused(problem)
    return jsonify(listen.to_json(rule)), 201


@bp.delete("/listen-ins")
def stop_listen_in() -> ResponseReturnValue:
    _supervisors_only()
    wanted = request.args.get("id")
    try:
        if wanted is not None:
            number_id = whole_number(wanted, 1, MAX_ID)
            if number_id is None:
                abort(400, f"'id' must be a listen-in's id (a whole number), not {wanted[:20]!r}.")
            rule_id = number_id
        else:
            rule_id = listen.find_own(db.session(), current_user,
                                      agent_name=request.args.get("agent"),
                                      number=request.args.get("number"))
        was = listen.stop(db.session(), current_user, rule_id)
    except listen.ListenRefused as problem:
        return _refused(problem)
    return jsonify(was)


LISTEN_IN = {
    "type": "object",
    "required": ["id", "supervisor", "address", "created_at"],
    "properties": {
        "id": {"type": "integer"},
        "supervisor": {"type": "string", "description": "Who listens."},
        "agent": {"type": ["string", "null"], "description": "Whose calls (or null)."},
        "number": {"type": ["string", "null"],
                   "description": "Which called number's calls (or null), digits only."},
        "address": {"type": "string", "description": "The sip: URI the silent leg rings."},
        "created_at": {"type": "string", "format": "date-time"},
    },
}

_ONE = {"200": {"description": "The listen-in that was stopped", "content": {
    "application/json": {"schema": LISTEN_IN}}}}

PATHS: dict[str, Any] = {
    "/listen-ins": {
        "get": {
            "summary": "Listen-ins standing",
            "description": "Supervisors only. Each one adds a silent monitoring leg "
                           "(mediaservice monitorDestAddr) to the matching calls.",
            "responses": {
                "200": {"description": "Oldest first", "content": {"application/json": {
                    "schema": {"type": "object", "properties": {
                        "listen_ins": {"type": "array", "items": LISTEN_IN}}}}}},
                "401": ERROR, "403": ERROR,
            },
        },
        "post": {
            "summary": "Start listening in",
            "description": "Supervisors only. The calls one agent takes (`agent` by name or "
                           "`agent_id`), or the calls to one `number`, ring `address` (default: "
                           "your SIP peer) as a silent leg, from the next such call on. Audited.",
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object",
                "properties": {"agent": {"type": "string"}, "agent_id": {"type": "integer"},
                               "number": {"type": "string"}, "address": {"type": "string"}},
            }}}},
            "responses": {
                "201": {"description": "Listening", "content": {
                    "application/json": {"schema": LISTEN_IN}}},
                "400": ERROR, "401": ERROR, "403": ERROR, "404": ERROR, "409": ERROR,
                "422": ERROR,
            },
        },
        "delete": {
            "summary": "Stop listening in",
            "description": "Supervisors only: `id`, or `agent` / `number` for your own "
                           "listen-in to them. Audited.",
            "parameters": [
                {"name": "id", "in": "query", "required": False, "schema": {"type": "integer"}},
                {"name": "agent", "in": "query", "required": False, "schema": {"type": "string"}},
                {"name": "number", "in": "query", "required": False,
                 "schema": {"type": "string"}},
            ],
            "responses": {**_ONE, "400": ERROR, "401": ERROR, "403": ERROR, "404": ERROR},
        },
    },
}
