"""The benchmark suite behind ``make bench``: prints numbers and writes bench/RESULTS.md.

Five parts, all against README's production command (gunicorn, gevent worker,
``--worker-connections 5000``), loopback only, every loop bounded:

1. **Ingestion.** C callers post whole calls (3 deliveries each) as fast as answers come
   back, for Placetel and mediaservice mixes, with N open boards, on SQLite (1 worker),
   PostgreSQL (1 worker) and PostgreSQL + Redis fan-out (2 workers). Reports accepted
   deliveries/s, errors, response percentiles, how many were durably stored (counted in the
   database afterwards), how many frames reached the boards, and the end-to-end rate
   (accepted deliveries / time until the last board had the last frame). Next to it: the
   Flask-SocketIO peer and the empty-endpoint ceiling.
2. **Latency.** A steady 100 deliveries/s, N boards: webhook send → matching frame, at every
   board (p50/p99/max), for the desk and the peer.
3. **Capacity.** One worker: boards opened in steps; memory per board, and webhook response
   times (under a light steady load that is fanned out to every board) until p99 > 100 ms.
4. **Recovery from faults** (``bench/faults.py``, not in ``--quick``): Redis and PostgreSQL
   restarted, a worker killed, rendering broken, under load; seconds until every board is
   correct again.
5. The machine, date and command, into RESULTS.md (regenerated on every run).

    python bench/run.py            # full run, about 12 minutes on 2 cores
    python bench/run.py --quick    # about a minute
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import math
import shlex
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import faults, traffic  # noqa: E402
from bench.common import (  # noqa: E402
    BIN,
    PASSWORD,
    REDIS_URL,
    Database,
    Server,
    base_env,
    machine,
    percentile,
)
from bench.fleet import FleetHandle  # noqa: E402

RESULTS = ROOT / "bench" / "RESULTS.md"
RAW = ROOT / "bench" / "out" / "results.json"
CAPACITY_P99_MS = 100.0
CAPACITY_CPU_ROW = 4000  # boards: the capacity steps go at least this far


@dataclass(frozen=True)
class Target:
    """One server set-up to measure."""

    label: str
    app: str  # "desk", "peer" or "ceiling"
    db: str  # "sqlite", "postgres" or "" (ceiling)
    workers: int
    redis: bool


@dataclass
class Plan:
    quick: bool
    ingest_seconds: float
    concurrency: int
    boards: list[int]
    targets: list[Target]
    latency_boards: list[int]
    latency_seconds: float
    rate: float
    capacity_steps: list[int]
    capacity_seconds: float
    capacity_rate: float


DESK_SQLITE = Target("desk · SQLite · 1 worker", "desk", "sqlite", 1, False)
DESK_PG = Target("desk · PostgreSQL · 1 worker", "desk", "postgres", 1, False)
DESK_PROD = Target("desk · PostgreSQL + Redis · 2 workers", "desk", "postgres", 2, True)
PEER = Target("peer · Flask-SocketIO + Redis · PostgreSQL · 2 workers", "peer", "postgres", 2,
              True)
CEILING = Target("ceiling · empty Flask endpoint · 2 workers", "ceiling", "", 2, False)


def make_plan(quick: bool) -> Plan:
    if quick:
        return Plan(quick, ingest_seconds=2, concurrency=16, boards=[0, 100],
                    targets=[DESK_SQLITE, DESK_PROD, PEER, CEILING], latency_boards=[100],
                    latency_seconds=3, rate=100, capacity_steps=[100, 400],
                    capacity_seconds=2, capacity_rate=10)
    return Plan(quick, ingest_seconds=6, concurrency=16, boards=[0, 100, 1000],
                targets=[DESK_SQLITE, DESK_PG, DESK_PROD, PEER, CEILING],
                latency_boards=[100, 1000], latency_seconds=12, rate=100,
                capacity_steps=[250, 500, 1000, 2000, 3000, 4000, 4800],
                capacity_seconds=4, capacity_rate=10)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# -- bringing a target up -------------------------------------------------------------------


class Running:
    """A target's server, database and board fleet, with the mixes it accepts."""

    def __init__(self, target: Target, keys: tuple[Path, bytes]) -> None:
        self.target = target
        self.db = Database(target.db) if target.db else None
        self.fleet: FleetHandle | None = None
        self.mixes: list[traffic.Mix] = [traffic.PlacetelMix()]
        self.notes: list[str] = []
        channel = f"bench:{uuid.uuid4().hex[:8]}"  # never the channel of tests running now
        if target.app == "desk":
            assert self.db is not None
            env = base_env(
                DESK_SECRET_KEY="bench-secret", DESK_DATABASE_URL=self.db.url,
                DESK_PLACETEL_USER="placetel", DESK_PLACETEL_PASSWORD="s3cret-pt",
                DESK_COOKIE_SECURE="0", DESK_DEMO="0", DESK_LOG_LEVEL="WARNING",
                DESK_MEDIASERVICE_CALLBACK_KEY_FILE=str(keys[0]), DESK_TELEFORGE_LISTEN="0",
                DESK_REDIS_CHANNEL=channel,
                **({"DESK_REDIS_URL": REDIS_URL} if target.redis else {}),
            )
            from tests.servers import prepare

            prepare(env, PASSWORD)  # migrate + users ann, bob (agents) and sue (supervisor)
            self.server = Server("app:app", env, workers=target.workers)
            self.cookies = [self._login(name) for name in ("ann", "bob", "sue")]
            # one supervisor board in ten, the rest agents
            self.cookies = [self.cookies[2]] + [self.cookies[i % 2] for i in range(9)]
            mediaservice = traffic.MediaserviceMix(keys[1])
            status = asyncio.run(traffic.probe(self.server.url, mediaservice))
            if status == 404:
                self.notes.append("mediaservice webhook not available (404)")
            elif 200 <= status < 300:
                self.mixes.append(mediaservice)
            else:
                self.notes.append(f"mediaservice webhook answered the probe with {status}")
        elif target.app == "peer":
            assert self.db is not None
            env = base_env(BENCH_PEER_DATABASE_URL=self.db.url, BENCH_PEER_REDIS_URL=REDIS_URL,
                           BENCH_PEER_CHANNEL=f"socketio-{channel}")
            subprocess.run([str(BIN / "python"), "-m", "bench.peer_socketio", "create-schema"],
                           cwd=ROOT, env=env, check=True, timeout=60)
            self.server = Server("bench.peer_socketio:app", env, workers=target.workers)
            self.cookies = [""]
        else:
            self.server = Server("bench.ceiling:app", base_env(), workers=target.workers)
            self.cookies = [""]

    def _login(self, name: str) -> str:
        import re

        import requests

        session = requests.Session()
        page = session.get(self.server.url + "/login", timeout=10).text
        token = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert token, "no CSRF token on the login page"
        response = session.post(self.server.url + "/login", timeout=10, data={
            "name": name, "password": PASSWORD, "csrf_token": token.group(1)})
        assert response.ok and "/login" not in response.url, response.text[:300]
        return "; ".join(f"{c.name}={c.value}" for c in session.cookies)

    def boards(self, n: int) -> None:
        if self.target.app == "ceiling":
            return
        if self.fleet is None:
            if n == 0:
                return
            kind = "desk" if self.target.app == "desk" else "socketio"
            self.fleet = FleetHandle(kind, self.server.url, self.cookies)
        reply = self.fleet.grow_to(n)
        if reply:
            log(f"  boards: {reply['open']} open ({reply['failed']} failed) "
                f"in {reply['seconds']:.1f}s"
                + (f"; why: {reply['reasons']}" if reply.get("reasons") else ""))

    def stored(self, tag: str) -> int | None:
        if self.db is None:
            return None
        if self.target.app == "desk":
            return self.db.count("SELECT count(*) FROM deliveries WHERE status = 'applied' "
                                 "AND provider_call_id LIKE :p", p=f"bench{tag}-%")
        return self.db.count("SELECT count(*) FROM bench_events WHERE call_id LIKE :p",
                             p=f"bench{tag}-%")

    def stop(self) -> None:
        if self.fleet is not None:
            self.fleet.stop()
        self.server.stop()
        if self.db is not None:
            self.db.drop()


