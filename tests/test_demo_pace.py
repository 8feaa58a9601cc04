"""The demo's pace: the calls a minute it chooses for N agents on shift stay within what they
can take (ring, talk and wrap-up included); the desk's own view of who is on shift and who
is free, which that pace follows, is the routing's; a call for the agents goes to the
colleagues while none is free; and in a running demo desk (gunicorn, its own traffic) an
agent who logs in soon gets a call of their own."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask

from desk.extensions import db
from desk.models import Call, User, utcnow
from desk.settings import SettingsError, load_settings
from desk.simulator.demo import DeskStaffing
from desk.simulator.traffic import (
    MIXES,
    OCCUPANCY,
    TALK,
    Traffic,
    agent_call_seconds,
    agent_capacity,
    agent_share,
    demo_rate,
)
from tests.conftest import add_user
from tests.servers import LiveServer, flask_cli
from tests.test_simulator import Agent, demo_env, wait_for


@pytest.mark.parametrize("wrap_up", [0, 10, 60])
@pytest.mark.parametrize("speed", [1, 10])
def test_the_rate_for_n_agents_is_bounded_by_their_capacity(wrap_up: int, speed: int) -> None:
    for agents in range(1, 41):
        capacity = agent_capacity(agents, wrap_up, speed)
        for_agents = demo_rate(agents, wrap_up, speed) * agent_share()
        assert for_agents <= capacity, agents
        assert for_agents == pytest.approx(OCCUPANCY * capacity)
        # Capacity is one call at a time each: N agents, each held as long as a call takes.
        assert capacity * agent_call_seconds(wrap_up, speed) / 60 == pytest.approx(agents)
    assert OCCUPANCY < 1


def test_one_agent_gets_a_small_centres_traffic_not_a_big_ones() -> None:
    # make run: DESK_WRAP_UP_SECONDS=10. One agent takes fewer than one call in two minutes,
    # far below the six a minute the demo once sent whoever was logged in.
    assert agent_capacity(1, 10) < 0.5
    assert demo_rate(1, 10) * agent_share() < 0.5
    assert demo_rate(2, 10) == pytest.approx(2 * demo_rate(1, 10))


def test_wrap_up_and_longer_calls_lower_the_rate() -> None:
    assert demo_rate(3, 60) < demo_rate(3, 10) < demo_rate(3, 0)
    # A call holds an agent for at least its mean talk time among the answered ones.
    mix = MIXES["mediaservice"]
    answered = (mix["answered"] + mix["long"]) / sum(mix.values())
    assert agent_call_seconds(0) > answered * sum(TALK) / 2
    assert agent_call_seconds(10) - agent_call_seconds(0) == pytest.approx(10 * answered)


def test_with_nobody_on_shift_only_the_colleagues_calls_come() -> None:
    assert agent_capacity(0, 10) == 0
    assert 0 < demo_rate(0, 10) == pytest.approx(demo_rate(1, 10) * (1 - agent_share()))


def test_the_demos_pace_needs_the_desks_staffing() -> None:
    with pytest.raises(ValueError, match="staffing"):
        Traffic("http://127.0.0.1:9", None)


def test_the_rate_setting_is_auto_or_a_number() -> None:
    demo = {"DESK_DEMO": "1"}
    assert load_settings(environ=demo)["DESK_SIMULATE_RATE"] is None
    assert load_settings(environ={**demo, "DESK_SIMULATE_RATE": "auto"})[
        "DESK_SIMULATE_RATE"] is None
    assert load_settings(environ={**demo, "DESK_SIMULATE_RATE": "20"})[
        "DESK_SIMULATE_RATE"] == 20.0
    assert load_settings(environ={**demo, "DESK_SIMULATE_SPEED": "10"})[
        "DESK_SIMULATE_SPEED"] == 10.0
    for bad in ("0", "lots"):
        with pytest.raises(SettingsError, match="DESK_SIMULATE_RATE"):
            load_settings(environ={**demo, "DESK_SIMULATE_RATE": bad})


def test_staffing_sees_who_is_on_shift_and_free_as_routing_does(app: Flask) -> None:
    ann = add_user(app, "ann", sip_peer="agent101@desk.demo", presence="available")
    bob = add_user(app, "bob", sip_peer="agent102@desk.demo", presence="wrap-up")
    add_user(app, "cy", sip_peer="agent103@desk.demo", presence="away")
    add_user(app, "dee", presence="available")  # no SIP peer: a mediaservice call cannot ring her
    add_user(app, "sue", role="supervisor", sip_peer="agent100@desk.demo")
    staffing = DeskStaffing(app)
    assert (staffing.on_shift(), staffing.free()) == (2, 1)  # bob is in wrap-up

    with app.app_context():
        user = db.session.get(User, bob)
        assert user is not None
        user.presence_until = utcnow() - timedelta(seconds=1)  # the wrap-up is over
        db.session.add(Call(provider="mediaservice", provider_call_id="on-a-call", state="talking",
                            direction="inbound", agent_id=ann, started_at=utcnow(),
                            answered_at=utcnow()))
        db.session.commit()
    assert (staffing.on_shift(), staffing.free()) == (2, 1)  # ann talks, bob is free again


def test_a_call_for_the_agents_goes_to_the_colleagues_while_none_is_free(app: Flask) -> None:
    ann = add_user(app, "ann", sip_peer="agent101@desk.demo", presence="away")
    traffic = Traffic("http://127.0.0.1:9", None, staffing=DeskStaffing(app), wrap_up=10)
    traffic.stop.set()  # the calls' threads end at once: only where they go is looked at

    def provider_of_next_call() -> str:
        traffic.start_call("mediaservice", "answered")
        thread = traffic._threads[-1]
        thread.join(timeout=30)
        return thread.name.removeprefix("sim-").removesuffix("-call")

    assert provider_of_next_call() in ("placetel", "stringee")
    with app.app_context():
        user = db.session.get(User, ann)
        assert user is not None
        user.presence = "available"
        db.session.commit()
    assert provider_of_next_call() == "mediaservice"
    with app.app_context():  # on a call: busy, so the next caller goes to the colleagues
        db.session.add(Call(provider="mediaservice", provider_call_id="busy", state="talking",
                            direction="inbound", agent_id=ann, started_at=utcnow(),
                            answered_at=utcnow()))
        db.session.commit()
    assert provider_of_next_call() in ("placetel", "stringee")


def test_an_agent_logging_in_to_the_demo_soon_gets_a_call_of_their_own(tmp_path: Path) -> None:
    # The demo as make run starts it: its own traffic at the demo's pace, nobody on shift.
    env = demo_env(f"sqlite:///{tmp_path / 'desk.sqlite3'}", DESK_WRAP_UP_SECONDS="10")
    env["DESK_SIMULATE_RATE"] = "auto"
    flask_cli(env, "db", "upgrade")
    flask_cli(env, "users", "demo")
    token = flask_cli(env, "users", "token", "agent").strip()
    server = LiveServer(env)
    try:
        agent = Agent(server, token)
        assert not [c for c in agent.live() if c["agent"] == "agent"]
        agent.http.put(f"{agent.url}/agents/me/presence", json={"presence": "available"},
                       timeout=5).raise_for_status()
        call = wait_for("a simulated call answered by the agent who came on shift", lambda: next(
            (c for c in agent.live() if c["provider"] == "mediaservice"
             and c["agent"] == "agent"), None), timeout=60)
        assert call["answered_by"] == "agent101@desk.demo"
    finally:
        server.stop()
