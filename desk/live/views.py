"""``/ws``: the websocket every open board holds (htmx ws extension on the page).

On every connect — first or after a reconnect — the board gets a full snapshot before any
update, because the htmx extension never replays what it missed. Then the hub's dispatcher
writes each update straight to the socket when it can do so without waiting
(``Board.write``); what it cannot, waits in the board's outbox, which this handler drains.
The board's lock keeps the two from writing at once, and the updates in order.
A board the hub gave up on (too far behind, or a gap in the change sequence too wide to
fill) is closed with 1012 so the extension reconnects and resyncs. Pings come from flask-sock's
``SOCK_SERVER_OPTIONS`` (``DESK_WS_PING_INTERVAL``) so proxies do not cut idle boards.
"""

from __future__ import annotations

import contextlib
import logging
import socket as stdlib_socket
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, current_app, request
from flask_login import current_user
from simple_websocket import ConnectionClosed

from desk.extensions import db, hub, sock
from desk.i18n import voice_of
from desk.live.frames import Frame, text_frame
from desk.live.hub import RECONNECT, Board, Rest, Writer
from desk.live.reader import LoopReader
from desk.live.render import render_snapshot

bp = Blueprint("live", __name__)
log = logging.getLogger(__name__)

POLL = 2.0  # seconds between checks that the peer is still there while the outbox is idle
BATCH = 100  # updates already waiting are sent together, as one frame


@bp.before_app_request
def _decline_compression() -> None:
    """Without DESK_WS_COMPRESSION, refuse permessage-deflate for /ws.

    Every update goes to every board; compressing it once per socket was the largest cost
    of fan-out in the benchmark (bench/RESULTS.md). The fragments are small HTML; on a call
    centre's network the CPU matters more than the bytes.
    """
    if request.path == "/ws" and not current_app.config["DESK_WS_COMPRESSION"]:
        request.environ.pop("HTTP_SEC_WEBSOCKET_EXTENSIONS", None)


def _joined(items: list[Any]) -> tuple[list[Any], bool]:
    """What to write for ``items`` taken from an outbox, and whether the hub asked this
    board to reconnect: the end of a frame already begun (``Rest``, raw bytes) first, then
    every update as one frame (htmx applies every out-of-band element in a frame). A lone
    update stays as it was queued: a shared ``Frame``, its bytes built once."""
    out: list[Any] = []
    if items and isinstance(items[0], Rest):
        out.append(items.pop(0))
    reconnect = RECONNECT in items
    if reconnect:
        items = items[:items.index(RECONNECT)]
    if items:
        out.append(items[0] if len(items) == 1 else "".join(items))
    return out, reconnect


def _sender(socket: Any) -> Callable[[str | bytes], None]:
    """How this socket sends a text frame (or the raw ``Rest`` of one).

    Without compression (``DESK_WS_COMPRESSION`` off, the default: ``_decline_compression``
    refused the extension) a frame's bytes are the same for every board, so a shared
    ``Frame``'s are built once and written whole (``sendall``: a large snapshot is never
    cut short). With compression the websocket library encodes it per connection.
    """
    if current_app.config["DESK_WS_COMPRESSION"] or not hasattr(socket, "sock"):
        return socket.send
    raw = socket.sock

    def send(text: str | bytes) -> None:
        if not socket.connected:
            raise ConnectionClosed(socket.close_reason, socket.close_message)
        if isinstance(text, bytes):
            raw.sendall(text)
        else:
            raw.sendall(text.wire() if isinstance(text, Frame) else text_frame(text))

    return send


def _writer(socket: Any) -> Writer | None:
    """A write that never waits, for the hub to send updates straight to this socket
    (``Board.write``); None with compression, where frames differ per connection.

    Under gevent the socket wraps a non-blocking OS socket, which it keeps as ``_sock``;
    ``MSG_DONTWAIT`` makes a blocking one (the threaded development server) behave alike.
    """
    if current_app.config["DESK_WS_COMPRESSION"] or not hasattr(socket, "sock") \
            or not hasattr(stdlib_socket, "MSG_DONTWAIT"):
        return None
    target = getattr(socket.sock, "_sock", socket.sock)

    def write(data: bytes) -> int:
        if not socket.connected:
            raise BrokenPipeError("the board has closed")
        return int(target.send(data, stdlib_socket.MSG_DONTWAIT))

    return write


def _same_origin() -> bool:
    """Refuse cross-site websocket hijacking: the Origin must be this desk's own."""
    origin = request.headers.get("Origin")
    if not origin:
        return True  # not a browser; the session cookie still has to be valid
    return urlsplit(origin).netloc == request.host


@sock.route("/ws", bp=bp)
def ws(socket: Any) -> None:
    try:
        _serve(socket)
    except (ConnectionClosed, OSError):  # the board went away (reset, broken pipe)
        pass
    except Exception:
        # After the handshake the socket is no longer HTTP: an error page written on it
        # would reach the browser as a corrupt frame, and the server would go on reading
        # websocket frames as requests. Close it properly instead; the board reconnects.
        log.exception("a board failed; closing it so that it reconnects")
        with contextlib.suppress(ConnectionClosed, OSError):
            socket.close(reason=1011, message="The desk hit an error; reconnecting.")
    finally:
        reader = getattr(socket, "thread", None)
        if isinstance(reader, LoopReader):
            reader.stop()  # before gunicorn closes the socket it watches
        db.session.remove()


def _open(board: Board, socket: Any, send: Callable[[str | bytes], None], user: Any) -> None:
    """Send ``board`` its snapshot, then let the hub write updates straight to its socket.

    A function of its own so that the snapshot (the whole board, tens of KiB with a busy
    desk) is freed once sent, not held by the handler's frame for as long as the board is
    open: kept, it was most of a board's memory.
    """
    with db.consistent_read() as session:  # one moment: no call listed twice
        snapshot = render_snapshot(session, user)
    with board.lock:
        send(snapshot)
        board.write = _writer(socket)  # from now on the hub may write updates itself


def _serve(socket: Any) -> None:
    if not current_user.is_authenticated:
        socket.close(reason=1008, message="Log in first.")
        return
    if not _same_origin():
        socket.close(reason=1008, message="Cross-site websocket refused.")
        return
    user = current_user._get_current_object()
    board = Board(
        user_id=user.id, role=user.role, max_queue=current_app.config["DESK_BOARD_QUEUE"],
        voice=voice_of(),
    )
    reader = getattr(socket, "thread", None)
    if isinstance(reader, LoopReader):
        reader.board = board  # its pings go out between frames
    # The log-in lookup's connection goes back before the snapshot takes its own: a board
    # holding one while waiting for another starves the pool when many open at once (every
    # board reconnects after a restart), until each waits out the pool's timeout.
    db.session.remove()
    hub.register(board)  # before the snapshot, so nothing committed after it is missed
    try:
        send = _sender(socket)
        _open(board, socket, send, user)
        del user  # the handler lives as long as the board: it keeps only what it needs
        while socket.connected:
            if not board.outbox.ready.wait(POLL):
                continue
            with board.lock:
                board.outbox.ready.clear()
                out, reconnect = _joined(board.take(BATCH))
                for data in out:
                    send(data)
            if reconnect:
                socket.close(reason=1012, message="Reload: the board fell behind.")
                break
    finally:
        hub.unregister(board)
