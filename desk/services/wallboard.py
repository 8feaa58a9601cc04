"""The wallboard's counters, computed in the database with a handful of indexed queries.

"Today" is midnight to midnight in ``DESK_TIMEZONE``, turned into UTC bounds (so a day with a
daylight-saving change has 23 or 25 hours); each counter counts a call on the day its
defining moment happened. Definitions (what a supervisor reads on the board):

- **waiting**: live inbound calls still ringing (nobody has answered yet).
- **ringing**: every live call not yet connected: waiting inbound calls plus outbound calls
  being dialled or ringing at the far end.
- **talking**: live calls in conversation. **recording**: live calls being recorded now.
- **answered today**: calls (either direction) whose ``answered_at`` is today.
- **missed today**: inbound calls that ended today without ever being answered, whatever the
  cause (caller hung up, no answer, busy, voicemail), except callers the desk refused on
  purpose (``end_cause`` ``blocked`` or ``rejected``, ``desk.domain.outcomes.REFUSED_CAUSES``:
  a block list or routing rule, not a failure to serve).
- **abandoned rate**: of the inbound calls *offered* today (started today, not refused), the
  share that ended unanswered while waiting: missed, but not sent to voicemail (voicemail
  is the routing's answer, not the caller giving up). Calls still ringing count as offered,
  not abandoned. Both sides use the day the call started, so the rate stays within 0 to 100 %
  even for calls crossing midnight.
- **average handle time**: mean talk time of calls answered today that have ended: the
  provider's ``duration`` when it sent one, else ``ended_at - answered_at``.
- **longest current wait**: since when the oldest live inbound call that is still ringing
  has been waiting (the browser ticks it).
- **calls per 15 minutes**: calls started today, in 15-minute buckets counted from local
  midnight (bucket ``i`` starts at ``midnight + 15 min * i``), with the abandoned ones.

Cost: four queries, each bounded by an index (``ix_calls_state`` for live calls,
``ix_calls_started_at``, ``ix_calls_answered_at`` and ``ix_calls_ended_at`` for today's
range), so a year of history does not slow them; ``bench/wallboard.py`` measures them.
Live pushes (``desk.live.render``) compute this once per change batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import BigInteger, Integer, and_, case, cast, func, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from desk.domain.outcomes import NOT_ABANDONED_CAUSES, REFUSED_CAUSES, cause_not_in
from desk.models import LIVE_STATES, Call, utcnow

BUCKET_SECONDS = 15 * 60


@dataclass(frozen=True)
class Day:
    """One local calendar day as UTC bounds ``[start, end)``."""

    local: date
    tz: ZoneInfo
    start: datetime
    end: datetime

    @classmethod
    def of(cls, local: date, tz: ZoneInfo) -> Day:
        start = datetime.combine(local, time(0), tzinfo=tz).astimezone(UTC)
        end = datetime.combine(local + timedelta(days=1), time(0), tzinfo=tz).astimezone(UTC)
        return cls(local, tz, start, end)

    @classmethod
    def containing(cls, moment: datetime, tz: ZoneInfo) -> Day:
        return cls.of(moment.astimezone(tz).date(), tz)

    @property
    def bucket_count(self) -> int:
        return -(-int((self.end - self.start).total_seconds()) // BUCKET_SECONDS)


@dataclass
class Counters:
    """Everything ``_wallboard_counters.html`` shows."""

    day: Day
    waiting: int = 0
    ringing: int = 0
    talking: int = 0
    recording: int = 0
    answered: int = 0
    missed: int = 0
    offered: int = 0
    abandoned: int = 0
    handle_time: float | None = None  # seconds; None when nothing answered has ended today
    longest_wait_since: datetime | None = None
    buckets: list[int] = field(default_factory=list)
    abandoned_buckets: list[int] = field(default_factory=list)

    @property
    def abandoned_rate(self) -> float | None:
        """Share of offered calls abandoned (0..1); None when nothing was offered."""
        return self.abandoned / self.offered if self.offered else None

    def chart(self) -> dict[str, Any]:
        """The chart's data for ``static/wallboard/wallboard.js``: x in unix seconds, two series."""
        start = int(self.day.start.timestamp())
        return {
            "x": [start + i * BUCKET_SECONDS for i in range(len(self.buckets))],
            "calls": self.buckets,
            "abandoned": self.abandoned_buckets,
            "tz": self.day.tz.key,
        }


def epoch_seconds(column: Any, dialect: str) -> ColumnElement[int]:
    """Whole unix seconds of a naive-UTC timestamp column, in SQLite and PostgreSQL."""
    if dialect == "sqlite":
        return cast(func.strftime("%s", column), Integer)
    return cast(func.floor(func.extract("epoch", column)), BigInteger)


