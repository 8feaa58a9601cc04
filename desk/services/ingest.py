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

The log keeps whatever came, also what no parser understood: text fields pass through
``storable`` (NUL written as ``\\x00``, which PostgreSQL could not store) and are cut to
their columns' sizes, so recording a rejected delivery cannot itself fail.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from flask import current_app, has_app_context
from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, lazyload

from desk.db import end_reads
from desk.domain.events import CallEvent, Parsed
from desk.domain.state import merge
from desk.live.changes import AGENTS, CALLS, mark_changed
from desk.models import Call, Delivery, User, utcnow
from desk.services.queries import LIKE_ESCAPE, escape_like
from desk.services.wrapup import start_wrap_up

_ATTEMPTS = 4


@dataclass(frozen=True)
class IngestResult:
    status: str  # "applied" or "duplicate"
    call_ids: tuple[int, ...]


def find_agent(session: Session, answered_by: str | None) -> User | None:
    """The agent a provider's answering party names: SIP peer (any case, with or without a
    ``sip:`` prefix), the peer's user part alone (mediaservice sends ``agent101`` for
    ``agent101@pbx``), Stringee user id or extension."""
    if not answered_by:
        return None
    value = answered_by.strip()
    peer = value.lower().removeprefix("sips:").removeprefix("sip:")
    matches = [
        func.lower(User.sip_peer) == peer,
        User.stringee_user_id == value,
        User.extension == value,
    ]
    if "@" not in peer:
        matches.append(func.lower(User.sip_peer).like(escape_like(peer) + "@%", escape=LIKE_ESCAPE))
    return session.scalars(
        select(User)
        .where(or_(*matches))
        .order_by(User.id)
        .limit(1)
    ).first()


def _call_for(session: Session, event: CallEvent) -> Call:
    call = session.scalars(
        select(Call)
        .where(Call.provider == event.provider, Call.provider_call_id == event.provider_call_id)
        .options(lazyload(Call.agent))  # PostgreSQL can't lock the nullable side of a join
        .with_for_update(of=Call)
    ).first()
    if call is None:
        # No state yet: ``merge`` decides it from the event, as for any other event.
        call = Call(provider=event.provider, provider_call_id=event.provider_call_id, version=0)
        session.add(call)
    return call


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
    provider: str, parsed: Parsed | None, payload: str, content_type: str | None, **fields: object
) -> Delivery:
    kind = parsed.kind if parsed else fields.pop("kind", None)
    call_ref = parsed.provider_call_id if parsed else fields.pop("call_ref", None)
    if isinstance(fields.get("error"), str):
        fields["error"] = storable(str(fields["error"]))
    return Delivery(
        provider=provider,
        kind=_fit(kind, 64),
        provider_call_id=_fit(call_ref, 255),
        dedupe_key=parsed.dedupe_key if parsed else None,
        content_type=_fit(content_type, 255),
        payload=storable(payload),
        received_at=utcnow(),
        **fields,
    )


Fold = Callable[[Session, Delivery], None]
"""Provider-specific work done inside the same transaction after the events are applied
(e.g. keeping mediaservice's replyId on the call). Not called for duplicates."""


def ingest(
    session: Session, provider: str, parsed: Parsed, payload: str, content_type: str | None,
    fold: Fold | None = None,
) -> IngestResult:
    """Log the delivery and, unless it is a duplicate, apply its events; one transaction."""
    for attempt in range(_ATTEMPTS):
        try:
            return _ingest_once(session, provider, parsed, payload, content_type, fold)
        except (IntegrityError, OperationalError):
            # Another process created the same call, or SQLite was busy: start over; the
            # dedupe key makes the retry safe.
            session.rollback()
            if attempt == _ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def _ingest_once(
    session: Session, provider: str, parsed: Parsed, payload: str, content_type: str | None,
    fold: Fold | None,
) -> IngestResult:
    with session.begin():
        delivery = _log(
            provider, parsed, payload, content_type,
            status="applied", applied_key=f"{provider}:{parsed.dedupe_key}",
        )
        try:
            with session.begin_nested():
                session.add(delivery)
        except IntegrityError:
            existing = session.scalars(
                select(Call.id).where(
                    Call.provider == provider, Call.provider_call_id == parsed.provider_call_id
                )
            ).first()
            session.add(
                _log(provider, parsed, payload, content_type, status="duplicate", call_id=existing)
            )
            return IngestResult("duplicate", (existing,) if existing else ())

        touched: list[Call] = []
        for event in parsed.events:
            call = _call_for(session, event)
            was_live = call.state != "ended"
            merge(call, event)
            if call.agent_id is None and call.answered_by:
                call.agent = find_agent(session, call.answered_by)
            session.flush()
            if was_live and call.state == "ended":
                start_wrap_up(session, call, _config())
            mark_changed(session, CALLS, call.id)
            if call.agent_id:  # the agent's tile shows its current call
                mark_changed(session, AGENTS, call.agent_id)
            touched.append(call)
        if touched:
            delivery.call_id = touched[0].id
        if fold is not None:
            fold(session, delivery)
        return IngestResult("applied", tuple(c.id for c in touched))


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
        session.add(
            _log(
                provider, None, payload, content_type,
                status="rejected", error=error,
                kind=kind or None, call_ref=call_ref or None,  # _log escapes and cuts them
            )
        )


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

    def fold(session: Session, delivery: Delivery) -> None:
        call = session.get(Call, delivery.call_id) if delivery.call_id else None
        if call is None:
            return
        call.answered_by = call.answered_by or agent_ref
        if call.agent_id is None:
            agent = find_agent(session, agent_ref)
            if agent is not None:
                call.agent = agent
                mark_changed(session, AGENTS, agent.id)
        session.flush()

    return fold
