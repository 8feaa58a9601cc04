"""Click-to-dial through the dial form and ``POST /api/v1/dial``, against a stand-in Teleforge.

The stand-in is a real HTTP server on loopback (``tests/teleforge_standin.py``) that records
each request byte for byte, so the JSON on the wire, "exactly one request" and every failure
kind are checked end to end. Every field's table of inputs runs through both the form and
the API.
"""

from __future__ import annotations

import html
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import select

from desk import create_app
from desk.cli import upgrade_database
from desk.extensions import db
from desk.models import AuditEntry, Call
from desk.settings import SettingsError
from tests.conftest import base_config, login
from tests.servers import free_port
from tests.teleforge_standin import Answer, TeleforgeStandIn

CALLER_IDS = "27820001111,tvc_sales"


@pytest.fixture
def pbx() -> Iterator[TeleforgeStandIn]:
    with TeleforgeStandIn() as standin:
        yield standin


def make_app(tmp_path: Path, url: str, **extra: Any) -> Flask:
    app = create_app(base_config(
        f"sqlite:///{tmp_path / 'desk.sqlite3'}", DESK_TELEFORGE_URL=url,
        DESK_PROVIDER_TIMEOUT="0.5", DESK_TELEFORGE_CALLER_IDS=CALLER_IDS, **extra,
    ))
    upgrade_database(app)
    return app


@pytest.fixture
def app(tmp_path: Path, pbx: TeleforgeStandIn) -> Iterator[Flask]:
    app = make_app(tmp_path, pbx.url)
    yield app
    db.dispose()


def token(runner: FlaskCliRunner, name: str) -> dict[str, str]:
    result = runner.invoke(args=["users", "token", name])
    assert result.exit_code == 0, result.output
    return {"Authorization": f"Bearer {result.output.strip()}"}


def htmx(csrf: str) -> dict[str, str]:
    return {"HX-Request": "true", "X-CSRFToken": csrf}


def calls_in(app: Flask) -> list[Call]:
    with app.app_context():
        return list(db.session.scalars(select(Call).order_by(Call.id)))


def audits(app: Flask) -> list[AuditEntry]:
    with app.app_context():
        return list(db.session.scalars(select(AuditEntry).order_by(AuditEntry.id)))


def field_message(page: str, name: str) -> tuple[str, str]:
    """(class, text) of the message under a field of the dial form."""
    match = re.search(
        rf'<p id="dial-{name}-msg" class="([^"]*)"\s*aria-live="polite">(.*?)</p>', page, re.S
    )
    assert match, f"no message for {name} in {page[:2000]}"
    return match.group(1), html.unescape(match.group(2))


GOOD = {"agent": "101", "callee": "0820001234", "outbound_id": "random", "reference": ""}

