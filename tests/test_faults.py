"""The live truth after faults: boards under steady webhook load while the desk's services
fail, each board held by a real websocket client that keeps its rows as the browser does.

The desk runs as in production (gunicorn, gevent, 2 workers) on a private PostgreSQL and a
private Redis that this module starts in temporary folders (``tests.services``), so it can
break them without touching the machine's shared servers. Faults, one after the other on
the same running desk:

* **Redis restart**: Redis stopped, started again a second later on the same port.
* **PostgreSQL restart**: ``pg_ctl restart -m fast`` (every connection is cut).
* **Worker killed**: ``kill -9`` of the gunicorn worker holding the most boards; gunicorn
  forks a new one.
* **Render failure**: for 1.5 s the desk's database role may not read ``users``
  (``REVOKE SELECT``, then ``GRANT`` it back). Ringing and missed calls still commit
  (ingesting them reads no user; a foreign key that is NULL is not checked), but every
  render joins each call's agent from ``users`` and fails; a probe call rung inside that
  window makes sure one does, and the server log must say so.

After each, load runs on for a few seconds, is paused, and once every delivery sent has been
accepted every board must equal a fresh snapshot (``difference`` says what "equal" means).
At the end no delivery may be missing from the event log or applied twice. A separate test
checks that the first change after a start reaches the boards of the other worker.

The harness (``Board``, ``Load``, ``FaultDesk``) is also what ``bench/faults.py`` runs for
``make bench``, which prints how long each recovery took.
"""

from __future__ import annotations

import os
import random
import re
import signal
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import requests
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.sync.client import ClientConnection, connect

from tests.conftest import PASSWORD, PLACETEL_AUTH
from tests.servers import LiveServer, desk_env, prepare
from tests.services import PrivatePostgres, PrivateRedis

pytestmark = [pytest.mark.slow, pytest.mark.faults, pytest.mark.timeout(300)]

USERS = ("ann", "bob", "sue")  # tests.servers.prepare: two agents and a supervisor
LOCK_TIMEOUT = "200ms"  # the desk's role, in the fault database: a held lock fails fast
REDIS_DOWN = 1.0  # seconds between stopping Redis and starting it again
RENDER_BREAK = 1.5  # seconds the desk may not read the users table
RENDER_WAIT = 15.0  # seconds more, at most, until a render has failed
ENDED = "calls-ended"
RENDER_FAILED = re.compile(r"render(?:ing a live update)? failed")


# -- what a board shows ---------------------------------------------------------------------

ROW_FIELDS = ("data-section", "data-state", "data-direction", "data-outcome", "data-from",
              "data-to", "data-duration", "data-pending")
VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta",
                  "source", "track", "wbr"})


@dataclass(frozen=True)
class Row:
    """One call row (``templates/board/_call_row.html``): what it says about the call."""

    call: int
    fields: tuple[str, ...]  # ROW_FIELDS, in order
    ended: tuple[datetime, int] | None  # (its end time, call id): newest first in a list

    @property
    def section(self) -> str:
        return self.fields[0]

    @property
    def state(self) -> str:
        return self.fields[1]

    def describe(self) -> str:
        return f"{self.state} in {self.section}"

    @classmethod
    def parse(cls, attrs: dict[str, str | None], when: str | None) -> Row:
        call = int((attrs.get("id") or "call-0").removeprefix("call-"))
        fields = tuple(attrs.get(name) or "" for name in ROW_FIELDS)
        ended = None
        if fields[1] == "ended" and when:
            ended = (datetime.fromisoformat(when), call)
        return cls(call, fields, ended)


Op = tuple[str, Any]
"""("section", (id, rows, data-shown)), ("row", Row) or ("delete", "call-N")."""


