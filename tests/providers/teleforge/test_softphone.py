"""The browser softphone's server half (``desk.web.softphone``) without a browser: its
settings, the phone choice and the stored password, the pages' connect-src, and a dial
placed through the page (the row, the headers by version, a refusal's errors by field, the
news of an answer and an end folded like any event).

The refusal's ``X-Teleforge-Error`` value here is invented (Teleforge documents the
header, not its wording); the browser test gets the same from a real SIP server.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from desk import create_app
from desk.cli import upgrade_database
from desk.extensions import db
from desk.models import AuditEntry, Call, User
from desk.settings import SettingsError, load_settings
from tests.conftest import add_user, base_config, login

WS_URL = "wss://pbx.example.com:8089/ws"


def _app(tmp_path: Path, **extra: Any) -> Flask:
    app = create_app(base_config(f"sqlite:///{tmp_path / 'desk.sqlite3'}", **extra))
    upgrade_database(app)
    return app


@pytest.fixture
def phone_app(tmp_path: Path) -> Iterator[Flask]:
    app = _app(tmp_path, DESK_TELEFORGE_SIP_WS_URL=WS_URL, DESK_TELEFORGE_VERSION="4.0.1",
               DESK_SIP_SECRET_KEY=Fernet.generate_key().decode())
    add_user(app, "ann", extension="101")
    add_user(app, "sue", role="supervisor", extension="100")
    yield app
    db.dispose()


def _json(client: FlaskClient, token: str) -> dict[str, str]:
    return {"X-CSRFToken": token, "Accept": "application/json"}


@pytest.mark.parametrize("name, value, words", [
    ("DESK_TELEFORGE_SIP_WS_URL", "https://pbx.example.com/ws", "ws:// or wss://"),
    ("DESK_TELEFORGE_SIP_WS_URL", "wss:///ws", "ws:// or wss://"),
    ("DESK_TELEFORGE_SIP_DOMAIN", "pbx example", "host name"),
    ("DESK_SIP_SECRET_KEY", "not-a-key", "Fernet key"),
])
def test_bad_softphone_settings_stop_the_desk(name: str, value: str, words: str) -> None:
    with pytest.raises(SettingsError, match=words):
        load_settings({"TESTING": True, name: value}, environ={})


def test_the_domain_defaults_to_the_websocket_host() -> None:
    config = load_settings({"TESTING": True, "DESK_TELEFORGE_SIP_WS_URL": WS_URL}, environ={})
    assert config["DESK_TELEFORGE_SIP_DOMAIN"] == "pbx.example.com"


def test_connect_src_names_the_sip_websocket_only_when_set(
    phone_app: Flask, tmp_path: Path,
) -> None:
    client = phone_app.test_client()
    login(client, "ann")
    policies = client.get("/").headers.getlist("Content-Security-Policy")
    assert any("connect-src 'self' ws://localhost wss://pbx.example.com:8089;" in p
               for p in policies), policies
    plain = _app(tmp_path / "plain")
    add_user(plain, "bob", extension="102")
    other = plain.test_client()
    login(other, "bob")
    page = other.get("/")
    assert "pbx.example.com" not in " ".join(page.headers.getlist("Content-Security-Policy"))
    assert "data-softphone" not in page.get_data(as_text=True)  # no panel without the setting


def test_phone_choice_and_the_stored_password_encrypted(phone_app: Flask) -> None:
    client = phone_app.test_client()
    token = login(client, "ann")
    assert "data-softphone" in client.get("/").get_data(as_text=True)
    bad = client.post("/softphone/phone", data={"phone": "fax"}, headers=_json(client, token))
    assert bad.status_code == 400 and "browser" in bad.get_json()["message"]
    saved = client.post("/softphone/phone", headers=_json(client, token), data={
        "phone": "browser", "sip_password": "pa55-101", "remember": "1"})
    assert saved.get_json() == {"phone": "browser", "remembered": True}
    with phone_app.app_context():
        ann = db.session.scalars(select(User).where(User.name == "ann")).one()
        assert ann.phone == "browser"
        assert ann.sip_password_encrypted and "pa55-101" not in ann.sip_password_encrypted
    creds = client.post("/softphone/credentials", headers=_json(client, token)).get_json()
    assert creds == {"ws_url": WS_URL, "domain": "pbx.example.com", "user": "101",
                     "password": "pa55-101", "error_header": "X-Teleforge-Error"}
    assert client.get("/softphone/credentials").status_code == 405  # never by GET (URL, logs)
    forget = client.post("/softphone/phone", data={"phone": "browser"},
                         headers=_json(client, token))
    assert forget.get_json()["remembered"] is False
    assert client.post("/softphone/credentials",
                       headers=_json(client, token)).get_json()["password"] is None


def test_remembering_needs_the_key(tmp_path: Path) -> None:
    app = _app(tmp_path, DESK_TELEFORGE_SIP_WS_URL=WS_URL)
    add_user(app, "ann", extension="101")
    client = app.test_client()
    token = login(client, "ann")
    answer = client.post("/softphone/phone", headers=_json(client, token), data={
        "phone": "browser", "sip_password": "x", "remember": "1"})
    assert answer.status_code == 409 and "DESK_SIP_SECRET_KEY" in answer.get_json()["message"]
    db.dispose()


def _choose_browser(client: FlaskClient, token: str) -> None:
    client.post("/softphone/phone", data={"phone": "browser"}, headers=_json(client, token))


def _invite(html: str) -> dict[str, Any]:
    marker = "data-softphone-invite='"
    start = html.index(marker) + len(marker)
    return json.loads(html[start:html.index("'", start)])


def test_dial_through_the_browser_makes_the_row_and_the_invite(phone_app: Flask) -> None:
    client = phone_app.test_client()
    token = login(client, "ann")
    _choose_browser(client, token)
    hx = {"X-CSRFToken": token, "HX-Request": "true"}
    not_connected = client.post("/dial", headers=hx, data={
        "callee": "082 000 1234", "outbound_id": "27820001111"})
    assert not_connected.status_code == 409 and "not connected" in not_connected.get_data(
        as_text=True)

    answer = client.post("/dial", headers=hx, data={
        "callee": "082 000 1234", "outbound_id": "27820001111", "reference": "crm-77",
        "softphone": "1"})
    assert answer.status_code == 200
    invite = _invite(answer.get_data(as_text=True))
    assert invite["target"] == "sip:0820001234@pbx.example.com"
    assert invite["headers"] == {"X-Teleforge-Outbound-ID": "27820001111",
                                 "X-Teleforge-Contact-Ref": "crm-77"}
    with phone_app.app_context():
        call = db.session.get_one(Call, invite["call_id"])
        assert (call.provider, call.provider_call_id, call.state) == (
            "teleforge", "crm-77", "dialling")
        assert call.provider_facts["via"] == "softphone"

    report = invite["report"]
    assert client.post(report + "answered", json={}, headers=hx).status_code == 200
    assert client.post(report + "answered", json={}, headers=hx).status_code == 200  # again
    assert client.post(report + "ended", json={"by": "other"}, headers=hx).status_code == 200
    with phone_app.app_context():
        call = db.session.get_one(Call, invite["call_id"])
        assert call.state == "ended" and call.answered_at is not None
        assert call.answered_by == "101" and call.end_cause is None


def test_a_refused_invite_files_teleforge_errors_under_the_fields(phone_app: Flask) -> None:
    client = phone_app.test_client()
    token = login(client, "ann")
    _choose_browser(client, token)
    hx = {"X-CSRFToken": token, "HX-Request": "true"}
    answer = client.post("/dial", headers=hx, data={
        "callee": "0820001234", "outbound_id": "27820001111", "softphone": "1"})
    invite = _invite(answer.get_data(as_text=True))
    refused = client.post(invite["report"] + "failed", headers=hx, json={
        "status": 403, "reason": "Validation failed",
        "errors": ["outbound_id: caller ID not verified"]})
    assert refused.status_code == 422 and refused.headers["X-Desk-Swap"] == "1"
    html = refused.get_data(as_text=True)
    assert "Teleforge: outbound_id: caller ID not verified" in html
    assert 'id="dial-outbound_id-msg" class="field-msg field-msg--error"' in html
    with phone_app.app_context():
        call = db.session.get_one(Call, invite["call_id"])
        assert call.state == "ended" and call.end_cause == "failed"
        assert "caller ID not verified" in (call.action_error or "")
        outcomes = [e.outcome for e in db.session.scalars(
            select(AuditEntry).where(AuditEntry.call_id == call.id).order_by(AuditEntry.id))]
        assert outcomes == ["ok", "refused"]

    bad = client.post(invite["report"] + "failed", headers=hx, json={"status": "x"})
    assert bad.status_code == 400


def test_only_the_calls_agent_reports_and_only_on_softphone_calls(phone_app: Flask) -> None:
    client = phone_app.test_client()
    token = login(client, "ann")
    _choose_browser(client, token)
    hx = {"X-CSRFToken": token, "HX-Request": "true"}
    invite = _invite(client.post("/dial", headers=hx, data={
        "callee": "0820001234", "outbound_id": "random", "softphone": "1"}).get_data(
        as_text=True))
    other = phone_app.test_client()
    other_token = login(other, "sue")
    denied = other.post(invite["report"] + "ended", json={},
                        headers={"X-CSRFToken": other_token})
    assert denied.status_code == 403
    assert client.post("/softphone/calls/999999/ended", json={}, headers=hx).status_code == 404
    assert client.post(invite["report"] + "ringing", json={}, headers=hx).status_code == 404


def test_headers_before_teleforge_4_are_x_platforma(tmp_path: Path) -> None:
    app = _app(tmp_path, DESK_TELEFORGE_SIP_WS_URL=WS_URL, DESK_TELEFORGE_VERSION="3.3",
               DESK_TELEFORGE_SIP_DOMAIN="sip.example.com")
    add_user(app, "ann", extension="101")
    client = app.test_client()
    token = login(client, "ann")
    _choose_browser(client, token)
    answer = client.post("/dial", headers={"X-CSRFToken": token, "HX-Request": "true"}, data={
        "callee": "27820001234", "outbound_id": "tvc_sales", "reference": "r-1",
        "softphone": "1"})
    invite = _invite(answer.get_data(as_text=True))
    assert invite["target"] == "sip:27820001234@sip.example.com"
    assert invite["headers"] == {"X-Platforma-Outbound-ID": "tvc_sales",
                                 "X-Platforma-Contact-Ref": "r-1"}
    assert invite["error_header"] == "X-Platforma-Error"
    db.dispose()
