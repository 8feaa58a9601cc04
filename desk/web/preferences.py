"""A user's own language and time zone: the header's language switch and ``/settings``.

The choice is kept on the user (``User.language``, ``User.timezone``) so it follows them to
every browser; ``desk.i18n`` reads it for each page and each live board. A user who has
chosen nothing reads the browser's language and the call centre's time zone.
"""

from __future__ import annotations

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext
from flask_login import current_user, login_required

from desk.extensions import db, hub
from desk.i18n import LANGUAGES, timezones, valid_timezone
from desk.models import User
from desk.services import queries
from desk.web import bp
from desk.web.board import _safe_next


def _me() -> User:
    user = db.session.get(User, current_user.id)
    assert user is not None  # (signed in: the row exists)
    return user


@bp.post("/settings/language")
@login_required
def set_language() -> ResponseReturnValue:
    """The header's switch: the chosen language from now on, back on the same page."""
    code = request.form.get("language", "")
    if code not in LANGUAGES:
        abort(400, gettext("Choose one of the languages the desk speaks: %(codes)s.",
                           codes=", ".join(LANGUAGES)))
    _me().language = code
    db.session.commit()
    return redirect(_safe_next(request.form.get("next")))


@bp.route("/settings", methods=["GET", "POST"])
@login_required
def settings_page() -> ResponseReturnValue:
    me = _me()
    problems: dict[str, str] = {}
    language, zone = me.language or "", me.timezone or ""
    if request.method == "POST":
        language = request.form.get("language", "").strip()
        zone = request.form.get("timezone", "").strip()
        if language and language not in LANGUAGES:
            problems["language"] = gettext("Choose a language from the list.")
        if zone and not valid_timezone(zone):
            problems["timezone"] = gettext(
                "“%(zone)s” is not a time zone. Pick one from the list, such as Europe/Berlin.",
                zone=zone)
        if not problems:
            me.language, me.timezone = language or None, zone or None
            db.session.commit()
            flash(gettext("Your settings are saved."))
            return redirect(url_for("board.settings_page"))
    return render_template(
        "shared/settings.html", me=me, counts=queries.state_counts(db.session()), hub=hub,
        problems=problems, language=language, zone=zone,
        zones=timezones(), desk_zone=current_app.config["DESK_TIMEZONE"],
    ), 400 if problems else 200