def _unanswered_inbound() -> ColumnElement[bool]:
    """An inbound call nobody answered that the desk did not refuse on purpose.

    ``coalesce(answered_at, answered_at) IS NULL`` is ``answered_at IS NULL`` that SQLite's
    planner cannot serve from ``ix_calls_answered_at`` (a fifth of a year's calls are
    unanswered): it must take the day's range index instead. PostgreSQL plans it the same.
    """
    return and_(
        Call.direction == "inbound",
        func.coalesce(Call.answered_at, Call.answered_at).is_(None),
        cause_not_in(REFUSED_CAUSES),
    )


def _inbound_missed() -> ColumnElement[bool]:
    return and_(Call.state == "ended", _unanswered_inbound())


def _abandoned() -> ColumnElement[bool]:
    return and_(_inbound_missed(), cause_not_in(NOT_ABANDONED_CAUSES))


def _offered() -> ColumnElement[bool]:
    return and_(Call.direction == "inbound", cause_not_in(REFUSED_CAUSES))


def today(tz_name: str, now: datetime | None = None) -> Day:
    return Day.containing(now or utcnow(), ZoneInfo(tz_name))


def live_counts(session: Session, counters: Counters) -> None:
    """Waiting, ringing, talking, recording and the oldest waiting call: one grouped query
    over the few live calls (``ix_calls_state``)."""
    rows = session.execute(
        select(
            Call.state, Call.direction, Call.recording_state, func.count(),
            func.min(func.coalesce(Call.ringing_at, Call.started_at)),
        )
        .where(Call.state.in_(LIVE_STATES))
        .group_by(Call.state, Call.direction, Call.recording_state)
    ).all()
    for state, direction, recording, count, oldest in rows:
        if state in ("ringing", "dialling"):
            counters.ringing += count
            if state == "ringing" and direction == "inbound":
                counters.waiting += count
                if oldest is not None:
                    # min() over a TypeDecorator column comes back raw on some dialects.
                    oldest = _aware(oldest)
                    if counters.longest_wait_since is None or oldest < counters.longest_wait_since:
                        counters.longest_wait_since = oldest
        elif state == "talking":
            counters.talking += count
        if recording == "on":
            counters.recording += count


def _aware(value: datetime | str) -> datetime:
    if isinstance(value, str):  # SQLite hands aggregates back as text
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def started_today(session: Session, counters: Counters) -> None:
    """Offered and abandoned calls, and the 15-minute chart, from one query grouped by bucket
    over today's ``started_at`` range."""
    day = counters.day
    dialect = session.get_bind().dialect.name
    start = int(day.start.timestamp())
    bucket = ((epoch_seconds(Call.started_at, dialect) - start) // BUCKET_SECONDS).label("bucket")
    rows = session.execute(
        select(
            bucket,
            func.count(),
            func.sum(case((_offered(), 1), else_=0)),
            func.sum(case((_abandoned(), 1), else_=0)),
        )
        .where(Call.started_at >= day.start, Call.started_at < day.end)
        .group_by(bucket)
    ).all()
    counters.buckets = [0] * day.bucket_count
    counters.abandoned_buckets = [0] * day.bucket_count
    for index, total, offered, abandoned in rows:
        i = min(max(int(index), 0), day.bucket_count - 1)
        counters.buckets[i] += total
        counters.abandoned_buckets[i] += abandoned or 0
        counters.offered += offered or 0
        counters.abandoned += abandoned or 0


def answered_today(session: Session, counters: Counters) -> None:
    """Answered count and average handle time over today's ``answered_at`` range."""
    day = counters.day
    dialect = session.get_bind().dialect.name
    talk = func.coalesce(
        Call.duration,
        epoch_seconds(Call.ended_at, dialect) - epoch_seconds(Call.answered_at, dialect),
    )
    answered, handle_time = session.execute(
        select(func.count(), func.avg(case((Call.state == "ended", talk), else_=None)))
        .where(Call.answered_at >= day.start, Call.answered_at < day.end)
    ).one()
    counters.answered = answered
    counters.handle_time = float(handle_time) if handle_time is not None else None


def missed_today(session: Session, counters: Counters) -> None:
    """Missed inbound calls over today's ``ended_at`` range."""
    day = counters.day
    counters.missed = session.scalar(
        select(func.count())
        .select_from(Call)
        # ended_at is set only by the "ended" event, which always wins the state: no state
        # test here, or SQLite's planner walks ix_calls_state (every ended call) instead.
        .where(Call.ended_at >= day.start, Call.ended_at < day.end, _unanswered_inbound())
    ) or 0


def compute(session: Session, tz_name: str, now: datetime | None = None) -> Counters:
    """Every wallboard counter for the day containing ``now`` (default: this moment)."""
    counters = Counters(day=today(tz_name, now))
    live_counts(session, counters)
    started_today(session, counters)
    answered_today(session, counters)
    missed_today(session, counters)
    return counters

