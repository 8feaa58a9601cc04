"""Template filters and globals: how numbers and times read on a board, which buttons show."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from flask import Flask, current_app


def duration(seconds: int | float | None) -> str:
    """Seconds as m:ss, or h:mm:ss from an hour on (what the browser's timers show too)."""
    total = max(0, int(seconds or 0))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02}:{secs:02}" if hours else f"{minutes}:{secs:02}"


def clock(moment: datetime | None) -> str:
    """A time of today as HH:MM in the call centre's time zone (``DESK_TIMEZONE``)."""
    if moment is None:
        return ""
    return moment.astimezone(ZoneInfo(current_app.config["DESK_TIMEZONE"])).strftime("%H:%M")


def register_filters(app: Flask) -> None:
    from desk.services.actions import available

    app.add_template_filter(duration, "duration")
    app.add_template_filter(clock, "clock")
    app.add_template_global(available, "call_actions")
