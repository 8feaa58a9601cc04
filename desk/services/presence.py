"""Agent presence: the one function that changes it, so every path publishes the change."""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.orm import Session, scoped_session

from desk.db import end_reads
from desk.live.changes import AGENTS, mark_changed
from desk.models import PRESENCES, User, utcnow


def set_presence(session: Session | scoped_session[Session], user_id: int,
                 presence: str) -> None:
    """Store a presence and publish it to boards after the commit.

    The UPDATE starts a fresh transaction (``end_reads``), so on SQLite it waits for the
    write lock instead of failing when another request wrote meanwhile.
    """
    if presence not in PRESENCES:
        raise ValueError(f"unknown presence {presence!r}")
    end_reads(session)
    session.execute(
        update(User).where(User.id == user_id)
        .values(presence=presence, presence_since=utcnow(), presence_until=None)
    )
    mark_changed(session, AGENTS, user_id)
    session.commit()
