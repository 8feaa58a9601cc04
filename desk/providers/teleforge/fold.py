"""What a Teleforge notification teaches beyond the call's state, kept in ingest's transaction.

``fold_for`` gives ``desk.services.ingest.ingest`` the hook it calls after applying a
notification's events (never for a duplicate):

* the notification's provider facts (``call_ref``, ``end_reason``, ``end_code``,
  ``call_time``, ``hold_time``, ``recording_url``, ...) are merged into
  ``Call.provider_facts``; a later value replaces an earlier one, nothing is erased;
* a talked call's duration. A CDR's ``call_time`` counts ringing and hold too (Teleforge's
  "Glossary C4D"), so when the desk knows when the call was answered (an inbound call's
  ``call`` item) the duration is the time from then to the CDR's end; otherwise it is
  ``call_time``, and the call counts as answered ``call_time`` seconds before it ended (the
  state machine's usual estimate). It goes through ``desk.domain.state.merge`` like any
  event. A CDR taken before its ``call`` item (they come on different lists) keeps
  ``call_time``: the later answer does not shorten it.
"""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy.orm import Session

from desk.domain.events import Parsed
from desk.domain.state import merge
from desk.live.changes import CALLS, mark_changed
from desk.models import Call
from desk.providers.teleforge.parse import Notification
from desk.services.ingest import Fold, Logged


def fold_for(parsed: Parsed) -> Fold | None:
    """The fold for one parsed notification, or None when it has nothing more to keep."""
    if not isinstance(parsed, Notification) or not (parsed.facts or parsed.call_time):
        return None

    def fold(session: Session, delivery: Logged) -> None:
        call = session.get(Call, delivery.call_id) if delivery.call_id else None
        if call is None:
            return
        if parsed.facts:
            call.provider_facts = {**(call.provider_facts or {}), **parsed.facts}
        ended = parsed.ended
        if parsed.call_time and ended is not None:
            if call.answered_at is not None:
                talked = max(0, int((ended.at - call.answered_at).total_seconds()))
            else:
                talked = parsed.call_time
            merge(call, replace(ended, duration=talked))
        mark_changed(session, CALLS, call.id)

    return fold