# (field, typed, sent to Teleforge or None when refused, expected fragment of the message)
VALID = [
    ("agent", "101", "101", None),
    ("agent", "1001", "1001", None),
    ("agent", "0820001234", "0820001234", None),  # "or same as callee": a phone number
    ("callee", "0820001234", "0820001234", None),  # 10 digits starting 0
    ("callee", "27820001234", "27820001234", None),  # 11 digits starting 27
    ("callee", "0027820001234", "0027820001234", None),  # 13 digits starting 00
    ("callee", "0027820001234567", "0027820001234567", None),  # 16 digits starting 00
    ("callee", "+27 (82) 000-1234", "0027820001234", None),  # pasted, + means 00
    ("callee", " 082 000 1234 ", "0820001234", None),
    ("outbound_id", "random", "random", None),
    ("outbound_id", "tvc_sales", "tvc_sales", None),
    ("outbound_id", "27820001234", "27820001234", None),  # recommended
    ("outbound_id", "+27 82 000 1234", "27820001234", None),
    ("outbound_id", "0820001234", "0820001234", "providers often reject"),  # allowed, warned
    ("reference", "a" * 230, "a" * 230, None),  # the longest allowed
    ("reference", "Crm.42-x_y~Z", "Crm.42-x_y~Z", None),
    ("reference", "", None, None),  # generated
]
INVALID = [
    ("agent", "12", "Type a 3 or 4 digit extension, like 1001, or a phone number"),
    ("agent", "12345", "Type a 3 or 4 digit extension, like 1001, or a phone number"),
    ("agent", "ext1", "Type a 3 or 4 digit extension, like 1001, or a phone number"),
    ("agent", "999", "No agent has extension 999. Pick an agent from the list"),  # nobody's
    ("callee", "082000123", "has 10 digits, like 082 000 1234; this one has 9."),  # one short
    ("callee", "08200012345", "has 10 digits, like 082 000 1234; this one has 11."),
    ("callee", "278200012345", "A number starting 27 has 11 digits"),  # 12 starting 27
    ("callee", "00278200012", "has 11 to 14 more digits; this one has 9."),  # 11 starting 00
    ("callee", "00278200012345678", "this one has 15."),  # 17 starting 00: one too many
    ("callee", "082 ABC 1234", "Take out \u201cA\u201d, \u201cB\u201d, \u201cC\u201d."),
    ("callee", "", "Type the number to dial, for example 082 000 1234."),
    ("outbound_id", "2782000123", "Type random, tvc_ and a campaign name"),  # 10 starting 27
    ("outbound_id", "082000123", "Type random, tvc_ and a campaign name"),
    ("outbound_id", "tvc_", "After tvc_ type the campaign name"),
    ("outbound_id", "", "Type the caller ID to show"),
    ("reference", "a" * 231, "at most 230 characters; this one has 231."),  # one too long
    ("reference", "has space", "Take out the spaces."),
    ("reference", "müller", "Take out \u201cü\u201d."),
]


@pytest.fixture
def users(users: dict[str, int], app: Flask) -> dict[str, int]:
    """The standard people, and dee with a 4-digit extension to dial on behalf of."""
    from tests.conftest import add_user

    return {**users, "dee": add_user(app, "dee", extension="1001")}


def _wire_check(pbx: TeleforgeStandIn, name: str, sent: str | None) -> None:
    assert len(pbx.dials) == 1
    wire = pbx.dials[0].json
    key = {"reference": "contact_ref"}.get(name, name)
    if sent is None:
        assert re.fullmatch(r"desk-[0-9a-f]{32}", wire[key]), wire
    else:
        assert wire[key] == sent


@pytest.mark.parametrize(("name", "typed", "sent", "note"), VALID)
def test_valid_input_through_the_api(
    client: FlaskClient, runner: FlaskCliRunner, users: dict, pbx: TeleforgeStandIn,
    name: str, typed: str, sent: str | None, note: str | None,
) -> None:
    response = client.post("/api/v1/dial", json={**GOOD, name: typed}, headers=token(runner, "sue"))
    assert response.status_code == 201, response.json
    _wire_check(pbx, name, sent)
    assert response.json["call"]["state"] == "dialling"
    assert response.json["reference_generated"] is not (name == "reference" and typed)
    if note:
        assert note in response.json["warnings"][name]


@pytest.mark.parametrize(("name", "typed", "sent", "note"), VALID)
def test_valid_input_through_the_form(
    client: FlaskClient, users: dict, pbx: TeleforgeStandIn,
    name: str, typed: str, sent: str | None, note: str | None,
) -> None:
    csrf = login(client, "sue")  # a supervisor, so the agent field is the form's too
    check = client.post(f"/dial/check?field={name}", data={name: typed}, headers=htmx(csrf))
    assert check.status_code == 200
    css, text = field_message(check.get_data(as_text=True), name)
    assert "field-msg--error" not in css, text
    if name == "callee":
        assert text == f"Will dial {sent}"  # the normalised number, shown as they type
    if note:
        assert "field-msg--warning" in css and note in text

    response = client.post("/dial", data={**GOOD, name: typed}, headers=htmx(csrf))
    page = response.get_data(as_text=True)
    assert response.status_code == 200, page
    assert "Dialling " in page and "dial__banner--ok" in page
    _wire_check(pbx, name, sent)


