"""Whom a ringing call is offered to (``Call.offered_to``), recorded where each provider asks
the desk's routing, and what boards make of it: the agents it rings get its row marked
*ringing for you* (``desk.live.render``), nobody else does.

Placetel's IncomingCall, Stringee's number answer URL and the mediaservice's newCall go
through the real webhooks of the app of each test; the marks are read from the rendered
pushes and pages.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from desk import create_app
from desk.cli import upgrade_database
from desk.extensions import db
from desk.live.render import render_changes
from desk.models import Call, User
from desk.services.routing_store import rings_for
from tests.conftest import PLACETEL_AUTH, add_user, base_config, login
from tests.mediaservice_standin import key_pair
from tests.providers.mediaservice.test_callbacks import SESSION, Provider, make_app

TOKEN = "stringee-t0ken"


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    app = create_app(base_config(f"sqlite:///{tmp_path / 'desk.sqlite3'}",
                                 DESK_STRINGEE_TOKEN=TOKEN))
    upgrade_database(app)
    yield app
    db.dispose()


@pytest.fixture
def people(app: Flask) -> dict[str, int]:
    return {
        "ann": add_user(app, "ann", extension="101", sip_peer="777ann@fpbx.de",
                        stringee_user_id="user_ann"),
        "bob": add_user(app, "bob", extension="102", sip_peer="777bob@fpbx.de",
                        stringee_user_id="user_bob"),
        "cy": add_user(app, "cy", extension="103"),  # reachable by no provider: never rung
        "sue": add_user(app, "sue", role="supervisor", extension="100"),
    }


def placetel(client: FlaskClient, **form: str) -> None:
    assert client.post("/webhooks/placetel", data=form, auth=PLACETEL_AUTH).status_code == 200


def ring(client: FlaskClient, call_id: str, caller: str = "0301234567") -> None:
    placetel(client, event="IncomingCall", call_id=call_id, to="0221", **{"from": caller})


def the_call(app: Flask, provider_call_id: str) -> Call:
    with app.app_context():
        call = db.session.scalars(
            select(Call).where(Call.provider_call_id == provider_call_id)).one()
        db.session.expunge(call)
        return call


def set_presence(app: Flask, user_id: int, presence: str) -> None:
    with app.app_context():
        db.session.get_one(User, user_id).presence = presence
        db.session.commit()


def pushes(app: Flask, call_id: int) -> list[tuple[str, str]]:
    """The call's rendered pushes for agents, in order, as (audience, row)."""
    return [(audience, html) for audience, html in render_changes(
        app, {"calls": {call_id}}, {"agent"}) if f'id="call-{call_id}"' in html]


def marked(html: str) -> bool:
    return 'data-for-you="true"' in html and "Ringing for you" in html


# -- recorded where routing answers ----------------------------------------------------------


def test_placetel_keeps_the_agents_its_answer_rings_and_a_retry_changes_nothing(
    app: Flask, people: dict[str, int],
) -> None:
    client = app.test_client()
    ring(client, "pt-1")
    call = the_call(app, "pt-1")
    assert call.offered_to == [people["ann"], people["bob"]]  # not cy: no SIP peer
    set_presence(app, people["bob"], "away")
    ring(client, "pt-1")  # Placetel's retry: the answer kept on the call, unchanged
    assert the_call(app, "pt-1").offered_to == [people["ann"], people["bob"]]
    ring(client, "pt-2")
    assert the_call(app, "pt-2").offered_to == [people["ann"]]
    set_presence(app, people["ann"], "offline")
    ring(client, "pt-3")  # nobody can take it: voicemail, offered to no one
    assert the_call(app, "pt-3").offered_to == []


def stringee_number(client: FlaskClient, **params: str) -> Any:
    query = urlencode({"token": TOKEN, **params})
    response = client.get(f"/webhooks/stringee/answer/number?{query}")
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.json


def test_stringees_number_answer_puts_the_call_ringing_on_the_agents_it_connects(
    app: Flask, people: dict[str, int],
) -> None:
    client = app.test_client()
    params = {"from": "84899199866", "to": "842471234567", "uuid": "882696e2",
              "callId": "call-vn-1-OFFER-1", "fromInternal": "false"}
    scco = stringee_number(client, **params)
    assert [leg["to"]["number"] for leg in scco] == ["user_ann", "user_bob"]
    call = the_call(app, "call-vn-1-OFFER-1")
    assert (call.state, call.direction, call.from_number, call.to_number) == (
        "ringing", "inbound", "84899199866", "842471234567")
    assert call.offered_to == [people["ann"], people["bob"]]
    # Asked again for the same call (Stringee acts on the newer answer): the offer follows.
    set_presence(app, people["ann"], "away")
    assert [leg["to"]["number"] for leg in stringee_number(client, **params)] == ["user_bob"]
    assert the_call(app, "call-vn-1-OFFER-1").offered_to == [people["bob"]]
    # Stringee's own events follow on the same row; an earlier "created" changes no state.
    body = {"call_id": "call-vn-1-OFFER-1", "call_status": "created",
            "from": {"number": "84899199866", "type": "external"},
            "to": {"number": "user_bob", "type": "internal"}}
    assert client.post(f"/webhooks/stringee/events?token={TOKEN}", json=body).status_code == 200
    assert the_call(app, "call-vn-1-OFFER-1").state == "ringing"


