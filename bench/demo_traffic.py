"""How healthy the demo looks: the wallboard's abandoned rate after a stretch of demo traffic.

Starts a demo desk (``DESK_DEMO=1``, the simulators on) under gunicorn on a fresh SQLite
database, puts ``--agents`` of the demo agents available (as logging in does), lets
simulated traffic run for ``--minutes`` of simulated time at ``--speed`` (every ring, talk
and wrap-up time divided by it, the call rate multiplied by it), then prints the wallboard
counters (``desk.services.wallboard.compute``, what the wallboard shows), the share of
answered calls answered within 20 simulated seconds of arriving, and per provider how the
calls ended. Prints numbers; asserts nothing.

    python bench/demo_traffic.py                       # the demo's own traffic, 1 agent
    python bench/demo_traffic.py --agents 2 --minutes 60 --speed 10
    python bench/demo_traffic.py --rate 6 --external   # fixed-rate traffic sent from here

``--external`` plays the traffic from this process instead (``desk.simulator.traffic``, as
``flask --app app simulate`` does, at ``--rate`` calls a simulated minute); the desk's own
traffic is then turned down to almost nothing. Without it the desk's own demo traffic runs
(``DESK_SIMULATE_SPEED``; ``--rate`` sets ``DESK_SIMULATE_RATE``, default: the demo's own
choice).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402
from sqlalchemy import select  # noqa: E402

from desk import create_app  # noqa: E402
from desk.extensions import db  # noqa: E402
from desk.models import Call  # noqa: E402
from desk.services import wallboard  # noqa: E402
from desk.simulator.traffic import Traffic  # noqa: E402
from tests.servers import NO_ENV_FILE, LiveServer, flask_cli  # noqa: E402

DEMO_AGENTS = ("agent", "agent2")
SERVICE_SECONDS = 20  # answered within this many (simulated) seconds of arriving


def _env(database: str, args: argparse.Namespace) -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("DESK_")}
    env.update(NO_ENV_FILE)
    wrap_up = max(0, round(args.wrap_up / args.speed))
    env.update(DESK_DATABASE_URL=database, DESK_DEMO="1", DESK_WRAP_UP_SECONDS=str(wrap_up),
               DESK_LOG_LEVEL="WARNING")
    if args.external:
        env["DESK_SIMULATE_RATE"] = "0.0001"
    else:
        env["DESK_SIMULATE_SPEED"] = f"{args.speed:g}"
        if args.rate is not None:
            env["DESK_SIMULATE_RATE"] = f"{args.rate:g}"
    return env


def _available(server: LiveServer, tokens: list[str]) -> None:
    """Put these agents available, as logging in does."""
    for token in tokens:
        requests.put(f"{server.url}/api/v1/agents/me/presence", json={"presence": "available"},
                     headers={"Authorization": f"Bearer {token}"}, timeout=5).raise_for_status()


def _report(database: str, args: argparse.Namespace, seconds: float) -> None:
    app = create_app({"TESTING": True, "DESK_DATABASE_URL": database, "DESK_DEMO": False,
                      "DESK_SECRET_KEY": "bench"})
    with app.app_context():
        counters = wallboard.compute(db.session, app.config["DESK_TIMEZONE"])
        calls = list(db.session.scalars(select(Call)).unique())
        answered = [c for c in calls if c.direction == "inbound" and c.answered_at]
        quick = [c for c in answered
                 if (c.answered_at - c.started_at).total_seconds() * args.speed
                 <= SERVICE_SECONDS]
        outcomes: dict[str, Counter[str]] = {}
        for call in calls:
            outcomes.setdefault(call.provider, Counter())[call.outcome] += 1
    db.dispose()
    rate = counters.abandoned_rate
    print(f"{args.agents} agent(s) available, {seconds * args.speed / 60:.0f} simulated "
          f"minutes at speed {args.speed:g}, "
          + (f"{args.rate:g} calls/min sent from here" if args.external
             else f"demo traffic (rate {args.rate if args.rate is not None else 'auto'})"))
    print(f"  calls {len(calls)}, offered {counters.offered}, answered {counters.answered}, "
          f"missed {counters.missed}, abandoned {counters.abandoned}")
    print(f"  abandoned rate {rate * 100:.1f} %" if rate is not None else "  nothing offered")
    if answered:
        print(f"  answered within {SERVICE_SECONDS} s: {len(quick) / len(answered) * 100:.0f} %")
    for provider, counts in sorted(outcomes.items()):
        print(f"  {provider}: " + ", ".join(f"{k} {v}" for k, v in counts.most_common()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30, help="simulated minutes")
    parser.add_argument("--speed", type=float, default=10)
    parser.add_argument("--agents", type=int, default=1, choices=(0, 1, 2))
    parser.add_argument("--rate", type=float, default=None,
                        help="calls a simulated minute (default: the demo's own choice)")
    parser.add_argument("--wrap-up", type=float, default=10,
                        help="simulated wrap-up seconds (make run's DESK_WRAP_UP_SECONDS)")
    parser.add_argument("--external", action="store_true",
                        help="send the traffic from this process at --rate")
    args = parser.parse_args()
    if args.external and args.rate is None:
        parser.error("--external needs --rate")

    with tempfile.TemporaryDirectory(prefix="desk-bench-demo-") as folder:
        database = f"sqlite:///{folder}/demo.sqlite3"
        env = _env(database, args)
        flask_cli(env, "db", "upgrade")
        flask_cli(env, "users", "demo")
        tokens = [flask_cli(env, "users", "token", name).strip()  # before the traffic starts
                  for name in DEMO_AGENTS[:args.agents]]
        server = LiveServer(env)
        try:
            _available(server, tokens)
            began = time.monotonic()
            seconds = args.minutes * 60 / args.speed
            traffic = None
            if args.external:
                traffic = Traffic(server.url, rate=args.rate * args.speed, speed=args.speed)
                threading.Thread(target=traffic.run, daemon=True).start()
            time.sleep(seconds)  # the stretch of traffic being measured
            if traffic is not None:
                traffic.stop.set()
            _report(database, args, time.monotonic() - began)
        finally:
            server.stop()


if __name__ == "__main__":
    main()
