"""The durable live change sequence: numbering in the commit, catching up, retrying renders.

Real SQLite databases and the real hub; the "other process" is a second engine on the same
file that commits without publishing, exactly what a process killed after its commit leaves.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from desk.db import make_engine
from desk.extensions import db
from desk.live import sequence
from desk.live.changes import AGENTS, CALLS, Changes, mark_changed
from desk.live.hub import GAP_GRACE, Board, Hub, Sequence
from desk.models import LiveChange


def numbered(app: Flask) -> list[tuple[int, dict[str, list[int]]]]:
    with app.app_context():
        return [(row.seq, row.changes) for row in
                db.session.scalars(select(LiveChange).order_by(LiveChange.seq))]


def test_a_commit_is_numbered_in_its_own_transaction_and_a_rollback_leaves_nothing(
    app: Flask,
) -> None:
    published: list[tuple[Changes, int | None]] = []
    with app.app_context():
        db._on_commit = lambda changes, seq: published.append((changes, seq))
        mark_changed(db.session, CALLS, 7)
        mark_changed(db.session, AGENTS, 3)
        db.session.commit()
        db.session.get(LiveChange, 1)  # (a transaction to roll back)
        mark_changed(db.session, CALLS, 8)
        db.session.rollback()  # never happened: no number, nothing published
        with db.session.begin_nested():  # a SAVEPOINT's release is not the commit
            mark_changed(db.session, CALLS, 9)
        db.session.commit()
        db.session.commit()  # nothing marked: no number
    rows = numbered(app)
    assert [changes for _, changes in rows] == [{"calls": [7], "agents": [3]}, {"calls": [9]}]
    assert [seq for _, seq in published] == [seq for seq, _ in rows]
    assert rows[0][0] < rows[1][0]


def test_numbers_only_grow_even_after_the_newest_rows_are_pruned(app: Flask) -> None:
    from datetime import timedelta

    with app.app_context():
        mark_changed(db.session, CALLS, 1)
        db.session.commit()
        first = sequence.latest(db.engine)  # type: ignore[arg-type]
        assert sequence.prune(db.session, timedelta(seconds=-1)) == 1  # everything goes
        mark_changed(db.session, CALLS, 2)
        db.session.commit()
        assert sequence.latest(db.engine) > first  # type: ignore[arg-type]


def test_since_reads_what_is_new_and_what_was_missing(app: Flask) -> None:
    seqs = [commit_elsewhere(app, n) for n in (1, 2, 3, 4)]
    engine = db.engine
    assert engine is not None
    assert sequence.since(engine, seqs[1], missing=[seqs[0]]) == [
        (seqs[0], {"calls": {1}}), (seqs[2], {"calls": {3}}), (seqs[3], {"calls": {4}}),
    ]
    assert [seq for seq, _ in sequence.since(engine, 0, limit=2)] == seqs[:2]
    assert sequence.since(engine, seqs[3], missing=[seqs[3] + 5]) == []


def test_the_sequence_tracks_gaps_skips_repeats_and_gives_up_on_numbers_never_committed(
) -> None:
    seen = Sequence()
    assert seen.take(5, now=0.0)  # before start_at: delivered, remembered
    seen.start_at(3, now=0.0)
    assert seen.top == 5 and sorted(seen.missing) == [4]
    assert not seen.take(5, now=0.0)  # a repeat (Redis after the catch-up read it)
    assert seen.take(8, now=1.0) and sorted(seen.missing) == [4, 6, 7]
    assert seen.take(6, now=1.0) and not seen.take(6, now=1.0)
    assert seen.give_up(now=1.0 + GAP_GRACE / 2) == []
    assert sorted(seen.give_up(now=1.5 + GAP_GRACE)) == [4, 7]
    assert seen.missing == {} and not seen.take(4, now=20.0)


def test_at_start_the_newest_numbers_are_read_once_more() -> None:
    """A PostgreSQL number below the newest one read at start may still be committing."""
    seen = Sequence()
    seen.start_at(10, now=0.0, slack=3)
    assert seen.top == 10 and sorted(seen.missing) == [8, 9, 10]
    assert seen.take(9, now=0.5) and not seen.take(9, now=0.5) and not seen.take(7, now=0.5)


class Recorder:
    """A renderer that records what it was asked to render; fails while ``failing``."""

    def __init__(self) -> None:
        self.calls: list[Changes] = []
        self.failing = 0

    def __call__(self, changes: Changes, audiences: dict[str, set[str]]) -> dict:
        if self.failing:
            self.failing -= 1
            raise RuntimeError("database restarting")
        self.calls.append({k: set(v) for k, v in changes.items()})
        return {voice: [("supervisor", f"<p>{sorted(changes.get('calls', ()))}</p>")]
                for voice in audiences}


@pytest.fixture
def live(app: Flask) -> Iterator[tuple[Hub, Recorder, Board]]:
    engine = db.engine
    assert engine is not None
    hub, recorder = Hub(), Recorder()
    hub.configure(recorder, latest=lambda: sequence.latest(engine),
                  catch_up=lambda after, missing: sequence.since(engine, after, missing),
                  catch_up_interval=0.1)
    board = Board(1, "supervisor")
    hub.register(board)
    yield hub, recorder, board
    hub.stop()


def wait_for(board: Board, needle: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    got: list[str] = []
    while time.monotonic() < deadline:
        try:
            got.append(board.outbox.get(timeout=0.05))
        except Exception:
            continue
        if needle in got[-1]:
            return got[-1]
    raise AssertionError(f"{needle!r} never reached the board; got {got!r}")


def commit_elsewhere(app: Flask, call_id: int) -> int:
    """Commit a change through another engine on the same database, and never publish it."""
    engine = make_engine(app.config["DESK_DATABASE_URL"])
    try:
        with Session(engine) as session:
            seq = sequence.record(session, {"calls": {call_id}})
            session.commit()
        return seq
    finally:
        engine.dispose()


def test_a_change_no_process_published_reaches_boards_from_the_database(
    app: Flask, live: tuple[Hub, Recorder, Board],
) -> None:
    hub, recorder, board = live
    wait_until(lambda: hub.sequence.top is not None)
    commit_elsewhere(app, 41)
    assert wait_for(board, "[41]") == "<p>[41]</p>"
    assert hub.caught_up == 1
    # Redis brings the same number afterwards: it is not delivered twice.
    seq = commit_elsewhere(app, 42)
    wait_for(board, "[42]")
    hub._put(({"calls": {42}}, False, time.monotonic(), (seq,)))
    wait_until(lambda: hub.duplicates == 1)
    assert [c for c in recorder.calls if c.get("calls") == {42}] == [{"calls": {42}}]


def test_a_number_that_commits_late_is_still_delivered(
    app: Flask, live: tuple[Hub, Recorder, Board],
) -> None:
    """PostgreSQL hands out numbers before commit: 11 may commit after 12. The gap is read
    again until it turns up."""
    hub, _, board = live
    wait_until(lambda: hub.sequence.top is not None)
    late = commit_elsewhere(app, 50)
    with app.app_context():  # pretend it was not there yet: delete it, deliver a later one
        row = db.session.get(LiveChange, late)
        saved = dict(row.changes)  # type: ignore[union-attr]
        db.session.delete(row)
        db.session.commit()
    hub._put(({"calls": {51}}, False, time.monotonic(), (late + 1,)))
    wait_for(board, "[51]")
    assert late in hub.sequence.missing
    with app.app_context():  # now it commits
        db.session.add(LiveChange(seq=late, changes=saved))
        db.session.commit()
    wait_for(board, "[50]")
    assert late not in hub.sequence.missing


def test_a_failed_render_is_retried_with_what_changed_meanwhile(
    live: tuple[Hub, Recorder, Board], caplog: pytest.LogCaptureFixture,
) -> None:
    hub, recorder, board = live
    recorder.failing = 2
    with caplog.at_level(logging.WARNING, logger="desk.live.hub"):
        hub.publish({"calls": {60}})
        got = wait_for(board, "60")
    assert "60" in got and hub.render_failures == 2
    assert "live update render failed" in caplog.text


def wait_until(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.02)