# -- one measurement ------------------------------------------------------------------------


def measure(run: Running, mix: traffic.Mix, n: int, *, rate: float | None,
            seconds: float, concurrency: int = 16, latency: bool = False) -> dict[str, Any]:
    """Send one load (closed loop, or open loop at ``rate``), wait for the boards, count."""
    tag = uuid.uuid4().hex[:8]
    fleet = run.fleet if n else None
    if fleet is not None:
        fleet.call("reset", tag, latency)
    cpu_server, cpu_sender, wall = run.server.cpu(), time.process_time(), time.monotonic()
    if rate is None:
        stats = asyncio.run(traffic.closed_loop(run.server.url, mix, tag, concurrency, seconds))
    else:
        stats = asyncio.run(traffic.open_loop(run.server.url, mix, tag, rate, seconds))
    ok = stats.ok
    sent = stats.finished - stats.started
    result: dict[str, Any] = {
        "target": run.target.label, "mix": mix.name, "boards": n,
        "mode": "closed" if rate is None else f"{rate:g}/s",
        "sent": len(stats.records), "ok": len(ok), "errors": stats.errors,
        "statuses": stats.statuses(), "seconds": sent,
        "rate": len(ok) / sent if sent else 0.0,
        "p50": percentile([r.seconds * 1000 for r in ok], 0.5),
        "p90": percentile([r.seconds * 1000 for r in ok], 0.9),
        "p99": percentile([r.seconds * 1000 for r in ok], 0.99),
        "max": max((r.seconds * 1000 for r in ok), default=float("nan")),
    }
    if fleet is not None:
        events = [(r.call, r.step, r.at) for r in ok] if latency else None
        boards = fleet.call("collect", len(ok), max(20.0, seconds * 2), events)
        result["fanout"] = boards
        if boards["frames"] >= boards["expected"] and boards["last"]:
            result["e2e_rate"] = len(ok) / (boards["last"] - stats.started)
    elapsed = time.monotonic() - wall
    result["server_cpu"] = (run.server.cpu() - cpu_server) / elapsed * 100
    result["sender_cpu"] = (time.process_time() - cpu_sender) / elapsed * 100
    result["fleet_cpu"] = result.get("fanout", {}).get("cpu", 0.0) / elapsed * 100
    result["stored"] = run.stored(tag)
    return result


