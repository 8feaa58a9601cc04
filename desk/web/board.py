"""Login/logout, the boards and the presence switch.

The boards render their sections server-side (useful before the websocket connects, and
without JavaScript); ``/ws`` then keeps them live. Presence is an htmx POST that answers with
the new ``_presence.html`` and fans the change out to supervisors.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext
from flask_login import current_user, login_required, login_user, logout_user

from desk.extensions import db
from desk.live.render import board_context
from desk.models import PRESENCES, User
from desk.services.presence import set_presence
from desk.web import bp
from desk.web.auth import check_login, end_sessions, login_limits, supervisor_required, throttled


def _safe_next(target: str | None) -> str:
    """Only same-site paths: ``next`` must not send a fresh login to another site. Anything
    else (another host, a control character such as CR/LF that would split the Location
    header, a backslash that browsers read as ``/`` so ``/\\evil`` means ``//evil``) is
    ignored: the login goes to the board."""
    if (
        target and target.startswith("/") and not target.startswith("//")
        and "\\" not in target and not any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in target)
    ):
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc:
            return target
    return url_for("board.index")


@bp.route("/login", methods=["GET", "POST"])
@throttled(login_limits)  # failed attempts per name and per address; 429 past the limit
def login() -> ResponseReturnValue:
    if current_user.is_authenticated:
        return redirect(_safe_next(request.args.get("next")))
    error = None
    name = ""
    if request.method == "POST":
        name = (request.form.get("name") or "").strip()
        user = check_login(name, request.form.get("password") or "")
        if user is None:
            error = gettext("That name and password do not match. Check both and try again.")
        else:
            login_user(user)
            if user.presence == "offline":
                set_presence(db.session, user.id, "available")
            return redirect(_safe_next(request.args.get("next")))
    status = 401 if error else 200
    return render_template("auth/login.html", error=error, name=name), status


@bp.post("/logout")
@login_required
def logout() -> ResponseReturnValue:
    if not current_user.is_supervisor:
        set_presence(db.session, current_user.id, "offline")
    user_id = current_user.id
    logout_user()
    end_sessions(user_id)  # this user's other sessions (other browsers, copied cookies) too
    flash(gettext("You are logged out."))
    return redirect(url_for("board.login"))


@bp.get("/")
@login_required
def index() -> ResponseReturnValue:
    if current_user.is_supervisor:
        return redirect(url_for("board.supervisor"))
    return render_template("board/board.html", **board_context(db.session, current_user))


@bp.get("/supervisor")
@login_required
@supervisor_required
def supervisor() -> str:
    return render_template("board/supervisor.html", **board_context(db.session, current_user))


@bp.post("/presence")
@login_required
def presence() -> ResponseReturnValue:
    value = request.form.get("presence", "")
    if value not in PRESENCES:
        abort(400, gettext("Presence must be one of: %(choices)s.",
                           choices=", ".join(PRESENCES)))
    set_presence(db.session, current_user.id, value)
    me = db.session.get(User, current_user.id)
    db.session.refresh(me)
    if request.headers.get("HX-Request"):
        return render_template("shared/_presence.html", me=me, oob=False)
    return redirect(url_for("board.index"))
