"""Calls always end, and "pending" never lasts: the desk closes what its providers forget.

Providers do not always send the end of a call: Placetel's call-centre numbers may send no
``HungUp`` for incoming calls (issue #17 of its public repository), a lost webhook or a
consumer outage loses one, a server that died mid-call leaves the row open. Without help
such a call would ring or talk on every board for ever. So, in every server process:

* **Silence closes a call.** A live call with no word about it for longer than its limit
  is ended through the state machine (``desk.domain.state.merge`` with an "ended" event,
  end cause ``no_end_event``: *ended — no end event received*), audited with no user. The
  word last heard is the newest of the call's ``started_at``, ``ringing_at`` and
  ``answered_at`` and of the ``received_at`` of the last delivery logged for it. The limit
  is ``DESK_MAX_SILENCE_RINGING`` for a dialling or ringing call and
  ``DESK_MAX_SILENCE_TALKING`` for a talking one, except where a provider reports no answer
  (``TALKING_UNSEEN``: there a "dialling" call may be a conversation), and
  ``DESK_MAX_SILENCE_BY_PROVIDER`` overrides either per provider and state.
* **A pending action expires.** An action the provider has not confirmed within
  ``DESK_PENDING_TIMEOUT`` seconds (never less than ``DESK_PROVIDER_TIMEOUT``, so a request
  still waiting for its answer is not overtaken) is cleared, with "the provider did not
  confirm" on the row while the call is live, and audited. The row keeps that in English
  (the sweep has no reader); a page shows it in its reader's language with the template
  filter ``stored_text``, as every text the desk stores in ``action_error``.
* **A supervisor closes a call by hand** (``close``, through ``desk.services.actions.close``):
  the same ending, end cause ``closed_by_supervisor``, audited with their name. No provider
  is asked; the call's row simply stops pretending.

Every change is one transaction that marks what changed, so boards update after the commit.
Several processes may sweep at the same moment: a close locks the call's row and checks it
is still live and still silent before it ends it (on SQLite, where there is no row lock, a
second writer with a stale read fails and the sweep tries again), and an expiry is a
conditional UPDATE on the exact pending action it read; so each call is closed, and each
action expired, exactly once, with one audit entry.

``init_app`` runs ``sweep`` in a background thread of each server process, started with its
first request (never at import, in CLI commands or under ``TESTING``), at once (for calls
left open by a previous run) and then every ``DESK_SWEEP_INTERVAL`` seconds;
``flask --app app calls sweep`` runs it once.
"""

from __future__ import annotations

import functools
import logging
import math
import random
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from flask import Flask
from flask_babel import gettext
from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, lazyload

from desk.db import end_reads
from desk.domain.events import CallEvent
from desk.domain.state import merge
from desk.live import sequence
from desk.live.changes import AGENTS, CALLS, mark_changed
from desk.models import LIVE_STATES, Call, Delivery, utcnow
from desk.providers.teleforge.rules import sip_reason
from desk.services import audit
from desk.services.wrapup import expire_wrap_ups

log = logging.getLogger(__name__)

SILENT_CAUSE = "no_end_event"
"""End cause of a call the desk closed because its provider went silent."""
CLOSED_CAUSE = "closed_by_supervisor"
"""End cause of a call a supervisor closed with the Close call button."""
AUTO_CLOSE = "auto-close"
PENDING_EXPIRED = "pending-expired"
SWEEPER_ACTIONS = (AUTO_CLOSE, PENDING_EXPIRED)
"""Audit actions the desk itself takes (their entries have no user)."""

TALKING_UNSEEN = frozenset({("placetel", "dialling"), ("teleforge", "dialling")})
"""(provider, state) in which a call may already be a conversation the provider never
reports: no ``CallAccepted`` follows Placetel's ``OutgoingCall`` (issue #16), and Teleforge
sends nothing between a click-to-dial and its CDR. Such a call gets the talking limit."""


