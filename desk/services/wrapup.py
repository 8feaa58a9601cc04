"""After-call work: the dispositions list, a call's disposition and note, timed wrap-up.

When an agent's answered call ends, ``start_wrap_up`` (called by ``desk.services.ingest`` in
the same transaction) moves an *available* agent to ``wrap-up`` until
``DESK_WRAP_UP_SECONDS`` from now (``User.presence_until``); routing treats an expired
wrap-up as available at once, and the sweep (``expire_wrap_ups``) or the agent saving the
wrap-up puts the presence back, so boards show it too. An agent who chose *away* or
*offline* keeps it. While talking, presence is not changed: boards show *on a call* from the
live call itself.

``save_wrap_up`` stores the disposition (one of the active labels supervisors keep with
``replace_dispositions``) and a note on an ended call; the call's agent or a supervisor may
do it, as often as needed (the last save wins), and each save is audited.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol, cast

from flask_babel import gettext
from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.orm import Session, scoped_session

from desk.db import end_reads
from desk.live.changes import AGENTS, CALLS, mark_changed
from desk.models import Call, Disposition, User, utcnow
from desk.services import audit
from desk.services.visibility import load_visible

SessionLike = Session | scoped_session[Session]

MAX_NOTE = 2000
MAX_LABEL = 80
MAX_DISPOSITIONS = 50
WRAP_UP = "wrap-up"


class WrapUpRefused(Exception):
    """The wrap-up cannot be saved; ``field`` names the input at fault (or None), ``status``
    is the HTTP status, the message says what to do."""

    def __init__(self, message: str, field: str | None = None, status: int = 422) -> None:
        super().__init__(message)
        self.message, self.field, self.status = message, field, status


# -- the list supervisors keep ---------------------------------------------------------------
def dispositions(session: SessionLike) -> list[str]:
    """The active disposition labels, in the supervisors' order."""
    return list(session.scalars(
        select(Disposition.label).where(Disposition.active).order_by(Disposition.position,
                                                                      Disposition.id)
    ))


def parse_labels(lines: Sequence[str]) -> list[str]:
    """Clean labels from what a supervisor typed: trimmed, blank lines dropped. Refuses
    duplicates, over-long labels and too many, naming the line."""
    labels: list[str] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(lines, start=1):
        label = " ".join(str(raw).split())
        if not label:
            continue
        if len(label) > MAX_LABEL:
            raise WrapUpRefused(gettext(
                "Line %(line)s: a disposition can have at most %(most)s characters; this one "
                "has %(count)s.", line=number, most=MAX_LABEL, count=len(label)),
                "dispositions", 400)
        key = label.casefold()
        if key in seen:
            raise WrapUpRefused(gettext("Line %(line)s: “%(label)s” is already on line %(first)s.",
                                        line=number, label=label, first=seen[key]),
                                "dispositions", 400)
        seen[key] = number
        labels.append(label)
    if len(labels) > MAX_DISPOSITIONS:
        raise WrapUpRefused(gettext("Keep at most %(most)s dispositions; there are %(count)s.",
                                    most=MAX_DISPOSITIONS, count=len(labels)),
                            "dispositions", 400)
    return labels


def replace_dispositions(session: Session, labels: Sequence[str], actor: User) -> list[str]:
    """Make ``labels`` the active list, in this order (audited). Labels dropped from the list
    are kept inactive, so calls that have them still show them. Commits."""
    clean = parse_labels(labels)
    end_reads(session)
    existing = {d.label.casefold(): d for d in session.scalars(select(Disposition))}
    before = dispositions(session)
    for position, label in enumerate(clean):
        row = existing.pop(label.casefold(), None)
        if row is None:
            session.add(Disposition(label=label, position=position, active=True))
        else:
            row.label, row.position, row.active = label, position, True
    for row in existing.values():
        row.active = False
    audit.record(session, user_id=actor.id, action="dispositions", outcome="ok",
                 detail={"before": before, "after": clean})
    session.commit()
    return clean


# -- one call's wrap-up --------------------------------------------------------------------
@dataclass(frozen=True)
class WrapUp:
    disposition: str | None
    note: str | None


def check_wrap_up(session: SessionLike, raw_disposition: Any, raw_note: Any) -> WrapUp:
    """The wrap-up as the desk stores it, or ``WrapUpRefused`` naming the field."""
    if raw_disposition is not None and not isinstance(raw_disposition, str):
        raise WrapUpRefused(gettext("The disposition must be text: one of the labels in the "
                                    "list."), "disposition", 400)
    if raw_note is not None and not isinstance(raw_note, str):
        raise WrapUpRefused(gettext("The note must be text."), "note", 400)
    disposition = " ".join((raw_disposition or "").split()) or None
    note = (raw_note or "").strip() or None
    if note is not None and len(note) > MAX_NOTE:
        raise WrapUpRefused(gettext("Keep the note to %(most)s characters; it has %(count)s.",
                                    most=MAX_NOTE, count=len(note)), "note")
    labels = dispositions(session)
    if disposition is None and labels:
        raise WrapUpRefused(gettext("Pick a disposition: how did the call end?"), "disposition")
    if disposition is not None and disposition not in labels:
        if not labels:
            raise WrapUpRefused(gettext(
                "“%(label)s” is not in the list of dispositions: none are set up yet.",
                label=disposition[:MAX_LABEL]), "disposition")
        raise WrapUpRefused(gettext(
            "“%(label)s” is not in the list of dispositions (choose one of: %(choices)s).",
            label=disposition[:MAX_LABEL], choices=", ".join(labels)), "disposition")
    if disposition is None and note is None:
        raise WrapUpRefused(gettext("Write a note about the call."), "note")
    return WrapUp(disposition, note)


