"""Agent presence: the one function that changes it, so every path publishes the change."""

from __future__ import annotations

from sqlalchemy import update

from desk.db import end_reads
from desk.extensions import db
from desk.live.changes import mark_changed
from desk.models import PRESENCES, User, utcnow


def set_presence(user_id: int, presence: str) -> None:
    """Store a presence and publish it to boards after the commit.

    The UPDATE starts a fresh transaction (``end_reads``), so on SQLite it waits for the
    write lock instead of failing when another request wrote meanwhile.
    """
    if presence not in PRESENCES:
        raise ValueError(f"unknown presence {presence!r}")
    session = db.session
    end_reads(session)
    session.execute(
        update(User).where(User.id == user_id).values(presence=presence, presence_since=utcnow())
    )
    mark_changed(session, "agents", user_id)
    session.commit()