def N_(text: str) -> str:
    """Marks a message for the catalogue; ``stored_text`` translates it on a page."""
    return text


NOT_CONFIRMED = {
    "hangup": N_("The provider did not confirm the hang up within %(seconds)s seconds. The "
                 "call may still be connected. Try again."),
    "drop": N_("The provider did not confirm dropping the party within %(seconds)s seconds. "
               "Try again."),
    "split": N_("The provider did not confirm the transfer within %(seconds)s seconds. Try "
                "again."),
    "record": N_("The provider did not confirm the start of the recording within "
                 "%(seconds)s seconds. Try again."),
    "stop-record": N_("The provider did not confirm the end of the recording within "
                      "%(seconds)s seconds. Try again."),
    "pause-record": N_("The provider did not confirm the pause of the recording within "
                       "%(seconds)s seconds. Try again."),
    "resume-record": N_("The provider did not confirm the recording going on again within "
                        "%(seconds)s seconds. Try again."),
}
"""What a live row says when its pending action expired (stored in English, ``action_error``)."""
NOT_CONFIRMED_OTHER = N_("The provider did not confirm %(action)s within %(seconds)s "
                         "seconds. Try again.")


# -- stored texts, as a page shows them ----------------------------------------------------
# ``Call.action_error`` keeps what the desk said in English: the sweep has no reader, and
# the API and the audit log speak English. A page translates it when it renders the row
# (the template filter ``stored_text``): each of the desk's sentences, its values read back
# out of the stored sentence and put into the reader's whole sentence. Any other text (a
# provider's own words) is shown as it came. The sentences are those the code that says
# them defines (``_stored``), so a reworded one is still recognised.
_PLAYBACK_REFUSED = N_("the provider returned a playback address outside its storage hosts")
"""Said by ``desk.providers.mediaservice.actions.recording_url``."""
_PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def _pattern(text: str) -> re.Pattern[str]:
    """``text`` with each ``%(name)s`` read back as the group ``name``."""
    body: list[str] = []
    seen: set[str] = set()
    at = 0
    for found in _PLACEHOLDER.finditer(text):
        body.append(re.escape(text[at:found.start()]))
        name = found[1]
        body.append(f"(?P={name})" if name in seen else f"(?P<{name}>.+?)")
        seen.add(name)
        at = found.end()
    body.append(re.escape(text[at:]))
    return re.compile("".join(body), re.DOTALL)


@dataclass(frozen=True)
class _Stored:
    sentences: tuple[tuple[str, re.Pattern[str]], ...]
    """Each sentence the desk stores, with its pattern: the first that matches wins."""
    reasons: frozenset[str]
    """The call service's refusal reasons when it gave none of its own."""


@functools.cache
def _stored() -> _Stored:
    """The desk's stored sentences, from where they are said (imported here, not at the top:
    the providers and the softphone import the services)."""
    from desk.providers.mediaservice import client as mediaservice
    from desk.providers.teleforge import client as teleforge
    from desk.web import softphone

    texts = (*NOT_CONFIRMED.values(), NOT_CONFIRMED_OTHER, *mediaservice.MESSAGES,
             _PLAYBACK_REFUSED, *teleforge.MESSAGES, *softphone.MESSAGES)
    return _Stored(sentences=tuple((text, _pattern(text)) for text in dict.fromkeys(texts)),
                   reasons=frozenset(mediaservice.REFUSAL_REASONS))


def _value(name: str, value: str) -> str:
    """A value read out of a stored sentence, in the reader's language when it is one of
    the desk's fixed words (a SIP reason phrase, the call service's fallback reasons)."""
    if name == "reason":
        if value in _stored().reasons:
            return str(gettext(value))
        return str(sip_reason(value))
    return value


def stored_text(text: str | None) -> str:
    """A stored ``action_error`` (or any text the desk stored in English) in the reader's
    language when it is one of the desk's own sentences; any other text as it is."""
    if not text:
        return ""
    for message, pattern in _stored().sentences:
        found = pattern.fullmatch(text)
        if found:
            values = {name: _value(name, value) for name, value in found.groupdict().items()}
            return str(gettext(message, **values))
    return text