@pytest.mark.parametrize(("name", "typed", "expected"), INVALID)
def test_invalid_input_through_the_api(
    client: FlaskClient, runner: FlaskCliRunner, users: dict, pbx: TeleforgeStandIn,
    name: str, typed: str, expected: str,
) -> None:
    response = client.post("/api/v1/dial", json={**GOOD, name: typed}, headers=token(runner, "sue"))
    assert response.status_code == 422, response.json
    assert response.json["source"] == "desk"
    assert expected in response.json["errors"][name]
    assert set(response.json["errors"]) == {name}
    assert pbx.dials == []  # Teleforge never asked
    assert calls_in(client.application) == []


@pytest.mark.parametrize(("name", "typed", "expected"), INVALID)
def test_invalid_input_through_the_form(
    client: FlaskClient, users: dict, pbx: TeleforgeStandIn, name: str, typed: str, expected: str,
) -> None:
    csrf = login(client, "sue")
    if typed:  # while typing, an empty field shows its hint, not an error
        check = client.post(f"/dial/check?field={name}", data={name: typed}, headers=htmx(csrf))
        css, text = field_message(check.get_data(as_text=True), name)
        assert "field-msg--error" in css and expected in text

    response = client.post("/dial", data={**GOOD, name: typed}, headers=htmx(csrf))
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert response.headers["X-Desk-Swap"] == "1"  # htmx swaps it in despite the status
    css, text = field_message(page, name)
    assert "field-msg--error" in css and expected in text
    assert f'value="{html.escape(typed)}"' in page or not typed  # what they typed stays
    assert pbx.dials == []
    assert [a.outcome for a in audits(client.application)] == ["invalid"]


# --- the wire ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "key"), [("3.3", "contact_ref"), ("3.0.0", "contact_ref"),
                         ("2.9", "call_ref")],
)
def test_exact_json_on_the_wire(tmp_path: Path, version: str, key: str) -> None:
    with TeleforgeStandIn() as pbx:
        app = make_app(tmp_path, pbx.url, DESK_TELEFORGE_VERSION=version)
        try:
            client = app.test_client()
            from tests.conftest import add_user
            add_user(app, "ann", extension="101")
            csrf = login(client, "ann")
            response = client.post("/dial", headers=htmx(csrf), data={
                "callee": "+27 82 000 1234", "outbound_id": "27820001111", "reference": "crm-42",
            })
            assert response.status_code == 200, response.get_data(as_text=True)
        finally:
            db.dispose()
    assert len(pbx.received) == 1
    sent = pbx.received[0]
    assert (sent.method, sent.path) == ("POST", "/click2dial/calls")
    assert sent.headers["Content-Type"] == "application/json"
    assert sent.json == {"agent": "101", "callee": "0027820001234",
                         "outbound_id": "27820001111", key: "crm-42"}
    assert list(sent.json) == ["agent", "callee", "outbound_id", key]


def test_a_bad_teleforge_version_stops_the_desk_at_start(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="DESK_TELEFORGE_VERSION"):
        create_app(base_config(f"sqlite:///{tmp_path / 'x.sqlite3'}",
                               DESK_TELEFORGE_URL="http://pbx:8300",
                               DESK_TELEFORGE_VERSION="latest"))


# --- what a dial leaves behind ---------------------------------------------------------------


def test_a_dial_creates_a_dialling_row_and_an_audit_entry(
    client: FlaskClient, users: dict, pbx: TeleforgeStandIn,
) -> None:
    csrf = login(client, "ann")
    response = client.post("/dial", headers=htmx(csrf), data={
        "callee": "082 000 1234", "outbound_id": "tvc_sales", "reference": "crm-1"})
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert 'name="callee" type="tel"' in page and 'value=""' in page  # ready for the next
    (call,) = calls_in(client.application)
    assert (call.provider, call.provider_call_id, call.state) == ("teleforge", "crm-1", "dialling")
    assert (call.direction, call.from_number, call.to_number) == ("outbound", "101", "0820001234")
    assert call.outbound_id == "tvc_sales" and call.agent_id == users["ann"]
    (entry,) = audits(client.application)
    assert (entry.user_id, entry.action, entry.outcome, entry.call_id) == (
        users["ann"], "dial", "ok", call.id)
    assert '"contact_ref": "crm-1"' in entry.detail
    assert '"status": 200' in entry.provider_answer


