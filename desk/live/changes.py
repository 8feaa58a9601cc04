"""What a transaction changed, collected on the session and handed over after commit.

Services call ``mark_changed(session, CALLS, call.id)`` while they write; ``desk.db`` hands
the collection to the live hub only once the commit has succeeded (and drops it on
rollback), so no board ever shows a state that was rolled back. Imports nothing of the desk.
"""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy.orm import Session, scoped_session


class Kind(StrEnum):
    """What can change: a call row, an agent's presence, the open alerts."""

    CALLS = "calls"
    AGENTS = "agents"
    ALERTS = "alerts"


CALLS, AGENTS, ALERTS = Kind.CALLS, Kind.AGENTS, Kind.ALERTS

Changes = dict[str, set[int]]
"""What a transaction changed, by kind: {"calls": {ids}, "agents": {ids}}."""

_KEY = "desk_changes"


def mark_changed(session: Session | scoped_session[Session], kind: Kind, ident: int) -> None:
    """Remember that ``ident`` of ``kind`` changed; it is published after commit."""
    info = session.info  # a scoped_session proxies .info to the current session
    changes: Changes = info.setdefault(_KEY, {})
    changes.setdefault(str(kind), set()).add(ident)


def peek(session: Session) -> Changes:
    """What the session has marked so far, left in place (to number it before the commit)."""
    marked: Changes = session.info.get(_KEY, {})
    return marked


def collect(session: Session) -> Changes:
    """Take what the session marked (after a commit), leaving nothing behind."""
    changes: Changes = session.info.pop(_KEY, {})
    return changes


def discard(session: Session) -> None:
    """Forget what the session marked (after a rollback: none of it happened)."""
    session.info.pop(_KEY, None)
