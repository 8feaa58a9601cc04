"""What happens when someone presses Hang up, Split or Record on a call.

One function per action, shared by the board's buttons and the JSON API. Each one:

1. checks the person may act on the call (agents: their own calls; supervisors: any) and
   that the call is in a state where the action makes sense — ``ActionRefused`` otherwise;
2. claims the call's ``pending_action`` with a conditional UPDATE and commits, so every
   board shows "pending" at once and a double click (or two tabs) sends one request;
3. asks the provider (``requests`` with a timeout, in the provider's client);
4. writes the audit entry with the provider's answer and either keeps "pending" (the
   provider's own callback confirms and clears it) or, when the provider refused, timed out
   or was unreachable, clears it and leaves ``action_error`` on the row — nothing else on
   the board changes.

Only providers with a call-control API offer buttons (``CAPABILITIES``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from flask import current_app
from sqlalchemy import update

from desk.db import end_reads
from desk.extensions import db
from desk.live.changes import mark_changed
from desk.models import Call, User, utcnow
from desk.providers.mediaservice.client import MediaserviceClient, ProviderError
from desk.providers.mediaservice.routing import recording_file_name
from desk.services import audit

CAPABILITIES: dict[str, frozenset[str]] = {
    "mediaservice": frozenset({"hangup", "drop", "split", "record"}),
}
PARTIES = ("caller", "agent")
_TARGET = re.compile(r"^(sips?:)?[A-Za-z0-9+._~*#-]{1,64}(@[A-Za-z0-9.-]{1,190})?$")


class ActionRefused(Exception):
    """The action cannot be done; ``status`` is the HTTP status, the message says why."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.message, self.status = message, status


@dataclass(frozen=True)
class Outcome:
    """The provider's verdict: ``status`` is 200, or 502 (refused/unreadable) / 504 (timeout)."""

    call: Call
    ok: bool
    message: str
    status: int = 200


def available(call: Call, may_act: bool) -> frozenset[str]:
    """The buttons a call shows to someone who ``may_act`` on it (its agent, supervisors).

    The provider must offer the action, and the call must be connected: the mediaservice
    acts on a call through the replyId its callAnswered callback carried.
    """
    offered = CAPABILITIES.get(call.provider, frozenset())
    if not may_act or not offered or call.state != "talking":
        return frozenset()
    if not (call.provider_facts or {}).get("reply_id"):
        return frozenset()
    return offered


def can_act(user: User, call: Call, action: str) -> bool:
    return action in available(call, user.is_supervisor or call.agent_id == user.id)


@cache
def _private_key(path: str) -> str:
    return Path(path).read_text()


def mediaservice_client(call: Call | None = None) -> MediaserviceClient:
    config = current_app.config
    if not config["DESK_MEDIASERVICE_URL"] or not config["DESK_MEDIASERVICE_KEY_FILE"]:
        raise ActionRefused(
            "The mediaservice is not configured (DESK_MEDIASERVICE_URL and "
            "DESK_MEDIASERVICE_KEY_FILE).", status=503,
        )
    base = (call.provider_facts or {}).get("site_base_url") if call else None
    return MediaserviceClient(
        base or config["DESK_MEDIASERVICE_URL"], config["DESK_MEDIASERVICE_DOMAIN"],
        _private_key(config["DESK_MEDIASERVICE_KEY_FILE"]),
        timeout=config["DESK_PROVIDER_TIMEOUT"],
    )


def _load(user: User, call_id: int) -> Call:
    call = db.session.get(Call, call_id)
    if call is None:
        raise ActionRefused(f"There is no call {call_id}.", status=404)
    if not (user.is_supervisor or call.agent_id == user.id):
        raise ActionRefused("Agents can act on their own calls only.", status=403)
    return call


def _claim(call: Call, action: str, **values: Any) -> None:
    """Mark ``action`` pending unless something else is; commit so boards show it."""
    end_reads(db.session)
    claimed = db.session.execute(
        update(Call)
        .where(Call.id == call.id, Call.pending_action.is_(None))
        .values(pending_action=action, pending_since=utcnow(), action_error=None, **values)
    ).rowcount
    if not claimed:
        db.session.rollback()
        db.session.refresh(call)
        raise ActionRefused(
            f"{(call.pending_action or 'another action').capitalize()} is already in progress "
            "on this call; wait for it to finish.",
        )
    mark_changed(db.session, "calls", call.id)
    db.session.commit()
    db.session.refresh(call)
    end_reads(db.session)  # no transaction stays open while the provider is asked


def _finish(user: User, call: Call, action: str, detail: Any, do: Any,
            confirmed: dict[str, Any], failed: dict[str, Any]) -> Outcome:
    """Ask the provider; record the answer; leave the row pending, confirmed or failed."""
    status = 200
    try:
        answer = do()
    except ProviderError as exc:
        values = {"pending_action": None, "action_error": str(exc), **failed}
        outcome, message, ok = ("refused" if exc.kind == "refused" else "error"), str(exc), False
        provider_answer: Any = exc.answer if exc.answer is not None else exc.kind
        status = 504 if exc.kind == "timeout" else 502
    else:
        values = confirmed
        outcome, message, ok, provider_answer = "ok", "", True, answer
    if values:
        db.session.execute(update(Call).where(Call.id == call.id).values(**values))
    audit.record(db.session, user_id=user.id, action=action, outcome=outcome, call_id=call.id,
                 detail=detail, provider_answer=provider_answer)
    mark_changed(db.session, "calls", call.id)
    db.session.commit()
    db.session.refresh(call)
    return Outcome(call, ok, message, status)


