"""The durable live change sequence: numbering committed changes and reading them back.

``record`` runs inside the committing transaction (``desk.db`` calls it just before the
commit) and stores what the transaction marked as changed under the next ``seq``; if the
commit fails, the row goes with it. ``since`` is how a server process catches up: the rows
after the last number it saw, plus the numbers it is still missing (a transaction that took
its number first and committed later, or a message Redis lost). ``prune`` keeps the table
short. The hub (``desk.live.hub``) decides when to read; this module only knows the table.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Table, delete, func, insert, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from desk.live.changes import Changes
from desk.models import LiveChange, utcnow

Numbered = list[tuple[int, Changes]]
"""(seq, changes) pairs in ``seq`` order."""

_INSERT = insert(cast(Table, LiveChange.__table__))  # built once: it runs on every commit


def record(session: Session, changes: Changes) -> int:
    """Store ``changes`` in the session's transaction; the number it was given."""
    payload = {kind: sorted(ids) for kind, ids in changes.items() if ids}
    result = session.connection().execute(
        _INSERT, {"changes": payload, "committed_at": utcnow()}
    )
    seq = result.inserted_primary_key[0] if result.inserted_primary_key else None
    if seq is None:  # every dialect the desk supports reports it; never guess a number
        raise RuntimeError("the live change sequence did not return its number")
    return int(seq)


def latest(engine: Engine) -> int:
    """The highest number committed so far (0 for an empty table)."""
    with engine.connect() as conn:
        return int(conn.execute(select(func.coalesce(func.max(LiveChange.seq), 0))).scalar_one())


def since(engine: Engine, after: int, missing: Iterable[int] = (), limit: int = 500) -> Numbered:
    """Committed changes numbered above ``after`` (at most ``limit``), and those of the
    ``missing`` numbers that have committed meanwhile; in ``seq`` order."""
    wanted: Sequence[int] = sorted(missing)
    rows: list[tuple[int, object]] = []
    with engine.connect() as conn:
        for start in range(0, len(wanted), limit):
            rows += [(seq, payload) for seq, payload in conn.execute(
                select(LiveChange.seq, LiveChange.changes)
                .where(LiveChange.seq.in_(wanted[start:start + limit]))
            )]
        rows += [(seq, payload) for seq, payload in conn.execute(
            select(LiveChange.seq, LiveChange.changes)
            .where(LiveChange.seq > after).order_by(LiveChange.seq).limit(limit)
        )]
    return [(seq, _decode(payload)) for seq, payload in sorted(rows, key=lambda r: r[0])]


def prune(session: Session, older_than: timedelta, now: datetime | None = None) -> int:
    """Delete rows committed more than ``older_than`` ago; how many went. Commits."""
    cutoff = (now or utcnow()) - older_than
    result = session.execute(delete(LiveChange).where(LiveChange.committed_at < cutoff))
    session.commit()
    return int(getattr(result, "rowcount", 0) or 0)


def _decode(payload: object) -> Changes:
    if not isinstance(payload, dict):
        return {}
    return {str(kind): {int(i) for i in ids} for kind, ids in payload.items()
            if isinstance(ids, list)}
