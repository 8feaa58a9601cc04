"""The call state machine: applies normalized events to call rows, one transaction a delivery.

Every delivery is appended to the event log (``Delivery``) in the same transaction that
updates the call, so the log and the board never disagree. Two properties hold and are
tested with Hypothesis:

* **Idempotent.** A delivery's dedupe key is stored under a unique index; a retried delivery
  hits it, is logged as ``duplicate`` and changes nothing else.
* **Order-tolerant.** Events are folded in with ``desk.domain.state.merge``, which only moves
  a call's state forward and merges every field commutatively, so any order and any
  duplication of a call's events ends in the same row as the clean order.

Changed call ids are marked on the session and published to boards only after the commit.

The hot path is a handful of SQLAlchemy Core statements, each built once, no ORM unit of
work: insert the delivery unless its dedupe key is taken (``ON CONFLICT DO NOTHING …
RETURNING``), filed under its call by a subquery when the call exists; then per event one
locked read of the call's columns and one INSERT or UPDATE of what ``merge`` changed; one
UPDATE naming the delivery's call only when the INSERT could not (a call's first
delivery). Provider folds (``Fold``) still get an ORM session in the same transaction, for
what only some deliveries carry.

The log keeps whatever came, also what no parser understood: text fields pass through
``storable`` (NUL written as ``\\x00``, which PostgreSQL could not store) and are cut to
their columns' sizes, so recording a rejected delivery cannot itself fail.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, cast

from flask import current_app, has_app_context
from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    Table,
    bindparam,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from desk.db import SessionLike, end_reads
from desk.domain.events import CallEvent, Parsed
from desk.domain.state import merge
from desk.live.changes import AGENTS, CALLS, mark_changed
from desk.models import Call, Delivery, User, utcnow
from desk.services.queries import LIKE_ESCAPE, escape_like
from desk.services.wrapup import start_wrap_up

_ATTEMPTS = 4
_BUSY_ATTEMPTS = 2
# PostgreSQL's "deadlock detected" and "could not serialize": this transaction lost to a
# concurrent one, which goes on; starting over then succeeds, like after IntegrityError.
_LOST_RACE = frozenset({"40P01", "40001"})


@dataclass(frozen=True)
class IngestResult:
    status: str  # "applied" or "duplicate"
    call_ids: tuple[int, ...]


def find_agent(session: Session, answered_by: str | None) -> User | None:
    """The agent a provider's answering party names: SIP peer (any case, with or without a
    ``sip:`` prefix), the peer's user part alone (mediaservice sends ``agent101`` for
    ``agent101@pbx``), Stringee user id or extension."""
    found = find_agent_id(session, answered_by)
    return session.get(User, found) if found is not None else None


def find_agent_id(session: SessionLike, answered_by: str | None) -> int | None:
    """``find_agent``'s user id, read without loading the user: one statement built once,
    as every answer and every hang-up of an unattributed call asks."""
    if not answered_by:
        return None
    value = answered_by.strip()
    peer = value.lower().removeprefix("sips:").removeprefix("sip:")
    statement = _AGENT_BY_PEER if "@" in peer else _AGENT_BY_PEER_OR_USER_PART
    found = session.connection().execute(statement, {
        "b_peer": peer, "b_value": value, "b_user_part": escape_like(peer) + "@%",
    }).scalar()
    return int(found) if found is not None else None


def _agent_by(*extra: ColumnElement[bool]) -> Select[Any]:
    users = cast(Table, User.__table__)
    return (select(users.c.id)
            .where(or_(func.lower(users.c.sip_peer) == bindparam("b_peer"),
                       users.c.stringee_user_id == bindparam("b_value"),
                       users.c.extension == bindparam("b_value"), *extra))
            .order_by(users.c.id).limit(1))


# Who the answering party is, for a value with a host part and for one without.
_AGENT_BY_PEER = _agent_by()
_AGENT_BY_PEER_OR_USER_PART = _agent_by(
    func.lower(cast(Table, User.__table__).c.sip_peer)
    .like(bindparam("b_user_part"), escape=LIKE_ESCAPE))


@dataclass
class CallState:
    """The columns of a call that ingestion reads and ``merge`` writes (``CallRow``)."""

    id: int | None
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
    agent_id: int | None


_STATE_FIELDS = tuple(f.name for f in fields(CallState) if f.name != "id")
_CALLS = cast(Table, Call.__table__)
_DELIVERIES = cast(Table, Delivery.__table__)

# The hot path's statements, built once: building and hashing a statement per delivery cost
# as much as running it. Values come as parameters; an INSERT or UPDATE writes the columns
# its parameters name.
_SELECT_CALL = (
    select(_CALLS.c.id, *(_CALLS.c[name] for name in _STATE_FIELDS))
    .where(_CALLS.c.provider == bindparam("b_provider"),
           _CALLS.c.provider_call_id == bindparam("b_ref"))
    .with_for_update()
)
_SELECT_CALL_ID = select(_CALLS.c.id).where(_CALLS.c.provider == bindparam("b_provider"),
                                            _CALLS.c.provider_call_id == bindparam("b_ref"))
_INSERT_CALL = insert(_CALLS).returning(_CALLS.c.id)
_UPDATE_CALL = update(_CALLS).where(_CALLS.c.id == bindparam("b_id"))
_INSERT_DELIVERY = insert(_DELIVERIES)
_FILE_DELIVERY = (update(_DELIVERIES).where(_DELIVERIES.c.id == bindparam("b_id"))
                  .values(call_id=bindparam("b_call")))
# A delivery is filed under its call in the INSERT itself when the call exists already (a
# scalar subquery): no UPDATE afterwards for all but a call's first delivery.
_CALL_NAMED = _SELECT_CALL_ID.scalar_subquery()
_INSERT_DELIVERY_UNLESS_TAKEN = {
    module.__name__.rsplit(".", 1)[-1]: module.insert(_DELIVERIES).values(call_id=_CALL_NAMED)
    .on_conflict_do_nothing().returning(_DELIVERIES.c.id, _DELIVERIES.c.call_id)
    for module in (postgresql, sqlite)
}
_INSERT_DUPLICATE = (insert(_DELIVERIES).values(call_id=_CALL_NAMED)
                     .returning(_DELIVERIES.c.call_id))


def _load_call(conn: Connection, event: CallEvent, absent: bool = False) -> CallState:
    """The call's columns, locked (PostgreSQL) until the commit; a blank state for a call
    not seen yet (``merge`` decides it from the event, as for any other event).

    ``absent``: the delivery's own INSERT has just looked the call up and found none, so
    it is not read again. A concurrent creator then makes the INSERT of the call fail with
    IntegrityError, as after a read that found nothing (``_store_call``).
    """
    row = None if absent else conn.execute(
        _SELECT_CALL, {"b_provider": event.provider, "b_ref": event.provider_call_id}
    ).first()
    if row is None:
        blank: dict[str, Any] = dict.fromkeys(_STATE_FIELDS)
        return CallState(id=None, **{**blank, "version": 0})
    return CallState(*row)


def _store_call(conn: Connection, event: CallEvent, before: dict[str, Any],
                call: CallState) -> int:
    """Write what changed: an INSERT for a new call (a concurrent creator makes it fail
    with IntegrityError, and ``ingest`` starts over), else one UPDATE; the call's id."""
    now = utcnow()
    if call.id is None:
        values = {name: getattr(call, name) for name in _STATE_FIELDS}
        new_id = conn.execute(_INSERT_CALL, {
            "provider": event.provider, "provider_call_id": event.provider_call_id,
            "provider_facts": {}, "updated_at": now, **values,
        }).scalar_one()
        return int(new_id)
    changed = {name: getattr(call, name) for name in _STATE_FIELDS
               if getattr(call, name) != before[name]}
    conn.execute(_UPDATE_CALL, {"b_id": call.id, "updated_at": now, **changed})
    return call.id


