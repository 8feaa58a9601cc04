"""How a call went, in a supervisor's words: the one definition, in Python and in SQL.

``outcome_of`` is what ``Call.outcome`` returns (rows, the detail page, the CSV, the API);
``outcome_condition`` is the same rule as a SQL condition, for history's outcome filter.
They sit side by side so a change to one is seen next to the other, and
``tests/test_history.py`` checks they agree on every case. The cause sets the wallboard's
counters use (``desk.services.wallboard``) are defined here too.

The rule for an ended call: a *named* end cause is its own outcome; ``no_answer`` with no
answer is "unanswered" (an outbound call nobody picked up, Teleforge NOANSWER); any other
cause is "answered" when someone talked (answered, or a duration), else "missed". A live
call's outcome is its state.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import and_, func, or_
from sqlalchemy.sql.elements import ColumnElement

from desk.domain.state import STATE_RANK

if TYPE_CHECKING:
    from desk.models import Call

NAMED_CAUSES = (
    "voicemail", "missed", "blocked", "busy", "rejected", "failed", "cancelled",
    # Placetel's hangup types for outbound calls it could not connect.
    "unavailable", "congestion",
)
"""End causes that are an outcome of their own."""
OUTCOMES = (
    "answered", "missed", "unanswered", "voicemail", "busy", "rejected", "blocked", "failed",
    "cancelled", "unavailable", "congestion", "ringing", "talking", "dialling",
)
"""Every value ``outcome_of`` can take, in the order history's filter offers them."""

REFUSED_CAUSES = ("blocked", "rejected")
"""Inbound calls refused on purpose: neither offered nor missed on the wallboard."""
NOT_ABANDONED_CAUSES = ("voicemail", "no_end_event", "closed_by_supervisor")
"""Unanswered, but handed somewhere by the desk, or closed by it (``desk.services.sweeper``:
no end event came, or a supervisor closed it) rather than given up by the caller. Such a
call keeps the outcome its answer time gives (answered or missed); its page says why."""


def outcome_of(
    state: str, end_cause: str | None, answered_at: datetime | None, duration: int | None
) -> str:
    """How a call with these fields went (see the module docstring)."""
    if state != "ended":
        return state
    if end_cause in NAMED_CAUSES:
        return end_cause
    if end_cause == "no_answer" and not answered_at:
        return "unanswered"
    return "answered" if answered_at or (duration or 0) > 0 else "missed"


def _calls() -> type[Call]:
    from desk.models import Call  # desk.models imports this module for Call.outcome

    return Call


def cause_not_in(causes: tuple[str, ...]) -> ColumnElement[bool]:
    """SQL: the call's end cause is none of ``causes`` (a call without a cause is none)."""
    call = _calls()
    return or_(call.end_cause.is_(None), call.end_cause.not_in(causes))


def outcome_condition(outcome: str) -> ColumnElement[bool]:
    """SQL for ``outcome_of(...) == outcome``, the same rule as a query condition."""
    call = _calls()
    if outcome in STATE_RANK and outcome != "ended":  # a live call: its state
        return call.state == outcome
    ended = call.state == "ended"
    # coalesce: a NULL end_cause must make this false, not NULL (NOT NULL stays NULL).
    no_answer_unanswered = and_(func.coalesce(call.end_cause, "") == "no_answer",
                                call.answered_at.is_(None))
    unnamed = and_(cause_not_in(NAMED_CAUSES), ~no_answer_unanswered)
    talked = or_(call.answered_at.is_not(None), func.coalesce(call.duration, 0) > 0)
    if outcome == "unanswered":
        return and_(ended, no_answer_unanswered)
    if outcome == "answered":
        return and_(ended, unnamed, talked)
    if outcome == "missed":
        return and_(ended, or_(call.end_cause == "missed", and_(unnamed, ~talked)))
    return and_(ended, call.end_cause == outcome)
