"""The live hub: fans committed changes out to every open board, in this process and others.

Flow: a transaction commits → ``Hub.publish(changes)`` (never blocks the request: it only
enqueues) → the dispatcher thread renders each changed fragment once per audience and voice
(the ``renderer``; a voice is a language and time zone, ``Board.voice``) → boards that get
the same fragments share one ``Frame`` (built, and encoded, once) → the dispatcher writes it
straight to each board's socket when that never waits (``Board.offer``); otherwise it waits
in the board's outbox for the board's own websocket handler to send.

Across processes: every commit that changed something is numbered in its own transaction
(``desk.live.sequence``). With ``DESK_REDIS_URL`` the dispatcher delivers locally first, then
publishes the number and ids (not HTML) on a Redis channel tagged with this process's id; a
subscriber thread hands other processes' messages to the dispatcher and skips its own. That
is the fast path. The durable path: every ``catch_up_interval`` seconds the dispatcher reads
the numbers above the highest it has seen, and those it is still missing, from the
database, and delivers what it had not. So a change reaches every board even when Redis is
down or lost a message, or its process was killed between commit and publish. A number is
delivered once per process, whichever path brings it first. A number that never turns up
(its transaction rolled back after taking it) is given up after ``GAP_GRACE`` seconds; a gap
too wide to fill row by row makes every board reload a snapshot (close code 1012).

Every ``TICK`` seconds the dispatcher also asks the ``ticker`` for what a render left for
later (today's wallboard counters, computed at most once a second). A render that fails
(the database restarting) is retried with backoff, merged with
whatever changed meanwhile, until it succeeds: boards are never left with a dropped update.
If Redis is unreachable the local boards keep updating, the outage is logged and shown to
supervisors, and the subscriber retries with backoff.
"""

from __future__ import annotations

import collections
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
from desk.live.frames import Frame

log = logging.getLogger(__name__)

Fragments = list[tuple[str, str]]
"""(audience, html) pairs. Audiences: "supervisor", "agents", "agent:<id>", "others:<id>"
(every agent except <id>)."""

BATCH_JOBS = 1000  # committed changes merged into one render, at most

RECONNECT = object()  # put in an outbox: close the socket with 1012 so the board resyncs

GAP_GRACE = 10.0  # seconds a missing sequence number is waited for before it is given up
MAX_GAP = 5000  # numbers missing at once beyond which boards reload instead
RETRY_FIRST, RETRY_MAX = 0.2, 2.0  # seconds before a failed render is tried again
CATCH_UP_BATCH = 500  # rows read from the sequence per query
START_SLACK = 50  # newest numbers read again at start: one may still have been committing


class Sequence:
    """Which change numbers this process has delivered: the highest, and the gaps below it.

    Used by the dispatcher thread only. Until ``start_at`` (the database's highest number
    when the process began) nothing is tracked: what came before is in every board's
    snapshot.
    """

    def __init__(self) -> None:
        self.top: int | None = None
        self.missing: dict[int, float] = {}  # number -> when it was first missed
        self._early: set[int] = set()

    def start_at(self, top: int, now: float | None = None, slack: int = 0) -> None:
        """Begin tracking above ``top``. The ``slack`` newest numbers up to ``top`` count
        as missing (read once more: on PostgreSQL a lower number can commit after a higher
        one was read); numbers delivered before then count as seen."""
        if self.top is None:
            now = time.monotonic() if now is None else now
            self.top = top
            self.missing.update((n, now) for n in range(max(1, top - slack + 1), top + 1))
            for seq in sorted(self._early):
                self.take(seq, now)
            self._early.clear()

    def take(self, seq: int, now: float) -> bool:
        """Whether ``seq`` is new here (deliver it) or was delivered already (skip it)."""
        if self.top is None:
            new = seq not in self._early
            self._early.add(seq)
            return new
        if seq > self.top:
            self.missing.update((n, now) for n in range(self.top + 1, seq))
            self.top = seq
            return True
        return self.missing.pop(seq, None) is not None

    def give_up(self, now: float) -> list[int]:
        """Forget numbers missed longer than ``GAP_GRACE`` (rolled back); returns them."""
        stale = [n for n, since in self.missing.items() if now - since > GAP_GRACE]
        for n in stale:
            del self.missing[n]
        return stale

    def too_wide(self) -> bool:
        return len(self.missing) > MAX_GAP

    def skip_to(self, top: int) -> None:
        self.top, self.missing = max(top, self.top or 0), {}


CatchUp = Callable[[int, list[int]], list[tuple[int, Changes]]]
"""Reads committed changes numbered above the first argument, plus those of the listed
missing numbers that exist, in number order (``desk.live.sequence.since``)."""


