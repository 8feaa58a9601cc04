"""Teleforge notifications on the real Redis: taken, applied once, never lost, kept when odd.

Each test uses its own list name on the shared Redis (or a private redis-server it can stop),
and real consumers: ``TeleforgeListener`` in a thread, ``flask --app app teleforge listen`` as
a process that is killed with SIGKILL between taking an item and committing it, and the
consumer inside gunicorn feeding an open board.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
from flask import Flask
from sqlalchemy import select

from desk import create_app
from desk.cli import upgrade_database
from desk.extensions import db
from desk.models import Alert, Call, Delivery
from desk.providers.teleforge.listener import TeleforgeListener, listener_for
from desk.services import ingest
from tests.conftest import PASSWORD, add_user, base_config, login
from tests.servers import BIN, ROOT, LiveServer, desk_env, prepare, recv_until
from tests.services import PrivateRedis, shared_redis_url
from tests.teleforge_standin import TeleforgeStandIn, list_name, notification

pytestmark = pytest.mark.redis


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    """Poll until ``condition()`` is truthy; a deadline, not a speed requirement."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"gave up waiting for {what}")


@pytest.fixture
def queue() -> Iterator[tuple[redis.Redis, str]]:
    client = redis.Redis.from_url(shared_redis_url())
    name = list_name()
    yield client, name
    for key in client.scan_iter(match=name + "*"):
        client.delete(key)
    client.close()


def make_app(tmp_path: Path, **extra: Any) -> Flask:
    app = create_app(base_config(f"sqlite:///{tmp_path / 'desk.sqlite3'}", **extra))
    upgrade_database(app)
    return app


@pytest.fixture
def app(tmp_path: Path, queue: tuple[redis.Redis, str]) -> Iterator[Flask]:
    app = make_app(tmp_path, DESK_TELEFORGE_REDIS_URL=shared_redis_url(),
                   DESK_TELEFORGE_LIST=queue[1])
    yield app
    db.dispose()


def dialling(app: Flask, reference: str) -> int:
    """A row as the dial form leaves it, before any notification."""
    with app.app_context():
        call = ingest.start_outbound(
            db.session, provider="teleforge", provider_call_id=reference, agent_id=None,
            from_number="101", to_number="0820001234", outbound_id="random",
        )
        assert call is not None
        return call.id


def call_state(app: Flask, call_id: int) -> str:
    with app.app_context():
        call = db.session.get(Call, call_id)
        assert call is not None
        db.session.refresh(call)
        return call.state


def rows(app: Flask, model: type) -> list[Any]:
    with app.app_context():
        return list(db.session.scalars(select(model).order_by(model.id)))


def consumer(app: Flask, url: str, name: str) -> TeleforgeListener:
    return TeleforgeListener(app, url, name, block_seconds=0.2)


def test_notifications_move_the_row_through_its_states(
    app: Flask, queue: tuple[redis.Redis, str],
) -> None:
    client, name = queue
    call_id = dialling(app, "crm-1")
    listener = consumer(app, shared_redis_url(), name)
    for status, state in [("ringing", "ringing"), ("answered", "talking"),
                          ("hangup", "ended")]:
        client.lpush(name, notification("crm-1", status, agent="101", duration=42))
        assert listener.step() == "applied"
        assert call_state(app, call_id) == state
    client.lpush(name, notification("crm-1", "ringing", event_id="late"))  # a late ringing
    assert listener.step() == "applied"
    assert call_state(app, call_id) == "ended"
    assert client.llen(name) == 0 and client.llen(listener.processing) == 0
    assert [d.status for d in rows(app, Delivery)] == ["applied"] * 4


def test_a_repeated_notification_is_a_duplicate(app: Flask, queue: tuple[redis.Redis, str]) -> None:
    client, name = queue
    dialling(app, "crm-2")
    listener = consumer(app, shared_redis_url(), name)
    raw = notification("crm-2", "ringing", event_id="e-1")
    client.lpush(name, raw, raw)
    assert [listener.step(), listener.step()] == ["applied", "duplicate"]


