"""Call history (search, paging, streamed CSV export) and the audit log page.

Who sees what is decided in the query, never in the template
(``desk.services.visibility.history_scope``): supervisors search every call, an agent only
calls it answered; the audit log is for supervisors. What the outcome filter means is
``desk.domain.outcomes``. Filters come from the query string, and a bad one (a date that
is not ``YYYY-MM-DD``, page ``0`` or ``²``, an id past the columns' range, an unknown
outcome) is answered 400 with a message saying what to fix. Dates are calendar days in
``DESK_TIMEZONE``, inclusive at both ends.

Paging fetches one row more than a page to know whether there is a next one, so no query
counts a year of history. The CSV export streams: rows are read from the database in
batches and written out as they come, never built whole in memory. Any cell a spreadsheet
would read as a formula (starting with ``= + - @``, tab or carriage return) gets a leading
``'`` so a caller id like ``=HYPERLINK(...)`` stays text.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import Response, abort, current_app, render_template, request, stream_with_context
from flask_login import current_user, login_required
from sqlalchemy import Select, select
from sqlalchemy.orm import joinedload

from desk.domain.outcomes import OUTCOMES, outcome_condition
from desk.errors import MAX_ID, whole_number
from desk.extensions import db
from desk.models import STATES, AuditEntry, Call, User
from desk.providers import REGISTRY
from desk.services import queries
from desk.services.audit import OUTCOMES as AUDIT_OUTCOMES
from desk.services.visibility import history_scope
from desk.web import bp
from desk.web.auth import supervisor_required

PER_PAGE = 50
MAX_PAGE = 10_000
PROVIDERS = tuple(REGISTRY)  # the history filter offers every registered provider
CSV_BATCH = 500
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


# -- input ------------------------------------------------------------------------------------


def _tz() -> ZoneInfo:
    return ZoneInfo(current_app.config["DESK_TIMEZONE"])


def _date(name: str) -> date | None:
    raw = (request.args.get(name) or "").strip()
    if not raw:
        return None
    try:
        if len(raw) != 10:  # fromisoformat also takes 20260331; people type 2026-03-31
            raise ValueError(raw)
        value = date.fromisoformat(raw)
        if not 1970 <= value.year <= 9998:
            raise ValueError(raw)
        return value
    except ValueError:
        abort(400, f"'{name}' must be a date like 2026-03-31, not {raw[:40]!r}.")


def _page() -> int:
    raw = (request.args.get("page") or "1").strip()
    page = whole_number(raw, 1, MAX_PAGE)
    if page is None:
        abort(400, f"'page' must be a whole number from 1 to {MAX_PAGE}, not {raw[:20]!r}.")
    return page


def _int(name: str) -> int | None:
    """An id filter: ASCII digits within the id columns' range (``MAX_ID``)."""
    raw = (request.args.get(name) or "").strip()
    if not raw:
        return None
    value = whole_number(raw, 0, MAX_ID)
    if value is None:
        abort(400, f"'{name}' must be a number from 0 to {MAX_ID}, not {raw[:20]!r}.")
    return value


def _choice(name: str, allowed: tuple[str, ...]) -> str:
    raw = (request.args.get(name) or "").strip()
    if raw and raw not in allowed:
        abort(400, f"'{name}' must be one of {', '.join(allowed)}; not {raw[:40]!r}.")
    return raw


def _range() -> tuple[date | None, date | None]:
    first, last = _date("from"), _date("to")
    if first and last and last < first:
        abort(400, "The 'to' date is before the 'from' date; swap them.")
    return first, last


def _utc_bounds(first: date | None, last: date | None) -> tuple[datetime | None, datetime | None]:
    """Local calendar days (inclusive) as UTC bounds ``[start, end)``."""
    tz = _tz()
    start = datetime.combine(first, datetime.min.time(), tzinfo=tz) if first else None
    end = (datetime.combine(last + timedelta(days=1), datetime.min.time(), tzinfo=tz)
           if last else None)
    return start, end


@dataclass(frozen=True)
class CallFilters:
    number: str
    agent: int | None
    provider: str
    outcome: str
    first: date | None
    last: date | None

    @classmethod
    def from_request(cls) -> CallFilters:
        number = (request.args.get("number") or "").strip()
        if len(number) > 64:
            abort(400, "'number' is at most 64 characters.")
        first, last = _range()
        return cls(number=number, agent=_int("agent"), provider=_choice("provider", PROVIDERS),
                   outcome=_choice("outcome", OUTCOMES), first=first, last=last)

    def args(self) -> dict[str, str]:
        """The filters as query-string values, for paging links and the CSV link."""
        values = {"number": self.number, "agent": str(self.agent or ""),
                  "provider": self.provider, "outcome": self.outcome,
                  "from": self.first.isoformat() if self.first else "",
                  "to": self.last.isoformat() if self.last else ""}
        return {k: v for k, v in values.items() if v}


# -- queries ----------------------------------------------------------------------------------


