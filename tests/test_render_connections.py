"""A board's snapshot and a live render each read through one database connection.

A render that took a second connection while holding its first (a template helper reading
through the request's session) deadlocks the pool as soon as more renders run at once than
the pool has connections: each holds one and waits for another, until the pool's timeout.
That is what a restart looks like, when every board reconnects at the same moment.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from flask import Flask
from sqlalchemy import event

from desk.extensions import db
from desk.live.render import render_snapshot, render_voices
from desk.models import Call, User, utcnow


@pytest.fixture
def ended_call(app: Flask, users: dict[str, int]) -> int:
    """An ended call of ann's: her board shows its wrap-up, which lists the dispositions."""
    with app.app_context():
        call = Call(provider="placetel", provider_call_id="one-connection", direction="inbound",
                    state="ended", agent_id=users["ann"], from_number="0301",
                    started_at=utcnow(), answered_at=utcnow(), ended_at=utcnow())
        db.session.add(call)
        db.session.commit()
        call_id = call.id
        db.session.remove()
    return call_id


@pytest.fixture
def checkouts(app: Flask) -> Iterator[list[int]]:
    """Every connection this thread takes from the pool from now on (the app's own
    background threads, the sweeper and the hub's catch-up, take theirs when they wake)."""
    taken: list[int] = []
    me = threading.get_ident()

    def count(*_args: object) -> None:
        if threading.get_ident() == me:
            taken.append(me)

    with app.app_context():
        event.listen(db.engine, "checkout", count)
        yield taken
        event.remove(db.engine, "checkout", count)


def test_a_snapshot_reads_through_its_own_connection_only(
    app: Flask, users: dict[str, int], ended_call: int, checkouts: list[int]
) -> None:
    with app.test_request_context(), db.consistent_read() as session:
        ann = session.get(User, users["ann"])
        assert ann is not None
        html = render_snapshot(session, ann)
    assert f'id="wrap-up-{ended_call}"' in html and "<option" in html
    assert len(checkouts) == 1


def test_a_live_render_reads_through_one_connection(
    app: Flask, ended_call: int, checkouts: list[int]
) -> None:
    rendered = render_voices(app, {"calls": {ended_call}}, {"": {"agent", "supervisor"}})
    assert any(f'id="wrap-up-{ended_call}"' in html for _, html in rendered[""])
    assert len(checkouts) == 1