def test_a_supervisor_dials_on_behalf_of_an_agent(
    client: FlaskClient, runner: FlaskCliRunner, users: dict, pbx: TeleforgeStandIn,
) -> None:
    response = client.post("/api/v1/dial", headers=token(runner, "sue"),
                           json={"agent": "102", "callee": "0820001234", "outbound_id": "random"})
    assert response.status_code == 201
    assert response.json["call"]["agent"] == "bob"
    assert response.headers["Location"].endswith(f"/api/v1/calls/{response.json['call']['id']}")
    (entry,) = audits(client.application)
    assert entry.user_id == users["sue"] and '"on_behalf_of": "bob"' in entry.detail


def test_agents_dial_only_from_their_own_extension(
    client: FlaskClient, runner: FlaskCliRunner, users: dict, pbx: TeleforgeStandIn,
) -> None:
    headers = token(runner, "ann")
    refused = client.post("/api/v1/dial", headers=headers,
                          json={"agent": "102", "callee": "0820001234", "outbound_id": "random"})
    assert refused.status_code == 403 and "own extension (101)" in refused.json["message"]
    ok = client.post("/api/v1/dial", headers=headers,
                     json={"callee": "0820001234", "outbound_id": "random"})
    assert ok.status_code == 201 and ok.json["dialled"]["agent"] == "101"
    assert len(pbx.dials) == 1


@pytest.mark.parametrize(
    ("body", "status", "text"),
    [
        ("not json", 400, "Send a JSON object"),
        ([1, 2], 400, "Send a JSON object"),
        ({"callee": 820001234.5, "outbound_id": "random"}, 422, "'callee' must be a string"),
        ({"callee": "0820001234", "outbound_id": "random", "colour": "red"}, 422, "'colour'"),
    ],
)
def test_malformed_api_bodies_are_clear_4xx(
    client: FlaskClient, runner: FlaskCliRunner, users: dict, pbx: TeleforgeStandIn,
    body: Any, status: int, text: str,
) -> None:
    headers = token(runner, "ann")
    if isinstance(body, str):
        response = client.post("/api/v1/dial", data=body, headers=headers,
                               content_type="application/json")
    else:
        response = client.post("/api/v1/dial", json=body, headers=headers)
    assert response.status_code == status
    assert text in response.json["message"]
    assert pbx.dials == []


def test_the_form_needs_a_csrf_token(
    client: FlaskClient, users: dict, pbx: TeleforgeStandIn,
) -> None:
    login(client, "ann")
    response = client.post("/dial", data=GOOD, headers={"HX-Request": "true"})
    assert response.status_code == 400
    assert pbx.dials == []


# --- Teleforge says no, or does not answer ---------------------------------------------------


def test_teleforge_validation_errors_show_against_the_field(
    client: FlaskClient, runner: FlaskCliRunner, users: dict, pbx: TeleforgeStandIn,
) -> None:
    pbx.answer = Answer(422, {"errors": {"callee": "number is barred"}})
    csrf = login(client, "ann")
    response = client.post("/dial", data=GOOD, headers=htmx(csrf))
    assert response.status_code == 422
    css, text = field_message(response.get_data(as_text=True), "callee")
    assert "field-msg--error" in css and text == "Teleforge: number is barred"
    (call,) = calls_in(client.application)
    assert (call.state, call.end_cause) == ("ended", "failed")  # certainly not placed
    assert "number is barred" in call.action_error
    assert audits(client.application)[-1].outcome == "refused"

    pbx.answer = Answer(400, "invalid outbound_id: not allowed on this trunk")
    api = client.post("/api/v1/dial", json=GOOD, headers={"X-CSRFToken": csrf})  # session auth
    assert api.status_code == 422
    assert api.json["source"] == "teleforge" and api.json["kind"] == "rejected"
    assert "not allowed on this trunk" in api.json["errors"]["outbound_id"]
    assert api.json["may_have_dialled"] is False
    assert len(pbx.dials) == 2


