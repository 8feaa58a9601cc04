"""The integrator API's audit log (``GET /api/v1/audit``) and CSV history
(``GET /api/v1/calls.csv``), on the real app and database.

Audit entries are made the way people make them: dials through a stand-in Teleforge (a
real HTTP server on loopback), a refused dial, a supervisor closing a call. The CSV is
checked against the history page's own export, byte for byte, for every viewer and filter.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

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


def dial(client: FlaskClient, headers: dict[str, str], **body: Any) -> Any:
    """A dial through the API, confirmed (some of these ring people already on a call)."""
    return client.post("/api/v1/dial", headers=headers, json={
        "callee": "0820001234", "outbound_id": "random", "confirm": True, **body})


@pytest.fixture
def history(
    client: FlaskClient, runner: FlaskCliRunner, users: dict[str, int], pbx: TeleforgeStandIn,
) -> dict[str, Any]:
    """Six audit entries, oldest first: ann dials twice, bob once, ann's bad number is
    refused, sue dials for bob and closes ann's first call."""
    ann, bob, sue = token(runner, "ann"), token(runner, "bob"), token(runner, "sue")
    first = dial(client, ann, reference="crm-1").json["call"]["id"]
    dial(client, ann, reference="crm-2")
    dial(client, bob, reference="crm-3")
    assert dial(client, ann, callee="082").status_code == 422
    dial(client, sue, agent="102", reference="crm-4")
    assert client.post(f"/api/v1/calls/{first}/close", headers=sue).status_code == 200
    return {"ann": ann, "bob": bob, "sue": sue, "first": first}


def entries(client: FlaskClient, headers: dict[str, str], **query: str) -> list[dict]:
    response = client.get("/api/v1/audit", headers=headers, query_string=query)
    assert response.status_code == 200, response.json
    return response.json["entries"]


def test_supervisors_read_the_audit_log_newest_first(
    client: FlaskClient, history: dict[str, Any], users: dict[str, int],
) -> None:
    found = entries(client, history["sue"])
    assert [(e["actor"], e["action"], e["outcome"]) for e in found] == [
        ("sue", "close", "ok"), ("sue", "dial", "ok"), ("ann", "dial", "invalid"),
        ("bob", "dial", "ok"), ("ann", "dial", "ok"), ("ann", "dial", "ok"),
    ]
    ids = [e["id"] for e in found]
    assert ids == sorted(ids, reverse=True)
    oldest = found[-1]
    assert oldest["actor_id"] == users["ann"] and oldest["call_id"] == history["first"]
    # What the desk sent Teleforge and what it answered, as JSON, not as quoted text.
    assert oldest["detail"]["request"]["contact_ref"] == "crm-1"
    assert oldest["provider_answer"]["status"] == 200
    assert datetime.fromisoformat(oldest["at"]) <= datetime.now(UTC)
    assert found[2]["detail"]["errors"]["callee"].endswith("this one has 3.")
    assert found[1]["detail"]["on_behalf_of"] == "bob"


def test_paging_with_before_covers_every_entry_once(
    client: FlaskClient, history: dict[str, Any],
) -> None:
    seen: list[int] = []
    before = ""
    for _ in range(10):
        page = client.get("/api/v1/audit", headers=history["sue"],
                          query_string={"limit": 4, "before": before}).json
        seen += [e["id"] for e in page["entries"]]
        assert len(page["entries"]) <= 4
        if page["next_before"] is None:
            break
        before = str(page["next_before"])
    assert len(seen) == 6 and seen == sorted(set(seen), reverse=True)
    assert [e["id"] for e in entries(client, history["sue"])] == seen
    two = client.get("/api/v1/audit?limit=2", headers=history["sue"]).json
    assert two["next_before"] == seen[1]


def test_filters_by_actor_action_call_outcome(
    client: FlaskClient, history: dict[str, Any],
) -> None:
    sue = history["sue"]
    assert {e["actor"] for e in entries(client, sue, actor="ann")} == {"ann"}
    assert len(entries(client, sue, actor="ann")) == 3
    assert [e["action"] for e in entries(client, sue, action="close")] == ["close"]
    about_first = entries(client, sue, call=str(history["first"]))
    assert [(e["action"], e["actor"]) for e in about_first] == [("close", "sue"), ("dial", "ann")]
    assert [e["actor"] for e in entries(client, sue, outcome="invalid")] == ["ann"]
    assert entries(client, sue, actor="bob", action="close") == []


