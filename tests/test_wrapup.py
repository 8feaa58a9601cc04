"""After-call work (desk.services.wrapup): the timed wrap-up presence, the disposition and
note on the board's form and through the API, and the supervisors' dispositions list.

Calls come from real Placetel webhooks; time passes in the data (``presence_until`` moved
into the past), not on the clock.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from desk.extensions import db
from desk.live.render import render_changes
from desk.models import AuditEntry, Call, User, utcnow
from desk.services import wrapup
from desk.services.routing_store import routing_agents
from desk.services.sweeper import sweep
from tests.conftest import PLACETEL_AUTH, login

PEER = "777ann@fpbx.de"


def placetel(client: FlaskClient, **form: str) -> None:
    response = client.post("/webhooks/placetel", data=form, auth=PLACETEL_AUTH)
    assert response.status_code == 200, response.get_data(as_text=True)


def talked_and_ended(client: FlaskClient, call_id: str, peer: str = PEER) -> int:
    placetel(client, event="IncomingCall", call_id=call_id, to="0221", **{"from": "0401"})
    placetel(client, event="CallAccepted", call_id=call_id, peer=peer)
    placetel(client, event="HungUp", call_id=call_id, type="accepted", duration="42")
    with db.new_session() as session:
        return session.scalars(select(Call.id).where(Call.provider_call_id == call_id)).one()


def person(user_id: int) -> User:
    with db.new_session() as session:
        user = session.get(User, user_id)
        assert user is not None
        return user


def set_presence_of(user_id: int, presence: str) -> None:
    with db.new_session() as session:
        session.execute(update(User).where(User.id == user_id).values(presence=presence))
        session.commit()


def keep(app: Flask, *labels: str) -> None:
    with app.app_context(), db.new_session() as session:
        sue = session.scalars(select(User).where(User.name == "sue")).one()
        wrapup.replace_dispositions(session, list(labels), sue)


def signed_in(app: Flask, name: str) -> tuple[FlaskClient, str]:
    """A browser of its own for ``name``, and its CSRF token."""
    browser = app.test_client()
    return browser, login(browser, name)


def hx_post(client: FlaskClient, url: str, csrf: str, **form: str) -> tuple[int, str]:
    response = client.post(url, data=form, headers={"HX-Request": "true", "X-CSRFToken": csrf})
    return response.status_code, response.get_data(as_text=True)


# -- the wrap-up presence ------------------------------------------------------------------
def test_an_available_agent_wraps_up_after_a_call_they_talked_on(
    app: Flask, client: FlaskClient, users: dict[str, int],
) -> None:
    before = utcnow()
    talked_and_ended(client, "w-1")
    ann = person(users["ann"])
    assert ann.presence == "wrap-up"
    assert ann.presence_until is not None
    assert timedelta(seconds=55) < ann.presence_until - before < timedelta(seconds=65)


def test_away_agents_and_missed_calls_start_no_wrap_up(
    app: Flask, client: FlaskClient, users: dict[str, int],
) -> None:
    set_presence_of(users["ann"], "away")
    talked_and_ended(client, "w-2")
    assert person(users["ann"]).presence == "away"
    set_presence_of(users["bob"], "available")
    placetel(client, event="IncomingCall", call_id="w-3", to="0221", **{"from": "0402"})
    placetel(client, event="HungUp", call_id="w-3", type="missed", duration="0")
    assert person(users["bob"]).presence == "available"


def test_a_wrap_up_that_is_over_routes_at_once_and_the_sweep_puts_the_presence_back(
    app: Flask, client: FlaskClient, users: dict[str, int],
) -> None:
    talked_and_ended(client, "w-4")
    with app.app_context():
        assert {a.name: a.presence for a in routing_agents(db.session)}["ann"] == "wrap-up"
    with db.new_session() as session:
        session.execute(update(User).where(User.id == users["ann"])
                        .values(presence_until=utcnow() - timedelta(seconds=1)))
        session.commit()
    with app.app_context():
        assert {a.name: a.presence for a in routing_agents(db.session)}["ann"] == "available"
        with db.new_session() as session:
            sweep(session, app.config)
    ann = person(users["ann"])
    assert ann.presence == "available" and ann.presence_until is None


def test_no_automatic_wrap_up_with_zero_seconds(
    app: Flask, client: FlaskClient, users: dict[str, int],
) -> None:
    app.config["DESK_WRAP_UP_SECONDS"] = 0
    talked_and_ended(client, "w-5")
    assert person(users["ann"]).presence == "available"


# -- the form on the board -------------------------------------------------------------------
def test_the_agent_picks_a_disposition_and_writes_a_note_on_the_ended_row(
    app: Flask, client: FlaskClient, users: dict[str, int],
) -> None:
    keep(app, "Sale", "Call back")
    call_id = talked_and_ended(client, "w-6")
    csrf = login(client, "ann")
    board = client.get("/").get_data(as_text=True)
    row = re.search(rf'<article[^>]*id="call-{call_id}".*?</article>', board, re.S)
    assert row is not None and 'name="disposition"' in row.group(0)
    assert "<option>Sale</option>" in row.group(0)

    status, html = hx_post(client, f"/calls/{call_id}/wrap-up", csrf, disposition="Lunch",
                           note="wants a callback")
    assert status == 200
    assert "is not in the list of dispositions (choose one of: Sale, Call back)" in html
    assert re.search(r'<select[^>]*name="disposition"[^>]*aria-invalid="true"', html)
    assert 'value="wants a callback"' in html  # what was typed is kept
    assert person(users["ann"]).presence == "wrap-up"  # nothing saved

    status, html = hx_post(client, f"/calls/{call_id}/wrap-up", csrf, disposition="",
                           note="x")
    assert "Pick a disposition" in html

    status, html = hx_post(client, f"/calls/{call_id}/wrap-up", csrf, disposition="Call back",
                           note="wants a callback on Friday")
    assert status == 200
    assert "Wrapped up:" in html and "<strong>Call back</strong>" in html
    assert "wants a callback on Friday" in html
    with db.new_session() as session:
        call = session.get_one(Call, call_id)
        assert (call.disposition, call.wrap_up_note) == ("Call back",
                                                         "wants a callback on Friday")
        assert call.wrapped_up_by_id == users["ann"]
        entry = session.scalars(select(AuditEntry).where(AuditEntry.call_id == call_id,
                                                         AuditEntry.action == "wrap-up")).one()
        assert entry.user_id == users["ann"] and "Call back" in (entry.detail or "")
    assert person(users["ann"]).presence == "available"  # saving ends the wrap-up


def test_only_the_calls_agent_or_a_supervisor_wraps_up_and_only_an_ended_call(
    app: Flask, client: FlaskClient, users: dict[str, int],
) -> None:
    call_id = talked_and_ended(client, "w-7")
    bob, csrf = signed_in(app, "bob")
    status, _ = hx_post(bob, f"/calls/{call_id}/wrap-up", csrf, note="not mine")
    assert status == 403
    placetel(client, event="IncomingCall", call_id="w-8", to="0221", **{"from": "0403"})
    placetel(client, event="CallAccepted", call_id="w-8", peer="777bob@fpbx.de")
    with db.new_session() as session:
        live = session.scalars(select(Call.id).where(Call.provider_call_id == "w-8")).one()
    status, text = hx_post(bob, f"/calls/{live}/wrap-up", csrf, note="too early")
    assert status == 409 and "still going on" in text
    sue, csrf = signed_in(app, "sue")
    status, html = hx_post(sue, f"/calls/{call_id}/wrap-up", csrf, note="for ann")
    assert status == 200 and "for ann" in html


def test_a_pushed_row_carries_no_form_token_of_its_own(
    app: Flask, client: FlaskClient, users: dict[str, int],
) -> None:
    """Pushes are rendered outside anyone's session; a token in them would be a wrong one."""
    call_id = talked_and_ended(client, "w-9")
    fragments = render_changes(app, {"calls": {call_id}}, {"agent"})
    own = [html for audience, html in fragments if audience == f"agent:{users['ann']}"]
    assert own and 'name="note"' in own[0] and "csrf_token" not in own[0]


