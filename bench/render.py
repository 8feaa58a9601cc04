"""What the hub's render of one batch costs, on its own: no server, no sockets.

Seeds a fresh SQLite database (migrated with the real revisions) with agents and live
calls, some with an agent, some ringing several agents, then times
``desk.live.render.render_voices`` (what the dispatcher runs for every batch) for batches
of changed calls, with every role's boards open, in one voice and in three. Prints the
median milliseconds per batch and microseconds per changed call; asserts nothing.

    .venv/bin/python bench/render.py
    .venv/bin/python bench/render.py --calls 50 --repeat 200
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from desk import create_app  # noqa: E402
from desk.cli import upgrade_database  # noqa: E402
from desk.extensions import db  # noqa: E402
from desk.live.changes import AGENTS, CALLS, Changes  # noqa: E402
from desk.live.hub import Audiences  # noqa: E402
from desk.live.render import render_voices  # noqa: E402
from desk.models import Call, User  # noqa: E402

STATES = ("ringing", "talking", "ended")


def seed(calls: int, agents: int) -> tuple[list[int], list[int]]:
    now = datetime.now(UTC)
    people = [User(name=f"agent{i}", role="agent", extension=str(200 + i)) for i in range(agents)]
    people.append(User(name="sup", role="supervisor", extension="100"))
    for person in people:
        person.password_hash = "!"  # nobody logs in here
    db.session.add_all(people)
    db.session.flush()
    rows = []
    for i in range(calls):
        state = STATES[i % 3]
        agent = people[i % agents] if state != "ringing" else None
        rows.append(Call(
            provider="placetel", provider_call_id=f"bench-{i}", direction="inbound",
            from_number=f"0301{i:06d}", to_number="0221", state=state,
            started_at=now - timedelta(seconds=60), ringing_at=now - timedelta(seconds=60),
            answered_at=now - timedelta(seconds=30) if state != "ringing" else None,
            ended_at=now if state == "ended" else None, duration=30 if state == "ended" else None,
            agent_id=agent.id if agent else None,
            offered_to=[people[(i + k) % agents].id for k in range(3)] if agent is None else None,
        ))
    db.session.add_all(rows)
    db.session.commit()
    return [c.id for c in rows], [p.id for p in people[:agents]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=30, help="changed calls per batch")
    parser.add_argument("--agents", type=int, default=20, help="agents whose presence changed")
    parser.add_argument("--repeat", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app({
            "DESK_DEMO": False, "DESK_SECRET_KEY": "bench-secret",
            "DESK_DATABASE_URL": f"sqlite:///{Path(tmp) / 'desk.sqlite3'}",
            "DESK_COOKIE_SECURE": False, "DESK_LOG_LEVEL": "WARNING",
        })
        upgrade_database(app)
        with app.app_context():
            call_ids, agent_ids = seed(args.calls, args.agents)
        roles = {"agent", "supervisor"}
        three = {"": roles, "de Europe/Berlin": roles, "vi Asia/Ho_Chi_Minh": roles}
        cases: dict[str, tuple[Changes, Audiences]] = {
            "calls, 1 voice": ({CALLS: set(call_ids)}, {"": roles}),
            "calls, 3 voices": ({CALLS: set(call_ids)}, three),
            "calls + presence, 1 voice": ({CALLS: set(call_ids), AGENTS: set(agent_ids)},
                                          {"": roles}),
        }
        print(f"{args.calls} changed calls per batch, {args.agents} agents, "
              f"median of {args.repeat} renders")
        print("| batch | ms per batch | µs per changed call | fragments |")
        print("|---|--:|--:|--:|")
        for name, (changes, audiences) in cases.items():
            render_voices(app, changes, audiences)  # warm: templates compiled, caches filled
            times = []
            for _ in range(args.repeat):
                started = time.perf_counter()
                rendered = render_voices(app, changes, audiences)
                times.append(time.perf_counter() - started)
            ms = statistics.median(times) * 1000
            fragments = sum(len(f) for f in rendered.values())
            print(f"| {name} | {ms:.2f} | {ms * 1000 / args.calls:.0f} | {fragments} |")
        db.dispose()


if __name__ == "__main__":
    main()
