"""Call history (search, paging, streamed CSV export) and the audit log page.

Who sees what is decided in the query, never in the template
(``desk.services.visibility.history_scope``): supervisors search every call, an agent only
calls it answered; the audit log is for supervisors. What the outcome filter means is
``desk.domain.outcomes``. Filters come from the query string (``QueryInput`` reads them),
and a bad one (a date that is not ``YYYY-MM-DD``, ``to`` before ``from``, page ``0`` or
``²``, an id past the columns' range, an unknown outcome) is answered 400 saying what to
fix: the pages come back whole with the filters as typed, each problem under its field and
the results saying why none are shown; the CSV export answers in plain text, and the API's
export (``CallFilters.from_request``) as JSON. Dates are calendar days in the reader's time
zone (``desk.i18n``: theirs, else ``DESK_TIMEZONE``; the API's always ``DESK_TIMEZONE``),
inclusive at both ends, and the pages show times in that zone too.

Paging fetches one row more than a page to know whether there is a next one, so no query
counts a year of history. The CSV export streams: rows are read from the database in
batches and written out as they come, never built whole in memory. Any cell a spreadsheet
would read as a formula (starting with ``= + - @``, tab or carriage return) gets a leading
``'`` so a caller id like ``=HYPERLINK(...)`` stays text.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import Response, abort, render_template, request, stream_with_context
from flask.typing import ResponseReturnValue
from flask_babel import get_timezone, gettext
from flask_login import current_user, login_required
from sqlalchemy import Select, select
from sqlalchemy.orm import joinedload

from desk.domain.outcomes import OUTCOMES, outcome_condition
from desk.errors import MAX_ID, whole_number
from desk.extensions import db, hub
from desk.models import STATES, AuditEntry, Call, User
from desk.providers import REGISTRY
from desk.services import queries
from desk.services.actions import ACTION_NAMES, action_name, outcome_name
from desk.services.audit import ACTION_LABELS as AUDIT_ACTIONS
from desk.services.audit import OUTCOMES as AUDIT_OUTCOMES
from desk.services.visibility import history_scope
from desk.web import bp
from desk.web.auth import supervisor_required
from desk.web.labels import label

PER_PAGE = 50
MAX_PAGE = 10_000
PROVIDERS = tuple(REGISTRY)  # the history filter offers every registered provider
CSV_BATCH = 500
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


# -- input ------------------------------------------------------------------------------------


def _tz() -> ZoneInfo:
    """The reader's time zone (``DESK_TIMEZONE`` for the API: ``desk.i18n``)."""
    return ZoneInfo(str(get_timezone()))


def parse_day(raw: str) -> date | None:
    """``YYYY-MM-DD`` as a date (years 1970 to 9998, so a day's UTC bounds exist), else None."""
    if len(raw) != 10:  # fromisoformat also takes 20260331; people type 2026-03-31
        return None
    try:
        value = date.fromisoformat(raw)
    except ValueError:
        return None
    return value if 1970 <= value.year <= 9998 else None


class QueryInput:
    """A page's query string read filter by filter, every problem kept under its filter's
    name (the first one per filter), so a page can show each beside its field."""

    def __init__(self, args: Mapping[str, str]) -> None:
        self.args = args
        self.problems: dict[str, str] = {}

    def raw(self, name: str) -> str:
        return (self.args.get(name) or "").strip()

    def refuse(self, name: str, message: str) -> None:
        self.problems.setdefault(name, message)

    def text(self, name: str, longest: int) -> str:
        raw = self.raw(name)
        if len(raw) > longest:
            self.refuse(name, gettext("'%(name)s' is at most %(longest)s characters.",
                                      name=name, longest=longest))
            return ""
        return raw

    def day(self, name: str) -> date | None:
        raw = self.raw(name)
        if not raw:
            return None
        value = parse_day(raw)
        if value is None:
            self.refuse(name, gettext("'%(name)s' must be a date like 2026-03-31, not "
                                      "%(value)s.", name=name, value=repr(raw[:40])))
        return value

    def page(self) -> int:
        raw = self.raw("page") or "1"
        page = whole_number(raw, 1, MAX_PAGE)
        if page is None:
            self.refuse("page", gettext("'page' must be a whole number from 1 to %(most)s, "
                                        "not %(value)s.", most=MAX_PAGE, value=repr(raw[:20])))
            return 1
        return page

    def ident(self, name: str) -> int | None:
        """An id filter: ASCII digits within the id columns' range (``MAX_ID``)."""
        raw = self.raw(name)
        if not raw:
            return None
        value = whole_number(raw, 0, MAX_ID)
        if value is None:
            self.refuse(name, gettext("'%(name)s' must be a number from 0 to %(most)s, not "
                                      "%(value)s.", name=name, most=MAX_ID,
                                      value=repr(raw[:20])))
        return value

    def choice(self, name: str, allowed: tuple[str, ...]) -> str:
        raw = self.raw(name)
        if raw and raw not in allowed:
            self.refuse(name, gettext("'%(name)s' must be one of %(allowed)s; not %(value)s.",
                                      name=name, allowed=", ".join(allowed),
                                      value=repr(raw[:40])))
            return ""
        return raw

    def date_range(self) -> tuple[date | None, date | None]:
        first, last = self.day("from"), self.day("to")
        if first and last and last < first:
            self.refuse("to", gettext("The 'to' date is before the 'from' date; swap them."))
            return None, None
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
    def parse(cls, args: Mapping[str, str]) -> tuple[CallFilters, dict[str, str]]:
        """The filters in ``args``, and what is wrong with them (filter name → message);
        a filter with a problem is left out of the filters."""
        given = QueryInput(args)
        number = given.text("number", 64)
        agent = given.ident("agent")
        provider = given.choice("provider", PROVIDERS)
        outcome = given.choice("outcome", OUTCOMES)
        first, last = given.date_range()
        return cls(number=number, agent=agent, provider=provider, outcome=outcome,
                   first=first, last=last), given.problems

    @classmethod
    def from_request(cls) -> CallFilters:
        """The request's filters, or 400 naming every bad one (the export and the API)."""
        filters, problems = cls.parse(request.args)
        if problems:
            abort(400, " ".join(problems.values()))
        return filters

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


