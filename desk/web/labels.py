"""The words a page shows for the desk's own values: call states, outcomes, end causes,
presences, directions. Stored values stay English codes (``ringing``, ``missed``); only what a
person reads is translated, when the page is rendered, in the reader's language.

Templates call ``label("state", call.state)``; a value with no label here shows as stored.
"""

from __future__ import annotations

from flask import Flask
from flask_babel import LazyString, lazy_gettext

LABELS: dict[str, dict[str, LazyString]] = {
    "state": {
        "dialling": lazy_gettext("Dialling"),
        "ringing": lazy_gettext("Ringing"),
        "talking": lazy_gettext("Talking"),
        "ended": lazy_gettext("Ended"),
    },
    # desk.domain.outcomes.OUTCOMES: how a call went.
    "outcome": {
        "answered": lazy_gettext("Answered"),
        "missed": lazy_gettext("Missed"),
        "unanswered": lazy_gettext("Unanswered"),
        "voicemail": lazy_gettext("Voicemail"),
        "busy": lazy_gettext("Busy"),
        "rejected": lazy_gettext("Rejected"),
        "blocked": lazy_gettext("Blocked"),
        "failed": lazy_gettext("Failed"),
        "cancelled": lazy_gettext("Cancelled"),
        "unavailable": lazy_gettext("Unavailable"),
        "congestion": lazy_gettext("Network busy"),
        "ringing": lazy_gettext("Ringing"),
        "talking": lazy_gettext("Talking"),
        "dialling": lazy_gettext("Dialling"),
    },
    # Call.end_cause values the desk itself sets or providers send, as a page explains them.
    "end_cause": {
        "no_end_event": lazy_gettext("no end event received"),
        "closed_by_supervisor": lazy_gettext("closed by a supervisor"),
        "no_answer": lazy_gettext("no answer"),
        "hangup": lazy_gettext("hung up"),
        "normal": lazy_gettext("hung up"),
        "voicemail": lazy_gettext("voicemail"),
        "missed": lazy_gettext("missed"),
        "blocked": lazy_gettext("blocked"),
        "busy": lazy_gettext("busy"),
        "rejected": lazy_gettext("rejected"),
        "failed": lazy_gettext("failed"),
        "cancelled": lazy_gettext("cancelled"),
        "unavailable": lazy_gettext("unavailable"),
        "congestion": lazy_gettext("network busy"),
    },
    # desk.models.PRESENCES
    "presence": {
        "available": lazy_gettext("Available"),
        "away": lazy_gettext("Away"),
        "wrap-up": lazy_gettext("Wrap-up"),
        "offline": lazy_gettext("Offline"),
    },
    "direction": {
        "inbound": lazy_gettext("inbound"),
        "outbound": lazy_gettext("outbound"),
    },
    "role": {
        "agent": lazy_gettext("agent"),
        "supervisor": lazy_gettext("supervisor"),
    },
}


def label(kind: str, value: str | None) -> str:
    """What a person reads for ``value`` of ``kind`` ("state", "outcome", ...)."""
    if value is None:
        return ""
    text = LABELS.get(kind, {}).get(value)
    return str(text) if text is not None else value


def register_labels(app: Flask) -> None:
    app.add_template_global(label, "label")
