"""Database plumbing: the engine, the request-scoped session and publish-after-commit.

Models live in ``desk.models``; services (``desk.services``) own transactions. This module
only builds the engine for ``DESK_DATABASE_URL`` (SQLite gets WAL, a busy timeout and real
SAVEPOINTs; PostgreSQL's pool hands out only connections the server still holds) and
wires the session so that whatever a transaction marked as changed (``desk.live.changes``)
is numbered in the same transaction
(``desk.live.sequence``) and handed to the live hub *after* the commit succeeds — a browser
never sees a state that was rolled back, and no committed change depends on this process
living long enough to publish it.
"""

from __future__ import annotations

import select
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import InvalidatePoolError
from sqlalchemy.orm import Session, scoped_session, sessionmaker

from desk.live import changes, sequence
from desk.live.changes import Changes

OnCommit = Callable[[Changes, int | None], None]
"""Told after each commit that changed something: what changed, and its sequence number."""

_SEQ = "desk_seq"

SessionLike = Session | scoped_session[Session]
"""A session, or the request-scoped ``db.session`` that stands for the current one."""


def _sqlite_pragmas(engine: Engine) -> None:
    # pysqlite opens transactions lazily and breaks SAVEPOINT; take over BEGIN ourselves
    # (SQLAlchemy's documented recipe) and make concurrent writers wait instead of failing.
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN")


def make_engine(url: str) -> Engine:
    """An engine for ``url`` with the settings this desk relies on."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 10})
        _sqlite_pragmas(engine)
        return engine
    engine = create_engine(url, pool_size=10, max_overflow=20)
    _drop_dead_connections(engine)
    return engine


try:  # gevent's poll() always yields to its hub, even for a timeout of 0; the kernel's does not
    from gevent.monkey import get_original

    _poll = get_original("select", "poll")
except ImportError:  # pragma: no cover - gevent is a dependency; a plain install still works
    _poll = select.poll


def _quiet(dbapi_connection: Any) -> bool:
    """Whether the server has said nothing on this idle connection since it was last used.

    The server writes to an idle connection only to end it: a restart or shutdown, an
    administrator's ``pg_terminate_backend``, ``idle_session_timeout``, a crashed backend
    (then the kernel closes the socket). One ``poll`` with no timeout tells, in this
    process, without a round trip to the server.
    """
    if dbapi_connection.closed:
        return False
    poller = _poll()
    poller.register(dbapi_connection.fileno(), select.POLLIN | select.POLLPRI)
    return not poller.poll(0)


def _drop_dead_connections(engine: Engine) -> None:
    """Hand out only connections the server still holds: SQLAlchemy's ``pool_pre_ping``,
    without its round trip for a healthy connection.

    Each pooled connection is checked out through ``_quiet``; only one the server has
    written to (or closed) is pinged, and when the ping fails every connection pooled
    before it is replaced, as with ``pool_pre_ping`` (a restarted server cut them all). A
    connection that dies while in use fails its statement as before; the pool then
    replaces the others. Saves one of the dozen round trips a delivery's transaction makes.
    """

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        if _quiet(dbapi_connection):
            return
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except Exception:  # the ping itself found the connection gone
            alive = False
        if not alive:
            raise InvalidatePoolError("the database server closed an idle connection")


def end_reads(session: SessionLike) -> None:
    """End the session's read transaction before a write.

    On SQLite (WAL) a transaction that has read cannot wait for the write lock: it fails at
    once with "database is locked" if anyone wrote meanwhile. Starting the write in a fresh
    transaction makes it wait (busy_timeout) like any other writer. It also keeps a session
    from holding a transaction open while the desk waits for a provider. Objects stay
    loaded (``expire_on_commit=False``).
    """
    real = session() if isinstance(session, scoped_session) else session
    if real.in_transaction():
        real.commit()


class Database:
    """The engine and a scoped session factory, configured by ``init_app``."""

    def __init__(self) -> None:
        self.engine: Engine | None = None
        self.factory: sessionmaker[Session] = sessionmaker(expire_on_commit=False)
        self.session: scoped_session[Session] = scoped_session(self.factory)
        self._on_commit: OnCommit | None = None
        # Every session of this database (request-scoped or ``new_session``) numbers what it
        # marked in its transaction, publishes it after the commit, and forgets it after a
        # rollback (a real rollback of the whole transaction, not a SAVEPOINT's: nothing of
        # what it marked happened, and its sequence row is gone with it).
        event.listen(self.factory, "before_commit", self._before_commit)
        event.listen(self.factory, "after_commit", self._after_commit)
        event.listen(self.factory, "after_rollback", self._after_rollback)

    def init_app(self, app: Any, on_commit: OnCommit) -> None:
        self.engine = make_engine(app.config["DESK_DATABASE_URL"])
        self.session.remove()
        self.factory.configure(bind=self.engine)
        self._on_commit = on_commit
        app.teardown_appcontext(lambda _exc: self.session.remove())

    def dispose(self) -> None:
        self.session.remove()
        if self.engine is not None:
            self.engine.dispose()

    @staticmethod
    def _before_commit(session: Session) -> None:
        # Also called when a SAVEPOINT is released; only the outermost commit is numbered.
        if session.in_nested_transaction():
            return
        marked = changes.peek(session)
        if marked:
            session.info[_SEQ] = sequence.record(session, marked)

    def _after_commit(self, session: Session) -> None:
        if session.in_nested_transaction():  # a SAVEPOINT released: nothing committed yet
            return
        changed = changes.collect(session)
        seq = session.info.pop(_SEQ, None)
        if changed and self._on_commit is not None:
            self._on_commit(changed, seq)

    @staticmethod
    def _after_rollback(session: Session) -> None:
        changes.discard(session)
        session.info.pop(_SEQ, None)

    @contextmanager
    def consistent_read(self) -> Iterator[Session]:
        """A read-only session that sees one moment of the database in all its queries.

        For a board's snapshot: under PostgreSQL's default READ COMMITTED each query sees
        the commits made since the one before, so a call loaded as ringing by one query and
        matched as ended by the next would be listed twice (the session hands back the
        object it already has). REPEATABLE READ makes every query read the same snapshot;
        SQLite's read transaction already does.
        """
        assert self.engine is not None, "init_app first"
        with self.engine.connect() as connection:
            if connection.dialect.name == "postgresql":
                connection = connection.execution_options(
                    isolation_level="REPEATABLE READ", postgresql_readonly=True
                )
            session = Session(bind=connection, expire_on_commit=False)
            try:
                yield session
            finally:
                session.close()

    @contextmanager
    def new_session(self) -> Iterator[Session]:
        """A session outside any request (background threads, CLI)."""
        session = self.factory()
        try:
            yield session
        finally:
            session.close()
