"""Teleforge notifications that fail to apply: set aside after bounded tries, never a wedge.

Real Redis (each test its own list name on the shared server), real databases: SQLite, and
PostgreSQL where only it refuses something (a NUL byte). An item "fails to apply
deterministically" because the database itself refuses its row: a trigger (SQLite) or a
check constraint (PostgreSQL) on ``calls``, as a schema or driver limit would. An outage is
a database that cannot be reached at all: that item is kept, never set aside.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from sqlalchemy import select, text

from desk import create_app
from desk.cli import upgrade_database
from desk.extensions import db
from desk.models import Alert, Delivery
from desk.providers.teleforge.listener import DEAD_SUFFIX, TeleforgeListener, listener_for
from tests.conftest import add_user, base_config, login
from tests.providers.teleforge.test_listener import cdr, dialling, inbound, state_of, wait_for
from tests.services import fresh_postgres_database, shared_redis_url

pytestmark = pytest.mark.redis

REFUSE_POISON = {
    "sqlite": "CREATE TRIGGER refuse_poison BEFORE INSERT ON calls "
              "WHEN NEW.provider_call_id LIKE 'poison%' "
              "BEGIN SELECT RAISE(ABORT, 'calls refuses this row'); END",
    "postgresql": "ALTER TABLE calls ADD CONSTRAINT refuse_poison "
                  "CHECK (provider_call_id NOT LIKE 'poison%')",
}


def _app(url: str, name: str, **extra: Any) -> Flask:
    app = create_app(base_config(url, DESK_TELEFORGE_REDIS_URL=shared_redis_url(),
                                 DESK_TELEFORGE_LISTS=name, **extra))
    upgrade_database(app)
    with app.app_context():
        db.session.execute(text(REFUSE_POISON[db.session.get_bind().dialect.name]))
        db.session.commit()
    return app


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def app(request: pytest.FixtureRequest, tmp_path: Path,
        queue: tuple[redis.Redis, str]) -> Iterator[Flask]:
    """An app on SQLite or a fresh PostgreSQL database whose ``calls`` refuses 'poison…'."""
    if request.param == "sqlite":
        yield _app(f"sqlite:///{tmp_path / 'desk.sqlite3'}", queue[1])
        db.dispose()
        return
    with fresh_postgres_database() as url:
        yield _app(url, queue[1])
        db.dispose()


@pytest.fixture
def pg_app(tmp_path: Path, queue: tuple[redis.Redis, str]) -> Iterator[Flask]:
    with fresh_postgres_database() as url:
        yield _app(url, queue[1])
        db.dispose()


def consumer(app: Flask, name: str, **options: Any) -> TeleforgeListener:
    return TeleforgeListener(app, shared_redis_url(), name, block_seconds=0.2, **options)


def rows(app: Flask, model: type[Any]) -> list[Any]:
    with app.app_context():
        found: list[Any] = list(db.session.scalars(select(model).order_by(model.id)))
        db.session.expunge_all()
        return found


def dead(client: redis.Redis, name: str) -> list[dict[str, Any]]:
    return [json.loads(entry) for entry in client.lrange(name + DEAD_SUFFIX, 0, -1)]


def status_fragment(app: Flask) -> str:
    add_user(app, "sue", role="supervisor", extension="100")
    supervisor = app.test_client()
    login(supervisor, "sue")
    return supervisor.get("/teleforge/status").get_data(as_text=True)


def test_an_item_the_database_refuses_is_set_aside_and_the_next_applies(
    app: Flask, queue: tuple[redis.Redis, str],
) -> None:
    client, name = queue
    poison, after = inbound("poison-1"), cdr("crm-next")
    call_id = dialling(app, "crm-next")
    client.lpush(name, poison, after)  # the poison is the oldest: taken first
    listener = consumer(app, name)
    # Tried max_tries (3) times, held in between; nothing is kept until it is set aside.
    assert [listener.step(), listener.step()] == ["failed", "failed"]
    assert client.lrange(listener.processing, 0, -1) == [poison]
    assert dead(client, name) == [] and rows(app, Alert) == []
    assert listener.step() == "set aside"
    assert client.llen(listener.processing) == 0

    (entry,) = dead(client, name)
    assert entry["item"].encode() == poison and entry["list"] == name and entry["tries"] == 3
    assert "IntegrityError" in entry["reason"] and entry["at"]
    (delivery,) = [d for d in rows(app, Delivery) if d.status == "rejected"]
    assert entry["delivery_id"] == delivery.id
    assert delivery.payload == poison.decode() and delivery.kind == "call"
    assert delivery.provider_call_id == "poison-1" and "IntegrityError" in (delivery.error or "")
    (alert,) = rows(app, Alert)
    assert alert.delivery_id == delivery.id and alert.kind == "notification_set_aside"
    assert f"{name}{DEAD_SUFFIX}" in alert.message

    # ... and the consumer goes on with the next item.
    assert listener.step() == "applied"
    assert state_of(app, "crm-next") == "ended" and client.llen(name) == 0
    assert listener.status.set_aside == 1
    listener.close()

    page = status_fragment(app)
    assert "1 notification set aside" in page and "IntegrityError" in page
    assert 'data-set-aside="1"' in page and f"delivery {delivery.id}" in page
    assert call_id


@pytest.mark.postgres
def test_a_nul_byte_postgresql_refuses_is_set_aside_with_the_nul_escaped(
    pg_app: Flask, queue: tuple[redis.Redis, str],
) -> None:
    """A NUL in a field (not JSON, so kept as unreadable: its text reaches the database)
    used to be retried as "database unavailable" for ever; now it is set aside."""
    client, name = queue
    poison = cdr("crm-nul").replace(b'"crm-nul"', b'"crm-\x00nul"')
    assert b"\x00" in poison
    dialling(pg_app, "crm-fine")
    client.lpush(name, poison, cdr("crm-fine"))
    listener = consumer(pg_app, name, max_tries=2)
    assert [listener.step(), listener.step()] == ["failed", "set aside"]
    (entry,) = dead(client, name)
    assert entry["item"].encode() == poison  # exactly as it arrived, NUL and all
    assert "NUL" in entry["reason"]
    (delivery,) = rows(pg_app, Delivery)
    assert delivery.status == "rejected" and "\x00" not in delivery.payload
    assert delivery.payload == poison.decode().replace("\x00", "\\x00")
    (alert,) = rows(pg_app, Alert)
    assert alert.delivery_id == delivery.id
    assert listener.step() == "applied" and state_of(pg_app, "crm-fine") == "ended"
    listener.close()
    assert "1 notification set aside" in status_fragment(pg_app)


def test_two_poison_items_no_longer_stop_two_running_consumers(
    tmp_path: Path, queue: tuple[redis.Redis, str],
) -> None:
    client, name = queue
    app = _app(f"sqlite:///{tmp_path / 'desk.sqlite3'}", name)
    consumers = [consumer(app, name) for _ in range(2)]
    try:
        client.lpush(name, inbound("poison-a"), inbound("poison-b"))
        client.lpush(name, *(inbound(f"fine-{i}") for i in range(6)))
        for listener in consumers:
            listener.ensure_started()
        wait_for(lambda: all(state_of(app, f"fine-{i}") == "talking" for i in range(6)),
                 "the items behind the poison ones")
        wait_for(lambda: client.llen(name + DEAD_SUFFIX) == 2, "both poison items set aside")
    finally:
        for listener in consumers:
            listener.stop()
        for listener in consumers:
            listener.join(10)
    assert sorted(entry["item"] for entry in dead(client, name)) == sorted(
        inbound(ref).decode() for ref in ("poison-a", "poison-b"))
    assert client.llen(name) == 0
    assert all(client.llen(listener.processing) == 0 for listener in consumers)
    assert sum(listener.status.set_aside for listener in consumers) == 2
    listed = listener_for(app)
    assert listed is not None
    aside = listed.set_aside()
    assert aside is not None and aside.count == 2 and len(aside.latest) == 2
    listed.close()
    page = status_fragment(app)
    assert "2 notifications set aside" in page and page.count("IntegrityError") == 2
    db.dispose()


def test_an_outage_is_never_set_aside(tmp_path: Path, queue: tuple[redis.Redis, str]) -> None:
    """A database nobody can reach: the item is kept however often it fails, and the next
    consumer on a working database applies it."""
    client, name = queue
    down = create_app(base_config("postgresql+psycopg://postgres@127.0.0.1:1/desk",
                                  DESK_TELEFORGE_REDIS_URL=shared_redis_url(),
                                  DESK_TELEFORGE_LISTS=name))
    raw = cdr("crm-later")
    client.lpush(name, raw)
    try:
        broken = consumer(down, name, max_tries=1)
        for _ in range(3):
            with pytest.raises(Exception, match="connect"):
                broken.step()
            assert client.lrange(broken.processing, 0, -1) == [raw]
        assert client.llen(name + DEAD_SUFFIX) == 0 and broken.status.set_aside == 0
        broken.close()  # it is gone: its item goes back to the list
    finally:
        db.dispose()
    app = _app(f"sqlite:///{tmp_path / 'desk.sqlite3'}", name)  # the one engine, now working
    try:
        call_id = dialling(app, "crm-later")
        survivor = consumer(app, name)
        wait_for(lambda: survivor.recover(survivor.connect()), "the broken consumer's item")
        assert survivor.step() == "applied" and state_of(app, "crm-later") == "ended"
        assert call_id and rows(app, Alert) == []
        survivor.close()
    finally:
        db.dispose()
