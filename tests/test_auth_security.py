"""Logins that are safe to expose: throttled failures, equal work for unknown names, and
sessions and tokens that end when they should (``desk.web.auth``, ``users`` commands).

Throttling is counted in the real stores: in-process for the app fixtures, Redis for two
gunicorn processes sharing it. Nothing waits for a window to pass.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from werkzeug import security

from desk import create_app
from desk.cli import upgrade_database
from desk.extensions import db
from desk.settings import SettingsError, load_settings
from tests.conftest import PASSWORD, base_config, csrf_from, login
from tests.servers import LiveServer, desk_env, prepare
from tests.services import shared_redis_url


def attempt(client: FlaskClient, name: str, password: str = "wrong-password",
            **headers: str) -> Any:
    token = csrf_from(client.get("/login").get_data(as_text=True))
    return client.post("/login", data={"name": name, "password": password, "csrf_token": token},
                       headers=headers)


@contextmanager
def desk_app(path: Path, **extra: Any) -> Iterator[Flask]:
    path.mkdir(parents=True, exist_ok=True)
    app = create_app(base_config(f"sqlite:///{path / 'desk.sqlite3'}", **extra))
    upgrade_database(app)
    try:
        yield app
    finally:
        db.dispose()


@pytest.fixture
def strict_app(tmp_path: Path) -> Iterator[Flask]:
    """Three failures per address, so the address limit is reached before any account's."""
    with desk_app(tmp_path, DESK_LOGIN_LIMIT_ADDRESS="3 per minute") as app:
        yield app


# -- throttling ------------------------------------------------------------------------------


def test_five_failures_for_a_name_get_429_with_retry_after_even_for_the_right_password(
    client: FlaskClient, users: dict,
) -> None:
    for _ in range(5):
        assert attempt(client, "ann").status_code == 401
    refused = attempt(client, "ann", PASSWORD)
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1
    page = refused.get_data(as_text=True)
    assert "Too many failed logins for this name. Wait " in page and "then try again" in page
    assert 'name="password"' in page and 'value="ann"' in page  # the form, to try again later
    # Another name from the same address is not held up by ann's count.
    assert attempt(client, "bob", PASSWORD).status_code == 302


def test_a_name_is_counted_however_it_is_typed(client: FlaskClient, users: dict) -> None:
    for name in ("ann", "Ann", " ANN ", "ann", "aNn"):
        assert attempt(client, name).status_code == 401
    assert attempt(client, "ann", PASSWORD).status_code == 429


def test_successful_logins_are_not_counted(client: FlaskClient, users: dict) -> None:
    for _ in range(8):
        assert attempt(client, "ann", PASSWORD).status_code == 302
        client.post("/logout", data={"csrf_token": csrf_from(client.get("/").get_data(
            as_text=True))})
    assert attempt(client, "ann", PASSWORD).status_code == 302


def test_failures_from_one_address_are_limited_across_names(strict_app: Flask) -> None:
    client = strict_app.test_client()
    for name in ("ann", "nobody", "someone"):
        assert attempt(client, name).status_code == 401
    refused = attempt(client, "fourth")
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    assert "Too many failed logins from this network" in refused.get_data(as_text=True)


def test_forwarded_addresses_are_ignored_unless_a_proxy_is_trusted(
    strict_app: Flask, tmp_path: Path,
) -> None:
    client = strict_app.test_client()
    for n in range(3):  # a client naming a new address each time is still one address
        assert attempt(client, f"u{n}", **{"X-Forwarded-For": f"10.0.0.{n}"}).status_code == 401
    assert attempt(client, "u9", **{"X-Forwarded-For": "10.0.0.9"}).status_code == 429

    with desk_app(tmp_path / "proxied", DESK_LOGIN_LIMIT_ADDRESS="3 per minute",
                  DESK_TRUSTED_PROXIES="1") as app:
        proxied = app.test_client()
        for n in range(3):
            assert attempt(proxied, f"u{n}", **{"X-Forwarded-For": "10.0.0.1"}).status_code \
                == 401
        assert attempt(proxied, "u4", **{"X-Forwarded-For": "10.0.0.1"}).status_code == 429
        assert attempt(proxied, "u5", **{"X-Forwarded-For": "10.0.0.2"}).status_code == 401


def test_failed_crm_code_exchanges_count_and_get_a_json_429(tmp_path: Path) -> None:
    with desk_app(tmp_path, DESK_LOGIN_LIMIT_ADDRESS="3 per minute",
                  DESK_EMBED_ORIGINS="https://crm.example.com") as app:
        client = app.test_client()
        for _ in range(3):
            bad = client.post("/embed/exchange", json={"code": "made-up"},
                              headers={"Origin": "http://localhost"})
            assert bad.status_code == 400
        refused = client.post("/embed/exchange", json={"code": "made-up"},
                              headers={"Origin": "http://localhost"})
        assert refused.status_code == 429
        body = refused.get_json()
        assert int(refused.headers["Retry-After"]) == body["retry_after"] >= 1
        assert body["error"].startswith("Too many failed logins from this network")
        # The same address's login form is held up too: one count for both ways in.
        assert attempt(client, "ann").status_code == 429


