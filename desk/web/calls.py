"""A call's buttons (htmx), its detail page with the event timeline, recording playback.

Buttons answer with the call's row as this person sees it (the websocket pushes the same
change to everyone else). A refusal by the desk (not yours, wrong state, already pending)
is a 4xx whose text desk.js shows; a refusal by the provider is shown inline on the row.
"""

from __future__ import annotations

from flask import abort, redirect, render_template, request
from flask_login import current_user, login_required
from sqlalchemy import select

from desk.extensions import db
from desk.live.render import row_for
from desk.models import AuditEntry, Call, Delivery
from desk.services import actions
from desk.web import bp


def _act(outcome_of):  # type: ignore[no-untyped-def]
    try:
        outcome = outcome_of()
    except actions.ActionRefused as exc:
        abort(exc.status, exc.message)
    return row_for(current_user, outcome.call)


@bp.post("/calls/<int:call_id>/hangup")
@login_required
def hangup(call_id: int):  # type: ignore[no-untyped-def]
    return _act(lambda: actions.hangup(current_user, call_id))


@bp.post("/calls/<int:call_id>/drop")
@login_required
def drop(call_id: int):  # type: ignore[no-untyped-def]
    return _act(lambda: actions.drop_party(current_user, call_id, request.form.get("party")))


@bp.post("/calls/<int:call_id>/split")
@login_required
def split(call_id: int):  # type: ignore[no-untyped-def]
    return _act(lambda: actions.split(current_user, call_id, request.form.get("target")))


@bp.post("/calls/<int:call_id>/recording")
@login_required
def record(call_id: int):  # type: ignore[no-untyped-def]
    return _act(lambda: actions.start_recording(current_user, call_id))


@bp.delete("/calls/<int:call_id>/recording")
@login_required
def stop_record(call_id: int):  # type: ignore[no-untyped-def]
    return _act(lambda: actions.stop_recording(current_user, call_id))


@bp.get("/calls/<int:call_id>/recording")
@login_required
def play(call_id: int):  # type: ignore[no-untyped-def]
    try:
        return redirect(actions.recording_url(current_user, call_id))
    except actions.ActionRefused as exc:
        abort(exc.status, exc.message)


@bp.get("/calls/<int:call_id>")
@login_required
def detail(call_id: int):  # type: ignore[no-untyped-def]
    call = db.session.get(Call, call_id)
    if call is None:
        abort(404, f"There is no call {call_id}.")
    if not (current_user.is_supervisor or call.is_live or call.agent_id == current_user.id):
        abort(403, "Agents can see live calls and their own history only.")
    deliveries = db.session.scalars(
        select(Delivery).where(Delivery.call_id == call.id).order_by(Delivery.id)
    ).all()
    audit = db.session.scalars(
        select(AuditEntry).where(AuditEntry.call_id == call.id).order_by(AuditEntry.id)
    ).all()
    timeline = sorted(
        [("delivery", d.received_at, d) for d in deliveries]
        + [("action", a.at, a) for a in audit],
        key=lambda item: item[1],
    )
    return render_template("call.html", call=call, me=current_user, timeline=timeline)
