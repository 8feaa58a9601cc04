"""``/api/v1/calls``: live calls, call history with filters and paging, one call.

Query parameters are checked before any query runs and a bad one is answered 400 naming
it: ``limit`` and ``before`` are ASCII whole numbers in range (``before`` up to the largest
id, ``desk.errors.MAX_ID``), ``since``/``until`` ISO 8601 times that exist in UTC too.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Response, abort, jsonify, request
from flask_login import current_user
from sqlalchemy import select

from desk.api.blueprint import bp
from desk.api.openapi import ERROR, param
from desk.errors import MAX_ID, whole_number
from desk.extensions import db
from desk.models import LIVE_STATES, Call, User
from desk.services import queries
from desk.services.visibility import load_visible, visible_calls

MAX_LIMIT = 200


def _when(name: str) -> datetime | None:
    raw = request.args.get(name)
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        value = value if value.tzinfo else value.replace(tzinfo=UTC)
        # Stored times are UTC: 9999-12-31T23:59:59-23:00 parses, but is past year 9999 there.
        return value.astimezone(UTC)
    except ValueError:
        abort(400, f"'{name}' must be an ISO 8601 date or time, e.g. 2026-11-22T08:00:00Z.")
    except OverflowError:
        abort(400, f"'{name}' is out of range: it must be a time between the years 1 and 9999 "
                   "in UTC.")


def _int(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    value = whole_number(raw, low, high)
    if value is None:
        abort(400, f"'{name}' must be a whole number from {low} to {high}, not {raw[:20]!r}.")
    return value


@bp.get("/calls")
def list_calls() -> Response:
    state = request.args.get("state", "live")
    if state not in ("live", "ended", "all"):
        abort(400, "'state' must be live, ended or all.")
    limit = _int("limit", 50, 1, MAX_LIMIT)
    before = _int("before", 0, 0, MAX_ID)
    query = select(Call)
    if state == "live":
        query = query.where(Call.state.in_(LIVE_STATES))
    elif state == "ended":
        query = query.where(Call.state == "ended")
    query = visible_calls(current_user, query)
    if provider := request.args.get("provider"):
        query = query.where(Call.provider == provider)
    if agent := request.args.get("agent"):
        query = query.join(User, Call.agent_id == User.id).where(User.name == agent)
    if number := request.args.get("number"):
        query = query.where(queries.number_contains(number.strip()))
    if since := _when("since"):
        query = query.where(Call.started_at >= since)
    if until := _when("until"):
        query = query.where(Call.started_at < until)
    if before:
        query = query.where(Call.id < before)
    rows = db.session.scalars(query.order_by(Call.id.desc()).limit(limit + 1)).unique().all()
    page, more = rows[:limit], len(rows) > limit
    return jsonify(
        calls=[call.to_json() for call in page],
        next_before=page[-1].id if more and page else None,
    )


@bp.get("/calls/<int:call_id>")
def get_call(call_id: int) -> Response:
    call = load_visible(db.session, current_user, call_id)
    return jsonify(call.to_json())


PATHS: dict[str, Any] = {
    "/calls": {
        "get": {
            "summary": "Live calls, or call history with filters",
            "description": "Newest first. Agents see every live call but only their own "
            "ended calls. Page with `before` = the previous page's `next_before`.",
            "parameters": [
                param("state", "live (default), ended or all",
                       {"type": "string", "enum": ["live", "ended", "all"]}),
                param("provider", "only this provider", {"type": "string"}),
                param("agent", "only calls of the agent with this name", {"type": "string"}),
                param("number", "calling or called number contains this",
                       {"type": "string"}),
                param("since", "started at or after (ISO 8601)",
                       {"type": "string", "format": "date-time"}),
                param("until", "started before (ISO 8601)",
                       {"type": "string", "format": "date-time"}),
                param("limit", "page size, 1 to 200 (default 50)",
                       {"type": "integer", "minimum": 1, "maximum": 200}),
                param("before", "only calls with a smaller id (paging)",
                       {"type": "integer", "minimum": 0, "maximum": MAX_ID}),
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
                "400": ERROR, "401": ERROR,
            },
        }
    },
    "/calls/{call_id}": {
        "get": {
            "summary": "One call",
            "parameters": [{"name": "call_id", "in": "path", "required": True,
                            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID}}],
            "responses": {
                "200": {"description": "The call", "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/Call"}}}},
                "401": ERROR, "403": ERROR, "404": ERROR,
            },
        }
    },
}
