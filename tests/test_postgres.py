"""The same spine against a real PostgreSQL: migrations, webhooks, concurrency, websocket."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

import pytest
from sqlalchemy import create_engine, func, select
from websockets.sync.client import connect

from desk.models import Call, Delivery
from tests.conftest import PASSWORD
from tests.servers import LiveServer, desk_env, recv_until, running_desk, tail
from tests.services import fresh_postgres_database, shared_redis_url


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    with fresh_postgres_database() as url:
        yield url


@pytest.fixture(scope="module")
def server(pg_url: str) -> Iterator[LiveServer]:
    # Two workers need Redis (gunicorn.conf.py refuses them without): a channel of its own.
    env = desk_env(pg_url, DESK_REDIS_URL=shared_redis_url(),
                   DESK_REDIS_CHANNEL=f"desk:test:pg:{pg_url.rsplit('/', 1)[-1]}")
    with running_desk(env, PASSWORD, workers=2) as live:
        yield live


def test_webhook_to_board_on_postgres(server: LiveServer) -> None:
    with server.board(server.login("ann", PASSWORD)) as board:
        board.recv(timeout=5)
        server.placetel(event="IncomingCall", call_id="pg-1", **{"from": "0301"}, to="0221")
        server.placetel(event="CallAccepted", call_id="pg-1", peer="777ann@fpbx.de")
        server.placetel(event="HungUp", call_id="pg-1", type="accepted", duration="5")
        # Whichever worker took the webhooks, the snapshot on reconnect is complete:
    with server.board(server.login("ann", PASSWORD)) as board:
        snapshot = board.recv(timeout=5)
        assert 'data-state="ended"' in snapshot and "0301" in snapshot


def test_concurrent_retries_across_processes_apply_once(server: LiveServer, pg_url: str) -> None:
    """Placetel retries; two workers may take the same delivery at the same moment."""
    form = {"event": "IncomingCall", "call_id": "pg-race", "from": "0302", "to": "0221"}
    with ThreadPoolExecutor(max_workers=8) as pool:
        codes = list(pool.map(lambda _: server.placetel(**form).status_code, range(16)))
    assert codes == [200] * 16
    engine = create_engine(pg_url)
    with engine.connect() as conn:
        calls = conn.scalar(select(func.count()).select_from(Call)
                            .where(Call.provider_call_id == "pg-race"))
        applied = conn.scalar(select(func.count()).select_from(Delivery).where(
            Delivery.provider_call_id == "pg-race", Delivery.status == "applied"))
        duplicates = conn.scalar(select(func.count()).select_from(Delivery).where(
            Delivery.provider_call_id == "pg-race", Delivery.status == "duplicate"))
    engine.dispose()
    assert (calls, applied, duplicates) == (1, 1, 15)


RACES = 100  # calls; one in about thirty deadlocked once, and answered 503 twice in a row


def test_events_of_one_call_racing_each_other_end_in_the_right_state(
    server: LiveServer, pg_url: str
) -> None:
    """Each call's three events, each sent three times, all at once: the two workers' group
    commits hold deliveries of the same calls. Taking the calls' locks in one order
    (``ingest.lock_calls``) leaves PostgreSQL no deadlock to break (it found one every few
    calls, each after a second's wait); a transaction that still loses a race starts over.
    Every delivery is answered 200 and every call ends right."""
    before = len(tail(server.log, 10**9))
    answers: list[tuple[int, str]] = []
    with ThreadPoolExecutor(max_workers=9) as pool:
        for n in range(RACES):
            ref = f"pg-order-{n}"
            forms = [
                {"event": "IncomingCall", "call_id": ref, "from": "0303", "to": "0221"},
                {"event": "CallAccepted", "call_id": ref, "peer": "777ann@fpbx.de"},
                {"event": "HungUp", "call_id": ref, "type": "accepted", "duration": "9"},
            ]
            answers += [(r.status_code, r.text[:300])
                        for r in pool.map(lambda f: server.placetel(**f), forms * 3)]
    assert [a for a in answers if a[0] != 200] == [], server.output()
    log = tail(server.log, 10**9)[before:]
    assert "DeadlockDetected" not in log, log[-6000:]
    engine = create_engine(pg_url)
    with engine.connect() as conn:
        ends = conn.execute(
            select(Call.state, Call.duration, func.count())
            .where(Call.provider_call_id.like("pg-order-%"))
            .group_by(Call.state, Call.duration)
        ).all()
    engine.dispose()
    assert ends == [("ended", 9, RACES)]
    with server.board(server.login("sue", PASSWORD)) as board:
        assert "0303" in recv_until(board, 'id="calls-ended"')


def test_a_crowd_of_boards_opening_at_once_all_get_their_snapshot(server: LiveServer) -> None:
    """After a restart every board reconnects at the same moment. Each must get its snapshot:
    a board holding the log-in lookup's connection while its snapshot waited for a second
    one starved the pool (10 + 20 per worker) until the pool timed out, and the error page
    then went out on the upgraded socket as a corrupt frame."""
    # An ended call of ann's own: her snapshot holds its wrap-up, which reads the dispositions.
    server.placetel(event="IncomingCall", call_id="pg-crowd", **{"from": "0304"}, to="0221")
    server.placetel(event="CallAccepted", call_id="pg-crowd", peer="777ann@fpbx.de")
    server.placetel(event="HungUp", call_id="pg-crowd", type="accepted", duration="3")
    cookies = []
    for name in ("sue", "ann", "bob"):
        session = server.login(name, PASSWORD)
        cookies.append("; ".join(f"{c.name}={c.value}" for c in session.cookies))
    crowd = 300  # about 150 a worker: five times what one worker's pool holds
    start = Barrier(crowd)

    def open_board(index: int) -> str:
        start.wait(timeout=30)
        try:
            with connect(f"ws://127.0.0.1:{server.port}/ws", open_timeout=30,
                         additional_headers={"Cookie": cookies[index % 3]}) as board:
                frame = board.recv(timeout=30)
        except Exception as exc:  # counted, and reported with the log below
            return f"failed: {exc!r}"
        assert isinstance(frame, str)
        return frame

    with ThreadPoolExecutor(max_workers=crowd) as pool:
        snapshots = list(pool.map(open_board, range(crowd)))
    # A handshake dropped without a reply was gunicorn's 2 s wait for the first request line
    # (gunicorn.conf.py sets keepalive): 300 client threads on a loaded machine send late.
    failed = [frame for frame in snapshots if frame.startswith("failed: ")]
    assert not failed, f"{len(failed)} of {crowd}: {sorted(set(failed))}\n{server.output()}"
    mine = ['id="agents"', 'id="wrap-up-', 'id="calls-mine"']  # sue, ann, bob
    assert [mine[i % 3] in frame for i, frame in enumerate(snapshots)] == [True] * crowd
    log = server.output()
    assert "QueuePool limit" not in log and "Invalid HTTP request" not in log, log
