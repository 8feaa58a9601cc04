"""Input that is not what it should be gets a 4xx naming the problem, never a 500, on SQLite
and PostgreSQL alike; a refused webhook delivery is still kept in the event log.

Each test here is one finding of fuzzing the desk (NUL bytes, ids past the 32-bit columns,
Unicode digits, deep JSON, dates that overflow in UTC, a ``next=`` with CR/LF), run through
the Flask test client on both databases. ``desk_on`` and ``Senders`` are shared with the
fuzz tests (``tests/test_fuzz_*.py``).
"""

from __future__ import annotations

import base64
import html
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
from flask import Flask
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from desk import create_app
from desk.cli import upgrade_database
from desk.extensions import db
from desk.models import ApiToken, Call, Delivery, User
from tests.conftest import PASSWORD, PLACETEL_AUTH, base_config, csrf_from, login
from tests.mediaservice_standin import key_pair
from tests.services import fresh_postgres_database

STRINGEE_TOKEN = "stringee-fuzz-token"
MEDIASERVICE_DOMAIN = "customer.prod-eu-north-1.iotcomms.io"
PLACETEL_HEADERS = {
    "Authorization": "Basic " + base64.b64encode(":".join(PLACETEL_AUTH).encode()).decode()
}
TOO_BIG = 2**31  # one past the largest id an INTEGER column holds


# -- shared with the fuzz tests -----------------------------------------------------------------


@dataclass
class Desk:
    app: Flask
    provider_private_key: str  # signs mediaservice callbacks
    token: str  # a supervisor's API bearer token


def desk_on(database_url: str, tmp: Path, **settings: Any) -> Desk:
    """A migrated desk on ``database_url`` with every webhook authenticated as in
    production (Placetel Basic auth, Stringee token, signed mediaservice callbacks), a
    supervisor ``sue`` and an agent ``ann``, and an API token for ``sue``."""
    private, public = key_pair()
    (tmp / "provider.pub").write_text(public)
    app = create_app(base_config(database_url, **{
        "DESK_STRINGEE_TOKEN": STRINGEE_TOKEN,
        "DESK_MEDIASERVICE_URL": "http://127.0.0.1:9",
        "DESK_MEDIASERVICE_DOMAIN": MEDIASERVICE_DOMAIN,
        "DESK_MEDIASERVICE_CALLBACK_KEY_FILE": str(tmp / "provider.pub"),
        **settings,
    }))
    upgrade_database(app)
    with app.app_context():
        sue = User(name="sue", role="supervisor", extension="100")
        ann = User(name="ann", role="agent", extension="101", sip_peer="777ann@fpbx.de",
                   stringee_user_id="user_1", presence="available")
        for user in (sue, ann):
            user.set_password(PASSWORD)
        db.session.add_all([sue, ann])
        db.session.flush()
        row, token = ApiToken.issue(sue)
        db.session.add(row)
        db.session.commit()
    return Desk(app, private, token)


class Senders:
    """Deliveries as each provider sends them, through one test client."""

    def __init__(self, desk: Desk) -> None:
        self.desk = desk
        self.client = desk.app.test_client()

    def placetel(self, data: bytes | dict[str, str],
                 content_type: str | None = "application/x-www-form-urlencoded",
                 ) -> TestResponse:
        return self.client.post("/webhooks/placetel", data=data, content_type=content_type,
                                headers=PLACETEL_HEADERS)

    def mediaservice(self, callback: str, body: bytes | Any,
                     content_type: str | None = "application/json") -> TestResponse:
        now = int(time.time())
        # A fresh jti each time: a replay cache must not refuse the fuzzer's second request.
        token = jwt.encode({"iss": "mediaservice", "iat": now, "exp": now + 60,
                            "jti": uuid.uuid4().hex},
                           self.desk.provider_private_key, algorithm="RS256")
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        return self.client.post(f"/webhooks/mediaservice/{callback}", data=data,
                                content_type=content_type,
                                headers={"Authorization": f"Bearer {token}"})

    def stringee_answer(self, kind: str, params: dict[str, str]) -> TestResponse:
        return self.client.get(f"/webhooks/stringee/answer/{kind}",
                               query_string={**params, "token": STRINGEE_TOKEN})

    def stringee_event(self, body: bytes | Any,
                       content_type: str | None = "application/json") -> TestResponse:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        return self.client.post("/webhooks/stringee/events", data=data,
                                content_type=content_type,
                                query_string={"token": STRINGEE_TOKEN})

    def api(self, path: str, **kwargs: Any) -> TestResponse:
        headers = {"Authorization": f"Bearer {self.desk.token}", **kwargs.pop("headers", {})}
        method = kwargs.pop("method", "GET")
        return self.client.open(path, method=method, headers=headers, **kwargs)


def count(app: Flask, model: type, **where: Any) -> int:
    with app.app_context():
        query = select(func.count()).select_from(model)
        for name, value in where.items():
            query = query.where(getattr(model, name) == value)
        return int(db.session.scalar(query) or 0)


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres",
                                                                marks=pytest.mark.postgres)])
