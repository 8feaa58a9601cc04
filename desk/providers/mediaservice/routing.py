"""The instructions the desk gives the mediaservice when it asks: route a new call, and
what to do with the party left over after a hang-up or a split (transfer).

Database reads plus ``desk.services.routing_store.decide_for_call`` (the same policy
Placetel and Stringee calls go through), so the answer is ready within the provider's waiting
time. The one write: the agent a new call is sent to is kept as its offer
(``routing_store.record_offer``), so that agent's board shows it as ringing for them.

Documented defaults:

* ``newCall`` with nobody to take it: drop with ``temporarilyUnavailable`` (the caller's
  network says "not available"); a blocked caller is dropped with ``busy``. The
  mediaservice answer names one destination, so a decision to ring several agents rings
  the first of them, for that step's ring time.
* Split with no transfer target: the caller goes back through the routing policy, skipping
  the agent who split; with nobody else available the caller is dropped.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.orm import Session

from desk.db import end_reads
from desk.domain.routing import Decision
from desk.models import Call
from desk.providers.mediaservice import parse as ms
from desk.providers.mediaservice.answers import answer_for_call_event, answer_for_new_call

log = logging.getLogger(__name__)


def sip_uri(address: str) -> str:
    """``777ann@fpbx.de`` → ``sip:777ann@fpbx.de``; URIs pass unchanged."""
    return address if address.startswith(("sip:", "sips:")) else f"sip:{address}"


def _first_agent(decision: Decision, skip: int | None = None) -> tuple[str, int, int] | None:
    """The first agent's SIP address, ring time and id in a ring decision."""
    if decision.action != "ring":
        return None
    for step in decision.steps:
        for agent in step.agents:
            if agent.id != skip and agent.sip_peer:
                ring_time = int(step.ring_time or ms.DEFAULT_MAX_RING_TIME)
                return sip_uri(agent.sip_peer), ring_time, agent.id
    return None


def _offer(session: Session, call: Call | None, agent_ids: tuple[int, ...]) -> None:
    """Keep whom the new call rings; the answer stands even if this cannot be written."""
    if call is None:
        return
    from desk.services.routing_store import record_offer

    try:
        end_reads(session)  # SQLite: the write waits for the lock in a fresh transaction
        record_offer(session, call.id, agent_ids)
        session.commit()
    except Exception:
        session.rollback()
        log.exception("mediaservice call %s: could not keep whom it rings", call.id)


def _decide(session: Session, from_number: str | None, to_number: str | None) -> Decision:
    from desk.services.routing_store import decide_for_call

    return decide_for_call(session, from_number, to_number, reachable_by="sip_peer")


def answer_new_call(
    session: Session, parsed: ms.MediaserviceParsed, call: Call | None
) -> dict[str, Any]:
    event = parsed.parsed.events[0] if parsed.parsed.events else None
    decision = _decide(session, event.from_number if event else None,
                       event.to_number if event else None)
    if decision.action in ("reject", "busy"):
        return {"action": "drop", "dropCode": "busy"}
    target = _first_agent(decision)
    if target is None:
        _offer(session, call, ())
        return answer_for_new_call(parsed, None)
    address, ring_time, agent_id = target
    _offer(session, call, (agent_id,))
    return answer_for_new_call(
        parsed, address, max_ring_time=ring_time, record=decision.record,
        recording_file_name=recording_file_name(call) if decision.record and call else None,
    )


def answer_call_event(
    session: Session, parsed: ms.MediaserviceParsed, call: Call | None
) -> dict[str, Any]:
    if parsed.facts.get("event") != "callerConnectionSplit":
        return answer_for_call_event(parsed)
    if call is not None and call.transfer_to:
        return answer_for_call_event(parsed, transfer_to=sip_uri(call.transfer_to))
    decision = _decide(session, call.from_number if call else None,
                       call.to_number if call else None)
    target = _first_agent(decision, skip=call.agent_id if call else None)
    return answer_for_call_event(parsed, transfer_to=target[0] if target else None)


def recording_file_name(call: Call, part: int = 1) -> str:
    """The file name a recording of ``call`` is stored under in the prompt storage; the
    segments after a pause (``part`` 2, 3, ...) get ``-part2``, ... before the extension."""
    stamp = call.started_at.strftime("%Y%m%dT%H%M%SZ")
    suffix = f"-part{part}" if part > 1 else ""
    return f"desk-call-{call.id}-{stamp}{suffix}.mp3"
