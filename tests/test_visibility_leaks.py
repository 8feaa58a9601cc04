"""One visibility rule for agents everywhere (``desk.services.visibility``): no other agent's
ended call on a board, in its websocket snapshot or pushes, in a refused dial's answer; and
no sign-in link that turns one person's browser into another user.

Boards are real websocket clients (and a real browser) on a gunicorn desk; dials go to the
stand-in Teleforge over loopback HTTP.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from playwright.sync_api import Page, expect
from sqlalchemy import select, update
from websockets.sync.client import ClientConnection

from desk import create_app
from desk.cli import upgrade_database
from desk.extensions import db
from desk.models import Call, User, utcnow
from desk.web.embed import issue
from tests.conftest import PASSWORD, PLACETEL_AUTH, add_user, base_config, login
from tests.servers import LiveServer, desk_env, recv_until, running_desk
from tests.teleforge_standin import TeleforgeStandIn

HOOK = {"Authorization": "Basic " + base64.b64encode(":".join(PLACETEL_AUTH).encode()).decode()}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    path: Path = tmp_path_factory.mktemp("leaks") / "desk.sqlite3"
    with running_desk(desk_env(f"sqlite:///{path}"), PASSWORD) as live:
        yield live


def answered_by_ann_and_ended(server: LiveServer, call_id: str, number: str) -> None:
    assert server.placetel(event="IncomingCall", call_id=call_id, **{"from": number},
                           to="0221").ok
    assert server.placetel(event="CallAccepted", call_id=call_id, peer="777ann@fpbx.de").ok
    assert server.placetel(event="HungUp", call_id=call_id, type="accepted",
                           duration="42").ok


def frames_until(ws: ClientConnection, needle: str) -> list[str]:
    """Every frame up to and including the first that contains ``needle``."""
    frames = [recv_until(ws, "")]
    while needle not in frames[-1]:
        frames.append(recv_until(ws, ""))
    return frames


# -- boards ----------------------------------------------------------------------------------


def test_another_agents_ended_call_leaves_the_board_and_never_reaches_it(
    server: LiveServer,
) -> None:
    ann, bob, sue = (server.login(name, PASSWORD) for name in ("ann", "bob", "sue"))
    with server.board(ann) as on_ann, server.board(bob) as on_bob, \
            server.board(sue) as on_sue:
        for board in (on_ann, on_bob, on_sue):
            board.recv(timeout=5)
        answered_by_ann_and_ended(server, "leak-1", "0301111")
        ended = recv_until(on_ann, 'data-state="ended"')
        assert "0301111" in ended and 'data-section="calls-ended"' in ended
        assert "0301111" in recv_until(on_sue, 'data-state="ended"')

        seen = frames_until(on_bob, 'hx-swap-oob="delete"')
        removal = seen[-1]
        row_id = re.search(r'<article id="(call-\d+)" hx-swap-oob="delete">', removal)
        assert row_id and f'id="{row_id.group(1)}"' in ended  # the same call's row
        assert "0301111" in "".join(seen)  # bob saw it ring and talk in the queue ...
        assert not any('data-state="ended"' in frame for frame in seen)  # ... never ended
        assert "0301111" not in removal and "0:42" not in removal

    # A new connection's snapshot and the page agree with the pushes.
    with server.board(bob) as again:
        assert "0301111" not in again.recv(timeout=5)
    with server.board(ann) as again:
        assert "0301111" in again.recv(timeout=5)
    assert "0301111" not in bob.get(server.url + "/", timeout=5).text
    assert "0301111" in ann.get(server.url + "/", timeout=5).text
    assert "0301111" in sue.get(server.url + "/supervisor", timeout=5).text


def test_a_call_nobody_answered_stays_on_every_agents_board(server: LiveServer) -> None:
    bob = server.login("bob", PASSWORD)
    with server.board(bob) as on_bob:
        on_bob.recv(timeout=5)
        assert server.placetel(event="IncomingCall", call_id="leak-missed", to="0221",
                               **{"from": "0309999"}).ok
        assert server.placetel(event="HungUp", call_id="leak-missed", type="missed").ok
        frame = recv_until(on_bob, 'data-state="ended"')
        assert "0309999" in frame and 'data-section="calls-ended"' in frame
    assert "0309999" in bob.get(server.url + "/", timeout=5).text


@pytest.mark.browser
def test_the_row_disappears_from_another_agents_browser(page: Page, server: LiveServer) -> None:
    page.goto(server.url + "/login")
    page.get_by_label("Name").fill("bob")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#live-status")).to_have_text("live")
    queue = page.locator("#calls-queue .call", has_text="0302222")
    assert server.placetel(event="IncomingCall", call_id="leak-br", to="0221",
                           **{"from": "0302222"}).ok
    assert server.placetel(event="CallAccepted", call_id="leak-br", peer="777ann@fpbx.de").ok
    expect(queue).to_contain_text("Talking")
    assert server.placetel(event="HungUp", call_id="leak-br", type="accepted",
                           duration="9").ok
    expect(queue).to_have_count(0)
    expect(page.locator("#calls-ended")).not_to_contain_text("0302222")
    page.reload()
    expect(page.locator("#live-status")).to_have_text("live")
    expect(page.locator("body")).not_to_contain_text("0302222")


def test_the_api_and_the_call_page_follow_the_same_rule(
    client: FlaskClient, runner: FlaskCliRunner, users: dict,
) -> None:
    for data in ({"event": "IncomingCall", "call_id": "a1", "from": "0301111", "to": "0221"},
                 {"event": "CallAccepted", "call_id": "a1", "peer": "777ann@fpbx.de"},
                 {"event": "HungUp", "call_id": "a1", "type": "accepted", "duration": "30"},
                 {"event": "IncomingCall", "call_id": "m1", "from": "0309999", "to": "0221"},
                 {"event": "HungUp", "call_id": "m1", "type": "missed"}):
        assert client.post("/webhooks/placetel", data=data, headers=HOOK).status_code == 200
    token = runner.invoke(args=["users", "token", "bob"]).output.strip()
    bearer = {"Authorization": f"Bearer {token}"}
    listed = client.get("/api/v1/calls?state=ended", headers=bearer).get_json()["calls"]
    assert [c["provider_call_id"] for c in listed] == ["m1"]
    ids = {c.provider_call_id: c.id for c in calls_in(client.application)}
    assert client.get(f"/api/v1/calls/{ids['a1']}", headers=bearer).status_code == 403
    assert client.get(f"/api/v1/calls/{ids['m1']}", headers=bearer).status_code == 200
    login(client, "bob")
    page = client.get("/").get_data(as_text=True)
    assert "0309999" in page and "0301111" not in page
    assert client.get(f"/calls/{ids['a1']}").status_code == 403


def calls_in(app: Flask) -> list[Call]:
    with app.app_context():
        return list(db.session.scalars(select(Call).order_by(Call.id)))


# -- a refused dial names no call the user may not see ---------------------------------------


@pytest.fixture
def pbx() -> Iterator[TeleforgeStandIn]:
    with TeleforgeStandIn() as standin:
        yield standin


@pytest.fixture
def dial_app(tmp_path: Path, pbx: TeleforgeStandIn) -> Iterator[Flask]:
    app = create_app(base_config(f"sqlite:///{tmp_path / 'desk.sqlite3'}",
                                 DESK_TELEFORGE_URL=pbx.url, DESK_PROVIDER_TIMEOUT="0.5"))
    upgrade_database(app)
    add_user(app, "ann", extension="101")
    add_user(app, "bob", extension="102")
    add_user(app, "sue", role="supervisor", extension="100")
    yield app
    db.dispose()


def bearer(app: Flask, name: str) -> dict[str, str]:
    result = app.test_cli_runner().invoke(args=["users", "token", name])
    assert result.exit_code == 0, result.output
    return {"Authorization": f"Bearer {result.output.strip()}"}


def end_every_call(app: Flask) -> None:
    """The calls ended (as their CDRs would say): from now on they are their agents' only."""
    with app.app_context():
        db.session.execute(update(Call).values(state="ended", ended_at=utcnow()))
        db.session.commit()


