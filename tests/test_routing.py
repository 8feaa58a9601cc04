"""desk.domain.routing: the routing policy as a table of calls and the decisions they get."""

from __future__ import annotations

import pytest

from desk.domain.routing import (
    Address,
    Agent,
    Decision,
    NumberTarget,
    RingGroup,
    RingStep,
    Rules,
    decide,
)

ANNA = Agent(1, "anna", "available", sip_peer="777anna@fpbx.de", stringee_user_id="anna")
BEN = Agent(2, "ben", "available", sip_peer="777ben@fpbx.de")
CARA = Agent(3, "cara", "available", stringee_user_id="cara")
DAN = Agent(4, "dan", "available", sip_peer="777dan@fpbx.de", stringee_user_id="dan")
AWAY = Agent(5, "away", "away", sip_peer="777away@fpbx.de", stringee_user_id="away")
WRAP = Agent(6, "wrap", "wrap-up", sip_peer="777wrap@fpbx.de", stringee_user_id="wrap")
OFF = Agent(7, "off", "offline", sip_peer="777off@fpbx.de", stringee_user_id="off")
BUSY = Agent(8, "busy", "available", sip_peer="777busy@fpbx.de", active_calls=1)
TEAM = (DAN, AWAY, ANNA, WRAP, OFF, BUSY, BEN, CARA)  # deliberately not in id order

SALES = "0221 2919 1000"
SUPPORT = "022129192000"


def ring(*steps: tuple[tuple[Agent, ...], int]) -> list[tuple[list[int], int | None]]:
    return [([a.id for a in agents], time) for agents, time in steps]


def shape(decision: Decision) -> list[tuple[list[int], int | None]]:
    return [([a.id for a in step.agents], step.ring_time) for step in decision.steps]


