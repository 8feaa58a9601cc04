"""Fan-out across processes through Redis, and what happens when Redis goes away."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed

from tests.conftest import PASSWORD
from tests.servers import LiveServer, desk_env, prepare, recv_until
from tests.services import PrivateRedis, shared_redis_url

log = logging.getLogger(__name__)


@pytest.fixture
def two_servers(tmp_path: Path) -> Iterator[tuple[LiveServer, LiveServer]]:
    """Two separate server processes sharing one database and one Redis."""
    env = desk_env(
        f"sqlite:///{tmp_path / 'desk.sqlite3'}",
        DESK_REDIS_URL=shared_redis_url(),
        DESK_REDIS_CHANNEL=f"desk:test:{tmp_path.name}",
    )
    prepare(env, PASSWORD)
    a, b = LiveServer(env), LiveServer(env)
    yield a, b
    a.stop()
    b.stop()


def test_webhook_on_one_process_updates_boards_on_both(
    two_servers: tuple[LiveServer, LiveServer],
) -> None:
    a, b = two_servers
    with a.board(a.login("ann", PASSWORD)) as on_a, b.board(b.login("bob", PASSWORD)) as on_b:
        on_a.recv(timeout=5)
        on_b.recv(timeout=5)
        assert b.placetel(event="IncomingCall", call_id="r-1", **{"from": "0401"},
                          to="0221").ok
        assert "0401" in recv_until(on_a, 'data-state="ringing"')  # came through Redis
        assert "0401" in recv_until(on_b, 'data-state="ringing"')  # delivered locally
        a.placetel(event="HungUp", call_id="r-1", type="missed", duration="0")
        assert "0401" in recv_until(on_b, 'data-state="ended"')
        assert "0401" in recv_until(on_a, 'data-state="ended"')


def test_redis_outage_keeps_local_boards_live_warns_and_recovers(tmp_path: Path) -> None:
    redis_server = PrivateRedis()
    redis_server.start()
    env = desk_env(f"sqlite:///{tmp_path / 'desk.sqlite3'}", DESK_REDIS_URL=redis_server.url)
    prepare(env, PASSWORD)
    server = LiveServer(env)
    try:
        sue = server.login("sue", PASSWORD)
        with server.board(sue) as board:
            assert "unavailable" not in board.recv(timeout=5)
            redis_server.stop()
            banner = recv_until(board, "Live fan-out through Redis is unavailable", timeout=10)
            assert 'id="desk-status"' in banner
            # Local boards still update while Redis is down.
            assert server.placetel(event="IncomingCall", call_id="o-1", **{"from": "0501"},
                                   to="0221").ok
            assert "0501" in recv_until(board, 'data-state="ringing"')
            assert "Redis unreachable" in server.output()

            redis_server.start()  # back: the board is told to reload (1012), then resyncs
            with pytest.raises(ConnectionClosed) as closed:
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline:
                    board.recv(timeout=deadline - time.monotonic())
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
        with server.board(sue) as board:
            snapshot = board.recv(timeout=5)
            assert "0501" in snapshot and "unavailable" not in snapshot
    finally:
        server.stop()
        redis_server.stop()


@pytest.mark.redis
def test_a_processs_very_first_change_reaches_the_other_processes_boards(
    two_servers: tuple[LiveServer, LiveServer],
) -> None:
    """b commits nothing before the webhook, so the webhook's change is the first b ever
    publishes: it is handed to Redis even before b's own subscriber has connected."""
    import redis

    a, b = two_servers
    with a.board(a.login("sue", PASSWORD)) as on_a:
        on_a.recv(timeout=5)
        client = redis.Redis.from_url(shared_redis_url())
        channel = a.env["DESK_REDIS_CHANNEL"]
        deadline = time.monotonic() + 10  # a's subscriber is listening before b publishes
        while dict(client.pubsub_numsub(channel)).get(channel.encode(), 0) < 1:
            assert time.monotonic() < deadline, "a's subscriber never subscribed"
            time.sleep(0.05)
        client.close()
        assert b.placetel(event="IncomingCall", call_id="first", **{"from": "0601"},
                          to="0221").ok
        assert "0601" in recv_until(on_a, 'data-state="ringing"', timeout=10)
