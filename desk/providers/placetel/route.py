"""Placetel Call Control answer: a routing ``Decision`` → the XML Placetel acts on.

Pure: ``render_route`` builds the document with ElementTree, so peers, numbers and
announcement ids are escaped by the library, never pasted into markup. The vocabulary is
the one in the README of ``Placetel/call-control-notify-api`` ("Your XML response", commit
49abb20): ``Forward`` (Targets with optional ``ringtime``, each holding ``Number`` elements
that are SIP peers such as ``777xxxxx@fpbx.de`` or phone numbers), ``Reject`` (optionally
``reason="busy"``), ``Hangup``, ``Prompt id`` (play and hang up), ``Group id`` (with
``ringtime`` 10 to 60, ``backup_behaviour``, ``backup_routing_object``, the announcement and
music options), ``RoutingPlan id`` (optionally holding a fallback ``Forward``, used when no
routing object of the plan is active) and ``Queue id``. The queue's attribute is ``id``:
it was ``queue_id`` until the README's revision of November 2024 (commit 081350d).
Options the decision leaves None are left out, so Placetel's defaults apply. The webhook
answers with ``Content-Type: application/xml`` (``CONTENT_TYPE``).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from xml.dom import minidom

from desk.domain.routing import Decision

CONTENT_TYPE = "application/xml"


def _flag(value: bool | None) -> str | None:
    return None if value is None else ("true" if value else "false")


def _attributes(options: list[tuple[str, str | None]]) -> dict[str, str]:
    return {name: value for name, value in options if value is not None}


def _forward(response: ET.Element, decision: Decision, *, voicemail: bool | None) -> ET.Element:
    # Attribute order follows Placetel's table, which is also the order in its examples.
    return ET.SubElement(response, "Forward", _attributes([
        ("music_on_hold", _flag(decision.music_on_hold)),
        ("voicemail", _flag(voicemail)),
        ("voicemail_announcement", decision.voicemail_announcement),
        ("voicemail_as_attachment", _flag(decision.voicemail_as_attachment)),
        ("forward_announcement", decision.forward_announcement),
    ]))


def _group(response: ET.Element, decision: Decision) -> None:
    ring_time = decision.group_ring_time
    ET.SubElement(response, "Group", _attributes([  # the order of Placetel's Group table
        ("id", decision.group_id),
        ("ringtime", None if ring_time is None else str(ring_time)),
        ("backup_behaviour", decision.backup_behaviour),
        ("backup_routing_object", decision.backup_routing_object),
        ("voicemail_announcement", decision.voicemail_announcement),
        ("voicemail_as_attachment", _flag(decision.voicemail_as_attachment)),
        ("forward_announcement", decision.forward_announcement),
        ("music_on_hold", _flag(decision.music_on_hold)),
    ]))


def _routing_plan(response: ET.Element, decision: Decision) -> None:
    plan = ET.SubElement(response, "RoutingPlan", {"id": str(decision.routing_plan_id)})
    fallback = decision.fallback
    # Placetel ends the call when no routing object of the plan is active, unless the plan
    # holds a Forward: the desk's own routing (agents, or voicemail) is that Forward.
    if fallback is not None and fallback.action == "ring":
        _targets(_forward(plan, fallback, voicemail=fallback.voicemail), fallback)
    elif fallback is not None and fallback.action == "voicemail":
        _forward(plan, fallback, voicemail=True)


def _targets(forward: ET.Element, decision: Decision) -> None:
    for step in decision.steps:
        numbers = []
        for agent in step.agents:
            if not agent.sip_peer:
                raise ValueError(
                    f"agent {agent.name!r} (id {agent.id}) has no SIP peer; Placetel cannot ring "
                    "them (route with reachable_by='sip_peer')"
                )
            numbers.append(agent.sip_peer)
        numbers.extend(step.numbers)
        if not numbers:
            continue
        attrs = {} if step.ring_time is None else {"ringtime": str(step.ring_time)}
        target = ET.SubElement(forward, "Target", attrs)
        for number in numbers:
            ET.SubElement(target, "Number").text = number


def render_route(decision: Decision) -> bytes:
    """The UTF-8 XML body answering Placetel's Call Control request for ``decision``."""
    response = ET.Element("Response")
    if decision.action == "ring":
        _targets(_forward(response, decision, voicemail=decision.voicemail), decision)
    elif decision.action == "voicemail":
        # Placetel has no voicemail element: a Forward without targets that goes to voicemail.
        _forward(response, decision, voicemail=True)
    elif decision.action == "queue":
        ET.SubElement(response, "Queue", {"id": str(decision.queue_id)})
    elif decision.action == "prompt":
        ET.SubElement(response, "Prompt", {"id": str(decision.prompt_id)})
    elif decision.action == "group":
        _group(response, decision)
    elif decision.action == "routing_plan":
        _routing_plan(response, decision)
    elif decision.action == "busy":
        ET.SubElement(response, "Reject", {"reason": "busy"})
    elif decision.action == "reject":
        ET.SubElement(response, "Reject")
    elif decision.action == "hangup":
        ET.SubElement(response, "Hangup")
    else:  # Decision validates its action; this guards a new action added without a branch.
        raise ValueError(f"no Placetel answer for action {decision.action!r}")
    # ElementTree writes the declaration with single quotes; minidom writes it the way
    # Placetel's documentation shows it, so the round trip keeps the body library-made.
    document = minidom.parseString(ET.tostring(response, encoding="utf-8"))
    return document.toprettyxml(indent="    ", encoding="UTF-8")
