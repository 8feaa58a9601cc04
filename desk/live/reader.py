"""What reads a board's socket under gevent, in place of a reader thread per board.

simple-websocket (under flask-sock) starts a thread per connection that blocks reading the
socket, answers pings and sends its own every ``ping_interval``. Under gevent that thread is
a greenlet, parked for the board's whole life with its stack: about a third of what an open
board cost the worker. ``LoopReader`` is given to simple-websocket as its ``thread_class``
(``SOCK_SERVER_OPTIONS``, set by ``use_loop_readers``): instead of a greenlet it starts two
watchers on gevent's loop, one for the socket becoming readable and one timer for the
pings. Each event runs exactly one turn of simple-websocket's own reader loop
(``Base._thread``: read, ``_handle_events``; or the ping and its pong check) in a greenlet
that lives only for that turn, so what the protocol does is still simple-websocket's code.

A board's handler stops the watchers when it ends (``stop``), before gunicorn closes the
socket, so a watcher never outlives its file descriptor. It also names its ``Board``: what
this reader writes (a ping, a pong, the answer to a close) then goes out under the board's
lock, between two frames, never inside a frame the hub or the handler is still writing
(a thread of its own wrote pings whenever they fell due, so a ping could land in the middle
of a snapshot that was still being sent, and two greenlets could wait on one socket).
"""

from __future__ import annotations

import contextlib
import socket as stdlib_socket
from collections.abc import Callable
from typing import Any

from wsproto.events import Ping
from wsproto.frame_protocol import CloseReason
from wsproto.utilities import LocalProtocolError

from desk.live.hub import Board, Rest


class LoopReader:
    """Quacks like the ``threading.Thread`` simple-websocket starts; see the module."""

    def __init__(self, target: Callable[[], None]) -> None:
        self.ws: Any = getattr(target, "__self__")  # noqa: B009  (Base._thread, bound)
        self.name = "desk-ws-reader(_thread)"
        self._io: Any = None
        self._timer: Any = None
        self._busy = False  # a turn's greenlet is running: no second one meanwhile
        self._stopped = False
        self.board: Board | None = None  # set by the board's handler (see the module)

    def start(self) -> None:
        import gevent

        ws = self.ws
        loop = gevent.get_hub().loop
        self._raw = getattr(ws.sock, "_sock", ws.sock)
        self._io = loop.io(self._raw.fileno(), 1)  # 1: readable
        self._io.start(self._readable)
        if ws.ping_interval:
            self._timer = loop.timer(ws.ping_interval, ws.ping_interval)
            self._timer.start(self._ping_due)

    def is_alive(self) -> bool:
        return self._io is not None and not self._stopped

    def join(self, timeout: float | None = None) -> None:
        """Nothing to wait for: a turn never blocks for long."""

    def stop(self) -> None:
        """Stop watching (the board's handler ends); the socket is gunicorn's to close."""
        self._stopped = True
        for watcher in (self._io, self._timer):
            if watcher is not None:
                watcher.stop()
                watcher.close()
        self._io = self._timer = None

    # -- turns (each in a short greenlet: they may send, which may wait) ------------------
    def _readable(self) -> None:
        # The watcher is level-triggered: paused until this turn has read what is there.
        self._io.stop()
        self._turn(self._read)

    def _ping_due(self) -> None:
        self._turn(self._ping)

    def _turn(self, work: Callable[[], None]) -> None:
        import gevent

        if self._stopped:
            return
        if self._busy:  # a ping falling due while a read runs: the next one is sent
            return
        self._busy = True
        gevent.spawn(self._run, work)

    def _run(self, work: Callable[[], None]) -> None:
        try:
            if self.ws.connected:
                work()
        except (OSError, LocalProtocolError):
            self.ws.connected = False
        finally:
            self._busy = False
        if not self.ws.connected:
            self._end()
        elif not self._stopped and not self._io.active:
            self._io.start(self._readable)

    def _read(self) -> None:
        ws = self.ws
        try:
            data = self._raw.recv(ws.receive_bytes, stdlib_socket.MSG_DONTWAIT)
        except BlockingIOError:
            return
        if not data:
            raise OSError("the board closed its connection")
        ws.ws.receive_data(data)
        if self.board is None:
            ws.connected = ws._handle_events()
            return
        with self.board.lock:  # an answer goes out between frames, not inside one
            ws.connected = ws._handle_events()

    def _ping(self) -> None:
        board = self.board
        if board is None:
            self._ping_now()
            return
        if not board.lock.acquire(blocking=False):
            return  # a frame is being written: this round's ping is skipped
        try:
            if not (board.outbox.items and isinstance(board.outbox.items[0], Rest)):
                self._ping_now()  # (with a frame's end still to send, it waits a round)
        finally:
            board.lock.release()

    def _ping_now(self) -> None:
        ws = self.ws
        if not ws.pong_received:
            ws.close(reason=CloseReason.POLICY_VIOLATION, message="Ping/Pong timeout")
            ws.event.set()
            return
        ws.pong_received = False
        ws.sock.send(ws.ws.send(Ping()))

    def _end(self) -> None:
        """As simple-websocket's thread ends: the board is gone, its handler wakes, and the
        socket is closed, so a handler still waiting to write to it stops waiting."""
        self.ws.connected = False
        self.ws.event.set()
        self.stop()
        with contextlib.suppress(OSError):
            self.ws.sock.close()


def use_loop_readers(options: dict[str, Any]) -> None:
    """Give simple-websocket ``LoopReader`` for its reader thread when gevent has patched
    sockets (gunicorn's gevent worker); elsewhere (the development server) threads stay."""
    try:
        from gevent import monkey
    except ImportError:
        return
    if monkey.is_module_patched("socket"):
        options["thread_class"] = LoopReader