CASES = [
    # (name, from, to, agents, rules, reachable_by, action, steps, extra expectations)
    ("defaults ring every free agent at once for 60 s, in id order",
     "0301234", SALES, TEAM, None, None,
     "ring", ring(((ANNA, BEN, CARA, DAN), 60)), {"voicemail": True, "record": False}),
    ("away, wrap-up, offline and busy agents are skipped",
     "0301234", SALES, (AWAY, WRAP, OFF, BUSY, BEN), Rules(), None,
     "ring", ring(((BEN,), 60)), {}),
    ("nobody available goes to voicemail by default",
     "0301234", SALES, (AWAY, WRAP, OFF, BUSY), None, None,
     "voicemail", [], {"voicemail": True}),
    ("no agents at all goes to voicemail",
     "0301234", SALES, (), None, None, "voicemail", [], {}),
    ("nobody available goes to the queue when the rules say so",
     "0301234", SALES, (AWAY,), Rules(when_nobody="queue", queue_id="123"), None,
     "queue", [], {"queue_id": "123"}),
    ("nobody available gets a busy signal when the rules say so",
     "0301234", SALES, (OFF,), Rules(when_nobody="busy"), None, "busy", [], {}),
    ("nobody available is hung up on when the rules say so",
     "0301234", SALES, (), Rules(when_nobody="hangup"), None, "hangup", [], {}),
    ("a blocked caller is rejected even with agents free",
     "030 123-4", SALES, TEAM, Rules(blocked_callers={"0301234"}), None, "reject", [], {}),
    ("a blocked caller written 00.. matches +..",
     "+49301234", SALES, TEAM, Rules(blocked_callers={"0049 30 1234"}), None,
     "reject", [], {}),
    ("anonymous callers can be blocked, and get busy if configured",
     "anonymous", SALES, TEAM,
     Rules(blocked_callers={"Anonymous"}, blocked_action="busy"), None, "busy", [], {}),
    ("a caller not on the list rings as usual",
     "0309999", SALES, (BEN,), Rules(blocked_callers={"0301234"}), None,
     "ring", ring(((BEN,), 60)), {}),
    ("a number's agents ring in the listed order with the rules' ring time",
     "0301234", SALES, TEAM,
     Rules(targets={"022129191000": NumberTarget(agent_ids=(DAN.id, BUSY.id, BEN.id))},
           ring_time=25), None,
     "ring", ring(((DAN, BEN), 25)), {}),
    ("a number's agents all unavailable falls back, others are not rung",
     "0301234", SALES, TEAM,
     Rules(targets={SALES: NumberTarget(agent_ids=(AWAY.id, OFF.id))}), None,
     "voicemail", [], {}),
    ("a number routed to a queue goes there whoever is free",
     "0301234", SUPPORT, TEAM,
     Rules(targets={SUPPORT: NumberTarget(queue_id="77")}, record=True), None,
     "queue", [], {"queue_id": "77", "record": True}),
    ("other numbers ignore another number's target",
     "0301234", SUPPORT, (BEN, CARA), Rules(targets={SALES: NumberTarget(agent_ids=(1,))}),
     None, "ring", ring(((BEN, CARA), 60)), {}),
    ("ring groups ring one after another with their own ring times",
     "0301234", SALES, TEAM,
     Rules(ring_groups=(RingGroup((ANNA.id, BEN.id), 30), RingGroup((CARA.id, DAN.id), 45))),
     None, "ring", ring(((ANNA, BEN), 30), ((CARA, DAN), 45)), {}),
    ("an empty ring group is dropped, unknown agent ids are ignored",
     "0301234", SALES, TEAM,
     Rules(ring_groups=(RingGroup((AWAY.id, 99), 20), RingGroup((BEN.id,), 40))),
     None, "ring", ring(((BEN,), 40)), {}),
    ("a number's ring groups",
     "0301234", SALES, TEAM,
     Rules(targets={SALES: NumberTarget(ring_groups=(RingGroup((DAN.id,), 15),
                                                     RingGroup((ANNA.id, WRAP.id), 20)))}),
     None, "ring", ring(((DAN,), 15), ((ANNA,), 20)), {}),
    ("Placetel only rings agents with a SIP peer",
     "0301234", SALES, TEAM, None, "sip_peer",
     "ring", ring(((ANNA, BEN, DAN), 60)), {}),
    ("Stringee only rings agents with a Stringee user id",
     "0301234", SALES, TEAM, None, "stringee_user_id",
     "ring", ring(((ANNA, CARA, DAN), 60)), {}),
    ("nobody reachable falls back like nobody available",
     "0301234", SALES, (BEN,), None, "stringee_user_id", "voicemail", [], {}),
    ("record and Placetel options are carried into a ring decision",
     "0301234", SALES, (BEN,),
     Rules(record=True, music_on_hold=True, forward_announcement="7684",
           voicemail_announcement="4"), None,
     "ring", ring(((BEN,), 60)),
     {"record": True, "music_on_hold": True, "forward_announcement": "7684",
      "voicemail_announcement": "4", "voicemail": True}),
    ("with a queue fallback, an unanswered forward does not go to voicemail",
     "0301234", SALES, (BEN,), Rules(when_nobody="queue", queue_id="5",
                                     voicemail_announcement="4"), None,
     "ring", ring(((BEN,), 60)), {"voicemail": False, "voicemail_announcement": None}),
    ("the voicemail fallback carries the announcement",
     "0301234", SALES, (), Rules(voicemail_announcement="4"), None,
     "voicemail", [], {"voicemail_announcement": "4"}),
]


