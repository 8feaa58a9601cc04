"""Read-side queries shared by the pages, the websocket snapshot and the JSON API.

Each returns plain model objects with what the templates need already loaded (a call's
agent is joined), so rendering a board never issues a query per row. What a person may see
is narrowed by ``desk.services.visibility``, never here by hand. Text a person typed
goes into ``LIKE`` only through ``escape_like``, so ``%`` and ``_`` match themselves.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key
from sqlalchemy.sql.elements import ColumnElement

from desk.models import LIVE_STATES, Alert, Call, User
from desk.services.visibility import visible_calls

LIKE_ESCAPE = "\\"


def escape_like(text: str) -> str:
    """``text`` as a literal inside a ``LIKE`` pattern used with ``escape=LIKE_ESCAPE``."""
    return (text.replace(LIKE_ESCAPE, LIKE_ESCAPE * 2)
            .replace("%", LIKE_ESCAPE + "%").replace("_", LIKE_ESCAPE + "_"))


def number_contains(text: str) -> ColumnElement[bool]:
    """The calling or the called number contains ``text`` (as typed: no wildcards)."""
    pattern = f"%{escape_like(text)}%"
    return or_(Call.from_number.like(pattern, escape=LIKE_ESCAPE),
               Call.to_number.like(pattern, escape=LIKE_ESCAPE))


def live_calls(session: Session) -> Sequence[Call]:
    return session.scalars(
        select(Call).where(Call.state.in_(LIVE_STATES)).order_by(Call.started_at.desc(), Call.id)
    ).unique().all()


def recent_ended(session: Session, limit: int, viewer: User) -> Sequence[Call]:
    """The newest ended calls ``viewer`` may see (``desk.services.visibility``): an agent's
    board lists no other agent's ended calls."""
    query = select(Call).where(Call.state == "ended")
    return session.scalars(
        visible_calls(viewer, query).order_by(Call.ended_at.desc(), Call.id.desc()).limit(limit)
    ).unique().all()


def calls_by_id(session: Session, ids: Iterable[int]) -> Sequence[Call]:
    ids = list(ids)
    if not ids:
        return []
    return session.scalars(select(Call).where(Call.id.in_(ids)).order_by(Call.id)).unique().all()


def people(session: Session, ids: Iterable[int] | None = None) -> Sequence[User]:
    query = select(User).order_by(User.role, User.name)
    if ids is not None:
        query = query.where(User.id.in_(list(ids)))
    return session.scalars(query).all()


def current_calls(session: Session, agent_ids: Iterable[int] | None = None) -> dict[int, Call]:
    """Each agent's current live call (the newest), keyed by agent id.

    The agents' live calls are scanned as bare ``(agent, id)`` rows and only the newest of
    each is loaded as a ``Call``: an agent may hold many live calls (a queue, or calls
    whose end never came), and every board push asks for the agents it names. Calls the
    session already holds (those a push has just loaded) come from its identity map.
    """
    query = select(Call.agent_id, Call.id).where(Call.state.in_(LIVE_STATES),
                                                 Call.agent_id.is_not(None))
    if agent_ids is not None:
        query = query.where(Call.agent_id.in_(list(agent_ids)))
    newest: dict[int, int] = {}
    for agent_id, call_id in session.execute(query.order_by(Call.started_at, Call.id)):
        if agent_id is not None:  # always, by the query; this tells the type checker
            newest[agent_id] = call_id  # newest wins
    held: dict[int, Call] = {}
    for call_id in newest.values():
        call = session.identity_map.get(identity_key(Call, call_id))
        if isinstance(call, Call):
            held[call_id] = call
    missing = [call_id for call_id in newest.values() if call_id not in held]
    held.update((call.id, call) for call in calls_by_id(session, missing))
    return {agent_id: held[call_id] for agent_id, call_id in newest.items()
            if call_id in held}  # (a call deleted in between is left out)


def state_counts(session: Session) -> dict[str, int]:
    """Live calls per state, every state present (0 when none)."""
    rows = session.execute(
        select(Call.state, func.count()).where(Call.state.in_(LIVE_STATES)).group_by(Call.state)
    ).all()
    counts = dict.fromkeys(LIVE_STATES, 0)
    counts.update({state: n for state, n in rows})
    return counts


def open_alerts(session: Session, limit: int = 20) -> Sequence[Alert]:
    """Alerts nobody has acknowledged yet, newest first."""
    return session.scalars(
        select(Alert).where(Alert.acknowledged_at.is_(None)).order_by(Alert.id.desc())
        .limit(limit)
    ).all()
