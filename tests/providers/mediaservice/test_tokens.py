"""Callback tokens are recent and accepted once; playback goes only to the storage hosts.

Callbacks are signed with a provider key pair of the test's own and posted to the webhook;
the replay cache is the database (no ``DESK_REDIS_URL``) or the real Redis at
``DESK_TEST_REDIS_URL``. Playback asks a loopback stand-in mediaservice whose answer names
the host the test chooses.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, text

from desk import create_app
from desk.cli import upgrade_database
from desk.extensions import db
from desk.models import Call, Delivery, UsedToken, utcnow
from desk.providers.mediaservice.client import playback_url_allowed
from desk.providers.mediaservice.signature import REDIS_PREFIX
from desk.settings import SettingsError, load_settings
from tests.conftest import add_user, base_config, login
from tests.mediaservice_standin import DOMAIN, StandIn, key_pair
from tests.services import shared_redis_url

TEN_YEARS = 10 * 365 * 86400


@pytest.fixture(scope="module")
def provider_keys() -> tuple[str, str]:
    return key_pair()


def make_app(tmp_path: Path, provider_public: str, **settings: Any) -> Flask:
    (tmp_path / "provider.pub").write_text(provider_public)
    app = create_app(base_config(f"sqlite:///{tmp_path / 'desk.sqlite3'}", **{
        "DESK_MEDIASERVICE_URL": "http://127.0.0.1:9", "DESK_MEDIASERVICE_DOMAIN": DOMAIN,
        "DESK_MEDIASERVICE_CALLBACK_KEY_FILE": str(tmp_path / "provider.pub"), **settings,
    }))
    upgrade_database(app)
    return app


@pytest.fixture(params=["database", pytest.param("redis", marks=pytest.mark.redis)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def app(tmp_path: Path, provider_keys: tuple[str, str], backend: str) -> Iterator[Flask]:
    extra = {"DESK_REDIS_URL": shared_redis_url()} if backend == "redis" else {}
    yield make_app(tmp_path, provider_keys[1], **extra)
    db.dispose()


def token(private_key: str, **claims: Any) -> str:
    """A callback token: iat now, exp in 60 s, a fresh jti, then ``claims`` (None drops)."""
    now = int(time.time())
    everything = {"iss": "mediaservice", "iat": now, "exp": now + 60, "jti": uuid.uuid4().hex,
                  **claims}
    return jwt.encode({k: v for k, v in everything.items() if v is not None}, private_key,
                      algorithm="RS256")


def post(client: FlaskClient, bearer: str, session_id: str) -> Any:
    return client.post("/webhooks/mediaservice/sessionCompleted",
                       json={"sessionId": session_id},
                       headers={"Authorization": f"Bearer {bearer}"})


def kept(app: Flask) -> list[str | None]:
    with app.app_context():
        return list(db.session.scalars(select(Delivery.provider_call_id).order_by(Delivery.id)))


def test_a_token_is_recent_and_accepted_once(
    app: Flask, provider_keys: tuple[str, str], backend: str,
) -> None:
    private = provider_keys[0]
    client = app.test_client()
    # Only exp, ten years ahead, no iat: usable for ten years, so refused.
    far = post(client, token(private, iat=None, exp=int(time.time()) + TEN_YEARS), "s-far")
    assert far.status_code == 401 and "no iat" in far.get_json()["message"]

    fresh = token(private)
    assert post(client, fresh, "s-1").status_code == 200
    # The same token again, with another body: the replay that used to pass.
    for session_id in ("s-1", "s-forged"):
        replayed = post(client, fresh, session_id)
        assert replayed.status_code == 401 and "used before" in replayed.get_json()["message"]
    assert post(client, token(private), "s-2").status_code == 200  # a fresh one still passes

    # No jti: the token is its signature. The same signature written with base64 padding
    # (which verifiers accept: some issuers send it) is another string, but the same token.
    plain = token(private, jti=None)
    assert post(client, plain, "s-3").status_code == 200
    padded = plain + "=" * (-len(plain.rsplit(".", 1)[1]) % 4)
    assert padded != plain
    copy = post(client, padded, "s-forged")
    assert copy.status_code == 401 and "used before" in copy.get_json()["message"]

    assert kept(app) == ["s-1", "s-2", "s-3"]  # nothing of the refused ones
    if backend == "redis":
        server = redis.Redis.from_url(shared_redis_url())
        keys = [k for k in server.scan_iter(match=REDIS_PREFIX + "*")
                if 0 < server.ttl(k) <= 300 + 30 + 1]
        assert len(keys) >= 3  # remembered no longer than the token could be accepted
        server.close()
        with app.app_context():
            assert db.session.scalars(select(UsedToken)).all() == []
    else:
        with app.app_context():
            rows = db.session.scalars(select(UsedToken)).all()
            assert len(rows) == 3
            assert all(0 < (row.expires_at - utcnow()).total_seconds() <= 330 for row in rows)


def test_the_maximum_age_is_a_setting(tmp_path: Path, provider_keys: tuple[str, str]) -> None:
    app = make_app(tmp_path, provider_keys[1], DESK_MEDIASERVICE_TOKEN_MAX_AGE=60)
    try:
        client = app.test_client()
        old = post(client, token(provider_keys[0], iat=int(time.time()) - 120), "s-old")
        assert old.status_code == 401 and "older than 60 s" in old.get_json()["message"]
        recent = post(client, token(provider_keys[0], iat=int(time.time()) - 20), "s-ok")
        assert recent.status_code == 200
    finally:
        db.dispose()


def test_expired_used_tokens_are_purged(tmp_path: Path, provider_keys: tuple[str, str]) -> None:
    app = make_app(tmp_path, provider_keys[1])
    try:
        with app.app_context():
            db.session.add(UsedToken(jti="jti-long-gone", expires_at=utcnow().replace(year=2020)))
            db.session.commit()
        assert post(app.test_client(), token(provider_keys[0]), "s-1").status_code == 200
        with app.app_context():
            assert [row.jti for row in db.session.scalars(select(UsedToken))] != []
            assert db.session.get(UsedToken, "jti-long-gone") is None
    finally:
        db.dispose()


def test_a_token_whose_callback_failed_may_be_sent_again(
    tmp_path: Path, provider_keys: tuple[str, str],
) -> None:
    """The desk answers 5xx (here: the database refuses the delivery): the provider's retry
    with the same token is not a replay."""
    app = make_app(tmp_path, provider_keys[1])
    try:
        with app.app_context():
            db.session.execute(text(
                "CREATE TRIGGER refuse BEFORE INSERT ON deliveries WHEN NEW.payload LIKE "
                "'%s-retry%' BEGIN SELECT RAISE(ABORT, 'refused'); END"))
            db.session.commit()
        client = app.test_client()
        bearer = token(provider_keys[0])
        assert post(client, bearer, "s-retry").status_code == 503  # not stored: send again
        with app.app_context():
            db.session.execute(text("DROP TRIGGER refuse"))
            db.session.commit()
        assert post(client, bearer, "s-retry").status_code == 200
        assert post(client, bearer, "s-retry").status_code == 401  # and once is once
    finally:
        db.dispose()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DESK_MEDIASERVICE_TOKEN_MAX_AGE": "0"}, "DESK_MEDIASERVICE_TOKEN_MAX_AGE"),
        ({"DESK_MEDIASERVICE_STORAGE_HOSTS": "https://files.example.com/"},
         "DESK_MEDIASERVICE_STORAGE_HOSTS takes host names"),
        ({"DESK_MEDIASERVICE_STORAGE_HOSTS": "*.example.com"},
         "DESK_MEDIASERVICE_STORAGE_HOSTS takes host names"),
    ],
)
def test_token_and_storage_settings_that_cannot_work(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings({"TESTING": True}, environ=env)


def test_storage_hosts_are_read_as_host_names() -> None:
    config = load_settings({"TESTING": True}, environ={
        "DESK_MEDIASERVICE_STORAGE_HOSTS": " Files.Example.com., cdn.example.net ,"})
    assert config["DESK_MEDIASERVICE_STORAGE_HOSTS"] == ("files.example.com", "cdn.example.net")
    assert load_settings({"TESTING": True}, environ={})["DESK_MEDIASERVICE_TOKEN_MAX_AGE"] == 300


# -- playback ----------------------------------------------------------------------------------


@pytest.fixture
def desk_keys() -> tuple[str, str]:
    return key_pair()


@pytest.fixture
def standin(desk_keys: tuple[str, str]) -> Iterator[StandIn]:
    server = StandIn(desk_url="", desk_public_key=desk_keys[1],
                     provider_private_key=key_pair()[0])
    yield server
    server.stop()


@pytest.fixture
def playback(tmp_path: Path, standin: StandIn, desk_keys: tuple[str, str]) -> Any:
    """``playback(**settings)`` → (app on the stand-in, id of a call with a recording)."""
    (tmp_path / "desk.pem").write_text(desk_keys[0])

    def make(**settings: Any) -> tuple[Flask, int]:
        app = create_app(base_config(f"sqlite:///{tmp_path / 'desk.sqlite3'}", **{
            "DESK_MEDIASERVICE_URL": standin.url, "DESK_MEDIASERVICE_DOMAIN": DOMAIN,
            "DESK_MEDIASERVICE_KEY_FILE": str(tmp_path / "desk.pem"), **settings,
        }))
        upgrade_database(app)
        add_user(app, "sue", role="supervisor", extension="100")
        with app.app_context():
            call = Call(provider="mediaservice", provider_call_id="s-rec",
                        direction="inbound", state="ended", recording_state="ready",
                        started_at=utcnow(), ended_at=utcnow(),
                        recording_file_name="desk-call-1-20260101T000000Z.mp3",
                        provider_facts={})
            db.session.add(call)
            db.session.commit()
            return app, call.id

    yield make
    db.dispose()


def test_playback_goes_only_to_the_storage_hosts(playback: Any, standin: StandIn) -> None:
    app, call_id = playback()
    supervisor = app.test_client()
    login(supervisor, "sue")
    # Default: the host of DESK_MEDIASERVICE_URL (the stand-in's own /files/).
    own = supervisor.get(f"/calls/{call_id}/recording")
    assert own.status_code == 302
    assert own.headers["Location"].startswith(f"{standin.url}/files/desk-call-1-")

    for foreign in ("https://recordings.example.net/desk-call-1.mp3?X-Amz-Signature=abc",
                    "https://127.0.0.1.example.net/x.mp3",
                    f"https://evil.example.net\\@{standin.url.split('//')[1]}/x.mp3",
                    "javascript:alert(1)"):
        standin.playback_url = foreign
        refused = supervisor.get(f"/calls/{call_id}/recording")
        assert refused.status_code == 502, foreign
        assert "outside its storage hosts" in refused.get_data(as_text=True)
        assert "Location" not in refused.headers


def test_storage_hosts_allow_their_subdomains(playback: Any,
                                                          standin: StandIn) -> None:
    app, call_id = playback(DESK_MEDIASERVICE_STORAGE_HOSTS="files.example.net")
    supervisor = app.test_client()
    login(supervisor, "sue")
    standin.playback_url = "https://eu.files.example.net/desk-call-1.mp3?sig=1"
    allowed = supervisor.get(f"/calls/{call_id}/recording")
    assert allowed.status_code == 302
    assert allowed.headers["Location"] == standin.playback_url
    standin.playback_url = None  # the stand-in's own host is no longer listed
    assert supervisor.get(f"/calls/{call_id}/recording").status_code == 502


@pytest.mark.parametrize(
    ("url", "allow_http", "allowed"),
    [
        ("https://files.example.net/a.mp3?sig=1", False, True),
        ("https://EU.Files.example.net./a.mp3", False, True),
        ("http://files.example.net/a.mp3", False, False),  # HTTPS unless the API is HTTP
        ("http://files.example.net/a.mp3", True, True),
        ("https://evilfiles.example.net/a.mp3", False, False),
        ("https://files.example.net.evil.test/a.mp3", False, False),
        ("https://files.example.net@evil.test/a.mp3", False, False),
        ("https://evil.test\\@files.example.net/a.mp3", False, False),
        ("https://files.example.net:99999/a.mp3", False, False),
        ("https://files.example.net/a b.mp3", False, False),
        ("data:audio/mpeg;base64,AAAA", True, False),
        (None, True, False),
    ],
)
def test_which_playback_urls_are_on_the_storage_hosts(url: Any, allow_http: bool,
                                                     allowed: bool) -> None:
    assert playback_url_allowed(url, ("files.example.net",), allow_http=allow_http) is allowed