def test_stringees_number_answer_without_call_id_or_anyone_to_ring_keeps_no_call(
    app: Flask, people: dict[str, int],
) -> None:
    client = app.test_client()
    stringee_number(client, **{"from": "8490", "to": "8424"})  # no callId: nothing to match
    set_presence(app, people["ann"], "offline")
    set_presence(app, people["bob"], "offline")
    assert stringee_number(client, **{"from": "8490", "to": "8424", "callId": "c-nobody"}) == []
    with app.app_context():
        assert db.session.scalars(select(Call)).all() == []


def test_the_mediaservice_keeps_the_one_agent_its_new_call_rings(tmp_path: Path) -> None:
    private, public = key_pair()
    app = make_app(tmp_path, public)
    try:
        answer = Provider(app.test_client(), private).post("newCall").json
        assert answer["destAddr"] == "sip:46890200@pbx.example"
        with app.app_context():
            ann = db.session.scalars(select(User).where(User.name == "ann")).one()
            call = db.session.scalars(select(Call).where(Call.provider_call_id == SESSION)).one()
            assert call.offered_to == [ann.id]
            assert rings_for(call, ann.id)
    finally:
        db.dispose()


# -- what boards make of it ------------------------------------------------------------------


def test_the_agents_a_call_rings_get_it_marked_after_everyone_elses_copy(
    app: Flask, people: dict[str, int],
) -> None:
    client = app.test_client()
    ring(client, "mark-1")
    call = the_call(app, "mark-1")
    rows = pushes(app, call.id)
    audiences = [audience for audience, _ in rows]
    assert audiences == ["agents", f"agent:{people['ann']}", f"agent:{people['bob']}"]
    assert not marked(rows[0][1]) and "no agent yet" in rows[0][1]
    assert all(marked(html) for _, html in rows[1:])
    assert all('data-section="calls-queue"' in html for _, html in rows)
    assert not any("/hangup" in html for _, html in rows)  # nobody's call yet: no buttons

    # Answered by ann: her own row, marked for nobody; bob's copy is the others'.
    placetel(client, event="CallAccepted", call_id="mark-1", peer="777ann@fpbx.de")
    rows = pushes(app, call.id)
    assert [audience for audience, _ in rows] == [f"agent:{people['ann']}",
                                                  f"others:{people['ann']}"]
    assert not any(marked(html) for _, html in rows)


def test_pages_and_snapshots_mark_the_call_for_its_agents_only(
    app: Flask, people: dict[str, int],
) -> None:
    client = app.test_client()
    ring(client, "page-1")
    call_id = the_call(app, "page-1").id
    for name, expected in (("ann", True), ("bob", True), ("cy", False)):
        viewer = app.test_client()
        login(viewer, name)
        page = viewer.get("/").get_data(as_text=True)
        row = re.search(rf'<article[^>]*id="call-{call_id}".*?</article>', page, re.DOTALL)
        assert row, name
        assert marked(row.group(0)) is expected, name
    sue = app.test_client()
    login(sue, "sue")
    assert "data-for-you" not in sue.get("/supervisor").get_data(as_text=True)


def test_an_agents_own_outbound_call_never_rings_for_them(
    app: Flask, people: dict[str, int],
) -> None:
    with app.app_context():
        call = Call(provider="placetel", provider_call_id="out-1", direction="outbound",
                    state="dialling", agent_id=people["ann"], offered_to=[people["ann"]],
                    version=0)
        inbound = Call(provider="placetel", provider_call_id="in-1", direction="inbound",
                       state="ended", offered_to=[people["ann"]], version=0)
        assert not rings_for(call, people["ann"])
        assert not rings_for(inbound, people["ann"])  # over
        inbound.state = "ringing"
        assert rings_for(inbound, people["ann"]) and not rings_for(inbound, people["bob"])
        inbound.offered_to = None
        inbound.agent_id = people["bob"]  # routed to bob by the provider itself
        assert rings_for(inbound, people["bob"]) and not rings_for(inbound, people["ann"])
