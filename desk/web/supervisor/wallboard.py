"""The supervisors' wallboard (large screen, live over ``/ws``) and acknowledging alerts.

The page shows ``_wallboard_counters.html`` (today's counters and the 15-minute chart's
data), one tile per person and the open provider alarms. ``desk.live.render`` pushes a fresh
counters fragment to supervisors after every committed call change; the fragment also asks
for itself once a minute (``GET /wallboard/counters``) so "today" rolls over at midnight on
a quiet line.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import abort, current_app, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext
from flask_login import current_user, login_required
from sqlalchemy import select

from desk.db import end_reads
from desk.extensions import db
from desk.live.changes import ALERTS, mark_changed
from desk.live.render import board_context
from desk.models import Alert, utcnow
from desk.services import queries, wallboard
from desk.web import bp
from desk.web.auth import supervisor_required


def counters_now(session: Any) -> wallboard.Counters:
    return wallboard.compute(session, current_app.config["DESK_TIMEZONE"])


@bp.app_template_filter("from_iso")
def from_iso(value: str | None) -> datetime | None:
    """An ISO 8601 time (UTC when it names no zone) as a datetime for ``|moment`` and
    ``|clock``; None when it is none."""
    try:
        moment = datetime.fromisoformat(value or "")
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@bp.get("/wallboard")
@login_required
@supervisor_required
def wallboard_page() -> str:
    return render_template("supervisor/wallboard.html", **board_context(db.session, current_user))


@bp.get("/wallboard/counters")
@login_required
@supervisor_required
def wallboard_counters() -> str:
    return render_template("supervisor/_wallboard_counters.html", wb=counters_now(db.session),
                           oob=False)


@bp.post("/alerts/<int:alert_id>/acknowledge")
@login_required
@supervisor_required
def acknowledge_alert(alert_id: int) -> ResponseReturnValue:
    end_reads(db.session)
    alert = db.session.scalars(select(Alert).where(Alert.id == alert_id)).first()
    if alert is None:
        abort(404, gettext("There is no alert %(id)s.", id=alert_id))
    if alert.acknowledged_at is None:  # a second press (or a second supervisor) changes nothing
        alert.acknowledged_at = utcnow()
        alert.acknowledged_by = current_user.id
        mark_changed(db.session(), ALERTS, 0)
        db.session.commit()
    if request.headers.get("HX-Request"):
        return render_template("supervisor/_alerts.html",
                               alerts=queries.open_alerts(db.session()), oob=False)
    return redirect(url_for("board.supervisor"))
