"""The PostgreSQL pool hands out only live connections, without a ping for a healthy one.

``desk.db.make_engine`` replaces SQLAlchemy's ``pool_pre_ping`` (a ``SELECT 1`` round trip
on every checkout) by a local check of the idle socket. These tests use the shared
PostgreSQL server and end only their own backends (``pg_terminate_backend``), which is
what a server restart or ``idle_session_timeout`` does to every idle connection: the
server writes a FATAL message and closes the socket.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

from desk.db import make_engine
from tests.services import fresh_postgres_database


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    with fresh_postgres_database() as url:
        yield url


@pytest.fixture
def engine(pg_url: str) -> Iterator[Engine]:
    engine = make_engine(pg_url)
    yield engine
    engine.dispose()


def _count_pings(engine: Engine) -> list[int]:
    """Counts the dialect's pings on this engine (SQLAlchemy's own hook, not desk code)."""
    pings: list[int] = []
    real = engine.dialect.do_ping

    def counted(dbapi_connection: Any) -> bool:
        pings.append(1)
        return real(dbapi_connection)

    engine.dialect.do_ping = counted  # type: ignore[method-assign]
    return pings


def _backend(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _terminate(url: str, pids: set[int]) -> None:
    """End these backends from a connection outside the pool; return once they are gone."""
    admin = create_engine(url, poolclass=NullPool)
    try:
        with admin.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(pid) "
                              "FROM unnest(CAST(:p AS int[])) pid"), {"p": sorted(pids)})
            for _ in range(500):
                left = conn.execute(text("SELECT count(*) FROM pg_stat_activity "
                                         "WHERE pid = ANY(CAST(:p AS int[]))"),
                                    {"p": sorted(pids)}).scalar_one()
                if not left:
                    return
                conn.execute(text("SELECT pg_sleep(0.01)"))
        raise AssertionError(f"backends {pids} still running")
    finally:
        admin.dispose()


def test_a_healthy_pooled_connection_is_reused_without_a_ping(engine: Engine) -> None:
    pings = _count_pings(engine)
    first = _backend(engine)
    again = [_backend(engine) for _ in range(5)]
    assert again == [first] * 5  # the pooled connection, every time
    assert pings == []  # no round trip before any of them


def test_a_connection_the_server_ended_while_idle_is_replaced(engine: Engine,
                                                              pg_url: str) -> None:
    pings = _count_pings(engine)
    # Two pooled connections, both idle in the pool afterwards.
    with engine.connect() as a, engine.connect() as b:
        pids = {int(c.execute(text("SELECT pg_backend_pid()")).scalar_one()) for c in (a, b)}
    assert len(pids) == 2
    # As a restart would: the server ends both while they wait in the pool.
    _terminate(pg_url, pids)
    # Every checkout works: the dead connections are noticed and replaced, none fails.
    for _ in range(4):
        with engine.connect() as conn:
            pid = int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())
            assert pid not in pids
    assert pings, "the ended connection was handed out without a check"
