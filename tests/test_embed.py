"""Embedding in a CRM: framing headers and cookies with embedding on and off, CSRF on every
write, and the popup login's code → cookie/token exchange with its tickets (``desk.web.embed``).

Expiry is tested by moving a grant's ``expires_at`` into the past, never by waiting.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from desk import create_app
from desk.cli import upgrade_database
from desk.extensions import db
from desk.models import EmbedGrant, User, utcnow
from desk.web.embed import issue
from tests.conftest import PASSWORD, add_user, base_config, csrf_from, login
from tests.servers import LiveServer, desk_env, prepare

CRM = "https://crm.example.com"
ORIGINS = f"{CRM},http://localhost:5001"
DESK = "http://localhost"  # the test client's origin


@pytest.fixture
def embed_app(tmp_path: Path) -> Iterator[Flask]:
    app = create_app(base_config(f"sqlite:///{tmp_path / 'desk.sqlite3'}",
                                 DESK_EMBED_ORIGINS=ORIGINS))
    upgrade_database(app)
    add_user(app, "ann", extension="101")
    add_user(app, "sue", role="supervisor", extension="100")
    yield app
    db.dispose()


@pytest.fixture
def embed_client(embed_app: Flask) -> FlaskClient:
    return embed_app.test_client()


def set_cookie_header(response) -> str:  # type: ignore[no-untyped-def]
    cookies = [v for k, v in response.headers.items() if k.lower() == "set-cookie"]
    assert cookies, "no Set-Cookie"
    return cookies[-1]


def popup_code(embed_app: Flask, name: str = "ann") -> str:
    """Log in in "the popup" (its own client, first party) and take the code it hands over."""
    popup = embed_app.test_client()
    login(popup, name)
    page = popup.get("/embed/login")
    assert page.status_code == 200
    assert page.headers["Cache-Control"] == "no-store"
    match = re.search(r'data-code="([^"]+)"', page.get_data(as_text=True))
    assert match
    return match.group(1)


def exchange(client: FlaskClient, code: object, origin: str | None = DESK):  # type: ignore[no-untyped-def]
    headers = {"Origin": origin} if origin else {}
    return client.post("/embed/exchange", json={"code": code}, headers=headers)


def expire_all(app: Flask, kind: str) -> None:
    with app.app_context():
        db.session.execute(update(EmbedGrant).where(EmbedGrant.kind == kind)
                           .values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()


# -- headers and cookies ---------------------------------------------------------------------


def test_embedding_off_only_the_desk_itself_may_frame_it(app: Flask, client: FlaskClient,
                                                         users: dict[str, int]) -> None:
    for path in ("/login", "/healthz", "/no-such-page", "/api/v1/openapi.json"):
        response = client.get(path)
        assert response.headers["Content-Security-Policy"] == "frame-ancestors 'self'", path
        assert response.headers["X-Frame-Options"] == "SAMEORIGIN", path
    token = csrf_from(client.get("/login").get_data(as_text=True))
    response = client.post("/login", data={"name": "ann", "password": PASSWORD,
                                           "csrf_token": token})
    cookie = set_cookie_header(response)
    assert "SameSite=Lax" in cookie and "HttpOnly" in cookie
    assert "Partitioned" not in cookie and "SameSite=None" not in cookie
    assert client.post("/embed/exchange", json={"code": "x"}).status_code == 404
    assert "embed.js" not in client.get("/").get_data(as_text=True)


def test_embedding_on_lists_exactly_the_crm_origins(embed_client: FlaskClient) -> None:
    for path in ("/login", "/healthz", "/no-such-page", "/api/v1/openapi.json",
                 "/static/embed/embed.js"):
        response = embed_client.get(path)
        policy = response.headers["Content-Security-Policy"]
        assert policy == f"frame-ancestors 'self' {CRM} http://localhost:5001", path
        assert "*" not in policy
        assert "X-Frame-Options" not in response.headers, path
        response.close()


def test_embedding_on_session_cookie_is_for_third_party_iframes(embed_client: FlaskClient) -> None:
    token = csrf_from(embed_client.get("/login").get_data(as_text=True))
    response = embed_client.post("/login", data={"name": "ann", "password": PASSWORD,
                                                 "csrf_token": token})
    assert response.status_code == 302
    cookie = set_cookie_header(response)
    for attribute in ("Secure", "HttpOnly", "SameSite=None", "Partitioned"):
        assert attribute in cookie, cookie
    page = embed_client.get("/").get_data(as_text=True)
    assert f'data-embed-origins="{CRM} http://localhost:5001"' in page
    assert 'data-embed-user="ann"' in page
    assert "embed/embed.js" in page and "data-embed-popout" in page


def test_embedding_on_every_write_needs_the_csrf_token(embed_client: FlaskClient) -> None:
    csrf = login(embed_client, "ann")
    assert embed_client.post("/presence", data={"presence": "away"}).status_code == 400
    assert embed_client.post("/presence", data={"presence": "away"},
                             headers={"X-CSRFToken": csrf}).status_code == 302
    assert embed_client.put("/api/v1/agents/me/presence",
                            json={"presence": "away"}).status_code == 400
    assert embed_client.post("/logout").status_code == 400
    assert embed_client.post("/logout", headers={"X-CSRFToken": csrf}).status_code == 302


# -- the popup login's code ------------------------------------------------------------------


def test_the_popup_starts_at_the_login_form(embed_client: FlaskClient) -> None:
    response = embed_client.get("/embed/login")
    assert response.status_code == 302
    assert "/login?next=/embed/login" in response.headers["Location"]


def test_a_code_logs_the_iframe_in_once(embed_app: Flask) -> None:
    code = popup_code(embed_app)
    iframe = embed_app.test_client()
    response = exchange(iframe, code)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert body["user"] == "ann" and body["token"].startswith("deskembed_")
    assert body["expires_in"] == 8 * 3600
    assert "Partitioned" in set_cookie_header(response)
    assert iframe.get("/embed/session").get_json() == {"authenticated": True, "via": "cookie"}
    assert iframe.get("/").status_code == 200  # the board, by the cookie the exchange set

    again = exchange(embed_app.test_client(), code)
    assert again.status_code == 400
    assert "already used or has expired" in again.get_json()["error"]


def test_an_expired_code_is_refused(embed_app: Flask) -> None:
    code = popup_code(embed_app)
    expire_all(embed_app, "code")
    response = exchange(embed_app.test_client(), code)
    assert response.status_code == 400
    assert "60 seconds" in response.get_json()["error"]


def test_codes_are_exchanged_by_the_desks_own_origin_only(embed_app: Flask) -> None:
    code = popup_code(embed_app)
    for origin in (CRM, "http://localhost:5001", "http://evil.example", None):
        response = exchange(embed_app.test_client(), code, origin=origin)
        assert response.status_code == 403, origin
    assert exchange(embed_app.test_client(), code).status_code == 200  # still unspent


@pytest.mark.parametrize("payload", [None, "", 42, ["x"], "x" * 5000, "not-a-code"])
def test_bad_codes_get_a_clear_400(embed_client: FlaskClient, payload: object) -> None:
    response = exchange(embed_client, payload)
    assert response.status_code == 400
    assert response.get_json()["error"]


def test_a_body_that_is_not_json_gets_a_clear_400(embed_client: FlaskClient) -> None:
    response = embed_client.post("/embed/exchange", data="code=abc",
                                 headers={"Origin": DESK, "Content-Type": "text/plain"})
    assert response.status_code == 400
    assert "code" in response.get_json()["error"]


# -- without cookies: the iframe token and single-use tickets -------------------------------


def cookieless(app: Flask) -> FlaskClient:
    return app.test_client(use_cookies=False)


def iframe_token(embed_app: Flask, name: str = "ann") -> dict[str, str]:
    body = exchange(embed_app.test_client(), popup_code(embed_app, name)).get_json()
    return {"Authorization": f"Bearer {body['token']}"}


def test_the_token_works_without_cookie_or_csrf_and_ends_at_logout(embed_app: Flask) -> None:
    auth = iframe_token(embed_app)
    client = cookieless(embed_app)
    assert client.get("/embed/session", headers=auth).get_json() == {
        "authenticated": True, "via": "token"}
    response = client.post("/presence", data={"presence": "away"},
                           headers={**auth, "HX-Request": "true"})
    assert response.status_code == 200 and "away" in response.get_data(as_text=True)
    api = client.put("/api/v1/agents/me/presence", json={"presence": "available"}, headers=auth)
    assert api.status_code == 200
    assert client.post("/logout", headers=auth).status_code == 302
    refused = client.get("/", headers=auth)
    assert refused.status_code == 401
    assert "expired" in refused.get_data(as_text=True)


def test_an_expired_or_made_up_token_is_401(embed_app: Flask) -> None:
    auth = iframe_token(embed_app)
    client = cookieless(embed_app)
    made_up = client.get("/api/v1/calls", headers={"Authorization": "Bearer deskembed_nope"})
    assert made_up.status_code == 401
    assert "Log in again" in made_up.get_json()["message"]
    expire_all(embed_app, "token")
    assert client.get("/", headers=auth).status_code == 401


def test_a_ticket_opens_one_page_once_and_brings_a_websocket_ticket(embed_app: Flask) -> None:
    client = cookieless(embed_app)
    auth = iframe_token(embed_app)
    ticket = client.post("/embed/ticket", headers=auth).get_json()
    assert ticket["param"] == "desk_ticket" and ticket["expires_in"] == 60
    page = client.get(f"/?desk_ticket={ticket['ticket']}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'data-embed-auth="ticket"' in html
    assert re.search(r'data-embed-ws-ticket="[\w-]{20,}"', html)
    again = client.get(f"/?desk_ticket={ticket['ticket']}")
    assert again.status_code == 401
    assert "already used" in again.get_data(as_text=True)


def test_an_expired_ticket_is_401_and_tickets_need_a_login(embed_app: Flask) -> None:
    client = cookieless(embed_app)
    auth = iframe_token(embed_app)
    ticket = client.post("/embed/ticket", headers=auth).get_json()["ticket"]
    expire_all(embed_app, "ticket")
    assert client.get(f"/?desk_ticket={ticket}").status_code == 401
    assert client.get("/?desk_ticket=").status_code == 401
    # no token and no cookie: refused before anything else, by the CSRF check
    assert client.post("/embed/ticket").status_code == 400


def test_the_websocket_takes_a_ticket_once(tmp_path: Path) -> None:
    env = desk_env(f"sqlite:///{tmp_path / 'desk.sqlite3'}", DESK_EMBED_ORIGINS=CRM)
    prepare(env, PASSWORD)
    server = LiveServer(env)
    try:
        app = create_app(base_config(env["DESK_DATABASE_URL"], DESK_EMBED_ORIGINS=CRM))
        with app.app_context():
            ann = db.session.scalars(select(User).where(User.name == "ann")).one()
            ticket = issue(ann.id, "ticket")
        db.dispose()
        url = f"ws://127.0.0.1:{server.port}/ws?desk_ticket={ticket}"
        with connect(url, open_timeout=5) as ws:
            assert 'id="calls-mine"' in str(ws.recv(timeout=5))
        with pytest.raises(InvalidStatus) as refused:
            connect(url, open_timeout=5)
        assert refused.value.response.status_code == 401
    finally:
        server.stop()


# -- pages and the example command -----------------------------------------------------------


def test_the_hubspot_adapter_frames_the_desk_and_loads_the_sdk(embed_client: FlaskClient) -> None:
    page = embed_client.get("/embed/hubspot").get_data(as_text=True)
    assert "vendor/hubspot-calling-extensions.js" in page
    assert '<iframe id="desk"' in page and 'src="/"' in page


def test_the_framed_login_offers_a_new_window(embed_client: FlaskClient) -> None:
    page = embed_client.get("/login").get_data(as_text=True)
    assert "data-embed-login" in page and "Log in in a new window" in page


def test_the_example_crm_page_is_for_demo_mode_only(embed_app: Flask) -> None:
    result = embed_app.test_cli_runner().invoke(args=["embed-example", "--port", "0"])
    assert result.exit_code != 0
    assert "demo mode only" in result.output
