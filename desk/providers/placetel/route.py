"""Placetel Call Control answer: a routing ``Decision`` → the XML Placetel acts on.

Pure: ``render_route`` builds the document with ElementTree, so peers, numbers and
announcement ids are escaped by the library, never pasted into markup. The vocabulary is
the one Placetel documents: ``Forward`` (Targets with optional ``ringtime``, each holding
``Number`` elements that are SIP peers such as ``777xxxxx@fpbx.de`` or phone numbers),
``Queue queue_id``, ``Reject`` (optionally ``reason="busy"``) and ``Hangup``. Forward
options the decision leaves None are left out, so Placetel's defaults apply. The webhook
answers with ``Content-Type: application/xml`` (``CONTENT_TYPE``).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from xml.dom import minidom

from desk.domain.routing import Decision

CONTENT_TYPE = "application/xml"


def _flag(value: bool | None) -> str | None:
    return None if value is None else ("true" if value else "false")


def _forward(response: ET.Element, decision: Decision, *, voicemail: bool | None) -> ET.Element:
    # Attribute order follows Placetel's table, which is also the order in its examples.
    options: list[tuple[str, str | None]] = [
        ("music_on_hold", _flag(decision.music_on_hold)),
        ("voicemail", _flag(voicemail)),
        ("voicemail_announcement", decision.voicemail_announcement),
        ("voicemail_as_attachment", _flag(decision.voicemail_as_attachment)),
        ("forward_announcement", decision.forward_announcement),
    ]
    return ET.SubElement(
        response, "Forward", {name: value for name, value in options if value is not None}
    )


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
        ET.SubElement(response, "Queue", {"queue_id": str(decision.queue_id)})
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