class Rest(bytes):
    """The unsent end of a frame the hub began writing straight to a socket: it goes out
    first, as raw bytes, before anything else is sent on that socket."""


class Outbox:
    """What waits to be sent to one board, oldest first, and a flag its handler waits on.

    A deque and an event rather than a ``queue.Queue``: putting is an append and setting a
    flag, with no condition variable to notify per board per batch. Only the board's own
    handler takes from it (``take``), while holding the board's lock.
    """

    def __init__(self) -> None:
        self.items: collections.deque[Any] = collections.deque()
        self.ready = threading.Event()

    def put(self, item: Any) -> None:
        self.items.append(item)
        self.ready.set()

    def get_nowait(self) -> Any:
        try:
            return self.items.popleft()
        except IndexError:
            raise queue.Empty from None

    def get(self, timeout: float) -> Any:
        """The oldest item, waiting up to ``timeout`` seconds for one (``queue.Empty``)."""
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(queue.Empty):
                return self.get_nowait()
            self.ready.clear()
            if self.items:
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self.ready.wait(remaining):
                raise queue.Empty

    def empty(self) -> bool:
        return not self.items

    def qsize(self) -> int:
        return len(self.items)


Writer = Callable[[bytes], int]
"""Writes what it can of some bytes to a socket without ever waiting; how many it wrote
(``BlockingIOError`` when the socket's buffer is full)."""


@dataclass(eq=False)
class Board:
    """One open websocket: who watches, and what is waiting to be sent to it.

    Once its snapshot is out, the handler may give the board a ``write`` that never blocks
    (``desk.live.views``). Then the dispatcher writes an update straight to the socket when
    nothing is waiting and the handler is not sending: no hand-over to the handler, no
    greenlet or thread switch per board. A socket that cannot take the whole frame gets
    the rest, and everything after it, through the outbox as before; so does every update
    while the handler holds the lock. Updates go out in the order they were offered.
    """

    user_id: int
    role: str
    max_queue: int = 200
    # How its viewer reads (``desk.i18n.voice_of``: language and time zone); boards of one
    # voice share each rendering. "": the desk's defaults.
    voice: str = ""
    outbox: Outbox = field(default_factory=Outbox)
    lock: threading.Lock = field(default_factory=threading.Lock)
    write: Writer | None = None

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
        """Send or queue ``message``; a board too far behind is told to reconnect instead."""
        if self.write is not None and isinstance(message, Frame) \
                and self.lock.acquire(blocking=False):
            try:
                if self.outbox.empty():  # nothing older waits: this may go first
                    self._write(message)
                    return True
            finally:
                self.lock.release()
        if self.outbox.qsize() >= self.max_queue:
            self.resync()
            return False
        self.outbox.put(message)
        return True

    def _write(self, message: Frame) -> None:
        """Write ``message`` now; what the socket would not take waits in the outbox."""
        data = message.wire()
        assert self.write is not None
        try:
            sent = self.write(data)
        except BlockingIOError:
            sent = 0
        except OSError:  # the socket is gone: its handler finds out and unregisters
            self.write, sent = None, 0
        if sent == 0:
            self.outbox.put(message)
        elif sent < len(data):
            self.outbox.put(Rest(data[sent:]))

    def take(self, most: int) -> list[Any]:
        """Up to ``most`` waiting items, oldest first (only the board's handler takes)."""
        taken = []
        for _ in range(most):
            try:
                taken.append(self.outbox.items.popleft())
            except IndexError:
                break
        if self.outbox.items:
            self.outbox.ready.set()  # more than one batch waits: come back at once
        return taken

    def resync(self) -> None:
        """Drop what waits and ask the handler to close with 1012: the board reloads. The
        end of a frame already begun stays, so the socket's stream is not cut mid-frame."""
        self.write = None
        items = self.outbox.items
        head = items[0] if items and isinstance(items[0], Rest) else None
        items.clear()
        if head is not None:
            items.append(head)
        self.outbox.put(RECONNECT)


Audiences = dict[str, set[str]]
"""The boards open in this process: for each voice (``Board.voice``), the roles of its
boards ("agent", "supervisor")."""

Ticker = Callable[[Audiences], dict[str, Fragments]]
"""Asked every ``TICK`` seconds for what a renderer left for later (the wallboard's
counters, ``desk.live.render.render_tick``); usually nothing."""
TICK = 0.5

Renderer = Callable[[Changes, Audiences], dict[str, Fragments]]
"""Renders changes once per voice, for the roles that have boards of that voice."""

