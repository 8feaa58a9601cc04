"""``queries.current_calls``: each agent's newest live call, whatever else they hold.

A board push asks for the agents it names; an agent may hold many live calls at once (a
queue, or calls whose end never came). Only the newest of each is loaded as a ``Call``, and
not at all when the push already holds it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import event

from desk.extensions import db
from desk.models import Call, utcnow
from desk.services import queries


def call(agent_id: int | None, state: str, minutes_ago: int, ref: str) -> Call:
    started = utcnow() - timedelta(minutes=minutes_ago)
    return Call(provider="placetel", provider_call_id=ref, direction="inbound", state=state,
                agent_id=agent_id, from_number="0301", started_at=started,
                ended_at=started if state == "ended" else None)


@pytest.fixture
def calls(app: Flask, users: dict[str, int]) -> Iterator[dict[str, int]]:
    ann, bob = users["ann"], users["bob"]
    rows = {
        "ann-old": call(ann, "talking", 30, "ann-old"),
        "ann-held": call(ann, "held", 20, "ann-held"),
        "ann-new": call(ann, "talking", 10, "ann-new"),
        "ann-ended": call(ann, "ended", 1, "ann-ended"),  # newer, but over
        "bob-new": call(bob, "ringing", 5, "bob-new"),
        "queued": call(None, "ringing", 2, "queued"),  # nobody's yet
    }
    with app.app_context():
        db.session.add_all(rows.values())
        db.session.commit()
        yield {name: row.id for name, row in rows.items()}
        db.session.remove()


def statements(app: Flask) -> list[str]:
    """The SELECTs issued from now on (SQLite's deferred ``BEGIN`` is one more)."""
    seen: list[str] = []

    def note(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", note)
    return seen


def test_each_agent_gets_the_newest_of_their_live_calls(
    app: Flask, users: dict[str, int], calls: dict[str, int]
) -> None:
    with app.app_context():
        session = db.session()
        session.expunge_all()
        current = queries.current_calls(session)
        assert {agent: c.id for agent, c in current.items()} == {
            users["ann"]: calls["ann-new"], users["bob"]: calls["bob-new"]}
        assert current[users["ann"]].agent is not None  # loaded as a page needs it
        only_bob = queries.current_calls(session, [users["bob"], users["sue"]])
        assert {agent: c.id for agent, c in only_bob.items()} == {
            users["bob"]: calls["bob-new"]}
        assert queries.current_calls(session, []) == {}


def test_a_call_the_session_holds_is_not_read_again(
    app: Flask, users: dict[str, int], calls: dict[str, int]
) -> None:
    with app.app_context():
        session = db.session()
        session.expunge_all()
        seen = statements(app)
        first = queries.current_calls(session, [users["ann"]])
        assert len(seen) == 2  # the (agent, id) scan, then ann's newest call
        seen.clear()
        # Held now (a push holds the calls it loaded; the session's map is weak):
        again = queries.current_calls(session, [users["ann"]])
        assert again[users["ann"]] is first[users["ann"]]
        assert len(seen) == 1, seen
