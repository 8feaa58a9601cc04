"""``/api/v1/calls``: live calls, call history with filters and paging, one call, and
``/api/v1/calls.csv``, the history as CSV.

Query parameters are checked before any query runs and a bad one is answered 400 naming
it: ``limit`` and ``before`` are ASCII whole numbers in range (``before`` up to the largest
id, ``desk.errors.MAX_ID``), ``since``/``until`` ISO 8601 times that exist in UTC too
(``desk.api.params``). The CSV is the history page's export itself
(``desk.web.history.csv_response``): the same filters, the same visibility, the same cells.
"""

from __future__ import annotations

from typing import Any

from flask import Response, abort, jsonify, request
from flask_login import current_user
from sqlalchemy import select

from desk.api.blueprint import bp
from desk.api.openapi import ERROR, param
from desk.api.params import when, whole
from desk.domain.outcomes import OUTCOMES
from desk.errors import MAX_ID
from desk.extensions import db
from desk.models import LIVE_STATES, Call, User
from desk.services import queries
from desk.services.visibility import load_visible, visible_calls
from desk.web import history

MAX_LIMIT = 200


@bp.get("/calls")
def list_calls() -> Response:
    state = request.args.get("state", "live")
    if state not in ("live", "ended", "all"):
        abort(400, "'state' must be live, ended or all.")
    limit = whole("limit", 50, 1, MAX_LIMIT)
    before = whole("before", 0, 0, MAX_ID)
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
    if since := when("since"):
        query = query.where(Call.started_at >= since)
    if until := when("until"):
        query = query.where(Call.started_at < until)
    if before:
        query = query.where(Call.id < before)
    rows = db.session.scalars(query.order_by(Call.id.desc()).limit(limit + 1)).unique().all()
    page, more = rows[:limit], len(rows) > limit
    return jsonify(
        calls=[call.to_json() for call in page],
        next_before=page[-1].id if more and page else None,
    )


@bp.get("/calls.csv")
def calls_csv() -> Response:
    return history.csv_response(current_user, history.CallFilters.from_request())


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
    "/calls.csv": {
        "get": {
            "summary": "Call history as CSV",
            "description": "The export of the history page (`/history.csv`): the same filters, "
            "the same calls (agents: the calls they answered; supervisors: all), newest first, "
            "streamed. Times are in `DESK_TIMEZONE`; a cell a spreadsheet would read as a "
            "formula (starting `=`, `+`, `-`, `@`, tab or carriage return) starts with `'`.",
            "parameters": [
                param("number", "calling or called number contains this (at most 64 "
                      "characters)", {"type": "string", "maxLength": 64}),
                param("agent", "only calls of the user with this id (supervisors)",
                      {"type": "integer", "minimum": 0, "maximum": MAX_ID}),
                param("provider", "only this provider",
                      {"type": "string", "enum": list(history.PROVIDERS)}),
                param("outcome", "only calls with this outcome",
                      {"type": "string", "enum": list(OUTCOMES)}),
                param("from", "started on or after this day (YYYY-MM-DD, DESK_TIMEZONE)",
                      {"type": "string", "format": "date"}),
                param("to", "started on or before this day (YYYY-MM-DD, DESK_TIMEZONE)",
                      {"type": "string", "format": "date"}),
            ],
            "responses": {
                "200": {"description": "CSV with a header row: "
                        + ", ".join(history.CSV_COLUMNS),
                        "content": {"text/csv": {"schema": {"type": "string"}}}},
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
