"""Listen-in from the pages: the supervisor board's section and the call page's form.

``POST /supervisor/listen-in`` starts listening to an agent's calls or to the calls to a
number (the SIP address defaults to the supervisor's own SIP peer); ``POST
/supervisor/listen-in/<id>/stop`` stops it. ``desk.services.listen`` does the work and the
auditing. From the board (htmx) both answer with the section, a refused start with its
message under the field it is about (200, as the dial form does, so htmx swaps it in);
without JavaScript, and from the call page, they go back where they came from (``next``),
and a refused start is a 4xx page with the message.
"""

from __future__ import annotations

from collections.abc import Sequence

from flask import abort, redirect, render_template, request
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_required

from desk.extensions import db
from desk.models import ListenIn, User
from desk.services import listen, queries
from desk.web import bp
from desk.web.auth import supervisor_required
from desk.web.board import _safe_next


@bp.app_template_global("listen_in_rules")
def listen_in_rules() -> list[ListenIn]:
    """The listen-ins standing, oldest first."""
    return listen.rules(db.session)


@bp.app_template_global("listen_in_people")
def listen_in_people() -> Sequence[User]:
    """Whom a supervisor may pick to listen to."""
    return queries.people(db.session())


@bp.app_template_global("listen_in_describe")
def listen_in_describe(rule: ListenIn) -> str:
    return listen.describe(rule)


def _section(problem: listen.ListenRefused | None = None,
             typed: dict[str, str] | None = None) -> str:
    return render_template("supervisor/_listen_in.html", me=current_user, problem=problem,
                           typed=typed or {})


def _back() -> ResponseReturnValue:
    """Where the form came from (a same-site ``next``), else the board."""
    return redirect(_safe_next(request.form.get("next")))


@bp.post("/supervisor/listen-in")
@login_required
@supervisor_required
def listen_start() -> ResponseReturnValue:
    typed = {name: request.form.get(name, "") for name in ("agent_id", "number", "address")}
    try:
        listen.start(db.session(), current_user, agent_id=typed["agent_id"] or None,
                     number=typed["number"] or None, address=typed["address"] or None)
    except listen.ListenRefused as problem:
        if request.headers.get("HX-Request") and problem.status != 403:
            return _section(problem, typed)
        abort(problem.status, problem.message)
    if request.headers.get("HX-Request"):
        return _section()
    return _back()


@bp.post("/supervisor/listen-in/<int:rule_id>/stop")
@login_required
@supervisor_required
def listen_stop(rule_id: int) -> ResponseReturnValue:
    try:
        listen.stop(db.session(), current_user, rule_id)
    except listen.ListenRefused as problem:
        if not request.headers.get("HX-Request") or problem.status == 403:
            abort(problem.status, problem.message)
    if request.headers.get("HX-Request"):
        return _section()
    return _back()