class _Frame(HTMLParser):
    """The out-of-band swaps in one websocket frame, as htmx finds them: its top-level
    elements. A section (``<div id="calls-…">``) brings its rows; a call row is put in
    place; ``hx-swap-oob="delete"`` takes an element off."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ops: list[Op] = []
        self.depth = 0
        self.open: list[str] = []
        self.section: tuple[str, list[Row], str | None] | None = None
        self.row: dict[str, str | None] | None = None
        self.row_depth = 0
        self.row_time: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        depth = len(self.open)
        if tag not in VOID:
            self.open.append(tag)
        if depth == 0:
            oob = a.get("hx-swap-oob")
            ident = a.get("id") or ""
            if oob == "delete":
                self.ops.append(("delete", ident))
            elif oob and tag == "div" and ident.startswith("calls-"):
                self.section = (ident, [], a.get("data-shown"))
            elif oob and tag == "article" and ident.startswith("call-"):
                self.row, self.row_depth, self.row_time = a, 0, None
        elif (depth == 1 and self.section is not None and tag == "article"
              and (a.get("id") or "").startswith("call-")):
            self.row, self.row_depth, self.row_time = a, 1, None
        elif self.row is not None and tag == "time" and self.row_time is None:
            self.row_time = a.get("datetime")

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID or tag not in self.open:
            return
        while self.open.pop() != tag:
            pass
        depth = len(self.open)
        if tag == "article" and self.row is not None and depth == self.row_depth:
            row = Row.parse(self.row, self.row_time)
            if self.section is not None and depth == 1:
                self.section[1].append(row)
            else:
                self.ops.append(("row", row))
            self.row = None
        elif tag == "div" and depth == 0 and self.section is not None:
            self.ops.append(("section", self.section))
            self.section = None


class BoardRows:
    """The call lists of one board, in document order, kept as the browser keeps them.

    A section in a frame (the snapshot) replaces that list whole. A pushed row replaces the
    element with its id where it stands and, when its ``data-section`` names another list,
    moves to the top of that one (``static/board/desk.js``, ``place``); a row with no
    element yet goes to the top of its list. ``delete`` removes the element. *Recently
    ended* keeps every row it was given (the page hides those past ``data-shown``).
    """

    def __init__(self) -> None:
        self.lists: dict[str, list[Row]] = {}
        self.shown: dict[str, int] = {}

    def apply(self, frame: str) -> None:
        parser = _Frame()
        parser.feed(frame)
        parser.close()
        for kind, value in parser.ops:
            if kind == "section":
                ident, rows, shown = value
                self.lists[ident] = rows
                if shown:
                    self.shown[ident] = int(shown)
            elif kind == "row":
                self._put(value)
            elif kind == "delete":
                found = self._find(int(value.removeprefix("call-") or 0))
                if found is not None:
                    del self.lists[found[0]][found[1]]

    def _find(self, call: int) -> tuple[str, int] | None:
        for ident, rows in self.lists.items():
            for index, row in enumerate(rows):
                if row.call == call:
                    return ident, index
        return None

    def _put(self, row: Row) -> None:
        found = self._find(row.call)
        if found is not None:
            ident, index = found
            self.lists[ident][index] = row
            if row.section != ident and row.section in self.lists:
                del self.lists[ident][index]
                self.lists[row.section].insert(0, row)
        elif row.section in self.lists:
            self.lists[row.section].insert(0, row)

    def rows(self) -> Iterator[tuple[str, Row]]:
        for ident, rows in self.lists.items():
            for row in rows:
                yield ident, row

    def copy(self) -> BoardRows:
        other = BoardRows()
        other.lists = {ident: list(rows) for ident, rows in self.lists.items()}
        other.shown = dict(self.shown)
        return other


def difference(board: BoardRows, truth: BoardRows) -> str | None:
    """How ``board`` differs from ``truth`` (a fresh snapshot for the same user); None if
    it shows the live truth.

    Equal means: every row of the snapshot is on the board, in the same list, with the same
    call facts (``ROW_FIELDS``: section, state, direction, outcome, numbers, talk time,
    pending action), and no call shows twice. Live lists (ringing, talking, dialling calls)
    must hold exactly the snapshot's rows. *Recently ended* is capped in a snapshot to the
    newest ``data-shown`` rows (by end time, then id, as ``queries.recent_ended`` orders
    them), while a board that has been open a while keeps older ended rows it was pushed,
    hidden; so a board's ended row that the snapshot lacks is correct only if the snapshot's
    list is full and that row is older than every row in it. Order within a list and the
    row's markup (timers, buttons, classes) are not compared: they are presentation, and a
    board's order follows arrival, not a query.
    """
    shown: dict[int, tuple[str, Row]] = {}
    problems: list[str] = []
    for ident, row in board.rows():
        if row.call in shown:
            problems.append(f"call {row.call} shows twice ({shown[row.call][0]}, {ident})")
        shown[row.call] = (ident, row)
    true = {row.call: (ident, row) for ident, row in truth.rows()}
    for call, (ident, want) in true.items():
        if call not in shown:
            problems.append(f"call {call} missing (desk: {want.describe()})")
            continue
        have_list, have = shown[call]
        if have_list != ident or have.fields != want.fields:
            problems.append(f"call {call} shows {have.describe()} {have.fields[2:]}, desk: "
                            f"{want.describe()} {want.fields[2:]}")
    ended = truth.lists.get(ENDED, [])
    full = len(ended) >= truth.shown.get(ENDED, len(ended) + 1)
    keys = [row.ended for row in ended if row.ended is not None]
    oldest = min(keys) if keys else None
    for call, (ident, have) in shown.items():
        if call in true:
            continue
        if (ident == ENDED and have.state == "ended" and full and oldest is not None
                and have.ended is not None and have.ended < oldest):
            continue  # pushed off the capped list; the page keeps it hidden
        problems.append(f"call {call} shows {have.describe()}; a fresh board has no such row")
    if not problems:
        return None
    return "; ".join(problems[:4]) + (f" (and {len(problems) - 4} more)"
                                       if len(problems) > 4 else "")


# -- a board --------------------------------------------------------------------------------


def reconnect_delay(retry: int) -> float:
    """Seconds before reconnect attempt ``retry`` (1, 2, …): desk.js's schedule for the htmx
    ws extension (0.5 s, 1 s, 2 s, then every 3 s, plus up to 0.25 s of jitter)."""
    return min(0.5 * 2 ** max(0, retry - 1), 3.0) + random.random() * 0.25


def cookie_of(session: requests.Session) -> str:
    return "; ".join(f"{c.name}={c.value}" for c in session.cookies)


def open_socket(server: LiveServer, cookie: str) -> ClientConnection:
    return connect(f"ws://127.0.0.1:{server.port}/ws", additional_headers={"Cookie": cookie},
                   open_timeout=5, close_timeout=1)


def fresh_snapshot(server: LiveServer, cookie: str) -> BoardRows:
    """What a board opened now shows: a new websocket's first frame."""
    with open_socket(server, cookie) as ws:
        frame = ws.recv(timeout=10)
    rows = BoardRows()
    rows.apply(str(frame))
    return rows


