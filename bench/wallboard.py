"""Wallboard and history query times on a year of history (1,000,000 calls by default).

Seeds SQLite and PostgreSQL (fresh databases, migrated with the real Alembic revisions)
with a year of calls, about 2,700 a day in business hours, today's up to now, and a few
dozen live ones; then times each wallboard counter query (``desk.services.wallboard``, exactly what
every live push runs) and the history searches (``desk.web.history.calls_query``, first
page and a deep page, as the page runs them). Prints numbers; asserts nothing.

    python bench/wallboard.py                  # 1,000,000 calls, SQLite and PostgreSQL
    python bench/wallboard.py --rows 100000 --only sqlite

Seeding uses executemany in one transaction on SQLite and COPY on PostgreSQL, then ANALYZE.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from bench.common import Database, machine  # noqa: E402
from desk import create_app  # noqa: E402
from desk.cli import upgrade_database  # noqa: E402
from desk.extensions import db  # noqa: E402
from desk.models import User  # noqa: E402
from desk.services import wallboard  # noqa: E402
from desk.web.history import PER_PAGE, CallFilters, calls_query  # noqa: E402

AGENTS = 50
TZ = "Europe/Berlin"
COLUMNS = (
    "provider", "provider_call_id", "direction", "from_number", "to_number", "agent_id",
    "state", "started_at", "ringing_at", "answered_at", "ended_at", "duration", "end_cause",
    "recording_state", "provider_facts", "version", "updated_at",
)
PROVIDERS = ("placetel", "mediaservice", "teleforge", "stringee")


def fake_calls(rows: int, now: datetime, seed: int = 7) -> Iterator[tuple[Any, ...]]:
    """``rows`` calls spread over the year before ``now`` (business hours weighted)."""
    rng = random.Random(seed)
    live = min(40, rows // 100)
    span = timedelta(days=365).total_seconds()
    for i in range(rows):
        if i < live:  # live calls: ringing, talking, some recorded
            started = now - timedelta(seconds=rng.randint(5, 600))
            talking = i % 2 == 0
            yield ("placetel", f"live-{i}", "inbound", f"0{rng.randint(10**8, 10**9)}",
                   "0221", rng.randint(1, AGENTS) if talking else None,
                   "talking" if talking else "ringing", started, started,
                   started + timedelta(seconds=5) if talking else None, None, None, None,
                   "on" if i % 4 == 0 else "off", "{}", 1, now)
            continue
        day_offset = rng.random() * span
        started = now - timedelta(seconds=day_offset)
        # Pull most calls into 08:00-18:00 UTC-ish, so today's buckets look like a day.
        started = started.replace(hour=8 + int(rng.random() ** 1.5 * 10)) if rng.random() < .8 \
            else started
        if started > now:
            started = now - timedelta(seconds=rng.randint(1, 3600))
        roll = rng.random()
        outbound = roll > 0.9
        answered = roll < 0.78 or (outbound and roll < 0.95)
        talk = rng.randint(20, 900) if answered else 0
        ring = rng.randint(2, 40)
        answered_at = started + timedelta(seconds=ring) if answered else None
        ended_at = started + timedelta(seconds=ring + talk)
        if ended_at > now:
            ended_at = now
        cause = None if answered else rng.choice(
            ("missed", "missed", "missed", "voicemail", "blocked", None, "busy"))
        if outbound and not answered:
            cause = "no_answer"
        yield (PROVIDERS[i % 4], f"c-{i}", "outbound" if outbound else "inbound",
               f"0{rng.randint(10**8, 10**9)}", f"0{rng.randint(100, 999)}",
               rng.randint(1, AGENTS) if answered else None, "ended", started, started,
               answered_at, ended_at, talk if answered else 0, cause,
               "ready" if answered and rng.random() < .1 else "off", "{}", 3, ended_at)


def seed_users(session: Session) -> None:
    for n in range(1, AGENTS + 1):
        user = User(name=f"agent{n}", role="agent", extension=str(100 + n))
        user.password_hash = "x"  # nobody logs in here
        session.add(user)
    session.commit()


def seed_sqlite(url: str, rows: int, now: datetime) -> None:
    import sqlite3

    conn = sqlite3.connect(url.removeprefix("sqlite:///"))
    conn.execute("PRAGMA synchronous=OFF")
    placeholders = ",".join("?" * len(COLUMNS))
    fmt = "%Y-%m-%d %H:%M:%S.%f"  # how SQLAlchemy stores naive UTC in SQLite

    def rows_as_text() -> Iterator[tuple[Any, ...]]:
        for row in fake_calls(rows, now):
            yield tuple(v.astimezone(UTC).strftime(fmt) if isinstance(v, datetime) else v
                        for v in row)

    with conn:
        conn.executemany(f"INSERT INTO calls ({','.join(COLUMNS)}) VALUES ({placeholders})",
                         rows_as_text())
    conn.execute("ANALYZE")
    conn.close()


def seed_postgres(url: str, rows: int, now: datetime) -> None:
    import psycopg

    plain = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain) as conn:
        with conn.cursor() as cur, cur.copy(
            f"COPY calls ({','.join(COLUMNS)}) FROM STDIN"
        ) as copy:
            for row in fake_calls(rows, now):
                copy.write_row(tuple(
                    v.astimezone(UTC).replace(tzinfo=None) if isinstance(v, datetime) else v
                    for v in row))
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE calls")


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, float, Any]:
    """Median and worst milliseconds over ``repeat`` runs (after one warm-up run)."""
    result = fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), max(times), result


class Viewer:
    """Stands in for the logged-in user: calls_query reads only these two attributes."""

    def __init__(self, user_id: int, supervisor: bool) -> None:
        self.id, self.is_supervisor = user_id, supervisor


def run(kind: str, rows: int, repeat: int) -> None:
    database = Database(kind)
    try:
        app = create_app({"TESTING": True, "DESK_SECRET_KEY": "bench", "DESK_DEMO": False,
                          "DESK_DATABASE_URL": database.url, "DESK_TIMEZONE": TZ,
                          "DESK_SIMULATE": False})
        upgrade_database(app)
        now = datetime.now(UTC)
        with app.app_context():
            seed_users(db.session)
        started = time.perf_counter()
        (seed_sqlite if kind == "sqlite" else seed_postgres)(database.url, rows, now)
        seeded = time.perf_counter() - started
        print(f"\n== {kind}: {rows:,} calls seeded in {seeded:.1f} s "
              f"({rows / seeded:,.0f} rows/s)")

        with app.app_context():
            session = db.session()
            total = session.scalar(text("SELECT count(*) FROM calls"))
            counters = wallboard.Counters(day=wallboard.today(TZ))

            def fresh() -> wallboard.Counters:
                return wallboard.Counters(day=counters.day)

            cases: list[tuple[str, Callable[[], Any]]] = [
                ("wallboard: live counts (waiting, talking, recording, longest wait)",
                 lambda: wallboard.live_counts(session, fresh())),
                ("wallboard: offered/abandoned + 15-min buckets (started today)",
                 lambda: wallboard.started_today(session, fresh())),
                ("wallboard: answered today + average handle time",
                 lambda: wallboard.answered_today(session, fresh())),
                ("wallboard: missed today",
                 lambda: wallboard.missed_today(session, fresh())),
                ("wallboard: all counters (one live push)",
                 lambda: wallboard.compute(session, TZ)),
            ]
            supervisor, agent = Viewer(0, True), Viewer(7, False)
            last_week = (now - timedelta(days=7)).date()

            def page(viewer: Viewer, page_no: int = 1, **filters: Any) -> Callable[[], Any]:
                values: dict[str, Any] = {"number": "", "agent": None, "provider": "",
                                          "outcome": "", "first": None, "last": None}
                values.update(filters)
                query = calls_query(viewer, CallFilters(**values))  # type: ignore[arg-type]

                def fetch() -> int:
                    return len(session.scalars(query.offset((page_no - 1) * PER_PAGE)
                                               .limit(PER_PAGE + 1)).unique().all())
                return fetch

            cases += [
                ("history: supervisor, no filter, page 1", page(supervisor)),
                ("history: supervisor, no filter, page 100", page(supervisor, 100)),
                ("history: agent's own calls, page 1", page(agent)),
                ("history: number contains '12345' (substring, whole year)",
                 page(supervisor, number="12345")),
                ("history: number contains '12345', last 7 days",
                 page(supervisor, number="12345", first=last_week)),
                ("history: outcome missed, last 7 days", page(supervisor, outcome="missed",
                                                              first=last_week)),
                ("history: provider stringee + agent 7", page(supervisor, provider="stringee",
                                                              agent=7)),
            ]
            print(f"   rows in calls: {total:,}; median / worst of {repeat} runs")
            for label, fn in cases:
                median, worst, _ = timed(fn, repeat)
                print(f"   {label:<68} {median:8.2f} ms {worst:8.2f} ms")
            wb = wallboard.compute(session, TZ)
            print(f"   today: answered {wb.answered}, missed {wb.missed}, offered {wb.offered},"
                  f" waiting {wb.waiting}, talking {wb.talking}, calls {sum(wb.buckets)}")
            session.close()
        db.dispose()
    finally:
        database.drop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--only", choices=("sqlite", "postgres"))
    args = parser.parse_args()
    info = machine()
    print(f"bench/wallboard.py: {info['cpus']} x {info['cpu']}, {info['memory']}, "
          f"python {info['python']}")
    for kind in ("sqlite", "postgres"):
        if args.only in (None, kind):
            run(kind, args.rows, args.repeat)


if __name__ == "__main__":
    main()
