"""Group commit (``desk.services.group_commit``) under README's production server.

Deliveries sent together to one gevent worker share a transaction. What must hold for each
of them is what holds without batching: a 2xx only after the commit that holds it, a
delivery that fails fails alone, and a commit that fails stores none of its deliveries and
answers every one of them with a retryable 503.

The failures are the databases' own: a PostgreSQL constraint trigger deferred to COMMIT
that raises (and first sleeps, so the other deliveries queue up behind the failing commit
and are batched), and a SQLite trigger that refuses one delivery's INSERT. The deliveries
are Placetel's documented IncomingCall (``incoming_call.form``), one call_id each.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import parse_qsl

import pytest
import requests
from sqlalchemy import create_engine, text

from tests.conftest import PASSWORD
from tests.servers import LiveServer, desk_env, prepare
from tests.services import fresh_postgres_database

AUTH = ("placetel", "s3cret-pt")
SENDERS = 12

REFUSE_COMMITS = """
CREATE TABLE refuse_commits (why text);
CREATE FUNCTION refuse_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM refuse_commits) THEN
    PERFORM pg_sleep(0.3);
    RAISE EXCEPTION 'commit refused by the test';
  END IF;
  RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER refuse AFTER INSERT ON live_changes
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_commit();
"""


# Placetel's documented IncomingCall (tests/providers/placetel/fixtures/SOURCES.md); each
# delivery gets its own call_id, every other field is the fixture's.
INCOMING = dict(parse_qsl((Path(__file__).parent / "providers" / "placetel" / "fixtures"
                           / "incoming_call.form").read_text()))


def incoming(live: LiveServer, call_id: str) -> requests.Response:
    return requests.post(live.url + "/webhooks/placetel", auth=AUTH, timeout=30,
                         data={**INCOMING, "call_id": call_id})


def send_together(live: LiveServer, call_ids: list[str]) -> list[requests.Response]:
    with ThreadPoolExecutor(len(call_ids)) as pool:
        return list(pool.map(lambda ref: incoming(live, ref), call_ids))


def count(url: str, sql: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text(sql)).scalar_one())
    finally:
        engine.dispose()


@pytest.fixture
def postgres_desk() -> Iterator[tuple[LiveServer, str]]:
    with fresh_postgres_database() as url:
        env = desk_env(url, DESK_LOG_LEVEL="INFO")
        prepare(env, PASSWORD)
        engine = create_engine(url)
        with engine.begin() as conn:
            conn.exec_driver_sql(REFUSE_COMMITS)
        engine.dispose()
        live = LiveServer(env, workers=1)
        try:
            yield live, url
        finally:
            live.stop()


def test_a_failed_group_commit_stores_none_and_answers_each_503(
    postgres_desk: tuple[LiveServer, str],
) -> None:
    live, url = postgres_desk
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO refuse_commits VALUES ('the disk is full')"))
    refs = [f"gc-fail-{n}" for n in range(SENDERS)]

    answers = send_together(live, refs)

    assert [a.status_code for a in answers] == [503] * SENDERS, [a.text for a in answers]
    for answer in answers:
        assert answer.headers["Retry-After"] == "1"
        assert "Send it again" in answer.json()["message"]
    assert count(url, "SELECT count(*) FROM deliveries") == 0
    assert count(url, "SELECT count(*) FROM calls") == 0
    batches = [int(n) for n in re.findall(r"the commit of (\d+) deliveries failed", live.output())]
    assert batches and max(batches) > 1, live.output()  # a real group, not one by one

    # The providers send again: now each is stored once, and answered with its routing.
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM refuse_commits"))
    engine.dispose()
    again = send_together(live, refs)
    assert [a.status_code for a in again] == [200] * SENDERS
    assert all(b"<Response>" in a.content for a in again)
    assert count(url, "SELECT count(*) FROM deliveries WHERE status = 'applied'") == SENDERS
    assert count(url, "SELECT count(*) FROM calls") == SENDERS


@pytest.fixture
def sqlite_desk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, str]]:
    url = f"sqlite:///{tmp_path_factory.mktemp('group') / 'desk.db'}"
    env = desk_env(url)
    prepare(env, PASSWORD)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TRIGGER refuse BEFORE INSERT ON deliveries WHEN NEW.payload LIKE "
            "'%gc-poisoned%' BEGIN SELECT RAISE(ABORT, 'refused by the test'); END")
    engine.dispose()
    live = LiveServer(env, workers=1)
    try:
        yield live, url
    finally:
        live.stop()


def test_a_delivery_that_fails_fails_alone(sqlite_desk: tuple[LiveServer, str]) -> None:
    live, url = sqlite_desk
    refs = [f"gc-ok-{n}" for n in range(SENDERS - 1)] + ["gc-poisoned"]

    answers = dict(zip(refs, send_together(live, refs), strict=True))

    assert answers.pop("gc-poisoned").status_code == 503
    assert {ref: a.status_code for ref, a in answers.items()} == dict.fromkeys(answers, 200)
    assert count(url, "SELECT count(*) FROM calls") == SENDERS - 1
    assert count(url, "SELECT count(*) FROM calls WHERE provider_call_id = 'gc-poisoned'") == 0


def test_the_same_delivery_sent_together_is_applied_once(
    sqlite_desk: tuple[LiveServer, str],
) -> None:
    live, url = sqlite_desk

    answers = send_together(live, ["gc-twice"] * 8)

    assert [a.status_code for a in answers] == [200] * 8
    assert len({a.content for a in answers}) == 1  # one routing answer, kept for the retries
    assert count(url, "SELECT count(*) FROM deliveries WHERE status = 'applied'") == 1
    assert count(url, "SELECT count(*) FROM deliveries WHERE status = 'duplicate'") == 7
    assert count(url, "SELECT count(*) FROM calls") == 1


def test_a_database_locked_by_another_process_is_a_503_not_a_dead_worker(
    sqlite_desk: tuple[LiveServer, str],
) -> None:
    """Another program holds SQLite's write lock for longer than the busy timeout: the
    delivery is answered 503 before gunicorn's worker timeout, and the next one is stored."""
    live, url = sqlite_desk
    holder = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        refused = incoming(live, "gc-locked")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "1"
    assert incoming(live, "gc-locked").status_code == 200  # the same worker, sent again
    assert "WORKER TIMEOUT" not in live.output()
    assert count(url, "SELECT count(*) FROM calls WHERE provider_call_id = 'gc-locked'") == 1