class Board(threading.Thread):
    """One open board: a websocket to ``/ws`` with ``user``'s session, reconnecting when it
    closes (any close: a 1012 resync, a dead worker, a refused handshake) as the htmx ws
    extension does; each new connection's snapshot is applied over what it showed."""

    def __init__(self, server: LiveServer, user: str, cookie: str) -> None:
        super().__init__(name=f"board-{user}", daemon=True)
        self.server, self.user, self.cookie = server, user, cookie
        self.rows = BoardRows()
        self.lock = threading.Lock()
        self.live = False  # connected, and its snapshot applied
        self.connects = 0
        self.client_port = 0  # this end's port of the current connection
        self.frames = 0
        self.history: deque[tuple[float, str]] = deque(maxlen=400)  # recent frames, for failures
        self._ws: ClientConnection | None = None
        self._halt = threading.Event()

    def run(self) -> None:
        retry = 0
        while not self._halt.is_set():
            try:
                with open_socket(self.server, self.cookie) as ws:
                    self._ws = ws
                    snapshot = str(ws.recv(timeout=30))
                    with self.lock:
                        self.history.append((time.monotonic(), "snapshot:" + snapshot))
                        self.rows.apply(snapshot)
                        self.client_port = ws.socket.getsockname()[1]
                        self.live = True
                        self.connects += 1
                    retry = 0
                    while not self._halt.is_set():
                        frame = str(ws.recv())
                        with self.lock:
                            self.history.append((time.monotonic(), frame))
                            self.rows.apply(frame)
                            self.frames += 1
            except (ConnectionClosed, InvalidHandshake, OSError, TimeoutError):
                pass
            finally:
                with self.lock:
                    self.live = False
                self._ws = None
            retry += 1
            self._halt.wait(reconnect_delay(retry))

    def wait_live(self, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while not self.live:
            assert time.monotonic() < deadline, f"{self.name} never received its snapshot"
            time.sleep(0.02)

    def shows(self) -> tuple[bool, BoardRows, int]:
        with self.lock:
            return self.live, self.rows.copy(), self.client_port

    def drop(self) -> None:
        """Cut the connection (the board reconnects and resyncs)."""
        ws = self._ws
        if ws is not None:
            ws.close()

    def stop(self) -> None:
        self._halt.set()
        self.drop()
        self.join(timeout=5)


# -- which worker holds a socket ------------------------------------------------------------


def worker_pids(server: LiveServer) -> list[int]:
    """The gunicorn master's children: its workers."""
    pid = server.proc.pid
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def wait_workers(server: LiveServer, count: int, gone: int | None = None,
                 timeout: float = 30) -> list[int]:
    deadline = time.monotonic() + timeout
    while True:
        pids = worker_pids(server)
        if len(pids) == count and gone not in pids:
            return pids
        assert time.monotonic() < deadline, f"gunicorn has workers {pids}, not {count}"
        time.sleep(0.05)


def socket_owners(server_port: int, pids: Iterable[int]) -> dict[int, int]:
    """Client port → the worker process holding the server's end of that TCP connection
    (``/proc/net/tcp`` gives the socket's inode, a worker's ``/proc/<pid>/fd`` holds it)."""
    inodes: dict[str, int] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            local, remote, inode = parts[1], parts[2], parts[9]
            if int(local.rsplit(":", 1)[1], 16) == server_port and inode != "0":
                inodes[inode] = int(remote.rsplit(":", 1)[1], 16)
    owners: dict[int, int] = {}
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            port = inodes.get(link.removeprefix("socket:[").removesuffix("]"))
            if link.startswith("socket:[") and port:
                owners[port] = pid
    return owners


def boards_by_worker(server: LiveServer, boards: list[Board]) -> dict[int, list[Board]]:
    pids = worker_pids(server)
    owners = socket_owners(server.port, pids)
    out: dict[int, list[Board]] = {pid: [] for pid in pids}
    for board in boards:
        live, _rows, port = board.shows()
        if live and owners.get(port) in out:
            out[owners[port]].append(board)
    return out


def open_boards(server: LiveServer, cookies: dict[str, str], count: int,
                per_worker: int, limit: int = 40) -> list[Board]:
    """At least ``count`` boards (users in turn) and more until every worker holds
    ``per_worker`` of them: which worker accepts a connection is up to the kernel."""
    boards: list[Board] = []
    users = list(cookies)
    try:
        while True:
            spread = boards_by_worker(server, boards) if boards else {}
            if len(boards) >= count and spread and all(
                    len(held) >= per_worker for held in spread.values()):
                return boards
            assert len(boards) < limit, (
                f"{limit} boards and still not {per_worker} on every worker: "
                f"{ {pid: len(held) for pid, held in spread.items()} }")
            user = users[len(boards) % len(users)]
            boards.append(Board(server, user, cookies[user]))
            boards[-1].start()
            boards[-1].wait_live()
    except BaseException:
        for board in boards:
            board.stop()
        raise


# -- the provider -------------------------------------------------------------------------


@dataclass
class Sent:
    """One Placetel delivery and what became of its tries."""

    call: str
    event: str
    form: dict[str, str]
    tries: list[str] = field(default_factory=list)  # status code or error of each try
    accepted: float | None = None  # time.monotonic() of the 2xx answer

    @property
    def key(self) -> str:
        """The event log's ``applied_key`` (``desk.services.ingest``)."""
        return f"placetel:{self.call}:{self.event}"


STATE_AFTER = {"IncomingCall": "ringing", "CallAccepted": "talking", "HungUp": "ended"}
PEERS = {"ann": "777ann@fpbx.de", "bob": "102", "nobody": "777zed@fpbx.de"}  # bob: extension


class Load:
    """Placetel webhooks at a steady ``rate`` a second: calls ring, some are answered (by
    ann, bob or a SIP peer that is no desk user) and hang up, some are missed, about
    ``live_calls`` at a time. A call's next event is sent once its previous one was
    accepted. A delivery answered with anything but 2xx (or not answered) is sent again,
    byte for byte, with backoff until accepted, as Placetel retries. Every delivery is kept
    in ``sent``. Starts paused."""

    def __init__(self, url: str, rate: float = 25.0, live_calls: int = 12,
                 senders: int = 8, seed: int = 7) -> None:
        self.url = url + "/webhooks/placetel"
        self.rate, self.live_calls = rate, live_calls
        self.random = random.Random(seed)
        self.tag = uuid.uuid4().hex[:6]
        self.sent: list[Sent] = []
        self.retries = 0
        self.refused = 0  # 4xx answers: the desk refused a well-formed delivery
        self._calls = 0
        self._plans: dict[str, list[dict[str, str]]] = {}
        self._waiting: dict[str, Sent] = {}  # a call's delivery not yet accepted
        self._lock = threading.Condition()
        self._queue: list[Sent] = []
        self._running = threading.Event()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._schedule, name="load", daemon=True)]
        self._threads += [threading.Thread(target=self._send, name=f"sender-{i}", daemon=True)
                          for i in range(senders)]
        for thread in self._threads:
            thread.start()

    def _plan(self) -> tuple[str, list[dict[str, str]]]:
        self._calls += 1
        call = f"flt{self.tag}-{self._calls}"
        number = f"04{self._calls:07d}"
        base = {"call_id": call, "from": number, "to": "0221", "direction": "in"}
        kind = self.random.choices(["ann", "bob", "nobody", "missed"], [35, 25, 15, 25])[0]
        steps = [{**base, "event": "IncomingCall"}]
        if kind == "missed":
            steps.append({**base, "event": "HungUp", "type": "missed", "duration": "0"})
        else:
            steps.append({**base, "event": "CallAccepted", "peer": PEERS[kind]})
            steps.append({**base, "event": "HungUp", "type": "accepted",
                          "duration": str(self.random.randint(5, 300))})
        return call, steps

    def _schedule(self) -> None:
        interval = 1.0 / self.rate
        next_at = time.monotonic()
        while not self._stop.is_set():
            if not self._running.is_set():
                self._running.wait(0.2)
                next_at = time.monotonic()
                continue
            next_at += interval
            self._stop.wait(max(0.0, next_at - time.monotonic()))
            with self._lock:
                ready = [c for c in self._plans if c not in self._waiting]
                if len(self._plans) < self.live_calls or not ready:
                    if len(self._plans) >= self.live_calls * 4:
                        continue  # every call is stuck in retries: do not pile up more
                    call, steps = self._plan()
                    self._plans[call] = steps
                else:
                    call = self.random.choice(ready)
                form = self._plans[call].pop(0)
                if not self._plans[call]:
                    del self._plans[call]
                sent = Sent(call, form["event"], form)
                self.sent.append(sent)
                self._waiting[call] = sent
                self._queue.append(sent)
                self._lock.notify()

    def _send(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                while not self._queue and not self._stop.is_set():
                    self._lock.wait(0.5)
                if self._stop.is_set():
                    return
                sent = self._queue.pop(0)
            backoff = 0.2
            while not self._stop.is_set():
                try:
                    answer = requests.post(self.url, data=sent.form, auth=PLACETEL_AUTH,
                                           timeout=5)
                    sent.tries.append(str(answer.status_code))
                    if 200 <= answer.status_code < 300:
                        break
                    if 400 <= answer.status_code < 500:
                        self.refused += 1
                except requests.RequestException as exc:
                    sent.tries.append(type(exc).__name__)
                self.retries += 1
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 2.0)
            with self._lock:
                sent.accepted = time.monotonic()
                if self._waiting.get(sent.call) is sent:
                    del self._waiting[sent.call]
                self._lock.notify_all()

    def resume(self) -> None:
        self._running.set()

    def pause(self) -> None:
        self._running.clear()

    def wait_accepted(self, timeout: float) -> bool:
        """Wait until every delivery sent so far was accepted (pause first)."""
        with self._lock:
            return self._lock.wait_for(lambda: not self._waiting, timeout)

    def stop(self) -> None:
        self._stop.set()
        self._running.set()
        with self._lock:
            self._lock.notify_all()
        for thread in self._threads:
            thread.join(timeout=10)