def _insert_unless_taken(conn: Connection, values: Mapping[str, Any],
                         call: tuple[str, str | None]) -> tuple[int, int | None] | None:
    """Insert a delivery unless its ``applied_key`` is taken, filed under the ``call``
    (provider, call reference) if that exists; (its id, the call's id), or None when taken."""
    statement = _INSERT_DELIVERY_UNLESS_TAKEN[
        "postgresql" if conn.dialect.name == "postgresql" else "sqlite"]
    found = conn.execute(statement, {**values, "b_provider": call[0], "b_ref": call[1]}).first()
    return (int(found[0]), found[1]) if found is not None else None


def _config() -> Mapping[str, Any]:
    """The app's settings when there is an app (always, in a server or a CLI command)."""
    return current_app.config if has_app_context() else {}


def storable(text: str) -> str:
    """``text`` as the database can keep it: NUL, which PostgreSQL refuses in text, as the
    four characters ``\\x00``."""
    return text.replace("\x00", "\\x00")


def _fit(text: object, size: int) -> str | None:
    """A log field escaped and cut to its column (``size`` characters), or None."""
    return storable(str(text))[:size] if text is not None else None


def _log(
    provider: str, parsed: Parsed | None, payload: str, content_type: str | None, **extra: object
) -> dict[str, Any]:
    """A delivery's row for the event log, as column values."""
    kind = parsed.kind if parsed else extra.pop("kind", None)
    call_ref = parsed.provider_call_id if parsed else extra.pop("call_ref", None)
    if isinstance(extra.get("error"), str):
        extra["error"] = storable(str(extra["error"]))
    return {
        "provider": provider,
        "kind": _fit(kind, 64),
        "provider_call_id": _fit(call_ref, 255),
        "dedupe_key": parsed.dedupe_key if parsed else None,
        "content_type": _fit(content_type, 255),
        "payload": storable(payload),
        "received_at": utcnow(),
        **extra,
    }