_ATTEMPTS = 8
_CHUNK = 500


@dataclass(frozen=True)
class Swept:
    """What one sweep did: the calls it closed, the calls whose pending action expired."""

    closed: tuple[int, ...] = ()
    expired: tuple[int, ...] = ()


def silence_limit(config: Mapping[str, Any], provider: str, state: str) -> int:
    """Seconds a ``provider``'s call in ``state`` may go without a word before it is closed."""
    overrides: Mapping[str, int] = config.get("DESK_MAX_SILENCE_BY_PROVIDER") or {}
    if f"{provider}:{state}" in overrides:
        return int(overrides[f"{provider}:{state}"])
    if (provider, state) in TALKING_UNSEEN:
        state = "talking"
        if f"{provider}:talking" in overrides:
            return int(overrides[f"{provider}:talking"])
    key = "DESK_MAX_SILENCE_TALKING" if state == "talking" else "DESK_MAX_SILENCE_RINGING"
    return int(config[key])


def pending_timeout(config: Mapping[str, Any]) -> int:
    """Seconds an action may stay pending: ``DESK_PENDING_TIMEOUT``, but never less than the
    provider request's own timeout."""
    return max(int(config["DESK_PENDING_TIMEOUT"]),
               math.ceil(float(config["DESK_PROVIDER_TIMEOUT"])))


def _newest(*times: datetime | None) -> datetime:
    return max(t for t in times if t is not None)


def _last_delivery(session: Session, call_id: int) -> datetime | None:
    received: datetime | None = session.scalar(
        select(func.max(Delivery.received_at)).where(Delivery.call_id == call_id)
    )
    return received


# -- closing a call ------------------------------------------------------------------------
Check = Callable[[Call], dict[str, Any] | None]
"""Looks at the locked live call: details for the audit entry, or None to leave it open."""


def close(session: Session, call_id: int, *, end_cause: str, action: str,
          user_id: int | None = None, check: Check | None = None) -> Call | None:
    """End the live call ``call_id`` through the state machine, audited; one transaction.

    Returns the ended call, or None when it is not live (any more) or ``check`` said no.
    Safe against a second closer, a sweep in another process or a webhook ending the call
    at the same moment: only one of them ends it.
    """
    for attempt in range(_ATTEMPTS):
        try:
            return _close_once(session, call_id, end_cause, action, user_id, check)
        except OperationalError:
            # SQLite: someone wrote after this transaction read. Start over with what
            # they wrote (perhaps the call has ended meanwhile), after a short random pause
            # so sweepers that collided do not collide again in lockstep.
            session.rollback()
            if attempt == _ATTEMPTS - 1:
                raise
            time.sleep(random.uniform(0, 0.01 * 2 ** attempt))
    raise AssertionError("unreachable")


def _close_once(session: Session, call_id: int, end_cause: str, action: str,
                user_id: int | None, check: Check | None) -> Call | None:
    end_reads(session)
    call = session.scalars(
        select(Call)
        .where(Call.id == call_id, Call.state.in_(LIVE_STATES))
        .options(lazyload(Call.agent))  # PostgreSQL can't lock the nullable side of a join
        .with_for_update(of=Call)
    ).first()
    detail: dict[str, Any] = {"state": call.state} if call is not None else {}
    more = check(call) if call is not None and check is not None else {}
    if call is None or more is None:
        end_reads(session)
        return None
    detail.update(more)
    merge(call, CallEvent(provider=call.provider, provider_call_id=call.provider_call_id,
                          kind="ended", at=utcnow(), end_cause=end_cause))
    # Whatever was pending is moot: the call is over as far as the desk is concerned.
    call.pending_action = None
    call.pending_since = None
    audit.record(session, user_id=user_id, action=action, outcome="ok", call_id=call.id,
                 detail=detail)
    mark_changed(session, CALLS, call.id)
    if call.agent_id:  # the agent's tile shows its current call
        mark_changed(session, AGENTS, call.agent_id)
    session.commit()
    return call


