"""Fan-out across processes through Redis, and what happens when Redis goes away."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import PASSWORD
from tests.servers import LiveServer, desk_env, flask_cli, prepare, recv_until
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


def test_redis_outage_keeps_every_board_live_warns_and_recovers(tmp_path: Path) -> None:
    """With Redis down, local boards update at once and the other process's boards catch
    up from the live change sequence in the database; when Redis is back the warning goes
    and nobody has to reload."""
    redis_server = PrivateRedis()
    redis_server.start()
    env = desk_env(f"sqlite:///{tmp_path / 'desk.sqlite3'}", DESK_REDIS_URL=redis_server.url)
    prepare(env, PASSWORD)
    a, b = LiveServer(env), LiveServer(env)
    try:
        with a.board(a.login("sue", PASSWORD)) as on_a, b.board(b.login("ann", PASSWORD)) as on_b:
            assert "unavailable" not in on_a.recv(timeout=5)
            on_b.recv(timeout=5)
            redis_server.stop()
            banner = recv_until(on_a, "Live fan-out through Redis is unavailable", timeout=10)
            assert 'id="desk-status"' in banner
            assert b.placetel(event="IncomingCall", call_id="o-1", **{"from": "0501"},
                              to="0221").ok
            assert "0501" in recv_until(on_b, 'data-state="ringing"')  # delivered locally
            # b could not publish it; a read it from the database.
            assert "0501" in recv_until(on_a, 'data-state="ringing"', timeout=10)
            deadline = time.monotonic() + 30  # each process says so when it next tries Redis
            while "Redis unreachable" not in a.output() + b.output():
                assert time.monotonic() < deadline, b.output()
                time.sleep(0.1)

            redis_server.start()
            cleared = recv_until(on_a, 'id="desk-status"', timeout=20)
            assert "unavailable" not in cleared
            assert b.placetel(event="HungUp", call_id="o-1", type="missed", duration="0").ok
            assert "0501" in recv_until(on_a, 'data-state="ended"', timeout=10)
    finally:
        a.stop()
        b.stop()
        redis_server.stop()


def test_a_change_nobody_published_reaches_the_other_processes_boards(tmp_path: Path) -> None:
    """A commit whose process never publishes it (here: a CLI process with no Redis
    configured, so exactly like one killed between commit and publish) still reaches
    boards: every process reads the numbered changes it has not seen."""
    env = desk_env(f"sqlite:///{tmp_path / 'desk.sqlite3'}", DESK_REDIS_URL=shared_redis_url(),
                   DESK_REDIS_CHANNEL=f"desk:test:{tmp_path.name}", DESK_SWEEP_INTERVAL="0")
    prepare(env, PASSWORD)
    server = LiveServer(env)
    try:
        with server.board(server.login("sue", PASSWORD)) as board:
            board.recv(timeout=5)
            assert server.placetel(event="IncomingCall", call_id="u-1", **{"from": "0701"},
                                   to="0221").ok
            assert "0701" in recv_until(board, 'data-state="ringing"')
            quiet = {**env, "DESK_REDIS_URL": "", "DESK_MAX_SILENCE_RINGING": "10"}
            with sqlite3.connect(tmp_path / "desk.sqlite3") as conn:  # silent for a minute
                ago = "datetime('now', '-60 seconds')"
                conn.execute(f"UPDATE calls SET started_at = {ago}, ringing_at = {ago}")
                conn.execute(f"UPDATE deliveries SET received_at = {ago}")
            assert "Closed 1 call" in flask_cli(quiet, "calls", "sweep")
            assert "0701" in recv_until(board, 'data-state="ended"', timeout=10)
    finally:
        server.stop()


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
