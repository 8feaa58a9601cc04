"""A call's buttons (htmx), its detail page with the event timeline, recording playback.

Besides the provider's buttons, supervisors have **Close call** on every live call: the desk
ends it itself when the provider will not (``desk.services.sweeper``).

A recording paused and resumed is several files: the page lists them in order with the
paused spans between, and ``/calls/<id>/recording?part=N`` plays segment N
(``desk.services.recording``). The callbacks of a supervisor's monitoring leg (event kinds
ending ``:monitoring``) are left out of the timeline for agents unless
``DESK_LISTEN_IN_SHOWN_TO_AGENT`` is on.

The page holds the websocket like the boards: its row, counters and live indicator follow
every change (``static/board/desk.js``).

Buttons answer with the call's row as this person sees it (the websocket pushes the same
change to everyone else). A refusal by the desk (not yours, wrong state, already pending)
is a 4xx whose text desk.js shows; a refusal by the provider is shown inline on the row.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import abort, current_app, redirect, render_template, request
from flask.typing import ResponseReturnValue
from flask_babel import LazyString, gettext, lazy_gettext
from flask_login import current_user, login_required
from sqlalchemy import select
from sqlalchemy.orm import Session

from desk.extensions import db, hub
from desk.live.render import row_for
from desk.models import AuditEntry, Delivery, User
from desk.services import actions, queries, recording
from desk.services.visibility import load_visible
from desk.web import bp


def _act(outcome_of: Callable[[], actions.Outcome]) -> str:
    try:
        outcome = outcome_of()
    except actions.ActionRefused as exc:
        abort(exc.status, exc.message)
    return row_for(current_user, outcome.call)


def _who(call_id: int) -> tuple[Session, User, int]:
    """The arguments every action starts with: this request's session, user and call."""
    return db.session(), current_user, call_id


@bp.post("/calls/<int:call_id>/hangup")
@login_required
def hangup(call_id: int) -> str:
    return _act(lambda: actions.hangup(*_who(call_id), current_app.config))


@bp.post("/calls/<int:call_id>/drop")
@login_required
def drop(call_id: int) -> str:
    party = request.form.get("party")
    return _act(lambda: actions.drop_party(*_who(call_id), party, current_app.config))


@bp.post("/calls/<int:call_id>/split")
@login_required
def split(call_id: int) -> str:
    target = request.form.get("target")
    return _act(lambda: actions.split(*_who(call_id), target, current_app.config))


@bp.post("/calls/<int:call_id>/close")
@login_required
def close_call(call_id: int) -> str:
    """Supervisors: end the call on the desk, without asking its provider."""
    return _act(lambda: actions.close(*_who(call_id)))


@bp.post("/calls/<int:call_id>/recording")
@login_required
def record(call_id: int) -> str:
    return _act(lambda: actions.start_recording(*_who(call_id), current_app.config))


@bp.delete("/calls/<int:call_id>/recording")
@login_required
def stop_record(call_id: int) -> str:
    return _act(lambda: actions.stop_recording(*_who(call_id), current_app.config))


@bp.post("/calls/<int:call_id>/recording/pause")
@login_required
def pause_record(call_id: int) -> str:
    return _act(lambda: actions.pause_recording(*_who(call_id), current_app.config))


@bp.post("/calls/<int:call_id>/recording/resume")
@login_required
def resume_record(call_id: int) -> str:
    return _act(lambda: actions.resume_recording(*_who(call_id), current_app.config))


@bp.get("/calls/<int:call_id>/recording")
@login_required
def play(call_id: int) -> ResponseReturnValue:
    """The recording (``?part=N``: its segment N) from a fresh provider address."""
    part = request.args.get("part")
    if part is not None and not (part.isascii() and part.isdigit() and 0 < int(part) < 10**6):
        abort(400, gettext("“part” must be a segment number (1, 2, …), not “%(part)s”.",
                           part=part[:20]))
    try:
        return redirect(actions.recording_url(*_who(call_id), current_app.config,
                                              part=int(part) if part else None))
    except actions.ActionRefused as exc:
        abort(exc.status, exc.message)


@bp.get("/calls/<int:call_id>")
@login_required
def detail(call_id: int) -> str:
    call = load_visible(db.session, current_user, call_id)
    deliveries = db.session.scalars(
        select(Delivery).where(Delivery.call_id == call.id).order_by(Delivery.id)
    ).all()
    if not (current_user.is_supervisor or current_app.config["DESK_LISTEN_IN_SHOWN_TO_AGENT"]):
        deliveries = [d for d in deliveries if not (d.kind or "").endswith(":monitoring")]
    segments = recording.segments(db.session, call.id)
    audit = db.session.scalars(
        select(AuditEntry).where(AuditEntry.call_id == call.id).order_by(AuditEntry.id)
    ).all()
    timeline = sorted(
        [("delivery", d.received_at, d) for d in deliveries]
        + [("action", a.at, a) for a in audit],
        key=lambda item: item[1],
    )
    # The header's counters and the status banner, as on the boards; /ws keeps them current.
    return render_template("board/call.html", call=call, me=current_user, timeline=timeline,
                           counts=queries.state_counts(db.session()), hub=hub,
                           segments=segments, paused=recording.paused_spans(call, segments))


DELIVERY_STATUSES: dict[str, LazyString] = {
    "applied": lazy_gettext("applied"),
    "duplicate": lazy_gettext("duplicate"),
    "rejected": lazy_gettext("rejected"),
}
"""What the desk did with a provider's delivery (``Delivery.status``), as the timeline says."""


@bp.app_template_global("delivery_status")
def delivery_status(status: str | None) -> str:
    name = DELIVERY_STATUSES.get(status or "")
    return str(name) if name is not None else (status or "")


# The words of a call's actions and their outcomes, and its recording's errors, on a page.
bp.add_app_template_global(actions.action_name, "action_name")
bp.add_app_template_global(actions.pending_name, "pending_name")
bp.add_app_template_global(actions.outcome_name, "action_outcome")
bp.add_app_template_global(recording.error_text, "recording_error")
