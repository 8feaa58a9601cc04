"""End to end on a real server: webhook over HTTP in, websocket frame out.

The desk runs under gunicorn with the gevent worker (the production set-up in README);
boards are real websocket clients holding a logged-in session.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.conftest import PASSWORD
from tests.servers import LiveServer, desk_env, recv_until, running_desk, tail

CALL = "5b3a1c0f9e7d2a4b6c8e0f1a3b5c7d9e1f3a5b7c9d1e3f5a7b9c1d3e5f7a9b1c"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    path: Path = tmp_path_factory.mktemp("live") / "desk.sqlite3"
    env = desk_env(f"sqlite:///{path}")
    with running_desk(env, PASSWORD) as live:
        yield live


def test_board_gets_a_snapshot_then_the_call_as_it_rings_is_answered_and_ends(
    server: LiveServer,
) -> None:
    ann = server.login("ann", PASSWORD)
    with server.board(ann) as board:
        snapshot = board.recv(timeout=5)
        assert 'id="calls-mine"' in snapshot and 'hx-swap-oob="true"' in snapshot

        assert server.placetel(event="IncomingCall", call_id=CALL, to="0221",
                               **{"from": "022129191999"}).status_code == 200
        frame = recv_until(board, 'data-state="ringing"')
        assert 'data-section="calls-queue"' in frame and "022129191999" in frame

        server.placetel(event="CallAccepted", call_id=CALL, peer="777ann@fpbx.de")
        frame = recv_until(board, 'data-state="talking"')
        assert 'data-section="calls-mine"' in frame  # ann answered: it is her call now

        server.placetel(event="HungUp", call_id=CALL, type="accepted", duration="61")
        frame = recv_until(board, 'data-state="ended"')
        assert 'data-section="calls-ended"' in frame and "1:01" in frame


def test_other_agents_and_supervisors_see_it_in_their_own_sections(server: LiveServer) -> None:
    call = "other-" + CALL[:20]
    with server.board(server.login("bob", PASSWORD)) as bob, \
            server.board(server.login("sue", PASSWORD)) as sue:
        bob.recv(timeout=5)
        sue_snapshot = sue.recv(timeout=5)
        assert 'id="agents"' in sue_snapshot
        server.placetel(event="IncomingCall", call_id=call, **{"from": "0301"}, to="0221")
        server.placetel(event="CallAccepted", call_id=call, peer="777ann@fpbx.de")
        assert 'data-section="calls-queue"' in recv_until(bob, 'data-state="talking"')
        frame = recv_until(sue, 'data-state="talking"')
        assert 'data-section="calls-live"' in frame
        assert "Talking with 0301" in frame  # ann's tile, in the same frame as the row


def test_wallboard_counters_catch_up_with_changes_that_came_too_fast(server: LiveServer) -> None:
    """Today's counters are computed at most once a second: calls that ring within that
    second are counted by the deferred render that follows, never dropped."""
    with server.board(server.login("sue", PASSWORD)) as sue:
        snapshot = sue.recv(timeout=5)
        waiting = int(re.search(r'data-counter="waiting">(\d+)<', snapshot).group(1))  # type: ignore[union-attr]
        for n in range(3):
            server.placetel(event="IncomingCall", call_id=f"burst-{n}-{CALL[:16]}",
                            **{"from": f"0301{n}"}, to="0221")
        recv_until(sue, f'data-counter="waiting">{waiting + 3}<')


def test_a_reconnecting_board_gets_a_full_snapshot(server: LiveServer) -> None:
    call = "snap-" + CALL[:20]
    session = server.login("bob", PASSWORD)
    server.placetel(event="IncomingCall", call_id=call, **{"from": "040999"}, to="0221")
    with server.board(session) as board:
        assert f"{call}" not in board.recv(timeout=5)  # ids are internal; the number shows
    with server.board(session) as board:
        assert "040999" in board.recv(timeout=5)


def test_websocket_refuses_anonymous_and_cross_site_boards(server: LiveServer) -> None:
    with server.board(None) as anonymous, pytest.raises(ConnectionClosed) as closed:
        anonymous.recv(timeout=5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008

    ann = server.login("ann", PASSWORD)
    with server.board(ann, Origin="https://evil.example") as board, \
            pytest.raises(ConnectionClosed) as cross:
        board.recv(timeout=5)
    assert cross.value.rcvd is not None and cross.value.rcvd.code == 1008


def test_a_vanished_board_does_not_disturb_the_others(server: LiveServer) -> None:
    call = "gone-" + CALL[:20]
    session = server.login("bob", PASSWORD)
    with server.board(session) as doomed:
        doomed.recv(timeout=5)
        doomed.socket.shutdown(socket.SHUT_RDWR)  # the tab is killed: no close handshake
        with server.board(session) as board:
            board.recv(timeout=5)
            server.placetel(event="IncomingCall", call_id=call, **{"from": "0777"}, to="0221")
            assert "0777" in recv_until(board, 'data-state="ringing"')


def test_webhook_errors_over_http_are_json_not_500(server: LiveServer) -> None:
    assert server.placetel(auth=None, event="IncomingCall", call_id="x").status_code == 401
    assert server.placetel(event="Nope", call_id="x").status_code == 400
    import requests

    big = requests.post(server.url + "/webhooks/placetel", auth=("placetel", "s3cret-pt"),
                        data={"event": "IncomingCall", "call_id": "x", "from": "1" * 1_048_576},
                        timeout=10)
    assert big.status_code == 413


def test_handshake_for_unknown_path_is_not_a_websocket(server: LiveServer) -> None:
    from websockets.sync.client import connect

    with pytest.raises(InvalidStatus):
        connect(f"ws://127.0.0.1:{server.port}/nope", open_timeout=5)


def test_websocket_declines_per_board_compression(server: LiveServer) -> None:
    with server.board(server.login("ann", PASSWORD)) as board:  # the client offers deflate
        board.recv(timeout=5)
        assert board.response.headers.get("Sec-WebSocket-Extensions") is None


def test_a_board_whose_snapshot_fails_is_closed_to_reconnect_not_sent_an_error_page(
    server: LiveServer,
) -> None:
    """After the handshake an HTTP error page on the socket would be a corrupt frame; the
    board must get a proper close (1011, which the htmx extension reconnects on) instead."""
    import sqlite3

    session = server.login("ann", PASSWORD)
    path = server.env["DESK_DATABASE_URL"].removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        conn.execute("ALTER TABLE calls RENAME TO calls_away")  # the snapshot's query fails
    try:
        with server.board(session) as board, pytest.raises(ConnectionClosed) as closed:
            board.recv(timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1011
    finally:
        with sqlite3.connect(path) as conn:
            conn.execute("ALTER TABLE calls_away RENAME TO calls")
    with server.board(session) as board:  # the reconnect gets its snapshot
        assert 'id="calls-mine"' in board.recv(timeout=5)
    log = tail(server.log, 1_000_000)
    assert "a board failed; closing it so that it reconnects" in log and "Invalid HTTP" not in log
