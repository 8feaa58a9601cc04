"""The audit log: every agent action that reaches a provider, with the provider's answer.

``record`` adds the entry to the caller's session and transaction, so an action and its
audit entry commit together. Outcomes: ``ok`` (the provider accepted), ``refused`` (it said
no), ``error`` (timed out, unreachable, or answered something we could not read),
``invalid`` (the desk refused the input before calling anyone). Entries keep these English
codes; the audit page shows them in its reader's language (the outcomes and the buttons'
actions as ``desk.services.actions`` names them, the actions only the log has as
``ACTION_LABELS`` says).
"""

from __future__ import annotations

import json
from typing import Any

from flask_babel import LazyString, lazy_gettext
from sqlalchemy.orm import Session

from desk.models import AuditEntry

OUTCOMES = ("ok", "refused", "error", "invalid")
ACTION_LABELS: dict[str, LazyString] = {
    "routing.update": lazy_gettext("Save routing"),
    "dispositions": lazy_gettext("Save dispositions"),
    "auto-close": lazy_gettext("Close a silent call"),
    "pending-expired": lazy_gettext("Clear an unconfirmed action"),
}
"""What the audit page calls the actions no button names (``desk.services.actions.ACTION_NAMES``
has the buttons'): the desk's own sweeps and the supervisors' settings."""


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