def save_wrap_up(session: Session, user: User, call_id: int, raw_disposition: Any,
                 raw_note: Any) -> Call:
    """Store the disposition and note on an ended call (audited); ends the saving agent's
    wrap-up. Raises ``CallNotFound`` / ``NotVisible`` / ``WrapUpRefused``. Commits."""
    call = load_visible(session, user, call_id)
    if not user.is_supervisor and call.agent_id != user.id:
        raise WrapUpRefused(gettext("Only the agent who took the call, or a supervisor, can "
                                    "wrap it up."), status=403)
    if call.is_live:
        raise WrapUpRefused(gettext("The call is still going on; wrap it up once it has "
                                    "ended."), status=409)
    wrap = check_wrap_up(session, raw_disposition, raw_note)
    end_reads(session)
    call = session.get_one(Call, call_id, populate_existing=True)
    before = {"disposition": call.disposition, "note": call.wrap_up_note}
    call.disposition, call.wrap_up_note = wrap.disposition, wrap.note
    call.wrapped_up_at, call.wrapped_up_by_id = utcnow(), user.id
    call.version += 1
    mark_changed(session, CALLS, call.id)
    audit.record(session, user_id=user.id, action="wrap-up", outcome="ok", call_id=call.id,
                 detail={"disposition": wrap.disposition, "note": wrap.note,
                         "before": before})
    if call.agent_id == user.id:
        _end_wrap_up(session, user.id)
    session.commit()
    return call


# -- the wrap-up presence ----------------------------------------------------------------
class EndedCall(Protocol):
    """What ``start_wrap_up`` reads of a call (``Call`` and ingest's ``CallState`` have it)."""

    agent_id: int | None
    answered_at: datetime | None


_USERS = cast(Table, User.__table__)
_START_WRAP_UP = (
    update(_USERS)
    .where(_USERS.c.id == bindparam("b_agent"), _USERS.c.presence == "available")
    .values(presence=WRAP_UP, presence_since=bindparam("b_now"),
            presence_until=bindparam("b_until"))
)  # built once: it runs on every hang-up of a talked call


def start_wrap_up(session: Session, call: EndedCall, config: Mapping[str, Any]) -> None:
    """In the transaction that ended ``call``: its agent, if available, wraps up for
    ``DESK_WRAP_UP_SECONDS`` (0: never). Only for calls the agent talked on."""
    seconds = int(config.get("DESK_WRAP_UP_SECONDS", 0) or 0)
    if seconds <= 0 or call.agent_id is None or call.answered_at is None:
        return
    now = utcnow()
    changed = session.connection().execute(_START_WRAP_UP, {
        "b_agent": call.agent_id, "b_now": now, "b_until": now + timedelta(seconds=seconds)})
    if changed.rowcount:
        mark_changed(session, AGENTS, call.agent_id)


def _end_wrap_up(session: SessionLike, user_id: int) -> bool:
    changed = session.execute(
        update(User).where(User.id == user_id, User.presence == WRAP_UP)
        .values(presence="available", presence_since=utcnow(), presence_until=None)
        .execution_options(synchronize_session=False)
    )
    if getattr(changed, "rowcount", 0):
        mark_changed(session, AGENTS, user_id)
        return True
    return False


def expire_wrap_ups(session: SessionLike, now: datetime | None = None) -> list[int]:
    """Agents whose timed wrap-up is over become available again; their ids. Commits."""
    now = now or utcnow()
    end_reads(session)
    ids = list(session.scalars(
        select(User.id).where(User.presence == WRAP_UP, User.presence_until.is_not(None),
                              User.presence_until <= now)
    ))
    ended = [user_id for user_id in ids if _end_wrap_up(session, user_id)]
    session.commit()
    return ended


class HasPresence(Protocol):
    """What ``effective_presence`` reads: a ``User``, or a row with those columns."""

    @property
    def presence(self) -> str: ...
    @property
    def presence_until(self) -> datetime | None: ...


def effective_presence(user: HasPresence, now: datetime | None = None) -> str:
    """The presence routing should go by: a timed wrap-up that is over counts as available
    even before the sweep has put it back."""
    if (user.presence == WRAP_UP and user.presence_until is not None
            and user.presence_until <= (now or utcnow())):
        return "available"
    return user.presence