def audit_action(action: str) -> str:
    """An audited action as the audit page names it (an unknown code as stored)."""
    label = AUDIT_ACTIONS.get(action)
    return str(label) if label is not None else action_name(action)


HISTORY_FIELDS = ("number", "agent", "provider", "outcome", "from", "to")
AUDIT_FIELDS = ("user", "action", "call", "outcome", "from", "to")


@bp.get("/history")
@login_required
def history() -> ResponseReturnValue:
    filters, problems = CallFilters.parse(request.args)
    given = QueryInput(request.args)
    page = given.page()
    problems = {**problems, **given.problems}
    calls, more = ([], False) if problems else _page_of(calls_query(current_user, filters), page)
    agents = _agents() if current_user.is_supervisor else []  # only supervisors pick one
    choices = {"agent": [(person.id, person.name) for person in agents],
               "provider": [(p, p) for p in PROVIDERS],
               "outcome": [(o, label("outcome", o)) for o in OUTCOMES]}
    return render_template(
        "history/history.html", me=current_user, counts=queries.state_counts(db.session()),
        hub=hub, calls=calls, filters=filters, page=page, more=more, tz=_tz(), choices=choices,
        states=STATES, **_shown_as_typed(
            HISTORY_FIELDS if current_user.is_supervisor
            else tuple(f for f in HISTORY_FIELDS if f != "agent"),
            problems),
    ), 400 if problems else 200


def _shown_as_typed(fields: tuple[str, ...], problems: dict[str, str]) -> dict[str, Any]:
    """What a filter form needs to come back as it was sent: the values as typed, the
    problems, the field that gets the focus and the date fields whose value is no date."""
    typed = {name: (request.args.get(name) or "").strip()[:200] for name in fields}
    return {
        "typed": typed, "problems": problems,
        "first_problem": next((name for name in fields if name in problems), None),
        "text_dates": {name for name in ("from", "to") if typed.get(name)
                       and parse_day(typed[name]) is None},
    }


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
    filters, problems = CallFilters.parse(request.args)
    if problems:  # a download, not a page: plain words naming each filter to fix
        return Response(gettext("The export was refused: %(problems)s",
                                problems=" ".join(problems.values())) + "\n",
                        status=400, mimetype="text/plain")
    return csv_response(current_user, filters)


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
def audit() -> ResponseReturnValue:
    given = QueryInput(request.args)
    user_id = given.ident("user")
    action = given.text("action", 64)
    call_id = given.ident("call")
    outcome = given.choice("outcome", AUDIT_OUTCOMES)
    first, last = given.date_range()
    page = given.page()
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
    problems = given.problems
    entries, more = ([], False) if problems else _page_of(
        query.order_by(AuditEntry.at.desc(), AuditEntry.id.desc()), page)
    args = {"user": str(user_id or ""), "call": str(call_id or ""), "action": action,
            "outcome": outcome, "from": first.isoformat() if first else "",
            "to": last.isoformat() if last else ""}
    return render_template(
        "supervisor/audit.html", me=current_user, counts=queries.state_counts(db.session()),
        hub=hub, entries=entries, page=page, more=more, tz=_tz(),
        args={k: v for k, v in args.items() if v}, audit_action=audit_action,
        audit_outcome=outcome_name,
        choices={"user": [(person.id, person.name) for person in _agents()],
                 "action": [(a, audit_action(a)) for a in (*ACTION_NAMES, *AUDIT_ACTIONS)],
                 "outcome": [(o, outcome_name(o)) for o in AUDIT_OUTCOMES]},
        **_shown_as_typed(AUDIT_FIELDS, problems),
    ), 400 if problems else 200
