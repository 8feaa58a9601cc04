"""What happens when someone presses Hang up, Split or Record on a call, whoever the provider.

One function per action, shared by the board's buttons and the JSON API. Each one:

1. checks the person may act on the call (agents: their own calls; supervisors: any) and
   that the call is in a state where the action makes sense — ``ActionRefused`` otherwise;
2. has the call's provider prepare the request (its actions module, below), which may
   refuse because the provider cannot act on this call yet (``NotPossible``, audited);
3. claims the call's ``pending_action`` with a conditional UPDATE and commits, so every
   board shows "pending" at once and a double click (or two tabs) sends one request.
   Hang up is never blocked by another pending action: it supersedes a pending split,
   drop or recording (only a second hang up is refused);
4. sends the request (with a timeout, in the provider's client);
5. writes the audit entry with the provider's answer and either keeps "pending" (the
   provider's own callback confirms and clears it) or, when the provider refused, timed out
   or was unreachable (``ProviderFailure``), clears it and leaves ``action_error`` on the
   row — nothing else on the board changes. An action the provider never confirms is
   cleared by ``desk.services.sweeper`` after ``DESK_PENDING_TIMEOUT``.

**Pause** and **Resume** recording (capability ``pause``) stop the recording and start it again
under the next file name: the call's recording is the ordered list of those segments
(``desk.services.recording``), each pause and resume audited with who pressed it.

``close`` is the supervisor's **Close call**: for a call whose provider will not say it
ended, the desk ends it itself (``desk.services.sweeper.close``); no provider is asked.

Which buttons a provider offers comes from the registry (``desk.providers.capabilities``).
The provider's actions module (``Provider.actions``) implements them, reading its settings
from the mapping passed in, never from the app:

* ``controllable(call) -> bool``: the provider can act on this call now;
* ``hangup(call, config)``, ``drop(call, party, config)``, ``split(call, target, config)``,
  ``start_recording(call, config, part=1)`` (``part``: the segment's position),
  ``stop_recording(call, config)``: a ``Request`` (a pause is a stop, a resume a start);
* ``recording_url(call, config, file_name=None) -> str``: a playback URL (of one segment's
  file when ``file_name`` is given).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, NoReturn, cast

from flask_babel import LazyString, force_locale, gettext, lazy_gettext
from sqlalchemy import CursorResult, or_, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from desk import providers
from desk.db import end_reads
from desk.live.changes import CALLS, mark_changed
from desk.models import Call, User, utcnow
from desk.services import audit, recording, sweeper

PARTIES = ("caller", "agent")
PENDING = ("hangup", "drop", "split", "record", "stop-record", "pause-record", "resume-record")
_TARGET = re.compile(r"^(sips?:)?[A-Za-z0-9+._~*#-]{1,64}(@[A-Za-z0-9.-]{1,190})?$")

ACTION_NAMES: dict[str, LazyString] = {
    "hangup": lazy_gettext("Hang up"),
    "drop": lazy_gettext("Drop a party"),
    "split": lazy_gettext("Split"),
    "record": lazy_gettext("Record"),
    "stop-record": lazy_gettext("Stop recording"),
    "pause-record": lazy_gettext("Pause recording"),
    "resume-record": lazy_gettext("Resume recording"),
    "close": lazy_gettext("Close call"),
    "dial": lazy_gettext("Dial"),
    "wrap-up": lazy_gettext("Save wrap-up"),
    "listen-start": lazy_gettext("Listen in"),
    "listen-stop": lazy_gettext("Stop listening"),
}
"""The name a person reads for an action (audited as its code): its button's words."""

PENDING_NAMES: dict[str, LazyString] = {
    "hangup": lazy_gettext("Hanging up…"),
    "drop": lazy_gettext("Dropping a party…"),
    "split": lazy_gettext("Transferring…"),
    "record": lazy_gettext("Starting recording…"),
    "stop-record": lazy_gettext("Stopping recording…"),
    "pause-record": lazy_gettext("Pausing recording…"),
    "resume-record": lazy_gettext("Resuming recording…"),
}
"""What a row says while its action waits for the provider (``Call.pending_action``)."""

