"""The call state machine's one rule: how an event folds into a call. Pure, no database.

``merge`` is the only code that writes a call's state and its event timestamps; the ingest
service (``desk.services.ingest``) calls it for every provider event, and the dial service
feeds it a synthetic "ended" event when Teleforge certainly did not place a call. It is
commutative and monotone, which is what makes ingestion order-tolerant:

* a call's state only moves forward (``STATE_RANK``), so a late "ringing" never revives an
  ended call;
* every timestamp keeps the earliest value seen, every text field the first non-empty one;
* an "ended" with nothing before it still makes a complete row.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol

from desk.domain.events import CallEvent

STATE_FOR_KIND: dict[str, str] = {
    "dialling": "dialling",
    "ringing": "ringing",
    "answered": "talking",
    "ended": "ended",
}
STATE_RANK = {"dialling": 0, "ringing": 1, "talking": 2, "ended": 3}


class CallRow(Protocol):
    """The fields of a call ``merge`` reads and writes (``desk.models.Call`` has them)."""

    state: str
    started_at: datetime
    direction: str
    from_number: str | None
    to_number: str | None
    ringing_at: datetime | None
    answered_at: datetime | None
    answered_by: str | None
    ended_at: datetime | None
    end_cause: str | None
    duration: int | None
    version: int


def _earliest(current: datetime | None, candidate: datetime | None) -> datetime | None:
    if current is None:
        return candidate
    if candidate is None:
        return current
    return min(current, candidate)


def merge(call: CallRow, event: CallEvent) -> None:
    """Fold ``event`` into ``call``. Commutative and monotone: see the module docstring."""
    new_state = STATE_FOR_KIND[event.kind]
    # A new row has no state yet (the model's default applies only on insert).
    if call.state is None or STATE_RANK[new_state] > STATE_RANK[call.state]:
        call.state = new_state

    # Typed as always set (as on a stored Call), but a new row's is still None.
    call.started_at = min(call.started_at, event.at) if call.started_at else event.at
    call.direction = call.direction or event.direction or "inbound"
    call.from_number = call.from_number or event.from_number
    call.to_number = call.to_number or event.to_number

    if event.kind == "ringing":
        call.ringing_at = _earliest(call.ringing_at, event.at)
    elif event.kind == "answered":
        call.answered_at = _earliest(call.answered_at, event.at)
        call.answered_by = call.answered_by or event.answered_by
    elif event.kind == "ended":
        # The earliest end names the cause; on a tie the smaller cause, so order never matters.
        if call.ended_at is None or event.at < call.ended_at or (
            event.at == call.ended_at and (event.end_cause or "") < (call.end_cause or "")
        ):
            call.end_cause = event.end_cause or call.end_cause
        call.ended_at = _earliest(call.ended_at, event.at)
        if event.duration is not None:
            call.duration = max(call.duration or 0, event.duration)
            if event.duration > 0:
                # A talked call answered at the latest `duration` seconds before it ended.
                call.answered_at = _earliest(
                    call.answered_at, event.at - timedelta(seconds=event.duration)
                )
        call.answered_by = call.answered_by or event.answered_by
    call.version = (call.version or 0) + 1
