"""After-call work on the board: the wrap-up form of an ended call and the supervisors'
dispositions list (``desk.services.wrapup`` does the work).

The form lives on the agent's own ended rows and on the call page. Saving answers with the
row as this person sees it; a wrong choice or an over-long note comes back on the row with
the message under the field (200, like a provider's refusal), so the agent sees it where
they typed. Without JavaScript the form posts normally and lands on the call page.
"""

from __future__ import annotations

from flask import abort, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_required
from sqlalchemy.orm import object_session

from desk.extensions import db, hub
from desk.live.render import agent_section, supervisor_section
from desk.models import Call
from desk.services import queries, wrapup
from desk.services.visibility import load_visible
from desk.web import bp
from desk.web.auth import supervisor_required


def _row(call: Call, problem: wrapup.WrapUpRefused | None = None,
         typed: dict[str, str] | None = None) -> str:
    user = current_user
    own = call.agent_id == user.id
    section = supervisor_section(call) if user.is_supervisor else agent_section(call, user.id)
    return render_template("board/_call_row.html", call=call, section=section, own=own,
                           may_act=own or user.is_supervisor, oob=False, wrap_problem=problem,
                           wrap_typed=typed or {}, wrap_anyone=user.is_supervisor)


@bp.post("/calls/<int:call_id>/wrap-up")
@login_required
def save_wrap_up(call_id: int) -> ResponseReturnValue:
    typed = {"disposition": request.form.get("disposition", ""),
             "note": request.form.get("note", "")}
    try:
        call = wrapup.save_wrap_up(db.session(), current_user, call_id, typed["disposition"],
                                   typed["note"])
    except wrapup.WrapUpRefused as problem:
        if problem.status in (403, 409) or not request.headers.get("HX-Request"):
            abort(problem.status, problem.message)
        db.session.rollback()
        return _row(load_visible(db.session, current_user, call_id), problem, typed)
    if not request.headers.get("HX-Request"):
        return redirect(url_for("board.detail", call_id=call.id) + f"#wrap-up-{call.id}")
    return _row(call)


@bp.get("/supervisor/dispositions")
@supervisor_required
def dispositions_page() -> str:
    labels = wrapup.dispositions(db.session)
    return _page(labels, "\n".join(labels))


@bp.post("/supervisor/dispositions")
@supervisor_required
def save_dispositions() -> ResponseReturnValue:
    typed = request.form.get("dispositions", "")
    try:
        labels = wrapup.replace_dispositions(db.session(), typed.splitlines(), current_user)
    except wrapup.WrapUpRefused as problem:
        return _page(wrapup.dispositions(db.session), typed, problem=problem), 400
    return _page(labels, "\n".join(labels), saved=True)


def _page(labels: list[str], typed: str, problem: wrapup.WrapUpRefused | None = None,
          saved: bool = False) -> str:
    return render_template("supervisor/dispositions.html", me=current_user, labels=labels,
                           typed=typed, problem=problem, saved=saved,
                           counts=queries.state_counts(db.session()), hub=hub)


@bp.app_template_global("disposition_choices")
def disposition_choices(call: Call | None = None) -> list[str]:
    """The active dispositions, read once per request (or per live render batch), through
    the session ``call`` was loaded in: a board's snapshot and a live render read in a
    session of their own, and a second connection per render starves the pool."""
    from flask import g

    if "desk_dispositions" not in g:
        session = (object_session(call) if call is not None else None) or db.session()
        g.desk_dispositions = wrapup.dispositions(session)
    choices: list[str] = g.desk_dispositions
    return choices
