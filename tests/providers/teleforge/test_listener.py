"""Teleforge notifications on a real Redis: taken, applied once, never lost, kept when odd.

The items are Teleforge's own formats (the fixtures in ``fixtures/``). Tests that push onto
Teleforge's real list names (``enigma:notifications:cdr``, ``enigma:notifications:inbound``)
use a private redis-server of their own, so parallel runs never take each other's items;
the others use their own list name on the shared Redis. Consumers are real:
``TeleforgeListener`` in a thread, ``flask --app app teleforge listen`` as a process that is
killed with SIGKILL between taking an item and committing it, and the consumer inside
gunicorn feeding open boards over websockets.
"""

from __future__ import annotations

import json
import os
import re
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
from desk.providers.teleforge.rules import parse_version
from desk.services import ingest
from desk.settings import SettingsError, load_settings
from tests.conftest import PASSWORD, add_user, base_config, login
from tests.servers import BIN, ROOT, LiveServer, desk_env, prepare, recv_until
from tests.services import PrivateRedis, shared_redis_url
from tests.teleforge_standin import TeleforgeStandIn, dial_body, item, list_name

pytestmark = pytest.mark.redis

CDR_LIST, INBOUND_LIST = "enigma:notifications:cdr", "enigma:notifications:inbound"


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    """Poll until ``condition()`` is truthy; a deadline, not a speed requirement."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"gave up waiting for {what}")


def cdr(reference: str, **payload: Any) -> bytes:
    """The answered outbound CDR fixture for the dial with ``reference``, ending now."""
    return item("cdr_v3_outbound_answered.json", now=True, contact_ref=reference, **payload)


def inbound(call_ref: str, **payload: Any) -> bytes:
    return item("call_v3_inbound.json", call_ref=call_ref, **payload)


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    server.start()
    yield server
    server.stop()


def make_app(tmp_path: Path, **extra: Any) -> Flask:
    app = create_app(base_config(f"sqlite:///{tmp_path / 'desk.sqlite3'}", **extra))
    upgrade_database(app)
    return app


@pytest.fixture
def app(tmp_path: Path, queue: tuple[redis.Redis, str]) -> Iterator[Flask]:
    app = make_app(tmp_path, DESK_TELEFORGE_REDIS_URL=shared_redis_url(),
                   DESK_TELEFORGE_LISTS=queue[1])
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


def the_call(app: Flask, call_id: int | None = None, reference: str | None = None) -> Call:
    with app.app_context():
        if call_id is not None:
            call = db.session.get(Call, call_id)
        else:
            call = db.session.scalars(
                select(Call).where(Call.provider_call_id == reference)).first()
        assert call is not None
        db.session.refresh(call)
        db.session.expunge(call)
        return call


def call_state(app: Flask, call_id: int) -> str:
    return the_call(app, call_id).state


def state_of(app: Flask, reference: str) -> str | None:
    """The state of the call with this provider id, None while there is none."""
    with app.app_context():
        return db.session.scalars(
            select(Call.state).where(Call.provider_call_id == reference)).first()


def rows(app: Flask, model: type) -> list[Any]:
    with app.app_context():
        return list(db.session.scalars(select(model).order_by(model.id)))


def consumer(app: Flask, url: str, name: str | list[str], **options: Any) -> TeleforgeListener:
    return TeleforgeListener(app, url, name, block_seconds=0.2, **options)


# --- settings ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "lists"),
    [
        ({}, [CDR_LIST, INBOUND_LIST]),
        # The older one-list setting is an alias: its list is taken too, after the others.
        ({"DESK_TELEFORGE_LIST": "enigma:notifications:c2d"},
         [CDR_LIST, INBOUND_LIST, "enigma:notifications:c2d"]),
        ({"DESK_TELEFORGE_LIST": CDR_LIST}, [CDR_LIST, INBOUND_LIST]),
        ({"DESK_TELEFORGE_LISTS": " a , b,,", "DESK_TELEFORGE_LIST": "c"}, ["a", "b", "c"]),
        ({"DESK_TELEFORGE_LISTS": "", "DESK_TELEFORGE_LIST": "c"}, ["c"]),
    ],
)
def test_the_lists_to_consume(env: dict[str, str], lists: list[str]) -> None:
    config = load_settings({"TESTING": True}, environ={"DESK_TELEFORGE_URL": "http://pbx:8300",
                                                       **env})
    assert config["DESK_TELEFORGE_LISTS"] == lists
    assert config["DESK_TELEFORGE_POP_END"] == "right"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DESK_TELEFORGE_POP_END": "middle"}, "DESK_TELEFORGE_POP_END must be right or left"),
        ({"DESK_TELEFORGE_LISTS": " , "}, "DESK_TELEFORGE_LISTS names no Redis list"),
    ],
)
def test_list_settings_that_cannot_work_stop_the_desk(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings({"TESTING": True}, environ={"DESK_TELEFORGE_URL": "http://pbx:8300", **env})


def test_pop_end_is_read_in_any_case() -> None:
    config = load_settings({"TESTING": True}, environ={"DESK_TELEFORGE_POP_END": " LEFT "})
    assert config["DESK_TELEFORGE_POP_END"] == "left"


# --- one list, the reliable consumer -----------------------------------------------------------


def test_a_cdr_ends_the_dialled_row_with_its_duration_and_facts(
    app: Flask, queue: tuple[redis.Redis, str],
) -> None:
    client, name = queue
    call_id = dialling(app, "crm-1")
    listener = consumer(app, shared_redis_url(), name)
    client.lpush(name, cdr("crm-1"))
    assert listener.step() == "applied"
    call = the_call(app, call_id)
    assert (call.state, call.outcome, call.end_cause, call.duration) == (
        "ended", "answered", "hungup", 95)
    # Nothing said when it was answered: the state machine's estimate, call_time before the end.
    assert call.answered_at is not None and call.ended_at is not None
    assert (call.ended_at - call.answered_at).total_seconds() == 95
    assert call.provider_facts["call_time"] == 95 and call.provider_facts["end_code"] == 16
    assert call.provider_facts["recording_url"].endswith("tf-1a2b3c4d.wav")
    assert call.provider_facts["call_ref"] == "tf-1a2b3c4d"
    # A later item about the same call never revives it.
    client.lpush(name, inbound("crm-1", call_dir="outbound", contact_ref="crm-1",
                               campaign_ref="x"))
    assert listener.step() == "applied"
    assert call_state(app, call_id) == "ended"
    assert client.llen(name) == 0 and client.llen(listener.processing) == 0
    assert [d.status for d in rows(app, Delivery)] == ["applied"] * 2


def test_a_repeated_notification_is_a_duplicate(app: Flask, queue: tuple[redis.Redis, str]) -> None:
    client, name = queue
    dialling(app, "crm-2")
    listener = consumer(app, shared_redis_url(), name)
    raw = cdr("crm-2")
    client.lpush(name, raw, raw)
    assert [listener.step(), listener.step()] == ["applied", "duplicate"]
    # Pushed again with its keys in another order: still the same item.
    document = json.loads(raw)
    client.lpush(name, json.dumps({"payload": document["payload"], "type": "cdr"}, indent=2))
    assert listener.step() == "duplicate"


@pytest.mark.parametrize(
    "raw",
    [b"garbage", b'{"status": "ringing"}', b"\xff\xfe\x00", b"[1, 2]",
     b'{"callcontact_ref": "crm-3", "status": "teleported"}', b"",
     b'{"type": "hangup", "payload": {"contact_ref": "crm-3"}}'],
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
    client.lpush(name, cdr("crm-after"))
    assert listener.step() == "applied" and call_state(app, call_id) == "ended"

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
            client.lpush(name, inbound(f"many-{i}"))
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
                   DESK_TELEFORGE_LISTS=name)
    prepare(env, PASSWORD)
    app = make_app(tmp_path, DESK_TELEFORGE_REDIS_URL=shared_redis_url(),
                   DESK_TELEFORGE_LISTS=name)
    try:
        call_id = dialling(app, "crm-kill")
        process = subprocess.Popen(
            [str(BIN / "flask"), "--app", "app", "teleforge", "listen"], cwd=ROOT, env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        lock = sqlite3.connect(path, timeout=10, isolation_level=None)
        try:
            lock.execute("BEGIN IMMEDIATE")  # the listener can read, but not commit
            client.lpush(name, cdr("crm-kill"))
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
        assert call_state(app, call_id) == "ended"
        assert not list(client.scan_iter(match=name + ":processing:*"))
        survivor.close()
    finally:
        db.dispose()


def test_a_live_consumer_keeps_its_item(app: Flask, queue: tuple[redis.Redis, str]) -> None:
    client, name = queue
    dialling(app, "crm-held")
    holder = consumer(app, shared_redis_url(), name)
    client.lpush(name, cdr("crm-held"))
    assert holder.take(holder.connect()) is not None  # taken, not yet applied
    other = consumer(app, shared_redis_url(), name)
    assert other.recover(other.connect()) == 0  # its owner is still connected
    assert holder.step() == "applied"  # the holder finishes what it took first


@pytest.mark.parametrize(("pop_end", "push"), [("right", "lpush"), ("left", "rpush")])
def test_items_are_taken_oldest_first_from_the_configured_end(
    app: Flask, queue: tuple[redis.Redis, str], pop_end: str, push: str,
) -> None:
    client, name = queue
    for reference in ("first", "second", "third"):
        getattr(client, push)(name, inbound(reference))
    # A consumer takes the oldest and dies holding it; the survivor gets it back first.
    doomed = consumer(app, shared_redis_url(), name, pop_end=pop_end)
    taken = doomed.take(doomed.connect())
    assert taken is not None and json.loads(taken)["payload"]["call_ref"] == "first"
    doomed.close()
    survivor = consumer(app, shared_redis_url(), name, pop_end=pop_end)
    for _ in range(3):
        assert survivor.step() == "applied"
    survivor.close()
    assert [d.provider_call_id for d in rows(app, Delivery)] == ["first", "second", "third"]


# --- several lists ---------------------------------------------------------------------------


def test_one_consumer_takes_from_every_list_without_waiting_on_a_quiet_one(
    tmp_path: Path, private_redis: PrivateRedis,
) -> None:
    lists = [CDR_LIST, INBOUND_LIST, "enigma:notifications:c2d"]  # the last one: older PBXs
    app = make_app(tmp_path, DESK_TELEFORGE_REDIS_URL=private_redis.url,
                   DESK_TELEFORGE_LIST="enigma:notifications:c2d")
    client = redis.Redis.from_url(private_redis.url)
    listener = listener_for(app)
    assert listener is not None and list(listener.lists) == lists
    listener.block_seconds = 10  # a lane blocked on a quiet list must not hold up the others
    try:
        listener.ensure_started()
        wait_for(lambda: listener.status.state == "ok", "the consumer to connect")
        client.lpush(INBOUND_LIST, inbound("tf-lanes"))
        wait_for(lambda: state_of(app, "tf-lanes") == "talking",
                 "the inbound call", 8)
        client.lpush("enigma:notifications:c2d", item("cdr_v3_inbound_answered.json",
                                                      now=True, call_ref="tf-lanes"))
        wait_for(lambda: state_of(app, "tf-lanes") == "ended", "its CDR", 8)
        assert {client.llen(name) for name in lists} == {0}
    finally:
        listener.stop()
        client.close()
    listener.join(20)
    assert not listener.running and listener.status.state == "stopped"
    db.dispose()


@pytest.mark.parametrize(
    ("version", "dial", "cdr_fixture", "reference", "outcome", "cause", "duration"),
    [
        ("3.3", "dial_v3.json", "cdr_v3_outbound_answered.json", "crm-42", "answered",
         "hungup", 95),
        ("4.0.0", "dial_v3.json", "cdr_v3_outbound_busy.json", "crm-43", "busy", "busy", 0),
        ("3.0.0", "dial_v3.json", "cdr_v3_outbound_no_answer.json", "crm-44", "unanswered",
         "no_answer", 0),
        ("2.9", "dial_v2.json", "cdr_v2_outbound_answered.json", "crm-42", "answered",
         "hungup", 95),
        ("2.9", "dial_v2.json", "cdr_v2_reference_in_call_ref.json", "crm-42", "answered",
         "hungup", 95),
    ],
)
def test_a_dial_is_ended_by_its_cdr_on_the_real_cdr_list(
    tmp_path: Path, private_redis: PrivateRedis, version: str, dial: str, cdr_fixture: str,
    reference: str, outcome: str, cause: str, duration: int,
) -> None:
    """The body Teleforge's version documents goes out; the CDR on enigma:notifications:cdr
    (the fixture, its contact_ref or call_ref the dial's reference) ends that very row."""
    with TeleforgeStandIn(version=version) as pbx:
        app = make_app(tmp_path, DESK_TELEFORGE_URL=pbx.url, DESK_TELEFORGE_VERSION=version,
                       DESK_TELEFORGE_REDIS_URL=private_redis.url)
        try:
            add_user(app, "ann", extension="101")
            client = app.test_client()
            csrf = login(client, "ann")
            body = dial_body(dial)
            response = client.post("/dial", headers={"HX-Request": "true", "X-CSRFToken": csrf},
                                   data={"callee": body["callee"], "reference": reference,
                                         "outbound_id": body["outbound_id"]})
            assert response.status_code == 200, response.get_data(as_text=True)
            (sent,) = pbx.dials
            key = "contact_ref" if parse_version(version) >= (3, 0, 0) else "call_ref"
            assert sent.json == {**body, key: reference}
            call = the_call(app, reference=reference)
            assert call.state == "dialling"

            redis.Redis.from_url(private_redis.url).lpush(
                CDR_LIST, item(cdr_fixture, now=True, **(
                    {"call_ref": reference} if "call_ref" in cdr_fixture else
                    {"contact_ref": reference})))
            listener = listener_for(app)
            assert listener is not None
            assert listener.step() == "applied"
            call = the_call(app, call.id)
            assert (call.state, call.outcome, call.end_cause, call.duration) == (
                "ended", outcome, cause, duration)
            assert call.agent_id is not None and call.to_number == body["callee"]
            listener.close()
        finally:
            db.dispose()


def test_a_redis_outage_is_survived_and_shown(tmp_path: Path, private_redis: PrivateRedis) -> None:
    server = private_redis
    name = list_name()
    # The older setting name still works: its list is consumed with the default ones.
    app = make_app(tmp_path, DESK_TELEFORGE_REDIS_URL=server.url, DESK_TELEFORGE_LIST=name)
    listener = listener_for(app)
    assert listener is not None and name in listener.lists
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
        redis.Redis.from_url(server.url).lpush(name, cdr("crm-outage"))
        wait_for(lambda: call_state(app, call_id) == "ended", "the notification", 30)
        wait_for(lambda: listener.status.state == "ok", "every list to be back")
        assert "not arriving" not in supervisor.get("/teleforge/status").get_data(as_text=True)
    finally:
        listener.stop()
        listener.join(5)
        db.dispose()


def test_listen_command_needs_a_redis_url(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    try:
        result = app.test_cli_runner().invoke(args=["teleforge", "listen"])
        assert result.exit_code != 0
        assert "DESK_TELEFORGE_REDIS_URL" in result.output
    finally:
        db.dispose()


# --- the whole path, on open boards ------------------------------------------------------------


def row(frame: str, marker: str) -> dict[str, str]:
    """The ``data-*`` attributes of the call row in ``frame`` whose opening tag has ``marker``."""
    for tag in re.findall(r"<article [^>]*>", frame):
        if marker in tag:
            return dict(re.findall(r'data-([a-z]+)="([^"]*)"', tag))
    raise AssertionError(f"no row with {marker!r} in {frame[:1500]!r}")


def test_dials_and_inbound_calls_move_on_open_boards(
    tmp_path: Path, private_redis: PrivateRedis,
) -> None:
    """Dial from the board; the PBX's CDR on ``enigma:notifications:cdr`` ends the row. An
    inbound call bridged to bob (extension 102) arrives on ``enigma:notifications:inbound``
    and is bob's on his board; its CDR ends it. The consumer runs inside gunicorn."""
    pushed = redis.Redis.from_url(private_redis.url)
    with TeleforgeStandIn(version="3.3") as pbx:
        env = desk_env(f"sqlite:///{tmp_path / 'desk.sqlite3'}", DESK_TELEFORGE_URL=pbx.url,
                       DESK_TELEFORGE_VERSION="3.3", DESK_TELEFORGE_REDIS_URL=private_redis.url)
        prepare(env, PASSWORD)
        server = LiveServer(env)
        try:
            ann, bob = server.login("ann", PASSWORD), server.login("bob", PASSWORD)
            page = ann.get(server.url + "/", timeout=5).text
            csrf = page.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
            with server.board(ann) as ann_board, server.board(bob) as bob_board:
                ann_board.recv(timeout=5)  # the snapshots
                bob_board.recv(timeout=5)
                response = ann.post(
                    server.url + "/api/v1/dial", headers={"X-CSRFToken": csrf}, timeout=10,
                    json={"callee": "+27 82 000 1234", "outbound_id": "random",
                          "reference": "crm-board"},
                )
                assert response.status_code == 201, response.text
                frame = recv_until(ann_board, 'data-state="dialling"')
                assert row(frame, 'data-to="0027820001234"')["section"] == "calls-mine"
                (sent,) = pbx.dials
                assert sent.json["contact_ref"] == "crm-board"
                assert "callcontact_ref" not in sent.json

                pushed.lpush(CDR_LIST, cdr("crm-board", number="0027820001234"))
                frame = recv_until(ann_board, 'data-state="ended"', 15)
                ended = row(frame, 'data-to="0027820001234"')
                assert (ended["outcome"], ended["duration"]) == ("answered", "95")

                before = time.time()
                pushed.lpush(INBOUND_LIST, inbound("tf-in-board"))
                frame = recv_until(bob_board, 'data-from="0215550123"', 15)
                bobs = row(frame, 'data-from="0215550123"')
                assert (bobs["section"], bobs["state"], bobs["direction"]) == (
                    "calls-mine", "talking", "inbound")
                assert 'data-section="calls-queue"' in recv_until(
                    ann_board, 'data-from="0215550123"', 15)  # someone else's call for ann

                pushed.lpush(CDR_LIST, item("cdr_v3_inbound_answered.json", now=True,
                                            call_ref="tf-in-board"))
                frame = recv_until(bob_board, 'data-state="ended"', 15)
                done = row(frame, 'data-from="0215550123"')
                assert done["outcome"] == "answered"
                # The desk saw it answered: the talk time runs from then, not call_time (200 s,
                # ringing and queueing included).
                assert int(done["duration"]) <= time.time() - before + 1
                assert (done["from"], done["to"]) == ("0215550123", "27215550100")
            assert requests.get(server.url + "/healthz", timeout=5).ok
        finally:
            server.stop()
            pushed.close()
