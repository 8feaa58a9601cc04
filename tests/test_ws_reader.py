"""A board's socket under gunicorn's gevent worker, read by ``desk.live.reader.LoopReader``.

The client here is wsproto over a plain socket, so the test sees every frame the desk
sends (its pings, its close codes) and decides itself whether to answer: the pings keep
coming and the board stays live while pongs come back; a board that stops answering is
closed with 1008; a client's ping is answered; a board that closes or vanishes is let go
(``desk_boards_open`` falls back), and sockets opened after many have gone work (a watcher
must never outlive its file descriptor).
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator

import pytest
import requests
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    Event,
    Ping,
    Pong,
    Request,
    TextMessage,
)

from tests.conftest import PASSWORD
from tests.servers import LiveServer, desk_env, running_desk

PING_INTERVAL = 1  # seconds: DESK_WS_PING_INTERVAL for this server
WAIT = 20.0  # seconds at most for any state below: generous for a loaded machine
TOKEN = "reader-metrics-token"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    db = tmp_path_factory.mktemp("reader") / "desk.sqlite3"
    env = desk_env(f"sqlite:///{db}", DESK_METRICS_TOKEN=TOKEN)
    env["DESK_WS_PING_INTERVAL"] = str(PING_INTERVAL)
    with running_desk(env, PASSWORD) as live:
        yield live


class RawBoard:
    """A websocket client that answers nothing by itself."""

    def __init__(self, server: LiveServer, cookie: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", server.port), timeout=WAIT)
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.sock.sendall(self.ws.send(Request(
            host=f"127.0.0.1:{server.port}", target="/ws",
            extra_headers=[(b"cookie", cookie.encode())])))
        self.pending: list[Event] = []
        accepted = self.next_event()
        assert isinstance(accepted, AcceptConnection), accepted

    def next_event(self) -> Event:
        deadline = time.monotonic() + WAIT
        while not self.pending:
            assert time.monotonic() < deadline, "no frame from the desk"
            data = self.sock.recv(65536)
            assert data, "the desk closed the connection without a close frame"
            self.ws.receive_data(data)
            self.pending.extend(self.ws.events())
        return self.pending.pop(0)

    def until(self, kind: type[Event], answer_pings: bool = True) -> Event:
        """Events until one of ``kind``; pings on the way answered unless told not to."""
        while True:
            event = self.next_event()
            if isinstance(event, kind):
                return event
            if isinstance(event, Ping) and answer_pings:
                self.sock.sendall(self.ws.send(event.response()))

    def close(self) -> None:
        self.sock.close()


def cookie(server: LiveServer, name: str) -> str:
    session = server.login(name, PASSWORD)
    return "; ".join(f"{c.name}={c.value}" for c in session.cookies)


def boards_open(server: LiveServer) -> int:
    text = requests.get(server.url + "/metrics", timeout=5,
                        headers={"Authorization": f"Bearer {TOKEN}"}).text
    found = re.search(r"^desk_boards_open(?:{[^}]*})? (\S+)$", text, re.M)
    assert found, text[:1000]
    return int(float(found.group(1)))


def wait_for_boards(server: LiveServer, expected: int) -> None:
    deadline = time.monotonic() + WAIT
    while (now := boards_open(server)) != expected:
        assert time.monotonic() < deadline, f"{now} boards open, expected {expected}"
        time.sleep(0.05)


def test_pings_keep_coming_and_an_answering_board_stays_live(server: LiveServer) -> None:
    board = RawBoard(server, cookie(server, "sue"))
    try:
        snapshot = board.until(TextMessage)
        assert 'id="agents"' in snapshot.data  # type: ignore[attr-defined]
        for _ in range(3):  # three rounds of ping and pong: the board is still there
            ping = board.until(Ping, answer_pings=False)
            board.sock.sendall(board.ws.send(ping.response()))  # type: ignore[attr-defined]
        server.placetel(event="IncomingCall", call_id="reader-1", **{"from": "0311"},
                        to="0221")
        while "0311" not in (update := board.until(TextMessage)).data:  # type: ignore[attr-defined]
            assert isinstance(update, TextMessage)
    finally:
        board.close()


def test_a_board_that_stops_answering_pings_is_closed_with_1008(server: LiveServer) -> None:
    board = RawBoard(server, cookie(server, "ann"))
    try:
        closed = board.until(CloseConnection, answer_pings=False)
        assert isinstance(closed, CloseConnection)
        assert (closed.code, closed.reason) == (1008, "Ping/Pong timeout")
    finally:
        board.close()


def test_a_boards_ping_is_answered_with_its_payload(server: LiveServer) -> None:
    board = RawBoard(server, cookie(server, "bob"))
    try:
        board.until(TextMessage)
        board.sock.sendall(board.ws.send(Ping(payload=b"are-you-there")))
        pong = board.until(Pong)
        assert isinstance(pong, Pong) and pong.payload == b"are-you-there"
    finally:
        board.close()


def test_a_board_that_closes_or_vanishes_is_let_go_and_new_ones_work(
    server: LiveServer,
) -> None:
    wait_for_boards(server, 0)
    sue = cookie(server, "sue")
    polite = RawBoard(server, sue)
    polite.until(TextMessage)
    wait_for_boards(server, 1)
    polite.sock.sendall(polite.ws.send(CloseConnection(code=1000, reason="bye")))
    answer = polite.until(CloseConnection)
    assert isinstance(answer, CloseConnection) and answer.code == 1000
    polite.close()
    wait_for_boards(server, 0)

    # Many vanish without a close frame; their file descriptors are soon reused.
    for _ in range(3):
        crowd = [RawBoard(server, sue) for _ in range(30)]
        for board in crowd:
            board.until(TextMessage)
        wait_for_boards(server, 30)
        for board in crowd:
            board.sock.shutdown(socket.SHUT_RDWR)
            board.close()
        wait_for_boards(server, 0)
    last = RawBoard(server, sue)
    try:
        assert 'id="agents"' in last.until(TextMessage).data  # type: ignore[attr-defined]
        board_ping = last.until(Ping, answer_pings=False)
        assert isinstance(board_ping, Ping)
    finally:
        last.close()
    log = server.output()
    assert "Traceback" not in log and "ConcurrentObjectUseError" not in log, log

