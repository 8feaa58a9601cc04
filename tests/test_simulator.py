"""The built-in simulators, over real HTTP against a desk under gunicorn.

A demo desk (no provider configured) serves the simulated Teleforge and mediaservice and is
pointed at them; its own inbound traffic is turned down to almost nothing, so each test
plays exactly the calls it needs with ``desk.simulator.traffic`` (the code behind the demo's
traffic and ``flask --app app simulate``). Then: a dial is refused by the simulated PBX for
what the document forbids and connects otherwise (through the in-process list, or Redis);
Record, Split and Hang up reach the simulated mediaservice, whose callbacks confirm them and
deliver a playable recording; ``flask --app app simulate`` feeds a desk with real provider
credentials through its authenticated webhooks; and no provider setting ever leaves the
simulators on.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
from flask import Flask

from desk import create_app
from desk.providers.mediaservice.simulator import DOMAIN
from desk.simulator.traffic import Traffic
from tests.conftest import PASSWORD, REDIS_URL, require
from tests.mediaservice_standin import key_pair
from tests.servers import NO_ENV_FILE, ROOT, LiveServer, flask_cli, prepare

# Almost no calls of the desk's own: tests start the calls they look at.
QUIET_RATE = "0.0001"


def demo_env(database_url: str, **extra: str) -> dict[str, str]:
    """The environment ``make run`` gives a fresh machine: no provider, demo mode asked for
    (DESK_DEMO=1), so the simulators."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("DESK_")}
    env.update(NO_ENV_FILE)
    env.update(DESK_DATABASE_URL=database_url, DESK_SIMULATE_RATE=QUIET_RATE, DESK_DEMO="1",
               DESK_WS_PING_INTERVAL="5", **extra)
    return env


