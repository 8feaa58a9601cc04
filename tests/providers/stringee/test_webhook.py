"""Stringee's documented requests (``fixtures/``, sources in ``fixtures/SOURCES.md``) sent to
the desk's answer and event URLs as Stringee sends them, and the call each leaves behind:
an app user's call connected to whom they called and put on them, the documented busy end,
a phone-to-app call routed to agents, and the event URL's ``X-STRINGEE-SIGNATURE``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from desk import create_app
from desk.cli import upgrade_database
from desk.extensions import db
from desk.models import Call, Delivery
from desk.services.routing_store import rules_from_document, save_rules
from desk.settings import SettingsError
from tests.conftest import add_user, base_config

FIXTURES = Path(__file__).parent / "fixtures"
TOKEN = "stringee-t0ken"
SECRET = "stringee-signing-secret"
# openssl dgst -sha1 -hmac stringee-signing-secret -binary FILE | base64 (SOURCES.md)
SIGNATURES = {
    "call_event_started.json": "t4QylPvEoK4L1OYxNgGXdJXOkt8=",
    "call_event_ended_busy.json": "N3I6mcZG6k8c4Tu8fHLuVShfris=",
}
APP_TO_PHONE_ID = "call-vn-1-ABCDWXKXYZ-1542377678717"
APP_TO_APP_ID = "call-vn-1-ABCDWXKXYZ-1542377678718"
PHONE_TO_APP_ID = "call-vn-1-PHONE2APP1-1515859261000"


def make_app(tmp_path: Path, **extra: Any) -> Flask:
    app = create_app(base_config(f"sqlite:///{tmp_path / 'stringee.sqlite3'}",
                                 DESK_STRINGEE_TOKEN=TOKEN, **extra))
    upgrade_database(app)
    return app


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    app = make_app(tmp_path)
    yield app
    db.dispose()


@pytest.fixture
def signed(tmp_path: Path) -> Iterator[Flask]:
    app = make_app(tmp_path, DESK_STRINGEE_SECRET=SECRET)
    yield app
    db.dispose()


@pytest.fixture
def people(app: Flask) -> dict[str, int]:
    return {
        "huydn": add_user(app, "huy", stringee_user_id="huydn"),  # the documents' app user
        "user_1": add_user(app, "ann", stringee_user_id="user_1"),
        "user_2": add_user(app, "bob", stringee_user_id="user_2"),
    }


def query(name: str) -> str:
    return (FIXTURES / name).read_text().strip()


def answer(client: FlaskClient, kind: str, name: str) -> Any:
    return client.get(f"/webhooks/stringee/answer/{kind}?{query(name)}&token={TOKEN}")


def event(client: FlaskClient, name: str, headers: dict[str, str] | None = None,
          **changes: Any) -> Any:
    """POST a fixture as stored, or (with ``changes``) with those fields replaced."""
    raw = (FIXTURES / name).read_bytes()
    body = json.dumps({**json.loads(raw), **changes}).encode() if changes else raw
    return client.post(f"/webhooks/stringee/events?token={TOKEN}", data=body,
                       content_type="application/json", headers=headers or {})


def call_of(app: Flask, provider_call_id: str) -> Call:
    with app.app_context():
        return db.session.scalars(
            select(Call).where(Call.provider == "stringee",
                               Call.provider_call_id == provider_call_id)
        ).one()


def count(app: Flask, model: type) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model))


def test_every_fixture_is_listed_in_sources() -> None:
    sources = (FIXTURES / "SOURCES.md").read_text()
    for path in [*FIXTURES.glob("*.json"), *FIXTURES.glob("*.query")]:
        assert f"`{path.name}`" in sources, path.name


# --- the project answer URL: an agent's own call ------------------------------------------


def test_the_documented_app_to_phone_request_connects_the_phone_and_is_the_agents_call(
    app: Flask, client: FlaskClient, people: dict[str, int]
) -> None:
    response = answer(client, "project", "project_answer_app_to_phone.query")
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert response.json == [{
        "action": "connect",
        "from": {"type": "internal", "number": "84899199866", "alias": "84899199866"},
        "to": {"type": "external", "number": "84909988668", "alias": "84909988668"},
        "customData": "custom", "timeout": 60, "maxConnectTime": -1, "peerToPeerCall": False,
    }]
    call = call_of(app, APP_TO_PHONE_ID)
    assert (call.state, call.direction, call.agent_id, call.answered_by) == (
        "dialling", "outbound", people["huydn"], "huydn",
    )
    assert (call.from_number, call.to_number) == ("84899199866", "84909988668")
    with app.app_context():
        logged = db.session.scalars(select(Delivery)).one()
        assert (logged.kind, logged.status, logged.call_id) == ("answer/project", "applied",
                                                                call.id)
        assert dict(parse_qsl(logged.payload))["userId"] == "huydn"
        assert TOKEN not in logged.payload
    # Stringee asking again gets the same answer and changes nothing.
    again = answer(client, "project", "project_answer_app_to_phone.query")
    assert again.json == response.json and count(app, Call) == 1


def test_an_app_to_app_request_connects_the_other_app_user_and_records_when_the_rules_say(
    app: Flask, client: FlaskClient, people: dict[str, int]
) -> None:
    (connect,) = answer(client, "project", "project_answer_app_to_app.query").json
    assert connect["to"] == {"type": "internal", "number": "user_2", "alias": "user_2"}
    assert (connect["peerToPeerCall"], connect["customData"]) == (True, "test-custom-data")
    call = call_of(app, APP_TO_APP_ID)
    assert (call.direction, call.agent_id) == ("outbound", people["user_1"])

    with app.app_context():
        save_rules(db.session, rules_from_document({"record": True}), None)
        db.session.commit()
    scco = answer(client, "project", "project_answer_app_to_app.query").json
    assert scco[0] == {"action": "record", "eventUrl": "", "format": "mp3"}
    assert scco[1]["peerToPeerCall"] is False  # recorded media goes through Stringee


def test_rules_for_the_called_number_do_not_route_an_agents_call(
    app: Flask, client: FlaskClient, people: dict[str, int]
) -> None:
    with app.app_context():
        rules = {"targets": {"84909988668": {"agent_ids": [people["user_2"]]}},
                 "blocked_callers": ["84899199866"]}
        save_rules(db.session, rules_from_document(rules), None)
        db.session.commit()
    (connect,) = answer(client, "project", "project_answer_app_to_phone.query").json
    assert connect["to"]["number"] == "84909988668"


def test_a_request_without_call_id_is_connected_but_not_recorded_as_a_call(
    app: Flask, client: FlaskClient, people: dict[str, int]
) -> None:
    (connect,) = answer(client, "project", "project_answer_sample.query").json
    assert connect["to"] == {"type": "external", "number": "0916983188", "alias": "0916983188"}
    assert count(app, Call) == 0 and count(app, Delivery) == 0


def test_a_project_request_without_to_gets_400(app: Flask, client: FlaskClient) -> None:
    response = client.get(f"/webhooks/stringee/answer/project?from=user_1&userId=user_1"
                          f"&callId=c-9&token={TOKEN}")
    assert response.status_code == 400 and "'to' is required" in response.json["message"]
    assert count(app, Call) == 0


def test_the_agents_call_follows_its_events_to_a_busy_end(
    app: Flask, client: FlaskClient, people: dict[str, int]
) -> None:
    answer(client, "project", "project_answer_app_to_phone.query")
    event(client, "call_event_started.json", call_id=APP_TO_PHONE_ID)
    assert event(client, "call_event_ended_busy.json",
                 call_id=APP_TO_PHONE_ID).json["status"] == "applied"
    call = call_of(app, APP_TO_PHONE_ID)
    assert (call.state, call.direction, call.outcome, call.duration, call.agent_id) == (
        "ended", "outbound", "busy", 0, people["huydn"],
    )
    assert call.answered_at is None


# --- call events as documented --------------------------------------------------------------


def test_the_documented_started_event_puts_the_call_on_the_app_user_at_once(
    app: Flask, client: FlaskClient, people: dict[str, int]
) -> None:
    assert event(client, "call_event_started.json").status_code == 200
    call = call_of(app, "call-vn-1-ZD3IDIXS1J-1515820305477")
    assert (call.state, call.direction, call.agent_id) == ("dialling", "outbound",
                                                           people["huydn"])


def test_the_documented_busy_end_is_a_busy_outbound_call_of_the_app_user(
    app: Flask, client: FlaskClient, people: dict[str, int]
) -> None:
    assert event(client, "call_event_ended_busy.json").status_code == 200
    call = call_of(app, "call-vn-1-ZD3IDIXS1J-1515820305478")
    assert (call.state, call.direction, call.outcome, call.end_cause, call.duration) == (
        "ended", "outbound", "busy", "busy", 0,
    )
    assert call.agent_id == people["huydn"]


@pytest.mark.parametrize(
    ("cause", "ended_by", "outcome"),
    [
        ("600 Busy Everywhere", "EXTERNAL", "busy"),
        ("480 Temporarily Unavailable", "EXTERNAL", "unanswered"),
        ("408 Request Timeout", "EXTERNAL", "unanswered"),
        ("603 Decline", "EXTERNAL", "rejected"),
        ("487 Request Terminated", "INTERNAL", "cancelled"),
        ("404 Not Found", "EXTERNAL", "failed"),
        ("503 Service Unavailable", "EXTERNAL", "congestion"),
        ("", "INTERNAL", "cancelled"),
        ("", "EXTERNAL", "unanswered"),
    ],
)
def test_an_unanswered_agents_call_is_named_from_the_sip_status_never_missed(
    app: Flask, client: FlaskClient, people: dict[str, int], cause: str, ended_by: str,
    outcome: str,
) -> None:
    event(client, "call_event_ended_busy.json", endCallCause=cause, endedBy=ended_by)
    assert call_of(app, "call-vn-1-ZD3IDIXS1J-1515820305478").outcome == outcome


def test_a_phone_calling_our_number_rings_agents_and_is_their_inbound_call(
    app: Flask, client: FlaskClient, people: dict[str, int]
) -> None:
    scco = answer(client, "number", "number_answer.query").json
    assert [leg["to"]["number"] for leg in scco] == ["huydn", "user_1", "user_2"]
    assert scco[0]["from"] == {"type": "external", "number": "84909986668",
                               "alias": "84909986668"}
    assert count(app, Call) == 0  # a number answer URL request has no call id to keep
    event(client, "call_event_answered_phone_to_app.json")
    assert call_of(app, PHONE_TO_APP_ID).state == "talking"
    event(client, "call_event_ended_phone_to_app.json")
    call = call_of(app, PHONE_TO_APP_ID)
    assert (call.state, call.direction, call.outcome, call.duration, call.agent_id) == (
        "ended", "inbound", "answered", 36, people["user_1"],
    )


# --- X-STRINGEE-SIGNATURE -------------------------------------------------------------------


@pytest.mark.parametrize("name", SIGNATURES)
def test_a_correctly_signed_event_is_accepted(signed: Flask, name: str) -> None:
    response = event(signed.test_client(), name,
                     headers={"X-STRINGEE-SIGNATURE": SIGNATURES[name]})
    assert response.status_code == 200 and response.json["status"] == "applied"


@pytest.mark.parametrize(
    "headers",
    [{}, {"X-STRINGEE-SIGNATURE": ""},
     {"X-STRINGEE-SIGNATURE": SIGNATURES["call_event_ended_busy.json"]},  # another body's
     {"X-STRINGEE-SIGNATURE": "t4QylPvEoK4L1OYxNgGXdJXOkt9="}],
    ids=["missing", "empty", "other-body", "wrong"],
)
def test_a_wrong_or_missing_signature_gets_401_and_stores_nothing(
    signed: Flask, headers: dict[str, str]
) -> None:
    response = event(signed.test_client(), "call_event_started.json", headers=headers)
    assert response.status_code == 401
    assert "DESK_STRINGEE_SECRET" in response.json["message"]
    assert count(signed, Delivery) == 0


def test_a_signed_event_still_needs_the_token(signed: Flask) -> None:
    body = (FIXTURES / "call_event_started.json").read_bytes()
    response = signed.test_client().post(
        "/webhooks/stringee/events", data=body, content_type="application/json",
        headers={"X-STRINGEE-SIGNATURE": SIGNATURES["call_event_started.json"]},
    )
    assert response.status_code == 401 and "DESK_STRINGEE_TOKEN" in response.json["message"]


def test_answer_urls_need_only_the_token_with_a_secret_set(signed: Flask) -> None:
    response = answer(signed.test_client(), "project", "project_answer_app_to_app.query")
    assert response.status_code == 200 and response.json[0]["action"] == "connect"


def test_without_a_secret_signatures_are_not_required(app: Flask, client: FlaskClient) -> None:
    assert event(client, "call_event_started.json").status_code == 200


def test_a_secret_without_a_token_stops_the_desk_with_a_fix(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="set DESK_STRINGEE_TOKEN too"):
        create_app(base_config(f"sqlite:///{tmp_path / 'x.sqlite3'}",
                               DESK_STRINGEE_SECRET=SECRET))