@pytest.mark.parametrize(
    ("from_number", "to_number", "agents", "rules", "reachable_by", "action", "steps", "extra"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_policy(
    from_number: str, to_number: str, agents: tuple[Agent, ...], rules: Rules | None,
    reachable_by: Address | None, action: str, steps: list, extra: dict,
) -> None:
    decision = decide(from_number, to_number, agents, rules, reachable_by=reachable_by)
    assert decision.action == action
    assert shape(decision) == steps
    for name, value in extra.items():
        assert getattr(decision, name) == value, name
    assert decision.reason  # every decision says why


def test_same_inputs_same_decision_whatever_the_agent_order() -> None:
    rules = Rules(ring_time=20)
    first = decide("1", "2", TEAM, rules)
    assert first == decide("1", "2", tuple(reversed(TEAM)), rules)
    assert first == decide("1", "2", TEAM, rules)


def test_agents_in_steps_are_the_agents_given() -> None:
    decision = decide("1", "2", (BEN,))
    assert decision.steps == (RingStep((BEN,), 60),)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Rules(when_nobody="queue"), "needs queue_id"),
        (lambda: Rules(when_nobody="music"), "when_nobody must be one of"),  # type: ignore[arg-type]
        (lambda: Rules(blocked_action="drop"), "blocked_action must be one of"),  # type: ignore[arg-type]
        (lambda: Rules(ring_time=0), "ring_time"),
        (lambda: RingGroup((1,), -5), "ring_time"),
        (lambda: NumberTarget(), "exactly one"),
        (lambda: NumberTarget(agent_ids=(1,), queue_id="2"), "exactly one"),
        (lambda: Decision("ring"), "at least one"),
        (lambda: Decision("queue"), "queue_id"),
        (lambda: Decision("transfer"), "action must be one of"),  # type: ignore[arg-type]
    ],
)
def test_invalid_settings_are_refused(build, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=message):
        build()


# --- Placetel's prompts, groups and routing plans, and what other providers do instead ----


def test_a_prompt_target_plays_it_and_elsewhere_hangs_up() -> None:
    rules = Rules(targets={SALES: NumberTarget(prompt_id="123")})
    decision = decide("0301234", SALES, TEAM, rules)
    assert (decision.action, decision.prompt_id, decision.placetel_only) == ("prompt", "123", True)
    assert "Placetel prompt 123" in decision.reason
    other = decision.portable()
    assert other.action == "hangup" and "only Placetel can play" in other.reason


def test_a_group_target_carries_placetels_options_and_falls_back_to_the_usual_ringing() -> None:
    target = NumberTarget(group_id="12", group_ring_time=30, backup_behaviour="routing_object",
                          backup_routing_object="77")
    rules = Rules(targets={SALES: target}, music_on_hold=True, forward_announcement="7684",
                  voicemail_announcement="4", ring_time=25)
    decision = decide("0301234", SALES, TEAM, rules, reachable_by="stringee_user_id")
    assert (decision.action, decision.group_id, decision.group_ring_time) == ("group", "12", 30)
    assert (decision.backup_behaviour, decision.backup_routing_object) == ("routing_object", "77")
    assert (decision.music_on_hold, decision.forward_announcement,
            decision.voicemail_announcement) == (True, "7684", "4")
    other = decision.portable()
    assert other.action == "ring"
    assert shape(other) == ring(((ANNA, CARA, DAN), 25))  # as without the target
    assert "Placetel group 12, which only Placetel can reach; instead ringing" in other.reason


def test_a_routing_plan_with_nobody_free_falls_back_to_what_the_rules_say() -> None:
    rules = Rules(targets={SUPPORT: NumberTarget(routing_plan_id="3")}, when_nobody="busy")
    decision = decide("0301234", SUPPORT, (AWAY, OFF), rules)
    assert (decision.action, decision.routing_plan_id) == ("routing_plan", "3")
    assert decision.fallback is not None and decision.portable().action == "busy"


def test_a_blocked_caller_is_refused_before_any_placetel_target() -> None:
    rules = Rules(targets={SALES: NumberTarget(group_id="12")}, blocked_callers={"0301234"})
    assert decide("0301234", SALES, TEAM, rules).action == "reject"


def test_portable_leaves_decisions_every_provider_can_do_alone() -> None:
    decision = decide("1", "2", (BEN,))
    assert decision.portable() is decision
    assert Decision("prompt", prompt_id="1").portable().action == "hangup"


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: NumberTarget(queue_id="1", group_id="2"), "exactly one"),
        (lambda: NumberTarget(prompt_id="1", group_ring_time=30), "for a group_id only"),
        (lambda: NumberTarget(group_id="1", group_ring_time=5), "10 to 60 seconds"),
        (lambda: Decision("group", group_id="1",
                          fallback=Decision("prompt", prompt_id="2")), "every provider"),
    ],
)
def test_invalid_placetel_targets_are_refused(build, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=message):
        build()