def say(r: dict[str, Any]) -> None:
    fan = r.get("fanout")
    fan_text = (f" frames {fan['frames']}/{fan['expected']} resyncs {fan['resyncs']}"
                if fan else "")
    lat = (f" lat p50 {fan['lat_p50']:.0f} p99 {fan['lat_p99']:.0f} max {fan['lat_max']:.0f}ms"
           if fan and "lat_p50" in fan else "")
    log(f"  {r['mix']:<12} N={r['boards']:<5} {r['mode']:<7} {r['rate']:7.1f}/s ok "
        f"{r['ok']} err {r['errors']} p50 {r['p50']:.1f} p99 {r['p99']:.1f}ms stored "
        f"{r['stored']}{fan_text}{lat} cpu srv {r['server_cpu']:.0f}% fleet "
        f"{r['fleet_cpu']:.0f}% sender {r['sender_cpu']:.0f}%")


# -- the parts ------------------------------------------------------------------------------


def ingestion_and_latency(plan: Plan, target: Target, keys: tuple[Path, bytes],
                          out: dict[str, Any]) -> None:
    log(f"{target.label}: starting")
    run = Running(target, keys)
    out["notes"].extend(f"{target.label}: {note}" for note in run.notes)
    try:
        for n in plan.boards:
            run.boards(n)
            if target.app == "ceiling" and n:
                break
            for mix in run.mixes:
                r = measure(run, mix, n, rate=None, seconds=plan.ingest_seconds,
                            concurrency=plan.concurrency)
                say(r)
                out["ingestion"].append(r)
            if target in (DESK_PROD, PEER) and n in plan.latency_boards:
                r = measure(run, run.mixes[0], n, rate=plan.rate, seconds=plan.latency_seconds,
                            latency=True)
                say(r)
                out["latency"].append(r)
    finally:
        run.stop()


