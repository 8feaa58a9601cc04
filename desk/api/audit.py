"""``GET /api/v1/audit``: the audit log for supervisors' scripts, newest first, in pages.

The same entries as the supervisors' ``/audit`` page (``desk.services.audit``): who pressed
what, when, on which call, and what the provider answered. Filters: ``actor`` (a user's
name), ``action``, ``call`` (an id), ``outcome``, ``since`` / ``until`` (ISO 8601 times);
paging: ``limit`` and ``before`` = the previous page's ``next_before`` (entries are ids in
the order they were written, so a page never shifts while new entries arrive). Agents are
answered 403. ``detail`` and ``provider_answer`` are the JSON the desk recorded, or text
when it recorded text.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Response, abort, jsonify, request
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from desk.api.blueprint import bp
from desk.api.openapi import ERROR, param
from desk.api.params import text, time_range, whole
from desk.errors import MAX_ID
from desk.extensions import db
from desk.models import AuditEntry, User
from desk.services.audit import OUTCOMES

MAX_LIMIT = 200


def _recorded(value: str | None) -> Any:
    """A stored detail as the desk recorded it: objects and lists parsed, text as text."""
    if value is None or not value.startswith(("{", "[")):
        return value
    try:
        return json.loads(value)
    except ValueError:  # text that happens to start with a bracket, or cut at 20,000 characters
        return value


def entry_json(entry: AuditEntry) -> dict[str, Any]:
    """One audit entry as the API shows it."""
    return {
        "id": entry.id,
        "at": entry.at.isoformat(),
        "actor": entry.user.name if entry.user else None,
        "actor_id": entry.user_id,
        "action": entry.action,
        "outcome": entry.outcome,
        "call_id": entry.call_id,
        "detail": _recorded(entry.detail),
        "provider_answer": _recorded(entry.provider_answer),
    }


@bp.get("/audit")
def list_audit() -> Response:
    if not current_user.is_supervisor:
        abort(403, "The audit log is for supervisors; use a supervisor's token.")
    limit = whole("limit", 50, 1, MAX_LIMIT)
    before = whole("before", 0, 0, MAX_ID)
    call_id = whole("call", 0, 1, MAX_ID) if request.args.get("call") else None
    action = text("action", 64)
    outcome = text("outcome", 16)
    if outcome and outcome not in OUTCOMES:
        abort(400, f"'outcome' must be one of {', '.join(OUTCOMES)}, not {outcome[:20]!r}.")
    since, until = time_range("since", "until")
    query = select(AuditEntry).options(joinedload(AuditEntry.user))
    if actor := text("actor", 80):
        user_id = db.session.scalar(select(User.id).where(User.name == actor))
        if user_id is None:
            abort(400, f"'actor' must be the name of a person on the desk (GET /api/v1/agents "
                       f"lists them); nobody is called {actor[:40]!r}.")
        query = query.where(AuditEntry.user_id == user_id)
    if action:
        query = query.where(AuditEntry.action == action)
    if call_id is not None:
        query = query.where(AuditEntry.call_id == call_id)
    if outcome:
        query = query.where(AuditEntry.outcome == outcome)
    if since is not None:
        query = query.where(AuditEntry.at >= since)
    if until is not None:
        query = query.where(AuditEntry.at < until)
    if before:
        query = query.where(AuditEntry.id < before)
    rows = db.session.scalars(query.order_by(AuditEntry.id.desc()).limit(limit + 1)).all()
    page, more = rows[:limit], len(rows) > limit
    return jsonify(
        entries=[entry_json(entry) for entry in page],
        next_before=page[-1].id if more and page else None,
    )


_ENTRY = {
    "type": "object",
    "required": ["id", "at", "action", "outcome"],
    "properties": {
        "id": {"type": "integer"},
        "at": {"type": "string", "format": "date-time"},
        "actor": {"type": ["string", "null"],
                  "description": "Who pressed it; null for what the desk did by itself "
                                 "(closing a silent call, an unconfirmed action)."},
        "actor_id": {"type": ["integer", "null"]},
        "action": {"type": "string", "examples": ["dial", "hangup", "record"]},
        "outcome": {"type": "string", "enum": list(OUTCOMES)},
        "call_id": {"type": ["integer", "null"]},
        "detail": {"description": "What was asked, as recorded (object, or text)."},
        "provider_answer": {"description": "What the provider answered, as recorded."},
    },
}

PATHS: dict[str, Any] = {
    "/audit": {
        "get": {
            "summary": "The audit log (supervisors)",
            "description": "Newest first. Page with `before` = the previous page's "
            "`next_before`. Agents get 403.",
            "parameters": [
                param("actor", "only entries of the person with this name",
                      {"type": "string", "maxLength": 80}),
                param("action", "only this action (dial, hangup, split, record, …)",
                      {"type": "string", "maxLength": 64}),
                param("call", "only entries about this call id",
                      {"type": "integer", "minimum": 1, "maximum": MAX_ID}),
                param("outcome", "only this outcome",
                      {"type": "string", "enum": list(OUTCOMES)}),
                param("since", "written at or after (ISO 8601)",
                      {"type": "string", "format": "date-time"}),
                param("until", "written before (ISO 8601)",
                      {"type": "string", "format": "date-time"}),
                param("limit", f"page size, 1 to {MAX_LIMIT} (default 50)",
                      {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}),
                param("before", "only entries with a smaller id (paging)",
                      {"type": "integer", "minimum": 0, "maximum": MAX_ID}),
            ],
            "responses": {
                "200": {
                    "description": "A page of audit entries",
                    "content": {"application/json": {"schema": {
                        "type": "object",
                        "properties": {
                            "entries": {"type": "array", "items": _ENTRY},
                            "next_before": {"type": ["integer", "null"]},
                        },
                    }}},
                },
                "400": ERROR, "401": ERROR, "403": ERROR,
            },
        }
    },
}