def _refuse(user: User, call: Call, action: str, message: str, status: int = 409) -> None:
    end_reads(db.session)
    audit.record(db.session, user_id=user.id, action=action, outcome="invalid", call_id=call.id,
                 detail=message)
    db.session.commit()
    raise ActionRefused(message, status)


def _reply_id(user: User, call: Call, action: str) -> str:
    reply_id = (call.provider_facts or {}).get("reply_id")
    if not reply_id:
        _refuse(user, call, action, "The provider has not connected this call yet "
                                    "(no replyId); try again once it is answered.")
    return reply_id


def hangup(user: User, call_id: int) -> Outcome:
    call = _load(user, call_id)
    if not can_act(user, call, "hangup"):
        _refuse(user, call, "hangup", f"This {call.state} call cannot be hung up from the desk.")
    reply_id = _reply_id(user, call, "hangup")
    client = mediaservice_client(call)
    _claim(call, "hangup")
    return _finish(user, call, "hangup", {"replyId": "…"}, lambda: client.hangupcall(reply_id),
                   confirmed={}, failed={})


def drop_party(user: User, call_id: int, party: str | None) -> Outcome:
    """Hang up one side only (``hangupparticipant``): the caller, or the agent's leg."""
    call = _load(user, call_id)
    if party not in PARTIES:
        _refuse(user, call, "drop", "Say which party to drop: caller or agent.", status=400)
    if not can_act(user, call, "drop"):
        _refuse(user, call, "drop", f"A party can be dropped from a call in conversation "
                                    f"only, not from a {call.state} one.")
    participant = call.caller_participant_id if party == "caller" else call.callee_participant_id
    session_id = (call.provider_facts or {}).get("session_id") or call.provider_call_id
    if not participant:
        _refuse(user, call, "drop", f"The provider has not named the {party}'s leg of this "
                                    "call; hang up the whole call instead.")
    reply_id = _reply_id(user, call, "drop")
    client = mediaservice_client(call)
    _claim(call, "drop")
    return _finish(user, call, "drop", {"party": party, "participantId": participant},
                   lambda: client.hangupparticipant(participant, reply_id, session_id),
                   confirmed={}, failed={})


def split(user: User, call_id: int, target: str | None) -> Outcome:
    call = _load(user, call_id)
    target = (target or "").strip() or None
    if target is not None and not _TARGET.match(target):
        _refuse(user, call, "split", "The transfer target must be a number, an extension or "
                                     "a SIP address like sip:101@example.com.", status=400)
    if not can_act(user, call, "split"):
        _refuse(user, call, "split", f"Only a call in conversation can be split, not a "
                                     f"{call.state} one.")
    reply_id = _reply_id(user, call, "split")
    connection_id = (call.provider_facts or {}).get("connection_id")
    client = mediaservice_client(call)
    _claim(call, "split", transfer_to=target)
    return _finish(user, call, "split", {"transfer_to": target},
                   lambda: client.splitconnection(reply_id, connection_id),
                   confirmed={}, failed={"transfer_to": None})


def start_recording(user: User, call_id: int) -> Outcome:
    call = _load(user, call_id)
    if not can_act(user, call, "record"):
        _refuse(user, call, "record", f"Only a call in conversation can be recorded, not a "
                                      f"{call.state} one.")
    if call.recording_state in ("pending", "on", "stopping"):
        _refuse(user, call, "record", "This call is being recorded already.")
    reply_id = _reply_id(user, call, "record")
    connection_id = (call.provider_facts or {}).get("connection_id")
    name = recording_file_name(call)
    client = mediaservice_client(call)
    _claim(call, "record", recording_state="pending", recording_file_name=name,
           recording_error=None)
    return _finish(user, call, "record", {"recordingFileName": name},
                   lambda: client.startrecording(name, reply_id, connection_id),
                   confirmed={"pending_action": None, "recording_state": "on"},
                   failed={"recording_state": "off"})


def stop_recording(user: User, call_id: int) -> Outcome:
    call = _load(user, call_id)
    if call.recording_state != "on":
        _refuse(user, call, "stop-record", "This call is not being recorded.")
    reply_id = _reply_id(user, call, "stop-record")
    connection_id = (call.provider_facts or {}).get("connection_id")
    client = mediaservice_client(call)
    _claim(call, "stop-record", recording_state="stopping")
    return _finish(user, call, "stop-record", {"recordingFileName": call.recording_file_name},
                   lambda: client.stoprecording(reply_id, connection_id),
                   confirmed={"pending_action": None},
                   failed={"recording_state": "on"})


def recording_url(user: User, call_id: int) -> str:
    """A fresh playback URL (it lives 15 minutes at the provider; never stored)."""
    call = _load(user, call_id)
    if call.recording_state != "ready" or not call.recording_file_name:
        raise ActionRefused("This call has no recording ready to play.", status=404)
    try:
        return mediaservice_client(call).promptfile_url(call.recording_file_name)
    except ProviderError as exc:
        raise ActionRefused(f"The recording cannot be fetched: {exc}", status=502) from exc