DIAL = {"callee": "0820001234", "outbound_id": "random"}


def test_a_409_dial_answer_holds_no_other_agents_call(
    dial_app: Flask, pbx: TeleforgeStandIn,
) -> None:
    client = dial_app.test_client()
    ann, bob, sue = (bearer(dial_app, name) for name in ("ann", "bob", "sue"))
    assert client.post("/api/v1/dial", json={**DIAL, "reference": "crm-77"},
                       headers=ann).status_code == 201
    end_every_call(dial_app)

    theirs = client.post("/api/v1/dial", json={**DIAL, "callee": "0820005678",
                                               "reference": "crm-77"}, headers=bob)
    assert theirs.status_code == 409 and "reference" in theirs.get_json()["errors"]
    assert "call" not in theirs.get_json() and "0820001234" not in theirs.get_data(as_text=True)
    for own in (ann, sue):  # her own call, and a supervisor sees every call
        again = client.post("/api/v1/dial", json={**DIAL, "reference": "crm-77"}, headers=own)
        assert again.status_code == 409
        assert again.get_json()["call"]["to"] == "0820001234"
    assert len(pbx.dials) == 1


def test_idempotency_keys_are_per_user(dial_app: Flask, pbx: TeleforgeStandIn) -> None:
    client = dial_app.test_client()
    ann, bob = bearer(dial_app, "ann"), bearer(dial_app, "bob")
    assert client.post("/api/v1/dial", json=DIAL,
                       headers={**ann, "Idempotency-Key": "1"}).status_code == 201
    answer = client.post("/api/v1/dial", json={**DIAL, "callee": "0820005678"},
                         headers={**bob, "Idempotency-Key": "1"})
    assert answer.status_code == 201 and answer.get_json()["call"]["to"] == "0820005678"
    assert len(pbx.dials) == 2


