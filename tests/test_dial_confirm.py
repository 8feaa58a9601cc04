"""Dial guardrails, through the form and ``POST /api/v1/dial``, against a stand-in Teleforge.

Dialling while the person rung first is on a call already, or for someone else who is
offline, asks first (409 and a question; the form offers "Dial anyway") and dials once
confirmed; an extension nobody has is refused. Nothing reaches Teleforge until then, and
every provider rule still applies to a confirmed dial.
"""

from __future__ import annotations

import html
import re

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import select

from desk.extensions import db
from desk.models import AuditEntry
from tests import teleforge_desk
from tests.conftest import PLACETEL_AUTH, login
from tests.teleforge_standin import TeleforgeStandIn

# The shared desk with a stand-in Teleforge (tests/teleforge_desk.py).
pbx, app, token = teleforge_desk.pbx, teleforge_desk.app, teleforge_desk.token

GOOD = {"callee": "0820001234", "outbound_id": "random"}


def htmx(csrf: str) -> dict[str, str]:
    return {"HX-Request": "true", "X-CSRFToken": csrf}


def talking(client: FlaskClient, peer: str = "777ann@fpbx.de") -> None:
    """A Placetel call the owner of ``peer`` answered and is still on."""
    for form in ({"event": "IncomingCall", "call_id": "in-1", "from": "022129191999",
                  "to": "0221"},
                 {"event": "CallAccepted", "call_id": "in-1", "peer": peer,
                  "from": "022129191999", "to": "0221"}):
        assert client.post("/webhooks/placetel", data=form, auth=PLACETEL_AUTH).status_code == 200


def attempt_of(page: str) -> str:
    match = re.search(r'name="attempt" value="([0-9a-f]+)"', page)
    assert match, page[:2000]
    return match.group(1)


# --- already on a call -----------------------------------------------------------------------


def test_the_api_asks_before_dialling_someone_on_a_call_and_dials_when_confirmed(
    app: Flask, client: FlaskClient, runner: FlaskCliRunner, users: dict[str, int],
    pbx: TeleforgeStandIn,
) -> None:
    talking(client)
    ann = token(runner, "ann")
    asked = client.post("/api/v1/dial", headers=ann, json=GOOD)
    assert asked.status_code == 409
    assert asked.json["needs_confirmation"] is True
    assert asked.json["questions"] == {
        "on_call": "You are on a call already (talking with 022129191999)."}
    assert asked.json["message"] == ('You are on a call already (talking with 022129191999). '
                                     'Send the same request with "confirm": true to dial anyway.')
    assert asked.json["current_call"]["provider_call_id"] == "in-1"
    assert pbx.dials == []  # nothing placed, nothing audited: only a question
    with app.app_context():
        assert db.session.scalars(select(AuditEntry)).all() == []

    placed = client.post("/api/v1/dial", headers=ann, json={**GOOD, "confirm": True})
    assert placed.status_code == 201, placed.json
    assert len(pbx.dials) == 1 and pbx.dials[0].json["agent"] == "101"
    with app.app_context():
        (entry,) = db.session.scalars(select(AuditEntry)).all()
        assert entry.outcome == "ok" and '"confirmed": {"on_call"' in entry.detail


def test_a_supervisor_dialling_for_an_agent_on_a_call_is_asked_with_the_agents_name(
    client: FlaskClient, runner: FlaskCliRunner, users: dict[str, int], pbx: TeleforgeStandIn,
) -> None:
    talking(client)
    asked = client.post("/api/v1/dial", headers=token(runner, "sue"),
                        json={**GOOD, "agent": "101"})
    assert asked.status_code == 409
    assert asked.json["questions"]["on_call"] == (
        "ann is on a call already (talking with 022129191999).")
    assert pbx.dials == []


