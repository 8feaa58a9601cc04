"""desk.providers.placetel.route: every example of Placetel's "Your XML response", rebuilt.

The expected documents are the examples of the README of ``Placetel/call-control-notify-api``
(commit 49abb20, section "Your XML response", copied as they are, including the Queue's
``id`` attribute of the current revision and the RoutingPlan examples without declaration).
Both sides are parsed with ElementTree and compared element for element, attribute for
attribute.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from desk.domain.routing import Agent, Decision, RingStep, Rules, decide
from desk.providers.placetel.route import CONTENT_TYPE, render_route

PEER_1 = "777aaaaa@fpbx.de"
PEER_2 = "777bbbbb@fpbx.de"
PEER_3 = "777ccccc@fpbx.de"
DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>'


def agent(peer: str, agent_id: int = 1) -> Agent:
    return Agent(agent_id, f"agent{agent_id}", "available", sip_peer=peer)


EXAMPLES = {
    "Example 1: forward to one external number": (
        Decision("ring", steps=(RingStep(numbers=("022129191999",), ring_time=None),)),
        """<?xml version="1.0" encoding="UTF-8"?>
<Response>
    <Forward>
        <Target>
            <Number>022129191999</Number>
        </Target>
    </Forward>
</Response>""",
    ),
    "Example 2: forward to one VoIP destination": (
        Decision("ring", steps=(RingStep((agent(PEER_1),), ring_time=None),)),
        f"""<?xml version="1.0" encoding="UTF-8"?>
<Response>
    <Forward>
        <Target>
            <Number>{PEER_1}</Number>
        </Target>
    </Forward>
</Response>""",
    ),
    "Example 3a: multiple destinations ringing the same time": (
        Decision(
            "ring",
            steps=(RingStep((agent(PEER_1),), ring_time=None, numbers=("022129191999",)),),
        ),
        f"""<?xml version="1.0" encoding="UTF-8"?>
<Response>
    <Forward>
        <Target>
            <Number>{PEER_1}</Number>
            <Number>022129191999</Number>
        </Target>
    </Forward>
</Response>""",
    ),
    "Example 3b: 30 s on the first two, 45 s on the next three": (
        Decision(
            "ring",
            steps=(
                RingStep((agent(PEER_1),), 30, numbers=("022129191999",)),
                RingStep((agent(PEER_2, 2), agent(PEER_3, 3)), 45, numbers=("022199998560",)),
            ),
        ),
        f"""<?xml version="1.0" encoding="UTF-8"?>
<Response>
    <Forward>
        <Target ringtime="30">
            <Number>{PEER_1}</Number>
            <Number>022129191999</Number>
        </Target>
        <Target ringtime="45">
            <Number>{PEER_2}</Number>
            <Number>{PEER_3}</Number>
            <Number>022199998560</Number>
        </Target>
    </Forward>
</Response>""",
    ),
    "Example 4: music on hold and announcement before forwarding": (
        Decision(
            "ring",
            steps=(RingStep((agent(PEER_1),), ring_time=None),),
            music_on_hold=True,
            forward_announcement="7684",
        ),
        f"""<?xml version="1.0" encoding="UTF-8"?>
<Response>
    <Forward music_on_hold="true" forward_announcement="7684">
        <Target>
            <Number>{PEER_1}</Number>
        </Target>
    </Forward>
</Response>""",
    ),
    "Example 5: voicemail with a custom announcement": (
        Decision("voicemail", voicemail_announcement="4"),
        """<?xml version="1.0" encoding="UTF-8"?>
<Response>
    <Forward voicemail="true" voicemail_announcement="4"/>
</Response>""",
    ),
    "Reject example 1: reject call": (
        Decision("reject"),
        """<?xml version="1.0" encoding="UTF-8"?>
<Response>
    <Reject />
</Response>""",
    ),
    "Reject example 2: pretend to be busy": (
        Decision("busy"),
        """<?xml version="1.0" encoding="UTF-8"?>
<Response>
    <Reject reason="busy" />
</Response>""",
    ),
    "Hangup example": (
        Decision("hangup"),
        """<?xml version="1.0" encoding="UTF-8"?>
<Response>
    <Hangup />
</Response>""",
    ),
    "Queue example": (
        Decision("queue", queue_id="123"),
        """<?xml version="1.0" encoding="UTF-8"?>
<Response>
    <Queue id="123" />
</Response>""",
    ),
    "Prompt example: play prompt by ID and hang up": (
        Decision("prompt", prompt_id="123"),
        """<?xml version="1.0" encoding="UTF-8"?>
<Response>
    <Prompt id="123" />
</Response>""",
    ),
    "Group example: send to group": (
        Decision("group", group_id="123"),
        """<?xml version="1.0" encoding="UTF-8"?>
<Response>
    <Group id="123" />
</Response>""",
    ),
    "RoutingPlan example 1: send to routing plan": (
        Decision("routing_plan", routing_plan_id="123"),
        """<Response>
  <RoutingPlan id="123" />
</Response>""",
    ),
    "RoutingPlan example 2: send to routing plan with fallback": (
        Decision(
            "routing_plan", routing_plan_id="123",
            fallback=Decision(
                "ring", steps=(RingStep((agent("7777abcdefg@fpbx.de"),), ring_time=None,
                                        numbers=("022129191999",)),),
            ),
        ),
        """<Response>
  <RoutingPlan id="123">
    <Forward>
        <Target>
            <Number>7777abcdefg@fpbx.de</Number>
            <Number>022129191999</Number>
        </Target>
    </Forward>
  </RoutingPlan>
