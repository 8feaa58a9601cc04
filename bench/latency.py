"""Webhook → board latency: how long from posting a Placetel delivery to the frame arriving.

Starts the desk the way README's production section does (gunicorn, gevent worker) on a
fresh SQLite (or PostgreSQL) database, opens N logged-in boards as real websocket clients,
posts IncomingCall deliveries at a steady rate and records, for every board, when the row
for each call arrived. Prints percentiles; asserts nothing.

    python bench/latency.py --boards 100 --events 300 --rate 50
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.servers import LiveServer, desk_env, prepare  # noqa: E402

NUMBER = re.compile(r'class="call__from" title="Caller">bench-(\d+)<')
PASSWORD = "bench-password-1"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def run(boards: int, events: int, rate: float, database_url: str, workers: int,
        redis_url: str) -> dict[str, float]:
    extra = {"DESK_REDIS_URL": redis_url} if redis_url else {}
    env = desk_env(database_url, DESK_LOG_LEVEL="WARNING", DESK_BOARD_QUEUE="2000", **extra)
    prepare(env, PASSWORD)
    server = LiveServer(env, workers=workers)
    sent: dict[int, float] = {}
    arrivals: list[float] = []
    lock = threading.Lock()
    ready = threading.Barrier(boards + 1)
    done = threading.Event()
    session = server.login("ann", PASSWORD)

    def board() -> None:
        with server.board(session) as ws:
            ws.recv(timeout=30)  # snapshot
            ready.wait()
            seen = 0
            while seen < events and not done.is_set():
                try:
                    frame = ws.recv(timeout=1)
                except TimeoutError:
                    continue
                now = time.perf_counter()
                for match in NUMBER.finditer(frame):  # type: ignore[arg-type]
                    i = int(match.group(1))
                    if 'data-state="ringing"' in frame and i in sent:
                        with lock:
                            arrivals.append(now - sent[i])
                        seen += 1

    threads = [threading.Thread(target=board, daemon=True) for _ in range(boards)]
    for thread in threads:
        thread.start()
    ready.wait()
    import requests

    http = requests.Session()
    http.auth = ("placetel", "s3cret-pt")
    response_times: list[float] = []
    errors = 0
    started = time.perf_counter()
    for i in range(events):
        target = started + i / rate
        delay = target - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        sent[i] = time.perf_counter()
        response = http.post(server.url + "/webhooks/placetel", data={
            "event": "IncomingCall", "call_id": f"bench-{time.time_ns()}-{i}",
            "from": f"bench-{i}", "to": "0221"}, timeout=10)
        response_times.append(time.perf_counter() - sent[i])
        errors += not response.ok
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(arrivals) < boards * events:
        time.sleep(0.05)
    done.set()
    elapsed = time.perf_counter() - started
    server.stop()
    ms = [a * 1000 for a in arrivals]
    return {
        "boards": boards, "events": events, "rate": rate,
        "frames_expected": boards * events, "frames_received": len(arrivals),
        "webhook_errors": errors,
        "webhook_p50_ms": percentile([r * 1000 for r in response_times], 0.5),
        "webhook_p99_ms": percentile([r * 1000 for r in response_times], 0.99),
        "latency_p50_ms": percentile(ms, 0.5), "latency_p99_ms": percentile(ms, 0.99),
        "latency_max_ms": max(ms) if ms else float("nan"),
        "latency_mean_ms": statistics.fmean(ms) if ms else float("nan"),
        "seconds": elapsed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--boards", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--rate", type=float, default=50.0, help="webhooks per second")
    parser.add_argument("--database-url", default="", help="default: a fresh SQLite file")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--redis-url", default="")
    args = parser.parse_args()
    print(f"{'boards':>6} {'events':>6} {'rate/s':>6} {'frames':>13} {'errors':>6} "
          f"{'hook p50':>9} {'hook p99':>9} {'lat p50':>8} {'lat p99':>8} {'lat max':>8}")
    for boards in args.boards:
        with tempfile.TemporaryDirectory() as tmp:
            url = args.database_url or f"sqlite:///{tmp}/bench.sqlite3"
            r = run(boards, args.events, args.rate, url, args.workers, args.redis_url)
        print(f"{r['boards']:>6} {r['events']:>6} {r['rate']:>6.0f} "
              f"{r['frames_received']:>6}/{r['frames_expected']:<6} {r['webhook_errors']:>6} "
              f"{r['webhook_p50_ms']:>7.1f}ms {r['webhook_p99_ms']:>7.1f}ms "
              f"{r['latency_p50_ms']:>6.1f}ms {r['latency_p99_ms']:>6.1f}ms "
              f"{r['latency_max_ms']:>6.1f}ms", flush=True)


if __name__ == "__main__":
    main()
