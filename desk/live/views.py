"""``/ws``: the websocket every open board holds (htmx ws extension on the page).

On every connect — first or after a reconnect — the board gets a full snapshot before any
update, because the htmx extension never replays what it missed. Then this handler is the
only sender on its socket: it drains the board's outbox, filled by the hub's dispatcher.
A board the hub gave up on (too far behind, or a gap in the change sequence too wide to
fill) is closed with 1012 so the extension reconnects and resyncs. Pings come from flask-sock's
``SOCK_SERVER_OPTIONS`` (``DESK_WS_PING_INTERVAL``) so proxies do not cut idle boards.
"""

from __future__ import annotations

import contextlib
import logging
import queue
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, current_app, request
from flask_login import current_user
from simple_websocket import ConnectionClosed

from desk.extensions import db, hub, sock
from desk.i18n import voice_of
from desk.live.frames import Frame, text_frame
from desk.live.hub import RECONNECT, Board
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


def _drain(board: Board, first: object) -> tuple[str, bool]:
    """``first`` plus whatever else is already queued, as one frame; and whether the hub
    asked this board to reconnect. htmx applies every out-of-band element in a frame.
    A lone update comes back as it was queued: a shared ``Frame``, its bytes built once."""
    parts: list[str] = []
    message = first
    for _ in range(BATCH):
        if message is RECONNECT:
            return "".join(parts), True
        parts.append(message)  # type: ignore[arg-type]  # besides RECONNECT, only HTML
        try:
            message = board.outbox.get_nowait()
        except queue.Empty:
            break
    return (parts[0] if len(parts) == 1 else "".join(parts)), False


def _sender(socket: Any) -> Callable[[str], None]:
    """How this socket sends a text frame.

    Without compression (``DESK_WS_COMPRESSION`` off, the default: ``_decline_compression``
    refused the extension) a frame's bytes are the same for every board, so a shared
    ``Frame``'s are built once and written whole (``sendall``: a large snapshot is never
    cut short). With compression the websocket library encodes it per connection.
    """
    if current_app.config["DESK_WS_COMPRESSION"] or not hasattr(socket, "sock"):
        return socket.send
    raw = socket.sock

    def send(text: str) -> None:
        if not socket.connected:
            raise ConnectionClosed(socket.close_reason, socket.close_message)
        raw.sendall(text.wire() if isinstance(text, Frame) else text_frame(text))

    return send


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
        db.session.remove()


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
    # The log-in lookup's connection goes back before the snapshot takes its own: a board
    # holding one while waiting for another starves the pool when many open at once (every
    # board reconnects after a restart), until each waits out the pool's timeout.
    db.session.remove()
    hub.register(board)  # before the snapshot, so nothing committed after it is missed
    try:
        with db.consistent_read() as session:  # one moment: no call listed twice
            snapshot = render_snapshot(session, user)
        send = _sender(socket)
        with board.lock:
            send(snapshot)
        while socket.connected:
            try:
                first = board.outbox.get(timeout=POLL)
            except queue.Empty:
                continue
            frame, reconnect = _drain(board, first)
            if frame:
                with board.lock:
                    send(frame)
            if reconnect:
                socket.close(reason=1012, message="Reload: the board fell behind.")
                break
    finally:
        hub.unregister(board)