@pytest.mark.parametrize("value", ["lots", "", "0 per minute", "5 per fortnight"])
def test_a_malformed_limit_stops_the_desk_with_its_name(value: str) -> None:
    with pytest.raises(SettingsError, match="DESK_LOGIN_LIMIT_ACCOUNT must be a rate"):
        load_settings({"TESTING": True, "DESK_LOGIN_LIMIT_ACCOUNT": value}, environ={})


def test_the_count_is_shared_by_processes_through_redis(tmp_path: Path) -> None:
    env = desk_env(f"sqlite:///{tmp_path / 'desk.sqlite3'}", DESK_REDIS_URL=shared_redis_url(),
                   DESK_REDIS_CHANNEL=f"desk:test:{uuid.uuid4().hex}")
    prepare(env, PASSWORD)
    first, second = LiveServer(env), LiveServer(env)
    try:
        def post(server: LiveServer, password: str) -> requests.Response:
            session = requests.Session()
            page = session.get(server.url + "/login", timeout=5).text
            token = re.search(r'name="csrf_token" value="([^"]+)"', page)
            assert token
            return session.post(server.url + "/login", allow_redirects=False, timeout=5, data={
                "name": "ann", "password": password, "csrf_token": token.group(1)})

        for server in (first, second, first, second, first):
            assert post(server, "wrong-password").status_code == 401
        refused = post(second, PASSWORD)
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    finally:
        first.stop()
        second.stop()


# -- equal work for unknown names ------------------------------------------------------------


def test_an_unknown_name_costs_a_password_hash_like_a_known_one(
    client: FlaskClient, users: dict, monkeypatch: pytest.MonkeyPatch,
) -> None:
    checked: list[str] = []
    real: Callable[[str, str], bool] = security.check_password_hash

    def counting(pwhash: str, password: str) -> bool:
        checked.append(pwhash)
        return real(pwhash, password)

    monkeypatch.setattr(security, "check_password_hash", counting)
    assert attempt(client, "ann").status_code == 401
    assert attempt(client, "nobody-by-this-name").status_code == 401
    assert len(checked) == 2
    known, unknown = checked
    assert known != unknown
    # Same method and cost parameters ("scrypt:32768:8:1"), so the same work.
    assert unknown.split("$", 1)[0] == known.split("$", 1)[0]


# -- sessions end server-side ----------------------------------------------------------------


def copy_session(source: FlaskClient, target: FlaskClient) -> None:
    cookie = source.get_cookie("session")
    assert cookie is not None
    target.set_cookie("session", cookie.value)


def test_a_session_cookie_copied_before_logout_is_dead_after_it(
    app: Flask, client: FlaskClient, users: dict,
) -> None:
    csrf = login(client, "ann")
    copy = app.test_client()
    copy_session(client, copy)
    elsewhere = app.test_client()  # ann's own login in another browser
    login(elsewhere, "ann")
    assert copy.get("/").status_code == 200
    assert elsewhere.get("/").status_code == 200

    client.post("/logout", data={"csrf_token": csrf})
    for dead in (copy, elsewhere):
        response = dead.get("/")
        assert response.status_code == 302 and "/login" in response.headers["Location"]
        assert dead.get("/api/v1/calls").status_code == 401
    # Other users' sessions are theirs: untouched.
    bob = app.test_client()
    login(bob, "bob")
    login(client, "ann")
    assert bob.get("/").status_code == 200 and client.get("/").status_code == 200


def test_a_new_password_ends_every_session_and_the_old_password(
    app: Flask, client: FlaskClient, runner: FlaskCliRunner, users: dict,
) -> None:
    login(client, "ann")
    result = runner.invoke(args=["users", "password", "ann"], input="a-new-password\n")
    assert result.exit_code == 0, result.output
    assert "every session of ann has ended" in result.output
    assert client.get("/").status_code == 302
    assert attempt(client, "ann", PASSWORD).status_code == 401
    assert attempt(client, "ann", "a-new-password").status_code == 302

    short = runner.invoke(args=["users", "password", "ann"], input="short\n")
    assert short.exit_code != 0 and "at least 8 characters" in short.output
    unknown = runner.invoke(args=["users", "password", "nobody"], input="a-new-password\n")
    assert unknown.exit_code != 0 and "No user named 'nobody'" in unknown.output


def test_revoked_api_tokens_stop_working(
    client: FlaskClient, runner: FlaskCliRunner, users: dict,
) -> None:
    tokens = [runner.invoke(args=["users", "token", "ann"]).output.strip() for _ in range(2)]
    bob = runner.invoke(args=["users", "token", "bob"]).output.strip()
    for token in [*tokens, bob]:
        headers = {"Authorization": f"Bearer {token}"}
        assert client.get("/api/v1/calls", headers=headers).status_code == 200
    result = runner.invoke(args=["users", "revoke-tokens", "ann"])
    assert result.exit_code == 0 and "Revoked 2 API tokens of ann" in result.output
    for token in tokens:
        refused = client.get("/api/v1/calls", headers={"Authorization": f"Bearer {token}"})
        assert refused.status_code == 401
    assert client.get("/api/v1/calls",
                      headers={"Authorization": f"Bearer {bob}"}).status_code == 200
    again = runner.invoke(args=["users", "revoke-tokens", "ann"])
    assert "Revoked 0 API tokens" in again.output