@pytest.mark.parametrize("confirm", ["yes", 1, None])
def test_confirm_must_be_a_boolean(
    client: FlaskClient, runner: FlaskCliRunner, users: dict[str, int], pbx: TeleforgeStandIn,
    confirm: object,
) -> None:
    response = client.post("/api/v1/dial", headers=token(runner, "ann"),
                           json={**GOOD, "confirm": confirm})
    assert response.status_code == 422
    assert response.json["message"] == (
        "'confirm' must be true or false (JSON booleans, not strings).")
    assert pbx.dials == []


def test_the_form_asks_keeps_the_input_and_dials_anyway(
    client: FlaskClient, users: dict[str, int], pbx: TeleforgeStandIn,
) -> None:
    talking(client)
    csrf = login(client, "ann")
    attempt = attempt_of(client.get("/").get_data(as_text=True))
    form = {**GOOD, "reference": "crm-9", "attempt": attempt}
    asked = client.post("/dial", data=form, headers=htmx(csrf))
    page = asked.get_data(as_text=True)
    assert asked.status_code == 409 and asked.headers["X-Desk-Swap"] == "1"
    question = re.search(r'<p id="dial-confirm-msg"[^>]*role="alert">(.*?)</p>', page, re.S)
    assert question, page
    assert html.unescape(question.group(1)) == (
        "You are on a call already (talking with 022129191999). Dial anyway?")
    button = re.search(r'<button type="submit" name="confirm" value="1"[^>]*>Dial anyway</button>',
                       page)
    assert button and "autofocus" in button.group(0)  # Enter or Space answers the question
    assert 'value="crm-9"' in page and 'value="0820001234"' in page  # nothing typed is lost
    assert attempt_of(page) == attempt  # the same one-time token: still one call at most
    assert pbx.dials == []

    placed = client.post("/dial", data={**form, "confirm": "1"}, headers=htmx(csrf))
    assert placed.status_code == 200
    assert "Dialling 0820001234 from 101" in placed.get_data(as_text=True)
    again = client.post("/dial", data={**form, "confirm": "1"}, headers=htmx(csrf))
    assert again.status_code == 409 and "was not placed again" in again.get_data(as_text=True)
    assert len(pbx.dials) == 1


def test_a_retried_dial_is_a_duplicate_not_a_question(
    client: FlaskClient, runner: FlaskCliRunner, users: dict[str, int], pbx: TeleforgeStandIn,
) -> None:
    ann = token(runner, "ann")
    body = {**GOOD, "reference": "crm-5"}
    assert client.post("/api/v1/dial", headers=ann, json=body).status_code == 201
    # ann's live call now is this very dial: sending it again is a retry, answered as one.
    again = client.post("/api/v1/dial", headers=ann, json=body)
    assert again.status_code == 409
    assert "needs_confirmation" not in again.json
    assert again.json["call"]["provider_call_id"] == "crm-5"
    assert len(pbx.dials) == 1


# --- offline, and nobody's extension ---------------------------------------------------------


def test_dialling_for_an_offline_agent_asks_first(
    client: FlaskClient, runner: FlaskCliRunner, users: dict[str, int], pbx: TeleforgeStandIn,
) -> None:
    bob = token(runner, "bob")
    assert client.put("/api/v1/agents/me/presence", headers=bob,
                      json={"presence": "offline"}).status_code == 200
    sue = token(runner, "sue")
    asked = client.post("/api/v1/dial", headers=sue, json={**GOOD, "agent": "102"})
    assert asked.status_code == 409
    assert asked.json["questions"] == {
        "offline": "bob is offline, so nobody may answer extension 102."}
    assert "current_call" not in asked.json
    placed = client.post("/api/v1/dial", headers=sue, json={**GOOD, "agent": "102",
                                                             "confirm": True})
    assert placed.status_code == 201 and placed.json["call"]["agent"] == "bob"
    assert len(pbx.dials) == 1


