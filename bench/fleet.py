"""The board fleet: up to thousands of open boards in one asyncio process, driven over a pipe.

Each board is a real websocket client (the ``websockets`` asyncio API) holding ``/ws`` with a
logged-in session cookie, exactly as a browser tab does, or — for the peer — a
python-socketio ``AsyncClient`` on the websocket transport. A board that the desk closes
with 1012 (it fell behind) reconnects like the htmx extension does and counts as a resync.

The fleet lives in its own process so its CPU cost is measured on its own and cannot delay
the webhook sender's clock; both use ``time.monotonic()`` (system-wide on Linux), so a
frame's arrival and a webhook's send time are comparable. Frames are recognised by the
caller number ``bench<tag>-<call>`` in a call row and the row's ``data-state``; on an agent's
board another agent's ended call is removed instead, and the removal counts as its end.

Commands (tuples sent over the pipe, each answered with one dict): ``open n``, ``reset tag
latency``, ``collect expected timeout events``, ``stop``.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import time
from array import array
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

ROW = re.compile(r'id="call-(\d+)"(?:\s+data-section="[^"]*")?\s+data-state="([a-z]+)"[^>]*>'
                 r'.*?title="Caller">bench([0-9a-z]+)-(\d+)<', re.S)  # the desk's and the peer's
# Another agent's call that ended leaves an agent's board (``desk.live.render._removed``):
# for that board, the removal is how the call's end shows.
GONE = re.compile(r'<article id="call-(\d+)" hx-swap-oob="delete">')
RANK = {"ringing": 0, "talking": 1, "ended": 2}
MAX_RESYNCS = 20  # per board per fleet: bounded, whatever the server does
STALL = 3.0  # seconds without a new frame after which ``collect`` stops waiting


@dataclass(eq=False)
class BoardStats:
    frames: int = 0  # updates (call rows) of the current tag received
    last: float = 0.0
    first: dict[int, float] = field(default_factory=dict)  # call*4+rank -> first arrival
    gone: list[tuple[str, float]] = field(default_factory=list)  # (row id, removed at)
    messages: int = 0  # websocket messages received since the reset


class Fleet:
    def __init__(self, kind: str, base_url: str, cookies: list[str]) -> None:
        self.kind = kind  # "desk" (flask-sock /ws) or "socketio" (the peer)
        self.base_url = base_url
        self.cookies = cookies
        self.boards: list[BoardStats] = []
        self.connected = 0
        self.resyncs = 0
        self.failed = 0
        self.reasons: dict[str, int] = {}  # why a board's connect failed, and how often
        # Row id -> call, of the current tag, from any board's frames: a board that only ever
        # got a call's removal (all its updates came in one batch) still knows which it was.
        self.rows: dict[str, int] = {}
        self.tag = ""
        self.latency = False
        self.stopping = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []
        self.cpu_mark = time.process_time()

    # -- frames ----------------------------------------------------------------------------
    def on_frame(self, stats: BoardStats, frame: str | bytes) -> None:
        now = time.monotonic()
        if isinstance(frame, bytes):
            frame = frame.decode()
        stats.messages += 1
        for row, state, tag, call in ROW.findall(frame):
            if tag != self.tag:
                continue
            self.rows[row] = int(call)
            self.arrived(stats, int(call), RANK.get(state), now)
        if "delete" in frame:
            stats.gone += [(row, now) for row in GONE.findall(frame)]

    def resolve_removals(self) -> None:
        for stats in self.boards:
            if not stats.gone:
                continue
            unknown = []
            for row, at in stats.gone:
                if row in self.rows:
                    self.arrived(stats, self.rows[row], RANK["ended"], at)
                else:
                    unknown.append((row, at))
            stats.gone = unknown

    def arrived(self, stats: BoardStats, call: int, rank: int | None, now: float) -> None:
        stats.frames += 1  # one call row per update, however many a frame carries
        stats.last = max(stats.last, now)
        if self.latency and rank is not None:
            stats.first.setdefault(call * 4 + rank, now)

    # -- boards ----------------------------------------------------------------------------
    async def desk_board(self, index: int, opened: asyncio.Future[bool]) -> None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed, InvalidHandshake

        stats = BoardStats()
        self.boards.append(stats)
        url = self.base_url.replace("http://", "ws://") + "/ws"
        cookie = self.cookies[index % len(self.cookies)]
        for _attempt in range(MAX_RESYNCS + 1):
            code = None
            try:
                async with connect(url, additional_headers={"Cookie": cookie},
                                   ping_interval=None, max_size=None, open_timeout=60,
                                   close_timeout=2, max_queue=None) as ws:
                    await asyncio.wait_for(ws.recv(), 60)  # the snapshot
                    self.connected += 1
                    if not opened.done():
                        opened.set_result(True)
                    try:
                        async for frame in ws:
                            self.on_frame(stats, frame)
                    except ConnectionClosed:
                        pass
                    finally:
                        self.connected -= 1
                    code = ws.close_code
            except (OSError, InvalidHandshake, TimeoutError, ConnectionClosed) as error:
                reason = f"{type(error).__name__}: {error}"[:120]
                self.reasons[reason] = self.reasons.get(reason, 0) + 1
            if self.stopping.is_set() or code != 1012:
                break
            self.resyncs += 1
            await asyncio.sleep(random.uniform(0.2, 1.0))  # the extension's reconnect delay
        if not opened.done():
            self.failed += 1
            opened.set_result(False)

    async def socketio_board(self, index: int, opened: asyncio.Future[bool]) -> None:
        import socketio

        stats = BoardStats()
        self.boards.append(stats)
        client = socketio.AsyncClient(reconnection=False)
        client.on("row", lambda html: self.on_frame(stats, html))
        try:
            await client.connect(self.base_url, transports=["websocket"], wait_timeout=60)
            self.connected += 1
            opened.set_result(True)
            await self.stopping.wait()
        except (socketio.exceptions.ConnectionError, OSError, TimeoutError):
            self.failed += 1
            if not opened.done():
                opened.set_result(False)
        finally:
            if client.connected:
                self.connected -= 1
                await client.disconnect()

    async def open(self, n: int) -> dict[str, Any]:
        started = time.monotonic()
        gate = asyncio.Semaphore(50)  # connects in flight: snapshots are rendered per connect
        board = self.desk_board if self.kind == "desk" else self.socketio_board

        async def one(index: int) -> None:
            async with gate:
                opened: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
                self.tasks.append(asyncio.create_task(board(index, opened)))
                await opened

        first = len(self.boards)
        await asyncio.gather(*(one(first + i) for i in range(n)))
        return {"open": self.connected, "failed": self.failed, "reasons": self.reasons,
                "seconds": time.monotonic() - started}

    # -- measuring -------------------------------------------------------------------------
    def reset(self, tag: str, latency: bool) -> dict[str, Any]:
        self.tag, self.latency = tag, latency
        for stats in self.boards:
            stats.frames, stats.last, stats.first, stats.gone = 0, 0.0, {}, []
            stats.messages = 0
        self.rows = {}
        self.resyncs = 0
        self.cpu_mark = time.process_time()
        return {"open": self.connected}

    async def collect(self, expected: int, timeout: float,
                      events: list[tuple[int, int, float]] | None) -> dict[str, Any]:
        """Wait until every board has ``expected`` frames (or ``timeout``), then summarise.
        ``events`` are (call, step, sent_at) for the latency of each event at each board."""
        deadline = time.monotonic() + timeout
        seen, progress = -1, time.monotonic()
        while time.monotonic() < deadline:
            self.resolve_removals()
            if all(b.frames >= expected for b in self.boards):
                break
            total = sum(b.frames for b in self.boards)
            if total != seen:
                seen, progress = total, time.monotonic()
            elif time.monotonic() - progress > STALL:
                break  # nothing arrived for a while: what is missing is not coming
            await asyncio.sleep(0.05)
        self.resolve_removals()
        frames = sum(min(b.frames, expected) for b in self.boards)
        result: dict[str, Any] = {
            "boards": len(self.boards), "open": self.connected, "frames": frames,
            "expected": expected * len(self.boards), "resyncs": self.resyncs,
            "complete": sum(b.frames >= expected for b in self.boards),
            "last": max((b.last for b in self.boards), default=0.0),
            "cpu": time.process_time() - self.cpu_mark,
            "messages": sum(b.messages for b in self.boards),
        }
        if events is not None:
            latencies = array("d")
            missing = 0
            for stats in self.boards:
                for call, step, sent_at in events:
                    arrivals = [stats.first[k] for k in range(call * 4 + step, call * 4 + 3)
                                if k in stats.first]
                    if arrivals:
                        latencies.append(min(arrivals) - sent_at)
                    else:
                        missing += 1
            ordered = sorted(latencies)

            def pct(q: float) -> float:
                if not ordered:
                    return float("nan")
                return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000

            result.update(lat_p50=pct(0.5), lat_p99=pct(0.99), lat_max=pct(1.0),
                          lat_n=len(ordered), lat_missing=missing)
        return result

    async def stop(self) -> dict[str, Any]:
        self.stopping.set()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        return {"stopped": True}

    async def serve(self, conn: Connection) -> None:
        loop = asyncio.get_running_loop()
        while True:
            command, *args = await loop.run_in_executor(None, conn.recv)
            if command == "open":
                reply = await self.open(*args)
            elif command == "reset":
                reply = self.reset(*args)
            elif command == "collect":
                reply = await self.collect(*args)
            elif command == "stop":
                conn.send(await self.stop())
                return
            else:
                reply = {"error": f"unknown command {command!r}"}
            conn.send(reply)


def fleet_main(conn: Connection, kind: str, base_url: str, cookies: list[str]) -> None:
    """Entry point of the fleet process."""
    asyncio.run(Fleet(kind, base_url, cookies).serve(conn))


class FleetHandle:
    """The orchestrator's side: start the fleet process and send it commands."""

    def __init__(self, kind: str, base_url: str, cookies: list[str]) -> None:
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        self.conn, child = context.Pipe()
        self.proc = context.Process(target=fleet_main, args=(child, kind, base_url, cookies),
                                    daemon=True)
        self.proc.start()
        self.boards = 0

    def call(self, *command: Any, timeout: float = 300) -> dict[str, Any]:
        self.conn.send(command)
        if not self.conn.poll(timeout):
            raise TimeoutError(f"board fleet did not answer {command[0]!r} in {timeout}s")
        return self.conn.recv()

    def grow_to(self, n: int) -> dict[str, Any]:
        reply = self.call("open", max(0, n - self.boards)) if n > self.boards else {}
        self.boards = max(self.boards, n)
        return reply

    def stop(self) -> None:
        with contextlib.suppress(TimeoutError, OSError, EOFError):
            self.call("stop", timeout=30)
        self.proc.join(10)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()