def capacity(plan: Plan, keys: tuple[Path, bytes], out: dict[str, Any]) -> None:
    target = Target("desk · PostgreSQL · 1 worker", "desk", "postgres", 1, False)
    log(f"capacity: {target.label}")
    run = Running(target, keys)
    try:
        time.sleep(1)
        base = run.server.rss()
        for n in plan.capacity_steps:
            run.boards(n)
            time.sleep(1)
            rss = run.server.rss()
            r = measure(run, run.mixes[0], n, rate=plan.capacity_rate,
                        seconds=plan.capacity_seconds)
            r.update(rss=rss, base_rss=base, per_board=(rss - base) / n)
            say(r)
            log(f"  RSS {rss / 2**20:.0f} MiB, {r['per_board'] / 1024:.0f} KiB per board")
            out["capacity"].append(r)
            # On to 4,000 boards even past the limit: the CPU-ms per delivery at 4,000.
            if r["errors"] or (r["p99"] > CAPACITY_P99_MS and n >= CAPACITY_CPU_ROW):
                break
    finally:
        run.stop()


# -- RESULTS.md -----------------------------------------------------------------------------


def _ms(value: float) -> str:
    return "—" if value != value else f"{value:.1f}"  # NaN → dash


def _fan(r: dict[str, Any]) -> str:
    fan = r.get("fanout")
    if not fan:
        return "—"
    share = fan["frames"] / fan["expected"] * 100 if fan["expected"] else 100.0
    return f"{share:.1f}%"


def _cpu_ms(r: dict[str, Any]) -> str:
    """Server CPU-ms per accepted delivery (server CPU is in % of one core)."""
    rate = r.get("rate") or 0.0
    return f"{r['server_cpu'] / 100 / rate * 1000:.2f}" if rate else "—"


