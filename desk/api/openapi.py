"""``/api/v1/openapi.json``: the API's OpenAPI 3.1 description, assembled from the routes.

Each API module describes its own routes in a ``PATHS`` mapping next to them; this module
holds the shared parts (schemas, the error response, ``param``) and merges every module's
``PATHS`` into one document. ``tests/test_api.py`` checks the result is valid OpenAPI and
that every ``/api/v1`` route is described.
"""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify

from desk.api.blueprint import bp
from desk.models import PRESENCES, STATES

ERROR = {"$ref": "#/components/responses/Error"}

CALL = {
    "type": "object",
    "required": ["id", "provider", "provider_call_id", "direction", "state", "started_at"],
    "properties": {
        "id": {"type": "integer"},
        "provider": {"type": "string", "examples": ["placetel"]},
        "provider_call_id": {"type": "string"},
        "direction": {"type": "string", "enum": ["inbound", "outbound"]},
        "from": {"type": ["string", "null"]},
        "to": {"type": ["string", "null"]},
        "agent": {"type": ["string", "null"], "description": "Name of the agent on the call."},
        "answered_by": {"type": ["string", "null"], "description": "As the provider named it."},
        "state": {"type": "string", "enum": list(STATES)},
        "outcome": {"type": "string", "description": "answered, missed, voicemail, blocked, …"},
        "started_at": {"type": "string", "format": "date-time"},
        "ringing_at": {"type": ["string", "null"], "format": "date-time"},
        "answered_at": {"type": ["string", "null"], "format": "date-time"},
        "ended_at": {"type": ["string", "null"], "format": "date-time"},
        "duration": {"type": ["integer", "null"], "description": "Talk time in seconds."},
        "end_cause": {"type": ["string", "null"]},
        "recording_state": {"type": "string", "description": "off, pending, on, paused, "
                            "stopping, ready or failed; a paused and resumed recording is "
                            "several parts (GET /calls/{call_id}/recording/segments)."},
        "disposition": {"type": ["string", "null"], "description": "Picked at wrap-up."},
        "wrap_up_note": {"type": ["string", "null"]},
        "wrapped_up_at": {"type": ["string", "null"], "format": "date-time"},
    },
}

AGENT = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "name": {"type": "string"},
        "role": {"type": "string", "enum": ["agent", "supervisor"]},
        "extension": {"type": ["string", "null"]},
        "sip_peer": {"type": ["string", "null"]},
        "presence": {"type": "string", "enum": list(PRESENCES)},
        "presence_since": {"type": "string", "format": "date-time"},
        "presence_until": {"type": ["string", "null"], "format": "date-time",
                           "description": "End of a timed wrap-up after a call."},
        "current_call": {"type": ["integer", "null"]},
    },
}


def param(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter."""
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema}


PATHS: dict[str, Any] = {
    "/openapi.json": {
        "get": {
            "summary": "This document",
            "security": [],
            "responses": {"200": {"description": "OpenAPI 3.1 document"}},
        }
    },
}

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "Agent Desk API",
        "version": "1",
        "description": "Live calls, call history and agents. Authenticate with the session "
        "cookie (writes need the CSRF token in X-CSRFToken) or with "
        "'Authorization: Bearer <token>' from `flask --app app users token NAME`.",
    },
    "servers": [{"url": "/api/v1"}],
    "security": [{"bearer": []}, {"session": []}],
    "paths": {},  # filled by document()
    "components": {
        "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer"},
            "session": {"type": "apiKey", "in": "cookie", "name": "session"},
        },
        "schemas": {
            "Call": CALL,
            "Agent": AGENT,
            "Error": {
                "type": "object",
                "required": ["error", "message", "status"],
                "properties": {
                    "error": {"type": "string"},
                    "message": {"type": "string", "description": "What to do about it."},
                    "status": {"type": "integer"},
                },
            },
        },
        "responses": {
            "Error": {"description": "Something about the request is wrong; see message",
                      "content": {"application/json": {
                          "schema": {"$ref": "#/components/schemas/Error"}}}},
        },
    },
}



def document() -> dict[str, Any]:
    """The whole document: shared parts plus every API module's ``PATHS``."""
    from desk import api

    paths: dict[str, Any] = {}
    for module in api.MODULES:
        for path, item in getattr(module, "PATHS", {}).items():
            paths.setdefault(path, {}).update(item)
    return {**DOCUMENT, "paths": dict(sorted(paths.items()))}


@bp.get("/openapi.json")
def openapi() -> Response:
    return jsonify(document())
