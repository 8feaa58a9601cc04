"""Placetel's documented payloads (``fixtures/``, sources in ``fixtures/SOURCES.md``) POSTed
to ``/webhooks/placetel`` as Placetel sends them, and the call each leaves in the database:
outgoing calls on the calling agent with every outbound hangup type, incoming calls, the
signature of the README's test vector, and the wallboard's "missed" counting only inbound
calls.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from desk import create_app
from desk.cli import upgrade_database
from desk.extensions import db
from desk.models import Call, Delivery
from desk.services import wallboard
from tests.conftest import PLACETEL_AUTH, add_user, base_config
from tests.providers.placetel.test_webhook import AUTH, basic

FIXTURES = Path(__file__).parent / "fixtures"
FORM = "application/x-www-form-urlencoded"
PEER = "7777abcdefg@fpbx.de"  # the README's example SIP user
OUTGOING_ID = "9d1c2b8e0a7f4e6d5c3b2a1908f7e6d5c4b3a29180f7e6d5c4b3a2918f7e6d5c"
INCOMING_ID = "f4591ba315d81671d7a06c2a3b4f963dafd119de39cb26edd8a6476676b2f447"
# The README's signature example: secret, payload (signed_call_accepted.form), signature.
VECTOR_SECRET = "12345"
VECTOR_SIGNATURE = "c4f823c5b8806432fe2b83b1fc2ee714422e0cdfb4b5129152a7d0bbcd7792d0"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def post(client: FlaskClient, name: str, headers: dict[str, str] | None = None) -> TestResponse:
    return client.post("/webhooks/placetel", data=fixture(name), content_type=FORM,
                       headers=AUTH if headers is None else headers)


def call_of(app: Flask, provider_call_id: str) -> Call:
    with app.app_context():
        return db.session.scalars(
            select(Call).where(Call.provider == "placetel",
                               Call.provider_call_id == provider_call_id)
        ).one()


@pytest.fixture
def caller(app: Flask) -> int:
    """The agent whose SIP user places the README's outgoing call."""
    return add_user(app, "ann", sip_peer=PEER)


def test_every_fixture_is_listed_in_sources() -> None:
    sources = (FIXTURES / "SOURCES.md").read_text()
    for path in FIXTURES.glob("*.form"):
        assert f"`{path.name}`" in sources, path.name


def test_outgoing_call_is_the_calling_agents_outbound_call(
    app: Flask, client: FlaskClient, caller: int
) -> None:
    response = post(client, "outgoing_call.form")
    assert response.status_code == 200 and response.json["status"] == "applied"
    call = call_of(app, OUTGOING_ID)
    assert (call.state, call.direction, call.agent_id, call.answered_by) == (
        "dialling", "outbound", caller, PEER,
    )
    assert (call.from_number, call.to_number) == ("022129191999", "022199998560")


@pytest.mark.parametrize(
    ("hangup", "outcome", "duration"),
    [
        ("hungup_canceled_out.form", "cancelled", 0),
        ("hungup_busy_out.form", "busy", 0),
        ("hungup_unavailable_out.form", "unavailable", 0),
        ("hungup_congestion_out.form", "congestion", 0),
        ("hungup_missed_out.form", "unanswered", 0),
        ("hungup_accepted_out.form", "answered", 95),
    ],
)
def test_an_outgoing_call_ends_with_its_own_outcome(
    app: Flask, client: FlaskClient, caller: int, hangup: str, outcome: str, duration: int
) -> None:
    assert post(client, "outgoing_call.form").status_code == 200
    assert post(client, hangup).status_code == 200
    call = call_of(app, OUTGOING_ID)
    assert (call.state, call.direction, call.outcome, call.duration, call.agent_id) == (
        "ended", "outbound", outcome, duration, caller,
    )
    assert (call.answered_at is not None) is (outcome == "answered")


def test_a_hangup_before_its_outgoing_call_still_makes_one_outbound_call(
    app: Flask, client: FlaskClient, caller: int
) -> None:
    assert post(client, "hungup_canceled_out.form").status_code == 200
    call = call_of(app, OUTGOING_ID)
    assert (call.direction, call.outcome, call.agent_id) == ("outbound", "cancelled", None)
    assert post(client, "outgoing_call.form").status_code == 200
    call = call_of(app, OUTGOING_ID)
    assert (call.state, call.direction, call.outcome, call.agent_id) == (
        "ended", "outbound", "cancelled", caller,
    )
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Call)) == 1


def test_an_internal_outgoing_call_names_sip_ids_and_is_on_the_agent(
    app: Flask, client: FlaskClient, caller: int
) -> None:
    assert post(client, "outgoing_internal_call.form").status_code == 200
    call = call_of(app, OUTGOING_ID)
    assert (call.from_number, call.to_number, call.agent_id) == (PEER, "7777xyzabcd@fpbx.de",
                                                                 caller)


def test_an_outgoing_call_from_an_unknown_sip_user_is_kept_without_agent(
    app: Flask, client: FlaskClient
) -> None:
    assert post(client, "outgoing_call.form").status_code == 200
    call = call_of(app, OUTGOING_ID)
    assert (call.direction, call.agent_id, call.answered_by) == ("outbound", None, PEER)


