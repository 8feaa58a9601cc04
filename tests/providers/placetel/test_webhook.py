"""POST /webhooks/placetel through the app: auth, bad input, duplicates, the event log."""

from __future__ import annotations

import base64

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from desk.extensions import db
from desk.models import Call, Delivery
from tests.conftest import PLACETEL_AUTH

CALL_ID = "f4591ba315d81671d7a06c2a3b4f963dafd119de39cb26edd8a6476676b2f447"
INCOMING = {"event": "IncomingCall", "from": "022129191999", "to": "0221", "call_id": CALL_ID}


def basic(user: str, password: str) -> dict[str, str]:
    raw = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


AUTH = basic(*PLACETEL_AUTH)


def count(app: Flask, model: type, **where: str) -> int:
    with app.app_context():
        query = select(func.count()).select_from(model)
        for name, value in where.items():
            query = query.where(getattr(model, name) == value)
        return db.session.scalar(query)


def test_incoming_call_creates_a_ringing_call(client: FlaskClient, app: Flask) -> None:
    response = client.post("/webhooks/placetel", data=INCOMING, headers=AUTH)
    assert response.status_code == 200
    assert response.mimetype == "application/xml"  # the Call Control answer (routing)
    with app.app_context():
        call = db.session.scalars(select(Call)).one()
        assert (call.state, call.from_number, call.provider) == ("ringing", "022129191999",
                                                                 "placetel")


@pytest.mark.parametrize(
    "headers",
    [{}, basic("placetel", "wrong"), basic("someone", PLACETEL_AUTH[1]),
     {"Authorization": "Bearer s3cret-pt"}, {"Authorization": "Basic !!!notbase64"}],
    ids=["missing", "wrong-password", "wrong-user", "not-basic", "garbled"],
)
def test_wrong_or_missing_credentials_get_401_and_store_nothing(
    client: FlaskClient, app: Flask, headers: dict[str, str]
) -> None:
    response = client.post("/webhooks/placetel", data=INCOMING, headers=headers)
    assert response.status_code == 401
    assert "DESK_PLACETEL_USER" in response.json["message"]
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    assert count(app, Delivery) == 0 and count(app, Call) == 0


def test_a_retry_is_acknowledged_and_changes_nothing(client: FlaskClient, app: Flask) -> None:
    first = client.post("/webhooks/placetel", data=INCOMING, headers=AUTH)
    again = client.post("/webhooks/placetel", data=INCOMING, headers=AUTH)
    assert (first.status_code, again.status_code) == (200, 200)
    assert again.data == first.data  # the retry gets the same routing answer
    assert count(app, Call) == 1
    assert count(app, Delivery, status="duplicate") == 1


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        ("", "application/x-www-form-urlencoded", "missing field 'event'"),
        ("event=HungUp&type=missed", "application/x-www-form-urlencoded", "call_id"),
        ("event=Bogus&call_id=1", "application/x-www-form-urlencoded", "unknown event"),
        ('{"event": "IncomingCall"}', "application/json", "x-www-form-urlencoded"),
        ("\x00\x01garbage\xff", "application/x-www-form-urlencoded", "missing field 'event'"),
        (f"event=HungUp&call_id={CALL_ID}&duration=soon", "application/x-www-form-urlencoded",
         "duration"),
    ],
    ids=["empty", "no-call-id", "unknown-event", "json", "garbage", "bad-duration"],
)
def test_bad_deliveries_get_400_with_a_reason_and_are_kept(
    client: FlaskClient, app: Flask, body: str, content_type: str, message: str
) -> None:
    client.post("/webhooks/placetel", data=INCOMING, headers=AUTH)  # something stored before
    response = client.post(
        "/webhooks/placetel", data=body.encode("latin-1"), content_type=content_type, headers=AUTH
    )
    assert response.status_code == 400
    assert message in response.json["message"]
    assert count(app, Delivery, status="rejected") == 1
    with app.app_context():
        rejected = db.session.scalars(select(Delivery).where(Delivery.status == "rejected")).one()
        assert message in rejected.error
    assert count(app, Call) == 1  # what was stored before is untouched


def test_non_utf8_body_is_decoded_with_replacement_not_a_500(
    client: FlaskClient, app: Flask
) -> None:
    body = b"event=IncomingCall&call_id=abc&from=M\xfcller&to=0221"
    response = client.post(
        "/webhooks/placetel", data=body, content_type="application/x-www-form-urlencoded",
        headers=AUTH,
    )
    assert response.status_code in (200, 400)
    assert count(app, Delivery) == 1


def test_one_megabyte_body_is_refused_with_413(client: FlaskClient, app: Flask) -> None:
    body = "event=IncomingCall&call_id=abc&from=" + "9" * 1_048_576
    response = client.post(
        "/webhooks/placetel", data=body, content_type="application/x-www-form-urlencoded",
        headers=AUTH,
    )
    assert response.status_code == 413
    assert response.is_json and response.json["status"] == 413


def test_demo_mode_without_credentials_accepts_deliveries(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from desk import create_app
    from desk.cli import upgrade_database

    app = create_app({"TESTING": True, "DESK_DEMO": True,
                      "DESK_DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite3'}"})
    upgrade_database(app)
    response = app.test_client().post("/webhooks/placetel", data=INCOMING)
    assert response.status_code == 200
    db.dispose()