@dataclass
class Logged:
    """The delivery being applied, as a fold sees it: its id in the event log, the call it
    is filed under (a fold may set ``call_id``; it is stored before the commit), and whether
    this delivery created that call (its ``provider_facts`` are still empty)."""

    id: int
    call_id: int | None
    new_call: bool = False


Fold = Callable[[Session, Logged], None]
"""Provider-specific work done inside the same transaction after the events are applied
(e.g. keeping mediaservice's replyId on the call). Not called for duplicates."""


def ingest(
    session: Session, provider: str, parsed: Parsed, payload: str, content_type: str | None,
    fold: Fold | None = None,
) -> IngestResult:
    """Log the delivery and, unless it is a duplicate, apply its events; one transaction.

    Another process creating the same call (IntegrityError), or holding what this one
    waits for while waiting for what this one holds (PostgreSQL's deadlock detected: two
    workers' group commits, each with deliveries of one call), is tried again up to
    ``_ATTEMPTS`` times; a busy or unreachable database (any other OperationalError) once
    more only: SQLite has already waited its busy timeout (10 s) each time, and the request
    must be answered (503, send again) before gunicorn's 30 s worker timeout kills it."""
    busy = 0
    for attempt in range(_ATTEMPTS):
        try:
            return _ingest_once(session, provider, parsed, payload, content_type, fold)
        except (IntegrityError, OperationalError) as exc:
            # Start over; the dedupe key makes the retry safe.
            session.rollback()
            busy += isinstance(exc, OperationalError) and not lost_race(exc)
            if attempt == _ATTEMPTS - 1 or busy == _BUSY_ATTEMPTS:
                raise
    raise AssertionError("unreachable")


def lost_race(exc: Exception) -> bool:
    """Whether ``exc`` is PostgreSQL aborting this transaction for a concurrent one's sake
    (deadlock, serialization failure): worth starting over at once."""
    return getattr(getattr(exc, "orig", None), "sqlstate", None) in _LOST_RACE


_LOCK_CALLS = text("SELECT pg_advisory_xact_lock(k) FROM unnest(CAST(:keys AS bigint[])) AS k")


