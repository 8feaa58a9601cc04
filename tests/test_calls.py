"""desk.services.ingest: the state machine is idempotent and order-tolerant (property-based)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event, select

from desk.domain.state import STATE_RANK
from desk.extensions import db
from desk.models import Call, Delivery
from desk.providers.placetel import parse as placetel
from desk.services import ingest

T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
_example = itertools.count()
COMPARED = (
    "provider", "direction", "from_number", "to_number", "agent_id", "answered_by", "state",
    "started_at", "ringing_at", "answered_at", "ended_at", "duration", "end_cause",
    "recording_state", "version",
)


def deliveries(call_id: str, hangup: str = "accepted", duration: int = 95) -> list[tuple]:
    """A call's Notify deliveries in the clean order, each with the time it happened."""
    common = {"from": "022129191999", "to": "022129191000", "call_id": call_id}
    items = [
        ({"event": "IncomingCall", **common}, T0),
        ({"event": "CallAccepted", "peer": "777ann@fpbx.de", **common}, T0 + timedelta(seconds=7)),
        ({"event": "HungUp", "type": hangup, "duration": str(duration), **common},
         T0 + timedelta(seconds=7 + duration)),
    ]
    if hangup != "accepted":
        items = [items[0], ({**items[2][0], "duration": "0"}, items[2][1])]
    return items


def apply(form: dict, at: datetime) -> ingest.IngestResult:
    with db.new_session() as session:
        return ingest.ingest(session, "placetel", placetel.parse(form, at), str(form), None)


def row(call_id: str) -> dict:
    with db.new_session() as session:
        call = session.scalars(select(Call).where(Call.provider_call_id == call_id)).one()
        return {name: getattr(call, name) for name in COMPARED}


@pytest.fixture
def ctx(app: Flask, users: dict[str, int]) -> Iterator[Flask]:
    with app.app_context():
        yield app


def test_clean_order_makes_a_complete_answered_call(ctx: Flask, users: dict[str, int]) -> None:
    for form, at in deliveries("c1"):
        apply(form, at)
    call = row("c1")
    assert call["state"] == "ended"
    assert call["agent_id"] == users["ann"]
    assert call["answered_at"] == T0 + timedelta(seconds=7)
    assert call["ended_at"] == T0 + timedelta(seconds=102)
    assert (call["duration"], call["end_cause"]) == (95, "accepted")


def test_a_retried_delivery_changes_nothing(ctx: Flask) -> None:
    form, at = deliveries("c2")[0]
    assert apply(form, at).status == "applied"
    before = row("c2")
    assert apply(form, at + timedelta(seconds=3)).status == "duplicate"
    assert row("c2") == before
    with db.new_session() as session:
        statuses = session.scalars(
            select(Delivery.status).where(Delivery.provider_call_id == "c2").order_by(Delivery.id)
        ).all()
    assert statuses == ["applied", "duplicate"]  # the retry is still logged as received


def test_every_delivery_is_filed_under_its_own_call(ctx: Flask) -> None:
    """The first delivery is filed after its call is created, the later ones and retries
    by the INSERT itself: each under its own call, with another call's deliveries between."""
    first, second = deliveries("f1"), deliveries("f2")
    for (a, at_a), (b, at_b) in zip(first, second, strict=True):
        apply(a, at_a)
        apply(b, at_b)
    retried = apply(*first[1])
    with db.new_session() as session:
        ids = dict(session.execute(select(Call.provider_call_id, Call.id)).all())
        filed = session.execute(select(Delivery.provider_call_id, Delivery.call_id,
                                       Delivery.status).order_by(Delivery.id)).all()
    assert retried.status == "duplicate" and retried.call_ids == (ids["f1"],)
    assert [status for _ref, _call, status in filed] == ["applied"] * 6 + ["duplicate"]
    assert all(call == ids[ref] for ref, call, _status in filed), filed


def test_a_new_call_is_looked_up_once_by_its_first_delivery(ctx: Flask) -> None:
    """The delivery's INSERT already looks its call up (to file itself under it); a call it
    found missing is not read again before it is created. Later deliveries read it, locked."""
    lookups: list[str] = []

    def note(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "provider_call_id" in statement:
            lookups.append(statement)

    first, second, _third = deliveries("once")
    event.listen(db.engine, "before_cursor_execute", note)
    try:
        apply(*first)
        assert lookups == []
        apply(*second)
        assert len(lookups) == 1
    finally:
        event.remove(db.engine, "before_cursor_execute", note)
    assert row("once")["state"] == "talking"


def test_late_ringing_never_revives_an_ended_call(ctx: Flask) -> None:
    incoming, accepted, hungup = deliveries("c3")
    apply(*hungup)
    apply(*accepted)
    apply(*incoming)
    assert row("c3")["state"] == "ended"


def test_hangup_alone_creates_a_complete_ended_call(ctx: Flask) -> None:
    _incoming, hungup = deliveries("c4", hangup="missed")
    apply(*hungup)
    call = row("c4")
    assert call["state"] == "ended"
    assert (call["from_number"], call["to_number"]) == ("022129191999", "022129191000")
    assert call["started_at"] == call["ended_at"] == hungup[1]
    assert (call["end_cause"], call["duration"], call["answered_at"]) == ("missed", 0, None)


@settings(
    max_examples=60, deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    data=st.data(),
    hangup=st.sampled_from(placetel.HANGUP_TYPES),
)
def test_any_order_and_duplication_ends_in_the_clean_row(
    ctx: Flask, data: st.DataObject, hangup: str
) -> None:
    n = next(_example)
    clean_id, messy_id = f"clean-{n}-{hangup}", f"messy-{n}-{hangup}"
    for form, at in deliveries(clean_id, hangup):
        apply(form, at)

    messy = deliveries(messy_id, hangup)
    sequence = data.draw(
        st.lists(st.sampled_from(range(len(messy))), min_size=1, max_size=8)
        .map(lambda picks: picks + list(range(len(messy))))  # everything arrives at least once
        .flatmap(st.permutations),
        label="delivery order",
    )
    ranks = []
    for index in sequence:
        apply(*messy[index])
        ranks.append(STATE_RANK[row(messy_id)["state"]])
    assert ranks == sorted(ranks), "state moved backwards"
    assert row(messy_id) == row(clean_id)


@pytest.mark.parametrize(
    ("answered_by", "found"),
    [("777ann@fpbx.de", "ann"), ("sip:777ANN@fpbx.de", "ann"), ("777ann", "ann"),
     ("101", "ann"), ("777a%", None), ("777_nn", None), ("777bob@other.host", None), ("", None)],
)
def test_the_answering_party_finds_its_agent(
    ctx: Flask, users: dict[str, int], answered_by: str, found: str | None
) -> None:
    with db.new_session() as session:
        agent = ingest.find_agent(session, answered_by)
        assert (agent.name if agent else None) == found