def test_a_5xx_keeps_the_row_dialling_with_a_warning(
    client: FlaskClient, runner: FlaskCliRunner, users: dict, pbx: TeleforgeStandIn,
) -> None:
    pbx.answer = Answer(503, "overloaded")
    response = client.post("/api/v1/dial", json=GOOD, headers=token(runner, "ann"))
    assert response.status_code == 502
    assert response.json["kind"] == "server_error" and response.json["may_have_dialled"] is True
    assert "check the board before dialling again" in response.json["message"]
    (call,) = calls_in(client.application)
    assert call.state == "dialling" and "HTTP 503" in call.action_error
    (entry,) = audits(client.application)
    assert entry.outcome == "error" and "overloaded" in entry.provider_answer
    assert len(pbx.dials) == 1  # never retried


def test_a_timeout_is_reported_audited_and_not_retried(
    client: FlaskClient, users: dict, pbx: TeleforgeStandIn,
) -> None:
    pbx.answer = Answer(delay=5)  # the desk waits 0.5 s
    csrf = login(client, "ann")
    response = client.post("/dial", data=GOOD, headers=htmx(csrf))
    page = response.get_data(as_text=True)
    assert response.status_code == 504
    assert "did not answer within 0.5s" in page and "dial__banner--error" in page
    assert len(pbx.dials) == 1
    (entry,) = audits(client.application)
    assert entry.outcome == "error" and '"kind": "timeout"' in entry.detail
    (call,) = calls_in(client.application)
    assert call.state == "dialling"  # it may ring yet; Teleforge's notifications will say


def test_a_refused_connection_ends_the_row_as_failed(tmp_path: Path) -> None:
    app = make_app(tmp_path, f"http://127.0.0.1:{free_port()}")  # nothing listens there
    try:
        from tests.conftest import add_user
        add_user(app, "ann", extension="101")
        client = app.test_client()
        csrf = login(client, "ann")
        api = client.post("/api/v1/dial", json=GOOD, headers={"X-CSRFToken": csrf})
        assert api.status_code == 502
        assert api.json["kind"] == "refused" and api.json["may_have_dialled"] is False
        assert "the call was not placed" in api.json["message"]
        assert api.json["call"]["state"] == "ended" and api.json["call"]["outcome"] == "failed"
        assert [a.outcome for a in audits(app)] == ["error"]
    finally:
        db.dispose()


def test_without_teleforge_configured_dialling_is_a_clear_503(
    client: FlaskClient, users: dict, tmp_path: Path,
) -> None:
    app = create_app(base_config(f"sqlite:///{tmp_path / 'n.sqlite3'}"))
    upgrade_database(app)
    try:
        from tests.conftest import add_user
        add_user(app, "ann", extension="101")
        other = app.test_client()
        csrf = login(other, "ann")
        assert "Click-to-dial is not configured" in other.get("/").get_data(as_text=True)
        response = other.post("/api/v1/dial", json=GOOD, headers={"X-CSRFToken": csrf})
        assert response.status_code == 503 and "DESK_TELEFORGE_URL" in response.json["message"]
    finally:
        db.dispose()


# --- one press, one call ---------------------------------------------------------------------


def test_a_double_submit_of_the_form_places_one_call(
    client: FlaskClient, users: dict, pbx: TeleforgeStandIn,
) -> None:
    csrf = login(client, "ann")
    page = client.get("/").get_data(as_text=True)
    attempt = re.search(r'name="attempt" value="([0-9a-f]+)"', page).group(1)  # type: ignore[union-attr]
    form = {**GOOD, "attempt": attempt}
    first = client.post("/dial", data=form, headers=htmx(csrf))
    second = client.post("/dial", data=form, headers=htmx(csrf))
    assert first.status_code == 200
    assert second.status_code == 409
    assert "sent already" in second.get_data(as_text=True)
    assert len(pbx.dials) == 1 and len(calls_in(client.application)) == 1
    # The answer to the first press carries a new token: the next dial is a new call.
    fresh = re.search(r'name="attempt" value="([0-9a-f]+)"', first.get_data(as_text=True))
    assert fresh and fresh.group(1) != attempt


