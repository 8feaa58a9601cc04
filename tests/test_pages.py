"""Login, boards and presence, through the app as a browser would use them."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient

from desk.extensions import db
from desk.models import User
from tests.conftest import csrf_from, login


def test_board_needs_a_login(client: FlaskClient) -> None:
    response = client.get("/")
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


def test_wrong_password_says_so_and_stays_on_login(client: FlaskClient, users: dict) -> None:
    token = csrf_from(client.get("/login").get_data(as_text=True))
    response = client.post("/login", data={"name": "ann", "password": "nope", "csrf_token": token})
    assert response.status_code == 401
    assert "do not match" in response.get_data(as_text=True)


def test_login_without_csrf_token_is_refused_with_a_page(client: FlaskClient, users: dict) -> None:
    response = client.post("/login", data={"name": "ann", "password": "x"})
    assert response.status_code == 400
    assert "Reload the page" in response.get_data(as_text=True)


def test_agent_board_shows_sections_and_connects_live(client: FlaskClient, users: dict) -> None:
    login(client, "ann")
    html = client.get("/").get_data(as_text=True)
    for marker in ('id="calls-mine"', 'id="calls-queue"', 'id="calls-ended"', 'ws-connect="/ws"',
                   'id="live-status"', "You are on no call."):
        assert marker in html


def test_login_sets_an_offline_agent_available(
    client: FlaskClient, app: Flask, users: dict
) -> None:
    with app.app_context():
        db.session.get(User, users["ann"]).presence = "offline"
        db.session.commit()
    login(client, "ann")
    with app.app_context():
        assert db.session.get(User, users["ann"]).presence == "available"


def test_next_parameter_cannot_leave_the_site(client: FlaskClient, users: dict) -> None:
    token = csrf_from(client.get("/login").get_data(as_text=True))
    response = client.post(
        "/login?next=//evil.example/x",
        data={"name": "ann", "password": "correct-horse-battery", "csrf_token": token},
    )
    assert response.headers["Location"] == "/"


def test_supervisor_board_is_for_supervisors(client: FlaskClient, users: dict) -> None:
    login(client, "ann")
    assert client.get("/supervisor").status_code == 403
    client.post("/logout", data={"csrf_token": csrf_from(client.get("/").get_data(as_text=True))})
    login(client, "sue")
    html = client.get("/supervisor").get_data(as_text=True)
    assert 'id="agent-' in html and "ann" in html and "bob" in html


def test_presence_changes_with_htmx_and_needs_csrf(
    client: FlaskClient, app: Flask, users: dict
) -> None:
    token = login(client, "ann")
    refused = client.post("/presence", data={"presence": "away"}, headers={"HX-Request": "true"})
    assert refused.status_code == 400
    response = client.post(
        "/presence", data={"presence": "away"},
        headers={"HX-Request": "true", "X-CSRFToken": token},
    )
    assert response.status_code == 200
    assert 'value="away" selected' in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(User, users["ann"]).presence == "away"


def test_unknown_presence_is_a_clear_400(client: FlaskClient, users: dict) -> None:
    token = login(client, "ann")
    response = client.post(
        "/presence", data={"presence": "napping"},
        headers={"HX-Request": "true", "X-CSRFToken": token},
    )
    assert response.status_code == 400
    assert "available, away, wrap-up, offline" in response.get_data(as_text=True)


def test_logout_sets_agent_offline(client: FlaskClient, app: Flask, users: dict) -> None:
    token = login(client, "ann")
    client.post("/logout", data={"csrf_token": token})
    assert client.get("/").status_code == 302
    with app.app_context():
        assert db.session.get(User, users["ann"]).presence == "offline"


def test_unknown_page_is_an_html_404(client: FlaskClient) -> None:
    response = client.get("/no-such-page")
    assert response.status_code == 404
    assert response.mimetype == "text/html"
