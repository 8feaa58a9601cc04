"""Where a worker's CPU goes under webhook load: py-spy on one gevent worker.

Starts README's production command (one worker) on SQLite or PostgreSQL, sends the
Placetel mix from 16 closed-loop callers, samples the worker with py-spy and prints the
functions with the most samples (own and cumulative). ``py-spy`` must be installed in the
same environment (``.venv/bin/pip install py-spy``); it is not part of any lock.

    .venv/bin/python bench/profile.py --db sqlite --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import traffic  # noqa: E402
from bench.common import BIN, PASSWORD, Database, Server, base_env  # noqa: E402


def summarise(collapsed: Path, top: int) -> str:
    """Own and cumulative sample shares per function from py-spy's collapsed stacks."""
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():  # py-spy's own notes, not a stack
            continue
        n = int(count)
        samples += n
        frames = [f.split(" (")[0] + " (" + f.split(" (")[1].split(":")[0] + ")"
                  if " (" in f else f for f in stack.split(";")]
        own[frames[-1]] += n
        for frame in set(frames):
            total[frame] += n
    lines = [f"{samples} samples", "", "own %  | function"]
    lines += [f"{own[f] / samples * 100:5.1f}  | {f}" for f, _ in own.most_common(top)]
    lines += ["", "cumul % | function (desk/ only)"]
    mine = [(f, n) for f, n in total.most_common() if "desk/" in f or "app.py" in f]
    lines += [f"{n / samples * 100:5.1f}   | {f}" for f, n in mine[:top]]
    return "\n".join(lines)


def _login(base: str, name: str) -> str:
    """A board's session cookie for ``name``."""
    import re

    import requests

    session = requests.Session()
    page = session.get(base + "/login", timeout=10).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token, "no CSRF token on the login page"
    session.post(base + "/login", timeout=10, data={
        "name": name, "password": PASSWORD, "csrf_token": token.group(1)})
    return "; ".join(f"{c.name}={c.value}" for c in session.cookies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--boards", type=int, default=0, help="open boards (1 supervisor in 10)")
    parser.add_argument("--idle", action="store_true",
                        help="sample waiting too (py-spy --idle): where requests spend wall time")
    parser.add_argument("--rate", type=float, default=None,
                        help="a steady rate instead of 16 closed-loop callers")
    parser.add_argument("--keep", type=Path, default=None,
                        help="also write py-spy's collapsed stacks here (for a flame graph)")
    args = parser.parse_args()
    spy = shutil.which("py-spy", path=str(BIN)) or shutil.which("py-spy")
    if not spy:
        raise SystemExit("py-spy is not installed: .venv/bin/pip install py-spy")
    db = Database(args.db)
    env = base_env(
        DESK_SECRET_KEY="bench-secret", DESK_DATABASE_URL=db.url,
        DESK_PLACETEL_USER="placetel", DESK_PLACETEL_PASSWORD="s3cret-pt",
        DESK_COOKIE_SECURE="0", DESK_DEMO="0", DESK_LOG_LEVEL="WARNING",
        DESK_TELEFORGE_LISTEN="0", DESK_REDIS_CHANNEL=f"bench:{uuid.uuid4().hex[:8]}",
    )
    from tests.servers import prepare

    prepare(env, PASSWORD)
    server = Server("app:app", env, workers=1)
    fleet = None
    try:
        (worker,) = server.worker_pids()
        if args.boards:
            from bench.fleet import FleetHandle

            cookies = [_login(server.url, name) for name in ("ann", "bob", "sue")]
            fleet = FleetHandle("desk", server.url,
                                [cookies[2]] + [cookies[i % 2] for i in range(9)])
            print("boards:", fleet.grow_to(args.boards))
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "profile.txt"
            spy_proc = subprocess.Popen(
                [spy, "record", "--pid", str(worker), "--rate", "200", "--format", "raw",
                 "--duration", str(int(args.seconds)), "--output", str(out), "--nonblocking",
                 *(["--idle"] if args.idle else [])],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            mix = traffic.PlacetelMix()
            stats = asyncio.run(
                traffic.closed_loop(server.url, mix, "prof", 16, args.seconds)
                if args.rate is None
                else traffic.open_loop(server.url, mix, "prof", args.rate, args.seconds))
            spy_proc.wait(timeout=60)
            rate = len(stats.ok) / (stats.finished - stats.started)
            lat = sorted(r.seconds for r in stats.ok)
            print(f"{args.db}, {args.boards} boards: {rate:.0f} accepted/s over "
                  f"{args.seconds:.0f} s" + (f", webhook p50 {lat[len(lat) // 2] * 1000:.1f} ms"
                                             if lat else ""))
            print(summarise(out, args.top))
            if args.keep is not None:
                shutil.copyfile(out, args.keep)
    finally:
        if fleet is not None:
            fleet.stop()
        server.stop()
        db.drop()


if __name__ == "__main__":
    main()