def test_an_agent_who_set_themselves_offline_is_not_asked(
    client: FlaskClient, runner: FlaskCliRunner, users: dict[str, int], pbx: TeleforgeStandIn,
) -> None:
    bob = token(runner, "bob")
    client.put("/api/v1/agents/me/presence", headers=bob, json={"presence": "offline"})
    assert client.post("/api/v1/dial", headers=bob, json=GOOD).status_code == 201


def test_the_form_asks_about_an_offline_agent_and_on_a_call(
    client: FlaskClient, users: dict[str, int], pbx: TeleforgeStandIn,
) -> None:
    talking(client)
    with client.application.app_context():
        from desk.services.presence import set_presence

        set_presence(db.session, users["ann"], "offline")
    csrf = login(client, "sue")
    asked = client.post("/dial", data={**GOOD, "agent": "101"}, headers=htmx(csrf))
    assert asked.status_code == 409
    assert ("ann is on a call already (talking with 022129191999). ann is offline, so nobody "
            "may answer extension 101. Dial anyway?") in html.unescape(asked.get_data(as_text=True))


def test_an_extension_nobody_has_is_refused(
    app: Flask, client: FlaskClient, runner: FlaskCliRunner, users: dict[str, int],
    pbx: TeleforgeStandIn,
) -> None:
    expected = ("No agent has extension 999. Pick an agent from the list, or type a phone "
                "number to ring first.")
    refused = client.post("/api/v1/dial", headers=token(runner, "sue"),
                          json={**GOOD, "agent": "999", "confirm": True})
    assert refused.status_code == 422
    assert refused.json["message"] == expected and refused.json["errors"] == {"agent": expected}
    # A phone number rung first is still fine: Teleforge's agent may be any number.
    number = client.post("/api/v1/dial", headers=token(runner, "sue"),
                         json={**GOOD, "agent": "0820009999"})
    assert number.status_code == 201 and number.json["call"]["agent"] is None
    assert [d.json["agent"] for d in pbx.dials] == ["0820009999"]
    with app.app_context():
        outcomes = [entry.outcome for entry in
                    db.session.scalars(select(AuditEntry).order_by(AuditEntry.id))]
    assert outcomes == ["invalid", "ok"]


def test_the_form_says_so_as_you_type_and_on_submit(
    client: FlaskClient, users: dict[str, int], pbx: TeleforgeStandIn,
) -> None:
    csrf = login(client, "sue")
    check = client.post("/dial/check?field=agent", data={"agent": "999"}, headers=htmx(csrf))
    text = html.unescape(check.get_data(as_text=True))
    assert "field-msg--error" in text and "No agent has extension 999." in text
    known = client.post("/dial/check?field=agent", data={"agent": "101"}, headers=htmx(csrf))
    assert "Rings 101 first (ann)" in known.get_data(as_text=True)
    refused = client.post("/dial", data={**GOOD, "agent": "999"}, headers=htmx(csrf))
    page = html.unescape(refused.get_data(as_text=True))
    assert refused.status_code == 422
    agent_input = re.search(r'<input id="dial-agent"[^>]*>', page, re.S)
    assert agent_input and 'aria-invalid="true"' in agent_input.group(0)
    assert "autofocus" in agent_input.group(0)  # the only mistake: the focus goes there
    assert pbx.dials == []


def test_after_a_failed_submit_the_first_field_with_a_mistake_has_the_focus(
    client: FlaskClient, users: dict[str, int], pbx: TeleforgeStandIn,
) -> None:
    csrf = login(client, "sue")
    page = client.post("/dial", headers=htmx(csrf), data={
        "callee": "0820001234", "outbound_id": "nope", "reference": "a b", "agent": "999",
    }).get_data(as_text=True)
    focused = re.findall(r'<input id="(dial-[a-z_]+)"[^>]*\bautofocus\b', page, re.S)
    assert focused == ["dial-outbound"]
    assert len(re.findall(r'aria-invalid="true"', page)) == 3
    fresh = client.get("/supervisor").get_data(as_text=True)
    assert "autofocus" not in fresh  # a board that was only opened takes no focus