def call_lock_key(provider: str, provider_call_id: str) -> int:
    """The advisory lock key of one call: 64 bits of a hash of what names it."""
    digest = hashlib.blake2b(f"{provider}\0{provider_call_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def lock_calls(conn: Connection, deliveries: Iterable[Parsed]) -> None:
    """PostgreSQL: take, first thing in the transaction and in one statement, the
    transaction-scoped advisory lock of every call these deliveries name, in one order
    for every transaction (their keys, sorted).

    Two workers' group commits each holding deliveries of the same calls took the calls'
    row locks in their own delivery order, so each could hold a call the other waited for:
    PostgreSQL found the deadlock after ``deadlock_timeout`` (1 s) and aborted one, which
    started over (``ingest``). With these locks a transaction waits for another's calls
    before it holds any, and calls not created yet are covered too. SQLite has one writer.
    """
    if conn.dialect.name != "postgresql":
        return
    keys = sorted({call_lock_key(event.provider, event.provider_call_id)
                   for parsed in deliveries for event in parsed.events})
    if keys:  # unnest keeps the array's order: the locks are taken in it
        conn.execute(_LOCK_CALLS, {"keys": keys})


def _ingest_once(
    session: Session, provider: str, parsed: Parsed, payload: str, content_type: str | None,
    fold: Fold | None,
) -> IngestResult:
    with session.begin():
        lock_calls(session.connection(), [parsed])
        return apply_in(session, provider, parsed, payload, content_type, fold)


def apply_in(
    session: Session, provider: str, parsed: Parsed, payload: str, content_type: str | None,
    fold: Fold | None = None,
) -> IngestResult:
    """Log the delivery and apply its events in the session's open transaction; the caller
    commits (``ingest``, or ``desk.services.group_commit`` for a batch of deliveries)."""
    conn = session.connection()  # Core, on the session's transaction
    first = parsed.events[0] if parsed.events else None
    inserted = _insert_unless_taken(conn, _log(
        provider, parsed, payload, content_type,
        status="applied", applied_key=f"{provider}:{parsed.dedupe_key}",
    ), (first.provider, first.provider_call_id) if first else (provider, None))
    if inserted is None:
        existing = conn.execute(_INSERT_DUPLICATE, {
            **_log(provider, parsed, payload, content_type, status="duplicate"),
            "b_provider": provider, "b_ref": parsed.provider_call_id,
        }).scalar()
        return IngestResult("duplicate", (existing,) if existing else ())
    delivery_id, filed = inserted

    touched: list[int] = []
    created: set[int] = set()
    config = _config()
    for index, event in enumerate(parsed.events):
        # The first event's call was looked up by the delivery's INSERT (``filed``).
        call = _load_call(conn, event, absent=index == 0 and filed is None)
        new = call.id is None
        before = {name: getattr(call, name) for name in _STATE_FIELDS}
        was_live = call.state != "ended"
        merge(call, event)
        if call.agent_id is None and call.answered_by:
            call.agent_id = find_agent_id(session, call.answered_by)
        call.id = _store_call(conn, event, before, call)
        if new:
            created.add(call.id)
        if was_live and call.state == "ended":
            start_wrap_up(session, call, config)
        mark_changed(session, CALLS, call.id)
        if call.agent_id:  # the agent's tile shows its current call
            mark_changed(session, AGENTS, call.agent_id)
        touched.append(call.id)
    logged = Logged(delivery_id, touched[0] if touched else None,
                    new_call=bool(touched) and touched[0] in created)
    if fold is not None:
        fold(session, logged)
        session.flush()
    if logged.call_id is not None and logged.call_id != filed:
        conn.execute(_FILE_DELIVERY, {"b_id": delivery_id, "b_call": logged.call_id})
    return IngestResult("applied", tuple(touched))


def record_rejected(
    session: Session,
    provider: str,
    payload: str,
    content_type: str | None,
    error: str,
    kind: str | None = None,
    call_ref: str | None = None,
) -> None:
    """Keep a delivery we could not understand, with the reason, for diagnosis."""
    with session.begin():
        session.connection().execute(_INSERT_DELIVERY, _log(
            provider, None, payload, content_type,
            status="rejected", error=error,
            kind=kind or None, call_ref=call_ref or None,  # _log escapes and cuts them
        ))


def start_outbound(
    session: Session,
    *,
    provider: str,
    provider_call_id: str,
    agent_id: int | None,
    from_number: str | None,
    to_number: str,
    outbound_id: str | None = None,
) -> Call | None:
    """Create the row for a call the desk is about to place, in state "dialling".

    Returns None when a call with that provider id exists already (a double submit, or a
    reference used before): the caller must not place the call again. Commits, so the row
    is on every board before the provider is even asked.
    """
    end_reads(session)  # SQLite: a transaction that has read cannot wait for the write lock
    call = Call(
        provider=provider, provider_call_id=provider_call_id, agent_id=agent_id,
        outbound_id=outbound_id, version=0, provider_facts={},
    )
    # The desk's own "dialling" event, folded like any provider's: ``merge`` alone sets state.
    merge(call, CallEvent(provider=provider, provider_call_id=provider_call_id, kind="dialling",
                          at=utcnow(), direction="outbound", from_number=from_number,
                          to_number=to_number))
    try:
        with session.begin_nested():
            session.add(call)
    except IntegrityError:
        session.rollback()
        return None
    mark_changed(session, CALLS, call.id)
    if agent_id:
        mark_changed(session, AGENTS, agent_id)
    session.commit()
    return call


def attribute_to(agent_ref: str) -> Fold:
    """A fold that puts the delivery's call on the agent ``agent_ref`` names (a SIP user, an
    extension, a Stringee user id): for a call the agent places, which is theirs from its
    first event, while the state machine takes "answered_by" only from an answer or the end."""

    def fold(session: Session, delivery: Logged) -> None:
        if delivery.call_id is None:
            return
        agent_id = find_agent_id(session, agent_ref)
        values: dict[str, Any] = {
            "answered_by": func.coalesce(_CALLS.c.answered_by, agent_ref),
        }
        if agent_id is not None:
            values["agent_id"] = func.coalesce(_CALLS.c.agent_id, agent_id)
        changed = session.execute(
            update(_CALLS).where(_CALLS.c.id == delivery.call_id).values(**values)
            .returning(_CALLS.c.agent_id)
        ).scalar()
        if changed is not None:
            mark_changed(session, AGENTS, int(changed))

    return fold