</Response>""",
    ),
}


def tree(element: ET.Element) -> tuple:
    """An element as comparable data: tag, attributes, text, children, recursively."""
    return (
        element.tag,
        dict(element.attrib),
        (element.text or "").strip(),
        [tree(child) for child in element],
    )


@pytest.mark.parametrize(("decision", "expected"), EXAMPLES.values(), ids=EXAMPLES.keys())
def test_documented_examples(decision: Decision, expected: str) -> None:
    body = render_route(decision)
    assert body.startswith(DECLARATION)
    assert tree(ET.fromstring(body)) == tree(ET.fromstring(expected.encode()))


def test_attribute_order_follows_the_documentation() -> None:
    body = render_route(EXAMPLES["Example 4: music on hold and announcement before forwarding"][0])
    assert b'<Forward music_on_hold="true" forward_announcement="7684">' in body


def test_all_forward_options_and_ring_times() -> None:
    decision = Decision(
        "ring",
        steps=(RingStep((agent(PEER_1),), 60),),
        voicemail=False,
        voicemail_announcement="12",
        voicemail_as_attachment=True,
        music_on_hold=False,
        forward_announcement="99",
    )
    forward = ET.fromstring(render_route(decision)).find("Forward")
    assert forward is not None
    assert forward.attrib == {
        "music_on_hold": "false",
        "voicemail": "false",
        "voicemail_announcement": "12",
        "voicemail_as_attachment": "true",
        "forward_announcement": "99",
    }
    assert [t.attrib for t in forward] == [{"ringtime": "60"}]


def test_policy_decision_renders_ring_groups_with_peers() -> None:
    rules = Rules(record=True)
    agents = (agent(PEER_2, 2), agent(PEER_1, 1), Agent(3, "no-peer", "available"))
    body = render_route(decide("0301234", "0221", agents, rules, reachable_by="sip_peer"))
    assert tree(ET.fromstring(body)) == (
        "Response", {}, "", [
            ("Forward", {"voicemail": "true"}, "", [
                ("Target", {"ringtime": "60"}, "", [
                    ("Number", {}, PEER_1, []),
                    ("Number", {}, PEER_2, []),
                ]),
            ]),
        ],
    )


def test_values_are_escaped_by_the_library() -> None:
    odd = 'a&b<c>"d@fpbx.de'
    body = render_route(Decision("ring", steps=(RingStep(numbers=(odd,)),)))
    number = ET.fromstring(body).find("Forward/Target/Number")
    assert number is not None and number.text == odd


def test_an_agent_without_sip_peer_cannot_be_rung() -> None:
    decision = Decision("ring", steps=(RingStep((Agent(9, "cara", "available"),)),))
    with pytest.raises(ValueError, match="no SIP peer"):
        render_route(decision)


def test_content_type() -> None:
    assert CONTENT_TYPE == "application/xml"


def test_group_options_in_the_order_of_placetels_table() -> None:
    decision = Decision(
        "group", group_id="123", group_ring_time=30, backup_behaviour="routing_object",
        backup_routing_object="77", voicemail_announcement="4", voicemail_as_attachment=True,
        forward_announcement="7684", music_on_hold=True,
    )
    body = render_route(decision)
    assert (b'<Group id="123" ringtime="30" backup_behaviour="routing_object" '
            b'backup_routing_object="77" voicemail_announcement="4" '
            b'voicemail_as_attachment="true" forward_announcement="7684" '
            b'music_on_hold="true"/>') in body


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"group_ring_time": 9}, "group ring time must be 10 to 60 seconds"),
        ({"group_ring_time": 61}, "group ring time must be 10 to 60 seconds"),
        ({"backup_behaviour": "routing_object"}, "needs backup_routing_object"),
        ({"backup_behaviour": "voicemail"}, "backup_behaviour must be mailbox or routing_object"),
    ],
)
def test_group_options_outside_placetels_rules_are_refused(
    options: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Decision("group", group_id="1", **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("action", ["prompt", "group", "routing_plan"])
def test_placetel_targets_need_their_id(action: str) -> None:
    with pytest.raises(ValueError, match=f"needs {action}_id"):
        Decision(action)  # type: ignore[arg-type]


def test_a_routing_plan_falls_back_to_voicemail_when_the_desk_would() -> None:
    decision = Decision("routing_plan", routing_plan_id="9",
                        fallback=Decision("voicemail", voicemail_announcement="4"))
    assert tree(ET.fromstring(render_route(decision))) == (
        "Response", {}, "", [
            ("RoutingPlan", {"id": "9"}, "", [
                ("Forward", {"voicemail": "true", "voicemail_announcement": "4"}, "", []),
            ]),
        ],
    )
    # A fallback Placetel cannot put inside a RoutingPlan (busy, hang up) is left out.
    hangup = Decision("routing_plan", routing_plan_id="9", fallback=Decision("hangup"))
    assert tree(ET.fromstring(render_route(hangup)))[3] == [("RoutingPlan", {"id": "9"}, "", [])]