OUTCOME_NAMES: dict[str, LazyString] = {
    "ok": lazy_gettext("done"),
    "refused": lazy_gettext("refused by the provider"),
    "error": lazy_gettext("failed"),
    "invalid": lazy_gettext("refused by the desk"),
}
"""How a press came out (``AuditEntry.outcome``), as a call's timeline says it."""


def action_name(action: str | None) -> str:
    """The words for ``action`` in the reader's language; an unknown code as stored."""
    name = ACTION_NAMES.get(action or "")
    return str(name) if name is not None else (action or "")


def pending_name(action: str | None) -> str:
    name = PENDING_NAMES.get(action or "")
    return str(name) if name is not None else gettext("Working…")


def outcome_name(outcome: str | None) -> str:
    name = OUTCOME_NAMES.get(outcome or "")
    return str(name) if name is not None else (outcome or "")


def _state_label(state: str) -> str:
    from desk.web.labels import label  # imported when used: desk.web imports this module

    return label("state", state)


def _state(call: Call) -> LazyString:
    """The call's state as a refusal names it, in the language the refusal is read in."""
    return LazyString(_state_label, call.state)


class ActionRefused(Exception):
    """The action cannot be done; ``status`` is the HTTP status, the message says why."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.message, self.status = message, status


class NotPossible(ActionRefused):
    """Raised by a provider's actions module before asking: it cannot act on this call yet.

    Unlike a plain ``ActionRefused`` (the desk is not configured for the provider), this
    one is written to the audit log as an invalid attempt.
    """


class ProviderFailure(Exception):
    """The provider refused, failed or did not answer; ``str()`` is a sentence for agents.

    ``kind``: ``refused`` (the provider said no), ``timeout`` (no answer in time: the
    action may still happen), ``unreachable`` (no connection), ``error`` (a failure or an
    answer the desk cannot read). ``answer`` is what the provider said, for the audit log.
    """

    def __init__(self, message: str, kind: str = "refused", answer: Any = None) -> None:
        super().__init__(message)
        self.message, self.kind, self.answer = message, kind, answer

    @property
    def status(self) -> int:
        return 504 if self.kind == "timeout" else 502


@dataclass(frozen=True)
class Request:
    """An action a provider has prepared: ``send()`` asks it and returns its answer (or
    raises ``ProviderFailure``); ``detail`` joins the audit entry; ``values`` are columns
    set on the call with the claim (such as the recording's file name)."""

    send: Callable[[], Any]
    detail: Mapping[str, Any] = field(default_factory=dict)
    values: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    """The provider's verdict: ``status`` is 200, or 502 (refused/unreadable) / 504 (timeout)."""

    call: Call
    ok: bool
    message: str
    status: int = 200


def _module(call: Call) -> ModuleType | None:
    provider = providers.get(call.provider)
    return provider.actions_module() if provider else None


def available(call: Call, may_act: bool) -> frozenset[str]:
    """The buttons a call shows to someone who ``may_act`` on it (its agent, supervisors).

    The provider must offer the action, the call must be connected, and the provider must
    be able to act on it now (the mediaservice, for one, needs the replyId its
    callAnswered callback carried).
    """
    offered = providers.capabilities(call.provider)
    if not may_act or not offered or call.state != "talking":
        return frozenset()
    module = _module(call)
    if module is None or not module.controllable(call):
        return frozenset()
    return offered


def can_act(user: User, call: Call, action: str) -> bool:
    return action in available(call, user.is_supervisor or call.agent_id == user.id)


def _load(session: Session, user: User, call_id: int) -> Call:
    call = session.get(Call, call_id)
    if call is None:
        raise ActionRefused(gettext("There is no call %(id)s.", id=call_id), status=404)
    if not (user.is_supervisor or call.agent_id == user.id):
        raise ActionRefused(gettext("Agents can act on their own calls only."), status=403)
    return call


def _claim(session: Session, call: Call, action: str, supersedes: tuple[str, ...] = (),
           **values: Any) -> None:
    """Mark ``action`` pending unless something else is (other than the actions it
    ``supersedes``); commit so boards show it."""
    end_reads(session)
    free: ColumnElement[bool] = Call.pending_action.is_(None)
    if supersedes:
        free = or_(free, Call.pending_action.in_(supersedes))
    # Session.execute is typed for SELECTs; an UPDATE's result is a CursorResult.
    claimed = cast(CursorResult[Any], session.execute(
        update(Call)
        .where(Call.id == call.id, free)
        .values(pending_action=action, pending_since=utcnow(), action_error=None, **values)
    ))
    if not claimed.rowcount:
        session.rollback()
        session.refresh(call)
        if call.pending_action:
            raise ActionRefused(gettext(
                "“%(action)s” is already in progress on this call; wait for it to finish.",
                action=action_name(call.pending_action)))
        raise ActionRefused(gettext(
            "Another action is already in progress on this call; wait for it to finish."))
    mark_changed(session, CALLS, call.id)
    session.commit()
    session.refresh(call)
    end_reads(session)  # no transaction stays open while the provider is asked


def _finish(session: Session, user: User, call: Call, action: str, detail: Any,
            send: Callable[[], Any], confirmed: dict[str, Any],
            failed: dict[str, Any], then: Callable[[Session], None] | None = None) -> Outcome:
    """Ask the provider; record the answer; leave the row pending, confirmed or failed.
    ``then`` adds what an accepted action changes besides the call row (same commit)."""
    status = 200
    try:
        answer = send()
    except ProviderFailure as exc:
        values = {"pending_action": None, "action_error": str(exc), **failed}
        outcome, message, ok = ("refused" if exc.kind == "refused" else "error"), str(exc), False
        provider_answer: Any = exc.answer if exc.answer is not None else exc.kind
        status = exc.status
    else:
        values = confirmed
        outcome, message, ok, provider_answer = "ok", "", True, answer
        if then is not None:
            then(session)
    values = dict(values)
    clear = "pending_action" in values and values.pop("pending_action") is None
    if values:
        session.execute(update(Call).where(Call.id == call.id).values(**values))
    if clear:  # unless a hang up superseded this action meanwhile: that one stays pending
        session.execute(update(Call).where(Call.id == call.id, Call.pending_action == action)
                        .values(pending_action=None))
    audit.record(session, user_id=user.id, action=action, outcome=outcome, call_id=call.id,
                 detail=detail, provider_answer=provider_answer)
    mark_changed(session, CALLS, call.id)
    session.commit()
    session.refresh(call)
    return Outcome(call, ok, message, status)


def _refuse(session: Session, user: User, call: Call, action: str,
            message: str | LazyString, status: int = 409) -> NoReturn:
    """Audit the refusal (in English, as the log keeps it) and raise it in the reader's
    language."""
    end_reads(session)
    with force_locale("en"):
        english = str(message)
    audit.record(session, user_id=user.id, action=action, outcome="invalid", call_id=call.id,
                 detail=english)
    session.commit()
    raise ActionRefused(str(message), status)


def _prepare(session: Session, user: User, call: Call, action: str,
             prepare: Callable[[ModuleType], Request]) -> Request:
    """The provider's ``Request`` for ``action``; its ``NotPossible`` is audited."""
    module = _module(call)
    if module is None:
        _refuse(session, user, call, action,
                lazy_gettext("The desk cannot control calls from this provider."))
    try:
        return prepare(module)
    except NotPossible as exc:
        _refuse(session, user, call, action, exc.message, exc.status)


def hangup(session: Session, user: User, call_id: int, config: Mapping[str, Any]) -> Outcome:
    call = _load(session, user, call_id)
    if not can_act(user, call, "hangup"):
        _refuse(session, user, call, "hangup", lazy_gettext(
            "This call cannot be hung up from the desk (state: %(state)s).",
            state=_state(call)))
    request = _prepare(session, user, call, "hangup", lambda m: m.hangup(call, config))
    # A pending split, drop or recording does not stand in the way; a pending hang up does.
    _claim(session, call, "hangup", supersedes=tuple(a for a in PENDING if a != "hangup"),
           **request.values)
    return _finish(session, user, call, "hangup", dict(request.detail), request.send,
                   confirmed={}, failed={})


def drop_party(session: Session, user: User, call_id: int, party: str | None,
               config: Mapping[str, Any]) -> Outcome:
    """Hang up one side only: the caller, or the agent's leg."""
    call = _load(session, user, call_id)
    if party not in PARTIES:
        _refuse(session, user, call, "drop",
                lazy_gettext("Say which party to drop: caller or agent."), status=400)
    if not can_act(user, call, "drop"):
        _refuse(session, user, call, "drop", lazy_gettext(
            "A party can be dropped only from a call in conversation (this call: %(state)s).",
            state=_state(call)))
    request = _prepare(session, user, call, "drop", lambda m: m.drop(call, party, config))
    _claim(session, call, "drop", **request.values)
    return _finish(session, user, call, "drop", {"party": party, **request.detail}, request.send,
                   confirmed={}, failed={})


def split(session: Session, user: User, call_id: int, target: str | None,
          config: Mapping[str, Any]) -> Outcome:
    call = _load(session, user, call_id)
    target = (target or "").strip() or None
    if target is not None and not _TARGET.match(target):
        _refuse(session, user, call, "split", lazy_gettext(
            "The transfer target must be a number, an extension or a SIP address like "
            "%(example)s.", example="sip:101@example.com"), status=400)
    if not can_act(user, call, "split"):
        _refuse(session, user, call, "split", lazy_gettext(
            "Only a call in conversation can be split (this call: %(state)s).",
            state=_state(call)))
    request = _prepare(session, user, call, "split", lambda m: m.split(call, target, config))
    _claim(session, call, "split", transfer_to=target, **request.values)
    return _finish(session, user, call, "split", {"transfer_to": target, **request.detail},
                   request.send, confirmed={}, failed={"transfer_to": None})


def start_recording(session: Session, user: User, call_id: int,
                    config: Mapping[str, Any]) -> Outcome:
    call = _load(session, user, call_id)
    if not can_act(user, call, "record"):
        _refuse(session, user, call, "record", lazy_gettext(
            "Only a call in conversation can be recorded (this call: %(state)s).",
            state=_state(call)))
    if call.recording_state in ("pending", "on", "stopping"):
        _refuse(session, user, call, "record",
                lazy_gettext("This call is being recorded already."))
    if call.recording_state == "paused":
        _refuse(session, user, call, "record",
                lazy_gettext("This call's recording is paused; resume it."))
    part = recording.next_position(session, call.id)
    request = _prepare(session, user, call, "record",
                       lambda m: m.start_recording(call, config, part=part))
    before = call.recording_state
    _claim(session, call, "record", recording_state="pending", recording_error=None,
           **request.values)
    return _finish(session, user, call, "record", dict(request.detail), request.send,
                   confirmed={"pending_action": None, "recording_state": "on"},
                   failed={"recording_state": before if before != "pending" else "off"},
                   then=_opened(call.id, part, request, user))


def _opened(call_id: int, part: int, request: Request, user: User) -> Callable[[Session], None]:
    """Segment ``part`` of the call's recording, once the provider accepted the start."""
    name = str(request.detail.get("recordingFileName") or "")
    return lambda session: recording.opened(session, call_id, part, name, user.id)


def pause_recording(session: Session, user: User, call_id: int,
                    config: Mapping[str, Any]) -> Outcome:
    """Stop the recording for now; the row says *Recording paused* until it resumes."""
    call = _load(session, user, call_id)
    if not can_act(user, call, "pause"):
        _refuse(session, user, call, "pause-record", lazy_gettext(
            "Only the recording of a call in conversation can be paused (this call: "
            "%(state)s).", state=_state(call)))
    if call.recording_state != "on":
        _refuse(session, user, call, "pause-record",
                lazy_gettext("This call is not being recorded."))
    request = _prepare(session, user, call, "pause-record",
                       lambda m: m.stop_recording(call, config))
    _claim(session, call, "pause-record", **request.values)
    return _finish(session, user, call, "pause-record", dict(request.detail), request.send,
                   confirmed={"pending_action": None, "recording_state": "paused"}, failed={},
                   then=lambda s: recording.closed(s, call.id, user.id, "pause"))


def resume_recording(session: Session, user: User, call_id: int,
                     config: Mapping[str, Any]) -> Outcome:
    """Record again after a pause, into the next segment's file."""
    call = _load(session, user, call_id)
    if not can_act(user, call, "pause"):
        _refuse(session, user, call, "resume-record", lazy_gettext(
            "Only the recording of a call in conversation can be resumed (this call: "
            "%(state)s).", state=_state(call)))
    if call.recording_state != "paused":
        _refuse(session, user, call, "resume-record",
                lazy_gettext("This call's recording is not paused."))
    part = recording.next_position(session, call.id)
    request = _prepare(session, user, call, "resume-record",
                       lambda m: m.start_recording(call, config, part=part))
    _claim(session, call, "resume-record", **request.values)
    return _finish(session, user, call, "resume-record", dict(request.detail), request.send,
                   confirmed={"pending_action": None, "recording_state": "on"}, failed={},
                   then=_opened(call.id, part, request, user))


def stop_recording(session: Session, user: User, call_id: int,
                   config: Mapping[str, Any]) -> Outcome:
    call = _load(session, user, call_id)
    if call.recording_state != "on":
        _refuse(session, user, call, "stop-record",
                lazy_gettext("This call is not being recorded."))
    request = _prepare(session, user, call, "stop-record",
                       lambda m: m.stop_recording(call, config))
    _claim(session, call, "stop-record", recording_state="stopping", **request.values)
    return _finish(session, user, call, "stop-record",
                   {"recordingFileName": call.recording_file_name, **request.detail},
                   request.send, confirmed={"pending_action": None},
                   failed={"recording_state": "on"},
                   then=lambda s: recording.closed(s, call.id, user.id, "stop"))


def close(session: Session, user: User, call_id: int) -> Outcome:
    """Supervisors: end a live call on the desk (its provider will not say it ended)."""
    if not user.is_supervisor:
        raise ActionRefused(gettext("Only supervisors can close a call on the desk."),
                            status=403)
    call = _load(session, user, call_id)
    if not call.is_live:
        _refuse(session, user, call, "close", lazy_gettext("This call has ended already."))
    closed = sweeper.close(session, call.id, end_cause=sweeper.CLOSED_CAUSE, action="close",
                           user_id=user.id)
    if closed is None:  # ended between the look and the lock
        session.refresh(call)
        _refuse(session, user, call, "close", lazy_gettext("This call has ended already."))
    return Outcome(closed, True, "")


def recording_url(session: Session, user: User, call_id: int,
                  config: Mapping[str, Any], part: int | None = None) -> str:
    """A fresh playback URL (providers hand out short-lived ones; never stored): of the
    recording, or of its segment at position ``part``."""
    call = _load(session, user, call_id)
    module = _module(call)
    if module is None:
        raise ActionRefused(gettext("This call has no recording ready to play."), status=404)
    if part is not None:
        segment = next((s for s in recording.segments(session, call.id)
                        if s.position == part), None)
        if segment is None or segment.state != "ready":
            raise ActionRefused(gettext(
                "Part %(part)s of this call's recording is not ready to play.", part=part),
                status=404)
        try:
            return str(module.recording_url(call, config, file_name=segment.file_name))
        except ProviderFailure as exc:
            raise ActionRefused(gettext("The recording cannot be fetched: %(reason)s",
                                        reason=str(exc)), status=502) from exc
    if call.recording_state != "ready" or not call.recording_file_name:
        raise ActionRefused(gettext("This call has no recording ready to play."), status=404)
    try:
        return str(module.recording_url(call, config))
    except ProviderFailure as exc:
        raise ActionRefused(gettext("The recording cannot be fetched: %(reason)s",
                                    reason=str(exc)), status=502) from exc