def test_an_incoming_call_accepted_and_hung_up(
    app: Flask, client: FlaskClient, caller: int
) -> None:
    routed = post(client, "incoming_call.form")
    assert routed.status_code == 200 and routed.mimetype == "application/xml"
    assert post(client, "call_accepted.form").status_code == 200
    assert call_of(app, INCOMING_ID).state == "talking"
    assert post(client, "hungup_accepted_in.form").status_code == 200
    call = call_of(app, INCOMING_ID)
    assert (call.state, call.direction, call.outcome, call.duration, call.agent_id) == (
        "ended", "inbound", "answered", 42, caller,
    )


def test_the_incoming_call_keeps_its_answer_and_whom_it_rang_and_files_every_delivery(
    app: Flask, client: FlaskClient, caller: int
) -> None:
    """The documented IncomingCall creates its call and is answered in one transaction: the
    answer sent back and the agents it rings are on the call, and each of the call's
    documented deliveries (the retry too) is filed under it."""
    routed = post(client, "incoming_call.form")
    call = call_of(app, INCOMING_ID)
    assert call.provider_facts["route"]["xml"] == routed.get_data(as_text=True)
    assert call.offered_to == [caller]
    post(client, "call_accepted.form")
    post(client, "incoming_call.form")  # Placetel sends again: a duplicate
    with app.app_context():
        filed = db.session.execute(select(Delivery.status, Delivery.call_id)
                                   .order_by(Delivery.id)).all()
    assert filed == [("applied", call.id), ("applied", call.id), ("duplicate", call.id)]


def test_the_wallboard_counts_only_the_inbound_call_nobody_took_as_missed(
    app: Flask, client: FlaskClient, caller: int
) -> None:
    post(client, "incoming_call.form")
    post(client, "hungup_missed_in.form")
    post(client, "outgoing_call.form")
    post(client, "hungup_canceled_out.form")
    assert call_of(app, INCOMING_ID).outcome == "missed"
    assert call_of(app, OUTGOING_ID).outcome == "cancelled"
    with app.app_context():
        counters = wallboard.compute(db.session(), "UTC")
    assert (counters.missed, counters.offered, counters.abandoned) == (1, 1, 1)


# --- X-PLACETEL-SIGNATURE -------------------------------------------------------------------


def signed_app(tmp_path: Path, **extra: str) -> Flask:
    app = create_app(base_config(f"sqlite:///{tmp_path / 'signed.sqlite3'}",
                                 DESK_PLACETEL_SECRET=VECTOR_SECRET, **extra))
    upgrade_database(app)
    return app


@pytest.fixture
def secret_only(tmp_path: Path) -> Iterator[Flask]:
    app = signed_app(tmp_path, DESK_PLACETEL_USER="", DESK_PLACETEL_PASSWORD="")
    yield app
    db.dispose()


@pytest.fixture
def secret_and_basic(tmp_path: Path) -> Iterator[Flask]:
    app = signed_app(tmp_path)  # base_config sets the Basic credentials
    yield app
    db.dispose()


def deliveries(app: Flask) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Delivery)) or 0


SIGNED = {"X-PLACETEL-SIGNATURE": VECTOR_SIGNATURE}


def test_the_readmes_signature_vector_is_accepted(secret_only: Flask) -> None:
    response = post(secret_only.test_client(), "signed_call_accepted.form", headers=SIGNED)
    assert response.status_code == 200 and response.json["status"] == "applied"
    assert call_of(secret_only, "4a4cbb39578170aed9a2761a7bec8c7e704a541f52291ef603d6f5f152980c3c"
                   ).state == "talking"
    # Upper-case hex is the same signature.
    again = {"X-PLACETEL-SIGNATURE": VECTOR_SIGNATURE.upper()}
    assert post(secret_only.test_client(), "signed_call_accepted.form",
                headers=again).json["status"] == "duplicate"


@pytest.mark.parametrize(
    "headers",
    [{}, {"X-PLACETEL-SIGNATURE": VECTOR_SIGNATURE[:-1] + "1"},
     {"X-PLACETEL-SIGNATURE": ""}, AUTH],
    ids=["missing", "wrong", "empty", "basic-auth-instead"],
)
def test_a_wrong_or_missing_signature_gets_401_and_stores_nothing(
    secret_only: Flask, headers: dict[str, str]
) -> None:
    response = post(secret_only.test_client(), "signed_call_accepted.form", headers=headers)
    assert response.status_code == 401
    assert "DESK_PLACETEL_SECRET" in response.json["message"]
    assert deliveries(secret_only) == 0


def test_a_body_changed_after_signing_gets_401(secret_only: Flask) -> None:
    body = fixture("signed_call_accepted.form").replace(b"0987654321", b"0987654322")
    response = secret_only.test_client().post("/webhooks/placetel", data=body,
                                              content_type=FORM, headers=SIGNED)
    assert response.status_code == 401 and deliveries(secret_only) == 0


@pytest.mark.parametrize(
    ("headers", "status"),
    [({**SIGNED, **AUTH}, 200), (SIGNED, 401), (AUTH, 401),
     ({**SIGNED, **basic(PLACETEL_AUTH[0], "wrong")}, 401)],
    ids=["both", "signature-only", "basic-only", "signature-and-wrong-password"],
)
def test_with_both_configured_both_are_required(
    secret_and_basic: Flask, headers: dict[str, str], status: int
) -> None:
    response = post(secret_and_basic.test_client(), "signed_call_accepted.form", headers=headers)
    assert response.status_code == status
    assert deliveries(secret_and_basic) == (1 if status == 200 else 0)