@pytest.mark.parametrize(
    "raw",
    [b"garbage", b'{"status": "ringing"}', b"\xff\xfe\x00", b"[1, 2]",
     b'{"callcontact_ref": "crm-3", "status": "teleported"}', b""],
)
def test_unreadable_notifications_are_kept_and_shown_to_supervisors(
    app: Flask, queue: tuple[redis.Redis, str], raw: bytes,
) -> None:
    client, name = queue
    listener = consumer(app, shared_redis_url(), name)
    client.lpush(name, raw)
    assert listener.step() == "rejected"
    (delivery,) = rows(app, Delivery)
    assert (delivery.provider, delivery.status) == ("teleforge", "rejected")
    assert delivery.payload == raw.decode("utf-8", errors="backslashreplace")
    assert delivery.error
    (alert,) = rows(app, Alert)
    assert alert.delivery_id == delivery.id and delivery.error in alert.message
    assert client.llen(name) == 0 and client.llen(listener.processing) == 0
    # ... and the consumer goes on with the next one.
    call_id = dialling(app, "crm-after")
    client.lpush(name, notification("crm-after", "ringing"))
    assert listener.step() == "applied" and call_state(app, call_id) == "ringing"

    add_user(app, "sue", role="supervisor", extension="100")
    supervisor = app.test_client()
    login(supervisor, "sue")
    assert "could not be read" in supervisor.get("/supervisor").get_data(as_text=True)


def test_two_consumers_apply_each_notification_once(
    app: Flask, queue: tuple[redis.Redis, str],
) -> None:
    client, name = queue
    consumers = [consumer(app, shared_redis_url(), name) for _ in range(2)]
    for listener in consumers:
        listener.ensure_started()
    try:
        for i in range(40):
            client.lpush(name, notification(f"many-{i}", "ringing", event_id=f"e{i}"))
        wait_for(lambda: len(rows(app, Delivery)) >= 40, "40 deliveries")
    finally:
        for listener in consumers:
            listener.stop()
        for listener in consumers:
            listener.join(5)
    deliveries = rows(app, Delivery)
    assert len(deliveries) == 40
    assert {d.status for d in deliveries} == {"applied"}
    assert sorted(d.provider_call_id for d in deliveries) == sorted(f"many-{i}" for i in range(40))
    assert all(listener.status.applied for listener in consumers)  # both took a share
    assert client.llen(name) == 0
    assert not list(client.scan_iter(match=name + ":processing:*"))


