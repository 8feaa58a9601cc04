"""The JSON API: bearer and session auth, filters, validation, the OpenAPI document."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from openapi_spec_validator import validate

from tests.conftest import login

AUTH = {"Authorization": "Basic cGxhY2V0ZWw6czNjcmV0LXB0"}  # placetel:s3cret-pt


def token_for(runner: FlaskCliRunner, name: str) -> dict[str, str]:
    result = runner.invoke(args=["users", "token", name])
    assert result.exit_code == 0, result.output
    return {"Authorization": f"Bearer {result.output.strip()}"}


def ring(client: FlaskClient, call_id: str, number: str = "022129191999") -> None:
    data = {"event": "IncomingCall", "from": number, "to": "0221", "call_id": call_id}
    assert client.post("/webhooks/placetel", data=data, headers=AUTH).status_code == 200


def end(client: FlaskClient, call_id: str, peer: str | None = None) -> None:
    if peer:
        client.post("/webhooks/placetel", headers=AUTH, data={
            "event": "CallAccepted", "call_id": call_id, "peer": peer, "from": "1", "to": "2"})
    client.post("/webhooks/placetel", headers=AUTH, data={
        "event": "HungUp", "call_id": call_id, "type": "accepted", "duration": "30"})


def test_api_without_credentials_is_401_json(client: FlaskClient) -> None:
    response = client.get("/api/v1/calls")
    assert response.status_code == 401
    assert "users token" in response.json["message"]


def test_bearer_token_lists_live_calls(
    client: FlaskClient, runner: FlaskCliRunner, users: dict
) -> None:
    headers = token_for(runner, "sue")
    ring(client, "a")
    ring(client, "b")
    end(client, "b")
    calls = client.get("/api/v1/calls", headers=headers).json["calls"]
    assert [c["provider_call_id"] for c in calls] == ["a"]
    assert calls[0]["state"] == "ringing"


def test_a_wrong_token_is_refused(client: FlaskClient, users: dict) -> None:
    response = client.get("/api/v1/calls", headers={"Authorization": "Bearer desk_nope"})
    assert response.status_code == 401


def test_history_filters_and_paging(
    client: FlaskClient, runner: FlaskCliRunner, users: dict
) -> None:
    headers = token_for(runner, "sue")
    for i in range(5):
        ring(client, f"h{i}", number=f"0301234{i}")
        end(client, f"h{i}", peer="777ann@fpbx.de" if i % 2 else None)
    page = client.get("/api/v1/calls?state=ended&limit=2", headers=headers).json
    assert [c["provider_call_id"] for c in page["calls"]] == ["h4", "h3"]
    rest = client.get(f"/api/v1/calls?state=ended&limit=10&before={page['next_before']}",
                      headers=headers).json
    assert [c["provider_call_id"] for c in rest["calls"]] == ["h2", "h1", "h0"]
    assert rest["next_before"] is None
    by_agent = client.get("/api/v1/calls?state=all&agent=ann", headers=headers).json["calls"]
    assert {c["provider_call_id"] for c in by_agent} == {"h1", "h3"}
    by_number = client.get("/api/v1/calls?state=all&number=03012342", headers=headers).json
    assert [c["provider_call_id"] for c in by_number["calls"]] == ["h2"]


def test_number_filter_takes_wildcards_literally(
    client: FlaskClient, runner: FlaskCliRunner, users: dict
) -> None:
    headers = token_for(runner, "sue")

    def matching(number: str) -> list[str]:
        response = client.get("/api/v1/calls", headers=headers,
                              query_string={"state": "all", "number": number})
        assert response.status_code == 200
        return [c["provider_call_id"] for c in response.json["calls"]]

    ring(client, "plain", number="022129191999")
    end(client, "plain")
    assert matching("%") == []
    assert matching("_") == []
    assert matching("0221_9") == []  # "_" is not "any one character"
    ring(client, "odd", number="0221%50_1")
    assert matching("%") == ["odd"]
    assert matching("%50_") == ["odd"]
    assert matching("2919") == ["plain"]


@pytest.mark.parametrize("cause", ["unavailable", "congestion"])
def test_placetel_outbound_failures_are_their_own_outcome(
    client: FlaskClient, runner: FlaskCliRunner, users: dict, cause: str
) -> None:
    for data in ({"event": "OutgoingCall", "call_id": "out-1", "from": "0221", "to": "0301",
                  "peer": "777ann@fpbx.de", "direction": "out"},
                 {"event": "HungUp", "call_id": "out-1", "type": cause, "duration": "0",
                  "direction": "out"}):
        assert client.post("/webhooks/placetel", data=data, headers=AUTH).status_code == 200
    calls = client.get("/api/v1/calls?state=ended", headers=token_for(runner, "sue")).json
    assert [(c["end_cause"], c["outcome"]) for c in calls["calls"]] == [(cause, cause)]


def test_agents_see_only_their_own_history(
    client: FlaskClient, runner: FlaskCliRunner, users: dict
) -> None:
    ring(client, "mine")
    end(client, "mine", peer="777ann@fpbx.de")
    ring(client, "theirs")
    end(client, "theirs", peer="777bob@fpbx.de")
    ann = token_for(runner, "ann")
    history = client.get("/api/v1/calls?state=ended", headers=ann).json["calls"]
    assert [c["provider_call_id"] for c in history] == ["mine"]
    theirs_id = client.get("/api/v1/calls?state=ended", headers=token_for(runner, "sue")).json[
        "calls"][0]["id"]
    assert client.get(f"/api/v1/calls/{theirs_id}", headers=ann).status_code == 403


@pytest.mark.parametrize(
    "query",
    ["state=maybe", "limit=0", "limit=201", "limit=abc", "since=yesterday", "before=-1"],
)
def test_bad_filters_are_400_with_a_message(
    client: FlaskClient, runner: FlaskCliRunner, users: dict, query: str
) -> None:
    response = client.get(f"/api/v1/calls?{query}", headers=token_for(runner, "sue"))
    assert response.status_code == 400
    assert response.json["message"]


def test_missing_call_is_404_json(client: FlaskClient, runner: FlaskCliRunner, users: dict) -> None:
    response = client.get("/api/v1/calls/999", headers=token_for(runner, "sue"))
    assert response.status_code == 404
    assert response.json["message"] == "There is no call 999."


def test_presence_by_session_needs_csrf_but_bearer_does_not(
    client: FlaskClient, runner: FlaskCliRunner, users: dict
) -> None:
    token = login(client, "ann")
    assert client.put("/api/v1/agents/me/presence", json={"presence": "away"}).status_code == 400
    ok = client.put("/api/v1/agents/me/presence", json={"presence": "away"},
                    headers={"X-CSRFToken": token})
    assert ok.status_code == 200 and ok.json["presence"] == "away"
    bearer = client.application.test_client().put(
        "/api/v1/agents/me/presence", json={"presence": "wrap-up"}, headers=token_for(runner, "bob")
    )
    assert bearer.status_code == 200 and bearer.json["presence"] == "wrap-up"
    bad = client.application.test_client().put(
        "/api/v1/agents/me/presence", json={"presence": 5}, headers=token_for(runner, "bob")
    )
    assert bad.status_code == 400


def test_agents_list_shows_current_call(
    client: FlaskClient, runner: FlaskCliRunner, users: dict
) -> None:
    ring(client, "live1")
    client.post("/webhooks/placetel", headers=AUTH, data={
        "event": "CallAccepted", "call_id": "live1", "peer": "777ANN@fpbx.de"})
    agents = client.get("/api/v1/agents", headers=token_for(runner, "sue")).json["agents"]
    ann = next(a for a in agents if a["name"] == "ann")
    assert ann["current_call"] is not None


def test_openapi_document_is_valid_and_covers_every_route(app: Flask, client: FlaskClient) -> None:
    document = client.get("/api/v1/openapi.json").json
    validate(document)
    documented = {
        (path, method.upper()) for path, item in document["paths"].items() for method in item
    }
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/"):
            continue
        path = rule.rule.removeprefix("/api/v1").replace("<int:call_id>", "{call_id}")
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert (path, method) in documented, f"{method} {rule.rule} is not in openapi.json"