def render(out: dict[str, Any]) -> str:
    m = out["machine"]
    lines = [
        "# Benchmark results",
        "",
        "Generated by `make bench` (bench/run.py); do not edit by hand: the next run "
        "overwrites this file.",
        "",
        f"- **Date:** {out['date']}",
        f"- **Command:** `{out['command']}`" + (" (quick mode)" if out["quick"] else ""),
        f"- **Machine:** {m['cpus']} CPUs ({m['cpu']}), {m['memory']} RAM, {m['os']}",
        f"- **Load average at start:** {m['load']} — other work shares this machine, and the "
        "load generator, PostgreSQL and Redis share the same 2 cores as the server, so "
        "figures are noisy (expect ±20 %); compare rows of one run, not runs of different days.",
        f"- **Python:** {m['python']}; {m['versions']}",
        "- **Server:** `gunicorn -k gevent -w W --worker-connections 5000 --graceful-timeout "
        "10` (README, Production deployment); boards are websocket clients in one asyncio "
        "process (1 supervisor in 10); webhooks come from aiohttp in another process.",
        f"- **Total run time:** {out['seconds']:.0f} s",
        "",
        "## 1. Ingestion (closed loop, "
        f"{out['plan']['concurrency']} concurrent callers, {out['plan']['ingest_seconds']:g} s "
        "per row)",
        "",
        "accepted/s = deliveries answered 2xx per second. stored = applied rows counted in the "
        "database afterwards. frames = share of (delivery, board) frames that reached the "
        "boards; end-to-end/s = accepted deliveries ÷ time until the last board had the last "
        "frame (— when some never arrived). CPU in % of one core (200 % = both).",
        "",
        "| server | mix | boards | accepted/s | errors | p50 ms | p90 ms | p99 ms | max ms | "
        "stored | frames | resyncs | end-to-end/s | server CPU | fleet CPU | sender CPU |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    ceiling = max((r["rate"] for r in out["ingestion"] if r["target"] == CEILING.label),
                  default=0.0)
    for r in out["ingestion"]:
        stored = "—" if r["stored"] is None else f"{r['stored']}/{r['ok']}"
        e2e = f"{r['e2e_rate']:.0f}" if "e2e_rate" in r else ("—" if r.get("fanout") else "n/a")
        lines.append(
            f"| {r['target']} | {r['mix']} | {r['boards']} | {r['rate']:.0f} | {r['errors']} | "
            f"{_ms(r['p50'])} | {_ms(r['p90'])} | {_ms(r['p99'])} | {_ms(r['max'])} | {stored} | "
            f"{_fan(r)} | {r.get('fanout', {}).get('resyncs', '—')} | {e2e} | "
            f"{r['server_cpu']:.0f}% | {r['fleet_cpu']:.0f}% | {r['sender_cpu']:.0f}% |"
        )
    peer = {r["boards"]: r for r in out["ingestion"]
            if r["target"] == PEER.label and r["mix"] == "placetel"}
    lines += [
        "",
        "### Share of the ceiling, ratio to the peer, CPU per delivery",
        "",
        f"share = accepted/s ÷ the empty endpoint's ({ceiling:.0f}/s); vs peer = accepted/s ÷ "
        "the Flask-SocketIO peer's at the same boards (Placetel mix; the peer has no other). "
        "CPU-ms per delivery = server CPU seconds ÷ accepted deliveries: what one delivery "
        "costs, fan-out to every board included.",
        "",
        "| server | mix | boards | accepted/s | share of ceiling | vs peer | "
        "server CPU-ms per delivery |",
        "|---|---|--:|--:|--:|--:|--:|",
    ]
    for r in out["ingestion"]:
        if r["target"] == CEILING.label:
            continue
        share = f"{r['rate'] / ceiling * 100:.1f} %" if ceiling else "—"
        match = peer.get(r["boards"]) if r["mix"] == "placetel" else None
        ratio = (f"{r['rate'] / match['rate']:.2f}" if match and match["rate"]
                 and r["target"] != PEER.label else "—")
        lines.append(f"| {r['target']} | {r['mix']} | {r['boards']} | {r['rate']:.0f} | "
                     f"{share} | {ratio} | {_cpu_ms(r)} |")
    lines += [
        "",
        f"## 2. Webhook → board latency (steady {out['plan']['rate']:g} deliveries/s, Placetel "
        f"mix, {out['plan']['latency_seconds']:g} s)",
        "",
        "From sending the delivery to the frame showing that call in that state (or later) "
        "arriving, over every (delivery, board) pair. missing = pairs with no such frame "
        "(board resynced, or frame never came).",
        "",
        "| server | boards | deliveries | errors | webhook p99 ms | latency p50 ms | "
        "latency p99 ms | latency max ms | missing | resyncs | server CPU | fleet CPU | "
        "p99 ÷ peer's |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    peer_latency = {r["boards"]: r for r in out["latency"] if r["target"] == PEER.label}
    for r in out["latency"]:
        fan = r["fanout"]
        other = peer_latency.get(r["boards"])
        theirs = other["fanout"]["lat_p99"] if other else float("nan")
        versus = (f"{fan['lat_p99'] / theirs:.2f}"  # (nan: the peer's boards got nothing)
                  if r["target"] != PEER.label and math.isfinite(theirs) and theirs else "—")
        lines.append(
            f"| {r['target']} | {r['boards']} | {r['ok']} | {r['errors']} | {_ms(r['p99'])} | "
            f"{_ms(fan['lat_p50'])} | {_ms(fan['lat_p99'])} | {_ms(fan['lat_max'])} | "
            f"{fan['lat_missing']} | {fan['resyncs']} | {r['server_cpu']:.0f}% | "
            f"{r['fleet_cpu']:.0f}% | {versus} |"
        )
    lines += [
        "",
        f"## 3. Capacity (desk, PostgreSQL, 1 worker; {out['plan']['capacity_rate']:g} "
        f"deliveries/s for {out['plan']['capacity_seconds']:g} s at each step, fanned out to "
        "every board)",
        "",
        "| boards | worker RSS MiB | KiB per board | webhook p50 ms | webhook p99 ms | errors | "
        "frames | resyncs | server CPU | fleet CPU | CPU-ms per delivery | within 100 ms |",
        "|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|",
    ]
    best, held = 0, True
    for r in out["capacity"]:
        within = r["p99"] <= CAPACITY_P99_MS and not r["errors"]
        held = held and within  # every step up to this one within the limit
        best = r["boards"] if held else best
        lines.append(
            f"| {r['boards']} | {r['rss'] / 2**20:.0f} | {r['per_board'] / 1024:.0f} | "
            f"{_ms(r['p50'])} | {_ms(r['p99'])} | {r['errors']} | {_fan(r)} | "
            f"{r['fanout']['resyncs']} | {r['server_cpu']:.0f}% | {r['fleet_cpu']:.0f}% | "
            f"{_cpu_ms(r)} | {'yes' if within else 'no'} |"
        )
    lines += ["", f"Most boards one worker held with webhook p99 ≤ 100 ms: **{best}** "
              f"(largest step tried: {out['capacity'][-1]['boards'] if out['capacity'] else 0}; "
              "gunicorn's `--worker-connections 5000` caps a worker). The steps go on to "
              f"{CAPACITY_CPU_ROW:,} boards past the limit, for the CPU-ms column; the board "
              "fleet is one asyncio process, so its CPU is the load generator's share of the "
              "same 2 cores."]
    if isinstance(out.get("faults"), dict):
        lines += ["", *faults.render(out["faults"])]
    if out["notes"]:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in out["notes"]]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a one-minute run")
    parser.add_argument("--only", choices=["ingestion", "capacity", "faults"],
                        help="run one part")
    parser.add_argument("--targets", help="comma-separated target labels' apps/db filter, "
                        "e.g. 'desk' or 'peer' (default: all)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where to write")
    args = parser.parse_args()
    plan = make_plan(args.quick)
    if args.targets:
        wanted = args.targets.split(",")
        plan.targets = [t for t in plan.targets if any(w in t.label for w in wanted)]
    started = time.monotonic()
    out: dict[str, Any] = {
        "machine": machine(), "quick": args.quick,
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python bench/run.py " + shlex.join(sys.argv[1:]) if sys.argv[1:]
        else "make bench",
        "plan": {k: v for k, v in vars(plan).items() if k != "targets"},
        "ingestion": [], "latency": [], "capacity": [], "notes": [],
    }
    with tempfile.TemporaryDirectory(prefix="desk-bench-keys-") as tmp:
        keys = traffic.rsa_keys(Path(tmp))
        if args.only in (None, "ingestion"):
            for target in plan.targets:
                ingestion_and_latency(plan, target, keys, out)
        if args.only in (None, "capacity"):
            capacity(plan, keys, out)
    if args.only == "faults" or (args.only is None and not args.quick):
        log("recovery from faults")
        faults.run_part(out, log)
    out["seconds"] = time.monotonic() - started
    RAW.parent.mkdir(exist_ok=True)
    RAW.write_text(json.dumps(out, indent=1, default=str))
    args.results.write_text(render(out))
    log(f"done in {out['seconds']:.0f}s; wrote {args.results} and {RAW}")


if __name__ == "__main__":
    main()