def test_a_consumer_killed_before_commit_loses_nothing(
    tmp_path: Path, queue: tuple[redis.Redis, str],
) -> None:
    client, name = queue
    path = tmp_path / "desk.sqlite3"
    env = desk_env(f"sqlite:///{path}", DESK_TELEFORGE_REDIS_URL=shared_redis_url(),
                   DESK_TELEFORGE_LIST=name)
    prepare(env, PASSWORD)
    app = make_app(tmp_path, DESK_TELEFORGE_REDIS_URL=shared_redis_url(),
                   DESK_TELEFORGE_LIST=name)
    try:
        call_id = dialling(app, "crm-kill")
        process = subprocess.Popen(
            [str(BIN / "flask"), "--app", "app", "teleforge", "listen"], cwd=ROOT, env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        lock = sqlite3.connect(path, timeout=10, isolation_level=None)
        try:
            lock.execute("BEGIN IMMEDIATE")  # the listener can read, but not commit
            client.lpush(name, notification("crm-kill", "answered", agent="101"))
            held = wait_for(lambda: list(client.scan_iter(match=name + ":processing:*")),
                            "the listener to take the notification")
            assert client.llen(name) == 0 and client.lrange(held[0], 0, -1)
            os.kill(process.pid, signal.SIGKILL)  # between taking and committing
            process.wait(10)
        finally:
            lock.execute("ROLLBACK")
            lock.close()
        assert call_state(app, call_id) == "dialling"  # nothing was committed ...
        assert rows(app, Delivery) == []
        # ... and nothing is lost: the next consumer to start recovers what it held.
        survivor = consumer(app, shared_redis_url(), name)
        wait_for(lambda: survivor.recover(survivor.connect()), "the dead consumer's item")
        assert client.llen(name) == 1
        assert survivor.step() == "applied"
        assert call_state(app, call_id) == "talking"
        assert not list(client.scan_iter(match=name + ":processing:*"))
        survivor.close()
    finally:
        db.dispose()


def test_a_live_consumer_keeps_its_item(app: Flask, queue: tuple[redis.Redis, str]) -> None:
    client, name = queue
    holder = consumer(app, shared_redis_url(), name)
    client.lpush(name, notification("crm-held", "ringing"))
    assert holder.take(holder.connect()) is not None  # taken, not yet applied
    other = consumer(app, shared_redis_url(), name)
    assert other.recover(other.connect()) == 0  # its owner is still connected
    assert holder.step() == "applied"  # the holder finishes what it took first


def test_a_redis_outage_is_survived_and_shown(tmp_path: Path) -> None:
    server = PrivateRedis()
    server.start()
    name = list_name()
    app = make_app(tmp_path, DESK_TELEFORGE_REDIS_URL=server.url, DESK_TELEFORGE_LIST=name)
    listener = listener_for(app)
    assert listener is not None
    listener.block_seconds = 0.2
    add_user(app, "sue", role="supervisor", extension="100")
    supervisor = app.test_client()
    login(supervisor, "sue")
    try:
        listener.ensure_started()  # a test starts the consumer itself
        wait_for(lambda: listener.status.state == "ok", "the consumer to connect")
        assert "not arriving" not in supervisor.get("/teleforge/status").get_data(as_text=True)

        server.stop()
        wait_for(lambda: listener.status.state == "down", "the consumer to notice")
        banner = supervisor.get("/teleforge/status").get_data(as_text=True)
        assert "Teleforge notifications are not arriving" in banner
        assert "unreachable" in banner
        assert "not arriving" in supervisor.get("/supervisor").get_data(as_text=True)

        server.start()  # back: it reconnects by itself and takes what was pushed
        call_id = dialling(app, "crm-outage")
        redis.Redis.from_url(server.url).lpush(name, notification("crm-outage", "ringing"))
        wait_for(lambda: call_state(app, call_id) == "ringing", "the notification", 30)
        assert listener.status.state == "ok"
        assert "not arriving" not in supervisor.get("/teleforge/status").get_data(as_text=True)
    finally:
        listener.stop()
        listener.join(5)
        server.stop()
        db.dispose()


def test_listen_command_needs_a_redis_url(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    try:
        result = app.test_cli_runner().invoke(args=["teleforge", "listen"])
        assert result.exit_code != 0
        assert "DESK_TELEFORGE_REDIS_URL" in result.output
    finally:
        db.dispose()


def test_notifications_move_the_row_on_an_open_board(
    tmp_path: Path, queue: tuple[redis.Redis, str],
) -> None:
    """The whole path: dial from the board, Teleforge's notifications on the real list,
    the consumer inside gunicorn, the row moving on the agent's open board."""
    client, name = queue
    with TeleforgeStandIn() as pbx:
        env = desk_env(f"sqlite:///{tmp_path / 'desk.sqlite3'}", DESK_TELEFORGE_URL=pbx.url,
                       DESK_TELEFORGE_REDIS_URL=shared_redis_url(), DESK_TELEFORGE_LIST=name)
        prepare(env, PASSWORD)
        server = LiveServer(env)
        try:
            session = server.login("ann", PASSWORD)
            page = session.get(server.url + "/", timeout=5).text
            csrf = page.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
            with server.board(session) as board:
                board.recv(timeout=5)  # the snapshot
                response = session.post(
                    server.url + "/api/v1/dial", headers={"X-CSRFToken": csrf}, timeout=10,
                    json={"callee": "+27 82 000 1234", "outbound_id": "random",
                          "reference": "crm-board"},
                )
                assert response.status_code == 201, response.text
                assert "0027820001234" in recv_until(board, 'data-state="dialling"')
                assert json.loads(pbx.dials[0].body)["callcontact_ref"] == "crm-board"
                for status, state in [("ringing", "ringing"), ("answered", "talking"),
                                      ("hangup", "ended")]:
                    client.lpush(name, notification("crm-board", status, agent="101"))
                    assert "0027820001234" in recv_until(board, f'data-state="{state}"', 15)
            assert requests.get(server.url + "/healthz", timeout=5).ok
        finally:
            server.stop()