# -- the API ---------------------------------------------------------------------------------
def bearer(runner_app: Flask, name: str) -> dict[str, str]:
    result = runner_app.test_cli_runner().invoke(args=["users", "token", name])
    assert result.exit_code == 0, result.output
    return {"Authorization": f"Bearer {result.output.strip().splitlines()[-1]}"}


def test_the_api_saves_a_wrap_up_and_keeps_the_list(
    app: Flask, client: FlaskClient, users: dict[str, int],
) -> None:
    sue, ann = bearer(app, "sue"), bearer(app, "ann")
    response = client.put("/api/v1/dispositions", json={"dispositions": ["Sale", " sale "]},
                          headers=sue)
    assert response.status_code == 422
    assert "“sale” is already on line 1" in response.json["errors"]["dispositions"]
    response = client.put("/api/v1/dispositions", json={"dispositions": ["Sale", "Call back"]},
                          headers=ann)
    assert response.status_code == 403
    response = client.put("/api/v1/dispositions", json={"dispositions": ["Sale", "Call back"]},
                          headers=sue)
    assert response.status_code == 200 and response.json == {"dispositions": ["Sale",
                                                                              "Call back"]}
    assert client.get("/api/v1/dispositions", headers=ann).json == {
        "dispositions": ["Sale", "Call back"]}

    call_id = talked_and_ended(client, "w-10")
    response = client.post(f"/api/v1/calls/{call_id}/wrap-up", json={"note": "x" * 2001},
                           headers=ann)
    assert response.status_code == 422 and set(response.json["errors"]) == {"note"}
    response = client.post(f"/api/v1/calls/{call_id}/wrap-up", json={"colour": "red"},
                           headers=ann)
    assert response.status_code == 422 and "colour" in response.json["message"]
    response = client.post(f"/api/v1/calls/{call_id}/wrap-up",
                           json={"disposition": "Sale", "note": "two seats"}, headers=ann)
    assert response.status_code == 200
    assert (response.json["disposition"], response.json["wrap_up_note"]) == ("Sale",
                                                                            "two seats")
    assert client.get(f"/api/v1/calls/{call_id}", headers=ann).json["disposition"] == "Sale"

    # Taking "Sale" off the list keeps it on the call.
    client.put("/api/v1/dispositions", json={"dispositions": ["Call back"]}, headers=sue)
    assert client.get(f"/api/v1/calls/{call_id}", headers=sue).json["disposition"] == "Sale"
    assert client.get("/api/v1/dispositions", headers=sue).json == {
        "dispositions": ["Call back"]}