def test_a_form_replayed_by_another_agent_does_not_name_the_first_call(
    dial_app: Flask, pbx: TeleforgeStandIn,
) -> None:
    form = {**DIAL, "agent": "", "reference": "", "attempt": "b" * 32}
    ann = dial_app.test_client()
    csrf = login(ann, "ann")
    assert ann.post("/dial", data=form, headers={"HX-Request": "true", "X-CSRFToken": csrf}
                    ).status_code == 200
    end_every_call(dial_app)
    bob = dial_app.test_client()
    csrf = login(bob, "bob")
    refused = bob.post("/dial", data={**form, "callee": "0820005678"},
                       headers={"HX-Request": "true", "X-CSRFToken": csrf})
    assert refused.status_code == 409
    text = refused.get_data(as_text=True)
    assert "sent already" in text and "0820001234" not in text
    assert len(pbx.dials) == 1


# -- a sign-in link does not switch users ----------------------------------------------------


@pytest.fixture
def embed_app(tmp_path: Path) -> Iterator[Flask]:
    app = create_app(base_config(f"sqlite:///{tmp_path / 'desk.sqlite3'}",
                                 DESK_EMBED_ORIGINS="https://crm.example.com"))
    upgrade_database(app)
    add_user(app, "ann", extension="101")
    add_user(app, "bob", extension="102")
    yield app
    db.dispose()


def ticket_for(app: Flask, name: str) -> str:
    with app.app_context():
        user = db.session.scalars(select(User).where(User.name == name)).one()
        return issue(user.id, "ticket")


def test_a_ticket_for_another_user_leaves_the_session_as_it_is(embed_app: Flask) -> None:
    browser = embed_app.test_client()
    login(browser, "ann")
    bobs = ticket_for(embed_app, "bob")
    page = browser.get(f"/?desk_ticket={bobs}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'data-embed-user="ann"' in html
    assert "A sign-in link for another user was ignored" in html and "logged in as ann" in html
    assert 'data-embed-user="ann"' in browser.get("/").get_data(as_text=True)
    # The ticket is spent all the same: nobody can use it after this.
    assert embed_app.test_client(use_cookies=False).get(f"/?desk_ticket={bobs}").status_code \
        == 401

    # Her own ticket in her own browser works as before.
    page = browser.get(f"/?desk_ticket={ticket_for(embed_app, 'ann')}")
    assert page.status_code == 200 and "was ignored" not in page.get_data(as_text=True)