def calls_query(user: User, filters: CallFilters) -> Select[Call]:
    """History for ``user``: every call for supervisors, the agent's own calls otherwise."""
    query = history_scope(user, select(Call))
    if user.is_supervisor and filters.agent is not None:
        query = query.where(Call.agent_id == filters.agent)
    if filters.number:
        query = query.where(queries.number_contains(filters.number))
    if filters.provider:
        query = query.where(Call.provider == filters.provider)
    if filters.outcome:
        query = query.where(outcome_condition(filters.outcome))
    start, end = _utc_bounds(filters.first, filters.last)
    if start is not None:
        query = query.where(Call.started_at >= start)
    if end is not None:
        query = query.where(Call.started_at < end)
    return query.order_by(Call.started_at.desc(), Call.id.desc())


def _page_of(query: Select[Any], page: int) -> tuple[list[Any], bool]:
    rows = list(db.session.scalars(query.offset((page - 1) * PER_PAGE).limit(PER_PAGE + 1))
                .unique())
    return rows[:PER_PAGE], len(rows) > PER_PAGE


def _agents() -> list[User]:
    return list(db.session.scalars(select(User).order_by(User.name)))


# -- pages ------------------------------------------------------------------------------------


@bp.get("/history")
@login_required
def history() -> str:
    filters = CallFilters.from_request()
    page = _page()
    calls, more = _page_of(calls_query(current_user, filters), page)
    return render_template(
        "history/history.html", me=current_user, counts=queries.state_counts(db.session()),
        calls=calls, filters=filters, page=page, more=more, tz=_tz(),
        agents=_agents() if current_user.is_supervisor else [],
        providers=PROVIDERS, outcomes=OUTCOMES, states=STATES,
    )


def neutralise(value: Any) -> str:
    """A CSV cell a spreadsheet will not run as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


CSV_COLUMNS = (
    "id", "started_at", "answered_at", "ended_at", "direction", "provider",
    "provider_call_id", "from", "to", "agent", "answered_by", "outcome", "end_cause",
    "duration_seconds", "recording", "disposition", "wrap_up_note",
)


def _csv_row(call: Call, tz: ZoneInfo) -> list[str]:
    def when(value: datetime | None) -> str:
        return value.astimezone(tz).isoformat(timespec="seconds") if value else ""

    values = (
        call.id, when(call.started_at), when(call.answered_at), when(call.ended_at),
        call.direction, call.provider, call.provider_call_id, call.from_number,
        call.to_number, call.agent.name if call.agent else "", call.answered_by,
        call.outcome, call.end_cause, call.talk_seconds, call.recording_state,
        call.disposition, call.wrap_up_note,
    )
    return [neutralise(v) for v in values]


@bp.get("/history.csv")
@login_required
def history_csv() -> Response:
    return csv_response(current_user, CallFilters.from_request())


def csv_response(user: User, filters: CallFilters) -> Response:
    """The streamed CSV of ``user``'s history with ``filters`` (validated before the first
    byte is sent); ``GET /api/v1/calls.csv`` answers with this too."""
    query = calls_query(user, filters).execution_options(yield_per=CSV_BATCH)
    tz = _tz()

    def generate() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(CSV_COLUMNS)
        for n, call in enumerate(db.session.scalars(query), start=1):
            writer.writerow(_csv_row(call, tz))
            if n % CSV_BATCH == 0:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()

    stamp = datetime.now(tz).strftime("%Y%m%d-%H%M")
    return Response(
        stream_with_context(generate()), mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="calls-{stamp}.csv"',
                 "X-Content-Type-Options": "nosniff"},
    )


@bp.get("/audit")
@login_required
@supervisor_required
def audit() -> str:
    user_id = _int("user")
    call_id = _int("call")
    action = (request.args.get("action") or "").strip()[:64]
    outcome = _choice("outcome", AUDIT_OUTCOMES)
    first, last = _range()
    page = _page()
    query = select(AuditEntry).options(joinedload(AuditEntry.user))
    if user_id is not None:
        query = query.where(AuditEntry.user_id == user_id)
    if call_id is not None:
        query = query.where(AuditEntry.call_id == call_id)
    if action:
        query = query.where(AuditEntry.action == action)
    if outcome:
        query = query.where(AuditEntry.outcome == outcome)
    start, end = _utc_bounds(first, last)
    if start is not None:
        query = query.where(AuditEntry.at >= start)
    if end is not None:
        query = query.where(AuditEntry.at < end)
    entries, more = _page_of(query.order_by(AuditEntry.at.desc(), AuditEntry.id.desc()), page)
    args = {"user": str(user_id or ""), "call": str(call_id or ""), "action": action,
            "outcome": outcome, "from": first.isoformat() if first else "",
            "to": last.isoformat() if last else ""}
    return render_template(
        "supervisor/audit.html", me=current_user, counts=queries.state_counts(db.session()),
        entries=entries, page=page, more=more, tz=_tz(), agents=_agents(),
        outcomes=AUDIT_OUTCOMES, args={k: v for k, v in args.items() if v},
    )