# -- the desk under faults ------------------------------------------------------------------


@dataclass
class FaultResult:
    """One fault and the recovery from it. Times in seconds."""

    fault: str
    lasted: float  # the fault itself (start of the fault to its end)
    deliveries: int  # sent from the start of the fault until load paused
    retried: int  # tries that were not accepted during that time
    accepted_after: float  # fault end → every delivery accepted (includes load_after)
    correct_after: float | None  # fault end → every board correct; None: never
    settle: float | None  # every delivery accepted → every board correct
    render_failures: int  # "render failed" lines the server logged meanwhile
    difference: str = ""  # how boards still differed, when they never got right

    def summary(self) -> str:
        if self.settle is None:
            return (f"{self.fault}: boards never matched a fresh snapshot: {self.difference}")
        return (f"{self.fault}: every board correct {self.settle:.2f} s after the last "
                f"delivery was accepted ({self.correct_after:.2f} s after the {self.lasted:.2f}"
                f" s fault; {self.deliveries} deliveries, {self.retried} tries refused or "
                f"unanswered, {self.render_failures} failed renders logged)")


@dataclass
class Accounting:
    sent: int
    unaccepted: list[str]
    lost: list[str]  # accepted, but not in the event log
    twice: list[str]  # applied more than once (event log or call rows)
    wrong: list[str]  # calls whose row is not in the state their last delivery set
    refused: int