def wait_for(what: str, probe: Callable[[], Any], timeout: float = 20.0) -> Any:
    """Poll ``probe`` until it returns something truthy; fail with ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}; last seen: {last!r}"[:1500])


class Agent:
    """The demo agent, through the JSON API with a Bearer token."""

    def __init__(self, server: LiveServer, token: str) -> None:
        self.url = server.url + "/api/v1"
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {token}"

    def call(self, call_id: int) -> dict[str, Any]:
        return self.http.get(f"{self.url}/calls/{call_id}", timeout=5).json()

    def live(self) -> list[dict[str, Any]]:
        return self.http.get(f"{self.url}/calls", timeout=5).json()["calls"]

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.http.post(self.url + path, timeout=10, **kwargs)


def start(server: LiveServer) -> tuple[LiveServer, Agent]:
    token = flask_cli(server.env, "users", "token", "agent").strip()
    agent = Agent(server, token)
    agent.http.put(f"{agent.url}/agents/me/presence", json={"presence": "available"},
                   timeout=5).raise_for_status()
    return server, agent


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, Agent]]:
    # The tests' calls for the one demo agent follow each other at once: no wrap-up between.
    env = demo_env(f"sqlite:///{tmp_path_factory.mktemp('sim') / 'desk.sqlite3'}",
                   DESK_WRAP_UP_SECONDS="0")
    flask_cli(env, "db", "upgrade")
    assert "Log in as 'agent'" in flask_cli(env, "users", "demo")
    server = LiveServer(env)
    try:
        yield start(server)
    finally:
        server.stop()


@pytest.fixture
def traffic(demo: tuple[LiveServer, Agent]) -> Iterator[Traffic]:
    """Calls played the way ``flask --app app simulate`` plays them, stopped after the test."""
    played = Traffic(demo[0].url, rate=1)
    yield played
    played.stop.set()


def dial_and_connect(server: LiveServer, agent: Agent) -> None:
    response = agent.post("/dial", json={"callee": "082 000 1234", "outbound_id": "random"})
    assert response.status_code == 201, response.text
    call_id = response.json()["call"]["id"]
    # Like the real PBX, the simulated one says nothing until its CDR at the end of the call.
    connected = wait_for("the dial's CDR", lambda: agent.call(call_id)["state"] == "ended", 45)
    assert connected
    call = agent.call(call_id)
    assert call["outcome"] == "answered" and call["duration"] > 0
    assert call["provider"] == "teleforge" and call["agent"] == "agent"
    assert call["to"] == "0820001234"


def test_the_simulated_pbx_refuses_what_the_document_forbids(
    demo: tuple[LiveServer, Agent],
) -> None:
    server, _agent = demo
    url = server.url + "/simulator/teleforge/click2dial/calls"
    bad = requests.post(url, json={"agent": "12", "callee": "12345", "outbound_id": "me",
                                   "contact_ref": "order 42"}, timeout=5)
    assert bad.status_code == 422
    assert set(bad.json()["errors"]) == {"agent", "callee", "outbound_id", "contact_ref"}
    assert requests.post(url, data="agent=101", timeout=5).status_code == 400


def test_record_then_hang_up_reach_the_simulated_mediaservice(
    demo: tuple[LiveServer, Agent], traffic: Traffic,
) -> None:
    server, agent = demo
    wait_for("the agent to be free", lambda: not [c for c in agent.live()
                                                  if c["agent"] == "agent"])
    traffic.start_call("mediaservice", "long")
    call = wait_for("the call to be answered by the demo agent", lambda: next(
        (c for c in agent.live() if c["provider"] == "mediaservice" and c["state"] == "talking"
         and c["agent"] == "agent"), None))
    assert call["answered_by"] == "agent101@desk.demo"

    assert agent.post(f"/calls/{call['id']}/recording").status_code == 202
    assert agent.call(call["id"])["recording_state"] == "on"
    assert agent.post(f"/calls/{call['id']}/hangup").status_code == 202
    ended = wait_for("the hang-up and the recording to be confirmed", lambda: (
        lambda c: c if c["state"] == "ended" and c["recording_state"] == "ready" else None
    )(agent.call(call["id"])))
    assert ended["pending_action"] is None and ended["end_cause"] == "callee-hangup"

    # Playback: the desk asks the simulator for a URL, and that URL serves a real WAV file.
    browser = server.login("agent", "demo-password")
    audio = browser.get(f"{server.url}/calls/{call['id']}/recording", timeout=5)
    assert audio.status_code == 200 and audio.headers["Content-Type"] == "audio/wav"
    assert audio.content[:4] == b"RIFF" and audio.content[8:12] == b"WAVE"
    assert len(audio.content) > 10_000
    # A second hang-up finds the call gone at the provider, and says so.
    assert agent.post(f"/calls/{call['id']}/hangup").status_code in (409, 502)


def test_split_transfers_the_caller_and_the_call_lives_on(
    demo: tuple[LiveServer, Agent], traffic: Traffic,
) -> None:
    _server, agent = demo
    wait_for("the agent to be free", lambda: not [c for c in agent.live()
                                                  if c["agent"] == "agent"])
    traffic.start_call("mediaservice", "long")
    call = wait_for("an answered call", lambda: next(
        (c for c in agent.live() if c["provider"] == "mediaservice" and c["state"] == "talking"
         and c["agent"] == "agent"), None))
    response = agent.post(f"/calls/{call['id']}/split", json={"target": "sip:agent102@desk.demo"})
    assert response.status_code == 202, response.text
    split = wait_for("the split to be confirmed", lambda: (
        lambda c: c if c["pending_action"] is None else None)(agent.call(call["id"])))
    assert split["state"] == "talking" and not split["action_error"]
    assert agent.post(f"/calls/{call['id']}/hangup").status_code == 202
    wait_for("the call to end", lambda: agent.call(call["id"])["state"] == "ended")


def test_a_dial_connects_through_the_in_process_list(demo: tuple[LiveServer, Agent]) -> None:
    # Last on this desk: the dialled call keeps the agent busy for a while.
    dial_and_connect(*demo)


@pytest.mark.redis
def test_with_redis_the_dial_notifications_travel_a_redis_list(
    tmp_path: Path,
) -> None:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
        error = None
    except redis.RedisError as exc:
        error = exc
    require("Redis", error)
    name = f"desk-test:sim:{time.time_ns()}"
    env = demo_env(f"sqlite:///{tmp_path / 'desk.sqlite3'}", DESK_REDIS_URL=REDIS_URL,
                   DESK_TELEFORGE_LISTS=name)
    flask_cli(env, "db", "upgrade")
    flask_cli(env, "users", "demo")
    server = LiveServer(env)
    try:
        dial_and_connect(*start(server))
        client = redis.Redis.from_url(REDIS_URL)
        assert client.llen(name) == 0  # every notification was taken and acknowledged
        assert not list(client.scan_iter(match=f"{name}:processing:*"))
    finally:
        server.stop()


def test_the_simulate_command_uses_the_providers_real_credentials(
    tmp_path: Path,
) -> None:
    provider_private, provider_public = key_pair()
    desk_private, _ = key_pair()
    (tmp_path / "provider.pem").write_text(provider_private)
    (tmp_path / "provider.pub.pem").write_text(provider_public)
    (tmp_path / "desk.pem").write_text(desk_private)
    from tests.servers import desk_env

    env = desk_env(
        f"sqlite:///{tmp_path / 'desk.sqlite3'}", DESK_STRINGEE_TOKEN="stringee-secret",
        DESK_MEDIASERVICE_URL="http://127.0.0.1:9", DESK_MEDIASERVICE_DOMAIN=DOMAIN,
        DESK_MEDIASERVICE_KEY_FILE=str(tmp_path / "desk.pem"),
        DESK_MEDIASERVICE_CALLBACK_KEY_FILE=str(tmp_path / "provider.pub.pem"),
    )
    prepare(env, PASSWORD)
    server = LiveServer(env)
    try:
        # Provider settings present: no simulator is served, whatever DESK_SIMULATE says.
        assert requests.post(server.url + "/simulator/teleforge/click2dial/calls",
                             json={}, timeout=5).status_code == 404
        args = ["simulate", "--url", server.url, "--rate", "3000", "--calls", "9",
                "--speed", "400", "--mediaservice-key", str(tmp_path / "provider.pem")]
        output = flask_cli(env, *args)
        assert "200:" in output and "401" not in output, output

        session = server.login("sue", PASSWORD)
        calls = session.get(server.url + "/api/v1/calls?state=all&limit=100",
                            timeout=5).json()["calls"]
        assert len(calls) == 9
        assert all(c["state"] == "ended" for c in calls), calls

        # Wrong credentials are refused by the desk, and the command says so.
        wrong = {**env, "DESK_PLACETEL_PASSWORD": "wrong"}
        import subprocess

        result = subprocess.run(
            [str(Path(ROOT) / ".venv/bin/flask"), "--app", "app", "simulate", "--url",
             server.url, "--rate", "3000", "--calls", "2", "--speed", "400",
             "--providers", "placetel"],
            cwd=ROOT, env=wrong, capture_output=True, text=True, timeout=60,
        )
        assert result.returncode != 0
        assert "401" in result.stdout + result.stderr
    finally:
        server.stop()


@pytest.mark.parametrize("provider", [
    {"DESK_PLACETEL_USER": "pt", "DESK_PLACETEL_PASSWORD": "pw"},
    {"DESK_TELEFORGE_URL": "http://pbx:8300"},
    {"DESK_MEDIASERVICE_URL": "https://api.example", "DESK_MEDIASERVICE_DOMAIN": DOMAIN},
    {"DESK_STRINGEE_TOKEN": "t"},
])
@pytest.mark.parametrize("demo_flag", ["", "1"])
def test_provider_settings_always_turn_the_simulators_off(
    tmp_path: Path, provider: dict[str, str], demo_flag: str,
) -> None:
    app: Flask = create_app({
        "DESK_DATABASE_URL": f"sqlite:///{tmp_path / 'desk.sqlite3'}",
        "DESK_SECRET_KEY": "s", "DESK_DEMO": demo_flag, "DESK_SIMULATE": "1", **provider,
        # Every server process sweeps silent calls (desk.services.sweeper); that thread is
        # not a simulator, and this test asks whether a first request starts any.
        "DESK_SWEEP_INTERVAL": "0",
    })
    assert app.config["DESK_SIMULATE"] is False
    assert app.extensions["simulator"] is None
    assert not [rule for rule in app.url_map.iter_rules() if "simulator" in rule.rule]
    before = set(threading.enumerate())
    app.test_client().get("/healthz")  # a first request starts nothing
    # Threads that end meanwhile (a rate-limit store's expiry timer) do not count.
    assert not set(threading.enumerate()) - before
    assert app.config["DESK_TELEFORGE_URL"] == provider.get("DESK_TELEFORGE_URL", "")
    assert "simulate" in app.cli.commands  # sending traffic to a desk stays possible
