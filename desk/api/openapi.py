"""``/api/v1/openapi.json``: the API's OpenAPI 3.1 description, kept beside the routes.

Written by hand because the API is small; ``tests/test_api.py`` checks it is a valid
OpenAPI document and that every ``/api/v1`` route is described in it.
"""

from __future__ import annotations

from typing import Any

from flask import jsonify

from desk.api import bp
from desk.models import PRESENCES, STATES

_error = {"$ref": "#/components/responses/Error"}

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
        "recording_state": {"type": "string"},
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
        "current_call": {"type": ["integer", "null"]},
    },
}


def _param(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema}


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
    "paths": {
        "/calls": {
            "get": {
                "summary": "Live calls, or call history with filters",
                "description": "Newest first. Agents see every live call but only their own "
                "ended calls. Page with `before` = the previous page's `next_before`.",
                "parameters": [
                    _param("state", "live (default), ended or all",
                           {"type": "string", "enum": ["live", "ended", "all"]}),
                    _param("provider", "only this provider", {"type": "string"}),
                    _param("agent", "only calls of the agent with this name", {"type": "string"}),
                    _param("number", "calling or called number contains this",
                           {"type": "string"}),
                    _param("since", "started at or after (ISO 8601)",
                           {"type": "string", "format": "date-time"}),
                    _param("until", "started before (ISO 8601)",
                           {"type": "string", "format": "date-time"}),
                    _param("limit", "page size, 1 to 200 (default 50)",
                           {"type": "integer", "minimum": 1, "maximum": 200}),
                    _param("before", "only calls with a smaller id (paging)",
                           {"type": "integer", "minimum": 0}),
                ],
                "responses": {
                    "200": {
                        "description": "A page of calls",
                        "content": {"application/json": {"schema": {
                            "type": "object",
                            "properties": {
                                "calls": {"type": "array",
                                          "items": {"$ref": "#/components/schemas/Call"}},
                                "next_before": {"type": ["integer", "null"]},
                            },
                        }}},
                    },
                    "400": _error, "401": _error,
                },
            }
        },
        "/calls/{call_id}": {
            "get": {
                "summary": "One call",
                "parameters": [{"name": "call_id", "in": "path", "required": True,
                                "schema": {"type": "integer"}}],
                "responses": {
                    "200": {"description": "The call", "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/Call"}}}},
                    "401": _error, "403": _error, "404": _error,
                },
            }
        },
        "/agents": {
            "get": {
                "summary": "Everyone on the desk, with presence and current call",
                "responses": {
                    "200": {"description": "Agents and supervisors", "content": {
                        "application/json": {"schema": {"type": "object", "properties": {
                            "agents": {"type": "array",
                                       "items": {"$ref": "#/components/schemas/Agent"}}}}}}},
                    "401": _error,
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
                    "400": _error, "401": _error,
                },
            }
        },
        "/openapi.json": {
            "get": {
                "summary": "This document",
                "security": [],
                "responses": {"200": {"description": "OpenAPI 3.1 document"}},
            }
        },
    },
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



@bp.get("/openapi.json")
def openapi():  # type: ignore[no-untyped-def]
    return jsonify(DOCUMENT)