class FaultDesk:
    """The desk under gunicorn with 2 workers on a private PostgreSQL database (its role
    with ``lock_timeout``) and a private Redis, ``boards`` open boards spread over both
    workers, and a paused ``Load``. ``run_fault`` breaks one thing and measures."""

    def __init__(self, postgres: PrivatePostgres, redis: PrivateRedis, *,
                 database: str = "faults", boards: int = 12, rate: float = 25.0,
                 load_before: float = 2.0, load_after: float = 3.0,
                 deadline: float = 15.0) -> None:
        self.postgres, self.redis = postgres, redis
        self.database = database
        self.load_before, self.load_after, self.deadline = load_before, load_after, deadline
        url = postgres.create_database(database, "desk", lock_timeout=LOCK_TIMEOUT)
        self.env = desk_env(url, DESK_REDIS_URL=redis.url,
                            DESK_REDIS_CHANNEL=f"desk:{database}")
        prepare(self.env, PASSWORD)
        self.server = LiveServer(self.env, workers=2)
        self.boards: list[Board] = []
        self.load: Load | None = None
        try:
            wait_workers(self.server, 2)
            self.cookies = {name: cookie_of(self.server.login(name, PASSWORD))
                            for name in USERS}
            self.boards = open_boards(self.server, self.cookies, boards, per_worker=3)
            self.load = Load(self.server.url, rate=rate)
        except BaseException:
            self.close()
            raise
        self.faults: dict[str, Callable[[], None]] = {
            "redis-restart": self.restart_redis,
            "postgres-restart": self.restart_postgres,
            "worker-kill-9": self.kill_worker,
            "render-failure": self.break_rendering,
        }

    # -- the faults ------------------------------------------------------------------------
    def restart_redis(self) -> None:
        self.redis.stop()
        time.sleep(REDIS_DOWN)  # the outage itself
        self.redis.start()

    def restart_postgres(self) -> None:
        self.postgres.restart()

    def kill_worker(self) -> None:
        """``kill -9`` the worker holding the most boards; over when gunicorn has forked
        its replacement."""
        spread = boards_by_worker(self.server, self.boards)
        victim = max(spread, key=lambda pid: len(spread[pid]))
        os.kill(victim, signal.SIGKILL)
        wait_workers(self.server, 2, gone=victim)

    def break_rendering(self) -> None:
        """Take the desk's right to read ``users`` away for ``RENDER_BREAK`` seconds, and
        on until a render has failed: every render (it joins each call's agent) fails,
        while ringing calls still commit. A
        probe call rung inside that window makes sure a committed change is rendered while
        it lasts (the load alone may commit nothing that is rendered in it)."""
        import psycopg

        probe = f"probe-{uuid.uuid4().hex[:6]}"
        mark = self.log_size()
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{self.postgres.port}/"
                             f"{self.database}", autocommit=True) as conn:
            conn.execute("REVOKE SELECT ON users FROM desk")
            try:
                until = time.monotonic() + RENDER_BREAK  # the fault's length
                self._send_until_accepted(event="IncomingCall", call_id=probe, to="0221",
                                          **{"from": "0999000"})
                time.sleep(max(0.5, until - time.monotonic()))
                # A loaded machine may render the probe later than the window: the fault
                # lasts until a render has failed (or RENDER_WAIT more seconds have passed).
                give_up = time.monotonic() + RENDER_WAIT
                while (not RENDER_FAILED.search(self.log_since(mark))
                       and time.monotonic() < give_up):
                    time.sleep(0.05)
            finally:
                conn.execute("GRANT SELECT ON users TO desk")
        self._send_until_accepted(event="HungUp", call_id=probe, type="missed", duration="0")

    def _send_until_accepted(self, **form: str) -> None:
        deadline = time.monotonic() + 30
        while True:
            try:
                if self.server.placetel(**form).ok:
                    return
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, f"the desk never accepted {form}"
            time.sleep(0.05)

    # -- measuring -------------------------------------------------------------------------
    def log_size(self) -> int:
        return os.fstat(self.server.log.fileno()).st_size

    def log_since(self, offset: int) -> str:
        """The server's output from ``offset`` on (read without moving the file position
        the server writes at)."""
        size = self.log_size()
        return os.pread(self.server.log.fileno(), max(0, size - offset), offset).decode(
            errors="replace")

    def differences(self) -> list[str]:
        """How each board differs from a fresh snapshot of its user (empty: all correct)."""
        truth: dict[str, BoardRows] = {}
        for user, cookie in self.cookies.items():
            try:
                truth[user] = fresh_snapshot(self.server, cookie)
            except (ConnectionClosed, InvalidHandshake, OSError, TimeoutError) as exc:
                return [f"no fresh snapshot for {user}: {exc!r}"]
        out = []
        for index, board in enumerate(self.boards):
            live, rows, _port = board.shows()
            if not live:
                out.append(f"board {index} ({board.user}) is reconnecting")
                continue
            problem = difference(rows, truth[board.user])
            if problem:
                out.append(f"board {index} ({board.user}): {problem}")
        return out

    def converge(self, deadline: float) -> tuple[float | None, list[str]]:
        """Seconds until every board is correct (None if not within ``deadline``) and, if
        never, how they still differ."""
        started = time.monotonic()
        while True:
            problems = self.differences()
            elapsed = time.monotonic() - started
            if not problems:
                return elapsed, []
            if elapsed > deadline:
                return None, problems
            time.sleep(0.05)

    def resync(self) -> None:
        """Make every board correct before a fault, whatever the last one left: a board
        still wrong is reconnected (a fresh snapshot). Fails if even that does not help."""
        if self.converge(1.0)[0] is not None:
            return
        for board in self.boards:
            board.drop()
        seconds, problems = self.converge(self.deadline)
        assert seconds is not None, f"boards wrong even after reconnecting: {problems}"

    def run_fault(self, name: str) -> FaultResult:
        assert self.load is not None
        fault = self.faults[name]
        self.resync()
        self.load.resume()
        time.sleep(self.load_before)  # steady load before the fault
        mark, first, retries = self.log_size(), len(self.load.sent), self.load.retries
        started = time.monotonic()
        fault()
        ended = time.monotonic()
        time.sleep(self.load_after)  # and after it
        self.load.pause()
        assert self.load.wait_accepted(60), (
            f"{name}: deliveries still not accepted a minute after the fault: "
            f"{[s.tries for s in self.load.sent if s.accepted is None][:5]}\n"
            f"{self.server.output()}")
        quiet = time.monotonic()
        settle, problems = self.converge(self.deadline)
        done = time.monotonic()
        return FaultResult(
            fault=name, lasted=ended - started, deliveries=len(self.load.sent) - first,
            retried=self.load.retries - retries, accepted_after=quiet - ended,
            correct_after=None if settle is None else done - ended, settle=settle,
            render_failures=len(RENDER_FAILED.findall(self.log_since(mark))),
            difference=" | ".join(problems[:3])
            + (f" | and {len(problems) - 3} more boards" if len(problems) > 3 else ""),
        )

    def account(self) -> Accounting:
        """Pause the load, wait for every delivery, and hold the event log against what was
        sent: each accepted delivery applied exactly once, each call one row in the state
        its last delivery left."""
        from sqlalchemy import create_engine, text

        assert self.load is not None
        self.load.pause()
        self.load.wait_accepted(60)
        sent = list(self.load.sent)
        engine = create_engine(self.postgres.url(self.database))
        try:
            with engine.connect() as conn:
                applied: dict[str, int] = dict(conn.execute(text(
                    "SELECT applied_key, count(*) FROM deliveries WHERE status = 'applied' "
                    "AND provider = 'placetel' AND provider_call_id LIKE :p "
                    "GROUP BY applied_key"), {"p": f"flt{self.load.tag}-%"}).all())
                calls: dict[str, list[str]] = {}
                for call, state in conn.execute(text(
                        "SELECT provider_call_id, state FROM calls WHERE provider = 'placetel'"
                        " AND provider_call_id LIKE :p"), {"p": f"flt{self.load.tag}-%"}):
                    calls.setdefault(call, []).append(state)
        finally:
            engine.dispose()
        last: dict[str, str] = {}
        for delivery in sent:
            if delivery.accepted is not None:
                last[delivery.call] = STATE_AFTER[delivery.event]
        keys = {delivery.key for delivery in sent}
        return Accounting(
            sent=len(sent),
            unaccepted=[d.key for d in sent if d.accepted is None],
            lost=sorted(k for k in keys if applied.get(k, 0) == 0),
            twice=sorted([k for k, n in applied.items() if n > 1]
                         + [c for c, states in calls.items() if len(states) > 1]),
            wrong=sorted(f"{c}: {calls.get(c)} (expected {s})" for c, s in last.items()
                         if calls.get(c) != [s]),
            refused=self.load.refused,
        )

    def close(self) -> None:
        try:
            if self.load is not None:
                self.load.stop()
            for board in self.boards:
                board.stop()
        finally:
            self.server.stop()