StatusRenderer = Callable[[set[str]], dict[str, Fragments]]
"""Renders the status banner (``desk.live.render.render_status``) in each of the voices."""


def audiences(boards: list[Board]) -> Audiences:
    out: Audiences = {}
    for board in boards:
        out.setdefault(board.voice, set()).add(board.role)
    return out

BatchObserver = Callable[[int, float], None]
"""Told after each delivered batch: how many committed changes it merged, and the seconds
from the oldest one's hand-over (``publish`` or a Redis message) to every board's outbox."""


class Hub:
    """Process-wide registry of open boards plus the fan-out machinery."""

    def __init__(self) -> None:
        self.origin = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.boards: set[Board] = set()
        self._boards_lock = threading.Lock()
        self._jobs: queue.Queue[Job] = queue.Queue()
        self._renderer: Renderer | None = None
        self._status_renderer: StatusRenderer | None = None
        self._started = False
        self._dispatcher: threading.Thread | None = None
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
        # The durable path (``configure``): how to read the sequence, and how often.
        self._latest: Callable[[], int] | None = None
        self._catch_up: CatchUp | None = None
        self.catch_up_interval = 1.0
        self._next_catch_up = 0.0
        self.sequence = Sequence()
        self.caught_up = 0  # changes this process learnt from the database, not from Redis
        self.duplicates = 0  # numbers that arrived a second time and were skipped
        # A render that failed, waiting to be tried again (merged with what came since).
        self._retry: Changes = {}
        self._retry_delay = 0.0
        self._retry_at = 0.0
        self.render_failures = 0
        self._ticker: Ticker | None = None
        self._next_tick = 0.0

    # -- configuration -----------------------------------------------------------------
    def configure(
        self,
        renderer: Renderer,
        redis_url: str = "",
        status_renderer: StatusRenderer | None = None,
        channel: str = "desk:live",
        latest: Callable[[], int] | None = None,
        catch_up: CatchUp | None = None,
        catch_up_interval: float = 1.0,
        ticker: Ticker | None = None,
    ) -> None:
        self._renderer = renderer
        self._ticker, self._next_tick = ticker, 0.0
        self._latest, self._catch_up = latest, catch_up
        self.catch_up_interval = catch_up_interval
        # A new configuration may mean a new database: its numbers start afresh.
        self.sequence, self._next_catch_up = Sequence(), 0.0
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
            self._start_sequence()
            self._dispatcher = threading.Thread(target=self._dispatch_loop, name="desk-dispatch",
                                                daemon=True)
            self._dispatcher.start()
            if self.redis_url:
                threading.Thread(
                    target=self._subscribe_loop, name="desk-redis-sub", daemon=True
                ).start()
            self._started = True

    def _start_sequence(self) -> None:
        """Read where the sequence stands before the first board registers (the dispatcher
        is not running yet): everything numbered up to here is in that board's snapshot,
        everything after it is delivered. If the database does not answer, the first
        catch-up starts it instead."""
        if self._latest is None or self.sequence.top is not None:
            return
        try:
            top = self._latest()
        except Exception as exc:
            log.warning("live sequence: could not read where it stands (%s); the first "
                        "catch-up will", exc.__class__.__name__)
            return
        self.sequence.start_at(top, slack=START_SLACK)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the dispatcher, and wait (at most ``timeout`` seconds) until it has: a
        batch or catch-up in progress must not use the database after its owner closed it."""
        self._stop.set()
        self._put(({}, False, time.monotonic(), ()))
        dispatcher = self._dispatcher
        if dispatcher is not None and dispatcher is not threading.current_thread():
            dispatcher.join(timeout)

    def drain(self, timeout: float) -> bool:
        """Wait until every change handed over so far is delivered and published; False
        if ``timeout`` seconds pass first. For a short-lived process (a CLI command) whose
        changes must reach the other processes' boards before it exits."""
        with self._idle:
            return self._idle.wait_for(lambda: self._unfinished <= 0, timeout)

    def _put(self, job: Job) -> None:
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
    def publish(self, changes: Changes, seq: int | None = None) -> None:
        """Hand committed changes (and their sequence number) to the dispatcher; returns at
        once."""
        if not changes:
            return
        self.ensure_started()
        numbers = () if seq is None else (seq,)
        self._put(({k: set(v) for k, v in changes.items()}, True, time.monotonic(), numbers))

    def _dispatch_loop(self) -> None:
        while not self._stop.is_set():
            self._batch = (0, None)
            try:
                everything, local, numbers = self._next_batch(self._wait())
                self._dispatch(everything, local, numbers)
            except Exception:  # the dispatcher must outlive any one batch
                log.exception("the live dispatcher failed on a batch; carrying on")
            finally:
                with self._idle:
                    self._unfinished -= self._batch[0]
                    self._idle.notify_all()

    def _wait(self) -> float | None:
        """Seconds the dispatcher may sleep before a catch-up or a retry is due."""
        due = []
        if self._catch_up is not None and self.catch_up_interval > 0:
            due.append(self._next_catch_up)
        if self._retry:
            due.append(self._retry_at)
        if self._ticker is not None:
            due.append(self._next_tick)
        if not due:
            return None
        return max(0.0, min(due) - time.monotonic())

    def _dispatch(self, everything: Changes, local: Changes, numbers: list[int]) -> None:
        if local and self.redis_url:
            # Numbers and ids only: other processes render for their own boards.
            self._publish_redis(local, numbers)
        now = time.monotonic()
        if self._catch_up is not None and now >= self._next_catch_up:
            self._next_catch_up = now + self.catch_up_interval
            _merge(everything, self._read_missed())
        if self._retry and now >= self._retry_at:
            _merge(everything, self._retry)
            self._retry = {}
        if self._ticker is not None and now >= self._next_tick:
            self._next_tick = now + TICK
            self._tick(self._ticker)
        if not everything:
            return
        try:
            self.deliver(everything)
        except Exception as exc:
            self._render_failed(everything, exc)
            return
        if self._retry_delay:
            log.info("live updates render again; boards are up to date")
            self._retry_delay = 0.0
        self._observe_batch()

    def _render_failed(self, changes: Changes, exc: Exception) -> None:
        """Keep the changes and try again shortly (with what changes meanwhile)."""
        self.render_failures += 1
        _merge(self._retry, changes)
        self._retry_delay = min(max(self._retry_delay * 2, RETRY_FIRST), RETRY_MAX)
        self._retry_at = time.monotonic() + self._retry_delay
        log.warning("live update render failed (%s: %s); retrying in %.1f s",
                    exc.__class__.__name__, str(exc).splitlines()[0][:200] if str(exc) else "",
                    self._retry_delay)

    def _read_missed(self) -> Changes:
        """Changes committed (by any process) that this one has not delivered yet."""
        assert self._catch_up is not None
        found: Changes = {}
        try:
            if self.sequence.top is None and self._latest is not None:
                self.sequence.start_at(self._latest(), slack=START_SLACK)
            if self.sequence.top is None:
                return found
            for _ in range(20):  # at most 20 batches of CATCH_UP_BATCH rows per catch-up
                top = self.sequence.top
                rows = self._catch_up(top, sorted(self.sequence.missing))
                fresh = [changes for seq, changes in rows
                         if self.sequence.take(seq, time.monotonic())]
                for changes in fresh:
                    _merge(found, changes)
                self.caught_up += len(fresh)
                if sum(1 for seq, _ in rows if seq > top) < CATCH_UP_BATCH:
                    break
        except Exception as exc:  # the database is away: the next catch-up tries again
            log.warning("live catch-up from the database failed (%s); retrying in %.1f s",
                        exc.__class__.__name__, self.catch_up_interval)
            self._next_catch_up = time.monotonic() + min(self.catch_up_interval, RETRY_MAX)
            return found
        self._settle_gaps()
        return found

    def _settle_gaps(self) -> None:
        given_up = self.sequence.give_up(time.monotonic())
        if given_up:
            log.debug("live sequence: numbers %s never committed (rolled back)", given_up[:10])
        if self.sequence.too_wide():
            log.warning("live sequence: %d changes missing at once; boards reload a snapshot",
                        len(self.sequence.missing))
            self.sequence.skip_to(self.sequence.top or 0)
            self.resync_all()

    def _observe_batch(self) -> None:
        jobs, oldest = self._batch
        if self.on_batch is None or oldest is None:
            return
        try:
            self.on_batch(jobs, time.monotonic() - oldest)
        except Exception:  # counting must never stop the fan-out
            log.exception("observing a live batch failed")

    def _next_batch(self, timeout: float | None = None) -> tuple[Changes, Changes, list[int]]:
        """Wait (at most ``timeout`` seconds) for a change, then take everything else
        already queued with it.

        Under load the queue fills while one batch renders; merging it into one render (a
        call changed three times is rendered once, in its latest state) keeps the
        dispatcher's work per second bounded by its render time, not by the event rate.
        Returns (all changes to deliver here, the ones committed in this process, the
        numbers of those). A number delivered already (the catch-up read it before its
        Redis message came) is not delivered again.
        """
        everything: Changes = {}
        local: Changes = {}
        numbers: list[int] = []
        taken, oldest = 0, None
        try:
            job: Job | None = self._jobs.get(timeout=timeout)
        except queue.Empty:
            job = None
        while job is not None and taken < BATCH_JOBS:
            changes, local_origin, queued_at, seqs = job
            taken += 1
            if oldest is None or queued_at < oldest:
                oldest = queued_at
            now = time.monotonic()
            fresh = [self.sequence.take(seq, now) for seq in seqs]  # (every one is marked)
            new = not seqs or any(fresh)
            if local_origin:
                _merge(local, changes)
                numbers.extend(seqs)
            if new:
                _merge(everything, changes)
            elif not local_origin:
                self.duplicates += 1
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                job = None
        self._batch = (taken, oldest)
        return everything, local, numbers

    def deliver(self, changes: Changes) -> None:
        """Render once per audience and queue the same string for every matching board."""
        with self._boards_lock:
            boards = list(self.boards)
        if not boards or self._renderer is None:
            return
        self._fan_out(boards, self._renderer(changes, audiences(boards)))

    def _fan_out(self, boards: list[Board], rendered: dict[str, Fragments]) -> None:
        """Give every board the fragments of its audiences, joined into one ``Frame``.

        Boards that would get the same fragments share one frame, built once: every
        supervisor board of a voice, and every agent board of a voice whose agent no
        fragment names (``agent:<id>``, ``others:<id>``). So a batch costs one pass over its
        fragments per distinct frame, and one queue hand-over per board; the frame's bytes
        are encoded once too (``Frame.wire``).
        """
        frames: dict[tuple[str, str, int | None], Frame | None] = {}
        named = {voice: _named(fragments) for voice, fragments in rendered.items()}
        for board in boards:
            fragments = rendered.get(board.voice)
            if not fragments:
                continue
            who = (board.user_id if board.role != "supervisor"
                   and board.user_id in named[board.voice] else None)
            key = (board.voice, board.role, who)
            try:
                frame = frames[key]
            except KeyError:
                parts = [html for audience, html in fragments if board.wants(audience)]
                frame = frames[key] = Frame("".join(parts)) if parts else None
            if frame is None:
                continue
            board.offer(frame)
            self.delivered += 1

    def _tick(self, ticker: Ticker) -> None:
        with self._boards_lock:
            boards = list(self.boards)
        if not boards:
            return
        try:
            rendered = ticker(audiences(boards))
        except Exception as exc:  # the next tick tries again
            log.warning("a deferred live render failed (%s); retrying", exc.__class__.__name__)
            return
        if rendered:
            self._fan_out(boards, rendered)

    def broadcast_status(self) -> None:
        if self._status_renderer is None:
            return
        with self._boards_lock:
            boards = list(self.boards)
        if boards:
            try:
                self._fan_out(boards, self._status_renderer({b.voice for b in boards}))
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

    def _publish_redis(self, changes: Changes, numbers: list[int] | None = None) -> None:
        # Skipped only while the subscriber knows Redis is down: it resyncs boards when it
        # is back, and each publish must not stall on a dead server meanwhile. Not skipped
        # before the subscriber's first connection (``redis_ok`` still False from
        # ``configure``): a process's first change is often committed before then.
        if self._redis_down and self._publisher is None:
            return
        message = json.dumps({
            "origin": self.origin, "seqs": numbers or [],
            "changes": {k: sorted(v) for k, v in changes.items()},
        })
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
                if not first and self._catch_up is None:
                    self.resync_all()  # what was published meanwhile is lost: reload boards
                self._next_catch_up = 0.0  # with the sequence: read what Redis missed now
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
            numbers = [int(n) for n in message.get("seqs") or []]
        except (ValueError, KeyError, TypeError, AttributeError):
            log.warning("ignoring a malformed live message from Redis: %.200r", data)
            return
        self._put((changes, False, time.monotonic(), tuple(numbers)))


Job = tuple[Changes, bool, float, tuple[int, ...]]
"""(changes, committed in this process, time.monotonic() when handed over, their sequence
numbers: one for a local commit, a batch for a Redis message, none for a bare change)."""


def _named(fragments: Fragments) -> set[int]:
    """The agents that fragments single out: their boards get frames of their own."""
    named: set[int] = set()
    for audience, _html in fragments:
        kind, _, ident = audience.partition(":")
        if kind in ("agent", "others") and ident.isdigit():
            named.add(int(ident))
    return named


def _merge(into: Changes, more: Changes) -> None:
    for kind, ids in more.items():
        into.setdefault(kind, set()).update(ids)


def _safe_url(url: str) -> str:
    """The URL without its password, for logs."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url
