"""The audit log: every agent action that reaches a provider, with the provider's answer.

``record`` adds the entry to the caller's session and transaction, so an action and its
audit entry commit together. Outcomes: ``ok`` (the provider accepted), ``refused`` (it said
no), ``error`` (timed out, unreachable, or answered something we could not read),
``invalid`` (the desk refused the input before calling anyone).
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy.orm import Session

from desk.models import AuditEntry

OUTCOMES = ("ok", "refused", "error", "invalid")


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value[:20000]
    return json.dumps(value, default=str, ensure_ascii=False)[:20000]


def record(
    session: Session,
    *,
    user_id: int | None,
    action: str,
    outcome: str,
    call_id: int | None = None,
    detail: Any = None,
    provider_answer: Any = None,
) -> AuditEntry:
    """Add one audit entry to ``session`` (the caller commits)."""
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown audit outcome {outcome!r}")
    entry = AuditEntry(
        user_id=user_id, call_id=call_id, action=action, outcome=outcome,
        detail=_text(detail), provider_answer=_text(provider_answer),
    )
    session.add(entry)
    return entry