def close_silent_calls(session: Session, config: Mapping[str, Any]) -> list[int]:
    """Close every live call that has been silent for longer than its limit."""
    now = utcnow()
    shortest = min([int(config["DESK_MAX_SILENCE_RINGING"]),
                    int(config["DESK_MAX_SILENCE_TALKING"]),
                    *(config.get("DESK_MAX_SILENCE_BY_PROVIDER") or {}).values()])
    end_reads(session)
    # started_at is the oldest of a call's times: a call started within the shortest limit
    # cannot be silent for longer than it.
    candidates = session.execute(
        select(Call.id, Call.provider, Call.state, Call.started_at, Call.ringing_at,
               Call.answered_at)
        .where(Call.state.in_(LIVE_STATES), Call.started_at < now - timedelta(seconds=shortest))
        .order_by(Call.id)
    ).all()
    last: dict[int | None, datetime] = {}
    ids = [row.id for row in candidates]
    for start in range(0, len(ids), _CHUNK):
        for call_id, received in session.execute(
            select(Delivery.call_id, func.max(Delivery.received_at))
            .where(Delivery.call_id.in_(ids[start:start + _CHUNK]))
            .group_by(Delivery.call_id)
        ):
            last[call_id] = received
    end_reads(session)

    closed: list[int] = []
    for row in candidates:
        newest = _newest(row.started_at, row.ringing_at, row.answered_at, last.get(row.id))
        if now - newest < timedelta(seconds=silence_limit(config, row.provider, row.state)):
            continue
        call = close(session, row.id, end_cause=SILENT_CAUSE, action=AUTO_CLOSE,
                     check=_still_silent(session, config))
        if call is not None:
            closed.append(call.id)
            log.info("closed call %s (%s %s): no end event received", call.id,
                     call.provider, call.provider_call_id)
    return closed


def _still_silent(session: Session, config: Mapping[str, Any]) -> Check:
    """Checked again on the locked row: a delivery may have arrived since the first look."""

    def check(call: Call) -> dict[str, Any] | None:
        limit = silence_limit(config, call.provider, call.state)
        heard = _newest(call.started_at, call.ringing_at, call.answered_at,
                        _last_delivery(session, call.id))
        silent = utcnow() - heard
        if silent < timedelta(seconds=limit):
            return None
        return {"reason": "no end event received", "last_heard": heard.isoformat(),
                "silent_seconds": int(silent.total_seconds()), "limit_seconds": limit}

    return check


# -- pending actions -----------------------------------------------------------------------
def expire_pending(session: Session, config: Mapping[str, Any]) -> list[int]:
    """Clear every pending action older than ``pending_timeout``; say so on live rows."""
    timeout = pending_timeout(config)
    cutoff = utcnow() - timedelta(seconds=timeout)
    end_reads(session)
    stale = session.execute(
        select(Call.id, Call.state, Call.pending_action, Call.pending_since,
               Call.recording_state, Call.agent_id)
        .where(Call.pending_action.is_not(None), Call.pending_since < cutoff)
        .order_by(Call.id)
    ).all()
    end_reads(session)
    expired: list[int] = []
    for row in stale:
        try:
            if _expire_one(session, row, timeout):
                expired.append(row.id)
        except OperationalError:  # SQLite busy past its timeout: the next sweep tries again
            session.rollback()
            log.warning("could not expire the pending action of call %s now", row.id)
    return expired