def test_filters_by_time(app: Flask, client: FlaskClient, history: dict[str, Any]) -> None:
    # The first three entries were written "yesterday", the others stay now.
    yesterday = datetime.now(UTC) - timedelta(days=1)
    with app.app_context():
        for entry in db.session.scalars(select(AuditEntry).order_by(AuditEntry.id).limit(3)):
            entry.at = yesterday
        db.session.commit()
    cut = (yesterday + timedelta(hours=1)).isoformat()
    sue = history["sue"]
    assert len(entries(client, sue, until=cut)) == 3
    assert len(entries(client, sue, since=cut)) == 3
    assert [e["action"] for e in entries(client, sue, since=cut)] == ["close", "dial", "dial"]
    zulu = (yesterday - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert len(entries(client, sue, since=zulu, until=cut)) == 3


def test_agents_are_refused_and_strangers_asked_to_log_in(
    client: FlaskClient, history: dict[str, Any],
) -> None:
    refused = client.get("/api/v1/audit", headers=history["ann"])
    assert refused.status_code == 403
    assert "supervisors" in refused.json["message"]
    anonymous = client.application.test_client().get("/api/v1/audit")
    assert anonymous.status_code == 401


@pytest.mark.parametrize(
    ("query", "named", "says"),
    [
        ("limit=0", "'limit'", "from 1 to 200"),
        ("limit=lots", "'limit'", "whole number"),
        ("before=-1", "'before'", "whole number"),
        ("call=abc", "'call'", "whole number"),
        ("since=yesterday", "'since'", "ISO 8601"),
        ("until=2026-02-30T00:00:00Z", "'until'", "ISO 8601"),
        ("since=2026-03-02T00:00:00Z&until=2026-03-01T00:00:00Z", "'until'", "swap them"),
        ("actor=nobody", "'actor'", "GET /api/v1/agents"),
        ("outcome=maybe", "'outcome'", "ok, refused, error, invalid"),
        ("action=" + "x" * 65, "'action'", "at most 64"),
    ],
)
def test_bad_filters_are_400_naming_the_parameter(
    client: FlaskClient, runner: FlaskCliRunner, users: dict[str, int],
    query: str, named: str, says: str,
) -> None:
    response = client.get(f"/api/v1/audit?{query}", headers=token(runner, "sue"))
    assert response.status_code == 400
    assert named in response.json["message"] and says in response.json["message"]


# --- call history as CSV ---------------------------------------------------------------------


def placetel(client: FlaskClient, **form: str) -> None:
    answer = client.post("/webhooks/placetel", data=form, auth=PLACETEL_AUTH)
    assert answer.status_code == 200, answer.get_data(as_text=True)


def call(client: FlaskClient, call_id: str, number: str, peer: str | None) -> None:
    placetel(client, event="IncomingCall", call_id=call_id, to="0221", **{"from": number})
    if peer:
        placetel(client, event="CallAccepted", call_id=call_id, peer=peer,
                 to="0221", **{"from": number})
    placetel(client, event="HungUp", call_id=call_id, type="accepted" if peer else "missed",
             duration="42" if peer else "0")


@pytest.fixture
def calls(client: FlaskClient, users: dict[str, int]) -> None:
    call(client, "c-ann", "0301234567", "777ann@fpbx.de")
    call(client, "c-bob", "=HYPERLINK(\"http://x\")", "777bob@fpbx.de")
    call(client, "c-missed", "+4930999", None)


def rows(body: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(body)))


@pytest.mark.parametrize(
    ("who", "query"),
    [
        ("sue", ""), ("sue", "outcome=missed"), ("sue", "number=0301"),
        ("sue", "provider=placetel&from=2000-01-01&to=2999-12-31"), ("ann", ""),
        ("bob", "number=HYPER"),
    ],
)
def test_the_csv_is_the_history_pages_export(
    client: FlaskClient, runner: FlaskCliRunner, calls: None, who: str, query: str,
) -> None:
    page = client.application.test_client()
    login(page, who)
    expected = page.get(f"/history.csv?{query}")
    assert expected.status_code == 200
    answer = client.get(f"/api/v1/calls.csv?{query}", headers=token(runner, who))
    assert answer.status_code == 200
    assert answer.mimetype == "text/csv"
    assert answer.headers["Content-Disposition"].startswith('attachment; filename="calls-')
    assert answer.get_data(as_text=True) == expected.get_data(as_text=True)


def test_the_csv_shows_what_each_viewer_may_see_and_escapes_formulas(
    client: FlaskClient, runner: FlaskCliRunner, calls: None, users: dict[str, int],
) -> None:
    every = rows(client.get("/api/v1/calls.csv", headers=token(runner, "sue"))
                 .get_data(as_text=True))
    assert [r["provider_call_id"] for r in every] == ["c-missed", "c-bob", "c-ann"]
    by_id = {r["provider_call_id"]: r for r in every}
    assert by_id["c-bob"]["from"] == "'=HYPERLINK(\"http://x\")"  # text, not a formula
    assert by_id["c-missed"]["from"] == "'+4930999"
    assert by_id["c-ann"]["from"] == "0301234567" and by_id["c-ann"]["agent"] == "ann"
    assert by_id["c-ann"]["duration_seconds"] == "42"
    own = rows(client.get("/api/v1/calls.csv", headers=token(runner, "ann"))
               .get_data(as_text=True))
    assert [r["provider_call_id"] for r in own] == ["c-ann"]  # agents: the calls they answered
    agent_filter = rows(client.get(f"/api/v1/calls.csv?agent={users['bob']}",
                                   headers=token(runner, "sue")).get_data(as_text=True))
    assert [r["provider_call_id"] for r in agent_filter] == ["c-bob"]


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("from=2026-13-01", "'from' must be a date like 2026-03-31"),
        ("from=2026-03-02&to=2026-03-01", "swap them"),
        ("outcome=maybe", "'outcome' must be one of"),
        ("provider=skype", "'provider' must be one of"),
        ("agent=ann", "'agent' must be a number"),
        ("number=" + "1" * 65, "'number' is at most 64 characters"),
    ],
)
def test_bad_csv_filters_are_400_json(
    client: FlaskClient, runner: FlaskCliRunner, users: dict[str, int], query: str, says: str,
) -> None:
    response = client.get(f"/api/v1/calls.csv?{query}", headers=token(runner, "sue"))
    assert response.status_code == 400
    assert response.mimetype == "application/json"
    assert says in response.json["message"]


def test_the_csv_needs_credentials(client: FlaskClient) -> None:
    response = client.get("/api/v1/calls.csv")
    assert response.status_code == 401 and "users token" in response.json["message"]