# -- the supervisors' page -------------------------------------------------------------------
def test_supervisors_keep_the_list_on_a_page_and_see_what_is_wrong_with_a_line(
    app: Flask, client: FlaskClient, users: dict[str, int],
) -> None:
    csrf = login(client, "sue")
    page = client.get("/supervisor/dispositions").get_data(as_text=True)
    assert "<h1>Dispositions</h1>" in page
    response = client.post("/supervisor/dispositions", data={
        "csrf_token": csrf, "dispositions": "Sale\n\nCall back\n" + "x" * 81})
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert "Line 4: a disposition can have at most 80 characters" in html
    assert "Call back" in html  # what was typed is kept
    response = client.post("/supervisor/dispositions", data={
        "csrf_token": csrf, "dispositions": "Sale\n\nCall back\n"})
    assert response.status_code == 200 and "Saved: 2 dispositions." in response.get_data(
        as_text=True)
    with app.app_context():
        assert wrapup.dispositions(db.session) == ["Sale", "Call back"]
    ann, _ = signed_in(app, "ann")
    assert ann.get("/supervisor/dispositions").status_code == 403


@pytest.mark.parametrize("lines", [["a"] * 2, ["x" * 81]])
def test_bad_lists_are_refused_before_anything_is_stored(
    app: Flask, users: dict[str, int], lines: list[str],
) -> None:
    with pytest.raises(wrapup.WrapUpRefused):
        keep(app, *lines)
    with app.app_context():
        assert wrapup.dispositions(db.session) == []


def test_presence_reads_on_a_call_while_talking_and_offers_done_while_wrapping_up(
    app: Flask, client: FlaskClient, users: dict[str, int],
) -> None:
    placetel(client, event="IncomingCall", call_id="w-11", to="0221", **{"from": "0404"})
    placetel(client, event="CallAccepted", call_id="w-11", peer=PEER)
    fragments = dict(render_changes(app, {"agents": {users["ann"]}}, {"agent", "supervisor"}))
    assert "On a call" in fragments[f"agent:{users['ann']}"]
    assert "On a call" in fragments["supervisor"]  # the agent's tile
    placetel(client, event="HungUp", call_id="w-11", type="accepted", duration="5")
    fragments = dict(render_changes(app, {"agents": {users["ann"]}}, {"agent"}))
    mine = fragments[f"agent:{users['ann']}"]
    assert "Wrapping up until" in mine and "Done" in mine and "On a call" not in mine
    csrf = login(client, "ann")
    response = client.post("/presence", data={"presence": "available"},
                           headers={"HX-Request": "true", "X-CSRFToken": csrf})
    assert response.status_code == 200 and "Wrapping up" not in response.get_data(as_text=True)
    assert person(users["ann"]).presence == "available"


def test_the_wrap_up_shows_in_history_its_csv_and_the_apis_csv(
    app: Flask, client: FlaskClient, users: dict[str, int],
) -> None:
    keep(app, "Sale")
    call_id = talked_and_ended(client, "w-12")
    ann, csrf = signed_in(app, "ann")
    status, _ = hx_post(ann, f"/calls/{call_id}/wrap-up", csrf, disposition="Sale",
                        note="=HYPERLINK(\"x\") two seats")
    assert status == 200
    page = ann.get("/history").get_data(as_text=True)
    row = re.search(rf'<tr id="history-{call_id}">.*?</tr>', page, re.S)
    assert row is not None and "<strong>Sale</strong>" in row.group(0)
    web_csv = ann.get("/history.csv").get_data(as_text=True).splitlines()
    header, line = web_csv[0].split(","), web_csv[1]
    assert header[-2:] == ["disposition", "wrap_up_note"]
    assert line.endswith(",Sale,\"'=HYPERLINK(\"\"x\"\") two seats\"")  # no formula runs
    api_csv = client.get("/api/v1/calls.csv", headers=bearer(app, "ann")).get_data(as_text=True)
    assert api_csv.splitlines()[:2] == web_csv[:2]