def desk(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[Desk]:
    tmp = tmp_path_factory.mktemp(f"limits-{request.param}")
    if request.param == "sqlite":
        yield desk_on(f"sqlite:///{tmp / 'desk.sqlite3'}", tmp)
        db.dispose()
        return
    with fresh_postgres_database() as url:
        yield desk_on(url, tmp)
        db.dispose()


@pytest.fixture
def send(desk: Desk) -> Senders:
    return Senders(desk)


def message(response: TestResponse) -> str:
    body = response.get_json(silent=True)
    return str(body.get("message")) if isinstance(body, dict) else response.get_data(as_text=True)


# -- NUL ---------------------------------------------------------------------------------------


def test_a_nul_in_a_placetel_form_is_400_and_the_delivery_is_kept(send: Senders) -> None:
    """PostgreSQL stores no NUL in text: the delivery used to be lost with a 500."""
    before = count(send.desk.app, Delivery, status="rejected")
    response = send.placetel({"event": "IncomingCall", "call_id": "nul-1",
                              "from": "0221", "to": "0301", "peer": "ann\x00"})
    assert response.status_code == 400
    assert "NUL bytes are not allowed" in message(response)
    assert count(send.desk.app, Delivery, status="rejected") == before + 1
    with send.desk.app.app_context():
        kept = db.session.scalars(select(Delivery).where(Delivery.status == "rejected")
                                  .order_by(Delivery.id.desc())).first()
        assert kept is not None and kept.kind == "IncomingCall"
        assert "peer=ann%00" in kept.payload  # as it came, form-encoded
        assert "NUL" in (kept.error or "")
    assert count(send.desk.app, Call, provider_call_id="nul-1") == 0


def test_a_raw_nul_byte_is_kept_escaped(send: Senders) -> None:
    response = send.placetel(b"event=HungUp&call_id=nul-2&type=missed\x00&duration=0")
    assert response.status_code == 400
    with send.desk.app.app_context():
        kept = db.session.scalars(select(Delivery).where(Delivery.provider_call_id == "nul-2")
                                  ).one()
        assert kept.status == "rejected"
        assert kept.payload == "event=HungUp&call_id=nul-2&type=missed\\x00&duration=0"


def test_a_nul_in_a_json_string_is_400_and_kept(send: Senders) -> None:
    before = count(send.desk.app, Delivery, status="rejected")
    event = {"call_status": "started", "call_id": "nul-3", "request_from_user_id": "user_1",
             "from": {"number": "0221"}, "to": {"number": "0301\u0000"}}
    response = send.stringee_event(event)
    assert response.status_code == 400
    assert count(send.desk.app, Delivery, status="rejected") == before + 1
    assert count(send.desk.app, Call, provider_call_id="nul-3") == 0


def test_a_body_that_is_not_utf8_is_kept_byte_for_byte(send: Senders) -> None:
    response = send.placetel(b"event=Bogus&call_id=latin-1&from=M\xfcller")
    assert response.status_code == 400
    with send.desk.app.app_context():
        kept = db.session.scalars(select(Delivery).order_by(Delivery.id.desc())).first()
        assert kept is not None and kept.status == "rejected"
        assert kept.payload == "event=Bogus&call_id=latin-1&from=M\\xfcller"


@pytest.mark.parametrize("path", [
    "/api/v1/calls?provider=pla%00cetel", "/api/v1/calls?number=%00", "/api/v1/agents?x%00=1",
])
def test_a_nul_anywhere_else_is_a_400_naming_it(send: Senders, path: str) -> None:
    response = send.api(path)
    assert response.status_code == 400
    assert "NUL bytes are not allowed" in message(response)


def test_a_nul_in_a_json_api_body_is_a_400_naming_it(send: Senders) -> None:
    response = send.api("/api/v1/agents/me/presence", method="PUT",
                        json={"presence": "away\u0000"})
    assert response.status_code == 400
    assert "NUL bytes are not allowed" in message(response)


def test_a_nul_in_the_login_form_is_a_400(desk: Desk) -> None:
    client = desk.app.test_client()
    token = csrf_from(client.get("/login").get_data(as_text=True))
    response = client.post("/login", data={"name": "sue\x00", "password": "x",
                                           "csrf_token": token})
    assert response.status_code == 400
    assert "NUL bytes are not allowed" in response.get_data(as_text=True)


# -- numbers -------------------------------------------------------------------------------------


def test_an_id_past_the_integer_column_is_no_such_call(send: Senders) -> None:
    response = send.api(f"/api/v1/calls/{TOO_BIG}")
    assert response.status_code == 404
    assert message(response) == f"There is no call {TOO_BIG}."
    assert send.api(f"/api/v1/calls/{TOO_BIG}/hangup", method="POST").status_code == 404
    assert send.api(f"/calls/{TOO_BIG}").status_code == 404


def test_an_id_in_other_digits_is_no_such_call(send: Senders) -> None:
    """Werkzeug's int converter reads Arabic-Indic digits; every call has one address."""
    send.placetel({"event": "IncomingCall", "call_id": "digits-1", "from": "0221", "to": "0301"})
    with send.desk.app.app_context():
        call_id = db.session.scalars(select(Call.id).where(Call.provider_call_id == "digits-1")
                                     ).one()
    other = "".join(chr(0x660 + int(d)) for d in str(call_id))
    assert send.api(f"/api/v1/calls/{call_id}").status_code == 200
    response = send.api(f"/api/v1/calls/{other}")
    assert response.status_code == 404 and "digits 0 to 9" in message(response)


@pytest.mark.parametrize("query", [f"before={TOO_BIG}", "before=-1", "limit=²", "limit=٣",
                                   "limit=" + "9" * 40, "before=١٢"])
def test_api_numbers_out_of_range_or_not_ascii_are_a_400(send: Senders, query: str) -> None:
    response = send.api(f"/api/v1/calls?{query}")
    assert response.status_code == 400
    name = query.split("=")[0]
    assert f"'{name}' must be a whole number" in message(response)


@pytest.mark.parametrize("query", ["page=²", "agent=99999999999", "agent=²"])
def test_history_numbers_out_of_range_or_not_ascii_are_a_400(send: Senders, query: str) -> None:
    response = send.api(f"/history?{query}")
    assert response.status_code == 400
    assert f"'{query.split('=')[0]}' must be a" in html.unescape(response.get_data(as_text=True))


def test_a_unicode_digit_duration_from_placetel_is_400_and_kept(send: Senders) -> None:
    response = send.placetel({"event": "HungUp", "call_id": "sup-2", "type": "missed",
                              "duration": "²"})
    assert response.status_code == 400
    assert "field 'duration' must be whole seconds" in message(response)
    assert count(send.desk.app, Delivery, provider_call_id="sup-2", status="rejected") == 1


# -- JSON ----------------------------------------------------------------------------------------

DEEP = "[" * 50_000 + "]" * 50_000


def test_deeply_nested_json_is_a_400_on_every_surface(send: Senders) -> None:
    event = send.stringee_event(DEEP.encode())
    callback = send.mediaservice("callNotify", DEEP.encode())
    api = send.api("/api/v1/agents/me/presence", method="PUT", data=DEEP,
                   content_type="application/json")
    for response in (event, callback, api):
        assert response.status_code == 400
        assert "nested deeper than 64" in message(response)


def test_json_nested_just_past_the_limit_is_refused_and_at_it_accepted(send: Senders) -> None:
    def nested(depth: int) -> dict[str, Any]:
        value: Any = "x"
        for _ in range(depth - 1):
            value = [value]
        return {"presence": "away", "extra": value}

    assert send.api("/api/v1/agents/me/presence", method="PUT",
                    json=nested(64)).status_code == 200
    too_deep = send.api("/api/v1/agents/me/presence", method="PUT", json=nested(65))
    assert too_deep.status_code == 400 and "nested deeper than 64" in message(too_deep)


def test_nan_in_a_callback_is_a_400_and_kept(send: Senders) -> None:
    before = count(send.desk.app, Delivery, status="rejected")
    response = send.mediaservice("sessionCompleted",
                                 b'{"sessionId": "nan-1", "sessionDuration": NaN}')
    assert response.status_code == 400
    assert "NaN" in message(response)
    assert count(send.desk.app, Delivery, status="rejected") == before + 1


def test_a_body_above_the_limit_is_413(send: Senders) -> None:
    response = send.stringee_event(b"[" + b"1," * 200_000 + b"1]")
    assert response.status_code == 413


# -- dates ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["since", "until"])
@pytest.mark.parametrize("value", ["9999-12-31T23:59:59-23:00", "0001-01-01T00:00:00+23:00"])
def test_a_time_that_overflows_in_utc_is_a_400_naming_it(
    send: Senders, name: str, value: str
) -> None:
    response = send.api("/api/v1/calls", query_string={name: value})
    assert response.status_code == 400
    assert f"'{name}' is out of range" in message(response)


def test_the_widest_times_that_exist_in_utc_are_accepted(send: Senders) -> None:
    response = send.api("/api/v1/calls", query_string={
        "state": "all", "since": "0001-01-01T00:00:00Z", "until": "9999-12-31T23:59:59Z"})
    assert response.status_code == 200


# -- login next ----------------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["/\r\nX: y", "/\\evil.example", "/%0d%0aX:y\x7f"])
def test_a_next_with_control_characters_or_a_backslash_goes_to_the_board(
    desk: Desk, target: str
) -> None:
    client = desk.app.test_client()
    login(client, "sue")
    response = client.get("/login", query_string={"next": target})
    assert response.status_code == 302
    assert response.headers["Location"] == "/"


def test_a_same_site_next_is_still_followed(desk: Desk) -> None:
    client = desk.app.test_client()
    login(client, "sue")
    response = client.get("/login", query_string={"next": "/history?from=2026-03-01"})
    assert response.headers["Location"] == "/history?from=2026-03-01"
