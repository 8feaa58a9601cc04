"""The live hub: fans committed changes out to every open board, in this process and others.

Flow: a transaction commits → ``Hub.publish(changes)`` (never blocks the request: it only
enqueues) → the dispatcher thread renders each changed fragment once per audience (the
``renderer``) → the same string goes into the outbox of every board in that audience → each
board's own websocket handler sends from its outbox (one sender per socket).

Across processes: with ``DESK_REDIS_URL`` the dispatcher delivers locally first, then
publishes ids (not HTML) on a Redis channel tagged with this process's id; a subscriber
thread applies other processes' messages and skips its own. If Redis is unreachable the
local boards keep updating, the outage is logged and shown to supervisors, and the
subscriber retries with backoff; when it is back, every local board is told to reconnect
(close code 1012) so it reloads a full snapshot of what it missed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from desk.live.changes import Changes

log = logging.getLogger(__name__)

Fragments = list[tuple[str, str]]
"""(audience, html) pairs. Audiences: "supervisor", "agents", "agent:<id>", "others:<id>"
(every agent except <id>)."""

BATCH_JOBS = 1000  # committed changes merged into one render, at most

RECONNECT = object()  # put in an outbox: close the socket with 1012 so the board resyncs


@dataclass(eq=False)
class Board:
    """One open websocket: who watches, and what is waiting to be sent to it."""

    user_id: int
    role: str
    max_queue: int = 200
    outbox: queue.Queue[Any] = field(init=False)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.outbox = queue.Queue(maxsize=self.max_queue)

    def wants(self, audience: str) -> bool:
        if self.role == "supervisor":
            return audience == "supervisor"
        if audience == "agents":
            return True
        kind, _, ident = audience.partition(":")
        if kind == "agent":
            return ident == str(self.user_id)
        if kind == "others":
            return ident != str(self.user_id)
        return False

    def offer(self, message: Any) -> bool:
        """Queue ``message``; a board too far behind is told to reconnect instead."""
        try:
            self.outbox.put_nowait(message)
            return True
        except queue.Full:
            self.resync()
            return False

    def resync(self) -> None:
        while True:
            try:
                self.outbox.get_nowait()
            except queue.Empty:
                break
        self.outbox.put_nowait(RECONNECT)


Renderer = Callable[[Changes, set[str]], Fragments]
"""Renders changes for the roles that have boards in this process ("agent", "supervisor")."""

BatchObserver = Callable[[int, float], None]
"""Told after each delivered batch: how many committed changes it merged, and the seconds
from the oldest one's hand-over (``publish`` or a Redis message) to every board's outbox."""


class Hub:
    """Process-wide registry of open boards plus the fan-out machinery."""

    def __init__(self) -> None:
        self.origin = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.boards: set[Board] = set()
        self._boards_lock = threading.Lock()
        # (changes, committed in this process, time.monotonic() when handed over)
        self._jobs: queue.Queue[tuple[Changes, bool, float]] = queue.Queue()
        self._renderer: Renderer | None = None
        self._status_renderer: Callable[[], Fragments] | None = None
        self._started = False
        self._start_lock = threading.Lock()
        self._stop = threading.Event()
        self.redis_url = ""
        self.channel = "desk:live"
        self.redis_ok: bool | None = None  # None: not configured
        self.redis_error = ""
        # The subscriber lost Redis and has not reconnected yet (not merely "not connected
        # yet"): while it holds, publishing is skipped instead of stalling on every change.
        self._redis_down = False
        self._publisher: Any = None
        self.delivered = 0  # messages handed to outboxes (for metrics and tests)
        self.on_batch: BatchObserver | None = None  # desk.metrics watches the dispatcher
        self._batch: tuple[int, float | None] = (0, None)  # the batch being delivered
        # Jobs handed to the dispatcher and not yet done with (``drain`` waits for none).
        self._unfinished = 0
        self._idle = threading.Condition()

    # -- configuration -----------------------------------------------------------------
    def configure(
        self,
        renderer: Renderer,
        redis_url: str = "",
        status_renderer: Callable[[], Fragments] | None = None,
        channel: str = "desk:live",
    ) -> None:
        self._renderer = renderer
        self.channel = channel
        self._status_renderer = status_renderer
        self.redis_url = redis_url
        self.redis_ok = False if redis_url else None

    def ensure_started(self) -> None:
        """Start the dispatcher (and Redis subscriber) in this process, once.

        Started lazily, not at import, so a forking server starts them in each worker.
        """
        if self._started:
            return
        with self._start_lock:
            if self._started:
                return
            if self.origin.split("-", 1)[0] != str(os.getpid()):  # forked since created
                self.origin = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
            threading.Thread(target=self._dispatch_loop, name="desk-dispatch", daemon=True).start()
            if self.redis_url:
                threading.Thread(
                    target=self._subscribe_loop, name="desk-redis-sub", daemon=True
                ).start()
            self._started = True

    def stop(self) -> None:
        self._stop.set()
        self._put(({}, False, time.monotonic()))

    def drain(self, timeout: float) -> bool:
        """Wait until every change handed over so far is delivered and published; False
        if ``timeout`` seconds pass first. For a short-lived process (a CLI command) whose
        changes must reach the other processes' boards before it exits."""
        with self._idle:
            return self._idle.wait_for(lambda: self._unfinished <= 0, timeout)

    def _put(self, job: tuple[Changes, bool, float]) -> None:
        with self._idle:
            self._unfinished += 1
        self._jobs.put(job)

    # -- boards --------------------------------------------------------------------------
    def register(self, board: Board) -> None:
        self.ensure_started()
        with self._boards_lock:
            self.boards.add(board)

    def unregister(self, board: Board) -> None:
        with self._boards_lock:
            self.boards.discard(board)

    def board_count(self) -> int:
        return len(self.boards)

    def queue_depth(self) -> int:
        """Committed changes waiting for the dispatcher (a steady rise: rendering lags)."""
        return self._jobs.qsize()

    def largest_backlog(self) -> int:
        """Updates waiting in the fullest board's outbox (a slow browser or network)."""
        with self._boards_lock:
            boards = list(self.boards)
        return max((board.outbox.qsize() for board in boards), default=0)

    # -- publishing ----------------------------------------------------------------------
    def publish(self, changes: Changes) -> None:
        """Hand committed changes to the dispatcher; returns at once."""
        if not changes:
            return
        self.ensure_started()
        self._put(({k: set(v) for k, v in changes.items()}, True, time.monotonic()))

    def _dispatch_loop(self) -> None:
        while not self._stop.is_set():
            everything, local = self._next_batch()
            try:
                self._dispatch(everything, local)
            finally:
                with self._idle:
                    self._unfinished -= self._batch[0]
                    self._idle.notify_all()

    def _dispatch(self, everything: Changes, local: Changes) -> None:
        if local and self.redis_url:
            self._publish_redis(local)  # ids only: other processes render for their boards
        if not everything:
            return
        try:
            self.deliver(everything)
        except Exception:
            log.exception("rendering a live update failed; boards will catch up on reconnect")
            return
        self._observe_batch()

    def _observe_batch(self) -> None:
        jobs, oldest = self._batch
        if self.on_batch is None or oldest is None:
            return
        try:
            self.on_batch(jobs, time.monotonic() - oldest)
        except Exception:  # counting must never stop the fan-out
            log.exception("observing a live batch failed")

    def _next_batch(self) -> tuple[Changes, Changes]:
        """Wait for a change, then take everything else already queued with it.

        Under load the queue fills while one batch renders; merging it into one render (a
        call changed three times is rendered once, in its latest state) keeps the
        dispatcher's work per second bounded by its render time, not by the event rate.
        Returns (all changes to deliver here, the ones committed in this process).
        """
        everything: Changes = {}
        local: Changes = {}
        job = self._jobs.get()
        taken, oldest = 0, None
        for _ in range(BATCH_JOBS):
            changes, local_origin, *queued_at = job  # (a job put by hand may have no time)
            taken += 1
            if queued_at and (oldest is None or queued_at[0] < oldest):
                oldest = queued_at[0]
            for kind, ids in changes.items():
                everything.setdefault(kind, set()).update(ids)
                if local_origin:
                    local.setdefault(kind, set()).update(ids)
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
        self._batch = (taken, oldest)
        return everything, local

    def deliver(self, changes: Changes) -> None:
        """Render once per audience and queue the same string for every matching board."""
        with self._boards_lock:
            boards = list(self.boards)
        if not boards or self._renderer is None:
            return
        roles = {board.role for board in boards}
        fragments = self._renderer(changes, roles)
        self._fan_out(boards, fragments)

    def _fan_out(self, boards: list[Board], fragments: Fragments) -> None:
        for board in boards:
            parts = [html for audience, html in fragments if board.wants(audience)]
            if not parts:
                continue
            board.offer(parts[0] if len(parts) == 1 else "".join(parts))
            self.delivered += 1

    def broadcast_status(self) -> None:
        if self._status_renderer is None:
            return
        with self._boards_lock:
            boards = list(self.boards)
        if boards:
            try:
                self._fan_out(boards, self._status_renderer())
            except Exception:
                log.exception("rendering the status banner failed")

    def resync_all(self) -> None:
        with self._boards_lock:
            boards = list(self.boards)
        for board in boards:
            board.resync()

    # -- Redis ---------------------------------------------------------------------------
    def _set_redis(self, ok: bool, error: str = "") -> None:
        was = self.redis_ok
        self.redis_ok, self.redis_error = ok, error
        if was == ok:
            return
        if ok:
            log.info("live fan-out: Redis connected at %s", _safe_url(self.redis_url))
        else:
            log.warning(
                "live fan-out: Redis unreachable (%s); boards on this server still update, "
                "boards on other servers may lag until it returns",
                error,
            )
        self.broadcast_status()

    def _redis_client(self) -> Any:
        import redis

        return redis.Redis.from_url(
            self.redis_url, socket_connect_timeout=0.5, socket_timeout=0.5,
            health_check_interval=15,
        )

    def _publish_redis(self, changes: Changes) -> None:
        # Skipped only while the subscriber knows Redis is down: it resyncs boards when it
        # is back, and each publish must not stall on a dead server meanwhile. Not skipped
        # before the subscriber's first connection (``redis_ok`` still False from
        # ``configure``): a process's first change is often committed before then.
        if self._redis_down and self._publisher is None:
            return
        message = json.dumps(
            {"origin": self.origin, "changes": {k: sorted(v) for k, v in changes.items()}}
        )
        try:
            # A local reference: the subscriber resets ``_publisher`` when it (re)connects.
            publisher = self._publisher
            if publisher is None:
                publisher = self._publisher = self._redis_client()
            publisher.publish(self.channel, message)
        except Exception as exc:
            # This change missed the other processes: say so. The next change tries again
            # with a new connection (and clears the warning when it gets through).
            self._publisher = None
            self._set_redis(False, str(exc) or exc.__class__.__name__)
            return
        if self.redis_ok is False and not self._redis_down:
            self._set_redis(True)

    def _subscribe_loop(self) -> None:
        import redis

        backoff = 0.25
        first = True
        while not self._stop.is_set():
            pubsub = None
            try:
                client = redis.Redis.from_url(
                    self.redis_url, socket_connect_timeout=1, socket_timeout=None,
                    health_check_interval=10,
                )
                pubsub = client.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(self.channel)
                self._publisher = None  # reconnect the publisher too
                self._redis_down = False
                self._set_redis(True)
                if not first:
                    self.resync_all()  # what was published meanwhile is lost: reload boards
                first, backoff = False, 0.25
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    if message and message.get("type") == "message":
                        self._on_redis_message(message["data"])
            except (redis.RedisError, OSError) as exc:
                self._redis_down = True
                self._set_redis(False, str(exc) or exc.__class__.__name__)
                first = False
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)
            finally:
                if pubsub is not None:
                    with contextlib.suppress(Exception):
                        pubsub.close()

    def _on_redis_message(self, data: bytes | str) -> None:
        try:
            message = json.loads(data)
            if message.get("origin") == self.origin:
                return
            changes = {k: set(map(int, v)) for k, v in message["changes"].items()}
        except (ValueError, KeyError, TypeError, AttributeError):
            log.warning("ignoring a malformed live message from Redis: %.200r", data)
            return
        self._put((changes, False, time.monotonic()))


def _safe_url(url: str) -> str:
    """The URL without its password, for logs."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url