def test_simultaneous_double_submit_places_one_call(
    app: Flask, users: dict, pbx: TeleforgeStandIn,
) -> None:
    clients = [app.test_client(), app.test_client()]
    tokens = [login(c, "ann") for c in clients]
    form = {**GOOD, "attempt": "a" * 32}
    barrier = threading.Barrier(2)
    statuses: list[int] = []

    def press(index: int) -> None:
        barrier.wait()
        response = clients[index].post("/dial", data=form, headers=htmx(tokens[index]))
        statuses.append(response.status_code)

    threads = [threading.Thread(target=press, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200, 409]
    assert len(pbx.dials) == 1


def test_an_api_retry_with_the_same_reference_or_key_places_one_call(
    client: FlaskClient, runner: FlaskCliRunner, users: dict, pbx: TeleforgeStandIn,
) -> None:
    headers = token(runner, "ann")
    body = {**GOOD, "reference": "crm-77"}
    assert client.post("/api/v1/dial", json=body, headers=headers).status_code == 201
    again = client.post("/api/v1/dial", json=body, headers=headers)
    assert again.status_code == 409
    assert again.json["call"]["provider_call_id"] == "crm-77"
    assert "reference" in again.json["errors"]

    keyed = {**headers, "Idempotency-Key": "crm-retry-1"}
    sure = {**GOOD, "confirm": True}  # ann is on the first call: dial anyway
    assert client.post("/api/v1/dial", json=sure, headers=keyed).status_code == 201
    retried = client.post("/api/v1/dial", json=sure, headers=keyed)
    assert retried.status_code == 409 and "sent already" in retried.json["message"]
    assert len(pbx.dials) == 2


# --- opening the form from elsewhere ---------------------------------------------------------


@pytest.mark.parametrize(
    "number", ["tel:+27-82-000-1234", "tel%3A%2B27%2082%20000%201234", "+27 82 000 1234;ext=9"]
)
def test_dial_url_opens_the_form_filled_in(
    client: FlaskClient, users: dict, pbx: TeleforgeStandIn, number: str,
) -> None:
    login(client, "ann")
    response = client.get(f"/dial?number={number}")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert 'id="calls-mine"' in page  # the whole board, with the form on top
    assert re.search(r'name="callee"[^>]*value="\+27[ -]82[ -]000[ -]1234"', page)
    assert field_message(page, "callee")[1] == "Will dial 0027820001234"
    assert pbx.dials == []  # opening the form never dials


def test_dial_url_asks_for_a_login_first(client: FlaskClient) -> None:
    response = client.get("/dial?number=0820001234")
    assert response.status_code == 302
    assert "/login?next=" in response.headers["Location"]


def test_boards_show_the_form_supervisors_with_an_agent_choice(
    client: FlaskClient, users: dict,
) -> None:
    login(client, "ann")
    agent_page = client.get("/").get_data(as_text=True)
    assert 'id="dial"' in agent_page and 'name="agent"' not in agent_page
    assert "your extension 101" in agent_page
    assert '<option value="27820001111">' in agent_page  # configured caller IDs offered
    supervisor = client.application.test_client()
    login(supervisor, "sue")
    page = supervisor.get("/supervisor").get_data(as_text=True)
    assert 'name="agent"' in page and '<option value="101">ann</option>' in page
    assert 'id="teleforge-status"' in page


def test_check_refuses_an_unknown_field(client: FlaskClient, users: dict) -> None:
    csrf = login(client, "ann")
    response = client.post("/dial/check?field=colour", data={}, headers=htmx(csrf))
    assert response.status_code == 400