def _expire_one(session: Session, row: Any, timeout: int) -> bool:
    values: dict[str, Any] = {"pending_action": None, "pending_since": None}
    # What the action had set on the row is undone as when the provider refuses it.
    where = [Call.id == row.id, Call.pending_action == row.pending_action,
             Call.pending_since == row.pending_since]
    if row.pending_action == "record" and row.recording_state == "pending":
        values["recording_state"] = "off"
        where.append(Call.recording_state == "pending")
    elif row.pending_action == "stop-record" and row.recording_state == "stopping":
        values["recording_state"] = "on"
        where.append(Call.recording_state == "stopping")
    elif row.pending_action == "split":
        values["transfer_to"] = None
    if row.state in LIVE_STATES:  # on an ended call there is nothing left to try again
        message = NOT_CONFIRMED.get(row.pending_action)
        values["action_error"] = (
            message % {"seconds": timeout} if message is not None
            else NOT_CONFIRMED_OTHER % {"action": row.pending_action, "seconds": timeout})
    end_reads(session)
    # Conditional on the very action read: a sweep in another process, the provider's late
    # confirmation or a new press in between leave nothing for this one to do.
    done = cast(CursorResult[Any], session.execute(update(Call).where(*where).values(**values)))
    if not done.rowcount:
        session.rollback()
        return False
    audit.record(session, user_id=None, action=PENDING_EXPIRED, outcome="error", call_id=row.id,
                 detail={"action": row.pending_action, "timeout_seconds": timeout,
                         "pending_since": row.pending_since.isoformat(),
                         "reason": "the provider did not confirm"})
    mark_changed(session, CALLS, row.id)
    if row.agent_id:
        mark_changed(session, AGENTS, row.agent_id)
    session.commit()
    log.info("call %s: %s was not confirmed within %s s; cleared", row.id, row.pending_action,
             timeout)
    return True


def sweep(session: Session, config: Mapping[str, Any]) -> Swept:
    """Expire unconfirmed actions, then close silent calls; each change its own commit."""
    expired = expire_pending(session, config)
    closed = close_silent_calls(session, config)
    expire_wrap_ups(session)
    prune_live_changes(session, config)
    return Swept(closed=tuple(closed), expired=tuple(expired))


def prune_live_changes(session: Session, config: Mapping[str, Any]) -> int:
    """Drop numbered live changes older than ``DESK_LIVE_CHANGES_KEEP`` seconds (no board
    needs them: a process that started since reads from the newest). Never fails a sweep."""
    try:
        end_reads(session)
        return sequence.prune(session, timedelta(seconds=int(config["DESK_LIVE_CHANGES_KEEP"])))
    except SQLAlchemyError as exc:  # another sweeper holds the lock: the next round prunes
        session.rollback()
        log.info("pruning the live change sequence skipped (%s)", exc.__class__.__name__)
        return 0


# -- in each server process ----------------------------------------------------------------
class Sweeper:
    """A server process's sweeping thread: a sweep at once, then one every ``interval``."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.interval = float(app.config["DESK_SWEEP_INTERVAL"])
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def ensure_started(self) -> None:
        """Start the thread once (called on each request; cheap after the first)."""
        if self._thread is not None:
            return
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self.run, name="desk-sweeper",
                                                daemon=True)
                self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        from desk.extensions import db

        while not self._stop.is_set():
            try:
                with db.new_session() as session:
                    sweep(session, self.app.config)
            except Exception:  # the database may be away; the next round tries again
                log.exception("sweeping calls failed; trying again in %g s", self.interval)
            self._stop.wait(self.interval)


def init_app(app: Flask) -> None:
    """Create this process's sweeper and start it with the first request it serves.

    Not at import or in ``create_app``: a forking server would share one thread between
    workers, and CLI commands must not sweep behind the administrator's back. Not under
    ``TESTING`` (tests sweep when they mean to) nor with ``DESK_SWEEP_INTERVAL=0``.
    """
    app.add_template_filter(stored_text, "stored_text")
    sweeper = Sweeper(app) if app.config["DESK_SWEEP_INTERVAL"] else None
    app.extensions["desk_sweeper"] = sweeper
    if sweeper is None or app.testing:
        return

    @app.before_request
    def _start_sweeper() -> None:
        sweeper.ensure_started()