FAULTS = ("redis-restart", "postgres-restart", "worker-kill-9", "render-failure")


# -- the tests ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def services() -> Iterator[tuple[PrivatePostgres, PrivateRedis]]:
    postgres = PrivatePostgres()
    redis_server = PrivateRedis()
    try:
        postgres.start()
        redis_server.start()
        yield postgres, redis_server
    finally:
        redis_server.stop()
        postgres.remove()


@pytest.fixture(scope="module")
def desk(services: tuple[PrivatePostgres, PrivateRedis]) -> Iterator[FaultDesk]:
    running = FaultDesk(*services)
    try:
        yield running
    finally:
        running.close()


def test_the_first_change_after_start_reaches_the_other_workers_boards(
    services: tuple[PrivatePostgres, PrivateRedis],
) -> None:
    """A fresh desk whose users are already available (so logging in commits nothing):
    boards on both workers, then one webhook, the first change either worker ever makes.
    Whichever worker takes it, the other one's boards must show it."""
    postgres, redis_server = services
    url = postgres.create_database("first", "desk")
    env = desk_env(url, DESK_REDIS_URL=redis_server.url, DESK_REDIS_CHANNEL="desk:first")
    prepare(env, PASSWORD)
    postgres.execute("UPDATE users SET presence = 'available'", database="first")
    server = LiveServer(env, workers=2)
    boards: list[Board] = []
    try:
        wait_workers(server, 2)
        cookies = {name: cookie_of(server.login(name, PASSWORD)) for name in USERS}
        boards = open_boards(server, cookies, count=len(USERS), per_worker=1)
        spread = {pid: len(held) for pid, held in boards_by_worker(server, boards).items()}
        sent = time.monotonic()
        answer = requests.post(server.url + "/webhooks/placetel", auth=PLACETEL_AUTH, timeout=5,
                               data={"event": "IncomingCall", "call_id": "first-1",
                                     "from": "0700111", "to": "0221"})
        assert answer.ok, answer.text
        deadline = sent + 10
        missing = boards
        while missing and time.monotonic() < deadline:
            time.sleep(0.02)
            missing = [b for b in boards if not any(
                row.fields[4] == "0700111" and row.state == "ringing"
                for _list, row in b.shows()[1].rows())]
        assert not missing, (
            f"the first change never reached {len(missing)} of {len(boards)} boards (boards "
            f"per worker {spread}) in 10 s: {[b.user for b in missing]}\n{server.output()}")
        print(f"\nfirst change: on all {len(boards)} boards ({spread} per worker) after "
              f"{time.monotonic() - sent:.2f} s")
    finally:
        try:
            for board in boards:
                board.stop()
        finally:
            server.stop()


@pytest.mark.parametrize("fault", FAULTS)
def test_every_board_shows_the_live_truth_after(desk: FaultDesk, fault: str) -> None:
    result = desk.run_fault(fault)
    print("\n" + result.summary())
    if fault == "render-failure":
        assert result.render_failures, (
            "holding the users table locked made no render fail; the fault did not happen:\n"
            + desk.server.output())
    assert result.settle is not None, (
        f"{fault}: {desk.deadline:g} s after the last delivery was accepted, boards still "
        f"differ from a fresh snapshot: {result.difference}")


def test_no_delivery_lost_or_applied_twice(desk: FaultDesk) -> None:
    books = desk.account()
    print(f"\n{books.sent} deliveries sent, {books.refused} answered 4xx")
    assert books.sent > 0
    assert not books.unaccepted, f"never accepted: {books.unaccepted[:10]}"
    assert not books.lost, f"{len(books.lost)} accepted deliveries not applied: {books.lost[:10]}"
    assert not books.twice, f"applied twice: {books.twice[:10]}"
    assert not books.wrong, f"calls not in the state of their last delivery: {books.wrong[:10]}"
    assert not books.refused, f"{books.refused} deliveries refused with 4xx"
